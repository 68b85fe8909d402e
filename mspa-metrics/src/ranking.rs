//! Top-K metrics of one ranked list against a set of relevant items (binary relevance).
//!
//! Definitions (the same as Cornac and RecBole, see `golden/ranking.json`), with `hits` the
//! number of relevant items among the first `K` positions of the list and `R` the number
//! of relevant items:
//!
//! * `precision` = `hits / K` (divides by `K` even when the list is shorter);
//! * `recall` = `hits / R`;
//! * `recall_trunc` = `hits / min(R, K)`;
//! * `ndcg` = DCG@K / IDCG@K: gain 1 at 1-based rank `i` discounted by `log2(i + 1)`, ideal
//!   DCG over `min(R, K)` positions;
//! * `hit_rate` = `1` if `hits > 0` else `0`;
//! * `rr` = `1 / rank` of the first hit if that rank is at most `K`, else `0`;
//! * `mrr` = `1 / rank` of the first hit anywhere in the list, `0` if none.
//!
//! DCG and IDCG are summed the way NumPy sums them (see [`crate::pairwise_sum`]), so the
//! values agree with the reference implementations to the last bit.
//!
//! An item repeated in the ranked list counts once, at its first position. With no
//! relevant items every metric is `0`.

use std::collections::HashSet;
use std::hash::Hash;

use serde::Serialize;

use crate::error::{MetricsError, Result};
use crate::sum::pairwise_sum;

/// Every metric at one cut-off `K`: of one list ([`MetricsAtK`], `hits` a count), or
/// their means over users ([`MeanAtK`](crate::MeanAtK), `hits` a mean).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AtCutoff<H> {
    /// The cut-off.
    pub k: usize,
    /// Relevant items among the first `K` positions.
    pub hits: H,
    /// Precision@K, `hits / K`.
    pub precision: f64,
    /// Recall@K, `hits / |relevant|`.
    pub recall: f64,
    /// Truncated recall, `hits / min(|relevant|, K)`.
    pub recall_trunc: f64,
    /// Normalised discounted cumulative gain at `K`.
    pub ndcg: f64,
    /// HitRate@K: `1.0` if there is at least one hit, else `0.0`.
    pub hit_rate: f64,
    /// Reciprocal rank of the first hit if it is within `K`, else `0.0`.
    pub rr: f64,
}

/// All metrics of one list at one cut-off `K`.
pub type MetricsAtK = AtCutoff<usize>;

/// Metrics of one list at every requested cut-off, plus the whole-list reciprocal rank.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListMetrics {
    /// One entry per cut-off, in increasing `K`.
    pub at_k: Vec<MetricsAtK>,
    /// Reciprocal rank of the first hit in the whole list (`0.0` if none).
    pub mrr: f64,
    /// 1-based rank of the first hit in the whole list, if any.
    pub first_hit_rank: Option<usize>,
}

impl ListMetrics {
    /// The metrics at cut-off `k`, if it was requested.
    pub fn at(&self, k: usize) -> Option<&MetricsAtK> {
        self.at_k.iter().find(|m| m.k == k)
    }
}

/// Computes every metric of `ranked` against `relevant` at each cut-off in `ks`.
///
/// `ks` is sorted and de-duplicated; a `K` of zero or an empty `ks` is an error.
///
/// ```
/// use mspa_metrics::list_metrics;
/// let m = list_metrics(&[7, 3, 9, 4], &[3, 4], &[1, 2, 5]).unwrap();
/// assert_eq!(m.at(2).unwrap().hits, 1);
/// assert_eq!(m.at(5).unwrap().recall, 1.0);
/// assert_eq!(m.first_hit_rank, Some(2));
/// assert_eq!(m.mrr, 0.5);
/// ```
pub fn list_metrics<T: Eq + Hash>(
    ranked: &[T],
    relevant: &[T],
    ks: &[usize],
) -> Result<ListMetrics> {
    let ks = normalize_ks(ks)?;
    let relevant: HashSet<&T> = relevant.iter().collect();
    let mut matched: HashSet<&T> = HashSet::with_capacity(relevant.len());
    let rel: Vec<bool> = ranked
        .iter()
        .map(|item| relevant.contains(item) && matched.insert(item))
        .collect();
    let first_hit_rank = rel.iter().position(|&r| r).map(|i| i + 1);
    Ok(metrics_from_relevance(
        &rel,
        relevant.len(),
        &ks,
        first_hit_rank,
    ))
}

/// Recall@K of one list: `hits / |relevant|`.
///
/// ```
/// assert_eq!(mspa_metrics::recall_at_k(&[1, 2, 3], &[2, 9], 2), 0.5);
/// ```
pub fn recall_at_k<T: Eq + Hash>(ranked: &[T], relevant: &[T], k: usize) -> f64 {
    single(ranked, relevant, k).map_or(0.0, |m| m.recall)
}

/// Precision@K of one list: `hits / K`, also when the list is shorter than `K`.
pub fn precision_at_k<T: Eq + Hash>(ranked: &[T], relevant: &[T], k: usize) -> f64 {
    single(ranked, relevant, k).map_or(0.0, |m| m.precision)
}

/// NDCG@K of one list with binary gains.
///
/// ```
/// let v = mspa_metrics::ndcg_at_k(&[5, 1], &[1], 10);
/// assert!((v - 1.0 / 3f64.log2()).abs() < 1e-15);
/// ```
pub fn ndcg_at_k<T: Eq + Hash>(ranked: &[T], relevant: &[T], k: usize) -> f64 {
    single(ranked, relevant, k).map_or(0.0, |m| m.ndcg)
}

/// HitRate@K of one list: `1.0` if any of the first `K` items is relevant.
pub fn hit_rate_at_k<T: Eq + Hash>(ranked: &[T], relevant: &[T], k: usize) -> f64 {
    single(ranked, relevant, k).map_or(0.0, |m| m.hit_rate)
}

/// Reciprocal rank of the first relevant item anywhere in the list (`0.0` if none);
/// averaged over users this is MRR.
pub fn reciprocal_rank<T: Eq + Hash>(ranked: &[T], relevant: &[T]) -> f64 {
    let relevant: HashSet<&T> = relevant.iter().collect();
    ranked
        .iter()
        .position(|item| relevant.contains(item))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// One metric set at a single `k` (`None` when `k` is zero).
fn single<T: Eq + Hash>(ranked: &[T], relevant: &[T], k: usize) -> Option<MetricsAtK> {
    list_metrics(ranked, relevant, &[k])
        .ok()
        .and_then(|m| m.at_k.into_iter().next())
}

/// Sorts and de-duplicates cut-offs; rejects an empty list and `K = 0`.
pub(crate) fn normalize_ks(ks: &[usize]) -> Result<Vec<usize>> {
    if ks.is_empty() {
        return Err(MetricsError::NoCutoffs);
    }
    if ks.contains(&0) {
        return Err(MetricsError::ZeroCutoff);
    }
    let mut ks = ks.to_vec();
    ks.sort_unstable();
    ks.dedup();
    Ok(ks)
}

/// The rank discount `1 / log2(i + 2)` of 0-based position `i`.
#[inline]
pub(crate) fn discount(i: usize) -> f64 {
    1.0 / ((i + 2) as f64).log2()
}

/// Metrics from a relevance vector over the (prefix of the) ranked list.
///
/// `rel[i]` says whether position `i` is a hit (each relevant item at most once);
/// `rel` must cover at least the first `max(ks)` positions of the list or the whole list.
/// `first_hit_rank` is the 1-based rank of the first hit in the whole ranking, which may
/// lie beyond `rel`.
pub(crate) fn metrics_from_relevance(
    rel: &[bool],
    num_relevant: usize,
    ks: &[usize],
    first_hit_rank: Option<usize>,
) -> ListMetrics {
    let mut gains = Vec::new();
    let mut ideal = Vec::new();
    let at_k = ks
        .iter()
        .map(|&k| {
            let top = &rel[..rel.len().min(k)];
            let hits = top.iter().filter(|&&r| r).count();
            if num_relevant == 0 {
                return MetricsAtK {
                    k,
                    hits,
                    precision: hits as f64 / k as f64,
                    recall: 0.0,
                    recall_trunc: 0.0,
                    ndcg: 0.0,
                    hit_rate: 0.0,
                    rr: 0.0,
                };
            }
            let ndcg = if hits == 0 {
                0.0
            } else {
                gains.clear();
                gains.extend(
                    top.iter()
                        .enumerate()
                        .map(|(i, &r)| if r { discount(i) } else { 0.0 }),
                );
                ideal.clear();
                ideal.extend((0..num_relevant.min(k)).map(discount));
                pairwise_sum(&gains) / pairwise_sum(&ideal)
            };
            let rr = match first_hit_rank {
                Some(rank) if rank <= k => 1.0 / rank as f64,
                _ => 0.0,
            };
            MetricsAtK {
                k,
                hits,
                precision: hits as f64 / k as f64,
                recall: hits as f64 / num_relevant as f64,
                recall_trunc: hits as f64 / num_relevant.min(k) as f64,
                ndcg,
                hit_rate: if hits > 0 { 1.0 } else { 0.0 },
                rr,
            }
        })
        .collect();
    ListMetrics {
        at_k,
        mrr: first_hit_rank.map_or(0.0, |r| 1.0 / r as f64),
        first_hit_rank,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_cutoffs() {
        assert!(matches!(
            list_metrics(&[1], &[1], &[]),
            Err(MetricsError::NoCutoffs)
        ));
        assert!(matches!(
            list_metrics(&[1], &[1], &[0, 3]),
            Err(MetricsError::ZeroCutoff)
        ));
    }

    #[test]
    fn repeated_items_count_once() {
        let m = list_metrics(&[1, 1, 2], &[1], &[3]).unwrap();
        assert_eq!(m.at(3).unwrap().hits, 1);
        assert_eq!(m.at(3).unwrap().recall, 1.0);
        assert_eq!(m.at(3).unwrap().ndcg, 1.0);
    }

    #[test]
    fn empty_relevant_gives_zeros() {
        let m = list_metrics::<u32>(&[1, 2], &[], &[2]).unwrap();
        let a = m.at(2).unwrap();
        assert_eq!((a.recall, a.ndcg, a.hit_rate, m.mrr), (0.0, 0.0, 0.0, 0.0));
    }

    #[test]
    fn short_list_precision_divides_by_k() {
        assert_eq!(precision_at_k(&[1], &[1], 10), 0.1);
        assert_eq!(hit_rate_at_k(&[2, 1], &[1], 1), 0.0);
        assert_eq!(reciprocal_rank(&[2, 1], &[1]), 0.5);
    }
}
