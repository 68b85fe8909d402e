//! BPR-MF (Rendle et al. 2009): user and author id embeddings plus an author bias,
//! trained with the Bayesian personalised ranking loss against sampled negatives.
//!
//! `score(u, a) = <p_u, q_a> + b_a`. A user without training tips has no learned
//! embedding: it scores with `p_u = 0`, so it falls back to the author bias (a learned
//! popularity).

use burn::module::Module;
use burn::nn::Embedding;
use burn::tensor::{Device, Tensor};

use super::{BatchIndex, FactorScorer, FitRun, SeededInit, bpr_loss, tensor_values};
use crate::data::{Example, NegativeBatch};
use crate::error::{Result, check};
use crate::fit::{FitRecommender, Progress, TrainingData};
use crate::train::TrainConfig;

/// The trainer defaults of BPR-MF (and of VBPR, BPR-MF plus a visual factor): 30 epochs,
/// batch 256, learning rate 0.01, weight decay 1e-3, 8 negatives.
pub(crate) fn bpr_trainer() -> TrainConfig {
    TrainConfig {
        epochs: 30,
        learning_rate: 0.01,
        negatives: 8,
        weight_decay: 1e-3,
        ..TrainConfig::default()
    }
}

baseline_config! {
    /// Hyper-parameters of [`BprMf`].
    pub struct BprMfConfig {
        /// Embedding size. Default 32.
        pub dim: usize = 32,
        /// Standard deviation of the initial embeddings. Default 0.1.
        pub init_std: f64 = 0.1,
    }
    /// The trainer (defaults: 30 epochs, batch 256, learning rate 0.01, 8 negatives).
    train = bpr_trainer();
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
        let BatchIndex {
            users,
            pos,
            neg,
            b,
            n,
        } = BatchIndex::new(batch, negs, device);
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

factor_recommender! {
    /// A trained BPR-MF recommender.
    pub struct BprMf = "BPR-MF";
}

impl BprMf {
    /// Copies a (plain) module's parameters; `known[u]` says whether user `u` has a
    /// learned embedding.
    pub fn from_module(m: &BprMfModule, known: Vec<bool>) -> Result<BprMf> {
        let users = tensor_values(m.user.weight.val())?;
        let authors = tensor_values(m.author.weight.val())?;
        let bias = tensor_values(m.bias.weight.val())?;
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

impl FitRecommender for BprMfConfig {
    type Model = BprMf;

    /// Trains on the training events of `data.split` (validating on `split.valid`).
    /// `progress` gets every epoch's report.
    fn fit(&self, data: &TrainingData, device: &Device, progress: Progress) -> Result<BprMf> {
        check::at_least_one("dim", self.dim)?;
        check::non_negative("init_std", self.init_std)?;
        let run = FitRun::new(data, self, device);
        let known = run.known_users();
        let model = BprMfModule::new(
            data.dataset.n_users(),
            data.dataset.n_authors(),
            self.dim,
            self.init_std,
            self.train.seed,
            device,
        );
        run.fit(
            model,
            |m: &BprMfModule, batch, negs, dev| m.loss(batch, negs, dev),
            |m: &BprMfModule| BprMf::from_module(m, known.clone()),
            progress,
        )
    }
}
