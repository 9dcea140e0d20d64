//! Guards `Db::archive` against a real S3 server with Object Lock (`SeaweedFS` on 127.0.0.1,
//! one per test binary): archived objects cannot be deleted or overwritten (COMPLIANCE
//! retention, conditional create); a run stopped mid-upload resumes into the same archive; a
//! tampered archived object is caught by `verify_archive`; and shredding after archiving still
//! shreds — the archive holds ciphertext only, undecryptable once the local key is gone; and
//! epochs dropped locally read back through the bucket (`DbOptions::archive_reads`); the
//! default remote check (`RemoteCheck::Checksum`) confirms objects by the SHA-256 the server
//! stored, without downloading them, and still refuses a run whose object was replaced or
//! removed between its upload and the check.

mod common;
#[path = "common/seaweed.rs"]
mod seaweed;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest as _, Sha256};
use trailmix_db::archive::{
    ArchiveError, ArchiveOptions, ArchiveReads, ArchiveTarget, RemoteCheck, S3Settings,
    restore_log, verify_archive,
};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::{Db, DbOptions, Error, PayloadState, PruneMode, VerifyOptions};

const PER_EPOCH: u64 = 60;
const SEGMENT_BYTES: u64 = 64 << 10;
const CANARY: &str = "canary-7f3a9c-plaintext";

fn options() -> DbOptions {
    DbOptions::default().segment_bytes(SEGMENT_BYTES)
}

fn receipt(n: u64) -> Receipt {
    Receipt::builder("acme", common::event_id(n), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .subject_id("alice")
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .input(serde_json::json!({ "prompt": format!("{CANARY} {n}: {}", "x".repeat(600)) }))
        .build()
        .expect("valid receipt")
}

/// A store with `epochs` sealed epochs (each ends its segment) and an open one.
fn store(data: &Path, epochs: u64) -> Db {
    let db = Db::open_with(data, options()).expect("open");
    for e in 0..epochs {
        for n in 0..PER_EPOCH {
            db.append_and_wait(&receipt(e * 1000 + n)).expect("append");
        }
        db.seal_epoch().expect("seal").expect("sealed");
    }
    db.append_and_wait(&receipt(999_999)).expect("append");
    db
}

/// A fresh Object Lock bucket on the shared server, and its target.
fn bucket(name: &str) -> ArchiveTarget {
    let server = seaweed::shared();
    server.locked_bucket(name);
    let settings = S3Settings {
        endpoint: Some(server.endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some("unused".into()),
        secret_access_key: Some("unused".into()),
    };
    ArchiveTarget::parse(&format!("s3://{name}/archives"), &settings).expect("url")
}

/// Every object key of `bucket` and the SHA-256 of its current version.
fn objects(bucket: &str) -> BTreeMap<String, String> {
    let server = seaweed::shared();
    let (status, _, listing) = server.request(
        "GET",
        &format!("/{bucket}?list-type=2&max-keys=1000"),
        &[],
        b"",
    );
    let listing = seaweed::text(&listing);
    assert_eq!(status, 200, "{listing}");
    assert!(!listing.contains("<IsTruncated>true"), "listing truncated");
    listing
        .split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>").map(|(key, _)| key.to_owned()))
        .map(|key| {
            let (status, _, body) = server.request("GET", &format!("/{bucket}/{key}"), &[], b"");
            assert_eq!(status, 200, "{key}");
            (key, format!("{:x}", Sha256::digest(&body)))
        })
        .collect()
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn first_part_key(bucket: &str) -> String {
    objects(bucket)
        .into_keys()
        .find(|k| k.contains(".part-"))
        .expect("a segment part")
}

#[test]
fn archived_objects_verify_and_cannot_be_deleted_or_overwritten() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = store(&tmp.path().join("data"), 2);
    let target = bucket("lock-test");
    let report = db
        .archive(&target, &ArchiveOptions::default())
        .expect("archive");
    assert_eq!(report.epochs.len(), 2);
    assert_eq!(report.record_seqs.len(), 2);
    let verified = verify_archive(&target, None, &VerifyOptions::default()).expect("verify");
    assert!(verified.verified(), "{verified:?}");
    assert_eq!(
        verified.log.as_ref().map(|l| l.receipts),
        Some(2 * PER_EPOCH)
    );

    let server = seaweed::shared();
    let key = first_part_key("lock-test");
    let path = format!("/lock-test/{key}");
    let (status, headers, original) = server.request("GET", &path, &[], b"");
    assert_eq!(status, 200);
    let version = header(&headers, "x-amz-version-id")
        .expect("versioned bucket")
        .to_owned();
    // Deleting the version is refused under COMPLIANCE retention.
    let (status, _, body) =
        server.request("DELETE", &format!("{path}?versionId={version}"), &[], b"");
    assert_eq!(
        status,
        403,
        "delete of a locked version: {}",
        seaweed::text(&body)
    );
    // A conditional create over it (what the archiver does) is refused.
    let (status, _, _) = server.request("PUT", &path, &[("If-None-Match", "*")], b"other");
    assert_eq!(status, 412, "conditional overwrite");
    // A plain delete only adds a delete marker: the locked version is still there, unchanged.
    let (status, _, _) = server.request("DELETE", &path, &[], b"");
    assert_eq!(status, 204);
    let (status, _, kept) = server.request("GET", &format!("{path}?versionId={version}"), &[], b"");
    assert_eq!(status, 200);
    assert_eq!(kept, original);
    // The archive now misses that object: verify says which.
    let report = verify_archive(&target, None, &VerifyOptions::default()).expect("verify");
    let damage = report.damage.expect("a missing object is damage");
    assert!(damage.object.ends_with(&key), "{damage}");
    db.close().expect("close");
}

#[test]
fn dropped_epochs_read_back_through_the_bucket() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let db = store(&data, 2);
    let target = bucket("read-through");
    db.archive(&target, &ArchiveOptions::default())
        .expect("archive");
    let seqs = [Seq(1), Seq(PER_EPOCH + 3)];
    let before: Vec<_> = seqs.iter().map(|s| db.get(*s).expect("get")).collect();
    let proofs: Vec<_> = seqs.iter().map(|s| db.prove(*s).expect("prove")).collect();
    db.prune_archived("drop", PruneMode::Apply).expect("prune");
    db.close().expect("close");
    let db =
        Db::open_with(&data, options().archive_reads(ArchiveReads::new(target))).expect("reopen");
    assert!(db.prune_horizon() > seqs[1]);
    for ((seq, receipt), proof) in seqs.iter().zip(&before).zip(&proofs) {
        assert_eq!(&db.get(*seq).expect("get through S3"), receipt);
        assert_eq!(&db.prove(*seq).expect("prove through S3"), proof);
    }
    db.close().expect("close");
}

#[test]
fn a_run_stopped_mid_upload_resumes_into_the_same_archive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let reference = tmp.path().join("reference");
    store(&reference, 2).close().expect("close");
    let whole = bucket("resume-whole");
    let data = tmp.path().join("data");
    common::restore_dir(&reference, &data);
    let db = Db::open_with(&data, options()).expect("open");
    let full = db
        .archive(&whole, &ArchiveOptions::default())
        .expect("uninterrupted");
    db.close().expect("close");
    let expected: BTreeMap<String, String> = objects("resume-whole");
    assert!(full.objects_written >= 9);
    for stop in [1, full.objects_written / 2, full.objects_written - 1] {
        common::restore_dir(&reference, &data);
        let db = Db::open_with(&data, options()).expect("open");
        let name = format!("resume-{stop}");
        let target = bucket(&name);
        let options = ArchiveOptions {
            stop_after_objects: Some(stop),
            ..ArchiveOptions::default()
        };
        let err = db.archive(&target, &options).expect_err("stops");
        assert!(
            matches!(err, Error::Archive(ArchiveError::Interrupted { .. })),
            "{err}"
        );
        let resumed = db
            .archive(&target, &ArchiveOptions::default())
            .expect("resume");
        assert!(resumed.objects_present >= 1, "stop {stop}: {resumed:?}");
        db.close().expect("close");
        assert_eq!(objects(&name), expected, "stop {stop}");
        let verified = verify_archive(&target, None, &VerifyOptions::default()).expect("verify");
        assert!(verified.verified(), "stop {stop}: {verified:?}");
    }
}

#[test]
fn a_tampered_archived_object_is_detected_by_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = store(&tmp.path().join("data"), 2);
    let target = bucket("tamper-test");
    db.archive(&target, &ArchiveOptions::default())
        .expect("archive");
    db.close().expect("close");
    let server = seaweed::shared();
    let key = first_part_key("tamper-test");
    let path = format!("/tamper-test/{key}");
    let (_, _, original) = server.request("GET", &path, &[], b"");
    let mut forged = original;
    forged[5000] ^= 0x08;
    // Object Lock keeps the original version, but a new version becomes the current one.
    let (status, _, body) = server.request("PUT", &path, &[], &forged);
    assert_eq!(status, 200, "{}", seaweed::text(&body));
    let report = verify_archive(&target, None, &VerifyOptions::default()).expect("verify");
    assert!(!report.verified());
    let damage = report.damage.expect("damage");
    assert!(damage.object.ends_with(&key), "{damage}");
    assert!(damage.detail.contains("sha256"), "{damage}");
}

#[test]
fn shredding_after_archiving_makes_the_archived_ciphertext_undecryptable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let db = store(&data, 1);
    let target = bucket("shred-test");
    db.archive(&target, &ArchiveOptions::default())
        .expect("archive");
    // The archive holds ciphertext only.
    for (key, _) in objects("shred-test") {
        let (_, _, body) =
            seaweed::shared().request("GET", &format!("/shred-test/{key}"), &[], b"");
        assert!(!seaweed::text(&body).contains(CANARY), "plaintext in {key}");
    }
    let restored = |name: &str| {
        let dir = tmp.path().join(name);
        let report = restore_log(&target, None, &dir.join(trailmix_db::WAL_DIR)).expect("restore");
        assert!(report.damage.is_none(), "{report:?}");
        for local in ["keys", "keystore"] {
            common::copy_dir(&data.join(local), &dir.join(local));
        }
        std::fs::copy(data.join("signing.pub"), dir.join("signing.pub")).expect("copy key");
        let copy = Db::open_with(&dir, options()).expect("open the restored store");
        let read = copy.get(trailmix_db::wal::Seq(1)).expect("read");
        copy.close().expect("close");
        read
    };
    // With the local keys, the archived bytes decrypt.
    let before = restored("restored-before");
    assert!(matches!(
        before.payload_state,
        PayloadState::Decrypted { .. }
    ));
    assert!(String::from_utf8_lossy(&before.payload).contains(CANARY));
    db.shred("acme", "alice", "erasure-1").expect("shred");
    db.close().expect("close");
    // After the shred, the same archived bytes do not: the key is gone everywhere.
    let after = restored("restored-after");
    assert!(
        matches!(after.payload_state, PayloadState::Shredded { .. }),
        "{:?}",
        after.payload_state
    );
    assert!(after.payload.is_empty());
    let verified = verify_archive(&target, None, &VerifyOptions::default()).expect("verify");
    assert!(
        verified.verified(),
        "the archive still verifies: {verified:?}"
    );
}

/// What a test does to an archived object between its upload and the remote check.
#[derive(Clone, Copy, Debug)]
enum Meddle {
    /// Put other bytes as the current version, with their own (correct) SHA-256 checksum.
    Replace,
    /// Delete it (a delete marker hides the locked version).
    Remove,
}

fn meddle(bucket: &str, key: &str, how: Meddle) {
    let server = seaweed::shared();
    let path = format!("/{bucket}/{key}");
    match how {
        Meddle::Replace => {
            let (_, _, mut forged) = server.request("GET", &path, &[], b"");
            forged[100] ^= 0x40;
            let sum = BASE64.encode(Sha256::digest(&forged));
            let (status, _, body) =
                server.request("PUT", &path, &[("x-amz-checksum-sha256", &sum)], &forged);
            assert_eq!(status, 200, "{}", seaweed::text(&body));
        }
        Meddle::Remove => {
            let (status, _, _) = server.request("DELETE", &path, &[], b"");
            assert_eq!(status, 204);
        }
    }
}

#[test]
fn the_checksum_check_confirms_without_downloading_and_refuses_a_meddled_object() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = store(&tmp.path().join("clean"), 2);
    let target = bucket("checksum-clean");
    let report = db
        .archive(&target, &ArchiveOptions::default())
        .expect("archive");
    // seal, leaves and at least one part per epoch, each confirmed by a HEAD; only the
    // manifests are downloaded.
    assert!(report.objects_checked_by_checksum >= 6, "{report:?}");
    assert!(
        report.bytes_read_back < report.bytes_written / 10,
        "{report:?}"
    );
    db.close().expect("close");
    // The other policy downloads every object instead.
    let db = store(&tmp.path().join("read-back"), 2);
    let options = ArchiveOptions {
        remote_check: RemoteCheck::FullReadBack,
        ..ArchiveOptions::default()
    };
    let full = db
        .archive(&bucket("checksum-read-back"), &options)
        .expect("archive");
    assert_eq!(full.objects_checked_by_checksum, 0, "{full:?}");
    assert_eq!(full.bytes_read_back, full.bytes_verified, "{full:?}");
    assert!(full.bytes_read_back >= full.bytes_written - 64, "{full:?}");
    db.close().expect("close");

    for how in [Meddle::Replace, Meddle::Remove] {
        let data = tmp.path().join(format!("{how:?}"));
        let db = store(&data, 2);
        let name = format!("checksum-{how:?}").to_lowercase();
        let target = bucket(&name);
        let done = Arc::new(AtomicBool::new(false));
        let meddled = Arc::new(std::sync::Mutex::new(String::new()));
        let progress = {
            let (name, done, meddled) = (name.clone(), Arc::clone(&done), Arc::clone(&meddled));
            Arc::new(move |key: &str, _: u64, written: bool| {
                if written && key.contains(".part-") && !done.swap(true, Ordering::SeqCst) {
                    meddle(&name, key, how);
                    key.clone_into(&mut meddled.lock().expect("lock"));
                }
            })
        };
        let options = ArchiveOptions {
            progress: Some(progress),
            ..ArchiveOptions::default()
        };
        let err = db.archive(&target, &options).expect_err("refused");
        let key = meddled.lock().expect("lock").clone();
        match &err {
            Error::Archive(ArchiveError::Unverified { object, detail }) => {
                assert_eq!(object, &key, "{err}");
                let expected = match how {
                    Meddle::Replace => "sha256",
                    Meddle::Remove => "missing",
                };
                assert!(detail.contains(expected), "{how:?}: {err}");
            }
            other => panic!("{how:?}: expected Unverified, got {other}"),
        }
        // Nothing is recorded as archived.
        assert_eq!(db.archived_end(), Seq(0), "{how:?}");
        db.close().expect("close");
        assert!(common::archive_records(&data).is_empty(), "{how:?}");
    }
}
