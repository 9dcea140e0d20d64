//! Guards the engine's on-disk format: a small store checked into the repository (written by
//! an earlier build) must still verify, read back and prove, byte for byte.

mod common;

use std::path::{Path, PathBuf};

use trailmix_db::entry::{ENTRY_VERSION_V2, EntryKind, decode_entry};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{Db, DbOptions, PayloadEncryption, VerifyOptions, verify_store};

const RECEIPTS: u64 = 40;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small-store")
}

fn receipt(n: u64) -> Receipt {
    let tenant = if n.is_multiple_of(3) {
        "globex"
    } else {
        "acme"
    };
    Receipt::builder(
        tenant,
        format!("evt-{n:04}"),
        if n.is_multiple_of(2) {
            Kind::LlmCall
        } else {
            Kind::PolicyDecision
        },
    )
    .app_id("fixture")
    .actor_type(ActorType::Agent)
    .event_time(Timestamp::from_unix_nanos(
        1_763_800_000_000_000_000 + i64::try_from(n).expect("small"),
    ))
    .model_name("gpt-4.1")
    .input(serde_json::json!({"prompt": format!("request {n}")}))
    .build()
    .expect("valid receipt")
}

fn regenerate() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let options = DbOptions::default()
        .segment_bytes(64 << 10)
        .checkpoint_every_records(16)
        // This fixture pins the clear payload format (written before encryption existed);
        // `fixtures/shredded-store` pins the encrypted one.
        .payload_encryption(PayloadEncryption::Off);
    let db = Db::open_with(&dir, options).expect("create fixture");
    for n in 0..RECEIPTS / 2 {
        db.append_and_wait(&receipt(n)).expect("append");
    }
    db.seal_epoch().expect("seal").expect("sealed");
    for n in RECEIPTS / 2..RECEIPTS {
        db.append_and_wait(&receipt(n)).expect("append");
    }
    db.close().expect("close");
    // The private key never goes into the repository: verification needs only signing.pub.
    std::fs::remove_dir_all(dir.join("keys")).expect("remove private key");
    // The index is derived: the first writer open rebuilds it.
    std::fs::remove_dir_all(dir.join("index")).expect("remove index");
    let _ = std::fs::remove_file(dir.join("wal/LOCK"));
}

#[test]
fn checked_in_store_still_verifies_and_reads() {
    if std::env::var("TRAILMIX_REGENERATE_FIXTURES").as_deref() == Ok("1") {
        regenerate();
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let store = scratch.path().join("store");
    common::copy_dir(&fixture_dir(), &store);

    let report = verify_store(&store, &VerifyOptions::default()).expect("verify runs");
    assert!(report.verified(), "{:?}", report.damage);
    assert_eq!(report.receipts, RECEIPTS);
    assert_eq!(report.sealed_epochs, 1);

    let reader = WalReader::open(store.join("wal")).expect("reader");
    let records = reader.read_from(Seq(0)).expect("records");
    assert_eq!(records[0].kind.get(), EntryKind::Genesis as u8);
    let mut receipts = 0;
    for record in &records {
        // Written before entry version 3: the fixture guards that version 2 still reads.
        assert_eq!(record.payload[0], ENTRY_VERSION_V2, "entry version byte");
        let kind = EntryKind::from_byte(record.kind.get()).expect("known kind");
        let entry = decode_entry(kind, &record.payload).expect("decodes");
        if kind == EntryKind::Receipt {
            let header = trailmix_db::receipt::ReceiptHeader::decode(entry.header).expect("header");
            let expected = receipt(receipts);
            assert_eq!(&header, expected.header(), "receipt {receipts} header");
            assert_eq!(
                entry.payload,
                expected.payload(),
                "receipt {receipts} payload is the same canonical JSON"
            );
            receipts += 1;
        }
    }
    assert_eq!(receipts, RECEIPTS);
    let public_key = std::fs::read_to_string(store.join("signing.pub")).expect("public key");
    let with_key = VerifyOptions {
        public_key: Some(public_key),
        ..VerifyOptions::default()
    };
    assert!(verify_store(&store, &with_key).expect("verify").verified());
}
