//! Guards invariant 1 (nothing acknowledged is ever lost; the recovered log is a prefix of the
//! submission order; reopen never fails) with seeded crash simulation over `SimDisk`: power
//! loss at random storage operations (inside flushes, rollovers, segment ends, segment
//! creation, seal writes, recovery itself) and between them, process crashes and clean closes, several crash/reopen
//! cycles per seed.
//!
//! `TRAILMIX_CRASH_SEEDS=N` runs N seeds per test (soak runs); `TRAILMIX_CRASH_SEED=S` reruns
//! just seed S; `TRAILMIX_CRASH_TRACE=1` prints each cycle's story (planned crash point,
//! acknowledgements, opens). A failure prints its seed and the command that replays it.

mod common;

use common::{Disk, Shape, Stats, crash_run, panic_message};

/// Seeds per test in a default `cargo test` run.
const DEFAULT_SEEDS: u64 = 200;
/// Crash/reopen cycles per seed.
const CYCLES: u32 = 16;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = env_u64("TRAILMIX_CRASH_SEED") {
        return vec![seed];
    }
    (0..env_u64("TRAILMIX_CRASH_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect()
}

/// Runs every seed, stopping at the first failure with its seed and a replay command.
fn run_seeds(test: &str, shape: Shape) -> Stats {
    let seeds = seeds();
    let mut total = Stats::default();
    for &seed in &seeds {
        let rerun = format!(
            "rerun just this seed: TRAILMIX_CRASH_SEED={seed} cargo test -p trailmix-wal \
             --test crash_sim -- {test} --exact"
        );
        match std::panic::catch_unwind(|| crash_run(seed, shape, CYCLES, Disk::Honest)) {
            Ok(Ok(stats)) => total += stats,
            Ok(Err(violation)) => panic!("{test}: seed {seed}: {violation}\n{rerun}"),
            Err(payload) => panic!(
                "{test}: seed {seed} panicked: {}\n{rerun}",
                panic_message(payload.as_ref())
            ),
        }
    }
    println!("{test}: {total}");
    if seeds.len() >= 20 {
        // The harness must really exercise what it claims to.
        assert!(
            total.crashes_mid_op >= total.seeds * u64::from(CYCLES) / 4,
            "too few mid-operation crashes: {total}"
        );
        assert!(
            total.crashes_in_rollover >= total.seeds,
            "too few crashes inside rollovers: {total}"
        );
        assert!(
            total.crashes_in_recovery >= total.seeds,
            "too few crashes during recovery: {total}"
        );
        assert!(total.crashes_between_ops > 0, "{total}");
        assert!(
            total.process_crashes > 0 && total.clean_closes > 0,
            "{total}"
        );
        assert!(
            total.segment_ends >= total.seeds,
            "too few segment ends: {total}"
        );
        assert!(
            total.segments >= total.seeds * 3,
            "too few rollovers: {total}"
        );
    }
    total
}

/// Tiny segments (eight pages): a rollover every few records, so crashes land in rollovers,
/// segment creation and seal writes often.
#[test]
fn crash_anywhere_with_tiny_segments() {
    run_seeds(
        "crash_anywhere_with_tiny_segments",
        Shape {
            segment_bytes: 8 * 4096,
            record_bytes_max: 4000,
        },
    );
}

/// Larger segments and records up to 16 000 bytes: frames spanning several pages, torn across
/// page and sector boundaries.
#[test]
fn crash_anywhere_with_large_records() {
    run_seeds(
        "crash_anywhere_with_large_records",
        Shape {
            segment_bytes: 16 * 4096,
            record_bytes_max: 16_000,
        },
    );
}

/// A seed replays exactly: the same crash points, the same surviving pages, the same outcome
/// (otherwise a printed seed would not reproduce a failure).
#[test]
fn a_seed_replays_the_same_run() {
    let shape = Shape {
        segment_bytes: 8 * 4096,
        record_bytes_max: 4000,
    };
    for seed in [7, 1_000_003] {
        let first = crash_run(seed, shape, CYCLES, Disk::Honest).expect("run");
        let second = crash_run(seed, shape, CYCLES, Disk::Honest).expect("replay");
        assert_eq!(first, second, "seed {seed} did not replay the same run");
        assert!(
            first.crash_points() > 0,
            "seed {seed} crashed nowhere: {first}"
        );
    }
}
