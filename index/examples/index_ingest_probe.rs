//! Throughput and latency probe for the index (not a test: it asserts nothing).
//!
//! Commits synthetic records (6 tenants, 5 models, sessions of ~20 receipts, 2 labels) in
//! batches, lazily with a durable commit every `--durable-every` batches, then prints
//! receipts/s, bytes on disk per receipt and query latencies for a tenant walk.
//!
//! `cargo run --release -p trailmix-index --example index_ingest_probe -- [records] [batch] [durable-every]`

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use trailmix_index::{
    CommitMode, Dimension, Direction, HOUR_NS, Index, IndexBatch, IndexError, IndexOptions,
    IndexRecord, StoreBinding, Term,
};

const TENANTS: [&str; 6] = ["acme", "beta", "gamma", "delta", "epsilon", "zeta"];
const MODELS: [(&str, &str); 5] = [
    ("gpt", "4o"),
    ("gpt", "4.1"),
    ("claude", "3.5"),
    ("claude", "4"),
    ("llama", "3"),
];
const KINDS: [&str; 4] = ["llm_call", "tool_call", "policy_decision", "evaluation"];
const T0: i64 = 1_767_225_600_000_000_000;

/// Owned strings of one synthetic record.
struct Synth {
    event_id: String,
    session: String,
    labels: BTreeMap<String, String>,
}

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[allow(clippy::too_many_lines)] // one straight-line measurement script
fn main() -> Result<(), IndexError> {
    let (n, batch_size, durable_every) = (arg(1, 1_000_000), arg(2, 4096), arg(3, 32));
    let dir = std::env::temp_dir().join(format!("trailmix-index-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| IndexError::ForeignIndex {
        path: dir.clone(),
        detail: e.to_string(),
    })?;
    let path = dir.join("index.redb");
    let binding = StoreBinding {
        store_id: [7; 16],
        hash_algorithm: "blake3".into(),
    };
    let index = Index::open(&path, &binding, IndexOptions::new())?;
    let label_sets: Vec<BTreeMap<String, String>> = (0..4)
        .map(|i| {
            BTreeMap::from([
                ("env".to_owned(), ["prod", "dev"][i % 2].to_owned()),
                ("region".to_owned(), ["eu", "us"][i / 2].to_owned()),
            ])
        })
        .collect();

    let (mut build, mut commit) = (Duration::ZERO, Duration::ZERO);
    let mut rng = 0x1234_5678_9abc_def1u64;
    let started = Instant::now();
    let mut seq = 0u64;
    let mut batches = 0usize;
    let mut samples = Vec::new();
    let mut slowest = Duration::ZERO;
    while seq < n as u64 {
        let t = Instant::now();
        let mut synth = Vec::with_capacity(batch_size);
        for i in 0..batch_size.min(n - seq as usize) {
            let s = seq + i as u64;
            synth.push(Synth {
                event_id: format!("evt-{s:012}"),
                session: format!("sess-{}", (s / 120) * 6 + xorshift(&mut rng) % 6),
                labels: label_sets[(xorshift(&mut rng) % 4) as usize].clone(),
            });
        }
        let mut batch = IndexBatch::new(seq);
        for (i, sy) in synth.iter().enumerate() {
            let s = seq + i as u64;
            let r = xorshift(&mut rng);
            let (name, version) = MODELS[(r % 5) as usize];
            // 1 M receipts/s of writer clock; event times jitter by up to ~50 ms.
            let logged = 1_000 * s;
            let record = IndexRecord {
                seq: s,
                logged_at_ns: T0 as u64 + logged,
                event_time_ns: T0 + logged as i64 - ((r >> 8) % 50_000_000) as i64,
                // A session belongs to one tenant: the session number picks it.
                tenant: TENANTS[(sy.session[5..].parse::<u64>().unwrap_or(0) % 6) as usize],
                event_id: &sy.event_id,
                app_id: "app",
                session_id: Some(&sy.session),
                parent_id: None,
                subject_id: None,
                kind: KINDS[((r >> 5) % 4) as usize],
                actor_type: "agent",
                decision: (r >> 7).is_multiple_of(3).then_some("allow"),
                model_name: Some(name),
                model_version: Some(version),
                model_provider: None,
                retention_class: None,
                labels: &sy.labels,
            };
            batch.push(&record)?;
            if s.is_multiple_of(997) {
                samples.push((record.tenant.to_owned(), sy.event_id.clone()));
            }
        }
        seq = batch.end();
        build += t.elapsed();
        batches += 1;
        let mode = if batches.is_multiple_of(durable_every) {
            CommitMode::Durable
        } else {
            CommitMode::Lazy
        };
        let t = Instant::now();
        index.commit(batch, mode)?;
        commit += t.elapsed();
        slowest = slowest.max(t.elapsed());
    }
    let t = Instant::now();
    index.commit(IndexBatch::new(seq), CommitMode::Durable)?;
    commit += t.elapsed();
    let total = started.elapsed();
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!("records {n}, batch {batch_size}, durable every {durable_every} batches");
    println!(
        "ingest: {:.0} receipts/s overall ({:.2} s); commit only {:.0}/s ({:.2} s); batch build {:.0}/s ({:.2} s)",
        n as f64 / total.as_secs_f64(),
        total.as_secs_f64(),
        n as f64 / commit.as_secs_f64(),
        commit.as_secs_f64(),
        n as f64 / build.as_secs_f64(),
        build.as_secs_f64()
    );
    println!(
        "slowest commit (event-id merges included): {:.1} ms",
        slowest.as_secs_f64() * 1e3
    );
    println!(
        "disk: {bytes} bytes, {:.1} bytes/receipt",
        bytes as f64 / n as f64
    );
    queries(&index, n as u64, &samples)?;
    let t = Instant::now();
    index.reader()?.logical_digest()?;
    println!("logical_digest: {:.2} s", t.elapsed().as_secs_f64());
    drop(index);
    let closed = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "disk after close: {closed} bytes, {:.1} bytes/receipt",
        closed as f64 / n as f64
    );
    table_stats(&path);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Runs `f` `iters` times and prints p50/p99.
fn time(
    name: &str,
    iters: usize,
    mut f: impl FnMut(usize) -> Result<usize, IndexError>,
) -> Result<(), IndexError> {
    let mut samples = Vec::with_capacity(iters);
    let mut items = 0;
    for i in 0..iters {
        let t = Instant::now();
        items += f(i)?;
        samples.push(t.elapsed());
    }
    samples.sort_unstable();
    println!(
        "{name:<58} p50 {:>8.1} µs  p99 {:>8.1} µs  ({} items/query)",
        samples[iters / 2].as_secs_f64() * 1e6,
        samples[iters * 99 / 100].as_secs_f64() * 1e6,
        items / iters
    );
    Ok(())
}

fn queries(index: &Index, n: u64, ids: &[(String, String)]) -> Result<(), IndexError> {
    let reader = index.reader()?;
    time("reader() (snapshot + open tables)", 1000, |_| {
        index.reader().map(|_| 0)
    })?;
    let tenant = Term::Tenant("acme");
    time(
        "postings Tenant(acme), latest 100, descending",
        1000,
        |_| {
            Ok(reader
                .postings(&tenant, 0..u64::MAX, Direction::Descending)?
                .take(100)
                .count())
        },
    )?;
    time(
        "postings Tenant(acme), random start, 100 ascending",
        1000,
        |i| {
            let start = (i as u64 * 7919 * 131) % n;
            Ok(reader
                .postings(&tenant, start..u64::MAX, Direction::Ascending)?
                .take(100)
                .count())
        },
    )?;
    let model = Term::ModelVersion("acme", "claude", "4");
    time(
        "postings ModelVersion(acme, claude, 4), 100 descending",
        1000,
        |_| {
            Ok(reader
                .postings(&model, 0..u64::MAX, Direction::Descending)?
                .take(100)
                .count())
        },
    )?;
    time("postings Session(acme, random), whole list", 1000, |i| {
        let s = format!("sess-{}", (i as u64 * 7919) % (n / 20));
        Ok(reader
            .postings(
                &Term::Session("acme", &s),
                0..u64::MAX,
                Direction::Ascending,
            )?
            .count())
    })?;
    time("posting_count Tenant(acme)", 1000, |_| {
        reader.posting_count(&tenant).map(|_| 1)
    })?;
    let span = (n as i64) * 1_000;
    time(
        "event_time acme, random 1 s window, first 100 ascending",
        1000,
        |i| {
            let from = T0 + (i as i64 * 7919 * 1_000_003) % span.max(1);
            Ok(reader
                .event_time("acme", from, from + 1_000_000_000, Direction::Ascending)?
                .take(100)
                .count())
        },
    )?;
    time("event_time acme, all time, latest 100", 1000, |_| {
        Ok(reader
            .event_time("acme", i64::MIN, i64::MAX, Direction::Descending)?
            .take(100)
            .count())
    })?;
    time(
        "event_seqs (tenant, event id) of a random receipt",
        1000,
        |i| {
            let (tenant, id) = &ids[i % ids.len()];
            Ok(reader.event_seqs(tenant, id)?.len())
        },
    )?;
    time("seq_range_for_logged_at, random 10 ms", 1000, |i| {
        let from = T0 as u64 + (i as u64 * 7919 * 1_000_003) % (n * 1_000);
        Ok(reader
            .seq_range_for_logged_at(from, from + 10_000_000)?
            .count())
    })?;
    let day = 24 * HOUR_NS;
    let from = T0.div_euclid(day) * day;
    time("counts all tenants by model, hourly, one day", 200, |_| {
        Ok(reader
            .counts(None, Dimension::Model, HOUR_NS as u64, from, from + day)?
            .len())
    })?;
    time("values(acme, Model)", 1000, |_| {
        Ok(reader.values("acme", Dimension::Model)?.len())
    })?;
    Ok(())
}

/// Per-table sizes, read with redb directly after the index is closed.
fn table_stats(path: &std::path::Path) {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
    let Ok(db) = redb::Database::open(path) else {
        return;
    };
    let Ok(txn) = db.begin_read() else { return };
    let Ok(tables) = txn.list_tables() else {
        return;
    };
    for handle in tables {
        let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new(handle.name());
        let stats = match txn.open_table(def) {
            Ok(t) => t.stats().ok(),
            Err(_) => None,
        };
        // `meta` and `tenants` have `&str` keys.
        let stats = stats.or_else(|| {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new(handle.name());
            txn.open_table(def).ok()?.stats().ok()
        });
        if let Some(s) = stats {
            println!(
                "table {:<12} stored {:>11} B  metadata {:>10} B  fragmented {:>10} B  leaf pages {:>7}",
                handle.name(),
                s.stored_bytes(),
                s.metadata_bytes(),
                s.fragmented_bytes(),
                s.leaf_pages()
            );
        }
    }
}
