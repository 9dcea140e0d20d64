//! Guards entry format version 3 (docs/design.md, "Entry layout"): new entries are version 3
//! and store no digests, yet every byte of a version 3 receipt rewritten with a valid frame CRC
//! is caught by `verify` and by a point read (`Db::get`); and a version 2 store (fixture
//! `v2-store`, written by the build before version 3, with its test signing key) switches to
//! version 3 at its next entry after the upgrade, and the mixed store verifies, reads, proves,
//! treats a retry of a version 2 receipt as a duplicate, and exports a pack that verifies.

mod common;

use std::path::{Path, PathBuf};

use common::{copy_dir, file_name, frame_image, layout, read_at, wal_dir, write_at};
use trailmix_db::entry::{ENTRY_VERSION, ENTRY_VERSION_V2, EntryKind};
use trailmix_db::keys::{FileKeyProvider, SigningKeyProvider as _};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{Db, DbOptions, Error, PayloadEncryption, VerifyOptions, verify_store};

fn receipt(tenant: &str, n: u64) -> Receipt {
    Receipt::builder(tenant, format!("evt-{n:04}"), Kind::LlmCall)
        .app_id("fixture")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(
            1_763_900_000_000_000_000 + i64::try_from(n).expect("small"),
        ))
        .model_name("gpt-4.1")
        .input(serde_json::json!({"prompt": format!("request {n}")}))
        .build()
        .expect("valid receipt")
}

fn options() -> DbOptions {
    DbOptions::default()
        .segment_bytes(64 << 10)
        .checkpoint_every_records(8)
        .payload_encryption(PayloadEncryption::Off)
}

/// Every entry's version byte, in seq order.
fn versions(data: &Path) -> Vec<u8> {
    let reader = WalReader::open(wal_dir(data)).expect("reader");
    reader
        .read_from(Seq(0))
        .expect("records")
        .iter()
        .map(|r| r.payload[0])
        .collect()
}

#[test]
fn every_byte_of_a_v3_receipt_is_covered_by_the_chain() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    let db = Db::open_with(&data, options()).expect("open");
    for n in 0..6 {
        db.append_and_wait(&receipt("acme", n)).expect("append");
    }
    db.close().expect("close");
    assert!(
        versions(&data).iter().all(|&v| v == ENTRY_VERSION),
        "a new store writes version 3 only"
    );
    let (_, frames) = layout(&data);
    let frame = frames
        .iter()
        .filter(|f| f.entry_kind() == EntryKind::Receipt)
        .nth(2)
        .expect("a receipt");
    let header = read_at(&frame.file, frame.offset, 32);
    let durable_end = Seq(u64::from_le_bytes(
        header[16..24].try_into().expect("8 bytes"),
    ));
    let segment = wal_dir(&data).join(file_name(&frame.file));
    let original = frame_image(frame.seq, durable_end, frame.kind, &frame.payload);
    let mut by_get = 0;
    for at in 0..frame.payload.len() {
        let mut entry = frame.payload.clone();
        entry[at] ^= 0x01;
        write_at(
            &segment,
            frame.offset,
            &frame_image(frame.seq, durable_end, frame.kind, &entry),
        );
        let report = verify_store(&data, &VerifyOptions::default()).expect("verify runs");
        let damage = report
            .damage
            .unwrap_or_else(|| panic!("byte {at} of the entry: verify passed"));
        assert!(
            damage.seq == frame.seq || damage.seq == frame.seq.next(),
            "byte {at}: damage named at {} (the receipt is {})",
            damage.seq,
            frame.seq
        );
        // A point read: the open snapshot covers the receipt, so opening does not read it.
        match Db::open_with(&data, options()) {
            Ok(db) => {
                match db.get(frame.seq) {
                    Err(Error::Damaged { seq, .. }) => assert_eq!(seq, frame.seq, "byte {at}"),
                    // A flipped kind byte or version makes it not a receipt: not served either.
                    Err(Error::NotFound { .. }) => {}
                    other => panic!("byte {at}: the point read gave {other:?}"),
                }
                by_get += 1;
                drop(db);
            }
            Err(Error::Damaged { .. }) => {}
            Err(other) => panic!("byte {at}: open failed with {other:?}"),
        }
        write_at(&segment, frame.offset, &original);
    }
    assert!(
        by_get > frame.payload.len() / 2,
        "most edits reached the point read ({by_get} of {})",
        frame.payload.len()
    );
    assert!(
        verify_store(&data, &VerifyOptions::default())
            .expect("verify runs")
            .verified()
    );
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2-store")
}

/// Receipts in the version 2 fixture.
const V2_RECEIPTS: u64 = 12;

/// Writes the version 2 fixture: run once with the build before entry version 3 (the writer
/// patched back to version 2 entries), `TRAILMIX_REGENERATE_V2_FIXTURE=1`. Its signing key is
/// a test key kept in the fixture, so that a test can append to it.
fn regenerate_v2() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let db = Db::open_with(&dir, options()).expect("create fixture");
    for n in 0..V2_RECEIPTS {
        let tenant = if n % 3 == 0 { "globex" } else { "acme" };
        db.append_and_wait(&receipt(tenant, n)).expect("append");
    }
    db.close().expect("close");
    std::fs::remove_dir_all(dir.join("index")).expect("remove index");
    let _ = std::fs::remove_file(dir.join("wal/LOCK"));
}

/// A writable copy of the fixture: git keeps no file modes, and the key must be private.
fn v2_copy(to: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    copy_dir(&fixture_dir(), to);
    let keys = to.join("keys");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for item in std::fs::read_dir(&keys).expect("keys") {
        let path = item.expect("entry").path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

#[test]
fn a_v2_store_upgrades_at_its_next_entry() {
    if std::env::var("TRAILMIX_REGENERATE_V2_FIXTURE").as_deref() == Ok("1") {
        regenerate_v2();
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    v2_copy(&data);
    let before = versions(&data);
    assert!(
        before.iter().all(|&v| v == ENTRY_VERSION_V2),
        "the fixture is version 2: {before:?}"
    );
    assert!(
        verify_store(&data, &VerifyOptions::default())
            .expect("verify")
            .verified()
    );

    let db = Db::open_with(&data, options()).expect("open the v2 store for writing");
    // A retry of a receipt stored as version 2 is the same receipt, not a conflict.
    let first = db.append_and_wait(&receipt("acme", 1)).expect("retry");
    assert!(first.seq.0 < before.len() as u64, "a duplicate: {first:?}");
    let mut positions = Vec::new();
    for n in V2_RECEIPTS..V2_RECEIPTS + 10 {
        let tenant = if n % 3 == 0 { "globex" } else { "acme" };
        positions.push(db.append_and_wait(&receipt(tenant, n)).expect("append"));
    }
    // Both versions read by seq, and both prove.
    let v2_receipt = db.get(first.seq).expect("a v2 receipt reads");
    assert_eq!(v2_receipt.header.event_id(), "evt-0001");
    for position in &positions {
        db.get(position.seq).expect("a v3 receipt reads");
    }
    let v3_seq = positions[3].seq;
    for seq in [first.seq, v3_seq] {
        let bundle = db.prove(seq).expect("prove");
        trailmix_db::proof::verify_inclusion_bundle(&bundle, db.verifier()).expect("proof");
    }
    db.close().expect("close");

    let after = versions(&data);
    let switch = before.len();
    assert!(after[..switch].iter().all(|&v| v == ENTRY_VERSION_V2));
    assert!(
        after[switch..].iter().all(|&v| v == ENTRY_VERSION),
        "every entry after the upgrade is version 3: {after:?}"
    );
    let report = verify_store(&data, &VerifyOptions::default()).expect("verify");
    assert!(report.verified(), "{:?}", report.damage);
    assert_eq!(report.receipts, V2_RECEIPTS + 10);

    // A pack of the tenant over both versions verifies (format v5).
    let signer = FileKeyProvider::new(&data)
        .signer("unused")
        .expect("the store's key");
    let (files, _) = trailmix_db::pack::export_pack(
        &data,
        &signer,
        &trailmix_db::pack::PackScope {
            tenant: "acme".into(),
            ..trailmix_db::pack::PackScope::default()
        },
        &trailmix_db::pack::ExportOptions::default(),
    )
    .expect("export");
    let trusted = trailmix_db::pack::TrustedKey::Verifier(signer.verifier());
    let report =
        trailmix_db::pack::verify_pack_files(&files, Some(&trusted)).expect("the pack verifies");
    // acme: receipts 1, 2, 4, 5, 7, 8, 10, 11 (version 2), then 13, 14, 16, 17, 19, 20 (version 3).
    assert_eq!(report.counts.included, 8 + 6, "{report:?}");
    let receipts =
        String::from_utf8(files.get("receipts.jsonl").expect("receipts").to_vec()).expect("utf-8");
    let fixed_lens: Vec<usize> = receipts
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("json");
            base64_len(value["fixed"].as_str().expect("fixed"))
        })
        .collect();
    assert!(
        fixed_lens.contains(&168) && fixed_lens.contains(&160),
        "{fixed_lens:?}"
    );
}

/// Decoded length of standard padded base64.
fn base64_len(text: &str) -> usize {
    text.len() / 4 * 3 - text.bytes().rev().take_while(|&b| b == b'=').count()
}
