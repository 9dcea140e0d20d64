//! Transparency-log checkpoints (C2SP tlog-checkpoint): the body of a signed note.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::error::CheckpointError;
use super::{MAX_NOTE_BYTES, NoteSigner, NoteVerifier, OpenedNote, find_control, open, sign};

/// A checkpoint: the log `origin` had `tree_size` leaves whose Merkle root is `root_hash`.
///
/// Its body (the signed note text) is
///
/// ```text
/// <origin>\n
/// <tree size in decimal, no leading zeros>\n
/// <root hash in standard base64>\n
/// <extension line>\n   (zero or more; opaque, non-empty)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The log's identity, a non-empty line (recommended: a schema-less URL such as
    /// `example.com/log42`, also used as the signing key name).
    pub origin: String,
    /// Number of leaves in the tree.
    pub tree_size: u64,
    /// The tree's Merkle root hash.
    pub root_hash: [u8; 32],
    /// Optional extension lines, each non-empty (the specification advises against them).
    pub extensions: Vec<String>,
}

/// Checks one body line: non-empty, no control character (newline included).
fn check_line(line: usize, text: &str) -> Result<(), CheckpointError> {
    if text.is_empty() {
        return Err(CheckpointError::EmptyLine { line });
    }
    if let Some((column, &byte)) = text.as_bytes().iter().enumerate().find(|(_, b)| **b < 0x20) {
        return Err(CheckpointError::ControlCharacter {
            line,
            column: column + 1,
            byte,
        });
    }
    Ok(())
}

fn parse_tree_size(text: &str) -> Result<u64, CheckpointError> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CheckpointError::BadTreeSize {
            problem: "not a decimal number",
        });
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(CheckpointError::BadTreeSize {
            problem: "leading zero",
        });
    }
    text.parse::<u64>()
        .map_err(|_| CheckpointError::BadTreeSize {
            problem: "does not fit in 64 bits",
        })
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    #[must_use]
    pub fn new(origin: impl Into<String>, tree_size: u64, root_hash: [u8; 32]) -> Self {
        Self {
            origin: origin.into(),
            tree_size,
            root_hash,
            extensions: Vec::new(),
        }
    }

    /// The note body (text to sign).
    ///
    /// # Errors
    /// [`CheckpointError::EmptyLine`] or [`CheckpointError::ControlCharacter`] for an empty
    /// origin or extension, or one holding a newline or other control character (the line
    /// number is the one the field would have); [`CheckpointError::TooLarge`].
    pub fn to_body(&self) -> Result<String, CheckpointError> {
        check_line(1, &self.origin)?;
        for (i, ext) in self.extensions.iter().enumerate() {
            check_line(4 + i, ext)?;
        }
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            STANDARD.encode(self.root_hash)
        );
        for ext in &self.extensions {
            body.push_str(ext);
            body.push('\n');
        }
        if body.len() > MAX_NOTE_BYTES {
            return Err(CheckpointError::TooLarge {
                len: body.len(),
                max: MAX_NOTE_BYTES,
            });
        }
        Ok(body)
    }

    /// Parses a checkpoint body (the text of an opened note). Only the canonical form is
    /// accepted, so `parse_body(b)?.to_body()? == b`.
    ///
    /// # Errors
    /// A [`CheckpointError`] naming the line and what is wrong with it.
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        if body.len() > MAX_NOTE_BYTES {
            return Err(CheckpointError::TooLarge {
                len: body.len(),
                max: MAX_NOTE_BYTES,
            });
        }
        let Some(text) = body.strip_suffix('\n') else {
            return Err(CheckpointError::MissingFinalNewline);
        };
        if let Some((line, column, byte)) = find_control(text.as_bytes()) {
            return Err(CheckpointError::ControlCharacter { line, column, byte });
        }
        let lines: Vec<&str> = text.split('\n').collect();
        if let Some(i) = lines.iter().position(|l| l.is_empty()) {
            return Err(CheckpointError::EmptyLine { line: i + 1 });
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines { lines: lines.len() });
        };
        let tree_size = parse_tree_size(size)?;
        let decoded = STANDARD
            .decode(root)
            .map_err(|_| CheckpointError::BadRootHashBase64)?;
        let root_hash: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| CheckpointError::BadRootHashLength { len: decoded.len() })?;
        Ok(Self {
            origin: (*origin).to_owned(),
            tree_size,
            root_hash,
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        })
    }

    /// The signed note of this checkpoint. The key name of the log's own signer should be the
    /// origin (not enforced, so that witnesses can cosign).
    ///
    /// # Errors
    /// As [`Checkpoint::to_body`] and [`super::sign`].
    pub fn sign(&self, signers: &[&NoteSigner]) -> Result<String, CheckpointError> {
        Ok(sign(&self.to_body()?, signers)?)
    }

    /// Opens a checkpoint note: verifies it as [`super::open`] does, then parses the body.
    ///
    /// # Errors
    /// [`CheckpointError::Note`] when the note does not verify, otherwise the body's error.
    pub fn open(
        note: impl AsRef<[u8]>,
        verifiers: &[NoteVerifier],
    ) -> Result<(Self, OpenedNote), CheckpointError> {
        let opened = open(note, verifiers)?;
        let checkpoint = Self::parse_body(&opened.body)?;
        Ok((checkpoint, opened))
    }
}
