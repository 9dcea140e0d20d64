//! Proof verification (RFC 9162 §2.1.3.2 and §2.1.4.2): the auditor's API, needing only the
//! hash functions.
//!
//! Both verifiers first derive from the sizes alone how many hashes the proof must have and
//! which of them are left or right siblings (the decomposition RFC 9162's loops walk
//! implicitly, as in the transparency-dev reference implementation), reject any other length,
//! then chain the hashes. They compute the same results as the RFC's step-by-step algorithms
//! (the tests run both).

use super::{Digest, HashAlgorithm, empty_root, node_hash};

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size (every index, for the empty tree).
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
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
    /// Consistency from the empty tree to a non-empty one: RFC 9162 defines no such proof
    /// (every tree extends the empty tree); callers skip the check when the old size is 0.
    #[error("no consistency proof from the empty tree: every tree extends it")]
    EmptyOldTree,
    /// The proof has more or fewer hashes than its sizes call for.
    #[error("proof has {actual} hashes; these sizes call for exactly {expected}")]
    WrongPathLength {
        /// The number of hashes the sizes call for.
        expected: usize,
        /// The number of hashes given.
        actual: usize,
    },
    /// The inclusion proof leads to a different root than the expected one.
    #[error("the inclusion proof does not lead to the expected root")]
    RootMismatch,
    /// The consistency proof does not reproduce the old root (or, for the empty tree, the old
    /// root is not the empty-tree root).
    #[error("the consistency proof does not reproduce the old root")]
    OldRootMismatch,
    /// The consistency proof does not reproduce the new root (or, for equal sizes, the roots
    /// differ).
    #[error("the consistency proof does not reproduce the new root")]
    NewRootMismatch,
}

/// `(inner, border)`: how many audit-path hashes of leaf `index` in a tree of `size` leaves
/// (`index < size`) lie below the level where the paths to `index` and to `size - 1` meet
/// (inner: siblings on either side, at most one not perfect), and how many above (border: all
/// left siblings, one per set bit of `index >> inner`).
fn decompose(index: u64, size: u64) -> (usize, usize) {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner as usize, border as usize)
}

/// Chains `seed` with `path`, the sibling at level `i` on the right when bit `i` of `index` is 0.
fn chain_inner(alg: HashAlgorithm, seed: Digest, path: &[Digest], index: u64) -> Digest {
    path.iter().enumerate().fold(seed, |acc, (i, sibling)| {
        if (index >> i) & 1 == 0 {
            node_hash(alg, &acc, sibling)
        } else {
            node_hash(alg, sibling, &acc)
        }
    })
}

/// Chains `seed` with only the left siblings of `path` (bit `i` of `index` set).
fn chain_inner_right(alg: HashAlgorithm, seed: Digest, path: &[Digest], index: u64) -> Digest {
    path.iter().enumerate().fold(seed, |acc, (i, sibling)| {
        if (index >> i) & 1 == 1 {
            node_hash(alg, sibling, &acc)
        } else {
            acc
        }
    })
}

/// Chains `seed` with every hash of `path` as a left sibling.
fn chain_border_right(alg: HashAlgorithm, seed: Digest, path: &[Digest]) -> Digest {
    path.iter()
        .fold(seed, |acc, sibling| node_hash(alg, sibling, &acc))
}

/// Verifies that `leaf_hash` is leaf `leaf_index` of the tree of `tree_size` leaves whose root
/// is `root` (RFC 9162 §2.1.3.2). `tree_size` and `root` must come from a trusted (signed)
/// checkpoint; `path` is the proof's audit path, leaf upwards.
///
/// # Errors
///
/// [`ProofError::IndexOutOfRange`] when `leaf_index >= tree_size`;
/// [`ProofError::WrongPathLength`] when `path` has extra or missing hashes;
/// [`ProofError::RootMismatch`] when the path leads elsewhere.
pub fn verify_inclusion(
    alg: HashAlgorithm,
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Digest,
    path: &[Digest],
    root: &Digest,
) -> Result<(), ProofError> {
    if leaf_index >= tree_size {
        return Err(ProofError::IndexOutOfRange {
            index: leaf_index,
            size: tree_size,
        });
    }
    let (inner, border) = decompose(leaf_index, tree_size);
    if path.len() != inner + border {
        return Err(ProofError::WrongPathLength {
            expected: inner + border,
            actual: path.len(),
        });
    }
    let (inner_path, border_path) = path.split_at(inner);
    let computed = chain_inner(alg, *leaf_hash, inner_path, leaf_index);
    let computed = chain_border_right(alg, computed, border_path);
    if computed != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root` (RFC 9162 §2.1.4.2). Sizes and roots must come from
/// trusted (signed) checkpoints; `path` is the proof's hashes in RFC order.
///
/// Equal sizes need the empty proof and equal roots (and, for size 0, the empty-tree root).
///
/// # Errors
///
/// [`ProofError::SizesOutOfOrder`] when `old_size > new_size`; [`ProofError::EmptyOldTree`]
/// when `old_size` is 0 and `new_size` is not; [`ProofError::WrongPathLength`] when `path` has
/// extra or missing hashes; [`ProofError::OldRootMismatch`] or
/// [`ProofError::NewRootMismatch`] when the hashes do not reproduce a root.
pub fn verify_consistency(
    alg: HashAlgorithm,
    old_size: u64,
    new_size: u64,
    old_root: &Digest,
    new_root: &Digest,
    path: &[Digest],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size {
        if !path.is_empty() {
            return Err(ProofError::WrongPathLength {
                expected: 0,
                actual: path.len(),
            });
        }
        if old_size == 0 && *old_root != empty_root(alg) {
            return Err(ProofError::OldRootMismatch);
        }
        if old_root != new_root {
            return Err(ProofError::NewRootMismatch);
        }
        return Ok(());
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    // 0 < old_size < new_size. The old tree's rightmost perfect subtree (level = trailing zeros
    // of old_size) is a node of both trees; work at that level, where it is node `index` of a
    // tree of `size` nodes.
    let level = old_size.trailing_zeros();
    let index = (old_size - 1) >> level;
    let size = ((new_size - 1) >> level) + 1;
    let (inner, border) = decompose(index, size);
    // When old_size is a power of two that subtree is the whole old tree, whose root the
    // verifier has; RFC 9162 omits it from the proof.
    let (seed, rest) = match (index, path.split_first()) {
        (0, _) => (*old_root, path),
        (_, Some((first, rest))) => (*first, rest),
        (_, None) => {
            return Err(ProofError::WrongPathLength {
                expected: 1 + inner + border,
                actual: 0,
            });
        }
    };
    if rest.len() != inner + border {
        let expected = path.len() - rest.len() + inner + border;
        return Err(ProofError::WrongPathLength {
            expected,
            actual: path.len(),
        });
    }
    let (inner_path, border_path) = rest.split_at(inner);
    let old = chain_inner_right(alg, seed, inner_path, index);
    let old = chain_border_right(alg, old, border_path);
    if old != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    let new = chain_inner(alg, seed, inner_path, index);
    let new = chain_border_right(alg, new, border_path);
    if new != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}
