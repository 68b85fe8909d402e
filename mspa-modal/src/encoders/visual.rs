//! The visual encoder: a small strided CNN over normalised frames.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::{ConvBlock, conv_stack, forward_stack};

/// Configuration of a [`VisualEncoder`].
#[derive(Config, Debug)]
pub struct VisualEncoderConfig {
    /// Input channels (3 for RGB).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Channels of the first block; each later block doubles them, up to `8 × width`.
    #[config(default = 16)]
    pub width: usize,
    /// Number of conv blocks (each halves height and width).
    #[config(default = 4)]
    pub depth: usize,
    /// Size of the output vector.
    #[config(default = 128)]
    pub d_output: usize,
}

/// One block: 3×3 convolution with stride 2, group norm, GELU.
pub type ConvBlock2d = ConvBlock<Conv2d>;

/// A CNN that maps one frame to one vector: `depth` strided conv blocks, global average
/// pooling, a linear projection.
#[derive(Module, Debug)]
pub struct VisualEncoder {
    blocks: Vec<ConvBlock2d>,
    head: Linear,
}

impl VisualEncoderConfig {
    /// Channels of block `i`.
    fn channels(&self, i: usize) -> usize {
        self.width * (1 << i.min(3))
    }

    /// Builds the encoder with freshly initialised weights.
    ///
    /// ```
    /// use burn::tensor::{Device, Tensor};
    /// use mspa_modal::encoders::VisualEncoderConfig;
    /// let device = Device::flex();
    /// let enc = VisualEncoderConfig::new().with_width(4).with_depth(2).with_d_output(8).init(&device);
    /// let frames = Tensor::<4>::zeros([2, 3, 32, 32], &device);
    /// assert_eq!(enc.forward(frames).dims(), [2, 8]);
    /// ```
    pub fn init(&self, device: &Device) -> VisualEncoder {
        let conv = |c_in, c_out| {
            Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let channels = |i| self.channels(i);
        let (blocks, c_in) = conv_stack(self.depth, self.in_channels, channels, conv, device);
        VisualEncoder {
            blocks,
            head: LinearConfig::new(c_in, self.d_output).init(device),
        }
    }
}

impl VisualEncoder {
    /// Encodes frames: `[batch, channels, height, width]` → `[batch, d_output]`.
    pub fn forward(&self, frames: Tensor<4>) -> Tensor<2> {
        let x = forward_stack(&self.blocks, frames);
        let [b, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([b, c]);
        self.head.forward(pooled)
    }

    /// Encodes the frames of one author and averages them:
    /// `[n_frames, channels, height, width]` → `[d_output]`.
    pub fn forward_author(&self, frames: Tensor<4>) -> Tensor<1> {
        let z = self.forward(frames);
        let [_, d] = z.dims();
        z.mean_dim(0).reshape([d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_shape_and_batch_independence() {
        let device = Device::flex();
        let enc = VisualEncoderConfig::new()
            .with_width(4)
            .with_depth(3)
            .with_d_output(6)
            .init(&device);
        let x = Tensor::<4>::random(
            [3, 3, 24, 24],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let all: Vec<f32> = enc
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let one: Vec<f32> = enc
            .forward(x.slice([1..2]))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(all.len(), 18);
        for (a, b) in all[6..12].iter().zip(&one) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
