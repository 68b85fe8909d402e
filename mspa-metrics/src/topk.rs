//! Top-K selection over a score vector by partial selection (a bounded heap), and the
//! full-ranking rank of a single item, without ever sorting all scores.
//!
//! Order: a higher score ranks first; equal scores rank by lower item index first. NaN
//! scores are an error, never a silent rank.

use crate::error::{MetricsError, Result};

/// A score type the evaluator can rank: `f32` or `f64`.
pub trait Score: Copy + PartialOrd + Default + Send + Sync + 'static {
    /// Whether the score is NaN.
    fn is_nan(self) -> bool;
}

impl Score for f32 {
    #[inline]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Score for f64 {
    #[inline]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// Whether item `ia` with score `sa` ranks before item `ib` with score `sb`.
#[inline]
pub(crate) fn ranks_before<S: Score>(sa: S, ia: usize, sb: S, ib: usize) -> bool {
    sa > sb || (sa == sb && ia < ib)
}

/// A bounded heap holding the best `k` (score, item) pairs seen so far; its root is the
/// worst of them, so most candidates are rejected with a single comparison.
#[derive(Debug, Clone)]
pub(crate) struct TopKHeap<S> {
    k: usize,
    entries: Vec<(S, usize)>,
}

impl<S: Score> TopKHeap<S> {
    /// An empty heap for the best `k` items.
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            entries: Vec::with_capacity(k),
        }
    }

    /// Empties the heap and sets a new `k`.
    pub(crate) fn reset(&mut self, k: usize) {
        self.k = k;
        self.entries.clear();
    }

    /// `a` is worse than `b` (ranks after it).
    #[inline]
    fn worse(a: (S, usize), b: (S, usize)) -> bool {
        ranks_before(b.0, b.1, a.0, a.1)
    }

    /// Offers one candidate.
    #[inline]
    pub(crate) fn offer(&mut self, score: S, item: usize) {
        if self.entries.len() < self.k {
            self.entries.push((score, item));
            self.sift_up(self.entries.len() - 1);
        } else if self.k > 0 && ranks_before(score, item, self.entries[0].0, self.entries[0].1) {
            self.entries[0] = (score, item);
            self.sift_down(0);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if Self::worse(self.entries[i], self.entries[parent]) {
                self.entries.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.entries.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let mut worst = left;
            if right < n && Self::worse(self.entries[right], self.entries[left]) {
                worst = right;
            }
            if Self::worse(self.entries[worst], self.entries[i]) {
                self.entries.swap(worst, i);
                i = worst;
            } else {
                break;
            }
        }
    }

    /// Writes the selected items, best first, into `out` (cleared first).
    pub(crate) fn drain_sorted_into(&mut self, out: &mut Vec<usize>) {
        self.entries.sort_unstable_by(|a, b| {
            if ranks_before(a.0, a.1, b.0, b.1) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        });
        out.clear();
        out.extend(self.entries.drain(..).map(|(_, i)| i));
    }
}

/// Runs `f` on every maximal run `[start, end)` of indices below `n` that avoids the
/// sorted, de-duplicated `excluded` indices.
#[inline]
fn for_each_run(
    n: usize,
    excluded: &[usize],
    mut f: impl FnMut(usize, usize) -> Result<(), usize>,
) -> Result<(), usize> {
    let mut start = 0;
    for &e in excluded {
        if e >= n {
            break;
        }
        if e > start {
            f(start, e)?;
        }
        start = e + 1;
    }
    if start < n {
        f(start, n)?;
    }
    Ok(())
}

/// Fills `heap` with the best items of `scores`, skipping `excluded` (sorted, unique).
/// On a NaN among the candidates returns `Err(item)`.
///
/// Items are offered in increasing index order, so once the heap is full a candidate
/// must beat the current worst score strictly; the common case costs one comparison.
pub(crate) fn select_into<S: Score>(
    scores: &[S],
    excluded: &[usize],
    heap: &mut TopKHeap<S>,
) -> Result<(), usize> {
    for_each_run(scores.len(), excluded, |start, end| {
        let run = &scores[start..end];
        let mut i = 0;
        while i < run.len() && heap.entries.len() < heap.k {
            if run[i].is_nan() {
                return Err(start + i);
            }
            heap.offer(run[i], start + i);
            i += 1;
        }
        if heap.k == 0 {
            return match run.iter().position(|s| s.is_nan()) {
                Some(p) => Err(start + p),
                None => Ok(()),
            };
        }
        let mut worst = heap.entries[0].0;
        for (off, &s) in run[i..].iter().enumerate() {
            // Fast path: below the current worst (false for NaN, which falls through).
            if s < worst {
                continue;
            }
            if s.is_nan() {
                return Err(start + i + off);
            }
            if s > worst {
                heap.entries[0] = (s, start + i + off);
                heap.sift_down(0);
                worst = heap.entries[0].0;
            }
        }
        Ok(())
    })
}

/// 1-based rank of `item` among all non-excluded items of `scores` (`excluded` sorted,
/// unique). Assumes the candidates hold no NaN (NaN scores never rank before anything).
pub(crate) fn rank_of<S: Score>(scores: &[S], item: usize, excluded: &[usize]) -> usize {
    let t = scores[item];
    let above = scores.iter().filter(|&&s| s > t).count();
    let tied_before = scores[..item].iter().filter(|&&s| s == t).count();
    let excluded_before = excluded
        .iter()
        .filter(|&&e| e < scores.len() && ranks_before(scores[e], e, t, item))
        .count();
    1 + above + tied_before - excluded_before
}

/// The indices of the `k` best scores, best first, skipping the items in `exclude`.
///
/// Partial selection (a bounded heap), not a full sort: `O(n log k)`. Ties go to the lower
/// index. A NaN score among the candidates is an error; excluded items are never read.
///
/// ```
/// use mspa_metrics::top_k;
/// let scores = [0.5f32, 2.0, 2.0, -1.0, 9.0];
/// assert_eq!(top_k(&scores, 3, &[4]).unwrap(), vec![1, 2, 0]);
/// assert!(top_k(&[1.0f64, f64::NAN], 1, &[]).is_err());
/// ```
pub fn top_k<S: Score>(scores: &[S], k: usize, exclude: &[usize]) -> Result<Vec<usize>> {
    let mut excluded = exclude.to_vec();
    excluded.sort_unstable();
    excluded.dedup();
    if let Some(&bad) = excluded.iter().find(|&&e| e >= scores.len()) {
        return Err(MetricsError::IndexOutOfRange {
            item: bad,
            num_items: scores.len(),
        });
    }
    let mut heap = TopKHeap::new(k);
    select_into(scores, &excluded, &mut heap)
        .map_err(|item| MetricsError::NanScoreItem { item })?;
    let mut out = Vec::with_capacity(k);
    heap.drain_sorted_into(&mut out);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every item not in `excluded`, best first by a full sort (ties: lower index first).
    pub(crate) fn full_sort(scores: &[f32], excluded: &[usize]) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..scores.len())
            .filter(|i| !excluded.contains(i))
            .collect();
        idx.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap().then(a.cmp(&b)));
        idx
    }

    #[test]
    fn agrees_with_full_sort_and_ranks() {
        let scores: Vec<f32> = (0..200).map(|i| ((i * 37 % 23) as f32) * 0.5).collect();
        let excluded = [3usize, 17, 18, 150];
        let sorted = full_sort(&scores, &excluded);
        for k in [0, 1, 5, 20, 300] {
            let got = top_k(&scores, k, &excluded).unwrap();
            assert_eq!(got, sorted[..k.min(sorted.len())].to_vec(), "k = {k}");
        }
        for (pos, &item) in sorted.iter().enumerate() {
            assert_eq!(rank_of(&scores, item, &excluded), pos + 1);
        }
    }

    #[test]
    fn nan_is_an_error_unless_excluded() {
        let scores = [1.0f32, f32::NAN, 0.5];
        assert!(matches!(
            top_k(&scores, 2, &[]),
            Err(MetricsError::NanScoreItem { item: 1 })
        ));
        assert_eq!(top_k(&scores, 2, &[1]).unwrap(), vec![0, 2]);
        assert!(top_k(&scores, 2, &[7]).is_err());
    }

    #[test]
    fn infinities_rank() {
        let scores = [f64::NEG_INFINITY, f64::INFINITY, 0.0];
        assert_eq!(top_k(&scores, 3, &[]).unwrap(), vec![1, 2, 0]);
    }
}
