//! Guards invariant 1 for the whole engine under power loss: over the WAL's simulated disk,
//! crashes at random storage operations (inside group commits, checkpoints, seals, rollovers,
//! recovery) never lose an acknowledged receipt, and after every recovery the chain, tenant
//! links, checkpoints and seals verify.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::wal::sim::{SimDisk, SyncBehaviour};
use trailmix_db::{Db, DbOptions, VerifyOptions, verify_log};

fn receipt(n: u64) -> Receipt {
    Receipt::builder(
        format!("tenant-{}", n % 3),
        format!("evt-{n:06}"),
        Kind::LlmCall,
    )
    .app_id("crash-sim")
    .actor_type(ActorType::Agent)
    .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
    .input(serde_json::json!({"n": n, "pad": "x".repeat(usize::try_from(n % 700).expect("small"))}))
    .build()
    .expect("valid receipt")
}

fn options() -> DbOptions {
    DbOptions::default()
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
fn run_seed(seed: u64, keys: &std::path::Path, sync: SyncBehaviour) -> Result<u32, String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    // Each seed is its own store: its key files (signing key, key store) live apart.
    let keys = &keys.join(format!("seed-{seed}"));
    let disk = SimDisk::new(seed);
    disk.set_sync_behaviour(sync);
    let mut frozen = 0;
    let mut acked: Vec<(Seq, u64)> = Vec::new();
    let mut next_event = 0u64;
    for cycle in 0..6 {
        let db = Db::open_on(&disk, keys, options())
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
            let again = db
                .append_and_wait(&receipt(*n))
                .map_err(|e| format!("cycle {cycle}: idempotent re-append failed: {e}"))?;
            if again.seq != *seq {
                return Err(format!(
                    "cycle {cycle}: re-appending evt-{n:06} gave seq {} instead of {seq}",
                    again.seq
                ));
            }
        }
        disk.crash_at_op(disk.ops() + rng.random_range(1..400));
        for _ in 0..rng.random_range(5..60) {
            let n = next_event;
            next_event += 1;
            match db.append_and_wait(&receipt(n)) {
                Ok(position) => acked.push((position.seq, n)),
                Err(_) => break, // the disk froze: nothing after this was acknowledged
            }
            if rng.random_bool(0.05) && db.seal_epoch().is_err() {
                break;
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

#[test]
fn acknowledged_receipts_survive_power_loss_and_the_store_verifies() {
    let keys = tempfile::tempdir().expect("tempdir");
    let mut frozen = 0;
    for seed in seeds() {
        let rerun = format!(
            "rerun: TRAILMIX_CRASH_SEED={seed} cargo test -p trailmix-db --test engine_crash_sim"
        );
        let run = std::panic::catch_unwind(|| run_seed(seed, keys.path(), SyncBehaviour::Honest))
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

/// Negative control: a disk that acknowledges syncs without persisting (the same as acking
/// before the flush) must be caught by the same checks.
#[test]
fn a_lying_disk_is_caught() {
    let keys = tempfile::tempdir().expect("tempdir");
    let caught = (0..12)
        .map(|i| seed_base().wrapping_add(i))
        .filter(|&seed| run_seed(seed, keys.path(), SyncBehaviour::Lying).is_err())
        .count();
    assert!(
        caught > 0,
        "the harness did not notice lost acknowledged receipts on a lying disk (seeds from {0}; \
         rerun: TRAILMIX_SEED={0} cargo test -p trailmix-db --test engine_crash_sim)",
        seed_base()
    );
}
