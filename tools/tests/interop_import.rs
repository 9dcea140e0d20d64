//! Guards `trailmix-db import --from FORMAT` on histories written by the Python libraries
//! themselves (pinned, in a venv under target/): counts, mapped fields, provenance in the
//! payload, the import record, `verify`, idempotent re-runs, and that a source whose own
//! chain fails (one changed byte, two lines swapped, a wrong or missing HMAC key) is refused
//! with the line the library itself names, writing nothing.

mod common;

use std::path::{Path, PathBuf};

use common::python::{run_python, run_python_with_env, venv_python};
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
    import_from("llm-audit-trail", dir, ledger, extra)
}

/// `import DIR SOURCE --from FORMAT --json` and `extra`.
fn import_from(format: &str, dir: &Path, source: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["import", arg(dir), arg(source), "--from", format, "--json"];
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
    assert_eq!(provenance["seq"], 5);
    assert_eq!(
        provenance["line"],
        Value::Null,
        "a file position is no identity"
    );
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

    // A dry run verifies the whole ledger and creates nothing.
    let dry = import_llm(&dir, &acme, &["--tenant", "acme", "--dry-run"]);
    assert_eq!(code(&dry), Some(0), "{}", text(&dry));
    assert_eq!(json(&dry)["records"], 300);
    assert_eq!(json(&dry)["imported"], 0);
    assert!(!dir.exists(), "a dry run created the store");

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

/// Writes an ai-audit-trail evidence package through `ReceiptCollector`, `ReceiptStore` and
/// `export_evidence_package`, and a package of globex's receipts only beside it (zip path +
/// `.globex.zip`): argv = zip path, number of receipts; prints the public key hex.
/// Three tenants take turns, so each has its own chain through the file.
const WRITE_AI_PACKAGE: &str = r#"
import sys
from ai_audit import (AuditConfig, ReceiptAction, ReceiptCollector, ReceiptStore,
                      get_verify_key_hex, init_audit_config)
from ai_audit.keys import get_signing_key
from ai_audit.export import export_evidence_package
out, count = sys.argv[1], int(sys.argv[2])
init_audit_config(AuditConfig(signing_key_hex="5a" * 32))
store = ReceiptStore(max_size=100_000)
tenants = ["acme", "globex", "initech"]
actions = ["allow", "reject", "escalate", "allow", "cache_hit", "fail_retry", "bypass"]
for n in range(count):
    c = ReceiptCollector(trace_id=f"trace-{n}", session_id=f"sess-{n // 4}",
                         tenant_id=tenants[n % 3], model_id="gpt-4o" if n % 5 else "")
    c.set_input(f"Patient J. Doe asks about claim {n} \u2013 caf\u00e9")
    c.add_check("safety", score=0.05 + n / 1000, threshold=0.8, fired=n % 7 == 0,
                detail={"verdict": "ok", "z": 1e-7, "a": [3, 1.5]})
    c.add_check("pii", score=0.1 + 0.2, threshold=0.5)
    c.set_output(f"Claim {n} is covered")
    c.set_action(ReceiptAction(actions[n % len(actions)]))
    if n % 3 == 1:
        c.add_reason("policy.pii")
    c.add_nist_tag("AU-3")
    c.emit(store)
    c.cleanup()
receipts = list(store._receipts.values())
export_evidence_package(receipts, get_verify_key_hex(), get_signing_key(), out, tenant_id="all")
# A second package of one tenant's receipts: the same receipts at other lines.
export_evidence_package([r for r in receipts if r.tenant_id == "globex"], get_verify_key_hex(),
                        get_signing_key(), out + ".globex.zip", tenant_id="globex")
print(get_verify_key_hex())
"#;

/// The library's own `verify_chain`, run per tenant over a receipts.jsonl as its
/// `get_by_tenant` would hand it: argv = path, public key hex; prints the first failing
/// line, or `null`.
const VERIFY_AI_RECEIPTS: &str = r#"
import sys
from ai_audit import verify_chain
from ai_audit.models import DecisionReceipt
by_tenant, line_of = {}, {}
for number, text in enumerate(open(sys.argv[1], encoding="utf-8"), start=1):
    if text.strip():
        receipt = DecisionReceipt.model_validate_json(text)
        by_tenant.setdefault(receipt.tenant_id, []).append(receipt)
        line_of[receipt.receipt_id] = number
failed = [line_of[r.failed_receipt_id]
          for r in (verify_chain(chain, sys.argv[2]) for chain in by_tenant.values())
          if not r.valid]
print(min(failed) if failed else "null")
"#;

/// Writes a package of `count` receipts at `zip`; returns the signer's public key hex.
fn write_ai_package(python: &Path, zip: &Path, count: u32) -> String {
    run_python(python, WRITE_AI_PACKAGE, &[arg(zip), &count.to_string()])
        .trim()
        .to_owned()
}

/// `receipts.jsonl` of a package.
fn package_receipts(zip: &Path) -> String {
    let file = std::fs::File::open(zip).expect("open package");
    let mut archive = zip::ZipArchive::new(file).expect("zip");
    let mut receipts = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("receipts.jsonl").expect("receipts.jsonl"),
        &mut receipts,
    )
    .expect("read receipts.jsonl");
    receipts
}

fn import_ai(dir: &Path, source: &Path, extra: &[&str]) -> std::process::Output {
    import_from("ai-audit-trail", dir, source, extra)
}

#[test]
fn ai_audit_trail_package_is_imported_per_tenant_with_signatures_as_provenance() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let package = tmp.path().join("evidence.zip");
    let key = write_ai_package(&python, &package, 300);

    let first = import_ai(&dir, &package, &["--public-key", &key]);
    assert_eq!(code(&first), Some(0), "{}", text(&first));
    let report = json(&first);
    assert_eq!(report["verified"], "sha256+ed25519");
    assert_eq!(report["records"], 300);
    assert_eq!(report["imported"], 300);
    let tenants: Vec<(&str, u64)> = report["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| {
            (
                t["tenant"].as_str().expect("tenant"),
                t["imported"].as_u64().expect("n"),
            )
        })
        .collect();
    assert_eq!(tenants, [("acme", 100), ("globex", 100), ("initech", 100)]);
    assert_eq!(
        receipts_in(&dir),
        303,
        "300 receipts and one import record per tenant"
    );
    assert_verifies(&dir);

    let lines: Vec<Value> = package_receipts(&package)
        .lines()
        .map(|l| serde_json::from_str(l).expect("receipt line"))
        .collect();
    let receipts = stored(&dir);
    // Receipt 1: globex, a model call, rejected with a reason; receipt 0: no model.
    let one = &receipts[1]["event"];
    assert_eq!(
        one["event_id"],
        format!("aat:{}", lines[1]["receipt_id"].as_str().expect("id"))
    );
    assert_eq!(one["tenant_id"], "globex");
    assert_eq!(one["kind"], "llm_call");
    assert_eq!(one["model"]["name"], "gpt-4o");
    assert_eq!(one["session_id"], "sess-0");
    assert_eq!(one["policy_eval"]["decision"], "deny");
    assert_eq!(one["policy_eval"]["reasons"][0], "policy.pii");
    assert_eq!(one["evals"][1]["name"], "pii");
    assert_eq!(one["evals"][1]["score"], lines[1]["checks"][1]["score"]);
    assert_eq!(one["source"]["receipt_hash"], lines[1]["receipt_hash"]);
    assert_eq!(one["source"]["signature"], lines[1]["signature"]);
    assert_eq!(one["source"]["prev_receipt_hash"], "");
    assert_eq!(receipts[0]["event"]["kind"], "policy_decision");
    assert_eq!(receipts[4]["event"]["policy_eval"]["decision"], "cache_hit");
    // Receipt 4 (globex's second) links to receipt 1.
    assert_eq!(
        receipts[4]["event"]["source"]["prev_receipt_hash"],
        lines[1]["receipt_hash"]
    );
    let imports: Vec<&Value> = receipts[300..].iter().map(|r| &r["event"]).collect();
    assert_eq!(imports[1]["tenant_id"], "globex");
    assert_eq!(imports[1]["kind"], "lifecycle");
    assert_eq!(imports[1]["import"]["records"], 100);
    assert_eq!(
        imports[1]["import"]["first_source_hash"],
        lines[1]["receipt_hash"]
    );
    assert_eq!(
        imports[1]["import"]["last_source_hash"],
        lines[298]["receipt_hash"]
    );
    assert_eq!(imports[1]["import"]["source_file"], "evidence.zip");

    // The package's own receipts.jsonl, with the key as a file: nothing new.
    let jsonl = tmp.path().join("receipts.jsonl");
    std::fs::write(&jsonl, package_receipts(&package)).expect("write");
    let key_file = tmp.path().join("public_key.hex");
    std::fs::write(&key_file, format!("{key}\n")).expect("write");
    let again = import_ai(&dir, &jsonl, &["--public-key", arg(&key_file)]);
    assert_eq!(code(&again), Some(0), "{}", text(&again));
    assert_eq!(json(&again)["imported"], 0);
    assert_eq!(json(&again)["already_present"], 300);
    assert_eq!(receipts_in(&dir), 303);
    // globex's own package holds the same receipts at other lines: nothing new either.
    let globex = tmp.path().join("evidence.zip.globex.zip");
    let tenant_package = import_ai(&dir, &globex, &["--public-key", &key]);
    assert_eq!(code(&tenant_package), Some(0), "{}", text(&tenant_package));
    assert_eq!(json(&tenant_package)["already_present"], 100);
    assert_eq!(receipts_in(&dir), 303);

    // Without --public-key the package's own key is used, and the report says so.
    let own = import_ai(&tmp.path().join("other"), &package, &[]);
    assert_eq!(code(&own), Some(0), "{}", text(&own));
    assert_eq!(
        json(&own)["verified"],
        "sha256+ed25519 (key from the package itself)"
    );
}

/// Asserts that importing the receipts at `path` under `key` is refused at `line` with
/// `reason`, writing nothing.
fn assert_ai_refused(path: &Path, key: &str, line: u64, reason: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let output = import_ai(&dir, path, &["--public-key", key]);
    assert_eq!(code(&output), Some(1), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["error"]["line"], line, "{report}");
    let message = report["error"]["message"].as_str().expect("message");
    assert!(message.contains(reason), "{message}");
    assert!(!dir.exists(), "a refused source created the store");
}

/// The first line the library's own per-tenant `verify_chain` rejects.
fn ai_library_line(python: &Path, path: &Path, key: &str) -> Option<u64> {
    run_python(python, VERIFY_AI_RECEIPTS, &[arg(path), key])
        .trim()
        .parse()
        .ok()
}

#[test]
fn ai_audit_trail_receipts_that_fail_their_seal_or_chain_are_refused_whole() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let package = tmp.path().join("evidence.zip");
    let key = write_ai_package(&python, &package, 90);
    let text = package_receipts(&package);
    let lines: Vec<&str> = text.lines().collect();
    let write = |name: &str, lines: &[String]| {
        let path = tmp.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        path
    };
    let owned = |lines: &[&str]| lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
    let good = write("good.jsonl", &owned(&lines));
    assert_eq!(ai_library_line(&python, &good, &key), None);

    // One byte of line 40's trace id.
    let mut edited = owned(&lines);
    edited[39] = edited[39].replacen("trace-39", "trace-38", 1);
    let path = write("edited.jsonl", &edited);
    assert_eq!(ai_library_line(&python, &path, &key), Some(40));
    assert_ai_refused(&path, &key, 40, "hash mismatch");

    // One hex digit of line 77's signature.
    let mut forged = owned(&lines);
    let at = forged[76].find("\"signature\":\"").expect("signature") + 13;
    let digit = if &forged[76][at..=at] == "0" {
        "1"
    } else {
        "0"
    };
    forged[76].replace_range(at..=at, digit);
    let path = write("forged.jsonl", &forged);
    assert_eq!(ai_library_line(&python, &path, &key), Some(77));
    assert_ai_refused(&path, &key, 77, "bad signature");

    // Lines 10 and 13 (both acme's) swapped: the library sorts by timestamp and does not
    // see file order, but the chain in the file is broken at line 10.
    let mut swapped = owned(&lines);
    swapped.swap(9, 12);
    let path = write("swapped.jsonl", &swapped);
    assert_ai_refused(&path, &key, 10, "broken link");

    // Another signer's key: the first receipt already fails.
    let other = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    assert_ai_refused(&good, other, 1, "bad signature");
}

/// Writes an audittrail ledger through `add_entry` (signatures, timestamps and WORM on, as by
/// default): argv = database path, number of rows. Run with `HOME` set to a scratch
/// directory, where the library keeps its Fernet and RSA keys. Loading the RSA private key
/// takes the library ~70 ms per row, so the loaded key is cached: that is the only change.
const WRITE_AUDITTRAIL_LEDGER: &str = r#"
import functools, sys
from audittrail import add_entry, signatures
signatures.load_private_key = functools.lru_cache(signatures.load_private_key)
db, count = sys.argv[1], int(sys.argv[2])
methods = ["GET", "POST", "PUT", "DELETE"]
for n in range(count):
    add_entry(db, {"method": methods[n % 4], "path": f"/claims/{n}/decision",
                   "user": None if n % 11 == 5 else f"user{n % 7}@example.com",
                   "status": [200, 201, 403, 401, 500][n % 5],
                   "body": {"amount": n * 10.5, "note": "caf\u00e9 \u2713"},
                   "response": {"ok": n % 5 < 2}})
"#;

/// The library's own `verify_ledger`: prints the first row it names, or `null`.
const VERIFY_AUDITTRAIL_LEDGER: &str = r#"
import sys
from audittrail import verify_ledger
result = verify_ledger(sys.argv[1], check_worm=False)
print(min(d["row"] for d in result["details"]) if not result["verified"] else "null")
"#;

/// Runs an audittrail script with `HOME` at `home`.
fn run_audittrail(python: &Path, home: &Path, script: &str, args: &[&str]) -> String {
    run_python_with_env(python, script, args, &[("HOME", home)])
}

/// The ledger's public key file, where the library wrote it under `home`.
fn audittrail_public_key(home: &Path) -> PathBuf {
    home.join(".audittrail_keys").join("public_key.pem")
}

fn import_audittrail(dir: &Path, ledger: &Path, extra: &[&str]) -> std::process::Output {
    import_from("audittrail", dir, ledger, extra)
}

/// One text column of a ledger row.
fn ledger_column(ledger: &Path, rowid: i64, column: &str) -> String {
    let conn = rusqlite::Connection::open(ledger).expect("open ledger");
    conn.query_row(
        &format!("SELECT {column} FROM ledger WHERE rowid = ?1"),
        [rowid],
        |row| row.get(0),
    )
    .expect("column")
}

#[test]
fn audittrail_ledger_is_imported_with_signatures_as_provenance_and_once() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).expect("home");
    let dir = tmp.path().join("store");
    let acme = tmp.path().join("acme.db");
    let globex = tmp.path().join("globex.db");
    run_audittrail(
        &python,
        &home,
        WRITE_AUDITTRAIL_LEDGER,
        &[arg(&acme), "120"],
    );
    run_audittrail(
        &python,
        &home,
        WRITE_AUDITTRAIL_LEDGER,
        &[arg(&globex), "40"],
    );
    let key = audittrail_public_key(&home);

    for (ledger, tenant, rows) in [(&acme, "acme", 120), (&globex, "globex", 40)] {
        let output = import_audittrail(
            &dir,
            ledger,
            &["--tenant", tenant, "--public-key", arg(&key)],
        );
        assert_eq!(code(&output), Some(0), "{}", text(&output));
        let report = json(&output);
        assert_eq!(report["verified"], "sha256+rsa-pss");
        assert_eq!(report["imported"], rows);
    }
    assert_eq!(receipts_in(&dir), 162);
    assert_verifies(&dir);

    let receipts = stored(&dir);
    // Row 3: PUT, 403.
    let row = &receipts[2]["event"];
    let first_ts = ledger_column(&acme, 1, "ts");
    assert_eq!(row["event_id"], format!("at:{first_ts}:3"));
    assert_eq!(row["tenant_id"], "acme");
    assert_eq!(row["kind"], "http_request");
    assert_eq!(row["app_id"], "audittrail");
    assert_eq!(row["labels"]["http.method"], "PUT");
    assert_eq!(row["labels"]["http.status"], "403");
    assert_eq!(row["policy_eval"]["decision"], "deny");
    assert_eq!(row["source"]["row"], 3);
    assert_eq!(row["source"]["user"], "user2@example.com");
    for column in ["hash", "prev_hash", "signature", "body", "ts"] {
        assert_eq!(
            row["source"][column],
            ledger_column(&acme, 3, column),
            "{column}"
        );
    }
    assert_eq!(receipts[5]["event"]["source"]["user"], Value::Null);
    assert_eq!(receipts[0]["event"]["policy_eval"], Value::Null);
    let import = &receipts[120]["event"];
    assert_eq!(import["kind"], "lifecycle");
    assert_eq!(import["import"]["format"], "audittrail");
    assert_eq!(import["import"]["records"], 120);
    assert_eq!(
        import["import"]["first_source_hash"],
        ledger_column(&acme, 1, "hash")
    );
    assert_eq!(
        import["import"]["last_source_hash"],
        ledger_column(&acme, 120, "hash")
    );

    let again = import_audittrail(
        &dir,
        &acme,
        &["--tenant", "acme", "--public-key", arg(&key)],
    );
    assert_eq!(code(&again), Some(0), "{}", text(&again));
    assert_eq!(json(&again)["imported"], 0);
    assert_eq!(json(&again)["already_present"], 120);
    assert_eq!(receipts_in(&dir), 162);
}

#[test]
fn audittrail_rows_that_fail_their_chain_or_signature_are_refused_whole() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).expect("home");
    let ledger = tmp.path().join("ledger.db");
    run_audittrail(
        &python,
        &home,
        WRITE_AUDITTRAIL_LEDGER,
        &[arg(&ledger), "90"],
    );
    let key = audittrail_public_key(&home);
    let library_row = |path: &Path| -> Option<u64> {
        run_audittrail(&python, &home, VERIFY_AUDITTRAIL_LEDGER, &[arg(path)])
            .trim()
            .parse()
            .ok()
    };
    assert_eq!(library_row(&ledger), None);
    // A copy of the ledger changed by `sql`.
    let changed = |name: &str, sql: &str| -> PathBuf {
        let path = tmp.path().join(name);
        std::fs::copy(&ledger, &path).expect("copy");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(sql).expect("change");
        path
    };
    let refused = |path: &Path, key: &Path, row: u64, reason: &str| {
        let dir = tmp.path().join("store");
        let output = import_audittrail(&dir, path, &["--tenant", "acme", "--public-key", arg(key)]);
        assert_eq!(code(&output), Some(1), "{}", text(&output));
        let report = json(&output);
        assert_eq!(report["error"]["unit"], "row");
        assert_eq!(report["error"]["line"], row, "{report}");
        let message = report["error"]["message"].as_str().expect("message");
        assert!(message.contains(reason), "{message}");
        assert!(!dir.exists(), "a refused source created the store");
    };

    // One byte of row 57's path.
    let edited = changed(
        "edited.db",
        "UPDATE ledger SET path = '/claims/56/decisioN' WHERE rowid = 57",
    );
    assert_eq!(library_row(&edited), Some(57));
    refused(&edited, &key, 57, "hash mismatch");

    // Rows 10 and 11 swapped.
    let swapped = changed(
        "swapped.db",
        "CREATE TABLE t AS SELECT rowid AS old, * FROM ledger WHERE rowid IN (10, 11);
         DELETE FROM ledger WHERE rowid IN (10, 11);
         INSERT INTO ledger (rowid, ts, method, path, user, status, body, response, hash,
                             prev_hash, key_id, signature, timestamp_token, worm_protected)
           SELECT 21 - old, ts, method, path, user, status, body, response, hash,
                  prev_hash, key_id, signature, timestamp_token, worm_protected FROM t;",
    );
    assert_eq!(library_row(&swapped), Some(10));
    refused(&swapped, &key, 10, "broken link");

    // One character of row 77's signature.
    let forged = changed(
        "forged.db",
        "UPDATE ledger SET signature = substr(signature, 1, 4)
           || (CASE WHEN substr(signature, 5, 1) = 'A' THEN 'B' ELSE 'A' END)
           || substr(signature, 6) WHERE rowid = 77",
    );
    assert_eq!(library_row(&forged), Some(77));
    refused(&forged, &key, 77, "bad signature");

    // A signature removed: the library skips unsigned rows; the import does not.
    let stripped = changed(
        "stripped.db",
        "UPDATE ledger SET signature = NULL WHERE rowid = 20",
    );
    refused(&stripped, &key, 20, "unsigned row");

    // Another signer's key.
    let other_home = tmp.path().join("other");
    std::fs::create_dir(&other_home).expect("home");
    run_audittrail(
        &python,
        &other_home,
        WRITE_AUDITTRAIL_LEDGER,
        &[arg(&tmp.path().join("o.db")), "1"],
    );
    refused(
        &ledger,
        &audittrail_public_key(&other_home),
        1,
        "bad signature",
    );

    // No key for a signed ledger.
    let output = import_audittrail(&tmp.path().join("store"), &ledger, &["--tenant", "acme"]);
    assert_eq!(code(&output), Some(1), "{}", text(&output));
    assert!(text(&output).contains("--public-key"), "{}", text(&output));
}

/// Every file under `dir` (relative path → bytes): what "the store is unchanged" compares.
fn files_of(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                let relative = path.strip_prefix(dir).expect("under dir").to_path_buf();
                files.insert(relative, bytes);
            }
        }
    }
    files
}

/// Imports `source` (`format`, `extra`) into a store that already holds the event id of
/// source `unit` `line` with other contents, and asserts the import is refused before it
/// writes anything: exit 1, the error names the line and the event id, and every file of the
/// store is as it was.
fn assert_conflict_refused(format: &str, source: &Path, extra: &[&str], unit: &str, line: u64) {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The mapped receipt of that line, from an import into a scratch store.
    let probe = tmp.path().join("probe");
    let output = import_from(format, &probe, source, extra);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    let index = usize::try_from(line - 1).expect("index");
    let mapped = stored(&probe)[index]["event"].clone();
    let event_id = mapped["event_id"].as_str().expect("event id").to_owned();
    let tenant = mapped["tenant_id"].as_str().expect("tenant");

    let dir = tmp.path().join("store");
    let mut clash = common::event(tenant, 1);
    clash["event_id"] = Value::String(event_id.clone());
    let events = tmp.path().join("clash.jsonl");
    common::write_jsonl(&events, &[clash]);
    let seeded = tool(&["import", arg(&dir), arg(&events)]);
    assert_eq!(code(&seeded), Some(0), "{}", text(&seeded));
    let before = files_of(&dir);

    let output = import_from(format, &dir, source, extra);
    assert_eq!(code(&output), Some(1), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["error"]["unit"], unit, "{report}");
    assert_eq!(report["error"]["line"], line, "{report}");
    let message = report["error"]["message"].as_str().expect("message");
    assert!(message.contains(&event_id), "{message}");
    assert!(message.contains("nothing was written"), "{message}");
    assert_eq!(report["imported"], 0, "{report}");
    let after = files_of(&dir);
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|path| before.get(*path) != after.get(*path))
        // The writer's open commits to redb's file whatever it does next; what the index
        // holds is checked below through the receipts it counts.
        .filter(|path| **path != Path::new("index").join("index.redb"))
        .collect();
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "a refused import added or removed files"
    );
    assert!(changed.is_empty(), "a refused import changed {changed:?}");
    assert_eq!(receipts_in(&dir), 1);
}

#[test]
fn an_import_that_would_conflict_is_refused_before_it_writes() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");

    let ledger = tmp.path().join("ledger.jsonl");
    write_llm_ledger(&python, &ledger, 60, "");
    assert_conflict_refused(
        "llm-audit-trail",
        &ledger,
        &["--tenant", "acme"],
        "line",
        37,
    );

    let package = tmp.path().join("evidence.zip");
    let key = write_ai_package(&python, &package, 30);
    assert_conflict_refused(
        "ai-audit-trail",
        &package,
        &["--public-key", &key],
        "line",
        22,
    );

    let home = tmp.path().join("home");
    std::fs::create_dir(&home).expect("home");
    let rows = tmp.path().join("ledger.db");
    run_audittrail(&python, &home, WRITE_AUDITTRAIL_LEDGER, &[arg(&rows), "25"]);
    let public_key = audittrail_public_key(&home);
    let extra = ["--tenant", "acme", "--public-key", arg(&public_key)];
    assert_conflict_refused("audittrail", &rows, &extra, "row", 18);
}

#[test]
fn a_rerun_after_a_crash_before_the_import_record_writes_it_once() {
    let python = python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let ledger = tmp.path().join("ledger.jsonl");
    write_llm_ledger(&python, &ledger, 30, "");

    // The receipts are durable, then the process dies before the import record.
    let options = trailmix_tools::interop::ImportOptions {
        tenant: Some("acme".to_owned()),
        stop_before_import_records: true,
        ..Default::default()
    };
    let crashed = trailmix_tools::interop::run(
        &dir,
        trailmix_tools::interop::Format::LlmAuditTrail,
        &ledger,
        &options,
    );
    assert!(crashed.is_err(), "the hook did not stop the import");
    assert_eq!(receipts_in(&dir), 30);

    // Every receipt is already there, yet the re-run completes the import: its record.
    let rerun = import_llm(&dir, &ledger, &["--tenant", "acme"]);
    assert_eq!(code(&rerun), Some(0), "{}", text(&rerun));
    let report = json(&rerun);
    assert_eq!(report["imported"], 0, "{report}");
    assert_eq!(report["already_present"], 30, "{report}");
    let import_id = report["tenants"][0]["import_event_id"].clone();
    assert!(import_id.is_string(), "{report}");
    assert_eq!(receipts_in(&dir), 31);
    let receipts = stored(&dir);
    assert_eq!(receipts[30]["event"]["event_id"], import_id);
    assert_eq!(receipts[30]["event"]["import"]["records"], 30);

    // Once: a further re-run writes no second record.
    let again = import_llm(&dir, &ledger, &["--tenant", "acme"]);
    assert_eq!(code(&again), Some(0), "{}", text(&again));
    assert_eq!(json(&again)["tenants"][0]["import_event_id"], Value::Null);
    assert_eq!(receipts_in(&dir), 31);
    assert_verifies(&dir);
}
