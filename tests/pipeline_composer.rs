//! The pipeline's composers are fitted on exactly the leak-free pairs: no training pair
//! of a user the recommenders evaluate on lies at or after that user's validation time,
//! whichever teacher wrote the pairs' texts.

use std::collections::HashMap;

use mspa::align::data::SplitMix64;
use mspa::composer::composer::ComposeContext;
use mspa::composer::eval::reference_pairs;
use mspa::core::Split;
use mspa::core::synth::{SyntheticWorldConfig, Truth, generate};
use mspa::modal::features::AuthorFeatures;
use mspa::pipeline::{ComposerStage, ComposerTeacher, PipelineConfig, fit_composers};

/// A tiny world with random stand-in features (the composers only need their shape).
fn world(dir: &std::path::Path) -> (mspa::core::Dataset, Truth, Split, Vec<AuthorFeatures>) {
    let world = SyntheticWorldConfig {
        seed: 4,
        users: 60,
        authors: 14,
        frames_per_author: 1,
        frame_size: 16,
        audio_seconds: 0.25,
        ..Default::default()
    };
    generate(&world, dir).unwrap();
    let dataset = mspa::core::load_native(dir).unwrap();
    let truth = Truth::load(dir).unwrap();
    let split = Split::leave_last_out(&dataset);
    let mut rng = SplitMix64::new(1);
    let features: Vec<AuthorFeatures> = (0..dataset.n_authors())
        .map(|_| {
            let mut f = AuthorFeatures::empty([4, 4, 4]);
            for v in f.visual.iter_mut().chain(&mut f.audio).chain(&mut f.text) {
                *v = rng.normal() as f32;
            }
            f.present = [true; 3];
            f
        })
        .collect();
    (dataset, truth, split, features)
}

/// Fits the composers on the tiny world with one composer epoch and `teacher`.
fn fit(
    world: &(mspa::core::Dataset, Truth, Split, Vec<AuthorFeatures>),
    teacher: ComposerTeacher,
) -> (PipelineConfig, ComposerStage) {
    let (dataset, truth, split, features) = world;
    let mut config = PipelineConfig::default().with_seed(4);
    config.composer.epochs = 1;
    config.teacher = teacher;
    let ctx = ComposeContext {
        dataset,
        features: Some(features),
        text_encoder: None,
    };
    let device = mspa::modal::device_from_name("flex").unwrap();
    let no_progress = &mut |_: &str, _, _, _| {};
    let stage = fit_composers(&config, &ctx, Some(truth), split, &device, no_progress).unwrap();
    (config, stage)
}

/// Every training pair of an evaluated user lies before its validation time.
fn assert_before_validation(split: &Split, pairs: &[mspa::composer::composer::TrainingPair]) {
    let valid: HashMap<_, _> = split
        .valid
        .iter()
        .map(|t| (t.user, t.timestamp_ms))
        .collect();
    for p in pairs {
        if let Some(&v) = valid.get(&p.user) {
            assert!(
                p.at_ms < v,
                "a composer pair at {} >= validation {v}",
                p.at_ms
            );
        }
    }
}

#[test]
fn pipeline_composers_fit_on_the_leak_free_pairs_only() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    let (config, stage) = fit(&world, ComposerTeacher::Auto);
    let (dataset, truth, split, _) = &world;

    let expected = reference_pairs(dataset, &truth.references(), split, &config.pairs).unwrap();
    assert_eq!(stage.pairs, expected);
    assert!(!stage.pairs.train.is_empty());
    assert_eq!(stage.nearest.len(), stage.pairs.train.len());
    assert_eq!(stage.learned.epochs_done(), 1);
    assert!(stage.scored && stage.teacher.contains("reference"));
    assert_before_validation(split, &stage.pairs.train);
}

#[test]
fn the_template_teacher_writes_the_same_leak_free_pairs_in_the_derived_schema() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    let (config, stage) = fit(&world, ComposerTeacher::Template);
    let (dataset, truth, split, _) = &world;
    let world_pairs = reference_pairs(dataset, &truth.references(), split, &config.pairs).unwrap();
    // The same users and times, the texts written by the derived template composer.
    assert_eq!(stage.pairs.train.len(), world_pairs.train.len());
    for (p, w) in stage.pairs.train.iter().zip(&world_pairs.train) {
        assert_eq!((p.user, p.at_ms, &p.tips), (w.user, w.at_ms, &w.tips));
        stage.schema.parse(&p.reference).unwrap();
        assert!(p.reference.contains("tipping: "), "{}", p.reference);
    }
    assert!(
        !stage.scored && stage.teacher.contains("template"),
        "{}",
        stage.teacher
    );
    assert_eq!(stage.learned.schema(), &stage.schema);
    assert_before_validation(split, &stage.pairs.train);
}
