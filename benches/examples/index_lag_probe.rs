//! How far the index trails the log under full durable ingest (issue 4: "indexes current
//! within 1 s"):
//!
//! ```text
//! cargo run --release -p trailmix-benches --example index_lag_probe -- \
//!     [receipts] [threads] [bursts] [pause_ms] [batch] [prepare_threads]
//! ```
//!
//! Pre-builds `receipts` 512-byte receipts (default 300 000), then `threads` caller threads
//! (default 2) append them as fast as the store takes them, each waiting on window k after
//! submitting window k + 1. With `bursts` > 1 (default 1) the receipts go in that many equal
//! bursts with `pause_ms` (default 0) of silence between them: a pause of 1 s or more lets the
//! indexer take an idle event-id merge step (`EVENT_ID_MERGE_IDLE`), which the next burst may
//! have to wait for. A sampler reads the durable end and the index watermark every
//! 5 ms. A sample's **lag** is the time from that sample until the first later sample whose
//! watermark covers the sample's durable end: how stale an `Indexed` query could be at that
//! moment. Prints the ingest rate (pauses excluded), p50 / p99 / max lag and the most entries
//! ever unindexed, over the whole run and for each burst.
//!
//! With `batch` > 0 each caller submits through `Db::append_batch`, `batch` receipts per call,
//! waiting on batch k after submitting batch k + 1; `prepare_threads` (default: the engine's)
//! sets `DbOptions::batch_prepare_threads`, to see what helpers preparing batches take from
//! the indexer. `TRAILMIX_SYNC_PLACEMENT=writer|sync-thread` sets `DbOptions::sync_placement`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use trailmix_benches::receipts;
use trailmix_benches::rigs::BoxError;
use trailmix_db::receipt::Receipt;
use trailmix_db::{Db, DbOptions, Ticket};

const WINDOW: usize = 1024;
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// `(when, durable end, watermark)`.
type Sample = (Instant, u64, u64);

fn caller(db: &Db, receipts: &[Receipt], batch: usize) -> Result<(), BoxError> {
    if batch > 0 {
        return receipts::append_batches(db, receipts, batch);
    }
    let mut pending: Vec<Ticket> = Vec::new();
    for window in receipts.chunks(WINDOW) {
        let next = window
            .iter()
            .map(|r| db.append(r))
            .collect::<Result<Vec<_>, _>>()?;
        for ticket in std::mem::replace(&mut pending, next) {
            ticket.wait()?;
        }
    }
    for ticket in pending {
        ticket.wait()?;
    }
    Ok(())
}

fn sampler(db: &Db, done: &AtomicBool) -> Vec<Sample> {
    let mut samples = Vec::new();
    loop {
        let status = db.index_status();
        samples.push((Instant::now(), status.durable_end.0, status.watermark.0));
        if done.load(Ordering::Acquire) && status.watermark >= status.durable_end {
            return samples;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// Each sample's lag, with the sample's time: until the first sample whose watermark reaches
/// its durable end (samples never covered, at the very end, have none).
fn lags(samples: &[Sample]) -> Vec<(Instant, Duration)> {
    let mut out = Vec::with_capacity(samples.len());
    let mut j = 0;
    for (i, &(at, durable, _)) in samples.iter().enumerate() {
        j = j.max(i);
        while j < samples.len() && samples[j].2 < durable {
            j += 1;
        }
        if let Some(&(covered_at, _, _)) = samples.get(j) {
            out.push((at, covered_at - at));
        }
    }
    out
}

fn pick(lags: &[Duration], q: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short sorted list"
    )]
    let i = ((lags.len().saturating_sub(1)) as f64 * q).round() as usize;
    lags.get(i).copied().unwrap_or_default()
}

fn summary(samples: &[Sample], window: std::ops::Range<Instant>) -> String {
    let mut lags: Vec<Duration> = lags(samples)
        .into_iter()
        .filter(|(at, _)| window.contains(at))
        .map(|(_, lag)| lag)
        .collect();
    lags.sort();
    let most_behind = samples
        .iter()
        .filter(|(at, _, _)| window.contains(at))
        .map(|&(_, d, w)| d.saturating_sub(w))
        .max();
    format!(
        "index lag p50 {:?}, p99 {:?}, max {:?}; most entries unindexed {}",
        pick(&lags, 0.5),
        pick(&lags, 0.99),
        pick(&lags, 1.0),
        most_behind.unwrap_or(0),
    )
}

fn burst(db: &Db, part: &[Receipt], threads: usize, batch: usize) -> Result<(), BoxError> {
    let per_thread = part.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let callers: Vec<_> = part
            .chunks(per_thread)
            .map(|chunk| s.spawn(move || caller(db, chunk, batch)))
            .collect();
        for c in callers {
            c.join().map_err(|_| "a caller panicked")??;
        }
        Ok(())
    })
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(300_000), |a| a.parse())?;
    let threads: usize = args.next().map_or(Ok(2), |a| a.parse())?;
    let bursts: usize = args.next().map_or(Ok(1), |a| a.parse())?;
    let pause = Duration::from_millis(args.next().map_or(Ok(0), |a| a.parse())?);
    let batch: usize = args.next().map_or(Ok(0), |a| a.parse())?;
    let mut options = DbOptions::default();
    if let Some(threads) = args.next() {
        options = options.batch_prepare_threads(threads.parse()?);
    }
    if let Some(placement) = receipts::sync_placement_override()? {
        options = options.sync_placement(placement);
    }
    let pool = receipts::build(0, count, receipts::cores())?;
    let dir = tempfile::tempdir_in(std::env::var_os("TRAILMIX_BENCH_DIR").unwrap_or(".".into()))?;
    let db = Db::open_with(dir.path().join("store"), options)?;
    let done = AtomicBool::new(false);
    let start = Instant::now();
    let (samples, windows) = std::thread::scope(|s| -> Result<_, BoxError> {
        let sampling = s.spawn(|| sampler(&db, &done));
        let mut windows = Vec::new();
        for (i, part) in pool
            .chunks(count.div_ceil(bursts.max(1)).max(1))
            .enumerate()
        {
            if i > 0 {
                std::thread::sleep(pause);
            }
            let began = Instant::now();
            burst(&db, part, threads, batch)?;
            windows.push(began..Instant::now());
        }
        done.store(true, Ordering::Release);
        let samples = sampling.join().map_err(|_| "the sampler panicked")?;
        Ok((samples, windows))
    })?;
    let ingest: Duration = windows.iter().map(|w| w.end - w.start).sum();
    let last_ack = windows.last().map_or(start, |w| w.end);
    let catch_up = samples
        .last()
        .map_or(Duration::ZERO, |&(at, _, _)| at - last_ack);
    #[allow(clippy::cast_precision_loss, reason = "display")]
    let rate = count as f64 / ingest.as_secs_f64();
    let end = samples.last().map_or(last_ack, |&(at, _, _)| at) + SAMPLE_EVERY;
    println!(
        "{count} receipts, {threads} threads, {bursts} burst(s), {pause:?} pauses, batch {batch}: \
         durable ingest {:.0} k/s; {}; catch-up after the last ack {catch_up:?}; {} samples",
        rate / 1e3,
        summary(&samples, start..end),
        samples.len()
    );
    if windows.len() > 1 {
        for (i, w) in windows.iter().enumerate() {
            println!("  burst {}: {}", i + 1, summary(&samples, w.clone()));
        }
    }
    db.close()?;
    Ok(())
}
