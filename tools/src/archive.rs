//! `trailmix-db archive DIR --to URL` and `trailmix-db verify --archive URL`: ship sealed
//! epochs to object storage (see `Db::archive`), and verify a store's history from the archive
//! alone (see `trailmix_db::archive::verify_archive`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use trailmix_db::archive::{
    ArchiveOptions, ArchiveTarget, ArchiveVerifyReport, S3Settings, verify_archive,
};
use trailmix_db::{Db, VerifyOptions};

use crate::{ToolError, ToolResult, human_bytes};

/// `archive --json`: the outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArchiveOutcome {
    /// `archived` or `nothing_to_archive`.
    pub verdict: &'static str,
    /// The archive URL.
    pub url: String,
    /// Epochs archived by this run.
    pub epochs: Vec<u64>,
    /// Objects written.
    pub objects_written: u64,
    /// Objects found already archived with the right content (a resumed run).
    pub objects_present: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Bytes of the objects confirmed in the archive (by the server's stored checksum or by
    /// reading them back).
    pub bytes_verified: u64,
    /// Objects confirmed by the SHA-256 checksum the server stored.
    pub objects_checked_by_checksum: u64,
    /// Bytes downloaded to confirm objects.
    pub bytes_read_back: u64,
    /// Seqs of the archive records appended.
    pub record_seqs: Vec<u64>,
    /// Sealed epochs waiting for their segment file to end.
    pub epochs_waiting: u64,
    /// Upload throughput of this run, MB/s (bytes written over the whole run's time).
    pub mb_per_s: f64,
    /// The bandwidth limit of this run, bytes a second (`null`: none).
    pub bytes_per_second_max: Option<u64>,
    /// Milliseconds the run waited to keep to that limit.
    pub paced_ms: u64,
    /// One past the last seq archived now.
    pub archived_end: u64,
}

/// Archives the store in `data_dir` to `url`, uploading and reading back at most
/// `bytes_per_second_max` bytes a second (0: no limit); progress lines go to stderr when
/// `progress`.
///
/// # Errors
/// [`ToolError`] for a bad URL, a store that does not open, or a failed archive run (run it
/// again: it resumes).
pub fn run(
    data_dir: &Path,
    url: &str,
    settings: &S3Settings,
    progress: bool,
    bytes_per_second_max: u64,
) -> ToolResult<ArchiveOutcome> {
    crate::proofs::require_store(data_dir)?;
    let target = ArchiveTarget::parse(url, settings).map_err(|e| ToolError::new(e.to_string()))?;
    let db = Db::open(data_dir).map_err(|e| ToolError::store(data_dir, &e))?;
    let mut options = ArchiveOptions {
        bytes_per_second_max: std::num::NonZeroU64::new(bytes_per_second_max),
        ..ArchiveOptions::default()
    };
    if progress {
        options.progress = Some(Arc::new(|name: &str, bytes: u64, written: bool| {
            let what = if written { "put    " } else { "present" };
            eprintln!("{what} {name} ({})", human_bytes(bytes));
        }));
    }
    let report = db.archive(&target, &options);
    let archived_end = db.archived_end().0;
    crate::proofs::close_db(data_dir, db)?;
    let report = report.map_err(|e| {
        ToolError::new(e.to_string())
            .hint("run the same command again: objects already archived are kept and reused")
    })?;
    let seconds = report.elapsed.as_secs_f64().max(1e-9);
    #[allow(clippy::cast_precision_loss)]
    let mb_per_s = report.bytes_written as f64 / 1e6 / seconds;
    Ok(ArchiveOutcome {
        verdict: if report.epochs.is_empty() {
            "nothing_to_archive"
        } else {
            "archived"
        },
        url: url.to_owned(),
        epochs: report.epochs.iter().map(|e| e.0).collect(),
        objects_written: report.objects_written,
        objects_present: report.objects_present,
        bytes_written: report.bytes_written,
        bytes_verified: report.bytes_verified,
        objects_checked_by_checksum: report.objects_checked_by_checksum,
        bytes_read_back: report.bytes_read_back,
        record_seqs: report.record_seqs.iter().map(|s| s.0).collect(),
        epochs_waiting: report.epochs_waiting,
        mb_per_s,
        bytes_per_second_max: options.bytes_per_second_max.map(std::num::NonZeroU64::get),
        paced_ms: u64::try_from(report.paced.as_millis()).unwrap_or(u64::MAX),
        archived_end,
    })
}

/// Prints the outcome for people.
pub fn print_text(o: &ArchiveOutcome) {
    match (o.epochs.first(), o.epochs.last()) {
        (Some(first), Some(last)) => println!(
            "archived        epochs {first} to {last} to {} (verified remotely; records at seq {})",
            o.url,
            o.record_seqs
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => println!("nothing to archive (archived up to seq {})", o.archived_end),
    }
    println!(
        "objects         {} written ({}, {:.1} MB/s), {} already there",
        o.objects_written,
        human_bytes(o.bytes_written),
        o.mb_per_s,
        o.objects_present
    );
    println!(
        "verified        {} ({} object(s) by the server's SHA-256 checksum, {} read back)",
        human_bytes(o.bytes_verified),
        o.objects_checked_by_checksum,
        human_bytes(o.bytes_read_back)
    );
    if let Some(limit) = o.bytes_per_second_max {
        println!(
            "paced           at most {}/s: waited {:.1} s (--bytes-per-second-max 0 lifts the limit)",
            human_bytes(limit),
            Duration::from_millis(o.paced_ms).as_secs_f64()
        );
    }
    if o.epochs_waiting > 0 {
        println!(
            "waiting         {} sealed epoch(s) whose segment file has not ended yet (a seal ends its \
             segment once the segment is half full; they go with a later run)",
            o.epochs_waiting
        );
    }
}

/// `verify --archive --json`: the outcome.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ArchiveVerifyOutcome {
    /// `verified` or `damaged`.
    pub verdict: &'static str,
    /// The archive URL.
    pub url: String,
    /// The store verified.
    pub store_id: String,
    /// Archived epochs found.
    pub epochs: u64,
    /// Objects read.
    pub objects: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Entries and receipts of the rebuilt log.
    pub entries: u64,
    /// Receipts of the rebuilt log.
    pub receipts: u64,
    /// What is damaged: an object, or the rebuilt log.
    pub damage: Option<String>,
}

impl ArchiveVerifyOutcome {
    /// Whether everything verified.
    #[must_use]
    pub fn verified(&self) -> bool {
        self.damage.is_none()
    }
}

/// Verifies the archive at `url` alone.
///
/// # Errors
/// [`ToolError`] when the archive cannot be read or holds no (such) store.
pub fn verify(
    url: &str,
    settings: &S3Settings,
    store_id: Option<&str>,
    public_key: Option<String>,
) -> ToolResult<ArchiveVerifyOutcome> {
    let target = ArchiveTarget::parse(url, settings).map_err(|e| ToolError::new(e.to_string()))?;
    let options = VerifyOptions {
        public_key,
        ..VerifyOptions::default()
    };
    let report: ArchiveVerifyReport =
        verify_archive(&target, store_id, &options).map_err(|e| ToolError::new(e.to_string()))?;
    let damage = report.damage.as_ref().map(ToString::to_string).or_else(|| {
        report
            .log
            .as_ref()
            .and_then(|log| log.damage.as_ref())
            .map(|d| format!("archived log: {d}"))
    });
    let (entries, receipts) = report
        .log
        .as_ref()
        .map_or((0, 0), |log| (log.entries, log.receipts));
    Ok(ArchiveVerifyOutcome {
        verdict: if damage.is_none() && report.verified() {
            "verified"
        } else {
            "damaged"
        },
        url: url.to_owned(),
        store_id: report.store_id,
        epochs: report.epochs,
        objects: report.objects,
        bytes: report.bytes,
        entries,
        receipts,
        damage,
    })
}

/// Prints the verdict for people.
pub fn print_verify_text(o: &ArchiveVerifyOutcome) {
    println!("archive         {} (store {})", o.url, o.store_id);
    println!(
        "read            {} epochs, {} objects, {}",
        o.epochs,
        o.objects,
        human_bytes(o.bytes)
    );
    match &o.damage {
        None => println!(
            "verified        {} entries, {} receipts: every object matches its manifest and the \
             archived log verifies",
            o.entries, o.receipts
        ),
        Some(damage) => println!("DAMAGED         {damage}"),
    }
}
