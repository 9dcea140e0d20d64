//! Runs `verify_store` on one store, for callgrind (instruction counts per thread) or a quick
//! timing beside a per-entry blake3 of the same bytes:
//!
//! ```text
//! cargo run --release -p trailmix-benches --example verify_probe -- DIR [receipts] [rounds]
//! ```
//!
//! Builds a store of `receipts` (default 100 000) 512-byte receipts in `DIR/store` the way
//! the `engine_verify` benchmark does, unless one is already there, then verifies it `rounds`
//! times (default 1) and hashes every entry's stored bytes with blake3 once per round, so
//! `valgrind --tool=callgrind --separate-threads=yes` over a run with an existing store sees
//! the verification and its baseline and nothing else.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use trailmix_benches::receipts;
use trailmix_benches::rigs::BoxError;
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{VerifyOptions, WAL_DIR, verify_store};

/// blake3 of every entry's stored bytes, read through the WAL reader.
fn blake3_per_entry(dir: &Path) -> Result<(u64, u8), BoxError> {
    let reader = WalReader::open(dir.join(WAL_DIR))?;
    let mut acc = 0u8;
    let mut bytes = 0u64;
    reader.scan(Seq(0), |record| {
        bytes += record.payload.len() as u64;
        acc ^= blake3::hash(record.payload).as_bytes()[0];
        ControlFlow::Continue(())
    })?;
    Ok((bytes, acc))
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let root = args
        .next()
        .ok_or("usage: verify_probe DIR [receipts] [rounds]")?;
    let count: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(1), |a| a.parse())?;
    let dir = Path::new(&root).join("store");
    if !dir.exists() {
        let started = Instant::now();
        receipts::fill_store(&dir, count)?;
        eprintln!("built {count} receipts in {:.1?}", started.elapsed());
    }
    for _ in 0..rounds {
        let started = Instant::now();
        let report = verify_store(&dir, &VerifyOptions::default())?;
        let verify = started.elapsed();
        if !report.verified() {
            return Err(format!("the store does not verify: {report:?}").into());
        }
        let started = Instant::now();
        let (bytes, acc) = blake3_per_entry(&dir)?;
        let hash = started.elapsed();
        #[allow(clippy::cast_precision_loss, reason = "display")]
        let ratio = hash.as_secs_f64() / verify.as_secs_f64().max(1e-9);
        println!(
            "{} entries, {bytes} bytes: verify {verify:.1?}, blake3 per entry (scan + hash) \
             {hash:.1?} ({acc}); verify at {ratio:.2}x",
            report.entries
        );
    }
    Ok(())
}
