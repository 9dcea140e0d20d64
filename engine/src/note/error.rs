//! Typed errors of the signed-note code: what is wrong and on which line.

use std::fmt;

use super::KeyRef;

/// Why a key name is not acceptable (C2SP signed-note: non-empty, no Unicode white space, no
/// `+`; and, here, no ASCII control character and at most [`super::MAX_KEY_NAME_BYTES`] bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name is longer than [`super::MAX_KEY_NAME_BYTES`] bytes.
    TooLong {
        /// Length of the name in bytes.
        len: usize,
    },
    /// The name contains a Unicode white-space character (Unicode `White_Space` property).
    WhiteSpace,
    /// The name contains a plus sign (U+002B), which separates the fields of key texts.
    Plus,
    /// The name contains an ASCII control character (below U+0020).
    ControlCharacter,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the name is empty"),
            Self::TooLong { len } => write!(
                f,
                "the name is {len} bytes, more than the limit of {}",
                super::MAX_KEY_NAME_BYTES
            ),
            Self::WhiteSpace => f.write_str("the name contains white space"),
            Self::Plus => f.write_str("the name contains '+'"),
            Self::ControlCharacter => f.write_str("the name contains a control character"),
        }
    }
}

/// An error from parsing, opening (verifying) or signing a note.
///
/// Line numbers count the note's lines from 1, body lines first; the blank separator line and
/// the signature lines follow. Columns count bytes from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note (or the body to sign, with its signatures) is larger than the limit.
    #[error("note is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Size in bytes.
        len: usize,
        /// The limit, [`super::MAX_NOTE_BYTES`].
        max: usize,
    },
    /// The note is not valid UTF-8.
    #[error("line {line}: note is not valid UTF-8 (at byte offset {offset})")]
    NotUtf8 {
        /// Line of the first invalid byte.
        line: usize,
        /// Byte offset of the first invalid byte in the note.
        offset: usize,
    },
    /// The note holds an ASCII control character other than newline (a carriage return is
    /// one: CRLF line endings are not allowed).
    #[error(
        "line {line}, column {column}: control character {byte:#04x} (only newline, 0x0a, is allowed; CRLF line endings are not)"
    )]
    ControlCharacter {
        /// Line of the character.
        line: usize,
        /// Column (byte within the line, from 1).
        column: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The note does not end with a newline.
    #[error("note does not end with a newline")]
    MissingFinalNewline,
    /// No blank line separates the text from the signature lines.
    #[error("note has no blank line separating the text from the signatures")]
    MissingBlankLine,
    /// The last blank line is not followed by any signature line.
    #[error("line {line}: the blank line ending the text is not followed by signature lines")]
    NoSignatures {
        /// Line number of that blank line.
        line: usize,
    },
    /// More signature lines than [`super::MAX_SIGNATURES`].
    #[error("line {line}: more than {max} signature lines")]
    TooManySignatures {
        /// Line of the first signature line over the limit.
        line: usize,
        /// The limit.
        max: usize,
    },
    /// A signature line does not start with an em dash (U+2014) and a space.
    #[error("line {line}: signature line does not start with an em dash (U+2014) and a space")]
    MissingEmDash {
        /// Line number.
        line: usize,
    },
    /// A signature line has no space between the key name and the signature.
    #[error("line {line}: signature line has no space between key name and signature")]
    MissingSignature {
        /// Line number.
        line: usize,
    },
    /// A signature line's key name is not a valid key name.
    #[error("line {line}: invalid key name: {problem}")]
    BadKeyName {
        /// Line number.
        line: usize,
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// A signature is not canonical standard base64 (RFC 4648 §4, padded).
    #[error("line {line}: signature is not canonical standard base64")]
    BadBase64 {
        /// Line number.
        line: usize,
    },
    /// A signature decodes to fewer than 5 bytes (a 4-byte key ID and at least one byte).
    #[error("line {line}: signature is {len} bytes, fewer than a key ID and one byte")]
    ShortSignature {
        /// Line number.
        line: usize,
        /// Decoded length.
        len: usize,
    },
    /// A known key signed twice.
    #[error("line {line}: second signature from {key} (the first is on line {first_line})")]
    DuplicateSignature {
        /// Line of the second signature.
        line: usize,
        /// Line of the first one.
        first_line: usize,
        /// The key.
        key: KeyRef,
    },
    /// A signature line's key name and ID match two known verifiers with different keys.
    #[error("line {line}: key {key} matches more than one known verifier")]
    AmbiguousKey {
        /// Line number.
        line: usize,
        /// The key name and ID.
        key: KeyRef,
    },
    /// A signature from a known key (name and ID match) does not verify over the text.
    #[error("line {line}: signature from known key {key} does not verify")]
    InvalidSignature {
        /// Line number.
        line: usize,
        /// The key.
        key: KeyRef,
    },
    /// No signature line is from a known key: the note must be ignored.
    #[error("note has no signature from a known key ({} from unknown keys)", unknown.len())]
    NoKnownSignature {
        /// The distinct unknown keys that signed, in order of appearance.
        unknown: Vec<KeyRef>,
    },
    /// The body to sign is empty.
    #[error("the body to sign is empty")]
    EmptyBody,
    /// The body to sign does not end with a newline.
    #[error("the body to sign does not end with a newline")]
    BodyMissingFinalNewline,
    /// No signer was given.
    #[error("no signer given")]
    NoSigners,
    /// More signers than [`super::MAX_SIGNATURES`].
    #[error("{count} signers, more than the limit of {max}")]
    TooManySigners {
        /// Number of signers given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The same key (name and ID) was given twice as a signer.
    #[error("signer {key} given twice")]
    DuplicateSigner {
        /// The key.
        key: KeyRef,
    },
}

/// An error from parsing a verifier or signer key text, or from making a key.
///
/// Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key text is longer than [`super::MAX_KEY_TEXT_BYTES`].
    #[error("key text is {len} bytes, more than the limit of {max}")]
    TooLong {
        /// Length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The key text does not have the expected `+`-separated fields.
    #[error("key text is not of the form {expected}")]
    Malformed {
        /// The expected form.
        expected: &'static str,
    },
    /// The key name is not valid.
    #[error("invalid key name: {0}")]
    BadName(NameProblem),
    /// The key ID field is not exactly 8 hexadecimal digits.
    #[error("key ID is not 8 hexadecimal digits")]
    BadKeyId,
    /// The key material is not canonical standard base64.
    #[error("key material is not canonical standard base64")]
    BadBase64,
    /// The key material is empty (no algorithm byte).
    #[error("key material is empty")]
    EmptyKey,
    /// The algorithm byte is not 0x01 (Ed25519), the only one supported.
    #[error("unsupported signature algorithm {0:#04x} (only 0x01, Ed25519, is supported)")]
    UnsupportedAlgorithm(u8),
    /// The key's type byte is not the one this kind of key has (a note key, `0x01`, given
    /// where a witness cosignature key, `0x04`, is expected, or the other way round).
    #[error("key type {found:#04x} where a key of type {expected:#04x} is expected")]
    WrongKeyType {
        /// The type byte found.
        found: u8,
        /// The type byte expected.
        expected: u8,
    },
    /// The key after the algorithm byte is not 32 bytes.
    #[error("Ed25519 key is {len} bytes, expected 32")]
    BadKeyLength {
        /// Its length in bytes (after the algorithm byte).
        len: usize,
    },
    /// The key ID in the text is not the one computed from the name and the key.
    #[error("key ID {stated:08x} in the text does not match the key (computed {computed:08x})")]
    KeyIdMismatch {
        /// The key ID written in the text.
        stated: u32,
        /// The key ID computed from the name and key.
        computed: u32,
    },
    /// The public key is not a point of the curve.
    #[error("public key is not a valid Ed25519 point")]
    InvalidPoint,
    /// The public key is not canonically encoded (its y-coordinate is not below 2^255 - 19).
    #[error("public key is not canonically encoded")]
    NonCanonicalKey,
    /// The public key is a small-order point: signatures under it can be forged.
    #[error("public key is a small-order point, under which signatures can be forged")]
    WeakKey,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// An error from parsing, building, signing or opening a checkpoint.
///
/// Line numbers count the checkpoint body's lines from 1 (origin, tree size, root hash,
/// extension lines); in a signed note the body comes first, so they are the note's line
/// numbers too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The signed note around the checkpoint is bad (or no known key signed it).
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The body is larger than [`super::MAX_NOTE_BYTES`].
    #[error("checkpoint body is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Size in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body does not end with a newline.
    #[error("checkpoint body does not end with a newline")]
    MissingFinalNewline,
    /// The body has fewer than three lines.
    #[error("checkpoint body has {lines} lines, needs at least 3 (origin, tree size, root hash)")]
    TooFewLines {
        /// Number of lines found.
        lines: usize,
    },
    /// A line is empty (every checkpoint line, extensions included, must be non-empty).
    #[error("line {line}: empty line (checkpoint lines must be non-empty)")]
    EmptyLine {
        /// Line number.
        line: usize,
    },
    /// A field holds a control character (a newline inside a field included).
    #[error("line {line}, column {column}: control character {byte:#04x}")]
    ControlCharacter {
        /// Line number.
        line: usize,
        /// Column (byte within the line, from 1).
        column: usize,
        /// The offending byte.
        byte: u8,
    },
    /// Line 2 is not a decimal tree size without leading zeros that fits in 64 bits.
    #[error("line 2: bad tree size: {problem}")]
    BadTreeSize {
        /// What is wrong.
        problem: &'static str,
    },
    /// Line 3 is not canonical standard base64.
    #[error("line 3: root hash is not canonical standard base64")]
    BadRootHashBase64,
    /// Line 3 does not decode to 32 bytes.
    #[error("line 3: root hash is {len} bytes, expected 32")]
    BadRootHashLength {
        /// Decoded length.
        len: usize,
    },
}
