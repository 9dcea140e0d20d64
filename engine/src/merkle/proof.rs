//! Proof generation (RFC 9162 §2.1.3.1 and §2.1.4.1) over a [`SubtreeSource`], and the proofs'
//! byte encoding.

use super::{
    Digest, HashAlgorithm, SourceError, SubtreeSource, empty_root, node_hash, split_point,
};

/// Why a proof or root could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProveError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size asked for.
        size: u64,
    },
    /// The old tree is larger than the new one.
    #[error("old tree size {old} exceeds new tree size {new}")]
    SizesOutOfOrder {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// A consistency proof from the empty tree was asked for: RFC 9162 defines none (every
    /// tree extends the empty tree, there is nothing to prove).
    #[error("no consistency proof from the empty tree: every tree extends it")]
    EmptyOldTree,
    /// The tree size exceeds the leaves the source holds.
    #[error("tree size {size} exceeds the source's {leaf_count} leaves")]
    SizeBeyondSource {
        /// The tree size asked for.
        size: u64,
        /// The leaves the source holds.
        leaf_count: u64,
    },
    /// The source could not produce a subtree hash.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Why a proof's bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofDecodeError {
    /// The input is shorter than the fixed header.
    #[error("proof encoding is {len} bytes, shorter than its {header}-byte header")]
    Truncated {
        /// Bytes given.
        len: usize,
        /// Bytes the header needs.
        header: usize,
    },
    /// The version byte is not one this build reads.
    #[error("unsupported proof encoding version {0}")]
    UnsupportedVersion(u8),
    /// The kind byte names another kind of proof.
    #[error("proof kind byte is {actual}, expected {expected}")]
    WrongKind {
        /// The kind this decoder reads (`1` inclusion, `2` consistency).
        expected: u8,
        /// The kind byte found.
        actual: u8,
    },
    /// The length does not match the hash count in the header.
    #[error("proof with {count} hashes encodes to {expected} bytes, got {actual}")]
    WrongLength {
        /// The hash count in the header.
        count: u8,
        /// The length that count calls for.
        expected: usize,
        /// The length given.
        actual: usize,
    },
}

/// Encoding version of both proof kinds.
const PROOF_VERSION: u8 = 1;
/// Kind byte of an inclusion proof.
const KIND_INCLUSION: u8 = 1;
/// Kind byte of a consistency proof.
const KIND_CONSISTENCY: u8 = 2;
/// version, kind, two u64, count.
const PROOF_HEADER_LEN: usize = 19;

fn encode(kind: u8, a: u64, b: u64, path: &[Digest]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PROOF_HEADER_LEN + 32 * path.len());
    out.extend_from_slice(&[PROOF_VERSION, kind]);
    out.extend_from_slice(&a.to_le_bytes());
    out.extend_from_slice(&b.to_le_bytes());
    // Paths are built with at most 65 hashes, or decoded with at most 255.
    out.push(u8::try_from(path.len()).unwrap_or(u8::MAX));
    for hash in path {
        out.extend_from_slice(hash);
    }
    out
}

/// The little-endian u64 in the first 8 bytes (the callers pass exactly 8).
fn le_u64(bytes: &[u8]) -> u64 {
    bytes
        .first_chunk::<8>()
        .map_or(0, |b| u64::from_le_bytes(*b))
}

fn decode(kind: u8, bytes: &[u8]) -> Result<(u64, u64, Vec<Digest>), ProofDecodeError> {
    let Some((header, body)) = bytes.split_first_chunk::<PROOF_HEADER_LEN>() else {
        return Err(ProofDecodeError::Truncated {
            len: bytes.len(),
            header: PROOF_HEADER_LEN,
        });
    };
    let [version, actual_kind, rest @ ..] = *header;
    if version != PROOF_VERSION {
        return Err(ProofDecodeError::UnsupportedVersion(version));
    }
    if actual_kind != kind {
        return Err(ProofDecodeError::WrongKind {
            expected: kind,
            actual: actual_kind,
        });
    }
    let (a, rest) = rest.split_at(8);
    let (b, count) = rest.split_at(8);
    let (a, b) = (le_u64(a), le_u64(b));
    let count = count.first().copied().unwrap_or_default();
    let expected = PROOF_HEADER_LEN + 32 * usize::from(count);
    let (path, tail) = body.as_chunks::<32>();
    if bytes.len() != expected || !tail.is_empty() {
        return Err(ProofDecodeError::WrongLength {
            count,
            expected,
            actual: bytes.len(),
        });
    }
    Ok((a, b, path.to_vec()))
}

/// An RFC 9162 inclusion proof (audit path): the hashes that, chained with a leaf hash, give the
/// root of the tree of `tree_size` leaves. Ordered from the leaf upwards (RFC 9162 §2.1.3.1).
///
/// `leaf_index` and `tree_size` say what the proof was made for; a verifier takes the tree size
/// from the signed checkpoint and passes it to [`verify_inclusion`](super::verify_inclusion)
/// itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    leaf_index: u64,
    tree_size: u64,
    path: Vec<Digest>,
}

impl InclusionProof {
    /// The proven leaf's index.
    #[must_use]
    pub fn leaf_index(&self) -> u64 {
        self.leaf_index
    }

    /// The tree size the proof was made for.
    #[must_use]
    pub fn tree_size(&self) -> u64 {
        self.tree_size
    }

    /// The audit path, from the leaf's sibling up to the child of the root.
    #[must_use]
    pub fn path(&self) -> &[Digest] {
        &self.path
    }

    /// The audit path, by value.
    #[must_use]
    pub fn into_path(self) -> Vec<Digest> {
        self.path
    }

    /// The encoding: version `1`, kind `1`, leaf index and tree size (u64 little-endian),
    /// hash count (u8), the path's hashes.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(KIND_INCLUSION, self.leaf_index, self.tree_size, &self.path)
    }

    /// Decodes [`to_bytes`](Self::to_bytes)'s output (syntax only: whether the path fits the
    /// sizes is for [`verify_inclusion`](super::verify_inclusion) to say).
    ///
    /// # Errors
    ///
    /// A [`ProofDecodeError`] naming the bad field or the length mismatch.
    pub fn from_bytes(bytes: &[u8]) -> Result<InclusionProof, ProofDecodeError> {
        let (leaf_index, tree_size, path) = decode(KIND_INCLUSION, bytes)?;
        Ok(InclusionProof {
            leaf_index,
            tree_size,
            path,
        })
    }
}

/// An RFC 9162 consistency proof: the hashes that show the tree of `old_size` leaves is a
/// prefix of the tree of `new_size` leaves. Ordered as RFC 9162 §2.1.4.1 `SUBPROOF` emits them
/// (deepest first).
///
/// As with [`InclusionProof`], a verifier passes the sizes from its signed checkpoints to
/// [`verify_consistency`](super::verify_consistency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    old_size: u64,
    new_size: u64,
    path: Vec<Digest>,
}

impl ConsistencyProof {
    /// The old tree size the proof was made for.
    #[must_use]
    pub fn old_size(&self) -> u64 {
        self.old_size
    }

    /// The new tree size the proof was made for.
    #[must_use]
    pub fn new_size(&self) -> u64 {
        self.new_size
    }

    /// The proof's hashes.
    #[must_use]
    pub fn path(&self) -> &[Digest] {
        &self.path
    }

    /// The proof's hashes, by value.
    #[must_use]
    pub fn into_path(self) -> Vec<Digest> {
        self.path
    }

    /// The encoding: version `1`, kind `2`, old and new size (u64 little-endian), hash count
    /// (u8), the hashes.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(KIND_CONSISTENCY, self.old_size, self.new_size, &self.path)
    }

    /// Decodes [`to_bytes`](Self::to_bytes)'s output (syntax only).
    ///
    /// # Errors
    ///
    /// A [`ProofDecodeError`] naming the bad field or the length mismatch.
    pub fn from_bytes(bytes: &[u8]) -> Result<ConsistencyProof, ProofDecodeError> {
        let (old_size, new_size, path) = decode(KIND_CONSISTENCY, bytes)?;
        Ok(ConsistencyProof {
            old_size,
            new_size,
            path,
        })
    }
}

/// `MTH(D[start..end])` for `start < end`, where `start` is a multiple of the largest power of
/// two not above `end - start` (true of every range RFC 9162's recursions visit): the range is
/// its perfect subtrees, largest first, folded right to left.
fn range_hash<S: SubtreeSource + ?Sized>(
    alg: HashAlgorithm,
    source: &S,
    start: u64,
    end: u64,
) -> Result<Digest, ProveError> {
    let len = end - start;
    let mut pieces = Vec::with_capacity(len.count_ones() as usize);
    let mut pos = start;
    for level in (0..64u32).rev() {
        let width = 1u64 << level;
        if len & width != 0 {
            pieces.push(source.subtree_hash(alg, level, pos >> level)?);
            pos += width;
        }
    }
    let mut pieces = pieces.iter().rev();
    let Some(last) = pieces.next() else {
        return Ok(empty_root(alg));
    };
    Ok(pieces.fold(*last, |right, left| node_hash(alg, left, &right)))
}

fn check_size<S: SubtreeSource + ?Sized>(size: u64, source: &S) -> Result<(), ProveError> {
    let leaf_count = source.leaf_count();
    if size > leaf_count {
        return Err(ProveError::SizeBeyondSource { size, leaf_count });
    }
    Ok(())
}

/// The root of the tree of the first `tree_size` leaves of `source` (RFC 9162 `MTH`); the
/// empty-tree root for size 0.
///
/// # Errors
///
/// [`ProveError::SizeBeyondSource`], or the source's error.
pub fn tree_root<S: SubtreeSource + ?Sized>(
    alg: HashAlgorithm,
    tree_size: u64,
    source: &S,
) -> Result<Digest, ProveError> {
    check_size(tree_size, source)?;
    range_hash(alg, source, 0, tree_size)
}

/// The inclusion proof of leaf `leaf_index` in the tree of the first `tree_size` leaves of
/// `source`: RFC 9162 §2.1.3.1 `PATH(m, D[n])`, at most 64 hashes.
///
/// # Errors
///
/// [`ProveError::IndexOutOfRange`] when `leaf_index >= tree_size`,
/// [`ProveError::SizeBeyondSource`], or the source's error.
pub fn inclusion_proof<S: SubtreeSource + ?Sized>(
    alg: HashAlgorithm,
    leaf_index: u64,
    tree_size: u64,
    source: &S,
) -> Result<InclusionProof, ProveError> {
    check_size(tree_size, source)?;
    if leaf_index >= tree_size {
        return Err(ProveError::IndexOutOfRange {
            index: leaf_index,
            size: tree_size,
        });
    }
    // PATH(m, D[start..start+n]): split at k; recurse into the half holding m and emit the
    // other half's root after the sub-path. Iterating top-down emits in reverse.
    let (mut start, mut m, mut n) = (0u64, leaf_index, tree_size);
    let mut path = Vec::with_capacity(64);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            path.push(range_hash(alg, source, start + k, start + n)?);
            n = k;
        } else {
            path.push(range_hash(alg, source, start, start + k)?);
            start += k;
            m -= k;
            n -= k;
        }
    }
    path.reverse();
    Ok(InclusionProof {
        leaf_index,
        tree_size,
        path,
    })
}

/// The consistency proof between the trees of the first `old_size` and `new_size` leaves of
/// `source`: RFC 9162 §2.1.4.1 `PROOF(m, D[n])`, at most 65 hashes. Equal sizes give the empty
/// proof.
///
/// # Errors
///
/// [`ProveError::SizesOutOfOrder`] when `old_size > new_size`; [`ProveError::EmptyOldTree`]
/// when `old_size` is 0 and `new_size` is not (RFC 9162 defines proofs for `0 < m < n`;
/// every tree extends the empty one); [`ProveError::SizeBeyondSource`]; or the source's error.
pub fn consistency_proof<S: SubtreeSource + ?Sized>(
    alg: HashAlgorithm,
    old_size: u64,
    new_size: u64,
    source: &S,
) -> Result<ConsistencyProof, ProveError> {
    if old_size > new_size {
        return Err(ProveError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    check_size(new_size, source)?;
    if old_size == 0 && new_size > 0 {
        return Err(ProveError::EmptyOldTree);
    }
    // SUBPROOF(m, D[start..start+n], b), iterated top-down and reversed like PATH.
    let (mut start, mut m, mut n, mut whole) = (0u64, old_size, new_size, true);
    let mut path = Vec::with_capacity(65);
    while m < n {
        let k = split_point(n);
        if m <= k {
            path.push(range_hash(alg, source, start + k, start + n)?);
            n = k;
        } else {
            path.push(range_hash(alg, source, start, start + k)?);
            start += k;
            m -= k;
            n -= k;
            whole = false;
        }
    }
    // m == n: SUBPROOF(m, D[m], true) is empty, SUBPROOF(m, D[m], false) is {MTH(D[m])}.
    if !whole && n > 0 {
        path.push(range_hash(alg, source, start, start + n)?);
    }
    path.reverse();
    Ok(ConsistencyProof {
        old_size,
        new_size,
        path,
    })
}
