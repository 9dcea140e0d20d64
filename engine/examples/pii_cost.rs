//! What PII redaction costs per receipt on the ingest hot path (the appending thread):
//! encoding a typical header alone, and redacting then encoding it with every detector on,
//! for a header with no PII, one with PII in two fields, per mode.
//!
//! `cargo run --release -p trailmix-db --example pii_cost [ITERATIONS]`

use std::hint::black_box;
use std::time::Instant;

use trailmix_db::pii::{PiiMode, PiiPolicy, PiiRedactor, PseudonymKey};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};

fn receipt(session: &str, contact: &str) -> Receipt {
    Receipt::builder("acme", "evt-01J9Z3QK4M8X", Kind::LlmCall)
        .app_id("claims-assistant")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_700_000_000_000_000_000))
        .session_id(session)
        .parent_id("evt-01J9Z3QK4M7W")
        .subject_id("subj_9f2c")
        .model_name("gpt-4o")
        .model_version("2024-08-06")
        .policy_id("pii-guard-v3")
        .label("env", "prod")
        .label("region", "eu-west-1")
        .label("contact", contact)
        .build()
        .expect("valid receipt")
}

/// Nanoseconds per call of `f`, best of five rounds of `iterations`.
fn ns_per(iterations: u32, mut f: impl FnMut() -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let mut sink = 0;
        for _ in 0..iterations {
            sink += f();
        }
        black_box(sink);
        best = best.min(started.elapsed().as_secs_f64() * 1e9 / f64::from(iterations));
    }
    best
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let key_dir = std::env::temp_dir().join(format!("pii-cost-{}", std::process::id()));
    let key = PseudonymKey::load_or_create(&key_dir).expect("pseudonym key");
    let clean = receipt("sess_42", "support-team");
    let dirty = receipt("jane.doe@example.com", "call +1 415-555-0123");

    let encode = ns_per(iterations, || black_box(&clean).header().encode().len());
    println!("header encode only (policy off):           {encode:7.1} ns/receipt");
    for (name, mode) in [
        ("redact", PiiMode::Redact),
        ("keyed-hash", PiiMode::KeyedHash),
        ("mask", PiiMode::Mask),
    ] {
        let r = PiiRedactor::new(PiiPolicy::all(mode), key.clone());
        let run = |receipt: &Receipt| {
            r.redact_header(black_box(receipt).header())
                .expect("redacts")
                .encode()
                .len()
        };
        let no_pii = ns_per(iterations, || run(&clean));
        let with_pii = ns_per(iterations, || run(&dirty));
        println!(
            "all={name:<10} no PII: {no_pii:7.1} ns (+{:5.1}), 2 fields with PII: {with_pii:7.1} ns (+{:5.1})",
            no_pii - encode,
            with_pii - encode
        );
    }
    let _ = std::fs::remove_dir_all(&key_dir);
}
