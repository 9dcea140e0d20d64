//! Guards the commit protocol across a process crash: lazy commits are lost, the index reopens
//! at its last durable commit with exactly that content, and catching up from there gives the
//! same index as building it in one go; a read-only opener refuses the crashed file with
//! `NeedsRepair` until a writer opens it. Also: a clean close keeps lazy commits.
//!
//! The crash is real: the test re-runs this test binary as a child process that commits and
//! then calls `std::process::abort()`, so redb's `Drop` never runs (dropping the database
//! would itself make the lazy commits durable). Power loss is not simulated: redb promises
//! that a `Durability::Immediate` commit is durable when `commit` returns (fsync, checksummed
//! commit slots), and that is all the index relies on.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Mix, Model, batch, binding, build, check_all, records};
use trailmix_index::{CommitMode, Index, IndexError, IndexOptions, ReadOnlyIndex};

const CHILD_ENV: &str = "TRAILMIX_INDEX_CRASH_CHILD";

/// The split of the deterministic records: durable up to `DURABLE`, then lazy up to `LAZY`.
const DURABLE: usize = 150;
const LAZY: usize = 260;

fn open(path: &Path) -> Index {
    Index::open(path, &binding(), IndexOptions::new().chunk_target_bytes(64)).expect("open")
}

/// Runs only in the child: commits durable then lazy batches, then dies without cleanup.
#[test]
fn crash_child_process() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (recs, _) = records(77, LAZY + 10);
    let index = open(Path::new(&path));
    let mut start = 0;
    for (i, chunk) in recs[..LAZY].chunks(10).enumerate() {
        let stop = recs[(i + 1) * 10].seq;
        let mode = if (i + 1) * 10 <= DURABLE {
            CommitMode::Durable
        } else {
            CommitMode::Lazy
        };
        index
            .commit(batch(start, chunk, stop), mode)
            .expect("commit");
        start = stop;
    }
    assert_eq!(index.watermark().expect("watermark"), recs[LAZY].seq);
    std::process::abort();
}

#[test]
fn a_crash_rolls_back_to_the_last_durable_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.redb");
    let status = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "crash_child_process",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ENV, &path)
        .status()
        .expect("spawn child");
    assert!(!status.success(), "the child must have aborted");

    // A read-only opener cannot repair what the crash left, and says so with its own error.
    let refused = ReadOnlyIndex::open(&path, &binding()).expect_err("needs a writer's repair");
    assert!(
        matches!(refused, IndexError::NeedsRepair { .. }),
        "{refused:?}"
    );

    let (recs, end) = records(77, LAZY + 10);
    let index = open(&path);
    let durable_end = recs[DURABLE].seq;
    let model = Model {
        watermark: durable_end,
        recs: recs[..DURABLE].to_vec(),
    };
    check_all(&index.reader().expect("reader"), &model, &mut Mix(4));

    // Catch up from the log (the records) and compare with a straight build.
    index
        .commit(
            batch(durable_end, &recs[DURABLE..], end),
            CommitMode::Durable,
        )
        .expect("catch up");
    let other_dir = tempfile::tempdir().expect("tempdir");
    let straight = open(&other_dir.path().join("index.redb"));
    build(&straight, &recs, end, &[64]);
    assert_eq!(
        index
            .reader()
            .expect("reader")
            .logical_digest()
            .expect("digest"),
        straight
            .reader()
            .expect("reader")
            .logical_digest()
            .expect("digest")
    );
}

#[test]
fn a_clean_close_keeps_lazy_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.redb");
    let (recs, end) = records(78, 50);
    let index = open(&path);
    index
        .commit(batch(0, &recs[..20], recs[20].seq), CommitMode::Durable)
        .expect("commit");
    index
        .commit(batch(recs[20].seq, &recs[20..], end), CommitMode::Lazy)
        .expect("commit");
    drop(index);
    let index = open(&path);
    check_all(
        &index.reader().expect("reader"),
        &Model {
            watermark: end,
            recs,
        },
        &mut Mix(5),
    );
}
