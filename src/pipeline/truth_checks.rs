//! The checks against a synthetic world's planted truth (evaluation only; no model reads
//! it): linear probes of the frozen author features for each latent attribute, MSPA's
//! modality attention by the field each test user cares about most, the map of
//! preferences and authors, and how much discovery the histories allow when the authors'
//! attributes are known (`discovery_ceiling`).

use mspa_align::mspa::Inspection;
use mspa_core::rng::SplitMix64;
use mspa_core::synth::{Field, Truth};
use mspa_core::{Dataset, Split};
use mspa_metrics::{ProbeScore, ProbeTask, group_bootstrap, linear_probes};
use mspa_modal::features::{AuthorFeatures, Modality};
use rayon::prelude::*;

use super::{PipelineError, stage_err};
use crate::plots::MapPoint;
use crate::report::{
    AttentionGroup, AttributionCheck, FeatureProbe, ModalityAttribution, PreferenceMap, ProbeRow,
    TruthChecks,
};

/// Share of the authors held out from every probe.
const HELD_OUT_SHARE: f64 = 1.0 / 3.0;

/// The fields that show in one modality only, and that modality.
const SINGLE_MODALITY: [(Field, Modality); 3] = [
    (Field::Visuals, Modality::Visual),
    (Field::Audio, Modality::Audio),
    (Field::Language, Modality::Text),
];

/// Every check, from the truth, the features and MSPA's inspection of the test users
/// (in `split.test` order); `seed` draws the held-out authors and the bootstrap resamples.
pub(crate) fn truth_checks(
    truth: &Truth,
    dataset: &Dataset,
    split: &Split,
    features: &[AuthorFeatures],
    inspection: &Inspection,
    resamples: usize,
    seed: u64,
) -> Result<TruthChecks, PipelineError> {
    let err = |e: &dyn std::fmt::Display| stage_err("truth checks")(e);
    let attributes = (0..dataset.n_authors())
        .map(|a| {
            let id = dataset.authors()[a].id.to_string();
            truth
                .author(&id)
                .map(|t| t.attributes)
                .ok_or_else(|| format!("author `{id}` is not in the truth"))
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| err(&e))?;
    let test = &split.test;
    let strongest = test
        .iter()
        .map(|t| {
            let id = dataset.user_external(t.user).to_string();
            let user = truth
                .user(&id)
                .ok_or_else(|| format!("user `{id}` is not in the truth"))?;
            let favourite = truth
                .preference_at(&id, t.timestamp_ms)
                .map(|w| argmax(w.get(Field::Categories)))
                .unwrap_or(0);
            Ok((user.importance.strongest(), favourite))
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| err(&e))?;
    if inspection.users.len() != test.len() {
        return Err(err(&format!(
            "{} inspected users for {} test users",
            inspection.users.len(),
            test.len()
        )));
    }
    let values = |f: Field| -> Vec<usize> { attributes.iter().map(|a| a.value(f)).collect() };
    // The probes need a few authors on each side; a tiny world has none.
    let feature_probe = probe_features(features, &values, seed).ok();
    let attribution = attribution(&strongest, inspection, resamples, seed).map_err(|e| err(&e))?;
    let author_classes = values(Field::Categories);
    let user_classes: Vec<usize> = strongest.iter().map(|&(_, c)| c).collect();
    Ok(TruthChecks {
        feature_probe,
        attribution,
        discovery_ceiling: super::discovery_ceiling::discovery_ceiling(&attributes, dataset, split),
        map: preference_map(inspection, &user_classes, &author_classes),
    })
}

/// The index of the largest value (the first on a tie).
fn argmax(values: &[f64]) -> usize {
    (0..values.len()).fold(0, |best, i| if values[i] > values[best] { i } else { best })
}

/// Probes of every field from each modality (authors that have it) and from all three,
/// the four views side by side.
fn probe_features(
    features: &[AuthorFeatures],
    values: &dyn Fn(Field) -> Vec<usize>,
    seed: u64,
) -> Result<FeatureProbe, mspa_metrics::MetricsError> {
    let n = features.len();
    let held_out = held_out_authors(n, seed);
    let labels: Vec<Vec<usize>> = Field::ALL.iter().map(|&f| values(f)).collect();
    let concatenated: Vec<Vec<f32>> = features
        .iter()
        .map(|f| [f.visual.as_slice(), &f.audio, &f.text].concat())
        .collect();
    // The authors and rows of each view: every modality, then all three.
    let views: Vec<Vec<(usize, &[f32])>> = Modality::ALL
        .iter()
        .map(|&m| {
            (0..n)
                .filter(|&a| features[a].has(m))
                .map(|a| (a, features[a].get(m)))
                .collect()
        })
        .chain(std::iter::once(
            concatenated.iter().map(Vec::as_slice).enumerate().collect(),
        ))
        .collect();
    let probed: Vec<Result<Vec<ProbeScore>, _>> = views
        .par_iter()
        .map(|rows| {
            let kept: Vec<Vec<usize>> = labels
                .iter()
                .map(|l| rows.iter().map(|&(a, _)| l[a]).collect())
                .collect();
            let tasks: Vec<ProbeTask<'_>> = Field::ALL
                .iter()
                .zip(&kept)
                .map(|(f, l)| ProbeTask {
                    labels: l,
                    n_classes: f.values().len(),
                })
                .collect();
            let held: Vec<bool> = rows.iter().map(|&(a, _)| held_out[a]).collect();
            let rows: Vec<&[f32]> = rows.iter().map(|&(_, r)| r).collect();
            linear_probes(&rows, &tasks, &held)
        })
        .collect();
    let mut probed = probed.into_iter();
    let modalities: Vec<Option<Vec<ProbeScore>>> =
        probed.by_ref().take(3).map(Result::ok).collect();
    let all = probed.next().expect("four views")?;
    let fields = Field::ALL
        .iter()
        .enumerate()
        .map(|(i, field)| ProbeRow {
            field: field.name().to_string(),
            shows_in: field.modalities().iter().map(|m| m.to_string()).collect(),
            majority: all[i].majority,
            modalities: [0, 1, 2].map(|m| modalities[m].as_ref().map(|p| p[i].accuracy)),
            all: all[i].accuracy,
        })
        .collect();
    let held = held_out.iter().filter(|&&h| h).count();
    Ok(FeatureProbe {
        fit_authors: n - held,
        held_out_authors: held,
        fields,
    })
}

/// A seeded choice of [`HELD_OUT_SHARE`] of `n` authors.
fn held_out_authors(n: usize, seed: u64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed ^ 0x5052_4f42_4553);
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let held = (n as f64 * HELD_OUT_SHARE).round() as usize;
    let mut flags = vec![false; n];
    for &a in &order[..held.min(n)] {
        flags[a] = true;
    }
    flags
}

/// The attention groups and the single-modality checks.
fn attribution(
    strongest: &[(Field, usize)],
    inspection: &Inspection,
    resamples: usize,
    seed: u64,
) -> Result<ModalityAttribution, mspa_metrics::MetricsError> {
    let weights = |i: usize| inspection.users[i].top_weights.map(f64::from);
    let groups = Field::ALL
        .into_iter()
        .filter_map(|field| {
            let members: Vec<usize> = (0..strongest.len())
                .filter(|&i| strongest[i].0 == field)
                .collect();
            if members.is_empty() {
                return None;
            }
            let mut mean = [0.0; 3];
            for &i in &members {
                for (m, w) in mean.iter_mut().zip(weights(i)) {
                    *m += w / members.len() as f64;
                }
            }
            Some(AttentionGroup {
                strongest_field: field.name().to_string(),
                users: members.len(),
                weights: mean,
            })
        })
        .collect();
    let mut checks = Vec::new();
    for (field, modality) in SINGLE_MODALITY {
        let m = modality.index();
        let (group, others): (Vec<usize>, Vec<usize>) =
            (0..strongest.len()).partition(|&i| strongest[i].0 == field);
        if group.is_empty() || others.is_empty() {
            continue;
        }
        let on_m = |users: &[usize]| users.iter().map(|&i| weights(i)[m]).collect::<Vec<_>>();
        checks.push(AttributionCheck {
            modality: modality.to_string(),
            field: field.name().to_string(),
            difference: group_bootstrap(&on_m(&group), &on_m(&others), resamples, 0.95, seed)?,
        });
    }
    Ok(ModalityAttribution { groups, checks })
}

/// Users' preferences and authors' content projected on the first two principal
/// components of both together.
fn preference_map(
    inspection: &Inspection,
    user_classes: &[usize],
    author_classes: &[usize],
) -> PreferenceMap {
    let rows: Vec<&[f32]> = inspection
        .users
        .iter()
        .map(|u| u.preference.as_slice())
        .chain(inspection.authors.iter().map(Vec::as_slice))
        .collect();
    let projected = principal_components(&rows);
    let n_users = inspection.users.len();
    let points = projected
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            let (class, square) = if i < n_users {
                (user_classes.get(i).copied().unwrap_or(0), false)
            } else {
                (author_classes.get(i - n_users).copied().unwrap_or(0), true)
            };
            MapPoint {
                x,
                y,
                class,
                square,
            }
        })
        .collect();
    PreferenceMap {
        classes: Field::Categories
            .values()
            .iter()
            .map(|v| v.to_string())
            .collect(),
        points,
    }
}

/// Each row's coordinates on the first two principal components of the rows (by power
/// iteration on their covariance, the second after deflating the first).
fn principal_components(rows: &[&[f32]]) -> Vec<(f64, f64)> {
    let d = rows.first().map_or(0, |r| r.len());
    if rows.is_empty() || d == 0 || rows.iter().any(|r| r.len() != d) {
        return vec![(0.0, 0.0); rows.len()];
    }
    let n = rows.len() as f64;
    let mut mean = vec![0.0f64; d];
    for r in rows {
        for (m, &v) in mean.iter_mut().zip(*r) {
            *m += f64::from(v) / n;
        }
    }
    let centred: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&mean)
                .map(|(&v, m)| f64::from(v) - m)
                .collect()
        })
        .collect();
    let mut cov = vec![0.0f64; d * d];
    for r in &centred {
        for j in 0..d {
            for k in 0..d {
                cov[j * d + k] += r[j] * r[k] / n;
            }
        }
    }
    let first = leading_eigenvector(&cov, d);
    let lambda: f64 = (0..d)
        .map(|j| first[j] * (0..d).map(|k| cov[j * d + k] * first[k]).sum::<f64>())
        .sum();
    for j in 0..d {
        for k in 0..d {
            cov[j * d + k] -= lambda * first[j] * first[k];
        }
    }
    let second = leading_eigenvector(&cov, d);
    let dot = |r: &[f64], v: &[f64]| r.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
    centred
        .iter()
        .map(|r| (dot(r, &first), dot(r, &second)))
        .collect()
}

/// The unit eigenvector of the largest eigenvalue of a symmetric `d × d` matrix.
fn leading_eigenvector(m: &[f64], d: usize) -> Vec<f64> {
    // A start that is not orthogonal to any axis.
    let mut v: Vec<f64> = (0..d).map(|i| 1.0 + 0.1 * (i % 7) as f64).collect();
    for _ in 0..300 {
        let next: Vec<f64> = (0..d)
            .map(|j| (0..d).map(|k| m[j * d + k] * v[k]).sum())
            .collect();
        let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm < 1e-300 {
            break;
        }
        v = next.into_iter().map(|x| x / norm).collect();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_components_find_the_spread_directions() {
        // Points along (1, 1, 0) with a smaller spread along (1, -1, 0), the two
        // uncorrelated (the signs go +, -, -, + in every four).
        let rows: Vec<Vec<f32>> = (0..40)
            .map(|i| {
                let t = i as f32 - 20.0;
                let s = if i % 4 == 0 || i % 4 == 3 { 1.0 } else { -1.0 };
                vec![t + s, t - s, 0.0]
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let p = principal_components(&refs);
        // The first coordinate follows t (up to sign), the second the ±1 offset.
        let scale = p[39].0 / 19.5;
        for (i, &(x, y)) in p.iter().enumerate() {
            let t = i as f64 - 20.0 + 0.5;
            assert!(
                (x - scale * t).abs() < 1e-6 * 40.0,
                "{i}: {x} vs {}",
                scale * t
            );
            assert!((y.abs() - 2f64.sqrt()).abs() < 1e-6, "{i}: {y}");
        }
    }

    #[test]
    fn held_out_authors_are_a_third_and_seeded() {
        let a = held_out_authors(300, 42);
        assert_eq!(a.iter().filter(|&&h| h).count(), 100);
        assert_eq!(a, held_out_authors(300, 42));
        assert_ne!(a, held_out_authors(300, 1));
    }

    #[test]
    fn a_group_that_attends_more_to_its_modality_is_found() {
        use mspa_align::mspa::UserInspection;
        let user = |w: [f32; 3]| UserInspection {
            preference: vec![0.0; 2],
            top_weights: w,
        };
        // Language-first users lean on text; the others spread evenly.
        let strongest: Vec<(Field, usize)> = (0..60)
            .map(|i| {
                (
                    if i % 3 == 0 {
                        Field::Language
                    } else {
                        Field::Energy
                    },
                    0,
                )
            })
            .collect();
        let users = (0..60)
            .map(|i| {
                if i % 3 == 0 {
                    user([0.2, 0.2, 0.6 + (i % 5) as f32 * 0.01])
                } else {
                    user([0.33, 0.34, 0.33 - (i % 5) as f32 * 0.01])
                }
            })
            .collect();
        let inspection = Inspection {
            users,
            authors: Vec::new(),
        };
        let a = attribution(&strongest, &inspection, 200, 7).unwrap();
        assert_eq!(a.groups.len(), 2);
        let text = a.checks.iter().find(|c| c.modality == "text").unwrap();
        assert!(text.difference.lo > 0.2, "{text:?}");
        assert_eq!(text.difference.n_a, 20);
        assert!(
            a.checks.iter().all(|c| c.field == "language"),
            "no other group has users"
        );
    }
}
