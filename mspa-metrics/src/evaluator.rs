//! Full-ranking evaluation: every user is ranked against every author, the top K are
//! selected by partial selection, and the ranking metrics are averaged over users, overall
//! and split by *new* targets (not among the user's training items) and *repeat* targets
//! (among them).
//!
//! Users are evaluated in parallel with rayon. Scores come either from a closure that
//! fills one user's score row (the row buffer is reused per worker thread, so memory
//! stays at `threads x num_items`, never `users x num_items`) or from precomputed rows.
//! Means are summed the way NumPy does (see [`crate::pairwise_sum`]) in user order, so
//! the result does not depend on the number of threads.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};
use crate::ranking::{AtCutoff, ListMetrics, metrics_from_relevance, normalize_ks};
use crate::sum::numpy_mean;
use crate::topk::{Score, TopKHeap, rank_of, ranks_before, select_into};

/// Which items are removed from a user's candidates before ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// "New authors": the user's training items are excluded from the ranking (a target
    /// that is also a training item can then never be hit).
    NewAuthors,
    /// "Repeats allowed": nothing is excluded; every author is a candidate.
    RepeatsAllowed,
}

/// One user to evaluate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalUser {
    /// The user's id, used in per-user results and error messages.
    pub user: u64,
    /// Item indices the user interacted with in the test period (duplicates ignored).
    pub targets: Vec<usize>,
    /// Item indices from the user's training history: excluded under
    /// [`Protocol::NewAuthors`], and used to split targets into new and repeat ones.
    pub train: Vec<usize>,
}

/// Means of every metric at one cut-off over the evaluated users.
pub type MeanAtK = AtCutoff<f64>;

/// Means over the users that have at least one target of a kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeanMetrics {
    /// Number of users averaged.
    pub users: usize,
    /// One entry per cut-off, in increasing `K`.
    pub at_k: Vec<MeanAtK>,
    /// Mean reciprocal rank of the first hit in the full ranking.
    pub mrr: f64,
}

impl MeanMetrics {
    /// The means at cut-off `k`, if it was requested.
    pub fn at(&self, k: usize) -> Option<&MeanAtK> {
        self.at_k.iter().find(|m| m.k == k)
    }

    /// Mean Recall@`k`, if `k` was requested.
    pub fn recall(&self, k: usize) -> Option<f64> {
        self.at(k).map(|m| m.recall)
    }

    /// Mean NDCG@`k`, if `k` was requested.
    pub fn ndcg(&self, k: usize) -> Option<f64> {
        self.at(k).map(|m| m.ndcg)
    }
}

/// One user's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserResult {
    /// The user's id.
    pub user: u64,
    /// The best `max(K)` items, best first.
    pub top: Vec<usize>,
    /// Metrics against all targets (first-hit rank in the full ranking).
    pub all: ListMetrics,
    /// Metrics against the new targets only, if the user has any.
    pub new: Option<ListMetrics>,
    /// Metrics against the repeat targets only, if the user has any.
    pub repeat: Option<ListMetrics>,
}

/// The result of a full-ranking evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankingReport {
    /// The protocol used.
    pub protocol: Protocol,
    /// Number of items ranked per user (before exclusion).
    pub num_items: usize,
    /// The cut-offs, increasing.
    pub ks: Vec<usize>,
    /// Users skipped because they have no targets.
    pub users_without_targets: usize,
    /// Means against all targets.
    pub all: MeanMetrics,
    /// Means against new targets, over users that have some.
    pub new: MeanMetrics,
    /// Means against repeat targets, over users that have some.
    pub repeat: MeanMetrics,
    /// Per-user results in input order (users without targets left out); empty when
    /// per-user results were switched off.
    pub per_user: Vec<UserResult>,
}

/// Evaluates recommendations by full ranking over all items.
///
/// ```
/// use mspa_metrics::{EvalUser, FullRankingEvaluator, Protocol};
///
/// let users = vec![
///     EvalUser { user: 7, targets: vec![2], train: vec![0] },
///     EvalUser { user: 8, targets: vec![0, 3], train: vec![0] },
/// ];
/// let eval = FullRankingEvaluator::new(4, &[1, 2], Protocol::RepeatsAllowed).unwrap();
/// // A closure fills each user's score row; ties go to the lower index.
/// let report = eval
///     .evaluate(&users, |u, row: &mut [f32]| {
///         for (i, s) in row.iter_mut().enumerate() {
///             *s = if u.user == 7 { i as f32 } else { 1.0 };
///         }
///     })
///     .unwrap();
/// assert_eq!(report.per_user[0].top, vec![3, 2]);
/// assert_eq!(report.all.recall(2), Some(0.75)); // (1 + 1/2) / 2
/// assert_eq!(report.repeat.users, 1); // user 8's target 0 is a repeat
/// ```
#[derive(Debug, Clone)]
pub struct FullRankingEvaluator {
    num_items: usize,
    ks: Vec<usize>,
    protocol: Protocol,
    keep_per_user: bool,
}

/// Per-worker reusable buffers.
struct Scratch<S> {
    row: Vec<S>,
    heap: TopKHeap<S>,
    excluded: Vec<usize>,
    train: Vec<usize>,
    targets: Vec<usize>,
    new: Vec<usize>,
    repeat: Vec<usize>,
    rel: Vec<bool>,
}

impl<S: Score> Scratch<S> {
    fn new(row_len: usize, k: usize) -> Self {
        Self {
            row: vec![S::default(); row_len],
            heap: TopKHeap::new(k),
            excluded: Vec::new(),
            train: Vec::new(),
            targets: Vec::new(),
            new: Vec::new(),
            repeat: Vec::new(),
            rel: Vec::new(),
        }
    }
}

impl FullRankingEvaluator {
    /// An evaluator over `num_items` items at the cut-offs `ks` (sorted and de-duplicated;
    /// empty or zero is an error). Per-user results are kept by default.
    pub fn new(num_items: usize, ks: &[usize], protocol: Protocol) -> Result<Self> {
        Ok(Self {
            num_items,
            ks: normalize_ks(ks)?,
            protocol,
            keep_per_user: true,
        })
    }

    /// Keep (default) or drop the per-user results in the report.
    pub fn keep_per_user(mut self, keep: bool) -> Self {
        self.keep_per_user = keep;
        self
    }

    /// The cut-offs, increasing.
    pub fn ks(&self) -> &[usize] {
        &self.ks
    }

    /// Evaluates `users`, scoring each with `score_fn(user, row)`, which must fill `row`
    /// (one score per item, higher is better).
    pub fn evaluate<S, F>(&self, users: &[EvalUser], score_fn: F) -> Result<RankingReport>
    where
        S: Score,
        F: Fn(&EvalUser, &mut [S]) + Sync,
    {
        self.try_evaluate(users, |u, row| {
            score_fn(u, row);
            Ok::<(), std::convert::Infallible>(())
        })
    }

    /// Like [`evaluate`](Self::evaluate) with a fallible scoring closure; its error is
    /// returned as [`MetricsError::Scorer`].
    pub fn try_evaluate<S, F, E>(&self, users: &[EvalUser], score_fn: F) -> Result<RankingReport>
    where
        S: Score,
        F: Fn(&EvalUser, &mut [S]) -> std::result::Result<(), E> + Sync,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let k_max = self.k_max();
        let results: Vec<Result<Option<UserResult>>> = users
            .par_iter()
            .map_init(
                || Scratch::<S>::new(self.num_items, k_max),
                |scratch, user| {
                    let mut row = std::mem::take(&mut scratch.row);
                    let filled = score_fn(user, &mut row).map_err(|e| MetricsError::Scorer {
                        user: user.user,
                        source: e.into(),
                    });
                    let out = filled.and_then(|()| self.eval_user(user, &row, scratch));
                    scratch.row = row;
                    out
                },
            )
            .collect();
        self.finish(results)
    }

    /// Evaluates `users` against precomputed score rows, `rows[i]` for `users[i]`, each
    /// with one score per item.
    pub fn evaluate_rows<S, R>(&self, users: &[EvalUser], rows: &[R]) -> Result<RankingReport>
    where
        S: Score,
        R: AsRef<[S]> + Sync,
    {
        if rows.len() != users.len() {
            return Err(MetricsError::LengthMismatch {
                what: "score rows per user",
                expected: users.len(),
                got: rows.len(),
            });
        }
        let k_max = self.k_max();
        let results: Vec<Result<Option<UserResult>>> = users
            .par_iter()
            .zip(rows.par_iter())
            .map_init(
                || Scratch::<S>::new(0, k_max),
                |scratch, (user, row)| {
                    let row = row.as_ref();
                    if row.len() != self.num_items {
                        return Err(MetricsError::ScoreRowLength {
                            user: user.user,
                            expected: self.num_items,
                            got: row.len(),
                        });
                    }
                    self.eval_user(user, row, scratch)
                },
            )
            .collect();
        self.finish(results)
    }

    fn k_max(&self) -> usize {
        *self.ks.last().expect("ks is never empty")
    }

    /// Ranks one user; `None` when the user has no targets.
    fn eval_user<S: Score>(
        &self,
        user: &EvalUser,
        scores: &[S],
        s: &mut Scratch<S>,
    ) -> Result<Option<UserResult>> {
        let n = self.num_items;
        let check = |v: &[usize]| match v.iter().find(|&&i| i >= n) {
            Some(&item) => Err(MetricsError::ItemOutOfRange {
                user: user.user,
                item,
                num_items: n,
            }),
            None => Ok(()),
        };
        check(&user.targets)?;
        check(&user.train)?;
        sorted_unique(&user.targets, &mut s.targets);
        if s.targets.is_empty() {
            return Ok(None);
        }
        sorted_unique(&user.train, &mut s.train);
        s.excluded.clear();
        if self.protocol == Protocol::NewAuthors {
            s.excluded.extend_from_slice(&s.train);
        }
        s.new.clear();
        s.repeat.clear();
        for &t in &s.targets {
            if s.train.binary_search(&t).is_ok() {
                s.repeat.push(t);
            } else {
                s.new.push(t);
            }
        }

        s.heap.reset(self.k_max());
        select_into(scores, &s.excluded, &mut s.heap).map_err(|item| MetricsError::NanScore {
            user: user.user,
            item,
        })?;
        let mut top = Vec::with_capacity(self.k_max());
        s.heap.drain_sorted_into(&mut top);

        let new = self.group_metrics(&s.new, &top, scores, &s.excluded, &mut s.rel);
        let repeat = self.group_metrics(&s.repeat, &top, scores, &s.excluded, &mut s.rel);
        let first_hit = match (&new, &repeat) {
            (Some(a), Some(b)) => match (a.first_hit_rank, b.first_hit_rank) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            },
            (Some(a), None) => a.first_hit_rank,
            (None, Some(b)) => b.first_hit_rank,
            (None, None) => None,
        };
        relevance(&top, &s.targets, &mut s.rel);
        let all = metrics_from_relevance(&s.rel, s.targets.len(), &self.ks, first_hit);
        Ok(Some(UserResult {
            user: user.user,
            top,
            all,
            new,
            repeat,
        }))
    }

    /// Metrics of the ranking against one (sorted) group of targets; `None` if empty.
    fn group_metrics<S: Score>(
        &self,
        group: &[usize],
        top: &[usize],
        scores: &[S],
        excluded: &[usize],
        rel: &mut Vec<bool>,
    ) -> Option<ListMetrics> {
        if group.is_empty() {
            return None;
        }
        relevance(top, group, rel);
        let first_hit = match rel.iter().position(|&r| r) {
            Some(p) => Some(p + 1),
            None => group
                .iter()
                .copied()
                .filter(|t| excluded.binary_search(t).is_err())
                .reduce(|a, b| {
                    if ranks_before(scores[b], b, scores[a], a) {
                        b
                    } else {
                        a
                    }
                })
                .map(|best| rank_of(scores, best, excluded)),
        };
        Some(metrics_from_relevance(
            rel,
            group.len(),
            &self.ks,
            first_hit,
        ))
    }

    /// Turns per-user results into the report; the first error in user order wins.
    fn finish(&self, results: Vec<Result<Option<UserResult>>>) -> Result<RankingReport> {
        let mut per_user = Vec::with_capacity(results.len());
        let mut skipped = 0;
        for r in results {
            match r? {
                Some(u) => per_user.push(u),
                None => skipped += 1,
            }
        }
        let all = self.means(per_user.iter().map(|u| &u.all));
        let new = self.means(per_user.iter().filter_map(|u| u.new.as_ref()));
        let repeat = self.means(per_user.iter().filter_map(|u| u.repeat.as_ref()));
        if !self.keep_per_user {
            per_user = Vec::new();
        }
        Ok(RankingReport {
            protocol: self.protocol,
            num_items: self.num_items,
            ks: self.ks.clone(),
            users_without_targets: skipped,
            all,
            new,
            repeat,
            per_user,
        })
    }

    fn means<'a>(&self, lists: impl Iterator<Item = &'a ListMetrics>) -> MeanMetrics {
        let lists: Vec<&ListMetrics> = lists.collect();
        let mean_of = |f: &dyn Fn(&ListMetrics) -> f64| -> f64 {
            let v: Vec<f64> = lists.iter().map(|m| f(m)).collect();
            numpy_mean(&v)
        };
        let at_k = self
            .ks
            .iter()
            .enumerate()
            .map(|(j, &k)| MeanAtK {
                k,
                hits: mean_of(&|m| m.at_k[j].hits as f64),
                precision: mean_of(&|m| m.at_k[j].precision),
                recall: mean_of(&|m| m.at_k[j].recall),
                recall_trunc: mean_of(&|m| m.at_k[j].recall_trunc),
                ndcg: mean_of(&|m| m.at_k[j].ndcg),
                hit_rate: mean_of(&|m| m.at_k[j].hit_rate),
                rr: mean_of(&|m| m.at_k[j].rr),
            })
            .collect();
        MeanMetrics {
            users: lists.len(),
            at_k,
            mrr: mean_of(&|m| m.mrr),
        }
    }
}

/// `out` = sorted, de-duplicated copy of `v`.
fn sorted_unique(v: &[usize], out: &mut Vec<usize>) {
    out.clear();
    out.extend_from_slice(v);
    out.sort_unstable();
    out.dedup();
}

/// `rel[i]` = whether `top[i]` is in the sorted `group`.
fn relevance(top: &[usize], group: &[usize], rel: &mut Vec<bool>) {
    rel.clear();
    rel.extend(top.iter().map(|i| group.binary_search(i).is_ok()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranking::list_metrics;
    use crate::topk::tests::full_sort;

    fn lcg_scores(seed: u64, n: usize) -> Vec<f32> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // coarse values so that ties happen
                ((x >> 59) as f32) * 0.25
            })
            .collect()
    }

    #[test]
    fn agrees_with_full_sort_reference() {
        let n = 300;
        let users: Vec<EvalUser> = (0..40u64)
            .map(|u| EvalUser {
                user: u,
                targets: (0..(u % 6) as usize)
                    .map(|j| (j * 53 + u as usize * 7) % n)
                    .collect(),
                train: (0..(u % 4) as usize)
                    .map(|j| (j * 31 + u as usize * 11) % n)
                    .collect(),
            })
            .collect();
        for protocol in [Protocol::NewAuthors, Protocol::RepeatsAllowed] {
            let eval = FullRankingEvaluator::new(n, &[20, 1, 5, 5], protocol).unwrap();
            let report = eval
                .evaluate(&users, |u, row| row.copy_from_slice(&lcg_scores(u.user, n)))
                .unwrap();
            let rows: Vec<Vec<f32>> = users.iter().map(|u| lcg_scores(u.user, n)).collect();
            assert_eq!(report, eval.evaluate_rows(&users, &rows).unwrap());
            assert_eq!(report.ks, vec![1, 5, 20]);
            let mut k = 0;
            for u in &users {
                if u.targets.is_empty() {
                    continue;
                }
                let res = &report.per_user[k];
                k += 1;
                let excluded: Vec<usize> = if protocol == Protocol::NewAuthors {
                    u.train.clone()
                } else {
                    vec![]
                };
                let full = full_sort(&rows[u.user as usize], &excluded);
                assert_eq!(res.top, full[..20].to_vec());
                assert_eq!(
                    res.all,
                    list_metrics(&full, &u.targets, &[1, 5, 20]).unwrap()
                );
                let new: Vec<usize> = u
                    .targets
                    .iter()
                    .copied()
                    .filter(|t| !u.train.contains(t))
                    .collect();
                let rep: Vec<usize> = u
                    .targets
                    .iter()
                    .copied()
                    .filter(|t| u.train.contains(t))
                    .collect();
                assert_eq!(res.new.is_some(), !new.is_empty());
                if let Some(m) = &res.new {
                    assert_eq!(m, &list_metrics(&full, &new, &[1, 5, 20]).unwrap());
                }
                if let Some(m) = &res.repeat {
                    assert_eq!(m, &list_metrics(&full, &rep, &[1, 5, 20]).unwrap());
                }
            }
            assert_eq!(report.users_without_targets, users.len() - k);
            assert_eq!(report.all.users, k);
        }
    }

    #[test]
    fn nan_names_user_and_item() {
        let users = vec![EvalUser {
            user: 42,
            targets: vec![1],
            train: vec![],
        }];
        let eval = FullRankingEvaluator::new(3, &[1], Protocol::RepeatsAllowed).unwrap();
        let err = eval
            .evaluate(&users, |_, row: &mut [f64]| {
                row.copy_from_slice(&[0.0, 1.0, f64::NAN]);
            })
            .unwrap_err();
        assert!(
            matches!(err, MetricsError::NanScore { user: 42, item: 2 }),
            "{err}"
        );
        // NaN on an excluded training item is never read.
        let users = vec![EvalUser {
            user: 42,
            targets: vec![1],
            train: vec![2],
        }];
        let eval = FullRankingEvaluator::new(3, &[1], Protocol::NewAuthors).unwrap();
        let rows = vec![vec![0.0, 1.0, f64::NAN]];
        assert_eq!(
            eval.evaluate_rows(&users, &rows).unwrap().all.recall(1),
            Some(1.0)
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        let eval = FullRankingEvaluator::new(3, &[1], Protocol::RepeatsAllowed).unwrap();
        // User 5 with one target and no training items.
        let user_5 = |target| {
            vec![EvalUser {
                user: 5,
                targets: vec![target],
                train: vec![],
            }]
        };
        let users = user_5(3);
        let rows = vec![vec![0.0f32; 3]];
        assert!(matches!(
            eval.evaluate_rows(&users, &rows),
            Err(MetricsError::ItemOutOfRange {
                user: 5,
                item: 3,
                ..
            })
        ));
        let users = user_5(0);
        let rows = vec![vec![0.0f32; 2]];
        assert!(matches!(
            eval.evaluate_rows(&users, &rows),
            Err(MetricsError::ScoreRowLength { .. })
        ));
        assert!(matches!(
            eval.evaluate_rows::<f32, Vec<f32>>(&users, &[]),
            Err(MetricsError::LengthMismatch { .. })
        ));
        let failing = eval.try_evaluate(&users, |_, _row: &mut [f32]| Err("model exploded"));
        assert!(matches!(failing, Err(MetricsError::Scorer { user: 5, .. })));
    }

    #[test]
    fn excluded_targets_are_misses() {
        let eval = FullRankingEvaluator::new(4, &[2], Protocol::NewAuthors).unwrap();
        let users = vec![EvalUser {
            user: 0,
            targets: vec![0, 1],
            train: vec![0],
        }];
        let rows = vec![vec![9.0f32, 1.0, 0.5, 0.0]];
        let r = eval.evaluate_rows(&users, &rows).unwrap();
        assert_eq!(r.per_user[0].top, vec![1, 2]);
        assert_eq!(r.all.recall(2), Some(0.5));
        assert_eq!(r.new.recall(2), Some(1.0));
        assert_eq!(r.repeat.recall(2), Some(0.0));
        assert_eq!(r.repeat.mrr, 0.0);
    }
}
