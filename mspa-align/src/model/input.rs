//! The network's inputs, built from the dataset and the author features: the table of
//! every author's content ([`AuthorTable`]), the users' recent tips ([`TipBatch`]), the
//! user–author tip features ([`pair_features`]) and the batch that bundles them
//! ([`MspaInput`]). Everything here is data preparation; the network is in the parent
//! module.

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use mspa_core::{DAY_MS, TipEvent};
use mspa_modal::features::AuthorFeatures;

use crate::error::{AlignError, Result};

/// Number of user–author tip features (see [`pair_features`]).
pub const PAIR_FEATURES: usize = 7;

/// Per-tip context features of the history: `ln(amount)` minus the user's mean
/// `ln(amount)` (how much more than usual the user gave), `log(1 + age in days)`,
/// `log(1 + earlier tips of the same author)`.
pub const TIP_FEATURES: usize = 3;

/// One batch of users to score against one candidate list.
#[derive(Clone, Debug)]
pub struct MspaInput {
    /// The users' histories.
    pub tips: TipBatch,
    /// Embeddings of the composed preference texts `[B, text_dim]` (ignored when the model
    /// does not use text).
    pub text: Option<Tensor<2>>,
    /// The table of ALL authors (history and candidates are both read from it).
    pub authors: AuthorTable,
    /// The candidates' author indices `[N]`.
    pub candidate_ids: Tensor<1, Int>,
    /// User–author tip features `[B, N, PAIR_FEATURES]` ([`pair_features`]).
    pub pairs: Tensor<3>,
    /// Dropout masks while training (from `Mspa::draw_dropout`); `None` at inference.
    pub dropout: Option<InputDropout>,
}

/// Inverted-dropout masks of the initial preference's inputs for one training batch.
#[derive(Clone, Debug)]
pub struct InputDropout {
    /// `[B, d]` on the pooled history.
    pub pooled: Tensor<2>,
    /// `[B, text_dim]` on the preference text, when the model reads text.
    pub text: Option<Tensor<2>>,
}

/// The content of authors as tensors: one feature matrix per modality, the presence
/// mask and whether each author had training tips (id embedding and bias apply).
#[derive(Clone, Debug)]
pub struct AuthorTable {
    /// `[A, F_m]` for visual, audio, text (zeros where missing).
    pub modal: [Tensor<2>; 3],
    /// `[A, 3]`, 1.0 where the modality is real.
    pub presence: Tensor<2>,
    /// `[A, 1]`, 1.0 for authors with training tips.
    pub has_history: Tensor<2>,
    /// `[A, F_m]` per modality: the features standardised over the authors that have the
    /// modality and scaled to unit length (zeros where missing), for the history
    /// coherence of each modality.
    pub unit: [Tensor<2>; 3],
}

impl AuthorTable {
    /// Builds the table of all authors; `train_counts[a]` is the number of training tips
    /// of author `a` (authors with none are content-only).
    pub fn build(
        features: &[AuthorFeatures],
        train_counts: &[u32],
        device: &Device,
    ) -> Result<Self> {
        let n = features.len();
        if n == 0 || train_counts.len() != n {
            return Err(AlignError::Config {
                field: "features".into(),
                message: format!(
                    "{} feature rows for {} training counts (need one per author, at least one)",
                    n,
                    train_counts.len()
                ),
            });
        }
        let dims = features[0].dims();
        let mut modal_rows: [Vec<f32>; 3] = Default::default();
        let mut presence = Vec::with_capacity(n * 3);
        for (a, f) in features.iter().enumerate() {
            if f.dims() != dims {
                return Err(AlignError::Config {
                    field: "features".into(),
                    message: format!(
                        "author {a} has feature sizes {:?}, author 0 {:?}",
                        f.dims(),
                        dims
                    ),
                });
            }
            for m in 0..3 {
                let v: &[f32] = match m {
                    0 => &f.visual,
                    1 => &f.audio,
                    _ => &f.text,
                };
                if dims[m] == 0 {
                    modal_rows[m].push(0.0);
                } else {
                    modal_rows[m].extend_from_slice(v);
                }
                presence.push(if f.present[m] && dims[m] > 0 {
                    1.0
                } else {
                    0.0
                });
            }
        }
        let unit = std::array::from_fn(|m| {
            let width = dims[m].max(1);
            let present: Vec<bool> = (0..n).map(|a| presence[a * 3 + m] > 0.5).collect();
            Tensor::<2>::from_data(
                TensorData::new(unit_rows(&modal_rows[m], width, &present), [n, width]),
                device,
            )
        });
        let modal = std::array::from_fn(|m| {
            let width = dims[m].max(1);
            Tensor::<2>::from_data(
                TensorData::new(std::mem::take(&mut modal_rows[m]), [n, width]),
                device,
            )
        });
        let has: Vec<f32> = train_counts
            .iter()
            .map(|&c| if c > 0 { 1.0 } else { 0.0 })
            .collect();
        Ok(AuthorTable {
            modal,
            presence: Tensor::from_data(TensorData::new(presence, [n, 3]), device),
            has_history: Tensor::from_data(TensorData::new(has, [n, 1]), device),
            unit,
        })
    }

    /// Number of authors.
    pub fn len(&self) -> usize {
        self.presence.dims()[0]
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows of `authors`, in that order.
    pub fn select(&self, authors: Tensor<1, Int>) -> AuthorTable {
        AuthorTable {
            modal: std::array::from_fn(|m| self.modal[m].clone().select(0, authors.clone())),
            presence: self.presence.clone().select(0, authors.clone()),
            has_history: self.has_history.clone().select(0, authors.clone()),
            unit: std::array::from_fn(|m| self.unit[m].clone().select(0, authors.clone())),
        }
    }

    /// The table on another device (e.g. the autodiff device for training).
    pub fn to_device(&self, device: &Device) -> AuthorTable {
        AuthorTable {
            modal: std::array::from_fn(|m| self.modal[m].clone().to_device(device)),
            presence: self.presence.clone().to_device(device),
            has_history: self.has_history.clone().to_device(device),
            unit: std::array::from_fn(|m| self.unit[m].clone().to_device(device)),
        }
    }
}

/// `rows` (`width` values each) standardised per column over the `present` rows and
/// scaled to unit length; absent rows (and rows that standardise to zero) are zeros.
fn unit_rows(rows: &[f32], width: usize, present: &[bool]) -> Vec<f32> {
    let n = present.iter().filter(|&&p| p).count().max(1) as f64;
    let mut mean = vec![0.0f64; width];
    let mut square = vec![0.0f64; width];
    for (row, _) in rows.chunks(width).zip(present).filter(|(_, p)| **p) {
        for ((m, s), &v) in mean.iter_mut().zip(&mut square).zip(row) {
            *m += f64::from(v) / n;
            *s += f64::from(v) * f64::from(v) / n;
        }
    }
    let std: Vec<f64> = mean
        .iter()
        .zip(&square)
        .map(|(m, s)| (s - m * m).max(0.0).sqrt().max(1e-6))
        .collect();
    let mut out = vec![0f32; rows.len()];
    for ((row, o), &p) in rows.chunks(width).zip(out.chunks_mut(width)).zip(present) {
        if !p {
            continue;
        }
        let z: Vec<f64> = (0..width)
            .map(|j| (f64::from(row[j]) - mean[j]) / std[j])
            .collect();
        let norm = z.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 1e-9 {
            for (o, v) in o.iter_mut().zip(&z) {
                *o = (v / norm) as f32;
            }
        }
    }
    out
}

/// The users' most recent tips, padded: `[B, L]` each.
#[derive(Clone, Debug)]
pub struct TipBatch {
    /// The tipped authors (0 on padding).
    pub authors: Tensor<2, Int>,
    /// Per-tip context `[B, L, TIP_FEATURES]` (see [`TIP_FEATURES`]).
    pub context: Tensor<3>,
    /// 1.0 at real tips, 0.0 on padding.
    pub mask: Tensor<2>,
    /// 1.0 at the latest tip of each distinct author among the `L`, else 0.0.
    pub distinct: Tensor<2>,
    /// `[U]` the distinct authors of the batch's tips, in order of first appearance
    /// (author 0 alone when no user has a tip): the rows the history's dot products and
    /// pools run against, so they are matrix products over `U` authors, never per tip.
    pub batch_authors: Tensor<1, Int>,
    /// `[B, L]` each tip's author as a position in `batch_authors` (0 on padding).
    pub author_slots: Tensor<2, Int>,
}

impl TipBatch {
    /// The last `max_len` tips (before `at_ms`) of every history.
    pub fn build(histories: &[(&[TipEvent], i64)], max_len: usize, device: &Device) -> TipBatch {
        let b = histories.len();
        let l = histories
            .iter()
            .map(|(h, _)| h.len().min(max_len))
            .max()
            .unwrap_or(0)
            .max(1);
        let mut authors = vec![0i64; b * l];
        let mut context = vec![0f32; b * l * TIP_FEATURES];
        let mut mask = vec![0f32; b * l];
        let mut distinct = vec![0f32; b * l];
        let mut latest: HashMap<u32, usize> = HashMap::new();
        let mut author_slots = vec![0i64; b * l];
        let mut batch_authors: Vec<i64> = Vec::new();
        let mut slot_of: HashMap<u32, i64> = HashMap::new();
        for (row, (tips, at_ms)) in histories.iter().enumerate() {
            latest.clear();
            let start = tips.len().saturating_sub(max_len);
            let user_mean = mean_log_amount(tips);
            let mut earlier: HashMap<u32, u32> = HashMap::new();
            for (pos, tip) in tips.iter().enumerate() {
                let count = earlier.entry(tip.author.0).or_insert(0);
                let before = *count;
                *count += 1;
                if pos < start {
                    continue;
                }
                let slot = row * l + (pos - start);
                authors[slot] = i64::from(tip.author.0);
                author_slots[slot] = *slot_of.entry(tip.author.0).or_insert_with(|| {
                    batch_authors.push(i64::from(tip.author.0));
                    batch_authors.len() as i64 - 1
                });
                mask[slot] = 1.0;
                latest.insert(tip.author.0, slot);
                let age = ((*at_ms - tip.timestamp_ms) as f64 / DAY_MS).max(0.0);
                let c = &mut context[slot * TIP_FEATURES..(slot + 1) * TIP_FEATURES];
                c[0] = (log_amount(tip.amount) - user_mean) as f32;
                c[1] = age.ln_1p() as f32;
                c[2] = f64::from(before).ln_1p() as f32;
            }
            for &slot in latest.values() {
                distinct[slot] = 1.0;
            }
        }
        TipBatch {
            authors: Tensor::from_data(TensorData::new(authors, [b, l]), device),
            context: Tensor::from_data(TensorData::new(context, [b, l, TIP_FEATURES]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, l]), device),
            distinct: Tensor::from_data(TensorData::new(distinct, [b, l]), device),
            batch_authors: {
                if batch_authors.is_empty() {
                    batch_authors.push(0);
                }
                let u = batch_authors.len();
                Tensor::from_data(TensorData::new(batch_authors, [u]), device)
            },
            author_slots: Tensor::from_data(TensorData::new(author_slots, [b, l]), device),
        }
    }
}

/// The user–author tip features `[B, N, PAIR_FEATURES]` of each user's history against
/// each candidate (zeros for authors the user never tipped):
///
/// 0. `log1p(tips to the author)`;
/// 1. `exp(-days since the last one / 7)`;
/// 2. the mean `ln(amount)` of the tips to the author minus the user's mean over all its
///    tips (amounts grow with affinity, and subtracting the user's mean removes how
///    generous the user is);
/// 3. whether it was the user's latest tip;
/// 4. the same relative `ln(amount)` of the latest tip to the author (a drifted taste
///    shows there first);
/// 5. the share of the user's tips that went to the author;
/// 6. `exp(-days since the last one)` (short-term recency).
pub fn pair_features(
    histories: &[(&[TipEvent], i64)],
    candidates: &[usize],
    device: &Device,
) -> Tensor<3> {
    let n = candidates.len();
    let mut position = std::collections::HashMap::with_capacity(n);
    for (j, &a) in candidates.iter().enumerate() {
        position.entry(a).or_insert(j);
    }
    let mut out = vec![0f32; histories.len() * n * PAIR_FEATURES];
    let mut count = vec![0u32; n];
    let mut log_sum = vec![0f64; n];
    let mut last_log = vec![0f64; n];
    let mut last = vec![i64::MIN; n];
    for (b, (tips, at_ms)) in histories.iter().enumerate() {
        count.iter_mut().for_each(|c| *c = 0);
        log_sum.iter_mut().for_each(|x| *x = 0.0);
        let mut touched = Vec::new();
        for tip in tips.iter() {
            let ln_amount = log_amount(tip.amount);
            if let Some(&j) = position.get(&tip.author.index()) {
                if count[j] == 0 {
                    touched.push(j);
                    last[j] = i64::MIN;
                }
                count[j] += 1;
                log_sum[j] += ln_amount;
                if tip.timestamp_ms >= last[j] {
                    last[j] = tip.timestamp_ms;
                    last_log[j] = ln_amount;
                }
            }
        }
        let user_mean = mean_log_amount(tips);
        let latest = tips
            .last()
            .and_then(|t| position.get(&t.author.index()).copied());
        for j in touched {
            let row = &mut out[(b * n + j) * PAIR_FEATURES..(b * n + j + 1) * PAIR_FEATURES];
            let age_days = ((*at_ms - last[j]) as f64 / DAY_MS).max(0.0);
            row[0] = (count[j] as f32).ln_1p();
            row[1] = (-age_days / 7.0).exp() as f32;
            row[2] = (log_sum[j] / f64::from(count[j]) - user_mean) as f32;
            row[3] = if latest == Some(j) { 1.0 } else { 0.0 };
            row[4] = (last_log[j] - user_mean) as f32;
            row[5] = (f64::from(count[j]) / tips.len() as f64) as f32;
            row[6] = (-age_days).exp() as f32;
        }
    }
    Tensor::from_data(
        TensorData::new(out, [histories.len(), n, PAIR_FEATURES]),
        device,
    )
}

/// The mean `ln(amount)` of a user's tips (0 without tips): how generous the user is.
fn mean_log_amount(tips: &[TipEvent]) -> f64 {
    tips.iter().map(|t| log_amount(t.amount)).sum::<f64>() / tips.len().max(1) as f64
}

/// `ln(amount)` of a tip, with non-finite or tiny amounts read as one cent.
fn log_amount(amount: f64) -> f64 {
    if amount.is_finite() {
        amount.max(0.01).ln()
    } else {
        0.01f64.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mspa_core::{AuthorId, UserId};

    const DAY: i64 = 86_400_000;

    fn tip(author: u32, amount: f64, day: i64) -> TipEvent {
        TipEvent {
            user: UserId(0),
            author: AuthorId(author),
            amount,
            timestamp_ms: day * DAY,
        }
    }

    /// User 0 tipped authors 0, 2, 0 (at 5, 1, 20) on days 1, 3, 5 and is asked on day
    /// 6; user 1 tipped author 3 once; user 2 never tipped.
    fn histories() -> Vec<(Vec<TipEvent>, i64)> {
        vec![
            (
                vec![tip(0, 5.0, 1), tip(2, 1.0, 3), tip(0, 20.0, 5)],
                6 * DAY,
            ),
            (vec![tip(3, 1.0, 2)], 4 * DAY),
            (Vec::new(), 4 * DAY),
        ]
    }

    fn refs(owned: &[(Vec<TipEvent>, i64)]) -> Vec<(&[TipEvent], i64)> {
        owned.iter().map(|(h, t)| (h.as_slice(), *t)).collect()
    }

    fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() < 1e-5
    }

    #[test]
    fn tip_batch_keeps_the_latest_tips_pads_and_counts_earlier_ones() {
        let device = Device::flex();
        let owned = histories();
        let batch = TipBatch::build(&refs(&owned), 2, &device);
        assert_eq!(batch.authors.dims(), [3, 2]);
        let authors = batch
            .authors
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        assert_eq!(authors, vec![2, 0, 3, 0, 0, 0], "latest two, oldest first");
        let batch_authors = batch.batch_authors.into_data().convert::<i64>();
        assert_eq!(
            batch_authors.try_to_vec::<i64>().unwrap(),
            vec![2, 0, 3],
            "the batch's distinct tipped authors, in order of appearance"
        );
        let slots = batch.author_slots.into_data().convert::<i64>();
        assert_eq!(
            slots.try_to_vec::<i64>().unwrap(),
            vec![0, 1, 2, 0, 0, 0],
            "each tip's author as a position among them, 0 on padding"
        );
        assert_eq!(
            floats(batch.mask),
            vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
            "padding and the cold user are masked"
        );
        let c = floats(batch.context);
        let user_mean = (5f64.ln() + 1f64.ln() + 20f64.ln()) / 3.0;
        // The tip to author 0 on day 5: one day old, one earlier tip to author 0 (cut
        // from the window but still counted).
        let last = &c[TIP_FEATURES..2 * TIP_FEATURES];
        assert!(close(last[0], 20f64.ln() - user_mean), "{last:?}");
        assert!(close(last[1], 2f64.ln()), "{last:?}");
        assert!(close(last[2], 2f64.ln()), "{last:?}");
        // The tip to author 2 on day 3: three days old, the first to author 2.
        let first = &c[..TIP_FEATURES];
        assert!(close(first[1], 4f64.ln()) && first[2] == 0.0, "{first:?}");
        assert!(
            c[3 * TIP_FEATURES..].iter().all(|&x| x == 0.0),
            "padding is zero"
        );
    }

    #[test]
    fn pair_features_describe_each_users_tips_to_each_candidate() {
        let device = Device::flex();
        let owned = histories();
        // Candidates in a shuffled order: features follow the candidate positions.
        let pairs = floats(pair_features(&refs(&owned), &[2, 0, 5], &device));
        assert_eq!(pairs.len(), 3 * 3 * PAIR_FEATURES);
        let at = |user: usize, j: usize| &pairs[(user * 3 + j) * PAIR_FEATURES..][..PAIR_FEATURES];
        let user_mean = (5f64.ln() + 1f64.ln() + 20f64.ln()) / 3.0;
        let author0 = at(0, 1);
        let expected = [
            3f64.ln(),
            (-1.0f64 / 7.0).exp(),
            (5f64.ln() + 20f64.ln()) / 2.0 - user_mean,
            1.0,
            20f64.ln() - user_mean,
            2.0 / 3.0,
            (-1.0f64).exp(),
        ];
        for (k, (&got, want)) in author0.iter().zip(expected).enumerate() {
            assert!(close(got, want), "feature {k}: {got} vs {want}");
        }
        let author2 = at(0, 0);
        assert!(
            close(author2[0], 2f64.ln()) && author2[3] == 0.0,
            "{author2:?}"
        );
        assert!(close(author2[1], (-3.0f64 / 7.0).exp()), "{author2:?}");
        assert!(at(0, 2).iter().all(|&x| x == 0.0), "never tipped");
        assert!(at(1, 0).iter().chain(at(1, 1)).all(|&x| x == 0.0));
        assert!(at(2, 1).iter().all(|&x| x == 0.0), "cold user");
    }

    #[test]
    fn author_table_checks_sizes_and_marks_missing_modalities() {
        let device = Device::flex();
        let mut a = AuthorFeatures::empty([2, 1, 3]);
        a.present = [true, false, true];
        a.visual = vec![1.0, 2.0];
        let b = AuthorFeatures::empty([2, 1, 3]);
        let table = AuthorTable::build(&[a.clone(), b], &[4, 0], &device).unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!(table.modal[0].dims(), [2, 2]);
        assert_eq!(
            floats(table.presence.clone()),
            vec![1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(floats(table.has_history.clone()), vec![1.0, 0.0]);
        let picked = table.select(Tensor::<1, Int>::from_data(
            TensorData::new(vec![1i64, 0], [2]),
            &device,
        ));
        assert_eq!(floats(picked.modal[0].clone()), vec![0.0, 0.0, 1.0, 2.0]);

        let err = |r: Result<AuthorTable>| matches!(r, Err(AlignError::Config { .. }));
        assert!(err(AuthorTable::build(&[a.clone()], &[1, 2], &device)));
        assert!(err(AuthorTable::build(&[], &[], &device)));
        let other = AuthorFeatures::empty([3, 1, 3]);
        assert!(err(AuthorTable::build(&[a, other], &[1, 1], &device)));
    }

    #[test]
    fn unit_rows_are_standardised_unit_vectors_and_absent_rows_zero() {
        // Three rows of width 2; the middle one is absent and must not move the mean.
        let rows = [1.0f32, 10.0, 100.0, -100.0, 3.0, 30.0];
        let out = unit_rows(&rows, 2, &[true, false, true]);
        assert_eq!(&out[2..4], &[0.0, 0.0]);
        // Standardised over rows 0 and 2: (-1, -1) and (1, 1), then unit length.
        let h = std::f32::consts::FRAC_1_SQRT_2;
        for (got, want) in out.iter().zip([-h, -h, 0.0, 0.0, h, h]) {
            assert!((got - want).abs() < 1e-6, "{out:?}");
        }
    }
}
