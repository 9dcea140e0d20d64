//! Shared by the index tests: owned records, a deterministic generator, and an in-memory model
//! that answers every query by brute force.

#![allow(
    dead_code,
    clippy::missing_panics_doc,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use trailmix_index::{
    CountRow, Dimension, Direction, HOUR_NS, Index, IndexBatch, IndexReader, IndexRecord,
    StoreBinding, Term,
};

/// A short span of event times, so that many receipts share a time or lie close together.
const TIME_SPREAD_NS: u64 = 1 << 24;

/// An [`IndexRecord`] that owns its strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub seq: u64,
    pub logged_at_ns: u64,
    pub event_time_ns: i64,
    pub tenant: String,
    pub event_id: String,
    pub app_id: String,
    pub session_id: Option<String>,
    pub parent_id: Option<String>,
    pub subject_id: Option<String>,
    pub kind: String,
    pub actor_type: String,
    pub decision: Option<String>,
    pub model_name: Option<String>,
    pub model_version: Option<String>,
    pub model_provider: Option<String>,
    pub retention_class: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl Rec {
    pub fn view(&self) -> IndexRecord<'_> {
        IndexRecord {
            seq: self.seq,
            logged_at_ns: self.logged_at_ns,
            event_time_ns: self.event_time_ns,
            tenant: &self.tenant,
            event_id: &self.event_id,
            app_id: &self.app_id,
            session_id: self.session_id.as_deref(),
            parent_id: self.parent_id.as_deref(),
            subject_id: self.subject_id.as_deref(),
            kind: &self.kind,
            actor_type: &self.actor_type,
            decision: self.decision.as_deref(),
            model_name: self.model_name.as_deref(),
            model_version: self.model_version.as_deref(),
            model_provider: self.model_provider.as_deref(),
            retention_class: self.retention_class.as_deref(),
            labels: &self.labels,
        }
    }

    /// The terms this record is indexed under, written out independently of the crate.
    pub fn terms(&self) -> Vec<Term<'_>> {
        let t = self.tenant.as_str();
        let mut v = vec![
            Term::Tenant(t),
            Term::Kind(t, &self.kind),
            Term::App(t, &self.app_id),
        ];
        if let Some(n) = &self.model_name {
            v.push(Term::ModelName(t, n));
            if let Some(ver) = &self.model_version {
                v.push(Term::ModelVersion(t, n, ver));
            }
        }
        if let Some(d) = &self.decision {
            v.push(Term::Decision(t, d));
        }
        if let Some(s) = &self.session_id {
            v.push(Term::Session(t, s));
        }
        if let Some(s) = &self.subject_id {
            v.push(Term::Subject(t, s));
        }
        for (k, val) in &self.labels {
            v.push(Term::Label(t, k, val));
        }
        v
    }

    pub fn dim_value(&self, dim: Dimension) -> String {
        match dim {
            Dimension::Tenant => self.tenant.clone(),
            Dimension::Model => match (&self.model_name, &self.model_version) {
                (Some(n), Some(v)) => format!("{n}@{v}"),
                (Some(n), None) => n.clone(),
                _ => String::new(),
            },
            Dimension::Kind => self.kind.clone(),
            Dimension::Decision => self.decision.clone().unwrap_or_default(),
        }
    }
}

/// splitmix64: a generator whose output never changes with a crate version (the fixture
/// depends on it).
#[derive(Debug, Clone)]
pub struct Mix(pub u64);

impl Mix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

pub const T0: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

/// A deterministic list of records: a few tenants, models, sessions and labels, event times
/// out of order (some hours and days away, a few before 1970), `logged_at` non-decreasing,
/// and gaps in seqs (checkpoints) every now and then. Returns the records and the end seq.
pub fn records(seed: u64, n: usize) -> (Vec<Rec>, u64) {
    let mut r = Mix(seed);
    let mut out = Vec::with_capacity(n);
    let (mut seq, mut la) = (0u64, 1_000_000_000u64);
    for i in 0..n {
        seq += if r.below(10) == 0 { 1 + r.below(3) } else { 0 };
        la += r.below(3) * r.below(5000);
        let tenant = r.pick(&["acme", "beta", "gamma-co"]);
        let jitter = match r.below(20) {
            0 => -(r.below(5 * 86_400) as i64) * 1_000_000_000,
            1 => -T0 - (r.below(1000) as i64) * 1_000_000_000,
            2..=5 => (r.below(3 * 3600) as i64) * 1_000_000_000,
            _ => (r.below(TIME_SPREAD_NS * 4)) as i64,
        };
        let model = r.below(5);
        let mut labels = BTreeMap::new();
        if r.below(2) == 0 {
            labels.insert("env".to_owned(), r.pick(&["prod", "dev"]).to_owned());
        }
        if r.below(3) == 0 {
            labels.insert("team".to_owned(), r.pick(&["a", "b", ""]).to_owned());
        }
        out.push(Rec {
            seq,
            logged_at_ns: la,
            event_time_ns: T0 + jitter,
            tenant: tenant.to_owned(),
            event_id: format!("evt-{i}"),
            app_id: r.pick(&["chat", "triage"]).to_owned(),
            session_id: (r.below(4) != 0).then(|| format!("s{}", r.below(12))),
            parent_id: None,
            subject_id: (r.below(3) == 0).then(|| format!("subj-{}", r.below(4))),
            kind: r
                .pick(&["llm_call", "tool_call", "policy_decision", "triage"])
                .to_owned(),
            actor_type: "agent".to_owned(),
            decision: (r.below(3) == 0).then(|| r.pick(&["allow", "deny", "escalate"]).to_owned()),
            model_name: (model < 4).then(|| ["gpt", "claude"][(model % 2) as usize].to_owned()),
            model_version: (model < 2).then(|| ["4o", "3.5"][model as usize].to_owned()),
            model_provider: None,
            retention_class: None,
            labels,
        });
        seq += 1;
    }
    let end = seq + r.below(3);
    (out, end)
}

pub fn binding() -> StoreBinding {
    StoreBinding {
        store_id: *b"0123456789abcdef",
        hash_algorithm: "blake3".to_owned(),
    }
}

/// Builds a batch of `recs` starting at `start` and advanced to `end`.
pub fn batch(start: u64, recs: &[Rec], end: u64) -> IndexBatch {
    let mut b = IndexBatch::new(start);
    for r in recs {
        b.push(&r.view()).expect("push");
    }
    b.advance_to(end);
    b
}

/// Commits `recs` (covering `0..end`) in batches of `sizes` (cycled), all durable.
pub fn build(index: &Index, recs: &[Rec], end: u64, sizes: &[usize]) {
    let mut start = 0;
    let mut i = 0;
    for &size in sizes.iter().cycle() {
        if i >= recs.len() {
            break;
        }
        let j = (i + size.max(1)).min(recs.len());
        let stop = if j == recs.len() { end } else { recs[j].seq };
        index
            .commit(
                batch(start, &recs[i..j], stop),
                trailmix_index::CommitMode::Durable,
            )
            .expect("commit");
        start = stop;
        i = j;
    }
    if recs.is_empty() {
        index
            .commit(batch(0, &[], end), trailmix_index::CommitMode::Durable)
            .expect("commit");
    }
}

/// What the index should answer, computed from the committed records.
#[derive(Debug, Default, Clone)]
pub struct Model {
    pub watermark: u64,
    pub recs: Vec<Rec>,
}

impl Model {
    pub fn postings(&self, term: &Term<'_>, seqs: Range<u64>, dir: Direction) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .recs
            .iter()
            .filter(|r| seqs.contains(&r.seq) && r.terms().contains(term))
            .map(|r| r.seq)
            .collect();
        if dir == Direction::Descending {
            v.reverse();
        }
        v
    }

    pub fn count(&self, term: &Term<'_>) -> u64 {
        self.recs
            .iter()
            .filter(|r| r.terms().contains(term))
            .count() as u64
    }

    pub fn event_seqs(&self, tenant: &str, id: &str) -> Vec<u64> {
        self.recs
            .iter()
            .filter(|r| r.tenant == tenant && r.event_id == id)
            .map(|r| r.seq)
            .collect()
    }

    pub fn logged_range(&self, from: u64, to: u64) -> Range<u64> {
        let m: Vec<u64> = self
            .recs
            .iter()
            .filter(|r| (from..to).contains(&r.logged_at_ns))
            .map(|r| r.seq)
            .collect();
        match (m.first(), m.last()) {
            (Some(a), Some(b)) => *a..b + 1,
            _ => 0..0,
        }
    }

    pub fn event_time(&self, tenant: &str, from: i64, to: i64, dir: Direction) -> Vec<(i64, u64)> {
        let mut v: Vec<(i64, u64)> = self
            .recs
            .iter()
            .filter(|r| r.tenant == tenant && (from..to).contains(&r.event_time_ns))
            .map(|r| (r.event_time_ns, r.seq))
            .collect();
        v.sort_unstable();
        if dir == Direction::Descending {
            v.reverse();
        }
        v
    }

    pub fn tenants(&self) -> Vec<(String, u64)> {
        let mut m = BTreeMap::new();
        for r in &self.recs {
            *m.entry(r.tenant.clone()).or_insert(0) += 1;
        }
        m.into_iter().collect()
    }

    pub fn counts(
        &self,
        tenant: Option<&str>,
        dim: Dimension,
        bucket: i64,
        from: i64,
        to: i64,
    ) -> Vec<CountRow> {
        let mut m = BTreeMap::new();
        for r in &self.recs {
            if tenant.is_some_and(|t| t != r.tenant) || !(from..to).contains(&r.event_time_ns) {
                continue;
            }
            let start = r.event_time_ns.div_euclid(bucket) * bucket;
            *m.entry((start, r.tenant.clone(), r.dim_value(dim)))
                .or_insert(0) += 1;
        }
        m.into_iter()
            .map(|((bucket_start_ns, tenant, value), count)| CountRow {
                bucket_start_ns,
                tenant,
                value,
                count,
            })
            .collect()
    }

    pub fn values(&self, tenant: &str, dim: Dimension) -> Vec<(String, u64)> {
        let mut m = BTreeMap::new();
        for r in self.recs.iter().filter(|r| r.tenant == tenant) {
            *m.entry(r.dim_value(dim)).or_insert(0) += 1;
        }
        m.into_iter().collect()
    }

    /// Every distinct term of the records, plus one that is absent.
    pub fn all_terms(&self) -> Vec<Term<'_>> {
        let mut s: BTreeSet<Term<'_>> = self.recs.iter().flat_map(Rec::terms).collect();
        s.insert(Term::Session("acme", "no-such-session"));
        s.into_iter().collect()
    }
}

pub const DIMS: [Dimension; 4] = [
    Dimension::Tenant,
    Dimension::Model,
    Dimension::Kind,
    Dimension::Decision,
];
pub const DIRS: [Direction; 2] = [Direction::Ascending, Direction::Descending];

/// Checks every query method of `reader` against `model`, with ranges drawn from `r`.
pub fn check_all(reader: &IndexReader, model: &Model, r: &mut Mix) {
    assert_eq!(reader.watermark(), model.watermark, "watermark");
    let end = model.watermark + 2;
    for term in model.all_terms() {
        assert_eq!(
            reader.posting_count(&term).expect("count"),
            model.count(&term),
            "{term:?}"
        );
        for dir in DIRS {
            let mut ranges = vec![0..u64::MAX, 0..0];
            for _ in 0..2 {
                let a = r.below(end);
                ranges.push(a..a + r.below(end));
            }
            for seqs in ranges {
                let got: Vec<u64> = reader
                    .postings(&term, seqs.clone(), dir)
                    .expect("postings")
                    .map(|s| s.expect("seq"))
                    .collect();
                assert_eq!(
                    got,
                    model.postings(&term, seqs.clone(), dir),
                    "{term:?} {seqs:?} {dir:?}"
                );
            }
        }
    }
    check_times(reader, model, r);
    check_lookups(reader, model, r);
    check_counts(reader, model, r);
}

fn check_times(reader: &IndexReader, model: &Model, r: &mut Mix) {
    for tenant in ["acme", "beta", "gamma-co", "nobody"] {
        for dir in DIRS {
            let mut ranges = vec![(i64::MIN, i64::MAX), (T0, T0), (0, 1)];
            for _ in 0..3 {
                let a = T0 - 86_400_000_000_000 + (r.below(4 * 86_400_000_000_000) as i64);
                let w = match r.below(3) {
                    0 => r.below(TIME_SPREAD_NS * 3) as i64,
                    1 => r.below(4 * HOUR_NS as u64) as i64,
                    _ => i64::MAX / 4,
                };
                ranges.push((a, a.saturating_add(w)));
            }
            for (from, to) in ranges {
                let got: Vec<(i64, u64)> = reader
                    .event_time(tenant, from, to, dir)
                    .expect("event_time")
                    .map(|p| p.expect("pair"))
                    .collect();
                assert_eq!(
                    got,
                    model.event_time(tenant, from, to, dir),
                    "{tenant} [{from}, {to}) {dir:?}"
                );
            }
        }
    }
}

fn check_lookups(reader: &IndexReader, model: &Model, r: &mut Mix) {
    for rec in model.recs.iter().step_by(7) {
        assert_eq!(
            reader.event_seqs(&rec.tenant, &rec.event_id).expect("ids"),
            model.event_seqs(&rec.tenant, &rec.event_id)
        );
    }
    assert_eq!(
        reader.event_seqs("acme", "no-such-event").expect("ids"),
        Vec::<u64>::new()
    );
    let last = model.recs.last().map_or(1, |r| r.logged_at_ns + 2);
    let mut ranges = vec![(0, u64::MAX), (0, 0), (last, u64::MAX)];
    for _ in 0..4 {
        let a = r.below(last);
        ranges.push((a, a + r.below(last / 4 + 1)));
    }
    for rec in model.recs.iter().step_by(11) {
        ranges.push((rec.logged_at_ns, rec.logged_at_ns + 1));
    }
    for (from, to) in ranges {
        assert_eq!(
            reader.seq_range_for_logged_at(from, to).expect("logged"),
            model.logged_range(from, to),
            "[{from}, {to})"
        );
    }
    assert_eq!(reader.tenants().expect("tenants"), model.tenants());
}

fn check_counts(reader: &IndexReader, model: &Model, r: &mut Mix) {
    let h = HOUR_NS;
    for dim in DIMS {
        for tenant in ["acme", "beta", "gamma-co", "nobody"] {
            assert_eq!(
                reader.values(tenant, dim).expect("values"),
                model.values(tenant, dim),
                "{tenant} {dim:?}"
            );
        }
        let day = 24 * h;
        let mut cases = vec![
            (h, (T0 / day - 10) * day, (T0 / day + 10) * day),
            (day, i64::MIN / h * h, i64::MAX / h * h),
        ];
        let a = (T0 / h - 30 + r.below(40) as i64) * h;
        cases.push((h * (1 + r.below(5) as i64), a, a + h * r.below(30) as i64));
        cases.push((h, -3 * h, 2 * h));
        for (bucket, from, to) in cases {
            for tenant in [None, Some("acme"), Some("nobody")] {
                let got = reader
                    .counts(tenant, dim, bucket as u64, from, to)
                    .expect("counts");
                assert_eq!(
                    got,
                    model.counts(tenant, dim, bucket, from, to),
                    "{tenant:?} {dim:?} {bucket} [{from}, {to})"
                );
            }
        }
    }
}
