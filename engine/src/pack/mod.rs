//! Evidence packs: one tenant's receipts over a logged-time range, with everything an auditor
//! needs to check them offline — inclusion proofs, the signed checkpoints and epoch seals they
//! rest on, the tenant-chain links that prove nothing of the range is missing — in a flat
//! directory (or a tar archive of it) whose manifest is signed with the store's key.
//!
//! [`export_pack`] builds a pack from a store's log (read-only: it works beside a live
//! writer); [`verify_pack`] checks one with a public key the caller brings. The format is
//! `docs/design.md`, "Evidence packs".

mod export;
mod files;
pub mod format;
pub mod fuzz;
mod summary;
mod verify;

use std::path::{Path, PathBuf};

pub use export::{ExportSummary, export_pack};
pub use files::{PACK_FILE_BYTES_MAX, PackFiles, file_entry};
pub use format::{Counts, LineState, Manifest, TipLine, key_fingerprint};
pub use verify::{
    Completeness, EndProof, PackFailure, PackReport, ShredRecordReport, StartProof,
    TimestampReport, TimestampVerdict, TrustedKey, verify_pack, verify_pack_files,
    verify_pack_files_with_tsa, verify_pack_with_tsa,
};

use trailmix_query::Filter;

/// The default bound on `tail.jsonl`: beyond it the end of the range is left unproven rather
/// than making the pack as large as the log.
pub const TAIL_LINKS_MAX_DEFAULT: u64 = 100_000;

/// Which receipts a pack covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackScope {
    /// The tenant.
    pub tenant: String,
    /// Receipts logged at or after this (ns since the Unix epoch, the writer's clock).
    pub logged_from_ns: Option<u64>,
    /// Receipts logged before this.
    pub logged_to_ns: Option<u64>,
    /// Of the range, only receipts this filter selects are shown in full; the others appear as
    /// hash-only links (counted, proven, but not shown).
    pub filter: Option<Filter>,
}

/// How a pack proves the end of its range when no later receipt of the tenant closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndProofMode {
    /// The tenant's tip, signed in the horizon note's tips line: reveals nothing of other
    /// tenants but Merkle path hashes. Falls back to [`EndProofMode::LogTail`] when the
    /// horizon note has no tips line (stores written before tips existed).
    #[default]
    TenantTip,
    /// `tail.jsonl`: the fixed bytes of every log entry after the last line up to the horizon,
    /// other tenants' included (their seqs, logged times, flags and link hashes). What packs
    /// of stores without tips use; chosen here only to compare the two proofs.
    LogTail,
}

/// How to build a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// The most hash-only links `tail.jsonl` may hold (see [`TAIL_LINKS_MAX_DEFAULT`]).
    pub tail_links_max: u64,
    /// How the end is proven when no later receipt of the tenant closes the range.
    pub end_proof: EndProofMode,
    /// Where entries of epochs dropped locally after archiving are read from (through the
    /// store's cache, checked against its retained leaf hashes); without it a pack cannot
    /// reach below the prune horizon.
    pub archive: Option<crate::archive::ArchiveReads>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            tail_links_max: TAIL_LINKS_MAX_DEFAULT,
            end_proof: EndProofMode::default(),
            archive: None,
        }
    }
}

/// Why a pack could not be built or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// A file or directory operation failed.
    #[error("cannot {op} {path}: {detail}")]
    Io {
        /// What was tried.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The system's message.
        detail: String,
    },
    /// Reading the store failed.
    #[error("{0}")]
    Store(#[from] crate::Error),
    /// The store's log is not what a pack can rest on.
    #[error("the store cannot back a pack: {0}")]
    Unusable(String),
    /// The signing key is not the store's.
    #[error("the signing key is not this store's: {0}")]
    WrongSigner(String),
    /// Signing the manifest failed.
    #[error("signing the manifest: {0}")]
    Sign(String),
    /// A pack archive is not a flat tar of regular files.
    #[error("pack archive: {0}")]
    Archive(String),
}

impl PackError {
    pub(crate) fn io(op: &'static str, path: &Path, err: &std::io::Error) -> PackError {
        PackError::Io {
            op,
            path: path.to_path_buf(),
            detail: err.to_string(),
        }
    }
}
