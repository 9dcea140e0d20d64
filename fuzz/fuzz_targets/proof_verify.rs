//! Inclusion and consistency proof verification (raw and as auditor bundles) over real trees
//! and fuzz-mutated proofs: what verifies is the real proof.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    trailmix_db::fuzz::proof_verify(data);
});
