//! Evidence-pack verification over mutated copies of the committed fixture pack (re-signed or
//! not) and over arbitrary tar archives: never a panic; the untouched pack verifies and an
//! unsigned change never does.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    trailmix_db::pack::fuzz::pack_verify(data);
});
