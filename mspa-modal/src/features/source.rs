//! Features from what a dataset has, beyond its raw media: one [`FeatureSource`] trait for
//! precomputed vectors and categorical side information, appended to the media features
//! ([`append_source`]) in the modality slot each source names.
//!
//! * [`PooledRows`]: rows of a precomputed matrix (a `.npy` file), pooled (mean) per
//!   author, e.g. KuaiLive's `title_embeddings_pca128.npy` over each streamer's rooms,
//!   or any `.npy` with an id file ([`PooledRows::from_id_file`]: line `i` names the
//!   author of row `i`, so per-room or per-clip rows are pooled per author);
//! * [`CategoryOneHot`]: a one-hot of each author's category when the dataset's titles
//!   are categorical (KuaiLive titles are the rooms' most frequent content category).
//!
//! ```
//! use std::collections::BTreeMap;
//! use mspa_core::{Author, DatasetBuilder, ExternalId, npy::NpyMatrix};
//! use mspa_modal::features::{AuthorFeatures, FeatureSource, Modality, PooledRows, append_source};
//! let mut b = DatasetBuilder::default();
//! b.add_author(Author::bare(ExternalId::Int(7))).unwrap();
//! let ds = b.build(None);
//! let matrix = NpyMatrix { rows: 2, cols: 2, values: vec![1.0, 0.0, 0.0, 1.0] };
//! let rows = BTreeMap::from([(ExternalId::Int(7), vec![0, 1])]);
//! let source = PooledRows::new("titles", Modality::Text, matrix, rows);
//! let mut features = vec![AuthorFeatures::empty([0, 0, 0])];
//! append_source(&mut features, &source, &ds).unwrap();
//! assert_eq!(features[0].text, [0.5, 0.5]);
//! assert!(features[0].present[2]);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use mspa_core::npy::NpyMatrix;
use mspa_core::{Dataset, ExternalId};

use super::{AuthorFeatures, Modality};
use crate::error::{ModalError, Result};

/// A source of per-author vectors for one modality slot.
pub trait FeatureSource {
    /// What the source is (for errors and reports).
    fn name(&self) -> &str;
    /// The modality slot its vectors extend.
    fn modality(&self) -> Modality;
    /// The vector length.
    fn dim(&self) -> usize;
    /// One vector per author of `dataset` (`None`: the author has none), each `dim()` long.
    fn vectors(&self, dataset: &Dataset) -> Result<Vec<Option<Vec<f32>>>>;
}

/// Appends `source`'s vectors to the slot it names in every author's features (zeros
/// for authors without one), marking the modality present where a vector exists.
pub fn append_source(
    features: &mut [AuthorFeatures],
    source: &dyn FeatureSource,
    dataset: &Dataset,
) -> Result<()> {
    let vectors = source.vectors(dataset)?;
    if vectors.len() != features.len() {
        return Err(ModalError::Config {
            field: source.name().to_string(),
            message: format!("{} vectors for {} authors", vectors.len(), features.len()),
        });
    }
    let (m, dim) = (source.modality(), source.dim());
    for (f, v) in features.iter_mut().zip(vectors) {
        let slot = match m {
            Modality::Visual => &mut f.visual,
            Modality::Audio => &mut f.audio,
            Modality::Text => &mut f.text,
        };
        match v {
            Some(v) => {
                slot.extend_from_slice(&v);
                f.present[m.index()] = true;
            }
            None => slot.extend(std::iter::repeat_n(0.0, dim)),
        }
    }
    Ok(())
}

/// Rows of a precomputed matrix pooled (averaged) per author.
#[derive(Clone, Debug)]
pub struct PooledRows {
    name: String,
    modality: Modality,
    matrix: NpyMatrix,
    rows: BTreeMap<ExternalId, Vec<usize>>,
}

impl PooledRows {
    /// The rows `rows[author id]` of `matrix`, pooled into `modality`'s slot; `name` is
    /// what errors call the matrix (its file name, say).
    pub fn new(
        name: &str,
        modality: Modality,
        matrix: NpyMatrix,
        rows: BTreeMap<ExternalId, Vec<usize>>,
    ) -> Self {
        PooledRows {
            name: name.to_string(),
            modality,
            matrix,
            rows,
        }
    }
}

impl PooledRows {
    /// The rows of the `.npy` matrix `npy`, each belonging to the author named on the
    /// same line of `ids` (a text file, one author id per line, as the dataset writes
    /// it; blank lines are errors), pooled per author into `modality`'s slot.
    pub fn from_id_file(npy: &Path, ids: &Path, modality: Modality) -> Result<Self> {
        let matrix = NpyMatrix::read(npy).map_err(|e| ModalError::Config {
            field: npy.display().to_string(),
            message: e.to_string(),
        })?;
        let text = std::fs::read_to_string(ids).map_err(|e| ModalError::io(ids, e))?;
        let mut rows: BTreeMap<ExternalId, Vec<usize>> = BTreeMap::new();
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let id = line.trim();
            if id.is_empty() {
                return Err(ModalError::decode(
                    ids,
                    format!("line {}: an empty author id", i + 1),
                ));
            }
            rows.entry(ExternalId::parse(id)).or_default().push(i);
            n = i + 1;
        }
        if n != matrix.rows {
            return Err(ModalError::decode(
                ids,
                format!("{n} ids for the {} rows of {}", matrix.rows, npy.display()),
            ));
        }
        let name = npy.display().to_string();
        Ok(PooledRows::new(&name, modality, matrix, rows))
    }
}

impl FeatureSource for PooledRows {
    fn name(&self) -> &str {
        &self.name
    }

    fn modality(&self) -> Modality {
        self.modality
    }

    fn dim(&self) -> usize {
        self.matrix.cols
    }

    fn vectors(&self, dataset: &Dataset) -> Result<Vec<Option<Vec<f32>>>> {
        dataset
            .authors()
            .iter()
            .map(|a| {
                let Some(rows) = self.rows.get(&a.id).filter(|r| !r.is_empty()) else {
                    return Ok(None);
                };
                let mut sum = vec![0f32; self.matrix.cols];
                for &r in rows {
                    if r >= self.matrix.rows {
                        return Err(ModalError::Config {
                            field: self.name.clone(),
                            message: format!(
                                "author `{}` needs row {r}, the matrix has {} rows",
                                a.id, self.matrix.rows
                            ),
                        });
                    }
                    for (s, v) in sum.iter_mut().zip(self.matrix.row(r)) {
                        *s += v;
                    }
                }
                let n = rows.len() as f32;
                Ok(Some(sum.into_iter().map(|s| s / n).collect()))
            })
            .collect()
    }
}

/// A one-hot of each author's title over the `max_values` most common titles, for
/// datasets whose titles are categories; authors with another or no title get none.
#[derive(Clone, Debug)]
pub struct CategoryOneHot {
    values: Vec<String>,
}

impl CategoryOneHot {
    /// The `max_values` most common non-empty titles of `dataset` (ties by name), when
    /// they are categorical: `None` when fewer than two titles are shared by two or more
    /// authors.
    pub fn from_titles(dataset: &Dataset, max_values: usize) -> Option<Self> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for a in dataset.authors() {
            if !a.title.is_empty() {
                *counts.entry(a.title.as_str()).or_default() += 1;
            }
        }
        let mut ranked: Vec<(usize, &str)> = counts
            .into_iter()
            .filter(|&(_, n)| n >= 2)
            .map(|(t, n)| (n, t))
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        ranked.truncate(max_values);
        (ranked.len() >= 2).then(|| CategoryOneHot {
            values: ranked.into_iter().map(|(_, t)| t.to_string()).collect(),
        })
    }

    /// The categories, in one-hot order.
    pub fn values(&self) -> &[String] {
        &self.values
    }
}

impl FeatureSource for CategoryOneHot {
    fn name(&self) -> &str {
        "category one-hot"
    }

    fn modality(&self) -> Modality {
        Modality::Text
    }

    fn dim(&self) -> usize {
        self.values.len()
    }

    fn vectors(&self, dataset: &Dataset) -> Result<Vec<Option<Vec<f32>>>> {
        Ok(dataset
            .authors()
            .iter()
            .map(|a| {
                let i = self.values.iter().position(|v| *v == a.title)?;
                let mut v = vec![0f32; self.values.len()];
                v[i] = 1.0;
                Some(v)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mspa_core::{Author, DatasetBuilder};

    fn dataset(titles: &[&str]) -> Dataset {
        let mut b = DatasetBuilder::default();
        for (i, t) in titles.iter().enumerate() {
            let mut a = Author::bare(ExternalId::Int(i as i64));
            a.title = t.to_string();
            b.add_author(a).unwrap();
        }
        b.build(None)
    }

    #[test]
    fn category_one_hot_needs_shared_titles() {
        let ds = dataset(&["music", "game", "music", "game", "solo", ""]);
        let source = CategoryOneHot::from_titles(&ds, 8).unwrap();
        assert_eq!(source.values(), ["game", "music"]);
        let mut f = vec![AuthorFeatures::empty([0, 0, 2]); 6];
        append_source(&mut f, &source, &ds).unwrap();
        assert_eq!(f[0].text, [0.0, 0.0, 0.0, 1.0]);
        assert!(f[0].present[2] && !f[4].present[2]);
        assert_eq!(f[4].text, [0.0; 4]);
        assert!(CategoryOneHot::from_titles(&dataset(&["a", "b", "c"]), 8).is_none());
    }

    #[test]
    fn an_id_file_pools_rows_per_author_and_must_match_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("clips.npy");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }".to_string();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in [1f32, 0.0, 3.0, 2.0, 5.0, 5.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&npy, bytes).unwrap();
        let ids = dir.path().join("clips.ids");
        std::fs::write(&ids, "0\n0\n7\n").unwrap();
        let source = PooledRows::from_id_file(&npy, &ids, Modality::Audio).unwrap();
        let ds = dataset(&["x", "y"]);
        let mut f = vec![AuthorFeatures::empty([0, 0, 0]); 2];
        append_source(&mut f, &source, &ds).unwrap();
        assert_eq!(f[0].audio, [2.0, 1.0]);
        assert!(f[0].present[1] && !f[1].present[1]);
        std::fs::write(&ids, "0\n7\n").unwrap();
        let err = PooledRows::from_id_file(&npy, &ids, Modality::Audio).unwrap_err();
        assert!(err.to_string().contains("2 ids for the 3 rows"), "{err}");
    }

    #[test]
    fn pooled_rows_name_a_row_out_of_range() {
        let ds = dataset(&["x"]);
        let matrix = NpyMatrix {
            rows: 1,
            cols: 1,
            values: vec![1.0],
        };
        let rows = BTreeMap::from([(ExternalId::Int(0), vec![3])]);
        let source = PooledRows::new("titles.npy", Modality::Text, matrix, rows);
        let mut f = vec![AuthorFeatures::empty([0, 0, 0])];
        let err = append_source(&mut f, &source, &ds).unwrap_err().to_string();
        assert!(err.contains("titles.npy") && err.contains("row 3"), "{err}");
    }
}
