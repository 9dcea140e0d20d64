//! Signer and verifier keys and their text forms (as `golang.org/x/mod/sumdb/note` writes them).

use std::fmt::{self, Write as _};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand::TryRngCore as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::error::{KeyError, NameProblem};
use super::{ALG_ED25519, KeyRef, MAX_KEY_NAME_BYTES, MAX_KEY_TEXT_BYTES};

pub(crate) const VKEY_FORM: &str = "<name>+<8 hex digits>+<base64 key>";
pub(crate) const SKEY_FORM: &str = "PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>";
pub(crate) const SKEY_PREFIX: &str = "PRIVATE+KEY+";

/// The Ed25519 field prime 2^255 - 19, little-endian (the bound of canonical y-coordinates).
const FIELD_PRIME_LE: [u8; 32] = {
    let mut p = [0xff_u8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// Checks a key name against the C2SP rules and our limit.
///
/// # Errors
/// The [`NameProblem`] found.
pub(crate) fn check_name(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > MAX_KEY_NAME_BYTES {
        return Err(NameProblem::TooLong { len: name.len() });
    }
    for c in name.chars() {
        if c == '+' {
            return Err(NameProblem::Plus);
        }
        if c.is_whitespace() {
            return Err(NameProblem::WhiteSpace);
        }
        if c < ' ' {
            return Err(NameProblem::ControlCharacter);
        }
    }
    Ok(())
}

/// The C2SP signed-note key ID: the first 4 bytes, big-endian, of
/// `SHA-256(name || 0x0A || key)`, where `key` is the algorithm byte followed by the public key.
#[must_use]
pub fn key_id(name: &str, key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn ed25519_key_id(name: &str, public: &VerifyingKey) -> u32 {
    typed_key_id(name, ALG_ED25519, public)
}

/// The key ID of an Ed25519 public key under signature type `alg` (`0x01` notes, `0x04`
/// cosignatures).
pub(crate) fn typed_key_id(name: &str, alg: u8, public: &VerifyingKey) -> u32 {
    let mut key = [0_u8; 33];
    key[0] = alg;
    key[1..].copy_from_slice(public.as_bytes());
    key_id(name, &key)
}

pub(crate) fn parse_hex_id(text: &str) -> Result<u32, KeyError> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::BadKeyId);
    }
    u32::from_str_radix(text, 16).map_err(|_| KeyError::BadKeyId)
}

/// Decodes `alg || 32-byte key` from canonical base64 into a wiped buffer.
pub(crate) fn decode_typed_material(
    b64: &str,
    expected_alg: u8,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    // Large enough for any key the length check below would report; decoding into a stack
    // buffer keeps private key material out of the heap.
    let mut buf = Zeroizing::new([0_u8; 96]);
    let n = match STANDARD.decode_slice(b64, &mut buf[..]) {
        Ok(n) => n,
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            // Too long for the buffer: report the approximate decoded length, less the
            // algorithm byte.
            return Err(KeyError::BadKeyLength {
                len: (b64.len() / 4 * 3).saturating_sub(1),
            });
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => return Err(KeyError::BadBase64),
    };
    let Some((&alg, key)) = buf[..n].split_first() else {
        return Err(KeyError::EmptyKey);
    };
    if alg != expected_alg {
        return Err(if expected_alg == ALG_ED25519 {
            KeyError::UnsupportedAlgorithm(alg)
        } else {
            KeyError::WrongKeyType {
                found: alg,
                expected: expected_alg,
            }
        });
    }
    let mut out = Zeroizing::new([0_u8; 32]);
    if key.len() != out.len() {
        return Err(KeyError::BadKeyLength { len: key.len() });
    }
    out.copy_from_slice(key);
    Ok(out)
}

/// Rejects public keys that are not canonically encoded or that are small-order points.
pub(crate) fn check_public_key(bytes: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
    // y is the low 255 bits, little-endian; canonical iff y < p.
    let mut y = *bytes;
    y[31] &= 0x7f;
    let below_p = y
        .iter()
        .rev()
        .zip(FIELD_PRIME_LE.iter().rev())
        .find(|(a, b)| a != b);
    if !matches!(below_p, Some((a, b)) if a < b) {
        return Err(KeyError::NonCanonicalKey);
    }
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
    if key.is_weak() {
        return Err(KeyError::WeakKey);
    }
    Ok(key)
}

/// A fresh Ed25519 seed from the operating system's random number generator, in a wiped
/// buffer.
pub(crate) fn random_seed() -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut seed = Zeroizing::new([0_u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed[..])
        .map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(seed)
}

/// Refuses a key text whose stated key ID is not the one computed from its name and key.
pub(crate) fn check_key_id(stated: u32, computed: u32) -> Result<(), KeyError> {
    if stated == computed {
        Ok(())
    } else {
        Err(KeyError::KeyIdMismatch { stated, computed })
    }
}

/// Parses `PRIVATE+KEY+<name>+<hex key ID>+<base64(alg || seed)>` into the name, the stated
/// key ID and the seed (the caller checks the ID against the key).
pub(crate) fn parse_private_key_text(
    text: &str,
    alg: u8,
) -> Result<(&str, u32, Zeroizing<[u8; 32]>), KeyError> {
    if text.len() > MAX_KEY_TEXT_BYTES {
        return Err(KeyError::TooLong {
            len: text.len(),
            max: MAX_KEY_TEXT_BYTES,
        });
    }
    let malformed = KeyError::Malformed {
        expected: SKEY_FORM,
    };
    let rest = text.strip_prefix(SKEY_PREFIX).ok_or(malformed.clone())?;
    let (name, rest) = rest.split_once('+').ok_or(malformed.clone())?;
    let (hex, b64) = rest.split_once('+').ok_or(malformed)?;
    check_name(name).map_err(KeyError::BadName)?;
    let stated = parse_hex_id(hex)?;
    let seed = decode_typed_material(b64, alg)?;
    Ok((name, stated, seed))
}

/// The private key text `PRIVATE+KEY+<name>+<hex key ID>+<base64(alg || seed)>`, in a string
/// that is wiped when dropped.
pub(crate) fn private_key_text(
    name: &str,
    key_id: u32,
    alg: u8,
    key: &SigningKey,
) -> Zeroizing<String> {
    let mut material = Zeroizing::new([0_u8; 33]);
    material[0] = alg;
    material[1..].copy_from_slice(key.as_bytes());
    // Reserve the exact size first so the string never reallocates (which would leave an
    // unwiped copy of the key behind).
    let len = SKEY_PREFIX.len() + name.len() + 1 + 8 + 1 + 44;
    let mut out = Zeroizing::new(String::with_capacity(len));
    out.push_str(SKEY_PREFIX);
    out.push_str(name);
    // Writing to a String cannot fail.
    let _ = write!(out, "+{key_id:08x}+");
    // Encode into a wiped buffer (not through the encoder's own chunk buffer).
    let mut encoded = Zeroizing::new([0_u8; 44]);
    if let Ok(n) = STANDARD.encode_slice(&material[..], &mut encoded[..])
        && let Ok(text) = std::str::from_utf8(&encoded[..n])
    {
        out.push_str(text);
    }
    out
}

/// Parses a verifier key text `<name>+<hex key ID>+<base64(alg || public key)>`, checking the
/// key ID (computed with type byte `alg`) and refusing weak or non-canonical keys.
pub(crate) fn parse_vkey_text(text: &str, alg: u8) -> Result<(&str, VerifyingKey), KeyError> {
    if text.len() > MAX_KEY_TEXT_BYTES {
        return Err(KeyError::TooLong {
            len: text.len(),
            max: MAX_KEY_TEXT_BYTES,
        });
    }
    let malformed = KeyError::Malformed {
        expected: VKEY_FORM,
    };
    let (name, rest) = text.split_once('+').ok_or(malformed.clone())?;
    let (hex, b64) = rest.split_once('+').ok_or(malformed)?;
    check_name(name).map_err(KeyError::BadName)?;
    let stated = parse_hex_id(hex)?;
    let material = decode_typed_material(b64, alg)?;
    let mut full = [0_u8; 33];
    full[0] = alg;
    full[1..].copy_from_slice(&material[..]);
    let computed = key_id(name, &full);
    if computed != stated {
        return Err(KeyError::KeyIdMismatch { stated, computed });
    }
    Ok((name, check_public_key(&material)?))
}

/// The verifier key text `<name>+<hex key ID>+<base64(alg || public key)>`.
pub(crate) fn vkey_text(name: &str, key_id: u32, alg: u8, key: &VerifyingKey) -> String {
    let mut material = [0_u8; 33];
    material[0] = alg;
    material[1..].copy_from_slice(key.as_bytes());
    format!("{name}+{key_id:08x}+{}", STANDARD.encode(material))
}

/// A key that signs notes: a key name and an Ed25519 signing key.
///
/// The private key is wiped from memory when the signer is dropped, and neither `Debug` nor
/// any error message shows it. The private key text form is
/// `PRIVATE+KEY+<name>+<key ID as 8 hex digits>+<base64(0x01 || 32-byte seed)>`, as
/// `golang.org/x/mod/sumdb/note` writes it.
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl NoteSigner {
    /// A new signer with a fresh key from the operating system's random number generator.
    ///
    /// # Errors
    /// [`KeyError::BadName`] for an invalid name, [`KeyError::Random`] if the OS generator fails.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        check_name(name).map_err(KeyError::BadName)?;
        let seed = random_seed()?;
        Self::from_seed(name, &seed)
    }

    /// A signer from a 32-byte Ed25519 seed (the RFC 8032 private key). The caller keeps, and
    /// should wipe, its own copy of the seed.
    ///
    /// # Errors
    /// [`KeyError::BadName`] for an invalid name.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        Self::from_signing_key(name, SigningKey::from_bytes(seed))
    }

    /// A signer from an `ed25519-dalek` signing key.
    ///
    /// # Errors
    /// [`KeyError::BadName`] for an invalid name.
    pub fn from_signing_key(name: &str, key: SigningKey) -> Result<Self, KeyError> {
        check_name(name).map_err(KeyError::BadName)?;
        let key_id = ed25519_key_id(name, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses the private key text `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`.
    /// The key ID is checked against the one computed from the name and the public key.
    ///
    /// # Errors
    /// A [`KeyError`] naming what is wrong (never echoing key material).
    pub fn from_private_key_text(text: &str) -> Result<Self, KeyError> {
        let (name, stated, seed) = parse_private_key_text(text, ALG_ED25519)?;
        let signer = Self::from_seed(name, &seed)?;
        check_key_id(stated, signer.key_id)?;
        Ok(signer)
    }

    /// The private key text, `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`, in a
    /// string that is wiped when dropped. Store it as a secret (for example a file with mode
    /// 0600).
    #[must_use]
    pub fn to_private_key_text(&self) -> Zeroizing<String> {
        private_key_text(&self.name, self.key_id, ALG_ED25519, &self.key)
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID (see [`key_id`]).
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The key name and ID.
    #[must_use]
    pub fn key_ref(&self) -> KeyRef {
        KeyRef {
            name: self.name.clone(),
            key_id: self.key_id,
        }
    }

    /// The Ed25519 public key.
    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The verifier that checks this signer's signatures.
    #[must_use]
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `msg` (the note text) and returns the base64 of `key ID || signature`.
    pub(crate) fn sign_b64(&self, msg: &[u8]) -> String {
        let sig: Signature = self.key.sign(msg);
        let mut blob = [0_u8; 68];
        blob[..4].copy_from_slice(&self.key_id.to_be_bytes());
        blob[4..].copy_from_slice(&sig.to_bytes());
        STANDARD.encode(blob)
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl FromStr for NoteSigner {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_private_key_text(s)
    }
}

/// A key that verifies notes: a key name, key ID and Ed25519 public key.
///
/// Its text form (a "vkey") is `<name>+<key ID as 8 hex digits>+<base64(0x01 || public key)>`,
/// as `golang.org/x/mod/sumdb/note` reads and writes it. Public keys that are not canonically
/// encoded or are small-order points are refused when the verifier is made; signatures are
/// checked with `verify_strict`.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for a name and an Ed25519 public key; the key ID is computed.
    ///
    /// # Errors
    /// [`KeyError::BadName`], or [`KeyError::NonCanonicalKey`] / [`KeyError::WeakKey`] for a
    /// key under which signatures could be forged.
    pub fn new(name: &str, key: &VerifyingKey) -> Result<Self, KeyError> {
        check_name(name).map_err(KeyError::BadName)?;
        let key = check_public_key(key.as_bytes())?;
        Ok(Self {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &key),
            key,
        })
    }

    /// Parses a verifier key text `<name>+<hex key ID>+<base64(0x01 || public key)>`. The key
    /// ID is checked against the one computed from the name and the key.
    ///
    /// # Errors
    /// A [`KeyError`] naming what is wrong.
    pub fn from_vkey(text: &str) -> Result<Self, KeyError> {
        let (name, key) = parse_vkey_text(text, ALG_ED25519)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &key),
            key,
        })
    }

    /// The verifier key text, `<name>+<hex key ID>+<base64(0x01 || public key)>`.
    #[must_use]
    pub fn to_vkey(&self) -> String {
        vkey_text(&self.name, self.key_id, ALG_ED25519, &self.key)
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID (see [`key_id`]).
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The key name and ID.
    #[must_use]
    pub fn key_ref(&self) -> KeyRef {
        KeyRef {
            name: self.name.clone(),
            key_id: self.key_id,
        }
    }

    /// The Ed25519 public key.
    #[must_use]
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether `signature` (without the key ID) is this key's valid Ed25519 signature of
    /// `msg`, checked with `verify_strict`.
    #[must_use]
    pub fn verify(&self, msg: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <&[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.key
            .verify_strict(msg, &Signature::from_bytes(bytes))
            .is_ok()
    }

    /// Whether a signature line's key name and ID are this key's.
    pub(crate) fn matches(&self, name: &str, key_id: u32) -> bool {
        self.key_id == key_id && self.name == name
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NoteVerifier")
            .field(&self.to_vkey())
            .finish()
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl FromStr for NoteVerifier {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_vkey(s)
    }
}

#[cfg(test)]
impl NoteVerifier {
    /// A verifier that skips the weak-key checks, so that tests can reach `verify_strict`.
    pub(crate) fn new_unchecked_for_tests(name: &str, key: VerifyingKey) -> Self {
        Self {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &key),
            key,
        }
    }

    /// A verifier with a chosen key ID, to stage key-ID collisions.
    pub(crate) fn with_key_id_for_tests(name: &str, key_id: u32, key: VerifyingKey) -> Self {
        Self {
            name: name.to_owned(),
            key_id,
            key,
        }
    }
}

impl NoteSigner {
    /// Signs raw bytes (not a note) with the note key: the engine's optional per-receipt
    /// signatures over chain hashes. Verify with [`NoteVerifier::verify`].
    #[must_use]
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        ed25519_dalek::Signer::sign(&self.key, message).to_bytes()
    }
}
