//! Field scores on hand-made cases, text evaluation, and the held-out protocol on a tiny
//! synthetic world.

use std::collections::{HashMap, HashSet};

use mspa_composer::ComposerError;
use mspa_composer::eval::{
    PairConfig, evaluate_texts, field_scores, field_scores_opt, held_back_from, is_heldout,
    reference_pairs,
};
use mspa_composer::schema::{FieldSpec, PreferenceFields, PreferenceSchema};
use mspa_core::Split;
use mspa_core::synth::{SyntheticWorldConfig, Truth, generate};

fn small_schema() -> PreferenceSchema {
    PreferenceSchema::new(vec![
        FieldSpec::list("color", &["red", "green", "blue"], 2),
        FieldSpec::tuple("size", &[&["s", "m", "l"], &["light", "heavy"]]),
    ])
    .unwrap()
}

fn f(color: &[&str], size: &[&str]) -> PreferenceFields {
    PreferenceFields::from_strs(&[color, size])
}

#[test]
fn composer_eval_field_scores_on_hand_made_cases() {
    let schema = small_schema();
    let refs = vec![
        f(&["red", "green"], &["s", "light"]),
        f(&["blue"], &["m", "heavy"]),
        f(&["red"], &["l", "light"]),
    ];
    let preds = vec![
        // color: green correct (order does not matter), red missed, blue wrong.
        f(&["blue", "green"], &["s", "heavy"]),
        // exact.
        f(&["blue"], &["m", "heavy"]),
        // unknown value is simply wrong.
        f(&["crimson"], &["l", "light"]),
    ];
    let s = field_scores(&schema, &preds, &refs);
    assert_eq!(s.n, 3);
    let color = s.get("color").unwrap();
    // tp: green, blue = 2; fp: blue(1st), crimson = 2; fn: red(1st), red(3rd) = 2.
    assert_eq!(
        (
            color.true_positives,
            color.false_positives,
            color.false_negatives
        ),
        (2, 2, 2)
    );
    assert!((color.precision - 0.5).abs() < 1e-12);
    assert!((color.recall - 0.5).abs() < 1e-12);
    assert!((color.f1 - 0.5).abs() < 1e-12);
    assert!((color.exact_match - 1.0 / 3.0).abs() < 1e-12);
    let size = s.get("size").unwrap();
    // Slots: (s ok, heavy wrong), (m ok, heavy ok), (l ok, light ok): tp 5, fp 1, fn 1.
    assert_eq!(
        (
            size.true_positives,
            size.false_positives,
            size.false_negatives
        ),
        (5, 1, 1)
    );
    assert!((size.f1 - 5.0 / 6.0).abs() < 1e-12);
    assert!((size.exact_match - 2.0 / 3.0).abs() < 1e-12);
    // Micro: tp 7, fp 3, fn 3.
    assert!((s.micro.precision - 0.7).abs() < 1e-12);
    assert!((s.micro.recall - 0.7).abs() < 1e-12);
    assert!((s.micro.f1 - 0.7).abs() < 1e-12);
    assert!((s.micro.exact_match - 3.0 / 6.0).abs() < 1e-12);

    // Perfect predictions.
    let s = field_scores(&schema, &refs, &refs);
    assert_eq!(s.micro.f1, 1.0);
    assert!(
        s.per_field
            .iter()
            .all(|x| x.f1 == 1.0 && x.exact_match == 1.0)
    );

    // Over-predicting hurts precision only; duplicates count once.
    let s = field_scores(
        &schema,
        &[f(&["red", "red", "blue"], &["s", "light"])],
        &[f(&["red"], &["s", "light"])],
    );
    let color = s.get("color").unwrap();
    assert_eq!((color.precision, color.recall), (0.5, 1.0));

    // A failed parse is all wrong: every reference value is a false positive and a false
    // negative.
    let s = field_scores_opt(&schema, &[None, Some(&refs[1])], &refs[..2]);
    let color = s.get("color").unwrap();
    assert_eq!(
        (
            color.true_positives,
            color.false_positives,
            color.false_negatives
        ),
        (1, 2, 2)
    );
    assert_eq!(s.get("size").unwrap().true_positives, 2);
    assert_eq!(s.micro.exact_match, 0.5);

    // Nothing to score.
    let s = field_scores(&schema, &[], &[]);
    assert_eq!((s.n, s.micro.f1), (0, 0.0));
}

#[test]
fn composer_eval_texts_bleu_rouge_and_fields() {
    let schema = world_schema();
    let refs = vec![
        "categories: music, dance | energy: high | audio: electronic | visuals: neon | language: english | format: solo | tipping: frequent, generous".to_string(),
        "categories: gaming | energy: low | audio: rock | visuals: dark | language: french | format: collab | tipping: rare, modest".to_string(),
    ];
    let same = evaluate_texts(&schema, &refs, &refs, None).unwrap();
    assert!((same.bleu4 - 100.0).abs() < 1e-9, "{}", same.bleu4);
    assert!((same.rouge_l - 1.0).abs() < 1e-12);
    assert_eq!(same.field_f1, 1.0);
    assert_eq!((same.n, same.parse_failures), (2, 0));
    assert_eq!(same.bertscore_f1, None);
    assert_eq!(same.per_field.len(), 7);

    let hyps = vec![
        refs[0].replace("music, dance", "music"),
        "I think this user likes gaming".to_string(),
    ];
    let e = evaluate_texts(&schema, &hyps, &refs, None).unwrap();
    assert_eq!(e.parse_failures, 1);
    assert!(e.bleu4 > 0.0 && e.bleu4 < 100.0, "{}", e.bleu4);
    assert!(e.rouge_l > 0.0 && e.rouge_l < 1.0);
    let cats = &e.per_field[0];
    // Hyp 0: music (tp), dance missed; hyp 1 unparsed: gaming is fp and fn.
    assert_eq!(
        (
            cats.true_positives,
            cats.false_positives,
            cats.false_negatives
        ),
        (1, 1, 2)
    );
    assert!(e.field_f1 < 0.6 && e.field_f1 > 0.3, "{}", e.field_f1);

    // Errors: mismatched lengths, empty corpus, a reference that does not parse.
    assert!(matches!(
        evaluate_texts(&schema, &hyps[..1], &refs, None),
        Err(ComposerError::Data { .. })
    ));
    assert!(evaluate_texts(&schema, &[], &[], None).is_err());
    let bad_ref = vec![refs[0].clone(), "not a preference".to_string()];
    let err = evaluate_texts(&schema, &refs, &bad_ref, None).unwrap_err();
    assert!(err.to_string().contains("reference 1"), "{err}");
}

fn tiny_world(seed: u64, users: usize) -> (tempfile::TempDir, mspa_core::Dataset, Truth) {
    let dir = tempfile::tempdir().unwrap();
    let config = SyntheticWorldConfig {
        seed,
        authors: 30,
        users,
        frames_per_author: 1,
        frame_size: 16,
        audio_seconds: 0.25,
        ..Default::default()
    };
    generate(&config, dir.path()).unwrap();
    let ds = mspa_core::load_native(dir.path()).unwrap();
    let truth = Truth::load(dir.path()).unwrap();
    (dir, ds, truth)
}

#[test]
fn composer_eval_reference_pairs_follow_the_protocol() {
    let (_dir, ds, truth) = tiny_world(5, 120);
    let config = PairConfig {
        seed: 9,
        ..Default::default()
    };
    let split = Split::leave_last_out(&ds);
    let pairs = reference_pairs(&ds, &truth.references(), &split, &config).unwrap();
    let held_back = held_back_from(&ds, &split);
    let schema = world_schema();

    let held_users: HashSet<_> = pairs.heldout.iter().map(|p| p.user).collect();
    assert_eq!(
        held_users.len(),
        pairs.heldout.len(),
        "one pair per held-out user"
    );
    let train_users: HashSet<_> = pairs.train.iter().map(|p| p.user).collect();
    assert!(
        held_users.is_disjoint(&train_users),
        "a held-out user is in train"
    );
    // Every held-out decision follows the seeded hash; about 20% are held out.
    for u in ds.users() {
        let ext = ds.user_external(u).to_string();
        assert_eq!(is_heldout(&ext, &config), held_users.contains(&u), "{ext}");
    }
    let share = held_users.len() as f64 / ds.n_users() as f64;
    assert!((0.08..=0.35).contains(&share), "held-out share {share}");

    for p in pairs.heldout.iter().chain(&pairs.train) {
        let ext = ds.user_external(p.user).to_string();
        let range = ds.user_range(p.user);
        // A prefix of the user's events, all strictly before at_ms.
        assert_eq!(p.tips.start, range.start);
        assert!(p.tips.end <= range.end);
        let q = p.query(&ds);
        assert!(
            q.tips
                .iter()
                .all(|e| e.timestamp_ms < p.at_ms && e.user == p.user)
        );
        // The prefix is maximal: the next event (if any) is not before at_ms.
        if p.tips.end < range.end {
            assert!(ds.events()[p.tips.end].timestamp_ms >= p.at_ms);
        }
        assert_eq!(p.reference, truth.reference_text(&ext, p.at_ms).unwrap());
        schema.parse(&p.reference).unwrap();
    }
    // Held-out pairs are at the split time with the stored reference; cold users stay.
    for p in &pairs.heldout {
        let ext = ds.user_external(p.user).to_string();
        assert_eq!(p.at_ms, truth.split_time_ms(&ext).unwrap());
        assert_eq!(p.reference, truth.split_reference(&ext).unwrap());
        assert_eq!(p.tips.len(), ds.user_events(p.user).len() - 1);
    }
    // Training users: at most cuts_per_user pairs, never an empty history, the last one
    // at the latest tip before the user's held-back time (the split time for users
    // without targets), cut times distinct and increasing.
    for u in &train_users {
        let mine: Vec<_> = pairs.train.iter().filter(|p| p.user == *u).collect();
        assert!(!mine.is_empty() && mine.len() <= 3);
        assert!(mine.iter().all(|p| !p.tips.is_empty()));
        assert!(mine.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
        let ext = ds.user_external(*u).to_string();
        let last = mine.last().unwrap().at_ms;
        match held_back[u.index()] {
            None => assert_eq!(last, truth.split_time_ms(&ext).unwrap()),
            Some(limit) => {
                let latest = ds
                    .user_events(*u)
                    .iter()
                    .map(|e| e.timestamp_ms)
                    .filter(|&t| t < limit)
                    .max()
                    .unwrap();
                assert_eq!(last, latest, "{ext}");
            }
        }
    }
    // Users with a single tip give no training pair.
    for u in ds.users() {
        if ds.user_events(u).len() == 1 && !held_users.contains(&u) {
            assert!(!train_users.contains(&u));
        }
    }
    // Several training users have three pairs.
    let with_three = train_users
        .iter()
        .filter(|u| pairs.train.iter().filter(|p| p.user == **u).count() == 3)
        .count();
    assert!(with_three > train_users.len() / 2, "{with_three}");

    // Deterministic; another seed holds out other users; the fraction's extremes.
    assert_eq!(
        reference_pairs(&ds, &truth.references(), &split, &config).unwrap(),
        pairs
    );
    let other = reference_pairs(
        &ds,
        &truth.references(),
        &split,
        &PairConfig {
            seed: 10,
            ..Default::default()
        },
    )
    .unwrap();
    let other_held: HashSet<_> = other.heldout.iter().map(|p| p.user).collect();
    assert_ne!(other_held, held_users);
    let none = reference_pairs(
        &ds,
        &truth.references(),
        &split,
        &PairConfig {
            heldout_fraction: 0.0,
            cuts_per_user: 1,
            seed: 9,
        },
    )
    .unwrap();
    assert!(none.heldout.is_empty());
    assert!(none.train.iter().all(|p| {
        let ext = ds.user_external(p.user).to_string();
        match held_back[p.user.index()] {
            None => p.at_ms == truth.split_time_ms(&ext).unwrap(),
            Some(limit) => p.at_ms < limit,
        }
    }));
    let all = reference_pairs(
        &ds,
        &truth.references(),
        &split,
        &PairConfig {
            heldout_fraction: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(all.train.is_empty());
    assert_eq!(all.heldout.len(), ds.n_users());

    // Bad configs.
    for bad in [
        PairConfig {
            heldout_fraction: 1.5,
            ..Default::default()
        },
        PairConfig {
            cuts_per_user: 0,
            ..Default::default()
        },
    ] {
        assert!(matches!(
            reference_pairs(&ds, &truth.references(), &split, &bad),
            Err(ComposerError::Config { .. })
        ));
    }
}

#[test]
fn composer_eval_reference_pairs_reject_a_foreign_truth() {
    let (_a, ds, _) = tiny_world(1, 40);
    let (_b, _, small_truth) = tiny_world(2, 10);
    let split = Split::leave_last_out(&ds);
    let err = reference_pairs(
        &ds,
        &small_truth.references(),
        &split,
        &PairConfig::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("not in the world's truth"),
        "{err}"
    );
}

/// The leak-free protocol: no training pair of a user that the recommenders evaluate on
/// carries its preference at or after its validation time (its earliest held-back tip),
/// whatever the seed or the number of cut points; held-out users keep their test-time
/// pair (the composer never trains on them).
#[test]
fn composer_eval_training_pairs_end_before_validation() {
    let (_dir, ds, truth) = tiny_world(8, 150);
    let split = Split::leave_last_out(&ds);
    let valid_time: HashMap<_, _> = split
        .valid
        .iter()
        .map(|t| (t.user, t.timestamp_ms))
        .collect();
    let test_time: HashMap<_, _> = split
        .test
        .iter()
        .map(|t| (t.user, t.timestamp_ms))
        .collect();
    assert!(valid_time.len() > 100);
    for (seed, cuts) in [(0, 3), (1, 12), (2, 50)] {
        let config = PairConfig {
            seed,
            cuts_per_user: cuts,
            ..Default::default()
        };
        let pairs = reference_pairs(&ds, &truth.references(), &split, &config).unwrap();
        assert!(!pairs.train.is_empty());
        for p in &pairs.train {
            if let Some(&v) = valid_time.get(&p.user) {
                assert!(p.at_ms < v, "pair at {} >= validation {v}", p.at_ms);
                // Its history holds no validation or test tip either.
                assert!(p.query(&ds).tips.iter().all(|e| e.timestamp_ms < v));
            }
        }
        for p in &pairs.heldout {
            if let Some(&t) = test_time.get(&p.user) {
                assert_eq!(p.at_ms, t);
            }
        }
        // Most evaluated users still teach the composer something.
        let taught: HashSet<_> = pairs.train.iter().map(|p| p.user).collect();
        let evaluated_and_taught = valid_time.keys().filter(|u| taught.contains(u)).count();
        assert!(
            evaluated_and_taught > valid_time.len() / 2,
            "{evaluated_and_taught}"
        );
    }
}

/// The synthetic world's reference grammar as a schema (the world publishes it as JSON).
fn world_schema() -> PreferenceSchema {
    PreferenceSchema::from_json(&mspa_core::synth::reference::schema_json()).unwrap()
}
