//! The [`Recommender`] trait every model implements, full-ranking evaluation through
//! `mspa-metrics`, and top-K recommendation for one query.
//!
//! A model sees a [`Query`]: the user, the user's tips before the query time (oldest
//! first) and the query time. It scores every author; higher is better. Evaluation builds
//! one query per evaluation group (the targets of one user that share a history: one
//! target per user in leave-last-out, all the targets of a user's window in the time
//! split), scores the queries in batches and hands the score rows to
//! [`FullRankingEvaluator::evaluate_rows`], with the history's authors as the user's
//! "training" items (excluded under [`Protocol::NewAuthors`], and the split between new
//! and repeat targets).

use mspa_core::{AuthorId, Dataset, LiveSchedule, Target, TipEvent, UserId};
use mspa_metrics::{EvalUser, FullRankingEvaluator, MetricsError, Protocol, RankingReport};

use crate::error::{AlignError, Result};

/// What a recommender is asked: rank the authors for `user` at `at_ms`, knowing the
/// user's tips before that time.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// The user (a dense id of the dataset the model was trained on).
    pub user: UserId,
    /// The user's tips before `at_ms`, oldest first.
    pub history: &'a [TipEvent],
    /// The time of the query, in milliseconds since the Unix epoch.
    pub at_ms: i64,
}

impl Query<'_> {
    /// The distinct authors of the history, sorted by id.
    pub fn history_authors(&self) -> Vec<AuthorId> {
        let mut a: Vec<AuthorId> = self.history.iter().map(|e| e.author).collect();
        a.sort_unstable();
        a.dedup();
        a
    }
}

/// A model that scores every author for a user.
pub trait Recommender: Send + Sync {
    /// A short name for reports ("MostPop", "BPR-MF", ...).
    fn name(&self) -> &str;

    /// Scores every author for each query; `out` is `queries.len() x n_authors`,
    /// row-major, higher is better. Scores must be finite (or at least never NaN).
    fn score_batch(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()>;
}

/// Checks that `out` holds `n_queries` rows and returns the row length (the number of
/// authors the caller expects). Recommenders call this at the top of `score_batch`.
pub fn check_out_len(n_queries: usize, out_len: usize, n_authors: usize) -> Result<()> {
    if out_len != n_queries * n_authors {
        return Err(AlignError::data(format!(
            "score buffer holds {out_len} values, expected {n_queries} queries x {n_authors} authors = {}",
            n_queries * n_authors
        )));
    }
    Ok(())
}

/// One evaluation group: a user's targets that share one history.
#[derive(Clone, Debug)]
struct Group {
    user: UserId,
    history: std::ops::Range<usize>,
    at_ms: i64,
    targets: Vec<usize>,
}

/// Groups consecutive targets of one user with the same history range (the input order
/// of a [`mspa_core::Split`]); the query time is the earliest target time of the group.
fn group_targets(targets: &[Target]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for t in targets {
        match groups.last_mut() {
            Some(g) if g.user == t.user && g.history == t.history => {
                g.targets.push(t.author.index());
                g.at_ms = g.at_ms.min(t.timestamp_ms);
            }
            _ => groups.push(Group {
                user: t.user,
                history: t.history.clone(),
                at_ms: t.timestamp_ms,
                targets: vec![t.author.index()],
            }),
        }
    }
    groups
}

/// Evaluates a recommender by full ranking over all authors.
///
/// Each group of targets (see the module docs) becomes one [`EvalUser`] whose `train`
/// items are the authors of the history (`target.history(dataset)`); the recommender sees
/// exactly that history and the earliest target time. Queries are scored `batch_size` at
/// a time, then ranked by [`FullRankingEvaluator::evaluate_rows`] at the cut-offs `ks`.
pub fn evaluate(
    rec: &dyn Recommender,
    dataset: &Dataset,
    targets: &[Target],
    protocol: Protocol,
    ks: &[usize],
    batch_size: usize,
) -> Result<RankingReport> {
    let how = Ranking {
        protocol,
        ks,
        batch_size,
        live: None,
    };
    rank(rec, dataset, targets, how)
}

/// [`evaluate`] (repeats allowed, 256 queries a batch) under the live-streaming candidate
/// protocol: each query ranks only the authors live at its time ([`Dataset::live`]) and
/// its own targets (a target is always a candidate, as in LiveRec); every other author
/// scores `-inf`. Errors when the dataset has no broadcast times.
pub fn evaluate_live(
    rec: &dyn Recommender,
    dataset: &Dataset,
    targets: &[Target],
    ks: &[usize],
) -> Result<RankingReport> {
    let live = dataset.live().ok_or_else(|| {
        AlignError::data("the live-candidate protocol needs broadcast times; this dataset has none")
    })?;
    let how = Ranking {
        protocol: Protocol::RepeatsAllowed,
        ks,
        batch_size: 256,
        live: Some(live),
    };
    rank(rec, dataset, targets, how)
}

/// How [`rank`] ranks: the protocol, the cut-offs, the queries per batch and, for the
/// live-candidate protocol, when each author was live.
struct Ranking<'a> {
    protocol: Protocol,
    ks: &'a [usize],
    batch_size: usize,
    live: Option<&'a LiveSchedule>,
}

/// [`evaluate`], with the candidates limited to the live authors when `how.live` is set.
fn rank(
    rec: &dyn Recommender,
    dataset: &Dataset,
    targets: &[Target],
    how: Ranking<'_>,
) -> Result<RankingReport> {
    let Ranking {
        protocol,
        ks,
        batch_size,
        live,
    } = how;
    if batch_size == 0 {
        return Err(AlignError::config("batch_size", "must be at least 1"));
    }
    let n_authors = dataset.n_authors();
    let evaluator = FullRankingEvaluator::new(n_authors, ks, protocol)?;
    let n_events = dataset.n_events();
    for t in targets {
        if t.history.end > n_events || t.history.start > t.history.end {
            return Err(AlignError::data(format!(
                "target of user {} has history {:?} outside the dataset's {n_events} events",
                t.user, t.history
            )));
        }
        if t.author.index() >= n_authors {
            return Err(AlignError::data(format!(
                "target author {} is not below the dataset's {n_authors} authors",
                t.author
            )));
        }
    }
    let groups = group_targets(targets);
    let users: Vec<EvalUser> = groups
        .iter()
        .map(|g| {
            let mut train: Vec<usize> = dataset.events()[g.history.clone()]
                .iter()
                .map(|e| e.author.index())
                .collect();
            train.sort_unstable();
            train.dedup();
            EvalUser {
                user: u64::from(g.user.0),
                targets: g.targets.clone(),
                train,
            }
        })
        .collect();
    let mut scores = vec![0f32; groups.len() * n_authors];
    for (chunk, out) in groups
        .chunks(batch_size)
        .zip(scores.chunks_mut(batch_size * n_authors.max(1)))
    {
        let queries: Vec<Query<'_>> = chunk
            .iter()
            .map(|g| Query {
                user: g.user,
                history: &dataset.events()[g.history.clone()],
                at_ms: g.at_ms,
            })
            .collect();
        rec.score_batch(&queries, out)?;
        if let Some(live) = live {
            for (g, row) in chunk.iter().zip(out.chunks_mut(n_authors.max(1))) {
                for (a, score) in row.iter_mut().enumerate() {
                    if !live.is_live(AuthorId(a as u32), g.at_ms) && !g.targets.contains(&a) {
                        *score = f32::NEG_INFINITY;
                    }
                }
            }
        }
    }
    let rows: Vec<&[f32]> = if n_authors == 0 {
        vec![&[][..]; groups.len()]
    } else {
        scores.chunks(n_authors).collect()
    };
    // The evaluator refuses a NaN it would rank; the error also names the model.
    evaluator.evaluate_rows(&users, &rows).map_err(|e| match e {
        MetricsError::NanScore { user, item } => AlignError::data(format!(
            "{} gave a NaN score for user {user} and author {item}",
            rec.name()
        )),
        e => e.into(),
    })
}

/// NDCG@10 of a recommender on `targets` (0 when there are none): what the trainers
/// validate with.
pub fn validation_ndcg10(
    rec: &dyn Recommender,
    dataset: &Dataset,
    targets: &[Target],
    protocol: Protocol,
) -> Result<f64> {
    if targets.is_empty() {
        return Ok(0.0);
    }
    let report = evaluate(rec, dataset, targets, protocol, &[10], 256)?;
    Ok(report.all.ndcg(10).unwrap_or(0.0))
}

/// The `k` best authors for one query, best first, with their scores. With
/// `exclude_seen`, the authors of the query's history are left out. Ties go to the lower
/// author id; a NaN score is an error.
pub fn recommend(
    rec: &dyn Recommender,
    query: Query<'_>,
    k: usize,
    exclude_seen: bool,
    n_authors: usize,
) -> Result<Vec<(AuthorId, f32)>> {
    let mut scores = vec![0f32; n_authors];
    rec.score_batch(std::slice::from_ref(&query), &mut scores)?;
    let exclude: Vec<usize> = if exclude_seen {
        query
            .history_authors()
            .into_iter()
            .map(AuthorId::index)
            .filter(|&a| a < n_authors)
            .collect()
    } else {
        Vec::new()
    };
    let top = mspa_metrics::top_k(&scores, k, &exclude)?;
    Ok(top
        .into_iter()
        .map(|a| (AuthorId(a as u32), scores[a]))
        .collect())
}

/// A recommender that scores every author uniformly at random (seeded per user and
/// query time), the floor every model must beat.
#[derive(Clone, Debug)]
pub struct RandomRecommender {
    n_authors: usize,
    seed: u64,
}

impl RandomRecommender {
    /// Random scores over `n_authors` authors.
    pub fn new(n_authors: usize, seed: u64) -> Self {
        RandomRecommender { n_authors, seed }
    }
}

impl Recommender for RandomRecommender {
    fn name(&self) -> &str {
        "Random"
    }

    fn score_batch(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()> {
        check_out_len(queries.len(), out.len(), self.n_authors)?;
        for (q, row) in queries.iter().zip(out.chunks_mut(self.n_authors.max(1))) {
            let mut rng = crate::data::SplitMix64::new(
                self.seed ^ (u64::from(q.user.0) << 32) ^ (q.at_ms as u64).rotate_left(17),
            );
            for s in row.iter_mut() {
                *s = rng.next_f32();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mspa_core::{Author, DatasetBuilder, ExternalId, Split};

    /// Scores every author 0, except a NaN for author 1.
    struct Broken;

    impl Recommender for Broken {
        fn name(&self) -> &str {
            "Broken"
        }
        fn score_batch(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()> {
            out.fill(0.0);
            for row in out.chunks_mut(out.len() / queries.len().max(1)) {
                row[1] = f32::NAN;
            }
            Ok(())
        }
    }

    #[test]
    fn a_nan_score_is_an_error_naming_the_model_user_and_author() {
        let mut b = DatasetBuilder::default();
        let a: Vec<_> = (0..3)
            .map(|i| b.add_author(Author::bare(ExternalId::Int(i))).unwrap())
            .collect();
        let u = b.user(ExternalId::Int(9));
        for (t, &author) in a.iter().enumerate() {
            b.push_event(u, author, 1.0, t as i64);
        }
        let ds = b.build(None);
        let split = Split::leave_last_out(&ds);
        let err = evaluate(
            &Broken,
            &ds,
            &split.test,
            Protocol::RepeatsAllowed,
            &[10],
            8,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Broken") && err.contains("author 1"), "{err}");
    }
}
