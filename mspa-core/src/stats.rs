//! Summary statistics of a dataset, as `dataset_stats` prints them.

use serde::Serialize;

use crate::dataset::Dataset;
use crate::split::{Split, SplitSizes};

/// Minimum, median and maximum of a count.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CountSummary {
    /// Smallest value.
    pub min: usize,
    /// Median (the mean of the two middle values for an even count).
    pub median: f64,
    /// Largest value.
    pub max: usize,
    /// Mean.
    pub mean: f64,
}

/// Distribution of tip amounts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AmountSummary {
    /// Smallest amount.
    pub min: f64,
    /// Median amount.
    pub median: f64,
    /// Mean amount.
    pub mean: f64,
    /// Largest amount.
    pub max: f64,
    /// Sum of all amounts.
    pub total: f64,
}

/// What `dataset_stats` reports. Timestamps are milliseconds since the Unix epoch; the
/// split is per-user leave-last-out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetStats {
    /// Users (all have at least one event).
    pub users: usize,
    /// Distinct authors that have at least one event.
    pub authors: usize,
    /// All authors the dataset defines, with or without events.
    pub authors_defined: usize,
    /// Events.
    pub events: usize,
    /// Earliest event time (null when there are no events).
    pub first_timestamp: Option<i64>,
    /// Latest event time (null when there are no events).
    pub last_timestamp: Option<i64>,
    /// `last - first`, in days.
    pub time_span_days: f64,
    /// Events per user.
    pub events_per_user: Option<CountSummary>,
    /// Sum of all amounts (0 when there are no events).
    pub total_amount: f64,
    /// Tip amounts.
    pub amount: Option<AmountSummary>,
    /// Share of events whose author the user had tipped before.
    pub repeat_share: f64,
    /// Leave-last-out split sizes (events).
    pub split: SplitSizes,
}

impl DatasetStats {
    /// Computes the statistics (and the leave-last-out split) of a dataset.
    pub fn compute(dataset: &Dataset) -> DatasetStats {
        let events = dataset.events();
        let first = events.iter().map(|e| e.timestamp_ms).min();
        let last = events.iter().map(|e| e.timestamp_ms).max();
        let mut per_user: Vec<usize> = dataset
            .users()
            .map(|u| dataset.user_range(u).len())
            .collect();
        per_user.sort_unstable();
        let events_per_user = (!per_user.is_empty()).then(|| CountSummary {
            min: per_user[0],
            median: median_sorted(&per_user.iter().map(|&c| c as f64).collect::<Vec<_>>()),
            max: *per_user.last().unwrap(),
            mean: events.len() as f64 / per_user.len() as f64,
        });
        let mut amounts: Vec<f64> = events.iter().map(|e| e.amount).collect();
        amounts.sort_by(f64::total_cmp);
        let total: f64 = amounts.iter().sum();
        let amount = (!amounts.is_empty()).then(|| AmountSummary {
            min: amounts[0],
            median: median_sorted(&amounts),
            mean: total / amounts.len() as f64,
            max: *amounts.last().unwrap(),
            total,
        });
        let mut authors_with_events = vec![false; dataset.n_authors()];
        let mut repeats = 0usize;
        for user in dataset.users() {
            let mut seen = std::collections::HashSet::new();
            for e in dataset.user_events(user) {
                authors_with_events[e.author.index()] = true;
                if !seen.insert(e.author) {
                    repeats += 1;
                }
            }
        }
        DatasetStats {
            users: dataset.n_users(),
            authors: authors_with_events.iter().filter(|&&b| b).count(),
            authors_defined: dataset.n_authors(),
            events: events.len(),
            first_timestamp: first,
            last_timestamp: last,
            time_span_days: match (first, last) {
                (Some(f), Some(l)) => (l - f) as f64 / crate::DAY_MS,
                _ => 0.0,
            },
            events_per_user,
            total_amount: total,
            amount,
            repeat_share: if events.is_empty() {
                0.0
            } else {
                repeats as f64 / events.len() as f64
            },
            split: Split::leave_last_out(dataset).sizes(),
        }
    }
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
