//! `ReceiptHeader` holds its encoded bytes and borrows its fields from them: built, encoded and
//! decoded again, every accessor gives back the fields it was built from; two headers are equal
//! (and hash alike) exactly when their fields are; `Debug` prints fields, as it did when the
//! header was a struct of fields.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use proptest::prelude::*;
use trailmix_db::receipt::{Receipt, ReceiptHeader};

mod strategies;

use strategies::*;

fn hash_of(h: &ReceiptHeader) -> u64 {
    let mut hasher = DefaultHasher::new();
    h.hash(&mut hasher);
    hasher.finish()
}

/// Asserts that every accessor of `h` gives the field of `f`.
fn assert_fields(h: &ReceiptHeader, f: &Fields) -> Result<(), TestCaseError> {
    prop_assert_eq!(h.tenant_id(), f.tenant.as_str());
    prop_assert_eq!(h.event_id(), f.event.as_str());
    prop_assert_eq!(h.app_id(), f.app.as_str());
    prop_assert_eq!(h.kind(), &f.kind);
    prop_assert_eq!(h.actor_type(), &f.actor);
    prop_assert_eq!(h.event_time().as_unix_nanos(), f.time);
    let ids = [
        h.session_id(),
        h.parent_id(),
        h.subject_id(),
        h.model_name(),
        h.model_version(),
        h.model_provider(),
        h.policy_id(),
    ];
    prop_assert_eq!(ids, f.optional_ids.each_ref().map(Option::as_deref));
    prop_assert_eq!(h.decision(), f.decision.as_ref());
    prop_assert_eq!(h.retention_class(), f.retention.as_deref());
    prop_assert_eq!(h.labels(), &f.labels);
    Ok(())
}

/// The fields as one comparable value.
fn key(f: &Fields) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        (&f.tenant, &f.event, &f.app, &f.kind, &f.actor, f.time),
        &f.optional_ids,
        &f.decision,
        &f.retention,
        &f.labels,
    )
}

/// `f` with field number `which` (0..=13) taken from `g`.
fn with_field_of(mut f: Fields, g: &Fields, which: usize) -> Fields {
    match which {
        0 => f.tenant.clone_from(&g.tenant),
        1 => f.event.clone_from(&g.event),
        2 => f.app.clone_from(&g.app),
        3 => f.kind = g.kind.clone(),
        4 => f.actor = g.actor.clone(),
        5 => f.time = g.time,
        6..=12 => f.optional_ids[which - 6].clone_from(&g.optional_ids[which - 6]),
        13 => f.decision.clone_from(&g.decision),
        14 => f.retention.clone_from(&g.retention),
        _ => f.labels.clone_from(&g.labels),
    }
    f
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accessors_give_the_built_fields_before_and_after_decoding(f in fields()) {
        let built = build(f.clone());
        let header = built.header();
        assert_fields(header, &f)?;
        let bytes = header.encode();
        prop_assert_eq!(bytes.len(), header.encoded_len());
        let mut appended = vec![0xAA];
        header.encode_into(&mut appended);
        prop_assert_eq!(&appended[1..], &bytes[..]);
        let decoded = ReceiptHeader::decode(&bytes).expect("an encoded header decodes");
        assert_fields(&decoded, &f)?;
        prop_assert_eq!(decoded.encode(), bytes);
        prop_assert_eq!(format!("{decoded:?}"), format!("{header:?}"));
        prop_assert_eq!(&decoded.clone(), header);
        // The decoded header's JSON shape (labels read from the bytes) is the built one's.
        prop_assert_eq!(decoded.to_sdk_json_value(), header.to_sdk_json_value());
        let joined = Receipt::from_parts(&decoded, built.payload()).expect("joins");
        prop_assert_eq!(&joined, &built);
    }

    #[test]
    fn headers_are_equal_exactly_when_their_fields_are(
        f in fields(),
        g in fields(),
        mode in 0..3_u8,
        which in 0..16_usize,
    ) {
        let g = match mode {
            0 => f.clone(),
            1 => with_field_of(f.clone(), &g, which),
            _ => g,
        };
        let same_fields = key(&f) == key(&g);
        let (a, b) = (build(f.clone()), build(g.clone()));
        // Decoded from bytes on one side, built on the other: equality may not depend on how
        // a header was made (nor on whether its labels were asked for).
        let b = ReceiptHeader::decode(&b.header().encode()).expect("decodes");
        prop_assert_eq!(a.header() == &b, same_fields, "{:?} vs {:?}", key(&f), key(&g));
        prop_assert_eq!(&b == a.header(), same_fields);
        if same_fields {
            prop_assert_eq!(hash_of(a.header()), hash_of(&b));
        }
    }
}

#[test]
fn debug_prints_fields_not_bytes() {
    let receipt = Receipt::from_json(
        r#"{"event_id":"evt-1","tenant_id":"acme","app_id":"bot","kind":"llm_call",
            "actor_type":"agent","ts":"2026-03-01T12:04:05Z","session_id":"s-1",
            "policy_eval":{"decision":"deny"},"labels":{"env":"prod"}}"#,
    )
    .expect("valid");
    let decoded = ReceiptHeader::decode(&receipt.header().encode()).expect("decodes");
    assert_eq!(format!("{decoded:?}"), EXPECTED_DEBUG);
    assert_eq!(format!("{:?}", receipt.header()), EXPECTED_DEBUG);
}

/// The `Debug` output of the header above as the field-per-member struct's derived `Debug`
/// printed it (taken from the build before the header held its bytes).
const EXPECTED_DEBUG: &str = concat!(
    r#"ReceiptHeader { event_id: "evt-1", tenant_id: "acme", app_id: "bot", "#,
    r#"session_id: Some("s-1"), parent_id: None, subject_id: None, kind: LlmCall, "#,
    r#"actor_type: Agent, event_time: Timestamp(1772366645000000000), model_name: None, "#,
    r#"model_version: None, model_provider: None, policy_id: None, decision: Some(Deny), "#,
    r#"retention_class: None, labels: {"env": "prod"} }"#,
);
