//! Guards read-only opening of a log that a writer is appending to: every reader sees a valid,
//! dense prefix of what was appended, never a torn or foreign record, across rollovers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use trailmix_wal::{ChainHash, RecordKind, Seq, Wal, WalOptions, WalReader};

fn payload(seq: u64) -> Vec<u8> {
    let len = usize::try_from(seq * 7919 % 1500).expect("small");
    (0..len)
        .map(|i| u8::try_from((seq + i as u64 * 31) % 256).expect("byte"))
        .collect()
}

#[test]
fn readers_see_a_valid_prefix_while_the_writer_appends() {
    const RECORDS: u64 = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = WalOptions::default()
        .segment_bytes(32 * 4096)
        .record_bytes_max(2048);
    let mut wal = Wal::open(dir.path(), options).expect("open");
    let done = Arc::new(AtomicBool::new(false));
    let writer_done = Arc::clone(&done);
    let writer = std::thread::spawn(move || {
        let kind = RecordKind::new(2).expect("kind");
        for seq in 0..RECORDS {
            assert_eq!(
                wal.append(kind, &payload(seq), &ChainHash::ZERO)
                    .expect("append"),
                Seq(seq)
            );
            if seq % 50 == 49 {
                wal.flush().expect("flush");
            }
        }
        wal.close().expect("close");
        writer_done.store(true, Ordering::SeqCst);
    });

    let mut seen_before = 0u64;
    let mut rounds = 0u32;
    loop {
        let finished = done.load(Ordering::SeqCst);
        let reader = WalReader::open(dir.path()).expect("read-only open during writes");
        let records = reader.read_from(Seq(0)).expect("scan during writes");
        for (index, record) in records.iter().enumerate() {
            assert_eq!(record.seq, Seq(index as u64), "dense prefix");
            assert_eq!(
                record.payload,
                payload(record.seq.0),
                "seq {} has the bytes that were appended",
                record.seq
            );
        }
        let seen = records.len() as u64;
        assert!(
            seen >= seen_before,
            "a later reader never sees less ({seen} < {seen_before})"
        );
        seen_before = seen;
        rounds += 1;
        if finished {
            assert_eq!(seen, RECORDS, "after close every record is visible");
            break;
        }
    }
    writer.join().expect("writer thread");
    assert!(rounds > 1, "the reader ran while the writer was writing");
}

#[test]
fn a_reader_keeps_a_bounded_number_of_segment_maps() {
    use trailmix_wal::OPEN_SEGMENTS_MAX;
    const RECORDS: u64 = 8_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = WalOptions::default()
        .segment_bytes(32 * 4096)
        .record_bytes_max(2048);
    let mut wal = Wal::open(dir.path(), options).expect("open");
    let kind = RecordKind::new(2).expect("kind");
    for seq in 0..RECORDS {
        wal.append(kind, &payload(seq), &ChainHash::ZERO)
            .expect("append");
    }
    wal.close().expect("close");
    let reader = WalReader::open(dir.path()).expect("reader");
    assert!(
        reader.segments().len() > 2 * OPEN_SEGMENTS_MAX,
        "the log must span many segments ({})",
        reader.segments().len()
    );
    // Random reads over every segment, twice: each returns its record, and the reader never
    // keeps more maps than the bound.
    for round in 0..2u64 {
        for i in 0..RECORDS {
            let seq = (i * 7919 + round) % RECORDS;
            let record = reader.read(Seq(seq)).expect("read");
            assert_eq!(record.payload, payload(seq), "seq {seq}");
            assert!(reader.mapped_segments() <= OPEN_SEGMENTS_MAX);
        }
    }
    assert_eq!(reader.mapped_segments(), OPEN_SEGMENTS_MAX);
    let mut count = 0;
    reader
        .scan(Seq(0), |_| {
            count += 1;
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    assert_eq!(count, RECORDS);
}
