//! Interoperability with the Python audit-trail libraries and open formats. Exports live in
//! [`export`] ([`aat`], [`ai_audit_trail_export`]); this module runs imports.
//!
//! `trailmix-db import DIR --from FORMAT SOURCE`: brings the history of a Python audit-trail
//! library into a store.
//!
//! An import has two passes. The first reads the whole source, verifies the source's own
//! chain (and signatures, where the format has them) and maps every record to a [`Receipt`];
//! the first record that fails stops it with its line and the reason, before the store is
//! even opened, so a refused source writes nothing and creates nothing. The second appends
//! the receipts in source order and then, for each tenant, one import record (a `lifecycle`
//! receipt, see below) unless the store holds it already. Before the first append, every
//! receipt is checked against the store: an event id it holds with other contents refuses
//! the import, naming the line, before anything is written. `docs/import.md` gives each
//! format's field mapping.
//!
//! Provenance: the source's ids, hashes and signatures are hashes and signatures over
//! plaintext that may later be shredded, so they go into the (encrypted) payload of the
//! receipt they belong to, never into a clear header field or a label.
//!
//! Re-running an import is idempotent: event ids are derived from the source's own record
//! ids, the engine keeps one receipt per `(tenant_id, event_id)`, and the import record's
//! event id is derived from the tenant's event ids, so a re-run writes it only when an earlier
//! run died before it.

pub mod aat;
pub mod ai_audit_trail;
pub mod ai_audit_trail_export;
pub mod audittrail;
pub mod export;
pub mod llm_audit_trail;

pub use export::{
    ExportKeySource, InteropScope, PayloadMark, SourceReceipt, TenantReceipts, export_key_bytes,
    tenant_receipts,
};

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use trailmix_db::EventCheck;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use zeroize::Zeroizing;

use crate::import::{Acked, Target};
use crate::{Paint, ToolError, ToolResult, human_count, paint};

/// `app_id` of the import records.
pub const IMPORT_APP_ID: &str = "trailmix-db";

/// The label that marks an import record and names the source format.
pub const IMPORT_FORMAT_LABEL: &str = "import.format";

/// A source format that `import --from` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// llm-audit-trail 0.1.x JSONL ledgers (SHA-256 or HMAC-SHA256 chain).
    LlmAuditTrail,
    /// ai-audit-trail 0.4.x decision receipts (per-tenant SHA-256 chain, Ed25519 signatures).
    AiAuditTrail,
    /// audittrail 1.0.x `SQLite` ledgers (SHA-256 chain, RSA-PSS signatures).
    Audittrail,
}

impl Format {
    /// The name used on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Format::LlmAuditTrail => "llm-audit-trail",
            Format::AiAuditTrail => "ai-audit-trail",
            Format::Audittrail => "audittrail",
        }
    }
}

/// What an import needs besides the source file.
#[derive(Default)]
pub struct ImportOptions {
    /// The tenant of every receipt, for formats that have no tenant of their own.
    pub tenant: Option<String>,
    /// The secret of an HMAC-chained source (wiped from memory on drop).
    pub hmac_key: Option<Zeroizing<Vec<u8>>>,
    /// The public key that signed the source's records, as given on the command line: hex
    /// digits or a file (each format says which forms it takes).
    pub public_key: Option<String>,
    /// Verify and map only: open no store, write nothing.
    pub dry_run: bool,
    /// Stops after the receipts are durable and before the import records, as a crash there
    /// would: for crash tests only.
    #[doc(hidden)]
    pub stop_before_import_records: bool,
}

/// Why the source was refused: the record at fault and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceError {
    /// What `line` counts: `line` for a text file, `row` (`SQLite` rowid) for a ledger table.
    pub unit: &'static str,
    /// 1-based line (or row) of the record at fault; 0 when the fault is the whole source.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl SourceError {
    /// A fault at `line` of a text file.
    #[must_use]
    pub fn at(line: u64, message: impl Into<String>) -> SourceError {
        SourceError {
            unit: "line",
            line,
            message: message.into(),
        }
    }

    /// A fault at row `rowid` of a table.
    #[must_use]
    pub fn at_row(rowid: u64, message: impl Into<String>) -> SourceError {
        SourceError {
            unit: "row",
            line: rowid,
            message: message.into(),
        }
    }
}

/// One source record, verified and mapped to a receipt.
#[derive(Debug, Clone)]
pub struct Mapped {
    /// 1-based line (or row) in the source.
    pub line: u64,
    /// The receipt to store.
    pub receipt: Receipt,
    /// The record's own hash in the source chain.
    pub source_hash: String,
}

/// A verified source: what its chain is and every record, in source order.
#[derive(Debug, Clone)]
pub struct History {
    /// What [`Mapped::line`] counts (see [`SourceError::unit`]).
    pub unit: &'static str,
    /// How the source chain was verified, for the report and the import record
    /// (`sha256`, `hmac-sha256`, ...).
    pub verified: String,
    /// The records in source order.
    pub records: Vec<Mapped>,
}

/// What an import did for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantImport {
    /// The tenant.
    pub tenant: String,
    /// Source records mapped to this tenant.
    pub records: u64,
    /// Receipts stored by this run.
    pub imported: u64,
    /// Receipts the store already held.
    pub already_present: u64,
    /// The source hash of the tenant's first record.
    pub first_source_hash: Option<String>,
    /// The source hash of the tenant's last record.
    pub last_source_hash: Option<String>,
    /// The event id of the import record written for this tenant (none when nothing new was
    /// stored, or on a dry run).
    pub import_event_id: Option<String>,
}

/// What `import --from` did; `--json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InteropReport {
    /// The source format.
    pub format: Format,
    /// The source file.
    pub source: String,
    /// The data directory.
    pub store: String,
    /// Verified only; nothing was written.
    pub dry_run: bool,
    /// How the source was verified (empty when it was refused).
    pub verified: String,
    /// Whether this import created the store.
    pub created: bool,
    /// Source records verified.
    pub records: u64,
    /// Receipts stored by this run (import records not counted).
    pub imported: u64,
    /// Receipts the store already held.
    pub already_present: u64,
    /// Per tenant, in tenant order.
    pub tenants: Vec<TenantImport>,
    /// Why the source was refused (nothing written then), or the record the store refused.
    pub error: Option<SourceError>,
    /// One past the last durable sequence number after the import.
    pub durable_end: Option<u64>,
}

/// Runs `import --from FORMAT`: verifies `source` in full, then (unless a dry run) appends
/// its receipts and the import records to the store in `data_dir` (created if missing).
///
/// # Errors
/// [`ToolError`] when the source cannot be read, an option the format needs is missing, or
/// the store cannot be opened or written. A source that fails verification is not an error:
/// see [`InteropReport::error`].
pub fn run(
    data_dir: &Path,
    format: Format,
    source: &Path,
    options: &ImportOptions,
) -> ToolResult<InteropReport> {
    let verified = match format {
        Format::LlmAuditTrail => llm_audit_trail::read(source, options)?,
        Format::AiAuditTrail => ai_audit_trail::read(source, options)?,
        Format::Audittrail => audittrail::read(source, options)?,
    };
    let mut report = InteropReport {
        format,
        source: source.display().to_string(),
        store: data_dir.display().to_string(),
        dry_run: options.dry_run,
        verified: String::new(),
        created: false,
        records: 0,
        imported: 0,
        already_present: 0,
        tenants: Vec::new(),
        error: None,
        durable_end: None,
    };
    let history = match verified {
        Ok(history) => history,
        Err(error) => {
            report.error = Some(error);
            return Ok(report);
        }
    };
    report.verified.clone_from(&history.verified);
    report.records = history.records.len() as u64;
    let mut tenants = summarise(&history);
    if !options.dry_run {
        let mut target = Target::new(data_dir);
        let outcome = refuse_conflicts(&mut target, &history).and_then(|refusal| {
            if let Some(refusal) = refusal {
                report.error = Some(refusal);
                return Ok(());
            }
            append_all(&mut target, &history, &mut tenants, &mut report)?;
            if report.error.is_some() {
                return Ok(());
            }
            if options.stop_before_import_records {
                return Err(ToolError::new(
                    "stopped before the import records (crash-test hook)",
                ));
            }
            record_imports(&mut target, format, source, &history, &mut tenants)
        });
        report.durable_end = target.close()?;
        report.created = target.created();
        outcome?;
    }
    report.imported = tenants.values().map(|t| t.imported).sum();
    report.already_present = tenants.values().map(|t| t.already_present).sum();
    report.tenants = tenants.into_values().collect();
    Ok(report)
}

/// The per-tenant counts and first/last source hashes, before anything is written.
fn summarise(history: &History) -> BTreeMap<String, TenantImport> {
    let mut tenants: BTreeMap<String, TenantImport> = BTreeMap::new();
    for record in &history.records {
        let tenant = record.receipt.header().tenant_id();
        let entry = tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| TenantImport {
                tenant: tenant.to_owned(),
                records: 0,
                imported: 0,
                already_present: 0,
                first_source_hash: None,
                last_source_hash: None,
                import_event_id: None,
            });
        entry.records += 1;
        // A hash over a record that a data subject's key encrypts must not outlive that key
        // in the import record, which the tenant's key encrypts: see docs/import.md.
        if record.receipt.header().subject_id().is_none() {
            if entry.first_source_hash.is_none() {
                entry.first_source_hash = Some(record.source_hash.clone());
            }
            entry.last_source_hash = Some(record.source_hash.clone());
        }
    }
    tenants
}

/// The first record whose event id already names other contents, in the source or in the
/// store, checked before anything is written so that a refused import writes nothing. The
/// same contents again (a re-run) are fine.
fn refuse_conflicts(target: &mut Target<'_>, history: &History) -> ToolResult<Option<SourceError>> {
    let refusal = |record: &Mapped, message: String| SourceError {
        unit: history.unit,
        line: record.line,
        message: format!("{message}; nothing was written"),
    };
    let mut first_of: HashMap<(&str, &str), &Mapped> = HashMap::new();
    for record in &history.records {
        let header = record.receipt.header();
        match first_of.entry((header.tenant_id(), header.event_id())) {
            Entry::Vacant(vacant) => {
                vacant.insert(record);
            }
            Entry::Occupied(first) if first.get().receipt != record.receipt => {
                return Ok(Some(refusal(
                    record,
                    format!(
                        "event id {} is also the event id of {} {}, with other contents",
                        header.event_id(),
                        history.unit,
                        first.get().line
                    ),
                )));
            }
            Entry::Occupied(_) => {}
        }
    }
    let Some(db) = target.existing()? else {
        return Ok(None);
    };
    for record in &history.records {
        let header = record.receipt.header();
        let check = db
            .check_event(&record.receipt)
            .map_err(|e| ToolError::store(db.data_dir(), &e))?;
        if let EventCheck::Differs(existing) = check {
            return Ok(Some(refusal(
                record,
                format!(
                    "the store already holds event id {} of tenant {} (seq {}) with other \
                     contents",
                    header.event_id(),
                    header.tenant_id(),
                    existing.seq.0
                ),
            )));
        }
    }
    Ok(None)
}

/// Appends every receipt in source order, pipelined, and counts new and known ones per tenant.
fn append_all(
    target: &mut Target<'_>,
    history: &History,
    tenants: &mut BTreeMap<String, TenantImport>,
    report: &mut InteropReport,
) -> ToolResult<()> {
    for (index, record) in history.records.iter().enumerate() {
        target.submit(index as u64, &record.receipt)?;
        while target.should_settle() {
            settle(target, history, tenants, report)?;
        }
    }
    while settle(target, history, tenants, report)? {}
    Ok(())
}

/// Waits for the oldest append in flight and counts it; `false` when none is in flight.
fn settle(
    target: &mut Target<'_>,
    history: &History,
    tenants: &mut BTreeMap<String, TenantImport>,
    report: &mut InteropReport,
) -> ToolResult<bool> {
    let Some((index, acked)) = target.settle_oldest() else {
        return Ok(false);
    };
    let Some(record) = usize::try_from(index)
        .ok()
        .and_then(|i| history.records.get(i))
    else {
        return Err(ToolError::new(
            "an acknowledged append matches no source record",
        ));
    };
    let tenant = tenants.get_mut(record.receipt.header().tenant_id());
    match (acked, tenant) {
        (Ok(Acked::New), Some(t)) => t.imported += 1,
        (Ok(Acked::AlreadyPresent), Some(t)) => t.already_present += 1,
        (Err(err @ trailmix_db::Error::Conflict { .. }), _) => {
            if report.error.as_ref().is_none_or(|e| e.line > record.line) {
                report.error = Some(SourceError {
                    unit: history.unit,
                    line: record.line,
                    message: format!("the store refused this record: {err}"),
                });
            }
        }
        (Err(err), _) => return Err(ToolError::store(target_dir(report), &err)),
        (Ok(_), None) => return Err(ToolError::new("a receipt of an unknown tenant")),
    }
    Ok(true)
}

fn target_dir(report: &InteropReport) -> &Path {
    Path::new(&report.store)
}

/// Appends one import record to each tenant whose source records the store does not hold an
/// import record for yet, and waits for them. The record's event id is derived from the
/// tenant's event ids, so a re-run after a crash between the receipts and this record (every
/// receipt already present) writes it then, and a re-run after a complete import does not.
fn record_imports(
    target: &mut Target<'_>,
    format: Format,
    source: &Path,
    history: &History,
    tenants: &mut BTreeMap<String, TenantImport>,
) -> ToolResult<()> {
    let file_name = source
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let ids = import_event_ids(format, history);
    for tenant in tenants.values_mut() {
        let Some(event_id) = ids.get(&tenant.tenant) else {
            continue;
        };
        let db = target
            .existing()?
            .ok_or_else(|| ToolError::new("the store is not open"))?;
        let recorded = db
            .find_event(&tenant.tenant, event_id)
            .map_err(|e| ToolError::store(db.data_dir(), &e))?
            .is_some();
        if recorded {
            continue;
        }
        let receipt = import_record(format, &file_name, &history.verified, tenant, event_id)
            .map_err(|e| ToolError::new(format!("cannot build the import record: {e}")))?;
        target.submit(0, &receipt)?;
        match target.settle_oldest() {
            Some((_, Ok(_))) => {}
            Some((_, Err(err))) => return Err(ToolError::new(err.to_string())),
            None => return Err(ToolError::new("the import record was not submitted")),
        }
        tenant.import_event_id = Some(event_id.clone());
    }
    Ok(())
}

/// Per tenant, the event id of the import record of `history`: `import-` and 32 hex digits of
/// SHA-256 over the format and the tenant's event ids in source order. Only event ids go in,
/// which are clear header fields already; the source's hashes, which are over plaintext, do
/// not (see docs/import.md).
fn import_event_ids(format: Format, history: &History) -> BTreeMap<String, String> {
    let mut hashers: BTreeMap<&str, Sha256> = BTreeMap::new();
    for record in &history.records {
        let header = record.receipt.header();
        let hasher = hashers.entry(header.tenant_id()).or_insert_with(|| {
            let mut hasher = Sha256::new();
            hasher.update(format.name().as_bytes());
            hasher.update([0]);
            hasher
        });
        hasher.update(header.event_id().as_bytes());
        hasher.update([0]);
    }
    hashers
        .into_iter()
        .map(|(tenant, hasher)| {
            let digest = hasher.finalize();
            let id = format!("import-{}", crate::hex(&digest[..16]));
            (tenant.to_owned(), id)
        })
        .collect()
}

/// The `lifecycle` receipt that records an import into `tenant` (shape in docs/import.md).
fn import_record(
    format: Format,
    file_name: &str,
    verified: &str,
    tenant: &TenantImport,
    event_id: &str,
) -> Result<Receipt, trailmix_db::receipt::ReceiptError> {
    Receipt::builder(tenant.tenant.clone(), event_id, Kind::Lifecycle)
        .app_id(IMPORT_APP_ID)
        .actor_type(ActorType::System)
        .event_time(Timestamp::now())
        .label(IMPORT_FORMAT_LABEL, format.name())
        .extra(
            "import",
            json!({
                "format": format.name(),
                "source_file": file_name,
                "verified": verified,
                "records": tenant.records,
                "imported": tenant.imported,
                "already_present": tenant.already_present,
                "first_source_hash": tenant.first_source_hash,
                "last_source_hash": tenant.last_source_hash,
                "tool": concat!("trailmix-db ", env!("CARGO_PKG_VERSION")),
            }),
        )
        .build()
}

/// The non-blank lines of a JSONL text with their 1-based line numbers (as Python's
/// `enumerate(file, start=1)` counts them), each trimmed of ASCII whitespace.
pub fn jsonl_lines(text: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .map(|(index, raw)| (index as u64 + 1, raw.trim_ascii()))
        .filter(|(_, raw)| !raw.is_empty())
}

/// Builds a receipt from event JSON, dropping the optional header fields in `optional`
/// (event-JSON paths such as `app_id` or `model.name`) one by one when they break the header
/// rules: the source's value is kept in the payload's provenance either way.
///
/// # Errors
/// The message of the first error that is not about one of `optional`.
pub fn build_receipt(
    mut event: serde_json::Map<String, Value>,
    optional: &[(&str, Option<&str>)],
) -> Result<Receipt, String> {
    for _ in 0..=optional.len() {
        let err = match Receipt::from_json_value(Value::Object(event.clone())) {
            Ok(receipt) => return Ok(receipt),
            Err(err) => err,
        };
        let field = err.field().unwrap_or_default();
        let Some((path, fallback)) = optional
            .iter()
            .find(|(path, _)| field == *path || field.starts_with(&format!("{path}.")))
        else {
            return Err(err.to_string());
        };
        let (parent, leaf) = path.split_once('.').unwrap_or(("", path));
        let object = if parent.is_empty() {
            Some(&mut event)
        } else {
            event.get_mut(parent).and_then(Value::as_object_mut)
        };
        if let Some(object) = object {
            match fallback {
                Some(value) => object.insert(leaf.to_owned(), Value::String((*value).to_owned())),
                None => object.remove(leaf),
            };
        }
        if !parent.is_empty()
            && event
                .get(parent)
                .is_some_and(|v| v.as_object().is_some_and(serde_json::Map::is_empty))
        {
            event.remove(parent);
        }
    }
    Err("the record breaks the receipt rules".to_owned())
}

/// Prints the report for people: the outcome on stdout, a refusal on stderr.
pub fn print_text(report: &InteropReport) {
    if let Some(error) = &report.error
        && report.records == 0
    {
        eprintln!(
            "{} {} refused: {} {}: {}",
            paint("error:", Paint::Bad),
            report.source,
            error.unit,
            error.line,
            error.message
        );
        eprintln!("  the source's own chain does not verify; nothing was written");
        return;
    }
    let verb = if report.dry_run {
        "verified (dry run)"
    } else {
        "imported"
    };
    println!(
        "{} {} {} record(s) from {} (chain verified: {}){}",
        paint(verb, Paint::Strong),
        human_count(report.records),
        report.format.name(),
        report.source,
        report.verified,
        if report.created {
            ", store created"
        } else {
            ""
        },
    );
    for tenant in &report.tenants {
        println!(
            "  {:<20} {:>8} new  {:>8} already present{}",
            tenant.tenant,
            human_count(tenant.imported),
            human_count(tenant.already_present),
            tenant
                .import_event_id
                .as_deref()
                .map_or_else(String::new, |id| format!("  import record {id}")),
        );
    }
    if let Some(error) = &report.error {
        eprintln!(
            "{} {} {}: {}",
            paint("error:", Paint::Bad),
            error.unit,
            error.line,
            error.message
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(line: u64, event_id: &str, app_id: &str) -> Mapped {
        let receipt = Receipt::builder("acme", event_id, Kind::Lifecycle)
            .app_id(app_id)
            .actor_type(ActorType::System)
            .event_time(Timestamp::parse_rfc3339("2026-03-01T12:00:00Z").expect("time"))
            .build()
            .expect("receipt");
        Mapped {
            line,
            receipt,
            source_hash: format!("hash-{line}"),
        }
    }

    #[test]
    fn an_event_id_given_twice_with_other_contents_is_refused_at_its_second_line() {
        let history = History {
            unit: "line",
            verified: "sha256".to_owned(),
            records: vec![
                mapped(1, "lat:a", "app"),
                mapped(2, "lat:b", "app"),
                // The same record again is a re-run inside the file: fine.
                mapped(3, "lat:a", "app"),
                mapped(4, "lat:b", "other-app"),
            ],
        };
        // No store there: only the source itself is checked, and nothing is created.
        let dir = Path::new("no-store-here-for-this-unit-test");
        let mut target = Target::new(dir);
        let refusal = refuse_conflicts(&mut target, &history)
            .expect("check")
            .expect("refused");
        assert_eq!(refusal.line, 4);
        assert!(refusal.message.contains("lat:b"), "{}", refusal.message);
        assert!(refusal.message.contains("line 2"), "{}", refusal.message);
        assert!(!dir.exists());
    }
}
