//! Times (or, under callgrind, counts) one query job on trailmix-db alone, without criterion:
//!
//! ```sh
//! cargo run --release -p trailmix-benches --example query_probe -- load DIR 100000
//! cargo run --release -p trailmix-benches --example query_probe -- load DIR 100000 realistic zstd:3
//! cargo run --release -p trailmix-benches --example query_probe -- load DIR 100000 clear
//! cargo run --release -p trailmix-benches --example query_probe -- run DIR 100000 tenant_time 2000
//! cargo run --release -p trailmix-benches --example query_probe -- run DIR 100000 tenant_time 2000 heads
//! cargo run --release -p trailmix-benches --example query_probe -- merge-runs DIR [MAX]
//! cargo run --release -p trailmix-benches --example query_probe -- space DIR
//! cargo run --release -p trailmix-benches --example query_probe -- compact DIR
//! ```
//!
//! `load` fills a store at `DIR` with the query benchmark's seeded data (payloads of the corpus
//! named, `incompressible` by default, or `realistic`; payload compression `off`, `dict:LEVEL` (built-in dictionary) or
//! `zstd:LEVEL`; off when not named; payloads stored unencrypted with `clear`) and prints its bytes per receipt against
//! the raw fields; `run` reopens it and
//! runs that many queries of one job (`tenant_time`, `model_time`, `session`, `event`) built
//! from the same data, printing the mean and p50/p99 per query. A trailing `heads` queries
//! through `Db::query_heads` (no payload copied or decrypted) instead of `Db::query`; a
//! trailing `threads=N` sets `DbOptions::query_threads` (the threads that read one page).
//! `merge-runs` merges the newest event-id runs of the closed store's index (up to `MAX`
//! entries, all by default) into one, as an idle indexer's step would. `space` prints where
//! the closed store's index file's bytes go (per table, redb's metadata, fragmentation, free
//! pages, allocated blocks); `compact` runs `Db::compact_index` on it and prints both.

use std::path::{Path, PathBuf};
use std::time::Instant;

use trailmix_benches::query_data::{Dataset, Job, PAYLOAD_BYTES, QuerySet, SEED};
use trailmix_benches::query_rigs::{QueryRig, run};
use trailmix_benches::query_trailmix::{Corpus, TrailmixRig, with_payload};
use trailmix_benches::rigs::BoxError;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::{DbOptions, PayloadCompression, PayloadEncryption};

/// Raw bytes of a receipt: the header fields as [`Dataset::raw_bytes_per_row`] counts them,
/// with the incompressible corpus's 512 random bytes as its payload (as earlier sessions
/// counted) or the realistic corpus's canonical JSON payload.
#[allow(clippy::cast_precision_loss, reason = "an average for display")]
fn raw_bytes_per_receipt(data: &Dataset, corpus: Corpus) -> Result<f64, BoxError> {
    let fields = data.raw_bytes_per_row();
    if corpus == Corpus::Incompressible {
        return Ok(fields);
    }
    let sample = data.len().min(1000);
    let mut payload_bytes = 0;
    for seq in 0..sample {
        let builder = Receipt::builder("t", "e", Kind::LlmCall)
            .app_id("a")
            .actor_type(ActorType::Agent)
            .event_time(Timestamp::from_unix_nanos(0));
        payload_bytes += with_payload(builder, corpus, seq as u64, &[])
            .build()?
            .payload()
            .len();
    }
    Ok(fields - PAYLOAD_BYTES as f64 + payload_bytes as f64 / sample.max(1) as f64)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: query_probe load DIR N [incompressible|realistic] [off|zstd:LEVEL|dict:LEVEL] [clear] | run DIR N JOB QUERIES [heads] [threads=N] | merge-runs DIR [MAX] | space DIR | compact DIR";
    if let [mode, dir, ..] = args.as_slice() {
        match mode.as_str() {
            "merge-runs" => return merge_runs(Path::new(dir), args.get(2)),
            "space" => return space(Path::new(dir)),
            "compact" => return compact(Path::new(dir)),
            _ => {}
        }
    }
    let (mode, dir, receipts) = match args.as_slice() {
        [mode, dir, n, ..] => (mode.as_str(), PathBuf::from(dir), n.parse::<usize>()?),
        _ => return Err(usage.into()),
    };
    let data = Dataset::generate(receipts, SEED);
    if mode == "load" {
        let clear = args.iter().skip(3).any(|arg| arg == "clear");
        let settings: Vec<&String> = args.iter().skip(3).filter(|arg| *arg != "clear").collect();
        let corpus: Corpus = settings
            .first()
            .map_or(Ok(Corpus::default()), |c| c.parse())?;
        let compression = match settings.get(1) {
            None => PayloadCompression::Off,
            Some(text) => trailmix_benches::query_trailmix::parse_compression(text)?,
        };
        let mut options = DbOptions::default().payload_compression(compression);
        if clear {
            options = options.payload_encryption(PayloadEncryption::Off);
        }
        let rig = TrailmixRig::load_corpus(&dir, &data, corpus, options)?;
        let stats = rig.load_stats().ok_or("no load figures")?;
        let index_file = dir.join("index").join("index.redb");
        let index_bytes = |when: &str| -> Result<(), BoxError> {
            let meta = std::fs::metadata(&index_file)?;
            println!(
                "index {when}: file {} B, allocated {} B",
                meta.len(),
                trailmix_db::allocated_bytes(&meta)
            );
            Ok(())
        };
        index_bytes("while open")?;
        let raw = raw_bytes_per_receipt(&data, corpus)?;
        println!("{stats:?}");
        println!(
            "{corpus:?}, {compression:?}: {:.1} B/receipt used, raw fields {raw:.1} B: {:.3}x raw",
            stats.bytes_per_receipt(),
            stats.bytes_per_receipt() / raw
        );
        drop(rig);
        index_bytes("after close")?;
        return Ok(());
    }
    let (Some(job), Some(count)) = (
        args.get(3).and_then(|id| {
            Job::ALL
                .into_iter()
                .find(|job| job.id().contains(id.as_str()))
        }),
        args.get(4).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        return Err(usage.into());
    };
    let queries = QuerySet::build(&data, 2_000, SEED);
    let mut options = DbOptions::default();
    for arg in args.iter().skip(5) {
        if let Some(threads) = arg.strip_prefix("threads=") {
            options = options.query_threads(threads.parse()?);
        }
    }
    let rig = TrailmixRig::open_with(&dir, options)?;
    let rig = if args.iter().skip(5).any(|mode| mode == "heads") {
        rig.heads_only()
    } else {
        rig
    };
    let mut times = Vec::with_capacity(count);
    let mut results = 0;
    for i in 0..count {
        let start = Instant::now();
        results += run(&rig, job, &queries, i)?.len();
        times.push(start.elapsed());
    }
    times.sort();
    let total: std::time::Duration = times.iter().sum();
    let count_u32 = u32::try_from(count.max(1))?;
    println!(
        "{} queries of {}: mean {:?}, p50 {:?}, p99 {:?}, {results} results",
        count,
        job.id(),
        total / count_u32,
        times[count / 2],
        times[count * 99 / 100]
    );
    Ok(())
}

/// What the indexer's idle step would do (design.md, "Event-id runs"): merges the newest
/// event-id runs, up to `max` entries (all by default), in the closed store's index at `dir`.
fn merge_runs(dir: &Path, max: Option<&String>) -> Result<(), BoxError> {
    let max = max.map_or(Ok(u64::MAX), |n| n.parse::<u64>())?;
    let meta = *trailmix_wal::WalReader::open(dir.join("wal"))?.meta();
    let binding = trailmix_index::StoreBinding {
        store_id: meta.store_id.0,
        hash_algorithm: meta.hash_algorithm.to_string(),
    };
    let path = dir.join("index").join("index.redb");
    let index = trailmix_index::Index::open(&path, &binding, trailmix_index::IndexOptions::new())?;
    let before = index.reader()?.event_id_run_count()?;
    let start = Instant::now();
    let merged = index.merge_event_id_runs(max)?;
    println!(
        "event-id runs: {before} -> {} in {:?}",
        before - merged.saturating_sub(1),
        start.elapsed()
    );
    Ok(())
}

fn open_index(dir: &Path) -> Result<trailmix_index::Index, BoxError> {
    let meta = *trailmix_wal::WalReader::open(dir.join("wal"))?.meta();
    let binding = trailmix_index::StoreBinding {
        store_id: meta.store_id.0,
        hash_algorithm: meta.hash_algorithm.to_string(),
    };
    let path = dir.join("index").join("index.redb");
    Ok(trailmix_index::Index::open(
        &path,
        &binding,
        trailmix_index::IndexOptions::new(),
    )?)
}

#[allow(clippy::cast_precision_loss, reason = "sizes for display")]
fn print_space(space: &trailmix_index::IndexSpace, receipts: u64) {
    let per = |b: u64| b as f64 / receipts.max(1) as f64;
    println!(
        "file {} B ({:.1} B/receipt), allocated blocks {} B ({:.1} B/receipt), page {} B",
        space.file_bytes,
        per(space.file_bytes),
        space.disk_bytes,
        per(space.disk_bytes),
        space.page_bytes
    );
    let pages = space.allocated_pages.unwrap_or_default() * space.page_bytes;
    println!(
        "allocated pages {pages} B, free (unallocated) {} B; stored {} B, metadata {} B, fragmented {} B",
        space.free_bytes().unwrap_or_default(),
        space.stored_bytes,
        space.metadata_bytes.unwrap_or_default(),
        space.fragmented_bytes.unwrap_or_default()
    );
    println!("table            stored B   B/rcpt   metadata B  fragmented B  leaves branches");
    for t in &space.tables {
        println!(
            "{:<14} {:>10} {:>8.1} {:>12} {:>13} {:>7} {:>8}",
            t.name,
            t.stored_bytes,
            per(t.stored_bytes),
            t.metadata_bytes,
            t.fragmented_bytes,
            t.leaf_pages,
            t.branch_pages
        );
    }
}

/// Where the closed store's index file's bytes go.
fn space(dir: &Path) -> Result<(), BoxError> {
    let index = open_index(dir)?;
    let receipts = index.watermark()?;
    print_space(&index.space()?, receipts);
    Ok(())
}

/// `Db::compact_index` on the closed store, with the space before and after.
fn compact(dir: &Path) -> Result<(), BoxError> {
    let receipts = open_index(dir)?.watermark()?;
    let done = trailmix_db::Db::compact_index(dir)?;
    println!("before:");
    print_space(&done.before, receipts);
    println!("after ({:?}, compacted: {}):", done.elapsed, done.compacted);
    print_space(&done.after, receipts);
    Ok(())
}
