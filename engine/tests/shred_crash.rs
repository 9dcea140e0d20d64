//! Guards the shred protocol's crash rule with real processes: a child process runs
//! `Db::shred` and aborts (SIGABRT, no cleanup) right after each step of the protocol; the
//! parent reopens the store and finds either no shred record and the key intact (the subject
//! reads back), or the shred record and the shred complete (payload shredded, one KEK file, the
//! data key and the old KEK in no file) — never a half state — and the store verifies. A shred
//! whose record was durable is never undone. The same holds under power loss: with the log on
//! the simulated disk, the disk freezes at each step and loses what was not synced.

mod common;

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use trailmix_db::LogStorage as _;
use trailmix_db::crypto::{KekId, KeyId};
use trailmix_db::entry::EntryKind;
use trailmix_db::keystore::{FileKekProvider, KeyLookup, KeyStore, ShredStep};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::sim::SimDisk;
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{Db, DbOptions, PayloadState, VerifyOptions, WAL_DIR, verify_store};

const DIR_VAR: &str = "TRAILMIX_SHRED_CHILD_DIR";
const STEP_VAR: &str = "TRAILMIX_SHRED_CHILD_STEP";
const CHILD_TEST: &str = "child_shreds_and_aborts";
/// Set: the child shreds s1 and s3 in one batch instead of s1 alone.
const BATCH_VAR: &str = "TRAILMIX_SHRED_CHILD_BATCH";

const STEPS: [ShredStep; 6] = [
    ShredStep::RecordAppended,
    ShredStep::RecordDurable,
    ShredStep::NewKekCreated,
    ShredStep::JournalWritten,
    ShredStep::JournalRenamed,
    ShredStep::OldKekDestroyed,
];

fn step_name(step: ShredStep) -> String {
    format!("{step:?}")
}

fn options() -> DbOptions {
    DbOptions::default().segment_bytes(256 << 10)
}

fn receipt(subject: &str, n: u64) -> Receipt {
    Receipt::builder("acme", format!("evt-{n}"), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .subject_id(subject)
        .input(serde_json::json!({ "prompt": format!("secret of {subject} #{n}") }))
        .build()
        .expect("valid receipt")
}

/// The child: shreds subject s1 of the store in `$TRAILMIX_SHRED_CHILD_DIR`, aborting the
/// process at step `$TRAILMIX_SHRED_CHILD_STEP`. Without the variables it returns at once.
#[test]
fn child_shreds_and_aborts() {
    let (Ok(dir), Ok(step)) = (std::env::var(DIR_VAR), std::env::var(STEP_VAR)) else {
        return;
    };
    let hook = Arc::new(move |at: ShredStep| {
        if step_name(at) == step {
            std::process::abort();
        }
    });
    let db = Db::open_with(&dir, options().shred_step_hook(hook)).expect("child opens");
    if std::env::var(BATCH_VAR).is_ok() {
        db.shred_subjects("acme", &["s1", "s3"], "req-crash")
            .expect("batch shred");
    } else {
        db.shred("acme", "s1", "req-crash").expect("shred");
    }
    println!("acknowledged");
}

fn store_id(data: &Path) -> [u8; 16] {
    WalReader::open(data.join(WAL_DIR))
        .expect("log")
        .meta()
        .store_id
        .0
}

fn data_key(data: &Path, key_id: KeyId) -> [u8; 32] {
    let keys = KeyStore::open_read_only(
        data,
        store_id(data),
        Arc::new(FileKekProvider::in_data_dir(data)),
    )
    .expect("opens")
    .expect("exists");
    match keys.lookup(key_id) {
        KeyLookup::Live(key) => *key.expose(),
        other => panic!("not live: {other:?}"),
    }
}

fn shred_records(data: &Path) -> usize {
    let mut count = 0;
    WalReader::open(data.join(WAL_DIR))
        .expect("log")
        .scan(Seq(0), |record| {
            count += usize::from(record.kind.get() == EntryKind::Shred as u8);
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    count
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for item in std::fs::read_dir(dir).expect("dir") {
        let item = item.expect("entry");
        if item.file_type().expect("type").is_dir() {
            files(&item.path(), out);
        } else {
            out.push(item.path());
        }
    }
}

fn found_in_files(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut all = Vec::new();
    files(dir, &mut all);
    all.into_iter()
        .filter(|p| {
            std::fs::read(p)
                .expect("read")
                .windows(needle.len())
                .any(|w| w == needle)
        })
        .collect()
}

fn kek_files(data: &Path) -> Vec<KekId> {
    use trailmix_db::keystore::KekProvider as _;
    FileKekProvider::in_data_dir(data).list().expect("list")
}

/// Sets up a store, crashes a shred at `step`, and checks the state after reopening.
/// Returns whether the shred took effect.
fn crash_at(step: ShredStep) -> bool {
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    let s1 = db.append_and_wait(&receipt("s1", 1)).expect("s1");
    let s2 = db.append_and_wait(&receipt("s2", 2)).expect("s2");
    let PayloadState::Decrypted { key_id } = db.get(s1.seq).expect("read").payload_state else {
        panic!("s1 is encrypted");
    };
    db.close().expect("close");
    let key = data_key(&data, key_id);
    let old_kek: [u8; 32] = std::fs::read(FileKekProvider::in_data_dir(&data).kek_path(KekId(1)))
        .expect("kek")[16..48]
        .try_into()
        .expect("32");

    let name = step_name(step);
    let output = common::run_child(
        CHILD_TEST,
        &[(DIR_VAR, data.as_os_str()), (STEP_VAR, name.as_ref())],
    );
    assert_eq!(
        output.status.signal(),
        Some(6),
        "{step:?}: the child must abort at the step, not finish"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("acknowledged"));

    let db = Db::open_with(&data, options()).expect("reopen after the crash");
    let recorded = shred_records(&data);
    let state = db.get(s1.seq).expect("read").payload_state;
    assert_eq!(
        db.get(s2.seq).expect("read").payload_state.name(),
        "decrypted",
        "{step:?}: another subject was hurt"
    );
    assert_eq!(
        kek_files(&data).len(),
        1,
        "{step:?}: one KEK after recovery"
    );
    let done = match recorded {
        0 => {
            assert_eq!(state.name(), "decrypted", "{step:?}: no record, key intact");
            false
        }
        1 => {
            assert!(
                state.is_shredded(),
                "{step:?}: record durable, shred complete"
            );
            for needle in [&key[..], &old_kek[..]] {
                let found = found_in_files(&data, needle);
                assert!(found.is_empty(), "{step:?}: key material in {found:?}");
            }
            true
        }
        n => panic!("{step:?}: {n} shred records"),
    };
    if step != ShredStep::RecordAppended {
        assert!(
            done,
            "{step:?}: the record was durable, so the shred must complete"
        );
    }
    if !done {
        // Left intact means intact: the shred can simply run again.
        db.shred("acme", "s1", "req-again")
            .expect("shred after recovery");
    }
    db.close().expect("close");
    let report = verify_store(&data, &VerifyOptions::default()).expect("verify");
    assert!(report.damage.is_none(), "{step:?}: {:?}", report.damage);
    done
}

#[test]
fn a_crash_at_any_step_of_a_shred_leaves_no_half_state() {
    if std::env::var(DIR_VAR).is_ok() {
        return;
    }
    for step in STEPS {
        crash_at(step);
    }
}

/// A batch shred of s1 and s3 interrupted at `step`: after a reopen both subjects are
/// shredded (two records, one KEK) or neither is (no record), and s2 is untouched.
fn crash_batch_at(step: ShredStep) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    let seqs: Vec<Seq> = ["s1", "s2", "s3"]
        .iter()
        .zip(1..)
        .map(|(s, n)| db.append_and_wait(&receipt(s, n)).expect("append").seq)
        .collect();
    db.close().expect("close");
    let name = step_name(step);
    let output = common::run_child(
        CHILD_TEST,
        &[
            (DIR_VAR, data.as_os_str()),
            (STEP_VAR, name.as_ref()),
            (BATCH_VAR, "1".as_ref()),
        ],
    );
    assert_eq!(
        output.status.signal(),
        Some(6),
        "{step:?}: the child aborts"
    );
    let db = Db::open_with(&data, options()).expect("reopen after the crash");
    let states: Vec<String> = seqs
        .iter()
        .map(|seq| db.get(*seq).expect("read").payload_state.name().to_owned())
        .collect();
    let expected = match shred_records(&data) {
        0 if step == ShredStep::RecordAppended => ["decrypted", "decrypted", "decrypted"],
        2 => ["shredded", "decrypted", "shredded"],
        n => panic!("{step:?}: {n} shred records"),
    };
    assert_eq!(states, expected, "{step:?}");
    assert_eq!(
        kek_files(&data).len(),
        1,
        "{step:?}: one KEK after recovery"
    );
    db.close().expect("close");
    let report = verify_store(&data, &VerifyOptions::default()).expect("verify");
    assert!(report.damage.is_none(), "{step:?}: {:?}", report.damage);
}

#[test]
fn a_crash_mid_batch_shred_finishes_every_subject_or_none() {
    if std::env::var(DIR_VAR).is_ok() {
        return;
    }
    for step in STEPS {
        crash_batch_at(step);
    }
}

/// Log records of kind shred on the simulated disk.
fn sim_shred_records(disk: &SimDisk) -> usize {
    let mut count = 0;
    disk.open_reader()
        .expect("reader")
        .scan(Seq(0), |record| {
            count += usize::from(record.kind.get() == EntryKind::Shred as u8);
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    count
}

/// One power loss at `step` of a shred, on seed `seed`'s simulated disk.
fn power_loss_at(step: ShredStep, seed: u64) -> bool {
    let keys = tempfile::tempdir().expect("tempdir");
    let disk = SimDisk::new(seed);
    let freezer = disk.clone();
    let hook = Arc::new(move |at: ShredStep| {
        if at == step {
            freezer.crash_at_op(freezer.ops());
        }
    });
    let db = Db::open_on(&disk, keys.path(), options().shred_step_hook(hook)).expect("open");
    let s1 = db.append_and_wait(&receipt("s1", 1)).expect("s1");
    let s2 = db.append_and_wait(&receipt("s2", 2)).expect("s2");
    let acked = db.shred("acme", "s1", "req-power").is_ok();
    drop(db);
    disk.crash();
    let db = Db::open_on(&disk, keys.path(), options()).expect("reopen after power loss");
    let recorded = sim_shred_records(&disk);
    let state = db.get(s1.seq).expect("read").payload_state;
    assert_eq!(
        db.get(s2.seq).expect("read").payload_state.name(),
        "decrypted",
        "{step:?}/{seed}: another subject was hurt"
    );
    match recorded {
        0 => {
            assert!(!acked, "{step:?}/{seed}: an acknowledged shred was undone");
            assert_eq!(
                state.name(),
                "decrypted",
                "{step:?}/{seed}: no record, key intact"
            );
        }
        1 => assert!(
            state.is_shredded(),
            "{step:?}/{seed}: record durable, shred complete"
        ),
        n => panic!("{step:?}/{seed}: {n} shred records"),
    }
    assert_eq!(kek_files(keys.path()).len(), 1, "{step:?}/{seed}: one KEK");
    db.close().expect("close");
    recorded == 1
}

#[test]
fn a_power_loss_at_any_step_of_a_shred_leaves_no_half_state() {
    if std::env::var(DIR_VAR).is_ok() {
        return;
    }
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..6 {
        for step in STEPS {
            outcomes.insert((step == ShredStep::RecordAppended, power_loss_at(step, seed)));
        }
    }
    // A power loss before the sync must be able to leave the key intact, and every later one
    // must complete the shred: both outcomes were seen.
    assert!(outcomes.contains(&(true, false)), "{outcomes:?}");
    assert!(outcomes.contains(&(false, true)), "{outcomes:?}");
    assert!(!outcomes.contains(&(false, false)), "{outcomes:?}");
}

const PENDING_DIR_VAR: &str = "TRAILMIX_SHRED_PENDING_CHILD_DIR";
const PENDING_CHILD_TEST: &str = "child_shreds_an_unpersisted_key_and_aborts";

/// The child: makes a data key for subject s3 that never reaches the journal (its receipt is
/// too large for the log, refused after the key was made), shreds s3 and aborts as soon as
/// the shred record is durable. Without the variable it returns at once.
#[test]
fn child_shreds_an_unpersisted_key_and_aborts() {
    let Ok(dir) = std::env::var(PENDING_DIR_VAR) else {
        return;
    };
    let hook = Arc::new(|at: ShredStep| {
        if at == ShredStep::RecordDurable {
            std::process::abort();
        }
    });
    let db = Db::open_with(&dir, options().shred_step_hook(hook)).expect("child opens");
    let huge = Receipt::builder("acme", "evt-huge", Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .subject_id("s3")
        .input(serde_json::json!({ "blob": "x".repeat(400_000) }))
        .build()
        .expect("valid receipt");
    assert!(db.append(&huge).is_err(), "the log must refuse the receipt");
    db.shred("acme", "s3", "req-pending").expect("shred");
    println!("acknowledged");
}

/// A shred record may name a key that was never persisted (its receipt never reached the
/// log). A crash right after that record is durable must not let the key id be handed out
/// again and then shred the other subject that got it at a later open.
#[test]
fn a_crash_after_shredding_an_unpersisted_key_never_shreds_another_subject() {
    if std::env::var(DIR_VAR).is_ok() || std::env::var(PENDING_DIR_VAR).is_ok() {
        return;
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    let s1 = db.append_and_wait(&receipt("s1", 1)).expect("s1");
    db.close().expect("close");

    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            PENDING_CHILD_TEST,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PENDING_DIR_VAR, &data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .expect("child runs");
    assert_eq!(output.status.signal(), Some(6), "the child must abort");
    assert_eq!(shred_records(&data), 1, "the shred record is durable");

    let db = Db::open_with(&data, options()).expect("reopen after the crash");
    let s4 = db.append_and_wait(&receipt("s4", 4)).expect("s4");
    assert_eq!(
        db.get(s4.seq).expect("read").payload_state.name(),
        "decrypted"
    );
    db.close().expect("close");

    let db = Db::open_with(&data, options()).expect("reopen");
    for (name, seq) in [("s1", s1.seq), ("s4", s4.seq)] {
        assert_eq!(
            db.get(seq).expect("read").payload_state.name(),
            "decrypted",
            "{name}'s key was destroyed by a shred of s3"
        );
    }
    db.close().expect("close");
    let report = verify_store(&data, &VerifyOptions::default()).expect("verify");
    assert!(report.damage.is_none(), "{:?}", report.damage);
}

/// After a crash between the durable shred record and the key rotation, a read-only open
/// (before any writer finishes the shred) already reads the subject as shredded: it learns
/// the shredded keys from the log's shred records.
#[test]
fn a_read_only_open_after_a_crash_mid_shred_respects_the_record() {
    if std::env::var(DIR_VAR).is_ok() || std::env::var(PENDING_DIR_VAR).is_ok() {
        return;
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    let db = Db::open_with(&data, options()).expect("open");
    db.append_and_wait(&receipt("s1", 1)).expect("s1");
    db.append_and_wait(&receipt("s2", 2)).expect("s2");
    db.close().expect("close");
    // The aborted child leaves the index needing a repair that only a writer may do: keep a
    // clean copy to put back (the receipts are in it; the shred adds no index entry).
    let index = data.join("index");
    let saved = scratch.path().join("index-saved");
    common::copy_dir(&index, &saved);
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, &data)
        .env(STEP_VAR, step_name(ShredStep::RecordDurable))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .expect("child runs");
    assert_eq!(output.status.signal(), Some(6), "the child must abort");
    assert_eq!(shred_records(&data), 1);
    std::fs::remove_dir_all(&index).expect("remove index");
    common::copy_dir(&saved, &index);
    let reader = trailmix_db::ReadOnlyStore::open(&data).expect("read-only");
    let state = |event: &str| {
        reader
            .find_event("acme", event)
            .expect("find")
            .expect("found")
            .payload_state
            .name()
    };
    assert_eq!(state("evt-1"), "shredded", "the shred record is durable");
    assert_eq!(state("evt-2"), "decrypted");
    // So do tools that read the log directly.
    let keys = KeyStore::open_for_reading(&data)
        .expect("keys")
        .expect("exists");
    assert!(matches!(keys.lookup(KeyId(1)), KeyLookup::Shredded(_)));
    assert!(matches!(keys.lookup(KeyId(2)), KeyLookup::Live(_)));
}
