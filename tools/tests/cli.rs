//! Guards the `trailmix-db` tool as a user meets it, by running the built binary: demo (twice),
//! inspect (summary, one entry, frames; text and JSON), verify with its exit codes (0
//! verified, 1 damaged, 2 usage or I/O error), tampering, trusted checkpoints against
//! truncation and rollback, proofs checked offline with only the public key, the read-only
//! commands on a store that another writer holds open, what inspect says of compression, and
//! of a payload's cipher and a key store it cannot open.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::wal::format::{Seal, SealKind};
use trailmix_db::{Db, DbOptions};

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailmix-db"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run trailmix-db")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(output));
    serde_json::from_slice(&output.stdout).expect("the command printed JSON")
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn demo(dir: &Path, receipts: u64, extra: &[&str]) -> Output {
    let receipts = receipts.to_string();
    let mut args = vec!["demo", "--dir", arg(dir), "--receipts", &receipts];
    args.extend_from_slice(extra);
    let output = tool(&args);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    output
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

/// The frames of a segment as `inspect --segment --json` lists them.
fn frames(dir: &Path, segment: u64, skip: u64, limit: u64) -> Vec<Value> {
    let listing = json(&tool(&[
        "inspect",
        arg(dir),
        "--segment",
        &segment.to_string(),
        "--skip",
        &skip.to_string(),
        "--limit",
        &limit.to_string(),
        "--json",
    ]));
    listing["frames"].as_array().expect("frames").clone()
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

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// The `inspect --json` summary of a store after two demo runs (2,000 and 1,500 receipts);
/// returns its sealed epochs.
fn check_summary_after_two_demos(dir: &Path) -> Vec<Value> {
    let summary = json(&tool(&["inspect", arg(dir), "--json"]));
    assert_eq!(summary["receipts"], 3_500);
    assert_eq!(summary["hash_algorithm"], "blake3");
    // Each run ends its epoch with a seal.
    assert_eq!(summary["epoch_seals"], 2);
    let entries = summary["entries"].as_u64().expect("entries");
    let checkpoints = summary["checkpoints"].as_u64().expect("checkpoints");
    assert_eq!(
        entries,
        1 + 3_500 + checkpoints + 2,
        "genesis + receipts + checkpoints + seals"
    );
    let sealed = summary["epochs"]["sealed"]
        .as_array()
        .expect("sealed epochs");
    assert_eq!(sealed.len(), 2);
    assert_eq!(
        sealed[1]["seal_seq"].as_u64(),
        Some(entries - 1),
        "the last entry"
    );
    assert_eq!(summary["segments"]["count"], 1);
    assert_eq!(summary["segments"]["list"][0]["state"], "closed");
    let vkey = std::fs::read_to_string(dir.join("signing.pub")).expect("signing.pub");
    assert_eq!(summary["public_key"]["vkey"], vkey.trim());
    assert_eq!(summary["public_key"]["public_key_file_state"], "matches");
    assert_eq!(summary["public_key"]["private_key_present"], true);
    assert_eq!(summary["tenants"], 6);
    let kinds: u64 = summary["receipt_kinds"]
        .as_array()
        .expect("kinds")
        .iter()
        .map(|k| k["receipts"].as_u64().expect("count"))
        .sum();
    assert_eq!(kinds, 3_500);
    assert!(summary["problems"].as_array().expect("problems").is_empty());
    // The open epoch (2) is empty after the second run's seal: no checkpoint of it yet.
    assert!(
        summary["latest_checkpoint"].is_null(),
        "{}",
        summary["latest_checkpoint"]
    );
    // The demo closed the store cleanly, which wrote an open snapshot of its last entry.
    assert_eq!(summary["open_snapshot"]["state"], "present");
    assert_eq!(summary["open_snapshot"]["seq"].as_u64(), Some(entries - 1));

    sealed.clone()
}

#[test]
fn demo_twice_then_inspect_and_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("trailmix-data");
    let first = demo(&dir, 2_000, &[]);
    let out = text(&first);
    assert!(out.contains("store       created"), "{out}");
    assert!(out.contains("2,000 receipts from 2 threads"), "{out}");
    assert!(out.contains("checked with nothing but"), "{out}");
    assert!(out.contains("VERIFIED"), "{out}");
    assert!(out.contains("read back   seq"), "{out}");
    let second = demo(&dir, 1_500, &["--threads", "3"]);
    let out = text(&second);
    assert!(out.contains("store       reopened"), "{out}");
    assert!(out.contains("The store now holds 3,500 receipts"), "{out}");

    let sealed = check_summary_after_two_demos(&dir);
    let human = text(&tool(&["inspect", arg(&dir)]));
    for line in [
        "store id",
        "public key",
        "entries",
        "epoch 0",
        "acme-health",
        "llm_call",
    ] {
        assert!(human.contains(line), "{line:?} missing from:\n{human}");
    }

    // One receipt, decoded: the first receipt frame after genesis.
    let receipt = &frames(&dir, 0, 1, 1)[0];
    assert_eq!(receipt["kind"], "receipt");
    let seq = receipt["seq"].as_u64().expect("seq").to_string();
    let detail = json(&tool(&["inspect", arg(&dir), "--seq", &seq, "--json"]));
    assert_eq!(detail["kind"], "receipt");
    assert!(
        detail["header"]["event_id"]
            .as_str()
            .expect("event id")
            .starts_with("evt-r1-")
    );
    assert!(detail["payload"].is_object(), "{detail}");
    assert_eq!(detail["chain"]["epoch"], 0);
    let human = text(&tool(&["inspect", arg(&dir), "--seq", &seq]));
    assert!(human.contains("header (clear, indexed"), "{human}");

    // A seal, decoded: its signed note states the epoch's entries.
    let seq = sealed[0]["seal_seq"].as_u64().expect("seq").to_string();
    let detail = json(&tool(&["inspect", arg(&dir), "--seq", &seq, "--json"]));
    assert_eq!(detail["kind"], "epoch_seal");
    assert_eq!(detail["checkpoint"]["tree_size"], sealed[0]["entries"]);
    assert!(
        detail["note"]
            .as_str()
            .expect("note")
            .contains("/epoch/0\n"),
        "{detail}"
    );

    let verify = tool(&["verify", arg(&dir)]);
    let out = text(&verify);
    assert_eq!(code(&verify), Some(0), "{out}");
    assert!(out.starts_with("VERIFIED"), "{out}");
    assert!(
        out.contains("whole-store rollback cannot be"),
        "says what it cannot see without a trusted checkpoint: {out}"
    );
    let report = json(&tool(&["verify", arg(&dir), "--json"]));
    assert_eq!(report["verdict"], "verified");
    assert_eq!(report["receipts"], 3_500);
    // Every entry up to the second run's seal, which is the last.
    assert_eq!(
        report["entries"].as_u64(),
        sealed[1]["seal_seq"].as_u64().map(|s| s + 1)
    );
    assert_eq!(report["damage"], Value::Null);
    assert_eq!(report["trusted_checkpoint"], Value::Null);

    // A damaged open snapshot is reported as unusable (an open ignores it), a missing one as
    // absent; neither is damage to the store.
    let snapshot = dir.join(trailmix_db::snapshot::SNAPSHOT_FILE);
    std::fs::write(&snapshot, b"not a snapshot").expect("overwrite the snapshot");
    let human = text(&tool(&["inspect", arg(&dir)]));
    assert!(
        human.contains("open snapshot   unusable, the next open ignores it"),
        "{human}"
    );
    std::fs::remove_file(&snapshot).expect("remove the snapshot");
    let summary = json(&tool(&["inspect", arg(&dir), "--json"]));
    assert_eq!(summary["open_snapshot"]["state"], "absent", "{summary}");
    assert_eq!(code(&tool(&["verify", arg(&dir)])), Some(0));
}

#[test]
fn a_flipped_payload_byte_is_named_by_seq() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("trailmix-data");
    demo(&dir, 1_500, &[]);
    let frame = frames(&dir, 0, 700, 5)
        .into_iter()
        .find(|f| f["kind"] == "receipt")
        .expect("a receipt frame");
    let seq = frame["seq"].as_u64().expect("seq");
    let at = usize::try_from(frame["payload_offset"].as_u64().expect("payload offset"))
        .expect("fits")
        + 3;
    let segment = &segment_files(&dir)[0];
    let mut bytes = std::fs::read(segment).expect("read segment");
    bytes[at] ^= 0x01; // one bit of that receipt's payload
    std::fs::write(segment, &bytes).expect("write segment");

    let verify = tool(&["verify", arg(&dir)]);
    let out = text(&verify);
    assert_eq!(code(&verify), Some(1), "{out}");
    assert!(out.starts_with("DAMAGED"), "{out}");
    assert!(
        out.contains(&format!("first bad entry     seq {seq}")),
        "{out}"
    );
    let report: Value = serde_json::from_slice(&tool(&["verify", arg(&dir), "--json"]).stdout)
        .expect("JSON even when damaged");
    assert_eq!(report["verdict"], "damaged");
    assert_eq!(report["damage"]["seq"], seq);
    assert_eq!(report["entries"], seq, "everything before it verified");

    // inspect still shows what it can and points at verify.
    let summary = json(&tool(&["inspect", arg(&dir), "--json"]));
    assert!(!summary["problems"].as_array().expect("problems").is_empty());
}

#[test]
fn inclusion_proofs_check_offline_with_only_the_public_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("trailmix-data");
    demo(&dir, 1_000, &[]);
    let key = dir.join("signing.pub");
    let receipt = &frames(&dir, 0, 400, 1)[0];
    let seq = receipt["seq"].as_u64().expect("seq");
    let bundle = tmp.path().join("proof.json");

    let prove = tool(&[
        "prove",
        arg(&dir),
        "--seq",
        &seq.to_string(),
        "-o",
        arg(&bundle),
    ]);
    assert_eq!(code(&prove), Some(0), "{}", text(&prove));
    let check = tool(&["verify-proof", arg(&bundle), "--public-key", arg(&key)]);
    let out = text(&check);
    assert_eq!(code(&check), Some(0), "{out}");
    assert!(
        out.starts_with(&format!("VERIFIED  entry seq {seq}")),
        "{out}"
    );
    assert!(out.contains("receipt      tenant "), "{out}");
    let vkey = std::fs::read_to_string(&key).expect("key");
    let proven = json(&tool(&[
        "verify-proof",
        arg(&bundle),
        "--public-key",
        vkey.trim(),
        "--json",
    ]));
    assert_eq!(proven["verdict"], "verified");
    assert_eq!(proven["seq"], seq);
    assert_eq!(proven["epoch"], 0);
    let event_id = proven["header"]["event_id"].as_str().expect("event id");
    assert!(proven["tree_size"].as_u64().expect("size") > seq);

    // The same receipt by event id.
    let by_event = tool(&["prove", arg(&dir), "--event-id", event_id]);
    let by_event: Value = serde_json::from_slice(&by_event.stdout).expect("bundle on stdout");
    assert_eq!(by_event["seq"], seq);

    // Tampered bundles are rejected with exit code 1.
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).expect("bundle")).expect("JSON");
    let mut tampered = original.clone();
    tampered["seq"] = Value::from(seq + 1);
    let mut edited = original.clone();
    let entry = edited["entry"].as_str().expect("entry").to_owned();
    let flip = entry.len() - 8;
    let replacement = if &entry[flip..=flip] == "A" { "B" } else { "A" };
    edited["entry"] = Value::from(format!(
        "{}{replacement}{}",
        &entry[..flip],
        &entry[flip + 1..]
    ));
    let mut short = original.clone();
    short["path"].as_array_mut().expect("path").pop();
    for (name, bad) in [("seq", tampered), ("entry", edited), ("path", short)] {
        let file = tmp.path().join(format!("tampered-{name}.json"));
        std::fs::write(&file, bad.to_string()).expect("write");
        let check = tool(&["verify-proof", arg(&file), "--public-key", arg(&key)]);
        let out = text(&check);
        assert_eq!(code(&check), Some(1), "{name}: {out}");
        assert!(out.starts_with("REJECTED"), "{name}: {out}");
    }
    let garbage = tmp.path().join("garbage.json");
    std::fs::write(&garbage, "{\"not\": \"a bundle\"}").expect("write");
    let check = tool(&["verify-proof", arg(&garbage), "--public-key", arg(&key)]);
    assert_eq!(code(&check), Some(1), "{}", text(&check));

    // Another store's key rejects the proof.
    let other = tmp.path().join("other-store");
    demo(&other, 10, &[]);
    let check = tool(&[
        "verify-proof",
        arg(&bundle),
        "--public-key",
        arg(&other.join("signing.pub")),
    ]);
    assert_eq!(code(&check), Some(1), "{}", text(&check));

    // Usage and I/O problems are exit code 2.
    let check = tool(&["verify-proof", arg(&bundle), "--public-key", "not-a-key"]);
    assert_eq!(code(&check), Some(2), "{}", text(&check));
    assert!(
        text(&check).contains("is not a public key"),
        "{}",
        text(&check)
    );
    let missing = tmp.path().join("missing.json");
    let check = tool(&["verify-proof", arg(&missing), "--public-key", arg(&key)]);
    assert_eq!(code(&check), Some(2), "{}", text(&check));
    let check = tool(&["verify-proof", arg(&bundle)]);
    assert_eq!(
        code(&check),
        Some(2),
        "the key is required: {}",
        text(&check)
    );
}

/// Appends receipts `range` to the store in `dir` and closes it (a final checkpoint).
fn append_some(dir: &Path, range: std::ops::Range<u64>) {
    let db = Db::open(dir).expect("open");
    for n in range {
        let receipt = Receipt::builder("acme-health", format!("extra-{n}"), Kind::LlmCall)
            .app_id("claims-assistant")
            .actor_type(ActorType::Agent)
            .event_time(Timestamp::now())
            .build()
            .expect("valid receipt");
        db.append_and_wait(&receipt).expect("append");
    }
    db.close().expect("close");
}

#[test]
fn consistency_proofs_link_checkpoints() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("trailmix-data");
    demo(&dir, 300, &[]);
    // The demo sealed its epoch; two checkpoints of the next one, with receipts between.
    append_some(&dir, 0..20);
    let key = dir.join("signing.pub");
    let old_note = tmp.path().join("old.note");
    let new_note = tmp.path().join("new.note");
    let old = tool(&["checkpoint", arg(&dir)]);
    assert_eq!(code(&old), Some(0), "{}", text(&old));
    std::fs::write(&old_note, &old.stdout).expect("write note");
    // An idle store has nothing new to checkpoint: `--new` prints the same note again.
    let same = tool(&["checkpoint", arg(&dir), "--new"]);
    assert_eq!(code(&same), Some(0), "{}", text(&same));
    assert_eq!(
        same.stdout, old.stdout,
        "no new checkpoint without new entries"
    );
    let said = String::from_utf8_lossy(&same.stderr);
    assert!(
        said.contains("no new one written") && said.contains("latest signed checkpoint"),
        "`--new` with nothing new must not claim it wrote one: {said}"
    );
    append_some(&dir, 20..30);
    let new = tool(&["checkpoint", arg(&dir)]);
    assert_eq!(code(&new), Some(0), "{}", text(&new));
    assert_ne!(new.stdout, old.stdout, "new entries, new checkpoint");
    std::fs::write(&new_note, &new.stdout).expect("write note");
    let consistency = tmp.path().join("consistency.json");
    let made = tool(&[
        "consistency",
        arg(&dir),
        "--from",
        arg(&old_note),
        "--to",
        arg(&new_note),
        "-o",
        arg(&consistency),
    ]);
    assert_eq!(code(&made), Some(0), "{}", text(&made));
    let check = tool(&[
        "verify-consistency",
        arg(&consistency),
        "--public-key",
        arg(&key),
    ]);
    assert_eq!(code(&check), Some(0), "{}", text(&check));
    assert!(text(&check).starts_with("VERIFIED"), "{}", text(&check));
    let mut swapped: Value =
        serde_json::from_str(&std::fs::read_to_string(&consistency).expect("read")).expect("JSON");
    let old_text = swapped["old_checkpoint"].clone();
    swapped["old_checkpoint"] = swapped["new_checkpoint"].clone();
    swapped["new_checkpoint"] = old_text;
    std::fs::write(&consistency, swapped.to_string()).expect("write");
    let check = tool(&[
        "verify-consistency",
        arg(&consistency),
        "--public-key",
        arg(&key),
    ]);
    assert_eq!(code(&check), Some(1), "{}", text(&check));
    let backwards = tool(&[
        "consistency",
        arg(&dir),
        "--from",
        arg(&new_note),
        "--to",
        arg(&old_note),
    ]);
    assert_eq!(code(&backwards), Some(2), "{}", text(&backwards));
}

#[test]
fn a_trusted_checkpoint_detects_truncation_and_rollback() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("trailmix-data");
    let small_segments = ["--segment-bytes", "1048576"];
    demo(&dir, 2_500, &small_segments);
    let backup = tmp.path().join("backup");
    copy_dir(&dir, &backup);
    demo(&dir, 2_500, &small_segments);
    let trusted = tmp.path().join("trusted.note");
    let note = tool(&["checkpoint", arg(&dir)]);
    assert_eq!(code(&note), Some(0), "{}", text(&note));
    assert!(
        // The latest note is the second run's seal (the final checkpoint of epoch 1).
        String::from_utf8_lossy(&note.stderr).contains("epoch seal"),
        "{}",
        text(&note)
    );
    std::fs::write(&trusted, &note.stdout).expect("write note");
    let segments = segment_files(&dir);
    assert!(
        segments.len() >= 3,
        "small segments roll over: {segments:?}"
    );

    let ok = tool(&["verify", arg(&dir), "--trusted-checkpoint", arg(&trusted)]);
    assert_eq!(code(&ok), Some(0), "{}", text(&ok));
    assert!(
        text(&ok).contains("is intact in the store"),
        "{}",
        text(&ok)
    );
    let report = json(&tool(&[
        "verify",
        arg(&dir),
        "--trusted-checkpoint",
        arg(&trusted),
        "--public-key",
        arg(&dir.join("signing.pub")),
        "--json",
    ]));
    assert_eq!(report["verdict"], "verified");
    assert_eq!(report["trusted_checkpoint"]["epoch"], 1);

    let rolled_back = |store: &Path, what: &str| {
        let plain = tool(&["verify", arg(store)]);
        assert_eq!(
            code(&plain),
            Some(0),
            "{what}: undetectable without a trusted checkpoint: {}",
            text(&plain)
        );
        let check = tool(&["verify", arg(store), "--trusted-checkpoint", arg(&trusted)]);
        let out = text(&check);
        assert_eq!(code(&check), Some(1), "{what}: {out}");
        assert!(out.starts_with("DAMAGED"), "{what}: {out}");
        assert!(out.contains("truncation or rollback"), "{what}: {out}");
    };

    // The whole store swapped for an older copy.
    rolled_back(&backup, "whole-store rollback");

    // The last segment removed.
    let cut = tmp.path().join("cut");
    copy_dir(&dir, &cut);
    let last = segment_files(&cut).pop().expect("a segment");
    std::fs::remove_file(&last).expect("remove the last segment");
    rolled_back(&cut, "last segment removed");

    // The newest frames zeroed, and the segment's seal erased so the log looks cleanly cut.
    let zeroed = tmp.path().join("zeroed");
    copy_dir(&dir, &zeroed);
    let last = segment_files(&zeroed).pop().expect("a segment");
    let summary = json(&tool(&["inspect", arg(&zeroed), "--json"]));
    let tail = summary["segments"]["list"]
        .as_array()
        .and_then(|list| list.last())
        .expect("segments")
        .clone();
    let in_last = tail["entries"].as_u64().expect("entries");
    assert!(in_last >= 2, "{tail}");
    let frame = &frames(
        &zeroed,
        tail["segment"].as_u64().expect("no"),
        in_last / 2,
        1,
    )[0];
    let from = usize::try_from(frame["offset"].as_u64().expect("offset")).expect("fits");
    let mut bytes = std::fs::read(&last).expect("read");
    bytes[from..].fill(0);
    let seal = Seal {
        kind: SealKind::Closed,
        end_seq: Seq(0),
        end_offset: 0,
    };
    let seal_at = usize::try_from(Seal::OFFSET).expect("fits");
    bytes[seal_at..seal_at + seal.encode().len()].fill(0);
    std::fs::write(&last, &bytes).expect("write");
    rolled_back(&zeroed, "newest frames zeroed");
}

#[test]
fn read_commands_work_while_a_writer_holds_the_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("live");
    // Small epochs, so that the store has sealed ones to show and prove against.
    let db = Db::open_with(&dir, DbOptions::default().epoch_records_max(60)).expect("open");
    for n in 0..200 {
        let receipt = Receipt::builder("acme", format!("evt-{n}"), Kind::LlmCall)
            .app_id("claims-assistant")
            .actor_type(ActorType::Agent)
            .event_time(Timestamp::now())
            .model_name("gpt-4.1")
            .build()
            .expect("valid receipt");
        db.append(&receipt).expect("append");
    }
    db.checkpoint().expect("checkpoint");

    let summary = json(&tool(&["inspect", arg(&dir), "--json"]));
    assert_eq!(summary["receipts"], 200);
    assert_eq!(summary["segments"]["list"][0]["state"], "open");
    let sealed = summary["epochs"]["sealed"]
        .as_array()
        .expect("sealed")
        .clone();
    assert!(sealed.len() >= 3, "{summary}");
    assert_eq!(sealed[0]["first_seq"], 0);
    assert_eq!(sealed[0]["entries"], 60);
    assert_eq!(
        sealed[1]["first_seq"],
        sealed[0]["seal_seq"].as_u64().expect("seq") + 1
    );
    assert_eq!(summary["epochs"]["open"]["epoch"], sealed.len());
    let human = text(&tool(&["inspect", arg(&dir)]));
    assert!(
        human.contains("epoch 0    sealed  seq 0 to 59 (60 entries)"),
        "{human}"
    );

    let seal_seq = sealed[0]["seal_seq"].as_u64().expect("seq").to_string();
    let seal = json(&tool(&["inspect", arg(&dir), "--seq", &seal_seq, "--json"]));
    assert_eq!(seal["kind"], "epoch_seal");
    assert_eq!(seal["checkpoint"]["seal_first_seq"], 0);
    assert_eq!(seal["checkpoint"]["tree_size"], 60);

    let verify = json(&tool(&["verify", arg(&dir), "--json"]));
    assert_eq!(verify["verdict"], "verified");
    assert_eq!(verify["sealed_epochs"], sealed.len());
    let note = json(&tool(&["checkpoint", arg(&dir), "--json"]));
    assert_eq!(note["epoch"], sealed.len(), "{note}");

    // Writing a checkpoint needs the lock; proving from the notes in the log does not.
    let locked = tool(&["checkpoint", arg(&dir), "--new"]);
    let out = text(&locked);
    assert_eq!(code(&locked), Some(2), "{out}");
    assert!(
        out.contains("is open for writing in another process"),
        "{out}"
    );
    let live_proof = tool(&["prove", arg(&dir), "--seq", "5"]);
    assert_eq!(code(&live_proof), Some(0), "{}", text(&live_proof));
    db.close().expect("close");

    // A receipt of a sealed epoch is proven against the epoch's seal.
    let bundle = tmp.path().join("sealed.json");
    let prove = tool(&["prove", arg(&dir), "--seq", "5", "-o", arg(&bundle)]);
    assert_eq!(code(&prove), Some(0), "{}", text(&prove));
    let proven = json(&tool(&[
        "verify-proof",
        arg(&bundle),
        "--public-key",
        arg(&dir.join("signing.pub")),
        "--json",
    ]));
    assert_eq!(proven["epoch"], 0);
    assert_eq!(proven["tree_size"], 60);
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nothing-here");
    for args in [
        vec!["verify", arg(&missing)],
        vec!["inspect", arg(&missing)],
        vec!["checkpoint", arg(&missing)],
        vec!["prove", arg(&missing), "--seq", "1"],
    ] {
        let output = tool(&args);
        let out = text(&output);
        assert_eq!(code(&output), Some(2), "{args:?}: {out}");
        assert!(out.contains("does not exist"), "{args:?}: {out}");
        assert!(out.contains("hint: "), "{args:?}: {out}");
    }
    assert!(!missing.exists(), "a read command must not create a store");

    let dir = tmp.path().join("store");
    demo(&dir, 50, &[]);
    let far = tool(&["inspect", arg(&dir), "--seq", "1000000"]);
    assert_eq!(code(&far), Some(2), "{}", text(&far));
    assert!(
        text(&far).contains("has no entry 1000000"),
        "{}",
        text(&far)
    );
    let segment = tool(&["inspect", arg(&dir), "--segment", "9"]);
    assert_eq!(code(&segment), Some(2), "{}", text(&segment));
    let not_a_note = tmp.path().join("not-a-note");
    std::fs::write(&not_a_note, "hello\n").expect("write");
    let verify = tool(&[
        "verify",
        arg(&dir),
        "--trusted-checkpoint",
        arg(&not_a_note),
    ]);
    assert_eq!(
        code(&verify),
        Some(1),
        "a bogus trusted checkpoint is a failed check: {}",
        text(&verify)
    );

    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["verify"],
        vec!["prove", arg(&dir)],
        vec!["inspect", arg(&dir), "--seq", "1", "--segment", "0"],
    ] {
        let output = tool(&args);
        assert_eq!(code(&output), Some(2), "{args:?}: {}", text(&output));
    }
    let help = tool(&["--help"]);
    assert_eq!(code(&help), Some(0));
    for command in [
        "demo",
        "inspect",
        "verify",
        "checkpoint",
        "prove",
        "verify-proof",
    ] {
        assert!(text(&help).contains(command), "{}", text(&help));
    }
    assert!(text(&help).contains("Exit codes"), "{}", text(&help));
}

#[test]
fn checkpoint_seal_seals_the_open_epoch_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("trailmix-data");
    demo(&dir, 300, &[]);
    append_some(&dir, 0..5);
    let sealed = tool(&["checkpoint", arg(&dir), "--seal", "--json"]);
    assert_eq!(code(&sealed), Some(0), "{}", text(&sealed));
    let note: serde_json::Value = serde_json::from_slice(&sealed.stdout).expect("json");
    assert_eq!(note["kind"], "epoch_seal", "{note}");
    assert!(
        note["note"]
            .as_str()
            .is_some_and(|n| n.contains("trailmix-seal v1") && n.contains("trailmix-tips v1")),
        "{note}"
    );
    // Nothing new: the same seal again, and it says so.
    let again = tool(&["checkpoint", arg(&dir), "--seal", "--json"]);
    assert_eq!(code(&again), Some(0), "{}", text(&again));
    assert_eq!(again.stdout, sealed.stdout);
    assert!(text(&again).contains("nothing to seal"), "{}", text(&again));
    let both = tool(&["checkpoint", arg(&dir), "--seal", "--new"]);
    assert_eq!(code(&both), Some(2), "{}", text(&both));
    let verified = tool(&["verify", arg(&dir)]);
    assert_eq!(code(&verified), Some(0), "{}", text(&verified));
}

/// `inspect --seq` says which entry format an entry has, in both forms: the fixture store
/// holds only version 2 entries (written by the build before entry format 3), a demo store
/// only version 3 ones.
#[test]
fn inspect_names_the_entry_format() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures/v2-store");
    let tmp = tempfile::tempdir().expect("temp dir");
    let fresh = tmp.path().join("store");
    assert!(demo(&fresh, 5, &[]).status.success());
    for (dir, version, words) in [
        (fixture.as_path(), 2, "digests stored in the entry"),
        (fresh.as_path(), 3, "digests computed from its bytes"),
    ] {
        let shown = json(&tool(&["inspect", arg(dir), "--seq", "2", "--json"]));
        assert_eq!(shown["chain"]["entry_version"], version, "{dir:?}");
        let printed = text(&tool(&["inspect", arg(dir), "--seq", "2"]));
        assert!(
            printed.contains(&format!("entry format    version {version}: {words}")),
            "{printed}"
        );
    }
}

/// `inspect` says how many payloads are stored compressed, and `inspect --seq` flags one.
#[test]
fn inspect_reports_compressed_payloads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("trailmix-data");
    let options = DbOptions::default().payload_compression(trailmix_db::PayloadCompression::zstd());
    let db = Db::open_with(&dir, options).expect("open");
    let text_of = |n: u64| {
        "the claim was reviewed against the policy and approved ".repeat(4) + &n.to_string()
    };
    let mut seqs = Vec::new();
    for n in 0..3u64 {
        let receipt = Receipt::builder("acme-health", format!("zip-{n}"), Kind::LlmCall)
            .app_id("claims-assistant")
            .actor_type(ActorType::Agent)
            .event_time(Timestamp::now())
            .input(serde_json::json!({ "prompt": text_of(n) }))
            .build()
            .expect("valid receipt");
        seqs.push(db.append_and_wait(&receipt).expect("append").seq);
    }
    // Too short to gain from a frame: stored as it is.
    let tiny = Receipt::builder("acme-health", "zip-tiny", Kind::LlmCall)
        .app_id("claims-assistant")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::now())
        .build()
        .expect("valid receipt");
    db.append_and_wait(&tiny).expect("append");
    db.close().expect("close");

    let summary = tool(&["inspect", arg(&dir)]);
    assert_eq!(code(&summary), Some(0), "{}", text(&summary));
    assert!(
        text(&summary).contains("compression     3 of 4 receipts' payloads stored compressed"),
        "{}",
        text(&summary)
    );
    let summary = json(&tool(&["inspect", arg(&dir), "--json"]));
    assert_eq!(summary["compressed_receipts"], 3, "{summary}");

    let seq = seqs[1].0.to_string();
    let one = tool(&["inspect", arg(&dir), "--seq", &seq]);
    assert_eq!(code(&one), Some(0), "{}", text(&one));
    assert!(
        text(&one).contains("flags           encrypted compressed"),
        "{}",
        text(&one)
    );
}

/// A store whose key-encryption key others may read (a copy that lost its file modes) is
/// inspected with the key store's refusal spelled out, and each payload still says which
/// cipher and data key it names.
#[cfg(unix)]
#[test]
fn inspect_says_why_the_key_store_does_not_open_and_names_the_cipher() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    append_some(&dir, 0..2);
    let one = tool(&["inspect", arg(&dir), "--seq", "1"]);
    assert!(
        text(&one).contains("stored encrypted with AES-256-GCM under data key"),
        "{}",
        text(&one)
    );
    let summary = tool(&["inspect", arg(&dir)]);
    assert!(
        text(&summary).contains("key store       1 live data key(s)"),
        "{}",
        text(&summary)
    );

    let kek = dir.join("keys").join("kek-00000000000000000001.key");
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let summary = tool(&["inspect", arg(&dir)]);
    assert_eq!(code(&summary), Some(0), "{}", text(&summary));
    assert!(
        text(&summary).contains("key store       not readable here:")
            && text(&summary).contains("chmod 600"),
        "{}",
        text(&summary)
    );
    let summary = json(&tool(&["inspect", arg(&dir), "--json"]));
    assert!(
        summary["key_store_problem"]
            .as_str()
            .is_some_and(|p| p.contains("permissions are 644")),
        "{summary}"
    );
    let one = tool(&["inspect", arg(&dir), "--seq", "1"]);
    assert!(
        text(&one).contains("encrypted with AES-256-GCM under data key 1, key unavailable"),
        "{}",
        text(&one)
    );
    let found = tool(&["query", arg(&dir), "tenant=acme-health"]);
    assert_eq!(code(&found), Some(0), "{}", text(&found));
    assert!(
        String::from_utf8_lossy(&found.stderr)
            .contains("note: encrypted payloads cannot be decrypted here")
            && text(&found).contains("chmod 600")
            && text(&found).contains("(payload encrypted, no key)"),
        "{}",
        text(&found)
    );
}
