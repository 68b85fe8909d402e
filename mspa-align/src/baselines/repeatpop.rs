//! RepeatPop: the user's own authors first, ranked by recency- and amount-weighted tips,
//! then every other author by popularity. No learning: the honest floor for data where
//! people mostly re-tip the authors they already tip (live streaming; compare the
//! repeat-consumption analysis of LiveRec, Rappaz et al. 2021).
//!
//! For a query at time `t`, an author `a` the user tipped before gets
//! `1 + ln(1 + r(a))` with
//!
//! ```text
//! r(a) = sum over the user's tips to a of  amount^e * 0.5^((t - t_tip) / half_life)
//! ```
//!
//! (a small floor keeps a zero amount counting), and every other author gets its share of
//! the training tips, in `[0, 1)`, so the user's own authors always rank above the rest.
//! The half-life and the amount exponent `e` are the only hyper-parameters: [`RepeatPop::fit`]
//! tries every combination of [`RepeatPopConfig`]'s grids and keeps the one with the best
//! validation NDCG@10.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use mspa_core::{AuthorId, DAY_MS, Dataset, Split, TipEvent};
use mspa_metrics::Protocol;

use crate::data::train_author_counts;
use crate::error::{AlignError, Result};
use crate::fit::{FitRecommender, Progress, TrainingData};
use crate::recommender::{Query, Recommender, check_out_len, validation_ndcg10};

/// The grids [`RepeatPop::fit`] searches on the validation targets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RepeatPopConfig {
    /// Half-lives of a tip's weight, in days. Default 0.5, 2, 7, 28 and 10^6 (no decay).
    pub half_lives_days: Vec<f64>,
    /// Exponents of the tip amount in a tip's weight (0: every tip counts the same).
    /// Default 0, 0.5 and 1.
    pub amount_exponents: Vec<f64>,
    /// Protocol of the validation NDCG@10. Default repeats allowed.
    pub protocol: Protocol,
}

impl Default for RepeatPopConfig {
    fn default() -> Self {
        RepeatPopConfig {
            half_lives_days: vec![0.5, 2.0, 7.0, 28.0, 1e6],
            amount_exponents: vec![0.0, 0.5, 1.0],
            protocol: Protocol::RepeatsAllowed,
        }
    }
}

/// The chosen weighting of a fitted [`RepeatPop`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepeatWeighting {
    /// Half-life of a tip's weight, in days.
    pub half_life_days: f64,
    /// Exponent of the tip amount.
    pub amount_exponent: f64,
}

/// The repeat-then-popularity rule.
#[derive(Clone, Debug)]
pub struct RepeatPop {
    /// Training tip share of every author, in `[0, 1)`.
    popularity: Vec<f32>,
    weighting: RepeatWeighting,
    /// Validation NDCG@10 of every weighting tried, in grid order.
    tried: Vec<(RepeatWeighting, f64)>,
}

impl RepeatPop {
    /// The rule with a given weighting and the popularity of `split`'s training tips.
    pub fn new(dataset: &Dataset, split: &Split, weighting: RepeatWeighting) -> RepeatPop {
        let counts = train_author_counts(dataset, split);
        let total = counts.iter().map(|&c| f64::from(c)).sum::<f64>();
        RepeatPop {
            popularity: counts
                .iter()
                .map(|&c| (f64::from(c) / (total + 1.0)) as f32)
                .collect(),
            weighting,
            tried: Vec::new(),
        }
    }

    /// Tries every weighting of the grids and keeps the best by NDCG@10 on
    /// `split.valid` (the first of equals; the first weighting when there are no
    /// validation targets).
    pub fn fit(dataset: &Dataset, split: &Split, config: &RepeatPopConfig) -> Result<RepeatPop> {
        if config.half_lives_days.is_empty() || config.amount_exponents.is_empty() {
            return Err(AlignError::config(
                "half_lives_days",
                "both grids need at least one value",
            ));
        }
        if let Some(h) = config
            .half_lives_days
            .iter()
            .find(|h| !(h.is_finite() && **h > 0.0))
        {
            return Err(AlignError::config(
                "half_lives_days",
                format!("must be finite and > 0, got {h}"),
            ));
        }
        if let Some(e) = config
            .amount_exponents
            .iter()
            .find(|e| !(e.is_finite() && **e >= 0.0))
        {
            return Err(AlignError::config(
                "amount_exponents",
                format!("must be finite and >= 0, got {e}"),
            ));
        }
        let mut best: Option<RepeatPop> = None;
        let mut tried = Vec::new();
        for &half_life_days in &config.half_lives_days {
            for &amount_exponent in &config.amount_exponents {
                let weighting = RepeatWeighting {
                    half_life_days,
                    amount_exponent,
                };
                let rule = RepeatPop::new(dataset, split, weighting);
                let score = validation_ndcg10(&rule, dataset, &split.valid, config.protocol)?;
                let better = tried.iter().all(|(_, s): &(_, f64)| score > *s);
                tried.push((weighting, score));
                if better {
                    best = Some(rule);
                }
            }
        }
        let mut best = best.expect("the grids are not empty");
        best.tried = tried;
        Ok(best)
    }

    /// The weighting in use.
    pub fn weighting(&self) -> RepeatWeighting {
        self.weighting
    }

    /// Validation NDCG@10 of every weighting [`RepeatPop::fit`] tried.
    pub fn tried(&self) -> &[(RepeatWeighting, f64)] {
        &self.tried
    }

    /// `r(a)` of every author in `history` at `at_ms` (see the module docs).
    fn repeat_weights(&self, history: &[TipEvent], at_ms: i64) -> Vec<(AuthorId, f64)> {
        let half_life_ms = self.weighting.half_life_days * DAY_MS;
        let mut weights: Vec<(AuthorId, f64)> = Vec::new();
        for tip in history {
            let age = (at_ms - tip.timestamp_ms).max(0) as f64;
            let amount = tip.amount.max(1e-6).powf(self.weighting.amount_exponent);
            let w = amount * 0.5f64.powf(age / half_life_ms);
            match weights.iter_mut().find(|(a, _)| *a == tip.author) {
                Some((_, total)) => *total += w,
                None => weights.push((tip.author, w)),
            }
        }
        weights
    }
}

impl FitRecommender for RepeatPopConfig {
    type Model = RepeatPop;

    /// [`RepeatPop::fit`]: no epochs, nothing reported, the device unused.
    fn fit(&self, data: &TrainingData, _: &Device, _: Progress) -> Result<RepeatPop> {
        RepeatPop::fit(data.dataset, data.split, self)
    }
}

impl Recommender for RepeatPop {
    fn name(&self) -> &str {
        "RepeatPop"
    }

    fn score_batch(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()> {
        let n = self.popularity.len();
        check_out_len(queries.len(), out.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        for (q, row) in queries.iter().zip(out.chunks_mut(n)) {
            row.copy_from_slice(&self.popularity);
            for (author, r) in self.repeat_weights(q.history, q.at_ms) {
                if let Some(s) = row.get_mut(author.index()) {
                    *s = (1.0 + r.ln_1p()) as f32;
                }
            }
        }
        Ok(())
    }
}
