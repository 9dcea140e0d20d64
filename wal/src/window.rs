//! Point reads from a segment the reader keeps no map of: copy a small window of the file
//! (`pread`) instead of mapping it.
//!
//! A reader keeps at most [`crate::OPEN_SEGMENTS_MAX`] segment maps. Random reads over a log of
//! many more segments used to map a segment, read one frame and unmap it again as the map fell
//! out: measured at 10 M receipts (126 segments), 1.2 `mmap` and 1.2 `munmap` per event-id
//! lookup, and every `munmap` shoots down the TLBs of the other cores. Copying the few KiB
//! between a position hint and the frame costs one `open`, one `pread` and one `close`.
//!
//! This path only ever answers with a frame it found valid by the same checks as the mapped
//! path (bounds, sequence number, and checksum and padding where the read asks for them).
//! Anything else (no frame where the hint says, a frame torn or damaged, a walk longer than
//! [`STEPS_MAX`] frames, a short or failed read) returns `None`, and the caller reads through
//! the mapped path, which is authoritative: it gives the record, or the error that names the
//! damage.

use std::io;
use std::sync::Arc;

use crate::format::{self, FRAME_HEADER_BYTES, FrameHeader, ValidFrame};
use crate::reader::{Position, RecordRef};
use crate::{RecordKind, SegmentNo, Seq};

/// Bytes copied per read. The engine samples a frame position every fourth record, so a point
/// read walks past at most three receipts to its own; sixteen KiB hold that for receipts of a
/// few KiB, and a larger frame gets a read of its own size.
pub(crate) const WINDOW_BYTES: u64 = 16 << 10;

/// Frames a window walk steps over before leaving the read to the mapped path.
const STEPS_MAX: u32 = 64;

/// Reads per window walk before leaving the read to the mapped path.
const READS_MAX: u32 = 8;

/// How much of the target frame is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetCheck {
    /// Checksum and zero padding, as [`format::frame_at`].
    Full,
    /// Bounds and sequence number only, as [`format::frame_header_at`].
    HeaderOnly,
}

/// Bytes `base..base + bytes.len()` of one segment file, as copied.
#[derive(Debug, Clone)]
pub(crate) struct SegmentCopy {
    pub(crate) base: u64,
    pub(crate) bytes: Arc<Vec<u8>>,
}

impl SegmentCopy {
    /// Whether the copy holds `len` bytes from `offset`.
    pub(crate) fn holds(&self, offset: u64, len: u64) -> bool {
        offset >= self.base
            && offset
                .checked_add(len)
                .is_some_and(|end| end <= self.base + self.bytes.len() as u64)
    }
}

/// A frame found in a window copied from a segment file.
#[derive(Debug)]
pub(crate) struct WindowFrame {
    /// The copy the frame is in.
    pub(crate) copy: SegmentCopy,
    /// Whether this read copied bytes from the file (not only from a copy it was given).
    pub(crate) read_file: bool,
    /// The frame, its offsets relative to the copy.
    frame: ValidFrame,
    /// Offset of the frame in the segment file.
    pub(crate) offset: u64,
}

impl WindowFrame {
    /// The frame as a record of segment `segment`.
    pub(crate) fn record(&self, seq: Seq, segment: SegmentNo) -> RecordRef<'_> {
        RecordRef {
            seq,
            kind: RecordKind::from_disk(self.frame.header.kind),
            payload: self.payload(),
            position: Position {
                segment,
                offset: self.offset,
            },
        }
    }

    /// The frame's header.
    #[cfg(test)]
    fn header(&self) -> &FrameHeader {
        &self.frame.header
    }

    /// The frame's payload.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.copy.bytes[self.frame.payload_range()]
    }
}

/// The copy a walk reads from, and how it reads more.
struct Window<R> {
    read: R,
    segment_bytes: u64,
    copy: SegmentCopy,
    reads: u32,
}

impl<R: FnMut(u64, &mut [u8]) -> io::Result<usize>> Window<R> {
    /// Copies up to `len` bytes from `offset` (fewer where the file ends).
    fn fill(&mut self, offset: u64, len: u64) -> Option<()> {
        if self.reads == READS_MAX {
            return None;
        }
        self.reads += 1;
        let len = len.min(self.segment_bytes.checked_sub(offset)?);
        let mut bytes = vec![0; usize::try_from(len).ok()?];
        let copied = (self.read)(offset, &mut bytes).ok()?;
        bytes.truncate(copied);
        self.copy = SegmentCopy {
            base: offset,
            bytes: Arc::new(bytes),
        };
        Some(())
    }

    fn holds(&self, offset: u64, len: u64) -> bool {
        self.copy.holds(offset, len)
    }

    /// Makes the window hold the whole frame whose header is at `offset`, reading again from
    /// there when it does not; `None` when no plausible frame header is there.
    fn hold_frame(&mut self, offset: u64) -> Option<()> {
        loop {
            let needed = if self.holds(offset, FRAME_HEADER_BYTES) {
                let at = usize::try_from(offset - self.copy.base).ok()?;
                let header = FrameHeader::decode_unchecked(&self.copy.bytes[at..])?;
                if u64::from(header.payload_len) > self.segment_bytes {
                    return None;
                }
                format::frame_bytes(u64::from(header.payload_len))
            } else {
                FRAME_HEADER_BYTES
            };
            if self.holds(offset, needed) {
                return Some(());
            }
            self.fill(offset, needed.max(WINDOW_BYTES))?;
            if !self.holds(offset, needed) {
                return None; // the file ends there
            }
        }
    }
}

/// Finds the frame of `target` in a segment of `segment_bytes` bytes by walking from `start`
/// (a frame's sequence number and offset, at or before `target`), in `copied` (an earlier
/// copy of the segment's bytes) while it holds the walk, reading the file through `read` (as
/// [`crate::Storage::read_segment_at`]) when it does not. Frames walked past get their bounds
/// and sequence numbers checked; the target is checked as `check` says. `None` when the walk
/// does not end at a valid frame of `target` (see the module's comment).
pub(crate) fn find_frame(
    read: impl FnMut(u64, &mut [u8]) -> io::Result<usize>,
    segment_bytes: u64,
    start: (Seq, u64),
    target: Seq,
    check: TargetCheck,
    copied: Option<SegmentCopy>,
) -> Option<WindowFrame> {
    let (mut seq, mut offset) = start;
    if target < seq {
        return None;
    }
    let mut window = Window {
        read,
        segment_bytes,
        copy: copied.unwrap_or(SegmentCopy {
            base: offset,
            bytes: Arc::default(),
        }),
        reads: 0,
    };
    for _ in 0..STEPS_MAX {
        window.hold_frame(offset)?;
        let at = offset - window.copy.base;
        let bytes = &window.copy.bytes;
        let frame = if seq == target && check == TargetCheck::Full {
            format::frame_at(bytes, at, segment_bytes)
        } else {
            format::frame_header_at(bytes, at, segment_bytes)
        };
        let frame = frame.filter(|f| f.header.seq == seq)?;
        if seq == target {
            return Some(WindowFrame {
                copy: window.copy,
                read_file: window.reads > 0,
                frame,
                offset,
            });
        }
        offset += frame.next_offset - frame.offset;
        seq = seq.next();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FRAME_ALIGN;

    const HEADER: u64 = 512;

    /// A segment image: a zero "header" of 512 bytes, then frames of `sizes` from seq 10.
    fn segment(sizes: &[usize]) -> (Vec<u8>, Vec<u64>) {
        let mut bytes = vec![0u8; usize::try_from(HEADER).expect("fits")];
        let mut offsets = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            offsets.push(bytes.len() as u64);
            let payload: Vec<u8> = (0..size)
                .map(|b| u8::try_from((b + i) % 251).expect("byte"))
                .collect();
            let header = FrameHeader {
                payload_len: u32::try_from(size).expect("fits"),
                seq: Seq(10 + i as u64),
                durable_end: Seq(0),
                kind: 1,
            };
            bytes.extend_from_slice(&header.encode(&payload));
            bytes.extend_from_slice(&payload);
            while !(bytes.len() as u64).is_multiple_of(FRAME_ALIGN) {
                bytes.push(0);
            }
        }
        bytes.resize(bytes.len() + 4096, 0);
        (bytes, offsets)
    }

    fn reader(bytes: &[u8]) -> impl FnMut(u64, &mut [u8]) -> io::Result<usize> + '_ {
        |offset, buf| {
            let start = usize::try_from(offset).expect("fits").min(bytes.len());
            let copied = (bytes.len() - start).min(buf.len());
            buf[..copied].copy_from_slice(&bytes[start..start + copied]);
            Ok(copied)
        }
    }

    fn find(bytes: &[u8], start: (Seq, u64), target: Seq) -> Option<WindowFrame> {
        find_frame(
            reader(bytes),
            bytes.len() as u64,
            start,
            target,
            TargetCheck::Full,
            None,
        )
    }

    #[test]
    fn finds_the_frame_a_map_would_show() {
        let (bytes, offsets) = segment(&[500, 700, 30, 512, 0, 9]);
        for (i, &offset) in offsets.iter().enumerate() {
            let target = Seq(10 + i as u64);
            for (from, &start) in offsets[..=i].iter().enumerate() {
                let found =
                    find(&bytes, (Seq(10 + from as u64), start), target).expect("frame found");
                let mapped = format::frame_at(&bytes, offset, bytes.len() as u64).expect("valid");
                assert_eq!(found.offset, offset);
                assert_eq!(found.header(), &mapped.header);
                assert_eq!(found.payload(), &bytes[mapped.payload_range()]);
            }
        }
    }

    /// Frames larger than the window, and a walk across several windows, read again.
    #[test]
    fn reads_again_for_frames_past_the_window() {
        let big = usize::try_from(WINDOW_BYTES).expect("fits") * 2 + 3;
        let (bytes, offsets) = segment(&[100, big, 200, 9000, 9000]);
        for target in 0..offsets.len() {
            let found = find(&bytes, (Seq(10), offsets[0]), Seq(10 + target as u64));
            let found = found.expect("frame found");
            assert_eq!(found.offset, offsets[target]);
        }
    }

    /// A walk inside a copy it is given reads nothing; one that leaves it reads the file.
    #[test]
    fn walks_in_a_given_copy_without_reading() {
        let (bytes, offsets) = segment(&[100, 200, 300, 20_000]);
        let copy = find(&bytes, (Seq(10), offsets[0]), Seq(10))
            .expect("frame found")
            .copy;
        let failing = |_: u64, _: &mut [u8]| Err(io::Error::other("must not read"));
        let segment_bytes = bytes.len() as u64;
        let found = find_frame(
            failing,
            segment_bytes,
            (Seq(10), offsets[0]),
            Seq(12),
            TargetCheck::Full,
            Some(copy.clone()),
        )
        .expect("found in the copy");
        assert!(!found.read_file);
        assert_eq!(found.offset, offsets[2]);
        let (start, target) = ((Seq(12), offsets[2]), Seq(13));
        let beyond = find_frame(
            reader(&bytes),
            segment_bytes,
            start,
            target,
            TargetCheck::Full,
            Some(copy),
        )
        .expect("read past the copy");
        assert!(beyond.read_file);
        assert_eq!(beyond.payload().len(), 20_000);
    }

    /// Every doubt gives `None`: the mapped path then reads or reports.
    #[test]
    fn leaves_every_doubt_to_the_mapped_path() {
        let (bytes, offsets) = segment(&[100, 200, 300]);
        // A hint whose frame has another seq, or is not a frame start.
        assert!(find(&bytes, (Seq(11), offsets[0]), Seq(12)).is_none());
        assert!(find(&bytes, (Seq(10), offsets[0] + 8), Seq(12)).is_none());
        // A target before the hint, or past the last frame.
        assert!(find(&bytes, (Seq(11), offsets[1]), Seq(10)).is_none());
        assert!(find(&bytes, (Seq(10), offsets[0]), Seq(13)).is_none());
        // A damaged target fails its checksum; a damaged frame on the way is stepped over
        // (as the mapped path does) but one whose header is damaged stops the walk.
        let mut damaged = bytes.clone();
        let payload_at = usize::try_from(offsets[2] + FRAME_HEADER_BYTES).expect("fits");
        damaged[payload_at] ^= 1;
        assert!(find(&damaged, (Seq(10), offsets[0]), Seq(12)).is_none());
        let header_only = find_frame(
            reader(&damaged),
            damaged.len() as u64,
            (Seq(10), offsets[0]),
            Seq(12),
            TargetCheck::HeaderOnly,
            None,
        );
        assert_eq!(header_only.map(|f| f.offset), Some(offsets[2]));
        let mut damaged = bytes.clone();
        damaged[usize::try_from(offsets[1] + 8).expect("fits")] ^= 1; // seq of frame 11
        assert!(find(&damaged, (Seq(10), offsets[0]), Seq(12)).is_none());
        // A failed read.
        let failing = |_: u64, _: &mut [u8]| Err(io::Error::other("gone"));
        let found = find_frame(
            failing,
            bytes.len() as u64,
            (Seq(10), offsets[0]),
            Seq(10),
            TargetCheck::Full,
            None,
        );
        assert!(found.is_none());
    }

    /// A file that ends inside a frame, or a walk longer than the bound, gives up.
    #[test]
    fn gives_up_on_short_files_and_long_walks() {
        let (bytes, offsets) = segment(&[100, 5000]);
        let cut = &bytes[..usize::try_from(offsets[1] + 100).expect("fits")];
        assert!(find(cut, (Seq(10), offsets[0]), Seq(11)).is_none());
        let steps = usize::try_from(STEPS_MAX).expect("fits");
        let (bytes, offsets) = segment(&vec![8; steps + 2]);
        assert!(find(&bytes, (Seq(10), offsets[0]), Seq(10 + steps as u64 - 1)).is_some());
        assert!(find(&bytes, (Seq(10), offsets[0]), Seq(10 + steps as u64 + 1)).is_none());
    }
}
