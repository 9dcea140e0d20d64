//! [`IndexSpace`]: where the bytes of an index file go (live data, redb's own metadata,
//! fragmentation, free pages), for `inspect`, the compaction command and the disk figures.

use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};

use crate::{Index, IndexError, ReadOnlyIndex};

/// Space one table takes, as redb counts it (`redb::TableStats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpace {
    /// The table's name (`postings`, `event_ids`, ...).
    pub name: String,
    /// Bytes of keys and values in its leaves.
    pub stored_bytes: u64,
    /// Bytes of its branch pages' keys and other B-tree metadata.
    pub metadata_bytes: u64,
    /// Bytes of its pages that hold nothing (partly filled pages).
    pub fragmented_bytes: u64,
    /// Leaf pages.
    pub leaf_pages: u64,
    /// Branch pages.
    pub branch_pages: u64,
}

/// Space of the whole index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpace {
    /// The file's length.
    pub file_bytes: u64,
    /// Bytes the file system has allocated to the file ([`disk_bytes`]): below the length
    /// where redb grew the file sparsely.
    pub disk_bytes: u64,
    /// The tables, by name.
    pub tables: Vec<TableSpace>,
    /// redb's page size.
    pub page_bytes: u64,
    /// Pages allocated to anything (tables, redb's system tables, pages freed by the last
    /// commits and not yet reusable); `None` from a read-only opener, which cannot ask.
    pub allocated_pages: Option<u64>,
    /// Bytes of keys and values in every table.
    pub stored_bytes: u64,
    /// redb's metadata (branch keys, system tables, free-page lists); `None` read-only.
    pub metadata_bytes: Option<u64>,
    /// Bytes of allocated pages that hold nothing; `None` read-only.
    pub fragmented_bytes: Option<u64>,
}

impl IndexSpace {
    /// Bytes of the file that no allocated page uses: space redb would reuse before it grows
    /// the file, and that `Index::compact` gives back. `None` read-only.
    #[must_use]
    pub fn free_bytes(&self) -> Option<u64> {
        self.allocated_pages
            .map(|pages| self.file_bytes.saturating_sub(pages * self.page_bytes))
    }
}

fn table_spaces(
    txn: &redb::ReadTransaction,
    path: &std::path::Path,
) -> Result<Vec<TableSpace>, IndexError> {
    let mut tables = Vec::new();
    for handle in txn
        .list_tables()
        .map_err(|e| IndexError::redb("list tables", path, e))?
    {
        let name = handle.name().to_owned();
        let table = txn
            .open_untyped_table(handle)
            .map_err(|e| IndexError::redb(format!("open table {name}"), path, e))?;
        let stats = table
            .stats()
            .map_err(|e| IndexError::redb(format!("stats of table {name}"), path, e))?;
        tables.push(TableSpace {
            name,
            stored_bytes: stats.stored_bytes(),
            metadata_bytes: stats.metadata_bytes(),
            fragmented_bytes: stats.fragmented_bytes(),
            leaf_pages: stats.leaf_pages(),
            branch_pages: stats.branch_pages(),
        });
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tables)
}

/// Bytes the file system has allocated to a file of `meta` (Unix: `st_blocks` × 512, which
/// counts neither holes nor unwritten space of a sparse file); elsewhere its length.
#[must_use]
pub fn disk_bytes(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.blocks().saturating_mul(512)
    }
    #[cfg(not(unix))]
    {
        meta.len()
    }
}

/// The file's length and [`disk_bytes`].
fn file_bytes(path: &std::path::Path) -> Result<(u64, u64), IndexError> {
    std::fs::metadata(path)
        .map(|m| (m.len(), disk_bytes(&m)))
        .map_err(|e| IndexError::redb("stat", path, redb::StorageError::Io(e)))
}

impl Index {
    /// Where the file's bytes go. Begins (and aborts) a write transaction, since redb reports
    /// allocated and fragmented pages only there: it waits for a commit in progress.
    ///
    /// # Errors
    ///
    /// [`IndexError::Redb`].
    pub fn space(&self) -> Result<IndexSpace, IndexError> {
        let read = self
            .db
            .begin_read()
            .map_err(|e| self.err("begin read", e))?;
        let tables = table_spaces(&read, &self.path)?;
        drop(read);
        let txn = self
            .db
            .begin_write()
            .map_err(|e| self.err("begin write", e))?;
        let stats = txn.stats().map_err(|e| self.err("stats", e))?;
        txn.abort().map_err(|e| self.err("abort", e))?;
        let (file_bytes, disk_bytes) = file_bytes(&self.path)?;
        Ok(IndexSpace {
            file_bytes,
            disk_bytes,
            page_bytes: stats.page_size() as u64,
            allocated_pages: Some(stats.allocated_pages()),
            stored_bytes: stats.stored_bytes(),
            metadata_bytes: Some(stats.metadata_bytes()),
            fragmented_bytes: Some(stats.fragmented_bytes()),
            tables,
        })
    }

    /// Gives the file's free and fragmented space back (redb `Database::compact`: live pages
    /// are moved down and the file is truncated). Needs the index alone: no snapshot may be
    /// open, in this process or (read-only openers) in another; the shared snapshot is
    /// dropped first. Content, watermark and `logical_digest` are unchanged. Returns whether
    /// anything was moved.
    ///
    /// A crash part-way leaves the file at one of the durable commits the compaction makes
    /// (each moves some pages; redb's two-phase commit), which the next writable open repairs
    /// like any other unclean close.
    ///
    /// # Errors
    ///
    /// [`IndexError::InUse`] when a snapshot is open (nothing changed), [`IndexError::Redb`].
    pub fn compact(&mut self) -> Result<bool, IndexError> {
        self.forget_shared_reader();
        self.db.compact().map_err(|e| match e {
            redb::CompactionError::TransactionInProgress => IndexError::InUse {
                path: self.path.clone(),
            },
            e => self.err("compact", e),
        })
    }
}

impl ReadOnlyIndex {
    /// Where the file's bytes go, as far as a read-only opener can tell: per table, and the
    /// file's length (allocated, metadata and fragmented bytes are `None`).
    ///
    /// # Errors
    ///
    /// [`IndexError::Redb`].
    pub fn space(&self) -> Result<IndexSpace, IndexError> {
        let read = self
            .db
            .begin_read()
            .map_err(|e| IndexError::redb("begin read", &self.path, e))?;
        let tables = table_spaces(&read, &self.path)?;
        let (file_bytes, disk_bytes) = file_bytes(&self.path)?;
        Ok(IndexSpace {
            file_bytes,
            disk_bytes,
            // redb's default, which `Index::open` keeps; a read-only opener cannot ask.
            page_bytes: 4096,
            allocated_pages: None,
            stored_bytes: tables.iter().map(|t| t.stored_bytes).sum(),
            metadata_bytes: None,
            fragmented_bytes: None,
            tables,
        })
    }
}
