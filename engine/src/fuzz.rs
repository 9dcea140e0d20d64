//! Bodies of the engine's fuzz targets, shared by cargo-fuzz (`fuzz/`) and the seeded loops
//! that run under `cargo test` (`engine/tests/fuzz_smoke.rs`). Each must return normally on
//! any input: a panic is a bug, in the code under test or in the invariant it checks.
//!
//! - [`proof_verify`]: Merkle proof verification (inclusion, consistency, and the auditor's
//!   bundles) against trees built with the engine's own code and proofs mutated by the input.
//! - [`db_ops`]: a sequence of [`Db`] operations, crashes and reopens, against a model.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::db::{Db, StoredReceipt};
use crate::entry::{self, ChainFields, EntryKind, EntryRef};
use crate::error::Error;
use crate::merkle::{self, CompactRange, Digest, HashAlgorithm, LeafHashTable};
use crate::note::{Checkpoint, NoteSigner};
use crate::options::{DbOptions, Durability};
use crate::position::ReceiptPosition;
use crate::proof::{
    ConsistencyBundle, InclusionBundle, verify_consistency_notes, verify_inclusion_bundle,
};
use crate::query::{Cursor, Direction, Filter, Order, Query};
use crate::receipt::{ActorType, Kind, Receipt, Timestamp};
use crate::search::Freshness;
use crate::shred::ShredError;
use crate::ticket::Ticket;
use crate::verify::{VerifyOptions, verify_log};
use crate::wal::Seq;
use crate::wal::sim::SimDisk;

/// Fuzz input read front to back; past its end every read gives zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }

    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// A coin toss (the low bit of a byte).
    fn flag(&mut self) -> bool {
        self.u8() & 1 == 0
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A number below `n` (0 when `n` is 0), from two bytes.
    fn below(&mut self, n: u64) -> u64 {
        u64::from(u16::from_le_bytes(self.array())) % n.max(1)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `Ok`'s value, or a panic naming `what` (the fuzz bodies' `expect`).
fn must<T, E: std::fmt::Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

fn index(i: u64) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

// ---------------------------------------------------------------------------------------------
// proof_verify

/// Most leaves of a fuzzed tree: proofs over a table without interior cost O(n) hashes.
const TREE_LEAVES_MAX: u64 = 300;

/// A tree built by the engine's code: leaf hashes, and optionally the interior table.
struct Tree {
    alg: HashAlgorithm,
    leaves: Vec<Digest>,
    interior: Option<(u32, Vec<Digest>)>,
}

/// 1 to [`TREE_LEAVES_MAX`] leaf hashes; with a non-zero `distinct` byte, only that many
/// different ones (repeated leaves must not confuse a verifier either).
fn fuzz_leaves(alg: HashAlgorithm, input: &mut Input<'_>) -> Vec<Digest> {
    let n = 1 + input.below(TREE_LEAVES_MAX);
    let distinct = u64::from(input.u8());
    let salt = input.u8();
    (0..n)
        .map(|i| {
            let k = if distinct == 0 { i } else { i % distinct };
            let mut data = vec![salt];
            data.extend_from_slice(&k.to_le_bytes());
            merkle::leaf_hash(alg, &data)
        })
        .collect()
}

impl Tree {
    fn new(alg: HashAlgorithm, leaves: Vec<Digest>, base_level: u32) -> Tree {
        let interior = (base_level > 0).then(|| {
            let nodes = must(
                LeafHashTable::build_interior(alg, &leaves, base_level),
                "build the interior",
            );
            (base_level, nodes)
        });
        let tree = Tree {
            alg,
            leaves,
            interior,
        };
        if let Some(table) = tree.interior_table() {
            must(table.check_interior(), "a built interior checks");
        }
        tree
    }

    fn n(&self) -> u64 {
        self.leaves.len() as u64
    }

    fn plain_table(&self) -> LeafHashTable<'_> {
        LeafHashTable::new(self.alg, &self.leaves)
    }

    fn interior_table(&self) -> Option<LeafHashTable<'_>> {
        let (base, nodes) = self.interior.as_ref()?;
        Some(must(
            LeafHashTable::with_interior(self.alg, &self.leaves, *base, nodes),
            "table with interior",
        ))
    }

    /// `f` over the plain table, checked equal to `f` over the interior table.
    fn both<T: PartialEq + std::fmt::Debug>(&self, f: impl Fn(&LeafHashTable<'_>) -> T) -> T {
        let plain = f(&self.plain_table());
        if let Some(table) = self.interior_table() {
            assert_eq!(f(&table), plain, "interior and plain tables disagree");
        }
        plain
    }

    /// The root of the first `size` leaves; `None` beyond the tree.
    fn root(&self, size: u64) -> Option<Digest> {
        self.both(|t| merkle::tree_root(self.alg, size, t).ok())
    }

    fn inclusion(&self, leaf: u64, size: u64) -> Option<Vec<Digest>> {
        self.both(|t| {
            merkle::inclusion_proof(self.alg, leaf, size, t)
                .ok()
                .map(merkle::InclusionProof::into_path)
        })
    }

    fn consistency(&self, old: u64, new: u64) -> Option<Vec<Digest>> {
        self.both(|t| {
            merkle::consistency_proof(self.alg, old, new, t)
                .ok()
                .map(merkle::ConsistencyProof::into_path)
        })
    }

    /// Roots from the compact range (grown leaf by leaf, and read from the table) agree with
    /// the proof code's root.
    fn check_compact_range(&self, size: u64) {
        let mut range = CompactRange::new(self.alg);
        for leaf in self.leaves.iter().take(index(size)) {
            must(range.append(leaf), "append to a compact range");
        }
        let root = self.root(size);
        assert_eq!(Some(range.root()), root, "compact range root");
        let from_table = self.both(|t| {
            CompactRange::from_source(self.alg, size, t)
                .ok()
                .map(|r| r.root())
        });
        assert_eq!(from_table, root, "compact range from the table");
        let bytes = range.to_bytes();
        assert_eq!(
            CompactRange::from_bytes(&bytes).as_ref(),
            Ok(&range),
            "compact range encoding"
        );
    }

    /// A digest the mutations may put somewhere: a leaf, a root, a node, or input bytes.
    fn pick_digest(&self, input: &mut Input<'_>) -> Digest {
        match input.u8() % 5 {
            0 => self.leaves[index(input.below(self.n()))],
            1 => self.root(1 + input.below(self.n())).unwrap_or_default(),
            2 => merkle::empty_root(self.alg),
            3 => {
                let a = self.leaves[index(input.below(self.n()))];
                let b = self.leaves[index(input.below(self.n()))];
                merkle::node_hash(self.alg, &a, &b)
            }
            _ => input.array(),
        }
    }
}

fn flip_bit(digest: &mut Digest, input: &mut Input<'_>) {
    let bit = input.u8();
    digest[usize::from(bit / 8)] ^= 1 << (bit % 8);
}

/// One edit of a proof's hashes: flip a bit, drop, insert, swap, duplicate or truncate.
fn mutate_path(tree: &Tree, path: &mut Vec<Digest>, input: &mut Input<'_>) {
    let len = path.len() as u64;
    let at = index(input.below(len + 1));
    match input.u8() % 6 {
        0 if at < path.len() => flip_bit(&mut path[at], input),
        1 if at < path.len() => {
            path.remove(at);
        }
        2 if at < path.len() => {
            let other = index(input.below(len));
            path.swap(at, other);
        }
        3 if at < path.len() => path.insert(at, path[at]),
        4 => path.truncate(at),
        _ => path.insert(at, tree.pick_digest(input)),
    }
}

/// A changed index or size: a bit flipped, a step, any number below the tree's size, or any
/// 64-bit number.
fn mutate_number(value: u64, tree: &Tree, input: &mut Input<'_>) -> u64 {
    match input.u8() % 5 {
        0 => value ^ (1 << (input.u8() % 64)),
        1 => value.wrapping_add(1),
        2 => value.wrapping_sub(1),
        3 => input.below(tree.n() + 2),
        _ => input.u64(),
    }
}

fn mutate_digest(digest: &mut Digest, tree: &Tree, input: &mut Input<'_>) {
    if input.flag() {
        flip_bit(digest, input);
    } else {
        *digest = tree.pick_digest(input);
    }
}

/// Fuzz body: Merkle proofs against trees built with the engine's code. The first byte picks
/// the hash algorithm and one of four modes:
///
/// - inclusion and consistency proofs of a fuzz-shaped tree (size, repeated leaves, interior
///   table), which must verify, then mutated by the input (hashes, index, sizes, leaf, roots);
/// - raw verification of input-chosen sizes and hashes, and proof and compact-range decoding;
/// - the auditor's bundles ([`verify_inclusion_bundle`], [`verify_consistency_notes`]) built
///   around a real entry and signed checkpoints, then mutated field by field.
///
/// A mutated proof that still verifies against the tree's root for the size it claims (what a
/// signed checkpoint vouches for) must be the real proof: the tree's own path for that index
/// and size and the right leaf, or for consistency, the tree's own proof from its old root.
/// (Against a root of another size, another shape of path can legitimately chain up: sizes
/// and roots are trusted together.) A bundle that verifies must name the real entry, position
/// and header and a checkpoint that was signed. Proofs from tables with and without interior,
/// and roots from the compact range, must agree.
///
/// # Panics
/// Only when one of those invariants breaks (a bug).
pub fn proof_verify(data: &[u8]) {
    let mut input = Input(data);
    let head = input.u8();
    let alg = if head & 1 == 0 {
        HashAlgorithm::Blake3
    } else {
        HashAlgorithm::Sha256
    };
    match (head >> 1) % 4 {
        0 => fuzz_inclusion(alg, &mut input),
        1 => fuzz_consistency(alg, &mut input),
        2 => fuzz_raw(alg, &mut input),
        _ => fuzz_bundles(alg, &mut input),
    }
}

fn fuzz_tree(alg: HashAlgorithm, input: &mut Input<'_>) -> Tree {
    let leaves = fuzz_leaves(alg, input);
    Tree::new(alg, leaves, u32::from(input.u8() % 6))
}

fn fuzz_inclusion(alg: HashAlgorithm, input: &mut Input<'_>) {
    let tree = fuzz_tree(alg, input);
    let mut size = 1 + input.below(tree.n());
    let mut leaf_index = input.below(size);
    tree.check_compact_range(size);
    let mut root = tree.root(size).unwrap_or_default();
    let mut path = tree.inclusion(leaf_index, size).unwrap_or_default();
    let mut leaf = tree.leaves[index(leaf_index)];
    let proof = must(
        merkle::inclusion_proof(alg, leaf_index, size, &tree.plain_table()),
        "prove",
    );
    assert_eq!(
        merkle::InclusionProof::from_bytes(&proof.to_bytes()).as_ref(),
        Ok(&proof),
        "inclusion proof encoding"
    );
    must(
        merkle::verify_inclusion(alg, leaf_index, size, &leaf, &path, &root),
        "a real inclusion proof verifies",
    );
    for _ in 0..=input.u8() % 8 {
        if input.is_empty() {
            break;
        }
        match input.u8() % 7 {
            0 | 1 => mutate_path(&tree, &mut path, input),
            2 => leaf_index = mutate_number(leaf_index, &tree, input),
            3 => size = mutate_number(size, &tree, input),
            4 => mutate_digest(&mut leaf, &tree, input),
            5 => mutate_digest(&mut root, &tree, input),
            _ => {
                let other_size = 1 + input.below(tree.n());
                path = tree
                    .inclusion(input.below(other_size), other_size)
                    .unwrap_or_default();
            }
        }
    }
    // The root binds the proof only together with its size (both come from one signed
    // checkpoint): a root of another size can make another shape of path chain up to it.
    if merkle::verify_inclusion(alg, leaf_index, size, &leaf, &path, &root).is_ok()
        && tree.root(size) == Some(root)
    {
        assert_eq!(
            tree.leaves.get(index(leaf_index)),
            Some(&leaf),
            "wrong leaf"
        );
        assert_eq!(
            tree.inclusion(leaf_index, size).as_ref(),
            Some(&path),
            "a path other than the real one verified"
        );
    }
}

fn fuzz_consistency(alg: HashAlgorithm, input: &mut Input<'_>) {
    let tree = fuzz_tree(alg, input);
    let mut new = 1 + input.below(tree.n());
    let mut old = input.below(new + 1);
    tree.check_compact_range(old);
    let mut old_root = tree.root(old).unwrap_or_default();
    let mut new_root = tree.root(new).unwrap_or_default();
    let mut path = Vec::new();
    if old > 0 {
        let proof = must(
            merkle::consistency_proof(alg, old, new, &tree.plain_table()),
            "prove consistency",
        );
        assert_eq!(
            merkle::ConsistencyProof::from_bytes(&proof.to_bytes()).as_ref(),
            Ok(&proof),
            "consistency proof encoding"
        );
        path = proof.into_path();
        must(
            merkle::verify_consistency(alg, old, new, &old_root, &new_root, &path),
            "a real consistency proof verifies",
        );
    }
    for _ in 0..=input.u8() % 8 {
        if input.is_empty() {
            break;
        }
        match input.u8() % 8 {
            0 | 1 => mutate_path(&tree, &mut path, input),
            2 => old = mutate_number(old, &tree, input),
            3 => new = mutate_number(new, &tree, input),
            4 => mutate_digest(&mut old_root, &tree, input),
            5 => mutate_digest(&mut new_root, &tree, input),
            6 => std::mem::swap(&mut old_root, &mut new_root),
            _ => {
                let other_new = 1 + input.below(tree.n());
                let other_old = 1 + input.below(other_new);
                path = tree.consistency(other_old, other_new).unwrap_or_default();
            }
        }
    }
    if merkle::verify_consistency(alg, old, new, &old_root, &new_root, &path).is_ok() {
        check_true_consistency(&tree, (old, new), (&old_root, &new_root), &path);
    }
}

/// What a consistency proof that verified must be: for equal sizes the empty proof between
/// equal roots (the empty tree's for size 0); otherwise, when the new root is the tree's root
/// of the new size (as a signed checkpoint says), the tree's own proof from its old root.
fn check_true_consistency(
    tree: &Tree,
    (old, new): (u64, u64),
    (old_root, new_root): (&Digest, &Digest),
    path: &[Digest],
) {
    if old == new {
        assert!(path.is_empty(), "equal sizes verified with hashes");
        assert_eq!(old_root, new_root, "equal sizes verified with two roots");
        if old == 0 {
            assert_eq!(*old_root, merkle::empty_root(tree.alg), "empty tree root");
        }
        return;
    }
    if old == 0 {
        // Every tree extends the empty one; only the empty root and no path may pass.
        assert!(path.is_empty(), "a path from the empty tree verified");
        assert_eq!(*old_root, merkle::empty_root(tree.alg), "empty tree root");
        return;
    }
    assert!(old < new, "verified sizes {old} -> {new}");
    if tree.root(new).as_ref() != Some(new_root) {
        return;
    }
    assert_eq!(tree.root(old).as_ref(), Some(old_root), "wrong old root");
    assert_eq!(
        tree.consistency(old, new).as_deref(),
        Some(path),
        "a consistency path other than the real one verified"
    );
}

/// Input-chosen sizes and hashes straight into the verifiers and decoders: typed errors only.
fn fuzz_raw(alg: HashAlgorithm, input: &mut Input<'_>) {
    let (a, b) = (input.u64(), input.u64());
    let (x, y) = (input.array::<32>(), input.array::<32>());
    let count = input.u8() % 72;
    let path: Vec<Digest> = (0..count).map(|_| input.array()).collect();
    let _ = merkle::verify_inclusion(alg, a, b, &x, &path, &y);
    if merkle::verify_consistency(alg, a, b, &x, &y, &path).is_ok() {
        assert!(a <= b, "consistency verified for sizes out of order");
    }
    let rest = input.0;
    if let Ok(proof) = merkle::InclusionProof::from_bytes(rest) {
        assert_eq!(proof.to_bytes(), rest, "inclusion proof decode/encode");
        let _ = merkle::verify_inclusion(
            alg,
            proof.leaf_index(),
            proof.tree_size(),
            &x,
            proof.path(),
            &y,
        );
    }
    if let Ok(proof) = merkle::ConsistencyProof::from_bytes(rest) {
        assert_eq!(proof.to_bytes(), rest, "consistency proof decode/encode");
        let _ = merkle::verify_consistency(
            alg,
            proof.old_size(),
            proof.new_size(),
            &x,
            &y,
            proof.path(),
        );
    }
    if let Ok(range) = CompactRange::from_bytes(rest) {
        assert_eq!(range.to_bytes(), rest, "compact range decode/encode");
        let _ = range.root();
        let mut grown = range.clone();
        if grown.append(&x).is_ok() {
            assert_eq!(grown.size(), range.size() + 1, "append grows by one");
        }
    }
    // The bytes as a leaf table: proofs over arbitrary sizes and indexes never panic.
    let whole = rest.len() - rest.len() % 32;
    if let Ok(leaves) = merkle::digests_from_bytes(&rest[..whole]) {
        let table = LeafHashTable::new(alg, leaves);
        let _ = merkle::tree_root(alg, a % 1024, &table);
        let _ = merkle::inclusion_proof(alg, a % 1024, b % 1024, &table);
        let _ = merkle::consistency_proof(alg, a % 1024, b % 1024, &table);
        let level = u32::try_from(b % 70).unwrap_or(0);
        for base in [1, u32::from(count), u32::try_from(a % 70).unwrap_or(0)] {
            let _ = merkle::interior_len(b, base);
            let _ = merkle::interior_position(base, level, a);
            // The tail as an interior table of arbitrary contents (a damaged file): lookups
            // and proofs return hashes or typed errors.
            let mut leaf_count = leaves.len() as u64;
            while merkle::interior_len(leaf_count, base)
                .is_some_and(|i| leaf_count + i > leaves.len() as u64)
            {
                leaf_count -= 1;
            }
            let (head, tail) = leaves.split_at(index(leaf_count));
            let interior =
                merkle::interior_len(leaf_count, base).map_or(&[][..], |i| &tail[..index(i)]);
            if let Ok(with) = LeafHashTable::with_interior(alg, head, base, interior) {
                let _ = with.check_interior();
                let _ = merkle::inclusion_proof(alg, a % 1024, b % 1024, &with);
                let _ = merkle::consistency_proof(alg, a % 1024, b % 1024, &with);
                let _ = merkle::SubtreeSource::subtree_hash(&with, alg, level, a % 1024);
                let _ = CompactRange::from_source(alg, b % 1024, &with);
            }
        }
    }
}

/// The fixed signer of [`fuzz_bundles`]' checkpoints.
fn fuzz_signer() -> Option<&'static NoteSigner> {
    static SIGNER: OnceLock<Option<NoteSigner>> = OnceLock::new();
    SIGNER
        .get_or_init(|| NoteSigner::from_seed("fuzz.example/log", &[9; 32]).ok())
        .as_ref()
}

/// One real entry (a receipt or a checkpoint entry) as leaf `leaf_index` of a tree.
struct ProvenEntry {
    seq: u64,
    epoch: u64,
    leaf_index: u64,
    kind: EntryKind,
    bytes: Vec<u8>,
    chain_hash: Digest,
    header: Option<crate::receipt::ReceiptHeader>,
}

fn proven_entry(alg: HashAlgorithm, leaves: &mut [Digest], input: &mut Input<'_>) -> ProvenEntry {
    let epoch = u64::from(input.u8() % 4);
    let leaf_index = input.below(leaves.len() as u64);
    let seq = u64::from(input.u8()) + leaf_index;
    let receipt = Receipt::builder("acme", format!("evt-{}", input.u8()), Kind::ToolCall)
        .app_id("fuzz")
        .actor_type(ActorType::Agent)
        .event_time(Timestamp::from_unix_nanos(1_700_000_000_000_000_000))
        .build();
    let (kind, header, payload) = match receipt {
        Ok(r) if !input.u8().is_multiple_of(4) => (
            EntryKind::Receipt,
            r.header().encode(),
            r.payload().to_vec(),
        ),
        _ => (EntryKind::Checkpoint, Vec::new(), b"a note".to_vec()),
    };
    let chain = ChainFields {
        epoch,
        logged_at_ns: input.u64(),
        prev_chain_hash: input.array(),
        tenant_prev_seq: input.u64(),
        tenant_prev_hash: input.array(),
    };
    // Both entry versions a store may hold (version 2 from before 2026-11-24).
    let stored = input.u8().is_multiple_of(2).then(|| {
        let payload_digest = entry::payload_digest(alg, &payload);
        entry::StoredDigests {
            content_digest: entry::content_digest_v2(alg, kind, &header, &payload_digest),
            payload_digest,
        }
    });
    let entry = EntryRef {
        kind,
        flags: 0,
        chain,
        stored,
        header: &header,
        payload: &payload,
        signature: None,
    };
    let chain_hash = entry.chain_hash(alg, Seq(seq));
    leaves[index(leaf_index)] = merkle::leaf_hash(alg, &chain_hash);
    let mut bytes = Vec::new();
    entry.encode_into(&mut bytes);
    let header = (kind == EntryKind::Receipt)
        .then(|| crate::receipt::ReceiptHeader::decode(&header).ok())
        .flatten();
    ProvenEntry {
        seq,
        epoch,
        leaf_index,
        kind,
        bytes,
        chain_hash,
        header,
    }
}

fn encode_path(path: &[Digest]) -> Vec<String> {
    path.iter().map(|d| STANDARD.encode(d)).collect()
}

/// One edit of a bundle's path: of its hashes, or of its text.
fn mutate_path_text(tree: &Tree, path: &mut Vec<String>, input: &mut Input<'_>) {
    let decoded: Option<Vec<Digest>> = path
        .iter()
        .map(|p| STANDARD.decode(p).ok()?.try_into().ok())
        .collect();
    match (input.u8() % 4, decoded) {
        (0, _) => path.push(String::from_utf8_lossy(&input.array::<8>()).into_owned()),
        (1, _) if !path.is_empty() => {
            let at = index(input.below(path.len() as u64));
            path[at].pop();
        }
        (_, Some(mut hashes)) => {
            mutate_path(tree, &mut hashes, input);
            *path = encode_path(&hashes);
        }
        _ => path.clear(),
    }
}

/// One edit of note text: a byte changed, removed or inserted (kept valid UTF-8 lossily).
fn mutate_text(text: &mut String, input: &mut Input<'_>) {
    let mut bytes = std::mem::take(text).into_bytes();
    let at = index(input.below(bytes.len() as u64 + 1));
    match input.u8() % 3 {
        0 if at < bytes.len() => bytes[at] ^= input.u8().max(1),
        1 if at < bytes.len() => {
            bytes.remove(at);
        }
        _ => bytes.insert(at, input.u8()),
    }
    *text = String::from_utf8_lossy(&bytes).into_owned();
}

fn fuzz_bundles(alg: HashAlgorithm, input: &mut Input<'_>) {
    let Some(signer) = fuzz_signer() else {
        return;
    };
    let verifier = signer.verifier();
    let mut leaves = fuzz_leaves(alg, input);
    let entry = proven_entry(alg, &mut leaves, input);
    let tree = Tree::new(alg, leaves, u32::from(input.u8() % 4));
    let n = tree.n();
    let old_size = 1 + input.below(n);
    let origin = |epoch: u64| format!("fuzz.example/log/epoch/{epoch}");
    let root = |size: u64| tree.root(size).unwrap_or_default();
    let checkpoints = [
        Checkpoint::new(origin(entry.epoch), n, root(n)),
        Checkpoint::new(origin(entry.epoch), old_size, root(old_size)),
        Checkpoint::new(origin(entry.epoch), 0, merkle::empty_root(alg)),
        Checkpoint::new(origin(entry.epoch + 1), n, root(n)),
    ];
    let notes: Vec<String> = checkpoints
        .iter()
        .map(|c| must(c.sign(&[signer]), "sign a checkpoint"))
        .collect();
    let real_path = tree.inclusion(entry.leaf_index, n).unwrap_or_default();
    let mut bundle = InclusionBundle {
        hash_algorithm: alg.to_string(),
        seq: entry.seq,
        epoch: entry.epoch,
        leaf_index: entry.leaf_index,
        entry_kind: entry.kind as u8,
        entry: STANDARD.encode(&entry.bytes),
        checkpoint: notes[0].clone(),
        path: encode_path(&real_path),
    };
    let proven = must(
        verify_inclusion_bundle(&bundle, &verifier),
        "a real inclusion bundle verifies",
    );
    assert_eq!(proven.chain_hash, entry.chain_hash);
    assert_eq!(proven.header, entry.header);
    let mut consistency = ConsistencyBundle {
        hash_algorithm: alg.to_string(),
        old_checkpoint: notes[1].clone(),
        new_checkpoint: notes[0].clone(),
        path: encode_path(&tree.consistency(old_size, n).unwrap_or_default()),
    };
    must(
        verify_consistency_notes(&consistency, &verifier),
        "a real consistency bundle verifies",
    );
    for _ in 0..=input.u8() % 6 {
        if input.is_empty() {
            break;
        }
        mutate_bundles(&tree, &notes, &mut bundle, &mut consistency, input);
    }
    if let Ok(proven) = verify_inclusion_bundle(&bundle, &verifier) {
        assert_eq!(bundle.hash_algorithm, alg.to_string());
        assert!(
            checkpoints.contains(&proven.checkpoint),
            "an unsigned checkpoint"
        );
        assert_eq!(
            (bundle.seq, bundle.epoch, bundle.leaf_index),
            (entry.seq, entry.epoch, entry.leaf_index),
            "verified another position"
        );
        assert_eq!(
            proven.chain_hash, entry.chain_hash,
            "verified another entry"
        );
        assert_eq!(proven.header, entry.header, "verified another header");
        let size = proven.checkpoint.tree_size;
        let path: Option<Vec<Digest>> = bundle
            .path
            .iter()
            .map(|p| STANDARD.decode(p).ok()?.try_into().ok())
            .collect();
        assert_eq!(path, tree.inclusion(entry.leaf_index, size), "another path");
    }
    if let Ok((old, new)) = verify_consistency_notes(&consistency, &verifier) {
        assert!(checkpoints.contains(&old) && checkpoints.contains(&new));
        assert_eq!(old.origin, new.origin, "checkpoints of two trees");
        let path: Vec<Digest> = consistency
            .path
            .iter()
            .filter_map(|p| STANDARD.decode(p).ok()?.try_into().ok())
            .collect();
        assert_eq!(
            path.len(),
            consistency.path.len(),
            "undecodable path verified"
        );
        check_true_consistency(
            &tree,
            (old.tree_size, new.tree_size),
            (&old.root_hash, &new.root_hash),
            &path,
        );
    }
}

fn mutate_bundles(
    tree: &Tree,
    notes: &[String],
    bundle: &mut InclusionBundle,
    consistency: &mut ConsistencyBundle,
    input: &mut Input<'_>,
) {
    let pick_note = |input: &mut Input<'_>| notes[index(input.below(notes.len() as u64))].clone();
    match input.u8() % 13 {
        0 => {
            ["blake3", "sha256", "BLAKE3", ""][usize::from(input.u8() % 4)]
                .clone_into(&mut bundle.hash_algorithm);
        }
        1 => bundle.seq = mutate_number(bundle.seq, tree, input),
        2 => bundle.epoch = mutate_number(bundle.epoch, tree, input),
        3 => bundle.leaf_index = mutate_number(bundle.leaf_index, tree, input),
        4 => bundle.entry_kind = input.u8() % 6,
        5 => {
            let mut bytes = STANDARD.decode(&bundle.entry).unwrap_or_default();
            let at = index(input.below(bytes.len() as u64 + 1));
            match input.u8() % 3 {
                0 if at < bytes.len() => bytes[at] ^= input.u8().max(1),
                1 => bytes.truncate(at),
                _ => bytes.insert(at, input.u8()),
            }
            bundle.entry = STANDARD.encode(&bytes);
        }
        6 => bundle.checkpoint = pick_note(input),
        7 => mutate_text(&mut bundle.checkpoint, input),
        8 => mutate_path_text(tree, &mut bundle.path, input),
        9 => {
            let size = 1 + input.below(tree.n());
            let path = tree.inclusion(input.below(size), size).unwrap_or_default();
            bundle.path = encode_path(&path);
        }
        10 => {
            let note = pick_note(input);
            if input.flag() {
                consistency.old_checkpoint = note;
            } else {
                consistency.new_checkpoint = note;
            }
        }
        11 => {
            if input.flag() {
                mutate_text(&mut consistency.old_checkpoint, input);
            } else {
                mutate_text(&mut consistency.new_checkpoint, input);
            }
        }
        _ => mutate_path_text(tree, &mut consistency.path, input),
    }
}

// ---------------------------------------------------------------------------------------------
// db_ops

/// Most operations [`db_ops`] runs for one input.
pub const DB_OPS_MAX: usize = 64;
/// Most restarts (crash, drop or close, and reopen) per input, besides the final one: each
/// costs tens of milliseconds, and an input must run well within a second.
const RESTARTS_MAX: u32 = 4;
/// Most index checks (a rebuild of the index) per input, for the same reason.
const INDEX_CHECKS_MAX: u32 = 2;
/// Most query pages per input, for the same reason.
const PAGES_MAX: u32 = 160;

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const KINDS: [Kind; 3] = [Kind::LlmCall, Kind::ToolCall, Kind::PolicyDecision];
/// Event ids per tenant that waited appends draw from (so repeats and conflicts happen).
const EVENTS: u64 = 6;
const BASE_TIME_NS: i64 = 1_763_800_000_000_000_000;
const MINUTE_NS: i64 = 60_000_000_000;

/// What the model knows about one receipt.
#[derive(Debug, Clone)]
struct Spec {
    tenant: usize,
    event: String,
    variant: u8,
}

impl Spec {
    /// A receipt spec whose event id may already be in use.
    fn from_input(input: &mut Input<'_>) -> Spec {
        Spec {
            tenant: index(input.below(TENANTS.len() as u64)),
            event: format!("e{}", input.below(EVENTS)),
            variant: input.u8() % 4,
        }
    }

    fn kind(&self) -> &Kind {
        &KINDS[usize::from(self.variant) % KINDS.len()]
    }

    fn session(&self) -> String {
        format!("s{}", self.variant % 2)
    }

    /// The data subject whose key encrypts the payload: `u0` or `u1`.
    fn subject(&self) -> u8 {
        (self.variant / 2) % 2
    }

    fn time_minutes(&self) -> i64 {
        let e: i64 = self.event.bytes().map(i64::from).sum();
        (e * 7 + i64::from(self.variant) * 3) % 10
    }

    fn receipt(&self) -> Receipt {
        let built = Receipt::builder(TENANTS[self.tenant], &self.event, self.kind().clone())
            .app_id("fuzz")
            .actor_type(ActorType::Agent)
            .session_id(self.session())
            .subject_id(format!("u{}", self.subject()))
            .event_time(Timestamp::from_unix_nanos(
                BASE_TIME_NS + self.time_minutes() * MINUTE_NS,
            ))
            .input(serde_json::json!({"v": self.variant, "pad": "x".repeat(usize::from(self.variant % 40))}))
            .build();
        must(built, "a fuzz receipt is valid")
    }
}

/// An acknowledged receipt.
#[derive(Debug, Clone)]
struct Acked {
    spec: Spec,
    receipt: Receipt,
    position: ReceiptPosition,
    /// Its subject was shredded after it was written: its payload is gone.
    shredded: bool,
}

/// A submitted, not yet resolved append.
struct Pending {
    spec: Spec,
    receipt: Receipt,
    ticket: Ticket,
}

#[derive(Default)]
struct Model {
    by_seq: BTreeMap<u64, Acked>,
    by_event: HashMap<(usize, String), u64>,
    notes: Vec<(u64, u64, String)>,
    fresh: u64,
}

impl Model {
    fn last_seq(&self) -> Option<u64> {
        self.by_seq.keys().next_back().copied()
    }

    fn ack(&mut self, spec: Spec, receipt: Receipt, position: ReceiptPosition) {
        if let Some(last) = self.last_seq() {
            assert!(position.seq.0 > last, "seq {} after {last}", position.seq);
        }
        self.by_event
            .insert((spec.tenant, spec.event.clone()), position.seq.0);
        self.by_seq.insert(
            position.seq.0,
            Acked {
                spec,
                receipt,
                position,
                shredded: false,
            },
        );
    }
}

/// A query the model can answer by itself.
#[derive(Debug)]
struct QuerySpec {
    tenant: Option<usize>,
    kind: Option<usize>,
    session: Option<u8>,
    minutes: Option<(i64, i64)>,
    order: Order,
    limit: u32,
}

impl QuerySpec {
    fn from_input(input: &mut Input<'_>) -> QuerySpec {
        let flags = input.u8();
        let direction = if flags & 16 == 0 {
            Direction::Ascending
        } else {
            Direction::Descending
        };
        let pick = input.u8();
        QuerySpec {
            tenant: (flags & 1 != 0).then_some(usize::from(pick) % TENANTS.len()),
            kind: (flags & 2 != 0).then_some(usize::from(pick / 3) % KINDS.len()),
            session: (flags & 4 != 0).then_some((pick / 9) % 2),
            minutes: (flags & 8 != 0).then(|| {
                let from = i64::from(input.u8() % 12) - 1;
                (from, from + i64::from(input.u8() % 6))
            }),
            order: if flags & 32 == 0 {
                Order::Seq(direction)
            } else {
                Order::EventTime(direction)
            },
            limit: 1 + u32::from(input.u8() % 8),
        }
    }

    fn filter(&self) -> Filter {
        Filter {
            tenant: self.tenant.map(|t| TENANTS[t].to_owned()),
            kind: self.kind.map(|k| KINDS[k].as_str().to_owned()),
            session: self.session.map(|s| format!("s{s}")),
            since: self
                .minutes
                .map(|(from, _)| BASE_TIME_NS + from * MINUTE_NS),
            until: self.minutes.map(|(_, to)| BASE_TIME_NS + to * MINUTE_NS),
            ..Filter::default()
        }
    }

    fn matches(&self, spec: &Spec) -> bool {
        self.tenant.is_none_or(|t| t == spec.tenant)
            && self.kind.is_none_or(|k| KINDS[k] == *spec.kind())
            && self.session.is_none_or(|s| s == spec.variant % 2)
            && self
                .minutes
                .is_none_or(|(from, to)| (from..to).contains(&spec.time_minutes()))
    }

    fn expected(&self, model: &Model) -> Vec<u64> {
        let mut hits: Vec<(i64, u64)> = model
            .by_seq
            .values()
            .filter(|a| self.matches(&a.spec))
            .map(|a| (a.spec.time_minutes(), a.position.seq.0))
            .collect();
        if self.order.is_time() {
            hits.sort_unstable();
        }
        if self.order.direction() == Direction::Descending {
            hits.reverse();
        }
        hits.into_iter().map(|(_, seq)| seq).collect()
    }
}

/// One store on a simulated disk (keys and index in `dir`), its model, and the appends in
/// flight.
struct Run<'a> {
    disk: SimDisk,
    dir: &'a Path,
    options: DbOptions,
    db: Option<Db<SimDisk>>,
    model: Model,
    pending: Vec<Pending>,
    /// `Durability::Written`: acknowledged means written, durable only after a sync.
    written: bool,
    restarts: u32,
    index_checks: u32,
    pages: u32,
}

/// Fuzz body: drives the public [`Db`] API over a store whose log lives on the WAL's
/// simulated disk (so syncs are free and power loss is real) and whose keys and index live in
/// `dir`, an empty scratch directory. The input picks the options (hash algorithm, durability,
/// segment, epoch and checkpoint sizes), then up to [`DB_OPS_MAX`] operations: appends (waited, with
/// event ids that repeat so idempotency and conflicts are exercised, or left in flight),
/// checkpoints, seals, syncs, queries (structs, text and tenant views, paged with cursors),
/// event lookups, reads, inclusion and consistency proofs, index checks, verification, shreds
/// of a tenant's data subject, and crashes: power loss at an input-chosen storage operation, a
/// drop without close, or a close, each followed by a reopen.
///
/// Checked against a model: every acknowledged receipt (with `Durability::Written`, every one
/// below the durable end) is there after every reopen, at its sequence number and with its
/// bytes; submissions in flight at a stop end acknowledged or with an error (only power loss
/// may fail them), and of what was not yet durable at a power loss, the survivors are a prefix
/// in log order; queries return exactly the model's receipts in order; a shredded receipt
/// reads back with its header and no payload, and a retry of it is a conflict; proofs
/// verify; the recovered log verifies.
///
/// # Panics
/// When the store breaks one of those promises (a bug), or `dir` cannot be used.
pub fn db_ops(data: &[u8], dir: &Path) {
    let mut input = Input(data);
    let config = input.u8();
    let options = DbOptions::default()
        .segment_bytes(if config & 1 == 0 { 16 << 10 } else { 64 << 10 })
        .hash_algorithm(if config & 2 == 0 {
            HashAlgorithm::Blake3
        } else {
            HashAlgorithm::Sha256
        })
        .epoch_records_max(2 + u64::from(input.u8() % 40))
        .checkpoint_every_records(1 + u64::from(input.u8() % 24))
        .checkpoint_interval(Duration::from_secs(3600))
        .durability(if config & 4 == 0 {
            Durability::Durable
        } else {
            Durability::Written
        })
        .ring_capacity(2 * DB_OPS_MAX)
        .batch_records_max(1 + usize::from(config >> 4))
        // Bit 3: payload compression, so that appends, retries (plaintext comparison), reads
        // and recovery reach the compress and decompress paths.
        .payload_compression(if config & 8 == 0 {
            crate::PayloadCompression::Off
        } else {
            crate::PayloadCompression::zstd()
        });
    let disk = SimDisk::new(u64::from(config));
    let db = must(Db::open_on(&disk, dir, options.clone()), "create");
    let mut run = Run {
        disk,
        dir,
        options,
        db: Some(db),
        model: Model::default(),
        pending: Vec::new(),
        written: config & 4 != 0,
        restarts: 0,
        index_checks: 0,
        pages: 0,
    };
    for _ in 0..DB_OPS_MAX {
        if input.is_empty() {
            break;
        }
        run.step(&mut input);
    }
    run.resolve_pending();
    run.check_everything();
    run.restart(Restart::Close, 0);
    run.check_everything();
    run.verify();
    if let Some(db) = run.db.take() {
        must(db.close(), "close");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// Power loss at a storage operation `n` operations from now.
    Crash,
    /// The last handle dropped without `close`.
    Drop,
    /// `close`.
    Close,
}

impl Run<'_> {
    fn db(&self) -> &Db<SimDisk> {
        match &self.db {
            Some(db) => db,
            None => panic!("the store is open between operations"),
        }
    }

    /// One operation: opcode byte `% 21`, then its arguments. Everything but submissions and
    /// restarts first waits for the submissions in flight (so the model knows their seqs).
    /// Restarts and index checks beyond their budgets run as syncs.
    fn step(&mut self, input: &mut Input<'_>) {
        let op = input.u8() % 21;
        if !matches!(op, 4 | 5 | 18 | 19) {
            self.resolve_pending();
        }
        if (9..=16).contains(&op) {
            self.settle();
        }
        match op {
            0..=3 => self.append(input),
            17 => self.append_batch(input),
            4 | 5 => self.submit(input),
            6 => {
                if let Some(info) = must(self.db().checkpoint(), "checkpoint") {
                    self.model
                        .notes
                        .push((info.epoch.0, info.tree_size, info.note));
                }
            }
            7 => {
                must(self.db().seal_epoch(), "seal");
            }
            8 => {
                let end = must(self.db().sync(), "sync");
                let last = self.model.last_seq();
                assert!(
                    last.is_none_or(|s| s < end.0),
                    "sync end {end} before {last:?}"
                );
            }
            9..=11 => self.query(input),
            12 => self.find(input),
            13 => self.get_and_prove(input),
            14 => self.consistency(input),
            15 => {
                must(self.db().sync(), "sync");
                self.index_checks += 1;
                if self.index_checks <= INDEX_CHECKS_MAX {
                    let check = must(self.db().check_index(), "check index");
                    assert!(check.matches, "the live index differs from a rebuild");
                }
            }
            16 => self.verify(),
            20 => self.shred(input),
            _ => {
                let arg = input.u8();
                self.restarts += 1;
                let how = match (op, arg % 2) {
                    _ if self.restarts > RESTARTS_MAX => None,
                    (18, _) => Some(Restart::Crash),
                    (_, 0) => Some(Restart::Drop),
                    _ => Some(Restart::Close),
                };
                match how {
                    Some(how) => self.restart(how, u64::from(arg % 64)),
                    // Over budget: a sync instead.
                    None => {
                        must(self.db().sync(), "sync");
                    }
                }
            }
        }
    }

    /// A waited append of an event id that may exist: same receipt, same position; another
    /// receipt under the same id, a conflict.
    fn append(&mut self, input: &mut Input<'_>) {
        let spec = Spec::from_input(input);
        let receipt = spec.receipt();
        let result = self.db().append(&receipt).and_then(|t| t.wait());
        self.expect_append(spec, receipt, result);
    }

    /// A waited batch of 1 to 4 receipts whose event ids may exist, in the store or earlier in
    /// the batch: each item's result is what the same append alone would have given.
    fn append_batch(&mut self, input: &mut Input<'_>) {
        let len = 1 + input.below(4);
        let specs: Vec<Spec> = (0..len).map(|_| Spec::from_input(input)).collect();
        let receipts: Vec<Receipt> = specs.iter().map(Spec::receipt).collect();
        let results = must(self.db().append_batch(&receipts), "append a batch").wait();
        assert_eq!(results.len(), specs.len(), "one result per item");
        for ((spec, receipt), result) in specs.into_iter().zip(receipts).zip(results.iter()) {
            self.expect_append(spec, receipt, result.clone());
        }
    }

    /// Checks an append's `result` against the model, and acks a new receipt in it.
    fn expect_append(
        &mut self,
        spec: Spec,
        receipt: Receipt,
        result: Result<ReceiptPosition, Error>,
    ) {
        let key = (spec.tenant, spec.event.clone());
        match self
            .model
            .by_event
            .get(&key)
            .map(|seq| &self.model.by_seq[seq])
        {
            // A shredded receipt's retry gets a new key, hence other bytes: a conflict.
            Some(first) if first.spec.variant == spec.variant && !first.shredded => {
                let position = must(result, "an idempotent append");
                assert_eq!(
                    position, first.position,
                    "the same receipt, another position"
                );
            }
            Some(first) => match result {
                Err(Error::Conflict { existing, .. }) => {
                    assert_eq!(existing, first.position.seq, "conflict names another seq");
                }
                other => panic!("a different receipt under a used event id: {other:?}"),
            },
            None => {
                let position = must(result, "append");
                self.model.ack(spec, receipt, position);
            }
        }
    }

    /// An append left in flight, with an event id never used before.
    fn submit(&mut self, input: &mut Input<'_>) {
        self.model.fresh += 1;
        let spec = Spec {
            tenant: index(input.below(TENANTS.len() as u64)),
            event: format!("p{}", self.model.fresh),
            variant: input.u8() % 4,
        };
        let receipt = spec.receipt();
        let ticket = must(self.db().append(&receipt), "submit");
        self.pending.push(Pending {
            spec,
            receipt,
            ticket,
        });
    }

    fn resolve_pending(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            let position = must(p.ticket.wait(), "a submitted append");
            self.model.ack(p.spec, p.receipt, position);
        }
    }

    fn query(&mut self, input: &mut Input<'_>) {
        let spec = QuerySpec::from_input(input);
        let want = spec.expected(&self.model);
        let via = input.u8() % 3;
        // At most 8 pages per query and PAGES_MAX per input: the page size grows to fit.
        let room = PAGES_MAX.saturating_sub(self.pages).clamp(1, 8);
        let fit = u32::try_from(want.len()).unwrap_or(u32::MAX).div_ceil(room);
        let db = self.db();
        let mut query = Query::new(spec.filter());
        query.order = spec.order;
        query.limit = spec.limit.max(fit);
        if via == 1 && query.filter.is_trivially_empty() {
            // The text syntax refuses an empty range (structs may hold one: it selects nothing).
            let refused = db.query_text(&query.to_string(), Freshness::Durable);
            assert!(matches!(refused, Err(Error::Query(_))), "{refused:?}");
            return;
        }
        let view_tenant = spec.tenant.unwrap_or(0);
        if via == 2 && spec.tenant.is_none() {
            // Through a tenant view the tenant comes from the view.
            query.filter.tenant = None;
        }
        let mut got = Vec::new();
        let mut pages = 0;
        for _ in 0..=self.model.by_seq.len() + 1 {
            let page = match via {
                0 => db.query(&query, Freshness::Durable),
                1 => db.query_text(&query.to_string(), Freshness::Durable),
                _ => db
                    .tenant(TENANTS[view_tenant])
                    .query(&query, Freshness::Durable),
            };
            let page = must(page, "query");
            pages += 1;
            assert!(
                page.receipts.len() <= query.limit as usize,
                "page over the limit"
            );
            for r in &page.receipts {
                self.check_stored(r);
                got.push(r.position.seq.0);
            }
            match page.next_cursor {
                Some(text) => query.cursor = Some(must(Cursor::decode(&text), "cursor")),
                None => break,
            }
        }
        self.pages += pages;
        let want = if via == 2 {
            want.into_iter()
                .filter(|seq| self.model.by_seq[seq].spec.tenant == view_tenant)
                .collect()
        } else {
            want
        };
        assert_eq!(got, want, "query {spec:?} (via {via})");
    }

    /// A stored receipt is the model's, byte for byte (its payload gone if it was shredded).
    fn check_stored(&self, stored: &StoredReceipt) {
        let Some(acked) = self.model.by_seq.get(&stored.position.seq.0) else {
            panic!(
                "seq {} holds a receipt the model never acknowledged",
                stored.position.seq
            );
        };
        assert_eq!(stored.position, acked.position, "position");
        assert_eq!(&stored.header, acked.receipt.header(), "header");
        if acked.shredded {
            assert!(
                stored.payload_state.is_shredded() && stored.payload.is_empty(),
                "seq {}: a shredded payload reads back ({})",
                stored.position.seq,
                stored.payload_state.name()
            );
        } else {
            assert_eq!(stored.payload, acked.receipt.payload(), "payload");
        }
    }

    /// Shreds a subject of a tenant: afterwards its receipts read as shredded (their proofs
    /// and the log still verify, checked by the operations that follow).
    fn shred(&mut self, input: &mut Input<'_>) {
        let tenant = index(input.below(TENANTS.len() as u64));
        let subject = input.u8() % 2;
        let result = self
            .db()
            .shred(TENANTS[tenant], &format!("u{subject}"), "fuzz-request");
        let of_subject = |a: &Acked| a.spec.tenant == tenant && a.spec.subject() == subject;
        match result {
            // A key may exist with no acknowledged receipt (its receipt was lost to power
            // loss before it was durable), so success says nothing about the model.
            Ok(_) => {
                for acked in self.model.by_seq.values_mut() {
                    if of_subject(acked) {
                        acked.shredded = true;
                    }
                }
            }
            Err(Error::Shred(ShredError::Unknown { .. } | ShredError::AlreadyShredded { .. })) => {
                let live = self
                    .model
                    .by_seq
                    .values()
                    .find(|a| of_subject(a) && !a.shredded);
                assert!(
                    live.is_none(),
                    "shred refused while seq {:?} of the subject is readable",
                    live.map(|a| a.position.seq)
                );
            }
            Err(e) => panic!("shred failed: {e}"),
        }
    }

    fn find(&self, input: &mut Input<'_>) {
        let tenant = index(input.below(TENANTS.len() as u64));
        let event = format!("e{}", input.below(EVENTS));
        let found = if input.flag() {
            self.db().find_event(TENANTS[tenant], &event)
        } else {
            self.db().tenant(TENANTS[tenant]).find_event(&event)
        };
        let found = must(found, "find event");
        match self.model.by_event.get(&(tenant, event)) {
            Some(seq) => {
                let found = found.unwrap_or_else(|| panic!("seq {seq} not found"));
                assert_eq!(found.position.seq.0, *seq);
                self.check_stored(&found);
            }
            None => assert!(found.is_none(), "found an event never appended: {found:?}"),
        }
    }

    fn get_and_prove(&self, input: &mut Input<'_>) {
        let nth = index(input.below(self.model.by_seq.len() as u64));
        let prove = input.flag();
        let Some(acked) = self.model.by_seq.values().nth(nth) else {
            return;
        };
        let db = self.db();
        self.check_stored(&must(db.get(acked.position.seq), "get"));
        if prove {
            let bundle = must(db.prove(acked.position.seq), "prove");
            let proven = must(
                verify_inclusion_bundle(&bundle, db.verifier()),
                "the store's inclusion proof verifies",
            );
            assert_eq!(proven.chain_hash, acked.position.chain_hash);
            assert_eq!(proven.header.as_ref(), Some(acked.receipt.header()));
        }
    }

    fn consistency(&self, input: &mut Input<'_>) {
        let notes = &self.model.notes;
        let count = notes.len() as u64;
        let (a, b) = (input.below(count), input.below(count));
        let (Some(a), Some(b)) = (notes.get(index(a)), notes.get(index(b))) else {
            return;
        };
        if a.0 != b.0 {
            return;
        }
        let (old, new) = if a.1 <= b.1 { (a, b) } else { (b, a) };
        let bundle = must(self.db().consistency(&old.2, &new.2), "consistency");
        must(
            verify_consistency_notes(&bundle, self.db().verifier()),
            "the store's consistency proof verifies",
        );
    }

    fn verify(&self) {
        let report = must(
            verify_log(&self.disk, None, &VerifyOptions::default()),
            "verify runs",
        );
        assert!(
            report.damage.is_none(),
            "the log does not verify: {report:?}"
        );
    }

    /// Stops the store (power loss, drop or close), restarts it and checks what survived.
    fn restart(&mut self, how: Restart, crash_in: u64) {
        // Everything below the durable end must survive power loss; with `Durable` that is
        // every acknowledged receipt.
        let floor = self.db().durable_end().0;
        if !self.written {
            let last = self.model.last_seq();
            assert!(
                last.is_none_or(|s| s < floor),
                "acked {last:?}, durable end {floor}"
            );
        }
        let db = self.db.take();
        if how == Restart::Crash {
            self.disk.crash_at_op(self.disk.ops() + crash_in);
        }
        match (how, db) {
            (Restart::Close, Some(db)) => {
                must(db.close(), "close");
            }
            (_, db) => drop(db),
        }
        // What may or may not survive, in log order, with its position if it was acknowledged:
        // receipts acknowledged as written but not durable yet, and submissions in flight.
        let mut maybe = Vec::new();
        if how == Restart::Crash {
            let at_risk: Vec<u64> = self.model.by_seq.range(floor..).map(|(s, _)| *s).collect();
            for seq in at_risk {
                if let Some(a) = self.model.by_seq.remove(&seq) {
                    self.model
                        .by_event
                        .remove(&(a.spec.tenant, a.spec.event.clone()));
                    maybe.push((a.spec, a.receipt, Some(a.position)));
                }
            }
        }
        // Every submission ends acknowledged or with an error (invariant 2).
        for p in std::mem::take(&mut self.pending) {
            let Some(result) = p.ticket.try_result() else {
                panic!("a submission is still unresolved after the store stopped");
            };
            match result {
                Ok(position)
                    if how != Restart::Crash || !self.written || position.seq.0 < floor =>
                {
                    self.model.ack(p.spec, p.receipt, position);
                }
                Ok(position) => maybe.push((p.spec, p.receipt, Some(position))),
                Err(e) => {
                    assert_eq!(how, Restart::Crash, "a clean stop failed a submission: {e}");
                    maybe.push((p.spec, p.receipt, None));
                }
            }
        }
        self.disk.crash();
        let db = must(
            Db::open_on(&self.disk, self.dir, self.options.clone()),
            "reopen",
        );
        self.db = Some(db);
        if how == Restart::Crash {
            self.verify();
        }
        // Survivors of the rest: a prefix in log order, where they were acknowledged.
        let mut gone = false;
        for (spec, receipt, position) in maybe {
            let found = must(
                self.db().find_event(TENANTS[spec.tenant], &spec.event),
                "find an unsettled event",
            );
            match found {
                Some(stored) => {
                    assert!(!gone, "a later receipt survived an earlier lost one");
                    assert_eq!(&stored.header, receipt.header(), "survivor's header");
                    if let Some(position) = position {
                        assert_eq!(stored.position, position, "survivor moved");
                    }
                    self.model.ack(spec, receipt, stored.position);
                }
                None => gone = true,
            }
        }
        self.check_everything();
    }

    /// With `Durability::Written`, makes what was acknowledged durable, so that reads (which
    /// see the durable log and its index) see it all.
    fn settle(&self) {
        if self.written {
            must(self.db().sync(), "sync");
        }
    }

    /// Every acknowledged receipt reads back and is found by its event id.
    fn check_everything(&self) {
        self.settle();
        let db = self.db();
        for acked in self.model.by_seq.values() {
            self.check_stored(&must(db.get(acked.position.seq), "acknowledged receipt"));
        }
        if let Some(acked) = self.model.by_seq.values().next_back() {
            let found = must(
                db.find_event(TENANTS[acked.spec.tenant], &acked.spec.event),
                "find",
            );
            assert_eq!(found.map(|f| f.position), Some(acked.position));
        }
        // At most DB_OPS_MAX receipts: one page of the default limit holds them all.
        let page = must(
            db.query(&Query::new(Filter::default()), Freshness::Durable),
            "query",
        );
        let seqs: Vec<u64> = page.receipts.iter().map(|r| r.position.seq.0).collect();
        let want: Vec<u64> = self.model.by_seq.keys().copied().collect();
        assert_eq!(seqs, want, "all receipts");
    }
}
