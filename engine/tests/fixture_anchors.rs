//! Guards the on-disk formats of external anchors with files checked into the repository: a
//! witness state file and the cosigned note in it (made from fixed keys and a fixed time, so
//! they must come out byte for byte the same, and still open), and an RFC 3161 token of a seal
//! with its CA certificate (must still verify, named as `timestamps/epoch-<20 digits>.tst`).
//! Regenerate with `TRAILMIX_REGENERATE_FIXTURES=1` (the token part needs `openssl`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use trailmix_db::note::{Checkpoint, CosignatureSigner, CosignatureVerifier, NoteSigner};
use trailmix_db::timestamp::{
    read_ca_certificate, read_token, request_token, seal_imprint, token_path, verify_token,
    write_token,
};
use trailmix_db::wal::HashAlgorithm;
use trailmix_db::witness::{WITNESS_STATE_FORMAT, Witness, WitnessedLog};
use trailmix_db::{Db, Epoch};

const COSIGNED_AT: u64 = 1_795_000_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/anchors")
        .join(name)
}

fn regenerating() -> bool {
    std::env::var("TRAILMIX_REGENERATE_FIXTURES").as_deref() == Ok("1")
}

fn log_signer() -> NoteSigner {
    NoteSigner::from_seed("fixture.example/log/epoch/0", &[21; 32]).expect("log key")
}

fn witness_signer() -> CosignatureSigner {
    CosignatureSigner::from_seed("fixture.example/witness", &[22; 32]).expect("witness key")
}

/// Makes the witness state file and cosigned note in `dir`, from fixed keys and times.
fn make_witness_files(dir: &Path) {
    let log = log_signer();
    let witnessed = WitnessedLog {
        verifier: log.verifier(),
        hash_algorithm: HashAlgorithm::Sha256,
    };
    let mut witness =
        Witness::open(witness_signer(), dir.join("witness.state"), vec![witnessed]).expect("open");
    let checkpoint = Checkpoint::new("fixture.example/log/epoch/0", 7, [5; 32]);
    let note = checkpoint.sign(&[&log]).expect("sign");
    let cosigned = witness.cosign_at(&note, &[], COSIGNED_AT).expect("cosign");
    std::fs::write(dir.join("cosigned.note"), cosigned.note).expect("note");
    std::fs::write(
        dir.join("witness.vkey"),
        witness_signer().verifier().to_vkey(),
    )
    .expect("vkey");
}

#[test]
fn checked_in_witness_state_and_cosigned_note_are_unchanged_and_open() {
    let scratch = tempfile::tempdir().expect("tempdir");
    make_witness_files(scratch.path());
    for name in ["witness.state", "cosigned.note", "witness.vkey"] {
        let made = std::fs::read(scratch.path().join(name)).expect("made");
        if regenerating() {
            std::fs::create_dir_all(fixture("")).expect("mkdir");
            std::fs::write(fixture(name), &made).expect("regenerate");
        }
        let kept = std::fs::read(fixture(name)).expect("checked-in fixture");
        assert!(
            made == kept,
            "{name} is no longer written byte for byte as checked in"
        );
    }
    let vkey = std::fs::read_to_string(fixture("witness.vkey")).expect("vkey");
    let verifier = CosignatureVerifier::from_vkey(&vkey).expect("witness vkey");
    let note = std::fs::read(fixture("cosigned.note")).expect("note");
    assert_eq!(
        verifier.verify(&note).expect("cosignature").timestamp,
        COSIGNED_AT
    );

    let state = std::fs::read_to_string(fixture("witness.state")).expect("state");
    assert!(state.contains(WITNESS_STATE_FORMAT));
    let witnessed = WitnessedLog {
        verifier: log_signer().verifier(),
        hash_algorithm: HashAlgorithm::Sha256,
    };
    let copy = scratch.path().join("copy.state");
    std::fs::copy(fixture("witness.state"), &copy).expect("copy");
    let witness = Witness::open(witness_signer(), &copy, vec![witnessed]).expect("reads");
    let last = witness
        .last_cosigned("fixture.example/log/epoch/0")
        .expect("entry");
    assert_eq!((last.tree_size, last.cosigned_at), (7, COSIGNED_AT));
}

fn regenerate_token() {
    let tsa = common::tsa::start();
    let store = tempfile::tempdir().expect("store");
    let db = Db::open(store.path()).expect("open");
    let first = db
        .append_and_wait(&common::receipt("acme", 0, 8))
        .expect("append");
    db.seal_epoch().expect("seal");
    let seal = db.prove(first.seq).expect("prove").checkpoint;
    db.close().expect("close");
    let token = request_token(
        &tsa.url,
        &seal_imprint(seal.as_bytes()),
        Duration::from_secs(20),
    )
    .expect("token");
    std::fs::create_dir_all(fixture("timestamps")).expect("mkdir");
    std::fs::write(fixture("seal.note"), &seal).expect("seal");
    std::fs::copy(&tsa.ca_cert, fixture("tsa-ca.pem")).expect("CA");
    write_token(&fixture(""), Epoch(0), &token).expect("token file");
}

#[test]
fn checked_in_seal_token_still_verifies() {
    if regenerating() {
        regenerate_token();
    }
    let path = token_path(&fixture(""), Epoch(0));
    assert_eq!(
        path.strip_prefix(fixture("")).expect("under the store"),
        Path::new("timestamps/epoch-00000000000000000000.tst")
    );
    let token = read_token(&fixture(""), Epoch(0))
        .expect("read")
        .expect("checked-in token");
    let seal = std::fs::read(fixture("seal.note")).expect("seal");
    let ca = read_ca_certificate(&fixture("tsa-ca.pem")).expect("CA");
    let verified = verify_token(&token, &seal, &ca).expect("the checked-in token verifies");
    assert_eq!(verified.policy, "1.2.3.4.1");
}
