//! The library behind the `trailmix-db` command-line tool; `main.rs` only parses arguments.
//!
//! Every command is a function here that returns a serialisable report (what `--json`
//! prints) and has a printer for people:
//!
//! - [`demo`]: writes a realistic receipt workload through the engine ([`trailmix_db::Db`]),
//!   checkpoints, proves, verifies and reads back.
//! - [`inspect`]: what is inside a store, down to single entries and frames. Read-only: it
//!   reads the log directly, so it works while a service holds the writer lock.
//! - [`verify`]: [`trailmix_db::verify_store`] with a clear verdict.
//! - [`proofs`]: signed checkpoints, inclusion and consistency proofs, and their offline
//!   checks with nothing but the public key.
//! - [`search`]: `query` and `trace` through the index (they take the writer lock).
//! - [`tail`]: receipts in log order, and with `--follow` new ones as they become durable.
//!   Read-only and lock-free, like `inspect`.
//! - [`load`]: a load generator over the demo's workload: throughput, append latency
//!   percentiles, index lag.
//! - [`import`]: SDK events from JSON lines, validated line by line, idempotent.
//! - [`interop`]: the history of Python audit-trail libraries, verified against its own
//!   chain before anything is written.
//!
//! Exit codes are part of the interface: see [`Verdict`].

use std::fmt;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use trailmix_db::note::NoteVerifier;

pub mod archive;
pub mod compact;
pub mod demo;
pub mod erasure;
pub mod import;
pub mod inspect;
pub mod interop;
pub mod load;
pub mod pack;
pub mod proofs;
pub mod prune;
pub mod scan;
pub mod search;
pub mod tail;
pub mod timestamp;
pub mod verify;
pub mod witness;
mod workload;

/// How the process ends; the numbers are part of the tool's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The command did what was asked; for `verify` and the proof checks: verified. Exit 0.
    Ok = 0,
    /// The store is damaged or tampered with, a proof was rejected, or an import stopped at a
    /// bad line. Exit code 1.
    Damaged = 1,
    /// Bad usage or an I/O error stopped the command. Exit code 2.
    Failed = 2,
}

/// An error that stops a command: what went wrong, when there is one what to do next, and
/// the exit code it ends with (2, or 1 when what stopped it is damage in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    /// What went wrong.
    pub message: String,
    /// What to do next.
    pub hint: Option<String>,
    /// How the process ends: [`Verdict::Failed`], or [`Verdict::Damaged`] for damage found in
    /// the store.
    pub verdict: Verdict,
}

impl ToolError {
    /// An error with a message only (exit code 2).
    #[must_use]
    pub fn new(message: impl Into<String>) -> ToolError {
        ToolError {
            message: message.into(),
            hint: None,
            verdict: Verdict::Failed,
        }
    }

    /// Damage found in the store stopped the command (exit code 1, as for `verify`).
    #[must_use]
    pub fn damaged(message: impl Into<String>) -> ToolError {
        ToolError {
            verdict: Verdict::Damaged,
            ..ToolError::new(message)
        }
    }

    /// Adds a hint.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> ToolError {
        self.hint = Some(hint.into());
        self
    }

    /// An engine error met while working on the store in `data_dir`, with a hint for the
    /// common cases (no store there, writer lock held).
    #[must_use]
    pub fn store(data_dir: &Path, err: &trailmix_db::Error) -> ToolError {
        match err {
            trailmix_db::Error::Wal(wal) => ToolError::wal(data_dir, wal),
            trailmix_db::Error::Damaged { .. } => {
                ToolError::damaged(err.to_string()).hint(format!(
                    "run `trailmix-db verify {}` for a full report",
                    data_dir.display()
                ))
            }
            // Not damage (exit 2, not 1): the store is fine, this build is too old for it.
            trailmix_db::Error::Unsupported { .. } => ToolError::new(err.to_string()).hint(
                "a newer build of trailmix-db wrote this entry: read the store with that build \
                 or a later one",
            ),
            other => ToolError::new(other.to_string()),
        }
    }

    /// A log error met while reading the store in `data_dir`.
    #[must_use]
    pub fn wal(data_dir: &Path, err: &trailmix_db::wal::Error) -> ToolError {
        use trailmix_db::wal::Error as W;
        match err {
            W::Missing { .. } if !data_dir.exists() => {
                ToolError::new(format!("{} does not exist", data_dir.display())).hint(
                    "check the path (a store is the directory that holds wal/ and signing.pub); \
                     `trailmix-db demo --dir DIR` creates a store with sample data",
                )
            }
            W::Missing { .. } => ToolError::new(format!(
                "{} is not a trailmix-db store: it has no {}/ log directory",
                data_dir.display(),
                trailmix_db::WAL_DIR
            ))
            .hint(
                "give the store's own directory (the one that holds wal/ and signing.pub); \
                 `trailmix-db demo --dir DIR` creates a store with sample data",
            ),
            W::Locked { .. } => ToolError::new(format!(
                "the store at {} is open for writing in another process (it holds the writer lock)",
                data_dir.display()
            ))
            .hint(
                "this command writes to the store; stop the writer first, or use a read-only \
                 command (inspect, verify, query, trace, tail, checkpoint without --new)",
            ),
            W::Corrupted { .. } => ToolError::damaged(err.to_string()).hint(format!(
                "run `trailmix-db verify {}` for a full report",
                data_dir.display()
            )),
            other => ToolError::new(other.to_string()),
        }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ToolError {}

/// Result alias of the tool's functions.
pub type ToolResult<T> = Result<T, ToolError>;

/// Where a data directory keeps its log.
#[must_use]
pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(trailmix_db::WAL_DIR)
}

/// Reads a text file, with an error that names it.
///
/// # Errors
/// [`ToolError`] naming the file and the I/O error.
pub fn read_text(path: &Path, what: &str) -> ToolResult<String> {
    std::fs::read_to_string(path)
        .map_err(|e| ToolError::new(format!("cannot read {what} {}: {e}", path.display())))
}

/// A public (verifier) key given on the command line: the key text itself
/// (`<name>+<key id>+<base64>`, as in `signing.pub`) or the path of a file holding it.
/// Returns the verifier and where it came from.
///
/// # Errors
/// [`ToolError`] when the argument is neither a readable file nor a valid key.
pub fn load_public_key(arg: &str) -> ToolResult<(NoteVerifier, String)> {
    let path = Path::new(arg);
    let (text, source) = if path.is_file() {
        (
            read_text(path, "public key file")?,
            path.display().to_string(),
        )
    } else {
        (arg.to_owned(), "the command line".to_owned())
    };
    match NoteVerifier::from_vkey(text.trim()) {
        Ok(verifier) => Ok((verifier, source)),
        Err(err) => Err(ToolError::new(format!(
            "{arg:?} is not a public key ({err}) nor a file holding one"
        ))
        .hint(
            "pass the store's signing.pub file, or its one line of text \
             (`<name>+<key id>+<base64 key>`)",
        )),
    }
}

/// Prints `value` as pretty JSON on stdout.
///
/// # Errors
/// [`ToolError`] when it cannot be encoded.
pub fn print_json(value: &impl serde::Serialize) -> ToolResult<()> {
    println!("{}", json_text(value)?);
    Ok(())
}

/// Writes `value` as pretty JSON to `output`, or to stdout when `None`.
///
/// # Errors
/// [`ToolError`] when it cannot be encoded or the file cannot be written.
pub fn write_json(value: &impl serde::Serialize, output: Option<&Path>) -> ToolResult<()> {
    let text = json_text(value)?;
    if let Some(path) = output {
        std::fs::write(path, format!("{text}\n"))
            .map_err(|e| ToolError::new(format!("cannot write {}: {e}", path.display())))
    } else {
        println!("{text}");
        Ok(())
    }
}

fn json_text(value: &impl serde::Serialize) -> ToolResult<String> {
    serde_json::to_string_pretty(value)
        .map_err(|e| ToolError::new(format!("cannot encode JSON: {e}")))
}

/// A flag that turns true on the first SIGINT (Ctrl-C) or SIGTERM, for commands that stop
/// cleanly (finish the line, drain what is in flight, print their report). A second signal
/// while the flag is set ends the process at once with the usual exit status (130 for SIGINT,
/// 143 for SIGTERM).
///
/// # Errors
/// [`ToolError`] when the handlers cannot be installed.
pub fn stop_on_signals() -> ToolResult<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for (signal, status) in [(SIGINT, 130), (SIGTERM, 143)] {
        signal_hook::flag::register_conditional_shutdown(signal, status, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .map_err(|e| ToolError::new(format!("cannot install a signal handler: {e}")))?;
    }
    Ok(stop)
}

/// Waits up to `timeout`; returns early with `true` when stdout is a pipe or socket whose
/// reader has gone (so a follower ends with `| head` even while it has nothing to write), and
/// early with `false` when a signal arrives.
#[must_use]
pub fn wait_watching_stdout(timeout: Duration) -> bool {
    #[cfg(unix)]
    {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let stdout = std::io::stdout();
        let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
        let timeout = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(_) => false,
            Ok(_) => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
        }
    }
    #[cfg(not(unix))]
    {
        std::thread::sleep(timeout);
        false
    }
}

/// Tells the user (on stderr, beside the results) when a read-only open answers from an index
/// it rebuilt from the log because the store's own needs a writer's repair.
pub fn note_index_source(store: &trailmix_db::ReadOnlyStore) {
    if let trailmix_db::IndexSource::RebuiltFromLog { reason, entries } = store.index_source() {
        eprintln!(
            "note: {reason}. These results come from an index this command rebuilt from the \
             log's {entries} entries (results are checked against the log as always). The \
             service that writes the store repairs its index when it next opens it; with none \
             running, `trailmix-db checkpoint {} --new` does.",
            store.data_dir().display()
        );
    }
}

/// Tells the user (on stderr) when a read-only open has a key store it cannot open, so that
/// payloads shown without a key come with the cause (a key-encryption key file that others may
/// read is refused, for one).
pub fn note_payload_keys(store: &trailmix_db::ReadOnlyStore) {
    if let Some(problem) = store.payload_keys_problem() {
        eprintln!(
            "note: encrypted payloads cannot be decrypted here, so they show without a key: \
             {problem}"
        );
    }
}

/// Lower-case hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Standard base64 (as in checkpoint notes).
#[must_use]
pub fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Formats a byte count for people (KiB, MiB, GiB with one decimal).
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration for people: `1.20 s`, `3.40 ms`, `812 µs`.
#[must_use]
pub fn human_seconds(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if seconds >= 1e-3 {
        format!("{:.2} ms", seconds * 1e3)
    } else {
        format!("{:.0} µs", seconds * 1e6)
    }
}

/// A count with thousands separators: `1,234,567`.
#[must_use]
pub fn human_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A rate per second for people: `350 /s`, `12.5 k/s`, `1.10 M/s`.
#[must_use]
pub fn human_rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2} M/s", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.1} k/s", per_second / 1e3)
    } else {
        format!("{per_second:.0} /s")
    }
}

/// A rate of `what` per second for people: `12.5 k receipts/s`.
#[must_use]
pub fn human_rate_of(per_second: f64, what: &str) -> String {
    let rate = human_rate(per_second);
    match rate.strip_suffix("/s") {
        Some(number) => format!("{} {what}/s", number.trim_end()),
        None => rate,
    }
}

/// A time in nanoseconds since the Unix epoch, as RFC 3339 UTC with milliseconds.
#[must_use]
pub fn rfc3339_ns(ns: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Colours for the verdict words, only when stdout is a terminal and `NO_COLOR` is unset.
#[derive(Debug, Clone, Copy)]
pub enum Paint {
    /// Green.
    Good,
    /// Red.
    Bad,
    /// Yellow.
    Warn,
    /// Bold.
    Strong,
}

/// `text` in colour `paint` when stdout is a terminal (and `NO_COLOR` is not set).
#[must_use]
pub fn paint(text: &str, paint: Paint) -> String {
    if std::env::var_os("NO_COLOR").is_some() || !std::io::stdout().is_terminal() {
        return text.to_owned();
    }
    let code = match paint {
        Paint::Good => "1;32",
        Paint::Bad => "1;31",
        Paint::Warn => "33",
        Paint::Strong => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::{
        ToolError, Verdict, human_bytes, human_count, human_rate, human_rate_of, human_seconds,
    };

    /// An entry a newer build wrote is not damage: exit 2 with a hint, where damage is exit 1.
    #[test]
    fn unsupported_entries_are_not_reported_as_damage() {
        let dir = std::path::Path::new("store");
        let seq = trailmix_db::wal::Seq(7);
        let newer = ToolError::store(
            dir,
            &trailmix_db::Error::Unsupported {
                seq,
                what: "entry version 4".into(),
            },
        );
        assert_eq!(newer.verdict, Verdict::Failed);
        assert!(newer.message.contains("needs a newer build"), "{newer}");
        assert!(newer.hint.is_some_and(|h| h.contains("newer build")));
        let damaged = ToolError::store(
            dir,
            &trailmix_db::Error::Damaged {
                seq,
                detail: "bad".into(),
            },
        );
        assert_eq!(damaged.verdict, Verdict::Damaged);
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_count(0), "0");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(1000), "1,000");
        assert_eq!(human_count(1_234_567), "1,234,567");
        assert_eq!(human_rate(350.0), "350 /s");
        assert_eq!(human_rate(12_500.0), "12.5 k/s");
        assert_eq!(human_rate(1_100_000.0), "1.10 M/s");
        assert_eq!(human_rate_of(12_500.0, "receipts"), "12.5 k receipts/s");
        assert_eq!(human_rate_of(350.0, "entries"), "350 entries/s");
        assert_eq!(human_seconds(12.345), "12.35 s");
        assert_eq!(human_seconds(0.004_967), "4.97 ms");
        assert_eq!(human_seconds(0.000_812), "812 µs");
    }
}
