//! [`EventTimes`]: a tenant's receipts ordered by event time, one time bucket at a time.

use crate::codec::{decode_pairs, i64_from_key, i64_key, put_str};
use crate::reader::{IndexReader, get_be};
use crate::term::Direction;
use crate::{EVENT_TIME_BUCKET_SHIFT, IndexError};

type ChunkRange = redb::Range<'static, &'static [u8], &'static [u8]>;

/// A chunk's key and value, copied out of redb.
type Chunk = (Vec<u8>, Vec<u8>);

/// `(event_time_ns, seq)` of one tenant's receipts in a time range, ordered by
/// `(event_time, seq)` ascending or descending. Chunks are kept per time bucket in seq order,
/// so each bucket is read whole, sorted and emitted: memory is one bucket of one tenant.
/// Yields at most one `Err` and then ends.
pub struct EventTimes<'r> {
    reader: &'r IndexReader,
    chunks: Option<ChunkRange>,
    prefix_len: usize,
    from: i64,
    to: i64,
    dir: Direction,
    /// A chunk read ahead that belongs to the next bucket.
    pending: Option<Chunk>,
    /// The current bucket's pairs, in the order `pop` yields them.
    buf: Vec<(i64, u64)>,
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
            pending: None,
            buf: Vec::new(),
        };
        if from >= to {
            return Ok(walk);
        }
        let lo = [
            prefix.as_slice(),
            &i64_key(from >> EVENT_TIME_BUCKET_SHIFT),
            &[0; 8],
        ]
        .concat();
        let hi = [
            prefix.as_slice(),
            &i64_key((to - 1) >> EVENT_TIME_BUCKET_SHIFT),
            &[0xff; 8],
        ]
        .concat();
        let range = reader
            .event_times
            .range::<&[u8]>(lo.as_slice()..=hi.as_slice());
        walk.chunks = Some(range.map_err(|e| reader.err("read event_times", e))?);
        Ok(walk)
    }

    /// The next chunk in walk order, if any.
    fn next_chunk(&mut self) -> Result<Option<Chunk>, IndexError> {
        if let Some(c) = self.pending.take() {
            return Ok(Some(c));
        }
        let Some(chunks) = self.chunks.as_mut() else {
            return Ok(None);
        };
        let next = match self.dir {
            Direction::Ascending => chunks.next(),
            Direction::Descending => chunks.next_back(),
        };
        match next {
            Some(item) => {
                let (k, v) = item.map_err(|e| self.reader.err("read event_times", e))?;
                Ok(Some((k.value().to_vec(), v.value().to_vec())))
            }
            None => Ok(None),
        }
    }

    /// The bucket of a chunk key.
    fn bucket(&self, key: &[u8]) -> Result<i64, IndexError> {
        let b = key
            .get(self.prefix_len..self.prefix_len + 8)
            .filter(|_| key.len() == self.prefix_len + 16);
        let b: Option<[u8; 8]> = b.and_then(|b| b.try_into().ok());
        b.map(i64_from_key).ok_or_else(|| {
            self.reader
                .corrupt("event_times", key, "key is not tenant + 16 bytes")
        })
    }

    /// Reads every chunk of the next bucket into `buf`. `Ok(false)` when there is none.
    fn load(&mut self) -> Result<bool, IndexError> {
        let Some(first) = self.next_chunk()? else {
            return Ok(false);
        };
        let bucket = self.bucket(&first.0)?;
        let mut pairs = Vec::new();
        let mut chunk = Some(first);
        while let Some((key, value)) = chunk.take() {
            if self.bucket(&key)? != bucket {
                self.pending = Some((key, value));
                break;
            }
            self.decode(bucket, &key, &value, &mut pairs)?;
            chunk = self.next_chunk()?;
        }
        self.buf = pairs
            .into_iter()
            .filter(|(t, _)| (self.from..self.to).contains(t))
            .collect();
        // `pop` takes from the end: sort the opposite way round.
        match self.dir {
            Direction::Ascending => self.buf.sort_unstable_by(|a, b| b.cmp(a)),
            Direction::Descending => self.buf.sort_unstable(),
        }
        Ok(true)
    }

    fn decode(
        &self,
        bucket: i64,
        key: &[u8],
        chunk: &[u8],
        out: &mut Vec<(i64, u64)>,
    ) -> Result<(), IndexError> {
        let first = key
            .get(self.prefix_len + 8..)
            .and_then(get_be)
            .ok_or_else(|| self.reader.corrupt("event_times", key, "short key"))?;
        let mut pairs = Vec::new();
        let base = (bucket << EVENT_TIME_BUCKET_SHIFT).cast_unsigned();
        decode_pairs(first, base, chunk, &mut pairs)
            .map_err(|d| self.reader.corrupt("event_times", key, d))?;
        for (seq, t) in pairs {
            let t = t.cast_signed();
            if t >> EVENT_TIME_BUCKET_SHIFT != bucket {
                return Err(self.reader.corrupt(
                    "event_times",
                    key,
                    "event time outside the key's bucket",
                ));
            }
            out.push((t, seq));
        }
        Ok(())
    }
}

impl Iterator for EventTimes<'_> {
    type Item = Result<(i64, u64), IndexError>;

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
                    self.pending = None;
                    return Some(Err(e));
                }
            }
        }
    }
}
