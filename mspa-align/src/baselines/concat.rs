//! The conventional shallow multimodal model: concatenated features, two towers, a dot
//! product.
//!
//! Each author is the concatenation `[visual | audio | text | presence flags]` of its
//! standardised features (a [`FeatureMatrix`]); the author tower maps it through a
//! two-layer MLP. A user is the amount-weighted mean of the concatenated features of the
//! authors in its history, through a second two-layer MLP. The score is the dot product
//! of the two towers' outputs, trained with a sampled softmax (the positive against the
//! sampled negatives). The model has no id embeddings, so it scores unseen users and
//! authors from their content alone; a user with an empty history is the zero vector
//! through the user tower.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use mspa_core::Dataset;
use mspa_modal::features::Modality;

use super::{
    CpuLinear, CpuMlp, FeatureMatrix, FitRun, SeededInit, sampled_softmax_loss, tensor_values,
};
use crate::data::{Example, NegativeBatch};
use crate::error::{Result, check};
use crate::fit::{FitRecommender, Progress, TrainingData};
use crate::recommender::{Query, Recommender, check_out_len};
use crate::train::TrainConfig;

baseline_config! {
    /// Hyper-parameters of [`Concat`].
    pub struct ConcatConfig {
        /// Hidden size of both MLPs. Default 128.
        pub hidden: usize = 128,
        /// Output size of both towers (the dot-product space). Default 64.
        pub dim: usize = 64,
        /// The modalities concatenated, in order. Default visual, audio, text.
        pub modalities: Vec<Modality> = Modality::ALL.to_vec(),
    }
    /// The trainer (defaults: 20 epochs, batch 256, learning rate 1e-3, 32 negatives).
    train = TrainConfig {
        epochs: 20,
        learning_rate: 1e-3,
        negatives: 32,
        ..TrainConfig::default()
    };
}

/// The two towers.
#[derive(Module, Debug)]
pub struct ConcatModule {
    /// User tower, first layer.
    pub user1: Linear,
    /// User tower, second layer.
    pub user2: Linear,
    /// Author tower, first layer.
    pub author1: Linear,
    /// Author tower, second layer.
    pub author2: Linear,
}

impl ConcatModule {
    /// Towers from `n_features` inputs, drawn with `seed` (Burn's default `Linear`
    /// ranges).
    pub fn new(n_features: usize, hidden: usize, dim: usize, seed: u64, device: &Device) -> Self {
        let mut init = SeededInit::new(seed);
        ConcatModule {
            user1: init.linear(n_features, hidden, true, 1.0, device),
            user2: init.linear(hidden, dim, true, 1.0, device),
            author1: init.linear(n_features, hidden, true, 1.0, device),
            author2: init.linear(hidden, dim, true, 1.0, device),
        }
    }

    /// User tower: `[B, F] -> [B, dim]`.
    pub fn user_tower(&self, x: Tensor<2>) -> Tensor<2> {
        self.user2.forward(relu(self.user1.forward(x)))
    }

    /// Author tower: `[B, F] -> [B, dim]`.
    pub fn author_tower(&self, x: Tensor<2>) -> Tensor<2> {
        self.author2.forward(relu(self.author1.forward(x)))
    }

    /// The sampled-softmax loss of a batch.
    pub fn loss(
        &self,
        dataset: &Dataset,
        features: &FeatureMatrix,
        batch: &[&Example],
        negs: &NegativeBatch,
        device: &Device,
    ) -> Tensor<1> {
        let b = batch.len();
        let n = negs.per_example;
        let f = features.dim;
        let mut user_in = vec![0f32; b * f];
        for (i, ex) in batch.iter().enumerate() {
            features.history_mean(ex.history(dataset), &mut user_in[i * f..(i + 1) * f]);
        }
        let user_in = Tensor::<2>::from_data(TensorData::new(user_in, [b, f]), device);
        let u = self.user_tower(user_in); // [B, d]
        let d = u.dims()[1];
        let pos_idx: Vec<usize> = batch.iter().map(|e| e.positive.index()).collect();
        let neg_idx: Vec<usize> = negs.authors.iter().map(|a| a.index()).collect();
        let vp = self.author_tower(features.rows_tensor(&pos_idx, device)); // [B, d]
        let vn = self
            .author_tower(features.rows_tensor(&neg_idx, device))
            .reshape([b, n, d]); // [B, N, d]
        let s_pos = (u.clone() * vp).sum_dim(1); // [B, 1]
        let s_neg = (u.unsqueeze_dim::<3>(1) * vn).sum_dim(2).reshape([b, n]); // [B, N]
        sampled_softmax_loss(Tensor::cat(vec![s_pos, s_neg], 1))
    }
}

/// A trained concatenation model.
#[derive(Clone, Debug)]
pub struct Concat {
    features: FeatureMatrix,
    user: CpuMlp,
    /// Author tower outputs `[n_authors, dim]`.
    authors: Vec<f32>,
    dim: usize,
}

impl Concat {
    /// Copies a (plain) module to the CPU and precomputes every author's tower output.
    pub fn from_module(
        m: &ConcatModule,
        features: &FeatureMatrix,
        device: &Device,
    ) -> Result<Concat> {
        let all: Vec<usize> = (0..features.n_authors).collect();
        let authors = tensor_values(m.author_tower(features.rows_tensor(&all, device)))?;
        let user = CpuMlp {
            l1: CpuLinear::from_linear(&m.user1)?,
            l2: CpuLinear::from_linear(&m.user2)?,
        };
        Ok(Concat {
            features: features.clone(),
            dim: user.l2.d_out,
            user,
            authors,
        })
    }
}

impl FitRecommender for ConcatConfig {
    type Model = Concat;

    /// Trains on the training events of `data.split` with the authors' features (indexed
    /// by author id; an error without them), validating on `split.valid`.
    fn fit(&self, data: &TrainingData, device: &Device, progress: Progress) -> Result<Concat> {
        let features = data.require_features("Concat")?;
        check::all_at_least_one("dim", "hidden and dim", &[self.hidden, self.dim])?;
        let dataset = data.dataset;
        let matrix = FeatureMatrix::build(features, &self.modalities, dataset.n_authors())?;
        let run = FitRun::new(data, self, device);
        let model = ConcatModule::new(matrix.dim, self.hidden, self.dim, self.train.seed, device);
        run.fit(
            model,
            |m: &ConcatModule, batch, negs, dev| m.loss(dataset, &matrix, batch, negs, dev),
            |m: &ConcatModule| Concat::from_module(m, &matrix, device),
            progress,
        )
    }
}

impl Recommender for Concat {
    fn name(&self) -> &str {
        "Concat"
    }

    fn score_batch(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()> {
        use rayon::prelude::*;
        let n = self.features.n_authors;
        check_out_len(queries.len(), out.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        out.par_chunks_mut(n)
            .zip(queries.par_iter())
            .for_each(|(row, q)| {
                let mut x = vec![0f32; self.features.dim];
                self.features.history_mean(q.history, &mut x);
                let u = self.user.forward(&x);
                for (a, s) in row.iter_mut().enumerate() {
                    let v = &self.authors[a * self.dim..(a + 1) * self.dim];
                    *s = u.iter().zip(v).map(|(x, y)| x * y).sum();
                }
            });
        Ok(())
    }
}
