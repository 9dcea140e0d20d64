//! [`Filter`], [`Order`] and [`Query`]: what a caller asks for, as owned values.

use std::collections::BTreeMap;

use trailmix_index::{Direction, IndexRecord};

use crate::cursor::Cursor;
use crate::error::QueryError;

/// The page size when a query names none.
pub const DEFAULT_LIMIT: u32 = 100;

/// The largest page size: a page is held in memory by the engine (and often printed), so it is
/// bounded; more results are read by paging with [`Cursor`]s.
pub const MAX_LIMIT: u32 = 10_000;

/// A model to match: its name, and optionally its version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ModelFilter {
    /// `model.name`.
    pub name: String,
    /// `model.version`; `None` matches every version (and receipts without one).
    pub version: Option<String>,
}

/// Which receipts a query selects. Every field that is set must hold (they are AND-combined);
/// an empty filter selects every receipt.
///
/// Equality fields compare bytes exactly (no case folding). Time ranges are half-open:
/// `since` is inclusive, `until` exclusive; a range whose start is not before its end selects
/// nothing. [`Filter::matches`] is the definition; plans only narrow down where to look.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Filter {
    /// `tenant_id`.
    pub tenant: Option<String>,
    /// `model.name` (and `model.version`).
    pub model: Option<ModelFilter>,
    /// `kind` (wire name, for example `llm_call`).
    pub kind: Option<String>,
    /// `policy_eval.decision` (wire name, for example `deny`).
    pub decision: Option<String>,
    /// `session_id`.
    pub session: Option<String>,
    /// `event_id`.
    pub event_id: Option<String>,
    /// `app_id`.
    pub app: Option<String>,
    /// `subject_id`.
    pub subject: Option<String>,
    /// Labels that must all be present with exactly these values.
    pub labels: BTreeMap<String, String>,
    /// Event time at or after this (ns since the Unix epoch).
    pub since: Option<i64>,
    /// Event time before this.
    pub until: Option<i64>,
    /// Logged at or after this (the writer's clock, ns since the Unix epoch).
    pub logged_since: Option<i64>,
    /// Logged before this.
    pub logged_until: Option<i64>,
}

/// The fields of a receipt that a [`Filter`] reads, asked for one at a time: a filter reads
/// only the fields it restricts. The engine matches a receipt read from the log through this
/// straight from its header (where every field asked for is a UTF-8 check of borrowed bytes,
/// and labels are a walk over their encoding) instead of building an [`IndexRecord`] of all
/// of them first; [`IndexRecord`] implements it, and [`Filter::matches`] is
/// [`Filter::matches_fields_of`] over it, so both have one definition.
pub trait FilterFields {
    /// `tenant_id`.
    fn tenant(&self) -> &str;
    /// `event_id`.
    fn event_id(&self) -> &str;
    /// `app_id`.
    fn app_id(&self) -> &str;
    /// `session_id`.
    fn session_id(&self) -> Option<&str>;
    /// `subject_id`.
    fn subject_id(&self) -> Option<&str>;
    /// `kind` (its wire name).
    fn kind(&self) -> &str;
    /// `policy_eval.decision` (its wire name).
    fn decision(&self) -> Option<&str>;
    /// `model.name`.
    fn model_name(&self) -> Option<&str>;
    /// `model.version`.
    fn model_version(&self) -> Option<&str>;
    /// The value of label `key`.
    fn label(&self, key: &str) -> Option<&str>;
    /// The client's event time.
    fn event_time_ns(&self) -> i64;
    /// When the writer logged it.
    fn logged_at_ns(&self) -> u64;
}

impl FilterFields for IndexRecord<'_> {
    fn tenant(&self) -> &str {
        self.tenant
    }
    fn event_id(&self) -> &str {
        self.event_id
    }
    fn app_id(&self) -> &str {
        self.app_id
    }
    fn session_id(&self) -> Option<&str> {
        self.session_id
    }
    fn subject_id(&self) -> Option<&str> {
        self.subject_id
    }
    fn kind(&self) -> &str {
        self.kind
    }
    fn decision(&self) -> Option<&str> {
        self.decision
    }
    fn model_name(&self) -> Option<&str> {
        self.model_name
    }
    fn model_version(&self) -> Option<&str> {
        self.model_version
    }
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
    fn event_time_ns(&self) -> i64 {
        self.event_time_ns
    }
    fn logged_at_ns(&self) -> u64 {
        self.logged_at_ns
    }
}

impl Filter {
    /// Whether `record` is selected. This is the exact semantics of a filter: the engine
    /// re-checks every receipt it reads with it, so a damaged or tampered index can make a
    /// query slower or incomplete but never make it return a receipt that does not match.
    #[must_use]
    pub fn matches(&self, record: &IndexRecord<'_>) -> bool {
        self.matches_fields_of(record)
    }

    /// [`Filter::matches`] over any [`FilterFields`]: the same terms in the same order, each
    /// field read only when its term is set (the time terms first: no field lookup for them).
    #[must_use]
    pub fn matches_fields_of<R: FilterFields + ?Sized>(&self, r: &R) -> bool {
        self.matches_times(r) && self.matches_fields(r)
    }

    fn matches_fields<R: FilterFields + ?Sized>(&self, r: &R) -> bool {
        self.tenant.as_ref().is_none_or(|t| r.tenant() == t)
            && self.model.as_ref().is_none_or(|m| {
                r.model_name() == Some(m.name.as_str())
                    && m.version
                        .as_ref()
                        .is_none_or(|v| r.model_version() == Some(v.as_str()))
            })
            && self.kind.as_ref().is_none_or(|k| r.kind() == k)
            && eq(self.decision.as_ref(), || r.decision())
            && eq(self.session.as_ref(), || r.session_id())
            && self.event_id.as_ref().is_none_or(|e| r.event_id() == e)
            && self.app.as_ref().is_none_or(|a| r.app_id() == a)
            && eq(self.subject.as_ref(), || r.subject_id())
            && self
                .labels
                .iter()
                .all(|(k, v)| r.label(k) == Some(v.as_str()))
    }

    fn matches_times<R: FilterFields + ?Sized>(&self, r: &R) -> bool {
        // logged_at is unsigned and the bounds signed: compare in i128 so neither side wraps.
        let event_time = r.event_time_ns();
        let logged = i128::from(r.logged_at_ns());
        self.since.is_none_or(|s| event_time >= s)
            && self.until.is_none_or(|u| event_time < u)
            && self.logged_since.is_none_or(|s| logged >= i128::from(s))
            && self.logged_until.is_none_or(|u| logged < i128::from(u))
    }

    /// Whether a time range is empty by itself (`since >= until`), so nothing can match.
    #[must_use]
    pub fn is_trivially_empty(&self) -> bool {
        empty_range(self.since, self.until) || empty_range(self.logged_since, self.logged_until)
    }

    /// Whether the filter restricts anything besides the tenant and the two time ranges:
    /// an equality term (model, kind, ...) or an event id.
    #[must_use]
    pub fn has_terms(&self) -> bool {
        self.model.is_some()
            || self.kind.is_some()
            || self.decision.is_some()
            || self.session.is_some()
            || self.event_id.is_some()
            || self.app.is_some()
            || self.subject.is_some()
            || !self.labels.is_empty()
    }
}

/// An optional field's term: the field is read only when the term is set.
fn eq<'a>(want: Option<&String>, have: impl FnOnce() -> Option<&'a str>) -> bool {
    want.is_none_or(|w| have() == Some(w.as_str()))
}

fn empty_range(since: Option<i64>, until: Option<i64>) -> bool {
    matches!((since, until), (Some(s), Some(u)) if s >= u)
}

/// The order of a query's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    /// By sequence number (log order). Ascending pages keep up with appends: new receipts
    /// have larger sequence numbers, so they show up after the cursor.
    Seq(Direction),
    /// By the client's event time, ties broken by sequence number.
    EventTime(Direction),
}

impl Default for Order {
    fn default() -> Self {
        Order::Seq(Direction::Ascending)
    }
}

impl Order {
    /// The direction of the walk.
    #[must_use]
    pub fn direction(self) -> Direction {
        match self {
            Order::Seq(d) | Order::EventTime(d) => d,
        }
    }

    /// Whether results are ordered by event time.
    #[must_use]
    pub fn is_time(self) -> bool {
        matches!(self, Order::EventTime(_))
    }
}

/// A query: a filter, an order, a page size and where to resume.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// Which receipts.
    pub filter: Filter,
    /// In which order.
    pub order: Order,
    /// At most this many results per page, `1..=MAX_LIMIT`.
    pub limit: u32,
    /// Resume strictly after this position (from the previous page).
    pub cursor: Option<Cursor>,
}

impl Default for Query {
    fn default() -> Self {
        Query::new(Filter::default())
    }
}

impl Query {
    /// A query for `filter` in sequence order, [`DEFAULT_LIMIT`] results, from the start.
    #[must_use]
    pub fn new(filter: Filter) -> Self {
        Query {
            filter,
            order: Order::default(),
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }

    /// Checks what a parser would refuse but a hand-built query can hold: the limit range and
    /// that the cursor was made for this filter and order.
    ///
    /// # Errors
    /// [`QueryError::LimitOutOfRange`] or [`QueryError::Cursor`].
    pub fn validate(&self) -> Result<(), QueryError> {
        self.check_limit()?;
        if let Some(cursor) = &self.cursor {
            cursor.check(&self.filter, self.order)?;
        }
        Ok(())
    }

    /// The limit half of [`Query::validate`].
    pub(crate) fn check_limit(&self) -> Result<(), QueryError> {
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(QueryError::LimitOutOfRange {
                limit: u64::from(self.limit),
                max: MAX_LIMIT,
            });
        }
        Ok(())
    }
}
