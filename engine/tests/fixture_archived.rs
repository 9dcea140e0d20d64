//! Guards the on-disk formats of archiving: a small store checked into the repository that
//! archived two epochs to a local archive (also checked in: `wal.meta`, `epoch-N/seal`,
//! `leaves`, segment parts, `manifest.json`), recorded them with archive records (entry kind 8)
//! and then dropped them locally (a prune record with `archived_end`), must still verify, and
//! the archive must verify from itself alone, byte for byte. Regenerate with
//! `TRAILMIX_REGENERATE_FIXTURES=1`.

mod common;

use std::path::{Path, PathBuf};

use trailmix_db::archive::{
    ArchiveOptions, ArchiveRecord, ArchiveTarget, EpochManifest, S3Settings, verify_archive,
};
use trailmix_db::entry::{EntryKind, decode_entry};
use trailmix_db::prune::PruneRecord;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{Db, DbOptions, Epoch, PayloadEncryption, PruneMode, VerifyOptions};

/// Receipts per epoch: more than half a 64 KiB segment, so each seal ends its segment.
const PER_EPOCH: u64 = 40;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/archived-store")
}

fn target(archive: &Path) -> ArchiveTarget {
    ArchiveTarget::parse(
        &format!("file://{}", archive.display()),
        &S3Settings::default(),
    )
    .expect("url")
}

fn receipt(n: u64) -> Receipt {
    Receipt::builder("acme", format!("evt-{n:04}"), Kind::LlmCall)
        .app_id("fixture")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(
            1_763_800_000_000_000_000 + i64::try_from(n).expect("small"),
        ))
        .input(serde_json::json!({ "prompt": format!("request {n} {}", "x".repeat(900)) }))
        .build()
        .expect("valid receipt")
}

fn regenerate() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let (store, archive) = (dir.join("store"), dir.join("archive"));
    let options = DbOptions::default()
        .segment_bytes(64 << 10)
        .payload_encryption(PayloadEncryption::Off);
    let db = Db::open_with(&store, options).expect("create");
    for n in 0..2 * PER_EPOCH {
        db.append_and_wait(&receipt(n)).expect("append");
        if n % PER_EPOCH == PER_EPOCH - 1 {
            db.seal_epoch().expect("seal").expect("sealed");
        }
    }
    db.append_and_wait(&receipt(2 * PER_EPOCH)).expect("append");
    let archived = db
        .archive(&target(&archive), &ArchiveOptions::default())
        .expect("archive");
    assert_eq!(archived.epochs, [Epoch(0), Epoch(1)]);
    let pruned = db
        .prune_archived("archived-fixture", PruneMode::Apply)
        .expect("prune");
    assert_eq!(pruned.epochs, [Epoch(0), Epoch(1)]);
    db.close().expect("close");
    // The signing key never goes into the repository.
    std::fs::remove_file(store.join("keys/signing.key")).expect("remove private key");
    std::fs::remove_dir(store.join("keys")).expect("remove keys dir");
    std::fs::remove_dir_all(store.join("index")).expect("remove index");
    let _ = std::fs::remove_dir_all(store.join("proofs"));
    let _ = std::fs::remove_file(store.join("wal/LOCK"));
}

/// The archive records of the log in `store`.
fn archive_records(store: &Path) -> Vec<ArchiveRecord> {
    let reader = WalReader::open(store.join("wal")).expect("reader");
    let first = reader.segments()[0].header.first_seq;
    reader
        .read_from(first)
        .expect("records")
        .iter()
        .filter(|r| r.kind.get() == EntryKind::Archive as u8)
        .map(|r| {
            let entry = decode_entry(EntryKind::Archive, &r.payload).expect("decodes");
            assert!(entry.signature.is_some(), "archive records are signed");
            serde_json::from_slice(entry.payload).expect("archive record")
        })
        .collect()
}

#[test]
fn checked_in_archived_store_and_archive_verify() {
    if std::env::var("TRAILMIX_REGENERATE_FIXTURES").as_deref() == Ok("1") {
        regenerate();
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    common::copy_dir(&fixture_dir(), scratch.path());
    let (store, archive) = (scratch.path().join("store"), scratch.path().join("archive"));

    let report = common::assert_verifies(&store);
    let pruned = report.pruned.expect("pruned range");
    // Epoch 0: genesis + 40 receipts, seal at 41; epoch 1: 40 receipts, seal at 82.
    assert_eq!((pruned.horizon, pruned.epochs), (Seq(83), 2));
    assert_eq!(pruned.request_id.as_deref(), Some("archived-fixture"));

    let records = archive_records(&store);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(
        (
            records[0].from_seq,
            records[0].to_seq,
            records[0].first_epoch
        ),
        (0, 42, 0)
    );
    assert_eq!(
        (
            records[1].from_seq,
            records[1].to_seq,
            records[1].last_epoch
        ),
        (42, 83, 1)
    );

    let reader = WalReader::open(store.join("wal")).expect("reader");
    let prune = reader
        .read_from(Seq(83))
        .expect("records")
        .into_iter()
        .find(|r| r.kind.get() == EntryKind::Prune as u8)
        .expect("a prune record");
    let entry = decode_entry(EntryKind::Prune, &prune.payload).expect("decodes");
    let record: PruneRecord = serde_json::from_slice(entry.payload).expect("prune record");
    assert_eq!(record.archived_end, Some(83));
    assert!(record.policy.is_empty());

    let store_id = reader.meta().store_id.to_string();
    for (epoch, first_seq, entries) in [(0u64, 0u64, 41u64), (1, 42, 40)] {
        let epoch_dir = archive.join(&store_id).join(format!("epoch-{epoch:020}"));
        let bytes = std::fs::read(epoch_dir.join("manifest.json")).expect("manifest");
        let manifest: EpochManifest = serde_json::from_slice(&bytes).expect("manifest JSON");
        assert_eq!(
            (
                manifest.format,
                manifest.epoch,
                manifest.first_seq,
                manifest.entries
            ),
            (1, epoch, first_seq, entries)
        );
        let leaves = std::fs::read(epoch_dir.join("leaves")).expect("leaves");
        assert_eq!(leaves.len() as u64, 32 * entries);
        let seal = std::fs::read(epoch_dir.join("seal")).expect("seal");
        assert_eq!(
            decode_entry(EntryKind::EpochSeal, &seal)
                .expect("seal entry")
                .chain
                .epoch,
            epoch
        );
        assert_eq!(manifest.segments.len(), 1);
        assert_eq!(manifest.segments[0].first_seq, first_seq);
    }
    let verified =
        verify_archive(&target(&archive), None, &VerifyOptions::default()).expect("verify");
    assert!(verified.verified(), "{verified:?}");
    assert_eq!(verified.log.map(|l| l.receipts), Some(2 * PER_EPOCH));
}
