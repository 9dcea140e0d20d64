//! [`ReceiptHeader`]: the clear, indexed part of a receipt, and its binary encoding.
//!
//! The encoding is specified byte by byte in `docs/design.md` ("Receipt header encoding").
//! It is canonical: every header has exactly one encoding and [`ReceiptHeader::decode`]
//! accepts nothing else, so `encode(decode(x)) == x` for every `x` that decodes.
//!
//! A [`ReceiptHeader`] holds that encoding itself, in one allocation, with the offsets of its
//! fields: every query result and `Db::get` decodes one, and a `String` per field plus a map
//! of labels was ~4.5 k instructions per result (docs/performance.md, eleventh session).
//! Accessors borrow from the bytes; encoding is a copy.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::error::{HeaderProblem, Problem, ReceiptError};
use super::limits::{
    AsciiRule, ID, LABEL_KEY, MAX_ID_BYTES, MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES, MAX_LABELS,
    MAX_NAME_BYTES, MAX_TENANT_ID_BYTES, NAME, RETENTION_CLASS as RETENTION_RULE,
    TENANT_ID as TENANT_RULE, check_id, check_label_value, check_name, check_tenant_id,
};
use super::names::{ActorType, CustomActorType, CustomDecision, CustomKind, Decision, Kind};
use super::time::Timestamp;

/// Version byte that starts every encoded header written by this build.
pub const HEADER_FORMAT_VERSION: u8 = 1;

// The optional fields' flag bits, in field order (also read by the borrowed header readers
// of the indexer and of verify).
pub(crate) const FLAG_SESSION_ID: u16 = 1 << 0;
pub(crate) const FLAG_PARENT_ID: u16 = 1 << 1;
pub(crate) const FLAG_SUBJECT_ID: u16 = 1 << 2;
pub(crate) const FLAG_MODEL_NAME: u16 = 1 << 3;
pub(crate) const FLAG_MODEL_VERSION: u16 = 1 << 4;
pub(crate) const FLAG_MODEL_PROVIDER: u16 = 1 << 5;
pub(crate) const FLAG_POLICY_ID: u16 = 1 << 6;
pub(crate) const FLAG_DECISION: u16 = 1 << 7;
pub(crate) const FLAG_RETENTION_CLASS: u16 = 1 << 8;
pub(crate) const FLAGS_DEFINED: u16 = (1 << 9) - 1;

/// The largest encoded header, in bytes (22 173): every optional field present at its maximum
/// length, custom names for kind, actor type and decision, and [`MAX_LABELS`] maximal labels.
pub const MAX_HEADER_BYTES: usize = 1 + 2 + 8 // version, flags, event time
    + 3 * (1 + 1 + MAX_NAME_BYTES) // kind, actor_type, decision (custom)
    + (1 + MAX_TENANT_ID_BYTES)
    + 9 * (1 + MAX_ID_BYTES) // event, app, session, parent, subject, model x3, policy
    + (1 + MAX_NAME_BYTES) // retention class
    + 1 + MAX_LABELS * (1 + MAX_LABEL_KEY_BYTES + 2 + MAX_LABEL_VALUE_BYTES);

// Field offsets are kept as `u16`: every field of a valid header starts below its length.
const _: () = assert!(MAX_HEADER_BYTES < u16::MAX as usize);

/// Where a string field's bytes lie in an encoded header (after its length byte). A `start`
/// of 0 marks an absent optional field: offset 0 holds the version byte, never a string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u16,
    len: u8,
}

impl Span {
    const ABSENT: Self = Self { start: 0, len: 0 };

    /// The span of a string of `len` bytes whose length byte is at `at`.
    fn after_length_byte(at: usize, len: usize) -> Self {
        // Both fit: see the assertion on MAX_HEADER_BYTES and the 255-byte `str8` bound.
        Self {
            start: u16::try_from(at + 1).unwrap_or(0),
            len: u8::try_from(len).unwrap_or(0),
        }
    }

    /// The string in `bytes`, `None` when absent. The bytes were checked when the span was
    /// made, so `from_utf8` cannot fail; it is kept (ASCII fields, a few instructions) because
    /// skipping it would take `unsafe`.
    fn get(self, bytes: &[u8]) -> Option<&str> {
        if self.start == 0 {
            return None;
        }
        let start = usize::from(self.start);
        let raw = bytes.get(start..start + usize::from(self.len))?;
        std::str::from_utf8(raw).ok()
    }
}

// Indexes into `Layout::spans`, in encoding order.
const TENANT_ID: usize = 0;
const EVENT_ID: usize = 1;
const APP_ID: usize = 2;
const SESSION_ID: usize = 3;
const PARENT_ID: usize = 4;
const SUBJECT_ID: usize = 5;
const MODEL_NAME: usize = 6;
const MODEL_VERSION: usize = 7;
const MODEL_PROVIDER: usize = 8;
const POLICY_ID: usize = 9;
const RETENTION_CLASS: usize = 10;
const SPANS: usize = 11;

/// The optional id fields: span index, flag bit and field name, in encoding order.
const OPTIONAL_IDS: [(usize, u16, &str); 7] = [
    (SESSION_ID, FLAG_SESSION_ID, "session_id"),
    (PARENT_ID, FLAG_PARENT_ID, "parent_id"),
    (SUBJECT_ID, FLAG_SUBJECT_ID, "subject_id"),
    (MODEL_NAME, FLAG_MODEL_NAME, "model.name"),
    (MODEL_VERSION, FLAG_MODEL_VERSION, "model.version"),
    (MODEL_PROVIDER, FLAG_MODEL_PROVIDER, "model.provider"),
    (POLICY_ID, FLAG_POLICY_ID, "policy_eval.policy_id"),
];

/// A kind, actor type or decision as encoded: its tag byte's offset and value, and for a
/// custom name (tag 0) the name's span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NamedAt {
    at: u16,
    tag: u8,
    name: Span,
}

/// Where every field of a valid encoded header lies: what one validating pass over the bytes
/// finds ([`Layout::parse`]), or what the encoder wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    event_time_ns: i64,
    kind: NamedAt,
    actor_type: NamedAt,
    decision: Option<NamedAt>,
    spans: [Span; SPANS],
    /// Offset of the label count.
    labels_at: u16,
}

impl Layout {
    /// Checks `bytes` as one encoded header with every rule of [`ReceiptHeader::decode`]
    /// (which is this and the owned copy), without allocating.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let mut r = Reader { bytes, pos: 0 };
        let flags = r.version_and_flags()?;
        let event_time_ns = r.i64()?;
        let kind = r.named(
            "kind",
            |tag| Kind::from_tag(tag).is_some(),
            |name| Kind::BUILT_IN.iter().any(|k| k.as_str().as_bytes() == name),
        )?;
        let actor_type = r.named(
            "actor_type",
            |tag| ActorType::from_tag(tag).is_some(),
            |name| {
                ActorType::BUILT_IN
                    .iter()
                    .any(|a| a.as_str().as_bytes() == name)
            },
        )?;
        let mut spans = [Span::ABSENT; SPANS];
        spans[TENANT_ID] = r.ascii_str8("tenant_id", &TENANT_RULE)?;
        spans[EVENT_ID] = r.ascii_str8("event_id", &ID)?;
        spans[APP_ID] = r.ascii_str8("app_id", &ID)?;
        for (index, flag, field) in OPTIONAL_IDS {
            if flags & flag != 0 {
                spans[index] = r.ascii_str8(field, &ID)?;
            }
        }
        let decision = if flags & FLAG_DECISION == 0 {
            None
        } else {
            Some(r.named(
                "policy_eval.decision",
                |tag| Decision::from_tag(tag).is_some(),
                |name| {
                    Decision::BUILT_IN
                        .iter()
                        .any(|d| d.as_str().as_bytes() == name)
                },
            )?)
        };
        if flags & FLAG_RETENTION_CLASS != 0 {
            spans[RETENTION_CLASS] = r.ascii_str8("retention_class", &RETENTION_RULE)?;
        }
        let labels_at = u16::try_from(r.pos).unwrap_or(0);
        r.labels()?;
        if r.pos != bytes.len() {
            return Err(header_error(
                r.pos,
                HeaderProblem::TrailingBytes {
                    count: bytes.len() - r.pos,
                },
            ));
        }
        Ok(Self {
            event_time_ns,
            kind,
            actor_type,
            decision,
            spans,
            labels_at,
        })
    }
}

/// The clear part of a receipt: ids, tenant, app, kind, actor, event time, model, policy
/// decision, retention class, data subject and labels.
///
/// These fields are indexed, hashed into the chain and stay readable after the payload is
/// crypto-shredded, so they must never carry personal content: `subject_id` is an opaque,
/// pseudonymous id (never an e-mail address or a name), and labels are operational metadata.
///
/// Every `ReceiptHeader` is valid: it is only made by [`Receipt`](super::Receipt)'s
/// constructors or by [`ReceiptHeader::decode`], which apply the same rules.
///
/// It holds its canonical encoding and where each field lies in it; equality and hashing are
/// by those bytes, which is by fields (see [`PartialEq`] below).
#[derive(Clone)]
pub struct ReceiptHeader {
    bytes: Box<[u8]>,
    layout: Layout,
    // Kept decoded: the accessors hand out references to them, and a built-in value
    // (nearly every receipt's) allocates nothing.
    kind: Kind,
    actor_type: ActorType,
    decision: Option<Decision>,
    /// The labels as a map, made on the first call of [`ReceiptHeader::labels`]: most reads
    /// never ask for it, and the indexer and JSON output read the bytes instead.
    labels: OnceLock<BTreeMap<String, String>>,
}

/// Two headers are equal when their encodings are. That is equality of every field: the
/// encoding is a function of the fields (so equal fields give equal bytes), and it is
/// canonical and complete (every field is written, `decode` accepts one encoding per header
/// and reads every field back from it, so equal bytes give equal fields). The property test in
/// `engine/tests/receipt_props.rs` checks both directions.
impl PartialEq for ReceiptHeader {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for ReceiptHeader {}

impl Hash for ReceiptHeader {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

#[allow(
    clippy::missing_fields_in_debug,
    reason = "prints the fields that the bytes and layout hold, not the bytes"
)]
impl fmt::Debug for ReceiptHeader {
    /// The fields, as the derived `Debug` of the former field-per-member struct printed them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiptHeader")
            .field("event_id", &self.event_id())
            .field("tenant_id", &self.tenant_id())
            .field("app_id", &self.app_id())
            .field("session_id", &self.session_id())
            .field("parent_id", &self.parent_id())
            .field("subject_id", &self.subject_id())
            .field("kind", &self.kind)
            .field("actor_type", &self.actor_type)
            .field("event_time", &self.event_time())
            .field("model_name", &self.model_name())
            .field("model_version", &self.model_version())
            .field("model_provider", &self.model_provider())
            .field("policy_id", &self.policy_id())
            .field("decision", &self.decision)
            .field("retention_class", &self.retention_class())
            .field("labels", self.labels())
            .finish()
    }
}

/// A header's fields, borrowed (labels owned): what [`ReceiptHeader::from_fields`] encodes.
/// The caller has checked every field against its rule.
pub(crate) struct HeaderFields<'a> {
    pub(crate) event_id: &'a str,
    pub(crate) tenant_id: &'a str,
    pub(crate) app_id: &'a str,
    pub(crate) session_id: Option<&'a str>,
    pub(crate) parent_id: Option<&'a str>,
    pub(crate) subject_id: Option<&'a str>,
    pub(crate) kind: Kind,
    pub(crate) actor_type: ActorType,
    pub(crate) event_time: Timestamp,
    pub(crate) model_name: Option<&'a str>,
    pub(crate) model_version: Option<&'a str>,
    pub(crate) model_provider: Option<&'a str>,
    pub(crate) policy_id: Option<&'a str>,
    pub(crate) decision: Option<Decision>,
    pub(crate) retention_class: Option<&'a str>,
    pub(crate) labels: BTreeMap<String, String>,
}

impl HeaderFields<'_> {
    /// The optional id fields, in encoding order (as [`OPTIONAL_IDS`]).
    fn optional_ids(&self) -> [Option<&str>; 7] {
        [
            self.session_id,
            self.parent_id,
            self.subject_id,
            self.model_name,
            self.model_version,
            self.model_provider,
            self.policy_id,
        ]
    }

    /// The length of the encoding.
    fn encoded_len(&self) -> usize {
        let name = |tag: u8, s: &str| if tag == 0 { 2 + s.len() } else { 1 };
        let opt = |s: Option<&str>| s.map_or(0, |s| 1 + s.len());
        11 + name(self.kind.tag(), self.kind.as_str())
            + name(self.actor_type.tag(), self.actor_type.as_str())
            + 3
            + self.tenant_id.len()
            + self.event_id.len()
            + self.app_id.len()
            + self.optional_ids().into_iter().map(opt).sum::<usize>()
            + self
                .decision
                .as_ref()
                .map_or(0, |d| name(d.tag(), d.as_str()))
            + opt(self.retention_class)
            + 1
            + self
                .labels
                .iter()
                .map(|(k, v)| 3 + k.len() + v.len())
                .sum::<usize>()
    }
}

impl ReceiptHeader {
    /// Encodes checked fields: one allocation of exactly the encoded length, and the layout
    /// recorded on the way.
    pub(crate) fn from_fields(fields: HeaderFields<'_>) -> Self {
        let optional = fields.optional_ids();
        let mut flags = 0;
        for ((_, flag, _), value) in OPTIONAL_IDS.iter().zip(optional) {
            if value.is_some() {
                flags |= flag;
            }
        }
        if fields.decision.is_some() {
            flags |= FLAG_DECISION;
        }
        if fields.retention_class.is_some() {
            flags |= FLAG_RETENTION_CLASS;
        }
        let mut out = Vec::with_capacity(fields.encoded_len());
        out.push(HEADER_FORMAT_VERSION);
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&fields.event_time.as_unix_nanos().to_le_bytes());
        let kind = put_named(&mut out, fields.kind.tag(), fields.kind.as_str());
        let actor_type = put_named(
            &mut out,
            fields.actor_type.tag(),
            fields.actor_type.as_str(),
        );
        let mut spans = [Span::ABSENT; SPANS];
        spans[TENANT_ID] = put_str8(&mut out, fields.tenant_id);
        spans[EVENT_ID] = put_str8(&mut out, fields.event_id);
        spans[APP_ID] = put_str8(&mut out, fields.app_id);
        for ((index, _, _), value) in OPTIONAL_IDS.iter().zip(optional) {
            if let Some(v) = value {
                spans[*index] = put_str8(&mut out, v);
            }
        }
        let decision = fields
            .decision
            .as_ref()
            .map(|d| put_named(&mut out, d.tag(), d.as_str()));
        if let Some(r) = fields.retention_class {
            spans[RETENTION_CLASS] = put_str8(&mut out, r);
        }
        let labels_at = u16::try_from(out.len()).unwrap_or(0);
        out.push(u8::try_from(fields.labels.len()).unwrap_or(u8::MAX));
        for (k, v) in fields.labels.iter().take(usize::from(u8::MAX)) {
            put_str8(&mut out, k);
            let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&v.as_bytes()[..usize::from(len)]);
        }
        let layout = Layout {
            event_time_ns: fields.event_time.as_unix_nanos(),
            kind,
            actor_type,
            decision,
            spans,
            labels_at,
        };
        Self {
            bytes: out.into_boxed_slice(),
            layout,
            kind: fields.kind,
            actor_type: fields.actor_type,
            decision: fields.decision,
            labels: OnceLock::from(fields.labels),
        }
    }

    /// The fields, borrowed, for a caller that changes some and encodes again
    /// ([`ReceiptHeader::from_fields`]); the labels are cloned.
    pub(crate) fn fields(&self) -> HeaderFields<'_> {
        HeaderFields {
            event_id: self.event_id(),
            tenant_id: self.tenant_id(),
            app_id: self.app_id(),
            session_id: self.session_id(),
            parent_id: self.parent_id(),
            subject_id: self.subject_id(),
            kind: self.kind.clone(),
            actor_type: self.actor_type.clone(),
            event_time: self.event_time(),
            model_name: self.model_name(),
            model_version: self.model_version(),
            model_provider: self.model_provider(),
            policy_id: self.policy_id(),
            decision: self.decision.clone(),
            retention_class: self.retention_class(),
            labels: self.labels().clone(),
        }
    }

    fn field(&self, index: usize) -> Option<&str> {
        self.layout.spans.get(index)?.get(&self.bytes)
    }

    /// A required field: always present in a valid header.
    fn required(&self, index: usize) -> &str {
        self.field(index).unwrap_or_default()
    }

    /// The event's id (`event_id`), unique within its tenant.
    #[must_use]
    pub fn event_id(&self) -> &str {
        self.required(EVENT_ID)
    }

    /// The tenant (`tenant_id`).
    #[must_use]
    pub fn tenant_id(&self) -> &str {
        self.required(TENANT_ID)
    }

    /// The application that emitted the event (`app_id`).
    #[must_use]
    pub fn app_id(&self) -> &str {
        self.required(APP_ID)
    }

    /// The session or trace the event belongs to (`session_id`).
    #[must_use]
    pub fn session_id(&self) -> Option<&str> {
        self.field(SESSION_ID)
    }

    /// The event this one follows from (`parent_id`).
    #[must_use]
    pub fn parent_id(&self) -> Option<&str> {
        self.field(PARENT_ID)
    }

    /// The pseudonymous data subject whose key encrypts the payload (`subject_id`).
    #[must_use]
    pub fn subject_id(&self) -> Option<&str> {
        self.field(SUBJECT_ID)
    }

    /// What the receipt records (`kind`).
    #[must_use]
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// Who acted (`actor_type`).
    #[must_use]
    pub fn actor_type(&self) -> &ActorType {
        &self.actor_type
    }

    /// When the event happened, by the client's clock (`ts`).
    #[must_use]
    pub fn event_time(&self) -> Timestamp {
        Timestamp::from_unix_nanos(self.layout.event_time_ns)
    }

    /// The model's name (`model.name`).
    #[must_use]
    pub fn model_name(&self) -> Option<&str> {
        self.field(MODEL_NAME)
    }

    /// The model's version (`model.version`).
    #[must_use]
    pub fn model_version(&self) -> Option<&str> {
        self.field(MODEL_VERSION)
    }

    /// The model's provider (`model.provider`).
    #[must_use]
    pub fn model_provider(&self) -> Option<&str> {
        self.field(MODEL_PROVIDER)
    }

    /// The policy that was evaluated (`policy_eval.policy_id`).
    #[must_use]
    pub fn policy_id(&self) -> Option<&str> {
        self.field(POLICY_ID)
    }

    /// The policy's decision (`policy_eval.decision`).
    #[must_use]
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// The retention class (`retention_class`), mapped to a duration by the store's policy.
    #[must_use]
    pub fn retention_class(&self) -> Option<&str> {
        self.field(RETENTION_CLASS)
    }

    /// The labels, sorted by key. The map is built from the encoded bytes on the first call
    /// and kept.
    #[must_use]
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.labels.get_or_init(|| {
            self.label_pairs()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
    }

    /// The labels in key order, borrowed from the encoded bytes (no map built).
    pub(crate) fn label_pairs(&self) -> LabelPairs<'_> {
        LabelPairs::new(&self.bytes, usize::from(self.layout.labels_at))
    }

    /// The header's fields in the event JSON shape (nested `model` and `policy_eval` objects,
    /// `ts` in RFC 3339 UTC); absent fields are left out. This is what a reader shows when the
    /// payload is shredded.
    #[must_use]
    pub fn to_sdk_json_value(&self) -> Value {
        let mut event = Map::new();
        self.merge_into(&mut event);
        Value::Object(event)
    }

    /// Writes the header's fields into an event object whose `model` and `policy_eval`
    /// members, if present, are objects.
    pub(crate) fn merge_into(&self, event: &mut Map<String, Value>) {
        let s = |v: &str| Value::String(v.to_owned());
        event.insert("event_id".into(), s(self.event_id()));
        event.insert("tenant_id".into(), s(self.tenant_id()));
        event.insert("app_id".into(), s(self.app_id()));
        event.insert("kind".into(), s(self.kind.as_str()));
        event.insert("actor_type".into(), s(self.actor_type.as_str()));
        event.insert("ts".into(), Value::String(self.event_time().to_rfc3339()));
        let optional = [
            ("session_id", self.session_id()),
            ("parent_id", self.parent_id()),
            ("subject_id", self.subject_id()),
            ("retention_class", self.retention_class()),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                event.insert(key.into(), s(v));
            }
        }
        let model = [
            ("name", self.model_name()),
            ("version", self.model_version()),
            ("provider", self.model_provider()),
        ];
        merge_nested(event, "model", &model);
        let policy = [
            ("policy_id", self.policy_id()),
            ("decision", self.decision.as_ref().map(Decision::as_str)),
        ];
        merge_nested(event, "policy_eval", &policy);
        let mut labels = self.label_pairs().peekable();
        if labels.peek().is_some() {
            let labels = labels.map(|(k, v)| (k.to_owned(), s(v))).collect();
            event.insert("labels".into(), Value::Object(labels));
        }
    }

    /// The length of [`encode`](Self::encode)'s output, at most [`MAX_HEADER_BYTES`].
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    /// The canonical binary encoding (format version [`HEADER_FORMAT_VERSION`]).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        self.bytes.to_vec()
    }

    /// Appends the canonical binary encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
    }

    /// The tenant and event id of an encoded header, borrowed, without decoding the rest:
    /// what opening a store needs from every receipt (the full decode, which checks every
    /// field, is `verify`'s and every read's).
    ///
    /// # Errors
    /// As for [`ReceiptHeader::decode`], for the fields up to the event id.
    pub fn peek_ids(bytes: &[u8]) -> Result<(&str, &str), ReceiptError> {
        let mut r = Reader { bytes, pos: 0 };
        r.version_and_flags()?;
        r.i64()?;
        r.skip_named("kind")?;
        r.skip_named("actor_type")?;
        let tenant_id = r.str8_ref("tenant_id", check_tenant_id)?;
        let event_id = r.str8_ref("event_id", check_id)?;
        Ok((tenant_id, event_id))
    }

    /// Decodes a header written by [`encode`](Self::encode), applying every rule that JSON
    /// input is held to. Strict: the whole slice must be one header in canonical form.
    ///
    /// # Errors
    ///
    /// [`ReceiptError::Header`] with the offset and the problem: an unknown version, flags or
    /// tag, a truncated field, a field that breaks its rule, unsorted or repeated label keys,
    /// trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let layout = Layout::parse(bytes)?;
        let kind = named_value(bytes, layout.kind, "kind", Kind::from_tag, |s| {
            CustomKind::new(s).map(Kind::Custom)
        })?;
        let actor_type = named_value(
            bytes,
            layout.actor_type,
            "actor_type",
            ActorType::from_tag,
            |s| CustomActorType::new(s).map(ActorType::Custom),
        )?;
        let decision = match layout.decision {
            None => None,
            Some(at) => Some(named_value(
                bytes,
                at,
                "policy_eval.decision",
                Decision::from_tag,
                |s| CustomDecision::new(s).map(Decision::Custom),
            )?),
        };
        Ok(Self {
            bytes: bytes.into(),
            layout,
            kind,
            actor_type,
            decision,
            labels: OnceLock::new(),
        })
    }
}

/// The value of a kind, actor type or decision that [`Layout::parse`] checked; the errors
/// are the ones that check gives, should the two ever disagree.
fn named_value<T>(
    bytes: &[u8],
    at: NamedAt,
    field: &'static str,
    builtin: fn(u8) -> Option<T>,
    custom: impl FnOnce(&str) -> Result<T, ReceiptError>,
) -> Result<T, ReceiptError> {
    let offset = usize::from(at.at);
    if at.tag != 0 {
        return builtin(at.tag)
            .ok_or_else(|| header_error(offset, HeaderProblem::UnknownTag { field, tag: at.tag }));
    }
    let name = at.name.get(bytes).unwrap_or_default();
    custom(name).map_err(|e| match e {
        ReceiptError::Field { problem, .. } => ReceiptError::Header {
            offset: offset + 1,
            problem: HeaderProblem::Field { field, problem },
        },
        other => other,
    })
}

/// The labels of a checked encoding, in key order, borrowed.
#[derive(Clone)]
pub(crate) struct LabelPairs<'a> {
    bytes: &'a [u8],
    pos: usize,
    left: u8,
}

impl<'a> LabelPairs<'a> {
    /// The labels whose count byte is at `at`.
    fn new(bytes: &'a [u8], at: usize) -> Self {
        Self {
            bytes,
            pos: at + 1,
            left: bytes.get(at).copied().unwrap_or(0),
        }
    }

    fn pair(&mut self) -> Option<(&'a str, &'a str)> {
        let mut r = Reader {
            bytes: self.bytes,
            pos: self.pos,
        };
        let key_len = usize::from(r.u8().ok()?);
        let key = std::str::from_utf8(r.take(key_len).ok()?).ok()?;
        let value_len = usize::from(r.u16().ok()?);
        let value = std::str::from_utf8(r.take(value_len).ok()?).ok()?;
        self.pos = r.pos;
        Some((key, value))
    }
}

impl<'a> Iterator for LabelPairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let pair = self.pair();
        if pair.is_none() {
            // Not reached for a checked encoding; stop rather than yield garbage.
            self.left = 0;
        }
        pair
    }
}

/// Inserts the present `fields` into the object `event[key]`, creating it when needed.
fn merge_nested(event: &mut Map<String, Value>, key: &str, fields: &[(&str, Option<&str>)]) {
    if fields.iter().all(|(_, v)| v.is_none()) {
        return;
    }
    let entry = event
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    // A member that is not an object is left alone, for validation to name.
    if let Value::Object(obj) = entry {
        for (k, v) in fields {
            if let Some(v) = v {
                obj.insert((*k).to_owned(), Value::String((*v).to_owned()));
            }
        }
    }
}

/// Writes a `str8` field; returns where its bytes went.
fn put_str8(out: &mut Vec<u8>, s: &str) -> Span {
    // Validated lengths are at most 128; the clamp keeps prefix and bytes consistent anyway.
    let len = u8::try_from(s.len()).unwrap_or(u8::MAX);
    let at = out.len();
    out.push(len);
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
    Span::after_length_byte(at, usize::from(len))
}

fn put_named(out: &mut Vec<u8>, tag: u8, name: &str) -> NamedAt {
    let at = u16::try_from(out.len()).unwrap_or(0);
    out.push(tag);
    let name = if tag == 0 {
        put_str8(out, name)
    } else {
        Span::ABSENT
    };
    NamedAt { at, tag, name }
}

fn header_error(offset: usize, problem: HeaderProblem) -> ReceiptError {
    ReceiptError::Header { offset, problem }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// The header's version byte (which must be this build's) and its flags (which must all
    /// be defined ones).
    fn version_and_flags(&mut self) -> Result<u16, ReceiptError> {
        let version = self.u8()?;
        if version != HEADER_FORMAT_VERSION {
            return Err(header_error(0, HeaderProblem::UnsupportedVersion(version)));
        }
        let flags = self.u16()?;
        if flags & !FLAGS_DEFINED != 0 {
            return Err(header_error(
                1,
                HeaderProblem::UnknownFlags(flags & !FLAGS_DEFINED),
            ));
        }
        Ok(flags)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ReceiptError> {
        let start = self.pos;
        match self.bytes.get(start..start.saturating_add(n)) {
            Some(s) if start.checked_add(n).is_some() => {
                self.pos += n;
                Ok(s)
            }
            _ => Err(header_error(start, HeaderProblem::Truncated)),
        }
    }

    fn u8(&mut self) -> Result<u8, ReceiptError> {
        let b = self.take(1)?;
        Ok(b[0])
    }

    fn u16(&mut self) -> Result<u16, ReceiptError> {
        let mut a = [0; 2];
        a.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(a))
    }

    fn i64(&mut self) -> Result<i64, ReceiptError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(a))
    }

    /// `len` bytes of UTF-8 that pass `check`, borrowed from the header bytes; `at` is where
    /// the field (its length) began.
    fn str_ref(
        &mut self,
        at: usize,
        len: usize,
        field: &'static str,
        check: impl Fn(&str) -> Result<(), Problem>,
    ) -> Result<&'a str, ReceiptError> {
        let raw = self.take(len)?;
        let field_error = |problem| ReceiptError::Header {
            offset: at,
            problem: HeaderProblem::Field { field, problem },
        };
        let s = std::str::from_utf8(raw).map_err(|_| field_error(Problem::NotUtf8))?;
        check(s).map_err(field_error)?;
        Ok(s)
    }

    /// A `str8` field, borrowed.
    fn str8_ref(
        &mut self,
        field: &'static str,
        check: fn(&str) -> Result<(), Problem>,
    ) -> Result<&'a str, ReceiptError> {
        let at = self.pos;
        let len = usize::from(self.u8()?);
        self.str_ref(at, len, field, check)
    }

    /// A `str8` field under an ASCII-only rule, as [`Reader::str8_ref`] gives it but
    /// without `from_utf8` when the bytes pass (bytes that pass are ASCII); the checked path
    /// runs only to name what is wrong, so the errors are [`Reader::str8_ref`]'s.
    fn ascii_str8(&mut self, field: &'static str, rule: &AsciiRule) -> Result<Span, ReceiptError> {
        let at = self.pos;
        let len = usize::from(self.u8()?);
        if let Some(raw) = self.bytes.get(self.pos..).and_then(|rest| rest.get(..len))
            && rule.accepts(raw)
        {
            self.pos += len;
            return Ok(Span::after_length_byte(at, len));
        }
        self.str_ref(at, len, field, |s| rule.check(s))?;
        Ok(Span::after_length_byte(at, len))
    }

    /// Steps over a kind or actor type: a built-in tag, or 0 and a custom name.
    fn skip_named(&mut self, field: &'static str) -> Result<(), ReceiptError> {
        if self.u8()? == 0 {
            self.str8_ref(field, check_name)?;
        }
        Ok(())
    }

    /// The label count and the labels, keys strictly ascending.
    fn labels(&mut self) -> Result<(), ReceiptError> {
        let count_at = self.pos;
        let count = usize::from(self.u8()?);
        if count > MAX_LABELS {
            return Err(header_error(
                count_at,
                HeaderProblem::Field {
                    field: "labels",
                    problem: Problem::TooMany {
                        count,
                        max: MAX_LABELS,
                    },
                },
            ));
        }
        // Byte order is `str` order.
        let mut last: Option<&[u8]> = None;
        for _ in 0..count {
            let key_at = self.pos;
            let key_span = self.ascii_str8("labels", &LABEL_KEY)?;
            let start = usize::from(key_span.start);
            let key = self
                .bytes
                .get(start..start + usize::from(key_span.len))
                .unwrap_or_default();
            if last.is_some_and(|last| last >= key) {
                return Err(header_error(key_at, HeaderProblem::LabelOrder));
            }
            let len_at = self.pos;
            let len = usize::from(self.u16()?);
            self.str_ref(len_at, len, "labels", check_label_value)?;
            last = Some(key);
        }
        Ok(())
    }

    /// A kind, actor type or decision: a tag that `builtin_tag` knows, or 0 and a valid
    /// custom name that does not spell a built-in one (`builtin_name`), as the custom types'
    /// constructors require.
    fn named(
        &mut self,
        field: &'static str,
        builtin_tag: fn(u8) -> bool,
        builtin_name: fn(&[u8]) -> bool,
    ) -> Result<NamedAt, ReceiptError> {
        let at = self.pos;
        let tag = self.u8()?;
        if tag != 0 {
            if !builtin_tag(tag) {
                return Err(header_error(at, HeaderProblem::UnknownTag { field, tag }));
            }
            return Ok(NamedAt {
                at: u16::try_from(at).unwrap_or(0),
                tag,
                name: Span::ABSENT,
            });
        }
        let name = self.ascii_str8(field, &NAME)?;
        let start = usize::from(name.start);
        let raw = self
            .bytes
            .get(start..start + usize::from(name.len))
            .unwrap_or_default();
        if builtin_name(raw) {
            return Err(ReceiptError::Header {
                offset: at + 1,
                problem: HeaderProblem::Field {
                    field,
                    problem: Problem::Reserved {
                        name: String::from_utf8_lossy(raw).into_owned(),
                    },
                },
            });
        }
        Ok(NamedAt {
            at: u16::try_from(at).unwrap_or(0),
            tag,
            name,
        })
    }
}
