//! Unit tests of the MSPA network: shapes, log-probabilities, modality masks, the
//! correction steps, text and cold users, the loss weights and config validation.

use super::*;
use crate::data::SplitMix64;
use mspa_core::{AuthorId, TipEvent, UserId};
use mspa_modal::features::AuthorFeatures;

const DIMS: [usize; 3] = [4, 3, 5];
const TEXT_DIM: usize = 6;
const N_AUTHORS: usize = 6;
const DAY: i64 = 86_400_000;

/// Random features; author 1 has no audio, author 4 no visual.
fn features() -> Vec<AuthorFeatures> {
    let mut rng = SplitMix64::new(3);
    (0..N_AUTHORS)
        .map(|a| {
            let mut f = AuthorFeatures::empty(DIMS);
            f.present = [a != 4, a != 1, true];
            for (m, v) in [&mut f.visual, &mut f.audio, &mut f.text]
                .into_iter()
                .enumerate()
            {
                if f.present[m] {
                    v.iter_mut().for_each(|x| *x = rng.normal() as f32);
                }
            }
            f
        })
        .collect()
}

fn tip(user: u32, author: u32, amount: f64, day: i64) -> TipEvent {
    TipEvent {
        user: UserId(user),
        author: AuthorId(author),
        amount,
        timestamp_ms: day * DAY,
    }
}

/// User 0 tipped authors 0, 2, 0; user 1 tipped author 3; user 2 is cold.
fn histories() -> Vec<(Vec<TipEvent>, i64)> {
    vec![
        (
            vec![tip(0, 0, 5.0, 1), tip(0, 2, 1.0, 3), tip(0, 0, 20.0, 5)],
            6 * DAY,
        ),
        (vec![tip(1, 3, 1.0, 2)], 4 * DAY),
        (Vec::new(), 4 * DAY),
    ]
}

fn text(device: &Device, seed: u64) -> Tensor<2> {
    let mut rng = SplitMix64::new(seed);
    let v: Vec<f32> = (0..3 * TEXT_DIM).map(|_| rng.normal() as f32).collect();
    Tensor::from_data(TensorData::new(v, [3, TEXT_DIM]), device)
}

/// All three users against every author.
fn input(device: &Device, text: Option<Tensor<2>>) -> MspaInput {
    let owned = histories();
    let hist: Vec<(&[TipEvent], i64)> = owned.iter().map(|(h, t)| (h.as_slice(), *t)).collect();
    let candidates: Vec<usize> = (0..N_AUTHORS).collect();
    MspaInput {
        tips: TipBatch::build(&hist, 2, device),
        text,
        authors: AuthorTable::build(&features(), &[2, 0, 1, 1, 0, 0], device).unwrap(),
        candidate_ids: Tensor::<1, Int>::arange(0..N_AUTHORS as i64, device),
        pairs: pair_features(&hist, &candidates, device),
        dropout: None,
    }
}

fn config() -> MspaConfig {
    MspaConfig::new(DIMS, TEXT_DIM, N_AUTHORS).with_d_model(8)
}

/// `config`'s model and its output for the three users, with text.
fn model_and_output(config: MspaConfig, device: &Device) -> (Mspa, MspaOutput) {
    let model = config.init(device).unwrap();
    let out = model.forward(&input(device, Some(text(device, 1))));
    (model, out)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn ints(t: Tensor<2, Int>) -> Vec<i64> {
    t.into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .unwrap()
}

/// The largest elementwise difference of two score tensors of one shape.
fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn forward_returns_the_documented_shapes() {
    let device = Device::flex();
    let config = config().with_correction_steps(2).with_shortlist(4);
    let (_, out) = model_and_output(config, &device);
    assert_eq!(out.step_scores().len(), 3);
    for s in &out.step_scores() {
        assert_eq!(s.dims(), [3, N_AUTHORS]);
    }
    assert_eq!(out.shortlist.as_ref().map(|s| s.dims()), Some([3, 4]));
    assert_eq!(out.corrected_scores.len(), 2);
    for s in &out.corrected_scores {
        assert_eq!(s.dims(), [3, 4]);
    }
    assert_eq!(out.modality_weights().dims(), [3, N_AUTHORS, 3]);
    assert_eq!(out.gates.len(), 2);
    for g in &out.gates {
        assert_eq!(g.dims(), [3]);
    }
    assert_eq!(out.content.dims(), [N_AUTHORS, 8]);
    assert_eq!(out.text_preference.map(|t| t.dims()), Some([3, 8]));
}

#[test]
fn scores_are_log_probabilities_and_missing_modalities_get_no_weight() {
    let device = Device::flex();
    let (_, out) = model_and_output(config().with_shortlist(4), &device);
    let sums_to_one = |s: Tensor<2>, width: usize| {
        for row in values(s).chunks(width) {
            let total: f32 = row.iter().map(|x| x.exp()).sum();
            assert!((total - 1.0).abs() < 1e-4, "row sums to {total}: {row:?}");
        }
    };
    sums_to_one(out.initial_scores.clone(), N_AUTHORS);
    for s in out.corrected_scores.clone() {
        sums_to_one(s, 4);
    }
    let w = values(out.modality_weights());
    for user in 0..3 {
        let at = |a: usize, m: usize| w[(user * N_AUTHORS + a) * 3 + m];
        assert!(at(1, 1) < 1e-6, "author 1 has no audio");
        assert!(at(4, 0) < 1e-6, "author 4 has no visual");
        for a in 0..N_AUTHORS {
            assert!(((0..3).map(|m| at(a, m)).sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn correction_steps_change_the_scores() {
    let device = Device::flex();
    let (_, out) = model_and_output(config().with_correction_steps(2), &device);
    let difference = max_abs_diff(
        out.corrected_scores[0].clone(),
        out.corrected_scores[1].clone(),
    );
    assert!(
        difference > 1e-4,
        "the second correction step left the scores unchanged"
    );
    for g in values(out.gates[0].clone()) {
        assert!(g > 0.0 && g < 1.0, "gate {g}");
    }
}

#[test]
fn zero_correction_steps_score_once() {
    let device = Device::flex();
    let (model, out) = model_and_output(config().with_correction_steps(0), &device);
    assert_eq!(out.step_scores().len(), 1);
    assert!(out.shortlist.is_none());
    assert!(out.gates.is_empty());
    assert_eq!(model.correction_steps(), 0);
}

#[test]
fn text_changes_the_scores_only_when_used() {
    let device = Device::flex();
    let with_text = config().init(&device).unwrap();
    assert!(with_text.uses_text());
    let a = with_text.forward(&input(&device, Some(text(&device, 1))));
    let b = with_text.forward(&input(&device, Some(text(&device, 2))));
    for (sa, sb) in a.step_scores().into_iter().zip(b.step_scores()) {
        assert!(max_abs_diff(sa, sb) > 1e-4);
    }

    let without = config().with_use_text(false).init(&device).unwrap();
    assert!(!without.uses_text());
    let a = without.forward(&input(&device, Some(text(&device, 1))));
    let b = without.forward(&input(&device, Some(text(&device, 2))));
    assert!(a.text_preference.is_none());
    for (sa, sb) in a.step_scores().into_iter().zip(b.step_scores()) {
        assert_eq!(values(sa), values(sb));
    }
}

#[test]
fn a_cold_user_gets_finite_scores_from_the_cold_vector() {
    let device = Device::flex();
    let model = config().with_use_text(false).init(&device).unwrap();
    let out = model.forward(&input(&device, None));
    for s in out.step_scores() {
        let v = values(s);
        assert!(v.iter().all(|x| x.is_finite()), "{v:?}");
    }
    // Alone in its batch, with no author having training tips.
    let owned: Vec<(Vec<TipEvent>, i64)> = vec![(Vec::new(), DAY)];
    let hist: Vec<(&[TipEvent], i64)> = owned.iter().map(|(h, t)| (h.as_slice(), *t)).collect();
    let candidates: Vec<usize> = (0..N_AUTHORS).collect();
    let alone = MspaInput {
        tips: TipBatch::build(&hist, 4, &device),
        text: None,
        authors: AuthorTable::build(&features(), &[0; N_AUTHORS], &device).unwrap(),
        candidate_ids: Tensor::<1, Int>::arange(0..N_AUTHORS as i64, &device),
        pairs: pair_features(&hist, &candidates, &device),
        dropout: None,
    };
    let out = model.forward(&alone);
    assert!(values(out.final_scores()).iter().all(|x| x.is_finite()));
}

#[test]
fn the_loss_weights_later_steps_more() {
    let device = Device::flex();
    let n = 4;
    let uniform = Tensor::<2>::zeros([1, n], &device);
    // Step 1 re-ranks a shortlist of the four candidates in reverse order: the positive
    // (candidate 0) is its last entry.
    let output = MspaOutput {
        initial_scores: uniform,
        initial_weights: Tensor::zeros([1, n, 3], &device),
        shortlist: Some(Tensor::<2, Int>::from_data(
            TensorData::new(vec![3i64, 2, 1, 0], [1, n]),
            &device,
        )),
        corrected_scores: vec![Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 0.0, 100.0], [1, n]),
            &device,
        )],
        corrected_weights: None,
        gates: Vec::new(),
        content: Tensor::zeros([n, 2], &device),
        text_preference: None,
        preference: Tensor::zeros([1, 2], &device),
    };
    let positives = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
    let loss = values(mspa_loss(&output, positives, 1.0))[0];
    // Step 0 (weight 1/3) costs ln 4, step 1 (weight 2/3) nothing.
    let expected = (n as f32).ln() / 3.0;
    assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");

    // A positive off the shortlist costs at step 0 only.
    let off_list = MspaOutput {
        shortlist: Some(Tensor::<2, Int>::from_data(
            TensorData::new(vec![3i64, 2], [1, 2]),
            &device,
        )),
        corrected_scores: vec![Tensor::<2>::zeros([1, 2], &device)],
        ..output
    };
    let positives = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
    let loss = values(mspa_loss(&off_list, positives, 1.0))[0];
    assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
}

#[test]
fn the_shortlist_is_step_zeros_top_k_and_ranks_first() {
    let device = Device::flex();
    let model = config().with_shortlist(2).init(&device).unwrap();
    let out = model.forward(&input(&device, Some(text(&device, 1))));
    let shortlist = out.shortlist.clone().unwrap();
    let initial = values(out.initial_scores.clone());
    let listed: Vec<i64> = ints(shortlist.clone());
    let final_scores = values(out.final_scores());
    for user in 0..3 {
        let row = &initial[user * N_AUTHORS..(user + 1) * N_AUTHORS];
        let mut order: Vec<usize> = (0..N_AUTHORS).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let mut picked = vec![listed[user * 2] as usize, listed[user * 2 + 1] as usize];
        picked.sort_unstable();
        let mut top = order[..2].to_vec();
        top.sort_unstable();
        assert_eq!(
            picked, top,
            "user {user}: the shortlist is the top 2 of step 0"
        );
        // Shortlisted candidates rank above all the others.
        let f = &final_scores[user * N_AUTHORS..(user + 1) * N_AUTHORS];
        let lowest_listed = picked.iter().map(|&a| f[a]).fold(f32::INFINITY, f32::min);
        for a in order[2..].iter() {
            assert!(
                f[*a] < lowest_listed,
                "user {user}: author {a} outranks the shortlist"
            );
        }
    }
}

#[test]
fn a_shortlist_of_every_candidate_re_ranks_all_of_them() {
    let device = Device::flex();
    let all = config().with_shortlist(0).init(&device).unwrap();
    let out = all.forward(&input(&device, Some(text(&device, 1))));
    assert_eq!(
        out.shortlist.as_ref().map(|s| s.dims()),
        Some([3, N_AUTHORS])
    );
    let final_scores = values(out.final_scores());
    assert!(final_scores.iter().all(|x| *x > -SHORTLIST_MARGIN / 2.0));
}

#[test]
fn config_validation_names_the_field() {
    let field = |c: MspaConfig| match c.validate() {
        Err(AlignError::Config { field, .. }) => field,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert_eq!(field(config().with_d_model(0)), "d_model");
    assert_eq!(field(config().with_modalities([false; 3])), "modalities");
    assert_eq!(field(config().with_dropout(1.0)), "dropout");
    assert_eq!(field(MspaConfig::new(DIMS, 0, N_AUTHORS)), "text_dim");
    assert!(
        MspaConfig::new(DIMS, 0, N_AUTHORS)
            .with_use_text(false)
            .validate()
            .is_ok()
    );
}

/// Authors 0 to 3 share one visual vector, their audio and text vectors differ; a user
/// who tipped authors 0, 1 and 2 (one of them twice) and one who tipped 0, 4 and 5.
fn coherence_input(device: &Device) -> MspaInput {
    let mut rng = SplitMix64::new(9);
    let shared: Vec<f32> = (0..DIMS[0]).map(|_| rng.normal() as f32).collect();
    let features: Vec<AuthorFeatures> = (0..N_AUTHORS)
        .map(|a| {
            let mut f = AuthorFeatures::empty(DIMS);
            f.present = [true; 3];
            for v in [&mut f.visual, &mut f.audio, &mut f.text] {
                v.iter_mut().for_each(|x| *x = rng.normal() as f32);
            }
            if a < 4 {
                f.visual = shared.clone();
            }
            f
        })
        .collect();
    let owned = [
        (
            vec![
                tip(0, 0, 1.0, 1),
                tip(0, 1, 1.0, 2),
                tip(0, 2, 1.0, 3),
                tip(0, 1, 1.0, 4),
            ],
            5 * DAY,
        ),
        (
            vec![tip(1, 0, 1.0, 1), tip(1, 4, 1.0, 2), tip(1, 5, 1.0, 3)],
            5 * DAY,
        ),
    ];
    let hist: Vec<(&[TipEvent], i64)> = owned.iter().map(|(h, t)| (h.as_slice(), *t)).collect();
    let candidates: Vec<usize> = (0..N_AUTHORS).collect();
    MspaInput {
        tips: TipBatch::build(&hist, 8, device),
        text: None,
        authors: AuthorTable::build(&features, &[1; N_AUTHORS], device).unwrap(),
        candidate_ids: Tensor::<1, Int>::arange(0..N_AUTHORS as i64, device),
        pairs: pair_features(&hist, &candidates, device),
        dropout: None,
    }
}

#[test]
fn history_coherence_is_the_mean_cosine_of_the_distinct_authors() {
    let device = Device::flex();
    let input = coherence_input(&device);
    // The latest tip of each distinct author: user 0's second tip of author 1 replaces
    // its first.
    assert_eq!(
        values(input.tips.distinct.clone()),
        vec![1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    );
    let c = values(history_coherence(&input.authors, &input.tips, [true; 3]));
    // User 0's three authors share the visual vector: coherence 1 there.
    assert!((c[0] - 1.0).abs() < 1e-5, "{c:?}");
    for v in &c[1..] {
        assert!(*v < 0.9 && *v >= -1.0, "{c:?}");
    }
    // Without the visual modality, its coherence is 0.
    let c = values(history_coherence(
        &input.authors,
        &input.tips,
        [false, true, true],
    ));
    assert_eq!((c[0], c[3]), (0.0, 0.0));
}

#[test]
fn a_coherent_modality_draws_the_attention() {
    let device = Device::flex();
    let input = coherence_input(&device);
    let model = config().with_use_text(false).init(&device).unwrap();
    let weights = values(model.forward(&input).initial_weights);
    // Mean visual weight over the candidates: user 0 (coherent in visual) against
    // user 1 (not); the network is the same, only the histories differ.
    let visual = |u: usize| {
        (0..N_AUTHORS)
            .map(|a| weights[(u * N_AUTHORS + a) * 3])
            .sum::<f32>()
    };
    assert!(
        visual(0) > visual(1) + 0.5,
        "{} vs {}",
        visual(0),
        visual(1)
    );
}

#[test]
fn dropout_masks_come_from_the_seed_and_the_batch_and_change_the_preference() {
    let device = Device::flex();
    let model = config().init(&device).unwrap();
    let examples: Vec<Example> = (0..3)
        .map(|u| Example {
            user: UserId(u),
            history: 0..0,
            positive: AuthorId(0),
            at_ms: 6 * DAY,
        })
        .collect();
    let batch: Vec<&Example> = examples.iter().collect();
    let masks = model.draw_dropout(5, &batch, &device).unwrap();
    assert_eq!(masks.pooled.dims(), [3, 8]);
    assert_eq!(masks.text.as_ref().map(|t| t.dims()), Some([3, TEXT_DIM]));
    let again = model.draw_dropout(5, &batch, &device).unwrap();
    assert_eq!(values(masks.pooled.clone()), values(again.pooled));
    let other = model.draw_dropout(5, &batch[..2], &device).unwrap();
    assert_ne!(
        values(masks.pooled.clone().slice([0..2, 0..8])),
        values(other.pooled),
        "another batch draws other masks"
    );

    let plain = model.forward(&input(&device, Some(text(&device, 1))));
    let dropped = model.forward(&MspaInput {
        dropout: Some(masks),
        ..input(&device, Some(text(&device, 1)))
    });
    assert!(max_abs_diff(plain.preference, dropped.preference) > 1e-4);
    let off = config().with_dropout(0.0).init(&device).unwrap();
    assert!(off.draw_dropout(5, &batch, &device).is_none());
}

#[test]
fn tip_weights_add_up_per_tipped_author_and_views_take_three_rows_each() {
    let device = Device::flex();
    let slots =
        Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 1, 0, 2, 0, 0], [2, 3]), &device);
    let weights = Tensor::<2>::from_data(
        TensorData::new(vec![0.5f32, 0.25, 0.25, 1.0, 0.0, 0.0], [2, 3]),
        &device,
    );
    assert_eq!(
        values(spread(&weights, &slots, 3)),
        vec![0.75, 0.25, 0.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        ints(view_slots(&slots)),
        vec![0, 1, 2, 3, 4, 5, 0, 1, 2, 6, 7, 8, 0, 1, 2, 0, 1, 2]
    );
}

#[test]
fn the_first_shortlist_step_read_from_step_zero_equals_scoring_the_shortlist_again() {
    let device = Device::flex();
    let model = config().with_shortlist(3).init(&device).unwrap();
    let input = input(&device, Some(text(&device, 1)));
    let coherence = history_coherence(&input.authors, &input.tips, model.modalities);
    let authors = model.author_views(&input.authors);
    let history = model.pool_history(&authors, &input.tips);
    let (preference, _) =
        model.initial_preference(history.pooled, history.any, input.text.as_ref(), None);
    let (candidates, _, _) = model.gather_evidence(authors, &input, history.attention);
    let initial = model.score_candidates(&preference, &coherence, &candidates);
    let shortlist = model.select_shortlist(&initial.scores);
    let listed = candidates.shortlist(&shortlist);
    let read = model.on_shortlist(&initial, &shortlist, &preference, &listed);
    let scored = model.score_candidates(&preference, &coherence, &listed);
    assert_eq!(read.scores.dims(), [3, 3]);
    assert!(max_abs_diff(read.scores, scored.scores) < 1e-6);
    assert!(max_abs_diff(read.explore, scored.explore) < 1e-6);
    assert!(max_abs_diff(read.query, scored.query) < 1e-6);
    assert!(max_abs_diff(read.weights.reshape([3, 9]), scored.weights.reshape([3, 9])) < 1e-6);
}
