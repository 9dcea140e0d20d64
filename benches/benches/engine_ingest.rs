//! Durable ingest of 512-byte receipts through `Db` (default options: durable group commit),
//! against, in the same run and on the same receipts:
//!
//! - **ceiling**: the brief's pipelined ceiling. The caller threads hash each receipt's stored
//!   bytes (`entry::payload_digest`), one thread chains the fixed-size digests
//!   (`entry::chain_hash`), frames each record (the WAL's `FrameHeader`, chain hash + bytes)
//!   and appends each batch of 1024 with one `write(2)`; a second thread runs `fdatasync`,
//!   overlapping the sync of batch k with building batch k+1 (one sync covers every write
//!   made before it started).
//! - **redb**: the same bytes and chain in a `u64 -> chain || bytes` table plus three
//!   secondary tables (tenant, model, event time; one insert each per receipt), one durable
//!   commit per 10k receipts.
//! - **`trailmix_unencrypted`**: the engine with `PayloadEncryption::Off` (the `trailmix` side
//!   runs with the default per-subject encryption), so the pair shows what encryption costs
//!   (the bar: at most 15% of throughput at 512-byte payloads).
//! - **`trailmix_batched`**: the engine (encrypted, the default) submitting through
//!   `Db::append_batch`, each caller thread its share of the iteration's receipts as batches
//!   of at most `ids::INGEST_BATCH_RECEIPTS` (10k: what redb and `SQLite` commit per
//!   transaction), waiting on each batch's ticket: the like-for-like comparison with them.
//!   Paired against the ceiling, redb and `SQLite` beside the per-append `trailmix` rig.
//! - **sqlite**: rusqlite (bundled `SQLite`), WAL mode, `synchronous=FULL` (a commit is durable
//!   when it returns, as a trailmix ticket is; `NORMAL` in WAL mode does not sync on commit),
//!   one table with the chain column and three indexes (tenant, model, time), 10k receipts per
//!   transaction.
//!
//! One criterion iteration ingests [`CHUNK`] receipts and waits until all are durable. A
//! trailmix caller thread appends windows of [`WINDOW`] tickets and waits on window k after
//! submitting window k+1. redb and `SQLite` have one writer, so they run with one thread only.
//! Every receipt is built before the timed section; when the pool is used up, every side
//! starts over in a fresh store (untimed), so event ids stay unique per store.
//!
//! Then, under `cargo bench` only, the append latency at half of peak throughput
//! (`trailmix_benches::append_latency`: one caller, an open-loop schedule at half the peak
//! measured just before, p50-p99.9 from due time to durable), saved for `bench-report`.
//!
//! The compression pair (`zstd_vs_off`, run only when named: `cargo bench -p trailmix-benches
//! --bench engine_ingest -- zstd_vs_off`, so neither CI nor a plain `cargo bench` spends time
//! on it): trailmix-db with `PayloadCompression::zstd()` (zstd 3, built-in dictionary) paired
//! against the default (compression off), both encrypted (the default), per-receipt appends
//! and batches of 10k, 1 and 2 caller threads each side, on receipts of the realistic corpus
//! (`trailmix_benches::realistic`, ~512 B of SDK-event JSON with text; the padded receipts of
//! the other jobs would compress to almost nothing and flatter it). Ratio below 1: what
//! compression costs in durable throughput.
//!
//! The group `engine_ingest_2KiB` runs trailmix-db (encrypted, the default), the ceiling, redb
//! and `SQLite` again on receipts with 2 KiB canonical payloads (criterion only, no paired
//! rounds).
//!
//! `TRAILMIX_BATCH_PREPARE_THREADS=N` sets `DbOptions::batch_prepare_threads` on every trailmix
//! side (default: the engine's), so that a run with helpers off (`1`) can be set beside one
//! with them. `TRAILMIX_SYNC_PLACEMENT=writer|sync-thread` likewise sets
//! `DbOptions::sync_placement` (default: the engine's, the sync thread).
//!
//! Sizes: `--quick` (or `TRAILMIX_BENCH_QUICK=1`) uses a 20k-receipt pool and the short paired
//! plan; a full run a 200k pool (100k of 2 KiB receipts). Paired rounds (trailmix-db against each baseline in
//! alternating blocks) are saved for `bench-report` unless `TRAILMIX_PAIRED=0`.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::fs::File;
use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redb::TableDefinition;
use trailmix_benches::paired::{self, PairedResult, Plan};
use trailmix_benches::rigs::{BoxError, settle};
use trailmix_benches::{append_latency, criterion_dir, ids, receipts, scratch_root};
use trailmix_db::entry::{ChainFields, chain_hash, payload_digest};
use trailmix_db::receipt::Receipt;
use trailmix_db::wal::format::{FrameHeader, frame_bytes};
use trailmix_db::wal::{HashAlgorithm, Seq};
use trailmix_db::{Db, DbOptions, PayloadCompression, PayloadEncryption, Ticket};

/// Receipts per criterion iteration, and per redb / `SQLite` transaction.
const CHUNK: usize = 10_000;
/// Tickets a trailmix caller thread submits before waiting on the previous window.
const WINDOW: usize = 1024;
/// Records per `write(2)` of the ceiling.
const CEILING_BATCH: usize = 1024;
const ALG: HashAlgorithm = HashAlgorithm::Blake3;

/// Small sizes: `--quick`, `TRAILMIX_BENCH_QUICK=1`, or a run without `--bench` (`cargo test
/// --benches` runs each benchmark once as a test).
fn quick() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--quick")
        || !args.iter().any(|a| a == "--bench")
        || std::env::var_os("TRAILMIX_BENCH_QUICK").is_some_and(|v| v != "0")
}

/// The receipts and the bytes the baselines store for them.
struct Pool {
    receipts: Vec<Receipt>,
    bytes: Vec<Vec<u8>>,
}

impl Pool {
    /// `count` receipts with `payload_bytes`-byte payloads, event ids from `start`.
    fn new(start: u64, count: usize, payload_bytes: usize) -> Result<Pool, BoxError> {
        let receipts = receipts::build_sized(start, count, receipts::cores(), payload_bytes)?;
        Ok(Pool::of(receipts))
    }
    /// `count` receipts with payloads of the realistic corpus, event ids from `start`.
    fn realistic(start: u64, count: usize) -> Result<Pool, BoxError> {
        Ok(Pool::of(receipts::build_realistic(
            start,
            count,
            receipts::cores(),
        )?))
    }
    fn of(receipts: Vec<Receipt>) -> Pool {
        let bytes = receipts.iter().map(receipts::stored_bytes).collect();
        Pool { receipts, bytes }
    }
    fn len(&self) -> usize {
        self.receipts.len()
    }
}

/// One side of the comparison.
trait Side {
    /// Ingests `range` of the pool with `threads` caller threads; returns when all of it is
    /// durable.
    fn ingest(&mut self, pool: &Pool, range: Range<usize>, threads: usize) -> Result<(), BoxError>;
    /// Starts over in a fresh, empty store (untimed).
    fn reset(&mut self) -> Result<(), BoxError>;
}

/// A directory per store generation under `root`; the previous one is deleted.
struct Generations {
    root: PathBuf,
    generation: u32,
}

impl Generations {
    fn new(root: PathBuf) -> Result<Generations, BoxError> {
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        std::fs::create_dir_all(&root)?;
        Ok(Generations {
            root,
            generation: 0,
        })
    }
    /// Deletes the current generation's directory and returns a fresh one.
    fn next(&mut self) -> Result<PathBuf, BoxError> {
        let old = self.current();
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
            settle(&self.root)?;
        }
        self.generation += 1;
        let dir = self.current();
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
    fn current(&self) -> PathBuf {
        self.root.join(format!("g{}", self.generation))
    }
}

impl Drop for Generations {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

// --- trailmix-db -------------------------------------------------------------------------

struct Trailmix {
    dirs: Generations,
    db: Option<Db>,
    encryption: PayloadEncryption,
    compression: PayloadCompression,
    /// Submit through `append_batch` in batches of this many receipts (`None`: `append`).
    batch: Option<usize>,
}

impl Trailmix {
    fn new(root: PathBuf, encryption: PayloadEncryption) -> Result<Trailmix, BoxError> {
        Trailmix::compressed(root, encryption, PayloadCompression::Off)
    }
    fn compressed(
        root: PathBuf,
        encryption: PayloadEncryption,
        compression: PayloadCompression,
    ) -> Result<Trailmix, BoxError> {
        let mut side = Trailmix {
            dirs: Generations::new(root)?,
            db: None,
            encryption,
            compression,
            batch: None,
        };
        side.reset()?;
        Ok(side)
    }
}

fn wait_all(tickets: Vec<Ticket>) -> Result<(), BoxError> {
    for ticket in tickets {
        ticket.wait()?;
    }
    Ok(())
}

/// One caller thread: submit window k+1, then wait on window k.
fn trailmix_caller(db: &Db, receipts: &[Receipt]) -> Result<(), BoxError> {
    let mut pending: Option<Vec<Ticket>> = None;
    for window in receipts.chunks(WINDOW) {
        let tickets = window
            .iter()
            .map(|r| db.append(r))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(previous) = pending.replace(tickets) {
            wait_all(previous)?;
        }
    }
    if let Some(last) = pending {
        wait_all(last)?;
    }
    Ok(())
}

impl Side for Trailmix {
    fn ingest(&mut self, pool: &Pool, range: Range<usize>, threads: usize) -> Result<(), BoxError> {
        let db = self.db.as_ref().ok_or("trailmix store closed")?;
        let part = range.len().div_ceil(threads);
        let batch = self.batch;
        std::thread::scope(|s| {
            let handles: Vec<_> = pool.receipts[range]
                .chunks(part)
                .map(|slice| {
                    s.spawn(move || match batch {
                        Some(batch) => receipts::append_batches(db, slice, batch),
                        None => trailmix_caller(db, slice),
                    })
                })
                .collect();
            for handle in handles {
                handle.join().map_err(|_| "caller thread panicked")??;
            }
            Ok(())
        })
    }
    fn reset(&mut self) -> Result<(), BoxError> {
        if let Some(db) = self.db.take() {
            db.close()?;
        }
        let dir = self.dirs.next()?;
        let mut options = DbOptions::default()
            .payload_encryption(self.encryption)
            .payload_compression(self.compression);
        if let Some(threads) = batch_prepare_threads_override()? {
            options = options.batch_prepare_threads(threads);
        }
        if let Some(placement) = receipts::sync_placement_override()? {
            options = options.sync_placement(placement);
        }
        self.db = Some(Db::open_with(dir.join("store"), options)?);
        Ok(())
    }
}

/// `TRAILMIX_BATCH_PREPARE_THREADS`, when set: the engine's `batch_prepare_threads` for every
/// trailmix side (to compare a run against one with helpers off, `1`).
fn batch_prepare_threads_override() -> Result<Option<usize>, BoxError> {
    match std::env::var("TRAILMIX_BATCH_PREPARE_THREADS") {
        Ok(value) => Ok(Some(value.parse().map_err(|e| {
            format!("TRAILMIX_BATCH_PREPARE_THREADS={value:?} is not a thread count: {e}")
        })?)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(format!("TRAILMIX_BATCH_PREPARE_THREADS: {e}").into()),
    }
}

// --- the pipelined ceiling ----------------------------------------------------------------

struct Ceiling {
    dirs: Generations,
    file: Option<File>,
    seq: u64,
    prev: [u8; 32],
}

impl Ceiling {
    fn new(root: PathBuf) -> Result<Ceiling, BoxError> {
        let mut side = Ceiling {
            dirs: Generations::new(root)?,
            file: None,
            seq: 0,
            prev: [0; 32],
        };
        side.reset()?;
        Ok(side)
    }
}

/// The sync thread: one `fdatasync` per request, covering every write made before it began;
/// requests that queued meanwhile are coalesced.
fn syncer(file: &File, requests: &Receiver<()>) -> Result<(), BoxError> {
    while requests.recv().is_ok() {
        while requests.try_recv().is_ok() {}
        file.sync_data()?;
    }
    Ok(())
}

impl Side for Ceiling {
    fn ingest(&mut self, pool: &Pool, range: Range<usize>, threads: usize) -> Result<(), BoxError> {
        let file = self.file.as_mut().ok_or("ceiling file closed")?;
        let sync_file = file.try_clone()?;
        let batches: Vec<Range<usize>> = range
            .clone()
            .step_by(CEILING_BATCH)
            .map(|from| from..(from + CEILING_BATCH).min(range.end))
            .collect();
        let (seq, prev) = (&mut self.seq, &mut self.prev);
        std::thread::scope(|s| -> Result<(), BoxError> {
            // Caller threads: batch b is hashed by thread b % threads.
            let mut digests = Vec::with_capacity(threads);
            for t in 0..threads {
                let (tx, rx) = sync_channel::<Vec<[u8; 32]>>(4);
                digests.push(rx);
                let batches = &batches;
                s.spawn(move || {
                    for batch in batches.iter().skip(t).step_by(threads) {
                        let hashed = pool.bytes[batch.clone()]
                            .iter()
                            .map(|b| payload_digest(ALG, b))
                            .collect();
                        if tx.send(hashed).is_err() {
                            return;
                        }
                    }
                });
            }
            let (sync_tx, sync_rx) = sync_channel::<()>(1);
            let sync_thread = s.spawn(move || syncer(&sync_file, &sync_rx));
            // The chaining thread (this one): chain, frame, write; the syncer syncs behind.
            let mut buf = Vec::with_capacity(CEILING_BATCH * 700);
            let mut record = Vec::with_capacity(1024);
            for (b, batch) in batches.iter().enumerate() {
                let hashed = digests[b % threads]
                    .recv()
                    .map_err(|_| "hashing thread ended early")?;
                buf.clear();
                for (i, digest) in batch.clone().zip(hashed) {
                    let fields = ChainFields {
                        epoch: 0,
                        logged_at_ns: 0,
                        prev_chain_hash: *prev,
                        tenant_prev_seq: 0,
                        tenant_prev_hash: [0; 32],
                    };
                    let chain = chain_hash(ALG, Seq(*seq), &fields, &digest);
                    record.clear();
                    record.extend_from_slice(&chain);
                    record.extend_from_slice(&pool.bytes[i]);
                    let header = FrameHeader {
                        payload_len: u32::try_from(record.len())?,
                        seq: Seq(*seq),
                        durable_end: Seq(0),
                        kind: 1,
                    };
                    let end = buf.len() + usize::try_from(frame_bytes(record.len() as u64))?;
                    buf.extend_from_slice(&header.encode(&record));
                    buf.extend_from_slice(&record);
                    buf.resize(end, 0);
                    *prev = chain;
                    *seq += 1;
                }
                file.write_all(&buf)?;
                // A full queue means a sync is pending that will cover this write too.
                let _ = sync_tx.try_send(());
            }
            // The last write must be covered by a sync that starts after it.
            sync_tx.send(())?;
            drop(sync_tx);
            sync_thread.join().map_err(|_| "sync thread panicked")??;
            Ok(())
        })
    }
    fn reset(&mut self) -> Result<(), BoxError> {
        self.file = None;
        let dir = self.dirs.next()?;
        self.file = Some(
            File::options()
                .create(true)
                .append(true)
                .open(dir.join("log"))?,
        );
        self.seq = 0;
        self.prev = [0; 32];
        Ok(())
    }
}

// --- redb ----------------------------------------------------------------------------------

const RECEIPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("receipts");
const BY_TENANT: TableDefinition<(&str, u64), ()> = TableDefinition::new("by_tenant");
const BY_MODEL: TableDefinition<(&str, u64), ()> = TableDefinition::new("by_model");
const BY_TIME: TableDefinition<(i64, u64), ()> = TableDefinition::new("by_time");

struct Redb {
    dirs: Generations,
    db: Option<redb::Database>,
    seq: u64,
    prev: [u8; 32],
}

impl Redb {
    fn new(root: PathBuf) -> Result<Redb, BoxError> {
        let mut side = Redb {
            dirs: Generations::new(root)?,
            db: None,
            seq: 0,
            prev: [0; 32],
        };
        side.reset()?;
        Ok(side)
    }
}

/// The chain hash of the next receipt, linking it to `prev`.
fn link(seq: u64, prev: &mut [u8; 32], bytes: &[u8]) -> [u8; 32] {
    let fields = ChainFields {
        epoch: 0,
        logged_at_ns: 0,
        prev_chain_hash: *prev,
        tenant_prev_seq: 0,
        tenant_prev_hash: [0; 32],
    };
    let chain = chain_hash(ALG, Seq(seq), &fields, &payload_digest(ALG, bytes));
    *prev = chain;
    chain
}

impl Side for Redb {
    fn ingest(
        &mut self,
        pool: &Pool,
        range: Range<usize>,
        _threads: usize,
    ) -> Result<(), BoxError> {
        let db = self.db.as_ref().ok_or("redb closed")?;
        let txn = db.begin_write()?;
        {
            let mut receipts = txn.open_table(RECEIPTS)?;
            let mut by_tenant = txn.open_table(BY_TENANT)?;
            let mut by_model = txn.open_table(BY_MODEL)?;
            let mut by_time = txn.open_table(BY_TIME)?;
            let mut value = Vec::with_capacity(1024);
            for i in range {
                let (receipt, bytes) = (&pool.receipts[i], &pool.bytes[i]);
                let seq = self.seq;
                let chain = link(seq, &mut self.prev, bytes);
                value.clear();
                value.extend_from_slice(&chain);
                value.extend_from_slice(bytes);
                receipts.insert(seq, value.as_slice())?;
                let header = receipt.header();
                by_tenant.insert((header.tenant_id(), seq), ())?;
                by_model.insert((header.model_name().unwrap_or(""), seq), ())?;
                by_time.insert((header.event_time().as_unix_nanos(), seq), ())?;
                self.seq += 1;
            }
        }
        txn.commit()?;
        Ok(())
    }
    fn reset(&mut self) -> Result<(), BoxError> {
        self.db = None;
        let dir = self.dirs.next()?;
        self.db = Some(redb::Database::create(dir.join("bench.redb"))?);
        self.seq = 0;
        self.prev = [0; 32];
        Ok(())
    }
}

// --- SQLite --------------------------------------------------------------------------------

struct Sqlite {
    dirs: Generations,
    conn: Option<rusqlite::Connection>,
    seq: u64,
    prev: [u8; 32],
}

impl Sqlite {
    fn new(root: PathBuf) -> Result<Sqlite, BoxError> {
        let mut side = Sqlite {
            dirs: Generations::new(root)?,
            conn: None,
            seq: 0,
            prev: [0; 32],
        };
        side.reset()?;
        Ok(side)
    }
}

const INSERT: &str = "INSERT INTO receipts (seq, tenant, model, ts, chain, body) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

impl Side for Sqlite {
    fn ingest(
        &mut self,
        pool: &Pool,
        range: Range<usize>,
        _threads: usize,
    ) -> Result<(), BoxError> {
        let conn = self.conn.as_mut().ok_or("sqlite closed")?;
        let txn = conn.transaction()?;
        {
            let mut insert = txn.prepare_cached(INSERT)?;
            for i in range {
                let (receipt, bytes) = (&pool.receipts[i], &pool.bytes[i]);
                let seq = self.seq;
                let chain = link(seq, &mut self.prev, bytes);
                let header = receipt.header();
                insert.execute(rusqlite::params![
                    i64::try_from(seq)?,
                    header.tenant_id(),
                    header.model_name(),
                    header.event_time().as_unix_nanos(),
                    &chain[..],
                    bytes.as_slice(),
                ])?;
                self.seq += 1;
            }
        }
        txn.commit()?;
        Ok(())
    }
    fn reset(&mut self) -> Result<(), BoxError> {
        self.conn = None;
        let dir = self.dirs.next()?;
        let conn = rusqlite::Connection::open(dir.join("bench.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE receipts (seq INTEGER PRIMARY KEY, tenant TEXT NOT NULL, model TEXT, \
                 ts INTEGER NOT NULL, chain BLOB NOT NULL, body BLOB NOT NULL);
             CREATE INDEX by_tenant ON receipts (tenant, seq);
             CREATE INDEX by_model ON receipts (model, seq);
             CREATE INDEX by_time ON receipts (ts, seq);",
        )?;
        self.conn = Some(conn);
        self.seq = 0;
        self.prev = [0; 32];
        Ok(())
    }
}

// --- driving -------------------------------------------------------------------------------

/// Where a side is in the pool.
struct Cursor(usize);

impl Cursor {
    /// Runs one chunk on `side` and returns its timed duration; starts a fresh store first
    /// (untimed) when the pool is used up.
    fn chunk(
        &mut self,
        side: &mut dyn Side,
        pool: &Pool,
        threads: usize,
    ) -> Result<Duration, BoxError> {
        if self.0 + CHUNK > pool.len() {
            side.reset()?;
            self.0 = 0;
        }
        let start = Instant::now();
        side.ingest(pool, self.0..self.0 + CHUNK, threads)?;
        let elapsed = start.elapsed();
        self.0 += CHUNK;
        Ok(elapsed)
    }
}

#[allow(clippy::cast_precision_loss, reason = "rates for display")]
fn rate(chunks: u64, elapsed: Duration) -> f64 {
    (chunks * CHUNK as u64) as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn block(
    side: &mut dyn Side,
    cursor: &mut Cursor,
    pool: &Pool,
    threads: usize,
    length: Duration,
) -> Result<(u64, Duration), BoxError> {
    let (mut chunks, mut timed) = (0, Duration::ZERO);
    while timed < length {
        timed += cursor.chunk(side, pool, threads)?;
        chunks += 1;
    }
    Ok((chunks, timed))
}

/// trailmix-db (A) against a baseline (B) in alternating blocks, as `paired::run` does for
/// the WAL rigs.
#[allow(clippy::too_many_arguments, reason = "one call site per job")]
fn paired_run(
    job: &str,
    a: &mut dyn Side,
    a_threads: usize,
    b: &mut dyn Side,
    b_threads: usize,
    pool: &Pool,
    plan: Plan,
) -> Result<PairedResult, BoxError> {
    let (mut ca, mut cb) = (Cursor(0), Cursor(0));
    a.reset()?;
    b.reset()?;
    let (mut na, mut nb, mut ta, mut tb) = (0, 0, Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::with_capacity(plan.rounds);
    for round in 0..plan.rounds {
        let ((xa, ya), (xb, yb)) = if round % 2 == 0 {
            let ra = block(a, &mut ca, pool, a_threads, plan.block)?;
            (ra, block(b, &mut cb, pool, b_threads, plan.block)?)
        } else {
            let rb = block(b, &mut cb, pool, b_threads, plan.block)?;
            (block(a, &mut ca, pool, a_threads, plan.block)?, rb)
        };
        ratios.push(rate(xa, ya) / rate(xb, yb));
        (na, nb, ta, tb) = (na + xa, nb + xb, ta + ya, tb + yb);
    }
    ratios.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short, non-empty slice"
    )]
    let q = |f: f64| ratios[((ratios.len() - 1) as f64 * f).round() as usize];
    Ok(PairedResult {
        job: job.to_string(),
        subject_per_second: rate(na, ta),
        baseline_per_second: rate(nb, tb),
        ratio_median: q(0.5),
        ratio_quartiles: (q(0.25), q(0.75)),
        rounds: ratios.len(),
    })
}

fn scratch() -> PathBuf {
    scratch_root(Path::new(env!("CARGO_TARGET_TMPDIR"))).join("engine_ingest")
}

fn bench(c: &mut Criterion) {
    let pool_size = if quick() { 2 * CHUNK } else { 20 * CHUNK };
    let started = Instant::now();
    let pool = Pool::new(0, pool_size, receipts::PAYLOAD_BYTES).expect("build receipts");
    eprintln!(
        "engine_ingest: {pool_size} receipts of {} payload bytes ({} stored bytes each) built in {:.1?}",
        receipts::PAYLOAD_BYTES,
        pool.bytes[0].len(),
        started.elapsed()
    );
    let root = scratch();
    let mut trailmix =
        Trailmix::new(root.join("trailmix"), PayloadEncryption::PerSubject).expect("open trailmix");
    let mut unencrypted = Trailmix::new(root.join("unencrypted"), PayloadEncryption::Off)
        .expect("open unencrypted trailmix");
    let mut batched = Trailmix::new(root.join("batched"), PayloadEncryption::PerSubject)
        .expect("open batched trailmix");
    batched.batch = Some(ids::INGEST_BATCH_RECEIPTS);
    let mut ceiling = Ceiling::new(root.join("ceiling")).expect("open ceiling");
    let mut redb = Redb::new(root.join("redb")).expect("open redb");
    let mut sqlite = Sqlite::new(root.join("sqlite")).expect("open sqlite");

    let mut sides: Vec<(&str, &mut dyn Side, &[usize])> = vec![
        (ids::TRAILMIX, &mut trailmix, &ids::INGEST_THREADS),
        (
            ids::TRAILMIX_UNENCRYPTED,
            &mut unencrypted,
            &ids::INGEST_THREADS,
        ),
        (ids::TRAILMIX_BATCHED, &mut batched, &ids::INGEST_THREADS),
        (ids::PIPELINED_CEILING, &mut ceiling, &ids::INGEST_THREADS),
        (ids::REDB, &mut redb, &[1]),
        (ids::SQLITE, &mut sqlite, &[1]),
    ];
    criterion_jobs(c, ids::ENGINE_INGEST_GROUP, &mut sides, &pool);

    let plan = Plan::from_args();
    let jobs = [
        (false, ids::TRAILMIX_UNENCRYPTED, 1),
        (false, ids::TRAILMIX_UNENCRYPTED, 2),
        (false, ids::PIPELINED_CEILING, 1),
        (false, ids::PIPELINED_CEILING, 2),
        (false, ids::REDB, 1),
        (false, ids::SQLITE, 1),
        (true, ids::PIPELINED_CEILING, 1),
        (true, ids::PIPELINED_CEILING, 2),
        (true, ids::REDB, 1),
        (true, ids::SQLITE, 1),
    ];
    for (is_batched, baseline, threads) in jobs {
        let side: &mut dyn Side = match baseline {
            ids::PIPELINED_CEILING => &mut ceiling,
            ids::TRAILMIX_UNENCRYPTED => &mut unencrypted,
            ids::REDB => &mut redb,
            _ => &mut sqlite,
        };
        let (job, subject): (_, &mut dyn Side) = if is_batched {
            (
                ids::engine_ingest_paired_batched(baseline, threads),
                &mut batched,
            )
        } else {
            (ids::engine_ingest_paired(baseline, threads), &mut trailmix)
        };
        if !paired::wanted(&job) {
            continue;
        }
        let b_threads =
            if baseline == ids::PIPELINED_CEILING || baseline == ids::TRAILMIX_UNENCRYPTED {
                threads
            } else {
                1
            };
        let result = paired_run(&job, subject, threads, side, b_threads, &pool, plan);
        report_paired(&job, ids::TRAILMIX, baseline, result);
    }
    compression_pair(&root, plan);
    append_latency(&pool, &root);
    large_payloads(c, [&mut trailmix, &mut ceiling, &mut redb, &mut sqlite]);
    drop((trailmix, unencrypted, batched, ceiling, redb, sqlite));
    let _ = settle(&root);
    let _ = std::fs::remove_dir(&root);
}

/// Prints a paired result (`subject` and `baseline` name the sides) and saves it for
/// `bench-report`.
fn report_paired(job: &str, subject: &str, baseline: &str, result: Result<PairedResult, BoxError>) {
    match result {
        Ok(result) => {
            eprintln!(
                "paired {job}: {subject} {:.0}/s, {baseline} {:.0}/s, ratio median {:.2} ({:.2}–{:.2}), {} rounds",
                result.subject_per_second,
                result.baseline_per_second,
                result.ratio_median,
                result.ratio_quartiles.0,
                result.ratio_quartiles.1,
                result.rounds
            );
            let dir = criterion_dir(Path::new(env!("CARGO_TARGET_TMPDIR")));
            if let Err(err) = paired::save(&dir, &result) {
                eprintln!("paired {job}: could not save: {err}");
            }
        }
        Err(err) => eprintln!("paired {job}: failed: {err}"),
    }
}

/// The compression pair ([`ids::COMPRESSION_PAIR`]): `PayloadCompression::zstd()` against
/// compression off, both encrypted, on the realistic corpus; only the jobs a filter names.
fn compression_pair(root: &Path, plan: Plan) {
    let jobs: Vec<(bool, usize, String)> = [false, true]
        .into_iter()
        .flat_map(|batched| {
            ids::INGEST_THREADS.map(|threads| {
                (
                    batched,
                    threads,
                    ids::engine_ingest_paired_compression(batched, threads),
                )
            })
        })
        .filter(|(_, _, job)| paired::wanted_by_name(job))
        .collect();
    if jobs.is_empty() {
        return;
    }
    let pool_size = if quick() { 2 * CHUNK } else { 20 * CHUNK };
    let started = Instant::now();
    let pool = Pool::realistic(0, pool_size).expect("build realistic receipts");
    let payload_bytes: usize = pool.receipts.iter().map(|r| r.payload().len()).sum();
    eprintln!(
        "engine_ingest: {pool_size} receipts of the realistic corpus ({} payload bytes on average) built in {:.1?}",
        payload_bytes / pool_size,
        started.elapsed()
    );
    let mut compressed = Trailmix::compressed(
        root.join("zstd"),
        PayloadEncryption::PerSubject,
        PayloadCompression::zstd(),
    )
    .expect("open compressed trailmix");
    let mut off =
        Trailmix::new(root.join("zstd_off"), PayloadEncryption::PerSubject).expect("open trailmix");
    for (batched, threads, job) in jobs {
        let batch = batched.then_some(ids::INGEST_BATCH_RECEIPTS);
        (compressed.batch, off.batch) = (batch, batch);
        let result = paired_run(
            &job,
            &mut compressed,
            threads,
            &mut off,
            threads,
            &pool,
            plan,
        );
        report_paired(&job, "trailmix_zstd", ids::TRAILMIX, result);
    }
}

/// Append latency at half of peak throughput ([`append_latency`]), saved for `bench-report`;
/// runs under `cargo bench` only, like the paired jobs.
fn append_latency(pool: &Pool, root: &Path) {
    if !paired::wanted(ids::APPEND_LATENCY) {
        return;
    }
    let passes = if quick() { 2 } else { 3 };
    let measured = append_latency::measure(
        &pool.receipts,
        receipts::PAYLOAD_BYTES,
        passes,
        quick(),
        &root.join("append_latency"),
    );
    match measured {
        Ok(results) => {
            eprintln!(
                "append latency at {:.0}/s (half of peak {:.0}/s): p50 {:.0} µs, p99 {:.0} µs, \
                 p99.9 {:.0} µs, max {:.0} µs ({} samples); fdatasync 4 KiB p50 {:.0} µs",
                results.target_per_second,
                results.peak_per_second,
                results.append.p50_ns / 1e3,
                results.append.p99_ns / 1e3,
                results.append.p999_ns / 1e3,
                results.append.max_ns / 1e3,
                results.append.samples,
                results.fdatasync_4k.p50_ns / 1e3,
            );
            let dir = criterion_dir(Path::new(env!("CARGO_TARGET_TMPDIR")));
            if let Err(err) = append_latency::save(&dir, &results) {
                eprintln!("append latency: could not save: {err}");
            }
        }
        Err(err) => eprintln!("append latency: failed: {err}"),
    }
}

/// One criterion benchmark per side and thread count in `group`, each iteration a [`CHUNK`] of
/// `pool`.
fn criterion_jobs(
    c: &mut Criterion,
    group: &str,
    sides: &mut [(&str, &mut dyn Side, &[usize])],
    pool: &Pool,
) {
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(CHUNK as u64));
    group.sample_size(10);
    if !quick() {
        group.measurement_time(Duration::from_secs(8));
        group.warm_up_time(Duration::from_secs(2));
    }
    for (function, side, threads) in sides.iter_mut() {
        for &t in *threads {
            let mut cursor = Cursor(usize::MAX / 2);
            group.bench_function(format!("{function}/{}", ids::threads_value(t)), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| cursor.chunk(&mut **side, pool, t).expect("ingest"))
                        .sum()
                });
            });
        }
    }
    group.finish();
}

/// The same durable ingest with 2 KiB payloads (criterion only; each job starts in a fresh
/// store, as [`Cursor`] does for every job).
fn large_payloads(c: &mut Criterion, [trailmix, ceiling, redb, sqlite]: [&mut dyn Side; 4]) {
    let pool_size = if quick() { 2 * CHUNK } else { 10 * CHUNK };
    let started = Instant::now();
    let pool =
        Pool::new(0, pool_size, receipts::LARGE_PAYLOAD_BYTES).expect("build large receipts");
    eprintln!(
        "engine_ingest: {pool_size} receipts of {} payload bytes built in {:.1?}",
        receipts::LARGE_PAYLOAD_BYTES,
        started.elapsed()
    );
    let mut sides: Vec<(&str, &mut dyn Side, &[usize])> = vec![
        (ids::TRAILMIX, trailmix, &ids::INGEST_THREADS),
        (ids::PIPELINED_CEILING, ceiling, &ids::INGEST_THREADS),
        (ids::REDB, redb, &[1]),
        (ids::SQLITE, sqlite, &[1]),
    ];
    criterion_jobs(c, ids::ENGINE_INGEST_LARGE_GROUP, &mut sides, &pool);
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
