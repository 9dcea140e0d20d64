//! audittrail 1.0.x `SQLite` ledgers: the `ledger` table that `audittrail.add_entry` and its
//! middleware write, one row per HTTP request.
//!
//! Rows are chained in rowid order. A row's `hash` is the SHA-256 of the text
//! `ts|method|path|user|status|body|response|prev_hash|key_id` (Python's `str()` of each
//! column, so a NULL is `None`); `body` and `response` are Fernet tokens, hashed as stored.
//! `prev_hash` is the previous row's `hash`, empty for the first. A signed row's `signature`
//! is RSA-PSS (SHA-256, MGF1-SHA-256, maximal salt) over Python's
//! `json.dumps({hash, method, path, prev_hash, status, ts, user}, sort_keys=True)`, which is
//! rebuilt here byte for byte.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{RsaPublicKey, pss};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::{ImportOptions, Mapped, SourceError, Verified, Visitor, Walked, build_receipt};
use crate::{ToolError, ToolResult};

/// The `app_id` of imported rows.
pub const APP_ID: &str = "audittrail";

/// The `kind` of imported rows: an HTTP request to an audited API.
pub const KIND: &str = "http_request";

/// The columns read, in this order: first those a row's hash covers, in the order it covers
/// them, then the hash and the signature.
const COLUMNS: [&str; 11] = [
    "ts",
    "method",
    "path",
    "user",
    "status",
    "body",
    "response",
    "prev_hash",
    "key_id",
    "hash",
    "signature",
];

/// The columns a row's hash covers.
const HASHED: &[&str] = COLUMNS.split_at(9).0;

/// One row of the ledger, each column as stored.
struct Row {
    rowid: u64,
    columns: Vec<SqlValue>,
}

impl Row {
    fn get(&self, name: &str) -> &SqlValue {
        COLUMNS
            .iter()
            .position(|c| *c == name)
            .and_then(|at| self.columns.get(at))
            .unwrap_or(&SqlValue::Null)
    }

    fn text(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            SqlValue::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// Walks the `ledger` table at `path` row by row in rowid order, verifying its chain (and
/// signatures, when its rows are signed) and handing each row, mapped to a receipt of
/// `options.tenant`, to `visit`.
///
/// # Errors
/// [`ToolError`] when the ledger cannot be read or no tenant was given; the inner
/// [`SourceError`] names the first row that fails verification or mapping.
pub fn walk(path: &Path, options: &ImportOptions, visit: &mut Visitor<'_>) -> Walked {
    let tenant = options.tenant.as_deref().ok_or_else(|| {
        ToolError::new("an audittrail ledger has no tenant of its own")
            .hint("give the tenant of its rows with --tenant T")
    })?;
    let key = read_public_key(options.public_key.as_deref())?;
    let fail = |what: String| ToolError::new(format!("{}: {what}", path.display()));
    let (conn, select) = open_ledger(path)?;
    let (first_rowid, first_ts, signed): (Option<i64>, Option<String>, bool) = conn
        .query_row(
            "SELECT (SELECT rowid FROM ledger ORDER BY rowid LIMIT 1), \
                    (SELECT ts FROM ledger ORDER BY rowid LIMIT 1), \
                    EXISTS (SELECT 1 FROM ledger WHERE signature IS NOT NULL)",
            [],
            |row| Ok((row.get(0)?, row.get(1).ok().flatten(), row.get(2)?)),
        )
        .or_else(|_| {
            // A ledger without a signature column has no signed rows.
            conn.query_row(
                "SELECT (SELECT rowid FROM ledger ORDER BY rowid LIMIT 1), \
                        (SELECT ts FROM ledger ORDER BY rowid LIMIT 1)",
                [],
                |row| Ok((row.get(0)?, row.get(1).ok().flatten(), false)),
            )
        })
        .map_err(|e| fail(e.to_string()))?;
    let verifier = match (signed, key) {
        (true, Some(key)) => Some(pss_verifier(&key)),
        (true, None) => {
            return Ok(Err(SourceError::at_row(
                first_rowid.and_then(|r| u64::try_from(r).ok()).unwrap_or(0),
                "the ledger's rows are signed: give the signer's RSA public key with \
                 --public-key FILE (its public_key.pem)",
            )));
        }
        (false, _) => None,
    };
    let first_ts = first_ts.unwrap_or_default();
    let mut statement = conn.prepare(&select).map_err(|e| fail(e.to_string()))?;
    let mut rows = statement.query([]).map_err(|e| fail(e.to_string()))?;
    let mut last_hash = String::new();
    let mut count = 0_u64;
    while let Some(row) = rows.next().map_err(|e| fail(e.to_string()))? {
        let row = read_row(row).map_err(|e| fail(e.to_string()))?;
        let fail_row = |message: String| SourceError::at_row(row.rowid, message);
        let hash = match check_row(&row, &last_hash) {
            Ok(hash) => hash,
            Err(message) => return Ok(Err(fail_row(message))),
        };
        if let Some(verifier) = &verifier
            && let Err(message) = check_signature(&row, verifier)
        {
            return Ok(Err(fail_row(message)));
        }
        let receipt = match map_row(&row, tenant, &first_ts) {
            Ok(receipt) => receipt,
            Err(message) => return Ok(Err(fail_row(message))),
        };
        count += 1;
        let record = Mapped {
            line: row.rowid,
            receipt,
            source_hash: hash.clone(),
        };
        last_hash = hash;
        if visit(record)?.is_break() {
            break;
        }
    }
    if count == 0 {
        return Ok(Err(SourceError::at_row(0, "the ledger holds no row")));
    }
    let checked = if verifier.is_some() {
        "sha256+rsa-pss"
    } else {
        "sha256 (the ledger is unsigned)"
    };
    Ok(Ok(Verified {
        unit: "row",
        verified: checked.to_owned(),
    }))
}

/// The RSA public key from a PEM file (`SubjectPublicKeyInfo`, as audittrail writes it).
fn read_public_key(file: Option<&str>) -> ToolResult<Option<RsaPublicKey>> {
    let Some(file) = file else {
        return Ok(None);
    };
    let pem = std::fs::read_to_string(file)
        .map_err(|e| ToolError::new(format!("cannot read the public key file {file}: {e}")))?;
    RsaPublicKey::from_public_key_pem(&pem)
        .map(Some)
        .map_err(|e| ToolError::new(format!("{file} is not an RSA public key in PEM: {e}")))
}

/// A read-only connection to the ledger at `path` and the query that reads every row of its
/// `ledger` table in rowid order.
fn open_ledger(path: &Path) -> ToolResult<(Connection, String)> {
    let fail = |what: String| ToolError::new(format!("{}: {what}", path.display()));
    if !path.is_file() {
        return Err(fail("no such file".to_owned()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail(format!("cannot open as SQLite: {e}")))?;
    let present = table_columns(&conn).map_err(|e| fail(e.to_string()))?;
    let missing: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != "signature" && !present.iter().any(|p| p == c))
        .collect();
    if present.is_empty() {
        return Err(fail(
            "no `ledger` table: not an audittrail ledger".to_owned(),
        ));
    }
    if !missing.is_empty() {
        return Err(fail(format!(
            "the ledger table lacks the column(s) {}",
            missing.join(", ")
        )));
    }
    let signature = if present.iter().any(|p| p == "signature") {
        "signature"
    } else {
        "NULL"
    };
    let select = format!(
        "SELECT rowid, {}, {signature} FROM ledger ORDER BY rowid ASC",
        COLUMNS[..10].join(", ")
    );
    Ok((conn, select))
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let rowid: i64 = row.get(0)?;
    let columns = (1..=COLUMNS.len())
        .map(|at| row.get::<_, SqlValue>(at))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Row {
        rowid: u64::try_from(rowid).unwrap_or(0),
        columns,
    })
}

fn table_columns(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare("SELECT name FROM pragma_table_info('ledger')")?;
    let names = statement.query_map([], |row| row.get::<_, String>(0))?;
    names.collect()
}

/// A PSS verifier with audittrail's salt length: `PSS.MAX_LENGTH`, all the room the key
/// leaves after the hash.
fn pss_verifier(key: &RsaPublicKey) -> pss::VerifyingKey<Sha256> {
    let em_len = key.n().bits().saturating_sub(1).div_ceil(8);
    let salt_len = em_len.saturating_sub(Sha256::output_size() + 2);
    pss::VerifyingKey::new_with_salt_len(key.clone(), salt_len)
}

/// Python's `str()` of a column, as the library's f-string prints it.
fn py_str(value: &SqlValue) -> Result<String, String> {
    match value {
        SqlValue::Null => Ok("None".to_owned()),
        SqlValue::Integer(n) => Ok(n.to_string()),
        SqlValue::Text(text) => Ok(text.clone()),
        SqlValue::Real(_) | SqlValue::Blob(_) => {
            Err("a column holds a REAL or BLOB, which audittrail never writes".to_owned())
        }
    }
}

/// `int(status)` as the library computes it.
fn status_of(row: &Row) -> Result<i64, String> {
    match row.get("status") {
        SqlValue::Integer(n) => Ok(*n),
        SqlValue::Text(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("status {text:?} is not an integer")),
        _ => Err("status is not an integer".to_owned()),
    }
}

/// Checks the row's link and hash; returns its hash.
fn check_row(row: &Row, last_hash: &str) -> Result<String, String> {
    let prev = row.text("prev_hash");
    if prev != Some(last_hash) {
        return Err(format!(
            "broken link: prev_hash is {}, the previous row's hash is {last_hash:?} (a row was \
             deleted, reordered or inserted here)",
            prev.map_or_else(|| "NULL".to_owned(), |p| format!("{p:?}"))
        ));
    }
    let status = status_of(row)?;
    let mut text = String::new();
    for (at, name) in HASHED.iter().enumerate() {
        if at > 0 {
            text.push('|');
        }
        if *name == "status" {
            text.push_str(&status.to_string());
        } else {
            text.push_str(&py_str(row.get(name))?);
        }
    }
    let calculated = crate::hex(&Sha256::digest(text.as_bytes()));
    let claimed = row.text("hash").unwrap_or_default();
    if calculated != claimed {
        return Err(format!(
            "hash mismatch: hash is {claimed:?}, the row hashes to {calculated} (the row was \
             modified after it was written)"
        ));
    }
    Ok(calculated)
}

/// Checks the row's RSA-PSS signature; a row without one in a signed ledger is refused.
fn check_signature(row: &Row, verifier: &pss::VerifyingKey<Sha256>) -> Result<(), String> {
    let encoded = row.text("signature").ok_or(
        "unsigned row in a signed ledger (its signature was removed, or signing failed when \
         it was written)",
    )?;
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|e| format!("the signature is not base64: {e}"))?;
    let signature = pss::Signature::try_from(bytes.as_slice())
        .map_err(|e| format!("the signature is malformed: {e}"))?;
    let signed = signed_text(row)?;
    verifier.verify(signed.as_bytes(), &signature).map_err(|_| {
        "bad signature: the RSA-PSS signature does not verify under the given public key \
         (forged, or signed by another key)"
            .to_owned()
    })
}

/// What audittrail signs: `json.dumps(data, sort_keys=True)` with Python's default
/// separators (`", "`, `": "`) and ASCII escapes.
fn signed_text(row: &Row) -> Result<String, String> {
    let status = status_of(row)?;
    let mut out = String::from("{");
    let members = [
        ("hash", row.get("hash")),
        ("method", row.get("method")),
        ("path", row.get("path")),
        ("prev_hash", row.get("prev_hash")),
    ];
    for (name, value) in members {
        push_py_json_str(&mut out, name);
        out.push_str(": ");
        push_py_json_value(&mut out, value)?;
        out.push_str(", ");
    }
    let _ = write!(out, "\"status\": {status}, ");
    push_py_json_str(&mut out, "ts");
    out.push_str(": ");
    push_py_json_value(&mut out, row.get("ts"))?;
    out.push_str(", ");
    push_py_json_str(&mut out, "user");
    out.push_str(": ");
    push_py_json_value(&mut out, row.get("user"))?;
    out.push('}');
    Ok(out)
}

fn push_py_json_value(out: &mut String, value: &SqlValue) -> Result<(), String> {
    match value {
        SqlValue::Null => out.push_str("null"),
        SqlValue::Text(text) => push_py_json_str(out, text),
        SqlValue::Integer(n) => out.push_str(&n.to_string()),
        SqlValue::Real(_) | SqlValue::Blob(_) => {
            return Err("a signed column holds a REAL or BLOB".to_owned());
        }
    }
    Ok(())
}

/// A JSON string as Python's `json.dumps` writes it with `ensure_ascii=True`.
fn push_py_json_str(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0_u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// The decision of an HTTP status: the API refused the caller (401, 403) or not.
fn decision_of(status: i64) -> Option<&'static str> {
    matches!(status, 401 | 403).then_some("deny")
}

/// Maps one verified row (docs/import.md has the table).
fn map_row(
    row: &Row,
    tenant: &str,
    first_ts: &str,
) -> Result<trailmix_db::receipt::Receipt, String> {
    let ts = row.text("ts").ok_or("the row has no ts")?;
    let status = status_of(row)?;
    let column = |name: &str| -> Value {
        match row.get(name) {
            SqlValue::Text(text) => json!(text),
            SqlValue::Integer(n) => json!(n),
            _ => Value::Null,
        }
    };
    let mut event = Map::new();
    event.insert(
        "event_id".into(),
        json!(format!("at:{first_ts}:{}", row.rowid)),
    );
    event.insert("tenant_id".into(), json!(tenant));
    event.insert("app_id".into(), json!(APP_ID));
    event.insert("kind".into(), json!(KIND));
    event.insert("actor_type".into(), json!("human"));
    event.insert("ts".into(), json!(ts));
    if let Some(decision) = decision_of(status) {
        event.insert("policy_eval".into(), json!({ "decision": decision }));
    }
    let mut labels = Map::new();
    if let Some(method) = row.text("method") {
        labels.insert("http.method".into(), json!(method));
    }
    labels.insert("http.status".into(), json!(status.to_string()));
    event.insert("labels".into(), Value::Object(labels));
    let mut source = Map::new();
    source.insert("format".into(), json!(super::Format::Audittrail.name()));
    source.insert("row".into(), json!(row.rowid));
    for name in COLUMNS {
        source.insert(name.into(), column(name));
    }
    event.insert("source".into(), Value::Object(source));
    build_receipt(event, &[("labels", None)]).map_err(|e| format!("cannot map the row: {e}"))
}

#[cfg(test)]
mod tests {
    use super::push_py_json_str;

    #[test]
    fn strings_are_escaped_as_python_json_dumps_does() {
        let mut out = String::new();
        push_py_json_str(&mut out, "a\"b\\c\n\u{1}é😀/");
        assert_eq!(out, r#""a\"b\\c\n\u0001\u00e9\ud83d\ude00/""#);
    }
}
