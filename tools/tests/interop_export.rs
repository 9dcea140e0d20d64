//! Guards `trailmix-db export --format aat-04|aat-06|ai-audit-trail`: exports of a real store
//! (several tenants, a shredded subject) pass the other projects' own verifiers (`aat-verify`
//! for draft -04, `aat-mcp`'s `verify_chain` for -06, `ai-audit verify` and
//! `ai_audit.verifier.verify_chain`), installed at pinned versions from the Python package
//! index, and fail them when one byte of one field changes or a record is dropped.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::python::venv_python;
use common::{arg, code, text, tool};
use serde_json::Value;

/// The verifiers, pinned, with the dependencies that decide bytes (serializers, crypto).
const PACKAGES: &[&str] = &[
    "aat-verify==0.1.0",
    "aat-mcp==0.1.0",
    "ai-audit-trail==0.4.7",
    "rfc8785==0.1.4",
    "orjson==3.13.0",
    "pydantic==2.14.3",
    "cryptography==50.0.2",
    "pynacl==1.6.2",
];

/// Checks a draft -06 trail with `aat.core` (aat-mcp): chain, signatures with keys from the
/// keystore (whose key ids must be aat-mcp's own RFC 7638 thumbprints), mandatory fields
/// and value sets.
const AAT_06_CHECK: &str = r#"
import base64, json, sys
from aat import core
from cryptography.hazmat.primitives.asymmetric import ec
def d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
records = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = {}
for kid, v in json.load(open(sys.argv[2])).items():
    xy = v["jwk_x_y"]
    pk = ec.EllipticCurvePublicNumbers(int.from_bytes(d(xy["x"]), "big"),
        int.from_bytes(d(xy["y"]), "big"), ec.SECP256R1()).public_key()
    assert core.kid_for(pk) == kid, "key id is not aat-mcp's thumbprint"
    keys[kid] = pk
ok, issues = core.verify_chain(records, keys)
for n, r in enumerate(records):
    for f in core.MANDATORY:
        if f not in r: issues.append(f"record {n}: no {f}")
    if r["trust_level"] not in core.TRUST_LEVELS: issues.append(f"record {n}: trust_level")
    if r["action_type"] not in core.ACTION_TYPES: issues.append(f"record {n}: action_type")
    if r["outcome"] not in core.OUTCOMES: issues.append(f"record {n}: outcome")
    if r["record_phase"] not in core.PHASES: issues.append(f"record {n}: record_phase")
print(json.dumps({"ok": ok and not issues, "issues": issues}))
"#;

/// Rewrites an ai-audit-trail package's receipts (`none`, `edit`: one byte of one field of
/// the second receipt, `drop`: the second receipt) into a copy, then runs
/// `ai_audit.verifier.verify_chain` over the receipts and `verify_evidence_package` (what
/// `ai-audit verify` runs) over the copy.
const AI_AUDIT_CHECK: &str = r#"
import json, sys, zipfile
from ai_audit.models import DecisionReceipt
from ai_audit.verifier import verify_chain
from ai_audit.export import verify_evidence_package
src, dst, mode = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(src) as z:
    files = {n: z.read(n) for n in z.namelist()}
lines = files["receipts.jsonl"].decode().splitlines()
if mode == "edit":
    r = json.loads(lines[1])
    d = r["state_digest"]
    r["state_digest"] = d[:-1] + ("1" if d[-1] == "0" else "0")
    lines[1] = json.dumps(r, separators=(",", ":"))
elif mode == "drop":
    del lines[1]
files["receipts.jsonl"] = ("\n".join(lines) + "\n").encode()
with zipfile.ZipFile(dst, "w") as z:
    for n, b in files.items(): z.writestr(n, b)
receipts = [DecisionReceipt.model_validate_json(l) for l in lines if l.strip()]
result = verify_chain(receipts, files["public_key.hex"].decode().strip())
print(json.dumps({"chain": result.valid, "error": result.error,
    "package": verify_evidence_package(dst), "receipts": [r.model_dump(mode="json") for r in receipts]}))
"#;

/// A demo store with six tenants whose first subject seen was shredded: (store, tenant with
/// the shredded subject, another tenant). Built once for the whole file, under
/// `target/tmp/interop-export/<pid>`.
fn store() -> &'static (PathBuf, String, String) {
    static STORE: OnceLock<(PathBuf, String, String)> = OnceLock::new();
    STORE.get_or_init(|| {
        let runs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-export");
        remove_finished_runs(&runs);
        // The demo writes its pack beside the store, so both go in the run's directory.
        let run = runs.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&run);
        let dir = run.join("store");
        let (tenant, subject, lines) = common::demo_with_subject(&dir, 240);
        append_unicode_receipt(&dir, &tenant);
        let shred = tool(&[
            "shred",
            arg(&dir),
            "--tenant",
            &tenant,
            "--subject",
            &subject,
            "--request-id",
            "dsr-1",
        ]);
        assert_eq!(code(&shred), Some(0), "{}", text(&shred));
        let other = lines
            .iter()
            .filter_map(|l| l["event"]["tenant_id"].as_str())
            .find(|t| *t != tenant)
            .expect("several tenants")
            .to_owned();
        (dir, tenant, other)
    })
}

/// Non-ASCII, a line separator, quotes and backslashes in a label value: the one header
/// field that may hold them. Canonical JSON and the verifiers' serializers must agree on it.
const TRICKY_LABEL: &str = "\u{e9}\u{1f600}\u{2028}\"quoted\" back\\slash /";

/// Appends a receipt of `tenant` whose label value is [`TRICKY_LABEL`].
fn append_unicode_receipt(dir: &Path, tenant: &str) {
    use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
    let db = trailmix_db::Db::open_with(dir, trailmix_db::DbOptions::default()).expect("open");
    let receipt = Receipt::builder(tenant, "evt-unicode", Kind::ToolCall)
        .app_id("claims-bot")
        .actor_type(ActorType::Agent)
        .label("note", TRICKY_LABEL)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .build()
        .expect("valid receipt");
    db.append_and_wait(&receipt).expect("append");
    db.close().expect("close");
}

/// Removes the stores of earlier runs whose process is gone (a static fixture is never
/// dropped, so each run leaves its store behind; a store is about 65 MB).
fn remove_finished_runs(runs: &Path) {
    // Whether a process is gone is read from /proc; elsewhere nothing is removed.
    let proc = Path::new("/proc");
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    if !proc.join("self").exists() {
        return;
    }
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_pid = name.to_str().is_some_and(|n| n.parse::<u32>().is_ok());
        if is_pid && !proc.join(&name).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn python() -> PathBuf {
    venv_python(PACKAGES)
}

fn bin(name: &str) -> PathBuf {
    python().with_file_name(name)
}

/// `export --format FORMAT` of `tenant` into a new `out` with a new key at `key`.
fn export(format: &str, tenant: &str, out: &Path, key: &Path) {
    let (dir, _, _) = store();
    let output = tool(&[
        "export",
        arg(dir),
        "--tenant",
        tenant,
        "--format",
        format,
        "-o",
        arg(out),
        "--new-export-key",
        arg(key),
    ]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
}

fn read_records(trail: &Path) -> Vec<String> {
    std::fs::read_to_string(trail)
        .expect("trail")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_records(trail: &Path, records: &[String]) {
    std::fs::write(trail, records.join("\n") + "\n").expect("write trail");
}

/// Changes one hex digit of the `chain_hash` in record `index` (one byte of one field).
fn edit_one_byte(records: &mut [String], index: usize) {
    let record = &mut records[index];
    let at = record.find("\"chain_hash\":\"").expect("chain_hash") + 14;
    let old = &record[at..=at];
    let new = if old == "0" { "1" } else { "0" };
    record.replace_range(at..=at, new);
}

/// `aat-verify --json` over the trail: (exit code, its JSON).
fn aat_verify(out: &Path) -> (Option<i32>, Value) {
    let output = std::process::Command::new(bin("aat-verify"))
        .arg(out.join("trail.jsonl"))
        .arg("--keys")
        .arg(out.join("keys.json"))
        .arg("--json")
        .output()
        .expect("run aat-verify");
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("aat-verify said no JSON ({e}): {}", text(&output)));
    (code(&output), report)
}

fn aat_06_check(out: &Path) -> Value {
    let output = std::process::Command::new(python())
        .args(["-c", AAT_06_CHECK])
        .arg(out.join("trail.jsonl"))
        .arg(out.join("keys.json"))
        .output()
        .expect("run python");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("the -06 check said no JSON ({e}): {}", text(&output)))
}

fn shredded_records(records: &[String]) -> usize {
    records
        .iter()
        .filter(|r| {
            let r: Value = serde_json::from_str(r).expect("record JSON");
            r["action_detail"]["trailmix"]["payload"] == "shredded"
        })
        .count()
}

/// One export in `format` of each of two tenants into `scratch` (`NAME-0`, `NAME-1`, keys
/// `NAME-0.key`, ...): (the tenant whose subject was shredded first, the output, the key).
fn export_both_tenants(
    scratch: &Path,
    format: &str,
    name: &str,
) -> Vec<(String, PathBuf, PathBuf)> {
    let (_, shredded_tenant, other) = store();
    [shredded_tenant, other]
        .into_iter()
        .enumerate()
        .map(|(n, tenant)| {
            let out = scratch.join(format!("{name}-{n}"));
            let key = scratch.join(format!("{name}-{n}.key"));
            export(format, tenant, &out, &key);
            (tenant.clone(), out, key)
        })
        .collect()
}

#[test]
fn aat_04_export_passes_aat_verify_and_fails_it_when_mutated() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let exports = export_both_tenants(scratch.path(), "aat-04", "aat");
    for (n, (tenant, out, _)) in exports.iter().enumerate() {
        let (exit, report) = aat_verify(out);
        assert_eq!(exit, Some(0), "{tenant}: {report:#}");
        assert_eq!(report["verified"], true, "{report:#}");
        let records = read_records(&out.join("trail.jsonl"));
        assert!(records.len() > 5, "{tenant}: {} records", records.len());
        assert!(
            records
                .iter()
                .all(|r| r.contains(&format!("\"tenant_id\":\"{tenant}\""))),
            "an export holds only its tenant's receipts"
        );
        if n == 0 {
            assert!(
                shredded_records(&records) > 0,
                "the shredded receipt is exported"
            );
            let tricky = records
                .iter()
                .map(|r| serde_json::from_str::<Value>(r).expect("record JSON"))
                .find(|r| r["record_id"] == "evt-unicode")
                .expect("the receipt with the tricky label is exported");
            assert_eq!(tricky["action_detail"]["labels"]["note"], TRICKY_LABEL);
        }
    }
    let out = &exports[0].1;
    let trail = out.join("trail.jsonl");
    let good = read_records(&trail);

    let mut edited = good.clone();
    edit_one_byte(&mut edited, 2);
    write_records(&trail, &edited);
    let (exit, report) = aat_verify(out);
    assert_eq!(
        (exit, &report["verified"]),
        (Some(1), &Value::Bool(false)),
        "{report:#}"
    );

    for dropped in [1, good.len() - 1] {
        let mut fewer = good.clone();
        fewer.remove(dropped);
        write_records(&trail, &fewer);
        let (exit, report) = aat_verify(out);
        assert_eq!(exit, Some(1), "record {dropped} dropped: {report:#}");
    }
    // The trail as exported still passes: the failures came from the mutations.
    write_records(&trail, &good);
    assert_eq!(aat_verify(out).0, Some(0));
}

#[test]
fn aat_06_export_passes_aat_mcp_and_fails_it_when_mutated() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let (_, tenant, _) = store();
    let out = scratch.path().join("aat-06");
    let key = scratch.path().join("aat.key");
    export("aat-06", tenant, &out, &key);
    let report = aat_06_check(&out);
    assert_eq!(report["ok"], true, "{report:#}");
    let trail = out.join("trail.jsonl");
    let good = read_records(&trail);
    assert!(shredded_records(&good) > 0);
    assert!(good[0].contains("\"trust_level\":\"L1\""), "{}", good[0]);

    let mut edited = good.clone();
    edit_one_byte(&mut edited, 3);
    write_records(&trail, &edited);
    assert_eq!(aat_06_check(&out)["ok"], false);

    let mut fewer = good.clone();
    fewer.remove(2);
    write_records(&trail, &fewer);
    assert_eq!(aat_06_check(&out)["ok"], false);

    // The same key signs a second export with the same key id.
    let again = scratch.path().join("aat-06-again");
    let (dir, _, _) = store();
    let output = tool(&[
        "export",
        arg(dir),
        "--tenant",
        tenant,
        "--format",
        "aat-06",
        "-o",
        arg(&again),
        "--export-key",
        arg(&key),
    ]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    assert_eq!(
        std::fs::read(again.join("keys.json")).expect("keys"),
        std::fs::read(out.join("keys.json")).expect("keys")
    );
}

/// Runs the ai-audit-trail checks with `mode` on a copy of `package`.
fn ai_audit_check(package: &Path, copy: &Path, mode: &str) -> Value {
    let output = std::process::Command::new(python())
        .args(["-c", AI_AUDIT_CHECK])
        .args([package, copy])
        .arg(mode)
        .output()
        .expect("run python");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("the ai-audit check said no JSON ({e}): {}", text(&output)))
}

/// `ai-audit verify PACKAGE`: its exit code.
fn ai_audit_cli(package: &Path) -> Option<i32> {
    let output = std::process::Command::new(bin("ai-audit"))
        .arg("verify")
        .arg(package)
        .output()
        .expect("run ai-audit");
    code(&output)
}

#[test]
fn ai_audit_trail_package_passes_its_verifiers_and_fails_them_when_mutated() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let exports = export_both_tenants(scratch.path(), "ai-audit-trail", "evidence");
    for (n, (tenant, package, key)) in exports.iter().enumerate() {
        assert_eq!(ai_audit_cli(package), Some(0), "{tenant}");
        let copy = scratch.path().join(format!("copy-{n}.zip"));
        let report = ai_audit_check(package, &copy, "none");
        assert_eq!(
            (&report["chain"], &report["package"]),
            (&Value::Bool(true), &Value::Bool(true)),
            "{tenant}: {}",
            report["error"]
        );
        let receipts = report["receipts"].as_array().expect("receipts");
        assert!(receipts.iter().all(|r| r["tenant_id"] == tenant.as_str()));
        if n == 0 {
            assert!(
                receipts.iter().any(|r| r["reason_codes"]
                    .as_array()
                    .is_some_and(|c| c.contains(&Value::from("trailmix:payload_shredded")))),
                "the shredded receipt is exported and marked"
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(key).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the export key is private");
        }
    }
    let package = &exports[0].1;
    for mode in ["edit", "drop"] {
        let copy = scratch.path().join(format!("{mode}.zip"));
        let report = ai_audit_check(package, &copy, mode);
        assert_eq!(report["chain"], false, "{mode}: verify_chain passed");
        assert_eq!(report["package"], false, "{mode}: the package check passed");
        assert_eq!(
            ai_audit_cli(&copy),
            Some(1),
            "{mode}: ai-audit verify passed"
        );
    }
}

#[test]
fn export_refuses_without_a_key_and_never_overwrites() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let (dir, tenant, _) = store();
    let out = scratch.path().join("trail");
    let no_key = tool(&[
        "export",
        arg(dir),
        "--tenant",
        tenant,
        "--format",
        "aat-04",
        "-o",
        arg(&out),
    ]);
    assert_eq!(code(&no_key), Some(2), "{}", text(&no_key));
    assert!(
        text(&no_key).contains("--new-export-key"),
        "{}",
        text(&no_key)
    );
    assert!(!out.exists());

    let key = scratch.path().join("k");
    std::fs::write(&key, "not hex\n").expect("write");
    let bad_key = tool(&[
        "export",
        arg(dir),
        "--tenant",
        tenant,
        "--format",
        "ai-audit-trail",
        "-o",
        arg(&out),
        "--export-key",
        arg(&key),
    ]);
    assert_eq!(code(&bad_key), Some(2), "{}", text(&bad_key));
    assert!(
        text(&bad_key).contains("64 hex digits"),
        "{}",
        text(&bad_key)
    );

    let existing = scratch.path().join("existing.key");
    std::fs::write(&existing, "keep me").expect("write");
    let clobber = tool(&[
        "export",
        arg(dir),
        "--tenant",
        tenant,
        "--format",
        "aat-06",
        "-o",
        arg(&out),
        "--new-export-key",
        arg(&existing),
    ]);
    assert_eq!(code(&clobber), Some(2), "{}", text(&clobber));
    assert_eq!(std::fs::read_to_string(&existing).expect("read"), "keep me");

    let unknown = tool(&[
        "export",
        arg(dir),
        "--tenant",
        "no-such-tenant",
        "--format",
        "aat-04",
        "-o",
        arg(&out),
        "--new-export-key",
        arg(&scratch.path().join("k2")),
    ]);
    assert_eq!(code(&unknown), Some(2), "{}", text(&unknown));
    assert!(text(&unknown).contains("no receipt"), "{}", text(&unknown));
}
