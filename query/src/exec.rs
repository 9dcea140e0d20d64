//! [`Plan::candidates`]: the positions a plan yields, in output order, strictly after a
//! cursor, in bounded memory.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;

use trailmix_index::{Direction, Term};

use crate::cursor::Cursor;
use crate::error::QueryError;
use crate::plan::{Access, Counted, Plan, Route, TIME_SORT_CAP, TenantPlan};
use crate::source::{IndexSource, SeqIter, TimeIter};

/// How many postings a leapfrog cursor steps through before it seeks (re-opens its walk at
/// the target) instead: stepping is cheaper for near targets, seeking for far ones.
const STEPS_BEFORE_SEEK: usize = 8;

/// A position the engine should read: a sequence number, and its event time when the plan
/// walks event time (always for event-time order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// The entry to read.
    pub seq: u64,
    /// Its event time per the index (event-time order only).
    pub event_time_ns: Option<i64>,
}

type Stream<'a> = Box<dyn Iterator<Item = Result<Candidate, QueryError>> + 'a>;

/// The candidates of a plan, in output order (see [`Plan::candidates`]). After an error it
/// yields nothing more.
pub struct Candidates<'a> {
    state: State<'a>,
}

enum State<'a> {
    Failed(Option<QueryError>),
    Scan { next: u64, end: u64, dir: Direction },
    Merge(Merge<'a>),
}

impl Plan {
    /// The positions to read, in output order, strictly after `cursor`. The engine reads each
    /// from the log, keeps it if [`Filter::matches`](crate::Filter::matches) (candidates may
    /// be false positives: non-receipt entries in a scan, event-id collisions, terms the
    /// plan left to the check) and stops at the limit.
    ///
    /// Memory is bounded: posting lists are walked, never collected; several tenants are
    /// merged holding one head each; only a seq-ordered walk of a small event-time range
    /// buffers, at most [`TIME_SORT_CAP`](crate::TIME_SORT_CAP) positions.
    #[must_use]
    pub fn candidates<'a>(
        &'a self,
        source: &'a dyn IndexSource,
        cursor: Option<&Cursor>,
    ) -> Candidates<'a> {
        let state = match self.start(source, cursor) {
            Ok(state) => state,
            Err(e) => State::Failed(Some(e)),
        };
        Candidates { state }
    }

    fn start<'a>(
        &'a self,
        source: &'a dyn IndexSource,
        cursor: Option<&Cursor>,
    ) -> Result<State<'a>, QueryError> {
        if let Some(c) = cursor {
            c.check(&self.filter, self.order)?;
        }
        let after = cursor.map(|c| (c.event_time_ns().unwrap_or(0), c.seq()));
        let dir = self.order.direction();
        match &self.access {
            Access::Empty(_) => Ok(State::Failed(None)),
            Access::Scan => {
                let seqs = after_seq(clip(&self.seqs, 0..source.watermark()), after, dir);
                let (next, end) = match dir {
                    Direction::Ascending => (seqs.start, seqs.end),
                    Direction::Descending => (seqs.end, seqs.start),
                };
                Ok(State::Scan { next, end, dir })
            }
            Access::Tenants(walks) => {
                let ctx = Ctx {
                    plan: self,
                    source,
                    after,
                };
                let streams = walks
                    .iter()
                    .map(|w| ctx.stream(w))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(State::Merge(Merge::new(
                    streams,
                    dir,
                    self.order.is_time(),
                )?))
            }
        }
    }
}

impl Iterator for Candidates<'_> {
    type Item = Result<Candidate, QueryError>;

    fn next(&mut self) -> Option<Self::Item> {
        let out = match &mut self.state {
            State::Failed(e) => return e.take().map(Err),
            State::Scan { next, end, dir } => scan_next(next, *end, *dir).map(Ok),
            State::Merge(m) => m.next(),
        };
        if matches!(out, Some(Err(_))) {
            self.state = State::Failed(None);
        }
        out
    }
}

/// The next seq of a scan: ascending `next..end`, or descending from `next - 1` down to `end`.
fn scan_next(next: &mut u64, end: u64, dir: Direction) -> Option<Candidate> {
    let seq = match dir {
        Direction::Ascending if *next < end => {
            *next += 1;
            *next - 1
        }
        Direction::Descending if *next > end => {
            *next -= 1;
            *next
        }
        _ => return None,
    };
    Some(Candidate {
        seq,
        event_time_ns: None,
    })
}

fn clip(a: &Range<u64>, b: Range<u64>) -> Range<u64> {
    a.start.max(b.start)..a.end.min(b.end)
}

/// The part of `seqs` strictly after the cursor's seq (seq order).
fn after_seq(seqs: Range<u64>, after: Option<(i64, u64)>, dir: Direction) -> Range<u64> {
    match (after, dir) {
        (None, _) => seqs,
        (Some((_, s)), Direction::Ascending) => match s.checked_add(1) {
            Some(next) => seqs.start.max(next)..seqs.end,
            None => 0..0,
        },
        (Some((_, s)), Direction::Descending) => seqs.start..seqs.end.min(s),
    }
}

/// Whether `a` comes strictly before `b` in walk direction.
fn before<T: Ord + Copy>(a: T, b: T, dir: Direction) -> bool {
    match dir {
        Direction::Ascending => a < b,
        Direction::Descending => a > b,
    }
}

fn inconsistent(detail: String) -> QueryError {
    QueryError::IndexInconsistent { detail }
}

/// What every stream of one run shares.
struct Ctx<'a> {
    plan: &'a Plan,
    source: &'a dyn IndexSource,
    after: Option<(i64, u64)>,
}

impl<'a> Ctx<'a> {
    fn dir(&self) -> Direction {
        self.plan.order.direction()
    }

    fn stream(&self, walk: &'a TenantPlan) -> Result<Stream<'a>, QueryError> {
        let tenant = walk.tenant.as_str();
        match &walk.route {
            Route::Postings(terms) => Ok(Box::new(self.leapfrog(tenant, terms))),
            Route::EventIds => self.event_ids(tenant),
            Route::TimeWalk { probes, event } => {
                let events = if *event {
                    Some(self.event_set(tenant)?)
                } else {
                    None
                };
                Ok(Box::new(self.time_walk(tenant, probes, events)?))
            }
            Route::TimeSorted {
                probes, fallback, ..
            } => self.time_sorted(tenant, probes, fallback),
        }
    }

    fn leapfrog(&self, tenant: &'a str, terms: &'a Counted) -> Leapfrog<'a> {
        let seqs = after_seq(self.plan.seqs.clone(), self.after, self.dir());
        Leapfrog::new(self.source, tenant, terms, seqs, self.dir())
    }

    /// The event-id table's candidates, sorted and de-duplicated (for membership tests).
    fn event_set(&self, tenant: &str) -> Result<Vec<u64>, QueryError> {
        let id = self.plan.filter.event_id.as_deref().unwrap_or("");
        let mut seqs = self.source.event_seqs(tenant, id)?;
        seqs.sort_unstable();
        seqs.dedup();
        Ok(seqs)
    }

    fn event_ids(&self, tenant: &str) -> Result<Stream<'a>, QueryError> {
        let seqs = after_seq(self.plan.seqs.clone(), self.after, self.dir());
        let mut found: Vec<u64> = self
            .event_set(tenant)?
            .into_iter()
            .filter(|s| seqs.contains(s))
            .collect();
        if self.dir() == Direction::Descending {
            found.reverse();
        }
        Ok(Box::new(found.into_iter().map(|seq| {
            Ok(Candidate {
                seq,
                event_time_ns: None,
            })
        })))
    }

    fn time_walk(
        &self,
        tenant: &'a str,
        probes: &'a Counted,
        events: Option<Vec<u64>>,
    ) -> Result<TimeWalk<'a>, QueryError> {
        let f = &self.plan.filter;
        let (mut from, mut to) = (f.since.unwrap_or(i64::MIN), f.until.unwrap_or(i64::MAX));
        // Resume in the index at the cursor's time; equal times are skipped entry by entry.
        let after = if self.plan.order.is_time() {
            self.after
        } else {
            None
        };
        match (after, self.dir()) {
            (Some((t, _)), Direction::Ascending) => from = from.max(t),
            // to == i64::MAX means unbounded, so a cursor at i64::MAX keeps its time.
            (Some((t, _)), Direction::Descending) => to = to.min(t.saturating_add(1)),
            (None, _) => {}
        }
        let iter = self.source.event_time(tenant, from, to, self.dir())?;
        Ok(TimeWalk {
            iter,
            source: self.source,
            tenant,
            probes,
            events,
            seqs: self.plan.seqs.clone(),
            after,
            last: None,
            dir: self.dir(),
        })
    }

    /// Seq order over a small event-time range: buffer the walk, sort it by seq.
    fn time_sorted(
        &self,
        tenant: &'a str,
        probes: &'a Counted,
        fallback: &'a Counted,
    ) -> Result<Stream<'a>, QueryError> {
        let seqs = after_seq(self.plan.seqs.clone(), self.after, self.dir());
        let mut buffer = Vec::new();
        for candidate in self.time_walk(tenant, probes, None)? {
            let seq = candidate?.seq;
            if !seqs.contains(&seq) {
                continue;
            }
            if buffer.len() as u64 >= TIME_SORT_CAP {
                // The estimate was off: fall back rather than grow without bound.
                return Ok(Box::new(self.leapfrog(tenant, fallback)));
            }
            buffer.push(seq);
        }
        buffer.sort_unstable();
        if self.dir() == Direction::Descending {
            buffer.reverse();
        }
        Ok(Box::new(buffer.into_iter().map(|seq| {
            Ok(Candidate {
                seq,
                event_time_ns: None,
            })
        })))
    }
}

/// Whether `seq` carries `term`: a one-seq posting range is a point lookup in the index.
fn probe(source: &dyn IndexSource, term: &Term<'_>, seq: u64) -> Result<bool, QueryError> {
    // u64::MAX as the end means unbounded, so the largest seq is still probed.
    let end = seq.saturating_add(1);
    match source
        .postings(term, seq..end, Direction::Ascending)?
        .next()
    {
        Some(Ok(found)) => Ok(found == seq),
        Some(Err(e)) => Err(e.into()),
        None => Ok(false),
    }
}

/// One tenant's event-time walk, probing each entry against the other terms.
struct TimeWalk<'a> {
    iter: TimeIter<'a>,
    source: &'a dyn IndexSource,
    tenant: &'a str,
    probes: &'a Counted,
    events: Option<Vec<u64>>,
    seqs: Range<u64>,
    after: Option<(i64, u64)>,
    last: Option<(i64, u64)>,
    dir: Direction,
}

impl TimeWalk<'_> {
    fn keep(&self, (time, seq): (i64, u64)) -> Result<bool, QueryError> {
        if self
            .after
            .is_some_and(|a| !before(a, (time, seq), self.dir))
        {
            return Ok(false);
        }
        if !self.seqs.contains(&seq) {
            return Ok(false);
        }
        if let Some(events) = &self.events
            && events.binary_search(&seq).is_err()
        {
            return Ok(false);
        }
        // Probes are sorted by posting count: the rarest term rejects soonest.
        for (key, _) in self.probes {
            if !probe(self.source, &key.term(self.tenant), seq)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Iterator for TimeWalk<'_> {
    type Item = Result<Candidate, QueryError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let item = match self.iter.next()? {
                Ok(item) => item,
                Err(e) => return Some(Err(e.into())),
            };
            if self.last.is_some_and(|last| !before(last, item, self.dir)) {
                let detail = format!("event-time walk of tenant {} out of order", self.tenant);
                return Some(Err(inconsistent(detail)));
            }
            self.last = Some(item);
            match self.keep(item) {
                Ok(false) => {}
                Ok(true) => {
                    return Some(Ok(Candidate {
                        seq: item.1,
                        event_time_ns: Some(item.0),
                    }));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// One posting list in a leapfrog join: a walk that can seek forward.
struct TermCursor<'a> {
    term: Term<'a>,
    iter: Option<SeqIter<'a>>,
    head: Option<u64>,
    exhausted: bool,
}

impl<'a> TermCursor<'a> {
    /// The first posting at or after `target` in walk order, or `None` when there is none.
    fn seek(&mut self, j: &Join<'a>, target: u64) -> Result<Option<u64>, QueryError> {
        if self.exhausted {
            return Ok(None);
        }
        if let Some(h) = self.head
            && !before(h, target, j.dir)
        {
            return Ok(Some(h));
        }
        if self.iter.is_some() {
            for _ in 0..STEPS_BEFORE_SEEK {
                match self.pull(j)? {
                    None => return Ok(None),
                    Some(h) if !before(h, target, j.dir) => return Ok(Some(h)),
                    Some(_) => {}
                }
            }
        }
        // Far behind (or not started): re-open the walk at the target.
        let range = match j.dir {
            Direction::Ascending => target..j.seqs.end,
            // target < end <= u64::MAX, so target + 1 cannot overflow.
            Direction::Descending => j.seqs.start..target.saturating_add(1),
        };
        self.iter = Some(j.source.postings(&self.term, range, j.dir)?);
        match self.pull(j)? {
            Some(h) if before(h, target, j.dir) => Err(Join::disorder(&self.term)),
            other => Ok(other),
        }
    }

    /// The next posting, checked to be in range and strictly after the previous one.
    fn pull(&mut self, j: &Join<'a>) -> Result<Option<u64>, QueryError> {
        let Some(iter) = self.iter.as_mut() else {
            return Ok(None);
        };
        match iter.next() {
            None => {
                self.exhausted = true;
                Ok(None)
            }
            Some(Err(e)) => Err(e.into()),
            Some(Ok(seq)) => {
                let progressed = self.head.is_none_or(|h| before(h, seq, j.dir));
                if !progressed || !j.seqs.contains(&seq) {
                    return Err(Join::disorder(&self.term));
                }
                self.head = Some(seq);
                Ok(Some(seq))
            }
        }
    }
}

/// What the cursors of one join share.
struct Join<'a> {
    source: &'a dyn IndexSource,
    seqs: Range<u64>,
    dir: Direction,
}

impl Join<'_> {
    fn disorder(term: &Term<'_>) -> QueryError {
        inconsistent(format!("postings of {term:?} out of order or out of range"))
    }
}

/// A leapfrog intersection of one tenant's posting lists: each list in turn seeks to the
/// largest head seen so far, until all agree. The first list (the smallest) starts each
/// round; memory is one head per list.
struct Leapfrog<'a> {
    join: Join<'a>,
    cursors: Vec<TermCursor<'a>>,
    /// The next seq to look for; `None` when done.
    target: Option<u64>,
}

impl<'a> Leapfrog<'a> {
    fn new(
        source: &'a dyn IndexSource,
        tenant: &'a str,
        terms: &'a Counted,
        seqs: Range<u64>,
        dir: Direction,
    ) -> Self {
        let target = match dir {
            _ if seqs.is_empty() => None,
            Direction::Ascending => Some(seqs.start),
            Direction::Descending => Some(seqs.end - 1),
        };
        let cursors = terms
            .iter()
            .map(|(key, _)| TermCursor {
                term: key.term(tenant),
                iter: None,
                head: None,
                exhausted: false,
            })
            .collect();
        Leapfrog {
            join: Join { source, seqs, dir },
            cursors,
            target,
        }
    }

    fn find(&mut self, target: u64) -> Result<Option<u64>, QueryError> {
        let k = self.cursors.len();
        let Some(first) = self.cursors.first_mut() else {
            return Ok(None);
        };
        let Some(mut t) = first.seek(&self.join, target)? else {
            return Ok(None);
        };
        let (mut agreed, mut i) = (1, 1);
        while agreed < k {
            let cursor = &mut self.cursors[i % k];
            match cursor.seek(&self.join, t)? {
                None => return Ok(None),
                Some(s) if s == t => agreed += 1,
                Some(s) => (t, agreed) = (s, 1),
            }
            i += 1;
        }
        Ok(Some(t))
    }
}

impl Iterator for Leapfrog<'_> {
    type Item = Result<Candidate, QueryError>;

    fn next(&mut self) -> Option<Self::Item> {
        let target = self.target?;
        match self.find(target) {
            Ok(Some(seq)) => {
                self.target = match self.join.dir {
                    Direction::Ascending => seq.checked_add(1).filter(|n| *n < self.join.seqs.end),
                    Direction::Descending => {
                        seq.checked_sub(1).filter(|n| *n >= self.join.seqs.start)
                    }
                };
                Some(Ok(Candidate {
                    seq,
                    event_time_ns: None,
                }))
            }
            Ok(None) => {
                self.target = None;
                None
            }
            Err(e) => {
                self.target = None;
                Some(Err(e))
            }
        }
    }
}

/// A stream's current head in the merge heap.
struct Head {
    key: (i64, u64),
    stream: usize,
    descending: bool,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    /// `BinaryHeap` pops the largest: for ascending output the smallest key must be largest.
    fn cmp(&self, other: &Self) -> Ordering {
        let order = (self.key, self.stream).cmp(&(other.key, other.stream));
        if self.descending {
            order
        } else {
            order.reverse()
        }
    }
}

/// A k-way merge of per-tenant streams by output key, holding one head per stream.
struct Merge<'a> {
    streams: Vec<Stream<'a>>,
    heap: BinaryHeap<Head>,
    descending: bool,
    by_time: bool,
}

impl<'a> Merge<'a> {
    fn new(streams: Vec<Stream<'a>>, dir: Direction, by_time: bool) -> Result<Self, QueryError> {
        let mut merge = Merge {
            heap: BinaryHeap::with_capacity(streams.len()),
            streams,
            descending: dir == Direction::Descending,
            by_time,
        };
        for i in 0..merge.streams.len() {
            merge.refill(i)?;
        }
        Ok(merge)
    }

    /// Pulls stream `i`'s next head into the heap.
    fn refill(&mut self, i: usize) -> Result<(), QueryError> {
        let Some(next) = self.streams.get_mut(i).and_then(Iterator::next) else {
            return Ok(());
        };
        let c = next?;
        let time = if self.by_time {
            c.event_time_ns.unwrap_or(0)
        } else {
            0
        };
        self.heap.push(Head {
            key: (time, c.seq),
            stream: i,
            descending: self.descending,
        });
        Ok(())
    }

    fn next(&mut self) -> Option<Result<Candidate, QueryError>> {
        let head = self.heap.pop()?;
        if let Err(e) = self.refill(head.stream) {
            return Some(Err(e));
        }
        let (time, seq) = head.key;
        Some(Ok(Candidate {
            seq,
            event_time_ns: self.by_time.then_some(time),
        }))
    }
}
