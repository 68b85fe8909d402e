//! The history encoder and the preference generator on hand-made histories: shapes,
//! padding invariance, cold users, constrained decoding, beam vs greedy.

use burn::tensor::{Device, Tensor};
use mspa_composer::composer::HistoryQuery;
use mspa_composer::generator::{DecodeStrategy, GeneratorConfig, PreferenceGenerator};
use mspa_composer::history::{HistoryBatch, HistoryEncoder, HistoryEncoderConfig};
use mspa_composer::schema::PreferenceSchema;
use mspa_core::{AuthorId, TipEvent, UserId};
use mspa_modal::features::AuthorFeatures;

const DAY: i64 = 86_400_000;
const DIMS: [usize; 3] = [6, 4, 5];

fn features(n: usize) -> Vec<AuthorFeatures> {
    (0..n)
        .map(|i| {
            let v = |d: usize, s: f32| {
                (0..d)
                    .map(|k| ((i * 7 + k * 3) % 11) as f32 / 11.0 * s)
                    .collect::<Vec<f32>>()
            };
            AuthorFeatures {
                visual: v(DIMS[0], 1.0),
                audio: v(DIMS[1], -1.0),
                text: v(DIMS[2], 0.5),
                present: [i % 3 != 0, i % 4 != 1, true],
            }
        })
        .collect()
}

fn tips(authors: &[u32]) -> Vec<TipEvent> {
    authors
        .iter()
        .enumerate()
        .map(|(k, &a)| TipEvent {
            user: UserId(0),
            author: AuthorId(a),
            amount: 1.0 + k as f64,
            timestamp_ms: k as i64 * DAY,
        })
        .collect()
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn encoder(device: &Device) -> HistoryEncoder {
    HistoryEncoderConfig::new(DIMS)
        .with_d_model(16)
        .with_heads(2)
        .with_d_ff(32)
        .with_seed(7)
        .init(device)
}

fn generator(schema: &PreferenceSchema, device: &Device) -> PreferenceGenerator {
    GeneratorConfig::new(schema.vocab_size(), 16)
        .with_d_model(16)
        .with_heads(2)
        .with_d_ff(32)
        .with_max_len(32)
        .with_seed(11)
        .init(device)
}

#[test]
fn encoder_shapes_and_weights() {
    let device = Device::flex();
    let feats = features(10);
    let (a, b) = (tips(&[1, 2, 3, 2, 5]), tips(&[4, 4]));
    let queries = [
        HistoryQuery {
            tips: &a,
            at_ms: 10 * DAY,
        },
        HistoryQuery {
            tips: &b,
            at_ms: 3 * DAY,
        },
        HistoryQuery {
            tips: &[],
            at_ms: 0,
        },
    ];
    let batch = HistoryBatch::build(&feats, &queries, 4, &device);
    assert_eq!(batch.authors.dims(), [3, 4, 15]);
    assert_eq!(batch.presence.dims(), [3, 4, 3]);
    assert_eq!(batch.kept, vec![1..5, 0..2, 0..0]);
    let ids = batch
        .author_ids
        .clone()
        .into_data()
        .try_into_vec_as::<i64>()
        .unwrap();
    assert_eq!(&ids[0..4], &[2, 3, 2, 5]);
    let enc = encoder(&device).forward(&batch);
    assert_eq!(enc.pooled.dims(), [3, 16]);
    assert_eq!(enc.tokens.dims(), [3, 4, 16]);
    assert_eq!(enc.weights.dims(), [3, 4]);
    let w = values(enc.weights);
    let s0: f32 = w[0..4].iter().sum();
    let s1: f32 = w[4..8].iter().sum();
    assert!(
        (s0 - 1.0).abs() < 1e-5 && (s1 - 1.0).abs() < 1e-5,
        "{s0} {s1}"
    );
    assert!(w[6] == 0.0 && w[7] == 0.0, "padding gets weight: {w:?}");
    assert!(w[8..12].iter().all(|&x| x == 0.0));
    let tokens = enc.tokens.into_data().try_to_vec::<f32>().unwrap();
    assert!(
        tokens[(4 + 2) * 16..(4 + 4) * 16].iter().all(|&x| x == 0.0),
        "padding tokens are zero"
    );
}

#[test]
fn padding_does_not_change_the_encoding() {
    let device = Device::flex();
    let feats = features(10);
    let (short, long) = (tips(&[3, 1]), tips(&[1, 2, 3, 4, 5, 6]));
    let enc = encoder(&device);
    let alone = enc.forward(&HistoryBatch::build(
        &feats,
        &[HistoryQuery {
            tips: &short,
            at_ms: 5 * DAY,
        }],
        8,
        &device,
    ));
    let both = enc.forward(&HistoryBatch::build(
        &feats,
        &[
            HistoryQuery {
                tips: &short,
                at_ms: 5 * DAY,
            },
            HistoryQuery {
                tips: &long,
                at_ms: 9 * DAY,
            },
        ],
        8,
        &device,
    ));
    let a = values(alone.pooled);
    let b = values(both.pooled);
    let diff = a
        .iter()
        .zip(&b[0..16])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "pooled vector changed by padding: {diff}");
}

#[test]
fn cold_users_get_the_learned_cold_vector() {
    let device = Device::flex();
    let feats = features(5);
    let enc = encoder(&device);
    let empty: [TipEvent; 0] = [];
    let queries = [
        HistoryQuery {
            tips: &empty,
            at_ms: 0,
        },
        HistoryQuery {
            tips: &empty,
            at_ms: 99 * DAY,
        },
    ];
    let out = enc.forward(&HistoryBatch::build(&feats, &queries, 16, &device));
    let pooled = values(out.pooled);
    assert!(
        pooled.iter().all(|x| x.is_finite()),
        "NaN for a cold user: {pooled:?}"
    );
    let cold = enc.cold.val().into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(&pooled[0..16], cold.as_slice());
    assert_eq!(&pooled[16..32], cold.as_slice());
    assert!(values(out.weights).iter().all(|&x| x == 0.0));
    // A cold user also decodes (the pooled slot of the memory is always attendable).
    let schema = world_schema();
    let gen_ = generator(&schema, &device);
    let batch = HistoryBatch::build(&feats, &queries, 16, &device);
    let mem = gen_.memory(&enc.forward(&batch), &batch.mask);
    let hyps = gen_
        .decode(&mem, DecodeStrategy::Greedy, Some(&schema))
        .unwrap();
    for h in hyps {
        assert!(h.log_prob.is_finite());
        schema.decode(&h.tokens).unwrap();
    }
}

#[test]
fn constrained_decoding_always_parses_untrained() {
    let device = Device::flex();
    let feats = features(12);
    let schema = world_schema();
    let histories: Vec<Vec<TipEvent>> = (0..6)
        .map(|u| {
            tips(
                &(0..u as u32)
                    .map(|k| (k * 5 + u as u32) % 12)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let queries: Vec<HistoryQuery<'_>> = histories
        .iter()
        .map(|t| HistoryQuery {
            tips: t,
            at_ms: 20 * DAY,
        })
        .collect();
    let batch = HistoryBatch::build(&feats, &queries, 8, &device);
    for seed in [1u64, 2, 3] {
        let enc = HistoryEncoderConfig::new(DIMS)
            .with_d_model(16)
            .with_heads(2)
            .with_seed(seed)
            .init(&device);
        let gen_ = GeneratorConfig::new(schema.vocab_size(), 16)
            .with_d_model(16)
            .with_heads(2)
            .with_max_len(24)
            .with_seed(seed)
            .init(&device);
        let mem = gen_.memory(&enc.forward(&batch), &batch.mask);
        for strategy in [DecodeStrategy::Greedy, DecodeStrategy::Beam(3)] {
            let hyps = gen_.decode(&mem, strategy, Some(&schema)).unwrap();
            assert_eq!(hyps.len(), 6);
            for h in &hyps {
                assert!(h.finished, "{strategy:?} did not finish: {:?}", h.tokens);
                let fields = schema
                    .decode(&h.tokens)
                    .expect("constrained output decodes");
                let text = schema.render(&fields);
                assert_eq!(schema.parse(&text).unwrap(), fields, "{text}");
            }
        }
        // Unconstrained, an untrained model almost never writes a valid sentence; the
        // generator still returns one hypothesis per user, bounded by max_len.
        let free = gen_.decode(&mem, DecodeStrategy::Greedy, None).unwrap();
        assert!(free.iter().all(|h| h.tokens.len() <= 24));
    }
}

#[test]
fn beam_scores_match_teacher_forcing_and_beat_greedy() {
    let device = Device::flex();
    let feats = features(12);
    let schema = world_schema();
    let histories: Vec<Vec<TipEvent>> = (0..8)
        .map(|u| {
            tips(
                &(0..(u as u32 + 1))
                    .map(|k| (k * 3 + u as u32) % 12)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let queries: Vec<HistoryQuery<'_>> = histories
        .iter()
        .map(|t| HistoryQuery {
            tips: t,
            at_ms: 20 * DAY,
        })
        .collect();
    let batch = HistoryBatch::build(&feats, &queries, 8, &device);
    let enc = encoder(&device);
    let gen_ = generator(&schema, &device);
    let mem = gen_.memory(&enc.forward(&batch), &batch.mask);
    let greedy = gen_
        .decode(&mem, DecodeStrategy::Greedy, Some(&schema))
        .unwrap();
    let beam = gen_
        .decode(&mem, DecodeStrategy::Beam(4), Some(&schema))
        .unwrap();
    // The scores the decoders report are the model's own log-probabilities.
    for hyps in [&greedy, &beam] {
        let seqs: Vec<Vec<u32>> = hyps.iter().map(|h| h.tokens.clone()).collect();
        let tf = gen_.sequence_log_probs(&mem, &seqs);
        for (h, lp) in hyps.iter().zip(&tf) {
            assert!(
                (h.log_prob - lp).abs() < 1e-3 * (1.0 + lp.abs()),
                "decoder {} vs teacher forcing {lp}",
                h.log_prob
            );
        }
    }
    let mut better = 0;
    for (g, b) in greedy.iter().zip(&beam) {
        assert!(
            b.score >= g.score - 1e-4,
            "beam {} below greedy {}",
            b.score,
            g.score
        );
        if b.score > g.score + 1e-4 {
            better += 1;
        }
    }
    eprintln!(
        "beam strictly better than greedy for {better} of {} users",
        greedy.len()
    );
    // Width 1 beam search is greedy search.
    let one = gen_
        .decode(&mem, DecodeStrategy::Beam(1), Some(&schema))
        .unwrap();
    for (g, o) in greedy.iter().zip(&one) {
        assert_eq!(g.tokens, o.tokens);
    }
}

#[test]
fn a_strong_decay_puts_the_weight_on_recent_tips() {
    let device = Device::flex();
    // Identical authors and amounts: only age and the tip token tell the tips apart.
    let feats: Vec<AuthorFeatures> = (0..6).map(|_| features(1).remove(0)).collect();
    let history: Vec<TipEvent> = (0..6)
        .map(|k| TipEvent {
            user: UserId(0),
            author: AuthorId(k),
            amount: 2.0,
            timestamp_ms: k as i64 * DAY,
        })
        .collect();
    let batch = HistoryBatch::build(
        &feats,
        &[HistoryQuery {
            tips: &history,
            at_ms: 6 * DAY,
        }],
        8,
        &device,
    );
    let strong = HistoryEncoderConfig::new(DIMS)
        .with_d_model(16)
        .with_heads(2)
        .with_initial_decay_per_day(5.0)
        .init(&device);
    assert!((strong.decay_per_day() - 5.0).abs() < 1e-3);
    let w = values(strong.forward(&batch).weights);
    assert!(w[5] > 0.95, "most recent tip gets {w:?}");
    let weak = HistoryEncoderConfig::new(DIMS)
        .with_d_model(16)
        .with_heads(2)
        .with_initial_decay_per_day(1e-4)
        .init(&device);
    let w = values(weak.forward(&batch).weights);
    assert!(w[5] < 0.5, "without decay the weight spreads: {w:?}");
}

/// The synthetic world's reference grammar as a schema (the world publishes it as JSON).
fn world_schema() -> PreferenceSchema {
    PreferenceSchema::from_json(&mspa_core::synth::reference::schema_json()).unwrap()
}
