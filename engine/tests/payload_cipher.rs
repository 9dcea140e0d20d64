//! Guards payload format 2, AES-256-GCM (docs/design.md, "Encrypted payloads"): the cipher
//! against NIST's AES-256-GCM vectors through the engine's own seal call, the subkey
//! derivation against a golden value; new stores write format 2 and `payload_cipher` picks
//! format 1; a store holding both (written by several processes, so several prefixes per key)
//! reads through `Db`, `ReadOnlyStore` and query pages on one or several threads alike, and a
//! retry across formats is a duplicate; a shred leaves no kept opening key that still opens
//! the shredded key's payloads; and the checked-in `aes-gcm-store` fixture (formats 1 then 2,
//! its test KEK) reads and verifies (regenerate with `TRAILMIX_REGENERATE_FIXTURES=1`).

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trailmix_db::crypto::{
    AES_GCM_SUBKEY_CONTEXT, PAYLOAD_FORMAT_AES_GCM, PAYLOAD_FORMAT_XCHACHA, aes_256_gcm_seal,
    aes_gcm_subkey,
};
use trailmix_db::entry::{EntryKind, decode_entry, flags};
use trailmix_db::keystore::{FileKekProvider, KeyStore};
use trailmix_db::query::Query;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::shred::open_payload;
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{
    Db, DbOptions, Freshness, PayloadCipher, PayloadState, ReadOnlyStore, VerifyOptions, WAL_DIR,
    verify_store,
};

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// AES-256 test cases 13–16 of the original GCM specification (the ones NIST's
/// SP 800-38D validation lists reproduce): key, IV, plaintext, AD, ciphertext ‖ tag.
const NIST_VECTORS: [(&str, &str, &str, &str, &str); 4] = [
    (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000",
        "",
        "",
        "530f8afbc74536b9a963b4f1c4cb738b",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000",
        "00000000000000000000000000000000",
        "",
        "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919",
    ),
    (
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        "",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
         8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad\
         b094dac5d93471bdec1a502270e3cc6c",
    ),
    (
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
         8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662\
         76fc6ece0f4e1768cddf8853bb2d551b",
    ),
];

#[test]
fn nist_aes_256_gcm_vectors_through_the_engines_seal() {
    for (n, (key, iv, plain, ad, sealed)) in NIST_VECTORS.iter().enumerate() {
        let key: [u8; 32] = hex(key).try_into().expect("32 bytes");
        let iv: [u8; 12] = hex(iv).try_into().expect("12 bytes");
        let out = aes_256_gcm_seal(&key, &iv, &hex(ad), &hex(plain)).expect("seals");
        assert_eq!(out, hex(sealed), "test case {}", 13 + n);
    }
}

/// The AES key of a format 2 prefix, pinned: a changed context or input order would make
/// every format 2 payload written so far unreadable.
#[test]
fn the_subkey_derivation_is_pinned() {
    let data_key: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).expect("small"));
    let prefix: [u8; 16] = std::array::from_fn(|i| u8::try_from(0xa0 + i).expect("small"));
    assert_eq!(
        AES_GCM_SUBKEY_CONTEXT,
        "trailmix-db 2026-11-24 payload aes-256-gcm subkey v1"
    );
    let subkey = aes_gcm_subkey(&data_key, &prefix);
    assert_eq!(subkey.as_slice(), hex(GOLDEN_SUBKEY));
}

/// Computed independently of the blake3 crate (a from-the-specification BLAKE3 in Python).
const GOLDEN_SUBKEY: &str = "be8a5752352e5079440a445a237e6d20fb7d07468e5bd6679bda2942ee6e3ae8";

fn receipt(subject: &str, n: u64) -> Receipt {
    Receipt::builder("acme", format!("evt-{n:04}"), Kind::LlmCall)
        .app_id("cipher")
        .actor_type(ActorType::Agent)
        .subject_id(subject)
        .session_id(format!("s{}", n % 3))
        .event_time(Timestamp::from_unix_nanos(
            1_763_950_000_000_000_000 + i64::try_from(n).expect("small"),
        ))
        .input(serde_json::json!({ "prompt": format!("request {n} of {subject}") }))
        .build()
        .expect("valid receipt")
}

fn options(cipher: PayloadCipher) -> DbOptions {
    DbOptions::default()
        .segment_bytes(256 << 10)
        .payload_cipher(cipher)
}

/// Each receipt's (seq, payload format byte), from the log.
fn formats(data: &Path) -> Vec<(Seq, u8)> {
    let reader = WalReader::open(data.join(WAL_DIR)).expect("reader");
    reader
        .read_from(Seq(0))
        .expect("records")
        .iter()
        .filter(|r| r.kind.get() == EntryKind::Receipt as u8)
        .map(|r| {
            let entry = decode_entry(EntryKind::Receipt, &r.payload).expect("decodes");
            assert_ne!(entry.flags & flags::PAYLOAD_ENCRYPTED, 0, "encrypted");
            (r.seq, entry.payload[0])
        })
        .collect()
}

const SUBJECTS: [&str; 2] = ["s-ann", "s-bob"];

/// A store written in four sessions (each a new process for the key store: new prefixes):
/// format 1, format 2, format 1, format 2, 10 receipts each over two subjects.
fn mixed_store(data: &Path) -> u64 {
    let mut n = 0;
    for cipher in [
        PayloadCipher::XChaCha20Poly1305,
        PayloadCipher::Aes256Gcm,
        PayloadCipher::XChaCha20Poly1305,
        PayloadCipher::Aes256Gcm,
    ] {
        let db = Db::open_with(data, options(cipher)).expect("open");
        for _ in 0..10 {
            db.append_and_wait(&receipt(
                SUBJECTS[usize::try_from(n % 2).expect("small")],
                n,
            ))
            .expect("append");
            n += 1;
        }
        db.close().expect("close");
    }
    n
}

fn expected_payload(n: u64) -> Vec<u8> {
    receipt(SUBJECTS[usize::try_from(n % 2).expect("small")], n)
        .payload()
        .to_vec()
}

#[test]
fn a_mixed_store_reads_alike_everywhere_and_retries_across_formats_are_duplicates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    let count = mixed_store(&data);
    let stored = formats(&data);
    let by_format: Vec<u8> = stored.iter().map(|(_, f)| *f).collect();
    let want: Vec<u8> = [PAYLOAD_FORMAT_XCHACHA, PAYLOAD_FORMAT_AES_GCM]
        .repeat(2)
        .into_iter()
        .flat_map(|f| [f; 10])
        .collect();
    assert_eq!(
        by_format, want,
        "default is format 2, the option picks format 1"
    );

    // Retries of a format 1 receipt under format 2 and the reverse: duplicates.
    for cipher in [PayloadCipher::Aes256Gcm, PayloadCipher::XChaCha20Poly1305] {
        let db = Db::open_with(&data, options(cipher)).expect("open");
        for n in [0, 15] {
            let position = db
                .append_and_wait(&receipt(
                    SUBJECTS[usize::try_from(n % 2).expect("small")],
                    n,
                ))
                .expect("retry");
            assert_eq!(
                position.seq,
                stored[usize::try_from(n).expect("small")].0,
                "{cipher:?} retry of {n}"
            );
        }
        db.close().expect("close");
    }
    assert_eq!(formats(&data).len(), stored.len(), "no receipt added");

    let db = Db::open_with(&data, options(PayloadCipher::Aes256Gcm)).expect("open");
    for (n, (seq, _)) in stored.iter().enumerate() {
        let read = db.get(*seq).expect("reads");
        assert!(matches!(read.payload_state, PayloadState::Decrypted { .. }));
        assert_eq!(read.payload, expected_payload(n as u64), "receipt {n}");
    }
    db.query_text("tenant=acme", Freshness::Durable)
        .expect("indexed");
    db.close().expect("close");

    let reader = ReadOnlyStore::open(&data).expect("read-only open");
    let page = reader.query_text("tenant=acme limit=100").expect("query");
    assert_eq!(page.receipts.len() as u64, count);
    for read in &page.receipts {
        let n = stored
            .iter()
            .position(|(s, _)| *s == read.position.seq)
            .expect("known");
        assert_eq!(
            read.payload,
            expected_payload(n as u64),
            "read-only receipt {n}"
        );
    }
    drop(reader);

    assert!(
        verify_store(&data, &VerifyOptions::default())
            .expect("verify")
            .verified()
    );
}

/// Every page of `filter` with payloads, as text.
fn pages(db: &Db, filter: &str) -> Vec<String> {
    let mut query = Query::parse(filter).expect("filter");
    let mut out = Vec::new();
    loop {
        let page = db.query(&query, Freshness::Indexed).expect("query");
        for read in &page.receipts {
            assert!(
                matches!(read.payload_state, PayloadState::Decrypted { .. }),
                "{:?}",
                read.payload_state
            );
            out.push(format!(
                "{:?} {}",
                read.position.seq,
                String::from_utf8_lossy(&read.payload)
            ));
        }
        match page.next_cursor {
            Some(cursor) => {
                query.cursor = Some(trailmix_db::query::Cursor::decode(&cursor).expect("cursor"));
            }
            None => return out,
        }
    }
}

#[test]
fn query_pages_of_a_mixed_store_are_equal_on_one_and_several_threads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    let count = mixed_store(&data);
    let mut answers = Vec::new();
    for threads in [1, 4] {
        let db = Db::open_with(
            &data,
            options(PayloadCipher::Aes256Gcm).query_threads(threads),
        )
        .expect("open");
        db.query_text("tenant=acme", Freshness::Durable)
            .expect("indexed");
        let mut answer = Vec::new();
        for filter in [
            "tenant=acme limit=7",
            "tenant=acme order=-seq limit=40",
            "tenant=acme session=s1",
        ] {
            answer.extend(pages(&db, filter));
        }
        db.close().expect("close");
        answers.push(answer);
    }
    let in_session_s1 = (0..count).filter(|n| n % 3 == 1).count();
    assert_eq!(
        answers[0].len(),
        2 * usize::try_from(count).expect("small") + in_session_s1
    );
    assert_eq!(answers[0], answers[1]);
}

#[test]
fn a_shred_leaves_no_kept_opening_key_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    mixed_store(&data);
    let stored = formats(&data);
    let db = Db::open_with(&data, options(PayloadCipher::Aes256Gcm)).expect("open");
    // Read everything first: each prefix's opening key is derived and kept.
    for (seq, _) in &stored {
        assert!(matches!(
            db.get(*seq).expect("reads").payload_state,
            PayloadState::Decrypted { .. }
        ));
    }
    // Payloads written after the reads, in this process: the sealer's prefix too.
    let later = db.append_and_wait(&receipt("s-ann", 100)).expect("append");
    assert!(!db.get(later.seq).expect("reads").payload.is_empty());
    db.shred("acme", "s-ann", "dsr-1").expect("shred");
    let mut shredded = 0;
    for seq in stored.iter().map(|(s, _)| *s).chain([later.seq]) {
        let read = db.get(seq).expect("reads");
        if read.header.subject_id() == Some("s-ann") {
            assert!(
                matches!(read.payload_state, PayloadState::Shredded { .. }),
                "{seq:?}: {:?}",
                read.payload_state
            );
            assert!(read.payload.is_empty(), "{seq:?} still opens");
            shredded += 1;
        } else {
            assert!(matches!(read.payload_state, PayloadState::Decrypted { .. }));
        }
    }
    assert_eq!(shredded, 21);
    // Through a query page (the read pool) as well.
    let page = db
        .query_text("tenant=acme limit=100", Freshness::Durable)
        .expect("query");
    assert!(
        page.receipts
            .iter()
            .filter(|r| r.header.subject_id() == Some("s-ann"))
            .all(|r| r.payload.is_empty()
                && matches!(r.payload_state, PayloadState::Shredded { .. }))
    );
    db.close().expect("close");
}

// The fixture: a small store written with format 1 (3 receipts), then format 2 (3 receipts),
// with its test KEK and test signing key (so that a test can open it for writing).
const FIXTURE_RECEIPTS: u64 = 6;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aes-gcm-store")
}

fn regenerate() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    for (cipher, range) in [
        (PayloadCipher::XChaCha20Poly1305, 0..3),
        (PayloadCipher::Aes256Gcm, 3..FIXTURE_RECEIPTS),
    ] {
        let db = Db::open_with(&dir, options(cipher).segment_bytes(64 << 10)).expect("create");
        for n in range {
            db.append_and_wait(&receipt(
                SUBJECTS[usize::try_from(n % 2).expect("small")],
                n,
            ))
            .expect("append");
        }
        db.close().expect("close");
    }
    std::fs::remove_dir_all(dir.join("index")).expect("remove index");
    let _ = std::fs::remove_file(dir.join("wal/LOCK"));
}

#[test]
fn checked_in_aes_gcm_store_reads_and_verifies() {
    // Only a missing fixture is written: it records what the build of its day wrote.
    if std::env::var("TRAILMIX_REGENERATE_FIXTURES").as_deref() == Ok("1")
        && !fixture_dir().exists()
    {
        regenerate();
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let store = scratch.path().join("store");
    common::copy_dir(&fixture_dir(), &store);
    std::fs::set_permissions(store.join("keys"), std::fs::Permissions::from_mode(0o700))
        .expect("chmod");
    for file in std::fs::read_dir(store.join("keys")).expect("keys") {
        let path = file.expect("entry").path();
        // Git keeps no 0600 modes; a key file readable by others is refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let report = verify_store(&store, &VerifyOptions::default()).expect("verify runs");
    assert!(report.verified(), "{:?}", report.damage);
    assert_eq!(report.receipts, FIXTURE_RECEIPTS);
    let by_format: Vec<u8> = formats(&store).iter().map(|(_, f)| *f).collect();
    assert_eq!(by_format, [1, 1, 1, 2, 2, 2]);

    // Decrypted with the checked-in key store, as the tools read without the signing key.
    let reader = WalReader::open(store.join(WAL_DIR)).expect("reader");
    let keys = KeyStore::open_read_only(
        &store,
        reader.meta().store_id.0,
        Arc::new(FileKekProvider::in_data_dir(&store)),
    )
    .expect("key store opens")
    .expect("the fixture has a key store");
    let receipts: Vec<_> = reader
        .read_from(Seq(0))
        .expect("records")
        .into_iter()
        .filter(|r| r.kind.get() == EntryKind::Receipt as u8)
        .collect();
    for (n, record) in receipts.iter().enumerate() {
        let entry = decode_entry(EntryKind::Receipt, &record.payload).expect("decodes");
        let (plain, state) =
            open_payload(Some(&keys), entry.flags, entry.header, entry.payload).expect("opens");
        assert!(matches!(state, PayloadState::Decrypted { .. }), "{n}");
        assert_eq!(plain, expected_payload(n as u64), "fixture receipt {n}");
    }
    // Through a writer (which rebuilds the index the fixture lacks) and a read-only store.
    let db = Db::open_with(&store, options(PayloadCipher::Aes256Gcm)).expect("opens");
    for (n, record) in receipts.iter().enumerate() {
        let read = db.get(record.seq).expect("reads");
        assert_eq!(
            read.payload,
            expected_payload(n as u64),
            "fixture receipt {n}"
        );
    }
    db.query_text("tenant=acme", Freshness::Durable)
        .expect("indexed");
    db.close().expect("close");
    let read_only = ReadOnlyStore::open(&store).expect("read-only open");
    let page = read_only.query_text("tenant=acme").expect("query");
    assert_eq!(page.receipts.len() as u64, FIXTURE_RECEIPTS);
    for (n, read) in page.receipts.iter().enumerate() {
        assert_eq!(read.position.seq, receipts[n].seq);
        assert_eq!(
            read.payload,
            expected_payload(n as u64),
            "read-only receipt {n}"
        );
    }
}
