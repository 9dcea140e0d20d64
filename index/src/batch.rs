//! [`IndexBatch`]: the index entries of a run of seqs, built without touching redb.

use std::collections::HashMap;
use std::sync::LazyLock;

/// The batch builder's maps. A receipt costs ~20 lookups of short keys; `SipHash` made hashing
/// them ~30% of the indexer's time. foldhash is seeded per process, so keys chosen by a
/// tenant still cannot be aimed at one bucket ahead of time.
pub(crate) type BatchMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use crate::codec::{check_len, check_term, dim_code, i64_key, put_str, put_term};
use crate::term::{Dimension, Term};
use crate::{EVENT_ID_CONTEXT, HOUR_NS, IndexError, IndexRecord, MAX_FIELD_BYTES};

/// The index entries for the seqs `start..end`, grouped the way [`Index::commit`](crate::Index::commit)
/// writes them (per term, per tenant, per count key), so that a commit writes a
/// few keys per term instead of one per receipt per table.
///
/// A batch is owned and built without the index, so the engine can fill it on another thread.
#[derive(Debug, Clone)]
pub struct IndexBatch {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) receipts: usize,
    pub(crate) last_logged_at: Option<u64>,
    /// Term key → its seqs in this batch, ascending.
    pub(crate) postings: BatchMap<Vec<u8>, Vec<u64>>,
    /// `event id hash (16) ‖ seq (u64 BE)` per receipt, unsorted.
    pub(crate) event_ids: Vec<[u8; 24]>,
    /// `(seq, logged_at)` per receipt, ascending.
    pub(crate) logged_at: Vec<(u64, u64)>,
    /// `str(tenant)` → `(seq, event time)` in seq order.
    pub(crate) event_times: BatchMap<Vec<u8>, Vec<(u64, i64)>>,
    /// Count key (`str(tenant) ‖ dim ‖ hour ‖ str(value)`) → receipts.
    pub(crate) counts: BatchMap<Vec<u8>, u64>,
    /// Value key (`str(tenant) ‖ dim ‖ str(value)`) → receipts.
    pub(crate) values: BatchMap<Vec<u8>, u64>,
    /// Tenant → receipts.
    pub(crate) tenants: BatchMap<String, u64>,
    scratch: Vec<u8>,
}

impl IndexBatch {
    /// An empty batch starting at `start` (which must equal the index watermark at commit).
    #[must_use]
    pub fn new(start: u64) -> IndexBatch {
        IndexBatch {
            start,
            end: start,
            receipts: 0,
            last_logged_at: None,
            postings: BatchMap::default(),
            event_ids: Vec::new(),
            logged_at: Vec::new(),
            event_times: BatchMap::default(),
            counts: BatchMap::default(),
            values: BatchMap::default(),
            tenants: BatchMap::default(),
            scratch: Vec::with_capacity(128),
        }
    }

    /// Adds one receipt. Its seq must be at least [`end`](Self::end) and its `logged_at` at
    /// least the previous record's; strings must fit [`MAX_FIELD_BYTES`](crate::MAX_FIELD_BYTES).
    /// Sets `end` to `seq + 1`.
    ///
    /// # Errors
    ///
    /// [`IndexError::SeqNotIncreasing`], [`IndexError::LoggedAtDecreasing`],
    /// [`IndexError::FieldTooLong`]; the batch is unchanged.
    pub fn push(&mut self, record: &IndexRecord<'_>) -> Result<(), IndexError> {
        self.check(record)?;
        let seq = record.seq;
        for_each_term(record, |term| {
            self.scratch.clear();
            put_term(&mut self.scratch, &term);
            match self.postings.get_mut(self.scratch.as_slice()) {
                Some(seqs) => seqs.push(seq),
                None => {
                    self.postings.insert(self.scratch.clone(), vec![seq]);
                }
            }
        });
        self.event_ids
            .push(event_id_key(record.tenant, record.event_id, seq));
        self.logged_at.push((seq, record.logged_at_ns));
        self.add_event_time(record);
        self.add_counts(record);
        match self.tenants.get_mut(record.tenant) {
            Some(n) => *n += 1,
            None => {
                self.tenants.insert(record.tenant.to_owned(), 1);
            }
        }
        self.receipts += 1;
        self.last_logged_at = Some(record.logged_at_ns);
        self.end = seq + 1;
        Ok(())
    }

    /// Covers the seqs up to `end` (exclusive) that hold no receipt (checkpoints, seals).
    /// Never moves backwards: an `end` below [`end`](Self::end) changes nothing.
    pub fn advance_to(&mut self, end: u64) {
        self.end = self.end.max(end);
    }

    /// The first seq the batch covers.
    #[must_use]
    pub fn start(&self) -> u64 {
        self.start
    }

    /// One past the last seq the batch covers (the watermark after its commit).
    #[must_use]
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Number of receipts pushed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.receipts
    }

    /// Whether no receipt was pushed (the batch may still cover seqs).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.receipts == 0
    }

    /// Every check of [`push`](Self::push), before anything changes.
    fn check(&self, r: &IndexRecord<'_>) -> Result<(), IndexError> {
        if r.seq < self.end || r.seq == u64::MAX {
            return Err(IndexError::SeqNotIncreasing {
                seq: r.seq,
                end: self.end,
            });
        }
        if let Some(previous_ns) = self.last_logged_at.filter(|p| r.logged_at_ns < *p) {
            return Err(IndexError::LoggedAtDecreasing {
                seq: r.seq,
                logged_at_ns: r.logged_at_ns,
                previous_ns,
            });
        }
        let mut result = Ok(());
        for_each_term(r, |term| {
            if result.is_ok() {
                result = check_term(&term, Some(r.seq));
            }
        });
        result?;
        if model_len(r) > MAX_FIELD_BYTES {
            return Err(IndexError::FieldTooLong {
                seq: Some(r.seq),
                field: "model name@version",
                len: model_len(r),
                max: MAX_FIELD_BYTES,
            });
        }
        check_len(r.decision.unwrap_or(""), "decision", Some(r.seq))
    }

    fn add_event_time(&mut self, r: &IndexRecord<'_>) {
        self.scratch.clear();
        put_str(&mut self.scratch, r.tenant);
        let pair = (r.seq, r.event_time_ns);
        match self.event_times.get_mut(self.scratch.as_slice()) {
            Some(pairs) => pairs.push(pair),
            None => {
                self.event_times.insert(self.scratch.clone(), vec![pair]);
            }
        }
    }

    fn add_counts(&mut self, r: &IndexRecord<'_>) {
        let hour = i64_key(r.event_time_ns.div_euclid(HOUR_NS));
        for dim in [
            Dimension::Tenant,
            Dimension::Model,
            Dimension::Kind,
            Dimension::Decision,
        ] {
            self.scratch.clear();
            put_str(&mut self.scratch, r.tenant);
            self.scratch.push(dim_code(dim));
            let prefix = self.scratch.len();
            put_count_value(&mut self.scratch, r, dim);
            bump(&mut self.values, &self.scratch);
            self.scratch.truncate(prefix);
            self.scratch.extend_from_slice(&hour);
            put_count_value(&mut self.scratch, r, dim);
            bump(&mut self.counts, &self.scratch);
        }
    }
}

/// Adds one to the count under `key`, allocating the key only when it is new.
fn bump(map: &mut BatchMap<Vec<u8>, u64>, key: &[u8]) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_vec(), 1);
        }
    }
}

/// The parts of the value a record counts under in [`Dimension::Model`]: `name`,
/// `name@version`, or "".
fn model_parts<'a>(r: &IndexRecord<'a>) -> [&'a str; 3] {
    match (r.model_name, r.model_version) {
        (Some(n), Some(v)) => [n, "@", v],
        (Some(n), None) => [n, "", ""],
        (None, _) => ["", "", ""],
    }
}

/// Byte length of the record's [`Dimension::Model`] value.
fn model_len(r: &IndexRecord<'_>) -> usize {
    model_parts(r).iter().map(|p| p.len()).sum()
}

/// Appends `str(value)` of the record's value in `dim`, writing the model's `name@version`
/// straight into `out`. Like [`put_str`], a value over the limit (refused by `check`) is cut.
fn put_count_value(out: &mut Vec<u8>, r: &IndexRecord<'_>, dim: Dimension) {
    let parts = match dim {
        Dimension::Tenant => [r.tenant, "", ""],
        Dimension::Model => model_parts(r),
        Dimension::Kind => [r.kind, "", ""],
        Dimension::Decision => [r.decision.unwrap_or(""), "", ""],
    };
    let len = parts
        .iter()
        .map(|p| p.len())
        .sum::<usize>()
        .min(MAX_FIELD_BYTES);
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    let mut room = len;
    for p in parts {
        let bytes = &p.as_bytes()[..p.len().min(room)];
        room -= bytes.len();
        out.extend_from_slice(bytes);
    }
}

/// Calls `f` with every term a record is indexed under.
pub(crate) fn for_each_term<'a>(r: &IndexRecord<'a>, mut f: impl FnMut(Term<'a>)) {
    let t = r.tenant;
    f(Term::Tenant(t));
    if let Some(name) = r.model_name {
        f(Term::ModelName(t, name));
        if let Some(version) = r.model_version {
            f(Term::ModelVersion(t, name, version));
        }
    }
    f(Term::Kind(t, r.kind));
    if let Some(d) = r.decision {
        f(Term::Decision(t, d));
    }
    if let Some(s) = r.session_id {
        f(Term::Session(t, s));
    }
    if let Some(s) = r.subject_id {
        f(Term::Subject(t, s));
    }
    f(Term::App(t, r.app_id));
    for (k, v) in r.labels {
        f(Term::Label(t, k, v));
    }
}

/// The 16-byte event-id hash: BLAKE3 `derive_key(EVENT_ID_CONTEXT)` over
/// `str(tenant) ‖ str(event_id)` with `u64` little-endian lengths (so no pair of strings
/// collides by concatenation), truncated.
pub(crate) fn event_id_hash(tenant: &str, event_id: &str) -> [u8; 16] {
    use blake3::hazmat::HasherExt as _;
    // Starting from the derived context key saves a compression per id and, unlike cloning a
    // hasher that absorbed the context, copies no 1.9 KB hasher state (callgrind: 1.4k
    // instructions per receipt before, on the indexer thread).
    static CONTEXT_KEY: LazyLock<blake3::hazmat::ContextKey> =
        LazyLock::new(|| blake3::hazmat::hash_derive_key_context(EVENT_ID_CONTEXT));
    let mut h = blake3::Hasher::new_from_context_key(&CONTEXT_KEY);
    h.update(&(tenant.len() as u64).to_le_bytes());
    h.update(tenant.as_bytes());
    h.update(&(event_id.len() as u64).to_le_bytes());
    h.update(event_id.as_bytes());
    // The first 16 bytes of the extended output are the first 16 of the 32-byte hash.
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// The event-id table key of a receipt: hash ‖ seq (big-endian).
fn event_id_key(tenant: &str, event_id: &str, seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&event_id_hash(tenant, event_id));
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event-id table's keys are on disk: the hash must stay the one its doc defines,
    /// `derive_key(EVENT_ID_CONTEXT)` over the length-prefixed strings, truncated to 16 bytes.
    #[test]
    fn event_id_hash_is_the_documented_derive_key_output() {
        for (tenant, event_id) in [("acme", "evt-1"), ("", ""), ("t", &"e".repeat(300)[..])] {
            let mut reference = blake3::Hasher::new_derive_key(EVENT_ID_CONTEXT);
            reference.update(&(tenant.len() as u64).to_le_bytes());
            reference.update(tenant.as_bytes());
            reference.update(&(event_id.len() as u64).to_le_bytes());
            reference.update(event_id.as_bytes());
            let mut want = [0u8; 16];
            reference.finalize_xof().fill(&mut want);
            assert_eq!(
                event_id_hash(tenant, event_id),
                want,
                "{tenant:?} {event_id:?}"
            );
        }
    }
}
