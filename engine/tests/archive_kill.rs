//! Guards the archive (file-system backend) against a real crash: a child process archives a
//! store of several sealed epochs in many small objects and is killed with SIGKILL at a
//! seeded random moment; the store is reopened and archived again to completion, and the
//! archive must equal one made without a kill (same object names and bytes), the log must
//! hold as many archive records as the uninterrupted run wrote (none twice), and the store
//! and `verify_archive` must verify. (`object_store`'s file backend may leave the staging
//! file `<name>#<n>` of a put the kill interrupted: it is not an object, and is counted, not
//! compared.) Rounds: `TRAILMIX_ARCHIVE_KILLS` (default 4); seed `TRAILMIX_KILL_SEED`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use trailmix_db::archive::{ArchiveOptions, ArchiveTarget, S3Settings, verify_archive};
use trailmix_db::{Db, DbOptions, VerifyOptions};

const DATA_VAR: &str = "TRAILMIX_ARCHIVE_CHILD_DATA";
const TARGET_VAR: &str = "TRAILMIX_ARCHIVE_CHILD_TARGET";
const CHILD_TEST: &str = "child_archives_until_killed";
/// Small parts: many objects per epoch, so a kill lands between and inside uploads.
const PART_BYTES: u64 = 4096;

fn options() -> DbOptions {
    DbOptions::default().segment_bytes(64 << 10)
}

fn archive_options() -> ArchiveOptions {
    ArchiveOptions {
        part_bytes: PART_BYTES,
        ..ArchiveOptions::default()
    }
}

fn target(dir: &Path) -> ArchiveTarget {
    ArchiveTarget::parse(&format!("file://{}", dir.display()), &S3Settings::default()).expect("url")
}

/// Four sealed epochs of 60 receipts of ~600 bytes, and a receipt in the open epoch.
fn make_store(data: &Path) {
    let db = Db::open_with(data, options()).expect("open");
    for e in 0..4_u64 {
        for n in 0..60 {
            db.append_and_wait(&common::receipt("acme", e * 1000 + n, 600))
                .expect("append");
        }
        db.seal_epoch().expect("seal").expect("sealed");
    }
    db.append_and_wait(&common::receipt("acme", 999_999, 10))
        .expect("append");
    db.close().expect("close");
}

/// Archives the store into the target, to completion; the number of archive records written.
fn archive(data: &Path, archive_dir: &Path) -> usize {
    let db = Db::open_with(data, options()).expect("open");
    let report = db
        .archive(&target(archive_dir), &archive_options())
        .expect("archive");
    db.close().expect("close");
    report.record_seqs.len()
}

/// The child: archives the store the parent names, until it is killed (or done).
#[test]
fn child_archives_until_killed() {
    let (Some(data), Some(archive_dir)) =
        (std::env::var_os(DATA_VAR), std::env::var_os(TARGET_VAR))
    else {
        return;
    };
    archive(Path::new(&data), Path::new(&archive_dir));
}

fn seed() -> u64 {
    std::env::var("TRAILMIX_KILL_SEED")
        .ok()
        .map_or(0xa4c1, |v| v.parse().expect("TRAILMIX_KILL_SEED is a u64"))
}

/// xorshift64: enough to spread the kill moments, and the same for the same seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Runs the child on `data` → `archive_dir` and SIGKILLs it after `delay` (if it is still
/// running); whether it was killed.
fn kill_child_after(data: &Path, archive_dir: &Path, delay: Duration) -> bool {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(DATA_VAR, data)
        .env(TARGET_VAR, archive_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("child starts");
    // Sleep in steps, so a child that is done is not waited for.
    let until = std::time::Instant::now() + delay;
    while std::time::Instant::now() < until && child.try_wait().expect("wait").is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let running = child.try_wait().expect("wait").is_none();
    // `kill` is SIGKILL on Unix.
    let _ = child.kill();
    child.wait().expect("reap");
    running
}

#[test]
fn archive_killed_at_random_moments_resumes_to_the_same_archive() {
    let rounds = common::env_usize("TRAILMIX_ARCHIVE_KILLS", 4);
    let seed = seed();
    println!("seed {seed} (TRAILMIX_KILL_SEED), {rounds} rounds (TRAILMIX_ARCHIVE_KILLS)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let template = tmp.path().join("template");
    make_store(&template);
    let reference_data = tmp.path().join("reference-data");
    let reference = tmp.path().join("reference-archive");
    common::restore_dir(&template, &reference_data);
    let records = archive(&reference_data, &reference);
    let expected = common::tree(&reference);
    assert!(expected.len() > 20, "{} objects", expected.len());

    // How long a child takes to start and archive everything: the kills land inside that.
    let calibrate = tmp.path().join("calibrate");
    common::restore_dir(&template, &calibrate);
    let started = std::time::Instant::now();
    let finished = !kill_child_after(
        &calibrate,
        &tmp.path().join("calibrate-archive"),
        Duration::from_secs(60),
    );
    let child_ms = u64::try_from(started.elapsed().as_millis()).expect("ms");
    assert!(finished, "the child did not finish in 60 s");
    println!("an uninterrupted child takes {child_ms} ms");

    let mut state = seed.max(1);
    let mut killed_mid_run = 0;
    let mut leftover_staging = 0;
    for round in 0..rounds {
        let data: PathBuf = tmp.path().join(format!("data-{round}"));
        let archive_dir = tmp.path().join(format!("archive-{round}"));
        common::restore_dir(&template, &data);
        // Up to three kills before the run that completes.
        for kill in 0..=next(&mut state) % 3 {
            let delay = Duration::from_millis(next(&mut state) % child_ms.max(1));
            let was_running = kill_child_after(&data, &archive_dir, delay);
            println!("round {round} kill {kill}: after {delay:?}, running: {was_running}");
            killed_mid_run += usize::from(was_running);
        }
        archive(&data, &archive_dir);
        // object_store's file backend stages a put in `<name>#<n>` and renames it: a kill
        // mid-put leaves that file behind, outside the object namespace (not an object).
        let (staged, got): (Vec<_>, Vec<_>) = common::tree(&archive_dir)
            .into_iter()
            .partition(|(name, _)| name.rsplit('/').next().is_some_and(|f| f.contains('#')));
        let got: std::collections::BTreeMap<_, _> = got.into_iter().collect();
        leftover_staging += staged.len();
        let differ: Vec<_> = got
            .iter()
            .filter(|(k, v)| expected.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .chain(expected.keys().filter(|k| !got.contains_key(*k)).cloned())
            .collect();
        assert!(
            differ.is_empty(),
            "round {round}: objects differ: {differ:?}"
        );
        assert_eq!(
            common::archive_records(&data).len(),
            records,
            "round {round}: archive records"
        );
        common::assert_verifies(&data);
        verify_archive(&target(&archive_dir), None, &VerifyOptions::default())
            .expect("the archive verifies");
        std::fs::remove_dir_all(&data).expect("rm");
        std::fs::remove_dir_all(&archive_dir).expect("rm");
    }
    println!("{killed_mid_run} kills mid-run, {leftover_staging} staging file(s) left behind");
    assert!(
        rounds == 0 || killed_mid_run > 0,
        "no kill landed while the child ran: the delays are too long for this machine"
    );
}
