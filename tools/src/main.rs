//! `trailmix-db`: inspect, verify and demo a trailmix-db store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trailmix_db::wal::{SegmentNo, Seq};
use trailmix_tools::{Verdict, demo, inspect, verify};

/// Inspect, verify and demo a trailmix-db store (an append-only, crash-safe log of AI decision
/// receipts).
#[derive(Debug, Parser)]
#[command(name = "trailmix-db", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a realistic receipt workload into a store, verify it and read it back.
    ///
    /// Safe to run again: each run appends to the same store.
    Demo {
        /// Data directory of the store (created if missing).
        #[arg(long, default_value = "./trailmix-data")]
        dir: PathBuf,
        /// Number of receipts to write.
        #[arg(long, default_value_t = 200_000)]
        receipts: u64,
        /// Receipts per durable group commit.
        #[arg(long, default_value_t = 512)]
        batch: u64,
    },
    /// Show what is inside a store: format, identity, segments, frames, single records.
    ///
    /// Read-only; works while a service is writing the store.
    Inspect {
        /// Data directory of the store.
        dir: PathBuf,
        /// List the frames of this segment instead of the summary.
        #[arg(long, conflicts_with = "seq")]
        segment: Option<u64>,
        /// Show this record (by sequence number) instead of the summary.
        #[arg(long)]
        seq: Option<u64>,
        /// With --segment: frames to skip.
        #[arg(long, default_value_t = 0)]
        skip: usize,
        /// With --segment: frames to show at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every frame checksum, sequence number and seal of a store.
    ///
    /// Exit codes: 0 verified, 1 damaged or tampered, 2 usage or I/O error.
    Verify {
        /// Data directory of the store.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn print_json(value: &impl serde::Serialize) -> Verdict {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            Verdict::Ok
        }
        Err(err) => {
            eprintln!("error: cannot encode JSON: {err}");
            Verdict::Failed
        }
    }
}

fn fail(err: &impl std::fmt::Display) -> Verdict {
    eprintln!("error: {err}");
    Verdict::Failed
}

fn run(cli: Cli) -> Verdict {
    match cli.command {
        Command::Demo {
            dir,
            receipts,
            batch,
        } => {
            let options = demo::DemoOptions {
                receipts,
                batch_records: batch,
                ..demo::DemoOptions::default()
            };
            match demo::run(&dir, &options) {
                Ok(report) if report.verified => Verdict::Ok,
                Ok(_) => Verdict::Damaged,
                Err(err) => fail(&err),
            }
        }
        Command::Inspect {
            dir,
            segment: Some(segment),
            skip,
            limit,
            json,
            ..
        } => match inspect::segment_frames(&dir, SegmentNo(segment), skip, limit) {
            Ok(frames) if json => print_json(&frames),
            Ok(frames) => {
                inspect::print_frames(&frames);
                Verdict::Ok
            }
            Err(err) => fail(&err),
        },
        Command::Inspect {
            dir,
            seq: Some(seq),
            json,
            ..
        } => match inspect::record(&dir, Seq(seq)) {
            Ok(record) if json => print_json(&record),
            Ok(record) => {
                inspect::print_record(&record);
                Verdict::Ok
            }
            Err(err) => fail(&err),
        },
        Command::Inspect { dir, json, .. } => match inspect::summary(&dir) {
            Ok(summary) if json => print_json(&summary),
            Ok(summary) => {
                inspect::print_summary(&summary);
                Verdict::Ok
            }
            Err(err) => fail(&err),
        },
        Command::Verify { dir, json } => {
            let outcome = verify::run(&dir);
            if json {
                print_json(&outcome);
            } else {
                verify::print_text(&dir, &outcome);
            }
            outcome.exit()
        }
    }
}

fn main() -> ExitCode {
    let verdict = run(Cli::parse());
    ExitCode::from(verdict as u8)
}
