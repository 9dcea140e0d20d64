//! Guards `trailmix-db import` by running the built binary: a good file is stored and
//! importing it again adds nothing (new vs already present counted), a bad line stops the
//! import with its line number and field after the lines before it were stored, a conflicting
//! event id stops it too, `--dry-run` writes and creates nothing, and `-` reads stdin.

mod common;

use common::{
    arg, assert_verifies, code, event, event_ids, json, jsonl, jsonl_text, receipts_in, text, tool,
    tool_with_stdin, write_jsonl,
};
use serde_json::Value;

#[test]
fn importing_a_file_twice_stores_it_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let file = tmp.path().join("events.jsonl");
    let events: Vec<Value> = (0..20).map(|n| event("acme", n)).collect();
    // A blank line and a Windows line break are fine.
    let mut lines = jsonl_text(&events[..10], "\n");
    lines.push_str("\n   \n");
    lines.push_str(&jsonl_text(&events[10..], "\r\n"));
    std::fs::write(&file, lines).expect("write");

    let first = tool(&["import", arg(&dir), arg(&file), "--json"]);
    assert_eq!(code(&first), Some(0), "{}", text(&first));
    let report = json(&first);
    assert_eq!(report["created"], true);
    assert_eq!(report["lines"], 22);
    assert_eq!(report["blank_lines"], 2);
    assert_eq!(report["valid"], 20);
    assert_eq!(report["imported"], 20);
    assert_eq!(report["already_present"], 0);
    assert_eq!(report["error"], Value::Null);
    assert_eq!(receipts_in(&dir), 20);
    // Stored in file order, and each reads back as the event that was imported.
    let stored = jsonl(&tool(&["tail", arg(&dir), "--json"]));
    let expected: Vec<String> = (0..20).map(|n| format!("evt-acme-{n}")).collect();
    assert_eq!(event_ids(&stored), expected);
    assert_eq!(stored[7]["event"]["input"], events[7]["input"]);
    assert_eq!(stored[7]["event"]["policy_eval"]["decision"], "allow");

    let again = tool(&["import", arg(&dir), arg(&file), "--json"]);
    assert_eq!(code(&again), Some(0), "{}", text(&again));
    let report = json(&again);
    assert_eq!(report["created"], false);
    assert_eq!(report["imported"], 0);
    assert_eq!(report["already_present"], 20);
    assert_eq!(receipts_in(&dir), 20, "nothing stored twice");

    // A file with new events among known ones, and one event twice: only the new are stored.
    let mut mixed: Vec<Value> = (15..25).map(|n| event("acme", n)).collect();
    mixed.push(event("acme", 24));
    write_jsonl(&file, &mixed);
    let human = tool(&["import", arg(&dir), arg(&file)]);
    assert_eq!(code(&human), Some(0), "{}", text(&human));
    assert!(
        text(&human).contains("imported 5 new receipt(s)")
            && text(&human).contains("6 already present"),
        "{}",
        text(&human)
    );
    assert_eq!(receipts_in(&dir), 25);
    assert_verifies(&dir);
}

#[test]
fn a_bad_line_stops_the_import_and_keeps_the_lines_before_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let file = tmp.path().join("events.jsonl");
    let mut bad = event("acme", 2);
    bad.as_object_mut().expect("object").remove("ts");
    write_jsonl(
        &file,
        &[event("acme", 0), event("acme", 1), bad, event("acme", 3)],
    );

    let output = tool(&["import", arg(&dir), arg(&file), "--json"]);
    assert_eq!(code(&output), Some(1), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["error"]["line"], 3);
    assert_eq!(report["error"]["field"], "ts");
    assert_eq!(report["imported"], 2);
    assert_eq!(report["lines"], 3, "nothing after the bad line was read");
    let stored = jsonl(&tool(&["tail", arg(&dir), "--json"]));
    assert_eq!(event_ids(&stored), ["evt-acme-0", "evt-acme-1"]);
    assert_verifies(&dir);

    // The people's version names the line and the field, on stderr.
    let output = tool(&["import", arg(&dir), arg(&file)]);
    assert_eq!(code(&output), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 3:") && stderr.contains("`ts`"),
        "{stderr}"
    );
    assert!(
        text(&output).contains("0 new receipt(s)"),
        "{}",
        text(&output)
    );

    // Broken JSON is reported with its column; a wrong type names the nested field.
    std::fs::write(&file, format!("{}\n{{\"event_id\": \n", event("acme", 9))).expect("write");
    let output = tool(&["import", arg(&dir), arg(&file), "--json"]);
    assert_eq!(code(&output), Some(1), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["error"]["line"], 2);
    assert!(
        report["error"]["message"]
            .as_str()
            .expect("message")
            .contains("column"),
        "{report}"
    );
    let mut wrong = event("acme", 10);
    wrong["policy_eval"]["decision"] = Value::from(7);
    write_jsonl(&file, &[wrong]);
    let report = json(&tool(&["import", arg(&dir), arg(&file), "--json"]));
    assert_eq!(report["error"]["line"], 1);
    assert_eq!(report["error"]["field"], "policy_eval.decision");
    assert_eq!(receipts_in(&dir), 3, "evt-acme-9 before the broken line");
}

#[test]
fn a_conflicting_event_id_stops_the_import() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let file = tmp.path().join("events.jsonl");
    write_jsonl(&file, &[event("acme", 0), event("acme", 1)]);
    assert_eq!(code(&tool(&["import", arg(&dir), arg(&file)])), Some(0));

    let mut changed = event("acme", 1);
    changed["output"]["text"] = Value::from("a different answer");
    write_jsonl(
        &file,
        &[
            event("acme", 0),
            changed,
            event("acme", 2),
            event("acme", 3),
        ],
    );
    let output = tool(&["import", arg(&dir), arg(&file), "--json"]);
    assert_eq!(code(&output), Some(1), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["error"]["line"], 2);
    assert_eq!(report["error"]["field"], "event_id");
    assert!(
        report["error"]["message"]
            .as_str()
            .expect("message")
            .contains("conflict"),
        "{report}"
    );
    assert_eq!(report["already_present"], 1);
    // The writer finds a conflict after the append: lines after it may have been submitted
    // by then. They are valid, stored, and counted.
    let after = report["stored_after_error"].as_u64().expect("count");
    assert!(after <= 2, "{report}");
    assert_eq!(report["imported"], after, "{report}");
    assert_eq!(receipts_in(&dir), 2 + after);
    // The same id in another tenant is another event.
    let mut other = event("acme", 1);
    other["tenant_id"] = Value::from("globex");
    write_jsonl(&file, &[other]);
    let report = json(&tool(&["import", arg(&dir), arg(&file), "--json"]));
    assert_eq!(report["imported"], 1, "{report}");
}

#[test]
fn dry_run_validates_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let file = tmp.path().join("events.jsonl");
    let events: Vec<Value> = (0..5).map(|n| event("acme", n)).collect();
    write_jsonl(&file, &events);

    let output = tool(&["import", arg(&dir), arg(&file), "--dry-run", "--json"]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    let report = json(&output);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["valid"], 5);
    assert_eq!(report["imported"], 0);
    assert!(!dir.exists(), "a dry run must not create the store");

    let mut bad = events.clone();
    bad[3]["kind"] = Value::from("Not A Kind");
    write_jsonl(&file, &bad);
    let output = tool(&["import", arg(&dir), arg(&file), "--dry-run", "--json"]);
    assert_eq!(code(&output), Some(1), "{}", text(&output));
    assert_eq!(json(&output)["error"]["line"], 4);
    assert_eq!(json(&output)["error"]["field"], "kind");
    assert!(!dir.exists());

    // Against an existing store: not one byte changes.
    write_jsonl(&file, &events[..2]);
    assert_eq!(code(&tool(&["import", arg(&dir), arg(&file)])), Some(0));
    let before = snapshot(&dir);
    write_jsonl(&file, &events);
    let output = tool(&["import", arg(&dir), arg(&file), "--dry-run"]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("nothing was written"),
        "{}",
        text(&output)
    );
    assert_eq!(snapshot(&dir), before);
    assert_eq!(receipts_in(&dir), 2);
}

#[test]
fn import_reads_stdin_and_refuses_what_it_cannot_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let input = jsonl_text(
        &[event("acme", 0), event("acme", 1), event("acme", 2)],
        "\n",
    );
    let output = tool_with_stdin(&["import", arg(&dir), "-", "--json"], input.as_bytes());
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    assert_eq!(json(&output)["source"], "stdin");
    assert_eq!(json(&output)["imported"], 3);
    assert_eq!(receipts_in(&dir), 3);

    let missing = tmp.path().join("no-such-file.jsonl");
    let output = tool(&["import", arg(&dir), arg(&missing)]);
    assert_eq!(code(&output), Some(2), "{}", text(&output));
    assert!(text(&output).contains("cannot read"), "{}", text(&output));

    // An empty input imports nothing and creates nothing.
    let fresh = tmp.path().join("fresh");
    let output = tool_with_stdin(&["import", arg(&fresh), "-"], b"");
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    assert!(!fresh.exists(), "no event, no store");
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_kept_pii_policy_applies_to_imported_events() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let file = tmp.path().join("events.jsonl");
    let set = tool(&["pii", arg(&dir), "--set", "email=redact,phone=mask"]);
    assert_eq!(code(&set), Some(0), "{}", text(&set));
    let shown = tool(&["pii", arg(&dir)]);
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout).trim(),
        "email=redact,phone=mask"
    );
    let bad = tool(&["pii", arg(&dir), "--set", "email=hide"]);
    assert_eq!(code(&bad), Some(2), "{}", text(&bad));

    let mut with_pii = event("acme", 1);
    with_pii["session_id"] = "jane.doe@example.com".into();
    with_pii["labels"] = serde_json::json!({"contact": "call +1 415-555-0123"});
    write_jsonl(&file, &[with_pii]);
    let imported = tool(&["import", arg(&dir), arg(&file)]);
    assert_eq!(code(&imported), Some(0), "{}", text(&imported));
    let stored = jsonl(&tool(&["tail", arg(&dir), "--json"]));
    let stored = &stored[0]["event"];
    assert_eq!(stored["session_id"], "[email]");
    assert_eq!(stored["labels"]["contact"], "call +* ***-***-**23");
    assert_verifies(&dir);
}
