//! [`aggregate`]: receipt counts by tenant, model, kind or decision, per hour, day or overall.

use std::collections::BTreeMap;

use trailmix_index::Dimension;

use crate::error::QueryError;
use crate::source::{CountRow, IndexSource};

const HOUR_NS: u64 = 3_600_000_000_000;
const DAY_NS: u64 = 24 * HOUR_NS;

/// The width of an aggregate's time buckets (by event time, aligned to the Unix epoch, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Bucket {
    /// One bucket per UTC hour.
    Hour,
    /// One bucket per UTC day.
    Day,
    /// One bucket over the whole range, starting at `since` (or the earliest time).
    #[default]
    Total,
}

impl Bucket {
    /// The bucket width in nanoseconds; `0` is [`Bucket::Total`] (one bucket).
    #[must_use]
    pub fn width_ns(self) -> u64 {
        match self {
            Bucket::Hour => HOUR_NS,
            Bucket::Day => DAY_NS,
            Bucket::Total => 0,
        }
    }
}

/// Counts to compute: receipts of one tenant (or every tenant) by `dimension`, in buckets of
/// event time within `[since, until)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AggregateQuery {
    /// One tenant, or all.
    pub tenant: Option<String>,
    /// What to count by.
    pub dimension: Dimension,
    /// Bucket width.
    pub bucket: Bucket,
    /// Event time at or after this.
    pub since: Option<i64>,
    /// Event time before this.
    pub until: Option<i64>,
}

/// The counts, one row per (bucket, tenant, value) with a non-zero count, sorted by bucket,
/// then tenant, then value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Aggregate {
    /// The rows.
    pub rows: Vec<CountRow>,
}

impl Aggregate {
    /// The sum of all counts.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.rows
            .iter()
            .map(|r| r.count)
            .fold(0, u64::saturating_add)
    }
}

/// Computes `query` from the index's counts. Rows the source splits (or repeats) for one
/// (bucket, tenant, value) are added up, so the answer has one row per key whatever the
/// source's granularity.
///
/// Aggregates are index-derived: they are as complete as the index is equal to a rebuild.
///
/// # Errors
/// [`QueryError::EmptyRange`] when `since >= until`; the source's error.
pub fn aggregate(
    query: &AggregateQuery,
    source: &dyn IndexSource,
) -> Result<Aggregate, QueryError> {
    let from = query.since.unwrap_or(i64::MIN);
    let to = query.until.unwrap_or(i64::MAX);
    if let (Some(since), Some(until)) = (query.since, query.until)
        && since >= until
    {
        return Err(QueryError::EmptyRange {
            what: "aggregate event-time range",
            since,
            until,
        });
    }
    let width = query.bucket.width_ns();
    let rows = source.counts(query.tenant.as_deref(), query.dimension, width, from, to)?;
    let mut sums: BTreeMap<(i64, String, String), u64> = BTreeMap::new();
    for row in rows {
        // With one bucket, its start is the range's start whatever the source says.
        let bucket = if width == 0 {
            from
        } else {
            row.bucket_start_ns
        };
        let sum = sums.entry((bucket, row.tenant, row.value)).or_insert(0);
        *sum = sum.saturating_add(row.count);
    }
    let rows = sums
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|((bucket_start_ns, tenant, value), count)| CountRow {
            bucket_start_ns,
            tenant,
            value,
            count,
        })
        .collect();
    Ok(Aggregate { rows })
}
