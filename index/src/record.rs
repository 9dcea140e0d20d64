//! [`IndexRecord`]: the clear fields of one log entry, as the index sees them.

use std::collections::BTreeMap;

/// The clear fields of one receipt in the log: everything the index stores or a query filters
/// on. The engine builds one from each receipt entry's decoded header; the index never sees a
/// payload (it may be shreddable personal data, which must never be indexed).
///
/// Times are nanoseconds since the Unix epoch: `event_time_ns` is the client's time (any
/// order), `logged_at_ns` the writer's clock, non-decreasing in sequence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRecord<'a> {
    /// The entry's sequence number in the log.
    pub seq: u64,
    /// When the writer logged it (non-decreasing with `seq`).
    pub logged_at_ns: u64,
    /// The client's event time.
    pub event_time_ns: i64,
    /// `tenant_id`.
    pub tenant: &'a str,
    /// `event_id`, unique within the tenant.
    pub event_id: &'a str,
    /// `app_id`.
    pub app_id: &'a str,
    /// `session_id`.
    pub session_id: Option<&'a str>,
    /// `parent_id` (an event id of the same tenant).
    pub parent_id: Option<&'a str>,
    /// `subject_id` (pseudonymous data subject).
    pub subject_id: Option<&'a str>,
    /// `kind` (its wire name, for example `llm_call`).
    pub kind: &'a str,
    /// `actor_type` (its wire name).
    pub actor_type: &'a str,
    /// `policy_eval.decision` (its wire name).
    pub decision: Option<&'a str>,
    /// `model.name`.
    pub model_name: Option<&'a str>,
    /// `model.version`.
    pub model_version: Option<&'a str>,
    /// `model.provider`.
    pub model_provider: Option<&'a str>,
    /// `retention_class`.
    pub retention_class: Option<&'a str>,
    /// Labels, sorted by key.
    pub labels: &'a BTreeMap<String, String>,
}
