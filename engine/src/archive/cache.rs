//! Read-through cache of archived segments whose epochs were dropped locally
//! ([`Db::prune_archived`](crate::Db::prune_archived)): a read below the prune horizon fetches
//! the segment that holds the entry from the archive into `archive-cache/`, checks it against
//! the manifest's SHA-256 and against the seal and leaf hashes the store retained under
//! `pruned/`, and serves the read from there. Layout, checks, eviction and failure model:
//! `docs/design.md`, "Reading dropped epochs through the archive".

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::manifest::{
    EpochManifest, MANIFEST_BYTES_MAX, MANIFEST_OBJECT, ManifestSegment, epoch_object,
};
use super::remote::{Remote, hex};
use super::ship::segment_name;
use super::{ArchiveError, ArchiveTarget};
use crate::entry::{self, EntryKind};
use crate::error::{Error, Result};
use crate::prune::{MANIFEST_FILE, Retained, load_retained};
use crate::wal::format::META_FILE;
use crate::wal::{FsStorage, HashAlgorithm, RecordRef, Seq, WalReader};

/// Default of [`ArchiveReads::cache_bytes_max`]: 1 GiB of fetched segments on disk.
pub const ARCHIVE_CACHE_BYTES_MAX_DEFAULT: u64 = 1 << 30;

/// The cache's directory inside the data directory.
pub const ARCHIVE_CACHE_DIR: &str = "archive-cache";

/// A cached segment lives in `segment-<first seq, 20 digits>/` (a one-segment log).
const UNIT_PREFIX: &str = "segment-";
/// A fetch in progress (or interrupted) writes into `tmp-<pid>-<ns>-<n>/`.
const TMP_PREFIX: &str = "tmp-";

/// Where reads of dropped epochs go: the archive the store was archived to, and the size
/// limit of the local cache of fetched segments (`<data dir>/archive-cache/`).
///
/// Set it with [`DbOptions::archive_reads`](crate::DbOptions::archive_reads) or
/// [`ReadOnlyStore::with_archive_reads`](crate::ReadOnlyStore::with_archive_reads). Without
/// it, reading a seq whose epoch was pruned after it was archived fails with
/// [`Error::Archived`].
#[derive(Debug, Clone)]
pub struct ArchiveReads {
    target: ArchiveTarget,
    cache_bytes_max: u64,
}

impl ArchiveReads {
    /// Reads dropped epochs from `target`, with the default cache limit
    /// ([`ARCHIVE_CACHE_BYTES_MAX_DEFAULT`]).
    #[must_use]
    pub fn new(target: ArchiveTarget) -> ArchiveReads {
        ArchiveReads {
            target,
            cache_bytes_max: ARCHIVE_CACHE_BYTES_MAX_DEFAULT,
        }
    }

    /// The most disk the cache may use, in bytes (allocated blocks of the cached segment
    /// files). Least recently used segments are evicted past it; a single segment larger than
    /// the limit is still cached while it is the one being read.
    #[must_use]
    pub fn cache_bytes_max(mut self, bytes: u64) -> ArchiveReads {
        self.cache_bytes_max = bytes;
        self
    }

    /// The archive read from.
    #[must_use]
    pub fn target(&self) -> &ArchiveTarget {
        &self.target
    }
}

/// Two configurations are equal when they name the same archive URL and cache limit.
impl PartialEq for ArchiveReads {
    fn eq(&self, other: &ArchiveReads) -> bool {
        self.target.url() == other.target.url() && self.cache_bytes_max == other.cache_bytes_max
    }
}

impl Eq for ArchiveReads {}

/// What opening the cache does with directories of interrupted fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leftovers {
    /// Remove them (the store's single writer: no fetch of another opener can be running).
    Remove,
    /// Leave them (a read-only opener: a writer in another process may be fetching).
    Ignore,
}

/// One cached segment.
struct Unit {
    end_seq: Seq,
    bytes: u64,
    used: u64,
    reader: Arc<WalReader<FsStorage>>,
}

#[derive(Default)]
struct CacheState {
    retained: Option<Arc<Retained>>,
    units: BTreeMap<Seq, Unit>,
    tick: u64,
}

/// The cache of one store (see the module docs).
pub(crate) struct ArchiveCache {
    dir: PathBuf,
    data_dir: PathBuf,
    alg: HashAlgorithm,
    store_id: String,
    settings: ArchiveReads,
    state: Mutex<CacheState>,
    fetches: AtomicU64,
}

/// What the store retained of the entry at a seq: its leaf hash, or its seal bytes.
enum RetainedEntry<'a> {
    Leaf(&'a crate::merkle::Digest),
    Seal(&'a [u8]),
}

impl ArchiveCache {
    /// Opens (creating) `<data_dir>/archive-cache/` and lists the segments it holds.
    pub(crate) fn open(
        data_dir: &Path,
        alg: HashAlgorithm,
        store_id: String,
        settings: ArchiveReads,
        leftovers: Leftovers,
    ) -> Result<ArchiveCache> {
        let dir = data_dir.join(ARCHIVE_CACHE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let mut found: Vec<(std::time::SystemTime, Seq, Unit)> = Vec::new();
        for item in std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))? {
            let item = item.map_err(|e| Error::io("list", &dir, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let path = item.path();
            if name.starts_with(TMP_PREFIX) {
                if leftovers == Leftovers::Remove {
                    remove_dir(&path)?;
                }
                continue;
            }
            if !name.starts_with(UNIT_PREFIX) {
                continue;
            }
            match open_unit(&path) {
                Some((first, unit)) => {
                    let mtime = item
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::UNIX_EPOCH);
                    found.push((mtime, first, unit));
                }
                // Only complete, checked segments are ever renamed in; anything else is not
                // ours to read (and the writer removes it).
                None if leftovers == Leftovers::Remove => remove_dir(&path)?,
                None => {}
            }
        }
        found.sort_by_key(|(mtime, first, _)| (*mtime, *first));
        let mut state = CacheState::default();
        for (used, (_, first, mut unit)) in (1u64..).zip(found) {
            unit.used = used;
            state.tick = used;
            state.units.insert(first, unit);
        }
        let cache = ArchiveCache {
            dir,
            data_dir: data_dir.to_path_buf(),
            alg,
            store_id,
            settings,
            state: Mutex::new(state),
            fetches: AtomicU64::new(0),
        };
        let mut state = cache.lock();
        cache.evict(&mut state, None)?;
        drop(state);
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `visit` with the record at `seq` (below the prune horizon) from the cache,
    /// fetching its segment first when it is not cached. The record is checked against the
    /// retained leaf hash (or seal) on every read, not only when fetched.
    pub(crate) fn visit<T>(&self, seq: Seq, visit: impl FnOnce(RecordRef<'_>) -> T) -> Result<T> {
        let (reader, retained) = self.reader_for(seq)?;
        let alg = self.alg;
        let dir = &self.dir;
        let checked = reader.visit_with_hint(seq, None, |record| {
            match check_record(alg, &retained, &record) {
                Ok(()) => Ok(visit(record)),
                Err(detail) => Err(Error::Damaged {
                    seq,
                    detail: format!("archive cache {}: {detail}", dir.display()),
                }),
            }
        });
        match checked {
            Ok(result) => result,
            Err(err) => Err(Error::from(err)),
        }
    }

    /// Calls `visit` for every record in `from..to` (below the prune horizon), in order,
    /// fetching segments as needed, until it breaks; returns the seq after the last record
    /// visited and whether `visit` broke. Every record is checked as in [`ArchiveCache::visit`].
    pub(crate) fn scan(
        &self,
        from: Seq,
        to: Seq,
        visit: &mut impl FnMut(RecordRef<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<(Seq, bool)> {
        let mut next = from;
        while next < to {
            let (reader, retained) = self.reader_for(next)?;
            let start = next;
            let mut failure = None;
            let mut stopped = false;
            reader.scan(next, |record| {
                if record.seq >= to {
                    return ControlFlow::Break(());
                }
                let checked = if record.seq == next {
                    check_record(self.alg, &retained, &record)
                } else {
                    Err(format!("seq {} where {next} was expected", record.seq))
                };
                if let Err(detail) = checked {
                    failure = Some(Error::Damaged {
                        seq: record.seq,
                        detail: format!("archive cache {}: {detail}", self.dir.display()),
                    });
                    return ControlFlow::Break(());
                }
                next = record.seq.next();
                crate::reads::relay(visit(record), &mut stopped, &mut failure)
            })?;
            if let Some(err) = failure {
                return Err(err);
            }
            if stopped {
                return Ok((next, true));
            }
            if next == start {
                return Err(Error::Damaged {
                    seq: next,
                    detail: format!("archive cache {}: the entry is missing", self.dir.display()),
                });
            }
        }
        Ok((next, false))
    }

    /// The cached segment that holds `seq` (fetched if need be) and the retained state.
    fn reader_for(&self, seq: Seq) -> Result<(Arc<WalReader<FsStorage>>, Arc<Retained>)> {
        let mut state = self.lock();
        let retained = self.retained(&mut state, seq)?;
        state.tick += 1;
        let tick = state.tick;
        let cached = state
            .units
            .range_mut(..=seq)
            .next_back()
            .filter(|(_, unit)| seq < unit.end_seq)
            .map(|(_, unit)| {
                unit.used = tick;
                Arc::clone(&unit.reader)
            });
        if let Some(reader) = cached {
            return Ok((reader, retained));
        }
        // Fetching under the lock: concurrent readers of the same segment wait for one fetch
        // instead of racing several.
        let (first, mut unit) = self.fetch(&retained, seq)?;
        unit.used = tick;
        let reader = Arc::clone(&unit.reader);
        state.units.insert(first, unit);
        self.evict(&mut state, Some(first))?;
        Ok((reader, retained))
    }

    /// The retained state, re-read when `seq` is at or past the horizon it knows (the store
    /// was pruned again since).
    fn retained(&self, state: &mut CacheState, seq: Seq) -> Result<Arc<Retained>> {
        if let Some(retained) = &state.retained
            && seq < retained.horizon
        {
            return Ok(Arc::clone(retained));
        }
        let loaded = load_retained(&self.data_dir, self.alg, MANIFEST_FILE)?
            .filter(|r| seq < r.horizon)
            .ok_or_else(|| Error::NotFound {
                seq,
                detail: "not below the prune horizon".into(),
            })?;
        let loaded = Arc::new(loaded);
        state.retained = Some(Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Removes least recently used segments (never `keep`) until the cache fits its limit.
    fn evict(&self, state: &mut CacheState, keep: Option<Seq>) -> Result<()> {
        let mut total: u64 = state.units.values().map(|u| u.bytes).sum();
        while total > self.settings.cache_bytes_max {
            let victim = state
                .units
                .iter()
                .filter(|(first, _)| Some(**first) != keep)
                .min_by_key(|(_, unit)| unit.used)
                .map(|(first, _)| *first);
            let Some(victim) = victim else {
                break;
            };
            if let Some(unit) = state.units.remove(&victim) {
                total -= unit.bytes;
            }
            remove_dir(&self.dir.join(unit_name(victim)))?;
        }
        Ok(())
    }

    /// Fetches, checks and installs the archived segment that holds `seq`.
    fn fetch(&self, retained: &Retained, seq: Seq) -> Result<(Seq, Unit)> {
        let pruned = retained.epoch_of(seq).ok_or_else(|| Error::NotFound {
            seq,
            detail: "not in a pruned epoch".into(),
        })?;
        let remote = self.settings.target.connect()?;
        // The segment files of a run of epochs are archived with the run's last epoch: look
        // from the entry's epoch on for the manifest that lists the segment holding it.
        for epoch in pruned.epoch.0.. {
            let name = epoch_object(&self.store_id, epoch, MANIFEST_OBJECT);
            let refused = |detail: String| ArchiveError::Refused {
                object: remote.path(&name).to_string(),
                detail,
            };
            let bytes = remote
                .get_small(&name, MANIFEST_BYTES_MAX)?
                .ok_or_else(|| refused(format!("missing (no archived segment holds seq {seq})")))?;
            let manifest: EpochManifest = serde_json::from_slice(&bytes)
                .map_err(|e| refused(format!("not a manifest: {e}")))?;
            if manifest.store_id != self.store_id || manifest.epoch != epoch {
                return Err(refused(format!(
                    "expected store {} epoch {epoch}, found store {} epoch {}",
                    self.store_id, manifest.store_id, manifest.epoch
                ))
                .into());
            }
            if let Some((segment, end)) = segment_holding(&manifest, seq) {
                return self.fetch_segment(&remote, &manifest, segment, end, retained);
            }
            if manifest.seal_seq() >= seq.0 {
                return Err(refused(format!("lists no segment holding seq {seq}")).into());
            }
        }
        Err(Error::NotFound {
            seq,
            detail: "no archived epoch holds it".into(),
        })
    }

    /// Streams one segment's parts into a scratch directory, checks them, and renames the
    /// directory into the cache.
    fn fetch_segment(
        &self,
        remote: &Remote,
        manifest: &EpochManifest,
        segment: &ManifestSegment,
        end: Seq,
        retained: &Retained,
    ) -> Result<(Seq, Unit)> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst);
        let tmp = Scratch(self.dir.join(format!(
            "{TMP_PREFIX}{}-{}-{n}",
            std::process::id(),
            crate::writer::now_ns()
        )));
        std::fs::create_dir(&tmp.0).map_err(|e| Error::io("create directory", &tmp.0, e))?;
        let meta = self.data_dir.join(crate::db::WAL_DIR).join(META_FILE);
        let meta_copy = tmp.0.join(META_FILE);
        std::fs::copy(&meta, &meta_copy).map_err(|e| Error::io("copy", &meta, e))?;
        let first = Seq(segment.first_seq);
        let path = tmp.0.join(segment_name(first.0));
        let parts = download_parts(remote, manifest, segment, &path)?;
        let reader = WalReader::open(&tmp.0)?;
        check_segment(self.alg, &reader, first, end, retained, &parts)?;
        drop(reader);
        sync(&meta_copy)?;
        sync(&tmp.0)?;
        let unit_dir = self.dir.join(unit_name(first));
        if std::fs::rename(&tmp.0, &unit_dir).is_err() {
            // Another opener installed the same segment first: use theirs (checked as well).
            drop(tmp);
        } else {
            std::mem::forget(tmp);
            sync(&self.dir)?;
        }
        let (_, unit) = open_unit(&unit_dir).ok_or_else(|| Error::Damaged {
            seq: first,
            detail: format!(
                "archive cache {}: unreadable after fetch",
                unit_dir.display()
            ),
        })?;
        Ok((first, unit))
    }
}

/// The segment of `manifest` that holds `seq`, and the seq it ends before.
fn segment_holding(manifest: &EpochManifest, seq: Seq) -> Option<(&ManifestSegment, Seq)> {
    let at = manifest
        .segments
        .partition_point(|s| Seq(s.first_seq) <= seq);
    let segment = manifest.segments.get(at.checked_sub(1)?)?;
    let end = manifest
        .segments
        .get(at)
        .map_or(Seq(manifest.seal_seq() + 1), |next| Seq(next.first_seq));
    (seq < end).then_some((segment, end))
}

/// A downloaded part: its full object name and the file offset it ends at.
type PartEnd = (String, u64);

/// Streams a segment's parts into `path`, each checked against the manifest (size and
/// SHA-256); extends the file to its pre-allocated size and syncs it.
fn download_parts(
    remote: &Remote,
    manifest: &EpochManifest,
    segment: &ManifestSegment,
    path: &Path,
) -> Result<Vec<PartEnd>> {
    let file = File::create(path).map_err(|e| Error::io("create", path, e))?;
    let mut sink = BufWriter::new(file);
    let mut parts = Vec::with_capacity(segment.parts.len());
    let mut offset = 0u64;
    for part in &segment.parts {
        let full = remote
            .path(&epoch_object(&manifest.store_id, manifest.epoch, part))
            .to_string();
        let refused = |detail: String| ArchiveError::Refused {
            object: full.clone(),
            detail,
        };
        let listed = manifest
            .object(part)
            .ok_or_else(|| refused("the manifest lists no checksum for it".into()))?;
        let name = epoch_object(&manifest.store_id, manifest.epoch, part);
        match remote.copy_to(&name, &mut sink)? {
            Some((bytes, sum)) if bytes == listed.bytes && hex(&sum) == listed.sha256 => {
                offset += bytes;
            }
            Some((bytes, sum)) => {
                return Err(refused(format!(
                    "{bytes} bytes with sha256 {}, the manifest says {} bytes with sha256 {}",
                    hex(&sum),
                    listed.bytes,
                    listed.sha256
                ))
                .into());
            }
            None => return Err(refused("missing".into()).into()),
        }
        parts.push((full, offset));
    }
    let file = sink
        .into_inner()
        .map_err(|e| Error::io("write", path, e.into_error()))?;
    if offset != segment.end_offset || segment.end_offset > segment.segment_bytes {
        return Err(ArchiveError::Refused {
            object: parts.first().map_or_else(String::new, |(n, _)| n.clone()),
            detail: format!(
                "the parts hold {offset} bytes, the manifest says {} of {}",
                segment.end_offset, segment.segment_bytes
            ),
        }
        .into());
    }
    // The archive leaves out the zero tail of the pre-allocated file (sparse here).
    file.set_len(segment.segment_bytes)
        .map_err(|e| Error::io("extend", path, e))?;
    file.sync_all().map_err(|e| Error::io("sync", path, e))?;
    Ok(parts)
}

/// Checks a downloaded segment entry by entry against what the store retained: every entry
/// from `first` to `end` is there, each leaf hashes to the retained leaf and each seal is the
/// retained seal. A mismatch names the part that holds the entry.
fn check_segment(
    alg: HashAlgorithm,
    reader: &WalReader<FsStorage>,
    first: Seq,
    end: Seq,
    retained: &Retained,
    parts: &[PartEnd],
) -> Result<()> {
    let part_of = |offset: u64| {
        parts
            .iter()
            .find(|(_, part_end)| offset < *part_end)
            .or(parts.last())
            .map_or_else(String::new, |(name, _)| name.clone())
    };
    let mut expected = first;
    let mut bad: Option<ArchiveError> = None;
    let scanned = reader.scan(first, |record| {
        let verdict = if record.seq == expected {
            check_record(alg, retained, &record)
        } else {
            Err(format!("seq {} where {expected} was expected", record.seq))
        };
        if let Err(detail) = verdict {
            bad = Some(ArchiveError::Refused {
                object: part_of(record.position.offset),
                detail: format!("seq {}: {detail}", record.seq),
            });
            return ControlFlow::Break(());
        }
        expected = record.seq.next();
        ControlFlow::Continue(())
    });
    if let Err(err) = scanned {
        return Err(ArchiveError::Refused {
            object: part_of(0),
            detail: format!("the segment does not read back: {err}"),
        }
        .into());
    }
    if let Some(bad) = bad {
        return Err(bad.into());
    }
    if expected != end {
        return Err(ArchiveError::Refused {
            object: part_of(u64::MAX),
            detail: format!("the segment ends at seq {expected}, expected {end}"),
        }
        .into());
    }
    Ok(())
}

/// Checks one record against the retained leaf hash or seal of its seq.
fn check_record(
    alg: HashAlgorithm,
    retained: &Retained,
    record: &RecordRef<'_>,
) -> std::result::Result<(), String> {
    let seq = record.seq;
    match retained_entry(retained, seq)? {
        RetainedEntry::Seal(bytes) if record.payload == bytes => Ok(()),
        RetainedEntry::Seal(_) => Err("not the seal entry the store retained".into()),
        RetainedEntry::Leaf(leaf) => {
            let entry = EntryKind::from_byte(record.kind.get())
                .and_then(|kind| entry::decode_entry(kind, record.payload).ok())
                .ok_or_else(|| "the entry does not decode".to_owned())?;
            if entry::leaf_hash(alg, seq, &entry) == *leaf {
                Ok(())
            } else {
                Err("its leaf hash differs from the one the store retained".into())
            }
        }
    }
}

fn retained_entry(retained: &Retained, seq: Seq) -> std::result::Result<RetainedEntry<'_>, String> {
    let epoch = retained
        .epoch_of(seq)
        .ok_or_else(|| "not in the pruned range".to_owned())?;
    if seq == epoch.seal_seq() {
        return Ok(RetainedEntry::Seal(&epoch.seal_entry));
    }
    usize::try_from(seq.0 - epoch.first_seq.0)
        .ok()
        .and_then(|i| epoch.leaves.get(i))
        .map(RetainedEntry::Leaf)
        .ok_or_else(|| "no retained leaf".to_owned())
}

fn unit_name(first: Seq) -> String {
    format!("{UNIT_PREFIX}{:020}", first.0)
}

/// Opens a cached segment directory: its first seq and the unit (`None` when it is not one
/// complete, rolled segment).
fn open_unit(dir: &Path) -> Option<(Seq, Unit)> {
    let reader = WalReader::open(dir).ok()?;
    let [segment] = reader.segments() else {
        return None;
    };
    let first = segment.header.first_seq;
    let end_seq = segment.seal?.end_seq;
    let bytes = disk_bytes(dir).ok()?;
    Some((
        first,
        Unit {
            end_seq,
            bytes,
            used: 0,
            reader: Arc::new(reader),
        },
    ))
}

/// Allocated bytes of the files in `dir` (segments are sparse past their last frame).
fn disk_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for item in std::fs::read_dir(dir)? {
        total += item?.metadata()?.blocks() * 512;
    }
    Ok(total)
}

fn sync(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("sync", path, e))
}

fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// A fetch's scratch directory, removed unless it was installed.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
