//! [`Plan::candidates`]: the positions a plan yields, in output order, strictly after a
//! cursor, in bounded memory.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::ops::Range;

use trailmix_index::{Direction, Term};

use crate::cursor::Cursor;
use crate::error::QueryError;
use crate::plan::{Access, Counted, Plan, Route, TIME_SORT_CAP, TenantPlan};
use crate::source::{IndexSource, SeqIter, TimeIter};

/// How many postings a leapfrog cursor steps through before it seeks (re-opens its walk at
/// the target) instead: stepping is cheaper for near targets, seeking for far ones.
const STEPS_BEFORE_SEEK: usize = 8;

/// How many of its latest postings a probing cursor remembers, so that a probe a little
/// behind its head (event time and seq order disagree locally) needs no new seek.
const PROBE_WINDOW: usize = 16;

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
    fallbacks: u32,
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
        let fallbacks = Cell::new(0);
        let state = match self.start(source, cursor, &fallbacks) {
            Ok(state) => state,
            Err(e) => State::Failed(Some(e)),
        };
        Candidates {
            state,
            fallbacks: fallbacks.get(),
        }
    }

    fn start<'a>(
        &'a self,
        source: &'a dyn IndexSource,
        cursor: Option<&Cursor>,
        fallbacks: &Cell<u32>,
    ) -> Result<State<'a>, QueryError> {
        if let Some(c) = cursor {
            c.check_fingerprint(self.fingerprint, self.order)?;
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
                    fallbacks,
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

impl Candidates<'_> {
    /// How many tenant walks of a seq-ordered event-time range found more than
    /// [`TIME_SORT_CAP`](crate::TIME_SORT_CAP) candidates (the planning estimate was wrong)
    /// and so dropped their buffer for the posting lists. The walks run when the candidates
    /// are made, so this is known from the start.
    #[must_use]
    pub fn time_sort_fallbacks(&self) -> u32 {
        self.fallbacks
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

/// The seq right after `seq` in walk direction (`None` past the end of `u64`).
fn next_in(seq: u64, dir: Direction) -> Option<u64> {
    match dir {
        Direction::Ascending => seq.checked_add(1),
        Direction::Descending => seq.checked_sub(1),
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
struct Ctx<'a, 'c> {
    plan: &'a Plan,
    source: &'a dyn IndexSource,
    after: Option<(i64, u64)>,
    /// Counts the walks that fell back from an event-time buffer to posting lists.
    fallbacks: &'c Cell<u32>,
}

impl<'a> Ctx<'a, '_> {
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
                let seqs = self.plan.seqs.clone();
                Ok(Box::new(self.time_walk(tenant, probes, events, seqs)?))
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
        seqs: Range<u64>,
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
            join: Join {
                source: self.source,
                seqs,
                dir: self.dir(),
            },
            tenant,
            probers: probes
                .iter()
                .map(|(key, _)| TermCursor::new(key.term(tenant), PROBE_WINDOW))
                .collect(),
            events,
            after,
            last: None,
        })
    }

    /// Seq order over a small event-time range: buffer the walk, sort it by seq.
    fn time_sorted(
        &self,
        tenant: &'a str,
        probes: &'a Counted,
        fallback: &'a Counted,
    ) -> Result<Stream<'a>, QueryError> {
        // The walk skips (unprobed) every entry outside the seqs, the cursor's included.
        let seqs = after_seq(self.plan.seqs.clone(), self.after, self.dir());
        let mut buffer = Vec::new();
        for candidate in self.time_walk(tenant, probes, None, seqs)? {
            let seq = candidate?.seq;
            if buffer.len() as u64 >= TIME_SORT_CAP {
                // The estimate was off: fall back rather than grow without bound.
                self.fallbacks.set(self.fallbacks.get().saturating_add(1));
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

/// One tenant's event-time walk, probing each entry against the other terms. Each probe
/// term keeps one posting walk open for the life of the walk ([`TermCursor::probe`]): event
/// time roughly follows seq, so most probes step an open walk instead of seeking anew.
struct TimeWalk<'a> {
    iter: TimeIter<'a>,
    /// The seqs that may be kept (the probers' range), and the walk's direction.
    join: Join<'a>,
    tenant: &'a str,
    /// One per probe term, sorted by posting count.
    probers: Vec<TermCursor<'a>>,
    events: Option<Vec<u64>>,
    after: Option<(i64, u64)>,
    last: Option<(i64, u64)>,
}

impl TimeWalk<'_> {
    fn keep(&mut self, (time, seq): (i64, u64)) -> Result<bool, QueryError> {
        let dir = self.join.dir;
        if self.after.is_some_and(|a| !before(a, (time, seq), dir)) {
            return Ok(false);
        }
        if !self.join.seqs.contains(&seq) {
            return Ok(false);
        }
        if let Some(events) = &self.events
            && events.binary_search(&seq).is_err()
        {
            return Ok(false);
        }
        // Probes are sorted by posting count: the rarest term rejects soonest.
        for prober in &mut self.probers {
            if !prober.probe(&self.join, seq)? {
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
            if self
                .last
                .is_some_and(|last| !before(last, item, self.join.dir))
            {
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

/// One posting list in a leapfrog join (or probed by a time walk): a walk that can seek
/// forward.
struct TermCursor<'a> {
    term: Term<'a>,
    iter: Option<SeqIter<'a>>,
    head: Option<u64>,
    exhausted: bool,
    /// Probing only: how many of the latest postings `recent` holds (0 for a join).
    window: usize,
    /// The latest postings pulled from `iter`, oldest first (at most `window`).
    recent: VecDeque<u64>,
    /// Every posting of the term from here (in walk order) up to `head` is in `recent`; to
    /// the end of the seqs once `exhausted`. `None` before the first seek.
    covered_from: Option<u64>,
}

impl<'a> TermCursor<'a> {
    fn new(term: Term<'a>, window: usize) -> Self {
        TermCursor {
            term,
            iter: None,
            head: None,
            exhausted: false,
            window,
            recent: VecDeque::with_capacity(window),
            covered_from: None,
        }
    }

    /// Whether `seq` (in `j.seqs`) is a posting of the term. Targets may come in any order:
    /// one within what the walk has covered is answered from memory, one ahead of the head
    /// steps or seeks forward, one behind what is covered re-opens the walk at it.
    fn probe(&mut self, j: &Join<'a>, seq: u64) -> Result<bool, QueryError> {
        if self.covered_from.is_some_and(|c| !before(seq, c, j.dir)) {
            match self.head {
                // Between `covered_from` and the head: `recent` holds every posting there.
                Some(h) if !before(h, seq, j.dir) => return Ok(self.recent.contains(&seq)),
                // Re-opened at or before `seq` and found nothing to the end.
                None if self.exhausted => return Ok(false),
                // Ahead of the head: step or seek forward.
                _ => {}
            }
        } else if self.iter.is_some() {
            // Behind everything remembered: start over at the target.
            self.iter = None;
            self.head = None;
            self.exhausted = false;
            self.recent.clear();
            self.covered_from = None;
        }
        Ok(self.seek(j, seq)? == Some(seq))
    }

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
        if self.window > 0 {
            self.recent.clear();
            self.covered_from = Some(target);
        }
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
                if self.window > 0 {
                    if self.recent.len() >= self.window
                        && let Some(old) = self.recent.pop_front()
                    {
                        // Postings come strictly in walk order, so none lies between `old`
                        // and its successor, the new front of `recent` (or `seq`).
                        self.covered_from = next_in(old, j.dir);
                    }
                    self.recent.push_back(seq);
                }
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
            .map(|(key, _)| TermCursor::new(key.term(tenant), 0))
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::ops::Range;

    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use trailmix_index::{Dimension, Direction, Term};

    use crate::cursor::Cursor;
    use crate::filter::{Order, Query};
    use crate::model::{ModelRecord, ModelSource};
    use crate::plan::plan;
    use crate::source::{CountRow, IndexSource, SeqIter, SourceError, TimeIter};

    /// A [`ModelSource`] that records every posting walk it opens.
    struct Recording {
        inner: ModelSource,
        opened: RefCell<Vec<Range<u64>>>,
    }

    impl IndexSource for Recording {
        fn watermark(&self) -> u64 {
            self.inner.watermark()
        }
        fn postings(
            &self,
            term: &Term<'_>,
            seqs: Range<u64>,
            dir: Direction,
        ) -> Result<SeqIter<'_>, SourceError> {
            self.opened.borrow_mut().push(seqs.clone());
            self.inner.postings(term, seqs, dir)
        }
        fn posting_count(&self, term: &Term<'_>) -> Result<u64, SourceError> {
            self.inner.posting_count(term)
        }
        fn event_seqs(&self, tenant: &str, event_id: &str) -> Result<Vec<u64>, SourceError> {
            self.inner.event_seqs(tenant, event_id)
        }
        fn seq_range_for_logged_at(
            &self,
            from_ns: u64,
            to_ns: u64,
        ) -> Result<Range<u64>, SourceError> {
            self.inner.seq_range_for_logged_at(from_ns, to_ns)
        }
        fn event_time(
            &self,
            tenant: &str,
            from_ns: i64,
            to_ns: i64,
            dir: Direction,
        ) -> Result<TimeIter<'_>, SourceError> {
            self.inner.event_time(tenant, from_ns, to_ns, dir)
        }
        fn tenants(&self) -> Result<Vec<(String, u64)>, SourceError> {
            self.inner.tenants()
        }
        fn counts(
            &self,
            tenant: Option<&str>,
            dim: Dimension,
            bucket_ns: u64,
            from_ns: i64,
            to_ns: i64,
        ) -> Result<Vec<CountRow>, SourceError> {
            self.inner.counts(tenant, dim, bucket_ns, from_ns, to_ns)
        }
    }

    /// `n` receipts of two tenants (session `s1` only below seq 300); event time is `seq * 10`
    /// plus `jitter(seq)`.
    fn source(n: u64, mut jitter: impl FnMut(u64) -> i64) -> Recording {
        let mut inner = ModelSource::new();
        for seq in 0..n {
            let i = usize::try_from(seq).expect("small");
            inner
                .push(ModelRecord {
                    seq,
                    logged_at_ns: seq,
                    event_time_ns: i64::try_from(seq).expect("small") * 10 + jitter(seq),
                    tenant: ["acme", "beta"][i % 7 / 5].into(),
                    kind: ["llm_call", "tool_call", "approval"][i % 3].into(),
                    model_name: (i % 5 != 0).then(|| ["gpt", "claude"][i % 2].into()),
                    decision: (i % 11 == 0).then(|| "deny".into()),
                    // Only early on: a probe past the last posting finds nothing to the end.
                    session_id: (i % 3 == 1 && seq < 300).then(|| "s1".into()),
                    ..ModelRecord::default()
                })
                .expect("increasing");
        }
        Recording {
            inner,
            opened: RefCell::new(Vec::new()),
        }
    }

    /// Brute force: the matching seqs after `after`, in the query's order.
    fn expected(s: &Recording, q: &Query, after: Option<(i64, u64)>) -> Vec<u64> {
        let mut all: Vec<(i64, u64)> = s
            .inner
            .records()
            .iter()
            .filter(|r| q.filter.matches(&r.as_index_record()))
            .map(|r| match q.order {
                Order::EventTime(_) => (r.event_time_ns, r.seq),
                Order::Seq(_) => (0, r.seq),
            })
            .collect();
        all.sort_unstable();
        let desc = q.order.direction() == Direction::Descending;
        if desc {
            all.reverse();
        }
        all.into_iter()
            .filter(|k| after.is_none_or(|a| if desc { *k < a } else { *k > a }))
            .map(|(_, seq)| seq)
            .collect()
    }

    /// Every candidate of `text` (after `cursor`), checked to be exactly the matches.
    fn run(s: &Recording, text: &str, cursor: Option<&Cursor>) -> Vec<u64> {
        let q = Query::parse(text).expect("valid");
        let p = plan(&q, s).expect("plans");
        let got: Vec<u64> = p
            .candidates(s, cursor)
            .map(|c| c.expect("model").seq)
            .collect();
        let after = cursor.map(|c| (c.event_time_ns().unwrap_or(0), c.seq()));
        assert_eq!(got, expected(s, &q, after), "{text} after {after:?}");
        got
    }

    const TIME_QUERIES: [&str; 8] = [
        "tenant=acme model=gpt order=time",
        "tenant=acme model=gpt kind=llm_call order=-time",
        "model=claude decision=deny order=time",
        "kind=approval order=-time since=3000 until=20000",
        "tenant=beta model=gpt order=time logged_since=100 logged_until=1500",
        "tenant=acme kind=tool_call model=claude order=-time logged_since=7",
        "tenant=acme session=s1 order=time since=2000",
        "session=s1 model=gpt order=-time",
    ];

    #[test]
    fn probes_of_a_nearly_seq_ordered_walk_step_instead_of_seeking() {
        let mut rng = SmallRng::seed_from_u64(1);
        let s = source(3000, |_| rng.random_range(-35..35));
        for text in TIME_QUERIES {
            s.opened.borrow_mut().clear();
            let got = run(&s, text, None);
            let opened = s.opened.borrow().len();
            // One open per probed entry before; now a few per hundred entries.
            assert!(
                opened * 20 < 3000,
                "{text}: {opened} opens for {}",
                got.len()
            );
        }
    }

    #[test]
    fn probes_in_any_time_order_find_exactly_the_postings() {
        for seed in 0..6u64 {
            let mut rng = SmallRng::seed_from_u64(seed);
            // Jitter from none to far beyond the window, and times against seq order.
            let spread = [0, 40, 400, 4_000, 40_000, 0][usize::try_from(seed).expect("small")];
            let s = source(1500, |seq| {
                if seed == 5 {
                    -40 * i64::try_from(seq).expect("small")
                } else {
                    rng.random_range(-spread..=spread)
                }
            });
            for text in TIME_QUERIES {
                let q = Query::parse(text).expect("valid");
                let all = run(&s, text, None);
                // Resume after a few positions, as a later page would.
                for &seq in all.iter().step_by(all.len() / 3 + 1) {
                    let r = s.inner.get(seq).expect("a record").as_index_record();
                    let cursor = Cursor::after_record(&q, &r);
                    run(&s, text, Some(&cursor));
                }
            }
        }
    }

    #[test]
    fn a_sorted_event_time_range_probes_nothing_before_the_cursor() {
        let s = source(3000, |_| 0);
        let text = "tenant=acme kind=llm_call since=10000 until=15000";
        let q = Query::parse(text).expect("valid");
        assert!(
            plan(&q, &s)
                .expect("plans")
                .explain()
                .contains("sorted by seq")
        );
        let all = run(&s, text, None);
        let at = all[all.len() / 2];
        let r = s.inner.get(at).expect("a record").as_index_record();
        let cursor = Cursor::after_record(&q, &r);
        s.opened.borrow_mut().clear();
        let rest = run(&s, text, Some(&cursor));
        assert_eq!(rest, all[all.len() / 2 + 1..]);
        let opened = s.opened.borrow();
        assert!(!opened.is_empty(), "the kind is probed");
        assert!(
            opened.iter().all(|r| r.start > at),
            "{opened:?} (cursor {at})"
        );
    }
}
