//! Inclusion proofs: generating one with `Db::prove(seq)` and checking it with
//! `trailmix_db::proof::verify_inclusion_bundle`, against `rs_merkle` (the library the
//! engine's sealed trees are cross-checked with) doing the same job over the same leaf hashes,
//! in the same run.
//!
//! The store holds N receipts (1 M; 20k with `--quick` or `TRAILMIX_BENCH_QUICK=1`; 2k when
//! run as a test; `$TRAILMIX_PROOF_RECEIPTS` to change it) of 512-byte payloads
//! (`trailmix_benches::receipts`): the first 90% in an epoch sealed with `Db::seal_epoch`, the
//! rest in the open epoch, with a checkpoint covering all of it. Built untimed.
//!
//! - **prove**: `Db::prove(seq)` for seeded random receipt seqs of the sealed epoch
//!   (`prove_sealed`, against the seal) and of the open epoch (`prove_open`, against the latest
//!   checkpoint). Baseline: `rs_merkle::MerkleTree::proof(&[i])` on a tree built once
//!   (untimed) from the same epoch's leaf hashes, read back from the log with a hasher that
//!   applies the engine's domain-separated leaf and node hashes; its root must equal the
//!   signed one, and every timed bundle's audit path must equal `rs_merkle`'s for the same leaf
//!   (checked after timing). `rs_merkle` keeps every node in memory; `Db::prove` starts from
//!   the log.
//! - **verify**: `verify_inclusion_bundle` of those bundles (checkpoint signature with
//!   `verify_strict`, entry digests, chain hash, audit path); `trailmix-db-path`: the audit
//!   path alone (`merkle::verify_inclusion`, the work `rs_merkle`'s check does); baseline:
//!   `rs_merkle::MerkleProof::verify` with the tree size and root given.
//!
//! Criterion measures each job and rig as `engine_proof/<job>/<rig>`; then single operations
//! are timed, the rigs interleaved operation by operation, for p50 / p99: up to 2,000 per job
//! (200 for proofs in `--quick` mode), within a time budget per job (60 s, 3 s quick; at least
//! 11 samples), saved to `<criterion dir>/trailmix-proof.json` for `bench-report`. Positional
//! filters select `<job>/<rig>` ids as plain substrings.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use rs_merkle::{MerkleProof, MerkleTree};
use trailmix_benches::paired::filters_match;
use trailmix_benches::query_data::Rng;
use trailmix_benches::query_rigs::TRAILMIX_RIG;
use trailmix_benches::rigs::{BoxError, settle};
use trailmix_benches::store_report::{self, ProofResults, Timing};
use trailmix_benches::{criterion_dir, ids, receipts, scratch_root};
use trailmix_db::entry::{EntryKind, decode_entry};
use trailmix_db::merkle::{self, Digest, HashAlgorithm};
use trailmix_db::note::{Checkpoint, NoteVerifier};
use trailmix_db::proof::{InclusionBundle, verify_inclusion_bundle};
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{DEFAULT_EPOCH_RECORDS_MAX, Db, DbOptions, WAL_DIR};

const QUICK_RECEIPTS: usize = 20_000;
const FULL_RECEIPTS: usize = 1_000_000;
const TEST_RECEIPTS: usize = 2_000;
const RECEIPTS_ENV: &str = "TRAILMIX_PROOF_RECEIPTS";
/// The open epoch holds the last 1/`OPEN_SHARE` of the receipts.
const OPEN_SHARE: usize = 10;
/// Receipts built and appended at a time (bounds the memory of the build).
const BUILD_CHUNK: usize = 50_000;
/// Tickets a build thread submits before waiting for them.
const WINDOW: usize = 1024;
/// The store's hash algorithm (the default).
const ALG: HashAlgorithm = HashAlgorithm::Blake3;
const SEED: u64 = 0x7072_6f6f_6673; // "proofs"
/// Timed single operations per job at most, and at least (time budget permitting).
const MAX_SAMPLES: usize = 2_000;
const QUICK_PROVE_SAMPLES: usize = 200;
const MIN_SAMPLES: usize = 11;

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Small sizes: `--quick`, `TRAILMIX_BENCH_QUICK=1`, or a run without `--bench` (as a test).
fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
        || !bench_mode()
        || std::env::var_os("TRAILMIX_BENCH_QUICK").is_some_and(|v| v != "0")
}

fn receipt_count() -> Result<usize, BoxError> {
    if let Ok(text) = std::env::var(RECEIPTS_ENV) {
        return text
            .replace('_', "")
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 100)
            .ok_or_else(|| format!("{RECEIPTS_ENV}={text} is not a number ≥ 100").into());
    }
    Ok(if !bench_mode() {
        TEST_RECEIPTS
    } else if quick() {
        QUICK_RECEIPTS
    } else {
        FULL_RECEIPTS
    })
}

/// Time budget of each job's single-operation samples.
fn budget() -> Duration {
    if quick() {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(60)
    }
}

/// `rs_merkle` with the engine's hash constructions: the BLAKE3 leaf and node contexts and
/// prefixes come from `trailmix_db::merkle` (`rs_merkle` separates no domains itself); a missing
/// right child promotes the left one, which gives the RFC 9162 tree shape.
#[derive(Clone)]
struct EngineHasher;

impl rs_merkle::Hasher for EngineHasher {
    type Hash = Digest;
    fn hash(data: &[u8]) -> Digest {
        merkle::leaf_hash(ALG, data)
    }
    fn concat_and_hash(left: &Digest, right: Option<&Digest>) -> Digest {
        right.map_or(*left, |right| merkle::node_hash(ALG, left, right))
    }
}

/// Appends receipts `start .. start + count` with two caller threads; returns their seqs.
fn append_range(db: &Db, start: usize, count: usize) -> Result<Vec<Seq>, BoxError> {
    let mut seqs = Vec::with_capacity(count);
    for from in (start..start + count).step_by(BUILD_CHUNK) {
        let len = BUILD_CHUNK.min(start + count - from);
        let batch = receipts::build(from as u64, len, receipts::cores())?;
        let parts = std::thread::scope(|s| -> Result<Vec<Vec<Seq>>, BoxError> {
            let handles: Vec<_> = batch
                .chunks(len.div_ceil(2))
                .map(|part| {
                    s.spawn(move || -> Result<Vec<Seq>, BoxError> {
                        let mut out = Vec::with_capacity(part.len());
                        for window in part.chunks(WINDOW) {
                            let tickets = window
                                .iter()
                                .map(|r| db.append(r))
                                .collect::<Result<Vec<_>, _>>()?;
                            for ticket in tickets {
                                out.push(ticket.wait()?.seq);
                            }
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| "caller panicked")?)
                .collect()
        })?;
        seqs.extend(parts.into_iter().flatten());
    }
    Ok(seqs)
}

/// The leaf hash of the entry `seq` as the engine computes it.
fn leaf_of(seq: Seq, kind: u8, payload: &[u8]) -> Result<Digest, BoxError> {
    let kind = EntryKind::from_byte(kind).ok_or("unknown entry kind")?;
    let entry = decode_entry(kind, payload)?;
    Ok(merkle::leaf_hash(ALG, &entry.chain_hash(ALG, seq)))
}

/// The leaf hashes of the `count` entries from `first`, read from the log at `dir`.
fn epoch_leaves(dir: &Path, first: Seq, count: u64) -> Result<Vec<Digest>, BoxError> {
    let reader = WalReader::open(dir.join(WAL_DIR))?;
    let mut leaves = Vec::with_capacity(usize::try_from(count)?);
    let mut failure = None;
    reader.scan(first, |record| {
        if leaves.len() as u64 >= count {
            return ControlFlow::Break(());
        }
        match leaf_of(record.seq, record.kind.get(), record.payload) {
            Ok(leaf) => {
                leaves.push(leaf);
                ControlFlow::Continue(())
            }
            Err(err) => {
                failure = Some(format!("seq {}: {err}", record.seq));
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(err) = failure {
        return Err(err.into());
    }
    if (leaves.len() as u64) < count {
        return Err(format!("the log ends after {} of {count} leaves", leaves.len()).into());
    }
    Ok(leaves)
}

/// One epoch's tree as `rs_merkle` holds it, and what the signed checkpoint says of it.
struct Tree {
    first_seq: u64,
    size: usize,
    root: Digest,
    leaves: Vec<Digest>,
    nodes: MerkleTree<EngineHasher>,
}

impl Tree {
    /// Builds the tree of the epoch `bundle` proves against, from the log (untimed), and
    /// checks `rs_merkle`'s root against the signed one.
    fn of(dir: &Path, bundle: &InclusionBundle, verifier: &NoteVerifier) -> Result<Tree, BoxError> {
        let (checkpoint, _) =
            Checkpoint::open(bundle.checkpoint.as_bytes(), std::slice::from_ref(verifier))?;
        let first_seq = bundle.seq - bundle.leaf_index;
        let leaves = epoch_leaves(dir, Seq(first_seq), checkpoint.tree_size)?;
        let tree = MerkleTree::<EngineHasher>::from_leaves(&leaves);
        if tree.root() != Some(checkpoint.root_hash) {
            return Err("rs_merkle's root differs from the signed checkpoint's".into());
        }
        Ok(Tree {
            first_seq,
            size: leaves.len(),
            root: checkpoint.root_hash,
            leaves,
            nodes: tree,
        })
    }

    fn index(&self, seq: Seq) -> usize {
        usize::try_from(seq.0 - self.first_seq).unwrap_or(usize::MAX)
    }
}

fn decode_path(bundle: &InclusionBundle) -> Result<Vec<Digest>, BoxError> {
    bundle
        .path
        .iter()
        .map(|text| {
            let bytes = STANDARD.decode(text)?;
            Digest::try_from(bytes.as_slice()).map_err(|_| "a path element is not 32 bytes".into())
        })
        .collect()
}

/// A proof of one leaf in both forms, for the verification job.
struct Case {
    bundle: InclusionBundle,
    path: Vec<Digest>,
    leaf: Digest,
    index: usize,
    size: usize,
    root: Digest,
    rs_proof: MerkleProof<EngineHasher>,
}

impl Case {
    /// Checks that trailmix-db's bundle and `rs_merkle`'s proof of the same leaf agree.
    fn new(bundle: InclusionBundle, tree: &Tree) -> Result<Case, BoxError> {
        let index = tree.index(Seq(bundle.seq));
        let path = decode_path(&bundle)?;
        let rs_proof = tree.nodes.proof(&[index]);
        if rs_proof.proof_hashes() != path.as_slice() {
            return Err(format!("seq {}: the audit paths differ", bundle.seq).into());
        }
        Ok(Case {
            bundle,
            path,
            leaf: tree.leaves[index],
            index,
            size: tree.size,
            root: tree.root,
            rs_proof,
        })
    }
}

/// The store, the sampled seqs of both epochs and `rs_merkle`'s trees.
struct Fixture {
    db: Db,
    verifier: NoteVerifier,
    sealed: Vec<Seq>,
    open: Vec<Seq>,
    sealed_tree: Tree,
    open_tree: Tree,
}

fn build(dir: &Path, n: usize) -> Result<Fixture, BoxError> {
    let options =
        DbOptions::default().epoch_records_max(DEFAULT_EPOCH_RECORDS_MAX.max(2 * n as u64));
    let db = Db::open_with(dir, options)?;
    let sealed_count = n - n / OPEN_SHARE;
    let mut rng = Rng::new(SEED);
    let mut sealed = append_range(&db, 0, sealed_count)?;
    db.seal_epoch()?.ok_or("nothing to seal")?;
    let mut open = append_range(&db, sealed_count, n - sealed_count)?;
    db.checkpoint()?;
    // Seeded random order: the samples take them from the front.
    for seqs in [&mut sealed, &mut open] {
        for i in (1..seqs.len()).rev() {
            seqs.swap(i, rng.index(i + 1));
        }
    }
    let verifier = db.verifier().clone();
    let first_sealed = db.prove(*sealed.first().ok_or("no sealed receipts")?)?;
    let first_open = db.prove(*open.first().ok_or("no open receipts")?)?;
    let sealed_tree = Tree::of(dir, &first_sealed, &verifier)?;
    let open_tree = Tree::of(dir, &first_open, &verifier)?;
    Ok(Fixture {
        db,
        verifier,
        sealed,
        open,
        sealed_tree,
        open_tree,
    })
}

/// Single proofs timed by [`sample_proofs`].
struct ProofSamples {
    ours: Vec<Duration>,
    theirs: Vec<Duration>,
    cases: Vec<Case>,
}

/// Times proofs of `seqs` (cycled) by both rigs, interleaved proof by proof; returns the
/// timings of trailmix-db and `rs_merkle` and the bundles, each checked against `rs_merkle`'s
/// proof after timing.
fn sample_proofs(db: &Db, tree: &Tree, seqs: &[Seq], max: usize) -> Result<ProofSamples, BoxError> {
    let (mut ours, mut theirs, mut cases) = (Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    for i in 0..max {
        if i >= MIN_SAMPLES && started.elapsed() > budget() {
            break;
        }
        let seq = seqs[i % seqs.len()];
        let index = tree.index(seq);
        let run_ours = |ours: &mut Vec<Duration>| -> Result<InclusionBundle, BoxError> {
            let start = Instant::now();
            let bundle = db.prove(seq)?;
            ours.push(start.elapsed());
            Ok(bundle)
        };
        let run_theirs = |theirs: &mut Vec<Duration>| {
            let start = Instant::now();
            let proof = tree.nodes.proof(&[index]);
            theirs.push(start.elapsed());
            std::hint::black_box(proof);
        };
        let bundle = if i % 2 == 0 {
            let b = run_ours(&mut ours)?;
            run_theirs(&mut theirs);
            b
        } else {
            run_theirs(&mut theirs);
            run_ours(&mut ours)?
        };
        cases.push(Case::new(bundle, tree)?);
    }
    Ok(ProofSamples {
        ours,
        theirs,
        cases,
    })
}

/// The three ways of checking a proof, each returning whether it holds.
fn verify_bundle(case: &Case, verifier: &NoteVerifier) -> bool {
    verify_inclusion_bundle(&case.bundle, verifier).is_ok()
}
fn verify_path(case: &Case) -> bool {
    merkle::verify_inclusion(
        ALG,
        case.index as u64,
        case.size as u64,
        &case.leaf,
        &case.path,
        &case.root,
    )
    .is_ok()
}
fn verify_rs(case: &Case) -> bool {
    case.rs_proof
        .verify(case.root, &[case.index], &[case.leaf], case.size)
}

/// Times `samples` checks of `cases` (cycled) by the rigs `wanted`, interleaved, the order
/// rotating; every check must hold.
fn sample_verify(
    cases: &[Case],
    verifier: &NoteVerifier,
    wanted: &[&str],
    samples: usize,
) -> Result<BTreeMap<String, Timing>, BoxError> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(samples); wanted.len()];
    for i in 0..samples {
        let case = &cases[i % cases.len()];
        for k in 0..wanted.len() {
            let r = (i + k) % wanted.len();
            let start = Instant::now();
            let ok = match wanted[r] {
                ids::RS_MERKLE => verify_rs(case),
                ids::TRAILMIX_PATH => verify_path(case),
                _ => verify_bundle(case, verifier),
            };
            times[r].push(start.elapsed());
            if !ok {
                return Err(
                    format!("{}: seq {} does not verify", wanted[r], case.bundle.seq).into(),
                );
            }
        }
    }
    Ok(wanted
        .iter()
        .zip(times.iter_mut())
        .filter_map(|(rig, t)| Timing::from_durations(t).map(|t| ((*rig).to_string(), t)))
        .collect())
}

fn id(job: &str, rig: &str) -> String {
    ids::job_rig(ids::ENGINE_PROOF_GROUP, job, rig)
}

const JOBS: [(&str, &[&str]); 3] = [
    (ids::PROVE_SEALED, &[TRAILMIX_RIG, ids::RS_MERKLE]),
    (ids::PROVE_OPEN, &[TRAILMIX_RIG, ids::RS_MERKLE]),
    (
        ids::VERIFY_PROOF,
        &[TRAILMIX_RIG, ids::TRAILMIX_PATH, ids::RS_MERKLE],
    ),
];

fn print(job: &str, rig: &str, t: &Timing) {
    eprintln!(
        "engine_proof {job}/{rig}: p50 {:.1} µs, p99 {:.1} µs, mean {:.1} µs, {:.0}/s ({} samples)",
        t.p50_ns / 1e3,
        t.p99_ns / 1e3,
        t.mean_ns / 1e3,
        t.per_second(),
        t.samples
    );
}

fn criterion_jobs(c: &mut Criterion, f: &Fixture, cases: &[Case]) {
    let mut group = c.benchmark_group(ids::ENGINE_PROOF_GROUP);
    group.sample_size(10);
    if !quick() {
        group.measurement_time(Duration::from_secs(10));
    }
    for (job, seqs, tree) in [
        (ids::PROVE_SEALED, &f.sealed, &f.sealed_tree),
        (ids::PROVE_OPEN, &f.open, &f.open_tree),
    ] {
        // Proofs from the log take milliseconds to seconds: one per sample.
        group.sampling_mode(SamplingMode::Flat);
        let mut i = 0;
        group.bench_function(format!("{job}/{TRAILMIX_RIG}"), |b| {
            b.iter(|| {
                i += 1;
                f.db.prove(seqs[i % seqs.len()]).expect("prove")
            });
        });
        group.sampling_mode(SamplingMode::Auto);
        let mut i = 0;
        group.bench_function(format!("{job}/{}", ids::RS_MERKLE), |b| {
            b.iter(|| {
                i += 1;
                tree.nodes.proof(&[tree.index(seqs[i % seqs.len()])])
            });
        });
    }
    let job = ids::VERIFY_PROOF;
    let mut i = 0;
    group.bench_function(format!("{job}/{TRAILMIX_RIG}"), |b| {
        b.iter(|| {
            i += 1;
            verify_bundle(&cases[i % cases.len()], &f.verifier)
        });
    });
    group.bench_function(format!("{job}/{}", ids::TRAILMIX_PATH), |b| {
        b.iter(|| {
            i += 1;
            verify_path(&cases[i % cases.len()])
        });
    });
    group.bench_function(format!("{job}/{}", ids::RS_MERKLE), |b| {
        b.iter(|| {
            i += 1;
            verify_rs(&cases[i % cases.len()])
        });
    });
    group.finish();
}

fn scratch() -> PathBuf {
    scratch_root(Path::new(env!("CARGO_TARGET_TMPDIR"))).join("engine_proof")
}

fn run(c: &mut Criterion) -> Result<(), BoxError> {
    let selected = |job: &str, rigs: &[&str]| -> Vec<String> {
        rigs.iter()
            .filter(|rig| filters_match(&id(job, rig)))
            .map(|rig| (*rig).to_string())
            .collect()
    };
    if JOBS
        .iter()
        .all(|(job, rigs)| selected(job, rigs).is_empty())
    {
        return Ok(());
    }
    let n = receipt_count()?;
    let root = scratch();
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("store");
    let started = Instant::now();
    let f = build(&dir, n)?;
    eprintln!(
        "engine_proof: {n} receipts, sealed epoch of {} leaves, open epoch checkpoint of {} \
         leaves; store and rs_merkle trees built in {:.1?}",
        f.sealed_tree.size,
        f.open_tree.size,
        started.elapsed()
    );

    let mut results = ProofResults {
        receipts: n as u64,
        quick: quick(),
        sealed_tree_size: f.sealed_tree.size as u64,
        open_tree_size: f.open_tree.size as u64,
        ..ProofResults::default()
    };
    let prove_max = if quick() {
        QUICK_PROVE_SAMPLES
    } else {
        MAX_SAMPLES
    };
    let mut cases = Vec::new();
    for (job, seqs, tree) in [
        (ids::PROVE_SEALED, &f.sealed, &f.sealed_tree),
        (ids::PROVE_OPEN, &f.open, &f.open_tree),
    ] {
        let rigs = selected(job, &[TRAILMIX_RIG, ids::RS_MERKLE]);
        // A few proofs, untimed, when only the verification is wanted.
        let max = if rigs.is_empty() { 4 } else { prove_max };
        let ProofSamples {
            mut ours,
            mut theirs,
            cases: more,
        } = sample_proofs(&f.db, tree, seqs, max)?;
        cases.extend(more);
        if rigs.is_empty() {
            continue;
        }
        let mut timings = BTreeMap::new();
        for (rig, times) in [(TRAILMIX_RIG, &mut ours), (ids::RS_MERKLE, &mut theirs)] {
            if let Some(t) = Timing::from_durations(times).filter(|_| rigs.iter().any(|r| r == rig))
            {
                print(job, rig, &t);
                timings.insert(rig.to_string(), t);
            }
        }
        results.jobs.insert(job.to_string(), timings);
    }
    eprintln!(
        "engine_proof: {} bundles checked against rs_merkle's audit paths",
        cases.len()
    );
    let wanted = selected(ids::VERIFY_PROOF, JOBS[2].1);
    if !wanted.is_empty() {
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let samples = if quick() {
            MAX_SAMPLES / 2
        } else {
            MAX_SAMPLES
        };
        let timings = sample_verify(&cases, &f.verifier, &wanted, samples)?;
        for (rig, t) in &timings {
            print(ids::VERIFY_PROOF, rig, t);
        }
        results.jobs.insert(ids::VERIFY_PROOF.to_string(), timings);
    }

    criterion_jobs(c, &f, &cases);

    if bench_mode() {
        let dir = criterion_dir(Path::new(env!("CARGO_TARGET_TMPDIR")));
        match store_report::save_proof(&dir, &results) {
            Ok(()) => eprintln!(
                "engine_proof: timings saved to {}",
                dir.join(store_report::PROOF_FILE).display()
            ),
            Err(err) => eprintln!("engine_proof: could not save timings: {err}"),
        }
    }
    f.db.close()?;
    let _ = std::fs::remove_dir_all(&root);
    let _ = settle(root.parent().unwrap_or(&root));
    Ok(())
}

fn bench(c: &mut Criterion) {
    if let Err(err) = run(c) {
        let _ = std::fs::remove_dir_all(scratch());
        panic!("engine_proof failed: {err}");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
