//! Leak-free evaluation splits.
//!
//! Two protocols, both returning a [`Split`]: the events a model may train on, and the
//! validation and test [`Target`]s, each with the history a model may see for it.
//!
//! * [`Split::leave_last_out`]: per user, the last tip (in time order) is the test target,
//!   the one before it the validation target, the rest are training events. Users with
//!   fewer than 3 tips stay in train only and have no target.
//! * [`Split::by_time`]: one global clock; events with `t < t1` train, `t1 <= t < t2`
//!   are validation targets, `t >= t2` test targets.
//!
//! Leak-freedom: a target's history is a prefix of its user's time-ordered events that
//! ends before the target, so neither the target nor anything after it is ever seen. In
//! leave-last-out the history is every earlier event of the user (for the test target
//! that includes the validation event, as in the usual sequential protocol). In the time
//! split the history is cut at the split boundary: events before `t1` for validation
//! targets and before `t2` for test targets, so no target sees another target of its own
//! window. A target is [`TargetKind::Repeat`] if its author occurs in its history, else
//! [`TargetKind::New`].

use std::ops::Range;

use serde::Serialize;

use crate::dataset::Dataset;
use crate::error::{CoreError, Result};
use crate::event::TipEvent;
use crate::ids::{AuthorId, UserId};

/// Whether the user had tipped the target author before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The author is in the target's history.
    Repeat,
    /// The author is not in the target's history.
    New,
}

/// One evaluation target: an event to predict, and what may be seen when predicting it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Target {
    /// The user.
    pub user: UserId,
    /// The author to rank high.
    pub author: AuthorId,
    /// Index of the target event in [`Dataset::events`].
    pub event: usize,
    /// When the target tip happened.
    pub timestamp_ms: i64,
    /// Index range in [`Dataset::events`] of the history a model may see: a prefix of the
    /// user's events, ending before the target.
    pub history: Range<usize>,
    /// Repeat or new.
    pub kind: TargetKind,
}

impl Target {
    /// The history events, oldest first.
    pub fn history<'d>(&self, dataset: &'d Dataset) -> &'d [TipEvent] {
        &dataset.events()[self.history.clone()]
    }

    /// The distinct authors of the history, sorted: the items to exclude in the "new
    /// authors" protocol.
    pub fn history_authors(&self, dataset: &Dataset) -> Vec<AuthorId> {
        let mut a: Vec<AuthorId> = self.history(dataset).iter().map(|e| e.author).collect();
        a.sort_unstable();
        a.dedup();
        a
    }
}

/// Training events plus validation and test targets.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Split {
    /// Indices into [`Dataset::events`] of the training events, ascending.
    pub train: Vec<usize>,
    /// Validation targets, by user then time.
    pub valid: Vec<Target>,
    /// Test targets, by user then time.
    pub test: Vec<Target>,
}

/// Counts of a split, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SplitSizes {
    /// Training events.
    pub train: usize,
    /// Validation targets.
    pub valid: usize,
    /// Test targets.
    pub test: usize,
}

impl Split {
    /// Per-user leave-last-out (see the module docs).
    ///
    /// ```
    /// use mspa_core::{Author, DatasetBuilder, ExternalId, Split};
    /// let mut b = DatasetBuilder::default();
    /// let a = b.add_author(Author::bare(ExternalId::Int(1))).unwrap();
    /// let u = b.user(ExternalId::Int(9));
    /// for t in 0..4 { b.push_event(u, a, 1.0, t); }
    /// let ds = b.build(None);
    /// let split = Split::leave_last_out(&ds);
    /// assert_eq!(split.train, vec![0, 1]);
    /// assert_eq!(split.test[0].history, 0..3);
    /// ```
    pub fn leave_last_out(dataset: &Dataset) -> Split {
        let mut split = Split::default();
        for user in dataset.users() {
            let range = dataset.user_range(user);
            if range.len() < 3 {
                split.train.extend(range);
                continue;
            }
            let test = range.end - 1;
            let valid = range.end - 2;
            split.train.extend(range.start..valid);
            split
                .valid
                .push(make_target(dataset, user, valid, range.start..valid));
            split
                .test
                .push(make_target(dataset, user, test, range.start..test));
        }
        split
    }

    /// Global time split at `t1 <= t2` (milliseconds; see the module docs).
    pub fn by_time(dataset: &Dataset, t1: i64, t2: i64) -> Result<Split> {
        if t1 > t2 {
            return Err(CoreError::InvalidArgument(format!(
                "time split needs t1 <= t2, got t1 = {t1}, t2 = {t2}"
            )));
        }
        let mut split = Split::default();
        for user in dataset.users() {
            let range = dataset.user_range(user);
            let events = dataset.user_events(user);
            let before = |t: i64| range.start + events.partition_point(|e| e.timestamp_ms < t);
            let (end_train, end_valid) = (before(t1), before(t2));
            split.train.extend(range.start..end_train);
            for i in end_train..end_valid {
                split
                    .valid
                    .push(make_target(dataset, user, i, range.start..end_train));
            }
            for i in end_valid..range.end {
                split
                    .test
                    .push(make_target(dataset, user, i, range.start..end_valid));
            }
        }
        Ok(split)
    }

    /// Global time split whose boundaries are the timestamps at the given fractions of
    /// all events (e.g. 0.8 and 0.9), so about 80 % of events train.
    pub fn by_time_fractions(dataset: &Dataset, f1: f64, f2: f64) -> Result<Split> {
        if !(0.0..=1.0).contains(&f1) || !(0.0..=1.0).contains(&f2) || f1 > f2 {
            return Err(CoreError::InvalidArgument(format!(
                "time split fractions need 0 <= f1 <= f2 <= 1, got {f1} and {f2}"
            )));
        }
        let mut times: Vec<i64> = dataset.events().iter().map(|e| e.timestamp_ms).collect();
        times.sort_unstable();
        let at = |f: f64| -> i64 {
            if times.is_empty() {
                return 0;
            }
            let i = ((times.len() as f64) * f).floor() as usize;
            times.get(i).copied().unwrap_or(i64::MAX)
        };
        Split::by_time(dataset, at(f1), at(f2))
    }

    /// How many training events and targets the split has.
    pub fn sizes(&self) -> SplitSizes {
        SplitSizes {
            train: self.train.len(),
            valid: self.valid.len(),
            test: self.test.len(),
        }
    }
}

fn make_target(dataset: &Dataset, user: UserId, event: usize, history: Range<usize>) -> Target {
    let e = dataset.events()[event];
    let repeat = dataset.events()[history.clone()]
        .iter()
        .any(|h| h.author == e.author);
    Target {
        user,
        author: e.author,
        event,
        timestamp_ms: e.timestamp_ms,
        history,
        kind: if repeat {
            TargetKind::Repeat
        } else {
            TargetKind::New
        },
    }
}
