//! [`Db::compact_index`]: gives the index file's free space back while no writer runs (the
//! store's `VACUUM`). See design.md, "Compacting the index".

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use trailmix_index::{Index, IndexError, IndexOptions, IndexSpace, Sharing, StoreBinding};
use trailmix_wal::{FsStorage, Storage, WalReader};

use crate::indexer::{INDEX_DIR, INDEX_FILE};
use crate::{Db, Error, Result, WAL_DIR};

/// What [`Db::compact_index`] did.
#[derive(Debug, Clone)]
pub struct IndexCompaction {
    /// The index file.
    pub path: PathBuf,
    /// Its space before.
    pub before: IndexSpace,
    /// Its space after.
    pub after: IndexSpace,
    /// Whether redb moved anything (false: nothing to give back).
    pub compacted: bool,
    /// How long the compaction took (wall clock, without the space reports).
    pub elapsed: Duration,
}

fn index_error(path: &Path, err: &IndexError) -> Error {
    Error::Index {
        path: path.to_path_buf(),
        detail: err.to_string(),
    }
}

impl Db {
    /// Compacts the index of the closed store at `data_dir`: the pages its commits freed
    /// (redb reuses them, but never gives them back to the file system) are returned, and the
    /// file shrinks to about its live data. Takes the store's writer lock for the whole run,
    /// so a store open for writing, here or in another process, makes it fail with the usual
    /// lock error, and no writer can open the store meanwhile. Content, watermark and
    /// answers are unchanged; the log is not touched.
    ///
    /// A read-only opener (`ReadOnlyStore`, the tool on the store) that holds an index
    /// snapshot makes it fail without changing anything ([`Error::Index`] saying the index
    /// is being read); one that begins a snapshot during the compaction waits for it to end.
    /// A crash during it leaves the index at one of the compaction's own durable commits,
    /// which the next [`Db::open`] repairs (or, failing that, rebuilds from the log).
    ///
    /// # Errors
    /// [`Error::Wal`] (`Locked`) when a writer holds the store, or when `data_dir` holds no
    /// log; [`Error::Index`] when there is no index, it cannot be opened (the next
    /// [`Db::open`] rebuilds it), a reader holds it, or redb fails.
    pub fn compact_index(data_dir: impl AsRef<Path>) -> Result<IndexCompaction> {
        let data_dir = data_dir.as_ref();
        let wal_dir = data_dir.join(WAL_DIR);
        let meta = *WalReader::open(&wal_dir)?.meta();
        let storage = FsStorage::new(&wal_dir);
        let _lock = storage
            .try_lock()
            .map_err(|e| Error::io("lock", &wal_dir, e))?
            .ok_or_else(|| trailmix_wal::Error::Locked {
                path: wal_dir.clone(),
            })?;
        let path = data_dir.join(INDEX_DIR).join(INDEX_FILE);
        if !path.exists() {
            return Err(Error::Index {
                path,
                detail: "there is no index to compact (the next open builds one)".to_owned(),
            });
        }
        let binding = StoreBinding {
            store_id: meta.store_id.0,
            hash_algorithm: meta.hash_algorithm.to_string(),
        };
        // Readers-allowed, as the writer opens it: read-only openers in other processes keep
        // the file open, and redb then refuses the compaction only while one holds a snapshot.
        let options = IndexOptions::default().sharing(Sharing::ReadersAllowed);
        let mut index = Index::open(&path, &binding, options).map_err(|e| Error::Index {
            path: path.clone(),
            detail: format!("cannot open it to compact ({e}); the next open rebuilds it"),
        })?;
        let before = index.space().map_err(|e| index_error(&path, &e))?;
        let start = Instant::now();
        let compacted = index.compact().map_err(|e| index_error(&path, &e))?;
        let elapsed = start.elapsed();
        let after = index.space().map_err(|e| index_error(&path, &e))?;
        drop(index);
        Ok(IndexCompaction {
            path,
            before,
            after,
            compacted,
            elapsed,
        })
    }
}
