//! Witness cosignatures ([C2SP tlog-cosignature], the Ed25519 `cosignature/v1` type).
//!
//! A cosignature is one more signature line on a checkpoint note, by a *witness* that checked
//! the checkpoint is consistent with every earlier one it saw of the same log:
//!
//! ```text
//! — <witness name> base64(key ID || timestamp (u64, big-endian) || Ed25519 signature)
//! ```
//!
//! The key ID is `SHA-256(name || 0x0A || 0x04 || public key)[:4]` (type byte `0x04`, not the
//! `0x01` of note keys), and the signed message is
//! `"cosignature/v1\n" || "time " || decimal timestamp || "\n" || note body`.
//! Log verifiers ([`super::open`]) ignore cosignature lines as unknown keys, so a cosigned note
//! still opens with the log's key alone.
//!
//! [C2SP tlog-cosignature]: https://c2sp.org/tlog-cosignature

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use super::error::{KeyError, NoteError};
use super::keys::{
    check_key_id, check_name, check_public_key, parse_private_key_text, parse_vkey_text,
    private_key_text, random_seed, typed_key_id, vkey_text,
};
use super::{KeyRef, MAX_NOTE_BYTES, MAX_SIGNATURES, ParsedNote, SignatureLine, parse};

/// The signature type byte of Ed25519 `cosignature/v1` keys (key IDs and vkeys).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// The latest timestamp a cosignature may carry: 2^63 − 1 seconds (the specification's bound).
pub const COSIGNATURE_TIME_MAX: u64 = (1 << 63) - 1;

/// First line of every signed message: the domain separation of `cosignature/v1`.
const HEADER_LINE: &str = "cosignature/v1\n";

/// Bytes after the key ID of a cosignature line: the timestamp and the Ed25519 signature.
const TIMESTAMPED_SIGNATURE_BYTES: usize = 8 + 64;

/// Why a cosignature cannot be made or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignatureError {
    /// The note itself is malformed.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// No signature line of the note is by this witness (name and key ID).
    #[error("the note carries no cosignature by witness {witness}")]
    Missing {
        /// The witness looked for.
        witness: KeyRef,
    },
    /// The witness's line does not decode to a timestamp and a 64-byte signature.
    #[error(
        "line {line}: the cosignature of {witness} is {len} bytes after the key ID, expected 72"
    )]
    BadLength {
        /// Line of the signature.
        line: usize,
        /// The witness.
        witness: KeyRef,
        /// Bytes after the key ID.
        len: usize,
    },
    /// The timestamp is above 2^63 − 1.
    #[error("line {line}: cosignature time {time} is above 2^63 - 1")]
    TimeOutOfRange {
        /// Line of the signature (0: the cosignature being made).
        line: usize,
        /// The timestamp.
        time: u64,
    },
    /// The witness's signature does not verify over the note body and timestamp.
    #[error(
        "line {line}: the cosignature of {witness} does not verify (the note or the time was changed, or another key made it)"
    )]
    Invalid {
        /// Line of the signature.
        line: usize,
        /// The witness.
        witness: KeyRef,
    },
    /// The witness cosigned the note twice.
    #[error("line {line}: witness {witness} cosigned twice (first on line {first_line})")]
    Duplicate {
        /// Line of the second signature.
        line: usize,
        /// Line of the first.
        first_line: usize,
        /// The witness.
        witness: KeyRef,
    },
}

/// The message a `cosignature/v1` signature signs: the header line, the time line and the
/// whole note body (with its final newline, without signature lines).
#[must_use]
pub fn cosigned_message(body: &str, timestamp: u64) -> String {
    format!("{HEADER_LINE}time {timestamp}\n{body}")
}

/// A witness's signing key: a name and an Ed25519 key, wiped from memory on drop.
///
/// Text form: `PRIVATE+KEY+<name>+<key ID as 8 hex digits>+<base64(0x04 || 32-byte seed)>`,
/// the note signer form with the cosignature type byte (the key ID is the cosignature one).
pub struct CosignatureSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl CosignatureSigner {
    /// A new witness key from the operating system's random number generator.
    ///
    /// # Errors
    /// [`KeyError::BadName`], or [`KeyError::Random`] if the generator fails.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        check_name(name).map_err(KeyError::BadName)?;
        let seed = random_seed()?;
        Self::from_seed(name, &seed)
    }

    /// A witness key from a 32-byte Ed25519 seed.
    ///
    /// # Errors
    /// [`KeyError::BadName`].
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        check_name(name).map_err(KeyError::BadName)?;
        let key = SigningKey::from_bytes(seed);
        Ok(Self {
            name: name.to_owned(),
            key_id: typed_key_id(name, ALG_COSIGNATURE_V1, &key.verifying_key()),
            key,
        })
    }

    /// Parses the private key text; the key ID must match the name and key.
    ///
    /// # Errors
    /// A [`KeyError`] saying what is wrong ([`KeyError::WrongKeyType`] for a note key).
    pub fn from_private_key_text(text: &str) -> Result<Self, KeyError> {
        let (name, stated, seed) = parse_private_key_text(text, ALG_COSIGNATURE_V1)?;
        let signer = Self::from_seed(name, &seed)?;
        check_key_id(stated, signer.key_id)?;
        Ok(signer)
    }

    /// The private key text, in a string wiped on drop. Keep it secret (mode 0600).
    #[must_use]
    pub fn to_private_key_text(&self) -> Zeroizing<String> {
        private_key_text(&self.name, self.key_id, ALG_COSIGNATURE_V1, &self.key)
    }

    /// The witness name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cosignature key ID.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier of this witness's cosignatures.
    #[must_use]
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Adds this witness's cosignature (made at `timestamp`, POSIX seconds) to `note` and
    /// returns the new note text. A cosignature line of this witness already on the note is
    /// replaced; every other line is kept as it is. The note's signatures are not checked
    /// here: a witness checks the log's signature before it cosigns.
    ///
    /// # Errors
    /// [`CosignatureError::Note`] for a malformed note or one that would grow too large or
    /// carry too many signatures; [`CosignatureError::TimeOutOfRange`].
    pub fn cosign(&self, note: &str, timestamp: u64) -> Result<String, CosignatureError> {
        let mut parsed = parse(note.as_bytes())?;
        if timestamp > COSIGNATURE_TIME_MAX {
            return Err(CosignatureError::TimeOutOfRange {
                line: 0,
                time: timestamp,
            });
        }
        let message = cosigned_message(&parsed.body, timestamp);
        let signature: Signature = self.key.sign(message.as_bytes());
        let mut blob = Vec::with_capacity(TIMESTAMPED_SIGNATURE_BYTES);
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        parsed
            .signatures
            .retain(|s| !(s.name == self.name && s.key_id == self.key_id));
        if parsed.signatures.len() >= MAX_SIGNATURES {
            return Err(NoteError::TooManySigners {
                count: parsed.signatures.len() + 1,
                max: MAX_SIGNATURES,
            }
            .into());
        }
        parsed.signatures.push(SignatureLine {
            line: 0,
            name: self.name.clone(),
            key_id: self.key_id,
            signature: blob,
        });
        let text = parsed.to_text();
        if text.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge {
                len: text.len(),
                max: MAX_NOTE_BYTES,
            }
            .into());
        }
        Ok(text)
    }
}

impl fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignatureSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// A witness's public key, which checks its cosignatures.
///
/// Text form (a C2SP vkey with type byte `0x04`):
/// `<name>+<key ID as 8 hex digits>+<base64(0x04 || 32-byte public key)>`.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

/// A cosignature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCosignature {
    /// The witness.
    pub witness: KeyRef,
    /// When the witness cosigned, POSIX seconds.
    pub timestamp: u64,
    /// The note body it covers.
    pub body: String,
}

impl CosignatureVerifier {
    /// A verifier for a witness name and public key.
    ///
    /// # Errors
    /// [`KeyError::BadName`], [`KeyError::NonCanonicalKey`], [`KeyError::WeakKey`].
    pub fn new(name: &str, key: &VerifyingKey) -> Result<Self, KeyError> {
        check_name(name).map_err(KeyError::BadName)?;
        let key = check_public_key(key.as_bytes())?;
        Ok(Self {
            name: name.to_owned(),
            key_id: typed_key_id(name, ALG_COSIGNATURE_V1, &key),
            key,
        })
    }

    /// Parses a vkey `<name>+<hex key ID>+<base64(0x04 || public key)>`.
    ///
    /// # Errors
    /// A [`KeyError`]; [`KeyError::WrongKeyType`] for a note (`0x01`) key.
    pub fn from_vkey(text: &str) -> Result<Self, KeyError> {
        let (name, key) = parse_vkey_text(text, ALG_COSIGNATURE_V1)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: typed_key_id(name, ALG_COSIGNATURE_V1, &key),
            key,
        })
    }

    /// The vkey text.
    #[must_use]
    pub fn to_vkey(&self) -> String {
        vkey_text(&self.name, self.key_id, ALG_COSIGNATURE_V1, &self.key)
    }

    /// The witness name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cosignature key ID.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The witness name and key ID.
    #[must_use]
    pub fn key_ref(&self) -> KeyRef {
        KeyRef {
            name: self.name.clone(),
            key_id: self.key_id,
        }
    }

    /// Checks this witness's cosignature on `note` (`verify_strict`). Lines of other keys are
    /// ignored: the log's own signature is checked by [`super::open`], not here.
    ///
    /// # Errors
    /// [`CosignatureError`]: the note is malformed, carries no line of this witness, carries
    /// two, or the line is malformed or does not verify.
    pub fn verify(&self, note: &[u8]) -> Result<VerifiedCosignature, CosignatureError> {
        let parsed = parse(note)?;
        let line = self.own_line(&parsed)?;
        let Some((time, signature)) = line
            .signature
            .split_first_chunk::<8>()
            .filter(|_| line.signature.len() == TIMESTAMPED_SIGNATURE_BYTES)
        else {
            return Err(CosignatureError::BadLength {
                line: line.line,
                witness: self.key_ref(),
                len: line.signature.len(),
            });
        };
        let timestamp = u64::from_be_bytes(*time);
        if timestamp > COSIGNATURE_TIME_MAX {
            return Err(CosignatureError::TimeOutOfRange {
                line: line.line,
                time: timestamp,
            });
        }
        let verified = <&[u8; 64]>::try_from(signature).is_ok_and(|bytes| {
            self.key
                .verify_strict(
                    cosigned_message(&parsed.body, timestamp).as_bytes(),
                    &Signature::from_bytes(bytes),
                )
                .is_ok()
        });
        if !verified {
            return Err(CosignatureError::Invalid {
                line: line.line,
                witness: self.key_ref(),
            });
        }
        Ok(VerifiedCosignature {
            witness: self.key_ref(),
            timestamp,
            body: parsed.body,
        })
    }

    /// The one signature line of this witness.
    fn own_line<'a>(&self, parsed: &'a ParsedNote) -> Result<&'a SignatureLine, CosignatureError> {
        let mut own = parsed
            .signatures
            .iter()
            .filter(|s| s.name == self.name && s.key_id == self.key_id);
        let first = own.next().ok_or_else(|| CosignatureError::Missing {
            witness: self.key_ref(),
        })?;
        if let Some(second) = own.next() {
            return Err(CosignatureError::Duplicate {
                line: second.line,
                first_line: first.line,
                witness: self.key_ref(),
            });
        }
        Ok(first)
    }
}

impl fmt::Debug for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CosignatureVerifier")
            .field(&self.to_vkey())
            .finish()
    }
}

impl fmt::Display for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl FromStr for CosignatureVerifier {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_vkey(s)
    }
}
