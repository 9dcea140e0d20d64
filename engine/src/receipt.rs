//! The receipt model: one record of what an AI system did, as a clear [`ReceiptHeader`] and an
//! opaque payload.
//!
//! A receipt is made from the event JSON that AI SDKs emit:
//!
//! ```json
//! {
//!   "event_id": "evt_01J9Z3", "tenant_id": "acme", "app_id": "claims-assistant",
//!   "kind": "llm_call", "actor_type": "agent", "ts": "2026-03-01T13:04:05.250+01:00",
//!   "session_id": "sess_42", "parent_id": null, "subject_id": "subj_9f2c",
//!   "model": {"name": "gpt-4o", "version": "2024-08-06", "provider": "openai",
//!             "params": {"temperature": 0.2}, "cost": {"usd": 0.0031}},
//!   "policy_eval": {"policy_id": "pii-guard-v3", "decision": "allow",
//!                   "reasons": [], "approvals": []},
//!   "evals": [{"name": "faithfulness", "score": 0.93, "threshold": 0.8}],
//!   "input": {"prompt": "…"}, "output": {"text": "…"}, "tools_invoked": [],
//!   "retention_class": "standard", "labels": {"env": "prod"}
//! }
//! ```
//!
//! - The **header** holds the fields that are indexed, hashed into the chain and stay readable
//!   after crypto-shredding: `event_id`, `tenant_id`, `app_id`, `kind`, `actor_type`, `ts`
//!   (required), `session_id`, `parent_id`, `subject_id`, `model.name`, `model.version`,
//!   `model.provider`, `policy_eval.policy_id`, `policy_eval.decision`, `retention_class` and
//!   `labels` (optional; `null` means absent). They must not carry personal content.
//! - The **payload** is everything else — `input`, `output`, `tools_invoked`, `model.params`,
//!   `model.cost`, `policy_eval.reasons`, `policy_eval.approvals`, `evals` and any unknown
//!   field, at any level — as the event object with the header fields taken out (a `model` or
//!   `policy_eval` object left empty is dropped), in RFC 8785 (JCS) canonical form: the same
//!   event always gives the same bytes, whatever its key order, whitespace or number spelling.
//!   The engine encrypts these bytes when a key applies, and hashes only what it stores; this
//!   module never hashes a payload.
//!
//! ```
//! use trailmix_db::receipt::{Decision, Kind, Receipt, ReceiptHeader};
//!
//! let receipt = Receipt::from_json(
//!     r#"{"event_id": "evt-1", "tenant_id": "acme", "app_id": "bot", "kind": "llm_call",
//!         "actor_type": "agent", "ts": "2026-03-01T13:04:05+01:00",
//!         "policy_eval": {"decision": "deny", "reasons": ["pii"]},
//!         "input": {"prompt": "hello"}}"#,
//! )?;
//! assert_eq!(receipt.header().kind(), &Kind::LlmCall);
//! assert_eq!(receipt.header().decision(), Some(&Decision::Deny));
//! assert_eq!(receipt.header().event_time().to_rfc3339(), "2026-03-01T12:04:05Z");
//! assert_eq!(
//!     receipt.payload(),
//!     br#"{"input":{"prompt":"hello"},"policy_eval":{"reasons":["pii"]}}"#
//! );
//! let bytes = receipt.header().encode();
//! assert_eq!(&ReceiptHeader::decode(&bytes)?, receipt.header());
//! assert_eq!(Receipt::from_json(&receipt.to_sdk_json())?, receipt);
//!
//! let err = Receipt::from_json(r#"{"event_id": "evt 1"}"#).unwrap_err();
//! assert_eq!(err.field(), Some("event_id"));
//! # Ok::<(), trailmix_db::receipt::ReceiptError>(())
//! ```
//!
//! Input is checked strictly and refused with a [`ReceiptError`] that names the field and the
//! problem: the size limits below, no duplicate keys, nesting at most [`MAX_JSON_DEPTH`],
//! integers within ±[`MAX_SAFE_INTEGER`], the character rules of each header field (see
//! [`MAX_ID_BYTES`] and its siblings), and the types of the known payload fields
//! (`tools_invoked`, `policy_eval.reasons` and `policy_eval.approvals` are arrays,
//! `model.params` an object, `model.cost` a number or an object, `evals` an array of objects
//! with a string `name`, a number `score` and an optional number `threshold`).

mod canonical;
mod error;
pub(crate) mod header;
mod header_ids;
mod limits;
mod names;
mod time;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

pub use error::{HeaderProblem, JsonProblem, Problem, ReceiptError};
use header::HeaderFields;
pub use header::{HEADER_FORMAT_VERSION, MAX_HEADER_BYTES, ReceiptHeader};
pub(crate) use header_ids::checked_ids;
pub use limits::{
    MAX_EVENT_JSON_BYTES, MAX_ID_BYTES, MAX_JSON_DEPTH, MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES,
    MAX_LABELS, MAX_NAME_BYTES, MAX_PAYLOAD_BYTES, MAX_SAFE_INTEGER, MAX_TENANT_ID_BYTES,
};
pub use names::{ActorType, CustomActorType, CustomDecision, CustomKind, Decision, Kind};
pub use time::Timestamp;

use canonical::{Seg, check_value, parse_strict, render_path, to_canonical, type_name};
pub(crate) use limits::{
    check_id, check_label_key, check_label_value, check_name, check_retention_class,
    check_tenant_id,
};

// A maximal payload with a maximal header, written as canonical event JSON, must be accepted
// again by `from_json`.
const _: () = assert!(MAX_PAYLOAD_BYTES + 2 * MAX_HEADER_BYTES < MAX_EVENT_JSON_BYTES);

/// Top-level members of the event JSON that belong to the header.
const HEADER_KEYS: [&str; 11] = [
    "event_id",
    "tenant_id",
    "app_id",
    "kind",
    "actor_type",
    "ts",
    "session_id",
    "parent_id",
    "subject_id",
    "retention_class",
    "labels",
];
/// Members of `model` that belong to the header.
const MODEL_HEADER_KEYS: [&str; 3] = ["name", "version", "provider"];
/// Members of `policy_eval` that belong to the header.
const POLICY_HEADER_KEYS: [&str; 2] = ["policy_id", "decision"];
/// Top-level members that [`ReceiptBuilder::extra`] may not set.
const SCHEMA_KEYS: [&str; 6] = [
    "input",
    "output",
    "tools_invoked",
    "model",
    "policy_eval",
    "evals",
];

/// One AI decision receipt: a clear [`ReceiptHeader`] and an opaque payload of canonical JSON
/// bytes.
///
/// Made by [`Receipt::from_json`], [`Receipt::from_json_value`], [`Receipt::builder`],
/// [`Receipt::from_parts`] or serde's `Deserialize` (all apply the same validation); written
/// back in the event JSON shape by [`Receipt::to_sdk_json`] or serde's `Serialize`, so that
/// `Receipt::from_json(&r.to_sdk_json()) == Ok(r)`.
///
/// `Debug` prints the header and only the payload's length: payloads hold personal data and
/// must not end up in logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Receipt {
    header: ReceiptHeader,
    payload: String,
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("header", &self.header)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Receipt {
    /// Parses and validates an SDK event.
    ///
    /// # Errors
    ///
    /// [`ReceiptError::EventTooLarge`] over [`MAX_EVENT_JSON_BYTES`] (checked before parsing),
    /// [`ReceiptError::Json`] with line and column for bad JSON, duplicate keys or too deep
    /// nesting, and otherwise as [`Receipt::from_json_value`].
    pub fn from_json(text: &str) -> Result<Self, ReceiptError> {
        Self::from_json_bytes(text.as_bytes())
    }

    /// As [`Receipt::from_json`], for bytes that should be UTF-8.
    ///
    /// # Errors
    ///
    /// [`ReceiptError::NotUtf8`], and the errors of [`Receipt::from_json`].
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, ReceiptError> {
        if bytes.len() > MAX_EVENT_JSON_BYTES {
            return Err(ReceiptError::EventTooLarge {
                len: bytes.len(),
                max: MAX_EVENT_JSON_BYTES,
            });
        }
        if let Err(e) = std::str::from_utf8(bytes) {
            return Err(ReceiptError::NotUtf8 {
                valid_up_to: e.valid_up_to(),
            });
        }
        Self::from_json_value(parse_strict(bytes)?)
    }

    /// Validates an SDK event that is already a [`serde_json::Value`] (which cannot show
    /// duplicate keys; its size is bounded by [`MAX_PAYLOAD_BYTES`] after the split).
    ///
    /// # Errors
    ///
    /// [`ReceiptError::NotAnObject`]; [`ReceiptError::Field`] naming the first field that is
    /// missing, of the wrong type, or breaks its rule (header fields first, in the order
    /// `event_id`, `tenant_id`, `app_id`, `kind`, `actor_type`, `ts`, …, then the payload);
    /// [`ReceiptError::PayloadTooLarge`].
    pub fn from_json_value(event: Value) -> Result<Self, ReceiptError> {
        let Value::Object(mut event) = event else {
            return Err(ReceiptError::NotAnObject {
                found: type_name(&event),
            });
        };
        let header = take_header(&mut event)?;
        check_payload_fields(&event)?;
        let payload = Value::Object(event);
        check_value(&payload, 0, &mut Vec::new())?;
        let payload = to_canonical(&payload);
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(ReceiptError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        Ok(Self { header, payload })
    }

    /// A builder for a receipt of `kind` with the given tenant and event ids; `app_id`,
    /// `actor_type` and the event time are required too. [`ReceiptBuilder::build`] applies the
    /// same validation as [`Receipt::from_json`].
    pub fn builder(
        tenant_id: impl Into<String>,
        event_id: impl Into<String>,
        kind: Kind,
    ) -> ReceiptBuilder {
        ReceiptBuilder::new(tenant_id.into(), event_id.into(), kind)
    }

    /// Joins a header with payload bytes, for example after reading both from the log and
    /// decrypting the payload. The payload must be exactly what a receipt with this header
    /// holds: canonical, within limits, without header fields.
    ///
    /// # Errors
    ///
    /// [`ReceiptError::PayloadTooLarge`]; [`ReceiptError::Json`] when the bytes are not
    /// strict JSON; [`ReceiptError::NotAnObject`]; [`ReceiptError::Field`] with
    /// [`Problem::InPayload`] for a header field in the payload, or any payload field error;
    /// [`ReceiptError::PayloadNotCanonical`].
    pub fn from_parts(header: &ReceiptHeader, payload: &[u8]) -> Result<Self, ReceiptError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(ReceiptError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        let mut event = match parse_strict(payload)? {
            Value::Object(map) => map,
            other => {
                return Err(ReceiptError::NotAnObject {
                    found: type_name(&other),
                });
            }
        };
        for key in HEADER_KEYS {
            if event.contains_key(key) {
                return Err(ReceiptError::field_error(key, Problem::InPayload));
            }
        }
        for (object, keys) in [
            ("model", &MODEL_HEADER_KEYS[..]),
            ("policy_eval", &POLICY_HEADER_KEYS[..]),
        ] {
            if let Some(Value::Object(obj)) = event.get(object)
                && let Some(key) = keys.iter().find(|k| obj.contains_key(**k))
            {
                return Err(ReceiptError::field_error(
                    format!("{object}.{key}"),
                    Problem::InPayload,
                ));
            }
        }
        header.merge_into(&mut event);
        let receipt = Self::from_json_value(Value::Object(event))?;
        if receipt.payload.as_bytes() != payload || receipt.header != *header {
            return Err(ReceiptError::PayloadNotCanonical);
        }
        Ok(receipt)
    }

    /// The clear header.
    #[must_use]
    pub fn header(&self) -> &ReceiptHeader {
        &self.header
    }

    /// The payload: canonical JSON bytes (RFC 8785) of an object, UTF-8, at most
    /// [`MAX_PAYLOAD_BYTES`]. Personal data lives here, so it is what gets encrypted.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        self.payload.as_bytes()
    }

    /// The payload as text (it is always UTF-8).
    #[must_use]
    pub fn payload_str(&self) -> &str {
        &self.payload
    }

    /// Splits the receipt into its header and payload bytes.
    #[must_use]
    pub fn into_parts(self) -> (ReceiptHeader, Vec<u8>) {
        (self.header, self.payload.into_bytes())
    }

    /// The receipt as an SDK event: the payload with the header fields put back (`ts` in
    /// RFC 3339 UTC, see [`Timestamp::to_rfc3339`]).
    #[must_use]
    pub fn to_sdk_json_value(&self) -> Value {
        // The payload is canonical JSON of an object by construction, so this always parses.
        let mut event = match serde_json::from_str::<Value>(&self.payload) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        self.header.merge_into(&mut event);
        Value::Object(event)
    }

    /// The receipt as SDK event JSON text, in canonical form (RFC 8785), so that one receipt
    /// always prints the same.
    #[must_use]
    pub fn to_sdk_json(&self) -> String {
        to_canonical(&self.to_sdk_json_value())
    }
}

/// `value` in RFC 8785 (JCS) canonical form: members sorted by UTF-16 code units, no
/// whitespace, numbers as ECMAScript prints them. The same code that canonicalizes payloads,
/// for tools that write other canonical-JSON formats (the Agent Audit Trail export).
#[must_use]
pub fn canonical_json(value: &Value) -> String {
    to_canonical(value)
}

impl Serialize for Receipt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_sdk_json_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Receipt {
    /// Reads the event JSON shape with the checks of [`Receipt::from_json`] (duplicate keys,
    /// depth, fields); the size limit on the text is the caller's, as serde reads streams.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let problem = Cell::new(None);
        let event = canonical::Strict::new(&problem).deserialize(deserializer)?;
        Self::from_json_value(event).map_err(de::Error::custom)
    }
}

fn wrong_type(field: &str, expected: &'static str, found: &Value) -> ReceiptError {
    ReceiptError::field_error(
        field,
        Problem::WrongType {
            expected,
            found: type_name(found),
        },
    )
}

fn checked(
    field: &str,
    value: String,
    check: fn(&str) -> Result<(), Problem>,
) -> Result<String, ReceiptError> {
    check(&value).map_err(|p| ReceiptError::field_error(field, p))?;
    Ok(value)
}

/// Removes a required string member.
fn take_required(event: &mut Map<String, Value>, key: &str) -> Result<String, ReceiptError> {
    match event.remove(key) {
        None => Err(ReceiptError::field_error(key, Problem::Missing)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(wrong_type(key, "string", &other)),
    }
}

/// Removes an optional string member (`null` is absent); `field` is its path.
fn take_optional(
    map: &mut Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<String>, ReceiptError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(field, "string or null", &other)),
    }
}

fn take_optional_checked(
    map: &mut Map<String, Value>,
    key: &str,
    field: &str,
    check: fn(&str) -> Result<(), Problem>,
) -> Result<Option<String>, ReceiptError> {
    take_optional(map, key, field)?
        .map(|v| checked(field, v, check))
        .transpose()
}

/// Takes the object member `key` apart: `f` removes the header fields; what is left goes back
/// into the payload unless it is empty.
fn take_nested<T>(
    event: &mut Map<String, Value>,
    key: &str,
    f: impl FnOnce(&mut Map<String, Value>) -> Result<T, ReceiptError>,
) -> Result<Option<T>, ReceiptError> {
    match event.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(mut obj)) => {
            let out = f(&mut obj)?;
            if !obj.is_empty() {
                event.insert(key.to_owned(), Value::Object(obj));
            }
            Ok(Some(out))
        }
        Some(other) => Err(wrong_type(key, "object or null", &other)),
    }
}

type ModelFields = (Option<String>, Option<String>, Option<String>);

/// Removes and validates the header fields of an event object; what is left is the payload.
fn take_header(event: &mut Map<String, Value>) -> Result<ReceiptHeader, ReceiptError> {
    let event_id = checked("event_id", take_required(event, "event_id")?, check_id)?;
    let tenant_id = checked(
        "tenant_id",
        take_required(event, "tenant_id")?,
        check_tenant_id,
    )?;
    let app_id = checked("app_id", take_required(event, "app_id")?, check_id)?;
    let kind = Kind::parse(&take_required(event, "kind")?)?;
    let actor_type = ActorType::parse(&take_required(event, "actor_type")?)?;
    let event_time = Timestamp::parse_rfc3339(&take_required(event, "ts")?)
        .map_err(|p| ReceiptError::field_error("ts", p))?;
    let session_id = take_optional_checked(event, "session_id", "session_id", check_id)?;
    let parent_id = take_optional_checked(event, "parent_id", "parent_id", check_id)?;
    let subject_id = take_optional_checked(event, "subject_id", "subject_id", check_id)?;
    let (model_name, model_version, model_provider) =
        take_nested(event, "model", |m| -> Result<ModelFields, ReceiptError> {
            Ok((
                take_optional_checked(m, "name", "model.name", check_id)?,
                take_optional_checked(m, "version", "model.version", check_id)?,
                take_optional_checked(m, "provider", "model.provider", check_id)?,
            ))
        })?
        .unwrap_or_default();
    let (policy_id, decision) = take_nested(event, "policy_eval", |p| {
        let policy_id = take_optional_checked(p, "policy_id", "policy_eval.policy_id", check_id)?;
        let decision = take_optional(p, "decision", "policy_eval.decision")?
            .map(|d| Decision::parse(&d))
            .transpose()?;
        Ok((policy_id, decision))
    })?
    .unwrap_or_default();
    let retention_class = take_optional_checked(
        event,
        "retention_class",
        "retention_class",
        check_retention_class,
    )?;
    let labels = take_labels(event)?;
    Ok(ReceiptHeader::from_fields(HeaderFields {
        event_id: &event_id,
        tenant_id: &tenant_id,
        app_id: &app_id,
        session_id: session_id.as_deref(),
        parent_id: parent_id.as_deref(),
        subject_id: subject_id.as_deref(),
        kind,
        actor_type,
        event_time,
        model_name: model_name.as_deref(),
        model_version: model_version.as_deref(),
        model_provider: model_provider.as_deref(),
        policy_id: policy_id.as_deref(),
        decision,
        retention_class: retention_class.as_deref(),
        labels,
    }))
}

fn take_labels(event: &mut Map<String, Value>) -> Result<BTreeMap<String, String>, ReceiptError> {
    let obj = match event.remove("labels") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(obj)) => obj,
        Some(other) => return Err(wrong_type("labels", "object or null", &other)),
    };
    if obj.len() > MAX_LABELS {
        return Err(ReceiptError::field_error(
            "labels",
            Problem::TooMany {
                count: obj.len(),
                max: MAX_LABELS,
            },
        ));
    }
    let mut labels = BTreeMap::new();
    for (key, value) in obj {
        let field = || render_path(&[Seg::Key("labels"), Seg::Key(&key)]);
        if let Err(p) = check_label_key(&key) {
            return Err(ReceiptError::field_error(field(), p));
        }
        let Value::String(value) = value else {
            return Err(wrong_type(&field(), "string", &value));
        };
        if let Err(p) = check_label_value(&value) {
            return Err(ReceiptError::field_error(field(), p));
        }
        labels.insert(key, value);
    }
    Ok(labels)
}

/// JSON types a known payload field may have.
#[derive(Clone, Copy)]
enum Accepts {
    Array,
    Object,
    NumberOrObject,
}

fn check_type(field: &str, value: Option<&Value>, accepts: Accepts) -> Result<(), ReceiptError> {
    let (ok, expected) = match (accepts, value) {
        (_, None | Some(Value::Null)) => (true, ""),
        (Accepts::Array, Some(v)) => (v.is_array(), "array or null"),
        (Accepts::Object, Some(v)) => (v.is_object(), "object or null"),
        (Accepts::NumberOrObject, Some(v)) => {
            (v.is_number() || v.is_object(), "number, object or null")
        }
    };
    match value {
        Some(v) if !ok => Err(wrong_type(field, expected, v)),
        _ => Ok(()),
    }
}

/// Checks the types of the known payload fields.
fn check_payload_fields(payload: &Map<String, Value>) -> Result<(), ReceiptError> {
    check_type(
        "tools_invoked",
        payload.get("tools_invoked"),
        Accepts::Array,
    )?;
    if let Some(Value::Object(model)) = payload.get("model") {
        check_type("model.params", model.get("params"), Accepts::Object)?;
        check_type("model.cost", model.get("cost"), Accepts::NumberOrObject)?;
    }
    if let Some(Value::Object(policy)) = payload.get("policy_eval") {
        check_type("policy_eval.reasons", policy.get("reasons"), Accepts::Array)?;
        check_type(
            "policy_eval.approvals",
            policy.get("approvals"),
            Accepts::Array,
        )?;
    }
    check_type("evals", payload.get("evals"), Accepts::Array)?;
    if let Some(Value::Array(evals)) = payload.get("evals") {
        for (i, eval) in evals.iter().enumerate() {
            let field =
                |name: &str| render_path(&[Seg::Key("evals"), Seg::Index(i), Seg::Key(name)]);
            let Value::Object(eval) = eval else {
                return Err(wrong_type(
                    &render_path(&[Seg::Key("evals"), Seg::Index(i)]),
                    "object",
                    eval,
                ));
            };
            match eval.get("name") {
                None => return Err(ReceiptError::field_error(field("name"), Problem::Missing)),
                Some(Value::String(s)) if s.is_empty() => {
                    return Err(ReceiptError::field_error(field("name"), Problem::Empty));
                }
                Some(Value::String(_)) => {}
                Some(other) => return Err(wrong_type(&field("name"), "string", other)),
            }
            match eval.get("score") {
                None => {
                    return Err(ReceiptError::field_error(field("score"), Problem::Missing));
                }
                Some(Value::Number(_)) => {}
                Some(other) => return Err(wrong_type(&field("score"), "number", other)),
            }
            match eval.get("threshold") {
                None | Some(Value::Null | Value::Number(_)) => {}
                Some(other) => {
                    return Err(wrong_type(&field("threshold"), "number or null", other));
                }
            }
        }
    }
    Ok(())
}

/// Builds a [`Receipt`] field by field. Nothing is checked until [`build`](Self::build), which
/// assembles the event JSON and validates it exactly as [`Receipt::from_json_value`] does, so
/// errors name fields as in the event JSON.
#[must_use]
pub struct ReceiptBuilder {
    kind: Kind,
    actor_type: Option<ActorType>,
    decision: Option<Decision>,
    header: Map<String, Value>,
    model: Map<String, Value>,
    policy: Map<String, Value>,
    labels: Map<String, Value>,
    payload: Map<String, Value>,
    tools: Vec<Value>,
    reasons: Vec<Value>,
    approvals: Vec<Value>,
    evals: Vec<Value>,
    extra: Vec<(String, Value)>,
}

impl ReceiptBuilder {
    fn new(tenant_id: String, event_id: String, kind: Kind) -> Self {
        let mut header = Map::new();
        header.insert("tenant_id".into(), Value::String(tenant_id));
        header.insert("event_id".into(), Value::String(event_id));
        Self {
            kind,
            actor_type: None,
            decision: None,
            header,
            model: Map::new(),
            policy: Map::new(),
            labels: Map::new(),
            payload: Map::new(),
            tools: Vec::new(),
            reasons: Vec::new(),
            approvals: Vec::new(),
            evals: Vec::new(),
            extra: Vec::new(),
        }
    }

    fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.header.insert(key.into(), Value::String(value.into()));
        self
    }

    /// The application that emitted the event (`app_id`, required).
    pub fn app_id(self, app_id: impl Into<String>) -> Self {
        self.set("app_id", app_id)
    }

    /// Who acted (`actor_type`, required).
    pub fn actor_type(mut self, actor_type: ActorType) -> Self {
        self.actor_type = Some(actor_type);
        self
    }

    /// When the event happened (`ts`, required).
    pub fn event_time(self, ts: Timestamp) -> Self {
        self.set("ts", ts.to_rfc3339())
    }

    /// The session or trace (`session_id`).
    pub fn session_id(self, id: impl Into<String>) -> Self {
        self.set("session_id", id)
    }

    /// The event this one follows from (`parent_id`).
    pub fn parent_id(self, id: impl Into<String>) -> Self {
        self.set("parent_id", id)
    }

    /// The pseudonymous data subject whose key encrypts the payload (`subject_id`).
    pub fn subject_id(self, id: impl Into<String>) -> Self {
        self.set("subject_id", id)
    }

    /// The retention class (`retention_class`).
    pub fn retention_class(self, class: impl Into<String>) -> Self {
        self.set("retention_class", class)
    }

    /// The model's name (`model.name`).
    pub fn model_name(mut self, name: impl Into<String>) -> Self {
        self.model.insert("name".into(), Value::String(name.into()));
        self
    }

    /// The model's version (`model.version`).
    pub fn model_version(mut self, version: impl Into<String>) -> Self {
        self.model
            .insert("version".into(), Value::String(version.into()));
        self
    }

    /// The model's provider (`model.provider`).
    pub fn model_provider(mut self, provider: impl Into<String>) -> Self {
        self.model
            .insert("provider".into(), Value::String(provider.into()));
        self
    }

    /// The model's parameters (`model.params`, payload; an object).
    pub fn model_params(mut self, params: Value) -> Self {
        self.model.insert("params".into(), params);
        self
    }

    /// The call's cost (`model.cost`, payload; a number or an object).
    pub fn model_cost(mut self, cost: Value) -> Self {
        self.model.insert("cost".into(), cost);
        self
    }

    /// The policy that was evaluated (`policy_eval.policy_id`).
    pub fn policy_id(mut self, id: impl Into<String>) -> Self {
        self.policy
            .insert("policy_id".into(), Value::String(id.into()));
        self
    }

    /// The policy's decision (`policy_eval.decision`).
    pub fn decision(mut self, decision: Decision) -> Self {
        self.decision = Some(decision);
        self
    }

    /// Appends a reason to `policy_eval.reasons` (payload).
    pub fn policy_reason(mut self, reason: Value) -> Self {
        self.reasons.push(reason);
        self
    }

    /// Appends an approval to `policy_eval.approvals` (payload).
    pub fn approval(mut self, approval: Value) -> Self {
        self.approvals.push(approval);
        self
    }

    /// Sets a label (a later value for the same key replaces an earlier one).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), Value::String(value.into()));
        self
    }

    /// The model's or tool's input (`input`, payload).
    pub fn input(mut self, input: Value) -> Self {
        self.payload.insert("input".into(), input);
        self
    }

    /// The output (`output`, payload).
    pub fn output(mut self, output: Value) -> Self {
        self.payload.insert("output".into(), output);
        self
    }

    /// Appends a tool call to `tools_invoked` (payload).
    pub fn tool_invoked(mut self, tool: Value) -> Self {
        self.tools.push(tool);
        self
    }

    /// Appends an evaluation `{name, score, threshold}` to `evals` (payload). A non-finite
    /// score or threshold becomes `null`, which [`build`](Self::build) refuses for `score`.
    pub fn eval(mut self, name: impl Into<String>, score: f64, threshold: Option<f64>) -> Self {
        let mut eval = Map::new();
        eval.insert("name".into(), Value::String(name.into()));
        eval.insert("score".into(), Value::from(score));
        if let Some(t) = threshold {
            eval.insert("threshold".into(), Value::from(t));
        }
        self.evals.push(Value::Object(eval));
        self
    }

    /// Sets a top-level payload member outside the schema (an SDK's extra field). A key of the
    /// schema is refused by [`build`](Self::build) with [`Problem::ReservedField`].
    pub fn extra(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra.push((key.into(), value));
        self
    }

    /// Assembles the event and validates it.
    ///
    /// # Errors
    ///
    /// As [`Receipt::from_json_value`]; [`Problem::ReservedField`] for an
    /// [`extra`](Self::extra) key that the schema owns.
    pub fn build(self) -> Result<Receipt, ReceiptError> {
        let mut event = self.header;
        event.extend(self.payload);
        event.insert("kind".into(), Value::String(self.kind.as_str().to_owned()));
        if let Some(actor) = self.actor_type {
            event.insert(
                "actor_type".into(),
                Value::String(actor.as_str().to_owned()),
            );
        }
        let model = self.model;
        let mut policy = self.policy;
        if let Some(decision) = self.decision {
            policy.insert(
                "decision".into(),
                Value::String(decision.as_str().to_owned()),
            );
        }
        if !self.reasons.is_empty() {
            policy.insert("reasons".into(), Value::Array(self.reasons));
        }
        if !self.approvals.is_empty() {
            policy.insert("approvals".into(), Value::Array(self.approvals));
        }
        if !self.tools.is_empty() {
            event.insert("tools_invoked".into(), Value::Array(self.tools));
        }
        if !self.evals.is_empty() {
            event.insert("evals".into(), Value::Array(self.evals));
        }
        for (key, map) in [
            ("model", model),
            ("policy_eval", policy),
            ("labels", self.labels),
        ] {
            if !map.is_empty() {
                event.insert(key.into(), Value::Object(map));
            }
        }
        for (key, value) in self.extra {
            if HEADER_KEYS.contains(&key.as_str()) || SCHEMA_KEYS.contains(&key.as_str()) {
                return Err(ReceiptError::field_error(key, Problem::ReservedField));
            }
            event.insert(key, value);
        }
        Receipt::from_json_value(Value::Object(event))
    }
}

/// Entry point for fuzzing (`cargo fuzz`) and the seeded fuzz loops in the tests: parses
/// arbitrary bytes as an event and as an encoded header, and checks the round trips of
/// whatever is accepted.
///
/// # Panics
///
/// Only when a round trip breaks — a bug, which is what the fuzzer looks for. Refused input
/// never panics.
pub fn fuzz_from_json(data: &[u8]) {
    if let Ok(header) = ReceiptHeader::decode(data) {
        assert_eq!(header.encode(), data, "header decode/encode round trip");
    }
    let Ok(receipt) = Receipt::from_json_bytes(data) else {
        return;
    };
    let json = receipt.to_sdk_json();
    assert_eq!(
        Receipt::from_json(&json).as_ref(),
        Ok(&receipt),
        "JSON round trip"
    );
    let bytes = receipt.header().encode();
    assert_eq!(bytes.len(), receipt.header().encoded_len(), "encoded_len");
    assert!(bytes.len() <= MAX_HEADER_BYTES, "header size bound");
    assert_eq!(
        ReceiptHeader::decode(&bytes).as_ref(),
        Ok(receipt.header()),
        "header round trip"
    );
    assert_eq!(
        Receipt::from_parts(receipt.header(), receipt.payload()).as_ref(),
        Ok(&receipt),
        "from_parts round trip"
    );
}
