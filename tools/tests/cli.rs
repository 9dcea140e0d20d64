//! Guards the `trailmix-db` tool as a user meets it: demo, inspect (text and JSON), verify
//! with its exit codes (0 verified, 1 damaged, 2 usage or I/O error).

use std::path::Path;
use std::process::{Command, Output};

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailmix-db"))
        .args(args)
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

fn demo(dir: &Path, receipts: &str) -> Output {
    tool(&[
        "demo",
        "--dir",
        dir.to_str().expect("utf-8 path"),
        "--receipts",
        receipts,
        "--batch",
        "100",
    ])
}

#[test]
fn demo_twice_then_inspect_and_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("trailmix-data");
    let first = demo(&dir, "3000");
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("created a new store"),
        "{}",
        text(&first)
    );
    let second = demo(&dir, "2000");
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains("3000 records already there"),
        "{}",
        text(&second)
    );

    let dir_arg = dir.to_str().expect("utf-8 path");
    let inspect = tool(&["inspect", dir_arg, "--json"]);
    assert!(inspect.status.success(), "{}", text(&inspect));
    let summary: serde_json::Value =
        serde_json::from_slice(&inspect.stdout).expect("inspect --json is JSON");
    assert_eq!(summary["records"], 5000);
    assert_eq!(summary["hash_algorithm"], "blake3");
    assert_eq!(summary["segments"][0]["state"], "closed");

    let record = tool(&["inspect", dir_arg, "--seq", "4999", "--json"]);
    let record: serde_json::Value = serde_json::from_slice(&record.stdout).expect("JSON");
    assert!(
        record["payload_preview"]
            .as_str()
            .expect("text")
            .contains("evt-000000004999")
    );

    let verify = tool(&["verify", dir_arg]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    assert!(text(&verify).starts_with("VERIFIED"), "{}", text(&verify));
}

#[test]
fn verify_names_the_damaged_place_and_exits_1() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("trailmix-data");
    assert!(demo(&dir, "2000").status.success());
    let dir_arg = dir.to_str().expect("utf-8 path");
    let frames = tool(&[
        "inspect",
        dir_arg,
        "--segment",
        "0",
        "--skip",
        "1000",
        "--limit",
        "1",
        "--json",
    ]);
    let frames: serde_json::Value = serde_json::from_slice(&frames.stdout).expect("JSON");
    let offset = frames[0]["offset"].as_u64().expect("offset");

    let segment = dir.join("wal").join("00000000000000000000.seg");
    let mut bytes = std::fs::read(&segment).expect("read segment");
    let at = usize::try_from(offset).expect("fits") + 40;
    bytes[at] ^= 0x01; // one bit of record 1000's payload
    std::fs::write(&segment, &bytes).expect("write segment");

    let verify = tool(&["verify", dir_arg]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    let out = text(&verify);
    assert!(out.starts_with("DAMAGED"), "{out}");
    assert!(
        out.contains(&format!("segment 0 at byte offset {offset}")),
        "{out}"
    );
}

#[test]
fn verify_of_a_missing_store_exits_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let verify = tool(&[
        "verify",
        tmp.path().join("nothing-here").to_str().expect("utf-8"),
    ]);
    assert_eq!(verify.status.code(), Some(2), "{}", text(&verify));
    assert!(text(&verify).contains("no WAL exists"), "{}", text(&verify));
}
