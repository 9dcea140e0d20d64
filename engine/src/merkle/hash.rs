//! The three hash constructions of the tree: leaf, node and empty tree.

use std::sync::LazyLock;

use sha2::{Digest as _, Sha256};

use super::HashAlgorithm;

/// A Merkle hash: 32 bytes, whichever the algorithm.
pub type Digest = [u8; 32];

/// The byte prepended to a leaf's data before hashing (RFC 9162 §2.1.1).
pub const LEAF_PREFIX: u8 = 0x00;

/// The byte prepended to the concatenation of two child hashes (RFC 9162 §2.1.1).
pub const NODE_PREFIX: u8 = 0x01;

/// The BLAKE3 `derive_key` context of leaf hashes: `leaf = derive_key(this, 0x00 || data)`.
pub const BLAKE3_LEAF_CONTEXT: &str = "trailmix-db 2026-11-22 merkle leaf v1";

/// The BLAKE3 `derive_key` context of node hashes: `node = derive_key(this, 0x01 || l || r)`.
pub const BLAKE3_NODE_CONTEXT: &str = "trailmix-db 2026-11-22 merkle node v1";

/// The BLAKE3 `derive_key` context of the empty tree's root: `derive_key(this, "")`.
pub const BLAKE3_EMPTY_CONTEXT: &str = "trailmix-db 2026-11-22 merkle empty v1";

// A derive_key hasher first hashes its context string into a key: done once per context.
// Each hash then builds its hasher in place from that key and feeds it one buffer: cloning a
// keyed `blake3::Hasher` (about 1.9 KB) and moving it per hash cost several hundred
// instructions of `memcpy` per leaf or node, as much as a compression.
static BLAKE3_LEAF_KEY: LazyLock<blake3::hazmat::ContextKey> =
    LazyLock::new(|| blake3::hazmat::hash_derive_key_context(BLAKE3_LEAF_CONTEXT));
static BLAKE3_NODE_KEY: LazyLock<blake3::hazmat::ContextKey> =
    LazyLock::new(|| blake3::hazmat::hash_derive_key_context(BLAKE3_NODE_CONTEXT));

/// Leaf data up to this size (a 32-byte chain hash) is hashed from one stack buffer.
const LEAF_INPUT_INLINE_BYTES: usize = 64;

/// The hash of a leaf holding `data`: `H(0x00 || data)` (RFC 9162 §2.1.1), under
/// [`BLAKE3_LEAF_CONTEXT`] in BLAKE3 mode.
#[must_use]
pub fn leaf_hash(alg: HashAlgorithm, data: &[u8]) -> Digest {
    match alg {
        HashAlgorithm::Blake3 => {
            use blake3::hazmat::HasherExt as _;
            let mut h = blake3::Hasher::new_from_context_key(&BLAKE3_LEAF_KEY);
            let mut input = [0u8; LEAF_INPUT_INLINE_BYTES];
            if let Some(buf) = input.get_mut(..=data.len()) {
                buf[0] = LEAF_PREFIX;
                buf[1..].copy_from_slice(data);
                h.update(buf);
            } else {
                h.update(&[LEAF_PREFIX]);
                h.update(data);
            }
            *h.finalize().as_bytes()
        }
        HashAlgorithm::Sha256 => Sha256::new()
            .chain_update([LEAF_PREFIX])
            .chain_update(data)
            .finalize()
            .into(),
    }
}

/// The hash of an interior node: `H(0x01 || left || right)` (RFC 9162 §2.1.1), under
/// [`BLAKE3_NODE_CONTEXT`] in BLAKE3 mode.
#[must_use]
pub fn node_hash(alg: HashAlgorithm, left: &Digest, right: &Digest) -> Digest {
    match alg {
        HashAlgorithm::Blake3 => {
            use blake3::hazmat::HasherExt as _;
            let mut input = [0u8; 65];
            input[0] = NODE_PREFIX;
            input[1..33].copy_from_slice(left);
            input[33..].copy_from_slice(right);
            let mut h = blake3::Hasher::new_from_context_key(&BLAKE3_NODE_KEY);
            h.update(&input);
            *h.finalize().as_bytes()
        }
        HashAlgorithm::Sha256 => Sha256::new()
            .chain_update([NODE_PREFIX])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .into(),
    }
}

/// The root of the empty tree: `H("")` (RFC 9162 §2.1.1): SHA-256 of the empty string, or
/// BLAKE3 `derive_key` under [`BLAKE3_EMPTY_CONTEXT`] of the empty string.
#[must_use]
pub fn empty_root(alg: HashAlgorithm) -> Digest {
    match alg {
        HashAlgorithm::Blake3 => *blake3::Hasher::new_derive_key(BLAKE3_EMPTY_CONTEXT)
            .finalize()
            .as_bytes(),
        HashAlgorithm::Sha256 => Sha256::digest([]).into(),
    }
}
