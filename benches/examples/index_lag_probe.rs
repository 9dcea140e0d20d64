//! How far the index trails the log under full durable ingest (issue 4: "indexes current
//! within 1 s"):
//!
//! ```text
//! cargo run --release -p trailmix-benches --example index_lag_probe -- [receipts] [threads]
//! ```
//!
//! Pre-builds `receipts` 512-byte receipts (default 300 000), then `threads` caller threads
//! (default 2) append them as fast as the store takes them, each waiting on window k after
//! submitting window k + 1. A sampler reads the durable end and the index watermark every
//! 5 ms. A sample's **lag** is the time from that sample until the first later sample whose
//! watermark covers the sample's durable end: how stale an `Indexed` query could be at that
//! moment. Prints the ingest rate, p50 / p99 / max lag and the most entries ever unindexed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use trailmix_benches::receipts;
use trailmix_benches::rigs::BoxError;
use trailmix_db::receipt::Receipt;
use trailmix_db::{Db, Ticket};

const WINDOW: usize = 1024;
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// `(when, durable end, watermark)`.
type Sample = (Instant, u64, u64);

fn caller(db: &Db, receipts: &[Receipt]) -> Result<(), BoxError> {
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

/// Each sample's lag: until the first sample whose watermark reaches its durable end.
fn lags(samples: &[Sample]) -> Vec<Duration> {
    let mut out = Vec::with_capacity(samples.len());
    let mut j = 0;
    for (i, &(at, durable, _)) in samples.iter().enumerate() {
        j = j.max(i);
        while j < samples.len() && samples[j].2 < durable {
            j += 1;
        }
        if let Some(&(covered_at, _, _)) = samples.get(j) {
            out.push(covered_at - at);
        }
    }
    out.sort();
    out
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(300_000), |a| a.parse())?;
    let threads: usize = args.next().map_or(Ok(2), |a| a.parse())?;
    let pool = receipts::build(0, count, receipts::cores())?;
    let dir = tempfile::tempdir_in(std::env::var_os("TRAILMIX_BENCH_DIR").unwrap_or(".".into()))?;
    let db = Db::open(dir.path().join("store"))?;
    let done = AtomicBool::new(false);
    let start = Instant::now();
    let (samples, ingest) = std::thread::scope(|s| -> Result<_, BoxError> {
        let sampling = s.spawn(|| sampler(&db, &done));
        let per_thread = count.div_ceil(threads.max(1));
        let callers: Vec<_> = pool
            .chunks(per_thread)
            .map(|part| s.spawn(|| caller(&db, part)))
            .collect();
        for c in callers {
            c.join().map_err(|_| "a caller panicked")??;
        }
        let ingest = start.elapsed();
        done.store(true, Ordering::Release);
        let samples = sampling.join().map_err(|_| "the sampler panicked")?;
        Ok((samples, ingest))
    })?;
    let catch_up = start.elapsed().saturating_sub(ingest);
    let lags = lags(&samples);
    let pick = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into a short sorted list"
        )]
        let i = ((lags.len().saturating_sub(1)) as f64 * q).round() as usize;
        lags.get(i).copied().unwrap_or_default()
    };
    let most_behind = samples.iter().map(|&(_, d, w)| d.saturating_sub(w)).max();
    #[allow(clippy::cast_precision_loss, reason = "display")]
    let rate = count as f64 / ingest.as_secs_f64();
    println!(
        "{count} receipts, {threads} threads: durable ingest {:.0} k/s; index lag p50 {:?}, \
         p99 {:?}, max {:?}; most entries unindexed {}; catch-up after the last ack {:?}; \
         {} samples",
        rate / 1e3,
        pick(0.5),
        pick(0.99),
        pick(1.0),
        most_behind.unwrap_or(0),
        catch_up,
        samples.len()
    );
    db.close()?;
    Ok(())
}
