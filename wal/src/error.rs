//! The WAL's error type. Every variant says what went wrong and where.

use std::io;
use std::path::PathBuf;

use crate::{SegmentNo, Seq};

/// Result alias for WAL operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the WAL.
///
/// Errors from a failed open leave the directory unchanged. Errors from a failed flush are
/// fail-stop: see [`Error::FailStopped`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    #[error("{op} failed on {path}: {source}")]
    Io {
        /// What was being done (`"create segment"`, `"msync"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another `Wal` in this process) holds the writer lock.
    #[error("the log directory {path} is locked by another writer")]
    Locked {
        /// The log directory.
        path: PathBuf,
    },
    /// The directory exists and holds files but no WAL metadata file.
    #[error("{path} is not a trailmix WAL directory ({reason})")]
    NotAStore {
        /// The directory that was opened.
        path: PathBuf,
        /// Why it was not recognised.
        reason: String,
    },
    /// The directory holds no store and the open mode did not allow creating one.
    #[error("no WAL exists at {path}")]
    Missing {
        /// The directory that was opened.
        path: PathBuf,
    },
    /// The metadata file `wal.meta` is damaged.
    #[error("{path} is damaged: {detail}")]
    BadMeta {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A file was written by a newer (or unknown) format version.
    #[error("{path} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The file with the unknown version.
        path: PathBuf,
        /// The version found on disk.
        found: u16,
        /// The version this build understands.
        supported: u16,
    },
    /// A segment's header names a different store.
    #[error(
        "segment {segment} ({path}) belongs to another store (store id {found}, expected {expected})"
    )]
    ForeignSegment {
        /// The segment.
        segment: SegmentNo,
        /// Its file.
        path: PathBuf,
        /// The store id in the segment header, hex.
        found: String,
        /// The store id of this log, hex.
        expected: String,
    },
    /// A file is shorter than its fixed header.
    #[error("{path} is truncated: {len} bytes, shorter than its {needed}-byte header")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The minimum length.
        needed: u64,
    },
    /// Damage before the last durable commit (or inside a sealed segment, or in a header):
    /// never repaired silently.
    #[error("corrupted log: segment {segment} at byte offset {offset}: {detail}")]
    Corrupted {
        /// The segment where the damage is.
        segment: SegmentNo,
        /// Byte offset inside the segment file.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// A record is larger than the configured maximum.
    #[error("record of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// The payload length.
        len: u64,
        /// The configured maximum (`WalOptions::record_bytes_max`).
        max: u64,
    },
    /// The record kind is reserved.
    #[error("record kind {kind} is reserved (user kinds are 1..=127)")]
    ReservedKind {
        /// The kind that was passed.
        kind: u8,
    },
    /// A configuration value is out of range.
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// An earlier sync (of records, a seal, or the directory after creating a segment) failed;
    /// the log accepts nothing until it is reopened.
    ///
    /// After a failed `fsync`/`msync` the kernel may have dropped the dirty pages and cleared
    /// the error, so a retry that "succeeds" proves nothing (fsyncgate). Reopening runs
    /// recovery from what is really on disk.
    #[error("the log stopped after a failed sync ({cause}); reopen it to recover")]
    FailStopped {
        /// The error that stopped the log.
        cause: String,
    },
    /// A requested sequence number is not in the log.
    #[error("sequence number {seq} is not in the log ({})", held_range(*.first, *.end))]
    SeqOutOfRange {
        /// The requested sequence number.
        seq: Seq,
        /// The first sequence number held.
        first: Seq,
        /// One past the last sequence number held.
        end: Seq,
    },
    /// A (segment, offset) position does not hold a valid frame.
    #[error("no valid frame at segment {segment} offset {offset}: {detail}")]
    BadPosition {
        /// The segment.
        segment: SegmentNo,
        /// The offset.
        offset: u64,
        /// Why.
        detail: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// "it holds seq 3 to 9" (inclusive, as the tool prints ranges), or "it is empty".
fn held_range(first: Seq, end: Seq) -> String {
    if end.0 > first.0 {
        format!("it holds seq {} to {}", first.0, end.0 - 1)
    } else {
        "it holds no entry".to_owned()
    }
}
