//! [`IndexReader::logical_digest`]: a digest of what the index says, not of how it is stored.
//!
//! Chunk boundaries, the `terms` table's last-chunk pointers and redb's page layout depend on
//! how the content was split into batches; none of them enters the digest. What enters it is
//! each term's full seq list, every event-id key, every `(seq, logged_at)`, each tenant's
//! `(seq, event time)` list, every count and the watermark.

use redb::{ReadOnlyTable, ReadableTable};

use crate::codec::{decode_postings, decode_time_chunk, time_key_pair};
use crate::reader::{IndexReader, get_be};
use crate::tables::get_u64_le;
use crate::write::decode_term_stats;
use crate::{DIGEST_CONTEXT, IndexError};

type Bytes = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Feeds `bytes` with its length in front, so that consecutive items cannot run together.
fn framed(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// One group (a term, a tenant's event times) being hashed: its key, item count, items' hash.
struct Group {
    key: Vec<u8>,
    n: u64,
    items: blake3::Hasher,
}

impl Group {
    fn finish(self, out: &mut blake3::Hasher) {
        framed(out, &self.key);
        out.update(&self.n.to_le_bytes());
        out.update(self.items.finalize().as_bytes());
    }
}

impl IndexReader {
    /// A BLAKE3 digest of the index content: equal for two indexes of the same log whatever
    /// batches, chunk targets and commit modes built them, and different when any term's seq
    /// list, event id, time, count or the watermark differs. Reads the whole index.
    ///
    /// # Errors
    ///
    /// [`IndexError::Corrupt`] when a chunk does not decode or a term's count disagrees with
    /// its list; redb errors.
    pub fn logical_digest(&self) -> Result<[u8; 32], IndexError> {
        let mut h = blake3::Hasher::new_derive_key(DIGEST_CONTEXT);
        h.update(&self.watermark().to_le_bytes());
        self.digest_postings(&mut h)?;
        h.update(b"event_ids");
        let (entries, expected) = self.event_id_entries()?;
        let mut n = 0u64;
        for entry in entries {
            h.update(&entry?);
            n += 1;
        }
        if n != expected {
            return Err(IndexError::corrupt(
                &self.path,
                "event_id_runs",
                "run sizes disagree with their blocks",
            ));
        }
        self.digest_logged_at(&mut h)?;
        self.digest_event_times(&mut h)?;
        for (name, table) in [
            ("counts", self.counts_table()?),
            ("values", self.values_table()?),
        ] {
            h.update(name.as_bytes());
            self.digest_plain(&mut h, table, name)?;
        }
        h.update(b"tenants");
        for item in self
            .tenants_table()?
            .iter()
            .map_err(|e| self.err("read tenants", e))?
        {
            let (k, v) = item.map_err(|e| self.err("read tenants", e))?;
            let n = get_u64_le(v.value()).ok_or_else(|| {
                self.corrupt("tenants", k.value().as_bytes(), "count is not 8 bytes")
            })?;
            framed(&mut h, k.value().as_bytes());
            framed(&mut h, &n.to_le_bytes());
        }
        Ok(*h.finalize().as_bytes())
    }

    /// Every term's seqs, cross-checked against the `terms` counts (same key order).
    fn digest_postings(&self, h: &mut blake3::Hasher) -> Result<(), IndexError> {
        h.update(b"postings");
        let mut terms = self
            .terms_table()?
            .iter()
            .map_err(|e| self.err("read terms", e))?;
        let mut check = |g: &Group| -> Result<(), IndexError> {
            let entry = terms
                .next()
                .transpose()
                .map_err(|e| self.err("read terms", e))?;
            let stats = entry.and_then(|(k, v)| {
                (k.value() == g.key.as_slice())
                    .then(|| decode_term_stats(v.value()))
                    .flatten()
            });
            match stats {
                Some((n, _)) if n == g.n => Ok(()),
                _ => Err(self.corrupt("terms", &g.key, "count disagrees with the posting list")),
            }
        };
        let mut group: Option<Group> = None;
        let mut seqs = Vec::new();
        for item in self
            .postings_table()?
            .iter()
            .map_err(|e| self.err("read postings", e))?
        {
            let (k, v) = item.map_err(|e| self.err("read postings", e))?;
            let key = k.value();
            let split = key
                .len()
                .checked_sub(8)
                .ok_or_else(|| self.corrupt("postings", key, "key shorter than 8 bytes"))?;
            let (term, first) = (&key[..split], get_be(&key[split..]).unwrap_or(0));
            if group.as_ref().is_none_or(|g| g.key != term) {
                if let Some(g) = group.take() {
                    check(&g)?;
                    g.finish(h);
                }
                group = Some(Group {
                    key: term.to_vec(),
                    n: 0,
                    items: blake3::Hasher::new(),
                });
            }
            seqs.clear();
            decode_postings(first, v.value(), &mut seqs)
                .map_err(|d| self.corrupt("postings", key, d))?;
            if let Some(g) = group.as_mut() {
                g.n += seqs.len() as u64;
                for s in &seqs {
                    g.items.update(&s.to_le_bytes());
                }
            }
        }
        if let Some(g) = group.take() {
            check(&g)?;
            g.finish(h);
        }
        match terms.next() {
            None => Ok(()),
            Some(_) => Err(IndexError::corrupt(
                &self.path,
                "terms",
                "a term has stats but no posting list",
            )),
        }
    }

    fn digest_logged_at(&self, h: &mut blake3::Hasher) -> Result<(), IndexError> {
        h.update(b"logged_at");
        for item in self
            .logged_at_table()?
            .iter()
            .map_err(|e| self.err("read logged_at", e))?
        {
            let (k, v) = item.map_err(|e| self.err("read logged_at", e))?;
            for (seq, la) in self.logged_at_pairs(k.value(), v.value())? {
                h.update(&seq.to_le_bytes());
                h.update(&la.to_le_bytes());
            }
        }
        Ok(())
    }

    /// Each tenant's `(seq, event time)` list in `(event time, seq)` order: chunks follow
    /// each other in that order, so the list does not depend on where chunks were cut.
    fn digest_event_times(&self, h: &mut blake3::Hasher) -> Result<(), IndexError> {
        h.update(b"event_times");
        let mut group: Option<Group> = None;
        let mut pairs = Vec::new();
        for item in self
            .event_times_table()?
            .iter()
            .map_err(|e| self.err("read event_times", e))?
        {
            let (k, v) = item.map_err(|e| self.err("read event_times", e))?;
            let key = k.value();
            let split = key
                .len()
                .checked_sub(16)
                .filter(|s| *s >= 2)
                .ok_or_else(|| self.corrupt("event_times", key, "short key"))?;
            let prefix = &key[..split];
            let first =
                time_key_pair(key, split).map_err(|d| self.corrupt("event_times", key, d))?;
            if group.as_ref().is_none_or(|g| g.key != prefix) {
                if let Some(g) = group.take() {
                    g.finish(h);
                }
                group = Some(Group {
                    key: prefix.to_vec(),
                    n: 0,
                    items: blake3::Hasher::new(),
                });
            }
            pairs.clear();
            decode_time_chunk(first, v.value(), &mut pairs)
                .map_err(|d| self.corrupt("event_times", key, d))?;
            if let Some(g) = group.as_mut() {
                g.n += pairs.len() as u64;
                for (t, seq) in &pairs {
                    g.items.update(&seq.to_le_bytes());
                    g.items.update(&t.to_le_bytes());
                }
            }
        }
        if let Some(g) = group.take() {
            g.finish(h);
        }
        Ok(())
    }

    fn digest_plain(
        &self,
        h: &mut blake3::Hasher,
        table: &Bytes,
        name: &'static str,
    ) -> Result<(), IndexError> {
        for item in table
            .iter()
            .map_err(|e| self.err(&format!("read {name}"), e))?
        {
            let (k, v) = item.map_err(|e| self.err(&format!("read {name}"), e))?;
            let n = get_u64_le(v.value())
                .ok_or_else(|| self.corrupt(name, k.value(), "count is not 8 bytes"))?;
            framed(h, k.value());
            h.update(&n.to_le_bytes());
        }
        Ok(())
    }
}
