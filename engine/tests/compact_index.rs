//! Guards `Db::compact_index` (the index's VACUUM): it gives free pages back while the
//! index keeps answering exactly as before and equals a rebuild; a live writer holds it off
//! with the lock error; a reader in another process holding a snapshot makes it fail without
//! changing anything, and that reader's later snapshots read the compacted file correctly;
//! a compaction killed at any moment leaves an index that opens (repaired or rebuilt) and
//! equals a rebuild.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use trailmix_db::indexer::{INDEX_DIR, INDEX_FILE, IndexOpening};
use trailmix_db::query::Query;
use trailmix_db::wal::WalReader;
use trailmix_db::{Db, Error, Freshness};
use trailmix_index::{ReadOnlyIndex, StoreBinding};

const CHILD_ENV: &str = "TRAILMIX_COMPACT_READER_CHILD";

/// Writes `waves` batches of receipts, each indexed in its own commits, so that the index
/// frees pages as it goes (every commit rewrites the pages it touches).
fn fill(dir: &Path, waves: u64) -> Db {
    let db = Db::open(dir).expect("create");
    for wave in 0..waves {
        let receipts: Vec<_> = (wave * 200..(wave + 1) * 200)
            .map(|i| common::receipt(["acme", "globex", "initech"][(i % 3) as usize], i, 64))
            .collect();
        db.append_batch(&receipts)
            .expect("submit")
            .wait()
            .positions()
            .expect("appended");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let status = db.index_status();
            if status.watermark >= status.durable_end {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "index stalled");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    db
}

/// What the index answers, for comparing before and after.
fn answers(db: &Db, events: u64) -> Vec<String> {
    let mut out = Vec::new();
    for text in [
        "tenant=acme",
        "tenant=globex model=gpt-4.1 limit=1000",
        "order=-seq limit=50",
    ] {
        let page = db
            .query(&Query::parse(text).expect("query"), Freshness::Indexed)
            .expect("query runs");
        let seqs: Vec<u64> = page.receipts.iter().map(|r| r.position.seq.0).collect();
        out.push(format!("{text}: {seqs:?}"));
    }
    for i in (0..events).step_by(97) {
        let tenant = ["acme", "globex", "initech"][(i % 3) as usize];
        let found = db
            .find_event(tenant, &common::event_id(i))
            .expect("lookup")
            .map(|r| r.position.seq.0);
        out.push(format!("{i}: {found:?}"));
    }
    out
}

#[test]
fn compaction_gives_space_back_and_changes_no_answer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let db = fill(&dir, 30);
    let before = answers(&db, 6_000);
    db.close().expect("close");

    let done = Db::compact_index(&dir).expect("compact");
    assert!(done.compacted, "{done:?}");
    assert!(
        done.before.free_bytes().expect("writer stats") > 0,
        "the commits should have left free pages: {done:?}"
    );
    assert!(done.after.file_bytes < done.before.file_bytes, "{done:?}");
    assert!(
        done.after.free_bytes().expect("writer stats") < done.before.free_bytes().expect("stats"),
        "{done:?}"
    );
    assert_eq!(done.after.stored_bytes, done.before.stored_bytes);

    let db = Db::open(&dir).expect("reopen");
    // The compacted file was used as it is, not rebuilt.
    assert_eq!(
        db.index_status().opening,
        IndexOpening::CaughtUp { entries: 0 }
    );
    assert!(db.check_index().expect("rebuild").matches);
    assert_eq!(answers(&db, 6_000), before);
    db.close().expect("close");
}

#[test]
fn a_live_writer_holds_compaction_off() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let db = fill(&dir, 2);
    let refused = Db::compact_index(&dir);
    assert!(
        matches!(&refused, Err(Error::Wal(e)) if matches!(**e, trailmix_db::wal::Error::Locked { .. })),
        "{refused:?}"
    );
    db.close().expect("close");
}

fn open_read_only(dir: &Path) -> ReadOnlyIndex {
    let meta = *WalReader::open(common::wal_dir(dir)).expect("log").meta();
    let binding = StoreBinding {
        store_id: meta.store_id.0,
        hash_algorithm: meta.hash_algorithm.to_string(),
    };
    ReadOnlyIndex::open(&dir.join(INDEX_DIR).join(INDEX_FILE), &binding).expect("index")
}

/// Runs only in the child: opens the store's index read-only and, per line from stdin,
/// `hold` (begin a snapshot and keep it), `drop` (end it) or `digest` (a fresh snapshot's
/// watermark and logical digest), answering each.
#[test]
fn reader_child_process() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let index = open_read_only(Path::new(&dir));
    let mut held = None;
    let mut out = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        match line.expect("stdin").as_str() {
            "hold" => held = Some(index.reader().expect("snapshot")),
            "drop" => held = None,
            _ => {
                let reader = index.reader().expect("snapshot");
                let digest = reader.logical_digest().expect("digest");
                write!(out, "{} ", reader.watermark()).expect("stdout");
                for b in digest {
                    write!(out, "{b:02x}").expect("stdout");
                }
            }
        }
        writeln!(out, " done {}", held.is_some()).expect("stdout");
    }
}

#[test]
fn a_reader_in_another_process_is_never_given_a_wrong_view() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    fill(&dir, 20).close().expect("close");
    let mut child = common::child_command("reader_child_process")
        .arg("--quiet")
        .env(CHILD_ENV, &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn reader");
    let mut to_child = child.stdin.take().expect("stdin");
    let mut from_child = BufReader::new(child.stdout.take().expect("stdout"));
    let mut ask = |question: &str| -> String {
        writeln!(to_child, "{question}").expect("ask");
        // Skips what the test harness prints around the child's answers.
        loop {
            let mut line = String::new();
            if from_child.read_line(&mut line).expect("answer") == 0 {
                return String::new();
            }
            if line.contains(" done ") {
                return line.trim().to_owned();
            }
        }
    };
    let original = ask("digest");
    assert!(original.ends_with(" done false"), "{original}");

    // A snapshot held in the other process: refused, nothing changed.
    ask("hold");
    let length = std::fs::metadata(dir.join(INDEX_DIR).join(INDEX_FILE))
        .expect("index")
        .len();
    let refused = Db::compact_index(&dir);
    assert!(
        matches!(&refused, Err(Error::Index { detail, .. }) if detail.contains("being read")),
        "{refused:?}"
    );
    assert_eq!(
        std::fs::metadata(dir.join(INDEX_DIR).join(INDEX_FILE))
            .expect("index")
            .len(),
        length
    );
    assert_eq!(ask("digest"), original.replace("false", "true"));

    // Snapshot ended, handle still open: compaction goes ahead, and the reader's next
    // snapshots read the moved pages as the same index.
    ask("drop");
    let done = Db::compact_index(&dir).expect("compact with an idle reader");
    assert!(done.after.file_bytes < done.before.file_bytes, "{done:?}");
    assert_eq!(ask("digest"), original);
    drop(to_child);
    assert!(child.wait().expect("child exits").success());
}

const COMPACT_CHILD_ENV: &str = "TRAILMIX_COMPACT_CHILD";

/// Runs only in the child: compacts the store named by the environment (and is killed).
#[test]
fn compaction_child_process() {
    let Some(dir) = std::env::var_os(COMPACT_CHILD_ENV) else {
        return;
    };
    Db::compact_index(Path::new(&dir)).expect("compact");
}

#[test]
fn a_compaction_killed_at_any_moment_leaves_a_usable_index() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pristine = tmp.path().join("pristine");
    let db = fill(&pristine, 30);
    let expected = answers(&db, 6_000);
    db.close().expect("close");
    // A whole child run (start-up and compaction) took ~17-21 ms in a debug build here, so
    // the kills fall before, during and after the compaction; whichever, the end must hold.
    for delay_ms in [0, 4, 8, 10, 12, 13, 14, 15, 16, 17, 18, 20, 40] {
        let dir = tmp.path().join(format!("killed-{delay_ms}"));
        common::copy_dir(&pristine, &dir);
        let mut child = common::child_command("compaction_child_process")
            .arg("--quiet")
            .env(COMPACT_CHILD_ENV, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // SIGKILL: no destructor runs, as in a crash.
        child.kill().expect("kill");
        child.wait().expect("reaped");
        let db = Db::open(&dir).expect("reopen after the kill");
        assert!(
            db.check_index().expect("rebuild").matches,
            "killed after {delay_ms} ms: index differs from a rebuild"
        );
        assert_eq!(answers(&db, 6_000), expected, "killed after {delay_ms} ms");
        db.close().expect("close");
    }
}
