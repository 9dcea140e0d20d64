//! The library behind the `trailmix-db` command-line tool; `main.rs` only parses arguments.
//!
//! Today the tool works at the write-ahead-log level: `demo` writes and checks a store,
//! `inspect` shows its segments, frames and records, `verify` checks every frame. Receipt-level
//! commands (queries, proofs, evidence packs) arrive with the engine.

use std::path::{Path, PathBuf};

pub mod demo;
pub mod inspect;
pub mod verify;

/// Name of the log directory inside a store's data directory.
pub const WAL_DIR_NAME: &str = "wal";

/// Where a data directory keeps its log.
#[must_use]
pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(WAL_DIR_NAME)
}

/// How the process ends; the numbers are part of the tool's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The command did what was asked; for `verify`: the store verified. Exit code 0.
    Ok = 0,
    /// `verify` found damage or tampering. Exit code 1.
    Damaged = 1,
    /// Bad usage or an I/O error stopped the command. Exit code 2.
    Failed = 2,
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

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
