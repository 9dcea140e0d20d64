//! Breaks trailmix-db's durable ingest down (the findings in docs/performance.md):
//!
//! ```text
//! cargo run --release -p trailmix-benches --example ingest_probe -- [receipts] [rounds] [batch]
//! ```
//!
//! With `batch` > 0 every round submits through `Db::append_batch`, `batch` receipts per call
//! (one ticket per batch), instead of one `Db::append` per receipt; `submit` is then the time
//! inside `append_batch`.
//!
//! For `receipts` pre-built 512-byte receipts (default 50 000, below the ring capacity so
//! submitting never blocks on backpressure), one caller thread, each round in a fresh store:
//!
//! - `submit`: the time spent inside `Db::append` for all receipts (the caller-side cost:
//!   header encoding, payload copy, two blake3 digests, allocations, the ring send);
//! - `drain`: from the last `append` until every ticket waited (the writer's backlog);
//! - the same with `Durability::Written` (no sync per group commit): the CPU-only rate, with
//!   payload encryption on (the default) and off: the difference in `submit` is the
//!   caller-side cost of encryption; each round also prints the process's CPU time per
//!   receipt (all threads), which other load on the machine hardly changes;
//! - the caller-side hashing alone (`payload_digest` + `content_digest` per receipt) and
//!   a raw blake3 of each receipt's stored bytes, for scale.

use std::time::{Duration, Instant};

use trailmix_benches::proc_stats::process_cpu_time;
use trailmix_benches::receipts;
use trailmix_benches::rigs::BoxError;
use trailmix_db::entry::{EntryKind, content_digest, payload_digest};
use trailmix_db::wal::HashAlgorithm;
use trailmix_db::{
    BatchTicket, Db, DbOptions, Durability, PayloadEncryption, Ticket, VerifyOptions,
};

fn rate(n: usize, d: Duration) -> String {
    #[allow(clippy::cast_precision_loss, reason = "display")]
    let per = n as f64 / d.as_secs_f64().max(1e-9);
    format!("{:.0} k/s", per / 1e3)
}

/// Submit time, drain time and the process's CPU time (all threads) of one round.
/// `batch` > 0: through `append_batch`, that many receipts per call.
fn round(
    receipts: &[trailmix_db::receipt::Receipt],
    options: DbOptions,
    batch: usize,
) -> Result<(Duration, Duration, Duration), BoxError> {
    let dir = tempfile::tempdir_in(std::env::var_os("TRAILMIX_BENCH_DIR").unwrap_or(".".into()))?;
    let db = Db::open_with(dir.path().join("store"), options)?;
    let cpu_before = process_cpu_time();
    let start = Instant::now();
    let submitted;
    if batch == 0 {
        let tickets: Vec<Ticket> = receipts
            .iter()
            .map(|r| db.append(r))
            .collect::<Result<_, _>>()?;
        submitted = start.elapsed();
        for ticket in tickets {
            ticket.wait()?;
        }
    } else {
        let tickets: Vec<BatchTicket> = receipts
            .chunks(batch)
            .map(|chunk| db.append_batch(chunk))
            .collect::<Result<_, _>>()?;
        submitted = start.elapsed();
        for ticket in tickets {
            ticket
                .wait()
                .positions()
                .map_err(|(i, e)| format!("item {i}: {e}"))?;
        }
    }
    let total = start.elapsed();
    let cpu = process_cpu_time().saturating_sub(cpu_before);
    db.close()?;
    Ok((submitted, total.saturating_sub(submitted), cpu))
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(50_000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let batch: usize = args.next().map_or(Ok(0), |a| a.parse())?;
    let receipts = receipts::build(0, count, receipts::cores())?;
    let stored: Vec<Vec<u8>> = receipts.iter().map(receipts::stored_bytes).collect();

    let start = Instant::now();
    for r in &receipts {
        let header = r.header().encode();
        let pd = payload_digest(HashAlgorithm::Blake3, r.payload());
        std::hint::black_box(content_digest(
            HashAlgorithm::Blake3,
            EntryKind::Receipt,
            0,
            &header,
            &pd,
        ));
    }
    let caller_hashing = start.elapsed();
    let start = Instant::now();
    for b in &stored {
        std::hint::black_box(blake3::hash(b));
    }
    let raw = start.elapsed();
    println!(
        "caller-side encode + 2 digests alone: {}; raw blake3 per receipt: {}",
        rate(count, caller_hashing),
        rate(count, raw)
    );
    // Domain separation: a fresh derive_key hasher per hash (what `entry::hash_with_context`
    // does) against cloning one prepared hasher (what `merkle::leaf_hash` does).
    let context = "trailmix-db bench payload v1";
    let start = Instant::now();
    for r in &receipts {
        let mut h = blake3::Hasher::new_derive_key(context);
        h.update(r.payload());
        std::hint::black_box(h.finalize());
    }
    let fresh = start.elapsed();
    let prepared = blake3::Hasher::new_derive_key(context);
    let start = Instant::now();
    for r in &receipts {
        let mut h = prepared.clone();
        h.update(r.payload());
        std::hint::black_box(h.finalize());
    }
    let cloned = start.elapsed();
    println!(
        "512 B payload digest: new_derive_key per hash {}, cloned prepared hasher {}",
        rate(count, fresh),
        rate(count, cloned)
    );
    encryption_costs(&receipts);
    // verify_store's fixed cost: a store holding one receipt (its 64 MiB segment is scanned
    // to the end for a torn tail).
    let dir = tempfile::tempdir_in(std::env::var_os("TRAILMIX_BENCH_DIR").unwrap_or(".".into()))?;
    let db = Db::open(dir.path().join("store"))?;
    db.append(&receipts[0])?.wait()?;
    db.close()?;
    for _ in 0..3 {
        let start = Instant::now();
        let report =
            trailmix_db::verify_store(&dir.path().join("store"), &VerifyOptions::default())?;
        println!(
            "verify_store of a 1-receipt store ({} entries): {:.1?}",
            report.entries,
            start.elapsed()
        );
    }
    let written = DbOptions::default().durability(Durability::Written);
    for (name, options) in [
        ("durable", DbOptions::default()),
        ("written", written.clone()),
        (
            "written, unencrypted",
            written.payload_encryption(PayloadEncryption::Off),
        ),
    ] {
        for _ in 0..rounds {
            let (submit, drain, cpu) = round(&receipts, options.clone(), batch)?;
            println!(
                "{name}{}: {count} receipts, submit {:.1?} ({}), drain {:.1?}, total {}, \
                 cpu {:.2?} per receipt",
                if batch > 0 {
                    format!(" (batches of {batch})")
                } else {
                    String::new()
                },
                submit,
                rate(count, submit),
                drain,
                rate(count, submit + drain),
                cpu / u32::try_from(count.max(1)).unwrap_or(u32::MAX)
            );
        }
    }
    Ok(())
}

/// What payload encryption costs per receipt in the caller thread, piece by piece.
fn encryption_costs(receipts: &[trailmix_db::receipt::Receipt]) {
    use trailmix_db::crypto::{KeyId, SecretKey, encrypt_payload, payload_ad};
    let key = SecretKey::generate();
    let store_id = [7u8; 16];
    let headers: Vec<Vec<u8>> = receipts.iter().map(|r| r.header().encode()).collect();
    let start = Instant::now();
    for (r, header) in receipts.iter().zip(&headers) {
        std::hint::black_box(encrypt_payload(&key, KeyId(1), &store_id, header, r.payload()).ok());
    }
    let whole = start.elapsed();
    let start = Instant::now();
    for header in &headers {
        std::hint::black_box(payload_ad(&store_id, KeyId(1), header));
    }
    let ad = start.elapsed();
    let start = Instant::now();
    for _ in receipts {
        let mut nonce = [0u8; trailmix_db::crypto::NONCE_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        std::hint::black_box(nonce);
    }
    let nonce = start.elapsed();
    let start = Instant::now();
    for _ in receipts {
        std::hint::black_box(key.clone());
    }
    let clone = start.elapsed();
    println!(
        "encrypt_payload {} ({:.2?} each): AD build {}, random nonce {}, key clone {}",
        rate(receipts.len(), whole),
        whole / u32::try_from(receipts.len().max(1)).unwrap_or(u32::MAX),
        rate(receipts.len(), ad),
        rate(receipts.len(), nonce),
        rate(receipts.len(), clone),
    );
}
