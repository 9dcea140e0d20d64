//! Guards the group commit whose sync runs off the writer (`Wal::start_flush`, `FlushJob::run`,
//! `Wal::finish_flush`): the watermark moves only when a job's outcome is finished, a job's
//! records survive power loss once it ran, a failed job stops the log, a job that outlives a
//! rollover changes nothing, and on the real file system a job syncs through its own mapping
//! while the writer goes on.

use trailmix_wal::sim::{Fault, FaultError, Op, SimDisk};
use trailmix_wal::{ChainHash, Error, RecordKind, Seq, Wal, WalOptions, WalReader};

fn kind() -> RecordKind {
    RecordKind::new(1).expect("user kind")
}

fn payload(n: u64) -> Vec<u8> {
    let len = usize::try_from(100 + n * 37 % 900).expect("small");
    (0..len).map(|i| ((i as u64 * 7 + n) % 251) as u8).collect()
}

fn small_segments() -> WalOptions {
    WalOptions::default()
        .segment_bytes(16 * 4096)
        .record_bytes_max(4096)
}

fn append(wal: &mut Wal<impl trailmix_wal::Storage>, n: u64) -> Seq {
    wal.append(kind(), &payload(n), &ChainHash::ZERO)
        .expect("append")
}

/// Every record of `dir`'s log read back, in order.
fn read_back(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let reader = WalReader::open(dir).expect("reader");
    reader
        .read_from(Seq(0))
        .expect("read")
        .into_iter()
        .map(|record| record.payload)
        .collect()
}

#[test]
fn the_watermark_moves_when_the_outcome_is_finished_and_the_records_survive_power_loss() {
    let disk = SimDisk::new(7);
    let mut wal = Wal::open_with(disk.storage(), small_segments()).expect("open");
    for n in 0..5 {
        append(&mut wal, n);
    }
    let job = wal.start_flush().expect("start").expect("a job");
    assert_eq!(job.durable_end(), Seq(5));
    // The writer goes on while the job is out; nothing is durable yet.
    for n in 5..8 {
        append(&mut wal, n);
    }
    assert_eq!(wal.durable_end(), Seq(0));
    let outcome = std::thread::spawn(move || job.run())
        .join()
        .expect("sync thread");
    assert!(outcome.is_ok());
    assert_eq!(wal.durable_end(), Seq(0), "moves only when finished");
    assert_eq!(wal.finish_flush(outcome).expect("finish"), Seq(5));
    drop(wal);
    disk.crash();
    let mut wal = Wal::open_with(disk.storage(), small_segments()).expect("reopen");
    assert!(
        wal.next_seq() >= Seq(5),
        "records the job synced were lost: {} recovered",
        wal.next_seq()
    );
    // Nothing left to sync after recovery: no job, and the watermark is current.
    assert!(wal.start_flush().expect("start").is_none());
    assert_eq!(wal.durable_end(), wal.next_seq());
}

#[test]
fn a_flush_after_a_finished_job_syncs_what_was_written_during_the_job() {
    let disk = SimDisk::new(10);
    let mut wal = Wal::open_with(disk.storage(), small_segments()).expect("open");
    for n in 0..5 {
        append(&mut wal, n);
    }
    let job = wal.start_flush().expect("start").expect("a job");
    // Pages beyond the job's range: only the flush below syncs them.
    for n in 5..30 {
        append(&mut wal, n);
    }
    wal.finish_flush(job.run()).expect("finish");
    assert_eq!(wal.flush().expect("flush"), Seq(30));
    drop(wal);
    disk.crash();
    let wal = Wal::open_with(disk.storage(), small_segments()).expect("reopen");
    assert_eq!(wal.next_seq(), Seq(30), "flushed records were lost");
}

#[test]
fn a_failed_job_stops_the_log() {
    let disk = SimDisk::new(8);
    let mut wal = Wal::open_with(disk.storage(), small_segments()).expect("open");
    append(&mut wal, 0);
    assert_eq!(wal.flush().expect("flush"), Seq(1));
    append(&mut wal, 1);
    disk.inject(Fault {
        at_op: disk.ops(),
        only: Some(Op::SyncRange),
        error: FaultError::Eio,
        persistent: false,
    });
    let outcome = wal.start_flush().expect("start").expect("a job").run();
    assert!(!outcome.is_ok());
    assert!(matches!(wal.finish_flush(outcome), Err(Error::Io { .. })));
    assert_eq!(
        wal.durable_end(),
        Seq(1),
        "a failed job acknowledges nothing"
    );
    assert!(matches!(
        wal.append(kind(), b"later", &ChainHash::ZERO),
        Err(Error::FailStopped { .. })
    ));
    assert!(matches!(wal.flush(), Err(Error::FailStopped { .. })));
    assert!(matches!(wal.start_flush(), Err(Error::FailStopped { .. })));
}

#[test]
fn a_job_that_outlives_a_rollover_changes_nothing() {
    let disk = SimDisk::new(9);
    let mut wal = Wal::open_with(disk.storage(), small_segments()).expect("open");
    append(&mut wal, 0);
    let job = wal.start_flush().expect("start").expect("a job");
    let mut n = 1;
    let first_segments = wal.open_report().segments;
    // Fill the segment until the log rolls over (which syncs everything itself).
    while wal.open_report().segments == first_segments {
        append(&mut wal, n);
        n += 1;
    }
    let rolled_durable = wal.durable_end();
    assert!(
        rolled_durable > Seq(1),
        "the rollover flushed the old segment"
    );
    append(&mut wal, n);
    let outcome = job.run();
    assert_eq!(wal.finish_flush(outcome).expect("finish"), rolled_durable);
    // The current segment's unsynced records still get synced by the next flush.
    assert_eq!(wal.flush().expect("flush"), Seq(n + 1));
    drop(wal);
    disk.crash();
    let wal = Wal::open_with(disk.storage(), small_segments()).expect("reopen");
    assert_eq!(wal.next_seq(), Seq(n + 1));
}

#[test]
fn on_the_file_system_a_job_runs_beside_the_writer_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal");
    let mut wal = Wal::open(&path, WalOptions::default()).expect("open");
    for n in 0..100 {
        append(&mut wal, n);
    }
    let job = wal.start_flush().expect("start").expect("a job");
    let sync = std::thread::spawn(move || job.run());
    // The writer goes on into the same pages while the job syncs them.
    for n in 100..110 {
        append(&mut wal, n);
    }
    let outcome = sync.join().expect("sync thread");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(wal.finish_flush(outcome).expect("finish"), Seq(100));
    let expected: Vec<Vec<u8>> = (0..110).map(payload).collect();
    assert_eq!(read_back(&path), expected, "read while open");
    wal.close().expect("close");
    let wal = Wal::open(&path, WalOptions::default()).expect("reopen");
    assert_eq!(wal.next_seq(), Seq(110));
    drop(wal);
    assert_eq!(read_back(&path), expected, "after reopen");
}
