//! Guards invariant 7 (bad input gets a typed error that says what and where, and a failed open
//! changes nothing on disk) and the recovery decision table of invariant 4 (a torn tail after
//! the last flush is truncated; damage to anything durable is `Corrupted { segment, offset }`
//! and never repaired).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use trailmix_wal::format::{self, FRAME_HEADER_BYTES, META_FILE, SEGMENT_HEADER_BYTES};
use trailmix_wal::sim::SimDisk;
use trailmix_wal::{
    ChainHash, Error, OpenMode, RecordKind, SegmentNo, Seq, Wal, WalOptions, WalReader,
};

const SEGMENT_BYTES: u64 = 8 * 4096;
const RECORD_BYTES_MAX: u64 = 1024;

fn options() -> WalOptions {
    WalOptions::default()
        .segment_bytes(SEGMENT_BYTES)
        .record_bytes_max(RECORD_BYTES_MAX)
}

/// 100..=499 bytes, a function of `seq` (never all zero).
fn payload(seq: u64) -> Vec<u8> {
    let len = 100 + usize::try_from(seq * 37 % 400).expect("small");
    (0..len)
        .map(|j| u8::try_from((seq * 31 + j as u64 * 7) % 251 + 1).expect("fits"))
        .collect()
}

fn kind(seq: u64) -> RecordKind {
    RecordKind::new(u8::try_from(1 + seq % 127).expect("fits")).expect("user kind")
}

fn chain(seq: u64) -> ChainHash {
    ChainHash([u8::try_from(seq % 255).expect("fits") + 1; 32])
}

fn append(wal: &mut Wal, seqs: Range<u64>) {
    for seq in seqs {
        assert_eq!(
            wal.append(kind(seq), &payload(seq), &chain(seq))
                .expect("append"),
            Seq(seq)
        );
    }
}

/// A cleanly closed store of `records` records, flushed every 10.
fn build_store(dir: &Path, records: u64) -> Wal {
    let mut wal = Wal::open(dir, options()).expect("create store");
    for start in (0..records).step_by(10) {
        append(&mut wal, start..(start + 10).min(records));
        wal.flush().expect("flush");
    }
    wal
}

/// A closed store of 250 records in at least three segments.
fn three_segment_store(dir: &Path) {
    let wal = build_store(dir, 250);
    assert!(
        wal.current_segment().0 >= 2,
        "the store needs three segments"
    );
    wal.close().expect("close");
}

fn segment_path(dir: &Path, no: usize) -> PathBuf {
    let reader = WalReader::open(dir).expect("reader");
    dir.join(&reader.segments()[no].file_name)
}

fn position_of(dir: &Path, seq: u64) -> trailmix_wal::Position {
    WalReader::open(dir)
        .expect("reader")
        .read(Seq(seq))
        .expect("read")
        .position
}

fn xor_byte(path: &Path, offset: u64, mask: u8) {
    let mut bytes = std::fs::read(path).expect("read file");
    bytes[usize::try_from(offset).expect("fits")] ^= mask;
    std::fs::write(path, bytes).expect("write file");
}

/// Every file (and subdirectory) under `dir` with its bytes; `None` when `dir` does not exist.
fn snapshot(dir: &Path) -> Option<BTreeMap<PathBuf, Option<Vec<u8>>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).expect("list") {
            let path = entry.expect("entry").path();
            let name = path.strip_prefix(root).expect("under root").to_path_buf();
            if path.is_dir() {
                out.insert(name, None);
                walk(root, &path, out);
            } else {
                out.insert(name, Some(std::fs::read(&path).expect("read")));
            }
        }
    }
    if !dir.exists() {
        return None;
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    Some(out)
}

/// Opens for writing, expects an error, and checks that nothing on disk changed.
fn open_fails(dir: &Path, options: WalOptions) -> Error {
    let before = snapshot(dir);
    let result = Wal::open(dir, options);
    let after = snapshot(dir);
    let error = match result {
        Ok(wal) => panic!(
            "open of {} succeeded: {:?}",
            dir.display(),
            wal.open_report()
        ),
        Err(error) => error,
    };
    assert!(
        before == after,
        "the failed open ({error}) changed {}",
        dir.display()
    );
    error
}

fn reader_fails(dir: &Path) -> Error {
    let before = snapshot(dir);
    let error = WalReader::open(dir).expect_err("reader open should fail");
    assert!(
        before == snapshot(dir),
        "a reader changed {}",
        dir.display()
    );
    error
}

fn assert_corrupted(error: &Error, segment: u64, offset: u64, detail_has: &str) {
    match error {
        Error::Corrupted {
            segment: s,
            offset: o,
            detail,
        } => {
            assert_eq!(
                (*s, *o),
                (SegmentNo(segment), offset),
                "wrong place: {error}"
            );
            assert!(
                detail.contains(detail_has),
                "detail {detail:?} should mention {detail_has:?}"
            );
            assert!(
                error
                    .to_string()
                    .contains(&format!("segment {segment} at byte offset {offset}")),
                "message does not say where: {error}"
            );
        }
        other => panic!("expected Corrupted at segment {segment} offset {offset}, got {other:?}"),
    }
}

#[test]
fn oversized_record_is_rejected_and_the_log_keeps_working() {
    assert_eq!(
        WalOptions::default().get_record_bytes_max(),
        16 << 20,
        "default maximum"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(dir.path(), options()).expect("open");
    append(&mut wal, 0..3);
    let too_big = vec![7u8; usize::try_from(RECORD_BYTES_MAX).expect("fits") + 1];
    match wal.append(kind(3), &too_big, &ChainHash::ZERO) {
        Err(error @ Error::RecordTooLarge { .. }) => {
            assert!(matches!(
                error,
                Error::RecordTooLarge {
                    len: 1025,
                    max: 1024
                }
            ));
            let message = error.to_string();
            assert!(
                message.contains("1025") && message.contains("1024"),
                "{message}"
            );
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    // Nothing was appended, the log is not stopped, and the maximum itself is accepted.
    assert_eq!(wal.next_seq(), Seq(3));
    let largest = vec![9u8; usize::try_from(RECORD_BYTES_MAX).expect("fits")];
    assert_eq!(
        wal.append(kind(3), &largest, &ChainHash::ZERO)
            .expect("append max"),
        Seq(3)
    );
    assert_eq!(wal.flush().expect("flush"), Seq(4));
    wal.close().expect("close");

    let records = WalReader::open(dir.path())
        .expect("reader")
        .read_from(Seq(0))
        .expect("read");
    assert_eq!(records.len(), 4);
    assert_eq!(records[2].payload, payload(2));
    assert_eq!(records[3].payload, largest);
}

#[test]
fn reserved_record_kinds_are_rejected() {
    for reserved in [0u8, 128, 200, 255] {
        match RecordKind::new(reserved) {
            Err(error @ Error::ReservedKind { kind }) => {
                assert_eq!(kind, reserved);
                assert!(error.to_string().contains(&format!("kind {reserved} ")));
            }
            other => panic!("kind {reserved}: expected ReservedKind, got {other:?}"),
        }
    }
    for user in [1u8, 64, 127] {
        assert_eq!(RecordKind::new(user).expect("user kind").get(), user);
    }
}

#[test]
fn directory_with_other_files_is_not_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), b"my notes").expect("write");
    for mode in [OpenMode::CreateIfMissing, OpenMode::MustExist] {
        match open_fails(dir.path(), options().open_mode(mode)) {
            Error::NotAStore { path, reason } => {
                assert_eq!(path, dir.path());
                assert!(reason.contains("notes.txt"), "{reason}");
            }
            other => panic!("expected NotAStore, got {other:?}"),
        }
    }
    assert!(matches!(
        reader_fails(dir.path()),
        Error::NotAStore { path, .. } if path == dir.path()
    ));
    // In particular no LOCK file was created.
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);

    // A wal.meta that is not ours.
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join(META_FILE), [0x42u8; 64]).expect("write");
    match open_fails(other.path(), options()) {
        Error::NotAStore { path, reason } => {
            assert_eq!(path, other.path());
            assert!(reason.contains("magic"), "{reason}");
        }
        other => panic!("expected NotAStore, got {other:?}"),
    }
    assert!(matches!(
        reader_fails(other.path()),
        Error::NotAStore { .. }
    ));

    // A plain file where the directory should be.
    let file = dir.path().join("notes.txt");
    match Wal::open(&file, options()) {
        Err(error @ Error::Io { .. }) => {
            assert!(error.to_string().contains("notes.txt"), "{error}");
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert_eq!(std::fs::read(&file).expect("read"), b"my notes");
}

#[test]
fn missing_store_is_not_created_when_it_must_exist() {
    let root = tempfile::tempdir().expect("tempdir");
    let must_exist = options().open_mode(OpenMode::MustExist);

    let absent = root.path().join("absent");
    match open_fails(&absent, must_exist.clone()) {
        Error::Missing { path } => assert_eq!(path, absent),
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(!absent.exists(), "the directory was created");
    assert!(matches!(reader_fails(&absent), Error::Missing { path } if path == absent));

    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    match open_fails(&empty, must_exist) {
        error @ Error::Missing { .. } => {
            assert!(error.to_string().contains("empty"), "{error}");
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(matches!(reader_fails(&empty), Error::Missing { .. }));

    // The default mode creates it.
    let wal = Wal::open(&absent, options()).expect("create");
    assert!(wal.open_report().created);
}

#[test]
fn segment_from_another_store_is_foreign() {
    let root = tempfile::tempdir().expect("tempdir");
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    three_segment_store(&a);
    three_segment_store(&b);
    let id_a = WalReader::open(&a).expect("reader").meta().store_id;
    let id_b = WalReader::open(&b).expect("reader").meta().store_id;
    assert_ne!(id_a, id_b);
    let (from, to) = (segment_path(&a, 1), segment_path(&b, 1));
    assert_eq!(from.file_name(), to.file_name(), "identical stores");
    std::fs::copy(&from, &to).expect("copy segment");

    for error in [open_fails(&b, options()), reader_fails(&b)] {
        match &error {
            Error::ForeignSegment {
                segment,
                path,
                found,
                expected,
            } => {
                assert_eq!(*segment, SegmentNo(1));
                assert_eq!(*path, to);
                assert_eq!(*found, id_a.to_string());
                assert_eq!(*expected, id_b.to_string());
                let message = error.to_string();
                assert!(message.contains(&to.display().to_string()), "{message}");
                assert!(message.contains(&found.clone()), "{message}");
            }
            other => panic!("expected ForeignSegment, got {other:?}"),
        }
    }
}

/// Sets the format version at byte 8 and recomputes the CRC at `crc_at` over `..crc_at`, so
/// that the file is valid in every way but its version.
fn set_version(path: &Path, version: u16, crc_at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[8..10].copy_from_slice(&version.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..crc_at]);
    bytes[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, bytes).expect("write");
}

fn assert_unsupported_version(error: &Error, file: &Path) {
    match error {
        Error::UnsupportedVersion {
            path,
            found,
            supported,
        } => {
            assert_eq!(path, file);
            assert_eq!((*found, *supported), (2, format::FORMAT_VERSION));
            let message = error.to_string();
            assert!(
                message.contains(&file.display().to_string()) && message.contains("version 2"),
                "{message}"
            );
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn newer_format_version_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");

    let in_meta = root.path().join("meta");
    three_segment_store(&in_meta);
    let meta = in_meta.join(META_FILE);
    set_version(&meta, 2, 60);
    assert_unsupported_version(&open_fails(&in_meta, options()), &meta);
    assert_unsupported_version(&reader_fails(&in_meta), &meta);

    let in_segment = root.path().join("segment");
    three_segment_store(&in_segment);
    let segment = segment_path(&in_segment, 0);
    set_version(&segment, 2, 124);
    assert_unsupported_version(&open_fails(&in_segment, options()), &segment);
    assert_unsupported_version(&reader_fails(&in_segment), &segment);
}

#[test]
fn damaged_or_short_metadata_is_reported() {
    let root = tempfile::tempdir().expect("tempdir");

    let flipped = root.path().join("flipped");
    three_segment_store(&flipped);
    let meta = flipped.join(META_FILE);
    xor_byte(&meta, 20, 0x01); // inside the store id
    for error in [open_fails(&flipped, options()), reader_fails(&flipped)] {
        match error {
            Error::BadMeta { path, detail } => {
                assert_eq!(path, meta);
                assert!(detail.contains("checksum"), "{detail}");
            }
            other => panic!("expected BadMeta, got {other:?}"),
        }
    }

    let short = root.path().join("short");
    three_segment_store(&short);
    let meta = short.join(META_FILE);
    let bytes = std::fs::read(&meta).expect("read");
    std::fs::write(&meta, &bytes[..10]).expect("truncate");
    for error in [open_fails(&short, options()), reader_fails(&short)] {
        match error {
            Error::Truncated { path, len, needed } => {
                assert_eq!((path, len, needed), (meta.clone(), 10, 64));
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
    }
}

#[test]
fn truncated_segment_is_reported() {
    let root = tempfile::tempdir().expect("tempdir");
    for (case, segment_no, new_len, needed) in [
        ("below-header", 2, 100, SEGMENT_HEADER_BYTES),
        ("empty", 0, 0, SEGMENT_HEADER_BYTES),
        ("below-size", 1, SEGMENT_HEADER_BYTES + 512, SEGMENT_BYTES),
    ] {
        let dir = root.path().join(case);
        three_segment_store(&dir);
        let segment = segment_path(&dir, segment_no);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .expect("open segment")
            .set_len(new_len)
            .expect("truncate");
        for error in [open_fails(&dir, options()), reader_fails(&dir)] {
            match &error {
                Error::Truncated {
                    path,
                    len,
                    needed: n,
                } => {
                    assert_eq!((path, *len, *n), (&segment, new_len, needed), "{case}");
                    let message = error.to_string();
                    assert!(
                        message.contains(&segment.display().to_string()),
                        "{message}"
                    );
                }
                other => panic!("{case}: expected Truncated, got {other:?}"),
            }
        }
    }
}

#[test]
fn invalid_options_are_rejected_before_touching_disk() {
    let root = tempfile::tempdir().expect("tempdir");
    let absent = root.path().join("absent");
    let existing = root.path().join("existing");
    build_store(&existing, 20).close().expect("close");
    let cases = [
        ("segment_bytes", options().segment_bytes(SEGMENT_BYTES + 1)),
        ("segment_bytes", options().segment_bytes(32 << 30)),
        ("segment_bytes", options().segment_bytes(0)),
        ("segment_bytes", options().segment_bytes(4096)),
        (
            "segment_bytes",
            options()
                .segment_bytes(SEGMENT_BYTES)
                .record_bytes_max(SEGMENT_BYTES),
        ),
        ("record_bytes_max", options().record_bytes_max(0)),
        (
            "record_bytes_max",
            options()
                .segment_bytes(1 << 33)
                .record_bytes_max(u64::from(u32::MAX) + 1),
        ),
    ];
    for (option, invalid) in cases {
        for dir in [&absent, &existing] {
            match open_fails(dir, invalid.clone()) {
                error @ Error::InvalidOption { name, .. } => {
                    assert_eq!(name, option, "{error}");
                    assert!(error.to_string().contains(option), "{error}");
                }
                other => panic!("{option}: expected InvalidOption, got {other:?}"),
            }
        }
        assert!(!absent.exists(), "invalid options created the directory");
    }
}

#[test]
fn torn_tail_after_the_last_flush_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(dir.path(), options()).expect("open");
    append(&mut wal, 0..10);
    assert_eq!(wal.flush().expect("flush"), Seq(10));
    append(&mut wal, 10..13); // never flushed
    let torn = position_of(dir.path(), 10);
    let last = position_of(dir.path(), 12);
    drop(wal); // a crash
    let segment = segment_path(dir.path(), 0);
    // Tear record 10: its payload's second half never reached the disk.
    let mut bytes = std::fs::read(&segment).expect("read");
    let payload_at = usize::try_from(torn.offset + FRAME_HEADER_BYTES).expect("fits");
    let half = payload(10).len() / 2;
    bytes[payload_at + half..payload_at + 2 * half].fill(0);
    std::fs::write(&segment, bytes).expect("write");

    let wal = Wal::open(dir.path(), options()).expect("reopen after a torn tail");
    let (start, end) = wal.open_report().torn_tail.expect("a torn tail");
    let last_end = last.offset + format::frame_bytes(payload(12).len() as u64);
    assert_eq!(start, torn.offset);
    assert!(end > last.offset && end <= last_end, "{start}..{end}");
    assert_eq!(wal.next_seq(), Seq(10), "only unflushed records are cut");
    assert_eq!(wal.open_report().records, Seq(10));
    drop(wal);
    let bytes = std::fs::read(&segment).expect("read");
    let erased = usize::try_from(start).expect("fits")..usize::try_from(last_end).expect("fits");
    assert!(
        bytes[erased].iter().all(|&b| b == 0),
        "the torn tail is erased"
    );

    let mut wal = Wal::open(dir.path(), options()).expect("reopen again");
    assert_eq!(wal.open_report().torn_tail, None);
    assert_eq!(wal.next_seq(), Seq(10));
    let replacement = b"written after recovery".to_vec();
    wal.append(kind(10), &replacement, &ChainHash::ZERO)
        .expect("append");
    assert_eq!(wal.flush().expect("flush"), Seq(11));
    wal.close().expect("close");
    let records = WalReader::open(dir.path())
        .expect("reader")
        .read_from(Seq(0))
        .expect("read");
    assert_eq!(records.len(), 11);
    assert!(records[..10].iter().all(|r| r.payload == payload(r.seq.0)));
    assert_eq!(records[10].payload, replacement);
}

#[test]
fn damage_to_a_durable_record_is_corrupted_not_truncated() {
    let template = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(template.path(), options()).expect("open");
    append(&mut wal, 0..10);
    wal.flush().expect("flush");
    append(&mut wal, 10..20);
    wal.flush().expect("flush"); // records 10.. vouch that 0..10 were durable
    let damaged = position_of(template.path(), 5);
    drop(wal); // no seal: only the later frames can tell damage from a torn tail
    let len = u64::try_from(payload(5).len()).expect("fits");

    // A flipped bit in the checksum, the length, the seq, the kind, the payload's first and
    // last byte: each is damage at the frame of seq 5.
    for (what, at) in [
        ("crc", 0),
        ("payload_len", 4),
        ("seq", 8),
        ("kind", 24),
        ("first payload byte", FRAME_HEADER_BYTES),
        ("last payload byte", FRAME_HEADER_BYTES + len - 1),
    ] {
        let copy = tempfile::tempdir().expect("tempdir");
        copy_store(template.path(), copy.path());
        let segment = segment_path(copy.path(), 0);
        xor_byte(&segment, damaged.offset + at, 0x10);
        let error = open_fails(copy.path(), options());
        assert_corrupted(&error, 0, damaged.offset, "seq 5");
        assert!(
            error.to_string().contains("durable"),
            "{what}: the message should say why this is not a torn tail: {error}"
        );
    }
}

#[test]
fn damage_inside_a_sealed_segment_is_corrupted() {
    let template = tempfile::tempdir().expect("tempdir");
    three_segment_store(template.path());
    let reader = WalReader::open(template.path()).expect("reader");
    let first_of_1 = reader.segments()[1].header.first_seq.0;
    let victim = first_of_1 - 3; // in segment 0, which is sealed (rolled)
    let position = reader.read(Seq(victim)).expect("read").position;
    assert_eq!(position.segment, SegmentNo(0));
    drop(reader);

    // A damaged frame: readers and verify refuse to read past it.
    let copy = tempfile::tempdir().expect("tempdir");
    copy_store(template.path(), copy.path());
    xor_byte(
        &segment_path(copy.path(), 0),
        position.offset + FRAME_HEADER_BYTES + 1,
        0x01,
    );
    let reader = WalReader::open(copy.path()).expect("headers are intact");
    let error = reader
        .read_from(Seq(0))
        .expect_err("reading through a damaged sealed segment");
    assert_corrupted(&error, 0, position.offset, &format!("seq {victim}"));
    let error = reader.verify().expect_err("verify");
    assert_corrupted(&error, 0, position.offset, &format!("seq {victim}"));
    assert_eq!(
        reader
            .read(Seq(victim - 1))
            .expect("before the damage")
            .payload,
        payload(victim - 1)
    );

    // A damaged seal of a segment that is followed by another.
    let copy = tempfile::tempdir().expect("tempdir");
    copy_store(template.path(), copy.path());
    xor_byte(&segment_path(copy.path(), 0), 514, 0x01);
    assert_corrupted(&open_fails(copy.path(), options()), 0, 512, "seal");
    assert_corrupted(&reader_fails(copy.path()), 0, 512, "seal");

    // A damaged header.
    let copy = tempfile::tempdir().expect("tempdir");
    copy_store(template.path(), copy.path());
    xor_byte(&segment_path(copy.path(), 1), 20, 0x01);
    assert_corrupted(&open_fails(copy.path(), options()), 1, 0, "checksum");
    assert_corrupted(&reader_fails(copy.path()), 1, 0, "checksum");
}

#[test]
fn missing_segment_is_corrupted() {
    let template = tempfile::tempdir().expect("tempdir");
    three_segment_store(template.path());
    // A missing first segment is not a hole: the log starts later (the engine prunes whole
    // segments and names its first kept seq; it reports a start it did not prune as missing
    // history, see engine/tests/prune.rs).
    let copy = tempfile::tempdir().expect("tempdir");
    copy_store(template.path(), copy.path());
    std::fs::remove_file(segment_path(copy.path(), 1)).expect("remove");
    let error = open_fails(copy.path(), options());
    assert_corrupted(&error, 2, 32, "missing");
    assert!(
        error.to_string().contains("expected segment number 1"),
        "{error}"
    );
    assert_corrupted(&reader_fails(copy.path()), 2, 32, "missing");
    let copy = tempfile::tempdir().expect("tempdir");
    copy_store(template.path(), copy.path());
    std::fs::remove_file(segment_path(copy.path(), 0)).expect("remove");
    let reader = WalReader::open(copy.path()).expect("a log that starts at segment 1");
    let first = reader.segments().first().expect("segments").header;
    assert_eq!(first.segment_no, SegmentNo(1));
    assert!(first.first_seq > Seq(0));
    assert!(matches!(
        reader.read(Seq(0)),
        Err(Error::SeqOutOfRange { .. })
    ));
}

#[test]
fn damage_covered_only_by_the_clean_close_seal_is_corrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(dir.path(), options()).expect("open");
    append(&mut wal, 0..10);
    assert_eq!(wal.close().expect("close"), Seq(10)); // the seal is the only witness
    let last = position_of(dir.path(), 9);
    xor_byte(
        &segment_path(dir.path(), 0),
        last.offset + FRAME_HEADER_BYTES + 3,
        0x80,
    );
    let error = open_fails(dir.path(), options());
    assert_corrupted(&error, 0, last.offset, "seal");
    // verify applies the same decision without a writer.
    let reader = WalReader::open(dir.path()).expect("reader");
    assert_corrupted(
        &reader.verify().expect_err("verify"),
        0,
        last.offset,
        "seal",
    );
}

#[test]
fn simulated_medium_damage_to_a_flushed_record_is_corrupted() {
    let disk = SimDisk::new(7);
    let mut wal = Wal::open_with(disk.storage(), options()).expect("open");
    for seq in 0..30 {
        wal.append(kind(seq), &payload(seq), &chain(seq))
            .expect("append");
        if seq % 3 == 2 {
            wal.flush().expect("flush");
        }
    }
    drop(wal);
    let reader = WalReader::open_with(disk.storage()).expect("reader");
    let position = reader.read(Seq(17)).expect("read").position;
    let name = reader.segments()[0].file_name.clone();
    drop(reader);
    let at = usize::try_from(position.offset).expect("fits") + 40;
    let mut byte = disk.durable_bytes(&name).expect("segment")[at];
    byte ^= 0x04;
    assert!(disk.corrupt(&name, at, &[byte]));

    let names = disk.file_names();
    let durable: Vec<_> = names.iter().map(|n| disk.durable_bytes(n)).collect();
    let error = Wal::open_with(disk.storage(), options()).expect_err("damaged");
    assert_corrupted(&error, 0, position.offset, "seq 17");
    assert_eq!(
        disk.file_names(),
        names,
        "the failed open changed the file list"
    );
    let after: Vec<_> = names.iter().map(|n| disk.durable_bytes(n)).collect();
    assert!(durable == after, "the failed open changed a file");
}

fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}
