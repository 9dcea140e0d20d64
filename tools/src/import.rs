//! `trailmix-db import DIR FILE.jsonl`: appends SDK events, one JSON object per line.
//!
//! Each line is validated with [`Receipt::from_json_bytes`] (the event schema AI SDKs emit:
//! see [`trailmix_db::receipt`]). The first bad line stops the import: it is reported with its
//! line number and the field at fault, after everything appended before it was made durable.
//! Blank lines are skipped. Re-importing is safe: the engine keeps one receipt per
//! `(tenant_id, event_id)`, so an event already in the store is counted as already present and
//! not stored again; the same event id with different contents is a conflict and stops the
//! import like a bad line.
//!
//! Appends are pipelined (up to [`IN_FLIGHT`] receipts wait for their group commit at once), so
//! a conflict, which the writer finds, can surface after a few of the lines that follow it
//! were submitted; those are stored (they are valid) and the report says how many. Memory is
//! bounded by one line and the in-flight window, whatever the file's size.
//!
//! `--dry-run` validates every line without opening the store, so it writes nothing and
//! creates nothing.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, IsTerminal as _, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use trailmix_db::receipt::{MAX_EVENT_JSON_BYTES, Receipt, ReceiptError};
use trailmix_db::wal::Seq;
use trailmix_db::{Db, Ticket};

use crate::{Paint, ToolError, ToolResult, human_count, paint};

/// Appends waiting for their group commit at once: enough to fill large group commits, small
/// enough that memory stays bounded.
pub const IN_FLIGHT: usize = 4_096;

/// Where the events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Standard input (`-` on the command line).
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Source {
    /// `-` is standard input, anything else a file path.
    #[must_use]
    pub fn from_arg(arg: &Path) -> Source {
        if arg == Path::new("-") {
            Source::Stdin
        } else {
            Source::File(arg.to_path_buf())
        }
    }

    fn name(&self) -> String {
        match self {
            Source::Stdin => "stdin".to_owned(),
            Source::File(path) => path.display().to_string(),
        }
    }
}

/// The line that stopped an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line number in the input.
    pub line: u64,
    /// The event field at fault (as named in the event JSON, for example `ts` or
    /// `policy_eval.decision`), when the error is about one field.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// What `import` did; `--json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// The input: a file path or `stdin`.
    pub source: String,
    /// The data directory.
    pub store: String,
    /// Validated only; nothing was written.
    pub dry_run: bool,
    /// Whether this import created the store.
    pub created: bool,
    /// Lines read (including blank ones and the bad one).
    pub lines: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Events that passed validation.
    pub valid: u64,
    /// Events stored by this import (durable).
    pub imported: u64,
    /// Valid events the store already held (same tenant, event id and contents), from an
    /// earlier import or earlier in this input.
    pub already_present: u64,
    /// The line that stopped the import, if one did.
    pub error: Option<LineError>,
    /// Lines after the bad one that had been submitted before the writer reported the
    /// conflict; they are valid and were stored (counted in `imported` or
    /// `already_present`).
    pub stored_after_error: u64,
    /// Stopped by SIGINT/SIGTERM before the end of the input.
    pub interrupted: bool,
    /// One past the last durable sequence number after the import (`None` for a dry run or
    /// when the store was never opened).
    pub durable_end: Option<u64>,
}

impl ImportReport {
    /// Whether every line was imported (or, for a dry run, validated).
    #[must_use]
    pub fn complete(&self) -> bool {
        self.error.is_none() && !self.interrupted
    }
}

/// One line read from the input.
enum Line {
    /// The end of the input.
    End,
    /// A line (without its line break).
    Text,
    /// A line longer than any valid event.
    TooLong,
}

/// Reads one line into `buf` (cleared first), at most [`MAX_EVENT_JSON_BYTES`] plus a line
/// break, so a file without line breaks cannot fill memory.
fn read_line(input: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<Line> {
    buf.clear();
    let limit = MAX_EVENT_JSON_BYTES as u64 + 2;
    let read = input.take(limit).read_until(b'\n', buf)?;
    if read == 0 {
        return Ok(Line::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if read as u64 >= limit {
        return Ok(Line::TooLong);
    }
    Ok(Line::Text)
}

/// The error of a line that does not validate, with the field at fault.
fn line_error(line: u64, err: &ReceiptError) -> LineError {
    let message = match err {
        // The event is one line of the file: its own line number would say nothing.
        ReceiptError::Json {
            column, problem, ..
        } if *column > 0 => format!("invalid JSON at column {column}: {problem}"),
        other => other.to_string(),
    };
    LineError {
        line,
        field: err.field().map(str::to_owned),
        message,
    }
}

/// The store, opened on the first valid event (so that a file that is bad from its first line
/// creates nothing). Shared with [`crate::interop`], which appends the same way.
pub(crate) struct Target<'a> {
    data_dir: &'a Path,
    db: Option<Db>,
    created: bool,
    /// Entries in the store when it was opened: a receipt below it was already there.
    start: Seq,
    /// The highest sequence number this import stored so far: a receipt at or below it was
    /// stored earlier in this input.
    highest: Option<Seq>,
    in_flight: VecDeque<(u64, Ticket)>,
}

/// The outcome of one acknowledged append.
pub(crate) enum Acked {
    New,
    AlreadyPresent,
}

impl<'a> Target<'a> {
    /// A target for `data_dir`, not opened yet.
    pub(crate) fn new(data_dir: &'a Path) -> Self {
        Target {
            data_dir,
            db: None,
            created: false,
            start: Seq(0),
            highest: None,
            in_flight: VecDeque::with_capacity(IN_FLIGHT),
        }
    }

    /// Whether opening the store created it.
    pub(crate) fn created(&self) -> bool {
        self.created
    }

    /// Closes the store if it was opened, returning one past the last durable sequence number.
    pub(crate) fn close(&mut self) -> ToolResult<Option<u64>> {
        let Some(db) = self.db.take() else {
            return Ok(None);
        };
        let end = db.durable_end().0;
        db.close()
            .map_err(|e| ToolError::store(self.data_dir, &e))?;
        Ok(Some(end))
    }

    /// Submits `receipt`, remembering `line` for its acknowledgement.
    pub(crate) fn submit(&mut self, line: u64, receipt: &Receipt) -> ToolResult<()> {
        let ticket = self
            .db()?
            .append(receipt)
            .map_err(|e| ToolError::store(self.data_dir, &e))?;
        self.in_flight.push_back((line, ticket));
        Ok(())
    }

    /// Whether the in-flight window is full or its oldest append is already acknowledged.
    pub(crate) fn should_settle(&self) -> bool {
        self.in_flight.len() >= IN_FLIGHT
            || self
                .in_flight
                .front()
                .is_some_and(|(_, ticket)| ticket.try_result().is_some())
    }

    fn db(&mut self) -> ToolResult<&Db> {
        if self.db.is_none() {
            self.created = !crate::wal_dir(self.data_dir).is_dir();
            let db = Db::open(self.data_dir).map_err(|e| ToolError::store(self.data_dir, &e))?;
            self.start = db.durable_end();
            self.db = Some(db);
        }
        self.db
            .as_ref()
            .ok_or_else(|| ToolError::new("the store is not open"))
    }

    /// The store opened for writing when it already exists, `None` when there is none yet
    /// (nothing can be in it then). Holding the writer lock from here on means no other
    /// writer can change what a check against it found before the appends.
    pub(crate) fn existing(&mut self) -> ToolResult<Option<&Db>> {
        if self.db.is_none() && !crate::wal_dir(self.data_dir).is_dir() {
            return Ok(None);
        }
        self.db().map(Some)
    }

    /// Waits for the oldest append in flight; `None` when nothing is in flight.
    pub(crate) fn settle_oldest(&mut self) -> Option<(u64, Result<Acked, trailmix_db::Error>)> {
        let (line, ticket) = self.in_flight.pop_front()?;
        let acked = ticket.wait().map(|position| {
            // New receipts get increasing sequence numbers in submission order; an event the
            // store already held answers with the position it was first stored at.
            if position.seq < self.start || self.highest.is_some_and(|h| position.seq <= h) {
                Acked::AlreadyPresent
            } else {
                self.highest = Some(position.seq);
                Acked::New
            }
        });
        Some((line, acked))
    }
}

fn open_input(source: &Source) -> ToolResult<Box<dyn BufRead>> {
    Ok(match source {
        Source::Stdin => Box::new(BufReader::with_capacity(1 << 16, std::io::stdin())),
        Source::File(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| ToolError::new(format!("cannot read {}: {e}", path.display())))?;
            Box::new(BufReader::with_capacity(1 << 16, file))
        }
    })
}

/// Progress on stderr when it is a terminal, at most five times a second.
struct Progress {
    show: bool,
    shown_at: Instant,
}

impl Progress {
    fn tick(&mut self, lines: u64) {
        if self.show
            && lines.is_multiple_of(1024)
            && self.shown_at.elapsed() >= Duration::from_millis(200)
        {
            eprint!("\r  import      {} lines", human_count(lines));
            let _ = std::io::stderr().flush();
            self.shown_at = Instant::now();
        }
    }

    fn clear(&self) {
        if self.show {
            eprint!("\r{:40}\r", "");
        }
    }
}

/// Runs `import`: validates `source` line by line and, unless `dry_run`, appends the events to
/// the store in `data_dir` (created if missing), stopping at the first bad line or when `stop`
/// turns true. Everything appended is durable before this returns.
///
/// # Errors
/// [`ToolError`] when the input cannot be read or the store cannot be opened or written (the
/// report of a bad line is not an error: see [`ImportReport::error`]).
pub fn run(
    data_dir: &Path,
    source: &Source,
    dry_run: bool,
    stop: &AtomicBool,
) -> ToolResult<ImportReport> {
    let mut input = open_input(source)?;
    let mut report = ImportReport {
        source: source.name(),
        store: data_dir.display().to_string(),
        dry_run,
        created: false,
        lines: 0,
        blank_lines: 0,
        valid: 0,
        imported: 0,
        already_present: 0,
        error: None,
        stored_after_error: 0,
        interrupted: false,
        durable_end: None,
    };
    let mut target = Target::new(data_dir);
    let mut progress = Progress {
        show: std::io::stderr().is_terminal(),
        shown_at: Instant::now(),
    };
    let mut buf = Vec::new();
    let outcome = read_and_append(
        &mut *input,
        &mut buf,
        &mut report,
        &mut target,
        stop,
        &mut progress,
    );
    // Whatever stopped the loop, wait for everything in flight: it was submitted, and an
    // acknowledged append must be reported as such.
    let drained = drain(&mut report, &mut target);
    progress.clear();
    report.durable_end = target.close()?;
    report.created = target.created;
    outcome.and(drained)?;
    Ok(report)
}

fn read_and_append(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    report: &mut ImportReport,
    target: &mut Target<'_>,
    stop: &AtomicBool,
    progress: &mut Progress,
) -> ToolResult<()> {
    let source = report.source.clone();
    while report.error.is_none() {
        if stop.load(Ordering::Relaxed) {
            report.interrupted = true;
            break;
        }
        let line = read_line(input, buf)
            .map_err(|e| ToolError::new(format!("cannot read {source}: {e}")))?;
        let number = report.lines + 1;
        match line {
            Line::End => break,
            Line::TooLong => {
                report.lines = number;
                report.error = Some(LineError {
                    line: number,
                    field: None,
                    message: format!(
                        "the line is longer than {MAX_EVENT_JSON_BYTES} bytes, the largest event"
                    ),
                });
                break;
            }
            Line::Text => report.lines = number,
        }
        progress.tick(number);
        if buf.iter().all(u8::is_ascii_whitespace) {
            report.blank_lines += 1;
            continue;
        }
        let receipt = match Receipt::from_json_bytes(buf) {
            Ok(receipt) => receipt,
            Err(err) => {
                report.error = Some(line_error(number, &err));
                break;
            }
        };
        report.valid += 1;
        if report.dry_run {
            continue;
        }
        target.submit(number, &receipt)?;
        // Count what is already acknowledged (a conflict then stops the import soon after
        // its line), and wait when the window is full.
        while target.should_settle() {
            settle_one(report, target)?;
        }
    }
    Ok(())
}

/// Waits for the oldest append in flight and counts it; a conflict becomes the report's error.
fn settle_one(report: &mut ImportReport, target: &mut Target<'_>) -> ToolResult<bool> {
    let Some((line, acked)) = target.settle_oldest() else {
        return Ok(false);
    };
    if report.error.as_ref().is_some_and(|e| e.line < line) {
        report.stored_after_error += u64::from(acked.is_ok());
    }
    match acked {
        Ok(Acked::New) => report.imported += 1,
        Ok(Acked::AlreadyPresent) => report.already_present += 1,
        Err(err @ trailmix_db::Error::Conflict { .. }) => {
            if report.error.as_ref().is_none_or(|e| e.line > line) {
                report.error = Some(LineError {
                    line,
                    field: Some("event_id".to_owned()),
                    message: err.to_string(),
                });
            }
        }
        Err(err) => return Err(ToolError::store(target.data_dir, &err)),
    }
    Ok(true)
}

/// Waits for every append in flight.
fn drain(report: &mut ImportReport, target: &mut Target<'_>) -> ToolResult<()> {
    while settle_one(report, target)? {}
    Ok(())
}

/// Prints the report for people: on stdout when the import completed, the error on stderr.
pub fn print_text(report: &ImportReport) {
    if report.dry_run {
        println!(
            "{} {} valid event(s) in {} line(s) of {}; nothing was written",
            paint("dry run:", Paint::Strong),
            human_count(report.valid),
            human_count(report.lines),
            report.source
        );
    } else {
        println!(
            "{} {} new receipt(s) from {} into {}{}; {} already present",
            paint("imported", Paint::Strong),
            human_count(report.imported),
            report.source,
            report.store,
            if report.created { " (created)" } else { "" },
            human_count(report.already_present),
        );
        if report.imported > 0 {
            println!("  all durable (synced to disk) before this report");
        }
    }
    if report.blank_lines > 0 {
        println!(
            "  {} blank line(s) skipped",
            human_count(report.blank_lines)
        );
    }
    if let Some(error) = &report.error {
        eprintln!(
            "{} line {}: {}",
            paint("error:", Paint::Bad),
            error.line,
            error.message
        );
        if report.dry_run {
            eprintln!("  validation stopped there");
        } else {
            let before = (report.imported + report.already_present)
                .saturating_sub(report.stored_after_error);
            eprintln!(
                "  the import stopped there; the {} event(s) before it are stored (fix the line \
                 and import the file again: events already stored are skipped)",
                human_count(before)
            );
        }
        if report.stored_after_error > 0 {
            eprintln!(
                "  {} valid line(s) after it were already submitted and are stored too",
                human_count(report.stored_after_error)
            );
        }
    }
    if report.interrupted {
        eprintln!(
            "interrupted after line {}: re-run the import to add the rest (stored events are skipped)",
            report.lines
        );
    }
}
