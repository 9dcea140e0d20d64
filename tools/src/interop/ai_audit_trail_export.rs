//! The ai-audit-trail 0.4 evidence package: a ZIP file of `receipts.jsonl` (one
//! `DecisionReceipt` per line), `chain_metadata.json`, `public_key.hex` and `manifest.json`,
//! as its `ai-audit verify` (manifest signature and checksums) and
//! `ai_audit.verifier.verify_chain` (per-receipt Ed25519 signature, SHA-256 self-hash and
//! chain link) accept.
//!
//! Bytes that its verifiers recompute, and so must match exactly:
//! - the seal payload of a receipt: every field but `receipt_hash` and `signature`, keys
//!   sorted, no whitespace, UTF-8 unescaped (`orjson.dumps(.., OPT_SORT_KEYS)` of pydantic's
//!   JSON dump); `receipt_hash` is its SHA-256 (hex) and `signature` its Ed25519 signature
//!   (hex); `timestamp` as pydantic prints a UTC datetime (six fraction digits, none when
//!   they are all zero, then `Z`);
//! - the manifest's signed bytes: Python's `json.dumps(manifest, sort_keys=True)`, that is
//!   `", "` and `": "` separators and ASCII only.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use ed25519_dalek::{Signer as _, SigningKey};
use serde::Serialize;
use serde_json::json;

use sha2::{Digest as _, Sha256};

use super::export::{
    ExportKeySource, InteropScope, PayloadMark, SourceReceipt, TenantRead, hex, sha256,
};
use crate::{ToolError, ToolResult};

/// The receipts file.
pub const RECEIPTS_FILE: &str = "receipts.jsonl";
/// The chain metadata file.
pub const CHAIN_METADATA_FILE: &str = "chain_metadata.json";
/// The public key file (hex, no newline).
pub const PUBLIC_KEY_FILE: &str = "public_key.hex";
/// The signed manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// `reason_codes` entry of a receipt whose payload was shredded.
pub const SHREDDED_REASON: &str = "trailmix:payload_shredded";

/// A `DecisionReceipt` minus `receipt_hash` and `signature`, members in sorted order: its
/// JSON is the seal payload. `checks` and `nist_tags` are always empty.
#[derive(Debug, Clone, Serialize)]
struct SealPayload {
    action: &'static str,
    checks: [(); 0],
    config_digest: String,
    input_c14n: String,
    model_id: String,
    nist_tags: [(); 0],
    output_hash: String,
    prev_receipt_hash: String,
    reason_codes: Vec<String>,
    receipt_id: String,
    receipt_version: &'static str,
    session_id: String,
    state_digest: String,
    tenant_id: String,
    timestamp: String,
    trace_id: String,
}

/// One line of `receipts.jsonl`: the model's fields in its declaration order.
#[derive(Debug, Serialize)]
struct ReceiptLine<'a> {
    receipt_id: &'a str,
    receipt_version: &'a str,
    timestamp: &'a str,
    trace_id: &'a str,
    session_id: &'a str,
    tenant_id: &'a str,
    input_c14n: &'a str,
    state_digest: &'a str,
    output_hash: &'a str,
    checks: [(); 0],
    action: &'a str,
    reason_codes: &'a [String],
    nist_tags: [(); 0],
    model_id: &'a str,
    config_digest: &'a str,
    prev_receipt_hash: &'a str,
    receipt_hash: &'a str,
    signature: &'a str,
}

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiAuditSummary {
    /// Receipts written.
    pub receipts: usize,
    /// Of those, receipts whose payload was shredded.
    pub shredded: usize,
    /// The Ed25519 public key, hex.
    pub public_key_hex: String,
}

/// Writes the tenant's receipts in `scope`, read from the store in `data_dir`, as an
/// evidence package (a new ZIP file at `output`). Streams: each receipt is sealed and written
/// into the archive as it is read, and `receipts.jsonl`'s checksum is taken on the way; only
/// the first and last receipts are kept for `chain_metadata.json`. A failed export removes
/// `output`.
///
/// # Errors
/// [`ToolError`] for a bad key, a store that cannot be read, or a write failure.
pub fn export(
    data_dir: &Path,
    scope: &InteropScope,
    key_source: &ExportKeySource,
    output: &Path,
) -> ToolResult<(AiAuditSummary, TenantRead)> {
    let key = SigningKey::from_bytes(&super::export::export_key_bytes(key_source)?);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(output)
        .map_err(|e| ToolError::new(format!("cannot create {}: {e}", output.display())))?;
    let written = write_package(data_dir, scope, &key, file, output);
    if written.is_err() {
        // Ours alone: created above with `create_new`.
        let _ = std::fs::remove_file(output);
    }
    written
}

/// What the receipts pass keeps for the metadata.
#[derive(Default)]
struct Extent {
    first: Option<SourceReceipt>,
    last: Option<SourceReceipt>,
    receipts: usize,
    shredded: usize,
}

fn write_package(
    data_dir: &Path,
    scope: &InteropScope,
    key: &SigningKey,
    file: std::fs::File,
    output: &Path,
) -> ToolResult<(AiAuditSummary, TenantRead)> {
    let zip_error = |e: &dyn std::fmt::Display| {
        ToolError::new(format!("cannot write {}: {e}", output.display()))
    };
    let public_key_hex = hex(key.verifying_key().as_bytes());
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file(RECEIPTS_FILE, options)
        .map_err(|e| zip_error(&e))?;
    let mut receipts_file = Sha256Writer {
        inner: zip,
        hasher: Sha256::new(),
    };
    let mut extent = Extent::default();
    let mut prev_receipt_hash = String::new();
    let read = super::export::for_each_tenant_receipt(data_dir, scope, &mut |receipt| {
        prev_receipt_hash =
            write_receipt_line(&mut receipts_file, &receipt, prev_receipt_hash.clone(), key)?;
        extent.receipts += 1;
        extent.shredded += usize::from(receipt.payload == PayloadMark::Shredded);
        if extent.first.is_none() {
            extent.first = Some(receipt.clone());
        }
        extent.last = Some(receipt);
        Ok(())
    })?;
    let Sha256Writer {
        inner: mut zip,
        hasher,
    } = receipts_file;
    let receipts_checksum = hex(&hasher.finalize());
    let exported_at = super::export::rfc3339_micros(now_ns());
    let metadata = chain_metadata(&extent, scope, &public_key_hex, &exported_at)?;
    let checksums: BTreeMap<&str, String> = [
        (RECEIPTS_FILE, receipts_checksum),
        (CHAIN_METADATA_FILE, hex(&sha256(&metadata))),
        (PUBLIC_KEY_FILE, hex(&sha256(public_key_hex.as_bytes()))),
    ]
    .into_iter()
    .collect();
    let manifest = signed_manifest(&checksums, key, &public_key_hex, &exported_at)?;
    for (name, bytes) in [
        (CHAIN_METADATA_FILE, &metadata[..]),
        (PUBLIC_KEY_FILE, public_key_hex.as_bytes()),
        (MANIFEST_FILE, &manifest[..]),
    ] {
        zip.start_file(name, options).map_err(|e| zip_error(&e))?;
        zip.write_all(bytes).map_err(|e| zip_error(&e))?;
    }
    let file = zip
        .finish()
        .map_err(|e| zip_error(&e))?
        .into_inner()
        .map_err(|e| zip_error(&e.into_error()))?;
    file.sync_all().map_err(|e| zip_error(&e))?;
    let summary = AiAuditSummary {
        receipts: extent.receipts,
        shredded: extent.shredded,
        public_key_hex,
    };
    Ok((summary, read))
}

/// A writer that hashes what passes through it.
struct Sha256Writer<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: std::io::Write> std::io::Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

/// Seals `receipt`, chained to `prev_receipt_hash`, and writes it as one line; returns its
/// receipt hash.
fn write_receipt_line(
    out: &mut dyn std::io::Write,
    receipt: &SourceReceipt,
    prev_receipt_hash: String,
    key: &SigningKey,
) -> ToolResult<String> {
    let payload = seal_payload(receipt, prev_receipt_hash);
    let payload_bytes = serde_json::to_vec(&payload).map_err(json_error)?;
    let receipt_hash = hex(&sha256(&payload_bytes));
    let signature = hex(&key.sign(&payload_bytes).to_bytes());
    let line = ReceiptLine {
        receipt_id: &payload.receipt_id,
        receipt_version: payload.receipt_version,
        timestamp: &payload.timestamp,
        trace_id: &payload.trace_id,
        session_id: &payload.session_id,
        tenant_id: &payload.tenant_id,
        input_c14n: &payload.input_c14n,
        state_digest: &payload.state_digest,
        output_hash: &payload.output_hash,
        checks: [],
        action: payload.action,
        reason_codes: &payload.reason_codes,
        nist_tags: [],
        model_id: &payload.model_id,
        config_digest: &payload.config_digest,
        prev_receipt_hash: &payload.prev_receipt_hash,
        receipt_hash: &receipt_hash,
        signature: &signature,
    };
    serde_json::to_writer(&mut *out, &line).map_err(json_error)?;
    out.write_all(b"\n")
        .map_err(|e| ToolError::new(format!("cannot write the package: {e}")))?;
    Ok(receipt_hash)
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "the previous hash moves into the payload"
)]
fn seal_payload(receipt: &SourceReceipt, prev_receipt_hash: String) -> SealPayload {
    let mut reason_codes = vec![format!(
        "trailmix:kind={}",
        receipt.field("kind").unwrap_or("")
    )];
    if let Some(policy) = receipt.nested("policy_eval", "policy_id") {
        reason_codes.push(format!("trailmix:policy={policy}"));
    }
    if receipt.payload == PayloadMark::Shredded {
        reason_codes.push(SHREDDED_REASON.to_owned());
    }
    SealPayload {
        action: action(receipt.decision.as_deref()),
        checks: [],
        config_digest: String::new(),
        input_c14n: String::new(),
        model_id: receipt.nested("model", "name").unwrap_or("").to_owned(),
        nist_tags: [],
        output_hash: String::new(),
        prev_receipt_hash,
        reason_codes,
        receipt_id: receipt.event_id().to_owned(),
        receipt_version: "1.0",
        session_id: receipt.field("session_id").unwrap_or("").to_owned(),
        // The store's chain hash commits to header and stored payload; the export carries
        // no hash of a payload that a shred could later remove.
        state_digest: hex(&receipt.chain_hash),
        tenant_id: receipt.field("tenant_id").unwrap_or("").to_owned(),
        timestamp: pydantic_timestamp(receipt.logged_at_ns),
        trace_id: receipt.field("parent_id").unwrap_or("").to_owned(),
    }
}

/// ai-audit-trail's `action` for a policy decision (`allow` when there is none).
fn action(decision: Option<&str>) -> &'static str {
    match decision {
        Some("deny") => "reject",
        Some("escalate") => "escalate",
        _ => "allow",
    }
}

/// A UTC time as pydantic 2 prints a `datetime` in JSON mode: microseconds, the fraction
/// left out when it is zero, `Z`.
#[must_use]
pub fn pydantic_timestamp(ns: u64) -> String {
    let micros = super::export::rfc3339_micros(ns);
    match micros.strip_suffix(".000000Z") {
        Some(whole_seconds) => format!("{whole_seconds}Z"),
        None => micros,
    }
}

fn chain_metadata(
    extent: &Extent,
    scope: &InteropScope,
    public_key_hex: &str,
    exported_at: &str,
) -> ToolResult<Vec<u8>> {
    let first = extent.first.as_ref();
    let last = extent.last.as_ref();
    let metadata = json!({
        "tenant_id": scope.tenant,
        "epoch_id": "",
        "total_receipts": extent.receipts,
        "first_receipt_id": first.map_or("", SourceReceipt::event_id),
        "last_receipt_id": last.map_or("", SourceReceipt::event_id),
        "first_timestamp": first.map(|r| pydantic_timestamp(r.logged_at_ns)),
        "last_timestamp": last.map(|r| pydantic_timestamp(r.logged_at_ns)),
        "exported_at": exported_at,
        "key_fingerprint": public_key_hex.get(..16).unwrap_or(public_key_hex),
        "source": "trailmix-db",
        "first_seq": first.map(|r| r.seq),
        "last_seq": last.map(|r| r.seq),
        "shredded_receipts": extent.shredded,
    });
    serde_json::to_vec_pretty(&metadata).map_err(json_error)
}

/// `manifest.json`: version, format, SHA-256 of each file, key fingerprint, creation time,
/// and the Ed25519 signature over Python's `json.dumps(.., sort_keys=True)` of the rest.
fn signed_manifest(
    checksums: &BTreeMap<&'static str, String>,
    key: &SigningKey,
    public_key_hex: &str,
    created_at: &str,
) -> ToolResult<Vec<u8>> {
    let fingerprint = public_key_hex.get(..16).unwrap_or(public_key_hex);
    let mut fields: BTreeMap<&str, PyValue> = BTreeMap::new();
    fields.insert("version", PyValue::Text("1.0".into()));
    fields.insert("format", PyValue::Text("ai-audit-evidence-package".into()));
    fields.insert("checksums", PyValue::Map(checksums.clone()));
    fields.insert("key_fingerprint", PyValue::Text(fingerprint.into()));
    fields.insert("created_at", PyValue::Text(created_at.into()));
    let signed = python_sorted_json(&fields)?;
    let signature = hex(&key.sign(signed.as_bytes()).to_bytes());
    let manifest = json!({
        "version": "1.0",
        "format": "ai-audit-evidence-package",
        "checksums": checksums,
        "key_fingerprint": fingerprint,
        "created_at": created_at,
        "signature": signature,
    });
    serde_json::to_vec_pretty(&manifest).map_err(json_error)
}

/// A manifest value: the manifest holds strings and one map of strings.
enum PyValue {
    Text(String),
    Map(BTreeMap<&'static str, String>),
}

/// Python's `json.dumps(value, sort_keys=True)` of a map whose strings are ASCII (the
/// manifest's are hex digits, fixed words, file names and RFC 3339 times).
fn python_sorted_json(fields: &BTreeMap<&str, PyValue>) -> ToolResult<String> {
    let text = |s: &str| serde_json::to_string(s).map_err(json_error);
    let mut parts = Vec::new();
    for (name, value) in fields {
        let value = match value {
            PyValue::Text(s) => text(s)?,
            PyValue::Map(map) => {
                let inner: Vec<String> = map
                    .iter()
                    .map(|(k, v)| Ok(format!("{}: {}", text(k)?, text(v)?)))
                    .collect::<ToolResult<_>>()?;
                format!("{{{}}}", inner.join(", "))
            }
        };
        parts.push(format!("{}: {value}", text(name)?));
    }
    let out = format!("{{{}}}", parts.join(", "));
    if out.is_ascii() {
        Ok(out)
    } else {
        Err(ToolError::new(
            "the manifest holds a non-ASCII string, which Python would escape differently",
        ))
    }
}

#[allow(clippy::needless_pass_by_value, reason = "used as a map_err function")]
fn json_error(err: serde_json::Error) -> ToolError {
    ToolError::new(format!("cannot write JSON: {err}"))
}
