//! [`Index::commit`](crate::Index::commit): one redb write transaction per batch.
//!
//! Every table is written in key order (the batch's groups are sorted first) so that redb
//! touches each leaf page once per run of neighbouring keys. Chunks are appended to while they
//! are below the chunk target; the last chunk of a term is found through the `terms` table.

use std::path::Path;

use redb::{Durability, ReadableTable, Table, TableHandle, WriteTransaction};

use crate::codec::{
    PairHeader, decode_pairs, hex, pair_append, pair_chunk, pair_header, posting_append,
    posting_append_header, posting_chunk,
};
use crate::tables::{
    COUNTS, LOGGED_AT, META, META_WATERMARK, POSTINGS, TENANTS, TERMS, VALUES, get_u64_le,
};
use crate::{CommitMode, Index, IndexBatch, IndexError};

/// The context every write step needs.
struct Writer<'t> {
    db: &'t redb::Database,
    txn: &'t WriteTransaction,
    path: &'t Path,
    target: usize,
}

pub(crate) fn commit(index: &Index, batch: IndexBatch, mode: CommitMode) -> Result<(), IndexError> {
    let mut txn = index
        .db
        .begin_write()
        .map_err(|e| index.err("begin write", e))?;
    let durability = match mode {
        CommitMode::Lazy => Durability::None,
        CommitMode::Durable => Durability::Immediate,
    };
    txn.set_durability(durability)
        .map_err(|e| index.err("set durability", e))?;
    // An error returns before `commit`: dropping the transaction aborts it, changing nothing.
    Writer {
        db: &index.db,
        txn: &txn,
        path: &index.path,
        target: index.chunk_target,
    }
    .write(batch)?;
    txn.commit().map_err(|e| index.err("commit", e))
}

impl Writer<'_> {
    fn err(&self, op: &str, e: impl Into<redb::Error>) -> IndexError {
        IndexError::redb(op, self.path, e)
    }

    fn open<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: redb::TableDefinition<K, V>,
    ) -> Result<Table<'_, K, V>, IndexError> {
        self.txn
            .open_table(def)
            .map_err(|e| self.err(&format!("open table {}", def.name()), e))
    }

    fn write(&self, batch: IndexBatch) -> Result<(), IndexError> {
        let mut meta = self.open(META)?;
        let watermark = meta
            .get(META_WATERMARK)
            .map_err(|e| self.err("read meta", e))?
            .and_then(|v| get_u64_le(v.value()))
            .ok_or_else(|| {
                IndexError::corrupt(self.path, "meta", "watermark missing or not 8 bytes")
            })?;
        if batch.start != watermark {
            return Err(IndexError::WatermarkMismatch {
                expected: watermark,
                found: batch.start,
            });
        }
        self.logged_at(&batch.logged_at)?;
        self.postings(batch.postings)?;
        crate::event_ids::write(self.db, self.txn, self.path, batch.event_ids, batch.start)?;
        let (tenants, event_times): (Vec<_>, Vec<_>) = batch
            .tenants
            .into_iter()
            .map(|g| ((g.tenant, g.receipts), (g.key, g.event_times)))
            .unzip();
        crate::event_time::write(self.txn, self.path, self.target, event_times)?;
        self.counts(COUNTS, batch.counts)?;
        self.counts(VALUES, batch.values)?;
        self.tenants(tenants)?;
        meta.insert(META_WATERMARK, batch.end.to_le_bytes().as_slice())
            .map_err(|e| self.err("write meta", e))?;
        Ok(())
    }

    /// Appends each term's seqs to its last chunk while it is below the target, then to new
    /// chunks, and updates the term's count.
    fn postings(&self, mut groups: Vec<(Vec<u8>, Vec<u64>)>) -> Result<(), IndexError> {
        groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut chunks = self.open(POSTINGS)?;
        let mut terms = self.open(TERMS)?;
        let mut key = Vec::with_capacity(64);
        for (term, seqs) in groups {
            let stats = match terms
                .get(term.as_slice())
                .map_err(|e| self.err("read terms", e))?
            {
                Some(v) => Some(decode_term_stats(v.value()).ok_or_else(|| {
                    IndexError::corrupt(self.path, "terms", format!("stats of {}", hex(&term)))
                })?),
                None => None,
            };
            let mut rest = seqs.as_slice();
            let mut new_last = stats.map(|(_, first)| first);
            if let Some((_, first)) = stats {
                set_key(&mut key, &term, first);
                // Copy the last chunk only when it is below the target and will be appended to.
                let chunk = {
                    let guard = chunks
                        .get(key.as_slice())
                        .map_err(|e| self.err("read postings", e))?
                        .ok_or_else(|| {
                            IndexError::corrupt(
                                self.path,
                                "postings",
                                format!("last chunk {} missing", hex(&key)),
                            )
                        })?;
                    let chunk = guard.value();
                    (chunk.len() < self.target).then(|| chunk.to_vec())
                };
                if let Some(mut chunk) = chunk {
                    let (last, count) = posting_append_header(first, &chunk).map_err(|d| {
                        IndexError::corrupt(
                            self.path,
                            "postings",
                            format!("chunk {}: {d}", hex(&key)),
                        )
                    })?;
                    self.fill_postings(&mut chunk, last, count, &mut rest, &key)?;
                    chunks
                        .insert(key.as_slice(), chunk.as_slice())
                        .map_err(|e| self.err("write postings", e))?;
                }
            }
            while let Some((&first, tail)) = rest.split_first() {
                rest = tail;
                let mut chunk = posting_chunk(first);
                set_key(&mut key, &term, first);
                self.fill_postings(&mut chunk, first, 1, &mut rest, &key)?;
                chunks
                    .insert(key.as_slice(), chunk.as_slice())
                    .map_err(|e| self.err("write postings", e))?;
                new_last = Some(first);
            }
            let count = stats.map_or(0, |(count, _)| count) + seqs.len() as u64;
            let stats = encode_term_stats(count, new_last.unwrap_or(0));
            terms
                .insert(term.as_slice(), stats.as_slice())
                .map_err(|e| self.err("write terms", e))?;
        }
        Ok(())
    }

    /// Moves seqs from the front of `rest` into `chunk`, whose header holds `(last, count)`,
    /// until it reaches the target.
    fn fill_postings(
        &self,
        chunk: &mut Vec<u8>,
        mut last: u64,
        mut count: u32,
        rest: &mut &[u64],
        key: &[u8],
    ) -> Result<(), IndexError> {
        while let Some((&seq, tail)) = rest.split_first() {
            if chunk.len() >= self.target {
                break;
            }
            if seq <= last {
                return Err(IndexError::corrupt(
                    self.path,
                    "postings",
                    format!("chunk {}: holds a seq at or above the watermark", hex(key)),
                ));
            }
            posting_append(chunk, last, count, seq);
            (last, count) = (seq, count + 1);
            *rest = tail;
        }
        Ok(())
    }

    /// Appends `(seq, logged_at)` pairs to the last chunk, then to new ones keyed by their first
    /// pair. Refuses a batch whose first `logged_at` is below the index's last.
    fn logged_at(&self, pairs: &[(u64, u64)]) -> Result<(), IndexError> {
        let Some(&(first_seq, first_la)) = pairs.first() else {
            return Ok(());
        };
        let mut table = self.open(LOGGED_AT)?;
        let last = table
            .last()
            .map_err(|e| self.err("read logged_at", e))?
            .map(|(k, v)| (k.value().to_vec(), v.value().to_vec()));
        let mut rest = pairs;
        if let Some((key, mut chunk)) = last {
            let bad = |d: &str| {
                IndexError::corrupt(self.path, "logged_at", format!("chunk {}: {d}", hex(&key)))
            };
            // The last chunk decides whether the batch may follow: decode it whole (one chunk
            // per commit) so that damage is reported as such, not as a time going back.
            let first_key = key
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes);
            let first_key_seq = key
                .get(8..)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes);
            let (Some(base), Some(seq0), 16) = (first_key, first_key_seq, key.len()) else {
                return Err(bad("key is not 16 bytes"));
            };
            decode_pairs(seq0, base, &chunk, &mut Vec::new()).map_err(bad)?;
            let h = pair_header(&chunk).map_err(bad)?;
            if h.last_value > first_la {
                return Err(IndexError::LoggedAtDecreasing {
                    seq: first_seq,
                    logged_at_ns: first_la,
                    previous_ns: h.last_value,
                });
            }
            if chunk.len() < self.target {
                self.fill_pairs(&mut chunk, h, &mut rest, &key, "logged_at")?;
                table
                    .insert(key.as_slice(), chunk.as_slice())
                    .map_err(|e| self.err("write logged_at", e))?;
            }
        }
        while let Some(&(seq, la)) = rest.first() {
            let mut key = la.to_be_bytes().to_vec();
            key.extend_from_slice(&seq.to_be_bytes());
            let mut chunk = pair_chunk(seq, la);
            let h = PairHeader {
                last_seq: seq,
                last_value: la,
                count: 0,
            };
            self.fill_pairs(&mut chunk, h, &mut rest, &key, "logged_at")?;
            table
                .insert(key.as_slice(), chunk.as_slice())
                .map_err(|e| self.err("write logged_at", e))?;
        }
        Ok(())
    }

    /// Moves pairs from the front of `rest` into `chunk` until it reaches the target.
    fn fill_pairs(
        &self,
        chunk: &mut Vec<u8>,
        mut h: PairHeader,
        rest: &mut &[(u64, u64)],
        key: &[u8],
        table: &'static str,
    ) -> Result<(), IndexError> {
        while let Some((&(seq, value), tail)) = rest.split_first() {
            if chunk.len() >= self.target && h.count > 0 {
                break;
            }
            if h.count > 0 && seq <= h.last_seq {
                return Err(IndexError::corrupt(
                    self.path,
                    table,
                    format!("chunk {}: holds a seq at or above the watermark", hex(key)),
                ));
            }
            pair_append(chunk, &mut h, seq, value);
            *rest = tail;
        }
        Ok(())
    }

    /// Adds the batch's counts to a `key → u64 LE` table.
    fn counts(
        &self,
        def: redb::TableDefinition<&'static [u8], &'static [u8]>,
        mut groups: Vec<(Vec<u8>, u64)>,
    ) -> Result<(), IndexError> {
        groups.sort_unstable();
        let mut table = self.open(def)?;
        let name = if def.name() == "counts" {
            "counts"
        } else {
            "values"
        };
        for (key, n) in groups {
            let old = table
                .get(key.as_slice())
                .map_err(|e| self.err(&format!("read {name}"), e))?
                .map(|v| get_u64_le(v.value()));
            let old = match old {
                Some(v) => v.ok_or_else(|| {
                    IndexError::corrupt(
                        self.path,
                        name,
                        format!("count of {} is not 8 bytes", hex(&key)),
                    )
                })?,
                None => 0,
            };
            let new = (old + n).to_le_bytes();
            table
                .insert(key.as_slice(), new.as_slice())
                .map_err(|e| self.err(&format!("write {name}"), e))?;
        }
        Ok(())
    }

    fn tenants(&self, mut groups: Vec<(String, u64)>) -> Result<(), IndexError> {
        groups.sort_unstable();
        let mut table = self.open(TENANTS)?;
        for (tenant, n) in groups {
            let old = table
                .get(tenant.as_str())
                .map_err(|e| self.err("read tenants", e))?
                .map(|v| get_u64_le(v.value()));
            let old = match old {
                Some(v) => v.ok_or_else(|| {
                    IndexError::corrupt(
                        self.path,
                        "tenants",
                        format!("count of {tenant:?} is not 8 bytes"),
                    )
                })?,
                None => 0,
            };
            let new = (old + n).to_le_bytes();
            table
                .insert(tenant.as_str(), new.as_slice())
                .map_err(|e| self.err("write tenants", e))?;
        }
        Ok(())
    }
}

/// `key = prefix ‖ seq (u64 BE)`, reusing the buffer.
fn set_key(key: &mut Vec<u8>, prefix: &[u8], seq: u64) {
    key.clear();
    key.extend_from_slice(prefix);
    key.extend_from_slice(&seq.to_be_bytes());
}

/// `terms` value: `count u64 LE ‖ first seq of the last chunk u64 LE`.
pub(crate) fn encode_term_stats(count: u64, last_first: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&count.to_le_bytes());
    v[8..].copy_from_slice(&last_first.to_le_bytes());
    v
}

/// Decodes a `terms` value into `(count, first seq of the last chunk)`; a stored count is
/// never zero.
pub(crate) fn decode_term_stats(v: &[u8]) -> Option<(u64, u64)> {
    let count = get_u64_le(v.get(..8)?)?;
    let last_first = get_u64_le(v.get(8..)?)?;
    (count > 0).then_some((count, last_first))
}
