//! Guards the WAL's basic contract on the real file system: append, flush, rollover, reopen,
//! read by sequence and by position, the writer lock, and the clean-close seal; and that a scan
//! trusting sealed segments skips checksums only in rolled-over segments, never in the last.

use trailmix_wal::{ChainHash, Error, RecordKind, Seq, Wal, WalOptions, WalReader};

fn small_options() -> WalOptions {
    WalOptions::default()
        .segment_bytes(16 * 4096)
        .record_bytes_max(4096)
}

fn payload(i: u64) -> Vec<u8> {
    let len = usize::try_from(i % 700).expect("small") + 1;
    (0..len)
        .map(|j| u8::try_from((i + j as u64) % 251).expect("fits"))
        .collect()
}

#[test]
fn append_rollover_reopen_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kind = RecordKind::new(7).expect("kind");
    let mut wal = Wal::open(dir.path(), small_options()).expect("open");
    assert!(wal.open_report().created);
    for i in 0..1000 {
        let chain = ChainHash([u8::try_from(i % 256).expect("fits"); 32]);
        assert_eq!(
            wal.append(kind, &payload(i), &chain).expect("append"),
            Seq(i)
        );
        if i % 37 == 0 {
            assert_eq!(wal.flush().expect("flush"), Seq(i + 1));
        }
    }
    assert_eq!(wal.flush().expect("flush"), Seq(1000));
    assert!(wal.current_segment().0 > 3, "small segments roll over");
    drop(wal); // no clean close: like a process crash after the last flush

    let wal = Wal::open(dir.path(), small_options()).expect("reopen");
    assert_eq!(wal.next_seq(), Seq(1000));
    assert_eq!(wal.open_report().torn_tail, None);
    wal.close().expect("close");

    let reader = WalReader::open(dir.path()).expect("reader");
    let records = reader.read_from(Seq(0)).expect("scan");
    assert_eq!(records.len(), 1000);
    for record in &records {
        assert_eq!(record.payload, payload(record.seq.0));
        assert_eq!(record.kind, kind);
        assert_eq!(reader.read_at(record.position).expect("read_at"), *record);
    }
    assert_eq!(reader.read(Seq(555)).expect("read").payload, payload(555));
    assert!(matches!(
        reader.read(Seq(1000)),
        Err(Error::SeqOutOfRange { .. })
    ));
    for info in &reader.segments()[1..] {
        // A segment header records the chain link passed with the segment's first record.
        let first = info.header.first_seq.0;
        assert_eq!(
            info.header.prev_chain_hash,
            ChainHash([u8::try_from(first % 256).expect("fits"); 32])
        );
        assert_eq!(
            records[usize::try_from(first).expect("fits")]
                .position
                .offset,
            4096
        );
    }
}

#[test]
fn second_writer_is_locked_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _wal = Wal::open(dir.path(), small_options()).expect("open");
    match Wal::open(dir.path(), small_options()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    WalReader::open(dir.path()).expect("readers need no lock");
}

#[test]
fn hinted_reads_equal_plain_reads_whatever_the_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kind = RecordKind::new(7).expect("kind");
    let mut wal = Wal::open(dir.path(), small_options()).expect("open");
    for i in 0..600 {
        wal.append(kind, &payload(i), &ChainHash::ZERO)
            .expect("append");
    }
    wal.flush().expect("flush");
    let reader = WalReader::open(dir.path()).expect("reader");
    let records = reader.read_from(Seq(0)).expect("scan");
    for target in [0_usize, 1, 57, 299, 300, 599] {
        let want = &records[target];
        // A good hint (an earlier frame of the same segment), the record itself, a hint from
        // another segment, a hint past the target and a hint that points at no frame.
        let same_segment = records[..=target]
            .iter()
            .rev()
            .find(|r| r.position.segment == want.position.segment && r.seq.0 + 5 <= want.seq.0);
        let mut hints = vec![None, Some((want.seq, want.position))];
        hints.extend(same_segment.map(|r| Some((r.seq, r.position))));
        hints.push(Some((records[0].seq, records[0].position)));
        hints.push(Some((records[599].seq, records[599].position)));
        let mut bogus = want.position;
        bogus.offset += 8;
        hints.push(Some((want.seq, bogus)));
        for hint in hints {
            let got = reader.read_with_hint(want.seq, hint).expect("read");
            assert_eq!(&got, want, "hint {hint:?}");
        }
    }
    let end = reader.read_with_hint(Seq(600), Some((records[599].seq, records[599].position)));
    assert!(matches!(end, Err(Error::SeqOutOfRange { .. })), "{end:?}");
}

#[test]
fn a_scan_trusting_sealed_segments_checks_the_last_segments_frames_only() {
    use std::ops::ControlFlow;
    let dir = tempfile::tempdir().expect("tempdir");
    let kind = RecordKind::new(7).expect("kind");
    let mut wal = Wal::open(dir.path(), small_options()).expect("open");
    for i in 0..400 {
        wal.append(kind, &payload(i), &ChainHash([0; 32]))
            .expect("append");
    }
    wal.close().expect("close");
    let reader = WalReader::open(dir.path()).expect("reader");
    let records = reader.read_from(Seq(0)).expect("scan");
    let last_segment = reader
        .segments()
        .last()
        .expect("segments")
        .header
        .segment_no;
    let sealed = records.iter().find(|r| r.seq == Seq(5)).expect("record 5");
    let unsealed = records.iter().rev().nth(3).expect("a record near the end");
    assert_ne!(sealed.position.segment, last_segment);
    assert_eq!(unsealed.position.segment, last_segment);
    let flip = |record: &trailmix_wal::Record| {
        let info = reader
            .segments()
            .iter()
            .find(|s| s.header.segment_no == record.position.segment)
            .expect("its segment");
        let path = dir.path().join(&info.file_name);
        let mut bytes = std::fs::read(&path).expect("read segment");
        let at = usize::try_from(record.position.offset + trailmix_wal::format::FRAME_HEADER_BYTES)
            .expect("fits");
        bytes[at] ^= 0x10;
        std::fs::write(&path, bytes).expect("write segment");
    };
    flip(sealed);
    flip(unsealed);
    let reader = WalReader::open(dir.path()).expect("reader");
    // A plain scan stops at the damaged frame of the sealed segment.
    assert!(matches!(
        reader.scan(Seq(0), |_| ControlFlow::Continue(())),
        Err(Error::Corrupted { .. })
    ));
    // Trusting sealed segments: the sealed segment's damaged bytes pass as they are, the last
    // segment's damaged frame ends the scan (a torn frame is never passed).
    let mut seen = Vec::new();
    let end = reader
        .scan_with_hint_trusting_sealed(Seq(0), None, |record| {
            seen.push((record.seq, record.payload.to_vec()));
            ControlFlow::Continue(())
        })
        .expect("scan");
    assert_eq!(end, unsealed.seq);
    assert_eq!(seen.len() as u64, unsealed.seq.0);
    let mut changed = sealed.payload.clone();
    changed[0] ^= 0x10;
    assert_eq!(seen[5].1, changed);
}
