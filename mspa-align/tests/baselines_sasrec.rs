//! SASRec: it trains and beats random on a tiny synthetic world, scores are finite (also
//! for a user without tips), it learns the repeat signal, bad configs name their field,
//! and one seed gives one model.

use burn::tensor::Device;
use mspa_align::AlignError;
use mspa_align::baselines::SasRecConfig;
use mspa_align::fit::{FitRecommender, TrainingData};
use mspa_align::recommender::{Query, RandomRecommender, Recommender, evaluate};
use mspa_align::train::TrainConfig;
use mspa_core::synth::{SyntheticWorldConfig, generate};
use mspa_core::{
    Author, AuthorId, Dataset, DatasetBuilder, ExternalId, Split, UserId, load_native,
};
use mspa_metrics::Protocol;

fn ndcg10(rec: &dyn Recommender, ds: &Dataset, split: &Split) -> f64 {
    let r = evaluate(rec, ds, &split.test, Protocol::RepeatsAllowed, &[10], 64).unwrap();
    r.all.ndcg(10).unwrap()
}

fn small(epochs: usize, seed: u64) -> SasRecConfig {
    SasRecConfig {
        dim: 32,
        layers: 2,
        heads: 2,
        max_len: 20,
        dropout: 0.2,
        train: TrainConfig {
            epochs,
            batch_size: 64,
            learning_rate: 5e-3,
            weight_decay: 1e-4,
            patience: 3,
            seed,
            ..SasRecConfig::default().train
        },
        ..SasRecConfig::default()
    }
}

/// 40 users x 30 authors; each user tips a few distinct authors, then tips the last of
/// them over and over: the next tip always goes to the author of the previous tip.
fn repeat_toy() -> (Dataset, Split) {
    let mut b = DatasetBuilder::default();
    let authors: Vec<AuthorId> = (0..30)
        .map(|i| b.add_author(Author::bare(ExternalId::Int(i))).unwrap())
        .collect();
    let hour = 3_600_000i64;
    for u in 0..40i64 {
        let user = b.user(ExternalId::Int(1000 + u));
        let mut t = 0;
        // Three different authors first, then the third one again and again.
        for k in 0..3 {
            let a = authors[((u * 7 + k * 11) % 30) as usize];
            b.push_event(user, a, 1.0, t);
            t += 5 * hour;
        }
        let fav = authors[((u * 7 + 22) % 30) as usize];
        for _ in 0..(3 + u % 4) {
            b.push_event(user, fav, 2.0, t);
            t += 2 * hour;
        }
    }
    let ds = b.build(None);
    let split = Split::leave_last_out(&ds);
    (ds, split)
}

fn scores_of(rec: &dyn Recommender, ds: &Dataset, split: &Split) -> Vec<f32> {
    let queries: Vec<Query<'_>> = split
        .test
        .iter()
        .map(|t| Query {
            user: t.user,
            history: t.history(ds),
            at_ms: t.timestamp_ms,
        })
        .collect();
    let mut out = vec![0f32; queries.len() * ds.n_authors()];
    rec.score_batch(&queries, &mut out).unwrap();
    out
}

#[test]
fn baselines_sasrec_beats_random_on_tiny_world() {
    let dir = tempfile::tempdir().unwrap();
    let world = SyntheticWorldConfig {
        seed: 11,
        authors: 40,
        users: 150,
        frames_per_author: 1,
        frame_size: 16,
        audio_seconds: 0.25,
        ..Default::default()
    };
    generate(&world, dir.path()).unwrap();
    // Only the tips are read (never the world's truth).
    let ds = load_native(dir.path()).unwrap();
    let split = Split::leave_last_out(&ds);
    assert!(split.test.len() > 100, "{}", split.test.len());
    let device = Device::flex();
    let started = std::time::Instant::now();
    let mut reports = Vec::new();
    let model = small(8, 3)
        .fit(&TrainingData::new(&ds, &split), &device, &mut |r| {
            eprintln!("{r:?}");
            reports.push(r.clone());
        })
        .unwrap();
    eprintln!(
        "trained {} epochs in {:.1} s",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(model.name(), "SASRec");
    assert!(!reports.is_empty());
    assert!(reports.iter().all(|r| r.train_loss.is_finite()));
    let random = RandomRecommender::new(ds.n_authors(), 5);
    let (s, r) = (ndcg10(&model, &ds, &split), ndcg10(&random, &ds, &split));
    eprintln!("test NDCG@10 SASRec {s:.4}, Random {r:.4}");
    assert!(s > r + 0.03, "SASRec {s} vs Random {r}");

    let scores = scores_of(&model, &ds, &split);
    assert!(scores.iter().all(|v| v.is_finite()));

    // A user without tips (and one whose only tip lies after the query time).
    let late = [mspa_core::TipEvent {
        user: UserId(0),
        author: AuthorId(3),
        amount: 1.0,
        timestamp_ms: i64::MAX,
    }];
    let queries = [
        Query {
            user: UserId(0),
            history: &[],
            at_ms: 0,
        },
        Query {
            user: UserId(1),
            history: &late,
            at_ms: 0,
        },
    ];
    let mut out = vec![0f32; 2 * ds.n_authors()];
    model.score_batch(&queries, &mut out).unwrap();
    assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
    // The future tip is not read: both rows are the empty-history scores.
    let n = ds.n_authors();
    assert_eq!(out[..n], out[n..]);
    // A wrong buffer length is an error, not a panic.
    assert!(model.score_batch(&queries, &mut out[1..]).is_err());
}

#[test]
fn baselines_sasrec_learns_the_repeat_signal() {
    let (ds, split) = repeat_toy();
    let device = Device::flex();
    let data = TrainingData::new(&ds, &split);
    let model = small(15, 1).fit(&data, &device, &mut |_| {}).unwrap();
    let n = ds.n_authors();
    let scores = scores_of(&model, &ds, &split);
    let mut first = 0;
    for (t, row) in split.test.iter().zip(scores.chunks(n)) {
        let best = (0..n)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
            .unwrap();
        if best == t.author.index() {
            first += 1;
        }
    }
    eprintln!(
        "target ranked first for {first} of {} users",
        split.test.len()
    );
    assert!(
        first * 10 >= split.test.len() * 9,
        "{first} of {}",
        split.test.len()
    );
}

#[test]
fn baselines_sasrec_config_errors_name_the_field() {
    let (ds, split) = repeat_toy();
    let device = Device::flex();
    let data = TrainingData::new(&ds, &split);
    let field_of = |config: SasRecConfig| match config.fit(&data, &device, &mut |_| {}) {
        Err(AlignError::Config { field, .. }) => field,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("config was accepted"),
    };
    let base = small(1, 0);
    assert_eq!(
        field_of(SasRecConfig {
            dim: 0,
            ..base.clone()
        }),
        "dim"
    );
    assert_eq!(
        field_of(SasRecConfig {
            layers: 0,
            ..base.clone()
        }),
        "layers"
    );
    assert_eq!(
        field_of(SasRecConfig {
            heads: 0,
            ..base.clone()
        }),
        "heads"
    );
    assert_eq!(
        field_of(SasRecConfig {
            dim: 32,
            heads: 3,
            ..base.clone()
        }),
        "heads"
    );
    assert_eq!(
        field_of(SasRecConfig {
            max_len: 0,
            ..base.clone()
        }),
        "max_len"
    );
    for dropout in [1.0, -0.1, f64::NAN] {
        assert_eq!(
            field_of(SasRecConfig {
                dropout,
                ..base.clone()
            }),
            "dropout"
        );
    }
    assert_eq!(
        field_of(SasRecConfig {
            time_buckets: 1,
            ..base.clone()
        }),
        "time_buckets"
    );
    assert_eq!(
        field_of(SasRecConfig {
            count_buckets: 0,
            ..base.clone()
        }),
        "count_buckets"
    );
    let mut bad_train = base.clone();
    bad_train.train.batch_size = 0;
    assert_eq!(field_of(bad_train), "batch_size");
    // The defaults are valid and round-trip through serde (missing fields default).
    SasRecConfig::default().validate().unwrap();
    let parsed: SasRecConfig = serde_json::from_str(r#"{"dim": 32, "heads": 2}"#).unwrap();
    assert_eq!(parsed.dim, 32);
    assert_eq!(parsed.layers, SasRecConfig::default().layers);
}

#[test]
fn baselines_sasrec_same_seed_same_scores() {
    let (ds, split) = repeat_toy();
    let device = Device::flex();
    let run = |seed: u64| {
        let data = TrainingData::new(&ds, &split);
        let (model, reports) = small(3, seed).fit_with_curve(&data, &device).unwrap();
        (scores_of(&model, &ds, &split), reports)
    };
    let (a, ra) = run(4);
    let (b, rb) = run(4);
    assert_eq!(a, b);
    let losses = |r: &[mspa_align::train::EpochReport]| -> Vec<f64> {
        r.iter().map(|e| e.train_loss).collect()
    };
    assert_eq!(losses(&ra), losses(&rb));
    let (c, _) = run(5);
    assert_ne!(a, c);
}
