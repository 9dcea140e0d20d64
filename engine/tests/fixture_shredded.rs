//! Guards the on-disk formats of payload encryption and shredding: a small store checked into
//! the repository (encrypted payloads, a key journal, its KEK file, a shred record) must still
//! verify, decrypt what survives, and read the shredded subject as shredded, byte for byte.
//! Regenerate with `TRAILMIX_REGENERATE_FIXTURES=1`.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trailmix_db::crypto::{KekId, PAYLOAD_FORMAT_XCHACHA, PAYLOAD_OVERHEAD_BYTES};
use trailmix_db::entry::{EntryKind, decode_entry, flags};
use trailmix_db::keystore::{FileKekProvider, JOURNAL_MAGIC, KEK_FILE_MAGIC, KeyStore};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::shred::{ShredScope, decode_shred_record};
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{Db, DbOptions, PayloadState, StoredReceipt, VerifyOptions, verify_store};

const RECEIPTS: u64 = 10;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shredded-store")
}

/// Receipt `n`: acme/s1 (0..3, shredded), acme/s2 (3..6), acme without subject (6..8),
/// globex/s1 (8..10).
fn receipt(n: u64) -> Receipt {
    let (tenant, subject) = match n {
        0..3 => ("acme", Some("s1")),
        3..6 => ("acme", Some("s2")),
        6..8 => ("acme", None),
        _ => ("globex", Some("s1")),
    };
    let mut builder = Receipt::builder(tenant, format!("evt-{n:04}"), Kind::LlmCall)
        .app_id("fixture")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(
            1_763_800_000_000_000_000 + i64::try_from(n).expect("small"),
        ))
        .input(serde_json::json!({"prompt": format!("personal request {n}")}));
    if let Some(subject) = subject {
        builder = builder.subject_id(subject);
    }
    builder.build().expect("valid receipt")
}

fn regenerate() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let db = Db::open_with(&dir, DbOptions::default().segment_bytes(64 << 10)).expect("create");
    for n in 0..RECEIPTS {
        db.append_and_wait(&receipt(n)).expect("append");
    }
    db.shred("acme", "s1", "dsr-fixture-1").expect("shred");
    db.close().expect("close");
    // The signing key never goes into the repository; the KEK does (a test key), so that the
    // surviving payloads can be decrypted.
    std::fs::remove_file(dir.join("keys/signing.key")).expect("remove private key");
    std::fs::remove_dir_all(dir.join("index")).expect("remove index");
    let _ = std::fs::remove_file(dir.join("wal/LOCK"));
}

#[test]
fn checked_in_shredded_store_verifies_decrypts_and_reads_shredded() {
    if std::env::var("TRAILMIX_REGENERATE_FIXTURES").as_deref() == Ok("1") {
        regenerate();
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let store = scratch.path().join("store");
    common::copy_dir(&fixture_dir(), &store);
    let provider = FileKekProvider::in_data_dir(&store);
    let kek_path = provider.kek_path(KekId(2));
    // Git keeps no 0600 modes; a key file readable by others is refused.
    std::fs::set_permissions(&kek_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let report = verify_store(&store, &VerifyOptions::default()).expect("verify runs");
    assert!(report.verified(), "{:?}", report.damage);
    assert_eq!(report.receipts, RECEIPTS);

    let kek = std::fs::read(&kek_path).expect("kek file");
    assert_eq!((&kek[..8], kek.len()), (&KEK_FILE_MAGIC[..], 48));
    let journal = std::fs::read(KeyStore::journal_path(&store)).expect("journal");
    assert_eq!(&journal[..8], JOURNAL_MAGIC);
    assert_eq!(
        journal[24..32],
        2u64.to_le_bytes(),
        "rotated to KEK 2 by the shred"
    );

    let reader = WalReader::open(store.join("wal")).expect("reader");
    let keys = KeyStore::open_read_only(&store, reader.meta().store_id.0, Arc::new(provider))
        .expect("key store opens")
        .expect("exists");
    let stats = keys.stats();
    assert_eq!(
        (stats.kek_id, stats.live_keys, stats.shredded_keys),
        (2, 3, 1)
    );

    let alg = reader.meta().hash_algorithm;
    let mut receipts = 0;
    let mut shreds = 0;
    for record in reader.read_from(Seq(0)).expect("records") {
        let kind = EntryKind::from_byte(record.kind.get()).expect("known kind");
        let entry = decode_entry(kind, &record.payload).expect("decodes");
        if kind == EntryKind::Shred {
            let shred = decode_shred_record(entry.payload).expect("shred record");
            assert_eq!(shred.scope, ShredScope::Subject);
            assert_eq!(
                (shred.tenant.as_str(), shred.subject.as_deref()),
                ("acme", Some("s1"))
            );
            assert_eq!(shred.request_id, "dsr-fixture-1");
            assert!(entry.signature.is_some(), "shred records are signed");
            shreds += 1;
            continue;
        }
        if kind != EntryKind::Receipt {
            continue;
        }
        let expected = receipt(receipts);
        assert_eq!(
            entry.flags & flags::PAYLOAD_ENCRYPTED,
            flags::PAYLOAD_ENCRYPTED
        );
        assert_eq!(entry.payload[0], PAYLOAD_FORMAT_XCHACHA);
        assert_eq!(
            entry.payload.len(),
            expected.payload().len() + PAYLOAD_OVERHEAD_BYTES
        );
        let stored = StoredReceipt::from_record_with_keys(
            alg,
            Some(&keys),
            record.seq,
            record.kind.get(),
            &record.payload,
        )
        .expect("reads")
        .expect("a receipt");
        assert_eq!(&stored.header, expected.header(), "receipt {receipts}");
        if receipts < 3 {
            assert!(
                matches!(stored.payload_state, PayloadState::Shredded { .. }),
                "receipt {receipts}: {:?}",
                stored.payload_state
            );
            assert!(stored.payload.is_empty());
        } else {
            assert_eq!(
                stored.payload_state.name(),
                "decrypted",
                "receipt {receipts}"
            );
            assert_eq!(stored.payload, expected.payload(), "receipt {receipts}");
        }
        receipts += 1;
    }
    assert_eq!((receipts, shreds), (RECEIPTS, 1));
}
