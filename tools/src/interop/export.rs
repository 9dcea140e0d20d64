//! Exports of a tenant's receipts in formats that other projects' verifiers check: Agent
//! Audit Trail records (`aat`, IETF draft-sharif-agent-audit-trail -04 and -06) and the
//! ai-audit-trail 0.4 evidence package (`ai_audit_trail_export`). `docs/interop.md` holds
//! the byte-exact mappings.
//!
//! Both formats are signed with an *export key* of their own algorithm (P-256 for AAT,
//! Ed25519 for ai-audit-trail), never with the store's checkpoint key: the checkpoint key
//! signs only C2SP notes, and a signature in a foreign format says "the exporter vouches
//! for this copy", which is a different statement from "the store logged this".

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::RngCore as _;
use serde_json::{Map, Value};
use trailmix_db::query::{Filter, Query};
use trailmix_db::{PayloadState, ReadOnlyStore, StoredReceipt};

use crate::{ToolError, ToolResult};

/// Receipts read per query page while collecting a tenant's receipts.
const PAGE_RECEIPTS: u32 = 1000;

/// Which receipts an interop export covers: one tenant, optionally a logged-at range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteropScope {
    /// The tenant.
    pub tenant: String,
    /// Logged at or after this (ns since the Unix epoch).
    pub logged_from_ns: Option<u64>,
    /// Logged before this.
    pub logged_to_ns: Option<u64>,
}

/// Where the export key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportKeySource {
    /// A key file written earlier (64 hex digits: the P-256 scalar or the Ed25519 seed).
    Existing(PathBuf),
    /// Generate a key and write it to this path (which must not exist), mode 0600.
    Generate(PathBuf),
}

/// What an export file says about a receipt's payload. Exports carry no payload bytes:
/// only the header fields and the store's chain hash, which commits to the stored payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadMark {
    /// Stored unencrypted.
    Clear,
    /// Stored encrypted under a data key that still exists.
    Encrypted,
    /// Its data key was shredded: the payload is gone for good.
    Shredded,
}

impl PayloadMark {
    fn of(state: &PayloadState) -> PayloadMark {
        match state {
            PayloadState::Clear => PayloadMark::Clear,
            PayloadState::Shredded { .. } => PayloadMark::Shredded,
            PayloadState::Decrypted { .. } | PayloadState::KeyUnavailable { .. } => {
                PayloadMark::Encrypted
            }
        }
    }

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadMark::Clear => "clear",
            PayloadMark::Encrypted => "encrypted",
            PayloadMark::Shredded => "shredded",
        }
    }
}

/// One receipt as the exports see it: its header fields and where it sits in the store.
#[derive(Debug, Clone)]
pub struct SourceReceipt {
    /// Sequence number in the log.
    pub seq: u64,
    /// Its epoch.
    pub epoch: u64,
    /// The writer's monotonic timestamp, ns since the Unix epoch.
    pub logged_at_ns: u64,
    /// The store's chain hash of the entry (covers header and stored payload).
    pub chain_hash: [u8; 32],
    /// The header fields in the SDK event shape (strings only, no numbers).
    pub event: Map<String, Value>,
    /// What became of the payload.
    pub payload: PayloadMark,
    /// For a shredded payload: the seq of the shred record.
    pub shred_seq: Option<u64>,
    /// `policy_eval.decision`, when the receipt has one.
    pub decision: Option<String>,
}

impl SourceReceipt {
    fn from_stored(stored: &StoredReceipt) -> SourceReceipt {
        let event = match stored.header.to_sdk_json_value() {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let shred_seq = match &stored.payload_state {
            PayloadState::Shredded { shred_seq, .. } => Some(shred_seq.0),
            _ => None,
        };
        SourceReceipt {
            seq: stored.position.seq.0,
            epoch: stored.position.epoch.0,
            logged_at_ns: stored.position.logged_at_ns,
            chain_hash: stored.position.chain_hash,
            event,
            payload: PayloadMark::of(&stored.payload_state),
            shred_seq,
            decision: stored.header.decision().map(|d| d.as_str().to_owned()),
        }
    }

    /// The event id.
    #[must_use]
    pub fn event_id(&self) -> &str {
        self.event
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// A string member of the event (top level).
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        self.event.get(name).and_then(Value::as_str)
    }

    /// A string member of a nested event object (`model.name`).
    #[must_use]
    pub fn nested(&self, object: &str, name: &str) -> Option<&str> {
        self.event
            .get(object)
            .and_then(|o| o.get(name))
            .and_then(Value::as_str)
    }
}

/// How an export read a tenant's receipts from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRead {
    /// Receipts handed to the export.
    pub receipts: u64,
    /// The index covered every entry before this seq when the export began reading.
    pub indexed_before: u64,
    /// One past the last entry of the log then.
    pub log_end: u64,
}

impl TenantRead {
    /// A warning when the index lagged the log: the receipts logged in the lag are not in the
    /// export (a writer indexes within a second; a store stopped uncleanly catches up when it
    /// is next opened for writing).
    #[must_use]
    pub fn lag_note(&self) -> Option<String> {
        (self.indexed_before < self.log_end).then(|| {
            format!(
                "the index covered the log up to seq {} of {}: receipts logged after that are \
                 not in this export (export again once the writer has indexed them)",
                self.indexed_before, self.log_end
            )
        })
    }
}

/// Hands the tenant's receipts in `scope` to `visit` in log order, read through the index
/// (re-checked against the log by the engine) from the store in `data_dir`, without a lock,
/// one query page (`PAGE_RECEIPTS`, 1,000 receipts) in memory at a time.
///
/// # Errors
/// [`ToolError`] when the store cannot be opened or read, the scope holds no receipt (then
/// before `visit` is called), or `visit` fails.
pub fn for_each_tenant_receipt(
    data_dir: &Path,
    scope: &InteropScope,
    visit: &mut dyn FnMut(SourceReceipt) -> ToolResult<()>,
) -> ToolResult<TenantRead> {
    let store = ReadOnlyStore::open(data_dir).map_err(|e| ToolError::store(data_dir, &e))?;
    crate::note_payload_keys(&store);
    crate::note_index_source(&store);
    let as_i64 = |ns: u64, flag: &str| {
        i64::try_from(ns).map_err(|_| ToolError::new(format!("{flag} is out of range")))
    };
    let filter = Filter {
        tenant: Some(scope.tenant.clone()),
        logged_since: scope
            .logged_from_ns
            .map(|ns| as_i64(ns, "--from"))
            .transpose()?,
        logged_until: scope
            .logged_to_ns
            .map(|ns| as_i64(ns, "--to"))
            .transpose()?,
        ..Filter::default()
    };
    let store_error = |e: trailmix_db::Error| ToolError::store(data_dir, &e);
    let log_end = store.log_end().map_err(store_error)?.0;
    let indexed_before = store.index_watermark().map_err(store_error)?.0;
    let mut query = Query::new(filter);
    query.limit = PAGE_RECEIPTS;
    let mut receipts = 0_u64;
    loop {
        let page = store
            .query(&query)
            .map_err(|e| ToolError::store(data_dir, &e))?;
        if receipts == 0 && page.receipts.is_empty() {
            return Err(ToolError::new(format!(
                "tenant {:?} has no receipt in the range",
                scope.tenant
            ))
            .hint("check the tenant name (`trailmix-db inspect DIR` lists the top tenants)"));
        }
        for stored in &page.receipts {
            visit(SourceReceipt::from_stored(stored))?;
            receipts += 1;
        }
        let Some(cursor) = page.next_cursor else {
            break;
        };
        let cursor = trailmix_db::query::Cursor::decode(&cursor)
            .map_err(|e| ToolError::new(format!("the engine's own cursor did not decode: {e}")))?;
        query.cursor = Some(cursor);
    }
    Ok(TenantRead {
        receipts,
        indexed_before,
        log_end,
    })
}

/// The 32 secret bytes of the export key: read from the file, or generated and written.
///
/// # Errors
/// [`ToolError`] when the file is unreadable, not 64 hex digits, or (generating) exists.
pub fn export_key_bytes(source: &ExportKeySource) -> ToolResult<[u8; 32]> {
    match source {
        ExportKeySource::Existing(path) => read_key_file(path),
        ExportKeySource::Generate(path) => {
            let mut secret = [0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            write_key_file(path, &secret)?;
            Ok(secret)
        }
    }
}

fn read_key_file(path: &Path) -> ToolResult<[u8; 32]> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ToolError::new(format!(
            "cannot read the export key {}: {e}",
            path.display()
        ))
    })?;
    let bytes = hex_decode(text.trim()).filter(|b| b.len() == 32);
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            ToolError::new(format!(
                "{}: an export key file holds 64 hex digits (32 bytes)",
                path.display()
            ))
            .hint("write a new one with --new-export-key FILE")
        })
}

fn write_key_file(path: &Path, secret: &[u8; 32]) -> ToolResult<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        ToolError::new(format!(
            "cannot create the export key {}: {e}",
            path.display()
        ))
        .hint("--new-export-key never writes over a file: choose a new path")
    })?;
    file.write_all(format!("{}\n", hex(secret)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| ToolError::new(format!("cannot write {}: {e}", path.display())))
}

/// Lower-case hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// SHA-256.
#[must_use]
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// `logged_at` as RFC 3339 UTC with exactly six fraction digits (microseconds), so that
/// string order is time order.
#[must_use]
pub fn rfc3339_micros(ns: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_micros(time).to_string()
}

/// Writes `bytes` to `path`, which must not exist.
///
/// # Errors
/// [`ToolError`] when it exists or cannot be written.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> ToolResult<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| ToolError::new(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| ToolError::new(format!("cannot write {}: {e}", path.display())))
}
