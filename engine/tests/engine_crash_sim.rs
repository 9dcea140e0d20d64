//! Guards invariant 1 for the whole engine under power loss: over the WAL's simulated disk,
//! crashes at random storage operations (inside group commits, checkpoints, seals, rollovers,
//! recovery) never lose an acknowledged receipt, and after every recovery the chain, tenant
//! links, checkpoints and seals verify. Group commits sync on the sync thread (the default) or
//! in the writer.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::wal::sim::{SimDisk, SyncBehaviour};
use trailmix_db::{Db, DbOptions, SyncPlacement, VerifyOptions, verify_log};

/// How a cycle appends.
#[derive(Debug, Clone, Copy)]
enum Workload {
    /// One to four single appends in flight at a time, small segments and epochs.
    Singles,
    /// Batches of ~1–2 MB in 2 MiB segments: rollovers inside a batch's group commit, and
    /// crashes while its sync runs on the sync thread.
    LargeBatches,
}

fn receipt(n: u64) -> Receipt {
    receipt_padded(n, usize::try_from(n % 700).expect("small"))
}

/// The receipts of [`Workload::LargeBatches`]: ~1.4 KB each.
fn large_receipt(n: u64) -> Receipt {
    receipt_padded(n, 1000 + usize::try_from(n % 500).expect("small"))
}

fn receipt_padded(n: u64, pad: usize) -> Receipt {
    Receipt::builder(
        format!("tenant-{}", n % 3),
        format!("evt-{n:06}"),
        Kind::LlmCall,
    )
    .app_id("crash-sim")
    .actor_type(ActorType::Agent)
    .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
    .input(serde_json::json!({"n": n, "pad": "x".repeat(pad)}))
    .build()
    .expect("valid receipt")
}

/// Even seeds sync group commits on the sync thread (the default), odd ones in the writer.
fn options(seed: u64, workload: Workload) -> DbOptions {
    let placement = if seed.is_multiple_of(2) {
        SyncPlacement::SyncThread
    } else {
        SyncPlacement::Writer
    };
    let options = DbOptions::default().sync_placement(placement);
    if let Workload::LargeBatches = workload {
        return options
            .segment_bytes(2 << 20)
            .checkpoint_every_records(500)
            .checkpoint_interval(std::time::Duration::from_secs(3600))
            .epoch_records_max(6000);
    }
    options
        .segment_bytes(16 * 4096)
        .checkpoint_every_records(7)
        .checkpoint_interval(std::time::Duration::from_secs(3600))
        .epoch_records_max(40)
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a u64")),
    )
}

/// With `TRAILMIX_SEED=S` (the soak runner's variable) the tests run seeds S, S + 1, …
/// (wrapping) instead of 0, 1, …
fn seed_base() -> u64 {
    env_u64("TRAILMIX_SEED").unwrap_or(0)
}

/// `TRAILMIX_CRASH_SEED=S` runs seed S alone, else `TRAILMIX_CRASH_SEEDS` seeds (24) from
/// [`seed_base`] on.
fn seeds() -> Vec<u64> {
    if let Some(seed) = env_u64("TRAILMIX_CRASH_SEED") {
        return vec![seed];
    }
    let count = env_u64("TRAILMIX_CRASH_SEEDS").unwrap_or(24);
    (0..count).map(|i| seed_base().wrapping_add(i)).collect()
}

/// One seeded run: several crash/recover cycles on one simulated disk. Returns how many
/// crashes landed inside the engine's work (the disk froze before the cycle ended).
fn run_seed(
    seed: u64,
    keys: &std::path::Path,
    sync: SyncBehaviour,
    workload: Workload,
) -> Result<u32, String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    // Each seed is its own store: its key files (signing key, key store) live apart.
    let keys = &keys.join(format!("seed-{seed}"));
    let disk = SimDisk::new(seed);
    disk.set_sync_behaviour(sync);
    let mut frozen = 0;
    let mut acked: Vec<(Seq, u64)> = Vec::new();
    let mut next_event = 0u64;
    for cycle in 0..6 {
        let db = Db::open_on(&disk, keys, options(seed, workload))
            .map_err(|e| format!("cycle {cycle}: reopen failed: {e}"))?;
        for (seq, n) in &acked {
            let stored = db
                .get(*seq)
                .map_err(|e| format!("cycle {cycle}: acked seq {seq} lost: {e}"))?;
            if stored.header.event_id() != format!("evt-{n:06}") {
                return Err(format!(
                    "cycle {cycle}: seq {seq} holds {} instead of evt-{n:06}",
                    stored.header.event_id()
                ));
            }
        }
        if let Some((seq, n)) = acked.last() {
            let same = match workload {
                Workload::Singles => receipt(*n),
                Workload::LargeBatches => large_receipt(*n),
            };
            let again = db
                .append_and_wait(&same)
                .map_err(|e| format!("cycle {cycle}: idempotent re-append failed: {e}"))?;
            if again.seq != *seq {
                return Err(format!(
                    "cycle {cycle}: re-appending evt-{n:06} gave seq {} instead of {seq}",
                    again.seq
                ));
            }
        }
        // A large batch takes only a few storage operations (a sync per MiB or so).
        let ops_ahead = match workload {
            Workload::Singles => 400,
            Workload::LargeBatches => 16,
        };
        disk.crash_at_op(disk.ops() + rng.random_range(1..ops_ahead));
        let appends = match workload {
            // 2.5 appends each on average: about as many receipts a cycle as 5..60 single ones.
            Workload::Singles => rng.random_range(2..24),
            Workload::LargeBatches => rng.random_range(1..4),
        };
        for _ in 0..appends {
            let appended = match workload {
                Workload::Singles => append_singles(&db, &mut rng, &mut next_event),
                Workload::LargeBatches => append_large_batch(&db, &mut rng, &mut next_event),
            };
            let failed = appended.len() < appended.capacity();
            acked.extend(appended);
            if failed || (rng.random_bool(0.05) && db.seal_epoch().is_err()) {
                break; // the disk froze: nothing after this was acknowledged
            }
        }
        drop(db);
        frozen += u32::from(disk.is_frozen());
        disk.crash();
        disk.set_sync_behaviour(sync);
        let report = verify_log(&disk, None, &VerifyOptions::default())
            .map_err(|e| format!("cycle {cycle}: verify failed to run: {e}"))?;
        if let Some(damage) = report.damage {
            return Err(format!(
                "cycle {cycle}: the recovered store does not verify: {damage}"
            ));
        }
    }
    Ok(frozen)
}

/// One to four appends in flight at once, so that the writer writes some while the sync
/// thread syncs others. Returns the acknowledged ones, with a capacity of all submitted: fewer
/// means one failed (the disk froze).
fn append_singles(db: &Db<SimDisk>, rng: &mut SmallRng, next_event: &mut u64) -> Vec<(Seq, u64)> {
    let count = rng.random_range(1..=4);
    let mut acked = Vec::with_capacity(count);
    let mut tickets = Vec::with_capacity(count);
    for _ in 0..count {
        let n = *next_event;
        *next_event += 1;
        match db.append(&receipt(n)) {
            Ok(ticket) => tickets.push((ticket, n)),
            Err(_) => break,
        }
    }
    for (ticket, n) in tickets {
        if let Ok(position) = ticket.wait() {
            acked.push((position.seq, n));
        }
    }
    acked
}

/// One batch of ~1–2 MB; as [`append_singles`].
fn append_large_batch(
    db: &Db<SimDisk>,
    rng: &mut SmallRng,
    next_event: &mut u64,
) -> Vec<(Seq, u64)> {
    let count = rng.random_range(800..1600);
    let first = *next_event;
    *next_event += count;
    let receipts: Vec<Receipt> = (first..first + count).map(large_receipt).collect();
    let mut acked = Vec::with_capacity(receipts.len());
    if let Ok(ticket) = db.append_batch(&receipts)
        && let Ok(positions) = ticket.wait().positions()
    {
        acked.extend(positions.iter().zip(first..).map(|(p, n)| (p.seq, n)));
    }
    acked
}

/// Runs `seeds` with an honest disk and panics with a rerun line at the first failure; asserts
/// that some crash landed inside the engine's work.
fn run_honest(seeds: Vec<u64>, workload: Workload) {
    let keys = tempfile::tempdir().expect("tempdir");
    let mut frozen = 0;
    for seed in seeds {
        let rerun = format!(
            "rerun: TRAILMIX_CRASH_SEED={seed} cargo test -p trailmix-db --test engine_crash_sim"
        );
        let run = std::panic::catch_unwind(|| {
            run_seed(seed, keys.path(), SyncBehaviour::Honest, workload)
        })
        .unwrap_or_else(|_| Err("panicked (see above)".to_owned()));
        match run {
            Ok(count) => frozen += count,
            Err(problem) => panic!("seed {seed}: {problem}\n{rerun}"),
        }
    }
    assert!(
        frozen > 0,
        "no crash landed inside the engine's work: the test proves nothing"
    );
}

#[test]
fn acknowledged_receipts_survive_power_loss_and_the_store_verifies() {
    run_honest(seeds(), Workload::Singles);
}

/// Negative control: a disk that acknowledges syncs without persisting (the same as acking
/// before the flush) must be caught by the same checks.
#[test]
fn a_lying_disk_is_caught() {
    let keys = tempfile::tempdir().expect("tempdir");
    let caught = (0..12)
        .map(|i| seed_base().wrapping_add(i))
        .filter(|&seed| {
            run_seed(seed, keys.path(), SyncBehaviour::Lying, Workload::Singles).is_err()
        })
        .count();
    assert!(
        caught > 0,
        "the harness did not notice lost acknowledged receipts on a lying disk (seeds from {0}; \
         rerun: TRAILMIX_SEED={0} cargo test -p trailmix-db --test engine_crash_sim)",
        seed_base()
    );
}

#[test]
fn acknowledged_large_batches_survive_power_loss() {
    run_honest(
        seeds().into_iter().take(8).collect(),
        Workload::LargeBatches,
    );
}
