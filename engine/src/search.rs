//! Queries over the index, every answer re-checked against the log.
//!
//! The index only proposes candidates. Each one is read from the log, its bytes are checked
//! against the digests its chain hash covers, its header is decoded and the filter is applied
//! again to what the log says. A stale or tampered index can therefore never make a query
//! return a receipt that does not match (nor another tenant's receipt through a tenant
//! handle); such candidates are dropped. What an
//! index cannot be stopped from doing is *omitting* a receipt: [`Db::check_index`] compares it
//! with a rebuild from the log, and [`Completeness`] says which results can be proven complete
//! without that.

use std::ops::{ControlFlow, Range};
use std::sync::Arc;
use std::time::Duration;

use trailmix_index::{Dimension, Direction, IndexReader, Term};
use trailmix_query::{
    Aggregate, AggregateQuery, Completeness, CountRow, Filter, FilterFields, IndexSource, Lineage,
    Query, SeqIter, SourceError, TimeIter, TraceGraph, TraceNode,
};

use crate::db::{
    Db, ReceiptHead, ScanLinks, StoredReceipt, Unlinked, check_links, decode_receipt,
    first_event_match, read_receipt_head_unlinked, read_receipt_unlinked,
};
use crate::error::{Error, Result};
use crate::indexer::index_record;
use crate::log::LogStorage;
use crate::position::ReceiptPosition;
use crate::read_pool::ReadPool;
use crate::reads::LogReads;
use crate::receipt::ReceiptHeader;
use crate::wal::{HashAlgorithm, Seq};

/// What a query result carries that the query itself needs: where it is and its header.
pub trait QueryHit {
    /// Where it is.
    fn position(&self) -> &ReceiptPosition;
    /// Its clear header.
    fn header(&self) -> &ReceiptHeader;
}

impl QueryHit for StoredReceipt {
    fn position(&self) -> &ReceiptPosition {
        &self.position
    }
    fn header(&self) -> &ReceiptHeader {
        &self.header
    }
}

impl QueryHit for ReceiptHead {
    fn position(&self) -> &ReceiptPosition {
        &self.position
    }
    fn header(&self) -> &ReceiptHeader {
        &self.header
    }
}

/// A receipt's fields as a [`Filter`] reads them, straight from its decoded header: the
/// filter asks only for the fields it restricts, so a tenant + time query reads the tenant
/// and the event time of each candidate, where an [`trailmix_index::IndexRecord`] of every
/// field (each a UTF-8 check of borrowed bytes, the labels a map) cost ~1.1 k instructions
/// per candidate (docs/performance.md, thirteenth session).
pub(crate) struct HeaderFields<'a> {
    pub(crate) header: &'a ReceiptHeader,
    pub(crate) logged_at_ns: u64,
}

impl FilterFields for HeaderFields<'_> {
    fn tenant(&self) -> &str {
        self.header.tenant_id()
    }
    fn event_id(&self) -> &str {
        self.header.event_id()
    }
    fn app_id(&self) -> &str {
        self.header.app_id()
    }
    fn session_id(&self) -> Option<&str> {
        self.header.session_id()
    }
    fn subject_id(&self) -> Option<&str> {
        self.header.subject_id()
    }
    fn kind(&self) -> &str {
        self.header.kind().as_str()
    }
    fn decision(&self) -> Option<&str> {
        self.header.decision().map(crate::receipt::Decision::as_str)
    }
    fn model_name(&self) -> Option<&str> {
        self.header.model_name()
    }
    fn model_version(&self) -> Option<&str> {
        self.header.model_version()
    }
    fn label(&self, key: &str) -> Option<&str> {
        // Keys are unique in a valid header (decode refuses repeats), so the first is the one.
        self.header
            .label_pairs()
            .find_map(|(k, v)| (k == key).then_some(v))
    }
    fn event_time_ns(&self) -> i64 {
        self.header.event_time().as_unix_nanos()
    }
    fn logged_at_ns(&self) -> u64 {
        self.logged_at_ns
    }
}

/// Most receipts [`Db::trace`] reads for one session.
pub const TRACE_RECEIPTS_MAX: usize = 100_000;
/// Most parent hops [`Db::lineage`] follows.
pub const LINEAGE_HOPS_MAX: usize = 10_000;
/// Longest a [`Freshness::Durable`] query waits for the index to catch up.
pub const FRESHNESS_WAIT_MAX: Duration = Duration::from_secs(5);

/// How current a query's view of the log must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Freshness {
    /// What the index covers now (it trails the durable log by at most a moment under load:
    /// the indexer commits after every group commit it sees). Fastest.
    #[default]
    Indexed,
    /// Everything durable when the query starts: waits (up to [`FRESHNESS_WAIT_MAX`]) for
    /// the index to cover it first.
    Durable,
}

/// One page of a query's answer: of whole receipts ([`StoredReceipt`], from [`Db::query`]) or
/// of receipts without their payloads ([`ReceiptHead`], from [`Db::query_heads`]).
#[derive(Debug, Clone)]
pub struct QueryPage<R = StoredReceipt> {
    /// The matching receipts, in the query's order, each read and checked from the log.
    pub receipts: Vec<R>,
    /// Resume here for the next page (`None` when the answer is exhausted). Stays valid
    /// while writes go on: later pages also see receipts appended since.
    pub next_cursor: Option<String>,
    /// The index covered every entry before this sequence number.
    pub watermark: Seq,
    /// What can be proven about this answer's completeness.
    pub completeness: Completeness,
    /// Candidates the index proposed that the re-check against the log rejected (not
    /// returned). Plans over-approximate where the index is coarse (time ranges, a plain
    /// sequence walk), so this is a cost figure, not an alarm: an index that disagrees with
    /// the log is found by [`Db::check_index`].
    pub candidates_rejected: u64,
}

/// A session's receipts and their parent links.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The graph (roots, children, dangling parents, cycles, duplicate ids).
    pub graph: TraceGraph,
    /// The receipts, in sequence order.
    pub receipts: Vec<StoredReceipt>,
}

/// The outcome of [`Db::check_index`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexCheck {
    /// The watermark both indexes were compared at.
    pub watermark: Seq,
    /// Whether the live index equals the rebuild from the log.
    pub matches: bool,
}

/// The index's state, for `inspect` and monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStatus {
    /// The index covers every entry before this.
    pub watermark: Seq,
    /// The log's durable end.
    pub durable_end: Seq,
    /// What opening did.
    pub opening: crate::indexer::IndexOpening,
}

impl IndexStatus {
    /// Durable entries the index does not cover yet.
    #[must_use]
    pub fn lag_entries(&self) -> u64 {
        self.durable_end.0.saturating_sub(self.watermark.0)
    }
}

/// [`IndexSource`] over a redb snapshot (shared with other searches of a [`Db`] until the
/// indexer's next commit: see [`trailmix_index::Index::shared_reader`]).
pub(crate) struct Snapshot(pub(crate) std::sync::Arc<IndexReader>);

/// One search: an index snapshot, the log to re-check its candidates against, and the
/// store's hash algorithm. [`Db`] and [`crate::ReadOnlyStore`] answer through it.
pub(crate) struct Search<'a, L: LogStorage> {
    pub(crate) snapshot: Snapshot,
    pub(crate) reads: &'a Arc<LogReads<L>>,
    pub(crate) alg: HashAlgorithm,
    /// Threads that share the reads of a page (see [`ReadPool`]).
    pub(crate) pool: &'a ReadPool,
}

/// Most candidates a page or trace reads at once: what it holds beyond its results.
const CANDIDATES_AT_ONCE_MAX: usize = 256;

/// How a search reads one candidate: a full receipt or its head, unchecked link.
type ReadCandidate<L, R> = fn(&LogReads<L>, HashAlgorithm, Seq) -> Result<Option<Unlinked<R>>>;

impl<L: LogStorage> Search<'_, L> {
    /// One page of `query`'s answer, each receipt re-checked against the log.
    pub(crate) fn query(&self, query: &Query) -> Result<QueryPage> {
        self.query_with(query, read_result::<L>)
    }

    /// [`Search::query`] without reading payloads out (see [`Db::query_heads`]).
    pub(crate) fn query_heads(&self, query: &Query) -> Result<QueryPage<ReceiptHead>> {
        self.query_with(query, read_receipt_head_unlinked::<L>)
    }

    /// Reads `seqs` with `read`, on the pool's threads where it has them free, and returns the
    /// answers in the order of `seqs`.
    fn read_all<R: Send + 'static>(
        &self,
        seqs: Vec<Seq>,
        read: ReadCandidate<L, R>,
    ) -> Vec<Result<Option<Unlinked<R>>>> {
        let (reads, alg) = (Arc::clone(self.reads), self.alg);
        self.pool.map(seqs, move |&seq| read(&reads, alg, seq))
    }

    /// One page of `query`'s answer, each candidate read (and checked) by `read`; the links
    /// of the results to their next entries are checked once the page is complete.
    ///
    /// Candidates are read in groups of as many as the page still lacks (so never one more
    /// than a one-by-one walk would read), each group's reads shared out by the pool; the
    /// results are taken in candidate order, so the page, its cursor and its first error are
    /// those of a one-by-one walk.
    fn query_with<R: QueryHit + Send + 'static>(
        &self,
        query: &Query,
        read: ReadCandidate<L, R>,
    ) -> Result<QueryPage<R>> {
        // `plan` validates the limit and the cursor.
        let plan = trailmix_query::plan(query, &self.snapshot).map_err(query_error)?;
        let mut page = QueryPage {
            receipts: Vec::new(),
            next_cursor: None,
            watermark: Seq(self.snapshot.watermark()),
            completeness: plan.completeness(),
            candidates_rejected: 0,
        };
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        // A default-sized page never regrows (each regrowth moved every result read so far);
        // a larger limit is often a session's or trace's few results, so it starts there too.
        let mut results = Vec::with_capacity(limit.min(trailmix_query::DEFAULT_LIMIT as usize));
        let mut candidates = plan
            .candidates(&self.snapshot, query.cursor.as_ref())
            .map(|candidate| candidate.map(|candidate| candidate.seq));
        'page: loop {
            let wanted = limit
                .saturating_sub(results.len())
                .clamp(1, CANDIDATES_AT_ONCE_MAX);
            let (seqs, walk_end) = take_candidates(&mut candidates, wanted);
            self.reads.map_for_reads(&seqs);
            for read in self.read_all(seqs, read) {
                let Some(receipt) = read? else {
                    continue;
                };
                let fields = HeaderFields {
                    header: receipt.peek().header(),
                    logged_at_ns: receipt.peek().position().logged_at_ns,
                };
                if !query.filter.matches_fields_of(&fields) {
                    page.candidates_rejected += 1;
                    continue;
                }
                results.push(receipt);
                if results.len() >= limit {
                    // Only a full page can have more after it; its cursor is built once.
                    page.next_cursor = results.last().map(|last| {
                        let position = last.peek().position();
                        let record =
                            index_record(position.seq, position.logged_at_ns, last.peek().header());
                        plan.cursor_after(&record).encode()
                    });
                    break 'page;
                }
            }
            match walk_end {
                WalkEnd::More => {}
                WalkEnd::Done => break,
                WalkEnd::Failed(err) => return Err(query_error(err)),
            }
        }
        page.receipts = check_links(self.reads, results)?;
        Ok(page)
    }

    /// The receipt `(tenant, event_id)` among the entries the snapshot covers.
    pub(crate) fn find_indexed(
        &self,
        tenant: &str,
        event_id: &str,
    ) -> Result<Option<StoredReceipt>> {
        let candidates = self
            .snapshot
            .event_seqs(tenant, event_id)
            .map_err(query_error)?;
        Ok(first_event_match(self.reads, self.alg, candidates, tenant, event_id)?.map(|(r, _)| r))
    }

    pub(crate) fn aggregate(&self, query: &AggregateQuery) -> Result<Aggregate> {
        for (name, bound) in [("since", query.since), ("until", query.until)] {
            if bound.is_some_and(|ns| ns.rem_euclid(HOUR_NS) != 0) {
                return Err(Error::Query(format!(
                    "aggregate {name} must be a whole hour (counts are kept per hour of event \
                     time), for example 2026-01-01T00:00Z"
                )));
            }
        }
        trailmix_query::aggregate(query, &self.snapshot).map_err(query_error)
    }

    pub(crate) fn trace(&self, tenant: &str, session_id: &str) -> Result<Trace> {
        let term = Term::Session(tenant, session_id);
        let end = self.snapshot.watermark();
        let mut receipts = Vec::new();
        let mut walk = self
            .snapshot
            .postings(&term, 0..end, Direction::Ascending)
            .map_err(query_error)?;
        loop {
            let (seqs, walk_end) = take_candidates(&mut walk, CANDIDATES_AT_ONCE_MAX);
            for read in self.read_all(seqs, read_result::<L>) {
                if receipts.len() >= TRACE_RECEIPTS_MAX {
                    return Err(Error::Query(format!(
                        "session {session_id} holds more than {TRACE_RECEIPTS_MAX} receipts"
                    )));
                }
                if let Some(receipt) = read?
                    && receipt.peek().header.tenant_id() == tenant
                    && receipt.peek().header.session_id() == Some(session_id)
                {
                    receipts.push(receipt);
                }
            }
            match walk_end {
                WalkEnd::More => {}
                WalkEnd::Done => break,
                WalkEnd::Failed(err) => return Err(query_error(err)),
            }
        }
        let receipts = check_links(self.reads, receipts)?;
        let graph = TraceGraph::build(receipts.iter().map(trace_node));
        Ok(Trace { graph, receipts })
    }
}

/// Looks through the log entries in `range` for the receipt `(tenant, event_id)`.
pub(crate) fn find_in_log<L: LogStorage>(
    reads: &LogReads<L>,
    alg: HashAlgorithm,
    range: Range<Seq>,
    tenant: &str,
    event_id: &str,
) -> Result<Option<StoredReceipt>> {
    let mut links = ScanLinks::new();
    let keys = reads.payload_keys();
    reads.scan(range.start, range.end, |record| {
        links.visit(&record)?;
        if links.all_checked() && !links.is_empty() {
            // The match, checked against this entry's link.
            return Ok(ControlFlow::Break(()));
        }
        match decode_receipt(alg, keys, record.seq, record.kind.get(), record.payload) {
            Ok((receipt, _))
                if receipt.header.tenant_id() == tenant
                    && receipt.header.event_id() == event_id =>
            {
                links.keep(Unlinked::new(&record, receipt.position, receipt));
                if links.all_checked() {
                    // A version 2 receipt: its stored digests were its check.
                    return Ok(ControlFlow::Break(()));
                }
                Ok(ControlFlow::Continue(()))
            }
            Ok(_) | Err(Error::NotFound { .. }) => Ok(ControlFlow::Continue(())),
            Err(other) => Err(other),
        }
    })?;
    Ok(links.finish(reads)?.into_iter().next())
}

fn source_error(err: trailmix_index::IndexError) -> SourceError {
    SourceError::new(err)
}

impl IndexSource for Snapshot {
    fn watermark(&self) -> u64 {
        self.0.watermark()
    }

    fn postings(
        &self,
        term: &Term<'_>,
        seqs: Range<u64>,
        dir: Direction,
    ) -> Result<SeqIter<'_>, SourceError> {
        let walk = self.0.postings(term, seqs, dir).map_err(source_error)?;
        Ok(Box::new(walk.map(|r| r.map_err(source_error))))
    }

    fn posting_count(&self, term: &Term<'_>) -> Result<u64, SourceError> {
        self.0.posting_count(term).map_err(source_error)
    }

    fn event_seqs(&self, tenant: &str, event_id: &str) -> Result<Vec<u64>, SourceError> {
        self.0.event_seqs(tenant, event_id).map_err(source_error)
    }

    fn seq_range_for_logged_at(&self, from_ns: u64, to_ns: u64) -> Result<Range<u64>, SourceError> {
        self.0
            .seq_range_for_logged_at(from_ns, to_ns)
            .map_err(source_error)
    }

    fn event_time(
        &self,
        tenant: &str,
        from_ns: i64,
        to_ns: i64,
        dir: Direction,
    ) -> Result<TimeIter<'_>, SourceError> {
        let walk = self
            .0
            .event_time(tenant, from_ns, to_ns, dir)
            .map_err(source_error)?;
        Ok(Box::new(walk.map(|r| r.map_err(source_error))))
    }

    fn tenants(&self) -> Result<Vec<(String, u64)>, SourceError> {
        self.0.tenants().map_err(source_error)
    }

    fn counts(
        &self,
        tenant: Option<&str>,
        dim: Dimension,
        bucket_ns: u64,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<CountRow>, SourceError> {
        // The index counts per hour; "one bucket for the whole range" (0) is summed here.
        // Ranges are widened to whole hours: the planner only estimates with them, and
        // `Db::aggregate` refuses ranges that are not whole hours.
        let width = if bucket_ns == 0 {
            HOUR_NS.cast_unsigned()
        } else {
            bucket_ns
        };
        let (from_ns, to_ns) = whole_hours(from_ns, to_ns);
        let rows = self
            .0
            .counts(tenant, dim, width, from_ns, to_ns)
            .map_err(source_error)?;
        let mut out: Vec<CountRow> = rows
            .into_iter()
            .map(|r| CountRow {
                bucket_start_ns: if bucket_ns == 0 {
                    from_ns
                } else {
                    r.bucket_start_ns
                },
                tenant: r.tenant,
                value: r.value,
                count: r.count,
            })
            .collect();
        if bucket_ns == 0 {
            out.sort();
            out.dedup_by(|later, kept| {
                let same = later.tenant == kept.tenant && later.value == kept.value;
                if same {
                    kept.count += later.count;
                }
                same
            });
        }
        Ok(out)
    }
}

const HOUR_NS: i64 = trailmix_index::HOUR_NS;

/// `[from, to)` widened to whole hours, within the representable range.
fn whole_hours(from_ns: i64, to_ns: i64) -> (i64, i64) {
    let lowest = (i64::MIN / HOUR_NS) * HOUR_NS;
    let highest = (i64::MAX / HOUR_NS) * HOUR_NS;
    let from = from_ns.max(lowest).div_euclid(HOUR_NS) * HOUR_NS;
    let to = if to_ns >= highest {
        highest
    } else {
        let floor = to_ns.div_euclid(HOUR_NS) * HOUR_NS;
        if floor == to_ns {
            floor
        } else {
            floor + HOUR_NS
        }
    };
    (from, to.max(from))
}

/// How a walk over candidates ended when [`take_candidates`] stopped taking.
enum WalkEnd<E> {
    /// It may hold more.
    More,
    /// It has no more.
    Done,
    /// It failed after the candidates taken (reported once they are read, as a one-by-one
    /// walk would).
    Failed(E),
}

/// Up to `wanted` candidate seqs from `walk`, and how the walk stood after them.
fn take_candidates<E>(
    walk: &mut impl Iterator<Item = std::result::Result<u64, E>>,
    wanted: usize,
) -> (Vec<Seq>, WalkEnd<E>) {
    let mut seqs = Vec::with_capacity(wanted);
    while seqs.len() < wanted {
        match walk.next() {
            Some(Ok(seq)) => seqs.push(Seq(seq)),
            Some(Err(err)) => return (seqs, WalkEnd::Failed(err)),
            None => return (seqs, WalkEnd::Done),
        }
    }
    (seqs, WalkEnd::More)
}

/// A query result: the receipt at `seq`, its link unchecked ([`ReadCandidate`]).
fn read_result<L: LogStorage>(
    reads: &LogReads<L>,
    alg: HashAlgorithm,
    seq: Seq,
) -> Result<Option<Unlinked<StoredReceipt>>> {
    Ok(read_receipt_unlinked(reads, alg, seq)?.map(|read| read.map(|(receipt, _)| receipt)))
}

pub(crate) fn query_error(err: impl std::fmt::Display) -> Error {
    Error::Query(err.to_string())
}

impl<L: LogStorage> Db<L> {
    fn snapshot(&self, freshness: Freshness) -> Result<Snapshot> {
        let keeper = self.index_keeper();
        keeper.check_running()?;
        if freshness == Freshness::Durable {
            keeper.wait_for(self.durable_end(), FRESHNESS_WAIT_MAX)?;
        }
        let reader = keeper.index().shared_reader().map_err(|e| Error::Index {
            path: keeper.index().path().to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(Snapshot(reader))
    }

    fn search(&self, freshness: Freshness) -> Result<Search<'_, L>> {
        Ok(Search {
            snapshot: self.snapshot(freshness)?,
            reads: self.reads(),
            alg: self.hash_algorithm(),
            pool: self.read_pool(),
        })
    }

    /// Runs `query` (see [`Query::parse`] for the text form) and returns one page.
    ///
    /// # Errors
    /// [`Error::Query`] for a bad limit, range or cursor; [`Error::Index`] when the index is
    /// unusable; [`Error::Damaged`] when a receipt the index names fails its digest check in
    /// the log; [`Error::Wal`].
    pub fn query(&self, query: &Query, freshness: Freshness) -> Result<QueryPage> {
        self.search(freshness)?.query(query)
    }

    /// Runs `query` as [`Db::query`] does, with every check (each result is read from the log
    /// and its digests, header and filter re-checked), but returns the results without their
    /// payloads: no payload is copied or decrypted. For listings, counts by field and audits
    /// of headers, where the payload is not needed.
    ///
    /// # Errors
    /// As for [`Db::query`].
    pub fn query_heads(
        &self,
        query: &Query,
        freshness: Freshness,
    ) -> Result<QueryPage<ReceiptHead>> {
        self.search(freshness)?.query_heads(query)
    }

    /// Parses the CLI filter syntax (`tenant=acme model=gpt-4o since=2026-01-01T00:00Z`) and
    /// runs it.
    ///
    /// # Errors
    /// [`Error::Query`] with the parser's message (byte offset, token, what was expected),
    /// and those of [`Db::query`].
    pub fn query_text(&self, text: &str, freshness: Freshness) -> Result<QueryPage> {
        let query = Query::parse(text).map_err(query_error)?;
        self.query(&query, freshness)
    }

    /// The receipt `(tenant, event_id)`, if the store holds it.
    ///
    /// # Errors
    /// As for [`Db::query`].
    pub fn find_event(&self, tenant: &str, event_id: &str) -> Result<Option<StoredReceipt>> {
        let index = self.index_keeper().index();
        let index_error = |e: trailmix_index::IndexError| Error::Index {
            path: index.path().to_path_buf(),
            detail: e.to_string(),
        };
        // The snapshot lookups share until the indexer's next commit: no redb read
        // transaction of its own per lookup. The receipt is still read from the log and
        // checked; what the snapshot does not cover is looked for in the log.
        let reader = index.shared_reader().map_err(index_error)?;
        let candidates = reader.event_seqs(tenant, event_id).map_err(index_error)?;
        let found = first_event_match(
            self.reads(),
            self.hash_algorithm(),
            candidates,
            tenant,
            event_id,
        )?;
        match found {
            Some((receipt, _)) => Ok(Some(receipt)),
            None => self.find_unindexed(Seq(reader.watermark()), tenant, event_id),
        }
    }

    /// Looks through the durable entries from `from` (the watermark of the index snapshot
    /// already searched) on.
    fn find_unindexed(
        &self,
        from: Seq,
        tenant: &str,
        event_id: &str,
    ) -> Result<Option<StoredReceipt>> {
        find_in_log(
            self.reads(),
            self.hash_algorithm(),
            from..self.durable_end(),
            tenant,
            event_id,
        )
    }

    /// Counts by tenant, model, kind or decision per time bucket of event time, from the
    /// index alone (no receipt is decoded). The index keeps counts per hour, so `since` and
    /// `until` must be whole hours (UTC).
    ///
    /// # Errors
    /// [`Error::Query`] for a range that is empty or not whole hours, [`Error::Index`].
    pub fn aggregate(&self, query: &AggregateQuery, freshness: Freshness) -> Result<Aggregate> {
        self.search(freshness)?.aggregate(query)
    }

    /// All receipts of a session with their parent links, as a graph (cycles and dangling
    /// parents reported).
    ///
    /// # Errors
    /// [`Error::Query`] when the session holds more than [`TRACE_RECEIPTS_MAX`] receipts, and
    /// those of [`Db::query`].
    pub fn trace(&self, tenant: &str, session_id: &str, freshness: Freshness) -> Result<Trace> {
        self.search(freshness)?.trace(tenant, session_id)
    }

    /// The chain of parents from `(tenant, event_id)` up to its root (or to a missing
    /// parent, a cycle, or [`LINEAGE_HOPS_MAX`] hops); `None` when the store does not hold
    /// the event.
    ///
    /// # Errors
    /// Those of [`Db::find_event`].
    pub fn lineage(&self, tenant: &str, event_id: &str) -> Result<Option<Lineage>> {
        let Some(start) = self.find_event(tenant, event_id)? else {
            return Ok(None);
        };
        trailmix_query::lineage(
            trace_node(&start),
            |parent| {
                self.find_event(tenant, parent)
                    .map(|found| found.as_ref().map(trace_node))
            },
            LINEAGE_HOPS_MAX,
        )
        .map(Some)
    }

    /// Compares the live index with one rebuilt from the log alone (up to the live index's
    /// watermark), by content: a stale or tampered index that omits or adds postings shows
    /// here. Costs a full read of the log and a scratch index file the size of the live one.
    ///
    /// # Errors
    /// [`Error::Index`], [`Error::Damaged`], [`Error::Wal`].
    pub fn check_index(&self) -> Result<IndexCheck> {
        let snapshot = self.snapshot(Freshness::Indexed)?;
        let keeper = self.index_keeper();
        let live = snapshot.0.logical_digest().map_err(|e| Error::Index {
            path: keeper.index().path().to_path_buf(),
            detail: e.to_string(),
        })?;
        let watermark = Seq(snapshot.watermark());
        let rebuilt = keeper.rebuild_digest(watermark)?;
        Ok(IndexCheck {
            watermark,
            matches: live == rebuilt,
        })
    }

    /// The index's watermark, lag and what opening did to it.
    #[must_use]
    pub fn index_status(&self) -> IndexStatus {
        let keeper = self.index_keeper();
        IndexStatus {
            watermark: keeper.watermark(),
            durable_end: self.durable_end(),
            opening: keeper.opening().clone(),
        }
    }

    /// A read handle that only ever sees `tenant`'s receipts.
    #[must_use]
    pub fn tenant(&self, tenant: &str) -> TenantView<'_, L> {
        TenantView {
            db: self,
            tenant: tenant.to_owned(),
        }
    }
}

fn trace_node(receipt: &StoredReceipt) -> TraceNode {
    TraceNode {
        seq: receipt.position.seq.0,
        event_id: receipt.header.event_id().to_owned(),
        parent_id: receipt.header.parent_id().map(str::to_owned),
    }
}

/// Reads scoped to one tenant: every query is forced to that tenant, and every receipt
/// returned is checked (from the log) to belong to it.
#[derive(Debug, Clone)]
pub struct TenantView<'a, L: LogStorage> {
    db: &'a Db<L>,
    tenant: String,
}

impl<L: LogStorage> TenantView<'_, L> {
    /// The tenant.
    #[must_use]
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Runs `query` within the tenant.
    ///
    /// # Errors
    /// [`Error::Query`] when the filter names another tenant; those of [`Db::query`].
    pub fn query(&self, query: &Query, freshness: Freshness) -> Result<QueryPage> {
        let scoped = self.scope(query)?;
        Ok(self.own(self.db.query(&scoped, freshness)?))
    }

    /// Runs `query` within the tenant without reading payloads (see [`Db::query_heads`]).
    ///
    /// # Errors
    /// As for [`TenantView::query`].
    pub fn query_heads(
        &self,
        query: &Query,
        freshness: Freshness,
    ) -> Result<QueryPage<ReceiptHead>> {
        let scoped = self.scope(query)?;
        Ok(self.own(self.db.query_heads(&scoped, freshness)?))
    }

    /// Drops whatever is not the tenant's (the scoped filter already excludes it; this keeps
    /// the handle's promise even against a query layer that got it wrong).
    fn own<R: QueryHit>(&self, mut page: QueryPage<R>) -> QueryPage<R> {
        let before = page.receipts.len();
        page.receipts
            .retain(|r| r.header().tenant_id() == self.tenant);
        page.candidates_rejected += (before - page.receipts.len()) as u64;
        page
    }

    /// Parses and runs a filter within the tenant.
    ///
    /// # Errors
    /// As for [`TenantView::query`].
    pub fn query_text(&self, text: &str, freshness: Freshness) -> Result<QueryPage> {
        let query = Query::parse(text).map_err(query_error)?;
        self.query(&query, freshness)
    }

    fn scope(&self, query: &Query) -> Result<Query> {
        match &query.filter.tenant {
            Some(other) if *other != self.tenant => Err(Error::Query(format!(
                "this handle reads tenant {:?} only; the filter names tenant {other:?}",
                self.tenant
            ))),
            _ => {
                let mut scoped = query.clone();
                scoped.filter.tenant = Some(self.tenant.clone());
                Ok(scoped)
            }
        }
    }

    /// The tenant's receipt at `seq`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `seq` holds no receipt of this tenant.
    pub fn get(&self, seq: Seq) -> Result<StoredReceipt> {
        let receipt = self.db.get(seq)?;
        if receipt.header.tenant_id() == self.tenant {
            Ok(receipt)
        } else {
            Err(Error::NotFound {
                seq,
                detail: format!("no receipt of tenant {:?} there", self.tenant),
            })
        }
    }

    /// The tenant's receipt with `event_id`.
    ///
    /// # Errors
    /// As for [`Db::find_event`].
    pub fn find_event(&self, event_id: &str) -> Result<Option<StoredReceipt>> {
        self.db.find_event(&self.tenant, event_id)
    }

    /// A session of the tenant (see [`Db::trace`]).
    ///
    /// # Errors
    /// As for [`Db::trace`].
    pub fn trace(&self, session_id: &str, freshness: Freshness) -> Result<Trace> {
        self.db.trace(&self.tenant, session_id, freshness)
    }

    /// Counts within the tenant (see [`Db::aggregate`]).
    ///
    /// # Errors
    /// As for [`Db::aggregate`].
    pub fn aggregate(&self, query: &AggregateQuery, freshness: Freshness) -> Result<Aggregate> {
        let mut scoped = query.clone();
        scoped.tenant = Some(self.tenant.clone());
        self.db.aggregate(&scoped, freshness)
    }

    /// The filter that restricts to this tenant (a starting point for queries).
    #[must_use]
    pub fn filter(&self) -> Filter {
        Filter {
            tenant: Some(self.tenant.clone()),
            ..Filter::default()
        }
    }
}

/// Most entries [`Follow`] reads from the log at a time (its whole buffer).
pub const FOLLOW_CHUNK_ENTRIES: u64 = 256;
/// How often [`Follow`] looks for new durable entries while it waits.
pub const FOLLOW_POLL: Duration = Duration::from_millis(10);

/// Durable receipts from a position on, as they arrive (see [`Db::follow`]).
///
/// Pull-based: it reads at most [`FOLLOW_CHUNK_ENTRIES`] entries ahead, so a slow consumer
/// slows the reading, never fills memory. It reads the log itself (not the index), so it sees
/// each receipt as soon as it is durable.
#[derive(Debug)]
pub struct Follow<L: LogStorage> {
    db: Db<L>,
    next: Seq,
    filter: Filter,
    buffer: std::collections::VecDeque<StoredReceipt>,
}

impl<L: LogStorage> Db<L> {
    /// Follows the log from `from` (inclusive; use a previous [`Follow::position`] to resume),
    /// yielding the receipts that match `filter` (use `Filter::default()` for all).
    #[must_use]
    pub fn follow(&self, from: Seq, filter: Filter) -> Follow<L> {
        Follow {
            db: self.clone(),
            next: from,
            filter,
            buffer: std::collections::VecDeque::new(),
        }
    }
}

impl<L: LogStorage> Follow<L> {
    /// Where to resume: the first sequence number not yet yielded or skipped.
    #[must_use]
    pub fn position(&self) -> Seq {
        self.buffer.front().map_or(self.next, |r| r.position.seq)
    }

    /// The next matching receipt, waiting up to `timeout` for one to become durable.
    /// `Ok(None)` on timeout, or when the store was closed and everything durable was read.
    ///
    /// # Errors
    /// [`Error::Damaged`] when an entry fails its digest check, [`Error::Wal`]. Every matching
    /// receipt before the damage whose link the scan checked is yielded first; the receipt
    /// just before a damaged entry is withheld when the damage hides its link. The error then
    /// repeats on every call: [`Follow::position`] does not move past the damage.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<StoredReceipt>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(receipt) = self.buffer.pop_front() {
                return Ok(Some(receipt));
            }
            let end = self.db.durable_end();
            if self.next < end {
                self.fill(end)?;
                continue;
            }
            if self.db.is_stopped() || std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(FOLLOW_POLL);
        }
    }

    fn fill(&mut self, end: Seq) -> Result<()> {
        let to = Seq(end.0.min(self.next.0 + FOLLOW_CHUNK_ENTRIES));
        let alg = self.db.hash_algorithm();
        let reads = self.db.reads();
        let mut links = ScanLinks::new();
        let keys = reads.payload_keys();
        let scanned = reads.scan(self.next, to, |record| {
            links.visit(&record)?;
            match decode_receipt(alg, keys, record.seq, record.kind.get(), record.payload) {
                Ok((receipt, _)) => {
                    let fields = HeaderFields {
                        header: &receipt.header,
                        logged_at_ns: receipt.position.logged_at_ns,
                    };
                    if self.filter.matches_fields_of(&fields) {
                        links.keep(Unlinked::new(&record, receipt.position, receipt));
                    }
                }
                Err(Error::NotFound { .. }) => {}
                Err(other) => return Err(other),
            }
            Ok(ControlFlow::Continue(()))
        });
        let reached = match scanned {
            Ok(reached) => reached,
            Err(err) => return self.stop_at_damage(links, err),
        };
        let found = links.finish(reads)?;
        self.buffer.extend(found);
        self.next = reached.max(self.next);
        if reached < to {
            return Err(Error::Damaged {
                seq: reached,
                detail: format!("the log ends at {reached} but {end} entries are durable"),
            });
        }
        Ok(())
    }
}

impl<L: LogStorage> Follow<L> {
    /// A scan stopped at `err`: the receipts before it whose links it checked are yielded
    /// first, so a SIEM stream carries everything proven good up to the damage; the stream
    /// resumes after them and meets the damage again, which then is the error (with nothing
    /// proven before it in that scan).
    fn stop_at_damage(&mut self, links: ScanLinks<StoredReceipt>, err: Error) -> Result<()> {
        let proven = links.checked_prefix();
        let Some(last) = proven.last() else {
            return Err(err);
        };
        self.next = last.position.seq.next();
        self.buffer.extend(proven);
        Ok(())
    }
}

impl<L: LogStorage> Iterator for Follow<L> {
    type Item = Result<StoredReceipt>;

    /// Blocks until the next matching receipt is durable; `None` once the store is closed
    /// and drained.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_timeout(Duration::from_secs(1)) {
                Ok(Some(receipt)) => return Some(Ok(receipt)),
                Ok(None) if self.db.is_stopped() => return None,
                Ok(None) => {}
                Err(err) => return Some(Err(err)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::{ActorType, Decision, Kind, Receipt, Timestamp};
    use trailmix_query::ModelFilter;

    /// Headers as a read decodes them (labels not built yet), with and without each
    /// optional field and with labels.
    fn headers() -> Vec<ReceiptHeader> {
        let base = |event: &str| {
            Receipt::builder("acme", event, Kind::LlmCall)
                .app_id("app-1")
                .actor_type(ActorType::Agent)
                .event_time(Timestamp::from_unix_nanos(1_000))
        };
        let receipts = [
            base("e1").build(),
            base("e2")
                .session_id("s1")
                .subject_id("u1")
                .model_name("gpt")
                .model_version("4o")
                .decision(Decision::Deny)
                .label("env", "prod")
                .label("team", "ml")
                .build(),
            base("e3")
                .model_name("gpt")
                .label("env", "dev")
                .event_time(Timestamp::from_unix_nanos(2_000))
                .build(),
        ];
        receipts
            .into_iter()
            .map(|r| {
                let encoded = r.expect("a valid receipt").header().encode();
                ReceiptHeader::decode(&encoded).expect("decodes")
            })
            .collect()
    }

    fn filters() -> Vec<Filter> {
        let mut out = vec![Filter::default()];
        let mut each = |f: &dyn Fn(&mut Filter)| {
            let mut filter = Filter::default();
            f(&mut filter);
            out.push(filter);
        };
        each(&|f| f.tenant = Some("acme".into()));
        each(&|f| f.tenant = Some("other".into()));
        each(&|f| f.event_id = Some("e2".into()));
        each(&|f| f.app = Some("app-1".into()));
        each(&|f| f.app = Some("app-2".into()));
        each(&|f| f.session = Some("s1".into()));
        each(&|f| f.subject = Some("u1".into()));
        each(&|f| f.kind = Some("llm_call".into()));
        each(&|f| f.kind = Some("tool_call".into()));
        each(&|f| f.decision = Some("deny".into()));
        for version in [None, Some("4o"), Some("4")] {
            each(&|f| {
                f.model = Some(ModelFilter {
                    name: "gpt".into(),
                    version: version.map(str::to_owned),
                });
            });
        }
        each(&|f| {
            f.labels.insert("env".into(), "prod".into());
        });
        each(&|f| {
            f.labels.insert("env".into(), "dev".into());
            f.tenant = Some("acme".into());
        });
        each(&|f| {
            f.labels.insert("team".into(), "ml".into());
            f.labels.insert("env".into(), "prod".into());
        });
        each(&|f| {
            f.labels.insert("missing".into(), String::new());
        });
        each(&|f| f.since = Some(1_500));
        each(&|f| f.until = Some(1_500));
        each(&|f| f.logged_since = Some(8));
        each(&|f| f.logged_until = Some(8));
        out
    }

    /// A query's re-check reads the header through `HeaderFields`; `Filter::matches` over an
    /// `IndexRecord` of every field is the definition. They must agree on every term.
    #[test]
    fn header_fields_match_as_the_index_record_does() {
        let (mut matched, mut rejected) = (0, 0);
        for (i, header) in headers().iter().enumerate() {
            let logged_at_ns = 7 + i as u64;
            let record = index_record(Seq(i as u64), logged_at_ns, header);
            let fields = HeaderFields {
                header,
                logged_at_ns,
            };
            for filter in filters() {
                let want = filter.matches(&record);
                assert_eq!(
                    filter.matches_fields_of(&fields),
                    want,
                    "filter {filter} on header {i}"
                );
                if want {
                    matched += 1;
                } else {
                    rejected += 1;
                }
            }
        }
        assert!(matched > 20 && rejected > 20, "{matched} / {rejected}");
        // And what some filters select, by hand (so a fault shared by both sides shows).
        let selected = |filter: &Filter| -> Vec<usize> {
            headers()
                .iter()
                .enumerate()
                .filter(|(_, header)| {
                    filter.matches_fields_of(&HeaderFields {
                        header,
                        logged_at_ns: 7,
                    })
                })
                .map(|(i, _)| i)
                .collect()
        };
        let model = |version: Option<&str>| Filter {
            model: Some(ModelFilter {
                name: "gpt".into(),
                version: version.map(str::to_owned),
            }),
            ..Filter::default()
        };
        assert_eq!(selected(&model(None)), [1, 2]);
        assert_eq!(selected(&model(Some("4o"))), [1]);
        assert!(selected(&model(Some("4"))).is_empty());
        let mut env_dev = Filter::default();
        env_dev.labels.insert("env".into(), "dev".into());
        assert_eq!(selected(&env_dev), [2]);
        env_dev.labels.insert("team".into(), "ml".into());
        assert!(selected(&env_dev).is_empty());
    }
}
