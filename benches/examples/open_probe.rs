//! Opens a store whose open snapshot was removed, so `Db::open` replays its whole log (what
//! an open after a crash does with the entries past its last snapshot), for callgrind
//! (instruction counts per thread) or a quick timing:
//!
//! ```text
//! cargo run --release -p trailmix-benches --example open_probe -- DIR [receipts] [rounds]
//! ```
//!
//! Builds a store of `receipts` (default 100 000) 512-byte receipts in `DIR/store` the way the
//! `engine_verify` benchmark does, unless one is already there; then, each round, copies it to
//! `DIR/open` (untimed), removes the copy's open snapshot and opens it. The replay is
//! `trailmix_db::db::replay` in a callgrind profile (`--separate-threads=yes`: the hashing
//! threads are the other thread files).

use std::path::Path;
use std::time::Instant;

use trailmix_benches::receipts;
use trailmix_benches::rigs::BoxError;
use trailmix_db::Db;

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for item in std::fs::read_dir(from)? {
        let item = item?;
        if item.file_type()?.is_dir() {
            copy_dir(&item.path(), &to.join(item.file_name()))?;
        } else {
            std::fs::copy(item.path(), to.join(item.file_name()))?;
        }
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let root = args
        .next()
        .ok_or("usage: open_probe DIR [receipts] [rounds]")?;
    let count: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(1), |a| a.parse())?;
    let store = Path::new(&root).join("store");
    if !store.exists() {
        let started = Instant::now();
        receipts::fill_store(&store, count)?;
        eprintln!("built {count} receipts in {:.1?}", started.elapsed());
    }
    let work = Path::new(&root).join("open");
    for _ in 0..rounds {
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&store, &work)?;
        let _ = std::fs::remove_file(work.join("open.snapshot"));
        let started = Instant::now();
        let db = Db::open(&work)?;
        let opened = started.elapsed();
        println!(
            "open without a snapshot: {} entries replayed in {opened:.1?} ({:?})",
            db.durable_end().0,
            db.open_snapshot()
        );
        db.close()?;
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
