//! The history encoder: a user's tips (who, how much, how long ago, how often before) and
//! the multimodal features of the tipped authors, in; one memory token per tip and a
//! pooled history vector, out.
//!
//! Every tip becomes a token: a projection of each modality of the author's features
//! (masked by presence; a learned "missing" vector stands in for an absent modality),
//! plus a projection of its scalars (`log(1 + amount)`, `log(1 + age in days)`, repeat
//! count). A small pre-norm transformer encoder lets tips see each other (padding keys
//! masked). Pooling is an attention whose logit for tip `i` is
//!
//! ```text
//! q·h_i + w_amount · log_amount_i − softplus(decay) · age_days_i + w_repeat · repeat_i
//! ```
//!
//! masked on padding, so generous, repeated and (with a learned decay) recent tips weigh
//! more, and a drifted preference is read from the recent end of the history. A user
//! without tips (an all-padding row) gets a learned `cold` vector, never NaN.
//!
//! The encoder is shared with `mspa-align`'s recommender, which is why [`HistoryBatch`]
//! is built from [`AuthorFeatures`] and [`HistoryQuery`]s only.

use std::ops::Range;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::{gelu, softmax, softplus};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use mspa_core::DAY_MS;
use mspa_modal::features::AuthorFeatures;
pub(crate) use mspa_modal::init::SeededInit;

use crate::composer::HistoryQuery;

/// Logit given to padding keys: low enough for an exact zero after softmax, finite so an
/// all-padding row stays defined.
pub(crate) const MASKED: f32 = -1.0e9;

/// A padded batch of histories, most recent `max_len` tips per user, oldest first.
///
/// Padding slots hold zeros everywhere and `mask == false`.
#[derive(Clone, Debug)]
pub struct HistoryBatch {
    /// Fused author features `[B, L, F]`: visual ++ audio ++ text, zeros where a modality
    /// is missing.
    pub authors: Tensor<3>,
    /// Which modalities are present `[B, L, 3]` (1.0 / 0.0, order visual, audio, text).
    pub presence: Tensor<3>,
    /// `ln(1 + amount)` of every tip `[B, L]`.
    pub log_amount: Tensor<2>,
    /// `(at_ms − tip time) / day`, clamped at 0, `[B, L]`.
    pub age_days: Tensor<2>,
    /// `ln(1 + n)` where `n` counts the user's earlier tips (in the whole query, not only
    /// the kept window) to the same author, `[B, L]`.
    pub repeat: Tensor<2>,
    /// `[B, L]`, `true` at real tips.
    pub mask: Tensor<2, Bool>,
    /// `[B, L]`: the tipped author's `AuthorId`, 0 on padding (use `mask` to tell a padding
    /// slot from author 0).
    pub author_ids: Tensor<2, Int>,
    /// For each row, the positions in [`HistoryQuery::tips`] held by slots `0..len`
    /// (slot `s` holds tip `kept[b].start + s`).
    pub kept: Vec<Range<usize>>,
    /// Sizes of the three modality blocks of `authors`.
    pub feature_dims: [usize; 3],
}

impl HistoryBatch {
    /// Builds a batch; feature sizes come from the first entry of `features` (all zeros
    /// when `features` is empty). See [`HistoryBatch::build_with_dims`].
    pub fn build(
        features: &[AuthorFeatures],
        queries: &[HistoryQuery<'_>],
        max_len: usize,
        device: &Device,
    ) -> Self {
        let dims = features.first().map(|f| f.dims()).unwrap_or([0; 3]);
        Self::build_with_dims(features, dims, queries, max_len, device)
    }

    /// Builds a batch with explicit feature sizes. `features` is indexed by `AuthorId`;
    /// an author outside it, or whose vectors have other sizes, counts as having no
    /// modality. Keeps the most recent `max_len` tips of every query (at least one slot
    /// per row, so a batch of empty histories has `L == 1`, all padding).
    pub fn build_with_dims(
        features: &[AuthorFeatures],
        dims: [usize; 3],
        queries: &[HistoryQuery<'_>],
        max_len: usize,
        device: &Device,
    ) -> Self {
        let b = queries.len();
        let max_len = max_len.max(1);
        let kept: Vec<Range<usize>> = queries
            .iter()
            .map(|q| q.tips.len().saturating_sub(max_len)..q.tips.len())
            .collect();
        let l = kept.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let f: usize = dims.iter().sum();
        let mut authors = vec![0.0f32; b * l * f];
        let mut presence = vec![0.0f32; b * l * 3];
        let mut log_amount = vec![0.0f32; b * l];
        let mut age_days = vec![0.0f32; b * l];
        let mut repeat = vec![0.0f32; b * l];
        let mut mask = vec![false; b * l];
        let mut ids = vec![0i64; b * l];
        let offsets = [0, dims[0], dims[0] + dims[1]];
        for (row, (q, range)) in queries.iter().zip(&kept).enumerate() {
            // Earlier tips per author over the whole query.
            let mut seen: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
            for (pos, tip) in q.tips.iter().enumerate() {
                let before = seen.entry(tip.author.0).or_insert(0);
                let count = *before;
                *before += 1;
                if !range.contains(&pos) {
                    continue;
                }
                let slot = row * l + (pos - range.start);
                mask[slot] = true;
                ids[slot] = i64::from(tip.author.0);
                let amount = if tip.amount.is_finite() {
                    tip.amount.max(0.0)
                } else {
                    0.0
                };
                log_amount[slot] = amount.ln_1p() as f32;
                age_days[slot] = ((q.at_ms - tip.timestamp_ms) as f64 / DAY_MS).max(0.0) as f32;
                repeat[slot] = f64::from(count).ln_1p() as f32;
                if let Some(feat) = features.get(tip.author.index())
                    && feat.dims() == dims
                {
                    let base = slot * f;
                    for (m, vector) in [&feat.visual, &feat.audio, &feat.text]
                        .into_iter()
                        .enumerate()
                    {
                        if feat.present[m] {
                            presence[slot * 3 + m] = 1.0;
                            let start = base + offsets[m];
                            authors[start..start + dims[m]].copy_from_slice(vector);
                        }
                    }
                }
            }
        }
        HistoryBatch {
            authors: Tensor::from_data(TensorData::new(authors, [b, l, f]), device),
            presence: Tensor::from_data(TensorData::new(presence, [b, l, 3]), device),
            log_amount: Tensor::from_data(TensorData::new(log_amount, [b, l]), device),
            age_days: Tensor::from_data(TensorData::new(age_days, [b, l]), device),
            repeat: Tensor::from_data(TensorData::new(repeat, [b, l]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, l]), device),
            author_ids: Tensor::from_data(TensorData::new(ids, [b, l]), device),
            kept,
            feature_dims: dims,
        }
    }

    /// Number of histories.
    pub fn batch_size(&self) -> usize {
        self.mask.dims()[0]
    }

    /// Number of slots per history.
    pub fn max_len(&self) -> usize {
        self.mask.dims()[1]
    }

    /// The rows `rows` of the batch, in that order (e.g. to repeat users for beam search).
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        let device = self.mask.device();
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(
                rows.iter().map(|&r| r as i64).collect::<Vec<_>>(),
                [rows.len()],
            ),
            &device,
        );
        HistoryBatch {
            authors: self.authors.clone().select(0, index.clone()),
            presence: self.presence.clone().select(0, index.clone()),
            log_amount: self.log_amount.clone().select(0, index.clone()),
            age_days: self.age_days.clone().select(0, index.clone()),
            repeat: self.repeat.clone().select(0, index.clone()),
            mask: self.mask.clone().int().select(0, index.clone()).bool(),
            author_ids: self.author_ids.clone().select(0, index),
            kept: rows.iter().map(|&r| self.kept[r].clone()).collect(),
            feature_dims: self.feature_dims,
        }
    }
}

/// A parameter holding given constant values (e.g. a scalar weight's starting value).
pub(crate) fn constant_param(values: Vec<f32>, device: &Device) -> Param<Tensor<1>> {
    let n = values.len();
    Param::from_data(TensorData::new(values, [n]), device)
}

/// Multi-head scaled dot-product attention with separate query and key/value inputs
/// (self-attention passes the same tensor twice).
#[derive(Module, Debug)]
pub struct Attention {
    /// Query projection `d -> d`.
    pub query: Linear,
    /// Key projection `d -> d`.
    pub key: Linear,
    /// Value projection `d -> d`.
    pub value: Linear,
    /// Output projection `d -> d`.
    pub output: Linear,
    /// Dropout on the attention weights.
    pub dropout: Dropout,
    /// Number of heads.
    pub heads: usize,
}

impl Attention {
    pub(crate) fn init(
        init: &mut SeededInit,
        d: usize,
        heads: usize,
        dropout: f64,
        device: &Device,
    ) -> Self {
        Attention {
            query: init.linear(d, d, true, 1.0, device),
            key: init.linear(d, d, true, 1.0, device),
            value: init.linear(d, d, true, 1.0, device),
            output: init.linear(d, d, true, 1.0, device),
            dropout: DropoutConfig::new(dropout).init(),
            heads,
        }
    }

    /// Attends from `query` to `memory`; `bias` is added to the scores (0 for allowed keys,
    /// `MASKED` for masked ones) and must broadcast to `[B, heads, Tq, Tk]`.
    ///
    /// # Shapes
    /// - `query`: `[B, Tq, d]`, `memory`: `[B, Tk, d]`
    /// - output: (`[B, Tq, d]`, head-averaged weights `[B, Tq, Tk]`)
    pub fn forward(
        &self,
        query: Tensor<3>,
        memory: Tensor<3>,
        bias: Option<Tensor<4>>,
    ) -> (Tensor<3>, Tensor<3>) {
        let [b, tq, _] = query.dims();
        let [_, tk, _] = memory.dims();
        let q = self.split_heads(&self.query, query);
        let k = self.split_heads(&self.key, memory.clone());
        let v = self.split_heads(&self.value, memory);
        let (out, weights) = self.attend(q, k, v, bias);
        (out, weights.mean_dim(1).reshape([b, tq, tk]))
    }

    /// `x` through the projection `linear`, split into heads.
    ///
    /// # Shapes
    /// - `x`: `[B, T, d]`, output: `[B, heads, T, d / heads]`
    pub(crate) fn split_heads(&self, linear: &Linear, x: Tensor<3>) -> Tensor<4> {
        let [b, t, d] = x.dims();
        linear
            .forward(x)
            .reshape([b, t, self.heads, d / self.heads])
            .swap_dims(1, 2)
    }

    /// Scaled dot-product attention of projected queries over projected keys and values
    /// (from [`Attention::split_heads`]), then the output projection; `bias` as in
    /// [`Attention::forward`].
    ///
    /// # Shapes
    /// - `q`: `[B, heads, Tq, hd]`, `k`, `v`: `[B, heads, Tk, hd]`
    /// - output: (`[B, Tq, heads * hd]`, per-head weights `[B, heads, Tq, Tk]`)
    pub(crate) fn attend(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        bias: Option<Tensor<4>>,
    ) -> (Tensor<3>, Tensor<4>) {
        let [b, h, tq, hd] = q.dims();
        let mut scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (hd as f64).sqrt());
        if let Some(bias) = bias {
            scores = scores + bias;
        }
        let weights = softmax(scores, 3);
        let context = self
            .dropout
            .forward(weights.clone())
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, tq, h * hd]);
        (self.output.forward(context), weights)
    }
}

/// A GELU feed-forward block `d -> d_ff -> d`.
#[derive(Module, Debug)]
pub struct FeedForward {
    /// Expansion.
    pub up: Linear,
    /// Contraction.
    pub down: Linear,
    /// Dropout after the contraction.
    pub dropout: Dropout,
}

impl FeedForward {
    pub(crate) fn init(
        init: &mut SeededInit,
        d: usize,
        d_ff: usize,
        dropout: f64,
        device: &Device,
    ) -> Self {
        FeedForward {
            up: init.linear(d, d_ff, true, 1.0, device),
            down: init.linear(d_ff, d, true, 1.0, device),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// `[.., d] -> [.., d]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.dropout
            .forward(self.down.forward(gelu(self.up.forward(x))))
    }
}

/// One pre-norm transformer encoder layer over the tips.
#[derive(Module, Debug)]
pub struct TipLayer {
    /// Self-attention among tips.
    pub attention: Attention,
    /// Feed-forward block.
    pub feed_forward: FeedForward,
    /// Norm before attention.
    pub norm_attention: LayerNorm,
    /// Norm before the feed-forward block.
    pub norm_feed_forward: LayerNorm,
    /// Dropout on the attention output.
    pub dropout: Dropout,
}

impl TipLayer {
    /// `x`: `[B, L, d]`, `bias`: `[B, 1, 1, L]` -> `[B, L, d]`.
    pub fn forward(&self, x: Tensor<3>, bias: Tensor<4>) -> Tensor<3> {
        let n = self.norm_attention.forward(x.clone());
        let (a, _) = self.attention.forward(n.clone(), n, Some(bias));
        let x = x + self.dropout.forward(a);
        let n = self.norm_feed_forward.forward(x.clone());
        x + self.feed_forward.forward(n)
    }
}

/// Errors unless `heads` divides `d_model`, both positive (a transformer config's check).
pub(crate) fn check_heads(d_model: usize, heads: usize) -> std::result::Result<(), String> {
    if d_model == 0 || heads == 0 || !d_model.is_multiple_of(heads) {
        return Err(format!(
            "heads {heads} must divide d_model {d_model} (both positive)"
        ));
    }
    Ok(())
}

/// Errors unless `dropout` is in `[0, 1)` (a transformer config's check).
pub(crate) fn check_dropout(dropout: f64) -> std::result::Result<(), String> {
    if !(0.0..1.0).contains(&dropout) {
        return Err(format!("dropout {dropout} is not in [0, 1)"));
    }
    Ok(())
}

/// Configuration of a [`HistoryEncoder`].
#[derive(Config, Debug)]
pub struct HistoryEncoderConfig {
    /// Sizes of the visual, audio and text feature vectors (a zero size leaves that
    /// modality out).
    pub feature_dims: [usize; 3],
    /// Width of the tip tokens and the pooled vector. Default: 64.
    #[config(default = 64)]
    pub d_model: usize,
    /// Attention heads (must divide `d_model`). Default: 4.
    #[config(default = 4)]
    pub heads: usize,
    /// Transformer layers over the tips (0: tokens see only their own tip). Default: 1.
    #[config(default = 1)]
    pub layers: usize,
    /// Width of the feed-forward blocks. Default: 128.
    #[config(default = 128)]
    pub d_ff: usize,
    /// Dropout during training. Default: 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Recency decay per day the pooling starts from (`softplus(decay)`). Default: 0.05.
    #[config(default = 0.05)]
    pub initial_decay_per_day: f64,
    /// Seed of the parameter initialisation. Default: 0.
    #[config(default = 0)]
    pub seed: u64,
}

impl HistoryEncoderConfig {
    /// Checks the sizes: positive width and heads, heads dividing the width, dropout in
    /// `[0, 1)`, positive decay. Returns a description of the first problem.
    pub fn check(&self) -> std::result::Result<(), String> {
        check_heads(self.d_model, self.heads)?;
        if self.d_ff == 0 {
            return Err("d_ff must be positive".into());
        }
        check_dropout(self.dropout)?;
        if !(self.initial_decay_per_day > 0.0 && self.initial_decay_per_day.is_finite()) {
            return Err(format!(
                "initial_decay_per_day {} must be positive",
                self.initial_decay_per_day
            ));
        }
        Ok(())
    }

    /// Builds the encoder (deterministic for a given `seed`).
    ///
    /// # Panics
    /// Panics when [`HistoryEncoderConfig::check`] fails.
    pub fn init(&self, device: &Device) -> HistoryEncoder {
        if let Err(e) = self.check() {
            panic!("HistoryEncoderConfig: {e}");
        }
        let d = self.d_model;
        let mut init = SeededInit::salted(self.seed, 1);
        let norm = || LayerNormConfig::new(d).init(device);
        let modalities = self
            .feature_dims
            .iter()
            .map(|&dim| (dim > 0).then(|| init.linear(dim, d, true, 1.0, device)))
            .collect::<Vec<_>>();
        let [visual, audio, text]: [Option<Linear>; 3] =
            modalities.try_into().expect("three modalities");
        // softplus^{-1}(x) = ln(e^x − 1)
        let decay = (self.initial_decay_per_day.exp() - 1.0).ln() as f32;
        HistoryEncoder {
            visual,
            audio,
            text,
            missing: init.param([3, d], 0.1, device),
            scalars: init.linear(3, d, true, 1.0, device),
            norm_in: norm(),
            layers: (0..self.layers)
                .map(|_| TipLayer {
                    attention: Attention::init(&mut init, d, self.heads, self.dropout, device),
                    feed_forward: FeedForward::init(&mut init, d, self.d_ff, self.dropout, device),
                    norm_attention: norm(),
                    norm_feed_forward: norm(),
                    dropout: DropoutConfig::new(self.dropout).init(),
                })
                .collect(),
            norm_out: norm(),
            score: init.linear(d, 1, true, 1.0, device),
            w_amount: constant_param(vec![0.5], device),
            w_repeat: constant_param(vec![0.5], device),
            decay: constant_param(vec![decay], device),
            cold: init.param([d], 0.1, device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// The attention history encoder (see the module docs).
#[derive(Module, Debug)]
pub struct HistoryEncoder {
    /// Visual features to `d` (absent when the visual size is 0).
    pub visual: Option<Linear>,
    /// Audio features to `d`.
    pub audio: Option<Linear>,
    /// Text features to `d`.
    pub text: Option<Linear>,
    /// Stand-ins for absent modalities, `[3, d]`.
    pub missing: Param<Tensor<2>>,
    /// `[log_amount, log1p(age_days), repeat]` to `d`.
    pub scalars: Linear,
    /// Norm of the summed tip token.
    pub norm_in: LayerNorm,
    /// Transformer layers over the tips.
    pub layers: Vec<TipLayer>,
    /// Final norm of the tokens.
    pub norm_out: LayerNorm,
    /// Learned query score `d -> 1` of the pooling.
    pub score: Linear,
    /// Pooling weight of `log_amount`, `[1]`.
    pub w_amount: Param<Tensor<1>>,
    /// Pooling weight of `repeat`, `[1]`.
    pub w_repeat: Param<Tensor<1>>,
    /// Raw recency decay, `[1]` (the per-day decay is `softplus(decay)`).
    pub decay: Param<Tensor<1>>,
    /// The pooled vector of a user without tips, `[d]`.
    pub cold: Param<Tensor<1>>,
    /// Dropout on the input tokens.
    pub dropout: Dropout,
}

/// What [`HistoryEncoder::forward`] returns.
#[derive(Clone, Debug)]
pub struct HistoryEncoding {
    /// The pooled history vector `[B, D]` (the learned cold vector for empty histories).
    pub pooled: Tensor<2>,
    /// One memory token per tip `[B, L, D]`, zeros on padding.
    pub tokens: Tensor<3>,
    /// Pooling attention over the tips `[B, L]`: sums to 1 over a non-empty history, 0 on
    /// padding (all zeros for an empty history).
    pub weights: Tensor<2>,
}

impl HistoryEncoder {
    /// Width of the tokens and the pooled vector.
    pub fn d_model(&self) -> usize {
        self.cold.dims()[0]
    }

    /// The learned per-day recency decay, `softplus(decay)`.
    pub fn decay_per_day(&self) -> f32 {
        softplus(self.decay.val(), 1.0)
            .into_data()
            .try_to_vec::<f32>()
            .map(|v| v[0])
            .unwrap_or(f32::NAN)
    }

    /// Encodes a batch.
    ///
    /// # Shapes
    /// - `batch.authors`: `[B, L, F]` with `F` the sum of the configured feature sizes
    /// - output: pooled `[B, D]`, tokens `[B, L, D]`, weights `[B, L]`
    ///
    /// # Panics
    /// Panics when `batch.feature_dims` differ from the encoder's.
    pub fn forward(&self, batch: &HistoryBatch) -> HistoryEncoding {
        let [b, l, _] = batch.authors.dims();
        let d = self.d_model();
        let device = batch.authors.device();
        let mask_f = batch.mask.clone().float();
        let mut x = Tensor::<3>::zeros([b, l, d], &device);
        let mut offset = 0;
        for (m, proj) in [&self.visual, &self.audio, &self.text]
            .into_iter()
            .enumerate()
        {
            let dim = batch.feature_dims[m];
            let expected = proj.as_ref().map(|p| p.weight.dims()[0]).unwrap_or(0);
            assert_eq!(
                dim, expected,
                "feature size of modality {m}: batch {dim}, encoder {expected}"
            );
            if let Some(proj) = proj {
                let xm = batch.authors.clone().narrow(2, offset, dim);
                let pm = batch.presence.clone().narrow(2, m, 1);
                x = x + proj.forward(xm) * pm;
            }
            offset += dim;
        }
        let absent = batch
            .presence
            .clone()
            .neg()
            .add_scalar(1.0)
            .reshape([b * l, 3]);
        x = x + absent.matmul(self.missing.val()).reshape([b, l, d]);
        let scalars = Tensor::cat(
            vec![
                batch.log_amount.clone().unsqueeze_dim::<3>(2),
                batch.age_days.clone().log1p().unsqueeze_dim::<3>(2),
                batch.repeat.clone().unsqueeze_dim::<3>(2),
            ],
            2,
        );
        x = x + self.scalars.forward(scalars);
        x = self.dropout.forward(self.norm_in.forward(x));
        let bias = Tensor::<2>::zeros([b, l], &device)
            .mask_fill(batch.mask.clone().bool_not(), MASKED)
            .reshape([b, 1, 1, l]);
        for layer in &self.layers {
            x = layer.forward(x, bias.clone());
        }
        let x = self.norm_out.forward(x);
        let tokens = x * mask_f.clone().unsqueeze_dim::<3>(2);

        let query_score = self.score.forward(tokens.clone()).reshape([b, l]);
        let logits = query_score + batch.log_amount.clone() * self.w_amount.val().reshape([1, 1])
            - batch.age_days.clone() * softplus(self.decay.val(), 1.0).reshape([1, 1])
            + batch.repeat.clone() * self.w_repeat.val().reshape([1, 1]);
        let logits = logits.mask_fill(batch.mask.clone().bool_not(), MASKED);
        let weights = softmax(logits, 1) * mask_f.clone();
        let pooled_warm = (weights.clone().unsqueeze_dim::<3>(2) * tokens.clone())
            .sum_dim(1)
            .reshape([b, d]);
        let warm = mask_f.max_dim(1); // [B, 1]: 1 with at least one tip
        let cold = self.cold.val().reshape([1, d]);
        let pooled = pooled_warm * warm.clone() + cold * warm.neg().add_scalar(1.0);
        HistoryEncoding {
            pooled,
            tokens,
            weights,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mspa_core::{AuthorId, TipEvent, UserId};

    fn tip(author: u32, amount: f64, t: i64) -> TipEvent {
        TipEvent {
            user: UserId(0),
            author: AuthorId(author),
            amount,
            timestamp_ms: t,
        }
    }

    #[test]
    fn build_keeps_recent_and_counts_repeats() {
        let device = Device::flex();
        let feats: Vec<AuthorFeatures> = (0..3)
            .map(|i| AuthorFeatures {
                visual: vec![i as f32; 2],
                audio: vec![1.0],
                text: vec![2.0; 3],
                present: [true, i != 1, true],
            })
            .collect();
        let tips = [
            tip(0, 1.0, 0),
            tip(1, 2.0, DAY_MS as i64),
            tip(0, 3.0, 2 * DAY_MS as i64),
        ];
        let queries = [
            HistoryQuery {
                tips: &tips,
                at_ms: 3 * DAY_MS as i64,
            },
            HistoryQuery {
                tips: &[],
                at_ms: 0,
            },
        ];
        let batch = HistoryBatch::build(&feats, &queries, 2, &device);
        assert_eq!(batch.authors.dims(), [2, 2, 6]);
        assert_eq!(batch.kept, vec![1..3, 0..0]);
        let rep = batch.repeat.into_data().try_to_vec::<f32>().unwrap();
        assert!((rep[1] - 2f32.ln()).abs() < 1e-6 && rep[0] == 0.0);
        let age = batch.age_days.into_data().try_to_vec::<f32>().unwrap();
        assert!((age[0] - 2.0).abs() < 1e-5 && (age[1] - 1.0).abs() < 1e-5);
        let pres = batch.presence.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(&pres[0..3], &[1.0, 0.0, 1.0]);
        let mask = batch.mask.into_data().try_to_vec::<bool>().unwrap();
        assert_eq!(mask, vec![true, true, false, false]);
    }
}
