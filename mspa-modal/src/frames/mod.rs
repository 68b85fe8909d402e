//! Video frames: decoding (PNG, JPEG, WebP, GIF), aspect-preserving resize, centre crop
//! and normalisation to CHW `f32`, one frame or several in parallel.
//!
//! ```no_run
//! use mspa_modal::frames::{FrameConfig, load_frames};
//! let config = FrameConfig::default();
//! let batch = load_frames(&["f0.png", "f1.jpg", "f2.webp"], &config)?;
//! assert_eq!(batch.shape(), [3, 3, 224, 224]);
//! # Ok::<(), mspa_modal::ModalError>(())
//! ```

pub mod decode;
mod integrity;
pub mod preprocess;

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use decode::{MAX_IMAGE_FILE_BYTES, decode_image};
/// The `image` crate, re-exported because [`decode_image`] returns its `RgbImage` (and so
/// that callers can write frames with the same version).
pub use image;
pub use preprocess::{ResizeFilter, preprocess, preprocess_into, scaled_size};

use crate::error::{ModalError, Result};

/// ImageNet channel means (RGB), the default normalisation.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB), the default normalisation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How frames become model input. Defaults: 224 x 224 crops of images whose shorter side
/// was scaled to 224, bilinear (`Triangle`) resizing, ImageNet normalisation, inputs up to
/// 16384 pixels a side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrameConfig {
    /// Side of the square output in pixels (default 224).
    pub size: u32,
    /// The shorter side is scaled to this before cropping; `None` means `size`
    /// (default `None`; 256 with `size` 224 is the classic ImageNet evaluation recipe).
    pub shorter_side: Option<u32>,
    /// Per-channel mean subtracted after scaling to `[0, 1]` (default ImageNet).
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by (default ImageNet).
    pub std: [f32; 3],
    /// Resize filter (default [`ResizeFilter::Triangle`]).
    pub filter: ResizeFilter,
    /// Larger inputs are refused as decompression bombs (default 16384).
    pub max_side: u32,
}

impl Default for FrameConfig {
    fn default() -> Self {
        FrameConfig {
            size: 224,
            shorter_side: None,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            filter: ResizeFilter::Triangle,
            max_side: 16_384,
        }
    }
}

fn config_error(field: &str, message: String) -> ModalError {
    ModalError::Config {
        field: field.to_string(),
        message,
    }
}

impl FrameConfig {
    /// Checks every field; the error names it.
    ///
    /// ```
    /// use mspa_modal::frames::FrameConfig;
    /// let bad = FrameConfig { std: [0.2, 0.0, 0.2], ..FrameConfig::default() };
    /// assert!(bad.validate().unwrap_err().to_string().contains("std"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        if !(1..=8192).contains(&self.size) {
            return Err(config_error(
                "size",
                format!("must be in [1, 8192], got {}", self.size),
            ));
        }
        if let Some(s) = self.shorter_side
            && !(self.size..=16_384).contains(&s)
        {
            return Err(config_error(
                "shorter_side",
                format!("must be in [size = {}, 16384], got {s}", self.size),
            ));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(config_error(
                "mean",
                format!("must be finite, got {:?}", self.mean),
            ));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(config_error(
                "std",
                format!("must be finite and positive, got {:?}", self.std),
            ));
        }
        if self.max_side == 0 {
            return Err(config_error("max_side", "must be positive".into()));
        }
        Ok(())
    }

    /// Floats in one preprocessed frame (`3 * size * size`).
    pub fn frame_len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }
}

/// Several preprocessed frames, `[n, 3, height, width]` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameBatch {
    /// Number of frames.
    pub n: usize,
    /// Height of each frame.
    pub height: usize,
    /// Width of each frame.
    pub width: usize,
    /// The values, frame after frame, each CHW.
    pub data: Vec<f32>,
}

impl FrameBatch {
    /// `[n, 3, height, width]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.n, 3, self.height, self.width]
    }

    /// Frame `i` as a CHW slice.
    ///
    /// # Panics
    /// If `i >= n`.
    pub fn frame(&self, i: usize) -> &[f32] {
        let len = 3 * self.height * self.width;
        &self.data[i * len..(i + 1) * len]
    }
}

/// Decodes and preprocesses one image file into a `[3, size, size]` CHW buffer.
///
/// ```no_run
/// use mspa_modal::frames::{FrameConfig, load_frame};
/// let chw = load_frame("frame0.jpg", &FrameConfig::default())?;
/// assert_eq!(chw.len(), 3 * 224 * 224);
/// # Ok::<(), mspa_modal::ModalError>(())
/// ```
pub fn load_frame(path: impl AsRef<Path>, config: &FrameConfig) -> Result<Vec<f32>> {
    config.validate()?;
    let image = decode_image(path, config.max_side)?;
    Ok(preprocess(&image, config))
}

/// Decodes and preprocesses several image files in parallel into one
/// `[n, 3, size, size]` batch. The first failing file (in `paths` order) is the error;
/// see [`load_frames_each`] to keep the frames that did decode.
pub fn load_frames<P: AsRef<Path> + Sync>(paths: &[P], config: &FrameConfig) -> Result<FrameBatch> {
    config.validate()?;
    let len = config.frame_len();
    let mut data = vec![0.0f32; paths.len() * len];
    let results: Vec<Result<()>> = data
        .par_chunks_mut(len.max(1))
        .zip(paths.par_iter())
        .map(|(out, path)| {
            let image = decode_image(path, config.max_side)?;
            preprocess_into(&image, config, out);
            Ok(())
        })
        .collect();
    results.into_iter().collect::<Result<()>>()?;
    Ok(FrameBatch {
        n: paths.len(),
        height: config.size as usize,
        width: config.size as usize,
        data,
    })
}

/// Decodes and preprocesses several image files in parallel; one CHW buffer or error per
/// file, in order. The outer error is an invalid `config`.
pub fn load_frames_each<P: AsRef<Path> + Sync>(
    paths: &[P],
    config: &FrameConfig,
) -> Result<Vec<Result<Vec<f32>>>> {
    config.validate()?;
    Ok(paths
        .par_iter()
        .map(|p| {
            let image = decode_image(p, config.max_side)?;
            Ok(preprocess(&image, config))
        })
        .collect())
}
