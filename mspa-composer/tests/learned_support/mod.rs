//! Shared fixtures of the `learned_*` tests: a tiny synthetic world, attribute-derived
//! author features (no media extraction), training pairs.

#![allow(dead_code)]

use std::path::Path;

use mspa_composer::composer::TrainingPair;
use mspa_core::synth::{Field, SyntheticWorldConfig, Truth, generate};
use mspa_core::{Dataset, ExternalId, UserId};
use mspa_modal::features::AuthorFeatures;

/// A tiny world written into `dir`: 30 authors, 60 users.
pub fn tiny_world(dir: &Path, seed: u64) -> (Dataset, Truth) {
    let config = SyntheticWorldConfig {
        seed,
        authors: 30,
        users: 60,
        frames_per_author: 1,
        frame_size: 16,
        audio_seconds: 0.1,
        sample_rate: 8_000,
        ..Default::default()
    };
    generate(&config, dir).expect("world");
    let dataset = mspa_core::loaders::load_native(dir).expect("dataset");
    let truth = Truth::load(dir).expect("truth");
    (dataset, truth)
}

/// SplitMix64 for the noise of the fake features.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn one_hot(n: usize, k: usize, out: &mut Vec<f32>) {
    out.extend((0..n).map(|i| if i == k { 1.0 } else { 0.0 }));
}

/// Author features as an extractor would see them: each modality shows the attributes the
/// synthetic world puts into it (one-hot) plus noise; authors lacking a modality in the
/// world lack it here. Indexed by `AuthorId`.
pub fn attribute_features(
    dataset: &Dataset,
    truth: &Truth,
    noise: f32,
    seed: u64,
) -> Vec<AuthorFeatures> {
    let mut rng = Rng(seed);
    dataset
        .authors()
        .iter()
        .map(|author| {
            let t = truth.author(&author.id.to_string()).expect("author truth");
            let a = t.attributes;
            let (mut visual, mut audio, mut text) = (Vec::new(), Vec::new(), Vec::new());
            one_hot(8, a.value(Field::Categories), &mut visual);
            one_hot(3, a.value(Field::Energy), &mut visual);
            one_hot(5, a.value(Field::Visuals), &mut visual);
            one_hot(4, a.value(Field::Format), &mut visual);
            one_hot(3, a.value(Field::Energy), &mut audio);
            one_hot(5, a.value(Field::Audio), &mut audio);
            one_hot(8, a.value(Field::Categories), &mut text);
            one_hot(4, a.value(Field::Language), &mut text);
            one_hot(4, a.value(Field::Format), &mut text);
            for v in visual
                .iter_mut()
                .chain(audio.iter_mut())
                .chain(text.iter_mut())
            {
                *v += noise * (rng.unit() - 0.5);
            }
            let present = [t.has_frames, t.has_audio, true];
            for (m, v) in [&mut visual, &mut audio, &mut text].into_iter().enumerate() {
                if !present[m] {
                    v.iter_mut().for_each(|x| *x = 0.0);
                }
            }
            AuthorFeatures {
                visual,
                audio,
                text,
                present,
            }
        })
        .collect()
}

/// The user ids of the dataset in truth order.
pub fn user_ids(dataset: &Dataset, truth: &Truth) -> Vec<UserId> {
    truth
        .users()
        .iter()
        .map(|u| {
            dataset
                .user_by_external(&ExternalId::parse(&u.id))
                .expect("user")
        })
        .collect()
}

/// Leave-last-out pairs: the history before each user's last tip and the reference text
/// at that time.
pub fn split_pairs(dataset: &Dataset, truth: &Truth) -> Vec<TrainingPair> {
    truth
        .users()
        .iter()
        .zip(user_ids(dataset, truth))
        .map(|(u, id)| {
            let range = dataset.user_range(id);
            TrainingPair {
                user: id,
                tips: range.start..range.end - 1,
                at_ms: u.split_time_ms,
                reference: u.reference.clone(),
            }
        })
        .collect()
}

/// Prefix pairs for training: for every tip `k >= 1` of every user, the tips before it and
/// the reference text at its time (the truth renders the preference at any time).
pub fn prefix_pairs(dataset: &Dataset, truth: &Truth, users: &[usize]) -> Vec<TrainingPair> {
    let ids = user_ids(dataset, truth);
    let mut out = Vec::new();
    for &i in users {
        let u = &truth.users()[i];
        let range = dataset.user_range(ids[i]);
        let events = &dataset.events()[range.clone()];
        for k in 1..events.len() {
            let at = events[k].timestamp_ms;
            out.push(TrainingPair {
                user: ids[i],
                tips: range.start..range.start + k,
                at_ms: at,
                reference: truth.reference_text(&u.id, at).expect("reference"),
            });
        }
    }
    out
}
