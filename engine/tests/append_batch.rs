//! Guards `Db::append_batch`: each item gets what a single `append` of it would (model-based,
//! seeded), duplicates inside a batch and across batches answer with the first copy, a conflict
//! fails that item only, a refused batch changes nothing, backpressure counts receipts and every
//! item ends acknowledged or with an error, shutdown drains batches, acknowledged batches
//! survive power loss (simulated disk), and a large batch prepared on several threads is
//! stored exactly as one prepared by the caller alone.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake};
use std::time::Duration;

use common::{receipt, stored_events};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::wal::sim::{SimDisk, SyncBehaviour};
use trailmix_db::{BatchResults, BatchTicket, Db, DbOptions, Error, VerifyOptions, verify_log};

/// Only a hang guard (a batch that never completes is the bug), never a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn wait(ticket: &BatchTicket) -> BatchResults {
    ticket
        .wait_timeout(HANG_GUARD)
        .expect("every batch completes")
}

/// Deterministic seqs: checkpoints and seals by count only.
fn options() -> DbOptions {
    DbOptions::default()
        .segment_bytes(64 << 10)
        .checkpoint_every_records(7)
        .checkpoint_interval(Duration::from_secs(3600))
        .epoch_records_max(23)
}

/// Event `id` of tenant `t`, in content variant `v` (two variants of one id conflict).
fn item(t: u8, id: u8, v: u8) -> Receipt {
    Receipt::builder(format!("tenant-{t}"), format!("evt-{id}"), Kind::LlmCall)
        .app_id("batch")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .input(serde_json::json!({ "variant": v, "pad": "y".repeat(usize::from(id) * 7) }))
        .build()
        .expect("valid receipt")
}

/// A result reduced to what two stores must agree on (chain hashes and times differ).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    At(Seq, u64),
    Conflict(Seq),
    Other(String),
}

fn outcome(result: &trailmix_db::Result<trailmix_db::ReceiptPosition>) -> Outcome {
    match result {
        Ok(position) => Outcome::At(position.seq, position.epoch.0),
        Err(Error::Conflict { existing, .. }) => Outcome::Conflict(*existing),
        Err(other) => Outcome::Other(other.to_string()),
    }
}

/// Model: per (tenant, id), the first variant stored and its seq.
#[derive(Default)]
struct Model {
    first: HashMap<(u8, u8), (u8, Seq)>,
}

impl Model {
    /// What an append of `(t, id, v)` must answer, given the seq the store gave a new one.
    fn expect(&mut self, key: (u8, u8), v: u8, got: &Outcome) -> Outcome {
        match self.first.get(&key) {
            Some(&(first_v, seq)) if first_v == v => match got {
                Outcome::At(_, epoch) => Outcome::At(seq, *epoch),
                _ => Outcome::Other("expected the first copy's position".into()),
            },
            Some(&(_, seq)) => Outcome::Conflict(seq),
            None => {
                if let Outcome::At(seq, _) = got {
                    self.first.insert(key, (v, *seq));
                }
                got.clone()
            }
        }
    }
}

#[test]
fn batch_items_get_what_single_appends_would() {
    let seeds: u64 = common::env_usize("TRAILMIX_BATCH_SEEDS", 12) as u64;
    for seed in 0..seeds {
        let mut rng = SmallRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().expect("temp dir");
        let single = Db::open_with(dir.path().join("single"), options()).expect("open");
        let batched = Db::open_with(dir.path().join("batched"), options()).expect("open");
        let mut model = Model::default();
        for round in 0..rng.random_range(4..12) {
            let len = rng.random_range(0..30);
            let keys: Vec<(u8, u8, u8)> = (0..len)
                .map(|_| {
                    (
                        rng.random_range(0..2),
                        rng.random_range(0..25),
                        u8::from(rng.random_bool(0.2)),
                    )
                })
                .collect();
            let receipts: Vec<Receipt> = keys.iter().map(|&(t, id, v)| item(t, id, v)).collect();
            let results = wait(&batched.append_batch(&receipts).expect("submit batch"));
            assert_eq!(results.len(), receipts.len(), "seed {seed} round {round}");
            for (i, (receipt, &(t, id, v))) in receipts.iter().zip(&keys).enumerate() {
                let alone = outcome(&single.append_and_wait(receipt));
                let got = outcome(&results[i]);
                let ctx = format!("seed {seed} round {round} item {i} (t{t} evt-{id} v{v})");
                assert_eq!(got, alone, "{ctx}: batch vs single append");
                assert_eq!(got, model.expect((t, id), v, &got), "{ctx}: vs model");
            }
        }
        single.close().expect("close");
        batched.close().expect("close");
        let report = common::assert_verifies(&dir.path().join("batched"));
        assert_eq!(
            report.receipts,
            model.first.len() as u64,
            "seed {seed}: one copy per event"
        );
    }
}

#[test]
fn duplicates_inside_a_batch_and_across_batches_answer_with_the_first_copy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open_with(dir.path(), options()).expect("open");
    let first = wait(
        &db.append_batch(&[item(0, 1, 0), item(0, 2, 0), item(0, 1, 0)])
            .expect("submit"),
    );
    let p = first.positions().expect("all acked");
    assert_eq!(p[2], p[0], "duplicate inside the batch");
    assert_eq!(p[1].seq.0, p[0].seq.0 + 1, "consecutive seqs");
    let second = wait(
        &db.append_batch(&[item(0, 2, 0), item(1, 3, 0), item(0, 1, 0)])
            .expect("submit"),
    );
    let q = second.positions().expect("all acked");
    assert_eq!(q[0], p[1], "duplicate across batches");
    assert_eq!(q[2], p[0], "duplicate across batches");
    assert!(
        q[1].seq > p[1].seq,
        "a new event is written after the others"
    );
    db.close().expect("close");
    assert_eq!(stored_events(dir.path()).len(), 3);
}

#[test]
fn a_conflict_fails_that_item_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open_with(dir.path(), options()).expect("open");
    let stored = db.append_and_wait(&item(0, 5, 0)).expect("append");
    let results = wait(
        &db.append_batch(&[item(0, 6, 0), item(0, 5, 1), item(0, 7, 0), item(0, 6, 1)])
            .expect("submit"),
    );
    assert!(results[0].is_ok());
    match &results[1] {
        Err(Error::Conflict { existing, .. }) => assert_eq!(*existing, stored.seq),
        other => panic!("item 1: expected a conflict, got {other:?}"),
    }
    assert!(results[2].is_ok(), "the item after a conflict is written");
    let first = results[0].as_ref().expect("acked");
    match &results[3] {
        Err(Error::Conflict { existing, .. }) => assert_eq!(*existing, first.seq),
        other => panic!("item 3 conflicts inside the batch, got {other:?}"),
    }
    assert_eq!(results.positions().map_err(|(i, _)| i).err(), Some(1));
    db.close().expect("close");
    let events = stored_events(dir.path());
    assert_eq!(events.len(), 3);
    common::assert_verifies(dir.path());
}

#[test]
fn a_refused_batch_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open_with(dir.path(), options()).expect("open");
    db.append_and_wait(&item(0, 1, 0)).expect("append");
    let end = db.sync().expect("sync");
    // Larger than a 64 KiB segment holds: refused in the caller, before anything is queued.
    let huge = receipt("tenant-0", 900, 70_000);
    let batch = [item(0, 2, 0), huge.clone(), item(0, 3, 0), huge];
    match db.append_batch(&batch) {
        Err(Error::BatchRefused { items }) => {
            let indexes: Vec<usize> = items.iter().map(|(i, _)| *i).collect();
            assert_eq!(indexes, vec![1, 3], "each bad item is reported");
        }
        other => panic!("expected BatchRefused, got {other:?}"),
    }
    assert!(matches!(
        db.try_append_batch(&batch),
        Err(Error::BatchRefused { .. })
    ));
    assert_eq!(db.sync().expect("sync"), end, "nothing was appended");
    // The good items were not queued either: appending them now stores them fresh.
    let results = wait(&db.append_batch(&batch[..1]).expect("submit"));
    assert_eq!(results[0].as_ref().expect("acked").seq, end);
    db.close().expect("close");
    assert_eq!(stored_events(dir.path()).len(), 2);
}

/// Event `id` of tenant `t` for data subject `id % 97` (so a batch creates many data keys),
/// in content variant `v`.
fn subject_item(t: u8, id: u16, v: u8) -> Receipt {
    // The tenant in the event id too: `stored_events` tells events apart by id alone.
    Receipt::builder(
        format!("tenant-{t}"),
        format!("evt-{t}-{id}"),
        Kind::LlmCall,
    )
    .app_id("batch")
    .actor_type(ActorType::Agent)
    .subject_id(format!("subject-{}", id % 97))
    .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
    .input(serde_json::json!({ "variant": v, "id": id }))
    .build()
    .expect("valid receipt")
}

#[test]
fn a_large_batch_prepared_on_several_threads_equals_one_prepared_by_the_caller() {
    let mut rng = SmallRng::seed_from_u64(7);
    // Large enough to be shared (4 chunks and more), with duplicates and conflicts spread
    // over the chunks, and new data keys created from several threads at once.
    let keys: Vec<(u8, u16, u8)> = (0..3000)
        .map(|_| {
            (
                rng.random_range(0..2),
                rng.random_range(0..2500),
                u8::from(rng.random_bool(0.1)),
            )
        })
        .collect();
    let receipts: Vec<Receipt> = keys
        .iter()
        .map(|&(t, id, v)| subject_item(t, id, v))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let open = |name: &str, threads: usize| {
        Db::open_with(
            dir.path().join(name),
            options()
                .segment_bytes(512 << 10)
                .batch_prepare_threads(threads),
        )
        .expect("open")
    };
    let caller = open("caller", 1);
    let shared = open("shared", 4);
    let by_caller = wait(&caller.append_batch(&receipts).expect("submit"));
    let by_shared = wait(&shared.append_batch(&receipts).expect("submit"));
    for i in 0..receipts.len() {
        assert_eq!(
            outcome(&by_shared[i]),
            outcome(&by_caller[i]),
            "item {i} {:?}",
            keys[i]
        );
        if let Ok(position) = &by_shared[i] {
            let stored = shared.get(position.seq).expect("read back");
            assert_eq!(stored.payload, receipts[i].payload(), "item {i}'s payload");
            assert_eq!(stored.header.event_id(), receipts[i].header().event_id());
        }
    }
    // Bad items anywhere in a shared batch refuse it whole, each reported, nothing queued.
    let end = shared.sync().expect("sync");
    // Within the payload limit, larger than the 512 KiB segment holds.
    let huge = receipt("tenant-0", 9_000, 600_000);
    let mut refused = receipts.clone();
    for bad in [5, 1500, 2999] {
        refused[bad] = huge.clone();
    }
    match shared.append_batch(&refused) {
        Err(Error::BatchRefused { items }) => {
            let indexes: Vec<usize> = items.iter().map(|(i, _)| *i).collect();
            assert_eq!(indexes, vec![5, 1500, 2999]);
        }
        other => panic!("expected BatchRefused, got {other:?}"),
    }
    assert_eq!(shared.sync().expect("sync"), end, "nothing was appended");
    caller.close().expect("close");
    shared.close().expect("close");
    assert_eq!(
        stored_events(&dir.path().join("shared")),
        stored_events(&dir.path().join("caller"))
    );
    common::assert_verifies(&dir.path().join("shared"));
}

#[test]
fn backpressure_counts_receipts_and_every_item_ends_acked_or_errored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let capacity = 8;
    let db = Db::open_with(
        dir.path(),
        DbOptions::default()
            .segment_bytes(256 << 10)
            .ring_capacity(capacity)
            .backpressure_timeout(Duration::from_millis(2)),
    )
    .expect("open");
    let too_large: Vec<Receipt> = (0..=capacity as u64).map(|n| receipt("t", n, 4)).collect();
    assert!(matches!(
        db.append_batch(&too_large),
        Err(Error::BatchTooLarge { len: 9, max: 8 })
    ));
    let mut acked: HashMap<String, Seq> = HashMap::new();
    let mut refused = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|thread| {
                let db = db.clone();
                s.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(thread);
                    let mut tickets = Vec::new();
                    let mut refused = Vec::new();
                    for b in 0..60u64 {
                        let len = rng.random_range(1..=capacity as u64);
                        let receipts: Vec<Receipt> = (0..len)
                            .map(|i| receipt("t", thread * 1_000_000 + b * 100 + i, 300))
                            .collect();
                        let submitted = if rng.random_bool(0.5) {
                            db.try_append_batch(&receipts)
                        } else {
                            db.append_batch(&receipts)
                        };
                        match submitted {
                            Ok(ticket) => tickets.push((receipts, ticket)),
                            Err(Error::Backpressure { capacity: 8, .. }) => {
                                refused.extend(receipts);
                            }
                            Err(other) => panic!("unexpected {other}"),
                        }
                    }
                    (tickets, refused)
                })
            })
            .collect();
        for handle in handles {
            let (tickets, more_refused) = handle.join().expect("thread");
            refused.extend(more_refused);
            for (receipts, ticket) in tickets {
                let results = wait(&ticket);
                for (receipt, result) in receipts.iter().zip(results.iter()) {
                    let seq = result.as_ref().expect("a queued item is written").seq;
                    acked.insert(receipt.header().event_id().to_owned(), seq);
                }
            }
        }
    });
    // With every batch written, the whole capacity is free again: a full-size batch goes in
    // without waiting.
    let last: Vec<Receipt> = (0..capacity as u64)
        .map(|n| receipt("t", 9_000_000 + n, 4))
        .collect();
    let results = wait(
        &db.try_append_batch(&last)
            .expect("the ring's room was given back"),
    );
    for (receipt, result) in last.iter().zip(results.iter()) {
        acked.insert(
            receipt.header().event_id().to_owned(),
            result.as_ref().expect("acked").seq,
        );
    }
    db.close().expect("close");
    let stored = stored_events(dir.path());
    for (event, seq) in &acked {
        assert_eq!(stored.get(event), Some(seq), "acked {event}");
    }
    for receipt in &refused {
        assert!(
            !stored.contains_key(receipt.header().event_id()),
            "refused but stored"
        );
    }
    assert_eq!(
        stored.len(),
        acked.len(),
        "nothing unacknowledged is stored"
    );
}

#[test]
fn shutdown_drains_batches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open_with(dir.path(), options()).expect("open");
    let batches: Vec<Vec<Receipt>> = (0..20u64)
        .map(|b| (0..50).map(|i| receipt("t", b * 100 + i, 20)).collect())
        .collect();
    let tickets: Vec<BatchTicket> = batches
        .iter()
        .map(|batch| db.append_batch(batch).expect("submit"))
        .collect();
    drop(db); // the last handle: drains the ring, flushes, closes
    let stored = stored_events(dir.path());
    for (batch, ticket) in batches.iter().zip(&tickets) {
        let results = ticket
            .try_result()
            .expect("complete once the store is closed");
        for (receipt, result) in batch.iter().zip(results.iter()) {
            let seq = result.as_ref().expect("drained, not dropped").seq;
            assert_eq!(stored.get(receipt.header().event_id()), Some(&seq));
        }
    }
    assert_eq!(stored.len(), 20 * 50);
}

/// Records a wake-up and unparks the test thread that polls a future.
struct Unpark {
    thread: std::thread::Thread,
    woken: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

#[test]
fn a_batch_ticket_is_a_future_and_an_empty_batch_completes_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open_with(dir.path(), options()).expect("open");
    let empty = db.append_batch(&[]).expect("submit");
    assert!(empty.is_empty());
    assert_eq!(empty.try_result().expect("complete").len(), 0);
    let mut ticket = pin!(
        db.append_batch(&[item(0, 1, 0), item(0, 2, 0)])
            .expect("submit")
    );
    let unpark = Arc::new(Unpark {
        thread: std::thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Arc::clone(&unpark).into();
    let mut cx = Context::from_waker(&waker);
    let results = loop {
        unpark.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(results) = ticket.as_mut().poll(&mut cx) {
            break results;
        }
        // Pending: only the stored waker brings the test back (no polling on a timer).
        let started = std::time::Instant::now();
        while !unpark.woken.load(Ordering::SeqCst) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "a pending batch future was never woken"
            );
            std::thread::park_timeout(Duration::from_secs(1));
        }
    };
    assert_eq!(results.positions().expect("acked").len(), 2);
    db.close().expect("close");
}

fn sim_options() -> DbOptions {
    DbOptions::default()
        .segment_bytes(16 * 4096)
        .checkpoint_every_records(7)
        .checkpoint_interval(Duration::from_secs(3600))
        .epoch_records_max(40)
}

/// Power loss at random storage operations while batches are in flight: every acknowledged
/// item is there after recovery, at its position, and the store verifies.
#[test]
fn acknowledged_batches_survive_power_loss() {
    let keys = tempfile::tempdir().expect("temp dir");
    for seed in 0..common::env_usize("TRAILMIX_BATCH_CRASH_SEEDS", 12) as u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let keys = keys.path().join(format!("seed-{seed}"));
        let disk = SimDisk::new(seed);
        let mut acked: Vec<(Seq, u64)> = Vec::new();
        let mut next = 0u64;
        for cycle in 0..5 {
            let db = Db::open_on(&disk, &keys, sim_options())
                .unwrap_or_else(|e| panic!("seed {seed} cycle {cycle}: reopen: {e}"));
            for (seq, n) in &acked {
                let stored = db
                    .get(*seq)
                    .unwrap_or_else(|e| panic!("seed {seed} cycle {cycle}: acked {seq} lost: {e}"));
                assert_eq!(
                    stored.header.event_id(),
                    common::event_id(*n),
                    "seed {seed}"
                );
            }
            disk.crash_at_op(disk.ops() + rng.random_range(1..400));
            'cycle: for _ in 0..rng.random_range(2..10) {
                let len = rng.random_range(1..25);
                let numbers: Vec<u64> = (next..next + len).collect();
                next += len;
                let receipts: Vec<Receipt> = numbers
                    .iter()
                    .map(|&n| receipt("t", n, usize::try_from(n % 500).expect("small")))
                    .collect();
                let Ok(ticket) = db.append_batch(&receipts) else {
                    break;
                };
                let results = wait(&ticket);
                for (n, result) in numbers.iter().zip(results.iter()) {
                    match result {
                        Ok(position) => acked.push((position.seq, *n)),
                        Err(_) => break 'cycle, // the disk froze
                    }
                }
            }
            drop(db);
            disk.crash();
            disk.set_sync_behaviour(SyncBehaviour::Honest);
            let report = verify_log(&disk, None, &VerifyOptions::default())
                .unwrap_or_else(|e| panic!("seed {seed} cycle {cycle}: verify: {e}"));
            assert!(
                report.damage.is_none(),
                "seed {seed} cycle {cycle}: {:?}",
                report.damage
            );
        }
        assert!(!acked.is_empty(), "seed {seed}: something was acknowledged");
    }
}
