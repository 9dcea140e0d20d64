//! Guards the command-line filter syntax: accepted forms, the exact error (offset, token,
//! message) for each kind of mistake, and that `Display` prints text that parses back to the
//! same query.

use proptest::prelude::*;
use trailmix_query::syntax::{KEY_LIST, KEYS};
use trailmix_query::{
    Candidate, Cursor, Direction, Filter, ModelFilter, Order, ParseProblem, Query, TIME_FORMS,
};

const NS: i64 = 1_000_000_000;
const JAN_1_2026: i64 = 1_767_225_600 * NS;

fn parse(text: &str) -> Query {
    Query::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn the_key_list_is_every_key_in_order() {
    assert_eq!(KEY_LIST, KEYS.join(", "));
}

#[test]
fn the_example_parses_to_the_filter_it_says() {
    let q = parse("tenant=acme model=gpt-4o since=2026-01-01T00:00Z decision=deny");
    let want = Filter {
        tenant: Some("acme".into()),
        model: Some(ModelFilter {
            name: "gpt-4o".into(),
            version: None,
        }),
        decision: Some("deny".into()),
        since: Some(JAN_1_2026),
        ..Filter::default()
    };
    assert_eq!(q, Query::new(want));
}

#[test]
fn every_key_is_read() {
    let q = parse(
        "  tenant=t model=m@v1 kind=llm_call decision=allow session=s event=e app=a subject=u \
         label.env=prod label.note=\"two words\" label.empty=\"\" since=2026-01-01 \
         until=2026-01-02T00:00:00Z logged_since=0 logged_until=5 order=-time limit=7  ",
    );
    let f = &q.filter;
    assert_eq!(
        f.model
            .as_ref()
            .map(|m| (m.name.as_str(), m.version.as_deref())),
        Some(("m", Some("v1")))
    );
    assert_eq!(
        [
            &f.kind,
            &f.decision,
            &f.session,
            &f.event_id,
            &f.app,
            &f.subject
        ]
        .map(|v| v.as_deref()),
        [
            Some("llm_call"),
            Some("allow"),
            Some("s"),
            Some("e"),
            Some("a"),
            Some("u")
        ]
    );
    assert_eq!(f.labels["note"], "two words");
    assert_eq!(f.labels["empty"], "");
    assert_eq!(
        (f.since, f.until),
        (Some(JAN_1_2026), Some(JAN_1_2026 + 86_400 * NS))
    );
    assert_eq!((f.logged_since, f.logged_until), (Some(0), Some(5)));
    assert_eq!(
        (q.order, q.limit),
        (Order::EventTime(Direction::Descending), 7)
    );
}

#[test]
fn times_in_every_accepted_form() {
    let cases: [(&str, i64); 10] = [
        ("2026-01-01T00:00Z", JAN_1_2026),
        ("2026-01-01T00:00:00Z", JAN_1_2026),
        ("2026-01-01", JAN_1_2026),
        ("2026-01-01t01:00+01:00", JAN_1_2026),
        ("\"2026-01-01 00:00:00.5z\"", JAN_1_2026 + NS / 2),
        ("2025-12-31T19:00:00.000000001-05:00", JAN_1_2026 + 1),
        ("-5", -5),
        ("1767225600000000000", JAN_1_2026),
        ("2262-04-11T23:47:16.854775807Z", i64::MAX),
        ("1677-09-21T00:12:43.145224192Z", i64::MIN),
    ];
    for (text, ns) in cases {
        assert_eq!(
            parse(&format!("since={text}")).filter.since,
            Some(ns),
            "{text}"
        );
    }
}

#[test]
fn quoted_values_unescape() {
    let q = parse(r#"app="a \"b\" \\ c" tenant="acme""#);
    assert_eq!(q.filter.app.as_deref(), Some(r#"a "b" \ c"#));
    assert_eq!(q.filter.tenant.as_deref(), Some("acme"));
    assert_eq!(q.to_string(), r#"tenant=acme app="a \"b\" \\ c""#);
}

#[test]
fn canonical_text_omits_defaults_and_sorts_keys() {
    let q = parse("order=seq limit=100 label.b=2 decision=deny label.a=1 tenant=acme");
    assert_eq!(
        q.to_string(),
        "tenant=acme decision=deny label.a=1 label.b=2"
    );
    assert_eq!(Query::default().to_string(), "");
}

fn bad_time(key: &str, token: &str, reason: &str) -> String {
    format!("bad time \"{token}\" for {key} ({reason}); expected {TIME_FORMS}")
}

#[test]
fn each_mistake_gets_its_exact_error() {
    let keys = format!("(keys: {KEY_LIST})");
    let range = "outside 1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z";
    let table: Vec<(&str, usize, &str, String)> = vec![
        ("tenant=acme tennant=x", 12, "tennant", format!("unknown key \"tennant\"; did you mean \"tenant\"? {keys}")),
        ("Tenant=x", 0, "Tenant", format!("unknown key \"Tenant\"; did you mean \"tenant\"? {keys}")),
        ("labels.env=x", 0, "labels.env", format!("unknown key \"labels.env\"; did you mean \"label.KEY\"? {keys}")),
        ("colour=red", 0, "colour", format!("unknown key \"colour\"; {keys}")),
        ("tenant acme", 0, "tenant", "\"tenant\" has no \"=\"; expected KEY=VALUE, as in tenant=acme".into()),
        ("=acme", 0, "=acme", "\"=acme\" has no key before \"=\"; expected KEY=VALUE, as in tenant=acme".into()),
        ("label.=x", 0, "label.", "\"label.\" names no label; expected label.KEY=VALUE, as in label.env=prod".into()),
        ("kind=a tenant=", 7, "tenant", "empty value for \"tenant\"; expected a value after \"=\"".into()),
        ("tenant=\"\"", 0, "tenant", "empty value for \"tenant\"; expected a value after \"=\"".into()),
        ("app=\"abc", 4, "\"abc", "unterminated quote in \"abc; expected a closing \"".into()),
        ("app=\"a\\", 4, "\"a\\", "unterminated quote in \"a\\; expected a closing \"".into()),
        ("app=\"a\\nb\"", 6, "\\n", "unknown escape \"\\n\"; expected \\\" or \\\\".into()),
        ("app=ab\"c", 4, "ab\"c", "quote inside the unquoted value ab\"c; expected the whole value in quotes, as in app=\"a \\\"b\\\"\"".into()),
        ("app=\"ab\"c d=1", 8, "c", "\"c\" follows a closing quote; expected a space after the closing quote".into()),
        ("tenant=a  tenant=b", 10, "tenant", "repeated key \"tenant\" (first at byte 0); expected each key at most once (label.KEY once per label key)".into()),
        ("label.a=1 label.a=2", 10, "label.a", "repeated key \"label.a\" (first at byte 0); expected each key at most once (label.KEY once per label key)".into()),
        ("since=2026-01-02 until=2026-01-01", 17, "until=2026-01-01", "since is not before until (\"until=2026-01-01\"), so the range is empty; expected a start before the end".into()),
        ("logged_until=5 logged_since=5", 0, "logged_until=5", "logged_since is not before logged_until (\"logged_until=5\"), so the range is empty; expected a start before the end".into()),
        ("since=2026-13-01", 6, "2026-13-01", bad_time("since", "2026-13-01", "no such date or time")),
        ("until=2026-02-30", 6, "2026-02-30", bad_time("until", "2026-02-30", "no such date or time")),
        ("since=2026-01-01T00:00:60Z", 6, "2026-01-01T00:00:60Z", bad_time("since", "2026-01-01T00:00:60Z", "leap seconds (:60) cannot be represented")),
        ("since=2026-01-01T00:00", 6, "2026-01-01T00:00", bad_time("since", "2026-01-01T00:00", "not one of the accepted forms")),
        ("since=2026-01-01T00:00+24:00", 6, "2026-01-01T00:00+24:00", bad_time("since", "2026-01-01T00:00+24:00", "not one of the accepted forms")),
        ("logged_since=yesterday", 13, "yesterday", bad_time("logged_since", "yesterday", "not one of the accepted forms")),
        ("since=99999999999999999999", 6, "99999999999999999999", bad_time("since", "99999999999999999999", range)),
        ("since=2262-04-11T23:47:16.854775808Z", 6, "2262-04-11T23:47:16.854775808Z", bad_time("since", "2262-04-11T23:47:16.854775808Z", range)),
        ("model=@v1", 6, "@v1", "model \"@v1\" has an empty name or version; expected NAME or NAME@VERSION".into()),
        ("model=gpt@", 6, "gpt@", "model \"gpt@\" has an empty name or version; expected NAME or NAME@VERSION".into()),
        ("order=asc", 6, "asc", "unknown order \"asc\"; expected seq, -seq, time or -time".into()),
        ("limit=ten", 6, "ten", "limit \"ten\" is not an integer; expected an integer from 1 to 10000".into()),
        ("limit=-1", 6, "-1", "limit \"-1\" is not an integer; expected an integer from 1 to 10000".into()),
        ("limit=0", 6, "0", "limit 0 is out of range; expected an integer from 1 to 10000".into()),
        ("limit=10001", 6, "10001", "limit 10001 is out of range; expected an integer from 1 to 10000".into()),
        ("limit=99999999999999999999", 6, "99999999999999999999", "limit 99999999999999999999 is out of range; expected an integer from 1 to 10000".into()),
        ("cursor=!!", 7, "!!", "cursor \"!!\": malformed cursor; pass back the cursor text exactly as a previous page returned it".into()),
        ("cursor=AQ", 7, "AQ", "cursor \"AQ\": malformed cursor; pass back the cursor text exactly as a previous page returned it".into()),
        ("cursor=AgAAAAAAAAAAAAAAAAAAAAAA", 7, "AgAAAAAAAAAAAAAAAAAAAAAA", "cursor \"AgAAAAAAAAAAAAAAAAAAAAAA\": cursor format version 2 is not supported (this build reads version 1)".into()),
    ];
    for (text, offset, token, message) in table {
        let e = Query::parse(text).expect_err(text);
        assert_eq!(
            (e.offset, e.token.as_str(), e.to_string()),
            (offset, token, format!("at byte {offset}: {message}")),
            "{text}"
        );
    }
}

#[test]
fn a_cursor_of_another_query_is_refused_wherever_it_stands() {
    let first = parse("tenant=acme limit=2");
    let cursor = Cursor::after(
        &first,
        &Candidate {
            seq: 9,
            event_time_ns: None,
        },
    )
    .expect("seq order");
    let same = parse(&format!("cursor={cursor} tenant=acme"));
    assert_eq!(same.cursor.map(|c| c.seq()), Some(9));
    for other in [
        "tenant=beta",
        "tenant=acme order=-seq",
        "tenant=acme kind=x",
    ] {
        let text = format!("{other} cursor={cursor}");
        let e = Query::parse(&text).expect_err(&text);
        assert_eq!(e.offset, other.len() + 8, "{text}");
        assert_eq!(e.token, cursor.to_string());
        assert!(
            e.to_string().ends_with("cursor belongs to a different query (the filter or order changed); start again without a cursor"),
            "{e}"
        );
    }
}

#[test]
fn filters_refuse_query_keys() {
    let e = Filter::parse("tenant=a limit=5").expect_err("limit is a query key");
    assert_eq!((e.offset, e.problem), (9, ParseProblem::NotAFilterKey));
    assert_eq!(
        Filter::parse("tenant=a").map(|f| f.tenant),
        Ok(Some("a".into()))
    );
}

#[test]
fn errors_say_what_was_expected() {
    let e = Query::parse("since=soon").expect_err("bad time");
    assert_eq!(e.expected(), TIME_FORMS);
}

/// Any string, including spaces, quotes, backslashes, `=`, and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._-]{1,8}",
        "[ -~]{1,8}",
        "\\PC{1,6}",
        "[ \"\\\\=\t]{1,4}",
    ]
}

fn opt<T: std::fmt::Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.4, s)
}

fn range(a: Option<i64>, b: Option<i64>) -> (Option<i64>, Option<i64>) {
    match (a, b) {
        (Some(a), Some(b)) if a >= b => (Some(b), None),
        other => other,
    }
}

fn filter() -> impl Strategy<Value = Filter> {
    let model = opt((
        "[^@]{1,8}".prop_filter("non-empty", |s| !s.is_empty()),
        opt(text()),
    ))
    .prop_map(|m| m.map(|(name, version)| ModelFilter { name, version }));
    let strings = [
        opt(text()),
        opt(text()),
        opt(text()),
        opt(text()),
        opt(text()),
        opt(text()),
        opt(text()),
        opt(text()),
    ];
    let labels = prop::collection::btree_map("[A-Za-z0-9][A-Za-z0-9._/-]{0,6}", "\\PC{0,5}", 0..3);
    let times = [
        opt(any::<i64>()),
        opt(any::<i64>()),
        opt(any::<i64>()),
        opt(any::<i64>()),
    ];
    (model, strings, labels, times).prop_map(|(model, s, labels, t)| {
        let [tenant, kind, decision, session, event_id, app, subject, _] = s;
        let (since, until) = range(t[0], t[1]);
        let (logged_since, logged_until) = range(t[2], t[3]);
        Filter {
            tenant,
            model,
            kind,
            decision,
            session,
            event_id,
            app,
            subject,
            labels,
            since,
            until,
            logged_since,
            logged_until,
        }
    })
}

fn query() -> impl Strategy<Value = Query> {
    let order = prop_oneof![
        Just(Order::Seq(Direction::Ascending)),
        Just(Order::Seq(Direction::Descending)),
        Just(Order::EventTime(Direction::Ascending)),
        Just(Order::EventTime(Direction::Descending)),
    ];
    let at = opt((any::<u64>(), any::<i64>()));
    (filter(), order, 1..=trailmix_query::MAX_LIMIT, at).prop_map(|(filter, order, limit, at)| {
        let mut q = Query {
            filter,
            order,
            limit,
            cursor: None,
        };
        q.cursor = at.map(|(seq, t)| {
            let c = Candidate {
                seq,
                event_time_ns: Some(t),
            };
            Cursor::after(&q, &c).expect("candidate has a time")
        });
        q
    })
}

/// Pieces of the syntax, so random soups reach deep into the parser.
fn soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("tenant="),
        Just("model="),
        Just("label."),
        Just("since="),
        Just("until="),
        Just("limit="),
        Just("order="),
        Just("cursor="),
        Just("="),
        Just("\""),
        Just("\\"),
        Just(" "),
        Just("@"),
        Just("2026-01-01"),
        Just("T00:00Z"),
        Just("-5"),
        Just("x"),
        Just("é"),
        Just("AQ"),
        Just("logged_since="),
        Just("100"),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn display_parses_back_to_the_same_query(q in query()) {
        let text = q.to_string();
        prop_assert_eq!(Query::parse(&text), Ok(q.clone()), "text: {}", text);
        prop_assert_eq!(Filter::parse(&q.filter.to_string()), Ok(q.filter));
    }

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(text in prop_oneof![any::<String>(), soup()]) {
        match Query::parse(&text) {
            Ok(q) => prop_assert_eq!(Query::parse(&q.to_string()), Ok(q)),
            Err(e) => {
                prop_assert!(e.offset <= text.len());
                prop_assert!(text.is_char_boundary(e.offset));
            }
        }
    }
}
