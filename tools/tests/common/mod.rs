//! Helpers shared by the tests of `tail`, `load` and `import`: run the built binary, read its
//! output, make SDK events.

#![allow(dead_code, reason = "each test file uses a part of these")]

pub mod python;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

/// Runs `trailmix-db` with `args` and waits for it.
pub fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailmix-db"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run trailmix-db")
}

/// Runs `trailmix-db` with `args`, feeding `input` on stdin.
pub fn tool_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailmix-db"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run trailmix-db");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Stdout then stderr, for assertion messages and text checks.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The exit code.
pub fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

/// Stdout as one JSON document.
pub fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(output)))
}

/// Stdout as JSON lines: every line must be one JSON object.
pub fn jsonl(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line {line:?} is not JSON: {e}"));
            assert!(value.is_object(), "{line}");
            value
        })
        .collect()
}

/// A path as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// An SDK event of `tenant` numbered `n`: every third one a policy denial.
pub fn event(tenant: &str, n: u64) -> Value {
    json!({
        "event_id": format!("evt-{tenant}-{n}"),
        "tenant_id": tenant,
        "app_id": "claims-bot",
        "kind": "llm_call",
        "actor_type": "agent",
        "ts": format!("2026-03-01T12:{:02}:{:02}Z", (n / 60) % 60, n % 60),
        "session_id": format!("sess-{}", n / 5),
        "model": {"name": "gpt-4o", "version": "2024-08-06", "params": {"temperature": 0.2}},
        "policy_eval": {
            "policy_id": "pii-guard-v3",
            "decision": if n.is_multiple_of(3) { "deny" } else { "allow" },
            "reasons": [],
        },
        "input": {"prompt": format!("question {n}")},
        "output": {"text": format!("answer {n}")},
    })
}

/// `events` as JSON lines, each ended by `line_end`.
pub fn jsonl_text(events: &[Value], line_end: &str) -> String {
    events.iter().fold(String::new(), |mut out, e| {
        let _ = write!(out, "{e}{line_end}");
        out
    })
}

/// Writes `events` as JSON lines.
pub fn write_jsonl(path: &Path, events: &[Value]) {
    std::fs::write(path, jsonl_text(events, "\n")).expect("write JSONL");
}

/// The event ids of `tail --json` / `query --json` lines.
pub fn event_ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l["event"]["event_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no event id in {l}"))
                .to_owned()
        })
        .collect()
}

/// Receipts in the store, as `inspect --json` counts them (read-only, lock-free).
pub fn receipts_in(dir: &Path) -> u64 {
    let output = tool(&["inspect", arg(dir), "--json"]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    json(&output)["receipts"].as_u64().expect("receipts")
}

/// Asserts that `verify` passes.
pub fn assert_verifies(dir: &Path) {
    let output = tool(&["verify", arg(dir)]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
}

/// A minimal tool-call receipt of tenant `acme` numbered `n`, for tests that build a store
/// through the library.
pub fn tool_call(n: u64) -> trailmix_db::receipt::Receipt {
    use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
    Receipt::builder("acme", format!("evt-{n}"), Kind::ToolCall)
        .app_id("agent")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_700_000_000_000_000_000))
        .build()
        .expect("valid receipt")
}

/// A demo store of `receipts` receipts (six tenants, one thread) written at `dir`: the
/// tenant and the data subject of the first receipt that names one, and the `query --json`
/// lines of its receipts.
pub fn demo_with_subject(dir: &Path, receipts: u64) -> (String, String, Vec<Value>) {
    let count = receipts.to_string();
    let demo = tool(&[
        "demo",
        "--dir",
        arg(dir),
        "--receipts",
        &count,
        "--threads",
        "1",
    ]);
    assert_eq!(code(&demo), Some(0), "{}", text(&demo));
    let lines = jsonl(&tool(&[
        "query",
        arg(dir),
        &format!("limit={count}"),
        "--json",
    ]));
    let target = lines
        .iter()
        .find(|l| l["event"]["subject_id"].is_string())
        .expect("the demo writes receipts with subjects");
    let field = |name: &str| {
        target["event"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name}"))
            .to_owned()
    };
    (field("tenant_id"), field("subject_id"), lines)
}
