//! `query` and `trace`: find receipts through the index.
//!
//! Both open the store with [`ReadOnlyStore::open`]: no lock, nothing written, so they work
//! on a store a service is writing. They search the index as the writer last committed it
//! (on a live store a moment behind the log; the summary says how far) and print only
//! receipts read back from the log and checked against their digests.

use std::path::Path;

use serde_json::{Value, json};
use trailmix_db::archive::ArchiveReads;
use trailmix_db::query::Completeness;
use trailmix_db::{ReadOnlyStore, StoredReceipt};

use crate::{ToolError, ToolResult};

/// One receipt as a JSON object, as `query --json` and `tail --json` print it: position, then
/// the SDK event. A receipt whose payload cannot be shown — shredded, encrypted under a key
/// this reader does not have, or not JSON — has `"event": null`, its clear header in `header`,
/// `payload_state` (`shredded`, `key unavailable`, `clear`, `decrypted`) and, for a clear
/// payload that is not JSON, its bytes in `payload_base64`.
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
            "payload_state": receipt.payload_state.name(),
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
            "complete as far as the index equals the log (`trailmix-db verify DIR --index` compares them)"
        }
    }
}

/// The column widths of the receipt table of `query` and `tail`.
///
/// `query` holds its whole page before it prints, so its columns fit the data
/// ([`Columns::fitting`]); `tail` prints each receipt as it comes, so it uses fixed widths
/// ([`Columns::STREAMING`]). Either way a value longer than its column is cut to fit and ends
/// in `…` (the event id, last, is never cut); `--json` has every value in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    seq: usize,
    time: usize,
    tenant: usize,
    kind: usize,
    model: usize,
    decision: usize,
}

const TITLES: [&str; 7] = [
    "seq",
    "event time",
    "tenant",
    "kind",
    "model",
    "decision",
    "event id",
];

impl Columns {
    /// Fixed widths for a table printed row by row.
    pub const STREAMING: Columns = Columns {
        seq: 10,
        time: 30,
        tenant: 20,
        kind: 16,
        model: 24,
        decision: 9,
    };

    /// The narrowest widths that hold the titles and every value of `receipts`.
    #[must_use]
    pub fn fitting(receipts: &[StoredReceipt]) -> Columns {
        let mut c = Columns {
            seq: TITLES[0].len(),
            time: TITLES[1].len(),
            tenant: TITLES[2].len(),
            kind: TITLES[3].len(),
            model: TITLES[4].len(),
            decision: TITLES[5].len(),
        };
        for receipt in receipts {
            let cells = Cells::of(receipt);
            c.seq = c.seq.max(width(&cells.seq));
            c.time = c.time.max(width(&cells.time));
            c.tenant = c.tenant.max(width(cells.tenant));
            c.kind = c.kind.max(width(cells.kind));
            c.model = c.model.max(width(&cells.model));
            c.decision = c.decision.max(width(cells.decision));
        }
        c
    }

    fn line(self, cells: [&str; 7]) -> String {
        let [seq, time, tenant, kind, model, decision, event] = cells;
        format!(
            "{}  {}  {}  {}  {}  {}  {event}",
            fit_right(seq, self.seq),
            fit(time, self.time),
            fit(tenant, self.tenant),
            fit(kind, self.kind),
            fit(model, self.model),
            fit(decision, self.decision),
        )
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// `text` left-aligned in `columns` characters, cut with `…` when longer.
fn fit(text: &str, columns: usize) -> String {
    if width(text) <= columns {
        format!("{text:<columns$}")
    } else {
        let kept: String = text.chars().take(columns.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

/// `text` right-aligned in `columns` characters, cut with `…` when longer.
fn fit_right(text: &str, columns: usize) -> String {
    if width(text) <= columns {
        format!("{text:>columns$}")
    } else {
        fit(text, columns)
    }
}

/// The cells of one table row.
struct Cells<'a> {
    seq: String,
    time: String,
    tenant: &'a str,
    kind: &'a str,
    model: String,
    decision: &'a str,
    event: &'a str,
}

impl<'a> Cells<'a> {
    fn of(receipt: &'a StoredReceipt) -> Cells<'a> {
        let header = &receipt.header;
        Cells {
            seq: receipt.position.seq.to_string(),
            time: header.event_time().to_rfc3339(),
            tenant: header.tenant_id(),
            kind: header.kind().as_str(),
            model: match (header.model_name(), header.model_version()) {
                (Some(name), Some(version)) => format!("{name}@{version}"),
                (Some(name), None) => name.to_owned(),
                _ => "-".to_owned(),
            },
            decision: header.decision().map_or("-", |d| d.as_str()),
            event: header.event_id(),
        }
    }
}

/// The column titles of [`row`].
#[must_use]
pub fn row_header(columns: Columns) -> String {
    columns.line(TITLES)
}

/// One receipt as a table row, as `query` and `tail` print it without `--json`.
#[must_use]
pub fn row(receipt: &StoredReceipt, columns: Columns) -> String {
    let payload = match &receipt.payload_state {
        trailmix_db::PayloadState::Shredded { .. } => "  (payload shredded)",
        trailmix_db::PayloadState::KeyUnavailable { .. } => "  (payload encrypted, no key)",
        _ => "",
    };
    let c = Cells::of(receipt);
    let line = columns.line([
        &c.seq, &c.time, c.tenant, c.kind, &c.model, c.decision, c.event,
    ]);
    format!("{line}{payload}")
}

/// `query DIR FILTER... [--archive URL]`: one page of receipts matching the filter, as a table
/// or JSON lines; with `archive`, receipts of epochs dropped locally are read from it.
///
/// # Errors
/// [`ToolError`] for a bad filter (with the parser's position and hint), a missing store, or
/// damage found in a receipt it reads (exit code 1).
pub fn query(
    data_dir: &Path,
    filter: &[String],
    archive: Option<ArchiveReads>,
    json: bool,
) -> ToolResult<()> {
    let text = filter.join(" ");
    let store = open_read_only(data_dir, archive)?;
    let page = store.query_text(&text).map_err(|e| match e {
        trailmix_db::Error::Query(_) => {
            ToolError::new(e.to_string()).hint("see `trailmix-db query --help`")
        }
        other => ToolError::store(data_dir, &other),
    })?;
    if json {
        for receipt in &page.receipts {
            println!("{}", receipt_json(receipt));
        }
        return Ok(());
    }
    let columns = Columns::fitting(&page.receipts);
    if page.receipts.is_empty() {
        println!(
            "no receipt matches `{text}` (`trailmix-db inspect {}` lists the tenants, models, \
             kinds and decisions the store holds)",
            data_dir.display()
        );
    } else {
        println!("{}", row_header(columns));
    }
    for receipt in &page.receipts {
        println!("{}", row(receipt, columns));
    }
    println!(
        "{} receipt(s); {}",
        page.receipts.len(),
        completeness_text(page.completeness)
    );
    if let Some(cursor) = &page.next_cursor {
        println!("more: add cursor={cursor}");
    }
    print_coverage(&store, page.watermark)
}

/// Opens the store read-only (reading dropped epochs through `archive` when given), with a
/// hint when its index cannot be read.
fn open_read_only(data_dir: &Path, archive: Option<ArchiveReads>) -> ToolResult<ReadOnlyStore> {
    if !crate::wal_dir(data_dir).is_dir() {
        return Err(ToolError::wal(
            data_dir,
            &trailmix_db::wal::Error::Missing {
                path: crate::wal_dir(data_dir),
            },
        ));
    }
    let store = ReadOnlyStore::open(data_dir).map_err(|e| match e {
        trailmix_db::Error::Index { .. } => ToolError::new(e.to_string()).hint(format!(
            "the writer rebuilds the index when it opens the store; with no service running, \
             `trailmix-db checkpoint {} --new` opens it once",
            data_dir.display()
        )),
        other => ToolError::store(data_dir, &other),
    })?;
    crate::note_index_source(&store);
    crate::note_payload_keys(&store);
    match archive {
        Some(archive) => store
            .with_archive_reads(archive)
            .map_err(|e| ToolError::store(data_dir, &e)),
        None => Ok(store),
    }
}

/// Says how much of the log the searched index covered, when it did not cover all of it
/// (a live writer's index trails its log by a moment; a crashed one's until it reopens).
fn print_coverage(store: &ReadOnlyStore, watermark: trailmix_db::wal::Seq) -> ToolResult<()> {
    let end = store
        .log_end()
        .map_err(|e| ToolError::store(store.data_dir(), &e))?;
    if watermark < end {
        println!(
            "note: the index covers entries before seq {watermark}; the {} newer entries of \
             the log were not searched",
            end.0 - watermark.0
        );
    }
    Ok(())
}

/// `trace DIR --tenant T --session S [--archive URL]`: the session's receipts as a tree of
/// parent links.
///
/// # Errors
/// [`ToolError`] for a missing store or a held writer lock.
pub fn trace(
    data_dir: &Path,
    (tenant, session): (&str, &str),
    archive: Option<ArchiveReads>,
    json: bool,
) -> ToolResult<()> {
    let store = open_read_only(data_dir, archive)?;
    let watermark = store
        .index_watermark()
        .map_err(|e| ToolError::store(data_dir, &e))?;
    let trace = store
        .trace(tenant, session)
        .map_err(|e| ToolError::store(data_dir, &e))?;
    if json {
        let value = json!({
            "receipts": trace.receipts.iter().map(receipt_json).collect::<Vec<_>>(),
            "roots": trace.graph.roots(),
            "dangling": trace.graph.dangling(),
            "cycles": trace.graph.cycles(),
        });
        println!("{value}");
        return Ok(());
    }
    if trace.receipts.is_empty() {
        println!("tenant {tenant} has no receipts in session {session}");
    } else {
        print_tree(&trace.graph.render(), &trace.receipts);
        println!(
            "{} receipt(s), {} root(s), {} dangling parent(s), {} cycle(s)",
            trace.receipts.len(),
            trace.graph.roots().len(),
            trace.graph.dangling().len(),
            trace.graph.cycles().len()
        );
    }
    print_coverage(&store, watermark)
}

/// The trace tree (`#seq event-id` lines, indented under their parents) with what each
/// receipt is beside it, in aligned columns: event time, then kind, model and decision.
fn print_tree(tree: &str, receipts: &[StoredReceipt]) {
    let by_seq: std::collections::HashMap<u64, &StoredReceipt> =
        receipts.iter().map(|r| (r.position.seq.0, r)).collect();
    let lines: Vec<&str> = tree.lines().collect();
    let widest = lines.iter().map(|l| width(l)).max().unwrap_or(0);
    let time_width = receipts
        .iter()
        .map(|r| width(&r.header.event_time().to_rfc3339()))
        .max()
        .unwrap_or(0);
    for line in lines {
        let seq = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix('#'))
            .and_then(|n| n.parse::<u64>().ok());
        let Some(receipt) = seq.and_then(|seq| by_seq.get(&seq)) else {
            println!("{line}");
            continue;
        };
        let c = Cells::of(receipt);
        let mut what = vec![c.kind.to_owned()];
        if c.model != "-" {
            what.push(c.model.clone());
        }
        if c.decision != "-" {
            what.push(c.decision.to_owned());
        }
        println!(
            "{line}{}  {:<time_width$}  {}",
            " ".repeat(widest - width(line)),
            c.time,
            what.join(" ")
        );
    }
}
