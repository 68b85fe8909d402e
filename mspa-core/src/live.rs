//! When each author was live: the broadcast intervals of a dataset, for the live-streaming
//! candidate protocol (only the authors on air at a target's time are ranked, as in
//! LiveRec and the KuaiLive benchmark).
//!
//! Loaders that know broadcasts record them on the [`crate::DatasetBuilder`]
//! ([`crate::DatasetBuilder::add_live_interval`]): KuaiLive's `room.csv` start and end
//! times, Twitch's start and stop steps. Overlapping or touching intervals of one author
//! are merged.
//!
//! ```
//! use mspa_core::{AuthorId, LiveSchedule};
//! let mut s = LiveSchedule::new(2);
//! s.add(AuthorId(0), 10, 20);
//! s.add(AuthorId(0), 15, 30);
//! s.finish();
//! assert!(s.is_live(AuthorId(0), 25));
//! assert!(!s.is_live(AuthorId(0), 31));
//! assert!(!s.is_live(AuthorId(1), 12));
//! ```

use crate::ids::AuthorId;

/// Per author, the sorted, disjoint `[start_ms, end_ms]` intervals they were live.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveSchedule {
    intervals: Vec<Vec<(i64, i64)>>,
}

impl LiveSchedule {
    /// An empty schedule for `n_authors` authors.
    pub fn new(n_authors: usize) -> Self {
        LiveSchedule {
            intervals: vec![Vec::new(); n_authors],
        }
    }

    /// Records that `author` was live from `start_ms` to `end_ms` (inclusive; swapped when
    /// given in the wrong order). Call [`LiveSchedule::finish`] before querying.
    pub fn add(&mut self, author: AuthorId, start_ms: i64, end_ms: i64) {
        let i = author.index();
        if i >= self.intervals.len() {
            self.intervals.resize(i + 1, Vec::new());
        }
        self.intervals[i].push((start_ms.min(end_ms), start_ms.max(end_ms)));
    }

    /// Sorts and merges each author's intervals.
    pub fn finish(&mut self) {
        let mut scratch = Vec::new();
        for list in &mut self.intervals {
            list.sort_unstable();
            *list = merge_sorted(list.iter().copied(), &mut scratch);
        }
    }

    /// A finished schedule from each author's intervals as [`merge_sorted`] leaves them,
    /// indexed by author.
    pub(crate) fn from_merged(intervals: Vec<Vec<(i64, i64)>>) -> Self {
        LiveSchedule { intervals }
    }

    /// Makes room for `n_authors` authors (authors added after the last interval).
    pub(crate) fn resize(&mut self, n_authors: usize) {
        if self.intervals.len() < n_authors {
            self.intervals.resize(n_authors, Vec::new());
        }
    }

    /// Whether `author` was live at `at_ms`.
    pub fn is_live(&self, author: AuthorId, at_ms: i64) -> bool {
        let Some(list) = self.intervals.get(author.index()) else {
            return false;
        };
        let i = list.partition_point(|&(s, _)| s <= at_ms);
        i > 0 && list[i - 1].1 >= at_ms
    }

    /// The merged intervals of `author`.
    pub fn intervals(&self, author: AuthorId) -> &[(i64, i64)] {
        self.intervals
            .get(author.index())
            .map_or(&[][..], Vec::as_slice)
    }

    /// The number of authors live at `at_ms`.
    pub fn n_live(&self, at_ms: i64) -> usize {
        (0..self.intervals.len())
            .filter(|&a| self.is_live(AuthorId(a as u32), at_ms))
            .count()
    }
}

/// Merges intervals ordered by start (those with equal starts in any order) into the
/// sorted, disjoint intervals covering them, which are the same for every such order;
/// `scratch` is working space. [`LiveSchedule::finish`] does this for each author.
pub(crate) fn merge_sorted(
    intervals: impl IntoIterator<Item = (i64, i64)>,
    scratch: &mut Vec<(i64, i64)>,
) -> Vec<(i64, i64)> {
    scratch.clear();
    for (s, e) in intervals {
        match scratch.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => scratch.push((s, e)),
        }
    }
    scratch.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_answers_at_the_edges() {
        let mut s = LiveSchedule::new(1);
        s.add(AuthorId(0), 50, 40);
        s.add(AuthorId(0), 0, 10);
        s.add(AuthorId(0), 10, 20);
        s.finish();
        assert_eq!(s.intervals(AuthorId(0)), &[(0, 20), (40, 50)]);
        for (t, live) in [(-1, false), (0, true), (20, true), (21, false), (40, true)] {
            assert_eq!(s.is_live(AuthorId(0), t), live, "t = {t}");
        }
        assert_eq!(s.n_live(45), 1);
        assert!(!s.is_live(AuthorId(7), 45));
    }

    #[test]
    fn merged_lists_equal_added_then_finished() {
        let lists = [
            vec![(40, 50), (0, 10), (10, 20)],
            vec![],
            vec![(5, 6), (7, 7), (1, 2)],
        ];
        let mut added = LiveSchedule::new(3);
        for (a, list) in lists.iter().enumerate() {
            for &(s, e) in list {
                added.add(AuthorId(a as u32), s, e);
            }
        }
        added.finish();
        let mut scratch = Vec::new();
        let merged = lists
            .into_iter()
            .map(|mut l| {
                // Ties in start in either order.
                l.sort_by_key(|&(s, e)| (s, -e));
                merge_sorted(l, &mut scratch)
            })
            .collect();
        assert_eq!(LiveSchedule::from_merged(merged), added);
    }
}
