//! Guards the on-disk format against silent change: a small store checked in under
//! `tests/fixtures/small-wal/` (three 32 KiB segments, 64 records of several kinds, chain hashes
//! in the headers, cleanly closed) must read back record by record, header by header, and byte
//! by byte as `docs/design.md` specifies.
//!
//! A deliberate format change regenerates the fixture with `TRAILMIX_REGENERATE_FIXTURES=1
//! cargo test -p trailmix-wal --test fixture` (and bumps the format version and the design
//! document in the same commit).

use std::path::{Path, PathBuf};

use trailmix_wal::format::{self, LOCK_FILE, META_FILE, SealKind};
use trailmix_wal::{
    ChainHash, HashAlgorithm, OpenMode, Position, RecordKind, SegmentNo, SegmentPreparation, Seq,
    Wal, WalOptions, WalReader,
};

const SEGMENT_BYTES: u64 = 8 * 4096;
const RECORDS: u64 = 64;
const FLUSH_EVERY: u64 = 4;
const SEGMENTS: usize = 3;
const KINDS: [u8; 5] = [1, 2, 3, 42, 127];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small-wal")
}

fn options() -> WalOptions {
    WalOptions::default()
        .segment_bytes(SEGMENT_BYTES)
        .record_bytes_max(4096)
        .preparation(SegmentPreparation::OnDemand)
}

/// Readable text, `seq`-specific, 0..=2016 bytes (seq 7 is empty).
fn payload(seq: u64) -> Vec<u8> {
    let len = if seq == 7 {
        0
    } else {
        usize::try_from(17 + seq * 389 % 2000).expect("small")
    };
    format!("record {seq} of the trailmix fixture; ")
        .bytes()
        .cycle()
        .take(len)
        .collect()
}

fn kind(seq: u64) -> u8 {
    KINDS[usize::try_from(seq).expect("small") % KINDS.len()]
}

/// The (non-zero) chain hash passed with record `seq`.
fn chain(seq: u64) -> ChainHash {
    let mut hash = [0u8; 32];
    for (j, byte) in hash.iter_mut().enumerate() {
        *byte = u8::try_from((seq * 7 + j as u64 * 13 + 1) % 256).expect("fits");
    }
    ChainHash(hash)
}

/// Where each record must be, computed from the format's rules alone.
#[derive(Debug)]
struct Layout {
    /// Per record: position and the `durable_end` its frame carries.
    frames: Vec<(Position, u64)>,
    /// Per segment: first seq, and end (seq, offset) of its frames.
    segments: Vec<(u64, u64, u64)>,
}

fn expected_layout() -> Layout {
    let mut frames = Vec::new();
    let mut segments = Vec::new();
    let (mut first, mut offset, mut durable) = (0u64, format::SEGMENT_HEADER_BYTES, 0u64);
    for seq in 0..RECORDS {
        let bytes = format::frame_bytes(payload(seq).len() as u64);
        if offset + bytes > SEGMENT_BYTES {
            segments.push((first, seq, offset));
            (first, offset, durable) = (seq, format::SEGMENT_HEADER_BYTES, seq);
        }
        let segment = SegmentNo(segments.len() as u64);
        frames.push((Position { segment, offset }, durable));
        offset += bytes;
        if (seq + 1) % FLUSH_EVERY == 0 {
            durable = seq + 1;
        }
    }
    segments.push((first, RECORDS, offset));
    Layout { frames, segments }
}

fn regenerate(dir: &Path) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("remove the old fixture");
    }
    let mut wal = Wal::open(dir, options()).expect("create the fixture");
    for seq in 0..RECORDS {
        let kind = RecordKind::new(kind(seq)).expect("kind");
        assert_eq!(
            wal.append(kind, &payload(seq), &chain(seq))
                .expect("append"),
            Seq(seq)
        );
        if (seq + 1) % FLUSH_EVERY == 0 {
            assert_eq!(wal.flush().expect("flush"), Seq(seq + 1));
        }
    }
    assert_eq!(wal.close().expect("close"), Seq(RECORDS));
    std::fs::remove_file(dir.join(LOCK_FILE)).expect("remove LOCK");
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).expect("fits")
}

/// The fixture's files, checked against the byte layout in `docs/design.md` without the
/// crate's decoders.
fn check_raw_bytes(dir: &Path, layout: &Layout) {
    let meta = std::fs::read(dir.join(META_FILE)).expect("wal.meta");
    assert_eq!(meta.len(), 64);
    assert_eq!(&meta[0..8], b"TMIXWAL\0", "wal.meta magic");
    assert_eq!(u16_at(&meta, 8), 1, "wal.meta format version");
    assert_eq!(meta[10], 1, "hash algorithm: BLAKE3");
    assert!(meta[11..16].iter().all(|&b| b == 0), "reserved");
    assert!(meta[40..60].iter().all(|&b| b == 0), "reserved");
    assert_eq!(
        u32_at(&meta, 60),
        crc32c::crc32c(&meta[..60]),
        "wal.meta crc"
    );
    let store_id = &meta[16..32];
    assert!(store_id.iter().any(|&b| b != 0), "store id");

    for (no, &(first, end_seq, end_offset)) in layout.segments.iter().enumerate() {
        let name = format!("{first:020}.seg");
        let seg = std::fs::read(dir.join(&name)).expect("segment file");
        assert_eq!(seg.len() as u64, SEGMENT_BYTES, "{name}: size");
        assert_eq!(&seg[0..8], b"TMIXSEG\0", "{name}: magic");
        assert_eq!(u16_at(&seg, 8), 1, "{name}: format version");
        assert_eq!(seg[10], 1, "{name}: hash algorithm");
        assert_eq!(seg[11], 0, "{name}: reserved");
        assert_eq!(u32_at(&seg, 12), 4096, "{name}: header bytes");
        assert_eq!(&seg[16..32], store_id, "{name}: store id");
        assert_eq!(u64_at(&seg, 32), no as u64, "{name}: segment number");
        assert_eq!(u64_at(&seg, 40), first, "{name}: first seq");
        let link = if no == 0 {
            ChainHash::ZERO
        } else {
            chain(first)
        };
        assert_eq!(&seg[48..80], &link.0, "{name}: previous chain hash");
        assert_eq!(u64_at(&seg, 80), SEGMENT_BYTES, "{name}: segment bytes");
        assert!(seg[96..124].iter().all(|&b| b == 0), "{name}: reserved");
        assert_eq!(
            u32_at(&seg, 124),
            crc32c::crc32c(&seg[..124]),
            "{name}: crc"
        );
        // The seal slot: rolled for all but the last segment, which was closed.
        assert_eq!(u64_at(&seg, 512), end_seq, "{name}: seal end_seq");
        assert_eq!(u64_at(&seg, 520), end_offset, "{name}: seal end_offset");
        let seal_kind = if no + 1 == layout.segments.len() {
            1
        } else {
            2
        };
        assert_eq!(seg[528], seal_kind, "{name}: seal kind");
        assert_eq!(&seg[529..532], &[0, 0, 0], "{name}: seal reserved");
        assert_eq!(
            u32_at(&seg, 532),
            crc32c::crc32c(&seg[512..532]),
            "{name}: seal crc"
        );
        assert!(
            seg[128..512].iter().all(|&b| b == 0) && seg[536..4096].iter().all(|&b| b == 0),
            "{name}: header page"
        );

        // Every frame of this segment, field by field.
        for seq in first..end_seq {
            let (position, durable_end) = layout.frames[usize_of(seq)];
            let at = usize_of(position.offset);
            let body = payload(seq);
            let frame = &seg[at..at + 32];
            assert_eq!(
                u64::from(u32_at(frame, 4)),
                body.len() as u64,
                "seq {seq}: payload_len"
            );
            assert_eq!(u64_at(frame, 8), seq, "seq {seq}: seq");
            assert_eq!(u64_at(frame, 16), durable_end, "seq {seq}: durable_end");
            assert_eq!(frame[24], kind(seq), "seq {seq}: kind");
            assert!(frame[25..32].iter().all(|&b| b == 0), "seq {seq}: reserved");
            let stored = &seg[at + 32..at + 32 + body.len()];
            assert_eq!(stored, body.as_slice(), "seq {seq}: payload");
            let crc = crc32c::crc32c_append(crc32c::crc32c(&frame[4..32]), stored);
            assert_eq!(u32_at(frame, 0), crc, "seq {seq}: crc");
            let padded = at + 32 + body.len().next_multiple_of(8);
            assert!(
                seg[at + 32 + body.len()..padded].iter().all(|&b| b == 0),
                "seq {seq}: padding"
            );
        }
        assert!(
            seg[usize_of(end_offset)..].iter().all(|&b| b == 0),
            "{name}: zero after the last frame"
        );
    }
}

fn check_with_reader(dir: &Path, layout: &Layout) {
    let reader = WalReader::open(dir).expect("open the fixture");
    let meta = *reader.meta();
    assert_eq!(meta.hash_algorithm, HashAlgorithm::Blake3);
    assert!(meta.created_unix_ms > 1_600_000_000_000, "creation time");
    let segments = reader.segments();
    assert_eq!(segments.len(), SEGMENTS);
    for (no, (info, &(first, end_seq, end_offset))) in
        segments.iter().zip(&layout.segments).enumerate()
    {
        let header = &info.header;
        assert_eq!(info.file_name, format::segment_file_name(Seq(first)));
        assert_eq!(header.store_id, meta.store_id, "segment {no}");
        assert_eq!(header.hash_algorithm, HashAlgorithm::Blake3);
        assert_eq!(header.segment_no, SegmentNo(no as u64));
        assert_eq!(header.first_seq, Seq(first));
        let link = if no == 0 {
            ChainHash::ZERO
        } else {
            chain(first)
        };
        assert_eq!(header.prev_chain_hash, link, "segment {no}");
        if no > 0 {
            assert_ne!(header.prev_chain_hash, ChainHash::ZERO, "segment {no}");
        }
        assert_eq!(header.segment_bytes, SEGMENT_BYTES);
        assert!(header.created_unix_ms >= meta.created_unix_ms);
        let seal = info.seal.expect("every segment is sealed");
        let kind = if no + 1 == SEGMENTS {
            SealKind::Closed
        } else {
            SealKind::Rolled
        };
        assert_eq!(
            (seal.kind, seal.end_seq, seal.end_offset),
            (kind, Seq(end_seq), end_offset),
            "segment {no} seal"
        );
    }

    let records = reader.read_from(Seq(0)).expect("read the fixture");
    assert_eq!(records.len() as u64, RECORDS);
    for (record, &(position, _)) in records.iter().zip(&layout.frames) {
        let seq = record.seq.0;
        assert_eq!(record.kind.get(), kind(seq), "seq {seq}");
        assert_eq!(record.payload, payload(seq), "seq {seq}");
        assert_eq!(record.position, position, "seq {seq}");
        assert_eq!(reader.read_at(position).expect("read_at"), *record);
    }
    assert_eq!(reader.read(Seq(41)).expect("read").payload, payload(41));
    let verified = reader.verify().expect("verify");
    assert_eq!(
        (
            verified.segments,
            verified.records,
            verified.torn_tail_bytes
        ),
        (SEGMENTS, Seq(RECORDS), 0)
    );
}

#[test]
fn fixture_reads_back_byte_for_byte() {
    let fixture = fixture_dir();
    if std::env::var_os("TRAILMIX_REGENERATE_FIXTURES").is_some_and(|v| v == "1") {
        regenerate(&fixture);
    }
    assert!(
        fixture.join(META_FILE).exists(),
        "{} is missing; run with TRAILMIX_REGENERATE_FIXTURES=1 to create it",
        fixture.display()
    );
    let layout = expected_layout();
    assert_eq!(
        layout.segments.len(),
        SEGMENTS,
        "the layout spans 3 segments"
    );

    // Exactly the metadata and the segments, small enough to keep in the repository.
    let mut names = Vec::new();
    let mut total = 0;
    for entry in std::fs::read_dir(&fixture).expect("list the fixture") {
        let entry = entry.expect("entry");
        names.push(entry.file_name().to_string_lossy().into_owned());
        total += entry.metadata().expect("metadata").len();
    }
    names.sort();
    let mut expected: Vec<String> = layout
        .segments
        .iter()
        .map(|&(first, _, _)| format::segment_file_name(Seq(first)))
        .collect();
    expected.push(META_FILE.into());
    assert_eq!(
        names, expected,
        "fixture files (no LOCK, no temporary files)"
    );
    assert!(total <= 128 << 10, "the fixture holds {total} bytes");

    // Never touch the checked-in files: work on a copy.
    let copy = tempfile::tempdir().expect("tempdir");
    for name in &names {
        std::fs::copy(fixture.join(name), copy.path().join(name)).expect("copy");
    }
    check_raw_bytes(copy.path(), &layout);
    check_with_reader(copy.path(), &layout);

    // A writer opens the fixture as an existing store and appends after its clean-close seal.
    let mut wal = Wal::open(copy.path(), options().open_mode(OpenMode::MustExist))
        .expect("open the fixture for writing");
    let report = wal.open_report().clone();
    assert!(!report.created);
    assert_eq!((report.segments, report.records), (SEGMENTS, Seq(RECORDS)));
    assert_eq!(report.torn_tail, None);
    let extra = RecordKind::new(9).expect("kind");
    assert_eq!(
        wal.append(extra, b"after the fixture", &chain(RECORDS))
            .expect("append"),
        Seq(RECORDS)
    );
    wal.close().expect("close");
    let reader = WalReader::open(copy.path()).expect("reader");
    assert_eq!(
        reader.read(Seq(RECORDS)).expect("read").payload,
        b"after the fixture"
    );
    assert_eq!(reader.read(Seq(0)).expect("read").payload, payload(0));
}
