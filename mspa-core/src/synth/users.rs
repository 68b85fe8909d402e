//! Users: latent preferences, their drift, and the tip simulation.
//!
//! A user holds, for each of the six attribute fields, a weight per value that sums to 1
//! (`preference_focus` on one or two favourites, the rest spread uniformly), an importance
//! per field (summing to 1), a latent tip rate, a latent generosity and a unit vector of
//! the hidden collaborative factor.
//!
//! **Drift.** With probability `drift_fraction` a user has an end preference: one or two
//! fields (categories half of the time, never language) move to new favourites,
//! `end = (1 - drift_strength) * start + drift_strength * new`. The preference at time `t`
//! is `(1 - w(t)) * start + w(t) * end` with `w` rising linearly from 0 at `drift.start_ms`
//! to 1 at `drift.end_ms` (a switch has `start_ms == end_ms`).
//!
//! **Affinity** of user `u` for author `a` at time `t`:
//! `(1 - w) * A(start, a) + w * A(end, a) + id_signal * dot(u.id_vector, a.id_vector)`, where
//! `A(p, a) = sum over fields f of importance[f] * p[f][value of a in f]` (for categories,
//! `0.7 * p[primary] + 0.3 * p[secondary]` when the author has a secondary one). The
//! attribute part lies in [0, 1]; the collaborative part in [-id_signal, id_signal].
//!
//! **Tips.** A user is active in a window inside the span (it starts in the first 30% and
//! ends in the last 30%), tips `max(1, Poisson(rate * window weeks))` times at uniform
//! times, and at each tip time `t`, in this order:
//! 1. with probability `exploration`, tips a uniformly random author;
//! 2. else, with probability `repeat_prob * clamp(max affinity(t) of the authors it tipped
//!    before, 0, 1)`, re-tips one of those, chosen with probability proportional to
//!    `exp(affinity(t) / temperature)`;
//! 3. else tips an author drawn from the softmax over all authors of
//!    `affinity(t) / temperature + popularity_bias * log_popularity`.
//!
//! The amount is `generosity * exp(amount_affinity_gain * (affinity - 0.5)) *
//! exp(amount_noise * z)`, z standard normal, rounded to cents (at least 0.01).

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::SyntheticWorldConfig;
use super::attributes::{AuthorTruth, Field, PRIMARY_CATEGORY_WEIGHT};
use super::reference::{FieldWeights, render_reference};
use super::sampling::{
    DOMAIN_USER, categorical, entity_rng, index, normal, poisson, round6, uniform, unit,
    unit_vector,
};

/// How much a user cares about each field (sums to 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    /// Weight of the category match.
    pub categories: f64,
    /// Weight of the energy match.
    pub energy: f64,
    /// Weight of the audio style match.
    pub audio: f64,
    /// Weight of the visual style match.
    pub visuals: f64,
    /// Weight of the language match.
    pub language: f64,
    /// Weight of the format match.
    pub format: f64,
}

impl Importance {
    /// The importance of one field.
    pub fn get(&self, field: Field) -> f64 {
        match field {
            Field::Categories => self.categories,
            Field::Energy => self.energy,
            Field::Audio => self.audio,
            Field::Visuals => self.visuals,
            Field::Language => self.language,
            Field::Format => self.format,
        }
    }

    /// The field the user cares about most (the first in grammar order on a tie).
    pub fn strongest(&self) -> Field {
        Field::ALL.into_iter().fold(Field::Categories, |best, f| {
            if self.get(f) > self.get(best) {
                f
            } else {
                best
            }
        })
    }
}

/// Mean importance of each field across users, before per-user log-normal noise.
const IMPORTANCE_BASE: [f64; 6] = [1.5, 1.0, 1.0, 1.0, 1.2, 0.8];

/// The kind of a drift.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftKind {
    /// The preference moves linearly from `start_ms` to `end_ms`.
    Linear,
    /// The preference switches at `start_ms` (== `end_ms`).
    Switch,
}

/// When and how a user's preference moves from `start` to `end`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Linear or switch.
    pub kind: DriftKind,
    /// The drift begins (weight 0 up to here).
    pub start_ms: i64,
    /// The drift is complete (weight 1 from here on).
    pub end_ms: i64,
    /// The fields that drift (grammar names).
    pub fields: Vec<String>,
}

/// One user's latent truth, as one line of `truth_users.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserTruth {
    /// External id (as in `tips.csv`).
    pub id: String,
    /// Latent tip rate, tips per week of the active window.
    pub rate_per_week: f64,
    /// Latent generosity: the amount of a tip at affinity 0.5, before noise.
    pub generosity: f64,
    /// Per-field importance.
    pub importance: Importance,
    /// Preference at the start of the span.
    pub start: FieldWeights,
    /// Preference after the drift; `None` when the user does not drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<FieldWeights>,
    /// The drift; `None` when the user does not drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// Unit vector of the hidden collaborative factor.
    pub id_vector: Vec<f64>,
    /// The active window `[first possible tip, last possible tip]`, ms.
    pub window_ms: [i64; 2],
    /// How many tips the user made.
    pub tips: usize,
    /// The split time: the time of the user's last tip (the leave-last-out test target).
    pub split_time_ms: i64,
    /// The reference preference text at `split_time_ms`.
    pub reference: String,
}

impl UserTruth {
    /// The drift weight `w(t)` in [0, 1].
    pub fn drift_weight(&self, t_ms: i64) -> f64 {
        match (&self.drift, &self.end) {
            (Some(d), Some(_)) => {
                if t_ms < d.start_ms {
                    0.0
                } else if t_ms >= d.end_ms {
                    1.0
                } else {
                    (t_ms - d.start_ms) as f64 / (d.end_ms - d.start_ms) as f64
                }
            }
            _ => 0.0,
        }
    }

    /// The preference weights at time `t_ms`.
    pub fn preference_at(&self, t_ms: i64) -> FieldWeights {
        match &self.end {
            Some(end) => self.start.mix(end, self.drift_weight(t_ms)),
            None => self.start.clone(),
        }
    }

    /// The reference preference text at time `t_ms`.
    pub fn reference_at(&self, t_ms: i64) -> String {
        render_reference(
            &self.preference_at(t_ms),
            self.rate_per_week,
            self.generosity,
        )
    }

    fn importance_array(&self) -> [f64; 6] {
        Field::ALL.map(|f| self.importance.get(f))
    }
}

/// The authors as the simulation and the oracle see them: attributes, popularity and the
/// collaborative vectors in flat arrays, plus the choice parameters of the config.
pub(crate) struct WorldModel {
    /// Per author, per field (grammar order), the value index (primary category).
    values: Vec<[u8; 6]>,
    /// Per author, the secondary category or `u8::MAX`.
    category2: Vec<u8>,
    log_pop: Vec<f64>,
    id_vectors: Vec<f64>,
    id_dims: usize,
    id_signal: f64,
    temperature: f64,
    popularity_bias: f64,
    exploration: f64,
    repeat_prob: f64,
}

impl WorldModel {
    pub(crate) fn new(config: &SyntheticWorldConfig, authors: &[AuthorTruth]) -> Self {
        let values = authors
            .iter()
            .map(|a| {
                let mut v = [0u8; 6];
                for (k, f) in Field::ALL.iter().enumerate() {
                    v[k] = a.attributes.value(*f) as u8;
                }
                v
            })
            .collect();
        Self {
            values,
            category2: authors
                .iter()
                .map(|a| a.attributes.category2.unwrap_or(u8::MAX))
                .collect(),
            log_pop: authors.iter().map(|a| a.log_popularity).collect(),
            id_vectors: authors
                .iter()
                .flat_map(|a| a.id_vector.iter().copied())
                .collect(),
            id_dims: config.id_dims,
            id_signal: config.id_signal,
            temperature: config.temperature,
            popularity_bias: config.popularity_bias,
            exploration: config.exploration,
            repeat_prob: config.repeat_prob,
        }
    }

    pub(crate) fn n_authors(&self) -> usize {
        self.values.len()
    }

    /// `A(p, a)`: the attribute match of weights `p` (with importance) for author `a`.
    fn attribute_score(&self, imp: &[f64; 6], p: &FieldWeights, a: usize) -> f64 {
        let v = &self.values[a];
        let cats = &p.categories;
        let c2 = self.category2[a];
        let cat = if c2 == u8::MAX {
            cats[v[0] as usize]
        } else {
            PRIMARY_CATEGORY_WEIGHT * cats[v[0] as usize]
                + (1.0 - PRIMARY_CATEGORY_WEIGHT) * cats[c2 as usize]
        };
        imp[0] * cat
            + imp[1] * p.energy[v[1] as usize]
            + imp[2] * p.audio[v[2] as usize]
            + imp[3] * p.visuals[v[3] as usize]
            + imp[4] * p.language[v[4] as usize]
            + imp[5] * p.format[v[5] as usize]
    }

    /// The collaborative part: `id_signal * dot(user, author)`.
    fn id_score(&self, user_vec: &[f64], a: usize) -> f64 {
        let d = self.id_dims;
        let av = &self.id_vectors[a * d..(a + 1) * d];
        self.id_signal * user_vec.iter().zip(av).map(|(x, y)| x * y).sum::<f64>()
    }

    /// The three parts of a user's affinity for author `a`: (A(start), A(end), id part).
    fn parts(&self, user: &UserTruth, a: usize) -> (f64, f64, f64) {
        let imp = user.importance_array();
        let a0 = self.attribute_score(&imp, &user.start, a);
        let a1 = match &user.end {
            Some(end) => self.attribute_score(&imp, end, a),
            None => a0,
        };
        (a0, a1, self.id_score(&user.id_vector, a))
    }

    /// The true affinity of `user` for author `a` at `t_ms`.
    pub(crate) fn affinity(&self, user: &UserTruth, a: usize, t_ms: i64) -> f64 {
        let (a0, a1, l) = self.parts(user, a);
        combine(a0, a1, user.drift_weight(t_ms), l)
    }

    /// The probability that `user`'s next tip at `t_ms` goes to each author, given the
    /// authors it tipped before (`history`, indices, duplicates allowed).
    pub(crate) fn next_tip_probabilities(
        &self,
        user: &UserTruth,
        t_ms: i64,
        history: &[usize],
    ) -> Vec<f64> {
        let n = self.n_authors();
        let w = user.drift_weight(t_ms);
        let scores: Vec<f64> = (0..n)
            .map(|a| {
                let (a0, a1, l) = self.parts(user, a);
                combine(a0, a1, w, l)
            })
            .collect();
        let mut probs = vec![self.exploration / n as f64; n];
        let mut past: Vec<usize> = history.iter().copied().filter(|&a| a < n).collect();
        past.sort_unstable();
        past.dedup();
        let p_rep = if past.is_empty() {
            0.0
        } else {
            let best = past
                .iter()
                .map(|&a| scores[a])
                .fold(f64::NEG_INFINITY, f64::max);
            self.repeat_prob * best.clamp(0.0, 1.0)
        };
        let rest = 1.0 - self.exploration;
        if p_rep > 0.0 {
            let m = past
                .iter()
                .map(|&a| scores[a] / self.temperature)
                .fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = past
                .iter()
                .map(|&a| (scores[a] / self.temperature - m).exp())
                .sum();
            for &a in &past {
                probs[a] += rest * p_rep * (scores[a] / self.temperature - m).exp() / z;
            }
        }
        let logits: Vec<f64> = (0..n).map(|a| self.logit(scores[a], a)).collect();
        let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
        for a in 0..n {
            probs[a] += rest * (1.0 - p_rep) * (logits[a] - m).exp() / z;
        }
        probs
    }

    fn logit(&self, score: f64, a: usize) -> f64 {
        score / self.temperature + self.popularity_bias * self.log_pop[a]
    }
}

/// `(1 - w) * a0 + w * a1 + l`: the one formula both the simulation and the oracle use.
fn combine(a0: f64, a1: f64, w: f64, l: f64) -> f64 {
    (1.0 - w) * a0 + w * a1 + l
}

/// One simulated tip: author index, amount in cents, time.
pub(crate) struct TipRow {
    pub author: u32,
    pub cents: u64,
    pub t_ms: i64,
}

/// Draws a field's preference: one favourite (two with probability `second`), holding
/// `focus` of the mass, the rest uniform. Values in `avoid` are never favourites.
fn sample_field(
    rng: &mut ChaCha8Rng,
    field: Field,
    focus: f64,
    second: f64,
    avoid: &[usize],
) -> Vec<f64> {
    let mut prior = field.prior().to_vec();
    for &a in avoid {
        prior[a] = 0.0;
    }
    let first = categorical(rng, &prior);
    let mut favs = vec![first];
    prior[first] = 0.0;
    if unit(rng) < second && prior.iter().any(|&p| p > 0.0) {
        favs.push(categorical(rng, &prior));
    }
    let k = field.values().len();
    let mut w = vec![(1.0 - focus) / k as f64; k];
    for &f in &favs {
        w[f] += focus / favs.len() as f64;
    }
    w.into_iter().map(round6).collect()
}

/// Simulates user `index` of the world: its latent truth and its tips in time order.
pub(crate) fn simulate_user(
    config: &SyntheticWorldConfig,
    world: &WorldModel,
    index_: usize,
) -> (UserTruth, Vec<TipRow>) {
    let mut rng = entity_rng(config.seed, DOMAIN_USER, index_ as u64);
    let focus = config.preference_focus;

    // Importance: a noisy base profile, normalised.
    let raw: Vec<f64> = IMPORTANCE_BASE
        .iter()
        .map(|b| b * (0.5 * normal(&mut rng)).exp())
        .collect();
    let total: f64 = raw.iter().sum();
    let imp: Vec<f64> = raw.iter().map(|x| round6(x / total)).collect();
    let importance = Importance {
        categories: imp[0],
        energy: imp[1],
        audio: imp[2],
        visuals: imp[3],
        language: imp[4],
        format: imp[5],
    };

    let field = |rng: &mut ChaCha8Rng, f: Field| {
        let second = if f == Field::Categories {
            config.second_category_prob
        } else {
            config.second_value_prob
        };
        sample_field(rng, f, focus, second, &[])
    };
    let start = FieldWeights {
        categories: field(&mut rng, Field::Categories),
        energy: field(&mut rng, Field::Energy),
        audio: field(&mut rng, Field::Audio),
        visuals: field(&mut rng, Field::Visuals),
        language: field(&mut rng, Field::Language),
        format: field(&mut rng, Field::Format),
    };

    // Activity.
    let span = config.span_ms();
    let ws = config.start_ms + (uniform(&mut rng, 0.0, 0.3) * span as f64) as i64;
    let we = config.start_ms + span - (uniform(&mut rng, 0.0, 0.3) * span as f64) as i64;
    let window_weeks = (we - ws) as f64 / (7.0 * crate::DAY_MS);
    // Mean rate so that E[rate] * E[window] = mean tips (E[window] = 0.7 span).
    let mean_rate = config.mean_tips_per_user / (0.7 * span as f64 / (7.0 * crate::DAY_MS));
    let sigma = config.rate_sigma;
    let rate = round6(mean_rate * (sigma * normal(&mut rng) - 0.5 * sigma * sigma).exp());
    let generosity = round6(config.amount_median * (config.amount_sigma * normal(&mut rng)).exp());
    let id_vector = unit_vector(&mut rng, config.id_dims);

    // Drift.
    let (end, drift) = if unit(&mut rng) < config.drift_fraction {
        const DRIFTABLE: [Field; 4] = [Field::Energy, Field::Audio, Field::Visuals, Field::Format];
        let mut fields = vec![if unit(&mut rng) < 0.5 {
            Field::Categories
        } else {
            DRIFTABLE[index(&mut rng, 4)]
        }];
        if unit(&mut rng) < 0.3 {
            let others: Vec<Field> = [Field::Categories]
                .into_iter()
                .chain(DRIFTABLE)
                .filter(|f| !fields.contains(f))
                .collect();
            fields.push(others[index(&mut rng, others.len())]);
        }
        let mut end = start.clone();
        let s = config.drift_strength;
        for &f in &fields {
            let old = start.get(f).to_vec();
            // New favourites are values the user did not favour before.
            let floor = old.iter().copied().fold(f64::INFINITY, f64::min);
            let mut favourites: Vec<usize> = (0..old.len()).filter(|&i| old[i] > floor).collect();
            if favourites.len() >= old.len() {
                favourites = vec![start.top(f)];
            }
            let new = sample_field(&mut rng, f, focus, 0.0, &favourites);
            *end.get_mut(f) = old
                .iter()
                .zip(&new)
                .map(|(o, n)| round6((1.0 - s) * o + s * n))
                .collect();
        }
        let len = (we - ws) as f64;
        let (kind, d0, d1) = if unit(&mut rng) < config.drift_switch_share {
            let t = ws + (uniform(&mut rng, 0.25, 0.75) * len) as i64;
            (DriftKind::Switch, t, t)
        } else {
            let t0 = ws + (uniform(&mut rng, 0.1, 0.5) * len) as i64;
            let t1 = (t0 + (uniform(&mut rng, 0.25, 0.5) * len) as i64).min(we);
            (DriftKind::Linear, t0, t1.max(t0 + 1))
        };
        let drift = Drift {
            kind,
            start_ms: d0,
            end_ms: d1,
            fields: fields.iter().map(|f| f.name().to_string()).collect(),
        };
        (Some(end), Some(drift))
    } else {
        (None, None)
    };

    // Tip times: strictly increasing, inside the window.
    let n_tips = poisson(&mut rng, rate * window_weeks).max(1) as usize;
    let mut times: Vec<i64> = (0..n_tips)
        .map(|_| ws + (unit(&mut rng) * (we - ws) as f64) as i64)
        .collect();
    times.sort_unstable();
    for i in 1..times.len() {
        if times[i] <= times[i - 1] {
            times[i] = times[i - 1] + 1;
        }
    }

    let mut user = UserTruth {
        id: super::attributes::user_id(index_, config.users),
        rate_per_week: rate,
        generosity,
        importance,
        start,
        end,
        drift,
        id_vector,
        window_ms: [ws, we],
        tips: n_tips,
        split_time_ms: *times.last().expect("at least one tip"),
        reference: String::new(),
    };

    // Per-author parts of the affinity, computed once for this user.
    let n = world.n_authors();
    let mut a0 = Vec::with_capacity(n);
    let mut a1 = Vec::with_capacity(n);
    let mut l = Vec::with_capacity(n);
    for a in 0..n {
        let (x0, x1, xl) = world.parts(&user, a);
        a0.push(x0);
        a1.push(x1);
        l.push(xl);
    }
    let score = |a: usize, w: f64| combine(a0[a], a1[a], w, l[a]);

    let mut history: Vec<u32> = Vec::new();
    let mut cdf: Vec<f64> = Vec::with_capacity(n);
    let mut cdf_w = f64::NAN;
    let mut tips = Vec::with_capacity(n_tips);
    for &t in &times {
        let w = user.drift_weight(t);
        let author = if unit(&mut rng) < config.exploration {
            index(&mut rng, n)
        } else {
            let p_rep = if history.is_empty() {
                0.0
            } else {
                let best = history
                    .iter()
                    .map(|&a| score(a as usize, w))
                    .fold(f64::NEG_INFINITY, f64::max);
                config.repeat_prob * best.clamp(0.0, 1.0)
            };
            if unit(&mut rng) < p_rep {
                let m = history
                    .iter()
                    .map(|&a| score(a as usize, w) / config.temperature)
                    .fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = history
                    .iter()
                    .map(|&a| (score(a as usize, w) / config.temperature - m).exp())
                    .collect();
                history[categorical(&mut rng, &weights)] as usize
            } else {
                if cdf_w.to_bits() != w.to_bits() {
                    cdf.clear();
                    let logits: Vec<f64> = (0..n).map(|a| world.logit(score(a, w), a)).collect();
                    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let mut acc = 0.0;
                    for lg in logits {
                        acc += (lg - m).exp();
                        cdf.push(acc);
                    }
                    cdf_w = w;
                }
                let u = unit(&mut rng) * cdf[n - 1];
                cdf.partition_point(|&c| c <= u).min(n - 1)
            }
        };
        let s = score(author, w);
        let amount = user.generosity
            * (config.amount_affinity_gain * (s - 0.5)).exp()
            * (config.amount_noise * normal(&mut rng)).exp();
        let cents = ((amount * 100.0).round() as u64).max(1);
        if !history.contains(&(author as u32)) {
            history.push(author as u32);
        }
        tips.push(TipRow {
            author: author as u32,
            cents,
            t_ms: t,
        });
    }
    user.reference = user.reference_at(user.split_time_ms);
    (user, tips)
}

#[cfg(test)]
mod tests {
    use super::super::attributes::sample_author;
    use super::*;

    /// The default config with `authors` and `users`, and the world model of its authors.
    fn world(authors: usize, users: usize) -> (SyntheticWorldConfig, WorldModel) {
        let config = SyntheticWorldConfig {
            authors,
            users,
            ..Default::default()
        };
        let authors: Vec<AuthorTruth> = (0..config.authors)
            .map(|i| sample_author(&config, i))
            .collect();
        let model = WorldModel::new(&config, &authors);
        (config, model)
    }

    #[test]
    fn the_strongest_field_has_the_largest_importance() {
        let (config, model) = world(10, 40);
        for u in 0..40 {
            let (user, _) = simulate_user(&config, &model, u);
            let strongest = user.importance.strongest();
            let top = Field::ALL
                .iter()
                .map(|&f| user.importance.get(f))
                .fold(f64::MIN, f64::max);
            assert_eq!(user.importance.get(strongest), top);
        }
    }

    #[test]
    fn synth_probabilities_sum_to_one_and_weights_are_normalised() {
        let (config, model) = world(40, 30);
        for u in 0..30 {
            let (user, tips) = simulate_user(&config, &model, u);
            for f in Field::ALL {
                let s: f64 = user.preference_at(user.split_time_ms).get(f).iter().sum();
                assert!((s - 1.0).abs() < 1e-4, "{s}");
            }
            let hist: Vec<usize> = tips.iter().map(|t| t.author as usize).collect();
            let p = model.next_tip_probabilities(&user, user.split_time_ms, &hist);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            assert!(tips.windows(2).all(|w| w[0].t_ms < w[1].t_ms));
            assert_eq!(tips.len(), user.tips);
        }
    }

    #[test]
    fn synth_mean_tip_count_matches_config() {
        let (config, model) = world(30, 3000);
        let total: usize = (0..config.users)
            .map(|u| simulate_user(&config, &model, u).1.len())
            .sum();
        let mean = total as f64 / config.users as f64;
        assert!((mean - 12.5).abs() < 1.0, "{mean}");
    }
}
