//! `query` and `trace`: find receipts through the index.
//!
//! Both open the store with [`trailmix_db::Db::open`] (the index file is held by its one
//! writer, so they take the writer lock: stop the service first, or query from within it
//! through `Db`).
//! Every receipt printed was read back from the log and checked against its digests.

use std::path::Path;

use serde_json::{Value, json};
use trailmix_db::query::Completeness;
use trailmix_db::{Freshness, StoredReceipt};

use crate::proofs::{close_db, open_db};
use crate::{ToolError, ToolResult};

/// One receipt as a JSON object, as `query --json` and `tail --json` print it: position, then
/// the SDK event. A receipt whose payload does not read back as JSON (for example a damaged or,
/// later, an encrypted one) has `"event": null`, its clear header in `header` and its payload
/// bytes in `payload_base64`.
#[must_use]
pub fn receipt_json(receipt: &StoredReceipt) -> Value {
    let position = &receipt.position;
    match trailmix_db::receipt::Receipt::from_parts(&receipt.header, &receipt.payload) {
        Ok(event) => json!({
            "seq": position.seq.0,
            "epoch": position.epoch.0,
            "logged_at_ns": position.logged_at_ns,
            "event": event.to_sdk_json_value(),
        }),
        Err(_) => json!({
            "seq": position.seq.0,
            "epoch": position.epoch.0,
            "logged_at_ns": position.logged_at_ns,
            "event": Value::Null,
            "header": receipt.header.to_sdk_json_value(),
            "payload_base64": crate::base64(&receipt.payload),
        }),
    }
}

fn completeness_text(completeness: Completeness) -> &'static str {
    match completeness {
        Completeness::SeqRangeProvable => {
            "provably complete: a contiguous range whose ends can be proven (`prove`)"
        }
        Completeness::TenantChainCheckable => {
            "checkable: gaps would break the tenant's hash chain (`verify`)"
        }
        Completeness::IndexDerived => {
            "complete as far as the index equals the log (`Db::check_index` compares them)"
        }
    }
}

/// The column titles of [`row`].
#[must_use]
pub fn row_header() -> String {
    format!(
        "{:>10}  {:<30}  {:<12}  {:<16}  {:<20}  {:<9}  event id",
        "seq", "event time", "tenant", "kind", "model", "decision"
    )
}

/// One receipt as a table row, as `query` and `tail` print it without `--json`.
#[must_use]
pub fn row(receipt: &StoredReceipt) -> String {
    let header = &receipt.header;
    let model = match (header.model_name(), header.model_version()) {
        (Some(name), Some(version)) => format!("{name}@{version}"),
        (Some(name), None) => name.to_owned(),
        _ => "-".to_owned(),
    };
    format!(
        "{:>10}  {:<30}  {:<12}  {:<16}  {:<20}  {:<9}  {}",
        receipt.position.seq,
        header.event_time().to_rfc3339(),
        header.tenant_id(),
        header.kind().as_str(),
        model,
        header.decision().map_or("-", |d| d.as_str()),
        header.event_id(),
    )
}

/// `query DIR FILTER...`: one page of receipts matching the filter, as a table or JSON lines.
///
/// # Errors
/// [`ToolError`] for a bad filter (with the parser's position and hint), a missing store or
/// a held writer lock.
pub fn query(data_dir: &Path, filter: &[String], json: bool) -> ToolResult<()> {
    let text = filter.join(" ");
    let db = open_db(data_dir)?;
    let page = db
        .query_text(&text, Freshness::Durable)
        .map_err(|e| ToolError::new(e.to_string()).hint("see `trailmix-db query --help`"))?;
    if json {
        for receipt in &page.receipts {
            println!("{}", receipt_json(receipt));
        }
    } else {
        println!("{}", row_header());
        for receipt in &page.receipts {
            println!("{}", row(receipt));
        }
        println!(
            "{} receipt(s); {}",
            page.receipts.len(),
            completeness_text(page.completeness)
        );
        if let Some(cursor) = &page.next_cursor {
            println!("more: add cursor={cursor}");
        }
    }
    close_db(data_dir, db)
}

/// `trace DIR --tenant T --session S`: the session's receipts as a tree of parent links.
///
/// # Errors
/// [`ToolError`] for a missing store or a held writer lock.
pub fn trace(data_dir: &Path, tenant: &str, session: &str, json: bool) -> ToolResult<()> {
    let db = open_db(data_dir)?;
    let trace = db
        .trace(tenant, session, Freshness::Durable)
        .map_err(|e| ToolError::store(data_dir, &e))?;
    if json {
        let value = json!({
            "receipts": trace.receipts.iter().map(receipt_json).collect::<Vec<_>>(),
            "roots": trace.graph.roots(),
            "dangling": trace.graph.dangling(),
            "cycles": trace.graph.cycles(),
        });
        println!("{value}");
    } else if trace.receipts.is_empty() {
        println!("tenant {tenant} has no receipts in session {session}");
    } else {
        print!("{}", trace.graph.render());
        println!(
            "{} receipt(s), {} root(s), {} dangling parent(s), {} cycle(s)",
            trace.receipts.len(),
            trace.graph.roots().len(),
            trace.graph.dangling().len(),
            trace.graph.cycles().len()
        );
    }
    close_db(data_dir, db)
}
