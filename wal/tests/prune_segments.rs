//! Guards the two WAL operations pruning rests on under power loss (`SimDisk`): ending a
//! segment early (`Wal::end_segment`) and removing whole old segments oldest first
//! (`Wal::remove_oldest_segment_below`). A crash at any storage operation of either leaves a
//! log that reopens, starts at a segment boundary at or below the horizon, and holds every
//! record that was flushed above it: never a hole, never a lost acknowledged record.

use trailmix_wal::sim::SimDisk;
use trailmix_wal::{ChainHash, RecordKind, Seq, Wal, WalOptions, WalReader};

const SEGMENT_BYTES: u64 = 8 * 4096;

fn options() -> WalOptions {
    WalOptions::default()
        .segment_bytes(SEGMENT_BYTES)
        .record_bytes_max(1024)
}

fn append(wal: &mut Wal<trailmix_wal::sim::SimStorage>, records: std::ops::Range<u64>) {
    let kind = RecordKind::new(1).expect("kind");
    for n in records {
        let payload = format!("record {n} {}", "x".repeat(100));
        wal.append(kind, payload.as_bytes(), &ChainHash::ZERO)
            .expect("append");
    }
}

/// Three segments ended early at seq 20 and 40, then records 40..60 in the third; all flushed.
fn three_segments(disk: &SimDisk) -> Wal<trailmix_wal::sim::SimStorage> {
    let mut wal = Wal::open_with(disk.storage(), options()).expect("open");
    append(&mut wal, 0..20);
    assert_eq!(wal.end_segment().expect("end"), Seq(20));
    append(&mut wal, 20..40);
    wal.end_segment().expect("end");
    append(&mut wal, 40..60);
    assert_eq!(wal.flush().expect("flush"), Seq(60));
    wal
}

/// Reopens after the crash and checks the log: it starts at 0, 20 or 40 (never above the
/// horizon 40), and every record from there to 60 reads back.
fn check_after_crash(disk: &SimDisk, at: u64) -> Seq {
    let wal = Wal::open_with(disk.storage(), options())
        .unwrap_or_else(|e| panic!("crash at op {at}: reopen failed: {e}"));
    assert_eq!(wal.durable_end(), Seq(60), "crash at op {at}: records lost");
    drop(wal);
    let reader = WalReader::open_with(disk.storage()).expect("reader");
    let first = reader
        .segments()
        .first()
        .expect("a segment")
        .header
        .first_seq;
    assert!(
        [Seq(0), Seq(20), Seq(40)].contains(&first),
        "crash at op {at}: the log starts at {first}"
    );
    for seq in first.0..60 {
        let record = reader
            .read(Seq(seq))
            .unwrap_or_else(|e| panic!("crash at op {at}: seq {seq}: {e}"));
        assert!(
            record
                .payload
                .starts_with(format!("record {seq} ").as_bytes())
        );
    }
    first
}

#[test]
fn a_crash_while_removing_old_segments_leaves_a_log_that_starts_at_a_boundary() {
    let mut starts = std::collections::BTreeSet::new();
    for at in 0.. {
        let mut froze = false;
        for seed in 0..4 {
            let disk = SimDisk::new(seed);
            let mut wal = three_segments(&disk);
            disk.crash_at_op(disk.ops() + at);
            while let Ok(Some(_)) = wal.remove_oldest_segment_below(Seq(40)) {}
            froze |= disk.is_frozen();
            drop(wal);
            disk.crash();
            starts.insert(check_after_crash(&disk, at));
        }
        if !froze {
            break; // every operation of the removals ran before the crash point
        }
    }
    // The crash points cover all three outcomes: nothing, one or both segments removed.
    assert_eq!(starts.len(), 3, "{starts:?}");
}

#[test]
fn removal_stops_at_the_horizon_and_at_the_current_segment() {
    let disk = SimDisk::new(7);
    let mut wal = three_segments(&disk);
    assert!(
        wal.remove_oldest_segment_below(Seq(19))
            .expect("remove")
            .is_none()
    );
    assert!(
        wal.remove_oldest_segment_below(Seq(30))
            .expect("remove")
            .is_some()
    );
    assert!(
        wal.remove_oldest_segment_below(Seq(30))
            .expect("remove")
            .is_none()
    );
    assert!(
        wal.remove_oldest_segment_below(Seq(40))
            .expect("remove")
            .is_some()
    );
    // The current segment is never removed, whatever the horizon.
    assert!(
        wal.remove_oldest_segment_below(Seq(1000))
            .expect("remove")
            .is_none()
    );
    drop(wal);
    assert_eq!(check_after_crash(&disk, u64::MAX), Seq(40));
}

#[test]
fn a_crash_while_ending_a_segment_loses_nothing_flushed() {
    for at in 0..10 {
        for seed in 0..4 {
            let disk = SimDisk::new(seed);
            let mut wal = Wal::open_with(disk.storage(), options()).expect("open");
            append(&mut wal, 0..20);
            wal.flush().expect("flush");
            disk.crash_at_op(disk.ops() + at);
            let ended = wal.end_segment();
            let mut appended = false;
            if ended.is_ok() {
                let kind = RecordKind::new(1).expect("kind");
                appended =
                    wal.append(kind, b"after", &ChainHash::ZERO).is_ok() && wal.flush().is_ok();
            }
            drop(wal);
            disk.crash();
            let wal = Wal::open_with(disk.storage(), options())
                .unwrap_or_else(|e| panic!("crash at op {at}: reopen failed: {e}"));
            let end = wal.durable_end();
            assert!(end >= Seq(20), "crash at op {at}: flushed records lost");
            if appended {
                assert_eq!(end, Seq(21), "crash at op {at}");
            }
        }
    }
}
