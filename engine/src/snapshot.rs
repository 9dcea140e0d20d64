//! The open snapshot: the writer's chain state and event filter as of one durable entry, so
//! that opening replays only the entries after it instead of the whole log.
//!
//! The file (`open.snapshot` in the data directory, byte layout in `docs/design.md`, "Open
//! snapshot") is written by the writer thread at epoch seals, every
//! [`crate::DbOptions::snapshot_every_entries`] entries and on a clean close: to a temporary
//! file, synced, renamed over the old one, directory synced. Opening uses it only when its
//! checksum, version and store match and the log holds, at its sequence number, an entry with
//! the chain hash it records; anything else falls back to a full replay (never an error), and
//! [`crate::Db::open_snapshot`] says which happened. `verify` never reads it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::crypto::KeyId;
use crate::merkle::{CompactRange, Digest};
use crate::position::Epoch;
use crate::replay::{ChainState, Genesis, SealedEpoch, hex, unhex32};
use crate::seen::SeenEvents;
use crate::shred::{ReplayedShred, ShredScope};
use crate::wal::{HashAlgorithm, Seq};

/// The snapshot's file name in the data directory.
pub const SNAPSHOT_FILE: &str = "open.snapshot";
/// The temporary file a snapshot is written to before the rename.
pub const SNAPSHOT_TEMP_FILE: &str = "open.snapshot.tmp";
/// The file's first bytes.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"TMXOSNAP";
/// The format version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 2;
/// Bytes before the state: magic, version, seq, chain hash, state length.
const HEADER_BYTES: usize = 8 + 4 + 8 + 32 + 8;
/// The trailing checksum (BLAKE3 of every byte before it).
const CHECKSUM_BYTES: usize = 32;

/// Why a snapshot file was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The file could not be read.
    #[error("reading {path}: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        detail: String,
    },
    /// The bytes are not a snapshot this build reads (length, magic, checksum, version,
    /// fields); `what` says which.
    #[error("not a usable snapshot: {what}")]
    Malformed {
        /// What is wrong.
        what: String,
    },
    /// The snapshot belongs to another store or hash algorithm.
    #[error("written for store {found}, this store is {expected}")]
    Foreign {
        /// Store id and algorithm of this store.
        expected: String,
        /// Those the snapshot records.
        found: String,
    },
    /// The snapshot covers an entry the log does not hold (a torn or rolled-back tail).
    #[error("covers seq {seq} but the log ends before it (at {log_end})")]
    BeyondLogEnd {
        /// The entry the snapshot covers.
        seq: Seq,
        /// One past the log's last entry.
        log_end: Seq,
    },
    /// The log's entry at the snapshot's seq has another chain hash (a stale or foreign
    /// snapshot, or a rewritten log).
    #[error("the log's entry at seq {seq} does not have the chain hash the snapshot records")]
    ChainHashDiffers {
        /// The entry the snapshot covers.
        seq: Seq,
    },
    /// The store was pruned or archived: its retained state is not covered by snapshots.
    #[error("the store was pruned or archived (not covered by open snapshots)")]
    Pruned,
    /// The entries after the snapshot did not replay on top of it.
    #[error("the entries after it do not replay on top of it: {detail}")]
    TailReplay {
        /// The damage or error found.
        detail: String,
    },
}

/// What opening did with the snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenSnapshot {
    /// No snapshot file: the whole log was replayed.
    Absent,
    /// The snapshot covered entries up to `seq`; only the `replayed` entries after it were
    /// replayed.
    Used {
        /// The last entry the snapshot covered.
        seq: Seq,
        /// Entries replayed after it.
        replayed: u64,
        /// The file's size.
        bytes: u64,
    },
    /// The snapshot was ignored (why is in `reason`) and the whole log was replayed.
    Ignored {
        /// Why.
        reason: SnapshotError,
    },
}

/// A sealed epoch as the snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SealedRecord {
    epoch: u64,
    first_seq: u64,
    entries: u64,
    root: String,
    seal_seq: u64,
}

/// A replayed shred record as the snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ShredState {
    seq: u64,
    scope: ShredScope,
    tenant: String,
    subject: Option<String>,
    key_ids: Vec<u64>,
}

/// A legal hold in force as the snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct HoldState {
    tenant: String,
    subject: Option<String>,
    seq: u64,
    request_id: String,
}

/// The chain state a snapshot records (the JSON part of the file; fields in `docs/design.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateRecord {
    store_id: String,
    hash_algorithm: String,
    epoch: u64,
    epoch_first_seq: u64,
    tree: String,
    tenant_tips: Vec<(String, u64, String)>,
    last_seal: String,
    sealed: Vec<SealedRecord>,
    genesis: Genesis,
    last_logged_at_ns: u64,
    last_checkpoint_size: u64,
    last_checkpoint: Option<(u64, String)>,
    receipts: u64,
    checkpoints: u64,
    shreds: Vec<ShredState>,
    holds: Vec<HoldState>,
    key_id_max: Option<u64>,
}

/// A decoded snapshot file.
#[derive(Debug)]
pub struct Snapshot {
    /// The last entry it covers.
    pub seq: Seq,
    /// That entry's chain hash.
    pub chain_hash: Digest,
    state: StateRecord,
    filter: Vec<u8>,
}

fn malformed(what: impl Into<String>) -> SnapshotError {
    SnapshotError::Malformed { what: what.into() }
}

fn digest(text: &str, field: &str) -> Result<Digest, SnapshotError> {
    unhex32(text).ok_or_else(|| malformed(format!("{field} is not a 32-byte hex digest")))
}

impl Snapshot {
    /// Whether snapshots cover a store in `state`: not once it was pruned or archived (its
    /// retained state is more than a snapshot holds; opening replays the log instead).
    #[must_use]
    pub fn covers(state: &ChainState) -> bool {
        state.pruned.is_none()
            && state.last_prune.is_none()
            && state.archives.is_empty()
            && state.archived_end == Seq(0)
    }

    /// The snapshot of `state` (whose last entry is durable), or `None` when the state is one
    /// snapshots do not cover (nothing written yet, pruned or archived, no event filter).
    #[must_use]
    pub fn of_state(state: &ChainState, store_id: &str) -> Option<Snapshot> {
        let covered = Snapshot::covers(state);
        let (Some(genesis), Some(seen), Some(seq)) = (
            state.genesis.clone(),
            state.seen.as_ref(),
            state.next_seq.0.checked_sub(1),
        ) else {
            return None;
        };
        if !covered {
            return None;
        }
        let mut tenant_tips: Vec<(String, u64, String)> = state
            .tenant_tips
            .iter()
            .map(|(tenant, (seq, hash))| (tenant.clone(), seq.0, hex(hash)))
            .collect();
        tenant_tips.sort();
        let record = StateRecord {
            store_id: store_id.to_owned(),
            hash_algorithm: state.alg.to_string(),
            epoch: state.epoch.0,
            epoch_first_seq: state.epoch_first_seq.0,
            tree: hex(&state.tree.to_bytes()),
            tenant_tips,
            last_seal: hex(&state.last_seal),
            sealed: state.sealed.iter().map(sealed_record).collect(),
            genesis,
            last_logged_at_ns: state.last_logged_at_ns,
            last_checkpoint_size: state.last_checkpoint_size,
            last_checkpoint: state
                .last_checkpoint
                .as_ref()
                .map(|(s, n)| (s.0, n.clone())),
            receipts: state.receipts,
            checkpoints: state.checkpoints,
            shreds: state.shreds.iter().map(shred_state).collect(),
            holds: state
                .holds
                .iter()
                .map(|((tenant, subject), (seq, request_id))| HoldState {
                    tenant: tenant.clone(),
                    subject: subject.clone(),
                    seq: seq.0,
                    request_id: request_id.clone(),
                })
                .collect(),
            key_id_max: state.key_id_max.map(|k| k.0),
        };
        Some(Snapshot {
            seq: Seq(seq),
            chain_hash: state.last_hash,
            state: record,
            filter: seen.to_bytes(),
        })
    }

    /// Receipts in the log up to [`Snapshot::seq`].
    #[must_use]
    pub fn receipts(&self) -> u64 {
        self.state.receipts
    }

    /// The event filter it records (`None` when its bytes do not decode).
    #[must_use]
    pub fn event_filter(&self) -> Option<SeenEvents> {
        SeenEvents::from_bytes(&self.filter)
    }

    /// The file's bytes (layout in `docs/design.md`, "Open snapshot").
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        // Plain data with string keys: serialising it cannot fail.
        let state = serde_json::to_vec(&self.state).unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER_BYTES + state.len() + 8 + self.filter.len() + 32);
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.seq.0.to_le_bytes());
        out.extend_from_slice(&self.chain_hash);
        out.extend_from_slice(&(state.len() as u64).to_le_bytes());
        out.extend_from_slice(&state);
        out.extend_from_slice(&(self.filter.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.filter);
        let checksum = blake3::hash(&out);
        out.extend_from_slice(checksum.as_bytes());
        out
    }

    /// Decodes a snapshot file's bytes, checking length, magic, checksum and version first.
    ///
    /// # Errors
    /// [`SnapshotError::Malformed`] saying what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        if bytes.len() < HEADER_BYTES + 8 + CHECKSUM_BYTES {
            return Err(malformed(format!("{} bytes is too short", bytes.len())));
        }
        let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
        if body[..8] != SNAPSHOT_MAGIC {
            return Err(malformed("wrong magic"));
        }
        if blake3::hash(body).as_bytes() != checksum {
            return Err(malformed("checksum mismatch"));
        }
        let mut input = Cursor(&body[8..]);
        let version = u32::from_le_bytes(input.array()?);
        if version != SNAPSHOT_VERSION {
            return Err(malformed(format!("unknown version {version}")));
        }
        let seq = Seq(u64::from_le_bytes(input.array()?));
        let chain_hash: Digest = input.array()?;
        let state_len = input.len_prefix()?;
        let state: StateRecord = serde_json::from_slice(input.take(state_len)?)
            .map_err(|e| malformed(format!("state: {e}")))?;
        let filter_len = input.len_prefix()?;
        let filter = input.take(filter_len)?.to_vec();
        if !input.0.is_empty() {
            return Err(malformed("bytes after the filter"));
        }
        Ok(Snapshot {
            seq,
            chain_hash,
            state,
            filter,
        })
    }

    /// The chain state and event filter it records, for a store `store_id` under `alg`.
    ///
    /// # Errors
    /// [`SnapshotError::Foreign`] for another store, [`SnapshotError::Malformed`] for fields
    /// that do not decode.
    pub(crate) fn into_state(
        self,
        alg: HashAlgorithm,
        store_id: &str,
    ) -> Result<(ChainState, Arc<SeenEvents>), SnapshotError> {
        let record = self.state;
        if record.store_id != store_id || record.hash_algorithm != alg.to_string() {
            return Err(SnapshotError::Foreign {
                expected: format!("{store_id} ({alg})"),
                found: format!("{} ({})", record.store_id, record.hash_algorithm),
            });
        }
        let seen = Arc::new(
            SeenEvents::from_bytes(&self.filter).ok_or_else(|| malformed("event filter"))?,
        );
        let tree_bytes =
            crate::prune::unhex(&record.tree).ok_or_else(|| malformed("tree is not hex"))?;
        let tree =
            CompactRange::from_bytes(&tree_bytes).map_err(|e| malformed(format!("tree: {e}")))?;
        if tree.algorithm() != alg {
            return Err(malformed("tree hash algorithm"));
        }
        let verifier = crate::note::NoteVerifier::from_vkey(&record.genesis.verifier_key)
            .map_err(|e| malformed(format!("verifier key: {e}")))?;
        let mut state = ChainState::new(alg);
        state.next_seq = self.seq.next();
        state.last_hash = self.chain_hash;
        state.epoch = Epoch(record.epoch);
        state.epoch_first_seq = Seq(record.epoch_first_seq);
        state.tree = tree;
        state.tenant_tips = tenant_tips(&record.tenant_tips)?;
        state.last_seal = digest(&record.last_seal, "last_seal")?;
        state.sealed = record
            .sealed
            .iter()
            .map(sealed_epoch)
            .collect::<Result<_, _>>()?;
        state.genesis = Some(record.genesis);
        state.verifier = Some(verifier);
        state.last_logged_at_ns = record.last_logged_at_ns;
        state.last_checkpoint_size = record.last_checkpoint_size;
        state.last_checkpoint = record.last_checkpoint.map(|(s, n)| (Seq(s), n));
        state.receipts = record.receipts;
        state.checkpoints = record.checkpoints;
        state.shreds = record.shreds.into_iter().map(replayed_shred).collect();
        state.holds = record
            .holds
            .into_iter()
            .map(|h| ((h.tenant, h.subject), (Seq(h.seq), h.request_id)))
            .collect();
        state.key_id_max = record.key_id_max.map(KeyId);
        state.seen = Some(Arc::clone(&seen));
        Ok((state, seen))
    }
}

fn sealed_record(sealed: &SealedEpoch) -> SealedRecord {
    SealedRecord {
        epoch: sealed.epoch.0,
        first_seq: sealed.first_seq.0,
        entries: sealed.entries,
        root: hex(&sealed.root),
        seal_seq: sealed.seal_seq.0,
    }
}

fn sealed_epoch(record: &SealedRecord) -> Result<SealedEpoch, SnapshotError> {
    Ok(SealedEpoch {
        epoch: Epoch(record.epoch),
        first_seq: Seq(record.first_seq),
        entries: record.entries,
        root: digest(&record.root, "sealed root")?,
        seal_seq: Seq(record.seal_seq),
    })
}

fn shred_state(shred: &ReplayedShred) -> ShredState {
    ShredState {
        seq: shred.seq,
        scope: shred.scope,
        tenant: shred.tenant.clone(),
        subject: shred.subject.clone(),
        key_ids: shred.key_ids.iter().map(|k| k.0).collect(),
    }
}

fn replayed_shred(shred: ShredState) -> ReplayedShred {
    ReplayedShred {
        seq: shred.seq,
        scope: shred.scope,
        tenant: shred.tenant,
        subject: shred.subject,
        key_ids: shred.key_ids.into_iter().map(KeyId).collect(),
    }
}

fn tenant_tips(tips: &[(String, u64, String)]) -> Result<crate::replay::TenantTips, SnapshotError> {
    tips.iter()
        .map(|(tenant, seq, hash)| Ok((tenant.clone(), (Seq(*seq), digest(hash, "tenant tip")?))))
        .collect()
}

/// A cursor over the bytes being decoded.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], SnapshotError> {
        if self.0.len() < len {
            return Err(malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        self.take(N)?.try_into().map_err(|_| malformed("truncated"))
    }

    fn len_prefix(&mut self) -> Result<usize, SnapshotError> {
        usize::try_from(u64::from_le_bytes(self.array()?)).map_err(|_| malformed("length"))
    }
}

/// Writes `snapshot` to `data_dir` atomically: the temporary file, synced, renamed over
/// [`SNAPSHOT_FILE`], the directory synced. Returns the bytes written.
///
/// # Errors
/// The I/O error; the old snapshot (if any) is then still in place.
pub fn write(data_dir: &Path, snapshot: &Snapshot) -> std::io::Result<u64> {
    let bytes = snapshot.encode();
    let temp = data_dir.join(SNAPSHOT_TEMP_FILE);
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, data_dir.join(SNAPSHOT_FILE))?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(bytes.len() as u64)
}

/// Removes the snapshot in `data_dir`, if any: one written before a prune or archive is
/// never used again (see [`Snapshot::covers`]) and would only take space.
///
/// # Errors
/// The I/O error other than "not found".
pub fn remove(data_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(data_dir.join(SNAPSHOT_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads and decodes the snapshot in `data_dir`: `Ok(None)` when there is none.
///
/// # Errors
/// [`SnapshotError::Read`] or [`SnapshotError::Malformed`].
pub fn read(data_dir: &Path) -> Result<Option<(Snapshot, u64)>, SnapshotError> {
    let path = data_dir.join(SNAPSHOT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some((Snapshot::decode(&bytes)?, bytes.len() as u64))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SnapshotError::Read {
            path,
            detail: e.to_string(),
        }),
    }
}

/// The state and event filter of the open snapshot in `data_dir`, the last seq it covers and
/// its size, when it binds to this log: readable, of this store, covering an entry the log
/// holds (below `log_end`) with the chain hash it records, and the store not pruned (`pruned`:
/// a retained state is more than a snapshot holds). See `docs/design.md`, "Open snapshot".
/// `Ok(None)` when there is none; the error says why it is not used.
pub(crate) fn bind<L: crate::log::LogStorage>(
    reads: &crate::reads::LogReads<L>,
    data_dir: &Path,
    pruned: bool,
    store_id: &str,
    log_end: Seq,
) -> Result<Option<BoundSnapshot>, SnapshotError> {
    let Some((snapshot, bytes)) = read(data_dir)? else {
        return Ok(None);
    };
    if pruned {
        return Err(SnapshotError::Pruned);
    }
    let seq = snapshot.seq;
    if seq >= log_end {
        return Err(SnapshotError::BeyondLogEnd { seq, log_end });
    }
    let (_, alg) = reads.identity();
    let logged = reads
        .visit(seq, |record| {
            let kind = crate::entry::EntryKind::from_byte(record.kind.get())?;
            let entry = crate::entry::decode_entry(kind, record.payload).ok()?;
            Some(entry.chain_hash(alg, seq))
        })
        .ok()
        .flatten();
    if logged != Some(snapshot.chain_hash) {
        return Err(SnapshotError::ChainHashDiffers { seq });
    }
    let (state, seen) = snapshot.into_state(alg, store_id)?;
    Ok(Some(BoundSnapshot {
        state,
        seen,
        seq,
        bytes,
    }))
}

/// An open snapshot that binds to the log: its state and event filter, the last seq it covers
/// and the file's size.
pub(crate) struct BoundSnapshot {
    pub state: ChainState,
    pub seen: Arc<SeenEvents>,
    pub seq: Seq,
    pub bytes: u64,
}
