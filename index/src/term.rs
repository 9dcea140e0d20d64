//! [`Term`]: one indexed (field, value) pair of a tenant, the unit of a posting list.

/// An indexed value of one tenant. Every term's posting list holds the sequence numbers of
/// that tenant's receipts carrying the value, in increasing order.
///
/// Terms are scoped by tenant so that a tenant-scoped read can never walk another tenant's
/// postings; a query over all tenants plans one walk per tenant (see
/// [`IndexReader::tenants`](crate::IndexReader::tenants)).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Term<'a> {
    /// Every receipt of the tenant.
    Tenant(&'a str),
    /// Receipts of a model name (any version).
    ModelName(&'a str, &'a str),
    /// Receipts of a model name and version: (tenant, name, version).
    ModelVersion(&'a str, &'a str, &'a str),
    /// Receipts of a kind: (tenant, kind).
    Kind(&'a str, &'a str),
    /// Receipts with a policy decision: (tenant, decision).
    Decision(&'a str, &'a str),
    /// Receipts of a session: (tenant, session id).
    Session(&'a str, &'a str),
    /// Receipts of a data subject: (tenant, subject id).
    Subject(&'a str, &'a str),
    /// Receipts of an app: (tenant, app id).
    App(&'a str, &'a str),
    /// Receipts carrying a label: (tenant, key, value).
    Label(&'a str, &'a str, &'a str),
}

impl<'a> Term<'a> {
    /// The tenant the term belongs to.
    #[must_use]
    pub fn tenant(&self) -> &'a str {
        match *self {
            Term::Tenant(t)
            | Term::ModelName(t, _)
            | Term::ModelVersion(t, _, _)
            | Term::Kind(t, _)
            | Term::Decision(t, _)
            | Term::Session(t, _)
            | Term::Subject(t, _)
            | Term::App(t, _)
            | Term::Label(t, _, _) => t,
        }
    }
}

/// The dimensions that aggregates count by (see [`IndexReader::counts`](crate::IndexReader::counts)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// Count per tenant (the value is the tenant id).
    Tenant,
    /// Count per model: the value is `name` or `name@version` when a version is set; receipts
    /// without a model count under the empty string.
    Model,
    /// Count per kind.
    Kind,
    /// Count per decision; receipts without a decision count under the empty string.
    Decision,
}

/// Which way a walk goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Smallest first.
    #[default]
    Ascending,
    /// Largest first.
    Descending,
}
