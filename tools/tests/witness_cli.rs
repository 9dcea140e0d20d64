//! Guards `trailmix-db witness` and `verify --witness-key` by running the built binary: a
//! witness follows a store across an epoch seal, refuses to cosign a rolled-back copy, and
//! `verify` accepts its cosigned checkpoint as the anchor (catching the rollback) only when
//! the cosignature verifies with the given witness key (exit 1 when it does not); `cosign`
//! reads a store a live writer holds, and refuses while another witness holds its state.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;

use common::{arg, code, json, text, tool, tool_call};
use trailmix_db::Db;

fn append(dir: &Path, from: u64, count: u64, seal: bool) {
    let db = Db::open(dir).expect("open");
    for n in from..from + count {
        db.append_and_wait(&tool_call(n)).expect("append");
        if seal && n == from + count / 2 {
            db.seal_epoch().expect("seal");
        }
    }
    db.close().expect("close");
}

/// A copy of a closed store (`cp -a`: the store's files as they are).
fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(status.success());
}

/// `witness init`: prints the verifier key, writes the key with mode 0600.
fn init_witness(key: &Path) -> String {
    let init = tool(&[
        "witness",
        "init",
        "--key",
        arg(key),
        "--name",
        "w.example/1",
    ]);
    assert_eq!(code(&init), Some(0), "{}", text(&init));
    String::from_utf8(init.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

fn cosign(store: &Path, key: &Path, state: &Path) -> Output {
    tool(&[
        "witness",
        "cosign",
        arg(store),
        "--witness-key",
        arg(key),
        "--state",
        arg(state),
        "--json",
    ])
}

fn verify(store: &Path, anchor: &Path, witness: &str) -> Output {
    tool(&[
        "verify",
        arg(store),
        "--trusted-checkpoint",
        arg(anchor),
        "--witness-key",
        witness,
    ])
}

/// Writes `note` to `out` with one base64 character of its last (the witness's) line changed:
/// a byte of the cosignature's timestamp.
fn change_cosignature(note: &str, out: &Path) {
    let (head, line) = note.trim_end().rsplit_once('\n').expect("lines");
    let (name, b64) = line.rsplit_once(' ').expect("witness line");
    let mut chars: Vec<char> = b64.chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    let b64: String = chars.into_iter().collect();
    std::fs::write(out, format!("{head}\n{name} {b64}\n")).expect("write");
}

#[test]
fn witness_init_writes_a_private_key_once_and_shows_its_vkey() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let key = scratch.path().join("witness.key");
    let vkey = init_witness(&key);
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
}

#[test]
fn witness_cosigns_a_growing_store_and_verify_uses_its_anchor() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    let backup = scratch.path().join("backup");
    let key = scratch.path().join("witness.key");
    let state = scratch.path().join("witness.state");
    let anchor = scratch.path().join("anchor.note");
    let vkey = init_witness(&key);

    append(&dir, 0, 10, false);
    let first = cosign(&dir, &key, &state);
    assert_eq!(code(&first), Some(0), "{}", text(&first));
    copy_dir(&dir, &backup);

    // The store seals epoch 0 and goes on: the witness cosigns the seal, then epoch 1.
    append(&dir, 10, 10, true);
    let second = cosign(&dir, &key, &state);
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
    let note = outcome["note"].as_str().expect("note");
    std::fs::write(&anchor, note).expect("write anchor");

    // The rolled-back copy: the witness refuses it, verify with the anchor catches it.
    let refused = cosign(&backup, &key, &state);
    assert_eq!(code(&refused), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("refused"), "{}", text(&refused));
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

    // Another witness's key (same name), or a changed cosignature, is not an anchor.
    // Both are a failed verification (exit 1), not a usage error.
    let stranger = init_witness(&scratch.path().join("stranger.key"));
    let by_stranger = verify(&dir, &anchor, &stranger);
    assert_eq!(code(&by_stranger), Some(1), "{}", text(&by_stranger));
    assert!(
        text(&by_stranger).contains("no cosignature by witness"),
        "{}",
        text(&by_stranger)
    );
    let changed = scratch.path().join("changed.note");
    change_cosignature(note, &changed);
    let forged = verify(&dir, &changed, &vkey);
    assert_eq!(code(&forged), Some(1), "{}", text(&forged));
    assert!(
        text(&forged).contains("does not verify"),
        "{}",
        text(&forged)
    );
    let forged_json = tool(&[
        "verify",
        arg(&dir),
        "--trusted-checkpoint",
        arg(&changed),
        "--witness-key",
        &vkey,
        "--json",
    ]);
    assert_eq!(code(&forged_json), Some(1), "{}", text(&forged_json));
    let outcome = json(&forged_json);
    assert_eq!(outcome["verdict"], "cosignature_invalid", "{outcome}");
    assert!(outcome["trusted_checkpoint"]["cosignature_error"].is_string());
}

#[test]
fn witness_cosigns_beside_a_live_writer() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    let key = scratch.path().join("witness.key");
    let state = scratch.path().join("witness.state");
    init_witness(&key);

    // The service keeps the store open for writing the whole time.
    let db = Db::open(&dir).expect("open");
    for n in 0..10 {
        db.append_and_wait(&tool_call(n)).expect("append");
    }
    db.checkpoint().expect("checkpoint");
    let first = cosign(&dir, &key, &state);
    assert_eq!(code(&first), Some(0), "{}", text(&first));
    assert_eq!(
        json(&first)["steps"][0]["tree_size"],
        11,
        "{}",
        text(&first)
    );

    // It grows: the witness proves consistency from the read-only view and cosigns again.
    for n in 10..25 {
        db.append_and_wait(&tool_call(n)).expect("append");
    }
    db.checkpoint().expect("checkpoint");
    let second = cosign(&dir, &key, &state);
    assert_eq!(code(&second), Some(0), "{}", text(&second));
    let steps = &json(&second)["steps"];
    assert_eq!(steps[0]["previous_size"], 11, "{steps}");
    // The writer never noticed: it goes on appending.
    db.append_and_wait(&tool_call(25))
        .expect("append after the witness");
    db.close().expect("close");
}

#[test]
fn a_second_witness_on_the_same_state_file_is_refused() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    let key = scratch.path().join("witness.key");
    let state = scratch.path().join("witness.state");
    init_witness(&key);
    append(&dir, 0, 5, false);

    // One witness holds the state (as a cosign in progress does).
    let signer = trailmix_db::note::CosignatureSigner::generate("w.example/1").expect("signer");
    let holder =
        trailmix_db::witness::Witness::open(signer, &state, Vec::new()).expect("first witness");
    let refused = cosign(&dir, &key, &state);
    assert_eq!(code(&refused), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("in use by another witness"),
        "{}",
        text(&refused)
    );
    assert!(!state.exists(), "the refused witness wrote the state");

    drop(holder);
    let after = cosign(&dir, &key, &state);
    assert_eq!(code(&after), Some(0), "{}", text(&after));
}
