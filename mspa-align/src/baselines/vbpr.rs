//! VBPR (He & McAuley, AAAI 2016): BPR-MF plus a visual factor.
//!
//! `score(u, a) = <p_u, q_a> + <theta_u, E f_a> + b_a + <beta, f_a>`, where `f_a` is the
//! author's (standardised) visual feature vector, `E` a learned projection to the visual
//! factor space, `theta_u` the user's visual taste and `beta` a visual bias. The
//! features can be widened to other modalities with [`VbprConfig::modalities`]. Users
//! without training tips score with `p_u = theta_u = 0` (author and visual biases alone).

use burn::module::Module;
use burn::nn::{Embedding, Linear};
use burn::tensor::{Device, Tensor};

use mspa_modal::features::Modality;

use super::bprmf::bpr_trainer;
use super::{
    BatchIndex, CpuLinear, FactorScorer, FeatureMatrix, FitRun, SeededInit, bpr_loss, tensor_values,
};
use crate::data::{Example, NegativeBatch};
use crate::error::{Result, check};
use crate::fit::{FitRecommender, Progress, TrainingData};

baseline_config! {
    /// Hyper-parameters of [`Vbpr`].
    pub struct VbprConfig {
        /// Size of the id factors. Default 16.
        pub dim: usize = 16,
        /// Size of the visual factors. Default 16.
        pub visual_dim: usize = 16,
        /// Standard deviation of the initial embeddings. Default 0.1.
        pub init_std: f64 = 0.1,
        /// Which author features feed the visual factor. Default `[visual]` (the paper's).
        pub modalities: Vec<Modality> = vec![Modality::Visual],
    }
    /// The trainer (defaults: 30 epochs, batch 256, learning rate 0.01, 8 negatives).
    train = bpr_trainer();
}

/// The trainable VBPR parameters.
#[derive(Module, Debug)]
pub struct VbprModule {
    /// User id factors `[n_users, dim]`.
    pub user: Embedding,
    /// Author id factors `[n_authors, dim]`.
    pub author: Embedding,
    /// Author biases `[n_authors, 1]`.
    pub bias: Embedding,
    /// User visual tastes `[n_users, visual_dim]`.
    pub theta: Embedding,
    /// Feature projection `E`: `[F] -> [visual_dim]`, no bias.
    pub proj: Linear,
    /// Visual bias `beta`: `[F] -> [1]`, no bias.
    pub beta: Linear,
}

impl VbprModule {
    /// A model of `config`'s sizes for `n_users` x `n_authors` with `n_features` feature
    /// columns, drawn with `config.train.seed` (embeddings from `N(0, init_std^2)`,
    /// biases and `beta` zero).
    pub fn new(
        n_users: usize,
        n_authors: usize,
        n_features: usize,
        config: &VbprConfig,
        device: &Device,
    ) -> Self {
        let mut init = SeededInit::new(config.train.seed);
        let std = config.init_std;
        VbprModule {
            user: init.embedding(n_users, config.dim, std, device),
            author: init.embedding(n_authors, config.dim, std, device),
            bias: init.embedding(n_authors, 1, 0.0, device),
            theta: init.embedding(n_users, config.visual_dim, std, device),
            proj: init.linear(n_features, config.visual_dim, false, 1.0, device),
            beta: init.linear(n_features, 1, false, 0.0, device),
        }
    }

    /// The BPR loss of a batch; `features` holds every author's feature row.
    pub fn loss(
        &self,
        features: &FeatureMatrix,
        batch: &[&Example],
        negs: &NegativeBatch,
        device: &Device,
    ) -> Tensor<1> {
        let BatchIndex {
            users,
            pos,
            neg,
            b,
            n,
        } = BatchIndex::new(batch, negs, device);
        let pos_idx: Vec<usize> = batch.iter().map(|e| e.positive.index()).collect();
        let neg_idx: Vec<usize> = negs.authors.iter().map(|a| a.index()).collect();
        let fp = features.rows_tensor(&pos_idx, device); // [B, F]
        let fneg = features.rows_tensor(&neg_idx, device); // [B*N, F]
        // User side: [p_u | theta_u].
        let user = Tensor::cat(
            vec![
                self.user.weight.val().select(0, users.clone()),
                self.theta.weight.val().select(0, users),
            ],
            1,
        ); // [B, k]
        let k = user.dims()[1];
        // Author side: [q_a | E f_a], bias b_a + beta f_a.
        let ap = Tensor::cat(
            vec![
                self.author.weight.val().select(0, pos.clone()),
                self.proj.forward(fp.clone()),
            ],
            1,
        ); // [B, k]
        let bp = self.bias.weight.val().select(0, pos) + self.beta.forward(fp); // [B, 1]
        let an = Tensor::cat(
            vec![
                self.author.weight.val().select(0, neg.clone()),
                self.proj.forward(fneg.clone()),
            ],
            1,
        )
        .reshape([b, n, k]);
        let bn = (self.bias.weight.val().select(0, neg) + self.beta.forward(fneg)).reshape([b, n]);
        let s_pos = (user.clone() * ap).sum_dim(1) + bp;
        let s_neg = (user.unsqueeze_dim::<3>(1) * an).sum_dim(2).reshape([b, n]) + bn;
        bpr_loss(s_pos, s_neg)
    }
}

factor_recommender! {
    /// A trained VBPR recommender.
    pub struct Vbpr = "VBPR";
}

impl FitRecommender for VbprConfig {
    type Model = Vbpr;

    /// Trains on the training events of `data.split` with the authors' features (indexed
    /// by author id; an error without them), validating on `split.valid`.
    fn fit(&self, data: &TrainingData, device: &Device, progress: Progress) -> Result<Vbpr> {
        let features = data.require_features("VBPR")?;
        check::all_at_least_one("dim", "dim and visual_dim", &[self.dim, self.visual_dim])?;
        check::non_negative("init_std", self.init_std)?;
        let dataset = data.dataset;
        let matrix = FeatureMatrix::build(features, &self.modalities, dataset.n_authors())?;
        let run = FitRun::new(data, self, device);
        let known = run.known_users();
        let model = VbprModule::new(
            dataset.n_users(),
            dataset.n_authors(),
            matrix.dim,
            self,
            device,
        );
        run.fit(
            model,
            |m: &VbprModule, batch, negs, dev| m.loss(&matrix, batch, negs, dev),
            |m: &VbprModule| Vbpr::from_module(m, &matrix, known.clone()),
            progress,
        )
    }
}

impl Vbpr {
    /// Copies a (plain) module's parameters and folds the features in: the author side
    /// becomes `[q_a | E f_a]` with bias `b_a + beta f_a`, the user side `[p_u | theta_u]`.
    pub fn from_module(m: &VbprModule, features: &FeatureMatrix, known: Vec<bool>) -> Result<Vbpr> {
        let users_id = tensor_values(m.user.weight.val())?;
        let theta = tensor_values(m.theta.weight.val())?;
        let authors_id = tensor_values(m.author.weight.val())?;
        let bias_id = tensor_values(m.bias.weight.val())?;
        let proj = CpuLinear::from_linear(&m.proj)?;
        let beta = CpuLinear::from_linear(&m.beta)?;
        let dim = m.author.weight.val().dims()[1];
        let vdim = proj.d_out;
        let k = dim + vdim;
        let n_authors = bias_id.len();
        let n_users = known.len().min(users_id.len() / dim.max(1));
        let mut users = vec![0f32; n_users * k];
        for u in 0..n_users {
            users[u * k..u * k + dim].copy_from_slice(&users_id[u * dim..(u + 1) * dim]);
            users[u * k + dim..(u + 1) * k].copy_from_slice(&theta[u * vdim..(u + 1) * vdim]);
        }
        let mut authors = vec![0f32; n_authors * k];
        let mut bias = vec![0f32; n_authors];
        let mut one = [0f32; 1];
        for a in 0..n_authors {
            authors[a * k..a * k + dim].copy_from_slice(&authors_id[a * dim..(a + 1) * dim]);
            proj.forward(features.row(a), &mut authors[a * k + dim..(a + 1) * k]);
            beta.forward(features.row(a), &mut one);
            bias[a] = bias_id[a] + one[0];
        }
        Ok(Vbpr {
            scorer: FactorScorer {
                k,
                n_authors,
                users,
                known,
                authors,
                bias,
            },
        })
    }
}
