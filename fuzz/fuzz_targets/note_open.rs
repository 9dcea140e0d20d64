//! Signed-note and checkpoint-body parsing on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    trailmix_db::note::fuzz_open(data);
});
