//! `trailmix-db verify DIR`: checks every frame of the store's log.

use std::path::Path;

use serde::Serialize;
use trailmix_db::wal::{Error, WalReader};

use crate::{Verdict, wal_dir};

/// The result of a verification, as printed with `--json`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerifyOutcome {
    /// `verified`, `damaged` or `failed`.
    pub verdict: &'static str,
    /// Segments checked.
    pub segments: usize,
    /// Records checked.
    pub records: u64,
    /// Bytes of unacknowledged torn tail that the next writer open will erase.
    pub torn_tail_bytes: u64,
    /// The first bad place, or the error that stopped the check.
    pub problem: Option<String>,
}

impl VerifyOutcome {
    /// The process exit verdict.
    #[must_use]
    pub fn exit(&self) -> Verdict {
        match self.verdict {
            "verified" => Verdict::Ok,
            "damaged" => Verdict::Damaged,
            _ => Verdict::Failed,
        }
    }
}

/// Verifies the store in `data_dir` without modifying it.
#[must_use]
pub fn run(data_dir: &Path) -> VerifyOutcome {
    let failed = |verdict, problem: String| VerifyOutcome {
        verdict,
        segments: 0,
        records: 0,
        torn_tail_bytes: 0,
        problem: Some(problem),
    };
    let reader = match WalReader::open(wal_dir(data_dir)) {
        Ok(reader) => reader,
        Err(err) => return failed(classify(&err), err.to_string()),
    };
    match reader.verify() {
        Ok(report) => VerifyOutcome {
            verdict: "verified",
            segments: report.segments,
            records: report.records.0,
            torn_tail_bytes: report.torn_tail_bytes,
            problem: None,
        },
        Err(err) => VerifyOutcome {
            segments: reader.segments().len(),
            ..failed(classify(&err), err.to_string())
        },
    }
}

fn classify(err: &Error) -> &'static str {
    match err {
        Error::Corrupted { .. }
        | Error::ForeignSegment { .. }
        | Error::Truncated { .. }
        | Error::BadMeta { .. } => "damaged",
        _ => "failed",
    }
}

/// Prints the outcome for people.
pub fn print_text(data_dir: &Path, outcome: &VerifyOutcome) {
    match outcome.verdict {
        "verified" => {
            println!(
                "VERIFIED  {}: {} records in {} segment(s); every frame checksum, sequence number and seal is intact",
                data_dir.display(),
                outcome.records,
                outcome.segments
            );
            if outcome.torn_tail_bytes > 0 {
                println!(
                    "note: {} bytes of torn, never-acknowledged tail follow the last record; the next writer open erases them",
                    outcome.torn_tail_bytes
                );
            }
        }
        "damaged" => println!(
            "DAMAGED   {}: {}",
            data_dir.display(),
            outcome.problem.as_deref().unwrap_or("unknown")
        ),
        _ => println!(
            "FAILED    {}: {}",
            data_dir.display(),
            outcome.problem.as_deref().unwrap_or("unknown")
        ),
    }
}
