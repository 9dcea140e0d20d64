//! ai-audit-trail 0.4.x decision receipts: the `receipts.jsonl` of its evidence package.
//!
//! Each line is one `DecisionReceipt` as the package's export writes it (`orjson`, compact,
//! fields in declaration order). The library seals a receipt over its *seal payload*: the
//! receipt without `receipt_hash` and `signature`, as compact JSON with sorted keys
//! (`orjson.OPT_SORT_KEYS`). `receipt_hash` is the SHA-256 of those bytes, `signature` an
//! Ed25519 signature over them, and `prev_receipt_hash` the `receipt_hash` of the same
//! tenant's previous receipt. The seal payload is rebuilt here by sorting the members of every
//! object while keeping each number and string exactly as the line spells it (so no float is
//! printed anew), which gives back orjson's bytes for any line the library wrote.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::Path;

use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::{
    ImportOptions, JsonlLines, Mapped, SourceError, Verified, Visitor, Walked, build_receipt,
};
use crate::{ToolError, ToolResult};

/// Prefix of the event ids of imported receipts: `aat:` and the source's `receipt_id` (a
/// random UUID the library draws per receipt).
pub const EVENT_ID_PREFIX: &str = "aat:";

/// The `app_id` of imported receipts.
pub const APP_ID: &str = "ai-audit-trail";

/// Members of a receipt that its seal payload leaves out.
const UNSEALED: [&str; 2] = ["receipt_hash", "signature"];

/// Nesting that the seal payload may reach (the library's receipts need 4).
const MAX_DEPTH: usize = 64;

/// Walks the receipts at `path` (a `receipts.jsonl` or an evidence package holding one)
/// line by line, verifying each against the Ed25519 public key in `options.public_key` (or
/// the package's own) and its tenant's chain, and handing it, mapped to a receipt of its
/// own tenant, to `visit`.
///
/// # Errors
/// [`ToolError`] when the file cannot be read or no public key was given; the inner
/// [`SourceError`] names the first line that fails verification or mapping.
pub fn walk(path: &Path, options: &ImportOptions, visit: &mut Visitor<'_>) -> Walked {
    let given = options
        .public_key
        .as_deref()
        .map(read_public_key)
        .transpose()?;
    let mut file = std::fs::File::open(path)
        .map_err(|e| ToolError::new(format!("cannot read {}: {e}", path.display())))?;
    let mut magic = [0_u8; 4];
    let is_zip = std::io::Read::read_exact(&mut file, &mut magic).is_ok() && magic == ZIP_MAGIC;
    std::io::Seek::rewind(&mut file)
        .map_err(|e| ToolError::new(format!("cannot read {}: {e}", path.display())))?;
    let fallback_tenant = options.tenant.as_deref();
    if !is_zip {
        let key = given.ok_or_else(|| {
            ToolError::new("ai-audit-trail receipts are verified against the signer's public key")
                .hint(
                    "give it with --public-key HEX or --public-key FILE (the evidence \
                     package's public_key.hex, or `ai_audit.get_verify_key_hex()`)",
                )
        })?;
        let lines = JsonlLines::new(BufReader::with_capacity(1 << 16, file));
        return walk_lines(lines, &key, fallback_tenant, visit);
    }
    let bad = |what: String| ToolError::new(format!("{}: {what}", path.display()));
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| bad(format!("not a readable zip archive: {e}")))?;
    let key = choose_key(given, package_key(&mut archive, &bad)?)?;
    let receipts = match archive.by_name("receipts.jsonl") {
        Ok(receipts) => receipts,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(bad("the package has no receipts.jsonl".to_owned()));
        }
        Err(e) => return Err(bad(format!("cannot read receipts.jsonl: {e}"))),
    };
    let lines = JsonlLines::new(BufReader::with_capacity(1 << 16, receipts));
    Ok(
        walk_lines(lines, &key, fallback_tenant, visit)?.map(|mut verified| {
            if given.is_none() {
                // Nothing outside the package vouches for this key: say so wherever the
                // verification is reported.
                verified.verified.push_str(" (key from the package itself)");
            }
            verified
        }),
    )
}

/// An Ed25519 public key given as 64 hex digits or as a file holding them.
///
/// # Errors
/// [`ToolError`] when the file cannot be read or holds no Ed25519 public key.
pub fn read_public_key(arg: &str) -> ToolResult<VerifyingKey> {
    let looks_hex = arg.len() == 64 && arg.bytes().all(|b| b.is_ascii_hexdigit());
    let text = if looks_hex {
        arg.to_owned()
    } else {
        std::fs::read_to_string(arg)
            .map_err(|e| ToolError::new(format!("cannot read the public key file {arg}: {e}")))?
    };
    let bytes = decode_hex(text.trim())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            ToolError::new(format!(
                "the public key {arg} is not 64 hex digits (32 bytes of Ed25519 key)"
            ))
        })?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| ToolError::new(format!("the public key {arg} is not an Ed25519 key: {e}")))
}

/// A zip file starts with a local file header.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// The package's `public_key.hex`, if it has one.
fn package_key<R: std::io::Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    bad: &dyn Fn(String) -> ToolError,
) -> ToolResult<Option<VerifyingKey>> {
    let file = match archive.by_name("public_key.hex") {
        Ok(file) => file,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(bad(format!("cannot read public_key.hex: {e}"))),
    };
    let mut hex = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, 1025), &mut hex)
        .map_err(|e| bad(format!("cannot read public_key.hex: {e}")))?;
    let text = String::from_utf8_lossy(&hex);
    decode_hex(text.trim())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .map(Some)
        .ok_or_else(|| bad("public_key.hex is not an Ed25519 public key".to_owned()))
}

/// The key to verify a package with: the one given, which must match the package's own.
fn choose_key(
    given: Option<VerifyingKey>,
    in_package: Option<VerifyingKey>,
) -> ToolResult<VerifyingKey> {
    match (given, in_package) {
        (Some(given), Some(own)) if given != own => Err(ToolError::new(
            "the package's public_key.hex is not the public key given with --public-key",
        )
        .hint("the package was signed by another key, or its key file was replaced")),
        (Some(key), _) | (None, Some(key)) => Ok(key),
        (None, None) => Err(ToolError::new("the package has no public_key.hex")
            .hint("give the signer's public key with --public-key HEX or --public-key FILE")),
    }
}

/// Verifies and maps the receipts of one `receipts.jsonl`, line by line.
fn walk_lines<R: std::io::BufRead>(
    mut lines: JsonlLines<R>,
    key: &VerifyingKey,
    fallback_tenant: Option<&str>,
    visit: &mut Visitor<'_>,
) -> Walked {
    // The receipt hash of each tenant's last receipt so far.
    let mut tips: BTreeMap<String, String> = BTreeMap::new();
    let mut receipts = 0_u64;
    loop {
        let (line, raw) = match lines.next_line()? {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(error) => return Ok(Err(error)),
        };
        let record = match verify_and_map(raw, key, fallback_tenant, &mut tips) {
            Ok((receipt, source_hash)) => Mapped {
                line,
                receipt,
                source_hash,
            },
            Err(message) => return Ok(Err(SourceError::at(line, message))),
        };
        receipts += 1;
        if visit(record)?.is_break() {
            break;
        }
    }
    if receipts == 0 {
        return Ok(Err(SourceError::at(0, "the file holds no receipt")));
    }
    Ok(Ok(Verified {
        unit: "line",
        verified: "sha256+ed25519".to_owned(),
    }))
}

/// Checks one line's seal, signature and tenant link, and maps it: the receipt and the
/// source's receipt hash.
fn verify_and_map(
    raw: &[u8],
    key: &VerifyingKey,
    fallback_tenant: Option<&str>,
    tips: &mut BTreeMap<String, String>,
) -> Result<(trailmix_db::receipt::Receipt, String), String> {
    let raw = std::str::from_utf8(raw).map_err(|e| format!("the line is not UTF-8: {e}"))?;
    let record: Map<String, Value> = serde_json::from_str(raw)
        .map_err(|e| format!("invalid JSON at column {}: {e}", e.column()))?;
    let sealed = seal_payload(raw)?;
    let receipt_hash = check_seal(&record, &sealed, key)?;
    let tenant = tenant_of(&record, fallback_tenant)?;
    check_link(&record, tips.get(&tenant))?;
    tips.insert(tenant.clone(), receipt_hash.clone());
    let receipt = map_receipt(&record, raw, &tenant)?;
    Ok((receipt, receipt_hash))
}

/// The bytes the library hashed and signed: the receipt without [`UNSEALED`], as compact JSON
/// with sorted keys at every level, numbers and strings as written.
fn seal_payload(raw: &str) -> Result<String, String> {
    let members: BTreeMap<String, &RawValue> =
        serde_json::from_str(raw).map_err(|e| format!("the receipt is not a JSON object: {e}"))?;
    let mut out = String::with_capacity(raw.len());
    out.push('{');
    let mut first = true;
    for (key, value) in members
        .iter()
        .filter(|(k, _)| !UNSEALED.contains(&k.as_str()))
    {
        push_member(&mut out, &mut first, key, value, 1)?;
    }
    out.push('}');
    Ok(out)
}

fn push_member(
    out: &mut String,
    first: &mut bool,
    key: &str,
    value: &RawValue,
    depth: usize,
) -> Result<(), String> {
    if !std::mem::take(first) {
        out.push(',');
    }
    out.push_str(&serde_json::to_string(key).map_err(|e| e.to_string())?);
    out.push(':');
    push_sorted(out, value, depth)
}

/// Appends `value` with the members of every object sorted by key.
fn push_sorted(out: &mut String, value: &RawValue, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("the receipt nests deeper than {MAX_DEPTH} levels"));
    }
    let text = value.get().trim_ascii();
    match text.as_bytes().first() {
        Some(b'{') => {
            let members: BTreeMap<String, &RawValue> =
                serde_json::from_str(text).map_err(|e| e.to_string())?;
            out.push('{');
            let mut first = true;
            for (key, value) in &members {
                push_member(out, &mut first, key, value, depth + 1)?;
            }
            out.push('}');
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| e.to_string())?;
            out.push('[');
            for (at, item) in items.iter().enumerate() {
                if at > 0 {
                    out.push(',');
                }
                push_sorted(out, item, depth + 1)?;
            }
            out.push(']');
        }
        _ => out.push_str(text),
    }
    Ok(())
}

/// Checks `receipt_hash` and the Ed25519 `signature` over the seal payload; returns the hash.
fn check_seal(
    record: &Map<String, Value>,
    sealed: &str,
    key: &VerifyingKey,
) -> Result<String, String> {
    let text = |name: &str| record.get(name).and_then(Value::as_str).unwrap_or_default();
    let claimed = text("receipt_hash");
    let calculated = crate::hex(&Sha256::digest(sealed.as_bytes()));
    if claimed != calculated {
        return Err(format!(
            "hash mismatch: receipt_hash is {claimed:?}, the receipt hashes to {calculated} \
             (the receipt was modified after it was sealed)"
        ));
    }
    let signature = decode_hex(text("signature"))
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or("the signature is not 64 bytes of hex")?;
    key.verify_strict(sealed.as_bytes(), &signature)
        .map_err(|_| {
            "bad signature: the Ed25519 signature does not verify under the given public key \
             (forged, or signed by another key)"
                .to_owned()
        })?;
    Ok(calculated)
}

/// Checks `prev_receipt_hash` against the tenant's previous receipt in the file. The first
/// receipt of a tenant may link to one outside the file (an export of a range), as the
/// library's own `verify_chain` allows; the import record keeps its `prev_receipt_hash`.
fn check_link(record: &Map<String, Value>, tip: Option<&String>) -> Result<(), String> {
    let Some(tip) = tip else {
        return Ok(());
    };
    let prev = record
        .get("prev_receipt_hash")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if prev == tip {
        Ok(())
    } else {
        Err(format!(
            "broken link: prev_receipt_hash is {prev:?}, the tenant's previous receipt hashes to \
             {tip} (a receipt was deleted, reordered or inserted here)"
        ))
    }
}

fn tenant_of(record: &Map<String, Value>, fallback: Option<&str>) -> Result<String, String> {
    match record.get("tenant_id").and_then(Value::as_str) {
        Some(tenant) if !tenant.is_empty() => Ok(tenant.to_owned()),
        _ => fallback.map(str::to_owned).ok_or_else(|| {
            "the receipt has no tenant_id: give the tenant of such receipts with --tenant T"
                .to_owned()
        }),
    }
}

/// Decodes lower- or upper-case hex.
#[must_use]
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| {
            text.get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

/// The policy decision of an ai-audit-trail `action` (docs/import.md).
fn decision_of(action: &str) -> &str {
    match action {
        "reject" => "deny",
        other => other,
    }
}

/// Maps one verified receipt (docs/import.md has the table).
fn map_receipt(
    record: &Map<String, Value>,
    raw: &str,
    tenant: &str,
) -> Result<trailmix_db::receipt::Receipt, String> {
    let text = |key: &str| {
        record
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let receipt_id = text("receipt_id").ok_or("the receipt has no receipt_id")?;
    let model = text("model_id");
    let mut event = Map::new();
    event.insert(
        "event_id".into(),
        json!(format!("{EVENT_ID_PREFIX}{receipt_id}")),
    );
    event.insert("tenant_id".into(), json!(tenant));
    event.insert("app_id".into(), json!(APP_ID));
    let kind = if model.is_some() {
        "llm_call"
    } else {
        "policy_decision"
    };
    event.insert("kind".into(), json!(kind));
    event.insert("actor_type".into(), json!("system"));
    event.insert(
        "ts".into(),
        json!(text("timestamp").ok_or("the receipt has no timestamp")?),
    );
    if let Some(session) = text("session_id") {
        event.insert("session_id".into(), json!(session));
    }
    if let Some(model) = model {
        event.insert("model".into(), json!({ "name": model }));
    }
    let mut policy = Map::new();
    if let Some(action) = text("action") {
        policy.insert("decision".into(), json!(decision_of(action)));
    }
    if let Some(reasons) = record.get("reason_codes").filter(|r| r.is_array()) {
        policy.insert("reasons".into(), reasons.clone());
    }
    event.insert("policy_eval".into(), Value::Object(policy));
    event.insert("evals".into(), Value::Array(evals(record)));
    event.insert(
        "source".into(),
        json!({
            "format": super::Format::AiAuditTrail.name(),
            "receipt_id": receipt_id,
            "trace_id": record.get("trace_id"),
            "receipt_hash": record.get("receipt_hash"),
            "prev_receipt_hash": record.get("prev_receipt_hash"),
            "signature": record.get("signature"),
            "record": raw,
        }),
    );
    build_receipt(
        event,
        &[
            ("session_id", None),
            ("model.name", None),
            ("policy_eval.decision", None),
        ],
    )
    .map_err(|e| format!("cannot map the receipt: {e}"))
}

/// The receipt's checks as evals `{name, score, threshold}`; the rest of each check stays in
/// the source record.
fn evals(record: &Map<String, Value>) -> Vec<Value> {
    record
        .get("checks")
        .and_then(Value::as_array)
        .map(|checks| {
            checks
                .iter()
                .filter_map(|check| {
                    let name = check.get("name")?.as_str()?;
                    let score = check.get("score")?.as_f64()?;
                    let mut eval = json!({ "name": name, "score": score });
                    if let (Some(threshold), Some(eval)) = (
                        check.get("threshold").and_then(Value::as_f64),
                        eval.as_object_mut(),
                    ) {
                        eval.insert("threshold".into(), json!(threshold));
                    }
                    Some(eval)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::seal_payload;

    #[test]
    fn seal_payload_sorts_every_object_and_keeps_number_spellings() {
        let raw = r#"{"z":1.10,"receipt_hash":"h","a":[{"y":1e-7,"b":"\u00e9"}],"signature":"s"}"#;
        assert_eq!(
            seal_payload(raw).as_deref(),
            Ok(r#"{"a":[{"b":"\u00e9","y":1e-7}],"z":1.10}"#)
        );
    }
}
