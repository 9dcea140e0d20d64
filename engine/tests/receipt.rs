//! Guards the receipt model: SDK events parse into a header and a canonical payload, round-trip
//! through JSON and the binary header encoding, and every bad input gets a typed error naming
//! the field, with each limit exact at its boundary.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use trailmix_db::receipt::{
    ActorType, CustomKind, Decision, HEADER_FORMAT_VERSION, HeaderProblem, JsonProblem, Kind,
    MAX_EVENT_JSON_BYTES, MAX_HEADER_BYTES, MAX_ID_BYTES, MAX_JSON_DEPTH, MAX_LABEL_KEY_BYTES,
    MAX_LABEL_VALUE_BYTES, MAX_LABELS, MAX_NAME_BYTES, MAX_PAYLOAD_BYTES, MAX_SAFE_INTEGER,
    MAX_TENANT_ID_BYTES, Problem, Receipt, ReceiptError, ReceiptHeader, Timestamp, fuzz_from_json,
};

const FIXTURES: [&str; 6] = [
    "llm_call",
    "tool_call",
    "policy_denial",
    "approval",
    "evaluation",
    "lifecycle",
];

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/events/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_receipt(name: &str) -> Receipt {
    Receipt::from_json(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The smallest valid event.
fn base() -> Value {
    json!({
        "event_id": "evt-1",
        "tenant_id": "acme",
        "app_id": "app",
        "kind": "llm_call",
        "actor_type": "agent",
        "ts": "2026-01-01T00:00:00Z"
    })
}

/// Sets `path` (dot-separated; numeric segments index arrays) in `v`, creating objects.
fn set(mut v: Value, path: &str, value: Value) -> Value {
    let mut cur = &mut v;
    let segs: Vec<&str> = path.split('.').collect();
    for seg in &segs[..segs.len() - 1] {
        cur = match seg.parse::<usize>() {
            Ok(i) => &mut cur[i],
            Err(_) => cur
                .as_object_mut()
                .expect("object on the path")
                .entry(*seg)
                .or_insert_with(|| json!({})),
        };
    }
    let last = segs[segs.len() - 1];
    match last.parse::<usize>() {
        Ok(i) => cur[i] = value,
        Err(_) => {
            cur.as_object_mut()
                .expect("object at the path")
                .insert(last.to_owned(), value);
        }
    }
    v
}

fn field_error(v: Value) -> (String, Problem) {
    let shown = v.to_string();
    match Receipt::from_json_value(v) {
        Err(ReceiptError::Field { field, problem }) => (field, problem),
        other => panic!("expected a field error for {shown}, got {other:?}"),
    }
}

fn assert_field(v: Value, field: &str) -> Problem {
    let (f, p) = field_error(v);
    assert_eq!(f, field, "wrong field named ({p})");
    p
}

fn payload_of(v: Value) -> String {
    Receipt::from_json_value(v)
        .expect("valid event")
        .payload_str()
        .to_owned()
}

// ---------------------------------------------------------------- fixtures and round trips

#[test]
fn fixtures_parse_into_the_expected_headers() {
    let r = fixture_receipt("llm_call");
    let h = r.header();
    assert_eq!(h.event_id(), "evt_01J9Z3K7Q8M2A5B6C7D8E9F0G1");
    assert_eq!(h.tenant_id(), "acme-insurance");
    assert_eq!(h.app_id(), "claims-assistant");
    assert_eq!(h.session_id(), Some("sess_7f3a2c9e"));
    assert_eq!(h.parent_id(), None, "null is absent");
    assert_eq!(h.subject_id(), Some("subj_5d41402abc4b2a76"));
    assert_eq!(h.kind(), &Kind::LlmCall);
    assert_eq!(h.actor_type(), &ActorType::Agent);
    assert_eq!(
        h.event_time(),
        Timestamp::parse_rfc3339("2026-03-01T12:04:05.25Z").expect("ts")
    );
    assert_eq!(h.model_name(), Some("gpt-4o"));
    assert_eq!(h.model_version(), Some("2024-08-06"));
    assert_eq!(h.model_provider(), Some("openai"));
    assert_eq!(h.policy_id(), Some("pii-guard-v3"));
    assert_eq!(h.decision(), Some(&Decision::Allow));
    assert_eq!(h.retention_class(), Some("standard-7y"));
    let labels: Vec<_> = h.labels().keys().map(String::as_str).collect();
    assert_eq!(labels, ["env", "region", "team"]);

    let expect = [
        (
            "tool_call",
            Kind::ToolCall,
            ActorType::Tool,
            Some(Decision::Allow),
        ),
        (
            "policy_denial",
            Kind::PolicyDecision,
            ActorType::System,
            Some(Decision::Deny),
        ),
        (
            "approval",
            Kind::Approval,
            ActorType::Human,
            Some(Decision::Escalate),
        ),
        (
            "evaluation",
            Kind::Evaluation,
            ActorType::parse("evaluator").expect("custom actor"),
            None,
        ),
        (
            "lifecycle",
            Kind::Lifecycle,
            ActorType::System,
            Some(Decision::Allow),
        ),
    ];
    for (name, kind, actor, decision) in expect {
        let r = fixture_receipt(name);
        assert_eq!(r.header().kind(), &kind, "{name}");
        assert_eq!(r.header().actor_type(), &actor, "{name}");
        assert_eq!(r.header().decision(), decision.as_ref(), "{name}");
    }
    // The offset is applied: 07:04:07-05:00 is 12:04:07Z.
    assert_eq!(
        fixture_receipt("policy_denial")
            .header()
            .event_time()
            .to_rfc3339(),
        "2026-03-01T12:04:07Z"
    );
}

#[test]
fn payload_holds_everything_but_the_header() {
    let r = fixture_receipt("llm_call");
    let payload: Value = serde_json::from_slice(r.payload()).expect("payload is JSON");
    for key in [
        "event_id",
        "tenant_id",
        "app_id",
        "kind",
        "actor_type",
        "ts",
        "session_id",
        "parent_id",
        "subject_id",
        "retention_class",
        "labels",
    ] {
        assert!(payload.get(key).is_none(), "{key} leaked into the payload");
    }
    assert_eq!(
        payload["model"],
        json!({"params": {"temperature": 0.2, "top_p": 1, "max_tokens": 512, "seed": 42},
               "cost": {"input_tokens": 812, "output_tokens": 95, "usd": 0.00298}})
    );
    assert_eq!(
        payload["policy_eval"],
        json!({"reasons": ["no PII in output"], "approvals": []})
    );
    assert_eq!(payload["evals"][0]["name"], "faithfulness");
    assert_eq!(payload["tools_invoked"], json!([]));
    // Unknown fields are kept.
    assert_eq!(payload["sdk"]["name"], "ai-audit-trail");
    assert_eq!(payload["latency_ms"], 1432);
    // A model object with only header fields leaves nothing behind.
    let lifecycle: Value =
        serde_json::from_slice(fixture_receipt("lifecycle").payload()).expect("JSON");
    assert!(lifecycle.get("model").is_none());
}

#[test]
fn json_round_trip_of_every_fixture() {
    for name in FIXTURES {
        let r = fixture_receipt(name);
        let text = r.to_sdk_json();
        assert_eq!(Receipt::from_json(&text).as_ref(), Ok(&r), "{name}");
        assert_eq!(
            text,
            Receipt::from_json(&text).expect("again").to_sdk_json(),
            "{name}: canonical output is stable"
        );
        // serde, through a Value and through text.
        let via_serde = serde_json::to_string(&r).expect("serialize");
        assert_eq!(
            serde_json::from_str::<Receipt>(&via_serde).as_ref().ok(),
            Some(&r)
        );
        let value = serde_json::to_value(&r).expect("to_value");
        assert_eq!(
            serde_json::from_value::<Receipt>(value).ok().as_ref(),
            Some(&r)
        );
        // The SDK JSON holds the original event's content.
        let original: Value = serde_json::from_str(&fixture(name)).expect("fixture");
        let printed: Value = serde_json::from_str(&text).expect("output");
        for key in [
            "input",
            "output",
            "evals",
            "labels",
            "event_id",
            "tools_invoked",
        ] {
            if !original[key].is_null() {
                assert!(same_json(&printed[key], &original[key]), "{name}: {key}");
            }
        }
    }
}

/// Equality of JSON values with numbers compared by value (`18250.0 == 18250`).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn binary_header_round_trip_of_every_fixture() {
    for name in FIXTURES {
        let r = fixture_receipt(name);
        let bytes = r.header().encode();
        assert_eq!(bytes[0], HEADER_FORMAT_VERSION);
        assert_eq!(bytes.len(), r.header().encoded_len(), "{name}");
        let decoded = ReceiptHeader::decode(&bytes).expect("decode");
        assert_eq!(&decoded, r.header(), "{name}");
        assert_eq!(decoded.encode(), bytes, "{name}");
        let mut appended = vec![0xAA];
        r.header().encode_into(&mut appended);
        assert_eq!(&appended[1..], &bytes[..]);
        assert_eq!(
            Receipt::from_parts(&decoded, r.payload()).as_ref(),
            Ok(&r),
            "{name}"
        );
        let (h, p) = r.clone().into_parts();
        assert_eq!((&h, p.as_slice()), (r.header(), r.payload()));
    }
}

#[test]
fn header_encoding_matches_the_documented_bytes() {
    let r = Receipt::from_json_value(base()).expect("valid");
    let expected: Vec<u8> = [
        &[0x01][..],                                  // version
        &[0x00, 0x00],                                // flags: nothing optional
        &1_767_225_600_000_000_000_i64.to_le_bytes(), // 2026-01-01T00:00:00Z
        &[0x01],                                      // kind llm_call
        &[0x01],                                      // actor agent
        &[4],
        b"acme",
        &[5],
        b"evt-1",
        &[3],
        b"app",
        &[0], // no labels
    ]
    .concat();
    assert_eq!(r.header().encode(), expected);

    let r = Receipt::from_json_value(json!({
        "event_id": "e", "tenant_id": "t", "app_id": "a", "kind": "triage",
        "actor_type": "human", "ts": "1970-01-01T00:00:00.000000001Z",
        "session_id": "s", "model": {"provider": "p"},
        "policy_eval": {"decision": "review"}, "retention_class": "r",
        "labels": {"b": "", "a": "x"}
    }))
    .expect("valid");
    let expected: Vec<u8> = [
        &[0x01][..],
        &[0b1010_0001, 0b0000_0001], // session_id, model.provider, decision, retention_class
        &1_i64.to_le_bytes(),
        &[0x00, 6],
        b"triage", // custom kind
        &[0x02],   // human
        &[1],
        b"t",
        &[1],
        b"e",
        &[1],
        b"a",
        &[1],
        b"s",
        &[1],
        b"p",
        &[0x00, 6],
        b"review", // custom decision
        &[1],
        b"r",
        &[2], // two labels, sorted
        &[1],
        b"a",
        &[1, 0],
        b"x",
        &[1],
        b"b",
        &[0, 0],
    ]
    .concat();
    assert_eq!(r.header().encode(), expected);
    assert_eq!(ReceiptHeader::decode(&expected).as_ref(), Ok(r.header()));
}

#[test]
fn maximal_header_encodes_to_max_header_bytes() {
    let id = |c: char| c.to_string().repeat(MAX_ID_BYTES);
    let name = |c: char| c.to_string().repeat(MAX_NAME_BYTES);
    let labels: serde_json::Map<String, Value> = (0..MAX_LABELS)
        .map(|i| {
            (
                format!("{i:0>MAX_LABEL_KEY_BYTES$}"),
                Value::String("v".repeat(MAX_LABEL_VALUE_BYTES)),
            )
        })
        .collect();
    let event = json!({
        "event_id": id('e'), "tenant_id": "t".repeat(MAX_TENANT_ID_BYTES), "app_id": id('a'),
        "kind": name('k'), "actor_type": name('a'), "ts": "2262-04-11T23:47:16.854775807Z",
        "session_id": id('s'), "parent_id": id('p'), "subject_id": id('u'),
        "model": {"name": id('n'), "version": id('v'), "provider": id('o')},
        "policy_eval": {"policy_id": id('i'), "decision": name('d')},
        "retention_class": "R".repeat(MAX_NAME_BYTES), "labels": labels
    });
    let r = Receipt::from_json_value(event).expect("maximal header is valid");
    let bytes = r.header().encode();
    assert_eq!(bytes.len(), MAX_HEADER_BYTES);
    assert_eq!(ReceiptHeader::decode(&bytes).as_ref(), Ok(r.header()));
    assert_eq!(r.header().event_time(), Timestamp::MAX);
}

// ---------------------------------------------------------------- canonical payload

#[test]
fn canonical_payload_ignores_key_order_whitespace_and_spelling() {
    let a = r#"{"event_id":"e","tenant_id":"t","app_id":"a","kind":"llm_call",
        "actor_type":"agent","ts":"2026-01-01T00:00:00Z",
        "input":{"b":[1,2.0,3e0,{"y":true,"x":null}],"a":"\u0041\u00e9\n"},
        "model":{"name":"m","params":{"temperature":0.5,"top_k":40}},
        "output":"ok","zz":-0.0,"num":1E2}"#;
    let b = "{\n  \"num\" : 100 ,\"zz\":0, \"output\" : \"ok\",\n\t\"model\" : { \"params\" : \
             { \"top_k\" : 40.0 , \"temperature\" : 5e-1 } , \"name\" : \"m\" } ,\n  \
             \"input\" : { \"a\" : \"Aé\\u000a\" , \"b\" : [ 1 , 2 , 3 , { \"x\" : null , \
             \"y\" : true } ] } , \"ts\" : \"2026-01-01T01:00:00+01:00\" , \"actor_type\" : \
             \"agent\" , \"kind\" : \"llm_call\" , \"app_id\" : \"a\" , \"tenant_id\" : \"t\" \
             , \"event_id\" : \"e\" }\n";
    let ra = Receipt::from_json(a).expect("a");
    let rb = Receipt::from_json(b).expect("b");
    assert_eq!(ra.payload_str(), rb.payload_str());
    assert_eq!(ra, rb);
    assert_eq!(
        ra.payload_str(),
        r#"{"input":{"a":"Aé\n","b":[1,2,3,{"x":null,"y":true}]},"model":{"params":{"temperature":0.5,"top_k":40}},"num":100,"output":"ok","zz":0}"#
    );
    assert_eq!(ra.header().encode(), rb.header().encode());
    // Every fixture, re-indented and with reversed key order, gives the same bytes.
    for name in FIXTURES {
        let original = fixture_receipt(name);
        let value: Value = serde_json::from_str(&fixture(name)).expect("fixture");
        let mut reversed = String::new();
        write_reversed(&mut reversed, &value);
        let again = Receipt::from_json(&reversed).expect("reversed");
        assert_eq!(again.payload(), original.payload(), "{name}");
        let pretty = serde_json::to_string_pretty(&value).expect("pretty");
        assert_eq!(
            Receipt::from_json(&pretty).expect("pretty").payload(),
            original.payload(),
            "{name}"
        );
    }
}

/// Writes JSON with object keys in reverse order and generous whitespace.
fn write_reversed(out: &mut String, v: &Value) {
    match v {
        Value::Object(m) => {
            out.push_str("{ ");
            let mut entries: Vec<_> = m.iter().collect();
            entries.reverse();
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(" ,\n ");
                }
                out.push_str(&serde_json::to_string(k).expect("key"));
                out.push_str(" :\t");
                write_reversed(out, v);
            }
            out.push_str(" }");
        }
        Value::Array(a) => {
            out.push_str("[ ");
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(" , ");
                }
                write_reversed(out, v);
            }
            out.push_str(" ]");
        }
        other => out.push_str(&other.to_string()),
    }
}

#[test]
fn canonical_numbers_follow_rfc8785() {
    // RFC 8785 appendix B, and ECMAScript's ties-to-even among shortest candidates.
    let vectors: [(u64, &str); 24] = [
        (0x0000_0000_0000_0000, "0"),
        (0x8000_0000_0000_0000, "0"),
        (0x0000_0000_0000_0001, "5e-324"),
        (0x8000_0000_0000_0001, "-5e-324"),
        (0x7fef_ffff_ffff_ffff, "1.7976931348623157e+308"),
        (0xffef_ffff_ffff_ffff, "-1.7976931348623157e+308"),
        (0x4340_0000_0000_0000, "9007199254740992"),
        (0xc340_0000_0000_0000, "-9007199254740992"),
        (0x4430_0000_0000_0000, "295147905179352830000"),
        (0x44b5_2d02_c7e1_4af5, "9.999999999999997e+22"),
        (0x44b5_2d02_c7e1_4af6, "1e+23"),
        (0x44b5_2d02_c7e1_4af7, "1.0000000000000001e+23"),
        (0x444b_1ae4_d6e2_ef4e, "999999999999999700000"),
        (0x444b_1ae4_d6e2_ef4f, "999999999999999900000"),
        (0x444b_1ae4_d6e2_ef50, "1e+21"),
        (0x3eb0_c6f7_a0b5_ed8c, "9.999999999999997e-7"),
        (0x3eb0_c6f7_a0b5_ed8d, "0.000001"),
        (0x41b3_de43_5555_5553, "333333333.3333332"),
        (0x41b3_de43_5555_5554, "333333333.33333325"),
        (0x41b3_de43_5555_5555, "333333333.3333333"),
        (0x41b3_de43_5555_5556, "333333333.3333334"),
        (0x41b3_de43_5555_5557, "333333333.33333343"),
        (0xbecb_f647_612f_3696, "-0.0000033333333333333333"),
        (0x4314_3ff3_c1cb_0959, "1424953923781206.2"),
    ];
    for (bits, expected) in vectors {
        let x = f64::from_bits(bits);
        let payload = payload_of(set(base(), "n", json!(x)));
        assert_eq!(payload, format!("{{\"n\":{expected}}}"), "{bits:#x}");
    }
    // A tie between two shortest candidates (…989.25) goes to the even digit, as in
    // ECMAScript; Rust's own formatting would print …989.3.
    let payload = payload_of(set(
        base(),
        "n",
        json!(f64::from_bits(4_835_306_239_166_039_669)),
    ));
    assert_eq!(payload, r#"{"n":1861859656216989.2}"#);
    // Number spellings of one value.
    let text = |n: &str| {
        let event = base().to_string();
        let event = format!("{},\"n\":{n}}}", &event[..event.len() - 1]);
        Receipt::from_json(&event)
            .expect("valid")
            .payload_str()
            .to_owned()
    };
    assert_eq!(text("1e21"), r#"{"n":1e+21}"#);
    assert_eq!(
        text("100000000000000000000"),
        r#"{"n":100000000000000000000}"#
    );
    assert_eq!(text("0.1"), text("1e-1"));
    assert_eq!(text("0.1"), text("0.10000000000000000555"));
    assert_eq!(text("-0"), r#"{"n":0}"#);
    assert_eq!(text("1E-7"), r#"{"n":1e-7}"#);
}

#[test]
fn canonical_strings_and_key_order_follow_rfc8785() {
    // RFC 8785 §3.2.3: keys sorted by UTF-16 code units.
    let text = r#"{"event_id":"e","tenant_id":"t","app_id":"a","kind":"llm_call",
        "actor_type":"agent","ts":"2026-01-01T00:00:00Z","input":{
        "\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh",
        "1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control\u007f",
        "\u00f6":"Latin Small Letter O With Diaeresis"}}"#;
    let r = Receipt::from_json(text).expect("valid");
    let expected = "{\"input\":{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\u{7f}\",\
                    \"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\
                    \"😀\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}}";
    assert_eq!(r.payload_str(), expected);
    // Escapes: only " \ and U+0000..U+001F, short forms where JSON has them.
    let r = Receipt::from_json_value(set(
        base(),
        "s",
        json!("\"\\/\u{8}\u{c}\n\r\t\u{0}\u{1f}\u{7f}\u{2028}é😀"),
    ))
    .expect("valid");
    assert_eq!(
        r.payload_str(),
        "{\"s\":\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\u{7f}\u{2028}é😀\"}"
    );
}

// ---------------------------------------------------------------- required fields and types

#[test]
fn every_missing_required_field_is_named() {
    for key in [
        "event_id",
        "tenant_id",
        "app_id",
        "kind",
        "actor_type",
        "ts",
    ] {
        let mut v = base();
        v.as_object_mut().expect("object").remove(key);
        let p = assert_field(v, key);
        assert_eq!(p, Problem::Missing, "{key}");
    }
    let p = assert_field(set(base(), "evals", json!([{"score": 1}])), "evals[0].name");
    assert_eq!(p, Problem::Missing);
    let p = assert_field(
        set(base(), "evals", json!([{"name": "x"}])),
        "evals[0].score",
    );
    assert_eq!(p, Problem::Missing);
}

#[test]
fn every_wrong_typed_field_is_named() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("event_id", json!(42), "event_id"),
        ("tenant_id", json!(null), "tenant_id"),
        ("app_id", json!([]), "app_id"),
        ("kind", json!(1), "kind"),
        ("actor_type", json!({}), "actor_type"),
        ("ts", json!(1_767_225_600), "ts"),
        ("session_id", json!(5), "session_id"),
        ("parent_id", json!(true), "parent_id"),
        ("subject_id", json!(["s"]), "subject_id"),
        ("model", json!("gpt-4o"), "model"),
        ("model.name", json!(4), "model.name"),
        ("model.version", json!(4.1), "model.version"),
        ("model.provider", json!({}), "model.provider"),
        ("model.params", json!([]), "model.params"),
        ("model.cost", json!("0.1"), "model.cost"),
        ("policy_eval", json!([]), "policy_eval"),
        ("policy_eval.policy_id", json!(1), "policy_eval.policy_id"),
        ("policy_eval.decision", json!(true), "policy_eval.decision"),
        ("policy_eval.reasons", json!("no"), "policy_eval.reasons"),
        ("policy_eval.approvals", json!({}), "policy_eval.approvals"),
        ("tools_invoked", json!({"name": "x"}), "tools_invoked"),
        ("evals", json!({}), "evals"),
        ("evals", json!([{"name": "a", "score": 1}, 7]), "evals[1]"),
        ("evals", json!([{"name": 1, "score": 1}]), "evals[0].name"),
        (
            "evals",
            json!([{"name": "a", "score": "0.9"}]),
            "evals[0].score",
        ),
        (
            "evals",
            json!([{"name": "a", "score": 0.9, "threshold": "0.8"}]),
            "evals[0].threshold",
        ),
        ("retention_class", json!(7), "retention_class"),
        ("labels", json!(["env"]), "labels"),
        ("labels", json!({"env": 1}), "labels.env"),
        (
            "labels",
            json!({"k8s.io/ns": null}),
            "labels[\"k8s.io/ns\"]",
        ),
    ];
    for (path, value, field) in cases {
        let p = assert_field(set(base(), path, value.clone()), field);
        assert!(
            matches!(p, Problem::WrongType { .. }),
            "{path} = {value}: {p:?}"
        );
    }
    // The message names field, expected and found types.
    let e = Receipt::from_json_value(set(base(), "model.name", json!(4))).expect_err("bad");
    assert_eq!(
        e.to_string(),
        "field `model.name` must be a string or null, found number"
    );
    assert_eq!(e.field(), Some("model.name"));
    // Optional fields accept null, payload fields their documented types.
    let ok = set(
        set(set(base(), "session_id", json!(null)), "model", json!(null)),
        "evals",
        json!([{"name": "a", "score": 1, "threshold": null}]),
    );
    Receipt::from_json_value(ok).expect("nulls are accepted");
    let ok = set(
        set(base(), "model.cost", json!(0.01)),
        "tools_invoked",
        json!(null),
    );
    Receipt::from_json_value(ok).expect("documented types are accepted");
}

#[test]
fn bad_values_are_named_with_the_rule() {
    let cases: Vec<(&str, Value)> = vec![
        ("event_id", json!("has space")),
        ("event_id", json!("")),
        ("event_id", json!("tab\there")),
        ("event_id", json!("ünïcode")),
        ("tenant_id", json!("acme/eu")),
        ("tenant_id", json!(".hidden")),
        ("tenant_id", json!("-dash")),
        ("app_id", json!("a\u{7f}")),
        ("kind", json!("LLM_CALL")),
        ("kind", json!("1st")),
        ("kind", json!("")),
        ("actor_type", json!("Agent")),
        ("policy_eval.decision", json!("Deny")),
        ("model.name", json!("gpt 4o")),
        ("retention_class", json!("7 years")),
        ("labels", json!({"bad key": "v"})),
        ("labels", json!({"env": "line\nbreak"})),
    ];
    for (path, value) in cases {
        let (field, problem) = field_error(set(base(), path, value.clone()));
        assert!(
            field == path || field.starts_with("labels"),
            "{path} = {value}: named {field}"
        );
        assert!(
            matches!(problem, Problem::InvalidChar { .. } | Problem::Empty),
            "{path} = {value}: {problem:?}"
        );
    }
    let e = Receipt::from_json_value(set(base(), "tenant_id", json!("acme/eu"))).expect_err("bad");
    assert_eq!(
        e.to_string(),
        "field `tenant_id` has the character '/' at byte 4; allowed: ASCII letters, digits, \
         '.', '_', '-', starting with a letter or digit"
    );
    let (field, problem) = field_error(set(base(), "evals", json!([{"name": "", "score": 1}])));
    assert_eq!((field.as_str(), problem), ("evals[0].name", Problem::Empty));
}

#[test]
fn kinds_actors_and_decisions() {
    assert_eq!(Kind::parse("llm_call").expect("built-in"), Kind::LlmCall);
    assert_eq!(
        "tool_call".parse::<Kind>().expect("built-in"),
        Kind::ToolCall
    );
    for k in Kind::BUILT_IN {
        assert_eq!(&Kind::parse(k.as_str()).expect("round trip"), k);
        assert_eq!(k.to_string(), k.as_str());
    }
    for a in ActorType::BUILT_IN {
        assert_eq!(&ActorType::parse(a.as_str()).expect("round trip"), a);
    }
    for d in Decision::BUILT_IN {
        assert_eq!(&Decision::parse(d.as_str()).expect("round trip"), d);
    }
    let custom = Kind::parse("guardrail.check").expect("custom");
    assert_eq!(custom.as_str(), "guardrail.check");
    assert!(matches!(custom, Kind::Custom(_)));
    // A custom name cannot spell a built-in: one value, one representation.
    let e = CustomKind::new("llm_call").expect_err("reserved");
    assert_eq!(
        e,
        ReceiptError::Field {
            field: "kind".into(),
            problem: Problem::Reserved {
                name: "llm_call".into()
            }
        }
    );
    // Decisions come from policy_eval.decision.
    let r = Receipt::from_json_value(set(base(), "policy_eval.decision", json!("redact")))
        .expect("custom decision");
    assert_eq!(r.header().decision().map(Decision::as_str), Some("redact"));
}

// ---------------------------------------------------------------- JSON text errors

#[test]
fn json_syntax_errors_carry_line_and_column() {
    let text = "{\n  \"event_id\": \"e\",\n  \"tenant_id\": ,\n}";
    match Receipt::from_json(text) {
        Err(ReceiptError::Json {
            line: 3,
            column,
            problem: JsonProblem::Syntax(message),
        }) => {
            assert!(column > 0);
            assert!(!message.contains("line"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let e = Receipt::from_json("{\"a\": 1} x").expect_err("trailing");
    assert!(matches!(e, ReceiptError::Json { line: 1, .. }), "{e:?}");
    let e = Receipt::from_json("").expect_err("empty");
    assert!(matches!(e, ReceiptError::Json { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("invalid JSON at line 1, column 0"),
        "{e}"
    );
    let e = Receipt::from_json("[1, 2]").expect_err("array");
    assert_eq!(e, ReceiptError::NotAnObject { found: "array" });
    let e = Receipt::from_json_bytes(b"{\"event_id\": \"\xff\"}").expect_err("bytes");
    assert_eq!(e, ReceiptError::NotUtf8 { valid_up_to: 14 });
    let e = Receipt::from_json(r#"{"n": 1e400}"#).expect_err("overflow");
    assert!(matches!(e, ReceiptError::Json { .. }), "{e:?}");
    let e = Receipt::from_json(r#"{"s": "\ud800"}"#).expect_err("lone surrogate");
    assert!(matches!(e, ReceiptError::Json { .. }), "{e:?}");
}

#[test]
fn duplicate_keys_are_refused_with_their_position() {
    let text = "{\"event_id\": \"a\",\n \"input\": {\"x\": 1, \"x\": 2}}";
    match Receipt::from_json(text) {
        Err(ReceiptError::Json {
            line: 2, problem, ..
        }) => assert_eq!(problem, JsonProblem::DuplicateKey("x".into())),
        other => panic!("{other:?}"),
    }
    let e = serde_json::from_str::<Receipt>(r#"{"event_id": "a", "event_id": "b"}"#)
        .expect_err("duplicate via serde");
    assert!(e.to_string().contains("duplicate key \"event_id\""), "{e}");
}

// ---------------------------------------------------------------- limits at their boundary

fn accepts(v: Value) -> bool {
    match Receipt::from_json_value(v) {
        Ok(_) => true,
        Err(ReceiptError::Field { .. } | ReceiptError::PayloadTooLarge { .. }) => false,
        Err(e) => panic!("unexpected error kind: {e:?}"),
    }
}

#[test]
fn id_lengths_at_the_limit() {
    for path in [
        "event_id",
        "app_id",
        "session_id",
        "parent_id",
        "subject_id",
        "model.name",
        "model.version",
        "model.provider",
        "policy_eval.policy_id",
    ] {
        assert!(
            accepts(set(base(), path, json!("x".repeat(MAX_ID_BYTES)))),
            "{path}"
        );
        let p = assert_field(set(base(), path, json!("x".repeat(MAX_ID_BYTES + 1))), path);
        assert_eq!(
            p,
            Problem::TooLong {
                len: MAX_ID_BYTES + 1,
                max: MAX_ID_BYTES
            }
        );
    }
    assert!(accepts(set(
        base(),
        "tenant_id",
        json!("t".repeat(MAX_TENANT_ID_BYTES))
    )));
    assert_field(
        set(
            base(),
            "tenant_id",
            json!("t".repeat(MAX_TENANT_ID_BYTES + 1)),
        ),
        "tenant_id",
    );
    assert!(accepts(set(
        base(),
        "retention_class",
        json!("R".repeat(MAX_NAME_BYTES))
    )));
    assert_field(
        set(
            base(),
            "retention_class",
            json!("R".repeat(MAX_NAME_BYTES + 1)),
        ),
        "retention_class",
    );
    for path in ["kind", "actor_type", "policy_eval.decision"] {
        assert!(
            accepts(set(base(), path, json!("c".repeat(MAX_NAME_BYTES)))),
            "{path}"
        );
        let p = assert_field(
            set(base(), path, json!("c".repeat(MAX_NAME_BYTES + 1))),
            path,
        );
        assert!(matches!(p, Problem::TooLong { .. }), "{path}: {p:?}");
    }
}

#[test]
fn labels_at_the_limit() {
    let labels = |n: usize| -> Value {
        Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect())
    };
    assert!(accepts(set(base(), "labels", labels(MAX_LABELS))));
    let p = assert_field(set(base(), "labels", labels(MAX_LABELS + 1)), "labels");
    assert_eq!(
        p,
        Problem::TooMany {
            count: MAX_LABELS + 1,
            max: MAX_LABELS
        }
    );
    let key = "k".repeat(MAX_LABEL_KEY_BYTES);
    assert!(accepts(set(base(), "labels", json!({ key: "v" }))));
    let key = "k".repeat(MAX_LABEL_KEY_BYTES + 1);
    let (field, p) = field_error(set(base(), "labels", json!({ key.clone(): "v" })));
    assert_eq!(field, format!("labels.{key}"));
    assert!(matches!(p, Problem::TooLong { .. }));
    let value = "é".repeat(MAX_LABEL_VALUE_BYTES / 2);
    assert!(accepts(set(base(), "labels", json!({ "k": value }))));
    assert!(
        accepts(set(base(), "labels", json!({ "k": "" }))),
        "empty value"
    );
    let p = assert_field(
        set(
            base(),
            "labels",
            json!({ "k": "v".repeat(MAX_LABEL_VALUE_BYTES + 1) }),
        ),
        "labels.k",
    );
    assert_eq!(
        p,
        Problem::TooLong {
            len: MAX_LABEL_VALUE_BYTES + 1,
            max: MAX_LABEL_VALUE_BYTES
        }
    );
}

fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!([v]);
    }
    v
}

#[test]
fn nesting_depth_at_the_limit() {
    // The event object is level 1, so its member may nest MAX_JSON_DEPTH - 1 arrays.
    let ok = set(base(), "input", nested(MAX_JSON_DEPTH - 1));
    let too_deep = set(base(), "input", nested(MAX_JSON_DEPTH));
    assert!(accepts(ok.clone()));
    let p = assert_field(
        too_deep.clone(),
        &format!("input{}", "[0]".repeat(MAX_JSON_DEPTH - 1)),
    );
    assert_eq!(
        p,
        Problem::TooDeep {
            max: MAX_JSON_DEPTH
        }
    );
    // Same boundary from text, with a position.
    Receipt::from_json(&ok.to_string()).expect("depth 64 text");
    match Receipt::from_json(&too_deep.to_string()) {
        Err(ReceiptError::Json {
            line: 1,
            column,
            problem: JsonProblem::TooDeep {
                max: MAX_JSON_DEPTH,
            },
        }) => assert!(column > 0),
        other => panic!("{other:?}"),
    }
    // Far beyond serde_json's own recursion limit: still a clean error, no stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        Receipt::from_json(&deep),
        Err(ReceiptError::Json {
            problem: JsonProblem::TooDeep { .. },
            ..
        })
    ));
}

#[test]
fn payload_size_at_the_limit() {
    // {"input":"…"} is 12 bytes plus the string.
    let fill = |n: usize| set(base(), "input", json!("x".repeat(n)));
    let r = Receipt::from_json_value(fill(MAX_PAYLOAD_BYTES - 12)).expect("max payload");
    assert_eq!(r.payload().len(), MAX_PAYLOAD_BYTES);
    // And it survives the trip through SDK JSON text.
    assert_eq!(Receipt::from_json(&r.to_sdk_json()).as_ref(), Ok(&r));
    assert_eq!(
        Receipt::from_json_value(fill(MAX_PAYLOAD_BYTES - 11)),
        Err(ReceiptError::PayloadTooLarge {
            len: MAX_PAYLOAD_BYTES + 1,
            max: MAX_PAYLOAD_BYTES
        })
    );
    // The limit is on canonical bytes: escapes count as written.
    let escaped = Receipt::from_json_value(set(
        base(),
        "input",
        json!("\n".repeat(MAX_PAYLOAD_BYTES / 2)),
    ));
    assert!(matches!(escaped, Err(ReceiptError::PayloadTooLarge { .. })));
}

#[test]
fn event_text_size_at_the_limit() {
    let event = base().to_string();
    let pad = |total: usize| format!("{event}{}", " ".repeat(total - event.len()));
    Receipt::from_json(&pad(MAX_EVENT_JSON_BYTES)).expect("max size");
    assert_eq!(
        Receipt::from_json(&pad(MAX_EVENT_JSON_BYTES + 1)),
        Err(ReceiptError::EventTooLarge {
            len: MAX_EVENT_JSON_BYTES + 1,
            max: MAX_EVENT_JSON_BYTES
        })
    );
    // Checked before parsing: garbage over the limit reports the size.
    let garbage = vec![b'{'; MAX_EVENT_JSON_BYTES + 1];
    assert!(matches!(
        Receipt::from_json_bytes(&garbage),
        Err(ReceiptError::EventTooLarge { .. })
    ));
}

#[test]
fn integers_at_the_exact_range() {
    let max = i64::try_from(MAX_SAFE_INTEGER).expect("fits");
    assert_eq!(
        payload_of(set(base(), "n", json!(max))),
        format!("{{\"n\":{max}}}")
    );
    assert!(accepts(set(base(), "n", json!(-max))));
    // Beyond 2^53 - 1 an integer is accepted only when canonical form prints it as written.
    assert!(
        accepts(set(base(), "n", json!(max + 1))),
        "2^53 is a double"
    );
    let p = assert_field(
        set(base(), "model.cost.tokens", json!(max + 2)),
        "model.cost.tokens",
    );
    assert_eq!(
        p,
        Problem::InexactInteger {
            value: "9007199254740993".into()
        }
    );
    assert!(accepts(set(base(), "n", json!(-max - 1))));
    assert_field(set(base(), "n", json!(-max - 2)), "n");
    assert_field(set(base(), "a", json!([0, [u64::MAX]])), "a[1][0]");
    assert_field(set(base(), "n", json!(1_u64 << 60)), "n");
    assert_eq!(
        payload_of(set(base(), "n", json!(1_152_921_504_606_847_000_u64))),
        r#"{"n":1152921504606847000}"#
    );
    // A large double prints as integer digits and reads back as the same receipt.
    let r =
        Receipt::from_json_value(set(base(), "n", json!(7.185_157_054_087_584e16))).expect("ok");
    assert_eq!(r.payload_str(), r#"{"n":71851570540875840}"#);
    assert_eq!(Receipt::from_json(&r.to_sdk_json()).as_ref(), Ok(&r));
    // An integer written as a float is a double, and is kept as one.
    assert!(accepts(set(
        base(),
        "n",
        json!(9_007_199_254_740_993.0_f64)
    )));
}

// ---------------------------------------------------------------- timestamps

#[test]
fn timestamps_parse_strictly_and_print_in_utc() {
    let ns = |s: &str| Timestamp::parse_rfc3339(s).map(Timestamp::as_unix_nanos);
    assert_eq!(ns("1970-01-01T00:00:00Z"), Ok(0));
    assert_eq!(ns("1970-01-01T01:00:00+01:00"), Ok(0));
    assert_eq!(ns("1969-12-31T19:00:00-05:00"), Ok(0));
    assert_eq!(ns("1970-01-01t00:00:00.5z"), Ok(500_000_000));
    assert_eq!(ns("1970-01-01 00:00:00.000000001Z"), Ok(1));
    assert_eq!(ns("1969-12-31T23:59:59.999999999Z"), Ok(-1));
    assert_eq!(ns("2024-02-29T12:00:00Z"), Ok(1_709_208_000_000_000_000));
    assert_eq!(ns("2000-02-29T00:00:00Z"), Ok(951_782_400_000_000_000));
    assert_eq!(ns("2262-04-11T23:47:16.854775807Z"), Ok(i64::MAX));
    assert_eq!(ns("1677-09-21T00:12:43.145224192Z"), Ok(i64::MIN));
    assert_eq!(
        ns("2262-04-11T23:47:16.854775808Z"),
        Err(Problem::TimestampOutOfRange)
    );
    assert_eq!(
        ns("1677-09-21T00:12:43.145224191Z"),
        Err(Problem::TimestampOutOfRange)
    );
    assert_eq!(
        ns("9999-12-31T23:59:59Z"),
        Err(Problem::TimestampOutOfRange)
    );
    for (bad, at) in [
        ("2026-01-01T00:00:00", 19),             // no offset
        ("2026-01-01", 10),                      // date only
        ("2026-01-01T00:00Z", 16),               // no seconds
        ("2026-13-01T00:00:00Z", 5),             // month
        ("2026-02-29T00:00:00Z", 8),             // not a leap year
        ("1900-02-29T00:00:00Z", 8),             // not a leap year either
        ("2026-04-31T00:00:00Z", 8),             // April has 30 days
        ("2026-01-01T24:00:00Z", 11),            // hour
        ("2026-01-01T00:60:00Z", 14),            // minute
        ("2026-12-31T23:59:60Z", 17),            // leap second
        ("2026-01-01T00:00:00.Z", 20),           // empty fraction
        ("2026-01-01T00:00:00.1234567891Z", 29), // 10 digits
        ("2026-01-01T00:00:00+0100", 22),        // offset without colon
        ("2026-01-01T00:00:00+24:00", 20),       // offset hours
        ("2026-01-01T00:00:00+01:60", 23),       // offset minutes
        ("2026-01-01T00:00:00Z ", 20),           // trailing
        ("2026-01-01_00:00:00Z", 10),            // separator
        ("+2026-01-01T00:00:00Z", 0),            // expanded year
        ("２026-01-01T00:00:00Z", 0),            // not ASCII
    ] {
        match Timestamp::parse_rfc3339(bad) {
            Err(Problem::BadTimestamp { at: got, .. }) => assert_eq!(got, at, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let p = assert_field(set(base(), "ts", json!("2026-01-01T00:00:00")), "ts");
    assert_eq!(
        p.to_string(),
        "is not an RFC 3339 timestamp with offset: expected 'Z' or a UTC offset like +01:00 at byte 19"
    );
    for (nanos, text) in [
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (250_000_000, "1970-01-01T00:00:00.250Z"),
        (1_000, "1970-01-01T00:00:00.000001Z"),
        (i64::MAX, "2262-04-11T23:47:16.854775807Z"),
        (i64::MIN, "1677-09-21T00:12:43.145224192Z"),
    ] {
        let t = Timestamp::from_unix_nanos(nanos);
        assert_eq!(t.to_rfc3339(), text);
        assert_eq!(Timestamp::parse_rfc3339(text), Ok(t));
    }
}

// ---------------------------------------------------------------- header decoding

fn sample_header() -> (ReceiptHeader, Vec<u8>) {
    let r = fixture_receipt("llm_call");
    let bytes = r.header().encode();
    (r.header().clone(), bytes)
}

fn decode_problem(bytes: &[u8]) -> (usize, HeaderProblem) {
    match ReceiptHeader::decode(bytes) {
        Err(ReceiptError::Header { offset, problem }) => (offset, problem),
        other => panic!("expected a header error, got {other:?}"),
    }
}

#[test]
fn header_decode_refuses_truncation_and_trailing_bytes() {
    let (_, bytes) = sample_header();
    for len in 0..bytes.len() {
        let (_, p) = decode_problem(&bytes[..len]);
        assert!(
            matches!(p, HeaderProblem::Truncated | HeaderProblem::Field { .. }),
            "prefix of {len}: {p:?}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        decode_problem(&long),
        (bytes.len(), HeaderProblem::TrailingBytes { count: 1 })
    );
}

#[test]
fn header_decode_refuses_non_canonical_bytes() {
    let base = Receipt::from_json_value(base()).expect("valid");
    let bytes = base.header().encode();
    // version
    let mut b = bytes.clone();
    b[0] = 2;
    assert_eq!(
        decode_problem(&b),
        (0, HeaderProblem::UnsupportedVersion(2))
    );
    // undefined flag bits
    let mut b = bytes.clone();
    b[2] = 0x80;
    assert_eq!(decode_problem(&b), (1, HeaderProblem::UnknownFlags(0x8000)));
    // undefined tags
    let mut b = bytes.clone();
    b[11] = 7;
    assert_eq!(
        decode_problem(&b),
        (
            11,
            HeaderProblem::UnknownTag {
                field: "kind",
                tag: 7
            }
        )
    );
    let mut b = bytes.clone();
    b[12] = 0xFF;
    assert_eq!(
        decode_problem(&b),
        (
            12,
            HeaderProblem::UnknownTag {
                field: "actor_type",
                tag: 0xFF
            }
        )
    );
    // a custom kind that spells a built-in
    let mut b = bytes[..11].to_vec();
    b.extend_from_slice(&[0, 8]);
    b.extend_from_slice(b"llm_call");
    b.extend_from_slice(&bytes[12..]);
    let (_, p) = decode_problem(&b);
    assert!(
        matches!(
            p,
            HeaderProblem::Field {
                field: "kind",
                problem: Problem::Reserved { .. }
            }
        ),
        "{p:?}"
    );
    // a tenant id that breaks its rule
    let mut b = bytes.clone();
    b[14] = b'/';
    assert_eq!(
        decode_problem(&b),
        (
            13,
            HeaderProblem::Field {
                field: "tenant_id",
                problem: Problem::InvalidChar {
                    at: 0,
                    found: '/',
                    allowed: "ASCII letters, digits, '.', '_', '-', starting with a letter or digit"
                }
            }
        )
    );
    // an empty event id
    let mut b = bytes[..18].to_vec();
    b.push(0);
    b.extend_from_slice(&bytes[24..]);
    assert!(matches!(
        decode_problem(&b).1,
        HeaderProblem::Field {
            field: "event_id",
            problem: Problem::Empty
        }
    ));
}

#[test]
fn header_decode_refuses_bad_labels() {
    let prefix = {
        let r = Receipt::from_json_value(base()).expect("valid");
        let mut b = r.header().encode();
        b.pop(); // the label count
        b
    };
    let label = |k: &[u8], v: &[u8]| -> Vec<u8> {
        let mut out = vec![u8::try_from(k.len()).expect("short")];
        out.extend_from_slice(k);
        out.extend_from_slice(&u16::try_from(v.len()).expect("short").to_le_bytes());
        out.extend_from_slice(v);
        out
    };
    let with = |labels: &[Vec<u8>]| -> Vec<u8> {
        let mut b = prefix.clone();
        b.push(u8::try_from(labels.len()).expect("few"));
        for l in labels {
            b.extend_from_slice(l);
        }
        b
    };
    let good = with(&[label(b"a", b"1"), label(b"b", b"2")]);
    let h = ReceiptHeader::decode(&good).expect("sorted labels");
    assert_eq!(h.labels().len(), 2);
    assert_eq!(h.encode(), good);
    let unsorted = with(&[label(b"b", b"2"), label(b"a", b"1")]);
    assert_eq!(decode_problem(&unsorted).1, HeaderProblem::LabelOrder);
    let repeated = with(&[label(b"a", b"1"), label(b"a", b"2")]);
    assert_eq!(decode_problem(&repeated).1, HeaderProblem::LabelOrder);
    let not_utf8 = with(&[label(b"a", b"\xC3")]);
    assert!(matches!(
        decode_problem(&not_utf8).1,
        HeaderProblem::Field {
            field: "labels",
            problem: Problem::NotUtf8
        }
    ));
    let control = with(&[label(b"a", b"\x07")]);
    assert!(matches!(
        decode_problem(&control).1,
        HeaderProblem::Field {
            field: "labels",
            problem: Problem::InvalidChar { .. }
        }
    ));
    let mut too_many = prefix.clone();
    too_many.push(u8::try_from(MAX_LABELS + 1).expect("small"));
    assert!(matches!(
        decode_problem(&too_many).1,
        HeaderProblem::Field {
            field: "labels",
            problem: Problem::TooMany { .. }
        }
    ));
}

// ---------------------------------------------------------------- builder and from_parts

#[test]
fn builder_makes_the_same_receipt_as_json() {
    let built = Receipt::builder(
        "acme-insurance",
        "evt_01J9Z3M0A2C4E6G8J0L2N4Q6S8",
        Kind::PolicyDecision,
    )
    .app_id("claims-assistant")
    .actor_type(ActorType::System)
    .event_time(Timestamp::parse_rfc3339("2026-03-01T07:04:07-05:00").expect("ts"))
    .session_id("sess_7f3a2c9e")
    .parent_id("evt_01J9Z3K7Q8M2A5B6C7D8E9F0G1")
    .subject_id("subj_5d41402abc4b2a76")
    .model_name("claude-3-5-sonnet")
    .model_version("20241022")
    .model_provider("anthropic")
    .policy_id("payments-limit-v2")
    .decision(Decision::Deny)
    .policy_reason(
        json!({"rule": "max_auto_payment", "limit": 10000, "observed": 18250,
                          "message": "amount over automatic payment limit"}),
    )
    .policy_reason(json!({"rule": "requires_adjuster",
                          "message": "payments over 10k need a human adjuster"}))
    .retention_class("regulatory-10y")
    .label("severity", "high")
    .label("env", "prod")
    .input(json!({"action": "issue_payment", "amount": {"currency": "EUR", "value": 18250.0}}))
    .output(Value::Null)
    .extra("tools_invoked_count", json!(0))
    .build()
    .expect("valid");
    let from_json = Receipt::from_json_value(set(
        serde_json::from_str(&fixture("policy_denial")).expect("fixture"),
        "tools_invoked_count",
        json!(0),
    ))
    .expect("valid");
    // The fixture carries empty `tools_invoked`, `evals` and `approvals` arrays; the builder
    // leaves empty lists out, so compare the header and the payload without them.
    assert_eq!(built.header(), from_json.header());
    let mut payload: Value = serde_json::from_slice(from_json.payload()).expect("JSON");
    let obj = payload.as_object_mut().expect("object");
    obj.remove("tools_invoked");
    obj.remove("evals");
    obj["policy_eval"]
        .as_object_mut()
        .expect("object")
        .remove("approvals");
    let built_payload: Value = serde_json::from_slice(built.payload()).expect("JSON");
    assert_eq!(built_payload, payload);

    let r = Receipt::builder("t", "e", Kind::Evaluation)
        .app_id("a")
        .actor_type(ActorType::parse("evaluator").expect("custom"))
        .event_time(Timestamp::UNIX_EPOCH)
        .eval("faithfulness", 0.5, Some(0.8))
        .eval("latency", 12.0, None)
        .tool_invoked(json!({"name": "search"}))
        .approval(json!({"by": "x"}))
        .model_params(json!({"temperature": 0}))
        .model_cost(json!(0.25))
        .build()
        .expect("valid");
    assert_eq!(
        r.payload_str(),
        r#"{"evals":[{"name":"faithfulness","score":0.5,"threshold":0.8},{"name":"latency","score":12}],"model":{"cost":0.25,"params":{"temperature":0}},"policy_eval":{"approvals":[{"by":"x"}]},"tools_invoked":[{"name":"search"}]}"#
    );
}

#[test]
fn builder_applies_the_same_validation() {
    let ok = || {
        Receipt::builder("acme", "e1", Kind::LlmCall)
            .app_id("app")
            .actor_type(ActorType::Agent)
            .event_time(Timestamp::UNIX_EPOCH)
    };
    ok().build().expect("valid");
    let missing = Receipt::builder("acme", "e1", Kind::LlmCall)
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::UNIX_EPOCH)
        .build();
    assert_eq!(missing.expect_err("no app").field(), Some("app_id"));
    let missing = Receipt::builder("acme", "e1", Kind::LlmCall)
        .app_id("a")
        .event_time(Timestamp::UNIX_EPOCH)
        .build();
    assert_eq!(missing.expect_err("no actor").field(), Some("actor_type"));
    let e = Receipt::builder("acme corp", "e1", Kind::LlmCall)
        .app_id("a")
        .build()
        .expect_err("bad tenant");
    assert_eq!(e.field(), Some("tenant_id"));
    let e = ok().label("bad key", "v").build().expect_err("label");
    assert_eq!(e.field(), Some("labels[\"bad key\"]"));
    let e = ok()
        .model_name("x".repeat(MAX_ID_BYTES + 1))
        .build()
        .expect_err("long");
    assert_eq!(e.field(), Some("model.name"));
    let e = ok()
        .eval("nan", f64::NAN, None)
        .build()
        .expect_err("NaN score");
    assert_eq!(e.field(), Some("evals[0].score"));
    for key in ["input", "model", "event_id", "labels"] {
        let e = ok().extra(key, json!(1)).build().expect_err("reserved");
        assert_eq!(
            e,
            ReceiptError::Field {
                field: key.into(),
                problem: Problem::ReservedField
            }
        );
    }
}

#[test]
fn from_parts_accepts_only_the_canonical_payload() {
    let r = fixture_receipt("llm_call");
    let h = r.header();
    assert_eq!(Receipt::from_parts(h, r.payload()).as_ref(), Ok(&r));
    // Any other spelling of the same payload is refused.
    let spaced = r.payload_str().replacen(':', ": ", 1);
    assert_eq!(
        Receipt::from_parts(h, spaced.as_bytes()),
        Err(ReceiptError::PayloadNotCanonical)
    );
    assert_eq!(
        Receipt::from_parts(h, br#"{"model":{}}"#),
        Err(ReceiptError::PayloadNotCanonical),
        "an empty model object is never canonical"
    );
    // Header fields do not belong in a payload.
    let e = Receipt::from_parts(h, br#"{"event_id":"x"}"#).expect_err("header field");
    assert_eq!(e.field(), Some("event_id"));
    let e = Receipt::from_parts(h, br#"{"model":{"name":"x"}}"#).expect_err("model.name");
    assert_eq!(
        e,
        ReceiptError::Field {
            field: "model.name".into(),
            problem: Problem::InPayload
        }
    );
    let e = Receipt::from_parts(h, br#"{"model":5}"#).expect_err("type");
    assert_eq!(e.field(), Some("model"));
    assert!(matches!(
        Receipt::from_parts(h, b"[]"),
        Err(ReceiptError::NotAnObject { .. })
    ));
    assert!(matches!(
        Receipt::from_parts(h, b"{"),
        Err(ReceiptError::Json { .. })
    ));
    assert!(matches!(
        Receipt::from_parts(h, &vec![b' '; MAX_PAYLOAD_BYTES + 1]),
        Err(ReceiptError::PayloadTooLarge { .. })
    ));
    // The header alone, in the SDK shape, as a reader of a shredded receipt shows it.
    let shown = h.to_sdk_json_value();
    assert_eq!(
        shown["model"],
        json!({"name": "gpt-4o", "version": "2024-08-06", "provider": "openai"})
    );
    assert!(shown.get("input").is_none());
}

#[test]
fn debug_output_never_shows_the_payload() {
    let r = fixture_receipt("llm_call");
    let debug = format!("{r:?}");
    assert!(debug.contains("evt_01J9Z3K7Q8M2A5B6C7D8E9F0G1"));
    assert!(debug.contains("payload_len"));
    assert!(!debug.contains("parking lot"), "{debug}");
}

#[test]
fn labels_come_back_sorted() {
    let r = Receipt::from_json_value(set(
        base(),
        "labels",
        json!({"zeta": "1", "Alpha": "2", "alpha": "3", "0": "4"}),
    ))
    .expect("valid");
    let expected: BTreeMap<String, String> =
        [("0", "4"), ("Alpha", "2"), ("alpha", "3"), ("zeta", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    assert_eq!(r.header().labels(), &expected);
}

// ---------------------------------------------------------------- fuzz entry point

#[test]
fn fuzz_entry_point_survives_mutated_fixtures() {
    // A seeded xorshift: deterministic, no extra dependency.
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut inputs: Vec<Vec<u8>> = FIXTURES.iter().map(|n| fixture(n).into_bytes()).collect();
    for name in FIXTURES {
        inputs.push(fixture_receipt(name).header().encode());
    }
    let seeds = inputs.clone();
    for seed in &seeds {
        for _ in 0..300 {
            let mut m = seed.clone();
            let len = u64::try_from(m.len()).expect("len");
            let at = usize::try_from(next() % len).expect("index");
            match next() % 4 {
                0 => m[at] ^= 1 << (next() % 8),
                1 => m.truncate(at),
                2 => m.insert(
                    at,
                    b"{}[],:\"\\0e-9"[usize::try_from(next() % 12).expect("i")],
                ),
                _ => {
                    m.remove(at);
                }
            }
            inputs.push(m);
        }
    }
    for _ in 0..500 {
        let len = usize::try_from(next() % 64).expect("len");
        inputs.push((0..len).map(|_| next().to_le_bytes()[0]).collect());
    }
    for input in &inputs {
        fuzz_from_json(input);
    }
}
