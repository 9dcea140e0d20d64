//! The indexer's borrowed header reader (`HeaderFieldReader`) gives exactly the index fields
//! of `ReceiptHeader::decode` on valid headers, refuses exactly the headers decode refuses,
//! and its label reuse between neighbouring receipts never hands one receipt another's labels.

use proptest::prelude::*;
use trailmix_db::indexer::compare_header_fields_with_decode as compare;

mod strategies;

use strategies::*;

/// Applies byte edits (replace, truncate, insert) to `bytes`.
fn mutate(mut bytes: Vec<u8>, edits: &[(prop::sample::Index, u8, u8)]) -> Vec<u8> {
    for (at, byte, op) in edits {
        if bytes.is_empty() {
            break;
        }
        let i = at.index(bytes.len());
        match op {
            0 => bytes[i] = *byte,
            1 => bytes.truncate(i),
            _ => bytes.insert(i, *byte),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_headers_read_as_decoded(fs in proptest::collection::vec(fields(), 1..6)) {
        let headers: Vec<Vec<u8>> = fs.into_iter().map(|f| build(f).header().encode()).collect();
        prop_assert_eq!(compare(&headers), Ok(headers.len()));
    }

    #[test]
    fn neighbours_sharing_labels_read_as_decoded(f in fields(), g in fields(), same in any::<bool>()) {
        // Two receipts with the same label bytes (the reuse path), one whose label section has
        // the same length but another value, then the first again.
        let mut g = g;
        if same {
            g.labels = f.labels.clone();
        }
        let mut h = f.clone();
        if let Some(v) = h.labels.values_mut().next() {
            let filler = if v.starts_with('x') { "y" } else { "x" };
            *v = filler.repeat(v.len());
        } else {
            h.labels.insert("k".to_owned(), String::new());
        }
        let first = build(f).header().encode();
        let headers = vec![
            first.clone(),
            build(g).header().encode(),
            first.clone(),
            build(h).header().encode(),
            first,
        ];
        prop_assert_eq!(compare(&headers), Ok(5));
    }

    #[test]
    fn damaged_headers_are_refused_as_decode_refuses(
        fs in proptest::collection::vec(fields(), 1..4),
        edits in proptest::collection::vec(
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 0..4),
            1..4,
        ),
    ) {
        // Valid and damaged headers interleaved, so that a refused label section sits between
        // ones the reader keeps.
        let mut headers = Vec::new();
        for (i, f) in fs.into_iter().enumerate() {
            let bytes = build(f).header().encode();
            headers.push(bytes.clone());
            headers.push(mutate(bytes.clone(), &edits[i % edits.len()]));
            headers.push(bytes);
        }
        prop_assert!(compare(&headers).is_ok(), "{:?}", compare(&headers));
    }

    #[test]
    fn arbitrary_bytes_are_refused_as_decode_refuses(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let result = compare(std::slice::from_ref(&bytes));
        prop_assert!(result.is_ok(), "{:?}", result);
    }
}
