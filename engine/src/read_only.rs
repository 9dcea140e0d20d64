//! [`ReadOnlyStore`]: queries on a store that another process may be writing, without its
//! lock (the `trailmix-db` tool on a live service's data directory).
//!
//! The log is read through the segment files, which the writer only ever appends to; the
//! index through redb's read-only mode beside the engine's writer (the engine opens its index
//! with [`Sharing::ReadersAllowed`](trailmix_index::Sharing)). Each query takes one index
//! snapshot, a prefix of the log as of the writer's last durable index commit, and re-checks
//! every candidate against the log exactly as [`Db::query`](crate::Db::query) does.
//!
//! Encrypted payloads: the reader opens the key store read-only (`keystore/keys.journal` and
//! the KEK, from `keys/` by default or a [`KekProvider`] given to
//! [`ReadOnlyStore::open_with_kek`]), re-reads the journal when the file changed (the writer
//! appended keys or a shred rotated it) or it meets a key it does not know, treats the keys
//! named by the log's shred records as shredded, and never writes it. Without access to the KEK it still reads every header;
//! payloads then say `KeyUnavailable`.
//!
//! Failure model: the writer may be appending while a read runs. Frames are written in full
//! before the writer publishes them, and a reader never trusts a frame it did not check (the
//! frame checksum and the receipt digests), so a read sees either a whole, checked receipt
//! or none. Entries past the index watermark (seen only by [`ReadOnlyStore::find_event`]) may
//! be written but not yet synced by the writer: a power loss could still take them back.

use std::path::{Path, PathBuf};

use trailmix_index::{ReadOnlyIndex, StoreBinding};
use trailmix_query::{Aggregate, AggregateQuery, Query};

use crate::db::{StoredReceipt, WAL_DIR, leaf_record, note_text, parse_checkpoint};
use crate::entry::EntryKind;
use crate::error::{Error, Result};
use crate::indexer::{
    INDEX_DIR, INDEX_FILE, build_scratch_index, rebuild_digest, remove_orphaned_scratch_files,
    scratch_index_path,
};
use crate::keystore::{FileKekProvider, KekProvider, KeyStore};
use crate::log::FsLog;
use crate::note::Checkpoint;
use crate::position::Epoch;
use crate::proof::{self, ConsistencyBundle, InclusionBundle};
use crate::proof_tables::{EpochRef, ProofRequest, ProofTables, TableFiles};
use crate::reads::LogReads;
use crate::replay::SealedEpoch;
use crate::search::{IndexCheck, QueryPage, Search, Snapshot, Trace, find_in_log, query_error};
use crate::wal::{HashAlgorithm, Seq};

/// A read-only view of a store's log and index, usable while another process writes it.
pub struct ReadOnlyStore {
    data_dir: PathBuf,
    alg: HashAlgorithm,
    reads: std::sync::Arc<LogReads<FsLog>>,
    /// Threads that share a query page's reads ([`crate::default_query_threads`]).
    read_pool: crate::read_pool::ReadPool,
    proof_tables: ProofTables,
    /// Declared before `scratch`, so that it is closed before the scratch file is removed.
    index: ReadOnlyIndex,
    index_source: IndexSource,
    payload_keys_problem: Option<String>,
    #[expect(
        dead_code,
        reason = "held for its Drop, which removes the scratch file"
    )]
    scratch: Option<ScratchFile>,
    binding: StoreBinding,
}

/// Where a [`ReadOnlyStore`]'s index comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexSource {
    /// The store's own index, as its writer last committed it.
    Store,
    /// The store's index could not be opened read-only (`reason`: its writer stopped without
    /// closing it, and only a writer can repair a redb file), so this reader built its own
    /// from the log's first `entries` entries, in a scratch file in the system's temporary
    /// directory that is removed when the reader is dropped. Entries the log gains later are
    /// not in it (reopen to see them); results are re-checked against the log as always.
    RebuiltFromLog {
        /// Why the store's index was not used.
        reason: String,
        /// Entries the rebuilt index covers.
        entries: u64,
    },
}

/// A scratch file removed on drop.
struct ScratchFile(PathBuf);

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl std::fmt::Debug for ReadOnlyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyStore")
            .field("data_dir", &self.data_dir)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl ReadOnlyStore {
    /// Opens the store in `data_dir` read-only: takes no lock, writes nothing, and works
    /// while a [`Db`](crate::Db) in another process writes the store. Reads the frame
    /// headers of the log after the entry the writer's open snapshot covers (all of them
    /// without one), not their payloads; reads of older entries find their frames as they
    /// need them (`docs/design.md`, "Open snapshot").
    ///
    /// # Errors
    /// [`Error::Wal`] when the directory holds no readable log; [`Error::Index`] when the
    /// index is missing, of another store or format, or held exclusively (open the store
    /// with [`Db::open`](crate::Db::open) once: it rebuilds the index from the log).
    pub fn open(data_dir: impl AsRef<Path>) -> Result<ReadOnlyStore> {
        let data_dir = data_dir.as_ref();
        let provider = std::sync::Arc::new(FileKekProvider::in_data_dir(data_dir));
        ReadOnlyStore::open_with_kek(data_dir, provider)
    }

    /// As [`ReadOnlyStore::open`], decrypting payloads with the key store (read-only) and the
    /// key-encryption key from `provider` (the writer's [`DbOptions::kek_provider`]). When
    /// the key store cannot be read with it, every header still reads and each encrypted
    /// payload says [`PayloadState::KeyUnavailable`](crate::PayloadState::KeyUnavailable).
    ///
    /// [`DbOptions::kek_provider`]: crate::DbOptions::kek_provider
    ///
    /// # Errors
    /// As for [`ReadOnlyStore::open`].
    pub fn open_with_kek(
        data_dir: impl AsRef<Path>,
        provider: std::sync::Arc<dyn KekProvider>,
    ) -> Result<ReadOnlyStore> {
        let data_dir = data_dir.as_ref().to_path_buf();
        let (reads, binding, path) = open_log(&data_dir)?;
        let (store_id, alg) = reads.identity();
        let opened = match ReadOnlyIndex::open(&path, &binding) {
            Ok(index) => Ok(index),
            // Repairing needs write access; a reader answers from its own rebuild instead.
            Err(trailmix_index::IndexError::NeedsRepair { .. }) => Err(NEEDS_REPAIR),
            Err(e) => {
                return Err(Error::Index {
                    path,
                    detail: format!(
                        "{e} (a read-only open cannot rebuild the index: open the store for \
                         writing once, which rebuilds it from the log)"
                    ),
                });
            }
        };
        // A reader that cannot read the key store (no permission, no key store) still reads
        // every header, and each encrypted payload says `KeyUnavailable`. The keys are set
        // before the log is walked, so that the walk tells them every shred record.
        let payload_keys_problem = match KeyStore::open_read_only(&data_dir, store_id.0, provider) {
            Ok(Some(keys)) => {
                reads.set_payload_keys(std::sync::Arc::new(keys));
                None
            }
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        };
        let retained = crate::prune::load_retained(&data_dir, alg, crate::prune::MANIFEST_FILE)?;
        if let Some(retained) = &retained {
            let seals = retained
                .epochs
                .iter()
                .map(crate::prune::PrunedEpoch::seal_seq)
                .collect();
            reads.start_notes_at(seals, retained.horizon);
        }
        // The writer's open snapshot holds the notes up to the entry it covers; a snapshot
        // that does not bind only costs the walk from the start. Whether the entry it covers
        // is durable is not asked: the writer snapshots durable entries only.
        let pruned = retained.is_some();
        if let Ok(Some(bound)) = crate::snapshot::bind(
            &reads,
            &data_dir,
            pruned,
            &store_id.to_string(),
            Seq(u64::MAX),
        ) {
            reads.start_notes_from(&bound.state, bound.seq);
        }
        let log_end = reads.walk_notes_to_end()?;
        let (index, index_source, scratch) = match opened {
            Ok(index) => (index, IndexSource::Store, None),
            Err(reason) => {
                let (index, scratch) = rebuilt_index(&reads, &binding, log_end)?;
                let source = IndexSource::RebuiltFromLog {
                    reason: reason.to_owned(),
                    entries: log_end.0,
                };
                (index, source, Some(scratch))
            }
        };
        Ok(ReadOnlyStore {
            proof_tables: ProofTables::new(&data_dir, alg, TableFiles::ReadOnly),
            data_dir,
            alg,
            reads: std::sync::Arc::new(reads),
            read_pool: crate::read_pool::ReadPool::new(crate::default_query_threads()),
            index,
            index_source,
            payload_keys_problem,
            scratch,
            binding,
        })
    }

    /// The watermark of the store's own index, read without opening the rest of the store
    /// and without the fallback of [`ReadOnlyStore::open`] (for a summary of the index's
    /// state).
    ///
    /// # Errors
    /// [`Error::Wal`] when the directory holds no readable log; [`Error::Index`] when the
    /// index cannot be opened read-only (the message says why).
    pub fn store_index_watermark(data_dir: impl AsRef<Path>) -> Result<Seq> {
        let (_, binding, path) = open_log(data_dir.as_ref())?;
        let index = ReadOnlyIndex::open(&path, &binding).map_err(|e| Error::Index {
            path: path.clone(),
            detail: match e {
                trailmix_index::IndexError::NeedsRepair { .. } => NEEDS_REPAIR.to_owned(),
                e => e.to_string(),
            },
        })?;
        let reader = index.reader().map_err(|e| Error::Index {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        Ok(Seq(reader.watermark()))
    }

    /// Where this reader's index comes from: the store's own, or one it rebuilt from the log
    /// because the store's could not be opened read-only (tools say so beside the results).
    #[must_use]
    pub fn index_source(&self) -> &IndexSource {
        &self.index_source
    }

    /// Why this reader cannot decrypt payloads although the store has a key store (for
    /// example a key-encryption key file that others may read, which the key store refuses):
    /// encrypted payloads then read as [`crate::PayloadState::KeyUnavailable`]. `None` when the
    /// keys opened or the store has no key store.
    #[must_use]
    pub fn payload_keys_problem(&self) -> Option<&str> {
        self.payload_keys_problem.as_deref()
    }

    /// Reads entries of epochs archived and then dropped locally through `archive` and the
    /// store's cache of fetched segments (see
    /// [`DbOptions::archive_reads`](crate::DbOptions::archive_reads)). Directories of fetches
    /// interrupted by a crash are left for the store's writer to remove (another process may
    /// be fetching into them).
    ///
    /// # Errors
    /// [`Error::Io`] when the cache directory cannot be created or listed.
    pub fn with_archive_reads(self, archive: crate::archive::ArchiveReads) -> Result<Self> {
        let (store_id, alg) = self.reads.identity();
        self.reads.set_archive(crate::archive::ArchiveCache::open(
            &self.data_dir,
            alg,
            store_id.to_string(),
            archive,
            crate::archive::Leftovers::Ignore,
        )?);
        Ok(self)
    }

    /// The log record at `seq`, frame-checked; an entry of an epoch dropped locally is read
    /// through the archive when [`ReadOnlyStore::with_archive_reads`] set one (and checked
    /// against the retained leaf hashes). For tools that show raw entries.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the log holds no such entry, [`Error::Archive`] when the
    /// archive cannot serve it, [`Error::Wal`].
    pub fn record(&self, seq: Seq) -> Result<crate::wal::Record> {
        self.reads.visit(seq, |record| record.to_owned_record())
    }

    /// The data directory.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The store's hash algorithm.
    #[must_use]
    pub fn hash_algorithm(&self) -> HashAlgorithm {
        self.alg
    }

    fn search(&self) -> Result<Search<'_, FsLog>> {
        let reader = self.index.reader().map_err(|e| Error::Index {
            path: self.index.path().to_path_buf(),
            detail: e.to_string(),
        })?;
        let snapshot = Snapshot(std::sync::Arc::new(reader));
        // The writer indexes durable entries only: below its watermark, an entry that does not
        // read is damage. (This reader's own rebuild indexes what it found written, synced or
        // not, so its watermark says nothing about durability.)
        if self.index_source == IndexSource::Store {
            self.reads.note_durable(Seq(snapshot.0.watermark()));
        }
        // Candidates lie below the watermark; map positions the writer added since.
        if self.reads.walked_end() < Seq(snapshot.0.watermark()) {
            self.reads.refresh()?;
            self.reads.walk_notes_to_end()?;
        }
        Ok(Search {
            snapshot,
            reads: &self.reads,
            alg: self.alg,
            pool: &self.read_pool,
        })
    }

    /// Runs `query` against the index as the writer last committed it (see
    /// [`Db::query`](crate::Db::query)).
    ///
    /// # Errors
    /// As for [`Db::query`](crate::Db::query).
    pub fn query(&self, query: &Query) -> Result<QueryPage> {
        self.search()?.query(query)
    }

    /// Runs `query` without reading payloads (see
    /// [`Db::query_heads`](crate::Db::query_heads)).
    ///
    /// # Errors
    /// As for [`Db::query`](crate::Db::query).
    pub fn query_heads(&self, query: &Query) -> Result<QueryPage<crate::ReceiptHead>> {
        self.search()?.query_heads(query)
    }

    /// Parses the CLI filter syntax and runs it (see [`Db::query_text`](crate::Db::query_text)).
    ///
    /// # Errors
    /// As for [`Db::query_text`](crate::Db::query_text).
    pub fn query_text(&self, text: &str) -> Result<QueryPage> {
        let query = Query::parse(text).map_err(query_error)?;
        self.query(&query)
    }

    /// The receipt `(tenant, event_id)`: looked up in the index, then in the log entries the
    /// index does not cover yet (written by the writer, possibly not yet synced).
    ///
    /// # Errors
    /// As for [`Db::find_event`](crate::Db::find_event).
    pub fn find_event(&self, tenant: &str, event_id: &str) -> Result<Option<StoredReceipt>> {
        let search = self.search()?;
        if let Some(found) = search.find_indexed(tenant, event_id)? {
            return Ok(Some(found));
        }
        let from = Seq(search.snapshot.0.watermark());
        let end = self.log_end()?;
        find_in_log(&self.reads, self.alg, from..end, tenant, event_id)
    }

    /// A session's receipts and parent links (see [`Db::trace`](crate::Db::trace)).
    ///
    /// # Errors
    /// As for [`Db::trace`](crate::Db::trace).
    pub fn trace(&self, tenant: &str, session_id: &str) -> Result<Trace> {
        self.search()?.trace(tenant, session_id)
    }

    /// Counts per time bucket from the index (see [`Db::aggregate`](crate::Db::aggregate)).
    ///
    /// # Errors
    /// As for [`Db::aggregate`](crate::Db::aggregate).
    pub fn aggregate(&self, query: &AggregateQuery) -> Result<Aggregate> {
        self.search()?.aggregate(query)
    }

    /// Compares the index (one snapshot) with an index rebuilt from the log up to the
    /// snapshot's watermark, by content (see [`Db::check_index`](crate::Db::check_index)).
    /// The rebuild is a scratch file in the system's temporary directory, removed after;
    /// nothing in the store is written. Reads the whole log up to the watermark.
    ///
    /// # Errors
    /// [`Error::Index`] (also when the store's index could not be opened and this reader
    /// uses its own rebuild: see [`IndexSource`]), [`Error::Damaged`], [`Error::Wal`].
    pub fn check_index(&self) -> Result<IndexCheck> {
        if let IndexSource::RebuiltFromLog { reason, .. } = &self.index_source {
            // Comparing this reader's own rebuild with a rebuild would always match.
            return Err(Error::Index {
                path: self.data_dir.join(INDEX_DIR).join(INDEX_FILE),
                detail: format!("not compared: {reason}"),
            });
        }
        let search = self.search()?;
        let live = search
            .snapshot
            .0
            .logical_digest()
            .map_err(|e| Error::Index {
                path: self.index.path().to_path_buf(),
                detail: e.to_string(),
            })?;
        let watermark = Seq(search.snapshot.0.watermark());
        let rebuilt = rebuild_digest(&self.reads, &self.binding, &std::env::temp_dir(), watermark)?;
        Ok(IndexCheck {
            watermark,
            matches: live == rebuilt,
        })
    }

    /// The index watermark: the writer's index covers every entry before it (with
    /// [`IndexSource::RebuiltFromLog`], the reader's own rebuild does).
    ///
    /// # Errors
    /// [`Error::Index`].
    pub fn index_watermark(&self) -> Result<Seq> {
        Ok(Seq(self.search()?.snapshot.0.watermark()))
    }

    /// An inclusion proof of the entry at `seq` against a signed note already in the log: its
    /// epoch's seal when the epoch is sealed, else the epoch's latest checkpoint (a live
    /// writer writes one within its checkpoint interval, 1 s by default; unlike
    /// [`Db::prove`](crate::Db::prove), a reader cannot write one). Proof tables are read from
    /// `proofs/` when the writer left them there; tables built here stay in memory. Check
    /// the bundle with [`crate::proof::verify_inclusion_bundle`] and the public key.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a seq not in the log, an epoch seal, or an entry no checkpoint
    /// covers yet; [`Error::Damaged`] when the log does not reproduce the note's root;
    /// [`Error::Wal`].
    pub fn prove(&self, seq: Seq) -> Result<InclusionBundle> {
        self.log_end()?;
        if self.reads.reads_archive() && seq < self.reads.first_seq() {
            return crate::prune::archived_inclusion(&self.reads, &self.data_dir, self.alg, seq);
        }
        let (record, epoch) = leaf_record(&self.reads, seq)?;
        let ((first_seq, seal), checkpoint) = self
            .reads
            .with_notes(|notes| (notes.epoch_bounds(epoch), notes.checkpoints.last().copied()));
        let first_seq = first_seq.ok_or_else(|| Error::Damaged {
            seq,
            detail: format!("the log has no seal of the epoch before epoch {epoch}"),
        })?;
        let leaf_index = seq.0 - first_seq.0;
        let (note, epoch_ref_sealed) = if let Some(seal_seq) = seal {
            let note = note_text(&self.reads, EntryKind::EpochSeal, seal_seq)?;
            let stated = parse_checkpoint(&note, seal_seq)?;
            let sealed = SealedEpoch {
                epoch,
                first_seq,
                entries: stated.tree_size,
                root: stated.root_hash,
                seal_seq,
            };
            (note, Some(sealed))
        } else {
            // The epoch is the open one: its latest checkpoint is the log's.
            let at = checkpoint
                .filter(|c| *c > first_seq)
                .ok_or_else(|| not_covered(seq))?;
            (note_text(&self.reads, EntryKind::Checkpoint, at)?, None)
        };
        let stated = parse_checkpoint(&note, seq)?;
        if stated.tree_size <= leaf_index {
            return Err(not_covered(seq));
        }
        let request = ProofRequest::Inclusion {
            leaf_index,
            tree_size: stated.tree_size,
            root: stated.root_hash,
        };
        let epoch_ref = match &epoch_ref_sealed {
            Some(sealed) => EpochRef::Sealed(sealed),
            None => EpochRef::Open { epoch, first_seq },
        };
        let path = self.proof_tables.prove(&self.reads, epoch_ref, &request)?;
        Ok(proof::inclusion_bundle(
            self.alg, &record, epoch, first_seq, note, &path,
        ))
    }

    /// A consistency proof between two checkpoint notes of the same epoch of this store, as
    /// [`Db::consistency`](crate::Db::consistency) gives it, without the writer's lock (a
    /// witness beside a live service). The notes' signatures are not checked here: whoever
    /// uses the proof checks them with the store's key; the proof itself only ever proves the
    /// roots the log reproduces.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] when a note does not parse, the notes are of two epochs or
    /// out of order, or the epoch is not in this log; [`Error::Damaged`] when the log does
    /// not reproduce a note's root; [`Error::Wal`].
    pub fn consistency(&self, old_note: &str, new_note: &str) -> Result<ConsistencyBundle> {
        let invalid = |reason: String| Error::InvalidOption {
            name: "checkpoint",
            reason,
        };
        let parse = |note: &str| {
            crate::note::parse(note.as_bytes())
                .map_err(|e| invalid(e.to_string()))
                .and_then(|n| Checkpoint::parse_body(&n.body).map_err(|e| invalid(e.to_string())))
        };
        let (old, new) = (parse(old_note)?, parse(new_note)?);
        if old.origin != new.origin || old.tree_size > new.tree_size {
            return Err(invalid(
                "the checkpoints must be of one epoch, older first".into(),
            ));
        }
        let epoch = crate::witness::split_epoch_origin(&old.origin)
            .map(|(_, n)| Epoch(n))
            .ok_or_else(|| invalid(format!("origin {:?} names no epoch", old.origin)))?;
        self.log_end()?;
        let (first_seq, seal) = self.reads.with_notes(|notes| notes.epoch_bounds(epoch));
        let first_seq =
            first_seq.ok_or_else(|| invalid(format!("epoch {epoch} is not in this store")))?;
        let sealed = match seal {
            Some(seal_seq) => {
                let note = note_text(&self.reads, EntryKind::EpochSeal, seal_seq)?;
                let stated = parse_checkpoint(&note, seal_seq)?;
                Some(SealedEpoch {
                    epoch,
                    first_seq,
                    entries: stated.tree_size,
                    root: stated.root_hash,
                    seal_seq,
                })
            }
            None => None,
        };
        let epoch_ref = match &sealed {
            Some(sealed) => EpochRef::Sealed(sealed),
            None => EpochRef::Open { epoch, first_seq },
        };
        let request = ProofRequest::Consistency {
            old_size: old.tree_size,
            old_root: old.root_hash,
            new_size: new.tree_size,
            new_root: new.root_hash,
        };
        let path = self.proof_tables.prove(&self.reads, epoch_ref, &request)?;
        Ok(proof::consistency_bundle(
            self.alg, old_note, new_note, &path,
        ))
    }

    /// One past the last entry written to the log now (written, perhaps not yet synced).
    ///
    /// # Errors
    /// [`Error::Wal`].
    pub fn log_end(&self) -> Result<Seq> {
        self.reads.refresh()?;
        self.reads.walk_notes_to_end()
    }
}

/// The log of `data_dir`, the index binding of its store and the index file's path.
fn open_log(data_dir: &Path) -> Result<(LogReads<FsLog>, StoreBinding, PathBuf)> {
    let reads = LogReads::open(&FsLog::new(data_dir.join(WAL_DIR)))?;
    let (store_id, alg) = reads.identity();
    let binding = StoreBinding {
        store_id: store_id.0,
        hash_algorithm: alg.to_string(),
    };
    Ok((reads, binding, data_dir.join(INDEX_DIR).join(INDEX_FILE)))
}

/// Why a reader rebuilds the index (the store's index needs a writer's repair).
const NEEDS_REPAIR: &str = "the store's index was not closed cleanly (its writer stopped \
                            without closing it); only a writer can repair it: open the store \
                            for writing once";

/// An index of the log's first `log_end` entries, built in a scratch file in the system's
/// temporary directory and opened read-only; the file goes when the returned guard drops.
fn rebuilt_index(
    reads: &LogReads<FsLog>,
    binding: &StoreBinding,
    log_end: Seq,
) -> Result<(ReadOnlyIndex, ScratchFile)> {
    let temp_dir = std::env::temp_dir();
    remove_orphaned_scratch_files(&temp_dir);
    let path = scratch_index_path(&temp_dir, "read-only");
    let scratch = ScratchFile(path.clone());
    drop(build_scratch_index(reads, binding, &path, log_end)?);
    let index = ReadOnlyIndex::open(&path, binding).map_err(|e| Error::Index {
        path: path.clone(),
        detail: format!("reopening the index rebuilt from the log: {e}"),
    })?;
    Ok((index, scratch))
}

fn not_covered(seq: Seq) -> Error {
    Error::NotFound {
        seq,
        detail: "no signed checkpoint covers this entry yet (the writer writes one within its \
                 checkpoint interval; try again in a moment)"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::{Kind, Receipt};
    use crate::{Db, DbOptions};

    fn receipt(n: u64) -> Receipt {
        Receipt::builder("acme", format!("evt-{n}"), Kind::LlmCall)
            .app_id("app")
            .actor_type(crate::receipt::ActorType::Agent)
            .event_time(crate::receipt::Timestamp::from_unix_nanos(
                1_790_812_800_000_000_000,
            ))
            .subject_id(format!("subject-{}", n % 3))
            .input(serde_json::json!({ "n": n, "pad": "x".repeat(400) }))
            .build()
            .expect("valid receipt")
    }

    /// A closed store over many small segments: sealed epochs, checkpoints, a shred, and an
    /// open epoch with a checkpoint after the last seal.
    fn store(data: &Path) -> Seq {
        let options = DbOptions::default()
            .segment_bytes(64 * 1024)
            .epoch_records_max(500);
        let db = Db::open_with(data, options).expect("open");
        let append = |range: std::ops::Range<u64>| {
            let tickets: Vec<_> = range
                .map(|n| db.append(&receipt(n)).expect("append"))
                .collect();
            for ticket in tickets {
                ticket.wait().expect("durable");
            }
        };
        append(0..700);
        db.shred("acme", "subject-1", "req-1").expect("shred");
        append(700..1_800);
        db.checkpoint().expect("checkpoint");
        db.close().expect("close")
    }

    type Notes = (Vec<Seq>, Option<Seq>, Vec<Seq>, Seq);

    fn notes(reader: &ReadOnlyStore) -> Notes {
        reader.reads.with_notes(|notes| {
            (
                notes.seals.clone(),
                notes.checkpoints.last().copied(),
                notes.shreds.clone(),
                reader.reads.walked_end(),
            )
        })
    }

    #[test]
    fn a_reader_takes_the_notes_below_the_open_snapshot_from_it() {
        let scratch = tempfile::tempdir().expect("temp dir");
        let data = scratch.path().join("data");
        let end = store(&data);
        assert!(data.join(crate::snapshot::SNAPSHOT_FILE).exists());
        let from_snapshot = ReadOnlyStore::open(&data).expect("read-only");
        let maps_with_snapshot = from_snapshot.reads.mapped_segments();
        let (with_snapshot, proofs_with_snapshot) = {
            let notes = notes(&from_snapshot);
            let proofs: Vec<_> = [10, 600, 1_700]
                .map(|seq| from_snapshot.prove(Seq(seq)).expect("prove"))
                .to_vec();
            (notes, proofs)
        };
        let shredded = from_snapshot
            .find_event("acme", "evt-1")
            .expect("find")
            .expect("found");
        assert!(shredded.payload_state.is_shredded());
        drop(from_snapshot);

        std::fs::remove_file(data.join(crate::snapshot::SNAPSHOT_FILE)).expect("remove");
        let walked = ReadOnlyStore::open(&data).expect("read-only");
        let maps_walked = walked.reads.mapped_segments();
        let without_snapshot = notes(&walked);
        assert_eq!(with_snapshot, without_snapshot);
        assert_eq!(with_snapshot.3, end, "both walked to the end");
        assert_eq!(with_snapshot.0.len(), 3, "three sealed epochs");
        assert_eq!(with_snapshot.2.len(), 1, "one shred");
        for (seq, proof) in [10, 600, 1_700].into_iter().zip(proofs_with_snapshot) {
            assert_eq!(walked.prove(Seq(seq)).expect("prove"), proof);
        }
        // The walk from the start met every segment; the snapshot's reader read the one
        // holding the entry the snapshot covers, and what it needed to check it.
        assert!(maps_walked > 8, "{maps_walked} segments walked");
        assert!(
            maps_with_snapshot <= 2,
            "{maps_with_snapshot} segments mapped with the snapshot"
        );
    }

    #[test]
    fn a_writer_opening_from_its_snapshot_walks_no_segment_below_it() {
        let scratch = tempfile::tempdir().expect("temp dir");
        let data = scratch.path().join("data");
        let end = store(&data);
        let options = DbOptions::default().segment_bytes(64 * 1024);
        let db = Db::open_with(&data, options).expect("reopen");
        assert!(
            matches!(db.open_snapshot(), crate::snapshot::OpenSnapshot::Used { seq, .. } if seq.next() == end),
            "{:?}",
            db.open_snapshot()
        );
        let mapped = db.mapped_segments();
        assert!(mapped <= 2, "{mapped} segments mapped by the open");
        // Reads below the snapshot still find their entries.
        for seq in [1, 10, 600, 1_700] {
            assert_eq!(db.get(Seq(seq)).expect("read").position.seq, Seq(seq));
        }
        assert!(db.mapped_segments() <= mapped + 3);
        db.close().expect("close");
    }
}
