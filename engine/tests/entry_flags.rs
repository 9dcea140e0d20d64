//! Guards invariant 3 for the entry flags byte: marking a receipt's payload encrypted (or
//! not), and stripping a receipt's signature (clearing the flag and cutting the 64 bytes), in a
//! log whose frames are all valid, is caught by `verify` at that entry, since the chain hash
//! covers the flags.

mod common;

use common::{Rec, receipt, records, verify_with, write_log};
use trailmix_db::entry::{EntryKind, decode_entry, flags};
use trailmix_db::replay::DamageKind;
use trailmix_db::{Db, DbOptions, ReceiptSignatures, VerifyOptions};

const SEGMENT: u64 = 256 << 10;

fn build(dir: &std::path::Path, signatures: ReceiptSignatures) {
    let options = DbOptions::default()
        .segment_bytes(SEGMENT)
        .receipt_signatures(signatures);
    let db = Db::open_with(dir, options).expect("open");
    for n in 0..8 {
        db.append_and_wait(&receipt("acme", n, 40)).expect("append");
    }
    db.close().expect("close");
}

/// The index of the `nth` receipt record.
fn nth_receipt(records: &[Rec], nth: usize) -> usize {
    records
        .iter()
        .enumerate()
        .filter(|(_, (kind, _))| *kind == EntryKind::Receipt as u8)
        .nth(nth)
        .map(|(i, _)| i)
        .expect("enough receipts")
}

fn assert_caught(original: &std::path::Path, forged: &[Rec], at: usize, what: &str) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("forged");
    write_log(original, &dir, forged, SEGMENT);
    let report = verify_with(&dir, &VerifyOptions::default());
    let damage = report
        .damage
        .unwrap_or_else(|| panic!("{what}: verify passed a forged log"));
    // The edited entry still links to its predecessor; the next entry no longer links to it.
    assert_eq!(damage.seq.0, at as u64, "{what}: {damage:?}");
    assert_eq!(damage.kind, DamageKind::ChainLink, "{what}: {damage:?}");
}

#[test]
fn flipping_the_encrypted_flag_is_caught() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    build(&dir, ReceiptSignatures::Off);
    let mut forged = records(&dir);
    let k = nth_receipt(&forged, 3);
    // Payloads are encrypted by default: the forgery marks one as stored in the clear.
    assert_eq!(
        forged[k].1[1] & flags::PAYLOAD_ENCRYPTED,
        flags::PAYLOAD_ENCRYPTED
    );
    forged[k].1[1] ^= flags::PAYLOAD_ENCRYPTED;
    let entry = decode_entry(EntryKind::Receipt, &forged[k].1).expect("still decodes");
    assert_eq!(entry.flags & flags::PAYLOAD_ENCRYPTED, 0);
    // The receipt after it links to the flagged entry's chain hash.
    assert_caught(&dir, &forged, k + 1, "encrypted flag cleared");
}

#[test]
fn stripping_a_signature_is_caught() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("store");
    build(&dir, ReceiptSignatures::Ed25519);
    let mut forged = records(&dir);
    let k = nth_receipt(&forged, 3);
    let bytes = &mut forged[k].1;
    assert_eq!(
        bytes[1] & flags::SIGNED,
        flags::SIGNED,
        "receipts are signed"
    );
    bytes[1] &= !flags::SIGNED;
    bytes.truncate(bytes.len() - 64);
    let entry = decode_entry(EntryKind::Receipt, bytes).expect("still decodes");
    assert!(entry.signature.is_none());
    assert_caught(&dir, &forged, k + 1, "signature stripped");
}
