//! Guards `export` and `verify-pack` as a user meets them, through the built binary: the demo's
//! own pack, text and `--json` output, exit codes (0 verified, 1 not valid evidence, 2 usage or
//! I/O: no key, bad arguments, unreadable pack), a tampered pack and a wrong key, and the shred
//! record `verify-pack` names behind shredded receipts.

mod common;

use std::path::Path;

use common::{arg, code, json, text, tool};
use trailmix_db::note::NoteVerifier;

/// `trailmix-db export STORE --tenant TENANT -o PACK`.
fn export(store: &Path, tenant: &str, pack: &Path) -> std::process::Output {
    tool(&["export", arg(store), "--tenant", tenant, "-o", arg(pack)])
}

fn demo_store(dir: &Path) {
    let output = tool(&["demo", "--dir", arg(dir), "--receipts", "400"]);
    assert_eq!(code(&output), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("checked with the public key alone: VERIFIED, complete"),
        "{}",
        text(&output)
    );
}

#[test]
fn export_then_verify_pack_in_text_and_json() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    demo_store(&store);
    let key = store.join("signing.pub");

    let pack = tmp.path().join("pack");
    let out = export(&store, "globex-bank", &pack);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(text(&out).contains("wrote evidence pack"), "{}", text(&out));
    let fingerprint_line = text(&out)
        .lines()
        .find(|l| l.contains("key fingerprint"))
        .map(str::to_owned)
        .expect("export prints the key fingerprint");
    assert!(
        text(&out).contains("start           proven: starts at the tenant's first receipt"),
        "{}",
        text(&out)
    );

    let out = tool(&["verify-pack", arg(&pack), "--key", arg(&key)]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.starts_with("VERIFIED evidence pack"), "{shown}");
    assert!(shown.contains("tenant          globex-bank"), "{shown}");
    assert!(
        shown.contains("start           proven: starts at the tenant's first receipt"),
        "{shown}"
    );

    // `--public-key`, as `verify` and `verify-proof` spell it, works as well as `--key`.
    let out = tool(&[
        "verify-pack",
        arg(&pack),
        "--public-key",
        arg(&key),
        "--json",
    ]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["verdict"], "verified");
    assert_eq!(report["report"]["tenant"], "globex-bank");
    assert_eq!(
        report["report"]["completeness"]["start"]["proof"],
        "first_receipt_of_tenant"
    );
    assert!(
        report["report"]["counts"]["included"]
            .as_u64()
            .expect("count")
            > 0
    );

    // The archive form and a fingerprint from outside.
    let archive = tmp.path().join("pack.tar");
    let out = tool(&[
        "export",
        arg(&store),
        "--tenant",
        "globex-bank",
        "--filter",
        "decision=deny",
        "-o",
        arg(&archive),
        "--archive",
    ]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let vkey = std::fs::read_to_string(&key).expect("key");
    let fingerprint =
        trailmix_db::pack::key_fingerprint(&NoteVerifier::from_vkey(vkey.trim()).expect("vkey"));
    assert!(
        fingerprint_line.contains(&fingerprint),
        "{fingerprint_line}"
    );
    let out = tool(&[
        "verify-pack",
        arg(&archive),
        "--key-fingerprint",
        &fingerprint,
    ]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("filter          decision=deny"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_tampered_pack_or_wrong_key_exits_1_and_says_what() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    demo_store(&store);
    let other = tmp.path().join("other");
    demo_store(&other);
    let pack = tmp.path().join("pack");
    let out = export(&store, "globex-bank", &pack);
    assert_eq!(code(&out), Some(0), "{}", text(&out));

    let out = tool(&[
        "verify-pack",
        arg(&pack),
        "--key",
        arg(&other.join("signing.pub")),
    ]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("NOT VERIFIED: the manifest is signed by trailmix-db/"),
        "{}",
        text(&out)
    );

    let receipts = pack.join("receipts.jsonl");
    let mut bytes = std::fs::read(&receipts).expect("read");
    let at = bytes.iter().position(|&b| b == b'7').expect("a digit");
    bytes[at] = b'8';
    std::fs::write(&receipts, bytes).expect("write");
    let key = store.join("signing.pub");
    let out = tool(&["verify-pack", arg(&pack), "--key", arg(&key)]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(
            "NOT VERIFIED: receipts.jsonl was changed: its SHA-256 is not the manifest's"
        ),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("do not rely on any part of it"),
        "{}",
        text(&out)
    );
    let out = tool(&["verify-pack", arg(&pack), "--key", arg(&key), "--json"]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["verdict"], "failed");
    assert_eq!(report["failure"]["kind"], "checksum");
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    demo_store(&store);
    let pack = tmp.path().join("pack");
    let out = export(&store, "globex-bank", &pack);
    assert_eq!(code(&out), Some(0), "{}", text(&out));

    let nothing = tmp.path().join("nothing");
    let key = store.join("signing.pub");
    let (p2, p3) = (tmp.path().join("p2"), tmp.path().join("p3"));
    let cases: [(&[&str], &str); 6] = [
        (
            &["verify-pack", arg(&pack)],
            "no trusted public key was given",
        ),
        (
            &["verify-pack", arg(&nothing), "--key", arg(&key)],
            "cannot read the pack",
        ),
        (
            &["verify-pack", arg(&pack), "--key-fingerprint", "abc"],
            "is not a SHA-256 fingerprint",
        ),
        (
            &[
                "export",
                arg(&store),
                "--tenant",
                "globex-bank",
                "-o",
                arg(&pack),
            ],
            "already exists",
        ),
        (
            &[
                "export",
                arg(&store),
                "--tenant",
                "globex-bank",
                "--from",
                "yesterday",
                "-o",
                arg(&p2),
            ],
            "--from \"yesterday\" is not a time",
        ),
        (
            &[
                "export",
                arg(&store),
                "--tenant",
                "globex-bank",
                "--filter",
                "colour=red",
                "-o",
                arg(&p3),
            ],
            "bad --filter",
        ),
    ];
    for (args, message) in cases {
        let out = tool(args);
        assert_eq!(code(&out), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(message), "{args:?}: {}", text(&out));
    }
    assert!(!p2.exists() && !p3.exists());
}

/// A store whose subject `patient-9` was shredded: `verify-pack` names the shred record behind
/// the shredded receipts, in text and in `--json`; an edited `shreds.jsonl` is refused.
#[test]
fn verify_pack_names_the_shred_record_of_shredded_receipts() {
    use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let db = trailmix_db::Db::open_with(&store, trailmix_db::DbOptions::default()).expect("open");
    for n in 0..4 {
        let receipt = Receipt::builder("clinic", format!("evt-{n}"), Kind::LlmCall)
            .app_id("triage")
            .actor_type(ActorType::Agent)
            .subject_id(if n % 2 == 0 { "patient-9" } else { "patient-2" })
            .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
            .input(serde_json::json!({"prompt": format!("symptoms {n}")}))
            .build()
            .expect("valid receipt");
        db.append_and_wait(&receipt).expect("append");
    }
    let shred_seq = db
        .shred("clinic", "patient-9", "dsr-77")
        .expect("shred")
        .seq
        .0;
    db.close().expect("close");
    let key = store.join("signing.pub");
    let pack = tmp.path().join("pack");
    let out = export(&store, "clinic", &pack);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let wanted = format!("2 included, 2 included+shredded (shred record seq {shred_seq})");
    assert!(text(&out).contains(&wanted), "{}", text(&out));

    let out = tool(&["verify-pack", arg(&pack), "--key", arg(&key)]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    for shown in [
        wanted,
        format!("shred record    seq {shred_seq} at "),
        "subject \"patient-9\" by request \"dsr-77\"".to_owned(),
    ] {
        assert!(text(&out).contains(&shown), "{shown}: {}", text(&out));
    }

    let out = tool(&["verify-pack", arg(&pack), "--key", arg(&key), "--json"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["report"]["counts"]["shredded"], 2);
    assert_eq!(report["report"]["shred_records"][0]["seq"], shred_seq);
    assert_eq!(
        report["report"]["shred_records"][0]["receipts"],
        serde_json::json!([1, 3])
    );

    let shreds = pack.join("shreds.jsonl");
    let edited = std::fs::read_to_string(&shreds)
        .expect("shreds.jsonl")
        .replace("dsr-77", "dsr-78");
    std::fs::write(&shreds, edited).expect("write");
    let out = tool(&["verify-pack", arg(&pack), "--key", arg(&key)]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("NOT VERIFIED: shreds.jsonl was changed"),
        "{}",
        text(&out)
    );
}
