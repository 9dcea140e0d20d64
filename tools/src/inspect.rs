//! `trailmix-db inspect DIR`: what is inside a store, down to single frames.

use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::Path;

use serde::Serialize;
use trailmix_db::wal::format::{self, SealKind};
use trailmix_db::wal::{Error, Position, RecordRef, SegmentNo, Seq, WalReader};

use crate::{human_bytes, wal_dir};

/// One segment as `inspect` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Segment number.
    pub segment: u64,
    /// File name inside the log directory.
    pub file: String,
    /// First sequence number.
    pub first_seq: u64,
    /// Records in the segment.
    pub records: u64,
    /// Bytes used by the header and frames.
    pub used_bytes: u64,
    /// Size of the pre-allocated file.
    pub file_bytes: u64,
    /// `open`, `closed` (clean close, may be appended to) or `rolled` (sealed for good).
    pub state: &'static str,
    /// Chain hash the previous segment ended on, hex.
    pub prev_chain_hash: String,
}

/// The whole-store summary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoreSummary {
    /// Log directory.
    pub wal_dir: String,
    /// On-disk format version.
    pub format_version: u16,
    /// Store id, hex.
    pub store_id: String,
    /// Chain hash algorithm.
    pub hash_algorithm: String,
    /// Creation time, ms since the Unix epoch.
    pub created_unix_ms: u64,
    /// Records in the valid log.
    pub records: u64,
    /// Payload bytes of all records.
    pub payload_bytes: u64,
    /// Bytes allocated by segment files.
    pub allocated_bytes: u64,
    /// Segments in order.
    pub segments: Vec<SegmentSummary>,
}

/// A single record as `inspect --seq` / `--segment` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FrameSummary {
    /// Sequence number.
    pub seq: u64,
    /// Record kind.
    pub kind: u8,
    /// Segment number.
    pub segment: u64,
    /// Byte offset of the frame in the segment file.
    pub offset: u64,
    /// Payload length.
    pub payload_bytes: u64,
    /// The payload as text when it is UTF-8, else hex; cut at `preview_bytes_max`.
    pub payload_preview: String,
}

/// Longest payload preview printed.
pub const PREVIEW_BYTES_MAX: usize = 512;

fn frame_summary(record: &RecordRef<'_>) -> FrameSummary {
    let shown = &record.payload[..record.payload.len().min(PREVIEW_BYTES_MAX)];
    let mut preview = match std::str::from_utf8(shown) {
        Ok(text) => text.to_owned(),
        Err(_) => shown.iter().fold(String::with_capacity(shown.len() * 2), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        }),
    };
    if record.payload.len() > PREVIEW_BYTES_MAX {
        preview.push('…');
    }
    FrameSummary {
        seq: record.seq.0,
        kind: record.kind.get(),
        segment: record.position.segment.0,
        offset: record.position.offset,
        payload_bytes: record.payload.len() as u64,
        payload_preview: preview,
    }
}

/// Reads the summary of the store in `data_dir` (read-only; works while a writer runs).
///
/// # Errors
/// Any error opening or reading the log.
pub fn summary(data_dir: &Path) -> Result<StoreSummary, Error> {
    let reader = WalReader::open(wal_dir(data_dir))?;
    let mut segments: Vec<SegmentSummary> = reader
        .segments()
        .iter()
        .map(|info| SegmentSummary {
            segment: info.header.segment_no.0,
            file: info.file_name.clone(),
            first_seq: info.header.first_seq.0,
            records: 0,
            used_bytes: format::SEGMENT_HEADER_BYTES,
            file_bytes: info.header.segment_bytes,
            state: match info.seal.map(|s| s.kind) {
                None => "open",
                Some(SealKind::Closed) => "closed",
                Some(SealKind::Rolled) => "rolled",
            },
            prev_chain_hash: info.header.prev_chain_hash.to_string(),
        })
        .collect();
    let mut payload_bytes = 0;
    let end = reader.scan(Seq(0), |record| {
        payload_bytes += record.payload.len() as u64;
        if let Some(segment) = usize::try_from(record.position.segment.0)
            .ok()
            .and_then(|i| segments.get_mut(i))
        {
            segment.records += 1;
            segment.used_bytes =
                record.position.offset + format::frame_bytes(record.payload.len() as u64);
        }
        ControlFlow::Continue(())
    })?;
    let meta = reader.meta();
    Ok(StoreSummary {
        wal_dir: wal_dir(data_dir).display().to_string(),
        format_version: format::FORMAT_VERSION,
        store_id: meta.store_id.to_string(),
        hash_algorithm: meta.hash_algorithm.to_string(),
        created_unix_ms: meta.created_unix_ms,
        records: end.0,
        payload_bytes,
        allocated_bytes: segments.iter().map(|s| s.file_bytes).sum(),
        segments,
    })
}

/// Prints a summary for people.
pub fn print_summary(summary: &StoreSummary) {
    println!("log directory   {}", summary.wal_dir);
    println!(
        "format          version {}, chain hash {}",
        summary.format_version, summary.hash_algorithm
    );
    println!("store id        {}", summary.store_id);
    let created = std::time::UNIX_EPOCH + std::time::Duration::from_millis(summary.created_unix_ms);
    println!(
        "created         {}",
        humantime::format_rfc3339_seconds(created)
    );
    println!(
        "records         {} (seq 0..{}), {} of payload",
        summary.records,
        summary.records,
        human_bytes(summary.payload_bytes)
    );
    println!(
        "segments        {} ({} allocated on disk)",
        summary.segments.len(),
        human_bytes(summary.allocated_bytes)
    );
    println!();
    println!(
        "{:>4}  {:<26} {:>12} {:>10} {:>11} {:>11}  state",
        "#", "file", "first seq", "records", "used", "size"
    );
    for s in &summary.segments {
        println!(
            "{:>4}  {:<26} {:>12} {:>10} {:>11} {:>11}  {}",
            s.segment,
            s.file,
            s.first_seq,
            s.records,
            human_bytes(s.used_bytes),
            human_bytes(s.file_bytes),
            s.state
        );
    }
    println!();
    println!(
        "state: open = being written; closed = cleanly closed, may grow after reopen; rolled = full and sealed"
    );
}

/// The frames of one segment, from `skip`, at most `limit`.
///
/// # Errors
/// Any error reading the log; [`Error::BadPosition`] when the segment does not exist.
pub fn segment_frames(
    data_dir: &Path,
    segment: SegmentNo,
    skip: usize,
    limit: usize,
) -> Result<Vec<FrameSummary>, Error> {
    let reader = WalReader::open(wal_dir(data_dir))?;
    let index = usize::try_from(segment.0).unwrap_or(usize::MAX);
    let Some(info) = reader.segments().get(index) else {
        return Err(Error::BadPosition {
            segment,
            offset: 0,
            detail: format!("the log has {} segment(s)", reader.segments().len()),
        });
    };
    let mut frames = Vec::new();
    let from = Seq(info.header.first_seq.0 + skip as u64);
    reader.scan(from, |record| {
        if record.position.segment != segment || frames.len() >= limit {
            return ControlFlow::Break(());
        }
        frames.push(frame_summary(&record));
        ControlFlow::Continue(())
    })?;
    Ok(frames)
}

/// One record by sequence number.
///
/// # Errors
/// [`Error::SeqOutOfRange`] and read errors.
pub fn record(data_dir: &Path, seq: Seq) -> Result<FrameSummary, Error> {
    let reader = WalReader::open(wal_dir(data_dir))?;
    let record = reader.read(seq)?;
    let view = RecordRef {
        seq: record.seq,
        kind: record.kind,
        payload: &record.payload,
        position: record.position,
    };
    Ok(frame_summary(&view))
}

/// Prints frames for people.
pub fn print_frames(frames: &[FrameSummary]) {
    println!(
        "{:>12} {:>5} {:>8} {:>10} {:>9}  payload",
        "seq", "kind", "segment", "offset", "bytes"
    );
    for f in frames {
        let preview: String = f.payload_preview.chars().take(60).collect();
        println!(
            "{:>12} {:>5} {:>8} {:>10} {:>9}  {}",
            f.seq,
            f.kind,
            f.segment,
            f.offset,
            f.payload_bytes,
            preview.replace('\n', " ")
        );
    }
}

/// Prints one record for people.
pub fn print_record(f: &FrameSummary) {
    let position = Position {
        segment: SegmentNo(f.segment),
        offset: f.offset,
    };
    println!("seq        {}", f.seq);
    println!("kind       {}", f.kind);
    println!(
        "position   segment {} offset {}",
        position.segment, position.offset
    );
    println!("payload    {} bytes", f.payload_bytes);
    println!("{}", f.payload_preview);
}
