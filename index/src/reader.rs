//! [`IndexReader`]: a consistent snapshot of the index and every query on it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, TableDefinition, TableHandle};

use crate::batch::event_id_hash;
use crate::codec::{
    Decoded, check_len, check_term, decode_pairs, dim_code, get_str, get8, hex, i64_from_key,
    i64_key, put_str, put_term,
};
use crate::event_time::EventTimes;
use crate::postings::Postings;
use crate::tables::{
    COUNTS, EVENT_ID_RUNS, EVENT_IDS, EVENT_TIMES, LOGGED_AT, META, META_WATERMARK, POSTINGS,
    TENANTS, TERMS, VALUES, get_u64_le,
};
use crate::term::{Dimension, Direction, Term};
use crate::write::decode_term_stats;
use crate::{HOUR_NS, IndexError};

/// One row of [`IndexReader::counts`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountRow {
    /// Start of the bucket: a multiple of the bucket width since the Unix epoch (UTC).
    pub bucket_start_ns: i64,
    /// The tenant.
    pub tenant: String,
    /// The dimension's value (see [`Dimension`]).
    pub value: String,
    /// Receipts in the bucket with that tenant and value.
    pub count: u64,
}

/// A consistent snapshot of the index (a redb read transaction). Commits made after it was
/// taken are not visible through it.
pub struct IndexReader {
    pub(crate) path: PathBuf,
    watermark: u64,
    /// The snapshot the tables are opened from, on first use: a point lookup needs two of the
    /// nine tables, and opening one costs a redb table-tree lookup (~4 k instructions).
    txn: ReadTransaction,
    postings: OnceLock<Table>,
    terms: OnceLock<Table>,
    event_ids: OnceLock<Table>,
    event_id_runs: OnceLock<Table>,
    /// The event-id runs of this snapshot, read on the first lookup: a snapshot shared by
    /// many lookups (see `Index::shared_reader`) lists them once.
    pub(crate) event_id_run_list: OnceLock<Vec<crate::event_ids::Run>>,
    logged_at: OnceLock<Table>,
    event_times: OnceLock<Table>,
    counts: OnceLock<Table>,
    values: OnceLock<Table>,
    tenants: OnceLock<ReadOnlyTable<&'static str, &'static [u8]>>,
}

type Table = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Opens `def` from `txn` into `cell` once.
fn lazy<'c, K: redb::Key + 'static, V: redb::Value + 'static>(
    cell: &'c OnceLock<ReadOnlyTable<K, V>>,
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
    path: &Path,
) -> Result<&'c ReadOnlyTable<K, V>, IndexError> {
    if let Some(table) = cell.get() {
        return Ok(table);
    }
    let table = open(txn, def, path)?;
    Ok(cell.get_or_init(|| table))
}

impl std::fmt::Debug for IndexReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexReader")
            .field("path", &self.path)
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

fn open<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
    path: &Path,
) -> Result<ReadOnlyTable<K, V>, IndexError> {
    txn.open_table(def)
        .map_err(|e| IndexError::redb(format!("open table {}", def.name()), path, e))
}

impl IndexReader {
    pub(crate) fn new(txn: ReadTransaction, path: PathBuf) -> Result<IndexReader, IndexError> {
        let meta = open(&txn, META, &path)?;
        let watermark = meta
            .get(META_WATERMARK)
            .map_err(|e| IndexError::redb("read meta", &path, e))?
            .and_then(|v| get_u64_le(v.value()))
            .ok_or_else(|| {
                IndexError::corrupt(&path, "meta", "watermark missing or not 8 bytes")
            })?;
        Ok(IndexReader {
            watermark,
            txn,
            postings: OnceLock::new(),
            terms: OnceLock::new(),
            event_ids: OnceLock::new(),
            event_id_runs: OnceLock::new(),
            event_id_run_list: OnceLock::new(),
            logged_at: OnceLock::new(),
            event_times: OnceLock::new(),
            counts: OnceLock::new(),
            values: OnceLock::new(),
            tenants: OnceLock::new(),
            path,
        })
    }

    pub(crate) fn postings_table(&self) -> Result<&Table, IndexError> {
        lazy(&self.postings, &self.txn, POSTINGS, &self.path)
    }

    pub(crate) fn terms_table(&self) -> Result<&Table, IndexError> {
        lazy(&self.terms, &self.txn, TERMS, &self.path)
    }

    pub(crate) fn event_ids_table(&self) -> Result<&Table, IndexError> {
        lazy(&self.event_ids, &self.txn, EVENT_IDS, &self.path)
    }

    pub(crate) fn event_id_runs_table(&self) -> Result<&Table, IndexError> {
        lazy(&self.event_id_runs, &self.txn, EVENT_ID_RUNS, &self.path)
    }

    pub(crate) fn logged_at_table(&self) -> Result<&Table, IndexError> {
        lazy(&self.logged_at, &self.txn, LOGGED_AT, &self.path)
    }

    pub(crate) fn event_times_table(&self) -> Result<&Table, IndexError> {
        lazy(&self.event_times, &self.txn, EVENT_TIMES, &self.path)
    }

    pub(crate) fn counts_table(&self) -> Result<&Table, IndexError> {
        lazy(&self.counts, &self.txn, COUNTS, &self.path)
    }

    pub(crate) fn values_table(&self) -> Result<&Table, IndexError> {
        lazy(&self.values, &self.txn, VALUES, &self.path)
    }

    pub(crate) fn tenants_table(
        &self,
    ) -> Result<&ReadOnlyTable<&'static str, &'static [u8]>, IndexError> {
        lazy(&self.tenants, &self.txn, TENANTS, &self.path)
    }

    pub(crate) fn err(&self, op: &str, e: impl Into<redb::Error>) -> IndexError {
        IndexError::redb(op, &self.path, e)
    }

    pub(crate) fn corrupt(&self, table: &'static str, key: &[u8], detail: &str) -> IndexError {
        IndexError::corrupt(&self.path, table, format!("key {}: {detail}", hex(key)))
    }

    /// The next seq the snapshot does not cover.
    #[must_use]
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// The seqs of `term` within `seqs`, strictly increasing ([`Direction::Ascending`]) or
    /// decreasing. Walks one chunk at a time.
    ///
    /// # Errors
    ///
    /// [`IndexError::FieldTooLong`] for a term no key can hold; redb errors. A damaged chunk
    /// is reported by the iterator as an `Err` item, after which it ends.
    pub fn postings(
        &self,
        term: &Term<'_>,
        seqs: Range<u64>,
        dir: Direction,
    ) -> Result<Postings<'_>, IndexError> {
        check_term(term, None)?;
        let mut key = Vec::with_capacity(64);
        put_term(&mut key, term);
        Postings::new(self, &key, seqs, dir)
    }

    /// The exact number of seqs in `term`'s posting list (0 for an unknown term).
    ///
    /// # Errors
    ///
    /// [`IndexError::FieldTooLong`], [`IndexError::Corrupt`], redb errors.
    pub fn posting_count(&self, term: &Term<'_>) -> Result<u64, IndexError> {
        check_term(term, None)?;
        let mut key = Vec::with_capacity(64);
        put_term(&mut key, term);
        let Some(v) = self
            .terms_table()?
            .get(key.as_slice())
            .map_err(|e| self.err("read terms", e))?
        else {
            return Ok(0);
        };
        let stats = decode_term_stats(v.value()).ok_or_else(|| {
            self.corrupt(
                "terms",
                &key,
                "stats are not 16 bytes with a non-zero count",
            )
        })?;
        Ok(stats.0)
    }

    /// Candidate seqs for `(tenant, event_id)`, increasing. Keys are 16-byte hashes, so a
    /// candidate may in principle belong to another id: the caller checks the log.
    ///
    /// # Errors
    ///
    /// redb errors; [`IndexError::Corrupt`] for a key of the wrong size.
    pub fn event_seqs(&self, tenant: &str, event_id: &str) -> Result<Vec<u64>, IndexError> {
        self.event_id_lookup(&event_id_hash(tenant, event_id))
    }

    /// The smallest range of seqs holding every receipt with `from_ns <= logged_at < to_ns`:
    /// from the first such receipt to one past the last (it may hold other seqs between).
    /// Empty (`0..0`) when there is none.
    ///
    /// # Errors
    ///
    /// [`IndexError::Corrupt`], redb errors.
    pub fn seq_range_for_logged_at(
        &self,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Range<u64>, IndexError> {
        if from_ns >= to_ns {
            return Ok(0..0);
        }
        let Some(start) = self.first_logged_at_from(from_ns)? else {
            return Ok(0..0);
        };
        let Some(end) = self.last_logged_at_before(to_ns)? else {
            return Ok(0..0);
        };
        Ok(if start <= end { start..end + 1 } else { 0..0 })
    }

    /// The first receipt with `logged_at >= from`: in the last chunk that starts below `from`,
    /// or else the first pair of the next chunk.
    fn first_logged_at_from(&self, from: u64) -> Result<Option<u64>, IndexError> {
        let bound = [from.to_be_bytes(), [0; 8]].concat();
        let before = self
            .logged_at_table()?
            .range::<&[u8]>(..bound.as_slice())
            .map_err(|e| self.err("read logged_at", e))?
            .next_back();
        if let Some(item) = before {
            let (k, v) = item.map_err(|e| self.err("read logged_at", e))?;
            let pairs = self.logged_at_pairs(k.value(), v.value())?;
            if let Some(&(seq, _)) = pairs.iter().find(|p| p.1 >= from) {
                return Ok(Some(seq));
            }
        }
        let after = self
            .logged_at_table()?
            .range::<&[u8]>(bound.as_slice()..)
            .map_err(|e| self.err("read logged_at", e))?
            .next();
        match after {
            Some(item) => {
                let (k, _) = item.map_err(|e| self.err("read logged_at", e))?;
                let key = k.value();
                Ok(Some(key.get(8..16).and_then(get_be).ok_or_else(|| {
                    self.corrupt("logged_at", key, "key is not 16 bytes")
                })?))
            }
            None => Ok(None),
        }
    }

    /// The last receipt with `logged_at < to`: in the last chunk that starts below `to`.
    fn last_logged_at_before(&self, to: u64) -> Result<Option<u64>, IndexError> {
        let bound = [to.to_be_bytes(), [0; 8]].concat();
        let before = self
            .logged_at_table()?
            .range::<&[u8]>(..bound.as_slice())
            .map_err(|e| self.err("read logged_at", e))?
            .next_back();
        let Some(item) = before else { return Ok(None) };
        let (k, v) = item.map_err(|e| self.err("read logged_at", e))?;
        let pairs = self.logged_at_pairs(k.value(), v.value())?;
        Ok(pairs.iter().rev().find(|p| p.1 < to).map(|p| p.0))
    }

    /// Decodes a logged-at chunk and checks its times never decrease.
    pub(crate) fn logged_at_pairs(
        &self,
        key: &[u8],
        chunk: &[u8],
    ) -> Result<Vec<(u64, u64)>, IndexError> {
        let decode = || -> Decoded<Vec<(u64, u64)>> {
            let mut pos = 0;
            let first_la = u64::from_be_bytes(get8(key, &mut pos)?);
            let first_seq = u64::from_be_bytes(get8(key, &mut pos)?);
            if key.len() != 16 {
                return Err("key is not 16 bytes");
            }
            let mut out = Vec::new();
            decode_pairs(first_seq, first_la, chunk, &mut out)?;
            if out.windows(2).any(|w| w[1].1 < w[0].1) || out[0].1 != first_la {
                return Err("logged_at decreases");
            }
            Ok(out)
        };
        decode().map_err(|d| self.corrupt("logged_at", key, d))
    }

    /// The tenant's receipts with `from_ns <= event_time < to_ns`, as `(event_time, seq)`
    /// ordered by `(event_time, seq)` in `dir`. Reads one chunk (a few hundred receipts) at a
    /// time.
    ///
    /// # Errors
    ///
    /// [`IndexError::FieldTooLong`], redb errors; damage is reported by the iterator.
    pub fn event_time(
        &self,
        tenant: &str,
        from_ns: i64,
        to_ns: i64,
        dir: Direction,
    ) -> Result<EventTimes<'_>, IndexError> {
        check_len(tenant, "tenant", None)?;
        EventTimes::new(self, tenant, from_ns, to_ns, dir)
    }

    /// Every tenant with its number of receipts, sorted by tenant id.
    ///
    /// # Errors
    ///
    /// [`IndexError::Corrupt`], redb errors.
    pub fn tenants(&self) -> Result<Vec<(String, u64)>, IndexError> {
        let mut out = Vec::new();
        for item in self
            .tenants_table()?
            .iter()
            .map_err(|e| self.err("read tenants", e))?
        {
            let (k, v) = item.map_err(|e| self.err("read tenants", e))?;
            let n = get_u64_le(v.value()).ok_or_else(|| {
                self.corrupt("tenants", k.value().as_bytes(), "count is not 8 bytes")
            })?;
            out.push((k.value().to_owned(), n));
        }
        Ok(out)
    }

    /// Receipt counts by event time in `[from_ns, to_ns)`, grouped by (bucket start, tenant,
    /// value of `dim`) and sorted so. Buckets are `bucket_ns` wide, aligned to the Unix epoch.
    /// `tenant: None` counts every tenant. Read from the hourly counts table.
    ///
    /// # Errors
    ///
    /// [`IndexError::BadBucket`] unless `bucket_ns` is a positive multiple of an hour;
    /// [`IndexError::UnalignedRange`] unless `from_ns` and `to_ns` are whole hours;
    /// [`IndexError::Corrupt`], redb errors.
    pub fn counts(
        &self,
        tenant: Option<&str>,
        dim: Dimension,
        bucket_ns: u64,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<CountRow>, IndexError> {
        if bucket_ns == 0 || !bucket_ns.is_multiple_of(HOUR_NS.cast_unsigned()) {
            return Err(IndexError::BadBucket { bucket_ns });
        }
        if from_ns.rem_euclid(HOUR_NS) != 0 || to_ns.rem_euclid(HOUR_NS) != 0 {
            return Err(IndexError::UnalignedRange { from_ns, to_ns });
        }
        let tenants = match tenant {
            Some(t) => {
                check_len(t, "tenant", None)?;
                vec![t.to_owned()]
            }
            None => self.tenants()?.into_iter().map(|(t, _)| t).collect(),
        };
        let mut rows = BTreeMap::new();
        for t in &tenants {
            self.count_tenant(
                t,
                dim,
                i128::from(bucket_ns),
                (from_ns / HOUR_NS, to_ns / HOUR_NS),
                &mut rows,
            )?;
        }
        Ok(rows
            .into_iter()
            .map(|((bucket_start_ns, tenant, value), count)| CountRow {
                bucket_start_ns,
                tenant,
                value,
                count,
            })
            .collect())
    }

    /// Adds one tenant's hourly counts in `hours` to `rows`.
    fn count_tenant(
        &self,
        tenant: &str,
        dim: Dimension,
        bucket: i128,
        hours: (i64, i64),
        rows: &mut BTreeMap<(i64, String, String), u64>,
    ) -> Result<(), IndexError> {
        if hours.0 >= hours.1 {
            return Ok(());
        }
        let mut prefix = Vec::new();
        put_str(&mut prefix, tenant);
        prefix.push(dim_code(dim));
        let lo = [prefix.as_slice(), &i64_key(hours.0)].concat();
        let hi = [prefix.as_slice(), &i64_key(hours.1)].concat();
        let range = self
            .counts_table()?
            .range::<&[u8]>(lo.as_slice()..hi.as_slice())
            .map_err(|e| self.err("read counts", e))?;
        for item in range {
            let (k, v) = item.map_err(|e| self.err("read counts", e))?;
            let key = k.value();
            let decode = || -> Decoded<(i64, String, u64)> {
                let mut pos = prefix.len();
                let hour = i64_from_key(get8(key, &mut pos)?);
                let value = get_str(key, &mut pos)?.to_owned();
                let n = get_u64_le(v.value()).ok_or("count is not 8 bytes")?;
                if pos != key.len() {
                    return Err("trailing bytes in key");
                }
                Ok((hour, value, n))
            };
            let (hour, value, n) = decode().map_err(|d| self.corrupt("counts", key, d))?;
            let start = (i128::from(hour) * i128::from(HOUR_NS)).div_euclid(bucket) * bucket;
            // Bucket starts below i64::MIN (huge buckets, times before 1677) clamp to it.
            let start = i64::try_from(start).unwrap_or(i64::MIN);
            *rows.entry((start, tenant.to_owned(), value)).or_insert(0) += n;
        }
        Ok(())
    }

    /// The distinct values of `dim` among the tenant's receipts, with their counts, sorted by
    /// value.
    ///
    /// # Errors
    ///
    /// [`IndexError::Corrupt`], redb errors.
    pub fn values(&self, tenant: &str, dim: Dimension) -> Result<Vec<(String, u64)>, IndexError> {
        check_len(tenant, "tenant", None)?;
        let mut lo = Vec::new();
        put_str(&mut lo, tenant);
        lo.push(dim_code(dim));
        let range = self
            .values_table()?
            .range::<&[u8]>(lo.as_slice()..)
            .map_err(|e| self.err("read values", e))?;
        let mut out = Vec::new();
        for item in range {
            let (k, v) = item.map_err(|e| self.err("read values", e))?;
            let key = k.value();
            if !key.starts_with(&lo) {
                break;
            }
            let mut pos = lo.len();
            let value = get_str(key, &mut pos).ok().filter(|_| pos == key.len());
            match (value, get_u64_le(v.value())) {
                (Some(value), Some(n)) => out.push((value.to_owned(), n)),
                _ => return Err(self.corrupt("values", key, "malformed value key or count")),
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

/// Reads 8 bytes as a big-endian `u64`.
pub(crate) fn get_be(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}
