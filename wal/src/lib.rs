//! `trailmix-wal`: the write-ahead log under trailmix-db.
//!
//! A log is a directory of pre-allocated, memory-mapped segment files holding framed records
//! with dense sequence numbers. Records are opaque bytes with a one-byte kind; this crate knows
//! nothing about receipts. It is built for group commit: [`Wal::append`] copies many records
//! into the map, then one [`Wal::flush`] makes all of them durable and returns the durable
//! watermark. A failed flush stops the log until it is reopened.
//!
//! On open, recovery truncates only a torn tail written after the last durable flush; damage
//! to anything that was durable is an [`Error::Corrupted`] naming segment and offset. The byte
//! layout, the commit protocol and the recovery decision table are specified in
//! `docs/design.md`.
//!
//! ```
//! use trailmix_wal::{ChainHash, RecordKind, Wal, WalOptions, WalReader, Seq};
//!
//! # fn main() -> Result<(), trailmix_wal::Error> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let options = WalOptions::default().segment_bytes(1 << 20).record_bytes_max(64 << 10);
//! let mut wal = Wal::open(dir.path(), options.clone())?;
//! let kind = RecordKind::new(1)?;
//! for i in 0..100u32 {
//!     wal.append(kind, format!("record {i}").as_bytes(), &ChainHash::ZERO)?;
//! }
//! let durable_end = wal.flush()?; // one sync for all 100 records
//! assert_eq!(durable_end, Seq(100));
//! wal.close()?;
//!
//! let reader = WalReader::open(dir.path())?;
//! let record = reader.read(Seq(42))?;
//! assert_eq!(record.payload, b"record 42");
//! # Ok(())
//! # }
//! ```

mod error;
pub mod format;
#[doc(hidden)]
pub mod fuzz_targets;
mod reader;
pub mod recovery;
pub mod sim;
pub mod storage;
mod types;
mod wal;
mod window;

pub use error::{Error, Result};
pub use reader::{OPEN_SEGMENTS_MAX, Position, Record, RecordRef, VerifyReport, WalReader};
pub use recovery::SegmentInfo;
pub use storage::{Access, FsStorage, Preallocation, SegmentFile, SegmentSync, Storage};
pub use types::{ChainHash, HashAlgorithm, RecordKind, SegmentNo, Seq, StoreId};
pub use wal::{
    DEFAULT_RECORD_BYTES_MAX, DEFAULT_SEGMENT_BYTES, FlushJob, FlushOutcome, OpenMode, OpenReport,
    SegmentPreparation, Wal, WalFlushJob, WalOptions,
};
