//! Seeded randomness shared by every crate: the SplitMix64 mixer and stream.
//!
//! The synthetic world (feature `synth`) draws through `rand_chacha`; training loops,
//! shuffles, parameter initialisation and hashed splits use [`SplitMix64`], whose whole
//! state is one `u64` (saved in checkpoints, so a resumed run continues the same stream).
//!
//! ```
//! use mspa_core::rng::SplitMix64;
//! let mut a = SplitMix64::new(7);
//! let mut b = SplitMix64::new(7);
//! assert_eq!(a.next_u64(), b.next_u64());
//! let mut v: Vec<usize> = (0..10).collect();
//! a.shuffle(&mut v);
//! v.sort();
//! assert_eq!(v, (0..10).collect::<Vec<_>>());
//! ```

use serde::{Deserialize, Serialize};

/// The golden-ratio increment of SplitMix64.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finaliser: a fast, well-mixing bijection of 64-bit words (for hashing
/// seeds and ids into independent streams).
pub fn mix64(z: u64) -> u64 {
    finalise(z.wrapping_add(GOLDEN))
}

/// The output function of SplitMix64.
fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of a string: a stable hash across platforms and Rust versions.
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// A uniform number in `[0, 1)` from 64 random bits.
pub fn unit_f64(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A small, fast, seeded pseudo-random stream (splitmix64). Deterministic across
/// platforms; its whole state is one `u64`, so it is saved in checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitMix64 {
    /// The current state.
    pub state: u64,
}

impl SplitMix64 {
    /// A stream from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64 {
            state: seed ^ 0x6A09_E667_F3BC_C909,
        }
    }

    /// A stream that starts from the given raw state (no seed scrambling).
    pub fn from_state(state: u64) -> Self {
        SplitMix64 { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        finalise(self.state)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        unit_f64(self.next_u64())
    }

    /// Uniform in `0..=i` by the modulo of the next word (the shuffles of the composer's
    /// epochs were drawn so; kept for their reproducibility).
    pub fn modulo(&mut self, i: usize) -> usize {
        (self.next_u64() % (i as u64 + 1)) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below 2^-32 for the
    /// sizes used here).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix64_is_the_first_output_of_a_stream_at_that_state() {
        let mut s = SplitMix64::from_state(12345);
        assert_eq!(s.next_u64(), mix64(12345));
    }

    #[test]
    fn below_and_unit_stay_in_range() {
        let mut s = SplitMix64::new(1);
        for n in 1..50 {
            assert!(s.below(n) < n);
            assert!(s.modulo(n) <= n);
            let u = s.next_f64();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
