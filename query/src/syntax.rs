//! The filter syntax of the command line: `tenant=acme model=gpt-4o since=2026-01-01T00:00Z`.
//!
//! A query is whitespace-separated `key=value` tokens. A value runs to the next whitespace,
//! or is written in double quotes with `\"` and `\\` escapes (needed for spaces, quotes and
//! empty label values). Keys: see [`KEYS`]. `Display` of [`Filter`] and [`Query`] prints the
//! canonical form, which parses back to the same value.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use trailmix_index::Direction;

use crate::cursor::Cursor;
use crate::error::{ParseError, ParseProblem};
use crate::filter::{DEFAULT_LIMIT, Filter, MAX_LIMIT, ModelFilter, Order, Query};
use crate::time::{format_time, parse_time};

/// Every key of the syntax (`label.KEY` stands for any label key).
pub const KEYS: [&str; 16] = [
    "tenant",
    "model",
    "kind",
    "decision",
    "session",
    "event",
    "app",
    "subject",
    "label.KEY",
    "since",
    "until",
    "logged_since",
    "logged_until",
    "order",
    "limit",
    "cursor",
];

/// [`KEYS`] as one comma-separated line, for messages.
pub const KEY_LIST: &str = "tenant, model, kind, decision, session, event, app, subject, \
label.KEY, since, until, logged_since, logged_until, order, limit, cursor";

impl Query {
    /// Parses the filter syntax (see the [module docs](crate::syntax)).
    ///
    /// # Errors
    /// A [`ParseError`] naming the byte offset, the token and what was expected.
    pub fn parse(text: &str) -> Result<Query, ParseError> {
        Parser::new(text).run()
    }
}

impl FromStr for Query {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Query::parse(text)
    }
}

impl Filter {
    /// Parses the filter syntax without the query keys `order`, `limit` and `cursor`.
    ///
    /// # Errors
    /// As [`Query::parse`], and [`ParseProblem::NotAFilterKey`] for a query key.
    pub fn parse(text: &str) -> Result<Filter, ParseError> {
        let mut parser = Parser::new(text);
        parser.filter_only = true;
        parser.run().map(|q| q.filter)
    }
}

impl FromStr for Filter {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Filter::parse(text)
    }
}

/// One `key=value` token.
struct Token {
    start: usize,
    key: String,
    value_at: usize,
    value: String,
}

struct Parser<'t> {
    text: &'t str,
    at: usize,
    filter_only: bool,
    seen: HashMap<String, usize>,
    query: Query,
    /// Where `until` / `logged_until` / `cursor` were given, for checks after the last token.
    until_at: Option<usize>,
    logged_until_at: Option<usize>,
    cursor_at: Option<(usize, String)>,
}

fn err(offset: usize, token: &str, problem: ParseProblem) -> ParseError {
    ParseError {
        offset,
        token: token.to_owned(),
        problem,
    }
}

impl<'t> Parser<'t> {
    fn new(text: &'t str) -> Self {
        Parser {
            text,
            at: 0,
            filter_only: false,
            seen: HashMap::new(),
            query: Query::default(),
            until_at: None,
            logged_until_at: None,
            cursor_at: None,
        }
    }

    fn run(mut self) -> Result<Query, ParseError> {
        while let Some(token) = self.next_token()? {
            self.apply(&token)?;
        }
        self.finish()
    }

    fn rest(&self) -> &'t str {
        self.text.get(self.at..).unwrap_or("")
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_whitespace())
                .len();
    }

    /// The next token, or `None` at the end of the text.
    fn next_token(&mut self) -> Result<Option<Token>, ParseError> {
        self.skip_space();
        let start = self.at;
        let rest = self.rest();
        if rest.is_empty() {
            return Ok(None);
        }
        let word_len = rest.find(|c: char| c.is_ascii_whitespace() || c == '=');
        let word_len = word_len.unwrap_or(rest.len());
        if !rest[word_len..].starts_with('=') {
            return Err(err(start, &rest[..word_len], ParseProblem::MissingEquals));
        }
        let key = rest[..word_len].to_owned();
        self.at += word_len + 1;
        let value_at = self.at;
        let value = if self.rest().starts_with('"') {
            self.quoted()?
        } else {
            self.unquoted()?
        };
        if key.is_empty() {
            return Err(err(
                start,
                &self.text[start..self.at],
                ParseProblem::EmptyKey,
            ));
        }
        Ok(Some(Token {
            start,
            key,
            value_at,
            value,
        }))
    }

    fn unquoted(&mut self) -> Result<String, ParseError> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let value = &rest[..len];
        if value.contains('"') {
            return Err(err(self.at, value, ParseProblem::QuoteInValue));
        }
        self.at += len;
        Ok(value.to_owned())
    }

    /// A quoted value; `self.at` is on the opening quote.
    fn quoted(&mut self) -> Result<String, ParseError> {
        let open = self.at;
        let mut out = String::new();
        let mut chars = self.rest().char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.at = open + i + 1;
                    return self.after_quote().map(|()| out);
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => out.push(e),
                    Some((j, e)) => {
                        let escape = &self.text[open + i..open + j + e.len_utf8()];
                        return Err(err(open + i, escape, ParseProblem::BadEscape));
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(err(open, self.rest(), ParseProblem::UnterminatedQuote))
    }

    fn after_quote(&self) -> Result<(), ParseError> {
        let rest = self.rest();
        match rest.chars().next() {
            None => Ok(()),
            Some(c) if c.is_ascii_whitespace() => Ok(()),
            Some(_) => {
                let len = rest
                    .find(|c: char| c.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                Err(err(self.at, &rest[..len], ParseProblem::AfterQuote))
            }
        }
    }
}

/// A recognised key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Tenant,
    Model,
    Kind,
    Decision,
    Session,
    Event,
    App,
    Subject,
    Label(String),
    Since,
    Until,
    LoggedSince,
    LoggedUntil,
    Order,
    Limit,
    Cursor,
}

impl Key {
    fn from_word(word: &str) -> Option<Key> {
        Some(match word {
            "tenant" => Key::Tenant,
            "model" => Key::Model,
            "kind" => Key::Kind,
            "decision" => Key::Decision,
            "session" => Key::Session,
            "event" => Key::Event,
            "app" => Key::App,
            "subject" => Key::Subject,
            "since" => Key::Since,
            "until" => Key::Until,
            "logged_since" => Key::LoggedSince,
            "logged_until" => Key::LoggedUntil,
            "order" => Key::Order,
            "limit" => Key::Limit,
            "cursor" => Key::Cursor,
            _ => {
                return word
                    .strip_prefix("label.")
                    .map(|k| Key::Label(k.to_owned()));
            }
        })
    }

    fn is_query_only(&self) -> bool {
        matches!(self, Key::Order | Key::Limit | Key::Cursor)
    }
}

impl Parser<'_> {
    fn apply(&mut self, t: &Token) -> Result<(), ParseError> {
        let key = self.key(t)?;
        if let Some(&first) = self.seen.get(&t.key) {
            return Err(err(t.start, &t.key, ParseProblem::RepeatedKey { first }));
        }
        self.seen.insert(t.key.clone(), t.start);
        if t.value.is_empty() && !matches!(key, Key::Label(_)) {
            return Err(err(t.start, &t.key, ParseProblem::EmptyValue));
        }
        let f = &mut self.query.filter;
        let v = t.value.clone();
        match key {
            Key::Tenant => f.tenant = Some(v),
            Key::Model => f.model = Some(model(t)?),
            Key::Kind => f.kind = Some(v),
            Key::Decision => f.decision = Some(v),
            Key::Session => f.session = Some(v),
            Key::Event => f.event_id = Some(v),
            Key::App => f.app = Some(v),
            Key::Subject => f.subject = Some(v),
            Key::Label(k) => {
                f.labels.insert(k, v);
            }
            Key::Since => f.since = Some(time(t, "since")?),
            Key::Until => {
                f.until = Some(time(t, "until")?);
                self.until_at = Some(t.start);
            }
            Key::LoggedSince => f.logged_since = Some(time(t, "logged_since")?),
            Key::LoggedUntil => {
                f.logged_until = Some(time(t, "logged_until")?);
                self.logged_until_at = Some(t.start);
            }
            Key::Order => self.query.order = order(t)?,
            Key::Limit => self.query.limit = limit(t)?,
            Key::Cursor => {
                let cursor = Cursor::decode(&v)
                    .map_err(|e| err(t.value_at, &v, ParseProblem::BadCursor(e)))?;
                self.query.cursor = Some(cursor);
                self.cursor_at = Some((t.value_at, v));
            }
        }
        Ok(())
    }

    fn key(&self, t: &Token) -> Result<Key, ParseError> {
        match Key::from_word(&t.key) {
            Some(Key::Label(k)) if k.is_empty() => {
                Err(err(t.start, &t.key, ParseProblem::EmptyLabelKey))
            }
            Some(k) if self.filter_only && k.is_query_only() => {
                Err(err(t.start, &t.key, ParseProblem::NotAFilterKey))
            }
            Some(k) => Ok(k),
            None => Err(err(
                t.start,
                &t.key,
                ParseProblem::UnknownKey {
                    suggestion: suggest(&t.key),
                },
            )),
        }
    }

    /// Checks that need every token: empty ranges and the cursor's query.
    fn finish(self) -> Result<Query, ParseError> {
        let f = &self.query.filter;
        let ranges = [
            (f.since, f.until, self.until_at, "since", "until"),
            (
                f.logged_since,
                f.logged_until,
                self.logged_until_at,
                "logged_since",
                "logged_until",
            ),
        ];
        for (since, until, at, since_key, until_key) in ranges {
            if let (Some(s), Some(u), Some(at)) = (since, until, at)
                && s >= u
            {
                let token = self.token_at(at);
                let problem = ParseProblem::EmptyRange {
                    since_key,
                    until_key,
                };
                return Err(err(at, token, problem));
            }
        }
        if let (Some(cursor), Some((at, text))) = (&self.query.cursor, &self.cursor_at) {
            cursor
                .check(&self.query.filter, self.query.order)
                .map_err(|e| err(*at, text, ParseProblem::BadCursor(e)))?;
        }
        Ok(self.query)
    }

    /// The raw token starting at `at` (up to the next whitespace outside quotes is not needed
    /// here: range tokens hold times, which have no quotes worth keeping).
    fn token_at(&self, at: usize) -> &str {
        let rest = self.text.get(at..).unwrap_or("");
        let len = rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        &rest[..len]
    }
}

fn model(t: &Token) -> Result<ModelFilter, ParseError> {
    // Split at the first '@': a model name containing '@' cannot be written in this syntax.
    let (name, version) = match t.value.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (t.value.as_str(), None),
    };
    if name.is_empty() || version.is_some_and(str::is_empty) {
        return Err(err(t.value_at, &t.value, ParseProblem::BadModel));
    }
    Ok(ModelFilter {
        name: name.to_owned(),
        version: version.map(str::to_owned),
    })
}

fn time(t: &Token, key: &'static str) -> Result<i64, ParseError> {
    parse_time(&t.value)
        .map_err(|reason| err(t.value_at, &t.value, ParseProblem::BadTime { key, reason }))
}

fn order(t: &Token) -> Result<Order, ParseError> {
    Ok(match t.value.as_str() {
        "seq" => Order::Seq(Direction::Ascending),
        "-seq" => Order::Seq(Direction::Descending),
        "time" => Order::EventTime(Direction::Ascending),
        "-time" => Order::EventTime(Direction::Descending),
        _ => return Err(err(t.value_at, &t.value, ParseProblem::BadOrder)),
    })
}

fn limit(t: &Token) -> Result<u32, ParseError> {
    let v = &t.value;
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(t.value_at, v, ParseProblem::BadLimit));
    }
    match v.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(err(t.value_at, v, ParseProblem::LimitOutOfRange)),
    }
}

/// The key closest to `word` (at most two edits away), compared whole and by its part
/// before a dot (so `labels.env` suggests `label.KEY`).
fn suggest(word: &str) -> Option<&'static str> {
    let word = word.to_ascii_lowercase();
    let head = word.split('.').next().unwrap_or("");
    KEYS.iter()
        .map(|&key| {
            let name = key.strip_suffix(".KEY").unwrap_or(key);
            let d = edit_distance(&word, name).min(edit_distance(head, name));
            (d, key)
        })
        .filter(|&(d, key)| d <= 2 && d < key.len())
        .min_by_key(|&(d, _)| d)
        .map(|(_, key)| key)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions each cost one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows suffice: the transposition looks two rows back.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Tokens { f, first: true };
        let texts = [
            ("tenant", self.tenant.clone()),
            ("model", self.model.as_ref().map(model_text)),
            ("kind", self.kind.clone()),
            ("decision", self.decision.clone()),
            ("session", self.session.clone()),
            ("event", self.event_id.clone()),
            ("app", self.app.clone()),
            ("subject", self.subject.clone()),
        ];
        for (key, value) in texts {
            if let Some(v) = value {
                out.pair(key, &v)?;
            }
        }
        for (k, v) in &self.labels {
            out.pair(&format!("label.{k}"), v)?;
        }
        let times = [
            ("since", self.since),
            ("until", self.until),
            ("logged_since", self.logged_since),
            ("logged_until", self.logged_until),
        ];
        for (key, value) in times {
            if let Some(t) = value {
                out.pair(key, &format_time(t))?;
            }
        }
        Ok(())
    }
}

fn model_text(m: &ModelFilter) -> String {
    match &m.version {
        Some(v) => format!("{}@{v}", m.name),
        None => m.name.clone(),
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let filter = self.filter.to_string();
        let mut out = Tokens {
            first: filter.is_empty(),
            f,
        };
        out.f.write_str(&filter)?;
        let order = match self.order {
            Order::Seq(Direction::Ascending) => None,
            Order::Seq(Direction::Descending) => Some("-seq"),
            Order::EventTime(Direction::Ascending) => Some("time"),
            Order::EventTime(Direction::Descending) => Some("-time"),
        };
        if let Some(order) = order {
            out.pair("order", order)?;
        }
        if self.limit != DEFAULT_LIMIT {
            out.pair("limit", &self.limit.to_string())?;
        }
        if let Some(cursor) = &self.cursor {
            out.pair("cursor", &cursor.encode())?;
        }
        Ok(())
    }
}

/// Writes `key=value` tokens separated by single spaces.
struct Tokens<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    first: bool,
}

impl Tokens<'_, '_> {
    fn pair(&mut self, key: &str, value: &str) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.f.write_str(" ")?;
        }
        write!(self.f, "{key}=")?;
        write_value(self.f, value)
    }
}

/// Writes a value bare when it is printable ASCII without quotes or backslashes, else quoted.
fn write_value(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    let bare = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if bare {
        return f.write_str(value);
    }
    f.write_str("\"")?;
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}
