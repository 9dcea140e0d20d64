//! Deterministic payloads, so that every side of a comparison writes the same bytes.

/// A pool of pseudo-random payloads of one size, read in windows that wrap around.
#[derive(Debug, Clone)]
pub struct Payloads {
    records: Vec<Vec<u8>>,
}

/// `SplitMix64`: a tiny, well-mixed generator; the payload bytes only need to be incompressible
/// and reproducible.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` pseudo-random bytes from `seed`.
#[must_use]
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

impl Payloads {
    /// `count` payloads of `len` bytes each (at least one payload).
    #[must_use]
    pub fn new(count: usize, len: usize, seed: u64) -> Payloads {
        let records = (0..count.max(1) as u64)
            .map(|i| bytes(len, seed ^ i.wrapping_mul(0xA076_1D64_78BD_642F)))
            .collect();
        Payloads { records }
    }

    /// Number of distinct payloads in the pool.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the pool is empty (never: `new` makes at least one payload).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// `n` payloads starting at `start`, wrapping around the pool.
    pub fn window(&self, start: usize, n: usize) -> impl Iterator<Item = &[u8]> + Clone {
        let len = self.records.len();
        (0..n).map(move |i| self.records[(start + i) % len].as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_reproducible_and_distinct() {
        let a = Payloads::new(8, 512, 7);
        let b = Payloads::new(8, 512, 7);
        let first: Vec<&[u8]> = a.window(0, 8).collect();
        let again: Vec<&[u8]> = b.window(0, 8).collect();
        assert_eq!(first, again);
        assert!(first.iter().all(|p| p.len() == 512));
        assert_ne!(first[0], first[1]);
        assert_eq!(a.window(6, 4).nth(2), Some(first[0]));
    }
}
