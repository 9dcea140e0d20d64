//! Guards legal holds and retention: a hold on a tenant or subject blocks shredding — by
//! request and by retention expiry — with a typed error until it is released; every hold and
//! release is a signed entry in the log that survives a reopen; `expire` shreds exactly the
//! keys whose receipts have all outlived their retention class.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use trailmix_db::entry::EntryKind;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{Db, DbOptions, Error, ShredError, VerifyOptions, WAL_DIR, verify_store};

fn options() -> DbOptions {
    DbOptions::default()
        .segment_bytes(256 << 10)
        .retention_class("short", Duration::from_secs(3_600))
}

fn receipt(tenant: &str, subject: Option<&str>, n: u64, class: &str) -> Receipt {
    let mut builder = Receipt::builder(tenant, format!("evt-{n:04}"), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .retention_class(class)
        .input(serde_json::json!({ "prompt": format!("text {n}") }));
    if let Some(subject) = subject {
        builder = builder.subject_id(subject);
    }
    builder.build().expect("valid receipt")
}

fn hold_entries(data: &std::path::Path) -> usize {
    let mut count = 0;
    WalReader::open(data.join(WAL_DIR))
        .expect("log")
        .scan(Seq(0), |record| {
            count += usize::from(record.kind.get() == EntryKind::Hold as u8);
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    count
}

fn is_held(result: &Result<trailmix_db::ShredReport, Error>) -> bool {
    matches!(result, Err(Error::Shred(ShredError::Held { .. })))
}

#[test]
fn holds_block_shredding_until_released_and_are_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    let s1 = db
        .append_and_wait(&receipt("acme", Some("s1"), 1, "short"))
        .expect("ok");
    db.append_and_wait(&receipt("acme", Some("s2"), 2, "short"))
        .expect("ok");
    db.append_and_wait(&receipt("globex", Some("s1"), 3, "short"))
        .expect("ok");

    db.hold("acme", Some("s1"), "matter-7")
        .expect("hold subject");
    assert!(is_held(&db.shred("acme", "s1", "dsr-1")));
    assert!(
        is_held(&db.shred_tenant("acme", "dsr-2")),
        "a subject hold blocks its tenant"
    );
    assert!(matches!(
        db.hold("acme", Some("s1"), "matter-8"),
        Err(Error::Shred(ShredError::AlreadyHeld { .. }))
    ));
    assert!(matches!(
        db.release("acme", Some("s2"), "matter-7"),
        Err(Error::Shred(ShredError::NotHeld { .. }))
    ));
    assert!(matches!(
        db.hold("acme", None, ""),
        Err(Error::Shred(ShredError::BadRequestId))
    ));
    // Other subjects and tenants are not held.
    db.shred("acme", "s2", "dsr-3").expect("s2 is not held");
    db.shred("globex", "s1", "dsr-4")
        .expect("globex is not held");
    assert_eq!(
        db.get(s1.seq).expect("read").payload_state.name(),
        "decrypted"
    );
    db.close().expect("close");

    // The hold survives a reopen: it is in the log.
    let db = Db::open_with(&data, options()).expect("reopen");
    let holds = db.holds().expect("holds");
    assert_eq!(holds.len(), 1);
    assert_eq!(
        (holds[0].tenant.as_str(), holds[0].subject.as_deref()),
        ("acme", Some("s1"))
    );
    assert_eq!(holds[0].request_id, "matter-7");
    assert!(is_held(&db.shred("acme", "s1", "dsr-5")));
    db.hold("acme", None, "matter-9")
        .expect("hold the tenant too");
    db.release("acme", Some("s1"), "matter-7")
        .expect("release the subject");
    assert!(
        is_held(&db.shred("acme", "s1", "dsr-6")),
        "the tenant hold still covers s1"
    );
    db.release("acme", None, "matter-9")
        .expect("release the tenant");
    db.shred("acme", "s1", "dsr-7")
        .expect("released: the shred proceeds");
    assert!(db.get(s1.seq).expect("read").payload_state.is_shredded());
    assert!(db.holds().expect("holds").is_empty());
    db.close().expect("close");
    assert_eq!(
        hold_entries(&data),
        4,
        "two holds and two releases, each recorded"
    );
    let report = verify_store(&data, &VerifyOptions::default()).expect("verify");
    assert!(report.damage.is_none(), "{:?}", report.damage);
}

#[test]
fn expire_shreds_only_fully_expired_keys_and_respects_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    let expired = db
        .append_and_wait(&receipt("acme", Some("gone"), 1, "short"))
        .expect("ok");
    // One receipt of an unknown class keeps its key forever.
    let mixed = db
        .append_and_wait(&receipt("acme", Some("mixed"), 2, "short"))
        .expect("ok");
    db.append_and_wait(&receipt("acme", Some("mixed"), 3, "legal-10y"))
        .expect("ok");
    let tenant_key = db
        .append_and_wait(&receipt("acme", None, 4, "short"))
        .expect("ok");
    let held = db
        .append_and_wait(&receipt("globex", Some("kept"), 5, "short"))
        .expect("ok");
    db.hold("globex", None, "matter-1").expect("hold");

    let now = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_nanos(),
    )
    .expect("fits");
    let early = db.expire(now).expect("expire now");
    assert!(early.shredded.is_empty(), "nothing is an hour old yet");

    let later = now + 7_200 * 1_000_000_000;
    let report = db.expire(later).expect("expire later");
    assert_eq!(report.receipts_scanned, 5);
    assert_eq!(report.shredded.len(), 2, "{report:?}");
    assert_eq!(
        report.held,
        vec![("globex".to_owned(), Some("kept".to_owned()))]
    );
    assert!(
        db.get(expired.seq)
            .expect("read")
            .payload_state
            .is_shredded()
    );
    assert!(
        db.get(tenant_key.seq)
            .expect("read")
            .payload_state
            .is_shredded()
    );
    assert_eq!(
        db.get(mixed.seq).expect("read").payload_state.name(),
        "decrypted"
    );
    assert_eq!(
        db.get(held.seq).expect("read").payload_state.name(),
        "decrypted"
    );

    db.release("globex", None, "matter-1").expect("release");
    let after = db.expire(later).expect("expire again");
    assert_eq!(after.shredded.len(), 1);
    assert!(db.get(held.seq).expect("read").payload_state.is_shredded());
    db.close().expect("close");
    let report = verify_store(&data, &VerifyOptions::default()).expect("verify");
    assert!(report.damage.is_none(), "{:?}", report.damage);
}

/// A receipt appended under a key while `expire` scans the log carries its own retention:
/// the key it was judged on is not shredded, and the new receipt reads back.
#[test]
fn expire_never_shreds_a_key_used_after_its_scan() {
    use std::sync::{Arc, Mutex};
    use trailmix_db::keystore::ShredStep;
    let dir = tempfile::tempdir().expect("tempdir");
    let slot: Arc<Mutex<Option<Db>>> = Arc::new(Mutex::new(None));
    let during = Arc::new(Mutex::new(None));
    let hook = {
        let (slot, during) = (slot.clone(), during.clone());
        Arc::new(move |at: ShredStep| {
            if at != ShredStep::ExpireScanned {
                return;
            }
            if let Some(db) = slot.lock().expect("slot").as_ref() {
                // Kept for ten years: must not be shredded by this expiry.
                let kept = db.append_and_wait(&receipt("acme", Some("s1"), 2, "decade"));
                *during.lock().expect("during") = Some(kept.expect("append during the scan"));
            }
        })
    };
    let options = options()
        .retention_class("decade", Duration::from_secs(10 * 365 * 86_400))
        .shred_step_hook(hook);
    let db = Db::open_with(dir.path().join("data"), options).expect("open");
    *slot.lock().expect("slot") = Some(db.clone());
    let old = db
        .append_and_wait(&receipt("acme", Some("s1"), 1, "short"))
        .expect("short-lived receipt");
    let later = SystemTime::now()
        .checked_add(Duration::from_secs(7_200))
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_nanos()).expect("fits"))
        .expect("time");
    let report = db.expire(later).expect("expire");
    slot.lock().expect("slot").take();
    let kept = during.lock().expect("during").take().expect("the hook ran");
    assert_eq!(
        db.get(kept.seq).expect("read").payload_state.name(),
        "decrypted",
        "a receipt still inside its retention was shredded: {report:?}"
    );
    assert!(report.shredded.is_empty(), "{report:?}");
    assert_eq!(
        db.get(old.seq).expect("read").payload_state.name(),
        "decrypted"
    );
    db.close().expect("close");
}

/// A hold, release or shred naming a tenant or subject longer than a receipt may carry gets a
/// typed error and changes nothing: the writer keeps going.
#[test]
fn oversized_tenant_or_subject_is_refused_and_changes_nothing() {
    use trailmix_db::receipt::{MAX_ID_BYTES, MAX_TENANT_ID_BYTES};
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    db.append_and_wait(&receipt("acme", Some("s1"), 1, "short"))
        .expect("ok");
    let huge_tenant = "t".repeat(300_000);
    let huge_subject = "s".repeat(300_000);
    let long_tenant = "t".repeat(MAX_TENANT_ID_BYTES + 1);
    let long_subject = "s".repeat(MAX_ID_BYTES + 1);
    let results = [
        db.hold(&huge_tenant, None, "req"),
        db.hold("acme", Some(&huge_subject), "req"),
        db.hold(&long_tenant, None, "req"),
        db.hold("acme", Some(&long_subject), "req"),
        db.release(&huge_tenant, None, "req"),
        db.shred(&long_tenant, "s1", "req").map(|r| r.seq),
        db.shred("acme", &long_subject, "req").map(|r| r.seq),
        db.shred_tenant(&huge_tenant, "req").map(|r| r.seq),
    ];
    for result in results {
        assert!(
            matches!(result, Err(Error::Shred(ShredError::IdTooLong { .. }))),
            "{result:?}"
        );
    }
    db.append_and_wait(&receipt("acme", Some("s1"), 2, "short"))
        .expect("the writer still runs");
    db.close().expect("close");
    assert_eq!(hold_entries(&data), 0, "nothing was recorded");
}
