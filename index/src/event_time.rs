//! The `event_times` table: each tenant's receipts ordered by `(event time, seq)`.
//!
//! A tenant's pairs are cut into chunks that cover disjoint, consecutive spans of the
//! `(time, seq)` order: the chunk keyed by pair `p` holds every pair from `p` up to (not
//! including) the next chunk's key. Pairs inside a chunk are sorted, so a walk reads chunks in
//! key order (or reverse) and emits each as it decodes, with no sort and no read-ahead.
//!
//! Event times come from clients and arrive nearly, not exactly, in order. A commit appends
//! pairs after a chunk's last pair while the chunk is below the chunk target; a pair that
//! lands inside a chunk's span (a late arrival) makes the commit decode the chunk, merge and
//! write it back, split into pieces of about the target. Chunks therefore hold hundreds of
//! pairs however sparse or dense the times are, where fixed time buckets would hold one pair
//! per key for a quiet tenant and millions for a busy one.

use std::ops::Bound;
use std::path::Path;

use redb::{ReadableTable, Table, WriteTransaction};

use crate::IndexError;
use crate::codec::{
    PairHeader, TimePair, decode_time_chunk, hex, put_str, time_append_header, time_chunk,
    time_chunk_append, time_chunk_last, time_key, time_key_pair,
};
use crate::reader::IndexReader;
use crate::tables::EVENT_TIMES;
use crate::term::Direction;

type ChunkRange = redb::Range<'static, &'static [u8], &'static [u8]>;
type TimeTable<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// `(event_time_ns, seq)` of one tenant's receipts in a time range, ordered by
/// `(event_time, seq)` ascending or descending. Memory is one chunk. Yields at most one `Err`
/// and then ends.
pub struct EventTimes<'r> {
    reader: &'r IndexReader,
    chunks: Option<ChunkRange>,
    prefix_len: usize,
    from: i64,
    to: i64,
    dir: Direction,
    /// The current chunk's pairs in range, in the order `pop` yields them.
    buf: Vec<TimePair>,
    /// The edge of the previous chunk in walk order (its last pair ascending, its first
    /// descending): the next chunk must lie wholly beyond it.
    edge: Option<TimePair>,
}

impl std::fmt::Debug for EventTimes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventTimes")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl<'r> EventTimes<'r> {
    pub(crate) fn new(
        reader: &'r IndexReader,
        tenant: &str,
        from: i64,
        to: i64,
        dir: Direction,
    ) -> Result<Self, IndexError> {
        let mut prefix = Vec::new();
        put_str(&mut prefix, tenant);
        let mut walk = EventTimes {
            reader,
            chunks: None,
            prefix_len: prefix.len(),
            from,
            to,
            dir,
            buf: Vec::new(),
            edge: None,
        };
        if from >= to {
            return Ok(walk);
        }
        let err = |e| reader.err("read event_times", e);
        let mut lo = Vec::new();
        time_key(&mut lo, &prefix, (from, 0));
        // The chunk whose span holds `from` starts at or before it.
        let floor = [prefix.as_slice(), &[0; 16]].concat();
        if let Some(item) = reader
            .event_times_table()?
            .range::<&[u8]>(floor.as_slice()..=lo.as_slice())
            .map_err(err)?
            .next_back()
        {
            lo = item.map_err(err)?.0.value().to_vec();
        }
        let mut hi = Vec::new();
        time_key(&mut hi, &prefix, (to - 1, u64::MAX));
        let range = reader
            .event_times_table()?
            .range::<&[u8]>(lo.as_slice()..=hi.as_slice());
        walk.chunks = Some(range.map_err(err)?);
        Ok(walk)
    }

    /// Decodes the next chunk in walk order into `buf`. `Ok(false)` when there is none.
    fn load(&mut self) -> Result<bool, IndexError> {
        let Some(chunks) = self.chunks.as_mut() else {
            return Ok(false);
        };
        let next = match self.dir {
            Direction::Ascending => chunks.next(),
            Direction::Descending => chunks.next_back(),
        };
        let Some(item) = next else {
            return Ok(false);
        };
        let (k, v) = item.map_err(|e| self.reader.err("read event_times", e))?;
        let key = k.value();
        let corrupt = |d: &str| self.reader.corrupt("event_times", key, d);
        let first = time_key_pair(key, self.prefix_len).map_err(corrupt)?;
        self.buf.clear();
        decode_time_chunk(first, v.value(), &mut self.buf).map_err(corrupt)?;
        let (lowest, highest) = (first, self.buf.last().copied().unwrap_or(first));
        let in_order = match self.dir {
            Direction::Ascending => self.edge.is_none_or(|edge| lowest > edge),
            Direction::Descending => self.edge.is_none_or(|edge| highest < edge),
        };
        if !in_order {
            return Err(corrupt("chunk overlaps its neighbour's span"));
        }
        self.edge = Some(match self.dir {
            Direction::Ascending => highest,
            Direction::Descending => lowest,
        });
        let (from, to) = (self.from, self.to);
        self.buf.retain(|(t, _)| (from..to).contains(t));
        // `pop` takes from the end.
        if self.dir == Direction::Ascending {
            self.buf.reverse();
        }
        Ok(true)
    }
}

impl Iterator for EventTimes<'_> {
    type Item = Result<TimePair, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(p) = self.buf.pop() {
                return Some(Ok(p));
            }
            match self.load() {
                Ok(true) => {}
                Ok(false) => {
                    self.chunks = None;
                    return None;
                }
                Err(e) => {
                    self.chunks = None;
                    self.buf.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Writes a batch's `str(tenant)` → `(seq, event time)` groups into `event_times`.
pub(crate) fn write(
    txn: &WriteTransaction,
    path: &Path,
    target: usize,
    mut groups: Vec<crate::batch::TenantTimes>,
) -> Result<(), IndexError> {
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let table = txn
        .open_table(EVENT_TIMES)
        .map_err(|e| IndexError::redb("open table event_times", path, e))?;
    let mut w = TimeWriter {
        table,
        path,
        target,
        key: Vec::new(),
    };
    for (prefix, pairs) in groups {
        let mut pairs: Vec<TimePair> = pairs.into_iter().map(|(s, t)| (t, s)).collect();
        pairs.sort_unstable();
        let mut rest = pairs.as_slice();
        while !rest.is_empty() {
            rest = w.put_run(&prefix, rest)?;
        }
    }
    Ok(())
}

struct TimeWriter<'t> {
    table: TimeTable<'t>,
    path: &'t Path,
    target: usize,
    key: Vec<u8>,
}

impl TimeWriter<'_> {
    fn err(&self, e: impl Into<redb::Error>) -> IndexError {
        IndexError::redb("read event_times", self.path, e)
    }

    fn corrupt(&self, key: &[u8], d: &str) -> IndexError {
        IndexError::corrupt(self.path, "event_times", format!("chunk {}: {d}", hex(key)))
    }

    /// Puts the leading pairs of `rest` (sorted) that fall into one chunk's span — the
    /// chunk holding `rest[0]`, or the gap before the tenant's first chunk — and returns the
    /// pairs after them.
    fn put_run<'p>(
        &mut self,
        prefix: &[u8],
        rest: &'p [TimePair],
    ) -> Result<&'p [TimePair], IndexError> {
        time_key(&mut self.key, prefix, rest[0]);
        let floor = [prefix, &[0; 16]].concat();
        let ceiling = [prefix, &[0xff; 16]].concat();
        let holder = self
            .table
            .range::<&[u8]>(floor.as_slice()..=self.key.as_slice())
            .map_err(|e| self.err(e))?
            .next_back()
            .transpose()
            .map_err(|e| self.err(e))?
            .map(|(k, v)| (k.value().to_vec(), v.value().to_vec()));
        let bounds = (
            Bound::Excluded(self.key.as_slice()),
            Bound::Included(ceiling.as_slice()),
        );
        let next_start = self
            .table
            .range::<&[u8]>(bounds)
            .map_err(|e| self.err(e))?
            .next()
            .transpose()
            .map_err(|e| self.err(e))?
            .map(|(k, _)| time_key_pair(k.value(), prefix.len()))
            .transpose()
            .map_err(|d| self.corrupt(&self.key, d))?;
        let take = next_start.map_or(rest.len(), |n| rest.partition_point(|p| *p < n));
        let (run, after) = rest.split_at(take.max(1));
        match holder {
            None => self.put_pieces(prefix, run)?,
            Some((key, chunk)) => self.merge_into(prefix, &key, &chunk, run)?,
        }
        Ok(after)
    }

    /// Adds `run` (inside the span of the chunk `key`) to that chunk: appended when all of it
    /// follows the chunk's last pair, else merged; written back in pieces of about the target.
    fn merge_into(
        &mut self,
        prefix: &[u8],
        key: &[u8],
        chunk: &[u8],
        run: &[TimePair],
    ) -> Result<(), IndexError> {
        let first = time_key_pair(key, prefix.len()).map_err(|d| self.corrupt(key, d))?;
        let h = time_append_header(first, chunk).map_err(|d| self.corrupt(key, d))?;
        if run[0] > time_chunk_last(h) {
            let mut chunk = chunk.to_vec();
            let taken = self.fill(&mut chunk, h, run);
            if taken > 0 {
                self.insert(key, &chunk)?;
            }
            return self.put_pieces(prefix, &run[taken..]);
        }
        let mut pairs = Vec::with_capacity(h.count as usize + run.len());
        decode_time_chunk(first, chunk, &mut pairs).map_err(|d| self.corrupt(key, d))?;
        let mut merged = Vec::with_capacity(pairs.len() + run.len());
        let (mut i, mut j) = (0, 0);
        while let (Some(x), Some(y)) = (pairs.get(i), run.get(j)) {
            match x.cmp(y) {
                std::cmp::Ordering::Less => {
                    merged.push(*x);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    merged.push(*y);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    return Err(self.corrupt(key, "holds a pair the batch adds again"));
                }
            }
        }
        merged.extend_from_slice(&pairs[i..]);
        merged.extend_from_slice(&run[j..]);
        self.put_pieces(prefix, &merged)
    }

    /// Appends pairs from the front of `run` while the chunk is below the target; returns
    /// how many it took.
    fn fill(&self, chunk: &mut Vec<u8>, mut h: PairHeader, run: &[TimePair]) -> usize {
        let mut taken = 0;
        for p in run {
            if chunk.len() >= self.target {
                break;
            }
            time_chunk_append(chunk, &mut h, *p);
            taken += 1;
        }
        taken
    }

    /// Writes `pairs` (sorted, non-empty ones only) as chunks of about the target, each keyed
    /// by its first pair.
    fn put_pieces(&mut self, prefix: &[u8], mut pairs: &[TimePair]) -> Result<(), IndexError> {
        let mut key = Vec::with_capacity(prefix.len() + 16);
        while let Some((&first, tail)) = pairs.split_first() {
            let (mut chunk, h) = time_chunk(first);
            let taken = self.fill(&mut chunk, h, tail);
            time_key(&mut key, prefix, first);
            self.insert(&key, &chunk)?;
            pairs = &tail[taken..];
        }
        Ok(())
    }

    fn insert(&mut self, key: &[u8], chunk: &[u8]) -> Result<(), IndexError> {
        self.table
            .insert(key, chunk)
            .map(drop)
            .map_err(|e| IndexError::redb("write event_times", self.path, e))
    }
}
