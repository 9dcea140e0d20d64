//! Everything configurable about a [`crate::Db`], with documented defaults.

use std::sync::Arc;
use std::time::Duration;

pub use crate::crypto::PayloadCipher;
use crate::error::{Error, Result};
use crate::keys::{FileKeyProvider, SigningKeyProvider};
use crate::keystore::{FileKekProvider, KekProvider, ShredStepHook};
use crate::pii::PiiPolicy;
use crate::wal::HashAlgorithm;

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The ticket completes after the group commit's `msync` returned: the receipt survives
    /// process crashes and power loss. The default.
    #[default]
    Durable,
    /// The ticket completes once the receipt is written into the memory-mapped log: it survives
    /// a crash of this process (the kernel holds the page) but not power loss or a kernel
    /// crash, until the next periodic flush (`flush_interval`) or [`crate::Db::sync`].
    Written,
}

/// Where a durable group commit's sync runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPlacement {
    /// On a sync thread of the store's own (the default): the writer hands each group
    /// commit's `msync` over and goes on writing the next batch while it runs; the sync
    /// thread completes the batch's tickets when it returns. One sync runs at a time (the
    /// writer waits for it before handing over the next), so a batch's wait for the disk
    /// overlaps the writing of the one after it, as the benchmarks' plain ceiling overlaps
    /// its `fdatasync`. Acknowledgement semantics are those of [`Durability::Durable`]
    /// either way.
    #[default]
    SyncThread,
    /// In the writer thread, which waits for each sync before writing anything more.
    Writer,
}

/// Whether the store requests RFC 3161 timestamp tokens for its epoch seals itself.
///
/// The default is [`TimestampPolicy::Off`]: a TSA is an outside service the operator picks.
/// With [`TimestampPolicy::OnSeal`] a background thread requests a token for each epoch seal
/// once the seal is durable, and on open for every sealed epoch that lacks one, and stores it
/// as `trailmix-db timestamp` does (`timestamps/epoch-<n>.tst`, see [`crate::timestamp`]). It
/// never blocks appends or holds the writer; a failure is retried with exponential backoff
/// and reported by [`crate::Db::timestamp_status`], never fatal to writes. Tokens are not
/// checked against a CA when stored (the store has no trust anchor for the TSA):
/// `verify --tsa-ca` and `verify-pack --tsa-ca` check them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TimestampPolicy {
    /// No tokens are requested (the default).
    #[default]
    Off,
    /// A token is requested from a TSA for every durable epoch seal.
    OnSeal(TsaSettings),
}

/// Where and how the writer requests timestamp tokens ([`TimestampPolicy::OnSeal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsaSettings {
    /// The TSA's URL (HTTP, `application/timestamp-query`).
    pub tsa_url: String,
    /// Timeout of one request (default 10 s). Closing the store waits for a request in
    /// flight, so this bounds how long a close can take.
    pub request_timeout: Duration,
    /// Wait before the first retry after a failure (default 1 s); doubled after each further
    /// failure up to `retry_backoff_max`, and reset by a success.
    pub retry_backoff_initial: Duration,
    /// Longest wait between retries (default 5 min).
    pub retry_backoff_max: Duration,
    /// How often the thread looks for new durable seals besides being woken by
    /// [`crate::Db::seal_epoch`] (default 1 s): seals the writer makes itself (size or time
    /// limits) are found this way.
    pub poll_interval: Duration,
}

impl TsaSettings {
    /// The settings for `tsa_url` with the defaults above.
    #[must_use]
    pub fn new(tsa_url: impl Into<String>) -> Self {
        TsaSettings {
            tsa_url: tsa_url.into(),
            request_timeout: Duration::from_secs(10),
            retry_backoff_initial: Duration::from_secs(1),
            retry_backoff_max: Duration::from_secs(300),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Whether each receipt carries its own Ed25519 signature (over its chain hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReceiptSignatures {
    /// Only checkpoints and seals are signed (the default): signing every receipt caps the
    /// single writer near 49 k receipts/s per core.
    #[default]
    Off,
    /// Every receipt is signed with the store's key.
    Ed25519,
}

/// Whether receipt payloads are encrypted, so that they can be crypto-shredded.
///
/// The default is [`PayloadEncryption::PerSubject`]: the choice cannot be undone for what is
/// already written (a payload stored in the clear can never be shredded), so a store that is
/// sold on honouring erasure requests encrypts unless told not to. The cost is one AEAD pass
/// over each payload in the appending thread (in parallel, before the writer; AES-256-GCM by
/// default, see [`DbOptions::payload_cipher`]), 49 bytes per receipt, and one key-store sync
/// per group commit that creates keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadEncryption {
    /// Payloads are stored as given (readable by anyone who reads the files; never
    /// shreddable).
    Off,
    /// Each payload is encrypted with the data key of its `(tenant, subject)`, or of its
    /// tenant when the receipt has no subject (the default).
    #[default]
    PerSubject,
}

/// Whether receipt payloads are compressed before they are stored (and encrypted).
///
/// Compression runs in the appending thread, before encryption; a payload that does not get
/// smaller is stored as it is. The stored bytes (compressed, then encrypted) are what the chain,
/// the Merkle leaves and shredding cover, so `verify` and proofs never decompress. Reads
/// decompress after decrypting, bounded by [`crate::receipt::MAX_PAYLOAD_BYTES`]. Receipts
/// already written keep their form whatever this says, and every form stays readable.
///
/// **Length leak.** Compressing before encrypting makes the stored length depend on the
/// payload's content, not only its size: whoever can read the files (not the plaintext) and
/// also controls part of a payload can learn about the rest of it from the lengths, as in the
/// CRIME attack on TLS. A store where that matters turns compression off
/// ([`PayloadCompression::Off`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadCompression {
    /// Payloads are stored as given. The default: a zstd frame of a ~500-byte payload costs
    /// several times the rest of an append's work in the appending thread (measured in
    /// `docs/performance.md`, eleventh session).
    #[default]
    Off,
    /// Zstandard (RFC 8878) at this level (1 to 22; higher levels cost more time for a few
    /// percent less on payloads of a few hundred bytes). One frame per payload, no dictionary.
    /// [`DEFAULT_ZSTD_LEVEL`] is the measured choice (see `docs/performance.md`, eleventh
    /// session, for the cost and the gain).
    Zstd {
        /// The compression level.
        level: i32,
    },
    /// Zstandard at this level (1 to 22) with a dictionary built into the engine: one frame
    /// per payload that names the dictionary's id. A dictionary holds what short payloads
    /// share (JSON keys, common words), so each frame need not restate it: smaller payloads
    /// at a fraction of the work of [`PayloadCompression::Zstd`] (`docs/performance.md`,
    /// thirteenth session). Built-in dictionaries are trained on synthetic data only, never
    /// on a store's payloads (crypto-shredding could not remove plaintext kept in a
    /// dictionary). [`PayloadCompression::zstd`] gives the recommended setting.
    ZstdWithDictionary {
        /// The compression level.
        level: i32,
        /// Which built-in dictionary.
        dictionary: ZstdDictionary,
    },
}

/// A zstd dictionary built into the engine. Each is part of the format: its bytes never
/// change, and a new one gets a new variant and a new id (`docs/design.md`, "Compressed
/// payloads"). Builds that do not know a dictionary refuse to open payloads made with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZstdDictionary {
    /// `trailmix-1` (16 KiB, id 32769): trained on a synthetic corpus of SDK-event payloads
    /// (`benches/src/dict_corpus.rs`), which holds no personal content.
    BuiltIn1,
}

impl ZstdDictionary {
    /// The dictionary's `Dictionary_ID`, which every frame made with it states.
    #[must_use]
    pub const fn id(self) -> u32 {
        match self {
            ZstdDictionary::BuiltIn1 => crate::compress::BUILT_IN_1_ID,
        }
    }

    /// The dictionary's bytes (what an external reader of the store's payloads needs).
    #[must_use]
    pub fn bytes(self) -> &'static [u8] {
        match self {
            ZstdDictionary::BuiltIn1 => crate::compress::BUILT_IN_1,
        }
    }
}

/// The zstd level to use when turning compression on ([`PayloadCompression::zstd`]).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

impl PayloadCompression {
    /// The recommended compression: Zstandard at [`DEFAULT_ZSTD_LEVEL`] with the newest
    /// built-in dictionary ([`ZstdDictionary::BuiltIn1`]).
    #[must_use]
    pub const fn zstd() -> Self {
        PayloadCompression::ZstdWithDictionary {
            level: DEFAULT_ZSTD_LEVEL,
            dictionary: ZstdDictionary::BuiltIn1,
        }
    }

    /// The zstd level this mode compresses with; `None` when off.
    #[must_use]
    pub fn zstd_level(self) -> Option<i32> {
        match self {
            PayloadCompression::Off => None,
            PayloadCompression::Zstd { level }
            | PayloadCompression::ZstdWithDictionary { level, .. } => Some(level),
        }
    }

    /// The built-in dictionary this mode compresses with, if any.
    #[must_use]
    pub fn zstd_dictionary(self) -> Option<ZstdDictionary> {
        match self {
            PayloadCompression::ZstdWithDictionary { dictionary, .. } => Some(dictionary),
            PayloadCompression::Off | PayloadCompression::Zstd { .. } => None,
        }
    }
}

/// Options for [`crate::Db::open_with`]. Start from [`DbOptions::default`].
#[derive(Clone)]
pub struct DbOptions {
    pub(crate) segment_bytes: u64,
    pub(crate) ring_capacity: usize,
    pub(crate) backpressure_timeout: Duration,
    pub(crate) durability: Durability,
    pub(crate) sync_placement: SyncPlacement,
    pub(crate) batch_records_max: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) checkpoint_every_records: u64,
    pub(crate) checkpoint_interval: Duration,
    pub(crate) epoch_records_max: u64,
    pub(crate) epoch_duration: Option<Duration>,
    pub(crate) snapshot_every_entries: u64,
    pub(crate) hash_algorithm: HashAlgorithm,
    pub(crate) receipt_signatures: ReceiptSignatures,
    pub(crate) key_provider: Option<Arc<dyn SigningKeyProvider>>,
    pub(crate) payload_encryption: PayloadEncryption,
    pub(crate) payload_cipher: PayloadCipher,
    pub(crate) payload_compression: PayloadCompression,
    pub(crate) kek_provider: Option<Arc<dyn KekProvider>>,
    pub(crate) shred_step_hook: Option<ShredStepHook>,
    pub(crate) prune_step_hook: Option<crate::prune::PruneStepHook>,
    pub(crate) retention: std::collections::BTreeMap<String, Duration>,
    pub(crate) pii_policy: Option<PiiPolicy>,
    pub(crate) timestamp_policy: TimestampPolicy,
    pub(crate) archive_reads: Option<crate::archive::ArchiveReads>,
    pub(crate) query_threads: usize,
    pub(crate) batch_prepare_threads: usize,
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("segment_bytes", &self.segment_bytes)
            .field("ring_capacity", &self.ring_capacity)
            .field("backpressure_timeout", &self.backpressure_timeout)
            .field("durability", &self.durability)
            .field("sync_placement", &self.sync_placement)
            .field("batch_records_max", &self.batch_records_max)
            .field("flush_interval", &self.flush_interval)
            .field("checkpoint_every_records", &self.checkpoint_every_records)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("epoch_records_max", &self.epoch_records_max)
            .field("epoch_duration", &self.epoch_duration)
            .field("snapshot_every_entries", &self.snapshot_every_entries)
            .field("hash_algorithm", &self.hash_algorithm)
            .field("receipt_signatures", &self.receipt_signatures)
            .field(
                "key_provider",
                &self.key_provider.as_ref().map(|_| "custom"),
            )
            .field("payload_encryption", &self.payload_encryption)
            .field("payload_cipher", &self.payload_cipher)
            .field("payload_compression", &self.payload_compression)
            .field("retention", &self.retention)
            .field("pii_policy", &self.pii_policy)
            .field("timestamp_policy", &self.timestamp_policy)
            .field("archive_reads", &self.archive_reads)
            .field("query_threads", &self.query_threads)
            .field("batch_prepare_threads", &self.batch_prepare_threads)
            .field(
                "kek_provider",
                &self.kek_provider.as_ref().map(|_| "custom"),
            )
            .field(
                "shred_step_hook",
                &self.shred_step_hook.as_ref().map(|_| "set"),
            )
            .field(
                "prune_step_hook",
                &self.prune_step_hook.as_ref().map(|_| "set"),
            )
            .finish()
    }
}

/// Default ring capacity (submissions in flight between callers and the writer).
pub const DEFAULT_RING_CAPACITY: usize = 65_536;
/// Default largest group commit.
pub const DEFAULT_BATCH_RECORDS_MAX: usize = 8_192;
/// Default time a caller blocks on a full ring before [`Error::Backpressure`].
pub const DEFAULT_BACKPRESSURE_TIMEOUT: Duration = Duration::from_secs(1);
/// Default checkpoint cadence in entries.
pub const DEFAULT_CHECKPOINT_EVERY_RECORDS: u64 = 100_000;
/// Default checkpoint cadence in time (when anything was written since the last one).
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// Default epoch size limit in entries (2^20).
pub const DEFAULT_EPOCH_RECORDS_MAX: u64 = 1 << 20;
/// Default open-snapshot cadence in entries (2^18): after a crash, opening replays at most
/// about this many entries past the last snapshot.
pub const DEFAULT_SNAPSHOT_EVERY_ENTRIES: u64 = 1 << 18;
/// Default flush interval in [`Durability::Written`] mode.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Most threads that read one query page by default ([`DbOptions::query_threads`]); fewer
/// when the machine has fewer cores.
pub const DEFAULT_QUERY_THREADS_MAX: usize = 4;

/// The default of [`DbOptions::query_threads`]: the machine's cores, at most
/// [`DEFAULT_QUERY_THREADS_MAX`] (1 when the count is unknown).
#[must_use]
pub fn default_query_threads() -> usize {
    cores_at_most(DEFAULT_QUERY_THREADS_MAX)
}

/// The machine's cores (1 when the count is unknown), at most `max`.
fn cores_at_most(max: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(max)
}

/// Most threads that prepare one [`crate::Db::append_batch`] by default
/// ([`DbOptions::batch_prepare_threads`]); fewer when the machine has fewer cores.
pub const DEFAULT_BATCH_PREPARE_THREADS_MAX: usize = 4;

/// The default of [`DbOptions::batch_prepare_threads`]: the machine's cores, at most
/// [`DEFAULT_BATCH_PREPARE_THREADS_MAX`] (1 when the count is unknown).
#[must_use]
pub fn default_batch_prepare_threads() -> usize {
    cores_at_most(DEFAULT_BATCH_PREPARE_THREADS_MAX)
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            segment_bytes: crate::wal::DEFAULT_SEGMENT_BYTES,
            ring_capacity: DEFAULT_RING_CAPACITY,
            backpressure_timeout: DEFAULT_BACKPRESSURE_TIMEOUT,
            durability: Durability::Durable,
            sync_placement: SyncPlacement::SyncThread,
            batch_records_max: DEFAULT_BATCH_RECORDS_MAX,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            checkpoint_every_records: DEFAULT_CHECKPOINT_EVERY_RECORDS,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            epoch_records_max: DEFAULT_EPOCH_RECORDS_MAX,
            epoch_duration: None,
            snapshot_every_entries: DEFAULT_SNAPSHOT_EVERY_ENTRIES,
            hash_algorithm: HashAlgorithm::Blake3,
            receipt_signatures: ReceiptSignatures::Off,
            key_provider: None,
            payload_encryption: PayloadEncryption::PerSubject,
            payload_cipher: PayloadCipher::default(),
            payload_compression: PayloadCompression::default(),
            kek_provider: None,
            shred_step_hook: None,
            prune_step_hook: None,
            retention: std::collections::BTreeMap::new(),
            pii_policy: None,
            timestamp_policy: TimestampPolicy::Off,
            archive_reads: None,
            query_threads: default_query_threads(),
            batch_prepare_threads: default_batch_prepare_threads(),
        }
    }
}

impl DbOptions {
    /// How many threads read and check one query page's results ([`crate::Db::query`],
    /// [`crate::Db::query_heads`], traces): the calling thread and up to `threads - 1` helper
    /// threads the store starts on its first page of at least 16 candidates. Each result is
    /// read from the log, its bytes hashed and its payload decrypted, independently of the
    /// others, so pages get faster on idle cores (measured on 2 cores, 2 threads: a
    /// tenant + time page of 100 in ~0.65 of the time, for ~9 % more CPU; a page of ~20 gains
    /// little, as a helper's wake-up is a good part of it); the caller never waits for a busy helper (it reads a helper's unfinished items itself), so
    /// on busy cores a page costs about what the caller alone would. `1` (or `0`) reads every
    /// page on the calling thread and starts no thread. Default:
    /// [`default_query_threads`] (the machine's cores, at most 4).
    #[must_use]
    pub fn query_threads(mut self, threads: usize) -> Self {
        self.query_threads = threads;
        self
    }

    /// How many threads prepare the receipts of one [`crate::Db::append_batch`] (encode,
    /// compress, encrypt and hash each, ~10 k instructions per receipt, before anything is
    /// queued): the calling thread and up to `threads - 1` helper threads started for the
    /// batch and finished before the call returns. Batches of fewer than 512 receipts are
    /// prepared by the caller alone: starting and joining a thread (~70 µs on the 2-core test
    /// machine) costs the preparation of 20–40 receipts (1.8–3.1 µs each in `ingest_probe`). Helpers pay off when cores are idle
    /// while the caller prepares, as with one caller that submits a large batch and waits for
    /// it: its writer otherwise waits for the whole batch, and the caller then waits for the
    /// writer. When every core is busy they add only that start. Callers and helpers of one
    /// store count against this limit together (helpers stop when another caller comes in).
    /// The result never depends on this setting. `1` (or `0`) prepares on the calling thread
    /// and starts no thread. Default: [`default_batch_prepare_threads`] (the machine's cores,
    /// at most 4).
    #[must_use]
    pub fn batch_prepare_threads(mut self, threads: usize) -> Self {
        self.batch_prepare_threads = threads;
        self
    }

    /// Reads of entries whose epochs were archived and then dropped locally
    /// ([`Db::prune_archived`](crate::Db::prune_archived)) go through this archive and a local
    /// cache of fetched segments (`archive-cache/`, limited by
    /// [`ArchiveReads::cache_bytes_max`](crate::archive::ArchiveReads::cache_bytes_max)).
    /// Default: none; such reads fail with [`Error::Archived`](crate::Error::Archived).
    #[must_use]
    pub fn archive_reads(mut self, reads: crate::archive::ArchiveReads) -> Self {
        self.archive_reads = Some(reads);
        self
    }

    /// Size of each log segment file (default 64 MiB).
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Submissions the ring buffer holds (default 65 536). Batches
    /// ([`crate::Db::append_batch`]) count by receipts: those in the ring hold at most this
    /// many receipts between them, so one batch holds at most this many.
    #[must_use]
    pub fn ring_capacity(mut self, capacity: usize) -> Self {
        self.ring_capacity = capacity;
        self
    }

    /// How long `append` blocks on a full ring before [`Error::Backpressure`] (default 1 s;
    /// zero never blocks).
    #[must_use]
    pub fn backpressure_timeout(mut self, timeout: Duration) -> Self {
        self.backpressure_timeout = timeout;
        self
    }

    /// When a ticket completes (default [`Durability::Durable`]).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Where a durable group commit's sync runs (default [`SyncPlacement::SyncThread`]).
    /// Ignored with [`Durability::Written`], whose periodic syncs run in the writer.
    #[must_use]
    pub fn sync_placement(mut self, placement: SyncPlacement) -> Self {
        self.sync_placement = placement;
        self
    }

    /// Largest number of entries per group commit (default 8 192).
    #[must_use]
    pub fn batch_records_max(mut self, records: usize) -> Self {
        self.batch_records_max = records;
        self
    }

    /// In [`Durability::Written`] mode, how often the writer syncs (default 100 ms).
    #[must_use]
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// A signed checkpoint after this many entries (default 100 000) ...
    #[must_use]
    pub fn checkpoint_every_records(mut self, records: u64) -> Self {
        self.checkpoint_every_records = records;
        self
    }

    /// ... or after this much time with new entries, whichever comes first (default 1 s).
    #[must_use]
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Seal the epoch after this many entries (default 2^20) ...
    #[must_use]
    pub fn epoch_records_max(mut self, records: u64) -> Self {
        self.epoch_records_max = records;
        self
    }

    /// ... or after this much time (default: no time limit).
    #[must_use]
    pub fn epoch_duration(mut self, duration: Option<Duration>) -> Self {
        self.epoch_duration = duration;
        self
    }

    /// Write the open snapshot (see [`crate::snapshot`]) once this many entries were written
    /// since the last one (default [`DEFAULT_SNAPSHOT_EVERY_ENTRIES`]); also at every epoch
    /// seal and on a clean close. Smaller: shorter opens after a crash, more snapshot writes
    /// (each is the chain state plus the event filter, ~1.25 bytes per receipt).
    #[must_use]
    pub fn snapshot_every_entries(mut self, entries: u64) -> Self {
        self.snapshot_every_entries = entries;
        self
    }

    /// Hash algorithm of a new store (default BLAKE3; SHA-256 for RFC 6962 interop). Fixed at
    /// creation; ignored when opening an existing store.
    #[must_use]
    pub fn hash_algorithm(mut self, algorithm: HashAlgorithm) -> Self {
        self.hash_algorithm = algorithm;
        self
    }

    /// Per-receipt signatures (default off).
    #[must_use]
    pub fn receipt_signatures(mut self, signatures: ReceiptSignatures) -> Self {
        self.receipt_signatures = signatures;
        self
    }

    /// Where the signing key comes from (default: [`FileKeyProvider`] in the data directory).
    #[must_use]
    pub fn key_provider(mut self, provider: Arc<dyn SigningKeyProvider>) -> Self {
        self.key_provider = Some(provider);
        self
    }

    /// Payload encryption of new receipts (default [`PayloadEncryption::PerSubject`]).
    /// Receipts already written keep their form; encrypted ones stay readable whatever this
    /// says.
    #[must_use]
    pub fn payload_encryption(mut self, mode: PayloadEncryption) -> Self {
        self.payload_encryption = mode;
        self
    }

    /// The AEAD that new encrypted payloads are sealed with (default
    /// [`PayloadCipher::Aes256Gcm`]; see [`PayloadCipher`] for why, and for when to pick
    /// [`PayloadCipher::XChaCha20Poly1305`]: CPUs without AES instructions). Each payload
    /// names its cipher, so a store may hold both and reads both whatever this says.
    #[must_use]
    pub fn payload_cipher(mut self, cipher: PayloadCipher) -> Self {
        self.payload_cipher = cipher;
        self
    }

    /// Payload compression of new receipts (default [`PayloadCompression::Off`]; [`PayloadCompression::zstd`] turns it on).
    /// Receipts already written keep their form and stay readable whatever this says; a
    /// retry of a receipt stored under another setting is still recognised as a duplicate.
    #[must_use]
    pub fn payload_compression(mut self, mode: PayloadCompression) -> Self {
        self.payload_compression = mode;
        self
    }

    /// Where the key-encryption key comes from (default: [`FileKekProvider`] in the data
    /// directory's `keys/` folder).
    #[must_use]
    pub fn kek_provider(mut self, provider: Arc<dyn KekProvider>) -> Self {
        self.kek_provider = Some(provider);
        self
    }

    /// Retention policy: receipts whose `retention_class` is `class` are kept `keep` after they
    /// were logged; [`crate::Db::expire`] shreds keys whose receipts have all expired. Classes
    /// the policy does not name never expire (default: no classes).
    #[must_use]
    pub fn retention_class(mut self, class: impl Into<String>, keep: Duration) -> Self {
        self.retention.insert(class.into(), keep);
        self
    }

    /// PII redaction of the clear header (see [`crate::pii`]): `app_id`, `session_id`,
    /// `parent_id` and labels of every receipt appended from now on are redacted by
    /// `policy`, in the appending thread, before the header is encoded or hashed. The policy
    /// is kept with the store (`pii.policy` in the data directory), so every later opener
    /// that does not set one (the command-line tool, say) applies the same rule;
    /// [`PiiPolicy::off`] turns it off for good. Default: whatever the store keeps, which is
    /// off for a new store. Receipts already written keep their form.
    #[must_use]
    pub fn pii_policy(mut self, policy: PiiPolicy) -> Self {
        self.pii_policy = Some(policy);
        self
    }

    /// Whether the store requests RFC 3161 tokens for its epoch seals itself (default
    /// [`TimestampPolicy::Off`]; see there).
    #[must_use]
    pub fn timestamp_policy(mut self, policy: TimestampPolicy) -> Self {
        self.timestamp_policy = policy;
        self
    }

    /// Called at each step of the shred protocol: for crash tests only.
    #[doc(hidden)]
    #[must_use]
    pub fn shred_step_hook(mut self, hook: ShredStepHook) -> Self {
        self.shred_step_hook = Some(hook);
        self
    }

    /// Called at each step of the prune protocol: for crash tests only.
    #[doc(hidden)]
    #[must_use]
    pub fn prune_step_hook(mut self, hook: crate::prune::PruneStepHook) -> Self {
        self.prune_step_hook = Some(hook);
        self
    }

    pub(crate) fn kek_provider_for(&self, data_dir: &std::path::Path) -> Arc<dyn KekProvider> {
        self.kek_provider
            .clone()
            .unwrap_or_else(|| Arc::new(FileKekProvider::in_data_dir(data_dir)))
    }

    pub(crate) fn provider_for(&self, data_dir: &std::path::Path) -> Arc<dyn SigningKeyProvider> {
        self.key_provider
            .clone()
            .unwrap_or_else(|| Arc::new(FileKeyProvider::new(data_dir)))
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |name, reason: &str| {
            Err(Error::InvalidOption {
                name,
                reason: reason.to_owned(),
            })
        };
        if self.ring_capacity == 0 {
            return invalid("ring_capacity", "must be at least 1");
        }
        if self.batch_records_max == 0 {
            return invalid("batch_records_max", "must be at least 1");
        }
        if self.checkpoint_every_records == 0 {
            return invalid("checkpoint_every_records", "must be at least 1");
        }
        if self.snapshot_every_entries == 0 {
            return invalid("snapshot_every_entries", "must be at least 1");
        }
        if self.epoch_records_max < 2 {
            return invalid("epoch_records_max", "must be at least 2");
        }
        if self.checkpoint_interval.is_zero() || self.flush_interval.is_zero() {
            return invalid("checkpoint_interval/flush_interval", "must be above zero");
        }
        if let Some(level) = self.payload_compression.zstd_level()
            && !(1..=22).contains(&level)
        {
            return invalid("payload_compression", "the zstd level must be 1 to 22");
        }
        Ok(())
    }
}
