//! Per-author features: one vector per modality plus a presence mask, a safetensors
//! feature store that reuses what is still valid, batch extraction from a dataset, and
//! [`FeatureSource`]s for precomputed vectors and categories.

pub mod extract;
pub mod source;
pub mod store;

pub use extract::{ExtractOptions, Extraction, ExtractorConfig, FeatureExtractor, SkippedFile};
pub use source::{CategoryOneHot, FeatureSource, PooledRows, append_source};
pub use store::{FeatureStore, StoredFeatures};

/// The three views of an author.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// Video frames.
    Visual,
    /// The audio clip.
    Audio,
    /// Title and description.
    Text,
}

impl std::fmt::Display for Modality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Modality::Visual => "visual",
            Modality::Audio => "audio",
            Modality::Text => "text",
        })
    }
}

impl Modality {
    /// All modalities, in mask order.
    pub const ALL: [Modality; 3] = [Modality::Visual, Modality::Audio, Modality::Text];

    /// Position in [`AuthorFeatures::present`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One author's features. A modality that the author lacks (or whose file was skipped)
/// is a zero vector with `present[m] == false`, so every author has features.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorFeatures {
    /// Mean of the frame vectors.
    pub visual: Vec<f32>,
    /// Audio clip vector.
    pub audio: Vec<f32>,
    /// Text vector.
    pub text: Vec<f32>,
    /// Which of visual, audio, text are real.
    pub present: [bool; 3],
}

impl AuthorFeatures {
    /// An author with no modality: zero vectors of the given sizes.
    pub fn empty(dims: [usize; 3]) -> Self {
        AuthorFeatures {
            visual: vec![0.0; dims[0]],
            audio: vec![0.0; dims[1]],
            text: vec![0.0; dims[2]],
            present: [false; 3],
        }
    }

    /// The vector of one modality.
    pub fn get(&self, m: Modality) -> &[f32] {
        match m {
            Modality::Visual => &self.visual,
            Modality::Audio => &self.audio,
            Modality::Text => &self.text,
        }
    }

    /// Whether a modality is real.
    pub fn has(&self, m: Modality) -> bool {
        self.present[m.index()]
    }

    /// The first value that is not a finite number, as (modality, position, value).
    pub fn first_non_finite(&self) -> Option<(Modality, usize, f32)> {
        Modality::ALL.into_iter().find_map(|m| {
            self.get(m)
                .iter()
                .position(|x| !x.is_finite())
                .map(|i| (m, i, self.get(m)[i]))
        })
    }

    /// Sizes of the three vectors.
    pub fn dims(&self) -> [usize; 3] {
        [self.visual.len(), self.audio.len(), self.text.len()]
    }
}
