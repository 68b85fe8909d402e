//! The preference generator: a small multimodal language model that writes the
//! structured preference, token by token, conditioned on the history encoder's memory.
//!
//! A pre-norm transformer decoder: token + learned position embeddings, then per layer
//! causal self-attention, cross-attention to the memory, a GELU feed-forward block (each
//! with a residual), a final LayerNorm and a linear head over the schema's vocabulary.
//! The memory is the pooled history vector (always present, so cold users still have
//! something to attend to) followed by one token per tip (padding keys masked).
//!
//! Training is teacher forcing with cross-entropy ([`PreferenceGenerator::loss`], `PAD`
//! ignored). Decoding ([`PreferenceGenerator::decode`]) is batched over users: greedy or
//! beam search (length-normalised), each optionally grammar-constrained: at every step the
//! tokens the schema's [`GrammarState`] does not allow get probability zero, so every
//! constrained output decodes and parses.
//! Decoding is incremental: each position feeds only the newest token of every
//! hypothesis and reads the earlier positions' self-attention keys and values from a
//! cache (gathered by each beam's parent), and the memory's cross-attention keys and
//! values are projected once per decode.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use mspa_modal::text::leading_rows;

use crate::error::ComposerError;

/// The crate result (not imported as `Result`: the `Config` derive needs the prelude one).
type GenResult<T> = crate::error::Result<T>;
use crate::history::{
    Attention, FeedForward, HistoryEncoding, MASKED, SeededInit, check_dropout, check_heads,
};
use crate::schema::{GrammarState, PreferenceSchema};

/// Configuration of a [`PreferenceGenerator`].
#[derive(Config, Debug)]
pub struct GeneratorConfig {
    /// Vocabulary size (the schema's [`PreferenceSchema::vocab_size`]).
    pub vocab_size: usize,
    /// Width of the memory (the history encoder's `d_model`).
    pub d_memory: usize,
    /// Width of the decoder. Default: 64.
    #[config(default = 64)]
    pub d_model: usize,
    /// Decoder layers. Default: 2.
    #[config(default = 2)]
    pub layers: usize,
    /// Attention heads (must divide `d_model`). Default: 4.
    #[config(default = 4)]
    pub heads: usize,
    /// Width of the feed-forward blocks. Default: 128.
    #[config(default = 128)]
    pub d_ff: usize,
    /// Longest sequence (BOS included) the position table covers; decoding stops there.
    /// Default: 64.
    #[config(default = 64)]
    pub max_len: usize,
    /// Dropout during training. Default: 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Seed of the parameter initialisation. Default: 0.
    #[config(default = 0)]
    pub seed: u64,
}

impl GeneratorConfig {
    /// Checks the sizes; returns a description of the first problem.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.vocab_size < 4 {
            return Err(format!(
                "vocab_size {} is below 4 (PAD, BOS, EOS and a word)",
                self.vocab_size
            ));
        }
        if self.d_memory == 0 || self.d_ff == 0 || self.max_len < 2 {
            return Err("d_memory and d_ff must be positive, max_len at least 2".into());
        }
        check_heads(self.d_model, self.heads)?;
        check_dropout(self.dropout)
    }

    /// Builds the generator (deterministic for a given `seed`).
    ///
    /// # Panics
    /// Panics when [`GeneratorConfig::check`] fails.
    pub fn init(&self, device: &Device) -> PreferenceGenerator {
        if let Err(e) = self.check() {
            panic!("GeneratorConfig: {e}");
        }
        let d = self.d_model;
        let mut init = SeededInit::salted(self.seed, 2);
        let norm = || LayerNormConfig::new(d).init(device);
        let dropout = || DropoutConfig::new(self.dropout).init();
        PreferenceGenerator {
            tokens: init.embedding(self.vocab_size, d, 0.1, device),
            positions: init.embedding(self.max_len, d, 0.1, device),
            memory_proj: init.linear(self.d_memory, d, true, 1.0, device),
            memory_norm: norm(),
            layers: (0..self.layers)
                .map(|_| DecoderLayer {
                    self_attention: Attention::init(&mut init, d, self.heads, self.dropout, device),
                    cross_attention: Attention::init(
                        &mut init,
                        d,
                        self.heads,
                        self.dropout,
                        device,
                    ),
                    feed_forward: FeedForward::init(&mut init, d, self.d_ff, self.dropout, device),
                    norm_self: norm(),
                    norm_cross: norm(),
                    norm_feed_forward: norm(),
                    dropout: dropout(),
                })
                .collect(),
            norm: norm(),
            head: init.linear(d, self.vocab_size, true, 1.0, device),
            dropout: dropout(),
        }
    }
}

/// One pre-norm decoder layer: causal self-attention, cross-attention, feed-forward.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Causal self-attention over the prefix.
    pub self_attention: Attention,
    /// Attention to the memory.
    pub cross_attention: Attention,
    /// GELU feed-forward block.
    pub feed_forward: FeedForward,
    /// Norm before self-attention.
    pub norm_self: LayerNorm,
    /// Norm before cross-attention.
    pub norm_cross: LayerNorm,
    /// Norm before the feed-forward block.
    pub norm_feed_forward: LayerNorm,
    /// Dropout on the attention outputs.
    pub dropout: Dropout,
}

impl DecoderLayer {
    /// `x`: `[B, T, d]`; returns the new `x` and the head-averaged cross-attention weights
    /// `[B, T, M]`.
    fn forward(&self, x: Tensor<3>, causal: Tensor<4>, memory: &Memory) -> (Tensor<3>, Tensor<3>) {
        let n = self.norm_self.forward(x.clone());
        let (a, _) = self.self_attention.forward(n.clone(), n, Some(causal));
        let x = x + self.dropout.forward(a);
        let n = self.norm_cross.forward(x.clone());
        let (c, weights) =
            self.cross_attention
                .forward(n, memory.tokens.clone(), Some(memory.bias.clone()));
        let x = x + self.dropout.forward(c);
        let n = self.norm_feed_forward.forward(x.clone());
        (x.clone() + self.feed_forward.forward(n), weights)
    }
}

/// Keys and values `[R, heads, t, hd]` of one layer's self-attention over a prefix.
type PastKeys = (Tensor<4>, Tensor<4>);

impl DecoderLayer {
    /// One decoding position of every row (inference: no dropout): `x` `[R, 1, d]` is
    /// the newest token's input, `past` the keys and values of the earlier positions
    /// (`None` at the first), `cross` the memory's projected keys and values of these
    /// rows and `bias` their memory bias. Returns the new `x` and the keys and values
    /// with this position appended.
    fn step(
        &self,
        x: Tensor<3>,
        past: Option<PastKeys>,
        cross: (Tensor<4>, Tensor<4>),
        bias: Tensor<4>,
    ) -> (Tensor<3>, PastKeys) {
        let attention = &self.self_attention;
        let n = self.norm_self.forward(x.clone());
        let q = attention.split_heads(&attention.query, n.clone());
        let mut k = attention.split_heads(&attention.key, n.clone());
        let mut v = attention.split_heads(&attention.value, n);
        if let Some((past_k, past_v)) = past {
            k = Tensor::cat(vec![past_k, k], 2);
            v = Tensor::cat(vec![past_v, v], 2);
        }
        // The newest position sees every earlier one: no causal mask.
        let (a, _) = attention.attend(q, k.clone(), v.clone(), None);
        let x = x + a;
        let n = self.norm_cross.forward(x.clone());
        let cross_attention = &self.cross_attention;
        let q = cross_attention.split_heads(&cross_attention.query, n);
        let (c, _) = cross_attention.attend(q, cross.0, cross.1, Some(bias));
        let x = x + c;
        let n = self.norm_feed_forward.forward(x.clone());
        (x.clone() + self.feed_forward.forward(n), (k, v))
    }
}

/// What incremental decoding keeps between positions: per layer, the memory's projected
/// cross-attention keys and values (once per memory row) and the self-attention keys and
/// values of every live hypothesis's prefix (rows in the order of the last step).
struct DecodeCache {
    /// Per layer: `([B, heads, M, hd], [B, heads, M, hd])`, by memory row.
    cross: Vec<(Tensor<4>, Tensor<4>)>,
    /// Per layer: the prefixes' keys and values; empty before the first position.
    past: Vec<PastKeys>,
}

/// The decoder (see the module docs).
#[derive(Module, Debug)]
pub struct PreferenceGenerator {
    /// Token embeddings `[V, d]`.
    pub tokens: Embedding,
    /// Position embeddings `[max_len, d]`.
    pub positions: Embedding,
    /// Memory projection `d_memory -> d`.
    pub memory_proj: Linear,
    /// Norm of the projected memory.
    pub memory_norm: LayerNorm,
    /// The decoder layers.
    pub layers: Vec<DecoderLayer>,
    /// Final norm.
    pub norm: LayerNorm,
    /// Output head `d -> V`.
    pub head: Linear,
    /// Dropout on the input embeddings.
    pub dropout: Dropout,
}

/// What the decoder attends to: the pooled vector then one token per tip.
#[derive(Clone, Debug)]
pub struct Memory {
    /// Projected memory `[B, 1 + L, d]` (row 0: the pooled vector).
    pub tokens: Tensor<3>,
    /// Attention bias `[B, 1, 1, 1 + L]`: 0 on the pooled slot and real tips, a large
    /// negative number on padding.
    pub bias: Tensor<4>,
    /// An optional per-row bias `[B, V]` added to the next-token logits at every position
    /// (e.g. log-probabilities of values read off the history).
    pub logit_bias: Option<Tensor<2>>,
}

impl Memory {
    /// Number of users.
    pub fn batch_size(&self) -> usize {
        self.tokens.dims()[0]
    }

    /// Rows `rows` of the memory, in that order.
    pub fn select(&self, rows: &[usize]) -> Memory {
        let device = self.tokens.device();
        let index = int_tensor1(rows.iter().map(|&r| r as i64).collect(), &device);
        Memory {
            tokens: self.tokens.clone().select(0, index.clone()),
            bias: self.bias.clone().select(0, index.clone()),
            logit_bias: self.logit_bias.clone().map(|b| b.select(0, index)),
        }
    }
}

/// One decoded sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// The generated tokens (no BOS; ends with EOS when `finished`).
    pub tokens: Vec<u32>,
    /// Sum of the model's log-probabilities of the tokens. Constrained decoding only
    /// restricts the choice, it does not renormalise over the allowed tokens, so this is
    /// the model's own log-probability of the sequence (what
    /// [`PreferenceGenerator::sequence_log_probs`] computes by teacher forcing).
    pub log_prob: f32,
    /// `log_prob / tokens.len()`, what beam search ranks by.
    pub score: f32,
    /// Whether the sequence ended with EOS (before `max_len`).
    pub finished: bool,
}

/// How to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DecodeStrategy {
    /// Take the most likely token at every step.
    Greedy,
    /// Beam search with this many beams, ranked by length-normalised log-probability.
    Beam(usize),
}

fn int_tensor1(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

fn int_tensor2(values: Vec<i64>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Log-probabilities of every vocabulary entry at the last position, per row.
type StepLogProbs = Vec<Vec<f32>>;

impl PreferenceGenerator {
    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.tokens.weight.dims()[0]
    }

    /// Longest input (BOS included) the position table covers.
    pub fn max_len(&self) -> usize {
        self.positions.weight.dims()[0]
    }

    /// Builds the memory from a history encoding and its tip mask (`[B, L]`, true = tip).
    ///
    /// # Shapes
    /// - `encoding.pooled`: `[B, D]`, `encoding.tokens`: `[B, L, D]`
    /// - output: tokens `[B, 1 + L, d]`, bias `[B, 1, 1, 1 + L]`
    pub fn memory(&self, encoding: &HistoryEncoding, mask: &Tensor<2, Bool>) -> Memory {
        self.memory_with_extra(encoding, mask, None)
    }

    /// Like [`PreferenceGenerator::memory`], with `extra` tokens (always attended, e.g. a
    /// summary of the whole history) placed between the pooled vector and the tips.
    ///
    /// # Shapes
    /// - `extra`: `[B, K, D]` (the encoder width `D`)
    /// - output: tokens `[B, 1 + K + L, d]`, bias `[B, 1, 1, 1 + K + L]`
    pub fn memory_with_extra(
        &self,
        encoding: &HistoryEncoding,
        mask: &Tensor<2, Bool>,
        extra: Option<Tensor<3>>,
    ) -> Memory {
        let [b, l, dm] = encoding.tokens.dims();
        let device = encoding.tokens.device();
        let mut parts = vec![encoding.pooled.clone().reshape([b, 1, dm])];
        let k = extra.as_ref().map(|e| e.dims()[1]).unwrap_or(0);
        if let Some(extra) = extra {
            parts.push(extra);
        }
        parts.push(encoding.tokens.clone());
        let all = Tensor::cat(parts, 1);
        let tokens = self.memory_norm.forward(self.memory_proj.forward(all));
        let valid = Tensor::cat(
            vec![
                Tensor::<2, Bool>::full([b, 1 + k], true, &device),
                mask.clone(),
            ],
            1,
        );
        let m = l + 1 + k;
        let bias = Tensor::<2>::zeros([b, m], &device)
            .mask_fill(valid.bool_not(), MASKED)
            .reshape([b, 1, 1, m]);
        Memory {
            tokens,
            bias,
            logit_bias: None,
        }
    }

    /// Logits of the next token at every position, and the cross-attention weights of the
    /// last layer (head-averaged).
    ///
    /// # Shapes
    /// - `input`: `[B, T]` token ids (BOS first), `T <= max_len`
    /// - output: logits `[B, T, V]`, cross-attention `[B, T, 1 + L]`
    ///
    /// # Panics
    /// Panics when `T` exceeds `max_len` or the memory's batch differs.
    pub fn forward_with_attention(
        &self,
        input: Tensor<2, Int>,
        memory: &Memory,
    ) -> (Tensor<3>, Tensor<3>) {
        let [b, t] = input.dims();
        assert!(
            t <= self.max_len(),
            "sequence of {t} tokens exceeds max_len {}",
            self.max_len()
        );
        let device = input.device();
        let positions = leading_rows(&self.positions, t);
        let mut x = self.dropout.forward(self.tokens.forward(input) + positions);
        let causal = Tensor::<2, Bool>::tril_mask([t, t], 0, &device);
        let causal = Tensor::<2>::zeros([t, t], &device)
            .mask_fill(causal, MASKED)
            .reshape([1, 1, t, t]);
        let mut cross = None;
        for layer in &self.layers {
            let (y, w) = layer.forward(x, causal.clone(), memory);
            x = y;
            cross = Some(w);
        }
        let mut logits = self.head.forward(self.norm.forward(x));
        if let Some(bias) = &memory.logit_bias {
            let v = logits.dims()[2];
            logits = logits + bias.clone().reshape([b, 1, v]);
        }
        let cross =
            cross.unwrap_or_else(|| Tensor::zeros([b, t, memory.tokens.dims()[1]], &device));
        (logits, cross)
    }

    /// Logits of the next token at every position, `[B, T] -> [B, T, V]`.
    pub fn forward(&self, input: Tensor<2, Int>, memory: &Memory) -> Tensor<3> {
        self.forward_with_attention(input, memory).0
    }

    /// Teacher-forcing input and target ids of token sequences (each ending with EOS, no
    /// BOS), truncated to `max_len` and padded with PAD: `([B, T], [B, T])`.
    pub fn teacher_forcing(
        &self,
        targets: &[Vec<u32>],
        device: &Device,
    ) -> (Tensor<2, Int>, Tensor<2, Int>) {
        let t = targets
            .iter()
            .map(|s| s.len().min(self.max_len()))
            .max()
            .unwrap_or(1)
            .max(1);
        let b = targets.len();
        let mut input = vec![PreferenceSchema::PAD as i64; b * t];
        let mut output = vec![PreferenceSchema::PAD as i64; b * t];
        for (r, seq) in targets.iter().enumerate() {
            let seq = &seq[..seq.len().min(t)];
            for (i, &tok) in seq.iter().enumerate() {
                input[r * t + i] = if i == 0 {
                    PreferenceSchema::BOS as i64
                } else {
                    seq[i - 1] as i64
                };
                output[r * t + i] = tok as i64;
            }
        }
        (
            int_tensor2(input, [b, t], device),
            int_tensor2(output, [b, t], device),
        )
    }

    /// Per-token negative log-likelihoods `[B, T]` of `targets` (zeros on PAD) and the
    /// number of real tokens per row `[B, T]` as a 0/1 mask.
    fn token_nll(&self, memory: &Memory, targets: &[Vec<u32>]) -> (Tensor<2>, Tensor<2>) {
        let device = memory.tokens.device();
        let (input, output) = self.teacher_forcing(targets, &device);
        let [b, t] = output.dims();
        let logp = log_softmax(self.forward(input, memory), 2);
        let picked = logp
            .gather(2, output.clone().reshape([b, t, 1]))
            .reshape([b, t]);
        let real = output.not_equal_elem(PreferenceSchema::PAD as i64).float();
        (picked.neg() * real.clone(), real)
    }

    /// Mean cross-entropy over all non-PAD target tokens of the batch (a scalar `[1]`).
    pub fn loss(&self, memory: &Memory, targets: &[Vec<u32>]) -> Tensor<1> {
        let (nll, real) = self.token_nll(memory, targets);
        nll.sum() / real.sum().clamp_min(1.0)
    }

    /// The model's log-probability of each sequence (each ending with EOS, no BOS).
    pub fn sequence_log_probs(&self, memory: &Memory, targets: &[Vec<u32>]) -> Vec<f32> {
        if targets.is_empty() {
            return Vec::new();
        }
        let (nll, _) = self.token_nll(memory, targets);
        let sums = nll
            .sum_dim(1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        sums.into_iter().map(|x| -x).collect()
    }

    /// The cache of a fresh decode of `memory`: every layer's cross-attention keys and
    /// values of the memory, no prefix yet.
    fn start_decoding(&self, memory: &Memory) -> DecodeCache {
        DecodeCache {
            cross: self
                .layers
                .iter()
                .map(|layer| {
                    let a = &layer.cross_attention;
                    (
                        a.split_heads(&a.key, memory.tokens.clone()),
                        a.split_heads(&a.value, memory.tokens.clone()),
                    )
                })
                .collect(),
            past: Vec::new(),
        }
    }

    /// Log-probabilities of the next token of each hypothesis, feeding only its newest
    /// token (`last[i]`, at `position`; BOS at position 0) and reading the earlier ones
    /// from `cache`. `rows[i]` is the memory row of hypothesis `i` and `parents[i]` the
    /// index, in the previous call's order, of the hypothesis it extends (ignored at
    /// position 0). Gives what the last position of [`PreferenceGenerator::forward`] over
    /// the whole prefix gives, up to float rounding.
    fn step(
        &self,
        memory: &Memory,
        cache: &mut DecodeCache,
        rows: &[usize],
        parents: &[usize],
        last: &[u32],
        position: usize,
    ) -> GenResult<StepLogProbs> {
        let device = memory.tokens.device();
        let r = rows.len();
        let index =
            |values: &[usize]| int_tensor1(values.iter().map(|&i| i as i64).collect(), &device);
        let rows_index = index(rows);
        let ids = int_tensor2(last.iter().map(|&t| t as i64).collect(), [r, 1], &device);
        let d = self.positions.weight.dims()[1];
        let at = self
            .positions
            .weight
            .val()
            .narrow(0, position, 1)
            .reshape([1, 1, d]);
        let mut x = self.tokens.forward(ids) + at;
        let bias = memory.bias.clone().select(0, rows_index.clone());
        let past = if position == 0 {
            vec![None; self.layers.len()]
        } else {
            let parents = index(parents);
            std::mem::take(&mut cache.past)
                .into_iter()
                .map(|(k, v)| Some((k.select(0, parents.clone()), v.select(0, parents.clone()))))
                .collect()
        };
        for ((layer, past), (cross_k, cross_v)) in self.layers.iter().zip(past).zip(&cache.cross) {
            let cross = (
                cross_k.clone().select(0, rows_index.clone()),
                cross_v.clone().select(0, rows_index.clone()),
            );
            let (y, keys) = layer.step(x, past, cross, bias.clone());
            x = y;
            cache.past.push(keys);
        }
        let v = self.vocab_size();
        let mut logits = self.head.forward(self.norm.forward(x)).reshape([r, v]);
        if let Some(logit_bias) = &memory.logit_bias {
            logits = logits + logit_bias.clone().select(0, rows_index);
        }
        let values = log_softmax(logits, 1)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| ComposerError::data(format!("reading decoder output: {e:?}")))?;
        Ok(values.chunks(v).map(<[f32]>::to_vec).collect())
    }

    /// The tokens that may follow: the grammar's allowed set when constrained, otherwise
    /// everything but PAD and BOS.
    fn candidates(&self, grammar: Option<(&PreferenceSchema, &GrammarState)>) -> Vec<u32> {
        match grammar {
            Some((schema, state)) => state.allowed(schema),
            None => (0..self.vocab_size() as u32)
                .filter(|&t| t != PreferenceSchema::PAD && t != PreferenceSchema::BOS)
                .collect(),
        }
    }

    /// Decodes one sequence per memory row. With `schema`, decoding is
    /// grammar-constrained: every finished hypothesis is a complete sentence of the
    /// grammar (it decodes with [`PreferenceSchema::decode`]). Hypotheses that reach
    /// `max_len` without EOS come back with `finished == false`.
    pub fn decode(
        &self,
        memory: &Memory,
        strategy: DecodeStrategy,
        schema: Option<&PreferenceSchema>,
    ) -> GenResult<Vec<Hypothesis>> {
        match strategy {
            DecodeStrategy::Greedy => self.greedy(memory, schema),
            DecodeStrategy::Beam(width) => {
                if width == 0 {
                    return Err(ComposerError::config("beam_width", "must be at least 1"));
                }
                self.beam(memory, width, schema)
            }
        }
    }

    fn greedy(
        &self,
        memory: &Memory,
        schema: Option<&PreferenceSchema>,
    ) -> GenResult<Vec<Hypothesis>> {
        let b = memory.batch_size();
        let mut seqs: Vec<Vec<u32>> = vec![Vec::new(); b];
        let mut logp = vec![0.0f32; b];
        let mut states: Vec<Option<GrammarState>> =
            (0..b).map(|_| schema.map(|s| s.grammar())).collect();
        let mut finished = vec![false; b];
        let mut cache = self.start_decoding(memory);
        // Where each row sat in the previous step (its prefix's cache row).
        let mut cache_row: Vec<usize> = (0..b).collect();
        // Positions: BOS + prefix, at most max_len tokens.
        for position in 0..self.max_len() {
            let alive: Vec<usize> = (0..b).filter(|&r| !finished[r]).collect();
            if alive.is_empty() {
                break;
            }
            let parents: Vec<usize> = alive.iter().map(|&r| cache_row[r]).collect();
            let last: Vec<u32> = alive
                .iter()
                .map(|&r| *seqs[r].last().unwrap_or(&PreferenceSchema::BOS))
                .collect();
            let lp = self.step(memory, &mut cache, &alive, &parents, &last, position)?;
            for (k, &r) in alive.iter().enumerate() {
                cache_row[r] = k;
            }
            for (k, &r) in alive.iter().enumerate() {
                let grammar = schema.zip(states[r].as_ref());
                let cands = self.candidates(grammar);
                let Some(&best) = cands
                    .iter()
                    .max_by(|&&a, &&c| lp[k][a as usize].total_cmp(&lp[k][c as usize]))
                else {
                    return Err(ComposerError::data("grammar allows no token"));
                };
                seqs[r].push(best);
                logp[r] += lp[k][best as usize];
                if let (Some(s), Some(state)) = (schema, states[r].as_mut()) {
                    state.advance(s, best)?;
                }
                if best == PreferenceSchema::EOS {
                    finished[r] = true;
                }
            }
        }
        Ok((0..b)
            .map(|r| Hypothesis {
                score: logp[r] / seqs[r].len().max(1) as f32,
                log_prob: logp[r],
                tokens: std::mem::take(&mut seqs[r]),
                finished: finished[r],
            })
            .collect())
    }

    fn beam(
        &self,
        memory: &Memory,
        width: usize,
        schema: Option<&PreferenceSchema>,
    ) -> GenResult<Vec<Hypothesis>> {
        struct Beam {
            tokens: Vec<u32>,
            log_prob: f32,
            state: Option<GrammarState>,
            /// The cache row of the hypothesis this one extends.
            parent: usize,
        }
        let b = memory.batch_size();
        let mut beams: Vec<Vec<Beam>> = (0..b)
            .map(|_| {
                vec![Beam {
                    tokens: Vec::new(),
                    log_prob: 0.0,
                    state: schema.map(|s| s.grammar()),
                    parent: 0,
                }]
            })
            .collect();
        let mut done: Vec<Vec<Hypothesis>> = (0..b).map(|_| Vec::new()).collect();
        let mut cache = self.start_decoding(memory);
        for position in 0..self.max_len() {
            // All alive beams of users still searching, in one pass of their newest tokens.
            let mut rows = Vec::new();
            let mut parents = Vec::new();
            let mut last = Vec::new();
            for (u, bs) in beams.iter().enumerate() {
                if done[u].len() >= width {
                    continue;
                }
                for beam in bs {
                    rows.push(u);
                    parents.push(beam.parent);
                    last.push(*beam.tokens.last().unwrap_or(&PreferenceSchema::BOS));
                }
            }
            if rows.is_empty() {
                break;
            }
            let lp = self.step(memory, &mut cache, &rows, &parents, &last, position)?;
            let mut k = 0;
            for u in 0..b {
                if done[u].len() >= width {
                    continue;
                }
                let current = std::mem::take(&mut beams[u]);
                // (beam index, token, cumulative log-prob)
                let mut expansions: Vec<(usize, u32, f32)> = Vec::new();
                for (i, beam) in current.iter().enumerate() {
                    let grammar = schema.zip(beam.state.as_ref());
                    for tok in self.candidates(grammar) {
                        expansions.push((i, tok, beam.log_prob + lp[k + i][tok as usize]));
                    }
                }
                let first = k;
                k += current.len();
                expansions.sort_by(|a, c| c.2.total_cmp(&a.2));
                let mut next = Vec::with_capacity(width);
                for (i, tok, log_prob) in expansions {
                    if next.len() >= width || done[u].len() >= width {
                        break;
                    }
                    let mut tokens = current[i].tokens.clone();
                    tokens.push(tok);
                    if tok == PreferenceSchema::EOS {
                        let score = log_prob / tokens.len() as f32;
                        done[u].push(Hypothesis {
                            tokens,
                            log_prob,
                            score,
                            finished: true,
                        });
                        continue;
                    }
                    let mut state = current[i].state.clone();
                    if let (Some(s), Some(st)) = (schema, state.as_mut()) {
                        st.advance(s, tok)?;
                    }
                    next.push(Beam {
                        tokens,
                        log_prob,
                        state,
                        parent: first + i,
                    });
                }
                beams[u] = next;
            }
        }
        Ok((0..b)
            .map(|u| {
                let mut pool = std::mem::take(&mut done[u]);
                if pool.is_empty() {
                    // Nothing reached EOS within max_len: return the best unfinished beam.
                    pool = beams[u]
                        .iter()
                        .map(|beam| Hypothesis {
                            tokens: beam.tokens.clone(),
                            log_prob: beam.log_prob,
                            score: beam.log_prob / beam.tokens.len().max(1) as f32,
                            finished: false,
                        })
                        .collect();
                }
                pool.into_iter()
                    .max_by(|a, c| a.score.total_cmp(&c.score))
                    .unwrap_or(Hypothesis {
                        tokens: Vec::new(),
                        log_prob: 0.0,
                        score: 0.0,
                        finished: false,
                    })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryEncoding;

    fn tiny(device: &Device) -> (PreferenceGenerator, Memory) {
        let generator = GeneratorConfig::new(12, 8)
            .with_d_model(8)
            .with_heads(2)
            .with_d_ff(16)
            .with_max_len(10)
            .with_seed(3)
            .init(device);
        let encoding = HistoryEncoding {
            pooled: Tensor::ones([2, 8], device),
            tokens: Tensor::ones([2, 3, 8], device).mul_scalar(0.5),
            weights: Tensor::zeros([2, 3], device),
        };
        let mask = Tensor::<2, Int>::from_ints([[1, 1, 0], [0, 0, 0]], device).bool();
        let memory = generator.memory(&encoding, &mask);
        (generator, memory)
    }

    #[test]
    fn attention_is_causal() {
        let device = Device::flex();
        let (generator, memory) = tiny(&device);
        let a = Tensor::<2, Int>::from_ints([[1, 4, 5, 6], [1, 7, 8, 9]], &device);
        let b = Tensor::<2, Int>::from_ints([[1, 4, 9, 3], [1, 7, 3, 3]], &device);
        // The logits of the first two positions.
        let early = |input| {
            generator
                .forward(input, &memory)
                .narrow(1, 0, 2)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let (la, lb) = (early(a), early(b));
        let diff = la
            .iter()
            .zip(&lb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "later tokens changed earlier logits by {diff}");
    }

    /// A memory of varied values (not constant rows), two users, one padded tip.
    fn varied_memory(generator: &PreferenceGenerator, device: &Device) -> Memory {
        let wave = |n: usize, phase: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * 0.37 + phase).sin()).collect()
        };
        let encoding = HistoryEncoding {
            pooled: Tensor::from_data(TensorData::new(wave(16, 0.1), [2, 8]), device),
            tokens: Tensor::from_data(TensorData::new(wave(48, 1.3), [2, 3, 8]), device),
            weights: Tensor::zeros([2, 3], device),
        };
        let mask = Tensor::<2, Int>::from_ints([[1, 1, 0], [1, 1, 1]], device).bool();
        generator.memory(&encoding, &mask)
    }

    /// The log-probabilities after the whole of `prefix` (BOS first) by the full forward.
    fn full_last(
        generator: &PreferenceGenerator,
        memory: &Memory,
        row: usize,
        prefix: &[u32],
    ) -> Vec<f32> {
        let device = memory.tokens.device();
        let t = prefix.len();
        let ids = int_tensor2(prefix.iter().map(|&x| x as i64).collect(), [1, t], &device);
        let logits = generator.forward(ids, &memory.select(&[row]));
        log_softmax(
            logits
                .narrow(1, t - 1, 1)
                .reshape([1, generator.vocab_size()]),
            1,
        )
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
    }

    #[test]
    fn incremental_decoding_matches_the_full_forward() {
        let device = Device::flex();
        let (generator, _) = tiny(&device);
        let memory = varied_memory(&generator, &device);
        // Three hypotheses (memory rows 0, 1, 1) that reorder and fork between positions,
        // as beams do: each position feeds only the newest token and names its parent.
        let mut cache = generator.start_decoding(&memory);
        let steps: [(&[usize], &[usize], &[u32]); 4] = [
            (&[0, 1, 1], &[0, 0, 0], &[1, 1, 1]),
            (&[1, 0, 1], &[2, 0, 1], &[4, 5, 6]),
            (&[1, 1, 0], &[0, 0, 1], &[7, 8, 9]),
            (&[0, 1], &[2, 1], &[3, 10]),
        ];
        // The full prefix of each hypothesis after every step.
        let mut prefixes: Vec<Vec<u32>> = vec![Vec::new(); 3];
        for (position, (rows, parents, last)) in steps.into_iter().enumerate() {
            let lp = generator
                .step(&memory, &mut cache, rows, parents, last, position)
                .unwrap();
            let before = prefixes.clone();
            prefixes = (0..rows.len())
                .map(|i| {
                    let mut p = if position == 0 {
                        Vec::new()
                    } else {
                        before[parents[i]].clone()
                    };
                    p.push(last[i]);
                    p
                })
                .collect();
            for (i, &row) in rows.iter().enumerate() {
                let expected = full_last(&generator, &memory, row, &prefixes[i]);
                let diff = lp[i]
                    .iter()
                    .zip(&expected)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    diff < 1e-5,
                    "position {position}, hypothesis {i}: off by {diff}"
                );
            }
        }
    }

    #[test]
    fn greedy_decoding_takes_the_full_forwards_best_token() {
        let device = Device::flex();
        let (generator, _) = tiny(&device);
        let memory = varied_memory(&generator, &device);
        let hyps = generator
            .decode(&memory, DecodeStrategy::Greedy, None)
            .unwrap();
        for (row, hyp) in hyps.iter().enumerate() {
            let mut prefix = vec![PreferenceSchema::BOS];
            for &token in &hyp.tokens {
                let lp = full_last(&generator, &memory, row, &prefix);
                let allowed = generator.candidates(None);
                let best = *allowed
                    .iter()
                    .max_by(|&&a, &&b| lp[a as usize].total_cmp(&lp[b as usize]))
                    .unwrap();
                assert_eq!(token, best, "row {row} after {prefix:?}");
                prefix.push(token);
            }
        }
        // Beam search with one beam is greedy search.
        let beam = generator
            .decode(&memory, DecodeStrategy::Beam(1), None)
            .unwrap();
        let tokens = |h: &[Hypothesis]| h.iter().map(|x| x.tokens.clone()).collect::<Vec<_>>();
        assert_eq!(tokens(&beam), tokens(&hyps));
    }

    #[test]
    fn loss_ignores_padding() {
        let device = Device::flex();
        let (generator, memory) = tiny(&device);
        let short = vec![vec![4u32, 5, 2], vec![6, 2]];
        let loss = generator.loss(&memory, &short).into_scalar::<f32>();
        let lp = generator.sequence_log_probs(&memory, &short);
        // The mean over the 5 real tokens equals minus the summed log-probabilities / 5.
        let expected = -(lp[0] + lp[1]) / 5.0;
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
        let (input, target) = generator.teacher_forcing(&short, &device);
        assert_eq!(
            input.into_data().try_into_vec_as::<i64>().unwrap(),
            vec![1, 4, 5, 1, 6, 0]
        );
        assert_eq!(
            target.into_data().try_into_vec_as::<i64>().unwrap(),
            vec![4, 5, 2, 6, 2, 0]
        );
    }
}
