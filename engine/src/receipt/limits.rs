//! Size limits and the character rules of header fields.

use super::error::Problem;

/// Largest event JSON text accepted by [`Receipt::from_json`](super::Receipt::from_json),
/// in bytes (2 MiB), checked before parsing. Twice the payload limit, so that whitespace and
/// the header fields fit around a maximal payload.
pub const MAX_EVENT_JSON_BYTES: usize = 2 * 1024 * 1024;

/// Largest canonical payload, in bytes (1 MiB). With a maximal header, the engine's framing and
/// an AEAD tag a receipt stays far below the WAL's 16 MiB record limit, and a single receipt
/// cannot stall group commit.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Deepest nesting of arrays and objects in an event: the event object itself is level 1, so a
/// payload field may hold 63 further levels. `serde_json`'s own limit (128) is never reached.
pub const MAX_JSON_DEPTH: usize = 64;

/// Longest id, in bytes: `event_id`, `app_id`, `session_id`, `parent_id`, `subject_id`,
/// `policy_eval.policy_id` and the model's `name`, `version` and `provider`.
/// Ids are printable ASCII without spaces (`0x21..=0x7E`).
pub const MAX_ID_BYTES: usize = 128;

/// Longest `tenant_id`, in bytes. Tenant ids become index keys and may become file names, so
/// they are `[A-Za-z0-9][A-Za-z0-9._-]*`.
pub const MAX_TENANT_ID_BYTES: usize = 64;

/// Longest custom name (`kind`, `actor_type`, `policy_eval.decision`: `[a-z][a-z0-9_.-]*`)
/// and longest `retention_class` (`[A-Za-z0-9][A-Za-z0-9._-]*`), in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Most labels on one receipt.
pub const MAX_LABELS: usize = 64;

/// Longest label key, in bytes: `[A-Za-z0-9][A-Za-z0-9._/-]*`.
pub const MAX_LABEL_KEY_BYTES: usize = 64;

/// Longest label value, in bytes of UTF-8 (may be empty; no control characters).
pub const MAX_LABEL_VALUE_BYTES: usize = 256;

/// Integers in a payload up to this magnitude (2^53 − 1, as in I-JSON, RFC 7493) are always
/// exact. Beyond it RFC 8785 treats a number as the nearest IEEE double and prints that
/// double's shortest digits, so a larger integer is accepted only when it is already written
/// that way (`9007199254740992`, `1152921504606847000`) and refused with
/// [`Problem::InexactInteger`] when canonical form would change it (`9007199254740993`).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

pub(crate) const ID_RULE: &str = "printable ASCII without spaces (0x21..=0x7E)";
pub(crate) const TENANT_RULE: &str =
    "ASCII letters, digits, '.', '_', '-', starting with a letter or digit";
pub(crate) const NAME_RULE: &str =
    "lowercase ASCII letters, digits, '_', '.', '-', starting with a letter";
pub(crate) const LABEL_KEY_RULE: &str =
    "ASCII letters, digits, '.', '_', '-', '/', starting with a letter or digit";
pub(crate) const LABEL_VALUE_RULE: &str = "any character but control characters";

/// The bytes a rule allows at a place, as a table indexed by byte: a lookup per byte where a
/// predicate called through a function pointer was a call per byte (every header read
/// checks ~150 bytes of ids; docs/performance.md, thirteenth session).
type ByteSet = [bool; 256];

/// The [`ByteSet`] of the bytes `$allowed` (a `const fn(u8) -> bool`) admits, built at
/// compile time.
macro_rules! byte_set {
    ($allowed:path) => {{
        let mut set: ByteSet = [false; 256];
        let mut b = 0;
        while b < 256 {
            #[allow(clippy::cast_possible_truncation, reason = "b < 256")]
            {
                set[b] = $allowed(b as u8);
            }
            b += 1;
        }
        set
    }};
}

/// A rule that admits only ASCII: a length bound and the bytes allowed first and after.
pub(crate) struct AsciiRule {
    max: usize,
    allowed: &'static str,
    first_ok: ByteSet,
    rest_ok: ByteSet,
}

impl AsciiRule {
    /// Whether `value` passes, on its bytes. Every byte the rule allows is ASCII, so bytes
    /// that pass are valid UTF-8 too: a header decoder may skip `from_utf8` for them (most of
    /// a field's cost, ~100 instructions) and call [`AsciiRule::check`] only for the error.
    pub(crate) fn accepts(&self, value: &[u8]) -> bool {
        match value.split_first() {
            Some((&first, rest)) => {
                value.len() <= self.max
                    && self.first_ok[usize::from(first)]
                    && rest.iter().all(|&b| self.rest_ok[usize::from(b)])
            }
            None => false,
        }
    }

    /// `value` against the rule, naming what is wrong: empty, too long, or the first
    /// character not allowed.
    pub(crate) fn check(&self, value: &str) -> Result<(), Problem> {
        // Ids are checked on every append and every header read back, where the char loop
        // (below, for naming the offending char) was most of the cost.
        if self.accepts(value.as_bytes()) {
            return Ok(());
        }
        if value.is_empty() {
            return Err(Problem::Empty);
        }
        if value.len() > self.max {
            return Err(Problem::TooLong {
                len: value.len(),
                max: self.max,
            });
        }
        for (at, ch) in value.char_indices() {
            let ok = u8::try_from(ch).is_ok_and(|b| {
                if at == 0 {
                    self.first_ok[usize::from(b)]
                } else {
                    self.rest_ok[usize::from(b)]
                }
            });
            if !ok {
                return Err(Problem::InvalidChar {
                    at,
                    found: ch,
                    allowed: self.allowed,
                });
            }
        }
        Ok(())
    }
}

const fn printable(b: u8) -> bool {
    b >= 0x21 && b <= 0x7E
}

const fn alphanumeric(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

const fn lowercase(b: u8) -> bool {
    b.is_ascii_lowercase()
}

const fn tenant_rest(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

const fn name_rest(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
}

const fn label_key_rest(b: u8) -> bool {
    tenant_rest(b) || b == b'/'
}

/// An id: 1..=[`MAX_ID_BYTES`] bytes of printable ASCII without spaces.
pub(crate) const ID: AsciiRule = AsciiRule {
    max: MAX_ID_BYTES,
    allowed: ID_RULE,
    first_ok: byte_set!(printable),
    rest_ok: byte_set!(printable),
};

/// A tenant id: 1..=[`MAX_TENANT_ID_BYTES`] bytes of `[A-Za-z0-9][A-Za-z0-9._-]*`.
pub(crate) const TENANT_ID: AsciiRule = AsciiRule {
    max: MAX_TENANT_ID_BYTES,
    allowed: TENANT_RULE,
    first_ok: byte_set!(alphanumeric),
    rest_ok: byte_set!(tenant_rest),
};

/// A retention class: the tenant rule with [`MAX_NAME_BYTES`].
pub(crate) const RETENTION_CLASS: AsciiRule = AsciiRule {
    max: MAX_NAME_BYTES,
    allowed: TENANT_RULE,
    first_ok: byte_set!(alphanumeric),
    rest_ok: byte_set!(tenant_rest),
};

/// A custom kind, actor type or decision: 1..=[`MAX_NAME_BYTES`] bytes of
/// `[a-z][a-z0-9_.-]*`.
pub(crate) const NAME: AsciiRule = AsciiRule {
    max: MAX_NAME_BYTES,
    allowed: NAME_RULE,
    first_ok: byte_set!(lowercase),
    rest_ok: byte_set!(name_rest),
};

/// A label key: 1..=[`MAX_LABEL_KEY_BYTES`] bytes of `[A-Za-z0-9][A-Za-z0-9._/-]*`.
pub(crate) const LABEL_KEY: AsciiRule = AsciiRule {
    max: MAX_LABEL_KEY_BYTES,
    allowed: LABEL_KEY_RULE,
    first_ok: byte_set!(alphanumeric),
    rest_ok: byte_set!(label_key_rest),
};

/// As [`ID`].
pub(crate) fn check_id(value: &str) -> Result<(), Problem> {
    ID.check(value)
}

/// As [`TENANT_ID`].
pub(crate) fn check_tenant_id(value: &str) -> Result<(), Problem> {
    TENANT_ID.check(value)
}

/// As [`RETENTION_CLASS`].
pub(crate) fn check_retention_class(value: &str) -> Result<(), Problem> {
    RETENTION_CLASS.check(value)
}

/// As [`NAME`].
pub(crate) fn check_name(value: &str) -> Result<(), Problem> {
    NAME.check(value)
}

/// As [`LABEL_KEY`].
pub(crate) fn check_label_key(value: &str) -> Result<(), Problem> {
    LABEL_KEY.check(value)
}

/// A label value: 0..=[`MAX_LABEL_VALUE_BYTES`] bytes of UTF-8 without control characters.
pub(crate) fn check_label_value(value: &str) -> Result<(), Problem> {
    if value.len() > MAX_LABEL_VALUE_BYTES {
        return Err(Problem::TooLong {
            len: value.len(),
            max: MAX_LABEL_VALUE_BYTES,
        });
    }
    match value.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, found)) => Err(Problem::InvalidChar {
            at,
            found,
            allowed: LABEL_VALUE_RULE,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
    const DIGITS: &str = "0123456789";

    /// Which bytes a rule's text allows at a place.
    type Allowed<'a> = Box<dyn Fn(u8) -> bool + 'a>;

    fn within(set: &str) -> Allowed<'_> {
        Box::new(move |b: u8| set.as_bytes().contains(&b))
    }

    /// Every byte, first and after a valid first byte, against each rule's text (written out
    /// here, independent of the tables `accepts` looks bytes up in).
    #[test]
    fn rules_admit_exactly_the_bytes_their_text_names() {
        let tenant_first = format!("{LETTERS}{DIGITS}");
        let tenant_rest = format!("{LETTERS}{DIGITS}._-");
        let name_first = LOWER.to_owned();
        let name_rest = format!("{LOWER}{DIGITS}_.-");
        let label_key_rest = format!("{LETTERS}{DIGITS}._-/");
        let id = |b: u8| (0x21..=0x7E).contains(&b);
        let rules: [(&str, &AsciiRule, Allowed<'_>, Allowed<'_>); 5] = [
            ("id", &ID, Box::new(id), Box::new(id)),
            (
                "tenant",
                &TENANT_ID,
                within(&tenant_first),
                within(&tenant_rest),
            ),
            (
                "retention",
                &RETENTION_CLASS,
                within(&tenant_first),
                within(&tenant_rest),
            ),
            ("name", &NAME, within(&name_first), within(&name_rest)),
            (
                "label key",
                &LABEL_KEY,
                within(&tenant_first),
                within(&label_key_rest),
            ),
        ];
        for (what, rule, first, rest) in &rules {
            for b in 0..=u8::MAX {
                assert_eq!(rule.accepts(&[b]), first(b), "{what}: first byte {b:#04x}");
                assert_eq!(rule.accepts(&[b'a', b]), rest(b), "{what}: byte {b:#04x}");
                let text = String::from_utf8(vec![b'a', b]).ok();
                if let Some(text) = text {
                    assert_eq!(rule.check(&text).is_ok(), rest(b), "{what}: check {b:#04x}");
                }
            }
        }
    }
}
