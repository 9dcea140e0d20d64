//! Guards the indexer's idle merge of event-id runs: after commits have left several runs and
//! the store has been idle, the runs are merged (fewer seeks per event-id lookup) while every
//! receipt is still found by its event id and the index still equals a rebuild.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use trailmix_db::indexer::{EVENT_ID_MERGE_IDLE, INDEX_DIR, INDEX_FILE};
use trailmix_db::wal::WalReader;
use trailmix_db::{Db, DbOptions};
use trailmix_index::{ReadOnlyIndex, StoreBinding};

/// The store's index, opened as another process would (the writer keeps it open meanwhile).
fn open_index(dir: &Path) -> ReadOnlyIndex {
    let meta = *WalReader::open(common::wal_dir(dir)).expect("log").meta();
    let binding = StoreBinding {
        store_id: meta.store_id.0,
        hash_algorithm: meta.hash_algorithm.to_string(),
    };
    ReadOnlyIndex::open(&dir.join(INDEX_DIR).join(INDEX_FILE), &binding).expect("index")
}

fn run_count(index: &ReadOnlyIndex) -> usize {
    index
        .reader()
        .expect("snapshot")
        .event_id_run_count()
        .expect("runs")
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + EVENT_ID_MERGE_IDLE * 20;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_idle_indexer_merges_the_event_id_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let db = Db::open_with(&dir, DbOptions::default()).expect("create");
    let index = open_index(&dir);
    // Waves indexed one by one, each in its own index commit and so its own run, coming
    // faster than the merge's idle time.
    let mut n = 0;
    for _ in 0..5 {
        let receipts: Vec<_> = (n..n + 40)
            .map(|i| common::receipt("acme", i, 16))
            .collect();
        n += 40;
        let results = db.append_batch(&receipts).expect("submit").wait();
        results.positions().expect("appended");
        wait_until("the index to cover the wave", || {
            let status = db.index_status();
            status.watermark >= status.durable_end
        });
    }
    let before = run_count(&index);
    assert!(
        before >= 2,
        "the waves should have left several runs, not {before}"
    );
    wait_until("the idle merge", || run_count(&index) == 1);
    for i in 0..n {
        let event_id = common::event_id(i);
        let found = db.find_event("acme", &event_id).expect("lookup");
        assert!(found.is_some(), "{event_id} lost by the merge");
    }
    assert!(
        db.check_index().expect("rebuild").matches,
        "index differs from a rebuild"
    );
    db.close().expect("close");
}
