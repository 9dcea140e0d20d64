//! Proofs for auditors: inclusion of an entry in a signed checkpoint, and consistency between
//! two checkpoints of an epoch. Producing them needs the store; checking them needs only the
//! bundle and the store's public key ([`verify_inclusion_bundle`], [`verify_consistency_notes`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::entry::{self, EntryKind};
use crate::error::Result;
use crate::merkle::{self, Digest};
use crate::note::{Checkpoint, NoteVerifier};
use crate::position::Epoch;
use crate::receipt::ReceiptHeader;
use crate::wal::{HashAlgorithm, Record, Seq};

/// Everything an auditor needs to check that one entry is in a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionBundle {
    /// `blake3` or `sha256`.
    pub hash_algorithm: String,
    /// The entry's sequence number.
    pub seq: u64,
    /// Its epoch.
    pub epoch: u64,
    /// Its leaf index in the epoch's tree.
    pub leaf_index: u64,
    /// WAL record kind of the entry.
    pub entry_kind: u8,
    /// The entry bytes, base64 (header and payload as stored: ciphertext when encrypted).
    pub entry: String,
    /// The signed checkpoint note the proof is against.
    pub checkpoint: String,
    /// The audit path, base64 digests, leaf to root.
    pub path: Vec<String>,
}

/// A consistency proof between two checkpoint notes of one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyBundle {
    /// `blake3` or `sha256`.
    pub hash_algorithm: String,
    /// The older checkpoint note.
    pub old_checkpoint: String,
    /// The newer checkpoint note.
    pub new_checkpoint: String,
    /// The proof, base64 digests.
    pub path: Vec<String>,
}

/// What a verified inclusion bundle proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedInclusion {
    /// The checkpoint it was proven against.
    pub checkpoint: Checkpoint,
    /// The entry's chain hash.
    pub chain_hash: Digest,
    /// The receipt header, for receipt entries.
    pub header: Option<ReceiptHeader>,
}

/// Why a bundle does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The bundle is malformed.
    #[error("malformed bundle: {0}")]
    Malformed(String),
    /// The checkpoint note does not verify with the given key, or does not parse.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The entry's digests do not match its bytes.
    #[error("entry: {0}")]
    Entry(String),
    /// The Merkle proof does not verify.
    #[error("proof: {0}")]
    Proof(#[from] merkle::ProofError),
}

fn algorithm_name(alg: HashAlgorithm) -> String {
    alg.to_string()
}

fn parse_algorithm(name: &str) -> Result<HashAlgorithm, AuditError> {
    match name {
        "blake3" => Ok(HashAlgorithm::Blake3),
        "sha256" => Ok(HashAlgorithm::Sha256),
        other => Err(AuditError::Malformed(format!(
            "unknown hash algorithm {other:?}"
        ))),
    }
}

fn decode_path(path: &[String]) -> Result<Vec<Digest>, AuditError> {
    path.iter()
        .map(|text| {
            let bytes = STANDARD
                .decode(text)
                .map_err(|e| AuditError::Malformed(format!("path element: {e}")))?;
            <Digest>::try_from(bytes.as_slice())
                .map_err(|_| AuditError::Malformed("a path element is not 32 bytes".into()))
        })
        .collect()
}

fn epoch_of_origin(origin: &str) -> Option<u64> {
    origin
        .rsplit_once("/epoch/")
        .and_then(|(_, n)| n.parse().ok())
}

/// Checks an inclusion bundle with nothing but the store's public key: the checkpoint's
/// signature (`verify_strict`), the entry's digests, and the audit path against the signed
/// root. The tree size comes from the signed checkpoint, never from the bundle.
///
/// # Errors
/// [`AuditError`] saying what does not hold.
pub fn verify_inclusion_bundle(
    bundle: &InclusionBundle,
    verifier: &NoteVerifier,
) -> Result<VerifiedInclusion, AuditError> {
    let alg = parse_algorithm(&bundle.hash_algorithm)?;
    let (checkpoint, _) =
        Checkpoint::open(bundle.checkpoint.as_bytes(), std::slice::from_ref(verifier))
            .map_err(|e| AuditError::Checkpoint(e.to_string()))?;
    if epoch_of_origin(&checkpoint.origin) != Some(bundle.epoch) {
        return Err(AuditError::Checkpoint(format!(
            "origin {:?} is not epoch {}",
            checkpoint.origin, bundle.epoch
        )));
    }
    let bytes = STANDARD
        .decode(&bundle.entry)
        .map_err(|e| AuditError::Malformed(format!("entry: {e}")))?;
    let kind = EntryKind::from_byte(bundle.entry_kind)
        .ok_or_else(|| AuditError::Malformed("unknown entry kind".into()))?;
    let entry = entry::decode_entry(kind, &bytes).map_err(|e| AuditError::Entry(e.to_string()))?;
    if entry.chain.epoch != bundle.epoch {
        return Err(AuditError::Entry(format!(
            "the entry belongs to epoch {}",
            entry.chain.epoch
        )));
    }
    if !entry.stored_payload_digest_matches(alg) {
        return Err(AuditError::Entry(
            "the payload does not match its digest".into(),
        ));
    }
    if !entry.stored_content_digest_matches(alg) {
        return Err(AuditError::Entry(
            "the header or payload digest does not match the content digest".into(),
        ));
    }
    // Version 3: the chain hash is computed from the bytes, so any change fails the path.
    let chain_hash = entry.chain_hash(alg, Seq(bundle.seq));
    let path = decode_path(&bundle.path)?;
    merkle::verify_inclusion(
        alg,
        bundle.leaf_index,
        checkpoint.tree_size,
        &merkle::leaf_hash(alg, &chain_hash),
        &path,
        &checkpoint.root_hash,
    )?;
    let header = if kind == EntryKind::Receipt {
        Some(ReceiptHeader::decode(entry.header).map_err(|e| AuditError::Entry(e.to_string()))?)
    } else {
        None
    };
    Ok(VerifiedInclusion {
        checkpoint,
        chain_hash,
        header,
    })
}

/// Checks that the newer checkpoint of a consistency bundle extends the older one.
///
/// # Errors
/// [`AuditError`] saying what does not hold.
pub fn verify_consistency_notes(
    bundle: &ConsistencyBundle,
    verifier: &NoteVerifier,
) -> Result<(Checkpoint, Checkpoint), AuditError> {
    let alg = parse_algorithm(&bundle.hash_algorithm)?;
    let open = |note: &str| {
        Checkpoint::open(note.as_bytes(), std::slice::from_ref(verifier))
            .map(|(c, _)| c)
            .map_err(|e| AuditError::Checkpoint(e.to_string()))
    };
    let old = open(&bundle.old_checkpoint)?;
    let new = open(&bundle.new_checkpoint)?;
    if old.origin != new.origin {
        return Err(AuditError::Checkpoint(format!(
            "the checkpoints are of different trees ({:?}, {:?})",
            old.origin, new.origin
        )));
    }
    let path = decode_path(&bundle.path)?;
    if old.tree_size == 0 {
        // Every tree extends the empty one: nothing to prove but that the old root is the
        // empty tree's (RFC 9162 defines no consistency proof from size 0).
        return if path.is_empty() && old.root_hash == merkle::empty_root(alg) {
            Ok((old, new))
        } else {
            Err(AuditError::Proof(merkle::ProofError::RootMismatch))
        };
    }
    if old.tree_size == new.tree_size {
        return if path.is_empty() && old.root_hash == new.root_hash {
            Ok((old, new))
        } else {
            Err(AuditError::Proof(merkle::ProofError::RootMismatch))
        };
    }
    merkle::verify_consistency(
        alg,
        old.tree_size,
        new.tree_size,
        &old.root_hash,
        &new.root_hash,
        &path,
    )?;
    Ok((old, new))
}

/// An inclusion bundle for `record` (of `epoch`, which starts at `first_seq`) with its audit
/// path against `checkpoint_note`.
pub(crate) fn inclusion_bundle(
    alg: HashAlgorithm,
    record: &Record,
    epoch: Epoch,
    first_seq: Seq,
    checkpoint_note: String,
    path: &[Digest],
) -> InclusionBundle {
    InclusionBundle {
        hash_algorithm: algorithm_name(alg),
        seq: record.seq.0,
        epoch: epoch.0,
        leaf_index: record.seq.0 - first_seq.0,
        entry_kind: record.kind.get(),
        entry: STANDARD.encode(&record.payload),
        checkpoint: checkpoint_note,
        path: encode_path(path),
    }
}

/// A consistency bundle between two checkpoint notes with its path.
pub(crate) fn consistency_bundle(
    alg: HashAlgorithm,
    old_note: &str,
    new_note: &str,
    path: &[Digest],
) -> ConsistencyBundle {
    ConsistencyBundle {
        hash_algorithm: algorithm_name(alg),
        old_checkpoint: old_note.to_owned(),
        new_checkpoint: new_note.to_owned(),
        path: encode_path(path),
    }
}

fn encode_path(path: &[Digest]) -> Vec<String> {
    path.iter().map(|d| STANDARD.encode(d)).collect()
}
