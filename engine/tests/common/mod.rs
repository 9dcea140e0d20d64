//! Shared helpers of the engine's tamper, backpressure and crash tests: receipts, store copies,
//! the byte-level map of a log (where each frame is), and a writer of forged logs.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use trailmix_db::entry::{self, EntryKind, EntryRef};
use trailmix_db::keys::{KEYS_DIR, PUBLIC_KEY_FILE};
use trailmix_db::receipt::{ActorType, Kind, Receipt, ReceiptHeader, Timestamp};
use trailmix_db::wal::format::{self, SEGMENT_HEADER_BYTES};
use trailmix_db::wal::{ChainHash, HashAlgorithm, RecordKind, Seq, Wal, WalOptions, WalReader};
use trailmix_db::{VerifyOptions, VerifyReport, WAL_DIR, verify_store};

/// A receipt of `tenant` numbered `n`, whose input carries `pad` filler bytes.
pub fn receipt(tenant: &str, n: u64, pad: usize) -> Receipt {
    Receipt::builder(tenant, event_id(n), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(
            1_700_000_000_000_000_000 + i64::try_from(n).expect("fits") * 1_000,
        ))
        .model_name("gpt-4.1")
        .input(serde_json::json!({
            "prompt": format!("claim {n}: {}", "x".repeat(pad)),
        }))
        .build()
        .expect("valid receipt")
}

/// The event id [`receipt`] gives receipt `n`.
pub fn event_id(n: u64) -> String {
    format!("evt-{n:08}")
}

/// Every regular file under `dir`, recursively (what an erasure scan reads).
pub fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for item in fs::read_dir(dir).expect("read dir") {
        let item = item.expect("entry");
        if item.file_type().expect("type").is_dir() {
            all_files(&item.path(), out);
        } else {
            out.push(item.path());
        }
    }
}

/// For each needle, the files under `dir` that hold it. One pass over each file finds every
/// needle (an erasure scan of a thousand canaries read each segment a thousand times before).
pub fn files_holding(dir: &Path, needles: &[&[u8]]) -> Vec<Vec<PathBuf>> {
    let finder = aho_corasick::AhoCorasick::new(needles).expect("needles build a searcher");
    let mut files = Vec::new();
    all_files(dir, &mut files);
    let mut holders = vec![Vec::new(); needles.len()];
    for path in files {
        let bytes = fs::read(&path).expect("read file");
        let mut seen = vec![false; needles.len()];
        for found in finder.find_overlapping_iter(&bytes) {
            seen[found.pattern().as_usize()] = true;
        }
        for (holder, seen) in holders.iter_mut().zip(seen) {
            if seen {
                holder.push(path.clone());
            }
        }
    }
    holders
}

/// The files under `dir` that hold `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_holding(dir, &[needle]).pop().unwrap_or_default()
}

/// Copies a directory tree (regular files and directories only), keeping file modes.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create copy directory");
    for item in fs::read_dir(from).expect("read directory") {
        let item = item.expect("directory entry");
        let target = to.join(item.file_name());
        let kind = item.file_type().expect("file type");
        if kind.is_dir() {
            copy_dir(&item.path(), &target);
        } else if kind.is_file() {
            fs::copy(item.path(), &target).expect("copy file");
        }
    }
}

/// Replaces the directory `to` with a copy of `from`.
pub fn restore_dir(from: &Path, to: &Path) {
    if to.exists() {
        fs::remove_dir_all(to).expect("remove directory");
    }
    copy_dir(from, to);
}

/// The log directory of a data directory.
pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(WAL_DIR)
}

/// Where one record's frame lies on disk.
#[derive(Debug, Clone)]
pub struct FrameLoc {
    /// Sequence number.
    pub seq: Seq,
    /// Entry kind byte.
    pub kind: u8,
    /// The segment file.
    pub file: PathBuf,
    /// Index of the segment in the log.
    pub segment: usize,
    /// Offset of the frame header in the file.
    pub offset: u64,
    /// The payload (the entry bytes).
    pub payload: Vec<u8>,
}

impl FrameLoc {
    /// Offset just past the payload (where padding starts).
    pub fn payload_end(&self) -> u64 {
        self.offset + format::FRAME_HEADER_BYTES + self.payload.len() as u64
    }

    /// Offset just past the frame's padding.
    pub fn end(&self) -> u64 {
        self.offset + format::frame_bytes(self.payload.len() as u64)
    }

    /// The entry kind.
    pub fn entry_kind(&self) -> EntryKind {
        EntryKind::from_byte(self.kind).expect("known entry kind")
    }
}

/// One segment file of a log.
#[derive(Debug, Clone)]
pub struct SegmentLoc {
    /// The file.
    pub file: PathBuf,
    /// First sequence number.
    pub first_seq: Seq,
    /// Offset just past its last frame.
    pub end: u64,
    /// File length.
    pub len: u64,
    /// Whether it carries a valid seal.
    pub sealed: bool,
}

impl SegmentLoc {
    /// The file name.
    pub fn name(&self) -> String {
        file_name(&self.file)
    }
}

/// The last component of `path` as a string.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("file name")
        .to_owned()
}

/// Every segment and frame of the (valid) log of `data_dir`, in order.
pub fn layout(data_dir: &Path) -> (Vec<SegmentLoc>, Vec<FrameLoc>) {
    let dir = wal_dir(data_dir);
    let reader = WalReader::open(&dir).expect("open reader");
    let mut frames = Vec::new();
    reader
        .scan(Seq(0), |record| {
            let segment = usize::try_from(record.position.segment.0).expect("fits");
            frames.push(FrameLoc {
                seq: record.seq,
                kind: record.kind.get(),
                file: dir.join(&reader.segments()[segment].file_name),
                segment,
                offset: record.position.offset,
                payload: record.payload.to_vec(),
            });
            ControlFlow::Continue(())
        })
        .expect("scan");
    let segments = reader
        .segments()
        .iter()
        .enumerate()
        .map(|(index, info)| {
            let file = dir.join(&info.file_name);
            let end = frames
                .iter()
                .filter(|f| f.segment == index)
                .map(FrameLoc::end)
                .max()
                .unwrap_or(SEGMENT_HEADER_BYTES);
            SegmentLoc {
                len: fs::metadata(&file).expect("stat segment").len(),
                file,
                first_seq: info.header.first_seq,
                end,
                sealed: info.seal.is_some(),
            }
        })
        .collect();
    (segments, frames)
}

/// A record of a log: entry kind byte and entry bytes.
pub type Rec = (u8, Vec<u8>);

/// The records of the log of `data_dir`.
pub fn records(data_dir: &Path) -> Vec<Rec> {
    WalReader::open(wal_dir(data_dir))
        .expect("open reader")
        .read_from(Seq(0))
        .expect("read log")
        .into_iter()
        .map(|r| (r.kind.get(), r.payload))
        .collect()
}

/// Writes a new store in `to` whose log holds exactly `records`, through the WAL's own writer:
/// the same `wal.meta` (store id), keys and public key as `from`, segments of
/// `segment_bytes`, every frame with a valid CRC and dense sequence numbers, closed cleanly.
/// The WAL cannot tell such a log from a genuine one; only the engine's chain can.
pub fn write_log(from: &Path, to: &Path, records: &[Rec], segment_bytes: u64) {
    fs::create_dir_all(wal_dir(to)).expect("create log directory");
    fs::copy(from.join(PUBLIC_KEY_FILE), to.join(PUBLIC_KEY_FILE)).expect("copy public key");
    copy_dir(&from.join(KEYS_DIR), &to.join(KEYS_DIR));
    fs::copy(
        wal_dir(from).join(format::META_FILE),
        wal_dir(to).join(format::META_FILE),
    )
    .expect("copy wal.meta");
    let options = WalOptions::default()
        .segment_bytes(segment_bytes)
        .record_bytes_max(segment_bytes - 8192);
    let mut wal = Wal::open(wal_dir(to), options).expect("open the forged log");
    for (i, (kind, payload)) in records.iter().enumerate() {
        let prev = EntryKind::from_byte(*kind)
            .and_then(|k| entry::decode_entry(k, payload).ok())
            .map_or([0; 32], |e| e.chain.prev_chain_hash);
        wal.append(
            RecordKind::new(*kind).expect("kind"),
            payload,
            &ChainHash(prev),
        )
        .expect("append");
        if i % 4 == 3 {
            wal.flush().expect("flush");
        }
    }
    wal.close().expect("close");
}

/// `entry` (of `kind`) with its payload replaced; with `fix_digests` its payload and content
/// digests are recomputed so that only the chain can tell.
pub fn with_payload(kind: u8, entry: &[u8], payload: &[u8], fix_digests: bool) -> Vec<u8> {
    let kind = EntryKind::from_byte(kind).expect("entry kind");
    let old = entry::decode_entry(kind, entry).expect("entry decodes");
    // A version 3 entry stores no digests: there is nothing to fix, only the chain can tell.
    let stored = old.stored.map(|stored| {
        if fix_digests {
            let pd = entry::payload_digest(HashAlgorithm::Blake3, payload);
            entry::StoredDigests {
                content_digest: entry::content_digest_v2(
                    HashAlgorithm::Blake3,
                    kind,
                    old.header,
                    &pd,
                ),
                payload_digest: pd,
            }
        } else {
            stored
        }
    });
    let mut out = Vec::new();
    EntryRef {
        payload,
        stored,
        ..old
    }
    .encode_into(&mut out);
    out
}

/// Re-links every entry of `records` from index `from` on to the (possibly edited) entries
/// before it: previous chain hash, tenant link. What a forger without the signing key can do;
/// the signed checkpoints after the edit no longer match.
pub fn rechain(records: &mut [Rec], from: usize) {
    let alg = HashAlgorithm::Blake3;
    let mut last = [0u8; 32];
    let mut tips: HashMap<String, (u64, [u8; 32])> = HashMap::new();
    for (i, (kind, bytes)) in records.iter_mut().enumerate() {
        let kind = EntryKind::from_byte(*kind).expect("entry kind");
        let seq = Seq(i as u64);
        let decoded = entry::decode_entry(kind, bytes).expect("entry decodes");
        let tenant = (kind == EntryKind::Receipt).then(|| {
            ReceiptHeader::decode(decoded.header)
                .expect("header decodes")
                .tenant_id()
                .to_owned()
        });
        let mut chain = decoded.chain;
        if i >= from {
            chain.prev_chain_hash = last;
            if let Some(tenant) = &tenant {
                let (prev_seq, prev_hash) = tips
                    .get(tenant)
                    .copied()
                    .unwrap_or((entry::NO_TENANT_PREV, [0; 32]));
                chain.tenant_prev_seq = prev_seq;
                chain.tenant_prev_hash = prev_hash;
            }
        }
        let hash = EntryRef { chain, ..decoded }.chain_hash(alg, seq);
        if i >= from {
            let mut out = Vec::new();
            EntryRef { chain, ..decoded }.encode_into(&mut out);
            *bytes = out;
        }
        if let Some(tenant) = tenant {
            tips.insert(tenant, (seq.0, hash));
        }
        last = hash;
    }
}

/// Overwrites `bytes` at `offset` of `file`.
pub fn write_at(file: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt as _;
    fs::OpenOptions::new()
        .write(true)
        .open(file)
        .expect("open for writing")
        .write_all_at(bytes, offset)
        .expect("write");
}

/// Reads `len` bytes at `offset` of `file`.
pub fn read_at(file: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt as _;
    let mut out = vec![0u8; len];
    fs::File::open(file)
        .expect("open for reading")
        .read_exact_at(&mut out, offset)
        .expect("read");
    out
}

/// Flips bit `bit` of the byte at `offset` of `file`, in place.
pub fn flip_bit(file: &Path, offset: u64, bit: u8) {
    let byte = read_at(file, offset, 1)[0] ^ (1 << bit);
    write_at(file, offset, &[byte]);
}

/// A frame image (header, payload, zero padding) for `payload` at `seq`, with a valid CRC.
pub fn frame_image(seq: Seq, durable_end: Seq, kind: u8, payload: &[u8]) -> Vec<u8> {
    let header = format::FrameHeader {
        payload_len: u32::try_from(payload.len()).expect("fits"),
        seq,
        durable_end,
        kind,
    };
    let mut out = header.encode(payload).to_vec();
    out.extend_from_slice(payload);
    out.resize(
        usize::try_from(format::frame_bytes(payload.len() as u64)).expect("fits"),
        0,
    );
    out
}

/// Verifies with `options`; panics when verification cannot run.
pub fn verify_with(data_dir: &Path, options: &VerifyOptions) -> VerifyReport {
    verify_store(data_dir, options).expect("verify runs")
}

/// Asserts that the store in `data_dir` verifies (with default options).
pub fn assert_verifies(data_dir: &Path) -> VerifyReport {
    let report = verify_with(data_dir, &VerifyOptions::default());
    assert!(report.verified(), "{:?}", report.damage);
    report
}

/// A `usize` from an environment variable, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every receipt in the log of `data_dir`: event id → sequence number (one scan; `Db::get`
/// per sequence number would rescan the segment each time). Panics on a duplicate event id.
pub fn stored_events(data_dir: &Path) -> HashMap<String, Seq> {
    let mut events = HashMap::new();
    WalReader::open(wal_dir(data_dir))
        .expect("open reader")
        .scan(Seq(0), |record| {
            if record.kind.get() == EntryKind::Receipt as u8 {
                let entry = entry::decode_entry(EntryKind::Receipt, record.payload).expect("entry");
                let header = ReceiptHeader::decode(entry.header).expect("header");
                let first = events.insert(header.event_id().to_owned(), record.seq);
                assert!(first.is_none(), "event {} stored twice", header.event_id());
            }
            ControlFlow::Continue(())
        })
        .expect("scan");
    events
}

/// `entry` (of `kind`) with its chain fields edited by `edit` (digests unchanged).
pub fn edit_chain(kind: u8, entry: &[u8], edit: &dyn Fn(&mut entry::ChainFields)) -> Vec<u8> {
    let kind = EntryKind::from_byte(kind).expect("entry kind");
    let old = entry::decode_entry(kind, entry).expect("entry decodes");
    let mut chain = old.chain;
    edit(&mut chain);
    let mut out = Vec::new();
    EntryRef { chain, ..old }.encode_into(&mut out);
    out
}

/// A command that runs only the test `child_test` of this test binary, its output not
/// captured by the harness (the child's answers reach its stdout).
pub fn child_command(child_test: &str) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().expect("test binary"));
    command.args(["--exact", child_test, "--nocapture", "--test-threads=1"]);
    command
}

/// Runs the test `child_test` of this test binary in a child process with the environment
/// `vars` (crash tests: the child aborts at a step), stdout captured, stderr dropped.
pub fn run_child(child_test: &str, vars: &[(&str, &std::ffi::OsStr)]) -> std::process::Output {
    let mut command = child_command(child_test);
    for (name, value) in vars {
        command.env(name, value);
    }
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .output()
        .expect("child runs")
}

/// Cuts the log of `dir` after entry `keep - 1`: later frames of that segment zeroed (what a
/// torn tail looks like), its seal cleared (a crash before the seal) unless the cut is exactly
/// at its end, later segments removed.
pub fn truncate(dir: &Path, segments: &[SegmentLoc], frames: &[FrameLoc], keep: usize) {
    let seg_index = if keep == 0 {
        0
    } else {
        frames[keep - 1].segment
    };
    let segment = &segments[seg_index];
    let file = wal_dir(dir).join(segment.name());
    let cut_at = if keep == 0 {
        SEGMENT_HEADER_BYTES
    } else {
        frames[keep - 1].end()
    };
    let at_end = cut_at == segment.end && seg_index + 1 < segments.len();
    if !at_end {
        let zeros = vec![0u8; usize::try_from(segment.end - cut_at).expect("fits")];
        write_at(&file, cut_at, &zeros);
        write_at(&file, format::Seal::OFFSET, &[0; 24]);
    }
    for later in &segments[seg_index + 1..] {
        std::fs::remove_file(wal_dir(dir).join(later.name())).expect("remove segment");
    }
}

pub mod tsa;

/// Every file under `dir` (relative name) and the SHA-256 of its bytes (archive comparisons).
pub fn tree(dir: &Path) -> std::collections::BTreeMap<String, String> {
    use sha2::Digest as _;
    let mut files = Vec::new();
    all_files(dir, &mut files);
    files
        .iter()
        .map(|f| {
            let name = f.strip_prefix(dir).expect("under").display().to_string();
            let sum = sha2::Sha256::digest(fs::read(f).expect("read"));
            (name, format!("{sum:x}"))
        })
        .collect()
}

/// The seqs of the archive records in the log of `data`.
pub fn archive_records(data: &Path) -> Vec<Seq> {
    records(data)
        .iter()
        .enumerate()
        .filter(|(_, (kind, _))| *kind == EntryKind::Archive as u8)
        .map(|(seq, _)| Seq(seq as u64))
        .collect()
}
