//! Times (or, under callgrind, counts) one query job on trailmix-db alone, without criterion:
//!
//! ```sh
//! cargo run --release -p trailmix-benches --example query_probe -- load DIR 100000
//! cargo run --release -p trailmix-benches --example query_probe -- run DIR 100000 tenant_time 2000
//! cargo run --release -p trailmix-benches --example query_probe -- run DIR 100000 tenant_time 2000 heads
//! ```
//!
//! `load` fills a store at `DIR` with the query benchmark's seeded data; `run` reopens it and
//! runs that many queries of one job (`tenant_time`, `model_time`, `session`, `event`) built
//! from the same data, printing the mean and p50/p99 per query. A trailing `heads` queries
//! through `Db::query_heads` (no payload copied or decrypted) instead of `Db::query`.

use std::path::PathBuf;
use std::time::Instant;

use trailmix_benches::query_data::{Dataset, Job, QuerySet, SEED};
use trailmix_benches::query_rigs::{QueryRig, run};
use trailmix_benches::query_trailmix::TrailmixRig;
use trailmix_benches::rigs::BoxError;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: query_probe load DIR N | run DIR N JOB QUERIES [heads]";
    let (mode, dir, receipts) = match args.as_slice() {
        [mode, dir, n, ..] => (mode.as_str(), PathBuf::from(dir), n.parse::<usize>()?),
        _ => return Err(usage.into()),
    };
    let data = Dataset::generate(receipts, SEED);
    if mode == "load" {
        let rig = TrailmixRig::load(&dir, &data)?;
        println!("{:?}", rig.load_stats());
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
    let rig = TrailmixRig::open(&dir)?;
    let rig = if args.get(5).is_some_and(|mode| mode == "heads") {
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
