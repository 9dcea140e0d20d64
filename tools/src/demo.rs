//! `trailmix-db demo`: the README's main job. Writes a realistic multi-tenant receipt workload
//! into a store with durable group commit, reopens it, verifies every frame, reads records back
//! by sequence number and by position, and prints what it did and how fast.
//!
//! Until the receipt engine lands, the receipts are written as JSON records straight into the
//! write-ahead log (no hash chain, signatures or indexes yet); the demo says so.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_db::wal::{ChainHash, Error, RecordKind, Seq, Wal, WalOptions, WalReader};

use crate::{human_bytes, inspect, verify, wal_dir};

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Receipts to write.
    pub receipts: u64,
    /// Receipts per group commit (one flush each).
    pub batch_records: u64,
    /// Seed of the synthetic workload.
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            receipts: 200_000,
            batch_records: 512,
            seed: 42,
        }
    }
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Records in the store before this run.
    pub records_before: u64,
    /// Records after.
    pub records_after: u64,
    /// Payload bytes written by this run.
    pub payload_bytes: u64,
    /// Time spent appending and flushing.
    pub write_time: Duration,
    /// Flushes (group commits) made.
    pub flushes: u64,
    /// Time for the full verification.
    pub verify_time: Duration,
    /// Whether verification passed.
    pub verified: bool,
}

const TENANTS: [&str; 4] = [
    "acme-health",
    "globex-bank",
    "initech-insurance",
    "umbrella-hr",
];
const MODELS: [(&str, &str, &str); 4] = [
    ("gpt-4.1", "2025-04-14", "openai"),
    ("claude-sonnet-4", "20250514", "anthropic"),
    ("llama-3.3-70b", "instruct", "meta"),
    ("mistral-large", "2411", "mistral"),
];
const KINDS: [(&str, u8); 5] = [
    ("llm_call", 1),
    ("tool_call", 2),
    ("policy_decision", 3),
    ("approval", 4),
    ("evaluation", 5),
];

/// One synthetic receipt in the SDK event schema, about 500 bytes of JSON.
fn receipt_json(rng: &mut SmallRng, n: u64) -> (u8, String) {
    let tenant = TENANTS[rng.random_range(0..TENANTS.len())];
    let (model, version, provider) = MODELS[rng.random_range(0..MODELS.len())];
    let (kind, kind_code) = KINDS[rng.random_range(0..KINDS.len())];
    let decision = if rng.random_bool(0.9) {
        "allow"
    } else {
        "deny"
    };
    let session = rng.random_range(0..5_000u32);
    let tokens: u32 = rng.random_range(50..4_000);
    let json = format!(
        concat!(
            r#"{{"event_id":"evt-{n:012}","tenant_id":"{tenant}","app_id":"claims-assistant","#,
            r#""session_id":"sess-{session:06}","kind":"{kind}","actor_type":"agent","#,
            r#""model":{{"name":"{model}","version":"{version}","provider":"{provider}","#,
            r#""params":{{"temperature":0.2}},"cost":{{"input_tokens":{tokens},"usd_micros":{cost}}}}},"#,
            r#""policy_eval":{{"policy_id":"pii-guard-v3","decision":"{decision}","reasons":["scope check"]}},"#,
            r#""evals":[{{"name":"groundedness","score":0.{score:02},"threshold":0.7}}],"#,
            r#""retention_class":"standard-7y","input":"Summarise claim {n} for the adjuster","#,
            r#""output":"Claim {n}: covered under policy section 4.2; no PII disclosed."}}"#
        ),
        n = n,
        tenant = tenant,
        session = session,
        kind = kind,
        model = model,
        version = version,
        provider = provider,
        tokens = tokens,
        cost = tokens * 3,
        decision = decision,
        score = rng.random_range(50..99),
    );
    (kind_code, json)
}

/// Runs the demo against `data_dir`, printing progress lines to stdout.
///
/// # Errors
/// Any WAL error (a locked store, a damaged store, I/O).
pub fn run(data_dir: &Path, options: &DemoOptions) -> Result<DemoReport, Error> {
    println!(
        "trailmix-db demo: writing {} receipts into {}",
        options.receipts,
        data_dir.display()
    );
    println!("(this build stores receipts in the crash-safe write-ahead log; hash chain, signed");
    println!(" checkpoints, indexes and shredding arrive with the engine)");
    let mut wal = Wal::open(wal_dir(data_dir), WalOptions::default())?;
    let report = wal.open_report().clone();
    let records_before = wal.next_seq().0;
    if report.created {
        println!("created a new store (store id {})", wal.store_id());
    } else {
        println!("reopened the store: {records_before} records already there; appending more");
    }
    if let Some((start, end)) = report.torn_tail {
        println!(
            "recovery erased a torn, never-acknowledged tail of {} bytes at offset {start}",
            end - start
        );
    }
    let mut rng = SmallRng::seed_from_u64(options.seed ^ records_before);
    let started = Instant::now();
    let mut payload_bytes = 0u64;
    let mut flushes = 0u64;
    let mut written = 0u64;
    while written < options.receipts {
        let batch = options.batch_records.min(options.receipts - written).max(1);
        for _ in 0..batch {
            let (kind, json) = receipt_json(&mut rng, records_before + written);
            wal.append(RecordKind::new(kind)?, json.as_bytes(), &ChainHash::ZERO)?;
            payload_bytes += json.len() as u64;
            written += 1;
        }
        wal.flush()?;
        flushes += 1;
    }
    let write_time = started.elapsed();
    let records_after = wal.close()?.0;
    print_write_line(written, payload_bytes, flushes, write_time);

    let started = Instant::now();
    let outcome = verify::run(data_dir);
    let verify_time = started.elapsed();
    verify::print_text(data_dir, &outcome);
    let verified = outcome.verdict == "verified";

    show_reads(data_dir, records_after)?;
    let summary = inspect::summary(data_dir)?;
    println!(
        "store: {} records in {} segment(s), {} of payload, {} allocated",
        summary.records,
        summary.segments.len(),
        human_bytes(summary.payload_bytes),
        human_bytes(summary.allocated_bytes)
    );
    println!(
        "next: trailmix-db inspect {}   |   trailmix-db verify {}",
        data_dir.display(),
        data_dir.display()
    );
    Ok(DemoReport {
        records_before,
        records_after,
        payload_bytes,
        write_time,
        flushes,
        verify_time,
        verified,
    })
}

fn print_write_line(written: u64, payload_bytes: u64, flushes: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    #[allow(clippy::cast_precision_loss)]
    let (rate, mb_rate) = (written as f64 / secs, payload_bytes as f64 / secs / 1e6);
    println!(
        "wrote {written} receipts ({}) in {:.2} s with {flushes} durable group commits: {rate:.0} receipts/s, {mb_rate:.0} MB/s",
        human_bytes(payload_bytes),
        secs
    );
}

fn show_reads(data_dir: &Path, records: u64) -> Result<(), Error> {
    let reader = WalReader::open(wal_dir(data_dir))?;
    let seq = Seq(records / 2);
    let record = reader.read(seq)?;
    let again = reader.read_at(record.position)?;
    let text = String::from_utf8_lossy(&record.payload);
    println!(
        "read back seq {seq} (segment {}, offset {}): {}…",
        record.position.segment,
        record.position.offset,
        text.chars().take(90).collect::<String>()
    );
    if again != record {
        return Err(Error::BadPosition {
            segment: record.position.segment,
            offset: record.position.offset,
            detail: "reading by position returned a different record".into(),
        });
    }
    Ok(())
}
