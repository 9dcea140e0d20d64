//! Proofs for auditors: inclusion of an entry in a signed checkpoint, and consistency between
//! two checkpoints of an epoch. Producing them needs the store; checking them needs only the
//! bundle and the store's public key ([`verify_inclusion_bundle`], [`verify_consistency_notes`]).

use std::ops::ControlFlow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::entry::{self, EntryKind};
use crate::error::{Error, Result};
use crate::log::LogStorage;
use crate::merkle::{self, Digest, LeafHashTable};
use crate::note::{Checkpoint, NoteVerifier};
use crate::position::Epoch;
use crate::receipt::ReceiptHeader;
use crate::wal::{HashAlgorithm, Seq};

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
    if entry::payload_digest(alg, entry.payload) != entry.payload_digest {
        return Err(AuditError::Entry(
            "the payload does not match its digest".into(),
        ));
    }
    if entry::content_digest(alg, kind, entry.header, &entry.payload_digest) != entry.content_digest
    {
        return Err(AuditError::Entry(
            "the header or payload digest does not match the content digest".into(),
        ));
    }
    let chain_hash = entry::chain_hash(
        alg,
        Seq(bundle.seq),
        entry.flags,
        &entry.chain,
        &entry.content_digest,
    );
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

/// Leaf hashes of the first `count` entries of the epoch that starts at `first_seq`.
pub(crate) fn epoch_leaves<L: LogStorage>(
    log: &L,
    alg: HashAlgorithm,
    first_seq: Seq,
    count: u64,
) -> Result<Vec<Digest>> {
    let reader = log.open_reader()?;
    let mut leaves = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut failure = None;
    reader.scan(first_seq, |record| {
        if leaves.len() as u64 >= count {
            return ControlFlow::Break(());
        }
        let decoded = EntryKind::from_byte(record.kind.get())
            .ok_or_else(|| "unknown entry kind".to_owned())
            .and_then(|kind| entry::decode_entry(kind, record.payload).map_err(|e| e.to_string()));
        match decoded {
            Ok(entry) => {
                let chain_hash = entry::chain_hash(
                    alg,
                    record.seq,
                    entry.flags,
                    &entry.chain,
                    &entry.content_digest,
                );
                leaves.push(merkle::leaf_hash(alg, &chain_hash));
                ControlFlow::Continue(())
            }
            Err(detail) => {
                failure = Some(Error::Damaged {
                    seq: record.seq,
                    detail,
                });
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(err) = failure {
        return Err(err);
    }
    if (leaves.len() as u64) < count {
        return Err(Error::Damaged {
            seq: Seq(first_seq.0 + leaves.len() as u64),
            detail: "the log ends inside the epoch".into(),
        });
    }
    Ok(leaves)
}

/// Builds an inclusion bundle for the entry at `seq` against `checkpoint_note`, whose epoch
/// starts at `first_seq`.
pub(crate) fn build_inclusion<L: LogStorage>(
    log: &L,
    alg: HashAlgorithm,
    seq: Seq,
    epoch: Epoch,
    first_seq: Seq,
    tree_size: u64,
    checkpoint_note: &str,
) -> Result<InclusionBundle> {
    let reader = log.open_reader()?;
    let record = reader.read(seq)?;
    let leaf_index = seq.0 - first_seq.0;
    let leaves = epoch_leaves(log, alg, first_seq, tree_size)?;
    let table = LeafHashTable::new(alg, &leaves);
    let proof = merkle::inclusion_proof(alg, leaf_index, tree_size, &table).map_err(|e| {
        Error::Damaged {
            seq,
            detail: e.to_string(),
        }
    })?;
    Ok(InclusionBundle {
        hash_algorithm: algorithm_name(alg),
        seq: seq.0,
        epoch: epoch.0,
        leaf_index,
        entry_kind: record.kind.get(),
        entry: STANDARD.encode(&record.payload),
        checkpoint: checkpoint_note.to_owned(),
        path: proof.path().iter().map(|d| STANDARD.encode(d)).collect(),
    })
}

/// Builds a consistency bundle between two checkpoints of the epoch starting at `first_seq`.
pub(crate) fn build_consistency<L: LogStorage>(
    log: &L,
    alg: HashAlgorithm,
    first_seq: Seq,
    old: (&str, u64),
    new: (&str, u64),
) -> Result<ConsistencyBundle> {
    let path = if old.1 == new.1 {
        Vec::new()
    } else {
        let leaves = epoch_leaves(log, alg, first_seq, new.1)?;
        let table = LeafHashTable::new(alg, &leaves);
        merkle::consistency_proof(alg, old.1, new.1, &table)
            .map_err(|e| Error::InvalidOption {
                name: "checkpoints",
                reason: e.to_string(),
            })?
            .path()
            .iter()
            .map(|d| STANDARD.encode(d))
            .collect()
    };
    Ok(ConsistencyBundle {
        hash_algorithm: algorithm_name(alg),
        old_checkpoint: old.0.to_owned(),
        new_checkpoint: new.0.to_owned(),
        path,
    })
}
