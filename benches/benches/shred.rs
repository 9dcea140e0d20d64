//! Crypto-shredding costs (issue 5): the latency of `Db::shred` for one subject in a store
//! holding `KEYS` live data keys — which includes rotating the key-encryption key, i.e.
//! re-wrapping every surviving key into a new journal, renaming it into place and destroying
//! the old KEK — reported for a small key store and for 100 k keys (10 k with `--quick`).
//!
//! Setup (untimed): a fresh store, one 512-byte receipt for each of `KEYS` subjects (each its
//! own data key). Each timed iteration shreds one more subject (appended untimed just before).

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use trailmix_benches::scratch_root;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::{Db, DbOptions, Ticket};

fn quick() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--quick")
        || !args.iter().any(|a| a == "--bench")
        || std::env::var_os("TRAILMIX_BENCH_QUICK").is_some_and(|v| v != "0")
}

fn receipt(subject: u64) -> Receipt {
    Receipt::builder("acme", format!("evt-{subject}"), Kind::LlmCall)
        .app_id("bench")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .subject_id(format!("subject-{subject}"))
        .input(serde_json::json!({ "prompt": "x".repeat(480) }))
        .build()
        .expect("valid receipt")
}

fn wait_all(pending: &mut Vec<Ticket>) {
    for ticket in pending.drain(..) {
        ticket.wait().expect("durable");
    }
}

/// A store with `keys` subjects, each with one receipt and its own key.
fn store_with_keys(dir: &Path, keys: u64) -> Db {
    let db = Db::open_with(dir, DbOptions::default()).expect("open");
    let started = Instant::now();
    let mut pending: Vec<Ticket> = Vec::new();
    for subject in 0..keys {
        pending.push(db.append(&receipt(subject)).expect("append"));
        if pending.len() >= 4096 {
            wait_all(&mut pending);
        }
    }
    wait_all(&mut pending);
    eprintln!("shred: {keys} keys written in {:.1?}", started.elapsed());
    db
}

fn scratch() -> PathBuf {
    scratch_root(Path::new(env!("CARGO_TARGET_TMPDIR"))).join("shred")
}

fn bench(c: &mut Criterion) {
    let sizes: &[u64] = if quick() {
        &[100, 10_000]
    } else {
        &[100, 100_000]
    };
    let mut group = c.benchmark_group("shred");
    group.sample_size(10);
    if !quick() {
        group.measurement_time(Duration::from_secs(10));
    }
    for &keys in sizes {
        let dir = scratch().join(format!("keys_{keys}"));
        let _ = std::fs::remove_dir_all(&dir);
        let db = store_with_keys(&dir, keys);
        let mut next = keys;
        group.bench_function(format!("one_subject_with_kek_rotation/keys_{keys}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    db.append_and_wait(&receipt(next)).expect("append");
                    let subject = format!("subject-{next}");
                    next += 1;
                    let started = Instant::now();
                    db.shred("acme", &subject, "bench").expect("shred");
                    spent += started.elapsed();
                }
                spent
            });
        });
        db.close().expect("close");
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
