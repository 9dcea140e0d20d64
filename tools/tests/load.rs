//! Guards `trailmix-db load` by running the built binary: a short rate-limited run and a
//! short full-speed run report consistent figures (counts that match the store, a rate
//! limit that holds, ordered latency percentiles, payload sizes near the target, index lag),
//! append to the same store without conflicts, leave a store that verifies, and bad options or
//! a held writer lock are refused with exit code 2.

mod common;

use std::collections::BTreeSet;

use common::{arg, assert_verifies, code, json, jsonl, receipts_in, text, tool};
use serde_json::Value;
use trailmix_db::Db;

fn latencies_in_order(report: &Value) {
    let latency = &report["latency_us"];
    let figures: Vec<f64> = ["p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|k| {
            latency[*k]
                .as_f64()
                .unwrap_or_else(|| panic!("{k} in {report}"))
        })
        .collect();
    assert!(figures[0] > 0.0, "{report}");
    assert!(
        figures.windows(2).all(|w| w[0] <= w[1]),
        "percentiles in order: {report}"
    );
    let mean = latency["mean"].as_f64().expect("mean");
    assert!(mean > 0.0 && mean <= figures[4], "{report}");
}

/// The receipts are spread over nine tenants (six profiles, then numbered) in agent sessions.
fn assert_spread_over_nine_tenants(dir: &std::path::Path) {
    const NINE: [&str; 9] = [
        "acme-health",
        "globex-bank",
        "initech-insurance",
        "umbrella-hr",
        "stark-legal",
        "wayne-retail",
        "acme-health-2",
        "globex-bank-2",
        "initech-insurance-2",
    ];
    let stored = jsonl(&tool(&["tail", arg(dir), "--json"]));
    let tenants: BTreeSet<&str> = stored
        .iter()
        .map(|l| l["event"]["tenant_id"].as_str().expect("tenant"))
        .collect();
    assert!(tenants.iter().all(|t| NINE.contains(t)), "{tenants:?}");
    assert!(
        stored.iter().any(|l| l["event"]["parent_id"].is_string()),
        "sessions link receipts"
    );
}

#[test]
fn load_reports_what_it_wrote_and_the_store_verifies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");

    let paced = tool(&[
        "load",
        arg(&dir),
        "--threads",
        "2",
        "--rate",
        "400",
        "--seconds",
        "1",
        "--payload-bytes",
        "900",
        "--tenants",
        "9",
        "--json",
    ]);
    assert_eq!(code(&paced), Some(0), "{}", text(&paced));
    let report = json(&paced);
    let receipts = report["receipts"].as_u64().expect("receipts");
    // The schedule allows at most rate x seconds; the store holds exactly what was acked.
    assert!(receipts > 0 && receipts <= 400, "{report}");
    assert_eq!(receipts_in(&dir), receipts);
    assert_eq!(report["created"], true);
    assert_eq!(report["durability"], "durable");
    assert_eq!(report["target_rate"], 400.0);
    assert_eq!(report["backpressure_refusals"], 0);
    latencies_in_order(&report);
    let payload = report["payload_bytes_mean"].as_f64().expect("payload mean");
    assert!((850.0..=950.0).contains(&payload), "{report}");
    let per_second = report["receipts_per_second"].as_f64().expect("rate");
    let elapsed = report["elapsed_seconds"].as_f64().expect("elapsed");
    #[allow(clippy::cast_precision_loss)]
    let expected = receipts as f64 / elapsed;
    assert!(
        (per_second - expected).abs() < 1e-6 * expected.max(1.0),
        "{report}"
    );
    let index = &report["index"];
    assert!(index["caught_up_ms"].is_number(), "{report}");
    assert!(
        index["max_lag_entries_seen"].as_u64() >= index["lag_entries_at_end"].as_u64(),
        "{report}"
    );
    assert!(
        report["durable_end"].as_u64().expect("durable end") > receipts,
        "genesis, the receipts and any checkpoint: {report}"
    );
    assert_spread_over_nine_tenants(&dir);

    // Full speed, written acknowledgements, into the same store: new event ids, no conflict.
    let fast = tool(&[
        "load",
        arg(&dir),
        "--seconds",
        "1",
        "--rate",
        "0",
        "--payload-bytes",
        "64",
        "--durability",
        "written",
        "--json",
    ]);
    assert_eq!(code(&fast), Some(0), "{}", text(&fast));
    let report = json(&fast);
    let more = report["receipts"].as_u64().expect("receipts");
    assert!(more > 0, "{report}");
    assert_eq!(report["created"], false);
    assert_eq!(report["target_rate"], Value::Null);
    assert_eq!(report["durability"], "written");
    latencies_in_order(&report);
    assert_eq!(receipts_in(&dir), receipts + more);
    assert_verifies(&dir);

    // The people's version.
    let human = tool(&["load", arg(&dir), "--seconds", "0.3", "--rate", "100"]);
    assert_eq!(code(&human), Some(0), "{}", text(&human));
    let out = text(&human);
    for part in [
        "appended",
        "receipts/s",
        "p99.9",
        "max",
        "index",
        "target 100 receipts/s",
    ] {
        assert!(out.contains(part), "{part:?} missing from:\n{out}");
    }
}

#[test]
fn load_refuses_bad_options_and_a_held_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    for args in [
        vec!["load", arg(&dir), "--seconds", "0"],
        vec!["load", arg(&dir), "--rate=-5"],
        vec!["load", arg(&dir), "--threads", "0"],
        vec!["load", arg(&dir), "--payload-bytes", "9999999"],
        vec!["load", arg(&dir), "--durability", "sometimes"],
    ] {
        let output = tool(&args);
        assert_eq!(code(&output), Some(2), "{args:?}: {}", text(&output));
    }
    assert!(!dir.exists(), "refused options create nothing");

    let db = Db::open(&dir).expect("open");
    let locked = tool(&["load", arg(&dir), "--seconds", "0.2"]);
    assert_eq!(code(&locked), Some(2), "{}", text(&locked));
    assert!(
        text(&locked).contains("open for writing in another process"),
        "{}",
        text(&locked)
    );
    db.close().expect("close");
}
