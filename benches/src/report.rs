//! Reads criterion's results (`<criterion dir>/**/new/{benchmark,estimates}.json`) and renders
//! the ratio tables that `bench-report` prints and `docs/performance.md` keeps.
//!
//! Nothing here panics on odd input: a missing or unreadable result becomes a "missing" cell
//! and a line under the table saying what was wrong.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::ids;
use crate::paired::{self, PairedResult};

/// A count as a float, for rates shown with three significant digits (exact below 2^53).
#[allow(clippy::cast_precision_loss)]
fn float(count: u64) -> f64 {
    count as f64
}

/// What one criterion iteration processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throughput {
    /// Bytes per iteration.
    Bytes(u64),
    /// Elements (records) per iteration.
    Elements(u64),
}

/// One benchmark's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Criterion's `group/function/value` id.
    pub full_id: String,
    /// Typical nanoseconds per iteration (criterion's slope estimate, else the mean).
    pub ns_per_iter: f64,
    /// Lower and upper bound of the 95% confidence interval of `ns_per_iter`.
    pub ns_interval: (f64, f64),
    /// What one iteration processed, when the benchmark declared it.
    pub throughput: Option<Throughput>,
}

impl Measurement {
    /// Elements or bytes per second (by the declared throughput), or iterations per second.
    #[must_use]
    pub fn per_second(&self) -> f64 {
        let per_iter = match self.throughput {
            Some(Throughput::Bytes(n) | Throughput::Elements(n)) => float(n),
            None => 1.0,
        };
        per_iter * 1e9 / self.ns_per_iter
    }
}

/// Everything found under a criterion directory.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// The directory that was read.
    pub dir: PathBuf,
    /// Measurements by full id.
    pub measurements: BTreeMap<String, Measurement>,
    /// Paired (interleaved) results by job id.
    pub paired: BTreeMap<String, PairedResult>,
    /// What could not be read, one line each.
    pub problems: Vec<String>,
    /// The query benchmark's latencies (`None`: not read; an error says why they are missing).
    pub query_latency: Option<Result<crate::query_report::LatencyResults, String>>,
    /// The proof, open and memory benchmarks' results (`None`: not read).
    pub store: Option<crate::store_report::StoreResults>,
    /// Append latency at half of peak throughput (`None`: not read).
    pub append_latency: Option<Result<crate::append_latency::LatencyResults, String>>,
}

/// Reads every `new/benchmark.json` + `new/estimates.json` pair under `dir`, the paired
/// results file, the query latencies ([`crate::query_report`]) and the proof, open and memory
/// results ([`crate::store_report`]).
#[must_use]
pub fn load(dir: &Path) -> Results {
    let mut results = load_criterion(dir);
    if dir.is_dir() {
        match paired::load(dir) {
            Ok(found) => {
                results.paired = found.into_iter().map(|r| (r.job.clone(), r)).collect();
            }
            Err(err) => results.problems.push(err),
        }
        results.query_latency = Some(crate::query_report::load(dir));
        results.store = Some(crate::store_report::load(dir));
        results.append_latency = Some(crate::append_latency::load(dir));
    }
    results
}

fn load_criterion(dir: &Path) -> Results {
    let mut results = Results {
        dir: dir.to_path_buf(),
        ..Results::default()
    };
    if !dir.is_dir() {
        results.problems.push(format!(
            "no criterion results at {} (run `cargo bench -p trailmix-benches` first)",
            dir.display()
        ));
        return results;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(err) => {
                results
                    .problems
                    .push(format!("cannot list {}: {err}", current.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|name| name == "new") {
                if path.join("benchmark.json").is_file() {
                    match read_measurement(&path) {
                        Ok(m) => {
                            results.measurements.insert(m.full_id.clone(), m);
                        }
                        Err(err) => results.problems.push(err),
                    }
                }
            } else {
                stack.push(path);
            }
        }
    }
    results
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON: {e}", path.display()))
}

fn read_measurement(new_dir: &Path) -> Result<Measurement, String> {
    let bench_path = new_dir.join("benchmark.json");
    let estimates_path = new_dir.join("estimates.json");
    let bench = read_json(&bench_path)?;
    let estimates = read_json(&estimates_path)?;
    let full_id = bench
        .get("full_id")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{} has no full_id", bench_path.display()))?
        .to_string();
    let throughput = bench.get("throughput").and_then(|t| {
        let count = |key| t.get(key).and_then(Value::as_u64);
        count("Elements").map(Throughput::Elements).or_else(|| {
            count("Bytes")
                .or_else(|| count("BytesDecimal"))
                .map(Throughput::Bytes)
        })
    });
    let typical = estimates
        .get("slope")
        .filter(|slope| !slope.is_null())
        .or_else(|| estimates.get("mean"))
        .ok_or_else(|| format!("{} has neither slope nor mean", estimates_path.display()))?;
    let number = |v: Option<&Value>| v.and_then(Value::as_f64);
    let ns_per_iter = number(typical.get("point_estimate"))
        .filter(|ns| ns.is_finite() && *ns > 0.0)
        .ok_or_else(|| format!("{} has no usable estimate", estimates_path.display()))?;
    let interval = typical.get("confidence_interval");
    let ns_interval = (
        number(interval.and_then(|i| i.get("lower_bound"))).unwrap_or(ns_per_iter),
        number(interval.and_then(|i| i.get("upper_bound"))).unwrap_or(ns_per_iter),
    );
    Ok(Measurement {
        full_id,
        ns_per_iter,
        ns_interval,
        throughput,
    })
}

/// How a job's figures are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Records per second, and payload MB/s for records of this many bytes.
    Records {
        /// Payload bytes per record.
        payload_bytes: usize,
    },
    /// MB/s (10^6 bytes per second).
    Bytes,
    /// Time per iteration.
    Time,
}

/// One row: a measurement of trailmix-db (or of option A) against a baseline (option B).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// What is measured.
    pub label: String,
    /// Full id of the trailmix-db (or A) side.
    pub subject: String,
    /// Full id of the baseline (or B) side.
    pub baseline: String,
    /// Job id of the paired measurement of the two sides, when there is one.
    pub paired: Option<String>,
    /// How figures are shown.
    pub unit: Unit,
    /// The ratio the brief asks for, when it asks for one.
    pub target: Option<f64>,
}

/// WAL append target: the WAL at ≥ 0.8× the plain ceiling (issue 2).
pub const WAL_APPEND_TARGET: f64 = 0.8;

/// Rows of the "trailmix-db vs the ceiling" table.
#[must_use]
pub fn ceiling_jobs() -> Vec<Job> {
    let mut jobs = Vec::new();
    for bytes in ids::RECORD_SIZES {
        for batch in ids::BATCHES {
            jobs.push(Job {
                label: format!("WAL append {bytes} B, {batch} rec/flush"),
                subject: ids::wal_append(bytes, ids::TRAILMIX, batch),
                baseline: ids::wal_append(bytes, ids::CEILING, batch),
                paired: Some(format!(
                    "{}/{}",
                    ids::wal_append_group(bytes),
                    ids::batch_value(batch)
                )),
                unit: Unit::Records {
                    payload_bytes: bytes,
                },
                target: Some(WAL_APPEND_TARGET),
            });
        }
    }
    for (function, prealloc, ahead) in ids::WAL_PREALLOC_VARIANTS {
        let preparation = if ahead { "ahead" } else { "on demand" };
        jobs.push(Job {
            label: format!(
                "WAL append {} B, {} rec/flush, {prealloc}, prepared {preparation}",
                ids::PREALLOC_RECORD_BYTES,
                ids::PREALLOC_BATCH
            ),
            subject: format!("{}/{function}", ids::WAL_PREALLOC_GROUP),
            baseline: format!("{}/{}", ids::WAL_PREALLOC_GROUP, ids::CEILING),
            paired: Some(format!("{}/{function}", ids::WAL_PREALLOC_GROUP)),
            unit: Unit::Records {
                payload_bytes: ids::PREALLOC_RECORD_BYTES,
            },
            target: Some(WAL_APPEND_TARGET),
        });
    }
    jobs
}

/// Rows of the pre-allocation table (A against B, no target).
#[must_use]
pub fn prealloc_jobs() -> Vec<Job> {
    vec![
        Job {
            label: "mmap write + msync every 4 MiB: zero-filled (A) vs fallocated (B)".into(),
            subject: format!("{}/{}", ids::MMAP_WRITE_GROUP, ids::ZERO_FILL),
            baseline: format!("{}/{}", ids::MMAP_WRITE_GROUP, ids::FALLOCATE),
            paired: None,
            unit: Unit::Bytes,
            target: None,
        },
        Job {
            label: "create a 64 MiB segment: fallocate (A) vs zero-fill (B)".into(),
            subject: format!("{}/{}", ids::SEGMENT_CREATE_GROUP, ids::FALLOCATE),
            baseline: format!("{}/{}", ids::SEGMENT_CREATE_GROUP, ids::ZERO_FILL),
            paired: None,
            unit: Unit::Time,
            target: None,
        },
    ]
}

/// Engine ingest targets (the brief): trailmix-db ≥ 0.7× the pipelined ceiling, ≥ 4× redb,
/// ≥ 6× `SQLite`.
pub const INGEST_TARGETS: [(&str, &str, f64); 3] = [
    (ids::PIPELINED_CEILING, "pipelined ceiling", 0.7),
    (ids::REDB, "redb (1 writer)", 4.0),
    (ids::SQLITE, "SQLite WAL (1 writer)", 6.0),
];
/// Encryption target (issue 5): encrypted ingest at ≥ 0.85× unencrypted ingest.
pub const ENCRYPTION_TARGET: f64 = 0.85;
/// Verification target: `verify_store` at ≥ 0.8× the blake3 rate over the same bytes.
pub const VERIFY_TARGET: f64 = 0.8;

/// Payload size of an ingest row.
#[derive(Clone, Copy)]
enum IngestSize {
    /// 512-byte payloads (`engine_ingest_512B`).
    Small,
    /// 2 KiB payloads (`engine_ingest_2KiB`).
    Large,
}

/// An ingest row of trailmix-db against `baseline` without paired run or target; redb and
/// `SQLite` have one writer, so their side runs with one thread.
fn ingest_job(baseline: &str, name: &str, threads: usize, size: IngestSize) -> Job {
    let baseline_threads = if baseline == ids::PIPELINED_CEILING {
        threads
    } else {
        1
    };
    let (id, size_label, payload_bytes): (fn(&str, usize) -> String, _, _) = match size {
        IngestSize::Small => (ids::engine_ingest, "512 B", crate::receipts::PAYLOAD_BYTES),
        IngestSize::Large => (
            ids::engine_ingest_large,
            "2 KiB",
            crate::receipts::LARGE_PAYLOAD_BYTES,
        ),
    };
    Job {
        label: format!(
            "durable ingest {size_label}, {threads} thread{} vs {name}",
            if threads == 1 { "" } else { "s" }
        ),
        subject: id(ids::TRAILMIX, threads),
        baseline: id(baseline, baseline_threads),
        paired: None,
        unit: Unit::Records { payload_bytes },
        target: None,
    }
}

/// Rows of the "engine against its baselines" table: durable ingest and full verification.
#[must_use]
pub fn engine_jobs() -> Vec<Job> {
    let mut jobs = Vec::new();
    for (baseline, name, target) in INGEST_TARGETS {
        for threads in ids::INGEST_THREADS {
            let mut job = ingest_job(baseline, name, threads, IngestSize::Small);
            job.paired = (baseline == ids::PIPELINED_CEILING || threads == 1)
                .then(|| ids::engine_ingest_paired(baseline, threads));
            job.target = Some(target);
            jobs.push(job);
        }
    }
    // The same bars for batched appends (`Db::append_batch` of 10k receipts, the size the
    // baselines commit per transaction): the like-for-like comparison.
    for (baseline, name, target) in INGEST_TARGETS {
        for threads in ids::INGEST_THREADS {
            let mut job = ingest_job(baseline, name, threads, IngestSize::Small);
            job.label = job
                .label
                .replacen("durable ingest", "durable batched ingest", 1);
            job.subject = ids::engine_ingest(ids::TRAILMIX_BATCHED, threads);
            job.paired = (baseline == ids::PIPELINED_CEILING || threads == 1)
                .then(|| ids::engine_ingest_paired_batched(baseline, threads));
            job.target = Some(target);
            jobs.push(job);
        }
    }
    // The same jobs with 2 KiB payloads (criterion ratios only); the brief states its bars at
    // 512 B, so these rows carry none.
    for (baseline, name, _) in INGEST_TARGETS {
        for threads in ids::INGEST_THREADS {
            jobs.push(ingest_job(baseline, name, threads, IngestSize::Large));
        }
    }
    // Issue 5: payload encryption (the default) costs at most 15% of ingest throughput.
    for threads in ids::INGEST_THREADS {
        jobs.push(Job {
            label: format!(
                "durable ingest 512 B, {threads} thread{}: encrypted (default) vs unencrypted",
                if threads == 1 { "" } else { "s" }
            ),
            subject: ids::engine_ingest(ids::TRAILMIX, threads),
            baseline: ids::engine_ingest(ids::TRAILMIX_UNENCRYPTED, threads),
            paired: Some(ids::engine_ingest_paired(
                ids::TRAILMIX_UNENCRYPTED,
                threads,
            )),
            unit: Unit::Records {
                payload_bytes: crate::receipts::PAYLOAD_BYTES,
            },
            target: Some(ENCRYPTION_TARGET),
        });
    }
    for (baseline, name) in [
        (ids::BLAKE3_PER_ENTRY, "blake3 per entry"),
        (ids::BLAKE3_BULK, "blake3 over all bytes at once"),
    ] {
        jobs.push(Job {
            label: format!("verify_store vs {name}"),
            subject: ids::engine_verify(ids::VERIFY_STORE),
            baseline: ids::engine_verify(baseline),
            paired: None,
            unit: Unit::Bytes,
            target: Some(VERIFY_TARGET),
        });
    }
    jobs
}

fn si(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k", value / 1e3)
    } else {
        format!("{value:.0} ")
    }
}

fn format_time(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// One figure in the job's unit.
#[must_use]
pub fn format_figure(m: &Measurement, unit: Unit) -> String {
    match unit {
        Unit::Records { payload_bytes } => {
            let per_second = m.per_second();
            format!(
                "{}rec/s ({:.0} MB/s)",
                si(per_second),
                per_second * float(payload_bytes as u64) / 1e6
            )
        }
        Unit::Bytes => format!("{:.0} MB/s", m.per_second() / 1e6),
        Unit::Time => format_time(m.ns_per_iter),
    }
}

/// Speed of `subject` over speed of `baseline` (>1: the subject is faster).
#[must_use]
pub fn ratio(subject: &Measurement, baseline: &Measurement) -> f64 {
    baseline.ns_per_iter / subject.ns_per_iter
        * match (subject.throughput, baseline.throughput) {
            (
                Some(Throughput::Bytes(a) | Throughput::Elements(a)),
                Some(Throughput::Bytes(b) | Throughput::Elements(b)),
            ) => float(a) / float(b),
            _ => 1.0,
        }
}

fn table(out: &mut String, results: &Results, jobs: &[Job], headers: &[&str]) {
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let aligns: Vec<&str> = headers
        .iter()
        .enumerate()
        .map(|(i, _)| {
            if i == 0 || i + 1 == headers.len() {
                "---"
            } else {
                "---:"
            }
        })
        .collect();
    let _ = writeln!(out, "|{}|", aligns.join("|"));
    let with_paired = headers.len() == 6;
    for job in jobs {
        let subject = results.measurements.get(&job.subject);
        let baseline = results.measurements.get(&job.baseline);
        let cell = |m: Option<&Measurement>| {
            m.map_or_else(|| "missing".to_string(), |m| format_figure(m, job.unit))
        };
        let ratio = match (subject, baseline) {
            (Some(s), Some(b)) => Some(ratio(s, b)),
            _ => None,
        };
        let ratio_cell = ratio.map_or_else(|| "n/a".to_string(), |r| format!("{r:.2}×"));
        let paired = job.paired.as_ref().and_then(|id| results.paired.get(id));
        let paired_cell = paired.map_or_else(
            || {
                if job.paired.is_some() {
                    "missing".to_string()
                } else {
                    "—".to_string()
                }
            },
            |p| {
                format!(
                    "{:.2}× ({:.2}–{:.2}; overall {:.2}×)",
                    p.ratio_median,
                    p.ratio_quartiles.0,
                    p.ratio_quartiles.1,
                    p.subject_per_second / p.baseline_per_second
                )
            },
        );
        // Criterion's ratio can be skewed by the disk changing speed between its two windows,
        // the paired one by the WAL's background segment preparation spilling into the
        // ceiling's block: a verdict needs both to agree.
        let target_cell = match job.target {
            None => "—".to_string(),
            Some(t) => {
                let judged: Vec<f64> = [ratio, paired.map(|p| p.ratio_median)]
                    .into_iter()
                    .flatten()
                    .collect();
                if judged.is_empty() {
                    format!("≥ {t:.2}×")
                } else if judged.iter().all(|r| *r >= t) {
                    format!("≥ {t:.2}×: met")
                } else if judged.iter().all(|r| *r < t) {
                    format!("≥ {t:.2}×: MISSED")
                } else {
                    format!("≥ {t:.2}×: unclear (the two disagree)")
                }
            }
        };
        let mut row = vec![job.label.clone(), cell(subject), cell(baseline), ratio_cell];
        if with_paired {
            row.push(paired_cell);
        }
        row.push(target_cell);
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    let mut missing: Vec<&str> = jobs
        .iter()
        .flat_map(|j| [j.subject.as_str(), j.baseline.as_str()])
        .filter(|id| !results.measurements.contains_key(*id))
        .chain(
            jobs.iter()
                .filter(|_| with_paired)
                .filter_map(|j| j.paired.as_deref())
                .filter(|id| !results.paired.contains_key(*id)),
        )
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    missing.retain(|id| seen.insert(*id));
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "\nMissing results ({}): {}",
            missing.len(),
            missing.join(", ")
        );
    }
}

/// The full report: both tables, then any problems met while reading.
#[must_use]
pub fn render(results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "criterion results: {}\n", results.dir.display());
    let _ = writeln!(
        out,
        "trailmix-db against the plain ceiling (buffered write + fdatasync of the same frames), \
         durable group commit. \"criterion\" = ratio of criterion's figures (measured one \
         after the other); \"paired\" = ratio of alternating blocks measured in the same seconds: \
         median of the rounds (quartiles; ratio of the overall rates). A \
         target is met or missed when criterion's ratio and the paired median agree:\n"
    );
    table(
        &mut out,
        results,
        &ceiling_jobs(),
        &[
            "job",
            "trailmix-db",
            "ceiling",
            "criterion",
            "paired",
            "target",
        ],
    );
    let _ = writeln!(
        out,
        "\ntrailmix-db (`Db`, default options, durable tickets) against its baselines on the \
         same receipts (benches/engine_ingest.rs, engine_verify.rs). The 2-thread rows \
         against redb and SQLite compare with their 1-writer figures and have no paired run:\n"
    );
    table(
        &mut out,
        results,
        &engine_jobs(),
        &[
            "job",
            "trailmix-db",
            "baseline",
            "criterion",
            "paired",
            "target",
        ],
    );
    let _ = writeln!(out, "\nPre-allocation (ratio = speed of A / speed of B):\n");
    table(
        &mut out,
        results,
        &prealloc_jobs(),
        &["comparison", "A", "B", "A / B", "target"],
    );
    if let Some(latency) = &results.append_latency {
        crate::append_latency::render(&mut out, latency);
    }
    crate::query_report::render(&mut out, results.query_latency.as_ref());
    crate::store_report::render(&mut out, results.store.as_ref());
    if !results.problems.is_empty() {
        let _ = writeln!(out, "\nProblems while reading results:");
        for problem in &results.problems {
            let _ = writeln!(out, "- {problem}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_result(root: &Path, dir: &str, full_id: &str, throughput: &str, ns: f64) {
        let new_dir = root.join(dir).join("new");
        std::fs::create_dir_all(&new_dir).expect("mkdir");
        std::fs::write(
            new_dir.join("benchmark.json"),
            format!(r#"{{"group_id":"g","full_id":"{full_id}","throughput":{throughput}}}"#),
        )
        .expect("write benchmark.json");
        let estimate = format!(
            r#"{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":{},"upper_bound":{}}},"point_estimate":{ns},"standard_error":1.0}}"#,
            ns * 0.9,
            ns * 1.1
        );
        std::fs::write(
            new_dir.join("estimates.json"),
            format!(
                r#"{{"mean":{estimate},"median":{estimate},"median_abs_dev":{estimate},"slope":null,"std_dev":{estimate}}}"#
            ),
        )
        .expect("write estimates.json");
    }

    #[test]
    fn reads_results_and_computes_ratios() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = ids::wal_append(512, ids::TRAILMIX, 64);
        let ceiling = ids::wal_append(512, ids::CEILING, 64);
        write_result(
            dir.path(),
            "a/trailmix/batch_64",
            &wal,
            r#"{"Elements":64}"#,
            80_000.0,
        );
        write_result(
            dir.path(),
            "a/ceiling/batch_64",
            &ceiling,
            r#"{"Elements":64}"#,
            64_000.0,
        );
        std::fs::create_dir_all(dir.path().join("broken/new")).expect("mkdir");
        std::fs::write(dir.path().join("broken/new/benchmark.json"), "{").expect("write");
        let results = load(dir.path());
        assert_eq!(results.measurements.len(), 2);
        assert_eq!(results.problems.len(), 2, "{:?}", results.problems);
        let m = &results.measurements[&wal];
        assert!((m.per_second() - 800_000.0).abs() < 1e-6);
        assert!((ratio(m, &results.measurements[&ceiling]) - 0.8).abs() < 1e-9);
        let text = render(&results);
        assert!(text.contains("| WAL append 512 B, 64 rec/flush | 800.0 krec/s (410 MB/s)"));
        assert!(text.contains("0.80× | missing | ≥ 0.80×: met"), "{text}");
        assert!(text.contains("Missing results"));
        assert!(text.contains("not valid JSON"));
        assert!(text.contains("no paired results"));

        // A paired result is shown; a verdict needs both ratios to agree.
        let mut paired = PairedResult {
            job: "wal_append_512B/batch_64".into(),
            subject_per_second: 700.0,
            baseline_per_second: 1000.0,
            ratio_median: 0.7,
            ratio_quartiles: (0.6, 0.75),
            rounds: 12,
        };
        paired::save(dir.path(), &paired).expect("save");
        let text = render(&load(dir.path()));
        assert!(
            text.contains("0.80× | 0.70× (0.60–0.75; overall 0.70×) | ≥ 0.80×: unclear"),
            "{text}"
        );
        paired.ratio_median = 0.9;
        paired::save(dir.path(), &paired).expect("save");
        let text = render(&load(dir.path()));
        assert!(
            text.contains("0.90× (0.60–0.75; overall 0.70×) | ≥ 0.80×: met"),
            "{text}"
        );
    }

    #[test]
    fn missing_directory_is_reported_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let results = load(&dir.path().join("nothing-here"));
        assert!(results.measurements.is_empty());
        let text = render(&results);
        assert!(text.contains("no criterion results"));
        assert!(text.contains("| missing | missing | n/a | missing |"));
    }
}
