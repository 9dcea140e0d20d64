//! llm-audit-trail 0.1.x JSONL ledgers.
//!
//! Each line is one event written by `AuditLogger.emit` as compact JSON with sorted keys and
//! ASCII escapes. `curr_hash` is `SHA-256(prev_hash ‖ line without its curr_hash member)`, or
//! HMAC-SHA256 under the ledger's secret when `hash_alg` is `hmac-sha256`; the first event's
//! `prev_hash` is `GENESIS` and `seq` counts up by one. The hash is checked over the raw bytes
//! of the line with the `curr_hash` member cut out: re-serialising would print numbers and
//! escapes differently from Python and fail on honest ledgers (or pass on edited ones).
//! A line that is not the library's own canonical form therefore fails too.

use std::io::BufReader;
use std::ops::Range;
use std::path::Path;

use hmac::{Hmac, Mac as _};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::{
    ImportOptions, JsonlLines, Mapped, SourceError, Verified, Visitor, Walked, build_receipt,
};
use crate::ToolError;

/// The `prev_hash` of a ledger's first event.
pub const GENESIS: &str = "GENESIS";

/// Prefix of the event ids of imported events: the event id is `lat:` and the source's own
/// `event_id` (a random UUID the library draws per event).
pub const EVENT_ID_PREFIX: &str = "lat:";

/// The `app_id` of events without a usable `system`.
pub const DEFAULT_APP_ID: &str = "llm-audit-trail";

/// The chain algorithm of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChainAlg {
    Sha256,
    HmacSha256,
}

impl ChainAlg {
    fn name(self) -> &'static str {
        match self {
            ChainAlg::Sha256 => "sha256",
            ChainAlg::HmacSha256 => "hmac-sha256",
        }
    }
}

/// The chain state carried from line to line.
struct Chain<'k> {
    prev_hash: String,
    prev_seq: Option<i64>,
    key: Option<&'k [u8]>,
    algs: Vec<ChainAlg>,
}

/// Walks the ledger at `path` line by line, verifying its chain and handing each event,
/// mapped to a receipt of `options.tenant`, to `visit`.
///
/// # Errors
/// [`ToolError`] when the file cannot be read or no tenant was given; the inner
/// [`SourceError`] names the first line that fails verification or mapping.
pub fn walk(path: &Path, options: &ImportOptions, visit: &mut Visitor<'_>) -> Walked {
    let tenant = options.tenant.as_deref().ok_or_else(|| {
        ToolError::new("an llm-audit-trail ledger has no tenant of its own")
            .hint("give the tenant of its events with --tenant T")
    })?;
    let file = std::fs::File::open(path)
        .map_err(|e| ToolError::new(format!("cannot read {}: {e}", path.display())))?;
    let mut lines = JsonlLines::new(BufReader::with_capacity(1 << 16, file));
    let mut chain = Chain {
        prev_hash: GENESIS.to_owned(),
        prev_seq: None,
        key: options.hmac_key.as_ref().map(|k| k.as_slice()),
        algs: Vec::new(),
    };
    let mut events = 0_u64;
    loop {
        let (line, raw) = match lines.next_line()? {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(error) => return Ok(Err(error)),
        };
        let mapped = verify_and_map(&mut chain, raw, tenant)
            .map_err(|message| SourceError::at(line, message));
        let (receipt, source_hash) = match mapped {
            Ok(mapped) => mapped,
            Err(error) => return Ok(Err(error)),
        };
        events += 1;
        let record = Mapped {
            line,
            receipt,
            source_hash,
        };
        if visit(record)?.is_break() {
            break;
        }
    }
    if events == 0 {
        return Ok(Err(SourceError::at(0, "the ledger holds no event")));
    }
    let verified = if chain.algs.contains(&ChainAlg::HmacSha256) {
        ChainAlg::HmacSha256.name()
    } else {
        ChainAlg::Sha256.name()
    };
    Ok(Ok(Verified {
        unit: "line",
        verified: verified.to_owned(),
    }))
}

/// Checks one line against the chain and maps it: the receipt and the event's `curr_hash`.
fn verify_and_map(
    chain: &mut Chain<'_>,
    raw: &[u8],
    tenant: &str,
) -> Result<(trailmix_db::receipt::Receipt, String), String> {
    let record = parse(raw)?;
    let curr_hash = chain.check(raw, &record)?;
    let receipt = map_event(&record, raw, tenant)?;
    Ok((receipt, curr_hash))
}

fn parse(raw: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(record)) => Ok(record),
        Ok(_) => Err("the line is not a JSON object".to_owned()),
        Err(e) => Err(format!("invalid JSON at column {}: {e}", e.column())),
    }
}

impl Chain<'_> {
    /// Checks one event against the chain and advances it; returns the event's `curr_hash`.
    fn check(&mut self, raw: &[u8], record: &Map<String, Value>) -> Result<String, String> {
        let Some(claimed) = record.get("curr_hash").and_then(Value::as_str) else {
            return Err("the event has no curr_hash".to_owned());
        };
        let found_prev = record.get("prev_hash").and_then(Value::as_str);
        if found_prev != Some(self.prev_hash.as_str()) {
            return Err(format!(
                "broken link: prev_hash is {}, the previous event's curr_hash is {} (an event \
                 was deleted, reordered or inserted here)",
                found_prev.unwrap_or("missing"),
                self.prev_hash
            ));
        }
        let alg = match record.get("hash_alg").and_then(Value::as_str) {
            None | Some("sha256") => ChainAlg::Sha256,
            Some("hmac-sha256") => ChainAlg::HmacSha256,
            Some(other) => return Err(format!("unknown hash_alg {other:?}")),
        };
        let body = without_member(raw, b"curr_hash").ok_or_else(|| {
            "the line is not in the library's own form (compact JSON with a top-level \
             curr_hash member)"
                .to_owned()
        })?;
        let calculated = self.digest(alg, &body)?;
        if calculated != claimed {
            return Err(format!(
                "hash mismatch: curr_hash is {claimed}, the line hashes to {calculated} ({}; \
                 the event was modified after it was written{})",
                alg.name(),
                if alg == ChainAlg::HmacSha256 {
                    ", or the HMAC key is wrong"
                } else {
                    ""
                }
            ));
        }
        self.check_seq(record)?;
        if !self.algs.contains(&alg) {
            self.algs.push(alg);
        }
        claimed.clone_into(&mut self.prev_hash);
        Ok(claimed.to_owned())
    }

    fn digest(&self, alg: ChainAlg, body: &[u8]) -> Result<String, String> {
        let bytes = match alg {
            ChainAlg::Sha256 => {
                let mut hasher = Sha256::new();
                hasher.update(self.prev_hash.as_bytes());
                hasher.update(body);
                hasher.finalize().to_vec()
            }
            ChainAlg::HmacSha256 => {
                let key = self.key.ok_or_else(|| {
                    "the ledger is HMAC-chained (hash_alg hmac-sha256): give its secret with \
                     --hmac-key-file FILE"
                        .to_owned()
                })?;
                let mut mac = Hmac::<Sha256>::new_from_slice(key)
                    .map_err(|e| format!("unusable HMAC key: {e}"))?;
                mac.update(self.prev_hash.as_bytes());
                mac.update(body);
                mac.finalize().into_bytes().to_vec()
            }
        };
        Ok(crate::hex(&bytes))
    }

    fn check_seq(&mut self, record: &Map<String, Value>) -> Result<(), String> {
        // As the library: only integer seqs are checked, and they must count up by one.
        if let Some(seq) = record.get("seq").and_then(Value::as_i64) {
            if let Some(prev) = self.prev_seq
                && prev.checked_add(1) != Some(seq)
            {
                return Err(format!(
                    "seq gap: seq is {seq}, expected {}",
                    prev.saturating_add(1)
                ));
            }
            self.prev_seq = Some(seq);
        }
        Ok(())
    }
}

/// `raw` (one JSON object) with its top-level member `key` and the comma that joins it to a
/// neighbour cut out; `None` when there is no such member.
#[must_use]
pub fn without_member(raw: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    let span = member_span(raw, key)?;
    let mut body = Vec::with_capacity(raw.len());
    body.extend_from_slice(raw.get(..span.start)?);
    body.extend_from_slice(raw.get(span.end..)?);
    Some(body)
}

/// The bytes of the top-level member `"key":value` of the JSON object `raw`, with the comma
/// after it (or, for the last member, before it).
fn member_span(raw: &[u8], key: &[u8]) -> Option<Range<usize>> {
    let mut depth = 0_usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut expect_key = false;
    let mut wanted_start: Option<usize> = None;
    let mut last_comma: Option<usize> = None;
    for (at, &byte) in raw.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => {
                if depth == 1 && expect_key {
                    let name = raw.get(at + 1..)?;
                    if name.starts_with(key) && name.get(key.len()) == Some(&b'"') {
                        wanted_start = Some(at);
                    }
                    expect_key = false;
                }
                in_string = true;
            }
            b'{' | b'[' => {
                depth += 1;
                expect_key = depth == 1;
            }
            b'}' | b']' => {
                if depth == 1
                    && let Some(start) = wanted_start
                {
                    return Some(last_comma.map_or(start..at, |comma| comma..at));
                }
                depth = depth.checked_sub(1)?;
            }
            b',' if depth == 1 => {
                if let Some(start) = wanted_start {
                    return Some(start..at + 1);
                }
                last_comma = Some(at);
                expect_key = true;
            }
            _ => {}
        }
    }
    None
}

/// The receipt kind of an llm-audit-trail `event_type` (docs/import.md).
fn kind_of(event_type: &str) -> &'static str {
    match event_type {
        "InferenceRequest" | "InferenceResponse" => "llm_call",
        "Approval" | "Attestation" | "DatasetAttestation" => "approval",
        "RiskWaiver" => "policy_decision",
        "Evaluation" | "EpochEnd" => "evaluation",
        _ => "lifecycle",
    }
}

/// Event types a person records (the library's governance helpers).
fn is_governance(event_type: &str) -> bool {
    matches!(event_type, "Approval" | "RiskWaiver" | "Attestation")
}

/// Maps one verified event to a receipt (docs/import.md has the table).
fn map_event(
    record: &Map<String, Value>,
    raw: &[u8],
    tenant: &str,
) -> Result<trailmix_db::receipt::Receipt, String> {
    let text = |key: &str| record.get(key).and_then(Value::as_str);
    let source_id = text("event_id").ok_or("the event has no string event_id")?;
    let event_type = text("event_type").unwrap_or_default();
    let timestamp = text("timestamp").ok_or("the event has no string timestamp")?;
    let raw_line = std::str::from_utf8(raw).map_err(|e| format!("the line is not UTF-8: {e}"))?;
    let mut event = Map::new();
    event.insert(
        "event_id".into(),
        json!(format!("{EVENT_ID_PREFIX}{source_id}")),
    );
    event.insert("tenant_id".into(), json!(tenant));
    event.insert(
        "app_id".into(),
        json!(text("system").unwrap_or(DEFAULT_APP_ID)),
    );
    event.insert("kind".into(), json!(kind_of(event_type)));
    let actor = if is_governance(event_type) {
        "human"
    } else {
        "system"
    };
    event.insert("actor_type".into(), json!(actor));
    event.insert("ts".into(), json!(timestamp));
    if let Some(model) = text("model_id") {
        event.insert("model".into(), json!({ "name": model }));
    }
    let decision = record
        .get("details")
        .and_then(|d| d.get("decision"))
        .and_then(Value::as_str);
    if let Some(decision) = decision {
        event.insert("policy_eval".into(), json!({ "decision": decision }));
    }
    if !event_type.is_empty() {
        event.insert("labels".into(), json!({ "source.event_type": event_type }));
    }
    event.insert(
        "source".into(),
        json!({
            "format": super::Format::LlmAuditTrail.name(),
            "event_id": source_id,
            "seq": record.get("seq"),
            "hash_alg": record.get("hash_alg"),
            "prev_hash": record.get("prev_hash"),
            "curr_hash": record.get("curr_hash"),
            "record": raw_line,
        }),
    );
    build_receipt(
        event,
        &[
            ("app_id", Some(DEFAULT_APP_ID)),
            ("model.name", None),
            ("policy_eval.decision", None),
            ("labels", None),
        ],
    )
    .map_err(|e| format!("cannot map the event to a receipt: {e}"))
}

#[cfg(test)]
mod tests {
    use super::without_member;

    #[test]
    fn cuts_the_top_level_member_only() {
        let raw = br#"{"a":"x\"curr_hash\":1","curr_hash":"ab","d":{"curr_hash":"n"}}"#;
        assert_eq!(
            without_member(raw, b"curr_hash").as_deref(),
            Some(&br#"{"a":"x\"curr_hash\":1","d":{"curr_hash":"n"}}"#[..])
        );
        let last = br#"{"a":[1,{"b":2}],"curr_hash":"ab"}"#;
        assert_eq!(
            without_member(last, b"curr_hash").as_deref(),
            Some(&br#"{"a":[1,{"b":2}]}"#[..])
        );
        assert_eq!(
            without_member(br#"{"a":{"curr_hash":"x"}}"#, b"curr_hash"),
            None
        );
    }
}
