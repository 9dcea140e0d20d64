//! Guards `Index::shared_reader`: lookups share one snapshot between commits, a commit that
//! returned is always visible to the next lookup (a shared snapshot never hides it), and a
//! kept snapshot does not stop the index from closing cleanly.

mod common;

use std::sync::Arc;

use common::{batch, binding, records};
use trailmix_index::{CommitMode, Index, IndexOptions, ReadOnlyIndex};

#[test]
fn a_shared_snapshot_lasts_until_the_next_commit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("index.redb");
    let index = Index::open(&path, &binding(), IndexOptions::new()).expect("open");
    let (recs, end) = records(5, 120);
    let split = 60;
    let first_end = recs[split].seq;

    let empty = index.shared_reader().expect("snapshot");
    assert_eq!(empty.watermark(), 0);
    assert!(
        Arc::ptr_eq(&empty, &index.shared_reader().expect("snapshot")),
        "no commit in between: the same snapshot"
    );

    for (mode, range, stop) in [
        (CommitMode::Lazy, 0..split, first_end),
        (CommitMode::Durable, split..recs.len(), end),
    ] {
        let start = index.shared_reader().expect("snapshot").watermark();
        // A lookup in flight keeps its snapshot across the commit.
        let held = index.shared_reader().expect("snapshot");
        index
            .commit(batch(start, &recs[range.clone()], stop), mode)
            .expect("commit");
        assert_eq!(held.watermark(), start);
        let after = index.shared_reader().expect("snapshot");
        assert_eq!(after.watermark(), stop, "{mode:?} commit visible at once");
        assert!(!Arc::ptr_eq(&held, &after));
        let rec = &recs[range.end - 1];
        assert!(
            after
                .event_seqs(&rec.tenant, &rec.event_id)
                .expect("lookup")
                .contains(&rec.seq),
            "the committed event is found"
        );
        assert!(Arc::ptr_eq(
            &after,
            &index.shared_reader().expect("snapshot")
        ));
    }
    // The index keeps its shared snapshot to the end; closing it still leaves a clean file,
    // which a read-only opener accepts (an unclean one is `NeedsRepair`).
    drop(empty);
    drop(index);
    let reopened = ReadOnlyIndex::open(&path, &binding()).expect("cleanly closed");
    assert_eq!(reopened.reader().expect("snapshot").watermark(), end);
}
