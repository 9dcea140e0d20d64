//! [`ModelSource`]: an in-memory [`IndexSource`] over owned records, the reference the real
//! index is tested against, and [`execute`], the engine's page loop over it.
//!
//! Everything here is linear scans: correct by inspection, not fast.

use std::collections::BTreeMap;
use std::ops::Range;

use trailmix_index::{Dimension, Direction, IndexRecord, Term};

use crate::cursor::Cursor;
use crate::error::QueryError;
use crate::filter::Query;
use crate::plan::plan;
use crate::source::{CountRow, IndexSource, SeqIter, SourceError, TimeIter};

/// An owned [`IndexRecord`] (the fields mean what they mean there).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelRecord {
    /// The entry's sequence number.
    pub seq: u64,
    /// The writer's clock (non-decreasing with `seq`).
    pub logged_at_ns: u64,
    /// The client's event time.
    pub event_time_ns: i64,
    /// `tenant_id`.
    pub tenant: String,
    /// `event_id`.
    pub event_id: String,
    /// `app_id`.
    pub app_id: String,
    /// `session_id`.
    pub session_id: Option<String>,
    /// `parent_id`.
    pub parent_id: Option<String>,
    /// `subject_id`.
    pub subject_id: Option<String>,
    /// `kind` (wire name).
    pub kind: String,
    /// `actor_type` (wire name).
    pub actor_type: String,
    /// `policy_eval.decision` (wire name).
    pub decision: Option<String>,
    /// `model.name`.
    pub model_name: Option<String>,
    /// `model.version`.
    pub model_version: Option<String>,
    /// `model.provider`.
    pub model_provider: Option<String>,
    /// `retention_class`.
    pub retention_class: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl ModelRecord {
    /// The record as the index sees it.
    #[must_use]
    pub fn as_index_record(&self) -> IndexRecord<'_> {
        IndexRecord {
            seq: self.seq,
            logged_at_ns: self.logged_at_ns,
            event_time_ns: self.event_time_ns,
            tenant: &self.tenant,
            event_id: &self.event_id,
            app_id: &self.app_id,
            session_id: self.session_id.as_deref(),
            parent_id: self.parent_id.as_deref(),
            subject_id: self.subject_id.as_deref(),
            kind: &self.kind,
            actor_type: &self.actor_type,
            decision: self.decision.as_deref(),
            model_name: self.model_name.as_deref(),
            model_version: self.model_version.as_deref(),
            model_provider: self.model_provider.as_deref(),
            retention_class: self.retention_class.as_deref(),
            labels: &self.labels,
        }
    }

    /// Whether the record carries `term` (the index's posting semantics).
    #[must_use]
    pub fn has_term(&self, term: &Term<'_>) -> bool {
        let s = |v: &Option<String>, want: &str| v.as_deref() == Some(want);
        if self.tenant != term.tenant() {
            return false;
        }
        match *term {
            Term::Tenant(_) => true,
            Term::ModelName(_, n) => s(&self.model_name, n),
            Term::ModelVersion(_, n, v) => s(&self.model_name, n) && s(&self.model_version, v),
            Term::Kind(_, k) => self.kind == k,
            Term::Decision(_, d) => s(&self.decision, d),
            Term::Session(_, v) => s(&self.session_id, v),
            Term::Subject(_, v) => s(&self.subject_id, v),
            Term::App(_, v) => self.app_id == v,
            Term::Label(_, k, v) => self.labels.get(k).is_some_and(|have| have == v),
        }
    }

    /// The record's value in `dim` (see [`Dimension`]).
    #[must_use]
    pub fn dimension_value(&self, dim: Dimension) -> String {
        match dim {
            Dimension::Tenant => self.tenant.clone(),
            Dimension::Model => match (&self.model_name, &self.model_version) {
                (Some(n), Some(v)) => format!("{n}@{v}"),
                (Some(n), None) => n.clone(),
                (None, _) => String::new(),
            },
            Dimension::Kind => self.kind.clone(),
            Dimension::Decision => self.decision.clone().unwrap_or_default(),
        }
    }
}

/// Records in sequence order, served as an index. Sequence numbers need not be dense (gaps
/// stand for non-receipt entries such as checkpoints).
#[derive(Debug, Clone, Default)]
pub struct ModelSource {
    records: Vec<ModelRecord>,
    watermark: u64,
}

impl ModelSource {
    /// An empty source.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a record, as the log would.
    ///
    /// # Errors
    /// When its seq is not above the last one, or its logged-at time is below the last one
    /// (the log's invariants).
    pub fn push(&mut self, record: ModelRecord) -> Result<(), SourceError> {
        if let Some(last) = self.records.last() {
            if record.seq <= last.seq {
                return Err(SourceError::new(format!(
                    "seq {} is not above the last seq {}",
                    record.seq, last.seq
                )));
            }
            if record.logged_at_ns < last.logged_at_ns {
                return Err(SourceError::new("logged-at time went backwards"));
            }
        }
        self.watermark = self.watermark.max(record.seq.saturating_add(1));
        self.records.push(record);
        Ok(())
    }

    /// Moves the watermark up (entries after the last receipt that are not receipts).
    pub fn advance_watermark(&mut self, watermark: u64) {
        self.watermark = self.watermark.max(watermark);
    }

    /// All records, by seq.
    #[must_use]
    pub fn records(&self) -> &[ModelRecord] {
        &self.records
    }

    /// The record at `seq`.
    #[must_use]
    pub fn get(&self, seq: u64) -> Option<&ModelRecord> {
        self.records
            .binary_search_by_key(&seq, |r| r.seq)
            .ok()
            .and_then(|i| self.records.get(i))
    }
}

/// Whether `v` is in `[from, to)`, where `to == MAX` is unbounded.
fn within<T: Ord + Copy>(v: T, from: T, to: T, max: T) -> bool {
    v >= from && (to == max || v < to)
}

impl IndexSource for ModelSource {
    fn watermark(&self) -> u64 {
        self.watermark
    }

    fn postings(
        &self,
        term: &Term<'_>,
        seqs: Range<u64>,
        dir: Direction,
    ) -> Result<SeqIter<'_>, SourceError> {
        // Records are sorted by seq: the range is one slice, walked lazily (as an index
        // walks its posting list).
        let lo = self.records.partition_point(|r| r.seq < seqs.start);
        // An end of u64::MAX is unbounded (see IndexSource).
        let hi = self
            .records
            .partition_point(|r| seqs.end == u64::MAX || r.seq < seqs.end);
        let records = self.records.get(lo..hi.max(lo)).unwrap_or(&[]);
        let term = OwnedTerm::of(term);
        let hits = move |r: &ModelRecord| r.has_term(&term.term()).then_some(r.seq);
        Ok(match dir {
            Direction::Ascending => Box::new(records.iter().filter_map(hits).map(Ok)),
            Direction::Descending => Box::new(records.iter().rev().filter_map(hits).map(Ok)),
        })
    }

    fn posting_count(&self, term: &Term<'_>) -> Result<u64, SourceError> {
        Ok(self.records.iter().filter(|r| r.has_term(term)).count() as u64)
    }

    fn event_seqs(&self, tenant: &str, event_id: &str) -> Result<Vec<u64>, SourceError> {
        Ok(self
            .records
            .iter()
            .filter(|r| r.tenant == tenant && r.event_id == event_id)
            .map(|r| r.seq)
            .collect())
    }

    fn seq_range_for_logged_at(&self, from_ns: u64, to_ns: u64) -> Result<Range<u64>, SourceError> {
        // Logged-at times never decrease, so the matching records are contiguous.
        let lo = self.records.partition_point(|r| r.logged_at_ns < from_ns);
        let hi = if to_ns == u64::MAX {
            self.records.len()
        } else {
            self.records.partition_point(|r| r.logged_at_ns < to_ns)
        };
        let start = self.records.get(lo).map_or(self.watermark, |r| r.seq);
        let end = self.records.get(hi).map_or(self.watermark, |r| r.seq);
        Ok(start..end.max(start))
    }

    fn event_time(
        &self,
        tenant: &str,
        from_ns: i64,
        to_ns: i64,
        dir: Direction,
    ) -> Result<TimeIter<'_>, SourceError> {
        let mut hits: Vec<(i64, u64)> = self
            .records
            .iter()
            .filter(|r| r.tenant == tenant && within(r.event_time_ns, from_ns, to_ns, i64::MAX))
            .map(|r| (r.event_time_ns, r.seq))
            .collect();
        hits.sort_unstable();
        if dir == Direction::Descending {
            hits.reverse();
        }
        Ok(Box::new(hits.into_iter().map(Ok)))
    }

    fn tenants(&self) -> Result<Vec<(String, u64)>, SourceError> {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &self.records {
            *counts.entry(&r.tenant).or_insert(0) += 1;
        }
        Ok(counts.into_iter().map(|(t, c)| (t.to_owned(), c)).collect())
    }

    fn counts(
        &self,
        tenant: Option<&str>,
        dim: Dimension,
        bucket_ns: u64,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<CountRow>, SourceError> {
        let mut counts: BTreeMap<(i64, String, String), u64> = BTreeMap::new();
        let records = self.records.iter().filter(|r| {
            tenant.is_none_or(|t| r.tenant == t)
                && within(r.event_time_ns, from_ns, to_ns, i64::MAX)
        });
        for r in records {
            let bucket = bucket_start(r.event_time_ns, bucket_ns, from_ns);
            let key = (bucket, r.tenant.clone(), r.dimension_value(dim));
            *counts.entry(key).or_insert(0) += 1;
        }
        Ok(counts
            .into_iter()
            .map(|((bucket_start_ns, tenant, value), count)| CountRow {
                bucket_start_ns,
                tenant,
                value,
                count,
            })
            .collect())
    }
}

/// `time` rounded down to a multiple of `width` (Euclidean, so negative times round down
/// too); `width == 0` is one bucket starting at `from`.
fn bucket_start(time: i64, width: u64, from: i64) -> i64 {
    match i64::try_from(width) {
        Ok(0) => from,
        Ok(w) => time.div_euclid(w).saturating_mul(w),
        // Wider than the whole i64 range: one bucket, aligned as far down as i64 goes.
        Err(_) => i64::MIN,
    }
}

/// A [`Term`] holding its strings, for a lazy posting walk that outlives the caller's term.
struct OwnedTerm {
    parts: [String; 3],
    make: for<'x> fn(&'x [String; 3]) -> Term<'x>,
}

impl OwnedTerm {
    fn of(term: &Term<'_>) -> Self {
        type Make = for<'x> fn(&'x [String; 3]) -> Term<'x>;
        let (make, parts): (Make, [&str; 3]) = match *term {
            Term::Tenant(t) => (|p| Term::Tenant(&p[0]), [t, "", ""]),
            Term::ModelName(t, n) => (|p| Term::ModelName(&p[0], &p[1]), [t, n, ""]),
            Term::ModelVersion(t, n, v) => (|p| Term::ModelVersion(&p[0], &p[1], &p[2]), [t, n, v]),
            Term::Kind(t, v) => (|p| Term::Kind(&p[0], &p[1]), [t, v, ""]),
            Term::Decision(t, v) => (|p| Term::Decision(&p[0], &p[1]), [t, v, ""]),
            Term::Session(t, v) => (|p| Term::Session(&p[0], &p[1]), [t, v, ""]),
            Term::Subject(t, v) => (|p| Term::Subject(&p[0], &p[1]), [t, v, ""]),
            Term::App(t, v) => (|p| Term::App(&p[0], &p[1]), [t, v, ""]),
            Term::Label(t, k, v) => (|p| Term::Label(&p[0], &p[1], &p[2]), [t, k, v]),
        };
        OwnedTerm {
            parts: parts.map(str::to_owned),
            make,
        }
    }

    fn term(&self) -> Term<'_> {
        (self.make)(&self.parts)
    }
}

/// One page of a query run by [`execute`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The matching receipts' seqs, in the query's order.
    pub seqs: Vec<u64>,
    /// The cursor after the last one (`None` when the page is empty; keep the old cursor).
    pub next: Option<Cursor>,
}

/// Runs one page of `query` the way the engine does: plan, read each candidate "from the
/// log" (here the model's records), keep it if the filter matches, stop at the limit.
///
/// # Errors
/// Planning and source errors.
pub fn execute(source: &ModelSource, query: &Query) -> Result<Page, QueryError> {
    let plan = plan(query, source)?;
    let mut seqs = Vec::new();
    let mut next = None;
    for candidate in plan.candidates(source, query.cursor.as_ref()) {
        let candidate = candidate?;
        let Some(record) = source.get(candidate.seq) else {
            continue; // not a receipt (a checkpoint, say) or not in the log
        };
        let record = record.as_index_record();
        if !query.filter.matches(&record) {
            continue;
        }
        seqs.push(record.seq);
        next = Some(plan.cursor_after(&record));
        if seqs.len() >= query.limit as usize {
            break;
        }
    }
    Ok(Page { seqs, next })
}
