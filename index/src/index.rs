//! [`Index`]: one redb file holding every index table, opened for one store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, TableDefinition,
};

use crate::codec::hex;
use crate::tables::{
    self, META, META_FORMAT, META_HASH_ALGORITHM, META_STORE_ID, META_WATERMARK, get_u64_le,
};
use crate::{
    DEFAULT_CACHE_BYTES, DEFAULT_CHUNK_TARGET_BYTES, FORMAT_VERSION, IndexBatch, IndexError,
    IndexReader, MAX_CHUNK_TARGET_BYTES, MIN_CHUNK_TARGET_BYTES,
};

/// Which store an index belongs to. Recorded when the index is created and checked on every
/// open, so an index copied next to another store is never trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreBinding {
    /// The store's id (`wal.meta` bytes 16..32).
    pub store_id: [u8; 16],
    /// The store's hash algorithm name (for example `"blake3"`).
    pub hash_algorithm: String,
}

/// How a commit is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// redb `Durability::None`: visible to readers at once, written to disk but not synced.
    /// After a crash the index opens at the last `Durable` commit (the engine catches up from
    /// the log). A clean close (dropping the [`Index`]) makes lazy commits durable. Only with
    /// [`Sharing::Exclusive`]: redb refuses it when other processes may read (an
    /// [`IndexError::Redb`] naming `set durability`).
    #[default]
    Lazy,
    /// redb `Durability::Immediate`: synced before `commit` returns; also makes every earlier
    /// lazy commit durable.
    Durable,
}

/// Whether other processes may open the index read-only while this one writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    /// The writer locks the whole file; no other process may open it. Allows
    /// [`CommitMode::Lazy`].
    #[default]
    Exclusive,
    /// Any number of processes may open it with [`ReadOnlyIndex::open`] and read snapshots
    /// of the writer's commits (redb's single-writer mode, byte-range locks: Linux, macOS,
    /// Windows). Every commit must then be [`CommitMode::Durable`].
    ReadersAllowed,
}

/// Options for [`Index::open`]. `Default` gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOptions {
    chunk_target_bytes: usize,
    cache_bytes: usize,
    sharing: Sharing,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            chunk_target_bytes: DEFAULT_CHUNK_TARGET_BYTES,
            cache_bytes: DEFAULT_CACHE_BYTES,
            sharing: Sharing::Exclusive,
        }
    }
}

impl IndexOptions {
    /// Default options.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Size a chunk (posting list, logged-at or event-time run) grows to before a new one is
    /// started; default [`DEFAULT_CHUNK_TARGET_BYTES`]. Clamped to
    /// [`MIN_CHUNK_TARGET_BYTES`]..=[`MAX_CHUNK_TARGET_BYTES`]. Larger chunks mean fewer keys
    /// and more bytes rewritten per commit. Only affects how content is split, never what it
    /// is: indexes written with different targets read the same and have the same
    /// [`logical_digest`](IndexReader::logical_digest).
    #[must_use]
    pub fn chunk_target_bytes(mut self, bytes: usize) -> Self {
        self.chunk_target_bytes = bytes.clamp(MIN_CHUNK_TARGET_BYTES, MAX_CHUNK_TARGET_BYTES);
        self
    }

    /// redb's page cache; default [`DEFAULT_CACHE_BYTES`].
    #[must_use]
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Whether read-only openers in other processes are allowed; default
    /// [`Sharing::Exclusive`].
    #[must_use]
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.sharing = sharing;
        self
    }

    /// The chunk target in effect.
    #[must_use]
    pub fn chunk_target(&self) -> usize {
        self.chunk_target_bytes
    }
}

/// The secondary index of one store: a redb file derived from the log.
///
/// `Send + Sync`: readers take snapshots concurrently with commits; commits serialise on
/// redb's single write transaction.
#[derive(Debug)]
pub struct Index {
    /// The snapshot [`Index::shared_reader`] hands out until the next commit. Declared
    /// before `db` so that its read transaction ends before the database closes (fields drop
    /// in order); redb 4.6 closes cleanly either way (tested), this does not rely on it.
    shared: Mutex<SharedSnapshot>,
    pub(crate) db: Database,
    pub(crate) path: PathBuf,
    pub(crate) chunk_target: usize,
}

/// A read transaction kept for point lookups: beginning one and opening the two tables an
/// event-id lookup needs costs ~13 k instructions, more than half of the lookup in redb.
#[derive(Debug, Default)]
struct SharedSnapshot {
    /// Commits made through this handle (attempted, whether or not they succeeded).
    commits: u64,
    /// The snapshot, begun after the last of them; `None` until one is asked for.
    reader: Option<Arc<IndexReader>>,
}

impl Index {
    /// Opens the index file at `path`, creating it (bound to `binding`) if it is missing or
    /// empty.
    ///
    /// # Errors
    ///
    /// [`IndexError::ForeignIndex`] if the file belongs to another store or hash algorithm or
    /// is not an index, [`IndexError::UnsupportedFormat`] for another format version,
    /// [`IndexError::Redb`] if redb cannot open it (including when it is already open).
    pub fn open(
        path: &Path,
        binding: &StoreBinding,
        options: IndexOptions,
    ) -> Result<Index, IndexError> {
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .set_concurrency_mode(match options.sharing {
                Sharing::Exclusive => ConcurrencyMode::ExclusiveWriter,
                Sharing::ReadersAllowed => ConcurrencyMode::SingleWriter,
            })
            .create(path)
            .map_err(|e| IndexError::redb("open", path, e))?;
        let index = Index {
            shared: Mutex::new(SharedSnapshot::default()),
            db,
            path: path.to_path_buf(),
            chunk_target: options.chunk_target_bytes,
        };
        if index.is_fresh()? {
            index.initialise(binding)?;
        } else {
            index.check_binding(binding)?;
        }
        Ok(index)
    }

    /// The next seq the index does not cover (0 for a fresh index).
    ///
    /// # Errors
    ///
    /// [`IndexError::Redb`] or [`IndexError::Corrupt`].
    pub fn watermark(&self) -> Result<u64, IndexError> {
        Ok(self.reader()?.watermark())
    }

    /// Writes `batch` in one redb transaction together with the new watermark
    /// (`batch.end()`), so a crash leaves the index at some earlier watermark, never between.
    ///
    /// # Errors
    ///
    /// [`IndexError::WatermarkMismatch`] if `batch.start()` is not the watermark,
    /// [`IndexError::LoggedAtDecreasing`] if its first `logged_at` is below the index's last,
    /// [`IndexError::Corrupt`] or [`IndexError::Redb`]. On error nothing changes.
    pub fn commit(&self, batch: IndexBatch, mode: CommitMode) -> Result<(), IndexError> {
        let committed = crate::write::commit(self, batch, mode);
        self.forget_shared_reader();
        committed
    }

    /// Merges the newest event-id runs holding at most `max_entries` entries together into
    /// one (see design.md, "Event-id runs"): a step for when the indexer is idle, in one
    /// durable transaction that leaves the watermark and the index's content as they were, so
    /// a crash at any point leaves the same content. Returns how many runs were merged (0 when
    /// fewer than two fit, and then nothing is written). Costs rewriting up to `max_entries`
    /// entries (24 bytes each); a lookup then seeks that many runs fewer, less one.
    ///
    /// # Errors
    ///
    /// [`IndexError::Corrupt`] when a run does not read back as its record says, redb
    /// errors. On error nothing changes.
    pub fn merge_event_id_runs(&self, max_entries: u64) -> Result<usize, IndexError> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| self.err("begin write", e))?;
        // Durable whatever the sharing: readers in other processes see it, and it is rare.
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| self.err("set durability", e))?;
        let merged = crate::event_ids::merge_newest(&self.db, &txn, &self.path, max_entries)?;
        if merged == 0 {
            // Dropping the transaction aborts it: nothing was written.
            return Ok(0);
        }
        let committed = txn.commit().map_err(|e| self.err("commit", e));
        self.forget_shared_reader();
        committed.map(|()| merged)
    }

    /// A snapshot of the index shared by every caller until the next commit through this
    /// handle: the same view as a fresh [`Index::reader`] (every commit is made through
    /// [`Index::commit`] or [`Index::merge_event_id_runs`], which drop the shared one
    /// before they return, so a caller that
    /// saw a commit return, or a watermark it published, never gets an older snapshot), at
    /// the cost of a lock and a reference count instead of a redb read transaction.
    ///
    /// A snapshot that outlives commits keeps redb from reusing the pages they freed, so none
    /// is kept past the next commit: between commits the shared one holds nothing new, and
    /// callers drop their copies when their lookup ends.
    ///
    /// # Errors
    ///
    /// As for [`Index::reader`].
    pub fn shared_reader(&self) -> Result<Arc<IndexReader>, IndexError> {
        let commits = {
            let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(reader) = &shared.reader {
                return Ok(Arc::clone(reader));
            }
            shared.commits
        };
        // Begun outside the lock: a commit may land meanwhile, and then this snapshot (which
        // may predate it) serves only this caller.
        let reader = Arc::new(self.reader()?);
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if shared.commits == commits && shared.reader.is_none() {
            shared.reader = Some(Arc::clone(&reader));
        }
        Ok(reader)
    }

    /// Drops the shared snapshot: called after every commit attempt.
    pub(crate) fn forget_shared_reader(&self) {
        let stale = {
            let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            shared.commits += 1;
            shared.reader.take()
        };
        // Its read transaction ends here (or when the last caller using it drops its copy),
        // outside the lock.
        drop(stale);
    }

    /// A consistent snapshot of the index.
    ///
    /// # Errors
    ///
    /// [`IndexError::Redb`] or [`IndexError::Corrupt`].
    pub fn reader(&self) -> Result<IndexReader, IndexError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.err("begin read", e))?;
        IndexReader::new(txn, self.path.clone())
    }

    /// The index file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn err(&self, op: &str, e: impl Into<redb::Error>) -> IndexError {
        IndexError::redb(op, &self.path, e)
    }

    /// Whether the file holds no table at all (just created, or a crash before the first
    /// commit): such a file is initialised rather than refused.
    fn is_fresh(&self) -> Result<bool, IndexError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.err("begin read", e))?;
        let mut tables = txn.list_tables().map_err(|e| self.err("list tables", e))?;
        let no_multimaps = txn
            .list_multimap_tables()
            .map_err(|e| self.err("list tables", e))?
            .next()
            .is_none();
        Ok(tables.next().is_none() && no_multimaps)
    }

    /// Creates every table and the meta entries, durably.
    fn initialise(&self, binding: &StoreBinding) -> Result<(), IndexError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| self.err("begin write", e))?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| self.err("create table meta", e))?;
            let entries: [(&str, &[u8]); 4] = [
                (META_FORMAT, &FORMAT_VERSION.to_le_bytes()),
                (META_STORE_ID, &binding.store_id),
                (META_HASH_ALGORITHM, binding.hash_algorithm.as_bytes()),
                (META_WATERMARK, &0u64.to_le_bytes()),
            ];
            for (k, v) in entries {
                meta.insert(k, v).map_err(|e| self.err("write meta", e))?;
            }
            for name in tables::NAMES {
                let op = format!("create table {name}");
                if name == "tenants" {
                    txn.open_table(tables::TENANTS)
                        .map_err(|e| self.err(&op, e))?;
                } else {
                    let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(name);
                    txn.open_table(def).map_err(|e| self.err(&op, e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.err("commit", e))
    }

    /// Refuses an index of another format, store or hash algorithm.
    fn check_binding(&self, binding: &StoreBinding) -> Result<(), IndexError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.err("begin read", e))?;
        check_binding(&txn, &self.path, binding)
    }
}

/// Refuses an index (seen through `txn`) of another format, store or hash algorithm.
fn check_binding(
    txn: &ReadTransaction,
    path: &Path,
    binding: &StoreBinding,
) -> Result<(), IndexError> {
    let err = |op: &str, e: redb::Error| IndexError::redb(op, path, e);
    let foreign = |detail: String| IndexError::ForeignIndex {
        path: path.to_path_buf(),
        detail,
    };
    let meta = match txn.open_table(META) {
        Ok(m) => m,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Err(foreign("it has tables but no meta table".into()));
        }
        Err(e) => return Err(err("open table meta", e.into())),
    };
    let get = |key: &str| -> Result<Option<Vec<u8>>, IndexError> {
        let v = meta.get(key).map_err(|e| err("read meta", e.into()))?;
        Ok(v.map(|g| g.value().to_vec()))
    };
    let format = get(META_FORMAT)?.ok_or_else(|| foreign("meta has no format_version".into()))?;
    let found = <[u8; 4]>::try_from(format.as_slice())
        .map(u32::from_le_bytes)
        .map_err(|_| IndexError::corrupt(path, "meta", "format_version is not 4 bytes"))?;
    if found != FORMAT_VERSION {
        return Err(IndexError::UnsupportedFormat {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        });
    }
    let store_id = get(META_STORE_ID)?.unwrap_or_default();
    if store_id != binding.store_id {
        return Err(foreign(format!(
            "store id {} (expected {})",
            hex(&store_id),
            hex(&binding.store_id)
        )));
    }
    let alg = get(META_HASH_ALGORITHM)?.unwrap_or_default();
    if alg != binding.hash_algorithm.as_bytes() {
        return Err(foreign(format!(
            "hash algorithm {:?} (expected {:?})",
            String::from_utf8_lossy(&alg),
            binding.hash_algorithm
        )));
    }
    let watermark = get(META_WATERMARK)?.unwrap_or_default();
    get_u64_le(&watermark)
        .ok_or_else(|| IndexError::corrupt(path, "meta", "watermark is not 8 bytes"))?;
    Ok(())
}

/// An index opened read-only beside the process that writes it (the `trailmix-db` tool on a
/// live store): redb's single-writer mode lets any number of read-only openers take
/// snapshots of the writer's commits while it goes on.
///
/// A snapshot shows the commits the writer had made when it began; commits the writer made
/// non-durably are visible to it only once redb has written them to the file, so a reader
/// may trail the writer's own view, never lead it. Everything a reader proposes is re-checked
/// against the log by the engine, as for the writer's own index.
pub struct ReadOnlyIndex {
    pub(crate) db: ReadOnlyDatabase,
    pub(crate) path: PathBuf,
}

impl std::fmt::Debug for ReadOnlyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyIndex")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ReadOnlyIndex {
    /// Opens the index file at `path` read-only, and refuses one of another store, hash
    /// algorithm or format.
    ///
    /// # Errors
    ///
    /// [`IndexError::ForeignIndex`], [`IndexError::UnsupportedFormat`],
    /// [`IndexError::NeedsRepair`] after its writer crashed, [`IndexError::Redb`] when the
    /// file is missing, is not a redb file, or a writer holds it exclusively.
    pub fn open(path: &Path, binding: &StoreBinding) -> Result<ReadOnlyIndex, IndexError> {
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .open_read_only(path)
            .map_err(|e| match e {
                redb::DatabaseError::RepairAborted => IndexError::NeedsRepair {
                    path: path.to_path_buf(),
                },
                e => IndexError::redb("open read-only", path, e),
            })?;
        let index = ReadOnlyIndex {
            db,
            path: path.to_path_buf(),
        };
        let txn = index.begin()?;
        check_binding(&txn, path, binding)?;
        Ok(index)
    }

    fn begin(&self) -> Result<ReadTransaction, IndexError> {
        self.db
            .begin_read()
            .map_err(|e| IndexError::redb("begin read", &self.path, e))
    }

    /// A consistent snapshot of the index as the writer last committed it.
    ///
    /// # Errors
    ///
    /// [`IndexError::Redb`] or [`IndexError::Corrupt`].
    pub fn reader(&self) -> Result<IndexReader, IndexError> {
        IndexReader::new(self.begin()?, self.path.clone())
    }

    /// The index file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}
