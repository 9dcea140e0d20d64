//! Guards the evidence-pack formats: packs checked into the repository, written by earlier
//! builds — a v2 pack, a v3 pack carrying the RFC 3161 token of its epoch seal, a v4 pack
//! that also ends on the tenant's signed tip, and a v5 pack of entry version 3 — must still
//! verify with their store's public key (and the tokens with the TSA's CA), with the same
//! report, and still be rejected after a one-byte change. Regenerate the v5 pack (v2 to v4 are
//! frozen: this build writes v5) with
//! `TRAILMIX_REGENERATE_FIXTURES=1 cargo test -p trailmix-db --test pack_fixture` (only when
//! the format changes on purpose; say so in docs/design.md). Regenerating needs `openssl`.

mod common;

use std::path::{Path, PathBuf};

use trailmix_db::keys::SigningKeyProvider;
use trailmix_db::note::{NoteSigner, NoteVerifier};
use trailmix_db::pack::format::{ANCHORS_FILE, AnchorKind, AnchorLine, timestamp_file};
use trailmix_db::pack::fuzz::{FIXTURE_KEY_NAME, FIXTURE_KEY_SEED};
use trailmix_db::pack::{
    EndProof, ExportOptions, PackFailure, PackFiles, PackReport, PackScope, StartProof,
    TimestampVerdict, TrustedKey, export_pack, verify_pack, verify_pack_with_tsa,
};
use trailmix_db::receipt::{ActorType, Decision, Kind, Receipt, Timestamp};
use trailmix_db::timestamp::{read_ca_certificate, request_token, seal_imprint, write_token};
use trailmix_db::{Db, DbOptions, Epoch};

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
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

/// A store of two tenants with a sealed epoch whose seal has a token from a local TSA, and
/// receipt 6's subject shredded in each tenant; the pack holds acme's receipts from 4 on (of
/// 12), the boundary before them, receipt 6 as shredded with acme's shred record (not
/// globex's), the token of epoch 0's seal, and ends on acme's signed tip (receipt 11).
fn regenerate_v5() {
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
        logged_to_ns: None,
        filter: None,
    };
    let (files, _) =
        export_pack(&store, &signer, &scope, &ExportOptions::default()).expect("export");
    let tsa = common::tsa::start();
    let anchors: Vec<AnchorLine> = String::from_utf8_lossy(files.get(ANCHORS_FILE).expect("a"))
        .lines()
        .map(|l| serde_json::from_str(l).expect("anchor"))
        .collect();
    let seal = anchors
        .iter()
        .find(|a| a.kind == AnchorKind::Seal && a.epoch == 0)
        .expect("the seal of epoch 0");
    let token = request_token(
        &tsa.url,
        &seal_imprint(seal.note.as_bytes()),
        std::time::Duration::from_secs(20),
    )
    .expect("token");
    write_token(&store, Epoch(0), &token).expect("store the token");
    let (files, _) =
        export_pack(&store, &signer, &scope, &ExportOptions::default()).expect("export");
    let _ = std::fs::remove_dir_all(fixture_path("pack-v5"));
    files
        .write_dir(&fixture_path("pack-v5"))
        .expect("write fixture");
    std::fs::write(
        fixture_path("pack-v5.pub"),
        signer.verifier().to_vkey() + "\n",
    )
    .expect("write key");
    std::fs::copy(&tsa.ca_cert, fixture_path("pack-v5-tsa-ca.pem")).expect("copy the CA");
}

fn trusted(version: &str) -> TrustedKey {
    let text =
        std::fs::read_to_string(fixture_path(&format!("pack-{version}.pub"))).expect("fixture key");
    TrustedKey::Verifier(NoteVerifier::from_vkey(text.trim()).expect("vkey"))
}

/// What the v2 and v3 fixtures hold (they were made from stores built alike).
fn assert_fixture_report(report: &PackReport) {
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
}

/// The archive of the pack's files verifies the same, and one changed byte of `file` is
/// caught.
fn assert_archive_and_change(files: &PackFiles, report: &PackReport, key: &TrustedKey, file: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = tmp.path().join("pack.tar");
    std::fs::write(&archive, files.to_archive().expect("archive")).expect("write");
    assert_eq!(&verify_pack(&archive, Some(key)).expect("archive"), report);
    let mut changed = files.clone();
    let bytes = changed.files.get_mut(file).expect("file");
    bytes[10] ^= 1;
    let err = trailmix_db::pack::verify_pack_files(&changed, Some(key)).expect_err("changed");
    assert!(matches!(err, PackFailure::Checksum { .. }), "{err}");
}

#[test]
fn checked_in_v5_pack_of_entry_version_3_still_verifies() {
    if std::env::var("TRAILMIX_REGENERATE_FIXTURES").as_deref() == Ok("1") {
        regenerate_v5();
    }
    let files = check_tip_pack("v5");
    let manifest =
        String::from_utf8(files.get("manifest.json").expect("manifest").to_vec()).expect("utf-8");
    assert!(manifest.contains("\"trailmix-db evidence pack v5\""));
    // The compiled-in copy the fuzz body mutates is this pack, and its key is the fixture's.
    assert!(
        trailmix_db::pack::fuzz::fixture_pack() == files,
        "the fuzz body's compiled-in fixture differs from the files (rebuild after regenerating)"
    );
    for version in ["v2", "v3", "v4", "v5"] {
        assert_eq!(
            NoteSigner::from_seed(FIXTURE_KEY_NAME, &FIXTURE_KEY_SEED)
                .expect("key")
                .verifier()
                .to_vkey()
                + "\n",
            std::fs::read_to_string(fixture_path(&format!("pack-{version}.pub"))).expect("key")
        );
    }
}

#[test]
fn checked_in_v4_pack_ending_on_the_tenant_tip_still_verifies() {
    check_tip_pack("v4");
}

/// The v4 and v5 fixtures hold the same store's pack (entry version 2 and 3): the same
/// report, and a one-byte change is refused. Returns the files.
fn check_tip_pack(version: &str) -> PackFiles {
    let dir = fixture_path(&format!("pack-{version}"));
    let ca = read_ca_certificate(&fixture_path(&format!("pack-{version}-tsa-ca.pem"))).expect("CA");
    let report = verify_pack_with_tsa(&dir, Some(&trusted(version)), Some(&ca))
        .expect("the fixture verifies");
    assert_eq!(report.tenant, "acme");
    assert_eq!(
        (
            report.counts.included,
            report.counts.shredded,
            report.counts.boundary,
            report.counts.tail_links
        ),
        (7, 1, 1, 0)
    );
    assert!(matches!(
        report.completeness.start,
        StartProof::PreviousReceipt { .. }
    ));
    // acme's receipt 11, the tip of a tree of two tenants signed by epoch 1's checkpoint.
    assert_eq!(
        report.completeness.end,
        EndProof::TenantTip {
            seq: 24,
            epoch: 1,
            tenants: 2
        }
    );
    assert_eq!(report.shred_records.len(), 1, "acme's shred record only");
    assert_eq!(report.counts.timestamps, 1);
    let [stamp] = report.timestamps.as_slice() else {
        panic!("one sealed epoch: {:?}", report.timestamps);
    };
    assert_eq!(
        (stamp.epoch, stamp.verdict),
        (0, TimestampVerdict::Verified)
    );
    let unchecked = verify_pack(&dir, Some(&trusted(version))).expect("verifies without the CA");
    assert_eq!(unchecked.timestamps[0].verdict, TimestampVerdict::Unchecked);
    let files = PackFiles::read(&dir).expect("read");
    assert_archive_and_change(&files, &unchecked, &trusted(version), &timestamp_file(0));
    files
}

#[test]
fn checked_in_v3_pack_with_a_token_still_verifies() {
    let dir = fixture_path("pack-v3");
    let ca = read_ca_certificate(&fixture_path("pack-v3-tsa-ca.pem")).expect("CA");
    let report = verify_pack_with_tsa(&dir, Some(&trusted("v3")), Some(&ca))
        .expect("the v3 fixture verifies");
    assert_fixture_report(&report);
    assert_eq!(report.counts.timestamps, 1);
    assert_eq!(report.timestamps[0].verdict, TimestampVerdict::Verified);
    let unchecked = verify_pack(&dir, Some(&trusted("v3"))).expect("verifies without the CA");
    let files = PackFiles::read(&dir).expect("read");
    assert_archive_and_change(&files, &unchecked, &trusted("v3"), &timestamp_file(0));
}

#[test]
fn checked_in_v2_pack_still_verifies() {
    let dir = fixture_path("pack-v2");
    let report = verify_pack(&dir, Some(&trusted("v2"))).expect("the v2 fixture verifies");
    assert_fixture_report(&report);
    assert_eq!(report.counts.timestamps, 0);
    assert_eq!(
        report
            .timestamps
            .iter()
            .map(|t| (t.epoch, t.verdict))
            .collect::<Vec<_>>(),
        [(0, TimestampVerdict::Absent)]
    );
    let files = PackFiles::read(&dir).expect("read");
    assert_archive_and_change(&files, &report, &trusted("v2"), "receipts.jsonl");
}
