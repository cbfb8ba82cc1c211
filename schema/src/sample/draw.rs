//! The seeded randomness every record is drawn from, and the stable hashes that derive seeds,
//! offsets and codes.
//!
//! Why on its own: determinism rests here. A record's [`Draw`] is one ChaCha8 stream, and the
//! generator's output is a function of the order and kind of the draws made from it; keeping
//! the few draw operations in one place makes that order easy to keep when the rest moves.
//!
//! What it may not touch: vocabulary or record types. It knows numbers and slices only, and its
//! draws must stay exactly as they are (`below`, `range`, `unit`, `chance`, `pick`, `weighted`)
//! or every sample record changes.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// The seeded stream of one record, with the few draws the generator needs.
pub(super) struct Draw(pub(super) ChaCha8Rng);

impl Draw {
    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    /// Uniform in `lo..=hi`.
    pub(super) fn range(&mut self, lo: u32, hi: u32) -> u32 {
        self.0.random_range(lo..=hi.max(lo))
    }

    pub(super) fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A word of a vocabulary list: the same draw as [`Draw::pick`].
    pub(super) fn word<'a>(&mut self, items: &'a [String]) -> &'a str {
        self.pick::<String>(items)
    }

    pub(super) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut x = self.range(0, total - 1);
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// FNV-1a: a stable hash of names (node ids, institution names).
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64 finalizer: derives seeds and offsets from a seed or hash.
pub(super) fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
