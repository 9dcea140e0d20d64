//! Body of the `filter_parse` fuzz target, shared by cargo-fuzz (`fuzz/`) and the seeded loop
//! that runs under `cargo test` (`query/tests/fuzz_smoke.rs`). It must return normally on any
//! input: a panic is a bug, either in the parser or in the invariant it checks.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use trailmix_index::Direction;

use crate::cursor::Cursor;
use crate::filter::{Filter, Order, Query};
use crate::model::{ModelRecord, ModelSource, execute};

/// Fuzz body: reads `data` (lossily, as UTF-8) as filter text, query text and cursor text,
/// and the raw bytes as the content of a cursor.
///
/// Checks that each is refused with a typed error or accepted with its invariants: a filter
/// or query prints (`Display`) as text that parses back to the same value, a filter is also
/// a query with defaults, a parsed query validates, and running it with cursors over a small
/// in-memory index returns exactly what brute force says; cursor text re-encodes to itself.
///
/// # Panics
/// Only when one of those invariants breaks (a bug).
pub fn filter_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(filter) = Filter::parse(&text) {
        let printed = filter.to_string();
        assert_eq!(
            Filter::parse(&printed).as_ref(),
            Ok(&filter),
            "filter Display {printed:?} does not parse back"
        );
        assert_eq!(
            Query::parse(&text),
            Ok(Query::new(filter)),
            "a filter's text is the query with defaults"
        );
    }
    if let Ok(query) = Query::parse(&text) {
        let printed = query.to_string();
        assert_eq!(
            Query::parse(&printed).as_ref(),
            Ok(&query),
            "query Display {printed:?} does not parse back"
        );
        let valid = query.validate();
        assert!(valid.is_ok(), "a parsed query validates: {valid:?}");
        check_against_brute_force(&query);
    }
    check_cursor_text(&text);
    check_cursor_text(&URL_SAFE_NO_PAD.encode(data));
}

fn check_cursor_text(text: &str) {
    let Ok(cursor) = Cursor::decode(text) else {
        return;
    };
    assert_eq!(cursor.encode(), text, "cursor text re-encodes to itself");
    for order in [
        Order::Seq(Direction::Ascending),
        Order::EventTime(Direction::Descending),
    ] {
        // A cursor made for nothing in particular belongs to no query: a typed error.
        let _ = cursor.check(&Filter::default(), order);
    }
}

/// Ten-odd records with every field in use, extreme times included, so that fuzzed filters
/// select something.
fn model_source() -> ModelSource {
    const TIMES: [i64; 8] = [
        i64::MIN,
        -5,
        0,
        3,
        5,
        5,
        1_767_225_600_000_000_000,
        i64::MAX,
    ];
    let mut source = ModelSource::new();
    for i in 0..14_u64 {
        let n = usize::try_from(i).unwrap_or(0);
        let mut labels = BTreeMap::new();
        if i % 3 != 2 {
            labels.insert("env".to_owned(), ["prod", "dev"][n % 2].to_owned());
        }
        if i % 4 == 1 {
            labels.insert("k".to_owned(), String::new());
        }
        let record = ModelRecord {
            seq: 2 * i + (i % 3),
            logged_at_ns: if i == 13 { u64::MAX } else { i * 7 },
            event_time_ns: TIMES[(n * 5) % TIMES.len()],
            tenant: ["a", "b", "c d"][n % 3].to_owned(),
            event_id: format!("e{}", i % 5),
            app_id: ["x", "y"][n % 2].to_owned(),
            session_id: (i % 4 != 3).then(|| format!("s{}", i % 3)),
            subject_id: (i % 5 == 0).then(|| "u".to_owned()),
            kind: ["llm_call", "tool_call", "approval"][n % 3].to_owned(),
            decision: (i % 2 == 0).then(|| ["allow", "deny"][(n / 2) % 2].to_owned()),
            model_name: (i % 6 != 5).then(|| ["m", "gpt"][n % 2].to_owned()),
            model_version: (i % 3 == 0).then(|| "1".to_owned()),
            labels,
            ..ModelRecord::default()
        };
        // Seqs and logged-at times increase by construction.
        let _ = source.push(record);
    }
    source
}

/// Pages through `query` over [`model_source`] and compares with a brute-force filter and sort.
fn check_against_brute_force(query: &Query) {
    let source = model_source();
    let mut hits: Vec<(i64, u64)> = source
        .records()
        .iter()
        .filter(|r| query.filter.matches(&r.as_index_record()))
        .map(|r| (r.event_time_ns, r.seq))
        .filter(|&(t, seq)| after_cursor(query, t, seq))
        .collect();
    if query.order.is_time() {
        hits.sort_unstable();
    } else {
        hits.sort_unstable_by_key(|&(_, seq)| seq);
    }
    if query.order.direction() == Direction::Descending {
        hits.reverse();
    }
    let want: Vec<u64> = hits.into_iter().map(|(_, seq)| seq).collect();
    let mut got = Vec::new();
    let mut page_query = query.clone();
    for _ in 0..=source.records().len() {
        let page = execute(&source, &page_query);
        assert!(page.is_ok(), "a valid query runs: {page:?}");
        let Ok(page) = page else { return };
        let full = page.seqs.len() >= page_query.limit as usize;
        got.extend(page.seqs);
        match page.next {
            Some(next) if full => page_query.cursor = Some(next),
            _ => break,
        }
    }
    assert_eq!(got, want, "query {query} over the model");
}

/// Whether a record at `(event_time, seq)` comes strictly after the query's cursor.
fn after_cursor(query: &Query, event_time: i64, seq: u64) -> bool {
    let Some(cursor) = &query.cursor else {
        return true;
    };
    let (at, here) = match query.order {
        Order::Seq(_) => ((0, cursor.seq()), (0, seq)),
        Order::EventTime(_) => (
            (cursor.event_time_ns().unwrap_or(0), cursor.seq()),
            (event_time, seq),
        ),
    };
    match query.order.direction() {
        Direction::Ascending => here > at,
        Direction::Descending => here < at,
    }
}
