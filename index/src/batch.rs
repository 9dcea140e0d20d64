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
    /// Term key → its place in `postings`.
    posting_ids: BatchMap<Vec<u8>, usize>,
    /// `(term key, its seqs in this batch ascending)`, in order of first appearance.
    pub(crate) postings: Vec<(Vec<u8>, Vec<u64>)>,
    /// `event id hash (16) ‖ seq (u64 BE)` per receipt, unsorted.
    pub(crate) event_ids: Vec<[u8; 24]>,
    /// `(seq, logged_at)` per receipt, ascending.
    pub(crate) logged_at: Vec<(u64, u64)>,
    /// `str(tenant)` → its place in `tenants`.
    tenant_ids: BatchMap<Vec<u8>, usize>,
    /// Per tenant: its receipts and their `(seq, event time)` in seq order.
    pub(crate) tenants: Vec<TenantGroup>,
    /// Count key → its place in `counts`.
    count_ids: BatchMap<Vec<u8>, usize>,
    /// `(count key, receipts)`, count key = `str(tenant) ‖ dim ‖ hour ‖ str(value)`.
    pub(crate) counts: Vec<(Vec<u8>, u64)>,
    /// Value key → its place in `values`.
    value_ids: BatchMap<Vec<u8>, usize>,
    /// `(value key, receipts)`, value key = `str(tenant) ‖ dim ‖ str(value)`.
    pub(crate) values: Vec<(Vec<u8>, u64)>,
    /// Shape key (see [`put_shape_key`]) → where its receipts go.
    shapes: BatchMap<Vec<u8>, Shape>,
    scratch: Vec<u8>,
    shape_key: Vec<u8>,
}

/// `(str(tenant), (seq, event time) in seq order)`: one tenant's event times in a batch.
pub(crate) type TenantTimes = (Vec<u8>, Vec<(u64, i64)>);

/// One tenant's part of a batch.
#[derive(Debug, Clone)]
pub(crate) struct TenantGroup {
    pub(crate) tenant: String,
    /// `str(tenant)`, the event-time table's key prefix.
    pub(crate) key: Vec<u8>,
    pub(crate) receipts: u64,
    pub(crate) event_times: Vec<(u64, i64)>,
}

/// Most terms a shape covers: tenant, model name, model version, kind, decision, app.
const SHAPE_TERMS_MAX: usize = 6;

/// Where the receipts of one shape (the same tenant, model, kind, decision and app) go in a
/// batch. Receipts repeat a few shapes heavily, so resolving a shape once per batch (one map
/// lookup of its key per receipt) replaces building and looking up ~14 keys per receipt
/// (callgrind: ~2.8 k instructions per receipt on the indexer thread). Session, subject and
/// labels vary per receipt and still go term by term.
#[derive(Debug, Clone, Copy)]
struct Shape {
    tenant: usize,
    terms: [usize; SHAPE_TERMS_MAX],
    term_count: u8,
    values: [usize; COUNT_DIMENSIONS.len()],
    /// The event hour `counts` were resolved for.
    hour: i64,
    counts: [usize; COUNT_DIMENSIONS.len()],
}

/// The dimensions every receipt is counted under, in this order in [`Shape`].
const COUNT_DIMENSIONS: [Dimension; 4] = [
    Dimension::Tenant,
    Dimension::Model,
    Dimension::Kind,
    Dimension::Decision,
];

impl IndexBatch {
    /// An empty batch starting at `start` (which must equal the index watermark at commit).
    #[must_use]
    pub fn new(start: u64) -> IndexBatch {
        IndexBatch {
            start,
            end: start,
            receipts: 0,
            last_logged_at: None,
            posting_ids: BatchMap::default(),
            postings: Vec::new(),
            event_ids: Vec::new(),
            logged_at: Vec::new(),
            tenant_ids: BatchMap::default(),
            tenants: Vec::new(),
            count_ids: BatchMap::default(),
            counts: Vec::new(),
            value_ids: BatchMap::default(),
            values: Vec::new(),
            shapes: BatchMap::default(),
            scratch: Vec::with_capacity(128),
            shape_key: Vec::with_capacity(128),
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
        self.check_order(record)?;
        self.shape_key.clear();
        put_shape_key(&mut self.shape_key, record);
        let known = self.shapes.get(self.shape_key.as_slice());
        if known.is_some() {
            // A known shape's fields are byte for byte those of a record that passed every
            // check below.
            check_varying_terms(record)?;
        } else {
            check_fields(record)?;
        }
        let seq = record.seq;
        let hour = record.event_time_ns.div_euclid(HOUR_NS);
        let shape = match known {
            Some(shape) if shape.hour == hour => *shape,
            Some(shape) => {
                let mut shape = *shape;
                shape.counts = self.count_slots(record, hour);
                shape.hour = hour;
                if let Some(stored) = self.shapes.get_mut(self.shape_key.as_slice()) {
                    *stored = shape;
                }
                shape
            }
            None => {
                let shape = self.new_shape(record, hour);
                self.shapes.insert(self.shape_key.clone(), shape);
                shape
            }
        };
        for &id in &shape.terms[..usize::from(shape.term_count)] {
            self.postings[id].1.push(seq);
        }
        for_each_varying_term(record, |term| {
            let id = self.posting_slot(&term);
            self.postings[id].1.push(seq);
        });
        let group = &mut self.tenants[shape.tenant];
        group.receipts += 1;
        group.event_times.push((seq, record.event_time_ns));
        for &id in &shape.values {
            self.values[id].1 += 1;
        }
        for &id in &shape.counts {
            self.counts[id].1 += 1;
        }
        self.event_ids
            .push(event_id_key(record.tenant, record.event_id, seq));
        self.logged_at.push((seq, record.logged_at_ns));
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

    /// The order checks of [`push`](Self::push): seq and `logged_at`.
    fn check_order(&self, r: &IndexRecord<'_>) -> Result<(), IndexError> {
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
        Ok(())
    }

    /// Resolves a shape the batch has not met: its terms, its tenant, its values and its
    /// counts for `hour`.
    fn new_shape(&mut self, r: &IndexRecord<'_>, hour: i64) -> Shape {
        let mut terms = [0usize; SHAPE_TERMS_MAX];
        let mut term_count = 0u8;
        for_each_shape_term(r, |term| {
            let id = self.posting_slot(&term);
            if let Some(slot) = terms.get_mut(usize::from(term_count)) {
                *slot = id;
                term_count += 1;
            }
        });
        let mut values = [0usize; COUNT_DIMENSIONS.len()];
        for (slot, dim) in values.iter_mut().zip(COUNT_DIMENSIONS) {
            self.scratch.clear();
            put_str(&mut self.scratch, r.tenant);
            self.scratch.push(dim_code(dim));
            put_count_value(&mut self.scratch, r, dim);
            *slot = slot_of(&mut self.value_ids, &mut self.values, &self.scratch);
        }
        Shape {
            tenant: self.tenant_slot(r.tenant),
            terms,
            term_count,
            values,
            hour,
            counts: self.count_slots(r, hour),
        }
    }

    /// The places in `counts` of the record's four count keys for `hour`.
    fn count_slots(&mut self, r: &IndexRecord<'_>, hour: i64) -> [usize; COUNT_DIMENSIONS.len()] {
        let hour = i64_key(hour);
        let mut slots = [0usize; COUNT_DIMENSIONS.len()];
        for (slot, dim) in slots.iter_mut().zip(COUNT_DIMENSIONS) {
            self.scratch.clear();
            put_str(&mut self.scratch, r.tenant);
            self.scratch.push(dim_code(dim));
            self.scratch.extend_from_slice(&hour);
            put_count_value(&mut self.scratch, r, dim);
            *slot = slot_of(&mut self.count_ids, &mut self.counts, &self.scratch);
        }
        slots
    }

    /// The place of `term`'s posting list, made empty when new.
    fn posting_slot(&mut self, term: &Term<'_>) -> usize {
        self.scratch.clear();
        put_term(&mut self.scratch, term);
        slot_of(&mut self.posting_ids, &mut self.postings, &self.scratch)
    }

    /// The place of `tenant`'s group, made empty when new.
    fn tenant_slot(&mut self, tenant: &str) -> usize {
        self.scratch.clear();
        put_str(&mut self.scratch, tenant);
        if let Some(&id) = self.tenant_ids.get(self.scratch.as_slice()) {
            return id;
        }
        let id = self.tenants.len();
        self.tenants.push(TenantGroup {
            tenant: tenant.to_owned(),
            key: self.scratch.clone(),
            receipts: 0,
            event_times: Vec::new(),
        });
        self.tenant_ids.insert(self.scratch.clone(), id);
        id
    }
}

/// The place of `key` in `list` (through `ids`), appending `(key, default)` when new.
fn slot_of<V: Default>(
    ids: &mut BatchMap<Vec<u8>, usize>,
    list: &mut Vec<(Vec<u8>, V)>,
    key: &[u8],
) -> usize {
    if let Some(&id) = ids.get(key) {
        return id;
    }
    let id = list.len();
    list.push((key.to_vec(), V::default()));
    ids.insert(key.to_vec(), id);
    id
}

/// The field checks of [`IndexBatch::push`]: every term and the count values fit
/// [`MAX_FIELD_BYTES`].
fn check_fields(r: &IndexRecord<'_>) -> Result<(), IndexError> {
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

/// [`check_fields`] for the terms outside the record's shape, in the same order.
fn check_varying_terms(r: &IndexRecord<'_>) -> Result<(), IndexError> {
    let mut result = Ok(());
    for_each_varying_term(r, |term| {
        if result.is_ok() {
            result = check_term(&term, Some(r.seq));
        }
    });
    result
}

/// The shape key of a record: tenant, kind, app, model name, model version and decision,
/// each as a `u32` big-endian length and its bytes (`u32::MAX` and nothing for an absent
/// one). Nothing is cut, so equal keys mean equal fields, hence the same terms, values and
/// (per hour) counts, and the same outcome of every check of those fields.
fn put_shape_key(out: &mut Vec<u8>, r: &IndexRecord<'_>) {
    for field in [
        Some(r.tenant),
        Some(r.kind),
        Some(r.app_id),
        r.model_name,
        r.model_version,
        r.decision,
    ] {
        match field {
            Some(s) => {
                out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
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

/// The terms of a record's [`Shape`]: tenant, model name and version, kind, decision, app
/// (at most [`SHAPE_TERMS_MAX`]).
fn for_each_shape_term<'a>(r: &IndexRecord<'a>, mut f: impl FnMut(Term<'a>)) {
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
    f(Term::App(t, r.app_id));
}

/// The terms of a record that are not part of its shape: session, subject, labels.
fn for_each_varying_term<'a>(r: &IndexRecord<'a>, mut f: impl FnMut(Term<'a>)) {
    let t = r.tenant;
    if let Some(s) = r.session_id {
        f(Term::Session(t, s));
    }
    if let Some(s) = r.subject_id {
        f(Term::Subject(t, s));
    }
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
    // Typical ids fit a stack buffer: one update instead of four (each has a fixed cost next
    // to the one compression), the same bytes hashed.
    let mut input = [0u8; EVENT_ID_INPUT_INLINE_BYTES];
    let len = 16 + tenant.len() + event_id.len();
    if let Some(buf) = input.get_mut(..len) {
        let (tenant_part, event_part) = buf.split_at_mut(8 + tenant.len());
        tenant_part[..8].copy_from_slice(&(tenant.len() as u64).to_le_bytes());
        tenant_part[8..].copy_from_slice(tenant.as_bytes());
        event_part[..8].copy_from_slice(&(event_id.len() as u64).to_le_bytes());
        event_part[8..].copy_from_slice(event_id.as_bytes());
        h.update(buf);
    } else {
        h.update(&(tenant.len() as u64).to_le_bytes());
        h.update(tenant.as_bytes());
        h.update(&(event_id.len() as u64).to_le_bytes());
        h.update(event_id.as_bytes());
    }
    // The first 16 bytes of the extended output are the first 16 of the 32-byte hash.
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// Tenant and event id together up to this size (with their two lengths) are hashed from one
/// stack buffer: one BLAKE3 block holds 64 bytes, and the id rules allow up to 128 per id.
const EVENT_ID_INPUT_INLINE_BYTES: usize = 16 + 128 + 128;

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
        let long_tenant = "t".repeat(128);
        let cases = [
            ("acme", "evt-1".to_owned()),
            ("", String::new()),
            ("t", "e".repeat(300)),
            ("t", "e".repeat(255)),
            ("t", "e".repeat(256)),
            (&long_tenant[..], "e".repeat(128)),
            (&long_tenant[..], "e".repeat(129)),
        ];
        for (tenant, event_id) in &cases {
            let (tenant, event_id) = (*tenant, event_id.as_str());
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
