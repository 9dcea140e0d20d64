//! `trailmix-db`: an embedded, append-only, tamper-evident store for AI decision receipts.
//!
//! Services link this crate and call [`Db::open`], [`Db::append`] and [`Ticket::wait`]:
//! receipts pass through a bounded ring buffer to one writer thread that links them into a
//! hash chain, appends them to a crash-safe write-ahead log ([`wal`]) and makes each batch
//! durable with one sync (group commit). The log is cut into epochs, each with its own Merkle
//! tree (RFC 9162 shape, [`merkle`]), whose roots are published as Ed25519-signed C2SP
//! checkpoints ([`note`]) inside the log. [`verify_store`] checks everything offline.
//!
//! ```
//! use trailmix_db::{Db, receipt::{ActorType, Kind, Receipt, Timestamp}};
//!
//! # fn main() -> Result<(), trailmix_db::Error> {
//! # let dir = tempfile::tempdir().expect("temp dir");
//! let db = Db::open(dir.path().join("trailmix-data"))?;
//! let receipt = Receipt::builder("acme", "evt-0001", Kind::LlmCall)
//!     .app_id("claims-assistant")
//!     .actor_type(ActorType::Agent)
//!     .event_time(Timestamp::now())
//!     .model_name("gpt-4.1")
//!     .build()?;
//! let position = db.append(&receipt)?.wait()?; // durable: survives kill -9 and power loss
//! assert_eq!(db.get(position.seq)?.header.event_id(), "evt-0001");
//! db.close()?;
//! # Ok(())
//! # }
//! ```

mod ahead;
pub mod archive;
mod batch_share;
mod compact_index;
pub mod compress;
pub mod crypto;
mod db;
pub mod entry;
mod error;
pub mod fuzz;
mod header_fields;
pub mod indexer;
pub mod keys;
pub mod keystore;
pub mod log;
pub mod merkle;
pub mod note;
mod options;
pub mod pack;
pub mod pii;
mod position;
pub mod proof;
mod proof_tables;
pub mod prune;
mod read_only;
mod read_pool;
mod reads;
pub mod receipt;
pub mod replay;
pub mod retention;
mod search;
pub mod seen;
pub mod shred;
pub mod snapshot;
mod stamper;
mod sync_thread;
mod ticket;
pub mod timestamp;
pub mod tips;
mod verify;
pub mod witness;
mod writer;

pub use compact_index::IndexCompaction;
pub use db::{Db, ENTRY_BYTES_MAX, EventCheck, ReceiptHead, StoredReceipt, WAL_DIR};
pub use error::{Error, Result};
pub use log::{FsLog, LogStorage};
pub use options::{
    DEFAULT_BACKPRESSURE_TIMEOUT, DEFAULT_BATCH_PREPARE_THREADS_MAX, DEFAULT_BATCH_RECORDS_MAX,
    DEFAULT_CHECKPOINT_EVERY_RECORDS, DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_EPOCH_RECORDS_MAX,
    DEFAULT_FLUSH_INTERVAL, DEFAULT_QUERY_THREADS_MAX, DEFAULT_RING_CAPACITY,
    DEFAULT_SNAPSHOT_EVERY_ENTRIES, DEFAULT_ZSTD_LEVEL, DbOptions, Durability, PayloadCipher,
    PayloadCompression, PayloadEncryption, ReceiptSignatures, SyncPlacement, TimestampPolicy,
    TsaSettings, ZstdDictionary, default_batch_prepare_threads, default_query_threads,
};
pub use position::{Epoch, ReceiptPosition};
pub use proof_tables::{PROOF_BASE_LEVEL, PROOF_DIR, SEALED_TABLES_CACHED, TABLE_BODY_CONTEXT};
pub use prune::{PruneError, PruneMode, PruneReport, PruneStep, PruneStop};
pub use read_only::{IndexSource, ReadOnlyStore};
pub use search::{
    FOLLOW_CHUNK_ENTRIES, FOLLOW_POLL, FRESHNESS_WAIT_MAX, Follow, Freshness, IndexCheck,
    IndexStatus, LINEAGE_HOPS_MAX, QueryHit, QueryPage, TRACE_RECEIPTS_MAX, TenantView, Trace,
};
pub use shred::{PayloadState, ShredError, ShredReport};
pub use stamper::TimestampStatus;
pub use ticket::{BatchResults, BatchTicket, Ticket};
/// Where an index file's bytes go ([`IndexCompaction`]'s before and after).
pub use trailmix_index::IndexSpace as IndexSpaceReport;
/// Bytes the file system allocated to a file (Unix: `st_blocks` × 512; elsewhere its length).
pub use trailmix_index::disk_bytes as allocated_bytes;
pub use trailmix_query as query;
pub use trailmix_wal as wal;
pub use verify::{
    PrunedRange, VERIFY_PROGRESS_EVERY, VerifyOptions, VerifyProgress, VerifyReport, verify_log,
    verify_store,
};
pub use writer::CheckpointInfo;

/// The repository README's Rust example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
