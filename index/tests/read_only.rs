//! Guards read-only access from another process while the writer is live: a reader sees the
//! writer's durable commits as consistent snapshots that answer every query like the model, a
//! second writer is refused, and a reader refuses an index of another store.
//!
//! The reader is a real second process (this test binary re-run as a child), since file locks
//! are per process.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Mix, Model, batch, binding, check_all, records};
use trailmix_index::{
    CommitMode, Index, IndexError, IndexOptions, ReadOnlyIndex, Sharing, StoreBinding,
};

const CHILD_ENV: &str = "TRAILMIX_INDEX_READER_CHILD";
const SEED: u64 = 31;
const RECORDS: usize = 240;

/// Runs only in the child: on each line `n` from stdin, opens a snapshot, checks it against
/// the model of the first `n` records, and answers with the watermark it saw. Also answers
/// `writer` with whether a second writer could open the file.
#[test]
fn reader_child_process() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let path = Path::new(&path);
    let (recs, _) = records(SEED, RECORDS + 1);
    let index = ReadOnlyIndex::open(path, &binding()).expect("open read-only");
    let mut out = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        if line == "writer" {
            let options = IndexOptions::new().sharing(Sharing::ReadersAllowed);
            let second = Index::open(path, &binding(), options);
            writeln!(out, "writer {}", second.is_ok()).expect("stdout");
            continue;
        }
        let n: usize = line.parse().expect("a record count");
        let reader = index.reader().expect("snapshot");
        let model = Model {
            watermark: reader.watermark(),
            recs: recs[..n].to_vec(),
        };
        check_all(&reader, &model, &mut Mix(n as u64));
        writeln!(out, "seen {}", reader.watermark()).expect("stdout");
    }
}

#[test]
fn a_reader_in_another_process_follows_durable_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.redb");
    let (recs, _) = records(SEED, RECORDS + 1);
    let options = IndexOptions::new()
        .chunk_target_bytes(64)
        .sharing(Sharing::ReadersAllowed);
    let index = Index::open(&path, &binding(), options).expect("open");
    // Lazy commits need the file to itself.
    let refused = index.commit(batch(0, &[], 0), CommitMode::Lazy);
    assert!(
        matches!(refused, Err(IndexError::Redb { .. })),
        "{refused:?}"
    );
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "reader_child_process", "--test-threads=1"])
        .args(["--nocapture", "--quiet"])
        .env(CHILD_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn reader");
    let mut to_child = child.stdin.take().expect("stdin");
    let mut from_child = BufReader::new(child.stdout.take().expect("stdout"));
    let mut ask = |question: String| -> String {
        writeln!(to_child, "{question}").expect("ask");
        loop {
            let mut answer = String::new();
            assert!(
                from_child.read_line(&mut answer).expect("answer") > 0,
                "the reader died"
            );
            // The test harness prints its own lines too; answers start with a keyword.
            if answer.starts_with("seen ") || answer.starts_with("writer ") {
                return answer.trim().to_owned();
            }
        }
    };
    let mut start = 0;
    for (i, chunk) in recs[..RECORDS].chunks(40).enumerate() {
        let n = (i + 1) * 40;
        let stop = recs[n].seq;
        index
            .commit(batch(start, chunk, stop), CommitMode::Durable)
            .expect("commit");
        start = stop;
        assert_eq!(
            ask(n.to_string()),
            format!("seen {stop}"),
            "after {n} records"
        );
    }
    assert_eq!(
        ask("writer".to_owned()),
        "writer false",
        "a second writer got in"
    );
    drop(to_child);
    assert!(child.wait().expect("reader exit").success());
    // The writer is unaffected by the reader having been there.
    let model = Model {
        watermark: start,
        recs: recs[..RECORDS].to_vec(),
    };
    check_all(&index.reader().expect("reader"), &model, &mut Mix(9));
}

#[test]
fn a_reader_refuses_another_stores_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.redb");
    let options = IndexOptions::new().sharing(Sharing::ReadersAllowed);
    drop(Index::open(&path, &binding(), options).expect("create"));
    let other = StoreBinding {
        store_id: [9; 16],
        ..binding()
    };
    let err = ReadOnlyIndex::open(&path, &other);
    assert!(
        matches!(&err, Err(IndexError::ForeignIndex { .. })),
        "{err:?}"
    );
    let missing = ReadOnlyIndex::open(&dir.path().join("none.redb"), &binding());
    assert!(
        matches!(missing, Err(IndexError::Redb { .. })),
        "{missing:?}"
    );
    assert!(
        !dir.path().join("none.redb").exists(),
        "read-only open created a file"
    );
}
