//! One fitting shape for every recommender: a validated configuration fits on
//! [`TrainingData`] and a [`Recommender`] comes out.
//!
//! Every built-in model fits this way: the settings of each baseline (in
//! [`crate::baselines`], next to its model) and [`crate::mspa::MspaSettings`] implement
//! [`FitRecommender`]. A downstream crate adds a model by implementing two traits:
//! [`FitRecommender`] on its settings and [`Recommender`] on the fitted model. Everything
//! that ranks and evaluates (the report, [`crate::recommender::evaluate`]) then takes it
//! like the built-in ones.
//!
//! ```
//! use burn::tensor::Device;
//! use mspa_align::fit::{FitRecommender, Progress, TrainingData};
//! use mspa_align::recommender::{Query, Recommender, check_out_len};
//! use mspa_align::{AlignError, Result};
//! use mspa_core::{Author, DatasetBuilder, ExternalId, Split};
//!
//! /// Scores each author by how recently the user tipped it.
//! struct Recency { n_authors: usize }
//!
//! impl Recommender for Recency {
//!     fn name(&self) -> &str { "Recency" }
//!     fn score_batch(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()> {
//!         check_out_len(queries.len(), out.len(), self.n_authors)?;
//!         out.fill(0.0);
//!         for (q, row) in queries.iter().zip(out.chunks_mut(self.n_authors)) {
//!             for (i, e) in q.history.iter().enumerate() {
//!                 row[e.author.index()] = (i + 1) as f32;
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! /// Its settings (none to validate but the dataset).
//! struct RecencyConfig;
//!
//! impl FitRecommender for RecencyConfig {
//!     type Model = Recency;
//!     fn fit(&self, data: &TrainingData, _: &Device, _: Progress) -> Result<Recency> {
//!         match data.dataset.n_authors() {
//!             0 => Err(AlignError::data("no authors")),
//!             n_authors => Ok(Recency { n_authors }),
//!         }
//!     }
//! }
//!
//! let mut b = DatasetBuilder::default();
//! let a = b.add_author(Author::bare(ExternalId::from("a"))).unwrap();
//! let c = b.add_author(Author::bare(ExternalId::from("c"))).unwrap();
//! let u = b.user(ExternalId::Int(1));
//! for (author, t) in [(a, 1), (c, 2), (a, 3)] { b.push_event(u, author, 1.0, t); }
//! let ds = b.build(None);
//! let split = Split::leave_last_out(&ds);
//! let model = RecencyConfig.fit(&TrainingData::new(&ds, &split), &Device::flex(), &mut |_| {})?;
//! let mut scores = vec![0.0; 2];
//! let query = Query { user: u, history: &ds.user_events(u)[..2], at_ms: 3 };
//! model.score_batch(&[query], &mut scores)?;
//! assert!(scores[c.index()] > scores[a.index()]);
//! # Ok::<(), AlignError>(())
//! ```

use burn::tensor::Device;
use mspa_core::{Dataset, Split};
use mspa_modal::features::AuthorFeatures;

use crate::error::{AlignError, Result};
use crate::mspa::TextPreferences;
use crate::recommender::Recommender;
use crate::train::EpochReport;

/// What a recommender is fitted on: the dataset and its split (training events to learn
/// from, validation targets to early-stop and choose settings on), and what content the
/// data has.
#[derive(Clone, Copy, Debug)]
pub struct TrainingData<'a> {
    /// The dataset.
    pub dataset: &'a Dataset,
    /// Its split; models read `train` and `valid` only.
    pub split: &'a Split,
    /// Per author (by `AuthorId`): its content features, when the data has content.
    pub features: Option<&'a [AuthorFeatures]>,
    /// Composed preference texts per user and time, for models that read them.
    pub texts: Option<&'a TextPreferences>,
}

impl<'a> TrainingData<'a> {
    /// Data with interactions only (no features, no texts).
    pub fn new(dataset: &'a Dataset, split: &'a Split) -> Self {
        TrainingData {
            dataset,
            split,
            features: None,
            texts: None,
        }
    }

    /// The same data with author features.
    pub fn with_features(mut self, features: &'a [AuthorFeatures]) -> Self {
        self.features = Some(features);
        self
    }

    /// The same data with composed preference texts.
    pub fn with_texts(mut self, texts: &'a TextPreferences) -> Self {
        self.texts = Some(texts);
        self
    }

    /// The author features, or an error saying that `model` needs them.
    pub fn require_features(&self, model: &str) -> Result<&'a [AuthorFeatures]> {
        self.features
            .ok_or_else(|| AlignError::config("features", format!("{model} needs author features")))
    }
}

/// Where a fit reports each epoch.
pub type Progress<'a> = &'a mut dyn FnMut(&EpochReport);

/// Settings that fit a [`Recommender`]. `fit` validates the settings first (an invalid
/// one is an [`AlignError::Config`] naming the field), trains on `data` on `device` and
/// reports each epoch to `progress` (models without epochs report nothing).
pub trait FitRecommender {
    /// The fitted model.
    type Model: Recommender;

    /// Validates the settings and fits the model.
    fn fit(&self, data: &TrainingData, device: &Device, progress: Progress) -> Result<Self::Model>;

    /// [`FitRecommender::fit`] that also returns every epoch's report (the curve, empty
    /// for models without epochs), collected from the progress callback. A run resumed
    /// from a checkpoint reports only the epochs it runs
    /// ([`crate::train::checkpoint_reports`] reads the earlier ones).
    fn fit_with_curve(
        &self,
        data: &TrainingData,
        device: &Device,
    ) -> Result<(Self::Model, Vec<EpochReport>)> {
        let mut curve = Vec::new();
        let model = self.fit(data, device, &mut |r| curve.push(r.clone()))?;
        Ok((model, curve))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::{BprMfConfig, LightGcnConfig, RepeatPopConfig, VbprConfig};
    use mspa_core::{Author, DatasetBuilder, ExternalId};

    fn tiny() -> (Dataset, Split) {
        let mut b = DatasetBuilder::default();
        let authors: Vec<_> = (0..4)
            .map(|i| b.add_author(Author::bare(ExternalId::Int(i))).unwrap())
            .collect();
        for u in 0..6 {
            let user = b.user(ExternalId::Int(100 + u));
            for t in 0..4 {
                b.push_event(user, authors[((u + t) % 4) as usize], 1.0, t);
            }
        }
        let ds = b.build(None);
        let split = Split::leave_last_out(&ds);
        (ds, split)
    }

    #[test]
    fn configs_fit_through_the_common_trait() {
        let (ds, split) = tiny();
        let data = TrainingData::new(&ds, &split);
        let device = Device::flex();
        let mut config = BprMfConfig::default();
        config.train.epochs = 1;
        let mut epochs = 0;
        let model = config.fit(&data, &device, &mut |_| epochs += 1).unwrap();
        assert_eq!(model.name(), "BPR-MF");
        assert_eq!(epochs, 1);
        // The curve is what progress saw: one report per epoch, none for a rule.
        let (_, curve) = config.fit_with_curve(&data, &device).unwrap();
        assert_eq!(curve.len(), 1);
        assert_eq!(curve[0].epoch, 0);
        let (rule, curve) = RepeatPopConfig::default()
            .fit_with_curve(&data, &device)
            .unwrap();
        assert_eq!(rule.name(), "RepeatPop");
        assert!(curve.is_empty());
        // Content models say what they miss.
        let err = VbprConfig::default()
            .fit(&data, &device, &mut |_| {})
            .err()
            .unwrap();
        assert!(err.to_string().contains("VBPR"), "{err}");
        // Invalid settings are config errors.
        let bad = LightGcnConfig {
            dim: 0,
            ..Default::default()
        };
        assert!(matches!(
            bad.fit(&data, &device, &mut |_| {}),
            Err(AlignError::Config { .. })
        ));
    }
}
