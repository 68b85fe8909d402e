//! A reader for NumPy `.npy` files of 2-D float arrays (precomputed per-author or per-room
//! vectors, such as KuaiLive's `title_embeddings_pca128.npy`).
//!
//! The format: the magic `\x93NUMPY`, a version (1.0, 2.0 or 3.0), a header length (2
//! bytes in 1.0, 4 after), a Python-literal header dict with `descr`, `fortran_order` and
//! `shape`, then the raw data. Read here: little-endian `f4`/`f8` (and `f2`), C or Fortran
//! order, 1-D (one column) or 2-D shapes; everything else is an error naming the file and
//! what is wrong. The data must be exactly as long as the shape says.
//!
//! ```
//! use mspa_core::npy::NpyMatrix;
//! // A 2 x 3 little-endian f32 array, written as NumPy would.
//! let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
//! let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
//! let pad = 64 - (10 + header.len() + 1) % 64;
//! let len = (header.len() + pad + 1) as u16;
//! bytes.extend_from_slice(&len.to_le_bytes());
//! bytes.extend_from_slice(header.as_bytes());
//! bytes.extend(std::iter::repeat(b' ').take(pad));
//! bytes.push(b'\n');
//! for x in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0] { bytes.extend_from_slice(&x.to_le_bytes()); }
//! let m = NpyMatrix::from_bytes(&bytes, "example.npy").unwrap();
//! assert_eq!((m.rows, m.cols), (2, 3));
//! assert_eq!(m.row(1), &[4.0, 5.0, 6.0]);
//! ```

use std::path::Path;

use crate::error::{CoreError, DataErrorKind, Result};

/// The longest header accepted (NumPy writes well under this).
pub const MAX_HEADER_BYTES: usize = 65_536;

/// A 2-D float array read from a `.npy` file, row-major `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyMatrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns (1 for a 1-D array).
    pub cols: usize,
    /// `rows * cols` values, row-major.
    pub values: Vec<f32>,
}

impl NpyMatrix {
    /// Reads a `.npy` file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| CoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses the bytes of a `.npy` file; `name` is what errors call it.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self> {
        let bad = |message: String| npy_error(name, message);
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
            return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
        }
        let (header_len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            ),
            v => return Err(bad(format!("unsupported .npy version {v}.{}", bytes[7]))),
        };
        if header_len > MAX_HEADER_BYTES {
            return Err(bad(format!(
                "header of {header_len} bytes is longer than the limit of {MAX_HEADER_BYTES}"
            )));
        }
        let end = start + header_len;
        let header = bytes
            .get(start..end)
            .ok_or_else(|| bad(format!("file ends inside its {header_len}-byte header")))?;
        let header =
            std::str::from_utf8(header).map_err(|_| bad("header is not UTF-8 text".into()))?;
        let descr =
            dict_value(header, "descr").ok_or_else(|| bad("header has no 'descr'".into()))?;
        let fortran = dict_value(header, "fortran_order")
            .ok_or_else(|| bad("header has no 'fortran_order'".into()))?;
        let shape =
            dict_value(header, "shape").ok_or_else(|| bad("header has no 'shape'".into()))?;
        let width = match descr.trim_matches(|c| c == '\'' || c == '"') {
            "<f4" => 4,
            "<f8" => 8,
            "<f2" => 2,
            other => {
                return Err(bad(format!(
                    "dtype {} is not supported (little-endian f2, f4 or f8)",
                    short(other)
                )));
            }
        };
        let fortran = match fortran {
            "True" => true,
            "False" => false,
            other => {
                return Err(bad(format!(
                    "fortran_order {} is not True or False",
                    short(other)
                )));
            }
        };
        let dims: Vec<usize> = shape
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad(format!("shape {} is not a tuple of sizes", short(shape))))?;
        let (rows, cols) = match dims[..] {
            [n] => (n, 1),
            [r, c] => (r, c),
            _ => return Err(bad(format!("shape {} is not 1-D or 2-D", short(shape)))),
        };
        let count = rows
            .checked_mul(cols)
            .ok_or_else(|| bad(format!("shape {} overflows", short(shape))))?;
        let data = &bytes[end..];
        if Some(data.len()) != count.checked_mul(width) {
            return Err(bad(format!(
                "{} data bytes for shape ({rows}, {cols}) of {width}-byte values (need {})",
                data.len(),
                count.saturating_mul(width)
            )));
        }
        let read: Vec<f32> = data
            .chunks_exact(width)
            .map(|b| match width {
                4 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                8 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
                _ => f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
            })
            .collect();
        let values = if fortran && rows > 1 && cols > 1 {
            let mut out = vec![0.0; count];
            for c in 0..cols {
                for r in 0..rows {
                    out[r * cols + c] = read[c * rows + r];
                }
            }
            out
        } else {
            read
        };
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(bad(format!(
                "row {} column {} is not finite ({})",
                i / cols.max(1),
                i % cols.max(1),
                values[i]
            )));
        }
        Ok(NpyMatrix { rows, cols, values })
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.cols..(i + 1) * self.cols]
    }
}

/// The raw text of `key`'s value in a Python dict literal (a quoted string, a bare word
/// or a parenthesised tuple).
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else if let Some(q @ ('\'' | '"')) = rest.chars().next() {
        rest[1..].find(q)? + 2
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// At most 40 characters of `s`, for error messages.
fn short(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// An IEEE half-precision value as `f32`.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

/// An error about the `.npy` file `name` (line 0: the file is binary).
fn npy_error(name: &str, message: String) -> CoreError {
    CoreError::data(name, 0, None, DataErrorKind::Malformed, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8], version: u8) -> Vec<u8> {
        let mut out = b"\x93NUMPY".to_vec();
        out.extend_from_slice(&[version, 0]);
        if version == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn f8(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn reads_f8_fortran_and_1d_arrays() {
        let h = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }\n";
        // Column-major [[1, 2, 3], [4, 5, 6]].
        let m = NpyMatrix::from_bytes(&npy(h, &f8(&[1., 4., 2., 5., 3., 6.]), 2), "a").unwrap();
        assert_eq!(m.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n";
        let m = NpyMatrix::from_bytes(&npy(h, &f8(&[1., 2., 3.]), 1), "b").unwrap();
        assert_eq!((m.rows, m.cols), (3, 1));
        let h = "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }\n";
        let half: Vec<u8> = [0x3c00u16, 0xc000]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            NpyMatrix::from_bytes(&npy(h, &half, 1), "c")
                .unwrap()
                .values,
            [1.0, -2.0]
        );
    }

    #[test]
    fn bad_files_are_errors_that_name_the_file() {
        let ok = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }\n";
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not numpy at all".to_vec(), "magic"),
            (npy(ok, &f8(&[1., 2., 3.]), 1), "data bytes"),
            (
                npy(&ok.replace("<f8", "<i8"), &f8(&[1., 2., 3., 4.]), 1),
                "dtype",
            ),
            (
                npy(
                    &ok.replace("(2, 2)", "(2, 2, 1)"),
                    &f8(&[1., 2., 3., 4.]),
                    1,
                ),
                "1-D or 2-D",
            ),
            (npy(ok, &f8(&[1., f64::NAN, 3., 4.]), 1), "row 0 column 1"),
            (npy(&ok.replace("(2, 2)", "(x, 2)"), &[], 1), "shape"),
            (npy(ok, &f8(&[1., 2., 3., 4.]), 9), "version"),
        ];
        for (bytes, want) in cases {
            let err = NpyMatrix::from_bytes(&bytes, "titles.npy")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("titles.npy") && err.contains(want),
                "{want}: {err}"
            );
        }
        // A header that claims more bytes than the file has.
        let mut cut = npy(ok, &[], 1);
        cut.truncate(20);
        let err = NpyMatrix::from_bytes(&cut, "titles.npy")
            .unwrap_err()
            .to_string();
        assert!(err.contains("header"), "{err}");
    }
}
