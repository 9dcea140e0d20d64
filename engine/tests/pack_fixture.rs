//! Guards the evidence-pack format (v2): a pack checked into the repository, written by an
//! earlier build, must still verify with its store's public key, with the same report — and
//! still be rejected after a one-byte change. Regenerate with
//! `TRAILMIX_REGENERATE_FIXTURES=1 cargo test -p trailmix-db --test pack_fixture` (only when
//! the format changes on purpose; say so in docs/design.md).

use std::path::{Path, PathBuf};

use trailmix_db::keys::SigningKeyProvider;
use trailmix_db::note::{NoteSigner, NoteVerifier};
use trailmix_db::pack::fuzz::{FIXTURE_KEY_NAME, FIXTURE_KEY_SEED};
use trailmix_db::pack::{
    EndProof, ExportOptions, PackFailure, PackFiles, PackScope, StartProof, TrustedKey,
    export_pack, verify_pack,
};
use trailmix_db::receipt::{ActorType, Decision, Kind, Receipt, Timestamp};
use trailmix_db::{Db, DbOptions};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pack-v2")
}

fn key_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pack-v2.pub")
}

fn receipt(tenant: &str, n: u64) -> Receipt {
    let builder = Receipt::builder(tenant, format!("evt-{n:03}"), Kind::PolicyDecision);
    // Receipt 6 of each tenant is about a data subject whose key is shredded.
    let builder = if n == 6 {
        builder.subject_id("subject-6")
    } else {
        builder
    };
    builder
        .app_id("fixture")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(
            1_763_800_000_000_000_000 + i64::try_from(n).expect("small"),
        ))
        .model_name("gpt-4.1")
        .decision(if n.is_multiple_of(3) {
            Decision::Deny
        } else {
            Decision::Allow
        })
        .input(serde_json::json!({"prompt": format!("request {n}")}))
        .build()
        .expect("valid receipt")
}

/// The fixture store's key: a published test key (see `trailmix_db::pack::fuzz`), so the fuzz
/// body can re-sign mutated packs.
struct FixtureKey;

impl SigningKeyProvider for FixtureKey {
    fn signer(&self, _key_name: &str) -> trailmix_db::Result<NoteSigner> {
        Ok(NoteSigner::from_seed(FIXTURE_KEY_NAME, &FIXTURE_KEY_SEED).expect("fixture key"))
    }
}

/// A store of two tenants with a sealed epoch, and receipt 6's subject shredded in each
/// tenant; the pack holds acme's receipts 4..9 of 12, both boundaries, and receipt 6 as
/// shredded with acme's shred record (not globex's).
fn regenerate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let options = DbOptions::default().key_provider(std::sync::Arc::new(FixtureKey));
    let db = Db::open_with(&store, options).expect("open");
    let mut acme = Vec::new();
    for n in 0..12 {
        acme.push(db.append_and_wait(&receipt("acme", n)).expect("append"));
        db.append_and_wait(&receipt("globex", n)).expect("append");
        if n == 5 {
            db.seal_epoch().expect("seal").expect("sealed");
        }
    }
    db.shred("acme", "subject-6", "fixture-dsr-1")
        .expect("shred");
    db.shred("globex", "subject-6", "fixture-dsr-2")
        .expect("shred");
    db.close().expect("close");
    let signer = FixtureKey.signer("unused").expect("key");
    let scope = PackScope {
        tenant: "acme".into(),
        logged_from_ns: Some(acme[4].logged_at_ns),
        logged_to_ns: Some(acme[9].logged_at_ns),
        filter: None,
    };
    let (files, _) =
        export_pack(&store, &signer, &scope, &ExportOptions::default()).expect("export");
    let _ = std::fs::remove_dir_all(fixture_dir());
    files.write_dir(&fixture_dir()).expect("write fixture");
    std::fs::write(key_file(), signer.verifier().to_vkey() + "\n").expect("write key");
}

fn trusted() -> TrustedKey {
    let text = std::fs::read_to_string(key_file()).expect("fixture key");
    TrustedKey::Verifier(NoteVerifier::from_vkey(text.trim()).expect("vkey"))
}

#[test]
fn checked_in_pack_still_verifies() {
    if std::env::var("TRAILMIX_REGENERATE_FIXTURES").as_deref() == Ok("1") {
        regenerate();
    }
    let report = verify_pack(&fixture_dir(), Some(&trusted())).expect("the fixture verifies");
    assert_eq!(report.tenant, "acme");
    assert_eq!(
        (
            report.counts.included,
            report.counts.shredded,
            report.counts.boundary
        ),
        (4, 1, 2)
    );
    assert!(matches!(
        report.completeness.start,
        StartProof::PreviousReceipt { .. }
    ));
    assert!(matches!(
        report.completeness.end,
        EndProof::NextReceipt { .. }
    ));
    assert_eq!(report.anchors.len(), 2);
    assert_eq!(report.shred_records.len(), 1, "acme's shred record only");
    assert_eq!(report.shred_records[0].request_id, "fixture-dsr-1");

    // The archive of the same files verifies the same.
    let files = PackFiles::read(&fixture_dir()).expect("read");
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = tmp.path().join("pack.tar");
    std::fs::write(&archive, files.to_archive().expect("archive")).expect("write");
    assert_eq!(
        verify_pack(&archive, Some(&trusted())).expect("archive"),
        report
    );

    // And one changed byte is still caught.
    let mut changed = files.clone();
    let receipts = changed.files.get_mut("receipts.jsonl").expect("receipts");
    receipts[10] ^= 1;
    let err =
        trailmix_db::pack::verify_pack_files(&changed, Some(&trusted())).expect_err("changed");
    assert!(matches!(err, PackFailure::Checksum { .. }), "{err}");

    // The compiled-in copy the fuzz body mutates is this pack, and its key is the fixture's.
    assert!(
        trailmix_db::pack::fuzz::fixture_pack() == files,
        "the fuzz body's compiled-in fixture differs from the files (rebuild after regenerating)"
    );
    assert_eq!(
        NoteSigner::from_seed(FIXTURE_KEY_NAME, &FIXTURE_KEY_SEED)
            .expect("key")
            .verifier()
            .to_vkey()
            + "\n",
        std::fs::read_to_string(key_file()).expect("key file")
    );
}
