//! Structural completeness checks on encoded images, run before decoding.
//!
//! The decoders of the `image` crate are lenient with a file cut short: `zune-jpeg` fills
//! the rows it could not read with grey and returns an image, so a JPEG missing most of
//! its bytes would silently become a half-grey frame. These checks walk the container
//! structure (segments, chunks, blocks) without decoding pixels and refuse a file that
//! ends before its structure does. They cost one pass over the bytes.
//!
//! * JPEG: every segment must be whole and the end-of-image marker (`FF D9`) must follow
//!   the last scan; bytes after it are ignored.
//! * PNG: every chunk must be whole up to and including `IEND`.
//! * WebP: the file must hold as many bytes as its RIFF header declares.
//! * GIF: every block must be whole; a file may end without the trailer byte only right
//!   after a complete block, once at least one image is complete.

use image::ImageFormat;

/// Checks that `bytes`, an encoded image of `format`, is not cut short. The error says
/// what is missing, for a message that names the file.
pub(crate) fn check_complete(format: ImageFormat, bytes: &[u8]) -> Result<(), String> {
    match format {
        ImageFormat::Jpeg => jpeg(bytes),
        ImageFormat::Png => png(bytes),
        ImageFormat::WebP => webp(bytes),
        ImageFormat::Gif => gif(bytes),
        _ => Ok(()),
    }
}

fn truncated(what: &str, len: usize, detail: impl std::fmt::Display) -> String {
    format!("truncated {what}: the file ends after {len} bytes, {detail}")
}

fn jpeg(b: &[u8]) -> Result<(), String> {
    let n = b.len();
    if n < 2 || b[0] != 0xFF || b[1] != 0xD8 {
        return Err("not a JPEG: no start-of-image marker".into());
    }
    let cut = |detail: &str| truncated("JPEG", n, format!("{detail} (no end-of-image marker)"));
    let mut i = 2;
    loop {
        // Between segments decoders skip stray bytes; so do we, up to the next marker.
        while i < n && b[i] != 0xFF {
            i += 1;
        }
        // Fill bytes (`FF FF ...`) may precede a marker.
        while i < n && b[i] == 0xFF {
            i += 1;
        }
        if i >= n {
            return Err(cut("between segments"));
        }
        let marker = b[i];
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers: restart markers, TEM, a stray SOI, a stuffed zero.
            0xD0..=0xD8 | 0x01 | 0x00 => continue,
            _ => {}
        }
        if i + 2 > n {
            return Err(cut(&format!("inside the header of segment FF{marker:02X}")));
        }
        let len = usize::from(u16::from_be_bytes([b[i], b[i + 1]]));
        if len < 2 {
            return Err(format!(
                "corrupt JPEG: segment FF{marker:02X} at byte {} has length {len}",
                i - 2
            ));
        }
        if i + len > n {
            return Err(cut(&format!(
                "inside segment FF{marker:02X} ({len} bytes from byte {})",
                i - 2
            )));
        }
        i += len;
        if marker == 0xDA {
            // Entropy-coded data of a scan: runs to the next marker other than a stuffed
            // zero (`FF 00`) or a restart marker (`FF D0`..`FF D7`).
            loop {
                while i < n && b[i] != 0xFF {
                    i += 1;
                }
                if i + 1 >= n {
                    return Err(cut("inside the compressed data of a scan"));
                }
                match b[i + 1] {
                    0x00 | 0xD0..=0xD7 => i += 2,
                    0xFF => i += 1,
                    _ => break,
                }
            }
        }
    }
}

fn png(b: &[u8]) -> Result<(), String> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let n = b.len();
    if n < 8 || b[..8] != SIGNATURE {
        return Err("not a PNG: no signature".into());
    }
    let mut i = 8;
    loop {
        if i + 8 > n {
            return Err(truncated(
                "PNG",
                n,
                "before the IEND chunk (the end of the image)",
            ));
        }
        let len = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let kind = String::from_utf8_lossy(&b[i + 4..i + 8]).into_owned();
        let end = (i + 12).saturating_add(len);
        if end > n {
            return Err(truncated(
                "PNG",
                n,
                format!("inside chunk `{kind}` ({len} data bytes from byte {i})"),
            ));
        }
        if &b[i + 4..i + 8] == b"IEND" {
            return Ok(());
        }
        i = end;
    }
}

fn webp(b: &[u8]) -> Result<(), String> {
    let n = b.len();
    if n < 12 || &b[..4] != b"RIFF" || &b[8..12] != b"WEBP" {
        return Err("not a WebP: no RIFF/WEBP header".into());
    }
    let declared = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    let needed = declared.saturating_add(8);
    if n < needed {
        return Err(truncated(
            "WebP",
            n,
            format!("its RIFF header declares {needed}"),
        ));
    }
    Ok(())
}

fn gif(b: &[u8]) -> Result<(), String> {
    let n = b.len();
    if n < 13 || &b[..3] != b"GIF" {
        return Err("not a GIF: no header".into());
    }
    let table = |packed: u8| -> usize {
        if packed & 0x80 != 0 {
            3 << ((packed & 7) + 1)
        } else {
            0
        }
    };
    let cut = |detail: &str| truncated("GIF", n, detail);
    // Skips the data sub-blocks starting at `i`; the position after the terminator.
    let sub_blocks = |mut i: usize| -> Result<usize, String> {
        loop {
            if i >= n {
                return Err(cut("inside a data block"));
            }
            let size = usize::from(b[i]);
            i += 1;
            if size == 0 {
                return Ok(i);
            }
            i += size;
        }
    };
    let mut i = 13 + table(b[10]);
    let mut images = 0usize;
    loop {
        if i > n {
            return Err(cut("inside the global colour table"));
        }
        if i == n {
            return if images > 0 {
                Ok(())
            } else {
                Err(cut("before the first image"))
            };
        }
        match b[i] {
            0x3B => return Ok(()),
            0x21 => {
                if i + 2 > n {
                    return Err(cut("inside an extension"));
                }
                i = sub_blocks(i + 2)?;
            }
            0x2C => {
                if i + 10 > n {
                    return Err(cut("inside an image descriptor"));
                }
                let start = i + 10 + table(b[i + 9]) + 1; // colour table, LZW code size
                if start > n {
                    return Err(cut("inside an image header"));
                }
                i = sub_blocks(start)?;
                images += 1;
            }
            other => {
                return Err(format!(
                    "corrupt GIF: unexpected block type 0x{other:02X} at byte {i}"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_walk_handles_stuffing_restarts_and_trailing_bytes() {
        // SOI, APP0 (len 4), SOS (len 3) + data with FF00 and RST0, EOI, trailing junk.
        let ok = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 1, 2, 0xFF, 0xDA, 0x00, 0x03, 9, 0x11, 0xFF, 0x00,
            0x22, 0xFF, 0xD0, 0x33, 0xFF, 0xD9, 0, 0,
        ];
        assert_eq!(jpeg(&ok), Ok(()));
        for cut in 2..21 {
            assert!(jpeg(&ok[..cut]).is_err(), "cut at {cut}");
        }
        assert!(jpeg(b"GIF89a").is_err());
    }

    #[test]
    fn png_and_webp_and_gif_cuts() {
        let mut p = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        p.extend_from_slice(&[0, 0, 0, 1, b'a', b'b', b'c', b'd', 7, 0, 0, 0, 0]);
        p.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0, 0, 0, 0]);
        assert_eq!(png(&p), Ok(()));
        for cut in 0..p.len() {
            assert!(png(&p[..cut]).is_err(), "cut at {cut}");
        }
        let mut w = b"RIFF".to_vec();
        w.extend_from_slice(&8u32.to_le_bytes());
        w.extend_from_slice(b"WEBPabcd");
        assert_eq!(webp(&w), Ok(()));
        assert!(webp(&w[..15]).is_err());
        // Header, no global table, one image (descriptor, code size, one sub-block), trailer.
        let mut g = b"GIF89a".to_vec();
        g.extend_from_slice(&[1, 0, 1, 0, 0, 0, 0]);
        g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x4C, 0x01, 0, 0x3B]);
        assert_eq!(gif(&g), Ok(()));
        assert_eq!(
            gif(&g[..g.len() - 1]),
            Ok(()),
            "a missing trailer alone is accepted"
        );
        for cut in 0..g.len() - 1 {
            assert!(gif(&g[..cut]).is_err(), "cut at {cut}");
        }
    }
}
