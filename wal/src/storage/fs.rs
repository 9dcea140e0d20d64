//! The real file system: segment files mapped with memmap2.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use memmap2::{Mmap, MmapMut, MmapOptions, MmapRaw};

use super::{Access, Preallocation, SegmentFile, SegmentSync, Storage};
use crate::format::{LOCK_FILE, TMP_SUFFIX};

/// Zeros are written 64 KiB per `write(2)`, which leaves the file in 64 KiB page-cache folios.
/// Linux (6.16+, ext4 large folios) sizes folios by the write, and a store through the map
/// dirties its whole folio: with 1 MiB writes every flush rewrote at least 1 MiB (~1 MiB to
/// disk per single-record flush, 2x at 512 KiB batches) and the page faults cost more; 4 KiB
/// folios make large batches slower to fault and write back. See docs/performance.md.
const ZERO_CHUNK_BYTES: usize = 64 << 10;
const SPARE_PREFIX: &str = "spare-";

/// A background zero fill syncs after every this many bytes. Written in one burst and synced
/// once, a 64 MiB spare put 64 MiB of dirty pages in front of the log's next `fdatasync`: in a
/// probe of 4 KiB appends + `fdatasync` beside the fill, the slowest append took 62–101 ms with
/// one sync and 24–31 ms with a sync every 1 or 4 MiB (docs/performance.md, tenth session).
const SPARE_SYNC_INTERVAL_BYTES: u64 = 4 << 20;

/// How a zero fill meets the disk.
#[derive(Debug, Clone)]
enum FillPace {
    /// Write it all, sync once: the fastest way, for a segment the log is waiting on.
    Burst,
    /// Sync every [`SPARE_SYNC_INTERVAL_BYTES`] so the log's own syncs never queue behind the
    /// whole file, and give up (removing the file) once `cancel` is set: for the spare segment
    /// prepared in the background, which nobody waits on until the log rolls over.
    Paced { cancel: Arc<AtomicBool> },
}

/// A log directory on the real file system.
///
/// When [`FsStorage::with_spare_segments`] is on, the storage prepares the next segment file
/// (allocated, zero-filled, synced) on a background thread as soon as one is taken, so that a
/// rollover costs a rename instead of a 64 MiB write.
#[derive(Debug)]
pub struct FsStorage {
    dir: PathBuf,
    spare: Option<Mutex<Option<SpareJob>>>,
}

#[derive(Debug)]
struct SpareJob {
    len: u64,
    prealloc: Preallocation,
    name: String,
    cancel: Arc<AtomicBool>,
    handle: JoinHandle<io::Result<()>>,
}

impl FsStorage {
    /// A storage over `dir` (which need not exist yet).
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> FsStorage {
        FsStorage {
            dir: dir.into(),
            spare: None,
        }
    }

    /// Turns on background preparation of the next segment file.
    #[must_use]
    pub fn with_spare_segments(mut self) -> FsStorage {
        self.spare = Some(Mutex::new(None));
        self
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn take_spare(&self, len: u64, prealloc: Preallocation) -> Option<String> {
        let slot = self.spare.as_ref()?;
        let job = slot.lock().ok()?.take()?;
        let ready = job.handle.join().ok().and_then(Result::ok).is_some();
        if ready && job.len == len && job.prealloc == prealloc {
            Some(job.name)
        } else {
            let _ = std::fs::remove_file(self.path(&job.name));
            None
        }
    }

    fn start_spare(&self, len: u64, prealloc: Preallocation) {
        let Some(slot) = self.spare.as_ref() else {
            return;
        };
        let Ok(mut guard) = slot.lock() else { return };
        if guard.is_some() {
            return;
        }
        let name = format!("{SPARE_PREFIX}{len}{TMP_SUFFIX}");
        let path = self.path(&name);
        let cancel = Arc::new(AtomicBool::new(false));
        let pace = FillPace::Paced {
            cancel: Arc::clone(&cancel),
        };
        let handle = std::thread::Builder::new()
            .name("trailmix-wal-spare".into())
            .spawn(move || allocate_file(&path, len, prealloc, &pace).map(drop));
        if let Ok(handle) = handle {
            *guard = Some(SpareJob {
                len,
                prealloc,
                name,
                cancel,
                handle,
            });
        }
    }
}

impl Drop for FsStorage {
    fn drop(&mut self) {
        let job = self
            .spare
            .as_ref()
            .and_then(|slot| slot.lock().ok()?.take());
        if let Some(job) = job {
            // Closing need not wait for a spare nobody will use.
            job.cancel.store(true, Ordering::Relaxed);
            let _ = job.handle.join();
            let _ = std::fs::remove_file(self.path(&job.name));
        }
    }
}

/// Creates `path` with `len` bytes of durable zeros (or reserved blocks) and syncs it.
fn allocate_file(
    path: &Path,
    len: u64,
    prealloc: Preallocation,
    pace: &FillPace,
) -> io::Result<File> {
    let result = (|| {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        match prealloc {
            Preallocation::ZeroFill => {
                let zeros = vec![0u8; ZERO_CHUNK_BYTES];
                let mut left = len;
                while left > 0 {
                    let chunk = usize::try_from(left.min(ZERO_CHUNK_BYTES as u64)).unwrap_or(0);
                    file.write_all(&zeros[..chunk])?;
                    left -= chunk as u64;
                    if let FillPace::Paced { cancel } = pace
                        && (len - left).is_multiple_of(SPARE_SYNC_INTERVAL_BYTES)
                    {
                        if cancel.load(Ordering::Relaxed) {
                            return Err(io::Error::new(
                                io::ErrorKind::Interrupted,
                                "spare segment no longer wanted",
                            ));
                        }
                        file.sync_data()?;
                    }
                }
            }
            Preallocation::Fallocate => {
                rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len)?;
            }
        }
        file.sync_all()?;
        Ok(file)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn map_rw(file: &File) -> io::Result<MmapMut> {
    // SAFETY: memmap2 requires that no other process truncates or modifies the file while it is
    // mapped, or reads through the map may fault (SIGBUS) or change underneath us. This process
    // is the only writer (it holds the directory's LOCK); trailmix never shrinks a segment file;
    // readers in other processes only map read-only. A user who truncates a segment by hand
    // violates the failure model in docs/design.md ("Media assumptions").
    #[allow(unsafe_code)]
    unsafe {
        MmapMut::map_mut(file)
    }
}

fn map_ro(file: &File) -> io::Result<Mmap> {
    // SAFETY: as for `map_rw`, the file is never truncated by trailmix. The single writer may
    // still be appending to it from another process, so the bytes may change while mapped:
    // every reader treats the mapped bytes as untrusted input, validates each frame's checksum
    // before use, and copies payloads out before handing them to callers of the owned APIs.
    #[allow(unsafe_code)]
    unsafe {
        Mmap::map(file)
    }
}

/// A memory-mapped segment file.
#[derive(Debug)]
pub struct FsSegment {
    map: SegmentMap,
}

#[derive(Debug)]
enum SegmentMap {
    ReadOnly(Mmap),
    ReadWrite {
        map: MmapMut,
        /// A second, read-only mapping of the file, never read: `msync` on any shared mapping
        /// of a file syncs the file's dirty pages in that range (Linux runs `vfs_fsync_range`
        /// for it), so a sync thread can use this one while the writer's map stays `&mut`.
        sync: Arc<MmapRaw>,
    },
}

impl SegmentMap {
    fn read_write(file: &File) -> io::Result<SegmentMap> {
        Ok(SegmentMap::ReadWrite {
            map: map_rw(file)?,
            sync: Arc::new(MmapOptions::new().map_raw_read_only(file)?),
        })
    }
}

/// Syncs ranges of an [`FsSegment`] from another thread ([`SegmentFile::sync_handle`]).
#[derive(Debug, Clone)]
pub struct FsSegmentSync(Option<Arc<MmapRaw>>);

impl SegmentSync for FsSegmentSync {
    fn sync_range(&self, offset: u64, len: u64) -> io::Result<()> {
        match &self.0 {
            Some(map) => msync_range(map, offset, len),
            None => Ok(()), // a read-only segment has nothing to sync
        }
    }
}

/// `msync(MS_SYNC)` of `len` bytes from `offset` through the segment's sync mapping.
fn msync_range(map: &MmapRaw, offset: u64, len: u64) -> io::Result<()> {
    let range = checked_range(
        offset,
        usize::try_from(len).unwrap_or(usize::MAX),
        map.len(),
    )?;
    map.flush_range(range.start, range.len())
}

impl SegmentFile for FsSegment {
    type Syncer = FsSegmentSync;
    type View<'a> = &'a [u8];

    fn len(&self) -> u64 {
        self.view().len() as u64
    }

    fn view(&self) -> &[u8] {
        match &self.map {
            SegmentMap::ReadOnly(map) => map,
            SegmentMap::ReadWrite { map, .. } => map,
        }
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let SegmentMap::ReadWrite { map, .. } = &mut self.map else {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "segment is mapped read-only",
            ));
        };
        let range = checked_range(offset, data.len(), map.len())?;
        map[range].copy_from_slice(data);
        Ok(())
    }

    fn sync_range(&mut self, offset: u64, len: u64) -> io::Result<()> {
        match &self.map {
            SegmentMap::ReadOnly(_) => Ok(()),
            SegmentMap::ReadWrite { sync, .. } => msync_range(sync, offset, len),
        }
    }

    fn sync_handle(&self) -> FsSegmentSync {
        FsSegmentSync(match &self.map {
            SegmentMap::ReadOnly(_) => None,
            SegmentMap::ReadWrite { sync, .. } => Some(Arc::clone(sync)),
        })
    }
}

pub(crate) fn checked_range(
    offset: u64,
    len: usize,
    file_len: usize,
) -> io::Result<std::ops::Range<usize>> {
    let start = usize::try_from(offset).map_err(|_| out_of_range())?;
    let end = start.checked_add(len).ok_or_else(out_of_range)?;
    if end > file_len {
        return Err(out_of_range());
    }
    Ok(start..end)
}

fn out_of_range() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "range outside the segment file",
    )
}

impl Storage for FsStorage {
    type Segment = FsSegment;
    type Lock = File;

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn dir_exists(&self) -> io::Result<bool> {
        match std::fs::metadata(&self.dir) {
            Ok(meta) if meta.is_dir() => Ok(true),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err),
        }
    }

    fn create_dir(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn read_file(&self, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(name))
    }

    fn write_file_atomic(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.path(&format!("{name}{TMP_SUFFIX}"));
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, self.path(name))?;
        self.sync_dir()
    }

    fn create_segment(
        &self,
        name: &str,
        len: u64,
        prealloc: Preallocation,
    ) -> io::Result<FsSegment> {
        let path = self.path(name);
        let file = if let Some(spare) = self.take_spare(len, prealloc) {
            std::fs::rename(self.path(&spare), &path)?;
            OpenOptions::new().read(true).write(true).open(&path)?
        } else {
            allocate_file(&path, len, prealloc, &FillPace::Burst)?
        };
        let map = SegmentMap::read_write(&file)?;
        self.start_spare(len, prealloc);
        Ok(FsSegment { map })
    }

    fn open_segment(&self, name: &str, access: Access) -> io::Result<FsSegment> {
        let path = self.path(name);
        let map = match access {
            Access::ReadOnly => SegmentMap::ReadOnly(map_ro(&File::open(&path)?)?),
            Access::ReadWrite => {
                let file = OpenOptions::new().read(true).write(true).open(&path)?;
                SegmentMap::read_write(&file)?
            }
        };
        Ok(FsSegment { map })
    }

    fn read_segment_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let file = File::open(self.path(name))?;
        let mut copied = 0;
        while copied < buf.len() {
            let at = offset.saturating_add(copied as u64);
            match file.read_at(&mut buf[copied..], at) {
                Ok(0) => break,
                Ok(n) => copied += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(copied)
    }

    fn file_len(&self, name: &str) -> io::Result<u64> {
        Ok(std::fs::metadata(self.path(name))?.len())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from), self.path(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn try_lock(&self) -> io::Result<Option<File>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.path(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(err)) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_fill_writes_every_byte_as_zero() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("paced");
        // Not a multiple of the sync interval, nor of the write chunk.
        let len = SPARE_SYNC_INTERVAL_BYTES * 2 + 12_345;
        let pace = FillPace::Paced {
            cancel: Arc::new(AtomicBool::new(false)),
        };
        drop(allocate_file(&path, len, Preallocation::ZeroFill, &pace)?);
        let bytes = std::fs::read(&path)?;
        assert_eq!(bytes.len() as u64, len);
        assert!(bytes.iter().all(|&b| b == 0));
        Ok(())
    }

    #[test]
    fn a_cancelled_fill_stops_and_leaves_no_file() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("cancelled");
        let pace = FillPace::Paced {
            cancel: Arc::new(AtomicBool::new(true)),
        };
        let result = allocate_file(&path, 64 << 20, Preallocation::ZeroFill, &pace);
        let err = result.err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::Interrupted));
        assert!(!path.exists());
        Ok(())
    }

    #[test]
    /// Guards removal only: whether the spare was finished or cancelled when the storage
    /// closed, no spare file stays (cancellation itself: `a_cancelled_fill_stops_...`).
    fn closing_the_storage_leaves_no_spare_file() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = FsStorage::new(dir.path()).with_spare_segments();
        drop(storage.create_segment("seg-0", 64 << 20, Preallocation::ZeroFill)?);
        drop(storage);
        let left: Vec<_> = std::fs::read_dir(dir.path())?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(SPARE_PREFIX))
            .collect();
        assert!(left.is_empty(), "spare files left behind: {left:?}");
        Ok(())
    }
}
