//! Paired bootstrap confidence intervals for the difference of two models' per-user
//! metrics on the same users (Efron & Tibshirani 1993, ch. 13: the percentile interval).
//!
//! Two models evaluated on the same test users give one metric value per user each; the
//! paired difference `a_i - b_i` removes the variance shared by both (hard users are hard
//! for every model). Resampling users with replacement `resamples` times and taking the
//! 2.5th and 97.5th percentiles of the resampled mean differences gives the 95% interval.
//! An interval that excludes zero says the difference is unlikely to be noise in the
//! choice of test users (it says nothing about training noise: compare seeds for that).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::{MetricsError, Result, require};

/// A paired difference of means with its bootstrap confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PairedDifference {
    /// The observed mean of `a_i - b_i`.
    pub delta: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
    /// Number of paired values.
    pub n: usize,
}

impl PairedDifference {
    /// Whether the interval lies entirely above zero (a lies above b) or entirely below.
    pub fn significant(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }
}

/// The mean of `a_i - b_i` and its percentile bootstrap interval at `level` (e.g. 0.95)
/// from `resamples` resamples of the pairs, drawn with a ChaCha8 stream seeded by `seed`.
///
/// Errors when the slices differ in length or are empty, when `resamples` is 0, when
/// `level` is not in (0, 1) or when a value is not finite.
///
/// ```
/// use mspa_metrics::paired_bootstrap;
/// let a = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
/// let b = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
/// let d = paired_bootstrap(&a, &b, 1000, 0.95, 7).unwrap();
/// assert!((d.delta - 0.1).abs() < 1e-12);
/// assert!(d.lo > 0.09 && d.hi < 0.11 && d.significant());
/// ```
pub fn paired_bootstrap(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<PairedDifference> {
    let invalid =
        |message: String| MetricsError::InvalidInput(format!("paired bootstrap: {message}"));
    require(a.len() == b.len(), || {
        invalid(format!("{} values against {}", a.len(), b.len()))
    })?;
    require(!a.is_empty(), || invalid("no values".into()))?;
    check_settings(resamples, level, &invalid)?;
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    if let Some(i) = diffs.iter().position(|d| !d.is_finite()) {
        return Err(invalid(format!(
            "value {i} is not finite ({} vs {})",
            a[i], b[i]
        )));
    }
    let n = diffs.len();
    let delta = diffs.iter().sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| diffs[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    let (lo, hi) = percentile_interval(means, level);
    Ok(PairedDifference { delta, lo, hi, n })
}

/// The difference of the means of two independent groups with its bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GroupDifference {
    /// The observed mean of `a` minus the mean of `b`.
    pub delta: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
    /// Size of `a`.
    pub n_a: usize,
    /// Size of `b`.
    pub n_b: usize,
}

/// The mean of `a` minus the mean of `b` for two independent groups (different users,
/// say) and its percentile bootstrap interval at `level`, each group resampled with
/// replacement on its own, `resamples` times, from a ChaCha8 stream seeded by `seed`.
///
/// Errors when a group is empty, when `resamples` is 0, when `level` is not in (0, 1) or
/// when a value is not finite.
///
/// ```
/// use mspa_metrics::group_bootstrap;
/// let a = [0.6, 0.7, 0.8, 0.7];
/// let b = [0.3, 0.4, 0.3, 0.4, 0.35];
/// let d = group_bootstrap(&a, &b, 1000, 0.95, 7).unwrap();
/// assert!((d.delta - 0.35).abs() < 1e-12 && d.lo > 0.2);
/// ```
pub fn group_bootstrap(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<GroupDifference> {
    let invalid =
        |message: String| MetricsError::InvalidInput(format!("group bootstrap: {message}"));
    require(!a.is_empty() && !b.is_empty(), || {
        invalid(format!("groups of {} and {} values", a.len(), b.len()))
    })?;
    check_settings(resamples, level, &invalid)?;
    if let Some(v) = a.iter().chain(b).find(|v| !v.is_finite()) {
        return Err(invalid(format!("value {v} is not finite")));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut resample = |v: &[f64]| {
        (0..v.len())
            .map(|_| v[rng.random_range(0..v.len())])
            .sum::<f64>()
            / v.len() as f64
    };
    let deltas: Vec<f64> = (0..resamples).map(|_| resample(a) - resample(b)).collect();
    let (lo, hi) = percentile_interval(deltas, level);
    Ok(GroupDifference {
        delta: mean(a) - mean(b),
        lo,
        hi,
        n_a: a.len(),
        n_b: b.len(),
    })
}

/// Checks that there is at least one resample and that `level` is in (0, 1).
fn check_settings(
    resamples: usize,
    level: f64,
    invalid: impl Fn(String) -> MetricsError,
) -> Result<()> {
    require(resamples > 0, || {
        invalid("resamples must be at least 1".into())
    })?;
    require(level > 0.0 && level < 1.0, || {
        invalid(format!("level must be in (0, 1), got {level}"))
    })
}

/// The central percentile interval at `level` of bootstrap statistics.
fn percentile_interval(mut values: Vec<f64>, level: f64) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    (percentile(&values, tail), percentile(&values, 1.0 - tail))
}

/// The `q`-quantile of sorted values by linear interpolation between closest ranks
/// (numpy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_models_give_a_zero_interval() {
        let a = [0.1, 0.5, 0.0, 1.0];
        let d = paired_bootstrap(&a, &a, 200, 0.95, 1).unwrap();
        assert_eq!((d.delta, d.lo, d.hi, d.n), (0.0, 0.0, 0.0, 4));
        assert!(!d.significant());
    }

    #[test]
    fn noise_is_not_significant_and_a_real_gain_is() {
        // Differences alternate +1/-1: mean 0, wide interval around it.
        let a: Vec<f64> = (0..400).map(|i| f64::from(i % 2)).collect();
        let b: Vec<f64> = (0..400).map(|i| f64::from((i + 1) % 2)).collect();
        let d = paired_bootstrap(&a, &b, 1000, 0.95, 3).unwrap();
        assert!(d.lo < 0.0 && d.hi > 0.0 && !d.significant(), "{d:?}");
        // Standard error of the mean of +-1 over 400 users is 0.05: the interval is
        // about +-0.098.
        assert!((d.hi - d.lo - 0.196).abs() < 0.03, "{d:?}");
        // A gain on one user in four.
        let c: Vec<f64> = (0..400)
            .map(|i| if i % 4 == 0 { 1.0 } else { 0.0 })
            .collect();
        let z = vec![0.0; 400];
        let g = paired_bootstrap(&c, &z, 1000, 0.95, 3).unwrap();
        assert!(g.significant() && g.lo > 0.18 && g.hi < 0.32, "{g:?}");
        // Seeded: the same seed gives the same interval, another seed a close one.
        assert_eq!(paired_bootstrap(&c, &z, 1000, 0.95, 3).unwrap(), g);
        let other = paired_bootstrap(&c, &z, 1000, 0.95, 4).unwrap();
        assert!((other.lo - g.lo).abs() < 0.02);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(paired_bootstrap(&[1.0], &[1.0, 2.0], 10, 0.95, 0).is_err());
        assert!(paired_bootstrap(&[], &[], 10, 0.95, 0).is_err());
        assert!(paired_bootstrap(&[1.0], &[1.0], 0, 0.95, 0).is_err());
        assert!(paired_bootstrap(&[1.0], &[1.0], 10, 1.0, 0).is_err());
        let e = paired_bootstrap(&[f64::NAN], &[1.0], 10, 0.95, 0).unwrap_err();
        assert!(e.to_string().contains("value 0"), "{e}");
    }
}
