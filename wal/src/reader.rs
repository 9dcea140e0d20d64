//! Readers: iterate from any sequence number, random access by position, read-only opening of
//! a log that another process is writing.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::format::{self, FRAME_HEADER_BYTES, Meta, SEGMENT_HEADER_BYTES, SealKind};
use crate::recovery::{self, SegmentInfo};
use crate::storage::{Access, FsStorage, SegmentFile, Storage};
use crate::window::{self, SegmentCopy, TargetCheck, WINDOW_BYTES, WindowFrame};
use crate::{RecordKind, SegmentNo, Seq};

/// Where a record's frame is: segment and byte offset of its frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The segment.
    pub segment: SegmentNo,
    /// Byte offset of the frame header inside the segment file.
    pub offset: u64,
}

/// A record borrowed from a mapped segment (see [`WalReader::scan`]).
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Sequence number.
    pub seq: Seq,
    /// Kind.
    pub kind: RecordKind,
    /// Payload bytes, checksum verified.
    pub payload: &'a [u8],
    /// Where the frame is.
    pub position: Position,
}

/// A record copied out of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number.
    pub seq: Seq,
    /// Kind.
    pub kind: RecordKind,
    /// Payload bytes, checksum verified.
    pub payload: Vec<u8>,
    /// Where the frame is.
    pub position: Position,
}

impl RecordRef<'_> {
    /// Copies the record out.
    #[must_use]
    pub fn to_owned_record(&self) -> Record {
        Record {
            seq: self.seq,
            kind: self.kind,
            payload: self.payload.to_vec(),
            position: self.position,
        }
    }
}

/// Which frames a walk checks in full (checksum and zero padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameCheck {
    /// Every frame walked (scans, verification).
    Every,
    /// Only the frame read; frames stepped over on the way get their bounds and sequence
    /// numbers checked (a point read needs the target intact, not its neighbours).
    Target,
    /// No frame: bounds and sequence numbers only (a directory of frame positions).
    HeadersOnly,
    /// Frames of the last segment, and of any segment not sealed as rolled over; frames of a
    /// rolled-over segment get their bounds and sequence numbers checked (a second reader
    /// whose records another reader checks in full).
    Unsealed,
}

/// The outcome of [`WalReader::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: usize,
    /// Records in the valid log (one past the last sequence number).
    pub records: Seq,
    /// Bytes after the last valid frame of the last segment that recovery would erase as a
    /// torn tail (never acknowledged); 0 for a clean log.
    pub torn_tail_bytes: u64,
}

/// Reads a log without locking or modifying it.
///
/// Sees the valid prefix of the log as of [`WalReader::refresh`]: records the writer has
/// appended but not yet flushed may be visible; a torn or half-written tail is not. Sealed
/// segments must be whole: damage there is [`Error::Corrupted`].
#[derive(Debug)]
pub struct WalReader<S: Storage = FsStorage> {
    storage: S,
    meta: Meta,
    segments: Vec<SegmentInfo>,
    open_segments: Mutex<SegmentMaps<S::Segment>>,
}

/// Most segment maps a reader keeps between reads. A reader that kept every map it opened
/// held the whole log in its address space and, as pages were read, in its resident memory
/// (file-backed and reclaimable, but counted in RSS): 839 MiB at a million 1 KB receipts,
/// growing with the store. Sixteen maps (1 GiB of default 64 MiB segments) bound that while a
/// store of a million receipts still stays mapped whole. Over a larger log, a point read from
/// a segment not kept copies a window of the file instead of mapping it (`window.rs`), unless
/// the segment earns a map (see `SegmentMaps::point_read`).
pub const OPEN_SEGMENTS_MAX: usize = 16;

/// Windows a reader keeps from its latest point-read copies.
const COPIES_KEPT: usize = 4;

/// Largest copy kept for later reads (a larger frame's copy is used once).
const COPY_KEPT_BYTES_MAX: u64 = 4 * WINDOW_BYTES;

/// The kept segment maps, least recently used evicted first, and the latest point-read copies.
/// A map in use elsewhere stays valid after eviction: callers hold their own `Arc`.
///
/// Lists searched by name rather than hash maps: every read looks its segment up here, and
/// hashing the file name (`SipHash`) cost more than comparing it with at most
/// [`OPEN_SEGMENTS_MAX`] names, the most recently used first.
#[derive(Debug)]
struct SegmentMaps<M> {
    /// Most recently used first.
    maps: Vec<(String, Arc<M>)>,
    /// The latest copies of point reads, one per segment, most recent first (at most
    /// [`COPIES_KEPT`]; a copy too large to keep is kept empty, for its name).
    copies: Vec<(String, SegmentCopy)>,
}

/// Where a point read finds its frame.
#[derive(Debug)]
enum PointRead {
    /// Through the segment's map (kept, or to be mapped now).
    Mapped,
    /// From a copy: this earlier one while it holds the walk, the file after that.
    Copied(Option<SegmentCopy>),
}

impl<M> SegmentMaps<M> {
    fn new() -> Self {
        SegmentMaps {
            maps: Vec::new(),
            copies: Vec::new(),
        }
    }

    fn get(&mut self, name: &str) -> Option<Arc<M>> {
        let at = self.maps.iter().position(|(kept, _)| kept == name)?;
        if at != 0 {
            // Move it to the front: the one most recently used goes last when full.
            self.maps[..=at].rotate_right(1);
        }
        self.maps.first().map(|(_, map)| Arc::clone(map))
    }

    fn insert(&mut self, name: String, map: Arc<M>) {
        self.copies.retain(|(copied, _)| *copied != name);
        self.maps.truncate(OPEN_SEGMENTS_MAX.saturating_sub(1));
        self.maps.insert(0, (name, map));
    }

    /// How a point read of segment `name` whose walk starts at `offset` goes: through a map
    /// when the segment is kept, when a slot is free, or when one of the latest
    /// [`COPIES_KEPT`] copies is of this segment but does not hold the walk's start (a second
    /// read of a segment before others pushed it out: a time-range page, a session trace);
    /// from that copy when it does (the neighbour a query reads after a receipt); from a new
    /// copy otherwise (random reads over many more segments than are kept, which would
    /// otherwise map and unmap a segment each).
    fn point_read(&mut self, name: &str, offset: u64) -> PointRead {
        if self.maps.iter().any(|(kept, _)| kept == name) {
            return PointRead::Mapped;
        }
        match self.copies.iter().find(|(copied, _)| copied == name) {
            Some((_, copy)) if copy.holds(offset, FRAME_HEADER_BYTES) => {
                PointRead::Copied(Some(copy.clone()))
            }
            Some(_) => PointRead::Mapped,
            None if self.maps.len() < OPEN_SEGMENTS_MAX => PointRead::Mapped,
            None => PointRead::Copied(None),
        }
    }

    /// Keeps `copy` of segment `name` as the latest.
    fn keep_copy(&mut self, name: &str, copy: SegmentCopy) {
        let copy = if copy.bytes.len() as u64 <= COPY_KEPT_BYTES_MAX {
            copy
        } else {
            SegmentCopy {
                base: 0,
                bytes: Arc::default(),
            }
        };
        self.copies.retain(|(copied, _)| copied != name);
        self.copies.truncate(COPIES_KEPT - 1);
        self.copies.insert(0, (name.to_owned(), copy));
    }
}

impl WalReader<FsStorage> {
    /// Opens the log in `dir` read-only.
    ///
    /// # Errors
    /// [`Error::Missing`], [`Error::NotAStore`], [`Error::UnsupportedVersion`],
    /// [`Error::ForeignSegment`], [`Error::Corrupted`] (in headers and seals), I/O errors.
    pub fn open(dir: impl AsRef<Path>) -> Result<WalReader<FsStorage>> {
        WalReader::open_with(FsStorage::new(dir.as_ref()))
    }
}

impl<S: Storage> WalReader<S> {
    /// Opens a read-only reader over any [`Storage`].
    ///
    /// # Errors
    /// As for [`WalReader::open`].
    pub fn open_with(storage: S) -> Result<WalReader<S>> {
        let dir = storage.dir().to_path_buf();
        if !storage
            .dir_exists()
            .map_err(|e| Error::io("stat", &dir, e))?
        {
            return Err(Error::Missing { path: dir });
        }
        let names = storage.list().map_err(|e| Error::io("list", &dir, e))?;
        if !names.iter().any(|n| n == format::META_FILE) {
            let meta_tmp = format!("{}{}", format::META_FILE, format::TMP_SUFFIX);
            // Only the lock and a half-written `wal.meta.tmp`: a store whose creation crashed.
            return Err(
                if names
                    .iter()
                    .all(|n| *n == format::LOCK_FILE || *n == meta_tmp)
                {
                    Error::Missing { path: dir }
                } else {
                    Error::NotAStore {
                        path: dir,
                        reason: format!("no {} file", format::META_FILE),
                    }
                },
            );
        }
        let meta = recovery::read_meta(&storage)?;
        let segments = recovery::list_segments(&storage, &meta)?;
        Ok(WalReader {
            storage,
            meta,
            segments,
            open_segments: Mutex::new(SegmentMaps::new()),
        })
    }

    /// Re-reads the segment list (to see segments the writer added since).
    ///
    /// # Errors
    /// As for [`WalReader::open`].
    pub fn refresh(&mut self) -> Result<()> {
        self.segments = recovery::list_segments(&self.storage, &self.meta)?;
        Ok(())
    }

    /// The log's metadata.
    #[must_use]
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Headers and seals of the segments, in order.
    #[must_use]
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    /// The segment that would hold `seq`, as last listed: the last one starting at or before
    /// it (`None` before the first). Whether it does hold `seq` only a read can say.
    #[must_use]
    pub fn segment_holding(&self, seq: Seq) -> Option<&SegmentInfo> {
        self.segments.get(self.segment_index(seq)?)
    }

    /// Calls `visit` for every valid record from `from` on, in order, without copying
    /// payloads; stops early when `visit` breaks. Returns one past the last record visited or
    /// passed (the end of the valid log when not stopped early).
    ///
    /// # Errors
    /// [`Error::Corrupted`] for a bad frame inside a sealed segment, I/O errors.
    pub fn scan(
        &self,
        from: Seq,
        visit: impl FnMut(RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<Seq> {
        self.walk(from, None, FrameCheck::Every, visit)
    }

    /// Like [`WalReader::scan`], but starts walking frames at `hint`: the position of a frame
    /// at or before `from` in the segment that holds `from` (for example a sample a caller
    /// kept from an earlier scan). Random reads then cost a walk from the hint instead of from
    /// the segment's start. A hint that is not such a frame is ignored (the walk starts at the
    /// segment's first frame), so a stale hint costs time, never correctness.
    ///
    /// # Errors
    /// As for [`WalReader::scan`].
    pub fn scan_with_hint(
        &self,
        from: Seq,
        hint: Option<(Seq, Position)>,
        visit: impl FnMut(RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<Seq> {
        self.walk(from, hint, FrameCheck::Every, visit)
    }

    fn walk(
        &self,
        from: Seq,
        hint: Option<(Seq, Position)>,
        skip_check: FrameCheck,
        mut visit: impl FnMut(RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<Seq> {
        let start = self.segment_index(from).unwrap_or(0);
        let mut end = self.segments.first().map_or(Seq(0), |s| s.header.first_seq);
        for (index, info) in self.segments.iter().enumerate().skip(start) {
            let hint = Self::hint_in(info, hint, from).filter(|_| index == start);
            let walk = self.walk_segment(index, hint, from, skip_check, &mut visit)?;
            match walk {
                ControlFlow::Break(next) => return Ok(next),
                ControlFlow::Continue(next) => end = next,
            }
        }
        Ok(end)
    }

    /// Walks the frames of segment `index` from `hint` (or its first frame); `Break` carries
    /// the seq after the record `visit` stopped at, `Continue` the segment's end.
    fn walk_segment(
        &self,
        index: usize,
        hint: Option<(Seq, Position)>,
        from: Seq,
        skip_check: FrameCheck,
        visit: &mut impl FnMut(RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<ControlFlow<Seq, Seq>> {
        let info = &self.segments[index];
        let is_last = index + 1 == self.segments.len();
        let segment = self.open_segment(info)?;
        let bytes = segment.view();
        let len = bytes.len() as u64;
        let (mut seq, mut offset) = match hint {
            // The hint only has to name a frame start with its seq; every frame from there
            // on is checked as the walk reaches it.
            Some((seq, position))
                if format::frame_header_at(&bytes, position.offset, len)
                    .is_some_and(|f| f.header.seq == seq) =>
            {
                (seq, position.offset)
            }
            _ => (info.header.first_seq, SEGMENT_HEADER_BYTES),
        };
        let seal_end = info.seal.filter(|s| s.kind == SealKind::Rolled && !is_last);
        loop {
            if seal_end.is_some_and(|s| seq >= s.end_seq) {
                break;
            }
            let headers_only = skip_check == FrameCheck::HeadersOnly
                || (seq < from && skip_check == FrameCheck::Target)
                || (seal_end.is_some() && skip_check == FrameCheck::Unsealed);
            let frame = if headers_only {
                format::frame_header_at(&bytes, offset, len)
            } else {
                format::frame_at(&bytes, offset, len)
            };
            let frame = frame.filter(|f| f.header.seq == seq);
            let Some(frame) = frame else {
                if seal_end.is_some() {
                    return Err(Error::Corrupted {
                        segment: info.header.segment_no,
                        offset,
                        detail: format!("frame for seq {seq} is invalid inside a sealed segment"),
                    });
                }
                break;
            };
            if seq >= from {
                let record = RecordRef {
                    seq,
                    kind: RecordKind::from_disk(frame.header.kind),
                    payload: &bytes[frame.payload_range()],
                    position: Position {
                        segment: info.header.segment_no,
                        offset,
                    },
                };
                if visit(record).is_break() {
                    return Ok(ControlFlow::Break(seq.next()));
                }
            }
            offset = frame.next_offset;
            seq = seq.next();
        }
        Ok(ControlFlow::Continue(seq))
    }

    /// Like [`WalReader::scan_with_hint`], but the frames of segments sealed as rolled over
    /// (all but the last segment, normally) are **not checksummed**: their bounds and
    /// sequence numbers are checked, their bytes are passed as they are. For a reader that
    /// only computes something ahead of another reader that checks every frame (verification
    /// hashes ahead in other threads): a rolled-over segment's frames were flushed and synced
    /// before its seal was written, so they are complete when the seal is seen and both
    /// readers see the same bytes; a frame that is damaged there fails the other reader's
    /// check. Frames of the last segment, which a writer may still be writing, are checked as
    /// in `scan`, so a torn frame is never passed. The records-before-seal order of both ways
    /// to seal (`Wal::end_segment` and the rollover) is pinned by `tests/crash_sim.rs`: with
    /// the seal written first, a power loss between the two leaves a sealed segment with torn
    /// frames, which that test's reopen refuses.
    ///
    /// # Errors
    /// As for [`WalReader::scan`].
    pub fn scan_with_hint_trusting_sealed(
        &self,
        from: Seq,
        hint: Option<(Seq, Position)>,
        visit: impl FnMut(RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<Seq> {
        self.walk(from, hint, FrameCheck::Unsealed, visit)
    }

    /// Calls `visit` for every frame from `from` on (starting the walk at `hint`, as
    /// [`WalReader::scan_with_hint`] does), stepping from frame header to frame header without
    /// checking checksums or touching payloads: the cheap way to learn where frames are. The
    /// records passed to `visit` are **unchecked** (a torn or damaged frame can pass); use
    /// them for positions only and read records with [`WalReader::read`].
    ///
    /// # Errors
    /// As for [`WalReader::scan`].
    pub fn walk_headers(
        &self,
        from: Seq,
        hint: Option<(Seq, Position)>,
        visit: impl FnMut(RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<Seq> {
        self.walk(from, hint, FrameCheck::HeadersOnly, visit)
    }

    /// Reads one record by sequence number. Its frame is checked in full; frames walked past
    /// on the way only get their bounds and sequence numbers checked (`scan` and `verify` check
    /// every frame).
    ///
    /// # Errors
    /// [`Error::SeqOutOfRange`] when the log does not hold it, plus the errors of
    /// [`WalReader::scan`].
    pub fn read(&self, seq: Seq) -> Result<Record> {
        self.read_with_hint(seq, None)
    }

    /// Reads one record, walking from `hint` (see [`WalReader::scan_with_hint`]).
    ///
    /// # Errors
    /// As for [`WalReader::read`].
    pub fn read_with_hint(&self, seq: Seq, hint: Option<(Seq, Position)>) -> Result<Record> {
        self.visit_with_hint(seq, hint, |record| record.to_owned_record())
    }

    /// Calls `visit` with the record `seq`, borrowed from its mapped segment (no copy), walking
    /// from `hint` (see [`WalReader::scan_with_hint`]); returns what `visit` returns. The frame
    /// is checked as in [`WalReader::read`].
    ///
    /// # Errors
    /// As for [`WalReader::read`]; `visit` is not called then.
    pub fn visit_with_hint<T>(
        &self,
        seq: Seq,
        hint: Option<(Seq, Position)>,
        visit: impl FnOnce(RecordRef<'_>) -> T,
    ) -> Result<T> {
        if let Some((frame, segment)) = self.window_frame(seq, hint, TargetCheck::Full) {
            return Ok(visit(frame.record(seq, segment)));
        }
        let mut visit = Some(visit);
        let mut found = None;
        let end = self.walk(seq, hint, FrameCheck::Target, |record| {
            // A log whose start was pruned begins after `seq`: its first record is not it.
            if record.seq == seq {
                found = visit.take().map(|visit| visit(record));
            }
            ControlFlow::Break(())
        })?;
        let first = self.segments.first().map_or(Seq(0), |s| s.header.first_seq);
        found.ok_or(Error::SeqOutOfRange { seq, first, end })
    }

    /// Maps now each segment that holds at least two of `seqs` and is not mapped yet (at most
    /// half of [`OPEN_SEGMENTS_MAX`], those with the most first): for a caller about to read
    /// all of `seqs` (a page of query results, a session's receipts), so that their reads
    /// share one map instead of copying a window each (`window.rs`). Seqs outside the
    /// segments are ignored (their reads report them).
    ///
    /// # Errors
    /// I/O errors mapping a segment (the reads would meet them too).
    pub fn map_for_reads(&self, seqs: &[Seq]) -> Result<()> {
        let mut reads_by_segment: Vec<(usize, usize)> = Vec::new();
        for &seq in seqs {
            let Some(index) = self.segment_index(seq) else {
                continue;
            };
            match reads_by_segment.iter_mut().find(|(i, _)| *i == index) {
                Some((_, reads)) => *reads += 1,
                None => reads_by_segment.push((index, 1)),
            }
        }
        reads_by_segment.retain(|&(_, reads)| reads >= 2);
        reads_by_segment.sort_by_key(|&(_, reads)| std::cmp::Reverse(reads));
        for &(index, _) in reads_by_segment.iter().take(OPEN_SEGMENTS_MAX / 2) {
            self.open_segment(&self.segments[index])?;
        }
        Ok(())
    }

    /// Calls `visit` with the record `seq` found by stepping over frame headers from `hint`
    /// as [`WalReader::walk_headers`] does, its frame **not checksummed**; `Ok(None)` when
    /// the walk does not reach it (not written yet, or a damaged frame header on the way).
    /// For a caller that only compares the record with bytes it computed itself and reads it
    /// checked whenever they differ.
    ///
    /// # Errors
    /// As for [`WalReader::scan`].
    pub fn visit_unchecked_with_hint<T>(
        &self,
        seq: Seq,
        hint: Option<(Seq, Position)>,
        visit: impl FnOnce(RecordRef<'_>) -> T,
    ) -> Result<Option<T>> {
        if let Some((frame, segment)) = self.window_frame(seq, hint, TargetCheck::HeaderOnly) {
            return Ok(Some(visit(frame.record(seq, segment))));
        }
        let mut visit = Some(visit);
        let mut found = None;
        self.walk_headers(seq, hint, |record| {
            if record.seq == seq {
                found = visit.take().map(|visit| visit(record));
            }
            ControlFlow::Break(())
        })?;
        Ok(found)
    }

    /// The frame of `seq` copied from its segment file, when the segment is sealed as rolled
    /// over, is not mapped and does not earn a map now ([`SegmentMaps::point_read`]), and the copy holds a frame of
    /// `seq` that passes `check` (`window.rs`). `None` sends the read through the mapped
    /// path, which reads it or names what is wrong.
    fn window_frame(
        &self,
        seq: Seq,
        hint: Option<(Seq, Position)>,
        check: TargetCheck,
    ) -> Option<(WindowFrame, SegmentNo)> {
        let index = self.segment_index(seq)?;
        let info = &self.segments[index];
        // Only segments sealed as rolled over: their bytes no longer change, so a kept copy
        // cannot go stale (the last segment's unflushed frames can be rewritten after a
        // writer's crash, and a copy would keep the old ones).
        let seal = info
            .seal
            .filter(|s| s.kind == SealKind::Rolled && index + 1 < self.segments.len())?;
        if seq >= seal.end_seq {
            return None;
        }
        let segment = info.header.segment_no;
        let start = Self::hint_in(info, hint, seq).map_or(
            (info.header.first_seq, SEGMENT_HEADER_BYTES),
            |(sampled, position)| (sampled, position.offset),
        );
        let PointRead::Copied(copied) = self.maps().point_read(&info.file_name, start.1) else {
            return None;
        };
        let read =
            |offset, buf: &mut [u8]| self.storage.read_segment_at(&info.file_name, offset, buf);
        let frame = window::find_frame(read, info.header.segment_bytes, start, seq, check, copied)?;
        if frame.read_file {
            self.maps().keep_copy(&info.file_name, frame.copy.clone());
        }
        Some((frame, segment))
    }

    /// Index in `segments` of the segment that would hold `seq`; `None` before the first.
    fn segment_index(&self, seq: Seq) -> Option<usize> {
        self.segments
            .partition_point(|s| s.header.first_seq <= seq)
            .checked_sub(1)
    }

    /// `hint` when it names a frame of segment `info` at or before `seq` (a walk of that
    /// segment may start there).
    fn hint_in(
        info: &SegmentInfo,
        hint: Option<(Seq, Position)>,
        seq: Seq,
    ) -> Option<(Seq, Position)> {
        hint.filter(|(sampled, position)| {
            position.segment == info.header.segment_no
                && *sampled >= info.header.first_seq
                && *sampled <= seq
        })
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, SegmentMaps<S::Segment>> {
        self.open_segments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the record whose frame is at `position` (as returned in [`Record::position`]).
    ///
    /// # Errors
    /// [`Error::BadPosition`] when no valid frame is there, I/O errors.
    pub fn read_at(&self, position: Position) -> Result<Record> {
        let bad = |detail: &str| Error::BadPosition {
            segment: position.segment,
            offset: position.offset,
            detail: detail.to_owned(),
        };
        let first_no = self.segments.first().map_or(0, |s| s.header.segment_no.0);
        let index = position
            .segment
            .0
            .checked_sub(first_no)
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| bad("no such segment"))?;
        let info = self
            .segments
            .get(index)
            .ok_or_else(|| bad("no such segment"))?;
        if position.offset < SEGMENT_HEADER_BYTES
            || !position.offset.is_multiple_of(format::FRAME_ALIGN)
        {
            return Err(bad("offset is not a frame boundary"));
        }
        let segment = self.open_segment(info)?;
        let bytes = segment.view();
        let frame = format::frame_at(&bytes, position.offset, bytes.len() as u64)
            .ok_or_else(|| bad("checksum or header invalid"))?;
        let seq = frame.header.seq;
        if seq < info.header.first_seq
            || info
                .seal
                .is_some_and(|s| s.kind == SealKind::Rolled && seq >= s.end_seq)
        {
            return Err(bad("frame does not belong to this segment"));
        }
        Ok(Record {
            seq,
            kind: RecordKind::from_disk(frame.header.kind),
            payload: bytes[frame.payload_range()].to_vec(),
            position,
        })
    }

    /// All records from `from` on, copied out (convenience over [`WalReader::scan`]).
    ///
    /// # Errors
    /// As for [`WalReader::scan`].
    pub fn read_from(&self, from: Seq) -> Result<Vec<Record>> {
        let mut records = Vec::new();
        self.scan(from, |record| {
            records.push(record.to_owned_record());
            ControlFlow::Continue(())
        })?;
        Ok(records)
    }

    /// Checks the whole log: every frame of every segment (checksums, dense sequence numbers,
    /// seals), and for the last segment the recovery decision between a torn tail and damage.
    ///
    /// # Errors
    /// [`Error::Corrupted`] naming the first bad place, I/O errors.
    pub fn verify(&self) -> Result<VerifyReport> {
        let end = self.scan(Seq(0), |_| ControlFlow::Continue(()))?;
        Ok(VerifyReport {
            segments: self.segments.len(),
            records: end,
            torn_tail_bytes: self.check_tail()?,
        })
    }

    /// The last segment's recovery decision alone (for callers that already walked every
    /// frame with [`WalReader::scan`]): the bytes of torn, never-acknowledged tail that the next
    /// writer open erases, or [`Error::Corrupted`] when the damage is not a torn tail.
    ///
    /// # Errors
    /// [`Error::Corrupted`], I/O errors.
    pub fn check_tail(&self) -> Result<u64> {
        let Some(info) = self.segments.last() else {
            return Ok(0);
        };
        let segment = self.open_segment(info)?;
        let (_, torn) = recovery::decide_last_segment(&segment.view(), info)?;
        Ok(torn.map_or(0, |(start, end)| end - start))
    }

    /// Segment maps this reader keeps now (at most [`OPEN_SEGMENTS_MAX`]).
    #[must_use]
    pub fn mapped_segments(&self) -> usize {
        self.maps().maps.len()
    }

    /// Maps a segment and keeps the map (up to [`OPEN_SEGMENTS_MAX`] of them): a random read
    /// must not pay an `open` and an `mmap` each time. Segment files are never rewritten under
    /// a name once it exists (the writer renames finished `.tmp` files into place), so a kept
    /// map stays the file's map.
    fn open_segment(&self, info: &SegmentInfo) -> Result<Arc<S::Segment>> {
        let mut cache = self.maps();
        if let Some(segment) = cache.get(&info.file_name) {
            return Ok(segment);
        }
        let segment = self
            .storage
            .open_segment(&info.file_name, Access::ReadOnly)
            .map_err(|e| Error::io("open segment", self.storage.dir().join(&info.file_name), e))?;
        let segment = Arc::new(segment);
        cache.insert(info.file_name.clone(), Arc::clone(&segment));
        Ok(segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept maps stay at most [`OPEN_SEGMENTS_MAX`], and the one evicted is the least
    /// recently used (a `get` counts as a use).
    #[test]
    fn segment_maps_evict_the_least_recently_used() {
        let mut maps = SegmentMaps::new();
        let name = |i: usize| format!("seg-{i}");
        for i in 0..OPEN_SEGMENTS_MAX {
            maps.insert(name(i), Arc::new(i));
        }
        // seg-0 is the oldest insert; using it makes seg-1 the least recently used.
        assert_eq!(maps.get(&name(0)).as_deref(), Some(&0));
        maps.insert(name(OPEN_SEGMENTS_MAX), Arc::new(OPEN_SEGMENTS_MAX));
        assert_eq!(maps.maps.len(), OPEN_SEGMENTS_MAX);
        assert!(maps.get(&name(1)).is_none());
        for i in (0..=OPEN_SEGMENTS_MAX).filter(|&i| i != 1) {
            assert_eq!(maps.get(&name(i)).as_deref(), Some(&i), "{}", name(i));
        }
        assert!(maps.get("seg-x").is_none());
    }

    /// A point read maps a segment while a slot is free; then it copies, reads again from
    /// the latest copy of its segment when that holds its start, and maps the segment when a
    /// copy of it is among the latest but does not.
    #[test]
    fn point_reads_copy_until_a_segment_is_read_again() {
        let mut maps = SegmentMaps::new();
        let name = |i: usize| format!("seg-{i}");
        let copy = |base: u64| SegmentCopy {
            base,
            bytes: Arc::new(vec![0; 4096]),
        };
        let copied = |read: PointRead| match read {
            PointRead::Copied(copy) => Some(copy.map(|c| c.base)),
            PointRead::Mapped => None,
        };
        for i in 0..OPEN_SEGMENTS_MAX {
            assert!(
                copied(maps.point_read(&name(i), 512)).is_none(),
                "a free slot"
            );
            maps.insert(name(i), Arc::new(i));
        }
        assert!(copied(maps.point_read(&name(3), 512)).is_none(), "kept");
        assert_eq!(copied(maps.point_read("a", 512)), Some(None), "a new copy");
        maps.keep_copy("a", copy(512));
        assert_eq!(copied(maps.point_read("a", 1024)), Some(Some(512)), "held");
        assert_eq!(copied(maps.point_read("a", 4608)), None, "read again: map");
        for other in ["b", "c", "d", "e"] {
            maps.keep_copy(other, copy(512));
        }
        assert_eq!(copied(maps.point_read("a", 4608)), Some(None), "pushed out");
        assert_eq!(maps.copies.len(), COPIES_KEPT);
        maps.insert("e".to_owned(), Arc::new(99));
        assert!(
            maps.copies.iter().all(|(n, _)| n != "e"),
            "a mapped segment's copy goes"
        );
        assert!(
            maps.get(&name(0)).is_none(),
            "the least recently used map went"
        );
        // A copy too large to keep is kept empty: a later read maps the segment.
        maps.keep_copy(
            "big",
            SegmentCopy {
                base: 512,
                bytes: Arc::new(vec![0; 4 * 16 * 1024 + 1]),
            },
        );
        assert_eq!(copied(maps.point_read("big", 512)), None);
    }
}
