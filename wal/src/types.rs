//! Newtypes for the identifiers the log hands out.

use std::fmt;

use crate::error::{Error, Result};

/// A record's sequence number: dense, from 0, strictly increasing across segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u64);

impl Seq {
    /// The following sequence number.
    #[must_use]
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A segment's position in the log, from 0, dense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SegmentNo(pub u64);

impl fmt::Display for SegmentNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A 32-byte chain hash, carried in segment headers for the layer above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// All zeros: the link before the first record.
    pub const ZERO: ChainHash = ChainHash([0; 32]);
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The random 16-byte identity of a log; every segment header repeats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoreId(pub [u8; 16]);

impl StoreId {
    /// A fresh random id.
    #[must_use]
    pub fn random() -> StoreId {
        StoreId(rand::random())
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The hash algorithm of the chain hashes a log carries (fixed at creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum HashAlgorithm {
    /// BLAKE3 (the default).
    #[default]
    Blake3 = 1,
    /// SHA-256 (for RFC 6962 interoperability).
    Sha256 = 2,
}

impl HashAlgorithm {
    /// Decodes the on-disk byte.
    #[must_use]
    pub fn from_byte(byte: u8) -> Option<HashAlgorithm> {
        match byte {
            1 => Some(HashAlgorithm::Blake3),
            2 => Some(HashAlgorithm::Sha256),
            _ => None,
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashAlgorithm::Blake3 => "blake3",
            HashAlgorithm::Sha256 => "sha256",
        })
    }
}

/// A record's kind: 1..=127 are the caller's; 0 and 128..=255 are reserved by the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKind(u8);

impl RecordKind {
    /// The largest kind available to callers.
    pub const USER_MAX: u8 = 127;

    /// A caller's record kind.
    ///
    /// # Errors
    /// [`Error::ReservedKind`] for 0 and 128..=255.
    pub fn new(kind: u8) -> Result<RecordKind> {
        if (1..=Self::USER_MAX).contains(&kind) {
            Ok(RecordKind(kind))
        } else {
            Err(Error::ReservedKind { kind })
        }
    }

    /// The on-disk byte.
    #[must_use]
    pub fn get(self) -> u8 {
        self.0
    }

    pub(crate) fn from_disk(kind: u8) -> RecordKind {
        RecordKind(kind)
    }
}
