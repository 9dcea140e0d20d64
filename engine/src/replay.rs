//! Replaying the log: the one place that knows what a valid sequence of entries is.
//!
//! [`ChainState::apply`] checks an entry against everything before it — chain link, tenant
//! link, epoch, monotonic timestamps, digests, checkpoint and seal signatures and roots — and
//! advances the state. Opening a store replays it (payload digests skipped: the WAL's CRC covers
//! the bytes and `verify` recomputes them); `verify` replays with every check.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use crate::entry::{self, ChainFields, EntryKind, EntryRef, NO_TENANT_PREV};
use crate::merkle::{self, CompactRange, Digest};
use crate::note::{Checkpoint, NoteVerifier};
use crate::position::{Epoch, ReceiptPosition};
use crate::receipt::{ReceiptError, ReceiptHeader};
use crate::wal::{HashAlgorithm, Seq};

/// How thoroughly [`ChainState::apply`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayMode {
    /// Structure, links, content digests, signatures; payload digests are trusted (open).
    Open,
    /// Everything, payload digests included (`verify`).
    Verify,
}

/// The kind of damage a replay found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DamageKind {
    /// A WAL frame failed its checksum, or the log structure is broken.
    Frame,
    /// The entry bytes do not decode.
    Malformed,
    /// The payload does not match its digest.
    PayloadDigest,
    /// Header or payload digest does not match the content digest.
    ContentDigest,
    /// The entry does not link to the previous entry's chain hash.
    ChainLink,
    /// The receipt does not link to its tenant's previous receipt.
    TenantLink,
    /// Wrong epoch number, or an epoch that is too large.
    Epoch,
    /// The writer's timestamp went backwards.
    Timestamp,
    /// The genesis entry is missing, misplaced or invalid.
    Genesis,
    /// A checkpoint or seal note does not verify, or states a wrong size or root.
    Checkpoint,
    /// A seal's fields (counts, links) are wrong.
    Seal,
    /// A per-receipt signature does not verify.
    Signature,
    /// The same event id appears twice in a tenant.
    DuplicateEvent,
    /// The log is shorter than, or differs from, a trusted checkpoint held outside the store.
    Rollback,
    /// The retained state of a pruned range does not verify, or the log is missing history
    /// that no prune record accounts for.
    Pruned,
}

impl DamageKind {
    /// Short name for reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            DamageKind::Frame => "frame",
            DamageKind::Malformed => "malformed entry",
            DamageKind::PayloadDigest => "payload digest",
            DamageKind::ContentDigest => "content digest",
            DamageKind::ChainLink => "chain link",
            DamageKind::TenantLink => "tenant link",
            DamageKind::Epoch => "epoch",
            DamageKind::Timestamp => "timestamp",
            DamageKind::Genesis => "genesis",
            DamageKind::Checkpoint => "checkpoint",
            DamageKind::Seal => "seal",
            DamageKind::Signature => "signature",
            DamageKind::DuplicateEvent => "duplicate event id",
            DamageKind::Rollback => "truncation or rollback",
            DamageKind::Pruned => "pruned range",
        }
    }
}

/// The first bad place a replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Sequence number of the bad entry.
    pub seq: Seq,
    /// What kind of damage.
    pub kind: DamageKind,
    /// Details for people.
    pub detail: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seq {}: {} damage: {}",
            self.seq,
            self.kind.name(),
            self.detail
        )
    }
}

/// What the genesis entry records about a store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Genesis {
    /// Entry format version.
    pub format: u32,
    /// `blake3` or `sha256`.
    pub hash_algorithm: String,
    /// Store id (hex), as in the WAL metadata.
    pub store_id: String,
    /// Origin prefix; epoch `n`'s checkpoints use the origin `<prefix>/epoch/<n>`.
    pub origin_prefix: String,
    /// The checkpoint signing key, as a C2SP verifier key.
    pub verifier_key: String,
}

/// Extension line prefix of seal notes.
pub const SEAL_EXTENSION_PREFIX: &str = "trailmix-seal v1";
/// Domain-separation context of seal digests (the link from one seal to the next).
pub const SEAL_CONTEXT: &str = "trailmix-db 2026-11-22 epoch seal v1";

/// Fields of a seal's extension line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealFields {
    /// First sequence number of the epoch.
    pub first_seq: Seq,
    /// Entries (leaves) in the epoch.
    pub entries: u64,
    /// Chain hash of the epoch's last entry.
    pub last_chain_hash: Digest,
    /// Digest of the previous seal note (zero for epoch 0).
    pub prev_seal: Digest,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

pub(crate) fn unhex32(text: &str) -> Option<Digest> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        out[i] = hex_byte(pair)?;
    }
    Some(out)
}

/// One byte from two hex digits. Stricter than `u8::from_str_radix`, which takes a leading
/// `+` ("+f" is 15): each byte has exactly one spelling per case, so no two different texts
/// of a digest decode to the same bytes.
pub(crate) fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| char::from(c).to_digit(16);
    match pair {
        [high, low] => u8::try_from(digit(*high)? << 4 | digit(*low)?).ok(),
        _ => None,
    }
}

impl SealFields {
    /// The extension line.
    #[must_use]
    pub fn to_line(&self) -> String {
        format!(
            "{SEAL_EXTENSION_PREFIX} first={} entries={} last_chain={} prev_seal={}",
            self.first_seq,
            self.entries,
            hex(&self.last_chain_hash),
            hex(&self.prev_seal)
        )
    }

    /// Parses the extension line.
    #[must_use]
    pub fn parse(line: &str) -> Option<SealFields> {
        let rest = line
            .strip_prefix(SEAL_EXTENSION_PREFIX)?
            .strip_prefix(' ')?;
        let mut parts = rest.split(' ');
        let first = parts.next()?.strip_prefix("first=")?.parse().ok()?;
        let entries = parts.next()?.strip_prefix("entries=")?.parse().ok()?;
        let last_chain_hash = unhex32(parts.next()?.strip_prefix("last_chain=")?)?;
        let prev_seal = unhex32(parts.next()?.strip_prefix("prev_seal=")?)?;
        parts.next().is_none().then_some(SealFields {
            first_seq: Seq(first),
            entries,
            last_chain_hash,
            prev_seal,
        })
    }
}

/// Digest of a seal note's text: what the next seal links to.
#[must_use]
pub fn seal_digest(alg: HashAlgorithm, note: &[u8]) -> Digest {
    entry::hash_with_context(alg, SEAL_CONTEXT, &[note])
}

/// A sealed epoch, as replay learns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEpoch {
    /// The epoch.
    pub epoch: Epoch,
    /// First sequence number.
    pub first_seq: Seq,
    /// Entries (leaves).
    pub entries: u64,
    /// The final root.
    pub root: Digest,
    /// Sequence number of the seal entry.
    pub seal_seq: Seq,
}

/// A receipt's identity for idempotency: where it is and what it contained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownEvent {
    /// Its position.
    pub position: ReceiptPosition,
    /// Its content digest.
    pub content_digest: Digest,
}

/// Whether a stored digest matched the bytes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestCheck {
    /// Recomputed and equal.
    Matches,
    /// Recomputed and different.
    Differs,
    /// Not recomputed (opening trusts payload digests: the WAL's CRC covers the bytes), or
    /// nothing stored to compare (entry version 3).
    Skipped,
}

/// The hashes replay computes for one entry, independent of every other entry, so they can be
/// computed ahead in other threads ([`ChainState::apply_with`]); what remains for the
/// sequential pass is cheap comparisons and bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryDigests {
    /// The payload digest check ([`DigestCheck::Skipped`] in [`ReplayMode::Open`]).
    pub payload: DigestCheck,
    /// The content digest check.
    pub content: DigestCheck,
    /// The entry's chain hash.
    pub chain_hash: Digest,
    /// Its Merkle leaf hash.
    pub leaf_hash: Digest,
}

impl EntryDigests {
    /// The hashes of entry `seq`; `None` when the bytes do not decode as an entry (the
    /// sequential pass then reports the damage).
    #[must_use]
    pub fn compute(
        alg: HashAlgorithm,
        seq: Seq,
        kind_byte: u8,
        bytes: &[u8],
        mode: ReplayMode,
    ) -> Option<EntryDigests> {
        let kind = EntryKind::from_byte(kind_byte)?;
        let entry = entry::decode_entry(kind, bytes).ok()?;
        Some(EntryDigests::of_entry(alg, seq, &entry, mode))
    }

    fn of_entry(alg: HashAlgorithm, seq: Seq, entry: &EntryRef<'_>, mode: ReplayMode) -> Self {
        let check = |equal: bool| {
            if equal {
                DigestCheck::Matches
            } else {
                DigestCheck::Differs
            }
        };
        // Version 2 entries store their digests: checked here (the payload digest only when
        // verifying). Version 3 entries store none: the chain hash is computed from the bytes
        // (so opening hashes every payload it replays), and a changed byte shows as the next
        // entry's broken link or a Merkle root that differs from the signed one.
        let payload = match (mode, entry.stored.is_some()) {
            (ReplayMode::Open, _) | (ReplayMode::Verify, false) => DigestCheck::Skipped,
            (ReplayMode::Verify, true) => check(entry.stored_payload_digest_matches(alg)),
        };
        let content = if entry.stored.is_some() {
            check(entry.stored_content_digest_matches(alg))
        } else {
            DigestCheck::Skipped
        };
        let chain_hash = entry.chain_hash(alg, seq);
        EntryDigests {
            payload,
            content,
            chain_hash,
            leaf_hash: merkle::leaf_hash(alg, &chain_hash),
        }
    }
}

/// The seq of every (tenant, event id) verification has seen, in 24 bytes per receipt plus the
/// table's slack, without an allocation per receipt: the key is a 128-bit hash of the pair
/// under two random `SipHash` keys drawn per map, so equal keys for different pairs (a false
/// "duplicate") have a chance of about n² / 2¹²⁹ over n receipts, and inputs cannot be chosen
/// to collide without the keys. It still grows with the store: verification's memory is
/// linear in the receipts it checks (see docs/design.md, "Verification").
#[derive(Debug, Clone, Default)]
pub struct EventSeqs {
    hashers: (std::hash::RandomState, std::hash::RandomState),
    seqs: HashMap<u128, Seq, std::hash::BuildHasherDefault<KeyBits>>,
}

/// The table's hasher: a key already is the output of two randomly keyed `SipHash` runs, so
/// its low 64 bits are as good a table hash as a third `SipHash` run over it (which cost
/// about 300 instructions per receipt) and cannot be steered into collisions either.
#[derive(Debug, Clone, Copy, Default)]
struct KeyBits(u64);

impl std::hash::Hasher for KeyBits {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u128` keys are hashed; any other input still hashes, just not as fast.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }

    #[allow(
        clippy::cast_possible_truncation,
        reason = "the low 64 bits are the table hash"
    )]
    fn write_u128(&mut self, key: u128) {
        self.0 ^= key as u64;
    }
}

impl EventSeqs {
    /// An empty map with fresh random keys.
    #[must_use]
    pub fn new() -> EventSeqs {
        EventSeqs::default()
    }

    fn key(&self, tenant: &str, event_id: &str) -> u128 {
        use std::hash::BuildHasher as _;
        let high = self.hashers.0.hash_one((tenant, event_id));
        let low = self.hashers.1.hash_one((tenant, event_id));
        (u128::from(high) << 64) | u128::from(low)
    }

    /// Records that `seq` holds (`tenant`, `event_id`); when the pair was seen before, keeps
    /// the first seq and returns it.
    pub fn insert(&mut self, tenant: &str, event_id: &str, seq: Seq) -> Option<Seq> {
        match self.seqs.entry(self.key(tenant, event_id)) {
            std::collections::hash_map::Entry::Occupied(first) => Some(*first.get()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(seq);
                None
            }
        }
    }

    /// Pairs recorded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Whether no pair is recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }
}

/// The last receipt of each tenant: seq and chain hash. Looked up and updated per receipt, so
/// hashed with foldhash (randomly seeded per process) rather than `SipHash`.
pub type TenantTips = HashMap<String, (Seq, Digest), hashbrown::DefaultHashBuilder>;

/// Everything the writer needs to continue the log, rebuilt by replay.
#[derive(Debug, Clone)]
pub struct ChainState {
    /// Hash algorithm of the store.
    pub alg: HashAlgorithm,
    /// Next sequence number.
    pub next_seq: Seq,
    /// Chain hash of the last entry (zero before genesis).
    pub last_hash: Digest,
    /// The current (open) epoch.
    pub epoch: Epoch,
    /// First sequence number of the current epoch.
    pub epoch_first_seq: Seq,
    /// The current epoch's tree.
    pub tree: CompactRange,
    /// Last receipt of each tenant.
    pub tenant_tips: TenantTips,
    /// The tips tree of the last checkpoint (brought up to `tenant_tips` at each one).
    pub tips_tree: crate::tips::TipsTree,
    /// Where verification saw each (tenant, event id), to report duplicates (empty when
    /// opening: the index answers idempotency then).
    pub events: EventSeqs,
    /// Digest of the last seal note (zero before the first seal).
    pub last_seal: Digest,
    /// Sealed epochs in order.
    pub sealed: Vec<SealedEpoch>,
    /// The genesis record, once seen.
    pub genesis: Option<Genesis>,
    /// The checkpoint verifier from the genesis entry.
    pub verifier: Option<NoteVerifier>,
    /// The writer's last timestamp.
    pub last_logged_at_ns: u64,
    /// Tree size of the last checkpoint of the current epoch.
    pub last_checkpoint_size: u64,
    /// The last checkpoint of the current epoch: its sequence number and signed note.
    pub last_checkpoint: Option<(Seq, String)>,
    /// Receipts replayed.
    pub receipts: u64,
    /// Where opening records every event id it replays (see [`crate::seen`]).
    pub seen: Option<std::sync::Arc<crate::seen::SeenEvents>>,
    /// Checkpoints replayed (seals included).
    pub checkpoints: u64,
    /// Shred records replayed, in log order.
    pub shreds: Vec<crate::shred::ReplayedShred>,
    /// Legal holds in force.
    pub holds: crate::retention::HoldSet,
    /// The largest data key id an encrypted receipt names (`None`: no encrypted receipt).
    pub key_id_max: Option<crate::crypto::KeyId>,
    /// The retained state of the pruned range below the first entry replayed, if pruned.
    pub pruned: Option<std::sync::Arc<crate::prune::Retained>>,
    /// The last prune record replayed.
    pub last_prune: Option<(Seq, crate::prune::PruneRecord)>,
    /// One past the last seq an archive record covers (0 before any archive).
    pub archived_end: Seq,
    /// Archive records replayed: their seq and record, in log order.
    pub archives: Vec<(Seq, crate::archive::ArchiveRecord)>,
}

impl ChainState {
    /// The state of an empty log.
    #[must_use]
    pub fn new(alg: HashAlgorithm) -> ChainState {
        ChainState {
            alg,
            next_seq: Seq(0),
            last_hash: [0; 32],
            epoch: Epoch(0),
            epoch_first_seq: Seq(0),
            tree: CompactRange::new(alg),
            tenant_tips: TenantTips::default(),
            tips_tree: crate::tips::TipsTree::new(),
            events: EventSeqs::new(),
            last_seal: [0; 32],
            sealed: Vec::new(),
            genesis: None,
            verifier: None,
            last_logged_at_ns: 0,
            last_checkpoint_size: 0,
            last_checkpoint: None,
            receipts: 0,
            seen: None,
            checkpoints: 0,
            shreds: Vec::new(),
            holds: crate::retention::HoldSet::new(),
            key_id_max: None,
            pruned: None,
            last_prune: None,
            archived_end: Seq(0),
            archives: Vec::new(),
        }
    }

    /// The origin of epoch `epoch`'s checkpoints.
    #[must_use]
    pub fn origin(prefix: &str, epoch: Epoch) -> String {
        format!("{prefix}/epoch/{epoch}")
    }

    /// The tenant tips as of now, for a checkpoint or seal note.
    pub fn tips_commitment(&mut self) -> crate::tips::TipsCommitment {
        self.tips_tree.update(self.alg, &self.tenant_tips);
        self.tips_tree.commitment(self.alg)
    }

    /// Entries in the current epoch's tree.
    #[must_use]
    pub fn epoch_entries(&self) -> u64 {
        self.tree.size()
    }

    /// Chain fields for the next entry (`tenant` for receipts).
    #[must_use]
    pub fn next_chain_fields(&self, tenant: Option<&str>, logged_at_ns: u64) -> ChainFields {
        let (tenant_prev_seq, tenant_prev_hash) = tenant
            .and_then(|t| self.tenant_tips.get(t))
            .map_or((NO_TENANT_PREV, [0; 32]), |(seq, hash)| (seq.0, *hash));
        ChainFields {
            epoch: self.epoch.0,
            logged_at_ns: logged_at_ns.max(self.last_logged_at_ns),
            prev_chain_hash: self.last_hash,
            tenant_prev_seq,
            tenant_prev_hash,
        }
    }

    /// Advances past an entry the writer just appended (no re-checking).
    pub fn advance(&mut self, kind: EntryKind, chain: &ChainFields, chain_hash: Digest) {
        let leaf_hash = merkle::leaf_hash(self.alg, &chain_hash);
        self.advance_with_leaf(kind, chain, chain_hash, &leaf_hash);
    }

    fn advance_with_leaf(
        &mut self,
        kind: EntryKind,
        chain: &ChainFields,
        chain_hash: Digest,
        leaf_hash: &Digest,
    ) {
        self.last_logged_at_ns = chain.logged_at_ns;
        self.last_hash = chain_hash;
        self.next_seq = self.next_seq.next();
        if kind == EntryKind::EpochSeal {
            self.epoch = Epoch(self.epoch.0 + 1);
            self.epoch_first_seq = self.next_seq;
            self.tree = CompactRange::new(self.alg);
            self.last_checkpoint_size = 0;
            self.last_checkpoint = None;
        } else {
            // A tree of 2^64 leaves cannot be reached: the log's sequence numbers run out first.
            let _ = self.tree.append(leaf_hash);
        }
    }

    /// Checks entry `seq` (WAL record kind `kind_byte`, bytes `bytes`) against the state and
    /// advances past it. Returns the entry's chain hash.
    ///
    /// # Errors
    /// The [`Damage`] found; the state is then unchanged.
    pub fn apply(
        &mut self,
        seq: Seq,
        kind_byte: u8,
        bytes: &[u8],
        mode: ReplayMode,
    ) -> Result<Digest, Damage> {
        self.apply_with(seq, kind_byte, bytes, mode, None)
    }

    /// [`ChainState::apply`] with the entry's hashes computed ahead (in another thread, say):
    /// `digests` must be [`EntryDigests::compute`] of the same `seq`, kind and bytes under this
    /// state's algorithm. Everything else is checked here as in `apply`.
    ///
    /// # Errors
    /// As [`ChainState::apply`].
    pub fn apply_with(
        &mut self,
        seq: Seq,
        kind_byte: u8,
        bytes: &[u8],
        mode: ReplayMode,
        digests: Option<&EntryDigests>,
    ) -> Result<Digest, Damage> {
        let damage = |kind, detail: String| Damage { seq, kind, detail };
        if seq != self.next_seq {
            return Err(damage(
                DamageKind::Frame,
                format!("expected seq {}", self.next_seq),
            ));
        }
        let kind = EntryKind::from_byte(kind_byte).ok_or_else(|| {
            damage(
                DamageKind::Malformed,
                format!("unknown entry kind {kind_byte}"),
            )
        })?;
        let entry = entry::decode_entry(kind, bytes)
            .map_err(|e| damage(DamageKind::Malformed, e.to_string()))?;
        let digests = match digests {
            Some(d) => *d,
            None => EntryDigests::of_entry(self.alg, seq, &entry, mode),
        };
        self.check_common(seq, &entry, mode, &digests)?;
        let chain_hash = digests.chain_hash;
        match kind {
            EntryKind::Genesis => self.check_genesis(seq, &entry)?,
            EntryKind::Receipt => self.check_receipt(seq, &entry, &chain_hash, mode)?,
            EntryKind::Checkpoint | EntryKind::EpochSeal => self.check_note(seq, &entry, mode)?,
            EntryKind::Shred => self.check_shred(seq, &entry, &chain_hash)?,
            EntryKind::Hold => self.check_hold(seq, &entry, &chain_hash)?,
            EntryKind::Prune => self.check_prune(seq, &entry, &chain_hash)?,
            EntryKind::Archive => self.check_archive(seq, &entry, &chain_hash)?,
        }
        self.advance_with_leaf(kind, &entry.chain, chain_hash, &digests.leaf_hash);
        Ok(chain_hash)
    }

    fn check_common(
        &self,
        seq: Seq,
        entry: &EntryRef<'_>,
        mode: ReplayMode,
        digests: &EntryDigests,
    ) -> Result<(), Damage> {
        let damage = |kind, detail: String| Err(Damage { seq, kind, detail });
        if mode == ReplayMode::Verify && digests.payload == DigestCheck::Differs {
            return damage(
                DamageKind::PayloadDigest,
                "the payload bytes do not match the stored payload digest".into(),
            );
        }
        if digests.content == DigestCheck::Differs {
            return damage(
                DamageKind::ContentDigest,
                "header or payload digest does not match the content digest".into(),
            );
        }
        if entry.chain.prev_chain_hash != self.last_hash {
            return damage(
                DamageKind::ChainLink,
                "does not link to the previous entry's chain hash (this link or the previous \
                 entry's bytes were changed, or an entry was removed, inserted or reordered)"
                    .into(),
            );
        }
        if entry.chain.epoch != self.epoch.0 {
            return damage(
                DamageKind::Epoch,
                format!(
                    "records epoch {} in epoch {}",
                    entry.chain.epoch, self.epoch
                ),
            );
        }
        if entry.chain.logged_at_ns < self.last_logged_at_ns {
            return damage(DamageKind::Timestamp, "logged_at goes backwards".into());
        }
        if entry.kind != EntryKind::Receipt
            && (entry.chain.tenant_prev_seq != NO_TENANT_PREV
                || entry.chain.tenant_prev_hash != [0; 32])
        {
            return damage(
                DamageKind::TenantLink,
                "a non-receipt entry carries a tenant link".into(),
            );
        }
        if entry.kind != EntryKind::EpochSeal && self.tree.size() >= u64::MAX / 2 {
            return damage(DamageKind::Epoch, "epoch too large".into());
        }
        Ok(())
    }

    fn check_genesis(&mut self, seq: Seq, entry: &EntryRef<'_>) -> Result<(), Damage> {
        let damage = |detail: String| Damage {
            seq,
            kind: DamageKind::Genesis,
            detail,
        };
        if seq != Seq(0) {
            return Err(damage("a genesis entry after the start of the log".into()));
        }
        let genesis: Genesis = serde_json::from_slice(entry.payload)
            .map_err(|e| damage(format!("genesis payload: {e}")))?;
        let expected = match self.alg {
            HashAlgorithm::Blake3 => "blake3",
            HashAlgorithm::Sha256 => "sha256",
        };
        if genesis.hash_algorithm != expected {
            return Err(damage(format!(
                "genesis says {} but the log uses {expected}",
                genesis.hash_algorithm
            )));
        }
        let verifier = NoteVerifier::from_vkey(&genesis.verifier_key)
            .map_err(|e| damage(format!("verifier key: {e}")))?;
        self.verifier = Some(verifier);
        self.genesis = Some(genesis);
        Ok(())
    }

    fn require_genesis(&self, seq: Seq) -> Result<(&Genesis, &NoteVerifier), Damage> {
        match (&self.genesis, &self.verifier) {
            (Some(genesis), Some(verifier)) => Ok((genesis, verifier)),
            _ => Err(Damage {
                seq,
                kind: DamageKind::Genesis,
                detail: "the log does not start with a genesis entry".into(),
            }),
        }
    }

    fn check_receipt(
        &mut self,
        seq: Seq,
        entry: &EntryRef<'_>,
        chain_hash: &Digest,
        mode: ReplayMode,
    ) -> Result<(), Damage> {
        let used_key = if entry.flags & entry::flags::PAYLOAD_ENCRYPTED == 0 {
            None
        } else {
            Some(
                crate::crypto::payload_key_id(entry.payload).map_err(|e| Damage {
                    seq,
                    kind: DamageKind::Malformed,
                    detail: format!("encrypted payload: {e}"),
                })?,
            )
        };
        let (_, verifier) = self.require_genesis(seq)?;
        let damage = |kind, detail: String| Damage { seq, kind, detail };
        let malformed =
            |e: ReceiptError| damage(DamageKind::Malformed, format!("receipt header: {e}"));
        // Opening needs the tenant and event id only; verifying checks the whole header,
        // borrowed (no allocation per receipt); the full decode runs only to name what is
        // wrong with a header that fails.
        let (tenant, event_id) = match mode {
            ReplayMode::Verify => {
                if let Some(ids) = crate::receipt::checked_ids(entry.header) {
                    ids
                } else {
                    ReceiptHeader::decode(entry.header).map_err(malformed)?;
                    ReceiptHeader::peek_ids(entry.header).map_err(malformed)?
                }
            }
            ReplayMode::Open => ReceiptHeader::peek_ids(entry.header).map_err(malformed)?,
        };
        if let Some(signature) = entry.signature
            && !verifier.verify(chain_hash, signature)
        {
            return Err(damage(
                DamageKind::Signature,
                "the receipt signature does not verify".into(),
            ));
        }
        // One lookup of the tenant's tip for the check and the update (each lookup hashes the
        // tenant id); a receipt that fails the check leaves the tip as it was.
        let tip = self.tenant_tips.get_mut(tenant);
        let expected = tip
            .as_deref()
            .map_or((NO_TENANT_PREV, [0; 32]), |(s, h)| (s.0, *h));
        if (entry.chain.tenant_prev_seq, entry.chain.tenant_prev_hash) != expected {
            return Err(damage(
                DamageKind::TenantLink,
                format!("does not link to tenant {tenant}'s previous receipt"),
            ));
        }
        match tip {
            Some(tip) => *tip = (seq, *chain_hash),
            None => {
                self.tenant_tips
                    .insert(tenant.to_owned(), (seq, *chain_hash));
            }
        }
        self.key_id_max = self.key_id_max.max(used_key);
        self.receipts += 1;
        // Opening leaves idempotency to the index (a map of every event would grow with the
        // store); verify keeps one to report duplicates.
        if mode == ReplayMode::Open {
            if let Some(seen) = &self.seen {
                seen.insert(tenant, event_id);
            }
            return Ok(());
        }
        if let Some(first) = self.events.insert(tenant, event_id, seq) {
            return Err(damage(
                DamageKind::DuplicateEvent,
                format!("event {event_id} of tenant {tenant} was already stored at seq {first}"),
            ));
        }
        Ok(())
    }

    /// A note's tips line, when it has one, must commit to the tenant tips the entries before
    /// it leave. Notes written before tips existed have none.
    fn check_tips(&mut self, extensions: &[String]) -> Result<(), String> {
        let Some(stated) = crate::tips::TipsCommitment::from_extensions(extensions)? else {
            return Ok(());
        };
        let actual = self.tips_commitment();
        if stated != actual {
            return Err(format!(
                "tips line {:?} does not match the tenants' last receipts ({:?})",
                stated.to_line(),
                actual.to_line()
            ));
        }
        Ok(())
    }

    fn check_note(
        &mut self,
        seq: Seq,
        entry: &EntryRef<'_>,
        mode: ReplayMode,
    ) -> Result<(), Damage> {
        let (genesis, verifier) = self.require_genesis(seq)?;
        let damage = |kind, detail: String| Damage { seq, kind, detail };
        if !entry.header.is_empty() {
            return Err(damage(
                DamageKind::Malformed,
                "a checkpoint entry carries a header".into(),
            ));
        }
        let (checkpoint, _) = Checkpoint::open(entry.payload, std::slice::from_ref(verifier))
            .map_err(|e| damage(DamageKind::Checkpoint, format!("signed note: {e}")))?;
        let origin = ChainState::origin(&genesis.origin_prefix, self.epoch);
        if checkpoint.origin != origin {
            return Err(damage(
                DamageKind::Checkpoint,
                format!("origin is {:?}, expected {origin:?}", checkpoint.origin),
            ));
        }
        if checkpoint.tree_size != self.tree.size() || checkpoint.root_hash != self.tree.root() {
            return Err(damage(
                DamageKind::Checkpoint,
                format!(
                    "states size {} with a root that the {} entries before it do not produce",
                    checkpoint.tree_size,
                    self.tree.size()
                ),
            ));
        }
        // Opening trusts the signed notes of its own log, as it trusts payload digests: the
        // tips tree costs a hash per tenant per note.
        if mode == ReplayMode::Verify {
            self.check_tips(&checkpoint.extensions)
                .map_err(|detail| damage(DamageKind::Checkpoint, detail))?;
        }
        if entry.kind == EntryKind::EpochSeal {
            let fields = checkpoint
                .extensions
                .iter()
                .find_map(|line| SealFields::parse(line));
            let fields = fields
                .ok_or_else(|| damage(DamageKind::Seal, "the seal note has no seal line".into()))?;
            let expected = SealFields {
                first_seq: self.epoch_first_seq,
                entries: self.tree.size(),
                last_chain_hash: self.last_hash,
                prev_seal: self.last_seal,
            };
            if fields != expected {
                return Err(damage(
                    DamageKind::Seal,
                    format!(
                        "seal line {:?} does not match the epoch ({:?})",
                        fields.to_line(),
                        expected.to_line()
                    ),
                ));
            }
            self.sealed.push(SealedEpoch {
                epoch: self.epoch,
                first_seq: self.epoch_first_seq,
                entries: self.tree.size(),
                root: checkpoint.root_hash,
                seal_seq: seq,
            });
            self.last_seal = seal_digest(self.alg, entry.payload);
        } else {
            self.last_checkpoint_size = checkpoint.tree_size;
            self.last_checkpoint = Some((seq, String::from_utf8_lossy(entry.payload).into_owned()));
        }
        self.checkpoints += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{EventSeqs, Seq, hex, unhex32};

    #[test]
    fn digests_decode_from_hex_digits_only() {
        let digest: [u8; 32] = std::array::from_fn(|i| u8::try_from(i * 7).unwrap_or(0));
        assert_eq!(unhex32(&hex(&digest)), Some(digest));
        assert_eq!(unhex32(&hex(&digest).to_uppercase()), Some(digest));
        // `u8::from_str_radix` would read "+0" as 0 and "+f" as 15.
        for sign in ["+0", "+f", "-0", " f", "0x", "g0"] {
            let text = format!("{sign}{}", &hex(&digest)[2..]);
            assert_eq!(unhex32(&text), None, "{text}");
            assert_eq!(crate::prune::unhex(&text), None, "{text}");
        }
        assert_eq!(crate::prune::unhex("00ff"), Some(vec![0, 255]));
        assert_eq!(crate::prune::unhex("0"), None);
        assert_eq!(crate::prune::unhex("é0"), None);
    }

    #[test]
    fn event_seqs_keep_the_first_seq_and_tell_pairs_apart() {
        let mut seen = EventSeqs::new();
        assert_eq!(seen.insert("acme", "e-1", Seq(1)), None);
        // The boundary between tenant and event id is part of the key.
        assert_eq!(seen.insert("acm", "ee-1", Seq(2)), None);
        assert_eq!(seen.insert("acme", "e-1", Seq(3)), Some(Seq(1)));
        assert_eq!(seen.insert("acme", "e-1", Seq(4)), Some(Seq(1)));
        for i in 0..10_000u64 {
            assert_eq!(seen.insert("t", &format!("e-{i}"), Seq(10 + i)), None);
        }
        assert_eq!(seen.len(), 10_002);
    }
}
