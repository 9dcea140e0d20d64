//! Interoperability with the Python audit-trail libraries and open formats. Exports live in
//! [`export`] ([`aat`], [`ai_audit_trail_export`]); this module runs imports.
//!
//! `trailmix-db import DIR --from FORMAT SOURCE`: brings the history of a Python audit-trail
//! library into a store.
//!
//! An import has two passes over the source, each holding one record at a time. The first
//! verifies the source's own chain (and signatures, where the format has them), maps every
//! record to a [`Receipt`] and checks it against the store (an event id the store holds with
//! other contents refuses the import); the first record that fails stops it with its line
//! and the reason, before anything is written (a missing store is not created). The second
//! reads the source again, appends each receipt if it is the one the first pass verified,
//! and then, for each tenant, one import record (a `lifecycle` receipt, see below) unless
//! the store holds it already. `docs/import.md` gives each format's field mapping.
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
    ExportKeySource, InteropScope, PayloadMark, SourceReceipt, TenantRead, export_key_bytes,
    for_each_tenant_receipt,
};

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Read as _};
use std::ops::ControlFlow;
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::{Db, EventCheck};
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

    /// What a source's line numbers count: `row` (`SQLite` rowid) for a ledger table, `line`
    /// for a text file.
    #[must_use]
    pub fn unit(self) -> &'static str {
        match self {
            Format::Audittrail => "row",
            Format::LlmAuditTrail | Format::AiAuditTrail => "line",
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

/// How a source was verified, once a walk over it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// What [`Mapped::line`] counts (see [`SourceError::unit`]).
    pub unit: &'static str,
    /// How the source chain was verified, for the report and the import record
    /// (`sha256`, `hmac-sha256`, ...).
    pub verified: String,
}

/// Receives each verified, mapped record of a walk in source order; `Break` ends the walk
/// there (the walk then verified only the records before it).
pub type Visitor<'v> = dyn FnMut(Mapped) -> ToolResult<ControlFlow<()>> + 'v;

/// What a walk over a source gives: how it was verified, or the record that failed.
pub type Walked = ToolResult<Result<Verified, SourceError>>;

/// Longest line a JSONL source may hold: 64 MiB, far beyond any record the libraries write,
/// so that a file without line breaks cannot fill memory.
pub const SOURCE_LINE_BYTES_MAX: u64 = 64 << 20;

/// A line of a JSONL source and its 1-based number.
pub type NumberedLine<'l> = (u64, &'l [u8]);

/// The non-blank lines of a JSONL source, one in memory at a time, with their 1-based line
/// numbers (as Python's `enumerate(file, start=1)` counts them), trimmed of ASCII whitespace.
pub struct JsonlLines<R> {
    input: R,
    buf: Vec<u8>,
    number: u64,
}

impl<R: BufRead> JsonlLines<R> {
    /// Lines of `input`.
    pub fn new(input: R) -> Self {
        JsonlLines {
            input,
            buf: Vec::new(),
            number: 0,
        }
    }

    /// The next non-blank line and its number; `None` at the end of the input.
    ///
    /// # Errors
    /// [`ToolError`] when the input cannot be read; the inner [`SourceError`] for a line
    /// longer than [`SOURCE_LINE_BYTES_MAX`].
    pub fn next_line(&mut self) -> ToolResult<Result<Option<NumberedLine<'_>>, SourceError>> {
        loop {
            self.buf.clear();
            let read = (&mut self.input)
                .take(SOURCE_LINE_BYTES_MAX + 1)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| ToolError::new(format!("cannot read the source: {e}")))?;
            if read == 0 {
                return Ok(Ok(None));
            }
            self.number += 1;
            if read as u64 > SOURCE_LINE_BYTES_MAX {
                return Ok(Err(SourceError::at(
                    self.number,
                    format!("the line is longer than {SOURCE_LINE_BYTES_MAX} bytes"),
                )));
            }
            if !self.buf.trim_ascii().is_empty() {
                return Ok(Ok(Some((self.number, self.buf.trim_ascii()))));
            }
        }
    }
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

/// Runs `import --from FORMAT` in two passes over `source`, holding one record at a time:
/// the first verifies the source's own chain in full, maps each record and checks it
/// against the store; the second (unless a dry run, or the first refused the source) reads
/// the source again and appends its receipts, then the import records, to the store in
/// `data_dir` (created if missing).
///
/// # Errors
/// [`ToolError`] when the source cannot be read or changed between the passes, an option
/// the format needs is missing, or the store cannot be opened or written. A source that
/// fails verification or would conflict is not an error: see [`InteropReport::error`].
pub fn run(
    data_dir: &Path,
    format: Format,
    source: &Path,
    options: &ImportOptions,
) -> ToolResult<InteropReport> {
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
    let mut target = Target::new(data_dir);
    let outcome = import_into(&mut target, format, source, options, &mut report);
    report.durable_end = target.close()?;
    report.created = target.created();
    outcome?;
    Ok(report)
}

/// Walks `source` once, verifying it and handing each mapped record to `visit`.
fn walk(format: Format, source: &Path, options: &ImportOptions, visit: &mut Visitor<'_>) -> Walked {
    match format {
        Format::LlmAuditTrail => llm_audit_trail::walk(source, options, visit),
        Format::AiAuditTrail => ai_audit_trail::walk(source, options, visit),
        Format::Audittrail => audittrail::walk(source, options, visit),
    }
}

fn import_into(
    target: &mut Target<'_>,
    format: Format,
    source: &Path,
    options: &ImportOptions,
    report: &mut InteropReport,
) -> ToolResult<()> {
    let mut survey = Survey::new(format);
    let verified = {
        let store = if options.dry_run {
            None
        } else {
            target.existing()?
        };
        walk(format, source, options, &mut |record| {
            survey.add(&record, store)
        })?
    };
    let verified = match verified {
        Ok(verified) => verified,
        Err(error) => {
            report.error = Some(error);
            return Ok(());
        }
    };
    report.verified.clone_from(&verified.verified);
    report.records = survey.records;
    if let Some(refusal) = survey.refusal.take() {
        report.error = Some(refusal);
    } else if !options.dry_run {
        append_pass(target, format, source, options, &mut survey, report)?;
        if report.error.is_none() {
            if options.stop_before_import_records {
                return Err(ToolError::new(
                    "stopped before the import records (crash-test hook)",
                ));
            }
            record_imports(target, format, source, &verified, &mut survey)?;
        }
    }
    report.imported = survey.tenants.values().map(|t| t.imported).sum();
    report.already_present = survey.tenants.values().map(|t| t.already_present).sum();
    report.tenants = std::mem::take(&mut survey.tenants).into_values().collect();
    Ok(())
}

/// What the verifying pass keeps of the source: per-tenant counts, hashes and import-record
/// ids, and 16 bytes per record (its content digest, and one entry per event id), never
/// the records themselves.
struct Survey {
    format: Format,
    records: u64,
    tenants: BTreeMap<String, TenantImport>,
    import_ids: BTreeMap<String, Sha256>,
    /// Per `(tenant, event id)` digest: the first line and the content digest given to it.
    first_of: HashMap<[u8; 16], (u64, [u8; 16])>,
    /// Each record's content digest in source order: the append pass checks that it reads
    /// what this pass verified.
    digests: Vec<[u8; 16]>,
    /// The first record that would conflict.
    refusal: Option<SourceError>,
}

impl Survey {
    fn new(format: Format) -> Survey {
        Survey {
            format,
            records: 0,
            tenants: BTreeMap::new(),
            import_ids: BTreeMap::new(),
            first_of: HashMap::new(),
            digests: Vec::new(),
            refusal: None,
        }
    }

    /// Takes one verified record; `Break` when it would conflict (the refusal is kept).
    fn add(&mut self, record: &Mapped, store: Option<&Db>) -> ToolResult<ControlFlow<()>> {
        let header = record.receipt.header();
        let digest = content_digest(&record.receipt);
        let refuse = |message: String| SourceError {
            unit: self.format.unit(),
            line: record.line,
            message: format!("{message}; nothing was written"),
        };
        match self.first_of.entry(event_key(header)) {
            Entry::Vacant(vacant) => {
                vacant.insert((record.line, digest));
            }
            Entry::Occupied(first) if first.get().1 != digest => {
                self.refusal = Some(refuse(format!(
                    "event id {} is also the event id of {} {}, with other contents",
                    header.event_id(),
                    self.format.unit(),
                    first.get().0
                )));
                return Ok(ControlFlow::Break(()));
            }
            Entry::Occupied(_) => {}
        }
        if let Some(db) = store
            && let EventCheck::Differs(existing) = db
                .check_event(&record.receipt)
                .map_err(|e| ToolError::store(db.data_dir(), &e))?
        {
            self.refusal = Some(refuse(format!(
                "the store already holds event id {} of tenant {} (seq {}) with other contents",
                header.event_id(),
                header.tenant_id(),
                existing.seq.0
            )));
            return Ok(ControlFlow::Break(()));
        }
        self.records += 1;
        self.digests.push(digest);
        self.summarise(record);
        Ok(ControlFlow::Continue(()))
    }

    /// Counts the record for its tenant, with its first/last source hashes and the event
    /// ids that make the import record's id.
    fn summarise(&mut self, record: &Mapped) {
        let tenant = record.receipt.header().tenant_id();
        let entry = self
            .tenants
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
        let format = self.format;
        let hasher = self.import_ids.entry(tenant.to_owned()).or_insert_with(|| {
            let mut hasher = Sha256::new();
            hasher.update(format.name().as_bytes());
            hasher.update([0]);
            hasher
        });
        hasher.update(record.receipt.header().event_id().as_bytes());
        hasher.update([0]);
    }
}

/// 16 bytes of SHA-256 over what the writer compares of a receipt: its header and payload.
fn content_digest(receipt: &Receipt) -> [u8; 16] {
    let header = receipt.header().encode();
    let mut hasher = Sha256::new();
    hasher.update((header.len() as u64).to_le_bytes());
    hasher.update(&header);
    hasher.update(receipt.payload());
    first_16(&hasher.finalize())
}

/// 16 bytes of SHA-256 over a receipt's tenant and event id.
fn event_key(header: &trailmix_db::receipt::ReceiptHeader) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(header.tenant_id().as_bytes());
    hasher.update([0]);
    hasher.update(header.event_id().as_bytes());
    first_16(&hasher.finalize())
}

fn first_16(digest: &[u8]) -> [u8; 16] {
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// The second pass: reads the source again and appends its receipts in source order,
/// pipelined, counting new and known ones per tenant. A record that is not the one the
/// first pass verified at that place stops it.
fn append_pass(
    target: &mut Target<'_>,
    format: Format,
    source: &Path,
    options: &ImportOptions,
    survey: &mut Survey,
    report: &mut InteropReport,
) -> ToolResult<()> {
    let changed = |line: u64| {
        ToolError::new(format!(
            "{} changed since it was verified ({} {line}); the receipts before it are stored: \
             import it again",
            source.display(),
            format.unit()
        ))
    };
    let mut at = 0usize;
    let mut tenants_in_flight = VecDeque::new();
    let walked = walk(format, source, options, &mut |record| {
        if survey.digests.get(at) != Some(&content_digest(&record.receipt)) {
            return Err(changed(record.line));
        }
        at += 1;
        target.submit(record.line, &record.receipt)?;
        tenants_in_flight.push_back(record.receipt.header().tenant_id().to_owned());
        while target.should_settle() {
            settle(target, &mut tenants_in_flight, &mut survey.tenants, report)?;
        }
        Ok(ControlFlow::Continue(()))
    });
    while settle(target, &mut tenants_in_flight, &mut survey.tenants, report)? {}
    match walked? {
        Err(error) => Err(changed(error.line)),
        Ok(_) if at != survey.digests.len() => Err(changed(survey.records)),
        Ok(_) => Ok(()),
    }
}

/// Waits for the oldest append in flight and counts it; `false` when none is in flight.
fn settle(
    target: &mut Target<'_>,
    tenants_in_flight: &mut VecDeque<String>,
    tenants: &mut BTreeMap<String, TenantImport>,
    report: &mut InteropReport,
) -> ToolResult<bool> {
    let Some((line, acked)) = target.settle_oldest() else {
        return Ok(false);
    };
    let tenant = tenants_in_flight
        .pop_front()
        .and_then(|tenant| tenants.get_mut(&tenant));
    match (acked, tenant) {
        (Ok(Acked::New), Some(t)) => t.imported += 1,
        (Ok(Acked::AlreadyPresent), Some(t)) => t.already_present += 1,
        (Err(err @ trailmix_db::Error::Conflict { .. }), _) => {
            if report.error.as_ref().is_none_or(|e| e.line > line) {
                report.error = Some(SourceError {
                    unit: report.format.unit(),
                    line,
                    message: format!("the store refused this record: {err}"),
                });
            }
        }
        (Err(err), _) => return Err(ToolError::store(Path::new(&report.store), &err)),
        (Ok(_), None) => return Err(ToolError::new("a receipt of an unknown tenant")),
    }
    Ok(true)
}

/// Appends one import record to each tenant whose source records the store does not hold an
/// import record for yet, and waits for them. The record's event id is derived from the
/// tenant's event ids, so a re-run after a crash between the receipts and this record (every
/// receipt already present) writes it then, and a re-run after a complete import does not.
fn record_imports(
    target: &mut Target<'_>,
    format: Format,
    source: &Path,
    verified: &Verified,
    survey: &mut Survey,
) -> ToolResult<()> {
    let file_name = source
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let ids = import_event_ids(&survey.import_ids);
    for tenant in survey.tenants.values_mut() {
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
        let receipt = import_record(format, &file_name, &verified.verified, tenant, event_id)
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

/// Per tenant, the event id of its import record: `import-` and the first 32 hex digits of
/// SHA-256 over the format and the tenant's event ids in source order. Only event ids go
/// in, which are clear header fields already; the source's hashes, which are over
/// plaintext, do not (see docs/import.md).
fn import_event_ids(hashers: &BTreeMap<String, Sha256>) -> BTreeMap<String, String> {
    hashers
        .iter()
        .map(|(tenant, hasher)| {
            let digest = hasher.clone().finalize();
            let id = format!("import-{}", crate::hex(&digest[..16]));
            (tenant.clone(), id)
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
        let mut survey = Survey::new(Format::LlmAuditTrail);
        let records = [
            mapped(1, "lat:a", "app"),
            mapped(2, "lat:b", "app"),
            // The same record again is a re-run inside the file: fine.
            mapped(3, "lat:a", "app"),
        ];
        for record in records {
            let flow = survey.add(&record, None).expect("no store");
            assert_eq!(flow, ControlFlow::Continue(()));
        }
        let flow = survey
            .add(&mapped(4, "lat:b", "other-app"), None)
            .expect("no store");
        assert_eq!(flow, ControlFlow::Break(()));
        let refusal = survey.refusal.expect("refused");
        assert_eq!(refusal.line, 4);
        assert!(refusal.message.contains("lat:b"), "{}", refusal.message);
        assert!(refusal.message.contains("line 2"), "{}", refusal.message);
        assert_eq!(survey.records, 3);
    }
}
