//! The data and the query set of the query benchmark (`benches/benches/query.rs`, issue 4).
//!
//! [`Dataset::generate`] makes `n` receipt rows from a seed, the same rows on every run and for
//! every store: plain structs ([`Row`]) with no dependency on trailmix-db's types, so that the
//! baselines (redb-direct, `SQLite`) and trailmix-db load identical data.
//!
//! - 6 tenants with skew ([`TENANTS`]: one tenant has 45% of the receipts, the smallest 3%);
//! - 5 models, name + version ([`MODELS`]; `gpt-4o` in two versions, so a query by model name
//!   alone spans two versions);
//! - sessions of 10 to 30 receipts (20 on average), 8 open at a time per tenant, interleaved;
//!   each session uses one model;
//! - kinds `llm_call`, `tool_call`, `policy_decision`, `approval`, `evaluation`
//!   ([`KINDS`]); policy decisions and approvals carry a decision (`allow`, `deny`,
//!   `escalate`), the other kinds none;
//! - event times increasing over [`SPAN_NS`] (30 days from [`START_NS`]) with a jitter of
//!   ± two slots (at least ±0.5 s; [`jitter`]), so neighbours are not always in time order;
//! - an event id unique within its tenant, a session id unique overall;
//! - a [`PAYLOAD_BYTES`]-byte incompressible payload, made on demand from the seq (the rows are
//!   not kept in memory with their payloads: 10 M payloads would be 5 GB).
//!
//! [`QuerySet::build`] draws the queries from the same data: (tenant, time window) pairs with at
//! least [`LIMIT`] matches, (tenant, model, optional version, window) with at least [`LIMIT`]
//! matches, session ids that exist, and event ids of which one in ten is missing (half never
//! issued, half issued to another tenant).
//!
//! Results are in a fixed order, the same for every store (see [`crate::query_rigs::QueryRig`]):
//! time queries by (event time, seq) ascending, sessions by seq ascending.

use std::collections::BTreeMap;

/// Receipts of a full run.
pub const DEFAULT_RECEIPTS: usize = 1_000_000;
/// Receipts of a `--quick` run (or `TRAILMIX_BENCH_QUICK=1`).
pub const QUICK_RECEIPTS: usize = 100_000;
/// Environment variable that sets the number of receipts (e.g. `10000000`; `_` separators are
/// accepted).
pub const RECEIPTS_ENV: &str = "TRAILMIX_QUERY_RECEIPTS";
/// Payload bytes per receipt.
pub const PAYLOAD_BYTES: usize = 512;
/// The seed of the benchmark's data and queries.
pub const SEED: u64 = 0x7472_6169_6c6d_6978; // "trailmix"
/// Result limit of the time-range queries.
pub const LIMIT: usize = 100;
/// First event time: 2026-10-01T00:00:00Z, in nanoseconds since the Unix epoch.
pub const START_NS: i64 = 1_790_812_800 * 1_000_000_000;
/// Event times span 30 days.
pub const SPAN_NS: i64 = 30 * 24 * 3600 * 1_000_000_000;
/// Least event time jitter: each receipt's time is its slot's time ± [`jitter`].
pub const JITTER_NS: i64 = 500_000_000;

/// The jitter of `n` receipts: ± [`JITTER_NS`] or ± two slots, whichever is more, so that
/// some neighbours are out of time order at any size.
#[must_use]
pub fn jitter(n: usize) -> i64 {
    JITTER_NS.max(2 * (SPAN_NS / i64::try_from(n.max(1)).unwrap_or(i64::MAX)))
}

/// Tenants and their share of the receipts (weights out of 100).
pub const TENANTS: [(&str, u64); 6] = [
    ("acme-bank", 45),
    ("globex-insurance", 20),
    ("initech-health", 14),
    ("umbrella-pharma", 10),
    ("hooli-retail", 8),
    ("stark-gov", 3),
];

/// Models (name, version) and their share of the sessions (weights out of 100).
pub const MODELS: [(&str, &str, u64); 5] = [
    ("gpt-4o", "2024-08-06", 30),
    ("gpt-4o", "2024-05-13", 10),
    ("claude-sonnet-4", "20250514", 28),
    ("llama-3.1-70b-instruct", "v1", 20),
    ("mistral-large", "2411", 12),
];

/// Receipt kinds and their share (weights out of 100).
pub const KINDS: [(&str, u64); 5] = [
    ("llm_call", 45),
    ("tool_call", 30),
    ("policy_decision", 12),
    ("approval", 5),
    ("evaluation", 8),
];

/// Decisions (index 1..=3 in [`Header::decision`]; 0 is none).
pub const DECISIONS: [&str; 3] = ["allow", "deny", "escalate"];

/// Sessions open at a time per tenant.
const OPEN_SESSIONS: usize = 8;
const SESSION_SALT: u64 = 0x5e55_1010_5e55_1010;
const EVENT_SALT: u64 = 0x0e0e_17d0_0e0e_17d0;

/// The size of a run: `$TRAILMIX_QUERY_RECEIPTS` when set, else [`QUICK_RECEIPTS`] when
/// `quick`, else [`DEFAULT_RECEIPTS`].
///
/// # Errors
/// A message when the variable is set but is not a positive number.
pub fn receipts_from_env(quick: bool) -> Result<usize, String> {
    match std::env::var(RECEIPTS_ENV) {
        Ok(text) => text
            .replace('_', "")
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{RECEIPTS_ENV}={text} is not a positive number")),
        Err(_) => Ok(if quick {
            QUICK_RECEIPTS
        } else {
            DEFAULT_RECEIPTS
        }),
    }
}

/// The `SplitMix64` finaliser: a bijection on `u64`, so distinct inputs give distinct ids.
#[must_use]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small seeded generator (`SplitMix64`).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// A number in `0..n` (`n` > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// An index in `0..n`.
    pub fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }
    /// An index into `weights`, drawn in proportion to them.
    pub fn weighted(&mut self, weights: impl Iterator<Item = u64> + Clone) -> usize {
        let total: u64 = weights.clone().sum();
        let mut pick = self.below(total);
        for (i, w) in weights.enumerate() {
            if pick < w {
                return i;
            }
            pick -= w;
        }
        0
    }
}

/// The compact form of a row kept in memory: indexes into the tables above and the keys that
/// the ids are formatted from (32 bytes a row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Event time, nanoseconds since the Unix epoch.
    pub event_time_ns: i64,
    /// Session key ([`session_id`] formats it).
    pub session: u64,
    /// Event key ([`event_id`] formats it).
    pub event: u64,
    /// Index into [`TENANTS`].
    pub tenant: u8,
    /// Index into [`MODELS`].
    pub model: u8,
    /// Index into [`KINDS`].
    pub kind: u8,
    /// 0: no decision; else 1 + index into [`DECISIONS`].
    pub decision: u8,
}

/// One receipt as every store receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Position in the data set, from 0; stores use it as their sequence number.
    pub seq: u64,
    /// Tenant id.
    pub tenant: &'static str,
    /// Model name.
    pub model: &'static str,
    /// Model version.
    pub model_version: &'static str,
    /// Session id.
    pub session: String,
    /// Receipt kind.
    pub kind: &'static str,
    /// Policy decision, for policy decisions and approvals.
    pub decision: Option<&'static str>,
    /// Client event time, nanoseconds since the Unix epoch.
    pub event_time_ns: i64,
    /// Event id, unique within the tenant.
    pub event_id: String,
    /// [`PAYLOAD_BYTES`] incompressible bytes.
    pub payload: Vec<u8>,
}

/// Formats a session key as its id.
#[must_use]
pub fn session_id(key: u64) -> String {
    format!("sess-{key:016x}")
}

/// Formats an event key as its id.
#[must_use]
pub fn event_id(key: u64) -> String {
    format!("evt-{key:016x}")
}

/// The event key of the `n`-th receipt of tenant `tenant` (a bijection of `n` for each tenant,
/// so ids never repeat within a tenant, and no tenant's key is another's for n < 2^56).
#[must_use]
pub fn event_key(tenant: usize, n: u64) -> u64 {
    mix(n ^ ((tenant as u64) << 56) ^ EVENT_SALT)
}

/// The rows' headers, from which full rows are made on demand.
#[derive(Debug, Clone)]
pub struct Dataset {
    seed: u64,
    headers: Vec<Header>,
    /// Receipts per tenant (index into [`TENANTS`]).
    per_tenant: [u64; TENANTS.len()],
}

#[derive(Debug, Clone, Copy)]
struct OpenSession {
    key: u64,
    model: u8,
    left: u32,
}

impl Dataset {
    /// Generates `n` rows from `seed`.
    #[must_use]
    pub fn generate(n: usize, seed: u64) -> Dataset {
        let mut rng = Rng::new(seed);
        let mut next_session = 0_u64;
        let mut new_session = |rng: &mut Rng| {
            next_session += 1;
            OpenSession {
                key: mix(next_session ^ SESSION_SALT),
                model: small(rng.weighted(MODELS.iter().map(|m| m.2))),
                left: 10 + u32::try_from(rng.below(21)).unwrap_or(0),
            }
        };
        let mut open: Vec<Vec<OpenSession>> = (0..TENANTS.len())
            .map(|_| (0..OPEN_SESSIONS).map(|_| new_session(&mut rng)).collect())
            .collect();
        let mut per_tenant = [0_u64; TENANTS.len()];
        let step = SPAN_NS / i64::try_from(n.max(1)).unwrap_or(i64::MAX);
        let jitter_ns = jitter(n);
        let jitter_span = u64::try_from(2 * jitter_ns + 1).unwrap_or(1);
        let mut headers = Vec::with_capacity(n);
        for i in 0..n {
            let tenant = rng.weighted(TENANTS.iter().map(|t| t.1));
            let slot = rng.index(OPEN_SESSIONS);
            let session = open[tenant][slot];
            if session.left <= 1 {
                open[tenant][slot] = new_session(&mut rng);
            } else {
                open[tenant][slot].left -= 1;
            }
            let kind = rng.weighted(KINDS.iter().map(|k| k.1));
            let decision = match KINDS[kind].0 {
                "policy_decision" => 1 + rng.weighted([80, 15, 5].into_iter()),
                "approval" => 1 + rng.weighted([90, 10].into_iter()),
                _ => 0,
            };
            let jitter = i64::try_from(rng.below(jitter_span)).unwrap_or(0) - jitter_ns;
            let base = START_NS + step * i64::try_from(i).unwrap_or(i64::MAX);
            headers.push(Header {
                event_time_ns: base + jitter,
                session: session.key,
                event: event_key(tenant, per_tenant[tenant]),
                tenant: small(tenant),
                model: session.model,
                kind: small(kind),
                decision: small(decision),
            });
            per_tenant[tenant] += 1;
        }
        Dataset {
            seed,
            headers,
            per_tenant,
        }
    }

    /// Number of rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether there are no rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// The compact headers, by seq.
    #[must_use]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Receipts of each tenant (index into [`TENANTS`]).
    #[must_use]
    pub fn per_tenant(&self) -> [u64; TENANTS.len()] {
        self.per_tenant
    }

    /// The payload of row `seq`.
    #[must_use]
    pub fn payload(&self, seq: u64) -> Vec<u8> {
        crate::data::bytes(
            PAYLOAD_BYTES,
            self.seed ^ seq.wrapping_mul(0xA076_1D64_78BD_642F),
        )
    }

    /// The full row `seq` (panics when out of range, as slice indexing does).
    #[must_use]
    pub fn row(&self, seq: usize) -> Row {
        let h = self.headers[seq];
        let (model, model_version, _) = MODELS[usize::from(h.model)];
        Row {
            seq: seq as u64,
            tenant: TENANTS[usize::from(h.tenant)].0,
            model,
            model_version,
            session: session_id(h.session),
            kind: KINDS[usize::from(h.kind)].0,
            decision: h.decision.checked_sub(1).map(|d| DECISIONS[usize::from(d)]),
            event_time_ns: h.event_time_ns,
            event_id: event_id(h.event),
            payload: self.payload(seq as u64),
        }
    }

    /// Rows `range` in seq order.
    pub fn rows(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = Row> + '_ {
        range.map(|seq| self.row(seq))
    }

    /// Bytes of one row's fields as a plain encoding would hold them (ids, names, times,
    /// payload), for comparing on-disk sizes with the raw data.
    #[must_use]
    pub fn raw_bytes_per_row(&self) -> f64 {
        let sample = self.len().min(1000);
        if sample == 0 {
            return 0.0;
        }
        let total: usize = self
            .rows(0..sample)
            .map(|r| {
                r.tenant.len()
                    + r.model.len()
                    + r.model_version.len()
                    + r.session.len()
                    + r.kind.len()
                    + r.decision.map_or(0, str::len)
                    + 8
                    + r.event_id.len()
                    + r.payload.len()
            })
            .sum();
        #[allow(clippy::cast_precision_loss, reason = "an average for display")]
        let average = total as f64 / sample as f64;
        average
    }
}

fn small(i: usize) -> u8 {
    u8::try_from(i).unwrap_or(u8::MAX)
}

/// The four jobs of the query benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Job {
    /// Receipts of one tenant in a time window, first [`LIMIT`] by time.
    TenantTime,
    /// Receipts of one tenant and model (optionally one version) in a time window, first
    /// [`LIMIT`] by time.
    ModelTime,
    /// All receipts of one session of one tenant (~20).
    Session,
    /// One receipt by tenant and event id (one lookup in ten misses).
    Event,
}

impl Job {
    /// Every job, in report order.
    pub const ALL: [Job; 4] = [Job::TenantTime, Job::ModelTime, Job::Session, Job::Event];

    /// The criterion group id (`query_<job>`); each rig is a function in it.
    #[must_use]
    pub fn id(self) -> &'static str {
        match self {
            Job::TenantTime => "query_tenant_time_limit100",
            Job::ModelTime => "query_model_time_limit100",
            Job::Session => "query_session_trace",
            Job::Event => "query_event_id",
        }
    }

    /// What the job is, for the report.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Job::TenantTime => "tenant + time range, limit 100",
            Job::ModelTime => "tenant + model + time range, limit 100",
            Job::Session => "session trace (~20 receipts)",
            Job::Event => "event-id lookup (10% missing)",
        }
    }

    /// The job with criterion group id `id`.
    #[must_use]
    pub fn from_id(id: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|j| j.id() == id)
    }
}

/// A tenant + time window query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeQuery {
    /// Tenant id.
    pub tenant: &'static str,
    /// Window start, inclusive (ns).
    pub from_ns: i64,
    /// Window end, exclusive (ns).
    pub to_ns: i64,
}

/// A tenant + model (+ version) + time window query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelQuery {
    /// Tenant id.
    pub tenant: &'static str,
    /// Model name.
    pub model: &'static str,
    /// Model version, or any version of the name.
    pub version: Option<&'static str>,
    /// Window start, inclusive (ns).
    pub from_ns: i64,
    /// Window end, exclusive (ns).
    pub to_ns: i64,
}

/// A session trace query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionQuery {
    /// Tenant id.
    pub tenant: &'static str,
    /// Session id.
    pub session: String,
    /// Receipts the session has.
    pub expected: usize,
}

/// An event id lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Tenant id.
    pub tenant: &'static str,
    /// Event id.
    pub event_id: String,
    /// The seq of the receipt, or `None` for an id the tenant does not have.
    pub expected: Option<u64>,
}

/// The seeded queries of each job.
#[derive(Debug, Clone, Default)]
pub struct QuerySet {
    /// Tenant + time windows, each with at least [`LIMIT`] matches.
    pub tenant_time: Vec<TimeQuery>,
    /// Tenant + model windows, each with at least [`LIMIT`] matches.
    pub model_time: Vec<ModelQuery>,
    /// Existing sessions.
    pub sessions: Vec<SessionQuery>,
    /// Event ids, one in ten missing.
    pub events: Vec<EventQuery>,
}

/// A window over `times` (sorted) holding at least `LIMIT` and up to ~12,800 of them.
fn window(times: &[i64], rng: &mut Rng) -> Option<(i64, i64)> {
    if times.len() <= LIMIT {
        return None;
    }
    let want = (LIMIT << rng.below(8)).min(times.len() - 1);
    let start = rng.index(times.len() - want);
    // [times[start], times[start + want - 1] + 1) holds at least `want` times.
    Some((times[start], times[start + want - 1] + 1))
}

impl QuerySet {
    /// `count` queries of each job drawn from `data` with `seed`. Tenants are drawn uniformly
    /// (small tenants are queried as often as the big one), time windows hold from 100 to
    /// ~12,800 matches.
    ///
    /// # Panics
    /// When no tenant has more than [`LIMIT`] receipts (a data set far too small).
    #[must_use]
    pub fn build(data: &Dataset, count: usize, seed: u64) -> QuerySet {
        let mut rng = Rng::new(seed ^ 0x9E37_79B9);
        let mut by_tenant: Vec<Vec<i64>> = vec![Vec::new(); TENANTS.len()];
        let mut by_model: BTreeMap<(usize, usize), Vec<i64>> = BTreeMap::new();
        let mut by_name: BTreeMap<(usize, &str), Vec<i64>> = BTreeMap::new();
        let mut sessions: BTreeMap<u64, usize> = BTreeMap::new();
        for h in data.headers() {
            let (t, m) = (usize::from(h.tenant), usize::from(h.model));
            by_tenant[t].push(h.event_time_ns);
            by_model.entry((t, m)).or_default().push(h.event_time_ns);
            by_name
                .entry((t, MODELS[m].0))
                .or_default()
                .push(h.event_time_ns);
            *sessions.entry(h.session).or_default() += 1;
        }
        let sort = |v: &mut Vec<i64>| v.sort_unstable();
        by_tenant.iter_mut().for_each(sort);
        by_model.values_mut().for_each(sort);
        by_name.values_mut().for_each(sort);

        let tenants: Vec<usize> = (0..TENANTS.len())
            .filter(|t| by_tenant[*t].len() > LIMIT)
            .collect();
        assert!(!tenants.is_empty(), "query data set too small");
        let mut set = QuerySet::default();
        while set.tenant_time.len() < count {
            let t = tenants[rng.index(tenants.len())];
            if let Some((from_ns, to_ns)) = window(&by_tenant[t], &mut rng) {
                set.tenant_time.push(TimeQuery {
                    tenant: TENANTS[t].0,
                    from_ns,
                    to_ns,
                });
            }
        }
        let models: Vec<(usize, usize)> = by_model
            .iter()
            .filter(|(_, v)| v.len() > LIMIT)
            .map(|(k, _)| *k)
            .collect();
        while set.model_time.len() < count && !models.is_empty() {
            let (t, m) = models[rng.index(models.len())];
            let (name, version, _) = MODELS[m];
            // One query in three by model name alone (any version).
            let any_version = rng.below(3) == 0;
            let times = if any_version {
                &by_name[&(t, name)]
            } else {
                &by_model[&(t, m)]
            };
            if let Some((from_ns, to_ns)) = window(times, &mut rng) {
                set.model_time.push(ModelQuery {
                    tenant: TENANTS[t].0,
                    model: name,
                    version: (!any_version).then_some(version),
                    from_ns,
                    to_ns,
                });
            }
        }
        let per_tenant = data.per_tenant();
        for _ in 0..count.min(data.len()) {
            let seq = rng.index(data.len());
            let h = data.headers()[seq];
            let t = usize::from(h.tenant);
            set.sessions.push(SessionQuery {
                tenant: TENANTS[t].0,
                session: session_id(h.session),
                expected: sessions[&h.session],
            });
            let (tenant, id, expected) = match rng.below(20) {
                // Never issued to this tenant.
                0 => (t, event_key(t, per_tenant[t] + rng.below(1 << 40)), None),
                // Issued to another tenant.
                1 => (
                    (t + 1 + rng.index(TENANTS.len() - 1)) % TENANTS.len(),
                    h.event,
                    None,
                ),
                _ => (t, h.event, Some(seq as u64)),
            };
            set.events.push(EventQuery {
                tenant: TENANTS[tenant].0,
                event_id: event_id(id),
                expected,
            });
        }
        set
    }

    /// Number of queries of `job`.
    #[must_use]
    pub fn len(&self, job: Job) -> usize {
        match job {
            Job::TenantTime => self.tenant_time.len(),
            Job::ModelTime => self.model_time.len(),
            Job::Session => self.sessions.len(),
            Job::Event => self.events.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_reproducible_and_shaped_as_documented() {
        let a = Dataset::generate(20_000, SEED);
        let b = Dataset::generate(20_000, SEED);
        assert_eq!(a.headers(), b.headers());
        assert_eq!(a.row(123), b.row(123));
        assert_ne!(a.row(1).payload, a.row(2).payload);
        assert_eq!(a.row(5).payload.len(), PAYLOAD_BYTES);
        let per = a.per_tenant();
        assert_eq!(per.iter().sum::<u64>(), 20_000);
        assert!(per[0] > 8_000 && per[5] < 1_000, "{per:?}");
        // Event ids are unique within a tenant.
        let mut ids = std::collections::BTreeSet::new();
        assert!(a.headers().iter().all(|h| ids.insert((h.tenant, h.event))));
        // ~20 receipts per session.
        let sessions: std::collections::BTreeSet<u64> =
            a.headers().iter().map(|h| h.session).collect();
        let per_session = 20_000 / sessions.len();
        assert!((15..=25).contains(&per_session), "{per_session}");
        // Times increase, with jitter.
        let h = a.headers();
        assert!(
            h[19_999].event_time_ns - h[0].event_time_ns
                > SPAN_NS - SPAN_NS / 20_000 - 2 * jitter(20_000)
        );
        assert!(
            h.windows(2)
                .any(|w| w[1].event_time_ns < w[0].event_time_ns)
        );
    }

    #[test]
    fn queries_match_the_data() {
        let data = Dataset::generate(30_000, SEED);
        let set = QuerySet::build(&data, 200, SEED);
        assert_eq!(set.len(Job::TenantTime), 200);
        assert_eq!(set.len(Job::ModelTime), 200);
        // Header fields, as the rows show them (without making payloads).
        let fields: Vec<(&str, &str, &str, i64)> = data
            .headers()
            .iter()
            .map(|h| {
                let (model, version, _) = MODELS[usize::from(h.model)];
                (
                    TENANTS[usize::from(h.tenant)].0,
                    model,
                    version,
                    h.event_time_ns,
                )
            })
            .collect();
        for q in &set.tenant_time {
            let n = fields
                .iter()
                .filter(|f| f.0 == q.tenant && (q.from_ns..q.to_ns).contains(&f.3))
                .count();
            assert!(n >= LIMIT, "{q:?}: {n}");
        }
        for q in &set.model_time {
            let n = fields
                .iter()
                .filter(|f| f.0 == q.tenant && f.1 == q.model)
                .filter(|f| q.version.is_none_or(|v| v == f.2))
                .filter(|f| (q.from_ns..q.to_ns).contains(&f.3))
                .count();
            assert!(n >= LIMIT, "{q:?}: {n}");
        }
        assert!(set.model_time.iter().any(|q| q.version.is_none()));
        let missing = set.events.iter().filter(|q| q.expected.is_none()).count();
        assert!((5..=40).contains(&missing), "{missing}");
        for q in &set.events {
            let found = data
                .headers()
                .iter()
                .position(|h| {
                    TENANTS[usize::from(h.tenant)].0 == q.tenant && event_id(h.event) == q.event_id
                })
                .map(|seq| seq as u64);
            assert_eq!(found, q.expected);
        }
        for q in set.sessions.iter().take(50) {
            let n = data
                .headers()
                .iter()
                .filter(|h| {
                    TENANTS[usize::from(h.tenant)].0 == q.tenant
                        && session_id(h.session) == q.session
                })
                .count();
            assert_eq!(n, q.expected);
        }
    }
}
