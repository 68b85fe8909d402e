//! How much discovery a user's history allows when every author's latent attributes are
//! known exactly (a truth check: it reads the planted attributes, so it judges the
//! benchmark's headroom and is never a model of the report's table).
//!
//! For each query, a conditional logit over the authors, the user's own choice model:
//! author `a`'s logit is `ln(1 + training tips to a) + Σ_v x_{a,v} θ_v`, where `x_a` is
//! the one-hot of `a`'s value in each attribute field (its categories weighted as the
//! world mixes them: 0.7 primary, 0.3 secondary), and `θ` is fitted by maximum a
//! posteriori on the user's first tip to each author of its history (Gaussian prior of
//! precision `λ`). The authors the user has not tipped are ranked by their logit, and
//! Recall@10 is taken under the new-authors protocol (the report's "discovery" column:
//! every test user, a repeat target counting as a miss). `λ` is chosen on the
//! validation targets.

use mspa_core::synth::{AuthorAttributes, Field, PRIMARY_CATEGORY_WEIGHT};
use mspa_core::{Dataset, Split, Target};
use rayon::prelude::*;

use crate::report::DiscoveryCeiling;

/// The prior precisions tried on the validation targets.
const LAMBDAS: [f64; 4] = [0.3, 1.0, 3.0, 10.0];
/// Gradient steps of each user's fit.
const STEPS: usize = 40;
/// Recall cut-off.
const K: usize = 10;

/// The check, from every author's attributes (by author index) and the split.
pub(crate) fn discovery_ceiling(
    attributes: &[AuthorAttributes],
    dataset: &Dataset,
    split: &Split,
) -> DiscoveryCeiling {
    let (values, width) = one_hot_values(attributes);
    let mut tips = vec![0usize; dataset.n_authors()];
    for &i in &split.train {
        tips[dataset.events()[i].author.index()] += 1;
    }
    let popularity: Vec<f64> = tips.iter().map(|&n| (1.0 + n as f64).ln()).collect();
    let model = Choices {
        values: &values,
        popularity: &popularity,
        width,
    };
    let recall = |targets: &[Target], lambda: Option<f64>| -> f64 {
        let hits: usize = targets
            .par_iter()
            .map(|t| usize::from(model.hit(t, dataset, lambda)))
            .sum();
        hits as f64 / targets.len().max(1) as f64
    };
    let valid: Vec<(f64, f64)> = LAMBDAS
        .iter()
        .map(|&l| (l, recall(&split.valid, Some(l))))
        .collect();
    let lambda = valid
        .iter()
        .fold((LAMBDAS[0], f64::MIN), |best, &(l, r)| {
            if r > best.1 { (l, r) } else { best }
        })
        .0;
    DiscoveryCeiling {
        lambda,
        valid_recall10: valid,
        test_recall10: recall(&split.test, Some(lambda)),
        popularity_recall10: recall(&split.test, None),
        users: split.test.len(),
    }
}

/// Each author's attribute one-hot as `(value column, weight)` pairs, the columns of the
/// fields side by side, and the number of columns.
fn one_hot_values(attributes: &[AuthorAttributes]) -> (Vec<Vec<(usize, f64)>>, usize) {
    let mut offsets = Vec::with_capacity(Field::ALL.len());
    let mut width = 0;
    for f in Field::ALL {
        offsets.push(width);
        width += f.values().len();
    }
    let rows = attributes
        .iter()
        .map(|a| {
            let mut row = Vec::with_capacity(Field::ALL.len() + 1);
            for (f, &offset) in Field::ALL.iter().zip(&offsets) {
                match (f, a.category2) {
                    (Field::Categories, Some(second)) => {
                        row.push((offset + a.value(*f), PRIMARY_CATEGORY_WEIGHT));
                        row.push((offset + usize::from(second), 1.0 - PRIMARY_CATEGORY_WEIGHT));
                    }
                    _ => row.push((offset + a.value(*f), 1.0)),
                }
            }
            row
        })
        .collect();
    (rows, width)
}

/// Every author's attribute one-hot and popularity logit.
struct Choices<'a> {
    /// Per author, `(value column, weight)`.
    values: &'a [Vec<(usize, f64)>],
    /// Per author, `ln(1 + training tips)`.
    popularity: &'a [f64],
    /// Value columns in all.
    width: usize,
}

impl Choices<'_> {
    /// Whether the target is among the top `K` authors the user has not tipped, ranked
    /// by the user's fitted logit (`lambda`), or by popularity alone (`None`).
    fn hit(&self, target: &Target, dataset: &Dataset, lambda: Option<f64>) -> bool {
        let n = self.values.len();
        let mut seen = vec![false; n];
        let mut firsts = Vec::new();
        for e in target.history(dataset) {
            let a = e.author.index();
            if a < n && !seen[a] {
                seen[a] = true;
                firsts.push(a);
            }
        }
        let t = target.author.index();
        if t >= n || seen[t] {
            return false;
        }
        let theta = match lambda {
            Some(l) if !firsts.is_empty() => self.fit(&firsts, l),
            _ => vec![0.0; self.width],
        };
        let target_logit = self.logit(t, &theta);
        // The untipped authors ranked above the target (ties count against it).
        let above = (0..n)
            .filter(|&a| a != t && !seen[a] && self.logit(a, &theta) >= target_logit)
            .count();
        above < K
    }

    /// Author `a`'s logit under weights `theta`.
    fn logit(&self, a: usize, theta: &[f64]) -> f64 {
        self.popularity[a]
            + self.values[a]
                .iter()
                .map(|&(c, w)| w * theta[c])
                .sum::<f64>()
    }

    /// MAP weights of the conditional logit on the chosen authors `chosen`, prior
    /// precision `lambda`.
    fn fit(&self, chosen: &[usize], lambda: f64) -> Vec<f64> {
        let mut observed = vec![0.0; self.width];
        for &a in chosen {
            for &(c, w) in &self.values[a] {
                observed[c] += w;
            }
        }
        let count = chosen.len() as f64;
        let step = 0.5 / (count + lambda);
        let mut theta = vec![0.0; self.width];
        let mut expected = vec![0.0; self.width];
        let mut logits = vec![0.0; self.values.len()];
        for _ in 0..STEPS {
            for (a, l) in logits.iter_mut().enumerate() {
                *l = self.logit(a, &theta);
            }
            let max = logits.iter().cloned().fold(f64::MIN, f64::max);
            // The logits become their softmax weights, each exponential taken once.
            let mut z = 0.0;
            for l in logits.iter_mut() {
                *l = (*l - max).exp();
                z += *l;
            }
            expected.fill(0.0);
            for (a, weight) in logits.iter().enumerate() {
                let p = weight / z;
                for &(c, w) in &self.values[a] {
                    expected[c] += p * w;
                }
            }
            for c in 0..self.width {
                theta[c] += step * (observed[c] - count * expected[c] - lambda * theta[c]);
            }
        }
        theta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author(category: u8, language: u8) -> AuthorAttributes {
        AuthorAttributes {
            category,
            category2: None,
            energy: 0,
            audio: 0,
            visuals: 0,
            language,
            format: 0,
        }
    }

    #[test]
    fn the_fit_raises_the_values_the_user_chose() {
        // Six authors, equally popular: the user chose the two with language 1.
        let attributes: Vec<AuthorAttributes> =
            (0..6).map(|a| author(a % 3, u8::from(a >= 4))).collect();
        let (values, width) = one_hot_values(&attributes);
        let model = Choices {
            values: &values,
            popularity: &[0.0; 6],
            width,
        };
        let theta = model.fit(&[4, 5], 1.0);
        let score = |a: usize| model.logit(a, &theta);
        assert!(score(4) > score(0) + 0.1, "{} vs {}", score(4), score(0));
        assert!(score(5) > score(1) + 0.1);
    }

    #[test]
    fn a_secondary_category_splits_the_weight() {
        let mut a = author(2, 0);
        a.category2 = Some(5);
        let row = &one_hot_values(&[a]).0[0];
        let total: f64 = row.iter().map(|&(_, w)| w).sum();
        assert_eq!(row.len(), Field::ALL.len() + 1);
        assert!((total - Field::ALL.len() as f64).abs() < 1e-12);
    }
}
