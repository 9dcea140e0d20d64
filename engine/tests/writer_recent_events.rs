//! Guards the writer's map of receipts the index may not hold yet (keyed by the caller's
//! filter probe): a repeat or a conflicting receipt submitted before the first is durable (so
//! neither the filter nor the index could answer for it at submit time) is still caught, its
//! ticket completes with the first receipt's position or `Conflict`, and the same event id
//! under another tenant is another event.

use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::{Db, Error, VerifyOptions, verify_store};

fn receipt(tenant: &str, n: u64, prompt: &str) -> Receipt {
    Receipt::builder(tenant, format!("evt-{n:08}"), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(
            1_700_000_000_000_000_000 + i64::try_from(n).expect("fits"),
        ))
        .input(serde_json::json!({"prompt": prompt}))
        .build()
        .expect("valid receipt")
}

#[test]
fn repeats_in_flight_complete_with_the_first_position_or_conflict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let db = Db::open(&data).expect("open");
    let events = 300u64;
    let mut tickets = Vec::new();
    for n in 0..events {
        let first = receipt("acme", n, "first");
        // Submitted back to back: the second and third reach the ring before the first is
        // written, so only the writer can see that they repeat it.
        tickets.push((
            db.append(&first).expect("append"),
            db.append(&first).expect("append repeat"),
            db.append(&receipt("acme", n, "other"))
                .expect("append conflict"),
            db.append(&receipt("globex", n, "first"))
                .expect("append other tenant"),
        ));
    }
    let mut seqs = std::collections::HashSet::new();
    for (first, repeat, conflict, other_tenant) in tickets {
        let first = first.wait().expect("first is stored");
        assert_eq!(repeat.wait().expect("repeat is acknowledged"), first);
        match conflict.wait() {
            Err(Error::Conflict { existing, .. }) => assert_eq!(existing, first.seq),
            other => panic!("expected Conflict, got {other:?}"),
        }
        let other_tenant = other_tenant.wait().expect("another tenant's event is new");
        assert_ne!(other_tenant.seq, first.seq);
        assert!(seqs.insert(first.seq) && seqs.insert(other_tenant.seq));
    }
    db.close().expect("close");
    let report = verify_store(&data, &VerifyOptions::default()).expect("verify runs");
    assert!(report.verified(), "{:?}", report.damage);
    assert_eq!(report.receipts, 2 * events);
}
