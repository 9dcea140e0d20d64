//! Guards the on-disk formats of pruning: a small pruned store checked into the repository
//! (a log that starts after seq 0, `pruned/manifest`, two `pruned/epoch-N.leaves` files and a
//! prune record) must still verify with the range reported as pruned under policy, byte for
//! byte. Regenerate with `TRAILMIX_REGENERATE_FIXTURES=1`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use trailmix_db::entry::{EntryKind, decode_entry};
use trailmix_db::prune::{
    LEAVES_MAGIC, MANIFEST_FILE, MANIFEST_MAGIC, PRUNED_DIR, PruneRecord, PrunedEpoch,
};
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::{Seq, WalReader};
use trailmix_db::{Db, DbOptions, Epoch, PayloadEncryption, PruneMode};

/// Receipts per pruned epoch: more than half a 64 KiB segment, so each seal ends its segment.
const PER_EPOCH: u64 = 40;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pruned-store")
}

fn receipt(n: u64, class: Option<&str>) -> Receipt {
    let mut builder = Receipt::builder("acme", format!("evt-{n:04}"), Kind::LlmCall)
        .app_id("fixture")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(
            1_763_800_000_000_000_000 + i64::try_from(n).expect("small"),
        ))
        .input(serde_json::json!({ "prompt": format!("request {n} {}", "x".repeat(900)) }));
    if let Some(class) = class {
        builder = builder.retention_class(class);
    }
    builder.build().expect("valid receipt")
}

fn regenerate() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let options = DbOptions::default()
        .segment_bytes(64 << 10)
        .payload_encryption(PayloadEncryption::Off)
        .retention_class("gone", Duration::ZERO);
    let db = Db::open_with(&dir, options).expect("create");
    for n in 0..2 * PER_EPOCH {
        db.append_and_wait(&receipt(n, Some("gone")))
            .expect("append");
        if n % PER_EPOCH == PER_EPOCH - 1 {
            db.seal_epoch().expect("seal").expect("sealed");
        }
    }
    db.append_and_wait(&receipt(2 * PER_EPOCH, None))
        .expect("append");
    let now = u64::try_from(Timestamp::now().as_unix_nanos()).expect("after 1970");
    let report = db
        .prune(now, "retention-fixture", PruneMode::Apply)
        .expect("prune");
    assert_eq!(report.epochs, [Epoch(0), Epoch(1)]);
    db.close().expect("close");
    // The signing key never goes into the repository.
    std::fs::remove_file(dir.join("keys/signing.key")).expect("remove private key");
    std::fs::remove_dir(dir.join("keys")).expect("remove keys dir");
    std::fs::remove_dir_all(dir.join("index")).expect("remove index");
    let _ = std::fs::remove_dir_all(dir.join("proofs"));
    let _ = std::fs::remove_file(dir.join("wal/LOCK"));
}

#[test]
fn checked_in_pruned_store_verifies_as_pruned_under_policy() {
    if std::env::var("TRAILMIX_REGENERATE_FIXTURES").as_deref() == Ok("1") {
        regenerate();
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let store = scratch.path().join("store");
    common::copy_dir(&fixture_dir(), &store);

    let report = common::assert_verifies(&store);
    let pruned = report.pruned.expect("pruned range");
    // Epoch 0: genesis + 40 receipts, seal at 41; epoch 1: 40 receipts, seal at 82.
    assert_eq!((pruned.horizon, pruned.epochs), (Seq(83), 2));
    assert_eq!(pruned.request_id.as_deref(), Some("retention-fixture"));

    let dir = store.join(PRUNED_DIR);
    let manifest = std::fs::read(dir.join(MANIFEST_FILE)).expect("manifest");
    assert_eq!(manifest[..8], MANIFEST_MAGIC);
    let body: serde_json::Value =
        serde_json::from_slice(&manifest[8..manifest.len() - 32]).expect("manifest JSON");
    assert_eq!(body["format"], 1);
    assert_eq!(body["horizon"], 83);
    for (epoch, first_seq, entries) in [(0u64, 0u64, 41u64), (1, 42, 40)] {
        let file = std::fs::read(dir.join(PrunedEpoch::file_name(Epoch(epoch)))).expect("leaves");
        assert_eq!(file[..8], LEAVES_MAGIC);
        let field = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().expect("8"));
        assert_eq!(
            (field(8), field(16), field(24)),
            (epoch, first_seq, entries)
        );
        let seal_len = u32::from_le_bytes(file[32..36].try_into().expect("4")) as usize;
        let seal = decode_entry(EntryKind::EpochSeal, &file[36..36 + seal_len]).expect("seal");
        assert_eq!(seal.chain.epoch, epoch);
        assert_eq!(
            file.len(),
            36 + seal_len + 32 * usize::try_from(entries).expect("small") + 32
        );
    }

    let reader = WalReader::open(store.join("wal")).expect("reader");
    assert_eq!(reader.segments()[0].header.first_seq, Seq(83));
    let records = reader.read_from(Seq(83)).expect("records");
    let prune = records
        .iter()
        .find(|r| r.kind.get() == EntryKind::Prune as u8)
        .expect("a prune record");
    let entry = decode_entry(EntryKind::Prune, &prune.payload).expect("decodes");
    assert!(entry.signature.is_some(), "prune records are signed");
    let record: PruneRecord = serde_json::from_slice(entry.payload).expect("prune record");
    assert_eq!(
        (
            record.from_seq,
            record.horizon,
            record.first_epoch,
            record.last_epoch
        ),
        (0, 83, 0, 1)
    );
    assert_eq!(record.receipts, 2 * PER_EPOCH);
    assert_eq!(record.policy.get("gone"), Some(&0));
}
