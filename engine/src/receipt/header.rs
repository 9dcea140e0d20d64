//! [`ReceiptHeader`]: the clear, indexed part of a receipt, and its binary encoding.
//!
//! The encoding is specified byte by byte in `docs/design.md` ("Receipt header encoding").
//! It is canonical: every header has exactly one encoding and [`ReceiptHeader::decode`]
//! accepts nothing else, so `encode(decode(x)) == x` for every `x` that decodes.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{HeaderProblem, Problem, ReceiptError};
use super::limits::{
    MAX_ID_BYTES, MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES, MAX_LABELS, MAX_NAME_BYTES,
    MAX_TENANT_ID_BYTES, check_id, check_label_key, check_label_value, check_name,
    check_retention_class, check_tenant_id,
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

/// The clear part of a receipt: ids, tenant, app, kind, actor, event time, model, policy
/// decision, retention class, data subject and labels.
///
/// These fields are indexed, hashed into the chain and stay readable after the payload is
/// crypto-shredded, so they must never carry personal content: `subject_id` is an opaque,
/// pseudonymous id (never an e-mail address or a name), and labels are operational metadata.
///
/// Every `ReceiptHeader` is valid: it is only made by [`Receipt`](super::Receipt)'s
/// constructors or by [`ReceiptHeader::decode`], which apply the same rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceiptHeader {
    pub(crate) event_id: String,
    pub(crate) tenant_id: String,
    pub(crate) app_id: String,
    pub(crate) session_id: Option<String>,
    pub(crate) parent_id: Option<String>,
    pub(crate) subject_id: Option<String>,
    pub(crate) kind: Kind,
    pub(crate) actor_type: ActorType,
    pub(crate) event_time: Timestamp,
    pub(crate) model_name: Option<String>,
    pub(crate) model_version: Option<String>,
    pub(crate) model_provider: Option<String>,
    pub(crate) policy_id: Option<String>,
    pub(crate) decision: Option<Decision>,
    pub(crate) retention_class: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
}

impl ReceiptHeader {
    /// The event's id (`event_id`), unique within its tenant.
    #[must_use]
    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// The tenant (`tenant_id`).
    #[must_use]
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The application that emitted the event (`app_id`).
    #[must_use]
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The session or trace the event belongs to (`session_id`).
    #[must_use]
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The event this one follows from (`parent_id`).
    #[must_use]
    pub fn parent_id(&self) -> Option<&str> {
        self.parent_id.as_deref()
    }

    /// The pseudonymous data subject whose key encrypts the payload (`subject_id`).
    #[must_use]
    pub fn subject_id(&self) -> Option<&str> {
        self.subject_id.as_deref()
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
        self.event_time
    }

    /// The model's name (`model.name`).
    #[must_use]
    pub fn model_name(&self) -> Option<&str> {
        self.model_name.as_deref()
    }

    /// The model's version (`model.version`).
    #[must_use]
    pub fn model_version(&self) -> Option<&str> {
        self.model_version.as_deref()
    }

    /// The model's provider (`model.provider`).
    #[must_use]
    pub fn model_provider(&self) -> Option<&str> {
        self.model_provider.as_deref()
    }

    /// The policy that was evaluated (`policy_eval.policy_id`).
    #[must_use]
    pub fn policy_id(&self) -> Option<&str> {
        self.policy_id.as_deref()
    }

    /// The policy's decision (`policy_eval.decision`).
    #[must_use]
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// The retention class (`retention_class`), mapped to a duration by the store's policy.
    #[must_use]
    pub fn retention_class(&self) -> Option<&str> {
        self.retention_class.as_deref()
    }

    /// The labels, sorted by key.
    #[must_use]
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
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
        event.insert("event_id".into(), s(&self.event_id));
        event.insert("tenant_id".into(), s(&self.tenant_id));
        event.insert("app_id".into(), s(&self.app_id));
        event.insert("kind".into(), s(self.kind.as_str()));
        event.insert("actor_type".into(), s(self.actor_type.as_str()));
        event.insert("ts".into(), Value::String(self.event_time.to_rfc3339()));
        let optional = [
            ("session_id", &self.session_id),
            ("parent_id", &self.parent_id),
            ("subject_id", &self.subject_id),
            ("retention_class", &self.retention_class),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                event.insert(key.into(), s(v));
            }
        }
        let model = [
            ("name", self.model_name.as_deref()),
            ("version", self.model_version.as_deref()),
            ("provider", self.model_provider.as_deref()),
        ];
        merge_nested(event, "model", &model);
        let policy = [
            ("policy_id", self.policy_id.as_deref()),
            ("decision", self.decision.as_ref().map(Decision::as_str)),
        ];
        merge_nested(event, "policy_eval", &policy);
        if !self.labels.is_empty() {
            let labels = self.labels.iter().map(|(k, v)| (k.clone(), s(v))).collect();
            event.insert("labels".into(), Value::Object(labels));
        }
    }

    /// The length of [`encode`](Self::encode)'s output, at most [`MAX_HEADER_BYTES`].
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let name = |tag: u8, s: &str| if tag == 0 { 2 + s.len() } else { 1 };
        let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| 1 + s.len());
        11 + name(self.kind.tag(), self.kind.as_str())
            + name(self.actor_type.tag(), self.actor_type.as_str())
            + 3
            + self.tenant_id.len()
            + self.event_id.len()
            + self.app_id.len()
            + opt(&self.session_id)
            + opt(&self.parent_id)
            + opt(&self.subject_id)
            + opt(&self.model_name)
            + opt(&self.model_version)
            + opt(&self.model_provider)
            + opt(&self.policy_id)
            + self
                .decision
                .as_ref()
                .map_or(0, |d| name(d.tag(), d.as_str()))
            + opt(&self.retention_class)
            + 1
            + self
                .labels
                .iter()
                .map(|(k, v)| 3 + k.len() + v.len())
                .sum::<usize>()
    }

    /// The canonical binary encoding (format version [`HEADER_FORMAT_VERSION`]).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical binary encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let optional = self.optional_strings();
        let mut flags = 0;
        for (flag, value) in optional {
            if value.is_some() {
                flags |= flag;
            }
        }
        if self.decision.is_some() {
            flags |= FLAG_DECISION;
        }
        if self.retention_class.is_some() {
            flags |= FLAG_RETENTION_CLASS;
        }
        out.push(HEADER_FORMAT_VERSION);
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&self.event_time.as_unix_nanos().to_le_bytes());
        put_named(out, self.kind.tag(), self.kind.as_str());
        put_named(out, self.actor_type.tag(), self.actor_type.as_str());
        put_str8(out, &self.tenant_id);
        put_str8(out, &self.event_id);
        put_str8(out, &self.app_id);
        for (_, value) in optional {
            if let Some(v) = value {
                put_str8(out, v);
            }
        }
        if let Some(d) = &self.decision {
            put_named(out, d.tag(), d.as_str());
        }
        if let Some(r) = &self.retention_class {
            put_str8(out, r);
        }
        out.push(u8::try_from(self.labels.len()).unwrap_or(u8::MAX));
        for (k, v) in self.labels.iter().take(usize::from(u8::MAX)) {
            put_str8(out, k);
            let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&v.as_bytes()[..usize::from(len)]);
        }
    }

    /// The optional string fields, in flag order (bits 0 to 6).
    fn optional_strings(&self) -> [(u16, Option<&str>); 7] {
        [
            (FLAG_SESSION_ID, self.session_id.as_deref()),
            (FLAG_PARENT_ID, self.parent_id.as_deref()),
            (FLAG_SUBJECT_ID, self.subject_id.as_deref()),
            (FLAG_MODEL_NAME, self.model_name.as_deref()),
            (FLAG_MODEL_VERSION, self.model_version.as_deref()),
            (FLAG_MODEL_PROVIDER, self.model_provider.as_deref()),
            (FLAG_POLICY_ID, self.policy_id.as_deref()),
        ]
    }

    /// The tenant and event id of an encoded header, borrowed, without decoding the rest:
    /// what opening a store needs from every receipt (the full decode, which checks every
    /// field, is `verify`'s and every read's).
    ///
    /// # Errors
    /// As for [`ReceiptHeader::decode`], for the fields up to the event id.
    pub fn peek_ids(bytes: &[u8]) -> Result<(&str, &str), ReceiptError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != HEADER_FORMAT_VERSION {
            return Err(header_error(0, HeaderProblem::UnsupportedVersion(version)));
        }
        let flags = r.u16()?;
        if flags & !FLAGS_DEFINED != 0 {
            return Err(header_error(
                1,
                HeaderProblem::UnknownFlags(flags & !FLAGS_DEFINED),
            ));
        }
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
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != HEADER_FORMAT_VERSION {
            return Err(header_error(0, HeaderProblem::UnsupportedVersion(version)));
        }
        let flags = r.u16()?;
        if flags & !FLAGS_DEFINED != 0 {
            return Err(header_error(
                1,
                HeaderProblem::UnknownFlags(flags & !FLAGS_DEFINED),
            ));
        }
        let event_time = Timestamp::from_unix_nanos(r.i64()?);
        let kind = r.named("kind", Kind::from_tag, |s| {
            CustomKind::new(s).map(Kind::Custom)
        })?;
        let actor_type = r.named("actor_type", ActorType::from_tag, |s| {
            CustomActorType::new(s).map(ActorType::Custom)
        })?;
        let tenant_id = r.str8("tenant_id", check_tenant_id)?;
        let event_id = r.str8("event_id", check_id)?;
        let app_id = r.str8("app_id", check_id)?;
        let mut opt = |flag: u16, field: &'static str| -> Result<Option<String>, ReceiptError> {
            if flags & flag == 0 {
                Ok(None)
            } else {
                r.str8(field, check_id).map(Some)
            }
        };
        let session_id = opt(FLAG_SESSION_ID, "session_id")?;
        let parent_id = opt(FLAG_PARENT_ID, "parent_id")?;
        let subject_id = opt(FLAG_SUBJECT_ID, "subject_id")?;
        let model_name = opt(FLAG_MODEL_NAME, "model.name")?;
        let model_version = opt(FLAG_MODEL_VERSION, "model.version")?;
        let model_provider = opt(FLAG_MODEL_PROVIDER, "model.provider")?;
        let policy_id = opt(FLAG_POLICY_ID, "policy_eval.policy_id")?;
        let decision = if flags & FLAG_DECISION == 0 {
            None
        } else {
            Some(r.named("policy_eval.decision", Decision::from_tag, |s| {
                CustomDecision::new(s).map(Decision::Custom)
            })?)
        };
        let retention_class = if flags & FLAG_RETENTION_CLASS == 0 {
            None
        } else {
            Some(r.str8("retention_class", check_retention_class)?)
        };
        let labels = r.labels()?;
        if r.pos != bytes.len() {
            return Err(header_error(
                r.pos,
                HeaderProblem::TrailingBytes {
                    count: bytes.len() - r.pos,
                },
            ));
        }
        Ok(Self {
            event_id,
            tenant_id,
            app_id,
            session_id,
            parent_id,
            subject_id,
            kind,
            actor_type,
            event_time,
            model_name,
            model_version,
            model_provider,
            policy_id,
            decision,
            retention_class,
            labels,
        })
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

fn put_str8(out: &mut Vec<u8>, s: &str) {
    // Validated lengths are at most 128; the clamp keeps prefix and bytes consistent anyway.
    let len = u8::try_from(s.len()).unwrap_or(u8::MAX);
    out.push(len);
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

fn put_named(out: &mut Vec<u8>, tag: u8, name: &str) {
    out.push(tag);
    if tag == 0 {
        put_str8(out, name);
    }
}

fn header_error(offset: usize, problem: HeaderProblem) -> ReceiptError {
    ReceiptError::Header { offset, problem }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
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

    /// `len` bytes of UTF-8 that pass `check`; `at` is where the field (its length) began.
    fn string(
        &mut self,
        at: usize,
        len: usize,
        field: &'static str,
        check: fn(&str) -> Result<(), Problem>,
    ) -> Result<String, ReceiptError> {
        self.str_ref(at, len, field, check).map(str::to_owned)
    }

    /// As [`Reader::string`], borrowed from the header bytes.
    fn str_ref(
        &mut self,
        at: usize,
        len: usize,
        field: &'static str,
        check: fn(&str) -> Result<(), Problem>,
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

    /// Steps over a kind or actor type: a built-in tag, or 0 and a custom name.
    fn skip_named(&mut self, field: &'static str) -> Result<(), ReceiptError> {
        if self.u8()? == 0 {
            self.str8_ref(field, check_name)?;
        }
        Ok(())
    }

    fn str8(
        &mut self,
        field: &'static str,
        check: fn(&str) -> Result<(), Problem>,
    ) -> Result<String, ReceiptError> {
        let at = self.pos;
        let len = usize::from(self.u8()?);
        self.string(at, len, field, check)
    }

    /// The label count and the labels, keys strictly ascending.
    fn labels(&mut self) -> Result<BTreeMap<String, String>, ReceiptError> {
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
        let mut labels = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..count {
            let key_at = self.pos;
            let key = self.str8("labels", check_label_key)?;
            if last.as_ref().is_some_and(|last| *last >= key) {
                return Err(header_error(key_at, HeaderProblem::LabelOrder));
            }
            let len_at = self.pos;
            let len = usize::from(self.u16()?);
            let value = self.string(len_at, len, "labels", check_label_value)?;
            last = Some(key.clone());
            labels.insert(key, value);
        }
        Ok(labels)
    }

    fn named<T>(
        &mut self,
        field: &'static str,
        builtin: fn(u8) -> Option<T>,
        custom: impl FnOnce(String) -> Result<T, ReceiptError>,
    ) -> Result<T, ReceiptError> {
        let at = self.pos;
        let tag = self.u8()?;
        if tag != 0 {
            return builtin(tag)
                .ok_or_else(|| header_error(at, HeaderProblem::UnknownTag { field, tag }));
        }
        let name = self.str8(field, check_name)?;
        custom(name).map_err(|e| match e {
            ReceiptError::Field { problem, .. } => ReceiptError::Header {
                offset: at + 1,
                problem: HeaderProblem::Field { field, problem },
            },
            other => other,
        })
    }
}
