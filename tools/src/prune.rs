//! `trailmix-db prune DIR --retain CLASS=DURATION ... [--now TIME] [--dry-run]`: reclaims disk
//! by dropping whole sealed epochs whose every receipt has expired (see `Db::prune`).
//!
//! The retention policy is not stored in the store (it is the service's configuration), so
//! the command takes it with `--retain`, once per class. Opens the store for writing (it takes
//! the writer lock, so not while a service writes it).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use trailmix_db::{Db, DbOptions, PruneMode, PruneStop, WAL_DIR};

use crate::{ToolError, ToolResult, human_bytes};

/// What `prune` was asked to do.
#[derive(Debug, Clone)]
pub struct PruneArgs {
    /// The retention policy: class and how long its receipts are kept after they were logged.
    pub retain: Vec<(String, Duration)>,
    /// The time to apply the policy at, ns since the Unix epoch (default: now).
    pub now_ns: Option<u64>,
    /// Report only.
    pub dry_run: bool,
    /// Which epochs may go.
    pub basis: Basis,
    /// The request id recorded in the prune record.
    pub request_id: Option<String>,
}

/// Which epochs a prune drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Epochs whose every receipt has expired under `--retain` (`Db::prune`).
    Retention,
    /// Epochs already archived (`Db::prune_archived`).
    Archived,
}

/// `prune --json`: the outcome.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PruneOutcome {
    /// `pruned`, `nothing_to_prune` or `dry_run`.
    pub verdict: &'static str,
    /// The data directory.
    pub data_dir: String,
    /// The time the policy was applied at, ns since the Unix epoch.
    pub now_ns: u64,
    /// First sequence number kept before.
    pub from_seq: u64,
    /// First sequence number kept after (the horizon).
    pub horizon: u64,
    /// Epochs dropped (or that would be, in a dry run).
    pub epochs: Vec<u64>,
    /// Receipts among the dropped entries.
    pub receipts: u64,
    /// Segment files deleted.
    pub segments_removed: Vec<String>,
    /// Bytes of those files.
    pub bytes_freed: u64,
    /// Sequence number of the prune record.
    pub record_seq: Option<u64>,
    /// Data keys the expiry that runs first shredded.
    pub keys_shredded: usize,
    /// Why no later epoch was dropped.
    pub stopped: String,
}

/// Parses `CLASS=DURATION` (`hipaa-6y=6years`, `short=3600s`).
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_retain(text: &str) -> Result<(String, Duration), String> {
    let (class, duration) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not CLASS=DURATION"))?;
    if class.is_empty() {
        return Err(format!("{text:?} names no class"));
    }
    let keep = humantime::parse_duration(duration.trim())
        .map_err(|e| format!("{duration:?} is not a duration ({e}); e.g. 30days, 6years"))?;
    Ok((class.to_owned(), keep))
}

/// Runs the prune.
///
/// # Errors
/// [`ToolError`] for a store that does not open or a refused prune (nothing changed then).
pub fn run(data_dir: &Path, args: &PruneArgs) -> ToolResult<PruneOutcome> {
    crate::proofs::require_store(data_dir)?;
    let options = args
        .retain
        .iter()
        .fold(DbOptions::default(), |o, (class, keep)| {
            o.retention_class(class.clone(), *keep)
        });
    let db = Db::open_with(data_dir, options).map_err(|e| ToolError::store(data_dir, &e))?;
    let now_ns = args.now_ns.unwrap_or_else(now_ns);
    let request_id = args.request_id.clone().unwrap_or_else(|| match args.basis {
        Basis::Retention => format!("retention-prune@{now_ns}"),
        Basis::Archived => format!("archived-prune@{now_ns}"),
    });
    let mode = if args.dry_run {
        PruneMode::DryRun
    } else {
        PruneMode::Apply
    };
    let sizes = segment_sizes(data_dir);
    let report = match args.basis {
        Basis::Retention => db.prune(now_ns, &request_id, mode),
        Basis::Archived => db.prune_archived(&request_id, mode),
    };
    crate::proofs::close_db(data_dir, db)?;
    let report = report.map_err(|e| ToolError::store(data_dir, &e))?;
    Ok(PruneOutcome {
        verdict: match (mode, report.epochs.is_empty()) {
            (PruneMode::DryRun, _) => "dry_run",
            (PruneMode::Apply, true) => "nothing_to_prune",
            (PruneMode::Apply, false) => "pruned",
        },
        data_dir: data_dir.display().to_string(),
        now_ns,
        from_seq: report.from_seq.0,
        horizon: report.horizon.0,
        epochs: report.epochs.iter().map(|e| e.0).collect(),
        receipts: report.receipts,
        bytes_freed: report
            .segments_removed
            .iter()
            .filter_map(|name| sizes.get(name))
            .sum(),
        segments_removed: report.segments_removed,
        record_seq: report.record_seq.map(|s| s.0),
        keys_shredded: report.keys_shredded,
        stopped: stop_text(&report.stopped),
    })
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// File sizes of the log's segments, by name.
fn segment_sizes(data_dir: &Path) -> HashMap<String, u64> {
    std::fs::read_dir(data_dir.join(WAL_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
        .collect()
}

fn stop_text(stop: &PruneStop) -> String {
    match stop {
        PruneStop::NotExpired {
            epoch,
            seq,
            class,
            expires_ns,
        } => {
            let why = match (class, expires_ns) {
                (None, _) => "it has no retention class, so it never expires".to_owned(),
                (Some(class), None) => {
                    format!("its class {class} is not given with --retain, so it never expires")
                }
                (Some(class), Some(at)) => format!(
                    "its class {class} expires it at {}",
                    trailmix_db::receipt::Timestamp::from_unix_nanos(
                        i64::try_from(*at).unwrap_or(i64::MAX)
                    )
                    .to_rfc3339()
                ),
            };
            format!("epoch {epoch} holds a receipt that has not expired (seq {seq}: {why})")
        }
        PruneStop::Held { epoch, seq, tenant } => {
            format!(
                "epoch {epoch} holds a receipt of tenant {tenant} under a legal hold (seq {seq})"
            )
        }
        PruneStop::SharedSegment { epoch } => {
            format!("epoch {epoch} ends inside a segment file shared with a later epoch")
        }
        PruneStop::NotArchived { epoch } => format!("epoch {epoch} is not archived yet"),
        PruneStop::OpenEpoch => "every sealed epoch is pruned; the open epoch never is".into(),
    }
}

/// Prints the outcome for people.
pub fn print_text(o: &PruneOutcome) {
    let epochs = match (o.epochs.first(), o.epochs.last()) {
        (Some(first), Some(last)) => format!("epochs {first} to {last}"),
        _ => "no epoch".into(),
    };
    match o.verdict {
        "dry_run" if o.epochs.is_empty() => println!(
            "would prune     nothing (the horizon stays at seq {}); nothing changed",
            o.horizon
        ),
        "dry_run" => println!(
            "would prune     {epochs} (seq {} to {}, {} receipts); nothing changed",
            o.from_seq,
            o.horizon.saturating_sub(1),
            o.receipts
        ),
        "nothing_to_prune" => println!("nothing to prune (horizon stays at seq {})", o.horizon),
        _ => {
            println!(
                "pruned          {epochs} (seq {} to {}, {} receipts) under policy",
                o.from_seq,
                o.horizon.saturating_sub(1),
                o.receipts
            );
            println!(
                "                {} segment file(s) deleted, {} freed; prune record at seq {}",
                o.segments_removed.len(),
                human_bytes(o.bytes_freed),
                o.record_seq.unwrap_or_default()
            );
            println!(
                "horizon         seq {} (seals, roots and leaf hashes kept in pruned/)",
                o.horizon
            );
        }
    }
    if o.keys_shredded > 0 {
        println!(
            "expired keys    {} data key(s) shredded first",
            o.keys_shredded
        );
    }
    println!("stopped         {}", o.stopped);
}
