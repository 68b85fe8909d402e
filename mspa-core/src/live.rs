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
///
/// Stored as one list of intervals grouped by author with a row pointer, so that a
/// schedule of a hundred thousand streamers is three allocations, not one per streamer.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSchedule {
    /// Where each author's intervals start in `merged` (`n_authors + 1` entries).
    offsets: Vec<usize>,
    /// The finished intervals, grouped by author.
    merged: Vec<(i64, i64)>,
    /// Intervals added since the last [`LiveSchedule::finish`]: author, start, end.
    pending: Vec<(u32, i64, i64)>,
}

impl Default for LiveSchedule {
    fn default() -> Self {
        LiveSchedule::new(0)
    }
}

impl LiveSchedule {
    /// An empty schedule for `n_authors` authors.
    pub fn new(n_authors: usize) -> Self {
        LiveSchedule {
            offsets: vec![0; n_authors + 1],
            merged: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Records that `author` was live from `start_ms` to `end_ms` (inclusive; swapped when
    /// given in the wrong order). Call [`LiveSchedule::finish`] before querying.
    pub fn add(&mut self, author: AuthorId, start_ms: i64, end_ms: i64) {
        self.resize(author.index() + 1);
        self.pending
            .push((author.0, start_ms.min(end_ms), start_ms.max(end_ms)));
    }

    /// Sorts and merges each author's intervals.
    pub fn finish(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.pending);
        for a in 0..self.n_authors() {
            let own = &self.merged[self.offsets[a]..self.offsets[a + 1]];
            all.extend(own.iter().map(|&(s, e)| (a as u32, s, e)));
        }
        all.sort_unstable();
        let n = self.n_authors();
        self.merged.clear();
        let mut scratch = Vec::new();
        let mut rest = &all[..];
        for a in 0..n {
            let len = rest.partition_point(|&(author, ..)| author as usize == a);
            let (own, tail) = rest.split_at(len);
            let merged = merge_sorted(own.iter().map(|&(_, s, e)| (s, e)), &mut scratch);
            self.merged.extend_from_slice(merged);
            self.offsets[a + 1] = self.merged.len();
            rest = tail;
        }
    }

    /// A finished schedule from each author's intervals as [`merge_sorted`] leaves them,
    /// grouped by author, and the row pointer of the groups (`n_authors + 1` entries).
    pub(crate) fn from_grouped(offsets: Vec<usize>, merged: Vec<(i64, i64)>) -> Self {
        debug_assert_eq!(offsets.last(), Some(&merged.len()));
        LiveSchedule {
            offsets,
            merged,
            pending: Vec::new(),
        }
    }

    /// Makes room for `n_authors` authors (authors added after the last interval).
    pub(crate) fn resize(&mut self, n_authors: usize) {
        if self.n_authors() < n_authors {
            let end = self.merged.len();
            self.offsets.resize(n_authors + 1, end);
        }
    }

    /// The number of authors the schedule has room for.
    fn n_authors(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether `author` was live at `at_ms`.
    pub fn is_live(&self, author: AuthorId, at_ms: i64) -> bool {
        let list = self.intervals(author);
        let i = list.partition_point(|&(s, _)| s <= at_ms);
        i > 0 && list[i - 1].1 >= at_ms
    }

    /// The merged intervals of `author`.
    pub fn intervals(&self, author: AuthorId) -> &[(i64, i64)] {
        let a = author.index();
        match self.offsets.get(a..a + 2) {
            Some(&[start, end]) => &self.merged[start..end],
            _ => &[],
        }
    }

    /// The number of authors live at `at_ms`.
    pub fn n_live(&self, at_ms: i64) -> usize {
        (0..self.n_authors())
            .filter(|&a| self.is_live(AuthorId(a as u32), at_ms))
            .count()
    }
}

/// Merges intervals ordered by start (those with equal starts in any order) into the
/// sorted, disjoint intervals covering them, which are the same for every such order,
/// held in `scratch`. [`LiveSchedule::finish`] does this for each author.
pub(crate) fn merge_sorted(
    intervals: impl IntoIterator<Item = (i64, i64)>,
    scratch: &mut Vec<(i64, i64)>,
) -> &[(i64, i64)] {
    scratch.clear();
    for (s, e) in intervals {
        match scratch.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => scratch.push((s, e)),
        }
    }
    scratch
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
        let (mut offsets, mut merged) = (vec![0], Vec::new());
        for mut l in lists {
            // Ties in start in either order.
            l.sort_by_key(|&(s, e)| (s, -e));
            merged.extend_from_slice(merge_sorted(l, &mut scratch));
            offsets.push(merged.len());
        }
        assert_eq!(LiveSchedule::from_grouped(offsets, merged), added);
    }

    #[test]
    fn intervals_added_after_finishing_merge_with_the_earlier_ones() {
        let mut s = LiveSchedule::default();
        s.add(AuthorId(1), 0, 10);
        s.finish();
        s.add(AuthorId(1), 5, 30);
        s.add(AuthorId(3), 7, 8);
        s.finish();
        assert_eq!(s.intervals(AuthorId(1)), &[(0, 30)]);
        assert_eq!(s.intervals(AuthorId(3)), &[(7, 8)]);
        assert_eq!(s.intervals(AuthorId(0)), &[]);
        assert_eq!(s.n_live(7), 2);
    }
}
