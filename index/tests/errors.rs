//! Guards that bad input gets a typed error and changes nothing: watermark mismatch,
//! non-increasing seqs, decreasing `logged_at`, over-long fields, a foreign or newer index,
//! bad count buckets and ranges, and damaged chunks (an error, never a panic).

#![allow(clippy::cast_sign_loss, clippy::redundant_closure_for_method_calls)]

mod common;

use std::collections::BTreeMap;

use common::{Mix, Model, Rec, batch, binding, build, check_all, records};
use redb::ReadableTable;
use trailmix_index::{
    CommitMode, Dimension, Direction, FORMAT_VERSION, HOUR_NS, Index, IndexBatch, IndexError,
    IndexOptions, StoreBinding, Term,
};

fn fresh(dir: &tempfile::TempDir) -> (Index, Model) {
    let (recs, end) = records(11, 120);
    let index = Index::open(
        &dir.path().join("i.redb"),
        &binding(),
        IndexOptions::new().chunk_target_bytes(64),
    )
    .expect("open");
    build(&index, &recs, end, &[40]);
    (
        index,
        Model {
            watermark: end,
            recs,
        },
    )
}

fn digest(index: &Index) -> [u8; 32] {
    index
        .reader()
        .expect("reader")
        .logical_digest()
        .expect("digest")
}

fn next(model: &Model) -> Rec {
    let mut r = model.recs[0].clone();
    r.seq = model.watermark;
    r.logged_at_ns = model.recs.last().map_or(0, |l| l.logged_at_ns);
    r.event_id = "new".into();
    r
}

#[test]
fn a_batch_that_does_not_start_at_the_watermark_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (index, model) = fresh(&dir);
    let before = digest(&index);
    for start in [0, model.watermark - 1, model.watermark + 1] {
        let mut r = next(&model);
        r.seq = start.max(r.seq);
        let err = index.commit(
            batch(start, &[r], start.max(model.watermark) + 1),
            CommitMode::Durable,
        );
        match err {
            Err(IndexError::WatermarkMismatch { expected, found }) => {
                assert_eq!((expected, found), (model.watermark, start));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(digest(&index), before);
    check_all(&index.reader().expect("reader"), &model, &mut Mix(1));
}

#[test]
fn pushes_that_break_order_are_refused_and_leave_the_batch_alone() {
    let (recs, _) = records(12, 10);
    let mut b = IndexBatch::new(recs[0].seq);
    b.push(&recs[0].view()).expect("push");
    b.push(&recs[1].view()).expect("push");
    let (len, end) = (b.len(), b.end());
    let mut same = recs[1].clone();
    same.event_id = "again".into();
    assert!(
        matches!(b.push(&same.view()), Err(IndexError::SeqNotIncreasing { seq, end: e }) if seq == same.seq && e == end)
    );
    let mut earlier = recs[2].clone();
    earlier.logged_at_ns = recs[1].logged_at_ns - 1;
    assert!(matches!(
        b.push(&earlier.view()),
        Err(IndexError::LoggedAtDecreasing { .. })
    ));
    let mut long = recs[2].clone();
    long.labels = BTreeMap::from([("k".to_owned(), "x".repeat(70_000))]);
    assert!(matches!(
        b.push(&long.view()),
        Err(IndexError::FieldTooLong {
            seq: Some(_),
            field: "term value",
            len: 70_000,
            ..
        })
    ));
    assert_eq!((b.len(), b.end()), (len, end));
    b.advance_to(end - 1);
    assert_eq!(b.end(), end, "advance_to never moves backwards");
    b.push(&recs[2].view()).expect("a valid push still works");
}

/// The batch checks a known shape's fields (tenant, kind, app, model, decision) once; every
/// other field of each record must still be checked, and a refused record must leave no
/// trace, whether or not its shape was known.
#[test]
fn over_long_fields_are_refused_whether_or_not_the_shape_is_known() {
    let (recs, _) = records(12, 4);
    let mut good = recs[0].clone();
    good.model_name = Some("m".to_owned());
    good.model_version = Some("v".to_owned());
    good.decision = Some("allow".to_owned());
    let mut b = IndexBatch::new(0);
    b.push(&good.view()).expect("push");
    let (len, end) = (b.len(), b.end());
    let long = "x".repeat(70_000);
    let half = "y".repeat(40_000);
    let mut bad: Vec<(&str, Rec)> = Vec::new();
    let mut next = good.clone();
    next.seq = end;
    for field in [
        "session", "subject", "label", "tenant", "kind", "app", "model", "decision",
    ] {
        let mut r = next.clone();
        match field {
            "session" => r.session_id = Some(long.clone()),
            "subject" => r.subject_id = Some(long.clone()),
            "label" => r.labels = BTreeMap::from([("k".to_owned(), long.clone())]),
            "tenant" => r.tenant.clone_from(&long),
            "kind" => r.kind.clone_from(&long),
            "app" => r.app_id.clone_from(&long),
            "model" => (r.model_name, r.model_version) = (Some(half.clone()), Some(half.clone())),
            _ => r.decision = Some(long.clone()),
        }
        bad.push((field, r));
    }
    for (field, r) in &bad {
        assert!(
            matches!(b.push(&r.view()), Err(IndexError::FieldTooLong { .. })),
            "{field}"
        );
        assert_eq!((b.len(), b.end()), (len, end), "{field}");
    }
    // The refused shapes were not remembered: the same records are refused again.
    for (field, r) in &bad {
        assert!(b.push(&r.view()).is_err(), "{field}, second time");
    }
    b.push(&next.view()).expect("the known shape still works");
    let watermark = b.end();

    let dir = tempfile::tempdir().expect("tempdir");
    let index = Index::open(
        &dir.path().join("i.redb"),
        &binding(),
        IndexOptions::default(),
    )
    .expect("open");
    index.commit(b, CommitMode::Durable).expect("commit");
    let model = Model {
        watermark,
        recs: vec![good, next],
    };
    check_all(&index.reader().expect("reader"), &model, &mut Mix(3));
}

#[test]
fn a_commit_whose_logged_at_goes_back_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (index, model) = fresh(&dir);
    let before = digest(&index);
    let mut r = next(&model);
    r.logged_at_ns -= 1;
    let err = index.commit(
        batch(model.watermark, &[r], model.watermark + 1),
        CommitMode::Durable,
    );
    assert!(
        matches!(err, Err(IndexError::LoggedAtDecreasing { .. })),
        "{err:?}"
    );
    assert_eq!(digest(&index), before);
}

#[test]
fn an_index_of_another_store_or_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("i.redb");
    let (index, model) = fresh(&dir);
    let before = digest(&index);
    drop(index);
    let other_store = StoreBinding {
        store_id: [9; 16],
        ..binding()
    };
    let other_alg = StoreBinding {
        hash_algorithm: "sha256".into(),
        ..binding()
    };
    for b in [other_store, other_alg] {
        let err = Index::open(&path, &b, IndexOptions::new());
        assert!(
            matches!(&err, Err(IndexError::ForeignIndex { path: p, .. }) if *p == path),
            "{err:?}"
        );
    }
    // A newer format version.
    {
        let db = redb::Database::open(&path).expect("redb");
        let txn = db.begin_write().expect("txn");
        {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(def).expect("meta");
            meta.insert(
                "format_version",
                (FORMAT_VERSION + 1).to_le_bytes().as_slice(),
            )
            .expect("insert");
        }
        txn.commit().expect("commit");
    }
    let err = Index::open(&path, &binding(), IndexOptions::new());
    assert!(
        matches!(
            err,
            Err(IndexError::UnsupportedFormat {
                found,
                supported: FORMAT_VERSION,
                ..
            }) if found == FORMAT_VERSION + 1
        ),
        "{err:?}"
    );
    set_meta(&path, "format_version", &FORMAT_VERSION.to_le_bytes());
    let index = Index::open(&path, &binding(), IndexOptions::new()).expect("reopen");
    assert_eq!(digest(&index), before);
    check_all(&index.reader().expect("reader"), &model, &mut Mix(2));
}

fn set_meta(path: &std::path::Path, key: &str, value: &[u8]) {
    let db = redb::Database::open(path).expect("redb");
    let txn = db.begin_write().expect("txn");
    {
        let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
        txn.open_table(def)
            .expect("meta")
            .insert(key, value)
            .expect("insert");
    }
    txn.commit().expect("commit");
}

#[test]
fn a_redb_file_that_is_not_an_index_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).expect("redb");
        let txn = db.begin_write().expect("txn");
        {
            let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("something");
            txn.open_table(def)
                .expect("table")
                .insert(1, 2)
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    let err = Index::open(&path, &binding(), IndexOptions::new());
    assert!(
        matches!(err, Err(IndexError::ForeignIndex { .. })),
        "{err:?}"
    );
}

#[test]
fn bad_count_buckets_and_ranges_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (index, _) = fresh(&dir);
    let reader = index.reader().expect("reader");
    let h = HOUR_NS;
    for bucket in [0u64, 1, (h / 2) as u64, (h * 3 / 2) as u64] {
        let err = reader.counts(None, Dimension::Model, bucket, 0, h);
        assert!(
            matches!(err, Err(IndexError::BadBucket { bucket_ns }) if bucket_ns == bucket),
            "{err:?}"
        );
    }
    for (from, to) in [(1, h), (0, h + 1), (-1, h)] {
        let err = reader.counts(Some("acme"), Dimension::Kind, h as u64, from, to);
        assert!(
            matches!(err, Err(IndexError::UnalignedRange { .. })),
            "{err:?}"
        );
    }
}

/// Overwrites every value of a table with `&[u8]` keys with `bytes`.
fn damage(path: &std::path::Path, table: &str, bytes: &[u8]) {
    let db = redb::Database::open(path).expect("redb");
    let txn = db.begin_write().expect("txn");
    {
        let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new(table);
        let mut t = txn.open_table(def).expect("table");
        let keys: Vec<Vec<u8>> = t
            .iter()
            .expect("iter")
            .map(|e| e.expect("entry").0.value().to_vec())
            .collect();
        assert!(!keys.is_empty(), "{table} has entries to damage");
        for k in keys {
            t.insert(k.as_slice(), bytes).expect("insert");
        }
    }
    txn.commit().expect("commit");
}

/// Overwrites every value of a table with `&str` keys (`tenants`) with `bytes`.
fn damage_str_keys(path: &std::path::Path, table: &str, bytes: &[u8]) {
    let db = redb::Database::open(path).expect("redb");
    let txn = db.begin_write().expect("txn");
    {
        let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new(table);
        let mut t = txn.open_table(def).expect("table");
        let keys: Vec<String> = t
            .iter()
            .expect("iter")
            .map(|e| e.expect("entry").0.value().to_owned())
            .collect();
        assert!(!keys.is_empty(), "{table} has entries to damage");
        for k in keys {
            t.insert(k.as_str(), bytes).expect("insert");
        }
    }
    txn.commit().expect("commit");
}

/// `None` for an answer, the table for `Corrupt`; any other error fails the test.
fn corrupt_table<T>(what: &str, r: Result<T, IndexError>) -> Option<&'static str> {
    match r {
        Ok(_) => None,
        Err(IndexError::Corrupt { table, .. }) => Some(table),
        Err(e) => panic!("{what}: {e:?}"),
    }
}

#[test]
fn damaged_chunks_are_typed_errors_not_panics() {
    let garbage: [&[u8]; 4] = [
        b"",
        &[0xff; 3],
        &[0xff; 40],
        &[1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0x80],
    ];
    // Whether the commit of one more receipt like the first (same tenant, terms, event-time
    // bucket and count keys) reads the table (see `write.rs`): the last posting chunk and the
    // stats of each of its terms, the last `logged_at` chunk (decoded whole), the last chunk of
    // its event-time bucket, every run's level and size (to decide on a merge), and its
    // counts, values and tenant count. `event_ids` blocks are read only to merge runs, and the
    // fixture holds 3 level-0 runs (batches of 40 of 120 receipts), so the new run merges none.
    for (table, commit_reads) in [
        ("postings", true),
        ("terms", true),
        ("logged_at", true),
        ("event_times", true),
        ("event_ids", false),
        ("event_id_runs", true),
        ("counts", true),
        ("values", true),
        ("tenants", true),
    ] {
        for bytes in garbage {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("i.redb");
            let (index, model) = fresh(&dir);
            drop(index);
            if table == "tenants" {
                damage_str_keys(&path, table, bytes);
            } else {
                damage(&path, table, bytes);
            }
            let index = Index::open(&path, &binding(), IndexOptions::new()).expect("open");
            let reader = index.reader().expect("reader");
            let what = format!("{table} {bytes:?}");
            let corrupt = |r: Result<(), IndexError>| corrupt_table(&what, r);
            assert_eq!(
                corrupt(reader.logical_digest().map(|_| ())),
                Some(table),
                "{what}: digest must notice"
            );
            let all_tenants_counts = reader
                .counts(
                    None,
                    Dimension::Model,
                    HOUR_NS as u64,
                    i64::MIN / HOUR_NS * HOUR_NS,
                    0,
                )
                .map(|_| ());
            if table == "tenants" {
                assert_eq!(
                    corrupt(reader.tenants().map(|_| ())),
                    Some(table),
                    "{what}: tenants()"
                );
                assert_eq!(
                    corrupt(all_tenants_counts),
                    Some(table),
                    "{what}: counts of every tenant"
                );
            } else {
                let _ = corrupt(reader.tenants().map(|_| ()));
                let _ = corrupt(all_tenants_counts);
            }
            // Every other query either answers or says Corrupt; none panics.
            let _ = corrupt(
                reader
                    .postings(&Term::Tenant("acme"), 0..u64::MAX, Direction::Descending)
                    .and_then(|p| p.collect::<Result<Vec<_>, _>>())
                    .map(|_| ()),
            );
            let _ = corrupt(reader.posting_count(&Term::Tenant("acme")).map(|_| ()));
            let _ = corrupt(reader.event_seqs("acme", "evt-3").map(|_| ()));
            let _ = corrupt(reader.seq_range_for_logged_at(0, u64::MAX).map(|_| ()));
            let _ = corrupt(
                reader
                    .event_time("acme", i64::MIN, i64::MAX, Direction::Ascending)
                    .and_then(|p| p.collect::<Result<Vec<_>, _>>())
                    .map(|_| ()),
            );
            let _ = corrupt(reader.values("acme", Dimension::Kind).map(|_| ()));
            // A commit that has to read damaged bytes fails and changes nothing; one that does
            // not read them succeeds.
            assert_eq!(index.watermark().expect("watermark"), model.watermark);
            let r = next(&model);
            let committed = corrupt(index.commit(
                batch(model.watermark, &[r], model.watermark + 1),
                CommitMode::Durable,
            ));
            let after = index.watermark().expect("watermark");
            if commit_reads {
                assert_eq!(committed, Some(table), "{what}: commit must notice");
                assert_eq!(
                    after, model.watermark,
                    "{what}: a refused commit changes nothing"
                );
            } else {
                assert_eq!(committed, None, "{what}: commit does not read {table}");
                assert_eq!(after, model.watermark + 1, "{what}: commit advances");
            }
        }
    }
}
