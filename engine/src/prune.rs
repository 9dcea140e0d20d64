//! Pruning: [`Db::prune`] drops whole sealed epochs whose every receipt has expired under the
//! store's retention policy, keeping what later verification needs.
//!
//! The protocol (see `docs/design.md`, "Pruning"), run by the writer thread so that it is
//! ordered with appends, holds and shreds:
//!
//! 1. (caller) shred expired keys first ([`Db::expire`]), then pick the longest run of the
//!    oldest sealed epochs whose every receipt has expired and no hold covers, ending where a
//!    segment file ends;
//! 2. write each pruned epoch's retained file (`pruned/epoch-N.leaves`: seal entry and leaf
//!    hashes) and the new manifest as `pruned/manifest.pending`, all synced;
//! 3. append a signed prune record naming the manifest's digest and sync the log — the commit
//!    point;
//! 4. rename the pending manifest into place and sync the directory;
//! 5. delete the segment files below the new horizon, oldest first, and sync the log
//!    directory.
//!
//! Opening a store finishes a prune whose record is durable (steps 4 and 5) and discards one
//! whose record is not (the pending manifest and unnamed epoch files).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::crypto::KeyId;
use crate::db::Db;
use crate::entry::{self, EntryKind, EntryRef};
use crate::error::{Error, Result};
use crate::keys::{sync_dir, write_synced};
use crate::log::LogStorage;
use crate::merkle::{CompactRange, Digest};
use crate::note::{Checkpoint, NoteVerifier};
use crate::position::Epoch;
use crate::receipt::ReceiptHeader;
use crate::replay::{
    ChainState, Damage, DamageKind, Genesis, SealFields, SealedEpoch, hex, seal_digest, unhex32,
};
use crate::retention::{HoldSet, blocking_hold};
use crate::shred::{REQUEST_ID_BYTES_MAX, ShredScope};
use crate::wal::{HashAlgorithm, Seq, Storage};
use crate::writer::{Control, Writer};

/// Directory of the retained state, inside the data directory.
pub const PRUNED_DIR: &str = "pruned";
/// The manifest of the retained state.
pub const MANIFEST_FILE: &str = "manifest";
/// A manifest written by a prune whose record may not be durable yet.
pub const MANIFEST_PENDING_FILE: &str = "manifest.pending";
/// Domain-separation context of the retained files' checksums.
pub const RETAINED_CONTEXT: &str = "trailmix-db 2026-11-23 pruned retained state v1";
/// Magic of an epoch's retained file.
pub const LEAVES_MAGIC: [u8; 8] = *b"TMLEAVS1";
/// Magic of the manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"TMPRUNE1";
/// Bytes of an epoch file before the seal entry.
const LEAVES_HEADER_BYTES: usize = 8 + 8 + 8 + 8 + 4;

/// Why a prune was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PruneError {
    /// The request id is empty or too long.
    #[error("the request id must be 1 to {REQUEST_ID_BYTES_MAX} bytes")]
    BadRequestId,
    /// `now` lies ahead of the writer's clock: nothing may be pruned for a future time.
    #[error("now ({now_ns} ns) is ahead of the store's clock ({clock_ns} ns)")]
    FutureTime {
        /// The requested time.
        now_ns: u64,
        /// The writer's clock.
        clock_ns: u64,
    },
    /// Another prune moved the horizon since this one was planned.
    #[error("the store was pruned meanwhile (horizon {found}, planned from {planned}); retry")]
    Raced {
        /// The horizon found.
        found: Seq,
        /// The horizon the plan started from.
        planned: Seq,
    },
    /// A legal hold placed after planning covers a receipt of the range.
    #[error("a legal hold on tenant {tenant} (subject {subject:?}) covers receipts of the range")]
    Held {
        /// The tenant.
        tenant: String,
        /// The subject (`None`: the whole tenant).
        subject: Option<String>,
    },
    /// A retained file could not be read or does not match its checksum.
    #[error("retained state {}: {detail}", path.display())]
    Retained {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// Whether [`Db::prune`] only reports what it would drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneMode {
    /// Shred expired keys, then drop the epochs.
    Apply,
    /// Report what would be dropped; change nothing (no shred either).
    DryRun,
}

/// Why pruning stopped before a later epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneStop {
    /// A receipt of the epoch has not expired (or has no class the policy names).
    NotExpired {
        /// The epoch.
        epoch: Epoch,
        /// The receipt.
        seq: Seq,
        /// Its retention class (`None`: it has none).
        class: Option<String>,
        /// When it expires under the policy (`None`: never, as its class is missing or not
        /// in the policy).
        expires_ns: Option<u64>,
    },
    /// A legal hold covers a receipt of the epoch.
    Held {
        /// The epoch.
        epoch: Epoch,
        /// The receipt.
        seq: Seq,
        /// The tenant held.
        tenant: String,
    },
    /// The epoch shares a segment file with a later epoch that cannot be pruned.
    SharedSegment {
        /// The epoch.
        epoch: Epoch,
    },
    /// The epoch is not archived yet ([`Db::prune_archived`] drops archived epochs only).
    NotArchived {
        /// The epoch.
        epoch: Epoch,
    },
    /// Every sealed epoch is pruned; the open epoch never is.
    OpenEpoch,
}

/// Which epochs a prune may drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PruneBasis {
    /// Epochs whose every receipt has expired under the retention policy, and not held.
    Retention,
    /// Epochs archived to object storage and verified there (see [`crate::archive`]).
    Archived,
}

/// What [`Db::prune`] did (or would do, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// First sequence number kept before this prune.
    pub from_seq: Seq,
    /// First sequence number kept after it (the new horizon).
    pub horizon: Seq,
    /// Epochs dropped by this prune, oldest first.
    pub epochs: Vec<Epoch>,
    /// Receipts among the dropped entries.
    pub receipts: u64,
    /// Segment files deleted.
    pub segments_removed: Vec<String>,
    /// Sequence number of the prune record (`None`: nothing pruned, or a dry run).
    pub record_seq: Option<Seq>,
    /// Data keys shredded by the expiry that runs first.
    pub keys_shredded: usize,
    /// Why no later epoch was dropped.
    pub stopped: PruneStop,
}

/// The payload of a prune entry (kind 7): JSON, signed with the store's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRecord {
    /// Format of this record (1).
    pub format: u32,
    /// First sequence number kept before this prune.
    pub from_seq: u64,
    /// First sequence number kept after it.
    pub horizon: u64,
    /// First epoch dropped by this prune.
    pub first_epoch: u64,
    /// Last epoch dropped by this prune.
    pub last_epoch: u64,
    /// Receipts dropped.
    pub receipts: u64,
    /// The time the policy was applied at (ns since the Unix epoch).
    pub now_ns: u64,
    /// The retention policy applied: class → nanoseconds kept.
    pub policy: BTreeMap<String, u64>,
    /// The caller's request id.
    pub request_id: String,
    /// Hex digest of the manifest file written by this prune (the retained state).
    pub retained: String,
    /// Set when the epochs were dropped because they are archived ([`Db::prune_archived`])
    /// rather than expired: the archived end (one past the last archived seq) at the time.
    /// Absent from records of retention prunes (and from records written before archiving
    /// existed), so their bytes are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_end: Option<u64>,
}

/// One pruned epoch as retained: its seal entry and its leaf hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunedEpoch {
    /// The epoch.
    pub epoch: Epoch,
    /// Its first sequence number.
    pub first_seq: Seq,
    /// The seal entry's bytes (as in the log record).
    pub seal_entry: Vec<u8>,
    /// The leaf hash of every entry of the epoch, in order.
    pub leaves: Vec<Digest>,
}

impl PrunedEpoch {
    /// Sequence number of its seal.
    #[must_use]
    pub fn seal_seq(&self) -> Seq {
        Seq(self.first_seq.0 + self.leaves.len() as u64)
    }

    /// File name of its retained file.
    #[must_use]
    pub fn file_name(epoch: Epoch) -> String {
        format!("epoch-{:020}.leaves", epoch.0)
    }

    fn encode(&self, alg: HashAlgorithm) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            LEAVES_HEADER_BYTES + self.seal_entry.len() + 32 * self.leaves.len() + 32,
        );
        out.extend_from_slice(&LEAVES_MAGIC);
        out.extend_from_slice(&self.epoch.0.to_le_bytes());
        out.extend_from_slice(&self.first_seq.0.to_le_bytes());
        out.extend_from_slice(&(self.leaves.len() as u64).to_le_bytes());
        let seal_len = u32::try_from(self.seal_entry.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&seal_len.to_le_bytes());
        out.extend_from_slice(&self.seal_entry);
        for leaf in &self.leaves {
            out.extend_from_slice(leaf);
        }
        let sum = entry::hash_with_context(alg, RETAINED_CONTEXT, &[&out]);
        out.extend_from_slice(&sum);
        out
    }

    fn decode(alg: HashAlgorithm, bytes: &[u8]) -> std::result::Result<PrunedEpoch, String> {
        let body = checked_body(alg, bytes, LEAVES_MAGIC)?;
        if body.len() < LEAVES_HEADER_BYTES {
            return Err("shorter than its header".into());
        }
        let u64_at = |at: usize| crate::wal::format::u64_at(body, at);
        let epoch = Epoch(u64_at(8));
        let first_seq = Seq(u64_at(16));
        let entries = usize::try_from(u64_at(24)).map_err(|_| "entry count too large")?;
        let seal_len = crate::wal::format::u32_at(body, 32) as usize;
        let leaves_at = LEAVES_HEADER_BYTES + seal_len;
        if Some(body.len())
            != entries
                .checked_mul(32)
                .and_then(|n| n.checked_add(leaves_at))
        {
            return Err("its length does not match the counts it states".into());
        }
        let leaves = body[leaves_at..]
            .chunks_exact(32)
            .map(|c| c.try_into().unwrap_or([0; 32]))
            .collect();
        Ok(PrunedEpoch {
            epoch,
            first_seq,
            seal_entry: body[LEAVES_HEADER_BYTES..leaves_at].to_vec(),
            leaves,
        })
    }
}

/// The body of a file that ends in a checksum over everything before it, after `magic`.
fn checked_body(
    alg: HashAlgorithm,
    bytes: &[u8],
    magic: [u8; 8],
) -> std::result::Result<&[u8], String> {
    let Some((body, sum)) = bytes.split_last_chunk::<32>() else {
        return Err("shorter than its checksum".into());
    };
    if !body.starts_with(&magic) {
        return Err("does not start with its magic".into());
    }
    if entry::hash_with_context(alg, RETAINED_CONTEXT, &[body]) != *sum {
        return Err("checksum mismatch (the file was changed or torn)".into());
    }
    Ok(body)
}

/// A retained epoch as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEpoch {
    epoch: u64,
    first_seq: u64,
    entries: u64,
    /// Hex digest of the epoch file (its trailing checksum).
    file: String,
}

/// A hold in force at the horizon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestHold {
    tenant: String,
    subject: Option<String>,
    seq: u64,
    request_id: String,
}

/// The manifest's JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestBody {
    format: u32,
    horizon: u64,
    epochs: Vec<ManifestEpoch>,
    /// The genesis entry's bytes, hex (the store identity and verifier key).
    genesis_entry: String,
    /// Each tenant's last receipt below the horizon: seq and chain hash (hex).
    tenant_tips: BTreeMap<String, (u64, String)>,
    holds: Vec<ManifestHold>,
    key_id_max: Option<u64>,
}

/// The retained state of a pruned store: everything replay and verify need in place of the
/// dropped entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    /// Digest of the manifest file (what the prune record names).
    pub manifest_digest: Digest,
    /// First sequence number kept.
    pub horizon: Seq,
    /// The pruned epochs, oldest first.
    pub epochs: Vec<PrunedEpoch>,
    /// The genesis entry's bytes.
    pub genesis_entry: Vec<u8>,
    /// Each tenant's last receipt below the horizon.
    pub tenant_tips: BTreeMap<String, (Seq, Digest)>,
    /// Holds in force at the horizon.
    pub holds: HoldSet,
    /// The largest data key id a pruned receipt named.
    pub key_id_max: Option<KeyId>,
}

impl Retained {
    /// The genesis record the retained genesis entry carries (`None` when it does not decode:
    /// verify reports that).
    #[must_use]
    pub fn genesis(&self) -> Option<Genesis> {
        let entry = entry::decode_entry(EntryKind::Genesis, &self.genesis_entry).ok()?;
        serde_json::from_slice(entry.payload).ok()
    }

    /// The pruned epoch holding `seq`, if any.
    #[must_use]
    pub fn epoch_of(&self, seq: Seq) -> Option<&PrunedEpoch> {
        let at = self.epochs.partition_point(|e| e.first_seq <= seq);
        self.epochs
            .get(at.checked_sub(1)?)
            .filter(|e| seq <= e.seal_seq())
    }

    /// The manifest file's bytes.
    fn encode_manifest(&self, alg: HashAlgorithm) -> Vec<u8> {
        let body = ManifestBody {
            format: 1,
            horizon: self.horizon.0,
            epochs: self
                .epochs
                .iter()
                .map(|e| ManifestEpoch {
                    epoch: e.epoch.0,
                    first_seq: e.first_seq.0,
                    entries: e.leaves.len() as u64,
                    file: hex(&file_sum(&e.encode(alg))),
                })
                .collect(),
            genesis_entry: hex(&self.genesis_entry),
            tenant_tips: self
                .tenant_tips
                .iter()
                .map(|(t, (s, h))| (t.clone(), (s.0, hex(h))))
                .collect(),
            holds: self
                .holds
                .iter()
                .map(|((tenant, subject), (seq, request_id))| ManifestHold {
                    tenant: tenant.clone(),
                    subject: subject.clone(),
                    seq: seq.0,
                    request_id: request_id.clone(),
                })
                .collect(),
            key_id_max: self.key_id_max.map(|k| k.0),
        };
        let mut out = MANIFEST_MAGIC.to_vec();
        // Serializing plain strings and numbers cannot fail.
        out.extend_from_slice(&serde_json::to_vec(&body).unwrap_or_default());
        let sum = entry::hash_with_context(alg, RETAINED_CONTEXT, &[&out]);
        out.extend_from_slice(&sum);
        out
    }
}

fn file_sum(bytes: &[u8]) -> Digest {
    bytes.last_chunk::<32>().copied().unwrap_or([0; 32])
}

/// The bytes of lowercase or uppercase hex `text`; `None` for an odd length or a non-hex
/// digit.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(crate::replay::hex_byte)
        .collect()
}

/// Hex of a digest, as prune records name the manifest.
#[must_use]
pub fn digest_hex(digest: &Digest) -> String {
    hex(digest)
}

/// Path of the retained-state directory of `data_dir`.
#[must_use]
pub fn pruned_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(PRUNED_DIR)
}

fn retained_error(path: &Path, detail: impl Into<String>) -> Error {
    Error::Prune(PruneError::Retained {
        path: path.to_path_buf(),
        detail: detail.into(),
    })
}

/// Reads and checks (checksums, counts) the manifest `name` and the epoch files it lists;
/// `Ok(None)` when the manifest does not exist. Signatures and roots are checked by
/// [`seed_state`].
///
/// # Errors
/// [`PruneError::Retained`] naming the file that is missing, torn or changed.
pub fn load_retained(data_dir: &Path, alg: HashAlgorithm, name: &str) -> Result<Option<Retained>> {
    let dir = pruned_dir(data_dir);
    let path = dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io("read", &path, err)),
    };
    let body = checked_body(alg, &bytes, MANIFEST_MAGIC).map_err(|d| retained_error(&path, d))?;
    let manifest: ManifestBody = serde_json::from_slice(&body[MANIFEST_MAGIC.len()..])
        .map_err(|e| retained_error(&path, e.to_string()))?;
    let bad = |what: &str| retained_error(&path, format!("invalid {what}"));
    let mut epochs = Vec::with_capacity(manifest.epochs.len());
    for listed in &manifest.epochs {
        let file = dir.join(PrunedEpoch::file_name(Epoch(listed.epoch)));
        let bytes = std::fs::read(&file).map_err(|e| retained_error(&file, e.to_string()))?;
        let epoch = PrunedEpoch::decode(alg, &bytes).map_err(|d| retained_error(&file, d))?;
        if hex(&file_sum(&bytes)) != listed.file
            || epoch.epoch.0 != listed.epoch
            || epoch.first_seq.0 != listed.first_seq
            || epoch.leaves.len() as u64 != listed.entries
        {
            return Err(retained_error(
                &file,
                "the file is not the one the manifest lists (checksum or counts differ)",
            ));
        }
        epochs.push(epoch);
    }
    let mut tenant_tips = BTreeMap::new();
    for (tenant, (seq, hash)) in manifest.tenant_tips {
        tenant_tips.insert(
            tenant,
            (Seq(seq), unhex32(&hash).ok_or_else(|| bad("tip"))?),
        );
    }
    let holds = manifest
        .holds
        .into_iter()
        .map(|h| ((h.tenant, h.subject), (Seq(h.seq), h.request_id)))
        .collect();
    Ok(Some(Retained {
        manifest_digest: file_sum(&bytes),
        horizon: Seq(manifest.horizon),
        epochs,
        genesis_entry: unhex(&manifest.genesis_entry).ok_or_else(|| bad("genesis entry"))?,
        tenant_tips,
        holds,
        key_id_max: manifest.key_id_max.map(KeyId),
    }))
}

/// The chain state at the horizon, rebuilt from the retained state after checking it: the
/// genesis entry is leaf 0 of epoch 0; each seal entry decodes, its note verifies with the
/// genesis key and states the root its retained leaves produce; the seals chain; the epochs
/// are dense from epoch 0 and end at the horizon; each tenant tip is a retained leaf.
///
/// # Errors
/// The [`Damage`] (kind [`DamageKind::Pruned`]) found.
pub fn seed_state(
    alg: HashAlgorithm,
    retained: &Retained,
) -> std::result::Result<ChainState, Damage> {
    let mut state = ChainState::new(alg);
    let damage = |seq: Seq, detail: String| Damage {
        seq,
        kind: DamageKind::Pruned,
        detail: format!("pruned range: {detail}"),
    };
    let genesis = entry::decode_entry(EntryKind::Genesis, &retained.genesis_entry)
        .map_err(|e| damage(Seq(0), format!("retained genesis entry: {e}")))?;
    let parsed: Genesis = serde_json::from_slice(genesis.payload)
        .map_err(|e| damage(Seq(0), format!("retained genesis payload: {e}")))?;
    let verifier = NoteVerifier::from_vkey(&parsed.verifier_key)
        .map_err(|e| damage(Seq(0), format!("retained genesis key: {e}")))?;
    let genesis_leaf = entry::leaf_hash(alg, Seq(0), &genesis);
    if retained.epochs.first().and_then(|e| e.leaves.first()) != Some(&genesis_leaf) {
        return Err(damage(
            Seq(0),
            "the retained genesis entry is not leaf 0 of epoch 0".into(),
        ));
    }
    for pruned in &retained.epochs {
        seed_epoch(alg, &mut state, &verifier, &parsed.origin_prefix, pruned)?;
    }
    if state.next_seq != retained.horizon {
        return Err(damage(
            retained.horizon,
            format!(
                "the manifest's horizon is {} but its epochs end at {}",
                retained.horizon, state.next_seq
            ),
        ));
    }
    for (tenant, (seq, hash)) in &retained.tenant_tips {
        let leaf = retained
            .epoch_of(*seq)
            .and_then(|e| e.leaves.get(usize::try_from(seq.0 - e.first_seq.0).ok()?));
        if leaf != Some(&crate::merkle::leaf_hash(alg, hash)) {
            return Err(damage(
                *seq,
                format!("tenant {tenant}'s retained tip is not a retained leaf"),
            ));
        }
        state.tenant_tips.insert(tenant.clone(), (*seq, *hash));
    }
    state.genesis = Some(parsed);
    state.verifier = Some(verifier);
    state.holds.clone_from(&retained.holds);
    state.key_id_max = retained.key_id_max;
    state.pruned = Some(Arc::new(retained.clone()));
    Ok(state)
}

/// Checks one retained epoch against the state so far and advances past it.
fn seed_epoch(
    alg: HashAlgorithm,
    state: &mut ChainState,
    verifier: &NoteVerifier,
    origin_prefix: &str,
    pruned: &PrunedEpoch,
) -> std::result::Result<(), Damage> {
    let seal_seq = pruned.seal_seq();
    let damage = |detail: String| Damage {
        seq: seal_seq,
        kind: DamageKind::Pruned,
        detail: format!("pruned epoch {}: {detail}", pruned.epoch),
    };
    if pruned.epoch != state.epoch || pruned.first_seq != state.next_seq {
        return Err(damage(format!(
            "expected epoch {} from seq {} (a retained epoch is missing or out of order)",
            state.epoch, state.next_seq
        )));
    }
    let seal = entry::decode_entry(EntryKind::EpochSeal, &pruned.seal_entry)
        .map_err(|e| damage(format!("seal entry: {e}")))?;
    if !seal.stored_digests_match(alg) {
        return Err(damage(
            "the seal entry's digests do not match its bytes".into(),
        ));
    }
    let (checkpoint, _) = Checkpoint::open(seal.payload, std::slice::from_ref(verifier))
        .map_err(|e| damage(format!("seal note: {e}")))?;
    let mut tree = CompactRange::new(alg);
    for leaf in &pruned.leaves {
        tree.append(leaf)
            .map_err(|e| damage(format!("leaves: {e}")))?;
    }
    let fields = checkpoint
        .extensions
        .iter()
        .find_map(|line| SealFields::parse(line))
        .ok_or_else(|| damage("the seal note has no seal line".into()))?;
    let last_leaf = pruned.leaves.last().copied();
    let expected_origin = ChainState::origin(origin_prefix, pruned.epoch);
    if checkpoint.origin != expected_origin
        || checkpoint.tree_size != tree.size()
        || checkpoint.root_hash != tree.root()
    {
        return Err(damage(
            "the signed seal does not state the root of the retained leaf hashes".into(),
        ));
    }
    if fields.first_seq != pruned.first_seq
        || fields.entries != tree.size()
        || fields.prev_seal != state.last_seal
        || last_leaf != Some(crate::merkle::leaf_hash(alg, &fields.last_chain_hash))
        || seal.chain.prev_chain_hash != fields.last_chain_hash
        || seal.chain.epoch != pruned.epoch.0
        || seal.chain.logged_at_ns < state.last_logged_at_ns
    {
        return Err(damage(
            "the seal's fields do not match the retained epoch or the previous seal".into(),
        ));
    }
    let seal_chain = seal.chain_hash(alg, seal_seq);
    state.sealed.push(SealedEpoch {
        epoch: pruned.epoch,
        first_seq: pruned.first_seq,
        entries: tree.size(),
        root: checkpoint.root_hash,
        seal_seq,
    });
    state.last_seal = seal_digest(alg, seal.payload);
    state.last_hash = seal_chain;
    state.last_logged_at_ns = seal.chain.logged_at_ns;
    state.next_seq = seal_seq.next();
    state.epoch = Epoch(pruned.epoch.0 + 1);
    state.epoch_first_seq = state.next_seq;
    state.checkpoints += 1;
    Ok(())
}

/// The starting state for replaying the log in `data_dir` whose first segment starts at
/// `log_first`: the retained state's when the store was pruned. Before replay, a prune that
/// already started deleting segments (so its record was durable) gets its manifest installed.
///
/// # Errors
/// [`Error::Damaged`] for a log that starts after its horizon (history missing without a
/// prune that names it) or retained state that does not verify; I/O errors.
pub(crate) fn start_state(
    data_dir: Option<&Path>,
    alg: HashAlgorithm,
    log_first: Seq,
    finish: Finish,
) -> Result<ChainState> {
    let retained = match data_dir {
        Some(dir) => {
            let mut retained = load_retained(dir, alg, MANIFEST_FILE)?;
            let horizon = retained.as_ref().map_or(Seq(0), |r| r.horizon);
            if log_first > horizon
                && let Some(pending) = load_retained(dir, alg, MANIFEST_PENDING_FILE)?
                && pending.horizon >= log_first
            {
                // Segments are deleted only after the record is durable: finish it.
                if finish == Finish::Install {
                    install_pending(dir)?;
                }
                retained = Some(pending);
            }
            retained
        }
        None => None,
    };
    let horizon = retained.as_ref().map_or(Seq(0), |r| r.horizon);
    if log_first > horizon {
        return Err(Error::Damaged {
            seq: horizon,
            detail: format!(
                "missing history: the log starts at seq {log_first} but nothing below it was \
                 pruned under policy (segment files were deleted without a prune record)"
            ),
        });
    }
    match &retained {
        Some(retained) => seed_state(alg, retained).map_err(|d| Error::Damaged {
            seq: d.seq,
            detail: d.detail,
        }),
        None => Ok(ChainState::new(alg)),
    }
}

/// Whether [`start_state`] may finish an interrupted prune on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Opening for writing: install a committed pending manifest.
    Install,
    /// Verifying or reading: change nothing.
    ReadOnly,
}

fn install_pending(data_dir: &Path) -> Result<()> {
    let dir = pruned_dir(data_dir);
    let (from, to) = (dir.join(MANIFEST_PENDING_FILE), dir.join(MANIFEST_FILE));
    std::fs::rename(&from, &to).map_err(|e| Error::io("rename", &to, e))?;
    sync_dir(&dir)
}

/// After replay at open: installs a pending manifest whose record the log holds, or discards
/// one whose record never became durable, removes epoch files no manifest lists, and returns
/// the horizon below which segment files are leftovers to delete.
pub(crate) fn finish_after_replay(data_dir: &Path, state: &mut ChainState) -> Result<Seq> {
    let alg = state.alg;
    let dir = pruned_dir(data_dir);
    if let Some(pending) = load_retained(data_dir, alg, MANIFEST_PENDING_FILE)
        .ok()
        .flatten()
    {
        let named = state
            .last_prune
            .as_ref()
            .is_some_and(|(_, r)| r.retained == hex(&pending.manifest_digest));
        if named {
            install_pending(data_dir)?;
            state.pruned = Some(Arc::new(pending));
        }
    }
    for name in [
        MANIFEST_PENDING_FILE,
        &format!("{MANIFEST_PENDING_FILE}.tmp"),
    ] {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
        }
    }
    let listed: BTreeSet<String> = state
        .pruned
        .iter()
        .flat_map(|r| r.epochs.iter().map(|e| PrunedEpoch::file_name(e.epoch)))
        .collect();
    if let Ok(names) = std::fs::read_dir(&dir) {
        for name in names
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
        {
            if name.ends_with(".leaves") && !listed.contains(&name) {
                let path = dir.join(&name);
                std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
            }
        }
        sync_dir(&dir)?;
    }
    Ok(state.pruned.as_ref().map_or(Seq(0), |r| r.horizon))
}

impl ChainState {
    /// Checks a prune entry (signed, no header, a valid record) and remembers it.
    pub(crate) fn check_prune(
        &mut self,
        seq: Seq,
        entry: &EntryRef<'_>,
        chain_hash: &Digest,
    ) -> std::result::Result<(), Damage> {
        let record: PruneRecord = self.parse_signed_record(seq, entry, chain_hash)?;
        if record.now_ns > entry.chain.logged_at_ns || record.horizon > seq.0 {
            return Err(Damage {
                seq,
                kind: DamageKind::Pruned,
                detail: "the prune record states a time after it was logged or a horizon after \
                         itself"
                    .into(),
            });
        }
        self.last_prune = Some((seq, record));
        Ok(())
    }
}

/// What verify checks of the pruned range once the log is replayed: the retained state in use
/// must be the one the last prune record names, and that record's policy must have expired
/// every pruned epoch's seal by its time.
pub(crate) fn check_after_replay(
    state: &ChainState,
    pending_digest: Option<Digest>,
) -> Option<Damage> {
    let damage = |seq, detail: String| {
        Some(Damage {
            seq,
            kind: DamageKind::Pruned,
            detail,
        })
    };
    let retained = state.pruned.as_deref();
    let Some((seq, record)) = &state.last_prune else {
        return retained.and_then(|r| {
            damage(
                r.horizon,
                "retained state exists but no prune record in the log names it".into(),
            )
        });
    };
    let named = |digest: &Digest| record.retained == hex(digest);
    let in_use =
        retained.is_some_and(|r| named(&r.manifest_digest) && r.horizon.0 == record.horizon);
    if !in_use && !pending_digest.is_some_and(|d| named(&d)) {
        return damage(
            *seq,
            "the prune record names retained state that is not in the store (a retained file \
             was deleted or replaced)"
                .into(),
        );
    }
    let retained = retained.filter(|_| in_use)?;
    if let Some(archived_end) = record.archived_end {
        // The archive record that covers the range lies after it, so it is in the kept log.
        return (archived_end < record.horizon || state.archived_end.0 < record.horizon).then(
            || Damage {
                seq: *seq,
                kind: DamageKind::Pruned,
                detail: format!(
                    "the prune record drops epochs up to seq {} as archived, but the archive \
                     records of the log cover seqs below {} only",
                    record.horizon, state.archived_end
                ),
            },
        );
    }
    let keep_min = record.policy.values().copied().min();
    for pruned in retained
        .epochs
        .iter()
        .filter(|e| (record.first_epoch..=record.last_epoch).contains(&e.epoch.0))
    {
        let sealed_at = entry::decode_entry(EntryKind::EpochSeal, &pruned.seal_entry)
            .map_or(u64::MAX, |e| e.chain.logged_at_ns);
        let expired = keep_min.is_some_and(|keep| sealed_at.saturating_add(keep) <= record.now_ns);
        if !expired {
            return damage(
                *seq,
                format!(
                    "the prune record drops epoch {} although no retention class of its policy \
                     had expired the epoch's last entry by the time it names",
                    pruned.epoch
                ),
            );
        }
    }
    None
}

/// The plan the caller thread makes and the writer commits.
#[derive(Debug)]
pub(crate) struct PrunePlan {
    pub from: Seq,
    pub now_ns: u64,
    pub request_id: String,
    pub epochs: Vec<PrunedEpoch>,
    pub owners: BTreeSet<(String, Option<String>)>,
    pub tips: BTreeMap<String, (Seq, Digest)>,
    pub key_id_max: Option<KeyId>,
    pub receipts: u64,
    pub genesis_entry: Option<Vec<u8>>,
    pub policy: BTreeMap<String, u64>,
    pub archived_end: Option<u64>,
}

/// A step of the prune protocol, for crash tests ([`crate::DbOptions::prune_step_hook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PruneStep {
    /// The epoch files and the pending manifest are synced.
    RetainedWritten,
    /// The prune record is appended, not yet synced.
    RecordAppended,
    /// The prune record is durable (the commit point).
    RecordDurable,
    /// The manifest is installed.
    ManifestInstalled,
    /// The first segment file is deleted (more may follow).
    FirstSegmentRemoved,
    /// Every segment file below the horizon is deleted.
    SegmentsRemoved,
}

/// Called at each [`PruneStep`] (tests abort the process there).
pub type PruneStepHook = Arc<dyn Fn(PruneStep) + Send + Sync>;

/// Per-epoch facts the caller scan gathers.
#[derive(Default)]
struct EpochScan {
    leaves: Vec<Digest>,
    owners: BTreeSet<(String, Option<String>)>,
    tips: BTreeMap<String, (Seq, Digest)>,
    key_id_max: Option<KeyId>,
    receipts: u64,
    seal_entry: Vec<u8>,
    stop: Option<PruneStop>,
}

impl<L: LogStorage> Db<L> {
    /// Reclaims disk under the retention policy: shreds expired keys ([`Db::expire`]), then
    /// drops the longest run of the oldest sealed epochs in which every receipt has expired
    /// by `now_ns` (same rule as `expire`: a receipt without a class, or with a class the
    /// policy does not name, never expires) and no legal hold covers a receipt. Their seals,
    /// roots and leaf hashes stay in `pruned/`, so verification, the seal chain and proofs of
    /// the dropped receipts still hold; `verify` reports the range as pruned under policy. The
    /// open epoch is never dropped, and the last dropped epoch must end a segment file.
    ///
    /// # Errors
    /// [`Error::Prune`] (nothing changed), [`Error::Shred`] from the expiry, [`Error::Closed`],
    /// [`Error::Wal`], [`Error::Io`].
    pub fn prune(&self, now_ns: u64, request_id: &str, mode: PruneMode) -> Result<PruneReport> {
        if request_id.is_empty() || request_id.len() > REQUEST_ID_BYTES_MAX {
            return Err(PruneError::BadRequestId.into());
        }
        // Before the expiry too: a future time would shred keys that have not expired.
        let clock_ns = crate::writer::now_ns();
        if now_ns > clock_ns {
            return Err(PruneError::FutureTime { now_ns, clock_ns }.into());
        }
        let keys_shredded = match (mode, self.key_store()) {
            (PruneMode::Apply, Some(_)) => self.expire(now_ns)?.shredded.len(),
            _ => 0,
        };
        let (plan, stopped) = self.plan_prune(now_ns, request_id, PruneBasis::Retention)?;
        self.commit_prune(plan, stopped, keys_shredded, mode)
    }

    /// Reclaims disk by dropping the oldest sealed epochs that are archived (see
    /// [`Db::archive`]: their objects were verified in the archive and a signed archive record
    /// is in the log), whatever their retention. Their seals, roots and leaf hashes stay in
    /// `pruned/` as for [`Db::prune`]; the prune record says the epochs went because they are
    /// archived, and `verify` checks that an archive record of the log covers them. Legal
    /// holds do not block it: the archived copy stays (write-once) and verifiable. The open
    /// epoch is never dropped, and the last dropped epoch must end a segment file.
    ///
    /// # Errors
    /// As for [`Db::prune`].
    pub fn prune_archived(&self, request_id: &str, mode: PruneMode) -> Result<PruneReport> {
        if request_id.is_empty() || request_id.len() > REQUEST_ID_BYTES_MAX {
            return Err(PruneError::BadRequestId.into());
        }
        let now_ns = crate::writer::now_ns();
        let (plan, stopped) = self.plan_prune(now_ns, request_id, PruneBasis::Archived)?;
        if mode == PruneMode::Apply
            && let Some(last) = plan.epochs.last()
        {
            // The indexer reads the local log: entries it has not indexed when their segments
            // go would never get postings, and queries read through the archive could not
            // find them. If the wait times out they stay missing until the index is rebuilt
            // (`check_index` of a store reading through its archive reports the difference).
            let _ = self
                .index_keeper()
                .wait_for(last.seal_seq().next(), crate::search::FRESHNESS_WAIT_MAX);
        }
        self.commit_prune(plan, stopped, 0, mode)
    }

    /// Reports a plan, and commits it on the writer unless `mode` is a dry run.
    fn commit_prune(
        &self,
        plan: PrunePlan,
        stopped: PruneStop,
        keys_shredded: usize,
        mode: PruneMode,
    ) -> Result<PruneReport> {
        let mut report = PruneReport {
            from_seq: plan.from,
            horizon: plan
                .epochs
                .last()
                .map_or(plan.from, |e| e.seal_seq().next()),
            epochs: plan.epochs.iter().map(|e| e.epoch).collect(),
            receipts: plan.receipts,
            segments_removed: Vec::new(),
            record_seq: None,
            keys_shredded,
            stopped,
        };
        if mode == PruneMode::DryRun || plan.epochs.is_empty() {
            return Ok(report);
        }
        let (record_seq, removed) =
            self.control_request(|reply| Control::Prune(Box::new(plan), reply))?;
        self.reads().refresh()?;
        report.record_seq = Some(record_seq);
        report.segments_removed = removed;
        Ok(report)
    }

    /// Scans the oldest sealed epochs after the horizon and plans what may go.
    fn plan_prune(
        &self,
        now_ns: u64,
        request_id: &str,
        basis: PruneBasis,
    ) -> Result<(PrunePlan, PruneStop)> {
        let archived_end = self.archived_end();
        let policy: BTreeMap<String, u64> = self
            .options()
            .retention
            .iter()
            .map(|(class, keep)| {
                (
                    class.clone(),
                    u64::try_from(keep.as_nanos()).unwrap_or(u64::MAX),
                )
            })
            .collect();
        let holds: HoldSet = self
            .holds()?
            .into_iter()
            .map(|h| ((h.tenant, h.subject), (h.seq, h.request_id)))
            .collect();
        let view = self.epoch_view();
        let from = self.prune_horizon();
        let segment_starts: BTreeSet<Seq> = self.reads().segment_starts();
        let mut plan = PrunePlan {
            from,
            now_ns,
            request_id: request_id.to_owned(),
            epochs: Vec::new(),
            owners: BTreeSet::new(),
            tips: BTreeMap::new(),
            key_id_max: None,
            receipts: 0,
            genesis_entry: None,
            policy: match basis {
                PruneBasis::Retention => policy,
                PruneBasis::Archived => BTreeMap::new(),
            },
            archived_end: (basis == PruneBasis::Archived).then_some(archived_end.0),
        };
        if from == Seq(0) {
            plan.genesis_entry = Some(self.reads().visit(Seq(0), |r| r.payload.to_vec())?);
        }
        let mut accepted: Vec<EpochScan> = Vec::new();
        let mut stopped = PruneStop::OpenEpoch;
        for sealed in view.sealed.iter().filter(|s| s.first_seq >= from) {
            if basis == PruneBasis::Archived && sealed.seal_seq >= archived_end {
                stopped = PruneStop::NotArchived {
                    epoch: sealed.epoch,
                };
                break;
            }
            let scan = self.scan_epoch(sealed, now_ns, &plan.policy, &holds, basis)?;
            if let Some(stop) = scan.stop.clone() {
                stopped = stop;
                break;
            }
            plan.epochs.push(PrunedEpoch {
                epoch: sealed.epoch,
                first_seq: sealed.first_seq,
                seal_entry: scan.seal_entry.clone(),
                leaves: scan.leaves.clone(),
            });
            accepted.push(scan);
        }
        // Only whole files go: drop trailing epochs that end inside a segment.
        while let Some(last) = plan.epochs.last() {
            if segment_starts.contains(&last.seal_seq().next()) {
                break;
            }
            stopped = PruneStop::SharedSegment { epoch: last.epoch };
            plan.epochs.pop();
            accepted.pop();
        }
        for scan in accepted {
            // Holds do not block dropping the local copy of archived epochs.
            if basis == PruneBasis::Retention {
                plan.owners.extend(scan.owners);
            }
            plan.tips.extend(scan.tips);
            plan.key_id_max = plan.key_id_max.max(scan.key_id_max);
            plan.receipts += scan.receipts;
        }
        Ok((plan, stopped))
    }

    /// Reads one sealed epoch: its leaves and seal entry, and whether all of it may go.
    fn scan_epoch(
        &self,
        sealed: &SealedEpoch,
        now_ns: u64,
        policy: &BTreeMap<String, u64>,
        holds: &HoldSet,
        basis: PruneBasis,
    ) -> Result<EpochScan> {
        let alg = self.hash_algorithm();
        let mut scan = EpochScan::default();
        self.reads()
            .scan(sealed.first_seq, sealed.seal_seq.next(), |record| {
                let kind = EntryKind::from_byte(record.kind.get());
                let damaged = |detail: String| Error::Damaged {
                    seq: record.seq,
                    detail,
                };
                let kind = kind.ok_or_else(|| damaged("unknown entry kind".into()))?;
                if record.seq == sealed.seal_seq {
                    scan.seal_entry = record.payload.to_vec();
                    return Ok(ControlFlow::Continue(()));
                }
                let entry = entry::decode_entry(kind, record.payload)
                    .map_err(|e| damaged(e.to_string()))?;
                let chain = entry.chain_hash(alg, record.seq);
                scan.leaves.push(crate::merkle::leaf_hash(alg, &chain));
                if kind != EntryKind::Receipt {
                    return Ok(ControlFlow::Continue(()));
                }
                let header =
                    ReceiptHeader::decode(entry.header).map_err(|e| damaged(e.to_string()))?;
                let expires = header
                    .retention_class()
                    .and_then(|class| policy.get(class))
                    .map(|keep| entry.chain.logged_at_ns.saturating_add(*keep));
                if basis == PruneBasis::Retention && expires.is_none_or(|at| at > now_ns) {
                    scan.stop = Some(PruneStop::NotExpired {
                        epoch: sealed.epoch,
                        seq: record.seq,
                        class: header.retention_class().map(str::to_owned),
                        expires_ns: expires,
                    });
                    return Ok(ControlFlow::Break(()));
                }
                let (tenant, subject) = (header.tenant_id(), header.subject_id());
                if basis == PruneBasis::Retention
                    && blocking_hold(holds, ShredScope::Subject, tenant, subject).is_some()
                {
                    scan.stop = Some(PruneStop::Held {
                        epoch: sealed.epoch,
                        seq: record.seq,
                        tenant: tenant.to_owned(),
                    });
                    return Ok(ControlFlow::Break(()));
                }
                if entry.flags & entry::flags::PAYLOAD_ENCRYPTED != 0 {
                    let key = crate::crypto::payload_key_id(entry.payload)
                        .map_err(|e| damaged(e.to_string()))?;
                    scan.key_id_max = scan.key_id_max.max(Some(key));
                }
                scan.owners
                    .insert((tenant.to_owned(), subject.map(str::to_owned)));
                scan.tips.insert(tenant.to_owned(), (record.seq, chain));
                scan.receipts += 1;
                Ok(ControlFlow::Continue(()))
            })?;
        Ok(scan)
    }
}

impl<S: Storage> Writer<S> {
    /// Commits a prune plan (steps 2–5 of the protocol); returns the record's seq and the
    /// segment files removed.
    pub(crate) fn prune(&mut self, plan: &PrunePlan) -> Result<(Seq, Vec<String>)> {
        let old = self.state.pruned.clone();
        let found = old.as_ref().map_or(Seq(0), |r| r.horizon);
        if found != plan.from {
            return Err(PruneError::Raced {
                found,
                planned: plan.from,
            }
            .into());
        }
        for (tenant, subject) in &plan.owners {
            if let Some(((t, s), _)) = blocking_hold(
                &self.state.holds,
                ShredScope::Subject,
                tenant,
                subject.as_deref(),
            ) {
                return Err(PruneError::Held {
                    tenant: t.clone(),
                    subject: s.clone(),
                }
                .into());
            }
        }
        let clock_ns = self.state.last_logged_at_ns.max(crate::writer::now_ns());
        if plan.now_ns > clock_ns {
            return Err(PruneError::FutureTime {
                now_ns: plan.now_ns,
                clock_ns,
            }
            .into());
        }
        let mut retained = self.next_retained(old.as_deref(), plan)?;
        let data_dir = self.data_dir.clone();
        let manifest = write_retained(&data_dir, self.state.alg, &retained, plan)?;
        retained.manifest_digest = file_sum(&manifest);
        self.prune_step(PruneStep::RetainedWritten);
        let record = PruneRecord {
            format: 1,
            from_seq: plan.from.0,
            horizon: retained.horizon.0,
            first_epoch: plan.epochs.first().map_or(0, |e| e.epoch.0),
            last_epoch: plan.epochs.last().map_or(0, |e| e.epoch.0),
            receipts: plan.receipts,
            now_ns: plan.now_ns,
            policy: plan.policy.clone(),
            request_id: plan.request_id.clone(),
            retained: hex(&file_sum(&manifest)),
            archived_end: plan.archived_end,
        };
        let payload = serde_json::to_vec(&record).map_err(|e| Error::Damaged {
            seq: self.state.next_seq,
            detail: format!("encoding a prune record: {e}"),
        })?;
        let seq = self.append_signed_record(EntryKind::Prune, &payload)?;
        self.prune_step(PruneStep::RecordAppended);
        self.sync_now()?;
        self.prune_step(PruneStep::RecordDurable);
        self.state.last_prune = Some((seq, record));
        install_pending(&data_dir)?;
        let horizon = retained.horizon;
        self.state.pruned = Some(Arc::new(retained));
        self.shared
            .horizon
            .store(horizon.0, std::sync::atomic::Ordering::SeqCst);
        self.prune_step(PruneStep::ManifestInstalled);
        let removed = self.remove_pruned_segments()?;
        Ok((seq, removed))
    }

    /// Deletes the segment files below the horizon (oldest first).
    pub(crate) fn remove_pruned_segments(&mut self) -> Result<Vec<String>> {
        let horizon = self.state.pruned.as_ref().map_or(Seq(0), |r| r.horizon);
        let mut removed = Vec::new();
        // One file at a time, so that crash tests can stop between two deletions.
        loop {
            let one = self.wal.remove_oldest_segment_below(horizon)?;
            let Some(name) = one else { break };
            removed.push(name);
            if removed.len() == 1 {
                self.prune_step(PruneStep::FirstSegmentRemoved);
            }
        }
        self.prune_step(PruneStep::SegmentsRemoved);
        Ok(removed)
    }

    fn prune_step(&self, step: PruneStep) {
        if let Some(hook) = &self.options.prune_step_hook {
            hook(step);
        }
    }

    /// The retained state after `plan`: the old one extended.
    fn next_retained(&self, old: Option<&Retained>, plan: &PrunePlan) -> Result<Retained> {
        let mut retained = match (old, &plan.genesis_entry) {
            (Some(old), _) => old.clone(),
            (None, Some(genesis)) => Retained {
                manifest_digest: [0; 32],
                horizon: Seq(0),
                epochs: Vec::new(),
                genesis_entry: genesis.clone(),
                tenant_tips: BTreeMap::new(),
                holds: HoldSet::new(),
                key_id_max: None,
            },
            (None, None) => {
                return Err(Error::Damaged {
                    seq: Seq(0),
                    detail: "a first prune without the genesis entry".into(),
                });
            }
        };
        retained.epochs.extend(plan.epochs.iter().cloned());
        retained.horizon = plan
            .epochs
            .last()
            .map_or(plan.from, |e| e.seal_seq().next());
        retained.tenant_tips.extend(plan.tips.clone());
        retained.key_id_max = retained.key_id_max.max(plan.key_id_max);
        // Holds placed below the horizon and still in force; later ones replay from the log.
        retained.holds = self
            .state
            .holds
            .iter()
            .filter(|(_, (seq, _))| *seq < retained.horizon)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(retained)
    }
}

/// Writes the new epochs' files and the pending manifest, synced; returns the manifest bytes.
fn write_retained(
    data_dir: &Path,
    alg: HashAlgorithm,
    retained: &Retained,
    plan: &PrunePlan,
) -> Result<Vec<u8>> {
    let dir = pruned_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    for epoch in &plan.epochs {
        write_synced(
            &dir.join(PrunedEpoch::file_name(epoch.epoch)),
            &epoch.encode(alg),
            0o644,
        )?;
    }
    let manifest = retained.encode_manifest(alg);
    let tmp = dir.join(format!("{MANIFEST_PENDING_FILE}.tmp"));
    write_synced(&tmp, &manifest, 0o644)?;
    let pending = dir.join(MANIFEST_PENDING_FILE);
    std::fs::rename(&tmp, &pending).map_err(|e| Error::io("rename", &pending, e))?;
    sync_dir(&dir)?;
    Ok(manifest)
}

/// A proof that a pruned entry's leaf hash is in its epoch's signed seal: what
/// [`Db::prove_pruned`] returns once the entry's bytes are gone. The holder of the entry's
/// chain hash (a [`crate::ReceiptPosition`] kept by the client) checks it with
/// [`verify_pruned_inclusion`] and the store's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedInclusionBundle {
    /// `blake3` or `sha256`.
    pub hash_algorithm: String,
    /// The entry's sequence number.
    pub seq: u64,
    /// Its epoch.
    pub epoch: u64,
    /// Its leaf index in the epoch's tree.
    pub leaf_index: u64,
    /// Its leaf hash (hex), from the retained state.
    pub leaf_hash: String,
    /// The epoch's signed seal note.
    pub seal: String,
    /// The audit path, hex digests, leaf to root.
    pub path: Vec<String>,
}

/// Checks a [`PrunedInclusionBundle`]: the seal's signature (`verify_strict`), its epoch, and
/// the audit path against the signed root and size; with `chain_hash`, also that the proven
/// leaf is that entry's. Returns the seal's checkpoint.
///
/// # Errors
/// [`crate::proof::AuditError`] saying what does not hold.
pub fn verify_pruned_inclusion(
    bundle: &PrunedInclusionBundle,
    verifier: &NoteVerifier,
    chain_hash: Option<&Digest>,
) -> std::result::Result<Checkpoint, crate::proof::AuditError> {
    use crate::proof::AuditError;
    let alg = match bundle.hash_algorithm.as_str() {
        "blake3" => HashAlgorithm::Blake3,
        "sha256" => HashAlgorithm::Sha256,
        other => return Err(AuditError::Malformed(format!("hash algorithm {other:?}"))),
    };
    let (checkpoint, _) = Checkpoint::open(bundle.seal.as_bytes(), std::slice::from_ref(verifier))
        .map_err(|e| AuditError::Checkpoint(e.to_string()))?;
    if !checkpoint
        .origin
        .ends_with(&format!("/epoch/{}", bundle.epoch))
    {
        return Err(AuditError::Checkpoint(format!(
            "origin {:?} is not epoch {}",
            checkpoint.origin, bundle.epoch
        )));
    }
    let leaf = unhex32(&bundle.leaf_hash)
        .ok_or_else(|| AuditError::Malformed("leaf hash is not 32 hex bytes".into()))?;
    if chain_hash.is_some_and(|c| crate::merkle::leaf_hash(alg, c) != leaf) {
        return Err(AuditError::Entry(
            "the proven leaf is not the leaf of this chain hash".into(),
        ));
    }
    let path = bundle
        .path
        .iter()
        .map(|p| unhex32(p).ok_or_else(|| AuditError::Malformed("path element".into())))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    crate::merkle::verify_inclusion(
        alg,
        bundle.leaf_index,
        checkpoint.tree_size,
        &leaf,
        &path,
        &checkpoint.root_hash,
    )?;
    Ok(checkpoint)
}

impl<L: LogStorage> Db<L> {
    /// An inclusion proof of pruned entry `seq` from the retained leaf hashes, against its
    /// epoch's signed seal.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `seq` is not below the horizon or is a seal;
    /// [`Error::Prune`] when the retained state cannot be read.
    pub fn prove_pruned(&self, seq: Seq) -> Result<PrunedInclusionBundle> {
        let alg = self.hash_algorithm();
        let proof = retained_proof(self.data_dir(), alg, seq)?;
        Ok(PrunedInclusionBundle {
            hash_algorithm: alg.to_string(),
            seq: seq.0,
            epoch: proof.epoch.0,
            leaf_index: proof.leaf_index,
            leaf_hash: hex(&proof.leaf),
            seal: proof.seal,
            path: proof.path.iter().map(|d| hex(d)).collect(),
        })
    }
}

/// What the retained state proves of a pruned seq: its epoch, leaf and audit path, and the
/// seal note the path leads to.
struct RetainedProof {
    epoch: Epoch,
    first_seq: Seq,
    leaf_index: u64,
    leaf: Digest,
    seal: String,
    path: Vec<Digest>,
}

/// The inclusion proof of pruned seq `seq` from the retained leaf hashes.
fn retained_proof(data_dir: &Path, alg: HashAlgorithm, seq: Seq) -> Result<RetainedProof> {
    let not_found = |detail: &str| Error::NotFound {
        seq,
        detail: detail.to_owned(),
    };
    let retained = load_retained(data_dir, alg, MANIFEST_FILE)?
        .ok_or_else(|| not_found("nothing was pruned"))?;
    let epoch = retained
        .epoch_of(seq)
        .ok_or_else(|| not_found("not in the pruned range"))?;
    let leaf_index = seq.0 - epoch.first_seq.0;
    let leaf = usize::try_from(leaf_index)
        .ok()
        .and_then(|i| epoch.leaves.get(i))
        .ok_or_else(|| not_found("an epoch seal is not a leaf of any tree"))?;
    let seal = entry::decode_entry(EntryKind::EpochSeal, &epoch.seal_entry).map_err(|e| {
        Error::Damaged {
            seq: epoch.seal_seq(),
            detail: e.to_string(),
        }
    })?;
    let table = crate::merkle::LeafHashTable::new(alg, &epoch.leaves);
    let proof = crate::merkle::inclusion_proof(alg, leaf_index, epoch.leaves.len() as u64, &table)
        .map_err(|e| Error::Damaged {
            seq,
            detail: e.to_string(),
        })?;
    Ok(RetainedProof {
        epoch: epoch.epoch,
        first_seq: epoch.first_seq,
        leaf_index,
        leaf: *leaf,
        seal: String::from_utf8_lossy(seal.payload).into_owned(),
        path: proof.path().to_vec(),
    })
}

/// A normal inclusion proof of `seq`, an entry of an epoch dropped locally after it was
/// archived: the entry read through the archive cache of `reads`, the audit path from the
/// retained leaf hashes, against the epoch's signed seal.
pub(crate) fn archived_inclusion<L: LogStorage>(
    reads: &crate::reads::LogReads<L>,
    data_dir: &Path,
    alg: HashAlgorithm,
    seq: Seq,
) -> Result<crate::proof::InclusionBundle> {
    let proof = retained_proof(data_dir, alg, seq)?;
    let (record, epoch) = crate::db::leaf_record(reads, seq)?;
    if epoch != proof.epoch {
        return Err(Error::Damaged {
            seq,
            detail: format!(
                "the entry says epoch {epoch}, the retained state {}",
                proof.epoch
            ),
        });
    }
    Ok(crate::proof::inclusion_bundle(
        alg,
        &record,
        epoch,
        proof.first_seq,
        proof.seal,
        &proof.path,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{ChainFields, NO_TENANT_PREV};

    /// A retained state of one epoch whose seal was logged at `sealed_at_ns`, and the state a
    /// replay ends in after a prune record dropping it under `policy` at `now_ns`.
    fn replayed(sealed_at_ns: u64, policy: &[(&str, u64)], now_ns: u64) -> ChainState {
        let alg = HashAlgorithm::Blake3;
        let payload = b"a seal note";
        let seal = EntryRef {
            kind: EntryKind::EpochSeal,
            flags: 0,
            chain: ChainFields {
                epoch: 0,
                logged_at_ns: sealed_at_ns,
                prev_chain_hash: [0; 32],
                tenant_prev_seq: NO_TENANT_PREV,
                tenant_prev_hash: [0; 32],
            },
            stored: None,
            header: &[],
            payload,
            signature: None,
        };
        let mut seal_entry = Vec::new();
        seal.encode_into(&mut seal_entry);
        let retained = Retained {
            manifest_digest: [7; 32],
            horizon: Seq(2),
            epochs: vec![PrunedEpoch {
                epoch: Epoch(0),
                first_seq: Seq(0),
                seal_entry,
                leaves: vec![[1; 32]],
            }],
            genesis_entry: Vec::new(),
            tenant_tips: BTreeMap::new(),
            holds: HoldSet::new(),
            key_id_max: None,
        };
        let record = PruneRecord {
            format: 1,
            from_seq: 0,
            horizon: 2,
            first_epoch: 0,
            last_epoch: 0,
            receipts: 1,
            now_ns,
            policy: policy.iter().map(|(c, k)| ((*c).to_owned(), *k)).collect(),
            request_id: "r".into(),
            retained: hex(&[7; 32]),
            archived_end: None,
        };
        let mut state = ChainState::new(alg);
        state.pruned = Some(Arc::new(retained));
        state.last_prune = Some((Seq(5), record));
        state
    }

    #[test]
    fn verify_refuses_a_prune_record_whose_policy_had_not_expired_the_epoch() {
        let hour = 3_600_000_000_000;
        let ok = replayed(1_000, &[("short", hour)], 1_000 + hour);
        assert_eq!(check_after_replay(&ok, None), None);
        let early = replayed(1_000, &[("short", hour)], 1_000 + hour - 1);
        let damage = check_after_replay(&early, None).expect("refused");
        assert_eq!(damage.kind, DamageKind::Pruned);
        assert!(damage.detail.contains("epoch 0"), "{damage}");
        let no_policy = replayed(1_000, &[], u64::MAX);
        assert!(
            check_after_replay(&no_policy, None).is_some(),
            "nothing can expire"
        );
    }

    #[test]
    fn verify_refuses_retained_state_no_record_names() {
        let mut state = replayed(1_000, &[("short", 0)], 1_000);
        if let Some((_, record)) = state.last_prune.as_mut() {
            record.retained = hex(&[8; 32]);
        }
        assert!(check_after_replay(&state, None).is_some());
        assert_eq!(
            check_after_replay(&state, Some([8; 32])),
            None,
            "a pending manifest"
        );
        state.last_prune = None;
        assert!(check_after_replay(&state, None).is_some());
    }
}
