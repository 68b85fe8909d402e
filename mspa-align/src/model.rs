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
//! 2. the preference and the user's own history decide how much each modality matters
//!    for this author:
//!    `α_{a,m} = softmax_m(⟨W_q p, W_k z_{a,m}⟩ / √d + s_m c_m)` over the present
//!    modalities, where `c_m` is the history coherence of modality `m` (the mean
//!    pairwise cosine of the user's distinct tipped authors' standardised features:
//!    a user who cares about a palette tips authors whose frames agree; see the
//!    `coherence` submodule) and `s_m` a learned weight, and the
//!    aligned author evidence is `r_a(p) = Σ_m α_{a,m} W_v z_{a,m} (+ id embedding when the
//!    author has training tips)`;
//! 3. the preference alone scores `u(p, a) = γ ⟨p, r_a(p)⟩ + b_a` (`b_a` a popularity bias
//!    of authors with history); the next tip either explores, `P_explore = softmax_a(u)`
//!    over all candidates, or repeats, `P_repeat = softmax(u + f(tips of a))` over the
//!    authors the user tipped before (`f` a small network over the user's own tips of
//!    `a`: count, recency, relative amount), and the score is the log of the mixture
//!    `π P_repeat(a) + (1 − π) P_explore(a)` with `π = σ(w_π · p)` (0 without tips), so
//!    how likely a repeat is depends on the user and its state;
//! 4. self-correction, `T` times, on each user's shortlist `S` (the top `K` of step 0,
//!    so the steps' cost does not grow with the number of authors): the evidence the
//!    preference alone selects from it, `e_s = Σ_{a∈S} P_explore(a | S) r_a(p)`, is
//!    compared with the evidence of the user's own tips under the same preference,
//!    `e_h = Σ_i w_i r_{a_i}(p)` (`w` the history attention); `δ = e_h − e_s` is the
//!    gradient of the history's log-likelihood under `P_explore` (up to `γ`); a gate
//!    `g = σ(W_g [p, δ, p ⊙ δ])` decides how much of the update `tanh(W_c [p, δ])` to
//!    take, `p ← LN(p + g ⊙ update)`;
//!    the shortlist's modalities are then re-attended with the corrected preference and
//!    re-scored; shortlisted authors rank above the others, which keep their step-0 score.
//!
//! Every step's scores are returned, so each step is supervised and the trace explains
//! the ranking. `T = 0` is the ablation without correction. While training, dropout on
//! the pooled history and the preference text makes the initial preference imperfect, and
//! the correction steps learn to repair it from the evidence.
//!
//! The network's inputs ([`AuthorTable`], [`TipBatch`], [`pair_features`], bundled in
//! [`MspaInput`]) are built from the dataset in the `input` submodule and re-exported
//! here.

mod candidates;
mod coherence;
mod input;
mod output;
#[cfg(test)]
mod tests;

use candidates::{CandidateEvidence, Views};
use coherence::history_coherence;

pub use input::{
    AuthorTable, InputDropout, MspaInput, PAIR_FEATURES, TIP_FEATURES, TipBatch, pair_features,
};
pub use output::{MspaOutput, SHORTLIST_MARGIN};

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::Config;
use burn::tensor::activation::{log_sigmoid, log_softmax, relu, sigmoid, softmax, softplus, tanh};
use burn::tensor::{Bool, Device, IndexingUpdateOp, Int, Tensor, TensorData};

use crate::data::Example;
use crate::dropout::DropoutMasks;
use crate::error::{AlignError, Result};

/// Initial [`Mspa`] weight of a modality's history coherence in its attention logit
/// (chosen on validation NDCG@10 of the default world, seed 1: 0.3334 against 0.3309
/// with 10).
const COHERENCE_SCALE_INIT: f32 = 2.0;

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
    /// Candidates each correction step re-ranks: the top `shortlist` of step 0 (0: all
    /// candidates), so the steps' cost does not grow with the number of authors.
    #[config(default = 50)]
    pub shortlist: usize,
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

    /// Checks the hyper-parameters and builds the model on `device` (random weights from
    /// the device's seed).
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
            // Coherences differ by about 0.1 between users.
            coherence_scale: Param::from_tensor(Tensor::<1>::from_floats(
                [COHERENCE_SCALE_INIT; 3],
                device,
            )),
            d_model: d,
            correction_steps: self.correction_steps,
            shortlist: self.shortlist,
            use_text: self.use_text && self.text_dim > 0,
            modalities: self.modalities,
            use_id: self.id_embedding,
        })
    }
}

/// The MSPA recommender network. See the module docs for the equations.
#[derive(Module, Debug)]
pub struct Mspa {
    /// Per-tip context (`TIP_FEATURES`) into the shared space.
    tip_context: Linear,
    /// The learned part of a tip's pooling logit.
    tip_score: Linear,
    /// Pooling weights of the relative `ln(amount)` and `log(1 + earlier tips of the
    /// author)`, and the pre-softplus daily decay.
    tip_weights: Param<Tensor<1>>,
    /// `[1, d]` the pooled history of users without tips.
    cold: Param<Tensor<2>>,
    /// The pooled history into the preference.
    history_proj: Linear,
    /// The composed-preference embedding into the preference (when text is used).
    text_proj: Option<Linear>,
    /// Layer norm of the step-0 preference.
    preference_norm: LayerNorm,
    /// `W_m`: each modality's features into the shared space.
    modal_proj: Vec<Linear>,
    /// Layer norm of each modality's projection.
    modal_norm: Vec<LayerNorm>,
    /// `[3, d]` the modality embeddings `e_m`.
    modality_embedding: Param<Tensor<2>>,
    /// `W_q` of the modality attention.
    query: Linear,
    /// `W_k` of the modality attention.
    key: Linear,
    /// `W_v` of the modality attention.
    value: Linear,
    /// `[A, d]` id embeddings of authors with training tips.
    id_embedding: Param<Tensor<2>>,
    /// `[A, 1]` popularity biases `b_a` of authors with training tips.
    author_bias: Param<Tensor<2>>,
    /// Hidden layer of `f`, the repeat term over the user–author tip features.
    pair_hidden: Linear,
    /// Output layer of `f`.
    pair_out: Linear,
    /// `W_g`: the correction gate over `[p, δ, p ⊙ δ]`.
    gate: Linear,
    /// `W_c`: the correction update over `[p, δ]`.
    correct: Linear,
    /// Layer norm of the corrected preference.
    correction_norm: LayerNorm,
    /// `w_π`: the repeat probability's logit.
    repeat_gate: Linear,
    /// Dropout on the pooled history and the preference text (training only; its masks
    /// come from [`Mspa::draw_dropout`]).
    dropout: Dropout,
    /// `ln γ`, the scale of the preference score.
    log_scale: Param<Tensor<1>>,
    /// `[3]` how much each modality's history coherence adds to its attention logit.
    coherence_scale: Param<Tensor<1>>,
    /// Size of the shared space `d`.
    #[module(skip)]
    d_model: usize,
    /// Correction steps `T`.
    #[module(skip)]
    correction_steps: usize,
    /// Candidates the correction steps re-rank (0: all).
    #[module(skip)]
    shortlist: usize,
    /// Whether the composed preference text is read.
    #[module(skip)]
    use_text: bool,
    /// Which modalities (visual, audio, text) are used.
    #[module(skip)]
    modalities: [bool; 3],
    /// Whether id embeddings and popularity biases are used.
    #[module(skip)]
    use_id: bool,
}

impl Mspa {
    /// Number of correction steps `T`.
    pub fn correction_steps(&self) -> usize {
        self.correction_steps
    }

    /// Candidates each correction step re-ranks (0: all).
    pub fn shortlist(&self) -> usize {
        self.shortlist
    }

    /// The same network re-ranking the top `shortlist` of step 0 (0: all candidates).
    pub fn with_shortlist(mut self, shortlist: usize) -> Self {
        self.shortlist = shortlist;
        self
    }

    /// Dropout masks of one training batch of `b` users (on the pooled history and, when
    /// the model reads text, on the text), drawn by [`DropoutMasks::for_batch`] from
    /// `seed` and the batch; `None` when the dropout is 0.
    pub fn draw_dropout(
        &self,
        seed: u64,
        batch: &[&Example],
        device: &Device,
    ) -> Option<InputDropout> {
        if self.dropout.prob <= 0.0 {
            return None;
        }
        let mut masks = DropoutMasks::for_batch(seed, batch, 1.0 - self.dropout.prob);
        let b = batch.len();
        let pooled = masks.draw([b, self.d_model], device);
        let text = match (&self.text_proj, self.use_text) {
            (Some(proj), true) => Some(masks.draw([b, proj.weight.dims()[0]], device)),
            _ => None,
        };
        Some(InputDropout { pooled, text })
    }

    /// Whether the model reads the composed preference text.
    pub fn uses_text(&self) -> bool {
        self.use_text
    }

    /// Scores the candidates for every user of the batch at every correction step.
    ///
    /// The steps, in order: every author's modality views in the shared space
    /// (`author_views`); the attention pool of the users' tips
    /// (`pool_history`); the initial preference from the pool and the text
    /// (`initial_preference`); the candidates' and the tipped authors' keys and
    /// values (`gather_evidence`); then scoring (`score_candidates`) and,
    /// `T` times, a correction (`correction_step`) followed by a re-scoring.
    ///
    /// # Shapes
    ///
    /// - history `input.tips`: `[B, L]` (`[B, L, TIP_FEATURES]` context)
    /// - text `input.text`: `[B, text_dim]`
    /// - authors `input.authors`: `A` rows; candidates `input.candidate_ids`: `[N]`
    /// - pair features `input.pairs`: `[B, N, PAIR_FEATURES]`
    /// - output: `T + 1` score tensors `[B, N]`, modality weights `[B, N, 3]`, `T` gates
    ///   `[B]`, content `[N, d]`, text preference `[B, d]`, final preference `[B, d]`
    pub fn forward(&self, input: &MspaInput) -> MspaOutput {
        let coherence = history_coherence(&input.authors, &input.tips, self.modalities);
        let authors = self.author_views(&input.authors);
        let history = self.pool_history(&authors, &input.tips);
        let (mut preference, text_preference) = self.initial_preference(
            history.pooled,
            history.any,
            input.text.as_ref(),
            input.dropout.as_ref(),
        );
        let (candidates, tipped, content) = self.gather_evidence(authors, input, history.attention);

        // Everything below is matmuls over the flattened [N·3, d] views, never a
        // [B, N, 3, d] tensor: ⟨p, Σ_m α_m v_m⟩ = Σ_m α_m ⟨p, v_m⟩.
        let initial = self.score_candidates(&preference, &coherence, &candidates);
        let mut output = MspaOutput {
            initial_scores: initial.scores.clone(),
            initial_weights: initial.weights.clone(),
            shortlist: None,
            corrected_scores: Vec::with_capacity(self.correction_steps),
            corrected_weights: None,
            gates: Vec::with_capacity(self.correction_steps),
            content,
            text_preference,
            preference: preference.clone(),
        };
        if self.correction_steps == 0 {
            return output;
        }
        // The correction steps re-rank each user's shortlist only.
        let shortlist = self.select_shortlist(&initial.scores);
        let shortlisted = candidates.shortlist(&shortlist);
        let mut step = self.on_shortlist(&initial, &shortlist, &preference, &shortlisted);
        let candidates = shortlisted;
        for _ in 0..self.correction_steps {
            let (corrected, gate) = self.correction_step(preference, &step, &candidates, &tipped);
            output.gates.push(gate);
            preference = corrected;
            step = self.score_candidates(&preference, &coherence, &candidates);
            output.corrected_scores.push(step.scores.clone());
        }
        output.shortlist = Some(shortlist);
        output.corrected_weights = Some(step.weights);
        output.preference = preference;
        output
    }

    /// `[B, K]` positions of each user's top `K` candidates at step 0 (`K` the
    /// shortlist size, at most the number of candidates).
    fn select_shortlist(&self, scores: &Tensor<2>) -> Tensor<2, Int> {
        let [_, n] = scores.dims();
        let k = match self.shortlist {
            0 => n,
            k => k.min(n),
        };
        scores.clone().detach().topk_with_indices(k, 1).1
    }

    /// Modality views of every author, independent of the user: `z_{a,m} = LN(W_m
    /// x_{a,m}) + e_m`, zero where the modality is missing or not used.
    fn author_views(&self, authors: &AuthorTable) -> AuthorViews {
        let d = self.d_model;
        let [a_all, _] = authors.presence.dims();
        let device = authors.presence.device();
        let mask_vec: Vec<f32> = self
            .modalities
            .iter()
            .map(|&m| if m { 1.0 } else { 0.0 })
            .collect();
        let used = Tensor::<2>::from_data(TensorData::new(mask_vec, [1, 3]), &device);
        let presence_all = authors.presence.clone() * used; // [A, 3]
        let views_all: Vec<Tensor<3>> = (0..3)
            .map(|m| {
                let z = self.modal_norm[m]
                    .forward(self.modal_proj[m].forward(authors.modal[m].clone()));
                let z = z + self.modality_embedding.val().slice([m..m + 1]);
                let z = z * presence_all.clone().slice([0..a_all, m..m + 1]);
                z.reshape([a_all, 1, d])
            })
            .collect();
        let views_all = Tensor::cat(views_all, 1); // [A, 3, d]
        let has_all = authors.has_history.clone(); // [A, 1]
        let ids_all = if self.use_id {
            Some(self.id_embedding.val() * has_all.clone())
        } else {
            None
        };
        AuthorViews {
            views: views_all,
            presence: presence_all,
            has_history: has_all,
            ids: ids_all,
        }
    }

    /// The attention pool of the users' tips in the shared space (author content + id
    /// embedding + tip context; the pooling logits weigh the amount and repeats and
    /// decay with the tip's age).
    fn pool_history(&self, authors: &AuthorViews, tips: &TipBatch) -> PooledHistory {
        let d = self.d_model;
        let [a_all, _] = authors.presence.dims();
        let counts = authors.presence.clone().sum_dim(1).clamp_min(1.0); // [A, 1]
        let mut author_content = authors.views.clone().sum_dim(1).reshape([a_all, d]) / counts;
        if let Some(ids) = &authors.ids {
            author_content = author_content + ids.clone();
        }
        let [b, l] = tips.authors.dims();
        let tipped = author_content
            .select(0, tips.authors.clone().reshape([b * l]))
            .reshape([b, l, d]);
        let tokens = tipped + self.tip_context.forward(tips.context.clone());
        let w = self.tip_weights.val();
        let context = tips.context.clone();
        let log_amount = context.clone().slice([0..b, 0..l, 0..1]).reshape([b, l]);
        let log_age = context.clone().slice([0..b, 0..l, 1..2]).reshape([b, l]);
        let repeat = context.slice([0..b, 0..l, 2..3]).reshape([b, l]);
        let decay = softplus(w.clone().slice([2..3]), 1.0).reshape([1, 1]);
        let age_days = log_age.exp() - 1.0;
        let logits = self.tip_score.forward(tokens.clone()).reshape([b, l])
            + log_amount * w.clone().slice([0..1]).reshape([1, 1])
            + repeat * w.slice([1..2]).reshape([1, 1])
            - age_days * decay;
        let mask = tips.mask.clone();
        let logits = logits.mask_fill(mask.clone().equal_elem(0.0), -1e9);
        let tip_attention = softmax(logits, 1) * mask.clone(); // all-padding rows become 0
        let pooled = (tip_attention.clone().reshape([b, l, 1]) * tokens)
            .sum_dim(1)
            .reshape([b, d]);
        let any = mask.max_dim(1); // [B, 1]
        PooledHistory {
            attention: tip_attention,
            pooled,
            any,
        }
    }

    /// The preference at step 0: the (dropped-out) history pool, or the learned cold
    /// vector for users without tips, projected, plus the projected preference text when
    /// it is used, layer-normalised. Also returns the text preference.
    fn initial_preference(
        &self,
        pooled: Tensor<2>,
        any: Tensor<2>,
        text: Option<&Tensor<2>>,
        dropout: Option<&InputDropout>,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        let pooled = match dropout {
            Some(masks) => pooled * masks.pooled.clone(),
            None => pooled,
        };
        let pooled = pooled * any.clone() + self.cold.val() * (any.neg() + 1.0);
        let mut preference = self.history_proj.forward(pooled);
        let text_preference = match (&self.text_proj, text, self.use_text) {
            (Some(proj), Some(text), true) => {
                let text = match dropout.and_then(|masks| masks.text.as_ref()) {
                    Some(mask) => text.clone() * mask.clone(),
                    None => text.clone(),
                };
                let t = proj.forward(text);
                preference = preference + t.clone();
                Some(t)
            }
            _ => None,
        };
        (self.preference_norm.forward(preference), text_preference)
    }

    /// Keys and values of the candidates' and the tipped authors' views, and the
    /// preference-independent terms of the candidates' scores (id embeddings, popularity
    /// bias, repeat features).
    fn gather_evidence(
        &self,
        authors: AuthorViews,
        input: &MspaInput,
        tip_attention: Tensor<2>,
    ) -> (CandidateEvidence, TippedEvidence, Tensor<2>) {
        let d = self.d_model;
        let n = input.candidate_ids.dims()[0];
        let [b, l] = input.tips.authors.dims();
        let AuthorViews {
            views: views_all,
            presence: presence_all,
            has_history: has_all,
            ids: ids_all,
        } = authors;

        // The candidates.
        let presence = presence_all.clone().select(0, input.candidate_ids.clone()); // [N, 3]
        // Rows of three views `[A, 3·d]`: a 2-D select's gradient adds whole rows (Burn's
        // flex backend adds a 3-D select's gradient element by element, far slower).
        let [a_all, _, _] = views_all.dims();
        let keys_all = self.key.forward(views_all.clone()).reshape([a_all, 3 * d]);
        let values_all = self.value.forward(views_all).reshape([a_all, 3 * d]);
        let keys = keys_all
            .clone()
            .select(0, input.candidate_ids.clone())
            .reshape([n * 3, d]);
        let values = values_all
            .clone()
            .select(0, input.candidate_ids.clone())
            .reshape([n * 3, d]);
        // The batch's distinct tipped authors' views `[U·3, d]`, for the history evidence
        // of the correction steps: their dot products and pools are matrix products over
        // these rows, then read per tip through `author_slots`.
        let tips = &input.tips;
        let u = tips.batch_authors.dims()[0];
        let history_keys = keys_all
            .select(0, tips.batch_authors.clone())
            .reshape([u * 3, d]);
        let history_values = values_all
            .select(0, tips.batch_authors.clone())
            .reshape([u * 3, d]);
        let history_absent = presence_all
            .clone()
            .select(0, tips.authors.clone().reshape([b * l]))
            .reshape([b, l, 3])
            .equal_elem(0.0);
        // `Σ_l w_l id_{a_l}`: the same at every correction step.
        let history_ids = ids_all.as_ref().map(|ids| {
            spread(&tip_attention, &tips.author_slots, u)
                .matmul(ids.clone().select(0, tips.batch_authors.clone()))
        });
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
        (
            CandidateEvidence {
                views: Views::Shared { keys, values, ids },
                absent,
                bias,
                pair_bias,
                scale,
                untipped,
                no_tips,
            },
            TippedEvidence {
                keys: history_keys,
                values: history_values,
                view_slots: view_slots(&tips.author_slots),
                absent: history_absent,
                ids: history_ids,
                attention: tip_attention,
            },
            content,
        )
    }

    /// One step's scores under `preference`: preference-conditioned attention over each
    /// candidate's modalities, the preference score `u(p, a)`, and the log of the
    /// repeat/explore mixture.
    fn score_candidates(
        &self,
        preference: &Tensor<2>,
        coherence: &Tensor<2>,
        c: &CandidateEvidence,
    ) -> StepScores {
        let d = self.d_model;
        // Preference-conditioned attention over each candidate's modalities, plus how
        // alike the user's own authors are in each modality.
        let q = self.query.forward(preference.clone()); // [B, d]
        let logits = c.key_dots(&q) / (d as f64).sqrt(); // [B, N, 3]
        let [b, n, _] = logits.dims();
        let user_side = coherence.clone() * self.coherence_scale.val().reshape([1, 3]);
        let logits = logits + user_side.reshape([b, 1, 3]);
        let logits = logits.mask_fill(c.absent.clone().expand([b, n, 3]), -1e9);
        let weights = softmax(logits, 2); // [B, N, 3]
        let per_view = c.value_dots(preference);
        let mut dot = (weights.clone() * per_view).sum_dim(2).reshape([b, n]);
        if let Some(ids) = c.id_dots(preference) {
            dot = dot + ids;
        }
        let mut preference_scores = dot * c.scale.clone();
        if let Some(bias) = &c.bias {
            preference_scores = preference_scores + bias.clone();
        }
        let (explore, scores) = self.mixture(preference, &preference_scores, c);
        StepScores {
            query: q,
            weights,
            preference_scores,
            explore,
            scores,
        }
    }

    /// `step`'s scores read on each user's shortlist `[B, K]` (positions among `step`'s
    /// candidates; `c` the shortlist's evidence): what scoring the shortlist under the
    /// same `preference` gives, without computing its dot products again.
    fn on_shortlist(
        &self,
        step: &StepScores,
        positions: &Tensor<2, Int>,
        preference: &Tensor<2>,
        c: &CandidateEvidence,
    ) -> StepScores {
        let preference_scores = step.preference_scores.clone().gather(1, positions.clone());
        let (explore, scores) = self.mixture(preference, &preference_scores, c);
        StepScores {
            query: step.query.clone(),
            weights: step
                .weights
                .clone()
                .gather(1, candidates::view_positions(positions)),
            preference_scores,
            explore,
            scores,
        }
    }

    /// Repeat or explore, `[B, N]` each: `log P_explore` (the softmax of the preference
    /// scores) and the step's scores `log(π P_rep(a) + (1 − π) P_explore(a))`.
    fn mixture(
        &self,
        preference: &Tensor<2>,
        preference_scores: &Tensor<2>,
        c: &CandidateEvidence,
    ) -> (Tensor<2>, Tensor<2>) {
        let explore = log_softmax(preference_scores.clone(), 1);
        let repeat = log_softmax(
            (preference_scores.clone() + c.pair_bias.clone()).mask_fill(c.untipped.clone(), -1e9),
            1,
        );
        let repeat_logit = self.repeat_gate.forward(preference.clone()); // [B, 1]
        let log_repeat = log_sigmoid(repeat_logit.clone()).mask_fill(c.no_tips.clone(), -1e9);
        let log_explore = log_sigmoid(repeat_logit.neg()).mask_fill(c.no_tips.clone(), 0.0);
        let scores = log_add_exp(repeat + log_repeat, explore.clone() + log_explore);
        (explore, scores)
    }

    /// Self-correction: compares the evidence the user's own tips give under the current
    /// preference, `e_h = Σ_tips w_i r_{a_i}(p)`, with the evidence the preference alone
    /// selects from the candidate pool, `e_s = Σ_a P_explore(a) r_a(p)` (their difference
    /// is the history likelihood's gradient in `p`); a gate decides how much of the
    /// learned update to take. Returns the corrected preference and the gate's mean
    /// opening `[B]`.
    fn correction_step(
        &self,
        preference: Tensor<2>,
        step: &StepScores,
        c: &CandidateEvidence,
        tipped: &TippedEvidence,
    ) -> (Tensor<2>, Tensor<1>) {
        let d = self.d_model;
        let [b, n, _] = step.weights.dims();
        let [_, l] = tipped.attention.dims();
        let attention = step.explore.clone().exp(); // [B, N]
        let joint =
            (attention.clone().reshape([b, n, 1]) * step.weights.clone()).reshape([b, n * 3]);
        let mut selected = c.pool_values(joint);
        if let Some(ids) = c.pool_ids(attention) {
            selected = selected + ids;
        }
        // `⟨k_{a_l,m}, q⟩` per tip and modality: products with the batch's tipped authors
        // `[B, U·3]`, read at each tip's views.
        let history_logits = step
            .query
            .clone()
            .matmul(tipped.keys.clone().transpose())
            .gather(1, tipped.view_slots.clone())
            .reshape([b, l, 3])
            / (d as f64).sqrt();
        let history_weights = softmax(history_logits.mask_fill(tipped.absent.clone(), -1e9), 2);
        // `Σ_l w_l Σ_m β_{l,m} v_{a_l,m}`: the per-view weights added up per tipped author
        // `[B, U·3]`, times their values.
        let view_weights =
            (history_weights * tipped.attention.clone().reshape([b, l, 1])).reshape([b, l * 3]);
        let [u3, _] = tipped.values.dims();
        let mut history_evidence =
            spread(&view_weights, &tipped.view_slots, u3).matmul(tipped.values.clone());
        if let Some(ids) = &tipped.ids {
            history_evidence = history_evidence + ids.clone();
        }
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
        let gate_mean = gate.clone().mean_dim(1).reshape([b]);
        let corrected = self.correction_norm.forward(preference + gate * update);
        (corrected, gate_mean)
    }
}

/// Every author's modality views in the shared space (see `author_views`).
struct AuthorViews {
    /// `[A, 3, d]`, zero for missing or unused modalities.
    views: Tensor<3>,
    /// `[A, 3]`, 1.0 where the modality is real and used.
    presence: Tensor<2>,
    /// `[A, 1]`, 1.0 for authors with training tips.
    has_history: Tensor<2>,
    /// `[A, d]` id embeddings (zero for authors without training tips), if used.
    ids: Option<Tensor<2>>,
}

/// The attention pool of the users' tips (see `pool_history`).
struct PooledHistory {
    /// `[B, L]` attention over the tips (0 on padding and for users without tips).
    attention: Tensor<2>,
    /// `[B, d]` the pooled tips.
    pooled: Tensor<2>,
    /// `[B, 1]` 1.0 for users with at least one tip.
    any: Tensor<2>,
}

/// What the correction reads of the tipped authors (see `gather_evidence`).
struct TippedEvidence {
    /// `[U·3, d]` keys of the views of the batch's `U` distinct tipped authors.
    keys: Tensor<2>,
    /// `[U·3, d]` values of their views.
    values: Tensor<2>,
    /// `[B, L·3]` each tip's three views as rows of `keys` and `values`.
    view_slots: Tensor<2, Int>,
    /// `[B, L, 3]` true where a tipped author's modality is missing or unused.
    absent: Tensor<3, Bool>,
    /// `[B, d]` the attention-weighted sum of the tipped authors' id embeddings, if used.
    ids: Option<Tensor<2>>,
    /// `[B, L]` the history attention `w`.
    attention: Tensor<2>,
}

/// One step's scores and what the next correction reads of them (see
/// `score_candidates`).
struct StepScores {
    /// `[B, d]` the attention query `W_q p`.
    query: Tensor<2>,
    /// `[B, N, 3]` the modality weights `α`.
    weights: Tensor<3>,
    /// `[B, N]` the preference scores `u(p, a)` (with the popularity bias).
    preference_scores: Tensor<2>,
    /// `[B, N]` `log P_explore`.
    explore: Tensor<2>,
    /// `[B, N]` the step's scores.
    scores: Tensor<2>,
}

/// The MSPA training loss of one batch: softmax cross-entropy of the positive among the
/// candidates at every step (each step supervised, step `t` weighted by `t + 1`), plus `align_weight`
/// times an in-batch InfoNCE between the text preference and the positive author's
/// content representation.
///
/// `positives[b]` is the position of user `b`'s positive in the candidate list; the
/// correction steps' cross-entropy is over each user's shortlist, for the users whose
/// positive is on it.
pub fn mspa_loss(output: &MspaOutput, positives: Tensor<1, Int>, align_weight: f64) -> Tensor<1> {
    let b = positives.dims()[0];
    let targets = positives.clone().reshape([b, 1]);
    // The correction steps score the shortlist, as at inference: their cross-entropy
    // covers the users whose positive step 0 put on it (`on_list`), at the positive's
    // place there.
    let on_shortlist = output.shortlist.as_ref().map(|shortlist| {
        let hit = shortlist
            .clone()
            .equal(targets.clone().expand(shortlist.dims()))
            .int();
        let on_list = hit.clone().max_dim(1).float(); // [B, 1]
        (hit.argmax(1), on_list)
    });
    // Step t weighs (t + 1) / Σ(t + 1): every step is supervised, later steps more, so
    // the corrected preference is the one the model optimises most.
    let steps = 1 + output.corrected_scores.len();
    let norm = (steps * (steps + 1) / 2) as f64;
    let mut total = log_softmax(output.initial_scores.clone(), 1)
        .gather(1, targets.clone())
        .mean()
        .neg()
        / norm;
    if let Some((at, on_list)) = &on_shortlist {
        let listed = on_list.clone().sum().clamp_min(1.0);
        for (t, scores) in output.corrected_scores.iter().enumerate() {
            let nll = (log_softmax(scores.clone(), 1).gather(1, at.clone()) * on_list.clone())
                .sum()
                .neg()
                / listed.clone();
            total = total + nll * ((t + 2) as f64 / norm);
        }
    }
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

/// `[B, U]`: the weights `[B, L]` of each row's tips (or tip views) added up per slot,
/// where `slots [B, L]` places each among `u` slots (the batch's distinct tipped authors,
/// or their views).
fn spread(weights: &Tensor<2>, slots: &Tensor<2, Int>, u: usize) -> Tensor<2> {
    let [b, _] = weights.dims();
    Tensor::<2>::zeros([b, u], &weights.device()).scatter(
        1,
        slots.clone(),
        weights.clone(),
        IndexingUpdateOp::Add,
    )
}

/// `[B, L·3]`: the rows `3 s + m` of each tip's views, for author slots `s` `[B, L]`.
fn view_slots(slots: &Tensor<2, Int>) -> Tensor<2, Int> {
    let [b, l] = slots.dims();
    let views = Tensor::<1, Int>::arange(0..3, &slots.device()).reshape([1, 1, 3]);
    (slots
        .clone()
        .reshape([b, l, 1])
        .mul_scalar(3)
        .expand([b, l, 3])
        + views.expand([b, l, 3]))
    .reshape([b, l * 3])
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
