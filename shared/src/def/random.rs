//! Deterministic random parameters, for benchmark models (random weights serve: docs/design.md,
//! "Data"), the built-in demo network and test fixtures.

use super::Requant;
use crate::pack::value_range;
use crate::quant::quantize_multiplier;

/// A small deterministic PRNG (SplitMix64), so that fixtures do not depend on a crate's stream.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform integer in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo + 1) as u64;
        lo + (self.next_u64() % span) as i64
    }

    /// `n` weights spanning the whole signed range of `bits`.
    pub fn weights(&mut self, n: usize, bits: u8) -> Vec<i8> {
        let (lo, hi) = value_range(bits);
        (0..n)
            .map(|_| self.range(lo as i64, hi as i64) as i8)
            .collect()
    }

    /// `n` codes in `0..=levels`.
    pub fn codes(&mut self, n: usize, levels: u8) -> Vec<u8> {
        (0..n).map(|_| self.range(0, levels as i64) as u8).collect()
    }
}

/// Per-channel requantization that maps an accumulator range of about `acc_span` onto
/// `0..=levels`, with a little per-channel variation so that channels are told apart.
pub fn requant_for(rng: &mut Rng, channels: usize, acc_span: f64, levels: u8) -> Vec<Requant> {
    (0..channels)
        .map(|_| {
            let jitter = 0.75 + rng.range(0, 50) as f64 / 100.0;
            let (multiplier, shift) =
                quantize_multiplier(levels as f64 / acc_span.max(1.0) * jitter)
                    .unwrap_or((1 << 30, 0));
            Requant { multiplier, shift }
        })
        .collect()
}
