//! Guards read-only access to a store whose writer died: the store's index then needs a
//! writer's repair (redb refuses a read-only open), so a `ReadOnlyStore` answers from an index
//! it rebuilds from the log in a scratch file, says so (`IndexSource::RebuiltFromLog`), returns
//! exactly what the writer returns once it has reopened and repaired the store, refuses to
//! "check" its own rebuild against a rebuild, removes the scratch file on drop, and writes
//! nothing into the store.

mod common;

use std::path::{Path, PathBuf};

use common::{receipt, run_child};
use trailmix_db::query::{Filter, Query};
use trailmix_db::{Db, DbOptions, Error, Freshness, IndexSource, ReadOnlyStore};

const DIR_VAR: &str = "TRAILMIX_READ_ONLY_CRASH_DIR";
const CHILD_TEST: &str = "crash_child";
const TENANTS: [&str; 2] = ["acme", "globex"];
const RECEIPTS: u64 = 300;

/// Runs only in the child: appends durably, waits until the index covers the log (so the
/// redb file has commits of its own), then dies without closing anything.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let db = Db::open_with(PathBuf::from(dir), DbOptions::default()).expect("open");
    for n in 0..RECEIPTS {
        let tenant = TENANTS[usize::try_from(n % 2).expect("fits")];
        db.append_and_wait(&receipt(tenant, n, 16)).expect("append");
    }
    let end = db.sync().expect("sync");
    let started = std::time::Instant::now();
    while db.index_status().watermark < end {
        assert!(
            started.elapsed().as_secs() < 10,
            "the index never caught up"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::process::abort();
}

fn tenant_seqs(page: &trailmix_db::QueryPage) -> Vec<u64> {
    page.receipts.iter().map(|r| r.position.seq.0).collect()
}

fn tenant_query(tenant: &str) -> Query {
    let mut query = Query::new(Filter {
        tenant: Some(tenant.to_owned()),
        ..Filter::default()
    });
    query.limit = 1000;
    query
}

/// Every file of `dir` with its size and modification time.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut files = Vec::new();
    common::all_files(dir, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).expect("metadata");
            (f, meta.len(), meta.modified().expect("mtime"))
        })
        .collect()
}

#[test]
fn a_reader_of_a_crashed_store_answers_from_an_index_rebuilt_from_the_log() {
    if std::env::var_os(DIR_VAR).is_some() {
        return;
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("store");
    let output = run_child(CHILD_TEST, &[(DIR_VAR, data.as_os_str())]);
    assert!(!output.status.success(), "the child must abort");
    let before = listing(&data);

    // The store's own index cannot be read without a writer's repair.
    let refused = ReadOnlyStore::store_index_watermark(&data).expect_err("needs repair");
    assert!(
        matches!(&refused, Error::Index { detail, .. } if detail.contains("only a writer can repair it")),
        "{refused}"
    );

    // What a reader killed before its drop leaves behind (a pid no process can have).
    let orphan = std::env::temp_dir().join(format!(
        "trailmix-read-only-{}-{}.redb.tmp",
        i32::MAX,
        std::process::id()
    ));
    std::fs::write(&orphan, b"").expect("plant an orphaned scratch index");
    let reader = ReadOnlyStore::open(&data).expect("a reader opens anyway");
    assert!(!orphan.exists(), "the orphaned scratch index is swept");
    let IndexSource::RebuiltFromLog { reason, entries } = reader.index_source().clone() else {
        panic!("expected a rebuilt index, got {:?}", reader.index_source());
    };
    assert!(reason.contains("not closed cleanly"), "{reason}");
    let log_end = reader.log_end().expect("log end");
    assert_eq!(entries, log_end.0);
    assert_eq!(reader.index_watermark().expect("watermark"), log_end);
    let from_reader: Vec<Vec<u64>> = TENANTS
        .iter()
        .map(|t| tenant_seqs(&reader.query(&tenant_query(t)).expect("query")))
        .collect();
    assert_eq!(
        from_reader.iter().map(Vec::len).sum::<usize>(),
        usize::try_from(RECEIPTS).expect("fits")
    );
    let found = reader
        .find_event("globex", &common::event_id(RECEIPTS - 1))
        .expect("find")
        .expect("the last receipt");
    assert_eq!(found.header.tenant_id(), "globex");
    // Comparing the reader's own rebuild with a rebuild would prove nothing.
    let check = reader.check_index().expect_err("not compared");
    assert!(
        matches!(&check, Error::Index { detail, .. } if detail.contains("not compared")),
        "{check}"
    );
    // Nothing in the store was written or created.
    assert_eq!(listing(&data), before);
    let scratch_files: Vec<PathBuf> = std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("trailmix-read-only-{}-", std::process::id()))
            })
        })
        .collect();
    assert_eq!(scratch_files.len(), 1, "{scratch_files:?}");
    drop(reader);
    assert!(!scratch_files[0].exists(), "the scratch index is removed");

    // The writer repairs the index; it answers as the reader did, and readers use it again.
    let db = Db::open(&data).expect("writer reopens");
    let from_writer: Vec<Vec<u64>> = TENANTS
        .iter()
        .map(|t| {
            tenant_seqs(
                &db.query(&tenant_query(t), Freshness::Durable)
                    .expect("query"),
            )
        })
        .collect();
    assert_eq!(from_writer, from_reader);
    db.close().expect("close");
    let reader = ReadOnlyStore::open(&data).expect("reader");
    assert_eq!(reader.index_source(), &IndexSource::Store);
}
