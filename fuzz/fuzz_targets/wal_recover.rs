//! Recovery (writer and read-only) over an arbitrary segment file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    trailmix_wal::fuzz_targets::recover_segment(data);
});
