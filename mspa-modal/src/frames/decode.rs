//! Decoding image files to 8-bit RGB with the `image` crate.
//!
//! Formats: PNG, JPEG, WebP and GIF (the first frame). The format is recognised from the
//! content first and the extension second. Grey images are replicated to three channels;
//! an alpha channel is dropped (as Pillow's `convert("RGB")` does); 16-bit images are
//! scaled to 8 bits.

use std::path::Path;

use image::{ImageReader, Limits, RgbImage};

use crate::error::{ModalError, Result, catch_decoder_panic};

/// Decodes `path` to RGB. Images wider or taller than `max_side` pixels, and images whose
/// decoding would allocate more than 512 MiB, are refused (decompression bombs). Every
/// failure is a [`ModalError`] naming the file; a panic inside the decoder is caught and
/// reported as [`ModalError::Decode`].
///
/// ```no_run
/// let img = mspa_modal::frames::decode_image("frame0.png", 16_384)?;
/// println!("{}x{}", img.width(), img.height());
/// # Ok::<(), mspa_modal::ModalError>(())
/// ```
pub fn decode_image(path: impl AsRef<Path>, max_side: u32) -> Result<RgbImage> {
    let path = path.as_ref();
    catch_decoder_panic(path, || decode_inner(path, max_side))
}

fn decode_inner(path: &Path, max_side: u32) -> Result<RgbImage> {
    let mut reader = ImageReader::open(path)
        .map_err(|e| ModalError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| ModalError::io(path, e))?;
    if reader.format().is_none() {
        return Err(ModalError::decode(
            path,
            "not a recognised image format (expected PNG, JPEG, WebP or GIF)",
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::IoError(io)
            if !matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            ModalError::io(path, io)
        }
        other => ModalError::decode(path, other.to_string()),
    })?;
    if image.width() == 0 || image.height() == 0 {
        return Err(ModalError::decode(path, "image has no pixels"));
    }
    Ok(image.into_rgb8())
}
