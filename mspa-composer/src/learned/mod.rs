//! The learned composer: the history encoder and the preference generator, trained
//! jointly by teacher forcing on reference preference texts.
//!
//! Besides the encoder's pooled vector and tip tokens, the generator's memory holds two
//! more tokens ([`LearnedModel`]):
//!
//! * a *summary* token from [`history_summary`] (tip count, span, rate, amount level):
//!   attention pooling averages, so without it the model cannot read the tip rate that
//!   the `tipping` field buckets;
//! * a *value* token: every tip gets a distribution over each field's values (from its
//!   author's features plus a learned per-author table), pooled with the encoder's
//!   attention weights, so the user's values are a mixture of its authors' values. The
//!   log of that mixture is also added (with a learned gate) to the logits of the value
//!   tokens at every decoding step, a prior the decoder corrects.
//!
//! Training adds to the teacher-forcing loss ([`LearnedComposerConfig::aux_weight`] times)
//! a binary cross-entropy of a multi-label value head and the cross-entropy of the pooled
//! value mixture against the listed values.
//!
//! * [`LearnedComposer::fit`] trains on `device.autodiff()` with AdamW;
//!   [`LearnedComposer::fit_resume`] continues from a checkpoint (model, optimizer state
//!   and epoch counter), so a resumed run follows the same batch order as an
//!   uninterrupted one.
//! * [`Composer::compose`](crate::composer::Composer::compose) /
//!   [`Composer::compose_batch`](crate::composer::Composer::compose_batch): history →
//!   encoder → (by default grammar-constrained) beam search → typed fields → rendered
//!   text. The embedding is the
//!   L2-normalised pooled history vector, followed by the L2-normalised sentence embedding
//!   of the composed text when the context has a text encoder. Evidence: for each listed
//!   value, the (at most three) tips with the largest pooling-attention weight.
//! * [`LearnedComposer::save`] / [`LearnedComposer::load`]: a checkpoint directory written
//!   atomically (everything goes to a temporary sibling directory that is renamed into
//!   place).
//!
//! # Files
//!
//! * `config.rs`: [`LearnedComposerConfig`] (hyper-parameters, checks, the optimizer).
//! * `model.rs`: [`LearnedModel`] (init, forward, losses) and [`history_summary`].
//! * `fit.rs`: the training loop ([`LearnedComposer::fit`], [`LearnedComposer::fit_resume`],
//!   [`LearnedComposer::evaluate_loss`]).
//! * `checkpoint.rs`: [`LearnedComposer::save`] / [`LearnedComposer::load`].
//! * `compose.rs`: decoding, embedding and evidence of a composition.

mod checkpoint;
mod compose;
mod config;
mod fit;
mod model;

use burn::optim::ModuleOptimizer;
use burn::tensor::Device;

use crate::schema::PreferenceSchema;

pub use checkpoint::CHECKPOINT_FORMAT;
pub use config::LearnedComposerConfig;
pub use fit::grammar_max_tokens;
pub use model::{LearnedModel, SUMMARY_SIZE, history_summary};

/// The learned composer (see the module docs).
pub struct LearnedComposer {
    config: LearnedComposerConfig,
    schema: PreferenceSchema,
    model: LearnedModel,
    device: Device,
    epochs_done: usize,
    loss_curve: Vec<f64>,
    optimizer: Option<ModuleOptimizer>,
}

mspa_core::debug_fields!(LearnedComposer {
    config,
    epochs_done,
    loss_curve,
    ..
});

impl LearnedComposer {
    /// The config (with the sizes filled in by `fit`).
    pub fn config(&self) -> &LearnedComposerConfig {
        &self.config
    }

    /// The schema the composer writes.
    pub fn schema(&self) -> &PreferenceSchema {
        &self.schema
    }

    /// The trained model (on the composer's device).
    pub fn model(&self) -> &LearnedModel {
        &self.model
    }

    /// The device the composer runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Epochs trained so far (over `fit` and every `fit_resume`).
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// Mean training loss of every epoch so far.
    pub fn loss_curve(&self) -> &[f64] {
        &self.loss_curve
    }
}
