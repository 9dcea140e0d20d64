//! Agent Audit Trail records (IETF draft-sharif-agent-audit-trail): one JSON record per
//! receipt, JCS (RFC 8785) canonical, chained by `prev_hash = hex(SHA-256(JCS(previous record
//! minus batch)))`, signed ES256 (P-256, IEEE P1363 `r||s`, low-S, base64url) over
//! `JCS(record minus signature, signature_classical, batch)`, key id the RFC 7638 JWK
//! thumbprint, and an RFC 6962 batch proof per record over the whole export.
//!
//! Two modes: [`AatDraft::Draft04`] targets draft -04 as the `aat-verify` 0.1 reference
//! verifier checks it (integer `trust_level`); [`AatDraft::Draft06`] targets draft -06 as
//! `aat-mcp` 0.1 writes and verifies it (string trust levels `L0`..`L4`, genesis
//! `parent_record_id` null and each later one the previous `record_id`).

use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Map, Value, json};
use trailmix_db::receipt::canonical_json;

use sha2::{Digest as _, Sha256};

use super::export::{
    ExportKeySource, InteropScope, PayloadMark, SourceReceipt, TenantRead, hex, sha256,
};
use crate::{ToolError, ToolResult};

/// The trail's file name in the output directory.
pub const TRAIL_FILE: &str = "trail.jsonl";
/// The public keystore's file name (the `aat-verify --keys` format).
pub const KEYS_FILE: &str = "keys.json";
/// `batch.epoch_id` of the one batch an export forms.
pub const BATCH_EPOCH_ID: &str = "trailmix-export";

/// Which revision of the draft the records follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AatDraft {
    /// Draft -04: `trust_level` is an integer (`aat-verify` 0.1).
    Draft04,
    /// Draft -06: `trust_level` is a string `L0`..`L4` (`aat-mcp` 0.1).
    Draft06,
}

impl AatDraft {
    /// The trust level every exported record carries. Level 1: the draft requires
    /// consequential records (level 2 and up) to be signed by an independent recorder, not
    /// by the trail's first signer; an export has one signer, the export key.
    fn trust_level(self) -> Value {
        match self {
            AatDraft::Draft04 => json!(1),
            AatDraft::Draft06 => json!("L1"),
        }
    }
}

/// A P-256 export key and its RFC 7638 key id.
#[derive(Debug)]
pub struct AatKey {
    signing: SigningKey,
    kid: String,
    jwk: Value,
}

impl AatKey {
    /// The key from 32 secret bytes (the scalar, big-endian).
    ///
    /// # Errors
    /// [`ToolError`] when the bytes are not a valid P-256 scalar (zero or not below the
    /// group order).
    pub fn from_secret(secret: &[u8; 32]) -> ToolResult<AatKey> {
        let signing = SigningKey::from_slice(secret).map_err(|_| {
            ToolError::new("the export key is not a P-256 private key (scalar out of range)")
        })?;
        let point = signing.verifying_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(ToolError::new(
                "the export key's public point is the identity",
            ));
        };
        let jwk = json!({
            "crv": "P-256",
            "kty": "EC",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        });
        let kid = URL_SAFE_NO_PAD.encode(sha256(canonical_json(&jwk).as_bytes()));
        Ok(AatKey { signing, kid, jwk })
    }

    /// The RFC 7638 JWK thumbprint (base64url SHA-256 of the canonical `{crv,kty,x,y}`).
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public keystore: `{kid: {"alg": "ES256", "jwk_x_y": {crv, kty, x, y}}}`.
    #[must_use]
    pub fn keystore(&self) -> Value {
        json!({ &self.kid: { "alg": "ES256", "jwk_x_y": self.jwk } })
    }

    /// ES256 over `message`: IEEE P1363 `r||s` with `s` in the lower half, base64url.
    fn sign(&self, message: &[u8]) -> String {
        let signature: Signature = self.signing.sign(message);
        let signature = signature.normalize_s().unwrap_or(signature);
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    }
}

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AatSummary {
    /// Records written.
    pub records: usize,
    /// Of those, receipts whose payload was shredded.
    pub shredded: usize,
    /// The signer's key id.
    pub kid: String,
    /// The batch's RFC 6962 root, hex.
    pub merkle_root: String,
}

/// Writes the tenant's receipts in `scope`, read from the store in `data_dir`, as an AAT
/// trail into the new directory `output`: [`TRAIL_FILE`] and [`KEYS_FILE`]. Streams: the
/// records go to a scratch file in `output` as they are signed, keeping only each one's
/// batch leaf hash; a second pass over that file adds the batch proofs. A failed export
/// removes `output`.
///
/// # Errors
/// [`ToolError`] for a bad key, a store that cannot be read, or a write failure.
pub fn export(
    data_dir: &Path,
    scope: &InteropScope,
    draft: AatDraft,
    key_source: &ExportKeySource,
    output: &Path,
) -> ToolResult<(AatSummary, TenantRead)> {
    let key = AatKey::from_secret(&super::export::export_key_bytes(key_source)?)?;
    std::fs::create_dir(output)
        .map_err(|e| ToolError::new(format!("cannot create {}: {e}", output.display())))?;
    let written = write_trail(data_dir, scope, draft, &key, output);
    if written.is_err() {
        // Ours alone: created above, never a directory that was there before.
        let _ = std::fs::remove_dir_all(output);
    }
    written
}

fn write_trail(
    data_dir: &Path,
    scope: &InteropScope,
    draft: AatDraft,
    key: &AatKey,
    output: &Path,
) -> ToolResult<(AatSummary, TenantRead)> {
    let scratch = output.join(SCRATCH_FILE);
    let write_error = |path: &Path, e: std::io::Error| {
        ToolError::new(format!("cannot write {}: {e}", path.display()))
    };
    let mut unbatched = BufWriter::new(new_file(&scratch)?);
    let mut leaves = Vec::new();
    let mut shredded = 0;
    let mut previous = None;
    let read = super::export::for_each_tenant_receipt(data_dir, scope, &mut |receipt| {
        let record = signed_record(&receipt, scope, draft, key, &mut previous);
        let line = canonical_json(&record);
        leaves.push(leaf_hash(&line));
        shredded += usize::from(receipt.payload == PayloadMark::Shredded);
        unbatched
            .write_all(line.as_bytes())
            .and_then(|()| unbatched.write_all(b"\n"))
            .map_err(|e| write_error(&scratch, e))
    })?;
    unbatched.flush().map_err(|e| write_error(&scratch, e))?;
    drop(unbatched);
    let records = leaves.len();
    let levels = tree_levels(leaves);
    let root = levels
        .last()
        .and_then(|top| top.first())
        .copied()
        .unwrap_or_else(|| sha256(&[]));
    add_batch_proofs(&scratch, &output.join(TRAIL_FILE), &levels, &root)?;
    std::fs::remove_file(&scratch).map_err(|e| write_error(&scratch, e))?;
    let keys = canonical_json(&key.keystore()) + "\n";
    super::export::write_new_file(&output.join(KEYS_FILE), keys.as_bytes())?;
    let summary = AatSummary {
        records,
        shredded,
        kid: key.kid().to_owned(),
        merkle_root: hex(&root),
    };
    Ok((summary, read))
}

/// The records without their batch, as signed, one a line: scratch space in the output
/// directory while the export runs.
const SCRATCH_FILE: &str = "trail.jsonl.unbatched";

fn new_file(path: &Path) -> ToolResult<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| ToolError::new(format!("cannot create {}: {e}", path.display())))
}

/// Batch leaf: `SHA-256(0x00 || JCS(record minus batch))`.
fn leaf_hash(canonical: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0]);
    hasher.update(canonical.as_bytes());
    hasher.finalize().into()
}

/// The record of `receipt`, chained to `previous` (the previous record's id and hash, which
/// this one then becomes) and signed.
fn signed_record(
    receipt: &SourceReceipt,
    scope: &InteropScope,
    draft: AatDraft,
    key: &AatKey,
    previous: &mut Option<(String, String)>,
) -> Value {
    let (parent, prev_hash) = match previous.as_ref() {
        Some((id, hash)) => (json!(id), json!(hash)),
        None => (Value::Null, Value::Null),
    };
    let mut record = unsigned_record(receipt, scope, draft);
    record.insert("parent_record_id".into(), parent);
    record.insert("prev_hash".into(), prev_hash);
    record.insert("sig_alg".into(), json!("ES256"));
    record.insert("signer_kid".into(), json!(key.kid()));
    let signature = key.sign(canonical_json(&Value::Object(record.clone())).as_bytes());
    record.insert("signature".into(), json!(signature));
    let record = Value::Object(record);
    // Nothing but the batch (added later) is left out of the chain hash.
    *previous = Some((
        receipt.event_id().to_owned(),
        hex(&sha256(canonical_json(&record).as_bytes())),
    ));
    record
}

/// The record's fields other than the chain links and the signature envelope.
fn unsigned_record(
    receipt: &SourceReceipt,
    scope: &InteropScope,
    draft: AatDraft,
) -> Map<String, Value> {
    let mut detail = receipt.event.clone();
    let mut store = Map::new();
    store.insert("seq".into(), json!(receipt.seq));
    store.insert("epoch".into(), json!(receipt.epoch));
    store.insert("chain_hash".into(), json!(hex(&receipt.chain_hash)));
    store.insert("payload".into(), json!(receipt.payload.as_str()));
    if let Some(shred_seq) = receipt.shred_seq {
        store.insert("shred_seq".into(), json!(shred_seq));
    }
    detail.insert("trailmix".into(), Value::Object(store));
    let mut record = Map::new();
    record.insert("record_id".into(), json!(receipt.event_id()));
    record.insert(
        "timestamp".into(),
        json!(super::export::rfc3339_micros(receipt.logged_at_ns)),
    );
    record.insert(
        "agent_id".into(),
        json!(receipt.field("app_id").unwrap_or("")),
    );
    record.insert(
        "agent_version".into(),
        json!(receipt.nested("model", "version").unwrap_or("unspecified")),
    );
    record.insert(
        "session_id".into(),
        json!(format!("tenant:{}", scope.tenant)),
    );
    record.insert(
        "action_type".into(),
        json!(action_type(receipt.field("kind").unwrap_or(""))),
    );
    record.insert("action_detail".into(), Value::Object(detail));
    record.insert(
        "outcome".into(),
        json!(outcome(receipt.decision.as_deref())),
    );
    record.insert("trust_level".into(), draft.trust_level());
    record.insert("record_phase".into(), json!("post_execution"));
    record
}

/// The draft's `action_type` for a receipt kind.
fn action_type(kind: &str) -> &'static str {
    match kind {
        "tool_call" => "tool_call",
        "lifecycle" => "lifecycle",
        _ => "decision",
    }
}

/// The draft's `outcome` for a policy decision.
fn outcome(decision: Option<&str>) -> &'static str {
    match decision {
        Some("deny") => "denied",
        Some("escalate") => "escalated",
        _ => "success",
    }
}

/// Copies the records of `unbatched` to the new file `trail`, each with its `batch` (RFC 6962
/// inclusion proof under `root`, `tree_size`, `leaf_index`), one record in memory at a time.
fn add_batch_proofs(
    unbatched: &Path,
    trail: &Path,
    levels: &[Vec<[u8; 32]>],
    root: &[u8; 32],
) -> ToolResult<()> {
    let read_error = |e: &dyn std::fmt::Display| {
        ToolError::new(format!("cannot read {}: {e}", unbatched.display()))
    };
    let write_error =
        |e: std::io::Error| ToolError::new(format!("cannot write {}: {e}", trail.display()));
    let input = std::fs::File::open(unbatched).map_err(|e| read_error(&e))?;
    let mut out = BufWriter::new(new_file(trail)?);
    let tree_size = levels.first().map_or(0, Vec::len);
    for (index, line) in BufReader::new(input).lines().enumerate() {
        let line = line.map_err(|e| read_error(&e))?;
        let mut record: Value = serde_json::from_str(&line).map_err(|e| read_error(&e))?;
        let proof: Vec<Value> = inclusion_path(levels, index)
            .into_iter()
            .map(|(hash, side)| json!({ "hash": hex(&hash), "side": side }))
            .collect();
        if let Value::Object(map) = &mut record {
            map.insert(
                "batch".into(),
                json!({
                    "epoch_id": BATCH_EPOCH_ID,
                    "tree_size": tree_size,
                    "leaf_index": index,
                    "merkle_root": hex(root),
                    "inclusion_proof": proof,
                }),
            );
        }
        out.write_all(canonical_json(&record).as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(write_error)?;
    }
    let file = out.into_inner().map_err(|e| write_error(e.into_error()))?;
    file.sync_all().map_err(write_error)
}

/// The tree bottom-up: level 0 the leaves, each next level the pairs' node hashes with an
/// odd last node promoted unchanged, which is the RFC 6962 tree (split at the largest power
/// of two below the size).
fn tree_levels(leaves: Vec<[u8; 32]>) -> Vec<Vec<[u8; 32]>> {
    let mut levels = vec![leaves];
    while levels.last().is_some_and(|level| level.len() > 1) {
        let below = levels.last().map(Vec::as_slice).unwrap_or_default();
        let level = below
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node_hash(left, right),
                // `chunks(2)` yields one or two; a lone last node is promoted.
                [single, ..] => *single,
                [] => sha256(&[]),
            })
            .collect();
        levels.push(level);
    }
    levels
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut bytes = [0u8; 65];
    bytes[0] = 1;
    bytes[1..33].copy_from_slice(left);
    bytes[33..].copy_from_slice(right);
    sha256(&bytes)
}

/// The audit path of leaf `index`, leaf to root, each sibling with the side it sits on.
fn inclusion_path(levels: &[Vec<[u8; 32]>], mut index: usize) -> Vec<([u8; 32], &'static str)> {
    let mut path = Vec::new();
    for level in &levels[..levels.len().saturating_sub(1)] {
        let sibling = index ^ 1;
        if let Some(hash) = level.get(sibling) {
            path.push((*hash, if sibling < index { "left" } else { "right" }));
        }
        index /= 2;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6962 reference tree over the leaf hashes `leaves[lo..hi]` (the recursive
    /// definition), to check the bottom-up levels against.
    fn reference_root(leaves: &[[u8; 32]]) -> [u8; 32] {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let split = leaves.len().next_power_of_two() / 2;
        node_hash(
            &reference_root(&leaves[..split]),
            &reference_root(&leaves[split..]),
        )
    }

    fn recompute(leaf: [u8; 32], path: &[([u8; 32], &str)]) -> [u8; 32] {
        path.iter().fold(leaf, |acc, (hash, side)| {
            if *side == "left" {
                node_hash(hash, &acc)
            } else {
                node_hash(&acc, hash)
            }
        })
    }

    #[test]
    fn levels_and_paths_match_the_rfc_6962_definition() {
        for size in 1..=33usize {
            let leaves: Vec<[u8; 32]> = (0..size).map(|i| sha256(&i.to_le_bytes())).collect();
            let levels = tree_levels(leaves.clone());
            let root = levels.last().expect("levels")[0];
            assert_eq!(root, reference_root(&leaves), "size {size}");
            for (i, leaf) in leaves.iter().enumerate() {
                assert_eq!(
                    recompute(*leaf, &inclusion_path(&levels, i)),
                    root,
                    "size {size} leaf {i}"
                );
            }
        }
    }
}
