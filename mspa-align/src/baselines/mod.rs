//! Baselines: popularity, repeat-aware popularity, id-based matrix factorisation, visual
//! BPR, graph collaborative filtering (LightGCN) and its multimodal successor (FREEDOM),
//! the shallow multimodal concatenation model, a repeat-aware sequential model (SASRec)
//! and (feature `synth`) the oracle of the synthetic world.
//!
//! | model | signal | training |
//! |---|---|---|
//! | [`MostPop`] | training tip counts | counting |
//! | [`RepeatPop`] | the user's own authors by recency- and amount-weighted tips, then popularity | grid search of two weights on validation |
//! | [`BprMf`] | user and author id embeddings + author bias | BPR loss, sampled negatives |
//! | [`Vbpr`] | BPR-MF + visual features through a learned projection (He & McAuley 2016) | BPR loss |
//! | [`LightGcn`] | user and author id embeddings smoothed over the normalised training user–author graph (He et al. 2020) | BPR loss + L2 on layer-0 embeddings |
//! | [`Freedom`] | LightGCN on a per-epoch degree-pruned user–author graph + author embeddings over a frozen multimodal kNN author graph (Zhou & Shen 2023) | BPR loss + modality BPR terms |
//! | [`Concat`] | amount-weighted mean of the history authors' `[visual, audio, text]` features through an MLP, dotted with each author's features through another MLP | sampled softmax |
//! | [`SasRec`] | self-attention over the last tips (Kang & McAuley 2018) + LiveRec repeat terms (count and recency buckets, user repeat propensity) | full softmax over all authors |
//! | [`Oracle`] | the world's exact next-tip probabilities | none |
//!
//! Every model implements [`crate::recommender::Recommender`], and the config of every
//! model but MostPop and the oracle implements [`crate::fit::FitRecommender`], the one way
//! to fit it (RepeatPop also keeps [`RepeatPop::fit`]). Trained models other than
//! SASRec keep their parameters as plain `Vec<f32>` (extracted from the Burn modules
//! after training), so scoring is pure Rust, thread-safe and independent of the training
//! device; SASRec keeps its module and scores batches of queries on its device, as MSPA
//! does.
//!
//! Author features come as `&[AuthorFeatures]` indexed by [`mspa_core::AuthorId`]; a
//! [`FeatureMatrix`] standardises each feature dimension over the authors that have the
//! modality, leaves missing modalities at zero and appends one presence flag per
//! modality.

#[macro_use]
mod macros;

pub mod bprmf;
pub mod concat;
pub mod freedom;
pub mod lightgcn;
pub mod mostpop;
#[cfg(feature = "synth")]
pub mod oracle;
pub mod repeatpop;
pub mod sasrec;
pub mod vbpr;

pub use bprmf::{BprMf, BprMfConfig, BprMfModule};
pub use concat::{Concat, ConcatConfig, ConcatModule};
pub use freedom::{
    Freedom, FreedomConfig, FreedomModule, author_knn_graph, modality_knn_graph, prune_edges,
};
pub use lightgcn::{
    EdgeGraph, GraphTensors, LightGcn, LightGcnConfig, LightGcnModule, UserAuthorGraph,
};
pub use mostpop::MostPop;
#[cfg(feature = "synth")]
pub use oracle::{Oracle, OracleMode};
pub use repeatpop::{RepeatPop, RepeatPopConfig, RepeatWeighting};
pub use sasrec::{SasRec, SasRecConfig, SasRecModule};
pub use vbpr::{Vbpr, VbprConfig, VbprModule};

pub use mspa_modal::init::SeededInit;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Int, Tensor, TensorData};
use mspa_core::{Dataset, Split};
use mspa_metrics::Protocol;
use mspa_modal::features::{AuthorFeatures, Modality};

pub(crate) use crate::data::tensor_values;
use crate::data::{
    Example, NegativeBatch, Negatives, train_author_counts, training_examples, user_train_authors,
};
use crate::error::{AlignError, Result};
use crate::fit::TrainingData;
use crate::recommender::{Query, Recommender, check_out_len, validation_ndcg10};
use crate::train::{EpochReport, TrainConfig, fit_with};

/// Author features as one dense, standardised `[n_authors, dim]` matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMatrix {
    /// Number of authors (rows).
    pub n_authors: usize,
    /// Columns: the chosen modalities' dimensions, then one presence flag per modality.
    pub dim: usize,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl FeatureMatrix {
    /// Builds the matrix of `modalities` (in the given order) for `n_authors` authors.
    ///
    /// Each dimension is standardised (zero mean, unit variance) over the authors that
    /// have the modality; an author without it gets zeros there and presence flag 0.
    /// Fails if `features` does not hold exactly one entry per author, if authors
    /// disagree on a modality's size, or if a present value is not finite.
    pub fn build(
        features: &[AuthorFeatures],
        modalities: &[Modality],
        n_authors: usize,
    ) -> Result<Self> {
        check_feature_rows(features, n_authors)?;
        if modalities.is_empty() {
            return Err(AlignError::config(
                "modalities",
                "choose at least one modality",
            ));
        }
        let dims: Vec<usize> = modalities
            .iter()
            .map(|&m| features.first().map_or(0, |f| f.get(m).len()))
            .collect();
        for (a, f) in features.iter().enumerate() {
            for (&m, &d) in modalities.iter().zip(&dims) {
                if f.get(m).len() != d {
                    return Err(AlignError::data(format!(
                        "author {a}: {m:?} features have {} values, author 0 has {d}",
                        f.get(m).len()
                    )));
                }
                if f.has(m) && f.get(m).iter().any(|v| !v.is_finite()) {
                    return Err(AlignError::data(format!(
                        "author {a}: {m:?} features hold a non-finite value"
                    )));
                }
            }
        }
        let dim = dims.iter().sum::<usize>() + modalities.len();
        let mut data = vec![0f32; n_authors * dim];
        let mut offset = 0;
        for (k, (&m, &d)) in modalities.iter().zip(&dims).enumerate() {
            let present: Vec<usize> = (0..n_authors).filter(|&a| features[a].has(m)).collect();
            for j in 0..d {
                let n = present.len().max(1) as f64;
                let mean = present
                    .iter()
                    .map(|&a| f64::from(features[a].get(m)[j]))
                    .sum::<f64>()
                    / n;
                let var = present
                    .iter()
                    .map(|&a| (f64::from(features[a].get(m)[j]) - mean).powi(2))
                    .sum::<f64>()
                    / n;
                let std = if var > 1e-12 { var.sqrt() } else { 1.0 };
                for &a in &present {
                    data[a * dim + offset + j] =
                        ((f64::from(features[a].get(m)[j]) - mean) / std) as f32;
                }
            }
            let flag = dims.iter().sum::<usize>() + k;
            for &a in &present {
                data[a * dim + flag] = 1.0;
            }
            offset += d;
        }
        Ok(FeatureMatrix {
            n_authors,
            dim,
            data,
        })
    }

    /// One author's row.
    pub fn row(&self, author: usize) -> &[f32] {
        &self.data[author * self.dim..(author + 1) * self.dim]
    }

    /// The rows of `authors`, in order, as a `[authors.len(), dim]` tensor.
    pub fn rows_tensor(&self, authors: &[usize], device: &Device) -> Tensor<2> {
        let mut flat = Vec::with_capacity(authors.len() * self.dim);
        for &a in authors {
            flat.extend_from_slice(self.row(a));
        }
        Tensor::from_data(TensorData::new(flat, [authors.len(), self.dim]), device)
    }

    /// The amount-weighted mean of the rows of the history's authors (uniform weights
    /// when every amount is zero; zeros for an empty history), written to `out`.
    pub fn history_mean(&self, history: &[mspa_core::TipEvent], out: &mut [f32]) {
        out.fill(0.0);
        if history.is_empty() {
            return;
        }
        let total: f64 = history.iter().map(|e| e.amount.max(0.0)).sum();
        let uniform = !(total > 0.0 && total.is_finite());
        for e in history {
            let w = if uniform {
                1.0 / history.len() as f64
            } else {
                e.amount.max(0.0) / total
            } as f32;
            if w == 0.0 || e.author.index() >= self.n_authors {
                continue;
            }
            for (o, v) in out.iter_mut().zip(self.row(e.author.index())) {
                *o += w * v;
            }
        }
    }
}

/// Fails unless `features` holds exactly one entry per author.
pub(crate) fn check_feature_rows(features: &[AuthorFeatures], n_authors: usize) -> Result<()> {
    if features.len() != n_authors {
        return Err(AlignError::data(format!(
            "got features for {} authors, the dataset has {n_authors}",
            features.len()
        )));
    }
    Ok(())
}

/// A linear layer copied to the CPU: `y = x W + b`, `W` is `[d_in, d_out]` row-major.
#[derive(Clone, Debug)]
pub(crate) struct CpuLinear {
    pub d_in: usize,
    pub d_out: usize,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

impl CpuLinear {
    pub fn from_linear(lin: &Linear) -> Result<Self> {
        let w = lin.weight.val();
        let [d_in, d_out] = w.dims();
        let b = match &lin.bias {
            Some(b) => tensor_values(b.val())?,
            None => vec![0.0; d_out],
        };
        Ok(CpuLinear {
            d_in,
            d_out,
            w: tensor_values(w)?,
            b,
        })
    }

    /// `out = x W + b` for one row.
    pub fn forward(&self, x: &[f32], out: &mut [f32]) {
        out.copy_from_slice(&self.b);
        for (i, &xi) in x.iter().enumerate().take(self.d_in) {
            if xi == 0.0 {
                continue;
            }
            let row = &self.w[i * self.d_out..(i + 1) * self.d_out];
            for (o, &w) in out.iter_mut().zip(row) {
                *o += xi * w;
            }
        }
    }
}

/// A two-layer MLP on the CPU: `relu(x W1 + b1) W2 + b2`.
#[derive(Clone, Debug)]
pub(crate) struct CpuMlp {
    pub l1: CpuLinear,
    pub l2: CpuLinear,
}

impl CpuMlp {
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut h = vec![0f32; self.l1.d_out];
        self.l1.forward(x, &mut h);
        for v in &mut h {
            *v = v.max(0.0);
        }
        let mut out = vec![0f32; self.l2.d_out];
        self.l2.forward(&h, &mut out);
        out
    }
}

/// Scores `dot(user, author) + bias(author)` from factor matrices; unknown users (no
/// training tips, or ids past the table) get a zero vector, i.e. the author bias alone.
#[derive(Clone, Debug)]
pub(crate) struct FactorScorer {
    pub k: usize,
    pub n_authors: usize,
    pub users: Vec<f32>,
    pub known: Vec<bool>,
    pub authors: Vec<f32>,
    pub bias: Vec<f32>,
}

impl FactorScorer {
    /// A scorer without author biases from final user `[n_users, k]` and author
    /// `[n_authors, k]` embeddings (copied to the CPU).
    pub fn from_embeddings(users: Tensor<2>, authors: Tensor<2>, known: Vec<bool>) -> Result<Self> {
        let k = users.dims()[1];
        let n_authors = authors.dims()[0];
        Ok(FactorScorer {
            k,
            n_authors,
            users: tensor_values(users)?,
            known,
            authors: tensor_values(authors)?,
            bias: vec![0.0; n_authors],
        })
    }

    pub fn score(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()> {
        use rayon::prelude::*;
        check_out_len(queries.len(), out.len(), self.n_authors)?;
        if self.n_authors == 0 {
            return Ok(());
        }
        let zeros = vec![0f32; self.k];
        out.par_chunks_mut(self.n_authors)
            .zip(queries.par_iter())
            .for_each(|(row, q)| {
                let u = q.user.index();
                let pu: &[f32] = if u < self.known.len()
                    && self.known[u]
                    && (u + 1) * self.k <= self.users.len()
                {
                    &self.users[u * self.k..(u + 1) * self.k]
                } else {
                    &zeros
                };
                for (a, s) in row.iter_mut().enumerate() {
                    let qa = &self.authors[a * self.k..(a + 1) * self.k];
                    *s = self.bias[a] + pu.iter().zip(qa).map(|(x, y)| x * y).sum::<f32>();
                }
            });
        Ok(())
    }
}

/// Whether each user has at least one training tip.
pub(crate) fn known_users(dataset: &Dataset, split: &Split) -> Vec<bool> {
    let mut known = vec![false; dataset.n_users()];
    for &i in &split.train {
        if let Some(e) = dataset.events().get(i) {
            known[e.user.index()] = true;
        }
    }
    known
}

/// The negatives of the id- and feature-based baselines: every author is a candidate
/// (popularity-weighted by training counts with `train.negative_exponent`), never one
/// the user tipped in training.
pub(crate) fn baseline_negatives(
    dataset: &Dataset,
    split: &Split,
    train: &TrainConfig,
) -> Result<Negatives> {
    let counts = train_author_counts(dataset, split);
    Ok(Negatives::popularity(&counts, train.negative_exponent)?
        .avoiding(user_train_authors(dataset, split)))
}

/// The fields every trained baseline's config shares (implemented by the configs'
/// declarations in `macros.rs`).
pub(crate) trait SharedSettings {
    /// Protocol of the validation NDCG@10.
    fn protocol(&self) -> Protocol;
    /// Keep at most this many (most recent) training examples per user.
    fn max_examples_per_user(&self) -> Option<usize>;
    /// The trainer.
    fn train(&self) -> &TrainConfig;
}

/// One training run of a baseline: the data, its training examples and the shared
/// settings of the baseline's config.
pub(crate) struct FitRun<'a> {
    pub dataset: &'a Dataset,
    pub split: &'a Split,
    pub device: &'a Device,
    pub protocol: Protocol,
    /// The trainer (a copy: a baseline may adjust it before [`FitRun::fit`]).
    pub train: TrainConfig,
    /// The training examples of `split`, capped per user as the config says.
    pub examples: Vec<Example>,
}

impl<'a> FitRun<'a> {
    /// The run of `config` on the training events of `data.split`.
    pub fn new(data: &TrainingData<'a>, config: &impl SharedSettings, device: &'a Device) -> Self {
        let TrainingData { dataset, split, .. } = *data;
        FitRun {
            dataset,
            split,
            device,
            protocol: config.protocol(),
            train: config.train().clone(),
            examples: training_examples(dataset, split, config.max_examples_per_user()),
        }
    }

    /// Whether each user has at least one training tip.
    pub fn known_users(&self) -> Vec<bool> {
        known_users(self.dataset, self.split)
    }

    /// Trains `model` with the shared trainer and validates it on `split.valid` (NDCG@10
    /// under the protocol) through the scorer `to_rec` builds from a plain model copy;
    /// `progress` gets every epoch's report.
    pub fn fit<M, R, L>(
        self,
        model: M,
        loss: L,
        to_rec: impl Fn(&M) -> Result<R>,
        progress: impl FnMut(&EpochReport),
    ) -> Result<R>
    where
        M: Module,
        R: Recommender,
        L: Fn(&M, &[&Example], &NegativeBatch, &Device) -> Tensor<1>,
    {
        let FitRun {
            dataset,
            split,
            device,
            protocol,
            mut train,
            examples,
        } = self;
        let negatives = baseline_negatives(dataset, split, &train)?;
        if split.valid.is_empty() {
            train.eval_every = 0;
        }
        let (model, _) = fit_with(
            model,
            &train,
            device,
            &examples,
            &negatives,
            loss,
            |m: &M| {
                let rec = to_rec(m)?;
                validation_ndcg10(&rec, dataset, &split.valid, protocol)
            },
            progress,
        )?;
        to_rec(&model)
    }
}

/// The index tensors of a batch that the BPR-style losses read.
pub(crate) struct BatchIndex {
    /// Users `[B]`.
    pub users: Tensor<1, Int>,
    /// Positive authors `[B]`.
    pub pos: Tensor<1, Int>,
    /// Negative authors `[B * N]`.
    pub neg: Tensor<1, Int>,
    /// Examples in the batch, `B`.
    pub b: usize,
    /// Negatives per example, `N`.
    pub n: usize,
}

impl BatchIndex {
    /// The indices of `batch` and its negatives `negs` on `device`.
    pub fn new(batch: &[&Example], negs: &NegativeBatch, device: &Device) -> Self {
        BatchIndex {
            users: crate::data::users_tensor(batch, device),
            pos: crate::data::positives_tensor(batch, device),
            neg: negs.to_flat_tensor(device),
            b: batch.len(),
            n: negs.per_example,
        }
    }
}

/// The mean BPR loss `-log sigmoid(s_pos - s_neg)` of positive scores `[B, 1]` against
/// negative scores `[B, N]`.
pub(crate) fn bpr_loss(pos: Tensor<2>, neg: Tensor<2>) -> Tensor<1> {
    burn::tensor::activation::log_sigmoid(pos - neg)
        .mean()
        .neg()
}

/// The mean sampled-softmax loss: cross-entropy of the positive (column 0) among
/// `[pos, negs]` logits `[B, 1 + N]`.
pub(crate) fn sampled_softmax_loss(logits: Tensor<2>) -> Tensor<1> {
    let [b, n] = logits.dims();
    let lp = burn::tensor::activation::log_softmax(logits, 1);
    lp.slice([0..b, 0..1.min(n)]).mean().neg()
}
