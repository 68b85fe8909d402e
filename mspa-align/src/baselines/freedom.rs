//! FREEDOM (Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures
//! for Multimodal Recommendation", ACM MM 2023): LightGCN on a *denoised* user–author
//! graph plus author id embeddings smoothed over a *frozen* author–author graph built from
//! the modality features.
//!
//! **Frozen author–author graph.** For every modality `m` (visual, audio, text), over the
//! authors that have it: cosine similarity of the raw feature vectors, keep each author's
//! `knn_k` most similar *other* authors as binary edges `S^m[a][b] = 1`, and normalise
//! symmetrically, `Ŝ^m = D^{-1/2} S^m D^{-1/2}` with `D` the row degrees (as in the paper
//! and MMRec; MMRec's top-k also counts the author itself, ours does not). Authors without
//! the modality have no row or column in `Ŝ^m`. The modalities are combined as
//! `S[a] = sum_m w_m(a) Ŝ^m[a]` with the configured [`FreedomConfig::modality_weights`]
//! renormalised per author over the modalities the author has (an author with only text
//! gets its text row in full). The graph is built once and never trained. The author's
//! graph embedding is `h_a = (S^{L_i} E_authors)[a]` (`L_i = ii_layers`).
//!
//! **Denoised user–author graph.** The training graph of [`super::lightgcn`] (distinct
//! (user, author) pairs of `split.train`). At every epoch, a fraction `1 - rho` of its
//! edges is kept, sampled without replacement with probability proportional to
//! `1 / sqrt(d_u d_a)` (degree-sensitive edge pruning: edges between high-degree nodes are
//! dropped more often), and the kept graph is re-normalised with its own degrees. LightGCN
//! propagates `[E_users; E_authors]` over it for `ui_layers` layers (mean of the layers).
//! Final representations: `e_u` from LightGCN, and `e_a + h_a` for authors.
//!
//! **Loss.** `L = BPR(e_u, e_a + h_a) + lambda * sum_m BPR(e_u, W_m f^m_a) + reg * L2`,
//! where `f^m_a` are the author's (standardised, see [`super::FeatureMatrix`]) features
//! of modality `m` plus a presence flag, `W_m` a learned linear projection into the
//! embedding space (the paper's modality-aware BPR terms), and the L2 term the same as
//! LightGCN's (layer-0 embeddings of the batch).
//!
//! **Score.** `score(u, a) = <e_u, e_a + h_a>` with the *unpruned*, normalised training
//! graph (as the paper does at test time). Users without training tips score 0 for
//! every author.
//!
//! **Per-epoch pruning and the shared trainer.** The trainer's loss closure sees no epoch
//! number, so the closure counts its own calls: every `ceil(examples / batch_size)` calls
//! (one epoch) it re-samples the pruned graph from a stream seeded by
//! `train.seed` and the epoch count. A run resumed from a checkpoint restarts that count
//! at 0, so its pruned graphs differ from an uninterrupted run's (the result is still
//! deterministic for a given checkpoint).
//!
//! Propagation runs on edge lists (gather, scale, index-add; see
//! [`super::lightgcn::GraphTensors`]), so it scales with the number of edges.

use std::cell::{Cell, RefCell};

use burn::module::Module;
use burn::nn::{Embedding, Linear};
use burn::tensor::{Device, Tensor, TensorData};

use mspa_modal::features::{AuthorFeatures, Modality};

use super::lightgcn::{
    EdgeGraph, GraphTensors, UserAuthorGraph, bpr_on, graph_trainer, layer0_l2, propagate_bipartite,
};
use super::{BatchIndex, FactorScorer, FeatureMatrix, FitRun, SeededInit, check_feature_rows};
use crate::data::{Example, NegativeBatch, SplitMix64};
use crate::error::{AlignError, Result, check};
use crate::fit::{FitRecommender, Progress, TrainingData};

baseline_config! {
    /// Hyper-parameters of [`Freedom`].
    pub struct FreedomConfig {
        /// Embedding size. Default 64 (the paper's).
        pub dim: usize = 64,
        /// LightGCN layers on the user–author graph. Default 2 (MMRec's).
        pub ui_layers: usize = 2,
        /// Propagation layers `L_i` on the frozen author–author graph. Default 1 (MMRec's).
        pub ii_layers: usize = 1,
        /// Neighbours kept per author in each modality's kNN graph. Default 10 (the
        /// paper's).
        pub knn_k: usize = 10,
        /// Weights of the visual, audio and text kNN graphs (>= 0; renormalised per
        /// author over the modalities it has; 0 leaves a modality out, also from the
        /// loss). Default `[1, 1, 1]` (MMRec weighs image 0.1 against text 0.9 on Amazon
        /// data; here no modality is known to dominate, and equal weights did as well as
        /// any).
        pub modality_weights: [f64; 3] = [1.0, 1.0, 1.0],
        /// Share `rho` of user–author edges pruned each epoch (0 keeps every edge; below
        /// 1). Default 0.3 (MMRec searches 0.8 and 0.9 on sparse Amazon graphs; on the
        /// denser default world 0.8 was slightly worse).
        pub edge_dropout: f64 = 0.3,
        /// Weight `lambda` of the modality BPR terms. Default 0.05.
        pub lambda: f64 = 0.05,
        /// Weight of the L2 term on the batch's layer-0 embeddings. Default 1e-4.
        pub reg: f64 = 1e-4,
        /// Standard deviation of the initial id embeddings (must be > 0). Default 0.1.
        pub init_std: f64 = 0.1,
    }
    /// The trainer (defaults: 40 epochs, batch 1024, learning rate 0.02, 8 negatives, no
    /// weight decay since `reg` is the regulariser, patience 10). About 0.35 s an epoch on
    /// the default 2,000 x 300 world on 2 CPU cores.
    train = graph_trainer();
}

impl FreedomConfig {
    /// Checks every field (the trainer's included), naming the first one out of its
    /// domain.
    pub fn validate(&self) -> Result<()> {
        check::at_least_one("dim", self.dim)?;
        check::at_least_one("knn_k", self.knn_k)?;
        for &w in &self.modality_weights {
            check::non_negative("modality_weights", w)?;
        }
        if self.modality_weights.iter().all(|&w| w == 0.0) {
            return Err(AlignError::config(
                "modality_weights",
                "at least one modality needs a weight > 0",
            ));
        }
        check::below_one("edge_dropout", self.edge_dropout)?;
        check::non_negative("lambda", self.lambda)?;
        check::non_negative("reg", self.reg)?;
        check::embedding_std(self.init_std)?;
        self.train.validate()
    }
}

/// The kNN graph of one modality over `features.len()` authors: each author that has the
/// modality gets its `k` most cosine-similar other authors that have it (fewer if fewer
/// exist; ties broken by the lower author id) as in-edges `b -> a`, weighted
/// `1 / sqrt(d_a d_b)` with `d` the number of neighbours of a row. `None` if fewer than
/// two authors have the modality (or its vectors are empty).
pub fn modality_knn_graph(
    features: &[AuthorFeatures],
    modality: Modality,
    k: usize,
) -> Option<EdgeGraph> {
    use rayon::prelude::*;
    let n = features.len();
    let present: Vec<usize> = (0..n)
        .filter(|&a| features[a].has(modality) && !features[a].get(modality).is_empty())
        .collect();
    if present.len() < 2 || k == 0 {
        return None;
    }
    let norms: Vec<f64> = present
        .iter()
        .map(|&a| {
            features[a]
                .get(modality)
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let kk = k.min(present.len() - 1);
    // Row i of `present`: its neighbours (positions in `present`).
    let rows: Vec<Vec<usize>> = (0..present.len())
        .into_par_iter()
        .map(|i| {
            let fi = features[present[i]].get(modality);
            let mut sims: Vec<(f64, usize)> = (0..present.len())
                .filter(|&j| j != i)
                .map(|j| {
                    let fj = features[present[j]].get(modality);
                    let dot: f64 = fi
                        .iter()
                        .zip(fj)
                        .map(|(&x, &y)| f64::from(x) * f64::from(y))
                        .sum();
                    let denom = norms[i] * norms[j];
                    let s = if denom > 1e-12 { dot / denom } else { 0.0 };
                    (if s.is_finite() { s } else { 0.0 }, j)
                })
                .collect();
            let order =
                |x: &(f64, usize), y: &(f64, usize)| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1));
            if sims.len() > kk {
                sims.select_nth_unstable_by(kk - 1, order);
                sims.truncate(kk);
            }
            sims.sort_unstable_by(order);
            sims.into_iter().map(|(_, j)| j).collect()
        })
        .collect();
    let mut g = EdgeGraph::empty(n);
    for (i, nb) in rows.iter().enumerate() {
        let di = nb.len() as f64;
        for &j in nb {
            let dj = rows[j].len() as f64;
            g.src.push(present[j] as u32);
            g.dst.push(present[i] as u32);
            g.weight.push((1.0 / (di * dj).sqrt()) as f32);
        }
    }
    Some(g)
}

/// The frozen author–author graph: the weighted sum of the modalities' kNN graphs
/// ([`modality_knn_graph`]), each author's row weighted by `weights` renormalised over the
/// modalities (with weight > 0 and a graph) that the author has. Authors without any such
/// modality have no in-edges (their `h_a` is 0).
pub fn author_knn_graph(features: &[AuthorFeatures], weights: [f64; 3], k: usize) -> EdgeGraph {
    let n = features.len();
    let graphs: Vec<(Modality, f64, EdgeGraph)> = Modality::ALL
        .iter()
        .filter(|m| weights[m.index()] > 0.0)
        .filter_map(|&m| modality_knn_graph(features, m, k).map(|g| (m, weights[m.index()], g)))
        .collect();
    // Per author: the total weight of the modalities it takes part in.
    let mut total = vec![0f64; n];
    for (_, w, g) in &graphs {
        let mut has_row = vec![false; n];
        for &d in &g.dst {
            has_row[d as usize] = true;
        }
        for (t, h) in total.iter_mut().zip(has_row) {
            if h {
                *t += w;
            }
        }
    }
    let mut merged: std::collections::BTreeMap<(u32, u32), f64> = Default::default();
    for (_, w, g) in &graphs {
        for ((&s, &d), &x) in g.src.iter().zip(&g.dst).zip(&g.weight) {
            let share = w / total[d as usize];
            *merged.entry((d, s)).or_insert(0.0) += share * f64::from(x);
        }
    }
    let mut out = EdgeGraph::empty(n);
    for ((d, s), x) in merged {
        out.src.push(s);
        out.dst.push(d);
        out.weight.push(x as f32);
    }
    out
}

/// Degree-sensitive edge pruning: keeps `floor((1 - rho) * n_edges)` (at least one, if
/// any) distinct pairs of `graph`, sampled without replacement with probability
/// proportional to `1 / sqrt(d_u d_a)` (degrees of the full graph), by
/// Efraimidis–Spirakis keys `ln(U) / w`. The result is a [`UserAuthorGraph`], so its
/// [`UserAuthorGraph::normalized`] uses the kept graph's own degrees. `rho <= 0` keeps
/// every edge.
pub fn prune_edges(graph: &UserAuthorGraph, rho: f64, rng: &mut SplitMix64) -> UserAuthorGraph {
    let e = graph.n_edges();
    if rho <= 0.0 || e == 0 {
        return graph.clone();
    }
    let keep = (((1.0 - rho.min(1.0)) * e as f64).floor() as usize).clamp(1, e);
    let weights = graph.symmetric_weights();
    let mut keys: Vec<(f64, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let u = rng.next_f64().max(f64::MIN_POSITIVE);
            (u.ln() / f64::from(w).max(1e-12), i)
        })
        .collect();
    let order = |x: &(f64, usize), y: &(f64, usize)| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1));
    if keep < e {
        keys.select_nth_unstable_by(keep - 1, order);
        keys.truncate(keep);
    }
    let mut kept: Vec<usize> = keys.into_iter().map(|(_, i)| i).collect();
    kept.sort_unstable();
    UserAuthorGraph {
        n_users: graph.n_users,
        n_authors: graph.n_authors,
        edges: kept.into_iter().map(|i| graph.edges[i]).collect(),
    }
}

/// One modality's standardised features (plus presence flag) as a dense matrix.
#[derive(Clone, Debug)]
struct ModalityInput {
    matrix: FeatureMatrix,
}

impl ModalityInput {
    fn tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(
                self.matrix.data.clone(),
                [self.matrix.n_authors, self.matrix.dim],
            ),
            device,
        )
    }
}

/// The trainable FREEDOM parameters.
#[derive(Module, Debug)]
pub struct FreedomModule {
    /// User id embeddings `[n_users, dim]`.
    pub user: Embedding,
    /// Author id embeddings `[n_authors, dim]` (propagated on both graphs).
    pub author: Embedding,
    /// One projection `W_m` per modality in the loss (in [`Modality::ALL`] order, skipping
    /// the unused ones): `[F_m + 1] -> [dim]`.
    pub proj: Vec<Linear>,
}

impl FreedomModule {
    /// A model of `config`'s size with `n_features[i]` input columns for the i-th
    /// projection, drawn with `config.train.seed` (embeddings from `N(0, init_std^2)`,
    /// projections from Burn's default uniform range).
    pub fn new(
        n_users: usize,
        n_authors: usize,
        n_features: &[usize],
        config: &FreedomConfig,
        device: &Device,
    ) -> Self {
        let mut init = SeededInit::new(config.train.seed);
        let (dim, init_std) = (config.dim, config.init_std);
        FreedomModule {
            user: init.embedding(n_users, dim, init_std, device),
            author: init.embedding(n_authors, dim, init_std, device),
            proj: n_features
                .iter()
                .map(|&f| init.linear(f, dim, true, 1.0, device))
                .collect(),
        }
    }

    /// Final representations `(users, authors)`: LightGCN over `ui` (`ui_layers`), plus
    /// `h = S^{ii_layers} E_authors` over the frozen graph `ii` for the authors.
    pub fn forward(
        &self,
        ui: &GraphTensors,
        ii: &GraphTensors,
        ui_layers: usize,
        ii_layers: usize,
    ) -> (Tensor<2>, Tensor<2>) {
        let (users, authors) = propagate_bipartite(
            self.user.weight.val(),
            self.author.weight.val(),
            ui,
            ui_layers,
        );
        let h = ii.power(self.author.weight.val(), ii_layers);
        (users, authors + h)
    }

    /// The loss of a batch (see the module docs); `modalities` holds the feature
    /// matrices of the projections, in order.
    #[allow(clippy::too_many_arguments)]
    fn loss(
        &self,
        ui: &GraphTensors,
        ii: &GraphTensors,
        modalities: &[ModalityInput],
        config: &FreedomConfig,
        batch: &[&Example],
        negs: &NegativeBatch,
        device: &Device,
    ) -> Tensor<1> {
        let (users_all, authors_all) = self.forward(ui, ii, config.ui_layers, config.ii_layers);
        let index = BatchIndex::new(batch, negs, device);
        let mut loss = bpr_on(users_all.clone(), authors_all, &index);
        if config.lambda > 0.0 {
            for (lin, input) in self.proj.iter().zip(modalities) {
                let projected = lin.forward(input.tensor(device)); // [A, dim]
                let term = bpr_on(users_all.clone(), projected, &index);
                loss = loss + term.mul_scalar(config.lambda);
            }
        }
        if config.reg > 0.0 {
            loss = loss
                + layer0_l2(self.user.weight.val(), self.author.weight.val(), &index)
                    .mul_scalar(config.reg);
        }
        loss
    }
}

factor_recommender! {
    /// A trained FREEDOM recommender (final embeddings on the CPU).
    pub struct Freedom = "FREEDOM", with_embeddings;
}

impl FitRecommender for FreedomConfig {
    type Model = Freedom;

    /// Trains on the training events of `data.split` with the authors' features (indexed
    /// by author id; an error without them), validating on `split.valid` every epoch and
    /// keeping the best model. `progress` gets every epoch's report.
    fn fit(&self, data: &TrainingData, device: &Device, progress: Progress) -> Result<Freedom> {
        let features = data.require_features("FREEDOM")?;
        self.validate()?;
        let TrainingData { dataset, split, .. } = *data;
        let n_authors = dataset.n_authors();
        check_feature_rows(features, n_authors)?;
        // The modalities in use: a weight > 0 and at least one author that has them.
        let used: Vec<Modality> = Modality::ALL
            .iter()
            .copied()
            .filter(|&m| {
                self.modality_weights[m.index()] > 0.0
                    && features.iter().any(|f| f.has(m) && !f.get(m).is_empty())
            })
            .collect();
        if used.is_empty() {
            return Err(AlignError::config(
                "modality_weights",
                "no modality with a weight > 0 is present for any author",
            ));
        }
        let modalities: Vec<ModalityInput> = used
            .iter()
            .map(|&m| {
                Ok(ModalityInput {
                    matrix: FeatureMatrix::build(features, &[m], n_authors)?,
                })
            })
            .collect::<Result<_>>()?;
        let ii = author_knn_graph(features, self.modality_weights, self.knn_k);
        let ui_full = UserAuthorGraph::from_split(dataset, split);
        let ui_norm = ui_full.normalized();
        let run = FitRun::new(data, self, device);
        let known = run.known_users();
        let n_features: Vec<usize> = modalities.iter().map(|m| m.matrix.dim).collect();
        let model = FreedomModule::new(dataset.n_users(), n_authors, &n_features, self, device);
        // Per-epoch pruning driven by a call counter (see the module docs).
        let n_batches = run.examples.len().div_ceil(self.train.batch_size).max(1);
        let calls = Cell::new(0usize);
        let current: RefCell<Option<(usize, EdgeGraph)>> = RefCell::new(None);
        let seed = self.train.seed;
        let rho = self.edge_dropout;
        let pruned_for = |epoch: usize| -> EdgeGraph {
            let mut rng =
                SplitMix64::new(seed ^ 0xF2EE_D0F0 ^ (epoch as u64).wrapping_mul(0x9E37_79B9));
            prune_edges(&ui_full, rho, &mut rng).normalized()
        };
        run.fit(
            model,
            |m: &FreedomModule, batch, negs, dev| {
                let c = calls.get();
                calls.set(c + 1);
                let epoch = c / n_batches;
                let mut cur = current.borrow_mut();
                if cur.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    *cur = Some((epoch, pruned_for(epoch)));
                }
                let ui = match cur.as_ref() {
                    Some((_, g)) => g.to_tensors(dev),
                    None => ui_norm.to_tensors(dev),
                };
                m.loss(
                    &ui,
                    &ii.to_tensors(dev),
                    &modalities,
                    self,
                    batch,
                    negs,
                    dev,
                )
            },
            |m: &FreedomModule| Freedom::from_module(m, &ui_norm, &ii, self, known.clone()),
            progress,
        )
    }
}

impl Freedom {
    /// Computes a (plain) module's final representations with the unpruned, normalised
    /// training graph `ui` and the frozen author graph `ii`, and copies them; `known[u]`
    /// says whether user `u` has training tips (the others score with a zero vector).
    pub fn from_module(
        m: &FreedomModule,
        ui: &EdgeGraph,
        ii: &EdgeGraph,
        config: &FreedomConfig,
        known: Vec<bool>,
    ) -> Result<Freedom> {
        let device = m.user.weight.val().device();
        let (users, authors) = m.forward(
            &ui.to_tensors(&device),
            &ii.to_tensors(&device),
            config.ui_layers,
            config.ii_layers,
        );
        Ok(Freedom {
            scorer: FactorScorer::from_embeddings(users, authors, known)?,
        })
    }
}
