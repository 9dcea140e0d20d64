//! [`Postings`]: a lazy walk over one term's posting chunks.

use std::ops::Range;

use crate::IndexError;
use crate::codec::decode_postings;
use crate::reader::{IndexReader, get_be};
use crate::term::Direction;

type ChunkRange = redb::Range<'static, &'static [u8], &'static [u8]>;

/// The seqs of one term within a seq range, strictly increasing or decreasing. Decodes one
/// chunk at a time, so memory stays at one chunk whatever the list's length. Yields at most
/// one `Err` (a damaged chunk, a redb failure) and then ends.
pub struct Postings<'r> {
    reader: &'r IndexReader,
    chunks: Option<ChunkRange>,
    term_len: usize,
    seqs: Range<u64>,
    dir: Direction,
    /// The current chunk's seqs within range, in the order `pop` yields them.
    buf: Vec<u64>,
}

impl std::fmt::Debug for Postings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postings")
            .field("seqs", &self.seqs)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl<'r> Postings<'r> {
    /// Positions a walk over the chunks of the term `key` that may hold seqs in `seqs`: from
    /// the last chunk starting at or below `seqs.start` to the last starting below `seqs.end`.
    pub(crate) fn new(
        reader: &'r IndexReader,
        key: &[u8],
        seqs: Range<u64>,
        dir: Direction,
    ) -> Result<Self, IndexError> {
        let term_len = key.len();
        let mut walk = Postings {
            reader,
            chunks: None,
            term_len,
            seqs: seqs.clone(),
            dir,
            buf: Vec::new(),
        };
        if seqs.start >= seqs.end {
            return Ok(walk);
        }
        let at = |seq: u64| [key, &seq.to_be_bytes()].concat();
        let (floor, start, end) = (at(0), at(seqs.start), at(seqs.end));
        let err = |e| reader.err("read postings", e);
        let containing = reader
            .postings_table()?
            .range::<&[u8]>(floor.as_slice()..=start.as_slice())
            .map_err(err)?
            .next_back();
        let lower = match containing {
            Some(item) => item.map_err(err)?.0.value().to_vec(),
            None => start,
        };
        walk.chunks = Some(
            reader
                .postings_table()?
                .range::<&[u8]>(lower.as_slice()..end.as_slice())
                .map_err(err)?,
        );
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
        let Some(item) = next else { return Ok(false) };
        let (k, v) = item.map_err(|e| self.reader.err("read postings", e))?;
        let key = k.value();
        let first = key.get(self.term_len..).and_then(get_be).ok_or_else(|| {
            self.reader
                .corrupt("postings", key, "key is not term + 8 bytes")
        })?;
        self.buf.clear();
        decode_postings(first, v.value(), &mut self.buf)
            .map_err(|d| self.reader.corrupt("postings", key, d))?;
        // The seqs are increasing: keep those in range in place.
        let seqs = &self.seqs;
        let below = self.buf.partition_point(|s| *s < seqs.start);
        let kept = self.buf.partition_point(|s| *s < seqs.end);
        self.buf.truncate(kept);
        self.buf.drain(..below.min(kept));
        if self.dir == Direction::Ascending {
            self.buf.reverse();
        }
        Ok(true)
    }
}

impl Iterator for Postings<'_> {
    type Item = Result<u64, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(seq) = self.buf.pop() {
                return Some(Ok(seq));
            }
            match self.load() {
                Ok(true) => {}
                Ok(false) => {
                    self.chunks = None;
                    return None;
                }
                Err(e) => {
                    self.chunks = None;
                    return Some(Err(e));
                }
            }
        }
    }
}
