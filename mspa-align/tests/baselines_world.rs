//! The baselines on a tiny synthetic world: MostPop and BPR-MF beat random, the
//! feature models train and beat random, the oracle beats them all.

mod common;

use burn::tensor::Device;
use mspa_align::baselines::{
    BprMf, BprMfConfig, Concat, ConcatConfig, MostPop, Oracle, OracleMode, Vbpr, VbprConfig,
};
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

#[test]
fn baselines_world_ranking() {
    let dir = tempfile::tempdir().unwrap();
    let config = SyntheticWorldConfig {
        seed: 11,
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
    let (bpr, bpr_reports) = BprMf::fit(
        &ds,
        &split,
        &BprMfConfig {
            dim: 16,
            train: train(25, 0.02, 8),
            ..Default::default()
        },
        &device,
        |_| {},
    )
    .unwrap();
    let (vbpr, _) = Vbpr::fit(
        &ds,
        &split,
        &feats,
        &VbprConfig {
            dim: 8,
            visual_dim: 8,
            train: train(25, 0.02, 8),
            ..Default::default()
        },
        &device,
        |_| {},
    )
    .unwrap();
    let (concat, concat_reports) = Concat::fit(
        &ds,
        &split,
        &feats,
        &ConcatConfig {
            hidden: 32,
            dim: 16,
            train: train(20, 3e-3, 16),
            ..Default::default()
        },
        &device,
        |_| {},
    )
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
    let err = Vbpr::fit(
        &ds,
        &split,
        &feats[1..],
        &VbprConfig::default(),
        &device,
        |_| {},
    );
    assert!(err.is_err());
}
