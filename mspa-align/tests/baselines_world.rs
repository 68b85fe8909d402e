//! The baselines on a tiny synthetic world: MostPop and BPR-MF beat random, the
//! feature models train and beat random, the oracle beats them all.

mod common;

use burn::tensor::Device;
use mspa_align::baselines::{BprMfConfig, ConcatConfig, MostPop, Oracle, OracleMode, VbprConfig};
use mspa_align::fit::{FitRecommender, TrainingData};
use mspa_align::recommender::{Query, RandomRecommender, Recommender, evaluate};
use mspa_align::train::TrainConfig;
use mspa_core::synth::{SyntheticWorldConfig, Truth, generate};
use mspa_core::{Dataset, Split, UserId, load_native};
use mspa_metrics::Protocol;

use common::features;

fn ndcg10(rec: &dyn Recommender, ds: &Dataset, split: &Split) -> f64 {
    let r = evaluate(rec, ds, &split.test, Protocol::RepeatsAllowed, &[10], 64).unwrap();
    r.all.ndcg(10).unwrap()
}

/// A world of 150 users and 40 authors with tiny media, loaded and split.
fn tiny_world(seed: u64) -> (tempfile::TempDir, Dataset, Split) {
    let dir = tempfile::tempdir().unwrap();
    let config = SyntheticWorldConfig {
        seed,
        authors: 40,
        users: 150,
        frames_per_author: 1,
        frame_size: 16,
        audio_seconds: 0.25,
        ..Default::default()
    };
    generate(&config, dir.path()).unwrap();
    let ds = load_native(dir.path()).unwrap();
    let split = Split::leave_last_out(&ds);
    (dir, ds, split)
}

#[test]
fn baselines_world_ranking() {
    let (dir, ds, split) = tiny_world(11);
    assert!(split.test.len() > 100, "{}", split.test.len());
    let device = Device::flex();
    let feats = features(&ds, &Truth::load(dir.path()).unwrap(), 3);

    let random = RandomRecommender::new(ds.n_authors(), 5);
    let mostpop = MostPop::fit(&ds, &split);
    let train = |epochs: usize, lr: f64, negatives: usize| TrainConfig {
        epochs,
        learning_rate: lr,
        batch_size: 128,
        negatives,
        weight_decay: 1e-3,
        patience: 4,
        seed: 1,
        ..TrainConfig::default()
    };
    let data = TrainingData::new(&ds, &split).with_features(&feats);
    let (bpr, bpr_reports) = BprMfConfig {
        dim: 16,
        train: train(25, 0.02, 8),
        ..Default::default()
    }
    .fit_with_curve(&data, &device)
    .unwrap();
    let vbpr = VbprConfig {
        dim: 8,
        visual_dim: 8,
        train: train(25, 0.02, 8),
        ..Default::default()
    }
    .fit(&data, &device, &mut |_| {})
    .unwrap();
    let (concat, concat_reports) = ConcatConfig {
        hidden: 32,
        dim: 16,
        train: train(20, 3e-3, 16),
        ..Default::default()
    }
    .fit_with_curve(&data, &device)
    .unwrap();
    let oracle = Oracle::load(dir.path(), &ds).unwrap();

    let scores: Vec<(String, f64)> = [
        &random as &dyn Recommender,
        &mostpop,
        &bpr,
        &vbpr,
        &concat,
        &oracle,
    ]
    .iter()
    .map(|r| (r.name().to_string(), ndcg10(*r, &ds, &split)))
    .collect();
    for (name, s) in &scores {
        eprintln!("test NDCG@10 {name:>8}: {s:.4}");
    }
    for r in bpr_reports.iter().chain(&concat_reports) {
        eprintln!("{r:?}");
    }
    let s = |name: &str| scores.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(s("MostPop") > s("Random") + 0.03, "{scores:?}");
    assert!(s("BPR-MF") > s("Random") + 0.03, "{scores:?}");
    assert!(s("VBPR") > s("Random") + 0.03, "{scores:?}");
    assert!(s("Concat") > s("Random") + 0.03, "{scores:?}");
    for other in ["MostPop", "BPR-MF", "VBPR", "Concat"] {
        assert!(s("Oracle") > s(other), "{scores:?}");
    }
    // Training went somewhere: the loss fell.
    assert!(bpr_reports.last().unwrap().train_loss < bpr_reports[0].train_loss);
    assert!(concat_reports.last().unwrap().train_loss < concat_reports[0].train_loss);

    // Users the model never saw fall back to the same (bias-only) scores.
    let q = |u: u32| Query {
        user: UserId(u),
        history: &[],
        at_ms: 0,
    };
    let n = ds.n_authors();
    let mut out = vec![0f32; 2 * n];
    bpr.score_batch(&[q(10_000), q(20_000)], &mut out).unwrap();
    assert_eq!(out[..n], out[n..]);
    assert!(out.iter().all(|v| v.is_finite()));
    // A wrong buffer size is an error, not a panic.
    assert!(bpr.score_batch(&[q(0)], &mut out).is_err());

    // The affinity oracle also beats random; the oracle knows no stranger.
    let aff = Oracle::load(dir.path(), &ds)
        .unwrap()
        .with_mode(OracleMode::Affinity);
    assert!(ndcg10(&aff, &ds, &split) > s("Random"));
    let mut row = vec![0f32; n];
    assert!(
        oracle
            .score_batch(&[q(ds.n_users() as u32 + 1)], &mut row)
            .is_err()
    );

    // Feature tables of the wrong size are refused.
    let fewer = TrainingData::new(&ds, &split).with_features(&feats[1..]);
    let err = VbprConfig::default().fit(&fewer, &device, &mut |_| {});
    assert!(err.is_err());
}

/// RepeatPop: the user's own authors first (by weighted tips), then popularity; its
/// weighting is the best of its grid on validation; on a repeat-heavy world it beats
/// MostPop by far.
#[test]
fn repeatpop_ranks_own_authors_first_and_picks_its_weights_on_validation() {
    use mspa_align::baselines::{RepeatPop, RepeatPopConfig, RepeatWeighting};
    let (_dir, ds, split) = tiny_world(12);
    let rule = RepeatPop::fit(&ds, &split, &RepeatPopConfig::default()).unwrap();
    let grid = RepeatPopConfig::default();
    assert_eq!(
        rule.tried().len(),
        grid.half_lives_days.len() * grid.amount_exponents.len()
    );
    let best = rule
        .tried()
        .iter()
        .map(|(_, s)| *s)
        .fold(f64::MIN, f64::max);
    let chosen = rule
        .tried()
        .iter()
        .find(|(w, _)| *w == rule.weighting())
        .unwrap()
        .1;
    assert_eq!(chosen, best);
    let mostpop = MostPop::fit(&ds, &split);
    assert!(
        ndcg10(&rule, &ds, &split) > ndcg10(&mostpop, &ds, &split) + 0.05,
        "RepeatPop {} vs MostPop {}",
        ndcg10(&rule, &ds, &split),
        ndcg10(&mostpop, &ds, &split)
    );

    // A hand-made history: the recent big tip wins with a short half-life, the many old
    // small tips with no decay; every tipped author is above every other.
    let t = &split.test[0];
    let a = |i: u32| mspa_core::AuthorId(i);
    let day = 86_400_000i64;
    let tip = |author: u32, amount: f64, at: i64| mspa_core::TipEvent {
        user: t.user,
        author: a(author),
        amount,
        timestamp_ms: at,
    };
    let history = [
        tip(1, 1.0, 0),
        tip(1, 1.0, day),
        tip(1, 1.0, 2 * day),
        tip(2, 5.0, 30 * day),
    ];
    let q = Query {
        user: t.user,
        history: &history,
        at_ms: 31 * day,
    };
    let n = ds.n_authors();
    let scores = |half_life_days: f64| {
        let r = RepeatPop::new(
            &ds,
            &split,
            RepeatWeighting {
                half_life_days,
                amount_exponent: 0.0,
            },
        );
        let mut out = vec![0f32; n];
        r.score_batch(&[q], &mut out).unwrap();
        out
    };
    let short = scores(1.0);
    assert!(short[2] > short[1]);
    let flat = scores(1e6);
    assert!(flat[1] > flat[2]);
    for s in [&short, &flat] {
        let floor = s[1].min(s[2]);
        assert!(
            s.iter()
                .enumerate()
                .all(|(i, v)| i == 1 || i == 2 || *v < floor)
        );
    }
    // Bad grids are errors naming the field.
    let bad = RepeatPop::fit(
        &ds,
        &split,
        &RepeatPopConfig {
            half_lives_days: vec![0.0],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(bad.to_string().contains("half_lives_days"), "{bad}");
}
