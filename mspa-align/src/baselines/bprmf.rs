//! BPR-MF (Rendle et al. 2009): user and author id embeddings plus an author bias,
//! trained with the Bayesian personalised ranking loss against sampled negatives.
//!
//! `score(u, a) = <p_u, q_a> + b_a`. A user without training tips has no learned
//! embedding: it scores with `p_u = 0`, so it falls back to the author bias (a learned
//! popularity).

use burn::module::Module;
use burn::nn::Embedding;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use mspa_core::{Dataset, Split};
use mspa_metrics::Protocol;

use super::{
    FactorScorer, SeededInit, bpr_loss, fit_baseline, index_tensors, known_users, to_vec2,
};
use crate::data::{Example, NegativeBatch, training_examples};
use crate::error::{AlignError, Result};
use crate::recommender::{Query, Recommender};
use crate::train::{EpochReport, TrainConfig};

/// Hyper-parameters of [`BprMf`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BprMfConfig {
    /// Embedding size. Default 32.
    pub dim: usize,
    /// Standard deviation of the initial embeddings. Default 0.1.
    pub init_std: f64,
    /// Protocol of the validation NDCG@10. Default repeats allowed.
    pub protocol: Protocol,
    /// Keep at most this many (most recent) training examples per user. Default all.
    pub max_examples_per_user: Option<usize>,
    /// The trainer (defaults: 30 epochs, batch 256, learning rate 0.01, 8 negatives).
    pub train: TrainConfig,
}

impl Default for BprMfConfig {
    fn default() -> Self {
        BprMfConfig {
            dim: 32,
            init_std: 0.1,
            protocol: Protocol::RepeatsAllowed,
            max_examples_per_user: None,
            train: TrainConfig {
                epochs: 30,
                learning_rate: 0.01,
                negatives: 8,
                weight_decay: 1e-3,
                ..TrainConfig::default()
            },
        }
    }
}

/// The trainable BPR-MF parameters.
#[derive(Module, Debug)]
pub struct BprMfModule {
    /// User embeddings `[n_users, dim]`.
    pub user: Embedding,
    /// Author embeddings `[n_authors, dim]`.
    pub author: Embedding,
    /// Author biases `[n_authors, 1]`.
    pub bias: Embedding,
}

impl BprMfModule {
    /// A model for `n_users` x `n_authors` with embeddings of size `dim` drawn from
    /// `N(0, init_std^2)` with `seed`; biases start at zero.
    pub fn new(
        n_users: usize,
        n_authors: usize,
        dim: usize,
        init_std: f64,
        seed: u64,
        device: &Device,
    ) -> Self {
        let mut init = SeededInit::new(seed);
        BprMfModule {
            user: init.embedding(n_users, dim, init_std, device),
            author: init.embedding(n_authors, dim, init_std, device),
            bias: init.embedding(n_authors, 1, 0.0, device),
        }
    }

    /// The BPR loss of a batch (users, positives `[B]`, negatives `[B, N]`).
    pub fn loss(&self, batch: &[&Example], negs: &NegativeBatch, device: &Device) -> Tensor<1> {
        let b = batch.len();
        let n = negs.per_example;
        let (users, pos, neg) = index_tensors(batch, negs, device);
        let pu = self.user.weight.val().select(0, users); // [B, d]
        let d = pu.dims()[1];
        let qp = self.author.weight.val().select(0, pos.clone()); // [B, d]
        let bp = self.bias.weight.val().select(0, pos); // [B, 1]
        let qn = self
            .author
            .weight
            .val()
            .select(0, neg.clone())
            .reshape([b, n, d]); // [B, N, d]
        let bn = self.bias.weight.val().select(0, neg).reshape([b, n]); // [B, N]
        let s_pos = (pu.clone() * qp).sum_dim(1) + bp; // [B, 1]
        let s_neg = (pu.unsqueeze_dim::<3>(1) * qn).sum_dim(2).reshape([b, n]) + bn; // [B, N]
        bpr_loss(s_pos, s_neg)
    }
}

/// A trained BPR-MF recommender.
#[derive(Clone, Debug)]
pub struct BprMf {
    scorer: FactorScorer,
}

impl BprMf {
    /// Trains on the training events of `split` (validating on `split.valid`).
    /// `progress` gets every epoch's report.
    pub fn fit(
        dataset: &Dataset,
        split: &Split,
        config: &BprMfConfig,
        device: &Device,
        progress: impl FnMut(&EpochReport),
    ) -> Result<(BprMf, Vec<EpochReport>)> {
        if config.dim == 0 {
            return Err(AlignError::config("dim", "must be at least 1"));
        }
        if !(config.init_std.is_finite() && config.init_std >= 0.0) {
            return Err(AlignError::config("init_std", "must be finite and >= 0"));
        }
        let examples = training_examples(dataset, split, config.max_examples_per_user);
        let known = known_users(dataset, split);
        let model = BprMfModule::new(
            dataset.n_users(),
            dataset.n_authors(),
            config.dim,
            config.init_std,
            config.train.seed,
            device,
        );
        fit_baseline(
            model,
            &config.train,
            device,
            dataset,
            split,
            config.protocol,
            &examples,
            |m: &BprMfModule, batch, negs, dev| m.loss(batch, negs, dev),
            |m: &BprMfModule| BprMf::from_module(m, known.clone()),
            progress,
        )
    }

    /// Copies a (plain) module's parameters; `known[u]` says whether user `u` has a
    /// learned embedding.
    pub fn from_module(m: &BprMfModule, known: Vec<bool>) -> Result<BprMf> {
        let users = to_vec2(m.user.weight.val())?;
        let authors = to_vec2(m.author.weight.val())?;
        let bias = to_vec2(m.bias.weight.val())?;
        let k = m.author.weight.val().dims()[1];
        Ok(BprMf {
            scorer: FactorScorer {
                k,
                n_authors: bias.len(),
                users,
                known,
                authors,
                bias,
            },
        })
    }
}

impl Recommender for BprMf {
    fn name(&self) -> &str {
        "BPR-MF"
    }

    fn score_batch(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()> {
        self.scorer.score(queries, out)
    }
}
