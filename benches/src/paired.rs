//! Paired, interleaved measurement of two durable logs, for ratios that survive a noisy disk.
//!
//! Criterion measures one benchmark after the other; on a shared machine the disk's sync
//! latency can change several-fold between the two windows (measured here: the same ceiling
//! job at 186 and 602 MB/s in one run), and the ratio with it. This mode runs the two sides in
//! alternating blocks (A B, then B A, ...) of a fixed duration, computes a ratio per round from
//! adjacent blocks, and reports the median round ratio with its quartiles. Results are saved
//! beside criterion's (`<criterion dir>/trailmix-paired.json`) for `bench-report`.
//!
//! Its own bias: work a side leaves running in the background (the WAL's next segment being
//! zero-filled ahead) partly lands in the other side's block. Blocks are long (0.4 s) next to
//! that (~50-100 ms per 64 MiB segment), and `bench-report` judges targets by the lower of the
//! paired and the criterion ratio.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::data::Payloads;
use crate::rigs::{BoxError, DurableLog};

/// Name of the results file inside the criterion directory.
pub const RESULTS_FILE: &str = "trailmix-paired.json";

/// One paired job's result.
#[derive(Debug, Clone, PartialEq)]
pub struct PairedResult {
    /// Job id (the criterion group and batch, e.g. `wal_append_512B/batch_1024`).
    pub job: String,
    /// Records per second of side A over all its blocks.
    pub subject_per_second: f64,
    /// Records per second of side B over all its blocks.
    pub baseline_per_second: f64,
    /// Median of the per-round ratios A / B.
    pub ratio_median: f64,
    /// First and third quartile of the per-round ratios.
    pub ratio_quartiles: (f64, f64),
    /// Number of rounds (each one block of A and one of B).
    pub rounds: usize,
}

/// How long to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Duration of one block of one side.
    pub block: Duration,
    /// Number of rounds (each one block of each side).
    pub rounds: usize,
}

impl Plan {
    /// The plan for a full run (12 rounds of 0.4 s blocks, ~10 s per job).
    pub const FULL: Plan = Plan {
        block: Duration::from_millis(400),
        rounds: 12,
    };
    /// The plan for a `--quick` smoke run (4 rounds of 0.15 s blocks).
    pub const QUICK: Plan = Plan {
        block: Duration::from_millis(150),
        rounds: 4,
    };

    /// `FULL`, or `QUICK` when the benchmark's arguments include `--quick`.
    #[must_use]
    pub fn from_args() -> Plan {
        if std::env::args().any(|a| a == "--quick") {
            Plan::QUICK
        } else {
            Plan::FULL
        }
    }
}

/// Whether paired jobs should run in this invocation: only under `cargo bench` (criterion's
/// `--bench` flag; `cargo test` runs benchmarks without it), not when `TRAILMIX_PAIRED=0`, and
/// only for `job` ids that contain every positional filter argument given.
#[must_use]
pub fn wanted(job: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench")
        || std::env::var_os("TRAILMIX_PAIRED") == Some("0".into())
    {
        return false;
    }
    filters_match(job)
}

/// As [`wanted`], and only when a positional filter is given: for jobs a plain `cargo bench`
/// (and CI's timed `--quick` run, which gives none) leaves out, run by naming them.
#[must_use]
pub fn wanted_by_name(job: &str) -> bool {
    !positional_filters().is_empty() && wanted(job)
}

/// Whether `job` contains every positional filter argument of this invocation (criterion's
/// options and their values are skipped), as plain substrings: `true` when none is given.
#[must_use]
pub fn filters_match(job: &str) -> bool {
    positional_filters()
        .iter()
        .all(|f| job.contains(f.as_str()))
}

/// The positional arguments of this invocation (criterion's filters), without its options and
/// their values.
fn positional_filters() -> Vec<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filters = Vec::new();
    let mut skip_value = false;
    for arg in &args {
        if skip_value {
            skip_value = false;
        } else if arg.starts_with("--") {
            // Criterion options that take a value.
            skip_value = !arg.contains('=')
                && [
                    "--warm-up-time",
                    "--measurement-time",
                    "--sample-size",
                    "--save-baseline",
                    "--baseline",
                    "--baseline-lenient",
                    "--profile-time",
                    "--significance-level",
                    "--noise-threshold",
                    "--confidence-level",
                    "--nresamples",
                    "--color",
                    "--output-format",
                    "--format",
                    "--plotting-backend",
                    "--load-baseline",
                ]
                .contains(&arg.as_str());
        } else if !arg.starts_with('-') {
            filters.push(arg.clone());
        }
    }
    filters
}

/// Records per second of `batches` batches of `batch` records in `elapsed`.
#[allow(clippy::cast_precision_loss, reason = "rates for display")]
fn rate(batches: u64, batch: usize, elapsed: Duration) -> f64 {
    (batches * batch as u64) as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Runs batches on `log` for about `block` (recycling full logs untimed); returns
/// (batches, timed duration).
fn block_of(
    log: &mut dyn DurableLog,
    payloads: &Payloads,
    batch: usize,
    cursor: &mut usize,
    block: Duration,
) -> Result<(u64, Duration), BoxError> {
    let mut timed = Duration::ZERO;
    let mut batches = 0;
    while timed < block {
        log.recycle_if_full()?;
        let start = Instant::now();
        log.append_batch(payloads, *cursor, batch)?;
        timed += start.elapsed();
        batches += 1;
        *cursor = (*cursor + batch) % payloads.len();
    }
    Ok((batches, timed))
}

/// The `q` quantile of `sorted` (nearest rank, rounded); NaN when empty.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short, non-empty slice"
    )]
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Measures `subject` (A) against `baseline` (B) in alternating blocks on the same payloads.
///
/// # Errors
/// Errors of either log.
pub fn run(
    job: &str,
    subject: &mut dyn DurableLog,
    baseline: &mut dyn DurableLog,
    payloads: &Payloads,
    batch: usize,
    plan: Plan,
) -> Result<PairedResult, BoxError> {
    let (mut cursor_a, mut cursor_b) = (0, 0);
    let (mut batches_a, mut batches_b) = (0, 0);
    let (mut time_a, mut time_b) = (Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::with_capacity(plan.rounds);
    for round in 0..plan.rounds {
        let mut side_a =
            |cursor: &mut usize| block_of(subject, payloads, batch, cursor, plan.block);
        let ((na, ta), (nb, tb)) = if round % 2 == 0 {
            let a = side_a(&mut cursor_a)?;
            (
                a,
                block_of(baseline, payloads, batch, &mut cursor_b, plan.block)?,
            )
        } else {
            let b = block_of(baseline, payloads, batch, &mut cursor_b, plan.block)?;
            (side_a(&mut cursor_a)?, b)
        };
        ratios.push(rate(na, batch, ta) / rate(nb, batch, tb));
        batches_a += na;
        batches_b += nb;
        time_a += ta;
        time_b += tb;
    }
    ratios.sort_by(f64::total_cmp);
    Ok(PairedResult {
        job: job.to_string(),
        subject_per_second: rate(batches_a, batch, time_a),
        baseline_per_second: rate(batches_b, batch, time_b),
        ratio_median: quantile(&ratios, 0.5),
        ratio_quartiles: (quantile(&ratios, 0.25), quantile(&ratios, 0.75)),
        rounds: ratios.len(),
    })
}

/// Adds (or replaces) `result` in the results file inside `criterion_dir`.
///
/// # Errors
/// I/O errors; an unreadable existing file is replaced.
pub fn save(criterion_dir: &Path, result: &PairedResult) -> Result<(), BoxError> {
    std::fs::create_dir_all(criterion_dir)?;
    let path = criterion_dir.join(RESULTS_FILE);
    let mut all = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    all.insert(
        result.job.clone(),
        json!({
            "subject_per_second": result.subject_per_second,
            "baseline_per_second": result.baseline_per_second,
            "ratio_median": result.ratio_median,
            "ratio_q1": result.ratio_quartiles.0,
            "ratio_q3": result.ratio_quartiles.1,
            "rounds": result.rounds,
        }),
    );
    std::fs::write(&path, serde_json::to_string_pretty(&Value::Object(all))?)?;
    Ok(())
}

/// Reads the results file inside `criterion_dir`: results by job, or why it could not.
///
/// # Errors
/// A message when the file is missing or malformed.
pub fn load(criterion_dir: &Path) -> Result<Vec<PairedResult>, String> {
    let path = criterion_dir.join(RESULTS_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("no paired results at {} ({e})", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    let object = value
        .as_object()
        .ok_or_else(|| format!("{} is not a JSON object", path.display()))?;
    let mut out = Vec::new();
    for (job, entry) in object {
        let number = |key: &str| entry.get(key).and_then(Value::as_f64);
        let (Some(a), Some(b), Some(median), Some(q1), Some(q3)) = (
            number("subject_per_second"),
            number("baseline_per_second"),
            number("ratio_median"),
            number("ratio_q1"),
            number("ratio_q3"),
        ) else {
            return Err(format!("{}: entry {job} is incomplete", path.display()));
        };
        out.push(PairedResult {
            job: job.clone(),
            subject_per_second: a,
            baseline_per_second: b,
            ratio_median: median,
            ratio_quartiles: (q1, q3),
            rounds: entry
                .get("rounds")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rigs::PlainAppend;

    #[test]
    fn paired_run_saves_and_loads() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        let payloads = Payloads::new(16, 512, 5);
        let mut a = PlainAppend::new(&dir.path().join("a"), u64::MAX)?;
        let mut b = PlainAppend::new(&dir.path().join("b"), u64::MAX)?;
        let plan = Plan {
            block: Duration::from_millis(5),
            rounds: 3,
        };
        let result = run("job/x", &mut a, &mut b, &payloads, 4, plan)?;
        assert_eq!(result.rounds, 3);
        assert!(result.ratio_median > 0.0 && result.subject_per_second > 0.0);
        let criterion = dir.path().join("criterion");
        save(&criterion, &result)?;
        save(
            &criterion,
            &PairedResult {
                job: "job/y".into(),
                ..result.clone()
            },
        )?;
        let loaded = load(&criterion)?;
        assert_eq!(loaded.len(), 2);
        // serde_json's default float parsing may differ in the last bit.
        assert_eq!(loaded[0].job, result.job);
        assert_eq!(loaded[0].rounds, result.rounds);
        assert!((loaded[0].ratio_median - result.ratio_median).abs() < 1e-12);
        assert!((loaded[0].subject_per_second - result.subject_per_second).abs() < 1e-9);
        assert!(load(&dir.path().join("nowhere")).is_err());
        Ok(())
    }
}
