//! Frame, segment-header, seal and metadata decoding on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    trailmix_wal::fuzz_targets::decode_structures(data);
});
