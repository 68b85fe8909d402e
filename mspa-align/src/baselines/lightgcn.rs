//! LightGCN (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
//! Recommendation", SIGIR 2020): user and author id embeddings smoothed over the
//! user–author graph by weightless, linear graph convolutions.
//!
//! **Graph.** The bipartite graph of the *training* tips (`split.train`): one edge per
//! distinct (user, author) pair, whatever the number of tips, with the symmetric
//! normalisation `w(u, a) = 1 / sqrt(d_u d_a)` (`d` counts distinct neighbours).
//!
//! **Propagation.** With `E^0 = [E_users; E_authors]` the id embeddings, layer `k + 1` is
//! `e_u^{k+1} = sum_{a in N(u)} w(u, a) e_a^k` and `e_a^{k+1} = sum_{u in N(a)} w(u, a)
//! e_u^k` (no weight matrices, no non-linearity, no self-loop). The final embedding is the
//! mean of layers `0..=K`.
//!
//! **Score.** `score(u, a) = <e_u, e_a>`. Users without training tips have no edges: they
//! score with a zero vector, so every author scores 0 for them.
//!
//! **Loss.** BPR against the sampled negatives of the shared trainer, plus the paper's L2
//! term on the *layer-0* embeddings of the batch:
//! `reg / 2 * (|e_u^0|^2 + |e_pos^0|^2 + mean_neg |e_neg^0|^2)`, averaged over the batch.
//!
//! **Implementation.** Propagation scales with the number of edges, not users x authors:
//! a layer gathers `x[src]` with `select`, scales it by the edge weight and index-adds it
//! into the destinations with `select_assign(.., IndexingUpdateOp::Add)` (both are
//! differentiable in Burn 0.22). The full graph is propagated inside the loss of every
//! batch (the gradient of a batch reaches every embedding the batch's nodes depend on).
//! After training, the final embeddings are computed once and copied to the CPU, so
//! scoring is pure Rust.

use burn::module::Module;
use burn::nn::Embedding;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

use mspa_core::{Dataset, Split};

use super::{BatchIndex, FactorScorer, FitRun, SeededInit, bpr_loss};
use crate::data::{Example, NegativeBatch};
use crate::error::{AlignError, Result, check};
use crate::fit::{FitRecommender, Progress, TrainingData};
use crate::train::TrainConfig;

/// A weighted, directed graph over `n_nodes` nodes as an edge list. One propagation step
/// computes `out[dst] = sum over edges (src -> dst) of weight * x[src]`, i.e. `out = A x`
/// with `A[dst][src] = weight`; an undirected graph lists each edge in both directions.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeGraph {
    /// Number of nodes (rows of the propagated matrix).
    pub n_nodes: usize,
    /// Source node of every edge.
    pub src: Vec<u32>,
    /// Destination node of every edge.
    pub dst: Vec<u32>,
    /// Weight of every edge.
    pub weight: Vec<f32>,
}

impl EdgeGraph {
    /// A graph without edges.
    pub fn empty(n_nodes: usize) -> Self {
        EdgeGraph {
            n_nodes,
            src: Vec::new(),
            dst: Vec::new(),
            weight: Vec::new(),
        }
    }

    /// Number of (directed) edges.
    pub fn n_edges(&self) -> usize {
        self.src.len()
    }

    /// The graph's index and weight tensors on `device`.
    pub fn to_tensors(&self, device: &Device) -> GraphTensors {
        let e = self.n_edges();
        let idx = |v: &[u32]| {
            let data: Vec<i64> = v.iter().map(|&i| i64::from(i)).collect();
            Tensor::<1, Int>::from_data(TensorData::new(data, [e]), device)
        };
        GraphTensors {
            n_nodes: self.n_nodes,
            n_edges: e,
            src: idx(&self.src),
            dst: idx(&self.dst),
            weight: Tensor::<2>::from_data(TensorData::new(self.weight.clone(), [e, 1]), device),
            device: device.clone(),
        }
    }

    /// One propagation step on the CPU: `x` is `[n_nodes, dim]` row-major (for checks).
    pub fn step_cpu(&self, x: &[f32], dim: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.n_nodes * dim];
        for ((&s, &d), &w) in self.src.iter().zip(&self.dst).zip(&self.weight) {
            let (s, d) = (s as usize, d as usize);
            for j in 0..dim {
                out[d * dim + j] += w * x[s * dim + j];
            }
        }
        out
    }
}

/// An [`EdgeGraph`] on a device, ready to propagate embeddings.
#[derive(Clone, Debug)]
pub struct GraphTensors {
    n_nodes: usize,
    n_edges: usize,
    src: Tensor<1, Int>,
    dst: Tensor<1, Int>,
    /// `[n_edges, 1]`.
    weight: Tensor<2>,
    device: Device,
}

impl GraphTensors {
    /// One step `A x` for `x` of shape `[n_nodes, dim]` (gather, scale, index-add).
    pub fn step(&self, x: Tensor<2>) -> Tensor<2> {
        let dim = x.dims()[1];
        let zeros = Tensor::<2>::zeros([self.n_nodes, dim], &self.device);
        if self.n_edges == 0 {
            return zeros;
        }
        let messages = x.select(0, self.src.clone()) * self.weight.clone(); // [E, dim]
        zeros.select_assign(0, self.dst.clone(), messages, IndexingUpdateOp::Add)
    }

    /// `A^layers x` (`x` itself for 0 layers).
    pub fn power(&self, x: Tensor<2>, layers: usize) -> Tensor<2> {
        (0..layers).fold(x, |h, _| self.step(h))
    }

    /// LightGCN's layer combination: the mean of `x, A x, ..., A^layers x`.
    pub fn mean_of_layers(&self, x: Tensor<2>, layers: usize) -> Tensor<2> {
        let mut h = x.clone();
        let mut sum = x;
        for _ in 0..layers {
            h = self.step(h);
            sum = sum + h.clone();
        }
        sum.div_scalar((layers + 1) as f32)
    }
}

/// The distinct (user, author) pairs of a bipartite interaction graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAuthorGraph {
    /// Number of users.
    pub n_users: usize,
    /// Number of authors.
    pub n_authors: usize,
    /// Distinct `(user, author)` pairs, sorted.
    pub edges: Vec<(u32, u32)>,
}

impl UserAuthorGraph {
    /// A graph from (user, author) pairs; duplicates are merged and pairs outside
    /// `n_users x n_authors` are an error.
    pub fn new(n_users: usize, n_authors: usize, pairs: &[(u32, u32)]) -> Result<Self> {
        if let Some(&(u, a)) = pairs
            .iter()
            .find(|&&(u, a)| u as usize >= n_users || a as usize >= n_authors)
        {
            return Err(AlignError::data(format!(
                "edge ({u}, {a}) lies outside {n_users} users x {n_authors} authors"
            )));
        }
        let mut edges = pairs.to_vec();
        edges.sort_unstable();
        edges.dedup();
        Ok(UserAuthorGraph {
            n_users,
            n_authors,
            edges,
        })
    }

    /// The graph of the training tips of `split` (events outside the dataset are ignored).
    pub fn from_split(dataset: &Dataset, split: &Split) -> Self {
        let mut edges: Vec<(u32, u32)> = split
            .train
            .iter()
            .filter_map(|&i| dataset.events().get(i))
            .map(|e| (e.user.0, e.author.0))
            .collect();
        edges.sort_unstable();
        edges.dedup();
        UserAuthorGraph {
            n_users: dataset.n_users(),
            n_authors: dataset.n_authors(),
            edges,
        }
    }

    /// Number of distinct pairs.
    pub fn n_edges(&self) -> usize {
        self.edges.len()
    }

    /// Distinct neighbours of every user and of every author.
    pub fn degrees(&self) -> (Vec<u32>, Vec<u32>) {
        let mut du = vec![0u32; self.n_users];
        let mut da = vec![0u32; self.n_authors];
        for &(u, a) in &self.edges {
            du[u as usize] += 1;
            da[a as usize] += 1;
        }
        (du, da)
    }

    /// `1 / sqrt(d_u d_a)` of every pair, in the order of [`UserAuthorGraph::edges`].
    pub fn symmetric_weights(&self) -> Vec<f32> {
        let (du, da) = self.degrees();
        self.edges
            .iter()
            .map(|&(u, a)| {
                (1.0 / (f64::from(du[u as usize]) * f64::from(da[a as usize])).sqrt()) as f32
            })
            .collect()
    }

    /// The symmetric-normalised adjacency over `n_users + n_authors` nodes (users first,
    /// author `a` is node `n_users + a`), every pair listed in both directions with
    /// weight `1 / sqrt(d_u d_a)`.
    pub fn normalized(&self) -> EdgeGraph {
        let w = self.symmetric_weights();
        let e = self.n_edges();
        let mut g = EdgeGraph {
            n_nodes: self.n_users + self.n_authors,
            src: Vec::with_capacity(2 * e),
            dst: Vec::with_capacity(2 * e),
            weight: Vec::with_capacity(2 * e),
        };
        for (&(u, a), &w) in self.edges.iter().zip(&w) {
            let an = self.n_users as u32 + a;
            g.src.push(an);
            g.dst.push(u);
            g.weight.push(w);
            g.src.push(u);
            g.dst.push(an);
            g.weight.push(w);
        }
        g
    }
}

/// The trainer defaults of LightGCN (and of FREEDOM, built on it): 40 epochs, batch
/// 1024, learning rate 0.02, no weight decay (the losses carry their own L2 term), 8
/// negatives, patience 10.
pub(crate) fn graph_trainer() -> TrainConfig {
    TrainConfig {
        epochs: 40,
        batch_size: 1024,
        learning_rate: 0.02,
        weight_decay: 0.0,
        negatives: 8,
        patience: 10,
        ..TrainConfig::default()
    }
}

baseline_config! {
    /// Hyper-parameters of [`LightGcn`].
    pub struct LightGcnConfig {
        /// Embedding size. Default 64 (the paper's).
        pub dim: usize = 64,
        /// Propagation layers `K` (0 is plain matrix factorisation). Default 3 (the
        /// paper's).
        pub layers: usize = 3,
        /// Weight of the L2 term on the batch's layer-0 embeddings. Default 1e-4 (the
        /// paper's).
        pub reg: f64 = 1e-4,
        /// Standard deviation of the initial embeddings (must be > 0). Default 0.1.
        pub init_std: f64 = 0.1,
    }
    /// The trainer (defaults: 40 epochs, batch 1024, learning rate 0.02, 8 negatives, no
    /// weight decay since `reg` is the regulariser, patience 10: validation NDCG can dip
    /// for the first epochs while the smoothed embeddings separate). About 0.2 s an epoch
    /// on the default 2,000 x 300 world on 2 CPU cores.
    train = graph_trainer();
}

impl LightGcnConfig {
    /// Checks every field (the trainer's included), naming the first one out of its
    /// domain.
    pub fn validate(&self) -> Result<()> {
        check::at_least_one("dim", self.dim)?;
        check::non_negative("reg", self.reg)?;
        check::embedding_std(self.init_std)?;
        self.train.validate()
    }
}

/// The trainable LightGCN parameters: the layer-0 id embeddings.
#[derive(Module, Debug)]
pub struct LightGcnModule {
    /// User embeddings `E^0_users`, `[n_users, dim]`.
    pub user: Embedding,
    /// Author embeddings `E^0_authors`, `[n_authors, dim]`.
    pub author: Embedding,
}

impl LightGcnModule {
    /// A model for `n_users` x `n_authors` with embeddings of size `config.dim` drawn
    /// from `N(0, init_std^2)` with `config.train.seed`.
    pub fn new(n_users: usize, n_authors: usize, config: &LightGcnConfig, device: &Device) -> Self {
        let mut init = SeededInit::new(config.train.seed);
        let (dim, init_std) = (config.dim, config.init_std);
        LightGcnModule {
            user: init.embedding(n_users, dim, init_std, device),
            author: init.embedding(n_authors, dim, init_std, device),
        }
    }

    /// The final embeddings `(users [n_users, dim], authors [n_authors, dim])`: the mean
    /// of `layers + 1` layers propagated over `graph` (a [`UserAuthorGraph::normalized`]
    /// graph on the tensors' device).
    pub fn forward(&self, graph: &GraphTensors, layers: usize) -> (Tensor<2>, Tensor<2>) {
        propagate_bipartite(
            self.user.weight.val(),
            self.author.weight.val(),
            graph,
            layers,
        )
    }

    /// The loss of a batch: BPR on the final embeddings plus `reg` times the L2 term on
    /// the batch's layer-0 embeddings (see the module docs).
    pub fn loss(
        &self,
        graph: &GraphTensors,
        layers: usize,
        reg: f64,
        batch: &[&Example],
        negs: &NegativeBatch,
        device: &Device,
    ) -> Tensor<1> {
        let (users_all, authors_all) = self.forward(graph, layers);
        let index = BatchIndex::new(batch, negs, device);
        let bpr = bpr_on(users_all, authors_all, &index);
        if reg > 0.0 {
            bpr + layer0_l2(self.user.weight.val(), self.author.weight.val(), &index)
                .mul_scalar(reg)
        } else {
            bpr
        }
    }
}

/// Propagates `[users; authors]` over a bipartite normalised graph and splits the mean of
/// the layers back into `(users, authors)`.
pub(crate) fn propagate_bipartite(
    users: Tensor<2>,
    authors: Tensor<2>,
    graph: &GraphTensors,
    layers: usize,
) -> (Tensor<2>, Tensor<2>) {
    let n_users = users.dims()[0];
    let n_authors = authors.dims()[0];
    let ego = Tensor::cat(vec![users, authors], 0);
    let all = graph.mean_of_layers(ego, layers);
    (
        all.clone().narrow(0, 0, n_users),
        all.narrow(0, n_users, n_authors),
    )
}

/// The BPR loss of the batch's users against its positives and negatives, scored by
/// dot products of rows of `users_all` and `authors_all`.
pub(crate) fn bpr_on(
    users_all: Tensor<2>,
    authors_all: Tensor<2>,
    index: &BatchIndex,
) -> Tensor<1> {
    let (b, n) = (index.b, index.n);
    let eu = users_all.select(0, index.users.clone()); // [B, d]
    let d = eu.dims()[1];
    let ep = authors_all.clone().select(0, index.pos.clone()); // [B, d]
    let en = authors_all.select(0, index.neg.clone()).reshape([b, n, d]); // [B, N, d]
    let s_pos = (eu.clone() * ep).sum_dim(1); // [B, 1]
    let s_neg = (eu.unsqueeze_dim::<3>(1) * en).sum_dim(2).reshape([b, n]); // [B, N]
    bpr_loss(s_pos, s_neg)
}

/// `1/2 (|e_u^0|^2 + |e_pos^0|^2 + mean_neg |e_neg^0|^2)` averaged over the batch.
pub(crate) fn layer0_l2(user0: Tensor<2>, author0: Tensor<2>, index: &BatchIndex) -> Tensor<1> {
    let su = user0.select(0, index.users.clone()).square().sum();
    let sp = author0.clone().select(0, index.pos.clone()).square().sum();
    let sn = author0
        .select(0, index.neg.clone())
        .square()
        .sum()
        .div_scalar(index.n.max(1) as f32);
    (su + sp + sn).mul_scalar(0.5 / index.b.max(1) as f32)
}

factor_recommender! {
    /// A trained LightGCN recommender (final embeddings on the CPU).
    pub struct LightGcn = "LightGCN", with_embeddings;
}

impl FitRecommender for LightGcnConfig {
    type Model = LightGcn;

    /// Trains on the training events of `data.split` (validating on `split.valid` every
    /// epoch and keeping the best model). `progress` gets every epoch's report.
    fn fit(&self, data: &TrainingData, device: &Device, progress: Progress) -> Result<LightGcn> {
        self.validate()?;
        let run = FitRun::new(data, self, device);
        let known = run.known_users();
        let graph = UserAuthorGraph::from_split(data.dataset, data.split).normalized();
        let (n_users, n_authors) = (data.dataset.n_users(), data.dataset.n_authors());
        let model = LightGcnModule::new(n_users, n_authors, self, device);
        let (layers, reg) = (self.layers, self.reg);
        run.fit(
            model,
            |m: &LightGcnModule, batch, negs, dev| {
                m.loss(&graph.to_tensors(dev), layers, reg, batch, negs, dev)
            },
            |m: &LightGcnModule| LightGcn::from_module(m, &graph, layers, known.clone()),
            progress,
        )
    }
}

impl LightGcn {
    /// Propagates a (plain) module's embeddings over `graph` (the normalised training
    /// graph) and copies the final embeddings; `known[u]` says whether user `u` has
    /// training tips (the others score with a zero vector).
    pub fn from_module(
        m: &LightGcnModule,
        graph: &EdgeGraph,
        layers: usize,
        known: Vec<bool>,
    ) -> Result<LightGcn> {
        let device = m.user.weight.val().device();
        let (users, authors) = m.forward(&graph.to_tensors(&device), layers);
        Ok(LightGcn {
            scorer: FactorScorer::from_embeddings(users, authors, known)?,
        })
    }
}
