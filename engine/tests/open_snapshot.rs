//! Guards opening from the open snapshot: a store opened from its snapshot (replaying only the
//! tail) is in the same state as one that replays the whole log, and a damaged, foreign,
//! stale, half-written or out-of-reach snapshot is ignored for a full replay with that result.

mod common;

use std::path::{Path, PathBuf};

use common::{copy_dir, layout, receipt, truncate};
use trailmix_db::entry::{EntryKind, decode_entry};
use trailmix_db::receipt::Receipt;
use trailmix_db::snapshot::{
    OpenSnapshot, SNAPSHOT_FILE, SNAPSHOT_TEMP_FILE, SNAPSHOT_VERSION, Snapshot, SnapshotError,
};
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{Db, DbOptions, Error, EventCheck};

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

fn options() -> DbOptions {
    DbOptions::default()
        .segment_bytes(64 << 10)
        .checkpoint_every_records(7)
        // Only size-driven and explicit checkpoints: two opens compared must write the same.
        .checkpoint_interval(std::time::Duration::from_secs(3600))
        .epoch_records_max(40)
        .snapshot_every_entries(25)
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Receipt `n` belongs to tenant `n % 3`.
fn numbered(n: u64) -> Receipt {
    receipt(TENANTS[usize::try_from(n % 3).expect("small")], n, 40)
}

/// The same event id and tenant as [`numbered`], other contents.
fn changed(n: u64) -> Receipt {
    receipt(TENANTS[usize::try_from(n % 3).expect("small")], n, 41)
}

/// One round of a seeded workload: new receipts, retries of old ones, checkpoints, seals,
/// holds. Returns the next receipt number.
fn workload(db: &Db, rng: &mut Rng, mut next: u64) -> u64 {
    for _ in 0..60 {
        match rng.below(20) {
            0 => {
                db.checkpoint().expect("checkpoint");
            }
            1 => {
                db.seal_epoch().expect("seal");
            }
            2 => {
                let tenant = TENANTS[usize::try_from(rng.below(3)).expect("small")];
                let id = format!("hold-{next}");
                if db.hold(tenant, None, &id).is_err() {
                    db.release(tenant, None, &id).expect("release");
                }
            }
            3 if next > 0 => {
                let old = rng.below(next);
                db.append_and_wait(&numbered(old))
                    .expect("idempotent retry");
            }
            _ => {
                db.append_and_wait(&numbered(next)).expect("append");
                next += 1;
            }
        }
    }
    next
}

/// What a fresh open must agree on: the next seq, the next checkpoint's note (epoch, tree size
/// and root, tenant tips), the holds, idempotency and conflicts for old event ids, and where
/// the next receipt goes. Changes the store (appends).
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    durable_end: Seq,
    checkpoint: Option<(u64, u64, String)>,
    holds: Vec<String>,
    old_events: Vec<String>,
    next_seqs: Vec<Seq>,
    tenant_links: Vec<(u64, u64, Vec<u8>)>,
}

fn observe(db: &Db, receipts: u64) -> Observed {
    let durable_end = db.durable_end();
    let checkpoint = db
        .checkpoint()
        .expect("checkpoint")
        .map(|c| (c.epoch.0, c.tree_size, c.note));
    let holds = db
        .holds()
        .expect("holds")
        .iter()
        .map(|h| format!("{h:?}"))
        .collect();
    let mut old_events = Vec::new();
    for n in (0..receipts).step_by(7) {
        let check = match db.check_event(&numbered(n)).expect("check") {
            EventCheck::Same(p) => format!("same {}", p.seq),
            other => format!("{other:?}"),
        };
        let retry = db.append_and_wait(&numbered(n)).expect("retry").seq;
        let conflict = match db.append_and_wait(&changed(n)) {
            Err(Error::Conflict { .. }) => "conflict".to_owned(),
            other => format!("{other:?}"),
        };
        old_events.push(format!("{n}: {check}, retry at {retry}, {conflict}"));
    }
    // One new receipt per tenant: where it goes, and (read from the log after close, see
    // `tenant_links`) which receipt of its tenant it links to.
    let next_seqs = (receipts..receipts + 3)
        .map(|n| db.append_and_wait(&numbered(n)).expect("new receipt").seq)
        .collect();
    Observed {
        durable_end,
        checkpoint,
        holds,
        old_events,
        next_seqs,
        tenant_links: Vec::new(),
    }
}

/// The epoch and tenant link (previous seq and chain hash of the tenant) of each entry at
/// `seqs` in the closed store `dir`. Unlike chain hashes of new entries, these do not depend
/// on the clock.
fn tenant_links(dir: &Path, seqs: &[Seq]) -> Vec<(u64, u64, Vec<u8>)> {
    let reader = WalReader::open(dir.join("wal")).expect("reader");
    seqs.iter()
        .map(|seq| {
            let record = reader.read_from(*seq).expect("read").remove(0);
            let entry = decode_entry(EntryKind::Receipt, &record.payload).expect("entry");
            (
                entry.chain.epoch,
                entry.chain.tenant_prev_seq,
                entry.chain.tenant_prev_hash.to_vec(),
            )
        })
        .collect()
}

fn scratch(name: &str) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join(name);
    (root, dir)
}

/// Opens a copy of `dir` with its snapshot and a copy without; checks that the first used the
/// snapshot (`expect_used`) or ignored it, and that both reach the same state.
fn compare_with_full_replay(dir: &Path, receipts: u64, expect_used: bool) -> OpenSnapshot {
    let work = tempfile::tempdir().expect("tempdir");
    let (with, without) = (work.path().join("with"), work.path().join("without"));
    copy_dir(dir, &with);
    copy_dir(dir, &without);
    let _ = std::fs::remove_file(without.join(SNAPSHOT_FILE));
    let db = Db::open_with(&with, options()).expect("open with snapshot");
    let report = db.open_snapshot().clone();
    assert_eq!(
        matches!(report, OpenSnapshot::Used { .. }),
        expect_used,
        "{report:?}"
    );
    let mut observed = observe(&db, receipts);
    db.close().expect("close");
    observed.tenant_links = tenant_links(&with, &observed.next_seqs);
    let full = Db::open_with(&without, options()).expect("open without snapshot");
    assert_eq!(full.open_snapshot(), &OpenSnapshot::Absent);
    let mut replayed = observe(&full, receipts);
    full.close().expect("close");
    replayed.tenant_links = tenant_links(&without, &replayed.next_seqs);
    assert_eq!(replayed, observed);
    report
}

/// A store with a few rounds of the workload, closed cleanly; returns the receipts it holds.
fn build_store(dir: &Path, seed: u64, rounds: usize) -> u64 {
    let mut rng = Rng(seed);
    let mut next = 0;
    for _ in 0..rounds {
        let db = Db::open_with(dir, options()).expect("open");
        next = workload(&db, &mut rng, next);
        db.close().expect("close");
    }
    next
}

#[test]
fn opening_from_the_snapshot_reaches_the_state_of_a_full_replay() {
    let (_root, dir) = scratch("store");
    let mut rng = Rng(0x5eed_0f0b);
    let mut next = 0;
    let mut tails_replayed = 0;
    for round in 0..5 {
        let db = Db::open_with(&dir, options()).expect("open");
        if round > 0 {
            // The last close wrote a snapshot of everything: nothing left to replay.
            assert!(
                matches!(db.open_snapshot(), OpenSnapshot::Used { replayed: 0, .. }),
                "{:?}",
                db.open_snapshot()
            );
        }
        next = workload(&db, &mut rng, next);
        // A crash image: the writer's last periodic snapshot and a tail after it.
        db.sync().expect("sync");
        let crashed = dir.with_extension(format!("crashed-{round}"));
        copy_dir(&dir, &crashed);
        if let OpenSnapshot::Used { replayed, .. } = compare_with_full_replay(&crashed, next, true)
        {
            tails_replayed += replayed;
        }
        std::fs::remove_dir_all(&crashed).expect("remove copy");
        db.close().expect("close");
        compare_with_full_replay(&dir, next, true);
    }
    // The crash images replayed tails after the writer's periodic snapshots.
    assert!(tails_replayed > 0);
}

/// Rewrites the snapshot file of `dir` with `edit`, and its checksum when `fix_checksum`.
fn edit_snapshot(dir: &Path, fix_checksum: bool, edit: impl FnOnce(&mut Vec<u8>)) {
    let path = dir.join(SNAPSHOT_FILE);
    let mut bytes = std::fs::read(&path).expect("snapshot");
    edit(&mut bytes);
    if fix_checksum && bytes.len() > 32 {
        let body = bytes.len() - 32;
        let checksum = blake3::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(checksum.as_bytes());
    }
    std::fs::write(&path, bytes).expect("write snapshot");
}

fn ignored_reason(report: &OpenSnapshot) -> &SnapshotError {
    match report {
        OpenSnapshot::Ignored { reason } => reason,
        other => panic!("expected an ignored snapshot, got {other:?}"),
    }
}

/// A named edit of a snapshot file, and whether the checksum is fixed after it.
type Damage = (&'static str, bool, Box<dyn Fn(&mut Vec<u8>)>);

#[test]
fn a_damaged_or_foreign_snapshot_is_ignored_for_a_full_replay() {
    let (_root, dir) = scratch("store");
    let receipts = build_store(&dir, 7, 2);
    let (_other_root, other) = scratch("other");
    build_store(&other, 8, 1);
    let cases: Vec<Damage> = vec![
        ("flipped byte", false, Box::new(|b| b[100] ^= 0x10)),
        ("truncated", false, Box::new(|b| b.truncate(b.len() / 2))),
        ("empty", false, Box::new(Vec::clear)),
        // Version 1 held the filter in another bit layout: read today, it would answer "not
        // seen" for stored events.
        (
            "version 1",
            true,
            Box::new(|b| b[8..12].copy_from_slice(&1u32.to_le_bytes())),
        ),
        (
            "unknown version",
            true,
            Box::new(|b| b[8..12].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes())),
        ),
        // The seq moved onto another entry, checksum fixed: the chain hash does not bind.
        (
            "wrong seq",
            true,
            Box::new(|b| {
                let seq = u64::from_le_bytes(b[12..20].try_into().expect("8 bytes"));
                b[12..20].copy_from_slice(&(seq - 3).to_le_bytes());
            }),
        ),
        (
            "seq past the log",
            true,
            Box::new(|b| b[12..20].copy_from_slice(&1_000_000u64.to_le_bytes())),
        ),
    ];
    for (name, fix_checksum, edit) in cases {
        let work = dir.with_extension(name.replace(' ', "-"));
        copy_dir(&dir, &work);
        edit_snapshot(&work, fix_checksum, edit);
        let report = compare_with_full_replay(&work, receipts, false);
        let reason = ignored_reason(&report);
        match name {
            "wrong seq" => assert!(
                matches!(reason, SnapshotError::ChainHashDiffers { .. }),
                "{name}: {reason}"
            ),
            "seq past the log" => assert!(
                matches!(reason, SnapshotError::BeyondLogEnd { .. }),
                "{name}: {reason}"
            ),
            _ => assert!(
                matches!(reason, SnapshotError::Malformed { .. }),
                "{name}: {reason}"
            ),
        }
        std::fs::remove_dir_all(&work).expect("remove copy");
    }
    // Another store's snapshot.
    let work = dir.with_extension("foreign");
    copy_dir(&dir, &work);
    std::fs::copy(other.join(SNAPSHOT_FILE), work.join(SNAPSHOT_FILE)).expect("copy snapshot");
    let report = compare_with_full_replay(&work, receipts, false);
    assert!(
        matches!(
            ignored_reason(&report),
            SnapshotError::ChainHashDiffers { .. } | SnapshotError::Foreign { .. }
        ),
        "{report:?}"
    );
}

#[test]
fn an_older_snapshot_of_the_same_log_is_used_with_a_longer_tail() {
    let (_root, dir) = scratch("store");
    let mut rng = Rng(11);
    let db = Db::open_with(&dir, options()).expect("open");
    let next = workload(&db, &mut rng, 0);
    db.close().expect("close");
    let old = std::fs::read(dir.join(SNAPSHOT_FILE)).expect("snapshot");
    let db = Db::open_with(&dir, options()).expect("open");
    let next = workload(&db, &mut rng, next);
    db.close().expect("close");
    std::fs::write(dir.join(SNAPSHOT_FILE), &old).expect("restore old snapshot");
    let report = compare_with_full_replay(&dir, next, true);
    assert!(
        matches!(report, OpenSnapshot::Used { replayed, .. } if replayed > 30),
        "{report:?}"
    );
}

#[test]
fn a_crash_between_the_temporary_file_and_the_rename_leaves_a_store_that_opens() {
    let (_root, dir) = scratch("store");
    let receipts = build_store(&dir, 3, 1);
    let whole = std::fs::read(dir.join(SNAPSHOT_FILE)).expect("snapshot");
    // The next snapshot was half written when the process died: the old one is in place.
    std::fs::write(dir.join(SNAPSHOT_TEMP_FILE), &whole[..whole.len() / 2]).expect("temp");
    compare_with_full_replay(&dir, receipts, true);
    // The same before any snapshot was ever renamed into place.
    std::fs::remove_file(dir.join(SNAPSHOT_FILE)).expect("remove snapshot");
    let db = Db::open_with(&dir, options()).expect("open");
    assert_eq!(db.open_snapshot(), &OpenSnapshot::Absent);
    db.close().expect("close");
    // The clean close wrote a whole snapshot over the leftover.
    let db = Db::open_with(&dir, options()).expect("open");
    assert!(matches!(db.open_snapshot(), OpenSnapshot::Used { .. }));
    db.close().expect("close");
}

#[test]
fn a_log_cut_before_the_snapshot_ignores_it() {
    let (_root, dir) = scratch("store");
    let receipts = build_store(&dir, 5, 1);
    let snapshot = Snapshot::decode(&std::fs::read(dir.join(SNAPSHOT_FILE)).expect("snapshot"))
        .expect("decodes");
    let (segments, frames) = layout(&dir);
    let keep = usize::try_from(snapshot.seq.0).expect("fits") - 4;
    truncate(&dir, &segments, &frames, keep);
    let lost: u64 = frames[keep..]
        .iter()
        .filter(|f| f.kind == EntryKind::Receipt as u8)
        .count() as u64;
    let report = compare_with_full_replay(&dir, receipts - lost, false);
    assert!(
        matches!(ignored_reason(&report), SnapshotError::BeyondLogEnd { .. }),
        "{report:?}"
    );
    // The log grows again past the old seq with other entries: the old snapshot no longer binds.
    let old = std::fs::read(dir.join(SNAPSHOT_FILE)).expect("snapshot");
    let db = Db::open_with(&dir, options()).expect("open");
    for n in 0..10 {
        db.append_and_wait(&receipt("regrown", 1_000 + n, 3))
            .expect("append");
    }
    db.close().expect("close");
    std::fs::write(dir.join(SNAPSHOT_FILE), &old).expect("restore old snapshot");
    let report = compare_with_full_replay(&dir, receipts - lost, false);
    assert!(
        matches!(
            ignored_reason(&report),
            SnapshotError::ChainHashDiffers { .. }
        ),
        "{report:?}"
    );
}
