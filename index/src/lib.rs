//! `trailmix-index`: secondary indexes (tenant, model, time, session, event id) kept in redb
//! and derived from the log.
//!
//! The engine feeds every log entry's clear fields ([`IndexRecord`]) into an [`IndexBatch`]
//! and commits it with [`Index::commit`]; the index records the next seq it has not covered
//! (its watermark) in the same redb transaction, so after a crash it catches up from the log.
//! Queries read a snapshot ([`IndexReader`]). Layouts and the commit protocol are specified in
//! docs/design.md, "The index".

mod batch;
mod codec;
mod digest;
mod error;
mod event_ids;
mod event_time;
mod index;
mod postings;
mod reader;
mod record;
mod space;
mod tables;
mod term;
mod write;

pub use batch::IndexBatch;
pub use error::IndexError;
pub use event_ids::{EVENT_ID_BLOCK_ENTRIES, RUN_FANOUT};
pub use event_time::EventTimes;
pub use index::{CommitMode, Index, IndexOptions, ReadOnlyIndex, Sharing, StoreBinding};
pub use postings::Postings;
pub use reader::{CountRow, IndexReader};
pub use record::IndexRecord;
pub use space::{IndexSpace, TableSpace, disk_bytes};
pub use term::{Dimension, Direction, Term};

/// The index format this build reads and writes (meta key `format_version`). Any other
/// version is refused with [`IndexError::UnsupportedFormat`]; the engine then rebuilds.
pub const FORMAT_VERSION: u32 = 2;

/// Longest string a key can hold (a `u16` length prefix): every term field, tenant, model
/// value and decision. Receipts are far below it (ids ≤ 128 bytes, label values ≤ 256).
pub const MAX_FIELD_BYTES: usize = 65_535;

/// Default size a chunk grows to before a new one starts (see
/// [`IndexOptions::chunk_target_bytes`]). A full chunk is at most this plus one entry, so two
/// full chunks with their keys and redb's leaf header fit one 4 KiB page (at 2048, one did).
pub const DEFAULT_CHUNK_TARGET_BYTES: usize = 1800;

/// Smallest chunk target accepted.
pub const MIN_CHUNK_TARGET_BYTES: usize = 64;

/// Largest chunk target accepted. A stored chunk is at most the target plus one entry
/// ([`MAX_CHUNK_ENTRY_BYTES`]).
pub const MAX_CHUNK_TARGET_BYTES: usize = 256 * 1024;

/// Largest encoded entry in a chunk: a `(seq delta, value delta)` pair of two 10-byte varints.
pub const MAX_CHUNK_ENTRY_BYTES: usize = 20;

/// Default redb page cache.
pub const DEFAULT_CACHE_BYTES: usize = 128 * 1024 * 1024;

/// One hour in nanoseconds: the granularity of the counts table.
pub const HOUR_NS: i64 = 3_600_000_000_000;

/// BLAKE3 `derive_key` context of event-id keys.
pub const EVENT_ID_CONTEXT: &str = "trailmix-db 2026-11-22 index event id v1";

/// BLAKE3 `derive_key` context of [`IndexReader::logical_digest`].
pub const DIGEST_CONTEXT: &str = "trailmix-db 2026-11-22 index logical digest v1";
