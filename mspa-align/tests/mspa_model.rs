//! MSPA on a tiny synthetic world: shapes and cold users, ablation switches, training
//! beats random and MostPop, scores at every step, save/load gives identical scores.

mod common;

use burn::tensor::Device;
use mspa_align::baselines::MostPop;
use mspa_align::data::{SplitMix64, train_author_counts};
use mspa_align::fit::{FitRecommender, TrainingData};
use mspa_align::mspa::{ComposedText, MspaRecommender, MspaSettings, TextPreferences};
use mspa_align::recommender::{Query, RandomRecommender, Recommender, evaluate};
use mspa_align::train::TrainConfig;
use mspa_core::synth::{SyntheticWorldConfig, Truth, generate};
use mspa_core::{Dataset, Split, load_native};
use mspa_metrics::Protocol;
use mspa_modal::device::on_one_thread;
use mspa_modal::features::AuthorFeatures;

use common::features;

fn ndcg10(rec: &dyn Recommender, ds: &Dataset, split: &Split) -> f64 {
    let r = evaluate(rec, ds, &split.test, Protocol::RepeatsAllowed, &[10], 64).unwrap();
    r.all.ndcg(10).unwrap()
}

struct World {
    _dir: tempfile::TempDir,
    ds: Dataset,
    split: Split,
    feats: Vec<AuthorFeatures>,
    /// Stand-in composed texts of dimension 8.
    prefs: TextPreferences,
}

impl World {
    /// The world's training data with its features and texts.
    fn data(&self) -> TrainingData<'_> {
        TrainingData::new(&self.ds, &self.split)
            .with_features(&self.feats)
            .with_texts(&self.prefs)
    }
}

fn world() -> World {
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
    let feats = features(&ds, &Truth::load(dir.path()).unwrap(), 3);
    World {
        _dir: dir,
        prefs: texts(&ds, 8),
        ds,
        split,
        feats,
    }
}

/// Text preferences: a fixed random vector per user, composed at time 0 (a stand-in for
/// composed texts).
fn texts(ds: &Dataset, dim: usize) -> TextPreferences {
    let mut rng = SplitMix64::new(9);
    let mut prefs = TextPreferences::new(ds.n_users(), dim);
    for u in ds.users() {
        prefs.insert(
            u,
            ComposedText {
                at_ms: 0,
                embedding: (0..dim).map(|_| rng.normal() as f32).collect(),
                text: format!("user {}", u.index()),
            },
        );
    }
    prefs
}

fn settings(name: &str, epochs: usize) -> MspaSettings {
    MspaSettings {
        name: name.into(),
        d_model: 32,
        train: TrainConfig {
            epochs,
            batch_size: 64,
            learning_rate: 3e-3,
            negatives: 16,
            seed: 1,
            ..TrainConfig::default()
        },
        ..MspaSettings::default()
    }
}

#[test]
fn mspa_trains_beats_baselines_and_round_trips() {
    let w = world();
    let device = Device::flex();
    let data = w.data();
    let (rec, reports) = settings("MSPA", 6).fit_with_curve(&data, &device).unwrap();
    assert!(reports.iter().enumerate().all(|(i, r)| r.epoch == i));
    let curve: Vec<f64> = reports.iter().map(|r| r.train_loss).collect();
    assert!(curve.iter().all(|l| l.is_finite()));
    assert!(
        curve.last().unwrap() < curve.first().unwrap(),
        "loss falls: {curve:?}"
    );

    let mspa = ndcg10(&rec, &w.ds, &w.split);
    let random = ndcg10(
        &RandomRecommender::new(w.ds.n_authors(), 5),
        &w.ds,
        &w.split,
    );
    let pop = ndcg10(&MostPop::fit(&w.ds, &w.split), &w.ds, &w.split);
    println!("NDCG@10: MSPA {mspa:.4}, MostPop {pop:.4}, random {random:.4}");
    assert!(
        mspa > pop && pop > random,
        "MSPA {mspa}, MostPop {pop}, random {random}"
    );

    // Every step is scored; explanations carry one score per step and weights summing to 1.
    let target = &w.split.test[0];
    let query = Query {
        user: target.user,
        history: target.history(&w.ds),
        at_ms: target.timestamp_ms,
    };
    let steps = rec.score_steps(&[query]).unwrap();
    assert_eq!(steps.len(), 3);
    let explained = rec.explain(query, &[0, 1, 2]).unwrap();
    for e in &explained {
        assert_eq!(e.step_scores.len(), 3);
        let sum: f32 = e.modality_weights.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{:?}", e.modality_weights);
        assert_eq!(
            e.preference.as_deref(),
            Some(format!("user {}", target.user.index()).as_str())
        );
    }
    assert!(rec.explain(query, &[w.ds.n_authors()]).is_err());

    // The inspection: one preference per query, top-10 weights that average the
    // explanations of the top 10, and one content row per author.
    let queries: Vec<Query<'_>> = w.split.test[..5]
        .iter()
        .map(|t| Query {
            user: t.user,
            history: t.history(&w.ds),
            at_ms: t.timestamp_ms,
        })
        .collect();
    let inspection = rec.inspect(&queries, 10).unwrap();
    assert_eq!(inspection.users.len(), 5);
    assert_eq!(inspection.authors.len(), w.ds.n_authors());
    let mut scores = vec![0f32; w.ds.n_authors()];
    rec.score_batch(&queries[..1], &mut scores).unwrap();
    let top = mspa_metrics::top_k(&scores, 10, &[]).unwrap();
    let explained = rec.explain(queries[0], &top).unwrap();
    let first = &inspection.users[0];
    assert_eq!(first.preference.len(), inspection.authors[0].len());
    for m in 0..3 {
        let mean = explained.iter().map(|e| e.modality_weights[m]).sum::<f32>() / 10.0;
        assert!((first.top_weights[m] - mean).abs() < 1e-5, "{m}: {first:?}");
    }

    // Save and load: identical scores.
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("mspa");
    rec.save(&ckpt).unwrap();
    let counts = train_author_counts(&w.ds, &w.split);
    let loaded = MspaRecommender::load(&ckpt, &w.feats, &counts, w.prefs.clone(), &device).unwrap();
    let n = w.ds.n_authors();
    let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
    rec.score_batch(&[query], &mut a).unwrap();
    loaded.score_batch(&[query], &mut b).unwrap();
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(max < 1e-5, "loaded model differs by {max}");
    // A checkpoint for other authors is refused with a clear error.
    let err = MspaRecommender::load(
        &ckpt,
        &w.feats[..n - 1],
        &counts[..n - 1],
        w.prefs.clone(),
        &device,
    )
    .err()
    .expect("author count mismatch is an error");
    assert!(err.to_string().contains("authors"), "{err}");
}

#[test]
fn mspa_handles_cold_users_and_ablations() {
    let w = world();
    let device = Device::flex();
    let data = w.data();
    for (name, t, use_text, modalities) in [
        ("MSPA (T=0)", 0, true, [true; 3]),
        ("MSPA (no text)", 2, false, [true; 3]),
        ("MSPA (audio only)", 1, true, [false, true, false]),
    ] {
        let s = MspaSettings {
            correction_steps: t,
            use_text,
            modalities,
            ..settings(name, 1)
        };
        let rec = s.fit(&data, &device, &mut |_| {}).unwrap();
        assert_eq!(rec.name(), name);
        assert_eq!(rec.model().correction_steps(), t);
        assert_eq!(rec.model().uses_text(), use_text);
        // A cold user (no tips) gets finite scores for every author.
        let cold = Query {
            user: w.split.test[0].user,
            history: &[],
            at_ms: 0,
        };
        let mut out = vec![0f32; w.ds.n_authors()];
        rec.score_batch(&[cold], &mut out).unwrap();
        assert!(out.iter().all(|x| x.is_finite()), "{name}: {out:?}");
        let explained = rec
            .explain(cold, &(0..w.ds.n_authors()).collect::<Vec<_>>())
            .unwrap();
        assert!(explained.iter().all(|e| e.step_scores.len() == t + 1));
        // Scores are log-probabilities of the next tip (repeat/explore mixture): over all
        // authors they sum to one at every step, for cold users and users with tips.
        let target = &w.split.test[0];
        let warm = Query {
            user: target.user,
            history: target.history(&w.ds),
            at_ms: target.timestamp_ms,
        };
        for query in [cold, warm] {
            let explained = rec
                .explain(query, &(0..w.ds.n_authors()).collect::<Vec<_>>())
                .unwrap();
            for step in 0..=t {
                let total: f64 = explained
                    .iter()
                    .map(|e| f64::from(e.step_scores[step]).exp())
                    .sum();
                assert!((total - 1.0).abs() < 1e-3, "{name} step {step}: {total}");
            }
        }
        if modalities == [false, true, false] {
            for (a, e) in explained.iter().enumerate() {
                if w.feats[a].present[1] {
                    assert!(
                        e.modality_weights[1] > 0.999,
                        "author {a}: {:?}",
                        e.modality_weights
                    );
                }
            }
        }
    }
    // Bad settings are errors, not panics.
    let s = MspaSettings {
        modalities: [false; 3],
        ..settings("none", 1)
    };
    assert!(s.fit(&data, &device, &mut |_| {}).is_err());
    let short = TrainingData::new(&w.ds, &w.split)
        .with_features(&w.feats[..3])
        .with_texts(&w.prefs);
    assert!(
        settings("short", 1)
            .fit(&short, &device, &mut |_| {})
            .is_err()
    );
}

/// Burn draws initialisation and dropout from one process-wide generator; models trained
/// side by side must still get their own numbers (`mspa_modal::device::seeded`): two MSPA
/// fits with dropout, each on a one-thread pool (`on_one_thread`, as the pipeline runs
/// them), score exactly the same at once on two threads, one after the other, and while
/// the other tests of this file train beside them.
#[test]
fn mspa_trained_side_by_side_matches_alone() {
    let w = world();
    let device = Device::flex();
    let data = w.data();
    let mut no_text = settings("MSPA (no text)", 2);
    no_text.use_text = false;
    no_text.dropout = 0.3;
    let mut full = settings("MSPA", 2);
    full.dropout = 0.3;
    let scores = |rec: &MspaRecommender| {
        let target = &w.split.test[0];
        let query = Query {
            user: target.user,
            history: target.history(&w.ds),
            at_ms: target.timestamp_ms,
        };
        let mut out = vec![0f32; w.ds.n_authors()];
        on_one_thread(|| rec.score_batch(&[query], &mut out)).unwrap();
        out
    };
    let fit = |s: &MspaSettings| on_one_thread(|| s.fit(&data, &device, &mut |_| {}).unwrap());
    let alone = [&full, &no_text].map(|s| scores(&fit(s)));
    let side_by_side = std::thread::scope(|scope| {
        let handles = [&full, &no_text].map(|s| scope.spawn(move || fit(s)));
        handles.map(|h| scores(&h.join().unwrap()))
    });
    assert_eq!(alone, side_by_side);
}
