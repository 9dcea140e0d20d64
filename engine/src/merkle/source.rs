//! Where proofs get their subtree hashes: the [`SubtreeSource`] trait and the leaf-hash table.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{CompactRange, Digest, HashAlgorithm};

/// The interior base level the engine uses unless configured otherwise: one stored node per
/// 256 leaves and above, 0.8 % of the leaf table, and proofs that compute a few hundred hashes.
pub const DEFAULT_BASE_LEVEL: u32 = 8;

/// A provider of the hashes of aligned perfect subtrees of one Merkle tree.
///
/// The subtree at `level` and `index` covers leaves `index·2^level .. (index+1)·2^level`; level
/// 0 is the leaf hashes themselves. Every RFC 9162 proof is made of such subtrees (and of the
/// roots of right-edge ranges, which [`inclusion_proof`](super::inclusion_proof) and friends
/// fold from them), so a source needs no notion of tree size: a subtree's hash is the same in
/// every tree that contains it. [`leaf_count`](Self::leaf_count) bounds which subtrees exist.
///
/// Implementations decide the cost: [`LeafHashTable`] computes low subtrees from leaf hashes
/// and looks higher ones up in a stored interior table.
pub trait SubtreeSource {
    /// How many leaves the source holds. Proofs may be asked for any tree size up to this.
    fn leaf_count(&self) -> u64;

    /// The hash of the perfect subtree at `level` (0..=63) and `index`.
    ///
    /// # Errors
    ///
    /// [`SourceError::OutOfRange`] when the subtree reaches beyond
    /// [`leaf_count`](Self::leaf_count); [`SourceError::AlgorithmMismatch`] when the source holds
    /// hashes of another algorithm; any other [`SourceError`] the source may meet (I/O, say).
    fn subtree_hash(
        &self,
        alg: HashAlgorithm,
        level: u32,
        index: u64,
    ) -> Result<Digest, SourceError>;

    /// The hash of leaf `index` (the subtree at level 0).
    ///
    /// # Errors
    ///
    /// As [`subtree_hash`](Self::subtree_hash).
    fn leaf_hash(&self, alg: HashAlgorithm, index: u64) -> Result<Digest, SourceError> {
        self.subtree_hash(alg, 0, index)
    }
}

impl<T: SubtreeSource + ?Sized> SubtreeSource for &T {
    fn leaf_count(&self) -> u64 {
        (**self).leaf_count()
    }

    fn subtree_hash(
        &self,
        alg: HashAlgorithm,
        level: u32,
        index: u64,
    ) -> Result<Digest, SourceError> {
        (**self).subtree_hash(alg, level, index)
    }
}

/// Why a [`SubtreeSource`] could not answer, or a leaf-hash table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The subtree reaches beyond the leaves the source holds.
    #[error("subtree at level {level}, index {index} lies beyond the source's {leaf_count} leaves")]
    OutOfRange {
        /// The subtree's level.
        level: u32,
        /// The subtree's index within its level.
        index: u64,
        /// The source's leaf count.
        leaf_count: u64,
    },
    /// The source holds hashes of a different algorithm than the one asked for.
    #[error("the source holds {held} hashes, {requested} requested")]
    AlgorithmMismatch {
        /// The algorithm of the source's hashes.
        held: HashAlgorithm,
        /// The algorithm the caller asked for.
        requested: HashAlgorithm,
    },
    /// An interior base level outside `1..=63`.
    #[error("interior base level {0} is outside 1..=63")]
    BadBaseLevel(u32),
    /// The interior table's length does not match the leaf count and base level.
    #[error(
        "interior table holds {actual} hashes; {leaf_count} leaves at base level {base_level} \
         need {expected}"
    )]
    InteriorLength {
        /// Leaves in the table.
        leaf_count: u64,
        /// The base level.
        base_level: u32,
        /// [`interior_len`]`(leaf_count, base_level)`.
        expected: u64,
        /// Hashes given.
        actual: u64,
    },
    /// A stored interior node differs from the one recomputed from the leaves.
    #[error("interior node at level {level}, index {index} does not match the leaf hashes")]
    InteriorMismatch {
        /// The node's level.
        level: u32,
        /// The node's index within its level.
        index: u64,
    },
    /// A byte table whose length is not a multiple of 32.
    #[error("a table of {len} bytes is not a whole number of 32-byte hashes")]
    UnalignedBytes {
        /// The byte length.
        len: usize,
    },
    /// Any other reason a source could not produce a hash (for sources outside this crate).
    #[error("subtree at level {level}, index {index} is unavailable: {reason}")]
    Unavailable {
        /// The subtree's level.
        level: u32,
        /// The subtree's index within its level.
        index: u64,
        /// What went wrong.
        reason: String,
    },
}

/// Views a byte table (a memory-mapped leaf-hash or interior file, say) as 32-byte hashes,
/// without copying.
///
/// # Errors
///
/// [`SourceError::UnalignedBytes`] when the length is not a multiple of 32.
pub fn digests_from_bytes(bytes: &[u8]) -> Result<&[Digest], SourceError> {
    match bytes.as_chunks::<32>() {
        (digests, []) => Ok(digests),
        _ => Err(SourceError::UnalignedBytes { len: bytes.len() }),
    }
}

/// `Σ_{l ≥ base} ⌊x / 2^l⌋`: the number of perfect subtrees of level `>= base` within the
/// first `x` leaves. With `y = x >> base` this is `2y − popcount(y)`.
fn nodes_at_or_above(x: u64, base_level: u32) -> u64 {
    let y = x >> base_level;
    // y < 2^63 because base_level >= 1, so 2y cannot overflow.
    2 * y - u64::from(y.count_ones())
}

/// The number of hashes in the interior table of a tree of `leaf_count` leaves with base level
/// `base_level`: every perfect subtree of level `>= base_level`,
/// `2·⌊n/2^L⌋ − popcount(⌊n/2^L⌋)`. `None` when `base_level` is outside `1..=63`.
#[must_use]
pub fn interior_len(leaf_count: u64, base_level: u32) -> Option<u64> {
    if !(1..=63).contains(&base_level) {
        return None;
    }
    Some(nodes_at_or_above(leaf_count, base_level))
}

/// The position in the interior table (base level `base_level`) of the subtree at `level` and
/// `index`. The table is in post-order, the order in which appending leaves completes the
/// subtrees (lower level first when one leaf completes several): with `c = (index+1)·2^level`,
/// the position is `interior_len(c − 1, base_level) + (level − base_level)`. It does not
/// depend on the tree size, so the table of a tree is a prefix of the table of any larger tree.
///
/// `None` when `base_level` is outside `1..=63`, `level` is below `base_level` or above 63, or
/// the subtree lies beyond `u64` leaves.
#[must_use]
pub fn interior_position(base_level: u32, level: u32, index: u64) -> Option<u64> {
    if !(1..=63).contains(&base_level) || level < base_level || level > 63 {
        return None;
    }
    let end = index.checked_add(1)?.checked_mul(1u64 << level)?;
    nodes_at_or_above(end - 1, base_level).checked_add(u64::from(level - base_level))
}

/// The errors every [`SubtreeSource`] gives before looking: [`SourceError::AlgorithmMismatch`]
/// when `requested` is not the `held` algorithm, [`SourceError::OutOfRange`] when the subtree at
/// `level` and `index` reaches beyond `leaf_count` leaves.
///
/// # Errors
///
/// As above.
pub fn check_request(
    held: HashAlgorithm,
    requested: HashAlgorithm,
    level: u32,
    index: u64,
    leaf_count: u64,
) -> Result<(), SourceError> {
    if requested != held {
        return Err(SourceError::AlgorithmMismatch { held, requested });
    }
    // `index < leaf_count >> level` is `(index + 1) << level <= leaf_count` without overflow.
    if level > 63 || index >= leaf_count >> level {
        return Err(SourceError::OutOfRange {
            level,
            index,
            leaf_count,
        });
    }
    Ok(())
}

/// The subtree at `level` (at least `base_level`) and `index` in an interior table (see
/// [`interior_position`]); `None` when the table does not reach it.
#[must_use]
pub fn interior_node(nodes: &[Digest], base_level: u32, level: u32, index: u64) -> Option<Digest> {
    interior_position(base_level, level, index)
        .and_then(|pos| usize::try_from(pos).ok())
        .and_then(|pos| nodes.get(pos))
        .copied()
}

/// The [`SubtreeSource`] of a stored tree: a borrowed table of leaf hashes and, optionally, the
/// interior table of every perfect subtree at or above a base level `L`
/// (see [`interior_position`] for its order).
///
/// A subtree below `L` costs `2^level − 1` node hashes over the leaves; one at or above `L` is
/// a lookup. Without the interior table everything is computed from the leaves, which costs
/// O(n) per proof: fine for small trees and for tests, not for sealed epochs.
///
/// Nothing is copied: both tables are borrowed (memory-mapped files in the engine; see
/// [`digests_from_bytes`]). The table counts the node hashes it computes
/// ([`hashes_computed`](Self::hashes_computed)) so benchmarks and tests can check the cost
/// model.
pub struct LeafHashTable<'a> {
    alg: HashAlgorithm,
    leaves: &'a [Digest],
    interior: Option<(u32, &'a [Digest])>,
    hashes: AtomicU64,
}

impl fmt::Debug for LeafHashTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafHashTable")
            .field("alg", &self.alg)
            .field("leaves", &self.leaves.len())
            .field("base_level", &self.interior.map(|(base, _)| base))
            .field("interior", &self.interior.map(|(_, nodes)| nodes.len()))
            .field("hashes_computed", &self.hashes_computed())
            .finish()
    }
}

impl<'a> LeafHashTable<'a> {
    /// A table of leaf hashes alone: every subtree is computed from the leaves.
    #[must_use]
    pub fn new(alg: HashAlgorithm, leaves: &'a [Digest]) -> LeafHashTable<'a> {
        LeafHashTable {
            alg,
            leaves,
            interior: None,
            hashes: AtomicU64::new(0),
        }
    }

    /// A table of leaf hashes with the interior table for `base_level`, as
    /// [`build_interior`](Self::build_interior) or [`CompactRange::append_visit`] produce it.
    /// The interior is trusted here (it is not recomputed); [`check_interior`](Self::check_interior)
    /// recomputes it.
    ///
    /// # Errors
    ///
    /// [`SourceError::BadBaseLevel`] for a base level outside `1..=63`;
    /// [`SourceError::InteriorLength`] when `interior` does not hold exactly
    /// [`interior_len`]`(leaves.len(), base_level)` hashes (slice a longer table of the same
    /// tree to that length: it is a prefix).
    pub fn with_interior(
        alg: HashAlgorithm,
        leaves: &'a [Digest],
        base_level: u32,
        interior: &'a [Digest],
    ) -> Result<LeafHashTable<'a>, SourceError> {
        let leaf_count = leaves.len() as u64;
        let expected =
            interior_len(leaf_count, base_level).ok_or(SourceError::BadBaseLevel(base_level))?;
        if interior.len() as u64 != expected {
            return Err(SourceError::InteriorLength {
                leaf_count,
                base_level,
                expected,
                actual: interior.len() as u64,
            });
        }
        Ok(LeafHashTable {
            alg,
            leaves,
            interior: Some((base_level, interior)),
            hashes: AtomicU64::new(0),
        })
    }

    /// Computes the interior table of `leaves` for `base_level` (n − 1 node hashes, one pass).
    /// The engine normally writes it incrementally with [`CompactRange::append_visit`]; this is
    /// the same table in one call.
    ///
    /// # Errors
    ///
    /// [`SourceError::BadBaseLevel`] for a base level outside `1..=63`.
    pub fn build_interior(
        alg: HashAlgorithm,
        leaves: &[Digest],
        base_level: u32,
    ) -> Result<Vec<Digest>, SourceError> {
        let len = interior_len(leaves.len() as u64, base_level)
            .ok_or(SourceError::BadBaseLevel(base_level))?;
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        let mut range = CompactRange::new(alg);
        for leaf in leaves {
            // A slice holds fewer than u64::MAX leaves, so the range never fills up.
            let _ = range.append_visit(leaf, |level, _, hash| {
                if level >= base_level {
                    out.push(*hash);
                }
            });
        }
        Ok(out)
    }

    /// Recomputes the interior table from the leaves (n − 1 node hashes) and compares it with
    /// the stored one. `Ok` when there is no interior table.
    ///
    /// # Errors
    ///
    /// [`SourceError::InteriorMismatch`] naming the first stored node that differs.
    pub fn check_interior(&self) -> Result<(), SourceError> {
        let Some((base_level, nodes)) = self.interior else {
            return Ok(());
        };
        let mut range = CompactRange::new(self.alg);
        let mut stored = nodes.iter();
        let mut bad = None;
        for leaf in self.leaves {
            let _ = range.append_visit(leaf, |level, index, hash| {
                if level >= base_level && bad.is_none() && stored.next() != Some(hash) {
                    bad = Some(SourceError::InteriorMismatch { level, index });
                }
            });
            if let Some(err) = bad {
                return Err(err);
            }
        }
        Ok(())
    }

    /// The algorithm of the table's hashes.
    #[must_use]
    pub fn algorithm(&self) -> HashAlgorithm {
        self.alg
    }

    /// The interior base level, if the table has an interior.
    #[must_use]
    pub fn base_level(&self) -> Option<u32> {
        self.interior.map(|(base, _)| base)
    }

    /// The leaf hashes.
    #[must_use]
    pub fn leaves(&self) -> &'a [Digest] {
        self.leaves
    }

    /// The node hashes this table has computed so far (for cost accounting; lookups are free).
    #[must_use]
    pub fn hashes_computed(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }
}

impl SubtreeSource for LeafHashTable<'_> {
    fn leaf_count(&self) -> u64 {
        self.leaves.len() as u64
    }

    fn subtree_hash(
        &self,
        alg: HashAlgorithm,
        level: u32,
        index: u64,
    ) -> Result<Digest, SourceError> {
        let leaf_count = self.leaf_count();
        check_request(self.alg, alg, level, index, leaf_count)?;
        let out_of_range = SourceError::OutOfRange {
            level,
            index,
            leaf_count,
        };
        if let Some((base_level, nodes)) = self.interior
            && level >= base_level
        {
            return interior_node(nodes, base_level, level, index).ok_or(out_of_range);
        }
        let first = usize::try_from(index << level).map_err(|_| out_of_range.clone())?;
        let count = 1usize
            .checked_shl(level)
            .ok_or_else(|| out_of_range.clone())?;
        let block = first
            .checked_add(count)
            .and_then(|end| self.leaves.get(first..end))
            .ok_or(out_of_range)?;
        if level > 0 {
            self.hashes.fetch_add((count - 1) as u64, Ordering::Relaxed);
        }
        Ok(perfect_root(alg, block))
    }
}

/// The root of the tree over `leaves` (a power-of-two count when called from a table).
fn perfect_root(alg: HashAlgorithm, leaves: &[Digest]) -> Digest {
    if let [leaf] = leaves {
        return *leaf;
    }
    let mut range = CompactRange::new(alg);
    for leaf in leaves {
        // Fewer than u64::MAX leaves: the range never fills up.
        let _ = range.append(leaf);
    }
    range.root()
}
