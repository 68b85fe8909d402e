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
use burn::tensor::{Device, Int, Tensor, TensorData};

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
        // The author tower runs once per distinct author of the batch (at most the
        // number of authors, however many negatives repeat them), then its outputs are
        // picked for the positives and the negatives.
        let wanted = batch
            .iter()
            .map(|e| e.positive.index())
            .chain(negs.authors.iter().map(|a| a.index()));
        let (distinct, slots) = distinct_rows(wanted);
        let towers = self.author_tower(features.rows_tensor(&distinct, device)); // [U, d]
        let slots = Tensor::<1, Int>::from_data(TensorData::new(slots, [b * (1 + n)]), device);
        let picked = towers.select(0, slots); // [B * (1 + N), d]
        let vp = picked.clone().slice([0..b, 0..d]); // [B, d]
        let vn = picked.slice([b..b * (1 + n), 0..d]).reshape([b, n, d]); // [B, N, d]
        let s_pos = (u.clone() * vp).sum_dim(1); // [B, 1]
        let s_neg = (u.unsqueeze_dim::<3>(1) * vn).sum_dim(2).reshape([b, n]); // [B, N]
        sampled_softmax_loss(Tensor::cat(vec![s_pos, s_neg], 1))
    }
}

/// The distinct authors of `wanted` (in first-seen order) and, for each entry of
/// `wanted`, its row among them.
fn distinct_rows(wanted: impl Iterator<Item = usize>) -> (Vec<usize>, Vec<i64>) {
    let mut row_of = std::collections::HashMap::new();
    let mut distinct = Vec::new();
    let slots = wanted
        .map(|a| {
            *row_of.entry(a).or_insert_with(|| {
                distinct.push(a);
                distinct.len() - 1
            }) as i64
        })
        .collect();
    (distinct, slots)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_rows_keeps_first_seen_order_and_maps_every_entry() {
        let (distinct, slots) = distinct_rows([4, 2, 4, 7, 2, 2].into_iter());
        assert_eq!(distinct, vec![4, 2, 7]);
        assert_eq!(slots, vec![0, 1, 0, 2, 1, 1]);
    }

    #[test]
    fn the_tower_of_distinct_rows_picked_equals_the_tower_of_every_row() {
        let device = Device::flex();
        let (n_authors, f) = (6, 5);
        let data: Vec<f32> = (0..n_authors * f)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let matrix = FeatureMatrix {
            n_authors,
            dim: f,
            data,
        };
        let module = ConcatModule::new(f, 8, 4, 3, &device);
        let wanted = [5usize, 1, 1, 0, 5, 3, 1];
        let (distinct, slots) = distinct_rows(wanted.into_iter());
        let slots = Tensor::<1, Int>::from_data(TensorData::new(slots, [wanted.len()]), &device);
        let picked = module
            .author_tower(matrix.rows_tensor(&distinct, &device))
            .select(0, slots);
        let direct = module.author_tower(matrix.rows_tensor(&wanted, &device));
        let picked = tensor_values(picked).unwrap();
        let direct = tensor_values(direct).unwrap();
        assert_eq!(picked.len(), wanted.len() * 4);
        for (p, d) in picked.iter().zip(&direct) {
            assert!((p - d).abs() < 1e-6, "{p} vs {d}");
        }
    }
}
