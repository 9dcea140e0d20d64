//! Open and recovery time: how long `Db::open` takes on a store of N receipts, closed cleanly
//! and after its writer process was killed, against redb and `SQLite` opening a store of the
//! same receipts with the same indexes, in the same run.
//!
//! Not a criterion benchmark: an open is slow, changes the store, and needs a fresh copy of
//! it each time, so this times a few opens per rig itself (the rigs interleaved, the order
//! rotating each round) and saves median, min and max to `<criterion dir>/trailmix-open.json`
//! for `bench-report`.
//!
//! - **The stores**: the query benchmark's data and rigs (`trailmix_benches::query_data`,
//!   `query_rigs`, `query_trailmix`): trailmix-db loaded through `Db::append` (windows of
//!   10k waited durable, index current), redb with a row table and four index tables, `SQLite`
//!   (WAL mode) with four indexes. Each is built in a child process (this binary run again)
//!   that is killed with SIGKILL after its last commit: that directory is the rig's crashed
//!   store, kept for the whole run.
//! - **A round**, per rig: copy the crashed store to a work directory and sync the file system
//!   (untimed), time an open (`crashed`), close it cleanly (untimed), sync, time a second open
//!   of the same, now cleanly closed, store (`clean`), close, delete. The page cache is warm
//!   for every open (the copy just wrote the files).
//! - **An open** ends when the store can answer where its log ends: trailmix-db
//!   `Db::open` (which replays the log after its open snapshot, or the whole log without
//!   one; it prints which) then `durable_end`;
//!   redb `Database::open` (which repairs a database that was not closed cleanly) and the
//!   last key of the row table; `SQLite` `Connection::open` and `SELECT max(seq)` (which
//!   reads the schema and recovers the WAL of a crashed writer). Each open checks that the
//!   store holds every receipt.
//!
//! Sizes: 1 M receipts; 100k with `--quick` (or `TRAILMIX_BENCH_QUICK=1`); 5k when run as a
//! test; `$TRAILMIX_OPEN_RECEIPTS` to change it (`10000000` for 10 M: each store then takes
//! 9–12 GB, and the run needs free disk under `$TRAILMIX_BENCH_DIR` for every selected rig's
//! store plus a copy of the largest, about 52 GB for all three, and most of an hour; it
//! checks before building).
//! Rounds: 5, 3 quick, `$TRAILMIX_OPEN_ROUNDS`. Positional filters select `<state>/<rig>` ids
//! (`engine_open/crashed/redb`) as plain substrings.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use trailmix_benches::paired::filters_match;
use trailmix_benches::query_data::{self, Dataset};
use trailmix_benches::query_rigs::{
    QueryRig, REDB_RIG, RedbRig, SQLITE_RIG, SqliteRig, TRAILMIX_RIG, dir_bytes,
};
use trailmix_benches::query_trailmix::TrailmixRig;
use trailmix_benches::rigs::{BoxError, settle};
use trailmix_benches::store_report::{self, OpenResults, Timing};
use trailmix_benches::{criterion_dir, ids, scratch_root};
use trailmix_db::Db;

const QUICK_RECEIPTS: usize = 100_000;
const FULL_RECEIPTS: usize = 1_000_000;
const TEST_RECEIPTS: usize = 5_000;
const RECEIPTS_ENV: &str = "TRAILMIX_OPEN_RECEIPTS";
const ROUNDS_ENV: &str = "TRAILMIX_OPEN_ROUNDS";
/// Set in the child process: the rig to load; the directory and size follow.
const CHILD_ENV: &str = "TRAILMIX_OPEN_CHILD";
const CHILD_DIR_ENV: &str = "TRAILMIX_OPEN_CHILD_DIR";
const CHILD_RECEIPTS_ENV: &str = "TRAILMIX_OPEN_CHILD_RECEIPTS";
/// What the child prints when its store is loaded.
const READY: &str = "READY";
/// Disk a rig's store takes per receipt, with a margin (measured at 1 M: trailmix-db 1020,
/// redb 1141, `SQLite` 872 bytes; redb takes more per receipt in small stores).
fn disk_per_receipt(rig: &str) -> u64 {
    match rig {
        TRAILMIX_RIG => 1_200,
        REDB_RIG => 1_500,
        _ => 1_000,
    }
}
const RIGS: [&str; 3] = [TRAILMIX_RIG, REDB_RIG, SQLITE_RIG];
const STATES: [&str; 2] = [ids::OPEN_CRASHED, ids::OPEN_CLEAN];

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

fn env_number(name: &str, least: usize) -> Result<Option<usize>, BoxError> {
    match std::env::var(name) {
        Ok(text) => text
            .replace('_', "")
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= least)
            .map(Some)
            .ok_or_else(|| format!("{name}={text} is not a number ≥ {least}").into()),
        Err(_) => Ok(None),
    }
}

fn receipt_count() -> Result<usize, BoxError> {
    Ok(env_number(RECEIPTS_ENV, 1)?.unwrap_or(if !bench_mode() {
        TEST_RECEIPTS
    } else if quick() {
        QUICK_RECEIPTS
    } else {
        FULL_RECEIPTS
    }))
}

fn rounds() -> Result<usize, BoxError> {
    Ok(env_number(ROUNDS_ENV, 1)?.unwrap_or(if !bench_mode() {
        1
    } else if quick() {
        3
    } else {
        5
    }))
}

fn id(state: &str, rig: &str) -> String {
    ids::job_rig(ids::ENGINE_OPEN_GROUP, state, rig)
}

// --- the child: load a store, then wait to be killed ----------------------------------------

fn child(rig: &str) -> Result<(), BoxError> {
    let dir = PathBuf::from(std::env::var(CHILD_DIR_ENV)?);
    let n = env_number(CHILD_RECEIPTS_ENV, 1)?.ok_or("no receipt count")?;
    let data = Dataset::generate(n, query_data::SEED);
    let store: Box<dyn QueryRig> = match rig {
        TRAILMIX_RIG => Box::new(TrailmixRig::load_unmapped(&dir, &data)?),
        REDB_RIG => Box::new(RedbRig::load(&dir, &data)?),
        SQLITE_RIG => Box::new(SqliteRig::load(&dir, &data)?),
        other => return Err(format!("unknown rig {other}").into()),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY}")?;
    out.flush()?;
    // The parent never writes: this returns when it kills us, or at EOF if it died.
    let _ = std::io::stdin().read(&mut [0_u8; 1]);
    // Never close cleanly, whatever happens.
    std::mem::forget(store);
    std::process::exit(3);
}

/// Builds `rig`'s store of `n` receipts in `dir` in a child process and kills it (SIGKILL)
/// once the child says everything is committed.
fn build_crashed(rig: &str, dir: &Path, n: usize) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD_ENV, rig)
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_RECEIPTS_ENV, n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        BufReader::new(stdout).read_line(&mut line)?;
    }
    // Already gone if it failed: its status says so below.
    let _ = child.kill();
    let status = child.wait()?;
    if line.trim() != READY {
        return Err(
            format!("the {rig} builder ended before its store was ready ({status})").into(),
        );
    }
    if status.signal() != Some(9) {
        return Err(format!("the {rig} builder was not killed by SIGKILL ({status})").into());
    }
    Ok(started.elapsed())
}

// --- the parent ---------------------------------------------------------------------------

/// An open store, closed by dropping it (trailmix-db: `Db::close`).
enum Opened {
    Trailmix(Db),
    Redb(redb::Database),
    Sqlite(rusqlite::Connection),
}

impl Opened {
    fn close(self) -> Result<(), BoxError> {
        match self {
            Opened::Trailmix(db) => {
                db.close()?;
            }
            Opened::Redb(db) => drop(db),
            Opened::Sqlite(conn) => conn.close().map_err(|(_, e)| e)?,
        }
        Ok(())
    }
}

/// Opens `rig`'s store in `dir` and learns where its log ends: the timed operation. Returns
/// the store and that end (trailmix-db: one past the last seq; the others: the last seq).
fn open(rig: &str, dir: &Path) -> Result<(Opened, u64), BoxError> {
    Ok(match rig {
        TRAILMIX_RIG => {
            let db = Db::open(dir)?;
            let end = db.durable_end().0;
            // Microseconds, against an open of milliseconds: says what the time was spent on.
            eprintln!(
                "engine_open: trailmix-db open snapshot: {:?}",
                db.open_snapshot()
            );
            (Opened::Trailmix(db), end)
        }
        REDB_RIG => {
            let (db, last) = RedbRig::reopen(dir)?;
            (Opened::Redb(db), last.ok_or("empty redb store")?)
        }
        _ => {
            let (conn, last) = SqliteRig::reopen(dir)?;
            (Opened::Sqlite(conn), last.ok_or("empty SQLite store")?)
        }
    })
}

/// Copies the directory tree `from` to `to` (which must not exist).
fn copy_dir(from: &Path, to: &Path) -> Result<(), BoxError> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Free bytes on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Result<u64, BoxError> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// One round for `rig`: a crashed open and a clean open of a fresh copy; returns the two
/// durations (crashed, clean).
fn round(rig: &str, master: &Path, work: &Path, n: usize) -> Result<[Duration; 2], BoxError> {
    let _ = std::fs::remove_dir_all(work);
    copy_dir(master, work)?;
    let mut times = [Duration::ZERO; 2];
    for time in &mut times {
        settle(work)?;
        let start = Instant::now();
        let (opened, end) = open(rig, work)?;
        *time = start.elapsed();
        // Every receipt is there: rows 0..n (trailmix-db: after its genesis entry, with
        // checkpoints in between).
        let complete = if rig == TRAILMIX_RIG {
            end > n as u64
        } else {
            end + 1 == n as u64
        };
        if !complete {
            return Err(format!("{rig}: the store ends at {end}, not after {n} receipts").into());
        }
        opened.close()?;
    }
    std::fs::remove_dir_all(work)?;
    Ok(times)
}

/// Fails when the file system holding `root` lacks room for the crashed stores of `rigs` and
/// a work copy of the largest, for `n` receipts.
fn check_disk(root: &Path, rigs: &[&str], n: usize) -> Result<(), BoxError> {
    let sizes = rigs.iter().map(|r| disk_per_receipt(r));
    let need = n as u64 * (sizes.clone().sum::<u64>() + sizes.max().unwrap_or(0));
    let free = free_bytes(root)?;
    if free < need {
        return Err(format!(
            "{n} receipts need about {} GB free under {}, {} GB are (set {RECEIPTS_ENV} \
             lower, select fewer rigs, or set TRAILMIX_BENCH_DIR elsewhere)",
            need / 1_000_000_000,
            root.display(),
            free / 1_000_000_000
        )
        .into());
    }
    Ok(())
}

/// Builds the crashed stores of `wanted` under `root` and times `rounds` rounds of opens.
fn measure(root: &Path, wanted: &[&str], n: usize, rounds: usize) -> Result<OpenResults, BoxError> {
    check_disk(root, wanted, n)?;
    let mut results = OpenResults {
        receipts: n as u64,
        quick: quick(),
        ..OpenResults::default()
    };
    for rig in wanted {
        let master = root.join("crashed").join(rig);
        let took = build_crashed(rig, &master, n)?;
        let bytes = dir_bytes(&master)?;
        eprintln!(
            "engine_open: {rig}: {n} receipts loaded in a child process and killed after \
             {took:.1?}; {} MB on disk",
            bytes / 1_000_000
        );
        results.store_bytes.insert((*rig).to_string(), bytes);
    }
    settle(root)?;

    let mut times: BTreeMap<(&str, &str), Vec<Duration>> = BTreeMap::new();
    let started = Instant::now();
    for r in 0..rounds {
        for k in 0..wanted.len() {
            let rig = wanted[(r + k) % wanted.len()];
            let [crashed, clean] =
                round(rig, &root.join("crashed").join(rig), &root.join("work"), n)?;
            eprintln!(
                "engine_open: round {r}: {rig}: crashed {:.1} ms, clean {:.1} ms",
                crashed.as_secs_f64() * 1e3,
                clean.as_secs_f64() * 1e3
            );
            times
                .entry((ids::OPEN_CRASHED, rig))
                .or_default()
                .push(crashed);
            times.entry((ids::OPEN_CLEAN, rig)).or_default().push(clean);
        }
    }
    eprintln!("engine_open: {rounds} rounds in {:.1?}", started.elapsed());
    for ((state, rig), mut durations) in times {
        if !filters_match(&id(state, rig)) {
            continue;
        }
        if let Some(t) = Timing::from_durations(&mut durations) {
            #[allow(clippy::cast_precision_loss, reason = "a rate for display")]
            let rate = n as f64 * 1e9 / t.p50_ns;
            eprintln!(
                "engine_open {state}/{rig}: median {:.1} ms (min {:.1}, max {:.1}), {:.0} \
                 receipts/s",
                t.p50_ns / 1e6,
                t.min_ns / 1e6,
                t.max_ns / 1e6,
                rate
            );
            results
                .jobs
                .entry(state.to_string())
                .or_default()
                .insert(rig.to_string(), t);
        }
    }
    Ok(results)
}

fn run() -> Result<(), BoxError> {
    let wanted: Vec<&str> = RIGS
        .into_iter()
        .filter(|rig| STATES.iter().any(|state| filters_match(&id(state, rig))))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let n = receipt_count()?;
    let rounds = rounds()?;
    let root = scratch_root(Path::new(env!("CARGO_TARGET_TMPDIR"))).join("engine_open");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let measured = measure(&root, &wanted, n, rounds);
    // The stores go whether or not the measurement succeeded.
    let _ = std::fs::remove_dir_all(&root);
    let _ = settle(root.parent().unwrap_or(&root));
    let results = measured?;
    if bench_mode() {
        let dir = criterion_dir(Path::new(env!("CARGO_TARGET_TMPDIR")));
        match store_report::save_open(&dir, &results) {
            Ok(()) => eprintln!(
                "engine_open: results saved to {}",
                dir.join(store_report::OPEN_FILE).display()
            ),
            Err(err) => eprintln!("engine_open: could not save results: {err}"),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Ok(rig) = std::env::var(CHILD_ENV) {
        return match child(&rig) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("engine_open child ({rig}): {err}");
                ExitCode::FAILURE
            }
        };
    }
    if args().iter().any(|a| a == "--list") {
        for state in STATES {
            for rig in RIGS {
                println!("{}: benchmark", id(state, rig));
            }
        }
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("engine_open failed: {err}");
            ExitCode::FAILURE
        }
    }
}
