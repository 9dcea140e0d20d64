//! Proof tables: the interior nodes of each epoch's Merkle tree, kept so that a proof costs a
//! few table lookups plus one small block of log reads instead of re-hashing its epoch.
//!
//! A table holds every perfect subtree at or above [`PROOF_BASE_LEVEL`] (one node per
//! `2^(L-1)` leaves, 1 byte per receipt for `L = 6`), in the post-order of
//! [`merkle::interior_position`]. Subtrees below the base level are computed from one aligned
//! block of `2^L` leaves read from the log. A sealed epoch's table lives in
//! `proofs/epoch-NNNNNNNNNNNNNNNN.nodes` (layout in `docs/design.md`, "Proof tables"); the open
//! epoch's grows in memory as proofs ask for larger trees.
//!
//! # Failure model
//!
//! The tables are derived from the log and never trusted:
//! - a table file is checked when loaded (magic, version, algorithm, epoch, first sequence
//!   number, leaf count, body checksum, and the tree root it yields against the seal's signed
//!   root);
//! - every proof built from a table is verified against its checkpoint's root before it is
//!   returned. A proof that fails means the table is bad: it is dropped and rebuilt from the
//!   log once; if the rebuilt one fails too, the log disagrees with its own signed root and
//!   the caller gets [`Error::Damaged`].
//!
//! A missing, torn or edited file therefore costs a rebuild, never a wrong proof. Files are
//! written to a temporary name and renamed without `fsync`, because losing one to power loss
//! costs only that rebuild. A failure to write a file (read-only media, a full disk) leaves the
//! proof correct and the table in memory only.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs;
use std::io::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::entry::{self, EntryKind};
use crate::error::{Error, Result};
use crate::log::LogStorage;
use crate::merkle::{
    self, CompactRange, Digest, HashAlgorithm, LeafHashTable, SourceError, SubtreeSource,
};
use crate::position::Epoch;
use crate::reads::LogReads;
use crate::replay::SealedEpoch;
use crate::wal::{RecordRef, Seq};

/// Folder of the proof tables inside the data directory.
pub const PROOF_DIR: &str = "proofs";
/// The lowest level of the tree whose nodes the tables store. A proof reads one block of
/// `2^L` entries from the log around each leaf it touches; the table costs
/// `32 / 2^(L-1)` bytes per entry. 6 keeps both small: 64 entry reads, 1 byte per entry.
pub const PROOF_BASE_LEVEL: u32 = 6;
/// Sealed-epoch tables kept in memory (each is `leaves / 32` bytes at the default base level).
pub const SEALED_TABLES_CACHED: usize = 4;

const LEAF_BLOCK: u64 = 1 << PROOF_BASE_LEVEL;
const LEAF_BLOCK_USIZE: usize = 1 << PROOF_BASE_LEVEL;
/// [`PROOF_BASE_LEVEL`] as the byte a table file records.
const BASE_LEVEL_BYTE: u8 = 6;
const _: () = assert!(BASE_LEVEL_BYTE as u32 == PROOF_BASE_LEVEL);
/// Leaf blocks a source keeps while building one proof (a consistency proof touches at most
/// three: around the old size, and the right edge).
const BLOCKS_CACHED: usize = 4;
const FILE_MAGIC: [u8; 8] = *b"TMXNODES";
const FILE_VERSION: u8 = 1;
const FILE_HEADER_BYTES: usize = 104;
/// Domain-separation context of a table file's body checksum.
pub const TABLE_BODY_CONTEXT: &str = "trailmix-db 2026-11-23 proof table body v1";

/// The leaf hash of a log record: `leaf_hash(chain_hash(entry))`.
pub(crate) fn leaf_of_record(alg: HashAlgorithm, record: &RecordRef<'_>) -> Result<Digest> {
    let undecodable =
        |detail: String| Error::undecodable(record.seq, record.kind.get(), record.payload, &detail);
    let kind = EntryKind::from_byte(record.kind.get())
        .ok_or_else(|| undecodable("unknown entry kind".into()))?;
    let entry =
        entry::decode_entry(kind, record.payload).map_err(|e| undecodable(e.to_string()))?;
    Ok(entry::leaf_hash(alg, record.seq, &entry))
}

/// The interior table of one epoch's tree over its first `leaf_count` leaves.
struct EpochTable {
    epoch: Epoch,
    first_seq: Seq,
    leaf_count: u64,
    interior: Vec<Digest>,
    /// The frontier, kept while the table can still grow (the open epoch, or one being built).
    growth: Option<CompactRange>,
}

impl EpochTable {
    fn empty(alg: HashAlgorithm, epoch: Epoch, first_seq: Seq) -> EpochTable {
        EpochTable {
            epoch,
            first_seq,
            leaf_count: 0,
            interior: Vec::new(),
            growth: Some(CompactRange::new(alg)),
        }
    }

    /// Appends the leaves of the log's entries up to `leaf_count` leaves.
    fn extend<L: LogStorage>(
        &mut self,
        reads: &LogReads<L>,
        alg: HashAlgorithm,
        leaf_count: u64,
    ) -> Result<()> {
        if leaf_count <= self.leaf_count {
            return Ok(());
        }
        let Some(range) = self.growth.as_mut() else {
            return Err(Error::Damaged {
                seq: Seq(self.first_seq.0 + self.leaf_count),
                detail: "a finished proof table cannot grow".into(),
            });
        };
        let from = Seq(self.first_seq.0 + self.leaf_count);
        let to = Seq(self.first_seq.0 + leaf_count);
        let interior = &mut self.interior;
        let end = reads.scan(from, to, |record| {
            let leaf = leaf_of_record(alg, &record)?;
            range
                .append_visit(&leaf, |level, _, hash| {
                    if level >= PROOF_BASE_LEVEL {
                        interior.push(*hash);
                    }
                })
                .map_err(|e| Error::Damaged {
                    seq: record.seq,
                    detail: e.to_string(),
                })?;
            Ok(ControlFlow::Continue(()))
        })?;
        self.leaf_count = range.size();
        if end < to {
            return Err(Error::Damaged {
                seq: end,
                detail: "the log ends inside the epoch".into(),
            });
        }
        Ok(())
    }
}

/// A [`SubtreeSource`] over one table and the log: lookups at or above the base level, one
/// block of log reads below it.
struct TableSource<'a, L: LogStorage> {
    alg: HashAlgorithm,
    table: &'a EpochTable,
    reads: &'a LogReads<L>,
    blocks: RefCell<VecDeque<(u64, Vec<Digest>)>>,
}

impl<'a, L: LogStorage> TableSource<'a, L> {
    fn new(alg: HashAlgorithm, table: &'a EpochTable, reads: &'a LogReads<L>) -> Self {
        TableSource {
            alg,
            table,
            reads,
            blocks: RefCell::new(VecDeque::with_capacity(BLOCKS_CACHED)),
        }
    }

    /// The leaf hashes of block `block` (at most `2^L`, fewer at the right edge).
    fn block_leaves(&self, block: u64) -> Result<Vec<Digest>> {
        let start = block * LEAF_BLOCK;
        let end = (start + LEAF_BLOCK).min(self.table.leaf_count);
        let mut leaves = Vec::with_capacity(LEAF_BLOCK_USIZE);
        let from = Seq(self.table.first_seq.0 + start);
        let to = Seq(self.table.first_seq.0 + end);
        let stop = self.reads.scan(from, to, |record| {
            leaves.push(leaf_of_record(self.alg, &record)?);
            Ok(ControlFlow::Continue(()))
        })?;
        if stop < to {
            return Err(Error::Damaged {
                seq: stop,
                detail: "the log ends inside the epoch".into(),
            });
        }
        Ok(leaves)
    }

    fn low_subtree(&self, level: u32, index: u64) -> Result<Digest, SourceError> {
        let block = (index << level) >> PROOF_BASE_LEVEL;
        let local = index - (block << (PROOF_BASE_LEVEL - level));
        let mut blocks = self.blocks.borrow_mut();
        if !blocks.iter().any(|(b, _)| *b == block) {
            let leaves = self
                .block_leaves(block)
                .map_err(|e| SourceError::Unavailable {
                    level,
                    index,
                    reason: e.to_string(),
                })?;
            if blocks.len() == BLOCKS_CACHED {
                blocks.pop_front();
            }
            blocks.push_back((block, leaves));
        }
        let leaves = blocks
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, leaves)| leaves.as_slice())
            .unwrap_or_default();
        LeafHashTable::new(self.alg, leaves).subtree_hash(self.alg, level, local)
    }
}

impl<L: LogStorage> SubtreeSource for TableSource<'_, L> {
    fn leaf_count(&self) -> u64 {
        self.table.leaf_count
    }

    fn subtree_hash(
        &self,
        alg: HashAlgorithm,
        level: u32,
        index: u64,
    ) -> Result<Digest, SourceError> {
        let leaf_count = self.table.leaf_count;
        merkle::check_request(self.alg, alg, level, index, leaf_count)?;
        if level < PROOF_BASE_LEVEL {
            return self.low_subtree(level, index);
        }
        merkle::interior_node(&self.table.interior, PROOF_BASE_LEVEL, level, index).ok_or(
            SourceError::OutOfRange {
                level,
                index,
                leaf_count,
            },
        )
    }
}

/// Which epoch a proof is asked in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EpochRef<'a> {
    /// A sealed epoch: its size and root are final and signed.
    Sealed(&'a SealedEpoch),
    /// The open epoch.
    Open {
        /// The epoch.
        epoch: Epoch,
        /// Its first sequence number.
        first_seq: Seq,
    },
}

/// What a proof is asked for, with the root that it must reproduce.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProofRequest {
    /// The inclusion of leaf `leaf_index` in the tree of `tree_size` leaves with root `root`.
    Inclusion {
        /// The leaf's index in its epoch.
        leaf_index: u64,
        /// The checkpoint's tree size.
        tree_size: u64,
        /// The checkpoint's root.
        root: Digest,
    },
    /// The consistency of two trees of one epoch.
    Consistency {
        /// The older tree size.
        old_size: u64,
        /// The older root.
        old_root: Digest,
        /// The newer tree size.
        new_size: u64,
        /// The newer root.
        new_root: Digest,
    },
}

impl ProofRequest {
    fn tree_size(&self) -> u64 {
        match *self {
            ProofRequest::Inclusion { tree_size, .. } => tree_size,
            ProofRequest::Consistency { new_size, .. } => new_size,
        }
    }

    /// Builds the proof's path from `source` and checks it reproduces the request's roots.
    /// Errors name `epoch_start`, the first entry of the epoch whose tree failed.
    fn answer<S: SubtreeSource>(
        &self,
        alg: HashAlgorithm,
        source: &S,
        epoch_start: Seq,
    ) -> Result<Vec<Digest>> {
        let fail = |detail: String| Error::Damaged {
            seq: epoch_start,
            detail: format!("no valid proof from the log: {detail}"),
        };
        match *self {
            ProofRequest::Inclusion {
                leaf_index,
                tree_size,
                root,
            } => {
                let proof = merkle::inclusion_proof(alg, leaf_index, tree_size, source)
                    .map_err(|e| fail(e.to_string()))?;
                let leaf = source
                    .leaf_hash(alg, leaf_index)
                    .map_err(|e| fail(e.to_string()))?;
                merkle::verify_inclusion(alg, leaf_index, tree_size, &leaf, proof.path(), &root)
                    .map_err(|e| fail(e.to_string()))?;
                Ok(proof.into_path())
            }
            ProofRequest::Consistency {
                old_size,
                old_root,
                new_size,
                new_root,
            } => {
                if old_size == new_size {
                    return Ok(Vec::new());
                }
                let proof = merkle::consistency_proof(alg, old_size, new_size, source)
                    .map_err(|e| fail(e.to_string()))?;
                merkle::verify_consistency(
                    alg,
                    old_size,
                    new_size,
                    &old_root,
                    &new_root,
                    proof.path(),
                )
                .map_err(|e| fail(e.to_string()))?;
                Ok(proof.into_path())
            }
        }
    }
}

/// Whether proof tables may write their files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableFiles {
    /// Read existing files and write new ones (the store's writer).
    ReadWrite,
    /// Read existing files only; tables built here stay in memory (a read-only opener, which
    /// writes nothing to the store).
    ReadOnly,
}

/// The proof tables of one store: the open epoch's in memory, sealed ones on disk with a few
/// cached in memory.
pub(crate) struct ProofTables {
    dir: PathBuf,
    files: TableFiles,
    alg: HashAlgorithm,
    open: Mutex<Option<EpochTable>>,
    sealed: Mutex<VecDeque<Arc<EpochTable>>>,
}

impl ProofTables {
    pub(crate) fn new(data_dir: &Path, alg: HashAlgorithm, files: TableFiles) -> ProofTables {
        ProofTables {
            dir: data_dir.join(PROOF_DIR),
            files,
            alg,
            open: Mutex::new(None),
            sealed: Mutex::new(VecDeque::with_capacity(SEALED_TABLES_CACHED)),
        }
    }

    /// The audit path `request` asks for in `epoch`, checked against the request's roots.
    ///
    /// # Errors
    /// [`Error::Damaged`] when the log does not reproduce the signed root; [`Error::Wal`].
    pub(crate) fn prove<L: LogStorage>(
        &self,
        reads: &LogReads<L>,
        epoch: EpochRef<'_>,
        request: &ProofRequest,
    ) -> Result<Vec<Digest>> {
        match epoch {
            EpochRef::Sealed(sealed) => self.prove_sealed(reads, sealed, request),
            EpochRef::Open { epoch, first_seq } => {
                self.prove_open(reads, epoch, first_seq, request)
            }
        }
    }

    fn prove_open<L: LogStorage>(
        &self,
        reads: &LogReads<L>,
        epoch: Epoch,
        first_seq: Seq,
        request: &ProofRequest,
    ) -> Result<Vec<Digest>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if !open
            .as_ref()
            .is_some_and(|t| t.epoch == epoch && t.first_seq == first_seq)
        {
            *open = None;
        }
        let table = open.get_or_insert_with(|| EpochTable::empty(self.alg, epoch, first_seq));
        table.extend(reads, self.alg, request.tree_size())?;
        let source = TableSource::new(self.alg, table, reads);
        if let Ok(path) = request.answer(self.alg, &source, first_seq) {
            return Ok(path);
        }
        // Rebuild once from the log before blaming it.
        let table = open.insert(EpochTable::empty(self.alg, epoch, first_seq));
        table.extend(reads, self.alg, request.tree_size())?;
        request.answer(
            self.alg,
            &TableSource::new(self.alg, table, reads),
            first_seq,
        )
    }

    fn prove_sealed<L: LogStorage>(
        &self,
        reads: &LogReads<L>,
        sealed: &SealedEpoch,
        request: &ProofRequest,
    ) -> Result<Vec<Digest>> {
        let table = self.sealed_table(reads, sealed, TableOrigin::Anywhere)?;
        let source = TableSource::new(self.alg, &table, reads);
        if let Ok(path) = request.answer(self.alg, &source, sealed.first_seq) {
            return Ok(path);
        }
        self.forget(sealed.epoch);
        let table = self.sealed_table(reads, sealed, TableOrigin::Log)?;
        request.answer(
            self.alg,
            &TableSource::new(self.alg, &table, reads),
            sealed.first_seq,
        )
    }

    fn forget(&self, epoch: Epoch) {
        self.sealed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|t| t.epoch != epoch);
    }

    /// The table of a sealed epoch: from the cache, its file, or built from the log (and then
    /// written to its file).
    fn sealed_table<L: LogStorage>(
        &self,
        reads: &LogReads<L>,
        sealed: &SealedEpoch,
        origin: TableOrigin,
    ) -> Result<Arc<EpochTable>> {
        if origin == TableOrigin::Anywhere {
            if let Some(hit) = self.cached(sealed.epoch) {
                return Ok(hit);
            }
            if let Some(table) = self.load(reads, sealed) {
                return Ok(self.remember(table));
            }
        }
        let table = self.build_sealed(reads, sealed)?;
        if self.files == TableFiles::ReadWrite {
            // The file is a cache: failing to write it costs a rebuild later, not correctness.
            let _ = self.store(sealed, &table);
        }
        Ok(self.remember(table))
    }

    fn cached(&self, epoch: Epoch) -> Option<Arc<EpochTable>> {
        let mut cache = self.sealed.lock().unwrap_or_else(PoisonError::into_inner);
        let at = cache.iter().position(|t| t.epoch == epoch)?;
        let hit = cache.remove(at)?;
        cache.push_back(Arc::clone(&hit));
        Some(hit)
    }

    fn remember(&self, table: EpochTable) -> Arc<EpochTable> {
        let table = Arc::new(table);
        let mut cache = self.sealed.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|t| t.epoch != table.epoch);
        if cache.len() == SEALED_TABLES_CACHED {
            cache.pop_front();
        }
        cache.push_back(Arc::clone(&table));
        table
    }

    /// Builds a sealed epoch's table from the log, reusing the open epoch's table when it is
    /// the same epoch (it was open until the seal), and checks its root against the seal.
    fn build_sealed<L: LogStorage>(
        &self,
        reads: &LogReads<L>,
        sealed: &SealedEpoch,
    ) -> Result<EpochTable> {
        let reusable = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.take_if(|t| t.epoch == sealed.epoch && t.first_seq == sealed.first_seq)
        };
        let mut table =
            reusable.unwrap_or_else(|| EpochTable::empty(self.alg, sealed.epoch, sealed.first_seq));
        table.extend(reads, self.alg, sealed.entries)?;
        table.growth = None;
        self.check_root(reads, &table, sealed)?;
        Ok(table)
    }

    fn check_root<L: LogStorage>(
        &self,
        reads: &LogReads<L>,
        table: &EpochTable,
        sealed: &SealedEpoch,
    ) -> Result<()> {
        let source = TableSource::new(self.alg, table, reads);
        let root =
            merkle::tree_root(self.alg, sealed.entries, &source).map_err(|e| Error::Damaged {
                seq: sealed.first_seq,
                detail: e.to_string(),
            })?;
        if root != sealed.root {
            return Err(Error::Damaged {
                seq: sealed.seal_seq,
                detail: format!(
                    "the entries of epoch {} do not hash to the root their seal signs",
                    sealed.epoch
                ),
            });
        }
        Ok(())
    }

    fn path_of(&self, epoch: Epoch) -> PathBuf {
        self.dir.join(format!("epoch-{:016}.nodes", epoch.0))
    }

    /// Loads and checks a sealed epoch's table file; `None` when it is missing or fails a
    /// check (the caller rebuilds it).
    fn load<L: LogStorage>(&self, reads: &LogReads<L>, sealed: &SealedEpoch) -> Option<EpochTable> {
        let bytes = fs::read(self.path_of(sealed.epoch)).ok()?;
        let table = decode_table(self.alg, sealed, &bytes)?;
        self.check_root(reads, &table, sealed).ok()?;
        Some(table)
    }

    fn store(&self, sealed: &SealedEpoch, table: &EpochTable) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let path = self.path_of(sealed.epoch);
        let temp = path.with_extension("nodes.tmp");
        let mut file = fs::File::create(&temp)?;
        file.write_all(&encode_table(self.alg, sealed, table))?;
        drop(file);
        fs::rename(&temp, &path)
    }
}

/// Where [`ProofTables::sealed_table`] may take a table from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableOrigin {
    /// The cache, the file, or the log.
    Anywhere,
    /// The log only (the others failed a check).
    Log,
}

fn body_checksum(body: &[u8]) -> Digest {
    *blake3::Hasher::new_derive_key(TABLE_BODY_CONTEXT)
        .update(body)
        .finalize()
        .as_bytes()
}

fn encode_table(alg: HashAlgorithm, sealed: &SealedEpoch, table: &EpochTable) -> Vec<u8> {
    let body: Vec<u8> = table.interior.iter().flatten().copied().collect();
    let mut out = Vec::with_capacity(FILE_HEADER_BYTES + body.len());
    out.extend_from_slice(&FILE_MAGIC);
    out.push(FILE_VERSION);
    out.push(alg as u8);
    out.push(BASE_LEVEL_BYTE);
    out.extend_from_slice(&[0; 5]);
    out.extend_from_slice(&sealed.epoch.0.to_le_bytes());
    out.extend_from_slice(&sealed.first_seq.0.to_le_bytes());
    out.extend_from_slice(&sealed.entries.to_le_bytes());
    out.extend_from_slice(&sealed.root);
    out.extend_from_slice(&body_checksum(&body));
    out.extend_from_slice(&body);
    out
}

/// Decodes a table file written for `sealed`; `None` when any field disagrees.
fn decode_table(alg: HashAlgorithm, sealed: &SealedEpoch, bytes: &[u8]) -> Option<EpochTable> {
    let (header, body) = bytes.split_at_checked(FILE_HEADER_BYTES)?;
    let u64_at = |at: usize| {
        header
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let expected_nodes = merkle::interior_len(sealed.entries, PROOF_BASE_LEVEL)?;
    let fits = header.get(..8)? == FILE_MAGIC
        && header.get(8..11)? == [FILE_VERSION, alg as u8, BASE_LEVEL_BYTE]
        && header.get(11..16)? == [0; 5]
        && u64_at(16)? == sealed.epoch.0
        && u64_at(24)? == sealed.first_seq.0
        && u64_at(32)? == sealed.entries
        && header.get(40..72)? == sealed.root
        && header.get(72..104)? == body_checksum(body)
        && body.len() as u64 == expected_nodes.checked_mul(32)?;
    if !fits {
        return None;
    }
    let interior = merkle::digests_from_bytes(body).ok()?.to_vec();
    Some(EpochTable {
        epoch: sealed.epoch,
        first_seq: sealed.first_seq,
        leaf_count: sealed.entries,
        interior,
        growth: None,
    })
}
