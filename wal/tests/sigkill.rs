//! Guards invariant 1 against real process death: a child process appends with durable acks and
//! is killed with SIGKILL at random moments (while creating the store, while recovering it, in
//! the middle of batches and of rollovers); after every kill the log reopens, holds every
//! acknowledged record with the right content as a dense prefix, and the next round continues
//! on top of the recovered directory.
//!
//! The parent test re-runs this test binary as the child (`--exact child_appends_until_killed`);
//! the child test does nothing unless `TRAILMIX_SIGKILL_CHILD_DIR` is set. The default run kills
//! 100 children; `TRAILMIX_SIGKILL_ROUNDS=N` asks for N kills and `TRAILMIX_SIGKILL_SEED=S`
//! replays the random choices of a failed run (the kill moments themselves depend on timing).

use std::io::{BufRead, BufReader, Read, Write};
use std::ops::ControlFlow;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_wal::format::{self, LOCK_FILE, META_FILE, TMP_SUFFIX};
use trailmix_wal::{
    ChainHash, Error, OpenMode, Preallocation, RecordKind, SegmentPreparation, Seq, Wal,
    WalOptions, WalReader,
};

const CHILD_TEST: &str = "child_appends_until_killed";
const CHILD_DIR_ENV: &str = "TRAILMIX_SIGKILL_CHILD_DIR";
const CHILD_SEED_ENV: &str = "TRAILMIX_SIGKILL_CHILD_SEED";
const ROUNDS_ENV: &str = "TRAILMIX_SIGKILL_ROUNDS";
const SEED_ENV: &str = "TRAILMIX_SIGKILL_SEED";
const DEFAULT_KILLS: u32 = 100;
const SIGKILL: i32 = 9;
/// A child stops (and exits cleanly) after this many batches if nobody killed it.
const CHILD_BATCHES_MAX: u32 = 300;
const RECORD_BYTES_MAX: u64 = 2048;
/// Marks the child's protocol lines in its stdout, which libtest shares.
const TAG: &str = "@@trailmix:";
/// Longest wait for the child's next line before the parent gives up on it (a hang, not a
/// timing assertion).
const CHILD_SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// Serialises the tests of this file. A `Wal` dropped and reopened on one test thread while
/// another thread spawns a child can see `Locked`: between fork and exec the child holds a copy
/// of every descriptor, the writer lock's included (flock(2) locks belong to the open file
/// description).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The payload of record `seq`: 1..=900 bytes, a function of `seq` alone.
fn payload(seq: u64) -> Vec<u8> {
    let mut state = splitmix64(seq);
    let len = usize::try_from(1 + state % 900).expect("small");
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = splitmix64(state);
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn kind(seq: u64) -> RecordKind {
    RecordKind::new(u8::try_from(1 + seq % 127).expect("fits")).expect("user kind")
}

/// The chain hash passed with record `seq` (segment headers record it when `seq` opens one).
fn chain(seq: u64) -> ChainHash {
    let mut hash = [0u8; 32];
    for (i, chunk) in hash.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&splitmix64(seq ^ (0xc4a1 << i)).to_le_bytes());
    }
    ChainHash(hash)
}

/// Options picked by a random word: small segments of a few sizes (so rollovers are frequent
/// and segments of different sizes mix), both preallocation methods, with and without the
/// background spare segment.
fn options(choice: u64) -> WalOptions {
    let pages = [8, 9, 16][usize::try_from(choice % 3).expect("small")];
    WalOptions::default()
        .segment_bytes(pages * 4096)
        .record_bytes_max(RECORD_BYTES_MAX)
        .preallocation(if choice & 8 == 0 {
            Preallocation::ZeroFill
        } else {
            Preallocation::Fallocate
        })
        .preparation(if choice & 16 == 0 {
            SegmentPreparation::Ahead
        } else {
            SegmentPreparation::OnDemand
        })
}

fn say(out: &mut impl Write, line: &str) {
    writeln!(out, "{TAG}{line}").expect("child: write stdout");
    out.flush().expect("child: flush stdout");
}

/// The child half: appends batches of deterministic records and prints each durable
/// watermark once `flush` returned it. Does nothing when not started by the parent.
#[test]
fn child_appends_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_ENV)
        .expect("child: seed variable")
        .parse()
        .expect("child: seed is a number");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = std::io::stdout().lock();
    say(&mut out, "START");
    let mut wal = Wal::open(&dir, options(rng.random())).expect("child: open");
    say(&mut out, &format!("OPENED {}", wal.next_seq().0));
    for _ in 0..CHILD_BATCHES_MAX {
        for _ in 0..rng.random_range(1..=40) {
            let seq = wal.next_seq().0;
            let got = wal
                .append(kind(seq), &payload(seq), &chain(seq))
                .expect("child: append");
            assert_eq!(got, Seq(seq), "child: append returned the wrong seq");
        }
        let durable = wal.flush().expect("child: flush");
        say(&mut out, &format!("ACK {}", durable.0));
    }
    wal.close().expect("child: close");
    say(&mut out, "DONE");
}

/// When the parent kills the child.
#[derive(Debug, Clone, Copy)]
enum KillPlan {
    /// This long after the child said it is about to open the log: lands in process start-up,
    /// store creation or recovery.
    AfterStart(Duration),
    /// This long after the child acknowledged its `acks`-th batch: lands in appends, flushes
    /// and rollovers.
    AfterAcks(u32, Duration),
}

/// What one child run showed.
#[derive(Debug)]
struct ChildRun {
    killed: bool,
    /// The watermark the child printed at open.
    opened: Option<u64>,
    /// The highest acknowledged watermark.
    acked: u64,
    status: ExitStatus,
    stderr: String,
}

/// Parses the child's protocol lines. Each was written with one `write(2)` shorter than
/// `PIPE_BUF`, so a kill cannot cut one short.
fn parse_lines(lines: &[String], context: &str) -> (Option<u64>, u64, bool) {
    let mut opened = None;
    let mut acked = 0;
    let mut done = false;
    for line in lines {
        let Some(at) = line.find(TAG) else { continue };
        let message = &line[at + TAG.len()..];
        let number = |rest: &str| -> u64 {
            rest.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{context}: bad child line {line:?}"))
        };
        if let Some(rest) = message.strip_prefix("OPENED ") {
            opened = Some(number(rest));
            acked = number(rest);
        } else if let Some(rest) = message.strip_prefix("ACK ") {
            let watermark = number(rest);
            assert!(
                watermark >= acked,
                "{context}: the durable watermark went back from {acked} to {watermark}"
            );
            acked = watermark;
        } else if message == "DONE" {
            done = true;
        } else {
            assert_eq!(message, "START", "{context}: unknown child line {line:?}");
        }
    }
    (opened, acked, done)
}

fn run_child(dir: &Path, child_seed: u64, plan: KillPlan, context: &str) -> ChildRun {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_SEED_ENV, child_seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut stderr = child.stderr.take().expect("child stderr");
    let (sender, receiver) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut lines = Vec::new();
    let mut acks = 0;
    let (waiting_for, delay) = match plan {
        KillPlan::AfterStart(delay) => (None, delay),
        KillPlan::AfterAcks(acks, delay) => (Some(acks), delay),
    };
    loop {
        let line = match receiver.recv_timeout(CHILD_SILENCE_LIMIT) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => break, // the child ended by itself
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("{context}: the child printed nothing for {CHILD_SILENCE_LIMIT:?} (hung?)");
            }
        };
        let started = line.contains(&format!("{TAG}START"));
        if line.contains(&format!("{TAG}ACK ")) {
            acks += 1;
        }
        lines.push(line);
        let due = match waiting_for {
            None => started,
            Some(wanted) => acks >= wanted,
        };
        if due {
            std::thread::sleep(delay);
            break;
        }
    }
    child.kill().expect("kill child"); // SIGKILL; harmless if it already exited (not reaped)
    let status = child.wait().expect("wait for child");
    reader.join().expect("stdout reader");
    lines.extend(receiver.try_iter());
    let stderr = stderr_reader.join().expect("stderr reader");
    let killed = status.signal() == Some(SIGKILL);
    let (opened, acked, done) = parse_lines(&lines, context);
    if !killed {
        assert!(
            status.success() && done,
            "{context}: the child failed on its own ({status}).\nstdout:\n{}\nstderr:\n{stderr}",
            lines.join("\n")
        );
    }
    ChildRun {
        killed,
        opened,
        acked,
        status,
        stderr,
    }
}

#[derive(Debug, Default)]
struct Stats {
    rounds: u32,
    kills: u32,
    kills_before_open_returned: u32,
    kills_in_fresh_directory: u32,
    torn_tails: u32,
    segment_temp_files_removed: u32,
    spare_files_removed: u32,
    ended_on_rolled_seal: u32,
    stores: u32,
    max_records: u64,
    max_segments: usize,
}

/// Reopens the log after a kill and checks it against everything the parent knows. Returns
/// the number of records in the recovered log.
fn verify_after_kill(
    dir: &Path,
    run: &ChildRun,
    verified: u64,
    rng: &mut SmallRng,
    stats: &mut Stats,
    context: &str,
) -> u64 {
    let wal = Wal::open(dir, options(rng.random())).unwrap_or_else(|err| {
        panic!(
            "{context}: reopening after the kill failed: {err}\nchild status {}, stderr:\n{}",
            run.status, run.stderr
        )
    });
    let report = wal.open_report().clone();
    let end = wal.next_seq().0;
    if let Some(opened) = run.opened {
        assert_eq!(
            opened, verified,
            "{context}: the child recovered {opened} records, the parent had verified {verified}"
        );
    }
    assert!(
        end >= run.acked,
        "{context}: {} acknowledged records but only {end} recovered ({report:?})",
        run.acked
    );
    assert!(
        end >= verified,
        "{context}: the log shrank from {verified} verified records to {end} ({report:?})"
    );
    assert_eq!(report.records, Seq(end), "{context}: open report");

    // Every record, read back by an independent reader while the writer holds the lock.
    let reader = WalReader::open(dir).unwrap_or_else(|err| panic!("{context}: reader: {err}"));
    let segments = reader.segments();
    assert_eq!(segments.len(), report.segments, "{context}: segment count");
    for (index, info) in segments.iter().enumerate() {
        let header = &info.header;
        assert_eq!(
            header.segment_no.0, index as u64,
            "{context}: segment number"
        );
        assert_eq!(header.store_id, wal.store_id(), "{context}: store id");
        let expected_link = if index == 0 {
            ChainHash::ZERO
        } else {
            chain(header.first_seq.0)
        };
        assert_eq!(
            header.prev_chain_hash, expected_link,
            "{context}: chain hash in the header of segment {index}"
        );
    }
    let mut next = 0u64;
    let scanned = reader
        .scan(Seq(0), |record| {
            assert_eq!(record.seq, Seq(next), "{context}: hole or reordering");
            assert_eq!(record.kind, kind(next), "{context}: kind of seq {next}");
            assert!(
                record.payload == payload(next).as_slice(),
                "{context}: payload of seq {next} differs"
            );
            next += 1;
            ControlFlow::Continue(())
        })
        .unwrap_or_else(|err| panic!("{context}: reading the recovered log: {err}"));
    assert_eq!(scanned, Seq(end), "{context}: reader end");
    assert_eq!(next, end, "{context}: records read");

    stats.torn_tails += u32::from(report.torn_tail.is_some());
    let temp_removed = |spare: bool| {
        report
            .removed_temp_files
            .iter()
            .filter(|name| name.starts_with("spare-") == spare)
            .count()
    };
    stats.segment_temp_files_removed += u32::try_from(temp_removed(false)).expect("few");
    stats.spare_files_removed += u32::try_from(temp_removed(true)).expect("few");
    stats.ended_on_rolled_seal += u32::from(
        segments
            .last()
            .and_then(|s| s.seal)
            .is_some_and(|seal| seal.kind == format::SealKind::Rolled),
    );
    stats.max_records = stats.max_records.max(end);
    stats.max_segments = stats.max_segments.max(segments.len());

    // Recovery on top of recovery: sometimes leave a clean-close seal for the next child to
    // append after, sometimes just drop the writer (like another crash, after recovery).
    if rng.random_bool(0.5) {
        assert_eq!(wal.close().expect("close"), Seq(end), "{context}: close");
    } else {
        drop(wal);
    }
    end
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
    )
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_record() {
    let _serial = serial();
    let seed = env_number(SEED_ENV).unwrap_or_else(rand::random);
    let kills_wanted = env_number(ROUNDS_ENV).map_or(DEFAULT_KILLS, |n| {
        u32::try_from(n).expect("TRAILMIX_SIGKILL_ROUNDS fits in u32")
    });
    // Shown by the test harness when the test fails.
    eprintln!("sigkill: seed {seed}; replay the random choices with {SEED_ENV}={seed}");
    let mut rng = SmallRng::seed_from_u64(seed);
    let root = tempfile::tempdir().expect("tempdir");
    let mut stats = Stats::default();
    let mut dir = root.path().join("store-0");
    let mut verified = 0u64;
    stats.stores = 1;

    while stats.kills < kills_wanted {
        stats.rounds += 1;
        let round = stats.rounds;
        assert!(
            round <= kills_wanted * 2 + 10,
            "seed {seed}: the children keep finishing before the parent kills them"
        );
        if round > 1 && rng.random_ratio(1, 12) {
            // Start over in a new directory so that creation is killed more than once.
            std::fs::remove_dir_all(&dir).expect("remove old store");
            dir = root.path().join(format!("store-{}", stats.stores));
            stats.stores += 1;
            verified = 0;
        }
        let fresh = !dir.exists();
        let plan = if fresh || rng.random_ratio(1, 5) {
            KillPlan::AfterStart(Duration::from_micros(rng.random_range(0..4000)))
        } else {
            KillPlan::AfterAcks(
                rng.random_range(1..=30),
                Duration::from_micros(rng.random_range(0..3000)),
            )
        };
        let context = format!("seed {seed}, round {round} ({plan:?}, {})", dir.display());
        let run = run_child(&dir, rng.random(), plan, &context);
        if run.killed {
            stats.kills += 1;
            stats.kills_before_open_returned += u32::from(run.opened.is_none());
            stats.kills_in_fresh_directory += u32::from(fresh);
        }
        verified = verify_after_kill(&dir, &run, verified, &mut rng, &mut stats, &context);
    }
    eprintln!("sigkill: seed {seed}: {stats:#?}");
    assert!(stats.kills >= kills_wanted);
}

/// What a SIGKILL between creating `wal.meta.tmp` and renaming it into place leaves behind: a
/// half-created store, which the next open must create, not call foreign.
#[test]
fn store_killed_while_writing_its_metadata_is_created_on_reopen() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("store");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join(LOCK_FILE), b"").expect("lock file");
    std::fs::write(dir.join(format!("{META_FILE}{TMP_SUFFIX}")), b"TMIXWAL\0").expect("tmp");

    // Nothing was ever created, so a reader and a must-exist open find no store.
    assert!(matches!(WalReader::open(&dir), Err(Error::Missing { .. })));
    let must_exist = options(0).open_mode(OpenMode::MustExist);
    assert!(matches!(
        Wal::open(&dir, must_exist),
        Err(Error::Missing { .. })
    ));

    let mut wal = Wal::open(&dir, options(0)).expect("open a half-created store");
    assert!(wal.open_report().created);
    for seq in 0..5 {
        wal.append(kind(seq), &payload(seq), &chain(seq))
            .expect("append");
    }
    assert_eq!(wal.close().expect("close"), Seq(5));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            format::segment_file_name(Seq(0)),
            LOCK_FILE.into(),
            META_FILE.into()
        ],
        "no temporary file is left"
    );
    let records = WalReader::open(&dir)
        .expect("reader")
        .read_from(Seq(0))
        .expect("read");
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.payload == payload(r.seq.0)));
}

/// What a SIGKILL while the first segment was being prepared leaves behind: `wal.meta` and a
/// half-made `.seg.tmp`. The next open removes the temporary file and starts the first segment.
#[test]
fn store_killed_while_creating_its_first_segment_starts_it_on_reopen() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("store");
    let wal = Wal::open(&dir, options(0)).expect("create");
    let store_id = wal.store_id();
    drop(wal);
    let first = format::segment_file_name(Seq(0));
    std::fs::remove_file(dir.join(&first)).expect("remove segment");
    let tmp = format!("{first}{TMP_SUFFIX}");
    std::fs::write(dir.join(&tmp), vec![0xa5; 3000]).expect("half-made segment");

    let mut wal = Wal::open(&dir, options(0)).expect("reopen");
    assert!(!wal.open_report().created);
    assert_eq!(
        wal.open_report().removed_temp_files,
        std::slice::from_ref(&tmp)
    );
    assert_eq!(wal.store_id(), store_id);
    assert_eq!(wal.next_seq(), Seq(0));
    wal.append(kind(0), &payload(0), &chain(0)).expect("append");
    assert_eq!(wal.flush().expect("flush"), Seq(1));
    drop(wal);
    assert!(!dir.join(&tmp).exists());
    let reader = WalReader::open(&dir).expect("reader");
    assert_eq!(reader.read(Seq(0)).expect("read").payload, payload(0));
}
