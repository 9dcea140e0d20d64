//! Keeping the secondary index ([`trailmix_index`]) behind the log.
//!
//! The index is derived state. A background thread reads every newly *durable* entry from the
//! log and commits it to redb, durably (the file is shared with read-only openers in other
//! processes), at most once per [`INDEX_COMMIT_INTERVAL`]. The watermark (the first sequence number not yet indexed) is
//! written in the same redb transaction as the content, so after a crash the index is a
//! consistent image at some older watermark, and opening catches it up from the log before the
//! store accepts writes. An index that does not belong to the log (another store, a newer
//! format, a watermark past the log's end, unreadable) is deleted and rebuilt from the log:
//! the log is the only source of truth.
//!
//! Failure model: a failed index commit stops indexing (queries then fail with
//! [`Error::Index`]) but never the log: receipts stay durable and verifiable, and the next
//! open rebuilds or catches up.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use trailmix_index::{
    CommitMode, Index, IndexBatch, IndexOptions, IndexRecord, Sharing, StoreBinding,
};

use crate::db::{StoredReceipt, first_event_match};
use crate::entry::{self, EntryKind};
use crate::error::{Error, Result};
use crate::header_fields::HeaderFieldReader;
#[doc(hidden)]
pub use crate::header_fields::compare_with_decode as compare_header_fields_with_decode;
use crate::log::LogStorage;
use crate::merkle::Digest;
use crate::reads::LogReads;
use crate::receipt::ReceiptHeader;
use crate::replay::KnownEvent;
use crate::wal::{HashAlgorithm, Seq};
use crate::writer::Shared;

/// Directory of the index inside the data directory.
pub const INDEX_DIR: &str = "index";
/// The index file inside [`INDEX_DIR`].
pub const INDEX_FILE: &str = "index.redb";
/// Most log entries read into one index commit (bounds the indexer's memory).
pub const INDEX_BATCH_ENTRIES_MAX: u64 = 65_536;
/// Shortest time between two index commits while receipts arrive. Each commit is durable (an
/// fsync), so this bounds their rate; it adds at most this much to the index lag.
pub const INDEX_COMMIT_INTERVAL: Duration = Duration::from_millis(20);
/// Suffix of scratch files (a rebuild for [`IndexKeeper::rebuild_digest`]); any left by a
/// crash are removed on open.
const SCRATCH_SUFFIX: &str = ".redb.tmp";
const SCRATCH_PREFIX: &str = "trailmix-";
/// How long the indexer sleeps when nothing wakes it.
const INDEX_IDLE_POLL: Duration = Duration::from_millis(100);
/// How long the index must have had nothing to commit before the indexer merges event-id
/// runs: long enough that a pause between bursts of appends is not taken for idleness.
pub const EVENT_ID_MERGE_IDLE: Duration = Duration::from_secs(1);
/// Most event-id entries one idle merge step rewrites (24 bytes each: 24 MB). The step holds
/// the indexer thread while it writes, so this bounds how far the index can fall behind an
/// append that arrives during it; it also keeps a trickle of small commits from rewriting one
/// large run again and again (only runs that fit together within it are merged).
pub const EVENT_ID_MERGE_ENTRIES_MAX: u64 = 1_000_000;
/// How long the writer keeps an event in its own map after the index covers it: a caller
/// that looked the event id up in an older index snapshot than this is re-checked by the
/// writer itself (rare), so this only trades memory against those re-checks.
const RECENT_EVENTS_GRACE: Duration = Duration::from_millis(250);

/// What happened to the index when the store was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexOpening {
    /// The index was there and was caught up from its watermark.
    CaughtUp {
        /// Log entries read to catch up.
        entries: u64,
    },
    /// The index was missing or unusable and was rebuilt from the log.
    Rebuilt {
        /// Why (missing, foreign, ahead of the log, unreadable).
        reason: String,
    },
}

/// The index of one open store and the state readers and the writer share about it.
pub(crate) struct IndexKeeper<L: LogStorage> {
    index: Index,
    reads: Arc<LogReads<L>>,
    alg: HashAlgorithm,
    /// The committed watermark readers can see.
    committed: AtomicU64,
    /// The writer may forget events below this (see [`RECENT_EVENTS_GRACE`]).
    forget_below: AtomicU64,
    /// Set (with the reason) when indexing stopped after a failure.
    failure: Mutex<Option<String>>,
    progress: Condvar,
    progress_lock: Mutex<()>,
    opening: IndexOpening,
    binding: StoreBinding,
}

/// The fields of a receipt the index keeps, borrowed from its decoded header.
pub(crate) fn index_record(seq: Seq, logged_at_ns: u64, header: &ReceiptHeader) -> IndexRecord<'_> {
    IndexRecord {
        seq: seq.0,
        logged_at_ns,
        event_time_ns: header.event_time().as_unix_nanos(),
        tenant: header.tenant_id(),
        event_id: header.event_id(),
        app_id: header.app_id(),
        session_id: header.session_id(),
        parent_id: header.parent_id(),
        subject_id: header.subject_id(),
        kind: header.kind().as_str(),
        actor_type: header.actor_type().as_str(),
        decision: header.decision().map(crate::receipt::Decision::as_str),
        model_name: header.model_name(),
        model_version: header.model_version(),
        model_provider: header.model_provider(),
        retention_class: header.retention_class(),
        labels: header.labels(),
    }
}

fn index_error(path: &Path, err: &trailmix_index::IndexError) -> Error {
    Error::Index {
        path: path.to_path_buf(),
        detail: err.to_string(),
    }
}

/// What became of the receipts below the prune horizon, as far as the index is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BelowHorizon {
    /// Gone: the index must not name them.
    Gone,
    /// Archived, and the store reads them through its archive: the index keeps naming them,
    /// so that queries find them.
    ReadThroughArchive,
}

impl<L: LogStorage> IndexKeeper<L> {
    /// Opens (or rebuilds) the index in `data_dir` and catches it up to `log_end`. Below the
    /// prune `horizon`: when the receipts there are [`BelowHorizon::Gone`], an index that still
    /// holds some is rebuilt from the kept log; when they are read through the archive, an
    /// index that holds none of them is rebuilt from the log and the archive.
    pub(crate) fn open(
        data_dir: &Path,
        binding: &StoreBinding,
        reads: Arc<LogReads<L>>,
        alg: HashAlgorithm,
        (horizon, log_end, below): (Seq, Seq, BelowHorizon),
    ) -> Result<IndexKeeper<L>> {
        let dir = data_dir.join(INDEX_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        remove_scratch_files(&dir)?;
        let path = dir.join(INDEX_FILE);
        let (index, rebuilt) = open_usable(&path, binding, (horizon, below), log_end)?;
        let start = index.watermark().map_err(|e| index_error(&path, &e))?;
        let mut keeper = IndexKeeper {
            index,
            reads,
            alg,
            committed: AtomicU64::new(start),
            forget_below: AtomicU64::new(start),
            failure: Mutex::new(None),
            progress: Condvar::new(),
            progress_lock: Mutex::new(()),
            opening: IndexOpening::CaughtUp { entries: 0 },
            binding: binding.clone(),
        };
        keeper.catch_up(log_end, CommitMode::Durable)?;
        keeper.opening = match rebuilt {
            Some(reason) => IndexOpening::Rebuilt { reason },
            None => IndexOpening::CaughtUp {
                entries: log_end.0 - start,
            },
        };
        keeper.forget_below.store(log_end.0, Ordering::SeqCst);
        Ok(keeper)
    }

    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    pub(crate) fn opening(&self) -> &IndexOpening {
        &self.opening
    }

    /// The first sequence number the index does not cover yet.
    pub(crate) fn watermark(&self) -> Seq {
        Seq(self.committed.load(Ordering::SeqCst))
    }

    pub(crate) fn forget_below(&self) -> u64 {
        self.forget_below.load(Ordering::SeqCst)
    }

    /// Fails with the reason when indexing has stopped.
    pub(crate) fn check_running(&self) -> Result<()> {
        match &*self.failure.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(reason) => Err(Error::Index {
                path: self.index.path().to_path_buf(),
                detail: format!("indexing stopped: {reason}"),
            }),
            None => Ok(()),
        }
    }

    /// Indexes the log up to `to` (exclusive) in bounded batches.
    pub(crate) fn catch_up(&self, to: Seq, mode: CommitMode) -> Result<()> {
        loop {
            let from = self.watermark();
            if from >= to {
                return Ok(());
            }
            let end = Seq(to.0.min(from.0 + INDEX_BATCH_ENTRIES_MAX));
            let batch = read_batch(&self.reads, self.index.path(), from, end)?;
            self.index
                .commit(batch, mode)
                .map_err(|e| index_error(self.index.path(), &e))?;
            self.committed.store(end.0, Ordering::SeqCst);
            let _guard = self
                .progress_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.progress.notify_all();
        }
    }

    /// Builds a fresh index of the log's first `to` entries in a scratch file next to the
    /// live one and returns its logical digest (the scratch file is removed).
    pub(crate) fn rebuild_digest(&self, to: Seq) -> Result<[u8; 32]> {
        let dir = self
            .index
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        rebuild_digest(&self.reads, &self.binding, &dir, to)
    }

    /// Waits until the index covers `seq` (exclusive) or `timeout` passes; returns the
    /// watermark reached.
    pub(crate) fn wait_for(&self, seq: Seq, timeout: Duration) -> Result<Seq> {
        let deadline = Instant::now() + timeout;
        let mut guard = self
            .progress_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            self.check_running()?;
            let mark = self.watermark();
            let now = Instant::now();
            if mark >= seq || now >= deadline {
                return Ok(mark);
            }
            guard = self
                .progress
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Finds the receipt `(tenant, event_id)` through the index (the candidates it names are
    /// read back from the log, digest-checked and compared, so a stale or tampered index
    /// cannot invent one). Returns it with its content digest (if any) and the watermark of
    /// the index snapshot searched: events at or after that watermark were not searched.
    pub(crate) fn find_receipt(
        &self,
        tenant: &str,
        event_id: &str,
    ) -> Result<(Option<(StoredReceipt, Digest)>, u64)> {
        let reader = self
            .index
            .reader()
            .map_err(|e| index_error(self.index.path(), &e))?;
        let floor = reader.watermark();
        let candidates = reader
            .event_seqs(tenant, event_id)
            .map_err(|e| index_error(self.index.path(), &e))?;
        let found = first_event_match(&self.reads, self.alg, candidates, tenant, event_id)?;
        Ok((found, floor))
    }

    /// The indexer thread: follows the durable end until `stop` is set, then indexes up to
    /// the final durable end. Every commit is durable (the index is shared with read-only
    /// openers, see [`Sharing::ReadersAllowed`]); commits are at least
    /// [`INDEX_COMMIT_INTERVAL`] apart, so that under load each one carries many group
    /// commits' worth of entries and the fsyncs stay few.
    pub(crate) fn run(&self, shared: &Shared, wake: &Receiver<()>, stop: &AtomicBool) {
        let mut recent: VecDeque<(Instant, u64)> = VecDeque::new();
        let mut last_commit = Instant::now();
        // Whether commits since the last merge step may have left runs worth merging.
        let mut merge_due = true;
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            if !stopping
                && wake.recv_timeout(INDEX_IDLE_POLL) == Err(RecvTimeoutError::Disconnected)
            {
                std::thread::sleep(INDEX_IDLE_POLL);
            }
            let pause = INDEX_COMMIT_INTERVAL.saturating_sub(last_commit.elapsed());
            if !stopping && !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let to = Seq(shared.durable_end.load(Ordering::SeqCst));
            if to > self.watermark() {
                if let Err(err) = self.catch_up(to, CommitMode::Durable) {
                    self.stop_indexing(&err);
                    return;
                }
                last_commit = Instant::now();
                merge_due = true;
            } else if merge_due && !stopping && last_commit.elapsed() >= EVENT_ID_MERGE_IDLE {
                merge_due = false;
                if let Err(err) = self.merge_event_id_runs() {
                    self.stop_indexing(&err);
                    return;
                }
            }
            self.publish_forget_below(&mut recent);
            if stopping {
                return;
            }
        }
    }

    /// One idle step of [`Index::merge_event_id_runs`]: fewer runs make every event-id lookup
    /// (idempotency checks, `find_event`) seek fewer times. Changes neither the content nor
    /// the watermark, so a crash in it leaves a valid index either way.
    fn merge_event_id_runs(&self) -> Result<()> {
        self.index
            .merge_event_id_runs(EVENT_ID_MERGE_ENTRIES_MAX)
            .map(drop)
            .map_err(|e| index_error(self.index.path(), &e))
    }

    /// Lets the writer forget events the index has covered for at least the grace period.
    fn publish_forget_below(&self, recent: &mut VecDeque<(Instant, u64)>) {
        let now = Instant::now();
        let mark = self.watermark().0;
        if recent.back().is_none_or(|&(_, last)| last < mark) {
            recent.push_back((now, mark));
        }
        while let Some(&(at, mark)) = recent.front() {
            if now.duration_since(at) < RECENT_EVENTS_GRACE {
                break;
            }
            self.forget_below.fetch_max(mark, Ordering::SeqCst);
            recent.pop_front();
        }
    }

    fn stop_indexing(&self, err: &Error) {
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(err.to_string());
        let _guard = self
            .progress_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.progress.notify_all();
    }
}

/// Builds a fresh index of the log's first `to` entries in a scratch file in `dir` and
/// returns its logical digest; the scratch file is removed whatever happens (one left by a
/// crash next to a live index is removed when the store opens).
pub(crate) fn rebuild_digest<L: LogStorage>(
    reads: &LogReads<L>,
    binding: &StoreBinding,
    dir: &Path,
    to: Seq,
) -> Result<[u8; 32]> {
    remove_orphaned_scratch_files(dir);
    let path = scratch_index_path(dir, "rebuild");
    let result = (|| {
        let scratch = build_scratch_index(reads, binding, &path, to)?;
        let reader = scratch.reader().map_err(|e| index_error(&path, &e))?;
        reader.logical_digest().map_err(|e| index_error(&path, &e))
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// Builds a fresh index of the log's first `to` entries at `path` (a file there is replaced).
/// The caller removes the file when done with it.
pub(crate) fn build_scratch_index<L: LogStorage>(
    reads: &LogReads<L>,
    binding: &StoreBinding,
    path: &Path,
    to: Seq,
) -> Result<Index> {
    // Nobody else reads the scratch file while it is built: lazy commits, one sync when it
    // is dropped.
    let scratch = fresh_index(path, binding, Sharing::Exclusive)?;
    let mut from = Seq(0);
    while from < to {
        let end = Seq(to.0.min(from.0 + INDEX_BATCH_ENTRIES_MAX));
        let batch = read_batch(reads, path, from, end)?;
        scratch
            .commit(batch, CommitMode::Lazy)
            .map_err(|e| index_error(path, &e))?;
        from = end;
    }
    Ok(scratch)
}

/// A unique scratch index path in `dir`: `trailmix-<purpose>-<pid>-<nanos>.redb.tmp`. Whoever
/// made it removes it; one left by a crash next to a live index is removed when the store
/// opens, one left in a shared directory by [`remove_orphaned_scratch_files`].
pub(crate) fn scratch_index_path(dir: &Path, purpose: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    dir.join(format!(
        "{SCRATCH_PREFIX}{purpose}-{}-{nanos}{SCRATCH_SUFFIX}",
        std::process::id()
    ))
}

/// Removes the scratch indexes in a shared directory (the system's temporary one) whose
/// maker no longer runs. A reader killed before its drop ran (Ctrl-C on the tool while it
/// queried a crashed store) leaves its rebuilt index there, and nothing else would ever
/// remove it. A file whose maker still runs, or whose pid a new process has taken since, is
/// kept; one that cannot be removed (another sweeper was first, or another user owns it) is
/// skipped: sweeping is a courtesy, never a reason to fail a read.
pub(crate) fn remove_orphaned_scratch_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let owner = scratch_owner(&entry.file_name().to_string_lossy());
        if owner.is_some_and(|pid| !process_runs(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The pid in a name made by [`scratch_index_path`], if it is one.
fn scratch_owner(name: &str) -> Option<i32> {
    let stem = name
        .strip_prefix(SCRATCH_PREFIX)?
        .strip_suffix(SCRATCH_SUFFIX)?;
    let mut parts = stem.rsplitn(3, '-');
    let _nanos: u128 = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next().filter(|purpose| !purpose.is_empty())?;
    Some(pid)
}

/// Whether a process with this pid exists (signal 0). `EPERM` means it runs as another user.
fn process_runs(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Reads `from..end` of the log into an index batch.
fn read_batch<L: LogStorage>(
    reads: &LogReads<L>,
    path: &Path,
    from: Seq,
    end: Seq,
) -> Result<IndexBatch> {
    let mut batch = IndexBatch::new(from.0);
    let mut fields = HeaderFieldReader::default();
    let reached = reads.scan(from, end, |record| {
        if EntryKind::from_byte(record.kind.get()) != Some(EntryKind::Receipt) {
            return Ok(ControlFlow::Continue(()));
        }
        let damaged = |detail: String| Error::Damaged {
            seq: record.seq,
            detail,
        };
        let entry = entry::decode_entry(EntryKind::Receipt, record.payload)
            .map_err(|e| damaged(e.to_string()))?;
        let logged_at_ns = entry.chain.logged_at_ns;
        let pushed = if let Some(fields) = fields.read(record.seq.0, logged_at_ns, entry.header) {
            batch.push(&fields)
        } else {
            // Refused: the full decoder says why (or, should the two ever disagree, indexes
            // what it decoded, so the index never depends on which reader ran).
            let header = ReceiptHeader::decode(entry.header).map_err(|e| damaged(e.to_string()))?;
            batch.push(&index_record(record.seq, logged_at_ns, &header))
        };
        pushed.map_err(|e| index_error(path, &e))?;
        Ok(ControlFlow::Continue(()))
    })?;
    if reached < end {
        return Err(Error::Damaged {
            seq: reached,
            detail: format!("the log ends at {reached} but {end} entries are durable"),
        });
    }
    batch.advance_to(end.0);
    Ok(batch)
}

/// Opens the index at `path` if it is usable for a log of `log_end` entries; otherwise
/// replaces it with an empty one and says why.
fn open_usable(
    path: &Path,
    binding: &StoreBinding,
    (horizon, below): (Seq, BelowHorizon),
    log_end: Seq,
) -> Result<(Index, Option<String>)> {
    if !path.exists() {
        let fresh = fresh_index(path, binding, Sharing::ReadersAllowed)?;
        return Ok((fresh, Some("there was no index".to_owned())));
    }
    let live = IndexOptions::default().sharing(Sharing::ReadersAllowed);
    let problem = match Index::open(path, binding, live) {
        Ok(index) => match index.watermark() {
            Ok(mark) if mark <= log_end.0 && fits_horizon(&index, horizon, below) => {
                return Ok((index, None));
            }
            Ok(mark) if mark <= log_end.0 && below == BelowHorizon::Gone => {
                format!("it still holds receipts pruned below seq {horizon}")
            }
            Ok(mark) if mark <= log_end.0 => {
                format!("it holds none of the archived receipts below seq {horizon}")
            }
            Ok(mark) => format!("its watermark {mark} is past the log's end {log_end}"),
            Err(err) => err.to_string(),
        },
        Err(err) => err.to_string(),
    };
    Ok((
        fresh_index(path, binding, Sharing::ReadersAllowed)?,
        Some(problem),
    ))
}

/// Whether what `index` holds below `horizon` fits what became of those receipts: nothing
/// when they are gone (an index built before a prune holds some), some when they are read
/// through the archive (an index rebuilt without the archive holds none). An index that
/// cannot answer does not fit, so that it is rebuilt.
fn fits_horizon(index: &Index, horizon: Seq, below: BelowHorizon) -> bool {
    if horizon == Seq(0) {
        return true;
    }
    let range = index
        .reader()
        .and_then(|r| r.seq_range_for_logged_at(0, u64::MAX));
    match (range, below) {
        (Err(_), _) => false,
        (Ok(range), BelowHorizon::Gone) => range.is_empty() || range.start >= horizon.0,
        (Ok(range), BelowHorizon::ReadThroughArchive) => {
            range.is_empty() || range.start < horizon.0
        }
    }
}

/// Deletes an unusable index file and creates an empty one.
fn fresh_index(path: &Path, binding: &StoreBinding, sharing: Sharing) -> Result<Index> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove unusable index", path, e)),
    }
    Index::open(path, binding, IndexOptions::default().sharing(sharing))
        .map_err(|e| index_error(path, &e))
}

impl<L: LogStorage> crate::writer::EventLookup for IndexKeeper<L> {
    fn find_event(&self, tenant: &str, event_id: &str) -> Result<(Option<KnownEvent>, u64)> {
        let (found, floor) = self.find_receipt(tenant, event_id)?;
        let known = found.map(|(receipt, content_digest)| KnownEvent {
            position: receipt.position,
            content_digest,
        });
        Ok((known, floor))
    }

    fn forget_below(&self) -> u64 {
        IndexKeeper::forget_below(self)
    }
}

/// Removes scratch files a crash left behind.
fn remove_scratch_files(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(SCRATCH_SUFFIX)
        {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| Error::io("remove scratch index", &path, e))?;
        }
    }
    Ok(())
}

/// The index fields of a stored receipt (what a query filter is matched against).
#[must_use]
pub fn index_record_of(receipt: &crate::StoredReceipt) -> IndexRecord<'_> {
    index_record(
        receipt.position.seq,
        receipt.position.logged_at_ns,
        &receipt.header,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Above Linux's `pid_max` limit (2^22), so no process has it.
    const GONE_PID: i32 = i32::MAX;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn orphaned_scratch_files_go_and_live_or_foreign_ones_stay() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let live = scratch_index_path(dir.path(), "read-only");
        let orphan = format!("trailmix-read-only-{GONE_PID}-17{SCRATCH_SUFFIX}");
        let foreign = [
            format!("read-only-{GONE_PID}-17{SCRATCH_SUFFIX}"),
            format!("trailmix-read-only-{GONE_PID}-17.redb"),
            format!("trailmix-{GONE_PID}-17{SCRATCH_SUFFIX}"),
            format!("trailmix-x-notapid-17{SCRATCH_SUFFIX}"),
        ];
        std::fs::write(&live, b"")?;
        std::fs::write(dir.path().join(&orphan), b"")?;
        for name in &foreign {
            std::fs::write(dir.path().join(name), b"")?;
        }
        remove_orphaned_scratch_files(dir.path());
        let mut expected: Vec<String> = foreign.to_vec();
        expected.extend(live.file_name().map(|n| n.to_string_lossy().into_owned()));
        expected.sort();
        assert_eq!(names_in(dir.path()), expected);
        Ok(())
    }

    #[test]
    fn a_scratch_name_gives_back_its_maker() {
        let path = scratch_index_path(Path::new("."), "read-only");
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let own = i32::try_from(std::process::id()).ok();
        assert_eq!(name.as_deref().and_then(scratch_owner), own);
        assert!(process_runs(own.unwrap_or(1)));
        assert!(!process_runs(GONE_PID));
    }
}
