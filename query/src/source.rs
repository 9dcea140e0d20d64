//! [`IndexSource`]: what a plan reads from the index, as a trait the engine implements over
//! the real redb reader (and [`ModelSource`](crate::model::ModelSource) implements in memory).

use std::fmt;
use std::ops::Range;

use trailmix_index::{Dimension, Direction, Term};

/// A boxed iterator of sequence numbers read from an index.
pub type SeqIter<'a> = Box<dyn Iterator<Item = Result<u64, SourceError>> + 'a>;

/// A boxed iterator of `(event_time_ns, seq)` pairs read from an index.
pub type TimeIter<'a> = Box<dyn Iterator<Item = Result<(i64, u64), SourceError>> + 'a>;

/// An error of the index behind an [`IndexSource`], passed through untouched.
#[derive(Debug)]
pub struct SourceError(pub Box<dyn std::error::Error + Send + Sync>);

impl SourceError {
    /// Wraps any error.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(error.into())
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// One row of [`IndexSource::counts`]: how many receipts of `tenant` with `value` in the
/// counted dimension have an event time in the bucket starting at `bucket_start_ns`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountRow {
    /// Start of the bucket, ns since the Unix epoch.
    pub bucket_start_ns: i64,
    /// The tenant counted.
    pub tenant: String,
    /// The dimension's value (see [`Dimension`]).
    pub value: String,
    /// How many receipts.
    pub count: u64,
}

/// The index as a query plan reads it. Every method is a read of one consistent snapshot as
/// far as the implementation can give one; plans never write.
///
/// Open bounds: an exclusive upper bound of `i64::MAX` (event times) or `u64::MAX` (logged-at
/// times, sequence numbers) means "no upper bound", so that the largest value stays reachable.
pub trait IndexSource {
    /// The next sequence number not yet indexed: every posting is below it.
    fn watermark(&self) -> u64;

    /// The postings of `term` within `seqs`, strictly increasing for
    /// [`Direction::Ascending`] and strictly decreasing for [`Direction::Descending`].
    ///
    /// # Errors
    /// Whatever the index reports.
    fn postings(
        &self,
        term: &Term<'_>,
        seqs: Range<u64>,
        dir: Direction,
    ) -> Result<SeqIter<'_>, SourceError>;

    /// The number of postings of `term` (a planning estimate; it need not be exact).
    ///
    /// # Errors
    /// Whatever the index reports.
    fn posting_count(&self, term: &Term<'_>) -> Result<u64, SourceError>;

    /// Sequence numbers of receipts of `tenant` that may carry `event_id`, in any order. False
    /// positives are allowed (for example a hash-keyed table); misses are not.
    ///
    /// # Errors
    /// Whatever the index reports.
    fn event_seqs(&self, tenant: &str, event_id: &str) -> Result<Vec<u64>, SourceError>;

    /// A range of sequence numbers holding every entry whose `logged_at_ns` lies in
    /// `[from_ns, to_ns)` (a superset is fine: logged-at times never decrease along the log, so
    /// the range is contiguous).
    ///
    /// # Errors
    /// Whatever the index reports.
    fn seq_range_for_logged_at(&self, from_ns: u64, to_ns: u64) -> Result<Range<u64>, SourceError>;

    /// `(event_time_ns, seq)` of every receipt of `tenant` with an event time in
    /// `[from_ns, to_ns)`, ordered by time and then seq in direction `dir`.
    ///
    /// # Errors
    /// Whatever the index reports.
    fn event_time(
        &self,
        tenant: &str,
        from_ns: i64,
        to_ns: i64,
        dir: Direction,
    ) -> Result<TimeIter<'_>, SourceError>;

    /// Every tenant with at least one indexed receipt, with its receipt count.
    ///
    /// # Errors
    /// Whatever the index reports.
    fn tenants(&self) -> Result<Vec<(String, u64)>, SourceError>;

    /// Receipt counts by `dim` of one tenant (or all), for event times in `[from_ns, to_ns)`,
    /// in buckets of `bucket_ns` aligned to the Unix epoch (bucket start = time rounded down
    /// to a multiple of `bucket_ns`). `bucket_ns == 0` means one bucket for the whole range,
    /// starting at `from_ns`. Rows with a zero count are left out; the order is free.
    ///
    /// # Errors
    /// Whatever the index reports.
    fn counts(
        &self,
        tenant: Option<&str>,
        dim: Dimension,
        bucket_ns: u64,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<CountRow>, SourceError>;
}
