//! Feature extraction over a tiny synthetic world: every author gets features with the
//! right presence mask, the store is reused on a second run, bad files either stop the run
//! naming the file or are skipped and recorded, and cross-modal pretraining lowers its loss.

use burn::tensor::Device;
use mspa_core::synth::{SyntheticWorldConfig, generate};
use mspa_modal::encoders::{AudioEncoderConfig, VisualEncoderConfig};
use mspa_modal::features::{
    ExtractOptions, ExtractorConfig, FeatureExtractor, FeatureStore, Modality,
};
use mspa_modal::frames::FrameConfig;
use mspa_modal::pretrain::{
    CrossModalConfig, PretrainConfig, PretrainSample, SampleShapes, pretrain,
};

fn world(dir: &std::path::Path) -> mspa_core::Dataset {
    let config = SyntheticWorldConfig {
        seed: 11,
        authors: 8,
        users: 12,
        audio_seconds: 0.5,
        ..Default::default()
    };
    generate(&config, dir).unwrap();
    mspa_core::load_native(dir).unwrap()
}

fn small_config() -> ExtractorConfig {
    let mut config = ExtractorConfig::default();
    config.frames = FrameConfig {
        size: 32,
        ..FrameConfig::default()
    };
    config.max_frames = 2;
    config
}

fn extractor(device: &Device) -> FeatureExtractor {
    let config = small_config();
    let n_mels = config.audio.mel.n_mels;
    FeatureExtractor::from_configs(
        config,
        &VisualEncoderConfig::new()
            .with_width(4)
            .with_depth(2)
            .with_d_output(8),
        &AudioEncoderConfig::new()
            .with_n_mels(n_mels)
            .with_width(8)
            .with_depth(2)
            .with_d_output(6),
        None,
        5,
        device,
    )
    .unwrap()
}

#[test]
fn extraction_masks_reuse_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let ds = world(dir.path());
    let device = Device::flex();
    let ex = extractor(&device);
    let first = ex
        .extract(&ds, None, ExtractOptions::default(), |_, _| {})
        .unwrap();
    assert_eq!(first.features.len(), ds.n_authors());
    assert_eq!(first.computed, ds.n_authors());
    for (a, f) in ds.authors().iter().zip(&first.features) {
        assert_eq!(f.has(Modality::Visual), !a.frames.is_empty());
        assert_eq!(f.has(Modality::Audio), a.audio.is_some());
        assert!(!f.has(Modality::Text), "no text encoder given");
        assert_eq!(f.dims(), [8, 6, 0]);
        assert!(f.visual.iter().chain(&f.audio).all(|x| x.is_finite()));
    }

    // Second run: everything reused, same numbers.
    let store_path = dir.path().join("features.safetensors");
    first.store.save(&store_path).unwrap();
    let store = FeatureStore::load(&store_path).unwrap();
    let second = ex
        .extract(&ds, Some(&store), ExtractOptions::default(), |_, _| {})
        .unwrap();
    assert_eq!((second.reused, second.computed), (ds.n_authors(), 0));
    assert_eq!(second.features, first.features);

    // Other encoder weights: nothing reused.
    let other = FeatureExtractor::from_configs(
        small_config(),
        &VisualEncoderConfig::new()
            .with_width(4)
            .with_depth(2)
            .with_d_output(8),
        &AudioEncoderConfig::new()
            .with_n_mels(64)
            .with_width(8)
            .with_depth(2)
            .with_d_output(6),
        None,
        6,
        &device,
    )
    .unwrap();
    assert_ne!(other.config_hash(), ex.config_hash());
    let third = other
        .extract(&ds, Some(&store), ExtractOptions::default(), |_, _| {})
        .unwrap();
    assert_eq!(third.reused, 0);

    // A garbage frame: an error naming it, or a recorded skip.
    let (victim, author) = ds
        .authors()
        .iter()
        .enumerate()
        .find(|(_, a)| !a.frames.is_empty())
        .unwrap();
    let bad = ds.media_path(&author.frames[0]);
    std::fs::write(&bad, b"definitely not a png").unwrap();
    let err = ex
        .extract(&ds, Some(&store), ExtractOptions::default(), |_, _| {})
        .unwrap_err();
    assert!(
        err.to_string().contains(&bad.display().to_string()),
        "{err}"
    );
    let skipped = ex
        .extract(
            &ds,
            Some(&store),
            ExtractOptions { skip_invalid: true },
            |_, _| {},
        )
        .unwrap();
    assert_eq!(skipped.skipped.len(), 1);
    assert_eq!(skipped.skipped[0].path, bad);
    assert_eq!(skipped.computed, 1, "only the changed author is recomputed");
    let f = &skipped.features[victim];
    assert_eq!(f.has(Modality::Visual), author.frames.len() > 1);
    // The store of that run does not vouch for the author with the bad file: without
    // `skip_invalid` the next run decodes it again and fails naming it.
    let err = ex
        .extract(
            &ds,
            Some(&skipped.store),
            ExtractOptions::default(),
            |_, _| {},
        )
        .unwrap_err();
    assert!(
        err.to_string().contains(&bad.display().to_string()),
        "{err}"
    );
}

#[test]
fn cached_extraction_reuses_its_file_and_survives_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let ds = world(dir.path());
    let device = Device::flex();
    let ex = extractor(&device);
    let path = dir.path().join("features.safetensors");
    let run = || {
        ex.extract_cached(&ds, &path, ExtractOptions::default(), |_, _| {})
            .unwrap()
    };
    assert_eq!(run().computed, ds.n_authors());
    let second = run();
    assert_eq!((second.reused, second.computed), (ds.n_authors(), 0));
    // An unreadable store counts as empty and is replaced.
    std::fs::write(&path, b"not safetensors").unwrap();
    assert_eq!(run().computed, ds.n_authors());
    assert_eq!(run().computed, 0);
    // A failed run leaves the file as it was.
    let before = std::fs::read(&path).unwrap();
    let author = ds.authors().iter().find(|a| !a.frames.is_empty()).unwrap();
    std::fs::write(ds.media_path(&author.frames[0]), b"not a png").unwrap();
    assert!(
        ex.extract_cached(&ds, &path, ExtractOptions::default(), |_, _| {})
            .is_err()
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn pretraining_lowers_the_contrastive_loss() {
    let device = Device::flex();
    let shapes = SampleShapes {
        frame_size: 16,
        n_mels: 8,
        mel_frames: 12,
        d_text: 5,
    };
    // Eight "authors" whose three views share a hidden code.
    let samples: Vec<PretrainSample> = (0..8)
        .map(|i| {
            let code = |k: usize| ((i * 31 + k * 7) % 11) as f32 / 11.0 - 0.5;
            PretrainSample {
                frame: Some((0..3 * 16 * 16).map(|k| code(k % 4)).collect()),
                mel: (i % 3 != 0).then(|| (0..8 * 12).map(|k| code(k % 5)).collect()),
                text: Some((0..5).map(code).collect()),
            }
        })
        .collect();
    let config = CrossModalConfig::new(
        VisualEncoderConfig::new()
            .with_width(4)
            .with_depth(2)
            .with_d_output(8),
        AudioEncoderConfig::new()
            .with_n_mels(8)
            .with_width(8)
            .with_depth(2)
            .with_d_output(8),
    )
    .with_d_text(5);
    device.seed(1);
    let model = config.init(&device).unwrap();
    let train = PretrainConfig::new()
        .with_epochs(25)
        .with_batch_size(8)
        .with_learning_rate(3e-3);
    let (_model, curve) = pretrain(model, &samples, shapes, &train, &device, |_, _| {}).unwrap();
    assert_eq!(curve.len(), 25);
    assert!(curve.iter().all(|l| l.is_finite()));
    assert!(
        curve[24] < curve[0] * 0.8,
        "loss did not go down: {curve:?}"
    );
}
