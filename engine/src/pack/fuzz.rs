//! The evidence-pack fuzz body, shared by cargo-fuzz (`fuzz/fuzz_targets/pack_verify.rs`) and
//! the seeded loop under `cargo test` (`engine/tests/fuzz_smoke.rs`): the committed v4 fixture
//! pack (with an RFC 3161 token, so the token's DER is fuzzed too), mutated by the input (bytes flipped, inserted, truncated; lines dropped, duplicated,
//! swapped), optionally re-sealed with the fixture's key so that the content checks behind the
//! checksums and the signature are reached, must never make [`verify_pack_files`] panic.
//! Oracles: the untouched fixture verifies; any change that is not re-sealed is rejected.

use std::sync::LazyLock;

use super::format::{MANIFEST_FILE, Manifest, PACK_FILES};
use super::{PackFiles, TrustedKey, verify_pack_files};
use crate::note::NoteSigner;

/// Key name of the fixture store's signing key.
pub const FIXTURE_KEY_NAME: &str = "trailmix-db/pack-fixture";
/// Seed of the fixture store's signing key. A published test key: it signs the fixture and
/// the fuzz body's re-sealed packs, nothing else.
pub const FIXTURE_KEY_SEED: [u8; 32] = [0x5a; 32];

macro_rules! fixture_file {
    ($name:literal) => {
        (
            $name,
            &include_bytes!(concat!("../../tests/fixtures/pack-v5/", $name))[..],
        )
    };
}

/// The fixture pack (`engine/tests/fixtures/pack-v5`), compiled in.
static FIXTURE: LazyLock<PackFiles> = LazyLock::new(|| {
    let files = [
        fixture_file!("HOW-TO-VERIFY.txt"),
        fixture_file!("SHA256SUMS"),
        fixture_file!("anchors.jsonl"),
        fixture_file!("manifest.json"),
        fixture_file!("manifest.sig"),
        fixture_file!("proofs.jsonl"),
        fixture_file!("receipts.jsonl"),
        fixture_file!("shreds.jsonl"),
        fixture_file!("summary.html"),
        fixture_file!("summary.md"),
        fixture_file!("tail.jsonl"),
        fixture_file!("timestamp-epoch-00000000000000000000.tst"),
    ];
    PackFiles {
        files: files
            .iter()
            .map(|(name, bytes)| ((*name).to_owned(), bytes.to_vec()))
            .collect(),
    }
});

/// The fixture's signer (`None` only if the constant key were invalid).
fn fixture_signer() -> Option<NoteSigner> {
    NoteSigner::from_seed(FIXTURE_KEY_NAME, &FIXTURE_KEY_SEED).ok()
}

/// The fixture pack, for tests.
#[must_use]
pub fn fixture_pack() -> PackFiles {
    FIXTURE.clone()
}

/// Lines of `bytes`, each with its newline.
fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// Applies one 4-byte mutation `[file, op, pos_lo, pos_hi]` to `files`.
fn mutate(files: &mut PackFiles, op: [u8; 4]) {
    // Any file the pack holds (the token's name is not in `PACK_FILES`), or a missing one.
    let names: Vec<String> = files
        .files
        .keys()
        .cloned()
        .chain(PACK_FILES.iter().map(|n| (*n).to_owned()))
        .collect();
    let name = &names[usize::from(op[0]) % names.len()];
    let pos = usize::from(u16::from_le_bytes([op[2], op[3]]));
    let Some(bytes) = files.files.get_mut(name) else {
        return;
    };
    let mut lines = split_lines(bytes);
    match op[1] % 8 {
        0 | 1 if !bytes.is_empty() => {
            let at = pos % bytes.len();
            bytes[at] ^= 1 << (op[1] >> 5);
            return;
        }
        2 => {
            let at = pos % (bytes.len() + 1);
            bytes.insert(at, op[3]);
            return;
        }
        3 => {
            bytes.truncate(pos % (bytes.len() + 1));
            return;
        }
        4 if !lines.is_empty() => {
            let at = pos % lines.len();
            lines.remove(at);
        }
        5 if !lines.is_empty() => {
            let at = pos % lines.len();
            let line = lines[at].clone();
            lines.insert(at, line);
        }
        6 if lines.len() > 1 => {
            let at = pos % (lines.len() - 1);
            lines.swap(at, at + 1);
        }
        7 => {
            files
                .files
                .insert(format!("extra-{}", op[2] % 4), vec![op[3]]);
            return;
        }
        _ => return,
    }
    *bytes = lines.concat();
}

/// Re-signs the (possibly mutated) manifest and recomputes the checksums with the fixture
/// key; a manifest that no longer parses is left as it is.
fn reseal(files: &mut PackFiles) {
    let Some(signer) = fixture_signer() else {
        return;
    };
    let Some(mut manifest) = files
        .get(MANIFEST_FILE)
        .and_then(|b| serde_json::from_slice::<Manifest>(b).ok())
    else {
        return;
    };
    let _ = files.seal(&mut manifest, &signer);
}

/// The fuzz body: byte 0 says whether to re-seal (bit 0) or to read the rest as a tar
/// archive (bit 1); then 4-byte mutations.
///
/// # Panics
/// When an oracle fails: the untouched fixture does not verify, or a change that was not
/// re-sealed verifies.
pub fn pack_verify(data: &[u8]) {
    let Some(signer) = fixture_signer() else {
        return;
    };
    let key = TrustedKey::Verifier(signer.verifier());
    let mode = data.first().copied().unwrap_or(0);
    let rest = data.get(1..).unwrap_or(&[]);
    if mode & 0b10 != 0 {
        if let Ok(files) = PackFiles::from_archive(rest) {
            let _ = verify_pack_files(&files, Some(&key));
        }
        return;
    }
    let mut files = fixture_pack();
    for op in rest.chunks_exact(4).take(16) {
        mutate(&mut files, [op[0], op[1], op[2], op[3]]);
    }
    let resealed = mode & 1 != 0;
    if resealed {
        reseal(&mut files);
    }
    let outcome = verify_pack_files(&files, Some(&key));
    if files == *FIXTURE {
        assert!(
            outcome.is_ok(),
            "the untouched fixture pack must verify: {outcome:?}"
        );
    } else if !resealed {
        assert!(
            outcome.is_err(),
            "a changed pack that was not re-signed verified"
        );
    }
}
