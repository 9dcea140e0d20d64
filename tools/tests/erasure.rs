//! Guards `trailmix-db shred`, `hold` and `release` by running the built binary on a demo
//! store: a hold refuses the shred (exit code 2, the message names the hold), a release lets
//! it run, the shredded subject's receipts then read as "shredded" through `query`, `inspect`
//! counts the records and the key store, a shredded receipt still proves included, and the
//! store still verifies. A `--subjects-file` shred erases every listed subject with one KEK
//! rotation; a list with an unknown subject changes nothing.

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

#[test]
fn shred_with_a_subjects_file_erases_every_listed_subject_with_one_rotation() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    let (_, _, lines) = common::demo_with_subject(&dir, 300);
    let mut by_tenant: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for line in &lines {
        if let (Some(tenant), Some(subject)) = (
            line["event"]["tenant_id"].as_str(),
            line["event"]["subject_id"].as_str(),
        ) {
            by_tenant
                .entry(tenant.to_owned())
                .or_default()
                .insert(subject.to_owned());
        }
    }
    let (tenant, subjects) = by_tenant
        .into_iter()
        .max_by_key(|(_, s)| s.len())
        .expect("the demo writes receipts with subjects");
    assert!(subjects.len() >= 2, "{subjects:?}");
    let chosen: Vec<&String> = subjects.iter().take(2).collect();
    let list = scratch.path().join("subjects.txt");
    std::fs::write(
        &list,
        format!("# erasure batch\n{}\n\n{}\n", chosen[0], chosen[1]),
    )
    .expect("write list");
    let kek_before = json(&tool(&["inspect", arg(&dir), "--json"]))["key_store"]["kek_id"]
        .as_u64()
        .expect("kek id");

    // One unknown subject refuses the batch: nothing is shredded.
    let bad = scratch.path().join("bad.txt");
    std::fs::write(&bad, format!("{}\nnobody-such\n", chosen[0])).expect("write");
    let refused = tool(&[
        "shred",
        arg(&dir),
        "--tenant",
        &tenant,
        "--subjects-file",
        arg(&bad),
        "--request-id",
        "r-0",
    ]);
    assert_eq!(code(&refused), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("nobody-such"), "{}", text(&refused));

    let shred = tool(&[
        "shred",
        arg(&dir),
        "--tenant",
        &tenant,
        "--subjects-file",
        arg(&list),
        "--request-id",
        "r-1",
        "--json",
    ]);
    assert_eq!(code(&shred), Some(0), "{}", text(&shred));
    let report = json(&shred);
    assert_eq!(
        report["subjects"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    assert_eq!(
        report["kek_id"].as_u64(),
        Some(kek_before + 1),
        "one rotation: {report}"
    );
    for subject in &chosen {
        let rows = jsonl(&tool(&[
            "query",
            arg(&dir),
            &format!("tenant={tenant}"),
            &format!("subject={subject}"),
            "--json",
        ]));
        assert!(!rows.is_empty(), "{subject}");
        assert!(
            rows.iter().all(|r| r["payload_state"] == "shredded"),
            "{subject}: {rows:?}"
        );
    }
    assert_verifies(&dir);
}
