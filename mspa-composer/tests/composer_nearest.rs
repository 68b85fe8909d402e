//! The nearest-user composer: copying, ties, cold histories, features versus author ids,
//! errors, and a tiny synthetic world.

use mspa_composer::ComposerError;
use mspa_composer::composer::{ComposeContext, Composer, HistoryQuery, TipWeighting, TrainingPair};
use mspa_composer::eval::{PairConfig, field_scores, reference_pairs};
use mspa_composer::nearest::{NearestComposer, NearestConfig, Representation};
use mspa_composer::schema::{PreferenceFields, PreferenceSchema};
use mspa_core::synth::{SyntheticWorldConfig, Truth, generate};
use mspa_core::{Author, Dataset, DatasetBuilder, ExternalId, TipEvent, UserId};
use mspa_modal::features::AuthorFeatures;

const DAY: i64 = 86_400_000;

fn reference(category: &str) -> String {
    format!(
        "categories: {category} | energy: high | audio: rock | visuals: neon | language: english | format: solo | tipping: rare, modest"
    )
}

/// Four authors; u0 tips a0 twice, u1 tips a1, u2 tips a2 and a3.
fn dataset() -> Dataset {
    let mut b = DatasetBuilder::default();
    let a: Vec<_> = (0..4)
        .map(|i| {
            b.add_author(Author::bare(ExternalId::from(format!("a{i}").as_str())))
                .unwrap()
        })
        .collect();
    let u0 = b.user(ExternalId::from("u0"));
    let u1 = b.user(ExternalId::from("u1"));
    let u2 = b.user(ExternalId::from("u2"));
    b.push_event(u0, a[0], 2.0, DAY);
    b.push_event(u0, a[0], 2.0, 2 * DAY);
    b.push_event(u1, a[1], 1.0, DAY);
    b.push_event(u2, a[2], 1.0, DAY);
    b.push_event(u2, a[3], 4.0, 2 * DAY);
    b.build(None)
}

fn pair(ds: &Dataset, user: u32, reference: String) -> TrainingPair {
    let u = UserId(user);
    TrainingPair {
        user: u,
        tips: ds.user_range(u),
        at_ms: 3 * DAY,
        reference,
    }
}

fn tip(author: u32, amount: f64, t: i64) -> TipEvent {
    TipEvent {
        user: UserId(9),
        author: mspa_core::AuthorId(author),
        amount,
        timestamp_ms: t,
    }
}

#[test]
fn composer_nearest_copies_the_most_similar_history() {
    let ds = dataset();
    let ctx = ComposeContext {
        dataset: &ds,
        features: None,
        text_encoder: None,
    };
    // p3 repeats u0's history: ties go to the lower index (p0). The most common
    // reference is `dance` (p1 and p3).
    let train = vec![
        pair(&ds, 0, reference("music")),
        pair(&ds, 1, reference("dance")),
        pair(&ds, 2, reference("gaming")),
        pair(&ds, 0, reference("dance")),
    ];
    let n = NearestComposer::fit(&world_schema(), &ctx, &train).unwrap();
    assert_eq!(n.name(), "nearest");
    assert_eq!(n.representation(), Representation::AuthorIds);
    assert_eq!(n.len(), 4);
    assert_eq!(n.cold_reference(), reference("dance"));

    let q_tips = [tip(0, 1.0, DAY)];
    let q = HistoryQuery {
        tips: &q_tips,
        at_ms: 2 * DAY,
    };
    let (i, s) = n.nearest(&ctx, &q).unwrap().unwrap();
    assert_eq!(i, 0);
    assert!((s - 1.0).abs() < 1e-6);
    let p = n.compose(&ctx, q).unwrap();
    assert_eq!(p.text, reference("music"));
    let schema = world_schema();
    assert_eq!(p.fields, schema.parse(&p.text).unwrap());
    assert_eq!(p.embedding, schema.multi_hot(&p.fields));
    assert!(p.evidence.iter().all(|e| e.tips == [0]));
    assert_eq!(p.evidence.len(), 8);

    // a3 carries most of u2's weight (4.0 versus 1.0).
    let q_tips = [tip(3, 1.0, DAY), tip(1, 0.1, DAY)];
    let q = HistoryQuery {
        tips: &q_tips,
        at_ms: 2 * DAY,
    };
    let p = n.compose(&ctx, q).unwrap();
    assert_eq!(p.text, reference("gaming"));
    assert_eq!(p.evidence[0].tips, [0]);
    // Raising the weight of the a1 tip flips the neighbour.
    let q_tips = [tip(3, 1.0, DAY), tip(1, 10.0, DAY)];
    let p = n
        .compose(
            &ctx,
            HistoryQuery {
                tips: &q_tips,
                at_ms: 2 * DAY,
            },
        )
        .unwrap();
    assert_eq!(p.text, reference("dance"));
    // So does recency with a short half-life: the old a1 tip fades.
    let q_tips = [tip(1, 10.0, 0), tip(3, 1.0, 10 * DAY)];
    let short = NearestComposer::fit_with(
        &schema,
        &ctx,
        &train,
        NearestConfig {
            weighting: TipWeighting {
                half_life_days: 1.0,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    let q = HistoryQuery {
        tips: &q_tips,
        at_ms: 10 * DAY,
    };
    assert_eq!(short.compose(&ctx, q).unwrap().text, reference("gaming"));
    // With the default week-long half-life the big old tip still dominates.
    assert_eq!(n.compose(&ctx, q).unwrap().text, reference("dance"));

    // Cold histories, and histories whose tips weigh nothing, get the common reference.
    let cold = n
        .compose(
            &ctx,
            HistoryQuery {
                tips: &[],
                at_ms: 0,
            },
        )
        .unwrap();
    assert_eq!(cold.text, reference("dance"));
    assert!(cold.evidence.iter().all(|e| e.tips.is_empty()));
    let zero = [tip(0, 0.0, DAY)];
    assert!(
        n.nearest(
            &ctx,
            &HistoryQuery {
                tips: &zero,
                at_ms: DAY
            }
        )
        .unwrap()
        .is_none()
    );
    // Batches equal single calls.
    let batch = n.compose_batch(&ctx, &[q, q]).unwrap();
    assert_eq!(batch[0], n.compose(&ctx, q).unwrap());
    assert_eq!(batch[0], batch[1]);
}

fn features() -> Vec<AuthorFeatures> {
    let f = |v: [f32; 2], a: [f32; 2], t: [f32; 2], present: [bool; 3]| AuthorFeatures {
        visual: v.to_vec(),
        audio: a.to_vec(),
        text: t.to_vec(),
        present,
    };
    vec![
        f([1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [true; 3]),
        // a1 looks like a0 (per-modality normalisation removes the scale).
        f([5.0, 0.0], [3.0, 0.0], [7.0, 0.0], [true; 3]),
        f([0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [true; 3]),
        // a3 has no audio: its (garbage) audio vector is ignored.
        f([0.0, 1.0], [9.0, 0.0], [0.0, 1.0], [true, false, true]),
    ]
}

#[test]
fn composer_nearest_uses_features_when_given() {
    let ds = dataset();
    let feats = features();
    let ctx = ComposeContext {
        dataset: &ds,
        features: Some(&feats),
        text_encoder: None,
    };
    let train = vec![
        pair(&ds, 0, reference("music")),
        pair(&ds, 2, reference("gaming")),
    ];
    let n = NearestComposer::fit(&world_schema(), &ctx, &train).unwrap();
    assert_eq!(n.representation(), Representation::Features([2, 2, 2]));
    // a1 was never tipped in training, but its features match a0's.
    let q_tips = [tip(1, 1.0, DAY)];
    let q = HistoryQuery {
        tips: &q_tips,
        at_ms: 2 * DAY,
    };
    let (i, s) = n.nearest(&ctx, &q).unwrap().unwrap();
    assert_eq!(i, 0);
    assert!((s - 1.0).abs() < 1e-5, "{s}");
    assert_eq!(n.compose(&ctx, q).unwrap().text, reference("music"));
    // a3 is like a2 except for the missing audio, which must not pull it towards a0.
    let q_tips = [tip(3, 1.0, DAY)];
    let q = HistoryQuery {
        tips: &q_tips,
        at_ms: 2 * DAY,
    };
    assert_eq!(n.nearest(&ctx, &q).unwrap().unwrap().0, 1);
    // With author ids instead, a1 matches nothing tipped in training: cold fallback is
    // the most common reference (the first one on a tie).
    let ids = ComposeContext {
        dataset: &ds,
        features: None,
        text_encoder: None,
    };
    let by_id = NearestComposer::fit(&world_schema(), &ids, &train).unwrap();
    let q_tips = [tip(1, 1.0, DAY)];
    let q = HistoryQuery {
        tips: &q_tips,
        at_ms: 2 * DAY,
    };
    assert!(by_id.nearest(&ids, &q).unwrap().is_none());
    assert_eq!(by_id.compose(&ids, q).unwrap().text, reference("music"));

    // Errors: features fitted but not given, wrong feature count, mixed sizes.
    let err = n.compose(&ids, q).unwrap_err();
    assert!(matches!(err, ComposerError::Data { .. }), "{err:?}");
    let short = &feats[..3];
    let bad = ComposeContext {
        dataset: &ds,
        features: Some(short),
        text_encoder: None,
    };
    assert!(NearestComposer::fit(&world_schema(), &bad, &train).is_err());
    assert!(n.compose(&bad, q).is_err());
    let mut mixed = feats.clone();
    mixed[2].text = vec![0.0; 5];
    let bad = ComposeContext {
        dataset: &ds,
        features: Some(&mixed),
        text_encoder: None,
    };
    assert!(NearestComposer::fit(&world_schema(), &bad, &train).is_err());
}

#[test]
fn composer_nearest_rejects_bad_training_data() {
    let ds = dataset();
    let ctx = ComposeContext {
        dataset: &ds,
        features: None,
        text_encoder: None,
    };
    assert!(matches!(
        NearestComposer::fit(&world_schema(), &ctx, &[]),
        Err(ComposerError::Data { .. })
    ));
    let bad_ref = vec![pair(&ds, 0, "categories: music".into())];
    let err = NearestComposer::fit(&world_schema(), &ctx, &bad_ref).unwrap_err();
    assert!(err.to_string().contains("training pair 0"), "{err}");
    let mut out_of_range = pair(&ds, 0, reference("music"));
    out_of_range.tips = 3..99;
    assert!(NearestComposer::fit(&world_schema(), &ctx, &[out_of_range]).is_err());
    let bad_config = NearestConfig {
        weighting: TipWeighting {
            half_life_days: -1.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let schema = world_schema();
    let train = [pair(&ds, 0, reference("music"))];
    assert!(matches!(
        NearestComposer::fit_with(&schema, &ctx, &train, bad_config),
        Err(ComposerError::Config { .. })
    ));
    // A tip naming an author the dataset does not have.
    let n = NearestComposer::fit(&world_schema(), &ctx, &train).unwrap();
    let q_tips = [tip(77, 1.0, DAY)];
    let q = HistoryQuery {
        tips: &q_tips,
        at_ms: 2 * DAY,
    };
    assert!(matches!(
        n.compose(&ctx, q),
        Err(ComposerError::Data { .. })
    ));
}

#[test]
fn composer_nearest_on_a_tiny_world() {
    let dir = tempfile::tempdir().unwrap();
    let config = SyntheticWorldConfig {
        seed: 4,
        authors: 30,
        users: 120,
        frames_per_author: 1,
        frame_size: 16,
        audio_seconds: 0.25,
        ..Default::default()
    };
    generate(&config, dir.path()).unwrap();
    let ds = mspa_core::load_native(dir.path()).unwrap();
    let truth = Truth::load(dir.path()).unwrap();
    let pairs = reference_pairs(
        &ds,
        &truth.references(),
        &mspa_core::Split::leave_last_out(&ds),
        &PairConfig::default(),
    )
    .unwrap();
    let schema = world_schema();
    // Stand-in features for the test: one-hot latent attributes per modality, as a
    // perfect encoder would give (the composer itself never sees the truth).
    let feats: Vec<AuthorFeatures> = ds
        .authors()
        .iter()
        .map(|a| {
            let t = truth.author(&a.id.to_string()).unwrap().attributes;
            let mut visual = vec![0.0f32; 20];
            visual[t.category as usize] = 1.0;
            visual[8 + t.energy as usize] = 1.0;
            visual[11 + t.visuals as usize] = 1.0;
            visual[16 + t.format as usize] = 1.0;
            let mut audio = vec![0.0f32; 8];
            audio[t.energy as usize] = 1.0;
            audio[3 + t.audio as usize] = 1.0;
            let mut text = vec![0.0f32; 16];
            text[t.category as usize] = 1.0;
            text[8 + t.language as usize] = 1.0;
            text[12 + t.format as usize] = 1.0;
            AuthorFeatures {
                visual,
                audio,
                text,
                present: [true; 3],
            }
        })
        .collect();
    let gold: Vec<PreferenceFields> = pairs
        .heldout
        .iter()
        .map(|p| schema.parse(&p.reference).unwrap())
        .collect();
    let queries: Vec<HistoryQuery<'_>> = pairs.heldout.iter().map(|p| p.query(&ds)).collect();
    for features in [None, Some(feats.as_slice())] {
        let ctx = ComposeContext {
            dataset: &ds,
            features,
            text_encoder: None,
        };
        let n = NearestComposer::fit(&world_schema(), &ctx, &pairs.train).unwrap();
        // A training history finds itself (or an identical one).
        for (i, p) in pairs.train.iter().enumerate() {
            let (j, s) = n.nearest(&ctx, &p.query(&ds)).unwrap().unwrap();
            assert!(s > 0.9999, "pair {i}: nearest {j} at {s}");
        }
        let composed = n.compose_batch(&ctx, &queries).unwrap();
        let train_refs: Vec<&str> = pairs.train.iter().map(|p| p.reference.as_str()).collect();
        for (p, q) in composed.iter().zip(&queries) {
            assert!(train_refs.contains(&p.text.as_str()));
            assert_eq!(schema.parse(&p.text).unwrap(), p.fields);
            if q.tips.is_empty() {
                assert_eq!(p.text, n.cold_reference());
            }
            for e in &p.evidence {
                assert!(e.tips.iter().all(|&t| t < q.tips.len()));
            }
        }
        let preds: Vec<PreferenceFields> = composed.iter().map(|p| p.fields.clone()).collect();
        let s = field_scores(&schema, &preds, &gold);
        let per: Vec<String> = s
            .per_field
            .iter()
            .map(|f| format!("{} {:.3}", f.name, f.f1))
            .collect();
        eprintln!(
            "nearest ({}) on {} held-out users: micro F1 {:.3} | {}",
            if features.is_some() {
                "features"
            } else {
                "author ids"
            },
            s.n,
            s.micro.f1,
            per.join(" | ")
        );
        assert_eq!(n.compose_batch(&ctx, &queries).unwrap(), composed);
    }
}

/// The synthetic world's reference grammar as a schema (the world publishes it as JSON).
fn world_schema() -> PreferenceSchema {
    PreferenceSchema::from_json(&mspa_core::synth::reference::schema_json()).unwrap()
}
