//! Where does a durable WAL batch spend its time? An interleaved A/B probe.
//!
//! ```text
//! cargo run --release -p trailmix-benches --example sync_probe -- \
//!     [record_bytes=1000] [batch=1024] [rounds=300] [only-this-strategy]
//! ```
//!
//! Each round runs one batch of every strategy, in turn, so that disk noise (other processes'
//! syncs) hits all strategies alike; the percentiles are then comparable. Strategies, all
//! writing the same WAL frames:
//!
//! - `ceiling`: frames built in a buffer, `write` appending to a file, `fdatasync`;
//! - `pwrite+fdatasync`: the same buffer `pwrite` into a pre-zeroed 64 MiB file;
//! - `mmap+msync`: the same buffer copied into a mapped pre-zeroed 64 MiB file (the WAL's own
//!   `FsStorage` segment), `msync` of the range: what the WAL does, without its bookkeeping;
//! - `mmap+fdatasync`: the same copy, then `fdatasync` of the file instead of `msync`;
//! - `wal`: the real `Wal` (append per record, one flush), default options (zero-filled
//!   segments prepared ahead); `wal-zero-ondemand`, `wal-falloc-ahead`, `wal-falloc-ondemand`:
//!   the other pre-allocation and preparation modes.
//!
//! "copy" is the time to frame and copy (page faults of the map included), "sync" the time of
//! the sync call; the WAL rows have the whole batch under "sync".
//!
//! With a fourth argument only that strategy runs, and the probe also prints how many bytes
//! the disk wrote per batch (`/sys/block/<dev>/stat`, device `$PROBE_DEV` or `vda`). That
//! counter is system-wide: run it on a quiet machine.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use trailmix_benches::data::Payloads;
use trailmix_benches::rigs::{DurableLog, WalRig};
use trailmix_wal::format::{FrameHeader, frame_bytes};
use trailmix_wal::storage::FsSegment;
use trailmix_wal::{FsStorage, Preallocation, SegmentFile, Seq, Storage};

const SEGMENT: u64 = 64 << 20;

/// Frames `n` payloads from `start` into `out`, as the WAL lays them out.
fn frames(payloads: &Payloads, start: usize, n: usize, seq: &mut u64, out: &mut Vec<u8>) {
    out.clear();
    for payload in payloads.window(start, n) {
        let header = FrameHeader {
            payload_len: u32::try_from(payload.len()).expect("payload fits u32"),
            seq: Seq(*seq),
            durable_end: Seq(*seq),
            kind: 1,
        };
        let end = out.len() + usize::try_from(frame_bytes(payload.len() as u64)).expect("usize");
        out.extend_from_slice(&header.encode(payload));
        out.extend_from_slice(payload);
        out.resize(end, 0);
        *seq += 1;
    }
}

/// How a strategy writes one batch of framed bytes; returns (copy, sync) durations.
enum Strategy {
    Append { file: File, len: u64 },
    Pwrite(Zeroed),
    Mmap { zeroed: Zeroed, msync: bool },
    Wal(Box<WalRig>),
}

/// A pre-zeroed 64 MiB segment file, mapped, plus a plain handle on it; replaced when full.
struct Zeroed {
    storage: FsStorage,
    files: u64,
    segment: FsSegment,
    file: File,
    offset: u64,
}

impl Zeroed {
    fn new(dir: &Path) -> Zeroed {
        let storage = FsStorage::new(dir);
        storage.create_dir().expect("mkdir");
        let (segment, file) = Self::make(&storage, 0);
        Zeroed {
            storage,
            files: 0,
            segment,
            file,
            offset: 0,
        }
    }

    fn make(storage: &FsStorage, n: u64) -> (FsSegment, File) {
        let name = format!("z-{n}");
        let segment = storage
            .create_segment(&name, SEGMENT, Preallocation::ZeroFill)
            .expect("create segment");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(storage.dir().join(&name))
            .expect("open segment");
        (segment, file)
    }

    /// Makes room for `len` bytes (untimed by the caller).
    fn ready(&mut self, len: u64) {
        if self.offset + len <= SEGMENT {
            return;
        }
        let old = format!("z-{}", self.files);
        self.files += 1;
        let (segment, file) = Self::make(&self.storage, self.files);
        self.segment = segment;
        self.file = file;
        self.storage.remove(&old).expect("remove");
        self.offset = 0;
    }
}

struct Input<'a> {
    payloads: &'a Payloads,
    start: usize,
    batch: usize,
}

impl Strategy {
    fn open(name: &str, dir: &Path) -> Strategy {
        let wal = |prealloc, ahead| {
            Strategy::Wal(Box::new(
                WalRig::new(dir, WalRig::options(prealloc, ahead), 1 << 30).expect("open WAL"),
            ))
        };
        match name {
            "ceiling" => {
                std::fs::create_dir_all(dir).expect("mkdir");
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(dir.join("ceiling.log"))
                    .expect("open");
                Strategy::Append { file, len: 0 }
            }
            "pwrite+fdatasync" => Strategy::Pwrite(Zeroed::new(dir)),
            "mmap+msync" | "mmap+fdatasync" => Strategy::Mmap {
                zeroed: Zeroed::new(dir),
                msync: name == "mmap+msync",
            },
            "wal" => wal(Preallocation::ZeroFill, true),
            "wal-zero-ondemand" => wal(Preallocation::ZeroFill, false),
            "wal-falloc-ahead" => wal(Preallocation::Fallocate, true),
            _ => wal(Preallocation::Fallocate, false),
        }
    }

    fn run(&mut self, input: &Input, seq: &mut u64, buf: &mut Vec<u8>) -> (Duration, Duration) {
        let batch_bytes: u64 = input
            .payloads
            .window(input.start, input.batch)
            .map(|p| frame_bytes(p.len() as u64))
            .sum();
        // Untimed: replace a full pre-zeroed file.
        if let Strategy::Pwrite(z) | Strategy::Mmap { zeroed: z, .. } = self {
            z.ready(batch_bytes);
        }
        let t = Instant::now();
        match self {
            Strategy::Append { file, len } => {
                frames(input.payloads, input.start, input.batch, seq, buf);
                file.write_all(buf).expect("write");
                let t1 = Instant::now();
                file.sync_data().expect("fdatasync");
                let sync = t1.elapsed();
                *len += buf.len() as u64;
                if *len > 1 << 30 {
                    file.set_len(0).expect("truncate");
                    *len = 0;
                }
                (t1 - t, sync)
            }
            Strategy::Pwrite(z) => {
                frames(input.payloads, input.start, input.batch, seq, buf);
                z.file.write_all_at(buf, z.offset).expect("pwrite");
                let t1 = Instant::now();
                z.file.sync_data().expect("fdatasync");
                z.offset += buf.len() as u64;
                (t1 - t, t1.elapsed())
            }
            Strategy::Mmap { zeroed: z, msync } => {
                frames(input.payloads, input.start, input.batch, seq, buf);
                z.segment.write_at(z.offset, buf).expect("mmap write");
                let t1 = Instant::now();
                if *msync {
                    z.segment
                        .sync_range(z.offset, buf.len() as u64)
                        .expect("msync");
                } else {
                    z.file.sync_data().expect("fdatasync");
                }
                z.offset += buf.len() as u64;
                (t1 - t, t1.elapsed())
            }
            Strategy::Wal(rig) => {
                rig.recycle_if_full().expect("recycle");
                let t = Instant::now();
                rig.append_batch(input.payloads, input.start, input.batch)
                    .expect("append");
                (Duration::ZERO, t.elapsed())
            }
        }
    }
}

/// Sectors written by the block device so far (system-wide), if the counter is readable.
fn device_sectors_written() -> Option<u64> {
    let dev = std::env::var("PROBE_DEV").unwrap_or_else(|_| "vda".into());
    let stat = std::fs::read_to_string(format!("/sys/block/{dev}/stat")).ok()?;
    stat.split_whitespace().nth(6)?.parse().ok()
}

fn pct(v: &mut [Duration], p: usize) -> Duration {
    v.sort();
    v.get(v.len() * p / 100).copied().unwrap_or_default()
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[allow(clippy::cast_precision_loss, reason = "KiB figures for display")]
fn kib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0
}

const NAMES: [&str; 8] = [
    "ceiling",
    "pwrite+fdatasync",
    "mmap+msync",
    "mmap+fdatasync",
    "wal",
    "wal-zero-ondemand",
    "wal-falloc-ahead",
    "wal-falloc-ondemand",
];

fn main() {
    let record_bytes = arg(1, 1000);
    let batch = arg(2, 1024);
    let rounds = arg(3, 300);
    let only = std::env::args().nth(4);
    let default_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tmp");
    let root = trailmix_benches::scratch_root(&default_root);
    std::fs::create_dir_all(&root).expect("mkdir");
    let scratch = tempfile::tempdir_in(root).expect("tempdir");
    let payloads = Payloads::new(4096, record_bytes, 1);
    let mut strategies: Vec<(&str, Strategy, Vec<Duration>, Vec<Duration>)> = NAMES
        .iter()
        .filter(|name| only.as_deref().is_none_or(|o| o == **name))
        .map(|name| {
            let dir = scratch.path().join(name.replace('+', "-"));
            (*name, Strategy::open(name, &dir), Vec::new(), Vec::new())
        })
        .collect();
    let mut buf = Vec::new();
    let mut seq = 0;
    let sectors_before = device_sectors_written();
    for round in 0..rounds {
        let input = Input {
            payloads: &payloads,
            start: round * batch % payloads.len(),
            batch,
        };
        for (_, strategy, copy, sync) in &mut strategies {
            let (c, s) = strategy.run(&input, &mut seq, &mut buf);
            copy.push(c);
            sync.push(s);
        }
    }
    println!("{record_bytes} B records, {batch} per batch, {rounds} rounds");
    if let (Some(name), Some(before), Some(after)) =
        (&only, sectors_before, device_sectors_written())
    {
        let per_batch = (after - before) * 512 / rounds.max(1) as u64;
        let payload = (record_bytes * batch) as u64;
        println!(
            "{name}: the disk wrote {:.1} KiB per batch of {:.1} KiB payload ({:.1}x)",
            kib(per_batch),
            kib(payload),
            kib(per_batch) / kib(payload)
        );
    }
    println!(
        "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "strategy", "copy p50", "sync p50", "sync p90", "total p50", "total p99", "mean"
    );
    for (name, strategy, copy, sync) in &mut strategies {
        let mut total: Vec<Duration> = copy.iter().zip(sync.iter()).map(|(a, b)| *a + *b).collect();
        let mean = total.iter().sum::<Duration>() / u32::try_from(total.len().max(1)).unwrap_or(1);
        let rollovers = match strategy {
            Strategy::Wal(rig) => format!(" ({} rollovers)", rig.rollovers()),
            _ => String::new(),
        };
        println!(
            "{name:<20} {:>10.1?} {:>10.1?} {:>10.1?} {:>10.1?} {:>10.1?} {:>10.1?}{rollovers}",
            pct(copy, 50),
            pct(sync, 50),
            pct(sync, 90),
            pct(&mut total, 50),
            pct(&mut total, 99),
            mean
        );
    }
}
