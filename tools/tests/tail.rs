//! Guards `trailmix-db tail` by running the built binary: every matching durable receipt as
//! valid JSON lines (the same lines as `query --json`), filters and start positions, and
//! `--follow` on a live store written by another process and by the library (no writer lock
//! taken), ending with exit code 0 on SIGTERM and when its reader closes the pipe; a receipt
//! whose bytes no longer give the chain hash the next entry links to is refused (exit code 1).

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::{arg, code, event, event_ids, jsonl, text, tool, write_jsonl};
use serde_json::Value;
use trailmix_db::receipt::Receipt;
use trailmix_db::{Db, DbOptions, Durability};

/// How long a test waits for a line that should come (generous: debug builds on a busy
/// machine); a line that never comes fails the test after it.
const PATIENCE: Duration = Duration::from_secs(20);

fn import(dir: &std::path::Path, events: &[Value]) {
    let file = dir.with_extension("jsonl");
    write_jsonl(&file, events);
    let output = tool(&["import", arg(dir), arg(&file)]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
}

/// Starts `trailmix-db tail ARGS` with its stdout read line by line on a thread.
fn spawn_tail(args: &[&str]) -> (Child, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailmix-db"))
        .arg("tail")
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tail");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, receive) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (child, receive)
}

/// The next `n` lines, parsed; fails after [`PATIENCE`].
fn next_lines(lines: &Receiver<String>, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let line = lines
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|e| panic!("line {} of {n} did not come: {e}", i + 1));
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
        })
        .collect()
}

/// Sends SIGTERM and returns the exit code and stderr.
fn terminate(mut child: Child) -> (Option<i32>, String) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = wait_for(&mut child);
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        std::io::Read::read_to_string(&mut err, &mut stderr).expect("stderr");
    }
    (status, stderr)
}

/// Waits for the child to end; kills it and fails after [`PATIENCE`].
fn wait_for(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("tail did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tail_prints_every_matching_durable_receipt_as_json_lines() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let events: Vec<Value> = (0..20)
        .map(|n| event("acme", n))
        .chain((0..10).map(|n| event("globex", n)))
        .collect();
    import(&dir, &events);

    let all = tool(&["tail", arg(&dir), "--json"]);
    assert_eq!(code(&all), Some(0), "{}", text(&all));
    let lines = jsonl(&all);
    assert_eq!(lines.len(), 30);
    let expected: Vec<String> = events
        .iter()
        .map(|e| e["event_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(event_ids(&lines), expected);
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| l["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(lines[25]["event"]["output"], events[25]["output"]);
    assert_eq!(lines[25]["event"]["tenant_id"], "globex");

    // Filtered, it prints exactly what `query --json` prints.
    for filter in [
        vec!["tenant=globex"],
        vec!["tenant=acme", "decision=deny"],
        vec!["session=sess-1"],
    ] {
        let mut args = vec!["tail", arg(&dir)];
        args.extend(&filter);
        args.push("--json");
        let tailed = tool(&args);
        args[0] = "query";
        let queried = tool(&args);
        assert_eq!(code(&queried), Some(0), "{}", text(&queried));
        assert!(!tailed.stdout.is_empty(), "{filter:?}");
        assert_eq!(
            String::from_utf8_lossy(&tailed.stdout),
            String::from_utf8_lossy(&queried.stdout),
            "{filter:?}"
        );
    }
    let globex = jsonl(&tool(&["tail", arg(&dir), "tenant=globex", "--json"]));
    assert_eq!(globex.len(), 10);
    let denials = jsonl(&tool(&[
        "tail",
        arg(&dir),
        "tenant=acme",
        "decision=deny",
        "--json",
    ]));
    assert_eq!(denials.len(), 7, "acme 0, 3, ..., 18");

    // From a sequence number on.
    let from = seqs[10].to_string();
    let later = jsonl(&tool(&["tail", arg(&dir), "--from-seq", &from, "--json"]));
    assert_eq!(event_ids(&later), expected[10..]);

    // The table, as `query` prints it, with a count.
    let table = tool(&["tail", arg(&dir), "tenant=globex"]);
    let out = String::from_utf8_lossy(&table.stdout);
    assert!(out.starts_with("       seq  event time"), "{out}");
    assert!(out.contains("evt-globex-9"), "{out}");
    assert!(out.trim_end().ends_with("10 receipt(s)"), "{out}");

    // Bad filters and missing stores are usage errors.
    let bad = tool(&["tail", arg(&dir), "tenant"]);
    assert_eq!(code(&bad), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("bad filter"), "{}", text(&bad));
    let bad = tool(&["tail", arg(&dir), "limit=5"]);
    assert_eq!(code(&bad), Some(2), "{}", text(&bad));
    let missing = tool(&["tail", arg(&tmp.path().join("nothing")), "--json"]);
    assert_eq!(code(&missing), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("does not exist"),
        "{}",
        text(&missing)
    );
    let usage = tool(&["tail", arg(&dir), "--from-end"]);
    assert_eq!(code(&usage), Some(2), "--from-end needs --follow");
}

#[test]
fn tail_follow_sees_receipts_appended_after_it_started() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    import(&dir, &(0..3).map(|n| event("acme", n)).collect::<Vec<_>>());

    let (child, lines) = spawn_tail(&[arg(&dir), "tenant=acme", "--follow", "--json"]);
    let first = next_lines(&lines, 3);
    assert_eq!(
        event_ids(&first),
        ["evt-acme-0", "evt-acme-1", "evt-acme-2"]
    );

    // Another process writes while tail follows: tail holds no lock.
    import(&dir, &(3..5).map(|n| event("acme", n)).collect::<Vec<_>>());
    assert_eq!(
        event_ids(&next_lines(&lines, 2)),
        ["evt-acme-3", "evt-acme-4"]
    );

    // A service writes through the library, the store open all along.
    let db = Db::open_with(
        &dir,
        DbOptions::default().checkpoint_interval(Duration::from_millis(100)),
    )
    .expect("open while tail follows");
    for n in 5..9 {
        let receipt = Receipt::from_json_value(event("acme", n)).expect("valid");
        db.append_and_wait(&receipt).expect("durable");
    }
    let other = Receipt::from_json_value(event("globex", 1)).expect("valid");
    db.append_and_wait(&other).expect("durable");
    let live = next_lines(&lines, 4);
    assert_eq!(
        event_ids(&live),
        ["evt-acme-5", "evt-acme-6", "evt-acme-7", "evt-acme-8"]
    );
    assert!(
        live.windows(2)
            .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64())
    );
    db.close().expect("close");
    assert!(
        lines.recv_timeout(Duration::from_millis(500)).is_err(),
        "the globex receipt does not match the filter"
    );

    let (status, stderr) = terminate(child);
    assert_eq!(status, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // --from-end skips what is there. The table's title row shows tail has fixed its start.
    let (child, lines) = spawn_tail(&[arg(&dir), "--follow", "--from-end"]);
    let title = lines.recv_timeout(PATIENCE).expect("the title row");
    assert!(title.contains("event id"), "{title}");
    import(&dir, &[event("acme", 9)]);
    let row = lines.recv_timeout(PATIENCE).expect("a row");
    assert!(row.contains("evt-acme-9") && row.contains("deny"), "{row}");
    let (status, _) = terminate(child);
    assert_eq!(status, Some(0));
}

#[test]
fn tail_shows_only_receipts_confirmed_durable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    import(&dir, &[event("acme", 0)]);
    // Acknowledged once written into the log, synced only much later: the log holds these
    // receipts, but a power loss could still take them.
    let db = Db::open_with(
        &dir,
        DbOptions::default()
            .durability(Durability::Written)
            .flush_interval(Duration::from_secs(600))
            .checkpoint_interval(Duration::from_secs(600)),
    )
    .expect("open");
    for n in 1..4 {
        let receipt = Receipt::from_json_value(event("acme", n)).expect("valid");
        db.append_and_wait(&receipt).expect("written");
    }
    let inspect = common::json(&tool(&["inspect", arg(&dir), "--json"]));
    assert_eq!(inspect["receipts"], 4, "a reader sees them in the log");
    let early = tool(&["tail", arg(&dir), "--json"]);
    assert_eq!(code(&early), Some(0), "{}", text(&early));
    assert_eq!(event_ids(&jsonl(&early)), ["evt-acme-0"]);
    let note = String::from_utf8_lossy(&early.stderr);
    assert!(note.contains("not confirmed durable"), "{note}");
    // Closing syncs them, and the final checkpoint and seal confirm it.
    db.close().expect("close");
    let late = jsonl(&tool(&["tail", arg(&dir), "--json"]));
    assert_eq!(
        event_ids(&late),
        ["evt-acme-0", "evt-acme-1", "evt-acme-2", "evt-acme-3"]
    );
}

#[test]
fn tail_ends_quietly_when_its_reader_goes_away() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    import(
        &dir,
        &(0..400).map(|n| event("acme", n)).collect::<Vec<_>>(),
    );

    // Closed while writing: many lines, one read.
    for follow in [false, true] {
        let mut args = vec!["tail", arg(&dir), "--json"];
        if follow {
            args.push("--follow");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_trailmix-db"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tail");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("a line");
        assert!(line.contains("evt-acme-0"), "{line}");
        drop(reader);
        let status = wait_for(&mut child);
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
            .expect("stderr");
        assert_eq!(status, Some(0), "follow {follow}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    // Closed while idle: nothing new to write, and tail still notices.
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailmix-db"))
        .args(["tail", arg(&dir), "--follow", "--from-end", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tail");
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().expect("try_wait").is_none(), "it follows");
    drop(child.stdout.take());
    assert_eq!(wait_for(&mut child), Some(0));
}

/// Rewrites one byte of receipt `seq`'s payload in place and recomputes the frame checksum,
/// so that only the chain can tell: a version 3 entry stores no digests of its own.
fn rewrite_payload_byte_with_valid_crc(dir: &std::path::Path, seq: u64) {
    use trailmix_db::entry::{EntryKind, decode_entry};
    use trailmix_db::wal::format::{FRAME_HEADER_BYTES, FrameHeader};
    use trailmix_db::wal::{Seq, WalReader};

    let reader = WalReader::open(dir.join("wal")).expect("open log");
    let record = reader.read(Seq(seq)).expect("read receipt");
    let mut entry_bytes = record.payload.clone();
    let entry = decode_entry(EntryKind::Receipt, &record.payload).expect("a receipt");
    assert!(
        entry.stored.is_none(),
        "a version 3 entry (no stored digests)"
    );
    let payload_at = entry.payload.as_ptr() as usize - record.payload.as_ptr() as usize;
    let letter = (payload_at..payload_at + entry.payload.len())
        .find(|&i| entry_bytes[i].is_ascii_lowercase())
        .expect("a letter in the clear JSON payload");
    entry_bytes[letter] = entry_bytes[letter].to_ascii_uppercase();

    let segment = reader
        .segments()
        .iter()
        .find(|s| s.header.segment_no == record.position.segment)
        .expect("segment")
        .file_name
        .clone();
    let path = dir.join("wal").join(segment);
    let mut file = std::fs::read(&path).expect("read segment");
    let at = usize::try_from(record.position.offset).expect("fits");
    let header_len = usize::try_from(FRAME_HEADER_BYTES).expect("fits");
    let old = FrameHeader::decode_unchecked(&file[at..at + header_len]).expect("frame header");
    file[at..at + header_len].copy_from_slice(&old.encode(&entry_bytes));
    file[at + header_len..at + header_len + entry_bytes.len()].copy_from_slice(&entry_bytes);
    std::fs::write(&path, &file).expect("write segment");
}

#[test]
fn tail_refuses_a_receipt_whose_bytes_break_the_next_link() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    // Clear payloads, so that no decryption check can catch the edit: only the chain can.
    let db = Db::open_with(
        &dir,
        DbOptions::default().payload_encryption(trailmix_db::PayloadEncryption::Off),
    )
    .expect("create");
    let mut seqs = Vec::new();
    for n in 0..4 {
        let receipt = Receipt::from_json_value(event("acme", n)).expect("valid");
        seqs.push(db.append_and_wait(&receipt).expect("durable").seq.0);
    }
    db.close().expect("close");
    let clean = tool(&["tail", arg(&dir), "--json"]);
    assert_eq!(code(&clean), Some(0), "{}", text(&clean));
    assert_eq!(jsonl(&clean).len(), 4);

    let target = seqs[1];
    rewrite_payload_byte_with_valid_crc(&dir, target);
    let tampered = tool(&["tail", arg(&dir), "--json"]);
    assert_eq!(code(&tampered), Some(1), "{}", text(&tampered));
    let said = String::from_utf8_lossy(&tampered.stderr);
    assert!(
        said.contains(&format!("store damaged at seq {target}")),
        "{said}"
    );
    // Only the receipt before it was shown; the edited one never was.
    assert_eq!(event_ids(&jsonl(&tampered)), ["evt-acme-0"]);
    // `query` reads through the engine, which checks the same link: damage, exit code 1.
    let query = tool(&["query", arg(&dir), "tenant=acme", "--json"]);
    assert_eq!(code(&query), Some(1), "{}", text(&query));
    let said = String::from_utf8_lossy(&query.stderr);
    assert!(said.contains(&format!("seq {target}")), "{said}");
}
