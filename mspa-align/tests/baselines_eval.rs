//! `evaluate` and `recommend` against hand computations on a toy dataset.

use std::sync::Mutex;

use mspa_align::baselines::FeatureMatrix;
use mspa_align::recommender::{Query, Recommender, evaluate, recommend};
use mspa_align::{AlignError, Result};
use mspa_core::{Author, AuthorId, Dataset, DatasetBuilder, ExternalId, Split, TipEvent, UserId};
use mspa_metrics::Protocol;
use mspa_modal::features::{AuthorFeatures, Modality};

/// Scores from a fixed table per user; records what it was asked.
struct Table {
    rows: Vec<Vec<f32>>,
    seen: Mutex<Vec<(UserId, Vec<TipEvent>, i64)>>,
}

impl Recommender for Table {
    fn name(&self) -> &str {
        "Table"
    }
    fn score_batch(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()> {
        let n = self.rows[0].len();
        if out.len() != queries.len() * n {
            return Err(AlignError::data("bad buffer"));
        }
        for (q, row) in queries.iter().zip(out.chunks_mut(n)) {
            row.copy_from_slice(&self.rows[q.user.index()]);
            self.seen
                .lock()
                .unwrap()
                .push((q.user, q.history.to_vec(), q.at_ms));
        }
        Ok(())
    }
}

/// 5 authors; user 0 tips a0 a1 a2 a3 (valid a2, test a3); user 1 tips a4 a4 a4 (valid
/// a4, test a4, a repeat); user 2 tips once (no target).
fn toy() -> Dataset {
    let mut b = DatasetBuilder::default();
    let a: Vec<AuthorId> = (0..5)
        .map(|i| b.add_author(Author::bare(ExternalId::Int(i))).unwrap())
        .collect();
    let u0 = b.user(ExternalId::Int(10));
    let u1 = b.user(ExternalId::Int(11));
    let u2 = b.user(ExternalId::Int(12));
    for (t, &x) in [0usize, 1, 2, 3].iter().enumerate() {
        b.push_event(u0, a[x], 1.0, 100 * t as i64);
    }
    for t in 0..3 {
        b.push_event(u1, a[4], 2.0, 50 + 100 * t);
    }
    b.push_event(u2, a[1], 1.0, 7);
    b.build(None)
}

fn table() -> Table {
    Table {
        rows: vec![
            // user 0: a1 > a3 > a0 > a4 > a2
            vec![3.0, 5.0, 1.0, 4.0, 2.0],
            // user 1: a0 > a1 > a4 > ...
            vec![9.0, 8.0, 1.0, 0.5, 7.0],
            vec![0.0; 5],
        ],
        seen: Mutex::new(Vec::new()),
    }
}

fn ndcg_single(rank: usize) -> f64 {
    1.0 / ((rank + 1) as f64).log2()
}

#[test]
fn baselines_evaluate_matches_hand_computation() {
    let ds = toy();
    let split = Split::leave_last_out(&ds);
    assert_eq!(split.test.len(), 2);
    let rec = table();

    // Repeats allowed. user 0's test target a3 ranks 2nd (a1, a3, ...); user 1's test
    // target a4 ranks 3rd (a0, a1, a4).
    let r = evaluate(
        &rec,
        &ds,
        &split.test,
        Protocol::RepeatsAllowed,
        &[1, 2, 3],
        1,
    )
    .unwrap();
    assert_eq!(r.all.users, 2);
    assert_eq!(r.all.recall(1), Some(0.0));
    assert_eq!(r.all.recall(2), Some(0.5));
    assert_eq!(r.all.recall(3), Some(1.0));
    let ndcg3 = (ndcg_single(2) + ndcg_single(3)) / 2.0;
    assert!((r.all.ndcg(3).unwrap() - ndcg3).abs() < 1e-12);
    assert!((r.all.mrr - (0.5 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
    // user 1's target is a repeat (a4 is in its history), user 0's is new.
    assert_eq!((r.new.users, r.repeat.users), (1, 1));
    assert_eq!(r.per_user[0].top, vec![1, 3, 0]);

    // The recommender saw exactly each target's history and time.
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for (t, (user, history, at)) in split.test.iter().zip(&seen) {
        assert_eq!(*user, t.user);
        assert_eq!(history.as_slice(), t.history(&ds));
        assert_eq!(*at, t.timestamp_ms);
    }
    assert_eq!(seen[0].1.len(), 3);

    // New authors: history authors are removed. user 0 (history a0 a1 a2): ranking a3,
    // a4 -> target a3 at rank 1. user 1 (history a4): target excluded, a miss.
    let rec = table();
    let r = evaluate(&rec, &ds, &split.test, Protocol::NewAuthors, &[1, 2], 7).unwrap();
    assert_eq!(r.all.recall(1), Some(0.5));
    assert_eq!(r.all.ndcg(1), Some(0.5));
    assert_eq!(r.per_user[0].top, vec![3, 4]);
    assert_eq!(r.per_user[1].top, vec![0, 1]);
    assert_eq!(r.repeat.recall(2), Some(0.0));

    // Batch size does not change the result.
    let a = evaluate(
        &table(),
        &ds,
        &split.valid,
        Protocol::RepeatsAllowed,
        &[1, 3],
        1,
    )
    .unwrap();
    let b = evaluate(
        &table(),
        &ds,
        &split.valid,
        Protocol::RepeatsAllowed,
        &[1, 3],
        64,
    )
    .unwrap();
    assert_eq!(a, b);
    assert!(
        evaluate(
            &table(),
            &ds,
            &split.valid,
            Protocol::RepeatsAllowed,
            &[1],
            0
        )
        .is_err()
    );
    assert!(
        evaluate(
            &table(),
            &ds,
            &split.valid,
            Protocol::RepeatsAllowed,
            &[],
            4
        )
        .is_err()
    );
}

#[test]
fn baselines_evaluate_groups_time_split_targets() {
    let ds = toy();
    // Train before t=150: user 0 has a0 a1 as history, a2 a3 are both test targets of
    // one query; user 1 has a4 (t=50) as history and a4 a4 as targets.
    let split = Split::by_time(&ds, 150, 150).unwrap();
    let rec = table();
    let r = evaluate(&rec, &ds, &split.test, Protocol::RepeatsAllowed, &[2], 16).unwrap();
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one query per user and history");
    assert_eq!(seen[0].2, 200, "the earliest target time");
    // user 0: top-2 = a1, a3 -> 1 of 2 targets; user 1: top-2 = a0, a1 -> 0 of 1.
    assert_eq!(r.all.recall(2), Some(0.25));
}

#[test]
fn baselines_recommend_excludes_seen() {
    let ds = toy();
    let rec = table();
    let q = Query {
        user: UserId(0),
        history: &ds.user_events(UserId(0))[..2],
        at_ms: 1_000,
    };
    let top = recommend(&rec, q, 3, false, 5).unwrap();
    assert_eq!(
        top,
        vec![(AuthorId(1), 5.0), (AuthorId(3), 4.0), (AuthorId(0), 3.0)]
    );
    let top = recommend(&rec, q, 3, true, 5).unwrap();
    assert_eq!(
        top,
        vec![(AuthorId(3), 4.0), (AuthorId(4), 2.0), (AuthorId(2), 1.0)]
    );
}

#[test]
fn baselines_feature_matrix_standardises_and_flags() {
    let f = |v: [f32; 2], a: f32, present: [bool; 3]| AuthorFeatures {
        visual: if present[0] { v.to_vec() } else { vec![0.0; 2] },
        audio: vec![if present[1] { a } else { 0.0 }],
        text: vec![0.0; 3],
        present,
    };
    let feats = vec![
        f([1.0, 5.0], 2.0, [true, true, false]),
        f([3.0, 5.0], 0.0, [true, false, false]),
        f([0.0, 0.0], 4.0, [false, true, false]),
    ];
    let m = FeatureMatrix::build(&feats, &[Modality::Visual, Modality::Audio], 3).unwrap();
    // 2 visual + 1 audio + 2 presence flags.
    assert_eq!(m.dim, 5);
    // Visual dim 0 over present authors {1, 3}: mean 2, std 1; dim 1 is constant -> 0.
    assert_eq!(m.row(0), &[-1.0, 0.0, -1.0, 1.0, 1.0]);
    assert_eq!(m.row(1), &[1.0, 0.0, 0.0, 1.0, 0.0]);
    assert_eq!(m.row(2), &[0.0, 0.0, 1.0, 0.0, 1.0]);
    // Amount-weighted history mean.
    let hist = [
        TipEvent {
            user: UserId(0),
            author: AuthorId(0),
            amount: 3.0,
            timestamp_ms: 0,
        },
        TipEvent {
            user: UserId(0),
            author: AuthorId(1),
            amount: 1.0,
            timestamp_ms: 1,
        },
    ];
    let mut out = vec![0f32; 5];
    m.history_mean(&hist, &mut out);
    assert_eq!(out, vec![-0.5, 0.0, -0.75, 1.0, 0.75]);
    // Wrong sizes are errors.
    assert!(FeatureMatrix::build(&feats[..2], &[Modality::Visual], 3).is_err());
    assert!(FeatureMatrix::build(&feats, &[], 3).is_err());
    let mut bad = feats.clone();
    bad[1].visual = vec![1.0];
    assert!(FeatureMatrix::build(&bad, &[Modality::Visual], 3).is_err());
    bad = feats.clone();
    bad[0].visual[0] = f32::NAN;
    assert!(FeatureMatrix::build(&bad, &[Modality::Visual], 3).is_err());
}
