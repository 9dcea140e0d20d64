//! Archive of sealed epochs to object storage (S3 with Object Lock, or the local file system).
//!
//! [`Db::archive`](crate::Db::archive) ships every sealed epoch that is not archived yet — its
//! seal entry, its leaf hashes (the proof data) and the segment bytes that hold it — under
//! `<prefix>/<store id>/epoch-N/`, then a manifest with the SHA-256 of every object. Objects are
//! created with `PutMode::Create` (never overwritten); one already there with the same SHA-256
//! counts as done, one with different bytes is an error naming it, so a run that crashed at any
//! point is simply run again. Segments go in parts of at most
//! [`ArchiveOptions::part_bytes`], read from the file one part at a time (bounded memory), paced
//! to [`ArchiveOptions::bytes_per_second_max`] so that archiving leaves the machine to ingest.
//! Once every object of a run of epochs is confirmed in the archive with its manifest's size
//! and SHA-256 ([`RemoteCheck`]: the checksum the S3 server verified and stored, or a full
//! read-back), the writer appends a signed archive record (entry kind 8) to the log, so what is
//! archived is itself audited. [`verify_archive`] rebuilds a store's log from the archive alone
//! and verifies it. The byte layout is in `docs/design.md`, "Archive".

#[cfg(feature = "archive")]
mod cache;
#[cfg(not(feature = "archive"))]
#[path = "cache_off.rs"]
mod cache;
#[cfg(feature = "archive")]
mod check;
#[cfg(feature = "archive")]
mod manifest;
#[cfg(feature = "archive")]
mod remote;
#[cfg(feature = "archive")]
mod ship;
#[cfg(feature = "archive")]
mod throttle;

use serde::{Deserialize, Serialize};

use crate::entry::EntryRef;
use crate::merkle::Digest;
use crate::replay::{ChainState, Damage, DamageKind};
use crate::wal::Seq;

pub use cache::ArchiveReads;
#[cfg(feature = "archive")]
pub use cache::{ARCHIVE_CACHE_BYTES_MAX_DEFAULT, ARCHIVE_CACHE_DIR};
pub(crate) use cache::{ArchiveCache, Leftovers};
#[cfg(feature = "archive")]
pub use check::{ArchiveDamage, ArchiveVerifyReport, restore_log, verify_archive};
#[cfg(feature = "archive")]
pub use manifest::{EpochManifest, ManifestObject, ManifestSegment};
#[cfg(feature = "archive")]
pub use remote::{ArchiveTarget, RemoteCheck, S3Settings};
#[cfg(feature = "archive")]
pub use ship::{ARCHIVE_BYTES_PER_SECOND_DEFAULT, ArchiveOptions, ArchiveProgress, ArchiveReport};

/// Format of archive records and manifests written by this version.
pub const ARCHIVE_FORMAT: u32 = 1;

/// Why archiving or verifying an archive failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// The archive URL is not `s3://bucket[/prefix]` or `file:///path`.
    #[error("archive URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object store refused or failed a request (after its retries).
    #[error("object {object}: {detail}")]
    Remote {
        /// The object's full name.
        object: String,
        /// The store's error.
        detail: String,
    },
    /// An object already in the archive holds other bytes than this store would write: the
    /// archive belongs to another store, or was tampered with. Nothing is overwritten.
    #[error(
        "object {object} already exists with different content (sha256 {found}, expected {expected})"
    )]
    Conflict {
        /// The object's full name.
        object: String,
        /// SHA-256 of the bytes found (hex).
        found: String,
        /// SHA-256 of the bytes this store would write (hex).
        expected: String,
    },
    /// An object read back after upload does not match its manifest.
    #[error("object {object} does not match its manifest after upload: {detail}")]
    Unverified {
        /// The object's full name.
        object: String,
        /// What differs.
        detail: String,
    },
    /// Epochs that were never archived have already been pruned locally.
    #[error("epochs from seq {from} on were pruned before they were archived (horizon {horizon})")]
    PrunedUnarchived {
        /// The first seq not archived.
        from: u64,
        /// The local prune horizon.
        horizon: u64,
    },
    /// A segment that holds a sealed epoch is not final yet (no rolled seal).
    #[error("segment {file} is not final yet")]
    SegmentNotFinal {
        /// The segment's file name.
        file: String,
    },
    /// An archived object fetched to read a dropped epoch does not match its manifest or what
    /// the store itself retained of the epoch (its seal and leaf hashes): the archive was
    /// tampered with or belongs to another store. Nothing of it is cached.
    #[error("archived object {object} refused: {detail}")]
    Refused {
        /// The object's full name.
        object: String,
        /// What differs.
        detail: String,
    },
    /// The archive holds no store, or several and none was named.
    #[error("{0}")]
    NoStore(String),
    /// The run stopped after the number of objects [`ArchiveOptions::stop_after_objects`]
    /// allowed (fault injection for tests).
    #[error("stopped after {objects} objects, as asked")]
    Interrupted {
        /// Objects handled before the stop.
        objects: u64,
    },
}

/// The payload of an archive entry (kind 8): JSON, signed with the store's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveRecord {
    /// Format of this record (1).
    pub format: u32,
    /// First seq archived by this run (the first entry of `first_epoch`).
    pub from_seq: u64,
    /// One past the last seq archived by this run (one past `last_epoch`'s seal).
    pub to_seq: u64,
    /// First epoch archived by this run.
    pub first_epoch: u64,
    /// Last epoch archived by this run.
    pub last_epoch: u64,
    /// SHA-256 (hex) of each epoch's manifest object, in epoch order.
    pub manifests: Vec<String>,
}

impl ChainState {
    /// Checks an archive entry (signed, no header, a valid record contiguous with the previous
    /// one, covering sealed epochs only) and remembers it.
    pub(crate) fn check_archive(
        &mut self,
        seq: Seq,
        entry: &EntryRef<'_>,
        chain_hash: &Digest,
    ) -> std::result::Result<(), Damage> {
        let record: ArchiveRecord = self.parse_signed_record(seq, entry, chain_hash)?;
        let damage = |detail: String| Damage {
            seq,
            kind: DamageKind::Malformed,
            detail,
        };
        let epochs = record
            .last_epoch
            .checked_sub(record.first_epoch)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| n.checked_add(1));
        if record.format != ARCHIVE_FORMAT
            || epochs != Some(record.manifests.len())
            || record.to_seq <= record.from_seq
            || record.to_seq > seq.0
            || record.last_epoch >= self.epoch.0
        {
            return Err(damage(
                "archive record: inconsistent range (format, epochs, manifests, seqs)".into(),
            ));
        }
        // Records below a prune horizon are gone: the first one replayed may start anywhere.
        let contiguous = record.from_seq == self.archived_end.0
            || (self.archives.is_empty() && self.pruned.is_some());
        if !contiguous {
            return Err(damage(format!(
                "archive record starts at seq {}, the previous one ended at {}",
                record.from_seq, self.archived_end
            )));
        }
        self.archived_end = Seq(record.to_seq);
        self.archives.push((seq, record));
        Ok(())
    }
}
