//! Error types: [`QueryError`] for planning and execution, [`ParseError`] for the filter
//! syntax, [`CursorError`] for resume cursors.

use crate::filter::MAX_LIMIT;
use crate::source::SourceError;
use crate::syntax::KEY_LIST;

/// Everything that can go wrong planning or running a query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The query text could not be parsed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The page size is outside `1..=MAX_LIMIT`.
    #[error("limit {limit} is out of range; expected 1 to {max}")]
    LimitOutOfRange {
        /// The limit asked for.
        limit: u64,
        /// The largest limit allowed.
        max: u32,
    },
    /// A time range whose start is not before its end, where an empty answer would mislead
    /// (aggregates).
    #[error("{what}: the start {since} is not before the end {until}, so the range is empty")]
    EmptyRange {
        /// Which range.
        what: &'static str,
        /// Start (ns since the Unix epoch).
        since: i64,
        /// End (ns since the Unix epoch).
        until: i64,
    },
    /// The resume cursor is unusable.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The index failed.
    #[error("index read failed: {0}")]
    Source(#[from] SourceError),
    /// The index broke its own contract (for example postings out of order): it is damaged
    /// and should be rebuilt from the log.
    #[error("the index is inconsistent ({detail}); rebuild it from the log")]
    IndexInconsistent {
        /// What was seen.
        detail: String,
    },
}

/// Why a resume cursor cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CursorError {
    /// Not cursor text (not URL-safe base64, or the wrong length or shape).
    #[error("malformed cursor; pass back the cursor text exactly as a previous page returned it")]
    Malformed,
    /// Written by a build with another cursor format.
    #[error(
        "cursor format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// Made for another filter or order.
    #[error(
        "cursor belongs to a different query (the filter or order changed); start again without a cursor"
    )]
    WrongQuery,
    /// A cursor for an event-time ordered query needs the last event time.
    #[error("a cursor for an event-time ordered query needs the candidate's event time")]
    MissingEventTime,
}

/// A refused query text: where, which token, and what was expected.
///
/// `Display` reads `at byte 12: unknown key "tennant"; did you mean "tenant"? (keys: ...)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {}", self.problem.message(&self.token))]
pub struct ParseError {
    /// Byte offset of the offending token in the text.
    pub offset: usize,
    /// The offending token, as written (a key, a value, or a whole `key=value`).
    pub token: String,
    /// What is wrong.
    pub problem: ParseProblem,
}

impl ParseError {
    /// What would have been accepted at that place, in words.
    #[must_use]
    pub fn expected(&self) -> String {
        self.problem.expected()
    }
}

/// The accepted forms of a time, for error messages.
pub const TIME_FORMS: &str = "RFC 3339 with Z or an offset, to the minute, second or fraction \
(2026-01-01T00:00Z, 2026-01-01T09:30:15.5+01:00), a date (2026-01-01, midnight UTC) or \
integer nanoseconds since 1970-01-01T00:00:00Z";

/// What is wrong with a token (see [`ParseError`], whose `Display` names the token and says
/// what was expected).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseProblem {
    /// Not one of the keys (the token is the key).
    UnknownKey {
        /// The closest key, when one is close.
        suggestion: Option<&'static str>,
    },
    /// A word without `=` (the token is the word).
    MissingEquals,
    /// `=` with nothing before it (the token is the whole `=value`).
    EmptyKey,
    /// `label.` with no label key (the token is the key).
    EmptyLabelKey,
    /// `key=` with nothing after it; only labels may have an empty, quoted value (the token
    /// is the key).
    EmptyValue,
    /// A quoted value without its closing quote (the token runs from the quote to the end).
    UnterminatedQuote,
    /// A backslash in a quoted value not followed by `"` or `\` (the token is the escape).
    BadEscape,
    /// A `"` inside an unquoted value (the token is the value).
    QuoteInValue,
    /// Text right after a closing quote (the token is that text).
    AfterQuote,
    /// A key given twice (the token is the key).
    RepeatedKey {
        /// Byte offset where it was first given.
        first: usize,
    },
    /// A range whose start is not before its end (the token is the end's `key=value`).
    EmptyRange {
        /// The start key (`since` or `logged_since`).
        since_key: &'static str,
        /// The end key.
        until_key: &'static str,
    },
    /// A time in none of the accepted forms, or not a real instant (the token is the value).
    BadTime {
        /// The key.
        key: &'static str,
        /// Why, in words.
        reason: &'static str,
    },
    /// A `model` value with an empty name or version (the token is the value).
    BadModel,
    /// An unknown order (the token is the value).
    BadOrder,
    /// A limit that is not an integer (the token is the value).
    BadLimit,
    /// A limit outside `1..=MAX_LIMIT` (the token is the value).
    LimitOutOfRange,
    /// An unusable cursor (the token is the value).
    BadCursor(CursorError),
    /// A query key (`order`, `limit`, `cursor`) where only a filter is read (the token is
    /// the key).
    NotAFilterKey,
}

impl ParseProblem {
    /// What would have been accepted, in words.
    #[must_use]
    pub fn expected(&self) -> String {
        match self {
            ParseProblem::UnknownKey { .. } => format!("one of the keys: {KEY_LIST}"),
            ParseProblem::MissingEquals | ParseProblem::EmptyKey => {
                "KEY=VALUE, as in tenant=acme".to_owned()
            }
            ParseProblem::EmptyLabelKey => "label.KEY=VALUE, as in label.env=prod".to_owned(),
            ParseProblem::EmptyValue => "a value after \"=\"".to_owned(),
            ParseProblem::UnterminatedQuote => "a closing \"".to_owned(),
            ParseProblem::BadEscape => "\\\" or \\\\".to_owned(),
            ParseProblem::QuoteInValue => {
                "the whole value in quotes, as in app=\"a \\\"b\\\"\"".to_owned()
            }
            ParseProblem::AfterQuote => "a space after the closing quote".to_owned(),
            ParseProblem::RepeatedKey { .. } => {
                "each key at most once (label.KEY once per label key)".to_owned()
            }
            ParseProblem::EmptyRange { .. } => "a start before the end".to_owned(),
            ParseProblem::BadTime { .. } => TIME_FORMS.to_owned(),
            ParseProblem::BadModel => "NAME or NAME@VERSION".to_owned(),
            ParseProblem::BadOrder => "seq, -seq, time or -time".to_owned(),
            ParseProblem::BadLimit | ParseProblem::LimitOutOfRange => {
                format!("an integer from 1 to {MAX_LIMIT}")
            }
            ParseProblem::BadCursor(_) => "the cursor text of a previous page".to_owned(),
            ParseProblem::NotAFilterKey => format!("a filter key: {KEY_LIST}"),
        }
    }

    /// The message for `token` (tokens are shown in plain double quotes, unescaped).
    fn message(&self, token: &str) -> String {
        let e = self.expected();
        match self {
            ParseProblem::UnknownKey { suggestion } => {
                let hint = suggestion.map_or(String::new(), |s| format!(" did you mean \"{s}\"?"));
                format!("unknown key \"{token}\";{hint} (keys: {KEY_LIST})")
            }
            ParseProblem::MissingEquals => format!("\"{token}\" has no \"=\"; expected {e}"),
            ParseProblem::EmptyKey => format!("\"{token}\" has no key before \"=\"; expected {e}"),
            ParseProblem::EmptyLabelKey => format!("\"{token}\" names no label; expected {e}"),
            ParseProblem::EmptyValue => format!("empty value for \"{token}\"; expected {e}"),
            ParseProblem::UnterminatedQuote => {
                format!("unterminated quote in {token}; expected {e}")
            }
            ParseProblem::BadEscape => format!("unknown escape \"{token}\"; expected {e}"),
            ParseProblem::QuoteInValue => {
                format!("quote inside the unquoted value {token}; expected {e}")
            }
            ParseProblem::AfterQuote => {
                format!("\"{token}\" follows a closing quote; expected {e}")
            }
            ParseProblem::RepeatedKey { first } => {
                format!("repeated key \"{token}\" (first at byte {first}); expected {e}")
            }
            ParseProblem::EmptyRange {
                since_key,
                until_key,
            } => format!(
                "{since_key} is not before {until_key} (\"{token}\"), so the range is empty; expected {e}"
            ),
            ParseProblem::BadTime { key, reason } => {
                format!("bad time \"{token}\" for {key} ({reason}); expected {e}")
            }
            ParseProblem::BadModel => {
                format!("model \"{token}\" has an empty name or version; expected {e}")
            }
            ParseProblem::BadOrder => format!("unknown order \"{token}\"; expected {e}"),
            ParseProblem::BadLimit => format!("limit \"{token}\" is not an integer; expected {e}"),
            ParseProblem::LimitOutOfRange => {
                format!("limit {token} is out of range; expected {e}")
            }
            ParseProblem::BadCursor(err) => format!("cursor \"{token}\": {err}"),
            ParseProblem::NotAFilterKey => {
                format!("\"{token}\" belongs to a query, not a filter; expected {e}")
            }
        }
    }
}
