//! The graph baselines: LightGCN's normalised propagation by hand, FREEDOM's frozen kNN
//! author graph and degree-sensitive edge pruning, and both models training on a tiny
//! synthetic world (they beat random, score finitely, and a seed fixes their scores).

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use mspa_align::AlignError;
use mspa_align::baselines::{
    EdgeGraph, FreedomConfig, LightGcnConfig, UserAuthorGraph, author_knn_graph,
    modality_knn_graph, prune_edges,
};
use mspa_align::data::SplitMix64;
use mspa_align::fit::{FitRecommender, TrainingData};
use mspa_align::recommender::{Query, RandomRecommender, Recommender, evaluate};
use mspa_align::train::TrainConfig;
use mspa_core::synth::{SyntheticWorldConfig, Truth, generate};
use mspa_core::{Dataset, Split, UserId, load_native};
use mspa_metrics::Protocol;
use mspa_modal::features::{AuthorFeatures, Modality};

use common::features;

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() < 1e-5
}

/// 2 users, 3 authors: u0-a0, u0-a1, u1-a1, u1-a2.
fn hand_graph() -> UserAuthorGraph {
    // Duplicates are merged (two tips, one edge).
    UserAuthorGraph::new(2, 3, &[(0, 0), (0, 1), (1, 1), (1, 2), (0, 1)]).unwrap()
}

#[test]
fn lightgcn_propagation_matches_hand_computation() {
    let g = hand_graph();
    assert_eq!(g.n_edges(), 4);
    assert_eq!(g.degrees(), (vec![2, 2], vec![1, 2, 1]));
    let s = std::f64::consts::FRAC_1_SQRT_2;
    // Weights 1/sqrt(d_u d_a): u0-a0 = 1/sqrt(2), u0-a1 = 1/2, u1-a1 = 1/2, u1-a2 = 1/sqrt(2).
    let w = g.symmetric_weights();
    for (got, want) in w.iter().zip([s, 0.5, 0.5, s]) {
        assert!(close(*got, want), "{w:?}");
    }
    let a = g.normalized();
    assert_eq!(a.n_nodes, 5);
    assert_eq!(a.n_edges(), 8);

    // One-dimensional embeddings: users [1, 2], authors [3, 5, 7].
    let x0 = [1.0f64, 2.0, 3.0, 5.0, 7.0];
    let x1 = [
        s * 3.0 + 0.5 * 5.0, // u0 <- a0, a1
        0.5 * 5.0 + s * 7.0, // u1 <- a1, a2
        s * 1.0,             // a0 <- u0
        0.5 * 1.0 + 0.5 * 2.0,
        s * 2.0,
    ];
    let x2 = [
        s * x1[2] + 0.5 * x1[3],
        0.5 * x1[3] + s * x1[4],
        s * x1[0],
        0.5 * x1[0] + 0.5 * x1[1],
        s * x1[1],
    ];
    // The CPU step.
    let x0f: Vec<f32> = x0.iter().map(|&v| v as f32).collect();
    let step = a.step_cpu(&x0f, 1);
    for (got, want) in step.iter().zip(x1) {
        assert!(close(*got, want), "{step:?} vs {x1:?}");
    }
    // The tensor propagation: mean of layers 0, 1, 2.
    let device = Device::flex();
    let gt = a.to_tensors(&device);
    let x = Tensor::<2>::from_data(TensorData::new(x0f.clone(), [5, 1]), &device);
    let one: Vec<f32> = gt.step(x.clone()).into_data().try_to_vec::<f32>().unwrap();
    for (got, want) in one.iter().zip(x1) {
        assert!(close(*got, want), "{one:?} vs {x1:?}");
    }
    let mean: Vec<f32> = gt
        .mean_of_layers(x, 2)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    for i in 0..5 {
        let want = (x0[i] + x1[i] + x2[i]) / 3.0;
        assert!(close(mean[i], want), "node {i}: {} vs {want}", mean[i]);
    }
    // Numbers written out: u0 = (1 + (3/sqrt2 + 2.5) + 1.25) / 3.
    assert!(close(mean[0], (1.0 + 3.0 * s + 2.5 + 1.25) / 3.0));
    assert!((mean[0] - 2.2904).abs() < 1e-3, "{}", mean[0]);
}

fn feature_row(v: [f32; 2], has_visual: bool, text: [f32; 2]) -> AuthorFeatures {
    AuthorFeatures {
        visual: if has_visual { v.to_vec() } else { vec![0.0; 2] },
        audio: vec![],
        text: text.to_vec(),
        present: [has_visual, false, true],
    }
}

#[test]
fn knn_graph_keeps_k_neighbours_and_is_normalised() {
    // Visual vectors at angles 0, 10, 20, 90, 100 degrees; author 5 has no visual.
    let ang = |d: f32| {
        let r = d.to_radians();
        [r.cos(), r.sin()]
    };
    let feats = vec![
        feature_row(ang(0.0), true, [1.0, 0.0]),
        feature_row(ang(10.0), true, [1.0, 0.1]),
        feature_row(ang(20.0), true, [0.0, 1.0]),
        feature_row(ang(90.0), true, [0.1, 1.0]),
        feature_row(ang(100.0), true, [1.0, 0.2]),
        feature_row([0.0, 0.0], false, [0.0, 1.0]),
    ];
    let g = modality_knn_graph(&feats, Modality::Visual, 2).unwrap();
    assert_eq!(g.n_nodes, 6);
    let in_edges = |g: &EdgeGraph, a: u32| -> Vec<(u32, f32)> {
        let mut v: Vec<(u32, f32)> = g
            .dst
            .iter()
            .zip(&g.src)
            .zip(&g.weight)
            .filter(|((d, _), _)| **d == a)
            .map(|((_, s), w)| (*s, *w))
            .collect();
        v.sort_by_key(|x| x.0);
        v
    };
    // Exactly k = 2 neighbours per author with the modality, never itself, never author 5.
    for a in 0..5u32 {
        let nb = in_edges(&g, a);
        assert_eq!(nb.len(), 2, "author {a}: {nb:?}");
        assert!(nb.iter().all(|&(s, _)| s != a && s != 5));
    }
    assert!(in_edges(&g, 5).is_empty());
    assert!(g.src.iter().all(|&s| s != 5));
    let ids = |a: u32| in_edges(&g, a).iter().map(|x| x.0).collect::<Vec<_>>();
    assert_eq!(ids(0), vec![1, 2]);
    assert_eq!(ids(1), vec![0, 2]);
    assert_eq!(ids(3), vec![2, 4]);
    assert_eq!(ids(4), vec![2, 3]);
    // Symmetric normalisation: w = 1 / sqrt(d_dst d_src) with every degree 2.
    let mut deg = [0usize; 6];
    for &d in &g.dst {
        deg[d as usize] += 1;
    }
    for ((&s, &d), &w) in g.src.iter().zip(&g.dst).zip(&g.weight) {
        let want = 1.0 / ((deg[d as usize] * deg[s as usize]) as f64).sqrt();
        assert!(close(w, want), "{s}->{d}: {w} vs {want}");
    }
    // k beyond the authors that have the modality keeps all the others.
    let big = modality_knn_graph(&feats, Modality::Visual, 50).unwrap();
    for a in 0..5u32 {
        assert_eq!(in_edges(&big, a).len(), 4);
    }
    // No author has audio: no graph.
    assert!(modality_knn_graph(&feats, Modality::Audio, 2).is_none());

    // The combined graph: every author with a modality gets rows summing to 1; author 5
    // (text only) gets its text row in full.
    let comb = author_knn_graph(&feats, [0.5, 0.5, 0.5], 2);
    let text = modality_knn_graph(&feats, Modality::Text, 2).unwrap();
    for a in 0..6u32 {
        let sum: f32 = in_edges(&comb, a).iter().map(|x| x.1).sum();
        assert!((sum - 1.0).abs() < 1e-5, "author {a}: {sum}");
    }
    assert_eq!(in_edges(&comb, 5), in_edges(&text, 5));
    // Visual weight 0: the text graph alone.
    let only_text = author_knn_graph(&feats, [0.0, 1.0, 1.0], 2);
    for a in 0..6u32 {
        assert_eq!(in_edges(&only_text, a), in_edges(&text, a));
    }
}

#[test]
fn pruning_keeps_the_configured_fraction() {
    let mut rng = SplitMix64::new(3);
    let pairs: Vec<(u32, u32)> = (0..600)
        .map(|_| {
            // Skewed authors: low ids are popular.
            let u = rng.below(80) as u32;
            let a = (rng.below(30) * rng.below(30) / 30) as u32;
            (u, a)
        })
        .collect();
    let g = UserAuthorGraph::new(80, 30, &pairs).unwrap();
    let e = g.n_edges();
    for rho in [0.1, 0.5, 0.8] {
        let p = prune_edges(&g, rho, &mut SplitMix64::new(7));
        assert_eq!(
            p.n_edges(),
            ((1.0 - rho) * e as f64).floor() as usize,
            "rho {rho}"
        );
        // A subset of the distinct original edges, sorted and unique.
        assert!(p.edges.windows(2).all(|w| w[0] < w[1]));
        assert!(p.edges.iter().all(|x| g.edges.binary_search(x).is_ok()));
        // The same seed prunes the same edges; another seed others.
        assert_eq!(p, prune_edges(&g, rho, &mut SplitMix64::new(7)));
        assert_ne!(p, prune_edges(&g, rho, &mut SplitMix64::new(8)));
        // The kept graph is re-normalised with its own degrees.
        let n = p.normalized();
        assert_eq!(n.n_edges(), 2 * p.n_edges());
        let (du, da) = p.degrees();
        for ((&s, &d), &w) in n.src.iter().zip(&n.dst).zip(&n.weight) {
            let (u, a) = if s < 80 { (s, d - 80) } else { (d, s - 80) };
            let want = 1.0 / (f64::from(du[u as usize]) * f64::from(da[a as usize])).sqrt();
            assert!(close(w, want));
        }
    }
    // Degree-sensitive: edges between low-degree nodes survive more often.
    let w = g.symmetric_weights();
    let mean_all = w.iter().sum::<f32>() / e as f32;
    let p = prune_edges(&g, 0.8, &mut SplitMix64::new(9));
    let kept_w: Vec<f32> = p
        .edges
        .iter()
        .map(|x| w[g.edges.binary_search(x).unwrap()])
        .collect();
    let mean_kept = kept_w.iter().sum::<f32>() / kept_w.len() as f32;
    assert!(mean_kept > mean_all, "{mean_kept} vs {mean_all}");
    // rho = 0 keeps everything.
    assert_eq!(prune_edges(&g, 0.0, &mut SplitMix64::new(1)), g);
}

struct World {
    _dir: tempfile::TempDir,
    ds: Dataset,
    split: Split,
    feats: Vec<AuthorFeatures>,
}

fn tiny_world() -> World {
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
    // Stand-in media features (tests only: built from the world's latent attributes).
    let feats = features(&ds, &Truth::load(dir.path()).unwrap(), 3);
    World {
        _dir: dir,
        ds,
        split,
        feats,
    }
}

fn ndcg10(rec: &dyn Recommender, ds: &Dataset, split: &Split) -> f64 {
    let r = evaluate(rec, ds, &split.test, Protocol::RepeatsAllowed, &[10], 64).unwrap();
    r.all.ndcg(10).unwrap()
}

fn train(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 128,
        learning_rate: 0.01,
        weight_decay: 0.0,
        negatives: 8,
        patience: 4,
        seed: 1,
        ..TrainConfig::default()
    }
}

fn all_scores(rec: &dyn Recommender, ds: &Dataset) -> Vec<f32> {
    let n = ds.n_authors();
    let users: Vec<Query<'_>> = (0..ds.n_users() as u32)
        .map(|u| Query {
            user: UserId(u),
            history: &[],
            at_ms: 0,
        })
        .collect();
    let mut out = vec![0f32; users.len() * n];
    rec.score_batch(&users, &mut out).unwrap();
    out
}

#[test]
fn graph_baselines_train_and_beat_random() {
    let w = tiny_world();
    let (ds, split) = (&w.ds, &w.split);
    let device = Device::flex();
    let random = ndcg10(&RandomRecommender::new(ds.n_authors(), 5), ds, split);

    let data = TrainingData::new(ds, split).with_features(&w.feats);
    let lg_config = LightGcnConfig {
        dim: 32,
        train: train(12),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let (lg, lg_reports) = lg_config.fit_with_curve(&data, &device).unwrap();
    let lg_secs = started.elapsed().as_secs_f64();
    let fr_config = FreedomConfig {
        dim: 32,
        modality_weights: [1.0, 1.0, 1.0],
        train: train(12),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let (fr, fr_reports) = fr_config.fit_with_curve(&data, &device).unwrap();
    let fr_secs = started.elapsed().as_secs_f64();
    assert_eq!(lg.name(), "LightGCN");
    assert_eq!(fr.name(), "FREEDOM");

    let s_lg = ndcg10(&lg, ds, split);
    let s_fr = ndcg10(&fr, ds, split);
    eprintln!(
        "test NDCG@10: Random {random:.4}, LightGCN {s_lg:.4} ({} epochs, {lg_secs:.1} s), FREEDOM {s_fr:.4} ({} epochs, {fr_secs:.1} s)",
        lg_reports.len(),
        fr_reports.len()
    );
    for r in lg_reports.iter().chain(&fr_reports) {
        eprintln!("{r:?}");
    }
    assert!(s_lg > random + 0.03, "LightGCN {s_lg} vs random {random}");
    assert!(s_fr > random + 0.03, "FREEDOM {s_fr} vs random {random}");
    assert!(lg_reports.last().unwrap().train_loss < lg_reports[0].train_loss);
    assert!(fr_reports.last().unwrap().train_loss < fr_reports[0].train_loss);

    // Finite scores for every user; users never seen score 0 everywhere.
    for rec in [&lg as &dyn Recommender, &fr] {
        assert!(all_scores(rec, ds).iter().all(|v| v.is_finite()));
        let n = ds.n_authors();
        let mut out = vec![1f32; 2 * n];
        let q = |u: u32| Query {
            user: UserId(u),
            history: &[],
            at_ms: 0,
        };
        rec.score_batch(&[q(10_000), q(20_000)], &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 0.0));
        // A wrong buffer size is an error, not a panic.
        assert!(rec.score_batch(&[q(0)], &mut out).is_err());
    }

    // Same seed, same scores (two short runs each).
    let short_lg = LightGcnConfig {
        dim: 16,
        train: train(2),
        ..Default::default()
    };
    let a = short_lg.fit(&data, &device, &mut |_| {}).unwrap();
    let b = short_lg.fit(&data, &device, &mut |_| {}).unwrap();
    assert_eq!(all_scores(&a, ds), all_scores(&b, ds));
    let short_fr = FreedomConfig {
        dim: 16,
        edge_dropout: 0.5,
        train: train(2),
        ..Default::default()
    };
    let a = short_fr.fit(&data, &device, &mut |_| {}).unwrap();
    let b = short_fr.fit(&data, &device, &mut |_| {}).unwrap();
    assert_eq!(all_scores(&a, ds), all_scores(&b, ds));
    // Another seed, other scores.
    let other = FreedomConfig {
        train: TrainConfig {
            seed: 2,
            ..short_fr.train.clone()
        },
        ..short_fr.clone()
    };
    let c = other.fit(&data, &device, &mut |_| {}).unwrap();
    assert_ne!(all_scores(&a, ds), all_scores(&c, ds));

    // A feature table of the wrong size is refused.
    let fewer = TrainingData::new(ds, split).with_features(&w.feats[1..]);
    assert!(short_fr.fit(&fewer, &device, &mut |_| {}).is_err());
}

fn field_of(err: AlignError) -> String {
    match err {
        AlignError::Config { field, .. } => field,
        other => panic!("expected a config error, got {other}"),
    }
}

#[test]
fn config_errors_name_the_field() {
    let w = tiny_world();
    let (ds, split) = (&w.ds, &w.split);
    let device = Device::flex();
    let data = TrainingData::new(ds, split).with_features(&w.feats);
    let lg = |c: LightGcnConfig| {
        field_of(
            c.fit(&data, &device, &mut |_| {})
                .expect_err("config must be refused"),
        )
    };
    let d = LightGcnConfig::default();
    assert_eq!(
        lg(LightGcnConfig {
            dim: 0,
            ..d.clone()
        }),
        "dim"
    );
    assert_eq!(
        lg(LightGcnConfig {
            reg: -1.0,
            ..d.clone()
        }),
        "reg"
    );
    assert_eq!(
        lg(LightGcnConfig {
            reg: f64::NAN,
            ..d.clone()
        }),
        "reg"
    );
    assert_eq!(
        lg(LightGcnConfig {
            init_std: 0.0,
            ..d.clone()
        }),
        "init_std"
    );
    let bad_train = TrainConfig {
        learning_rate: 0.0,
        ..d.train.clone()
    };
    assert_eq!(
        lg(LightGcnConfig {
            train: bad_train.clone(),
            ..d.clone()
        }),
        "learning_rate"
    );

    let fr = |c: FreedomConfig| {
        field_of(
            c.fit(&data, &device, &mut |_| {})
                .expect_err("config must be refused"),
        )
    };
    let f = FreedomConfig::default();
    assert_eq!(
        fr(FreedomConfig {
            dim: 0,
            ..f.clone()
        }),
        "dim"
    );
    assert_eq!(
        fr(FreedomConfig {
            knn_k: 0,
            ..f.clone()
        }),
        "knn_k"
    );
    for weights in [[0.0; 3], [-1.0, 1.0, 1.0], [f64::INFINITY, 0.0, 0.0]] {
        assert_eq!(
            fr(FreedomConfig {
                modality_weights: weights,
                ..f.clone()
            }),
            "modality_weights"
        );
    }
    for rho in [-0.1, 1.0, f64::NAN] {
        assert_eq!(
            fr(FreedomConfig {
                edge_dropout: rho,
                ..f.clone()
            }),
            "edge_dropout"
        );
    }
    assert_eq!(
        fr(FreedomConfig {
            lambda: -1.0,
            ..f.clone()
        }),
        "lambda"
    );
    assert_eq!(
        fr(FreedomConfig {
            reg: -1.0,
            ..f.clone()
        }),
        "reg"
    );
    assert_eq!(
        fr(FreedomConfig {
            init_std: -1.0,
            ..f.clone()
        }),
        "init_std"
    );
    assert_eq!(
        fr(FreedomConfig {
            train: bad_train,
            ..f.clone()
        }),
        "learning_rate"
    );
    // Only a modality no author has: refused, naming the weights.
    let no_audio = [0.0, 1.0, 0.0];
    let feats: Vec<AuthorFeatures> = w
        .feats
        .iter()
        .map(|x| {
            let mut x = x.clone();
            x.present[1] = false;
            x
        })
        .collect();
    let err = FreedomConfig {
        modality_weights: no_audio,
        ..f.clone()
    }
    .fit(
        &TrainingData::new(ds, split).with_features(&feats),
        &device,
        &mut |_| {},
    )
    .err()
    .unwrap();
    assert_eq!(field_of(err), "modality_weights");
    // Serde: missing fields take their defaults.
    let parsed: FreedomConfig = serde_json::from_str(r#"{"knn_k": 5}"#).unwrap();
    assert_eq!(parsed, FreedomConfig { knn_k: 5, ..f });
    let parsed: LightGcnConfig = serde_json::from_str(r#"{"layers": 1}"#).unwrap();
    assert_eq!(parsed, LightGcnConfig { layers: 1, ..d });
}
