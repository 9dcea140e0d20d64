//! Guards `trailmix-db archive` and `trailmix-db verify --archive` by running the built binary:
//! sealed epochs go to a `file://` archive and to S3 (`SeaweedFS` with Object Lock on 127.0.0.1,
//! endpoint and credentials given as flags), a second run has nothing to do, `prune --archived`
//! drops the archived epochs locally and the store still verifies, the archive verifies from
//! itself alone, and a tampered object makes `verify --archive` exit 1 naming it; `query`
//! `prove` and `inspect --seq` read dropped epochs with `--archive URL` (`export` with
//! `--from-archive URL`), and `prove` says how without it.

mod common;
#[path = "../../engine/tests/common/seaweed.rs"]
mod seaweed;

use std::path::Path;

use common::{arg, code, json, text, tool};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::{Db, DbOptions};

fn receipt(id: String) -> Receipt {
    Receipt::builder("acme", id, Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .input(serde_json::json!({ "prompt": "x".repeat(600) }))
        .build()
        .expect("receipt")
}

/// A closed store with `epochs` sealed epochs whose seals end their segments (more than half
/// full), and a receipt after them, so that the last sealed segment has ended too.
fn sealed_store(dir: &Path, epochs: u64) {
    let db = Db::open_with(dir, DbOptions::default().segment_bytes(64 << 10)).expect("open");
    for e in 0..epochs {
        for n in 0..60 {
            db.append_and_wait(&receipt(format!("evt-{e}-{n}")))
                .expect("append");
        }
        db.seal_epoch().expect("seal").expect("sealed");
    }
    db.append_and_wait(&receipt("evt-open".into()))
        .expect("append");
    db.close().expect("close");
}

#[test]
fn archive_to_a_directory_then_verify_from_it_alone() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    sealed_store(&dir, 2);
    let url = format!("file://{}", scratch.path().join("archive").display());
    let out = json(&tool(&["archive", arg(&dir), "--to", &url, "--json"]));
    assert_eq!(out["verdict"], "archived", "{out}");
    assert_eq!(out["epochs"], serde_json::json!([0, 1]), "{out}");
    assert_eq!(
        out["bytes_per_second_max"],
        16 << 20,
        "the default limit: {out}"
    );
    let again = json(&tool(&["archive", arg(&dir), "--to", &url, "--json"]));
    assert_eq!(again["verdict"], "nothing_to_archive", "{again}");
    let pruned = json(&tool(&["prune", arg(&dir), "--archived", "--json"]));
    assert_eq!(pruned["verdict"], "pruned", "{pruned}");
    assert_eq!(pruned["epochs"], serde_json::json!([0, 1]), "{pruned}");
    common::assert_verifies(&dir);

    let verified = tool(&["verify", "--archive", &url, "--json"]);
    assert_eq!(code(&verified), Some(0), "{}", text(&verified));
    let report = json(&verified);
    assert_eq!(report["verdict"], "verified", "{report}");
    assert_eq!(report["receipts"], 120, "{report}");

    let store_id = report["store_id"].as_str().expect("store id");
    let leaves = scratch
        .path()
        .join("archive")
        .join(store_id)
        .join(format!("epoch-{:020}", 1))
        .join("leaves");
    let mut bytes = std::fs::read(&leaves).expect("leaves");
    bytes[0] ^= 1;
    std::fs::write(&leaves, &bytes).expect("tamper");
    let damaged = tool(&["verify", "--archive", &url]);
    assert_eq!(code(&damaged), Some(1), "{}", text(&damaged));
    assert!(
        text(&damaged).contains("epoch-00000000000000000001/leaves"),
        "{}",
        text(&damaged)
    );
}

#[test]
fn query_and_prove_read_dropped_epochs_with_archive() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    sealed_store(&dir, 2);
    let url = format!("file://{}", scratch.path().join("archive").display());
    let out = json(&tool(&["archive", arg(&dir), "--to", &url, "--json"]));
    assert_eq!(out["verdict"], "archived", "{out}");
    let pruned = json(&tool(&["prune", arg(&dir), "--archived", "--json"]));
    assert_eq!(pruned["verdict"], "pruned", "{pruned}");

    let filter = ["query", arg(&dir), "tenant=acme", "limit=1000", "--json"];
    let local = tool(&filter);
    assert_eq!(code(&local), Some(0), "{}", text(&local));
    assert_eq!(common::jsonl(&local).len(), 1, "only the kept receipt");
    let through = tool(&[&filter[..], &["--archive", &url]].concat());
    assert_eq!(code(&through), Some(0), "{}", text(&through));
    let receipts = common::jsonl(&through);
    assert_eq!(receipts.len(), 121, "{}", text(&through));

    let proved = tool(&["prove", arg(&dir), "--seq", "1", "--archive", &url]);
    assert_eq!(code(&proved), Some(0), "{}", text(&proved));
    assert_eq!(json(&proved)["seq"], 1, "{}", text(&proved));
    let shown = tool(&[
        "inspect",
        arg(&dir),
        "--seq",
        "1",
        "--json",
        "--archive",
        &url,
    ]);
    assert_eq!(code(&shown), Some(0), "{}", text(&shown));
    let entry = json(&shown);
    assert_eq!(entry["kind"], "receipt", "{entry}");
    assert!(entry["payload"].is_object(), "{entry}");
    let gone = tool(&["inspect", arg(&dir), "--seq", "1", "--json"]);
    assert_ne!(code(&gone), Some(0), "{}", text(&gone));
    assert!(
        text(&gone).contains("dropped from this store") && text(&gone).contains("--archive URL"),
        "{}",
        text(&gone)
    );
    let pack = scratch.path().join("pack");
    let exported = tool(&[
        "export",
        arg(&dir),
        "--tenant",
        "acme",
        "-o",
        arg(&pack),
        "--from-archive",
        &url,
    ]);
    assert_eq!(code(&exported), Some(0), "{}", text(&exported));
    let key = dir.join(trailmix_db::keys::PUBLIC_KEY_FILE);
    let checked = tool(&["verify-pack", arg(&pack), "--key", arg(&key), "--json"]);
    assert_eq!(code(&checked), Some(0), "{}", text(&checked));
    assert_eq!(
        json(&checked)["report"]["counts"]["included"],
        121,
        "{}",
        text(&checked)
    );
    let refused = tool(&["prove", arg(&dir), "--seq", "1"]);
    assert_ne!(code(&refused), Some(0), "{}", text(&refused));
    assert!(
        text(&refused).contains("--archive URL"),
        "{}",
        text(&refused)
    );
}

#[test]
fn archive_to_s3_with_endpoint_flags() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    sealed_store(&dir, 1);
    let server = seaweed::shared();
    server.locked_bucket("cli-archive");
    let endpoint = server.endpoint();
    let s3 = [
        "--endpoint",
        endpoint.as_str(),
        "--region",
        "us-east-1",
        "--access-key-id",
        "unused",
        "--secret-access-key",
        "unused",
    ];
    let url = "s3://cli-archive/audit";
    let mut args = vec!["archive", arg(&dir), "--to", url, "--json"];
    args.extend(s3);
    let out = tool(&args);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["epochs"], serde_json::json!([0]));
    let mut args = vec!["verify", "--archive", url];
    args.extend(s3);
    let verified = tool(&args);
    assert_eq!(code(&verified), Some(0), "{}", text(&verified));
    assert!(text(&verified).contains("verified"), "{}", text(&verified));
}

/// `--bytes-per-second-max` reaches the archiver: a limit far below the store's size makes the
/// run wait, and 0 lifts the limit.
#[test]
fn archive_keeps_to_the_bandwidth_limit_it_is_given() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    sealed_store(&dir, 1);
    let url = format!("file://{}", scratch.path().join("slow").display());
    let slow = json(&tool(&[
        "archive",
        arg(&dir),
        "--to",
        &url,
        "--bytes-per-second-max",
        "32768",
        "--json",
    ]));
    assert_eq!(slow["verdict"], "archived", "{slow}");
    assert_eq!(slow["bytes_per_second_max"], 32768, "{slow}");
    // The run writes and reads back more than two seconds' worth at this limit, where the
    // limiter lets at most one second's worth through without waiting.
    let moved = slow["bytes_written"].as_u64().expect("written")
        + slow["bytes_read_back"].as_u64().expect("read back");
    assert!(moved > 2 * 32768, "{slow}");
    assert!(slow["paced_ms"].as_u64().expect("paced") > 0, "{slow}");

    let other = scratch.path().join("other");
    sealed_store(&other, 1);
    let url = format!("file://{}", scratch.path().join("fast").display());
    let fast = json(&tool(&[
        "archive",
        arg(&other),
        "--to",
        &url,
        "--bytes-per-second-max",
        "0",
        "--json",
    ]));
    assert_eq!(fast["verdict"], "archived", "{fast}");
    assert!(fast["bytes_per_second_max"].is_null(), "{fast}");
    assert_eq!(fast["paced_ms"], 0, "{fast}");
}
