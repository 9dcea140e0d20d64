//! Guards invariant 6 (shredded means gone): payloads are stored encrypted per (tenant,
//! subject); `shred` / `shred_tenant` leave no file of the data directory holding the data
//! key, the old key-encryption key or any plaintext, while reads say "shredded" and the chain,
//! proofs and signatures still verify; bad shred requests and a wrong KEK get typed errors and
//! change nothing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trailmix_db::crypto::{KekId, KeyId};
use trailmix_db::keystore::{FileKekProvider, KeyLookup, KeyStore};
use trailmix_db::proof::verify_inclusion_bundle;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{
    Db, DbOptions, Error, PayloadEncryption, PayloadState, ReadOnlyStore, ShredError,
    VerifyOptions, WAL_DIR, verify_store,
};

fn options() -> DbOptions {
    DbOptions::default()
        .segment_bytes(256 << 10)
        .checkpoint_every_records(50)
}

fn receipt(tenant: &str, subject: Option<&str>, n: u64, text: &str) -> Receipt {
    let mut builder = Receipt::builder(tenant, format!("evt-{n:06}"), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .input(serde_json::json!({ "prompt": text }));
    if let Some(subject) = subject {
        builder = builder.subject_id(subject);
    }
    builder.build().expect("valid receipt")
}

fn store_id(data_dir: &Path) -> [u8; 16] {
    WalReader::open(data_dir.join(WAL_DIR))
        .expect("log opens")
        .meta()
        .store_id
        .0
}

/// The data key `key_id` as the key store holds it (read-only, with the default KEK file).
fn data_key(data_dir: &Path, key_id: KeyId) -> [u8; 32] {
    let keys = KeyStore::open_read_only(
        data_dir,
        store_id(data_dir),
        Arc::new(FileKekProvider::in_data_dir(data_dir)),
    )
    .expect("key store opens")
    .expect("a key store exists");
    match keys.lookup(key_id) {
        KeyLookup::Live(key) => *key.expose(),
        other => panic!("key {key_id} is not live: {other:?}"),
    }
}

fn kek_file_key(data_dir: &Path, id: KekId) -> [u8; 32] {
    let path = FileKekProvider::in_data_dir(data_dir).kek_path(id);
    let bytes = std::fs::read(&path).expect("kek file");
    bytes[16..48].try_into().expect("32 bytes")
}

/// Every file of `dir` that contains `needle`.
fn key_of(state: &PayloadState) -> KeyId {
    match state {
        PayloadState::Decrypted { key_id }
        | PayloadState::Shredded { key_id, .. }
        | PayloadState::KeyUnavailable { key_id } => *key_id,
        PayloadState::Clear => panic!("payload is not encrypted"),
    }
}

fn assert_verifies(data_dir: &Path) {
    let report = verify_store(data_dir, &VerifyOptions::default()).expect("verify runs");
    assert!(report.damage.is_none(), "verify: {:?}", report.damage);
}

#[test]
fn erasure_scan_finds_no_key_no_old_kek_and_no_canary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    let canaries: Vec<String> = (0..1_000)
        .map(|n| format!("canary-{n:04}-{:016x}", rand::random::<u64>()))
        .collect();
    let mut shredded_seqs = Vec::new();
    for (n, canary) in canaries.iter().enumerate() {
        let subject = format!("subject-{}", n % 10);
        let tenant = if n % 2 == 0 { "acme" } else { "globex" };
        let text = format!("my secret is {canary}");
        let r = receipt(tenant, Some(&subject), n as u64, &text);
        let position = db.append(&r).expect("append").wait().expect("durable");
        if tenant == "acme" && subject == "subject-0" {
            shredded_seqs.push(position.seq);
        }
    }
    let survivor = db
        .append_and_wait(&receipt("acme", Some("subject-2"), 5_000, "survivor"))
        .expect("durable");
    db.checkpoint().expect("checkpoint");
    // Plaintext never reaches a file, even before the shred.
    assert!(common::files_containing(&data, canaries[0].as_bytes()).is_empty());

    let before = db.get(shredded_seqs[0]).expect("read");
    assert_eq!(before.payload_state.name(), "decrypted");
    assert!(String::from_utf8_lossy(&before.payload).contains("canary-0000"));
    let key_id = key_of(&before.payload_state);
    let key = data_key(&data, key_id);
    let old_kek = kek_file_key(&data, KekId(1));
    assert!(
        !common::files_containing(&data, &old_kek).is_empty(),
        "the scan can find the KEK"
    );

    let report = db
        .shred("acme", "subject-0", "dsr-2026-0001")
        .expect("shred");
    assert_eq!(report.key_ids, vec![key_id]);
    assert_eq!(report.kek_id, KekId(2));

    let mut needles: Vec<&[u8]> = vec![&key[..], &old_kek[..]];
    needles.extend(canaries.iter().map(String::as_bytes));
    let holders = common::files_holding(&data, &needles);
    for (needle, found) in needles.iter().zip(&holders) {
        assert!(
            found.is_empty(),
            "{} found in {found:?}",
            String::from_utf8_lossy(needle)
        );
    }

    for seq in &shredded_seqs {
        let stored = db.get(*seq).expect("header still reads");
        assert!(
            stored.payload_state.is_shredded(),
            "{:?}",
            stored.payload_state
        );
        assert!(stored.payload.is_empty());
        assert_eq!(stored.header.subject_id(), Some("subject-0"));
        let bundle = db.prove(*seq).expect("proof");
        verify_inclusion_bundle(&bundle, db.verifier()).expect("included, shredded");
    }
    let other = db.get(survivor.seq).expect("read");
    assert_eq!(other.payload_state.name(), "decrypted");
    assert!(String::from_utf8_lossy(&other.payload).contains("survivor"));
    db.close().expect("close");
    assert_verifies(&data);

    // Across a reopen and through the lock-free reader too.
    let db = Db::open_with(&data, options()).expect("reopen");
    assert!(
        db.get(shredded_seqs[1])
            .expect("read")
            .payload_state
            .is_shredded()
    );
    assert_eq!(
        db.get(survivor.seq).expect("read").payload_state.name(),
        "decrypted"
    );
    let ro = ReadOnlyStore::open(&data).expect("read-only");
    let page = ro.query_text("tenant=acme").expect("query");
    let states: BTreeMap<&str, usize> =
        page.receipts.iter().fold(BTreeMap::new(), |mut counts, r| {
            *counts.entry(r.payload_state.name()).or_default() += 1;
            counts
        });
    assert!(
        states.get("shredded").copied().unwrap_or(0) > 0,
        "{states:?}"
    );
    assert!(
        states.get("decrypted").copied().unwrap_or(0) > 0,
        "{states:?}"
    );
    db.close().expect("close");
}

#[test]
fn shred_one_subject_leaves_others_and_shred_tenant_takes_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    let a1 = db
        .append_and_wait(&receipt("acme", Some("s1"), 1, "a1"))
        .expect("ok");
    let a2 = db
        .append_and_wait(&receipt("acme", Some("s2"), 2, "a2"))
        .expect("ok");
    let a0 = db
        .append_and_wait(&receipt("acme", None, 3, "a0"))
        .expect("ok");
    let g1 = db
        .append_and_wait(&receipt("globex", Some("s1"), 4, "g1"))
        .expect("ok");

    db.shred("acme", "s1", "req-1").expect("shred s1");
    assert!(db.get(a1.seq).expect("read").payload_state.is_shredded());
    assert_eq!(
        db.get(a2.seq).expect("read").payload,
        br#"{"input":{"prompt":"a2"}}"#
    );
    assert_eq!(
        db.get(g1.seq).expect("read").payload_state.name(),
        "decrypted"
    );

    // A receipt of the shredded subject appended afterwards gets a fresh key.
    let a1_new = db
        .append_and_wait(&receipt("acme", Some("s1"), 5, "after"))
        .expect("ok");
    assert_eq!(
        db.get(a1_new.seq).expect("read").payload_state.name(),
        "decrypted"
    );

    let report = db.shred_tenant("acme", "req-2").expect("shred tenant");
    assert_eq!(
        report.key_ids.len(),
        3,
        "s1's new key, s2's and the tenant's"
    );
    for seq in [a1.seq, a2.seq, a0.seq, a1_new.seq] {
        assert!(db.get(seq).expect("read").payload_state.is_shredded());
    }
    assert_eq!(
        db.get(g1.seq).expect("read").payload_state.name(),
        "decrypted"
    );
    let stats = db.key_store_stats().expect("key store");
    assert_eq!(
        (stats.live_keys, stats.shredded_keys, stats.kek_id),
        (1, 4, 3)
    );
    db.close().expect("close");
    assert_verifies(&data);
}

/// Whether a shred error is the one a case expects.
type IsExpected = fn(&ShredError) -> bool;

/// Everything a refused request could have touched: the log end, the key files.
fn fingerprint(data: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = Vec::new();
    common::all_files(&data.join("keystore"), &mut files);
    common::all_files(&data.join("keys"), &mut files);
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            (p, bytes)
        })
        .collect()
}

#[test]
fn bad_shred_requests_get_typed_errors_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    db.append_and_wait(&receipt("acme", Some("s1"), 1, "a1"))
        .expect("ok");
    db.shred("acme", "s1", "req-1").expect("first shred");
    let end = db.sync().expect("sync");
    let before = fingerprint(&data);
    let cases: Vec<(Error, IsExpected)> = vec![
        (
            db.shred("acme", "s1", "").expect_err("empty request id"),
            |e| matches!(e, ShredError::BadRequestId),
        ),
        (
            db.shred("acme", "s1", &"r".repeat(300))
                .expect_err("long request id"),
            |e| matches!(e, ShredError::BadRequestId),
        ),
        (
            db.shred("nobody", "s1", "req-2")
                .expect_err("unknown tenant"),
            |e| matches!(e, ShredError::Unknown { .. }),
        ),
        (
            db.shred("acme", "s9", "req-3")
                .expect_err("unknown subject"),
            |e| matches!(e, ShredError::Unknown { .. }),
        ),
        (
            db.shred("acme", "s1", "req-4").expect_err("shredded twice"),
            |e| matches!(e, ShredError::AlreadyShredded { .. }),
        ),
        (
            db.shred_tenant("nobody", "req-5")
                .expect_err("unknown tenant"),
            |e| matches!(e, ShredError::Unknown { .. }),
        ),
    ];
    for (err, expected) in &cases {
        match err {
            Error::Shred(shred) => assert!(expected(shred), "unexpected {shred:?}"),
            other => panic!("not a shred error: {other}"),
        }
    }
    assert_eq!(db.sync().expect("sync"), end, "nothing was appended");
    assert_eq!(fingerprint(&data), before, "no key file changed");
    db.close().expect("close");
}

#[test]
fn a_wrong_kek_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    db.append_and_wait(&receipt("acme", Some("s1"), 1, "a1"))
        .expect("ok");
    db.close().expect("close");
    let other_keks = dir.path().join("other-keks");
    {
        use trailmix_db::keystore::KekProvider as _;
        let other = FileKekProvider::new(&other_keks);
        other.create(KekId(1)).expect("a KEK of another store");
        other.create(KekId(7)).expect("and one more");
    }
    let before = fingerprint(&data);
    let others_before = std::fs::read_dir(&other_keks).expect("dir").count();
    let err = Db::open_with(
        &data,
        options().kek_provider(Arc::new(FileKekProvider::new(&other_keks))),
    )
    .expect_err("the wrong KEK must not open the store");
    assert!(matches!(err, Error::KeyStore { .. }), "{err}");
    assert!(err.to_string().contains("wrong KEK"), "{err}");
    assert_eq!(fingerprint(&data), before);
    assert_eq!(
        std::fs::read_dir(&other_keks).expect("dir").count(),
        others_before,
        "the provider's keys were not touched"
    );
}

#[test]
fn unencrypted_entries_stay_readable_when_encryption_is_turned_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db =
        Db::open_with(&data, options().payload_encryption(PayloadEncryption::Off)).expect("open");
    let clear = db
        .append_and_wait(&receipt("acme", Some("s1"), 1, "clear"))
        .expect("ok");
    assert_eq!(
        db.get(clear.seq).expect("read").payload_state,
        PayloadState::Clear
    );
    assert!(matches!(
        db.shred("acme", "s1", "req"),
        Err(Error::Shred(ShredError::NoKeyStore))
    ));
    db.close().expect("close");
    assert!(
        !common::files_containing(&data, b"clear").is_empty(),
        "stored in the clear"
    );

    let db = Db::open_with(&data, options()).expect("reopen with encryption");
    let sealed = db
        .append_and_wait(&receipt("acme", Some("s1"), 2, "sealed"))
        .expect("ok");
    assert_eq!(
        db.get(clear.seq).expect("read").payload_state,
        PayloadState::Clear
    );
    assert_eq!(
        db.get(sealed.seq).expect("read").payload_state.name(),
        "decrypted"
    );
    db.shred("acme", "s1", "req").expect("shred");
    // The clear receipt was never encrypted: shredding cannot reach it, and says so by type.
    assert_eq!(
        db.get(clear.seq).expect("read").payload_state,
        PayloadState::Clear
    );
    assert!(
        db.get(sealed.seq)
            .expect("read")
            .payload_state
            .is_shredded()
    );
    db.close().expect("close");
    assert_verifies(&data);
}

#[test]
fn reappending_the_same_receipt_stays_idempotent_when_encrypted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path().join("data"), options()).expect("open");
    let r = receipt("acme", Some("s1"), 1, "same");
    // Both in flight at once: the writer finds the first in its own recent map.
    let (first, again) = (db.append(&r).expect("first"), db.append(&r).expect("retry"));
    let first = first.wait().expect("first");
    assert_eq!(
        again.wait().expect("retry is not a conflict").seq,
        first.seq
    );
    let again = db.append_and_wait(&r).expect("retry is not a conflict");
    assert_eq!(first.seq, again.seq);
    let changed = receipt("acme", Some("s1"), 1, "different");
    assert!(matches!(
        db.append_and_wait(&changed),
        Err(Error::Conflict { .. })
    ));
    // Same payload, another header field: a conflict too.
    let other_header = Receipt::builder("acme", "evt-000001", Kind::ToolCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .subject_id("s1")
        .input(serde_json::json!({ "prompt": "same" }))
        .build()
        .expect("valid receipt");
    assert!(matches!(
        db.append_and_wait(&other_header),
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        db.get(Seq(first.seq.0)).expect("read").payload_state.name(),
        "decrypted"
    );
    db.close().expect("close");
    // After a reopen the first copy is found through the index.
    let db = Db::open_with(dir.path().join("data"), options()).expect("reopen");
    assert_eq!(db.append_and_wait(&r).expect("retry").seq, first.seq);
    db.close().expect("close");
    assert_verifies(&dir.path().join("data"));
}

#[test]
fn receipts_in_flight_during_a_shred_never_land_under_the_dead_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path().join("data"), options()).expect("open");
    db.append_and_wait(&receipt("acme", Some("s1"), 0, "first"))
        .expect("ok");
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            (1..4_000)
                .map(|n| db.append(&receipt("acme", Some("s1"), n, "in flight")))
                .collect::<Vec<_>>()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(5));
    let report = db.shred("acme", "s1", "req-race").expect("shred");
    let tickets = writer.join().expect("appender");
    let (mut refused, mut landed_after) = (0, 0);
    for ticket in tickets {
        match ticket.and_then(|t| t.wait()) {
            Ok(position) => {
                let stored = db.get(position.seq).expect("read");
                let key = key_of(&stored.payload_state);
                if position.seq > report.seq {
                    landed_after += 1;
                    assert!(
                        !report.key_ids.contains(&key),
                        "seq {} was written under shredded key {key} after the shred record",
                        position.seq
                    );
                    assert_eq!(stored.payload_state.name(), "decrypted");
                } else {
                    assert!(stored.payload_state.is_shredded());
                }
            }
            Err(Error::Shred(ShredError::KeyShreddedInFlight { key_id })) => {
                assert!(report.key_ids.contains(&key_id));
                refused += 1;
            }
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    eprintln!("{refused} refused in flight, {landed_after} written after under a new key");
    db.close().expect("close");
}

#[test]
fn a_torn_journal_tail_is_cut_but_a_damaged_journal_is_refused() {
    use trailmix_db::keystore::JOURNAL_HEADER_BYTES;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    let seqs: Vec<Seq> = ["s1", "s2", "s3"]
        .iter()
        .enumerate()
        .map(|(n, s)| {
            db.append_and_wait(&receipt("acme", Some(s), n as u64, "text"))
                .expect("ok")
                .seq
        })
        .collect();
    db.close().expect("close");
    let journal = KeyStore::journal_path(&data);
    let clean = std::fs::read(&journal).expect("journal");

    // A torn append (a record cut short at the end): never synced, so never used; cut off.
    let mut torn = clean.clone();
    torn.extend_from_slice(&[90, 0, 0, 0, 1, 2, 3, 4, 1, 7]);
    std::fs::write(&journal, &torn).expect("write");
    let db = Db::open_with(&data, options()).expect("a torn tail opens");
    assert_eq!(
        std::fs::read(&journal).expect("journal"),
        clean,
        "the tail is cut"
    );
    for seq in &seqs {
        assert_eq!(
            db.get(*seq).expect("read").payload_state.name(),
            "decrypted"
        );
    }
    db.close().expect("close");

    // A damaged record that the log depends on: refused, the journal left as it is.
    for at in [JOURNAL_HEADER_BYTES + 20, clean.len() - 3] {
        let mut damaged = clean.clone();
        damaged[at] ^= 0x10;
        std::fs::write(&journal, &damaged).expect("write");
        let err = Db::open_with(&data, options()).expect_err("damage is not a torn tail");
        assert!(matches!(err, Error::KeyStore { .. }), "{err}");
        assert!(err.to_string().contains("damaged"), "{err}");
        assert_eq!(std::fs::read(&journal).expect("journal"), damaged);
    }
    std::fs::write(&journal, &clean).expect("restore");
    Db::open_with(&data, options())
        .expect("the restored journal opens")
        .close()
        .expect("close");
}

#[test]
fn a_missing_key_store_is_refused_not_recreated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    db.append_and_wait(&receipt("acme", Some("s1"), 1, "text"))
        .expect("ok");
    db.close().expect("close");
    let kek = FileKekProvider::in_data_dir(&data).kek_path(KekId(1));
    let kek_before = std::fs::read(&kek).expect("kek");
    std::fs::remove_dir_all(data.join("keystore")).expect("remove key store");
    for mode in [PayloadEncryption::PerSubject, PayloadEncryption::Off] {
        let err = Db::open_with(&data, options().payload_encryption(mode))
            .expect_err("a store whose key store is gone must not open with a new one");
        assert!(matches!(err, Error::KeyStore { .. }), "{err}");
    }
    assert!(!data.join("keystore").exists(), "nothing was recreated");
    assert_eq!(
        std::fs::read(&kek).expect("kek"),
        kek_before,
        "the KEK is untouched"
    );
}

#[test]
fn a_read_only_store_without_the_kek_still_reads_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    let seq = db
        .append_and_wait(&receipt("acme", Some("s1"), 1, "text"))
        .expect("ok")
        .seq;
    db.close().expect("close");
    let elsewhere = Arc::new(FileKekProvider::new(dir.path().join("no-keks-here")));
    let ro = ReadOnlyStore::open_with_kek(&data, elsewhere).expect("opens without the KEK");
    let found = ro
        .find_event("acme", "evt-000001")
        .expect("find")
        .expect("found");
    assert_eq!(found.position.seq, seq);
    assert_eq!(found.payload_state.name(), "key unavailable");
    assert!(found.payload.is_empty());
    let with_key = ReadOnlyStore::open(&data).expect("opens");
    let found = with_key
        .find_event("acme", "evt-000001")
        .expect("find")
        .expect("found");
    assert_eq!(found.payload_state.name(), "decrypted");
}

/// A KEK rotation that fails after the shred record is durable stops the writer (the next
/// open finishes the shred), and a receipt whose key was made while the rotation ran is never
/// written unless its key is in the journal: the store reopens and reads it back.
#[test]
fn a_failed_kek_rotation_stops_the_writer_and_no_receipt_outruns_its_key() {
    use std::sync::Mutex;
    use trailmix_db::keystore::ShredStep;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let tmp_journal = KeyStore::journal_path(&data).with_extension("journal.tmp");
    let slot: Arc<Mutex<Option<Db>>> = Arc::new(Mutex::new(None));
    let late = Arc::new(Mutex::new(Vec::new()));
    let hook = {
        let (slot, late, tmp_journal) = (slot.clone(), late.clone(), tmp_journal.clone());
        Arc::new(move |at: ShredStep| {
            if at != ShredStep::NewKekCreated {
                return;
            }
            if let Some(db) = slot.lock().expect("slot").as_ref() {
                // A receipt of a new subject, encrypted while the rotation runs.
                late.lock().expect("late").push(db.try_append(&receipt(
                    "acme",
                    Some("s9"),
                    9,
                    "late",
                )));
            }
            // The temporary journal cannot be written: the rotation fails.
            std::fs::create_dir_all(&tmp_journal).expect("block the journal rewrite");
        })
    };
    let db = Db::open_with(&data, options().shred_step_hook(hook)).expect("open");
    *slot.lock().expect("slot") = Some(db.clone());
    let s1 = db
        .append_and_wait(&receipt("acme", Some("s1"), 1, "one"))
        .expect("s1");
    let failed = db.shred("acme", "s1", "req-fail");
    assert!(failed.is_err(), "the rotation must fail: {failed:?}");
    slot.lock().expect("slot").take();
    let late = late.lock().expect("late").pop().expect("one late receipt");
    let late = late.and_then(|ticket| ticket.wait());
    let _ = db.close();

    std::fs::remove_dir(&tmp_journal).expect("unblock");
    let db = Db::open_with(&data, options()).expect("reopen: every logged key is in the journal");
    assert!(db.get(s1.seq).expect("read").payload_state.is_shredded());
    if let Ok(position) = late {
        assert_eq!(
            db.get(position.seq).expect("read").payload_state.name(),
            "decrypted",
            "an acknowledged receipt must read back"
        );
    }
    assert_eq!(db.key_store_stats().expect("keys").kek_id, 2);
    db.close().expect("close");
    assert_verifies(&data);
}

/// A key journal that is gone while the KEK provider still holds a KEK is refused, even when
/// the log names no key: recreating it would replace KEK 1 and destroy every other KEK. A
/// store whose creation of the key store was interrupted (its marker is there) opens.
#[test]
fn a_missing_journal_beside_a_kek_is_refused_and_the_kek_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    Db::open_with(&data, options())
        .expect("open")
        .close()
        .expect("close");
    let kek = FileKekProvider::in_data_dir(&data).kek_path(KekId(1));
    let kek_before = std::fs::read(&kek).expect("kek");
    let journal = KeyStore::journal_path(&data);
    std::fs::remove_file(&journal).expect("remove the journal");
    let err = Db::open_with(&data, options()).expect_err("the journal is gone, the KEK is not");
    assert!(matches!(err, Error::KeyStore { .. }), "{err}");
    assert!(err.to_string().contains("backup"), "{err}");
    assert_eq!(
        std::fs::read(&kek).expect("kek"),
        kek_before,
        "the KEK is untouched"
    );
    assert!(!journal.exists(), "nothing was recreated");

    // An interrupted creation leaves its marker: the key store is created again.
    std::fs::write(journal.with_extension("journal.new"), b"").expect("marker");
    let db = Db::open_with(&data, options()).expect("an interrupted creation finishes");
    assert!(journal.exists());
    assert!(
        !journal.with_extension("journal.new").exists(),
        "the marker is gone"
    );
    db.append_and_wait(&receipt("acme", Some("s1"), 1, "text"))
        .expect("ok");
    db.close().expect("close");
}

/// Damage in the middle of the key journal — here a tombstone followed by another record,
/// which no receipt's key id would reveal as missing — is refused, not cut off as a torn tail;
/// a tail of zeros (a file extended by an append that never reached the disk) is a torn tail.
#[test]
fn mid_journal_damage_is_refused_even_when_the_log_names_no_lost_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    for (n, subject) in ["s1", "s2", "s3"].iter().enumerate() {
        db.append_and_wait(&receipt("acme", Some(subject), n as u64, "text"))
            .expect("ok");
    }
    db.shred("acme", "s1", "req-1").expect("shred s1");
    db.shred("acme", "s2", "req-2").expect("shred s2");
    db.close().expect("close");
    // The journal now holds: live key 3, then the tombstones of keys 1 and 2.
    let journal = KeyStore::journal_path(&data);
    let clean = std::fs::read(&journal).expect("journal");
    let records = trailmix_db::keystore::JOURNAL_HEADER_BYTES;
    let first_len = u32::from_le_bytes(clean[records..records + 4].try_into().expect("4")) as usize;
    let tombstone_1 = records + 8 + first_len;
    let mut damaged = clean.clone();
    damaged[tombstone_1 + 8 + 3] ^= 0x01;
    std::fs::write(&journal, &damaged).expect("write");
    let err = Db::open_with(&data, options()).expect_err("mid-journal damage");
    assert!(matches!(err, Error::KeyStore { .. }), "{err}");
    assert!(err.to_string().contains("damaged"), "{err}");
    assert_eq!(
        std::fs::read(&journal).expect("journal"),
        damaged,
        "nothing cut"
    );

    // A damaged length that points past the end must not pass for a frame cut short.
    let mut damaged = clean.clone();
    damaged[tombstone_1 + 3] ^= 0x40;
    std::fs::write(&journal, &damaged).expect("write");
    let err = Db::open_with(&data, options()).expect_err("a damaged length");
    assert!(matches!(err, Error::KeyStore { .. }), "{err}");
    assert_eq!(
        std::fs::read(&journal).expect("journal"),
        damaged,
        "nothing cut"
    );

    let mut zeros = clean.clone();
    zeros.extend_from_slice(&[0; 300]);
    std::fs::write(&journal, &zeros).expect("write");
    let db = Db::open_with(&data, options()).expect("a zero tail is torn");
    assert_eq!(db.key_store_stats().expect("keys").shredded_keys, 2);
    db.close().expect("close");
    assert_eq!(
        std::fs::read(&journal).expect("journal"),
        clean,
        "the tail is cut"
    );
}

/// A long-running read-only reader stops decrypting a subject once it is shredded: it sees the
/// writer's rotated journal (or the shred record in the log), not only keys it does not know.
#[test]
fn a_long_running_read_only_store_respects_a_later_shred() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    db.append_and_wait(&receipt("acme", Some("s1"), 1, "one"))
        .expect("s1");
    db.append_and_wait(&receipt("acme", Some("s2"), 2, "two"))
        .expect("s2");
    db.sync().expect("sync");
    let reader = ReadOnlyStore::open(&data).expect("read-only");
    let state = |event: &str| {
        reader
            .find_event("acme", event)
            .expect("find")
            .expect("found")
            .payload_state
            .name()
    };
    assert_eq!(state("evt-000001"), "decrypted");
    db.shred("acme", "s1", "req").expect("shred");
    assert_eq!(
        state("evt-000001"),
        "shredded",
        "the reader still decrypts a shredded key"
    );
    assert_eq!(state("evt-000002"), "decrypted");
    db.close().expect("close");
}

#[test]
fn a_batch_shred_writes_a_record_per_subject_and_rotates_the_kek_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    let subjects = ["s1", "s2", "s3", "s4"];
    let positions: Vec<_> = subjects
        .iter()
        .enumerate()
        .map(|(n, s)| {
            db.append_and_wait(&receipt("acme", Some(s), n as u64, "personal"))
                .expect("append")
        })
        .collect();
    let reports = db
        .shred_subjects("acme", &["s3", "s1", "s2", "s1"], "req-batch")
        .expect("batch shred");
    assert_eq!(reports.len(), 3, "s1 named twice counts once");
    let named: Vec<&str> = reports.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(named, ["s1", "s2", "s3"]);
    let reports: Vec<_> = reports.into_iter().map(|(_, r)| r).collect();
    assert!(reports.iter().all(|r| r.kek_id == KekId(2)), "{reports:?}");
    for (report, n) in reports.iter().zip([0, 1, 2]) {
        let state = db.get(positions[n].seq).expect("read").payload_state;
        assert_eq!(
            state,
            PayloadState::Shredded {
                key_id: report.key_ids[0],
                shred_seq: report.seq
            },
            "subject {}",
            subjects[n]
        );
    }
    assert_eq!(
        db.get(positions[3].seq).expect("read").payload_state.name(),
        "decrypted"
    );
    let stats = db.key_store_stats().expect("key store");
    assert_eq!((stats.live_keys, stats.shredded_keys), (1, 3));
    db.close().expect("close");
    assert_verifies(&data);
}

#[test]
fn a_batch_shred_with_one_bad_subject_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    let first = db
        .append_and_wait(&receipt("acme", Some("s1"), 1, "personal"))
        .expect("append");
    db.append_and_wait(&receipt("acme", Some("s2"), 2, "personal"))
        .expect("append");
    let unknown = db.shred_subjects("acme", &["s1", "nobody"], "req-1");
    assert!(
        matches!(&unknown, Err(Error::Shred(ShredError::Unknown { subject, .. })) if subject.as_deref() == Some("nobody")),
        "{unknown:?}"
    );
    db.hold("acme", Some("s2"), "req-hold").expect("hold");
    let held = db.shred_subjects("acme", &["s1", "s2"], "req-2");
    assert!(
        matches!(&held, Err(Error::Shred(ShredError::Held { .. }))),
        "{held:?}"
    );
    assert!(matches!(
        db.shred_subjects("acme", &[], "req-3"),
        Err(Error::Shred(ShredError::BatchTooLarge { subjects: 0, .. }))
    ));
    assert_eq!(
        db.get(first.seq).expect("read").payload_state.name(),
        "decrypted"
    );
    let stats = db.key_store_stats().expect("key store");
    assert_eq!((stats.shredded_keys, stats.kek_id), (0, 1));
    db.close().expect("close");
    let shred_records = common::records(&data)
        .iter()
        .filter(|(kind, _)| *kind == trailmix_db::entry::EntryKind::Shred as u8)
        .count();
    assert_eq!(shred_records, 0, "a refused batch writes no record");
}
