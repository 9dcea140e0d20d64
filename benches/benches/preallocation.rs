//! How to pre-allocate segment files (issue 2): "mmap writes into a zero-filled file vs a
//! fallocated one; preparing the next segment ahead hides the cost".
//!
//! - `mmap_write_4MiB/{zero_fill,fallocate}`: one iteration copies 4 MiB into a memory-mapped
//!   64 MiB segment file (the WAL's own `FsStorage`/`SegmentFile`) and msyncs those 4 MiB.
//!   When a file is full, a new one is created and the old one deleted, untimed.
//! - `segment_create_64MiB/{zero_fill,fallocate}`: one iteration creates, pre-allocates, syncs
//!   and maps one 64 MiB segment file (`Storage::create_segment`, without the WAL's header,
//!   rename and directory sync); the file is deleted and the file system synced, untimed.
//! - `wal_prealloc_512B_batch_1024/*`: the whole WAL (512-byte records, 1024 per flush, 64 MiB
//!   segments, rollovers inside the timed batches) with each pre-allocation and preparation
//!   mode, and the plain ceiling beside them; then each mode once more paired with the ceiling
//!   in alternating blocks (`trailmix_benches::paired`; `TRAILMIX_PAIRED=0` skips it).

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trailmix_benches::data::{self, Payloads};
use trailmix_benches::ids;
use trailmix_benches::paired::{self, Plan};
use trailmix_benches::rigs::{DurableLog, PlainAppend, WalRig, retire, settle};
use trailmix_wal::storage::FsSegment;
use trailmix_wal::{FsStorage, Preallocation, SegmentFile, Storage};

const POOL: usize = 4096;
const RECYCLE_BYTES: u64 = 4 << 30;

fn scratch() -> tempfile::TempDir {
    let root = trailmix_benches::scratch_root(Path::new(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&root).expect("create the scratch root");
    tempfile::tempdir_in(root).expect("create a scratch directory")
}

fn prealloc_of(name: &str) -> Preallocation {
    if name == ids::ZERO_FILL {
        Preallocation::ZeroFill
    } else {
        Preallocation::Fallocate
    }
}

/// A 64 MiB segment file being filled 4 MiB at a time.
struct MmapFiller {
    storage: FsStorage,
    prealloc: Preallocation,
    segment: Option<FsSegment>,
    files: u64,
    offset: u64,
}

impl Drop for MmapFiller {
    fn drop(&mut self) {
        if self.segment.take().is_some() {
            let _ = self.storage.remove(&self.name());
        }
    }
}

impl MmapFiller {
    fn new(dir: PathBuf, prealloc: Preallocation) -> MmapFiller {
        let storage = FsStorage::new(dir);
        storage.create_dir().expect("create the directory");
        MmapFiller {
            storage,
            prealloc,
            segment: None,
            files: 0,
            offset: 0,
        }
    }

    fn name(&self) -> String {
        format!("segment-{}", self.files)
    }

    /// Makes sure the next chunk fits, replacing a full file (untimed by the caller).
    fn ready(&mut self, chunk: u64) {
        if self.segment.is_some() && self.offset + chunk <= ids::SEGMENT_BYTES {
            return;
        }
        if self.segment.take().is_some() {
            self.storage
                .remove(&self.name())
                .expect("remove a full file");
            self.files += 1;
        }
        let segment = self
            .storage
            .create_segment(&self.name(), ids::SEGMENT_BYTES, self.prealloc)
            .expect("create a segment file");
        self.segment = Some(segment);
        self.offset = 0;
    }

    fn write_chunk(&mut self, chunk: &[u8]) {
        let segment = self.segment.as_mut().expect("a segment is ready");
        segment.write_at(self.offset, chunk).expect("mmap write");
        segment
            .sync_range(self.offset, chunk.len() as u64)
            .expect("msync");
        self.offset += chunk.len() as u64;
    }
}

fn mmap_write(c: &mut Criterion) {
    let scratch = scratch();
    let chunk = data::bytes(ids::MMAP_CHUNK_BYTES, 42);
    let mut group = c.benchmark_group(ids::MMAP_WRITE_GROUP);
    group.throughput(Throughput::Bytes(ids::MMAP_CHUNK_BYTES as u64));
    group.sample_size(20);
    for name in [ids::ZERO_FILL, ids::FALLOCATE] {
        let mut filler: Option<MmapFiller> = None;
        group.bench_function(name, |b| {
            let filler = filler.get_or_insert_with(|| {
                MmapFiller::new(scratch.path().join(name), prealloc_of(name))
            });
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    filler.ready(chunk.len() as u64);
                    let start = Instant::now();
                    filler.write_chunk(&chunk);
                    total += start.elapsed();
                }
                total
            });
        });
        retire(filler, scratch.path()).expect("clean up");
    }
    group.finish();
}

fn segment_create(c: &mut Criterion) {
    let scratch = scratch();
    let mut group = c.benchmark_group(ids::SEGMENT_CREATE_GROUP);
    group.sample_size(10);
    for name in [ids::ZERO_FILL, ids::FALLOCATE] {
        let storage = FsStorage::new(scratch.path().join(name));
        storage.create_dir().expect("create the directory");
        let prealloc = prealloc_of(name);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let segment = storage
                        .create_segment("segment", ids::SEGMENT_BYTES, prealloc)
                        .expect("create a segment file");
                    total += start.elapsed();
                    drop(segment);
                    storage.remove("segment").expect("remove the segment file");
                    settle(scratch.path()).expect("sync the file system");
                }
                total
            });
        });
    }
    group.finish();
}

fn wal_prealloc(c: &mut Criterion) {
    let scratch = scratch();
    let batch = ids::PREALLOC_BATCH;
    let payloads = Payloads::new(POOL, ids::PREALLOC_RECORD_BYTES, 0x5eed);
    let mut group = c.benchmark_group(ids::WAL_PREALLOC_GROUP);
    group.throughput(Throughput::Elements(batch as u64));
    let time_batches = |rig: &mut dyn DurableLog, cursor: &mut usize, iters: u64| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            rig.recycle_if_full().expect("recycle the benchmark log");
            let start = Instant::now();
            rig.append_batch(&payloads, *cursor, batch)
                .expect("append a durable batch");
            total += start.elapsed();
            *cursor = (*cursor + batch) % payloads.len();
        }
        total
    };
    for (function, prealloc, ahead) in ids::WAL_PREALLOC_VARIANTS {
        let prealloc = prealloc_of(if prealloc == "ZeroFill" {
            ids::ZERO_FILL
        } else {
            ids::FALLOCATE
        });
        let mut rig: Option<WalRig> = None;
        let mut cursor = 0;
        group.bench_function(function, |b| {
            let rig = rig.get_or_insert_with(|| {
                WalRig::new(
                    &scratch.path().join(function),
                    WalRig::options(prealloc, ahead),
                    RECYCLE_BYTES,
                )
                .expect("open the WAL")
            });
            b.iter_custom(|iters| time_batches(rig, &mut cursor, iters));
        });
        if let Some(rig) = &rig {
            eprintln!(
                "  {function}: {} batches, {} segment rollovers inside timed batches",
                rig.batches(),
                rig.rollovers()
            );
        }
        retire(rig, scratch.path()).expect("clean up");
    }
    let mut plain: Option<PlainAppend> = None;
    let mut cursor = 0;
    group.bench_function(ids::CEILING, |b| {
        let rig = plain.get_or_insert_with(|| {
            PlainAppend::new(&scratch.path().join("plain"), RECYCLE_BYTES).expect("create the file")
        });
        b.iter_custom(|iters| time_batches(rig, &mut cursor, iters));
    });
    retire(plain, scratch.path()).expect("clean up");
    group.finish();
}

fn wal_prealloc_paired(_: &mut Criterion) {
    let scratch = scratch();
    let criterion_dir = trailmix_benches::criterion_dir(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let plan = Plan::from_args();
    let payloads = Payloads::new(POOL, ids::PREALLOC_RECORD_BYTES, 0x5eed);
    for (function, prealloc, ahead) in ids::WAL_PREALLOC_VARIANTS {
        let job = format!("{}/{function}", ids::WAL_PREALLOC_GROUP);
        if !paired::wanted(&job) {
            continue;
        }
        let prealloc = prealloc_of(if prealloc == "ZeroFill" {
            ids::ZERO_FILL
        } else {
            ids::FALLOCATE
        });
        let dir = scratch.path().join(format!("paired-{function}"));
        let mut wal = WalRig::new(
            &dir.join("wal"),
            WalRig::options(prealloc, ahead),
            RECYCLE_BYTES,
        )
        .expect("open the WAL");
        let mut ceiling =
            PlainAppend::new(&dir.join("plain"), RECYCLE_BYTES).expect("create the file");
        let result = paired::run(
            &job,
            &mut wal,
            &mut ceiling,
            &payloads,
            ids::PREALLOC_BATCH,
            plan,
        )
        .expect("paired run");
        println!(
            "paired {job}: trailmix / ceiling = {:.2} (quartiles {:.2}..{:.2}, {} rounds)",
            result.ratio_median, result.ratio_quartiles.0, result.ratio_quartiles.1, result.rounds
        );
        paired::save(&criterion_dir, &result).expect("save the paired result");
        retire(Some((wal, ceiling)), scratch.path()).expect("clean up");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .sample_size(30);
    targets = mmap_write, segment_create, wal_prealloc, wal_prealloc_paired
}
criterion_main!(benches);
