//! Guards witness cosignatures: the C2SP tlog-cosignature line format byte for byte, the
//! witness's refusals (smaller tree, fork, bad proof, epoch rollback), its state file, and
//! `verify` with a cosigned trusted checkpoint (rollback caught, honest growth passes, a
//! cosignature by another key or over a modified note refused).

mod common;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Verifier as _};
use sha2::{Digest as _, Sha256};
use trailmix_db::merkle::Digest;
use trailmix_db::note::{
    self, CosignatureError, CosignatureSigner, CosignatureVerifier, KeyError, NoteSigner,
};
use trailmix_db::replay::DamageKind;
use trailmix_db::witness::{Witness, WitnessError, WitnessedLog};
use trailmix_db::{Db, DbOptions, Error, VerifyOptions};

use common::{copy_dir, layout, receipt, truncate, verify_with};

const SEED: [u8; 32] = [9; 32];
const WITNESS: &str = "witness.example/w1";

fn signer() -> CosignatureSigner {
    CosignatureSigner::from_seed(WITNESS, &SEED).expect("witness key")
}

/// A store that writes checkpoints only when asked, so each `checkpoint` call makes one.
fn open(path: &Path) -> Db {
    let options = DbOptions::default().checkpoint_interval(std::time::Duration::from_secs(3600));
    Db::open_with(path, options).expect("open")
}

fn append(db: &Db, from: u64, count: u64) {
    for n in from..from + count {
        db.append_and_wait(&receipt("acme", n, 16)).expect("append");
    }
}

fn checkpoint(db: &Db) -> String {
    db.checkpoint().expect("checkpoint").expect("new").note
}

fn witness_for(db: &Db, state: &Path) -> Witness {
    let log = WitnessedLog {
        verifier: db.verifier().clone(),
        hash_algorithm: db.hash_algorithm(),
    };
    Witness::open(signer(), state, vec![log]).expect("witness")
}

fn proof(db: &Db, old: &str, new: &str) -> Vec<Digest> {
    db.consistency(old, new)
        .expect("consistency")
        .path
        .iter()
        .map(|d| {
            STANDARD
                .decode(d)
                .expect("base64")
                .try_into()
                .expect("32 bytes")
        })
        .collect()
}

#[test]
fn cosignature_line_follows_the_specification_byte_for_byte() {
    let witness = signer();
    let log = NoteSigner::from_seed("example.com/log", &[1; 32]).expect("log key");
    let body = "example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let note = note::sign(body, &[&log]).expect("sign");
    let cosigned = witness.cosign(&note, 1_679_315_147).expect("cosign");

    // The log's line is kept as it was, the cosignature appended after it.
    assert!(cosigned.starts_with(&note));
    let line = cosigned[note.len()..].trim_end_matches('\n');
    let b64 = line
        .strip_prefix(&format!("\u{2014} {WITNESS} "))
        .expect("signature line of the witness");
    let blob = STANDARD.decode(b64).expect("base64");
    assert_eq!(blob.len(), 4 + 8 + 64, "key ID, timestamp, signature");

    // Key ID: SHA-256(name || "\n" || 0x04 || public key)[:4], computed here independently.
    let public = ed25519_dalek::SigningKey::from_bytes(&SEED).verifying_key();
    let mut h = Sha256::new();
    h.update(WITNESS.as_bytes());
    h.update(b"\n");
    h.update([0x04]);
    h.update(public.as_bytes());
    assert_eq!(blob[..4], h.finalize()[..4]);
    assert_eq!(
        u32::from_be_bytes(blob[..4].try_into().expect("4")),
        witness.key_id()
    );
    // Timestamp: u64 big-endian.
    assert_eq!(blob[4..12], 1_679_315_147_u64.to_be_bytes());
    // Signed message: "cosignature/v1\n" "time <t>\n" and the note body.
    let message = format!("cosignature/v1\ntime 1679315147\n{body}");
    let signature = Signature::from_bytes(&blob[12..].try_into().expect("64"));
    public
        .verify(message.as_bytes(), &signature)
        .expect("the signature is over the specified message");

    // The vkey carries type 0x04; a note (0x01) key is not a cosignature key.
    let vkey = witness.verifier().to_vkey();
    let material = STANDARD
        .decode(vkey.rsplit('+').next().expect("material"))
        .expect("base64");
    assert_eq!(material[0], 0x04);
    assert_eq!(
        CosignatureVerifier::from_vkey(&vkey).expect("round trip"),
        witness.verifier()
    );
    assert_eq!(
        CosignatureVerifier::from_vkey(&log.verifier().to_vkey()),
        Err(KeyError::WrongKeyType {
            found: 0x01,
            expected: 0x04
        })
    );
    let text = witness.to_private_key_text();
    let again = CosignatureSigner::from_private_key_text(&text).expect("private key round trip");
    assert_eq!(again.verifier(), witness.verifier());

    // The cosigned note still opens with the log's key alone; the witness line is unknown.
    let opened = note::open(&cosigned, &[log.verifier()]).expect("opens");
    assert_eq!(opened.unknown.len(), 1);
    let checked = witness
        .verifier()
        .verify(cosigned.as_bytes())
        .expect("verifies");
    assert_eq!(checked.timestamp, 1_679_315_147);

    // The specification's own example line decodes to its stated time.
    let example = STANDARD
        .decode("jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==")
        .expect("base64");
    assert_eq!(example.len(), 76);
    assert_eq!(
        u64::from_be_bytes(example[4..12].try_into().expect("8")),
        1_679_315_147
    );
}

#[test]
fn cosignature_over_a_changed_note_or_time_or_by_another_key_is_refused() {
    let witness = signer();
    let log = NoteSigner::from_seed("example.com/log", &[1; 32]).expect("log key");
    let note = note::sign(
        "example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        &[&log],
    )
    .expect("sign");
    let cosigned = witness.cosign(&note, 1_700_000_000).expect("cosign");
    let verifier = witness.verifier();

    let other_body = cosigned.replacen("\n5\n", "\n6\n", 1);
    assert!(matches!(
        verifier.verify(other_body.as_bytes()),
        Err(CosignatureError::Invalid { line: 6, .. })
    ));

    // The same signature with another time.
    let line_start = cosigned.rfind('\u{2014}').expect("witness line");
    let b64 = cosigned[line_start..]
        .rsplit(' ')
        .next()
        .expect("b64")
        .trim_end();
    let mut blob = STANDARD.decode(b64).expect("base64");
    blob[11] ^= 1;
    let retimed = format!(
        "{}\u{2014} {WITNESS} {}\n",
        &cosigned[..line_start],
        STANDARD.encode(&blob)
    );
    assert!(matches!(
        verifier.verify(retimed.as_bytes()),
        Err(CosignatureError::Invalid { .. })
    ));

    let stranger = CosignatureSigner::from_seed(WITNESS, &[10; 32]).expect("other key");
    assert!(matches!(
        stranger.verifier().verify(cosigned.as_bytes()),
        Err(CosignatureError::Missing { .. })
    ));
    assert!(matches!(
        verifier.verify(note.as_bytes()),
        Err(CosignatureError::Missing { .. })
    ));
    let twice = format!("{}{}", cosigned, &cosigned[line_start..]);
    assert!(matches!(
        verifier.verify(twice.as_bytes()),
        Err(CosignatureError::Duplicate { .. })
    ));
    // Cosigning again replaces the witness's own line, never adds a second.
    let again = witness
        .cosign(&cosigned, 1_700_000_001)
        .expect("cosign again");
    assert_eq!(
        verifier.verify(again.as_bytes()).expect("ok").timestamp,
        1_700_000_001
    );
}

#[test]
fn witness_cosigns_growth_and_refuses_rollback_fork_and_bad_proofs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let state = dir.path().join("witness.state");
    let db = open(&data);
    append(&db, 0, 10);
    let first = checkpoint(&db);
    let mut witness = witness_for(&db, &state);
    let cosigned = witness.cosign(&first, &[]).expect("first sight");
    witness
        .verifier()
        .verify(cosigned.note.as_bytes())
        .expect("cosignature verifies");

    append(&db, 10, 7);
    let second = checkpoint(&db);
    let good = proof(&db, &first, &second);
    assert!(!good.is_empty());

    let mut bad = good.clone();
    bad[0][0] ^= 1;
    assert!(matches!(
        witness.cosign(&second, &bad),
        Err(WitnessError::Inconsistent { .. })
    ));
    assert!(matches!(
        witness.cosign(&second, &good[1..]),
        Err(WitnessError::Inconsistent { .. })
    ));
    witness.cosign(&second, &good).expect("growth is cosigned");
    // The same checkpoint again: a fresh cosignature, nothing to prove.
    witness.cosign(&second, &[]).expect("same tree again");

    // Smaller tree, also after the witness restarts from its state file.
    assert!(matches!(
        witness.cosign(&first, &[]),
        Err(WitnessError::SmallerTree { .. })
    ));
    drop(witness);
    let mut witness = witness_for(&db, &state);
    assert!(matches!(
        witness.cosign(&first, &[]),
        Err(WitnessError::SmallerTree { .. })
    ));

    // A fork: a copy of the store (same key, same origin) that took other receipts.
    db.close().expect("close");
    let fork_dir = dir.path().join("fork");
    copy_dir(&data, &fork_dir);
    let db = open(&data);
    let fork = open(&fork_dir);
    append(&db, 100, 3);
    append(&fork, 200, 3);
    let honest = checkpoint(&db);
    let forked = checkpoint(&fork);
    let honest_proof = proof(&db, &second, &honest);
    let forked_proof = proof(&fork, &second, &forked);
    witness
        .cosign(&honest, &honest_proof)
        .expect("honest growth");
    assert!(matches!(
        witness.cosign(&forked, &forked_proof),
        Err(WitnessError::Fork { .. })
    ));
    fork.close().expect("close fork");

    // A note of another log is not cosigned at all.
    let stranger = tempfile::tempdir().expect("tempdir");
    let other = open(stranger.path());
    append(&other, 0, 2);
    assert!(matches!(
        witness.cosign(&checkpoint(&other), &[]),
        Err(WitnessError::LogSignature(_))
    ));
    other.close().expect("close");
    db.close().expect("close");
}

#[test]
fn witness_moves_to_a_new_epoch_only_through_its_seal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("witness.state");
    let db = open(&dir.path().join("store"));
    append(&db, 0, 5);
    let epoch0 = checkpoint(&db);
    let mut witness = witness_for(&db, &state);
    witness.cosign(&epoch0, &[]).expect("epoch 0");
    let sealed = db.seal_epoch().expect("seal").expect("sealed");
    let seal = db
        .prove(trailmix_db::wal::Seq(sealed.first_seq.0 + 1))
        .expect("prove")
        .checkpoint;
    append(&db, 5, 5);
    let epoch1 = checkpoint(&db);

    assert!(matches!(
        witness.cosign(&epoch1, &[]),
        Err(WitnessError::EpochNotSealed {
            epoch: 1,
            latest: 0,
            ..
        })
    ));
    let to_seal = proof(&db, &epoch0, &seal);
    witness
        .cosign(&seal, &to_seal)
        .expect("the seal of epoch 0");
    assert!(matches!(
        witness.cosign(&epoch0, &[]),
        Err(WitnessError::SmallerTree { .. })
    ));
    witness
        .cosign(&epoch1, &[])
        .expect("epoch 1 after the seal");
    assert!(matches!(
        witness.cosign(&seal, &[]),
        Err(WitnessError::StaleEpoch {
            epoch: 0,
            latest: 1,
            ..
        })
    ));
    db.close().expect("close");
}

#[test]
fn witness_state_file_is_checked_and_replaced_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("witness.state");
    let db = open(&dir.path().join("store"));
    append(&db, 0, 3);
    let note = checkpoint(&db);
    witness_for(&db, &state).cosign(&note, &[]).expect("cosign");
    let text = std::fs::read_to_string(&state).expect("state written");
    assert!(
        text.contains("\"format\": \"trailmix-witness-state v1\""),
        "{text}"
    );
    assert!(!dir.path().join("witness.state.tmp").exists());

    std::fs::write(&state, text.replace("trailmix-witness-state v1", "v0")).expect("write");
    let log = WitnessedLog {
        verifier: db.verifier().clone(),
        hash_algorithm: db.hash_algorithm(),
    };
    assert!(matches!(
        Witness::open(signer(), &state, vec![log]),
        Err(WitnessError::State { .. })
    ));
    db.close().expect("close");
}

fn trusted(note: &str, witnesses: Vec<CosignatureVerifier>) -> VerifyOptions {
    VerifyOptions {
        trusted_checkpoint: Some(note.to_owned()),
        trusted_witnesses: witnesses,
        ..VerifyOptions::default()
    }
}

#[test]
fn verify_with_a_cosigned_anchor_catches_rollback_and_passes_growth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let backup = dir.path().join("backup");
    let state = dir.path().join("witness.state");
    let db = open(&data);
    append(&db, 0, 20);
    let early = checkpoint(&db);
    db.close().expect("close");
    copy_dir(&data, &backup);

    let db = open(&data);
    append(&db, 20, 20);
    let latest = checkpoint(&db);
    let mut witness = witness_for(&db, &state);
    witness.cosign(&early, &[]).expect("cosign early");
    let cosigned = witness
        .cosign(&latest, &proof(&db, &early, &latest))
        .expect("cosign latest")
        .note;
    append(&db, 40, 5);
    db.close().expect("close");
    let witnesses = vec![witness.verifier()];

    // An honest store that grew past the anchor verifies, and says who cosigned it.
    let report = verify_with(&data, &trusted(&cosigned, witnesses.clone()));
    assert!(report.verified(), "{:?}", report.damage);
    assert!(report.trusted.is_some());
    assert_eq!(report.cosignatures.len(), 1);
    assert_eq!(report.cosignatures[0].witness.name, WITNESS);

    // The store rolled back to the backup (a valid, shorter log) is caught.
    let report = verify_with(&backup, &trusted(&cosigned, witnesses.clone()));
    let damage = report.damage.expect("rollback detected");
    assert_eq!(damage.kind, DamageKind::Rollback);
    assert!(
        damage.detail.contains("truncated or rolled back"),
        "{}",
        damage.detail
    );

    // The tail cut below the anchor (the last 10 entries, the cosigned checkpoint among them).
    let cut = dir.path().join("cut");
    copy_dir(&data, &cut);
    let (segments, frames) = layout(&cut);
    truncate(&cut, &segments, &frames, frames.len() - 10);
    let report = verify_with(&cut, &trusted(&cosigned, witnesses.clone()));
    let damage = report.damage.expect("truncation detected");
    assert_eq!(damage.kind, DamageKind::Rollback);
    assert!(
        verify_with(&cut, &VerifyOptions::default()).verified(),
        "a valid shorter log"
    );

    // A cosignature by another witness key is not an anchor.
    let stranger = CosignatureSigner::from_seed("witness.example/w2", &[11; 32]).expect("key");
    let err = trailmix_db::verify_store(&data, &trusted(&cosigned, vec![stranger.verifier()]))
        .expect_err("refused");
    assert!(
        matches!(&err, Error::InvalidOption { reason, .. } if reason.contains("no cosignature by witness")),
        "{err}"
    );
    // A cosignature moved onto another (log-signed) note of the store does not verify.
    let split = cosigned.rfind('\u{2014}').expect("witness line");
    let moved = format!("{}{}", early, &cosigned[split..]);
    let err =
        trailmix_db::verify_store(&data, &trusted(&moved, witnesses.clone())).expect_err("refused");
    assert!(
        matches!(&err, Error::InvalidOption { reason, .. } if reason.contains("does not verify")),
        "{err}"
    );
    // Witness keys without a trusted checkpoint are a usage error.
    let no_note = VerifyOptions {
        trusted_witnesses: witnesses,
        ..VerifyOptions::default()
    };
    assert!(trailmix_db::verify_store(&data, &no_note).is_err());
}
