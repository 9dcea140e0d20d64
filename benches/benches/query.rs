//! Query latency (issue 4): tenant + time range (limit 100), tenant + model (+ version) + time
//! range (limit 100), session trace and event-id lookup, on the same seeded receipts in each
//! store:
//!
//! - **redb**: redb used directly, a row table plus four index tables
//!   (`trailmix_benches::query_rigs::RedbRig`);
//! - **sqlite**: `SQLite` (bundled, WAL, `synchronous=NORMAL`) with the same four indexes
//!   (`trailmix_benches::query_rigs::SqliteRig`);
//! - **trailmix-db**: `Db::query` / `Db::find_event` on a store loaded through `Db::append`
//!   (`trailmix_benches::query_trailmix::TrailmixRig`);
//! - **trailmix-db-heads**: the same store through `Db::query_heads` (every check, payloads
//!   neither copied nor decrypted): an extra column beside the full reads, which stay the
//!   comparison (the baselines return the full stored record). Its event-id lookup is the
//!   same `Db::find_event`;
//! - **trailmix-db-clear**: a second trailmix-db store of the same data with payloads stored in
//!   the clear (`PayloadEncryption::Off`), queried with full reads: the like-for-like column,
//!   since the baselines store clear payloads and the default store decrypts each result.
//!
//! Every query reads each returned receipt in full: the baselines check its tenant and hash
//! its payload with blake3; trailmix-db reads each result from its log, decodes it and checks
//! two digests. The baselines also have a composite (tenant, model, version, time) index that
//! trailmix-db lacks (`trailmix_benches::query_rigs` has the details).
//!
//! The data ([`trailmix_benches::query_data`]) is generated once per process: 1 M receipts,
//! `$TRAILMIX_QUERY_RECEIPTS` to change it (e.g. `10000000`), 100k in `--quick` mode (or with
//! `TRAILMIX_BENCH_QUICK=1`) and 20k when run as a test (`cargo test --benches`). Each rig
//! loads it into a fresh store under `$TRAILMIX_BENCH_DIR` (else cargo's `target/tmp`): the
//! baselines in 10k-row transactions, trailmix-db in windows of 10k appends each waited durable
//! and indexed, every rig timing only its store's work (`query_rigs::load_method`); load rate
//! and bytes per receipt on disk (used, and allocated where different) are printed. The four
//! stores take ~3.7 GB per million receipts (37 GB and ~27 minutes of loading at 10 M on the
//! 2-core machine). Before
//! measuring, the first 200 queries of each job are run on every rig and must give the same
//! rows (and what the data guarantees: full pages, whole sessions, the right event).
//!
//! Then, per job, criterion measures each rig as `query_<job>/<rig>` (one iteration = one
//! query, cycling through 2,000 seeded queries), and single queries are timed for p50 / p99:
//! 2,000 per job and rig (500 in `--quick` mode), the rigs interleaved query by query, saved to
//! `<criterion dir>/trailmix-query-latency.json` for `bench-report` (skipped with
//! `TRAILMIX_PAIRED=0`; positional filters select `<job>/<rig>` ids as plain substrings, as
//! for the paired jobs of the other benchmarks).

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use trailmix_benches::paired;
use trailmix_benches::query_data::{self, Dataset, Job, QuerySet};
use trailmix_benches::query_report::{self, Latency, LatencyResults};
use trailmix_benches::query_rigs::{self, QueryRig, RedbRig, SqliteRig};
use trailmix_benches::query_trailmix::TrailmixRig;
use trailmix_benches::rigs::{BoxError, settle};
use trailmix_benches::{criterion_dir, scratch_root};

/// Seeded queries per job (criterion cycles through them).
const QUERIES: usize = 2_000;
/// Single queries timed per job and rig for the quantiles (full run / quick run).
const SAMPLES: usize = 2_000;
const QUICK_SAMPLES: usize = 500;
/// Queries per job whose results are compared across rigs before measuring.
const CHECKED: usize = 200;
/// Receipts when run as a test (`cargo test --benches`, no `--bench` argument).
const TEST_RECEIPTS: usize = 20_000;

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Small sizes: `--quick`, `TRAILMIX_BENCH_QUICK=1`, or a run as a test.
fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
        || !bench_mode()
        || std::env::var_os("TRAILMIX_BENCH_QUICK").is_some_and(|v| v != "0")
}

fn receipts() -> usize {
    if !bench_mode() && std::env::var_os(query_data::RECEIPTS_ENV).is_none() {
        return TEST_RECEIPTS;
    }
    query_data::receipts_from_env(quick()).expect("receipt count")
}

fn scratch() -> PathBuf {
    scratch_root(Path::new(env!("CARGO_TARGET_TMPDIR"))).join("query")
}

fn print_load(rig: &dyn QueryRig) {
    if let Some(s) = rig.load_stats() {
        let catch_up = if s.index_catch_up.is_zero() {
            String::new()
        } else {
            format!(", of which index catch-up {:.1?}", s.index_catch_up)
        };
        eprintln!(
            "query: {} loaded {} receipts in {:.1?} ({:.1} k/s{catch_up}), {:.0} bytes/receipt \
             used on disk, {:.0} allocated ({})",
            rig.name(),
            s.receipts,
            s.elapsed,
            s.per_second() / 1e3,
            s.bytes_per_receipt(),
            s.allocated_bytes_per_receipt(),
            query_rigs::load_method(rig.name()).unwrap_or("?")
        );
    }
}

/// The rigs measured, in column order (the report's ratios are against trailmix-db, named
/// [`query_rigs::TRAILMIX_RIG`]). Each loads `data` into a fresh store under `root`, indexes
/// current before it returns; the check before measuring compares every rig's rows with the
/// first rig's.
fn rigs(data: &Dataset, root: &Path) -> Result<Vec<Box<dyn QueryRig>>, BoxError> {
    let mut rigs: Vec<Box<dyn QueryRig>> = Vec::new();

    rigs.push(Box::new(RedbRig::load(
        &root.join(query_rigs::REDB_RIG),
        data,
    )?));

    let sqlite = SqliteRig::load(&root.join(query_rigs::SQLITE_RIG), data)?;
    eprintln!(
        "query: sqlite ANALYZE took {:.1?} (untimed); plans:",
        sqlite.analyze
    );
    for plan in sqlite.plans()? {
        eprintln!("  {plan}");
    }
    rigs.push(Box::new(sqlite));

    let trailmix = TrailmixRig::load(&root.join(query_rigs::TRAILMIX_RIG), data)?;
    let heads = trailmix.heads_only();
    rigs.push(Box::new(trailmix));
    rigs.push(Box::new(heads));
    rigs.push(Box::new(TrailmixRig::load_clear(
        &root.join(query_rigs::TRAILMIX_CLEAR_RIG),
        data,
    )?));

    Ok(rigs)
}

/// Runs the first [`CHECKED`] queries of each job on every rig: the first rig's results must
/// satisfy what the data guarantees and every other rig must return the same rows (each
/// rig's result ids mapped to rows here, outside the timed queries).
fn cross_check(rigs: &[Box<dyn QueryRig>], queries: &QuerySet) -> Result<(), BoxError> {
    let Some((first, others)) = rigs.split_first() else {
        return Ok(());
    };
    for job in Job::ALL {
        for i in 0..queries.len(job).min(CHECKED) {
            let expected = query_rigs::rows_of(
                first.as_ref(),
                &query_rigs::run(first.as_ref(), job, queries, i)?,
            )?;
            query_rigs::check(job, queries, i, &expected)
                .map_err(|e| format!("{}: {e}", first.name()))?;
            for rig in others {
                let got = query_rigs::rows_of(
                    rig.as_ref(),
                    &query_rigs::run(rig.as_ref(), job, queries, i)?,
                )?;
                if got != expected {
                    return Err(format!(
                        "{} query {i}: {} returned {got:?}, {} returned {expected:?}",
                        job.id(),
                        rig.name(),
                        first.name()
                    )
                    .into());
                }
            }
        }
    }
    Ok(())
}

/// Times `samples` single queries of `job` on each of `rigs`, interleaved query by query (the
/// rig order rotates), after a short untimed warm-up.
fn sample(
    rigs: &[&dyn QueryRig],
    job: Job,
    queries: &QuerySet,
    samples: usize,
) -> Result<Vec<Latency>, BoxError> {
    for rig in rigs {
        for i in 0..samples.min(200) {
            std::hint::black_box(query_rigs::run(*rig, job, queries, i)?);
        }
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(samples); rigs.len()];
    for i in 0..samples {
        for k in 0..rigs.len() {
            let r = (i + k) % rigs.len();
            let start = Instant::now();
            let results = query_rigs::run(rigs[r], job, queries, i)?;
            times[r].push(start.elapsed());
            std::hint::black_box(results);
        }
    }
    Ok(times
        .iter_mut()
        .filter_map(|t| Latency::from_durations(t))
        .collect())
}

/// Time to hash one page of results' payloads (the median of 201 pages).
fn hash_floor(data: &Dataset) -> Duration {
    let payloads: Vec<Vec<u8>> = (0..query_data::LIMIT as u64)
        .map(|seq| data.payload(seq))
        .collect();
    let mut times: Vec<Duration> = (0..201)
        .map(|_| {
            let start = Instant::now();
            for p in &payloads {
                std::hint::black_box(blake3::hash(p));
            }
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

fn bench(c: &mut Criterion) {
    let n = receipts();
    let started = Instant::now();
    let data = Dataset::generate(n, query_data::SEED);
    let queries = QuerySet::build(&data, QUERIES, query_data::SEED);
    eprintln!(
        "query: {n} receipts ({:.0} raw bytes each, tenants {:?}) and {QUERIES} queries per job \
         made in {:.1?}",
        data.raw_bytes_per_row(),
        data.per_tenant(),
        started.elapsed()
    );
    let root = scratch();
    if root.exists() {
        std::fs::remove_dir_all(&root).expect("remove old query stores");
    }
    std::fs::create_dir_all(&root).expect("create query scratch dir");
    let rigs = rigs(&data, &root).expect("load the query rigs");
    for rig in &rigs {
        print_load(rig.as_ref());
    }
    cross_check(&rigs, &queries).expect("rigs disagree");

    for job in Job::ALL {
        let mut group = c.benchmark_group(job.id());
        if !quick() {
            group.warm_up_time(Duration::from_secs(1));
            group.measurement_time(Duration::from_secs(4));
        }
        for rig in &rigs {
            let mut i = 0;
            group.bench_function(rig.name(), |b| {
                b.iter(|| {
                    let results = query_rigs::run(rig.as_ref(), job, &queries, i).expect("query");
                    i += 1;
                    results
                });
            });
        }
        group.finish();
    }

    eprintln!(
        "query: blake3 of {} payloads of {} B takes {:.1} µs (part of each full limit-{} page)",
        query_data::LIMIT,
        query_data::PAYLOAD_BYTES,
        hash_floor(&data).as_secs_f64() * 1e6,
        query_data::LIMIT
    );
    let samples = if quick() { QUICK_SAMPLES } else { SAMPLES };
    let mut saved = LatencyResults {
        receipts: n as u64,
        quick: quick(),
        raw_bytes_per_receipt: data.raw_bytes_per_row(),
        ..LatencyResults::default()
    };
    for job in Job::ALL {
        let wanted: Vec<&dyn QueryRig> = rigs
            .iter()
            .map(AsRef::as_ref)
            .filter(|r| paired::wanted(&format!("{}/{}", job.id(), r.name())))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let latencies = sample(&wanted, job, &queries, samples).expect("latency sampling");
        let mut by_rig = BTreeMap::new();
        for (rig, l) in wanted.iter().zip(latencies) {
            eprintln!(
                "latency {}/{}: p50 {:.1} µs, p99 {:.1} µs, mean {:.1} µs ({} queries)",
                job.id(),
                rig.name(),
                l.p50_ns / 1e3,
                l.p99_ns / 1e3,
                l.mean_ns / 1e3,
                l.samples
            );
            by_rig.insert(rig.name().to_string(), l);
        }
        saved.jobs.insert(job.id().to_string(), by_rig);
    }
    if !saved.jobs.is_empty() {
        for rig in &rigs {
            if let Some(s) = rig.load_stats() {
                saved.loads.insert(rig.name().to_string(), s);
            }
        }
        let dir = criterion_dir(Path::new(env!("CARGO_TARGET_TMPDIR")));
        match query_report::save(&dir, &saved) {
            Ok(()) => eprintln!(
                "query: latencies saved to {}",
                dir.join(query_report::LATENCY_FILE).display()
            ),
            Err(err) => eprintln!("query: could not save latencies: {err}"),
        }
    }
    drop(rigs);
    let _ = std::fs::remove_dir_all(&root);
    let _ = settle(root.parent().unwrap_or(&root));
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
