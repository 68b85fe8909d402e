//! Decoding image files to 8-bit RGB with the `image` crate.
//!
//! Formats: PNG, JPEG, WebP and GIF (the first frame). The format is recognised from the
//! content first and the extension second. Grey images are replicated to three channels;
//! an alpha channel is dropped (as Pillow's `convert("RGB")` does); 16-bit images are
//! scaled to 8 bits.
//!
//! A file cut short or corrupt is an error, never a partly decoded picture: before
//! decoding, the container structure is checked to be complete (JPEG up to its
//! end-of-image marker, PNG up to `IEND`, WebP up to its declared RIFF size, GIF block by
//! block), because some decoders (JPEG) fill what is missing with grey instead of failing.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::{ModalError, Result, catch_decoder_panic};

/// Image files larger than this many bytes (256 MiB) are refused before they are read:
/// no frame the encoders need comes near it, and the whole file is held in memory while
/// it is checked and decoded.
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 << 20;

/// Decodes `path` to RGB. Images wider or taller than `max_side` pixels, images whose
/// decoding would allocate more than 512 MiB (decompression bombs), files larger than
/// [`MAX_IMAGE_FILE_BYTES`], and files cut short (truncated) are refused. Every failure is
/// a [`ModalError`] naming the file; a panic inside the decoder is caught and reported as
/// [`ModalError::Decode`].
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
    let file = std::fs::File::open(path).map_err(|e| ModalError::io(path, e))?;
    let size = file.metadata().map_err(|e| ModalError::io(path, e))?.len();
    if size > MAX_IMAGE_FILE_BYTES {
        return Err(ModalError::decode(
            path,
            format!(
                "file of {size} bytes exceeds the image file size limit \
                 (MAX_IMAGE_FILE_BYTES = {MAX_IMAGE_FILE_BYTES})"
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(|e| ModalError::io(path, e))?;
    // The format from the content first, the extension second (as `ImageReader::open`
    // followed by `with_guessed_format` does).
    let mut reader = ImageReader::new(Cursor::new(&bytes[..]))
        .with_guessed_format()
        .map_err(|e| ModalError::io(path, e))?;
    if reader.format().is_none()
        && let Ok(format) = ImageFormat::from_path(path)
    {
        reader.set_format(format);
    }
    let Some(format) = reader.format() else {
        return Err(ModalError::decode(
            path,
            "not a recognised image format (expected PNG, JPEG, WebP or GIF)",
        ));
    };
    super::integrity::check_complete(format, &bytes)
        .map_err(|why| ModalError::decode(path, why))?;
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
