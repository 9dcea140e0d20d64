//! Property tests of the receipt model: header decoding never panics and accepts only canonical
//! bytes, every valid header and receipt round-trips (binary and JSON), and the canonical
//! payload does not depend on how the event JSON was written.

use proptest::prelude::*;
use serde_json::{Value, json};
use trailmix_db::receipt::{
    MAX_HEADER_BYTES, MAX_SAFE_INTEGER, Receipt, ReceiptHeader, fuzz_from_json,
};

mod strategies;

use strategies::*;

/// Arbitrary JSON within the payload rules (exact integers, finite doubles, any strings).
fn json_value() -> impl Strategy<Value = Value> {
    let max = i64::try_from(MAX_SAFE_INTEGER).expect("fits");
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-max..=max).prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
        "[\\x00-\\x1f\"\\\\a-z]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON text of `v` with object keys reversed and whitespace everywhere.
fn write_odd(out: &mut String, v: &Value) {
    match v {
        Value::Object(m) => {
            out.push_str("{\n");
            let mut entries: Vec<_> = m.iter().collect();
            entries.reverse();
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(" ,\t");
                }
                out.push_str(&serde_json::to_string(k).expect("key"));
                out.push_str(" : ");
                write_odd(out, v);
            }
            out.push_str("\r\n}");
        }
        Value::Array(a) => {
            out.push_str("[ ");
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(" ,\n");
                }
                write_odd(out, v);
            }
            out.push_str(" ]");
        }
        other => out.push_str(&other.to_string()),
    }
}

fn base() -> Value {
    json!({
        "event_id": "e", "tenant_id": "t", "app_id": "a", "kind": "llm_call",
        "actor_type": "agent", "ts": "2026-01-01T00:00:00Z"
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_never_panics_and_accepts_only_canonical_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..300)
    ) {
        if let Ok(h) = ReceiptHeader::decode(&bytes) {
            prop_assert_eq!(h.encode(), bytes);
        }
    }

    #[test]
    fn decode_never_panics_on_mutated_headers(
        f in fields(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6)
    ) {
        let mut bytes = build(f).header().encode();
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
        }
        if let Ok(h) = ReceiptHeader::decode(&bytes) {
            prop_assert_eq!(h.encode(), bytes);
        }
    }

    #[test]
    fn valid_headers_round_trip(f in fields()) {
        let r = build(f);
        let bytes = r.header().encode();
        prop_assert_eq!(bytes.len(), r.header().encoded_len());
        prop_assert!(bytes.len() <= MAX_HEADER_BYTES);
        let decoded = ReceiptHeader::decode(&bytes);
        prop_assert_eq!(decoded.as_ref(), Ok(r.header()));
        let json = r.to_sdk_json();
        let parsed = Receipt::from_json(&json);
        prop_assert_eq!(parsed.as_ref(), Ok(&r));
        let joined = Receipt::from_parts(r.header(), r.payload());
        prop_assert_eq!(joined.as_ref(), Ok(&r));
        // Opening a store reads only the ids: they must be the full decode's.
        prop_assert_eq!(
            ReceiptHeader::peek_ids(&bytes),
            Ok((r.header().tenant_id(), r.header().event_id()))
        );
    }

    #[test]
    fn peeking_ids_reads_a_prefix_only_and_never_panics(
        f in fields(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let bytes = build(f).header().encode();
        let ids = ReceiptHeader::peek_ids(&bytes).expect("valid header");
        // It reads a prefix: every cut before its end is truncated, every longer one gives
        // the same ids. The prefix holds at least version, flags, time, two tags and the ids.
        let end = (0..=bytes.len())
            .find(|&n| ReceiptHeader::peek_ids(&bytes[..n]).is_ok())
            .expect("the whole header is accepted");
        prop_assert!(end >= 1 + 2 + 8 + 1 + 1 + 1 + ids.0.len() + 1 + ids.1.len());
        for n in end..=bytes.len() {
            prop_assert_eq!(ReceiptHeader::peek_ids(&bytes[..n]), Ok(ids));
        }
        let mut mutated = bytes.clone();
        let at = flip.0.index(mutated.len());
        mutated[at] ^= flip.1.max(1);
        // Wherever a flip lands, a header that still decodes in full peeks the same ids.
        if let Ok(header) = ReceiptHeader::decode(&mutated) {
            prop_assert_eq!(
                ReceiptHeader::peek_ids(&mutated),
                Ok((header.tenant_id(), header.event_id()))
            );
        }
    }

    #[test]
    fn canonical_payload_is_independent_of_formatting(v in json_value(), extra in json_value()) {
        let event = {
            let mut e = base();
            e["input"] = v;
            e["zz_extra"] = extra;
            e
        };
        let r = Receipt::from_json_value(event.clone()).expect("valid payload");
        let mut odd = String::new();
        write_odd(&mut odd, &event);
        let again = Receipt::from_json(&odd).expect("same event, odd formatting");
        prop_assert_eq!(again.payload(), r.payload());
        let pretty = serde_json::to_string_pretty(&event).expect("pretty");
        let from_pretty = Receipt::from_json(&pretty).expect("pretty");
        prop_assert_eq!(from_pretty.payload(), r.payload());
        // Canonical text is a fixed point.
        let printed = r.to_sdk_json();
        let reparsed = Receipt::from_json(&printed).expect("printed");
        prop_assert_eq!(reparsed.to_sdk_json(), printed);
        prop_assert_eq!(reparsed, r);
    }

    #[test]
    fn fuzz_entry_point_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        fuzz_from_json(&bytes);
    }

    #[test]
    fn fuzz_entry_point_on_json_shaped_text(v in json_value(), key in "[a-z_]{1,12}") {
        let mut event = base();
        event[key] = v;
        fuzz_from_json(event.to_string().as_bytes());
    }
}
