//! Query filter, query and cursor text (and cursor bytes) on arbitrary input: a typed error or
//! a value whose `Display` parses back to it and that runs like brute force.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    trailmix_query::fuzz::filter_parse(data);
});
