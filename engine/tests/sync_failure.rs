//! Guards fail-stop on the durable path: when a group commit's sync fails, whether it runs on
//! the sync thread or in the writer, no receipt of that commit or after it is acknowledged,
//! the store stops, and reopening keeps every receipt acknowledged before and verifies.

use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::sim::{Fault, FaultError, Op, SimDisk};
use trailmix_db::{Db, DbOptions, SyncPlacement, VerifyOptions, verify_log};

fn receipt(n: u64) -> Receipt {
    Receipt::builder("acme", format!("evt-{n:04}"), Kind::LlmCall)
        .app_id("sync-failure")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .input(serde_json::json!({ "n": n, "pad": "x".repeat(1200) }))
        .build()
        .expect("valid receipt")
}

/// How the receipts after the fault are submitted.
#[derive(Debug, Clone, Copy)]
enum After {
    /// Thirty single appends.
    Singles,
    /// One batch of ~2 MB (a group commit of its own).
    LargeBatch,
}

fn a_failed_sync_acknowledges_nothing_and_stops(placement: SyncPlacement, after: After) {
    let disk = SimDisk::new(11);
    let keys = tempfile::tempdir().expect("tempdir");
    let options = || DbOptions::default().sync_placement(placement);
    let db = Db::open_on(&disk, keys.path(), options()).expect("open");
    let acked: Vec<_> = (0..10)
        .map(|n| db.append_and_wait(&receipt(n)).expect("before the fault"))
        .collect();
    disk.inject(Fault {
        at_op: disk.ops(),
        only: Some(Op::SyncRange),
        error: FaultError::Eio,
        persistent: true,
    });
    match after {
        After::Singles => {
            let tickets: Vec<_> = (10..40)
                .filter_map(|n| db.append(&receipt(n)).ok())
                .collect();
            assert!(!tickets.is_empty(), "nothing was submitted after the fault");
            for ticket in tickets {
                let result = ticket.wait();
                assert!(
                    result.is_err(),
                    "{placement:?}: a receipt was acknowledged although its sync failed: {result:?}"
                );
            }
        }
        After::LargeBatch => {
            let receipts: Vec<_> = (10..1500).map(receipt).collect();
            let results = db.append_batch(&receipts).expect("submitted").wait();
            let acknowledged = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(
                acknowledged, 0,
                "{placement:?}: receipts of a batch were acknowledged although its syncs failed"
            );
        }
    }
    assert!(
        db.append_and_wait(&receipt(40)).is_err(),
        "{placement:?}: the store goes on after a failed sync"
    );
    drop(db);
    disk.crash();
    let db = Db::open_on(&disk, keys.path(), options()).expect("reopen");
    for (n, position) in acked.iter().enumerate() {
        let stored = db.get(position.seq).expect("an acknowledged receipt");
        assert_eq!(stored.header.event_id(), format!("evt-{n:04}"));
    }
    drop(db);
    let report = verify_log(&disk, None, &VerifyOptions::default()).expect("verify runs");
    assert!(report.damage.is_none(), "{:?}", report.damage);
}

#[test]
fn a_failed_sync_on_the_sync_thread_acknowledges_nothing_and_stops_the_store() {
    a_failed_sync_acknowledges_nothing_and_stops(SyncPlacement::SyncThread, After::Singles);
}

#[test]
fn a_failed_sync_inside_a_large_batch_acknowledges_none_of_it() {
    a_failed_sync_acknowledges_nothing_and_stops(SyncPlacement::SyncThread, After::LargeBatch);
}

#[test]
fn a_failed_sync_in_the_writer_acknowledges_nothing_and_stops_the_store() {
    a_failed_sync_acknowledges_nothing_and_stops(SyncPlacement::Writer, After::Singles);
}
