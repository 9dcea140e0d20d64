//! Guards `trailmix-db import --from FORMAT` on histories written by the Python libraries
//! themselves (pinned, in a venv under target/): counts, mapped fields, provenance in the
//! payload, the import record, `verify`, idempotent re-runs, and that a source whose own
//! chain fails (one changed byte, two lines swapped, a wrong or missing HMAC key) is refused
//! with the line the library itself names, writing nothing.

mod common;

use std::path::{Path, PathBuf};

use common::python::{run_python, venv_python};
use common::{arg, assert_verifies, code, json, jsonl, receipts_in, text, tool};
use serde_json::Value;

/// The Python libraries, pinned: one venv serves every format.
const PACKAGES: &[&str] = &[
    "llm-audit-trail==0.1.0",
    "ai-audit-trail==0.4.7",
    "audittrail==1.0.1",
];

/// Writes an llm-audit-trail ledger through `AuditLogger` and the governance helpers:
/// argv = path, number of events, HMAC key ("" for a plain SHA-256 chain).
const WRITE_LLM_LEDGER: &str = r#"
import sys
from llm_audit_trail import AuditLogger, record_approval, record_waiver, record_attestation
path, count, key = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
log = AuditLogger(path=path, system="claims-api", actor="svc-claims", key=key)
scope = {"model_id": "acme/claims-llm-7b", "dataset_id": "claims-2026q1", "deployment_id": "prod-eu"}
for n in range(count):
    step = n % 10
    if step == 0:
        record_approval(log, owner="dana@example.com", rationale=f"eval suite {n} passed",
                        scope=scope, constraints={"max_tokens": 512}, references=[f"JIRA-{n}"])
    elif step == 1:
        record_waiver(log, owner="lee@example.com", rationale="latency control waived",
                      scope=scope, waived_controls=["latency-p99"], time_bound_until="2026-12-31")
    elif step == 2:
        record_attestation(log, owner="dana@example.com", statement="no PII in training set",
                           scope=scope)
    elif step == 3:
        log.emit("FineTuneStart", {"lr": 0.0001, "epochs": 3, "note": "caf\u00e9 \u2713"},
                 model_id="acme/claims-llm-7b", dataset_id="claims-2026q1")
    elif step == 4:
        log.emit("Evaluation", {"accuracy": 0.1 + 0.2, "f1": 1e-7, "big": 12345678901234567890},
                 model_id="acme/claims-llm-7b")
    elif step in (5, 7):
        log.emit("InferenceRequest", {"prompt": f"Is claim {n} covered?", "temperature": 0.2,
                                      "patient": "J. Doe"},
                 model_id="acme/claims-llm-7b", deployment_id="prod-eu")
    elif step in (6, 8):
        log.emit("InferenceResponse", {"text": f"Claim {n}: covered", "latency_ms": 41.5},
                 model_id="acme/claims-llm-7b", deployment_id="prod-eu")
    else:
        log.emit("Checkpoint", {"step": n, "loss": 1.0 / (n + 1)}, model_id="acme/claims-llm-7b")
"#;

/// Prints the library's own verdict on a ledger as JSON: argv = path, HMAC key or "".
const VERIFY_LLM_LEDGER: &str = r#"
import json, sys
from llm_audit_trail import verify_log
ok, report = verify_log(sys.argv[1], key=sys.argv[2] or None)
print(json.dumps({"ok": ok, "line": report.get("line"), "error": report.get("error")}))
"#;

fn python() -> PathBuf {
    venv_python(PACKAGES)
}

/// Writes an llm-audit-trail ledger of `count` events at `path`.
fn write_llm_ledger(python: &Path, path: &Path, count: u32, key: &str) {
    run_python(
        python,
        WRITE_LLM_LEDGER,
        &[arg(path), &count.to_string(), key],
    );
}

/// The library's own `verify_log` verdict: `(ok, line)`.
fn library_verdict(python: &Path, path: &Path, key: &str) -> (bool, Option<u64>) {
    let out = run_python(python, VERIFY_LLM_LEDGER, &[arg(path), key]);
    let verdict: Value = serde_json::from_str(out.trim()).expect("verdict JSON");
    (
        verdict["ok"].as_bool().expect("ok"),
        verdict["line"].as_u64(),
    )
}

fn ledger_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read ledger")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn import_llm(dir: &Path, ledger: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "import",
        arg(dir),
        arg(ledger),
        "--from",
        "llm-audit-trail",
        "--json",
    ];
    args.extend_from_slice(extra);
    tool(&args)
}

/// `tail --json` lines of the store, decrypted.
fn stored(dir: &Path) -> Vec<Value> {
    let output = tool(&["tail", arg(dir), "--json"]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    jsonl(&output)
}

/// Asserts the mapping, provenance and import record of the `acme` ledger (`lines`), the first
/// import into the store whose receipts are `receipts`.
fn assert_acme_mapped(receipts: &[Value], lines: &[String]) {
    let source: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("ledger line"))
        .collect();
    // Event 5 is an inference request, event 0 an approval, event 1 a waiver.
    let request = &receipts[5]["event"];
    assert_eq!(
        request["event_id"],
        format!("lat:{}", source[5]["event_id"].as_str().expect("id"))
    );
    assert_eq!(request["tenant_id"], "acme");
    assert_eq!(request["kind"], "llm_call");
    assert_eq!(request["app_id"], "claims-api");
    assert_eq!(request["actor_type"], "system");
    assert_eq!(request["model"]["name"], "acme/claims-llm-7b");
    assert_eq!(request["labels"]["source.event_type"], "InferenceRequest");
    let ts = |v: &Value| {
        trailmix_db::receipt::Timestamp::parse_rfc3339(v.as_str().expect("ts")).expect("ts")
    };
    assert_eq!(ts(&request["ts"]), ts(&source[5]["timestamp"]));
    let provenance = &request["source"];
    assert_eq!(provenance["format"], "llm-audit-trail");
    assert_eq!(provenance["line"], 6);
    assert_eq!(provenance["curr_hash"], source[5]["curr_hash"]);
    assert_eq!(provenance["prev_hash"], source[4]["curr_hash"]);
    assert_eq!(provenance["record"], lines[5].as_str());
    assert_eq!(receipts[0]["event"]["kind"], "approval");
    assert_eq!(receipts[0]["event"]["actor_type"], "human");
    assert_eq!(receipts[0]["event"]["policy_eval"]["decision"], "approved");
    assert_eq!(receipts[1]["event"]["kind"], "policy_decision");
    assert_eq!(receipts[1]["event"]["policy_eval"]["decision"], "waived");
    // Nothing the source hashed is in a clear header: no source hash in any label or id.
    for receipt in &receipts[..300] {
        let labels = receipt["event"]["labels"].to_string();
        assert!(
            !labels.contains(
                receipt["event"]["source"]["curr_hash"]
                    .as_str()
                    .expect("hash")
            )
        );
    }

    let import = &receipts[300]["event"];
    assert_eq!(import["kind"], "lifecycle");
    assert_eq!(import["tenant_id"], "acme");
    assert_eq!(import["app_id"], "trailmix-db");
    assert_eq!(import["labels"]["import.format"], "llm-audit-trail");
    assert_eq!(import["import"]["source_file"], "acme.jsonl");
    assert_eq!(import["import"]["records"], 300);
    assert_eq!(import["import"]["imported"], 300);
    assert_eq!(
        import["import"]["first_source_hash"],
        source[0]["curr_hash"]
    );
    assert_eq!(
        import["import"]["last_source_hash"],
        source[299]["curr_hash"]
    );
    assert_eq!(receipts[501]["event"]["tenant_id"], "globex");
    assert_eq!(receipts[501]["event"]["import"]["verified"], "hmac-sha256");
}

#[test]
fn llm_audit_trail_history_is_imported_with_provenance_and_once() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let acme = tmp.path().join("acme.jsonl");
    let globex = tmp.path().join("globex.jsonl");
    let key_file = tmp.path().join("hmac.key");
    write_llm_ledger(&python, &acme, 300, "");
    write_llm_ledger(&python, &globex, 200, "globex-secret");
    std::fs::write(&key_file, "globex-secret\n").expect("write key");

    let first = import_llm(&dir, &acme, &["--tenant", "acme"]);
    assert_eq!(code(&first), Some(0), "{}", text(&first));
    let report = json(&first);
    assert_eq!(report["verified"], "sha256");
    assert_eq!(report["records"], 300);
    assert_eq!(report["imported"], 300);
    assert_eq!(report["already_present"], 0);
    assert_eq!(report["created"], true);
    let keyed = import_llm(
        &dir,
        &globex,
        &["--tenant", "globex", "--hmac-key-file", arg(&key_file)],
    );
    assert_eq!(code(&keyed), Some(0), "{}", text(&keyed));
    assert_eq!(json(&keyed)["verified"], "hmac-sha256");
    assert_eq!(json(&keyed)["imported"], 200);
    // 500 events and one import record per import.
    assert_eq!(receipts_in(&dir), 502);
    assert_verifies(&dir);

    assert_acme_mapped(&stored(&dir), &ledger_lines(&acme));

    // A re-run stores nothing and writes no second import record.
    let again = import_llm(&dir, &acme, &["--tenant", "acme"]);
    assert_eq!(code(&again), Some(0), "{}", text(&again));
    let report = json(&again);
    assert_eq!(report["imported"], 0);
    assert_eq!(report["already_present"], 300);
    assert_eq!(report["tenants"][0]["import_event_id"], Value::Null);
    assert_eq!(receipts_in(&dir), 502);
    // A ledger that grew since: only the new events are stored, with a new import record.
    write_llm_ledger(&python, &acme, 20, "");
    let grown = import_llm(&dir, &acme, &["--tenant", "acme"]);
    assert_eq!(code(&grown), Some(0), "{}", text(&grown));
    assert_eq!(json(&grown)["imported"], 20);
    assert_eq!(json(&grown)["already_present"], 300);
    assert_eq!(receipts_in(&dir), 523);
    assert_verifies(&dir);
}

/// Asserts that importing `ledger` is refused at `line`, with `reason` in the message, that
/// the library's own verifier names the same line, and that nothing was written.
fn assert_refused(python: &Path, ledger: &Path, key: &str, line: u64, reason: &str) {
    let (ok, library_line) = library_verdict(python, ledger, key);
    assert!(!ok, "the library accepts the ledger");
    assert_eq!(library_line, Some(line), "the library's own line");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let key_file = tmp.path().join("key");
    let mut extra = vec!["--tenant", "acme"];
    if !key.is_empty() {
        std::fs::write(&key_file, key).expect("key");
        extra.extend(["--hmac-key-file", arg(&key_file)]);
    }
    let output = import_llm(&dir, ledger, &extra);
    assert_eq!(code(&output), Some(1), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["error"]["line"], line, "{report}");
    let message = report["error"]["message"].as_str().expect("message");
    assert!(message.contains(reason), "{message}");
    assert_eq!(report["imported"], 0);
    assert!(!dir.exists(), "a refused source created the store");
}

#[test]
fn llm_audit_trail_source_that_fails_its_own_chain_is_refused_whole() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let ledger = tmp.path().join("ledger.jsonl");
    write_llm_ledger(&python, &ledger, 120, "");
    let lines = ledger_lines(&ledger);
    let write = |path: &Path, lines: &[String]| {
        std::fs::write(path, lines.join("\n") + "\n").expect("write");
    };

    // One changed byte inside line 56's details (a digit of the prompt's claim number).
    let mut edited = lines.clone();
    edited[55] = edited[55].replacen("claim 55", "claim 57", 1);
    assert_ne!(edited[55], lines[55]);
    let path = tmp.path().join("edited.jsonl");
    write(&path, &edited);
    assert_refused(&python, &path, "", 56, "hash mismatch");

    // Lines 10 and 11 swapped.
    let mut swapped = lines.clone();
    swapped.swap(9, 10);
    let path = tmp.path().join("swapped.jsonl");
    write(&path, &swapped);
    assert_refused(&python, &path, "", 10, "broken link");

    // The last line dropped is invisible to any self-contained chain (the library says so);
    // a line dropped in the middle is not.
    let mut dropped = lines.clone();
    dropped.remove(30);
    let path = tmp.path().join("dropped.jsonl");
    write(&path, &dropped);
    assert_refused(&python, &path, "", 31, "broken link");

    // An HMAC ledger: without the key, and with a wrong one.
    let keyed = tmp.path().join("keyed.jsonl");
    write_llm_ledger(&python, &keyed, 15, "right-key");
    let dir = tmp.path().join("store");
    let output = import_llm(&dir, &keyed, &["--tenant", "acme"]);
    assert_eq!(code(&output), Some(1), "{}", text(&output));
    assert_eq!(json(&output)["error"]["line"], 1);
    assert!(
        text(&output).contains("--hmac-key-file"),
        "{}",
        text(&output)
    );
    assert!(!dir.exists());
    assert_refused(&python, &keyed, "wrong-key", 1, "HMAC key is wrong");
}

#[test]
fn llm_audit_trail_import_needs_a_tenant() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ledger = tmp.path().join("ledger.jsonl");
    std::fs::write(&ledger, "").expect("write");
    let dir = tmp.path().join("store");
    let output = tool(&[
        "import",
        arg(&dir),
        arg(&ledger),
        "--from",
        "llm-audit-trail",
    ]);
    assert_eq!(code(&output), Some(2), "{}", text(&output));
    assert!(text(&output).contains("--tenant"), "{}", text(&output));
    assert!(!dir.exists());
}
