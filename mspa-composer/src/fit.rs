//! One fitting shape for every composer: settings fit on [`TeacherData`] (the
//! schema, the dataset and its content, and a teacher's texts for training-time
//! histories) and a [`Composer`] comes out.
//!
//! A downstream crate adds a composer by implementing two traits: [`FitComposer`] on its
//! settings and [`Composer`] on the fitted composer.
//!
//! ```
//! use burn::tensor::Device;
//! use mspa_composer::composer::{ComposeContext, Composer, HistoryQuery, Preference};
//! use mspa_composer::fit::{EpochLoss, FitComposer, TeacherData};
//! use mspa_composer::schema::{FieldSpec, PreferenceFields, PreferenceSchema};
//! use mspa_composer::Result;
//! use mspa_core::DatasetBuilder;
//!
//! /// Always writes the first teacher text it was given.
//! struct Parrot { schema: PreferenceSchema, fields: PreferenceFields }
//!
//! impl Composer for Parrot {
//!     fn name(&self) -> &str { "parrot" }
//!     fn compose(&self, _ctx: &ComposeContext<'_>, _q: HistoryQuery<'_>) -> Result<Preference> {
//!         Ok(Preference {
//!             text: self.schema.render(&self.fields),
//!             fields: self.fields.clone(),
//!             embedding: self.schema.multi_hot(&self.fields),
//!             evidence: Vec::new(),
//!         })
//!     }
//! }
//!
//! struct ParrotConfig;
//!
//! impl FitComposer for ParrotConfig {
//!     type Composer = Parrot;
//!     fn fit(&self, data: &TeacherData, _: &Device, _: EpochLoss) -> Result<Parrot> {
//!         let first = data.pairs.first().ok_or_else(|| mspa_composer::ComposerError::data("no pairs"))?;
//!         let fields = data.schema.parse(&first.reference)?;
//!         Ok(Parrot { schema: data.schema.clone(), fields })
//!     }
//! }
//!
//! let schema = PreferenceSchema::new(vec![FieldSpec::list("mood", &["calm", "loud"], 1)]).unwrap();
//! let ds = DatasetBuilder::default().build(None);
//! let ctx = ComposeContext { dataset: &ds, features: None, text_encoder: None };
//! let pairs = [mspa_composer::composer::TrainingPair {
//!     user: mspa_core::UserId(0), tips: 0..0, at_ms: 0, reference: "mood: calm".into(),
//! }];
//! let data = TeacherData { schema: &schema, ctx, pairs: &pairs };
//! let parrot = ParrotConfig.fit(&data, &Device::flex(), &mut |_, _| {})?;
//! let p = parrot.compose(&ctx, HistoryQuery { tips: &[], at_ms: 0 })?;
//! assert_eq!(p.text, "mood: calm");
//! # Ok::<(), mspa_composer::ComposerError>(())
//! ```

use burn::tensor::Device;

use crate::composer::{ComposeContext, Composer, TrainingPair};
use crate::error::Result;
use crate::learned::{LearnedComposer, LearnedComposerConfig};
use crate::nearest::{NearestComposer, NearestConfig};
use crate::schema::PreferenceSchema;
use crate::template::{TemplateComposer, TemplateConfig};

/// What a composer is fitted on.
#[derive(Clone, Copy)]
pub struct TeacherData<'a> {
    /// The preference texts' schema.
    pub schema: &'a PreferenceSchema,
    /// The dataset, its authors' features and the text encoder.
    pub ctx: ComposeContext<'a>,
    /// A teacher's texts for training-time histories (leak-free: see
    /// [`crate::eval::reference_pairs`]).
    pub pairs: &'a [TrainingPair],
}

/// Where a fit reports `(epoch, mean loss)` after each epoch.
pub type EpochLoss<'a> = &'a mut dyn FnMut(usize, f64);

/// Settings that fit a [`Composer`]. `fit` validates the settings first (an invalid one
/// is a [`crate::ComposerError::Config`] naming the field) and reports `(epoch, loss)` to
/// `progress` (composers without epochs report nothing).
pub trait FitComposer {
    /// The fitted composer.
    type Composer: Composer;

    /// Validates the settings and fits the composer.
    fn fit(
        &self,
        data: &TeacherData,
        device: &Device,
        progress: EpochLoss,
    ) -> Result<Self::Composer>;
}

impl FitComposer for TemplateConfig {
    type Composer = TemplateComposer;
    /// [`TemplateComposer::learn`]: the lexicon and thresholds from the data.
    fn fit(&self, data: &TeacherData, _: &Device, _: EpochLoss) -> Result<TemplateComposer> {
        TemplateComposer::learn(data.schema, data.ctx.dataset, data.pairs, self.clone())
    }
}

impl FitComposer for NearestConfig {
    type Composer = NearestComposer;
    fn fit(&self, data: &TeacherData, _: &Device, _: EpochLoss) -> Result<NearestComposer> {
        NearestComposer::fit_with(data.schema, &data.ctx, data.pairs, self.clone())
    }
}

impl FitComposer for LearnedComposerConfig {
    type Composer = LearnedComposer;
    fn fit(
        &self,
        data: &TeacherData,
        device: &Device,
        progress: EpochLoss,
    ) -> Result<LearnedComposer> {
        LearnedComposer::fit(
            self.clone(),
            data.schema,
            &data.ctx,
            data.pairs,
            device,
            progress,
        )
    }
}
