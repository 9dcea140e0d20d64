//! Reading the log's structure back from disk: segment list, headers, seals, frame walks, and
//! the decision between a torn tail (truncate) and corruption (refuse). The decision table is
//! in `docs/design.md`, "Recovery".

use crate::error::{Error, Result};
use crate::format::{
    self, FRAME_ALIGN, FRAME_HEADER_BYTES, META_FILE, Meta, SEGMENT_HEADER_BYTES, Seal, SealKind,
    SegmentHeader,
};
use crate::storage::{SegmentFile, Storage};
use crate::{SegmentNo, Seq};

/// What a segment's header and seal say, read without walking its frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// File name inside the log directory.
    pub file_name: String,
    /// The decoded header.
    pub header: SegmentHeader,
    /// The seal slot, when one is written.
    pub seal: Option<Seal>,
}

impl SegmentInfo {
    /// The segment's number.
    #[must_use]
    pub fn segment_no(&self) -> SegmentNo {
        self.header.segment_no
    }
}

/// Where a frame walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameWalk {
    /// Offset just past the last valid frame.
    pub end_offset: u64,
    /// One past the sequence number of the last valid frame.
    pub end_seq: Seq,
    /// Whether the walk stopped at an invalid frame (rather than at the end of the file).
    pub stopped_early: bool,
}

/// Walks the valid, dense frames of a segment image from its first frame.
#[must_use]
pub fn walk_frames(bytes: &[u8], first_seq: Seq) -> FrameWalk {
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut seq = first_seq;
    let len = bytes.len() as u64;
    while offset + FRAME_HEADER_BYTES <= len {
        match format::frame_at(bytes, offset, len) {
            Some(frame) if frame.header.seq == seq => {
                offset = frame.next_offset;
                seq = seq.next();
            }
            _ => {
                return FrameWalk {
                    end_offset: offset,
                    end_seq: seq,
                    stopped_early: true,
                };
            }
        }
    }
    FrameWalk {
        end_offset: offset,
        end_seq: seq,
        stopped_early: false,
    }
}

/// What lies after the first invalid frame of the last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailScan {
    /// The highest `durable_end` any valid frame after the stop point records.
    pub vouched_end: Seq,
    /// Where that frame is.
    pub vouched_at: Option<u64>,
    /// Offset just past the last non-zero byte (8-byte granular) at or after the stop point.
    pub dirty_end: u64,
}

/// Offset of the kind byte inside a frame header.
const KIND_OFFSET: usize = 24;
/// Zero runs this long (and aligned) are skipped in one check.
const SKIP_BYTES: usize = 4096;
/// Frame alignment as a slice length.
const ALIGN: usize = 8;

/// Scans every 8-byte position from `from` to the end for frames that are valid on their own,
/// and finds where non-zero bytes end.
#[must_use]
pub fn scan_tail(bytes: &[u8], from: u64, min_seq: Seq) -> TailScan {
    let len = bytes.len() as u64;
    let mut scan = TailScan {
        vouched_end: Seq(0),
        vouched_at: None,
        dirty_end: from,
    };
    // A valid frame's kind byte (header offset 24, 8-byte aligned) is never zero, so only
    // words that start with a non-zero byte can be the kind word of a frame 24 bytes earlier.
    // Zero pages are skipped whole: the unused rest of a 64 MiB segment costs a memory scan,
    // not eight million frame checks.
    let start = usize::try_from(from).unwrap_or(usize::MAX);
    let end = bytes.len() - bytes.len().saturating_sub(start) % ALIGN;
    let mut at = start;
    while at < end {
        if at.is_multiple_of(SKIP_BYTES)
            && at + SKIP_BYTES <= end
            && all_zero(&bytes[at..at + SKIP_BYTES])
        {
            at += SKIP_BYTES;
            continue;
        }
        if !all_zero(&bytes[at..at + ALIGN]) {
            scan.dirty_end = at as u64 + FRAME_ALIGN;
            if bytes[at] != 0
                && at >= start + KIND_OFFSET
                && let Some(frame) = format::frame_at(bytes, (at - KIND_OFFSET) as u64, len)
                && frame.header.seq >= min_seq
                && frame.header.durable_end > scan.vouched_end
            {
                scan.vouched_end = frame.header.durable_end;
                scan.vouched_at = Some(frame.offset);
            }
        }
        at += ALIGN;
    }
    scan
}

/// Whether every byte is zero. `iter().all` stops at the first non-zero byte, which keeps
/// the compiler from vectorising it (about 3 instructions a byte, measured with callgrind:
/// most of a verify's fixed cost over a 64 MiB segment's unused rest); OR-ing 64-byte blocks
/// without an early exit inside a block vectorises.
fn all_zero(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(64);
    blocks
        .by_ref()
        .all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
        && blocks.remainder().iter().all(|&b| b == 0)
}

/// The state of the log found on disk.
#[derive(Debug)]
pub(crate) struct Recovered<S: Storage> {
    pub segments: Vec<SegmentInfo>,
    /// The last segment, opened with the requested access.
    pub last: S::Segment,
    pub last_walk: FrameWalk,
    /// A torn tail to erase: `[start, end)` of the last segment.
    pub torn_tail: Option<(u64, u64)>,
}

pub(crate) fn read_meta<S: Storage>(storage: &S) -> Result<Meta> {
    let path = storage.dir().join(META_FILE);
    let bytes = storage
        .read_file(META_FILE)
        .map_err(|e| Error::io("read", &path, e))?;
    Meta::decode(&bytes).map_err(|err| match err {
        format::DecodeError::Version(found) => Error::UnsupportedVersion {
            path,
            found,
            supported: format::FORMAT_VERSION,
        },
        format::DecodeError::BadMagic => Error::NotAStore {
            path: storage.dir().to_path_buf(),
            reason: format!("{META_FILE} does not start with the trailmix WAL magic"),
        },
        format::DecodeError::Short { len, needed } => Error::Truncated {
            path,
            len: len as u64,
            needed: needed as u64,
        },
        other => Error::BadMeta {
            path,
            detail: other.to_string(),
        },
    })
}

/// Reads header and seal of every segment file and checks that they form one dense log.
pub(crate) fn list_segments<S: Storage>(storage: &S, meta: &Meta) -> Result<Vec<SegmentInfo>> {
    let names = storage
        .list()
        .map_err(|e| Error::io("list", storage.dir(), e))?;
    let mut segments: Vec<SegmentInfo> = Vec::new();
    for name in names {
        let Some(named_seq) = format::parse_segment_file_name(&name) else {
            continue;
        };
        // A log whose oldest segments were pruned (see the engine's prune protocol) starts at
        // a later segment: the first segment found sets the numbering, the rest must follow
        // it densely. Whether the missing start was pruned under policy is the engine's to
        // check (its retained state names the first sequence number it keeps).
        let expected_no = segments.first().map_or(SegmentNo(0), |first| {
            SegmentNo(first.header.segment_no.0 + segments.len() as u64)
        });
        let info = read_segment_info(storage, meta, &name, expected_no)?;
        let expected_no = if segments.is_empty() {
            info.header.segment_no
        } else {
            expected_no
        };
        let expected_first = segments.last().map_or(info.header.first_seq, |prev| {
            prev.seal.map_or(Seq(0), |s| s.end_seq)
        });
        let corrupted = |offset, detail: String| Error::Corrupted {
            segment: info.header.segment_no,
            offset,
            detail,
        };
        if info.header.first_seq != named_seq {
            return Err(corrupted(
                40,
                format!(
                    "file {name} is named for seq {named_seq} but its header says {}",
                    info.header.first_seq
                ),
            ));
        }
        if info.header.segment_no != expected_no {
            return Err(corrupted(
                32,
                format!(
                    "expected segment number {expected_no} here (a segment is missing or out of place)"
                ),
            ));
        }
        if let Some(prev) = segments.last() {
            match prev.seal {
                Some(seal) if seal.kind == SealKind::Rolled => {}
                _ => {
                    return Err(Error::Corrupted {
                        segment: prev.header.segment_no,
                        offset: Seal::OFFSET,
                        detail: "segment is followed by another but has no rollover seal".into(),
                    });
                }
            }
        }
        if info.header.first_seq != expected_first {
            return Err(corrupted(
                40,
                format!(
                    "segment starts at seq {} but the previous one ends at {expected_first}",
                    info.header.first_seq
                ),
            ));
        }
        segments.push(info);
    }
    Ok(segments)
}

/// The bytes before a segment's first frame: its header and seal slot.
const HEADER_SECTOR_BYTES: usize = 4096;
const _: () = assert!(HEADER_SECTOR_BYTES as u64 == SEGMENT_HEADER_BYTES);

fn read_segment_info<S: Storage>(
    storage: &S,
    meta: &Meta,
    name: &str,
    expected_no: SegmentNo,
) -> Result<SegmentInfo> {
    let path = storage.dir().join(name);
    let len = storage
        .file_len(name)
        .map_err(|e| Error::io("stat", &path, e))?;
    if len < SEGMENT_HEADER_BYTES {
        return Err(Error::Truncated {
            path,
            len,
            needed: SEGMENT_HEADER_BYTES,
        });
    }
    // A copy of the header sector rather than a map of the whole file: listing a log of a
    // hundred segments mapped and unmapped each of them on every open and refresh.
    let mut view = vec![0; HEADER_SECTOR_BYTES];
    let copied = storage
        .read_segment_at(name, 0, &mut view)
        .map_err(|e| Error::io("read segment header", &path, e))?;
    view.truncate(copied);
    let header = SegmentHeader::decode(&view).map_err(|err| match err {
        format::DecodeError::Version(found) => Error::UnsupportedVersion {
            path: path.clone(),
            found,
            supported: format::FORMAT_VERSION,
        },
        other => Error::Corrupted {
            segment: expected_no,
            offset: 0,
            detail: format!("segment header of {name}: {other}"),
        },
    })?;
    if header.store_id != meta.store_id {
        return Err(Error::ForeignSegment {
            segment: header.segment_no,
            path,
            found: header.store_id.to_string(),
            expected: meta.store_id.to_string(),
        });
    }
    if header.segment_bytes != len {
        return Err(Error::Truncated {
            path,
            len,
            needed: header.segment_bytes,
        });
    }
    Ok(SegmentInfo {
        file_name: name.to_owned(),
        header,
        seal: Seal::decode(&view),
    })
}

/// Runs recovery over the last segment. `access` decides whether the result is writable;
/// nothing is modified here.
pub(crate) fn recover<S: Storage>(
    storage: &S,
    meta: &Meta,
    access: crate::storage::Access,
) -> Result<Option<Recovered<S>>> {
    let segments = list_segments(storage, meta)?;
    let Some(info) = segments.last() else {
        return Ok(None);
    };
    let path = storage.dir().join(&info.file_name);
    let last = storage
        .open_segment(&info.file_name, access)
        .map_err(|e| Error::io("open segment", &path, e))?;
    let (last_walk, torn_tail) = decide_last_segment(&last.view(), info)?;
    Ok(Some(Recovered {
        segments,
        last,
        last_walk,
        torn_tail,
    }))
}

/// The recovery decision for the last segment (see the table in `docs/design.md`).
pub(crate) fn decide_last_segment(
    bytes: &[u8],
    info: &SegmentInfo,
) -> Result<(FrameWalk, Option<(u64, u64)>)> {
    let walk = walk_frames(bytes, info.header.first_seq);
    let segment = info.header.segment_no;
    if let Some(seal) = info.seal
        && (seal.end_seq > walk.end_seq
            || (seal.kind == SealKind::Rolled && seal.end_seq != walk.end_seq))
    {
        return Err(Error::Corrupted {
            segment,
            offset: walk.end_offset,
            detail: format!(
                "frame for seq {} is invalid but the segment's seal records {} records as durable",
                walk.end_seq, seal.end_seq
            ),
        });
    }
    if !walk.stopped_early {
        return Ok((walk, None));
    }
    let tail = scan_tail(bytes, walk.end_offset, walk.end_seq);
    if tail.vouched_end > walk.end_seq {
        return Err(Error::Corrupted {
            segment,
            offset: walk.end_offset,
            detail: format!(
                "frame for seq {} is invalid but the frame at offset {} records that all records below seq {} were durable",
                walk.end_seq,
                tail.vouched_at.unwrap_or(0),
                tail.vouched_end
            ),
        });
    }
    let torn = (tail.dirty_end > walk.end_offset).then_some((walk.end_offset, tail.dirty_end));
    Ok((walk, torn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FrameHeader;

    fn place_frame(image: &mut [u8], offset: usize, seq: u64, durable_end: u64) {
        let payload = b"vouching";
        let header = FrameHeader {
            payload_len: 8,
            seq: Seq(seq),
            durable_end: Seq(durable_end),
            kind: 1,
        };
        image[offset..offset + 32].copy_from_slice(&header.encode(payload));
        image[offset + 32..offset + 40].copy_from_slice(payload);
    }

    #[test]
    fn all_zero_sees_a_non_zero_byte_anywhere() {
        assert!(all_zero(&[]));
        for len in [1, 8, 63, 64, 65, 4096, 4100] {
            assert!(all_zero(&vec![0u8; len]), "len {len}");
            for at in 0..len {
                let mut bytes = vec![0u8; len];
                bytes[at] = 0x80;
                assert!(!all_zero(&bytes), "len {len}, non-zero at {at}");
            }
        }
    }

    #[test]
    fn tail_scan_finds_vouching_frames_across_zero_pages() {
        let mut image = vec![0u8; 5 * 4096];
        image[10] = 0xAB; // torn garbage right at the stop point
        place_frame(&mut image, 4096 - 16, 9, 4); // straddles a page boundary
        place_frame(&mut image, 3 * 4096 + 8, 12, 6); // after two all-zero pages
        let scan = scan_tail(&image, 8, Seq(5));
        assert_eq!(scan.vouched_end, Seq(6));
        assert_eq!(scan.vouched_at, Some(3 * 4096 + 8));
        assert_eq!(scan.dirty_end, (3 * 4096 + 8 + 40) as u64);
        let early = scan_tail(&image, 8, Seq(10));
        assert_eq!(
            early.vouched_end,
            Seq(6),
            "frames with seq below min_seq do not vouch"
        );
        assert_eq!(scan_tail(&vec![0u8; 4096 * 3], 0, Seq(0)).dirty_end, 0);
    }
}
