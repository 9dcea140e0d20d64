//! Full verification (`verify_store`: frames, chain, tenant links, Merkle roots, checkpoint
//! signatures) of a store of 512-byte receipts, against raw blake3 over the same bytes in the
//! same run:
//!
//! - `blake3_per_entry`: one `blake3::hash` per stored entry (the WAL record payloads exactly
//!   as `verify_store` reads them): the floor for any verifier that must hash each entry;
//! - `blake3_bulk`: one `blake3::hash` over all those bytes concatenated, which lets blake3 use
//!   SIMD across 1 KiB chunks (what "blake3 over the segment files' used bytes" would cost).
//!
//! All three declare the same byte count, so criterion's rates divide directly. The store is
//! built untimed (100k receipts; 10k with `--quick` or `TRAILMIX_BENCH_QUICK=1`) and read from
//! the page cache by every side.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use trailmix_benches::rigs::BoxError;
use trailmix_benches::{ids, receipts, scratch_root};
use trailmix_db::wal::format::frame_bytes;
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{VerifyOptions, WAL_DIR, verify_store};

/// Small sizes: `--quick`, `TRAILMIX_BENCH_QUICK=1`, or a run without `--bench` (`cargo test
/// --benches` runs each benchmark once as a test).
fn quick() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--quick")
        || !args.iter().any(|a| a == "--bench")
        || std::env::var_os("TRAILMIX_BENCH_QUICK").is_some_and(|v| v != "0")
}

/// Every entry's stored bytes, and the segment bytes their frames take.
fn entries(dir: &Path) -> Result<(Vec<Vec<u8>>, u64), BoxError> {
    let reader = WalReader::open(dir.join(WAL_DIR))?;
    let mut out = Vec::new();
    let mut framed = 0;
    reader.scan(Seq(0), |record| {
        framed += frame_bytes(record.payload.len() as u64);
        out.push(record.payload.to_vec());
        ControlFlow::Continue(())
    })?;
    Ok((out, framed))
}

fn bench(c: &mut Criterion) {
    let count = if quick() { 10_000 } else { 100_000 };
    let root = scratch_root(Path::new(env!("CARGO_TARGET_TMPDIR"))).join("engine_verify");
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("store");
    let started = Instant::now();
    receipts::fill_store(&dir, count).expect("build the store");
    let (entries, framed) = entries(&dir).expect("read the entries");
    let bytes: u64 = entries.iter().map(|e| e.len() as u64).sum();
    let bulk: Vec<u8> = entries.concat();
    let report = verify_store(&dir, &VerifyOptions::default()).expect("verify");
    assert!(
        report.verified(),
        "the benchmark store must verify: {report:?}"
    );
    eprintln!(
        "engine_verify: {count} receipts, {} entries, {bytes} entry bytes ({framed} framed), \
         {} checkpoints, {} segments; built in {:.1?}",
        entries.len(),
        report.checkpoints,
        report.segments,
        started.elapsed()
    );

    let mut group = c.benchmark_group(ids::ENGINE_VERIFY_GROUP);
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(10);
    if !quick() {
        group.measurement_time(Duration::from_secs(8));
    }
    group.bench_function(ids::VERIFY_STORE, |b| {
        b.iter(|| {
            let report = verify_store(&dir, &VerifyOptions::default()).expect("verify");
            black_box(report.entries)
        });
    });
    group.bench_function(ids::BLAKE3_PER_ENTRY, |b| {
        b.iter(|| {
            let mut acc = 0u8;
            for entry in &entries {
                acc ^= blake3::hash(entry).as_bytes()[0];
            }
            black_box(acc)
        });
    });
    group.bench_function(ids::BLAKE3_BULK, |b| {
        b.iter(|| black_box(blake3::hash(&bulk)));
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
