//! Durable group-commit ingest: the trailmix WAL against the plain ceiling, same run, same data.
//!
//! For 512-byte and 1000-byte records and 1, 64 and 1024 records per flush, one iteration is
//! one batch: append `batch` records, then one durable flush.
//!
//! - `trailmix`: [`trailmix_wal::Wal`] with default options: 64 MiB segments zero-filled and
//!   prepared ahead on a background thread, `append` per record into the memory map, `flush`
//!   (msync of the written range) per batch. Segment rollovers (seal, sync, rename, directory
//!   sync) happen inside the timed batches whenever a segment fills up.
//! - `ceiling`: the same frames (`FrameHeader::encode`, crc32c, 8-byte padding) built in a user
//!   buffer, one buffered `write` appending them to a plain file, then `fdatasync`.
//!
//! After the criterion groups, the same jobs run once more as paired, interleaved measurements
//! (`trailmix_benches::paired`: alternating blocks of WAL and ceiling batches), whose median
//! ratios `bench-report` prints beside criterion's; `TRAILMIX_PAIRED=0` skips them.
//!
//! Both start over in a fresh directory after 4 GiB, outside the timed region, and each
//! benchmark ends by deleting its files and syncing the file system (untimed). Files go under
//! cargo's target tmp dir (same disk as the repo) or `$TRAILMIX_BENCH_DIR`.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use trailmix_benches::data::Payloads;
use trailmix_benches::ids;
use trailmix_benches::paired::{self, Plan};
use trailmix_benches::rigs::{DurableLog, PlainAppend, WalRig, retire};
use trailmix_wal::WalOptions;

/// Distinct payloads per record size; batches walk through them.
const POOL: usize = 4096;
/// Bytes a rig writes before it starts over in a fresh directory (outside the timed region).
const RECYCLE_BYTES: u64 = 4 << 30;

/// Times `iters` batches, recycling full rigs between them (untimed).
fn time_batches(
    rig: &mut dyn DurableLog,
    payloads: &Payloads,
    batch: usize,
    cursor: &mut usize,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        rig.recycle_if_full().expect("recycle the benchmark log");
        let start = Instant::now();
        rig.append_batch(payloads, *cursor, batch)
            .expect("append a durable batch");
        total += start.elapsed();
        *cursor = (*cursor + batch) % payloads.len();
    }
    total
}

fn scratch() -> tempfile::TempDir {
    let root = trailmix_benches::scratch_root(Path::new(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&root).expect("create the scratch root");
    tempfile::tempdir_in(root).expect("create a scratch directory")
}

fn wal_append(c: &mut Criterion) {
    let scratch = scratch();
    for bytes in ids::RECORD_SIZES {
        let payloads = Payloads::new(POOL, bytes, 0x0072_6169_6c6d_6978 ^ bytes as u64);
        let mut group = c.benchmark_group(ids::wal_append_group(bytes));
        for batch in ids::BATCHES {
            group.throughput(Throughput::Elements(batch as u64));
            let dir: PathBuf = scratch.path().join(format!("{bytes}-{batch}"));

            let mut wal: Option<WalRig> = None;
            let mut cursor = 0;
            group.bench_function(
                BenchmarkId::new(ids::TRAILMIX, ids::batch_value(batch)),
                |b| {
                    let rig = wal.get_or_insert_with(|| {
                        WalRig::new(&dir.join("wal"), WalOptions::default(), RECYCLE_BYTES)
                            .expect("open the WAL")
                    });
                    b.iter_custom(|iters| time_batches(rig, &payloads, batch, &mut cursor, iters));
                },
            );
            if let Some(rig) = &wal {
                eprintln!(
                    "  trailmix: {} batches, {} segment rollovers inside timed batches",
                    rig.batches(),
                    rig.rollovers()
                );
            }
            retire(wal, scratch.path()).expect("clean up");

            let mut plain: Option<PlainAppend> = None;
            let mut cursor = 0;
            group.bench_function(
                BenchmarkId::new(ids::CEILING, ids::batch_value(batch)),
                |b| {
                    let rig = plain.get_or_insert_with(|| {
                        PlainAppend::new(&dir.join("plain"), RECYCLE_BYTES)
                            .expect("create the file")
                    });
                    b.iter_custom(|iters| time_batches(rig, &payloads, batch, &mut cursor, iters));
                },
            );
            retire(plain, scratch.path()).expect("clean up");
        }
        group.finish();
    }
}

fn paired_jobs(_: &mut Criterion) {
    let scratch = scratch();
    let criterion_dir = trailmix_benches::criterion_dir(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let plan = Plan::from_args();
    for bytes in ids::RECORD_SIZES {
        let payloads = Payloads::new(POOL, bytes, 0x0072_6169_6c6d_6978 ^ bytes as u64);
        for batch in ids::BATCHES {
            let job = format!(
                "{}/{}",
                ids::wal_append_group(bytes),
                ids::batch_value(batch)
            );
            if !paired::wanted(&job) {
                continue;
            }
            let dir = scratch.path().join(format!("paired-{bytes}-{batch}"));
            let mut wal = WalRig::new(&dir.join("wal"), WalOptions::default(), RECYCLE_BYTES)
                .expect("open the WAL");
            let mut ceiling =
                PlainAppend::new(&dir.join("plain"), RECYCLE_BYTES).expect("create the file");
            let result = paired::run(&job, &mut wal, &mut ceiling, &payloads, batch, plan)
                .expect("paired run");
            println!(
                "paired {job}: trailmix / ceiling = {:.2} (quartiles {:.2}..{:.2}, {} rounds); \
                 {:.0} vs {:.0} records/s",
                result.ratio_median,
                result.ratio_quartiles.0,
                result.ratio_quartiles.1,
                result.rounds,
                result.subject_per_second,
                result.baseline_per_second
            );
            paired::save(&criterion_dir, &result).expect("save the paired result");
            retire(Some((wal, ceiling)), scratch.path()).expect("clean up");
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .sample_size(30);
    targets = wal_append, paired_jobs
}
criterion_main!(benches);
