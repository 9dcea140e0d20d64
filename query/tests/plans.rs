//! Guards planning: the completeness each plan claims, what `explain` says, refusals (limit,
//! foreign cursors), and that a damaged index yields a typed error, never a panic, a hang or
//! a non-matching result.

use std::ops::Range;

use trailmix_query::model::{ModelRecord, ModelSource, execute};
use trailmix_query::{
    Completeness, CountRow, Cursor, CursorError, Dimension, Direction, Filter, IndexSource,
    MAX_LIMIT, Query, QueryError, SeqIter, SourceError, TIME_SORT_CAP, Term, TimeIter, plan,
};

/// 60 receipts, seqs 0, 2, 4, ... (odd seqs are checkpoints), alternating tenants.
fn store() -> ModelSource {
    let mut s = ModelSource::new();
    for i in 0..60u64 {
        let record = ModelRecord {
            seq: i * 2,
            logged_at_ns: 1_000 + i,
            event_time_ns: i64::try_from(i % 10).expect("small") * 1_000,
            tenant: ["acme", "beta"][usize::try_from(i % 2).expect("small")].into(),
            event_id: format!("e{i}"),
            kind: ["llm_call", "tool_call", "approval"][usize::try_from(i % 3).expect("small")]
                .into(),
            decision: (i % 4 == 0).then(|| "deny".into()),
            ..ModelRecord::default()
        };
        s.push(record).expect("increasing");
    }
    s.advance_watermark(121);
    s
}

fn planned(text: &str, source: &dyn IndexSource) -> trailmix_query::Plan {
    let q = Query::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    plan(&q, source).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn completeness_follows_the_access_path() {
    let s = store();
    let table = [
        ("", Completeness::SeqRangeProvable),
        (
            "logged_since=1010 logged_until=1020",
            Completeness::SeqRangeProvable,
        ),
        (
            "since=0 until=3000 order=-seq",
            Completeness::SeqRangeProvable,
        ),
        ("tenant=acme", Completeness::TenantChainCheckable),
        (
            "tenant=acme order=-seq logged_since=1010",
            Completeness::TenantChainCheckable,
        ),
        // The range holds every acme receipt: walking postings beats buffering the range.
        ("tenant=acme since=0", Completeness::TenantChainCheckable),
        // A narrow range is walked in event-time order and sorted: index-derived.
        ("tenant=acme since=0 until=1000", Completeness::IndexDerived),
        ("tenant=acme order=time", Completeness::IndexDerived),
        ("tenant=acme kind=llm_call", Completeness::IndexDerived),
        ("kind=llm_call", Completeness::IndexDerived),
        ("event=e3", Completeness::IndexDerived),
        ("order=-time", Completeness::IndexDerived),
        ("tenant=nobody", Completeness::IndexDerived),
    ];
    for (text, want) in table {
        assert_eq!(planned(text, &s).completeness(), want, "{text}");
    }
    let empty = Filter {
        since: Some(5),
        until: Some(5),
        ..Filter::default()
    };
    let p = plan(&Query::new(empty), &s).expect("plans");
    assert_eq!(p.completeness(), Completeness::SeqRangeProvable);
    assert_eq!(p.candidates(&s, None).count(), 0);
}

#[test]
fn explain_names_the_walks_smallest_posting_list_first() {
    let s = store();
    let text = planned("tenant=acme kind=llm_call decision=deny", &s).explain();
    assert!(
        text.contains("access: tenant acme: intersect posting lists (leapfrog, the first drives) kind=llm_call (~10), decision=deny (~15)"),
        "{text}"
    );
    assert!(text.contains("completeness: index-derived"), "{text}");
    let text = planned("kind=approval order=-time", &s).explain();
    assert!(text.contains("merge: 2 tenant walks"), "{text}");
    assert!(
        text.contains("walk the event-time index (descending), probing kind=approval"),
        "{text}"
    );
    let text = planned("logged_since=1010 logged_until=1020", &s).explain();
    assert!(text.contains("seq range: 20..40"), "{text}");
    assert!(
        text.contains("access: every entry of the seq range"),
        "{text}"
    );
}

#[test]
fn a_scan_covers_every_seq_below_the_watermark_and_skips_non_receipts() {
    let s = store();
    let p = planned("order=-seq", &s);
    let seqs: Vec<u64> = p
        .candidates(&s, None)
        .map(|c| c.expect("model").seq)
        .collect();
    assert_eq!(seqs, (0..121).rev().collect::<Vec<_>>());
    let page = execute(&s, &Query::parse("order=-seq limit=3").expect("valid")).expect("runs");
    assert_eq!(page.seqs, [118, 116, 114]);
}

#[test]
fn limits_outside_the_range_are_refused() {
    let s = store();
    for limit in [0, MAX_LIMIT + 1] {
        let q = Query {
            limit,
            ..Query::default()
        };
        match plan(&q, &s) {
            Err(QueryError::LimitOutOfRange { limit: got, max }) => {
                assert_eq!((got, max), (u64::from(limit), MAX_LIMIT));
            }
            other => panic!("limit {limit}: {other:?}"),
        }
    }
    let e = plan(
        &Query {
            limit: 0,
            ..Query::default()
        },
        &s,
    )
    .expect_err("limit 0");
    assert_eq!(
        e.to_string(),
        "limit 0 is out of range; expected 1 to 10000"
    );
}

#[test]
fn cursors_of_another_query_are_refused_by_plan_and_candidates() {
    let s = store();
    let acme = Query::parse("tenant=acme limit=2").expect("valid");
    let page = execute(&s, &acme).expect("runs");
    let cursor = page.next.expect("two results");
    let beta = Query {
        cursor: Some(cursor),
        ..Query::parse("tenant=beta").expect("valid")
    };
    assert!(matches!(
        plan(&beta, &s),
        Err(QueryError::Cursor(CursorError::WrongQuery))
    ));
    let p = planned("tenant=beta", &s);
    let mut it = p.candidates(&s, Some(&cursor));
    assert!(matches!(
        it.next(),
        Some(Err(QueryError::Cursor(CursorError::WrongQuery)))
    ));
    assert!(it.next().is_none());
}

#[test]
fn cursor_text_round_trips_and_bad_text_is_typed() {
    use base64::Engine as _;
    let q = Query::parse("tenant=acme order=time").expect("valid");
    let c = Cursor::after(
        &q,
        &trailmix_query::Candidate {
            seq: 7,
            event_time_ns: Some(-3),
        },
    )
    .expect("time given");
    let text = c.to_string();
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(Cursor::decode(&text), Ok(c));
    assert_eq!((c.seq(), c.event_time_ns()), (7, Some(-3)));
    let missing = Cursor::after(
        &q,
        &trailmix_query::Candidate {
            seq: 7,
            event_time_ns: None,
        },
    );
    assert_eq!(missing, Err(CursorError::MissingEventTime));
    // The same fingerprint with the time cut off: a forged shape.
    let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&text)
        .expect("b64");
    bytes.truncate(17);
    let forged = Cursor::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
        .expect("decodes");
    assert_eq!(
        forged.check(&q.filter, q.order),
        Err(CursorError::Malformed)
    );
    assert_eq!(Cursor::decode(""), Err(CursorError::Malformed));
}

/// How a [`Damaged`] index lies.
#[derive(PartialEq)]
enum Damage {
    /// Postings come in reverse order.
    ShuffledPostings,
    /// Event-time walks come in reverse order.
    ShuffledTimes,
    /// Counts (and so estimates) say nothing is there.
    ZeroCounts,
    /// The event-id table returns extra seqs.
    ExtraEventSeqs,
}

/// A [`ModelSource`] whose index lies in one way.
struct Damaged {
    inner: ModelSource,
    damage: Damage,
}

impl IndexSource for Damaged {
    fn watermark(&self) -> u64 {
        self.inner.watermark()
    }
    fn postings(
        &self,
        term: &Term<'_>,
        seqs: Range<u64>,
        dir: Direction,
    ) -> Result<SeqIter<'_>, SourceError> {
        let walk = self.inner.postings(term, seqs, dir)?;
        if self.damage != Damage::ShuffledPostings {
            return Ok(walk);
        }
        let mut all: Vec<Result<u64, SourceError>> = walk.collect();
        all.reverse();
        Ok(Box::new(all.into_iter()))
    }
    fn posting_count(&self, term: &Term<'_>) -> Result<u64, SourceError> {
        self.inner.posting_count(term)
    }
    fn event_seqs(&self, tenant: &str, event_id: &str) -> Result<Vec<u64>, SourceError> {
        let mut seqs = self.inner.event_seqs(tenant, event_id)?;
        if self.damage == Damage::ExtraEventSeqs {
            seqs.extend([0, 1, 2, 3, u64::MAX]);
        }
        Ok(seqs)
    }
    fn seq_range_for_logged_at(&self, from_ns: u64, to_ns: u64) -> Result<Range<u64>, SourceError> {
        self.inner.seq_range_for_logged_at(from_ns, to_ns)
    }
    fn event_time(
        &self,
        tenant: &str,
        from_ns: i64,
        to_ns: i64,
        dir: Direction,
    ) -> Result<TimeIter<'_>, SourceError> {
        let mut all: Vec<_> = self
            .inner
            .event_time(tenant, from_ns, to_ns, dir)?
            .collect();
        if self.damage == Damage::ShuffledTimes {
            all.reverse();
        }
        Ok(Box::new(all.into_iter()))
    }
    fn tenants(&self) -> Result<Vec<(String, u64)>, SourceError> {
        self.inner.tenants()
    }
    fn counts(
        &self,
        tenant: Option<&str>,
        dim: Dimension,
        bucket_ns: u64,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<CountRow>, SourceError> {
        if self.damage == Damage::ZeroCounts {
            return Ok(Vec::new());
        }
        self.inner.counts(tenant, dim, bucket_ns, from_ns, to_ns)
    }
}

fn first_error(text: &str, source: &dyn IndexSource) -> Option<QueryError> {
    let p = planned(text, source);
    let mut it = p.candidates(source, None);
    let found = it.by_ref().find_map(Result::err);
    assert!(it.next().is_none(), "{text}: nothing after an error");
    found
}

#[test]
fn out_of_order_postings_or_times_are_reported_not_trusted() {
    let d = Damaged {
        inner: store(),
        damage: Damage::ShuffledPostings,
    };
    for text in [
        "tenant=acme kind=llm_call",
        "kind=approval order=-seq",
        "tenant=beta",
    ] {
        let e = first_error(text, &d).unwrap_or_else(|| panic!("{text}: no error"));
        assert!(
            matches!(e, QueryError::IndexInconsistent { .. }),
            "{text}: {e}"
        );
        assert!(e.to_string().contains("rebuild it from the log"), "{e}");
    }
    let d = Damaged {
        inner: store(),
        damage: Damage::ShuffledTimes,
    };
    let e = first_error("tenant=acme order=time", &d).expect("an error");
    assert!(
        e.to_string()
            .contains("event-time walk of tenant acme out of order"),
        "{e}"
    );
}

#[test]
fn false_positive_event_seqs_are_dropped_by_the_filter_check() {
    let d = Damaged {
        inner: store(),
        damage: Damage::ExtraEventSeqs,
    };
    let q = Query::parse("event=e5").expect("valid");
    let p = plan(&q, &d).expect("plans");
    let mut kept = Vec::new();
    for c in p.candidates(&d, None) {
        let seq = c.expect("no error").seq;
        if let Some(r) = d
            .inner
            .get(seq)
            .filter(|r| q.filter.matches(&r.as_index_record()))
        {
            kept.push(r.seq);
        }
    }
    assert_eq!(kept, [10]);
}

#[test]
fn a_wrong_estimate_falls_back_to_postings_beyond_the_sort_cap() {
    let mut source = ModelSource::new();
    // Half the records match, and more than the cap of them lie after the cursor below.
    let n = 2 * TIME_SORT_CAP + 500;
    for seq in 0..n {
        let record = ModelRecord {
            seq,
            logged_at_ns: seq,
            event_time_ns: i64::try_from(n - seq).expect("small"),
            tenant: "acme".into(),
            kind: if seq % 2 == 0 {
                "llm_call"
            } else {
                "tool_call"
            }
            .into(),
            ..ModelRecord::default()
        };
        source.push(record).expect("increasing");
    }
    // The estimate says the range is empty.
    let d = Damaged {
        inner: source,
        damage: Damage::ZeroCounts,
    };
    let text = "tenant=acme kind=llm_call since=1 limit=3";
    assert!(planned(text, &d).explain().contains("sorted by seq"));
    let q = Query::parse(text).expect("valid");
    let p = plan(&q, &d).expect("plans");
    let candidates = p.candidates(&d, None);
    assert_eq!(
        candidates.time_sort_fallbacks(),
        1,
        "the walk passed the cap"
    );
    let seqs: Vec<u64> = candidates.map(|c| c.expect("ok").seq).collect();
    assert_eq!(seqs, (0..n).step_by(2).collect::<Vec<_>>());
    let cursor = Cursor::after(
        &q,
        &trailmix_query::Candidate {
            seq: 4,
            event_time_ns: None,
        },
    )
    .expect("seq");
    let candidates = p.candidates(&d, Some(&cursor));
    assert_eq!(
        candidates.time_sort_fallbacks(),
        1,
        "the walk passed the cap"
    );
    let next: Vec<u64> = candidates.map(|c| c.expect("ok").seq).collect();
    assert_eq!(next, (6..n).step_by(2).collect::<Vec<_>>());
    // Near the end, exactly the cap matches after the cursor: the buffer is kept.
    let near_end = n - 2 * TIME_SORT_CAP - 1;
    let cursor = Cursor::after(
        &q,
        &trailmix_query::Candidate {
            seq: near_end,
            event_time_ns: None,
        },
    )
    .expect("seq");
    let candidates = p.candidates(&d, Some(&cursor));
    assert_eq!(candidates.time_sort_fallbacks(), 0, "at the cap");
    let rest: Vec<u64> = candidates.map(|c| c.expect("ok").seq).collect();
    assert_eq!(rest, (near_end + 1..n).step_by(2).collect::<Vec<_>>());
    assert_eq!(rest.len() as u64, TIME_SORT_CAP);
}

#[test]
fn an_event_time_range_small_enough_is_sorted_by_seq() {
    let s = store();
    let p = planned("tenant=beta since=3000 until=5000 order=-seq", &s);
    assert!(
        p.explain()
            .contains("walk the event-time range (~6 receipts), sorted by seq"),
        "{}",
        p.explain()
    );
    let candidates = p.candidates(&s, None);
    assert_eq!(
        candidates.time_sort_fallbacks(),
        0,
        "the estimate was right"
    );
    let seqs: Vec<u64> = candidates.map(|c| c.expect("ok").seq).collect();
    // beta receipts are odd i; event time (i % 10) * 1000 in [3000, 5000): i % 10 == 3.
    assert_eq!(seqs, [106, 86, 66, 46, 26, 6]);
}
