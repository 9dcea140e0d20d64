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
