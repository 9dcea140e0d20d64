//! The storage abstraction under the WAL.
//!
//! The writer, reader and recovery code run unchanged over the real file system
//! ([`FsStorage`], memory-mapped files) and over the crash simulator
//! ([`crate::sim::SimStorage`]), which keeps written and durable bytes apart so that tests can
//! crash the log at any storage operation.
//!
//! Failure model the WAL relies on (see `docs/design.md`, "Media assumptions"):
//! - bytes written into a segment are durable only after [`SegmentFile::sync_range`] covering
//!   them returned `Ok`; before that, each affected page may be old, new, torn at sector
//!   granularity, or garbage in the bytes that changed since they were durable — a crash never
//!   changes durable bytes the process did not rewrite ("powersafe overwrite");
//! - a file's size and contents returned by `create_segment` are durable when it returns;
//! - creates, renames and removes are durable after [`Storage::sync_dir`] returned `Ok`; before
//!   that a crash keeps some prefix of them, in order;
//! - after a failed sync nothing is known about the range (fsyncgate): the WAL stops.

use std::io;
use std::ops::Deref;
use std::path::Path;

mod fs;
pub(crate) use fs::checked_range;

pub use fs::{FsSegment, FsSegmentSync, FsStorage};

/// How a new segment file gets its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preallocation {
    /// Write zeros over the whole file and sync it: creation costs a full write, later mmap
    /// writes are fastest (measured ~940 MB/s against ~600 MB/s), and running out of disk
    /// shows up at creation. The default.
    #[default]
    ZeroFill,
    /// `fallocate(2)` the file: creation is quick and out-of-space still shows up at creation,
    /// but the first write to each block converts an unwritten extent.
    Fallocate,
}

/// Whether a segment is opened for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-only mapping; the file is never modified.
    ReadOnly,
    /// Read-write mapping, for the single writer.
    ReadWrite,
}

/// Syncs ranges of one segment file from any thread: how a group commit's sync runs beside
/// the writer ([`crate::Wal::start_flush`]).
pub trait SegmentSync: Send + 'static {
    /// Makes `len` bytes from `offset` durable, as [`SegmentFile::sync_range`] does.
    ///
    /// # Errors
    /// Any I/O error; the caller must treat the range as lost and stop.
    fn sync_range(&self, offset: u64, len: u64) -> io::Result<()>;
}

/// One pre-allocated segment file, mapped into memory.
pub trait SegmentFile: Send + Sync {
    /// What [`SegmentFile::sync_handle`] returns.
    type Syncer: SegmentSync;

    /// A borrowed view of the file's current bytes.
    type View<'a>: Deref<Target = [u8]>
    where
        Self: 'a;

    /// Length of the file in bytes (fixed at creation).
    fn len(&self) -> u64;

    /// Whether the file is empty (never true for a valid segment).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's bytes as this process sees them (written, not necessarily durable).
    fn view(&self) -> Self::View<'_>;

    /// Copies `data` into the file at `offset` (not durable until synced).
    ///
    /// # Errors
    /// `PermissionDenied` on a read-only segment, `InvalidInput` when the range is outside the
    /// file.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Makes `len` bytes from `offset` durable (`msync(MS_SYNC)` on the real file system).
    ///
    /// # Errors
    /// Any I/O error; the caller must treat the range as lost and stop.
    fn sync_range(&mut self, offset: u64, len: u64) -> io::Result<()>;

    /// A handle that syncs ranges of this file from another thread while the writer goes on
    /// writing after them (the real file system's was mapped when the file was opened).
    fn sync_handle(&self) -> Self::Syncer;
}

/// A directory that holds one log: small metadata files, segment files and a lock.
pub trait Storage: Send + Sync {
    /// The segment file type.
    type Segment: SegmentFile;
    /// Held while this process is the log's writer.
    type Lock: Send;

    /// The directory, for messages.
    fn dir(&self) -> &Path;

    /// Whether the directory exists.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    fn dir_exists(&self) -> io::Result<bool>;

    /// Creates the directory (and parents) if missing.
    ///
    /// # Errors
    /// I/O errors.
    fn create_dir(&self) -> io::Result<()>;

    /// Names of the files in the directory, sorted.
    ///
    /// # Errors
    /// I/O errors.
    fn list(&self) -> io::Result<Vec<String>>;

    /// Reads a small file whole.
    ///
    /// # Errors
    /// I/O errors, `NotFound`.
    fn read_file(&self, name: &str) -> io::Result<Vec<u8>>;

    /// Writes a small file atomically and durably: temporary file, sync, rename, directory sync.
    ///
    /// # Errors
    /// I/O errors; the file then either does not exist or has its old contents.
    fn write_file_atomic(&self, name: &str, bytes: &[u8]) -> io::Result<()>;

    /// Creates a pre-allocated, zero-filled, synced file of `len` bytes named `name` and maps
    /// it read-write. The name is not durable until [`Storage::sync_dir`].
    ///
    /// # Errors
    /// I/O errors, `ENOSPC` when the disk cannot hold the file; no file is left behind.
    fn create_segment(
        &self,
        name: &str,
        len: u64,
        prealloc: Preallocation,
    ) -> io::Result<Self::Segment>;

    /// Opens and maps an existing segment file.
    ///
    /// # Errors
    /// I/O errors, `NotFound`.
    fn open_segment(&self, name: &str, access: Access) -> io::Result<Self::Segment>;

    /// Copies bytes of an existing segment file from `offset` into `buf` without mapping it
    /// (`pread(2)` on the real file system): how a reader serves a point read from a segment
    /// it keeps no map of. Returns how many bytes were copied: fewer than `buf.len()` only
    /// where the file ends. The bytes are the file's current contents, as a map would show
    /// them (written, not necessarily durable).
    ///
    /// # Errors
    /// I/O errors, `NotFound`.
    fn read_segment_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Length of a file without mapping it.
    ///
    /// # Errors
    /// I/O errors, `NotFound`.
    fn file_len(&self, name: &str) -> io::Result<u64>;

    /// Renames a file inside the directory (durable after [`Storage::sync_dir`]).
    ///
    /// # Errors
    /// I/O errors.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;

    /// Removes a file (durable after [`Storage::sync_dir`]).
    ///
    /// # Errors
    /// I/O errors.
    fn remove(&self, name: &str) -> io::Result<()>;

    /// Makes creates, renames and removes in the directory durable.
    ///
    /// # Errors
    /// I/O errors.
    fn sync_dir(&self) -> io::Result<()>;

    /// Takes the exclusive writer lock without waiting; `Ok(None)` when another holder has it.
    ///
    /// # Errors
    /// I/O errors.
    fn try_lock(&self) -> io::Result<Option<Self::Lock>>;
}
