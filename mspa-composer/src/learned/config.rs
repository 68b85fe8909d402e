//! [`LearnedComposerConfig`]: the hyper-parameters of the learned composer, their checks,
//! the decoding strategy and the optimizer they describe.

use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, ModuleOptimizer};
use serde::{Deserialize, Serialize};

use crate::error::{ComposerError, Result, check_at_least_one};
use crate::generator::{DecodeStrategy, GeneratorConfig};
use crate::history::HistoryEncoderConfig;

/// Hyper-parameters of the [`LearnedComposer`](super::LearnedComposer) (serde, every field optional in JSON/TOML).
///
/// `encoder.feature_dims`, `generator.vocab_size` and `generator.d_memory` are filled in
/// by [`LearnedComposer::fit`](super::LearnedComposer::fit) from the features, the schema and `encoder.d_model`;
/// `generator.max_len` is raised to the longest sentence of the schema's grammar.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LearnedComposerConfig {
    /// The history encoder (in JSON, given keys override the defaults).
    #[serde(deserialize_with = "encoder_over_default")]
    pub encoder: HistoryEncoderConfig,
    /// The preference generator (in JSON, given keys override the defaults).
    #[serde(deserialize_with = "generator_over_default")]
    pub generator: GeneratorConfig,
    /// Passes over the training pairs. Default: 4 (the value prior and the auxiliary
    /// losses make the model useful after a few passes; the default world's fit takes
    /// about a minute on two CPU cores).
    pub epochs: usize,
    /// Pairs per optimisation step. Default: 64.
    pub batch_size: usize,
    /// AdamW learning rate. Default: 3e-3.
    pub learning_rate: f64,
    /// AdamW weight decay. Default: 1e-4.
    pub weight_decay: f32,
    /// Gradient-norm clipping (0 disables). Default: 1.0.
    pub grad_clip_norm: f32,
    /// Most recent tips per history the encoder sees. Default: 32.
    pub max_history: usize,
    /// Seed of the initialisation, the batch order and dropout. Default: 0.
    pub seed: u64,
    /// Beam width of composition (1: greedy). Default: 4.
    pub beam_width: usize,
    /// Grammar-constrained decoding (every output parses). Default: true.
    pub constrained: bool,
    /// Weight of the auxiliary loss: a multi-label head on the pooled history and its
    /// summary predicts which vocabulary values the reference lists (binary
    /// cross-entropy). It gives the pooled memory token a direct training signal per
    /// value. 0 disables it. Default: 1.0.
    pub aux_weight: f32,
    /// Size of the learned per-author value table (filled in by `fit` with the dataset's
    /// number of authors; authors outside it share one extra "unknown" row). Default: 0.
    pub n_authors: usize,
}

impl Default for LearnedComposerConfig {
    fn default() -> Self {
        LearnedComposerConfig {
            encoder: HistoryEncoderConfig::new([0, 0, 0]),
            generator: GeneratorConfig::new(0, 0),
            epochs: 4,
            batch_size: 64,
            learning_rate: 3e-3,
            weight_decay: 1e-4,
            grad_clip_norm: 1.0,
            max_history: 32,
            seed: 0,
            beam_width: 4,
            constrained: true,
            aux_weight: 1.0,
            n_authors: 0,
        }
    }
}

impl LearnedComposerConfig {
    /// Checks the training and decoding values (the model sizes are checked when the
    /// model is built).
    pub fn check(&self) -> Result<()> {
        check_at_least_one(&[("batch_size", self.batch_size)])?;
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(ComposerError::config(
                "learning_rate",
                format!("{} is not positive", self.learning_rate),
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(ComposerError::config(
                "weight_decay",
                "must be finite and non-negative",
            ));
        }
        if !(self.grad_clip_norm >= 0.0 && self.grad_clip_norm.is_finite()) {
            return Err(ComposerError::config(
                "grad_clip_norm",
                "must be finite and non-negative",
            ));
        }
        check_at_least_one(&[
            ("max_history", self.max_history),
            ("beam_width", self.beam_width),
        ])?;
        if !(self.aux_weight >= 0.0 && self.aux_weight.is_finite()) {
            return Err(ComposerError::config(
                "aux_weight",
                "must be finite and non-negative",
            ));
        }
        self.encoder
            .check()
            .map_err(|m| ComposerError::config("encoder", m))?;
        Ok(())
    }

    /// The decoding strategy of composition.
    pub fn strategy(&self) -> DecodeStrategy {
        if self.beam_width <= 1 {
            DecodeStrategy::Greedy
        } else {
            DecodeStrategy::Beam(self.beam_width)
        }
    }

    /// AdamW with the configured weight decay and gradient clipping.
    pub(super) fn optimizer(&self) -> ModuleOptimizer {
        let mut adam = AdamWConfig::new().with_weight_decay(self.weight_decay);
        if self.grad_clip_norm > 0.0 {
            adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(self.grad_clip_norm)));
        }
        adam.init()
    }
}

/// Deserialises `T` from a JSON object whose keys override those of `default` (Burn
/// configs alone require every field).
fn merged_over_default<'de, D, T>(default: T, d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Serialize + for<'a> Deserialize<'a>,
{
    use serde::de::Error;
    let given = serde_json::Value::deserialize(d)?;
    let mut base = serde_json::to_value(default).map_err(D::Error::custom)?;
    match (&mut base, given) {
        (serde_json::Value::Object(base), serde_json::Value::Object(given)) => base.extend(given),
        (_, other) => {
            return Err(D::Error::custom(format!(
                "expected an object, found {other}"
            )));
        }
    }
    serde_json::from_value(base).map_err(D::Error::custom)
}

fn encoder_over_default<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<HistoryEncoderConfig, D::Error> {
    merged_over_default(LearnedComposerConfig::default().encoder, d)
}

fn generator_over_default<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<GeneratorConfig, D::Error> {
    merged_over_default(LearnedComposerConfig::default().generator, d)
}
