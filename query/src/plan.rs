//! [`plan`]: which index walks answer a [`Query`], and what can be proven about the answer.

use std::fmt::{self, Write as _};
use std::ops::Range;

use trailmix_index::{Dimension, Direction, IndexRecord, Term};

use crate::cursor::{Cursor, fingerprint};
use crate::error::QueryError;
use crate::filter::{Filter, Order, Query};
use crate::source::IndexSource;

/// The most candidates an event-time walk may buffer to hand them out in sequence order. A
/// seq-ordered query with an event-time range uses that walk only when the index estimates at
/// most this many receipts in the range (and fewer than the best posting list); if the walk
/// turns out longer, the buffer is dropped and the posting lists are used instead.
pub const TIME_SORT_CAP: u64 = 4096;

/// What can be proven about a query result's completeness: that no matching receipt was
/// left out. (That every returned receipt matches is always certain: the engine re-checks
/// each one against the log with [`Filter::matches`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Completeness {
    /// The plan reads every entry of one contiguous range of sequence numbers and checks each
    /// against the filter, so the result is complete if the range is right, and both of its
    /// ends can be proven with Merkle inclusion proofs of the entries on either side: logged-at
    /// times never decrease along the log, so the entry before the range (logged before
    /// `logged_since`) and the entry at its end (logged at or after `logged_until`, or the end
    /// of the indexed log) show that nothing outside it could match. Chosen when the filter
    /// has no tenant, term or event id (only time ranges; an event-time range is checked on
    /// each entry read), and for a filter that is empty by itself (`since >= until`), whose
    /// empty answer needs no proof at all.
    SeqRangeProvable,
    /// The plan walks one tenant's receipts in sequence order (a tenant filter and nothing
    /// else but time ranges). Every receipt links to its tenant's previous receipt
    /// (`tenant_prev_seq` and `tenant_prev_hash` in the entry), so a checker can follow the
    /// links back from each result to the previous one: every receipt it passes on the way
    /// must fail the filter (with no time range there are none), else the index failed to
    /// list it. The result can thus be checked against the tenant's own hash chain, at the
    /// cost of reading the skipped receipts when a time range skips many.
    TenantChainCheckable,
    /// Anything else (terms intersected, event-id lookups, event-time walks, several tenants
    /// merged): the result is complete only as far as the index equals one rebuilt from the
    /// log. The index is derived and can be rebuilt and compared, but a single result
    /// carries no proof of its own completeness.
    IndexDerived,
}

impl fmt::Display for Completeness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Completeness::SeqRangeProvable => {
                "seq-range provable: one contiguous seq range, read whole; its ends can be proven with inclusion proofs"
            }
            Completeness::TenantChainCheckable => {
                "tenant-chain checkable: gaps show up in the tenant's own hash chain"
            }
            Completeness::IndexDerived => {
                "index-derived: complete as far as the index equals a rebuild from the log"
            }
        })
    }
}

/// An equality term of a filter, without its tenant (plans apply it to each tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TermKey {
    Tenant,
    ModelName(String),
    ModelVersion(String, String),
    Kind(String),
    Decision(String),
    Session(String),
    Subject(String),
    App(String),
    Label(String, String),
}

impl TermKey {
    pub(crate) fn term<'a>(&'a self, tenant: &'a str) -> Term<'a> {
        match self {
            TermKey::Tenant => Term::Tenant(tenant),
            TermKey::ModelName(n) => Term::ModelName(tenant, n),
            TermKey::ModelVersion(n, v) => Term::ModelVersion(tenant, n, v),
            TermKey::Kind(v) => Term::Kind(tenant, v),
            TermKey::Decision(v) => Term::Decision(tenant, v),
            TermKey::Session(v) => Term::Session(tenant, v),
            TermKey::Subject(v) => Term::Subject(tenant, v),
            TermKey::App(v) => Term::App(tenant, v),
            TermKey::Label(k, v) => Term::Label(tenant, k, v),
        }
    }

    fn of(filter: &Filter) -> Vec<TermKey> {
        type Make = fn(String) -> TermKey;
        let mut keys = Vec::new();
        if let Some(m) = &filter.model {
            keys.push(match &m.version {
                Some(v) => TermKey::ModelVersion(m.name.clone(), v.clone()),
                None => TermKey::ModelName(m.name.clone()),
            });
        }
        let singles: [(Option<&String>, Make); 5] = [
            (filter.kind.as_ref(), TermKey::Kind),
            (filter.decision.as_ref(), TermKey::Decision),
            (filter.session.as_ref(), TermKey::Session),
            (filter.subject.as_ref(), TermKey::Subject),
            (filter.app.as_ref(), TermKey::App),
        ];
        keys.extend(
            singles
                .into_iter()
                .filter_map(|(v, make)| v.cloned().map(make)),
        );
        keys.extend(
            filter
                .labels
                .iter()
                .map(|(k, v)| TermKey::Label(k.clone(), v.clone())),
        );
        keys
    }
}

impl fmt::Display for TermKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TermKey::Tenant => f.write_str("all the tenant's receipts"),
            TermKey::ModelName(n) => write!(f, "model={n}"),
            TermKey::ModelVersion(n, v) => write!(f, "model={n}@{v}"),
            TermKey::Kind(v) => write!(f, "kind={v}"),
            TermKey::Decision(v) => write!(f, "decision={v}"),
            TermKey::Session(v) => write!(f, "session={v}"),
            TermKey::Subject(v) => write!(f, "subject={v}"),
            TermKey::App(v) => write!(f, "app={v}"),
            TermKey::Label(k, v) => write!(f, "label.{k}={v}"),
        }
    }
}

/// A term with its posting count in one tenant.
pub(crate) type Counted = Vec<(TermKey, u64)>;

/// How one tenant's candidates are found.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// Leapfrog intersection of posting lists, sorted by count (the first drives).
    Postings(Counted),
    /// The event-id table (sequence order).
    EventIds,
    /// The tenant's event-time index, each entry probed against `probes` (and the event-id
    /// candidates when `event`).
    TimeWalk { probes: Counted, event: bool },
    /// The event-time index over the range, buffered and sorted by seq; `fallback` when it
    /// holds more than [`TIME_SORT_CAP`].
    TimeSorted {
        probes: Counted,
        estimate: u64,
        fallback: Counted,
    },
}

/// One tenant's walk.
#[derive(Debug, Clone)]
pub(crate) struct TenantPlan {
    pub(crate) tenant: String,
    pub(crate) route: Route,
}

/// Why a plan has no candidates at all.
#[derive(Debug, Clone)]
pub(crate) enum Empty {
    /// `since >= until` (or the logged-at pair): nothing can match.
    Range,
    /// The index holds no posting for a term (in any tenant).
    Index,
}

/// Where candidates come from.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    Empty(Empty),
    /// Every sequence number in the range below the watermark.
    Scan,
    /// One walk per tenant, merged in output order.
    Tenants(Vec<TenantPlan>),
}

/// How a [`Query`] is answered: made by [`plan`], run by [`Plan::candidates`].
///
/// A plan holds posting-count estimates read when it was made; it is meant for one page.
/// Running it later is still correct (candidates are read afresh), only perhaps slower.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) filter: Filter,
    pub(crate) order: Order,
    pub(crate) limit: u32,
    /// Sequence numbers that may hold a result (from the logged-at range; a superset).
    pub(crate) seqs: Range<u64>,
    pub(crate) access: Access,
    /// The cursor fingerprint of `filter` and `order`, computed once per plan.
    pub(crate) fingerprint: [u8; 8],
}

/// Plans `query` over `source`.
///
/// Equality fields become tenant-scoped [`Term`]s, intersected with a leapfrog join driven
/// by the smallest posting list; an event id uses the event-id table; a logged-at range
/// narrows the sequence range; event-time order (or a seq-ordered query with a small enough
/// event-time range, see [`TIME_SORT_CAP`]) walks the event-time index; without a tenant the
/// plan has one walk per tenant, merged in order. A filter with no tenant and no terms
/// scans the sequence range.
///
/// # Errors
/// [`QueryError::LimitOutOfRange`], [`QueryError::Cursor`] for a cursor of another query,
/// or the source's error.
pub fn plan(query: &Query, source: &dyn IndexSource) -> Result<Plan, QueryError> {
    // Query::validate, with the fingerprint computed once and kept in the plan.
    query.check_limit()?;
    let fingerprint = fingerprint(&query.filter, query.order);
    if let Some(cursor) = &query.cursor {
        cursor.check_fingerprint(fingerprint, query.order)?;
    }
    let mut plan = Plan {
        filter: query.filter.clone(),
        order: query.order,
        limit: query.limit,
        seqs: 0..u64::MAX,
        access: Access::Scan,
        fingerprint,
    };
    if plan.filter.is_trivially_empty() {
        plan.access = Access::Empty(Empty::Range);
        return Ok(plan);
    }
    plan.seqs = logged_seqs(&plan.filter, source)?;
    if plan.filter.tenant.is_none() && !plan.filter.has_terms() && !plan.order.is_time() {
        return Ok(plan);
    }
    let tenants = match &plan.filter.tenant {
        Some(t) => vec![t.clone()],
        None => source.tenants()?.into_iter().map(|(t, _)| t).collect(),
    };
    let keys = TermKey::of(&plan.filter);
    let mut walks = Vec::new();
    for tenant in tenants {
        if let Some(route) = route(&plan, &tenant, &keys, source)? {
            walks.push(TenantPlan { tenant, route });
        }
    }
    plan.access = if walks.is_empty() {
        Access::Empty(Empty::Index)
    } else {
        Access::Tenants(walks)
    };
    Ok(plan)
}

/// The sequence range the logged-at bounds allow (all of it without bounds).
fn logged_seqs(filter: &Filter, source: &dyn IndexSource) -> Result<Range<u64>, QueryError> {
    if filter.logged_since.is_none() && filter.logged_until.is_none() {
        return Ok(0..u64::MAX);
    }
    // Times before the epoch are below every logged-at time (it is unsigned).
    let from = filter
        .logged_since
        .map_or(0, |s| u64::try_from(s).unwrap_or(0));
    let to = match filter.logged_until {
        None => u64::MAX,
        Some(u) => match u64::try_from(u) {
            Ok(u) => u,
            Err(_) => return Ok(0..0),
        },
    };
    Ok(source.seq_range_for_logged_at(from, to)?)
}

/// One tenant's route, or `None` when a term has no posting in it.
fn route(
    plan: &Plan,
    tenant: &str,
    keys: &[TermKey],
    source: &dyn IndexSource,
) -> Result<Option<Route>, QueryError> {
    let mut counted: Counted = Vec::with_capacity(keys.len().max(1));
    let all = [TermKey::Tenant];
    let keys = if keys.is_empty() { &all[..] } else { keys };
    for key in keys {
        let count = source.posting_count(&key.term(tenant))?;
        if count == 0 {
            return Ok(None);
        }
        counted.push((key.clone(), count));
    }
    counted.sort_by_key(|(_, count)| *count);
    let probes: Counted = counted
        .iter()
        .filter(|(k, _)| *k != TermKey::Tenant)
        .cloned()
        .collect();
    let f = &plan.filter;
    if f.event_id.is_some() {
        return Ok(Some(if plan.order.is_time() {
            Route::TimeWalk {
                probes,
                event: true,
            }
        } else {
            Route::EventIds
        }));
    }
    if plan.order.is_time() {
        return Ok(Some(Route::TimeWalk {
            probes,
            event: false,
        }));
    }
    if f.since.is_some() || f.until.is_some() {
        let estimate = time_estimate(f, tenant, source)?;
        let best = counted.first().map_or(0, |(_, c)| *c);
        if estimate <= TIME_SORT_CAP && estimate < best {
            return Ok(Some(Route::TimeSorted {
                probes,
                estimate,
                fallback: counted,
            }));
        }
    }
    Ok(Some(Route::Postings(counted)))
}

/// How many of the tenant's receipts the index counts in the event-time range.
fn time_estimate(f: &Filter, tenant: &str, source: &dyn IndexSource) -> Result<u64, QueryError> {
    let rows = source.counts(
        Some(tenant),
        Dimension::Tenant,
        0,
        f.since.unwrap_or(i64::MIN),
        f.until.unwrap_or(i64::MAX),
    )?;
    Ok(rows.iter().map(|r| r.count).fold(0, u64::saturating_add))
}

impl Plan {
    /// What can be proven about the result's completeness (see [`Completeness`]).
    #[must_use]
    pub fn completeness(&self) -> Completeness {
        match &self.access {
            Access::Empty(Empty::Range) | Access::Scan => Completeness::SeqRangeProvable,
            Access::Tenants(walks)
                if self.filter.tenant.is_some() && self.is_tenant_walk(walks) =>
            {
                Completeness::TenantChainCheckable
            }
            Access::Empty(Empty::Index) | Access::Tenants(_) => Completeness::IndexDerived,
        }
    }

    fn is_tenant_walk(&self, walks: &[TenantPlan]) -> bool {
        matches!(walks, [TenantPlan { route: Route::Postings(terms), .. }]
            if matches!(terms.as_slice(), [(TermKey::Tenant, _)]) && !self.order.is_time())
    }

    /// The order results come in.
    #[must_use]
    pub fn order(&self) -> Order {
        self.order
    }

    /// The filter the engine must check every candidate against.
    #[must_use]
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The page size.
    #[must_use]
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The cursor after `record`, a receipt the engine returned for this plan's query: the
    /// same as [`Cursor::after_record`], without hashing the filter again for every row.
    #[must_use]
    pub fn cursor_after(&self, record: &IndexRecord<'_>) -> Cursor {
        Cursor::with_fingerprint(self.fingerprint, self.order, record)
    }

    /// A human-readable account of the plan, one step per line.
    #[must_use]
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let filter = self.filter.to_string();
        let filter = if filter.is_empty() {
            "(everything)"
        } else {
            &filter
        };
        let _ = writeln!(
            out,
            "query: {filter}; {}; limit {}",
            order_text(self.order),
            self.limit
        );
        if self.seqs != (0..u64::MAX) {
            let _ = writeln!(
                out,
                "seq range: {}..{} (from the logged-at range)",
                self.seqs.start, self.seqs.end
            );
        }
        self.explain_access(&mut out);
        let _ = writeln!(out, "completeness: {}", self.completeness());
        out.push_str("every candidate is read from the log and re-checked against the filter\n");
        out
    }

    fn explain_access(&self, out: &mut String) {
        match &self.access {
            Access::Empty(Empty::Range) => {
                out.push_str("access: none (a time range is empty by itself)\n");
            }
            Access::Empty(Empty::Index) => {
                out.push_str("access: none (the index holds no receipt with every term)\n");
            }
            Access::Scan => {
                out.push_str("access: every entry of the seq range below the index watermark\n");
            }
            Access::Tenants(walks) => {
                for w in walks {
                    let _ = writeln!(
                        out,
                        "access: tenant {}: {}",
                        w.tenant,
                        self.route_text(&w.route)
                    );
                }
                if walks.len() > 1 {
                    let _ = writeln!(
                        out,
                        "merge: {} tenant walks, one head each, in output order",
                        walks.len()
                    );
                }
            }
        }
    }

    fn route_text(&self, route: &Route) -> String {
        match route {
            Route::Postings(terms) => postings_text(terms),
            Route::EventIds => format!(
                "event-id lookup of {}",
                self.filter.event_id.as_deref().unwrap_or("")
            ),
            Route::TimeWalk { probes, event } => {
                let mut text = format!(
                    "walk the event-time index ({})",
                    dir_text(self.order.direction())
                );
                if *event {
                    text.push_str(", keeping the event-id lookup's receipts");
                }
                if !probes.is_empty() {
                    let _ = write!(text, ", probing {}", counted_text(probes));
                }
                text
            }
            Route::TimeSorted {
                probes,
                estimate,
                fallback,
            } => {
                let mut text =
                    format!("walk the event-time range (~{estimate} receipts), sorted by seq");
                if !probes.is_empty() {
                    let _ = write!(text, ", probing {}", counted_text(probes));
                }
                let _ = write!(text, "; over {TIME_SORT_CAP}: {}", postings_text(fallback));
                text
            }
        }
    }
}

fn postings_text(terms: &Counted) -> String {
    if terms.len() == 1 {
        format!("walk the posting list of {}", counted_text(terms))
    } else {
        format!(
            "intersect posting lists (leapfrog, the first drives) {}",
            counted_text(terms)
        )
    }
}

fn counted_text(terms: &Counted) -> String {
    let parts: Vec<String> = terms.iter().map(|(k, c)| format!("{k} (~{c})")).collect();
    parts.join(", ")
}

fn dir_text(d: Direction) -> &'static str {
    match d {
        Direction::Ascending => "ascending",
        Direction::Descending => "descending",
    }
}

fn order_text(order: Order) -> String {
    match order {
        Order::Seq(d) => format!("by seq, {}", dir_text(d)),
        Order::EventTime(d) => format!("by event time then seq, {}", dir_text(d)),
    }
}
