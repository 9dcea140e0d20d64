//! Guards the auditor's path: inclusion proofs against checkpoints and seals, consistency
//! between checkpoints, each checked with nothing but the public key — and rejected when any
//! part of the bundle is changed.

use trailmix_db::note::NoteVerifier;
use trailmix_db::proof::{verify_consistency_notes, verify_inclusion_bundle};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::HashAlgorithm;
use trailmix_db::{Db, DbOptions};

fn receipt(n: u64) -> Receipt {
    Receipt::builder("acme", format!("evt-{n}"), Kind::ToolCall)
        .app_id("agent")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_700_000_000_000_000_000))
        .output(serde_json::json!({"result": n}))
        .build()
        .expect("valid")
}

fn check_store(alg: HashAlgorithm) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_with(dir.path(), DbOptions::default().hash_algorithm(alg)).expect("open");
    let first: Vec<_> = (0..50)
        .map(|n| db.append_and_wait(&receipt(n)).expect("append"))
        .collect();
    let early = db
        .checkpoint()
        .expect("checkpoint")
        .expect("new checkpoint");
    let sealed = db.seal_epoch().expect("seal").expect("sealed");
    let second: Vec<_> = (50..80)
        .map(|n| db.append_and_wait(&receipt(n)).expect("append"))
        .collect();
    let verifier =
        NoteVerifier::from_vkey(&db.verifier().to_vkey()).expect("public key round trip");

    for position in [first[0], first[31], first[49], second[0], second[29]] {
        let bundle = db.prove(position.seq).expect("prove");
        let proven = verify_inclusion_bundle(&bundle, &verifier).expect("bundle verifies");
        assert_eq!(proven.chain_hash, position.chain_hash);
        assert!(
            proven
                .header
                .expect("receipt header")
                .event_id()
                .starts_with("evt-")
        );

        let mut moved = bundle.clone();
        moved.leaf_index ^= 1;
        assert!(
            verify_inclusion_bundle(&moved, &verifier).is_err(),
            "another index"
        );
        let mut next_seq = bundle.clone();
        next_seq.seq += 1;
        assert!(
            verify_inclusion_bundle(&next_seq, &verifier).is_err(),
            "another seq"
        );
        if !bundle.path.is_empty() {
            let mut shorter = bundle.clone();
            shorter.path.pop();
            assert!(
                verify_inclusion_bundle(&shorter, &verifier).is_err(),
                "a missing element"
            );
        }
        let mut longer = bundle.clone();
        longer
            .path
            .push(longer.path.first().cloned().unwrap_or_default());
        assert!(
            verify_inclusion_bundle(&longer, &verifier).is_err(),
            "an extra element"
        );
        let mut edited = bundle.clone();
        let mut entry = base64_decode(&edited.entry);
        let last = entry.len() - 2;
        entry[last] ^= 1;
        edited.entry = base64_encode(&entry);
        assert!(
            verify_inclusion_bundle(&edited, &verifier).is_err(),
            "an edited entry"
        );
        let other = trailmix_db::note::NoteSigner::generate("someone-else")
            .expect("key")
            .verifier();
        assert!(
            verify_inclusion_bundle(&bundle, &other).is_err(),
            "another key"
        );
    }
    assert_eq!(
        db.prove(first[10].seq)
            .expect("prove")
            .checkpoint
            .lines()
            .nth(1),
        Some(sealed.entries.to_string().as_str()),
        "sealed epochs prove against the seal"
    );

    db.append_and_wait(&receipt(1000)).expect("append");
    let late = db.checkpoint().expect("checkpoint").expect("new");
    assert!(
        db.consistency(&early.note, &late.note).is_err(),
        "different epochs have no consistency proof"
    );
    for n in 80..90 {
        db.append_and_wait(&receipt(n)).expect("append");
    }
    let later = db.checkpoint().expect("checkpoint").expect("new");
    let bundle = db
        .consistency(&late.note, &later.note)
        .expect("consistency");
    verify_consistency_notes(&bundle, &verifier).expect("consistent");
    let mut swapped = bundle.clone();
    std::mem::swap(&mut swapped.old_checkpoint, &mut swapped.new_checkpoint);
    assert!(verify_consistency_notes(&swapped, &verifier).is_err());
    db.close().expect("close");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn inclusion_and_consistency_blake3() {
    check_store(HashAlgorithm::Blake3);
}

#[test]
fn inclusion_and_consistency_sha256() {
    check_store(HashAlgorithm::Sha256);
}

#[test]
fn the_empty_tree_is_consistent_with_every_tree_and_nothing_else_passes() {
    use trailmix_db::merkle::empty_root;
    use trailmix_db::note::{Checkpoint, NoteSigner};
    use trailmix_db::proof::ConsistencyBundle;
    let origin = "example.org/log/epoch/0";
    let signer = NoteSigner::from_seed(origin, &[5; 32]).expect("signer");
    let alg = HashAlgorithm::Blake3;
    let note = |tree_size, root_hash| {
        Checkpoint {
            origin: origin.to_owned(),
            tree_size,
            root_hash,
            extensions: Vec::new(),
        }
        .sign(&[&signer])
        .expect("sign")
    };
    let bundle = |old: String, path: Vec<String>| ConsistencyBundle {
        hash_algorithm: alg.to_string(),
        old_checkpoint: old,
        new_checkpoint: note(7, [3; 32]),
        path,
    };
    let verifier = signer.verifier();
    let empty = note(0, empty_root(alg));
    verify_consistency_notes(&bundle(empty.clone(), Vec::new()), &verifier)
        .expect("the empty tree is a prefix of every tree");
    let with_path = bundle(
        empty,
        vec!["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned()],
    );
    assert!(
        verify_consistency_notes(&with_path, &verifier).is_err(),
        "a path from size 0"
    );
    let wrong_root = bundle(note(0, [9; 32]), Vec::new());
    assert!(
        verify_consistency_notes(&wrong_root, &verifier).is_err(),
        "size 0, another root"
    );
}
