//! Whole-store verification: frames, chain links, tenant links, Merkle roots, every checkpoint
//! and seal signature (`verify_strict`), the seal chain, and optionally a trusted checkpoint
//! held outside the store (which detects truncation and rollback).

use std::ops::ControlFlow;
use std::path::Path;

use crate::ahead::{DigestsAhead, Hashing, WindowCounts, hashers_for};
use crate::db::WAL_DIR;
use crate::error::{Error, Result};
use crate::keys::PUBLIC_KEY_FILE;
use crate::log::{FsLog, LogStorage};
use crate::merkle::Digest;
use crate::note::{Checkpoint, CosignatureVerifier, NoteVerifier, VerifiedCosignature};
use crate::position::Epoch;
use crate::replay::{ChainState, Damage, DamageKind, ReplayMode};
use crate::wal::Seq;

/// What to verify beyond the store itself.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// A checkpoint note of this store kept elsewhere (by an auditor, a witness, a backup):
    /// the store must still contain the tree it describes. Without it, truncating the unsigned
    /// tail or rolling the whole store back to an older state cannot be detected.
    pub trusted_checkpoint: Option<String>,
    /// Witnesses whose cosignatures the trusted checkpoint must carry (C2SP tlog-cosignature).
    /// With any given, the checkpoint is an anchor only if every one of them cosigned it;
    /// otherwise verification does not run ([`Error::InvalidOption`]). A witness that refuses
    /// to cosign a smaller tree or a fork makes the anchor one the store's owner cannot have
    /// forged by rolling the store back and signing again.
    pub trusted_witnesses: Vec<CosignatureVerifier>,
    /// The verifier key the store must be signed with (C2SP vkey text). Default: the key in
    /// the genesis entry, which must match `signing.pub` when that file exists.
    pub public_key: Option<String>,
    /// Told how far verification got, for a progress display (verifying a large store takes
    /// seconds).
    pub progress: Option<VerifyProgress>,
}

/// A reasonable [`VerifyProgress::every_entries`] for a display: about 5 calls a second.
pub const VERIFY_PROGRESS_EVERY: u64 = 1 << 16;

/// A progress callback for [`verify_store`]: called from the verifying thread with the number
/// of entries checked so far, each time another `every_entries` entries have been checked.
#[derive(Clone)]
pub struct VerifyProgress {
    /// Entries between two calls (at least 1).
    pub every_entries: u64,
    /// The callback.
    pub report: std::sync::Arc<dyn Fn(u64) + Send + Sync>,
}

impl VerifyProgress {
    /// Reports `seq` entries checked when that is a step.
    fn tick(&self, seq: Seq) {
        if seq.0 > 0 && seq.0.is_multiple_of(self.every_entries.max(1)) {
            (self.report)(seq.0);
        }
    }
}

impl std::fmt::Debug for VerifyProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyProgress")
            .field("every_entries", &self.every_entries)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`verify_store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked (up to the first damage).
    pub entries: u64,
    /// Receipts among them.
    pub receipts: u64,
    /// Checkpoints and seals checked.
    pub checkpoints: u64,
    /// Epochs sealed.
    pub sealed_epochs: u64,
    /// Log segments.
    pub segments: usize,
    /// Bytes of torn, never-acknowledged tail the next writer open erases.
    pub torn_tail_bytes: u64,
    /// The trusted checkpoint's epoch and size, when one was given and matched.
    pub trusted: Option<(Epoch, u64)>,
    /// The witness cosignatures on the trusted checkpoint that verified (one per witness in
    /// [`VerifyOptions::trusted_witnesses`]).
    pub cosignatures: Vec<VerifiedCosignature>,
    /// The range dropped by [`crate::Db::prune`], verified as pruned under policy: its
    /// retained seals, roots and leaf hashes check out and the kept log chains to them.
    /// `None` when nothing was pruned.
    pub pruned: Option<PrunedRange>,
    /// The first damage found; `None` means verified.
    pub damage: Option<Damage>,
}

/// The verdict on a pruned range: "pruned under policy".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunedRange {
    /// The first sequence number kept: everything below it was pruned.
    pub horizon: Seq,
    /// Pruned epochs (0 through `epochs - 1`).
    pub epochs: u64,
    /// Sequence number of the last prune record in the log.
    pub record_seq: Option<Seq>,
    /// The request id of that record.
    pub request_id: Option<String>,
}

impl VerifyReport {
    fn empty(segments: usize) -> VerifyReport {
        VerifyReport {
            entries: 0,
            receipts: 0,
            checkpoints: 0,
            sealed_epochs: 0,
            segments,
            torn_tail_bytes: 0,
            trusted: None,
            cosignatures: Vec::new(),
            pruned: None,
            damage: None,
        }
    }

    /// Whether nothing was wrong.
    #[must_use]
    pub fn verified(&self) -> bool {
        self.damage.is_none()
    }
}

struct Trusted {
    epoch: Epoch,
    size: u64,
    root: Digest,
    seen_root: Option<Digest>,
}

/// Verifies the store in `data_dir` without modifying it (safe while a writer runs: it checks
/// the prefix written so far).
///
/// # Errors
/// Only when verification cannot run (no store, unreadable files, a trusted checkpoint that
/// is not valid for this store); damage is reported in [`VerifyReport::damage`].
pub fn verify_store(data_dir: &Path, options: &VerifyOptions) -> Result<VerifyReport> {
    verify_log(&FsLog::new(data_dir.join(WAL_DIR)), Some(data_dir), options)
}

/// Verifies a store whose log lives in `log`; `data_dir`, when given, is where `signing.pub`
/// is checked against the genesis key.
///
/// # Errors
/// As for [`verify_store`].
pub fn verify_log<L: LogStorage>(
    log: &L,
    data_dir: Option<&Path>,
    options: &VerifyOptions,
) -> Result<VerifyReport> {
    verify_history(log, data_dir, options, History::Local)
}

/// Whose log is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum History {
    /// A store's own log: a prune record must name the retained state in use.
    Local,
    /// A log rebuilt from an archive: the whole history is there, so a prune record names
    /// retained state of the store it was written in, not of this copy.
    #[cfg(feature = "archive")]
    Archived,
}

/// [`verify_log`] for a log of the given [`History`].
pub(crate) fn verify_history<L: LogStorage>(
    log: &L,
    data_dir: Option<&Path>,
    options: &VerifyOptions,
    history: History,
) -> Result<VerifyReport> {
    let hashing = Hashing::with_hashers(hashers_for(log));
    verify_hashing(log, data_dir, options, history, hashing).map(|(report, _)| report)
}

/// [`verify_history`] hashing ahead as `hashing` says; also tells who hashed the windows.
pub(crate) fn verify_hashing<L: LogStorage>(
    log: &L,
    data_dir: Option<&Path>,
    options: &VerifyOptions,
    history: History,
    hashing: Hashing,
) -> Result<(VerifyReport, WindowCounts)> {
    let cosignatures = check_cosignatures(options)?;
    let reader = log.open_reader()?;
    let alg = reader.meta().hash_algorithm;
    let mut report = VerifyReport::empty(reader.segments().len());
    report.cosignatures = cosignatures;
    let (log_first, first_segment) = log_start(&reader);
    let mut state = match start_state(data_dir, alg, log_first)? {
        Ok(state) => state,
        Err((seq, detail)) => return Ok(pruned_damage(report, seq, detail)),
    };
    let start = state.next_seq;
    let mut trusted: Option<Trusted> = None;
    let mut pending_trusted = options.trusted_checkpoint.clone();
    let mut damage = None;
    let segment_links: Vec<_> = reader
        .segments()
        .iter()
        .map(|s| s.header.prev_chain_hash)
        .collect();
    let store_id = reader.meta().store_id.to_string();
    let mut counts = WindowCounts::default();
    let scanned = std::thread::scope(|scope| {
        let mut ahead = DigestsAhead::new(scope, log, alg, ReplayMode::Verify, hashing);
        let scanned = reader.scan(start, |record| {
            if let Some(t) = trusted.as_mut() {
                observe(t, &state);
            }
            if let Some(found) = check_segment_link(&segment_links, first_segment, &record, &state)
            {
                damage = Some(found);
                return ControlFlow::Break(());
            }
            let digests = ahead.take(record.seq);
            if let Some(progress) = &options.progress {
                progress.tick(record.seq);
            }
            if let Err(found) = state.apply_with(
                record.seq,
                record.kind.get(),
                record.payload,
                ReplayMode::Verify,
                digests.as_ref(),
            ) {
                damage = Some(found);
                return ControlFlow::Break(());
            }
            if record.seq == start
                && let Some(note) = pending_trusted.take()
            {
                match parse_trusted(&state, &note) {
                    Ok(t) => trusted = Some(t),
                    Err(err) => {
                        damage = Some(Damage {
                            seq: record.seq,
                            kind: DamageKind::Rollback,
                            detail: err,
                        });
                    }
                }
                if damage.is_some() {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        counts = ahead.counts();
        scanned
    });
    if let Some(t) = trusted.as_mut() {
        observe(t, &state);
    }
    if let Err(err) = scanned {
        damage.get_or_insert(Damage {
            seq: state.next_seq,
            kind: DamageKind::Frame,
            detail: err.to_string(),
        });
    }
    if damage.is_none() {
        damage = check_tail(&reader, &state, &mut report);
    }
    if damage.is_none() {
        damage = check_genesis_store(&state, &store_id);
    }
    if damage.is_none() && history == History::Local {
        damage = check_pruned(data_dir, &state);
    }
    if damage.is_none() {
        damage = check_keys(data_dir, &state, options)?;
    }
    if damage.is_none() {
        damage = check_trusted(
            &state,
            trusted.as_ref(),
            pending_trusted.as_deref(),
            &mut report,
        );
    }
    Ok((finish_report(report, &state, start, damage), counts))
}

/// Fills in the counts and the verdict.
fn finish_report(
    mut report: VerifyReport,
    state: &ChainState,
    start: Seq,
    damage: Option<Damage>,
) -> VerifyReport {
    report.entries = state.next_seq.0 - start.0;
    report.pruned = pruned_range(state);
    report.receipts = state.receipts;
    report.checkpoints = state.checkpoints;
    report.sealed_epochs = state.sealed.len() as u64;
    report.damage = damage;
    report
}

/// The scan already checked every frame; only the last segment's tail is left.
fn check_tail<S: crate::wal::Storage>(
    reader: &crate::wal::WalReader<S>,
    state: &ChainState,
    report: &mut VerifyReport,
) -> Option<Damage> {
    match reader.check_tail() {
        Ok(torn_tail_bytes) => {
            report.torn_tail_bytes = torn_tail_bytes;
            None
        }
        Err(err) => Some(Damage {
            seq: state.next_seq,
            kind: DamageKind::Frame,
            detail: err.to_string(),
        }),
    }
}

/// The log's first seq and first segment number (above 0 once pruned).
fn log_start<S: crate::wal::Storage>(reader: &crate::wal::WalReader<S>) -> (Seq, u64) {
    reader
        .segments()
        .first()
        .map_or((Seq(0), 0), |s| (s.header.first_seq, s.header.segment_no.0))
}

/// The chain state verification starts from (the retained state's, when pruned), or the
/// damage that stops it: retained state that does not verify, or history missing below the
/// log's first segment.
fn start_state(
    data_dir: Option<&Path>,
    alg: crate::wal::HashAlgorithm,
    log_first: Seq,
) -> Result<std::result::Result<ChainState, (Seq, String)>> {
    match crate::prune::start_state(data_dir, alg, log_first, crate::prune::Finish::ReadOnly) {
        Ok(state) => Ok(Ok(state)),
        Err(Error::Damaged { seq, detail }) => Ok(Err((seq, detail))),
        Err(Error::Prune(err)) => Ok(Err((log_first, err.to_string()))),
        Err(other) => Err(other),
    }
}

/// The prune checks after replay; a pending manifest the last prune record names counts.
fn check_pruned(data_dir: Option<&Path>, state: &ChainState) -> Option<Damage> {
    let pending = data_dir.and_then(|dir| {
        crate::prune::load_retained(dir, state.alg, crate::prune::MANIFEST_PENDING_FILE)
            .ok()
            .flatten()
            .map(|r| r.manifest_digest)
    });
    crate::prune::check_after_replay(state, pending)
}

/// The "pruned under policy" verdict of a replayed state.
fn pruned_range(state: &ChainState) -> Option<PrunedRange> {
    let retained = state.pruned.as_ref()?;
    Some(PrunedRange {
        horizon: retained.horizon,
        epochs: retained.epochs.len() as u64,
        record_seq: state.last_prune.as_ref().map(|(seq, _)| *seq),
        request_id: state.last_prune.as_ref().map(|(_, p)| p.request_id.clone()),
    })
}

/// A report whose retained state or log start does not verify (no window was hashed).
fn pruned_damage(
    mut report: VerifyReport,
    seq: Seq,
    detail: String,
) -> (VerifyReport, WindowCounts) {
    report.damage = Some(Damage {
        seq,
        kind: DamageKind::Pruned,
        detail,
    });
    (report, WindowCounts::default())
}

/// The genesis entry must name the store whose log it is in.
fn check_genesis_store(state: &ChainState, store_id: &str) -> Option<Damage> {
    let genesis = state.genesis.as_ref()?;
    (genesis.store_id != store_id).then(|| Damage {
        seq: Seq(0),
        kind: DamageKind::Genesis,
        detail: format!(
            "the genesis entry names store {} but the log's metadata says {store_id}",
            genesis.store_id
        ),
    })
}

/// A segment header records the chain hash its first entry links to: it must be the chain's.
/// Only the first frame of a segment after the first has a link to check.
fn check_segment_link(
    links: &[crate::wal::ChainHash],
    first_segment: u64,
    record: &crate::wal::RecordRef<'_>,
    state: &ChainState,
) -> Option<Damage> {
    // The first segment of a pruned log links to the last pruned entry: checked too.
    let segment = usize::try_from(record.position.segment.0.checked_sub(first_segment)?).ok()?;
    if record.position.segment.0 == 0
        || record.position.offset != crate::wal::format::SEGMENT_HEADER_BYTES
    {
        return None;
    }
    let link = links.get(segment)?;
    (link.0 != state.last_hash).then(|| Damage {
        seq: record.seq,
        kind: DamageKind::ChainLink,
        detail:
            "the segment that starts here records a different previous chain hash in its header"
                .into(),
    })
}

/// Checks every trusted witness's cosignature on the trusted checkpoint.
fn check_cosignatures(options: &VerifyOptions) -> Result<Vec<VerifiedCosignature>> {
    if options.trusted_witnesses.is_empty() {
        return Ok(Vec::new());
    }
    let Some(note) = &options.trusted_checkpoint else {
        return Err(Error::InvalidOption {
            name: "trusted_witnesses",
            reason: "witness keys check the cosignatures of a trusted checkpoint; none was given"
                .into(),
        });
    };
    options
        .trusted_witnesses
        .iter()
        .map(|witness| {
            witness
                .verify(note.as_bytes())
                .map_err(|e| Error::InvalidOption {
                    name: "trusted_checkpoint",
                    reason: format!(
                        "not accepted as an anchor: the cosignature of witness {} does not hold: {e}",
                        witness.to_vkey()
                    ),
                })
        })
        .collect()
}

/// Records the trusted epoch's root when replay passes its size.
fn observe(trusted: &mut Trusted, state: &ChainState) {
    if trusted.seen_root.is_none()
        && state.epoch == trusted.epoch
        && state.tree.size() == trusted.size
    {
        trusted.seen_root = Some(state.tree.root());
    }
}

fn parse_trusted(state: &ChainState, note: &str) -> Result<Trusted, String> {
    let (Some(genesis), Some(verifier)) = (&state.genesis, &state.verifier) else {
        return Err(
            "the store has no genesis entry to check the trusted checkpoint against".into(),
        );
    };
    let (checkpoint, _) = Checkpoint::open(note.as_bytes(), std::slice::from_ref(verifier))
        .map_err(|e| {
            format!("the trusted checkpoint does not verify with this store's key: {e}")
        })?;
    let epoch = checkpoint
        .origin
        .strip_prefix(&format!("{}/epoch/", genesis.origin_prefix))
        .and_then(|n| n.parse().ok())
        .map(Epoch)
        .ok_or_else(|| {
            format!(
                "the trusted checkpoint's origin {:?} is not one of this store's",
                checkpoint.origin
            )
        })?;
    Ok(Trusted {
        epoch,
        size: checkpoint.tree_size,
        root: checkpoint.root_hash,
        seen_root: None,
    })
}

fn check_trusted(
    state: &ChainState,
    trusted: Option<&Trusted>,
    unparsed: Option<&str>,
    report: &mut VerifyReport,
) -> Option<Damage> {
    let damage = |detail: String| {
        Some(Damage {
            seq: state.next_seq,
            kind: DamageKind::Rollback,
            detail,
        })
    };
    if unparsed.is_some() {
        return damage("the store is empty, but a trusted checkpoint says it held entries".into());
    }
    let t = trusted?;
    match t.seen_root {
        Some(root) if root == t.root => {
            report.trusted = Some((t.epoch, t.size));
            None
        }
        Some(_) => damage(format!(
            "epoch {} of the store does not have the root the trusted checkpoint states at size {} (history was rewritten)",
            t.epoch, t.size
        )),
        None => damage(format!(
            "the store ends before the trusted checkpoint: epoch {} size {} is missing (truncated or rolled back)",
            t.epoch, t.size
        )),
    }
}

fn check_keys(
    data_dir: Option<&Path>,
    state: &ChainState,
    options: &VerifyOptions,
) -> Result<Option<Damage>> {
    let Some(genesis_key) = state.verifier.as_ref().map(NoteVerifier::to_vkey) else {
        return Ok(None);
    };
    let damage = |detail: String| Damage {
        seq: Seq(0),
        kind: DamageKind::Genesis,
        detail,
    };
    if let Some(required) = &options.public_key {
        let required = NoteVerifier::from_vkey(required.trim()).map_err(|e| Error::Key {
            path: "public key".into(),
            detail: e.to_string(),
        })?;
        if required.to_vkey() != genesis_key {
            return Ok(Some(damage(format!(
                "the store is signed with {genesis_key}, not with the expected key {}",
                required.to_vkey()
            ))));
        }
    }
    let Some(data_dir) = data_dir else {
        return Ok(None);
    };
    match std::fs::read_to_string(data_dir.join(PUBLIC_KEY_FILE)) {
        Ok(text) if text.trim() != genesis_key => Ok(Some(damage(format!(
            "{PUBLIC_KEY_FILE} holds {} but the genesis entry names {genesis_key}",
            text.trim()
        )))),
        Ok(_) => Ok(None),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::io("read", data_dir.join(PUBLIC_KEY_FILE), err)),
    }
}

#[cfg(test)]
mod tests {
    //! Verification with small hashing windows split between the sequential pass and a
    //! hashing thread: damage is reported at the same entry whoever hashed its window.

    use std::ops::ControlFlow;
    use std::path::Path;

    use super::{History, VerifyOptions, verify_hashing};
    use crate::ahead::{Hashing, Split};
    use crate::log::FsLog;
    use crate::receipt::{ActorType, Kind, Receipt, Timestamp};
    use crate::replay::DamageKind;
    use crate::wal::{ChainHash, RecordKind, Seq, Wal, WalOptions, WalReader};
    use crate::{Db, DbOptions, WAL_DIR};

    const WINDOW: u64 = 16;
    const SEGMENT: u64 = 8 << 20;

    fn hashing(split: Split) -> Hashing {
        Hashing {
            hashers: 1,
            window_entries: WINDOW,
            spawn_after_entries: 2 * WINDOW,
            split,
        }
    }

    fn build(dir: &Path, receipts: u64, segment_bytes: u64) {
        let db =
            Db::open_with(dir, DbOptions::default().segment_bytes(segment_bytes)).expect("open");
        for n in 0..receipts {
            let receipt = Receipt::builder("acme", format!("evt-{n:06}"), Kind::LlmCall)
                .app_id("claims")
                .actor_type(ActorType::Agent)
                .model_name("gpt-4.1")
                .event_time(Timestamp::from_unix_nanos(
                    1_700_000_000_000_000_000 + i64::try_from(n).expect("fits") * 1_000,
                ))
                .input(serde_json::json!({ "prompt": format!("claim {n}") }))
                .build()
                .expect("receipt");
            db.append(&receipt).expect("append");
        }
        db.close().expect("close");
    }

    /// The log's records: kind byte and entry bytes.
    fn records(dir: &Path) -> Vec<(u8, Vec<u8>)> {
        let reader = WalReader::open(dir.join(WAL_DIR)).expect("reader");
        let mut out = Vec::new();
        reader
            .scan(Seq(0), |record| {
                out.push((record.kind.get(), record.payload.to_vec()));
                ControlFlow::Continue(())
            })
            .expect("scan");
        out
    }

    /// A copy of the store in `from` whose log holds `records`, written by the WAL's own
    /// writer (every frame's checksum right).
    fn write_log(from: &Path, to: &Path, records: &[(u8, Vec<u8>)]) {
        let wal_dir = to.join(WAL_DIR);
        std::fs::create_dir_all(&wal_dir).expect("mkdir");
        let key = crate::keys::PUBLIC_KEY_FILE;
        std::fs::copy(from.join(key), to.join(key)).expect("copy key");
        let meta = crate::wal::format::META_FILE;
        std::fs::copy(from.join(WAL_DIR).join(meta), wal_dir.join(meta)).expect("copy meta");
        let options = WalOptions::default()
            .segment_bytes(SEGMENT)
            .record_bytes_max(SEGMENT - 8192);
        let mut wal = Wal::open(&wal_dir, options).expect("open log");
        for (kind, bytes) in records {
            let prev = crate::entry::EntryKind::from_byte(*kind)
                .and_then(|k| crate::entry::decode_entry(k, bytes).ok())
                .map_or([0; 32], |e| e.chain.prev_chain_hash);
            wal.append(
                RecordKind::new(*kind).expect("kind"),
                bytes,
                &ChainHash(prev),
            )
            .expect("append");
        }
        wal.close().expect("close");
    }

    fn verify(dir: &Path, split: Split) -> (Option<(u64, DamageKind)>, crate::ahead::WindowCounts) {
        let (report, counts) = verify_hashing(
            &FsLog::new(dir.join(WAL_DIR)),
            Some(dir),
            &VerifyOptions::default(),
            History::Local,
            hashing(split),
        )
        .expect("verify runs");
        (report.damage.map(|d| (d.seq.0, d.kind)), counts)
    }

    #[test]
    fn damage_is_found_where_it_is_in_windows_hashed_by_either_thread() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = scratch.path().join("store");
        build(&dir, 300, SEGMENT);
        // The threads hash the odd windows, the sequential pass the even ones (after the
        // first two, which it hashes before the thread starts).
        let (damage, counts) = verify(&dir, Split::Alternate);
        assert_eq!(damage, None);
        assert!(counts.received >= 8 && counts.own >= 8, "{counts:?}");
        let log = records(&dir);
        let receipt = crate::entry::EntryKind::Receipt as u8;
        // Inside an odd window, inside an even one, and each one's last entry (whose
        // successor, which names the damage, is in a window the other thread hashed).
        for at in [
            5 * WINDOW + 3,
            6 * WINDOW + 3,
            8 * WINDOW - 1,
            9 * WINDOW - 1,
        ] {
            let index = usize::try_from(at).expect("fits");
            assert_eq!(log[index].0, receipt, "seq {at} is a receipt");
            let mut forged = log.clone();
            let last = forged[index].1.len() - 1;
            forged[index].1[last] ^= 1;
            let copy = scratch.path().join(format!("forged-{at}"));
            write_log(&dir, &copy, &forged);
            for split in [Split::Alternate, Split::Claimed] {
                assert_eq!(
                    verify(&copy, split).0,
                    // Entry version 3 stores no digests: the next entry's link names the edit.
                    Some((at + 1, DamageKind::ChainLink)),
                    "payload edited at {at}, {split:?}"
                );
            }
        }
    }

    #[test]
    fn a_damaged_frame_in_a_sealed_segment_is_found_in_windows_hashed_by_either_thread() {
        // The hashing thread does not checksum frames of rolled-over segments (the sequential
        // pass does): a damaged frame there is still reported as such, at its seq.
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = scratch.path().join("store");
        build(&dir, 300, 64 << 10);
        let reader = WalReader::open(dir.join(WAL_DIR)).expect("reader");
        assert!(reader.segments().len() > 1, "the store rolls over");
        let mut frames = Vec::new();
        reader
            .scan(Seq(0), |record| {
                frames.push((record.seq.0, record.position));
                ControlFlow::Continue(())
            })
            .expect("scan");
        let last_segment = reader.segments().last().expect("segment").header.segment_no;
        for at in [5 * WINDOW + 3, 6 * WINDOW + 3] {
            let (_, position) = frames[usize::try_from(at).expect("fits")];
            assert_ne!(
                position.segment, last_segment,
                "seq {at} is in a sealed segment"
            );
            let copy = scratch.path().join(format!("damaged-{at}"));
            copy_store(&dir, &copy);
            let info = reader
                .segments()
                .iter()
                .find(|s| s.header.segment_no == position.segment)
                .expect("its segment");
            let path = copy.join(WAL_DIR).join(&info.file_name);
            let mut bytes = std::fs::read(&path).expect("read segment");
            let payload = position.offset + crate::wal::format::FRAME_HEADER_BYTES;
            bytes[usize::try_from(payload).expect("fits") + 40] ^= 0x04;
            std::fs::write(&path, bytes).expect("write segment");
            for split in [Split::Alternate, Split::Claimed] {
                assert_eq!(
                    verify(&copy, split).0,
                    Some((at, DamageKind::Frame)),
                    "frame damaged at {at}, {split:?}"
                );
            }
        }
    }

    fn copy_store(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for item in std::fs::read_dir(from).expect("read dir") {
            let item = item.expect("entry");
            if item.file_type().expect("type").is_dir() {
                copy_store(&item.path(), &to.join(item.file_name()));
            } else {
                std::fs::copy(item.path(), to.join(item.file_name())).expect("copy");
            }
        }
    }
}
