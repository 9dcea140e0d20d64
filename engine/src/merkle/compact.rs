//! The compact range (frontier) that keeps the live root of a growing tree.

use super::{Digest, HashAlgorithm, ProveError, SubtreeSource, empty_root, node_hash};

/// The frontier of a Merkle tree of `size` leaves: the roots of the perfect subtrees its leaves
/// decompose into, one per set bit of `size`, largest (leftmost) first.
///
/// Appending a leaf merges equal-sized subtrees like a binary counter: one node hash amortised,
/// at most 64. [`root`](Self::root) folds the subtrees right to left in `popcount(size) - 1`
/// node hashes, which is exactly the RFC 9162 root because an RFC tree is its leftmost perfect
/// subtree joined with the tree of the rest.
///
/// The range knows its [`HashAlgorithm`]; its byte encoding ([`to_bytes`](Self::to_bytes)) is
/// specified in `docs/design.md` and is at most [`MAX_ENCODED_LEN`](Self::MAX_ENCODED_LEN)
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactRange {
    alg: HashAlgorithm,
    size: u64,
    /// `popcount(size)` subtree roots, largest first.
    peaks: Vec<Digest>,
}

/// Why a compact range could not be decoded or grown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactRangeError {
    /// The input is shorter than the fixed header.
    #[error("compact range encoding is {len} bytes, shorter than its {header}-byte header")]
    Truncated {
        /// Bytes given.
        len: usize,
        /// Bytes the header needs.
        header: usize,
    },
    /// The version byte is not one this build reads.
    #[error("unsupported compact range encoding version {0}")]
    UnsupportedVersion(u8),
    /// The hash algorithm byte is unknown.
    #[error("unknown hash algorithm byte {0} in compact range")]
    UnknownAlgorithm(u8),
    /// The length does not match the size (one 32-byte hash per set bit of the size).
    #[error("compact range of size {size} encodes to {expected} bytes, got {actual}")]
    WrongLength {
        /// The tree size the header claims.
        size: u64,
        /// The length that size calls for.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// The number of subtree hashes does not match the size.
    #[error("compact range of size {size} needs {expected} subtree hashes, got {actual}")]
    WrongPeakCount {
        /// The tree size.
        size: u64,
        /// `popcount(size)`.
        expected: usize,
        /// The number given.
        actual: usize,
    },
    /// The tree already holds `u64::MAX` leaves.
    #[error("the tree is full ({} leaves)", u64::MAX)]
    Full,
}

impl CompactRange {
    /// The encoding version [`to_bytes`](Self::to_bytes) writes.
    pub const ENCODING_VERSION: u8 = 1;
    /// Length of the encoding's fixed header: version, algorithm, size.
    pub const HEADER_LEN: usize = 10;
    /// The largest encoding: the header and 64 subtree hashes.
    pub const MAX_ENCODED_LEN: usize = Self::HEADER_LEN + 64 * 32;

    /// The empty tree.
    #[must_use]
    pub fn new(alg: HashAlgorithm) -> CompactRange {
        CompactRange {
            alg,
            size: 0,
            peaks: Vec::new(),
        }
    }

    /// A range from its parts: the size and its `popcount(size)` subtree roots, largest first.
    ///
    /// # Errors
    ///
    /// [`CompactRangeError::WrongPeakCount`] when `peaks` does not have one hash per set bit of
    /// `size`.
    pub fn from_peaks(
        alg: HashAlgorithm,
        size: u64,
        peaks: Vec<Digest>,
    ) -> Result<CompactRange, CompactRangeError> {
        let expected = size.count_ones() as usize;
        if peaks.len() != expected {
            return Err(CompactRangeError::WrongPeakCount {
                size,
                expected,
                actual: peaks.len(),
            });
        }
        Ok(CompactRange { alg, size, peaks })
    }

    /// The range of the first `size` leaves of a stored tree, read from `source`: one subtree
    /// hash per set bit of `size` (lookups in a [`LeafHashTable`](super::LeafHashTable) with
    /// an interior, apart from the subtrees below its base level). This is how the live root
    /// is recovered from the leaf-hash table after a restart, without replaying the leaves.
    ///
    /// # Errors
    ///
    /// [`ProveError::SizeBeyondSource`], or the source's error.
    pub fn from_source<S: SubtreeSource + ?Sized>(
        alg: HashAlgorithm,
        size: u64,
        source: &S,
    ) -> Result<CompactRange, ProveError> {
        let leaf_count = source.leaf_count();
        if size > leaf_count {
            return Err(ProveError::SizeBeyondSource { size, leaf_count });
        }
        let mut peaks = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                peaks.push(source.subtree_hash(alg, level, start >> level)?);
                start += width;
            }
        }
        Ok(CompactRange { alg, size, peaks })
    }

    /// The hash algorithm.
    #[must_use]
    pub fn algorithm(&self) -> HashAlgorithm {
        self.alg
    }

    /// The number of leaves appended so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the perfect subtrees, largest (leftmost) first: `popcount(size)` hashes.
    /// The subtree of the highest set bit `2^h` of `size` covers leaves `0..2^h`, the next one
    /// the following leaves, and so on.
    #[must_use]
    pub fn peaks(&self) -> &[Digest] {
        &self.peaks
    }

    /// Appends a leaf hash (see [`leaf_hash`](super::leaf_hash)) and returns its index.
    ///
    /// # Errors
    ///
    /// [`CompactRangeError::Full`] when the tree already has `u64::MAX` leaves; nothing changes.
    pub fn append(&mut self, leaf_hash: &Digest) -> Result<u64, CompactRangeError> {
        self.append_visit(leaf_hash, |_, _, _| {})
    }

    /// Appends a leaf hash like [`append`](Self::append) and calls `visit(level, index, hash)`
    /// for every perfect subtree the leaf completes, in increasing level (1, 2, ...). The
    /// subtree at `level` and `index` covers leaves `index·2^level .. (index+1)·2^level`.
    ///
    /// Visiting every append's nodes with `level >= L` in this order produces exactly the
    /// post-order interior table of [`LeafHashTable`](super::LeafHashTable) for base level
    /// `L`, so the engine can write it incrementally, with no pass at seal time.
    ///
    /// # Errors
    ///
    /// [`CompactRangeError::Full`] when the tree already has `u64::MAX` leaves; nothing changes
    /// and `visit` is not called.
    pub fn append_visit(
        &mut self,
        leaf_hash: &Digest,
        mut visit: impl FnMut(u32, u64, &Digest),
    ) -> Result<u64, CompactRangeError> {
        let index = self.size;
        let new_size = index.checked_add(1).ok_or(CompactRangeError::Full)?;
        let mut hash = *leaf_hash;
        // Each trailing one bit of the old size is a subtree of that level that the new leaf's
        // subtree now completes.
        for level in 1..=index.trailing_ones() {
            let Some(left) = self.peaks.pop() else {
                // Unreachable: there is one peak per set bit of `size`.
                break;
            };
            hash = node_hash(self.alg, &left, &hash);
            visit(level, index >> level, &hash);
        }
        self.peaks.push(hash);
        self.size = new_size;
        Ok(index)
    }

    /// The root of the tree of the leaves appended so far (RFC 9162 `MTH`); the empty-tree
    /// root for size 0.
    #[must_use]
    pub fn root(&self) -> Digest {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root(self.alg);
        };
        peaks.fold(*last, |right, left| node_hash(self.alg, left, &right))
    }

    /// The encoding: version (1 byte, `1`), hash algorithm (1 byte: `1` BLAKE3, `2` SHA-256),
    /// size (8 bytes, little-endian), then the [`peaks`](Self::peaks), 32 bytes each, largest
    /// first.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::HEADER_LEN + 32 * self.peaks.len());
        out.push(Self::ENCODING_VERSION);
        out.push(self.alg as u8);
        out.extend_from_slice(&self.size.to_le_bytes());
        for peak in &self.peaks {
            out.extend_from_slice(peak);
        }
        out
    }

    /// Decodes [`to_bytes`](Self::to_bytes)'s output. The whole input must be the encoding.
    ///
    /// # Errors
    ///
    /// A [`CompactRangeError`] naming the bad header field or the length mismatch.
    pub fn from_bytes(bytes: &[u8]) -> Result<CompactRange, CompactRangeError> {
        let Some((header, body)) = bytes.split_first_chunk::<{ Self::HEADER_LEN }>() else {
            return Err(CompactRangeError::Truncated {
                len: bytes.len(),
                header: Self::HEADER_LEN,
            });
        };
        let [version, alg, size @ ..] = *header;
        if version != Self::ENCODING_VERSION {
            return Err(CompactRangeError::UnsupportedVersion(version));
        }
        let alg = HashAlgorithm::from_byte(alg).ok_or(CompactRangeError::UnknownAlgorithm(alg))?;
        let size = u64::from_le_bytes(size);
        let count = size.count_ones() as usize;
        let expected = Self::HEADER_LEN + 32 * count;
        let (peaks, rest) = body.as_chunks::<32>();
        if bytes.len() != expected || !rest.is_empty() {
            return Err(CompactRangeError::WrongLength {
                size,
                expected,
                actual: bytes.len(),
            });
        }
        Ok(CompactRange {
            alg,
            size,
            peaks: peaks.to_vec(),
        })
    }
}
