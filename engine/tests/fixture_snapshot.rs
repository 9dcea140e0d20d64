//! Guards the open snapshot's on-disk format: the snapshot file of a small store checked into
//! the repository (written by an earlier build) must still decode, bind to its log's entry by
//! seq and chain hash, hold every event id of the log in its filter, and re-encode to the same
//! bytes; and a snapshot of an earlier format (version 1: the filter's old bit layout) must be
//! refused, never read with the wrong layout.

use std::path::{Path, PathBuf};

use trailmix_db::entry::{EntryKind, decode_entry};
use trailmix_db::receipt::{ActorType, Kind, Receipt, ReceiptHeader, Timestamp};
use trailmix_db::snapshot::{
    SNAPSHOT_FILE, SNAPSHOT_MAGIC, SNAPSHOT_VERSION, Snapshot, SnapshotError,
};
use trailmix_db::wal::{HashAlgorithm, Seq, WalReader};
use trailmix_db::{Db, DbOptions, PayloadEncryption};

const RECEIPTS: u64 = 24;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/snapshot-store")
}

fn receipt(n: u64) -> Receipt {
    let tenant = if n.is_multiple_of(3) {
        "globex"
    } else {
        "acme"
    };
    Receipt::builder(tenant, format!("evt-{n:04}"), Kind::LlmCall)
        .app_id("fixture")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(
            1_763_900_000_000_000_000 + i64::try_from(n).expect("small"),
        ))
        .input(serde_json::json!({"prompt": format!("request {n}")}))
        .build()
        .expect("valid receipt")
}

fn regenerate() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let options = DbOptions::default()
        .segment_bytes(64 << 10)
        .checkpoint_every_records(8)
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
    // The private key never goes into the repository; the index is derived.
    std::fs::remove_dir_all(dir.join("keys")).expect("remove private key");
    std::fs::remove_dir_all(dir.join("index")).expect("remove index");
    let _ = std::fs::remove_file(dir.join("wal/LOCK"));
}

#[test]
fn checked_in_snapshot_still_decodes_and_binds_to_its_log() {
    if std::env::var("TRAILMIX_REGENERATE_FIXTURES").as_deref() == Ok("1") {
        regenerate();
    }
    let bytes = std::fs::read(fixture_dir().join(SNAPSHOT_FILE)).expect("snapshot file");
    assert_eq!(bytes[..8], SNAPSHOT_MAGIC);
    assert_eq!(bytes[8..12], SNAPSHOT_VERSION.to_le_bytes());
    let snapshot = Snapshot::decode(&bytes).expect("decodes");
    assert_eq!(snapshot.encode(), bytes, "re-encodes to the same bytes");
    assert_eq!(bytes[12..20], snapshot.seq.0.to_le_bytes());
    assert_eq!(bytes[20..52], snapshot.chain_hash);
    assert_eq!(snapshot.receipts(), RECEIPTS);

    let reader = WalReader::open(fixture_dir().join("wal")).expect("reader");
    let records = reader.read_from(Seq(0)).expect("records");
    // The clean close wrote it: it covers the last entry.
    let last = records.last().expect("entries");
    assert_eq!(last.seq, snapshot.seq);
    let kind = EntryKind::from_byte(last.kind.get()).expect("kind");
    let entry = decode_entry(kind, &last.payload).expect("decodes");
    let logged = entry.chain_hash(HashAlgorithm::Blake3, last.seq);
    assert_eq!(logged, snapshot.chain_hash);

    let filter = snapshot.event_filter().expect("filter decodes");
    let mut events = 0;
    for record in &records {
        if record.kind.get() == EntryKind::Receipt as u8 {
            let entry = decode_entry(EntryKind::Receipt, &record.payload).expect("decodes");
            let header = ReceiptHeader::decode(entry.header).expect("header");
            assert!(filter.may_contain(header.tenant_id(), header.event_id()));
            events += 1;
        }
    }
    assert_eq!(events, RECEIPTS);
    assert!(
        !filter.may_contain("acme", "never-stored-0")
            || !filter.may_contain("acme", "never-stored-1")
    );
}

#[test]
fn a_version_1_snapshot_is_refused() {
    // Written by the build before the cache-line-blocked filter (kept from the fixture store
    // of that build); its filter bits mean other events under today's layout.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/snapshot-store-v1")
        .join(SNAPSHOT_FILE);
    let bytes = std::fs::read(path).expect("snapshot file");
    assert_eq!(bytes[8..12], 1u32.to_le_bytes());
    match Snapshot::decode(&bytes) {
        Err(SnapshotError::Malformed { what }) => {
            assert!(what.contains("unknown version 1"), "{what}");
        }
        other => panic!("a version 1 snapshot must be refused: {other:?}"),
    }
}
