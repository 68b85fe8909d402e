//! The feature store: features of many authors in one safetensors file, keyed by author,
//! by a hash of the author's media bytes and text, and by a hash of the encoder config.
//!
//! Layout: tensors `visual` `[n, d_v]`, `audio` `[n, d_a]`, `text` `[n, d_t]` (F32) and
//! `present` `[n, 3]` (U8); metadata `authors` and `media_hashes` (JSON arrays of strings,
//! row order), `config_hash` and `format` (`mspa-features/1`). Other tools can read it
//! with any safetensors library.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::AuthorFeatures;
use crate::error::{ModalError, Result};

const FORMAT: &str = "mspa-features/1";

/// One stored author.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFeatures {
    /// External author id, as text.
    pub author: String,
    /// Hash of the author's media bytes and text when the features were computed.
    pub media_hash: String,
    /// The features.
    pub features: AuthorFeatures,
}

/// Features of many authors, computed with one encoder config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeatureStore {
    /// Hash of the encoder config and weights the features came from.
    pub config_hash: String,
    /// The authors, in file order.
    pub entries: Vec<StoredFeatures>,
}

impl FeatureStore {
    /// The features of `author` if they were computed from the same media and config.
    pub fn lookup(
        &self,
        author: &str,
        media_hash: &str,
        config_hash: &str,
    ) -> Option<&AuthorFeatures> {
        if self.config_hash != config_hash {
            return None;
        }
        self.entries
            .iter()
            .find(|e| e.author == author && e.media_hash == media_hash)
            .map(|e| &e.features)
    }

    /// An index from author id to entry position, for many lookups.
    pub fn index(&self) -> HashMap<&str, usize> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.author.as_str(), i))
            .collect()
    }

    /// Writes the store atomically (a temporary file in the same folder, then a rename),
    /// so a crash never leaves a half-written feature file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dims = self
            .entries
            .first()
            .map(|e| e.features.dims())
            .unwrap_or([0; 3]);
        let n = self.entries.len();
        let mut columns: [Vec<u8>; 3] = Default::default();
        let mut present = Vec::with_capacity(n * 3);
        for e in &self.entries {
            if e.features.dims() != dims {
                return Err(ModalError::Config {
                    field: "features".into(),
                    message: format!(
                        "author {} has sizes {:?}, expected {dims:?}",
                        e.author,
                        e.features.dims()
                    ),
                });
            }
            for (col, v) in
                columns
                    .iter_mut()
                    .zip([&e.features.visual, &e.features.audio, &e.features.text])
            {
                col.extend(v.iter().flat_map(|x| x.to_le_bytes()));
            }
            present.extend(e.features.present.iter().map(|&b| b as u8));
        }
        fn view<'a>(
            path: &Path,
            dtype: Dtype,
            shape: Vec<usize>,
            data: &'a [u8],
        ) -> Result<TensorView<'a>> {
            TensorView::new(dtype, shape, data).map_err(|e| weights_error(path, e))
        }
        let tensors = vec![
            (
                "visual",
                view(path, Dtype::F32, vec![n, dims[0]], &columns[0])?,
            ),
            (
                "audio",
                view(path, Dtype::F32, vec![n, dims[1]], &columns[1])?,
            ),
            (
                "text",
                view(path, Dtype::F32, vec![n, dims[2]], &columns[2])?,
            ),
            ("present", view(path, Dtype::U8, vec![n, 3], &present)?),
        ];
        let authors: Vec<&str> = self.entries.iter().map(|e| e.author.as_str()).collect();
        let hashes: Vec<&str> = self.entries.iter().map(|e| e.media_hash.as_str()).collect();
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("config_hash".to_string(), self.config_hash.clone()),
            (
                "authors".to_string(),
                serde_json::to_string(&authors).expect("strings serialise"),
            ),
            (
                "media_hashes".to_string(),
                serde_json::to_string(&hashes).expect("strings serialise"),
            ),
        ]);
        let bytes =
            safetensors::serialize(tensors, Some(metadata)).map_err(|e| weights_error(path, e))?;
        write_atomic(path, &bytes)
    }

    /// Reads a store written by [`FeatureStore::save`].
    pub fn load(path: &Path) -> Result<FeatureStore> {
        let bytes = std::fs::read(path).map_err(|e| ModalError::io(path, e))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| weights_error(path, e))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let field = |k: &str| {
            meta.get(k).cloned().ok_or_else(|| ModalError::Weights {
                path: path.to_path_buf(),
                message: format!("metadata lacks `{k}`"),
            })
        };
        if field("format")? != FORMAT {
            return Err(ModalError::Weights {
                path: path.to_path_buf(),
                message: format!("not a {FORMAT} feature file"),
            });
        }
        let list = |k: &str| -> Result<Vec<String>> {
            serde_json::from_str(&field(k)?).map_err(|e| ModalError::Weights {
                path: path.to_path_buf(),
                message: format!("metadata `{k}`: {e}"),
            })
        };
        let authors = list("authors")?;
        let hashes = list("media_hashes")?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| weights_error(path, e))?;
        let n = authors.len();
        let matrix = |name: &str, dtype: Dtype| -> Result<(usize, Vec<u8>)> {
            let t = st.tensor(name).map_err(|e| weights_error(path, e))?;
            if t.dtype() != dtype || t.shape().len() != 2 || t.shape()[0] != n || hashes.len() != n
            {
                return Err(ModalError::Weights {
                    path: path.to_path_buf(),
                    message: format!(
                        "tensor `{name}` has shape {:?} and type {:?}, expected [{n}, _] {dtype:?}",
                        t.shape(),
                        t.dtype()
                    ),
                });
            }
            Ok((t.shape()[1], t.data().to_vec()))
        };
        let floats = |bytes: &[u8]| -> Vec<f32> {
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let (dv, v) = matrix("visual", Dtype::F32)?;
        let (da, a) = matrix("audio", Dtype::F32)?;
        let (dt, t) = matrix("text", Dtype::F32)?;
        let (dp, p) = matrix("present", Dtype::U8)?;
        if dp != 3 {
            return Err(ModalError::Weights {
                path: path.to_path_buf(),
                message: format!("tensor `present` has {dp} columns, expected 3"),
            });
        }
        let (v, a, t) = (floats(&v), floats(&a), floats(&t));
        let entries: Vec<StoredFeatures> = (0..n)
            .map(|i| StoredFeatures {
                author: authors[i].clone(),
                media_hash: hashes[i].clone(),
                features: AuthorFeatures {
                    visual: v[i * dv..(i + 1) * dv].to_vec(),
                    audio: a[i * da..(i + 1) * da].to_vec(),
                    text: t[i * dt..(i + 1) * dt].to_vec(),
                    present: [p[i * 3] != 0, p[i * 3 + 1] != 0, p[i * 3 + 2] != 0],
                },
            })
            .collect();
        // A NaN or infinity would flow into every score computed from the author:
        // refused here, where it enters, naming the file, the author and the modality.
        for e in &entries {
            if let Some((m, at, x)) = e.features.first_non_finite() {
                return Err(ModalError::NonFinite {
                    origin: format!("feature store {}", path.display()),
                    author: e.author.clone(),
                    modality: m.to_string(),
                    message: format!("value {at} is {x}"),
                });
            }
        }
        Ok(FeatureStore {
            config_hash: field("config_hash")?,
            entries,
        })
    }
}

fn weights_error(path: &Path, e: impl std::fmt::Display) -> ModalError {
    ModalError::Weights {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename
/// ([`mspa_core::fs::write_atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    mspa_core::fs::write_atomic(path, bytes).map_err(|e| ModalError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("features.safetensors");
        let store = FeatureStore {
            config_hash: "cfg".into(),
            entries: vec![
                StoredFeatures {
                    author: "a1".into(),
                    media_hash: "h1".into(),
                    features: AuthorFeatures {
                        visual: vec![1.0, 2.0],
                        audio: vec![3.0],
                        text: vec![0.5, 0.25, 0.0],
                        present: [true, false, true],
                    },
                },
                StoredFeatures {
                    author: "7".into(),
                    media_hash: "h2".into(),
                    features: AuthorFeatures::empty([2, 1, 3]),
                },
            ],
        };
        store.save(&path).unwrap();
        let back = FeatureStore::load(&path).unwrap();
        assert_eq!(back, store);
        assert!(back.lookup("a1", "h1", "cfg").is_some());
        assert!(back.lookup("a1", "h1", "other config").is_none());
        assert!(back.lookup("a1", "changed media", "cfg").is_none());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn garbage_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, b"not a safetensors file at all").unwrap();
        let err = FeatureStore::load(&path).unwrap_err();
        assert!(err.to_string().contains("bad.safetensors"), "{err}");
    }
}
