//! MSPA: preference-conditioned cross-modal attention with T self-correction steps.
//!
//! Every author `a` with modality vectors `x_{a,m}` (visual, audio, text; some missing) is
//! projected into a shared space, `z_{a,m} = LN(W_m x_{a,m}) + e_m`; the same projections
//! serve the authors a user tipped and the candidates, so history and candidates live in
//! one space. A user's preference `p` at step 0 is the attention pool of their tips
//! (author content + id embedding + amount/recency/repeat; pooling logits add a learned
//! weight on the amount and repeats and subtract a learned per-day decay times the tip's
//! age, so a drifted taste shows the new one; cold users get a learned vector), plus,
//! unless ablated, the embedding of the composed preference text. Then:
//!
//! 1. the candidates' views `z_{a,m}` are taken from the shared space;
//! 2. the preference decides how much each modality matters for this author:
//!    `α_{a,m} = softmax_m(⟨W_q p, W_k z_{a,m}⟩ / √d)` over the present modalities, and the
//!    aligned author evidence is `r_a(p) = Σ_m α_{a,m} W_v z_{a,m} (+ id embedding when the
//!    author has training tips)`;
//! 3. the preference alone scores `u(p, a) = γ ⟨p, r_a(p)⟩ + b_a` (`b_a` a popularity bias
//!    of authors with history); the next tip either explores, `P_explore = softmax_a(u)`
//!    over all candidates, or repeats, `P_repeat = softmax(u + f(tips of a))` over the
//!    authors the user tipped before (`f` a small network over the user's own tips of
//!    `a`: count, recency, relative amount), and the score is the log of the mixture
//!    `π P_repeat(a) + (1 − π) P_explore(a)` with `π = σ(w_π · p)` (0 without tips), so
//!    how likely a repeat is depends on the user and its state;
//! 4. self-correction, `T` times: the evidence the preference alone selects from the
//!    candidate pool, `e_s = Σ_a P_explore(a) r_a(p)`, is compared with the evidence of
//!    the user's own tips under the same preference, `e_h = Σ_i w_i r_{a_i}(p)` (`w` the
//!    history attention); `δ = e_h − e_s` is the gradient of the history's
//!    log-likelihood under `P_explore` (up to `γ`); a gate `g = σ(W_g [p, δ, p ⊙ δ])`
//!    decides how much of the update `tanh(W_c [p, δ])` to take, `p ← LN(p + g ⊙ update)`;
//!    the modalities are then re-attended with the corrected preference and re-scored.
//!
//! Every step's scores are returned, so each step is supervised and the trace explains
//! the ranking. `T = 0` is the ablation without correction. While training, dropout on
//! the pooled history and the preference text makes the initial preference imperfect, and
//! the correction steps learn to repair it from the evidence.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::Config;
use burn::tensor::activation::{log_sigmoid, log_softmax, relu, sigmoid, softmax, softplus, tanh};
use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use mspa_core::TipEvent;
use mspa_modal::features::AuthorFeatures;

use crate::error::{AlignError, Result};

/// Milliseconds in a day.
const DAY_MS: f64 = 86_400_000.0;

/// Number of user–author tip features (see [`pair_features`]).
pub const PAIR_FEATURES: usize = 7;

/// Per-tip context features of the history: `ln(amount)` minus the user's mean
/// `ln(amount)` (how much more than usual the user gave), `log(1 + age in days)`,
/// `log(1 + earlier tips of the same author)`.
pub const TIP_FEATURES: usize = 3;

/// Hyper-parameters of [`Mspa`].
#[derive(Config, Debug)]
pub struct MspaConfig {
    /// Sizes of the visual, audio and text feature vectors of authors.
    pub feature_dims: [usize; 3],
    /// Size of the composed-preference embedding (0: the model has no text input).
    pub text_dim: usize,
    /// Number of authors (id embeddings and popularity biases).
    pub n_authors: usize,
    /// Size of the shared space.
    #[config(default = 64)]
    pub d_model: usize,
    /// Self-correction steps `T` (0 is the ablation without correction).
    #[config(default = 2)]
    pub correction_steps: usize,
    /// Whether the composed preference text is used ("no text" ablation: false).
    #[config(default = true)]
    pub use_text: bool,
    /// Which modalities of authors are used (single-modality ablations).
    #[config(default = "[true, true, true]")]
    pub modalities: [bool; 3],
    /// Whether authors with training tips get an id embedding and popularity bias.
    #[config(default = true)]
    pub id_embedding: bool,
    /// Dropout on the pooled history and the preference text while training (the
    /// correction steps learn to repair an imperfect initial preference).
    #[config(default = 0.2)]
    pub dropout: f64,
}

impl MspaConfig {
    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, message: &str| {
            Err(AlignError::Config {
                field: field.into(),
                message: message.into(),
            })
        };
        if self.d_model == 0 {
            return bad("d_model", "must be positive");
        }
        if self.n_authors == 0 {
            return bad("n_authors", "must be positive");
        }
        if !self.modalities.iter().any(|&m| m) {
            return bad("modalities", "at least one modality must be used");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", "must be in [0, 1)");
        }
        if self.use_text && self.text_dim == 0 {
            return bad("text_dim", "use_text needs a positive text_dim");
        }
        Ok(())
    }

    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> Result<Mspa> {
        self.validate()?;
        let d = self.d_model;
        let modal_proj = self
            .feature_dims
            .iter()
            .map(|&f| LinearConfig::new(f.max(1), d).init(device))
            .collect();
        let modal_norm = (0..3)
            .map(|_| LayerNormConfig::new(d).init(device))
            .collect();
        let modality_embedding = Param::from_tensor(Tensor::<2>::random(
            [3, d],
            burn::tensor::Distribution::Normal(0.0, 0.02),
            device,
        ));
        Ok(Mspa {
            tip_context: LinearConfig::new(TIP_FEATURES, d).init(device),
            tip_score: LinearConfig::new(d, 1).init(device),
            tip_weights: Param::from_tensor(Tensor::<1>::from_floats([0.5, 0.5, -3.0], device)),
            cold: Param::from_tensor(Tensor::<2>::zeros([1, d], device)),
            history_proj: LinearConfig::new(d, d).init(device),
            text_proj: (self.use_text && self.text_dim > 0)
                .then(|| LinearConfig::new(self.text_dim, d).init(device)),
            preference_norm: LayerNormConfig::new(d).init(device),
            modal_proj,
            modal_norm,
            modality_embedding,
            query: LinearConfig::new(d, d).init(device),
            key: LinearConfig::new(d, d).init(device),
            value: LinearConfig::new(d, d).init(device),
            id_embedding: Param::from_tensor(Tensor::<2>::random(
                [self.n_authors, d],
                burn::tensor::Distribution::Normal(0.0, 0.05),
                device,
            )),
            author_bias: Param::from_tensor(Tensor::<2>::zeros([self.n_authors, 1], device)),
            pair_hidden: LinearConfig::new(PAIR_FEATURES, 16).init(device),
            pair_out: LinearConfig::new(16, 1).init(device),
            gate: LinearConfig::new(3 * d, d).init(device),
            correct: LinearConfig::new(2 * d, d).init(device),
            correction_norm: LayerNormConfig::new(d).init(device),
            repeat_gate: LinearConfig::new(d, 1).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            // ⟨p, r⟩ of a layer-normalised p grows like √d: start at 1/√d.
            log_scale: Param::from_tensor(Tensor::<1>::from_floats(
                [-(d as f32).sqrt().ln()],
                device,
            )),
            d_model: d,
            correction_steps: self.correction_steps,
            use_text: self.use_text && self.text_dim > 0,
            modalities: self.modalities,
            use_id: self.id_embedding,
        })
    }
}

/// The MSPA recommender network. See the module docs for the equations.
#[derive(Module, Debug)]
pub struct Mspa {
    tip_context: Linear,
    tip_score: Linear,
    /// Pooling weights of the relative `ln(amount)` and `log(1 + earlier tips of the
    /// author)`, and the pre-softplus daily decay.
    tip_weights: Param<Tensor<1>>,
    cold: Param<Tensor<2>>,
    history_proj: Linear,
    text_proj: Option<Linear>,
    preference_norm: LayerNorm,
    modal_proj: Vec<Linear>,
    modal_norm: Vec<LayerNorm>,
    modality_embedding: Param<Tensor<2>>,
    query: Linear,
    key: Linear,
    value: Linear,
    id_embedding: Param<Tensor<2>>,
    author_bias: Param<Tensor<2>>,
    pair_hidden: Linear,
    pair_out: Linear,
    gate: Linear,
    correct: Linear,
    correction_norm: LayerNorm,
    repeat_gate: Linear,
    dropout: Dropout,
    log_scale: Param<Tensor<1>>,
    #[module(skip)]
    d_model: usize,
    #[module(skip)]
    correction_steps: usize,
    #[module(skip)]
    use_text: bool,
    #[module(skip)]
    modalities: [bool; 3],
    #[module(skip)]
    use_id: bool,
}

/// The content of authors as tensors: one feature matrix per modality, the presence
/// mask and whether each author had training tips (id embedding and bias apply).
#[derive(Clone, Debug)]
pub struct AuthorTable {
    /// `[A, F_m]` for visual, audio, text (zeros where missing).
    pub modal: [Tensor<2>; 3],
    /// `[A, 3]`, 1.0 where the modality is real.
    pub presence: Tensor<2>,
    /// `[A, 1]`, 1.0 for authors with training tips.
    pub has_history: Tensor<2>,
}

impl AuthorTable {
    /// Builds the table of all authors; `train_counts[a]` is the number of training tips
    /// of author `a` (authors with none are content-only).
    pub fn build(
        features: &[AuthorFeatures],
        train_counts: &[u32],
        device: &Device,
    ) -> Result<Self> {
        let n = features.len();
        if n == 0 || train_counts.len() != n {
            return Err(AlignError::Config {
                field: "features".into(),
                message: format!(
                    "{} feature rows for {} training counts (need one per author, at least one)",
                    n,
                    train_counts.len()
                ),
            });
        }
        let dims = features[0].dims();
        let mut modal_rows: [Vec<f32>; 3] = Default::default();
        let mut presence = Vec::with_capacity(n * 3);
        for (a, f) in features.iter().enumerate() {
            if f.dims() != dims {
                return Err(AlignError::Config {
                    field: "features".into(),
                    message: format!(
                        "author {a} has feature sizes {:?}, author 0 {:?}",
                        f.dims(),
                        dims
                    ),
                });
            }
            for m in 0..3 {
                let v: &[f32] = match m {
                    0 => &f.visual,
                    1 => &f.audio,
                    _ => &f.text,
                };
                if dims[m] == 0 {
                    modal_rows[m].push(0.0);
                } else {
                    modal_rows[m].extend_from_slice(v);
                }
                presence.push(if f.present[m] && dims[m] > 0 {
                    1.0
                } else {
                    0.0
                });
            }
        }
        let modal = std::array::from_fn(|m| {
            let width = dims[m].max(1);
            Tensor::<2>::from_data(
                TensorData::new(std::mem::take(&mut modal_rows[m]), [n, width]),
                device,
            )
        });
        let has: Vec<f32> = train_counts
            .iter()
            .map(|&c| if c > 0 { 1.0 } else { 0.0 })
            .collect();
        Ok(AuthorTable {
            modal,
            presence: Tensor::from_data(TensorData::new(presence, [n, 3]), device),
            has_history: Tensor::from_data(TensorData::new(has, [n, 1]), device),
        })
    }

    /// Number of authors.
    pub fn len(&self) -> usize {
        self.presence.dims()[0]
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows of `authors`, in that order.
    pub fn select(&self, authors: Tensor<1, Int>) -> AuthorTable {
        AuthorTable {
            modal: std::array::from_fn(|m| self.modal[m].clone().select(0, authors.clone())),
            presence: self.presence.clone().select(0, authors.clone()),
            has_history: self.has_history.clone().select(0, authors),
        }
    }

    /// The table on another device (e.g. the autodiff device for training).
    pub fn to_device(&self, device: &Device) -> AuthorTable {
        AuthorTable {
            modal: std::array::from_fn(|m| self.modal[m].clone().to_device(device)),
            presence: self.presence.clone().to_device(device),
            has_history: self.has_history.clone().to_device(device),
        }
    }
}

/// The user–author tip features `[B, N, PAIR_FEATURES]` of each user's history against
/// each candidate (zeros for authors the user never tipped):
///
/// 0. `log1p(tips to the author)`;
/// 1. `exp(-days since the last one / 7)`;
/// 2. the mean `ln(amount)` of the tips to the author minus the user's mean over all its
///    tips (amounts grow with affinity, and subtracting the user's mean removes how
///    generous the user is);
/// 3. whether it was the user's latest tip;
/// 4. the same relative `ln(amount)` of the latest tip to the author (a drifted taste
///    shows there first);
/// 5. the share of the user's tips that went to the author;
/// 6. `exp(-days since the last one)` (short-term recency).
pub fn pair_features(
    histories: &[(&[TipEvent], i64)],
    candidates: &[usize],
    device: &Device,
) -> Tensor<3> {
    let n = candidates.len();
    let mut position = std::collections::HashMap::with_capacity(n);
    for (j, &a) in candidates.iter().enumerate() {
        position.entry(a).or_insert(j);
    }
    let mut out = vec![0f32; histories.len() * n * PAIR_FEATURES];
    let mut count = vec![0u32; n];
    let mut log_sum = vec![0f64; n];
    let mut last_log = vec![0f64; n];
    let mut last = vec![i64::MIN; n];
    for (b, (tips, at_ms)) in histories.iter().enumerate() {
        count.iter_mut().for_each(|c| *c = 0);
        log_sum.iter_mut().for_each(|x| *x = 0.0);
        let mut touched = Vec::new();
        for tip in tips.iter() {
            let ln_amount = log_amount(tip.amount);
            if let Some(&j) = position.get(&tip.author.index()) {
                if count[j] == 0 {
                    touched.push(j);
                    last[j] = i64::MIN;
                }
                count[j] += 1;
                log_sum[j] += ln_amount;
                if tip.timestamp_ms >= last[j] {
                    last[j] = tip.timestamp_ms;
                    last_log[j] = ln_amount;
                }
            }
        }
        let user_mean = mean_log_amount(tips);
        let latest = tips
            .last()
            .and_then(|t| position.get(&t.author.index()).copied());
        for j in touched {
            let row = &mut out[(b * n + j) * PAIR_FEATURES..(b * n + j + 1) * PAIR_FEATURES];
            let age_days = ((*at_ms - last[j]) as f64 / DAY_MS).max(0.0);
            row[0] = (count[j] as f32).ln_1p();
            row[1] = (-age_days / 7.0).exp() as f32;
            row[2] = (log_sum[j] / f64::from(count[j]) - user_mean) as f32;
            row[3] = if latest == Some(j) { 1.0 } else { 0.0 };
            row[4] = (last_log[j] - user_mean) as f32;
            row[5] = (f64::from(count[j]) / tips.len() as f64) as f32;
            row[6] = (-age_days).exp() as f32;
        }
    }
    Tensor::from_data(
        TensorData::new(out, [histories.len(), n, PAIR_FEATURES]),
        device,
    )
}

/// The mean `ln(amount)` of a user's tips (0 without tips): how generous the user is.
fn mean_log_amount(tips: &[TipEvent]) -> f64 {
    tips.iter().map(|t| log_amount(t.amount)).sum::<f64>() / tips.len().max(1) as f64
}

/// `ln(amount)` of a tip, with non-finite or tiny amounts read as one cent.
fn log_amount(amount: f64) -> f64 {
    if amount.is_finite() {
        amount.max(0.01).ln()
    } else {
        0.01f64.ln()
    }
}

/// The users' most recent tips, padded: `[B, L]` each.
#[derive(Clone, Debug)]
pub struct TipBatch {
    /// The tipped authors (0 on padding).
    pub authors: Tensor<2, Int>,
    /// Per-tip context `[B, L, TIP_FEATURES]` (see [`TIP_FEATURES`]).
    pub context: Tensor<3>,
    /// 1.0 at real tips, 0.0 on padding.
    pub mask: Tensor<2>,
}

impl TipBatch {
    /// The last `max_len` tips (before `at_ms`) of every history.
    pub fn build(histories: &[(&[TipEvent], i64)], max_len: usize, device: &Device) -> TipBatch {
        let b = histories.len();
        let l = histories
            .iter()
            .map(|(h, _)| h.len().min(max_len))
            .max()
            .unwrap_or(0)
            .max(1);
        let mut authors = vec![0i64; b * l];
        let mut context = vec![0f32; b * l * TIP_FEATURES];
        let mut mask = vec![0f32; b * l];
        for (row, (tips, at_ms)) in histories.iter().enumerate() {
            let start = tips.len().saturating_sub(max_len);
            let user_mean = mean_log_amount(tips);
            let mut earlier: HashMap<u32, u32> = HashMap::new();
            for (pos, tip) in tips.iter().enumerate() {
                let count = earlier.entry(tip.author.0).or_insert(0);
                let before = *count;
                *count += 1;
                if pos < start {
                    continue;
                }
                let slot = row * l + (pos - start);
                authors[slot] = i64::from(tip.author.0);
                mask[slot] = 1.0;
                let age = ((*at_ms - tip.timestamp_ms) as f64 / DAY_MS).max(0.0);
                let c = &mut context[slot * TIP_FEATURES..(slot + 1) * TIP_FEATURES];
                c[0] = (log_amount(tip.amount) - user_mean) as f32;
                c[1] = age.ln_1p() as f32;
                c[2] = f64::from(before).ln_1p() as f32;
            }
        }
        TipBatch {
            authors: Tensor::from_data(TensorData::new(authors, [b, l]), device),
            context: Tensor::from_data(TensorData::new(context, [b, l, TIP_FEATURES]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, l]), device),
        }
    }
}

/// One batch of users to score against one candidate list.
#[derive(Clone, Debug)]
pub struct MspaInput {
    /// The users' histories.
    pub tips: TipBatch,
    /// Embeddings of the composed preference texts `[B, text_dim]` (ignored when the model
    /// does not use text).
    pub text: Option<Tensor<2>>,
    /// The table of ALL authors (history and candidates are both read from it).
    pub authors: AuthorTable,
    /// The candidates' author indices `[N]`.
    pub candidate_ids: Tensor<1, Int>,
    /// User–author tip features `[B, N, PAIR_FEATURES]` ([`pair_features`]).
    pub pairs: Tensor<3>,
}

/// What a forward pass returns.
#[derive(Clone, Debug)]
pub struct MspaOutput {
    /// Scores `[B, N]` at every step (log-probabilities of the next tip over the
    /// candidates): index 0 before any correction, index `T` final.
    pub step_scores: Vec<Tensor<2>>,
    /// Modality weights `[B, N, 3]` at the final step.
    pub modality_weights: Tensor<3>,
    /// The gate's mean opening `[B]` at each correction step.
    pub gates: Vec<Tensor<1>>,
    /// Content-only author representations `[N, d]` (for the alignment loss).
    pub content: Tensor<2>,
    /// The text preference in the shared space `[B, d]`, when text is used.
    pub text_preference: Option<Tensor<2>>,
}

impl Mspa {
    /// Number of correction steps `T`.
    pub fn correction_steps(&self) -> usize {
        self.correction_steps
    }

    /// Whether the model reads the composed preference text.
    pub fn uses_text(&self) -> bool {
        self.use_text
    }

    /// Scores the candidates for every user of the batch at every correction step.
    ///
    /// Shapes: history `[B, L]`, text `[B, text_dim]`, candidates `N`; scores `[B, N]`.
    pub fn forward(&self, input: &MspaInput) -> MspaOutput {
        let d = self.d_model;
        let [a_all, _] = input.authors.presence.dims();
        let n = input.candidate_ids.dims()[0];
        let device = input.authors.presence.device();

        // Modality views of every author, independent of the user: [A, 3, d].
        let mask_vec: Vec<f32> = self
            .modalities
            .iter()
            .map(|&m| if m { 1.0 } else { 0.0 })
            .collect();
        let used = Tensor::<2>::from_data(TensorData::new(mask_vec, [1, 3]), &device);
        let presence_all = input.authors.presence.clone() * used; // [A, 3]
        let views_all: Vec<Tensor<3>> = (0..3)
            .map(|m| {
                let z = self.modal_norm[m]
                    .forward(self.modal_proj[m].forward(input.authors.modal[m].clone()));
                let z = z + self.modality_embedding.val().slice([m..m + 1]);
                let z = z * presence_all.clone().slice([0..a_all, m..m + 1]);
                z.reshape([a_all, 1, d])
            })
            .collect();
        let views_all = Tensor::cat(views_all, 1); // [A, 3, d]
        let has_all = input.authors.has_history.clone(); // [A, 1]
        let ids_all = if self.use_id {
            Some(self.id_embedding.val() * has_all.clone())
        } else {
            None
        };

        // Preference at step 0: attention pool of the user's tips in the shared space.
        let counts = presence_all.clone().sum_dim(1).clamp_min(1.0); // [A, 1]
        let mut author_content = views_all.clone().sum_dim(1).reshape([a_all, d]) / counts;
        if let Some(ids) = &ids_all {
            author_content = author_content + ids.clone();
        }
        let [b, l] = input.tips.authors.dims();
        let tipped = author_content
            .select(0, input.tips.authors.clone().reshape([b * l]))
            .reshape([b, l, d]);
        let tokens = tipped + self.tip_context.forward(input.tips.context.clone());
        let w = self.tip_weights.val();
        let context = input.tips.context.clone();
        let log_amount = context.clone().slice([0..b, 0..l, 0..1]).reshape([b, l]);
        let log_age = context.clone().slice([0..b, 0..l, 1..2]).reshape([b, l]);
        let repeat = context.slice([0..b, 0..l, 2..3]).reshape([b, l]);
        let decay = softplus(w.clone().slice([2..3]), 1.0).reshape([1, 1]);
        let age_days = log_age.exp() - 1.0;
        let logits = self.tip_score.forward(tokens.clone()).reshape([b, l])
            + log_amount * w.clone().slice([0..1]).reshape([1, 1])
            + repeat * w.slice([1..2]).reshape([1, 1])
            - age_days * decay;
        let mask = input.tips.mask.clone();
        let logits = logits.mask_fill(mask.clone().equal_elem(0.0), -1e9);
        let tip_attention = softmax(logits, 1) * mask.clone(); // all-padding rows become 0
        let pooled = (tip_attention.clone().reshape([b, l, 1]) * tokens)
            .sum_dim(1)
            .reshape([b, d]);
        let any = mask.max_dim(1); // [B, 1]
        let pooled = self.dropout.forward(pooled);
        let pooled = pooled * any.clone() + self.cold.val() * (any.neg() + 1.0);
        let mut preference = self.history_proj.forward(pooled);
        let text_preference = match (&self.text_proj, &input.text, self.use_text) {
            (Some(proj), Some(text), true) => {
                let t = proj.forward(self.dropout.forward(text.clone()));
                preference = preference + t.clone();
                Some(t)
            }
            _ => None,
        };
        let mut preference = self.preference_norm.forward(preference);

        // The candidates.
        let presence = presence_all.clone().select(0, input.candidate_ids.clone()); // [N, 3]
        let keys_all = self.key.forward(views_all.clone()); // [A, 3, d]
        let values_all = self.value.forward(views_all); // [A, 3, d]
        let keys = keys_all
            .clone()
            .select(0, input.candidate_ids.clone())
            .reshape([n * 3, d]);
        let values = values_all
            .clone()
            .select(0, input.candidate_ids.clone())
            .reshape([n * 3, d]);
        // The tipped authors' views, for the history evidence of the correction steps.
        let flat_tips = input.tips.authors.clone().reshape([b * l]);
        let history_keys = keys_all.select(0, flat_tips.clone()).reshape([b, l, 3, d]);
        let history_values = values_all
            .select(0, flat_tips.clone())
            .reshape([b, l, 3, d]);
        let history_absent = presence_all
            .clone()
            .select(0, flat_tips.clone())
            .reshape([b, l, 3])
            .equal_elem(0.0);
        let history_ids = ids_all
            .as_ref()
            .map(|ids| ids.clone().select(0, flat_tips).reshape([b, l, d]));
        let absent = presence.clone().equal_elem(0.0).reshape([1, n, 3]);

        // Id embedding and popularity bias of authors with training tips.
        let (ids, bias) = match &ids_all {
            Some(ids) => {
                let has = has_all.select(0, input.candidate_ids.clone()); // [N, 1]
                let bias = self
                    .author_bias
                    .val()
                    .select(0, input.candidate_ids.clone())
                    * has;
                (
                    Some(ids.clone().select(0, input.candidate_ids.clone())),
                    Some(bias.reshape([1, n])),
                )
            }
            None => (None, None),
        };
        let pair_bias = self
            .pair_out
            .forward(relu(self.pair_hidden.forward(input.pairs.clone())))
            .reshape([b, n]);
        let scale = self.log_scale.val().exp().reshape([1, 1]);
        let content = values.clone().reshape([n, 3, d]).sum_dim(1).reshape([n, d]) / 3.0;

        // Which candidates each user tipped before (their count feature is positive).
        let untipped = input
            .pairs
            .clone()
            .slice([0..b, 0..n, 0..1])
            .reshape([b, n])
            .lower_equal_elem(0.0);
        let no_tips = untipped.clone().float().min_dim(1).equal_elem(1.0); // [B, 1]

        // Everything below is matmuls over the flattened [N·3, d] views, never a
        // [B, N, 3, d] tensor: ⟨p, Σ_m α_m v_m⟩ = Σ_m α_m ⟨p, v_m⟩.
        let mut step_scores = Vec::with_capacity(self.correction_steps + 1);
        let mut gates = Vec::with_capacity(self.correction_steps);
        let mut weights;
        let mut step = 0;
        loop {
            // Preference-conditioned attention over each author's modalities.
            let q = self.query.forward(preference.clone()); // [B, d]
            let logits = q
                .clone()
                .matmul(keys.clone().transpose())
                .reshape([b, n, 3])
                / (d as f64).sqrt();
            let logits = logits.mask_fill(absent.clone().expand([b, n, 3]), -1e9);
            weights = softmax(logits, 2); // [B, N, 3]
            let per_view = preference
                .clone()
                .matmul(values.clone().transpose())
                .reshape([b, n, 3]);
            let mut dot = (weights.clone() * per_view).sum_dim(2).reshape([b, n]);
            if let Some(ids) = &ids {
                dot = dot + preference.clone().matmul(ids.clone().transpose());
            }
            let mut preference_scores = dot * scale.clone();
            if let Some(bias) = &bias {
                preference_scores = preference_scores + bias.clone();
            }
            // Repeat or explore: log(π P_rep(a) + (1 − π) P_explore(a)).
            let explore = log_softmax(preference_scores.clone(), 1);
            let repeat = log_softmax(
                (preference_scores.clone() + pair_bias.clone()).mask_fill(untipped.clone(), -1e9),
                1,
            );
            let repeat_logit = self.repeat_gate.forward(preference.clone()); // [B, 1]
            let log_repeat = log_sigmoid(repeat_logit.clone()).mask_fill(no_tips.clone(), -1e9);
            let log_explore = log_sigmoid(repeat_logit.neg()).mask_fill(no_tips.clone(), 0.0);
            let scores = log_add_exp(repeat + log_repeat, explore.clone() + log_explore);
            step_scores.push(scores.clone());
            if step == self.correction_steps {
                break;
            }
            // Self-correction: compare the evidence the user's own tips give under the
            // current preference, e_h = Σ_tips w_i r_{a_i}(p), with the evidence the
            // preference alone selects from the candidate pool, e_s = Σ_a P_explore(a)
            // r_a(p) (their difference is the history likelihood's gradient in p); a gate
            // decides how much of the learned update to take.
            let attention = explore.exp(); // [B, N]
            let joint =
                (attention.clone().reshape([b, n, 1]) * weights.clone()).reshape([b, n * 3]);
            let mut selected = joint.matmul(values.clone());
            if let Some(ids) = &ids {
                selected = selected + attention.matmul(ids.clone());
            }
            let history_logits = (history_keys.clone() * q.reshape([b, 1, 1, d]))
                .sum_dim(3)
                .reshape([b, l, 3])
                / (d as f64).sqrt();
            let history_weights =
                softmax(history_logits.mask_fill(history_absent.clone(), -1e9), 2);
            let mut history_aligned = (history_weights.reshape([b, l, 3, 1])
                * history_values.clone())
            .sum_dim(2)
            .reshape([b, l, d]);
            if let Some(ids) = &history_ids {
                history_aligned = history_aligned + ids.clone();
            }
            let history_evidence = (tip_attention.clone().reshape([b, l, 1]) * history_aligned)
                .sum_dim(1)
                .reshape([b, d]);
            let difference = history_evidence - selected;
            let gate = sigmoid(self.gate.forward(Tensor::cat(
                vec![
                    preference.clone(),
                    difference.clone(),
                    preference.clone() * difference.clone(),
                ],
                1,
            )));
            let update = tanh(
                self.correct
                    .forward(Tensor::cat(vec![preference.clone(), difference], 1)),
            );
            gates.push(gate.clone().mean_dim(1).reshape([b]));
            preference = self.correction_norm.forward(preference + gate * update);
            step += 1;
        }
        MspaOutput {
            step_scores,
            modality_weights: weights,
            gates,
            content,
            text_preference,
        }
    }
}

/// The MSPA training loss of one batch: softmax cross-entropy of the positive among the
/// candidates at every step (each step supervised, step `t` weighted by `t + 1`), plus `align_weight`
/// times an in-batch InfoNCE between the text preference and the positive author's
/// content representation.
///
/// `positives[b]` is the position of user `b`'s positive in the candidate list.
pub fn mspa_loss(output: &MspaOutput, positives: Tensor<1, Int>, align_weight: f64) -> Tensor<1> {
    let b = positives.dims()[0];
    let targets = positives.clone().reshape([b, 1]);
    // Step t weighs (t + 1) / Σ(t + 1): every step is supervised, later steps more, so
    // the corrected preference is the one the model optimises most.
    let steps = output.step_scores.len();
    let norm = (steps * (steps + 1) / 2) as f64;
    let mut total: Option<Tensor<1>> = None;
    for (t, scores) in output.step_scores.iter().enumerate() {
        let nll = log_softmax(scores.clone(), 1)
            .gather(1, targets.clone())
            .mean()
            .neg()
            * ((t + 1) as f64 / norm);
        total = Some(match total {
            Some(acc) => acc + nll,
            None => nll,
        });
    }
    let mut total = total.expect("at least one step");
    if let (Some(text), true) = (&output.text_preference, align_weight > 0.0) {
        let positive_content = output.content.clone().select(0, positives);
        let text = l2_normalise(text.clone());
        let content = l2_normalise(positive_content);
        let logits = text.matmul(content.transpose()) * 10.0; // temperature 0.1
        let device = logits.device();
        let diagonal = Tensor::<1, Int>::arange(0..b as i64, &device).reshape([b, 1]);
        let nll = log_softmax(logits, 1).gather(1, diagonal).mean().neg();
        total = total + nll * align_weight;
    }
    total
}

/// `ln(e^a + e^b)`, elementwise and stable.
fn log_add_exp(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    let m = a.clone().max_pair(b.clone());
    m.clone() + ((a - m.clone()).exp() + (b - m).exp()).log()
}

/// Rows scaled to unit L2 norm.
fn l2_normalise(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-6);
    x / norm
}
