//! SDK event JSON parsing and validation on arbitrary bytes (and the round trips of what parses).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    trailmix_db::receipt::fuzz_from_json(data);
});
