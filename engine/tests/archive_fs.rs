//! Guards `Db::archive` on the local-filesystem backend (the embedded default): sealed epochs
//! are archived with a manifest per epoch and a signed archive record in the log; a run stopped
//! after any number of objects resumes into the same archive; an existing object with other
//! content is refused by name and never overwritten; `verify_archive` rebuilds and verifies the
//! history from the archive alone and names a tampered object; archived epochs may be pruned
//! locally (`Db::prune_archived`) and both the store and the archive still verify; a run keeps
//! to its bandwidth limit (`ArchiveOptions::bytes_per_second_max`) and, the file system keeping
//! no checksums, reads every object back whatever the `RemoteCheck`.

mod common;

use std::num::NonZeroU64;
use std::path::Path;
use std::time::Duration;

use trailmix_db::archive::{
    ArchiveError, ArchiveOptions, ArchiveTarget, S3Settings, verify_archive,
};
use trailmix_db::wal::Seq;
use trailmix_db::{Db, DbOptions, Epoch, Error, PruneMode, PruneStop, VerifyOptions};

const PER_EPOCH: u64 = 60;
const SEGMENT_BYTES: u64 = 64 << 10;

fn options() -> DbOptions {
    DbOptions::default().segment_bytes(SEGMENT_BYTES)
}

/// A store with `epochs` sealed epochs of receipts (each fills more than half a segment, so
/// each seal ends its segment), then a few receipts in the open epoch.
fn store(data: &Path, epochs: u64) -> (Db, Seq) {
    let db = Db::open_with(data, options()).expect("open");
    let mut sealed_end = Seq(0);
    for e in 0..epochs {
        for n in 0..PER_EPOCH {
            db.append_and_wait(&common::receipt("acme", e * 1000 + n, 600))
                .expect("append");
        }
        sealed_end = db
            .seal_epoch()
            .expect("seal")
            .expect("sealed")
            .seal_seq
            .next();
    }
    db.append_and_wait(&common::receipt("acme", 999_999, 10))
        .expect("append");
    (db, sealed_end)
}

fn target(dir: &Path) -> ArchiveTarget {
    let url = format!("file://{}", dir.display());
    ArchiveTarget::parse(&url, &S3Settings::default()).expect("url")
}

fn store_id(db: &Db) -> String {
    let reader = trailmix_db::wal::WalReader::open(common::wal_dir(db.data_dir())).expect("wal");
    reader.meta().store_id.to_string()
}

#[test]
fn archives_sealed_epochs_records_them_and_verifies_from_the_archive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, archive) = (tmp.path().join("data"), tmp.path().join("archive"));
    let (db, sealed_end) = store(&data, 3);
    let report = db
        .archive(&target(&archive), &ArchiveOptions::default())
        .expect("archive");
    assert_eq!(
        report.epochs.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(report.objects_present, 0);
    assert!(report.bytes_written > 3 * PER_EPOCH * 600);
    assert_eq!(
        report.record_seqs.len(),
        3,
        "one record per segment-ending run"
    );
    assert_eq!(db.archived_end(), sealed_end);
    let id = store_id(&db);
    for epoch in 0..3 {
        for name in ["manifest.json", "seal", "leaves"] {
            let object = archive
                .join(&id)
                .join(format!("epoch-{epoch:020}"))
                .join(name);
            assert!(object.is_file(), "{} missing", object.display());
        }
    }
    // The records are signed log entries: the store verifies, and they survive a reopen.
    db.close().expect("close");
    assert_eq!(common::archive_records(&data), report.record_seqs);
    common::assert_verifies(&data);
    let db = Db::open_with(&data, options()).expect("reopen");
    assert_eq!(db.archived_end(), sealed_end);
    let again = db
        .archive(&target(&archive), &ArchiveOptions::default())
        .expect("again");
    assert!(again.epochs.is_empty(), "nothing new: {again:?}");
    db.close().expect("close");

    let verified =
        verify_archive(&target(&archive), None, &VerifyOptions::default()).expect("verify");
    assert!(verified.verified(), "{verified:?}");
    assert_eq!(verified.epochs, 3);
    assert_eq!(verified.store_id, id);
    assert_eq!(
        verified.log.as_ref().map(|l| l.receipts),
        Some(3 * PER_EPOCH)
    );
}

#[test]
fn a_run_stopped_after_any_object_resumes_into_the_same_archive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let reference = tmp.path().join("reference");
    let (db, _) = store(&reference, 2);
    db.close().expect("close");
    let whole = tmp.path().join("whole");
    let data = tmp.path().join("data");
    common::restore_dir(&reference, &data);
    let db = Db::open_with(&data, options()).expect("open");
    let full = db
        .archive(&target(&whole), &ArchiveOptions::default())
        .expect("uninterrupted");
    db.close().expect("close");
    let objects = full.objects_written;
    let expected = common::tree(&whole);
    assert!(objects >= 9, "{objects} objects");
    for stop in 0..objects {
        common::restore_dir(&reference, &data);
        let db = Db::open_with(&data, options()).expect("open");
        let archive = tmp.path().join(format!("stopped-{stop}"));
        let options = ArchiveOptions {
            stop_after_objects: Some(stop),
            ..ArchiveOptions::default()
        };
        let err = db.archive(&target(&archive), &options).expect_err("stops");
        assert!(
            matches!(err, Error::Archive(ArchiveError::Interrupted { objects }) if objects == stop),
            "{err}"
        );
        let resumed = db
            .archive(&target(&archive), &ArchiveOptions::default())
            .expect("resume");
        // What the stopped run did is not redone (runs it already recorded are skipped).
        assert!(resumed.objects_present <= stop, "stop {stop}");
        assert!(resumed.objects_written <= objects - stop, "stop {stop}");
        assert_eq!(common::tree(&archive), expected, "stop {stop}");
        db.close().expect("close");
        // Each run of epochs is recorded once, by whichever run verified it.
        assert_eq!(
            common::archive_records(&data).len(),
            full.record_seqs.len(),
            "stop {stop}"
        );
    }
}

#[test]
fn an_object_with_other_content_is_refused_by_name_and_kept() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, archive) = (tmp.path().join("data"), tmp.path().join("archive"));
    let (db, _) = store(&data, 1);
    let id = store_id(&db);
    let squatter = archive
        .join(&id)
        .join(format!("epoch-{:020}", 0))
        .join("leaves");
    std::fs::create_dir_all(squatter.parent().expect("parent")).expect("mkdir");
    std::fs::write(&squatter, b"not the leaves").expect("write");
    let err = db
        .archive(&target(&archive), &ArchiveOptions::default())
        .expect_err("conflict");
    match err {
        Error::Archive(ArchiveError::Conflict { object, .. }) => {
            assert!(
                object.ends_with("epoch-00000000000000000000/leaves"),
                "{object}"
            );
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(std::fs::read(&squatter).expect("read"), b"not the leaves");
    assert_eq!(db.archived_end(), Seq(0));
}

#[test]
fn verify_archive_names_a_tampered_object() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, archive) = (tmp.path().join("data"), tmp.path().join("archive"));
    let (db, _) = store(&data, 2);
    db.archive(&target(&archive), &ArchiveOptions::default())
        .expect("archive");
    let id = store_id(&db);
    db.close().expect("close");
    let epoch1 = archive.join(&id).join(format!("epoch-{:020}", 1));
    let part = std::fs::read_dir(&epoch1)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.display().to_string().contains(".part-"))
        .expect("a segment part");
    let pristine = std::fs::read(&part).expect("read");
    common::flip_bit(&part, 5000, 3);
    let report =
        verify_archive(&target(&archive), None, &VerifyOptions::default()).expect("verify");
    assert!(!report.verified());
    let damage = report.damage.expect("damage");
    assert!(
        damage.object.ends_with(&common::file_name(&part)),
        "{damage}"
    );
    std::fs::write(&part, &pristine).expect("restore");
    let report =
        verify_archive(&target(&archive), None, &VerifyOptions::default()).expect("verify");
    assert!(report.verified(), "{report:?}");
}

#[test]
fn archived_epochs_may_be_pruned_locally_and_still_verify() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, archive) = (tmp.path().join("data"), tmp.path().join("archive"));
    let (db, sealed_end) = store(&data, 3);
    let before = db
        .prune_archived("drop-archived-1", PruneMode::Apply)
        .expect("prune");
    assert!(
        before.epochs.is_empty(),
        "nothing is archived yet: {before:?}"
    );
    assert_eq!(before.stopped, PruneStop::NotArchived { epoch: Epoch(0) });
    db.archive(&target(&archive), &ArchiveOptions::default())
        .expect("archive");
    let pruned = db
        .prune_archived("drop-archived-2", PruneMode::Apply)
        .expect("prune");
    assert_eq!(pruned.epochs, vec![Epoch(0), Epoch(1), Epoch(2)]);
    assert_eq!(pruned.horizon, sealed_end);
    assert_eq!(pruned.segments_removed.len(), 3, "{pruned:?}");
    // More receipts and another archive run after the prune: the records go on.
    for n in 0..PER_EPOCH {
        db.append_and_wait(&common::receipt("acme", 50_000 + n, 600))
            .expect("append");
    }
    db.seal_epoch().expect("seal");
    db.append_and_wait(&common::receipt("acme", 60_000, 10))
        .expect("append");
    let later = db
        .archive(&target(&archive), &ArchiveOptions::default())
        .expect("archive after the prune");
    assert_eq!(later.epochs, vec![Epoch(3)]);
    db.close().expect("close");
    let report = common::assert_verifies(&data);
    assert_eq!(report.pruned.map(|p| p.horizon), Some(sealed_end));
    let db = Db::open_with(&data, options()).expect("reopen");
    assert_eq!(db.prune_horizon(), sealed_end);
    db.close().expect("close");
    let verified =
        verify_archive(&target(&archive), None, &VerifyOptions::default()).expect("verify");
    assert!(verified.verified(), "{verified:?}");
    assert_eq!(verified.epochs, 4);
}

#[test]
fn a_run_keeps_to_its_bandwidth_limit_and_reads_the_file_system_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, archive) = (tmp.path().join("data"), tmp.path().join("archive"));
    let (db, _) = store(&data, 3);
    let limit: u64 = 128 << 10;
    let options = ArchiveOptions {
        bytes_per_second_max: NonZeroU64::new(limit),
        ..ArchiveOptions::default()
    };
    let report = db.archive(&target(&archive), &options).expect("archive");
    db.close().expect("close");
    assert_eq!(report.epochs.len(), 3);
    assert_eq!(report.objects_checked_by_checksum, 0, "{report:?}");
    assert_eq!(report.bytes_read_back, report.bytes_verified, "{report:?}");
    let moved = report.bytes_written + report.bytes_read_back;
    assert!(
        moved > 2 * limit,
        "the test needs more than two seconds' worth: {moved}"
    );
    // A lower bound only: the pacer may run at most one second ahead of the limit.
    #[allow(clippy::cast_precision_loss, reason = "hundreds of kilobytes")]
    let floor = Duration::from_secs_f64(moved as f64 / limit as f64 - 1.0);
    assert!(
        report.elapsed >= floor && report.paced > Duration::ZERO,
        "{moved} bytes at {limit} bytes/s in {:?}: {report:?}",
        report.elapsed
    );
    let verified =
        verify_archive(&target(&archive), None, &VerifyOptions::default()).expect("verify");
    assert!(verified.verified(), "{verified:?}");
}
