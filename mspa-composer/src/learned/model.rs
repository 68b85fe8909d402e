//! [`LearnedModel`]: the history encoder, the generator and the value and summary heads
//! between them, read top-down as module, init, forward, losses; then the history
//! summary scalars the model reads ([`history_summary`]).
//!
//! The hyper-parameters are [`LearnedComposerConfig`](super::LearnedComposerConfig).

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::tensor::activation::{gelu, softmax, softplus};
use burn::tensor::{Device, Tensor, TensorData};

use super::LearnedComposerConfig;
use crate::generator::{Memory, PreferenceGenerator};
use crate::history::{HistoryBatch, HistoryEncoder, HistoryEncoding, SeededInit};
use crate::schema::PreferenceSchema;

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
pub(super) struct Encoded {
    /// The encoder's output (pooled vector, attention weights, tip tokens).
    pub(super) encoding: HistoryEncoding,
    /// The generator's memory, with the summary and value tokens and the value prior.
    pub(super) memory: Memory,
    /// Logits of the auxiliary value head `[B, n_values]`.
    pub(super) aux_logits: Tensor<2>,
    /// Log of the pooled per-field value distributions `[B, n_values]`.
    pub(super) log_values: Tensor<2>,
}

impl LearnedModel {
    /// Builds the model for `n_values` schema values (configs already completed by
    /// `fit`).
    pub(super) fn init(
        config: &LearnedComposerConfig,
        schema: &PreferenceSchema,
        device: &Device,
    ) -> Self {
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
        let mut init = SeededInit::salted(config.encoder.seed, 3);
        LearnedModel {
            encoder: config.encoder.init(device),
            generator: config.generator.init(device),
            summary_in: init.linear(SUMMARY_SIZE, d, true, 1.0, device),
            summary_out: init.linear(d, d, true, 1.0, device),
            aux: init.linear(d, n_values.max(1), true, 1.0, device),
            value_features: init.linear(
                config.encoder.feature_dims.iter().sum::<usize>().max(1),
                n_values.max(1),
                true,
                1.0,
                device,
            ),
            value_authors: init.embedding(config.n_authors + 1, n_values.max(1), 0.01, device),
            value_proj: init.linear(n_values.max(1), d, true, 1.0, device),
            value_gate: Param::from_data(TensorData::new(vec![1.0f32], [1]), device),
            value_token_ids,
            vocab_size: schema.vocab_size(),
            segments,
        }
    }

    /// The forward pass up to decoding: encoder, summary and value tokens, the generator's
    /// memory with the value prior as a logit bias, and the auxiliary value head.
    ///
    /// # Shapes
    ///
    /// * `batch`: `B` histories of at most `L` tips.
    /// * output: `aux_logits` and `log_values` `[B, n_values]`; the memory holds the
    ///   encoder's tokens plus two (summary, value), `logit_bias` `[B, vocab_size]`.
    pub(super) fn encode(&self, batch: &HistoryBatch) -> Encoded {
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
    ///
    /// # Shapes
    ///
    /// * `batch`: `B` histories; `targets`: `B` token sequences (no BOS).
    /// * output: `[1]`.
    pub fn loss(&self, batch: &HistoryBatch, targets: &[Vec<u32>]) -> Tensor<1> {
        let encoded = self.encode(batch);
        self.generator.loss(&encoded.memory, targets)
    }

    /// Teacher-forcing loss plus `aux_weight` times the binary cross-entropy of the value
    /// head against `multi_hot` (`[B, n_values]`, [`PreferenceSchema::multi_hot`] of the
    /// references).
    ///
    /// # Shapes
    ///
    /// * `batch`: `B` histories; `targets`: `B` token sequences (no BOS).
    /// * `multi_hot`: `[B, n_values]`.
    /// * output: `[1]`.
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
