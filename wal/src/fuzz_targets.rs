//! Bodies of the fuzz targets, shared by cargo-fuzz (`fuzz/`) and the seeded loops that run
//! under `cargo test` (`wal/tests/fuzz_smoke.rs`). Each must return normally on any input: a
//! panic, hang or huge allocation is a bug.

use std::ops::ControlFlow;

use crate::format::{self, FrameHeader, META_FILE, Meta, Seal, SegmentHeader};
use crate::sim::SimDisk;
use crate::{HashAlgorithm, OpenMode, Seq, StoreId, Wal, WalOptions, WalReader};

/// Store id used for fuzzed segments.
pub const FUZZ_STORE_ID: StoreId = StoreId([0xA5; 16]);

/// Decodes `data` as every fixed structure and as frames at every 8-byte offset.
pub fn decode_structures(data: &[u8]) {
    let _ = Meta::decode(data);
    let _ = SegmentHeader::decode(data);
    let _ = Seal::decode(data);
    let _ = FrameHeader::decode_unchecked(data);
    let mut offset = 0;
    while offset < data.len() as u64 {
        if let Some(frame) = format::frame_at(data, offset, data.len() as u64) {
            assert!(
                frame.next_offset > frame.offset,
                "a valid frame always advances"
            );
            assert!(
                frame.payload_range().end <= data.len(),
                "a valid frame lies inside the data"
            );
        }
        offset += format::FRAME_ALIGN;
    }
}

/// Puts `segment` as the only segment of a log on a simulated disk, opens it read-only and
/// for writing, and checks that either a typed error comes back or the recovered log is
/// consistent (the writer and the reader agree, and appending after recovery works).
pub fn recover_segment(segment: &[u8]) {
    let disk = SimDisk::new(0);
    let meta = Meta {
        store_id: FUZZ_STORE_ID,
        hash_algorithm: HashAlgorithm::Blake3,
        created_unix_ms: 0,
    };
    disk.put_file(META_FILE, &meta.encode());
    disk.put_file(&format::segment_file_name(Seq(0)), segment);
    let read_only_end = WalReader::open_with(disk.storage())
        .ok()
        .and_then(|reader| {
            reader.verify().ok()?;
            reader.scan(Seq(0), |_| ControlFlow::Continue(())).ok()
        });
    let options = WalOptions::default()
        .open_mode(OpenMode::MustExist)
        .segment_bytes(64 << 10)
        .record_bytes_max(4 << 10);
    let Ok(mut wal) = Wal::open_with(disk.storage(), options) else {
        return;
    };
    if let Some(end) = read_only_end {
        assert_eq!(
            wal.next_seq(),
            end,
            "writer recovery and read-only verify disagree on the log's end"
        );
    }
    let kind = crate::RecordKind::new(1).ok();
    if let Some(kind) = kind
        && wal
            .append(kind, b"after recovery", &crate::ChainHash::ZERO)
            .is_ok()
    {
        let durable = wal.flush().ok();
        drop(wal);
        if let (Some(durable), Ok(reader)) = (durable, WalReader::open_with(disk.storage())) {
            let records = reader.read_from(Seq(0)).map_or(0, |r| r.len() as u64);
            assert_eq!(
                records, durable.0,
                "a record appended after recovery must read back"
            );
        }
    }
}

/// A valid segment image with `records` small records, for fuzzers to mutate.
#[must_use]
pub fn seed_segment(records: u64) -> Vec<u8> {
    let disk = SimDisk::new(1);
    let options = WalOptions::default()
        .segment_bytes(2 * 4096)
        .record_bytes_max(1024);
    let Ok(mut wal) = Wal::open_with(disk.storage(), options) else {
        return Vec::new();
    };
    let Ok(kind) = crate::RecordKind::new(3) else {
        return Vec::new();
    };
    for i in 0..records {
        let payload =
            vec![u8::try_from(i % 251).unwrap_or(0); usize::try_from(i % 97).unwrap_or(0)];
        if wal.append(kind, &payload, &crate::ChainHash::ZERO).is_err() {
            break;
        }
        if i % 5 == 4 && wal.flush().is_err() {
            break;
        }
    }
    let _ = wal.flush();
    drop(wal);
    let mut image = disk
        .durable_bytes(&format::segment_file_name(Seq(0)))
        .unwrap_or_default();
    // Re-home the segment into the fuzz store so recover_segment accepts its header.
    if let Ok(mut header) = SegmentHeader::decode(&image) {
        header.store_id = FUZZ_STORE_ID;
        image[..128].copy_from_slice(&header.encode());
    }
    image
}
