//! Guards invariant 3: every change inside signed history — any bit flip, a deleted, inserted,
//! reordered, duplicated or rewritten record, swapped or dropped segments, truncation — makes
//! `verify_store` fail and name the place (first bad sequence number and kind of damage); and
//! pins the documented limits: a torn (unsigned) tail, truncation and rollback are caught only
//! with a trusted checkpoint held outside the store.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    FrameLoc, Rec, SegmentLoc, assert_verifies, copy_dir, edit_chain, env_usize, event_id,
    file_name, flip_bit, frame_image, layout, read_at, receipt, rechain, records, restore_dir,
    truncate, verify_with, wal_dir, with_payload, write_at, write_log,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tempfile::TempDir;
use trailmix_db::entry::{ChainFields, EntryKind};
use trailmix_db::keys::{KEYS_DIR, PUBLIC_KEY_FILE, SIGNING_KEY_FILE};
use trailmix_db::note::NoteSigner;
use trailmix_db::replay::DamageKind;
use trailmix_db::wal::format::{self, META_FILE, SEGMENT_HEADER_BYTES, Seal};
use trailmix_db::wal::sim::SimDisk;
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{
    CheckpointInfo, Db, DbOptions, Epoch, Error, ReceiptSignatures, VerifyOptions, VerifyReport,
    verify_log,
};

/// Segment size of the small stores: many segments from few bytes.
const SMALL_SEGMENT: u64 = 12 << 10;

/// A store built for tampering, and the checkpoint notes taken while it was written.
struct Store {
    _tmp: TempDir,
    /// The pristine store; tests work on copies.
    data: PathBuf,
    /// Explicit checkpoints, in order: one in the middle, one at the end (the latest note).
    notes: Vec<CheckpointInfo>,
}

impl Store {
    /// A scratch directory next to the store.
    fn scratch(&self, name: &str) -> PathBuf {
        let path = self.data.with_file_name(name);
        if path.exists() {
            fs::remove_dir_all(&path).expect("clear scratch");
        }
        path
    }

    /// A fresh copy of the pristine store.
    fn copy(&self, name: &str) -> PathBuf {
        let path = self.scratch(name);
        copy_dir(&self.data, &path);
        path
    }

    fn latest(&self) -> &CheckpointInfo {
        self.notes.last().expect("a latest checkpoint")
    }
}

fn small_options() -> DbOptions {
    DbOptions::default()
        .segment_bytes(SMALL_SEGMENT)
        .checkpoint_every_records(10)
        .checkpoint_interval(Duration::from_secs(3600))
        .epoch_records_max(16)
}

/// Writes `count` receipts of two tenants (group-committed), with an explicit checkpoint in the
/// middle and one at the end, and closes the store.
fn build_store(count: u64, pad: usize, options: DbOptions) -> Store {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    let db = Db::open_with(&data, options).expect("open");
    let mut notes = Vec::new();
    let mut tickets = Vec::new();
    for n in 0..count {
        let tenant = if n % 3 == 0 { "globex" } else { "acme" };
        tickets.push(db.append(&receipt(tenant, n, pad)).expect("append"));
        if n == count / 2 {
            for ticket in tickets.drain(..) {
                ticket.wait().expect("durable");
            }
            notes.push(fresh_checkpoint(&db, 100_000, pad));
        }
    }
    for ticket in tickets {
        ticket.wait().expect("durable");
    }
    notes.push(fresh_checkpoint(&db, 100_001, pad));
    db.close().expect("close");
    Store {
        _tmp: tmp,
        data,
        notes,
    }
}

/// A new checkpoint now; when a size-driven checkpoint or seal has just covered everything,
/// after one more receipt (numbered `extra`).
fn fresh_checkpoint(db: &Db, extra: u64, pad: usize) -> CheckpointInfo {
    if let Some(note) = db.checkpoint().expect("checkpoint") {
        return note;
    }
    db.append_and_wait(&receipt("acme", extra, pad))
        .expect("append");
    db.checkpoint()
        .expect("checkpoint")
        .expect("a new checkpoint")
}

fn small_store() -> Store {
    build_store(30, 800, small_options())
}

fn trusted(note: &CheckpointInfo) -> VerifyOptions {
    VerifyOptions {
        trusted_checkpoint: Some(note.note.clone()),
        ..VerifyOptions::default()
    }
}

/// Asserts that `report` names damage of `kind` at `seq`.
fn assert_damage(report: &VerifyReport, seq: u64, kind: DamageKind, what: &str) {
    let damage = report
        .damage
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: not detected ({report:?})"));
    assert_eq!(
        (damage.seq, damage.kind),
        (Seq(seq), kind),
        "{what}: wrong place or kind: {damage}"
    );
}

// ---------------------------------------------------------------------------------------------
// Bit flips
// ---------------------------------------------------------------------------------------------

/// What a flip at a site must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Verification cannot run or reports damage (metadata: `wal.meta`, segment headers, the
    /// rollover seals that bind segments together).
    Fails,
    /// Damage reported at exactly this sequence number (a frame of the log).
    DamageAt(Seq),
    /// Verifies: the clean-close seal of the last segment. A damaged seal is what a crash
    /// while writing it leaves (it has a sector of its own for that reason), so recovery must
    /// accept it; it only ever held a lower bound of the records, which are all still intact.
    Verifies,
}

#[derive(Debug, Clone)]
struct Site {
    file: String,
    offset: u64,
    expect: Expect,
    what: &'static str,
}

/// Every byte of the store's history and metadata: `wal.meta`, each segment's header and seal
/// slot, and each frame (header, payload, padding). Not the reserved zero bytes of the header
/// page and not the unused zero tail after the last frame (see `unused_bytes_are_not_history`).
fn sites(segments: &[SegmentLoc], frames: &[FrameLoc]) -> Vec<Site> {
    let mut sites: Vec<Site> = (0..format::META_BYTES as u64)
        .map(|offset| Site {
            file: META_FILE.into(),
            offset,
            expect: Expect::Fails,
            what: "wal.meta",
        })
        .collect();
    for (index, segment) in segments.iter().enumerate() {
        let last = index + 1 == segments.len();
        assert!(segment.sealed, "every segment of a closed store is sealed");
        for offset in 0..128 {
            sites.push(Site {
                file: segment.name(),
                offset,
                expect: Expect::Fails,
                what: "segment header",
            });
        }
        for offset in Seal::OFFSET..Seal::OFFSET + 24 {
            sites.push(Site {
                file: segment.name(),
                offset,
                expect: if last {
                    Expect::Verifies
                } else {
                    Expect::Fails
                },
                what: if last {
                    "clean-close seal"
                } else {
                    "rollover seal"
                },
            });
        }
    }
    for frame in frames {
        for offset in frame.offset..frame.end() {
            sites.push(Site {
                file: file_name(&frame.file),
                offset,
                expect: Expect::DamageAt(frame.seq),
                what: if offset < frame.offset + format::FRAME_HEADER_BYTES {
                    "frame header"
                } else if offset < frame.payload_end() {
                    "entry bytes"
                } else {
                    "frame padding"
                },
            });
        }
    }
    sites
}

/// Loads the log files of `data_dir` into a simulated disk (the same bytes, in memory).
fn load_sim(data_dir: &Path) -> (SimDisk, BTreeMap<String, Vec<u8>>) {
    let disk = SimDisk::new(0);
    let mut files = BTreeMap::new();
    for item in fs::read_dir(wal_dir(data_dir)).expect("read log directory") {
        let item = item.expect("entry");
        let name = item.file_name().into_string().expect("utf-8 name");
        if name == META_FILE || format::parse_segment_file_name(&name).is_some() {
            let bytes = fs::read(item.path()).expect("read file");
            disk.put_file(&name, &bytes);
            files.insert(name, bytes);
        }
    }
    (disk, files)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    CannotRun,
    Damage(Seq, DamageKind),
    Verified,
}

fn outcome(result: trailmix_db::Result<VerifyReport>) -> Outcome {
    match result {
        Err(_) => Outcome::CannotRun,
        Ok(report) => match report.damage {
            Some(damage) => Outcome::Damage(damage.seq, damage.kind),
            None => Outcome::Verified,
        },
    }
}

fn outcome_name(outcome: Outcome) -> String {
    match outcome {
        Outcome::CannotRun => "verify cannot run (Err)".to_owned(),
        Outcome::Damage(_, kind) => format!("damage: {}", kind.name()),
        Outcome::Verified => "verified".to_owned(),
    }
}

fn acceptable(expect: Expect, got: Outcome) -> bool {
    match expect {
        Expect::Fails => got != Outcome::Verified,
        Expect::DamageAt(seq) => got == Outcome::Damage(seq, DamageKind::Frame),
        Expect::Verifies => got == Outcome::Verified,
    }
}

#[derive(Debug, Default)]
struct Tally {
    flips: u64,
    by_outcome: BTreeMap<String, u64>,
    by_region: BTreeMap<&'static str, u64>,
    failures: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.flips += other.flips;
        for (k, v) in other.by_outcome {
            *self.by_outcome.entry(k).or_default() += v;
        }
        for (k, v) in other.by_region {
            *self.by_region.entry(k).or_default() += v;
        }
        self.failures.extend(other.failures);
    }
}

/// Flips every bit of every site, one at a time, verifying after each, on `workers` in-memory
/// copies of the log. The verification is the real one (`verify_log`, which `verify_store`
/// calls) over the simulated disk, which only saves the file system round trips.
fn sweep(data_dir: &Path, sites: &[Site], workers: usize) -> Tally {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                scope.spawn(move || {
                    let (disk, files) = load_sim(data_dir);
                    let mut tally = Tally::default();
                    for site in sites.iter().skip(worker).step_by(workers) {
                        let at = usize::try_from(site.offset).expect("fits");
                        let original = files[&site.file][at];
                        for bit in 0..8 {
                            assert!(disk.corrupt(&site.file, at, &[original ^ (1 << bit)]));
                            let got = outcome(verify_log(
                                &disk,
                                Some(data_dir),
                                &VerifyOptions::default(),
                            ));
                            assert!(disk.corrupt(&site.file, at, &[original]));
                            tally.flips += 1;
                            *tally.by_region.entry(site.what).or_default() += 1;
                            *tally.by_outcome.entry(outcome_name(got)).or_default() += 1;
                            if !acceptable(site.expect, got) {
                                tally.failures.push(format!(
                                    "{} byte {} bit {bit} ({}): expected {:?}, got {got:?}",
                                    site.file, site.offset, site.what, site.expect
                                ));
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        let mut total = Tally::default();
        for handle in handles {
            total.merge(handle.join().expect("worker"));
        }
        total
    })
}

/// Every bit of a small store: genesis, receipts of two tenants, checkpoints, a sealed epoch,
/// several segments, `wal.meta`. Each flip must be reported at the frame it hit (or make
/// verification refuse to run, for metadata). Each flip costs a verification that replays
/// everything before it, so the default store holds ~16 KiB of log (~160 k flips, ~30 s in a
/// debug build on two cores); `TRAILMIX_TAMPER_KIB=64` sweeps ~64 KiB (~550 k flips, minutes).
#[test]
fn every_bit_flip_is_detected_and_located() {
    let kib = env_usize("TRAILMIX_TAMPER_KIB", 16);
    // ~650 bytes of log per receipt (frame, entry fields, header, payload).
    let count = u64::try_from((kib * 1024).div_ceil(650)).expect("fits");
    let store = build_store(count, 300, small_options());
    let report = assert_verifies(&store.data);
    assert!(report.sealed_epochs >= 1 && report.checkpoints >= 3);
    let (segments, frames) = layout(&store.data);
    assert!(segments.len() >= 2, "several segments");
    let sites = sites(&segments, &frames);
    let log_bytes: u64 = segments.iter().map(|s| s.end - SEGMENT_HEADER_BYTES).sum();

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let started = Instant::now();
    let tally = sweep(&store.data, &sites, workers);
    eprintln!(
        "exhaustive sweep: {} bits flipped over {} bytes ({log_bytes} bytes of frames in {} \
         segments, {} entries) in {:?} on {workers} workers",
        tally.flips,
        sites.len(),
        segments.len(),
        frames.len(),
        started.elapsed()
    );
    eprintln!("  by region: {:?}", tally.by_region);
    eprintln!("  by outcome: {:?}", tally.by_outcome);
    assert_eq!(tally.flips, 8 * sites.len() as u64);
    assert!(
        tally.failures.is_empty(),
        "{} flips not detected where they should be, first: {:#?}",
        tally.failures.len(),
        &tally.failures[..tally.failures.len().min(20)]
    );

    // The same verdicts on the real files through `verify_store`, for a sample of the flips.
    let copy = store.copy("sample");
    let mut sampled = 0;
    for site in sites.iter().step_by(97) {
        let file = wal_dir(&copy).join(&site.file);
        let bit = u8::try_from(site.offset % 8).expect("fits");
        flip_bit(&file, site.offset, bit);
        let got = outcome(trailmix_db::verify_store(&copy, &VerifyOptions::default()));
        flip_bit(&file, site.offset, bit);
        assert!(
            acceptable(site.expect, got),
            "{} byte {} bit {bit} ({}) on disk: expected {:?}, got {got:?}",
            site.file,
            site.offset,
            site.what,
            site.expect
        );
        sampled += 1;
    }
    assert!(sampled > 100);
    assert_verifies(&copy);
}

/// Random bit flips all over a larger store (thousands of receipts, several segments and
/// epochs), verified on disk: every one is detected at the frame it hit.
#[test]
fn random_bit_flips_in_a_large_store_are_detected() {
    let flips = env_usize("TRAILMIX_TAMPER_RANDOM_FLIPS", 150);
    let store = build_store(
        3_000,
        200,
        DbOptions::default()
            .segment_bytes(256 << 10)
            .checkpoint_every_records(250)
            .checkpoint_interval(Duration::from_secs(3600))
            .epoch_records_max(1_000),
    );
    let report = assert_verifies(&store.data);
    let (segments, frames) = layout(&store.data);
    assert!(segments.len() >= 4, "several segments");
    assert!(report.sealed_epochs >= 2);
    let sites = sites(&segments, &frames);
    let copy = store.copy("random");
    // The soak runner (scripts/soak) varies the seed through `TRAILMIX_SEED`.
    let seed = std::env::var("TRAILMIX_SEED").map_or(0x7a3b, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("TRAILMIX_SEED={v} is not a u64"))
    });
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..flips {
        let site = &sites[rng.random_range(0..sites.len())];
        let bit = rng.random_range(0..8u8);
        let file = wal_dir(&copy).join(&site.file);
        flip_bit(&file, site.offset, bit);
        let got = outcome(trailmix_db::verify_store(&copy, &VerifyOptions::default()));
        flip_bit(&file, site.offset, bit);
        assert!(
            acceptable(site.expect, got),
            "{} byte {} bit {bit} ({}): expected {:?}, got {got:?}\nseed {seed}; rerun: \
             TRAILMIX_SEED={seed} cargo test -p trailmix-db --test tamper -- --exact \
             random_bit_flips_in_a_large_store_are_detected",
            site.file,
            site.offset,
            site.what,
            site.expect
        );
        *outcomes.entry(outcome_name(got)).or_default() += 1;
    }
    eprintln!(
        "random flips: {flips} over {} segments / {} entries: {outcomes:?}",
        segments.len(),
        frames.len()
    );
    assert_verifies(&copy);
}

/// The zero tail after the last frame is not history: non-zero bytes there read as a torn
/// write (never acknowledged), so verify still verifies, reports them, and the next writer open
/// erases them.
#[test]
fn a_dirty_tail_is_a_torn_tail_not_tampering() {
    let store = small_store();
    let (segments, frames) = layout(&store.data);
    let last = segments.last().expect("a segment");
    let copy = store.copy("tail");
    let file = wal_dir(&copy).join(last.name());
    let mut torn_reports = 0;
    for offset in [last.end, last.end + 7, last.end + 100, last.len - 1] {
        for bit in [0u8, 7] {
            flip_bit(&file, offset, bit);
            let report = verify_with(&copy, &VerifyOptions::default());
            assert!(report.verified(), "{:?}", report.damage);
            assert!(report.torn_tail_bytes > 0, "the dirty tail is reported");
            assert_eq!(report.entries, frames.len() as u64, "no record lost");
            torn_reports += 1;
            flip_bit(&file, offset, bit);
        }
    }
    assert_eq!(torn_reports, 8);
    // A writer open erases the torn tail and keeps every record.
    write_at(&file, last.end + 40, b"torn");
    let db = Db::open_with(&copy, small_options()).expect("open recovers");
    assert_eq!(
        db.get(frames[1].seq)
            .expect("first receipt")
            .header
            .event_id(),
        event_id(0)
    );
    db.close().expect("close");
    let report = assert_verifies(&copy);
    assert_eq!(report.torn_tail_bytes, 0, "erased");
    assert!(report.entries >= frames.len() as u64);
}

// ---------------------------------------------------------------------------------------------
// Structural edits with valid frames: only the chain and the signatures can tell
// ---------------------------------------------------------------------------------------------

/// Index of the `nth` receipt entry in `records`.
fn receipt_index(records: &[Rec], nth: usize) -> usize {
    records
        .iter()
        .enumerate()
        .filter(|(_, (kind, _))| *kind == EntryKind::Receipt as u8)
        .nth(nth)
        .map(|(i, _)| i)
        .expect("enough receipts")
}

/// The first checkpoint or seal at or after index `from`.
fn next_note(records: &[Rec], from: usize) -> usize {
    (from..records.len())
        .find(|&i| {
            records[i].0 == EntryKind::Checkpoint as u8
                || records[i].0 == EntryKind::EpochSeal as u8
        })
        .expect("a later note")
}

fn edited_payload(records: &[Rec], index: usize) -> Vec<u8> {
    let (kind, bytes) = &records[index];
    let entry = trailmix_db::entry::decode_entry(EntryKind::from_byte(*kind).expect("kind"), bytes)
        .expect("decodes");
    let mut payload = entry.payload.to_vec();
    let at = payload.len() / 2;
    payload[at] = if payload[at] == b'y' { b'z' } else { b'y' };
    payload
}

/// Writes `records` as a store next to `store` and returns its verification report.
fn verify_forged(store: &Store, name: &str, records: &[Rec]) -> VerifyReport {
    let dir = store.scratch(name);
    write_log(&store.data, &dir, records, SMALL_SEGMENT);
    let report = verify_with(&dir, &VerifyOptions::default());
    let again = verify_with(&dir, &trusted(store.latest()));
    assert!(
        again.damage.is_some() == report.damage.is_some(),
        "{name}: the trusted checkpoint changes nothing about detecting it"
    );
    report
}

#[test]
fn record_edits_with_valid_frames_are_detected_by_the_chain() {
    let store = small_store();
    let original = records(&store.data);
    // The same records re-written through the WAL verify: the forgery tool itself is faithful.
    assert!(verify_forged(&store, "faithful", &original).verified());
    let k = receipt_index(&original, 3);
    let k_seq = k as u64;

    let mut deleted = original.clone();
    deleted.remove(k);
    assert_damage(
        &verify_forged(&store, "deleted", &deleted),
        k_seq,
        DamageKind::ChainLink,
        "delete a receipt",
    );

    let mut reordered = original.clone();
    reordered.swap(k, k + 1);
    assert_damage(
        &verify_forged(&store, "reordered", &reordered),
        k_seq,
        DamageKind::ChainLink,
        "swap two entries",
    );

    let mut duplicated = original.clone();
    duplicated.insert(k + 1, original[k].clone());
    assert_damage(
        &verify_forged(&store, "duplicated", &duplicated),
        k_seq + 1,
        DamageKind::ChainLink,
        "duplicate a receipt",
    );

    // A forged receipt that links correctly to its predecessor: the next entry does not.
    let mut inserted = original.clone();
    let forged = with_payload(
        original[k].0,
        &original[k].1,
        &edited_payload(&original, k),
        true,
    );
    inserted.insert(k, (original[k].0, forged.clone()));
    assert_damage(
        &verify_forged(&store, "inserted", &inserted),
        k_seq + 1,
        DamageKind::ChainLink,
        "insert a forged receipt",
    );

    let mut payload_only = original.clone();
    payload_only[k].1 = with_payload(
        original[k].0,
        &original[k].1,
        &edited_payload(&original, k),
        false,
    );
    // Entry version 3 stores no payload digest: the edited payload changes the entry's chain
    // hash, so the next entry's link names the edit (version 2 stores: `fixture_store`).
    assert_damage(
        &verify_forged(&store, "payload", &payload_only),
        k_seq + 1,
        DamageKind::ChainLink,
        "edit a payload",
    );

    let mut redigested = original.clone();
    redigested[k].1 = forged.clone();
    assert_damage(
        &verify_forged(&store, "redigested", &redigested),
        k_seq + 1,
        DamageKind::ChainLink,
        "edit a payload and its digests",
    );

    // Edit a header byte (the model name) without touching the digests.
    let mut header = original.clone();
    let model = header[k]
        .1
        .windows(7)
        .position(|w| w == b"gpt-4.1")
        .expect("model name in the header");
    header[k].1[model] = b'G';
    assert_damage(
        &verify_forged(&store, "header", &header),
        k_seq + 1,
        DamageKind::ChainLink,
        "edit a header",
    );
}

/// Edits whose forger also re-links the entries after them (previous hashes, tenant links):
/// the signed checkpoints, the writer's timestamps, the entry rules still tell.
#[test]
fn re_linked_edits_are_detected() {
    let store = small_store();
    let original = records(&store.data);
    let k = receipt_index(&original, 3);
    let k_seq = k as u64;
    let forged = with_payload(
        original[k].0,
        &original[k].1,
        &edited_payload(&original, k),
        true,
    );

    // Edit and re-link everything after it (a forger without the key): the next signed
    // checkpoint no longer matches.
    let mut relinked = original.clone();
    relinked[k].1 = forged;
    rechain(&mut relinked, k);
    let note = next_note(&relinked, k);
    assert_damage(
        &verify_forged(&store, "relinked", &relinked),
        note as u64,
        DamageKind::Checkpoint,
        "edit and re-link",
    );
    // A re-linked duplicate of an event id, placed right after the original.
    let mut relinked_dup = original.clone();
    relinked_dup.insert(k + 1, original[k].clone());
    rechain(&mut relinked_dup, k + 1);
    assert_damage(
        &verify_forged(&store, "relinked-dup", &relinked_dup),
        k_seq + 1,
        DamageKind::DuplicateEvent,
        "a re-linked duplicate",
    );
    // Two receipts swapped and everything re-linked: the next signed checkpoint.
    let mut moved = original.clone();
    moved.swap(k, k + 1);
    rechain(&mut moved, k);
    // The writer's timestamps go backwards at k + 1 (unless both were stamped in the same
    // nanosecond); otherwise the next signed checkpoint does not match.
    let damage = verify_forged(&store, "moved", &moved)
        .damage
        .expect("reorder and re-link: detected");
    assert!(
        (damage.seq, damage.kind) == (Seq(k_seq + 1), DamageKind::Timestamp)
            || (damage.seq, damage.kind)
                == (Seq(next_note(&moved, k) as u64), DamageKind::Checkpoint),
        "reorder and re-link: {damage}"
    );

    // Chain fields of one entry edited, the rest re-linked to it.
    let field_edit = |name: &str, edit: &dyn Fn(&mut ChainFields)| {
        let mut edited = original.clone();
        edited[k].1 = edit_chain(edited[k].0, &edited[k].1, edit);
        rechain(&mut edited, k + 1);
        verify_forged(&store, name, &edited)
    };
    assert_damage(
        &field_edit("tenant", &|c| {
            c.tenant_prev_seq = trailmix_db::entry::NO_TENANT_PREV;
            c.tenant_prev_hash = [0; 32];
        }),
        k_seq,
        DamageKind::TenantLink,
        "a receipt cut out of its tenant's chain",
    );
    assert_damage(
        &field_edit("timestamp", &|c| c.logged_at_ns = 1),
        k_seq,
        DamageKind::Timestamp,
        "a writer timestamp moved backwards",
    );
    assert_damage(
        &field_edit("epoch", &|c| c.epoch += 1),
        k_seq,
        DamageKind::Epoch,
        "an entry claiming another epoch",
    );

    // Entry bytes that do not decode, and an unknown entry kind.
    let mut malformed = original.clone();
    malformed[k].1[0] = 9;
    assert_damage(
        &verify_forged(&store, "malformed", &malformed),
        k_seq,
        DamageKind::Malformed,
        "an unknown entry version",
    );
    let mut unknown = original.clone();
    unknown[k].0 = 9;
    assert_damage(
        &verify_forged(&store, "unknown-kind", &unknown),
        k_seq,
        DamageKind::Malformed,
        "an unknown entry kind",
    );
}

/// With per-receipt signatures, an edited and re-linked receipt fails its own signature.
#[test]
fn signed_receipts_expose_re_linked_edits() {
    let store = build_store(
        12,
        100,
        small_options().receipt_signatures(ReceiptSignatures::Ed25519),
    );
    assert_verifies(&store.data);
    let mut records = records(&store.data);
    let k = receipt_index(&records, 3);
    records[k].1 = with_payload(
        records[k].0,
        &records[k].1,
        &edited_payload(&records, k),
        true,
    );
    rechain(&mut records, k);
    assert_damage(
        &verify_forged(&store, "signed", &records),
        k as u64,
        DamageKind::Signature,
        "an edited, re-linked, signed receipt",
    );
}

#[test]
fn genesis_edits_are_detected() {
    let store = small_store();
    let original = records(&store.data);
    // The genesis entry: dropping it, or a second one.
    let mut no_genesis = original.clone();
    no_genesis.remove(0);
    rechain(&mut no_genesis, 0);
    assert_damage(
        &verify_forged(&store, "no-genesis", &no_genesis),
        0,
        DamageKind::Genesis,
        "drop the genesis entry",
    );
    let mut two_genesis = original.clone();
    two_genesis.insert(1, original[0].clone());
    rechain(&mut two_genesis, 1);
    assert_damage(
        &verify_forged(&store, "two-genesis", &two_genesis),
        1,
        DamageKind::Genesis,
        "a second genesis entry",
    );
}

/// The unsigned tail: entries after the last checkpoint of a store whose writer crashed. A
/// forger who re-links them is not detectable — no signature covers them yet. This is the
/// documented limit; the next checkpoint (every N entries or T ms) closes the window.
#[test]
fn the_unsigned_tail_is_the_documented_limit() {
    let store = small_store();
    let mut records = records(&store.data);
    // The store ends with its final checkpoint (and maybe a seal): drop them, as a crash before
    // them would.
    while records.last().map(|r| r.0) != Some(EntryKind::Receipt as u8) {
        records.pop();
    }
    let last_note = (0..records.len())
        .rev()
        .find(|&i| records[i].0 != EntryKind::Receipt as u8)
        .expect("a note");
    let tail = last_note + 1;
    assert!(tail < records.len(), "receipts after the last checkpoint");
    let edited = with_payload(
        records[tail].0,
        &records[tail].1,
        &edited_payload(&records, tail),
        true,
    );
    records[tail].1 = edited;
    rechain(&mut records, tail);
    let dir = store.scratch("unsigned-tail");
    write_log(&store.data, &dir, &records, SMALL_SEGMENT);
    assert!(
        verify_with(&dir, &VerifyOptions::default()).verified(),
        "an edit of the unsigned tail verifies: documented limit"
    );
    // The same edit inside signed history is caught (see the test above); here an earlier
    // trusted checkpoint does not help either, as it covers only entries before the edit.
    assert!(verify_with(&dir, &trusted(&store.notes[0])).verified());
}

// ---------------------------------------------------------------------------------------------
// Segments
// ---------------------------------------------------------------------------------------------

#[test]
fn segment_swaps_and_drops_are_detected() {
    let store = small_store();
    let (segments, _) = layout(&store.data);
    assert!(segments.len() >= 4, "{} segments", segments.len());
    let original = records(&store.data);

    // Swap the contents of two segment files: the WAL refuses the log.
    let swapped = store.copy("swap-files");
    let (a, b) = (
        wal_dir(&swapped).join(segments[1].name()),
        wal_dir(&swapped).join(segments[2].name()),
    );
    let (bytes_a, bytes_b) = (fs::read(&a).expect("read"), fs::read(&b).expect("read"));
    fs::write(&a, &bytes_b).expect("write");
    fs::write(&b, &bytes_a).expect("write");
    assert!(
        trailmix_db::verify_store(&swapped, &VerifyOptions::default()).is_err(),
        "swapped segment files make verification refuse the log"
    );

    // Swap the records of two segments, re-framed so the WAL sees a valid log: the chain
    // breaks where the first moved block starts.
    let range = |i: usize| {
        let start = usize::try_from(segments[i].first_seq.0).expect("fits");
        let end = usize::try_from(segments[i + 1].first_seq.0).expect("fits");
        start..end
    };
    let (r1, r2) = (range(1), range(2));
    let mut blocks = original[..r1.start].to_vec();
    blocks.extend_from_slice(&original[r2.clone()]);
    blocks.extend_from_slice(&original[r1.clone()]);
    blocks.extend_from_slice(&original[r2.end..]);
    assert_damage(
        &verify_forged(&store, "swap-records", &blocks),
        r1.start as u64,
        DamageKind::ChainLink,
        "swap two segments' records",
    );

    // Drop a middle segment file: the WAL refuses the log.
    let dropped = store.copy("drop-middle");
    fs::remove_file(wal_dir(&dropped).join(segments[1].name())).expect("remove");
    assert!(
        trailmix_db::verify_store(&dropped, &VerifyOptions::default()).is_err(),
        "a missing middle segment makes verification refuse the log"
    );
    // Drop a middle segment's records, re-framed: the chain breaks right there.
    let mut without = original[..r1.start].to_vec();
    without.extend_from_slice(&original[r1.end..]);
    assert_damage(
        &verify_forged(&store, "drop-records", &without),
        r1.start as u64,
        DamageKind::ChainLink,
        "drop a middle segment's records",
    );

    // Drop the last segment(s): the rest is a valid shorter log (a rollover that crashed before
    // the new segment existed looks the same), detected only with a trusted checkpoint whose
    // tree reaches into the dropped part.
    let required = required_entries(&store.data, store.latest());
    let mut caught = 0;
    for dropped in 1..segments.len() {
        let cut = store.copy("drop-last");
        for segment in &segments[segments.len() - dropped..] {
            fs::remove_file(wal_dir(&cut).join(segment.name())).expect("remove");
        }
        let kept = segments[segments.len() - dropped].first_seq.0;
        let report = verify_with(&cut, &VerifyOptions::default());
        assert!(report.verified(), "{:?}", report.damage);
        assert_eq!(report.entries, kept);
        let report = verify_with(&cut, &trusted(store.latest()));
        if kept < required {
            assert_damage(
                &report,
                kept,
                DamageKind::Rollback,
                &format!("drop the last {dropped} segment(s)"),
            );
            caught += 1;
        } else {
            assert!(report.verified(), "{:?}", report.damage);
        }
    }
    assert!(caught > 0);
}

// ---------------------------------------------------------------------------------------------
// Truncation and rollback
// ---------------------------------------------------------------------------------------------

/// The entries a trusted note requires: its epoch's first sequence number plus its size.
fn required_entries(store: &Path, note: &CheckpointInfo) -> u64 {
    let reader = WalReader::open(wal_dir(store)).expect("reader");
    let mut first = None;
    reader
        .scan(Seq(0), |record| {
            let kind = EntryKind::from_byte(record.kind.get()).expect("kind");
            let entry = trailmix_db::entry::decode_entry(kind, record.payload).expect("entry");
            if Epoch(entry.chain.epoch) == note.epoch {
                first = Some(record.seq);
                return std::ops::ControlFlow::Break(());
            }
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    first.expect("the note's epoch").0 + note.tree_size
}

#[test]
fn truncation_at_every_record_boundary() {
    let store = small_store();
    let (segments, frames) = layout(&store.data);
    let n = frames.len();
    let notes: Vec<(u64, &CheckpointInfo)> = store
        .notes
        .iter()
        .map(|note| (required_entries(&store.data, note), note))
        .collect();
    assert!(notes[0].0 < notes[1].0 && notes[1].0 < n as u64);
    let dir = store.scratch("cut");
    let mut caught = 0;
    let mut allowed = 0;
    for keep in 1..n {
        restore_dir(&store.data, &dir);
        truncate(&dir, &segments, &frames, keep);
        let report = verify_with(&dir, &VerifyOptions::default());
        assert!(
            report.verified(),
            "keep {keep}: without a trusted checkpoint a cut log is a valid shorter log \
             (documented limit), got {:?}",
            report.damage
        );
        assert_eq!(report.entries, keep as u64);
        for (required, note) in &notes {
            let report = verify_with(&dir, &trusted(note));
            if (keep as u64) < *required {
                assert_damage(
                    &report,
                    keep as u64,
                    DamageKind::Rollback,
                    &format!("cut to {keep} entries below a trusted size of {required}"),
                );
                caught += 1;
            } else {
                assert!(
                    report.verified(),
                    "keep {keep}: the trusted checkpoint ({required} entries) is still \
                     covered: {:?}",
                    report.damage
                );
                assert_eq!(report.trusted, Some((note.epoch, note.tree_size)));
                allowed += 1;
            }
        }
    }
    // Removing whole later segments, keeping a rolled segment as the last.
    for (index, segment) in segments.iter().enumerate().skip(1) {
        restore_dir(&store.data, &dir);
        for later in &segments[index..] {
            fs::remove_file(wal_dir(&dir).join(later.name())).expect("remove");
        }
        let keep = segment.first_seq.0;
        assert!(verify_with(&dir, &VerifyOptions::default()).verified());
        let (required, note) = notes[1];
        assert_eq!(
            verify_with(&dir, &trusted(note)).verified(),
            keep >= required,
            "segments from {index} removed"
        );
    }
    eprintln!(
        "truncation: {} cuts; {caught} caught by a trusted checkpoint, {allowed} above it",
        n - 1
    );
    assert!(caught > 0 && allowed > 0);
}

#[test]
fn rollback_and_forks_are_detected_with_a_trusted_checkpoint() {
    let store = small_store();
    let live = store.copy("live");
    let old = store.copy("old");
    let db = Db::open_with(&live, small_options()).expect("open");
    for n in 1_000..1_004 {
        db.append_and_wait(&receipt("acme", n, 100))
            .expect("append");
    }
    let same_epoch = db.checkpoint().expect("checkpoint").expect("new");
    db.seal_epoch().expect("seal").expect("sealed");
    for n in 1_004..1_008 {
        db.append_and_wait(&receipt("acme", n, 100))
            .expect("append");
    }
    let later_epoch = db.checkpoint().expect("checkpoint").expect("new");
    db.close().expect("close");
    assert!(later_epoch.epoch > same_epoch.epoch);
    for note in [&same_epoch, &later_epoch] {
        let report = verify_with(&live, &trusted(note));
        assert!(report.verified(), "{:?}", report.damage);
        assert_eq!(report.trusted, Some((note.epoch, note.tree_size)));
    }
    // Roll the store back to the old copy.
    restore_dir(&old, &live);
    assert!(verify_with(&live, &VerifyOptions::default()).verified());
    let end = records(&live).len() as u64;
    for note in [&same_epoch, &later_epoch] {
        assert_damage(
            &verify_with(&live, &trusted(note)),
            end,
            DamageKind::Rollback,
            "rollback",
        );
    }

    // A fork: the old copy continues with different receipts. Its own verification passes,
    // but it does not contain the tree the other branch's checkpoint states.
    let db = Db::open_with(&old, small_options()).expect("open");
    for n in 2_000..2_004 {
        db.append_and_wait(&receipt("acme", n, 100))
            .expect("append");
    }
    db.close().expect("close");
    assert!(verify_with(&old, &VerifyOptions::default()).verified());
    let report = verify_with(&old, &trusted(&same_epoch));
    let damage = report.damage.expect("a fork is detected");
    assert_eq!(damage.kind, DamageKind::Rollback);
    assert!(damage.detail.contains("rewritten"), "{}", damage.detail);
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

#[test]
fn key_substitution_is_detected() {
    let store = small_store();
    let own_key = fs::read_to_string(store.data.join(PUBLIC_KEY_FILE)).expect("read key");
    let other = NoteSigner::generate("mallory")
        .expect("key")
        .verifier()
        .to_vkey();

    let swapped = store.copy("pub-swapped");
    fs::write(swapped.join(PUBLIC_KEY_FILE), format!("{other}\n")).expect("write");
    assert_damage(
        &verify_with(&swapped, &VerifyOptions::default()),
        0,
        DamageKind::Genesis,
        "another key in signing.pub",
    );

    let expect_key = |key: &str| VerifyOptions {
        public_key: Some(key.to_owned()),
        ..VerifyOptions::default()
    };
    assert_damage(
        &verify_with(&store.data, &expect_key(&other)),
        0,
        DamageKind::Genesis,
        "verify against another key",
    );
    assert!(verify_with(&store.data, &expect_key(own_key.trim())).verified());

    // Every bit of the public key text (not its trailing newline).
    let flipped = store.copy("pub-flipped");
    let path = flipped.join(PUBLIC_KEY_FILE);
    let text = own_key.trim_end().as_bytes().to_vec();
    let mut detected = 0;
    for offset in 0..text.len() {
        for bit in 0..8 {
            let mut edited = own_key.clone().into_bytes();
            edited[offset] ^= 1 << bit;
            fs::write(&path, &edited).expect("write");
            // Not UTF-8 any more: verification cannot read the key file (an error).
            if let Ok(report) = trailmix_db::verify_store(&flipped, &VerifyOptions::default()) {
                assert!(
                    report.damage.is_some_and(|d| d.kind == DamageKind::Genesis),
                    "signing.pub byte {offset} bit {bit}"
                );
            }
            detected += 1;
        }
    }
    assert_eq!(detected, text.len() * 8);

    // A store signed with another key cannot be continued with this one.
    let rekeyed = store.copy("rekeyed");
    let mallory = NoteSigner::generate("mallory").expect("key");
    fs::write(
        rekeyed.join(KEYS_DIR).join(SIGNING_KEY_FILE),
        mallory.to_private_key_text(),
    )
    .expect("write key");
    assert!(matches!(
        Db::open_with(&rekeyed, small_options()),
        Err(Error::Key { .. })
    ));
    assert_eq!(
        fs::read_to_string(rekeyed.join(PUBLIC_KEY_FILE)).expect("read key"),
        own_key,
        "a refused open changes nothing"
    );
    assert!(verify_with(&rekeyed, &VerifyOptions::default()).verified());

    // A complete forgery under another key verifies on its own; the key or a checkpoint held
    // outside the store exposes it.
    let forged = build_store(8, 100, small_options());
    assert!(verify_with(&forged.data, &VerifyOptions::default()).verified());
    assert_damage(
        &verify_with(&forged.data, &expect_key(own_key.trim())),
        0,
        DamageKind::Genesis,
        "a store signed with another key",
    );
    let report = verify_with(&forged.data, &trusted(store.latest()));
    assert_eq!(
        report.damage.map(|d| d.kind),
        Some(DamageKind::Rollback),
        "the trusted checkpoint does not verify with the forged store's key"
    );
}

/// Raw frame rewriting with a valid CRC, in place in a segment file (no WAL writer involved).
#[test]
fn in_place_frame_rewrite_with_valid_crc_is_detected() {
    let store = small_store();
    let (_, frames) = layout(&store.data);
    let frame = frames
        .iter()
        .filter(|f| f.entry_kind() == EntryKind::Receipt)
        .nth(2)
        .expect("a receipt");
    let header = read_at(&frame.file, frame.offset, 32);
    let durable_end = Seq(u64::from_le_bytes(
        header[16..24].try_into().expect("8 bytes"),
    ));
    let rewrite = |dir: &Path, entry: &[u8]| {
        let image = frame_image(frame.seq, durable_end, frame.kind, entry);
        assert_eq!(image.len() as u64, frame.end() - frame.offset);
        write_at(
            &wal_dir(dir).join(file_name(&frame.file)),
            frame.offset,
            &image,
        );
    };

    // A payload byte.
    let dir = store.copy("raw-payload");
    let mut entry = frame.payload.clone();
    let last = entry.len() - 3;
    entry[last] ^= 0x20;
    rewrite(&dir, &entry);
    assert_damage(
        &verify_with(&dir, &VerifyOptions::default()),
        frame.seq.0 + 1,
        DamageKind::ChainLink,
        "a payload byte rewritten with a valid CRC",
    );

    // A byte of the previous-hash link: verify names it, and a store that replays the chain
    // at open (no open snapshot covers the entry) refuses to open for writing, naming the same
    // entry. An open from a snapshot does not read the entries it covers: verify's job.
    let dir = store.copy("raw-link");
    let mut entry = frame.payload.clone();
    entry[30] ^= 1;
    rewrite(&dir, &entry);
    assert_damage(
        &verify_with(&dir, &VerifyOptions::default()),
        frame.seq.0,
        DamageKind::ChainLink,
        "a chain link rewritten with a valid CRC",
    );
    std::fs::remove_file(dir.join(trailmix_db::snapshot::SNAPSHOT_FILE)).expect("snapshot");
    match Db::open_with(&dir, small_options()) {
        Err(Error::Damaged { seq, .. }) => assert_eq!(seq, frame.seq),
        other => panic!("expected Damaged at {}, got {other:?}", frame.seq),
    }
}
