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

pub use mspa_core::rng::SplitMix64;

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

/// A tensor's values, row-major, copied off its device.
pub(crate) fn tensor_values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| AlignError::data(format!("cannot read tensor values: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mspa_core::{Author, DatasetBuilder, ExternalId};

    /// Five authors. User 0 tips authors 0, 1, 0, 2, 3, 4 at times 1..=6; user 1 tips
    /// author 4 twice; user 2 tips author 1 once.
    fn dataset() -> Dataset {
        let mut b = DatasetBuilder::default();
        let authors: Vec<AuthorId> = (0..5)
            .map(|i| {
                b.add_author(Author::bare(ExternalId::Int(100 + i)))
                    .unwrap()
            })
            .collect();
        let users: Vec<UserId> = (0..3).map(|i| b.user(ExternalId::Int(i))).collect();
        for (t, a) in [0, 1, 0, 2, 3, 4].into_iter().enumerate() {
            b.push_event(users[0], authors[a], 1.0, t as i64 + 1);
        }
        b.push_event(users[1], authors[4], 1.0, 1);
        b.push_event(users[1], authors[4], 2.0, 2);
        b.push_event(users[2], authors[1], 1.0, 1);
        b.build(None)
    }

    #[test]
    fn examples_have_leak_free_prefix_histories() {
        let ds = dataset();
        let split = Split::leave_last_out(&ds);
        let examples = training_examples(&ds, &split, None);
        assert_eq!(examples.len(), split.train.len());
        let evaluated: Vec<usize> = split
            .valid
            .iter()
            .chain(&split.test)
            .map(|t| t.event)
            .collect();
        for ex in &examples {
            let range = ds.user_range(ex.user);
            // The history is the user's events strictly before the example's own tip.
            assert_eq!(ex.history.start, range.start);
            let own = ds.events()[ex.history.end];
            assert_eq!((own.author, own.timestamp_ms), (ex.positive, ex.at_ms));
            assert!(ex.history(&ds).iter().all(|e| e.timestamp_ms < ex.at_ms));
            assert!(ex.history.clone().all(|i| !evaluated.contains(&i)));
        }
        // User 0's first training tip has an empty history, its fourth three tips.
        let user0: Vec<&Example> = examples.iter().filter(|e| e.user == UserId(0)).collect();
        assert_eq!(
            user0.iter().map(|e| e.history.len()).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn a_history_stops_at_the_first_held_out_event() {
        let ds = dataset();
        // User 0's third event (index 2) is held out; the later training events must not
        // see it.
        let split = Split {
            train: vec![0, 1, 3, 4],
            ..Split::default()
        };
        let examples = training_examples(&ds, &split, None);
        let histories: Vec<_> = examples.iter().map(|e| e.history.clone()).collect();
        assert_eq!(histories, vec![0..0, 0..1, 0..2, 0..2]);
    }

    #[test]
    fn max_per_user_keeps_the_latest_and_min_history_drops_short_ones() {
        let ds = dataset();
        let split = Split::leave_last_out(&ds);
        let latest = training_examples(&ds, &split, Some(2));
        let user0: Vec<i64> = latest
            .iter()
            .filter(|e| e.user == UserId(0))
            .map(|e| e.at_ms)
            .collect();
        assert_eq!(user0, vec![3, 4], "the two most recent of times 1..=4");
        assert_eq!(latest.iter().filter(|e| e.user == UserId(1)).count(), 2);

        let long = training_examples_with(
            &ds,
            &split,
            ExampleOptions {
                min_history: 2,
                max_per_user: None,
            },
        );
        assert!(long.iter().all(|e| e.history.len() >= 2));
        assert_eq!(long.len(), 2, "user 0's third and fourth tips");
    }

    #[test]
    fn counts_and_train_authors_read_only_training_events() {
        let ds = dataset();
        let split = Split::leave_last_out(&ds);
        assert_eq!(train_author_counts(&ds, &split), vec![2, 2, 1, 0, 2]);
        let per_user = user_train_authors(&ds, &split);
        assert_eq!(per_user[0], vec![AuthorId(0), AuthorId(1), AuthorId(2)]);
        assert_eq!(per_user[1], vec![AuthorId(4)]);
    }

    fn example(user: u32, positive: u32) -> Example {
        Example {
            user: UserId(user),
            history: 0..0,
            positive: AuthorId(positive),
            at_ms: 0,
        }
    }

    #[test]
    fn negatives_avoid_the_positive_and_the_users_training_authors() {
        let ds = dataset();
        let split = Split::leave_last_out(&ds);
        let avoid = user_train_authors(&ds, &split);
        let examples = [example(0, 0), example(1, 4), example(2, 1)];
        let batch: Vec<&Example> = examples.iter().collect();
        let mut rng = SplitMix64::new(5);
        let counts = train_author_counts(&ds, &split);
        for source in [
            Negatives::uniform(5),
            Negatives::popularity(&counts, 1.0).unwrap(),
        ] {
            let negs = source
                .avoiding(avoid.clone())
                .sample(&batch, 40, &mut rng)
                .unwrap();
            assert_eq!(negs.batch_size(), 3);
            for (i, ex) in examples.iter().enumerate() {
                let row = negs.row(i);
                assert_eq!(row.len(), 40);
                assert!(!row.contains(&ex.positive));
                assert!(row.iter().all(|a| !avoid[ex.user.index()].contains(a)));
            }
        }
        assert!(Negatives::popularity(&counts, -1.0).is_err());
        assert!(Negatives::uniform(1).sample(&batch, 1, &mut rng).is_err());
    }

    #[test]
    fn negatives_fall_back_to_any_author_but_the_positive() {
        // The user tipped every author: avoiding them all is impossible.
        let avoid = vec![vec![AuthorId(0), AuthorId(1), AuthorId(2)]];
        let ex = example(0, 1);
        let negs = Negatives::uniform(3)
            .avoiding(avoid)
            .sample(&[&ex], 20, &mut SplitMix64::new(1))
            .unwrap();
        assert_eq!(negs.authors.len(), 20);
        assert!(!negs.authors.contains(&AuthorId(1)));
    }

    #[test]
    fn negatives_from_examples_draw_only_authors_that_occur() {
        let examples = [example(0, 1), example(1, 3), example(2, 3)];
        let batch: Vec<&Example> = examples.iter().collect();
        for exponent in [0.0, 0.75] {
            let source = Negatives::from_examples(&examples, exponent).unwrap();
            assert_eq!(source.n_authors(), 4);
            let negs = source.sample(&batch, 10, &mut SplitMix64::new(2)).unwrap();
            assert!(negs.row(0).iter().all(|&a| a == AuthorId(3)));
            assert!(negs.row(1).iter().all(|&a| a == AuthorId(1)));
        }
    }

    #[test]
    fn negative_batch_tensors_are_row_major() {
        let negs = NegativeBatch {
            per_example: 2,
            authors: vec![AuthorId(3), AuthorId(1), AuthorId(0), AuthorId(2)],
        };
        let device = Device::flex();
        let t = negs.to_tensor(&device);
        assert_eq!(t.dims(), [2, 2]);
        assert_eq!(
            t.into_data().convert::<i64>().try_to_vec::<i64>().unwrap(),
            vec![3, 1, 0, 2]
        );
        assert_eq!(negs.to_flat_tensor(&device).dims(), [4]);
        assert_eq!(negs.row(1), &[AuthorId(0), AuthorId(2)]);
    }

    #[test]
    fn splitmix64_is_deterministic_and_pinned() {
        let mut a = SplitMix64::new(7);
        // The stream is part of the checkpoint format: pin its first values.
        assert_eq!(
            [a.next_u64(), a.next_u64(), a.next_u64()],
            [
                0xde18_ba9e_4bc6_ec06,
                0x6b61_cc8a_e9ef_b8b4,
                0xa695_629f_4e85_2e9d
            ]
        );
        let (mut x, mut y) = (SplitMix64::new(3), SplitMix64::new(3));
        let xs: Vec<u64> = (0..50).map(|_| x.next_u64()).collect();
        let ys: Vec<u64> = (0..50).map(|_| y.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut z = SplitMix64::new(4);
        assert_ne!(xs[0], z.next_u64());

        let mut r = SplitMix64::new(9);
        for _ in 0..1000 {
            let f = r.next_f64();
            let g = r.next_f32();
            assert!((0.0..1.0).contains(&f) && (0.0..1.0).contains(&g));
            assert!(r.below(7) < 7);
        }
        let mut v: Vec<usize> = (0..20).collect();
        SplitMix64::new(1).shuffle(&mut v);
        let mut w: Vec<usize> = (0..20).collect();
        SplitMix64::new(1).shuffle(&mut w);
        assert_eq!(v, w);
        assert_ne!(v, (0..20).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..20).collect::<Vec<_>>());
    }
}
