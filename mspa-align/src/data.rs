//! Training examples (history prefix, positive author) and negative batches.
//!
//! An [`Example`] is one training tip: the user, the index range of the user's earlier
//! training tips (the history a model may see), the tipped author and the time. Examples
//! are leak-free: a history never contains the example's own tip, anything after it, or
//! any validation or test event.
//!
//! [`Negatives`] draws negative authors for a batch of examples (uniformly or by
//! popularity), never the example's positive and, when built with the user's training
//! positives, never an author the user tipped in training (falling back to any author
//! but the positive for users who tipped nearly everyone). A seeded [`SplitMix64`]
//! stream makes every draw reproducible.

use std::ops::Range;

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use mspa_core::{AuthorId, Dataset, Split, TipEvent, UserId};

use crate::error::{AlignError, Result};

/// One training example: predict `positive` for `user` at `at_ms` from the history.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Example {
    /// The user.
    pub user: UserId,
    /// Index range in [`Dataset::events`] of the user's training tips before the positive
    /// (oldest first; possibly empty).
    pub history: Range<usize>,
    /// The tipped author.
    pub positive: AuthorId,
    /// When the positive tip happened.
    pub at_ms: i64,
}

impl Example {
    /// The history events, oldest first.
    pub fn history<'d>(&self, dataset: &'d Dataset) -> &'d [TipEvent] {
        &dataset.events()[self.history.clone()]
    }
}

/// Options of [`training_examples_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExampleOptions {
    /// Keep only training events with at least this many earlier training events of the
    /// same user (0 keeps every event).
    pub min_history: usize,
    /// Keep at most this many examples per user: the most recent ones.
    pub max_per_user: Option<usize>,
}

/// One example per training event, with every earlier training event of its user as
/// history; at most `max_per_user` per user (the most recent ones). See
/// [`training_examples_with`].
pub fn training_examples(
    dataset: &Dataset,
    split: &Split,
    max_per_user: Option<usize>,
) -> Vec<Example> {
    training_examples_with(
        dataset,
        split,
        ExampleOptions {
            min_history: 0,
            max_per_user,
        },
    )
}

/// One example per training event of `split` with at least `options.min_history`
/// earlier training events, ordered by user then time.
///
/// The history of an event is the prefix of its user's events up to (not including) the
/// event. Both splits of `mspa-core` make a user's training events a prefix of the user's
/// events; for any other split the history is also cut at the user's first non-training
/// event, so it never holds a validation or test event. Training indices outside the
/// dataset are ignored.
pub fn training_examples_with(
    dataset: &Dataset,
    split: &Split,
    options: ExampleOptions,
) -> Vec<Example> {
    let n = dataset.n_events();
    let mut is_train = vec![false; n];
    for &i in &split.train {
        if i < n {
            is_train[i] = true;
        }
    }
    let events = dataset.events();
    let mut out = Vec::with_capacity(split.train.len());
    for user in dataset.users() {
        let range = dataset.user_range(user);
        // End of the leading run of training events of this user.
        let prefix_end = range.clone().find(|&i| !is_train[i]).unwrap_or(range.end);
        let start_len = out.len();
        for i in range.clone() {
            if !is_train[i] {
                continue;
            }
            let history = range.start..i.min(prefix_end);
            if history.len() < options.min_history {
                continue;
            }
            let e = events[i];
            out.push(Example {
                user,
                history,
                positive: e.author,
                at_ms: e.timestamp_ms,
            });
        }
        if let Some(max) = options.max_per_user {
            let mine = out.len() - start_len;
            if mine > max {
                out.drain(start_len..start_len + (mine - max));
            }
        }
    }
    out
}

/// The distinct training authors of every user (sorted), indexed by [`UserId`].
pub fn user_train_authors(dataset: &Dataset, split: &Split) -> Vec<Vec<AuthorId>> {
    let mut per_user = vec![Vec::new(); dataset.n_users()];
    for &i in &split.train {
        if let Some(e) = dataset.events().get(i) {
            per_user[e.user.index()].push(e.author);
        }
    }
    for v in &mut per_user {
        v.sort_unstable();
        v.dedup();
    }
    per_user
}

/// Training tips per author (the popularity MostPop ranks by), indexed by [`AuthorId`].
pub fn train_author_counts(dataset: &Dataset, split: &Split) -> Vec<u32> {
    let mut counts = vec![0u32; dataset.n_authors()];
    for &i in &split.train {
        if let Some(e) = dataset.events().get(i) {
            counts[e.author.index()] += 1;
        }
    }
    counts
}

/// A small, fast, seeded pseudo-random stream (splitmix64). Deterministic across
/// platforms; its whole state is one `u64`, so it is saved in checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitMix64 {
    /// The current state.
    pub state: u64,
}

impl SplitMix64 {
    /// A stream from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64 {
            state: seed ^ 0x6A09_E667_F3BC_C909,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below 2^-32 for the
    /// sizes used here).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// Where negatives come from: the candidate authors, their sampling weights and, per
/// user, the authors never to draw.
#[derive(Clone, Debug)]
pub struct Negatives {
    n_authors: usize,
    /// Cumulative weights for popularity sampling; `None` for uniform.
    cumulative: Option<Vec<f64>>,
    /// Sorted authors to avoid per user (the user's training positives).
    user_positives: Option<Vec<Vec<AuthorId>>>,
}

/// Draws per requested negative before giving up on avoiding the user's positives (the
/// example's own positive is always avoided).
const REJECTION_ROUNDS: usize = 16;

impl Negatives {
    /// Every one of `n_authors` authors equally likely.
    pub fn uniform(n_authors: usize) -> Self {
        Negatives {
            n_authors,
            cumulative: None,
            user_positives: None,
        }
    }

    /// Author `a` drawn with probability proportional to `(counts[a] + 1)^exponent`
    /// (0 is uniform, 0.75 word2vec's choice, 1 plain popularity; the `+ 1` keeps
    /// authors without tips drawable).
    pub fn popularity(counts: &[u32], exponent: f64) -> Result<Self> {
        if !exponent.is_finite() || exponent < 0.0 {
            return Err(AlignError::config(
                "negative_exponent",
                format!("must be finite and >= 0, got {exponent}"),
            ));
        }
        if exponent == 0.0 {
            return Ok(Self::uniform(counts.len()));
        }
        let mut acc = 0.0;
        let cumulative = counts
            .iter()
            .map(|&c| {
                acc += (f64::from(c) + 1.0).powf(exponent);
                acc
            })
            .collect();
        Ok(Negatives {
            n_authors: counts.len(),
            cumulative: Some(cumulative),
            user_positives: None,
        })
    }

    /// Candidates = the distinct positives of `examples` (for callers that do not know
    /// the number of authors), drawn uniformly or by their example counts.
    pub fn from_examples(examples: &[Example], exponent: f64) -> Result<Self> {
        let n = examples
            .iter()
            .map(|e| e.positive.index() + 1)
            .max()
            .unwrap_or(0);
        let mut counts = vec![0u32; n];
        for e in examples {
            counts[e.positive.index()] += 1;
        }
        if exponent == 0.0 {
            // Uniform over the authors that occur, not over unseen ids below the max.
            let mut acc = 0.0;
            let cumulative = counts
                .iter()
                .map(|&c| {
                    acc += if c > 0 { 1.0 } else { 0.0 };
                    acc
                })
                .collect();
            return Ok(Negatives {
                n_authors: n,
                cumulative: Some(cumulative),
                user_positives: None,
            });
        }
        let mut s = Self::popularity(&counts, exponent)?;
        // Authors that never occur are not candidates here.
        if let Some(c) = &mut s.cumulative {
            let mut acc = 0.0;
            for (a, v) in c.iter_mut().enumerate() {
                if counts[a] > 0 {
                    acc += f64::from(counts[a]).powf(exponent);
                }
                *v = acc;
            }
        }
        Ok(s)
    }

    /// Never draw an author among the user's training positives (`per_user[u]` sorted,
    /// as [`user_train_authors`] returns them).
    pub fn avoiding(mut self, per_user: Vec<Vec<AuthorId>>) -> Self {
        self.user_positives = Some(per_user);
        self
    }

    /// Number of authors sampled from.
    pub fn n_authors(&self) -> usize {
        self.n_authors
    }

    fn draw(&self, rng: &mut SplitMix64) -> usize {
        match &self.cumulative {
            None => rng.below(self.n_authors),
            Some(c) => {
                let total = c.last().copied().unwrap_or(0.0);
                let x = rng.next_f64() * total;
                c.partition_point(|&v| v <= x).min(self.n_authors - 1)
            }
        }
    }

    /// `per_example` negatives for every example of the batch.
    pub fn sample(
        &self,
        batch: &[&Example],
        per_example: usize,
        rng: &mut SplitMix64,
    ) -> Result<NegativeBatch> {
        if self.n_authors < 2 {
            return Err(AlignError::data(format!(
                "negative sampling needs at least 2 candidate authors, got {}",
                self.n_authors
            )));
        }
        let mut authors = Vec::with_capacity(batch.len() * per_example);
        for ex in batch {
            let avoid: &[AuthorId] = self
                .user_positives
                .as_ref()
                .and_then(|p| p.get(ex.user.index()))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let positive = ex.positive.index();
            let strict_limit = REJECTION_ROUNDS * per_example.max(1);
            let hard_limit = 8 * strict_limit + 64;
            let (mut got, mut tries) = (0, 0);
            while got < per_example {
                tries += 1;
                let a = if tries > hard_limit {
                    // Nearly all the weight sits on the positive: any other author.
                    (positive + 1 + rng.below(self.n_authors - 1)) % self.n_authors
                } else {
                    self.draw(rng)
                };
                if a == positive {
                    continue;
                }
                if tries <= strict_limit && avoid.binary_search(&AuthorId(a as u32)).is_ok() {
                    continue;
                }
                authors.push(AuthorId(a as u32));
                got += 1;
            }
        }
        Ok(NegativeBatch {
            per_example,
            authors,
        })
    }
}

/// The negatives of one batch: `per_example` authors for each example, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NegativeBatch {
    /// Negatives per example.
    pub per_example: usize,
    /// `batch x per_example` authors, row-major.
    pub authors: Vec<AuthorId>,
}

impl NegativeBatch {
    /// Number of examples.
    pub fn batch_size(&self) -> usize {
        self.authors
            .len()
            .checked_div(self.per_example)
            .unwrap_or(0)
    }

    /// The negatives of example `i`.
    pub fn row(&self, i: usize) -> &[AuthorId] {
        &self.authors[i * self.per_example..(i + 1) * self.per_example]
    }

    /// The negatives as an index tensor `[batch, per_example]`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<2, Int> {
        let data: Vec<i64> = self.authors.iter().map(|a| i64::from(a.0)).collect();
        Tensor::from_data(
            TensorData::new(data, [self.batch_size(), self.per_example]),
            device,
        )
    }

    /// The negatives flattened to an index tensor `[batch * per_example]`.
    pub fn to_flat_tensor(&self, device: &Device) -> Tensor<1, Int> {
        let data: Vec<i64> = self.authors.iter().map(|a| i64::from(a.0)).collect();
        let n = data.len();
        Tensor::from_data(TensorData::new(data, [n]), device)
    }
}

/// The positives of a batch as an index tensor `[batch]`.
pub fn positives_tensor(batch: &[&Example], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = batch.iter().map(|e| i64::from(e.positive.0)).collect();
    let n = data.len();
    Tensor::from_data(TensorData::new(data, [n]), device)
}

/// The users of a batch as an index tensor `[batch]`.
pub fn users_tensor(batch: &[&Example], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = batch.iter().map(|e| i64::from(e.user.0)).collect();
    let n = data.len();
    Tensor::from_data(TensorData::new(data, [n]), device)
}
