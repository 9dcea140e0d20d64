//! Query latencies (issue 4): the file the query benchmark writes beside criterion's results
//! (`<criterion dir>/trailmix-query-latency.json`) and the table `bench-report` prints from it.
//!
//! Criterion gives each job's mean per query; the bars are about p50 and p99, so the benchmark
//! also times single queries (the rigs interleaved query by query, so that all of them see the
//! same seconds of the machine), sorts the durations and saves the quantiles here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::paired::quantile;
use crate::query_data::Job;
use crate::query_rigs::{
    LoadStats, REDB_RIG, SQLITE_RIG, TRAILMIX_CLEAR_RIG, TRAILMIX_RIG, load_method,
};
use crate::rigs::BoxError;

/// Name of the results file inside the criterion directory.
pub const LATENCY_FILE: &str = "trailmix-query-latency.json";

/// Target: trailmix-db's p50 below redb-direct's (latency ratio < 1).
pub const REDB_TARGET: f64 = 1.0;
/// Target: trailmix-db at least 2× faster than `SQLite` (latency ratio ≤ 0.5).
pub const SQLITE_TARGET: f64 = 0.5;

/// Quantiles of one job on one rig.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median, nanoseconds.
    pub p50_ns: f64,
    /// 99th percentile, nanoseconds.
    pub p99_ns: f64,
    /// Mean, nanoseconds.
    pub mean_ns: f64,
    /// Queries timed.
    pub samples: usize,
}

impl Latency {
    /// Quantiles of `durations` (sorted in place); `None` when empty.
    #[must_use]
    pub fn from_durations(durations: &mut [Duration]) -> Option<Latency> {
        if durations.is_empty() {
            return None;
        }
        durations.sort_unstable();
        let ns: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1e9).collect();
        #[allow(clippy::cast_precision_loss, reason = "a mean for display")]
        let mean_ns = ns.iter().sum::<f64>() / ns.len() as f64;
        Some(Latency {
            p50_ns: quantile(&ns, 0.5),
            p99_ns: quantile(&ns, 0.99),
            mean_ns,
            samples: ns.len(),
        })
    }
}

/// Everything the query benchmark saves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyResults {
    /// Receipts in the stores.
    pub receipts: u64,
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// Bytes of one receipt's fields, unencoded (ids, names, time, payload), on average.
    pub raw_bytes_per_receipt: f64,
    /// Latencies by job id, then rig name.
    pub jobs: BTreeMap<String, BTreeMap<String, Latency>>,
    /// How each rig's store was loaded, by rig name.
    pub loads: BTreeMap<String, LoadStats>,
}

/// Writes `results` to the file inside `criterion_dir`. Jobs and rigs of an earlier run over
/// the same number of receipts that this run did not measure are kept (a filtered run adds to
/// a full one); a run over another number replaces the file.
///
/// # Errors
/// I/O errors; an unreadable existing file is replaced.
pub fn save(criterion_dir: &Path, results: &LatencyResults) -> Result<(), BoxError> {
    std::fs::create_dir_all(criterion_dir)?;
    let mut merged = load(criterion_dir)
        .ok()
        .filter(|old| old.receipts == results.receipts && old.quick == results.quick)
        .unwrap_or_default();
    merged.receipts = results.receipts;
    merged.quick = results.quick;
    merged.raw_bytes_per_receipt = results.raw_bytes_per_receipt;
    for (job, rigs) in &results.jobs {
        let entry = merged.jobs.entry(job.clone()).or_default();
        entry.extend(rigs.iter().map(|(k, v)| (k.clone(), *v)));
    }
    merged
        .loads
        .extend(results.loads.iter().map(|(k, v)| (k.clone(), *v)));
    let jobs: serde_json::Map<String, Value> = merged
        .jobs
        .iter()
        .map(|(job, rigs)| {
            let rigs: serde_json::Map<String, Value> = rigs
                .iter()
                .map(|(rig, l)| {
                    (
                        rig.clone(),
                        json!({
                            "p50_ns": l.p50_ns,
                            "p99_ns": l.p99_ns,
                            "mean_ns": l.mean_ns,
                            "samples": l.samples,
                        }),
                    )
                })
                .collect();
            (job.clone(), Value::Object(rigs))
        })
        .collect();
    let loads: serde_json::Map<String, Value> = merged
        .loads
        .iter()
        .map(|(rig, s)| {
            (
                rig.clone(),
                json!({
                    "receipts": s.receipts,
                    "load_seconds": s.elapsed.as_secs_f64(),
                    "index_catch_up_seconds": s.index_catch_up.as_secs_f64(),
                    "disk_bytes": s.disk_bytes,
                    "allocated_bytes": s.allocated_bytes,
                }),
            )
        })
        .collect();
    let value = json!({
        "receipts": merged.receipts,
        "quick": merged.quick,
        "raw_bytes_per_receipt": merged.raw_bytes_per_receipt,
        "jobs": jobs,
        "loads": loads,
    });
    std::fs::write(
        criterion_dir.join(LATENCY_FILE),
        serde_json::to_string_pretty(&value)?,
    )?;
    Ok(())
}

/// Reads the file inside `criterion_dir`.
///
/// # Errors
/// A message when the file is missing or malformed.
pub fn load(criterion_dir: &Path) -> Result<LatencyResults, String> {
    let path = criterion_dir.join(LATENCY_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("no query latencies at {} ({e})", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    let bad = |what: &str| format!("{}: {what}", path.display());
    let mut results = LatencyResults {
        receipts: value
            .get("receipts")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no receipts count"))?,
        quick: value.get("quick").and_then(Value::as_bool).unwrap_or(false),
        raw_bytes_per_receipt: value
            .get("raw_bytes_per_receipt")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
        ..LatencyResults::default()
    };
    let jobs = value
        .get("jobs")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no jobs"))?;
    for (job, rigs) in jobs {
        let rigs = rigs
            .as_object()
            .ok_or_else(|| bad(&format!("job {job} is not an object")))?;
        let mut by_rig = BTreeMap::new();
        for (rig, l) in rigs {
            let number = |key: &str| l.get(key).and_then(Value::as_f64);
            let (Some(p50_ns), Some(p99_ns)) = (number("p50_ns"), number("p99_ns")) else {
                return Err(bad(&format!("{job}/{rig} has no p50_ns or p99_ns")));
            };
            by_rig.insert(
                rig.clone(),
                Latency {
                    p50_ns,
                    p99_ns,
                    mean_ns: number("mean_ns").unwrap_or(f64::NAN),
                    samples: l
                        .get("samples")
                        .and_then(Value::as_u64)
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(0),
                },
            );
        }
        results.jobs.insert(job.clone(), by_rig);
    }
    if let Some(loads) = value.get("loads").and_then(Value::as_object) {
        for (rig, s) in loads {
            let (Some(receipts), Some(seconds), Some(disk_bytes)) = (
                s.get("receipts").and_then(Value::as_u64),
                s.get("load_seconds").and_then(Value::as_f64),
                s.get("disk_bytes").and_then(Value::as_u64),
            ) else {
                continue;
            };
            let catch_up = s
                .get("index_catch_up_seconds")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            results.loads.insert(
                rig.clone(),
                LoadStats {
                    receipts,
                    elapsed: Duration::try_from_secs_f64(seconds).unwrap_or_default(),
                    index_catch_up: Duration::try_from_secs_f64(catch_up).unwrap_or_default(),
                    disk_bytes,
                    allocated_bytes: s
                        .get("allocated_bytes")
                        .and_then(Value::as_u64)
                        .unwrap_or(disk_bytes),
                },
            );
        }
    }
    Ok(results)
}

fn micros(ns: f64) -> String {
    if ns >= 100_000.0 {
        format!("{:.0} µs", ns / 1e3)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

fn count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// Rig columns: redb, `SQLite`, trailmix-db, then any other rig found.
fn rig_order(results: &LatencyResults) -> Vec<String> {
    let mut rigs: Vec<String> = [REDB_RIG, SQLITE_RIG, TRAILMIX_RIG]
        .iter()
        .map(ToString::to_string)
        .collect();
    for by_rig in results.jobs.values() {
        for rig in by_rig.keys() {
            if !rigs.contains(rig) {
                rigs.push(rig.clone());
            }
        }
    }
    rigs
}

/// The trailmix-db rigs whose ratios to the baselines the table shows: the default store
/// (encrypted payloads), and the store with clear payloads when the results have it.
fn compared_rigs(rigs: &[String]) -> Vec<&'static str> {
    let mut compared = vec![TRAILMIX_RIG];
    if rigs.iter().any(|r| r == TRAILMIX_CLEAR_RIG) {
        compared.push(TRAILMIX_CLEAR_RIG);
    }
    compared
}

/// One row of the latency table: the job, each rig's p50 / p99, the ratios of each compared
/// trailmix-db rig to redb and `SQLite`, and the verdicts.
fn job_row(id: &str, by_rig: &BTreeMap<String, Latency>, rigs: &[String]) -> Vec<String> {
    let label = Job::from_id(id).map_or_else(|| id.to_string(), |j| j.label().to_string());
    let mut row = vec![label];
    for rig in rigs {
        row.push(by_rig.get(rig).map_or_else(
            || "missing".to_string(),
            |l| format!("{} / {}", micros(l.p50_ns), micros(l.p99_ns)),
        ));
    }
    let verdict = |r: Option<(f64, f64)>, met: &dyn Fn(f64) -> bool| {
        r.map_or(
            "missing",
            |(p50, _)| if met(p50) { "met" } else { "MISSED" },
        )
    };
    let mut verdicts = Vec::new();
    for subject in compared_rigs(rigs) {
        let ratio = |baseline: &str| match (by_rig.get(subject), by_rig.get(baseline)) {
            (Some(t), Some(b)) => Some((t.p50_ns / b.p50_ns, t.p99_ns / b.p99_ns)),
            _ => None,
        };
        let (vs_redb, vs_sqlite) = (ratio(REDB_RIG), ratio(SQLITE_RIG));
        for r in [vs_redb, vs_sqlite] {
            row.push(r.map_or_else(
                || "missing".to_string(),
                |(p50, p99)| format!("{p50:.2}× ({p99:.2}×)"),
            ));
        }
        let prefix = if subject == TRAILMIX_RIG {
            String::new()
        } else {
            format!("{subject}: ")
        };
        verdicts.push(format!(
            "{prefix}redb: {}; SQLite: {}",
            verdict(vs_redb, &|r| r < REDB_TARGET),
            verdict(vs_sqlite, &|r| r <= SQLITE_TARGET)
        ));
    }
    row.push(verdicts.join("; "));
    row
}

/// The latency table's column headers: the job, each rig's quantiles, each compared
/// trailmix-db rig's ratios, the verdicts.
fn table_headers(rigs: &[String]) -> Vec<String> {
    let mut headers = vec!["job".to_string()];
    headers.extend(rigs.iter().map(|r| format!("{r} p50 / p99")));
    for subject in compared_rigs(rigs) {
        let short = if subject == TRAILMIX_RIG {
            "trailmix"
        } else {
            subject
        };
        headers.push(format!("{short}/redb p50 (p99)"));
        headers.push(format!("{short}/SQLite p50 (p99)"));
    }
    headers.push("target".to_string());
    headers
}

/// Appends the query latency section to `out`. `loaded` is `None` when nothing was read.
pub fn render(out: &mut String, loaded: Option<&Result<LatencyResults, String>>) {
    let _ = writeln!(
        out,
        "\nQueries (benches/query.rs): p50 / p99 of single queries, each reading and hashing \
         every returned receipt; ratios are trailmix-db's latency over the baseline's \
         (target: < {REDB_TARGET:.2}× redb, ≤ {SQLITE_TARGET:.2}× SQLite, at p50). \
         trailmix-db is the default store, which decrypts every payload it returns; \
         {TRAILMIX_CLEAR_RIG}, where present, stores payloads in the clear as the baselines \
         do:\n"
    );
    let results = match loaded {
        Some(Ok(results)) => results,
        Some(Err(err)) => {
            let _ = writeln!(out, "Query latencies missing: {err}");
            return;
        }
        None => {
            let _ = writeln!(out, "Query latencies missing (not read).");
            return;
        }
    };
    let rigs = rig_order(results);
    #[allow(clippy::cast_precision_loss, reason = "a count for display")]
    let _ = writeln!(
        out,
        "{} receipts{}:\n",
        count(results.receipts as f64),
        if results.quick {
            " (quick run: rough figures)"
        } else {
            ""
        }
    );
    let headers = table_headers(&rigs);
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let aligns: Vec<&str> = (0..headers.len())
        .map(|i| {
            if i == 0 || i + 1 == headers.len() {
                "---"
            } else {
                "---:"
            }
        })
        .collect();
    let _ = writeln!(out, "|{}|", aligns.join("|"));
    let mut ids: Vec<String> = Job::ALL.iter().map(|j| j.id().to_string()).collect();
    let extra: Vec<String> = results
        .jobs
        .keys()
        .filter(|k| !ids.contains(k))
        .cloned()
        .collect();
    ids.extend(extra);
    let empty = BTreeMap::new();
    for id in &ids {
        let row = job_row(id, results.jobs.get(id).unwrap_or(&empty), &rigs);
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    if !results.loads.is_empty() {
        let _ = writeln!(
            out,
            "\nLoad (indexes maintained; timed: the writes, their commits or durability waits \
             and any index catch-up, not making the rows); disk: bytes used (files, without \
             pre-allocated space not yet written), allocated in brackets where different; raw \
             fields {:.0} B/receipt:\n",
            results.raw_bytes_per_receipt
        );
        for (rig, s) in rigs
            .iter()
            .filter_map(|rig| results.loads.get(rig).map(|s| (rig, s)))
        {
            let mut line = format!(
                "- {rig}: {}/s ({:.1} s",
                count(s.per_second()),
                s.elapsed.as_secs_f64()
            );
            if !s.index_catch_up.is_zero() {
                let _ = write!(
                    line,
                    ", of which {:.1} s index catch-up",
                    s.index_catch_up.as_secs_f64()
                );
            }
            let _ = write!(line, "), {:.0} B/receipt used", s.bytes_per_receipt());
            if s.allocated_bytes != s.disk_bytes {
                let _ = write!(
                    line,
                    " ({:.0} B/receipt allocated)",
                    s.allocated_bytes_per_receipt()
                );
            }
            if let Some(method) = load_method(rig) {
                let _ = write!(line, "; {method}");
            }
            let _ = writeln!(out, "{line}.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(p50_us: f64, p99_us: f64) -> Latency {
        Latency {
            p50_ns: p50_us * 1e3,
            p99_ns: p99_us * 1e3,
            mean_ns: p50_us * 1.1e3,
            samples: 2000,
        }
    }

    /// Empty results of a 1 M-receipt run whose raw fields are 600 bytes a receipt.
    fn million() -> LatencyResults {
        LatencyResults {
            receipts: 1_000_000,
            raw_bytes_per_receipt: 600.0,
            ..LatencyResults::default()
        }
    }

    #[test]
    fn quantiles() {
        let mut d: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let l = Latency::from_durations(&mut d).expect("non-empty");
        assert!((l.p50_ns - 51_000.0).abs() < 1.0, "{l:?}");
        assert!((l.p99_ns - 99_000.0).abs() < 1.0, "{l:?}");
        assert!((l.mean_ns - 50_500.0).abs() < 1.0);
        assert!(Latency::from_durations(&mut []).is_none());
    }

    #[test]
    fn saves_loads_and_renders() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        let mut out = String::new();
        render(&mut out, Some(&load(dir.path())));
        assert!(
            out.contains("Query latencies missing: no query latencies"),
            "{out}"
        );

        let mut results = million();
        let job = Job::TenantTime.id().to_string();
        results.jobs.insert(
            job.clone(),
            BTreeMap::from([
                (REDB_RIG.to_string(), latency(85.0, 150.0)),
                (SQLITE_RIG.to_string(), latency(200.0, 400.0)),
            ]),
        );
        results.loads.insert(
            REDB_RIG.to_string(),
            LoadStats {
                receipts: 1_000_000,
                elapsed: Duration::from_secs(10),
                index_catch_up: Duration::ZERO,
                disk_bytes: 800_000_000,
                allocated_bytes: 800_000_000,
            },
        );
        results.loads.insert(
            TRAILMIX_RIG.to_string(),
            LoadStats {
                receipts: 1_000_000,
                elapsed: Duration::from_secs(20),
                index_catch_up: Duration::from_secs(2),
                disk_bytes: 900_000_000,
                allocated_bytes: 1_000_000_000,
            },
        );
        save(dir.path(), &results)?;
        let loaded = load(dir.path())?;
        assert_eq!(loaded, results);
        let mut out = String::new();
        render(&mut out, Some(&Ok(loaded)));
        assert!(
            out.contains(
                "| tenant + time range, limit 100 | 85.0 µs / 150 µs | 200 µs / 400 µs | \
                 missing | missing | missing | redb: missing; SQLite: missing |"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "- redb: 100.0 k/s (10.0 s), 800 B/receipt used; 10k-row write transactions"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "- trailmix-db: 50.0 k/s (20.0 s, of which 2.0 s index catch-up), 900 \
                 B/receipt used (1000 B/receipt allocated); windows of 10k appends"
            ),
            "{out}"
        );

        // A trailmix-db rig added by a later (filtered) run is merged in.
        let mut more = million();
        more.jobs.insert(
            job,
            BTreeMap::from([(TRAILMIX_RIG.to_string(), latency(60.0, 300.0))]),
        );
        save(dir.path(), &more)?;
        let mut out = String::new();
        render(&mut out, Some(&load(dir.path())));
        assert!(
            out.contains(
                "| 60.0 µs / 300 µs | 0.71× (2.00×) | 0.30× (0.75×) | redb: met; SQLite: met |"
            ),
            "{out}"
        );
        assert!(out.contains("| session trace (~20 receipts) | missing | missing | missing |"));
        assert!(!out.contains("trailmix-db-clear/redb"), "{out}");

        std::fs::write(dir.path().join(LATENCY_FILE), "{")?;
        let mut out = String::new();
        render(&mut out, Some(&load(dir.path())));
        assert!(out.contains("not valid JSON"));
        render(&mut out, None);
        Ok(())
    }

    #[test]
    fn renders_the_clear_payload_rig_beside_the_default_store() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        let mut results = million();
        results.jobs.insert(
            Job::TenantTime.id().to_string(),
            BTreeMap::from([
                (REDB_RIG.to_string(), latency(85.0, 150.0)),
                (SQLITE_RIG.to_string(), latency(200.0, 400.0)),
                (TRAILMIX_RIG.to_string(), latency(60.0, 300.0)),
                (TRAILMIX_CLEAR_RIG.to_string(), latency(170.0, 200.0)),
            ]),
        );
        save(dir.path(), &results)?;
        let mut out = String::new();
        render(&mut out, Some(&load(dir.path())));
        assert!(
            out.contains(
                "| trailmix-db-clear/redb p50 (p99) | trailmix-db-clear/SQLite p50 (p99) | target |"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "| 0.71× (2.00×) | 0.30× (0.75×) | 2.00× (1.33×) | 0.85× (0.50×) | redb: met; \
                 SQLite: met; trailmix-db-clear: redb: MISSED; SQLite: MISSED |"
            ),
            "{out}"
        );
        Ok(())
    }
}
