//! `trailmix-db compact-index`: gives the index file's free pages back to the file system
//! (the store's `VACUUM`; design.md, "Compacting the index").

use std::path::Path;

use serde::Serialize;
use trailmix_db::{Db, IndexCompaction};

use crate::{ToolError, human_bytes};

/// One side (before or after) of a compaction, in bytes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IndexFileSpace {
    /// The file's length.
    pub file_bytes: u64,
    /// What the file system allocated to it (below the length where redb grew it sparsely).
    pub allocated_bytes: u64,
    /// Keys and values of every table (the live data; B-tree pages are never full).
    pub stored_bytes: u64,
    /// File bytes in no allocated page: what compaction gives back.
    pub free_bytes: u64,
}

/// What `compact-index` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CompactReport {
    /// The index file.
    pub file: String,
    /// Whether any page was moved (false: there was nothing to give back).
    pub compacted: bool,
    /// Before.
    pub before: IndexFileSpace,
    /// After.
    pub after: IndexFileSpace,
    /// How long the compaction took.
    pub seconds: f64,
}

fn side(space: &trailmix_db::IndexSpaceReport) -> IndexFileSpace {
    IndexFileSpace {
        file_bytes: space.file_bytes,
        allocated_bytes: space.disk_bytes,
        stored_bytes: space.stored_bytes,
        free_bytes: space.free_bytes().unwrap_or_default(),
    }
}

impl From<&IndexCompaction> for CompactReport {
    fn from(done: &IndexCompaction) -> Self {
        CompactReport {
            file: done.path.display().to_string(),
            compacted: done.compacted,
            before: side(&done.before),
            after: side(&done.after),
            seconds: done.elapsed.as_secs_f64(),
        }
    }
}

/// Compacts the index of the stopped store at `dir` (takes the writer lock).
///
/// # Errors
/// The store's errors, with hints (a live writer: the lock error).
pub fn run(dir: &Path) -> Result<CompactReport, ToolError> {
    Db::compact_index(dir)
        .map(|done| CompactReport::from(&done))
        .map_err(|e| ToolError::store(dir, &e))
}

fn line(label: &str, s: &IndexFileSpace) {
    println!(
        "{label:<16}{} ({} allocated on disk): live data {}, free {}",
        human_bytes(s.file_bytes),
        human_bytes(s.allocated_bytes),
        human_bytes(s.stored_bytes),
        human_bytes(s.free_bytes)
    );
}

/// The human form of a report.
pub fn print_text(r: &CompactReport) {
    println!("index           {}", r.file);
    line("before", &r.before);
    line("after", &r.after);
    let given = r
        .before
        .allocated_bytes
        .saturating_sub(r.after.allocated_bytes);
    println!(
        "gave back       {} of disk, {} of file length, in {:.0} ms{}",
        human_bytes(given),
        human_bytes(r.before.file_bytes.saturating_sub(r.after.file_bytes)),
        r.seconds * 1000.0,
        if r.compacted {
            ""
        } else {
            " (nothing to move)"
        }
    );
}
