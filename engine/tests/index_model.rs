//! Guards invariant 5 end to end: queries through `Db` (paged with cursors, both orders and
//! directions, tenant handles) equal a brute-force model over random workloads, across
//! reopens, an index rolled back to an older copy, a deleted and a corrupted index; the live
//! index always equals a rebuild from the log; idempotency holds across all of them.

use std::collections::BTreeMap;
use std::path::Path;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_db::query::{Cursor, Direction, Filter, ModelFilter, Order, Query};
use trailmix_db::receipt::{Decision, Kind, Receipt, Timestamp};
use trailmix_db::{Db, DbOptions, Error, Freshness, StoredReceipt};

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const MODELS: [(&str, &str); 3] = [
    ("gpt-4o", "2024-08"),
    ("gpt-4o", "2024-11"),
    ("claude", "3"),
];
const KINDS: [Kind; 3] = [Kind::LlmCall, Kind::ToolCall, Kind::PolicyDecision];
const DECISIONS: [Decision; 2] = [Decision::Allow, Decision::Deny];

fn options() -> DbOptions {
    DbOptions::default()
        .segment_bytes(64 << 10)
        .epoch_records_max(70)
        .checkpoint_every_records(23)
}

/// What the test knows it stored: every receipt by event id, for idempotency and queries.
#[derive(Default)]
struct Model {
    receipts: BTreeMap<u64, StoredReceipt>,
    by_event: BTreeMap<(String, String), (u64, Receipt)>,
    next_event: u64,
}

fn random_receipt(rng: &mut SmallRng, model: &mut Model) -> Receipt {
    let tenant = TENANTS[rng.random_range(0..TENANTS.len())];
    model.next_event += 1;
    let event_id = format!("e{}", model.next_event);
    let session = format!("s{}", rng.random_range(0..6));
    let mut builder = Receipt::builder(
        tenant,
        event_id,
        KINDS[rng.random_range(0..KINDS.len())].clone(),
    )
    .app_id("app")
    .actor_type(trailmix_db::receipt::ActorType::Agent)
    .session_id(session)
    .event_time(Timestamp::from_unix_nanos(
        1_700_000_000_000_000_000 + rng.random_range(0..50_i64) * 60_000_000_000,
    ));
    if rng.random_bool(0.8) {
        let (name, version) = MODELS[rng.random_range(0..MODELS.len())];
        builder = builder.model_name(name).model_version(version);
    }
    if rng.random_bool(0.5) {
        builder = builder.decision(DECISIONS[rng.random_range(0..DECISIONS.len())].clone());
    }
    if rng.random_bool(0.3) {
        builder = builder.label("region", if rng.random_bool(0.5) { "eu" } else { "us" });
    }
    if model.next_event > 1 && rng.random_bool(0.4) {
        builder = builder.parent_id(format!("e{}", rng.random_range(1..model.next_event)));
    }
    builder.build().expect("valid receipt")
}

fn append_some(db: &Db, rng: &mut SmallRng, model: &mut Model) {
    let mut tickets = Vec::new();
    for _ in 0..rng.random_range(1..40) {
        let repeat = !model.by_event.is_empty() && rng.random_bool(0.1);
        if repeat {
            let index = rng.random_range(0..model.by_event.len());
            let (_, (seq, receipt)) = model.by_event.iter().nth(index).expect("exists");
            let again = db
                .append(receipt)
                .expect("append")
                .wait()
                .expect("duplicate");
            assert_eq!(
                again.seq.0, *seq,
                "the same receipt again returns the first position"
            );
            let mut changed = receipt.to_sdk_json_value();
            changed["app_id"] = "other-app".into();
            let conflict = Receipt::from_json_value(changed).expect("valid");
            let err = db
                .append(&conflict)
                .expect("append")
                .wait()
                .expect_err("conflict");
            assert!(
                matches!(err, Error::Conflict { existing, .. } if existing.0 == *seq),
                "{err:?}"
            );
            continue;
        }
        let receipt = random_receipt(rng, model);
        tickets.push((db.append(&receipt).expect("append"), receipt));
    }
    for (ticket, receipt) in tickets {
        let position = ticket.wait().expect("durable");
        let key = (
            receipt.header().tenant_id().to_owned(),
            receipt.header().event_id().to_owned(),
        );
        model.by_event.insert(key, (position.seq.0, receipt));
        model
            .receipts
            .insert(position.seq.0, db.get(position.seq).expect("read back"));
    }
}

fn random_filter(rng: &mut SmallRng) -> Filter {
    let mut filter = Filter::default();
    if rng.random_bool(0.7) {
        filter.tenant = Some(TENANTS[rng.random_range(0..TENANTS.len())].to_owned());
    }
    if rng.random_bool(0.3) {
        let (name, version) = MODELS[rng.random_range(0..MODELS.len())];
        let version = rng.random_bool(0.5).then(|| version.to_owned());
        filter.model = Some(ModelFilter {
            name: name.to_owned(),
            version,
        });
    }
    if rng.random_bool(0.2) {
        filter.kind = Some(KINDS[rng.random_range(0..KINDS.len())].as_str().to_owned());
    }
    if rng.random_bool(0.2) {
        filter.decision = Some(
            DECISIONS[rng.random_range(0..DECISIONS.len())]
                .as_str()
                .to_owned(),
        );
    }
    if rng.random_bool(0.2) {
        filter.session = Some(format!("s{}", rng.random_range(0..6)));
    }
    if rng.random_bool(0.1) {
        filter.labels.insert("region".into(), "eu".into());
    }
    if rng.random_bool(0.3) {
        let from = 1_700_000_000_000_000_000 + rng.random_range(0..40_i64) * 60_000_000_000;
        filter.since = Some(from);
        filter.until = Some(from + rng.random_range(1..20_i64) * 60_000_000_000);
    }
    filter
}

fn random_order(rng: &mut SmallRng) -> Order {
    let direction = if rng.random_bool(0.5) {
        Direction::Ascending
    } else {
        Direction::Descending
    };
    if rng.random_bool(0.5) {
        Order::Seq(direction)
    } else {
        Order::EventTime(direction)
    }
}

/// The model's answer: every stored receipt the filter matches, in the query's order.
fn expected(model: &Model, filter: &Filter, order: Order) -> Vec<u64> {
    let mut hits: Vec<(i64, u64)> = model
        .receipts
        .values()
        .filter(|r| {
            let fields = trailmix_db::indexer::index_record_of(r);
            filter.matches(&fields)
        })
        .map(|r| (r.header.event_time().as_unix_nanos(), r.position.seq.0))
        .collect();
    match order {
        Order::Seq(_) => hits.sort_by_key(|(_, seq)| *seq),
        Order::EventTime(_) => hits.sort_unstable(),
    }
    if order.direction() == Direction::Descending {
        hits.reverse();
    }
    hits.into_iter().map(|(_, seq)| seq).collect()
}

/// Pages through the query with a small limit and returns every seq, checking each page.
fn paged(db: &Db, filter: &Filter, order: Order, limit: u32) -> Vec<u64> {
    let mut query = Query::new(filter.clone());
    query.order = order;
    query.limit = limit;
    let mut seqs = Vec::new();
    for _ in 0..10_000 {
        let page = db.query(&query, Freshness::Durable).expect("query");
        assert!(page.receipts.len() <= limit as usize);
        seqs.extend(page.receipts.iter().map(|r| r.position.seq.0));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(Cursor::decode(&cursor).expect("cursor decodes")),
            None => return seqs,
        }
    }
    panic!("paging did not end");
}

fn check_queries(db: &Db, rng: &mut SmallRng, model: &Model) {
    for _ in 0..8 {
        let filter = random_filter(rng);
        let order = random_order(rng);
        let want = expected(model, &filter, order);
        let got = paged(db, &filter, order, rng.random_range(1..12));
        assert_eq!(got, want, "filter {filter} order {order:?}");
    }
    let tenant = TENANTS[rng.random_range(0..TENANTS.len())];
    let mut filter = random_filter(rng);
    filter.tenant = None;
    let mut query = Query::new(filter);
    query.limit = 10_000;
    let page = db
        .tenant(tenant)
        .query(&query, Freshness::Durable)
        .expect("tenant query");
    assert!(page.receipts.iter().all(|r| r.header.tenant_id() == tenant));
    for (key, (seq, _)) in model.by_event.iter().take(5) {
        let found = db
            .find_event(&key.0, &key.1)
            .expect("find")
            .expect("present");
        assert_eq!(found.position.seq.0, *seq);
    }
}

fn copy_file(from: &Path, to: &Path) {
    std::fs::copy(from, to).expect("copy index file");
}

/// Seeds 0..6, or with `TRAILMIX_SEED=S` (the soak runner's variable) S..S + 6 (wrapping).
fn seeds() -> impl Iterator<Item = u64> {
    let base = std::env::var("TRAILMIX_SEED").map_or(0, |v| {
        v.parse::<u64>()
            .unwrap_or_else(|_| panic!("TRAILMIX_SEED={v} is not a u64"))
    });
    (0..6).map(move |i| base.wrapping_add(i))
}

/// While alive, a panic (a failed check) also prints the seed and the command that reruns it.
struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "seed {0} failed\nrerun: TRAILMIX_SEED={0} cargo test -p trailmix-db --test index_model",
                self.0
            );
        }
    }
}

#[test]
fn queries_equal_the_model_across_reopens_and_index_damage() {
    for seed in seeds() {
        let _guard = SeedGuard(seed);
        let mut rng = SmallRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        let index_file = store.join("index").join("index.redb");
        let saved = dir.path().join("older-index.redb");
        let mut model = Model::default();
        let mut db = Db::open_with(&store, options()).expect("open");
        for step in 0..14 {
            append_some(&db, &mut rng, &mut model);
            check_queries(&db, &mut rng, &model);
            match rng.random_range(0..6) {
                0 => {
                    db.close().expect("close");
                    db = Db::open_with(&store, options()).expect("reopen");
                }
                1 => {
                    db.close().expect("close");
                    copy_file(&index_file, &saved);
                    db = Db::open_with(&store, options()).expect("reopen");
                }
                2 if saved.exists() => {
                    // The index as an earlier durable commit left it: opening catches it up.
                    db.close().expect("close");
                    copy_file(&saved, &index_file);
                    db = Db::open_with(&store, options()).expect("reopen with an older index");
                }
                3 => {
                    db.close().expect("close");
                    std::fs::remove_file(&index_file).expect("delete index");
                    db = Db::open_with(&store, options()).expect("reopen without index");
                    assert!(matches!(
                        db.index_status().opening,
                        trailmix_db::indexer::IndexOpening::Rebuilt { .. }
                    ));
                }
                4 => {
                    db.close().expect("close");
                    std::fs::write(&index_file, b"not a redb file at all").expect("corrupt");
                    db = Db::open_with(&store, options()).expect("reopen with a corrupt index");
                    assert!(matches!(
                        db.index_status().opening,
                        trailmix_db::indexer::IndexOpening::Rebuilt { .. }
                    ));
                }
                _ => {}
            }
            if step % 4 == 3 {
                db.sync().expect("sync");
                let check = db.check_index().expect("check index");
                assert!(
                    check.matches,
                    "seed {seed} step {step}: live index differs from a rebuild"
                );
            }
        }
        check_queries(&db, &mut rng, &model);
        db.close().expect("close");
    }
}
