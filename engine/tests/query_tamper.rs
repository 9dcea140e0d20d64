//! Guards invariant 5 on the read path: a receipt whose payload, header or stored digests were
//! changed on disk (frame CRC rewritten to match) is refused as `Error::Damaged`, naming its
//! seq, by every query that would return it (`query`, `find_event`, `trace`, a read-only
//! opener's `query`, and the header-only `query_heads` in its three forms), however the read
//! check computes its digests.

mod common;

use std::path::Path;

use common::{event_id, file_name, frame_image, layout, read_at, wal_dir, write_at};
use tempfile::TempDir;
use trailmix_db::entry::{ENTRY_FIXED_BYTES, EntryKind};
use trailmix_db::query::Query;
use trailmix_db::receipt::{ActorType, Kind, Receipt, Timestamp};
use trailmix_db::wal::Seq;
use trailmix_db::{Db, DbOptions, Error, Freshness, PayloadEncryption, ReadOnlyStore, Result};

const TENANT: &str = "acme";
const RECEIPTS: u64 = 12;
/// Which receipt is tampered with (by append order).
const VICTIM: u64 = 5;

/// Receipt `n` of the one tenant and session.
fn receipt(n: u64) -> Receipt {
    Receipt::builder(TENANT, event_id(n), Kind::LlmCall)
        .app_id("claims")
        .actor_type(ActorType::Agent)
        .session_id("s1")
        .event_time(Timestamp::from_unix_nanos(
            1_700_000_000_000_000_000 + i64::try_from(n).expect("fits") * 1_000,
        ))
        .model_name("gpt-4.1")
        .input(serde_json::json!({ "prompt": format!("claim {n}") }))
        .build()
        .expect("valid receipt")
}

fn options(encryption: PayloadEncryption) -> DbOptions {
    DbOptions::default().payload_encryption(encryption)
}

/// Both ways a payload is stored: in the clear only the payload digest guards it; encrypted,
/// the AEAD tag does too.
const ENCRYPTIONS: [PayloadEncryption; 2] = [PayloadEncryption::Off, PayloadEncryption::PerSubject];

/// A closed store of [`RECEIPTS`] receipts of one tenant, all indexed.
fn store(encryption: PayloadEncryption) -> (TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    let db = Db::open_with(&data, options(encryption)).expect("open");
    let tickets: Vec<_> = (0..RECEIPTS)
        .map(|n| db.append(&receipt(n)).expect("append"))
        .collect();
    for ticket in tickets {
        ticket.wait().expect("durable");
    }
    db.query_text(&format!("tenant={TENANT}"), Freshness::Durable)
        .expect("index caught up");
    db.close().expect("close");
    (tmp, data)
}

/// Rewrites receipt [`VICTIM`]'s entry bytes with `edit` in place, with a valid frame CRC;
/// returns its seq.
fn tamper(data: &Path, edit: impl Fn(&mut Vec<u8>)) -> Seq {
    let (_, frames) = layout(data);
    let frame = frames
        .iter()
        .filter(|f| f.entry_kind() == EntryKind::Receipt)
        .nth(usize::try_from(VICTIM).expect("small"))
        .expect("the victim");
    let header = read_at(&frame.file, frame.offset, 32);
    let durable_end = Seq(u64::from_le_bytes(
        header[16..24].try_into().expect("8 bytes"),
    ));
    let mut entry = frame.payload.clone();
    edit(&mut entry);
    let image = frame_image(frame.seq, durable_end, frame.kind, &entry);
    assert_eq!(image.len() as u64, frame.end() - frame.offset);
    write_at(
        &wal_dir(data).join(file_name(&frame.file)),
        frame.offset,
        &image,
    );
    frame.seq
}

fn assert_damaged<T: std::fmt::Debug>(answer: Result<T>, seq: Seq, what: &str) {
    match answer {
        Err(Error::Damaged { seq: at, .. }) => {
            assert_eq!(at, seq, "{what}: names the receipt");
        }
        other => panic!("{what}: expected Damaged at {seq:?}, got {other:?}"),
    }
}

/// Every query path that would return the victim refuses it, in both read modes.
fn assert_refused(data: &Path, encryption: PayloadEncryption, seq: Seq, what: &str) {
    assert_full_reads_refuse(data, encryption, seq, what);
    assert_header_reads_refuse(data, encryption, seq, what);
}

/// The header-only mode (`query_heads`, its tenant-handle and read-only forms) never
/// decrypts the payload, yet refuses a changed header or payload byte as full reads do.
fn assert_header_reads_refuse(data: &Path, encryption: PayloadEncryption, seq: Seq, what: &str) {
    let what = format!("{what} ({encryption:?})");
    let db = Db::open_with(data, options(encryption)).expect("open");
    let query = Query::parse(&format!("tenant={TENANT}")).expect("filter");
    assert_damaged(
        db.query_heads(&query, Freshness::Indexed),
        seq,
        &format!("{what}, query_heads"),
    );
    assert_damaged(
        db.tenant(TENANT)
            .query_heads(&Query::default(), Freshness::Indexed),
        seq,
        &format!("{what}, tenant query_heads"),
    );
    db.close().expect("close");
    let reader = ReadOnlyStore::open(data).expect("read-only open");
    assert_damaged(
        reader.query_heads(&query),
        seq,
        &format!("{what}, read-only query_heads"),
    );
}

fn assert_full_reads_refuse(data: &Path, encryption: PayloadEncryption, seq: Seq, what: &str) {
    let what = format!("{what} ({encryption:?})");
    let what = what.as_str();
    let db =
        Db::open_with(data, options(encryption)).expect("open (the snapshot covers the victim)");
    assert_damaged(
        db.query_text(&format!("tenant={TENANT}"), Freshness::Indexed),
        seq,
        &format!("{what}, tenant query"),
    );
    assert_damaged(
        db.find_event(TENANT, &event_id(VICTIM)),
        seq,
        &format!("{what}, event-id lookup"),
    );
    assert_damaged(
        db.trace(TENANT, "s1", Freshness::Indexed),
        seq,
        &format!("{what}, session trace"),
    );
    // The receipts before it are still served.
    let page = db
        .query_text(&format!("tenant={TENANT} limit=3"), Freshness::Indexed)
        .expect("a page before the victim");
    assert_eq!(page.receipts.len(), 3);
    db.close().expect("close");
    let reader = ReadOnlyStore::open(data).expect("read-only open");
    assert_damaged(
        reader.query_text(&format!("tenant={TENANT}")),
        seq,
        &format!("{what}, read-only query"),
    );
}

#[test]
fn a_rewritten_payload_byte_is_refused_by_queries() {
    for encryption in ENCRYPTIONS {
        let (_tmp, data) = store(encryption);
        let seq = tamper(&data, |entry| {
            let last = entry.len() - 3;
            entry[last] ^= 0x20;
        });
        assert_refused(&data, encryption, seq, "payload byte");
    }
}

#[test]
fn a_rewritten_header_byte_is_refused_by_queries() {
    for encryption in ENCRYPTIONS {
        let (_tmp, data) = store(encryption);
        // The last byte of the model name ("gpt-4.1" -> "gpt-4.0"): still a valid header, so
        // only the digest check can tell.
        let seq = tamper(&data, |entry| {
            // Entry version 3 (the store is written by this build): header length at 4..8.
            assert_eq!(entry[0], trailmix_db::entry::ENTRY_VERSION);
            let header_len = u32::from_le_bytes(entry[4..8].try_into().expect("4 bytes"));
            let header = &mut entry[ENTRY_FIXED_BYTES..ENTRY_FIXED_BYTES + header_len as usize];
            let at = header
                .windows(7)
                .position(|w| w == b"gpt-4.1")
                .expect("model name in the header");
            header[at + 6] = b'0';
        });
        assert_refused(&data, encryption, seq, "header byte");
    }
}

/// Entry version 3 stores no digests: bytes 96 and 128 are header bytes now, still refused.
/// (Version 2's stored digests are guarded by `fixture_store`'s reads of a version 2 store.)
#[test]
fn a_rewritten_stored_digest_is_refused_by_queries() {
    for encryption in ENCRYPTIONS {
        let (_tmp, data) = store(encryption);
        let seq = tamper(&data, |entry| entry[96] ^= 1); // content digest
        assert_refused(&data, encryption, seq, "content digest");
        let (_tmp, data) = store(encryption);
        let seq = tamper(&data, |entry| entry[128] ^= 1); // payload digest
        assert_refused(&data, encryption, seq, "payload digest");
    }
}
