//! Guards verification's parallel hashing: in a store large enough that other threads hash
//! windows of entries ahead of the sequential pass, damage inside those windows (a payload, a
//! chain field) is still reported at the right entry with the right kind (a payload edit of a
//! version 3 entry, which stores no digests: as the next entry's broken link);
//! and the progress callback is told each step in order. Which thread hashes a window is decided
//! while they run (`engine/src/ahead.rs`; the unit tests in `engine/src/verify.rs` force an
//! alternating split), so these stores check positions across many windows of either kind.

mod common;

use std::path::Path;

use common::{Rec, edit_chain, receipt, records, verify_with, write_log};
use trailmix_db::VerifyOptions;
use trailmix_db::entry::EntryKind;
use trailmix_db::replay::DamageKind;
use trailmix_db::{Db, DbOptions};

const SEGMENT: u64 = 8 << 20;
/// Entries in the store: several 1024-entry hashing windows.
const ENTRIES: u64 = 9_000;

fn build(dir: &Path) {
    build_entries(dir, ENTRIES);
}

fn build_entries(dir: &Path, entries: u64) {
    let db = Db::open_with(dir, DbOptions::default().segment_bytes(SEGMENT)).expect("open");
    for n in 0..entries - 1 {
        db.append(&receipt("acme", n, 16)).expect("append");
    }
    db.close().expect("close");
}

fn damage_of(original: &Path, forged: &[Rec]) -> (u64, DamageKind) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("forged");
    write_log(original, &dir, forged, SEGMENT);
    let report = verify_with(&dir, &VerifyOptions::default());
    let damage = report.damage.expect("verify passed a forged log");
    (damage.seq.0, damage.kind)
}

#[test]
fn damage_in_windows_hashed_ahead_is_found_where_it_is() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    build(&dir);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let progress = trailmix_db::VerifyProgress {
        every_entries: 1_000,
        report: {
            let seen = std::sync::Arc::clone(&seen);
            std::sync::Arc::new(move |entries| seen.lock().expect("lock").push(entries))
        },
    };
    let clean = verify_with(
        &dir,
        &VerifyOptions {
            progress: Some(progress),
            ..VerifyOptions::default()
        },
    );
    assert!(clean.verified(), "{:?}", clean.damage);
    assert!(clean.entries >= ENTRIES, "{}", clean.entries);
    // Progress: every 1,000 entries, in order.
    let want: Vec<u64> = (1..=(clean.entries - 1) / 1_000)
        .map(|k| k * 1_000)
        .collect();
    assert_eq!(*seen.lock().expect("lock"), want, "progress calls");
    let log = records(&dir);
    let receipt_kind = EntryKind::Receipt as u8;

    // Edits at window boundaries (multiples of 1024) and inside windows: one edit of each
    // kind, whichever thread hashes them.
    for at in [4_096_usize, 6_001, 8_500] {
        assert_eq!(log[at].0, receipt_kind, "seq {at} is a receipt");
    }

    let mut forged = log.clone();
    // The payload is ciphertext (the default encryption): a flipped tag byte keeps its
    // envelope well-formed, so only the chain can tell.
    forged[4_096].1 = last_byte_flipped(&log[4_096].1);
    assert_eq!(
        damage_of(&dir, &forged),
        // Entry version 3 stores no payload digest: the next entry's link names the edit.
        (4_097, DamageKind::ChainLink),
        "payload edited"
    );

    let mut forged = log.clone();
    forged[6_001].1 = content_digest_mismatch(&log[6_001].1);
    assert_eq!(
        damage_of(&dir, &forged),
        (6_002, DamageKind::ChainLink),
        "content digest edited"
    );

    let mut forged = log.clone();
    forged[8_500].1 = edit_chain(receipt_kind, &log[8_500].1, &|chain| {
        chain.prev_chain_hash[0] ^= 1;
    });
    assert_eq!(
        damage_of(&dir, &forged),
        (8_500, DamageKind::ChainLink),
        "previous hash edited"
    );
}

#[test]
fn damage_in_and_after_the_window_the_sequential_pass_hashes_is_found_where_it_is() {
    // Edits at and around window boundaries deep in a larger store (the sequential pass hashes
    // the windows it reaches unclaimed; the fixed "every fifth window" split of before put
    // 16384..20480 there).
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    build_entries(&dir, 21_000);
    let clean = verify_with(&dir, &VerifyOptions::default());
    assert!(clean.verified(), "{:?}", clean.damage);
    let log = records(&dir);
    let receipt_kind = EntryKind::Receipt as u8;
    for at in [16_384_usize, 18_000, 20_480, 20_700] {
        assert_eq!(log[at].0, receipt_kind, "seq {at} is a receipt");
        let mut forged = log.clone();
        forged[at].1 = last_byte_flipped(&log[at].1);
        assert_eq!(
            damage_of(&dir, &forged),
            (at as u64 + 1, DamageKind::ChainLink),
            "payload edited at {at}"
        );
    }
    let mut forged = log.clone();
    forged[19_000].1 = edit_chain(receipt_kind, &log[19_000].1, &|chain| {
        chain.prev_chain_hash[0] ^= 1;
    });
    assert_eq!(
        damage_of(&dir, &forged),
        (19_000, DamageKind::ChainLink),
        "previous hash edited"
    );
}

/// `entry` (an unsigned receipt: its payload ends it) with its payload's last byte changed.
fn last_byte_flipped(entry: &[u8]) -> Vec<u8> {
    let mut out = entry.to_vec();
    let last = out.len() - 1;
    out[last] ^= 0x01;
    out
}

/// `entry` with one bit of its content digest flipped (payload digest still right): only a
/// version 2 entry stores one; a version 3 entry (none stored) gets one payload bit flipped.
fn content_digest_mismatch(entry: &[u8]) -> Vec<u8> {
    let old = trailmix_db::entry::decode_entry(EntryKind::Receipt, entry).expect("decodes");
    let mut out = Vec::new();
    let Some(mut stored) = old.stored else {
        out.extend_from_slice(entry);
        let last = out.len() - 1;
        out[last] ^= 0x40;
        return out;
    };
    stored.content_digest[7] ^= 0x40;
    trailmix_db::entry::EntryRef {
        stored: Some(stored),
        ..old
    }
    .encode_into(&mut out);
    out
}
