//! [`SeenEvents`]: an in-memory Bloom filter of every `(tenant, event_id)` in the log, so
//! that appending a new event (the common case) skips the index's event-id lookup (~30 µs)
//! and only a probable repeat pays for it.
//!
//! No false negatives: every receipt is added before it can be indexed (at replay on open,
//! and by the writer as it appends), so "not in the filter" proves "not in any index snapshot
//! taken before the check". False positives only cost a lookup.
//!
//! Memory: [`BITS_PER_EVENT`] bits per event (1.25 MB per million events), grown in blocks
//! of [`EVENTS_PER_BLOCK`]. This grows with the store; bounding it (a persistent filter in the
//! index, or a time window for idempotency) is future work noted in `docs/design.md`.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Events one filter block is sized for.
pub const EVENTS_PER_BLOCK: usize = 1 << 20;
/// Filter bits per event (with `HASHES` probes: about 0.8% false positives by the usual
/// Bloom-filter formula; not measured).
pub const BITS_PER_EVENT: usize = 10;
/// Probes per event.
const HASHES: u64 = 7;

struct Block {
    words: Vec<AtomicU64>,
    events: AtomicUsize,
}

impl Block {
    fn new() -> Block {
        let words = EVENTS_PER_BLOCK * BITS_PER_EVENT / 64;
        Block {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            events: AtomicUsize::new(0),
        }
    }

    #[allow(
        clippy::cast_possible_truncation,
        reason = "bit / 64 indexes `words`, whose length is a usize"
    )]
    fn probes(&self, (h1, h2): (u64, u64)) -> impl Iterator<Item = (usize, u64)> + '_ {
        let bits = (self.words.len() * 64) as u64;
        (0..HASHES).map(move |i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % bits;
            ((bit / 64) as usize, 1_u64 << (bit % 64))
        })
    }

    fn insert(&self, hashes: (u64, u64)) {
        for (word, mask) in self.probes(hashes) {
            self.words[word].fetch_or(mask, Ordering::Relaxed);
        }
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    fn may_contain(&self, hashes: (u64, u64)) -> bool {
        self.probes(hashes)
            .all(|(word, mask)| self.words[word].load(Ordering::Relaxed) & mask != 0)
    }
}

/// The Bloom filter of every event id in the log (see the module docs).
pub struct SeenEvents {
    blocks: RwLock<Vec<Arc<Block>>>,
    keys: std::hash::RandomState,
}

impl std::fmt::Debug for SeenEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenEvents").finish_non_exhaustive()
    }
}

impl Default for SeenEvents {
    fn default() -> Self {
        SeenEvents::new()
    }
}

impl SeenEvents {
    /// An empty filter.
    #[must_use]
    pub fn new() -> SeenEvents {
        SeenEvents {
            blocks: RwLock::new(vec![Arc::new(Block::new())]),
            keys: std::hash::RandomState::new(),
        }
    }

    fn hashes(&self, tenant: &str, event_id: &str) -> (u64, u64) {
        let mut hasher = self.keys.build_hasher();
        hasher.write(tenant.as_bytes());
        hasher.write_u8(0xff);
        hasher.write(event_id.as_bytes());
        let h1 = hasher.finish();
        // A second, odd step so the probes cover the table (double hashing).
        let h2 = h1.rotate_left(32).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (h1, h2)
    }

    /// Adds an event.
    pub fn insert(&self, tenant: &str, event_id: &str) {
        let hashes = self.hashes(tenant, event_id);
        let last = {
            let blocks = self.blocks.read().unwrap_or_else(PoisonError::into_inner);
            blocks.last().map(Arc::clone)
        };
        let last = match last {
            Some(block) if block.events.load(Ordering::Relaxed) < EVENTS_PER_BLOCK => block,
            _ => {
                let block = Arc::new(Block::new());
                self.blocks
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Arc::clone(&block));
                block
            }
        };
        last.insert(hashes);
    }

    /// False when the event was certainly never added.
    #[must_use]
    pub fn may_contain(&self, tenant: &str, event_id: &str) -> bool {
        let hashes = self.hashes(tenant, event_id);
        let blocks = self.blocks.read().unwrap_or_else(PoisonError::into_inner);
        blocks.iter().any(|block| block.may_contain(hashes))
    }
}
