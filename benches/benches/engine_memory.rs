//! Peak memory of ingest: the peak resident set of a process that ingests N receipts through
//! trailmix-db (`Db::append`, each window of 10k waited durable and indexed), redb and
//! `SQLite`, each rig in a fresh child process (this binary run again), in the same run.
//!
//! The child makes the query benchmark's data set (`trailmix_benches::query_data`, the same
//! for every rig; its compact headers take 32 bytes a receipt), notes its resident size
//! (`before`), loads the data through the rig (`query_rigs::RedbRig::load`,
//! `SqliteRig::load`, `query_trailmix::TrailmixRig::load_unmapped`: the same windows of 10k
//! rows, made before each window's timed section), closes the store and reads its peak
//! resident size (`VmHWM` from `/proc/self/status`, the figure `getrusage`'s `ru_maxrss`
//! gives), plus the peaks of the anonymous and file-backed parts sampled every 5 ms. Each
//! rig uses its defaults: redb's page cache may grow to 1 GiB, `SQLite`'s is 2 MB (the OS
//! caches its file outside the process), trailmix-db maps its 64 MiB log segments (their
//! touched pages count as file-backed resident memory) and keeps its own caches.
//!
//! Not a criterion benchmark (nothing is timed but the load, reported for context): the
//! figures go to `<criterion dir>/trailmix-memory.json` for `bench-report`.
//!
//! Sizes: 1 M receipts; 50k with `--quick` (or `TRAILMIX_BENCH_QUICK=1`); 5k when run as a
//! test; `$TRAILMIX_MEMORY_RECEIPTS` to change it. Positional filters select rig ids
//! (`engine_memory/redb`) as plain substrings.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use trailmix_benches::paired::filters_match;
use trailmix_benches::proc_stats::{self, Sampler};
use trailmix_benches::query_data::{self, Dataset};
use trailmix_benches::query_rigs::{
    QueryRig, REDB_RIG, RedbRig, SQLITE_RIG, SqliteRig, TRAILMIX_RIG,
};
use trailmix_benches::query_trailmix::TrailmixRig;
use trailmix_benches::rigs::{BoxError, settle};
use trailmix_benches::store_report::{self, MemoryFigures, MemoryResults};
use trailmix_benches::{criterion_dir, ids, scratch_root};

const QUICK_RECEIPTS: usize = 50_000;
const FULL_RECEIPTS: usize = 1_000_000;
const TEST_RECEIPTS: usize = 5_000;
const RECEIPTS_ENV: &str = "TRAILMIX_MEMORY_RECEIPTS";
/// Set in the child process: the rig to load; the directory and size follow.
const CHILD_ENV: &str = "TRAILMIX_MEMORY_CHILD";
const CHILD_DIR_ENV: &str = "TRAILMIX_MEMORY_CHILD_DIR";
const CHILD_RECEIPTS_ENV: &str = "TRAILMIX_MEMORY_CHILD_RECEIPTS";
/// How often the child samples its anonymous and file-backed resident sizes.
const SAMPLE_PERIOD: Duration = Duration::from_millis(5);
const RIGS: [&str; 3] = [TRAILMIX_RIG, REDB_RIG, SQLITE_RIG];

fn args() -> Vec<String> {
    std::env::args().skip(1).collect()
}

fn bench_mode() -> bool {
    args().iter().any(|a| a == "--bench")
}

fn quick() -> bool {
    args().iter().any(|a| a == "--quick")
        || !bench_mode()
        || std::env::var_os("TRAILMIX_BENCH_QUICK").is_some_and(|v| v != "0")
}

fn env_count(name: &str) -> Result<Option<usize>, BoxError> {
    match std::env::var(name) {
        Ok(text) => text
            .replace('_', "")
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| format!("{name}={text} is not a positive number").into()),
        Err(_) => Ok(None),
    }
}

fn receipt_count() -> Result<usize, BoxError> {
    Ok(env_count(RECEIPTS_ENV)?.unwrap_or(if !bench_mode() {
        TEST_RECEIPTS
    } else if quick() {
        QUICK_RECEIPTS
    } else {
        FULL_RECEIPTS
    }))
}

fn id(rig: &str) -> String {
    ids::job_rig(ids::ENGINE_MEMORY_GROUP, "", rig)
}

/// The child: make the data, load it through `rig`, close, print the figures as JSON.
fn child(rig: &str) -> Result<(), BoxError> {
    let dir = PathBuf::from(std::env::var(CHILD_DIR_ENV)?);
    let n = env_count(CHILD_RECEIPTS_ENV)?.ok_or("no receipt count")?;
    let data = Dataset::generate(n, query_data::SEED);
    let before = proc_stats::status()?.rss_kib;
    let sampler = Sampler::start(SAMPLE_PERIOD)?;
    let store: Box<dyn QueryRig> = match rig {
        TRAILMIX_RIG => Box::new(TrailmixRig::load_unmapped(&dir, &data)?),
        REDB_RIG => Box::new(RedbRig::load(&dir, &data)?),
        SQLITE_RIG => Box::new(SqliteRig::load(&dir, &data)?),
        other => return Err(format!("unknown rig {other}").into()),
    };
    let load = store.load_stats().ok_or("the rig measured no load")?;
    drop(store);
    let peaks = sampler.finish()?;
    let figures = MemoryFigures {
        receipts: n as u64,
        load_seconds: load.elapsed.as_secs_f64(),
        before_kib: before,
        peak_kib: proc_stats::status()?.hwm_kib,
        anon_peak_kib: peaks.anon_kib,
        file_peak_kib: peaks.file_kib,
    };
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

/// Runs the child for `rig` in `dir`; returns its figures.
fn measure(rig: &str, dir: &Path, n: usize) -> Result<MemoryFigures, BoxError> {
    let output = Command::new(std::env::current_exe()?)
        .env(CHILD_ENV, rig)
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_RECEIPTS_ENV, n.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("the {rig} child failed ({})", output.status).into());
    }
    let text = String::from_utf8(output.stdout)?;
    let line = text.lines().last().ok_or("the child printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

#[allow(clippy::cast_precision_loss, reason = "sizes for display")]
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn run() -> Result<(), BoxError> {
    let wanted: Vec<&str> = RIGS
        .into_iter()
        .filter(|rig| filters_match(&id(rig)))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let n = receipt_count()?;
    let root = scratch_root(Path::new(env!("CARGO_TARGET_TMPDIR"))).join("engine_memory");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let mut results = MemoryResults {
        receipts: n as u64,
        quick: quick(),
        ..MemoryResults::default()
    };
    let started = Instant::now();
    for rig in wanted {
        let dir = root.join(rig);
        let measured = measure(rig, &dir, n);
        // The store goes whether or not the child succeeded.
        let _ = std::fs::remove_dir_all(&dir);
        settle(&root)?;
        let m = measured?;
        eprintln!(
            "engine_memory {rig}: {n} receipts, peak RSS {:.1} MiB (before {:.1} MiB, \
             +{:.1} MiB), anon peak {:.1} MiB, file-backed peak {:.1} MiB, ingest {:.1} s",
            mib(m.peak_kib),
            mib(m.before_kib),
            mib(m.increase_kib()),
            mib(m.anon_peak_kib),
            mib(m.file_peak_kib),
            m.load_seconds
        );
        results.rigs.insert(rig.to_string(), m);
    }
    eprintln!("engine_memory: measured in {:.1?}", started.elapsed());
    if bench_mode() {
        let dir = criterion_dir(Path::new(env!("CARGO_TARGET_TMPDIR")));
        match store_report::save_memory(&dir, &results) {
            Ok(()) => eprintln!(
                "engine_memory: results saved to {}",
                dir.join(store_report::MEMORY_FILE).display()
            ),
            Err(err) => eprintln!("engine_memory: could not save results: {err}"),
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

fn main() -> ExitCode {
    if let Ok(rig) = std::env::var(CHILD_ENV) {
        return match child(&rig) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("engine_memory child ({rig}): {err}");
                ExitCode::FAILURE
            }
        };
    }
    if args().iter().any(|a| a == "--list") {
        for rig in RIGS {
            println!("{}: benchmark", id(rig));
        }
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("engine_memory failed: {err}");
            ExitCode::FAILURE
        }
    }
}
