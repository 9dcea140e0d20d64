//! Guards plan execution against brute force: paging with cursors through random records
//! and random queries yields exactly the filtered, sorted records, also while records are
//! appended between pages.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_query::model::{ModelRecord, ModelSource, Page, execute};
use trailmix_query::{Direction, Filter, ModelFilter, Order, Query};

const TENANTS: [&str; 3] = ["acme", "beta", "gamma"];
const MODELS: [&str; 3] = ["gpt-4o", "claude", "llama"];
const VERSIONS: [&str; 2] = ["v1", "v2"];
const KINDS: [&str; 3] = ["llm_call", "tool_call", "approval"];
const DECISIONS: [&str; 2] = ["allow", "deny"];

fn pick<'a>(rng: &mut SmallRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

fn maybe(rng: &mut SmallRng, p: f64, from: &[&str]) -> Option<String> {
    rng.random_bool(p).then(|| pick(rng, from).to_owned())
}

/// Appends a random record after the source's last one.
fn append(rng: &mut SmallRng, source: &mut ModelSource) {
    let last = source.records().last();
    let seq = last.map_or(0, |r| r.seq + 1 + rng.random_range(0..3));
    let logged = last.map_or(1_000, |r| r.logged_at_ns + rng.random_range(0..3));
    let mut labels = BTreeMap::new();
    if rng.random_bool(0.6) {
        labels.insert("env".to_owned(), pick(rng, &["prod", "dev"]).to_owned());
    }
    if rng.random_bool(0.4) {
        labels.insert("team".to_owned(), pick(rng, &["x", "y"]).to_owned());
    }
    let model_name = maybe(rng, 0.8, &MODELS);
    let record = ModelRecord {
        seq,
        logged_at_ns: logged,
        // Few distinct times, so ties (broken by seq) are common; some before the epoch.
        event_time_ns: rng.random_range(-5..40) * 1_000,
        tenant: pick(rng, &TENANTS).to_owned(),
        event_id: format!("e{}", rng.random_range(0..60)),
        app_id: pick(rng, &["a1", "a2"]).to_owned(),
        session_id: maybe(rng, 0.7, &["s1", "s2", "s3"]),
        subject_id: maybe(rng, 0.3, &["u1", "u2"]),
        kind: pick(rng, &KINDS).to_owned(),
        decision: maybe(rng, 0.5, &DECISIONS),
        model_version: model_name.as_ref().and_then(|_| maybe(rng, 0.5, &VERSIONS)),
        model_name,
        labels,
        ..ModelRecord::default()
    };
    source
        .push(record)
        .expect("seqs and logged-at times increase");
}

fn random_time(rng: &mut SmallRng) -> Option<i64> {
    rng.random_bool(0.25)
        .then(|| rng.random_range(-6..42) * 1_000)
}

fn random_filter(rng: &mut SmallRng, logged_max: u64) -> Filter {
    let mut f = Filter {
        tenant: maybe(rng, 0.6, &TENANTS),
        model: rng.random_bool(0.25).then(|| ModelFilter {
            name: pick(rng, &MODELS).to_owned(),
            version: maybe(rng, 0.4, &VERSIONS),
        }),
        kind: maybe(rng, 0.3, &KINDS),
        decision: maybe(rng, 0.2, &DECISIONS),
        session: maybe(rng, 0.15, &["s1", "s2", "s9"]),
        event_id: rng
            .random_bool(0.1)
            .then(|| format!("e{}", rng.random_range(0..60))),
        app: maybe(rng, 0.15, &["a1", "a2"]),
        subject: maybe(rng, 0.1, &["u1", "u2"]),
        since: random_time(rng),
        until: random_time(rng),
        ..Filter::default()
    };
    if rng.random_bool(0.2) {
        f.labels
            .insert("env".into(), pick(rng, &["prod", "dev"]).into());
    }
    if rng.random_bool(0.1) {
        f.labels
            .insert("team".into(), pick(rng, &["x", "y", "z"]).into());
    }
    let logged = |rng: &mut SmallRng| {
        let top = i64::try_from(logged_max).expect("small") + 3;
        rng.random_bool(0.2).then(|| rng.random_range(990..top))
    };
    f.logged_since = logged(rng);
    f.logged_until = logged(rng);
    f
}

fn random_order(rng: &mut SmallRng) -> Order {
    let dir = if rng.random_bool(0.5) {
        Direction::Ascending
    } else {
        Direction::Descending
    };
    if rng.random_bool(0.5) {
        Order::Seq(dir)
    } else {
        Order::EventTime(dir)
    }
}

/// The sort key of a record in `order`, ascending.
fn key(order: Order, r: &ModelRecord) -> (i64, u64) {
    match order {
        Order::Seq(_) => (0, r.seq),
        Order::EventTime(_) => (r.event_time_ns, r.seq),
    }
}

/// Brute force: every matching record, sorted in the query's order.
fn brute_force(source: &ModelSource, query: &Query) -> Vec<ModelRecord> {
    let mut all: Vec<ModelRecord> = source
        .records()
        .iter()
        .filter(|r| query.filter.matches(&r.as_index_record()))
        .cloned()
        .collect();
    all.sort_by_key(|r| key(query.order, r));
    if query.order.direction() == Direction::Descending {
        all.reverse();
    }
    all
}

/// Brute force for one page: the first `limit` matches strictly after `after`.
fn expected_page(source: &ModelSource, query: &Query, after: Option<&ModelRecord>) -> Vec<u64> {
    let desc = query.order.direction() == Direction::Descending;
    brute_force(source, query)
        .into_iter()
        .filter(|r| {
            after.is_none_or(|a| {
                let (k, ka) = (key(query.order, r), key(query.order, a));
                if desc { k < ka } else { k > ka }
            })
        })
        .take(query.limit as usize)
        .map(|r| r.seq)
        .collect()
}

fn source_with(rng: &mut SmallRng, n: usize) -> ModelSource {
    let mut source = ModelSource::new();
    for _ in 0..n {
        append(rng, &mut source);
    }
    source
}

fn random_query(rng: &mut SmallRng, source: &ModelSource) -> Query {
    let logged_max = source.records().last().map_or(1_000, |r| r.logged_at_ns);
    Query {
        filter: random_filter(rng, logged_max),
        order: random_order(rng),
        limit: rng.random_range(1..8),
        cursor: None,
    }
}

fn run_page(source: &ModelSource, query: &Query) -> Page {
    execute(source, query).unwrap_or_else(|e| panic!("query {query} failed: {e}"))
}

/// The `default` seeds, or with `TRAILMIX_SEED=S` (the soak runner's variable) as many from S
/// on (wrapping).
fn seeds(default: std::ops::Range<u64>) -> impl Iterator<Item = u64> {
    let base = std::env::var("TRAILMIX_SEED").map(|v| {
        v.parse::<u64>()
            .unwrap_or_else(|_| panic!("TRAILMIX_SEED={v} is not a u64"))
    });
    default.enumerate().map(move |(i, seed)| match base {
        Ok(base) => base.wrapping_add(i as u64),
        Err(_) => seed,
    })
}

/// While alive, a panic (a failed check) also prints the seed and the command that reruns it.
struct SeedGuard(u64, &'static str);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "seed {0} failed\nrerun: TRAILMIX_SEED={0} cargo test -p trailmix-query --test \
                 model_paging -- --exact {1}",
                self.0, self.1
            );
        }
    }
}

#[test]
fn paging_a_static_store_returns_exactly_the_brute_force_answer() {
    for seed in seeds(0..40) {
        let _guard = SeedGuard(
            seed,
            "paging_a_static_store_returns_exactly_the_brute_force_answer",
        );
        let mut rng = SmallRng::seed_from_u64(seed);
        let source = source_with(&mut rng, 150);
        for _ in 0..25 {
            let mut query = random_query(&mut rng, &source);
            let expected: Vec<u64> = brute_force(&source, &query).iter().map(|r| r.seq).collect();
            let mut got: Vec<u64> = Vec::new();
            for _ in 0..=expected.len() {
                let page = run_page(&source, &query);
                assert!(page.seqs.len() <= query.limit as usize);
                got.extend(&page.seqs);
                if page.seqs.len() < query.limit as usize {
                    break;
                }
                query.cursor = page.next;
            }
            assert_eq!(got, expected, "seed {seed}, query {query}");
        }
    }
}

#[test]
fn each_page_is_the_next_slice_while_records_are_appended() {
    for seed in seeds(100..130) {
        let _guard = SeedGuard(
            seed,
            "each_page_is_the_next_slice_while_records_are_appended",
        );
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut source = source_with(&mut rng, 80);
        for _ in 0..15 {
            let mut query = random_query(&mut rng, &source);
            let mut last: Option<ModelRecord> = None;
            for _ in 0..60 {
                let page = run_page(&source, &query);
                let want = expected_page(&source, &query, last.as_ref());
                assert_eq!(page.seqs, want, "seed {seed}, query {query}");
                if let Some(&seq) = page.seqs.last() {
                    last = source.get(seq).cloned();
                    query.cursor = page.next;
                }
                for _ in 0..rng.random_range(0..4) {
                    append(&mut rng, &mut source);
                }
                if page.seqs.is_empty() && rng.random_bool(0.3) {
                    break;
                }
            }
        }
    }
}

#[test]
fn ascending_seq_pages_pick_up_appended_matches_after_the_cursor() {
    let seed = seeds(7..8).next().expect("one seed");
    let _guard = SeedGuard(
        seed,
        "ascending_seq_pages_pick_up_appended_matches_after_the_cursor",
    );
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut source = source_with(&mut rng, 60);
    let mut query = Query::parse("tenant=acme limit=4").expect("valid");
    let mut got: Vec<u64> = Vec::new();
    for round in 0..40 {
        let page = run_page(&source, &query);
        got.extend(&page.seqs);
        if page.next.is_some() {
            query.cursor = page.next;
        }
        if round < 30 {
            for _ in 0..3 {
                append(&mut rng, &mut source);
            }
        }
    }
    let expected: Vec<u64> = brute_force(&source, &query).iter().map(|r| r.seq).collect();
    assert_eq!(got, expected, "every acme record once, in seq order");
}
