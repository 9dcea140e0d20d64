//! Guards reads of archived epochs that were dropped locally (`Db::prune_archived`) through the
//! archive and the local cache (`DbOptions::archive_reads`, file backend): get, prove, query and
//! the read-only opener answer as before the prune; without an archive such reads fail with
//! `Error::Archived`; a tampered archived object is refused by name and nothing is cached; the
//! cache keeps to its byte limit; interrupted fetches leave nothing that is used; concurrent
//! readers are safe; a shred after caching leaves no readable plaintext; an evidence pack over
//! the dropped range exports through the archive with the same receipts.

mod common;

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use trailmix_db::archive::{
    ARCHIVE_CACHE_DIR, ArchiveError, ArchiveOptions, ArchiveReads, ArchiveTarget, S3Settings,
};
use trailmix_db::entry::{self, EntryKind};
use trailmix_db::proof::verify_inclusion_bundle;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::wal::format::{FRAME_HEADER_BYTES, FrameHeader};
use trailmix_db::{Db, DbOptions, Error, Freshness, PayloadState, PruneMode, ReadOnlyStore};

const CANARY: &str = "canary-7f3a9c";

const PER_EPOCH: u64 = 60;
const SEGMENT_BYTES: u64 = 64 << 10;

/// No timed checkpoints: the tests name entries by seq (a seal's checkpoint is the only other
/// entry of an epoch), and on a loaded machine a 1 s timer fired mid-epoch and moved them.
fn options() -> DbOptions {
    DbOptions::default()
        .segment_bytes(SEGMENT_BYTES)
        .checkpoint_interval(std::time::Duration::from_secs(3600))
}

fn target(dir: &Path) -> ArchiveTarget {
    let url = format!("file://{}", dir.display());
    ArchiveTarget::parse(&url, &S3Settings::default()).expect("url")
}

fn reading(archive: &Path, cache_bytes_max: u64) -> DbOptions {
    options().archive_reads(ArchiveReads::new(target(archive)).cache_bytes_max(cache_bytes_max))
}

/// A receipt of data subject `subject-<n mod 2>` and session `session-<n mod 3>` whose prompt
/// holds [`CANARY`].
fn receipt_of_subject(n: u64) -> Receipt {
    Receipt::builder("acme", common::event_id(n), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_763_800_000_000_000_000))
        .subject_id(format!("subject-{}", n % 2))
        .session_id(format!("session-{}", n % 3))
        .input(serde_json::json!({ "prompt": format!("{CANARY} {n} {}", "y".repeat(600)) }))
        .build()
        .expect("valid receipt")
}

/// Which receipts a test store holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Receipts {
    /// [`common::receipt`]: no data subject.
    Plain,
    /// [`receipt_of_subject`]: two data subjects and a canary.
    OfSubjects,
}

/// A store of three sealed epochs (each seal ends its segment) and one receipt after them,
/// archived, still open.
fn archived_store(data: &Path, archive: &Path, receipts: Receipts) -> Db {
    let db = Db::open_with(data, options()).expect("open");
    for e in 0..3 {
        for n in 0..PER_EPOCH {
            let n = e * 1000 + n;
            let receipt = match receipts {
                Receipts::OfSubjects => receipt_of_subject(n),
                Receipts::Plain => common::receipt("acme", n, 600),
            };
            db.append_and_wait(&receipt).expect("append");
        }
        db.seal_epoch().expect("seal");
    }
    db.append_and_wait(&common::receipt("acme", 999_999, 10))
        .expect("append");
    db.archive(&target(archive), &ArchiveOptions::default())
        .expect("archive");
    db
}

/// [`archived_store`], then dropped locally: the data and archive paths, and the frames of
/// its first segment before the prune.
fn dropped_store(tmp: &Path, receipts: Receipts) -> (PathBuf, PathBuf, Vec<common::FrameLoc>) {
    let (data, archive) = (tmp.join("data"), tmp.join("archive"));
    let db = archived_store(&data, &archive, receipts);
    let (_, mut frames) = common::layout(&data);
    frames.retain(|f| f.segment == 0);
    let pruned = db
        .prune_archived("drop-archived", PruneMode::Apply)
        .expect("prune");
    assert_eq!(pruned.epochs.len(), 3, "{pruned:?}");
    db.close().expect("close");
    (data, archive, frames)
}

/// `segment` (a segment file's bytes) with the receipt in `frame` changed and everything the
/// WAL and the entry check made consistent again (payload and content digests, frame CRC):
/// only the chain (the leaf hash) can tell.
fn forge_receipt(segment: &mut [u8], frame: &common::FrameLoc) {
    let old = entry::decode_entry(EntryKind::Receipt, &frame.payload).expect("a receipt");
    let mut payload = old.payload.to_vec();
    let last = payload.len() - 1;
    payload[last] ^= 1;
    let forged = common::with_payload(frame.kind, &frame.payload, &payload, true);
    assert_eq!(forged.len(), frame.payload.len());
    let at = usize::try_from(frame.offset).expect("fits");
    let header_end = at + usize::try_from(FRAME_HEADER_BYTES).expect("fits");
    let header = FrameHeader::decode_unchecked(&segment[at..header_end]).expect("a frame header");
    let image = common::frame_image(frame.seq, header.durable_end, frame.kind, &forged);
    segment[at..at + image.len()].copy_from_slice(&image);
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The segment directories in the cache.
fn cached_units(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join(ARCHIVE_CACHE_DIR))
        .map(|dir| {
            dir.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Allocated bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut files = Vec::new();
    common::all_files(dir, &mut files);
    files
        .iter()
        .map(|f| std::fs::metadata(f).expect("stat").blocks() * 512)
        .sum()
}

#[test]
fn dropped_receipts_read_through_the_archive_as_before_the_prune() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, archive) = (tmp.path().join("data"), tmp.path().join("archive"));
    // Before the prune: every receipt, proof and query answer of the archived range.
    let db = archived_store(&data, &archive, Receipts::Plain);
    let horizon = db.archived_end();
    let seqs: Vec<Seq> = (0..horizon.0)
        .map(Seq)
        .filter(|s| db.get(*s).is_ok())
        .collect();
    assert_eq!(seqs.len() as u64, 3 * PER_EPOCH);
    let gets: Vec<_> = seqs.iter().map(|s| db.get(*s).expect("get")).collect();
    let proofs: Vec<_> = seqs.iter().map(|s| db.prove(*s).expect("prove")).collect();
    let query = "tenant=acme limit=1000";
    let answer = db.query_text(query, Freshness::Durable).expect("query");
    db.prune_archived("drop", PruneMode::Apply).expect("prune");
    assert_eq!(db.prune_horizon(), horizon);
    // Without an archive to read from, the error says where the receipt is.
    match db.get(seqs[0]) {
        Err(Error::Archived { seq, horizon: h }) => assert_eq!((seq, h), (seqs[0], horizon)),
        other => panic!("expected Archived, got {other:?}"),
    }
    assert!(matches!(db.prove(seqs[0]), Err(Error::Archived { .. })));
    db.close().expect("close");

    let db = Db::open_with(&data, reading(&archive, 1 << 30)).expect("reopen");
    let verifier = db.verifier().clone();
    for ((seq, before), proof) in seqs.iter().zip(&gets).zip(&proofs) {
        assert_eq!(&db.get(*seq).expect("get through the archive"), before);
        let again = db.prove(*seq).expect("prove through the archive");
        assert_eq!(&again, proof, "seq {seq}");
        verify_inclusion_bundle(&again, &verifier).expect("the proof verifies");
    }
    let after = db.query_text(query, Freshness::Durable).expect("query");
    assert_eq!(after.receipts, answer.receipts);
    assert!(db.check_index().expect("check").matches);
    db.close().expect("close");

    // An index rebuilt from scratch finds the archived receipts again (through the archive).
    std::fs::remove_dir_all(data.join("index")).expect("drop the index");
    let db = Db::open_with(&data, reading(&archive, 1 << 30)).expect("reopen");
    let rebuilt = db.query_text(query, Freshness::Durable).expect("query");
    assert_eq!(rebuilt.receipts, answer.receipts);
    db.close().expect("close");

    // The read-only opener (the CLI's) reads through the archive too.
    let reader = ReadOnlyStore::open(&data)
        .expect("read-only")
        .with_archive_reads(ArchiveReads::new(target(&archive)))
        .expect("archive reads");
    assert_eq!(
        reader.query_text(query).expect("query").receipts,
        answer.receipts
    );
    assert_eq!(&reader.prove(seqs[5]).expect("prove"), &proofs[5]);
}

#[test]
fn an_evidence_pack_over_dropped_epochs_exports_through_the_archive() {
    use trailmix_db::keys::{FileKeyProvider, SigningKeyProvider as _};
    use trailmix_db::pack::format::RECEIPTS_FILE;
    use trailmix_db::pack::{ExportOptions, PackScope, TrustedKey, export_pack, verify_pack_files};
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, archive) = (tmp.path().join("data"), tmp.path().join("archive"));
    let db = archived_store(&data, &archive, Receipts::Plain);
    db.checkpoint().expect("checkpoint");
    db.close().expect("close");
    let signer = FileKeyProvider::new(&data).signer("unused").expect("key");
    let scope = PackScope {
        tenant: "acme".into(),
        ..PackScope::default()
    };
    let export = |options: &ExportOptions| export_pack(&data, &signer, &scope, options);
    let (before, _) = export(&ExportOptions::default()).expect("export");

    let db = Db::open_with(&data, options()).expect("open");
    db.prune_archived("drop", PruneMode::Apply).expect("prune");
    db.checkpoint().expect("checkpoint");
    db.close().expect("close");
    let through = ExportOptions {
        archive: Some(ArchiveReads::new(target(&archive))),
        ..ExportOptions::default()
    };
    let (after, _) = export(&through).expect("export through the archive");
    let trusted = TrustedKey::Verifier(signer.verifier());
    let report = verify_pack_files(&after, Some(&trusted)).expect("the pack verifies");
    assert_eq!(report.counts.included, 3 * PER_EPOCH + 1, "{report:?}");
    assert!(report.completeness.is_complete(), "{report:?}");
    assert_eq!(
        after.files.get(RECEIPTS_FILE),
        before.files.get(RECEIPTS_FILE),
        "the same receipts, read from the archive"
    );
    let local = export(&ExportOptions::default());
    assert!(
        local.map_or(true, |(files, _)| files.files.get(RECEIPTS_FILE)
            != before.files.get(RECEIPTS_FILE)),
        "without the archive the dropped receipts are not in the pack"
    );
}

#[test]
fn a_tampered_archived_object_is_refused_by_name_and_nothing_is_cached() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, archive, frames) = dropped_store(tmp.path(), Receipts::Plain);
    let mut parts: Vec<PathBuf> = Vec::new();
    common::all_files(&archive, &mut parts);
    parts.retain(|p| common::file_name(p).contains(".part-"));
    parts.sort();
    let part = parts.first().expect("a segment part").clone();
    let manifest = part.with_file_name("manifest.json");
    let original = std::fs::read(&part).expect("read");

    // A changed part that the manifest does not vouch for.
    let mut changed = original.clone();
    let at = changed.len() - 100;
    changed[at] ^= 1;
    std::fs::write(&part, &changed).expect("tamper");
    let db = Db::open_with(&data, reading(&archive, 1 << 30)).expect("open");
    match db.get(Seq(1)) {
        Err(Error::Archive(ArchiveError::Refused { object, .. })) => {
            assert!(object.ends_with(&common::file_name(&part)), "{object}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(cached_units(&data).is_empty(), "{:?}", cached_units(&data));
    db.close().expect("close");

    // A manifest rewritten to vouch for a changed receipt: the store's retained leaf hashes
    // still refuse it. The receipt's payload is changed and its frame checksum fixed, so only
    // the leaf hash can tell.
    let frame = frames
        .iter()
        .find(|f| f.seq == Seq(3))
        .expect("a receipt frame");
    let mut forged = original.clone();
    forge_receipt(&mut forged, frame);
    std::fs::write(&part, &forged).expect("forge");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let old_sum = sha256_hex(&original);
    let new_sum = sha256_hex(&forged);
    assert!(text.contains(&old_sum));
    std::fs::write(&manifest, text.replace(&old_sum, &new_sum)).expect("rewrite manifest");
    let db = Db::open_with(&data, reading(&archive, 1 << 30)).expect("open");
    match db.get(Seq(1)) {
        Err(Error::Archive(ArchiveError::Refused { object, detail })) => {
            assert!(object.ends_with(&common::file_name(&part)), "{object}");
            assert!(detail.contains("leaf hash"), "{detail}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(cached_units(&data).is_empty(), "{:?}", cached_units(&data));
    db.close().expect("close");
}

#[test]
fn the_cache_keeps_to_its_limit_and_ignores_interrupted_fetches() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, archive, _) = dropped_store(tmp.path(), Receipts::Plain);
    // One segment's size on disk, then a limit that holds one and a half.
    let db = Db::open_with(&data, reading(&archive, 1 << 30)).expect("open");
    let first = db.get(Seq(1)).expect("get");
    db.close().expect("close");
    let one = disk_bytes(&data.join(ARCHIVE_CACHE_DIR));
    assert!(one > 16 << 10, "a cached segment holds its receipts: {one}");
    let limit = one * 3 / 2;
    let db = Db::open_with(&data, reading(&archive, limit)).expect("open");
    let mut seen = Vec::new();
    for seq in [1, PER_EPOCH + 2, 2 * PER_EPOCH + 3, 1] {
        db.get(Seq(seq)).expect("get");
        let units = cached_units(&data);
        assert_eq!(units.len(), 1, "{units:?}");
        assert!(disk_bytes(&data.join(ARCHIVE_CACHE_DIR)) <= limit);
        seen.push(units[0].clone());
    }
    seen.dedup();
    assert_eq!(
        seen.len(),
        4,
        "each read evicted the last segment: {seen:?}"
    );
    db.close().expect("close");

    // A fetch cut short by a crash: a scratch directory and a half-written segment.
    let cache = data.join(ARCHIVE_CACHE_DIR);
    let scratch = cache.join("tmp-1-2-3");
    std::fs::create_dir_all(&scratch).expect("mkdir");
    std::fs::write(scratch.join("00000000000000000001.seg"), b"half").expect("write");
    let half = cache.join("segment-00000000000000000001");
    std::fs::create_dir_all(&half).expect("mkdir");
    std::fs::write(half.join("junk"), vec![7u8; 4096]).expect("write");
    let db = Db::open_with(&data, reading(&archive, limit)).expect("open");
    assert!(
        !scratch.exists(),
        "the scratch directory is removed on open"
    );
    assert!(
        !half.exists(),
        "a directory that is no whole segment is removed on open"
    );
    assert_eq!(db.get(Seq(1)).expect("get"), first);
    db.close().expect("close");
}

#[test]
fn concurrent_readers_of_one_segment_get_the_same_receipts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, archive, _) = dropped_store(tmp.path(), Receipts::Plain);
    let db = Db::open_with(&data, reading(&archive, 1 << 30)).expect("open");
    let answers: Vec<Vec<_>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    (1..PER_EPOCH)
                        .map(|s| db.get(Seq(s)).expect("get"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect()
    });
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(cached_units(&data).len(), 1, "{:?}", cached_units(&data));
    db.close().expect("close");
}

#[test]
fn a_trace_finds_the_session_receipts_of_dropped_epochs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, archive, _) = dropped_store(tmp.path(), Receipts::OfSubjects);
    let db = Db::open_with(&data, reading(&archive, 1 << 30)).expect("open");
    let horizon = db.prune_horizon();
    let expected: Vec<_> = (0..horizon.0)
        .filter_map(|s| db.get(Seq(s)).ok())
        .filter(|r| r.header.session_id() == Some("session-1"))
        .collect();
    assert_eq!(expected.len() as u64, 3 * PER_EPOCH / 3);
    let trace = db
        .trace("acme", "session-1", Freshness::Durable)
        .expect("trace");
    let seqs =
        |r: &[trailmix_db::StoredReceipt]| r.iter().map(|r| r.position.seq.0).collect::<Vec<_>>();
    assert_eq!(
        seqs(&trace.receipts),
        seqs(&expected),
        "{:?}",
        db.index_status()
    );
    assert_eq!(trace.receipts, expected);
    assert!(db.check_index().expect("check").matches);
    db.close().expect("close");
}

#[test]
fn a_shred_after_caching_leaves_no_readable_plaintext() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, archive, _) = dropped_store(tmp.path(), Receipts::OfSubjects);
    let db = Db::open_with(&data, reading(&archive, 1 << 30)).expect("open");
    let read = db.get(Seq(2)).expect("get");
    assert_eq!(read.header.subject_id(), Some("subject-1"));
    assert!(String::from_utf8_lossy(&read.payload).contains(CANARY));
    assert!(matches!(read.payload_state, PayloadState::Decrypted { .. }));
    db.shred("acme", "subject-1", "dsr-1").expect("shred");
    let after = db.get(Seq(2)).expect("get");
    assert!(
        matches!(after.payload_state, PayloadState::Shredded { .. }),
        "{after:?}"
    );
    assert!(after.payload.is_empty());
    let other = db.get(Seq(1)).expect("get");
    assert!(matches!(
        other.payload_state,
        PayloadState::Decrypted { .. }
    ));
    db.close().expect("close");
    assert_eq!(cached_units(&data).len(), 1, "the segment stays cached");
    let mut files = Vec::new();
    common::all_files(&data, &mut files);
    for file in files {
        let bytes = std::fs::read(&file).expect("read");
        assert!(
            !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "{} holds the plaintext",
            file.display()
        );
    }
}
