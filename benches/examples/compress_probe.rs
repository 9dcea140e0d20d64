//! The caller-side cost of payload compression, for callgrind (docs/performance.md, eleventh
//! session):
//!
//! ```sh
//! TRAILMIX_BENCH_DIR=<scratch> valgrind --tool=callgrind --separate-threads=yes \
//!     target/release/examples/compress_probe realistic 20000 zstd:3
//! callgrind_annotate --inclusive=yes --auto=no callgrind.out.<pid>-<thread>
//! ```
//!
//! Builds `N` receipts with payloads of the corpus (`realistic` or `incompressible`, 512 B),
//! appends them to a fresh store (default options: encrypted; `Durability::Written`, so no
//! sync dominates) through `append_batch` in batches of 10k with compression `off`,
//! `zstd:LEVEL` or `dict:LEVEL` (the built-in dictionary), then reads each back with `Db::get` (decrypt, decompress). Per-receipt
//! instructions: `Db::prepare_item` (caller), `shred::open_payload` (reads). Run without
//! valgrind, it also prints the append and read-back rates (wall clock, one caller thread).

use trailmix_benches::query_data::{PAYLOAD_BYTES, SEED};
use trailmix_benches::query_trailmix::{Corpus, with_payload};
use trailmix_benches::rigs::BoxError;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::{Db, DbOptions, Durability};

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [corpus, count, compression] = args.as_slice() else {
        return Err(
            "usage: compress_probe realistic|incompressible N off|zstd:LEVEL|dict:LEVEL".into(),
        );
    };
    let corpus: Corpus = corpus.parse()?;
    let count: u64 = count.parse()?;
    let compression = trailmix_benches::query_trailmix::parse_compression(compression)?;
    let receipts = (0..count)
        .map(|n| {
            let builder = Receipt::builder(
                format!("tenant-{}", n % 8),
                format!("evt-{n:012}"),
                Kind::LlmCall,
            )
            .app_id("bench-compress")
            .actor_type(ActorType::Agent)
            .event_time(Timestamp::from_unix_nanos(
                1_763_800_000_000_000_000 + i64::try_from(n)? * 1_000_000,
            ))
            .model_name("gpt-4o");
            let random = trailmix_benches::data::bytes(PAYLOAD_BYTES, SEED ^ n);
            Ok(with_payload(builder, corpus, n, &random).build()?)
        })
        .collect::<Result<Vec<Receipt>, BoxError>>()?;
    let dir = tempfile::tempdir_in(std::env::var_os("TRAILMIX_BENCH_DIR").unwrap_or(".".into()))?;
    let db = Db::open_with(
        dir.path().join("store"),
        DbOptions::default()
            .durability(Durability::Written)
            .payload_compression(compression),
    )?;
    let mut seqs = Vec::with_capacity(receipts.len());
    let appending = std::time::Instant::now();
    for chunk in receipts.chunks(10_000) {
        let positions = db
            .append_batch(chunk)?
            .wait()
            .positions()
            .map_err(|(i, e)| format!("item {i}: {e}"))?;
        seqs.extend(positions.into_iter().map(|p| p.seq));
    }
    let appended = appending.elapsed();
    let reading = std::time::Instant::now();
    let mut payload_bytes = 0;
    for seq in &seqs {
        payload_bytes += db.get(*seq)?.payload.len();
    }
    let read = reading.elapsed();
    db.close()?;
    // Wall clock, one caller thread, no sync: for pairing runs of two settings, not alone.
    #[allow(clippy::cast_precision_loss, reason = "rates for display")]
    let rate = |d: std::time::Duration| count as f64 / d.as_secs_f64() / 1e3;
    println!(
        "{count} receipts of {corpus:?} under {compression:?}, {payload_bytes} payload bytes \
         read back; appended at {:.0} k/s, read back at {:.0} k/s (wall clock)",
        rate(appended),
        rate(read)
    );
    Ok(())
}
