//! Guards invariant 8 for queries: a `ReadOnlyStore` opened on a store that a `Db` is writing
//! (no lock taken) answers queries, traces, event lookups and aggregates exactly as the
//! writer does for the same index snapshot, follows the writer's later commits, and refuses
//! what it cannot read with a typed error while creating nothing.

use std::time::{Duration, Instant};

use redb::ReadableTable as _;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_db::query::{AggregateQuery, Bucket, Dimension, Direction, Filter, Order, Query};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::{Db, DbOptions, Error, Freshness, ReadOnlyStore};

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const T0: i64 = 1_790_812_800_000_000_000;

fn receipt(rng: &mut SmallRng, n: u64) -> Receipt {
    let tenant = TENANTS[rng.random_range(0..TENANTS.len())];
    Receipt::builder(tenant, format!("e{n}"), Kind::LlmCall)
        .app_id("app")
        .actor_type(ActorType::Agent)
        .session_id(format!("s{}", rng.random_range(0..4)))
        .model_name(["gpt-4o", "claude"][rng.random_range(0..2)])
        .event_time(Timestamp::from_unix_nanos(
            T0 + rng.random_range(0..7200_i64) * 1_000_000_000,
        ))
        .input(serde_json::json!({ "n": n }))
        .build()
        .expect("valid receipt")
}

fn append(db: &Db, rng: &mut SmallRng, range: std::ops::Range<u64>) {
    let tickets: Vec<_> = range
        .map(|n| db.append(&receipt(rng, n)).expect("append"))
        .collect();
    for ticket in tickets {
        ticket.wait().expect("durable");
    }
}

fn seqs(page: &trailmix_db::QueryPage) -> Vec<u64> {
    page.receipts.iter().map(|r| r.position.seq.0).collect()
}

/// Waits until the reader's view of the index covers `end`.
fn wait_indexed(reader: &ReadOnlyStore, end: Seq) {
    let start = Instant::now();
    while reader.index_watermark().expect("watermark") < end {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "index never reached {end}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    for tenant in TENANTS {
        for order in [
            Order::Seq(Direction::Ascending),
            Order::EventTime(Direction::Descending),
        ] {
            let mut q = Query::new(Filter {
                tenant: Some(tenant.to_owned()),
                since: Some(T0 + 600_000_000_000),
                ..Filter::default()
            });
            q.order = order;
            q.limit = 1000;
            out.push(q);
        }
    }
    out.push(Query::parse("model=claude limit=1000").expect("parse"));
    out
}

#[test]
fn a_reader_beside_a_live_writer_answers_as_the_writer_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let db = Db::open_with(&path, DbOptions::default().segment_bytes(256 << 10)).expect("open");
    let mut rng = SmallRng::seed_from_u64(8);
    append(&db, &mut rng, 0..600);
    let reader = ReadOnlyStore::open(&path).expect("read-only open beside the writer");
    for round in 0..3u64 {
        // Both sides at the same watermark: the writer's index is current, the reader waits
        // until its snapshot shows that commit.
        let end = db.durable_end();
        db.query(&Query::new(Filter::default()), Freshness::Durable)
            .expect("writer catches up");
        wait_indexed(&reader, end);
        for q in queries() {
            let expected = db.query(&q, Freshness::Indexed).expect("writer query");
            let got = reader.query(&q).expect("reader query");
            assert_eq!(seqs(&got), seqs(&expected), "round {round}: {q:?}");
            assert!(
                !got.receipts.is_empty(),
                "round {round}: {q:?} found nothing"
            );
        }
        for session in ["s0", "s3"] {
            let expected = db
                .trace("acme", session, Freshness::Indexed)
                .expect("trace");
            let got = reader.trace("acme", session).expect("reader trace");
            assert_eq!(got.receipts.len(), expected.receipts.len());
        }
        let agg = AggregateQuery {
            tenant: None,
            dimension: Dimension::Model,
            bucket: Bucket::Hour,
            since: None,
            until: None,
        };
        assert_eq!(
            reader.aggregate(&agg).expect("reader aggregate"),
            db.aggregate(&agg, Freshness::Indexed).expect("aggregate")
        );
        let last = 600 + round * 300 - 1;
        let found = reader.find_event_any(last).expect("lookup");
        assert_eq!(found, Some(format!("e{last}")), "round {round}");
        // The writer goes on (rolling segments) while the reader stays open.
        append(&db, &mut rng, 600 + round * 300..900 + round * 300);
    }
    assert_eq!(reader.log_end().expect("log end"), db.durable_end());
    drop(reader);
    db.close().expect("close");
}

/// `find_event` over every tenant (the test does not track which tenant each id went to).
trait FindAny {
    fn find_event_any(&self, n: u64) -> trailmix_db::Result<Option<String>>;
}

impl FindAny for ReadOnlyStore {
    fn find_event_any(&self, n: u64) -> trailmix_db::Result<Option<String>> {
        for tenant in TENANTS {
            if let Some(found) = self.find_event(tenant, &format!("e{n}"))? {
                return Ok(Some(found.header.event_id().to_owned()));
            }
        }
        Ok(None)
    }
}

#[test]
fn what_cannot_be_read_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nothing-here");
    let err = ReadOnlyStore::open(&missing).expect_err("no store");
    assert!(matches!(err, Error::Wal(_)), "{err:?}");
    assert!(!missing.exists(), "a read-only open created the directory");

    let path = dir.path().join("store");
    let db = Db::open(&path).expect("open");
    append(&db, &mut SmallRng::seed_from_u64(1), 0..20);
    db.close().expect("close");
    let index = path.join("index").join("index.redb");
    std::fs::remove_file(&index).expect("remove index");
    let err = ReadOnlyStore::open(&path).expect_err("no index");
    assert!(matches!(err, Error::Index { .. }), "{err:?}");
    assert!(err.to_string().contains("rebuild"), "{err}");
    assert!(!index.exists(), "a read-only open created an index");
    // The writer rebuilds it; then the reader works, also with no writer running.
    Db::open(&path).expect("reopen").close().expect("close");
    let reader = ReadOnlyStore::open(&path).expect("read-only open");
    let page = reader.query_text("limit=100").expect("query");
    assert_eq!(page.receipts.len(), 20);
    let check = reader.check_index().expect("check");
    assert!(check.matches, "{check:?}");
    drop(reader);

    // An index that omits a whole term (its posting chunk and its `terms` entry, so that
    // it is self-consistent) answers without error but no longer equals the rebuild.
    {
        let db = redb::Database::open(&index).expect("redb");
        let txn = db.begin_write().expect("txn");
        {
            let table = |name| -> redb::TableDefinition<'_, &[u8], &[u8]> {
                redb::TableDefinition::new(name)
            };
            let mut postings = txn.open_table(table("postings")).expect("postings");
            let first = postings
                .first()
                .expect("read")
                .map(|(k, _)| k.value().to_vec())
                .expect("a posting chunk");
            postings.remove(first.as_slice()).expect("remove");
            // A posting key is the term followed by the chunk's first seq (8 bytes).
            let term = &first[..first.len() - 8];
            let mut terms = txn.open_table(table("terms")).expect("terms");
            assert!(
                terms.remove(term).expect("remove").is_some(),
                "no such term"
            );
        }
        txn.commit().expect("commit");
    }
    let reader = ReadOnlyStore::open(&path).expect("read-only open");
    let check = reader.check_index().expect("check");
    assert!(!check.matches, "a damaged index passed: {check:?}");
}

/// Invariant 8 for proofs: a reader proves entries of sealed and open epochs from the notes
/// already in the writer's log, writes nothing, and says when no checkpoint covers an entry.
#[test]
fn a_reader_proves_beside_the_writer_from_the_notes_in_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = DbOptions::default()
        .epoch_records_max(150)
        .checkpoint_every_records(1_000_000)
        .checkpoint_interval(Duration::from_secs(3600));
    let db = Db::open_with(dir.path(), options).expect("open");
    let mut rng = SmallRng::seed_from_u64(7);
    append(&db, &mut rng, 0..400);
    let covered = db.checkpoint().expect("checkpoint").expect("new").seq;
    append(&db, &mut rng, 400..410);
    let end = db.sync().expect("sync");

    let reader = ReadOnlyStore::open(dir.path()).expect("read-only open");
    let verifier =
        trailmix_db::note::NoteVerifier::from_vkey(&db.verifier().to_vkey()).expect("public key");
    let mut bundles = Vec::new();
    for seq in 0..end.0 {
        match reader.prove(Seq(seq)) {
            Ok(bundle) => {
                trailmix_db::proof::verify_inclusion_bundle(&bundle, &verifier)
                    .unwrap_or_else(|e| panic!("seq {seq}: {e}"));
                assert_eq!(bundle.seq, seq);
                assert!(seq < covered.0, "seq {seq} is past the last checkpoint");
                bundles.push(bundle);
            }
            Err(Error::NotFound { detail, .. }) if detail.contains("seal") => {}
            Err(Error::NotFound { detail, .. }) if detail.contains("no signed checkpoint") => {
                assert!(seq >= covered.0, "seq {seq} is covered by seq {covered}");
            }
            Err(e) => panic!("seq {seq}: {e}"),
        }
    }
    // Two full epochs sealed (their seals are not leaves) and the open one up to the
    // checkpoint.
    assert_eq!(
        bundles.len() as u64,
        covered.0 - 2,
        "every covered leaf proved"
    );
    assert!(
        !dir.path().join(trailmix_db::PROOF_DIR).exists(),
        "the reader wrote proof tables into the store"
    );
    // The writer's own proofs rest on the same notes with the same paths.
    for bundle in &bundles {
        let own = db.prove(Seq(bundle.seq)).expect("writer's proof");
        assert_eq!(
            (&own.path, &own.checkpoint),
            (&bundle.path, &bundle.checkpoint),
            "seq {}",
            bundle.seq
        );
    }
    db.close().expect("close");
}
