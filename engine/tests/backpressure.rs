//! Guards invariant 2: nothing is dropped silently. With a tiny ring and many threads, every
//! submission ends acknowledged (and is then in the store) or with an error (and is then not
//! in the store); a full ring blocks (bounded) or refuses with `Backpressure`; after `close`
//! appends fail with `Closed`; dropping every handle drains and flushes.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{assert_verifies, event_id, receipt, stored_events};
use trailmix_db::wal::Seq;
use trailmix_db::{Db, DbOptions, Durability, Error, Ticket};

/// Generous bound on how long a ticket may take to complete: only a hang guard (a ticket that
/// never completes is the bug), never a performance assertion.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn wait(ticket: &Ticket) -> trailmix_db::Result<trailmix_db::ReceiptPosition> {
    ticket
        .wait_timeout(HANG_GUARD)
        .expect("every ticket completes")
}

/// How each submission ended.
#[derive(Debug, Default)]
struct Outcomes {
    /// Event number → acknowledged sequence number.
    acked: HashMap<u64, Seq>,
    /// Event numbers refused with `Backpressure`.
    refused: Vec<u64>,
    /// Event numbers that ended with `Closed`.
    closed: Vec<u64>,
}

impl Outcomes {
    fn merge(&mut self, other: Outcomes) {
        self.acked.extend(other.acked);
        self.refused.extend(other.refused);
        self.closed.extend(other.closed);
    }

    fn total(&self) -> usize {
        self.acked.len() + self.refused.len() + self.closed.len()
    }
}

/// Records how the submission of event `n` ended. Anything but an acknowledgement,
/// `Backpressure` or `Closed` fails the test.
fn record(outcomes: &mut Outcomes, n: u64, result: trailmix_db::Result<Seq>) {
    match result {
        Ok(seq) => {
            assert!(outcomes.acked.insert(n, seq).is_none());
        }
        Err(Error::Backpressure { capacity, .. }) => {
            assert_eq!(capacity, 4);
            outcomes.refused.push(n);
        }
        Err(Error::Closed) => outcomes.closed.push(n),
        Err(other) => panic!("event {n}: unexpected error {other}"),
    }
}

/// After the store is closed: every acknowledged receipt is in it at its position, nothing
/// else is, and it verifies.
fn check_store(data: &Path, outcomes: &Outcomes) {
    let stored = stored_events(data);
    for (n, seq) in &outcomes.acked {
        assert_eq!(stored.get(&event_id(*n)), Some(seq), "acked event {n}");
    }
    for n in outcomes.refused.iter().chain(&outcomes.closed) {
        assert!(
            !stored.contains_key(&event_id(*n)),
            "event {n} was refused but is in the store"
        );
    }
    assert_eq!(stored.len(), outcomes.acked.len(), "nothing unacknowledged");
    let db = Db::open(data).expect("reopen");
    for (n, seq) in outcomes.acked.iter().take(50) {
        assert_eq!(
            db.get(*seq).expect("acked receipt").header.event_id(),
            event_id(*n)
        );
    }
    db.close().expect("close");
    assert_verifies(data);
}

#[test]
fn a_full_ring_refuses_and_never_drops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let options = DbOptions::default()
        .ring_capacity(4)
        .backpressure_timeout(Duration::ZERO);
    let db = Db::open_with(&data, options).expect("open");
    let threads = 8u64;
    let per_thread = 300u64;
    let start = Arc::new(Barrier::new(usize::try_from(threads).expect("fits")));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let mut outcomes = Outcomes::default();
                let mut tickets = Vec::new();
                for i in 0..per_thread {
                    let n = t * 100_000 + i;
                    match db.append(&receipt("acme", n, 64)) {
                        Ok(ticket) => tickets.push((n, ticket)),
                        Err(err) => record(&mut outcomes, n, Err(err)),
                    }
                }
                for (n, ticket) in tickets {
                    record(&mut outcomes, n, wait(&ticket).map(|p| p.seq));
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Outcomes::default();
    for handle in handles {
        outcomes.merge(handle.join().expect("thread"));
    }
    assert_eq!(outcomes.total() as u64, threads * per_thread);
    assert!(outcomes.closed.is_empty());
    eprintln!(
        "{} submissions: {} acknowledged, {} refused with Backpressure",
        threads * per_thread,
        outcomes.acked.len(),
        outcomes.refused.len()
    );
    assert!(!outcomes.acked.is_empty(), "some were acknowledged");
    assert!(!outcomes.refused.is_empty(), "a ring of 4 overflowed");

    // A refused receipt was not appended: submitting it again stores it once.
    let retried: Vec<u64> = outcomes.refused.iter().copied().take(20).collect();
    for n in &retried {
        let position = loop {
            match db.append_and_wait(&receipt("acme", *n, 64)) {
                Ok(position) => break position,
                Err(Error::Backpressure { .. }) => std::thread::yield_now(),
                Err(other) => panic!("retry of {n}: {other}"),
            }
        };
        outcomes.acked.insert(*n, position.seq);
    }
    outcomes.refused.retain(|n| !retried.contains(n));
    db.close().expect("close");
    check_store(&data, &outcomes);
}

#[test]
fn try_append_on_a_full_ring_is_backpressure_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    // A blocking append would wait up to an hour: `try_append` must not.
    let options = DbOptions::default()
        .ring_capacity(4)
        .backpressure_timeout(Duration::from_secs(3600));
    let db = Db::open_with(&data, options).expect("open");
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut outcomes = Outcomes::default();
                let mut tickets = Vec::new();
                for i in 0..2_000 {
                    let n = t * 100_000 + i;
                    match db.try_append(&receipt("acme", n, 16)) {
                        Ok(ticket) => tickets.push((n, ticket)),
                        Err(Error::Backpressure { waited_ms, .. }) => {
                            assert_eq!(waited_ms, 0, "try_append never waits");
                            outcomes.refused.push(n);
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
                for (n, ticket) in tickets {
                    record(&mut outcomes, n, wait(&ticket).map(|p| p.seq));
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Outcomes::default();
    for handle in handles {
        outcomes.merge(handle.join().expect("thread"));
    }
    assert_eq!(outcomes.total(), 8_000);
    assert!(!outcomes.refused.is_empty(), "the ring was full at times");
    assert!(!outcomes.acked.is_empty());
    db.close().expect("close");
    check_store(&data, &outcomes);
}

#[test]
fn a_full_ring_blocks_until_there_is_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    // Blocking for up to a minute: the writer always makes room long before.
    let options = DbOptions::default()
        .ring_capacity(4)
        .backpressure_timeout(Duration::from_secs(60));
    let db = Db::open_with(&data, options).expect("open");
    let handles: Vec<_> = (0..6u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut outcomes = Outcomes::default();
                let tickets: Vec<_> = (0..200)
                    .map(|i| {
                        let n = t * 100_000 + i;
                        (
                            n,
                            db.append(&receipt("acme", n, 16))
                                .expect("blocks, then room"),
                        )
                    })
                    .collect();
                for (n, ticket) in tickets {
                    record(&mut outcomes, n, wait(&ticket).map(|p| p.seq));
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Outcomes::default();
    for handle in handles {
        outcomes.merge(handle.join().expect("thread"));
    }
    assert_eq!(
        outcomes.acked.len(),
        1_200,
        "every blocking append was acknowledged"
    );
    db.close().expect("close");
    check_store(&data, &outcomes);
}

#[test]
fn closing_while_others_append_ends_every_submission() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let options = DbOptions::default()
        .ring_capacity(4)
        .backpressure_timeout(Duration::from_millis(5));
    let db = Db::open_with(&data, options).expect("open");
    let running = Arc::new(AtomicBool::new(true));
    let started = Arc::new(Barrier::new(5));
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let db = db.clone();
            let running = Arc::clone(&running);
            let started = Arc::clone(&started);
            std::thread::spawn(move || {
                let mut outcomes = Outcomes::default();
                let mut tickets = Vec::new();
                started.wait();
                let mut i = 0;
                // Until the appends fail with Closed (and a bit beyond).
                while running.load(Ordering::SeqCst) || i % 64 != 0 {
                    let n = t * 1_000_000 + i;
                    i += 1;
                    match db.append(&receipt("acme", n, 16)) {
                        Ok(ticket) => tickets.push((n, ticket)),
                        Err(err) => record(&mut outcomes, n, Err(err)),
                    }
                    if tickets.len() >= 32 {
                        for (n, ticket) in tickets.drain(..) {
                            record(&mut outcomes, n, wait(&ticket).map(|p| p.seq));
                        }
                    }
                }
                for (n, ticket) in tickets {
                    record(&mut outcomes, n, wait(&ticket).map(|p| p.seq));
                }
                outcomes
            })
        })
        .collect();
    started.wait();
    // Let some appends through, then close under the writers' feet.
    while db.durable_end() < Seq(200) {
        std::thread::yield_now();
    }
    let closer = db.clone();
    drop(db);
    closer.close().expect("close");
    running.store(false, Ordering::SeqCst);
    let mut outcomes = Outcomes::default();
    for handle in handles {
        outcomes.merge(handle.join().expect("thread"));
    }
    eprintln!(
        "close under load: {} acknowledged, {} refused, {} closed",
        outcomes.acked.len(),
        outcomes.refused.len(),
        outcomes.closed.len()
    );
    assert!(!outcomes.acked.is_empty());
    assert!(
        !outcomes.closed.is_empty(),
        "appends after close fail with Closed"
    );
    check_store(&data, &outcomes);
}

#[test]
fn after_close_every_operation_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let db = Db::open(&data).expect("open");
    let other = db.clone();
    let position = db.append_and_wait(&receipt("acme", 1, 16)).expect("append");
    db.close().expect("close");
    let late = receipt("acme", 2, 16);
    assert!(matches!(other.append(&late), Err(Error::Closed)));
    assert!(matches!(other.try_append(&late), Err(Error::Closed)));
    assert!(matches!(other.append_and_wait(&late), Err(Error::Closed)));
    assert!(matches!(other.checkpoint(), Err(Error::Closed)));
    assert!(matches!(other.seal_epoch(), Err(Error::Closed)));
    assert!(matches!(other.sync(), Err(Error::Closed)));
    // Reads still work on the closed handle's files.
    assert_eq!(
        other.get(position.seq).expect("read").header.event_id(),
        event_id(1)
    );
    drop(other);
    let outcomes = Outcomes {
        acked: HashMap::from([(1, position.seq)]),
        refused: Vec::new(),
        closed: vec![2],
    };
    check_store(&data, &outcomes);
}

/// Dropping every handle (no `close`) drains the ring and flushes: every ticket completes
/// acknowledged and the receipts are there after reopening. In both durability modes.
#[test]
fn dropping_every_handle_drains_and_flushes() {
    for durability in [Durability::Durable, Durability::Written] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("store");
        let options = DbOptions::default()
            .ring_capacity(16)
            .durability(durability)
            .flush_interval(Duration::from_secs(3600))
            .backpressure_timeout(Duration::from_secs(60));
        let db = Db::open_with(&data, options).expect("open");
        let handles: Vec<_> = (0..3u64)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || {
                    (0..300u64)
                        .map(|i| {
                            let n = t * 100_000 + i;
                            (n, db.append(&receipt("acme", n, 32)).expect("append"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        drop(db);
        // The threads' clones are dropped when they finish: the last one shuts the writer
        // down, which drains what is still in the ring.
        let tickets: Vec<(u64, Ticket)> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        let mut outcomes = Outcomes::default();
        for (n, ticket) in &tickets {
            record(&mut outcomes, *n, wait(ticket).map(|p| p.seq));
        }
        assert_eq!(
            outcomes.acked.len(),
            900,
            "{durability:?}: every submission acknowledged"
        );
        check_store(&data, &outcomes);
    }
}

/// `Durability::Written`: tickets complete once written (before a sync); after `close`
/// everything is in the store.
#[test]
fn written_mode_completes_and_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let options = DbOptions::default()
        .ring_capacity(4)
        .durability(Durability::Written)
        .backpressure_timeout(Duration::ZERO);
    let db = Db::open_with(&data, options).expect("open");
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut outcomes = Outcomes::default();
                for i in 0..400u64 {
                    let n = t * 100_000 + i;
                    let result = db.append(&receipt("acme", n, 32)).and_then(|t| wait(&t));
                    record(&mut outcomes, n, result.map(|p| p.seq));
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Outcomes::default();
    for handle in handles {
        outcomes.merge(handle.join().expect("thread"));
    }
    assert_eq!(outcomes.total(), 1_600);
    assert!(!outcomes.acked.is_empty());
    db.close().expect("close");
    check_store(&data, &outcomes);
}
