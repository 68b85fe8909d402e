//! The learned composer on a tiny synthetic world: training, composition, evidence,
//! checkpoints (save, load, resume), errors, and a comparison with a constant baseline.

mod learned_support;

use std::collections::HashMap;

use burn::tensor::Device;
use mspa_composer::ComposerError;
use mspa_composer::composer::{ComposeContext, Composer, HistoryQuery, TrainingPair};
use mspa_composer::eval::{PairConfig, field_scores, reference_pairs};
use mspa_composer::generator::GeneratorConfig;
use mspa_composer::history::HistoryEncoderConfig;
use mspa_composer::learned::{LearnedComposer, LearnedComposerConfig};
use mspa_composer::schema::{PreferenceFields, PreferenceSchema};
use mspa_modal::text::{BertEmbedder, BertModelConfig, TextTokenizer};

use learned_support::{attribute_features, prefix_pairs, split_pairs, tiny_world};

/// A randomly initialised one-layer BERT with a word-level vocabulary of the schema's
/// words (stands in for MiniLM, whose weights the tests do not download).
fn tiny_text_encoder(dir: &std::path::Path) -> BertEmbedder {
    let schema = world_schema();
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "|", ":", ","]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for f in &schema.fields {
        vocab.push(f.name.clone());
        for slot in f.slot_values() {
            vocab.extend(slot.iter().cloned());
        }
    }
    vocab.dedup();
    let path = dir.join("vocab.txt");
    std::fs::write(&path, vocab.join("\n")).unwrap();
    let device = Device::flex();
    let tokenizer = TextTokenizer::from_vocab(&path, true).unwrap();
    let model = BertModelConfig::new(vocab.len(), 16, 1, 2, 32)
        .with_max_position_embeddings(64)
        .init(&device);
    BertEmbedder::new(model, tokenizer, &device).unwrap()
}

fn small_config(epochs: usize, dropout: f64) -> LearnedComposerConfig {
    LearnedComposerConfig {
        encoder: HistoryEncoderConfig::new([0, 0, 0])
            .with_d_model(32)
            .with_heads(4)
            .with_d_ff(64)
            .with_dropout(dropout),
        generator: GeneratorConfig::new(0, 0)
            .with_d_model(32)
            .with_heads(4)
            .with_d_ff(64)
            .with_layers(2)
            .with_dropout(dropout),
        epochs,
        batch_size: 32,
        learning_rate: 3e-3,
        beam_width: 3,
        seed: 5,
        ..Default::default()
    }
}

#[test]
fn trains_and_beats_a_constant_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let (dataset, truth) = tiny_world(dir.path(), 3);
    let features = attribute_features(&dataset, &truth, 0.2, 9);
    let ctx = ComposeContext {
        dataset: &dataset,
        features: Some(&features),
        text_encoder: None,
    };
    let schema = world_schema();
    let pairs = reference_pairs(
        &dataset,
        &truth.references(),
        &mspa_core::Split::leave_last_out(&dataset),
        &PairConfig {
            heldout_fraction: 0.25,
            cuts_per_user: 12,
            seed: 0,
        },
    )
    .unwrap();
    let (train, test) = (pairs.train, pairs.heldout);
    assert!(test.len() >= 8, "{} held-out users", test.len());
    let start = std::time::Instant::now();
    let mut curve = Vec::new();
    let composer = LearnedComposer::fit(
        small_config(12, 0.3),
        &schema,
        &ctx,
        &train,
        &Device::flex(),
        |e, l| {
            eprintln!("epoch {e}: loss {l:.4}");
            curve.push(l);
        },
    )
    .unwrap();
    eprintln!(
        "{} training pairs, {:.1}s",
        train.len(),
        start.elapsed().as_secs_f64()
    );
    assert_eq!(composer.loss_curve(), curve.as_slice());
    assert!(
        curve.last().unwrap() < &(curve[0] * 0.8),
        "loss did not decrease: {curve:?}"
    );
    let heldout_loss = composer.evaluate_loss(&ctx, &test).unwrap();
    eprintln!("held-out teacher-forcing loss {heldout_loss:.4}");
    assert!(heldout_loss.is_finite() && heldout_loss < curve[0]);

    let queries: Vec<HistoryQuery<'_>> = test.iter().map(|p| p.query(&dataset)).collect();
    let start = std::time::Instant::now();
    let prefs = composer.compose_batch(&ctx, &queries).unwrap();
    eprintln!(
        "composed {} in {:.2}s",
        prefs.len(),
        start.elapsed().as_secs_f64()
    );
    let references: Vec<PreferenceFields> = test
        .iter()
        .map(|p| schema.parse(&p.reference).unwrap())
        .collect();
    let predicted: Vec<PreferenceFields> = prefs.iter().map(|p| p.fields.clone()).collect();
    let learned = field_scores(&schema, &predicted, &references);

    // The constant baseline: the most common training reference, for everybody.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for p in &train {
        *counts.entry(p.reference.as_str()).or_default() += 1;
    }
    let common = counts
        .iter()
        .max_by_key(|(t, c)| (**c, std::cmp::Reverse(**t)))
        .unwrap()
        .0;
    let constant = field_scores(
        &schema,
        &vec![schema.parse(common).unwrap(); test.len()],
        &references,
    );
    eprintln!(
        "field micro F1: learned {:.3}, constant {:.3}",
        learned.micro.f1, constant.micro.f1
    );
    for f in &learned.per_field {
        eprintln!("  {:<10} F1 {:.3}", f.name, f.f1);
    }
    for p in prefs.iter().take(3) {
        eprintln!("  {}", p.text);
    }
    assert!(
        learned.micro.f1 > constant.micro.f1,
        "learned {:.3} <= constant {:.3}",
        learned.micro.f1,
        constant.micro.f1
    );

    for (p, q) in prefs.iter().zip(&queries) {
        assert_eq!(schema.parse(&p.text).unwrap(), p.fields);
        assert_eq!(p.embedding.len(), 32);
        let norm: f32 = p.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "embedding norm {norm}");
        let listed: usize = p.fields.values.iter().map(Vec::len).sum();
        assert_eq!(p.evidence.len(), listed);
        for e in &p.evidence {
            assert!(e.tips.len() == q.tips.len().min(3));
            assert!(e.tips.iter().all(|&t| t < q.tips.len()));
        }
    }
    // compose and compose_batch agree.
    let one = composer.compose(&ctx, queries[0]).unwrap();
    assert_eq!(one.text, prefs[0].text);
}

#[test]
fn save_load_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (dataset, truth) = tiny_world(&dir.path().join("world"), 4);
    let features = attribute_features(&dataset, &truth, 0.2, 1);
    let ctx = ComposeContext {
        dataset: &dataset,
        features: Some(&features),
        text_encoder: None,
    };
    let schema = world_schema();
    let users: Vec<usize> = (0..12).collect();
    let train = prefix_pairs(&dataset, &truth, &users);
    let device = Device::flex();
    // No dropout: training is then a pure function of the data, so an interrupted and an
    // uninterrupted run can be compared number for number.
    let mut config = small_config(2, 0.0);
    config.batch_size = 16;
    let first =
        LearnedComposer::fit(config.clone(), &schema, &ctx, &train, &device, |_, _| {}).unwrap();
    let ckpt = dir.path().join("ckpt");
    first.save(&ckpt).unwrap();
    // Saving again replaces the directory atomically, leaving no temporary siblings.
    first.save(&ckpt).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for f in [
        "model.bpk",
        "optimizer.bpk",
        "config.json",
        "schema.json",
        "state.json",
    ] {
        assert!(ckpt.join(f).is_file(), "{f} missing");
    }

    let loaded = LearnedComposer::load(&ckpt, &device).unwrap();
    assert_eq!(loaded.epochs_done(), 2);
    let close = |a: &[f64], b: &[f64]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
    };
    assert!(close(loaded.loss_curve(), first.loss_curve()));
    assert_eq!(loaded.schema(), &schema);
    let queries: Vec<HistoryQuery<'_>> = split_pairs(&dataset, &truth)
        .iter()
        .take(20)
        .map(|p| p.query(&dataset))
        .collect::<Vec<_>>();
    let queries: Vec<HistoryQuery<'_>> = queries.into_iter().collect();
    let a = first.compose_batch(&ctx, &queries).unwrap();
    let b = loaded.compose_batch(&ctx, &queries).unwrap();
    assert_eq!(a, b, "the loaded model composes differently");

    // With a text encoder, the embedding gains the sentence vector of the composed text.
    let embedder = tiny_text_encoder(dir.path());
    let with_text = ComposeContext {
        text_encoder: Some(&embedder),
        ..ctx
    };
    let c = loaded.compose_batch(&with_text, &queries).unwrap();
    for (x, y) in a.iter().zip(&c) {
        assert_eq!(x.text, y.text);
        assert_eq!(y.embedding.len(), 32 + embedder.dim());
        assert_eq!(&y.embedding[..32], x.embedding.as_slice());
        let tail: f32 = y.embedding[32..].iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((tail - 1.0).abs() < 1e-4, "text part norm {tail}");
    }

    // Resume for two more epochs; compare with four uninterrupted epochs.
    let mut resumed_epochs = Vec::new();
    let resumed = LearnedComposer::fit_resume(&ckpt, &ctx, &train, &device, 2, |e, l| {
        resumed_epochs.push((e, l))
    })
    .unwrap();
    assert_eq!(
        resumed_epochs.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(resumed.epochs_done(), 4);
    assert!(close(&resumed.loss_curve()[..2], first.loss_curve()));
    let mut straight = config.clone();
    straight.epochs = 4;
    let full = LearnedComposer::fit(straight, &schema, &ctx, &train, &device, |_, _| {}).unwrap();
    eprintln!(
        "resumed {:?}\nstraight {:?}",
        resumed.loss_curve(),
        full.loss_curve()
    );
    for (r, s) in resumed.loss_curve().iter().zip(full.loss_curve()) {
        assert!(
            (r - s).abs() < 1e-3 * s.abs().max(1.0),
            "resumed {r} vs uninterrupted {s}"
        );
    }
    assert!(
        resumed.loss_curve()[3] < resumed.loss_curve()[1],
        "{:?}",
        resumed.loss_curve()
    );
    // The checkpoint on disk is untouched by resuming.
    let again = LearnedComposer::load(&ckpt, &device).unwrap();
    assert_eq!(again.compose_batch(&ctx, &queries).unwrap(), a);
}

#[test]
fn errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (dataset, truth) = tiny_world(dir.path(), 5);
    let features = attribute_features(&dataset, &truth, 0.2, 1);
    let ctx = ComposeContext {
        dataset: &dataset,
        features: Some(&features),
        text_encoder: None,
    };
    let schema = world_schema();
    let device = Device::flex();
    let train = split_pairs(&dataset, &truth);
    let fit = |config: LearnedComposerConfig, ctx: &ComposeContext<'_>, pairs: &[TrainingPair]| {
        LearnedComposer::fit(config, &schema, ctx, pairs, &device, |_, _| {})
    };
    assert!(matches!(
        fit(small_config(1, 0.0), &ctx, &[]),
        Err(ComposerError::Data { .. })
    ));
    let mut bad = small_config(1, 0.0);
    bad.batch_size = 0;
    assert!(
        matches!(fit(bad, &ctx, &train), Err(ComposerError::Config { field, .. }) if field == "batch_size")
    );
    let no_features = ComposeContext {
        features: None,
        ..ctx
    };
    assert!(
        matches!(fit(small_config(1, 0.0), &no_features, &train), Err(ComposerError::Config { field, .. }) if field == "features")
    );
    let mut broken = train.clone();
    broken[3].reference = "categories: music | energy".into();
    let err = fit(small_config(1, 0.0), &ctx, &broken).unwrap_err();
    assert!(err.to_string().contains("does not parse"), "{err}");
    let missing = LearnedComposer::load(&dir.path().join("nope"), &device).unwrap_err();
    assert!(matches!(missing, ComposerError::Io { .. }), "{missing}");
}

#[test]
fn config_reads_partial_json() {
    let c: LearnedComposerConfig = serde_json::from_str(
        r#"{"epochs": 3, "encoder": {"feature_dims": [0, 0, 0], "d_model": 16}}"#,
    )
    .unwrap();
    assert_eq!(c.epochs, 3);
    assert_eq!(c.encoder.d_model, 16);
    assert_eq!(c.encoder.heads, 4);
    assert_eq!(c.beam_width, LearnedComposerConfig::default().beam_width);
    assert!(c.constrained);
    let back: LearnedComposerConfig =
        serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back.encoder.d_model, 16);
    assert_eq!(back.generator.layers, c.generator.layers);
}

/// The synthetic world's reference grammar as a schema (the world publishes it as JSON).
fn world_schema() -> PreferenceSchema {
    PreferenceSchema::from_json(&mspa_core::synth::reference::schema_json()).unwrap()
}
