//! [`IndexError`]: everything the index can refuse or fail at, with what and where.

use std::path::PathBuf;

/// Everything that can go wrong in the index.
///
/// A failed [`Index::commit`](crate::Index::commit) changes nothing: its redb write transaction
/// is dropped, which aborts it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// redb failed (I/O, a damaged file, a lock held by another opener).
    #[error("redb failed to {op} on {path}: {source}")]
    Redb {
        /// What was being done (`"open"`, `"commit"`, `"read table postings"`, ...).
        op: String,
        /// The index file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<redb::Error>,
    },
    /// The index was not closed cleanly (its writer stopped without closing it), and redb
    /// must repair it before it can be read, which a read-only opener cannot do. Opening the
    /// store for writing once repairs it, or rebuilds it from the log.
    #[error(
        "{path} was not closed cleanly (its writer stopped without closing it) and needs a \
         repair that only a writer can make"
    )]
    NeedsRepair {
        /// The index file.
        path: PathBuf,
    },
    /// The file is an index of another store or of another hash algorithm (or no index at all).
    /// The engine deletes it and rebuilds from the log.
    #[error("{path} is not an index of this store: {detail}")]
    ForeignIndex {
        /// The index file.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
    /// The file was written by a newer (or unknown) index format.
    #[error("{path} has index format version {found}; this build reads version {supported}")]
    UnsupportedFormat {
        /// The index file.
        path: PathBuf,
        /// The version found in the meta table.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// Stored bytes do not decode: a damaged chunk, key or meta value.
    #[error("{path}: table {table} is damaged ({detail})")]
    Corrupt {
        /// The index file.
        path: PathBuf,
        /// The redb table.
        table: &'static str,
        /// What is wrong, with the key in hex where there is one.
        detail: String,
    },
    /// A batch does not start where the index ends.
    #[error("batch starts at seq {found} but the index watermark is {expected}")]
    WatermarkMismatch {
        /// The index watermark (the next seq it does not cover).
        expected: u64,
        /// The batch's start.
        found: u64,
    },
    /// A record's seq is not above every seq the batch already covers.
    #[error("seq {seq} is not increasing: the batch already covers seqs below {end}")]
    SeqNotIncreasing {
        /// The refused record's seq.
        seq: u64,
        /// The batch's end (the smallest seq it would accept).
        end: u64,
    },
    /// A record's `logged_at` is below that of an earlier record.
    #[error(
        "seq {seq}: logged_at {logged_at_ns} ns is below the previous record's {previous_ns} ns"
    )]
    LoggedAtDecreasing {
        /// The refused record's seq.
        seq: u64,
        /// Its `logged_at`.
        logged_at_ns: u64,
        /// The `logged_at` of the record before it (in the batch or the index).
        previous_ns: u64,
    },
    /// A string is longer than a key can hold ([`MAX_FIELD_BYTES`](crate::MAX_FIELD_BYTES)).
    #[error("{field} is {len} bytes (at most {max}){}", seq.map(|s| format!(" at seq {s}")).unwrap_or_default())]
    FieldTooLong {
        /// The record's seq, when the string came from a record.
        seq: Option<u64>,
        /// Which field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A count bucket is not a positive multiple of one hour.
    #[error("bucket of {bucket_ns} ns is not a positive multiple of one hour (3600000000000 ns)")]
    BadBucket {
        /// The refused bucket width.
        bucket_ns: u64,
    },
    /// [`Index::compact`](crate::Index::compact) needs the index alone: a snapshot (a reader
    /// in this process, or a read-only opener in another) is still open. Nothing changed.
    #[error(
        "{path} is being read (a snapshot is open in this or another process); compaction \
         needs it alone, so nothing was changed: try again when no reader has it open"
    )]
    InUse {
        /// The index file.
        path: PathBuf,
    },
    /// A count range does not start and end on whole hours (counts are kept per hour, so any
    /// other range could not be answered exactly).
    #[error("count range [{from_ns}, {to_ns}) does not start and end on whole hours (UTC)")]
    UnalignedRange {
        /// Start of the refused range.
        from_ns: i64,
        /// End of the refused range.
        to_ns: i64,
    },
}

impl IndexError {
    /// Wraps a redb error with the operation and the file.
    pub(crate) fn redb(
        op: impl Into<String>,
        path: &std::path::Path,
        e: impl Into<redb::Error>,
    ) -> Self {
        IndexError::Redb {
            op: op.into(),
            path: path.to_path_buf(),
            source: Box::new(e.into()),
        }
    }

    /// A decoding failure in `table`.
    pub(crate) fn corrupt(
        path: &std::path::Path,
        table: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        IndexError::Corrupt {
            path: path.to_path_buf(),
            table,
            detail: detail.into(),
        }
    }
}
