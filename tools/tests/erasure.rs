//! Guards `trailmix-db shred`, `hold` and `release` by running the built binary on a demo
//! store: a hold refuses the shred (exit code 2, the message names the hold), a release lets
//! it run, the shredded subject's receipts then read as "shredded" through `query`, `inspect`
//! counts the records and the key store, a shredded receipt still proves included, and the
//! store still verifies.

mod common;

use std::path::Path;

use common::{arg, assert_verifies, code, json, jsonl, text, tool};

/// `prove` and `verify-proof` of receipt `seq`: verified, payload encrypted.
fn proves_included_encrypted(dir: &Path, scratch: &Path, seq: u64) {
    let seq = seq.to_string();
    let bundle = scratch.join("proof.json");
    let prove = tool(&["prove", arg(dir), "--seq", &seq, "-o", arg(&bundle)]);
    assert_eq!(code(&prove), Some(0), "{}", text(&prove));
    let public_key = dir.join("signing.pub");
    let check = json(&tool(&[
        "verify-proof",
        arg(&bundle),
        "--public-key",
        arg(&public_key),
        "--json",
    ]));
    assert_eq!(check["verdict"], "verified", "{check}");
    assert_eq!(check["payload_encrypted"], true, "{check}");
}

#[test]
fn hold_blocks_shred_until_release_and_reads_say_shredded() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    let (tenant, subject, _) = common::demo_with_subject(&dir, 300);
    let who = ["--tenant", &tenant, "--subject", &subject];

    let held = json(&tool(
        &[
            &["hold", arg(&dir)][..],
            &who,
            &["--request-id", "matter-1", "--json"],
        ]
        .concat(),
    ));
    assert_eq!(held["action"], "hold");
    assert_eq!(held["holds_in_force"], 1);

    let refused = tool(&[&["shred", arg(&dir)][..], &who, &["--request-id", "dsr-1"]].concat());
    assert_eq!(code(&refused), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("legal hold"), "{}", text(&refused));

    let released = tool(
        &[
            &["release", arg(&dir)][..],
            &who,
            &["--request-id", "matter-1"],
        ]
        .concat(),
    );
    assert_eq!(code(&released), Some(0), "{}", text(&released));

    let shred = json(&tool(
        &[
            &["shred", arg(&dir)][..],
            &who,
            &["--request-id", "dsr-1", "--json"],
        ]
        .concat(),
    ));
    assert_eq!(shred["request_id"], "dsr-1");
    assert_eq!(shred["key_ids"].as_array().expect("key ids").len(), 1);
    assert!(shred["kek_id"].as_u64().expect("kek id") >= 2);

    let filter = format!("subject={subject}");
    let after = jsonl(&tool(&[
        "query",
        arg(&dir),
        &filter,
        &format!("tenant={tenant}"),
        "--json",
    ]));
    assert!(!after.is_empty());
    for line in &after {
        assert!(line["event"].is_null(), "{line}");
        assert_eq!(line["payload_state"], "shredded", "{line}");
        assert_eq!(line["header"]["subject_id"], subject.as_str());
    }
    let table = text(&tool(&["query", arg(&dir), &filter]));
    assert!(table.contains("(payload shredded)"), "{table}");

    let summary = json(&tool(&["inspect", arg(&dir), "--json"]));
    assert_eq!(summary["shred_records"], 1, "{summary}");
    assert_eq!(summary["hold_records"], 2, "{summary}");
    assert_eq!(summary["key_store"]["shredded_keys"], 1, "{summary}");
    assert_eq!(
        summary["encrypted_receipts"], summary["receipts"],
        "{summary}"
    );
    let human = text(&tool(&["inspect", arg(&dir)]));
    assert!(
        human.contains("1 shred record(s), 2 legal hold record(s)"),
        "{human}"
    );

    // A shredded receipt is still proven included: the proof covers its ciphertext.
    proves_included_encrypted(&dir, scratch.path(), after[0]["seq"].as_u64().expect("seq"));

    let again = tool(&[&["shred", arg(&dir)][..], &who, &["--request-id", "dsr-2"]].concat());
    assert_eq!(code(&again), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("already shredded"),
        "{}",
        text(&again)
    );
    assert_verifies(&dir);
}
