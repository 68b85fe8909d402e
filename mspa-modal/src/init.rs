//! Seeded parameter initialisation for every Burn model of the workspace.
//!
//! Burn's parameters are lazy and draw from the device's shared generator, so two models
//! built in different threads (or after another model) would get different weights from
//! the same seed. [`SeededInit`] draws every value from its own [`SplitMix64`] stream
//! instead: the same seed gives the same weights on every device and in every thread.
//!
//! ```
//! use burn::tensor::Device;
//! use mspa_modal::init::SeededInit;
//! let device = Device::flex();
//! let a = SeededInit::new(7).linear(4, 3, true, 1.0, &device);
//! let b = SeededInit::new(7).linear(4, 3, true, 1.0, &device);
//! assert_eq!(a.weight.val().into_data(), b.weight.val().into_data());
//! ```

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::tensor::{Device, Tensor, TensorData};
use mspa_core::rng::SplitMix64;

/// A seeded source of initial parameter values.
#[derive(Clone, Debug)]
pub struct SeededInit {
    rng: SplitMix64,
}

impl SeededInit {
    /// A source for `seed`.
    pub fn new(seed: u64) -> Self {
        SeededInit {
            rng: SplitMix64::new(seed ^ 0x5EED_1417),
        }
    }

    /// A source for `seed` whose stream `salt` keeps apart from the other modules built
    /// from the same seed.
    pub fn salted(seed: u64, salt: u64) -> Self {
        SeededInit {
            rng: SplitMix64::from_state(
                seed ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0x2545_F491_4F6C_DD1D,
            ),
        }
    }

    /// `n` values from `N(0, std^2)`.
    fn normal_values(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n).map(|_| (self.rng.normal() * std) as f32).collect()
    }

    /// `n` values from `U(-bound, bound)`.
    fn uniform_values(&mut self, n: usize, bound: f64) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.rng.next_f64() * 2.0 - 1.0) * bound) as f32)
            .collect()
    }

    /// A free parameter of the given shape drawn from `N(0, std^2)` (std 0 gives zeros).
    pub fn param<const D: usize>(
        &mut self,
        shape: [usize; D],
        std: f64,
        device: &Device,
    ) -> Param<Tensor<D>> {
        let n = shape.iter().product();
        Param::from_data(TensorData::new(self.normal_values(n, std), shape), device)
    }

    /// An embedding table `[n, dim]` drawn from `N(0, std^2)`.
    pub fn embedding(&mut self, n: usize, dim: usize, std: f64, device: &Device) -> Embedding {
        Embedding {
            weight: self.param([n, dim], std, device),
        }
    }

    /// A linear layer `[d_in] -> [d_out]` with weights (and bias) from
    /// `U(-1/sqrt(d_in), 1/sqrt(d_in))`, the default of Burn's and PyTorch's `Linear`;
    /// `bias: false` leaves the bias out and `scale` multiplies the bound (0 gives a zero
    /// layer).
    pub fn linear(
        &mut self,
        d_in: usize,
        d_out: usize,
        bias: bool,
        scale: f64,
        device: &Device,
    ) -> Linear {
        let bound = scale / (d_in.max(1) as f64).sqrt();
        let weight = Param::from_data(
            TensorData::new(self.uniform_values(d_in * d_out, bound), [d_in, d_out]),
            device,
        );
        let bias = bias.then(|| {
            Param::from_data(
                TensorData::new(self.uniform_values(d_out, bound), [d_out]),
                device,
            )
        });
        Linear { weight, bias }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salts_give_different_streams_and_std_zero_gives_zeros() {
        let device = Device::flex();
        let a = SeededInit::salted(1, 1).param([8], 1.0, &device).val();
        let b = SeededInit::salted(1, 2).param([8], 1.0, &device).val();
        assert_ne!(a.into_data(), b.into_data());
        let z = SeededInit::new(3).param([2, 3], 0.0, &device).val();
        assert_eq!(z.into_data().try_to_vec::<f32>().unwrap(), vec![0.0; 6]);
    }
}
