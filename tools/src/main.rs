//! `trailmix-db`: demo, inspect, verify and prove a trailmix-db store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};
use trailmix_db::wal::Seq;
use trailmix_tools::proofs::{self, ProveTarget};
use trailmix_tools::{ToolError, Verdict, demo, inspect, print_json, verify, write_json};

const EXIT_CODES: &str = "\
Exit codes: 0 = done / verified, 1 = damaged or tampered store, or a proof rejected,
            2 = bad usage or an I/O error (the message says which).";

/// Look inside, verify and prove a trailmix-db store: an append-only, tamper-evident log of AI
/// decision receipts (LLM calls, tool calls, policy decisions, approvals, evaluations).
///
/// A store is a directory: `wal/` holds the log, `signing.pub` the public key auditors use,
/// `keys/signing.key` the private key that signs checkpoints. Start with `trailmix-db demo`.
#[derive(Debug, Parser)]
#[command(name = "trailmix-db", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a realistic receipt workload, then checkpoint, prove, verify and read it back.
    ///
    /// Writes LLM calls, tool calls, policy decisions (some denied or escalated), human
    /// approvals and evaluations of six tenants and five models from several threads. Creates the store (and its signing key) on first use. Safe to run again: each run
    /// appends new receipts with new event ids.
    #[command(after_help = EXIT_CODES)]
    Demo {
        /// Data directory of the store (created if missing).
        #[arg(long, default_value = "./trailmix-data")]
        dir: PathBuf,
        /// Number of receipts to write.
        #[arg(long, default_value_t = 100_000)]
        receipts: u64,
        /// Threads appending at once (each keeps many receipts in flight; the single writer
        /// makes them durable in group commits).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
        /// Seed of the synthetic workload.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Size of each log segment file in bytes (for trying segment rollover).
        #[arg(long, hide = true)]
        segment_bytes: Option<u64>,
    },
    /// Show what is inside a store, one entry (--seq), or the frames of a segment (--segment).
    ///
    /// The summary lists identity, keys, segments, epochs, the latest checkpoint, and receipts
    /// by tenant, model, kind and decision. Read-only and lock-free: works while a service is writing the store. It decodes but
    /// does not check anything; `verify` does.
    #[command(after_help = EXIT_CODES)]
    Inspect {
        /// Data directory of the store.
        dir: PathBuf,
        /// Show the entry with this sequence number, decoded (receipt header and payload,
        /// chain fields, or the signed note of a checkpoint).
        #[arg(long, conflicts_with = "segment")]
        seq: Option<u64>,
        /// List the frames of this segment (0 is the first), with byte offsets.
        #[arg(long)]
        segment: Option<u64>,
        /// With --segment: frames to skip.
        #[arg(long, default_value_t = 0, requires = "segment")]
        skip: usize,
        /// With --segment: frames to show at most.
        #[arg(long, default_value_t = 50, requires = "segment")]
        limit: usize,
        /// How many tenants and models to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every checksum, hash link, Merkle root and signature of a store.
    ///
    /// Checks frame checksums, the hash chain, every tenant's chain, payload digests, Merkle
    /// roots, every checkpoint and seal signature and the chain of epoch seals. Read-only; works while a service is writing the store. Without --trusted-checkpoint,
    /// cutting off the newest (not yet checkpointed) entries or rolling the whole store back
    /// to an older copy cannot be detected: keep a checkpoint note outside the store (see
    /// `trailmix-db checkpoint`) and pass it here.
    #[command(after_help = EXIT_CODES)]
    Verify {
        /// Data directory of the store.
        dir: PathBuf,
        /// A checkpoint note of this store saved elsewhere earlier; the store must still
        /// contain exactly the history it signs.
        #[arg(long, value_name = "FILE")]
        trusted_checkpoint: Option<PathBuf>,
        /// The public key the store must be signed with: a copy of its signing.pub you trust,
        /// or the key text. Default: the key recorded in the store itself.
        #[arg(long, value_name = "VKEY_OR_FILE")]
        public_key: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the latest signed checkpoint note (keep a copy to detect rollback later).
    ///
    /// Save the note outside the store; `verify --trusted-checkpoint FILE` then detects
    /// truncation and rollback of everything it signs. Reads the log without a lock. With --new, first writes a fresh checkpoint (this needs
    /// the writer lock, so not while a service is writing the store). The note goes to stdout,
    /// a description to stderr: `trailmix-db checkpoint DIR > checkpoint.note`.
    #[command(after_help = EXIT_CODES)]
    Checkpoint {
        /// Data directory of the store.
        dir: PathBuf,
        /// Write a new signed checkpoint of the open epoch first.
        #[arg(long)]
        new: bool,
        /// Print JSON instead of the note.
        #[arg(long)]
        json: bool,
    },
    /// Write an inclusion proof that a receipt is in a signed checkpoint.
    ///
    /// The proof is JSON that anyone holding the store's public key can check offline with
    /// `verify-proof`. Opens the store for writing (it may write a checkpoint first), so not while a service
    /// is writing it.
    #[command(after_help = EXIT_CODES, group(ArgGroup::new("which").required(true).args(["seq", "event_id"])))]
    Prove {
        /// Data directory of the store.
        dir: PathBuf,
        /// Sequence number of the receipt (see `inspect --segment` or `inspect --seq`).
        #[arg(long)]
        seq: Option<u64>,
        /// Event id of the receipt (searched in the log).
        #[arg(long)]
        event_id: Option<String>,
        /// With --event-id: the tenant, when several tenants use the id.
        #[arg(long, requires = "event_id")]
        tenant: Option<String>,
        /// Write the bundle to this file instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Find receipts through the index: `query DIR tenant=acme model=gpt-4o decision=deny`.
    ///
    /// Filter keys: tenant, model (name or name@version), kind, decision, session, event,
    /// app, subject, label.KEY, since/until (event time: RFC 3339, a date, or nanoseconds),
    /// logged_since/logged_until, order (seq, -seq, time, -time), limit, cursor. Every
    /// receipt shown is read back from the log and checked. Takes the writer lock.
    #[allow(clippy::doc_markdown, reason = "clap help text, shown as written")]
    #[command(after_help = EXIT_CODES)]
    Query {
        /// Data directory of the store.
        dir: PathBuf,
        /// The filter, as key=value words.
        filter: Vec<String>,
        /// Print one JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a session's receipts as a tree of parent links (dangling parents and cycles
    /// reported). Takes the writer lock.
    #[command(after_help = EXIT_CODES)]
    Trace {
        /// Data directory of the store.
        dir: PathBuf,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The session id.
        #[arg(long)]
        session: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check an inclusion proof offline with only the public key, and show what it proves.
    #[command(name = "verify-proof", after_help = EXIT_CODES)]
    VerifyProof {
        /// The bundle written by `prove`.
        bundle: PathBuf,
        /// The store's public key: its signing.pub file or the key text, obtained from the
        /// store's owner through a channel you trust (never from the bundle).
        #[arg(long, value_name = "VKEY_OR_FILE")]
        public_key: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistency proof between two checkpoints of one epoch.
    ///
    /// It shows that the newer tree extends the older one, so nothing signed earlier was
    /// changed or removed. Opens the store for writing, so not while a service is writing it.
    #[command(after_help = EXIT_CODES)]
    Consistency {
        /// Data directory of the store.
        dir: PathBuf,
        /// The older checkpoint note (from `trailmix-db checkpoint`).
        #[arg(long, value_name = "NOTE_FILE")]
        from: PathBuf,
        /// The newer checkpoint note.
        #[arg(long, value_name = "NOTE_FILE")]
        to: PathBuf,
        /// Write the bundle to this file instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check a consistency proof offline with only the public key.
    #[command(name = "verify-consistency", after_help = EXIT_CODES)]
    VerifyConsistency {
        /// The bundle written by `consistency`.
        bundle: PathBuf,
        /// The store's public key: its signing.pub file or the key text.
        #[arg(long, value_name = "VKEY_OR_FILE")]
        public_key: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn show<T: serde::Serialize>(value: &T, json: bool, text: fn(&T)) -> Result<(), ToolError> {
    if json {
        print_json(value)
    } else {
        text(value);
        Ok(())
    }
}

fn checked(verified: bool) -> Verdict {
    if verified {
        Verdict::Ok
    } else {
        Verdict::Damaged
    }
}

fn inspect(
    dir: &Path,
    seq: Option<u64>,
    segment: Option<u64>,
    (skip, limit, top): (usize, usize, usize),
    json: bool,
) -> Result<Verdict, ToolError> {
    match (seq, segment) {
        (Some(seq), _) => show(
            &inspect::entry_detail(dir, Seq(seq))?,
            json,
            inspect::print_entry,
        )?,
        (None, Some(segment)) => show(
            &inspect::segment_frames(dir, segment, skip, limit)?,
            json,
            inspect::print_frames,
        )?,
        (None, None) => show(&inspect::summary(dir, top)?, json, inspect::print_summary)?,
    }
    Ok(Verdict::Ok)
}

fn checkpoint(dir: &Path, new: bool, json: bool) -> Result<Verdict, ToolError> {
    let note = if new {
        proofs::new_checkpoint(dir)?
    } else {
        proofs::latest_checkpoint(dir)?
    };
    if json {
        print_json(&note)?;
    } else {
        proofs::print_checkpoint(&note, new);
    }
    Ok(Verdict::Ok)
}

fn prove(dir: &Path, target: &ProveTarget, output: Option<&Path>) -> Result<Verdict, ToolError> {
    let bundle = proofs::prove(dir, target)?;
    write_json(&bundle, output)?;
    if let Some(path) = output {
        eprintln!(
            "wrote the inclusion proof of seq {} (epoch {}, {} hashes) to {}; check it with:\n  trailmix-db verify-proof {} --public-key {}",
            bundle.seq,
            bundle.epoch,
            bundle.path.len(),
            path.display(),
            path.display(),
            dir.join(trailmix_db::keys::PUBLIC_KEY_FILE).display()
        );
    }
    Ok(Verdict::Ok)
}

fn consistency(
    dir: &Path,
    from: &Path,
    to: &Path,
    output: Option<&Path>,
) -> Result<Verdict, ToolError> {
    let bundle = proofs::consistency(dir, from, to)?;
    write_json(&bundle, output)?;
    if let Some(path) = output {
        eprintln!(
            "wrote the consistency proof ({} hashes) to {}",
            bundle.path.len(),
            path.display()
        );
    }
    Ok(Verdict::Ok)
}

fn run(cli: Cli) -> Result<Verdict, ToolError> {
    match cli.command {
        Command::Demo {
            dir,
            receipts,
            threads,
            seed,
            segment_bytes,
        } => {
            let options = demo::DemoOptions {
                receipts,
                threads: usize::from(threads),
                seed,
                segment_bytes,
            };
            let report = demo::run(&dir, &options)?;
            Ok(checked(report.verified && report.proof_verified))
        }
        Command::Inspect {
            dir,
            seq,
            segment,
            skip,
            limit,
            top,
            json,
        } => inspect(&dir, seq, segment, (skip, limit, top), json),
        Command::Verify {
            dir,
            trusted_checkpoint,
            public_key,
            json,
        } => {
            let args = verify::VerifyArgs {
                trusted_checkpoint,
                public_key,
            };
            let outcome = verify::run(&dir, &args)?;
            show(&outcome, json, verify::print_text)?;
            Ok(outcome.exit())
        }
        Command::Checkpoint { dir, new, json } => checkpoint(&dir, new, json),
        Command::Prove {
            dir,
            seq,
            event_id,
            tenant,
            output,
        } => {
            let target = match (seq, event_id) {
                (Some(seq), _) => ProveTarget::Seq(seq),
                (None, Some(event_id)) => ProveTarget::Event { event_id, tenant },
                (None, None) => return Err(ToolError::new("give --seq or --event-id")),
            };
            prove(&dir, &target, output.as_deref())
        }
        Command::Query { dir, filter, json } => {
            trailmix_tools::search::query(&dir, &filter, json).map(|()| Verdict::Ok)
        }
        Command::Trace {
            dir,
            tenant,
            session,
            json,
        } => trailmix_tools::search::trace(&dir, &tenant, &session, json).map(|()| Verdict::Ok),
        Command::VerifyProof {
            bundle,
            public_key,
            json,
        } => {
            let check = proofs::verify_proof(&bundle, &public_key)?;
            show(&check, json, proofs::print_inclusion)?;
            Ok(checked(check.verified()))
        }
        Command::Consistency {
            dir,
            from,
            to,
            output,
        } => consistency(&dir, &from, &to, output.as_deref()),
        Command::VerifyConsistency {
            bundle,
            public_key,
            json,
        } => {
            let check = proofs::verify_consistency(&bundle, &public_key)?;
            show(&check, json, proofs::print_consistency)?;
            Ok(checked(check.verified()))
        }
    }
}

/// A closed stdout (`trailmix-db inspect DIR | head`) makes `println!` panic; end quietly with
/// the I/O-error exit code instead of printing a panic.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.contains("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(Verdict::Failed as i32);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    let verdict = match run(Cli::parse()) {
        Ok(verdict) => verdict,
        Err(err) => {
            eprintln!("error: {err}");
            Verdict::Failed
        }
    };
    ExitCode::from(verdict as u8)
}
