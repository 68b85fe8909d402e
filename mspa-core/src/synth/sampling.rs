//! Seeding and the few distributions the world needs.
//!
//! Every entity (an author's attributes, an author's media, a user) draws from its own
//! [`ChaCha8Rng`], seeded from the world seed, a domain tag and the entity's index through
//! [`sub_seed`]. So the order in which rayon runs the entities never changes a number.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::rng::mix64;

/// Domain tag for an author's latent attributes, popularity and text.
pub(crate) const DOMAIN_AUTHOR: u64 = 0xA07A_0001;
/// Domain tag for an author's frames.
pub(crate) const DOMAIN_FRAMES: u64 = 0x3ED1_A002;
/// Domain tag for an author's audio clip.
pub(crate) const DOMAIN_AUDIO: u64 = 0xA0D1_0004;
/// Domain tag for an author's name, title and description.
pub(crate) const DOMAIN_TEXT: u64 = 0x7E47_0005;
/// Domain tag for a user's latent preferences and tips.
pub(crate) const DOMAIN_USER: u64 = 0x05E2_0003;

/// The seed of entity `index` in `domain` of the world seeded with `seed`.
pub(crate) fn sub_seed(seed: u64, domain: u64, index: u64) -> u64 {
    mix64(mix64(seed ^ mix64(domain)) ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

/// The generator of entity `index` in `domain`.
pub(crate) fn entity_rng(seed: u64, domain: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(sub_seed(seed, domain, index))
}

/// A uniform number in `[0, 1)`.
pub(crate) fn unit(rng: &mut ChaCha8Rng) -> f64 {
    rng.random::<f64>()
}

/// A uniform number in `[lo, hi)`.
pub(crate) fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unit(rng)
}

/// A standard normal number (Box-Muller, one of the pair).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - unit(rng);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Poisson count with mean `lambda` (Knuth below 30, a rounded normal above).
pub(crate) fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda < 30.0 {
        let limit = (-lambda).exp();
        let mut k = 0u64;
        let mut p = unit(rng);
        while p > limit {
            k += 1;
            p *= unit(rng);
        }
        k
    } else {
        let x = lambda + lambda.sqrt() * normal(rng);
        x.round().max(0.0) as u64
    }
}

/// An index drawn with probability proportional to `weights` (non-negative, not all zero).
pub(crate) fn categorical(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = unit(rng) * total;
    for (i, &w) in weights.iter().enumerate() {
        if u < w {
            return i;
        }
        u -= w;
    }
    // Rounding can leave u a hair above the last weight: take the last non-zero one.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

/// An index in `0..n` (n >= 1).
pub(crate) fn index(rng: &mut ChaCha8Rng, n: usize) -> usize {
    rng.random_range(0..n)
}

/// A random unit vector of dimension `dims` (empty when `dims == 0`).
pub(crate) fn unit_vector(rng: &mut ChaCha8Rng, dims: usize) -> Vec<f64> {
    if dims == 0 {
        return Vec::new();
    }
    loop {
        let v: Vec<f64> = (0..dims).map(|_| normal(rng)).collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-9 {
            return v.iter().map(|x| round6(x / norm)).collect();
        }
    }
}

/// Rounds to 6 decimals, so stored latents read cleanly and survive JSON exactly.
pub(crate) fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synth_sub_seeds_differ_and_repeat() {
        assert_eq!(sub_seed(1, DOMAIN_USER, 5), sub_seed(1, DOMAIN_USER, 5));
        assert_ne!(sub_seed(1, DOMAIN_USER, 5), sub_seed(1, DOMAIN_USER, 6));
        assert_ne!(sub_seed(1, DOMAIN_USER, 5), sub_seed(2, DOMAIN_USER, 5));
        assert_ne!(sub_seed(1, DOMAIN_USER, 5), sub_seed(1, DOMAIN_AUTHOR, 5));
    }

    #[test]
    fn synth_poisson_and_normal_have_the_right_moments() {
        let mut rng = entity_rng(7, 1, 1);
        let n = 20_000;
        for lambda in [0.5, 4.0, 50.0] {
            let mean = (0..n)
                .map(|_| poisson(&mut rng, lambda) as f64)
                .sum::<f64>()
                / n as f64;
            assert!(
                (mean - lambda).abs() < 0.05 * lambda + 0.05,
                "{lambda}: {mean}"
            );
        }
        let xs: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }

    #[test]
    fn synth_categorical_follows_weights() {
        let mut rng = entity_rng(3, 2, 2);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[categorical(&mut rng, &[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        let ratio = counts[2] as f64 / counts[0] as f64;
        assert!((ratio - 3.0).abs() < 0.25, "{ratio}");
    }
}
