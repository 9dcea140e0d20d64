//! The engine's error type. Every variant says what went wrong and where; it is `Clone` so that
//! one failure can complete many tickets.

use std::path::PathBuf;
use std::sync::Arc;

use crate::receipt::ReceiptError;
use crate::wal::Seq;

/// Result alias for engine operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The write-ahead log failed (I/O, corruption, lock, bad input).
    #[error(transparent)]
    Wal(Arc<crate::wal::Error>),
    /// A receipt failed validation.
    #[error("invalid receipt: {0}")]
    Receipt(#[from] ReceiptError),
    /// The ring buffer stayed full for the whole backpressure timeout (or was full for a
    /// non-blocking append): nothing was appended, try again later.
    #[error(
        "backpressure: the ring buffer of {capacity} submissions stayed full for {waited_ms} ms; nothing was appended"
    )]
    Backpressure {
        /// Ring capacity.
        capacity: usize,
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// An event id was already used in this tenant by a different receipt.
    #[error(
        "conflict: tenant {tenant} already has event {event_id} at seq {existing} with different contents"
    )]
    Conflict {
        /// The tenant.
        tenant: String,
        /// The event id.
        event_id: String,
        /// Where the first receipt with that id is.
        existing: Seq,
    },
    /// The database was closed (or its writer stopped) before this operation.
    #[error("the database is closed")]
    Closed,
    /// The writer stopped after a failure; reopen the store.
    #[error("the writer stopped after a failure ({cause}); reopen the store to recover")]
    Stopped {
        /// The failure.
        cause: String,
    },
    /// A key file or key text is missing or invalid.
    #[error("signing key problem at {path}: {detail}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A file operation outside the WAL failed.
    #[error("{op} failed on {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The store's content contradicts itself (use `verify` for a full report).
    #[error("store damaged at seq {seq}: {detail}")]
    Damaged {
        /// The first bad sequence number found.
        seq: Seq,
        /// What is wrong.
        detail: String,
    },
    /// The entry is well formed but uses something this build does not have (a newer entry
    /// version, a zstd dictionary it lacks): a newer build of trailmix-db wrote it and reads
    /// it. It is not damage; `verify` checks its hashes without reading what it cannot.
    #[error("entry at seq {seq} needs a newer build of trailmix-db: {what}")]
    Unsupported {
        /// The entry.
        seq: Seq,
        /// What this build lacks.
        what: String,
    },
    /// A requested entry does not exist or is not a receipt.
    #[error("no receipt at seq {seq}: {detail}")]
    NotFound {
        /// The sequence number asked for.
        seq: Seq,
        /// Why.
        detail: String,
    },
    /// The entry lies in an epoch that was archived and then dropped locally
    /// ([`Db::prune_archived`](crate::Db::prune_archived)), and the store was opened without
    /// an archive to read it from.
    #[error(
        "seq {seq} is in an archived epoch dropped locally (prune horizon {horizon}): open the \
         store with DbOptions::archive_reads (the CLI: --archive URL) to read it from the archive"
    )]
    Archived {
        /// The sequence number asked for.
        seq: Seq,
        /// The first seq the store still holds locally.
        horizon: Seq,
    },
    /// The secondary index failed. The log is not affected: receipts stay durable and
    /// verifiable, and the next open catches the index up or rebuilds it from the log.
    #[error("index {}: {detail}", path.display())]
    Index {
        /// The index file.
        path: std::path::PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A query was refused: a bad filter, cursor or limit.
    #[error("query: {0}")]
    Query(String),
    /// The key store (data keys, key-encryption keys) is missing, damaged or does not open
    /// with the key-encryption key given.
    #[error("key store problem at {path}: {detail}")]
    KeyStore {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A shred was refused, or a receipt lost its key to a shred while in flight.
    #[error("shred: {0}")]
    Shred(#[from] crate::shred::ShredError),
    /// A prune was refused (nothing changed), or the retained state of a pruned range is
    /// unreadable.
    #[error("prune: {0}")]
    Prune(#[from] crate::prune::PruneError),
    /// Archiving to (or verifying from) object storage failed; see the inner error.
    #[error("archive: {0}")]
    Archive(#[from] crate::archive::ArchiveError),
    /// The PII policy refused a receipt (a field too long once redacted, two label keys
    /// redacted to one); nothing was appended.
    #[error("PII redaction: {0}")]
    Pii(#[from] crate::pii::PiiError),
    /// A batch was refused before anything was queued: these items (index in the batch, and
    /// why) could not be prepared. Nothing of the batch was appended.
    #[error("batch refused, nothing appended: {} item(s) invalid, the first (item {}): {}",
        items.len(),
        items.first().map_or(0, |(i, _)| *i),
        items.first().map_or_else(String::new, |(_, e)| e.to_string()))]
    BatchRefused {
        /// Each invalid item's index in the batch and its error, in batch order.
        items: Vec<(usize, Error)>,
    },
    /// A batch holds more receipts than one submission may (the ring's capacity, see
    /// [`crate::DbOptions::ring_capacity`]); nothing was appended. Split it.
    #[error("batch of {len} receipts exceeds the largest batch, {max}; nothing was appended")]
    BatchTooLarge {
        /// Receipts in the batch.
        len: usize,
        /// The largest batch allowed.
        max: usize,
    },
    /// An option is out of range.
    #[error("invalid option {name}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

impl From<crate::wal::Error> for Error {
    fn from(err: crate::wal::Error) -> Error {
        Error::Wal(Arc::new(err))
    }
}

impl Error {
    /// The error for entry `seq` (WAL kind byte `kind`, entry bytes `bytes`) that did not
    /// decode with `detail`: [`Error::Unsupported`] when a newer build wrote it
    /// ([`crate::entry::newer_format`]), else [`Error::Damaged`].
    pub(crate) fn undecodable(
        seq: Seq,
        kind: u8,
        bytes: &[u8],
        detail: &dyn std::fmt::Display,
    ) -> Error {
        match crate::entry::newer_format(kind, bytes) {
            Some(what) => Error::Unsupported { seq, what },
            None => Error::Damaged {
                seq,
                detail: detail.to_string(),
            },
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}
