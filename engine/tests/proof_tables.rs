//! Guards the proof tables: every entry of sealed and open epochs proves against its seal or
//! checkpoint from the tables, consistency proofs hold, and a damaged, forged or misplaced
//! table file is rebuilt from the log instead of yielding a wrong proof.

mod common;

use std::path::{Path, PathBuf};

use common::receipt;
use trailmix_db::note::NoteVerifier;
use trailmix_db::proof::{verify_consistency_notes, verify_inclusion_bundle};
use trailmix_db::wal::{HashAlgorithm, Seq};
use trailmix_db::{Db, DbOptions, Error, PROOF_DIR, TABLE_BODY_CONTEXT};

const HEADER_BYTES: usize = 104;

fn options(alg: HashAlgorithm, epoch_records: u64) -> DbOptions {
    DbOptions::default()
        .hash_algorithm(alg)
        .epoch_records_max(epoch_records)
        .checkpoint_every_records(1_000_000)
}

fn verifier(db: &Db) -> NoteVerifier {
    NoteVerifier::from_vkey(&db.verifier().to_vkey()).expect("public key")
}

/// Proves every seq below `end` that is a leaf; returns how many proved.
fn prove_all(db: &Db, end: u64) -> usize {
    let verifier = verifier(db);
    let mut proved = 0;
    for seq in 0..end {
        match db.prove(Seq(seq)) {
            Ok(bundle) => {
                verify_inclusion_bundle(&bundle, &verifier)
                    .unwrap_or_else(|e| panic!("seq {seq}: {e}"));
                assert_eq!(bundle.seq, seq);
                proved += 1;
            }
            Err(Error::NotFound { detail, .. }) if detail.contains("seal") => {}
            Err(e) => panic!("seq {seq}: {e}"),
        }
    }
    proved
}

fn table_file(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(PROOF_DIR).join(format!("epoch-{epoch:016}.nodes"))
}

#[test]
fn every_entry_proves_in_sealed_and_open_epochs() {
    for alg in [HashAlgorithm::Blake3, HashAlgorithm::Sha256] {
        let dir = tempfile::tempdir().expect("tempdir");
        // 700-entry epochs: interior nodes at levels 6..9 and a ragged right edge.
        let db = Db::open_with(dir.path(), options(alg, 700)).expect("open");
        for n in 0..1_650 {
            db.append(&receipt("acme", n, 20)).expect("append");
        }
        let end = db.sync().expect("sync").0;
        let proved = prove_all(&db, end);
        // Every entry but the seals (two epochs sealed) is a leaf.
        assert_eq!(proved as u64, end - 2, "{alg}");
        for epoch in [0, 1] {
            assert!(
                table_file(dir.path(), epoch).is_file(),
                "{alg} epoch {epoch}"
            );
        }
        assert!(
            !table_file(dir.path(), 2).exists(),
            "the open epoch stays in memory"
        );
    }
}

#[test]
fn consistency_between_every_pair_of_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), options(HashAlgorithm::Blake3, 1 << 20)).expect("open");
    let mut notes = Vec::new();
    for round in 0..6u64 {
        for n in 0..(37 + round * 61) {
            db.append(&receipt("acme", round * 1_000 + n, 8))
                .expect("append");
        }
        db.sync().expect("sync");
        notes.push(db.checkpoint().expect("checkpoint").expect("new").note);
        // Proofs in between grow the open epoch's table; consistency must not depend on it.
        prove_all(&db, 3);
    }
    let verifier = verifier(&db);
    for (i, old) in notes.iter().enumerate() {
        for new in &notes[i..] {
            let bundle = db.consistency(old, new).expect("consistency");
            verify_consistency_notes(&bundle, &verifier).expect("consistent");
        }
    }
}

/// A store with one sealed 500-entry epoch and its table file; returns the file's bytes.
fn sealed_store(dir: &Path) -> Vec<u8> {
    let db = Db::open_with(dir, options(HashAlgorithm::Blake3, 1 << 20)).expect("open");
    for n in 0..499 {
        db.append(&receipt("acme", n, 20)).expect("append");
    }
    db.sync().expect("sync");
    db.seal_epoch().expect("seal").expect("sealed");
    db.prove(Seq(5)).expect("prove");
    db.close().expect("close");
    std::fs::read(table_file(dir, 0)).expect("table written at the first proof")
}

fn reopen_and_prove_all(dir: &Path) {
    let db = Db::open_with(dir, options(HashAlgorithm::Blake3, 1 << 20)).expect("reopen");
    assert_eq!(prove_all(&db, 500), 500);
    db.close().expect("close");
}

#[test]
fn a_torn_or_flipped_table_file_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = sealed_store(dir.path());
    let file = table_file(dir.path(), 0);
    // 500 leaves at base level 6: 7 + 3 + 1 interior nodes.
    assert_eq!(original.len(), HEADER_BYTES + 11 * 32);

    let mut flipped = original.clone();
    flipped[HEADER_BYTES + 40] ^= 0x10;
    std::fs::write(&file, &flipped).expect("write");
    reopen_and_prove_all(dir.path());
    assert_eq!(std::fs::read(&file).expect("read"), original, "rewritten");

    std::fs::write(&file, &original[..original.len() - 7]).expect("truncate");
    reopen_and_prove_all(dir.path());
    assert_eq!(std::fs::read(&file).expect("read"), original, "rewritten");
}

#[test]
fn a_forged_table_file_never_yields_a_wrong_proof() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = sealed_store(dir.path());
    let file = table_file(dir.path(), 0);
    // Node 0 is the level-6 subtree of leaves 0..64: off the root's path (the root folds the
    // level-8, level-7 and level-6 nodes at the right edge), so the file passes its root check
    // and only the proofs of leaves 64..128, whose path uses it, can notice.
    let mut forged = original.clone();
    forged[HEADER_BYTES..HEADER_BYTES + 32].copy_from_slice(&[0xAB; 32]);
    let body_checksum = blake3::Hasher::new_derive_key(TABLE_BODY_CONTEXT)
        .update(&forged[HEADER_BYTES..])
        .finalize();
    forged[72..104].copy_from_slice(body_checksum.as_bytes());
    std::fs::write(&file, &forged).expect("write");

    let db = Db::open_with(dir.path(), options(HashAlgorithm::Blake3, 1 << 20)).expect("reopen");
    let bundle = db.prove(Seq(100)).expect("prove");
    verify_inclusion_bundle(&bundle, &verifier(&db)).expect("a proof that verifies");
    db.close().expect("close");
    assert_eq!(std::fs::read(&file).expect("read"), original, "rebuilt");
}

#[test]
fn another_epochs_table_under_this_name_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), options(HashAlgorithm::Blake3, 300)).expect("open");
    for n in 0..700 {
        db.append(&receipt("acme", n, 20)).expect("append");
    }
    db.sync().expect("sync");
    prove_all(&db, 602);
    db.close().expect("close");
    let (zero, one) = (table_file(dir.path(), 0), table_file(dir.path(), 1));
    let one_bytes = std::fs::read(&one).expect("epoch 1 table");
    std::fs::copy(&zero, &one).expect("swap");
    reopen_and_prove_all_to(dir.path(), 602);
    assert_eq!(std::fs::read(&one).expect("read"), one_bytes, "rebuilt");
}

fn reopen_and_prove_all_to(dir: &Path, end: u64) {
    let db = Db::open_with(dir, options(HashAlgorithm::Blake3, 300)).expect("reopen");
    prove_all(&db, end);
    db.close().expect("close");
}
