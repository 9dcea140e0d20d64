//! Guards the engine's `proof_verify`, `db_ops` and `pack_verify` fuzz target bodies as seeded,
//! bounded loops so that every `cargo test` runs them: mutated Merkle proofs and bundles verify
//! only when they are the real ones, random `Db` operation sequences with crashes and reopens
//! keep every acknowledged receipt and answer queries like the model, and mutated evidence
//! packs never panic the verifier and never verify unless re-signed.

use std::path::{Path, PathBuf};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_db::fuzz::{DB_OPS_MAX, db_ops, proof_verify};

fn iterations() -> u64 {
    std::env::var("TRAILMIX_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn seed() -> u64 {
    std::env::var("TRAILMIX_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00C0_FFEE)
}

fn random_bytes(rng: &mut SmallRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.random()).collect()
}

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/rfc6962-merkle")
}

/// A vector's hash as 32 bytes (a few vectors hold placeholders of other lengths).
fn hash32(value: &serde_json::Value) -> [u8; 32] {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap_or(""))
        .expect("vector base64");
    let mut out = [0; 32];
    let n = bytes.len().min(32);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

/// `proof_verify`'s raw mode (SHA-256) fed one RFC 6962 vector: sizes, leaf, root, path.
fn raw_input(a: u64, b: u64, x: &[u8; 32], y: &[u8; 32], path: &[[u8; 32]]) -> Vec<u8> {
    let mut data = vec![(2 << 1) | 1];
    data.extend_from_slice(&a.to_le_bytes());
    data.extend_from_slice(&b.to_le_bytes());
    data.extend_from_slice(x);
    data.extend_from_slice(y);
    data.push(u8::try_from(path.len()).expect("short path"));
    for hash in path {
        data.extend_from_slice(hash);
    }
    data
}

/// Seeds for `proof_verify`: each mode with a little input, and the conformance vectors (valid
/// and invalid) in raw mode, when the shared vectors are present.
fn proof_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for mode in 0..4u8 {
        for alg in 0..2u8 {
            let head = (mode << 1) | alg;
            let leaves = if alg == 0 { 40 } else { 255 };
            seeds.push(vec![
                head, leaves, 0, 0, 7, 3, 9, 0, 5, 0, 2, 1, 0, 3, 4, 9, 9,
            ]);
        }
    }
    for (dir, inclusion) in [("inclusion", true), ("consistency", false)] {
        for sub in ["1", "2", "3", "4", "additional"] {
            let Ok(entries) = std::fs::read_dir(vectors().join(dir).join(sub)) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            // The valid proof first, then a few of its mutations.
            files.sort_by_key(|p| (!p.ends_with("happy-path.json"), p.clone()));
            for file in files.iter().take(2) {
                let text = std::fs::read_to_string(file).expect("vector");
                let vector: serde_json::Value = serde_json::from_str(&text).expect("vector json");
                let path: Vec<[u8; 32]> = vector["proof"]
                    .as_array()
                    .map(|p| p.iter().map(hash32).collect())
                    .unwrap_or_default();
                let [size_a, size_b, hash_a, hash_b] = if inclusion {
                    ["leafIdx", "treeSize", "leafHash", "root"]
                } else {
                    ["size1", "size2", "root1", "root2"]
                };
                seeds.push(raw_input(
                    vector[size_a].as_u64().unwrap_or(0),
                    vector[size_b].as_u64().unwrap_or(0),
                    &hash32(&vector[hash_a]),
                    &hash32(&vector[hash_b]),
                    &path,
                ));
            }
        }
    }
    seeds
}

#[test]
fn proof_verification_survives_random_and_mutated_inputs() {
    let seeds = proof_seeds();
    for s in &seeds {
        proof_verify(s);
    }
    let mut rng = SmallRng::seed_from_u64(seed());
    for _ in 0..iterations() * 4 {
        let data = if rng.random_bool(0.5) {
            let mut data = seeds[rng.random_range(0..seeds.len())].clone();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..data.len());
                data[at] = rng.random();
            }
            let extra = rng.random_range(0..24);
            data.extend(random_bytes(&mut rng, extra));
            data
        } else {
            let len = rng.random_range(1..160);
            random_bytes(&mut rng, len)
        };
        proof_verify(&data);
    }
}

/// Random operation sequences over the whole `Db` API, crashes included.
#[test]
fn db_operations_match_the_model() {
    let mut rng = SmallRng::seed_from_u64(seed());
    let rounds = (iterations() / 30).max(1);
    for round in 0..rounds {
        let dir = tempfile::tempdir().expect("tempdir");
        let len = rng.random_range(8..DB_OPS_MAX * 4);
        let data = random_bytes(&mut rng, len);
        let outcome = std::panic::catch_unwind(|| db_ops(&data, dir.path()));
        assert!(
            outcome.is_ok(),
            "db_ops panicked in round {round} (TRAILMIX_FUZZ_SEED={}) on {data:?}",
            seed()
        );
    }
}

/// Seeds for `db_ops`: three option bytes, then operations (an opcode byte `% 21` and its
/// arguments; see `Run::step` in `engine/src/fuzz.rs`).
fn db_seeds() -> Vec<Vec<u8>> {
    vec![
        [
            &[0, 5, 23][..],
            &[0, 0, 0, 0, 0, 0], // append acme e0 (variant 0)
            &[0, 1, 0, 0, 0, 1], // append globex e0
            &[0, 0, 0, 0, 0, 0], // the same receipt again: the same position
            &[0, 0, 0, 0, 0, 2], // another receipt under acme e0: a conflict
            &[0, 2, 0, 1, 0, 3], // append initech e1
            // A batch of four: acme e1, globex e1, acme e1 again (the first item's position),
            // acme e0 as another receipt (a conflict for that item only).
            &[
                17, 3, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2,
            ],
            &[17, 1, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 1], // acme e2 twice, differing: a conflict
            &[6],                                      // checkpoint
            &[9, 1, 0, 2, 0],                          // query tenant=acme, limit 3, as a struct
            &[9, 33, 0, 0, 1],                         // query by event time, limit 1, as text
            &[18, 3],             // power loss three storage operations from now
            &[9, 48, 0, 1, 2],    // query by event time descending through a tenant view
            &[12, 0, 0, 0, 0, 0], // find acme e0
            &[13, 0, 0, 0],       // read and prove the first receipt
            &[14, 0, 0, 0, 0],    // consistency between checkpoints
        ]
        .concat(),
        [
            &[3, 2, 2][..],
            &[4, 0, 0, 1, 4, 1, 0, 2, 4, 2, 0, 3], // three appends in flight
            &[18, 0],                              // power loss now
            &[4, 0, 0, 0, 4, 1, 0, 1],             // two more in flight
            &[19, 0],                              // drop without close
            &[4, 2, 0, 2],                         // one more in flight
            &[19, 1],                              // close
            &[9, 15, 7, 3, 4, 7, 0],               // query with every filter field
            &[15, 16],                             // check the index, verify the log
            &[0, 0, 0, 5, 0, 1],                   // append acme e5
        ]
        .concat(),
        [
            &[0x21, 0, 20][..],
            &[0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 2, 0, 2, 0, 0], // three appends
            &[7],                                                    // seal
            &[0, 0, 0, 3, 0, 1, 6],                                  // append, checkpoint
            &[13, 0, 0, 0, 13, 2, 0, 0],                             // prove in both epochs
            &[14, 0, 0, 0, 0, 0, 1, 0, 4, 0, 2, 6, 14, 1, 0, 0, 0],  // consistency
            &[9, 40, 0, 2, 0],                                       // time range, by time
        ]
        .concat(),
        [
            &[4, 10, 23][..],                            // Durability::Written
            &[0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1],       // two appends
            &[8],                                        // sync: durable from here
            &[0, 2, 0, 2, 0, 2, 4, 0, 0, 3, 4, 1, 0, 1], // written, and two in flight
            &[18, 9],            // power loss: what was not synced may go, as a suffix
            &[9, 0, 0, 0, 0],    // query everything
            &[0, 2, 0, 2, 0, 2], // the same receipt again (a new one if it was lost)
        ]
        .concat(),
    ]
}

#[test]
fn db_seeds_run() {
    for seed in db_seeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        db_ops(&seed, dir.path());
    }
}

/// Writes the seed corpora for `fuzz/` when `TRAILMIX_WRITE_FUZZ_CORPUS=1`.
#[test]
fn write_fuzz_corpus_on_request() {
    if std::env::var("TRAILMIX_WRITE_FUZZ_CORPUS").as_deref() != Ok("1") {
        return;
    }
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, seeds) in [("proof_verify", proof_seeds()), ("db_ops", db_seeds())] {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).expect("write corpus");
        }
    }
}

/// The `pack_verify` body over the committed fixture pack: mutated packs (re-signed or not)
/// never panic, the untouched one verifies, unsigned changes are rejected.
#[test]
fn pack_verification_survives_mutated_packs() {
    use trailmix_db::pack::fuzz::pack_verify;
    pack_verify(&[0]);
    pack_verify(&[1]);
    let archive = trailmix_db::pack::fuzz::fixture_pack()
        .to_archive()
        .expect("archive");
    pack_verify(&[[2].as_slice(), &archive].concat());
    // The committed seeds of the cargo-fuzz target (among them edits of shreds.jsonl).
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pack_verify");
    for entry in std::fs::read_dir(corpus).expect("pack_verify corpus") {
        let path = entry.expect("corpus entry").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        {
            pack_verify(&std::fs::read(&path).expect("seed"));
        }
    }
    let mut rng = SmallRng::seed_from_u64(seed());
    for _ in 0..iterations() {
        let mode: u8 = rng.random_range(0..4);
        let data = if mode & 2 == 0 {
            let ops = rng.random_range(1..5) * 4;
            [vec![mode], random_bytes(&mut rng, ops)].concat()
        } else {
            let mut bytes = archive.clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            [vec![mode], bytes].concat()
        };
        pack_verify(&data);
    }
}
