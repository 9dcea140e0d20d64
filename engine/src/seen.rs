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

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Events one filter block is sized for.
pub const EVENTS_PER_BLOCK: usize = 1 << 20;
/// Filter bits per event: with one bit in each of the 8 words of a 512-bit line per event,
/// about 1% false positives at a full block (measured by the `seen_filter` test).
pub const BITS_PER_EVENT: usize = 10;
/// Words of a cache line (64 bytes): every probe of an event falls in one line.
const WORDS_PER_LINE: usize = 8;

/// One cache line of filter words: aligned, so that an event's probes share one line.
#[repr(align(64))]
struct Line([AtomicU64; WORDS_PER_LINE]);

struct Block {
    lines: Vec<Line>,
    events: AtomicUsize,
}

impl Block {
    fn new() -> Block {
        let lines = WORDS_PER_BLOCK / WORDS_PER_LINE;
        Block {
            lines: (0..lines)
                .map(|_| Line(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            events: AtomicUsize::new(0),
        }
    }

    /// The event's cache line (multiply-shift of `h1` over the lines: no division) and its
    /// mask in each of the line's words (one bit each, from `h2`). All the probes of an
    /// event touch one cache line: one miss per insert or query instead of one per bit.
    fn line(&self, (h1, h2): (u64, u64)) -> (&[AtomicU64], [u64; WORDS_PER_LINE]) {
        let words = self.line_words(h1);
        let mut masks = [0u64; WORDS_PER_LINE];
        for (j, mask) in (0u64..).zip(masks.iter_mut()) {
            *mask = 1 << ((h2 >> (6 * j)) & 63);
        }
        (words, masks)
    }

    /// The words of the line that `h1` selects (multiply-shift over the lines: no division).
    #[allow(
        clippy::cast_possible_truncation,
        reason = "the high half of a u64 x usize product is below the line count, a usize"
    )]
    fn line_words(&self, h1: u64) -> &[AtomicU64] {
        let line = ((u128::from(h1) * self.lines.len() as u128) >> 64) as usize;
        self.lines.get(line).map_or(&[][..], |line| &line.0[..])
    }

    fn insert(&self, hashes: (u64, u64)) {
        let (words, masks) = self.line(hashes);
        for (word, mask) in words.iter().zip(masks) {
            // A bit already set needs no atomic read-modify-write (and skipping it loses
            // nothing to a concurrent insert: bits are only ever set).
            if word.load(Ordering::Relaxed) & mask == 0 {
                word.fetch_or(mask, Ordering::Relaxed);
            }
        }
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    fn may_contain(&self, hashes: (u64, u64)) -> bool {
        let (words, masks) = self.line(hashes);
        // `line` is below the line count: the slice is never empty.
        words
            .iter()
            .zip(masks)
            .all(|(word, mask)| word.load(Ordering::Relaxed) & mask != 0)
    }

    /// The words in order (as the snapshot stores them).
    fn words(&self) -> impl Iterator<Item = &AtomicU64> {
        self.lines.iter().flat_map(|line| line.0.iter())
    }

    fn encode(&self, out: &mut Vec<u8>, sparse_allowed: bool) {
        out.extend_from_slice(&(self.events.load(Ordering::Relaxed) as u64).to_le_bytes());
        let words: Vec<u64> = self.words().map(|w| w.load(Ordering::Relaxed)).collect();
        let set: Vec<(u32, u64)> = (0u32..)
            .zip(words.iter().copied())
            .filter(|(_, w)| *w != 0)
            .collect();
        // A pair takes 12 bytes, a dense word 8.
        if sparse_allowed && set.len() * 12 < words.len() * 8 {
            out.push(BLOCK_SPARSE);
            out.extend_from_slice(&(set.len() as u64).to_le_bytes());
            for (index, word) in set {
                out.extend_from_slice(&index.to_le_bytes());
                out.extend_from_slice(&word.to_le_bytes());
            }
        } else {
            out.push(BLOCK_DENSE);
            for word in words {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
    }

    fn decode(input: &mut Input<'_>, sparse_allowed: bool) -> Option<Block> {
        let events = usize::try_from(input.u64()?).ok()?;
        let encoding = *input.take(1)?.first()?;
        if encoding == BLOCK_SPARSE && !sparse_allowed {
            return None;
        }
        let block = Block::new();
        match encoding {
            BLOCK_DENSE => {
                for word in block.words() {
                    word.store(input.u64()?, Ordering::Relaxed);
                }
            }
            BLOCK_SPARSE => {
                let count = input.u64()?;
                if count > WORDS_PER_BLOCK as u64 {
                    return None;
                }
                for _ in 0..count {
                    let index = u32::from_le_bytes(input.take(4)?.try_into().ok()?);
                    let word = input.u64()?;
                    let index = usize::try_from(index).ok()?;
                    block
                        .lines
                        .get(index / WORDS_PER_LINE)?
                        .0
                        .get(index % WORDS_PER_LINE)?
                        .store(word, Ordering::Relaxed);
                }
            }
            _ => return None,
        }
        block.events.store(events, Ordering::Relaxed);
        Some(block)
    }
}

/// Block encodings in [`SeenEvents::to_bytes`].
const BLOCK_DENSE: u8 = 0;
/// Words of a block.
const WORDS_PER_BLOCK: usize = EVENTS_PER_BLOCK * BITS_PER_EVENT / 64;
/// Bytes of a dense block's words.
const DENSE_BLOCK_BYTES: usize = EVENTS_PER_BLOCK * BITS_PER_EVENT / 8;
const BLOCK_SPARSE: u8 = 1;

/// A cursor over bytes being decoded.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.0.len() < len {
            return None;
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// An event's hashes under one filter's key (see [`SeenEvents::probe`]): an append hashes its
/// event once for the caller's question and the writer's insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventProbe((u64, u64));

impl EventProbe {
    /// A hash of the event for in-memory tables (the writer's recent events): keyed as the
    /// probe is, so callers cannot choose event ids that collide in it.
    pub(crate) fn table_hash(self) -> u64 {
        self.0.0
    }
}

/// The Bloom filter of every event id in the log (see the module docs).
pub struct SeenEvents {
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Keys the probe hash (keyed BLAKE3), so inputs cannot be chosen to collide without it;
    /// kept with the filter in the open snapshot, whose probes must hash the same.
    key: [u8; 32],
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

/// Probe inputs (tenant, separator, event id) up to this size are hashed from one stack buffer.
const PROBE_INPUT_INLINE_BYTES: usize = 256;

impl SeenEvents {
    /// An empty filter.
    #[must_use]
    pub fn new() -> SeenEvents {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        SeenEvents::with_key(key)
    }

    /// An empty filter whose probes are keyed with `key`.
    #[must_use]
    pub fn with_key(key: [u8; 32]) -> SeenEvents {
        SeenEvents {
            blocks: RwLock::new(vec![Arc::new(Block::new())]),
            key,
        }
    }

    fn hashes(&self, tenant: &str, event_id: &str) -> (u64, u64) {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        // A tenant id is UTF-8, which never holds 0xff: the pair is unambiguous. Typical ids
        // fit a stack buffer: one update instead of three (each has a fixed cost beside the
        // one compression), the same bytes hashed.
        let mut input = [0u8; PROBE_INPUT_INLINE_BYTES];
        let len = tenant.len() + 1 + event_id.len();
        if let Some(buf) = input.get_mut(..len) {
            buf[..tenant.len()].copy_from_slice(tenant.as_bytes());
            buf[tenant.len()] = 0xff;
            buf[tenant.len() + 1..].copy_from_slice(event_id.as_bytes());
            hasher.update(buf);
        } else {
            hasher.update(tenant.as_bytes());
            hasher.update(&[0xff]);
            hasher.update(event_id.as_bytes());
        }
        // The first bytes of BLAKE3's extendable output are its 32-byte hash: `finalize`
        // gives the same 16 bytes as reading them from `finalize_xof` (which the filters
        // in existing snapshots were built with) without the output reader's extra work.
        let out = hasher.finalize();
        let (first, rest) = out.as_bytes().split_at(8);
        let second = &rest[..8];
        let h1 = u64::from_le_bytes(first.try_into().unwrap_or_default());
        let h2 = u64::from_le_bytes(second.try_into().unwrap_or_default());
        (h1, h2)
    }

    /// The filter's bytes (format in `docs/design.md`, "Open snapshot"): the probe key, then
    /// per block its event count and its words: dense, or for the last block as (index, word)
    /// pairs when that is shorter.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let blocks = self.blocks.read().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&(blocks.len() as u64).to_le_bytes());
        let last = blocks.len().saturating_sub(1);
        for (i, block) in blocks.iter().enumerate() {
            block.encode(&mut out, i == last);
        }
        out
    }

    /// Reads what [`SeenEvents::to_bytes`] wrote; `None` when the bytes are not such a filter.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<SeenEvents> {
        let mut input = Input(bytes);
        let key: [u8; 32] = input.take(32)?.try_into().ok()?;
        let count = input.u64()?;
        // Every block but the last is dense, as many bytes as the memory it takes: the memory
        // a filter can ask for is bounded by its length (plus one block).
        if count == 0 || count > 1 + (bytes.len() / DENSE_BLOCK_BYTES) as u64 {
            return None;
        }
        let mut blocks = Vec::new();
        for i in 0..count {
            blocks.push(Arc::new(Block::decode(&mut input, i + 1 == count)?));
        }
        input.0.is_empty().then(|| SeenEvents {
            blocks: RwLock::new(blocks),
            key,
        })
    }

    /// The probe of an event: hashed once, then asked ([`SeenEvents::may_contain_probe`]) and
    /// added ([`SeenEvents::insert_probe`]) without hashing again. Valid only for this filter
    /// (its key).
    #[must_use]
    pub fn probe(&self, tenant: &str, event_id: &str) -> EventProbe {
        EventProbe(self.hashes(tenant, event_id))
    }

    /// Adds an event.
    pub fn insert(&self, tenant: &str, event_id: &str) {
        self.insert_probe(self.probe(tenant, event_id));
    }

    /// Adds the event `probe` was made for by [`SeenEvents::probe`] of this filter.
    pub fn insert_probe(&self, EventProbe(hashes): EventProbe) {
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

    /// Reads, and changes nothing in, the line of the newest block that each probe's insert
    /// would set bits in. The writer calls it on the next receipts of a batch before inserting
    /// their probes one by one: these loads are independent, so their cache misses overlap,
    /// where each insert between two receipts' writes waited for its own (one miss per insert
    /// was ~9 % of the writer's samples in a perf profile of batched ingest). Touching a line
    /// the insert then does not use (the block filled up meanwhile) only wastes the load.
    pub fn touch_probes(&self, probes: impl Iterator<Item = EventProbe>) {
        let last = {
            let blocks = self.blocks.read().unwrap_or_else(PoisonError::into_inner);
            blocks.last().map(Arc::clone)
        };
        let Some(block) = last else {
            return;
        };
        let mut folded = 0u64;
        for EventProbe((h1, _)) in probes {
            if let Some(word) = block.line_words(h1).first() {
                folded ^= word.load(Ordering::Relaxed);
            }
        }
        // Keeps the loads: nothing else uses what they read.
        std::hint::black_box(folded);
    }

    /// False when the event was certainly never added.
    #[must_use]
    pub fn may_contain(&self, tenant: &str, event_id: &str) -> bool {
        self.may_contain_probe(self.probe(tenant, event_id))
    }

    /// As [`SeenEvents::may_contain`], for a probe made by [`SeenEvents::probe`] of this filter.
    #[must_use]
    pub fn may_contain_probe(&self, EventProbe(hashes): EventProbe) -> bool {
        let blocks = self.blocks.read().unwrap_or_else(PoisonError::into_inner);
        blocks.iter().any(|block| block.may_contain(hashes))
    }
}

#[cfg(test)]
mod tests {
    use super::SeenEvents;

    /// The probe as filters in existing open snapshots were built: three updates, the first
    /// 16 bytes of the extendable output.
    fn xof_hashes(key: &[u8; 32], tenant: &str, event_id: &str) -> (u64, u64) {
        let mut hasher = blake3::Hasher::new_keyed(key);
        hasher.update(tenant.as_bytes());
        hasher.update(&[0xff]);
        hasher.update(event_id.as_bytes());
        let mut out = [0u8; 16];
        hasher.finalize_xof().fill(&mut out);
        let (first, second) = out.split_at(8);
        (
            u64::from_le_bytes(first.try_into().unwrap_or_default()),
            u64::from_le_bytes(second.try_into().unwrap_or_default()),
        )
    }

    #[test]
    fn probes_hash_as_the_filters_in_existing_snapshots_do() {
        let key = [7u8; 32];
        let filter = SeenEvents::with_key(key);
        let long = "e".repeat(400);
        for (tenant, event_id) in [("acme", "evt-1"), ("", ""), ("t", long.as_str())] {
            assert_eq!(
                filter.hashes(tenant, event_id),
                xof_hashes(&key, tenant, event_id),
                "{tenant} {}",
                event_id.len()
            );
        }
    }

    #[test]
    fn touching_probes_changes_nothing() {
        let filter = SeenEvents::with_key([3u8; 32]);
        for i in 0..1000 {
            filter.insert("acme", &format!("in-{i}"));
        }
        let before = filter.to_bytes();
        let probes: Vec<_> = (0..5000)
            .map(|i| filter.probe("acme", &format!("out-{i}")))
            .collect();
        filter.touch_probes(probes.iter().copied());
        assert_eq!(filter.to_bytes(), before);
        assert!((0..1000).all(|i| filter.may_contain("acme", &format!("in-{i}"))));
        let false_positives = probes
            .iter()
            .filter(|probe| filter.may_contain_probe(**probe))
            .count();
        assert!(false_positives < 50, "{false_positives} of 5000");
    }
}
