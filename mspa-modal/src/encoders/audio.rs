//! The audio encoder: a 1-D CNN over the time axis of a log-mel spectrogram.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig1d};
use burn::tensor::{Device, Tensor};

use super::{ConvBlock, conv_stack, forward_stack};

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
pub type ConvBlock1d = ConvBlock<Conv1d>;

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
        let conv = |c_in, c_out| {
            Conv1dConfig::new(c_in, c_out, 5)
                .with_stride(2)
                .with_padding(PaddingConfig1d::Explicit(2, 2))
                .init(device)
        };
        let (blocks, c_in) = conv_stack(self.depth, self.n_mels, |_| self.width, conv, device);
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
        let x = forward_stack(&self.blocks, mel);
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
        let config = AudioEncoderConfig {
            n_mels: 8,
            width: 8,
            depth: 3,
            d_output: 5,
        };
        let enc = config.init(&device);
        for frames in [1, 7, 101] {
            let mel = Tensor::<3>::ones([2, 8, frames], &device);
            assert_eq!(enc.forward(mel).dims(), [2, 5]);
        }
    }
}
