//! Guards `trailmix-db timestamp` and `verify --tsa-ca` by running the built binary against a
//! local TSA (`openssl ts` on loopback): tokens are fetched once per sealed epoch and stored
//! beside the store; verify checks them with the CA, fails on a token that does not verify
//! (another CA, a changed byte) and lists epochs without one.

mod common;

#[path = "../../engine/tests/common/tsa.rs"]
mod tsa;

use std::path::Path;

use common::{arg, code, json, text, tool, tool_call};
use trailmix_db::Db;

/// A store with `epochs` sealed epochs.
fn sealed_store(dir: &Path, epochs: u64) {
    let db = Db::open(dir).expect("open");
    for n in 0..epochs {
        db.append_and_wait(&tool_call(n)).expect("append");
        db.seal_epoch().expect("seal");
    }
    db.close().expect("close");
}

#[test]
fn timestamp_stores_tokens_and_verify_checks_them() {
    let tsa = tsa::start();
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    sealed_store(&dir, 2);
    let ca = arg(&tsa.ca_cert);

    let stamp = |extra: &[&str]| {
        let mut args = vec!["timestamp", arg(&dir), "--tsa", &tsa.url, "--json"];
        args.extend_from_slice(extra);
        tool(&args)
    };
    let first = stamp(&["--tsa-ca", ca]);
    assert_eq!(code(&first), Some(0), "{}", text(&first));
    let states: Vec<_> = json(&first)
        .as_array()
        .expect("epochs")
        .iter()
        .map(|t| t["state"].as_str().expect("state").to_owned())
        .collect();
    assert_eq!(states, ["stamped", "stamped"]);
    let again = stamp(&[]);
    assert_eq!(json(&again)[1]["state"], "present", "{}", text(&again));
    let token = dir.join("timestamps/epoch-00000000000000000001.tst");
    assert!(token.is_file());

    let verify = |ca: &str| tool(&["verify", arg(&dir), "--tsa-ca", ca]);
    let good = verify(ca);
    assert_eq!(code(&good), Some(0), "{}", text(&good));
    assert!(
        text(&good).contains("epoch 1: RFC 3161 token verified"),
        "{}",
        text(&good)
    );

    let other = verify(arg(&tsa.other_ca_cert));
    assert_eq!(code(&other), Some(1), "{}", text(&other));
    assert!(
        text(&other).contains("does not chain to the given CA"),
        "{}",
        text(&other)
    );
    let as_json = tool(&[
        "verify",
        arg(&dir),
        "--tsa-ca",
        arg(&tsa.other_ca_cert),
        "--json",
    ]);
    assert_eq!(json(&as_json)["verdict"], "timestamp_invalid");
    assert_eq!(json(&as_json)["timestamps"][0]["state"], "invalid");

    let mut bytes = std::fs::read(&token).expect("token");
    *bytes.last_mut().expect("bytes") ^= 1;
    std::fs::write(&token, &bytes).expect("write");
    let flipped = verify(ca);
    assert_eq!(code(&flipped), Some(1), "{}", text(&flipped));
    assert!(
        text(&flipped).contains("epoch 1: token INVALID"),
        "{}",
        text(&flipped)
    );

    std::fs::remove_file(&token).expect("remove");
    let missing = verify(ca);
    assert_eq!(code(&missing), Some(0), "{}", text(&missing));
    assert!(
        text(&missing).contains("epoch 1: no token"),
        "{}",
        text(&missing)
    );
}

#[test]
fn export_carries_tokens_and_verify_pack_checks_them() {
    let tsa = tsa::start();
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    sealed_store(&dir, 2);
    let stamped = tool(&["timestamp", arg(&dir), "--tsa", &tsa.url]);
    assert_eq!(code(&stamped), Some(0), "{}", text(&stamped));
    let pack = scratch.path().join("pack");
    let export = tool(&["export", arg(&dir), "--tenant", "acme", "-o", arg(&pack)]);
    assert_eq!(code(&export), Some(0), "{}", text(&export));
    assert!(
        text(&export).contains("the RFC 3161 tokens of 2 epoch seals"),
        "{}",
        text(&export)
    );
    let key = dir.join("signing.pub");
    let verify_pack = |extra: &[&str]| {
        let mut args = vec!["verify-pack", arg(&pack), "--key", arg(&key)];
        args.extend_from_slice(extra);
        tool(&args)
    };

    let with_ca = verify_pack(&["--tsa-ca", arg(&tsa.ca_cert)]);
    assert_eq!(code(&with_ca), Some(0), "{}", text(&with_ca));
    assert!(
        text(&with_ca).contains("timestamp       epoch 1 verified: stamped "),
        "{}",
        text(&with_ca)
    );
    let without_ca = verify_pack(&[]);
    assert_eq!(code(&without_ca), Some(0), "{}", text(&without_ca));
    assert!(
        text(&without_ca).contains("epoch 0 present but UNCHECKED")
            && text(&without_ca).contains("pass --tsa-ca FILE"),
        "{}",
        text(&without_ca)
    );
    let as_json = verify_pack(&["--tsa-ca", arg(&tsa.ca_cert), "--json"]);
    let verdicts: Vec<_> = json(&as_json)["report"]["timestamps"]
        .as_array()
        .expect("timestamps")
        .iter()
        .map(|t| t["verdict"].as_str().expect("verdict").to_owned())
        .collect();
    assert_eq!(verdicts, ["verified", "verified"]);

    // A CA that did not issue the TSA certificate: not verified, exit 1, the epoch named.
    let other = verify_pack(&["--tsa-ca", arg(&tsa.other_ca_cert), "--json"]);
    assert_eq!(code(&other), Some(1), "{}", text(&other));
    let failure = &json(&other)["failure"];
    assert_eq!(failure["kind"], "timestamp");
    assert!(
        failure["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("the timestamp token of epoch 0 ")),
        "{failure}"
    );

    // A token dropped from the pack while the manifest lists it.
    std::fs::remove_file(pack.join("timestamp-epoch-00000000000000000001.tst")).expect("rm");
    let dropped = verify_pack(&[]);
    assert_eq!(code(&dropped), Some(1), "{}", text(&dropped));
    assert!(
        text(&dropped).contains("timestamp-epoch-00000000000000000001.tst is missing"),
        "{}",
        text(&dropped)
    );
}

#[test]
fn inspect_shows_tokens_and_the_writers_last_failure() {
    use trailmix_db::{DbOptions, TimestampPolicy, TsaSettings};
    // A port nothing listens on: the writer's requests fail.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", dead.local_addr().expect("addr"));
    drop(dead);
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    let mut settings = TsaSettings::new(url);
    settings.retry_backoff_initial = std::time::Duration::from_millis(20);
    let db = Db::open_with(
        &dir,
        DbOptions::default().timestamp_policy(TimestampPolicy::OnSeal(settings)),
    )
    .expect("open");
    db.append_and_wait(&tool_call(0)).expect("append");
    db.seal_epoch().expect("seal");
    let start = std::time::Instant::now();
    while db.timestamp_status().expect("status").failures == 0 {
        assert!(start.elapsed().as_secs() < 20, "no failure reported");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    db.close().expect("close");

    let out = tool(&["inspect", arg(&dir)]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("0 of 1 sealed epoch(s) have an RFC 3161 token; without one: epoch 0"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("  last failure  "), "{}", text(&out));
    let summary = json(&tool(&["inspect", arg(&dir), "--json"]));
    let last = summary["timestamps"]["last_error"]
        .as_str()
        .expect("last_error");
    assert!(last.contains(" epoch 0: TSA http://127.0.0.1:"), "{last}");
}
