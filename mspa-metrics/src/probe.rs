//! Linear probes: how much of a label a frozen feature carries, measured as the held-out
//! accuracy of a ridge classifier fitted on the other rows.
//!
//! The classifier regresses the one-hot label on the standardised feature (one ridge
//! regression per class, an intercept each) and predicts the class with the largest
//! output. Its penalty is chosen by 5-fold cross-validation on the fitting rows only, from
//! a grid of ten powers of ten, so the held-out rows judge a classifier that never saw
//! them. The solve is in whichever of the primal (`d × d`) and dual (`n × n`) forms is
//! smaller.

use crate::error::{MetricsError, Result, require};

/// Penalties tried by the cross-validation, relative to the number of fitting rows.
const PENALTIES: [f64; 10] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5];

/// Folds of the cross-validation that picks the penalty.
const FOLDS: usize = 5;

/// What a linear probe found.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ProbeScore {
    /// Accuracy on the held-out rows.
    pub accuracy: f64,
    /// Accuracy on the held-out rows of always predicting the fitting rows' most common
    /// class (what a feature that carries nothing scores).
    pub majority: f64,
    /// The penalty the cross-validation chose (per fitting row).
    pub penalty: f64,
    /// Rows the probe was fitted on.
    pub fit_rows: usize,
    /// Rows it was judged on.
    pub held_out_rows: usize,
}

/// One label to probe for: a class index below `n_classes` per row.
#[derive(Clone, Copy, Debug)]
pub struct ProbeTask<'a> {
    /// The class of each row.
    pub labels: &'a [usize],
    /// The number of classes.
    pub n_classes: usize,
}

/// Fits a ridge classifier of `labels` (class indices below `n_classes`) on the rows
/// whose `held_out` flag is false and scores it on the others.
///
/// Errors when the inputs differ in length, rows differ in width or hold a non-finite
/// value, a label is not below `n_classes`, or either side has fewer than 2 rows
/// (the fitting side needs at least [`FOLDS`]).
///
/// ```
/// use mspa_metrics::linear_probe;
/// // The label is the sign of the first coordinate; the second is noise.
/// let rows: Vec<Vec<f32>> = (0..60)
///     .map(|i| vec![if i % 2 == 0 { 1.0 } else { -1.0 }, (i % 7) as f32])
///     .collect();
/// let labels: Vec<usize> = (0..60).map(|i| i % 2).collect();
/// let held_out: Vec<bool> = (0..60).map(|i| i >= 40).collect();
/// let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
/// let p = linear_probe(&refs, &labels, 2, &held_out).unwrap();
/// assert_eq!(p.accuracy, 1.0);
/// assert_eq!(p.majority, 0.5);
/// ```
pub fn linear_probe(
    rows: &[&[f32]],
    labels: &[usize],
    n_classes: usize,
    held_out: &[bool],
) -> Result<ProbeScore> {
    let task = ProbeTask { labels, n_classes };
    let mut scores = linear_probes(rows, &[task], held_out)?;
    Ok(scores.remove(0))
}

/// [`linear_probe`] for several labels of the same rows at once: one ridge solve serves
/// every label (each still gets its own penalty from the cross-validation), so probing
/// many attributes of one feature costs about as much as probing one.
pub fn linear_probes(
    rows: &[&[f32]],
    tasks: &[ProbeTask<'_>],
    held_out: &[bool],
) -> Result<Vec<ProbeScore>> {
    let invalid = |message: String| MetricsError::InvalidInput(format!("linear probe: {message}"));
    require(rows.len() == held_out.len(), || {
        invalid(format!(
            "{} rows and {} held-out flags",
            rows.len(),
            held_out.len()
        ))
    })?;
    let d = rows.first().map_or(0, |r| r.len());
    for (i, row) in rows.iter().enumerate() {
        require(row.len() == d, || {
            invalid(format!("row {i} has {} values, row 0 has {d}", row.len()))
        })?;
        require(row.iter().all(|v| v.is_finite()), || {
            invalid(format!("row {i} holds a non-finite value"))
        })?;
    }
    for (t, task) in tasks.iter().enumerate() {
        require(task.labels.len() == rows.len(), || {
            invalid(format!(
                "{} rows, {} labels (task {t})",
                rows.len(),
                task.labels.len()
            ))
        })?;
        if let Some(i) = task.labels.iter().position(|&l| l >= task.n_classes) {
            return Err(invalid(format!(
                "label {} of row {i} is not below {} (task {t})",
                task.labels[i], task.n_classes
            )));
        }
    }
    let fit: Vec<usize> = (0..rows.len()).filter(|&i| !held_out[i]).collect();
    let test: Vec<usize> = (0..rows.len()).filter(|&i| held_out[i]).collect();
    require(fit.len() >= FOLDS && test.len() >= 2, || {
        invalid(format!(
            "{} fitting and {} held-out rows (at least {FOLDS} and 2)",
            fit.len(),
            test.len()
        ))
    })?;

    let x = standardise(rows, &fit);
    let targets = Targets::new(tasks);
    let penalties = choose_penalties(&x, &targets, &fit);
    let mut models: Vec<(f64, Ridge)> = Vec::new();
    let mut scores = Vec::with_capacity(tasks.len());
    for (t, task) in tasks.iter().enumerate() {
        let penalty = penalties[t];
        let fitted = match models.iter().position(|(p, _)| *p == penalty) {
            Some(i) => i,
            None => {
                let lambda = penalty * fit.len() as f64;
                models.push((penalty, Ridge::fit(&x, &targets, &fit, lambda)));
                models.len() - 1
            }
        };
        let model = &models[fitted].1;
        let correct = test
            .iter()
            .filter(|&&i| model.predict(&x[i], &targets, t) == task.labels[i])
            .count();
        let mut counts = vec![0usize; task.n_classes];
        for &i in &fit {
            counts[task.labels[i]] += 1;
        }
        let majority_class = (0..task.n_classes).max_by_key(|&c| (counts[c], usize::MAX - c));
        let majority = test
            .iter()
            .filter(|&&i| Some(task.labels[i]) == majority_class)
            .count();
        scores.push(ProbeScore {
            accuracy: correct as f64 / test.len() as f64,
            majority: majority as f64 / test.len() as f64,
            penalty,
            fit_rows: fit.len(),
            held_out_rows: test.len(),
        });
    }
    Ok(scores)
}

/// The one-hot targets of every task side by side: task `t` owns the columns
/// `offsets[t]..offsets[t + 1]`.
struct Targets<'a> {
    tasks: &'a [ProbeTask<'a>],
    offsets: Vec<usize>,
}

impl<'a> Targets<'a> {
    fn new(tasks: &'a [ProbeTask<'a>]) -> Self {
        let mut offsets = vec![0];
        for t in tasks {
            offsets.push(offsets[offsets.len() - 1] + t.n_classes);
        }
        Targets { tasks, offsets }
    }

    /// All columns.
    fn width(&self) -> usize {
        self.offsets[self.offsets.len() - 1]
    }

    /// The target of row `i` in column `c`.
    fn value(&self, i: usize, c: usize) -> f64 {
        let t = self.offsets.partition_point(|&o| o <= c) - 1;
        f64::from(u8::from(self.tasks[t].labels[i] == c - self.offsets[t]))
    }
}

/// The rows as f64, each column centred and scaled by the fitting rows' mean and
/// standard deviation (constant columns are only centred).
fn standardise(rows: &[&[f32]], fit: &[usize]) -> Vec<Vec<f64>> {
    let d = rows.first().map_or(0, |r| r.len());
    let n = fit.len() as f64;
    let mut mean = vec![0.0f64; d];
    for &i in fit {
        for (m, &v) in mean.iter_mut().zip(rows[i]) {
            *m += f64::from(v) / n;
        }
    }
    let mut var = vec![0.0f64; d];
    for &i in fit {
        for ((s, &v), m) in var.iter_mut().zip(rows[i]).zip(&mean) {
            *s += (f64::from(v) - m).powi(2) / n;
        }
    }
    let scale: Vec<f64> = var
        .iter()
        .map(|&v| if v > 1e-12 { 1.0 / v.sqrt() } else { 1.0 })
        .collect();
    rows.iter()
        .map(|row| {
            row.iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((&v, m), s)| (f64::from(v) - m) * s)
                .collect()
        })
        .collect()
}

/// For each task, the penalty (per fitting row) of [`PENALTIES`] with the best
/// cross-validated accuracy over the fitting rows (ties: the larger penalty).
fn choose_penalties(x: &[Vec<f64>], targets: &Targets<'_>, fit: &[usize]) -> Vec<f64> {
    let tasks = targets.tasks.len();
    let mut best: Vec<Option<(usize, f64)>> = vec![None; tasks];
    for &penalty in &PENALTIES {
        let mut correct = vec![0usize; tasks];
        for fold in 0..FOLDS {
            let rows = |outer: bool| -> Vec<usize> {
                fit.iter()
                    .enumerate()
                    .filter(|&(k, _)| (k % FOLDS == fold) == outer)
                    .map(|(_, &i)| i)
                    .collect()
            };
            let (inner, outer) = (rows(false), rows(true));
            let model = Ridge::fit(x, targets, &inner, penalty * inner.len() as f64);
            for (t, c) in correct.iter_mut().enumerate() {
                *c += outer
                    .iter()
                    .filter(|&&i| model.predict(&x[i], targets, t) == targets.tasks[t].labels[i])
                    .count();
            }
        }
        for (b, c) in best.iter_mut().zip(correct) {
            if b.is_none_or(|(bc, _)| c >= bc) {
                *b = Some((c, penalty));
            }
        }
    }
    best.into_iter()
        .map(|b| b.map_or(PENALTIES[0], |(_, penalty)| penalty))
        .collect()
}

/// A fitted one-vs-all ridge regression of every task's classes.
struct Ridge {
    /// `d × classes` weights, row-major.
    weights: Vec<f64>,
    /// Per class intercept.
    intercept: Vec<f64>,
    classes: usize,
}

impl Ridge {
    /// Ridge regression of the one-hot `targets` on the rows `use_rows` of `x` with
    /// penalty `lambda` (intercepts unpenalised: rows and targets are centred first).
    fn fit(x: &[Vec<f64>], targets: &Targets<'_>, use_rows: &[usize], lambda: f64) -> Self {
        let classes = targets.width();
        let d = x.first().map_or(0, |r| r.len());
        let n = use_rows.len();
        let mut mean_x = vec![0.0; d];
        let mut y: Vec<f64> = Vec::with_capacity(n * classes);
        for &i in use_rows {
            for (m, v) in mean_x.iter_mut().zip(&x[i]) {
                *m += v / n as f64;
            }
            y.extend((0..classes).map(|c| targets.value(i, c)));
        }
        let mut mean_y = vec![0.0; classes];
        for row in y.chunks(classes.max(1)) {
            for (m, v) in mean_y.iter_mut().zip(row) {
                *m += v / n as f64;
            }
        }
        let xc: Vec<Vec<f64>> = use_rows
            .iter()
            .map(|&i| x[i].iter().zip(&mean_x).map(|(v, m)| v - m).collect())
            .collect();
        let yc = |r: usize, c: usize| y[r * classes + c] - mean_y[c];
        let lambda = lambda.max(1e-9);
        let mut weights = vec![0.0; d * classes];
        if d <= n {
            // (XᵀX + λI) W = XᵀY.
            let mut a = vec![0.0; d * d];
            for row in &xc {
                for j in 0..d {
                    for k in 0..=j {
                        a[j * d + k] += row[j] * row[k];
                    }
                }
            }
            for j in 0..d {
                a[j * d + j] += lambda;
            }
            let mut b = vec![0.0; d * classes];
            for (r, row) in xc.iter().enumerate() {
                for c in 0..classes {
                    let y = yc(r, c);
                    for j in 0..d {
                        b[j * classes + c] += row[j] * y;
                    }
                }
            }
            cholesky_solve(&mut a, d, &mut b, classes);
            weights = b;
        } else {
            // W = Xᵀ (XXᵀ + λI)⁻¹ Y.
            let mut a = vec![0.0; n * n];
            for j in 0..n {
                for k in 0..=j {
                    a[j * n + k] = xc[j].iter().zip(&xc[k]).map(|(p, q)| p * q).sum();
                }
                a[j * n + j] += lambda;
            }
            let mut b: Vec<f64> = (0..n * classes)
                .map(|i| yc(i / classes, i % classes))
                .collect();
            cholesky_solve(&mut a, n, &mut b, classes);
            for (r, row) in xc.iter().enumerate() {
                for j in 0..d {
                    for c in 0..classes {
                        weights[j * classes + c] += row[j] * b[r * classes + c];
                    }
                }
            }
        }
        let intercept = (0..classes)
            .map(|c| {
                mean_y[c]
                    - mean_x
                        .iter()
                        .enumerate()
                        .map(|(j, m)| m * weights[j * classes + c])
                        .sum::<f64>()
            })
            .collect();
        Ridge {
            weights,
            intercept,
            classes,
        }
    }

    /// Task `t`'s class with the largest output for `row` (ties: the smaller index).
    fn predict(&self, row: &[f64], targets: &Targets<'_>, t: usize) -> usize {
        let (lo, hi) = (targets.offsets[t], targets.offsets[t + 1]);
        let mut out = self.intercept[lo..hi].to_vec();
        for (j, v) in row.iter().enumerate() {
            let w = &self.weights[j * self.classes + lo..j * self.classes + hi];
            for (o, w) in out.iter_mut().zip(w) {
                *o += v * w;
            }
        }
        (0..out.len())
            .max_by(|&a, &b| out[a].total_cmp(&out[b]).then(b.cmp(&a)))
            .unwrap_or(0)
    }
}

/// Solves `A X = B` in place (`B` becomes `X`) for a symmetric positive definite `A`
/// (`n × n`, only its lower triangle read) and `B` (`n × m`), by Cholesky.
fn cholesky_solve(a: &mut [f64], n: usize, b: &mut [f64], m: usize) {
    for j in 0..n {
        let mut diag = a[j * n + j];
        for k in 0..j {
            diag -= a[j * n + k] * a[j * n + k];
        }
        let l = diag.max(1e-12).sqrt();
        a[j * n + j] = l;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / l;
        }
    }
    for c in 0..m {
        for i in 0..n {
            let mut s = b[i * m + c];
            for k in 0..i {
                s -= a[i * n + k] * b[k * m + c];
            }
            b[i * m + c] = s / a[i * n + i];
        }
        for i in (0..n).rev() {
            let mut s = b[i * m + c];
            for k in i + 1..n {
                s -= a[k * n + i] * b[k * m + c];
            }
            b[i * m + c] = s / a[i * n + i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(rows: &[Vec<f32>]) -> Vec<&[f32]> {
        rows.iter().map(|r| r.as_slice()).collect()
    }

    /// A deterministic pseudo-random value in [-1, 1).
    fn noise(i: usize, j: usize) -> f32 {
        let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (j as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        let h = h ^ (h >> 29);
        (h % 2001) as f32 / 1000.0 - 1.0
    }

    #[test]
    fn a_feature_that_encodes_the_class_is_read_and_noise_is_not() {
        let n = 240;
        let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let held_out: Vec<bool> = (0..n).map(|i| i % 4 == 0).collect();
        // Class c shifts coordinate c; 20 noise columns.
        let signal: Vec<Vec<f32>> = (0..n)
            .map(|i| {
                (0..23)
                    .map(|j| noise(i, j) + if j == labels[i] { 3.0 } else { 0.0 })
                    .collect()
            })
            .collect();
        let p = linear_probe(&refs(&signal), &labels, 3, &held_out).unwrap();
        assert!(p.accuracy > 0.95, "{p:?}");
        assert_eq!((p.fit_rows, p.held_out_rows), (180, 60));
        let pure: Vec<Vec<f32>> = (0..n)
            .map(|i| (0..23).map(|j| noise(i, j)).collect())
            .collect();
        let q = linear_probe(&refs(&pure), &labels, 3, &held_out).unwrap();
        assert!(q.accuracy < 0.55, "{q:?}");
        assert!((q.majority - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn probing_several_labels_at_once_equals_probing_each() {
        let n = 90;
        let a: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let b: Vec<usize> = (0..n).map(|i| (i / 3) % 2).collect();
        let rows: Vec<Vec<f32>> = (0..n)
            .map(|i| {
                (0..6)
                    .map(|j| {
                        noise(i, j)
                            + if j == a[i] { 1.5 } else { 0.0 }
                            + if j == 4 + b[i] { 0.7 } else { 0.0 }
                    })
                    .collect()
            })
            .collect();
        let held: Vec<bool> = (0..n).map(|i| i % 3 == 1).collect();
        let tasks = [
            ProbeTask {
                labels: &a,
                n_classes: 3,
            },
            ProbeTask {
                labels: &b,
                n_classes: 2,
            },
        ];
        let both = linear_probes(&refs(&rows), &tasks, &held).unwrap();
        let alone = [
            linear_probe(&refs(&rows), &a, 3, &held).unwrap(),
            linear_probe(&refs(&rows), &b, 2, &held).unwrap(),
        ];
        assert_eq!(both, alone);
    }

    #[test]
    fn the_dual_form_agrees_with_the_primal_form() {
        let labels: Vec<usize> = (0..30).map(|i| i % 2).collect();
        let x: Vec<Vec<f64>> = (0..30)
            .map(|i| (0..12).map(|j| f64::from(noise(i, j))).collect())
            .collect();
        // 12 columns and 8 rows: the dual form.
        let few: Vec<usize> = (0..8).collect();
        let tasks = [ProbeTask {
            labels: &labels,
            n_classes: 2,
        }];
        let dual = Ridge::fit(&x, &Targets::new(&tasks), &few, 0.5);
        // The primal form on the same 8 rows, solved here directly.
        let primal = {
            let d = 12;
            let xs: Vec<Vec<f64>> = few.iter().map(|&i| x[i].clone()).collect();
            let mean_x: Vec<f64> = (0..d)
                .map(|j| xs.iter().map(|r| r[j]).sum::<f64>() / 8.0)
                .collect();
            let mut a = vec![0.0; d * d];
            for r in &xs {
                for j in 0..d {
                    for k in 0..d {
                        a[j * d + k] += (r[j] - mean_x[j]) * (r[k] - mean_x[k]);
                    }
                }
            }
            for j in 0..d {
                a[j * d + j] += 0.5;
            }
            let mean_y: Vec<f64> = (0..2)
                .map(|c| few.iter().filter(|&&i| labels[i] == c).count() as f64 / 8.0)
                .collect();
            let mut b = vec![0.0; d * 2];
            for (r, &i) in xs.iter().zip(&few) {
                for c in 0..2 {
                    let y = f64::from(u8::from(labels[i] == c)) - mean_y[c];
                    for j in 0..d {
                        b[j * 2 + c] += (r[j] - mean_x[j]) * y;
                    }
                }
            }
            cholesky_solve(&mut a, d, &mut b, 2);
            b
        };
        for (p, q) in dual.weights.iter().zip(&primal) {
            assert!((p - q).abs() < 1e-9, "{p} vs {q}");
        }
    }

    #[test]
    fn bad_inputs_are_named() {
        let rows = vec![vec![0.0f32; 2]; 10];
        let held: Vec<bool> = (0..10).map(|i| i > 6).collect();
        let err = linear_probe(&refs(&rows), &[0; 9], 2, &held).unwrap_err();
        assert!(err.to_string().contains("10 rows, 9 labels"), "{err}");
        let err = linear_probe(&refs(&rows), &[0; 10], 2, &held[..9]).unwrap_err();
        assert!(err.to_string().contains("10 rows and 9 held-out"), "{err}");
        let mut bad = rows.clone();
        bad[3][1] = f32::NAN;
        let err = linear_probe(&refs(&bad), &[0; 10], 2, &held).unwrap_err();
        assert!(err.to_string().contains("row 3"), "{err}");
        let err = linear_probe(&refs(&rows), &[2; 10], 2, &held).unwrap_err();
        assert!(err.to_string().contains("not below 2"), "{err}");
        let all_fit = vec![false; 10];
        assert!(linear_probe(&refs(&rows), &[0; 10], 2, &all_fit).is_err());
    }
}
