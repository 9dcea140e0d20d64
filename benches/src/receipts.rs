//! Receipts for the engine benchmarks: deterministic, unique event ids, 8 tenants, 4 models,
//! increasing event times, and a canonical payload of exactly [`PAYLOAD_BYTES`] bytes.
//!
//! Building a receipt (validation, canonical JSON) costs ~20 µs, more than ingesting it, so the
//! benchmarks build every receipt before the timed section, on all cores.

use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};

/// Canonical payload bytes of every benchmark receipt.
pub const PAYLOAD_BYTES: usize = 512;
/// Canonical payload bytes of the large-receipt ingest jobs (the "2 KiB payloads").
pub const LARGE_PAYLOAD_BYTES: usize = 2048;
/// Number of tenants the receipts are spread over.
pub const TENANTS: u64 = 8;
/// Model names the receipts cycle through.
pub const MODELS: [&str; 4] = [
    "gpt-4.1",
    "claude-sonnet-4",
    "llama-3.3-70b",
    "mistral-large",
];
/// Event time of receipt 0 (2025-11-22); receipt `n` is `n` milliseconds later.
const BASE_NS: i64 = 1_763_800_000_000_000_000;

/// Receipt `n` with its header fields and no payload yet.
fn builder(n: u64) -> Result<trailmix_db::receipt::ReceiptBuilder, String> {
    let model = MODELS[usize::try_from(n % 4).map_err(|e| e.to_string())?];
    let offset = i64::try_from(n).map_err(|e| e.to_string())? * 1_000_000;
    Ok(Receipt::builder(
        format!("tenant-{}", n % TENANTS),
        format!("evt-{n:012}"),
        Kind::LlmCall,
    )
    .app_id("bench-ingest")
    .actor_type(ActorType::Agent)
    .event_time(Timestamp::from_unix_nanos(BASE_NS + offset))
    .model_name(model))
}

fn one(n: u64, pad: usize) -> Result<Receipt, String> {
    builder(n)?
        .input(serde_json::json!({"n": format!("{n:012}"), "pad": "x".repeat(pad)}))
        .build()
        .map_err(|e| e.to_string())
}

/// Receipt `n` with a payload of the realistic corpus ([`crate::realistic`], seed
/// [`crate::query_data::SEED`], about [`PAYLOAD_BYTES`] of canonical JSON): text that
/// compresses as SDK events do, where [`one`]'s padding would compress to nothing.
fn realistic_one(n: u64) -> Result<Receipt, String> {
    crate::realistic::payload(crate::query_data::SEED, n, PAYLOAD_BYTES)
        .apply(builder(n)?)
        .build()
        .map_err(|e| e.to_string())
}

/// Receipts `start .. start + count`, built on `threads` threads; each canonical payload is
/// [`PAYLOAD_BYTES`] long.
///
/// # Errors
/// When a receipt does not build (a bug here).
pub fn build(start: u64, count: usize, threads: usize) -> Result<Vec<Receipt>, String> {
    build_sized(start, count, threads, PAYLOAD_BYTES)
}

/// As [`build`], with canonical payloads of `payload_bytes`.
///
/// # Errors
/// When a receipt does not build (a bug here), or `payload_bytes` is below an empty
/// receipt's payload.
pub fn build_sized(
    start: u64,
    count: usize,
    threads: usize,
    payload_bytes: usize,
) -> Result<Vec<Receipt>, String> {
    let probe = one(start, 0)?.payload().len();
    let pad = payload_bytes
        .checked_sub(probe)
        .ok_or_else(|| format!("an empty receipt's payload is already {probe} bytes"))?;
    build_with(start, count, threads, |n| one(n, pad))
}

/// As [`build`], with payloads of the realistic corpus (about [`PAYLOAD_BYTES`] each, not
/// exactly): the receipts of the compression pair of the ingest benchmark.
///
/// # Errors
/// When a receipt does not build (a bug here).
pub fn build_realistic(start: u64, count: usize, threads: usize) -> Result<Vec<Receipt>, String> {
    build_with(start, count, threads, realistic_one)
}

/// Receipts `make(start) .. make(start + count - 1)`, built on `threads` threads, in order.
fn build_with(
    start: u64,
    count: usize,
    threads: usize,
    make: impl Fn(u64) -> Result<Receipt, String> + Sync,
) -> Result<Vec<Receipt>, String> {
    let make = &make;
    let threads = threads.max(1);
    let per = count.div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<Receipt>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..count)
            .step_by(per)
            .map(|from| {
                let to = (from + per).min(count);
                s.spawn(move || {
                    (from..to)
                        .map(|i| make(start + i as u64))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("builder thread panicked".into()))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(count);
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// The bytes a baseline stores for a receipt: the encoded header followed by the payload.
#[must_use]
pub fn stored_bytes(receipt: &Receipt) -> Vec<u8> {
    let mut out = receipt.header().encode();
    out.extend_from_slice(receipt.payload());
    out
}

/// Available cores (at least 1).
#[must_use]
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Fills a new store in `dir` with `count` receipts of [`build`] (two caller threads, windows
/// of 1024 tickets), as the verify benchmark and its probe do.
///
/// # Errors
/// Receipt building, store or ticket errors.
pub fn fill_store(dir: &std::path::Path, count: usize) -> Result<(), crate::rigs::BoxError> {
    let receipts = build(0, count, cores())?;
    let db = trailmix_db::Db::open_with(dir, trailmix_db::DbOptions::default())?;
    std::thread::scope(|s| -> Result<(), crate::rigs::BoxError> {
        let handles: Vec<_> = receipts
            .chunks(count.div_ceil(2))
            .map(|part| {
                let db = &db;
                s.spawn(move || -> Result<(), crate::rigs::BoxError> {
                    for window in part.chunks(1024) {
                        let tickets = window
                            .iter()
                            .map(|r| db.append(r))
                            .collect::<Result<Vec<_>, _>>()?;
                        for ticket in tickets {
                            ticket.wait()?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle.join().map_err(|_| "caller panicked")??;
        }
        Ok(())
    })?;
    db.close()?;
    Ok(())
}

/// Appends `receipts` through `Db::append_batch`, `batch` receipts per call, submitting batch
/// k + 1 before waiting for batch k (one caller thread of the batched ingest rigs).
///
/// # Errors
/// A refused batch, or the first item a batch did not store, named by its index there.
pub fn append_batches(
    db: &trailmix_db::Db,
    receipts: &[Receipt],
    batch: usize,
) -> Result<(), crate::rigs::BoxError> {
    let wait = |ticket: trailmix_db::BatchTicket| -> Result<(), crate::rigs::BoxError> {
        ticket
            .wait()
            .positions()
            .map_err(|(i, e)| format!("item {i}: {e}"))?;
        Ok(())
    };
    let mut pending: Option<trailmix_db::BatchTicket> = None;
    for chunk in receipts.chunks(batch.max(1)) {
        if let Some(previous) = pending.replace(db.append_batch(chunk)?) {
            wait(previous)?;
        }
    }
    pending.map_or(Ok(()), wait)
}

/// `TRAILMIX_SYNC_PLACEMENT` (`writer` or `sync-thread`), when set: where a bench's trailmix
/// stores sync their group commits (to set a run with the sync in the writer beside one with
/// the default).
///
/// # Errors
/// Another value.
pub fn sync_placement_override() -> Result<Option<trailmix_db::SyncPlacement>, crate::rigs::BoxError>
{
    match std::env::var("TRAILMIX_SYNC_PLACEMENT").as_deref() {
        Ok("writer") => Ok(Some(trailmix_db::SyncPlacement::Writer)),
        Ok("sync-thread") => Ok(Some(trailmix_db::SyncPlacement::SyncThread)),
        Ok(other) => Err(format!(
            "TRAILMIX_SYNC_PLACEMENT={other:?} is neither \"writer\" nor \"sync-thread\""
        )
        .into()),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(format!("TRAILMIX_SYNC_PLACEMENT: {e}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_target_size_and_unique_ids() -> Result<(), String> {
        let receipts = build(7, 50, 3)?;
        assert_eq!(receipts.len(), 50);
        assert!(receipts.iter().all(|r| r.payload().len() == PAYLOAD_BYTES));
        let ids: std::collections::BTreeSet<&str> =
            receipts.iter().map(|r| r.header().event_id()).collect();
        assert_eq!(ids.len(), 50);
        assert_eq!(receipts[0].header().event_id(), "evt-000000000007");
        // The compression pair's receipts: same headers, realistic payloads near the size.
        let realistic = build_realistic(7, 50, 3)?;
        for (r, plain) in realistic.iter().zip(&receipts) {
            assert_eq!(r.header().event_id(), plain.header().event_id());
            assert!(
                (480..640).contains(&r.payload().len()),
                "{}",
                r.payload().len()
            );
        }
        assert_ne!(realistic[0].payload(), realistic[1].payload());
        let large = build_sized(7, 5, 2, LARGE_PAYLOAD_BYTES)?;
        assert!(
            large
                .iter()
                .all(|r| r.payload().len() == LARGE_PAYLOAD_BYTES)
        );
        Ok(())
    }
}
