//! Strict JSON parsing (no duplicate keys, bounded depth) and RFC 8785 (JCS) canonical
//! serialization.
//!
//! Canonical form: no whitespace; object members sorted by the UTF-16 code units of their
//! keys; strings with only `"`, `\` and U+0000..U+001F escaped (`\b \t \n \f \r`, else
//! `\u00xx`, lowercase hex); numbers printed as ECMAScript's `Number.prototype.toString` prints
//! the double they denote. Integers that would print differently (beyond ±(2^53 − 1) and
//! not already in that form) are refused earlier by [`check_value`], so an accepted integer
//! prints exactly as written.

use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::{JsonProblem, Problem, ReceiptError};
use super::limits::{MAX_JSON_DEPTH, MAX_SAFE_INTEGER};

/// The JSON type of a value, as named in errors.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A seed that builds a [`Value`] while refusing duplicate keys and nesting deeper than
/// [`MAX_JSON_DEPTH`]. The structured reason of a refusal is left in `problem`, because the
/// deserializer's error type only carries text.
#[derive(Clone, Copy)]
pub(crate) struct Strict<'a> {
    /// Containers enclosing the value about to be read.
    depth: usize,
    problem: &'a Cell<Option<JsonProblem>>,
}

impl<'a> Strict<'a> {
    pub(crate) fn new(problem: &'a Cell<Option<JsonProblem>>) -> Self {
        Self { depth: 0, problem }
    }

    fn fail<E: de::Error>(self, problem: JsonProblem) -> E {
        let e = E::custom(&problem);
        self.problem.set(Some(problem));
        e
    }

    fn enter<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(self.fail(JsonProblem::TooDeep {
                max: MAX_JSON_DEPTH,
            }));
        }
        Ok(Self {
            depth: self.depth + 1,
            problem: self.problem,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number must be finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(self.fail(JsonProblem::DuplicateKey(key)));
            }
            let v = map.next_value_seed(inner)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses JSON text strictly (see [`Strict`]); trailing non-whitespace is an error.
pub(crate) fn parse_strict(bytes: &[u8]) -> Result<Value, ReceiptError> {
    let problem = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = Strict::new(&problem)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    result.map_err(|e| {
        let problem = problem.take().unwrap_or_else(|| {
            let text = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            JsonProblem::Syntax(text.strip_suffix(&suffix).unwrap_or(&text).to_owned())
        });
        ReceiptError::Json {
            line: e.line(),
            column: e.column(),
            problem,
        }
    })
}

/// One step of a path into the event JSON.
#[derive(Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Renders a path: `model.params`, `evals[2].score`, `labels["k8s.io/ns"]`.
pub(crate) fn render_path(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for (i, seg) in path.iter().enumerate() {
        match seg {
            Seg::Index(n) => {
                let _ = write!(out, "[{n}]");
            }
            Seg::Key(k) if is_plain_key(k) => {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Key(k) => {
                out.push('[');
                write_string(&mut out, k);
                out.push(']');
            }
        }
    }
    out
}

fn is_plain_key(k: &str) -> bool {
    let mut bytes = k.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks nesting depth (`depth` containers enclose `v`) and integer range, naming the path
/// of the first offence.
pub(crate) fn check_value<'a>(
    v: &'a Value,
    depth: usize,
    path: &mut Vec<Seg<'a>>,
) -> Result<(), ReceiptError> {
    match v {
        Value::Number(n) => {
            if integer_is_exact(n) {
                Ok(())
            } else {
                Err(ReceiptError::field_error(
                    render_path(path),
                    Problem::InexactInteger {
                        value: n.to_string(),
                    },
                ))
            }
        }
        Value::Array(items) => {
            if depth >= MAX_JSON_DEPTH {
                return Err(too_deep(path));
            }
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                check_value(item, depth + 1, path)?;
                path.pop();
            }
            Ok(())
        }
        Value::Object(map) => {
            if depth >= MAX_JSON_DEPTH {
                return Err(too_deep(path));
            }
            for (k, item) in map {
                path.push(Seg::Key(k));
                check_value(item, depth + 1, path)?;
                path.pop();
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// Whether an integer prints as itself in RFC 8785 form, i.e. as the shortest digits of the
/// nearest double. Always true up to [`MAX_SAFE_INTEGER`]; non-integers are doubles already.
fn integer_is_exact(n: &Number) -> bool {
    #[allow(
        clippy::cast_precision_loss,
        reason = "rounding to the nearest double is the point"
    )]
    let (magnitude, as_double) = match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => (u, u as f64),
        (None, Some(i)) => (i.unsigned_abs(), i as f64),
        (None, None) => return true,
    };
    if magnitude <= MAX_SAFE_INTEGER {
        return true;
    }
    let mut canonical = String::new();
    write_f64(&mut canonical, as_double);
    canonical == n.to_string()
}

fn too_deep(path: &[Seg<'_>]) -> ReceiptError {
    ReceiptError::field_error(
        render_path(path),
        Problem::TooDeep {
            max: MAX_JSON_DEPTH,
        },
    )
}

/// Appends the canonical form of `v` to `out`.
pub(crate) fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| cmp_utf16(a.0, b.0));
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// The canonical form of `v`.
pub(crate) fn to_canonical(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

/// Orders strings by their UTF-16 code units, as RFC 8785 §3.2.3 requires.
fn cmp_utf16(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.cmp(b)
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{8}' => "\\b",
            '\t' => "\\t",
            '\n' => "\\n",
            '\u{c}' => "\\f",
            '\r' => "\\r",
            c if c < ' ' => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push_str(escape);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(f) = n.as_f64() {
        write_f64(out, f);
    }
}

/// ECMAScript `Number.prototype.toString` of a finite double (ECMA-262 §6.1.6.1.20, which
/// RFC 8785 §3.2.2.3 adopts), including its tie-breaking rule (of two shortest candidates, the
/// closer, then the even one), which Rust's `Display` does not follow.
fn write_f64(out: &mut String, x: f64) {
    if x.is_finite() {
        out.push_str(ryu_js::Buffer::new().format_finite(x));
    } else {
        // JSON cannot hold non-finite numbers; serde_json's `Value` never does.
        out.push_str("null");
    }
}
