//! Convolutional encoders for frames and log-mel spectrograms.
//!
//! Both use group normalisation rather than batch normalisation, so an author's vector
//! never depends on which other authors share its batch, and extraction gives the same
//! numbers at any batch size.

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv2d};
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};

pub mod audio;
pub mod visual;

pub use audio::{AudioEncoder, AudioEncoderConfig};
pub use visual::{VisualEncoder, VisualEncoderConfig};

/// Number of groups for a group norm over `channels`: the largest of 8, 4, 2, 1 that
/// divides it.
pub(crate) fn norm_groups(channels: usize) -> usize {
    [8, 4, 2, 1]
        .into_iter()
        .find(|g| channels.is_multiple_of(*g))
        .unwrap_or(1)
}

/// A convolution from `D`-dimensional tensors to `D`-dimensional tensors.
pub trait Convolution<const D: usize>: Module {
    /// Applies the convolution.
    fn convolve(&self, x: Tensor<D>) -> Tensor<D>;
}

impl Convolution<3> for Conv1d {
    fn convolve(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward(x)
    }
}

impl Convolution<4> for Conv2d {
    fn convolve(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward(x)
    }
}

/// One encoder block: a (strided) convolution, group norm, GELU.
#[derive(Module, Debug)]
pub struct ConvBlock<C: Module> {
    conv: C,
    norm: GroupNorm,
}

impl<C: Module> ConvBlock<C> {
    /// Applies the block.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D>
    where
        C: Convolution<D>,
    {
        gelu(self.norm.forward(self.conv.convolve(x)))
    }
}

/// Builds `depth` blocks from `c_in` input channels, block `i` having `channels(i)` output
/// channels and the convolution `conv(c_in, c_out)`; returns them with the channels of
/// the last block's output (`c_in` when `depth` is 0).
pub(crate) fn conv_stack<C: Module>(
    depth: usize,
    mut c_in: usize,
    channels: impl Fn(usize) -> usize,
    conv: impl Fn(usize, usize) -> C,
    device: &Device,
) -> (Vec<ConvBlock<C>>, usize) {
    let mut blocks = Vec::with_capacity(depth);
    for i in 0..depth {
        let c_out = channels(i);
        blocks.push(ConvBlock {
            conv: conv(c_in, c_out),
            norm: GroupNormConfig::new(norm_groups(c_out), c_out).init(device),
        });
        c_in = c_out;
    }
    (blocks, c_in)
}

/// Applies `blocks` in order.
pub(crate) fn forward_stack<C: Convolution<D>, const D: usize>(
    blocks: &[ConvBlock<C>],
    x: Tensor<D>,
) -> Tensor<D> {
    blocks.iter().fold(x, |x, block| block.forward(x))
}
