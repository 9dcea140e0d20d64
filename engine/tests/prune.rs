//! Guards `Db::prune`: whole sealed epochs whose every receipt has expired are dropped as
//! files, their seals, roots and leaf hashes are retained, and the store still verifies with
//! the dropped range reported as "pruned under policy"; holds and unexpired receipts block it;
//! deleted segments without a prune record, and a deleted or edited retained file, are damage.
//! A child process that aborts after each step of the prune protocol leaves either the old
//! store or the pruned one, both verifying before and after the next open finishes the prune.

mod common;

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use trailmix_db::prune::{PruneStep, PruneStop, verify_pruned_inclusion};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::replay::DamageKind;
use trailmix_db::wal::Seq;
use trailmix_db::{
    Db, DbOptions, Error, Freshness, PruneMode, ReceiptPosition, VerifyOptions, verify_store,
};

/// Receipts per epoch: enough bytes that each epoch fills more than half a segment.
const PER_EPOCH: u64 = 60;
const EPOCH_LEN: usize = 60;
const SEGMENT_BYTES: u64 = 64 << 10;

fn options() -> DbOptions {
    DbOptions::default()
        .segment_bytes(SEGMENT_BYTES)
        .retention_class("gone", Duration::ZERO)
        .retention_class("decade", Duration::from_secs(10 * 365 * 86_400))
}

fn receipt(tenant: &str, n: u64, class: Option<&str>) -> Receipt {
    let mut builder = Receipt::builder(tenant, common::event_id(n), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .subject_id(format!("s{}", n % 3))
        .input(serde_json::json!({ "prompt": format!("claim {n}: {}", "x".repeat(600)) }));
    if let Some(class) = class {
        builder = builder.retention_class(class);
    }
    builder.build().expect("valid receipt")
}

/// Appends one sealed epoch of `tenant`'s receipts from `first` with retention `class`.
fn epoch(db: &Db, tenant: &str, first: u64, class: Option<&str>) -> Vec<ReceiptPosition> {
    let positions = (first..first + PER_EPOCH)
        .map(|n| {
            db.append_and_wait(&receipt(tenant, n, class))
                .expect("append")
        })
        .collect();
    db.seal_epoch().expect("seal").expect("sealed");
    positions
}

fn now() -> u64 {
    u64::try_from(Timestamp::now().as_unix_nanos()).expect("after 1970")
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum()
}

fn wal_bytes(data: &Path) -> u64 {
    dir_bytes(&common::wal_dir(data))
}

/// Epochs 0-2 expired (acme), epoch 3 not (globex, decade), then an open epoch.
fn store(data: &Path) -> (Db, Vec<ReceiptPosition>) {
    let db = Db::open_with(data, options()).expect("open");
    let mut positions = epoch(&db, "acme", 0, Some("gone"));
    positions.extend(epoch(&db, "acme", 100, Some("gone")));
    positions.extend(epoch(&db, "acme", 200, Some("gone")));
    positions.extend(epoch(&db, "globex", 300, Some("decade")));
    positions.push(
        db.append_and_wait(&receipt("acme", 400, None))
            .expect("open epoch"),
    );
    (db, positions)
}

#[test]
fn prune_drops_expired_epochs_and_the_store_verifies_as_pruned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("store");
    let (db, positions) = store(&data);
    let before = wal_bytes(&data);
    let report = db
        .prune(now(), "retention-2026-11", PruneMode::Apply)
        .expect("prune");
    assert_eq!(report.epochs.len(), 3, "{report:?}");
    assert_eq!(report.from_seq, Seq(0));
    assert_eq!(report.receipts, 3 * PER_EPOCH);
    assert!(!report.segments_removed.is_empty());
    assert!(
        matches!(report.stopped, PruneStop::NotExpired { .. }),
        "{report:?}"
    );
    let horizon = report.horizon;
    assert_eq!(db.prune_horizon(), horizon);
    let after = wal_bytes(&data);
    let retained = dir_bytes(&data.join(trailmix_db::prune::PRUNED_DIR));
    eprintln!("wal/ {before} -> {after} bytes; pruned/ {retained} bytes");
    assert!(after < before, "the log shrank: {before} -> {after} bytes");
    // Reads: pruned receipts are gone, kept ones read back.
    let gone = db.get(positions[0].seq);
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    let kept = positions[3 * EPOCH_LEN].seq;
    let verifier = db.verifier().clone();
    assert_eq!(db.get(kept).expect("kept").header.tenant_id(), "globex");
    // Queries answer from the kept log only (the index still names pruned receipts).
    let page = db
        .query_text("tenant=acme limit=1000", Freshness::Durable)
        .expect("query");
    assert_eq!(page.receipts.len(), 1, "only the open epoch's acme receipt");
    assert!(page.receipts.iter().all(|r| r.position.seq >= horizon));
    db.close().expect("close");

    // A read-only opener copes with a log that starts after seq 0.
    let reader = trailmix_db::ReadOnlyStore::open(&data).expect("read-only open");
    let page = reader
        .query_text("tenant=globex limit=1000")
        .expect("query");
    assert_eq!(page.receipts.len(), EPOCH_LEN);
    let bundle = reader
        .prove(kept)
        .expect("read-only proof of a kept receipt");
    trailmix_db::proof::verify_inclusion_bundle(&bundle, &verifier).expect("verifies");
    assert!(reader.prove(positions[3].seq).is_err());
    drop(reader);

    let report = common::assert_verifies(&data);
    let pruned = report.pruned.expect("pruned range reported");
    assert_eq!(pruned.horizon, horizon);
    assert_eq!(pruned.epochs, 3);
    assert_eq!(pruned.request_id.as_deref(), Some("retention-2026-11"));

    // Reopen: appends go on chaining (tenant acme's chain links into the pruned range).
    let db = Db::open_with(&data, options()).expect("reopen");
    assert!(
        db.check_index().expect("check").matches,
        "the index was rebuilt from the kept log"
    );
    db.append_and_wait(&receipt("acme", 500, None))
        .expect("append after prune");
    assert_eq!(db.prune_horizon(), horizon);
    let bundle = db.prove(kept).expect("kept proof");
    trailmix_db::proof::verify_inclusion_bundle(&bundle, db.verifier()).expect("kept verifies");
    let pruned_one = positions[EPOCH_LEN + 5];
    let bundle = db.prove_pruned(pruned_one.seq).expect("pruned proof");
    verify_pruned_inclusion(&bundle, db.verifier(), Some(&pruned_one.chain_hash))
        .expect("pruned leaf verifies against the signed seal");
    let other = positions[7].chain_hash;
    assert!(verify_pruned_inclusion(&bundle, db.verifier(), Some(&other)).is_err());
    db.close().expect("close");
    common::assert_verifies(&data);
}

/// Snapshots do not cover a pruned store (opening replays its kept log): the one written
/// before the prune must not stay behind as a file nothing reads.
#[test]
fn a_prune_leaves_no_stale_open_snapshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("store");
    let snapshot = data.join(trailmix_db::snapshot::SNAPSHOT_FILE);
    let (db, _) = store(&data);
    db.close().expect("close");
    assert!(snapshot.exists(), "closing writes the open snapshot");
    let db = Db::open_with(&data, options()).expect("reopen");
    let report = db
        .prune(now(), "retention-2026-11", PruneMode::Apply)
        .expect("prune");
    assert_eq!(report.epochs.len(), 3, "{report:?}");
    db.append_and_wait(&receipt("acme", 500, None))
        .expect("append after prune");
    db.close().expect("close");
    assert!(
        !snapshot.exists(),
        "a stale snapshot stayed after the prune"
    );
    common::assert_verifies(&data);
}

#[test]
fn holds_and_unexpired_receipts_block_pruning_and_a_second_prune_extends_the_horizon() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("store");
    let db = Db::open_with(&data, options()).expect("open");
    epoch(&db, "acme", 0, Some("gone"));
    epoch(&db, "initech", 100, Some("gone"));
    epoch(&db, "acme", 200, Some("gone"));
    epoch(&db, "acme", 300, None);
    db.hold("initech", None, "matter-1").expect("hold");
    let dry = db.prune(now(), "dry", PruneMode::DryRun).expect("dry run");
    assert_eq!(dry.epochs.len(), 1);
    assert_eq!(dry.record_seq, None);
    assert_eq!(db.prune_horizon(), Seq(0), "a dry run changes nothing");
    let first = db.prune(now(), "first", PruneMode::Apply).expect("prune");
    assert_eq!(first.epochs.len(), 1, "{first:?}");
    assert!(
        matches!(&first.stopped, PruneStop::Held { tenant, .. } if tenant == "initech"),
        "{first:?}"
    );
    db.release("initech", None, "matter-1").expect("release");
    let second = db
        .prune(now(), "second", PruneMode::Apply)
        .expect("prune again");
    assert_eq!(second.from_seq, first.horizon);
    assert_eq!(second.epochs.len(), 2, "{second:?}");
    assert!(second.horizon > first.horizon);
    assert!(matches!(second.stopped, PruneStop::NotExpired { .. }));
    db.close().expect("close");
    let report = common::assert_verifies(&data);
    assert_eq!(report.pruned.expect("pruned").epochs, 3);
}

#[test]
fn deleting_segments_without_a_prune_record_is_missing_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("store");
    let (db, _) = store(&data);
    db.close().expect("close");
    let first = std::fs::read_dir(common::wal_dir(&data))
        .expect("wal")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .min()
        .expect("a segment");
    std::fs::remove_file(&first).expect("delete the first segment");
    let report = verify_store(&data, &VerifyOptions::default()).expect("verify runs");
    let damage = report.damage.expect("missing history is damage");
    assert_eq!(damage.kind, DamageKind::Pruned);
    assert!(damage.detail.contains("missing history"), "{damage}");
    assert!(Db::open_with(&data, options()).is_err());
}

#[test]
fn a_deleted_or_edited_retained_file_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("store");
    let (db, _) = store(&data);
    db.prune(now(), "req", PruneMode::Apply).expect("prune");
    db.close().expect("close");
    let pristine = dir.path().join("pristine");
    common::copy_dir(&data, &pristine);
    let pruned = data.join(trailmix_db::prune::PRUNED_DIR);
    let leaves = pruned.join(trailmix_db::prune::PrunedEpoch::file_name(
        trailmix_db::Epoch(1),
    ));

    std::fs::remove_file(&leaves).expect("delete");
    let damage = verify_store(&data, &VerifyOptions::default())
        .expect("verify runs")
        .damage
        .expect("a deleted retained file is damage");
    assert_eq!(damage.kind, DamageKind::Pruned, "{damage}");

    common::restore_dir(&pristine, &data);
    common::assert_verifies(&data);
    common::flip_bit(&leaves, 200, 3);
    let damage = verify_store(&data, &VerifyOptions::default())
        .expect("verify runs")
        .damage
        .expect("an edited retained file is damage");
    assert_eq!(damage.kind, DamageKind::Pruned, "{damage}");

    common::restore_dir(&pristine, &data);
    std::fs::remove_file(pruned.join(trailmix_db::prune::MANIFEST_FILE)).expect("delete");
    let damage = verify_store(&data, &VerifyOptions::default())
        .expect("verify runs")
        .damage
        .expect("a deleted manifest is damage");
    assert_eq!(damage.kind, DamageKind::Pruned, "{damage}");
}

#[test]
fn prune_refuses_a_future_time_and_a_bad_request_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("store");
    let (db, positions) = store(&data);
    // Past the globex receipts' ten years: a prune (and its expiry) must not run that far.
    let future = now() + 11 * 365 * 86_400 * 1_000_000_000;
    assert!(matches!(
        db.prune(future, "req", PruneMode::Apply),
        Err(Error::Prune(trailmix_db::PruneError::FutureTime { .. }))
    ));
    assert!(matches!(
        db.prune(now(), "", PruneMode::Apply),
        Err(Error::Prune(trailmix_db::PruneError::BadRequestId))
    ));
    assert_eq!(db.prune_horizon(), Seq(0));
    // Nothing was shredded by the refused future-time prune either.
    let globex = positions[3 * EPOCH_LEN].seq;
    assert_eq!(
        db.get(globex).expect("read").payload_state.name(),
        "decrypted"
    );
    db.close().expect("close");
    let report = common::assert_verifies(&data);
    assert!(report.pruned.is_none());
}

const DIR_VAR: &str = "TRAILMIX_PRUNE_CHILD_DIR";
const STEP_VAR: &str = "TRAILMIX_PRUNE_CHILD_STEP";
const CHILD_TEST: &str = "child_prunes_and_aborts";

const STEPS: [PruneStep; 6] = [
    PruneStep::RetainedWritten,
    PruneStep::RecordAppended,
    PruneStep::RecordDurable,
    PruneStep::ManifestInstalled,
    PruneStep::FirstSegmentRemoved,
    PruneStep::SegmentsRemoved,
];

/// The child: prunes the store in `$TRAILMIX_PRUNE_CHILD_DIR`, aborting the process at step
/// `$TRAILMIX_PRUNE_CHILD_STEP`. Without the variables it returns at once.
#[test]
fn child_prunes_and_aborts() {
    let (Ok(dir), Ok(step)) = (std::env::var(DIR_VAR), std::env::var(STEP_VAR)) else {
        return;
    };
    let hook = Arc::new(move |at: PruneStep| {
        if format!("{at:?}") == step {
            std::process::abort();
        }
    });
    let db = Db::open_with(&dir, options().prune_step_hook(hook)).expect("child opens");
    db.prune(now(), "req-crash", PruneMode::Apply)
        .expect("prune");
    println!("acknowledged");
}

/// Whether the store in `data` is, once reopened, the pruned one (`Some(horizon)`) or the old
/// one (`None`), checking that it verifies before and after the open that finishes an
/// interrupted prune, and that every kept receipt reads back.
fn state_of(data: &Path, positions: &[ReceiptPosition], step: PruneStep) -> Option<Seq> {
    common::assert_verifies(data);
    let db = Db::open_with(data, options()).expect("reopen after the crash");
    let horizon = db.prune_horizon();
    for position in positions {
        let read = db.get(position.seq);
        if position.seq < horizon {
            assert!(matches!(read, Err(Error::NotFound { .. })), "{step:?}");
        } else {
            read.unwrap_or_else(|e| panic!("{step:?}: kept seq {}: {e}", position.seq));
        }
    }
    db.close().expect("close");
    let after = common::assert_verifies(data);
    let reported = after.pruned.map(|p| p.horizon);
    assert_eq!(reported.unwrap_or(Seq(0)), horizon, "{step:?}");
    reported
}

#[test]
fn a_crash_at_every_step_leaves_the_old_or_the_pruned_store() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let pristine = scratch.path().join("pristine");
    let (db, positions) = store(&pristine);
    db.close().expect("close");
    let data = scratch.path().join("data");
    for step in STEPS {
        if data.exists() {
            std::fs::remove_dir_all(&data).expect("clear");
        }
        common::copy_dir(&pristine, &data);
        let step_name = format!("{step:?}");
        let output = common::run_child(
            CHILD_TEST,
            &[(DIR_VAR, data.as_os_str()), (STEP_VAR, step_name.as_ref())],
        );
        assert_eq!(
            output.status.signal(),
            Some(6),
            "{step:?}: the child must abort"
        );
        let horizon = state_of(&data, &positions, step);
        let committed = !matches!(step, PruneStep::RetainedWritten | PruneStep::RecordAppended);
        if committed {
            assert!(
                horizon.is_some(),
                "{step:?}: a durable prune record is never undone"
            );
        }
        if step == PruneStep::RetainedWritten {
            assert_eq!(horizon, None, "{step:?}: no record, nothing pruned");
            let pruned = data.join(trailmix_db::prune::PRUNED_DIR);
            let left = std::fs::read_dir(&pruned).map_or(0, Iterator::count);
            assert_eq!(
                left, 0,
                "{step:?}: the uncommitted retained files are removed"
            );
        }
    }
}

#[test]
fn evidence_packs_of_a_pruned_store() {
    use trailmix_db::keys::{FileKeyProvider, SigningKeyProvider as _};
    use trailmix_db::pack::{ExportOptions, PackError, PackScope, TrustedKey, export_pack};
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("store");
    let (db, _) = store(&data);
    db.prune(now(), "req", PruneMode::Apply).expect("prune");
    db.close().expect("close");
    let signer = FileKeyProvider::new(&data).signer("unused").expect("key");
    let scope = |tenant: &str| PackScope {
        tenant: tenant.into(),
        ..PackScope::default()
    };
    // globex's receipts are all kept: its pack verifies (the genesis comes from pruned/).
    let (files, _) = export_pack(&data, &signer, &scope("globex"), &ExportOptions::default())
        .expect("export of a kept tenant");
    let report = trailmix_db::pack::verify_pack_files(
        &files,
        Some(&TrustedKey::Verifier(signer.verifier())),
    )
    .expect("the pack verifies");
    assert!(report.completeness.is_complete(), "{report:?}");
    // acme's first kept receipt links into the pruned range: refused, not a false claim.
    let refused = export_pack(&data, &signer, &scope("acme"), &ExportOptions::default());
    assert!(
        matches!(refused, Err(PackError::Unusable(_))),
        "acme export: {:?}",
        refused.as_ref().err()
    );
}
