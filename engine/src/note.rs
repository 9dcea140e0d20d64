//! Signed notes ([C2SP signed-note]) and transparency-log checkpoints ([C2SP tlog-checkpoint]).
//!
//! A checkpoint states "the log `origin` had `tree_size` leaves with Merkle root `root_hash`";
//! it is published as a *signed note*, a UTF-8 text followed by a blank line and one or more
//! signature lines:
//!
//! ```text
//! example.com/trailmix/store-1
//! 1024
//! 5q1Dh0mG9rPbRsmZ+pO0JUkWsa1eWxuvO2ZqqJg2m9I=
//!
//! — example.com/trailmix/store-1 Az3grl…base64(key ID || Ed25519 signature)…=
//! ```
//!
//! The formats are the standard ones, so that tools outside this crate (Go's
//! `golang.org/x/mod/sumdb/note`, transparency-log witnesses and monitors) check our notes and
//! we check theirs: see `docs/design.md`, section "Signed checkpoints", for the exact grammar,
//! the key ID computation, the limits and the error cases.
//!
//! - [`sign`] signs a body with one or more [`NoteSigner`]s; [`open`] verifies a note against
//!   the [`NoteVerifier`]s the caller trusts and returns the body only if at least one of them
//!   signed it. Signatures from unknown keys are ignored, as the specification requires; a
//!   signature from a known key that does not verify rejects the note.
//! - [`Checkpoint`] converts between the checkpoint fields and the note body, and signs and
//!   opens checkpoint notes.
//! - Keys have the text forms of `golang.org/x/mod/sumdb/note`: verifier keys
//!   `<name>+<hex key ID>+<base64(0x01 || public key)>` and signer keys
//!   `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`.
//!
//! Only Ed25519 signatures (signature type 0x01) are made and checked; verification uses
//! `verify_strict`. Nothing here panics on any input.
//!
//! [C2SP signed-note]: https://c2sp.org/signed-note
//! [C2SP tlog-checkpoint]: https://c2sp.org/tlog-checkpoint

use std::fmt;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

mod checkpoint;
mod cosignature;
mod error;
mod keys;

pub use checkpoint::Checkpoint;
pub use cosignature::{
    ALG_COSIGNATURE_V1, COSIGNATURE_TIME_MAX, CosignatureError, CosignatureSigner,
    CosignatureVerifier, VerifiedCosignature, cosigned_message,
};
pub use error::{CheckpointError, KeyError, NameProblem, NoteError};
pub use keys::{NoteSigner, NoteVerifier, key_id};

/// Largest note (text, blank line and signature lines) that [`parse`] and [`open`] accept and
/// [`sign`] produces: 1 MiB. Checkpoints are about 200 bytes.
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// Most signature lines a note may carry (the C2SP signed-note minimum is 16; Go's
/// `sumdb/note` allows 100).
pub const MAX_SIGNATURES: usize = 100;

/// Longest key name, in bytes.
pub const MAX_KEY_NAME_BYTES: usize = 255;

/// Longest verifier or signer key text, in bytes.
pub const MAX_KEY_TEXT_BYTES: usize = 1024;

/// The signature type byte of Ed25519 note signatures.
pub const ALG_ED25519: u8 = 0x01;

/// Start of every signature line: an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Shortest decoded signature: a 4-byte key ID and at least one byte.
const MIN_SIGNATURE_BYTES: usize = 5;

/// A key as a signature line names it: key name and key ID. Displays as `name+xxxxxxxx`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRef {
    /// The key name.
    pub name: String,
    /// The key ID.
    pub key_id: u32,
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:08x}", self.name, self.key_id)
    }
}

/// One signature line of a parsed (not yet verified) note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine {
    /// Line number in the note (from 1).
    pub line: usize,
    /// The key name.
    pub name: String,
    /// The key ID (the first four bytes of the decoded signature, big-endian).
    pub key_id: u32,
    /// The signature proper (the decoded bytes after the key ID).
    pub signature: Vec<u8>,
}

/// A note split into its text and signature lines, syntax checked but **not verified**: the
/// text must be ignored until [`open`] has verified a trusted signature. For inspection tools
/// and for adding signatures (cosigning) to an existing note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedNote {
    /// The note text (the signed bytes), ending with a newline.
    pub body: String,
    /// The signature lines, in order.
    pub signatures: Vec<SignatureLine>,
}

impl ParsedNote {
    /// The note text again; byte-identical to what [`parse`] read, since parsing accepts only
    /// the canonical form.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.body.len() + 1 + self.signatures.len() * 100);
        out.push_str(&self.body);
        out.push('\n');
        for sig in &self.signatures {
            let mut blob = Vec::with_capacity(4 + sig.signature.len());
            blob.extend_from_slice(&sig.key_id.to_be_bytes());
            blob.extend_from_slice(&sig.signature);
            push_signature_line(&mut out, &sig.name, &STANDARD.encode(blob));
        }
        out
    }
}

/// A note whose signatures [`open`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote {
    /// The note text (the signed bytes), ending with a newline.
    pub body: String,
    /// The known keys whose signatures verified, in order of appearance (at least one).
    pub verified: Vec<KeyRef>,
    /// The distinct unknown keys whose signature lines were ignored, in order of appearance.
    pub unknown: Vec<KeyRef>,
}

impl OpenedNote {
    /// Whether `verifier` is among the keys whose signatures verified.
    #[must_use]
    pub fn is_signed_by(&self, verifier: &NoteVerifier) -> bool {
        self.verified
            .iter()
            .any(|k| verifier.matches(&k.name, k.key_id))
    }
}

/// 1-based line number of byte `offset` of `text`.
fn line_of(text: &[u8], offset: usize) -> usize {
    // n newlines cut the text into n + 1 pieces.
    text.get(..offset)
        .unwrap_or(text)
        .split(|&b| b == b'\n')
        .count()
}

/// The first ASCII control character other than newline: `(line, column, byte)`.
pub(crate) fn find_control(text: &[u8]) -> Option<(usize, usize, u8)> {
    let mut line = 1;
    let mut line_start = 0;
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' {
            line += 1;
            line_start = i + 1;
        } else if b < 0x20 {
            return Some((line, i - line_start + 1, b));
        }
    }
    None
}

fn push_signature_line(out: &mut String, name: &str, b64: &str) {
    out.push_str(SIG_PREFIX);
    out.push_str(name);
    out.push(' ');
    out.push_str(b64);
    out.push('\n');
}

/// Parses a note's syntax without verifying any signature.
///
/// # Errors
/// A [`NoteError`] saying what is malformed and on which line.
pub fn parse(note: &[u8]) -> Result<ParsedNote, NoteError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge {
            len: note.len(),
            max: MAX_NOTE_BYTES,
        });
    }
    let text = std::str::from_utf8(note).map_err(|e| NoteError::NotUtf8 {
        line: line_of(note, e.valid_up_to()),
        offset: e.valid_up_to(),
    })?;
    if let Some((line, column, byte)) = find_control(note) {
        return Err(NoteError::ControlCharacter { line, column, byte });
    }
    if !text.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    // The text is separated from the signatures by the last empty line.
    let split = text.rfind("\n\n").ok_or(NoteError::MissingBlankLine)?;
    let (body, rest) = text.split_at(split + 1);
    let sigs = rest.get(1..).unwrap_or_default();
    let blank_line = line_of(note, split + 1);
    if sigs.is_empty() {
        return Err(NoteError::NoSignatures { line: blank_line });
    }
    let mut signatures = Vec::new();
    // `sigs` ends with a newline and holds no empty line (the split is the last one).
    for (i, raw) in sigs.split_terminator('\n').enumerate() {
        let line = blank_line + 1 + i;
        if i >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                line,
                max: MAX_SIGNATURES,
            });
        }
        let rest = raw
            .strip_prefix(SIG_PREFIX)
            .ok_or(NoteError::MissingEmDash { line })?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(NoteError::MissingSignature { line })?;
        keys::check_name(name).map_err(|problem| NoteError::BadKeyName { line, problem })?;
        let blob = STANDARD
            .decode(b64)
            .map_err(|_| NoteError::BadBase64 { line })?;
        let Some((id, signature)) = blob
            .split_first_chunk::<4>()
            .filter(|_| blob.len() >= MIN_SIGNATURE_BYTES)
        else {
            return Err(NoteError::ShortSignature {
                line,
                len: blob.len(),
            });
        };
        signatures.push(SignatureLine {
            line,
            name: name.to_owned(),
            key_id: u32::from_be_bytes(*id),
            signature: signature.to_vec(),
        });
    }
    Ok(ParsedNote {
        body: body.to_owned(),
        signatures,
    })
}

/// Verifies a note against the keys the caller trusts and returns its text.
///
/// Signature lines whose key name and ID match no verifier are ignored (and listed in
/// [`OpenedNote::unknown`]). Every line from a known key must verify (`verify_strict` over the
/// note text) and a known key may sign only once; at least one known key must have signed.
///
/// # Errors
/// A [`NoteError`]: malformed syntax (with the line), [`NoteError::InvalidSignature`],
/// [`NoteError::DuplicateSignature`], [`NoteError::AmbiguousKey`], or
/// [`NoteError::NoKnownSignature`] when no trusted key signed.
pub fn open(note: impl AsRef<[u8]>, verifiers: &[NoteVerifier]) -> Result<OpenedNote, NoteError> {
    let parsed = parse(note.as_ref())?;
    let mut signed_by: Vec<(KeyRef, usize)> = Vec::new();
    let mut unknown: Vec<KeyRef> = Vec::new();
    for sig in &parsed.signatures {
        let key = KeyRef {
            name: sig.name.clone(),
            key_id: sig.key_id,
        };
        let mut matching = verifiers
            .iter()
            .filter(|v| v.matches(&sig.name, sig.key_id));
        let Some(verifier) = matching.next() else {
            if !unknown.contains(&key) {
                unknown.push(key);
            }
            continue;
        };
        if matching.any(|other| other.verifying_key() != verifier.verifying_key()) {
            return Err(NoteError::AmbiguousKey {
                line: sig.line,
                key,
            });
        }
        if let Some((_, first_line)) = signed_by.iter().find(|(k, _)| *k == key) {
            return Err(NoteError::DuplicateSignature {
                line: sig.line,
                first_line: *first_line,
                key,
            });
        }
        if !verifier.verify(parsed.body.as_bytes(), &sig.signature) {
            return Err(NoteError::InvalidSignature {
                line: sig.line,
                key,
            });
        }
        signed_by.push((key, sig.line));
    }
    if signed_by.is_empty() {
        return Err(NoteError::NoKnownSignature { unknown });
    }
    Ok(OpenedNote {
        body: parsed.body,
        verified: signed_by.into_iter().map(|(k, _)| k).collect(),
        unknown,
    })
}

/// Signs `body` with each signer and returns the note text: the body, a blank line and one
/// signature line per signer, in the order given.
///
/// # Errors
/// [`NoteError::EmptyBody`], [`NoteError::BodyMissingFinalNewline`],
/// [`NoteError::ControlCharacter`], [`NoteError::NoSigners`], [`NoteError::TooManySigners`],
/// [`NoteError::DuplicateSigner`], or [`NoteError::TooLarge`] when the note would exceed
/// [`MAX_NOTE_BYTES`].
pub fn sign(body: &str, signers: &[&NoteSigner]) -> Result<String, NoteError> {
    if body.is_empty() {
        return Err(NoteError::EmptyBody);
    }
    if !body.ends_with('\n') {
        return Err(NoteError::BodyMissingFinalNewline);
    }
    if let Some((line, column, byte)) = find_control(body.as_bytes()) {
        return Err(NoteError::ControlCharacter { line, column, byte });
    }
    if signers.is_empty() {
        return Err(NoteError::NoSigners);
    }
    if signers.len() > MAX_SIGNATURES {
        return Err(NoteError::TooManySigners {
            count: signers.len(),
            max: MAX_SIGNATURES,
        });
    }
    for (i, s) in signers.iter().enumerate() {
        if signers[..i]
            .iter()
            .any(|o| o.key_id() == s.key_id() && o.name() == s.name())
        {
            return Err(NoteError::DuplicateSigner { key: s.key_ref() });
        }
    }
    // Each line: em dash (3 bytes), space, name, space, 92 base64 characters, newline.
    let len = body.len()
        + 1
        + signers
            .iter()
            .map(|s| SIG_PREFIX.len() + s.name().len() + 1 + 92 + 1)
            .sum::<usize>();
    if len > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge {
            len,
            max: MAX_NOTE_BYTES,
        });
    }
    let mut out = String::with_capacity(len);
    out.push_str(body);
    out.push('\n');
    for s in signers {
        push_signature_line(&mut out, s.name(), &s.sign_b64(body.as_bytes()));
    }
    Ok(out)
}

/// The fixed verifier [`fuzz_open`] trusts: key name `fuzz.example/log`, seed 32 × 0x07.
fn fuzz_verifier() -> Option<&'static NoteVerifier> {
    static VERIFIER: OnceLock<Option<NoteVerifier>> = OnceLock::new();
    VERIFIER
        .get_or_init(|| {
            NoteSigner::from_seed("fuzz.example/log", &[7; 32])
                .ok()
                .map(|s| s.verifier())
        })
        .as_ref()
}

/// Fuzz body: reads arbitrary bytes as a note, a checkpoint body and key texts, and checks
/// the round-trip invariants. Wired into a cargo-fuzz target; also run by the tests.
///
/// # Panics
/// Only if an invariant is broken (a bug): a note or checkpoint that parses but does not
/// print back byte-identical, or a key that does not survive its text form.
pub fn fuzz_open(data: &[u8]) {
    let parsed = parse(data);
    if let Ok(p) = &parsed {
        assert_eq!(p.to_text().as_bytes(), data, "parse/print round trip");
        let _ = Checkpoint::parse_body(&p.body);
    }
    let _ = open(data, &[]);
    if let Some(v) = fuzz_verifier()
        && let Ok(opened) = open(data, std::slice::from_ref(v))
    {
        assert!(parsed.is_ok(), "open accepted what parse refused");
        assert!(opened.is_signed_by(v));
        let _ = Checkpoint::open(data, std::slice::from_ref(v));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cp) = Checkpoint::parse_body(text) {
        assert_eq!(cp.to_body().as_deref(), Ok(text), "checkpoint round trip");
    }
    if let Ok(v) = NoteVerifier::from_vkey(text) {
        assert_eq!(NoteVerifier::from_vkey(&v.to_vkey()).as_ref(), Ok(&v));
    }
    if let Ok(s) = NoteSigner::from_private_key_text(text) {
        let again = NoteSigner::from_private_key_text(&s.to_private_key_text());
        assert_eq!(
            again.map(|a| a.verifier()).as_ref(),
            Ok(&s.verifier()),
            "signer round trip"
        );
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

    use super::*;

    /// A note signed under a small-order public key with R = identity and S = 0: plain
    /// `verify` accepts it for every message, `verify_strict` must not. The verifier is built
    /// past the weak-key check so that the test reaches `verify_strict` inside [`open`].
    #[test]
    fn open_uses_verify_strict_against_small_order_keys() {
        let mut identity = [0_u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).expect("identity decodes");
        let mut forged = [0_u8; 64];
        forged[..32].copy_from_slice(&identity);
        let body = "anything at all\n";
        let sig = ed25519_dalek::Signature::from_bytes(&forged);
        assert!(weak.verify_strict(body.as_bytes(), &sig).is_err());
        // The non-strict check accepts the forgery: this is what verify_strict is for.
        assert!(
            ed25519_dalek::Verifier::verify(&weak, body.as_bytes(), &sig).is_ok(),
            "plain verify accepts the small-order forgery"
        );

        let verifier = NoteVerifier::new_unchecked_for_tests("weak.example", weak);
        let mut blob = verifier.key_id().to_be_bytes().to_vec();
        blob.extend_from_slice(&forged);
        let note = format!("{body}\n\u{2014} weak.example {}\n", STANDARD.encode(blob));
        assert!(matches!(
            open(&note, &[verifier]),
            Err(NoteError::InvalidSignature { line: 3, .. })
        ));
        // And the checked constructor refuses the key outright.
        assert_eq!(
            NoteVerifier::new("weak.example", &weak),
            Err(KeyError::WeakKey)
        );
    }

    /// Two known verifiers with the same name and key ID but different keys: the signature
    /// line cannot say which one signed, so the note is refused.
    #[test]
    fn colliding_known_keys_are_ambiguous() {
        let a = NoteSigner::from_seed("x", &[1; 32]).expect("valid name");
        let other = SigningKey::from_bytes(&[2; 32]).verifying_key();
        let twin = NoteVerifier::with_key_id_for_tests("x", a.key_id(), other);
        let n = sign("body\n", &[&a]).expect("signs");
        assert_eq!(
            open(&n, &[a.verifier(), twin.clone()]),
            Err(NoteError::AmbiguousKey {
                line: 3,
                key: a.key_ref()
            })
        );
        // The twin alone is a known key whose signature fails.
        assert_eq!(
            open(&n, &[twin]),
            Err(NoteError::InvalidSignature {
                line: 3,
                key: a.key_ref()
            })
        );
    }

    #[test]
    fn sign_reserves_the_exact_length() {
        let signer = NoteSigner::from_signing_key("a", SigningKey::from_bytes(&[1; 32]))
            .expect("valid name");
        let note = sign("x\n", &[&signer]).expect("signs");
        // Body, blank line, em dash (3 bytes), space, name, space, 92 base64 chars, newline.
        assert_eq!(note.len(), 2 + 1 + 3 + 1 + 1 + 1 + 92 + 1);
        let sig = SigningKey::from_bytes(&[1; 32]).sign(b"x\n");
        assert!(note.ends_with(&format!(
            "{}\n",
            STANDARD.encode([&signer.key_id().to_be_bytes()[..], &sig.to_bytes()[..]].concat())
        )));
    }
}
