//! Guards `trailmix-db witness` and `verify --witness-key` by running the built binary: a
//! witness follows a store across an epoch seal, refuses to cosign a rolled-back copy, and
//! `verify` accepts its cosigned checkpoint as the anchor (catching the rollback) only when
//! the cosignature verifies with the given witness key.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::{arg, code, json, text, tool};
use trailmix_db::Db;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};

fn append(dir: &Path, from: u64, count: u64, seal: bool) {
    let db = Db::open(dir).expect("open");
    for n in from..from + count {
        let receipt = Receipt::builder("acme", format!("evt-{n}"), Kind::ToolCall)
            .app_id("agent")
            .actor_type(ActorType::Agent)
            .event_time(Timestamp::from_unix_nanos(1_700_000_000_000_000_000))
            .build()
            .expect("valid");
        db.append_and_wait(&receipt).expect("append");
        if seal && n == from + count / 2 {
            db.seal_epoch().expect("seal");
        }
    }
    db.close().expect("close");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn witness_cosigns_a_growing_store_and_verify_uses_its_anchor() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    let backup = scratch.path().join("backup");
    let key = scratch.path().join("witness.key");
    let state = scratch.path().join("witness.state");
    let anchor = scratch.path().join("anchor.note");

    let init = tool(&[
        "witness",
        "init",
        "--key",
        arg(&key),
        "--name",
        "w.example/1",
    ]);
    assert_eq!(code(&init), Some(0), "{}", text(&init));
    let vkey = String::from_utf8(init.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert!(vkey.starts_with("w.example/1+"), "{vkey}");
    let mode = std::fs::metadata(&key).expect("key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = tool(&[
        "witness",
        "init",
        "--key",
        arg(&key),
        "--name",
        "w.example/1",
    ]);
    assert_eq!(
        code(&again),
        Some(2),
        "an existing key is never overwritten"
    );
    let shown = tool(&["witness", "vkey", "--key", arg(&key)]);
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), vkey);

    append(&dir, 0, 10, false);
    let cosign = |store: &Path| {
        tool(&[
            "witness",
            "cosign",
            arg(store),
            "--witness-key",
            arg(&key),
            "--state",
            arg(&state),
            "--json",
        ])
    };
    let first = cosign(&dir);
    assert_eq!(code(&first), Some(0), "{}", text(&first));
    copy_dir(&dir, &backup);

    // The store seals epoch 0 and goes on: the witness cosigns the seal, then epoch 1.
    append(&dir, 10, 10, true);
    let second = cosign(&dir);
    assert_eq!(code(&second), Some(0), "{}", text(&second));
    let outcome = json(&second);
    let steps = outcome["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{outcome}");
    assert_eq!(steps[0]["kind"], "epoch_seal");
    assert!(
        steps[1]["origin"]
            .as_str()
            .expect("origin")
            .ends_with("/epoch/1")
    );
    std::fs::write(&anchor, outcome["note"].as_str().expect("note")).expect("write anchor");

    // The rolled-back copy: the witness refuses it, verify with the anchor catches it.
    let refused = cosign(&backup);
    assert_eq!(code(&refused), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("refused"), "{}", text(&refused));
    let verify = |store: &Path, anchor: &Path, witness: &str| {
        tool(&[
            "verify",
            arg(store),
            "--trusted-checkpoint",
            arg(anchor),
            "--witness-key",
            witness,
        ])
    };
    let rolled_back = verify(&backup, &anchor, &vkey);
    assert_eq!(code(&rolled_back), Some(1), "{}", text(&rolled_back));
    assert!(text(&rolled_back).contains("truncated or rolled back"));

    // The honest store, grown further, verifies and says who cosigned the anchor.
    append(&dir, 20, 3, false);
    let honest = verify(&dir, &anchor, &vkey);
    assert_eq!(code(&honest), Some(0), "{}", text(&honest));
    assert!(
        text(&honest).contains("cosigned by witness w.example/1+"),
        "{}",
        text(&honest)
    );

    // Another witness's key, or a changed cosignature, is not an anchor.
    let other_key = scratch.path().join("other.key");
    let other = tool(&[
        "witness",
        "init",
        "--key",
        arg(&other_key),
        "--name",
        "w.example/1",
    ]);
    let other_vkey = String::from_utf8(other.stdout).expect("utf-8");
    let by_other = verify(&dir, &anchor, other_vkey.trim());
    assert_eq!(code(&by_other), Some(2), "{}", text(&by_other));
    assert!(
        text(&by_other).contains("no cosignature by witness"),
        "{}",
        text(&by_other)
    );

    let note = std::fs::read_to_string(&anchor).expect("anchor");
    let (head, line) = note.trim_end().rsplit_once('\n').expect("lines");
    let (name, b64) = line.rsplit_once(' ').expect("witness line");
    let mut chars: Vec<char> = b64.chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    let changed = scratch.path().join("changed.note");
    std::fs::write(
        &changed,
        format!("{head}\n{name} {}\n", chars.into_iter().collect::<String>()),
    )
    .expect("write");
    let forged = verify(&dir, &changed, &vkey);
    assert_eq!(code(&forged), Some(2), "{}", text(&forged));
    assert!(
        text(&forged).contains("does not verify"),
        "{}",
        text(&forged)
    );
}
