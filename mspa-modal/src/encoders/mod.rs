//! Convolutional encoders for frames and log-mel spectrograms.
//!
//! Both use group normalisation rather than batch normalisation, so an author's vector
//! never depends on which other authors share its batch, and extraction gives the same
//! numbers at any batch size.

pub mod audio;
pub mod visual;

pub use audio::{AudioEncoder, AudioEncoderConfig};
pub use visual::{VisualEncoder, VisualEncoderConfig};

/// Number of groups for a group norm over `channels`: the largest of 8, 4, 2, 1 that
/// divides it.
pub(crate) fn norm_groups(channels: usize) -> usize {
    [8, 4, 2, 1]
        .into_iter()
        .find(|g| channels % g == 0)
        .unwrap_or(1)
}
