//! Filter times: parsing the accepted forms into nanoseconds since the Unix epoch, and the
//! canonical form they print as. Calendar arithmetic is jiff's; this module only decides which
//! shapes are accepted (jiff's own grammar is wider: bracketed zones, hour-only times, ...).

use std::str::FromStr;

/// Why a time was refused (shown inside [`crate::ParseProblem::BadTime`]).
pub(crate) type Reason = &'static str;

const SHAPE: Reason = "not one of the accepted forms";
const INVALID: Reason = "no such date or time";
const LEAP: Reason = "leap seconds (:60) cannot be represented";
const RANGE: Reason = "outside 1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z";

/// Parses a filter time: integer nanoseconds, a bare date (midnight UTC) or RFC 3339 with `Z`
/// or an offset, to the minute, second or fraction (1 to 9 digits).
pub(crate) fn parse_time(text: &str) -> Result<i64, Reason> {
    if is_integer(text) {
        return text.parse::<i64>().map_err(|_| RANGE);
    }
    let bytes = text.as_bytes();
    if is_date(bytes) && bytes.len() == 10 {
        return to_nanos(&format!("{text}T00:00Z"));
    }
    if !is_date_time(bytes) {
        return Err(SHAPE);
    }
    if bytes.get(16) == Some(&b':') && bytes.get(17..19) == Some(b"60") {
        return Err(LEAP);
    }
    to_nanos(text)
}

fn to_nanos(text: &str) -> Result<i64, Reason> {
    let ts = jiff::Timestamp::from_str(text).map_err(|_| INVALID)?;
    i64::try_from(ts.as_nanosecond()).map_err(|_| RANGE)
}

/// The canonical form: RFC 3339 in UTC with `Z`, the fraction only when non-zero.
pub(crate) fn format_time(nanos: i64) -> String {
    // Every i64 is within jiff's range (years -9999..=9999); integer nanoseconds are the
    // fallback that still parses back to the same value.
    jiff::Timestamp::from_nanosecond(i128::from(nanos))
        .map_or_else(|_| nanos.to_string(), |ts| ts.to_string())
}

fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn digits(bytes: &[u8], range: std::ops::Range<usize>) -> bool {
    bytes
        .get(range)
        .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

/// `YYYY-MM-DD` at the start.
fn is_date(b: &[u8]) -> bool {
    digits(b, 0..4)
        && b.get(4) == Some(&b'-')
        && digits(b, 5..7)
        && b.get(7) == Some(&b'-')
        && digits(b, 8..10)
}

/// `YYYY-MM-DD(T|t| )HH:MM[:SS[.F{1,9}]](Z|z|±HH:MM)`, nothing more.
fn is_date_time(b: &[u8]) -> bool {
    let head = is_date(b)
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && digits(b, 11..13)
        && b.get(13) == Some(&b':')
        && digits(b, 14..16);
    if !head {
        return false;
    }
    let mut at = 16;
    if b.get(at) == Some(&b':') {
        if !digits(b, at + 1..at + 3) {
            return false;
        }
        at += 3;
        if b.get(at) == Some(&b'.') {
            let n = b[at + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if !(1..=9).contains(&n) {
                return false;
            }
            at += 1 + n;
        }
    }
    is_offset(&b[at..])
}

/// `Z`, `z` or `±HH:MM` up to ±23:59 (RFC 3339; jiff alone would take up to ±25:59:59).
fn is_offset(b: &[u8]) -> bool {
    match b {
        [b'Z' | b'z'] => true,
        [
            b'+' | b'-',
            h1 @ b'0'..=b'2',
            h2,
            b':',
            m1 @ b'0'..=b'5',
            m2,
        ] => {
            h2.is_ascii_digit()
                && m2.is_ascii_digit()
                && m1.is_ascii_digit()
                && (*h1 < b'2' || *h2 <= b'3')
        }
        _ => false,
    }
}
