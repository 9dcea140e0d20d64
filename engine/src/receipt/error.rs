//! The typed errors of the receipt model: what is wrong, and where.

use std::fmt;

/// What is wrong with one field of an event (or of a decoded header).
///
/// Carried by [`ReceiptError::Field`] (which names the field) and by
/// [`HeaderProblem::Field`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A required field is absent.
    Missing,
    /// The field has the wrong JSON type (`null` on a required field is reported here too).
    WrongType {
        /// The JSON type(s) the field accepts, e.g. `"string"` or `"array or null"`.
        expected: &'static str,
        /// The JSON type that was found: `null`, `boolean`, `number`, `string`, `array`, `object`.
        found: &'static str,
    },
    /// An empty string where at least one character is required.
    Empty,
    /// Longer than the field's limit, in bytes of UTF-8.
    TooLong {
        /// The length found, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// A character outside the field's allowed set.
    InvalidChar {
        /// Byte offset of the character inside the field's value.
        at: usize,
        /// The offending character.
        found: char,
        /// The rule the field follows, in words.
        allowed: &'static str,
    },
    /// The bytes are not UTF-8 (only from [`ReceiptHeader::decode`](super::ReceiptHeader::decode)).
    NotUtf8,
    /// More entries than allowed (labels).
    TooMany {
        /// The number found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A custom name that spells a built-in value: use the built-in variant instead, so that
    /// every value has exactly one representation.
    Reserved {
        /// The name.
        name: String,
    },
    /// Not an RFC 3339 timestamp with an offset.
    BadTimestamp {
        /// Byte offset inside the value where parsing failed.
        at: usize,
        /// What was expected there.
        reason: &'static str,
    },
    /// A valid RFC 3339 timestamp outside what [`Timestamp`](super::Timestamp) can hold
    /// (UTC nanoseconds in an `i64`: 1677-09-21T00:12:43.145224192Z to
    /// 2262-04-11T23:47:16.854775807Z).
    TimestampOutOfRange,
    /// An integer that no IEEE double holds exactly as written (beyond ±(2^53 − 1), e.g.
    /// `9007199254740993`): RFC 8785 would print the nearest double's digits instead, silently
    /// changing the value; send it as a string.
    InexactInteger {
        /// The integer as written.
        value: String,
    },
    /// Arrays and objects nest deeper than [`MAX_JSON_DEPTH`](super::MAX_JSON_DEPTH) (from a
    /// [`serde_json::Value`]; in JSON text this is [`JsonProblem::TooDeep`] with a position).
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A header field found inside payload bytes given to
    /// [`Receipt::from_parts`](super::Receipt::from_parts): it belongs in the header.
    InPayload,
    /// A key given to [`ReceiptBuilder::extra`](super::ReceiptBuilder::extra) that is a field
    /// of the event schema; set it with its own builder method.
    ReservedField,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("is required but missing"),
            Self::WrongType { expected, found } => {
                write!(f, "must be {} {expected}, found {found}", article(expected))
            }
            Self::Empty => f.write_str("must not be empty"),
            Self::TooLong { len, max } => {
                write!(f, "is {len} bytes long, over the limit of {max}")
            }
            Self::InvalidChar { at, found, allowed } => write!(
                f,
                "has the character {found:?} at byte {at}; allowed: {allowed}"
            ),
            Self::NotUtf8 => f.write_str("is not UTF-8"),
            Self::TooMany { count, max } => {
                write!(f, "has {count} entries, over the limit of {max}")
            }
            Self::Reserved { name } => write!(
                f,
                "`{name}` is a built-in value, not a custom one (use the built-in variant)"
            ),
            Self::BadTimestamp { at, reason } => write!(
                f,
                "is not an RFC 3339 timestamp with offset: {reason} at byte {at}"
            ),
            Self::TimestampOutOfRange => f.write_str(
                "is outside the representable range \
                 (1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z)",
            ),
            Self::InexactInteger { value } => write!(
                f,
                "holds the integer {value}, which a JSON number (an IEEE double, RFC 8785) \
                 cannot hold exactly; send it as a string"
            ),
            Self::TooDeep { max } => {
                write!(f, "nests arrays and objects deeper than {max} levels")
            }
            Self::InPayload => f.write_str("is a header field and must not be in the payload"),
            Self::ReservedField => {
                f.write_str("is a field of the event schema; set it with its own builder method")
            }
        }
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// What is wrong with the JSON text itself (see [`ReceiptError::Json`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonProblem {
    /// Not JSON: `serde_json`'s description (without its position, which the error carries).
    Syntax(String),
    /// An object holds the same key twice (RFC 8259 leaves the meaning open; a receipt must
    /// not be ambiguous).
    DuplicateKey(String),
    /// Arrays and objects nest deeper than [`MAX_JSON_DEPTH`](super::MAX_JSON_DEPTH).
    TooDeep {
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(message) => f.write_str(message),
            Self::DuplicateKey(key) => write!(f, "duplicate key {key:?}"),
            Self::TooDeep { max } => {
                write!(f, "arrays and objects nest deeper than {max} levels")
            }
        }
    }
}

/// What is wrong with encoded header bytes (see [`ReceiptError::Header`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderProblem {
    /// The first byte names a format version this build does not read.
    UnsupportedVersion(u8),
    /// The bytes end inside a field.
    Truncated,
    /// Presence flags with bits set that this version does not define.
    UnknownFlags(u16),
    /// An enum tag this version does not define.
    UnknownTag {
        /// The field (`kind`, `actor_type` or `policy_eval.decision`).
        field: &'static str,
        /// The tag byte.
        tag: u8,
    },
    /// A field's value breaks the same rule that JSON input is held to.
    Field {
        /// The field, named as in the event JSON.
        field: &'static str,
        /// What is wrong with it.
        problem: Problem,
    },
    /// Label keys are not in strictly ascending byte order (unsorted or repeated).
    LabelOrder,
    /// Bytes left over after the last field.
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedVersion(v) => write!(f, "unsupported header format version {v}"),
            Self::Truncated => f.write_str("truncated"),
            Self::UnknownFlags(bits) => write!(f, "undefined presence flags {bits:#06x}"),
            Self::UnknownTag { field, tag } => write!(f, "undefined tag {tag} for `{field}`"),
            Self::Field { field, problem } => write!(f, "field `{field}` {problem}"),
            Self::LabelOrder => f.write_str("label keys are not in strictly ascending byte order"),
            Self::TrailingBytes { count } => write!(f, "{count} trailing bytes after the header"),
        }
    }
}

/// Every way a receipt can be refused. Each variant says what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The event JSON text is over [`MAX_EVENT_JSON_BYTES`](super::MAX_EVENT_JSON_BYTES);
    /// checked before parsing.
    #[error("event JSON is {len} bytes, over the limit of {max}")]
    EventTooLarge {
        /// Size of the text, in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The event bytes are not UTF-8.
    #[error("event JSON is not UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The text is not acceptable JSON: a syntax error, a duplicate key or too deep nesting.
    #[error("invalid JSON at line {line}, column {column}: {problem}")]
    Json {
        /// 1-based line (0 when the position is unknown).
        line: usize,
        /// 1-based column (0 when the position is unknown).
        column: usize,
        /// What is wrong.
        problem: JsonProblem,
    },
    /// The event is JSON but not an object.
    #[error("an event must be a JSON object, found {found}")]
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// One field is wrong. `field` is its path in the event JSON: `event_id`, `model.name`,
    /// `evals[2].score`, `labels.env`, `labels["k8s.io/ns"]`.
    #[error("field `{field}` {problem}")]
    Field {
        /// Path of the field in the event JSON.
        field: String,
        /// What is wrong with it.
        problem: Problem,
    },
    /// The canonical payload is over [`MAX_PAYLOAD_BYTES`](super::MAX_PAYLOAD_BYTES).
    #[error("canonical payload is {len} bytes, over the limit of {max}")]
    PayloadTooLarge {
        /// Size of the canonical payload, in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Payload bytes given to [`Receipt::from_parts`](super::Receipt::from_parts) are valid
    /// but not in the canonical form this module writes.
    #[error("payload bytes are not in canonical form (RFC 8785)")]
    PayloadNotCanonical,
    /// Encoded header bytes are malformed or not canonical.
    #[error("receipt header bytes, at offset {offset}: {problem}")]
    Header {
        /// Byte offset where the problem was found.
        offset: usize,
        /// What is wrong.
        problem: HeaderProblem,
    },
}

impl ReceiptError {
    /// The field a [`ReceiptError::Field`] names, if this is one.
    #[must_use]
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Field { field, .. } => Some(field),
            _ => None,
        }
    }

    pub(crate) fn field_error(field: impl Into<String>, problem: Problem) -> Self {
        Self::Field {
            field: field.into(),
            problem,
        }
    }
}
