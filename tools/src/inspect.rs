//! `trailmix-db inspect DIR`: what is inside a store, down to single entries and frames.
//!
//! Read-only and lock-free: it reads the log with [`trailmix_db::wal::WalReader`] and decodes
//! entries itself, so it works on a store that a live service is writing (it sees the prefix
//! written so far). It checks nothing cryptographic; `verify` does.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use trailmix_db::archive::ArchiveReads;
use trailmix_db::entry::{self, EntryKind, NO_TENANT_PREV, flags};
use trailmix_db::keys::{KEYS_DIR, PUBLIC_KEY_FILE, SIGNING_KEY_FILE};
use trailmix_db::keystore::KeyStore;
use trailmix_db::receipt::ReceiptHeader;
use trailmix_db::replay::Genesis;
use trailmix_db::wal::format::{self, SealKind};
use trailmix_db::wal::{Seq, WalReader};

use crate::scan::{self, NoteEntry, NoteFields};
use crate::{
    Paint, ToolError, ToolResult, hex, human_bytes, human_count, paint, rfc3339_ns, wal_dir,
};

/// One segment file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Segment number.
    pub segment: u64,
    /// File name inside `wal/`.
    pub file: String,
    /// First sequence number.
    pub first_seq: u64,
    /// Entries (frames) in it.
    pub entries: u64,
    /// Bytes used by the header and frames.
    pub used_bytes: u64,
    /// Size of the pre-allocated file.
    pub file_bytes: u64,
    /// `open` (being written), `closed` (cleanly closed; grows after a reopen) or `rolled`
    /// (full and sealed for good).
    pub state: &'static str,
}

/// The segments together.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Segments {
    /// Number of segment files.
    pub count: usize,
    /// Bytes used by headers and frames.
    pub used_bytes: u64,
    /// Bytes allocated on disk.
    pub allocated_bytes: u64,
    /// Each segment, in order.
    pub list: Vec<SegmentSummary>,
}

/// Where the store's keys are.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// The checkpoint verifier key recorded in the genesis entry (C2SP vkey text): what
    /// auditors need. `None` when the log has no readable genesis entry.
    pub vkey: Option<String>,
    /// SHA-256 of the Ed25519 public key, hex: what `verify-pack --key-fingerprint` takes and
    /// what an auditor can compare over the phone.
    pub fingerprint: Option<String>,
    /// The public key file.
    pub public_key_file: String,
    /// `matches` (the file holds the genesis key), `differs`, or `missing`.
    pub public_key_file_state: &'static str,
    /// The private signing key file (never read by this tool).
    pub private_key_file: String,
    /// Whether the private key file exists.
    pub private_key_present: bool,
}

/// The RFC 3161 tokens of the sealed epochs in the log.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TimestampsSummary {
    /// Sealed epochs (in the log) with a token.
    pub with_token: u64,
    /// Sealed epochs (in the log) without one.
    pub without_token: Vec<u64>,
    /// The writer's latest failure to get one (`TimestampPolicy::OnSeal`), as it left it in
    /// `timestamps/last-error.txt`: `<unix seconds> epoch <n>: <reason>`.
    pub last_error: Option<String>,
}

/// A sealed epoch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SealedEpochSummary {
    /// The epoch number.
    pub epoch: u64,
    /// Its first sequence number.
    pub first_seq: u64,
    /// Entries (Merkle leaves) in it.
    pub entries: u64,
    /// Its final Merkle root, base64.
    pub root: String,
    /// Sequence number of the seal entry.
    pub seal_seq: u64,
}

/// The epoch being written.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OpenEpochSummary {
    /// The epoch number.
    pub epoch: u64,
    /// Its first sequence number.
    pub first_seq: u64,
    /// Entries (Merkle leaves) so far.
    pub entries: u64,
}

/// Epochs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Epochs {
    /// Sealed epochs, in order.
    pub sealed: Vec<SealedEpochSummary>,
    /// The open epoch.
    pub open: OpenEpochSummary,
    /// The range dropped by `prune` (absent when nothing was pruned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned: Option<PrunedSummary>,
}

/// What `prune` dropped: entries below the horizon, in whole epochs whose seals, roots and
/// leaf hashes are kept in `pruned/`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PrunedSummary {
    /// The first sequence number the log keeps.
    pub horizon: u64,
    /// The pruned epochs, oldest first (their roots are the signed seals' roots).
    pub epochs: Vec<SealedEpochSummary>,
}

/// A name and how many receipts have it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Count {
    /// The name (tenant, model, kind, decision).
    pub name: String,
    /// Receipts.
    pub receipts: u64,
}

/// `inspect DIR`: the whole-store summary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoreSummary {
    /// The data directory.
    pub data_dir: String,
    /// On-disk format version of the log.
    pub format_version: u16,
    /// Store id, hex.
    pub store_id: String,
    /// Hash algorithm of the chain and the Merkle trees (`blake3` or `sha256`).
    pub hash_algorithm: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Origin prefix of the store's checkpoints (`<prefix>/epoch/<n>`).
    pub origin_prefix: Option<String>,
    /// Keys.
    pub public_key: KeyInfo,
    /// Segment files.
    pub segments: Segments,
    /// Entries in the log (receipts, checkpoints, seals, the genesis entry).
    pub entries: u64,
    /// Receipts.
    pub receipts: u64,
    /// Checkpoint entries.
    pub checkpoints: u64,
    /// Epoch seal entries.
    pub epoch_seals: u64,
    /// Bytes of receipt payloads (canonical JSON, as stored).
    pub receipt_payload_bytes: u64,
    /// Receipts whose payload is stored encrypted.
    pub encrypted_receipts: u64,
    /// Receipts whose payload is stored compressed (`DbOptions::payload_compression`).
    pub compressed_receipts: u64,
    /// Shred record entries.
    pub shred_records: u64,
    /// Legal hold and release entries.
    pub hold_records: u64,
    /// The key store's counts (`None`: no key store, or not readable here).
    pub key_store: Option<trailmix_db::keystore::KeyStoreStats>,
    /// Why the key store is there but not readable here (for example a key-encryption key
    /// file that others may read, which the key store refuses), so that "key unavailable"
    /// on reads has a stated cause.
    pub key_store_problem: Option<String>,
    /// Bytes of torn, never-acknowledged tail after the last entry (an interrupted write; the
    /// next writer open erases them).
    pub torn_tail_bytes: u64,
    /// When the writer logged the first and the last entry, RFC 3339.
    pub logged_first: Option<String>,
    /// See `logged_first`.
    pub logged_last: Option<String>,
    /// Epochs.
    pub epochs: Epochs,
    /// The latest checkpoint of the open epoch (`None` when the epoch has none yet).
    pub latest_checkpoint: Option<NoteEntry>,
    /// Distinct tenants.
    pub tenants: u64,
    /// Tenants with the most receipts.
    pub top_tenants: Vec<Count>,
    /// Models with the most receipts (receipts without a model not counted).
    pub top_models: Vec<Count>,
    /// Receipts per kind (`llm_call`, `tool_call`, ...).
    pub receipt_kinds: Vec<Count>,
    /// Receipts that name a model.
    pub receipts_with_model: u64,
    /// Receipts per policy decision (`allow`, `deny`, `escalate`, ...).
    pub decisions: Vec<Count>,
    /// Receipts that carry a policy decision.
    pub receipts_with_decision: u64,
    /// Entries that could not be decoded, or the read error that stopped the scan (run
    /// `verify` for a full check).
    pub problems: Vec<String>,
    /// RFC 3161 tokens of the sealed epochs (`timestamps/`).
    pub timestamps: TimestampsSummary,
    /// The secondary index, as the writer last committed it.
    pub index: IndexSummary,
    /// Bytes on disk per part of the data directory.
    pub disk: DiskUsage,
    /// The open snapshot (`open.snapshot`), as the next open would find it.
    pub open_snapshot: OpenSnapshotSummary,
}

/// Bytes on disk per part of a data directory (file lengths; the log's segments are
/// preallocated, so `log` counts their allocated size).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DiskUsage {
    /// `wal/`: the log's segments and metadata.
    pub log: u64,
    /// `index/`: the secondary index (derived from the log).
    pub index: u64,
    /// `keystore/`: the wrapped data keys.
    pub key_store: u64,
    /// `keys/`: the signing key and key-encryption keys.
    pub keys: u64,
    /// `proofs/`: the sealed epochs' proof tables (derived from the log).
    pub proof_tables: u64,
    /// `pruned/`: what pruning keeps of dropped epochs (seals, roots, leaf hashes).
    pub pruned: u64,
    /// Everything in the data directory.
    pub total: u64,
    /// What the file system has allocated to `wal/` (blocks; Unix `st_blocks` × 512): a
    /// sparse file counts only what was written, a pre-allocated one all of it.
    pub log_allocated: u64,
    /// The same for `index/`: redb grows its file sparsely, so this can be well below `index`.
    pub index_allocated: u64,
    /// The same for the whole data directory.
    pub total_allocated: u64,
}

/// The bytes of every file under `dir` (0 when it does not exist).
fn dir_bytes(dir: &Path) -> u64 {
    dir_sum(dir, std::fs::Metadata::len)
}

/// The bytes the file system allocated to every file under `dir`.
fn dir_allocated_bytes(dir: &Path) -> u64 {
    dir_sum(dir, trailmix_db::allocated_bytes)
}

fn dir_sum(dir: &Path, size: fn(&std::fs::Metadata) -> u64) -> u64 {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return 0;
    };
    listing
        .filter_map(Result::ok)
        .map(|item| match item.file_type() {
            Ok(kind) if kind.is_dir() => dir_sum(&item.path(), size),
            Ok(_) => item.metadata().map_or(0, |m| size(&m)),
            Err(_) => 0,
        })
        .sum()
}

fn disk_usage(data_dir: &Path) -> DiskUsage {
    DiskUsage {
        log: dir_bytes(&data_dir.join(trailmix_db::WAL_DIR)),
        index: dir_bytes(&data_dir.join(trailmix_db::indexer::INDEX_DIR)),
        key_store: dir_bytes(&data_dir.join(trailmix_db::keystore::KEYSTORE_DIR)),
        keys: dir_bytes(&data_dir.join(KEYS_DIR)),
        proof_tables: dir_bytes(&data_dir.join(trailmix_db::PROOF_DIR)),
        pruned: dir_bytes(&data_dir.join(trailmix_db::prune::PRUNED_DIR)),
        total: dir_bytes(data_dir),
        log_allocated: dir_allocated_bytes(&data_dir.join(trailmix_db::WAL_DIR)),
        index_allocated: dir_allocated_bytes(&data_dir.join(trailmix_db::indexer::INDEX_DIR)),
        total_allocated: dir_allocated_bytes(data_dir),
    }
}

/// The open snapshot in `inspect`: what the next writer open would start from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OpenSnapshotSummary {
    /// `present` (decodes and lies inside the log), `absent`, `not_used` (the store was
    /// pruned or archived, which snapshots do not cover), or `unusable` (damaged or beyond the
    /// log's end). An open replays the whole retained log unless it is `present`.
    pub state: &'static str,
    /// The last entry it covers (`None` when absent or unreadable).
    pub seq: Option<u64>,
    /// The file's size in bytes (0 when absent).
    pub file_bytes: u64,
    /// Why it is unusable, if so. Whether its chain hash matches the log's is only checked
    /// by an open.
    pub problem: Option<String>,
}

/// Reads the open snapshot's header and checksum (not the log entry it names).
fn open_snapshot_summary(data_dir: &Path, log_end: u64, pruned: bool) -> OpenSnapshotSummary {
    use trailmix_db::snapshot::{SnapshotError, read};
    let unusable = |seq: Option<u64>, file_bytes: u64, problem: String| OpenSnapshotSummary {
        state: "unusable",
        seq,
        file_bytes,
        problem: Some(problem),
    };
    match read(data_dir) {
        // Whether or not a file from before the prune is still there (writers since remove it).
        Ok(found) if pruned => OpenSnapshotSummary {
            state: "not_used",
            seq: found.as_ref().map(|(snapshot, _)| snapshot.seq.0),
            file_bytes: found.map_or(0, |(_, bytes)| bytes),
            problem: Some(SnapshotError::Pruned.to_string()),
        },
        Ok(None) => OpenSnapshotSummary {
            state: "absent",
            seq: None,
            file_bytes: 0,
            problem: None,
        },
        Ok(Some((snapshot, bytes))) if snapshot.seq.0 >= log_end => unusable(
            Some(snapshot.seq.0),
            bytes,
            SnapshotError::BeyondLogEnd {
                seq: snapshot.seq,
                log_end: Seq(log_end),
            }
            .to_string(),
        ),
        Ok(Some((snapshot, bytes))) => OpenSnapshotSummary {
            state: "present",
            seq: Some(snapshot.seq.0),
            file_bytes: bytes,
            problem: None,
        },
        Err(err) => unusable(
            None,
            std::fs::metadata(data_dir.join(trailmix_db::snapshot::SNAPSHOT_FILE))
                .map_or(0, |m| m.len()),
            err.to_string(),
        ),
    }
}

/// The index's state in `inspect`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IndexSummary {
    /// The index file.
    pub file: String,
    /// Its size in bytes (0 when missing).
    pub file_bytes: u64,
    /// The index covers every entry before this sequence number (`None` when unreadable).
    pub watermark: Option<u64>,
    /// Entries of the log it does not cover yet (a live writer's index trails by a moment;
    /// a stopped store's index is caught up when a writer next opens it).
    pub lag_entries: Option<u64>,
    /// Why it could not be read, if so.
    pub problem: Option<String>,
}

/// Reads the index's watermark read-only (works beside a live writer).
fn read_watermark(data_dir: &Path) -> Result<u64, String> {
    trailmix_db::ReadOnlyStore::store_index_watermark(data_dir)
        .map(|mark| mark.0)
        .map_err(|err| err.to_string())
}

/// The index file and how far `watermark` trails `log_end` (the seq after the last entry).
fn index_summary(data_dir: &Path, watermark: Result<u64, String>, log_end: u64) -> IndexSummary {
    let path = data_dir
        .join(trailmix_db::indexer::INDEX_DIR)
        .join(trailmix_db::indexer::INDEX_FILE);
    let file_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    let (watermark, problem) = match watermark {
        Ok(mark) => (Some(mark), None),
        Err(err) => (None, Some(err)),
    };
    IndexSummary {
        file: path.display().to_string(),
        file_bytes,
        watermark,
        lag_entries: watermark.map(|w| log_end.saturating_sub(w)),
        problem,
    }
}

fn top(map: HashMap<String, u64>, limit: usize) -> Vec<Count> {
    let mut counts: Vec<Count> = map
        .into_iter()
        .map(|(name, receipts)| Count { name, receipts })
        .collect();
    counts.sort_by(|a, b| b.receipts.cmp(&a.receipts).then(a.name.cmp(&b.name)));
    counts.truncate(limit);
    counts
}

const PROBLEMS_MAX: usize = 10;

fn segment_state(seal: Option<SealKind>) -> &'static str {
    match seal {
        None => "open",
        Some(SealKind::Closed) => "closed",
        Some(SealKind::Rolled) => "rolled",
    }
}

fn key_info(data_dir: &Path, vkey: Option<&str>) -> KeyInfo {
    let public_path = data_dir.join(PUBLIC_KEY_FILE);
    let private_path = data_dir.join(KEYS_DIR).join(SIGNING_KEY_FILE);
    let state = match std::fs::read_to_string(&public_path) {
        Ok(text) if Some(text.trim()) == vkey => "matches",
        Ok(_) => "differs",
        Err(_) => "missing",
    };
    let fingerprint = vkey
        .and_then(|v| trailmix_db::note::NoteVerifier::from_vkey(v).ok())
        .map(|v| trailmix_db::pack::key_fingerprint(&v));
    KeyInfo {
        vkey: vkey.map(str::to_owned),
        fingerprint,
        public_key_file: public_path.display().to_string(),
        public_key_file_state: state,
        private_key_file: private_path.display().to_string(),
        private_key_present: private_path.is_file(),
    }
}

#[derive(Default)]
struct Tally {
    entries: u64,
    receipts: u64,
    checkpoints: u64,
    seals: u64,
    shreds: u64,
    holds: u64,
    encrypted: u64,
    compressed: u64,
    payload_bytes: u64,
    first_logged: Option<u64>,
    last_logged: Option<u64>,
    sealed: Vec<SealedEpochSummary>,
    open_first_seq: u64,
    latest_checkpoint: Option<NoteEntry>,
    tenants: HashMap<String, u64>,
    models: HashMap<String, u64>,
    with_model: u64,
    with_decision: u64,
    kinds: HashMap<String, u64>,
    decisions: HashMap<String, u64>,
    problems: Vec<String>,
}

impl Tally {
    fn problem(&mut self, text: String) {
        if self.problems.len() < PROBLEMS_MAX {
            self.problems.push(text);
        }
    }

    fn add(&mut self, seq: Seq, kind_byte: u8, bytes: &[u8]) {
        self.entries += 1;
        let entry = match scan::decode(kind_byte, bytes) {
            Ok(entry) => entry,
            Err(err) => return self.problem(format!("seq {seq}: {err}")),
        };
        self.first_logged.get_or_insert(entry.chain.logged_at_ns);
        self.last_logged = Some(entry.chain.logged_at_ns);
        match entry.kind {
            EntryKind::Genesis | EntryKind::Prune | EntryKind::Archive => {}
            EntryKind::Receipt => {
                self.receipts += 1;
                self.payload_bytes += entry.payload.len() as u64;
                self.encrypted += u64::from(entry.flags & flags::PAYLOAD_ENCRYPTED != 0);
                self.compressed += u64::from(entry.flags & flags::PAYLOAD_COMPRESSED != 0);
                match ReceiptHeader::decode(entry.header) {
                    Ok(header) => self.count_header(&header),
                    Err(err) => self.problem(format!("seq {seq}: receipt header: {err}")),
                }
            }
            EntryKind::Checkpoint => {
                self.checkpoints += 1;
                self.latest_checkpoint = scan::note_entry(seq, kind_byte, bytes);
            }
            EntryKind::EpochSeal => {
                self.seals += 1;
                match scan::note_fields(entry.payload) {
                    Ok(fields) => self.sealed.push(SealedEpochSummary {
                        epoch: entry.chain.epoch,
                        first_seq: fields.seal_first_seq.unwrap_or(self.open_first_seq),
                        entries: fields.tree_size,
                        root: fields.root,
                        seal_seq: seq.0,
                    }),
                    Err(err) => self.problem(format!("seq {seq}: epoch seal: {err}")),
                }
                self.open_first_seq = seq.0 + 1;
                self.latest_checkpoint = None;
            }
            EntryKind::Shred => self.shreds += 1,
            EntryKind::Hold => self.holds += 1,
        }
    }

    fn count_header(&mut self, header: &ReceiptHeader) {
        let bump = |map: &mut HashMap<String, u64>, key: &str| {
            if let Some(n) = map.get_mut(key) {
                *n += 1;
            } else {
                map.insert(key.to_owned(), 1);
            }
        };
        bump(&mut self.tenants, header.tenant_id());
        bump(&mut self.kinds, header.kind().as_str());
        if let Some(model) = header.model_name() {
            self.with_model += 1;
            bump(&mut self.models, model);
        }
        if let Some(decision) = header.decision() {
            self.with_decision += 1;
            bump(&mut self.decisions, decision.as_str());
        }
    }
}

/// The segment list, before the scan fills in entries and bytes used.
fn segment_summaries(reader: &WalReader) -> Vec<SegmentSummary> {
    reader
        .segments()
        .iter()
        .map(|info| SegmentSummary {
            segment: info.header.segment_no.0,
            file: info.file_name.clone(),
            first_seq: info.header.first_seq.0,
            entries: 0,
            used_bytes: format::SEGMENT_HEADER_BYTES,
            file_bytes: info.header.segment_bytes,
            state: segment_state(info.seal.map(|s| s.kind)),
        })
        .collect()
}

/// The pruned range, from the retained state (read-only).
fn pruned_summary(
    data_dir: &Path,
    alg: trailmix_db::wal::HashAlgorithm,
) -> ToolResult<Option<PrunedSummary>> {
    let retained =
        trailmix_db::prune::load_retained(data_dir, alg, trailmix_db::prune::MANIFEST_FILE)
            .map_err(|e| ToolError::store(data_dir, &e))?;
    Ok(retained.map(|r| PrunedSummary {
        horizon: r.horizon.0,
        epochs: r
            .epochs
            .iter()
            .map(|e| {
                let seal = scan::decode(EntryKind::EpochSeal as u8, &e.seal_entry)
                    .ok()
                    .and_then(|entry| scan::note_fields(entry.payload).ok());
                SealedEpochSummary {
                    epoch: e.epoch.0,
                    first_seq: e.first_seq.0,
                    entries: e.leaves.len() as u64,
                    root: seal.map(|f| f.root).unwrap_or_default(),
                    seal_seq: e.seal_seq().0,
                }
            })
            .collect(),
    }))
}

/// Reads the summary of the store in `data_dir` (read-only; works while a writer runs).
/// `top_n` bounds the tenant and model lists.
///
/// # Errors
/// [`ToolError`] when there is no store or its log cannot be opened.
pub fn summary(data_dir: &Path, top_n: usize) -> ToolResult<StoreSummary> {
    // The watermark before the log: a live writer only moves both forward, so the scan that
    // follows sees at least what the index covers and the lag is never negative.
    let watermark = read_watermark(data_dir);
    let reader = scan::open_reader(data_dir)?;
    let mut segments = segment_summaries(&reader);
    let pruned = pruned_summary(data_dir, reader.meta().hash_algorithm)?;
    let mut tally = Tally {
        open_first_seq: pruned.as_ref().map_or(0, |p| p.horizon),
        ..Tally::default()
    };
    let first_no = segments.first().map_or(0, |s| s.segment);
    let key_store = KeyStore::open_for_reading(data_dir);
    let scanned = reader.scan(Seq(0), |record| {
        let index = usize::try_from(record.position.segment.0.saturating_sub(first_no));
        if let Some(segment) = index.ok().and_then(|i| segments.get_mut(i)) {
            segment.entries += 1;
            segment.used_bytes =
                record.position.offset + format::frame_bytes(record.payload.len() as u64);
        }
        tally.add(record.seq, record.kind.get(), record.payload);
        ControlFlow::Continue(())
    });
    let mut torn_tail_bytes = 0;
    if let Err(err) = scanned {
        tally.problem(format!("the scan stopped: {err}"));
    } else {
        // The scan ends quietly at the first invalid frame of the last segment; the log's own
        // check tells a torn tail (never acknowledged) from damage.
        match reader.verify() {
            Ok(report) => torn_tail_bytes = report.torn_tail_bytes,
            Err(err) => tally.problem(format!("the log ends early: {err}")),
        }
    }
    let genesis = scan::genesis(&reader, data_dir);
    let meta = reader.meta();
    let created = std::time::UNIX_EPOCH + std::time::Duration::from_millis(meta.created_unix_ms);
    let horizon = pruned.as_ref().map_or(0, |p| p.horizon);
    let open_snapshot = open_snapshot_summary(data_dir, horizon + tally.entries, pruned.is_some());
    let open_epoch = tally
        .sealed
        .last()
        .or(pruned.as_ref().and_then(|p| p.epochs.last()))
        .map_or(0, |s| s.epoch + 1);
    let timestamps = timestamps_summary(data_dir, &tally.sealed);
    Ok(StoreSummary {
        data_dir: data_dir.display().to_string(),
        format_version: format::FORMAT_VERSION,
        store_id: meta.store_id.to_string(),
        hash_algorithm: meta.hash_algorithm.to_string(),
        created: humantime::format_rfc3339_seconds(created).to_string(),
        origin_prefix: genesis.as_ref().map(|g| g.origin_prefix.clone()),
        public_key: key_info(data_dir, genesis.as_ref().map(|g| g.verifier_key.as_str())),
        segments: Segments {
            count: segments.len(),
            used_bytes: segments.iter().map(|s| s.used_bytes).sum(),
            allocated_bytes: segments.iter().map(|s| s.file_bytes).sum(),
            list: segments,
        },
        entries: tally.entries,
        receipts: tally.receipts,
        checkpoints: tally.checkpoints,
        epoch_seals: tally.seals,
        receipt_payload_bytes: tally.payload_bytes,
        encrypted_receipts: tally.encrypted,
        compressed_receipts: tally.compressed,
        shred_records: tally.shreds,
        hold_records: tally.holds,
        key_store: key_store
            .as_ref()
            .ok()
            .and_then(|k| k.as_ref().map(KeyStore::stats)),
        key_store_problem: key_store.err().map(|e| e.to_string()),
        torn_tail_bytes,
        logged_first: tally.first_logged.map(rfc3339_ns),
        logged_last: tally.last_logged.map(rfc3339_ns),
        epochs: Epochs {
            open: OpenEpochSummary {
                epoch: open_epoch,
                first_seq: tally.open_first_seq,
                entries: (horizon + tally.entries).saturating_sub(tally.open_first_seq),
            },
            sealed: tally.sealed,
            pruned,
        },
        latest_checkpoint: tally.latest_checkpoint,
        tenants: tally.tenants.len() as u64,
        top_tenants: top(tally.tenants, top_n),
        top_models: top(tally.models, top_n),
        receipts_with_model: tally.with_model,
        receipt_kinds: top(tally.kinds, usize::MAX),
        decisions: top(tally.decisions, usize::MAX),
        receipts_with_decision: tally.with_decision,
        timestamps,
        problems: tally.problems,
        index: index_summary(data_dir, watermark, horizon + tally.entries),
        disk: disk_usage(data_dir),
        open_snapshot,
    })
}

fn print_counts(title: &str, counts: &[Count], total: u64, width: usize) {
    if counts.is_empty() {
        return;
    }
    println!();
    println!("{title}");
    for c in counts {
        #[allow(clippy::cast_precision_loss)]
        let share = if total == 0 {
            0.0
        } else {
            c.receipts as f64 * 100.0 / total as f64
        };
        println!(
            "  {:<width$}  {:>12}  {share:>5.1} %",
            c.name,
            human_count(c.receipts)
        );
    }
}

fn print_note(note: &str) {
    for line in note.lines() {
        if line.is_empty() {
            println!();
        } else {
            println!("    {line}");
        }
    }
}

fn timestamps_summary(data_dir: &Path, sealed: &[SealedEpochSummary]) -> TimestampsSummary {
    use trailmix_db::timestamp::{LAST_ERROR_FILE, TIMESTAMP_DIR, token_path};
    let (with, without): (Vec<u64>, Vec<u64>) = sealed
        .iter()
        .map(|e| e.epoch)
        .partition(|&epoch| token_path(data_dir, trailmix_db::Epoch(epoch)).is_file());
    let last_error = std::fs::read_to_string(data_dir.join(TIMESTAMP_DIR).join(LAST_ERROR_FILE))
        .ok()
        .map(|text| text.trim_end().to_owned());
    TimestampsSummary {
        with_token: with.len() as u64,
        without_token: without,
        last_error,
    }
}

/// Prints a summary for people.
pub fn print_summary(s: &StoreSummary) {
    print_identity(s);
    print_layout(s);
    print_breakdown(s);
}

/// Encryption, shreds, holds and the key store.
fn print_erasure(s: &StoreSummary) {
    println!(
        "erasure         {} of {} receipts encrypted; {} shred record(s), {} legal hold record(s)",
        human_count(s.encrypted_receipts),
        human_count(s.receipts),
        human_count(s.shred_records),
        human_count(s.hold_records)
    );
    if s.compressed_receipts > 0 {
        println!(
            "compression     {} of {} receipts' payloads stored compressed (zstd)",
            human_count(s.compressed_receipts),
            human_count(s.receipts)
        );
    }
    match &s.key_store {
        Some(k) => println!(
            "key store       {} live data key(s), {} shredded; wrapped by key-encryption key {}",
            human_count(k.live_keys as u64),
            human_count(k.shredded_keys as u64),
            k.kek_id
        ),
        None => match &s.key_store_problem {
            Some(problem) => println!("key store       not readable here: {problem}"),
            None => println!("key store       none (no data keys in this store)"),
        },
    }
}

/// The index line and the disk usage line of the summary.
fn print_index_and_disk(s: &StoreSummary) {
    match (s.index.watermark, s.index.lag_entries, &s.index.problem) {
        (Some(0), Some(0), _) => println!(
            "index           current: the log is empty ({})",
            human_bytes(s.index.file_bytes)
        ),
        (Some(mark), Some(0), _) => println!(
            "index           current: covers the log up to seq {} ({})",
            human_count(mark - 1),
            human_bytes(s.index.file_bytes)
        ),
        (Some(mark), Some(lag), _) => println!(
            "index           covers entries before seq {}: {} newer entries not indexed yet ({})",
            human_count(mark),
            human_count(lag),
            human_bytes(s.index.file_bytes)
        ),
        (_, _, problem) => println!(
            "index           {}",
            paint(
                // The engine's error already says how to recover (a writer open).
                &format!("unreadable: {}", problem.as_deref().unwrap_or("unknown")),
                Paint::Warn
            )
        ),
    }
    print_open_snapshot(&s.open_snapshot);
    let d = &s.disk;
    println!(
        "disk            {} in all: log {}, index {}, key store {}, keys {}, proof tables {}{}",
        human_bytes(d.total),
        human_bytes(d.log),
        human_bytes(d.index),
        human_bytes(d.key_store),
        human_bytes(d.keys),
        human_bytes(d.proof_tables),
        if d.pruned == 0 {
            String::new()
        } else {
            format!(", pruned {}", human_bytes(d.pruned))
        }
    );
    println!(
        "allocated       {} in all: log {}, index {} (file system blocks; the line above \
         counts file lengths)",
        human_bytes(d.total_allocated),
        human_bytes(d.log_allocated),
        human_bytes(d.index_allocated),
    );
}

fn print_open_snapshot(o: &OpenSnapshotSummary) {
    match (o.state, o.seq, &o.problem) {
        ("present", Some(seq), _) => println!(
            "open snapshot   covers entries up to seq {} ({}): the next open replays only the \
             entries after it",
            human_count(seq),
            human_bytes(o.file_bytes)
        ),
        ("not_used", _, _) => println!(
            "open snapshot   not used: the store was pruned or archived, so an open replays the \
             retained log"
        ),
        ("absent", _, _) => println!(
            "open snapshot   none: the next open replays the whole log (a writer writes one at \
             each seal, every {} entries by default and on a clean close)",
            human_count(trailmix_db::DEFAULT_SNAPSHOT_EVERY_ENTRIES)
        ),
        (_, _, problem) => println!(
            "open snapshot   {}",
            paint(
                &format!(
                    "unusable, the next open ignores it and replays the whole log: {}",
                    problem.as_deref().unwrap_or("unknown")
                ),
                Paint::Warn
            )
        ),
    }
}

fn print_identity(s: &StoreSummary) {
    println!("store           {}", s.data_dir);
    println!("store id        {}", s.store_id);
    println!(
        "format          log format {}, {} hash chain and Merkle trees, created {}",
        s.format_version, s.hash_algorithm, s.created
    );
    match &s.public_key.vkey {
        Some(vkey) => {
            println!("public key      {vkey}");
            if let Some(fingerprint) = &s.public_key.fingerprint {
                println!("fingerprint     {fingerprint} (SHA-256 of the public key)");
            }
        }
        None => println!("public key      unknown: the log has no readable genesis entry"),
    }
    let file_note = match s.public_key.public_key_file_state {
        "matches" => "holds this key",
        "differs" => "holds a DIFFERENT key (verify reports this)",
        _ => "is missing",
    };
    println!(
        "                {} {file_note}; private key {} ({})",
        s.public_key.public_key_file,
        s.public_key.private_key_file,
        if s.public_key.private_key_present {
            "present"
        } else {
            "not here"
        }
    );
    let other = s
        .entries
        .saturating_sub(s.receipts + s.checkpoints + s.epoch_seals);
    let first = s.epochs.pruned.as_ref().map_or(0, |p| p.horizon);
    println!(
        "entries         {} (seq {first} to {}): {}, {}, {}, {} (genesis, shred, hold and prune \
         records)",
        human_count(s.entries),
        (first + s.entries).saturating_sub(1),
        counted(s.receipts, "receipt", "receipts"),
        counted(s.checkpoints, "checkpoint", "checkpoints"),
        counted(s.epoch_seals, "epoch seal", "epoch seals"),
        counted(other, "other entry", "other entries"),
    );
    if let (Some(first), Some(last)) = (&s.logged_first, &s.logged_last) {
        println!("logged          {first} .. {last}");
    }
    print_erasure(s);
    println!(
        "size            {} of receipt payloads; {} used of {} allocated in {} segment(s)",
        human_bytes(s.receipt_payload_bytes),
        human_bytes(s.segments.used_bytes),
        human_bytes(s.segments.allocated_bytes),
        s.segments.count
    );
    print_index_and_disk(s);
    if s.torn_tail_bytes > 0 {
        println!(
            "torn tail       {} bytes after the last entry were never acknowledged (an interrupted",
            human_count(s.torn_tail_bytes)
        );
        println!("                write, not tampering); the next writer open erases them");
    }
    if !s.problems.is_empty() {
        println!(
            "{}",
            paint(
                &format!(
                    "problems        the counts below stop at the first one; run `trailmix-db verify {}`",
                    s.data_dir
                ),
                Paint::Bad
            )
        );
        for p in &s.problems {
            println!("                {p}");
        }
    }
}

fn print_layout(s: &StoreSummary) {
    println!();
    println!(
        "{:>4}  {:<26} {:>12} {:>10} {:>11} {:>11}  state",
        "#", "segment file", "first seq", "entries", "used", "size"
    );
    for seg in &s.segments.list {
        println!(
            "{:>4}  {:<26} {:>12} {:>10} {:>11} {:>11}  {}",
            seg.segment,
            seg.file,
            seg.first_seq,
            seg.entries,
            human_bytes(seg.used_bytes),
            human_bytes(seg.file_bytes),
            seg.state
        );
    }

    println!();
    println!("epochs (each has its own Merkle tree; a seal signs its final root)");
    if let Some(pruned) = &s.epochs.pruned {
        println!(
            "  horizon      seq {}: {} epoch(s) below it pruned under policy (seals, roots and \
             leaf hashes kept in pruned/)",
            pruned.horizon,
            pruned.epochs.len()
        );
        for e in &pruned.epochs {
            print_sealed_epoch(e, "pruned");
        }
    }
    for e in &s.epochs.sealed {
        print_sealed_epoch(e, "sealed");
    }
    let open = &s.epochs.open;
    println!(
        "  epoch {:<4} open    from seq {} ({} entries so far)",
        open.epoch,
        open.first_seq,
        human_count(open.entries)
    );
    print_timestamps(&s.timestamps);

    println!();
    match &s.latest_checkpoint {
        Some(c) => {
            println!(
                "checkpoint      latest at seq {}: epoch {}, tree size {}, logged {}",
                c.seq,
                c.epoch,
                human_count(c.tree_size),
                c.logged_at
            );
            print_note(&c.note);
        }
        None => println!("checkpoint      none in the open epoch yet"),
    }
}

fn print_timestamps(t: &TimestampsSummary) {
    let without = if t.without_token.is_empty() {
        String::new()
    } else {
        format!(
            "; without one: epoch {}",
            t.without_token
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    println!(
        "timestamps      {} of {} sealed epoch(s) have an RFC 3161 token{without}",
        t.with_token,
        t.with_token + t.without_token.len() as u64
    );
    if let Some(error) = &t.last_error {
        println!(
            "  last failure  {error} (the writer retries; `timestamp DIR --tsa URL` fetches by hand)"
        );
    }
}

/// One sealed (or pruned) epoch's line.
fn print_sealed_epoch(e: &SealedEpochSummary, state: &str) {
    println!(
        "  epoch {:<4} {state:<7} seq {} to {} ({} entries), root {}, seal at seq {}",
        e.epoch,
        e.first_seq,
        (e.first_seq + e.entries).saturating_sub(1),
        human_count(e.entries),
        e.root,
        e.seal_seq
    );
}

fn print_breakdown(s: &StoreSummary) {
    let width = [
        &s.top_tenants,
        &s.top_models,
        &s.receipt_kinds,
        &s.decisions,
    ]
    .iter()
    .flat_map(|list| list.iter().map(|c| c.name.len()))
    .max()
    .unwrap_or(0)
    .max(16);
    print_counts(
        &format!(
            "tenants: {} in all; share of all receipts",
            human_count(s.tenants)
        ),
        &s.top_tenants,
        s.receipts,
        width,
    );
    print_counts(
        "models: share of receipts that name a model",
        &s.top_models,
        s.receipts_with_model,
        width,
    );
    print_counts(
        "receipt kinds: share of all receipts",
        &s.receipt_kinds,
        s.receipts,
        width,
    );
    print_counts(
        "policy decisions: share of receipts that carry a decision",
        &s.decisions,
        s.receipts_with_decision,
        width,
    );
}

/// `inspect DIR --seq S`: one entry, decoded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EntryDetail {
    /// Sequence number.
    pub seq: u64,
    /// `genesis`, `receipt`, `checkpoint` or `epoch_seal`.
    pub kind: String,
    /// Segment holding the frame.
    pub segment: u64,
    /// Byte offset of the frame in the segment file.
    pub offset: u64,
    /// Bytes of the frame (header, entry, padding).
    pub frame_bytes: u64,
    /// Bytes of the entry inside the frame.
    pub entry_bytes: u64,
    /// Chain fields, digests and flags; `None` when the entry does not decode.
    pub chain: Option<ChainDetail>,
    /// The receipt header as event JSON (receipts).
    pub header: Option<Value>,
    /// The payload as JSON (receipts: the canonical payload; genesis: its record); `None`
    /// when encrypted or not JSON.
    pub payload: Option<Value>,
    /// Payload bytes.
    pub payload_bytes: u64,
    /// Byte offset of the payload in the segment file.
    pub payload_offset: u64,
    /// For an encrypted receipt: `decrypted`, `shredded` or `key unavailable`.
    pub payload_state: Option<&'static str>,
    /// For an encrypted receipt: the AEAD its payload format byte names (`AES-256-GCM`,
    /// `XChaCha20-Poly1305`) and the id of the data key it names.
    pub payload_cipher: Option<&'static str>,
    /// See `payload_cipher`.
    pub payload_key_id: Option<u64>,
    /// The signed note text (checkpoints and seals).
    pub note: Option<String>,
    /// The note's fields (checkpoints and seals; signature not checked here).
    pub checkpoint: Option<NoteFields>,
    /// Why the entry could not be decoded.
    pub problem: Option<String>,
}

/// The chain part of an entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChainDetail {
    /// The entry format version: 2 stores its content and payload digests, 3 (every entry
    /// this build writes) stores none and they are computed from its bytes.
    pub entry_version: u8,
    /// The epoch whose tree holds it.
    pub epoch: u64,
    /// When the writer logged it, RFC 3339.
    pub logged_at: String,
    /// The same, nanoseconds since the Unix epoch.
    pub logged_at_ns: u64,
    /// This entry's chain hash (computed), hex; the Merkle leaf hashes it.
    pub chain_hash: String,
    /// The previous entry's chain hash, hex.
    pub prev_chain_hash: String,
    /// The tenant's previous receipt (receipts; `None` for the tenant's first).
    pub tenant_prev_seq: Option<u64>,
    /// Its chain hash, hex.
    pub tenant_prev_hash: Option<String>,
    /// Digest of kind, (since entry version 3) flags, header and payload digest, hex: stored
    /// in a version 2 entry, computed for version 3.
    pub content_digest: String,
    /// Digest of the payload bytes, hex (stored in version 2, computed for version 3).
    pub payload_digest: String,
    /// The payload is encrypted.
    pub encrypted: bool,
    /// The payload is compressed (a zstd frame, inside the encryption when both).
    pub compressed: bool,
    /// The receipt carries its own Ed25519 signature.
    pub signed: bool,
}

/// A version 2 entry's stored payload digest; a version 3 entry's, computed (none stored).
fn stored_or_computed_payload_digest(
    alg: trailmix_db::wal::HashAlgorithm,
    entry: &entry::EntryRef<'_>,
) -> [u8; 32] {
    entry.stored.map_or_else(
        || entry::payload_digest(alg, entry.payload),
        |s| s.payload_digest,
    )
}

/// Why entry `seq` cannot be read: no such entry, or damage the readable log ends at.
fn unreadable_entry(
    data_dir: &Path,
    reader: &trailmix_db::wal::WalReader,
    seq: Seq,
    err: trailmix_db::wal::Error,
) -> ToolError {
    match err {
        trailmix_db::wal::Error::SeqOutOfRange { first, end, .. } => match reader.check_tail() {
            // The readable log ends early because a frame is damaged, not because the
            // store has no such entry.
            Err(damage @ trailmix_db::wal::Error::Corrupted { .. }) => ToolError::new(format!(
                "entry {seq} cannot be read: the log is damaged at seq {end} or before it \
                 ({damage})"
            ))
            .hint(format!(
                "`trailmix-db verify {dir}` names the first bad place; `trailmix-db inspect \
                 {dir} --segment 0` lists the frames up to it",
                dir = data_dir.display()
            )),
            // Below the first kept entry: the epoch was pruned, and maybe archived first.
            _ if seq < first => ToolError::new(format!(
                "entry {seq} was dropped from this store: its log starts at seq {} (pruned)",
                first.0
            ))
            .hint(
                "if its epoch was archived (`prune --archived`), read it with `--archive URL`; \
                 `trailmix-db inspect DIR` shows the horizon",
            ),
            _ => ToolError::new(match end.0 {
                0 => format!("the store has no entry {seq}: its log is empty"),
                n => format!(
                    "the store has no entry {seq}: it holds seq {first} to {}",
                    n - 1,
                    first = first.0
                ),
            }),
        },
        other => ToolError::wal(data_dir, &other),
    }
}

/// A receipt's payload into `detail`: decrypted (with the store's keys) and decompressed as
/// its flags say, or the problem.
fn receipt_payload(data_dir: &Path, entry: &entry::EntryRef<'_>, detail: &mut EntryDetail) {
    let encrypted = entry.flags & flags::PAYLOAD_ENCRYPTED != 0;
    if encrypted
        && let Ok((cipher, key_id)) = trailmix_db::crypto::payload_cipher_and_key_id(entry.payload)
    {
        detail.payload_cipher = Some(cipher.name());
        detail.payload_key_id = Some(key_id.0);
    }
    let keys = encrypted.then(|| scan::open_keys(data_dir)).flatten();
    match trailmix_db::shred::open_payload(keys.as_ref(), entry.flags, entry.header, entry.payload)
    {
        Ok((plain, state)) => {
            detail.payload = serde_json::from_slice(&plain).ok();
            if encrypted {
                detail.payload_state = Some(state.name());
            }
        }
        Err(err) if encrypted => detail.problem = Some(format!("encrypted payload: {err}")),
        Err(err) => detail.problem = Some(format!("payload: {err}")),
    }
}

/// One entry by sequence number; with `archive`, an entry of an epoch dropped locally is read
/// from it (through the store's cache).
///
/// # Errors
/// [`ToolError`] when there is no store or no entry `seq`.
pub fn entry_detail(
    data_dir: &Path,
    seq: Seq,
    archive: Option<ArchiveReads>,
) -> ToolResult<EntryDetail> {
    let reader = scan::open_reader(data_dir)?;
    let alg = reader.meta().hash_algorithm;
    let local_first = reader
        .segments()
        .first()
        .map_or(Seq(0), |s| s.header.first_seq);
    let record = match archive {
        Some(archive) if seq < local_first => trailmix_db::ReadOnlyStore::open(data_dir)
            .and_then(|store| store.with_archive_reads(archive))
            .and_then(|store| store.record(seq))
            .map_err(|e| ToolError::store(data_dir, &e))?,
        _ => reader
            .read(seq)
            .map_err(|e| unreadable_entry(data_dir, &reader, seq, e))?,
    };
    let payload_len = record.payload.len() as u64;
    let mut detail = EntryDetail {
        seq: seq.0,
        kind: scan::kind_name(record.kind.get()),
        segment: record.position.segment.0,
        offset: record.position.offset,
        frame_bytes: format::frame_bytes(payload_len),
        entry_bytes: payload_len,
        chain: None,
        header: None,
        payload: None,
        payload_bytes: 0,
        payload_offset: 0,
        payload_state: None,
        payload_cipher: None,
        payload_key_id: None,
        note: None,
        checkpoint: None,
        problem: None,
    };
    let entry = match scan::decode(record.kind.get(), &record.payload) {
        Ok(entry) => entry,
        Err(err) => {
            detail.problem = Some(err);
            return Ok(detail);
        }
    };
    let content_digest = entry.content_digest(alg);
    let chain_hash = entry.chain_hash_with(alg, seq, &content_digest);
    let payload_digest = stored_or_computed_payload_digest(alg, &entry);
    let first_tenant = entry.chain.tenant_prev_seq == NO_TENANT_PREV;
    detail.chain = Some(ChainDetail {
        entry_version: entry.version(),
        epoch: entry.chain.epoch,
        logged_at: rfc3339_ns(entry.chain.logged_at_ns),
        logged_at_ns: entry.chain.logged_at_ns,
        chain_hash: hex(&chain_hash),
        prev_chain_hash: hex(&entry.chain.prev_chain_hash),
        tenant_prev_seq: (!first_tenant).then_some(entry.chain.tenant_prev_seq),
        tenant_prev_hash: (!first_tenant).then(|| hex(&entry.chain.tenant_prev_hash)),
        content_digest: hex(&content_digest),
        payload_digest: hex(&payload_digest),
        encrypted: entry.flags & flags::PAYLOAD_ENCRYPTED != 0,
        compressed: entry.flags & flags::PAYLOAD_COMPRESSED != 0,
        signed: entry.signature.is_some(),
    });
    detail.payload_bytes = entry.payload.len() as u64;
    detail.payload_offset = record.position.offset
        + format::FRAME_HEADER_BYTES
        + (entry.fixed_bytes() + entry.header.len()) as u64;
    match entry.kind {
        EntryKind::Receipt => {
            match ReceiptHeader::decode(entry.header) {
                Ok(header) => detail.header = Some(header.to_sdk_json_value()),
                Err(err) => detail.problem = Some(format!("receipt header: {err}")),
            }
            receipt_payload(data_dir, &entry, &mut detail);
        }
        EntryKind::Genesis => {
            detail.payload = serde_json::from_slice::<Genesis>(entry.payload)
                .ok()
                .and_then(|g| serde_json::to_value(g).ok());
        }
        EntryKind::Shred | EntryKind::Hold | EntryKind::Prune | EntryKind::Archive => {
            detail.payload = serde_json::from_slice(entry.payload).ok();
        }
        EntryKind::Checkpoint | EntryKind::EpochSeal => {
            detail.note = Some(String::from_utf8_lossy(entry.payload).into_owned());
            match scan::note_fields(entry.payload) {
                Ok(fields) => detail.checkpoint = Some(fields),
                Err(err) => detail.problem = Some(err),
            }
        }
    }
    Ok(detail)
}

/// ` with AES-256-GCM under data key 7`, or nothing when the payload names no cipher.
fn encryption_of(d: &EntryDetail) -> String {
    match (d.payload_cipher, d.payload_key_id) {
        (Some(cipher), Some(key_id)) => format!(" with {cipher} under data key {key_id}"),
        _ => String::new(),
    }
}

/// Prints one entry for people.
pub fn print_entry(d: &EntryDetail) {
    println!("seq             {}", d.seq);
    println!("kind            {}", d.kind);
    println!(
        "frame           segment {}, byte offset {}, {} bytes ({} of entry; payload at offset {})",
        d.segment, d.offset, d.frame_bytes, d.entry_bytes, d.payload_offset
    );
    if let Some(c) = &d.chain {
        println!("epoch           {}", c.epoch);
        println!("logged at       {}", c.logged_at);
        println!("chain hash      {}", c.chain_hash);
        println!("previous hash   {}", c.prev_chain_hash);
        if let (Some(seq), Some(hash)) = (c.tenant_prev_seq, &c.tenant_prev_hash) {
            println!("tenant link     seq {seq}, {hash}");
        } else if d.kind == "receipt" {
            println!("tenant link     none: the tenant's first receipt");
        }
        println!("content digest  {}", c.content_digest);
        println!("payload digest  {}", c.payload_digest);
        println!(
            "entry format    version {}{}",
            c.entry_version,
            if c.entry_version == entry::ENTRY_VERSION_V2 {
                ": digests stored in the entry (an older build wrote it)"
            } else {
                ": digests computed from its bytes, none stored"
            }
        );
        if c.encrypted || c.compressed || c.signed {
            println!(
                "flags          {}{}{}",
                if c.encrypted { " encrypted" } else { "" },
                if c.compressed { " compressed" } else { "" },
                if c.signed { " signed" } else { "" }
            );
        }
    }
    if let Some(header) = &d.header {
        println!();
        println!("header (clear, indexed, kept after shredding)");
        println!("{}", pretty(header));
    }
    if let Some(payload) = &d.payload {
        println!();
        match d.payload_state {
            Some(state) => println!(
                "payload ({} bytes stored encrypted{}, {state})",
                d.payload_bytes,
                encryption_of(d)
            ),
            None => println!("payload ({} bytes)", d.payload_bytes),
        }
        println!("{}", pretty(payload));
    } else if d.kind == "receipt" && d.chain.as_ref().is_some_and(|c| c.encrypted) {
        println!();
        println!(
            "payload         {} bytes, encrypted{}, {}",
            d.payload_bytes,
            encryption_of(d),
            d.payload_state.unwrap_or("key unavailable")
        );
    }
    if let Some(note) = &d.note {
        println!();
        if let Some(fields) = &d.checkpoint {
            println!(
                "checkpoint      {} at tree size {}, root {}",
                fields.origin, fields.tree_size, fields.root
            );
            if let Some(first) = fields.seal_first_seq {
                println!(
                    "epoch seal      closes seq {first} to {} ({} entries); previous seal digest {}",
                    (first + fields.tree_size).saturating_sub(1),
                    fields.tree_size,
                    fields.seal_prev_seal.as_deref().unwrap_or("-")
                );
            }
        }
        println!("signed note (signature not checked here; `verify` checks it):");
        print_note(note);
    }
    if let Some(problem) = &d.problem {
        println!();
        println!("problem         {problem}");
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// `inspect DIR --segment N`: the frames of one segment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SegmentFrames {
    /// Segment number.
    pub segment: u64,
    /// File name inside `wal/`.
    pub file: String,
    /// First sequence number of the segment.
    pub first_seq: u64,
    /// Frames skipped.
    pub skip: usize,
    /// The frames listed.
    pub frames: Vec<FrameSummary>,
    /// Whether more frames follow (use `--skip`).
    pub more: bool,
    /// Why the listing stops early: the damage the readable log ends at (absent when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damage: Option<String>,
}

/// One frame.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FrameSummary {
    /// Sequence number.
    pub seq: u64,
    /// Entry kind.
    pub kind: String,
    /// Byte offset of the frame in the segment file.
    pub offset: u64,
    /// Bytes of the frame.
    pub frame_bytes: u64,
    /// Bytes of the entry.
    pub entry_bytes: u64,
    /// Byte offset of the entry's payload in the file (`None` when it does not decode).
    pub payload_offset: Option<u64>,
    /// Payload bytes.
    pub payload_bytes: Option<u64>,
    /// One line about the entry.
    pub summary: String,
}

fn frame_summary(seq: Seq, kind_byte: u8, bytes: &[u8], offset: u64) -> FrameSummary {
    let len = bytes.len() as u64;
    let mut frame = FrameSummary {
        seq: seq.0,
        kind: scan::kind_name(kind_byte),
        offset,
        frame_bytes: format::frame_bytes(len),
        entry_bytes: len,
        payload_offset: None,
        payload_bytes: None,
        summary: String::new(),
    };
    let entry = match scan::decode(kind_byte, bytes) {
        Ok(entry) => entry,
        Err(err) => {
            frame.summary = format!("does not decode: {err}");
            return frame;
        }
    };
    frame.payload_offset = Some(
        offset + format::FRAME_HEADER_BYTES + (entry.fixed_bytes() + entry.header.len()) as u64,
    );
    frame.payload_bytes = Some(entry.payload.len() as u64);
    frame.summary = match entry.kind {
        EntryKind::Genesis => "store genesis: hash algorithm and signing key".to_owned(),
        EntryKind::Receipt => match ReceiptHeader::decode(entry.header) {
            Ok(h) => {
                let mut line = format!("{} {} {}", h.tenant_id(), h.event_id(), h.kind());
                if let Some(model) = h.model_name() {
                    line.push(' ');
                    line.push_str(model);
                }
                if let Some(decision) = h.decision() {
                    line.push(' ');
                    line.push_str(decision.as_str());
                }
                line
            }
            Err(err) => format!("receipt header does not decode: {err}"),
        },
        EntryKind::Checkpoint | EntryKind::EpochSeal => match scan::note_fields(entry.payload) {
            Ok(n) if entry.kind == EntryKind::EpochSeal => format!(
                "epoch {} sealed at {} entries",
                entry.chain.epoch, n.tree_size
            ),
            Ok(n) => format!("epoch {} tree size {}", entry.chain.epoch, n.tree_size),
            Err(err) => err,
        },
        EntryKind::Shred => match trailmix_db::shred::decode_shred_record(entry.payload) {
            Ok(r) => format!(
                "shred of tenant {}{} ({}), request {}",
                r.tenant,
                r.subject.map_or(String::new(), |s| format!(" subject {s}")),
                counted(r.key_ids.len() as u64, "key", "keys"),
                r.request_id
            ),
            Err(err) => format!("shred record does not decode: {err}"),
        },
        EntryKind::Hold => match trailmix_db::retention::decode_hold_record(entry.payload) {
            Ok(r) => format!(
                "legal {} on tenant {}{}, request {}",
                match r.action {
                    trailmix_db::retention::HoldAction::Hold => "hold",
                    trailmix_db::retention::HoldAction::Release => "release",
                },
                r.tenant,
                r.subject.map_or(String::new(), |s| format!(" subject {s}")),
                r.request_id
            ),
            Err(err) => format!("hold record does not decode: {err}"),
        },
        EntryKind::Prune => {
            match serde_json::from_slice::<trailmix_db::prune::PruneRecord>(entry.payload) {
                Ok(r) => format!(
                    "prune of epochs {} to {} (seq {} to {}), request {}",
                    r.first_epoch,
                    r.last_epoch,
                    r.from_seq,
                    r.horizon.saturating_sub(1),
                    r.request_id
                ),
                Err(err) => format!("prune record does not decode: {err}"),
            }
        }
        EntryKind::Archive => {
            match serde_json::from_slice::<trailmix_db::archive::ArchiveRecord>(entry.payload) {
                Ok(r) => format!(
                    "archive of epochs {} to {} (seq {} to {})",
                    r.first_epoch,
                    r.last_epoch,
                    r.from_seq,
                    r.to_seq.saturating_sub(1)
                ),
                Err(err) => format!("archive record does not decode: {err}"),
            }
        }
    };
    frame
}

/// The frames of segment `segment`, from `skip`, at most `limit`.
///
/// # Errors
/// [`ToolError`] when there is no store or no such segment.
pub fn segment_frames(
    data_dir: &Path,
    segment: u64,
    skip: usize,
    limit: usize,
) -> ToolResult<SegmentFrames> {
    let reader: WalReader = scan::open_reader(data_dir)?;
    let first_no = reader
        .segments()
        .first()
        .map_or(0, |s| s.header.segment_no.0);
    let Some(info) = segment
        .checked_sub(first_no)
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| reader.segments().get(i))
    else {
        let count = reader.segments().len();
        return Err(ToolError::new(match count {
            0 => format!(
                "the store has no segment files in {}",
                wal_dir(data_dir).display()
            ),
            n => format!(
                "the store has no segment {segment}: it has {n} (numbered {first_no} to {}) in {}",
                first_no + n as u64 - 1,
                wal_dir(data_dir).display()
            ),
        }));
    };
    let mut frames = Vec::new();
    let mut more = false;
    let from = Seq(info.header.first_seq.0 + skip as u64);
    let segment_no = info.header.segment_no;
    reader
        .scan(from, |record| {
            if record.position.segment != segment_no {
                return ControlFlow::Break(());
            }
            if frames.len() >= limit {
                more = true;
                return ControlFlow::Break(());
            }
            frames.push(frame_summary(
                record.seq,
                record.kind.get(),
                record.payload,
                record.position.offset,
            ));
            ControlFlow::Continue(())
        })
        .map_err(|e| ToolError::wal(data_dir, &e))?;
    // A listing that ends before the limit ends at the log's readable end: say so when that
    // end is damage rather than the last entry.
    let damage = if more || frames.len() >= limit {
        None
    } else {
        match reader.check_tail() {
            Err(err @ trailmix_db::wal::Error::Corrupted { .. }) => Some(err.to_string()),
            _ => None,
        }
    };
    Ok(SegmentFrames {
        segment,
        file: info.file_name.clone(),
        first_seq: info.header.first_seq.0,
        skip,
        frames,
        more,
        damage,
    })
}

/// Prints frames for people.
pub fn print_frames(f: &SegmentFrames) {
    println!(
        "segment {} ({}), first seq {}",
        f.segment, f.file, f.first_seq
    );
    // Wide enough for every kind shown (`shred_record` is the longest today).
    let kind = f
        .frames
        .iter()
        .map(|frame| frame.kind.len())
        .chain([10])
        .max()
        .unwrap_or(10);
    println!(
        "{:>12}  {:<kind$} {:>10} {:>7}  entry",
        "seq", "kind", "offset", "bytes"
    );
    for frame in &f.frames {
        println!(
            "{:>12}  {:<kind$} {:>10} {:>7}  {}",
            frame.seq, frame.kind, frame.offset, frame.frame_bytes, frame.summary
        );
    }
    if f.frames.is_empty() {
        println!("(no frames from here)");
    }
    if f.more {
        println!(
            "... more frames follow: add --skip {}",
            f.skip + f.frames.len()
        );
    }
    if let Some(damage) = &f.damage {
        println!(
            "... the frames stop here: the next one is damaged ({damage}); `verify` reports it"
        );
    }
}

/// `1 receipt`, `2,000 receipts`.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", human_count(n), if n == 1 { one } else { many })
}
