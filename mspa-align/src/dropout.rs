//! Inverted-dropout masks drawn on the host from a seeded stream of the model's own.
//!
//! Burn's `Dropout` draws from the backend's one generator, which models trained side by
//! side share: to get the same numbers as alone, each would have to hold a global lock
//! through its whole forward pass. A model that draws its masks here, from a stream
//! seeded by its training seed and the batch, needs no lock, and its masks do not depend
//! on what runs beside it or on how the batch is split into chunks.

use crate::data::{Example, SplitMix64};
use burn::tensor::{Device, Tensor, TensorData};

/// A stream of inverted-dropout masks: each element is `0` with probability `1 - keep`,
/// else `1 / keep`.
#[derive(Clone, Debug)]
pub struct DropoutMasks {
    rng: SplitMix64,
    keep: f64,
}

impl DropoutMasks {
    /// Masks keeping each element with probability `keep`, from the stream `seed`.
    pub fn new(seed: u64, keep: f64) -> Self {
        DropoutMasks {
            rng: SplitMix64::new(seed),
            keep,
        }
    }

    /// Masks for one training batch: the stream of `seed` stirred by each example's user
    /// and time, so every batch of every epoch draws its own masks, the same on every run.
    pub fn for_batch(seed: u64, batch: &[&Example], keep: f64) -> Self {
        let mut masks = DropoutMasks::new(seed, keep);
        for e in batch {
            masks.rng.state ^= (u64::from(e.user.0) << 32) ^ (e.at_ms as u64);
            masks.rng.next_u64();
        }
        masks
    }

    /// The next mask of `shape`: `0` or `1 / keep` per element, four elements per draw
    /// of the stream (16 bits each).
    pub fn draw<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        let n = shape.iter().product::<usize>();
        let scale = (1.0 / self.keep) as f32;
        let threshold = (self.keep * 65_536.0) as u64;
        // A select, not a branch: at the usual rates (keep 0.8) a branch per element
        // would mispredict about one time in five.
        let lane = |bits: u64, k: usize| {
            if (bits >> (16 * k)) & 0xFFFF < threshold {
                scale
            } else {
                0.0
            }
        };
        let mut data = Vec::with_capacity(n);
        for _ in 0..n / 4 {
            let bits = self.rng.next_u64();
            data.extend_from_slice(&[lane(bits, 0), lane(bits, 1), lane(bits, 2), lane(bits, 3)]);
        }
        if n % 4 > 0 {
            let bits = self.rng.next_u64();
            data.extend((0..n % 4).map(|k| lane(bits, k)));
        }
        Tensor::from_data(TensorData::new(data, shape), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn masks_keep_the_share_asked_scaled_and_repeat_with_the_seed() {
        let device = Device::flex();
        let mask = values(DropoutMasks::new(3, 0.8).draw([50, 41], &device));
        assert_eq!(mask.len(), 50 * 41);
        assert!(mask.iter().all(|&v| v == 0.0 || (v - 1.25).abs() < 1e-6));
        let kept = mask.iter().filter(|&&v| v > 0.0).count() as f64 / mask.len() as f64;
        assert!((kept - 0.8).abs() < 0.03, "kept {kept}");
        assert_eq!(
            mask,
            values(DropoutMasks::new(3, 0.8).draw([50, 41], &device))
        );
        let mut stream = DropoutMasks::new(3, 0.8);
        let first = values(stream.draw([50, 41], &device));
        assert_ne!(
            first,
            values(stream.draw([50, 41], &device)),
            "the stream moves on"
        );
        assert_ne!(
            mask,
            values(DropoutMasks::new(4, 0.8).draw([50, 41], &device))
        );
    }

    #[test]
    fn each_word_of_the_stream_gives_four_elements_sixteen_bits_each_low_bits_first() {
        // The layout the trained models' numbers depend on: a change here changes every
        // model trained with dropout.
        let device = Device::flex();
        let mask = values(DropoutMasks::new(11, 0.5).draw([7], &device));
        let mut rng = SplitMix64::new(11);
        let (a, b) = (rng.next_u64(), rng.next_u64());
        let expected: Vec<f32> = (0..7)
            .map(|i| {
                let bits = if i < 4 { a } else { b };
                if (bits >> (16 * (i % 4))) & 0xFFFF < 32_768 {
                    2.0
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(mask, expected);
    }
}
