//! The synthetic world's truth: reference texts, the oracle, drift, amounts, repeats.

use std::collections::HashMap;
use std::path::Path;

use mspa_core::synth::reference::{
    FREQUENCIES, FREQUENCY_THRESHOLDS, GENEROSITIES, GENEROSITY_THRESHOLDS,
};
use mspa_core::synth::{Field, SynthError, SyntheticWorldConfig, Truth, generate, parse_reference};
use rand::{Rng, SeedableRng};

/// (author, amount, time) per user, in file order.
type Tips = HashMap<String, Vec<(String, f64, i64)>>;

fn read_tips(dir: &Path) -> Tips {
    let mut by: Tips = HashMap::new();
    let text = std::fs::read_to_string(dir.join("tips.csv")).unwrap();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        by.entry(f[0].to_string()).or_default().push((
            f[1].to_string(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        ));
    }
    by
}

/// A small world with enough authors for 100 random negatives, and its tips.
fn world(seed: u64) -> (tempfile::TempDir, Truth, Tips) {
    let dir = tempfile::tempdir().unwrap();
    let config = SyntheticWorldConfig {
        seed,
        authors: 150,
        users: 300,
        frames_per_author: 1,
        frame_size: 16,
        audio_seconds: 0.25,
        ..Default::default()
    };
    generate(&config, dir.path()).unwrap();
    let truth = Truth::load(dir.path()).unwrap();
    let tips = read_tips(dir.path());
    (dir, truth, tips)
}

fn bucket(x: f64, t: [f64; 2]) -> usize {
    if x < t[0] {
        0
    } else if x < t[1] {
        1
    } else {
        2
    }
}

#[test]
fn synth_reference_names_the_strongest_attributes_at_the_split_time() {
    let (_dir, truth, tips) = world(21);
    assert_eq!(truth.users().len(), 300);
    for user in truth.users() {
        let mine = &tips[&user.id];
        // The split time is the time of the user's last tip.
        assert_eq!(user.split_time_ms, mine.last().unwrap().2);
        assert_eq!(user.tips, mine.len());
        // The stored reference is the text at the split time, and parses.
        let text = truth.reference_text(&user.id, user.split_time_ms).unwrap();
        assert_eq!(text, user.reference);
        assert_eq!(truth.split_reference(&user.id), Some(text.as_str()));
        let parsed = parse_reference(&text).unwrap();
        let pref = truth.preference_at(&user.id, user.split_time_ms).unwrap();
        for field in Field::ALL {
            let weights = pref.get(field);
            let listed = parsed.values(field);
            // The strongest value comes first.
            assert_eq!(
                listed[0],
                field.values()[pref.top(field)],
                "{}: {text}",
                user.id
            );
            // Every listed value outweighs every unlisted one.
            let min_listed = listed
                .iter()
                .map(|v| weights[field.index_of(v).unwrap()])
                .fold(f64::INFINITY, f64::min);
            for (i, v) in field.values().iter().enumerate() {
                if !listed.iter().any(|l| l == v) {
                    assert!(weights[i] <= min_listed, "{}: {text}", user.id);
                }
            }
        }
        assert_eq!(
            parsed.frequency,
            FREQUENCIES[bucket(user.rate_per_week, FREQUENCY_THRESHOLDS)]
        );
        assert_eq!(
            parsed.generosity,
            GENEROSITIES[bucket(user.generosity, GENEROSITY_THRESHOLDS)]
        );
    }
}

#[test]
fn synth_oracle_ranks_the_held_out_tip_above_random_authors() {
    let (_dir, truth, tips) = world(22);
    let authors: Vec<&str> = truth.authors().iter().map(|a| a.id.as_str()).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    // Popularity from everything but the held-out tips.
    let mut counts: HashMap<&str, f64> = HashMap::new();
    for mine in tips.values() {
        for t in &mine[..mine.len() - 1] {
            *counts.entry(t.0.as_str()).or_default() += 1.0;
        }
    }
    let (mut auc_aff, mut auc_prob, mut auc_pop, mut users) = (0.0, 0.0, 0.0, 0.0);
    for user in truth.users() {
        let mine = &tips[&user.id];
        if mine.len() < 2 {
            continue;
        }
        let (target, _, t) = mine.last().unwrap();
        let history: Vec<&str> = mine[..mine.len() - 1]
            .iter()
            .map(|x| x.0.as_str())
            .collect();
        let aff = truth.affinities(&user.id, *t).unwrap();
        let prob = truth
            .next_tip_probabilities(&user.id, *t, &history)
            .unwrap();
        let ti = authors.iter().position(|a| a == target).unwrap();
        let pop = |a: usize| counts.get(authors[a]).copied().unwrap_or(0.0);
        let win = |s: f64, n: f64| {
            if s > n {
                1.0
            } else if s == n {
                0.5
            } else {
                0.0
            }
        };
        let (mut a1, mut a2, mut a3) = (0.0, 0.0, 0.0);
        for _ in 0..100 {
            let mut r = rng.random_range(0..authors.len());
            while r == ti {
                r = rng.random_range(0..authors.len());
            }
            a1 += win(aff[ti], aff[r]);
            a2 += win(prob[ti], prob[r]);
            a3 += win(pop(ti), pop(r));
        }
        assert!((prob.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(truth.affinity(&user.id, target, *t), Some(aff[ti]));
        auc_aff += a1 / 100.0;
        auc_prob += a2 / 100.0;
        auc_pop += a3 / 100.0;
        users += 1.0;
    }
    let (auc_aff, auc_prob, auc_pop) = (auc_aff / users, auc_prob / users, auc_pop / users);
    eprintln!(
        "AUC over {users} users: affinity {auc_aff:.3}, next-tip {auc_prob:.3}, popularity {auc_pop:.3}"
    );
    assert!(users > 200.0);
    // Far above chance (0.5) for the oracle; the next-tip oracle is better still.
    assert!(auc_aff > 0.8, "affinity AUC {auc_aff}");
    assert!(
        auc_prob > auc_aff,
        "next-tip AUC {auc_prob} vs affinity {auc_aff}"
    );
    // Popularity carries signal too, but less than the oracle.
    assert!(
        auc_pop > 0.6 && auc_pop < auc_prob,
        "popularity AUC {auc_pop}"
    );
    assert_eq!(truth.affinity("nobody", authors[0], 0), None);
    assert_eq!(truth.affinity(&truth.users()[0].id, "nobody", 0), None);
}

#[test]
fn synth_preferences_drift_amounts_follow_affinity_and_users_retip() {
    let (_dir, truth, tips) = world(23);
    // Drift: about half the users drift, and some references change over the window.
    let drifting = truth.users().iter().filter(|u| u.drift.is_some()).count();
    assert!((90..=210).contains(&drifting), "{drifting} drifting users");
    let changed = truth
        .users()
        .iter()
        .filter(|u| truth.reference_text(&u.id, u.window_ms[0]).unwrap() != u.reference)
        .count();
    assert!(changed > 30, "{changed} references changed");
    for u in truth.users().iter().filter(|u| u.drift.is_none()) {
        assert_eq!(
            truth.reference_text(&u.id, u.window_ms[0]).unwrap(),
            u.reference
        );
    }
    // Amounts grow with affinity.
    let mut pairs = Vec::new();
    let (mut repeats, mut total) = (0usize, 0usize);
    for user in truth.users() {
        let mut seen = std::collections::HashSet::new();
        for (author, amount, t) in &tips[&user.id] {
            pairs.push((truth.affinity(&user.id, author, *t).unwrap(), amount.ln()));
            if !seen.insert(author.as_str()) {
                repeats += 1;
            }
            total += 1;
        }
    }
    let n = pairs.len() as f64;
    let (ma, mb) = pairs
        .iter()
        .fold((0.0, 0.0), |s, p| (s.0 + p.0 / n, s.1 + p.1 / n));
    let cov: f64 = pairs.iter().map(|p| (p.0 - ma) * (p.1 - mb)).sum();
    let va: f64 = pairs.iter().map(|p| (p.0 - ma).powi(2)).sum();
    let vb: f64 = pairs.iter().map(|p| (p.1 - mb).powi(2)).sum();
    let corr = cov / (va * vb).sqrt();
    eprintln!("corr(affinity, log amount) {corr:.3}, drifting {drifting}, changed {changed}");
    assert!(corr > 0.2, "corr(affinity, log amount) = {corr}");
    // Users re-tip authors they like, but not only those.
    let share = repeats as f64 / total as f64;
    eprintln!("repeat share {share:.3}");
    assert!((0.15..0.75).contains(&share), "repeat share {share}");
}

#[test]
fn synth_truth_load_names_the_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Truth::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, SynthError::Io { .. }) && err.to_string().contains("truth.json"),
        "{err}"
    );
    let config = SyntheticWorldConfig {
        authors: 3,
        users: 4,
        audio_seconds: 0.1,
        ..Default::default()
    };
    generate(&config, dir.path()).unwrap();
    let users = dir.path().join("truth_users.jsonl");
    let text = std::fs::read_to_string(&users).unwrap();
    std::fs::write(&users, text.replacen("\"start\"", "\"begin\"", 1)).unwrap();
    let err = Truth::load(dir.path()).unwrap_err();
    assert!(matches!(err, SynthError::Parse { .. }), "{err:?}");
    assert!(
        err.to_string().contains("truth_users.jsonl") && err.to_string().contains("line 1"),
        "{err}"
    );
}
