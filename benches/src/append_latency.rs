//! Append latency at half of peak throughput (issue 3's benchmark list): how long a durable
//! `Db::append` takes from the moment it was due until its ticket reports it durable, when
//! receipts arrive at a steady rate the store can sustain.
//!
//! The measurement, run by `benches/engine_ingest.rs` after its throughput jobs:
//!
//! 1. **Peak**: one caller appends the pool in windows of 1024 tickets (the throughput job's
//!    shape) into a fresh store; receipts per second until the last is durable. The best of
//!    two passes.
//! 2. **Paced passes**: an open-loop schedule at half that rate. Receipt *i* is due at
//!    `start + i / rate`; the submitting thread sleeps until shortly before each due time and
//!    never waits for a ticket. A second thread waits on the tickets in order (they complete
//!    in order, one group commit at a time) and records, per receipt, the time from
//!    `max(due, submitted)` to the moment `wait` returned. Measuring from the due time when
//!    the submitter ran late keeps a stall (a full ring, a slow group commit) in the figures
//!    instead of hiding it (coordinated omission); measuring from the submission when it ran
//!    early keeps the submitter's own early start out.
//! 3. For scale, the `fdatasync` of a 4 KiB append to a plain file, timed alone in the same
//!    directory just before.
//!
//! Each pass uses a fresh store (event ids must be unique per store), opened `SETTLE` (2 s) before
//! the pass starts; store creation is not timed.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use trailmix_db::receipt::Receipt;
use trailmix_db::{Db, DbOptions, Ticket};

use crate::paired::quantile;
use crate::rigs::BoxError;
use crate::store_report::{count, header, quick_note, read_json, time, write_json};

/// Results file, inside the criterion directory.
pub const LATENCY_FILE: &str = "trailmix-append-latency.json";
/// Tickets the peak pass submits before waiting on the previous window.
const PEAK_WINDOW: usize = 1024;
/// The submitter sleeps only when the next receipt is due later than this; nearer due times
/// are met by submitting at once (a sleep this short oversleeps by about as much).
const SLEEP_THRESHOLD: Duration = Duration::from_micros(100);

/// How long a paced pass waits after opening its fresh store. Without the wait the first
/// second's appends stalled (measured: p99 71-74 ms without it, 11-14 ms with it); the likely
/// cause, not isolated, is the new store's segment zero-fill (the first 64 MiB segment and the
/// spare one prepared in the background). The figures are of a settled store; the start-up
/// stall is reported in docs/performance.md.
const SETTLE: Duration = Duration::from_secs(2);

/// Latency quantiles of one job, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Median.
    pub p50_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// 99.9th percentile.
    pub p999_ns: f64,
    /// Slowest.
    pub max_ns: f64,
    /// Operations measured.
    pub samples: usize,
}

impl Quantiles {
    /// Quantiles of `durations` (sorted in place); `None` when empty.
    #[must_use]
    pub fn from_durations(durations: &mut [Duration]) -> Option<Quantiles> {
        durations.sort_unstable();
        let ns: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1e9).collect();
        Some(Quantiles {
            p50_ns: quantile(&ns, 0.5),
            p90_ns: quantile(&ns, 0.9),
            p99_ns: quantile(&ns, 0.99),
            p999_ns: quantile(&ns, 0.999),
            max_ns: *ns.last()?,
            samples: ns.len(),
        })
    }
}

/// What the measurement saves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyResults {
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// Payload bytes of each receipt.
    pub payload_bytes: usize,
    /// Peak durable ingest from one caller, receipts per second.
    pub peak_per_second: f64,
    /// The paced schedule's rate (half the peak).
    pub target_per_second: f64,
    /// The rate the paced passes achieved (receipts over the time until the last was durable).
    pub achieved_per_second: f64,
    /// Paced passes run.
    pub passes: usize,
    /// Append latency over all paced passes.
    pub append: Quantiles,
    /// `fdatasync` of a 4 KiB append to a plain file, for scale.
    pub fdatasync_4k: Quantiles,
}

/// Measures as the module documentation says, with stores under `scratch`.
///
/// # Errors
/// Store, I/O or ticket errors.
pub fn measure(
    receipts: &[Receipt],
    payload_bytes: usize,
    passes: usize,
    quick: bool,
    scratch: &Path,
) -> Result<LatencyResults, BoxError> {
    std::fs::create_dir_all(scratch)?;
    let fdatasync_4k = fdatasync_quantiles(scratch, if quick { 100 } else { 500 })?;
    let mut generation = 0_u32;
    let mut fresh_store = || -> Result<Db, BoxError> {
        generation += 1;
        let dir = scratch.join(format!("g{generation}"));
        if let Some(previous) = generation
            .checked_sub(1)
            .map(|g| scratch.join(format!("g{g}")))
            .filter(|p| p.exists())
        {
            std::fs::remove_dir_all(previous)?;
        }
        Ok(Db::open_with(dir.join("store"), DbOptions::default())?)
    };
    let mut peak_per_second = 0.0_f64;
    for _ in 0..2 {
        let db = fresh_store()?;
        peak_per_second = peak_per_second.max(peak_pass(&db, receipts)?);
        db.close()?;
    }
    let target_per_second = peak_per_second / 2.0;
    let mut latencies = Vec::with_capacity(receipts.len() * passes);
    let mut paced_time = Duration::ZERO;
    for _ in 0..passes {
        let db = fresh_store()?;
        std::thread::sleep(SETTLE);
        let (mut pass, took) = paced_pass(&db, receipts, target_per_second)?;
        latencies.append(&mut pass);
        paced_time += took;
        db.close()?;
    }
    let _ = std::fs::remove_dir_all(scratch);
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let achieved_per_second = (receipts.len() * passes) as f64 / paced_time.as_secs_f64().max(1e-9);
    Ok(LatencyResults {
        quick,
        payload_bytes,
        peak_per_second,
        target_per_second,
        achieved_per_second,
        passes,
        append: Quantiles::from_durations(&mut latencies).ok_or("no receipts to pace")?,
        fdatasync_4k,
    })
}

/// Closed-loop ingest of `receipts` by one caller: receipts per second until all are durable.
fn peak_pass(db: &Db, receipts: &[Receipt]) -> Result<f64, BoxError> {
    let started = Instant::now();
    let mut pending: Option<Vec<Ticket>> = None;
    for window in receipts.chunks(PEAK_WINDOW) {
        let tickets = window
            .iter()
            .map(|r| db.append(r))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(previous) = pending.replace(tickets) {
            previous.into_iter().try_for_each(|t| t.wait().map(drop))?;
        }
    }
    for ticket in pending.unwrap_or_default() {
        ticket.wait()?;
    }
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    Ok(receipts.len() as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// One open-loop pass at `per_second`: each receipt's latency, and the time from the first due
/// time until the last receipt was durable.
fn paced_pass(
    db: &Db,
    receipts: &[Receipt],
    per_second: f64,
) -> Result<(Vec<Duration>, Duration), BoxError> {
    let (sender, tickets) = channel::<(Instant, Ticket)>();
    std::thread::scope(|s| {
        let waiter = s.spawn(move || -> Result<Vec<Duration>, BoxError> {
            let mut latencies = Vec::new();
            for (from, ticket) in tickets {
                ticket.wait()?;
                latencies.push(from.elapsed());
            }
            Ok(latencies)
        });
        let start = Instant::now();
        for (i, receipt) in receipts.iter().enumerate() {
            #[allow(clippy::cast_precision_loss, reason = "a schedule")]
            let due = start + Duration::from_secs_f64(i as f64 / per_second);
            let now = Instant::now();
            if due > now + SLEEP_THRESHOLD {
                std::thread::sleep(
                    due.saturating_duration_since(now)
                        .saturating_sub(SLEEP_THRESHOLD / 2),
                );
            }
            let from = due.max(Instant::now());
            let ticket = db.append(receipt)?;
            sender.send((from, ticket))?;
        }
        drop(sender);
        let latencies = waiter.join().map_err(|_| "ticket waiter panicked")??;
        Ok((latencies, start.elapsed()))
    })
}

/// Quantiles of `rounds` 4 KiB appends to a plain file, each followed by `fdatasync`.
fn fdatasync_quantiles(dir: &Path, rounds: usize) -> Result<Quantiles, BoxError> {
    let path = dir.join("fdatasync-probe");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let block = [0x5a_u8; 4096];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        file.write_all(&block)?;
        let started = Instant::now();
        file.sync_data()?;
        times.push(started.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Quantiles::from_durations(&mut times).ok_or_else(|| "no fdatasync rounds".into())
}

/// Writes `results` to [`LATENCY_FILE`] in `criterion_dir`.
///
/// # Errors
/// I/O errors.
pub fn save(criterion_dir: &Path, results: &LatencyResults) -> Result<(), BoxError> {
    write_json(criterion_dir, LATENCY_FILE, results)
}

/// Reads [`LATENCY_FILE`].
///
/// # Errors
/// A message when it is missing or unreadable.
pub fn load(criterion_dir: &Path) -> Result<LatencyResults, String> {
    read_json(criterion_dir, LATENCY_FILE)
}

/// Appends the latency table to `out`.
pub fn render(out: &mut String, loaded: &Result<LatencyResults, String>) {
    let _ = writeln!(
        out,
        "\nAppend latency at half of peak throughput (benches/engine_ingest.rs, \
         src/append_latency.rs): one caller, durable tickets, receipts due at a steady rate of \
         half the peak measured just before; latency = from when a receipt was due (or \
         submitted, if later) until its ticket reported it durable:\n"
    );
    let results = match loaded {
        Ok(r) => r,
        Err(err) => {
            let _ = writeln!(out, "Append latency results missing: {err}");
            return;
        }
    };
    let _ = writeln!(
        out,
        "{} B payloads; peak {}, paced at {}, achieved {} over {} passes{}.\n",
        results.payload_bytes,
        rate(results.peak_per_second),
        rate(results.target_per_second),
        rate(results.achieved_per_second),
        results.passes,
        quick_note(results.quick)
    );
    header(
        out,
        &["what", "p50", "p90", "p99", "p99.9", "max", "samples"],
    );
    for (label, q) in [
        ("durable append", &results.append),
        (
            "fdatasync of a 4 KiB append (for scale)",
            &results.fdatasync_4k,
        ),
    ] {
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            time(q.p50_ns),
            time(q.p90_ns),
            time(q.p99_ns),
            time(q.p999_ns),
            time(q.max_ns),
            q.samples
        );
    }
}

fn rate(per_second: f64) -> String {
    format!("{} receipts/s", count(per_second).trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantiles(p50_us: f64) -> Quantiles {
        Quantiles {
            p50_ns: p50_us * 1e3,
            p90_ns: p50_us * 2e3,
            p99_ns: p50_us * 3e3,
            p999_ns: p50_us * 4e3,
            max_ns: p50_us * 5e3,
            samples: 1000,
        }
    }

    fn results() -> LatencyResults {
        LatencyResults {
            quick: true,
            payload_bytes: 512,
            peak_per_second: 200_000.0,
            target_per_second: 100_000.0,
            achieved_per_second: 99_000.0,
            passes: 3,
            append: quantiles(500.0),
            fdatasync_4k: quantiles(130.0),
        }
    }

    #[test]
    fn quantiles_come_from_the_sorted_durations() {
        let mut durations: Vec<Duration> = (1..=1000).rev().map(Duration::from_micros).collect();
        let q = Quantiles::from_durations(&mut durations).expect("quantiles");
        assert_eq!(q.samples, 1000);
        assert!((q.max_ns - 1e6).abs() < 1.0, "{q:?}");
        assert!((q.p50_ns - 500e3).abs() <= 1.5e3, "{q:?}");
        assert!((q.p99_ns - 990e3).abs() <= 1.5e3, "{q:?}");
        assert!(Quantiles::from_durations(&mut []).is_none());
    }

    #[test]
    fn saves_loads_and_renders() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        assert!(load(dir.path()).is_err_and(|e| e.contains("no results")));
        save(dir.path(), &results())?;
        let loaded = load(dir.path());
        assert_eq!(loaded.as_ref().ok(), Some(&results()));
        let mut out = String::new();
        render(&mut out, &loaded);
        assert!(
            out.contains(
                "peak 200.0 k receipts/s, paced at 100.0 k receipts/s, achieved 99.0 k \
                 receipts/s over 3 passes (quick run: rough figures)."
            ),
            "{out}"
        );
        assert!(
            out.contains("| durable append | 500 µs | 1.0 ms | 1.5 ms | 2.0 ms | 2.5 ms | 1000 |"),
            "{out}"
        );
        let mut out = String::new();
        render(&mut out, &Err("gone".into()));
        assert!(out.contains("Append latency results missing: gone"));
        Ok(())
    }

    #[test]
    fn a_paced_pass_keeps_its_rate_and_measures_every_receipt() -> Result<(), BoxError> {
        let receipts = crate::receipts::build(0, 400, 1)?;
        let dir = tempfile::tempdir()?;
        let results = measure(&receipts, 512, 1, true, &dir.path().join("latency"))?;
        assert_eq!(results.append.samples, 400);
        assert_eq!(results.fdatasync_4k.samples, 100);
        assert!(results.target_per_second > 0.0);
        // Open loop: the pass cannot finish before its schedule does.
        assert!(
            results.achieved_per_second <= results.target_per_second * 1.05,
            "{results:?}"
        );
        assert!(results.append.p50_ns <= results.append.max_ns);
        Ok(())
    }
}
