//! Where a receipt landed: the identifiers `append` hands back.

use std::fmt;

use crate::merkle::Digest;
use crate::wal::Seq;

/// An epoch number: each epoch has its own Merkle tree and ends with a signed seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The durable position of an entry: its sequence number, epoch, chain hash and the writer's
/// timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceiptPosition {
    /// Sequence number in the log (dense over every entry, not only receipts).
    pub seq: Seq,
    /// The epoch whose tree holds it.
    pub epoch: Epoch,
    /// Its chain hash (`hash_self`); the Merkle leaf is the leaf hash of these bytes.
    pub chain_hash: Digest,
    /// The writer's monotonic timestamp, nanoseconds since the Unix epoch.
    pub logged_at_ns: u64,
}
