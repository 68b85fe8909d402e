//! The tipping tuple of the template composer: how often and how generously a user tips,
//! read off the history and bucketed by thresholds learned from the data.
//!
//! A history's rate is its tips per week, `n / max(T - t_first, min_span)` (the `n` tips
//! fall in `(t_first, T]` once the tip at `T` is counted); its generosity is the median
//! amount divided by `generosity_scale`. The slot values are taken in schema order, lowest
//! first. [`TippingRule::learn_thresholds`] fills thresholds that are not given: from
//! teacher examples, each boundary where it misclassifies the fewest examples; without
//! teacher labels, the quantiles of the histories (equal shares per value).

use serde::{Deserialize, Serialize};

use mspa_core::{DAY_MS, TipEvent};

use crate::error::{ComposerError, Result};
use crate::schema::{FieldKind, PreferenceSchema};

/// How the tipping tuple is read off the tips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TippingRule {
    /// The schema field (a tuple of frequency and generosity), default `tipping`.
    pub field: String,
    /// Tips-per-week thresholds between consecutive frequency values; empty (the
    /// default): learned by [`TippingRule::learn_thresholds`].
    pub frequency_thresholds: Vec<f64>,
    /// Thresholds between consecutive generosity values on `median / generosity_scale`;
    /// empty (the default): learned.
    pub generosity_thresholds: Vec<f64>,
    /// The shortest time span, in days, a tip rate is measured over (default 3.5), so a
    /// history of one or two close tips does not read as a huge rate.
    pub min_span_days: f64,
    /// The median tip is divided by this before bucketing (default 1.0).
    pub generosity_scale: f64,
}

impl Default for TippingRule {
    fn default() -> Self {
        TippingRule {
            field: "tipping".into(),
            frequency_thresholds: Vec::new(),
            generosity_thresholds: Vec::new(),
            min_span_days: 3.5,
            generosity_scale: 1.0,
        }
    }
}

/// What the rule reads off one history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct TippingStats {
    /// Tips per week.
    pub rate: f64,
    /// The median amount (finite amounts only; 0 without any).
    pub median: f64,
    /// `median / generosity_scale`.
    pub generosity: f64,
}

/// Index of the bucket of `x` between ascending `thresholds`.
pub(super) fn bucket(x: f64, thresholds: &[f64]) -> usize {
    thresholds.iter().take_while(|&&t| x >= t).count()
}

impl TippingRule {
    /// The rate and generosity of the history `tips` composed at `at_ms`.
    pub(super) fn stats(&self, tips: &[TipEvent], at_ms: i64) -> TippingStats {
        let first = tips.iter().map(|e| e.timestamp_ms).min().unwrap_or(at_ms);
        let span_ms = ((at_ms - first).max(0) as f64).max(self.min_span_days * DAY_MS);
        let rate = tips.len() as f64 / (span_ms / (7.0 * DAY_MS));
        let mut amounts: Vec<f64> = tips
            .iter()
            .map(|e| e.amount)
            .filter(|a| a.is_finite())
            .collect();
        amounts.sort_by(f64::total_cmp);
        let n = amounts.len();
        let median = match n {
            0 => 0.0,
            _ if n % 2 == 1 => amounts[n / 2],
            _ => 0.5 * (amounts[n / 2 - 1] + amounts[n / 2]),
        };
        TippingStats {
            rate,
            median,
            generosity: median / self.generosity_scale,
        }
    }

    /// The two slot vocabularies of the rule's field in `schema`, with errors that name
    /// the setting at fault.
    pub(super) fn slots<'s>(
        &self,
        schema: &'s PreferenceSchema,
    ) -> Result<(usize, &'s [Vec<String>])> {
        let k = schema.field_index(&self.field).ok_or_else(|| {
            ComposerError::config(
                "tipping.field",
                format!("the schema has no field `{}`", self.field),
            )
        })?;
        let FieldKind::Tuple { slots } = &schema.fields[k].kind else {
            return Err(ComposerError::config(
                "tipping.field",
                format!("`{}` is not a tuple", self.field),
            ));
        };
        if slots.len() != 2 {
            return Err(ComposerError::config(
                "tipping.field",
                format!(
                    "`{}` must have two slots (frequency, generosity)",
                    self.field
                ),
            ));
        }
        Ok((k, slots))
    }

    /// Checks the rule against `schema` (thresholds complete, finite and increasing;
    /// positive span and scale) and returns the index of its field.
    pub(super) fn validate(&self, schema: &PreferenceSchema) -> Result<usize> {
        let (k, slots) = self.slots(schema)?;
        for (name, th, slot) in [
            (
                "tipping.frequency_thresholds",
                &self.frequency_thresholds,
                &slots[0],
            ),
            (
                "tipping.generosity_thresholds",
                &self.generosity_thresholds,
                &slots[1],
            ),
        ] {
            if th.len() + 1 != slot.len() {
                return Err(ComposerError::config(
                    name,
                    format!(
                        "{} thresholds for {} values (need one fewer)",
                        th.len(),
                        slot.len()
                    ),
                ));
            }
            if th.iter().any(|t| !t.is_finite()) || th.windows(2).any(|w| w[0] >= w[1]) {
                return Err(ComposerError::config(name, "must be finite and increasing"));
            }
        }
        if !(self.min_span_days.is_finite() && self.min_span_days > 0.0) {
            return Err(ComposerError::config(
                "tipping.min_span_days",
                "must be positive",
            ));
        }
        if !(self.generosity_scale.is_finite() && self.generosity_scale > 0.0) {
            return Err(ComposerError::config(
                "tipping.generosity_scale",
                "must be positive",
            ));
        }
        Ok(k)
    }

    /// Fills the thresholds that are empty from `histories` (`(tips, at_ms)` of each) and,
    /// where given, the teacher's tuple for each (`[frequency, generosity]`, `None` for a
    /// history without a teacher text): per slot, the boundaries that misclassify the
    /// fewest labelled histories, or the quantiles of all histories when none is labelled.
    pub fn learn_thresholds(
        &mut self,
        schema: &PreferenceSchema,
        histories: &[(&[TipEvent], i64)],
        labels: &[Option<[String; 2]>],
    ) -> Result<()> {
        if labels.len() != histories.len() {
            return Err(ComposerError::data(format!(
                "{} tipping labels for {} histories",
                labels.len(),
                histories.len()
            )));
        }
        let (_, slots) = self.slots(schema)?;
        let stats: Vec<Option<TippingStats>> = histories
            .iter()
            .map(|(tips, at)| (!tips.is_empty()).then(|| self.stats(tips, *at)))
            .collect();
        for s in 0..2 {
            let values = &slots[s];
            let target = if s == 0 {
                &self.frequency_thresholds
            } else {
                &self.generosity_thresholds
            };
            if !target.is_empty() {
                continue;
            }
            let mut xs: Vec<(f64, Option<usize>)> = Vec::new();
            for (st, label) in stats.iter().zip(labels) {
                let Some(st) = st else { continue };
                let x = if s == 0 { st.rate } else { st.generosity };
                if !x.is_finite() {
                    continue;
                }
                let class = label
                    .as_ref()
                    .and_then(|l| values.iter().position(|v| *v == l[s]));
                xs.push((x, class));
            }
            let learned = boundaries(&mut xs, values.len());
            if s == 0 {
                self.frequency_thresholds = learned;
            } else {
                self.generosity_thresholds = learned;
            }
        }
        Ok(())
    }
}

/// `n_classes - 1` increasing thresholds on `xs`: each boundary `j` where the fewest
/// labelled points fall on the wrong side of "class >= j"; the `j / n_classes` quantiles
/// when no point is labelled.
fn boundaries(xs: &mut [(f64, Option<usize>)], n_classes: usize) -> Vec<f64> {
    xs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let labelled: Vec<(f64, usize)> = xs.iter().filter_map(|&(x, c)| Some((x, c?))).collect();
    let mut out: Vec<f64> = Vec::with_capacity(n_classes.saturating_sub(1));
    for j in 1..n_classes {
        let t = if labelled.is_empty() {
            quantile(xs, j as f64 / n_classes as f64)
        } else {
            best_cut(&labelled, j)
        };
        // Strictly increasing, whatever the data.
        let t = match out.last() {
            Some(&prev) if t <= prev => prev + prev.abs().max(1.0) * 1e-6,
            _ => t,
        };
        out.push(t);
    }
    out
}

/// The threshold on sorted `labelled` points that misclassifies the fewest as "class >=
/// j" above it (the midpoint between the two points it falls between).
fn best_cut(labelled: &[(f64, usize)], j: usize) -> f64 {
    // Cutting before point i: errors = high classes below + low classes from i on.
    let low_total = labelled.iter().filter(|p| p.1 < j).count();
    let (mut high_below, mut low_below) = (0usize, 0usize);
    let mut best = (low_total, 0usize);
    for i in 1..=labelled.len() {
        if labelled[i - 1].1 >= j {
            high_below += 1;
        } else {
            low_below += 1;
        }
        let errors = high_below + (low_total - low_below);
        if errors < best.0 && (i == labelled.len() || labelled[i].0 > labelled[i - 1].0) {
            best = (errors, i);
        }
    }
    let i = best.1;
    match i {
        0 => labelled.first().map_or(0.0, |p| p.0),
        _ if i == labelled.len() => labelled[i - 1].0 + 1e-9,
        _ => 0.5 * (labelled[i - 1].0 + labelled[i].0),
    }
}

/// The `q` quantile of sorted points (0 when there are none).
fn quantile(sorted: &[(f64, Option<usize>)], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo].0 + (pos - lo as f64) * (sorted[hi].0 - sorted[lo].0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_separate_labelled_classes_and_quantiles_split_unlabelled_ones() {
        let mut xs: Vec<(f64, Option<usize>)> = [1.0, 1.5, 2.5, 3.0, 6.0, 7.0]
            .iter()
            .zip([0, 0, 1, 1, 2, 2])
            .map(|(&x, c)| (x, Some(c)))
            .collect();
        assert_eq!(boundaries(&mut xs, 3), vec![2.0, 4.5]);
        let mut plain: Vec<(f64, Option<usize>)> = (0..=10).map(|i| (i as f64, None)).collect();
        let t = boundaries(&mut plain, 2);
        assert_eq!(t, vec![5.0]);
        assert_eq!(bucket(4.9, &t), 0);
        assert_eq!(bucket(5.0, &t), 1);
    }
}
