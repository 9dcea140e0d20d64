//! Merkle trees of epochs: RFC 9162 hashing, the live root, proofs and their verification.
//!
//! Every epoch of a store has one Merkle tree over the hashes of its receipts, in log order.
//! This module is everything about that tree:
//!
//! - **Hashing** ([`leaf_hash`], [`node_hash`], [`empty_root`]): RFC 9162 §2.1 exactly, with
//!   the `0x00` leaf and `0x01` node prefixes and the RFC tree shape (a tree of *n* > 1 leaves
//!   splits at the largest power of two smaller than *n*). In [`HashAlgorithm::Sha256`] mode
//!   the hash is plain SHA-256, so roots and proofs are RFC 6962 / RFC 9162 interoperable. In
//!   [`HashAlgorithm::Blake3`] mode (the default) every construction additionally runs under its
//!   own BLAKE3 `derive_key` context ([`BLAKE3_LEAF_CONTEXT`], [`BLAKE3_NODE_CONTEXT`],
//!   [`BLAKE3_EMPTY_CONTEXT`]), so a Merkle hash can never be confused with any other BLAKE3
//!   hash the store computes.
//! - **The live root** ([`CompactRange`]): the frontier of a growing tree (one hash per set bit
//!   of the size). Appending a leaf costs one leaf hash plus, amortised, one node hash (at most
//!   64); the root costs `popcount(size) - 1` node hashes. It encodes to at most
//!   [`CompactRange::MAX_ENCODED_LEN`] bytes so checkpoints and seals can persist it.
//! - **Proofs over stored trees** ([`inclusion_proof`], [`consistency_proof`], [`tree_root`]):
//!   RFC 9162 §2.1.3.1 and §2.1.4.1 over any [`SubtreeSource`], a provider of the hashes of
//!   aligned perfect subtrees. [`LeafHashTable`] is the source the engine uses: a borrowed
//!   table of leaf hashes (a memory-mapped file in the engine) plus, optionally, every interior
//!   node at or above a *base level* `L`, stored in post-order (see [`interior_len`]).
//! - **Verification** ([`verify_inclusion`], [`verify_consistency`]): RFC 9162 §2.1.3.2 and
//!   §2.1.4.2, needing nothing but the hash crates; the API an auditor calls. The tree sizes
//!   are parameters (they come from a signed checkpoint), never read from a proof, and a proof
//!   must have exactly the number of hashes its sizes call for.
//!
//! # Cost model
//!
//! Costs are counted in hash compressions of 32-byte digests (a node hash is one BLAKE3 or two
//! SHA-256 compressions); *n* is the tree size.
//!
//! | operation | hashes | memory |
//! |---|---|---|
//! | [`CompactRange::append`] | 1 amortised, ≤ 64 worst case | ≤ 64 digests, total |
//! | [`CompactRange::root`] | `popcount(n) - 1` ≤ 63 | O(1) |
//! | [`verify_inclusion`] | path length ≤ 64 | O(1) |
//! | [`verify_consistency`] | 2 × path length ≤ 130 | O(1) |
//! | [`LeafHashTable::subtree_hash`] at level `l` | 0 if `l = 0` or `l ≥ L`, else `2^l - 1` | O(l) |
//! | proof from a table with interior base level `L` | < `2^(L+1)` + 64 (inclusion), < `2^(L+2)` + 128 (consistency) | O(log n) |
//! | proof from a table without interior | O(n) | O(log n) |
//! | [`LeafHashTable::build_interior`] | n − 1 | `interior_len(n, L)` digests (output) |
//!
//! A proof needs the hashes of O(log n) perfect subtrees. With the interior levels present,
//! a subtree at or above the base level is one table lookup, and the subtrees below it lie in
//! the one or two `2^L`-leaf blocks around the proven index(es) and the tree's right edge, so
//! the work is bounded by the block size, not by *n*: with `L = 8` (the
//! [`DEFAULT_BASE_LEVEL`]) an inclusion proof in a tree of 10 M leaves computes at most a few
//! hundred hashes and touches a few pages of the table. The interior costs
//! `2·⌊n/2^L⌋ − popcount(⌊n/2^L⌋)` digests: 0.8 % of the leaf table for `L = 8`.
//!
//! Nothing here rebuilds a tree to answer a question: `rs_merkle`'s `MerkleTree` keeps all
//! 2n node hashes in memory and its `commit` rebuilds the tree, so it is used only as an
//! independent cross-check in the tests, never for the live root or for proofs.
//!
//! No function in this module panics on any input; malformed input is a typed error.

mod compact;
mod hash;
mod proof;
mod source;
mod verify;

pub use crate::wal::HashAlgorithm;
pub use compact::{CompactRange, CompactRangeError};
pub use hash::{
    BLAKE3_EMPTY_CONTEXT, BLAKE3_LEAF_CONTEXT, BLAKE3_NODE_CONTEXT, Digest, LEAF_PREFIX,
    NODE_PREFIX, empty_root, leaf_hash, node_hash,
};
pub use proof::{
    ConsistencyProof, InclusionProof, ProofDecodeError, ProveError, consistency_proof,
    inclusion_proof, tree_root,
};
pub use source::{
    DEFAULT_BASE_LEVEL, LeafHashTable, SourceError, SubtreeSource, check_request,
    digests_from_bytes, interior_len, interior_node, interior_position,
};
pub use verify::{ProofError, verify_consistency, verify_inclusion};

/// The largest power of two strictly smaller than `n`, for `n >= 2` (the RFC 9162 split point
/// `k`); 0 for `n < 2`.
pub(crate) fn split_point(n: u64) -> u64 {
    if n < 2 { 0 } else { 1u64 << (n - 1).ilog2() }
}
