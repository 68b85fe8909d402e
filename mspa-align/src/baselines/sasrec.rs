//! SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018) with
//! the repeat-consumption terms of LiveRec (Rappaz et al., "Recommendation on Live-Streaming
//! Platforms: Dynamic Availability and Repeat Consumption", RecSys 2021).
//!
//! A user's most recent `max_len` tips (oldest first, left-padded) become
//! tokens `x_i = E[a_i] + P[i] + W_f f_i`: the tipped author's embedding (the same table
//! `E` that scores the candidates, as in the paper), a learned positional embedding (the
//! latest tip always sits at the last position) and, with `tip_features`, a projection of
//! the tip's `[ln(1 + amount) - c, log2(1 + hours before now) / 10]` (`c` is the mean
//! training log-amount, "now" the query time). After dropout, `layers` pre-norm blocks
//! apply causal multi-head self-attention and a point-wise two-layer ReLU feed-forward
//! network, each as `x + Dropout(g(LayerNorm(x)))` (the paper's Eq. 4); padding
//! positions are never attended to and are zeroed after every block (queries are run in
//! chunks of similar history length, so a short history is not padded to `max_len`; the
//! latest tip is always at position `max_len - 1`). A final layer norm
//! gives the sequence states; the user representation `h` is the state at the last
//! position. A user with no tips gets a learned vector `h_empty` instead.
//!
//! The score of candidate author `a` is
//!
//! ```text
//! s(a) = <h, E[a]> + b[a] + R(a)
//! R(a) = C[count bucket of a] + T[recency bucket of a] + g(h) * 1[a in history]
//! ```
//!
//! with a learned author bias `b`, and the repeat terms (with `repeat_features`, the
//! default): learned scalars `C` per bucket of the number of earlier tips to `a`
//! (0, 1, 2-3, 4-7, ...; bucket 0 = never tipped), learned scalars `T` per bucket of
//! `log2(1 + hours since the user's last tip to a)` (bucket 0 = never tipped), and a
//! user-dependent repeat propensity `g(h) = w·h + w0`. The repeat terms read the whole
//! history, not only the last `max_len` tips, and only events up to the query time.
//!
//! Training is next-tip prediction with a full softmax over all authors (the trainer's
//! sampled negatives are not used): the cross-entropy of the tipped author among all
//! authors, over every training example (a leak-free history prefix). Dropout masks are
//! drawn by [`DropoutMasks`] from a stream seeded by the training seed and the batch, so one
//! seed gives one model whatever else runs on the device.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::{log_softmax, relu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use mspa_core::{Dataset, TipEvent};

use super::{FitRun, SeededInit, tensor_values};
use crate::data::Example;
use crate::dropout::DropoutMasks;
use crate::error::{AlignError, Result, check};
use crate::fit::{FitRecommender, Progress, TrainingData};
use crate::recommender::{Query, Recommender, check_out_len};
use crate::train::TrainConfig;

/// Per-tip input features (log-amount, log-age).
const TIP_FEATURES: usize = 2;
/// Milliseconds per hour.
const HOUR_MS: f64 = 3_600_000.0;
/// Queries per forward pass at inference.
const SCORE_BATCH: usize = 256;

baseline_config! {
    /// Hyper-parameters of [`SasRec`].
    pub struct SasRecConfig {
        /// Hidden size (embeddings, attention, feed-forward). Default 64.
        pub dim: usize = 64,
        /// Self-attention blocks. Default 2.
        pub layers: usize = 2,
        /// Attention heads (must divide `dim`). Default 1 (the paper's single head).
        pub heads: usize = 1,
        /// Most recent tips read by the attention (the repeat terms read the whole
        /// history). Default 50.
        pub max_len: usize = 50,
        /// Dropout rate on the embeddings and on every residual branch while training, in
        /// `[0, 1)`. Default 0.2.
        pub dropout: f64 = 0.2,
        /// Add each tip's log-amount and log-age (relative to the query time) to its
        /// token. Default true.
        pub tip_features: bool = true,
        /// Add the LiveRec repeat terms (earlier-tip count, recency, user repeat
        /// propensity) to the scores. Default true.
        pub repeat_features: bool = true,
        /// Buckets of the number of earlier tips to an author, bucket 0 being "never" (at
        /// least 2). Default 6 (0, 1, 2-3, 4-7, 8-15, 16+).
        pub count_buckets: usize = 6,
        /// Buckets of `log2(1 + hours since the last tip to an author)`, bucket 0 being
        /// "never" (at least 2). Default 14 (the last bucket starts at about a year).
        pub time_buckets: usize = 14,
        /// Standard deviation of the initial author and position embeddings; `None` uses
        /// `1 / sqrt(dim)`. Default `None`.
        pub init_std: Option<f64> = None,
    }
    /// The trainer (defaults: 20 epochs, batch 128, learning rate 1e-3, weight decay
    /// 1e-4, patience 3; `negatives` is ignored, the loss is a full softmax). Its `seed`
    /// also seeds the parameters and the dropout masks.
    train = TrainConfig {
        epochs: 20,
        batch_size: 128,
        learning_rate: 1e-3,
        weight_decay: 1e-4,
        patience: 3,
        negatives: 0,
        ..TrainConfig::default()
    };
}

impl SasRecConfig {
    /// Checks every model field (and the trainer's), naming the first one out of its
    /// domain.
    pub fn validate(&self) -> Result<()> {
        check::at_least_one("dim", self.dim)?;
        check::at_least_one("layers", self.layers)?;
        check::at_least_one("heads", self.heads)?;
        if self.dim % self.heads != 0 {
            return Err(AlignError::config(
                "heads",
                format!("dim {} is not divisible by {} heads", self.dim, self.heads),
            ));
        }
        check::at_least_one("max_len", self.max_len)?;
        check::below_one("dropout", self.dropout)?;
        for (field, buckets) in [
            ("count_buckets", self.count_buckets),
            ("time_buckets", self.time_buckets),
        ] {
            if buckets < 2 {
                return Err(AlignError::config(
                    field,
                    format!("must be at least 2, got {buckets}"),
                ));
            }
        }
        if let Some(s) = self.init_std {
            check::positive("init_std", s)?;
        }
        self.train.validate()
    }
}

/// One pre-norm self-attention block: `x + Drop(MHA(LN(x)))`, then `x + Drop(FFN(LN(x)))`.
#[derive(Module, Debug)]
pub struct SasRecBlock {
    /// Layer norm before the attention.
    pub attention_norm: LayerNorm,
    /// Query projection `[dim, dim]`.
    pub query: Linear,
    /// Key projection `[dim, dim]`.
    pub key: Linear,
    /// Value projection `[dim, dim]`.
    pub value: Linear,
    /// Output projection of the concatenated heads `[dim, dim]`.
    pub output: Linear,
    /// Layer norm before the feed-forward network.
    pub ffn_norm: LayerNorm,
    /// Feed-forward, first layer (ReLU after it).
    pub ffn1: Linear,
    /// Feed-forward, second layer.
    pub ffn2: Linear,
}

/// The trainable SASRec network. See the module docs for the equations.
#[derive(Module, Debug)]
pub struct SasRecModule {
    /// Author embeddings `E`, `[n_authors, dim]`: the input tokens and the candidates.
    pub author: Param<Tensor<2>>,
    /// Learned positional embeddings `P`, `[max_len, dim]` (the latest tip is last).
    pub position: Param<Tensor<2>>,
    /// Projection of the per-tip features onto the token.
    pub tip: Linear,
    /// The self-attention blocks.
    pub blocks: Vec<SasRecBlock>,
    /// Layer norm of the last block's output.
    pub final_norm: LayerNorm,
    /// The representation of a user without tips, `[1, dim]`.
    pub empty: Param<Tensor<2>>,
    /// Author bias `b`, `[n_authors]`.
    pub bias: Param<Tensor<1>>,
    /// Repeat term per earlier-tip-count bucket, `[count_buckets]`.
    pub count_bias: Param<Tensor<1>>,
    /// Repeat term per recency bucket, `[time_buckets]`.
    pub time_bias: Param<Tensor<1>>,
    /// The user's repeat propensity `g(h)`, `[dim] -> [1]`.
    pub repeat_gate: Linear,
    #[module(skip)]
    dim: usize,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    max_len: usize,
    #[module(skip)]
    n_authors: usize,
    #[module(skip)]
    dropout: f64,
    #[module(skip)]
    tip_features: bool,
    #[module(skip)]
    repeat_features: bool,
    #[module(skip)]
    count_buckets: usize,
    #[module(skip)]
    time_buckets: usize,
    /// Mean training `ln(1 + amount)`, subtracted from the tips' log-amounts.
    #[module(skip)]
    amount_center: f32,
}

/// The network input of a batch of queries (built on the CPU by [`SasRecModule::batch`]).
#[derive(Clone, Debug)]
pub struct SasRecBatch {
    /// The queries' sequences in chunks of similar length: a query with `n` recent tips
    /// sits in the chunk of widths up to `max(8, n.next_power_of_two())` (capped at
    /// `max_len`), padded to that chunk's longest sequence, so a short history is not
    /// padded to `max_len`.
    pub chunks: Vec<SequenceChunk>,
    /// For each query, its row among the chunks' rows taken in order, `[B]`.
    pub order: Tensor<1, Int>,
    /// 1.0 where the user has at least one tip, `[B, 1]`.
    pub has_history: Tensor<2>,
    /// Earlier-tip-count bucket of every (query, author), `[B * A]`.
    pub count_bucket: Tensor<1, Int>,
    /// Recency bucket of every (query, author), `[B * A]`.
    pub time_bucket: Tensor<1, Int>,
    /// 1.0 where the author is in the query's history, `[B, A]`.
    pub in_history: Tensor<2>,
}

/// The sequences of some queries of a batch, left-padded to the longest of them
/// (`W` positions: the last `W` of the `max_len` positions, the latest tip last).
#[derive(Clone, Debug)]
pub struct SequenceChunk {
    /// The chunk's queries, as rows of the batch, `[b]`.
    pub rows: Tensor<1, Int>,
    /// Authors of the last `W` tips, left-padded with author 0, `[b, W]`.
    pub tokens: Tensor<2, Int>,
    /// 1.0 at real tips, 0.0 at padding, `[b, W]`.
    pub mask: Tensor<2>,
    /// Per-tip features, `[b, W, 2]` (zeros at padding).
    pub features: Tensor<3>,
    /// Allowed attention (causal and not padding), 1.0 / 0.0, `[b, 1, W, W]`.
    pub attend: Tensor<4>,
}

/// Bucket of a count of earlier tips: 0 for none, then `1 + floor(log2(count))`, capped.
fn count_bucket(count: u32, buckets: usize) -> usize {
    if count == 0 {
        0
    } else {
        (1 + count.ilog2() as usize).min(buckets - 1)
    }
}

/// Bucket of the time since the last tip: `1 + floor(log2(1 + hours))`, capped.
fn time_bucket(hours: f64, buckets: usize) -> usize {
    let b = (1.0 + hours.max(0.0)).log2().floor();
    let b = if b.is_finite() { b as usize } else { 0 };
    (1 + b).min(buckets - 1)
}

impl SasRecModule {
    /// The network for `n_authors` authors, drawn with `config.train.seed`;
    /// `amount_center` is the mean training `ln(1 + amount)`.
    pub fn new(
        config: &SasRecConfig,
        n_authors: usize,
        amount_center: f32,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        if n_authors == 0 {
            return Err(AlignError::data("SASRec needs at least one author"));
        }
        let d = config.dim;
        let std = config.init_std.unwrap_or(1.0 / (d as f64).sqrt());
        let mut init = SeededInit::new(config.train.seed ^ 0x5A5_4EC0);
        let author = init.param([n_authors, d], std, device);
        let position = init.param([config.max_len, d], std, device);
        let tip = init.linear(TIP_FEATURES, d, false, 0.1, device);
        let blocks = (0..config.layers)
            .map(|_| SasRecBlock {
                attention_norm: LayerNormConfig::new(d).init(device),
                query: init.linear(d, d, true, 1.0, device),
                key: init.linear(d, d, true, 1.0, device),
                value: init.linear(d, d, true, 1.0, device),
                output: init.linear(d, d, true, 1.0, device),
                ffn_norm: LayerNormConfig::new(d).init(device),
                ffn1: init.linear(d, d, true, 1.0, device),
                ffn2: init.linear(d, d, true, 1.0, device),
            })
            .collect();
        let empty = init.param([1, d], 0.1, device);
        let zeros = |n: usize| Param::from_data(TensorData::new(vec![0f32; n], [n]), device);
        Ok(SasRecModule {
            author,
            position,
            tip,
            blocks,
            final_norm: LayerNormConfig::new(d).init(device),
            empty,
            bias: zeros(n_authors),
            count_bias: zeros(config.count_buckets),
            time_bias: zeros(config.time_buckets),
            repeat_gate: init.linear(d, 1, true, 0.0, device),
            dim: d,
            heads: config.heads,
            max_len: config.max_len,
            n_authors,
            dropout: config.dropout,
            tip_features: config.tip_features,
            repeat_features: config.repeat_features,
            count_buckets: config.count_buckets,
            time_buckets: config.time_buckets,
            amount_center,
        })
    }

    /// Number of authors scored.
    pub fn n_authors(&self) -> usize {
        self.n_authors
    }

    /// Builds the input of some queries: `(history oldest first, now in ms)` each. Only
    /// events at or before "now" are read (later ones are ignored).
    pub fn batch(&self, queries: &[(&[TipEvent], i64)], device: &Device) -> SasRecBatch {
        let b = queries.len();
        let a_n = self.n_authors;
        let mut has = vec![0f32; b];
        let mut count_b = vec![0i64; b * a_n];
        let mut time_b = vec![0i64; b * a_n];
        let mut in_hist = vec![0f32; b * a_n];
        let mut counts = vec![0u32; a_n];
        let mut last = vec![i64::MIN; a_n];
        let mut sequences = Vec::with_capacity(b);
        for (q, &(history, now)) in queries.iter().enumerate() {
            let past: Vec<&TipEvent> = history
                .iter()
                .filter(|e| e.timestamp_ms <= now && e.author.index() < a_n)
                .collect();
            has[q] = if past.is_empty() { 0.0 } else { 1.0 };
            counts.fill(0);
            last.fill(i64::MIN);
            for e in &past {
                counts[e.author.index()] += 1;
                last[e.author.index()] = last[e.author.index()].max(e.timestamp_ms);
            }
            for a in 0..a_n {
                if counts[a] == 0 {
                    continue;
                }
                let i = q * a_n + a;
                in_hist[i] = 1.0;
                count_b[i] = count_bucket(counts[a], self.count_buckets) as i64;
                let hours = (now - last[a]).max(0) as f64 / HOUR_MS;
                time_b[i] = time_bucket(hours, self.time_buckets) as i64;
            }
            let recent = past[past.len().saturating_sub(self.max_len)..].to_vec();
            sequences.push((recent, now));
        }
        // Queries by width class, then each class as one chunk.
        let mut classes = std::collections::BTreeMap::<usize, Vec<usize>>::new();
        for (q, (recent, _)) in sequences.iter().enumerate() {
            let class = recent.len().next_power_of_two().max(8).min(self.max_len);
            classes.entry(class).or_default().push(q);
        }
        let mut order = vec![0i64; b];
        let mut placed = 0;
        let chunks = classes
            .into_values()
            .map(|rows| {
                for &q in &rows {
                    order[q] = placed;
                    placed += 1;
                }
                let width = rows.iter().map(|&q| sequences[q].0.len()).max();
                self.chunk(&rows, &sequences, width.unwrap_or(0).max(1), device)
            })
            .collect();
        SasRecBatch {
            chunks,
            order: Tensor::from_data(TensorData::new(order, [b]), device),
            has_history: Tensor::from_data(TensorData::new(has, [b, 1]), device),
            count_bucket: Tensor::from_data(TensorData::new(count_b, [b * a_n]), device),
            time_bucket: Tensor::from_data(TensorData::new(time_b, [b * a_n]), device),
            in_history: Tensor::from_data(TensorData::new(in_hist, [b, a_n]), device),
        }
    }

    /// The chunk of the queries `rows` (of `sequences`: each query's recent tips, oldest
    /// first, and its time), left-padded to `width` positions (at least the longest).
    fn chunk(
        &self,
        rows: &[usize],
        sequences: &[(Vec<&TipEvent>, i64)],
        width: usize,
        device: &Device,
    ) -> SequenceChunk {
        let b = rows.len();
        let l = width;
        let mut tokens = vec![0i64; b * l];
        let mut mask = vec![0f32; b * l];
        let mut features = vec![0f32; b * l * TIP_FEATURES];
        let mut attend = vec![0f32; b * l * l];
        for (r, &q) in rows.iter().enumerate() {
            let (recent, now) = &sequences[q];
            let offset = l - recent.len();
            for (k, e) in recent.iter().enumerate() {
                let i = r * l + offset + k;
                tokens[i] = i64::from(e.author.0);
                mask[i] = 1.0;
                if self.tip_features {
                    let hours = (now - e.timestamp_ms).max(0) as f64 / HOUR_MS;
                    let log_amount = (1.0 + e.amount.max(0.0)).ln() as f32;
                    features[i * TIP_FEATURES] = log_amount - self.amount_center;
                    features[i * TIP_FEATURES + 1] = ((1.0 + hours).log2() / 10.0) as f32;
                }
            }
            // Query i attends to keys j <= i that are real tips; a padding query with no
            // real key attends to everything (uniform, harmless: it is masked later).
            for i in 0..l {
                let row = &mut attend[(r * l + i) * l..(r * l + i + 1) * l];
                for (j, v) in row.iter_mut().enumerate().take(i + 1) {
                    *v = mask[r * l + j];
                }
                if i < offset {
                    row.fill(1.0);
                }
            }
        }
        let rows: Vec<i64> = rows.iter().map(|&q| q as i64).collect();
        SequenceChunk {
            rows: Tensor::from_data(TensorData::new(rows, [b]), device),
            tokens: Tensor::from_data(TensorData::new(tokens, [b, l]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, l]), device),
            features: Tensor::from_data(TensorData::new(features, [b, l, TIP_FEATURES]), device),
            attend: Tensor::from_data(TensorData::new(attend, [b, 1, l, l]), device),
        }
    }

    /// The user representations `h` (state at the last position, or `h_empty`). The
    /// dropout masks, when training, are drawn for the whole batch at `max_len` positions
    /// (the embeddings' first, then each block's attention and feed-forward), so the
    /// seeded stream does not depend on how the queries are chunked; each chunk reads its
    /// rows and its last positions.
    ///
    /// # Shapes
    /// - input: a [`SasRecBatch`] of `B` queries
    /// - output: `[B, dim]`
    fn users(&self, input: &SasRecBatch, masks: &mut Option<DropoutMasks>) -> Tensor<2> {
        let [b] = input.order.dims();
        let device = input.order.device();
        let drawn: Option<Vec<Tensor<3>>> = masks.as_mut().map(|m| {
            (0..1 + 2 * self.blocks.len())
                .map(|_| m.draw([b, self.max_len, self.dim], &device))
                .collect()
        });
        let states: Vec<Tensor<2>> = input
            .chunks
            .iter()
            .map(|chunk| {
                let [_, w] = chunk.tokens.dims();
                let l = self.max_len;
                let masks = drawn.as_ref().map(|all| {
                    all.iter()
                        .map(|m| {
                            let [_, _, d] = m.dims();
                            let rows = m.clone().select(0, chunk.rows.clone());
                            let [n, _, _] = rows.dims();
                            rows.slice([0..n, l - w..l, 0..d])
                        })
                        .collect::<Vec<_>>()
                });
                self.chunk_states(chunk, masks.as_deref())
            })
            .collect();
        if states.is_empty() {
            return Tensor::zeros([0, self.dim], &device);
        }
        let last = Tensor::cat(states, 0).select(0, input.order.clone());
        let has = input.has_history.clone();
        last * has.clone() + self.empty.val() * (has.neg() + 1.0)
    }

    /// The states at the last position of one chunk's sequences, `[b, dim]`; `masks`
    /// are the chunk's dropout masks `[b, W, dim]` in the order they are applied
    /// (none when not training).
    fn chunk_states(&self, input: &SequenceChunk, masks: Option<&[Tensor<3>]>) -> Tensor<2> {
        let [b, l] = input.tokens.dims();
        let d = self.dim;
        let h_n = self.heads;
        let dh = d / h_n;
        // `x` holds the last `rows` of the `l` positions: the mask's last `rows`.
        let mut next_mask = masks.map(|m| m.iter());
        let mut drop = |x: Tensor<3>| match next_mask.as_mut().and_then(Iterator::next) {
            Some(mask) => {
                let [_, rows, _] = x.dims();
                x * mask.clone().slice([0..b, l - rows..l, 0..d])
            }
            None => x,
        };
        let mask3 = input.mask.clone().reshape([b, l, 1]);
        let tokens = self
            .author
            .val()
            .select(0, input.tokens.clone().reshape([b * l]))
            .reshape([b, l, d]);
        let positions = self
            .position
            .val()
            .slice([self.max_len - l..self.max_len, 0..d]);
        let mut x = tokens + positions.reshape([1, l, d]);
        if self.tip_features {
            x = x + self.tip.forward(input.features.clone());
        }
        let mut x = drop(x * mask3.clone());
        let blocked = input.attend.clone().equal_elem(0.0).expand([b, h_n, l, l]);
        let scale = 1.0 / (dh as f64).sqrt();
        let n_blocks = self.blocks.len();
        for (i, block) in self.blocks.iter().enumerate() {
            // Only the last position of the last block is read: there, the queries, the
            // feed-forward and the residuals run on that position alone (the keys and
            // values still cover every position).
            let from = if i + 1 == n_blocks { l - 1 } else { 0 };
            let rows = l - from;
            let y = block.attention_norm.forward(x.clone());
            let heads = |t: Tensor<3>, n: usize| t.reshape([b, n, h_n, dh]).swap_dims(1, 2);
            let q = heads(
                block.query.forward(y.clone().slice([0..b, from..l, 0..d])),
                rows,
            );
            let k = heads(block.key.forward(y.clone()), l);
            let v = heads(block.value.forward(y), l);
            let logits = q.matmul(k.swap_dims(2, 3)) * scale;
            let blocked = blocked.clone().slice([0..b, 0..h_n, from..l, 0..l]);
            let weights = softmax(logits.mask_fill(blocked, -1e9), 3);
            let context = weights.matmul(v).swap_dims(1, 2).reshape([b, rows, d]);
            let attended = block.output.forward(context);
            x = x.slice([0..b, from..l, 0..d]) + drop(attended);
            let y = block.ffn_norm.forward(x.clone());
            let f = block.ffn2.forward(relu(block.ffn1.forward(y)));
            x = (x + drop(f)) * mask3.clone().slice([0..b, from..l, 0..1]);
        }
        self.final_norm.forward(x).reshape([b, d])
    }

    /// Scores of every author for each query: `<h, E[a]> + b[a] + R(a)` (see the module
    /// docs).
    ///
    /// # Shapes
    /// - input: a [`SasRecBatch`] of `B` queries
    /// - output: `[B, n_authors]`
    pub fn forward(&self, input: &SasRecBatch) -> Tensor<2> {
        self.scores(input, &mut None)
    }

    fn scores(&self, input: &SasRecBatch, masks: &mut Option<DropoutMasks>) -> Tensor<2> {
        let h = self.users(input, masks);
        let [b, _] = h.dims();
        let a_n = self.n_authors;
        let mut s =
            h.clone().matmul(self.author.val().transpose()) + self.bias.val().reshape([1, a_n]);
        if self.repeat_features {
            let count = self
                .count_bias
                .val()
                .select(0, input.count_bucket.clone())
                .reshape([b, a_n]);
            let time = self
                .time_bias
                .val()
                .select(0, input.time_bucket.clone())
                .reshape([b, a_n]);
            let gate = self.repeat_gate.forward(h); // [B, 1]
            s = s + count + time + input.in_history.clone() * gate;
        }
        s
    }

    /// The mean full-softmax cross-entropy of the batch's positives, with dropout masks
    /// seeded by `seed` and the batch.
    pub fn loss(
        &self,
        dataset: &Dataset,
        batch: &[&Example],
        seed: u64,
        device: &Device,
    ) -> Tensor<1> {
        let queries: Vec<(&[TipEvent], i64)> = batch
            .iter()
            .map(|e| (e.history(dataset), e.at_ms))
            .collect();
        let input = self.batch(&queries, device);
        let mut masks =
            (self.dropout > 0.0).then(|| DropoutMasks::for_batch(seed, batch, 1.0 - self.dropout));
        let logits = self.scores(&input, &mut masks);
        let b = batch.len();
        let positives = crate::data::positives_tensor(batch, device).reshape([b, 1]);
        log_softmax(logits, 1).gather(1, positives).mean().neg()
    }
}

/// A trained SASRec: the network (on its device) scores batches of queries.
#[derive(Clone, Debug)]
pub struct SasRec {
    model: SasRecModule,
    device: Device,
}

impl FitRecommender for SasRecConfig {
    type Model = SasRec;

    /// Trains on the training events of `data.split` (full softmax over all authors),
    /// validating NDCG@10 on `split.valid` after every epoch and keeping the best model.
    fn fit(&self, data: &TrainingData, device: &Device, progress: Progress) -> Result<SasRec> {
        self.validate()?;
        let mut run = FitRun::new(data, self, device);
        if run.examples.is_empty() {
            return Err(AlignError::data(
                "no training examples (every user has a single tip?)",
            ));
        }
        let TrainingData { dataset, split, .. } = *data;
        let (sum, n) = split
            .train
            .iter()
            .filter_map(|&i| dataset.events().get(i))
            .fold((0.0, 0usize), |(s, n), e| {
                (s + (1.0 + e.amount.max(0.0)).ln(), n + 1)
            });
        let center = if n > 0 { (sum / n as f64) as f32 } else { 0.0 };
        let model = SasRecModule::new(self, dataset.n_authors(), center, device)?;
        // The full softmax needs no sampled negatives.
        run.train.negatives = 0;
        let seed = self.train.seed;
        run.fit(
            model,
            |m: &SasRecModule, batch, _negs, dev| m.loss(dataset, batch, seed, dev),
            |m: &SasRecModule| Ok(SasRec::from_module(m.clone(), device)),
            progress,
        )
    }
}

impl SasRec {
    /// Wraps a (plain, non-autodiff) network that lives on `device`.
    pub fn from_module(model: SasRecModule, device: &Device) -> SasRec {
        SasRec {
            model,
            device: device.clone(),
        }
    }

    /// The network.
    pub fn module(&self) -> &SasRecModule {
        &self.model
    }
}

impl Recommender for SasRec {
    fn name(&self) -> &str {
        "SASRec"
    }

    fn score_batch(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()> {
        let n = self.model.n_authors;
        check_out_len(queries.len(), out.len(), n)?;
        for (chunk, rows) in queries
            .chunks(SCORE_BATCH)
            .zip(out.chunks_mut(SCORE_BATCH * n))
        {
            let pairs: Vec<(&[TipEvent], i64)> =
                chunk.iter().map(|q| (q.history, q.at_ms)).collect();
            let input = self.model.batch(&pairs, &self.device);
            let v = tensor_values(self.model.forward(&input))?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(AlignError::data("SASRec: non-finite scores"));
            }
            rows.copy_from_slice(&v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mspa_core::{AuthorId, UserId};

    /// The state at every position, every block computed over all of them (what
    /// `chunk_states` computes at the last position only, in its last block), without
    /// dropout.
    fn every_position(m: &SasRecModule, input: &SequenceChunk) -> Tensor<3> {
        let [b, l] = input.tokens.dims();
        let d = m.dim;
        let dh = d / m.heads;
        let mask3 = input.mask.clone().reshape([b, l, 1]);
        let tokens = m
            .author
            .val()
            .select(0, input.tokens.clone().reshape([b * l]))
            .reshape([b, l, d]);
        let positions = m.position.val().slice([m.max_len - l..m.max_len, 0..d]);
        let mut x = tokens + positions.reshape([1, l, d]);
        x = (x + m.tip.forward(input.features.clone())) * mask3.clone();
        let blocked = input
            .attend
            .clone()
            .equal_elem(0.0)
            .expand([b, m.heads, l, l]);
        for block in &m.blocks {
            let y = block.attention_norm.forward(x.clone());
            let heads = |t: Tensor<3>| t.reshape([b, l, m.heads, dh]).swap_dims(1, 2);
            let q = heads(block.query.forward(y.clone()));
            let k = heads(block.key.forward(y.clone()));
            let v = heads(block.value.forward(y));
            let logits = q.matmul(k.swap_dims(2, 3)) / (dh as f64).sqrt();
            let weights = softmax(logits.mask_fill(blocked.clone(), -1e9), 3);
            let context = weights.matmul(v).swap_dims(1, 2).reshape([b, l, d]);
            x = x + block.output.forward(context);
            let y = block.ffn_norm.forward(x.clone());
            x = (x.clone() + block.ffn2.forward(relu(block.ffn1.forward(y)))) * mask3.clone();
        }
        m.final_norm.forward(x)
    }

    fn tip(author: u32, t: i64) -> TipEvent {
        TipEvent {
            user: UserId(0),
            author: AuthorId(author),
            amount: 1.0 + f64::from(author),
            timestamp_ms: t * 3_600_000,
        }
    }

    /// Histories of 25, 12, 2 and 0 tips (chunks of widths 20, 12 and 2, the last two
    /// together, when `max_len` is 20), each with its query time.
    fn histories() -> Vec<(Vec<TipEvent>, i64)> {
        [25u32, 12, 2, 0]
            .into_iter()
            .map(|n| {
                let tips = (0..n).map(|i| tip(i * 7 % 5, i64::from(i))).collect();
                (tips, i64::from(n + 1) * 3_600_000)
            })
            .collect()
    }

    /// Every query of `queries` in one chunk padded to `max_len` (the input before
    /// chunking).
    fn one_full_chunk(
        m: &SasRecModule,
        queries: &[(&[TipEvent], i64)],
        device: &Device,
    ) -> SequenceChunk {
        let sequences: Vec<(Vec<&TipEvent>, i64)> = queries
            .iter()
            .map(|&(h, now)| (h[h.len().saturating_sub(m.max_len)..].iter().collect(), now))
            .collect();
        let rows: Vec<usize> = (0..queries.len()).collect();
        m.chunk(&rows, &sequences, m.max_len, device)
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        tensor_values(t).unwrap()
    }

    fn config() -> SasRecConfig {
        SasRecConfig {
            dim: 16,
            heads: 2,
            max_len: 20,
            ..SasRecConfig::default()
        }
    }

    #[test]
    fn an_empty_batch_scores_no_rows() {
        let device = Device::flex();
        let m = SasRecModule::new(&config(), 5, 0.5, &device).unwrap();
        let scores = m.forward(&m.batch(&[], &device));
        assert_eq!(scores.dims(), [0, 5]);
    }

    #[test]
    fn the_last_position_shortcut_gives_the_full_computation() {
        let device = Device::flex();
        let m = SasRecModule::new(&config(), 5, 0.5, &device).unwrap();
        let owned = histories();
        let queries: Vec<(&[TipEvent], i64)> =
            owned.iter().map(|(h, t)| (h.as_slice(), *t)).collect();
        let full = one_full_chunk(&m, &queries, &device);
        let shortcut = values(m.chunk_states(&full, None));
        let every = every_position(&m, &full);
        let [b, l, d] = every.dims();
        let expected = values(every.slice([0..b, l - 1..l, 0..d]));
        for (a, e) in shortcut.iter().zip(&expected) {
            assert!((a - e).abs() < 1e-5, "{a} vs {e}");
        }
    }

    #[test]
    fn chunks_by_length_give_the_padded_computation_with_the_same_dropout() {
        let device = Device::flex();
        let m = SasRecModule::new(&config(), 5, 0.5, &device).unwrap();
        let owned = histories();
        let queries: Vec<(&[TipEvent], i64)> =
            owned.iter().map(|(h, t)| (h.as_slice(), *t)).collect();
        let input = m.batch(&queries, &device);
        let widths: Vec<usize> = input.chunks.iter().map(|c| c.tokens.dims()[1]).collect();
        assert_eq!(widths, vec![2, 12, 20]);
        let masks = || Some(DropoutMasks::new(7, 0.8));
        let chunked = values(m.users(&input, &mut masks()));
        // The same masks on one chunk of every query padded to `max_len`.
        let full = one_full_chunk(&m, &queries, &device);
        let mut stream = masks().unwrap();
        let drawn: Vec<Tensor<3>> = (0..5).map(|_| stream.draw([4, 20, 16], &device)).collect();
        let padded = m.chunk_states(&full, Some(&drawn));
        let has = input.has_history.clone();
        let padded = values(padded * has.clone() + m.empty.val() * (has.neg() + 1.0));
        assert_eq!(chunked.len(), padded.len());
        for (a, e) in chunked.iter().zip(&padded) {
            assert!((a - e).abs() < 1e-5, "{a} vs {e}");
        }
        // Dropout is on: without masks the states differ.
        let plain = values(m.users(&input, &mut None));
        assert!(
            plain
                .iter()
                .zip(&chunked)
                .any(|(a, b)| (a - b).abs() > 1e-3)
        );
    }
}
