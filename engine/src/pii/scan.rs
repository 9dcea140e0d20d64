//! The detectors: hand-written byte scanners for e-mail addresses, IPv4/IPv6 addresses,
//! payment card numbers (Luhn-checked) and phone numbers.
//!
//! They read bytes and match only ASCII, so a match always starts and ends on a character
//! boundary, and they allocate nothing: a string without PII costs one pass per enabled
//! detector (see `docs/design.md`, "PII at ingest", for the exact rules).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::PiiKind;

/// One detected span of `text`: `text[start..end]` is a `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub start: usize,
    pub end: usize,
    pub kind: PiiKind,
}

/// What a text holds that some detector needs, found in one pass: a detector whose trigger is
/// missing does not scan at all, so an id without `@`, `:` or many digits costs one pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Triggers {
    at_sign: bool,
    colon: bool,
    dot: bool,
    digits: usize,
}

impl Triggers {
    pub(crate) fn of(text: &str) -> Triggers {
        let mut t = Triggers {
            at_sign: false,
            colon: false,
            dot: false,
            digits: 0,
        };
        for &b in text.as_bytes() {
            match b {
                b'0'..=b'9' => t.digits += 1,
                b'@' => t.at_sign = true,
                b':' => t.colon = true,
                b'.' => t.dot = true,
                _ => {}
            }
        }
        t
    }

    /// Whether a match of `kind` is possible at all.
    fn allow(self, kind: PiiKind) -> bool {
        match kind {
            PiiKind::Email => self.at_sign,
            PiiKind::IpAddress => self.colon || (self.dot && self.digits >= 4),
            PiiKind::CardNumber => self.digits >= 13,
            PiiKind::Phone => self.digits >= 8,
        }
    }
}

/// The first match at or after `from` of any detector in `kinds`: the leftmost; of those
/// starting at one place the longest; of equal ones the first in `kinds` (which lists
/// address before card before phone, so `10.100.200.255` is an address).
pub(crate) fn next_match(
    text: &str,
    from: usize,
    kinds: &[PiiKind],
    triggers: Triggers,
) -> Option<Found> {
    let mut best: Option<Found> = None;
    for &kind in kinds.iter().filter(|k| triggers.allow(**k)) {
        let found = match kind {
            PiiKind::Email => next_email(text.as_bytes(), from),
            PiiKind::IpAddress => next_ip(text, from),
            PiiKind::CardNumber => next_number(text.as_bytes(), from, NumberKind::Card),
            PiiKind::Phone => next_number(text.as_bytes(), from, NumberKind::Phone),
        };
        if let Some((start, end)) = found {
            let better = best.is_none_or(|b| start < b.start || (start == b.start && end > b.end));
            if better {
                best = Some(Found { start, end, kind });
            }
        }
    }
    best
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// RFC 5322 `atext` and `.`: what a local part may hold. Wider than most validators on
/// purpose: for privacy, taking `email=` along with the address beats leaving half of it.
fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b)
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

// ---- e-mail ------------------------------------------------------------------------------

fn next_email(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut at = from;
    while let Some(offset) = b.get(at..)?.iter().position(|&c| c == b'@') {
        let at_sign = at + offset;
        let mut start = at_sign;
        while start > from && is_local(b[start - 1]) {
            start -= 1;
        }
        while start < at_sign && b[start] == b'.' {
            start += 1;
        }
        if start < at_sign
            && let Some(end) = domain_end(b, at_sign + 1)
        {
            return Some((start, end));
        }
        at = at_sign + 1;
    }
    None
}

/// The end of a domain starting at `from`: at least two dot-separated labels of letters,
/// digits and inner hyphens, the last of at least two letters.
fn domain_end(b: &[u8], from: usize) -> Option<usize> {
    let mut end = from;
    while end < b.len() && is_domain(b[end]) {
        end += 1;
    }
    while end > from && matches!(b[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let domain = &b[from..end];
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in domain.split(|&c| c == b'.') {
        if label.is_empty() || label[0] == b'-' || label[label.len() - 1] == b'-' {
            return None;
        }
        labels += 1;
        last = label;
    }
    (labels >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)).then_some(end)
}

// ---- IP addresses --------------------------------------------------------------------------

fn next_ip(text: &str, from: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut i = from;
    while i < b.len() {
        let before = if i == 0 { b' ' } else { b[i - 1] };
        let free = !(is_word(before) || before == b'.');
        if free && (b[i].is_ascii_hexdigit() || b[i] == b':') {
            if before != b':'
                && let Some(end) = ipv6_at(text, i)
            {
                return Some((i, end));
            }
            if let Some(end) = ipv4_at(b, i) {
                return Some((i, end));
            }
        }
        i += 1;
    }
    None
}

/// An IPv4 address in dotted-quad form starting at `start`, not followed by a word character
/// or another `.digit` (so `1.2.3.4.5` is no address).
fn ipv4_at(b: &[u8], start: usize) -> Option<usize> {
    let mut pos = start;
    for octet in 0..4 {
        if octet > 0 {
            if b.get(pos) != Some(&b'.') {
                return None;
            }
            pos += 1;
        }
        let digits = b[pos.min(b.len())..]
            .iter()
            .take(4)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || digits > 3 {
            return None;
        }
        let value = b[pos..pos + digits]
            .iter()
            .fold(0u16, |v, d| v * 10 + u16::from(d - b'0'));
        if value > 255 {
            return None;
        }
        pos += digits;
    }
    let followed = match b.get(pos) {
        Some(&c) if is_word(c) => true,
        Some(b'.') => b.get(pos + 1).is_some_and(u8::is_ascii_digit),
        _ => false,
    };
    (!followed).then_some(pos)
}

/// An IPv6 address (any form `std` parses: compressed, with an embedded IPv4 tail) starting
/// at `start`: the longest run of hex digits, `:` and `.` with at least two colons that
/// parses, possibly after dropping trailing `.` or `:`.
fn ipv6_at(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut end = start;
    let (mut colons, mut hex) = (0, 0);
    while end < b.len() && (b[end].is_ascii_hexdigit() || matches!(b[end], b':' | b'.')) {
        colons += usize::from(b[end] == b':');
        hex += usize::from(b[end].is_ascii_hexdigit());
        end += 1;
    }
    if colons < 2 || hex == 0 || b.get(end).is_some_and(|&c| is_word(c)) {
        return None;
    }
    while end > start {
        if text[start..end].parse::<Ipv6Addr>().is_ok() {
            return Some(end);
        }
        if !matches!(b[end - 1], b'.' | b':') {
            return None;
        }
        end -= 1;
    }
    None
}

// ---- card and phone numbers -------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum NumberKind {
    Card,
    Phone,
}

/// Most digit groups one number is read in; longer runs are cut here.
const GROUPS_MAX: usize = 24;

fn is_number_sep(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')')
}

/// The next card or phone number at or after `from`. A candidate is a run of digit groups
/// joined by one or two of ` -.()` (a leading `+` or `(` allowed), not glued to a word on the
/// left; from each group start in the run, the longest span that ends a group, is not glued
/// to a word on the right and passes the kind's rule is the match.
fn next_number(b: &[u8], from: usize, kind: NumberKind) -> Option<(usize, usize)> {
    let mut i = from;
    while i < b.len() {
        let starts = b[i].is_ascii_digit()
            || (matches!(b[i], b'+' | b'(') && b.get(i + 1).is_some_and(u8::is_ascii_digit));
        let free = i == 0 || !(is_word(b[i - 1]) || matches!(b[i - 1], b'+' | b'.'));
        if !(starts && free) {
            i += 1;
            continue;
        }
        let mut group_starts = [0usize; GROUPS_MAX];
        let mut group_ends = [0usize; GROUPS_MAX];
        let (groups, run_end) = read_groups(b, i, &mut group_starts, &mut group_ends);
        for (first, &group_start) in group_starts.iter().enumerate().take(groups) {
            // The run's own start may be a `+` or `(` before the first digit group.
            let start = if first == 0 { i } else { group_start };
            if first > 0 && b[start - 1] == b'(' {
                continue;
            }
            for last in (first..groups).rev() {
                let end = group_ends[last];
                if b.get(end).is_some_and(|&c| is_word(c)) {
                    continue;
                }
                let ok = match kind {
                    NumberKind::Card => is_card(&b[start..end]),
                    NumberKind::Phone => is_phone(&b[start..end]),
                };
                if ok {
                    return Some((start, end));
                }
            }
        }
        i = run_end.max(i + 1);
    }
    None
}

/// Reads digit groups from `start`; returns how many and where the run ends.
fn read_groups(
    b: &[u8],
    start: usize,
    group_starts: &mut [usize; GROUPS_MAX],
    group_ends: &mut [usize; GROUPS_MAX],
) -> (usize, usize) {
    let mut pos = start;
    if matches!(b[pos], b'+' | b'(') {
        pos += 1;
    }
    let mut groups = 0;
    while groups < GROUPS_MAX && b.get(pos).is_some_and(u8::is_ascii_digit) {
        group_starts[groups] = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        group_ends[groups] = pos;
        groups += 1;
        let seps = b[pos..]
            .iter()
            .take(3)
            .take_while(|&&c| is_number_sep(c))
            .count();
        if seps == 0 || seps > 2 || !b.get(pos + seps).is_some_and(u8::is_ascii_digit) {
            // A `)` closing the last group belongs to the run too.
            if b.get(pos) == Some(&b')') {
                pos += 1;
            }
            break;
        }
        pos += seps;
    }
    (groups, pos)
}

fn digit_count(span: &[u8]) -> usize {
    span.iter().filter(|c| c.is_ascii_digit()).count()
}

/// 13 to 19 digits, one kind of single separator (space or hyphen) or none, Luhn-valid.
fn is_card(span: &[u8]) -> bool {
    let digits = digit_count(span);
    if !(13..=19).contains(&digits) || !span[0].is_ascii_digit() {
        return false;
    }
    let mut sep = None;
    for pair in span.windows(2) {
        if !pair[0].is_ascii_digit() && !pair[1].is_ascii_digit() {
            return false;
        }
    }
    for &c in span.iter().filter(|c| !c.is_ascii_digit()) {
        if !matches!(c, b' ' | b'-') || sep.is_some_and(|s| s != c) {
            return false;
        }
        sep = Some(c);
    }
    luhn_valid(span)
}

/// The Luhn (mod 10) check over the ASCII digits of `span` (other bytes are skipped), as
/// the card detector applies it.
#[must_use]
pub fn luhn_valid(span: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in span
        .iter()
        .rev()
        .filter(|c| c.is_ascii_digit())
        .map(|c| u32::from(c - b'0'))
        .enumerate()
    {
        sum += if i % 2 == 1 {
            let twice = d * 2;
            if twice > 9 { twice - 9 } else { twice }
        } else {
            d
        };
    }
    sum.is_multiple_of(10)
}

/// With a leading `+`: 8 to 15 digits (E.164). Without: 10 or 11 digits in at least two
/// groups (a bare digit run is an id, not a phone number), not shaped like a date
/// (`YYYY-MM-DD…`). Parentheses, if any, are one pair around one group.
fn is_phone(span: &[u8]) -> bool {
    let digits = digit_count(span);
    let plus = span[0] == b'+';
    if !parens_ok(span) {
        return false;
    }
    if plus {
        return (8..=15).contains(&digits);
    }
    let groups = span
        .windows(2)
        .filter(|p| p[0].is_ascii_digit() && !p[1].is_ascii_digit())
        .count()
        + 1;
    (10..=11).contains(&digits) && groups >= 2 && !starts_like_date(span)
}

fn parens_ok(span: &[u8]) -> bool {
    let open = span.iter().position(|&c| c == b'(');
    let close = span.iter().position(|&c| c == b')');
    match (open, close) {
        (None, None) => true,
        (Some(open), Some(close)) => {
            // One pair only, around digits.
            span.iter().rposition(|&c| c == b'(') == Some(open)
                && span.iter().rposition(|&c| c == b')') == Some(close)
                && close > open + 1
                && span[open + 1..close].iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

/// `YYYY-MM-DD` at the start (any separators): four digits, then two groups of two digits
/// that can be a month and a day.
fn starts_like_date(span: &[u8]) -> bool {
    let two = |at: usize| -> Option<u8> {
        let d = span.get(at..at + 2)?;
        (d.iter().all(u8::is_ascii_digit) && !span.get(at + 2).is_some_and(u8::is_ascii_digit))
            .then(|| (d[0] - b'0') * 10 + (d[1] - b'0'))
    };
    span.len() >= 10
        && span[..4].iter().all(u8::is_ascii_digit)
        && !span[4].is_ascii_digit()
        && two(5).is_some_and(|m| (1..=12).contains(&m))
        && !span[7].is_ascii_digit()
        && two(8).is_some_and(|d| (1..=31).contains(&d))
}

/// The address in an IP match, parsed (the scanner accepted it, so this parses).
pub(crate) fn parse_ip(text: &str) -> Option<std::net::IpAddr> {
    if let Ok(v6) = text.parse::<Ipv6Addr>() {
        return Some(v6.into());
    }
    let mut octets = [0u8; 4];
    for (slot, part) in octets.iter_mut().zip(text.split('.')) {
        *slot = part.parse().ok()?;
    }
    Some(Ipv4Addr::from(octets).into())
}
