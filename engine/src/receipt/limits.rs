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

fn check_ascii(
    value: &str,
    max: usize,
    allowed: &'static str,
    first_ok: impl Fn(u8) -> bool,
    rest_ok: impl Fn(u8) -> bool,
) -> Result<(), Problem> {
    if value.is_empty() {
        return Err(Problem::Empty);
    }
    if value.len() > max {
        return Err(Problem::TooLong {
            len: value.len(),
            max,
        });
    }
    // Every rule admits only ASCII, so bytes that all pass are the whole answer; decoding
    // chars (below) is for naming the offending one. Ids are checked on every append and
    // every header read back, where the char loop was most of the cost.
    let mut bytes = value.bytes();
    if bytes.next().is_some_and(&first_ok) && bytes.all(&rest_ok) {
        return Ok(());
    }
    for (at, ch) in value.char_indices() {
        let ok = u8::try_from(ch).is_ok_and(|b| if at == 0 { first_ok(b) } else { rest_ok(b) });
        if !ok {
            return Err(Problem::InvalidChar {
                at,
                found: ch,
                allowed,
            });
        }
    }
    Ok(())
}

/// An id: 1..=[`MAX_ID_BYTES`] bytes of printable ASCII without spaces.
pub(crate) fn check_id(value: &str) -> Result<(), Problem> {
    let printable = |b: u8| (0x21..=0x7E).contains(&b);
    check_ascii(value, MAX_ID_BYTES, ID_RULE, printable, printable)
}

fn tenant_rest(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// A tenant id: 1..=[`MAX_TENANT_ID_BYTES`] bytes of `[A-Za-z0-9][A-Za-z0-9._-]*`.
pub(crate) fn check_tenant_id(value: &str) -> Result<(), Problem> {
    check_ascii(
        value,
        MAX_TENANT_ID_BYTES,
        TENANT_RULE,
        |b| b.is_ascii_alphanumeric(),
        tenant_rest,
    )
}

/// A retention class: the tenant rule with [`MAX_NAME_BYTES`].
pub(crate) fn check_retention_class(value: &str) -> Result<(), Problem> {
    check_ascii(
        value,
        MAX_NAME_BYTES,
        TENANT_RULE,
        |b| b.is_ascii_alphanumeric(),
        tenant_rest,
    )
}

/// A custom kind, actor type or decision: 1..=[`MAX_NAME_BYTES`] bytes of
/// `[a-z][a-z0-9_.-]*`.
pub(crate) fn check_name(value: &str) -> Result<(), Problem> {
    check_ascii(
        value,
        MAX_NAME_BYTES,
        NAME_RULE,
        |b| b.is_ascii_lowercase(),
        |b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'),
    )
}

/// A label key: 1..=[`MAX_LABEL_KEY_BYTES`] bytes of `[A-Za-z0-9][A-Za-z0-9._/-]*`.
pub(crate) fn check_label_key(value: &str) -> Result<(), Problem> {
    check_ascii(
        value,
        MAX_LABEL_KEY_BYTES,
        LABEL_KEY_RULE,
        |b| b.is_ascii_alphanumeric(),
        |b| tenant_rest(b) || b == b'/',
    )
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
