//! The audio encoder: a 1-D CNN over the time axis of a log-mel spectrogram.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig1d};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};

use super::norm_groups;

/// Configuration of an [`AudioEncoder`].
#[derive(Config, Debug)]
pub struct AudioEncoderConfig {
    /// Mel bins of the input spectrogram (its channels).
    #[config(default = 64)]
    pub n_mels: usize,
    /// Channels of every conv block.
    #[config(default = 64)]
    pub width: usize,
    /// Number of conv blocks (each halves the time axis).
    #[config(default = 4)]
    pub depth: usize,
    /// Size of the output vector.
    #[config(default = 128)]
    pub d_output: usize,
}

/// One block: kernel-5 convolution over time with stride 2, group norm, GELU.
#[derive(Module, Debug)]
pub struct ConvBlock1d {
    conv: Conv1d,
    norm: GroupNorm,
}

impl ConvBlock1d {
    fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        ConvBlock1d {
            conv: Conv1dConfig::new(c_in, c_out, 5)
                .with_stride(2)
                .with_padding(PaddingConfig1d::Explicit(2, 2))
                .init(device),
            norm: GroupNormConfig::new(norm_groups(c_out), c_out).init(device),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        gelu(self.norm.forward(self.conv.forward(x)))
    }
}

/// A CNN that maps a log-mel spectrogram to one vector: `depth` strided conv blocks over
/// time (mel bins as channels), mean and max pooling over time, a linear projection.
#[derive(Module, Debug)]
pub struct AudioEncoder {
    blocks: Vec<ConvBlock1d>,
    head: Linear,
}

impl AudioEncoderConfig {
    /// Builds the encoder with freshly initialised weights.
    ///
    /// ```
    /// use burn::tensor::{Device, Tensor};
    /// use mspa_modal::encoders::AudioEncoderConfig;
    /// let device = Device::flex();
    /// let enc = AudioEncoderConfig::new().with_n_mels(16).with_width(8).with_depth(2).with_d_output(4).init(&device);
    /// let mel = Tensor::<3>::zeros([1, 16, 50], &device);
    /// assert_eq!(enc.forward(mel).dims(), [1, 4]);
    /// ```
    pub fn init(&self, device: &Device) -> AudioEncoder {
        let mut blocks = Vec::with_capacity(self.depth);
        let mut c_in = self.n_mels;
        for _ in 0..self.depth {
            blocks.push(ConvBlock1d::new(c_in, self.width, device));
            c_in = self.width;
        }
        AudioEncoder {
            blocks,
            head: LinearConfig::new(2 * c_in, self.d_output).init(device),
        }
    }
}

impl AudioEncoder {
    /// Encodes spectrograms: `[batch, n_mels, frames]` → `[batch, d_output]`. Clips of
    /// different lengths go in separate calls (or padded with the clip's minimum).
    pub fn forward(&self, mel: Tensor<3>) -> Tensor<2> {
        let mut x = mel;
        for block in &self.blocks {
            x = block.forward(x);
        }
        let [b, c, _] = x.dims();
        let mean = x.clone().mean_dim(2).reshape([b, c]);
        let max = x.max_dim(2).reshape([b, c]);
        self.head.forward(Tensor::cat(vec![mean, max], 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_shape_for_any_length() {
        let device = Device::flex();
        let enc = AudioEncoderConfig::new()
            .with_n_mels(8)
            .with_width(8)
            .with_depth(3)
            .with_d_output(5)
            .init(&device);
        for frames in [1, 7, 101] {
            let mel = Tensor::<3>::ones([2, 8, frames], &device);
            assert_eq!(enc.forward(mel).dims(), [2, 5]);
        }
    }
}
