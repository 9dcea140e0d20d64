//! Where the engine's log lives: the real file system, or the crash simulator in tests.

use std::path::PathBuf;

use crate::error::Result;
use crate::wal::sim::{SimDisk, SimStorage};
use crate::wal::{FsStorage, Storage, WalReader};

/// A place that holds one store's write-ahead log. [`Db`](crate::Db) opens the writer on it and
/// opens readers (replay, reads, proofs) on fresh handles.
pub trait LogStorage: Send + Sync + 'static {
    /// The storage type of the WAL.
    type Storage: Storage + 'static;

    /// A storage handle for the single writer.
    fn for_writer(&self) -> Self::Storage;

    /// A storage handle for a reader.
    fn for_reader(&self) -> Self::Storage;

    /// Opens a read-only reader.
    ///
    /// # Errors
    /// The WAL's open errors.
    fn open_reader(&self) -> Result<WalReader<Self::Storage>> {
        Ok(WalReader::open_with(self.for_reader())?)
    }

    /// Whether readers in several threads may scan the log at once without waiting on each
    /// other (true for memory-mapped files). Verification hashes ahead in other threads only
    /// when they may.
    fn parallel_scans(&self) -> bool {
        true
    }
}

/// A log directory on the real file system (the default: `<data dir>/wal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsLog {
    dir: PathBuf,
}

impl FsLog {
    /// The log in `dir`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> FsLog {
        FsLog { dir: dir.into() }
    }
}

impl LogStorage for FsLog {
    type Storage = FsStorage;

    fn for_writer(&self) -> FsStorage {
        FsStorage::new(&self.dir).with_spare_segments()
    }

    fn for_reader(&self) -> FsStorage {
        FsStorage::new(&self.dir)
    }
}

/// The crash simulator: every handle sees the same simulated disk.
impl LogStorage for SimDisk {
    type Storage = SimStorage;

    fn for_writer(&self) -> SimStorage {
        self.storage()
    }

    fn for_reader(&self) -> SimStorage {
        self.storage()
    }

    /// No: a simulated file stays locked for the length of a scan, so a scan waiting on
    /// another thread's scan of the same file would wait forever.
    fn parallel_scans(&self) -> bool {
        false
    }
}
