//! Guards the tenant tips that checkpoints and seals commit: every note's tips line equals the
//! tips recomputed from the log by the spec alone, tip proofs verify only for the true tip, and
//! a note re-signed with a wrong tips line fails verification at that note.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Rec, receipt, rechain, records, verify_with, with_payload, write_log};
use trailmix_db::entry::{self, EntryKind};
use trailmix_db::keys::{FileKeyProvider, PUBLIC_KEY_FILE, SigningKeyProvider as _};
use trailmix_db::merkle::{self, Digest, HashAlgorithm};
use trailmix_db::note::{Checkpoint, NoteVerifier};
use trailmix_db::receipt::ReceiptHeader;
use trailmix_db::replay::DamageKind;
use trailmix_db::tips::{TIPS_EXTENSION_PREFIX, TipsCommitment, TipsTree};
use trailmix_db::wal::Seq;
use trailmix_db::{Db, DbOptions, VerifyOptions};

const ALG: HashAlgorithm = HashAlgorithm::Blake3;
const SEGMENT_BYTES: u64 = 1 << 20;

/// A store of three tenants (one of them writes only at the start) with several checkpoints
/// and two epoch seals.
fn store() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("store");
    write_store(&data, SEGMENT_BYTES, 60, 25);
    (tmp, data)
}

fn write_store(data: &Path, segment_bytes: u64, receipts: u64, epoch_records_max: u64) {
    let options = DbOptions::default()
        .segment_bytes(segment_bytes)
        .checkpoint_every_records(7)
        .checkpoint_interval(Duration::from_secs(3600))
        .epoch_records_max(epoch_records_max);
    let db = Db::open_with(data, options).expect("open");
    for n in 0..receipts {
        let tenant = match n {
            0..3 => "initech",
            _ if n % 3 == 0 => "globex",
            _ => "acme",
        };
        db.append_and_wait(&receipt(tenant, n, 40)).expect("append");
    }
    db.checkpoint().expect("checkpoint");
    db.close().expect("close");
}

fn verifier(data: &Path) -> NoteVerifier {
    let text = std::fs::read_to_string(data.join(PUBLIC_KEY_FILE)).expect("public key");
    NoteVerifier::from_vkey(text.trim()).expect("vkey")
}

/// RFC 9162 `MTH` over `leaves`, written out here so the test does not lean on the engine's
/// tree code.
fn mth(leaves: &[Digest]) -> Digest {
    match leaves.len() {
        0 => merkle::empty_root(ALG),
        1 => leaves[0],
        n => {
            // The largest power of two below n.
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            merkle::node_hash(ALG, &mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// The tips line the spec (docs/design.md, "Tenant tips") gives for `tips`.
fn expected_line(tips: &Tips) -> String {
    let leaves: Vec<Digest> = tips
        .iter()
        .map(|(tenant, (seq, chain))| {
            let mut data = b"trailmix-db tenant tip v1\0".to_vec();
            data.extend_from_slice(&u32::try_from(tenant.len()).expect("short").to_le_bytes());
            data.extend_from_slice(tenant.as_bytes());
            data.extend_from_slice(&seq.to_le_bytes());
            data.extend_from_slice(chain);
            merkle::leaf_hash(ALG, &data)
        })
        .collect();
    let root = mth(&leaves).iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    format!("{TIPS_EXTENSION_PREFIX} tenants={} root={root}", tips.len())
}

/// Walks the log: each note's tips line, and the tips the entries before it leave.
/// Each tenant's last receipt: its seq and chain hash.
type Tips = BTreeMap<String, (u64, Digest)>;

fn notes_with_tips(records: &[Rec]) -> Vec<(usize, String, Tips)> {
    let mut tips = BTreeMap::new();
    let mut notes = Vec::new();
    for (i, (kind, bytes)) in records.iter().enumerate() {
        let kind = EntryKind::from_byte(*kind).expect("kind");
        let decoded = entry::decode_entry(kind, bytes).expect("decodes");
        let seq = Seq(i as u64);
        match kind {
            EntryKind::Receipt => {
                let tenant = ReceiptHeader::decode(decoded.header)
                    .expect("header")
                    .tenant_id()
                    .to_owned();
                let chain = decoded.chain_hash(ALG, seq);
                tips.insert(tenant, (seq.0, chain));
            }
            EntryKind::Checkpoint | EntryKind::EpochSeal => {
                let body = std::str::from_utf8(decoded.payload).expect("note text");
                let line = body
                    .lines()
                    .find(|l| l.starts_with(TIPS_EXTENSION_PREFIX))
                    .unwrap_or_else(|| panic!("note at seq {i} has no tips line:\n{body}"))
                    .to_owned();
                notes.push((i, line, tips.clone()));
            }
            _ => {}
        }
    }
    notes
}

#[test]
fn every_note_commits_the_tips_of_the_entries_before_it() {
    let (_tmp, data) = store();
    let records = records(&data);
    let notes = notes_with_tips(&records);
    let seals = records
        .iter()
        .filter(|(k, _)| *k == EntryKind::EpochSeal as u8)
        .count();
    assert!(seals >= 2, "the store has {seals} seals");
    assert!(notes.len() >= 10, "{} notes", notes.len());
    let mut saw_three = false;
    for (i, line, tips) in &notes {
        assert_eq!(line, &expected_line(tips), "note at seq {i}");
        saw_three |= tips.len() == 3;
    }
    assert!(saw_three);
    assert!(verify_with(&data, &VerifyOptions::default()).verified());
}

#[test]
fn tip_proofs_verify_for_the_true_tip_only() {
    let (_tmp, data) = store();
    let records = records(&data);
    let (at, _, tips) = notes_with_tips(&records).pop().expect("a note");
    let decoded = entry::decode_entry(EntryKind::Checkpoint, &records[at].1).expect("decodes");
    let (checkpoint, _) =
        Checkpoint::open(decoded.payload, &[verifier(&data)]).expect("signed note");
    let commitment = TipsCommitment::from_extensions(&checkpoint.extensions)
        .expect("well formed")
        .expect("a tips line");
    let mut tree = TipsTree::new();
    let live: std::collections::HashMap<String, (Seq, Digest)> = tips
        .iter()
        .map(|(t, (s, h))| (t.clone(), (Seq(*s), *h)))
        .collect();
    tree.update(ALG, &live);
    assert_eq!(tree.commitment(ALG), commitment);
    assert!(tree.prove(ALG, "nobody").is_none());
    for (tenant, (seq, chain)) in &tips {
        let proof = tree.prove(ALG, tenant).expect("a proof");
        assert_eq!(proof.seq, Seq(*seq));
        proof.verify(ALG, chain, &commitment).expect("true tip");
        // Not an earlier receipt of the tenant, not another chain hash, not another tenant.
        let mut earlier = proof.clone();
        earlier.seq = Seq(seq - 1);
        assert!(earlier.verify(ALG, chain, &commitment).is_err(), "{tenant}");
        let mut other_hash = *chain;
        other_hash[0] ^= 1;
        assert!(proof.verify(ALG, &other_hash, &commitment).is_err());
        let mut renamed = proof.clone();
        renamed.tenant.push('x');
        assert!(renamed.verify(ALG, chain, &commitment).is_err());
        let mut short = proof.clone();
        short.path.pop();
        assert!(short.verify(ALG, chain, &commitment).is_err());
    }
}

#[test]
fn a_note_re_signed_with_wrong_tips_fails_verification_there() {
    let (tmp, data) = store();
    let original = records(&data);
    let signer = FileKeyProvider::new(&data)
        .signer("unused")
        .expect("signer");
    let notes = notes_with_tips(&original);
    // A checkpoint (not a seal) in the middle of the log.
    let (at, line, _) = notes
        .iter()
        .find(|(i, _, _)| *i > 20 && original[*i].0 == EntryKind::Checkpoint as u8)
        .expect("a checkpoint")
        .clone();
    let decoded = entry::decode_entry(EntryKind::Checkpoint, &original[at].1).expect("decodes");
    let (mut checkpoint, _) =
        Checkpoint::open(decoded.payload, &[verifier(&data)]).expect("signed note");
    let stated = TipsCommitment::parse(&line).expect("line");
    for (name, wrong) in [
        (
            "count",
            TipsCommitment {
                tenants: stated.tenants + 1,
                ..stated
            },
        ),
        (
            "root",
            TipsCommitment {
                root: [7; 32],
                ..stated
            },
        ),
    ] {
        for ext in &mut checkpoint.extensions {
            if ext.starts_with(TIPS_EXTENSION_PREFIX) {
                *ext = wrong.to_line();
            }
        }
        let note = checkpoint.sign(&[&signer]).expect("re-sign");
        let mut forged = original.clone();
        forged[at].1 = with_payload(forged[at].0, &forged[at].1, note.as_bytes(), true);
        rechain(&mut forged, at);
        let dir = tmp.path().join(format!("forged-{name}"));
        write_log(&data, &dir, &forged, SEGMENT_BYTES);
        let report = verify_with(&dir, &VerifyOptions::default());
        let damage = report
            .damage
            .unwrap_or_else(|| panic!("{name}: not detected"));
        assert_eq!(damage.seq, Seq(at as u64), "{name}: {damage:?}");
        assert_eq!(damage.kind, DamageKind::Checkpoint, "{name}");
        assert!(
            damage.detail.contains("tips line"),
            "{name}: {}",
            damage.detail
        );
    }
}

/// `fixtures/tips-store`, written by the build that introduced tips lines (regenerate with
/// `TRAILMIX_REGENERATE_FIXTURES=1`): later builds must read its tips lines the same way.
#[test]
fn checked_in_store_with_tips_still_verifies_and_matches_the_spec() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tips-store");
    if std::env::var("TRAILMIX_REGENERATE_FIXTURES").as_deref() == Ok("1") {
        let _ = std::fs::remove_dir_all(&fixture);
        write_store(&fixture, 64 << 10, 30, 16);
        // Verification needs only signing.pub; the index is derived.
        std::fs::remove_dir_all(fixture.join("keys")).expect("remove private key");
        std::fs::remove_dir_all(fixture.join("index")).expect("remove index");
        let _ = std::fs::remove_file(fixture.join("wal/LOCK"));
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let copy = scratch.path().join("store");
    common::copy_dir(&fixture, &copy);
    let report = verify_with(&copy, &VerifyOptions::default());
    assert!(report.verified(), "{:?}", report.damage);
    assert_eq!(report.receipts, 30);
    assert_eq!(report.sealed_epochs, 2);
    let notes = notes_with_tips(&records(&copy));
    assert!(notes.len() >= 4);
    for (i, line, tips) in &notes {
        assert_eq!(line, &expected_line(tips), "note at seq {i}");
    }
}
