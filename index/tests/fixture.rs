//! Guards the on-disk format: a small index file written by an earlier build
//! (`tests/fixtures/small-index.redb`) must open and answer every query as the deterministic
//! record list it was built from says. A format change fails here; regenerate the fixture
//! (`cargo test -p trailmix-index --test fixture -- --ignored`) only together with a
//! `FORMAT_VERSION` bump and the docs/design.md section.

mod common;

use std::path::PathBuf;

use common::{Mix, Model, binding, build, check_all, records};
use trailmix_index::{Index, IndexOptions};

const SEED: u64 = 2026;
const RECORDS: usize = 300;
const SIZES: [usize; 4] = [7, 50, 1, 23];

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small-index.redb")
}

fn options() -> IndexOptions {
    IndexOptions::new().chunk_target_bytes(64)
}

#[test]
#[ignore = "rewrites the checked-in fixture"]
fn regenerate_fixture() {
    let path = fixture();
    let _ = std::fs::remove_file(&path);
    let (recs, end) = records(SEED, RECORDS);
    let index = Index::open(&path, &binding(), options()).expect("create");
    build(&index, &recs, end, &SIZES);
    drop(index);
    // Keep the checked-in file small: compaction moves pages, never content.
    let mut db = redb::Database::open(&path).expect("redb");
    while db.compact().expect("compact") {}
}

#[test]
fn the_fixture_answers_every_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("small-index.redb");
    std::fs::copy(fixture(), &path).expect("copy fixture");
    let index = Index::open(&path, &binding(), options()).expect("open fixture");
    let (recs, end) = records(SEED, RECORDS);
    let model = Model {
        watermark: end,
        recs: recs.clone(),
    };
    let reader = index.reader().expect("reader");
    check_all(&reader, &model, &mut Mix(SEED));
    let rebuilt_dir = tempfile::tempdir().expect("tempdir");
    let rebuilt =
        Index::open(&rebuilt_dir.path().join("i.redb"), &binding(), options()).expect("open");
    build(&rebuilt, &recs, end, &[RECORDS]);
    assert_eq!(
        reader.logical_digest().expect("digest"),
        rebuilt
            .reader()
            .expect("reader")
            .logical_digest()
            .expect("digest"),
        "the fixture's content differs from a rebuild of the same records"
    );
}
