//! Proptest strategies for receipts within the header rules, shared by the receipt property
//! tests and the indexer's header-reader test.

#![allow(dead_code, reason = "each test uses what it needs")]

use std::collections::BTreeMap;

use proptest::prelude::*;
use trailmix_db::receipt::{ActorType, Decision, Kind, MAX_LABELS, Receipt, Timestamp};

/// Printable ASCII without spaces, 1..=128 bytes.
pub const ID: &str = "[!-~]{1,128}";
pub const TENANT: &str = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}";
pub const NAME: &str = "[a-z][a-z0-9_.-]{0,63}";
pub const RETENTION: &str = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}";
pub const LABEL_KEY: &str = "[A-Za-z0-9][A-Za-z0-9._/-]{0,63}";
/// At most 64 characters of at most 4 bytes: within the 256-byte value limit.
pub const LABEL_VALUE: &str = "\\PC{0,64}";

pub fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        proptest::sample::select(Kind::BUILT_IN.to_vec()),
        NAME.prop_map(|n| Kind::parse(&n).expect("valid name")),
    ]
}

pub fn actor() -> impl Strategy<Value = ActorType> {
    prop_oneof![
        proptest::sample::select(ActorType::BUILT_IN.to_vec()),
        NAME.prop_map(|n| ActorType::parse(&n).expect("valid name")),
    ]
}

pub fn decision() -> impl Strategy<Value = Decision> {
    prop_oneof![
        proptest::sample::select(Decision::BUILT_IN.to_vec()),
        NAME.prop_map(|n| Decision::parse(&n).expect("valid name")),
    ]
}

#[derive(Debug, Clone)]
pub struct Fields {
    pub tenant: String,
    pub event: String,
    pub app: String,
    pub kind: Kind,
    pub actor: ActorType,
    pub time: i64,
    pub optional_ids: [Option<String>; 7],
    pub decision: Option<Decision>,
    pub retention: Option<String>,
    pub labels: BTreeMap<String, String>,
}

pub fn fields() -> impl Strategy<Value = Fields> {
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

pub fn build(f: Fields) -> Receipt {
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
