//! Guards that what a newer build could write — a payload frame naming a zstd dictionary this
//! build lacks, an entry version above this build's, an entry kind it does not know — is
//! refused as `Error::Unsupported` (needs a newer build), not as `Error::Damaged`; that
//! `verify` still passes on a store holding an unknown-dictionary frame (it never decompresses)
//! and a pack export refuses it by the same typed error; and that a malformed entry of a known
//! version and kind stays `Damaged`; and that an encrypted payload of a format above 2 is
//! `Unsupported` when read and at open (verify reports it `Malformed`, as a newer entry version).

mod common;

use std::path::Path;

use common::{Rec, receipt, rechain, records, verify_with, with_payload, write_log};
use trailmix_db::entry::{ENTRY_VERSION, EntryKind, decode_entry, flags};
use trailmix_db::keys::{FileKeyProvider, SigningKeyProvider as _};
use trailmix_db::pack::{ExportOptions, PackError, PackScope, export_pack};
use trailmix_db::replay::DamageKind;
use trailmix_db::wal::Seq;
use trailmix_db::{Db, DbOptions, Error, PayloadCompression, PayloadEncryption, VerifyOptions};

const SEGMENT: u64 = 256 << 10;

fn options() -> DbOptions {
    DbOptions::default()
        .segment_bytes(SEGMENT)
        .payload_encryption(PayloadEncryption::Off)
        .payload_compression(PayloadCompression::zstd())
}

/// A closed store of `count` compressible receipts in `dir`, and its records without the
/// notes that closing wrote after the last receipt (as a crash before them would leave it):
/// the receipts at the end are in the unsigned tail, so a test can rewrite and re-link them
/// and the store still verifies, as one a newer build wrote would.
fn tail_of_receipts(dir: &Path, count: u64) -> Vec<Rec> {
    let db = Db::open_with(dir, options()).expect("open");
    for n in 0..count {
        db.append_and_wait(&receipt("acme", n, 300))
            .expect("append");
    }
    db.close().expect("close");
    let mut records = records(dir);
    while records.last().map(|r| r.0) != Some(EntryKind::Receipt as u8) {
        records.pop();
    }
    let receipt_kind = EntryKind::Receipt as u8;
    let before_last = &records[records.len() - 2];
    assert_eq!(
        before_last.0, receipt_kind,
        "two receipts in the unsigned tail"
    );
    records
}

/// A zstd frame of `plain` made with a copy of the built-in dictionary under id 40000: what a
/// build with a second built-in dictionary would write.
fn frame_of_unknown_dictionary(plain: &[u8]) -> Vec<u8> {
    let mut other = trailmix_db::compress::BUILT_IN_1.to_vec();
    other[4..8].copy_from_slice(&40_000u32.to_le_bytes());
    zstd::bulk::Compressor::with_dictionary(3, &other)
        .expect("compressor")
        .compress(plain)
        .expect("compresses")
}

#[test]
fn an_unknown_dictionary_is_unsupported_on_read_and_verify_still_passes() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    let mut records = tail_of_receipts(&dir, 4);
    let last = records.len() - 1;
    let (kind, bytes) = records[last].clone();
    let entry = decode_entry(EntryKind::Receipt, &bytes).expect("decodes");
    assert_ne!(
        entry.flags & flags::PAYLOAD_COMPRESSED,
        0,
        "stored compressed"
    );
    let plain = receipt("acme", 3, 300).payload().to_vec();
    records[last].1 = with_payload(kind, &bytes, &frame_of_unknown_dictionary(&plain), true);
    rechain(&mut records, last);
    let forged = scratch.path().join("newer");
    write_log(&dir, &forged, &records, SEGMENT);
    let seq = Seq(u64::try_from(last).expect("fits"));

    // Every hash is intact: verify checks stored bytes and never decompresses.
    let report = verify_with(&forged, &VerifyOptions::default());
    assert!(report.verified(), "{:?}", report.damage);

    let db = Db::open_with(&forged, options()).expect("opens: replay does not decompress");
    match db.get(seq) {
        Err(Error::Unsupported { seq: at, what }) => {
            assert_eq!(at, seq);
            assert!(what.contains("dictionary id 40000"), "{what}");
        }
        other => panic!("expected Unsupported at {seq}, got {other:?}"),
    }
    let err = db.get(seq).expect_err("unsupported").to_string();
    assert!(err.contains("needs a newer build"), "{err}");
    // The receipt before it reads as ever.
    assert_eq!(
        db.get(Seq(seq.0 - 1)).expect("reads").payload,
        receipt("acme", 2, 300).payload()
    );
    db.close().expect("close");

    // A pack export reads every payload (its readable copy): refused by the same error.
    let signer = FileKeyProvider::new(&forged).signer("unused").expect("key");
    let scope = PackScope {
        tenant: "acme".into(),
        logged_from_ns: None,
        logged_to_ns: None,
        filter: None,
    };
    match export_pack(&forged, &signer, &scope, &ExportOptions::default()) {
        Err(PackError::Store(Error::Unsupported { seq: at, .. })) => assert_eq!(at, seq),
        Err(other) => panic!("expected Unsupported at {seq}, got {other:?}"),
        Ok(_) => panic!("expected Unsupported at {seq}, the export succeeded"),
    }
}

/// A change to one record (WAL kind byte, entry bytes).
type Edit = dyn Fn(&mut Rec);

/// The last receipt of a fresh store's unsigned tail changed by `edit` (no re-linking: nothing
/// follows it); returns the forged store's directory and the entry's seq.
fn forged_last_entry(scratch: &Path, name: &str, edit: &Edit) -> (std::path::PathBuf, Seq) {
    let dir = scratch.join(format!("{name}-source"));
    let mut records = tail_of_receipts(&dir, 3);
    let last = records.len() - 1;
    edit(&mut records[last]);
    let forged = scratch.join(name);
    write_log(&dir, &forged, &records, SEGMENT);
    (forged, Seq(u64::try_from(last).expect("fits")))
}

#[test]
fn a_newer_entry_version_or_kind_is_unsupported_at_open_and_malformed_bytes_stay_damaged() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let newer: [(&str, &Edit, &str); 2] = [
        (
            "version",
            &|rec: &mut Rec| rec.1[0] = ENTRY_VERSION + 1,
            "entry version 4",
        ),
        ("kind", &|rec: &mut Rec| rec.0 = 99, "entry kind 99"),
    ];
    for (name, edit, said) in newer {
        let (forged, seq) = forged_last_entry(scratch.path(), name, edit);
        match Db::open_with(&forged, options()) {
            Err(Error::Unsupported { seq: at, what }) => {
                assert_eq!(at, seq, "{name}");
                assert!(what.contains(said), "{name}: {what}");
            }
            Err(other) => panic!("{name}: expected Unsupported at {seq}, got {other:?}"),
            Ok(_) => panic!("{name}: expected Unsupported at {seq}, the store opened"),
        }
        // verify cannot check what it cannot decode: it still reports it, as malformed.
        let report = verify_with(&forged, &VerifyOptions::default());
        let damage = report.damage.expect("verify reports it");
        assert_eq!(
            (damage.seq, damage.kind),
            (seq, DamageKind::Malformed),
            "{name}"
        );
    }
    // A known version and kind whose bytes do not decode (a reserved byte set) is damage.
    let (forged, seq) = forged_last_entry(scratch.path(), "reserved", &|rec: &mut Rec| {
        rec.1[2] = 1;
    });
    match Db::open_with(&forged, options()) {
        Err(Error::Damaged { seq: at, .. }) => assert_eq!(at, seq),
        Err(other) => panic!("expected Damaged at {seq}, got {other:?}"),
        Ok(_) => panic!("expected Damaged at {seq}, the store opened"),
    }
}

/// The last receipt of an encrypted store's unsigned tail with its payload's format byte set
/// to 3 and the chain re-linked: what a build with a third payload format would write.
#[test]
fn an_unknown_payload_format_is_unsupported_on_read_and_at_open() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    let encrypted = DbOptions::default().segment_bytes(SEGMENT);
    let db = Db::open_with(&dir, encrypted.clone()).expect("open");
    for n in 0..3 {
        db.append_and_wait(&receipt("acme", n, 300))
            .expect("append");
    }
    db.close().expect("close");
    let mut records = records(&dir);
    while records.last().map(|r| r.0) != Some(EntryKind::Receipt as u8) {
        records.pop();
    }
    let last = records.len() - 1;
    let (kind, bytes) = records[last].clone();
    let entry = decode_entry(EntryKind::Receipt, &bytes).expect("decodes");
    assert_ne!(
        entry.flags & flags::PAYLOAD_ENCRYPTED,
        0,
        "stored encrypted"
    );
    let mut payload = entry.payload.to_vec();
    assert_eq!(payload[0], trailmix_db::crypto::PAYLOAD_FORMAT_AES_GCM);
    payload[0] = 3;
    records[last].1 = with_payload(kind, &bytes, &payload, true);
    rechain(&mut records, last);
    let forged = scratch.path().join("newer");
    write_log(&dir, &forged, &records, SEGMENT);
    let seq = Seq(u64::try_from(last).expect("fits"));

    // A read of the payload (any reader that reaches it: point reads, queries, exports).
    let forged_entry = decode_entry(EntryKind::Receipt, &records[last].1).expect("decodes");
    match trailmix_db::shred::open_payload(
        None,
        forged_entry.flags,
        forged_entry.header,
        forged_entry.payload,
    ) {
        Err(trailmix_db::compress::PayloadError::Unsupported(what)) => {
            assert!(what.contains("payload format 3"), "{what}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    // Open's replay reads the key id of every encrypted payload past the snapshot.
    match Db::open_with(&forged, encrypted) {
        Err(Error::Unsupported { seq: at, what }) => {
            assert_eq!(at, seq);
            assert!(what.contains("payload format 3"), "{what}");
        }
        Err(other) => panic!("expected Unsupported at {seq}, got {other:?}"),
        Ok(_) => panic!("expected Unsupported at {seq}, the store opened"),
    }
    // verify reads no key; it cannot check what it cannot decode and says so, as for a newer
    // entry version.
    let report = verify_with(&forged, &VerifyOptions::default());
    let damage = report.damage.expect("verify reports it");
    assert_eq!((damage.seq, damage.kind), (seq, DamageKind::Malformed));
}
