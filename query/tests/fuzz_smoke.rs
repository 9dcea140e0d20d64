//! Guards the `filter_parse` fuzz target's body as a seeded, bounded loop so that every
//! `cargo test` runs it: filter, query and cursor text from seeds, mutations and random bytes
//! parse or are refused without panicking, and what parses prints back and runs like brute
//! force.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_query::fuzz::filter_parse;
use trailmix_query::model::{ModelRecord, ModelSource, execute};
use trailmix_query::{Direction, Order, Query};

fn iterations() -> u64 {
    std::env::var("TRAILMIX_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn seed(default: u64) -> u64 {
    std::env::var("TRAILMIX_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A cursor for `query` (after its first result over a one-record source): a valid cursor is
/// the only way into the parser's cursor checks, and a fuzzer cannot forge its fingerprint.
fn cursor_for(query: &str) -> String {
    let mut source = ModelSource::new();
    source
        .push(ModelRecord {
            seq: 4,
            event_time_ns: 5,
            tenant: "a".into(),
            kind: "llm_call".into(),
            ..ModelRecord::default()
        })
        .expect("first record");
    let mut query = Query::parse(query).expect("seed query parses");
    query.limit = 1;
    let page = execute(&source, &query).expect("runs");
    page.next.expect("one result").encode()
}

fn seeds() -> Vec<String> {
    let mut seeds: Vec<String> = [
        "",
        "tenant=a",
        "tenant=acme model=gpt-4o since=2026-01-01T00:00Z decision=deny",
        "tenant=\"c d\" model=m@1 kind=llm_call session=s1 event=e1 app=x subject=u",
        "label.env=prod label.k=\"\" label.note=\"two \\\"words\\\" \\\\\"",
        "since=2026-01-01 until=2026-01-02T00:00:00.5+01:00 logged_since=0 logged_until=5",
        "since=-9223372036854775808 until=9223372036854775807",
        "since=1677-09-21T00:12:43.145224192Z until=2262-04-11t23:47:16.854775807z",
        "order=-time limit=3",
        "order=-seq limit=10000 tenant=b",
        "tennant=a",
        "model=@v",
        "cursor=AQAAAAAAAAAAAAAAAAAAAAA",
    ]
    .map(str::to_owned)
    .to_vec();
    for query in ["tenant=a order=time", "kind=llm_call order=-seq"] {
        seeds.push(format!("{query} cursor={}", cursor_for(query)));
    }
    seeds
}

#[test]
fn seeds_and_mutations_parse_or_are_refused() {
    let seeds = seeds();
    for seed in &seeds {
        filter_parse(seed.as_bytes());
    }
    let alphabet = b"  =\"\\.@-:Z0123456789TtabcdelmnopqrstuvyzAQ_\t\n\xc3\xa9\xff";
    let mut rng = SmallRng::seed_from_u64(seed(0x5eed_0a11));
    for _ in 0..iterations() * 20 {
        let mut data = seeds[rng.random_range(0..seeds.len())].clone().into_bytes();
        for _ in 0..rng.random_range(1..5) {
            let pos = rng.random_range(0..=data.len());
            match rng.random_range(0..4) {
                0 if pos < data.len() => data[pos] = rng.random(),
                1 if pos < data.len() => {
                    data.remove(pos);
                }
                2 => {
                    // Splice in a piece of another seed (a key, a time, a quoted value).
                    let other = seeds[rng.random_range(0..seeds.len())].as_bytes();
                    let from = rng.random_range(0..=other.len());
                    let to = (from + rng.random_range(0..24)).min(other.len());
                    data.splice(pos..pos, other[from..to].iter().copied());
                }
                _ => data.insert(pos, alphabet[rng.random_range(0..alphabet.len())]),
            }
        }
        filter_parse(&data);
    }
}

#[test]
fn random_bytes_parse_or_are_refused() {
    let mut rng = SmallRng::seed_from_u64(seed(0x5eed_0a12));
    for _ in 0..iterations() * 10 {
        let len = rng.random_range(0..64);
        let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        filter_parse(&data);
    }
    // Cursor-shaped bytes: a version byte and a plausible length, so decoding gets past both.
    for len in [17, 25] {
        for _ in 0..iterations() {
            let mut data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            data[0] = 1;
            filter_parse(&data);
        }
    }
}

/// A query text with a cursor printed from its parse must round-trip too (the cursor is kept
/// verbatim and re-checked against the reparsed filter).
#[test]
fn a_query_with_its_own_cursor_round_trips() {
    let text = format!(
        "tenant=a order=time cursor={}",
        cursor_for("tenant=a order=time")
    );
    let query = Query::parse(&text).expect("parses");
    assert_eq!(query.order, Order::EventTime(Direction::Ascending));
    assert_eq!(Query::parse(&query.to_string()), Ok(query));
    filter_parse(text.as_bytes());
}

/// Writes the seed corpus for `fuzz/` when `TRAILMIX_WRITE_FUZZ_CORPUS=1`.
#[test]
fn write_fuzz_corpus_on_request() {
    if std::env::var("TRAILMIX_WRITE_FUZZ_CORPUS").as_deref() != Ok("1") {
        return;
    }
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/filter_parse");
    std::fs::create_dir_all(&corpus).expect("corpus dir");
    for (i, seed) in seeds().iter().enumerate() {
        std::fs::write(corpus.join(format!("seed-{i:02}")), seed).expect("write corpus");
    }
}
