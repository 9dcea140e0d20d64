//! A simulated disk for crash and fault-injection tests.
//!
//! [`SimDisk`] keeps, for every file, the bytes the process has *written* and the bytes that are
//! *durable*. A sync copies written pages to durable; [`SimDisk::crash`] resolves every page
//! whose written and durable bytes differ to one of: the old bytes, the new bytes, a torn mix of
//! 512-byte sectors, or garbage in the bytes that changed (bytes the process did not change keep
//! their durable value), and keeps a random prefix of the directory operations since the last
//! directory sync. Everything is driven by a seed, so a failing run can be replayed.
//!
//! Faults: [`SimDisk::inject`] makes one storage operation fail (transiently or from then on)
//! with a chosen error, and [`SimDisk::crash_at_op`] freezes the disk at the n-th operation, as
//! if the power went out right there.

use std::collections::BTreeMap;
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::storage::{Access, Preallocation, SegmentFile, SegmentSync, Storage};

const PAGE_BYTES: usize = 4096;
const SECTOR_BYTES: usize = 512;

/// Kinds of storage operation, for fault injection and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// `list`
    List,
    /// `read_file`
    Read,
    /// `write_file_atomic`
    WriteAtomic,
    /// `create_segment`
    Create,
    /// `open_segment`
    Open,
    /// `sync_range`
    SyncRange,
    /// `sync_dir`
    SyncDir,
    /// `rename`
    Rename,
    /// `remove`
    Remove,
    /// `file_len`
    FileLen,
    /// `create_dir`
    CreateDir,
    /// `read_segment_at`
    ReadSegment,
}

/// A planned failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Fail the operation with this global operation number (0-based count of all operations).
    pub at_op: u64,
    /// Only fail operations of this kind (the count still is global); `None` for any.
    pub only: Option<Op>,
    /// The error to return.
    pub error: FaultError,
    /// Keep failing every later operation of the same kind too.
    pub persistent: bool,
}

/// Errors the simulator can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// EIO.
    Eio,
    /// ENOSPC.
    NoSpace,
}

impl FaultError {
    fn to_io(self) -> io::Error {
        match self {
            FaultError::Eio => io::Error::other("simulated EIO"),
            FaultError::NoSpace => io::Error::new(io::ErrorKind::StorageFull, "simulated ENOSPC"),
        }
    }
}

/// How a sync behaves; `Lying` exists for negative controls of the test harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncBehaviour {
    /// A successful sync makes the range durable.
    Honest,
    /// A sync reports success and persists nothing (a disk that lies about flushes).
    Lying,
}

#[derive(Debug)]
struct SimFile {
    written: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Put(String, Arc<Mutex<SimFile>>),
    Rename(String, String),
    Remove(String),
}

#[derive(Debug)]
struct DiskState {
    volatile: BTreeMap<String, Arc<Mutex<SimFile>>>,
    durable: BTreeMap<String, Arc<Mutex<SimFile>>>,
    pending: Vec<DirOp>,
    dir_exists: bool,
    ops: u64,
    /// Operations so far, per kind.
    ops_by_kind: BTreeMap<Op, u64>,
    faults: Vec<Fault>,
    failing: Vec<(Option<Op>, FaultError)>,
    crash_at: Option<u64>,
    crashed: bool,
    locked: bool,
    sync: SyncBehaviour,
    rng: SmallRng,
}

/// A simulated disk shared by every [`SimStorage`] opened on it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

fn lock(state: &Mutex<DiskState>) -> MutexGuard<'_, DiskState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock_file(file: &Mutex<SimFile>) -> MutexGuard<'_, SimFile> {
    file.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SimDisk {
    /// An empty disk whose random choices follow `seed`.
    #[must_use]
    pub fn new(seed: u64) -> SimDisk {
        SimDisk {
            state: Arc::new(Mutex::new(DiskState {
                volatile: BTreeMap::new(),
                durable: BTreeMap::new(),
                pending: Vec::new(),
                dir_exists: false,
                ops: 0,
                ops_by_kind: BTreeMap::new(),
                faults: Vec::new(),
                failing: Vec::new(),
                crash_at: None,
                crashed: false,
                locked: false,
                sync: SyncBehaviour::Honest,
                rng: SmallRng::seed_from_u64(seed),
            })),
        }
    }

    /// A storage handle on this disk (the directory name is only used in messages).
    #[must_use]
    pub fn storage(&self) -> SimStorage {
        SimStorage {
            disk: self.clone(),
            dir: PathBuf::from("sim-wal"),
        }
    }

    /// Plans a fault.
    pub fn inject(&self, fault: Fault) {
        lock(&self.state).faults.push(fault);
    }

    /// Freezes the disk when operation number `op` starts: it and every later operation fail
    /// and no later write reaches the disk, until [`SimDisk::crash`].
    pub fn crash_at_op(&self, op: u64) {
        lock(&self.state).crash_at = Some(op);
    }

    /// Sets how syncs behave.
    pub fn set_sync_behaviour(&self, sync: SyncBehaviour) {
        lock(&self.state).sync = sync;
    }

    /// Number of storage operations so far.
    #[must_use]
    pub fn ops(&self) -> u64 {
        lock(&self.state).ops
    }

    /// Number of storage operations of kind `op` so far (failed ones included).
    #[must_use]
    pub fn ops_of(&self, op: Op) -> u64 {
        lock(&self.state).ops_by_kind.get(&op).copied().unwrap_or(0)
    }

    /// Whether the disk froze at a planned crash point.
    #[must_use]
    pub fn is_frozen(&self) -> bool {
        lock(&self.state).crashed
    }

    /// Simulates power loss and restart: unsynced pages become old, new, torn or garbage; a
    /// random prefix of unsynced directory operations survives; faults and the lock are cleared.
    /// Every handle from before the crash must have been dropped.
    pub fn crash(&self) {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let keep = state.rng.random_range(0..=state.pending.len());
        let pending = std::mem::take(&mut state.pending);
        for op in pending.into_iter().take(keep) {
            apply_dir_op(&mut state.durable, op);
        }
        for file in state.durable.values() {
            resolve_pages(&mut lock_file(file), &mut state.rng);
        }
        // Files that never became durable names are gone; durable names hold resolved bytes.
        state.volatile = state.durable.clone();
        state.faults.clear();
        state.failing.clear();
        state.crash_at = None;
        state.crashed = false;
        state.locked = false;
    }

    /// The durable bytes of a file, if the name is durable (for assertions and tamper tests).
    #[must_use]
    pub fn durable_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let state = lock(&self.state);
        state
            .durable
            .get(name)
            .map(|file| lock_file(file).durable.clone())
    }

    /// Overwrites bytes of a file as if the medium changed them (written and durable alike).
    /// Returns `false` when the file does not exist or the range is outside it.
    #[must_use]
    pub fn corrupt(&self, name: &str, offset: usize, bytes: &[u8]) -> bool {
        let state = lock(&self.state);
        let Some(file) = state.volatile.get(name) else {
            return false;
        };
        let mut file = lock_file(file);
        let Some(end) = offset
            .checked_add(bytes.len())
            .filter(|&end| end <= file.written.len())
        else {
            return false;
        };
        file.written[offset..end].copy_from_slice(bytes);
        file.durable[offset..end].copy_from_slice(bytes);
        true
    }

    /// Creates (or replaces) a file with durable contents, as if it had always been there.
    pub fn put_file(&self, name: &str, bytes: &[u8]) {
        let mut state = lock(&self.state);
        state.dir_exists = true;
        let file = Arc::new(Mutex::new(SimFile {
            written: bytes.to_vec(),
            durable: bytes.to_vec(),
        }));
        state.volatile.insert(name.to_owned(), Arc::clone(&file));
        state.durable.insert(name.to_owned(), file);
    }

    /// Names of the files as the process currently sees them.
    #[must_use]
    pub fn file_names(&self) -> Vec<String> {
        lock(&self.state).volatile.keys().cloned().collect()
    }
}

fn apply_dir_op(names: &mut BTreeMap<String, Arc<Mutex<SimFile>>>, op: DirOp) {
    match op {
        DirOp::Put(name, file) => {
            names.insert(name, file);
        }
        DirOp::Rename(from, to) => {
            if let Some(file) = names.remove(&from) {
                names.insert(to, file);
            }
        }
        DirOp::Remove(name) => {
            names.remove(&name);
        }
    }
}

fn resolve_pages(file: &mut SimFile, rng: &mut SmallRng) {
    let SimFile { written, durable } = file;
    for (new, old) in written
        .chunks_mut(PAGE_BYTES)
        .zip(durable.chunks_mut(PAGE_BYTES))
    {
        if new == old {
            continue;
        }
        match rng.random_range(0..4) {
            0 => {}
            1 => old.copy_from_slice(new),
            2 => {
                for (new_sector, old_sector) in
                    new.chunks(SECTOR_BYTES).zip(old.chunks_mut(SECTOR_BYTES))
                {
                    if rng.random_bool(0.5) {
                        old_sector.copy_from_slice(new_sector);
                    }
                }
            }
            // Garbage, but only in bytes the process changed since they were last durable: a
            // power loss never alters durable bytes outside the range being written (SQLite's
            // "powersafe overwrite"; media assumption 1 in docs/design.md). Garbling the whole
            // page would destroy acknowledged bytes that share a page with a later append or a
            // seal, which no log that appends in place survives. A whole page of randomness
            // is drawn either way so that replays do not depend on the bytes.
            _ => {
                let mut garbage = [0u8; PAGE_BYTES];
                rng.fill(&mut garbage[..old.len()]);
                for ((new_byte, old_byte), random) in new.iter().zip(old.iter_mut()).zip(garbage) {
                    if new_byte != old_byte {
                        *old_byte = random;
                    }
                }
            }
        }
        new.copy_from_slice(old);
    }
}

impl DiskState {
    /// Counts an operation and decides whether it fails.
    fn begin(&mut self, op: Op) -> io::Result<()> {
        let number = self.ops;
        self.ops += 1;
        *self.ops_by_kind.entry(op).or_insert(0) += 1;
        if self.crashed || self.crash_at == Some(number) {
            self.crashed = true;
            return Err(io::Error::other("simulated power loss"));
        }
        if let Some((_, error)) = self
            .failing
            .iter()
            .find(|(only, _)| only.is_none_or(|o| o == op))
        {
            return Err(error.to_io());
        }
        let due = self
            .faults
            .iter()
            .position(|f| f.at_op <= number && f.only.is_none_or(|o| o == op));
        if let Some(index) = due {
            let fault = self.faults.remove(index);
            if fault.persistent {
                self.failing.push((Some(op), fault.error));
            }
            return Err(fault.error.to_io());
        }
        Ok(())
    }
}

/// A [`Storage`] over a [`SimDisk`].
#[derive(Debug, Clone)]
pub struct SimStorage {
    disk: SimDisk,
    dir: PathBuf,
}

impl SimStorage {
    fn begin(&self, op: Op) -> io::Result<MutexGuard<'_, DiskState>> {
        let mut state = lock(&self.disk.state);
        state.begin(op)?;
        Ok(state)
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
}

/// A segment on the simulated disk.
#[derive(Debug)]
pub struct SimSegment {
    file: Arc<Mutex<SimFile>>,
    disk: SimDisk,
    access: Access,
}

/// A view of a simulated segment's written bytes.
pub struct SimView<'a>(MutexGuard<'a, SimFile>);

impl Deref for SimView<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0.written
    }
}

impl SegmentFile for SimSegment {
    type Syncer = SimSegmentSync;
    type View<'a> = SimView<'a>;

    fn len(&self) -> u64 {
        lock_file(&self.file).written.len() as u64
    }

    fn view(&self) -> SimView<'_> {
        SimView(lock_file(&self.file))
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if self.access == Access::ReadOnly {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "segment is read-only",
            ));
        }
        if lock(&self.disk.state).crashed {
            return Ok(()); // the power is out: the write never reaches the page cache
        }
        let mut file = lock_file(&self.file);
        let range = crate::storage::checked_range(offset, data.len(), file.written.len())?;
        file.written[range].copy_from_slice(data);
        Ok(())
    }

    fn sync_range(&mut self, offset: u64, len: u64) -> io::Result<()> {
        sync_file_range(&self.disk, &self.file, offset, len)
    }

    fn sync_handle(&self) -> SimSegmentSync {
        SimSegmentSync {
            file: Arc::clone(&self.file),
            disk: self.disk.clone(),
        }
    }
}

/// Syncs ranges of a [`SimSegment`] from another thread, as the real file system's handle
/// does: one storage operation each, like [`SegmentFile::sync_range`].
#[derive(Debug)]
pub struct SimSegmentSync {
    file: Arc<Mutex<SimFile>>,
    disk: SimDisk,
}

impl SegmentSync for SimSegmentSync {
    fn sync_range(&self, offset: u64, len: u64) -> io::Result<()> {
        sync_file_range(&self.disk, &self.file, offset, len)
    }
}

fn sync_file_range(disk: &SimDisk, file: &Mutex<SimFile>, offset: u64, len: u64) -> io::Result<()> {
    let mut state = lock(&disk.state);
    let result = state.begin(Op::SyncRange);
    let mut file = lock_file(file);
    let file = &mut *file;
    let range = crate::storage::checked_range(
        offset,
        usize::try_from(len).unwrap_or(usize::MAX),
        file.written.len(),
    )?;
    let start = range.start / PAGE_BYTES * PAGE_BYTES;
    let end = range
        .end
        .next_multiple_of(PAGE_BYTES)
        .min(file.written.len());
    match result {
        Ok(()) if state.sync == SyncBehaviour::Honest => {
            file.durable[start..end].copy_from_slice(&file.written[start..end]);
            Ok(())
        }
        Ok(()) => Ok(()),
        Err(err) if state.crashed => Err(err),
        Err(err) => {
            // A failed writeback: some pages may have reached the disk, the rest are lost
            // even though the page cache still shows them (fsyncgate).
            let mut scratch = SimFile {
                written: file.written[start..end].to_vec(),
                durable: file.durable[start..end].to_vec(),
            };
            resolve_pages(&mut scratch, &mut state.rng);
            file.durable[start..end].copy_from_slice(&scratch.durable);
            Err(err)
        }
    }
}

impl Storage for SimStorage {
    type Segment = SimSegment;
    type Lock = SimLock;

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn dir_exists(&self) -> io::Result<bool> {
        Ok(lock(&self.disk.state).dir_exists)
    }

    fn create_dir(&self) -> io::Result<()> {
        let mut state = self.begin(Op::CreateDir)?;
        state.dir_exists = true;
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let state = self.begin(Op::List)?;
        Ok(state.volatile.keys().cloned().collect())
    }

    fn read_file(&self, name: &str) -> io::Result<Vec<u8>> {
        let state = self.begin(Op::Read)?;
        let file = state.volatile.get(name).ok_or_else(|| not_found(name))?;
        Ok(lock_file(file).written.clone())
    }

    fn write_file_atomic(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.begin(Op::WriteAtomic)?;
        let file = Arc::new(Mutex::new(SimFile {
            written: bytes.to_vec(),
            durable: bytes.to_vec(),
        }));
        state.volatile.insert(name.to_owned(), Arc::clone(&file));
        state.pending.push(DirOp::Put(name.to_owned(), file));
        drop(state);
        self.sync_dir()
    }

    fn create_segment(
        &self,
        name: &str,
        len: u64,
        _prealloc: Preallocation,
    ) -> io::Result<SimSegment> {
        let mut state = self.begin(Op::Create)?;
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let file = Arc::new(Mutex::new(SimFile {
            written: vec![0; len],
            durable: vec![0; len],
        }));
        state.volatile.insert(name.to_owned(), Arc::clone(&file));
        state
            .pending
            .push(DirOp::Put(name.to_owned(), Arc::clone(&file)));
        Ok(SimSegment {
            file,
            disk: self.disk.clone(),
            access: Access::ReadWrite,
        })
    }

    fn open_segment(&self, name: &str, access: Access) -> io::Result<SimSegment> {
        let state = self.begin(Op::Open)?;
        let file = state.volatile.get(name).ok_or_else(|| not_found(name))?;
        Ok(SimSegment {
            file: Arc::clone(file),
            disk: self.disk.clone(),
            access,
        })
    }

    fn read_segment_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let state = self.begin(Op::ReadSegment)?;
        let file = state.volatile.get(name).ok_or_else(|| not_found(name))?;
        let file = lock_file(file);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(file.written.len());
        let bytes = &file.written[start..];
        let copied = bytes.len().min(buf.len());
        buf[..copied].copy_from_slice(&bytes[..copied]);
        Ok(copied)
    }

    fn file_len(&self, name: &str) -> io::Result<u64> {
        let state = self.begin(Op::FileLen)?;
        let file = state.volatile.get(name).ok_or_else(|| not_found(name))?;
        Ok(lock_file(file).written.len() as u64)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.begin(Op::Rename)?;
        let file = state.volatile.remove(from).ok_or_else(|| not_found(from))?;
        state.volatile.insert(to.to_owned(), file);
        state
            .pending
            .push(DirOp::Rename(from.to_owned(), to.to_owned()));
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut state = self.begin(Op::Remove)?;
        state.volatile.remove(name).ok_or_else(|| not_found(name))?;
        state.pending.push(DirOp::Remove(name.to_owned()));
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut state = self.begin(Op::SyncDir)?;
        let pending = std::mem::take(&mut state.pending);
        for op in pending {
            apply_dir_op(&mut state.durable, op);
        }
        Ok(())
    }

    fn try_lock(&self) -> io::Result<Option<SimLock>> {
        let mut state = lock(&self.disk.state);
        if state.locked {
            return Ok(None);
        }
        state.locked = true;
        Ok(Some(SimLock {
            disk: self.disk.clone(),
        }))
    }
}

/// The writer lock on a simulated disk; released on drop.
#[derive(Debug)]
pub struct SimLock {
    disk: SimDisk,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        lock(&self.disk.state).locked = false;
    }
}
