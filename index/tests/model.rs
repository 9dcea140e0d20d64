//! Guards that every query answers exactly what an in-memory model of the committed records
//! says (random batches, modes, chunk sizes, reopens), and that `logical_digest` depends on
//! content only: equal across batch splits and chunk targets, different on any change.

#![allow(clippy::cast_possible_truncation)]

mod common;

use common::{Mix, Model, Rec, batch, binding, build, check_all, records};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trailmix_index::{CommitMode, Index, IndexOptions};

fn open(path: &std::path::Path, target: usize) -> Index {
    Index::open(
        path,
        &binding(),
        IndexOptions::new().chunk_target_bytes(target),
    )
    .expect("open")
}

/// Seeds 0..4, or with `TRAILMIX_SEED=S` (the soak runner's variable) S..S + 4 (wrapping).
fn seeds() -> impl Iterator<Item = u64> {
    let base = std::env::var("TRAILMIX_SEED").map_or(0, |v| {
        v.parse::<u64>()
            .unwrap_or_else(|_| panic!("TRAILMIX_SEED={v} is not a u64"))
    });
    (0..4).map(move |i| base.wrapping_add(i))
}

/// While alive, a panic (a failed check) also prints the seed and the command that reruns it.
struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "seed {0} failed\nrerun: TRAILMIX_SEED={0} cargo test -p trailmix-index --test model \
                 -- --exact queries_match_the_model_after_every_commit",
                self.0
            );
        }
    }
}

#[test]
fn queries_match_the_model_after_every_commit() {
    for seed in seeds() {
        let _guard = SeedGuard(seed);
        let mut rng = SmallRng::seed_from_u64(seed);
        let (recs, end) = records(seed.wrapping_add(100), 400);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.redb");
        let target = [64, 100, 300, 2048][(seed % 4) as usize];
        let mut index = open(&path, target);
        let mut model = Model::default();
        let mut check_rng = Mix(seed);
        let mut i = 0;
        while model.watermark < end {
            let n = match rng.random_range(0..10) {
                0 => 0,
                1..=6 => rng.random_range(1..8),
                _ => rng.random_range(8..80),
            };
            let j = (i + n).min(recs.len());
            let stop = if j == recs.len() {
                end
            } else {
                recs[j].seq.max(model.watermark)
            };
            // Sometimes stop short of the next record: a batch of checkpoints only.
            let stop = if n == 0 {
                (model.watermark + 1).min(stop)
            } else {
                stop
            };
            let mode = if rng.random_bool(0.5) {
                CommitMode::Lazy
            } else {
                CommitMode::Durable
            };
            index
                .commit(batch(model.watermark, &recs[i..j], stop), mode)
                .expect("commit");
            model.recs.extend_from_slice(&recs[i..j]);
            model.watermark = stop;
            i = j;
            check_all(&index.reader().expect("reader"), &model, &mut check_rng);
            if rng.random_range(0..15) == 0 {
                drop(index);
                index = open(&path, target);
                check_all(&index.reader().expect("reader"), &model, &mut check_rng);
            }
        }
    }
}

#[test]
fn a_snapshot_does_not_see_later_commits() {
    let (recs, end) = records(7, 60);
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(&dir.path().join("i.redb"), 64);
    index
        .commit(batch(0, &recs[..30], recs[30].seq), CommitMode::Lazy)
        .expect("commit");
    let before = index.reader().expect("reader");
    let digest = before.logical_digest().expect("digest");
    index
        .commit(batch(recs[30].seq, &recs[30..], end), CommitMode::Durable)
        .expect("commit");
    assert_eq!(before.watermark(), recs[30].seq);
    assert_eq!(before.logical_digest().expect("digest"), digest);
    let model = Model {
        watermark: recs[30].seq,
        recs: recs[..30].to_vec(),
    };
    check_all(&before, &model, &mut Mix(1));
}

fn digest_of(recs: &[Rec], end: u64, sizes: &[usize], target: usize) -> [u8; 32] {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(&dir.path().join("i.redb"), target);
    build(&index, recs, end, sizes);
    index
        .reader()
        .expect("reader")
        .logical_digest()
        .expect("digest")
}

#[test]
fn the_digest_depends_on_content_not_on_batches() {
    let (recs, end) = records(42, 500);
    let reference = digest_of(&recs, end, &[500], 2048);
    assert_eq!(digest_of(&recs, end, &[1], 64), reference);
    assert_eq!(digest_of(&recs, end, &[3, 17, 1, 64], 100), reference);
    let mut rng = SmallRng::seed_from_u64(9);
    let sizes: Vec<usize> = (0..50).map(|_| rng.random_range(1..40)).collect();
    assert_eq!(digest_of(&recs, end, &sizes, 300), reference);

    let mut changed = Vec::new();
    let mut missing = recs.clone();
    missing.remove(250);
    changed.push(("one record missing", missing, end));
    let mut label = recs.clone();
    label[10].labels.insert("env".into(), "staging".into());
    changed.push(("a label differs", label, end));
    let mut time = recs.clone();
    time[20].event_time_ns += 1;
    changed.push(("an event time differs", time, end));
    let mut logged = recs.clone();
    logged[499].logged_at_ns += 1;
    changed.push(("a logged_at differs", logged, end));
    let mut id = recs.clone();
    id[30].event_id.push('x');
    changed.push(("an event id differs", id, end));
    changed.push(("the watermark differs", recs.clone(), end + 1));
    for (what, recs, end) in changed {
        assert_ne!(digest_of(&recs, end, &[37], 2048), reference, "{what}");
    }
}

#[test]
fn event_id_runs_merge_across_levels() {
    // 600 one-receipt commits: level 0 fills every 8, level 1 every 64, level 2 every 512.
    let (recs, end) = records(5, 600);
    let dir = tempfile::tempdir().expect("tempdir");
    let index = open(&dir.path().join("i.redb"), 64);
    build(&index, &recs, end, &[1]);
    let reader = index.reader().expect("reader");
    let model = Model {
        watermark: end,
        recs: recs.clone(),
    };
    for rec in &recs {
        assert_eq!(
            reader.event_seqs(&rec.tenant, &rec.event_id).expect("ids"),
            vec![rec.seq]
        );
    }
    check_all(&reader, &model, &mut Mix(3));
    assert_eq!(
        reader.logical_digest().expect("digest"),
        digest_of(&recs, end, &[600], 2048)
    );
}

#[test]
fn merging_the_newest_event_id_runs_keeps_the_content() {
    // 100 one-receipt commits: runs of 64, 8, 8, 8 (levels 2, 1, 1, 1) and four of 1.
    let (recs, end) = records(9, 100);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("i.redb");
    let index = open(&path, 64);
    build(&index, &recs, end, &[1]);
    let before = index.reader().expect("reader");
    let runs_before = before.event_id_run_count().expect("runs");
    let digest = before.logical_digest().expect("digest");
    drop(before);
    assert!(runs_before > 4, "{runs_before} runs");
    // A bound below any two runs merges nothing.
    assert_eq!(index.merge_event_id_runs(1).expect("merge"), 0);
    // The bound leaves the oldest (largest) run out: the newest merge into one.
    let merged = index.merge_event_id_runs(end / 2).expect("merge");
    assert!(merged >= 2, "{merged} merged");
    let check = |index: &Index, runs: usize| {
        let reader = index.reader().expect("reader");
        assert_eq!(reader.event_id_run_count().expect("runs"), runs);
        assert_eq!(reader.logical_digest().expect("digest"), digest);
        for rec in &recs {
            assert_eq!(
                reader.event_seqs(&rec.tenant, &rec.event_id).expect("ids"),
                vec![rec.seq]
            );
        }
        let model = Model {
            watermark: end,
            recs: recs.clone(),
        };
        check_all(&reader, &model, &mut Mix(4));
    };
    check(&index, runs_before - merged + 1);
    // Everything into one run; the merge was durable: it is there after a reopen.
    assert!(index.merge_event_id_runs(u64::MAX).expect("merge") >= 2);
    drop(index);
    let index = open(&path, 64);
    check(&index, 1);
    assert_eq!(index.merge_event_id_runs(u64::MAX).expect("merge"), 0);
    // Later commits still merge by level over the merged run, to the same content as a
    // straight build.
    let (more, _) = records(10, 40);
    let more: Vec<Rec> = more
        .into_iter()
        .map(|mut r| {
            r.seq += end;
            r.logged_at_ns += 1 << 40;
            r
        })
        .collect();
    let mut start = end;
    for rec in &more {
        index
            .commit(
                batch(start, std::slice::from_ref(rec), rec.seq + 1),
                CommitMode::Durable,
            )
            .expect("commit");
        start = rec.seq + 1;
    }
    let all: Vec<Rec> = recs.iter().chain(&more).cloned().collect();
    let reader = index.reader().expect("reader");
    assert_eq!(
        reader.logical_digest().expect("digest"),
        digest_of(&all, start, &[all.len()], 2048)
    );
}
