//! Guards `DbOptions::query_threads`: pages read by several threads are the pages one thread
//! reads (same receipts, order, cursors, rejected counts), for full and header-only queries
//! and traces, and a tampered receipt read by a helper thread is refused as `Damaged` at the
//! same seq as when the caller reads it alone.

mod common;

use std::path::{Path, PathBuf};

use common::{file_name, frame_image, layout, read_at, wal_dir, write_at};
use tempfile::TempDir;
use trailmix_db::entry::EntryKind;
use trailmix_db::query::{Cursor, Query};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::{Db, DbOptions, Error, Freshness, Result};

const RECEIPTS: u64 = 600;
/// One thread alone, and more threads than this machine may have cores.
const THREADS: [usize; 2] = [1, 4];

/// Receipt `n`: two tenants, four sessions, two models, a label on every third.
fn receipt(n: u64) -> Receipt {
    let tenant = if n.is_multiple_of(5) { "beta" } else { "acme" };
    let mut builder = Receipt::builder(tenant, format!("evt-{n:06}"), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .session_id(format!("s{}", n % 4))
        .event_time(Timestamp::from_unix_nanos(
            1_700_000_000_000_000_000 + i64::try_from(n).expect("fits") * 1_000_000,
        ))
        .model_name(if n.is_multiple_of(3) {
            "gpt-4.1"
        } else {
            "claude"
        })
        .input(serde_json::json!({ "prompt": format!("claim {n}") }));
    if n % 3 == 1 {
        builder = builder.label("queue", "urgent");
    }
    builder.build().expect("valid receipt")
}

/// A closed store of [`RECEIPTS`] receipts, all indexed.
fn store() -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    let db = Db::open(&data).expect("open");
    let tickets: Vec<_> = (0..RECEIPTS)
        .map(|n| db.append(&receipt(n)).expect("append"))
        .collect();
    for ticket in tickets {
        ticket.wait().expect("durable");
    }
    db.query_text("tenant=acme", Freshness::Durable)
        .expect("index caught up");
    db.close().expect("close");
    (tmp, data)
}

fn open(data: &Path, threads: usize) -> Db {
    Db::open_with(data, DbOptions::default().query_threads(threads)).expect("open")
}

/// The filters compared: ascending and descending, one that the index answers exactly and
/// ones whose candidates the re-check rejects in part.
const FILTERS: [&str; 6] = [
    "tenant=acme limit=100",
    "tenant=acme order=-seq limit=70",
    "tenant=acme order=-time limit=90",
    "tenant=acme model=claude limit=50",
    "tenant=acme label.queue=urgent limit=40",
    "tenant=beta session=s0 limit=500",
];

/// Every page of `filter`, walked by cursor: per page the (seq, event id, payload) of each
/// result, the cursor and the rejected count, as text.
fn walk(db: &Db, filter: &str, heads: bool) -> Result<Vec<String>> {
    let mut query = Query::parse(filter).expect("filter");
    let mut pages = Vec::new();
    loop {
        let (results, cursor, rejected) = if heads {
            let page = db.query_heads(&query, Freshness::Indexed)?;
            let results: Vec<String> = page
                .receipts
                .iter()
                .map(|r| format!("{:?} {}", r.position.seq, r.header.event_id()))
                .collect();
            (results, page.next_cursor, page.candidates_rejected)
        } else {
            let page = db.query(&query, Freshness::Indexed)?;
            let results: Vec<String> = page
                .receipts
                .iter()
                .map(|r| {
                    format!(
                        "{:?} {} {}",
                        r.position.seq,
                        r.header.event_id(),
                        String::from_utf8_lossy(&r.payload)
                    )
                })
                .collect();
            (results, page.next_cursor, page.candidates_rejected)
        };
        pages.push(format!("{results:?} next={cursor:?} rejected={rejected}"));
        match cursor {
            Some(cursor) => query.cursor = Some(Cursor::decode(&cursor).expect("cursor")),
            None => return Ok(pages),
        }
    }
}

fn trace(db: &Db, tenant: &str, session: &str) -> Result<String> {
    let trace = db.trace(tenant, session, Freshness::Indexed)?;
    Ok(format!("{:?}", trace.receipts))
}

#[test]
fn pages_and_traces_are_the_same_with_any_number_of_threads() {
    let (_tmp, data) = store();
    let mut answers: Vec<Vec<String>> = Vec::new();
    for threads in THREADS {
        let db = open(&data, threads);
        let mut answer = Vec::new();
        for filter in FILTERS {
            for heads in [false, true] {
                answer.extend(walk(&db, filter, heads).expect("query"));
            }
        }
        answer.push(trace(&db, "acme", "s1").expect("trace"));
        db.close().expect("close");
        answers.push(answer);
    }
    assert!(
        answers[0].len() > 10,
        "the walks span several pages: {}",
        answers[0].len()
    );
    assert_eq!(answers[0], answers[1]);
}

/// Rewrites the `number`th receipt's (append order) payload's last byte, frame CRC
/// rewritten; returns its seq.
fn tamper(data: &Path, number: usize) -> Seq {
    let (_, frames) = layout(data);
    let frame = frames
        .iter()
        .filter(|f| f.entry_kind() == EntryKind::Receipt)
        .nth(number)
        .expect("the victim");
    let header = read_at(&frame.file, frame.offset, 32);
    let durable_end = Seq(u64::from_le_bytes(
        header[16..24].try_into().expect("8 bytes"),
    ));
    let mut entry = frame.payload.clone();
    let last = entry.last_mut().expect("a payload");
    *last ^= 0x01;
    let image = frame_image(frame.seq, durable_end, frame.kind, &entry);
    write_at(
        &wal_dir(data).join(file_name(&frame.file)),
        frame.offset,
        &image,
    );
    frame.seq
}

fn assert_damaged<T>(answer: Result<T>, seq: Seq, what: &str) {
    match answer {
        Err(Error::Damaged { seq: at, .. }) => assert_eq!(at, seq, "{what}: names the receipt"),
        Err(other) => panic!("{what}: expected Damaged at {seq:?}, got {other}"),
        Ok(_) => panic!("{what}: expected Damaged at {seq:?}, got an answer"),
    }
}

#[test]
fn a_tampered_result_is_refused_whichever_thread_reads_it() {
    let (_tmp, data) = store();
    // Receipt 301 (acme, session s1, model claude, labelled): deep in several pages.
    let seq = tamper(&data, 301);
    for threads in THREADS {
        let db = open(&data, threads);
        for filter in [
            "tenant=acme limit=100",
            "tenant=acme model=claude limit=300",
        ] {
            for heads in [false, true] {
                assert_damaged(
                    walk(&db, filter, heads),
                    seq,
                    &format!("{filter} heads={heads} threads={threads}"),
                );
            }
        }
        assert_damaged(
            trace(&db, "acme", "s1"),
            seq,
            &format!("trace threads={threads}"),
        );
        db.close().expect("close");
    }
}
