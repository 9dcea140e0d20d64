//! Results of the inclusion-proof, open / recovery and peak-memory benchmarks
//! (`benches/engine_proof.rs`, `engine_open.rs`, `engine_memory.rs`): the JSON files they
//! write beside criterion's results and the tables `bench-report` prints from them.
//!
//! Each benchmark times single operations itself (the rigs interleaved, so that all of them
//! see the same seconds of the machine) and saves quantiles, because the questions are about
//! p50 / p99, one slow operation (an open) or no timing at all (memory). A run over the same
//! number of receipts and mode keeps the jobs and rigs of an earlier run that it did not
//! measure (a filtered run adds to a full one); any other run replaces the file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ids;
use crate::paired::quantile;
use crate::query_rigs::{REDB_RIG, SQLITE_RIG, TRAILMIX_RIG};
use crate::rigs::BoxError;

/// Results file of the proof benchmark, inside the criterion directory.
pub const PROOF_FILE: &str = "trailmix-proof.json";
/// Results file of the open benchmark.
pub const OPEN_FILE: &str = "trailmix-open.json";
/// Results file of the peak-memory benchmark.
pub const MEMORY_FILE: &str = "trailmix-memory.json";

/// Quantiles of single operations of one job on one rig.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Median, nanoseconds.
    pub p50_ns: f64,
    /// 99th percentile (nearest rank), nanoseconds.
    pub p99_ns: f64,
    /// Mean, nanoseconds.
    pub mean_ns: f64,
    /// Fastest, nanoseconds.
    pub min_ns: f64,
    /// Slowest, nanoseconds.
    pub max_ns: f64,
    /// Operations timed.
    pub samples: usize,
}

impl Timing {
    /// Quantiles of `durations` (sorted in place); `None` when empty.
    #[must_use]
    pub fn from_durations(durations: &mut [Duration]) -> Option<Timing> {
        durations.sort_unstable();
        let ns: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1e9).collect();
        let (first, last) = (*ns.first()?, *ns.last()?);
        #[allow(clippy::cast_precision_loss, reason = "a mean for display")]
        let mean_ns = ns.iter().sum::<f64>() / ns.len() as f64;
        Some(Timing {
            p50_ns: quantile(&ns, 0.5),
            p99_ns: quantile(&ns, 0.99),
            mean_ns,
            min_ns: first,
            max_ns: last,
            samples: ns.len(),
        })
    }

    /// Operations per second on one thread (1 / mean).
    #[must_use]
    pub fn per_second(&self) -> f64 {
        1e9 / self.mean_ns.max(1e-9)
    }
}

/// Timings by job, then rig.
pub type Jobs = BTreeMap<String, BTreeMap<String, Timing>>;

/// What the proof benchmark saves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProofResults {
    /// Receipts in the store.
    pub receipts: u64,
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// Leaves of the sealed epoch's tree (receipts and the store's own entries).
    pub sealed_tree_size: u64,
    /// Leaves of the open epoch's latest checkpoint.
    pub open_tree_size: u64,
    /// Timings of [`ids::PROVE_SEALED`], [`ids::PROVE_OPEN`] and [`ids::VERIFY_PROOF`], by rig.
    pub jobs: Jobs,
}

/// What the open benchmark saves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenResults {
    /// Receipts in each store.
    pub receipts: u64,
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// Bytes of each rig's store (sizes of all its files), by rig.
    pub store_bytes: BTreeMap<String, u64>,
    /// Timings of [`ids::OPEN_CLEAN`] and [`ids::OPEN_CRASHED`], by rig.
    pub jobs: Jobs,
}

/// One rig's memory figures, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemoryFigures {
    /// Receipts ingested.
    pub receipts: u64,
    /// Seconds the ingest took (appends or inserts, commits, index catch-up).
    pub load_seconds: f64,
    /// Resident size after making the data set, before the store was opened.
    pub before_kib: u64,
    /// Peak resident size of the process (`VmHWM`, as `ru_maxrss`), store closed.
    pub peak_kib: u64,
    /// Largest anonymous resident size seen (sampled).
    pub anon_peak_kib: u64,
    /// Largest file-backed resident size seen (sampled; mapped files).
    pub file_peak_kib: u64,
}

impl MemoryFigures {
    /// The peak above the resident size before the store was opened.
    #[must_use]
    pub fn increase_kib(&self) -> u64 {
        self.peak_kib.saturating_sub(self.before_kib)
    }
}

/// What the peak-memory benchmark saves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryResults {
    /// Receipts ingested by each rig.
    pub receipts: u64,
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// Figures by rig.
    pub rigs: BTreeMap<String, MemoryFigures>,
}

pub(crate) fn read_json<T: DeserializeOwned>(dir: &Path, file: &str) -> Result<T, String> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("no results at {} ({e})", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not readable: {e}", path.display()))
}

pub(crate) fn write_json<T: Serialize>(dir: &Path, file: &str, value: &T) -> Result<(), BoxError> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(file), serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Adds `old`'s timings that `new` lacks.
fn merge_jobs(new: &mut Jobs, old: Jobs) {
    for (job, rigs) in old {
        let entry = new.entry(job).or_default();
        for (rig, timing) in rigs {
            entry.entry(rig).or_insert(timing);
        }
    }
}

/// Writes `results` to [`PROOF_FILE`] in `criterion_dir`, keeping what an earlier run of the
/// same size and mode measured and this one did not.
///
/// # Errors
/// I/O errors.
pub fn save_proof(criterion_dir: &Path, results: &ProofResults) -> Result<(), BoxError> {
    let mut merged = results.clone();
    if let Ok(old) = load_proof(criterion_dir)
        && (old.receipts, old.quick) == (merged.receipts, merged.quick)
    {
        merge_jobs(&mut merged.jobs, old.jobs);
    }
    write_json(criterion_dir, PROOF_FILE, &merged)
}

/// Reads [`PROOF_FILE`].
///
/// # Errors
/// A message when it is missing or unreadable.
pub fn load_proof(criterion_dir: &Path) -> Result<ProofResults, String> {
    read_json(criterion_dir, PROOF_FILE)
}

/// Writes `results` to [`OPEN_FILE`] in `criterion_dir` (merged as [`save_proof`] does).
///
/// # Errors
/// I/O errors.
pub fn save_open(criterion_dir: &Path, results: &OpenResults) -> Result<(), BoxError> {
    let mut merged = results.clone();
    if let Ok(old) = load_open(criterion_dir)
        && (old.receipts, old.quick) == (merged.receipts, merged.quick)
    {
        merge_jobs(&mut merged.jobs, old.jobs);
        for (rig, bytes) in old.store_bytes {
            merged.store_bytes.entry(rig).or_insert(bytes);
        }
    }
    write_json(criterion_dir, OPEN_FILE, &merged)
}

/// Reads [`OPEN_FILE`].
///
/// # Errors
/// A message when it is missing or unreadable.
pub fn load_open(criterion_dir: &Path) -> Result<OpenResults, String> {
    read_json(criterion_dir, OPEN_FILE)
}

/// Writes `results` to [`MEMORY_FILE`] in `criterion_dir` (merged as [`save_proof`] does).
///
/// # Errors
/// I/O errors.
pub fn save_memory(criterion_dir: &Path, results: &MemoryResults) -> Result<(), BoxError> {
    let mut merged = results.clone();
    if let Ok(old) = load_memory(criterion_dir)
        && (old.receipts, old.quick) == (merged.receipts, merged.quick)
    {
        for (rig, figures) in old.rigs {
            merged.rigs.entry(rig).or_insert(figures);
        }
    }
    write_json(criterion_dir, MEMORY_FILE, &merged)
}

/// Reads [`MEMORY_FILE`].
///
/// # Errors
/// A message when it is missing or unreadable.
pub fn load_memory(criterion_dir: &Path) -> Result<MemoryResults, String> {
    read_json(criterion_dir, MEMORY_FILE)
}

/// All three results files, each read or the reason it was not.
#[derive(Debug, Clone)]
pub struct StoreResults {
    /// The proof benchmark's results.
    pub proof: Result<ProofResults, String>,
    /// The open benchmark's results.
    pub open: Result<OpenResults, String>,
    /// The peak-memory benchmark's results.
    pub memory: Result<MemoryResults, String>,
}

/// Reads the three results files in `criterion_dir`.
#[must_use]
pub fn load(criterion_dir: &Path) -> StoreResults {
    StoreResults {
        proof: load_proof(criterion_dir),
        open: load_open(criterion_dir),
        memory: load_memory(criterion_dir),
    }
}

/// A duration in nanoseconds, three significant digits.
pub(crate) fn time(ns: f64) -> String {
    if !ns.is_finite() {
        "n/a".to_string()
    } else if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e7 {
        format!("{:.0} ms", ns / 1e6)
    } else if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns >= 1e5 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// A count or rate with a k / M suffix.
pub(crate) fn count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else if n >= 10.0 {
        format!("{n:.0} ")
    } else {
        format!("{n:.2} ")
    }
}

/// A ratio: three significant digits up to 100, whole numbers above.
fn times(r: f64) -> String {
    if !r.is_finite() {
        "n/a".to_string()
    } else if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

/// A size in KiB as MiB.
#[allow(clippy::cast_precision_loss, reason = "sizes for display")]
fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[allow(clippy::cast_precision_loss, reason = "counts for display")]
pub(crate) fn float(n: u64) -> f64 {
    n as f64
}

pub(crate) fn header(out: &mut String, headers: &[&str]) {
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let aligns: Vec<&str> = (0..headers.len())
        .map(|i| if i == 0 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "|{}|", aligns.join("|"));
}

pub(crate) fn quick_note(quick: bool) -> &'static str {
    if quick {
        " (quick run: rough figures)"
    } else {
        ""
    }
}

/// Rows of the proof table: label, job, subject rig, baseline rig.
const PROOF_ROWS: [(&str, &str, &str, &str); 4] = [
    (
        "prove, sealed epoch",
        ids::PROVE_SEALED,
        TRAILMIX_RIG,
        ids::RS_MERKLE,
    ),
    (
        "prove, open epoch",
        ids::PROVE_OPEN,
        TRAILMIX_RIG,
        ids::RS_MERKLE,
    ),
    (
        "verify a bundle (checkpoint signature, entry digests, path)",
        ids::VERIFY_PROOF,
        TRAILMIX_RIG,
        ids::RS_MERKLE,
    ),
    (
        "verify the audit path alone (`merkle::verify_inclusion`)",
        ids::VERIFY_PROOF,
        ids::TRAILMIX_PATH,
        ids::RS_MERKLE,
    ),
];

fn render_proof(out: &mut String, loaded: &Result<ProofResults, String>) {
    let _ = writeln!(
        out,
        "\nInclusion proofs (benches/engine_proof.rs): single operations on one thread, the \
         rigs interleaved; rate = 1 / mean. rs_merkle holds the whole tree in memory (built \
         once, untimed) and proves from it; trailmix-db proves from its log. Ratio = \
         trailmix-db's time over rs_merkle's, p50 (p99); > 1 is slower:\n"
    );
    let results = match loaded {
        Ok(r) => r,
        Err(err) => {
            let _ = writeln!(out, "Proof results missing: {err}");
            return;
        }
    };
    let _ = writeln!(
        out,
        "{} receipts{}: sealed epoch of {} leaves, open epoch's checkpoint of {} leaves.\n",
        count(float(results.receipts)).trim_end(),
        quick_note(results.quick),
        results.sealed_tree_size,
        results.open_tree_size
    );
    header(
        out,
        &[
            "job",
            "trailmix-db p50 / p99",
            "trailmix-db rate",
            "rs_merkle p50 / p99",
            "rs_merkle rate",
            "trailmix / rs_merkle",
        ],
    );
    for (label, job, subject, baseline) in PROOF_ROWS {
        let rigs = results.jobs.get(job);
        let get = |rig: &str| rigs.and_then(|r| r.get(rig));
        let (s, b) = (get(subject), get(baseline));
        let cells = |t: Option<&Timing>| {
            t.map_or_else(
                || ("missing".to_string(), "missing".to_string()),
                |t| {
                    (
                        format!("{} / {}", time(t.p50_ns), time(t.p99_ns)),
                        format!("{}/s", count(t.per_second())),
                    )
                },
            )
        };
        let ((s_q, s_r), (b_q, b_r)) = (cells(s), cells(b));
        let ratio = match (s, b) {
            (Some(s), Some(b)) => format!(
                "{} ({})",
                times(s.p50_ns / b.p50_ns.max(1e-9)),
                times(s.p99_ns / b.p99_ns.max(1e-9))
            ),
            _ => "n/a".to_string(),
        };
        let label = if subject == ids::TRAILMIX_PATH {
            label.to_string()
        } else {
            let samples = s.map_or(0, |t| t.samples);
            format!("{label} ({samples} samples)")
        };
        let _ = writeln!(out, "| {label} | {s_q} | {s_r} | {b_q} | {b_r} | {ratio} |");
    }
}

const OPEN_RIGS: [(&str, &str); 3] = [
    (TRAILMIX_RIG, "trailmix-db"),
    (REDB_RIG, "redb"),
    (SQLITE_RIG, "SQLite"),
];

fn render_open(out: &mut String, loaded: &Result<OpenResults, String>) {
    let _ = writeln!(
        out,
        "\nOpen / recovery (benches/engine_open.rs): each open starts from a fresh copy of the \
         store (page cache warm), the rigs interleaved; timed from the call until the last \
         sequence number is known; receipts/s = receipts in the store / median. Ratio = \
         trailmix-db's median over the baseline's; > 1 is slower:\n"
    );
    let results = match loaded {
        Ok(r) => r,
        Err(err) => {
            let _ = writeln!(out, "Open results missing: {err}");
            return;
        }
    };
    let _ = writeln!(
        out,
        "{} receipts per store{}.\n",
        count(float(results.receipts)).trim_end(),
        quick_note(results.quick)
    );
    let mut headers = vec!["store".to_string()];
    for (_, name) in OPEN_RIGS {
        headers.push(format!("{name} median (min–max)"));
        headers.push(format!("{name} receipts/s"));
    }
    headers.push("trailmix / redb".to_string());
    headers.push("trailmix / SQLite".to_string());
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    header(out, &headers);
    for (job, label) in [
        (ids::OPEN_CLEAN, "closed cleanly"),
        (ids::OPEN_CRASHED, "writer killed (SIGKILL)"),
    ] {
        let rigs = results.jobs.get(job);
        let get = |rig: &str| rigs.and_then(|r| r.get(rig));
        let mut row = vec![label.to_string()];
        for (rig, _) in OPEN_RIGS {
            match get(rig) {
                Some(t) => {
                    row.push(format!(
                        "{} ({}–{})",
                        time(t.p50_ns),
                        time(t.min_ns),
                        time(t.max_ns)
                    ));
                    row.push(format!(
                        "{}/s",
                        count(float(results.receipts) * 1e9 / t.p50_ns.max(1e-9))
                    ));
                }
                None => row.extend(["missing".to_string(), "missing".to_string()]),
            }
        }
        for baseline in [REDB_RIG, SQLITE_RIG] {
            row.push(match (get(TRAILMIX_RIG), get(baseline)) {
                (Some(s), Some(b)) => times(s.p50_ns / b.p50_ns.max(1e-9)),
                _ => "n/a".to_string(),
            });
        }
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    if !results.store_bytes.is_empty() {
        let sizes: Vec<String> = OPEN_RIGS
            .iter()
            .filter_map(|(rig, name)| {
                results
                    .store_bytes
                    .get(*rig)
                    .map(|b| format!("{name} {:.0} MB", float(*b) / 1e6))
            })
            .collect();
        let _ = writeln!(
            out,
            "\nStore sizes (all files, pre-allocated space included): {}.",
            sizes.join(", ")
        );
    }
}

fn render_memory(out: &mut String, loaded: &Result<MemoryResults, String>) {
    let _ = writeln!(
        out,
        "\nPeak memory of ingest (benches/engine_memory.rs): each rig in a fresh process that \
         makes the same data set, then loads it (indexes current); peak = VmHWM (ru_maxrss), \
         before = resident size before the store was opened, anon / file = sampled peaks of \
         RssAnon / RssFile (a mapped log's pages are file-backed page cache). Ratio = \
         trailmix-db's figure over the rig's, peak (increase over before); > 1 is more:\n"
    );
    let results = match loaded {
        Ok(r) => r,
        Err(err) => {
            let _ = writeln!(out, "Memory results missing: {err}");
            return;
        }
    };
    let _ = writeln!(
        out,
        "{} receipts{}.\n",
        count(float(results.receipts)).trim_end(),
        quick_note(results.quick)
    );
    header(
        out,
        &[
            "rig",
            "peak RSS",
            "before",
            "peak − before",
            "anon peak",
            "file-backed peak",
            "ingest",
            "trailmix / rig",
        ],
    );
    let trailmix = results.rigs.get(TRAILMIX_RIG);
    for (rig, name) in OPEN_RIGS {
        let Some(m) = results.rigs.get(rig) else {
            let _ = writeln!(
                out,
                "| {name} | missing | missing | missing | missing | missing | missing | n/a |"
            );
            continue;
        };
        let ratio = trailmix.map_or_else(
            || "n/a".to_string(),
            |t| {
                format!(
                    "{} ({})",
                    times(float(t.peak_kib) / float(m.peak_kib.max(1))),
                    times(float(t.increase_kib()) / float(m.increase_kib().max(1)))
                )
            },
        );
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {:.1} s ({}/s) | {ratio} |",
            mib(m.peak_kib),
            mib(m.before_kib),
            mib(m.increase_kib()),
            mib(m.anon_peak_kib),
            mib(m.file_peak_kib),
            m.load_seconds,
            count(float(m.receipts) / m.load_seconds.max(1e-9))
        );
    }
}

/// Appends the proof, open and memory sections to `out` (`None`: nothing was read).
pub fn render(out: &mut String, loaded: Option<&StoreResults>) {
    let Some(results) = loaded else {
        let _ = writeln!(
            out,
            "\nProof, open and memory results missing (no criterion directory)."
        );
        return;
    };
    render_proof(out, &results.proof);
    render_open(out, &results.open);
    render_memory(out, &results.memory);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(p50_us: f64, p99_us: f64) -> Timing {
        Timing {
            p50_ns: p50_us * 1e3,
            p99_ns: p99_us * 1e3,
            mean_ns: p50_us * 1e3,
            min_ns: p50_us * 0.9e3,
            max_ns: p99_us * 1.1e3,
            samples: 100,
        }
    }

    #[test]
    fn timings_from_durations() {
        let mut d: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let t = Timing::from_durations(&mut d).expect("non-empty");
        assert!((t.p50_ns - 51_000.0).abs() < 1.0, "{t:?}");
        assert!((t.p99_ns - 99_000.0).abs() < 1.0, "{t:?}");
        assert!((t.min_ns - 1_000.0).abs() < 1.0 && (t.max_ns - 100_000.0).abs() < 1.0);
        assert!((t.per_second() - 1e9 / 50_500.0).abs() < 1e-6);
        assert!(Timing::from_durations(&mut []).is_none());
    }

    fn proof_results() -> ProofResults {
        let mut proof = ProofResults {
            receipts: 20_000,
            quick: true,
            sealed_tree_size: 18_003,
            open_tree_size: 2_001,
            ..ProofResults::default()
        };
        proof.jobs.insert(
            ids::PROVE_SEALED.into(),
            BTreeMap::from([
                (TRAILMIX_RIG.to_string(), timing(20_000.0, 30_000.0)),
                (ids::RS_MERKLE.to_string(), timing(2.0, 3.0)),
            ]),
        );
        proof
    }

    fn open_results() -> OpenResults {
        let mut open = OpenResults {
            receipts: 100_000,
            quick: true,
            store_bytes: BTreeMap::from([(TRAILMIX_RIG.to_string(), 200_000_000)]),
            ..OpenResults::default()
        };
        open.jobs.insert(
            ids::OPEN_CLEAN.into(),
            BTreeMap::from([
                (TRAILMIX_RIG.to_string(), timing(400_000.0, 420_000.0)),
                (REDB_RIG.to_string(), timing(1_000.0, 1_200.0)),
            ]),
        );
        open
    }

    fn memory_results() -> MemoryResults {
        let figures = |peak: u64| MemoryFigures {
            receipts: 50_000,
            load_seconds: 1.0,
            before_kib: 10_240,
            peak_kib: peak,
            anon_peak_kib: peak / 2,
            file_peak_kib: peak / 4,
        };
        MemoryResults {
            receipts: 50_000,
            quick: true,
            rigs: BTreeMap::from([
                (TRAILMIX_RIG.to_string(), figures(102_400)),
                (SQLITE_RIG.to_string(), figures(20_480)),
            ]),
        }
    }

    #[test]
    fn saves_merges_and_loads() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        let mut out = String::new();
        render(&mut out, Some(&load(dir.path())));
        assert!(
            out.contains("Proof results missing: no results at"),
            "{out}"
        );
        assert!(out.contains("Open results missing"), "{out}");
        assert!(out.contains("Memory results missing"), "{out}");

        let proof = proof_results();
        save_proof(dir.path(), &proof)?;
        // A filtered run of the same size adds its job; the earlier one stays.
        let mut more = ProofResults {
            jobs: Jobs::new(),
            ..proof.clone()
        };
        more.jobs.insert(
            ids::VERIFY_PROOF.into(),
            BTreeMap::from([(TRAILMIX_RIG.to_string(), timing(60.0, 80.0))]),
        );
        save_proof(dir.path(), &more)?;
        let loaded = load_proof(dir.path())?;
        assert_eq!(loaded.jobs.len(), 2);
        assert_eq!(
            loaded.jobs[ids::PROVE_SEALED],
            proof.jobs[ids::PROVE_SEALED]
        );
        // A run of another size replaces the file.
        let other = ProofResults {
            receipts: 1_000_000,
            ..more.clone()
        };
        save_proof(dir.path(), &other)?;
        assert_eq!(load_proof(dir.path())?, other);

        save_open(dir.path(), &open_results())?;
        assert_eq!(load_open(dir.path())?, open_results());
        save_memory(dir.path(), &memory_results())?;
        assert_eq!(load_memory(dir.path())?, memory_results());

        std::fs::write(dir.path().join(OPEN_FILE), "{")?;
        assert!(load_open(dir.path()).is_err_and(|e| e.contains("not readable")));
        Ok(())
    }

    #[test]
    fn renders_the_tables() {
        let mut proof = proof_results();
        proof.jobs.insert(
            ids::VERIFY_PROOF.into(),
            BTreeMap::from([
                (TRAILMIX_RIG.to_string(), timing(60.0, 80.0)),
                (ids::TRAILMIX_PATH.to_string(), timing(3.0, 4.0)),
                (ids::RS_MERKLE.to_string(), timing(4.0, 8.0)),
            ]),
        );
        let results = StoreResults {
            proof: Ok(proof),
            open: Ok(open_results()),
            memory: Ok(memory_results()),
        };
        let mut out = String::new();
        render(&mut out, Some(&results));
        assert!(
            out.contains(
                "| prove, sealed epoch (100 samples) | 20 ms / 30 ms | 50 /s | 2.0 µs / 3.0 µs \
                 | 500.0 k/s | 10000× (10000×) |"
            ),
            "{out}"
        );
        assert!(out.contains("| prove, open epoch (0 samples) | missing | missing |"));
        assert!(
            out.contains(
                "| verify the audit path alone (`merkle::verify_inclusion`) | 3.0 µs / 4.0 µs"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "| closed cleanly | 400 ms (360 ms–462 ms) | 250.0 k/s | 1.0 ms (900 µs–1.3 ms) \
                 | 100.00 M/s | missing | missing | 400× | n/a |"
            ),
            "{out}"
        );
        assert!(out.contains(
            "Store sizes (all files, pre-allocated space included): trailmix-db 200 MB."
        ));
        assert!(
            out.contains(
                "| trailmix-db | 100.0 MiB | 10.0 MiB | 90.0 MiB | 50.0 MiB | 25.0 MiB | 1.0 s \
                 (50.0 k/s) | 1.00× (1.00×) |"
            ),
            "{out}"
        );
        assert!(
            out.contains("| SQLite | 20.0 MiB | 10.0 MiB | 10.0 MiB |"),
            "{out}"
        );
        assert!(out.contains("| 5.00× (9.00×) |"), "{out}");
        assert!(out.contains("| redb | missing |"), "{out}");
        let mut out = String::new();
        render(&mut out, None);
        assert!(out.contains("results missing"));
    }
}
