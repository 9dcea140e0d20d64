//! Log entries: the engine's records inside WAL frames, and the hash chain over them.
//!
//! Every entry — receipt, checkpoint, epoch seal, genesis — is one WAL record whose WAL kind is
//! the [`EntryKind`]. Its layout is fixed-size fields followed by the header and payload bytes
//! (see `docs/design.md`, "Entries"). The caller threads compute the expensive digests
//! ([`content_digest`] over header and payload); the single writer only chains fixed-size
//! digests ([`chain_hash`]), so the chain is not capped by hashing speed.

use std::sync::LazyLock;

use crate::merkle::Digest;
use crate::wal::format::{array_at, u32_at, u64_at};
use crate::wal::{HashAlgorithm, Seq};

/// Entry format version written in byte 0 of every new entry.
pub const ENTRY_VERSION: u8 = 3;
/// The previous entry version, still read (stores written before 2026-11-24).
pub const ENTRY_VERSION_V2: u8 = 2;
/// Bytes before the header and payload (version 3).
pub const ENTRY_FIXED_BYTES: usize = 96;
/// Bytes before the header and payload in a version 2 entry.
pub const ENTRY_FIXED_BYTES_V2: usize = 168;
/// No previous receipt of the tenant (first of its chain), in `tenant_prev_seq`.
pub const NO_TENANT_PREV: u64 = u64::MAX;

/// Domain-separation context of the payload digest (BLAKE3 `derive_key`; SHA-256 prefix).
pub const PAYLOAD_CONTEXT: &str = "trailmix-db 2026-11-22 entry payload v1";
/// Domain-separation context of the content digest of a version 3 entry (it covers the flags).
pub const CONTENT_CONTEXT: &str = "trailmix-db 2026-11-24 entry content v2";
/// Domain-separation context of the chain hash of a version 3 entry.
pub const CHAIN_CONTEXT: &str = "trailmix-db 2026-11-24 entry chain v3";
/// Content-digest context of version 2 entries.
pub const CONTENT_CONTEXT_V2: &str = "trailmix-db 2026-11-22 entry content v1";
/// Chain-hash context of version 2 entries.
pub const CHAIN_CONTEXT_V2: &str = "trailmix-db 2026-11-23 entry chain v2";

/// What an entry is; also its WAL record kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EntryKind {
    /// The first entry of a store: binds the signing key and settings into the chain.
    Genesis = 1,
    /// An AI decision receipt.
    Receipt = 2,
    /// A signed checkpoint of the current epoch's tree.
    Checkpoint = 3,
    /// The signed seal that closes an epoch.
    EpochSeal = 4,
    /// A signed record of a crypto-shred: which data keys were destroyed, for which request
    /// (see [`crate::shred::ShredRecord`]).
    Shred = 5,
    /// A signed legal hold or release on a tenant or subject (see
    /// [`crate::retention::HoldRecord`]).
    Hold = 6,
    /// A signed record of a prune: which epochs were dropped under which policy, and the
    /// digest of the retained state that replaces them (see [`crate::prune::PruneRecord`]).
    Prune = 7,
    /// A signed record of an archive run: which sealed epochs were shipped to object storage
    /// and verified there, with the digests of their manifests (see
    /// [`crate::archive::ArchiveRecord`]).
    Archive = 8,
}

impl EntryKind {
    /// Decodes a WAL record kind.
    #[must_use]
    pub fn from_byte(byte: u8) -> Option<EntryKind> {
        match byte {
            1 => Some(EntryKind::Genesis),
            2 => Some(EntryKind::Receipt),
            3 => Some(EntryKind::Checkpoint),
            4 => Some(EntryKind::EpochSeal),
            5 => Some(EntryKind::Shred),
            6 => Some(EntryKind::Hold),
            7 => Some(EntryKind::Prune),
            8 => Some(EntryKind::Archive),
            _ => None,
        }
    }

    /// Lower-case name for reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Genesis => "genesis",
            EntryKind::Receipt => "receipt",
            EntryKind::Checkpoint => "checkpoint",
            EntryKind::EpochSeal => "epoch seal",
            EntryKind::Shred => "shred record",
            EntryKind::Hold => "legal hold record",
            EntryKind::Prune => "prune record",
            EntryKind::Archive => "archive record",
        }
    }
}

/// Flags byte.
pub mod flags {
    /// The payload is AEAD ciphertext.
    pub const PAYLOAD_ENCRYPTED: u8 = 0b0000_0001;
    /// A 64-byte Ed25519 signature over the chain hash follows the payload.
    pub const SIGNED: u8 = 0b0000_0010;
    /// The payload (the plaintext, under the encryption when both are set) is one Zstandard
    /// frame of the canonical payload (see [`crate::compress`]).
    pub const PAYLOAD_COMPRESSED: u8 = 0b0000_0100;
    /// Every flag this version knows.
    pub const KNOWN: u8 = PAYLOAD_ENCRYPTED | SIGNED | PAYLOAD_COMPRESSED;
}

static PAYLOAD_CONTEXT_KEY: LazyLock<blake3::hazmat::ContextKey> =
    LazyLock::new(|| blake3::hazmat::hash_derive_key_context(PAYLOAD_CONTEXT));
static CONTENT_CONTEXT_KEY: LazyLock<blake3::hazmat::ContextKey> =
    LazyLock::new(|| blake3::hazmat::hash_derive_key_context(CONTENT_CONTEXT));
static CHAIN_CONTEXT_KEY: LazyLock<blake3::hazmat::ContextKey> =
    LazyLock::new(|| blake3::hazmat::hash_derive_key_context(CHAIN_CONTEXT));
static CONTENT_CONTEXT_V2_KEY: LazyLock<blake3::hazmat::ContextKey> =
    LazyLock::new(|| blake3::hazmat::hash_derive_key_context(CONTENT_CONTEXT_V2));
static CHAIN_CONTEXT_V2_KEY: LazyLock<blake3::hazmat::ContextKey> =
    LazyLock::new(|| blake3::hazmat::hash_derive_key_context(CHAIN_CONTEXT_V2));

/// A BLAKE3 hasher in `derive_key(context)` mode. Deriving the context key costs a
/// compression per call; the hot contexts start from their derived key instead (same output,
/// one compression less per hash; and no clone of a whole hasher state, which costs a few
/// hundred instructions per hash of a short input).
fn blake3_hasher(context: &str) -> blake3::Hasher {
    use blake3::hazmat::HasherExt as _;
    match context {
        PAYLOAD_CONTEXT => blake3::Hasher::new_from_context_key(&PAYLOAD_CONTEXT_KEY),
        CONTENT_CONTEXT => blake3::Hasher::new_from_context_key(&CONTENT_CONTEXT_KEY),
        CHAIN_CONTEXT => blake3::Hasher::new_from_context_key(&CHAIN_CONTEXT_KEY),
        CONTENT_CONTEXT_V2 => blake3::Hasher::new_from_context_key(&CONTENT_CONTEXT_V2_KEY),
        CHAIN_CONTEXT_V2 => blake3::Hasher::new_from_context_key(&CHAIN_CONTEXT_V2_KEY),
        other => blake3::Hasher::new_derive_key(other),
    }
}

/// Hashes `parts` under a domain-separation context: BLAKE3 `derive_key(context)`, or
/// SHA-256 over `context || 0x00 || parts`.
#[must_use]
pub fn hash_with_context(alg: HashAlgorithm, context: &str, parts: &[&[u8]]) -> Digest {
    match alg {
        HashAlgorithm::Blake3 => {
            let mut hasher = blake3_hasher(context);
            for part in parts {
                hasher.update(part);
            }
            *hasher.finalize().as_bytes()
        }
        HashAlgorithm::Sha256 => {
            use sha2::Digest as _;
            let mut hasher = sha2::Sha256::new();
            hasher.update(context.as_bytes());
            hasher.update([0u8]);
            for part in parts {
                hasher.update(part);
            }
            hasher.finalize().into()
        }
    }
}

/// Digest of the payload bytes as stored (ciphertext when encrypted).
#[must_use]
pub fn payload_digest(alg: HashAlgorithm, payload: &[u8]) -> Digest {
    hash_with_context(alg, PAYLOAD_CONTEXT, &[payload])
}

/// Digest of a version 3 entry's content: kind, flags byte, header bytes and payload digest.
/// The flags are known when the receipt is prepared, so covering them here (in the callers'
/// threads) keeps the writer's chain-hash input at 128 bytes (two BLAKE3 compressions).
#[must_use]
pub fn content_digest(
    alg: HashAlgorithm,
    kind: EntryKind,
    flag_bits: u8,
    header: &[u8],
    payload_digest: &Digest,
) -> Digest {
    content_digest_with(
        alg,
        CONTENT_CONTEXT,
        &[kind as u8, flag_bits],
        header,
        payload_digest,
    )
}

/// Digest of a version 2 entry's content: kind, header bytes and payload digest (the flags
/// were in its chain hash instead).
#[must_use]
pub fn content_digest_v2(
    alg: HashAlgorithm,
    kind: EntryKind,
    header: &[u8],
    payload_digest: &Digest,
) -> Digest {
    content_digest_with(
        alg,
        CONTENT_CONTEXT_V2,
        &[kind as u8],
        header,
        payload_digest,
    )
}

fn content_digest_with(
    alg: HashAlgorithm,
    context: &str,
    lead: &[u8],
    header: &[u8],
    payload_digest: &Digest,
) -> Digest {
    let header_len = u64::try_from(header.len())
        .unwrap_or(u64::MAX)
        .to_le_bytes();
    // Typical headers fit a stack buffer: one hasher update instead of four (each update
    // has a fixed cost next to a compression). The digest is the same either way.
    let mut input = [0u8; CONTENT_INPUT_INLINE_BYTES];
    let at = lead.len();
    let len = at + 8 + header.len() + 32;
    if let Some(buf) = input.get_mut(..len) {
        buf[..at].copy_from_slice(lead);
        buf[at..at + 8].copy_from_slice(&header_len);
        buf[at + 8..at + 8 + header.len()].copy_from_slice(header);
        buf[at + 8 + header.len()..].copy_from_slice(payload_digest);
        return hash_with_context(alg, context, &[buf]);
    }
    hash_with_context(alg, context, &[lead, &header_len, header, payload_digest])
}

/// Content-digest inputs up to this size are hashed from one stack buffer.
const CONTENT_INPUT_INLINE_BYTES: usize = 512;

/// The chain fields the writer assigns to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainFields {
    /// Epoch the entry belongs to.
    pub epoch: u64,
    /// The writer's monotonic stamp, nanoseconds since the Unix epoch.
    pub logged_at_ns: u64,
    /// Chain hash of the previous entry (zero before the first).
    pub prev_chain_hash: Digest,
    /// Sequence number of the tenant's previous receipt, or [`NO_TENANT_PREV`].
    pub tenant_prev_seq: u64,
    /// Chain hash of the tenant's previous receipt (zero when none).
    pub tenant_prev_hash: Digest,
}

/// The Merkle leaf hash of entry `seq`: the leaf hash of its chain hash (what every epoch tree
/// holds, and what proofs and evidence packs recompute from the log).
#[must_use]
pub fn leaf_hash(alg: HashAlgorithm, seq: Seq, entry: &EntryRef<'_>) -> Digest {
    crate::merkle::leaf_hash(alg, &entry.chain_hash(alg, seq))
}

/// A version 3 entry's chain hash (`hash_self`): covers the previous hash, the sequence
/// number, the chain fields and the content digest (which covers the flags byte). Exactly 128
/// bytes of input: two BLAKE3 compressions for the single writer.
#[must_use]
pub fn chain_hash(
    alg: HashAlgorithm,
    seq: Seq,
    chain: &ChainFields,
    content_digest: &Digest,
) -> Digest {
    // One buffer, one hasher update (the parts in order; the digest is the same as hashing
    // them one by one).
    let mut input = [0u8; CHAIN_INPUT_BYTES];
    fill_chain_input(&mut input, seq, chain);
    input[96..].copy_from_slice(content_digest);
    hash_with_context(alg, CHAIN_CONTEXT, &[&input])
}

/// A version 2 entry's chain hash: as [`chain_hash`] with the flags byte between the tenant
/// link and the content digest (129 bytes), under the v2 context.
#[must_use]
pub fn chain_hash_v2(
    alg: HashAlgorithm,
    seq: Seq,
    flag_bits: u8,
    chain: &ChainFields,
    content_digest: &Digest,
) -> Digest {
    let mut input = [0u8; CHAIN_INPUT_BYTES + 1];
    fill_chain_input(&mut input, seq, chain);
    input[96] = flag_bits;
    input[97..].copy_from_slice(content_digest);
    hash_with_context(alg, CHAIN_CONTEXT_V2, &[&input])
}

fn fill_chain_input(input: &mut [u8], seq: Seq, chain: &ChainFields) {
    input[..32].copy_from_slice(&chain.prev_chain_hash);
    input[32..40].copy_from_slice(&seq.0.to_le_bytes());
    input[40..48].copy_from_slice(&chain.epoch.to_le_bytes());
    input[48..56].copy_from_slice(&chain.logged_at_ns.to_le_bytes());
    input[56..64].copy_from_slice(&chain.tenant_prev_seq.to_le_bytes());
    input[64..96].copy_from_slice(&chain.tenant_prev_hash);
}

/// The version 3 chain hash's input: previous hash, seq, epoch, logged-at, tenant link (seq
/// and hash), content digest.
const CHAIN_INPUT_BYTES: usize = 32 + 8 + 8 + 8 + 8 + 32 + 32;

/// The digests a version 2 entry stores (version 3 stores none: every reader recomputes them,
/// and the chain hash covers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredDigests {
    /// Content digest as stored.
    pub content_digest: Digest,
    /// Payload digest as stored.
    pub payload_digest: Digest,
}

/// An entry decoded from a WAL record, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Kind (the WAL record kind).
    pub kind: EntryKind,
    /// Flags byte.
    pub flags: u8,
    /// Chain fields.
    pub chain: ChainFields,
    /// The digests of a version 2 entry; `None` for version 3 (what [`EntryRef::encode_into`]
    /// writes follows: version 2 with them, version 3 without).
    pub stored: Option<StoredDigests>,
    /// Header bytes (a receipt header; empty for other kinds).
    pub header: &'a [u8],
    /// Payload bytes.
    pub payload: &'a [u8],
    /// Signature over the chain hash, when present.
    pub signature: Option<&'a [u8; 64]>,
}

/// Why entry bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryDecodeError {
    /// Shorter than the fixed part or than the lengths it declares.
    #[error("entry is {len} bytes, shorter than the {needed} it needs")]
    Short {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// Unknown entry version.
    #[error(
        "entry version {0}, but this build reads versions {ENTRY_VERSION_V2} and {ENTRY_VERSION} \
         only (version 1, before 2026-11-23, left the flags byte out of the chain hash; such \
         stores are not read)"
    )]
    Version(u8),
    /// Unknown flags or non-zero reserved bytes.
    #[error("invalid {0}")]
    BadField(&'static str),
    /// Bytes after the declared end.
    #[error("{0} trailing bytes after the entry")]
    Trailing(usize),
}

impl EntryRef<'_> {
    /// The entry's version: 2 when it carries stored digests, else 3.
    #[must_use]
    pub fn version(&self) -> u8 {
        if self.stored.is_some() {
            ENTRY_VERSION_V2
        } else {
            ENTRY_VERSION
        }
    }

    /// The content digest the chain hash covers: recomputed from the header and payload for
    /// version 3; as stored for version 2 ([`EntryRef::stored_digests_match`] checks it).
    #[must_use]
    pub fn content_digest(&self, alg: HashAlgorithm) -> Digest {
        match &self.stored {
            Some(stored) => stored.content_digest,
            None => content_digest(
                alg,
                self.kind,
                self.flags,
                self.header,
                &payload_digest(alg, self.payload),
            ),
        }
    }

    /// The entry's chain hash under its version's rules (the content digest recomputed for
    /// version 3, as stored for version 2).
    #[must_use]
    pub fn chain_hash(&self, alg: HashAlgorithm, seq: Seq) -> Digest {
        self.chain_hash_with(alg, seq, &self.content_digest(alg))
    }

    /// The chain hash from a content digest computed by the caller (from
    /// [`EntryRef::content_digest`]).
    #[must_use]
    pub fn chain_hash_with(&self, alg: HashAlgorithm, seq: Seq, content: &Digest) -> Digest {
        if self.stored.is_some() {
            chain_hash_v2(alg, seq, self.flags, &self.chain, content)
        } else {
            chain_hash(alg, seq, &self.chain, content)
        }
    }

    /// Whether a version 2 entry's stored payload digest is the payload's. Always true for
    /// version 3, which stores none: a changed byte shows in the chain hash instead.
    #[must_use]
    pub fn stored_payload_digest_matches(&self, alg: HashAlgorithm) -> bool {
        self.stored
            .is_none_or(|stored| payload_digest(alg, self.payload) == stored.payload_digest)
    }

    /// Whether a version 2 entry's stored content digest is that of its kind, header and
    /// stored payload digest. Always true for version 3.
    #[must_use]
    pub fn stored_content_digest_matches(&self, alg: HashAlgorithm) -> bool {
        self.stored.is_none_or(|stored| {
            content_digest_v2(alg, self.kind, self.header, &stored.payload_digest)
                == stored.content_digest
        })
    }

    /// Both checks above.
    #[must_use]
    pub fn stored_digests_match(&self, alg: HashAlgorithm) -> bool {
        self.stored_payload_digest_matches(alg) && self.stored_content_digest_matches(alg)
    }

    /// Bytes before the header (the fixed part of this entry's version).
    #[must_use]
    pub fn fixed_bytes(&self) -> usize {
        if self.stored.is_some() {
            ENTRY_FIXED_BYTES_V2
        } else {
            ENTRY_FIXED_BYTES
        }
    }

    /// Encodes the entry into `out` (cleared first): version 2 when it carries stored digests,
    /// else version 3. The `SIGNED` flag follows `signature`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.fixed_bytes() + self.header.len() + self.payload.len() + 64);
        let flag_bits = if self.signature.is_some() {
            self.flags | flags::SIGNED
        } else {
            self.flags & !flags::SIGNED
        };
        let header_len = u32::try_from(self.header.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes();
        match &self.stored {
            None => {
                out.extend_from_slice(&[ENTRY_VERSION, flag_bits, 0, 0]);
                out.extend_from_slice(&header_len);
            }
            Some(_) => out.extend_from_slice(&[ENTRY_VERSION_V2, flag_bits, 0, 0, 0, 0, 0, 0]),
        }
        out.extend_from_slice(&self.chain.epoch.to_le_bytes());
        out.extend_from_slice(&self.chain.logged_at_ns.to_le_bytes());
        out.extend_from_slice(&self.chain.prev_chain_hash);
        out.extend_from_slice(&self.chain.tenant_prev_seq.to_le_bytes());
        out.extend_from_slice(&self.chain.tenant_prev_hash);
        if let Some(stored) = &self.stored {
            out.extend_from_slice(&stored.content_digest);
            out.extend_from_slice(&stored.payload_digest);
            out.extend_from_slice(&header_len);
            out.extend_from_slice(
                &u32::try_from(self.payload.len())
                    .unwrap_or(u32::MAX)
                    .to_le_bytes(),
            );
        }
        debug_assert_eq!(out.len(), self.fixed_bytes());
        out.extend_from_slice(self.header);
        out.extend_from_slice(self.payload);
        if let Some(signature) = self.signature {
            out.extend_from_slice(signature);
        }
    }
}

/// Why a well-framed record of WAL kind byte `kind` with entry bytes `bytes` is beyond this
/// build, when it is: an entry kind it does not know, an entry version above
/// [`ENTRY_VERSION`], or an encrypted payload whose format byte is above those
/// [`crate::crypto`] knows (what a newer build would write). `None` when both are known: then bytes
/// that do not decode are damage. The frame's checksum has passed by then, so an unknown
/// byte here is far likelier a newer writer than a flipped bit; `verify` still reports such an
/// entry as `Malformed` (it cannot check what it cannot decode).
#[must_use]
pub fn newer_format(kind: u8, bytes: &[u8]) -> Option<String> {
    if EntryKind::from_byte(kind).is_none() {
        return Some(format!("entry kind {kind}, which this build does not know"));
    }
    match bytes.first() {
        Some(&version) if version > ENTRY_VERSION => {
            return Some(format!(
                "entry version {version} (this build reads versions {ENTRY_VERSION_V2} and \
                 {ENTRY_VERSION})"
            ));
        }
        _ => {}
    }
    // A receipt whose ciphertext names a payload format above those this build knows.
    let entry = decode_entry(EntryKind::from_byte(kind)?, bytes).ok()?;
    if entry.flags & flags::PAYLOAD_ENCRYPTED == 0 {
        return None;
    }
    match crate::crypto::payload_key_id(entry.payload) {
        Err(newer @ crate::crypto::CryptoError::NewerFormat(_)) => Some(newer.to_string()),
        _ => None,
    }
}

/// Decodes entry bytes of a WAL record of kind `kind` (version 3, or version 2). Checks
/// structure only; digests and the chain are checked by verification.
///
/// # Errors
/// [`EntryDecodeError`] naming the problem.
pub fn decode_entry(kind: EntryKind, bytes: &[u8]) -> Result<EntryRef<'_>, EntryDecodeError> {
    let version = *bytes.first().ok_or(EntryDecodeError::Short {
        len: 0,
        needed: ENTRY_FIXED_BYTES,
    })?;
    let fixed_bytes = match version {
        ENTRY_VERSION => ENTRY_FIXED_BYTES,
        ENTRY_VERSION_V2 => ENTRY_FIXED_BYTES_V2,
        other => return Err(EntryDecodeError::Version(other)),
    };
    if bytes.len() < fixed_bytes {
        return Err(EntryDecodeError::Short {
            len: bytes.len(),
            needed: fixed_bytes,
        });
    }
    let flag_bits = bytes[1];
    if flag_bits & !flags::KNOWN != 0 {
        return Err(EntryDecodeError::BadField("flags"));
    }
    let reserved = if version == ENTRY_VERSION {
        &bytes[2..4]
    } else {
        &bytes[2..8]
    };
    if reserved.iter().any(|&b| b != 0) {
        return Err(EntryDecodeError::BadField("reserved bytes"));
    }
    let signature_len = if flag_bits & flags::SIGNED == 0 {
        0
    } else {
        64
    };
    let (header_len, payload_len, stored) = if version == ENTRY_VERSION {
        // The entry fills its WAL frame exactly, so the payload runs to the signature: a
        // stored payload length would be redundant.
        let header_len = u32_at(bytes, 4) as usize;
        let needed = fixed_bytes
            .checked_add(header_len)
            .and_then(|n| n.checked_add(signature_len))
            .ok_or(EntryDecodeError::BadField("lengths"))?;
        let payload_len = bytes
            .len()
            .checked_sub(needed)
            .ok_or(EntryDecodeError::Short {
                len: bytes.len(),
                needed,
            })?;
        (header_len, payload_len, None)
    } else {
        let header_len = u32_at(bytes, 160) as usize;
        let payload_len = u32_at(bytes, 164) as usize;
        let needed = fixed_bytes
            .checked_add(header_len)
            .and_then(|n| n.checked_add(payload_len))
            .and_then(|n| n.checked_add(signature_len))
            .ok_or(EntryDecodeError::BadField("lengths"))?;
        if bytes.len() < needed {
            return Err(EntryDecodeError::Short {
                len: bytes.len(),
                needed,
            });
        }
        if bytes.len() > needed {
            return Err(EntryDecodeError::Trailing(bytes.len() - needed));
        }
        let stored = StoredDigests {
            content_digest: array_at::<32>(bytes, 96),
            payload_digest: array_at::<32>(bytes, 128),
        };
        (header_len, payload_len, Some(stored))
    };
    let header_end = fixed_bytes + header_len;
    let payload_end = header_end + payload_len;
    let signature = bytes[payload_end..].first_chunk::<64>();
    Ok(EntryRef {
        kind,
        flags: flag_bits,
        chain: ChainFields {
            epoch: u64_at(bytes, 8),
            logged_at_ns: u64_at(bytes, 16),
            prev_chain_hash: array_at::<32>(bytes, 24),
            tenant_prev_seq: u64_at(bytes, 56),
            tenant_prev_hash: array_at::<32>(bytes, 64),
        },
        stored,
        header: &bytes[fixed_bytes..header_end],
        payload: &bytes[header_end..payload_end],
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: ChainFields = ChainFields {
        epoch: 3,
        logged_at_ns: 99,
        prev_chain_hash: [1; 32],
        tenant_prev_seq: 7,
        tenant_prev_hash: [2; 32],
    };

    #[test]
    fn entry_round_trip_and_strictness() {
        let payload = b"payload";
        let pd = payload_digest(HashAlgorithm::Blake3, payload);
        let cd = content_digest_v2(HashAlgorithm::Blake3, EntryKind::Receipt, b"hdr", &pd);
        for stored in [
            None,
            Some(StoredDigests {
                content_digest: cd,
                payload_digest: pd,
            }),
        ] {
            let mut out = Vec::new();
            let entry = EntryRef {
                kind: EntryKind::Receipt,
                flags: 0,
                chain: CHAIN,
                stored,
                header: b"hdr",
                payload,
                signature: Some(&[9; 64]),
            };
            entry.encode_into(&mut out);
            assert_eq!(out.len(), entry.fixed_bytes() + 3 + payload.len() + 64);
            let decoded = decode_entry(EntryKind::Receipt, &out).expect("decodes");
            assert_eq!(decoded.chain, CHAIN);
            assert_eq!(decoded.header, b"hdr");
            assert_eq!(decoded.payload, payload);
            assert_eq!(decoded.signature, Some(&[9; 64]));
            assert_eq!(decoded.stored, stored);
            assert_eq!(decoded.flags, flags::SIGNED);
            if stored.is_some() {
                out.push(0);
                assert_eq!(
                    decode_entry(EntryKind::Receipt, &out),
                    Err(EntryDecodeError::Trailing(1))
                );
                out.pop();
            }
            out[2] = 1;
            assert!(decode_entry(EntryKind::Receipt, &out).is_err());
            out[2] = 0;
            out[0] = 1;
            assert_eq!(
                decode_entry(EntryKind::Receipt, &out),
                Err(EntryDecodeError::Version(1))
            );
        }
        // A version 3 entry too short for its header length and signature.
        let mut out = Vec::new();
        EntryRef {
            kind: EntryKind::Receipt,
            flags: 0,
            chain: CHAIN,
            stored: None,
            header: b"hdr",
            payload: b"",
            signature: Some(&[9; 64]),
        }
        .encode_into(&mut out);
        out.pop();
        assert!(matches!(
            decode_entry(EntryKind::Receipt, &out),
            Err(EntryDecodeError::Short { .. })
        ));
        assert!(decode_entry(EntryKind::Receipt, &[]).is_err());
    }

    #[test]
    fn one_buffer_digests_equal_the_parts_hashed_in_turn() {
        let pd = [3u8; 32];
        // Both sides of the inline buffer's limit, both algorithms.
        for len in [
            0,
            1,
            200,
            CONTENT_INPUT_INLINE_BYTES - 42,
            CONTENT_INPUT_INLINE_BYTES - 41,
            CONTENT_INPUT_INLINE_BYTES,
            3000,
        ] {
            let header = vec![0x5a; len];
            for alg in [HashAlgorithm::Blake3, HashAlgorithm::Sha256] {
                let header_len = (len as u64).to_le_bytes();
                let parts: [&[u8]; 4] = [&[EntryKind::Receipt as u8], &header_len, &header, &pd];
                assert_eq!(
                    content_digest_v2(alg, EntryKind::Receipt, &header, &pd),
                    hash_with_context(alg, CONTENT_CONTEXT_V2, &parts),
                    "header of {len} bytes"
                );
                let parts: [&[u8]; 5] = [
                    &[EntryKind::Receipt as u8],
                    &[flags::SIGNED],
                    &header_len,
                    &header,
                    &pd,
                ];
                assert_eq!(
                    content_digest(alg, EntryKind::Receipt, flags::SIGNED, &header, &pd),
                    hash_with_context(alg, CONTENT_CONTEXT, &parts),
                    "header of {len} bytes"
                );
            }
        }
        for alg in [HashAlgorithm::Blake3, HashAlgorithm::Sha256] {
            let seq = 11u64.to_le_bytes();
            let epoch = CHAIN.epoch.to_le_bytes();
            let logged = CHAIN.logged_at_ns.to_le_bytes();
            let tenant_prev_seq = CHAIN.tenant_prev_seq.to_le_bytes();
            let parts: [&[u8]; 8] = [
                &CHAIN.prev_chain_hash,
                &seq,
                &epoch,
                &logged,
                &tenant_prev_seq,
                &CHAIN.tenant_prev_hash,
                &[flags::SIGNED],
                &pd,
            ];
            assert_eq!(
                chain_hash_v2(alg, Seq(11), flags::SIGNED, &CHAIN, &pd),
                hash_with_context(alg, CHAIN_CONTEXT_V2, &parts)
            );
            let parts: [&[u8]; 7] = [
                &CHAIN.prev_chain_hash,
                &seq,
                &epoch,
                &logged,
                &tenant_prev_seq,
                &CHAIN.tenant_prev_hash,
                &pd,
            ];
            assert_eq!(
                chain_hash(alg, Seq(11), &CHAIN, &pd),
                hash_with_context(alg, CHAIN_CONTEXT, &parts)
            );
        }
        assert_eq!(CHAIN_INPUT_BYTES, 128, "two BLAKE3 compressions");
        // The pre-derived context keys give BLAKE3's own derive_key.
        for context in [
            PAYLOAD_CONTEXT,
            CONTENT_CONTEXT,
            CHAIN_CONTEXT,
            CONTENT_CONTEXT_V2,
            CHAIN_CONTEXT_V2,
        ] {
            assert_eq!(
                hash_with_context(HashAlgorithm::Blake3, context, &[b"x"]),
                blake3::derive_key(context, b"x")
            );
        }
    }

    #[test]
    fn contexts_separate_domains() {
        let data = [7u8; 32];
        let contexts = [
            PAYLOAD_CONTEXT,
            CONTENT_CONTEXT,
            CHAIN_CONTEXT,
            CONTENT_CONTEXT_V2,
            CHAIN_CONTEXT_V2,
        ];
        let digests: std::collections::HashSet<Digest> = contexts
            .iter()
            .map(|c| hash_with_context(HashAlgorithm::Blake3, c, &[&data]))
            .collect();
        assert_eq!(digests.len(), contexts.len());
        let a = hash_with_context(HashAlgorithm::Blake3, PAYLOAD_CONTEXT, &[&data]);
        let s = hash_with_context(HashAlgorithm::Sha256, PAYLOAD_CONTEXT, &[&data]);
        assert_ne!(a, s);
    }

    #[test]
    fn a_v3_entry_chain_covers_its_flags_and_bytes() {
        let alg = HashAlgorithm::Blake3;
        let entry = EntryRef {
            kind: EntryKind::Receipt,
            flags: 0,
            chain: CHAIN,
            stored: None,
            header: b"hdr",
            payload: b"payload",
            signature: None,
        };
        let base = entry.chain_hash(alg, Seq(5));
        let flagged = EntryRef {
            flags: flags::PAYLOAD_ENCRYPTED,
            ..entry
        };
        assert_ne!(flagged.chain_hash(alg, Seq(5)), base);
        let other_payload = EntryRef {
            payload: b"payloae",
            ..entry
        };
        assert_ne!(other_payload.chain_hash(alg, Seq(5)), base);
        assert_ne!(entry.chain_hash(alg, Seq(6)), base);
    }
}
