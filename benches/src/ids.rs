//! Benchmark ids (criterion `group/function/value`), shared by the benchmarks and the report so
//! that the two cannot drift apart.

/// Record payload sizes of the WAL append benchmark, in bytes.
pub const RECORD_SIZES: [usize; 2] = [512, 1000];
/// Records per durable flush (group-commit batch sizes).
pub const BATCHES: [usize; 3] = [1, 64, 1024];

/// Function name of the trailmix-db side of the WAL append comparison.
pub const TRAILMIX: &str = "trailmix";
/// Function name of the plain ceiling: buffered `write` + `fdatasync` of the same framed bytes.
pub const CEILING: &str = "ceiling";

/// Group of the WAL append benchmark for one record size.
#[must_use]
pub fn wal_append_group(record_bytes: usize) -> String {
    format!("wal_append_{record_bytes}B")
}

/// Parameter (value) naming a batch size.
#[must_use]
pub fn batch_value(batch: usize) -> String {
    format!("batch_{batch}")
}

/// Full id of one WAL append benchmark.
#[must_use]
pub fn wal_append(record_bytes: usize, function: &str, batch: usize) -> String {
    format!(
        "{}/{function}/{}",
        wal_append_group(record_bytes),
        batch_value(batch)
    )
}

/// Record size of the end-to-end pre-allocation comparison.
pub const PREALLOC_RECORD_BYTES: usize = 512;
/// Batch size of the end-to-end pre-allocation comparison.
pub const PREALLOC_BATCH: usize = 1024;
/// Group of the end-to-end WAL comparison of pre-allocation modes.
pub const WAL_PREALLOC_GROUP: &str = "wal_prealloc_512B_batch_1024";
/// Functions of [`WAL_PREALLOC_GROUP`]: WAL variants, each `(function, preallocation, ahead)`.
pub const WAL_PREALLOC_VARIANTS: [(&str, &str, bool); 4] = [
    ("zerofill_ahead", "ZeroFill", true),
    ("zerofill_ondemand", "ZeroFill", false),
    ("fallocate_ahead", "Fallocate", true),
    ("fallocate_ondemand", "Fallocate", false),
];

/// Group of the raw mmap write comparison (write 4 MiB into the map, then msync it).
pub const MMAP_WRITE_GROUP: &str = "mmap_write_4MiB";
/// Group of the segment creation comparison (create, pre-allocate, sync and map 64 MiB).
pub const SEGMENT_CREATE_GROUP: &str = "segment_create_64MiB";
/// Function of a zero-filled file.
pub const ZERO_FILL: &str = "zero_fill";
/// Function of a fallocated file.
pub const FALLOCATE: &str = "fallocate";

/// Bytes written per iteration of [`MMAP_WRITE_GROUP`].
pub const MMAP_CHUNK_BYTES: usize = 4 << 20;
/// Segment size of the pre-allocation benchmarks (the WAL default).
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// Group of the engine's durable ingest benchmark (512-byte canonical payloads).
pub const ENGINE_INGEST_GROUP: &str = "engine_ingest_512B";
/// Group of the engine's durable ingest benchmark with 2 KiB canonical payloads (criterion
/// only, no paired rounds).
pub const ENGINE_INGEST_LARGE_GROUP: &str = "engine_ingest_2KiB";
/// The append-latency measurement of the engine ingest benchmark (filter it alone with
/// `cargo bench --bench engine_ingest -- append_latency`).
pub const APPEND_LATENCY: &str = "engine_ingest_512B/append_latency";
/// Caller thread counts of the engine ingest benchmark.
pub const INGEST_THREADS: [usize; 2] = [1, 2];
/// Function of the pipelined ceiling: hash in the callers, chain on one thread, framed
/// `write(2)`, `fdatasync` overlapped with the next batch.
pub const PIPELINED_CEILING: &str = "ceiling";
/// Function of the engine with payload encryption off (`trailmix` runs with the default,
/// per-subject encryption): the pair measures what encryption costs.
pub const TRAILMIX_UNENCRYPTED: &str = "trailmix_unencrypted";
/// Function of the engine submitting through `Db::append_batch`, one batch of
/// [`INGEST_BATCH_RECEIPTS`] (the receipts the baselines commit per transaction) per caller
/// thread and iteration (`trailmix` submits one `Db::append` per receipt).
pub const TRAILMIX_BATCHED: &str = "trailmix_batched";
/// Filter word of the compression pair of the engine ingest benchmark: trailmix-db with
/// `PayloadCompression::zstd()` (zstd 3, built-in dictionary) against the default (`Off`), both
/// encrypted, on receipts of the realistic corpus. Its jobs run only when named: `cargo bench
/// -p trailmix-benches --bench engine_ingest -- zstd_vs_off`.
pub const COMPRESSION_PAIR: &str = "zstd_vs_off";

/// Paired job id of the compression pair ([`COMPRESSION_PAIR`]), submitting through
/// `Db::append_batch` when `batched` (as [`TRAILMIX_BATCHED`]) or `Db::append` per receipt,
/// with `threads` caller threads on each side.
#[must_use]
pub fn engine_ingest_paired_compression(batched: bool, threads: usize) -> String {
    let submit = if batched { "batched" } else { "append" };
    format!(
        "{ENGINE_INGEST_GROUP}/{COMPRESSION_PAIR}/realistic_{submit}/{}",
        threads_value(threads)
    )
}

/// Receipts per `append_batch` of [`TRAILMIX_BATCHED`]: as many as redb and `SQLite` commit
/// per transaction, so that rig is the like-for-like comparison with them.
pub const INGEST_BATCH_RECEIPTS: usize = 10_000;
/// Function of redb storing the same receipts, chain and secondary tables.
pub const REDB: &str = "redb";
/// Function of `SQLite` (WAL mode) storing the same receipts, chain and indexes.
pub const SQLITE: &str = "sqlite";

/// Parameter (value) naming a caller thread count.
#[must_use]
pub fn threads_value(threads: usize) -> String {
    format!("threads_{threads}")
}

/// Full id of one engine ingest benchmark (`function` is [`TRAILMIX`], [`PIPELINED_CEILING`],
/// [`REDB`] or [`SQLITE`]).
#[must_use]
pub fn engine_ingest(function: &str, threads: usize) -> String {
    format!(
        "{ENGINE_INGEST_GROUP}/{function}/{}",
        threads_value(threads)
    )
}

/// Full id of one engine ingest benchmark with 2 KiB payloads.
#[must_use]
pub fn engine_ingest_large(function: &str, threads: usize) -> String {
    format!(
        "{ENGINE_INGEST_LARGE_GROUP}/{function}/{}",
        threads_value(threads)
    )
}

/// Paired job id of batched trailmix-db ([`TRAILMIX_BATCHED`]) against `baseline` with
/// `threads` trailmix caller threads.
#[must_use]
pub fn engine_ingest_paired_batched(baseline: &str, threads: usize) -> String {
    format!(
        "{ENGINE_INGEST_GROUP}/batched_vs_{baseline}/{}",
        threads_value(threads)
    )
}

/// Paired job id of trailmix-db against `baseline` with `threads` trailmix caller threads.
#[must_use]
pub fn engine_ingest_paired(baseline: &str, threads: usize) -> String {
    format!(
        "{ENGINE_INGEST_GROUP}/vs_{baseline}/{}",
        threads_value(threads)
    )
}

/// Group of the full-verification benchmark.
pub const ENGINE_VERIFY_GROUP: &str = "engine_verify";
/// Function: `verify_store` over the whole store.
pub const VERIFY_STORE: &str = "verify_store";
/// Function: blake3 of each stored entry separately (the per-entry hashing floor).
pub const BLAKE3_PER_ENTRY: &str = "blake3_per_entry";
/// Function: one blake3 over all the entries' bytes concatenated (SIMD across chunks).
pub const BLAKE3_BULK: &str = "blake3_bulk";

/// Full id of one verification benchmark.
#[must_use]
pub fn engine_verify(function: &str) -> String {
    format!("{ENGINE_VERIFY_GROUP}/{function}")
}

/// Group of the inclusion-proof benchmark (`benches/engine_proof.rs`).
pub const ENGINE_PROOF_GROUP: &str = "engine_proof";
/// Proof job: an inclusion proof of a receipt of the sealed epoch.
pub const PROVE_SEALED: &str = "prove_sealed";
/// Proof job: an inclusion proof of a receipt of the open epoch (against its checkpoint).
pub const PROVE_OPEN: &str = "prove_open";
/// Proof job: checking a proof.
pub const VERIFY_PROOF: &str = "verify";
/// Rig of the proof benchmark: `rs_merkle` over the same leaf hashes.
pub const RS_MERKLE: &str = "rs_merkle";
/// Rig of the proof benchmark: trailmix-db's audit-path check alone
/// (`merkle::verify_inclusion`, no signature, no entry digests).
pub const TRAILMIX_PATH: &str = "trailmix-db-path";

/// Group of the open / recovery benchmark (`benches/engine_open.rs`).
pub const ENGINE_OPEN_GROUP: &str = "engine_open";
/// Open job: a store that was closed cleanly.
pub const OPEN_CLEAN: &str = "clean";
/// Open job: a store whose writer process was killed (SIGKILL) after its last commit.
pub const OPEN_CRASHED: &str = "crashed";

/// Group of the peak-memory benchmark (`benches/engine_memory.rs`).
pub const ENGINE_MEMORY_GROUP: &str = "engine_memory";

/// Id of one job of one rig: `group/job/rig`, or `group/rig` when `job` is empty (what the
/// positional filter arguments of `cargo bench` are matched against, and criterion's id).
#[must_use]
pub fn job_rig(group: &str, job: &str, rig: &str) -> String {
    if job.is_empty() {
        format!("{group}/{rig}")
    } else {
        format!("{group}/{job}/{rig}")
    }
}
