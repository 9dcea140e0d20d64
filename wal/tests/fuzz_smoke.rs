//! Runs the WAL's fuzz target bodies as seeded, bounded loops so that every `cargo test`
//! exercises decoding and recovery over arbitrary and mutated segment files.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_wal::fuzz_targets::{decode_structures, recover_segment, seed_segment};

fn iterations() -> u64 {
    std::env::var("TRAILMIX_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

#[test]
fn decoders_survive_random_bytes() {
    let mut rng = SmallRng::seed_from_u64(0xF00D);
    for _ in 0..iterations() * 10 {
        let len = rng.random_range(0..512);
        let mut data = vec![0u8; len];
        rng.fill(&mut data[..]);
        decode_structures(&data);
    }
}

#[test]
fn recovery_survives_mutated_segments() {
    let seed_image = seed_segment(40);
    assert!(seed_image.len() > 4096, "the seed segment was built");
    recover_segment(&seed_image); // the unmutated image must recover cleanly too
    let seed = std::env::var("TRAILMIX_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00C0_FFEE_u64);
    let mut rng = SmallRng::seed_from_u64(seed);
    for round in 0..iterations() {
        let mut image = seed_image.clone();
        let edits = rng.random_range(1..8);
        for _ in 0..edits {
            let at = rng.random_range(0..image.len());
            match rng.random_range(0..3) {
                0 => image[at] ^= 1 << rng.random_range(0..8),
                1 => image[at] = rng.random(),
                _ => {
                    let end = (at + rng.random_range(1..600)).min(image.len());
                    image[at..end].fill(0);
                }
            }
        }
        let outcome = std::panic::catch_unwind(|| recover_segment(&image));
        assert!(
            outcome.is_ok(),
            "recover_segment panicked in round {round} (TRAILMIX_FUZZ_SEED={seed})"
        );
    }
}

/// Writes the seed corpus for `fuzz/` when `TRAILMIX_WRITE_FUZZ_CORPUS=1`.
#[test]
fn write_fuzz_corpus_on_request() {
    if std::env::var("TRAILMIX_WRITE_FUZZ_CORPUS").as_deref() != Ok("1") {
        return;
    }
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    std::fs::write(corpus.join("wal_recover/valid-segment"), seed_segment(40))
        .expect("write corpus");
    std::fs::write(
        corpus.join("wal_decode/valid-segment-head"),
        &seed_segment(10)[..4096 + 512],
    )
    .expect("write corpus");
}
