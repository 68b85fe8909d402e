//! The pipeline's composers are fitted on exactly the leak-free pairs: no training pair
//! of a user the recommenders evaluate on lies at or after that user's validation time.

use std::collections::HashMap;

use mspa::align::data::SplitMix64;
use mspa::composer::composer::ComposeContext;
use mspa::composer::eval::reference_pairs;
use mspa::core::Split;
use mspa::core::synth::{SyntheticWorldConfig, Truth, generate};
use mspa::modal::features::AuthorFeatures;
use mspa::pipeline::{PipelineConfig, fit_composers};

#[test]
fn pipeline_composers_fit_on_the_leak_free_pairs_only() {
    let dir = tempfile::tempdir().unwrap();
    let world = SyntheticWorldConfig {
        seed: 4,
        users: 60,
        authors: 14,
        frames_per_author: 1,
        frame_size: 16,
        audio_seconds: 0.25,
        ..Default::default()
    };
    generate(&world, dir.path()).unwrap();
    let dataset = mspa::core::load_native(dir.path()).unwrap();
    let truth = Truth::load(dir.path()).unwrap();
    let split = Split::leave_last_out(&dataset);
    // Random stand-in features: the composers only need their shape here.
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
    let mut config = PipelineConfig::default().with_seed(4);
    config.composer.epochs = 1;
    let ctx = ComposeContext {
        dataset: &dataset,
        features: Some(&features),
        text_encoder: None,
    };
    let device = mspa::modal::device_from_name("flex").unwrap();
    let stage = fit_composers(
        &config,
        &ctx,
        Some(&truth),
        &split,
        &device,
        &mut |_, _, _, _| {},
    )
    .unwrap();

    let expected = reference_pairs(&dataset, &truth.references(), &split, &config.pairs).unwrap();
    assert_eq!(stage.pairs, expected);
    assert!(!stage.pairs.train.is_empty());
    assert_eq!(stage.nearest.len(), stage.pairs.train.len());
    assert_eq!(stage.learned.epochs_done(), 1);

    let valid: HashMap<_, _> = split
        .valid
        .iter()
        .map(|t| (t.user, t.timestamp_ms))
        .collect();
    for p in &stage.pairs.train {
        if let Some(&v) = valid.get(&p.user) {
            assert!(
                p.at_ms < v,
                "a composer pair at {} >= validation {v}",
                p.at_ms
            );
        }
    }
}
