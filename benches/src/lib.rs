//! Benchmark support for trailmix-db: the workloads, the baselines they are compared with,
//! and the reader behind the `bench-report` table.
//!
//! The criterion benchmarks live in `benches/benches/`; this library holds what they share so
//! that every side of a comparison runs on the same data with the same framing:
//!
//! - [`data`]: deterministic payloads (incompressible), [`realistic`]: SDK-event-like JSON
//!   payloads with text (compressible), for the disk-size measurements,
//! - [`append_latency`]: durable append latency at half of peak throughput, and its table,
//! - [`rigs`]: the trailmix WAL and the plain ceiling (buffered `write` + `fdatasync` of the
//!   same framed bytes), behind one [`rigs::DurableLog`] trait,
//! - [`ids`]: the benchmark ids, shared by the benchmarks and the report,
//! - [`receipts`]: the receipts of the engine benchmarks (built before the timed section),
//! - [`paired`]: the same comparisons run in alternating blocks, for ratios that survive a
//!   noisy disk,
//! - [`query_data`], [`query_rigs`], [`query_report`]: the query benchmark's seeded data and
//!   queries, its redb-direct and `SQLite` rigs, and its latency results file,
//! - [`store_report`], [`proc_stats`]: the results files of the proof, open / recovery and
//!   peak-memory benchmarks and their tables, and the process memory figures the last one
//!   reads,
//! - [`report`]: reads criterion's `estimates.json` files (and the paired results) and renders
//!   the ratio tables.
//!
//! Run everything with `cargo bench -p trailmix-benches`, a smoke run with
//! `cargo bench -p trailmix-benches -- --quick`, then `cargo run -p trailmix-benches --bin
//! bench-report`. `docs/performance.md` keeps the latest table.

pub mod append_latency;
pub mod data;
pub mod dict_corpus;
pub mod ids;
pub mod paired;
pub mod proc_stats;
pub mod query_data;
pub mod query_report;
pub mod query_rigs;
pub mod query_trailmix;
pub mod realistic;
pub mod receipts;
pub mod report;
pub mod rigs;
pub mod store_report;

use std::path::{Path, PathBuf};

/// Environment variable that overrides where benchmark files are written.
pub const SCRATCH_ENV: &str = "TRAILMIX_BENCH_DIR";

/// The directory benchmark files go under: `$TRAILMIX_BENCH_DIR` when set, else `default`
/// (the benchmarks pass cargo's target tmp dir, which is on the same disk as the repo).
#[must_use]
pub fn scratch_root(default: &Path) -> PathBuf {
    std::env::var_os(SCRATCH_ENV).map_or_else(|| default.to_path_buf(), PathBuf::from)
}

/// Where criterion keeps its results when run by `cargo bench`: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `criterion` beside cargo's target tmp dir
/// (`target_tmpdir`, the benchmark's `CARGO_TARGET_TMPDIR`).
#[must_use]
pub fn criterion_dir(target_tmpdir: &Path) -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    target_tmpdir
        .parent()
        .map_or_else(|| target_tmpdir.join("criterion"), |t| t.join("criterion"))
}
