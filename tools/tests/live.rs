//! Guards the tool's read commands on a live store: while this test process holds the store
//! open for writing (`Db`), `query`, `trace` and `prove` in another process work without the
//! writer lock, show what the writer's index holds, follow later appends once indexed, and say
//! when log entries were not searched or not yet covered by a checkpoint.

mod common;

use std::time::{Duration, Instant};

use common::{arg, code, event, event_ids, jsonl, text, tool};
use trailmix_db::query::{Filter, Query};
use trailmix_db::receipt::Receipt;
use trailmix_db::{Db, Freshness};

fn append(db: &Db, tenant: &str, range: std::ops::Range<u64>) {
    let tickets: Vec<_> = range
        .map(|n| {
            let receipt = Receipt::from_json(&event(tenant, n).to_string()).expect("event");
            db.append(&receipt).expect("append")
        })
        .collect();
    for ticket in tickets {
        ticket.wait().expect("durable");
    }
    // The writer's index covers them (the tool reads its last commit).
    db.query(&Query::new(Filter::default()), Freshness::Durable)
        .expect("index caught up");
}

/// Runs `query --json` until it returns `want` lines (the reader may see the writer's
/// index commit a moment after the writer does).
fn query_until(dir: &str, filter: &str, want: usize) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let output = tool(&["query", dir, filter, "limit=1000", "--json"]);
        assert_eq!(code(&output), Some(0), "{}", text(&output));
        let lines = jsonl(&output);
        if lines.len() == want || start.elapsed() > Duration::from_secs(10) {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn query_and_trace_read_a_store_another_process_is_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let db = Db::open(&store).expect("open");
    append(&db, "acme", 0..30);
    append(&db, "globex", 0..10);

    let lines = query_until(arg(&store), "tenant=acme", 30);
    assert_eq!(lines.len(), 30, "acme's receipts");
    assert!(
        event_ids(&lines)
            .iter()
            .all(|id| id.starts_with("evt-acme-")),
        "another tenant's receipt"
    );
    // Every third acme event is a denial: 0, 3, ..., 27.
    assert_eq!(
        query_until(arg(&store), "tenant=acme decision=deny", 10).len(),
        10
    );

    // The writer goes on; the reader sees the new receipts once they are indexed.
    append(&db, "acme", 30..45);
    assert_eq!(query_until(arg(&store), "tenant=acme", 45).len(), 45);

    // Sessions hold events n / 5: session 2 is events 10..15.
    let output = tool(&[
        "trace",
        arg(&store),
        "--tenant",
        "acme",
        "--session",
        "sess-2",
    ]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    assert!(text(&output).contains("5 receipt(s)"), "{}", text(&output));

    // inspect reads the live index's watermark, then the log: the index trails the writer by
    // a moment (and a timed checkpoint may land between the two reads), so ask again until
    // they agree.
    let start = Instant::now();
    let summary = loop {
        let output = tool(&["inspect", arg(&store), "--json"]);
        assert_eq!(code(&output), Some(0), "{}", text(&output));
        let summary = common::json(&output);
        if summary["index"]["watermark"] == summary["entries"]
            || start.elapsed() > Duration::from_secs(10)
        {
            break summary;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        summary["index"]["watermark"], summary["entries"],
        "{}",
        summary["index"]
    );
    assert_eq!(summary["index"]["lag_entries"], 0, "{}", summary["index"]);

    // The index equals a rebuild from the log, checked beside the live writer.
    let output = tool(&["verify", arg(&store), "--index"]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("equals a rebuild"),
        "{}",
        text(&output)
    );

    // A bad filter is still a usage error, not a lock error.
    let output = tool(&["query", arg(&store), "tenant=acme", "colour=red"]);
    assert_eq!(code(&output), Some(2), "{}", text(&output));
    assert!(!text(&output).contains("lock"), "{}", text(&output));
    db.close().expect("close");
}

#[test]
fn query_says_when_the_index_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let db = Db::open(&store).expect("open");
    append(&db, "acme", 0..3);
    db.close().expect("close");
    std::fs::remove_file(store.join("index").join("index.redb")).expect("remove index");
    let output = tool(&["query", arg(&store), "tenant=acme"]);
    assert_ne!(code(&output), Some(0), "{}", text(&output));
    assert!(text(&output).contains("rebuild"), "{}", text(&output));
    assert!(
        !store.join("index").join("index.redb").exists(),
        "a read-only query created an index"
    );
    let output = tool(&["inspect", arg(&store), "--json"]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    let summary = common::json(&output);
    assert!(
        summary["index"]["watermark"].is_null(),
        "{}",
        summary["index"]
    );
    assert!(
        summary["index"]["problem"].is_string(),
        "{}",
        summary["index"]
    );
}

#[test]
fn verify_index_finds_an_index_that_omits_receipts() {
    use redb::ReadableTable as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let db = Db::open(&store).expect("open");
    append(&db, "acme", 0..12);
    db.close().expect("close");
    // Drop one posting chunk and its term entry: a self-consistent index that hides a term.
    {
        let db = redb::Database::open(store.join("index").join("index.redb")).expect("redb");
        let txn = db.begin_write().expect("txn");
        {
            let table = |name| -> redb::TableDefinition<'_, &[u8], &[u8]> {
                redb::TableDefinition::new(name)
            };
            let mut postings = txn.open_table(table("postings")).expect("postings");
            let key = postings
                .last()
                .expect("read")
                .map(|(k, _)| k.value().to_vec())
                .expect("a chunk");
            postings.remove(key.as_slice()).expect("remove");
            let mut terms = txn.open_table(table("terms")).expect("terms");
            assert!(
                terms
                    .remove(&key[..key.len() - 8])
                    .expect("remove")
                    .is_some()
            );
        }
        txn.commit().expect("commit");
    }
    let output = tool(&["verify", arg(&store), "--index", "--json"]);
    assert_eq!(code(&output), Some(1), "{}", text(&output));
    let report = common::json(&output);
    assert_eq!(report["verdict"], "index_differs", "{report}");
    assert_eq!(report["index"]["matches"], false, "{report}");
    // Without --index the log itself verifies.
    let output = tool(&["verify", arg(&store)]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
}

#[test]
fn prove_works_on_a_store_another_process_is_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let db = Db::open(&store).expect("open");
    append(&db, "acme", 0..20);
    let checkpoint = db.checkpoint().expect("checkpoint").expect("new");
    append(&db, "acme", 20..25);
    db.sync().expect("sync");

    // Covered by the checkpoint: proven without the writer lock, and the bundle checks out
    // with the public key alone.
    let output = tool(&["prove", arg(&store), "--seq", "5"]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    let bundle_file = dir.path().join("bundle.json");
    std::fs::write(&bundle_file, &output.stdout).expect("write bundle");
    let public_key = store.join("signing.pub");
    let checked = tool(&[
        "verify-proof",
        arg(&bundle_file),
        "--public-key",
        arg(&public_key),
    ]);
    assert_eq!(code(&checked), Some(0), "{}", text(&checked));

    // Past the last checkpoint: a reader cannot write one, and says so.
    let past = checkpoint.seq.0 + 2;
    let output = tool(&["prove", arg(&store), "--seq", &past.to_string()]);
    assert_ne!(code(&output), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("no signed checkpoint covers this entry yet"),
        "{}",
        text(&output)
    );
    db.close().expect("close");
}
