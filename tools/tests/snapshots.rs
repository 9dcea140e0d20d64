//! Guards what a person reads from `trailmix-db`: the exact text (and exit code) of every
//! command's human output — help, `inspect`, `verify` (good, `--index`, tampered, with a trusted
//! checkpoint, rolled back), `query`, `trace`, `tail`, proofs and consistency proofs,
//! checkpoints, evidence packs, `shred`/`hold`/`release`, `prune` (and `verify`/`inspect` of the
//! pruned store), `import` stopping at a bad line, the
//! demo's closing block, and the errors for bad arguments — plus one `--json` output per
//! documented read command and no colour codes on a pipe, as committed snapshots in
//! `tests/snapshots/`.
//!
//! Each run builds one small store with the library (three tenants, one with a long id, three
//! models, a session with parent links, an explicit epoch seal, a shredded subject) and runs
//! the built binary on it with `NO_COLOR=1`. What varies from run to run (store ids, hashes,
//! keys, signatures, the writer's clock, durations, rates, temp paths) is redacted by the
//! filters of [`settings`]; the rest must match the snapshot byte for byte.
//!
//! After an intended change of the output, regenerate the snapshots without cargo-insta and
//! review the diff in `git diff tools/tests/snapshots/`:
//!
//! ```sh
//! INSTA_UPDATE=always cargo test -p trailmix-tools --test snapshots
//! ```
//!
//! (`INSTA_FORCE_PASS=1` as well runs every test to the end instead of stopping at the first
//! mismatch of each.) Without it a mismatch fails the test and prints the diff; under CI
//! (`CI=true`) nothing is written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use trailmix_db::receipt::{ActorType, Decision, Kind, Receipt, Timestamp};
use trailmix_db::{Db, DbOptions};

/// 2020-03-01T09:00:00Z: event times are fixed and in 2020, so that the filters can tell them
/// from the writer's clock (redacted) and keep them.
const T0_NS: i64 = 1_583_053_200_000_000_000;
const MINUTE_NS: i64 = 60_000_000_000;

const LONG_TENANT: &str = "northwind-pharmaceuticals";

struct Fixture {
    /// The directory every store of this run lives under (redacted as `[TMP]`).
    root: PathBuf,
    /// The shared store: read-only commands only.
    store: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("snapshot-stores");
        remove_stale(&base);
        std::fs::create_dir_all(&base).expect("mkdir");
        // Kept for the whole run (statics are never dropped): removed by a later run.
        let root = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(&base)
            .expect("tempdir")
            .keep();
        let store = root.join("store");
        build_store(&store);
        Fixture { root, store }
    })
}

/// Removes the stores of earlier runs (older than ten minutes: not a run going on now).
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn receipt(
    tenant: &str,
    event_id: &str,
    kind: Kind,
    minute: i64,
    edit: impl FnOnce(trailmix_db::receipt::ReceiptBuilder) -> trailmix_db::receipt::ReceiptBuilder,
) -> Receipt {
    let builder = Receipt::builder(tenant, event_id, kind)
        .app_id("claims-assistant")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(T0_NS + minute * MINUTE_NS));
    edit(builder).build().expect("receipt")
}

/// The shared store: 3 tenants, 3 models, a session of 4 receipts with parent links, a
/// sealed epoch 0, more receipts in epoch 1, a checkpoint, and one shredded subject.
fn build_store(dir: &Path) {
    let options = DbOptions::default()
        .segment_bytes(1 << 20)
        .checkpoint_interval(Duration::from_secs(3_600))
        .checkpoint_every_records(1_000_000);
    let db = Db::open_with(dir, options).expect("open");
    let mut minute = 0;
    let mut next = || {
        minute += 1;
        minute
    };
    let session = [
        receipt("acme-health", "evt-a1", Kind::LlmCall, next(), |b| {
            b.session_id("sess-7")
                .model_name("gpt-4.1")
                .model_provider("openai")
                .subject_id("patient-1")
                .input(serde_json::json!({"prompt": "summarise claim 881"}))
                .output(serde_json::json!({"text": "a knee operation"}))
        }),
        receipt("acme-health", "evt-a2", Kind::ToolCall, next(), |b| {
            b.session_id("sess-7")
                .parent_id("evt-a1")
                .subject_id("patient-1")
                .tool_invoked(serde_json::json!({"name": "lookup_policy", "args": {"id": 881}}))
        }),
        receipt("acme-health", "evt-a3", Kind::PolicyDecision, next(), |b| {
            b.session_id("sess-7")
                .parent_id("evt-a2")
                .policy_id("no-diagnosis")
                .decision(Decision::Deny)
                .policy_reason(serde_json::json!("the claim mentions a diagnosis"))
        }),
        receipt("acme-health", "evt-a4", Kind::Approval, next(), |b| {
            b.session_id("sess-7")
                .parent_id("evt-a3")
                .actor_type(ActorType::Human)
                .decision(Decision::Allow)
                .approval(serde_json::json!({"by": "reviewer-3"}))
        }),
    ];
    for r in &session {
        db.append_and_wait(r).expect("append");
    }
    for i in 0..3 {
        let r = receipt(
            "globex-bank",
            &format!("evt-g{i}"),
            Kind::LlmCall,
            next(),
            |b| {
                b.model_name("claude-sonnet-4")
                    .model_version("2025-05-14")
                    .subject_id(format!("customer-{}", i % 2))
                    .label("region", "eu")
                    .input(serde_json::json!({"prompt": format!("loan question {i}")}))
            },
        );
        db.append_and_wait(&r).expect("append");
    }
    db.seal_epoch().expect("seal").expect("an epoch to seal");
    for i in 0..3 {
        let r = receipt(
            LONG_TENANT,
            &format!("evt-n{i}"),
            Kind::Evaluation,
            next(),
            |b| {
                b.model_name("llama-3.1-70b").eval(
                    "faithfulness",
                    0.5 + f64::from(i) / 10.0,
                    Some(0.7),
                )
            },
        );
        db.append_and_wait(&r).expect("append");
    }
    let r = receipt(LONG_TENANT, "evt-n3", Kind::PolicyDecision, next(), |b| {
        b.decision(Decision::Deny).policy_id("export-control")
    });
    db.append_and_wait(&r).expect("append");
    db.checkpoint().expect("checkpoint");
    db.shred("globex-bank", "customer-1", "dsr-2020-001")
        .expect("shred");
    db.checkpoint().expect("checkpoint");
    db.close().expect("close");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A scratch directory of one test under the run's root (removed when dropped).
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("t-")
        .tempdir_in(&fixture().root)
        .expect("tempdir")
}

/// A private copy of the shared store, for commands that write or tamper.
fn store_copy(scratch: &tempfile::TempDir) -> PathBuf {
    let dir = scratch.path().join("store");
    copy_dir(&fixture().store, &dir);
    dir
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailmix-db"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run trailmix-db")
}

/// What a person sees: the command (paths redacted later), the exit code, stdout, stderr.
fn shown(args: &[&str], output: &Output) -> String {
    let mut text = format!(
        "$ trailmix-db {}\nexit code: {}\n",
        args.join(" "),
        output
            .status
            .code()
            .map_or_else(|| "none (killed)".to_owned(), |c| c.to_string())
    );
    for (name, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        if !bytes.is_empty() {
            let _ = write!(text, "----- {name}\n{}", String::from_utf8_lossy(bytes));
            if !text.ends_with('\n') {
                text.push_str("[no newline at the end]\n");
            }
        }
    }
    text
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The redactions of everything that varies from run to run.
fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let root = fixture().root.to_str().expect("utf-8 path").to_owned();
    let filters: Vec<(String, &str)> = vec![
        (regex_escape(&root), "[TMP]"),
        (r"\[TMP\]/t-[A-Za-z0-9_]+".to_owned(), "[SCRATCH]"),
        // The writer's clock (event times are in 2020 and stay).
        (
            r"20(2[1-9]|[3-9]\d)-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)".to_owned(),
            "[TIME]",
        ),
        (r"\b1[6-9]\d{17}\b".to_owned(), "[NS]"),
        // Key ids in signed notes and public keys.
        (r"\+[0-9a-f]{8}\+".to_owned(), "+[KEYID]+"),
        // Digests, store ids, fingerprints; base64 hashes, keys and signatures.
        (r"\b[0-9a-f]{64}\b".to_owned(), "[HEX64]"),
        (r"\b[0-9a-f]{32}\b".to_owned(), "[HEX32]"),
        (r"\\n[A-Za-z0-9+/]{40,}={0,2}".to_owned(), "\\n[B64]"),
        (r"[A-Za-z0-9+/]{40,}={0,2}".to_owned(), "[B64]"),
        // The index file's size depends on how the indexer batched its commits.
        (
            r"(index .* (entries|seq \d+|empty)) \([0-9.]+ [KMG]iB\)".to_owned(),
            "$1 ([SIZE])",
        ),
        (
            r#""file_bytes": \d+,(\s+"watermark")"#.to_owned(),
            r#""file_bytes": "[SIZE]",$1"#,
        ),
        // So does the data directory's total, which includes it.
        (
            r"disk( +)[0-9.]+ (B|KiB|MiB|GiB) in all: (log [0-9.]+ (B|KiB|MiB|GiB)), index [0-9.]+ (B|KiB|MiB|GiB)"
                .to_owned(),
            "disk$1[SIZE] in all: $3, index [SIZE]",
        ),
        (r#""index": \d+,"#.to_owned(), r#""index": "[SIZE]","#),
        // What the file system allocates depends on the file system.
        (
            r"allocated( +)[0-9.]+ (B|KiB|MiB|GiB) in all: log [0-9.]+ (B|KiB|MiB|GiB), index [0-9.]+ (B|KiB|MiB|GiB)"
                .to_owned(),
            "allocated$1[SIZE] in all: log [SIZE], index [SIZE]",
        ),
        (
            r#""(log|index|total)_allocated": \d+"#.to_owned(),
            r#""${1}_allocated": "[SIZE]""#,
        ),
        (r#""total": \d+"#.to_owned(), r#""total": "[SIZE]""#),
        // compact-index's sizes depend on how the indexer batched its commits too.
        (
            r"(before|after)( +)[0-9.]+ (B|KiB|MiB) \([0-9.]+ (B|KiB|MiB) allocated on disk\): live data [0-9.]+ (B|KiB|MiB), free [0-9.]+ (B|KiB|MiB)"
                .to_owned(),
            "$1$2[SIZE] ([SIZE] allocated on disk): live data [SIZE], free [SIZE]",
        ),
        (
            r"gave back( +)[0-9.]+ (B|KiB|MiB) of disk, [0-9.]+ (B|KiB|MiB) of file length"
                .to_owned(),
            "gave back$1[SIZE] of disk, [SIZE] of file length",
        ),
        // How long it took, and rates.
        (
            r#""seconds": [0-9.e-]+"#.to_owned(),
            r#""seconds": "[SECONDS]""#,
        ),
        (r"\b\d+(\.\d+)? (s|ms|µs)\b".to_owned(), "[DURATION]"),
        (
            r"\b\d+(\.\d+)? (k |M )?entries/s".to_owned(),
            "[RATE] entries/s",
        ),
    ];
    for (regex, replacement) in &filters {
        settings.add_filter(regex, *replacement);
    }
    settings
}

/// Runs the command and compares what a person reads with the snapshot `name`.
fn check(name: &str, args: &[&str]) -> Output {
    let output = run(args);
    let text = shown(args, &output);
    settings().bind(|| insta::assert_snapshot!(name, text));
    output
}

#[test]
fn help() {
    check("help", &["--help"]);
    check("help_verify", &["verify", "--help"]);
    let help = check("help_query", &["query", "--help"]);
    // Its examples run (on the shared store).
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let examples: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim().strip_prefix("trailmix-db query ./trailmix-data "))
        .collect();
    assert_eq!(examples.len(), 4, "{help}");
    for example in examples {
        let words = example.split('#').next().expect("words");
        let mut args = vec!["query", arg(&fixture().store)];
        args.extend(words.split_whitespace());
        let output = run(&args);
        assert_eq!(output.status.code(), Some(0), "{}", shown(&args, &output));
    }
}

#[test]
fn inspect() {
    let dir = arg(&fixture().store);
    check("inspect", &["inspect", dir]);
    check("inspect_seq_receipt", &["inspect", dir, "--seq", "3"]);
    check(
        "inspect_segment",
        &["inspect", dir, "--segment", "0", "--limit", "8"],
    );
    check("inspect_json", &["inspect", dir, "--json"]);
    check(
        "inspect_segment_end",
        &["inspect", dir, "--segment", "0", "--skip", "7"],
    );
    check("inspect_seq_seal", &["inspect", dir, "--seq", "8"]);
    check("inspect_seq_shred_record", &["inspect", dir, "--seq", "14"]);
    check(
        "inspect_seq_json",
        &["inspect", dir, "--seq", "3", "--json"],
    );
    check("inspect_seq_missing", &["inspect", dir, "--seq", "99"]);
}

#[test]
fn verify() {
    let dir = arg(&fixture().store);
    check("verify", &["verify", dir]);
    check("verify_index", &["verify", dir, "--index"]);
    check("verify_json", &["verify", dir, "--json"]);
}

#[test]
fn query_trace_tail() {
    let dir = arg(&fixture().store);
    check("query_tenant", &["query", dir, "tenant=acme-health"]);
    check(
        "query_long_tenant",
        &["query", dir, &format!("tenant={LONG_TENANT}")],
    );
    check(
        "query_shredded",
        &["query", dir, "tenant=globex-bank", "model=claude-sonnet-4"],
    );
    check(
        "query_json",
        &[
            "query",
            dir,
            "tenant=acme-health",
            "decision=deny",
            "--json",
        ],
    );
    check(
        "trace",
        &[
            "trace",
            dir,
            "--tenant",
            "acme-health",
            "--session",
            "sess-7",
        ],
    );
    check("query_nothing", &["query", dir, "tenant=nobody"]);
    check("tail", &["tail", dir]);
}

#[test]
fn bad_arguments() {
    let scratch = scratch();
    let missing = scratch.path().join("no-such-store");
    check("error_missing_dir", &["inspect", arg(&missing)]);
    let not_a_store = scratch.path().join("photos");
    std::fs::create_dir_all(&not_a_store).expect("mkdir");
    std::fs::write(not_a_store.join("cat.jpg"), b"meow").expect("write");
    check("error_not_a_store", &["verify", arg(&not_a_store)]);
    let dir = arg(&fixture().store);
    check(
        "error_bad_filter",
        &["query", dir, "tenant=acme-health", "decisoin=deny"],
    );
    check("error_unknown_flag", &["inspect", dir, "--frobnicate"]);
}

/// The frame of `seq` as `inspect --segment 0 --json` lists it.
fn frame(dir: &Path, seq: u64) -> serde_json::Value {
    let output = run(&[
        "inspect",
        arg(dir),
        "--segment",
        "0",
        "--skip",
        &seq.to_string(),
        "--limit",
        "1",
        "--json",
    ]);
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let frame = listing["frames"][0].clone();
    assert_eq!(frame["seq"], seq, "{listing}");
    frame
}

#[test]
fn verify_tampered() {
    let scratch = scratch();
    let dir = store_copy(&scratch);
    // One bit of the payload of receipt seq 3, inside signed history.
    let at = usize::try_from(frame(&dir, 3)["payload_offset"].as_u64().expect("offset"))
        .expect("fits")
        + 3;
    let segment = dir.join("wal").join("00000000000000000000.seg");
    let mut bytes = std::fs::read(&segment).expect("read segment");
    bytes[at] ^= 0x01;
    std::fs::write(&segment, &bytes).expect("write segment");
    check("verify_tampered", &["verify", arg(&dir)]);
    check("verify_tampered_json", &["verify", arg(&dir), "--json"]);
    // Where verify says to look closer.
    check(
        "inspect_tampered_seq",
        &["inspect", arg(&dir), "--seq", "3"],
    );
    check(
        "inspect_tampered_segment",
        &[
            "inspect",
            arg(&dir),
            "--segment",
            "0",
            "--skip",
            "2",
            "--limit",
            "3",
        ],
    );
    check("inspect_tampered", &["inspect", arg(&dir)]);
}

#[test]
fn proofs_and_checkpoints() {
    let scratch = scratch();
    let dir = store_copy(&scratch);
    let d = arg(&dir);
    check("checkpoint", &["checkpoint", d]);
    check("checkpoint_json", &["checkpoint", d, "--json"]);
    check("prove_stdout", &["prove", d, "--seq", "3"]);
    let bundle = scratch.path().join("proof.json");
    check(
        "prove_to_file",
        &["prove", d, "--seq", "3", "-o", arg(&bundle)],
    );
    let key = dir.join("signing.pub");
    let (b, k) = (arg(&bundle), arg(&key));
    check("verify_proof", &["verify-proof", b, "--public-key", k]);
    check(
        "verify_proof_json",
        &["verify-proof", b, "--public-key", k, "--json"],
    );
    let mut tampered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).expect("bundle")).expect("JSON");
    tampered["seq"] = serde_json::Value::from(4);
    let bad = scratch.path().join("tampered-proof.json");
    std::fs::write(&bad, tampered.to_string()).expect("write");
    check(
        "verify_proof_tampered",
        &["verify-proof", arg(&bad), "--public-key", k],
    );
}

#[test]
fn evidence_packs() {
    let scratch = scratch();
    let dir = store_copy(&scratch);
    let pack = scratch.path().join("pack");
    check(
        "export",
        &[
            "export",
            arg(&dir),
            "--tenant",
            "acme-health",
            "-o",
            arg(&pack),
        ],
    );
    let key = dir.join("signing.pub");
    let (p, k) = (arg(&pack), arg(&key));
    check("verify_pack", &["verify-pack", p, "--key", k]);
    check(
        "verify_pack_json",
        &["verify-pack", p, "--key", k, "--json"],
    );
    check("verify_pack_no_key", &["verify-pack", p]);
    // The tenant whose subject was shredded: its shredded receipts and the shred record.
    let shredded = scratch.path().join("pack-shredded");
    check(
        "export_shredded",
        &[
            "export",
            arg(&dir),
            "--tenant",
            "globex-bank",
            "-o",
            arg(&shredded),
        ],
    );
    check(
        "verify_pack_shredded",
        &["verify-pack", arg(&shredded), "--key", k],
    );
    // An edited receipt: one character of the receipts file.
    let receipts = pack.join("receipts.jsonl");
    let text = std::fs::read_to_string(&receipts).expect("receipts.jsonl");
    std::fs::write(&receipts, text.replacen("evt-a3", "evt-a9", 1)).expect("write");
    check("verify_pack_tampered", &["verify-pack", p, "--key", k]);
}

#[test]
fn shred_hold_release() {
    let scratch = scratch();
    let dir = store_copy(&scratch);
    let d = arg(&dir);
    let who = ["--tenant", "acme-health", "--subject", "patient-1"];
    let with = |command: &'static str, request: &'static str| -> Vec<&str> {
        let mut args = vec![command, d];
        args.extend_from_slice(&who);
        args.extend_from_slice(&["--request-id", request]);
        args
    };
    check("hold", &with("hold", "matter-17"));
    check("shred_refused_by_hold", &with("shred", "dsr-7"));
    check("release", &with("release", "matter-17"));
    check("shred", &with("shred", "dsr-7"));
    check("shred_again", &with("shred", "dsr-8"));
}

/// A store of two sealed epochs of class `short`, one sealed epoch without a class and an open
/// epoch, in 64 KiB segments (each epoch fills more than half of one, so it ends its segment).
fn build_prunable_store(dir: &Path) {
    let options = DbOptions::default()
        .segment_bytes(64 << 10)
        .checkpoint_interval(Duration::from_secs(3_600));
    let db = Db::open_with(dir, options).expect("open");
    for epoch in 0..3 {
        for i in 0..40 {
            let r = receipt(
                "acme-health",
                &format!("evt-{epoch}-{i}"),
                Kind::LlmCall,
                i,
                |b| {
                    let b = b.input(serde_json::json!({ "prompt": "x".repeat(900) }));
                    if epoch < 2 {
                        b.retention_class("short")
                    } else {
                        b
                    }
                },
            );
            db.append_and_wait(&r).expect("append");
        }
        db.seal_epoch().expect("seal").expect("sealed");
    }
    let r = receipt("acme-health", "evt-open", Kind::LlmCall, 50, |b| b);
    db.append_and_wait(&r).expect("append");
    db.close().expect("close");
}

#[test]
fn compact_index() {
    let scratch = scratch();
    let dir = store_copy(&scratch);
    let d = arg(&dir);
    check("compact_index", &["compact-index", d]);
    // Answers are the shared store's, and the index still equals a rebuild.
    let shared = arg(&fixture().store);
    for args in [
        &["query", "DIR", "tenant=acme-health"][..],
        &["verify", "DIR", "--index"],
    ] {
        let on = |dir: &str| {
            let args: Vec<&str> = args
                .iter()
                .map(|a| if *a == "DIR" { dir } else { a })
                .collect();
            let output = run(&args);
            assert!(output.status.success(), "{}", shown(&args, &output));
            // Without verify's timing line.
            String::from_utf8_lossy(&output.stdout)
                .replace(dir, "DIR")
                .lines()
                .filter(|line| !line.trim_start().starts_with("took"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(on(d), on(shared), "{args:?}");
    }
    let db = Db::open(&dir).expect("open");
    check("error_locked_compact_index", &["compact-index", d]);
    db.close().expect("close");
}

#[test]
fn prune_verify_inspect() {
    let scratch = scratch();
    let dir = scratch.path().join("prunable");
    build_prunable_store(&dir);
    let d = arg(&dir);
    check(
        "prune_dry_run",
        &["prune", d, "--retain", "short=0s", "--dry-run"],
    );
    check("prune_no_policy", &["prune", d, "--request-id", "r-0"]);
    check(
        "prune",
        &[
            "prune",
            d,
            "--retain",
            "short=0s",
            "--request-id",
            "retention-2026-11",
        ],
    );
    check("verify_pruned", &["verify", d]);
    check("verify_pruned_json", &["verify", d, "--json"]);
    check("inspect_pruned", &["inspect", d]);
    check(
        "prune_future",
        &[
            "prune",
            d,
            "--retain",
            "short=0s",
            "--now",
            "2099-01-01T00:00:00Z",
        ],
    );
}

#[test]
fn trace_json() {
    let dir = arg(&fixture().store);
    check(
        "trace_json",
        &[
            "trace",
            dir,
            "--tenant",
            "acme-health",
            "--session",
            "sess-7",
            "--json",
        ],
    );
}

#[test]
fn consistency_proofs() {
    let scratch = scratch();
    let dir = store_copy(&scratch);
    let d = arg(&dir);
    let old = scratch.path().join("old.note");
    let note = run(&["checkpoint", d]);
    std::fs::write(&old, &note.stdout).expect("write note");
    // Something new in epoch 1; closing the store after it signs a newer checkpoint, which
    // `--new` (nothing appended since) prints as the latest.
    let held = run(&[
        "hold",
        d,
        "--tenant",
        "globex-bank",
        "--request-id",
        "matter-2",
    ]);
    assert_eq!(held.status.code(), Some(0), "{}", shown(&[], &held));
    let new = scratch.path().join("new.note");
    let output = check("checkpoint_new", &["checkpoint", d, "--new"]);
    std::fs::write(&new, &output.stdout).expect("write note");
    let bundle = scratch.path().join("consistency.json");
    check(
        "consistency",
        &[
            "consistency",
            d,
            "--from",
            arg(&old),
            "--to",
            arg(&new),
            "-o",
            arg(&bundle),
        ],
    );
    let key = dir.join("signing.pub");
    let (b, k) = (arg(&bundle), arg(&key));
    check(
        "verify_consistency",
        &["verify-consistency", b, "--public-key", k],
    );
    check(
        "verify_consistency_json",
        &["verify-consistency", b, "--public-key", k, "--json"],
    );
    check(
        "consistency_reversed",
        &["consistency", d, "--from", arg(&new), "--to", arg(&old)],
    );
    check(
        "verify_trusted_checkpoint",
        &["verify", d, "--trusted-checkpoint", arg(&new)],
    );
    // The store as it was before the hold: rolled back past the trusted checkpoint.
    let older = scratch.path().join("older");
    copy_dir(&fixture().store, &older);
    check(
        "verify_rolled_back",
        &["verify", arg(&older), "--trusted-checkpoint", arg(&new)],
    );
}

#[test]
fn import_reports_the_bad_line() {
    let scratch = scratch();
    let dir = store_copy(&scratch);
    let events = scratch.path().join("events.jsonl");
    std::fs::write(
        &events,
        concat!(
            r#"{"event_id":"evt-i1","tenant_id":"acme-health","app_id":"bot","kind":"llm_call","actor_type":"agent","ts":"2020-03-02T10:00:00Z","model":{"name":"gpt-4.1"}}"#,
            "\n",
            r#"{"event_id":"evt-i2","tenant_id":"acme-health","app_id":"bot","kind":"llm_call","actor_type":"agent","ts":"yesterday"}"#,
            "\n",
        ),
    )
    .expect("write events");
    let (d, e) = (arg(&dir), arg(&events));
    check("import_dry_run_bad_line", &["import", d, e, "--dry-run"]);
    check("import_bad_line", &["import", d, e]);
}

#[test]
fn more_errors() {
    let scratch = scratch();
    let dir = store_copy(&scratch);
    let d = arg(&dir);
    check("error_prove_no_such_seq", &["prove", d, "--seq", "99"]);
    let missing = scratch.path().join("missing-proof.json");
    let key = dir.join("signing.pub");
    check(
        "error_verify_proof_missing_file",
        &["verify-proof", arg(&missing), "--public-key", arg(&key)],
    );
    check(
        "error_verify_wrong_key",
        &["verify", d, "--public-key", "not-a-key"],
    );
    let pack = scratch.path().join("pack");
    std::fs::create_dir_all(&pack).expect("mkdir");
    check(
        "error_export_exists",
        &["export", d, "--tenant", "acme-health", "-o", arg(&pack)],
    );
    check(
        "error_bad_time",
        &["query", d, "tenant=acme-health", "since=yesterday"],
    );
    // The writer lock held by a service.
    let db = Db::open(&dir).expect("open");
    check(
        "error_locked",
        &["shred", d, "--tenant", "acme-health", "--request-id", "r-1"],
    );
    db.close().expect("close");
}

/// Colours only on a terminal: without `NO_COLOR`, output to a pipe has no escape codes and
/// matches the snapshots taken with it.
#[test]
fn no_colour_on_a_pipe() {
    let dir = arg(&fixture().store);
    for (name, args) in [
        ("verify", &["verify", dir][..]),
        ("inspect", &["inspect", dir]),
        ("query_tenant", &["query", dir, "tenant=acme-health"]),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_trailmix-db"))
            .args(args)
            .env_remove("NO_COLOR")
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run trailmix-db");
        let text = shown(args, &output);
        assert!(
            !output.stdout.contains(&0x1b) && !output.stderr.contains(&0x1b),
            "escape codes on a pipe: {text}"
        );
        settings().bind(|| insta::assert_snapshot!(name, text));
    }
}

/// The demo's closing block: what to run next. (Its other lines are throughput and timing,
/// checked by `cli.rs`.)
#[test]
fn demo_next_steps() {
    let scratch = scratch();
    let dir = scratch.path().join("demo-data");
    let args = [
        "demo",
        "--dir",
        arg(&dir),
        "--receipts",
        "300",
        "--threads",
        "1",
    ];
    let output = run(&args);
    assert_eq!(output.status.code(), Some(0), "{}", shown(&args, &output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let next = stdout
        .find("The store now holds")
        .map(|at| &stdout[at..])
        .expect("the closing block");
    let text = format!(
        "$ trailmix-db {}\n(the closing block)\n{next}",
        args.join(" ")
    );
    // A timed checkpoint during a slow run would add an entry and move the sequence numbers.
    let mut settings = settings();
    settings.add_filter(r"in \d+ entries", "in [N] entries");
    settings.add_filter(r"--seq \d+", "--seq [SEQ]");
    settings.bind(|| insta::assert_snapshot!("demo_next_steps", text));
}
