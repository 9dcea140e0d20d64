//! Guards invariant 5 on the read path: a receipt whose payload, header or stored digests were
//! changed on disk (frame CRC rewritten to match) is refused as `Error::Damaged`, naming its
//! seq, by every query that would return it (`query`, `find_event`, `trace`, a read-only
//! opener's `query`, and the header-only `query_heads` in its three forms), however the read
//! check computes its digests; and that damage to the next entry, whose link guards a version
//! 3 receipt, does not turn that check off (live writer, closed store, read-only opener);
//! that the link check's unchecked read of the next entry passes a receipt only on an equal
//! hash; that a query page, which checks most results through the tenant links of the
//! results after them, still refuses a rewritten result wherever it is in the page, in either
//! order;
//! and that log scans (the unindexed tail of `find_event`, `follow`) check links too.

mod common;

use std::path::{Path, PathBuf};

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
    tamper_receipt(data, VICTIM, edit)
}

/// Rewrites receipt `number`'s (append order) entry bytes with `edit`, frame CRC rewritten.
fn tamper_receipt(data: &Path, number: u64, edit: impl Fn(&mut Vec<u8>)) -> Seq {
    let (_, frames) = layout(data);
    let frame = frames
        .iter()
        .filter(|f| f.entry_kind() == EntryKind::Receipt)
        .nth(usize::try_from(number).expect("small"))
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

// ---------------------------------------------------------------------------------------------
// A version 3 receipt's bytes are guarded by the next entry's link. Damage to that next entry
// must not turn the check off: only a next entry that is not durable yet may be missing.

/// Segments small enough that a few hundred receipts fill several (sealed) ones.
fn small_segments(encryption: PayloadEncryption) -> DbOptions {
    options(encryption).segment_bytes(64 << 10)
}

/// Many receipts of [`TENANT`], appended and indexed; `data` is left closed.
fn write_receipts(data: &Path, options: DbOptions, count: u64) {
    let db = Db::open_with(data, options).expect("open");
    let tickets: Vec<_> = (0..count)
        .map(|n| db.append(&receipt(n)).expect("append"))
        .collect();
    for ticket in tickets {
        ticket.wait().expect("durable");
    }
    db.query_text(&format!("tenant={TENANT}"), Freshness::Durable)
        .expect("index caught up");
    db.close().expect("close");
}

/// The first receipt frame whose next frame is in the same segment and passes `segment_ok`
/// (given the segment index and whether it is the log's last segment), with the frame after.
fn victim_with_next(
    data: &Path,
    segment_ok: impl Fn(usize, bool) -> bool,
) -> (common::FrameLoc, common::FrameLoc) {
    let (segments, frames) = layout(data);
    let last = segments.len() - 1;
    frames
        .windows(3)
        .find(|w| {
            w[0].entry_kind() == EntryKind::Receipt
                && w[0].segment == w[1].segment
                && w[1].segment == w[2].segment
                && segment_ok(w[0].segment, w[0].segment == last)
        })
        .map(|w| (w[0].clone(), w[1].clone()))
        .expect("a receipt with a next entry in its segment")
}

/// Flips a payload byte of `frame` (frame CRC rewritten, so only the chain can tell).
fn rewrite_payload_byte(data: &Path, frame: &common::FrameLoc) {
    let header = read_at(&frame.file, frame.offset, 32);
    let durable_end = Seq(u64::from_le_bytes(
        header[16..24].try_into().expect("8 bytes"),
    ));
    let mut entry = frame.payload.clone();
    let last = entry.len() - 3;
    entry[last] ^= 0x20;
    write_at(
        &wal_dir(data).join(file_name(&frame.file)),
        frame.offset,
        &frame_image(frame.seq, durable_end, frame.kind, &entry),
    );
}

/// Breaks `frame`'s CRC (a payload byte changed, the CRC left as it was).
fn break_crc(frame: &common::FrameLoc) {
    common::flip_bit(&frame.file, frame.payload_end() - 2, 3);
}

/// The receipt number (append order) of the receipt at `frame`.
fn receipt_number(data: &Path, frame: &common::FrameLoc) -> u64 {
    let (_, frames) = layout(data);
    frames
        .iter()
        .filter(|f| f.entry_kind() == EntryKind::Receipt)
        .position(|f| f.seq == frame.seq)
        .expect("a receipt") as u64
}

/// Every read of the victim (point read, full and header-only queries) through `db`.
fn assert_db_refuses(db: &Db, seq: Seq, number: u64, what: &str) {
    assert_damaged(db.get(seq), seq, &format!("{what}: Db::get"));
    let text = format!("tenant={TENANT} event={}", event_id(number));
    assert_damaged(
        db.query_text(&text, Freshness::Indexed),
        seq,
        &format!("{what}: query"),
    );
    let query = Query::parse(&text).expect("filter");
    assert_damaged(
        db.query_heads(&query, Freshness::Indexed),
        seq,
        &format!("{what}: query_heads"),
    );
}

fn assert_reader_refuses(data: &Path, seq: Seq, number: u64, what: &str) {
    let reader = ReadOnlyStore::open(data).expect("read-only open");
    let text = format!("tenant={TENANT} event={}", event_id(number));
    assert_damaged(
        reader.query_text(&text),
        seq,
        &format!("{what}: read-only query"),
    );
    let query = Query::parse(&text).expect("filter");
    assert_damaged(
        reader.query_heads(&query),
        seq,
        &format!("{what}: read-only query_heads"),
    );
}

/// A closed store of 400 receipts in 64 KiB segments and a victim receipt whose next entry
/// lies in the same sealed segment (the writer does not walk sealed segments on open).
fn victim_in_sealed_segment() -> (TempDir, PathBuf, common::FrameLoc, common::FrameLoc) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    write_receipts(&data, small_segments(PayloadEncryption::Off), 400);
    let (victim, next) = victim_with_next(&data, |_, last| !last);
    (tmp, data, victim, next)
}

/// A closed store of 40 receipts and a victim receipt whose next entry lies in the last,
/// open segment.
fn victim_in_open_segment() -> (TempDir, PathBuf, common::FrameLoc, common::FrameLoc) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    write_receipts(&data, options(PayloadEncryption::Off), 40);
    let (victim, next) = victim_with_next(&data, |_, last| last);
    (tmp, data, victim, next)
}

/// The hole this guards: a rewritten receipt whose next frame is also damaged (its CRC
/// broken) used to read as good, because the link check was skipped whenever the next entry
/// could not be read.
#[test]
fn a_damaged_next_entry_does_not_skip_the_link_check() {
    // The victim and its next entry inside a sealed segment: the writer opens (it does not
    // walk sealed segments), and every reader meets the damage.
    let (_sealed, data, victim, next) = victim_in_sealed_segment();
    let number = receipt_number(&data, &victim);
    rewrite_payload_byte(&data, &victim);
    break_crc(&next);
    let db = Db::open_with(&data, small_segments(PayloadEncryption::Off)).expect("open");
    assert_db_refuses(&db, victim.seq, number, "sealed segment");
    db.close().expect("close");
    assert_reader_refuses(&data, victim.seq, number, "sealed segment");

    // In the last, open segment a reader stops at the damaged frame as it would at the log's
    // end: what tells them apart is that entries after it were durable.
    let (_open, data, victim, next) = victim_in_open_segment();
    let number = receipt_number(&data, &victim);
    rewrite_payload_byte(&data, &victim);
    break_crc(&next);
    assert_reader_refuses(&data, victim.seq, number, "open segment");
}

/// Where entry `frame`'s `prev_chain_hash` starts in its segment file (frame header 32 bytes,
/// the field at bytes 24..56 of the entry).
fn prev_hash_offset(frame: &common::FrameLoc) -> u64 {
    frame.offset + 32 + 24
}

/// The link check reads the next entry's `prev_chain_hash` without its frame checksum and
/// trusts that read only when it equals the receipt's recomputed chain hash; anything else
/// (different bytes, a frame header the walk cannot step onto) goes to the checked read, which
/// refuses. A next entry damaged elsewhere whose link still names the receipt does not fail
/// the receipt's read (its own read fails).
#[test]
fn the_unchecked_link_read_vouches_only_for_an_equal_hash() {
    let open =
        |data: &Path| Db::open_with(data, small_segments(PayloadEncryption::Off)).expect("open");

    // The victim rewritten and one bit of the next entry's link flipped (its CRC now fails).
    let (_tmp, data, victim, next) = victim_in_sealed_segment();
    let number = receipt_number(&data, &victim);
    rewrite_payload_byte(&data, &victim);
    common::flip_bit(&next.file, prev_hash_offset(&next) + 5, 2);
    let db = open(&data);
    assert_db_refuses(&db, victim.seq, number, "link bytes differ");
    db.close().expect("close");
    assert_reader_refuses(&data, victim.seq, number, "link bytes differ");

    // The victim rewritten and the next frame's header unreadable (a reserved byte set): the
    // unchecked walk cannot reach the entry, and that is no pass. (In a sealed segment that
    // refuses the open itself, so: the open segment, through a read-only opener.)
    let (_open, data, victim, next) = victim_in_open_segment();
    let number = receipt_number(&data, &victim);
    rewrite_payload_byte(&data, &victim);
    common::flip_bit(&next.file, next.offset + 30, 0);
    assert_reader_refuses(&data, victim.seq, number, "next frame header");

    // The victim intact, the next entry's frame damaged past its link: the victim reads (its
    // bytes are what the link records), the next entry does not.
    let (_tmp, data, victim, next) = victim_in_sealed_segment();
    let number = receipt_number(&data, &victim);
    break_crc(&next);
    let db = open(&data);
    let read = db.get(victim.seq).expect("the victim's link names it");
    assert_eq!(read.header.event_id(), event_id(number));
    let page = db
        .query_text(
            &format!("tenant={TENANT} event={}", event_id(number)),
            Freshness::Indexed,
        )
        .expect("a query serves it");
    assert_eq!(page.receipts.len(), 1);
    assert!(
        db.get(next.seq).is_err(),
        "the damaged next entry is refused when read"
    );
    db.close().expect("close");
}

/// A live writer: the victim and its damaged next entry lie before the durable end, so the
/// read is refused; the last receipt, whose next entry does not exist yet, still reads.
#[test]
fn a_live_store_refuses_a_damaged_link_but_reads_its_tip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    let live =
        options(PayloadEncryption::Off).checkpoint_interval(std::time::Duration::from_secs(3600));
    let db = Db::open_with(&data, live).expect("open");
    let mut last = None;
    for n in 0..40 {
        last = Some(db.append_and_wait(&receipt(n)).expect("append"));
    }
    let last = last.expect("appended");
    db.query_text(&format!("tenant={TENANT}"), Freshness::Durable)
        .expect("index caught up");
    let (victim, next) = victim_with_next(&data, |_, _| true);
    let number = receipt_number(&data, &victim);
    rewrite_payload_byte(&data, &victim);
    break_crc(&next);
    assert_db_refuses(&db, victim.seq, number, "live writer");
    let tip = db
        .get(last.seq)
        .expect("the tip reads: its next entry is not written yet");
    assert_eq!(tip.header.event_id(), event_id(39));
    let page = db
        .query_text(
            &format!("tenant={TENANT} event={}", event_id(39)),
            Freshness::Indexed,
        )
        .expect("the tip is served by queries");
    assert_eq!(page.receipts.len(), 1);
    drop(db);
}

/// Flips a payload byte near the entry's end (a clear payload: only the chain guards it).
fn payload_edit(entry: &mut [u8]) {
    let last = entry.len() - 3;
    entry[last] ^= 0x20;
}

/// A page checks most results by the tenant link of the result above it (one record visit
/// per page): a rewritten result is refused wherever it is in the page, in both orders and
/// read modes, with the writer and read-only.
#[test]
fn a_rewritten_result_is_refused_anywhere_in_a_page() {
    // (order, page of 8 of the 12 receipts: which receipts to rewrite, by append order):
    // ascending the page is 0..=7 (3 in the middle, 7 last and highest); descending 11..=4
    // (11 first and highest, 8 in the middle, 4 last).
    let cases: [(&str, &[u64]); 2] = [("seq", &[3, 7, 0]), ("-seq", &[11, 8, 4])];
    for (order, victims) in cases {
        for &number in victims {
            let (_tmp, data) = store(PayloadEncryption::Off);
            let seq = tamper_receipt(&data, number, |e| payload_edit(e));
            let what = format!("order={order}, receipt {number}");
            let text = format!("tenant={TENANT} order={order} limit=8");
            let query = Query::parse(&text).expect("filter");
            let db = Db::open_with(&data, options(PayloadEncryption::Off)).expect("open");
            assert_damaged(
                db.query_text(&text, Freshness::Indexed),
                seq,
                &format!("{what}: query"),
            );
            assert_damaged(
                db.query_heads(&query, Freshness::Indexed),
                seq,
                &format!("{what}: query_heads"),
            );
            db.close().expect("close");
            let reader = ReadOnlyStore::open(&data).expect("read-only open");
            assert_damaged(
                reader.query_text(&text),
                seq,
                &format!("{what}: read-only query"),
            );
            assert_damaged(
                reader.query_heads(&query),
                seq,
                &format!("{what}: read-only query_heads"),
            );
        }
    }
    // An untampered store answers both pages in full.
    let (_tmp, data) = store(PayloadEncryption::Off);
    let db = Db::open_with(&data, options(PayloadEncryption::Off)).expect("open");
    for order in ["seq", "-seq"] {
        let page = db
            .query_text(
                &format!("tenant={TENANT} order={order} limit=8"),
                Freshness::Indexed,
            )
            .expect("page");
        assert_eq!(page.receipts.len(), 8);
    }
    db.close().expect("close");
}

/// A store of `receipts` receipts whose index stops after the first 6 (the index of that
/// moment put back): the rest is the unindexed tail.
fn store_with_unindexed_tail(receipts: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    let old_index = tmp.path().join("index-copy");
    write_receipts(&data, options(PayloadEncryption::Off), 6);
    common::copy_dir(&data.join("index"), &old_index);
    let db = Db::open_with(&data, options(PayloadEncryption::Off)).expect("reopen");
    for n in 6..receipts {
        db.append_and_wait(&receipt(n)).expect("append");
    }
    db.close().expect("close");
    common::restore_dir(&old_index, &data.join("index"));
    (tmp, data)
}

/// `find_event` on a read-only opener scans the log past the index's watermark: a rewritten
/// receipt there is refused, not returned.
#[test]
fn a_rewritten_receipt_in_the_unindexed_tail_is_refused() {
    // The index as it was after 6 receipts: the rest is the unindexed tail.
    let (_tmp, data) = store_with_unindexed_tail(RECEIPTS);
    let reader = ReadOnlyStore::open(&data).expect("read-only open");
    let found = reader
        .find_event(TENANT, &event_id(9))
        .expect("an untampered tail reads");
    assert!(found.is_some(), "receipt 9 is found in the tail");
    drop(reader);
    let seq = tamper_receipt(&data, 9, |e| payload_edit(e));
    let reader = ReadOnlyStore::open(&data).expect("read-only open");
    assert!(
        reader.index_watermark().expect("watermark") <= seq,
        "the victim is past the index"
    );
    assert_damaged(
        reader.find_event(TENANT, &event_id(9)),
        seq,
        "unindexed find_event",
    );
    // The last receipt of the tail (its next entry is the closing checkpoint) reads.
    assert!(
        reader
            .find_event(TENANT, &event_id(RECEIPTS - 1))
            .expect("the last receipt reads")
            .is_some()
    );
}

/// `follow` reads the log itself: a rewritten receipt in its stream is an error, not a
/// receipt.
#[test]
fn a_rewritten_receipt_in_a_follow_stream_is_refused() {
    let (_tmp, data) = store(PayloadEncryption::Off);
    let seq = tamper(&data, |e| payload_edit(e));
    let db = Db::open_with(&data, options(PayloadEncryption::Off)).expect("open");
    let mut follow = db.follow(Seq(0), trailmix_db::query::Filter::default());
    let mut before = 0;
    let failure = loop {
        match follow.next_timeout(std::time::Duration::from_millis(200)) {
            Ok(Some(receipt)) => {
                assert!(receipt.position.seq < seq, "the victim was yielded");
                before += 1;
            }
            Ok(None) => panic!("the stream ended without refusing the victim"),
            Err(err) => break err,
        }
    };
    // Every receipt before the victim is yielded first (the last of them is linked to by the
    // victim's own `prev_chain_hash`, which the edit left alone), then the damage.
    assert_eq!(before, VICTIM, "receipts yielded before the damage");
    assert_damaged::<()>(Err(failure), seq, "follow");
    drop(follow);
    db.close().expect("close");
}

/// A read-only opener past its index's watermark knows no durable end: a next entry that does
/// not read there is judged as recovery would (later valid frames that record a durable end
/// past it make it durable damage), so breaking it does not hide a rewritten receipt either.
#[test]
fn past_the_watermark_the_log_decides_whether_the_next_entry_was_durable() {
    let (_tmp, data) = store_with_unindexed_tail(RECEIPTS + 20);
    let (_, frames) = layout(&data);
    let receipts: Vec<_> = frames
        .iter()
        .filter(|f| f.entry_kind() == EntryKind::Receipt)
        .collect();
    let victim = receipts[9].clone();
    let next = frames
        .iter()
        .find(|f| f.seq == victim.seq.next())
        .expect("next")
        .clone();
    rewrite_payload_byte(&data, &victim);
    break_crc(&next);
    let reader = ReadOnlyStore::open(&data).expect("read-only open");
    assert!(reader.index_watermark().expect("watermark") <= victim.seq);
    assert_damaged(
        reader.find_event(TENANT, &event_id(9)),
        victim.seq,
        "unindexed find_event, next frame broken",
    );
}
