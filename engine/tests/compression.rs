//! Guards payload compression (`DbOptions::payload_compression`, entry flag bit 2, with or
//! without the built-in dictionary): payloads round-trip in every mode, encrypted or not; one that does not shrink stays raw; a changed
//! compressed payload is a typed error on read and fails `verify`; a shred leaves neither the
//! plaintext nor its compressed frame in any file; a retry under another level (or with
//! compression off, or with the dictionary) is a duplicate, not a conflict; and the checked-in
//! `compressed-store` (no dictionary) and `dict-compressed-store` (built-in dictionary 1)
//! fixtures still read and verify (regenerate with `TRAILMIX_REGENERATE_FIXTURES=1`).

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trailmix_db::entry::{EntryKind, decode_entry, flags};
use trailmix_db::keystore::{FileKekProvider, KeyStore};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::shred::open_payload;
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{
    Db, DbOptions, Error, EventCheck, PayloadCompression, PayloadEncryption, PayloadState,
    VerifyOptions, WAL_DIR, ZstdDictionary, verify_store,
};

const WORDS: [&str; 12] = [
    "the", "customer", "asked", "about", "refund", "policy", "for", "order", "and", "we",
    "checked", "balance",
];

/// A compressible payload: repetitive text (what receipts mostly hold).
fn text(n: u64) -> String {
    (0..60)
        .map(|i| WORDS[usize::try_from((n + i * 7) % 12).expect("small")])
        .collect::<Vec<_>>()
        .join(" ")
}

fn receipt_with(tenant: &str, subject: Option<&str>, n: u64, input: serde_json::Value) -> Receipt {
    let mut builder = Receipt::builder(tenant, format!("evt-{n:04}"), Kind::LlmCall)
        .app_id("compress")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(
            1_763_800_000_000_000_000 + i64::try_from(n).expect("small"),
        ))
        .input(input);
    if let Some(subject) = subject {
        builder = builder.subject_id(subject);
    }
    builder.build().expect("valid receipt")
}

fn receipt(tenant: &str, subject: Option<&str>, n: u64) -> Receipt {
    receipt_with(tenant, subject, n, serde_json::json!({ "prompt": text(n) }))
}

fn options(encryption: PayloadEncryption, compression: PayloadCompression) -> DbOptions {
    DbOptions::default()
        .segment_bytes(256 << 10)
        .payload_encryption(encryption)
        .payload_compression(compression)
}

const MODES: [PayloadCompression; 4] = [
    PayloadCompression::Off,
    PayloadCompression::Zstd { level: 1 },
    PayloadCompression::Zstd { level: 19 },
    // The built-in dictionary.
    PayloadCompression::zstd(),
];

/// The flags byte and stored payload of every receipt entry, by seq.
fn stored_receipts(dir: &Path) -> Vec<(u64, u8, Vec<u8>)> {
    let reader = WalReader::open(dir.join(WAL_DIR)).expect("reader");
    reader
        .read_from(Seq(0))
        .expect("records")
        .into_iter()
        .filter(|r| r.kind.get() == EntryKind::Receipt as u8)
        .map(|record| {
            let entry = decode_entry(EntryKind::Receipt, &record.payload).expect("decodes");
            (record.seq.0, entry.flags, entry.payload.to_vec())
        })
        .collect()
}

#[test]
fn payloads_round_trip_in_every_mode_and_the_flag_says_which_are_compressed() {
    for encryption in [PayloadEncryption::Off, PayloadEncryption::PerSubject] {
        for mode in MODES {
            let scratch = tempfile::tempdir().expect("tempdir");
            let dir = scratch.path().join("store");
            let db = Db::open_with(&dir, options(encryption, mode)).expect("open");
            let originals: Vec<Receipt> = (0..6).map(|n| receipt("acme", Some("s1"), n)).collect();
            let seqs: Vec<Seq> = originals
                .iter()
                .map(|r| db.append_and_wait(r).expect("append").seq)
                .collect();
            for (seq, original) in seqs.iter().zip(&originals) {
                let stored = db.get(*seq).expect("get");
                assert_eq!(
                    stored.payload,
                    original.payload(),
                    "{encryption:?} {mode:?}"
                );
                let found = db
                    .find_event("acme", original.header().event_id())
                    .expect("find")
                    .expect("found");
                assert_eq!(found.payload, original.payload());
                assert_eq!(
                    db.check_event(original).expect("check"),
                    EventCheck::Same(found.position)
                );
            }
            db.close().expect("close");
            let compressed_wanted = mode != PayloadCompression::Off;
            let entries = stored_receipts(&dir);
            assert_eq!(entries.len(), 6);
            for (seq, flag_bits, payload) in &entries {
                assert_eq!(
                    flag_bits & flags::PAYLOAD_COMPRESSED != 0,
                    compressed_wanted,
                    "seq {seq} under {encryption:?} {mode:?}"
                );
                assert_eq!(
                    flag_bits & flags::PAYLOAD_ENCRYPTED != 0,
                    encryption == PayloadEncryption::PerSubject
                );
                if compressed_wanted && encryption == PayloadEncryption::Off {
                    assert!(payload.len() < originals[0].payload().len() / 2);
                }
            }
            let report = verify_store(&dir, &VerifyOptions::default()).expect("verify");
            assert!(report.verified(), "{:?}", report.damage);
            // Reopened (replay, index from the log), the payloads still read.
            let db = Db::open_with(&dir, options(encryption, mode)).expect("reopen");
            assert_eq!(
                db.get(seqs[3]).expect("get").payload,
                originals[3].payload()
            );
            db.close().expect("close");
        }
    }
}

#[test]
fn a_payload_that_does_not_shrink_is_stored_raw() {
    // 40 bytes of distinct characters: a zstd frame of it is longer than it.
    let noise = "q7Zk2vX9mPw4Lr8Ts1Yh6Nc3Bf5Gd0Je";
    for encryption in [PayloadEncryption::Off, PayloadEncryption::PerSubject] {
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = scratch.path().join("store");
        let db =
            Db::open_with(&dir, options(encryption, PayloadCompression::zstd())).expect("open");
        let small = receipt_with("acme", None, 1, serde_json::json!(noise));
        let big = receipt("acme", None, 2);
        let small_seq = db.append_and_wait(&small).expect("append").seq;
        let big_seq = db.append_and_wait(&big).expect("append").seq;
        assert_eq!(db.get(small_seq).expect("get").payload, small.payload());
        db.close().expect("close");
        let entries = stored_receipts(&dir);
        let flag_of = |seq: Seq| {
            entries
                .iter()
                .find(|(s, _, _)| *s == seq.0)
                .map(|(_, f, p)| (*f, p.clone()))
                .expect("entry")
        };
        let (small_flags, small_stored) = flag_of(small_seq);
        assert_eq!(small_flags & flags::PAYLOAD_COMPRESSED, 0, "{encryption:?}");
        if encryption == PayloadEncryption::Off {
            assert_eq!(small_stored, small.payload());
        }
        assert_ne!(flag_of(big_seq).0 & flags::PAYLOAD_COMPRESSED, 0);
    }
}

#[test]
fn a_changed_compressed_payload_is_damaged_on_read_and_fails_verify() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    let db = Db::open_with(
        &dir,
        options(PayloadEncryption::Off, PayloadCompression::zstd()),
    )
    .expect("open");
    let target = db
        .append_and_wait(&receipt("acme", None, 1))
        .expect("append")
        .seq;
    db.append_and_wait(&receipt("acme", None, 2))
        .expect("append");
    db.close().expect("close");
    let (_, flag_bits, frame) = stored_receipts(&dir)
        .into_iter()
        .find(|(s, _, _)| *s == target.0)
        .expect("entry");
    assert_ne!(flag_bits & flags::PAYLOAD_COMPRESSED, 0);

    // Flip a byte in the middle of the frame and rewrite the WAL frame's CRC to match, so
    // that only the engine's checks can notice.
    let (_, frames) = common::layout(&dir);
    let victim = frames
        .iter()
        .find(|f| f.seq == target)
        .expect("victim frame");
    let header = common::read_at(&victim.file, victim.offset, 32);
    let durable_end = Seq(u64::from_le_bytes(
        header[16..24].try_into().expect("8 bytes"),
    ));
    let mut entry = victim.payload.clone();
    let at = entry
        .windows(frame.len())
        .position(|w| w == frame.as_slice())
        .expect("frame in the entry")
        + frame.len() / 2;
    entry[at] ^= 0x40;
    let image = common::frame_image(victim.seq, durable_end, victim.kind, &entry);
    common::write_at(&victim.file, victim.offset, &image);

    let report = verify_store(&dir, &VerifyOptions::default()).expect("verify runs");
    assert!(
        !report.verified(),
        "a flipped byte of a compressed payload must fail verify"
    );
    let db = Db::open_with(
        &dir,
        options(PayloadEncryption::Off, PayloadCompression::zstd()),
    )
    .expect("reopen");
    match db.get(target) {
        Err(Error::Damaged { seq, .. }) => assert_eq!(seq, target),
        other => panic!("expected Damaged at {target}, got {other:?}"),
    }
}

#[test]
fn a_frame_that_is_not_one_is_a_typed_error_not_a_panic_or_an_allocation() {
    let bits = flags::PAYLOAD_COMPRESSED;
    assert!(open_payload(None, bits, b"", b"{\"not\":\"a frame\"}").is_err());
    // A frame stating more than the payload limit (a bomb): refused before decompressing.
    let zeros = vec![0u8; trailmix_db::receipt::MAX_PAYLOAD_BYTES + 1];
    let bomb = trailmix_db::compress::compress(3, None, &zeros).expect("zeros compress");
    assert!(bomb.len() < 200);
    let err = open_payload(None, bits, b"", &bomb).expect_err("bomb refused");
    assert!(
        matches!(&err, trailmix_db::shred::PayloadError::Damaged(d) if d.contains("limit")),
        "{err:?}"
    );
    // A frame cut short, without and with the dictionary.
    for dictionary in [None, Some(ZstdDictionary::BuiltIn1)] {
        let frame =
            trailmix_db::compress::compress(3, dictionary, text(1).as_bytes()).expect("frame");
        for cut in 0..frame.len() {
            assert!(
                open_payload(None, bits, b"", &frame[..cut]).is_err(),
                "{dictionary:?} cut at {cut}"
            );
        }
        let (plain, state) = open_payload(None, bits, b"", &frame).expect("opens");
        assert_eq!(
            (plain.as_slice(), state),
            (text(1).as_bytes(), PayloadState::Clear)
        );
    }
}

#[test]
fn shred_leaves_neither_plaintext_nor_compressed_frame_in_any_file() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    let secret = "jane doe's diagnosis: the customer asked about refund policy for order 77";
    let payload_of = |n: u64| {
        receipt_with(
            "acme",
            Some("jane"),
            n,
            serde_json::json!({"prompt": format!("{secret} {} {}", text(n), n)}),
        )
    };
    let mode = PayloadCompression::zstd();

    // First without encryption: the frame is in the log, so the search below can find it.
    let clear_dir = scratch.path().join("clear");
    let db = Db::open_with(&clear_dir, options(PayloadEncryption::Off, mode)).expect("open");
    db.append_and_wait(&payload_of(1)).expect("append");
    db.close().expect("close");
    let frame = trailmix_db::compress::compress(3, mode.zstd_dictionary(), payload_of(1).payload())
        .expect("frame");
    assert!(
        !common::files_containing(&clear_dir, &frame).is_empty(),
        "the needle finds a stored frame"
    );

    let db = Db::open_with(&dir, options(PayloadEncryption::PerSubject, mode)).expect("open");
    let receipts: Vec<Receipt> = (1..4).map(payload_of).collect();
    let mut seqs = Vec::new();
    for r in &receipts {
        seqs.push(db.append_and_wait(r).expect("append").seq);
    }
    assert_eq!(db.get(seqs[0]).expect("get").payload, receipts[0].payload());
    db.shred("acme", "jane", "dsr-1").expect("shred");
    assert!(matches!(
        db.get(seqs[0]).expect("get").payload_state,
        PayloadState::Shredded { .. }
    ));
    db.close().expect("close");
    for r in &receipts {
        let frame =
            trailmix_db::compress::compress(3, mode.zstd_dictionary(), r.payload()).expect("frame");
        assert_eq!(
            common::files_containing(&dir, &frame),
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            common::files_containing(&dir, r.payload()),
            Vec::<PathBuf>::new()
        );
    }
    assert_eq!(
        common::files_containing(&dir, secret.as_bytes()),
        Vec::<PathBuf>::new()
    );
    let report = verify_store(&dir, &VerifyOptions::default()).expect("verify");
    assert!(report.verified(), "{:?}", report.damage);
}

#[test]
fn a_retry_under_another_level_or_with_compression_off_is_a_duplicate() {
    for encryption in [PayloadEncryption::Off, PayloadEncryption::PerSubject] {
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = scratch.path().join("store");
        let first = receipt("acme", Some("s1"), 1);
        let db = Db::open_with(
            &dir,
            options(encryption, PayloadCompression::Zstd { level: 1 }),
        )
        .expect("open");
        let position = db.append_and_wait(&first).expect("append");
        // Same process, same level: equal digests (clear) or the decrypting fallback.
        assert_eq!(db.append_and_wait(&first).expect("retry"), position);
        db.close().expect("close");
        for mode in [
            PayloadCompression::Zstd { level: 19 },
            PayloadCompression::Off,
            PayloadCompression::zstd(),
            PayloadCompression::Zstd { level: 1 },
        ] {
            let db = Db::open_with(&dir, options(encryption, mode)).expect("reopen");
            assert_eq!(
                db.append_and_wait(&first).expect("a retry is a duplicate"),
                position,
                "{encryption:?} retried under {mode:?}"
            );
            // Other content under the same event id still conflicts.
            let other = receipt_with(
                "acme",
                Some("s1"),
                1,
                serde_json::json!({"prompt": text(5)}),
            );
            assert!(
                matches!(db.append_and_wait(&other), Err(Error::Conflict { .. })),
                "{encryption:?} {mode:?}"
            );
            db.close().expect("close");
        }
        // Stored uncompressed first, retried compressed.
        let second = receipt("acme", Some("s1"), 2);
        let db = Db::open_with(&dir, options(encryption, PayloadCompression::Off)).expect("open");
        let position = db.append_and_wait(&second).expect("append");
        db.close().expect("close");
        let db =
            Db::open_with(&dir, options(encryption, PayloadCompression::zstd())).expect("open");
        assert_eq!(db.append_and_wait(&second).expect("duplicate"), position);
        db.close().expect("close");
        assert_eq!(stored_receipts(&dir).len(), 2, "no retry was written again");
    }
}

#[test]
fn a_zstd_level_outside_1_to_22_is_an_invalid_option() {
    let scratch = tempfile::tempdir().expect("tempdir");
    for (n, mode) in [0, 23, -5]
        .into_iter()
        .flat_map(|level| {
            [
                PayloadCompression::Zstd { level },
                PayloadCompression::ZstdWithDictionary {
                    level,
                    dictionary: ZstdDictionary::BuiltIn1,
                },
            ]
        })
        .enumerate()
    {
        let level = mode.zstd_level();
        let result = Db::open_with(
            scratch.path().join(format!("store{n}")),
            DbOptions::default().payload_compression(mode),
        );
        assert!(
            matches!(
                result,
                Err(Error::InvalidOption {
                    name: "payload_compression",
                    ..
                })
            ),
            "{mode:?}"
        );
        assert!(level.is_some());
    }
}

// The fixtures: each two small stores written with compression on (encryption is a
// per-store setting): `encrypted` (with its test KEK) and `clear`. `compressed-store` was
// written without a dictionary (zstd 3), `dict-compressed-store` with built-in dictionary 1.
const FIXTURE_RECEIPTS: u64 = 6;

const FIXTURES: [(&str, PayloadCompression); 2] = [
    ("compressed-store", PayloadCompression::Zstd { level: 3 }),
    (
        "dict-compressed-store",
        PayloadCompression::ZstdWithDictionary {
            level: 3,
            dictionary: ZstdDictionary::BuiltIn1,
        },
    ),
];

fn fixture_dir(fixture: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture)
        .join(name)
}

fn regenerate(fixture: &str, compression: PayloadCompression) {
    for (name, encryption) in [
        ("encrypted", PayloadEncryption::PerSubject),
        ("clear", PayloadEncryption::Off),
    ] {
        let dir = fixture_dir(fixture, name);
        let _ = std::fs::remove_dir_all(&dir);
        let db = Db::open_with(
            &dir,
            options(encryption, compression).segment_bytes(64 << 10),
        )
        .expect("create");
        for n in 0..FIXTURE_RECEIPTS {
            db.append_and_wait(&receipt("acme", Some("s1"), n))
                .expect("append");
        }
        db.close().expect("close");
        // The signing key never goes into the repository; the KEK does (a test key), so that
        // the payloads can be decrypted.
        std::fs::remove_file(dir.join("keys/signing.key")).expect("remove private key");
        std::fs::remove_dir_all(dir.join("index")).expect("remove index");
        let _ = std::fs::remove_file(dir.join("wal/LOCK"));
        // Empty without encryption; git keeps no empty directory.
        let _ = std::fs::remove_dir(dir.join("keys"));
    }
}

/// The zstd dictionary id a frame states (0: none).
fn frame_dictionary_id(frame: &[u8]) -> u32 {
    zstd::zstd_safe::get_dict_id_from_frame(frame).map_or(0, std::num::NonZeroU32::get)
}

#[test]
fn checked_in_compressed_stores_read_and_verify() {
    for (fixture, compression) in FIXTURES {
        // Only a missing fixture is written: each records what the build of its day wrote.
        if std::env::var("TRAILMIX_REGENERATE_FIXTURES").as_deref() == Ok("1")
            && !fixture_dir(fixture, "clear").exists()
        {
            regenerate(fixture, compression);
        }
        let dictionary_id = compression.zstd_dictionary().map_or(0, ZstdDictionary::id);
        for name in ["encrypted", "clear"] {
            check_fixture(fixture, name, dictionary_id);
        }
    }
}

fn check_fixture(fixture: &str, name: &str, dictionary_id: u32) {
    let name_of = format!("{fixture}/{name}");
    let scratch = tempfile::tempdir().expect("tempdir");
    let store = scratch.path().join("store");
    common::copy_dir(&fixture_dir(fixture, name), &store);
    // The clear store has no key file left, and git keeps no empty directory.
    let keys = store.join("keys");
    assert_eq!(
        keys.exists(),
        name == "encrypted",
        "{name_of}: keys/ holds the KEK"
    );
    let key_files = std::fs::read_dir(&keys).into_iter().flatten();
    for file in key_files {
        let path = file.expect("entry").path();
        // Git keeps no 0600 modes; a key file readable by others is refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let report = verify_store(&store, &VerifyOptions::default()).expect("verify runs");
    assert!(report.verified(), "{name_of}: {:?}", report.damage);
    assert_eq!(report.receipts, FIXTURE_RECEIPTS);
    let entries = stored_receipts(&store);
    assert_eq!(entries.len(), 6);
    assert!(
        entries
            .iter()
            .all(|(_, f, _)| f & flags::PAYLOAD_COMPRESSED != 0),
        "{name_of}"
    );
    // Read as the tools do without the signing key: the log and the key store.
    let reader = WalReader::open(store.join(WAL_DIR)).expect("reader");
    let keys = KeyStore::open_read_only(
        &store,
        reader.meta().store_id.0,
        Arc::new(FileKekProvider::in_data_dir(&store)),
    )
    .expect("key store opens");
    assert_eq!(keys.is_some(), name == "encrypted");
    for (n, record) in reader
        .read_from(Seq(0))
        .expect("records")
        .iter()
        .filter(|r| r.kind.get() == EntryKind::Receipt as u8)
        .enumerate()
    {
        let entry = decode_entry(EntryKind::Receipt, &record.payload).expect("decodes");
        let (plain, state) =
            open_payload(keys.as_ref(), entry.flags, entry.header, entry.payload).expect("opens");
        let want = receipt("acme", Some("s1"), n as u64);
        assert_eq!(plain, want.payload(), "{name_of} receipt {n}");
        assert_eq!(
            matches!(state, PayloadState::Decrypted { .. }),
            name == "encrypted"
        );
        // The frame names its dictionary (or none); a decompressor without one (all that a
        // build from before the dictionary has) refuses it by that id.
        if name == "clear" {
            assert_eq!(
                frame_dictionary_id(entry.payload),
                dictionary_id,
                "{name_of}"
            );
            let old = zstd::bulk::Decompressor::new()
                .expect("decompressor")
                .decompress(entry.payload, trailmix_db::receipt::MAX_PAYLOAD_BYTES);
            match old {
                Ok(bytes) => {
                    assert_eq!(dictionary_id, 0, "{name_of}");
                    assert_eq!(bytes, want.payload());
                }
                Err(e) => {
                    assert_ne!(dictionary_id, 0, "{name_of}: {e}");
                    assert!(e.to_string().contains("Dictionary mismatch"), "{e}");
                }
            }
        }
    }
}

#[test]
fn a_pack_of_dictionary_compressed_receipts_shows_and_checks_their_payloads() {
    use trailmix_db::pack::format::RECEIPTS_FILE;
    use trailmix_db::pack::{TrustedKey, verify_pack_files};
    for encryption in [PayloadEncryption::Off, PayloadEncryption::PerSubject] {
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = scratch.path().join("store");
        let db =
            Db::open_with(&dir, options(encryption, PayloadCompression::zstd())).expect("open");
        let originals: Vec<Receipt> = (0..6).map(|n| receipt("acme", Some("s1"), n)).collect();
        for r in &originals {
            db.append_and_wait(r).expect("append");
        }
        db.close().expect("close");
        assert!(
            stored_receipts(&dir)
                .iter()
                .all(|(_, f, _)| f & flags::PAYLOAD_COMPRESSED != 0)
        );
        let (signer, mut files, shown) = exported_payloads(&dir);
        let trusted = TrustedKey::Verifier(signer.verifier());
        // Each line's readable copy is the receipt's payload, opened with the dictionary.
        assert_eq!(shown, payload_values(&originals), "{encryption:?}");
        let text =
            String::from_utf8(files.get(RECEIPTS_FILE).expect("file").to_vec()).expect("utf-8");
        if encryption == PayloadEncryption::Off {
            // A clear compressed payload's readable copy is checked against the stored frame,
            // through the dictionary: an edited copy fails even with a fresh signature.
            let edited: Vec<String> = text
                .lines()
                .map(|line| line.replacen("customer", "cust0mer", 1))
                .collect();
            let mut bytes = edited.join("\n").into_bytes();
            bytes.push(b'\n');
            files.files.insert(RECEIPTS_FILE.into(), bytes);
            let mut manifest: trailmix_db::pack::format::Manifest = serde_json::from_slice(
                files
                    .get(trailmix_db::pack::format::MANIFEST_FILE)
                    .expect("manifest"),
            )
            .expect("parses");
            files.seal(&mut manifest, &signer).expect("seal");
            let err = verify_pack_files(&files, Some(&trusted)).expect_err("edited copy");
            assert!(format!("{err:?}").contains("payload_json"), "{err:?}");
        }
    }
}

/// The query benchmark's "incompressible" payload: hex of pseudo-random bytes. Plain zstd
/// gains more on it than the built-in dictionary does (hex is not the text the dictionary
/// knows), so the compressor keeps the dictionary-less frame.
fn hex_input(n: u64) -> serde_json::Value {
    let blob: String = (0..8u64)
        .map(|i| {
            blake3::hash(&(n * 8 + i).to_le_bytes())
                .to_hex()
                .to_string()
        })
        .collect();
    serde_json::json!({ "blob": blob })
}

#[test]
fn a_store_holding_dictionary_and_plain_frames_reads_verifies_and_exports() {
    for encryption in [PayloadEncryption::Off, PayloadEncryption::PerSubject] {
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = scratch.path().join("store");
        let db =
            Db::open_with(&dir, options(encryption, PayloadCompression::zstd())).expect("open");
        let originals: Vec<Receipt> = (0..6)
            .map(|n| {
                if n % 2 == 0 {
                    receipt("acme", Some("s1"), n)
                } else {
                    receipt_with("acme", Some("s1"), n, hex_input(n))
                }
            })
            .collect();
        let seqs: Vec<Seq> = originals
            .iter()
            .map(|r| db.append_and_wait(r).expect("append").seq)
            .collect();
        assert_reads_back(&db, &seqs, &originals);
        db.close().expect("close");
        let entries = stored_receipts(&dir);
        assert!(
            entries
                .iter()
                .all(|(_, f, _)| f & flags::PAYLOAD_COMPRESSED != 0),
            "{encryption:?}"
        );
        if encryption == PayloadEncryption::Off {
            // Text frames name the dictionary; hex frames name none.
            let ids: Vec<u32> = entries
                .iter()
                .map(|(_, _, frame)| frame_dictionary_id(frame))
                .collect();
            let want: Vec<u32> = (0..6)
                .map(|n| {
                    if n % 2 == 0 {
                        ZstdDictionary::BuiltIn1.id()
                    } else {
                        0
                    }
                })
                .collect();
            assert_eq!(ids, want);
        }
        let report = verify_store(&dir, &VerifyOptions::default()).expect("verify runs");
        assert!(report.verified(), "{encryption:?}: {:?}", report.damage);
        let db =
            Db::open_with(&dir, options(encryption, PayloadCompression::zstd())).expect("reopen");
        assert_reads_back(&db, &seqs, &originals);
        db.close().expect("close");
        let (_, _, shown) = exported_payloads(&dir);
        assert_eq!(shown, payload_values(&originals), "{encryption:?}");
    }
}

/// Exports tenant acme's evidence pack from the closed store at `dir` with the store's own
/// key, checks that it verifies, and returns the key, the pack and each line's readable
/// payload copy (`payload_json`).
fn exported_payloads(
    dir: &Path,
) -> (
    trailmix_db::note::NoteSigner,
    trailmix_db::pack::PackFiles,
    Vec<serde_json::Value>,
) {
    use trailmix_db::keys::{FileKeyProvider, SigningKeyProvider as _};
    use trailmix_db::pack::format::RECEIPTS_FILE;
    use trailmix_db::pack::{ExportOptions, PackScope, TrustedKey, export_pack, verify_pack_files};
    let signer = FileKeyProvider::new(dir).signer("unused").expect("key");
    let scope = PackScope {
        tenant: "acme".into(),
        logged_from_ns: None,
        logged_to_ns: None,
        filter: None,
    };
    let (files, _) = export_pack(dir, &signer, &scope, &ExportOptions::default()).expect("export");
    verify_pack_files(&files, Some(&TrustedKey::Verifier(signer.verifier())))
        .expect("pack verifies");
    let text = String::from_utf8(files.get(RECEIPTS_FILE).expect("file").to_vec()).expect("utf-8");
    let shown = text
        .lines()
        .filter_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("json line");
            value.get("payload_json").cloned()
        })
        .collect();
    (signer, files, shown)
}

/// Each receipt reads back at its seq with its payload byte for byte.
fn assert_reads_back(db: &Db, seqs: &[Seq], originals: &[Receipt]) {
    for (seq, r) in seqs.iter().zip(originals) {
        assert_eq!(db.get(*seq).expect("get").payload, r.payload(), "{seq:?}");
    }
}

/// The receipts' payloads as JSON values (what a pack's `payload_json` copies hold).
fn payload_values(receipts: &[Receipt]) -> Vec<serde_json::Value> {
    receipts
        .iter()
        .map(|r| serde_json::from_slice(r.payload()).expect("json"))
        .collect()
}
