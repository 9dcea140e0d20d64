//! Guards the engine's write path end to end: open with embedded defaults, concurrent
//! appends with group commit, idempotency and conflicts, checkpoints and epoch seals, reopen,
//! read back, and a clean `verify_store`.

use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::{Db, DbOptions, Error, VerifyOptions, verify_store};

fn receipt(tenant: &str, n: u64) -> Receipt {
    Receipt::builder(tenant, format!("evt-{n:08}"), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(
            1_700_000_000_000_000_000 + i64::try_from(n).expect("fits"),
        ))
        .model_name("gpt-4.1")
        .input(serde_json::json!({"prompt": format!("claim {n}")}))
        .build()
        .expect("valid receipt")
}

#[test]
fn concurrent_appends_reopen_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let options = DbOptions::default()
        .checkpoint_every_records(500)
        .epoch_records_max(2_000);
    let db = Db::open_with(&data, options.clone()).expect("open");
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let tickets: Vec<_> = (0..1_000u64)
                    .map(|i| {
                        db.append(&receipt(&format!("tenant-{t}"), t * 10_000 + i))
                            .expect("append")
                    })
                    .collect();
                tickets
                    .into_iter()
                    .map(|ticket| ticket.wait().expect("durable"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let positions: Vec<_> = threads
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(positions.len(), 4_000);
    let again = db
        .append_and_wait(&receipt("tenant-1", 10_005))
        .expect("idempotent");
    assert!(
        positions.contains(&again),
        "the same receipt returns its first position"
    );
    let conflicting = Receipt::builder("tenant-1", "evt-00010005", Kind::ToolCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::now())
        .build()
        .expect("valid");
    match db.append_and_wait(&conflicting) {
        Err(Error::Conflict { existing, .. }) => assert_eq!(existing, again.seq),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let stored = db.get(again.seq).expect("get");
    assert_eq!(stored.header.event_id(), "evt-00010005");
    db.close().expect("close");

    let report = verify_store(&data, &VerifyOptions::default()).expect("verify runs");
    assert!(report.verified(), "{:?}", report.damage);
    assert_eq!(report.receipts, 4_000);
    assert!(
        report.sealed_epochs >= 1,
        "epochs of 2000 entries were sealed"
    );
    assert!(report.checkpoints >= 8);

    let db = Db::open_with(&data, options).expect("reopen");
    let next = db
        .append_and_wait(&receipt("tenant-9", 1))
        .expect("append after reopen");
    assert!(next.seq > Seq(4_000));
    assert_eq!(
        db.get(positions[17].seq).expect("old receipt").position,
        positions[17]
    );
    db.close().expect("close");
    assert!(
        verify_store(&data, &VerifyOptions::default())
            .expect("verify")
            .verified()
    );
}

#[test]
fn a_receipt_too_large_for_the_segment_is_refused_and_the_store_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), DbOptions::default().segment_bytes(64 << 10)).expect("open");
    let big = Receipt::builder("acme", "evt-big", Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::now())
        .input(serde_json::json!({"prompt": "x".repeat(100_000)}))
        .build()
        .expect("valid receipt (1 MiB payload limit)");
    match db.append(&big) {
        Err(Error::Wal(err)) => assert!(err.to_string().contains("exceeds the maximum"), "{err}"),
        other => panic!("expected a record-too-large error, got {other:?}"),
    }
    let position = db
        .append_and_wait(&receipt("acme", 1))
        .expect("the store goes on");
    assert_eq!(
        db.get(position.seq).expect("read").header.event_id(),
        "evt-00000001"
    );
    db.close().expect("close");
}

#[test]
fn opening_and_closing_an_idle_store_adds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    db.append_and_wait(&receipt("acme", 1)).expect("append");
    db.close().expect("close");
    let entries = verify_store(dir.path(), &VerifyOptions::default())
        .expect("verify")
        .entries;
    for _ in 0..3 {
        let db = Db::open(dir.path()).expect("reopen");
        assert_eq!(
            db.checkpoint().expect("checkpoint"),
            None,
            "nothing new to checkpoint"
        );
        db.close().expect("close");
    }
    let report = verify_store(dir.path(), &VerifyOptions::default()).expect("verify");
    assert!(report.verified());
    assert_eq!(
        report.entries, entries,
        "idle opens and closes do not grow the log"
    );
}

#[test]
fn a_missing_signing_key_refuses_the_open_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open");
    db.append_and_wait(&receipt("acme", 1)).expect("append");
    db.close().expect("close");
    std::fs::remove_dir_all(dir.path().join("keys")).expect("lose the key");
    match Db::open(dir.path()) {
        Err(Error::Key { detail, .. }) => assert!(detail.contains("missing"), "{detail}"),
        other => panic!("expected a Key error, got {other:?}"),
    }
    assert!(!dir.path().join("keys").exists(), "no new key was made");
    assert!(
        verify_store(dir.path(), &VerifyOptions::default())
            .expect("verify")
            .verified()
    );
}

#[test]
fn a_segment_header_with_a_forged_chain_link_is_caught() {
    use trailmix_db::replay::DamageKind;
    use trailmix_db::wal::format::SegmentHeader;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), DbOptions::default().segment_bytes(64 << 10)).expect("open");
    for n in 0..400 {
        db.append(&receipt("acme", n)).expect("append");
    }
    db.sync().expect("sync");
    db.close().expect("close");
    let wal = dir.path().join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 2, "small segments roll over");
    let mut bytes = std::fs::read(&segments[1]).expect("read");
    let mut header = SegmentHeader::decode(&bytes).expect("header");
    header.prev_chain_hash.0[0] ^= 1;
    bytes[..128].copy_from_slice(&header.encode()); // a valid CRC: only the chain can tell
    std::fs::write(&segments[1], &bytes).expect("write");
    let damage = verify_store(dir.path(), &VerifyOptions::default())
        .expect("verify")
        .damage
        .expect("the forged link is found");
    assert_eq!(damage.kind, DamageKind::ChainLink);
    assert_eq!(damage.seq, Seq(header.first_seq.0));
}
