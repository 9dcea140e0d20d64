//! The indexer's borrowed header reader (`HeaderFieldReader`) gives exactly the index fields
//! of `ReceiptHeader::decode` on valid headers, refuses exactly the headers decode refuses,
//! and its label reuse between neighbouring receipts never hands one receipt another's labels.

use std::collections::BTreeMap;

use proptest::prelude::*;
use trailmix_db::indexer::compare_header_fields_with_decode as compare;
use trailmix_db::receipt::{ActorType, Decision, Kind, MAX_LABELS, Receipt, Timestamp};

/// Printable ASCII without spaces, 1..=128 bytes.
const ID: &str = "[!-~]{1,128}";
const TENANT: &str = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}";
const NAME: &str = "[a-z][a-z0-9_.-]{0,63}";
const RETENTION: &str = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}";
const LABEL_KEY: &str = "[A-Za-z0-9][A-Za-z0-9._/-]{0,63}";
/// At most 64 characters of at most 4 bytes: within the 256-byte value limit.
const LABEL_VALUE: &str = "\\PC{0,64}";

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        proptest::sample::select(Kind::BUILT_IN.to_vec()),
        NAME.prop_map(|n| Kind::parse(&n).expect("valid name")),
    ]
}

fn actor() -> impl Strategy<Value = ActorType> {
    prop_oneof![
        proptest::sample::select(ActorType::BUILT_IN.to_vec()),
        NAME.prop_map(|n| ActorType::parse(&n).expect("valid name")),
    ]
}

fn decision() -> impl Strategy<Value = Decision> {
    prop_oneof![
        proptest::sample::select(Decision::BUILT_IN.to_vec()),
        NAME.prop_map(|n| Decision::parse(&n).expect("valid name")),
    ]
}

#[derive(Debug, Clone)]
struct Fields {
    tenant: String,
    event: String,
    app: String,
    kind: Kind,
    actor: ActorType,
    time: i64,
    optional_ids: [Option<String>; 7],
    decision: Option<Decision>,
    retention: Option<String>,
    labels: BTreeMap<String, String>,
}

fn fields() -> impl Strategy<Value = Fields> {
    let ids = proptest::array::uniform7(proptest::option::of(ID));
    (
        (TENANT, ID, ID, kind(), actor(), any::<i64>()),
        ids,
        proptest::option::of(decision()),
        proptest::option::of(RETENTION),
        prop_oneof![
            9 => proptest::collection::btree_map(LABEL_KEY, LABEL_VALUE, 0..=4),
            1 => proptest::collection::btree_map(LABEL_KEY, LABEL_VALUE, 0..=MAX_LABELS),
        ],
    )
        .prop_map(
            |(
                (tenant, event, app, kind, actor, time),
                optional_ids,
                decision,
                retention,
                labels,
            )| {
                Fields {
                    tenant,
                    event,
                    app,
                    kind,
                    actor,
                    time,
                    optional_ids,
                    decision,
                    retention,
                    labels,
                }
            },
        )
}

fn build(f: Fields) -> Receipt {
    let mut b = Receipt::builder(f.tenant, f.event, f.kind)
        .app_id(f.app)
        .actor_type(f.actor)
        .event_time(Timestamp::from_unix_nanos(f.time));
    let [session, parent, subject, name, version, provider, policy] = f.optional_ids;
    if let Some(v) = session {
        b = b.session_id(v);
    }
    if let Some(v) = parent {
        b = b.parent_id(v);
    }
    if let Some(v) = subject {
        b = b.subject_id(v);
    }
    if let Some(v) = name {
        b = b.model_name(v);
    }
    if let Some(v) = version {
        b = b.model_version(v);
    }
    if let Some(v) = provider {
        b = b.model_provider(v);
    }
    if let Some(v) = policy {
        b = b.policy_id(v);
    }
    if let Some(d) = f.decision {
        b = b.decision(d);
    }
    if let Some(r) = f.retention {
        b = b.retention_class(r);
    }
    for (k, v) in f.labels {
        b = b.label(k, v);
    }
    b.build().expect("generated fields are valid")
}

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
