//! Guards the RFC 3161 timestamp tokens in evidence packs (format v3) against a local TSA
//! (`openssl ts` on loopback): a pack carries the token of each epoch seal it rests on, listed
//! in its signed manifest; `verify_pack` reports each seal as verified (with the CA), unchecked
//! (without it) or absent; a token swapped between epochs, edited, dropped, added unlisted, or
//! for an epoch the pack has no seal of is a failure naming the epoch; a store without tokens
//! gives a valid pack without them; a store token for another seal is refused at export.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use trailmix_db::keys::{FileKeyProvider, SigningKeyProvider};
use trailmix_db::note::NoteSigner;
use trailmix_db::pack::format::{
    ANCHORS_FILE, AnchorKind, AnchorLine, MANIFEST_FILE, Manifest, PACK_FORMAT, timestamp_file,
};
use trailmix_db::pack::{
    ExportOptions, PackError, PackFailure, PackFiles, PackReport, PackScope, TimestampVerdict,
    TrustedKey, export_pack, verify_pack_files_with_tsa,
};
use trailmix_db::timestamp::{
    Certificate, read_ca_certificate, request_token, seal_imprint, write_token,
};
use trailmix_db::{Db, Epoch};

use common::receipt;

struct Store {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    signer: NoteSigner,
}

/// Receipts of acme in four epochs, the first three sealed; closing checkpoints the fourth.
fn store() -> Store {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let db = Db::open(&dir).expect("open");
    for epoch in 0..4_u64 {
        for n in 0..3 {
            db.append_and_wait(&receipt("acme", epoch * 10 + n, 8))
                .expect("append");
        }
        if epoch < 3 {
            db.seal_epoch().expect("seal").expect("sealed");
        }
    }
    db.close().expect("close");
    let signer = FileKeyProvider::new(&dir).signer("unused").expect("key");
    Store {
        _tmp: tmp,
        dir,
        signer,
    }
}

impl Store {
    fn key(&self) -> TrustedKey {
        TrustedKey::Verifier(self.signer.verifier())
    }

    fn export(&self) -> Result<PackFiles, PackError> {
        let scope = PackScope {
            tenant: "acme".into(),
            ..PackScope::default()
        };
        export_pack(&self.dir, &self.signer, &scope, &ExportOptions::default()).map(|(f, _)| f)
    }

    /// The seal notes of the pack's anchors, by epoch.
    fn seal_notes(&self) -> Vec<(u64, String)> {
        let files = self.export().expect("export");
        anchors(&files)
            .into_iter()
            .filter(|a| a.kind == AnchorKind::Seal)
            .map(|a| (a.epoch, a.note))
            .collect()
    }

    /// Requests and stores tokens for the seals of `epochs`.
    fn stamp(&self, tsa_url: &str, epochs: &[u64]) {
        for (epoch, note) in self.seal_notes() {
            if epochs.contains(&epoch) {
                let token = request_token(
                    tsa_url,
                    &seal_imprint(note.as_bytes()),
                    Duration::from_secs(20),
                )
                .expect("token from the local TSA");
                write_token(&self.dir, Epoch(epoch), &token).expect("store the token");
            }
        }
    }

    fn verify(
        &self,
        files: &PackFiles,
        ca: Option<&Certificate>,
    ) -> Result<PackReport, PackFailure> {
        verify_pack_files_with_tsa(files, Some(&self.key()), ca)
    }
}

fn anchors(files: &PackFiles) -> Vec<AnchorLine> {
    String::from_utf8(files.get(ANCHORS_FILE).expect("anchors").to_vec())
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("anchor line"))
        .collect()
}

fn reseal(files: &mut PackFiles, signer: &NoteSigner) {
    let mut manifest: Manifest =
        serde_json::from_slice(files.get(MANIFEST_FILE).expect("manifest")).expect("parses");
    files.seal(&mut manifest, signer).expect("seal");
}

fn verdicts(report: &PackReport) -> Vec<(u64, TimestampVerdict)> {
    report
        .timestamps
        .iter()
        .map(|t| (t.epoch, t.verdict))
        .collect()
}

fn expect_timestamp_failure(result: Result<PackReport, PackFailure>, epoch: u64, says: &str) {
    match result {
        Err(PackFailure::Timestamp {
            epoch: failed,
            ref detail,
            ..
        }) if failed == epoch => assert!(detail.contains(says), "{detail}"),
        other => panic!("expected a timestamp failure of epoch {epoch} ({says}), got {other:?}"),
    }
}

fn tsa_and_store() -> (common::tsa::Tsa, Store, Certificate, PackFiles) {
    let tsa = common::tsa::start();
    let store = store();
    store.stamp(&tsa.url, &[0, 1]);
    let ca = read_ca_certificate(&tsa.ca_cert).expect("CA");
    let files = store.export().expect("export with tokens");
    (tsa, store, ca, files)
}

#[test]
fn tokens_travel_in_the_pack_and_verify_per_epoch() {
    let (tsa, store, ca, files) = tsa_and_store();
    let manifest: Manifest =
        serde_json::from_slice(files.get(MANIFEST_FILE).expect("manifest")).expect("manifest");
    assert_eq!(manifest.format, PACK_FORMAT);
    assert_eq!(manifest.counts.timestamps, 2);
    for epoch in [0, 1] {
        let name = timestamp_file(epoch);
        assert!(
            manifest.files.iter().any(|f| f.path == name),
            "{name} is listed in the manifest"
        );
        let stored = std::fs::read(trailmix_db::timestamp::token_path(&store.dir, Epoch(epoch)))
            .expect("stored token");
        assert_eq!(files.get(&name), Some(stored.as_slice()));
    }
    assert!(files.get(&timestamp_file(2)).is_none());

    let with_ca = store
        .verify(&files, Some(&ca))
        .expect("verifies with the CA");
    assert_eq!(
        verdicts(&with_ca),
        [
            (0, TimestampVerdict::Verified),
            (1, TimestampVerdict::Verified),
            (2, TimestampVerdict::Absent)
        ]
    );
    let stamp = &with_ca.timestamps[0];
    assert!(
        stamp.tsa.as_deref().is_some_and(|s| s.contains("test-tsa")),
        "{stamp:?}"
    );
    assert!(
        stamp.gen_time.is_some() && stamp.serial.is_some(),
        "{stamp:?}"
    );
    assert_eq!(with_ca.timestamps[2].gen_time, None);

    let without_ca = store.verify(&files, None).expect("verifies without a CA");
    assert_eq!(
        verdicts(&without_ca),
        [
            (0, TimestampVerdict::Unchecked),
            (1, TimestampVerdict::Unchecked),
            (2, TimestampVerdict::Absent)
        ]
    );

    // The archive form carries them too.
    let archive = PackFiles::from_archive(&files.to_archive().expect("archive")).expect("read");
    assert_eq!(archive, files);

    // A CA that did not issue the TSA certificate: the first token fails, naming its epoch.
    let other = read_ca_certificate(&tsa.other_ca_cert).expect("other CA");
    expect_timestamp_failure(store.verify(&files, Some(&other)), 0, "does not chain");
}

#[test]
fn swapped_edited_dropped_and_stray_tokens_are_caught() {
    let (_tsa, store, ca, files) = tsa_and_store();
    let (t0, t1) = (timestamp_file(0), timestamp_file(1));

    // Swapped between epochs, re-signed by the store's own key: the imprint gives it away.
    let mut swapped = files.clone();
    let token0 = swapped.files.remove(&t0).expect("token 0");
    let token1 = swapped.files.remove(&t1).expect("token 1");
    swapped.files.insert(t0.clone(), token1);
    swapped.files.insert(t1.clone(), token0);
    assert!(matches!(
        store.verify(&swapped, Some(&ca)),
        Err(PackFailure::Checksum { ref file, .. }) if *file == t0
    ));
    reseal(&mut swapped, &store.signer);
    expect_timestamp_failure(store.verify(&swapped, Some(&ca)), 0, "another document");
    expect_timestamp_failure(store.verify(&swapped, None), 0, "another document");

    // Edited: the manifest's checksum catches it; re-signed, the token's signature does.
    let mut edited = files.clone();
    let token = edited.files.get_mut(&t1).expect("token 1");
    let last = token.len() - 1;
    token[last] ^= 1;
    assert!(matches!(
        store.verify(&edited, Some(&ca)),
        Err(PackFailure::Checksum { ref file, .. }) if *file == t1
    ));
    reseal(&mut edited, &store.signer);
    expect_timestamp_failure(store.verify(&edited, None), 1, "signature");

    // Dropped while the manifest lists it.
    let mut dropped = files.clone();
    dropped.files.remove(&t1);
    assert_eq!(
        store.verify(&dropped, Some(&ca)),
        Err(PackFailure::MissingFile { file: t1.clone() })
    );

    // Added without being listed.
    let mut stray = files.clone();
    let t2 = timestamp_file(2);
    stray
        .files
        .insert(t2.clone(), files.get(&t0).expect("token").to_vec());
    assert_eq!(
        store.verify(&stray, Some(&ca)),
        Err(PackFailure::UnexpectedFile { file: t2 })
    );

    // A v2 manifest (v2 packs carried no tokens, nor tip proofs) with tokens, re-signed.
    let mut as_v2 = files.clone();
    let mut manifest: Manifest =
        serde_json::from_slice(as_v2.get(MANIFEST_FILE).expect("m")).expect("manifest");
    manifest.format = "trailmix-db evidence pack v2".into();
    manifest.completeness.tip = None;
    as_v2.files.insert(
        MANIFEST_FILE.into(),
        serde_json::to_vec(&manifest).expect("json"),
    );
    reseal(&mut as_v2, &store.signer);
    match store.verify(&as_v2, Some(&ca)) {
        Err(PackFailure::Manifest(detail)) => {
            assert!(
                detail.contains("v2 pack carries no timestamp tokens"),
                "{detail}"
            );
        }
        other => panic!("expected a manifest failure, got {other:?}"),
    }

    // For an epoch the pack rests on a checkpoint of (no seal to timestamp), re-signed.
    let mut unsealed = files.clone();
    unsealed
        .files
        .insert(timestamp_file(3), files.get(&t0).expect("token").to_vec());
    reseal(&mut unsealed, &store.signer);
    expect_timestamp_failure(
        store.verify(&unsealed, Some(&ca)),
        3,
        "no seal of this epoch",
    );
}

#[test]
fn a_store_without_tokens_gives_a_valid_pack_without_them() {
    let store = store();
    let files = store.export().expect("export");
    assert!(
        !files
            .files
            .keys()
            .any(|k| trailmix_db::pack::format::timestamp_file_epoch(k).is_some())
    );
    let report = store.verify(&files, None).expect("verifies");
    assert_eq!(report.counts.timestamps, 0);
    assert_eq!(
        verdicts(&report),
        [
            (0, TimestampVerdict::Absent),
            (1, TimestampVerdict::Absent),
            (2, TimestampVerdict::Absent)
        ]
    );
}

#[test]
fn a_stored_token_of_another_seal_is_refused_at_export() {
    let (_tsa, store, _ca, _files) = tsa_and_store();
    let path = |epoch| trailmix_db::timestamp::token_path(&store.dir, Epoch(epoch));
    std::fs::copy(path(0), path(2)).expect("copy the token of epoch 0 over epoch 2's place");
    match store.export() {
        Err(PackError::Unusable(detail)) => {
            assert!(detail.contains("epoch 2"), "{detail}");
            assert!(detail.contains("another document"), "{detail}");
        }
        other => panic!(
            "expected the export to be refused, got {:?}",
            other.map(|_| ())
        ),
    }
}
