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
//! * [`Composer::compose`] / [`Composer::compose_batch`]: history → encoder → (by default
//!   grammar-constrained) beam search → typed fields → rendered text. The embedding is the
//!   L2-normalised pooled history vector, followed by the L2-normalised sentence embedding
//!   of the composed text when the context has a text encoder. Evidence: for each listed
//!   value, the (at most three) tips with the largest pooling-attention weight.
//! * [`LearnedComposer::save`] / [`LearnedComposer::load`]: a checkpoint directory written
//!   atomically (everything goes to a temporary sibling directory that is renamed into
//!   place).

use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{gelu, softmax, softplus};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::composer::{
    ComposeContext, Composer, FieldEvidence, HistoryQuery, Preference, TrainingPair, embed_texts,
};
use crate::error::{ComposerError, Result};
use crate::generator::{DecodeStrategy, GeneratorConfig, Memory, PreferenceGenerator};
use crate::history::{
    HistoryBatch, HistoryEncoder, HistoryEncoderConfig, HistoryEncoding, SeededInit,
};
use crate::schema::PreferenceSchema;

/// File names inside a checkpoint directory.
const MODEL_FILE: &str = "model.bpk";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const CONFIG_FILE: &str = "config.json";
const SCHEMA_FILE: &str = "schema.json";
const STATE_FILE: &str = "state.json";
/// The `format` written into `state.json`.
pub const CHECKPOINT_FORMAT: &str = "mspa-learned-composer/2";
/// Evidence tips kept per value.
const EVIDENCE_TIPS: usize = 3;

/// Hyper-parameters of the [`LearnedComposer`] (serde, every field optional in JSON/TOML).
///
/// `encoder.feature_dims`, `generator.vocab_size` and `generator.d_memory` are filled in
/// by [`LearnedComposer::fit`] from the features, the schema and `encoder.d_model`;
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
        if self.batch_size == 0 {
            return Err(ComposerError::config("batch_size", "must be at least 1"));
        }
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
        if self.max_history == 0 {
            return Err(ComposerError::config("max_history", "must be at least 1"));
        }
        if self.beam_width == 0 {
            return Err(ComposerError::config("beam_width", "must be at least 1"));
        }
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

    fn optimizer(&self) -> ModuleOptimizer {
        let mut adam = AdamWConfig::new().with_weight_decay(self.weight_decay);
        if self.grad_clip_norm > 0.0 {
            adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(self.grad_clip_norm)));
        }
        adam.init()
    }
}

/// Number of history-level summary scalars (see [`history_summary`]).
pub const SUMMARY_SIZE: usize = 8;

/// Summary scalars of every history of a batch, `[B, SUMMARY_SIZE]`, computed from the
/// batch's kept window (its most recent `max_history` tips): `ln(1 + n)`,
/// `ln(1 + span days)` (age of the oldest kept tip), `ln(0.1 + tips per week)` (over the
/// span, at least 3.5 days), `ln(1 + days since the last tip)`, the mean, standard
/// deviation and maximum of `ln(1 + amount)`, and 1 for an empty history. Attention
/// pooling averages, so it cannot count; these scalars carry the rate and amount level
/// the `tipping` field is about.
pub fn history_summary(batch: &HistoryBatch) -> Tensor<2> {
    let mask = batch.mask.clone();
    let mask_f = mask.clone().float();
    let n = mask_f.clone().sum_dim(1); // [B, 1]
    let n1 = n.clone().clamp_min(1.0);
    let span = (batch.age_days.clone() * mask_f.clone()).max_dim(1);
    let rate = n.clone() / span.clone().clamp_min(3.5) * 7.0;
    let last = batch
        .age_days
        .clone()
        .mask_fill(mask.clone().bool_not(), 1.0e6)
        .min_dim(1)
        .clamp_max(365.0);
    let la = batch.log_amount.clone() * mask_f.clone();
    let mean = la.clone().sum_dim(1) / n1.clone();
    let centred = (batch.log_amount.clone() - mean.clone()) * mask_f.clone();
    let std = (centred.clone() * centred).sum_dim(1).div(n1).sqrt();
    let max = la.max_dim(1);
    let cold = mask_f.max_dim(1).neg().add_scalar(1.0);
    Tensor::cat(
        vec![
            n.log1p(),
            span.log1p(),
            rate.add_scalar(0.1).log(),
            last.log1p(),
            mean,
            std,
            max,
            cold,
        ],
        1,
    )
}

/// The encoder and the generator, trained together, with the history summary and the
/// auxiliary value head.
#[derive(Module, Debug)]
pub struct LearnedModel {
    /// The history encoder.
    pub encoder: HistoryEncoder,
    /// The preference generator.
    pub generator: PreferenceGenerator,
    /// [`history_summary`] to the encoder width (first layer).
    pub summary_in: Linear,
    /// Second layer of the summary projection; its output is an extra memory token.
    pub summary_out: Linear,
    /// Multi-label head over the schema's values (`PreferenceSchema::multi_hot` order)
    /// from the pooled history, the summary token and the value token.
    pub aux: Linear,
    /// Per-tip value logits from the author's features `F -> n_values`.
    pub value_features: Linear,
    /// Per-author value logits learned from the references, `[n_authors + 1, n_values]`
    /// (the last row stands for authors outside the table).
    pub value_authors: Embedding,
    /// The pooled value distribution `n_values -> D`, an extra memory token.
    pub value_proj: Linear,
    /// Gate of the value prior: `gate * ln p(value)` is added to the logit of the value's
    /// token, `[1]`.
    pub value_gate: Param<Tensor<1>>,
    /// The token id of every multi-hot index (constant).
    pub value_token_ids: Vec<usize>,
    /// The vocabulary size (constant).
    pub vocab_size: usize,
    /// Value segments (start, len) of the multi-hot layout: one per list field and one per
    /// tuple slot; each is a distribution.
    pub segments: Vec<(usize, usize)>,
}

/// What the model computes before decoding.
struct Encoded {
    encoding: HistoryEncoding,
    memory: Memory,
    /// Logits of the auxiliary value head `[B, n_values]`.
    aux_logits: Tensor<2>,
    /// Log of the pooled per-field value distributions `[B, n_values]`.
    log_values: Tensor<2>,
}

impl LearnedModel {
    /// Builds the model for `n_values` schema values (configs already completed by
    /// `fit`).
    fn init(config: &LearnedComposerConfig, schema: &PreferenceSchema, device: &Device) -> Self {
        let n_values = schema.n_values();
        let mut segments = Vec::new();
        let mut start = 0;
        for f in &schema.fields {
            for slot in f.slot_values() {
                segments.push((start, slot.len()));
                start += slot.len();
            }
        }
        let mut value_token_ids = Vec::with_capacity(n_values);
        for (k, f) in schema.fields.iter().enumerate() {
            for (slot, values) in f.slot_values().iter().enumerate() {
                for v in values.iter() {
                    value_token_ids.push(schema.value_token(k, slot, v).unwrap_or(0) as usize);
                }
            }
        }
        let d = config.encoder.d_model;
        let mut init = SeededInit::new(config.encoder.seed, 3);
        LearnedModel {
            encoder: config.encoder.init(device),
            generator: config.generator.init(device),
            summary_in: init.linear(SUMMARY_SIZE, d, true, device),
            summary_out: init.linear(d, d, true, device),
            aux: init.linear(d, n_values.max(1), true, device),
            value_features: init.linear(
                config.encoder.feature_dims.iter().sum::<usize>().max(1),
                n_values.max(1),
                true,
                device,
            ),
            value_authors: init.embedding(config.n_authors + 1, n_values.max(1), 0.01, device),
            value_proj: init.linear(n_values.max(1), d, true, device),
            value_gate: Param::from_data(TensorData::new(vec![1.0f32], [1]), device),
            value_token_ids,
            vocab_size: schema.vocab_size(),
            segments,
        }
    }

    fn encode(&self, batch: &HistoryBatch) -> Encoded {
        let encoding = self.encoder.forward(batch);
        let [b, d] = encoding.pooled.dims();
        let summary = self
            .summary_out
            .forward(gelu(self.summary_in.forward(history_summary(batch))));
        // Per-tip value distributions (per field / slot), pooled with the encoder's
        // attention weights: the user's value weights as a mixture of its authors'.
        let [_, l, _] = batch.authors.dims();
        let n_rows = self.value_authors.weight.dims()[0];
        let ids = batch.author_ids.clone().clamp(0, n_rows as i64 - 1);
        let tip_logits =
            self.value_features.forward(batch.authors.clone()) + self.value_authors.forward(ids);
        let v = tip_logits.dims()[2];
        let probs = if self.segments.is_empty() {
            softmax(tip_logits, 2)
        } else {
            Tensor::cat(
                self.segments
                    .iter()
                    .map(|&(start, len)| softmax(tip_logits.clone().narrow(2, start, len), 2))
                    .collect(),
                2,
            )
        };
        let values = encoding
            .weights
            .clone()
            .reshape([b, 1, l])
            .matmul(probs)
            .reshape([b, v]);
        let value_token = self.value_proj.forward(values.clone());
        let log_values = values.clone().clamp_min(1e-4).log();
        let mut map = vec![0.0f32; v * self.vocab_size];
        for (hot, &tok) in self.value_token_ids.iter().enumerate().take(v) {
            map[hot * self.vocab_size + tok] = 1.0;
        }
        let map =
            Tensor::<2>::from_data(TensorData::new(map, [v, self.vocab_size]), &values.device());
        let logit_bias = log_values.clone().matmul(map) * self.value_gate.val().reshape([1, 1]);
        let aux_logits = self
            .aux
            .forward(encoding.pooled.clone() + summary.clone() + value_token.clone());
        let mut memory = self.generator.memory_with_extra(
            &encoding,
            &batch.mask,
            Some(Tensor::cat(
                vec![summary.reshape([b, 1, d]), value_token.reshape([b, 1, d])],
                1,
            )),
        );
        memory.logit_bias = Some(logit_bias);
        Encoded {
            encoding,
            memory,
            aux_logits,
            log_values,
        }
    }

    /// Teacher-forcing loss of one batch (scalar `[1]`), without the auxiliary term.
    pub fn loss(&self, batch: &HistoryBatch, targets: &[Vec<u32>]) -> Tensor<1> {
        let encoded = self.encode(batch);
        self.generator.loss(&encoded.memory, targets)
    }

    /// Teacher-forcing loss plus `aux_weight` times the binary cross-entropy of the value
    /// head against `multi_hot` (`[B, n_values]`, [`PreferenceSchema::multi_hot`] of the
    /// references).
    pub fn training_loss(
        &self,
        batch: &HistoryBatch,
        targets: &[Vec<u32>],
        multi_hot: Tensor<2>,
        aux_weight: f32,
    ) -> Tensor<1> {
        let encoded = self.encode(batch);
        let loss = self.generator.loss(&encoded.memory, targets);
        if aux_weight == 0.0 {
            return loss;
        }
        let x = encoded.aux_logits;
        // BCE with logits: softplus(x) - y x.
        let bce = (softplus(x.clone(), 1.0) - x * multi_hot.clone()).mean();
        // Cross-entropy of the pooled value distributions against the listed values
        // (each listed value of a field an equal share), summed over fields.
        let [b, _] = multi_hot.dims();
        let mut ce = Tensor::<1>::zeros([1], &multi_hot.device());
        for &(start, len) in &self.segments {
            let t = multi_hot.clone().narrow(1, start, len);
            let t = t.clone() / t.sum_dim(1).clamp_min(1.0);
            let lp = encoded.log_values.clone().narrow(1, start, len);
            ce = ce + (t * lp).sum().neg().div_scalar(b as f64);
        }
        loss + (bce + ce.div_scalar(self.segments.len().max(1) as f64)).mul_scalar(aux_weight)
    }
}

/// Training progress stored with a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CheckpointState {
    format: String,
    epochs_done: usize,
    loss_curve: Vec<f64>,
    has_optimizer: bool,
}

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

impl std::fmt::Debug for LearnedComposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LearnedComposer")
            .field("config", &self.config)
            .field("epochs_done", &self.epochs_done)
            .field("loss_curve", &self.loss_curve)
            .finish_non_exhaustive()
    }
}

/// Deterministic permutation of `0..n` for `(seed, epoch)` (Fisher–Yates, splitmix64).
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state =
        seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5851_F42D_4C95_7F2D;
    for i in (1..n).rev() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        order.swap(i, (z % (i as u64 + 1)) as usize);
    }
    order
}

/// The longest token sequence the schema's grammar allows (EOS included): every list
/// field at its `max` values plus its end token, every tuple slot, EOS.
pub fn grammar_max_tokens(schema: &PreferenceSchema) -> usize {
    schema
        .fields
        .iter()
        .map(|f| match &f.kind {
            crate::schema::FieldKind::List { max, .. } => max + 1,
            crate::schema::FieldKind::Tuple { slots } => slots.len(),
        })
        .sum::<usize>()
        + 1
}

fn l2_normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

fn io_err(path: &Path, source: std::io::Error) -> ComposerError {
    ComposerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ComposerError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|e| io_err(path, e))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| ComposerError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The training examples of `train`: queries and encoded reference token sequences.
fn training_targets(schema: &PreferenceSchema, train: &[TrainingPair]) -> Result<Vec<Vec<u32>>> {
    train
        .iter()
        .map(|pair| {
            let fields = schema.parse(&pair.reference).map_err(|e| {
                ComposerError::data(format!(
                    "reference of user {} does not parse: {e}",
                    pair.user.0
                ))
            })?;
            Ok(schema.encode(&fields))
        })
        .collect()
}

impl LearnedComposer {
    /// Trains a composer on `train` (teacher forcing on `schema.encode(schema.parse(
    /// reference))`), jointly for the encoder and the generator, on `device.autodiff()`.
    /// `progress` gets `(epoch, mean loss)` after every epoch.
    ///
    /// Fails on an invalid config, no training pairs, missing features, a reference that
    /// does not parse, a tip of an unknown author, or a non-finite loss.
    pub fn fit(
        config: LearnedComposerConfig,
        schema: &PreferenceSchema,
        ctx: &ComposeContext<'_>,
        train: &[TrainingPair],
        device: &Device,
        progress: impl FnMut(usize, f64),
    ) -> Result<LearnedComposer> {
        let mut config = config;
        config.check()?;
        let features = ctx.features.ok_or_else(|| {
            ComposerError::config("features", "the learned composer needs author features")
        })?;
        let dims = features
            .first()
            .map(|f| f.dims())
            .ok_or_else(|| ComposerError::data("no author features"))?;
        if train.is_empty() {
            return Err(ComposerError::data("no training pairs"));
        }
        let targets = training_targets(schema, train)?;
        config.encoder.feature_dims = dims;
        config.generator.vocab_size = schema.vocab_size();
        config.n_authors = ctx.dataset.n_authors();
        config.generator.d_memory = config.encoder.d_model;
        let longest = targets
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .max(grammar_max_tokens(schema));
        config.generator.max_len = config.generator.max_len.max(longest);
        config
            .generator
            .check()
            .map_err(|m| ComposerError::config("generator", m))?;
        let model = LearnedModel::init(&config, &schema, device);
        let mut composer = LearnedComposer {
            optimizer: None,
            config,
            schema: schema.clone(),
            model,
            device: device.clone(),
            epochs_done: 0,
            loss_curve: Vec::new(),
        };
        let epochs = composer.config.epochs;
        composer.train(ctx, train, &targets, epochs, progress)?;
        Ok(composer)
    }

    /// Loads the checkpoint in `dir` and trains it for `epochs` more epochs, continuing
    /// the optimizer state, the epoch counter (batch order and dropout seeds follow it)
    /// and the loss curve. The schema is the checkpoint's.
    pub fn fit_resume(
        dir: &Path,
        ctx: &ComposeContext<'_>,
        train: &[TrainingPair],
        device: &Device,
        epochs: usize,
        progress: impl FnMut(usize, f64),
    ) -> Result<LearnedComposer> {
        let mut composer = Self::load(dir, device)?;
        if train.is_empty() {
            return Err(ComposerError::data("no training pairs"));
        }
        let targets = training_targets(&composer.schema, train)?;
        composer.train(ctx, train, &targets, epochs, progress)?;
        Ok(composer)
    }

    /// The training loop: `epochs` epochs starting at `self.epochs_done`.
    fn train(
        &mut self,
        ctx: &ComposeContext<'_>,
        train: &[TrainingPair],
        targets: &[Vec<u32>],
        epochs: usize,
        mut progress: impl FnMut(usize, f64),
    ) -> Result<()> {
        let features = ctx.features.ok_or_else(|| {
            ComposerError::config("features", "the learned composer needs author features")
        })?;
        let dims = self.config.encoder.feature_dims;
        if features.first().map(|f| f.dims()) != Some(dims) {
            return Err(ComposerError::data(format!(
                "author features have sizes {:?}, the model was built for {dims:?}",
                features.first().map(|f| f.dims())
            )));
        }
        let n_events = ctx.dataset.events().len();
        for pair in train {
            if pair.tips.end > n_events || pair.tips.start > pair.tips.end {
                return Err(ComposerError::data(format!(
                    "training pair of user {} has tips {:?} outside the {n_events} events",
                    pair.user.0, pair.tips
                )));
            }
        }
        let ad = self.device.clone().autodiff();
        let mut model = self.model.clone().fork(&ad).train();
        let mut optim = self
            .optimizer
            .take()
            .unwrap_or_else(|| self.config.optimizer());
        let lr = self.config.learning_rate;
        let n_values = self.schema.n_values();
        let hots: Vec<Vec<f32>> = targets
            .iter()
            .map(|t| {
                self.schema
                    .decode(t)
                    .map(|f| self.schema.multi_hot(&f))
                    .unwrap_or_else(|_| vec![0.0; n_values])
            })
            .collect();
        for epoch in self.epochs_done..self.epochs_done + epochs {
            // Dropout draws from the device generator: seed it per epoch for repeatability.
            ad.seed(
                self.config
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add(epoch as u64),
            );
            let order = epoch_order(train.len(), self.config.seed, epoch);
            let (mut sum, mut count) = (0.0f64, 0usize);
            for (step, chunk) in order.chunks(self.config.batch_size).enumerate() {
                let queries: Vec<HistoryQuery<'_>> =
                    chunk.iter().map(|&i| train[i].query(ctx.dataset)).collect();
                let batch_targets: Vec<Vec<u32>> =
                    chunk.iter().map(|&i| targets[i].clone()).collect();
                let batch = HistoryBatch::build_with_dims(
                    features,
                    dims,
                    &queries,
                    self.config.max_history,
                    &ad,
                );
                let hot: Vec<f32> = chunk
                    .iter()
                    .flat_map(|&i| hots[i].iter().copied())
                    .collect();
                let hot =
                    Tensor::<2>::from_data(TensorData::new(hot, [chunk.len(), n_values]), &ad);
                let loss = model.training_loss(&batch, &batch_targets, hot, self.config.aux_weight);
                let value = f64::from(loss.clone().into_scalar::<f32>());
                if !value.is_finite() {
                    return Err(ComposerError::config(
                        "learning_rate",
                        format!(
                            "loss is {value} at epoch {epoch}, step {step}: lower the learning rate"
                        ),
                    ));
                }
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
                sum += value * chunk.len() as f64;
                count += chunk.len();
            }
            let mean = sum / count.max(1) as f64;
            self.loss_curve.push(mean);
            progress(epoch, mean);
        }
        self.epochs_done += epochs;
        self.model = model.valid();
        self.optimizer = Some(optim);
        Ok(())
    }

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

    /// Mean teacher-forcing loss of `pairs` under the current model (no training).
    pub fn evaluate_loss(&self, ctx: &ComposeContext<'_>, pairs: &[TrainingPair]) -> Result<f64> {
        let features = ctx.features.ok_or_else(|| {
            ComposerError::config("features", "the learned composer needs author features")
        })?;
        let targets = training_targets(&self.schema, pairs)?;
        let (mut sum, mut count) = (0.0f64, 0usize);
        for (chunk, tchunk) in pairs
            .chunks(self.config.batch_size)
            .zip(targets.chunks(self.config.batch_size))
        {
            let queries: Vec<HistoryQuery<'_>> =
                chunk.iter().map(|p| p.query(ctx.dataset)).collect();
            let batch = HistoryBatch::build_with_dims(
                features,
                self.config.encoder.feature_dims,
                &queries,
                self.config.max_history,
                &self.device,
            );
            let value = self.model.loss(&batch, tchunk).into_scalar::<f32>();
            sum += f64::from(value) * chunk.len() as f64;
            count += chunk.len();
        }
        Ok(sum / count.max(1) as f64)
    }

    /// Writes a checkpoint into `dir` (created, or replaced as a whole): `model.bpk`,
    /// `optimizer.bpk` (when trained in this process), `config.json`, `schema.json` and
    /// `state.json` (epoch counter and loss curve). Everything is written into a
    /// temporary sibling directory first, which is then renamed to `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| io_err(&parent, e))?;
        let name = dir
            .file_name()
            .ok_or_else(|| {
                ComposerError::config("dir", format!("{} has no file name", dir.display()))
            })?
            .to_string_lossy()
            .into_owned();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmp = parent.join(format!(".{name}.tmp-{}-{stamp}", std::process::id()));
        let result = self.write_into(&tmp).and_then(|()| {
            let old = parent.join(format!(".{name}.old-{}-{stamp}", std::process::id()));
            let had_old = dir.exists();
            if had_old {
                std::fs::rename(dir, &old).map_err(|e| io_err(dir, e))?;
            }
            if let Err(e) = std::fs::rename(&tmp, dir) {
                if had_old {
                    let _ = std::fs::rename(&old, dir);
                }
                return Err(io_err(dir, e));
            }
            if had_old {
                std::fs::remove_dir_all(&old).map_err(|e| io_err(&old, e))?;
            }
            Ok(())
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_into(&self, tmp: &Path) -> Result<()> {
        std::fs::create_dir_all(tmp).map_err(|e| io_err(tmp, e))?;
        let model_path = tmp.join(MODEL_FILE);
        self.model
            .clone()
            .save_file(&model_path)
            .map_err(|e| ComposerError::Checkpoint {
                path: model_path.clone(),
                message: e.to_string(),
            })?;
        if let Some(optim) = &self.optimizer {
            let path = tmp.join(OPTIMIZER_FILE);
            optim.save(&path).map_err(|e| ComposerError::Checkpoint {
                path: path.clone(),
                message: e.to_string(),
            })?;
        }
        write_json(&tmp.join(CONFIG_FILE), &self.config)?;
        write_json(&tmp.join(SCHEMA_FILE), &self.schema)?;
        write_json(
            &tmp.join(STATE_FILE),
            &CheckpointState {
                format: CHECKPOINT_FORMAT.into(),
                epochs_done: self.epochs_done,
                loss_curve: self.loss_curve.clone(),
                has_optimizer: self.optimizer.is_some(),
            },
        )
    }

    /// Reads a checkpoint written by [`LearnedComposer::save`] onto `device`. The optimizer
    /// state is loaded too (used by [`LearnedComposer::fit_resume`]).
    pub fn load(dir: &Path, device: &Device) -> Result<LearnedComposer> {
        let state: CheckpointState = read_json(&dir.join(STATE_FILE))?;
        if state.format != CHECKPOINT_FORMAT {
            return Err(ComposerError::Checkpoint {
                path: dir.join(STATE_FILE),
                message: format!("format `{}`, expected `{CHECKPOINT_FORMAT}`", state.format),
            });
        }
        let config: LearnedComposerConfig = read_json(&dir.join(CONFIG_FILE))?;
        config.check()?;
        config
            .generator
            .check()
            .map_err(|m| ComposerError::config("generator", m))?;
        let schema: PreferenceSchema = read_json(&dir.join(SCHEMA_FILE))?;
        if schema.vocab_size() != config.generator.vocab_size {
            return Err(ComposerError::Checkpoint {
                path: dir.join(SCHEMA_FILE),
                message: format!(
                    "schema has {} tokens, the generator {}",
                    schema.vocab_size(),
                    config.generator.vocab_size
                ),
            });
        }
        let model_path = dir.join(MODEL_FILE);
        let model = LearnedModel::init(&config, &schema, device)
            .try_load_file(&model_path)
            .map_err(|e| ComposerError::Checkpoint {
                path: model_path.clone(),
                message: e.to_string(),
            })?;
        let optimizer = if state.has_optimizer {
            let path = dir.join(OPTIMIZER_FILE);
            Some(
                config
                    .optimizer()
                    .load(&path)
                    .map_err(|e| ComposerError::Checkpoint {
                        path: path.clone(),
                        message: e.to_string(),
                    })?,
            )
        } else {
            None
        };
        Ok(LearnedComposer {
            config,
            schema,
            model,
            device: device.clone(),
            epochs_done: state.epochs_done,
            loss_curve: state.loss_curve,
            optimizer,
        })
    }

    /// Composes a chunk of at most `batch_size` queries.
    fn compose_chunk(
        &self,
        ctx: &ComposeContext<'_>,
        queries: &[HistoryQuery<'_>],
    ) -> Result<Vec<Preference>> {
        let features = ctx.features.ok_or_else(|| {
            ComposerError::config("features", "the learned composer needs author features")
        })?;
        let batch = HistoryBatch::build_with_dims(
            features,
            self.config.encoder.feature_dims,
            queries,
            self.config.max_history,
            &self.device,
        );
        let Encoded {
            encoding, memory, ..
        } = self.model.encode(&batch);
        let schema = self.config.constrained.then_some(&self.schema);
        let hypotheses = self
            .model
            .generator
            .decode(&memory, self.config.strategy(), schema)?;
        let read = |t: burn::tensor::Tensor<2>| {
            t.into_data()
                .try_to_vec::<f32>()
                .map_err(|e| ComposerError::data(format!("reading encoder output: {e:?}")))
        };
        let d = self.model.encoder.d_model();
        let l = batch.max_len();
        let pooled = read(encoding.pooled)?;
        let weights = read(encoding.weights)?;
        let mut fields = Vec::with_capacity(queries.len());
        for (row, hyp) in hypotheses.iter().enumerate() {
            if !hyp.finished {
                return Err(ComposerError::parse(
                    hyp.tokens.len(),
                    format!(
                        "the generator did not finish within {} tokens",
                        self.model.generator.max_len()
                    ),
                ));
            }
            let f = self.schema.decode(&hyp.tokens).map_err(|e| {
                ComposerError::parse(
                    row,
                    format!("generated tokens do not decode (unconstrained decoding): {e}"),
                )
            })?;
            fields.push(f);
        }
        let texts: Vec<String> = fields.iter().map(|f| self.schema.render(f)).collect();
        let text_vectors = ctx
            .text_encoder
            .map(|e| embed_texts(e, &texts))
            .transpose()?;
        let mut out = Vec::with_capacity(queries.len());
        for (row, (f, text)) in fields.into_iter().zip(texts).enumerate() {
            let mut embedding = l2_normalised(&pooled[row * d..(row + 1) * d]);
            if let Some(tv) = &text_vectors {
                embedding.extend_from_slice(&tv[row]); // unit length already
            }
            // Tips by pooling weight, strongest first.
            let kept = &batch.kept[row];
            let w = &weights[row * l..row * l + kept.len()];
            let mut slots: Vec<usize> = (0..kept.len()).collect();
            slots.sort_by(|&a, &b| w[b].total_cmp(&w[a]).then(b.cmp(&a)));
            let top: Vec<usize> = slots
                .into_iter()
                .take(EVIDENCE_TIPS)
                .map(|s| kept.start + s)
                .collect();
            let evidence = self
                .schema
                .fields
                .iter()
                .zip(&f.values)
                .flat_map(|(spec, values)| {
                    values.iter().map(|v| FieldEvidence {
                        field: spec.name.clone(),
                        value: v.clone(),
                        tips: top.clone(),
                    })
                })
                .collect();
            out.push(Preference {
                text,
                fields: f,
                embedding,
                evidence,
            });
        }
        Ok(out)
    }
}

impl Composer for LearnedComposer {
    fn name(&self) -> &str {
        "learned"
    }

    fn compose(&self, ctx: &ComposeContext<'_>, query: HistoryQuery<'_>) -> Result<Preference> {
        let mut out = self.compose_chunk(ctx, std::slice::from_ref(&query))?;
        Ok(out.remove(0))
    }

    fn compose_batch(
        &self,
        ctx: &ComposeContext<'_>,
        queries: &[HistoryQuery<'_>],
    ) -> Result<Vec<Preference>> {
        let mut out = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(self.config.batch_size.max(1)) {
            out.extend(self.compose_chunk(ctx, chunk)?);
        }
        Ok(out)
    }
}
