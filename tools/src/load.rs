//! `trailmix-db load DIR`: a load generator. Appends the demo's synthetic receipts (the
//! tool's `workload` module) from several threads at a target rate for a while, and reports the
//! throughput, the latency of each append from the call to its acknowledgement (durable by
//! default), and how far the index trailed the log.
//!
//! Open loop: each thread has a schedule (receipt `i` is due at `start + i / per-thread
//! rate`); a thread that falls behind catches up without sleeping, so a slow store shows as
//! latency and as a throughput below the target, never as a quietly lowered rate. Receipts are
//! built before their due time and outside the measured latency. Every thread keeps at most
//! [`IN_FLIGHT_PER_THREAD`] appends waiting for their acknowledgement: a companion thread waits
//! for them in order and records each latency in a fixed-size histogram, so memory stays
//! bounded however long the run.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use serde::Serialize;
use trailmix_db::{Db, DbOptions, Durability, Ticket};

use crate::workload::{Shape, Workload, Written};
use crate::{Paint, ToolError, ToolResult, human_bytes, human_count, human_rate_of, paint};

/// Appends one thread keeps waiting for their acknowledgement at most.
pub const IN_FLIGHT_PER_THREAD: usize = 8_192;
/// Longest `load` waits for the index to cover the log after the last acknowledgement.
pub const INDEX_WAIT_MAX: Duration = Duration::from_secs(30);

/// `load` settings.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Appending threads.
    pub threads: usize,
    /// Target receipts per second over all threads; 0 for as fast as possible.
    pub rate: f64,
    /// How long to append.
    pub duration: Duration,
    /// Target payload size of each receipt, in bytes.
    pub payload_bytes: usize,
    /// Tenants the sessions are spread over.
    pub tenants: usize,
    /// When an append is acknowledged.
    pub durability: Durability,
    /// Seed of the synthetic workload.
    pub seed: u64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The largest (exact).
    pub max: f64,
    /// The mean (exact).
    pub mean: f64,
}

/// The index at the end of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IndexLag {
    /// Durable entries the index did not cover when every append was acknowledged
    /// (measured within about 10 ms of the last acknowledgement).
    pub lag_entries_at_end: u64,
    /// The largest lag seen while the load ran (sampled every 100 ms).
    pub max_lag_entries_seen: u64,
    /// How long after that measurement the index covered the whole log, in milliseconds (0
    /// when it already did; `None`: not within [`INDEX_WAIT_MAX`], or the wait was
    /// interrupted).
    pub caught_up_ms: Option<f64>,
}

/// What `load` measured; `--json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    /// The data directory.
    pub store: String,
    /// Whether this run created the store.
    pub created: bool,
    /// `durable` (acknowledged after the group commit's sync) or `written` (after the copy
    /// into the log, synced within the flush interval).
    pub durability: &'static str,
    /// Appending threads.
    pub threads: usize,
    /// The target rate in receipts per second (`None`: as fast as possible).
    pub target_rate: Option<f64>,
    /// The requested duration in seconds.
    pub seconds: f64,
    /// Tenants.
    pub tenants: usize,
    /// Target payload size in bytes.
    pub payload_bytes_target: usize,
    /// Receipts appended and acknowledged.
    pub receipts: u64,
    /// Appends refused because the ring buffer stayed full (nothing was appended for them).
    pub backpressure_refusals: u64,
    /// Seconds from the first append to the last acknowledgement.
    pub elapsed_seconds: f64,
    /// Acknowledged receipts per second.
    pub receipts_per_second: f64,
    /// Bytes of receipt headers and payloads per second.
    pub bytes_per_second: f64,
    /// The mean payload size in bytes.
    pub payload_bytes_mean: f64,
    /// From the append call to its acknowledgement, in microseconds.
    pub latency_us: Latency,
    /// Share of the appending threads' time spent building and validating receipts: near 1,
    /// the generator (not the store) limits a run at full speed; add threads.
    pub generator_busy: f64,
    /// The index.
    pub index: IndexLag,
    /// Stopped early by SIGINT/SIGTERM.
    pub interrupted: bool,
    /// One past the last durable sequence number at the end.
    pub durable_end: u64,
}

/// Sub-buckets per power of two: values are kept within 1/64 (1.6 %).
const SUB_BITS: u32 = 6;
const SUB_BUCKETS: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB_BUCKETS;

/// A histogram of nanosecond values in fixed memory (log-linear buckets, 1.6 % wide), with
/// the exact count, sum and maximum.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn bucket(value: u64) -> usize {
        if value < SUB_BUCKETS as u64 {
            return usize::try_from(value).unwrap_or(0);
        }
        let exponent = value.ilog2(); // >= SUB_BITS
        let shift = exponent - SUB_BITS;
        let sub = (value >> shift) & (SUB_BUCKETS as u64 - 1);
        ((shift as usize + 1) << SUB_BITS) + usize::try_from(sub).unwrap_or(0)
    }

    /// The largest value of bucket `index`.
    fn bucket_high(index: usize) -> u64 {
        if index < SUB_BUCKETS {
            return index as u64;
        }
        let shift = (index >> SUB_BITS) - 1;
        let sub = (index & (SUB_BUCKETS - 1)) as u64;
        let low = (SUB_BUCKETS as u64 + sub) << shift;
        low.saturating_add((1u64 << shift) - 1)
    }

    /// Records one value.
    pub fn record(&mut self, value: u64) {
        self.counts[Self::bucket(value)] += 1;
        self.total += 1;
        self.sum += u128::from(value);
        self.max = self.max.max(value);
    }

    /// Adds another histogram's values.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// Values recorded.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The value at quantile `q` (0..=1): the top of its bucket, never above the maximum.
    #[must_use]
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "a rank between 1 and the count"
        )]
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::bucket_high(index).min(self.max);
            }
        }
        self.max
    }

    /// The largest value.
    #[must_use]
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean.
    #[must_use]
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss, reason = "a mean for people")]
        let mean = self.sum as f64 / self.total as f64;
        mean
    }
}

/// What one appending thread and its waiter did.
#[derive(Debug)]
struct ThreadResult {
    written: Written,
    latency: Histogram,
    backpressure: u64,
    last_ack: Option<Instant>,
}

/// Live counters for the progress line and the index sampler.
struct Shared {
    acked: AtomicU64,
    stop: AtomicBool,
}

/// The per-thread schedule: receipt `i` is due at `start + i * interval`.
fn due(start: Instant, interval: Option<Duration>, i: u64) -> Option<Instant> {
    let interval = interval?;
    let offset = interval.checked_mul(u32::try_from(i).ok()?).or_else(|| {
        #[allow(clippy::cast_precision_loss, reason = "far-off due times")]
        let secs = interval.as_secs_f64() * i as f64;
        Duration::try_from_secs_f64(secs).ok()
    })?;
    start.checked_add(offset)
}

/// Sleeps until `at` unless it is close (short sleeps overshoot; the loop then catches up).
fn sleep_until(at: Instant, stop: &AtomicBool) {
    loop {
        let now = Instant::now();
        if now + Duration::from_micros(100) >= at || stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep((at - now).min(Duration::from_millis(50)));
    }
}

/// One appending thread: builds, waits for the due time, appends, hands the ticket to its
/// waiter. Returns what it wrote.
fn append_thread(
    db: &Db,
    mut workload: Workload,
    schedule: (Instant, Instant, Option<Duration>),
    tickets: &SyncSender<(Ticket, Instant)>,
    shared: &Shared,
) -> ToolResult<(Written, u64)> {
    let (start, deadline, interval) = schedule;
    let mut written = Written::default();
    let mut backpressure = 0;
    let began = Instant::now();
    for i in 0u64.. {
        if shared.stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            break;
        }
        let building = Instant::now();
        let (receipt, counts) = workload.next()?;
        written.build_time += building.elapsed();
        if let Some(at) = due(start, interval, i) {
            if at >= deadline {
                break;
            }
            sleep_until(at, &shared.stop);
        }
        let appended = Instant::now();
        match db.append(&receipt) {
            Ok(ticket) => {
                written.add(&counts);
                if tickets.send((ticket, appended)).is_err() {
                    break;
                }
            }
            Err(trailmix_db::Error::Backpressure { .. }) => backpressure += 1,
            Err(err) => return Err(ToolError::new(format!("append failed: {err}"))),
        }
    }
    written.thread_time = began.elapsed();
    Ok((written, backpressure))
}

/// The waiter of one appending thread: waits for each ticket in order and records its latency.
fn wait_thread(
    tickets: &Receiver<(Ticket, Instant)>,
    shared: &Shared,
) -> ToolResult<(Histogram, Option<Instant>)> {
    let mut latency = Histogram::default();
    let mut last_ack = None;
    for (ticket, appended) in tickets {
        ticket
            .wait()
            .map_err(|e| ToolError::new(format!("append failed: {e}")))?;
        let now = Instant::now();
        latency.record(u64::try_from((now - appended).as_nanos()).unwrap_or(u64::MAX));
        last_ack = Some(now);
        shared.acked.fetch_add(1, Ordering::Relaxed);
    }
    Ok((latency, last_ack))
}

fn run_threads(
    db: &Db,
    run: &str,
    options: &LoadOptions,
    shared: &Shared,
    start: Instant,
) -> ToolResult<(Vec<ThreadResult>, u64)> {
    let threads = options.threads.max(1);
    let deadline = start + options.duration;
    #[allow(clippy::cast_precision_loss, reason = "thread counts")]
    let interval = (options.rate > 0.0)
        .then(|| Duration::try_from_secs_f64(threads as f64 / options.rate).ok())
        .flatten();
    let shape = Shape {
        tenants: options.tenants,
        payload_bytes: Some(options.payload_bytes),
    };
    let show_progress = std::io::stderr().is_terminal();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let seed = options.seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let workload = Workload::new(run, t, seed, &shape);
                let (to_waiter, from_appender) = sync_channel(IN_FLIGHT_PER_THREAD);
                let appender = scope.spawn(move || {
                    let schedule = (start, deadline, interval);
                    let result = append_thread(db, workload, schedule, &to_waiter, shared);
                    if result.is_err() {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                    result
                });
                let waiter = scope.spawn(move || wait_thread(&from_appender, shared));
                (appender, waiter)
            })
            .collect();
        let max_lag = watch(db, options, shared, start, show_progress, || {
            workers
                .iter()
                .all(|(a, w)| a.is_finished() && w.is_finished())
        });
        let mut results = Vec::with_capacity(threads);
        let mut first_error = None;
        for (appender, waiter) in workers {
            let appended = appender
                .join()
                .unwrap_or_else(|_| Err(ToolError::new("an appending thread panicked")));
            let waited = waiter
                .join()
                .unwrap_or_else(|_| Err(ToolError::new("a waiting thread panicked")));
            match (appended, waited) {
                (Ok((written, backpressure)), Ok((latency, last_ack))) => {
                    results.push(ThreadResult {
                        written,
                        latency,
                        backpressure,
                        last_ack,
                    });
                }
                (Err(err), _) | (_, Err(err)) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok((results, max_lag)), Err)
    })
}

/// Shows progress on stderr (on a terminal) and samples the index lag until `done`; returns
/// the largest lag seen.
fn watch(
    db: &Db,
    options: &LoadOptions,
    shared: &Shared,
    start: Instant,
    show_progress: bool,
    done: impl Fn() -> bool,
) -> u64 {
    let mut max_lag = 0;
    let mut last = (Instant::now(), 0u64);
    let mut sampled = Instant::now();
    while !done() {
        // Short naps, so that the end of the run is seen within 10 ms of the last ack.
        std::thread::sleep(Duration::from_millis(10));
        if sampled.elapsed() < Duration::from_millis(100) {
            continue;
        }
        sampled = Instant::now();
        max_lag = max_lag.max(db.index_status().lag_entries());
        if show_progress {
            let acked = shared.acked.load(Ordering::Relaxed);
            let now = Instant::now();
            #[allow(clippy::cast_precision_loss, reason = "a rate for people")]
            let rate = (acked - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
            last = (now, acked);
            let elapsed = start.elapsed().min(options.duration).as_secs_f64();
            eprint!(
                "\r  load        {elapsed:5.1} / {:.1} s   {} acknowledged   {:>16}   ",
                options.duration.as_secs_f64(),
                human_count(acked),
                human_rate_of(rate, "receipts")
            );
            let _ = std::io::stderr().flush();
        }
    }
    if show_progress {
        eprint!("\r{:90}\r", "");
    }
    max_lag
}

/// Waits for the index to cover the durable log; returns how long that took.
/// `None` after [`INDEX_WAIT_MAX`], or at once when `stop` turns true.
fn index_catch_up(db: &Db, since: Instant, stop: &AtomicBool) -> Option<f64> {
    let target = db.durable_end();
    loop {
        if db.index_status().watermark >= target {
            return Some(since.elapsed().as_secs_f64() * 1e3);
        }
        if since.elapsed() >= INDEX_WAIT_MAX || stop.load(Ordering::Relaxed) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn micros(ns: u64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "latencies for people")]
    let us = ns as f64 / 1e3;
    us
}

fn per_second(count: u64, secs: f64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "rates for people")]
    let count = count as f64;
    count / secs.max(1e-9)
}

/// Runs the load generator against the store in `data_dir` (created if missing) until the
/// duration is over or `stop` turns true, then waits for every append in flight, measures the
/// index's catch-up and closes the store.
///
/// # Errors
/// [`ToolError`] when the store cannot be opened (locked by another writer, damaged), the
/// options are out of range, or an append fails with anything but backpressure.
pub fn run(data_dir: &Path, options: &LoadOptions, stop: &AtomicBool) -> ToolResult<LoadReport> {
    if !(options.rate >= 0.0 && options.rate.is_finite()) {
        return Err(ToolError::new(
            "--rate must be 0 (as fast as possible) or a positive number",
        ));
    }
    if options.duration.is_zero() {
        return Err(ToolError::new("--seconds must be above 0"));
    }
    let max_payload = trailmix_db::receipt::MAX_PAYLOAD_BYTES;
    if options.payload_bytes > max_payload {
        return Err(ToolError::new(format!(
            "--payload-bytes {} is above the largest payload, {max_payload} bytes",
            options.payload_bytes
        )));
    }
    let created = !crate::wal_dir(data_dir).is_dir();
    let db = Db::open_with(
        data_dir,
        DbOptions::default().durability(options.durability),
    )
    .map_err(|e| ToolError::store(data_dir, &e))?;
    let run = format!("load{}", db.durable_end().0);
    let shared = Shared {
        acked: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    let start = Instant::now();
    let outcome = std::thread::scope(|scope| {
        let forward = scope.spawn(|| {
            // Forward SIGINT/SIGTERM to the threads until they are done.
            while !shared.stop.load(Ordering::Relaxed) {
                if stop.load(Ordering::Relaxed) {
                    shared.stop.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let outcome = run_threads(&db, &run, options, &shared, start);
        shared.stop.store(true, Ordering::Relaxed);
        let _ = forward.join();
        outcome
    });
    let (results, max_lag) = match outcome {
        Ok(done) => done,
        Err(err) => {
            let _ = db.close();
            return Err(err);
        }
    };
    let interrupted = stop.load(Ordering::Relaxed);
    let report = summarize(
        data_dir,
        options,
        &db,
        &results,
        (start, created, max_lag),
        stop,
    );
    db.close().map_err(|e| ToolError::store(data_dir, &e))?;
    Ok(LoadReport {
        interrupted,
        ..report
    })
}

/// Adds up the threads' results, measures the index's catch-up and assembles the report.
fn summarize(
    data_dir: &Path,
    options: &LoadOptions,
    db: &Db,
    results: &[ThreadResult],
    (start, created, max_lag): (Instant, bool, u64),
    stop: &AtomicBool,
) -> LoadReport {
    let mut written = Written::default();
    let mut latency = Histogram::default();
    let mut backpressure = 0;
    let mut last_ack = None;
    for result in results {
        written.add(&result.written);
        latency.merge(&result.latency);
        backpressure += result.backpressure;
        last_ack = last_ack.max(result.last_ack);
    }
    let end = last_ack.unwrap_or_else(Instant::now);
    let elapsed = end.saturating_duration_since(start).as_secs_f64();
    let lag_at_end = db.index_status().lag_entries();
    let caught_up_ms = index_catch_up(db, Instant::now(), stop);
    #[allow(clippy::cast_precision_loss, reason = "figures for people")]
    let payload_mean = if written.receipts == 0 {
        0.0
    } else {
        written.payload_bytes as f64 / written.receipts as f64
    };
    let busy = written.thread_time.as_secs_f64();
    LoadReport {
        store: data_dir.display().to_string(),
        created,
        durability: match options.durability {
            Durability::Durable => "durable",
            Durability::Written => "written",
        },
        threads: options.threads.max(1),
        target_rate: (options.rate > 0.0).then_some(options.rate),
        seconds: options.duration.as_secs_f64(),
        tenants: options.tenants,
        payload_bytes_target: options.payload_bytes,
        receipts: latency.len(),
        backpressure_refusals: backpressure,
        elapsed_seconds: elapsed,
        receipts_per_second: per_second(latency.len(), elapsed),
        bytes_per_second: per_second(written.event_bytes, elapsed),
        payload_bytes_mean: payload_mean,
        latency_us: Latency {
            p50: micros(latency.quantile(0.5)),
            p90: micros(latency.quantile(0.9)),
            p99: micros(latency.quantile(0.99)),
            p999: micros(latency.quantile(0.999)),
            max: micros(latency.max()),
            mean: latency.mean() / 1e3,
        },
        generator_busy: if busy > 0.0 {
            written.build_time.as_secs_f64() / busy
        } else {
            0.0
        },
        index: IndexLag {
            lag_entries_at_end: lag_at_end,
            max_lag_entries_seen: max_lag.max(lag_at_end),
            caught_up_ms,
        },
        interrupted: false,
        durable_end: db.durable_end().0,
    }
}

/// A latency for people: `812 µs`, `3.40 ms`, `1.20 s`.
fn human_micros(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.0} µs")
    }
}

/// Prints the report for people.
pub fn print_text(report: &LoadReport) {
    let target = report.target_rate.map_or_else(
        || "as fast as possible".to_owned(),
        |rate| format!("target {}", human_rate_of(rate, "receipts")),
    );
    println!(
        "{} {} threads, {target}, {:.1} s, payloads of about {} B, {} tenant(s), {} acknowledgements",
        paint("trailmix-db load:", Paint::Strong),
        report.threads,
        report.seconds,
        report.payload_bytes_target,
        report.tenants,
        report.durability,
    );
    println!(
        "  store       {}{}",
        report.store,
        if report.created { " (created)" } else { "" }
    );
    println!(
        "  appended    {} receipts in {:.2} s: {}, {}/s (payloads {:.0} B on average)",
        human_count(report.receipts),
        report.elapsed_seconds,
        paint(
            &human_rate_of(report.receipts_per_second, "receipts"),
            Paint::Strong
        ),
        human_bytes(whole(report.bytes_per_second)),
        report.payload_bytes_mean,
    );
    let l = &report.latency_us;
    println!(
        "  latency     append to {} ack: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        report.durability,
        human_micros(l.p50),
        human_micros(l.p90),
        human_micros(l.p99),
        human_micros(l.p999),
        human_micros(l.max),
    );
    let index = &report.index;
    println!(
        "  index       {} entries behind the log when the run ended (at most {} seen during \
         it); {}",
        human_count(index.lag_entries_at_end),
        human_count(index.max_lag_entries_seen),
        match index.caught_up_ms {
            None => format!("not caught up within {} s", INDEX_WAIT_MAX.as_secs()),
            Some(ms) if index.lag_entries_at_end == 0 && ms < 1.0 => "current".to_owned(),
            Some(ms) => format!("caught up {ms:.0} ms later"),
        }
    );
    println!(
        "  generator   the appending threads spent {:.0} % of their time building receipts{}",
        100.0 * report.generator_busy,
        if report.generator_busy > 0.8 && report.target_rate.is_none() {
            " (the generator, not the store, set the pace: try more --threads)"
        } else {
            ""
        }
    );
    if report.backpressure_refusals > 0 {
        println!(
            "  {}     {} appends refused: the ring buffer stayed full for the backpressure timeout",
            paint("refused", Paint::Warn),
            human_count(report.backpressure_refusals)
        );
    }
    if report.interrupted {
        println!("  interrupted: the figures cover the time until the signal");
    }
}

/// A non-negative rate rounded to a whole number (saturating).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole(rate: f64) -> u64 {
    rate.round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1_000);
        }
        assert_eq!(h.len(), 100_000);
        assert_eq!(h.max(), 100_000_000);
        for (q, exact) in [
            (0.5, 50_000_000.0),
            (0.9, 90_000_000.0),
            (0.999, 99_900_000.0),
        ] {
            #[allow(clippy::cast_precision_loss)]
            let got = h.quantile(q) as f64;
            assert!(
                got >= exact && got <= exact * 1.02,
                "q {q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.quantile(1.0), 100_000_000);
        assert!((h.mean() - 50_000_500.0).abs() < 1.0);
        let mut small = Histogram::default();
        for v in [0, 1, 63, 64, 65, u64::MAX] {
            small.record(v);
        }
        assert_eq!(small.quantile(0.0), 0);
        assert_eq!(small.quantile(0.5), 63);
        assert_eq!(small.quantile(1.0), u64::MAX);
        let mut merged = Histogram::default();
        merged.merge(&h);
        merged.merge(&small);
        assert_eq!(merged.len(), 100_006);
        assert_eq!(merged.max(), u64::MAX);
    }

    #[test]
    fn every_value_lands_in_a_bucket_that_holds_it() {
        for v in (0..20_000u64).chain([u64::MAX, u64::MAX - 1, 1 << 40, (1 << 40) - 1]) {
            let bucket = Histogram::bucket(v);
            assert!(Histogram::bucket_high(bucket) >= v, "{v}");
            if bucket > 0 {
                assert!(Histogram::bucket_high(bucket - 1) < v, "{v}");
            }
        }
    }
}
