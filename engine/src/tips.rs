//! Tenant tips committed in checkpoints: every checkpoint and seal note carries the root of a
//! Merkle tree over the last receipt of each tenant, so that a tenant's slice can be shown to
//! end at its tip without showing any other tenant's entries (see docs/design.md, "Tenant tips").
//!
//! The tree is RFC 9162 over one leaf per tenant, in byte order of the tenant id; a leaf holds
//! `leaf_hash(TIP_LEAF_TAG || u32 LE tenant length || tenant || u64 LE seq || chain hash)`. The
//! tag makes a tip leaf's data longer than, and distinct from, a log leaf's 32-byte chain hash,
//! so the Merkle leaf domain is shared without any leaf of one tree passing for the other's.

use std::collections::{BTreeMap, HashMap};

use crate::merkle::{self, Digest, LeafHashTable, ProofError};
use crate::replay::{hex, unhex32};
use crate::wal::{HashAlgorithm, Seq};

/// Prefix of the tips extension line of a checkpoint or seal note.
pub const TIPS_EXTENSION_PREFIX: &str = "trailmix-tips v1";

/// The first bytes of a tip leaf's data.
const TIP_LEAF_TAG: &[u8] = b"trailmix-db tenant tip v1\0";

/// What a checkpoint commits about the tenants: how many have a receipt, and the root of
/// their tips' tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TipsCommitment {
    /// Tenants with at least one receipt up to the checkpoint.
    pub tenants: u64,
    /// Root of the tips tree (the empty-tree root without tenants).
    pub root: Digest,
}

impl TipsCommitment {
    /// The note's extension line.
    #[must_use]
    pub fn to_line(&self) -> String {
        format!(
            "{TIPS_EXTENSION_PREFIX} tenants={} root={}",
            self.tenants,
            hex(&self.root)
        )
    }

    /// Parses the extension line; `None` when `line` is not one (or not well formed).
    #[must_use]
    pub fn parse(line: &str) -> Option<TipsCommitment> {
        let rest = line
            .strip_prefix(TIPS_EXTENSION_PREFIX)?
            .strip_prefix(' ')?;
        let mut parts = rest.split(' ');
        let tenants = parts.next()?.strip_prefix("tenants=")?.parse().ok()?;
        let root = unhex32(parts.next()?.strip_prefix("root=")?)?;
        parts
            .next()
            .is_none()
            .then_some(TipsCommitment { tenants, root })
    }

    /// The commitment in a note's extension lines, if there is exactly one well-formed tips
    /// line; `Err` names the problem when a line has the prefix but is malformed or repeated.
    ///
    /// # Errors
    /// A description of the bad line.
    pub fn from_extensions(lines: &[String]) -> Result<Option<TipsCommitment>, String> {
        let mut found = None;
        for line in lines
            .iter()
            .filter(|l| l.starts_with(TIPS_EXTENSION_PREFIX))
        {
            let parsed = TipsCommitment::parse(line)
                .ok_or_else(|| format!("malformed tips line {line:?}"))?;
            if found.replace(parsed).is_some() {
                return Err("two tips lines".into());
            }
        }
        Ok(found)
    }
}

/// The hash of tenant `tenant`'s tip leaf: its last receipt is `seq`, with chain hash `chain`.
#[must_use]
pub fn tip_leaf_hash(alg: HashAlgorithm, tenant: &str, seq: Seq, chain: &Digest) -> Digest {
    let mut data = Vec::with_capacity(TIP_LEAF_TAG.len() + 4 + tenant.len() + 8 + 32);
    data.extend_from_slice(TIP_LEAF_TAG);
    // Tenant ids are limited far below 4 GiB (see `receipt::limits`).
    let len = u32::try_from(tenant.len()).unwrap_or(u32::MAX);
    data.extend_from_slice(&len.to_le_bytes());
    data.extend_from_slice(tenant.as_bytes());
    data.extend_from_slice(&seq.0.to_le_bytes());
    data.extend_from_slice(chain);
    merkle::leaf_hash(alg, &data)
}

/// The tips tree, kept up to date from the chain state's tenant tips at each checkpoint: a tip
/// leaf is rehashed only when its tenant's tip moved; the interior (one hash per tenant) is
/// recomputed per commitment.
#[derive(Debug, Clone, Default)]
pub struct TipsTree {
    leaves: BTreeMap<String, (Seq, Digest)>,
}

impl TipsTree {
    /// An empty tree.
    #[must_use]
    pub fn new() -> TipsTree {
        TipsTree::default()
    }

    /// Brings the leaves up to `tips` (tenant → last receipt's seq and chain hash). Tips only
    /// move forward and tenants never go away, so a leaf whose seq is unchanged is current.
    pub fn update<S>(&mut self, alg: HashAlgorithm, tips: &HashMap<String, (Seq, Digest), S>) {
        for (tenant, (seq, chain)) in tips {
            match self.leaves.get_mut(tenant) {
                Some((leaf_seq, _)) if leaf_seq == seq => {}
                Some(leaf) => *leaf = (*seq, tip_leaf_hash(alg, tenant, *seq, chain)),
                None => {
                    self.leaves.insert(
                        tenant.clone(),
                        (*seq, tip_leaf_hash(alg, tenant, *seq, chain)),
                    );
                }
            }
        }
    }

    fn leaf_hashes(&self) -> Vec<Digest> {
        self.leaves.values().map(|(_, leaf)| *leaf).collect()
    }

    /// The commitment over the leaves as they are.
    #[must_use]
    pub fn commitment(&self, alg: HashAlgorithm) -> TipsCommitment {
        let leaves = self.leaf_hashes();
        let tenants = leaves.len() as u64;
        // The source holds exactly `tenants` leaves, so the size is always in range.
        let root = merkle::tree_root(alg, tenants, &LeafHashTable::new(alg, &leaves))
            .unwrap_or_else(|_| merkle::empty_root(alg));
        TipsCommitment { tenants, root }
    }

    /// The inclusion proof of `tenant`'s tip leaf; `None` when the tenant has no receipt.
    #[must_use]
    pub fn prove(&self, alg: HashAlgorithm, tenant: &str) -> Option<TipProof> {
        let leaf_index = self.leaves.keys().position(|t| t == tenant)? as u64;
        let (seq, _) = self.leaves.get(tenant)?;
        let leaves = self.leaf_hashes();
        let proof = merkle::inclusion_proof(
            alg,
            leaf_index,
            leaves.len() as u64,
            &LeafHashTable::new(alg, &leaves),
        )
        .ok()?;
        Some(TipProof {
            tenant: tenant.to_owned(),
            seq: *seq,
            leaf_index,
            path: proof.into_path(),
        })
    }
}

/// That `tenant`'s last receipt is at `seq`, as of a checkpoint whose tips line the proof is
/// checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipProof {
    /// The tenant.
    pub tenant: String,
    /// Its last receipt's seq.
    pub seq: Seq,
    /// The leaf's index in the tips tree.
    pub leaf_index: u64,
    /// The audit path, leaf to root.
    pub path: Vec<Digest>,
}

impl TipProof {
    /// Checks that the tip leaf of (`tenant`, `seq`, `chain`) is in the tree of `commitment`
    /// (which must come from a verified checkpoint note).
    ///
    /// # Errors
    /// The Merkle check's error.
    pub fn verify(
        &self,
        alg: HashAlgorithm,
        chain: &Digest,
        commitment: &TipsCommitment,
    ) -> Result<(), ProofError> {
        let leaf = tip_leaf_hash(alg, &self.tenant, self.seq, chain);
        merkle::verify_inclusion(
            alg,
            self.leaf_index,
            commitment.tenants,
            &leaf,
            &self.path,
            &commitment.root,
        )
    }
}
