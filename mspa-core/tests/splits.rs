//! Leak-freedom of both splits over random datasets, and negative sampling that never
//! returns a positive.

use mspa_core::{
    Author, AuthorId, Dataset, DatasetBuilder, ExternalId, NegativeSampler, Split, TargetKind,
};
use proptest::prelude::*;
use rand::SeedableRng;

/// A random dataset: `events` as (user, author, time) triples over small id ranges, so
/// ties in time and repeats are frequent.
fn dataset(n_authors: u32, events: &[(u32, u32, i64)]) -> Dataset {
    let mut b = DatasetBuilder::default();
    for a in 0..n_authors {
        b.add_author(Author::bare(ExternalId::Int(i64::from(a))))
            .unwrap();
    }
    for &(u, a, t) in events {
        let user = b.user(ExternalId::Int(i64::from(u)));
        b.push_event(user, AuthorId(a % n_authors), 1.0, t);
    }
    b.build(None)
}

fn events_strategy() -> impl Strategy<Value = (u32, Vec<(u32, u32, i64)>)> {
    (2u32..12).prop_flat_map(|n_authors| {
        (
            Just(n_authors),
            prop::collection::vec((0u32..15, 0u32..n_authors, 0i64..40), 0..120),
        )
    })
}

/// Checks what every split must satisfy, whatever the protocol.
fn check_common(ds: &Dataset, split: &Split) {
    let n = ds.n_events();
    let mut seen = vec![0u8; n];
    for &i in &split.train {
        seen[i] += 1;
    }
    for t in split.valid.iter().chain(&split.test) {
        seen[t.event] += 1;
        let ev = ds.events()[t.event];
        assert_eq!(
            (ev.user, ev.author, ev.timestamp_ms),
            (t.user, t.author, t.timestamp_ms)
        );
        // The history is a prefix of the user's events that ends before the target.
        let range = ds.user_range(t.user);
        assert_eq!(t.history.start, range.start);
        assert!(t.history.end <= t.event, "target inside its own history");
        for h in t.history(ds) {
            assert_eq!(h.user, t.user);
            assert!(h.timestamp_ms <= t.timestamp_ms, "future event in history");
        }
        let repeat = t.history(ds).iter().any(|h| h.author == t.author);
        assert_eq!(t.kind == TargetKind::Repeat, repeat);
    }
    assert!(
        seen.iter().all(|&c| c == 1),
        "every event is train or exactly one target"
    );
    assert!(split.train.windows(2).all(|w| w[0] < w[1]));
}

proptest! {
    #[test]
    fn leave_last_out_is_leak_free((n_authors, events) in events_strategy()) {
        let ds = dataset(n_authors, &events);
        let split = Split::leave_last_out(&ds);
        check_common(&ds, &split);
        for user in ds.users() {
            let range = ds.user_range(user);
            let targets: Vec<_> = split.test.iter().filter(|t| t.user == user).collect();
            if range.len() < 3 {
                prop_assert!(targets.is_empty());
                prop_assert!(split.valid.iter().all(|t| t.user != user));
            } else {
                prop_assert_eq!(targets.len(), 1);
                prop_assert_eq!(targets[0].event, range.end - 1);
                let valid: Vec<_> = split.valid.iter().filter(|t| t.user == user).collect();
                prop_assert_eq!(valid[0].event, range.end - 2);
                // No training event of the user is later than its validation target.
                for &i in split.train.iter().filter(|&&i| ds.events()[i].user == user) {
                    prop_assert!(ds.events()[i].timestamp_ms <= valid[0].timestamp_ms);
                    prop_assert!(i < valid[0].event);
                }
            }
        }
    }

    #[test]
    fn time_split_is_leak_free((n_authors, events) in events_strategy(), t1 in 0i64..40, dt in 0i64..20) {
        let ds = dataset(n_authors, &events);
        let t2 = t1 + dt;
        let split = Split::by_time(&ds, t1, t2).unwrap();
        check_common(&ds, &split);
        for &i in &split.train {
            prop_assert!(ds.events()[i].timestamp_ms < t1);
        }
        for t in &split.valid {
            prop_assert!(t1 <= t.timestamp_ms && t.timestamp_ms < t2);
            prop_assert!(t.history(&ds).iter().all(|h| h.timestamp_ms < t1));
        }
        for t in &split.test {
            prop_assert!(t.timestamp_ms >= t2);
            prop_assert!(t.history(&ds).iter().all(|h| h.timestamp_ms < t2));
        }
    }

    #[test]
    fn negatives_are_never_positives((n_authors, events) in events_strategy(), seed in 0u64..1000, pop in any::<bool>()) {
        let ds = dataset(n_authors, &events);
        let sampler = if pop {
            NegativeSampler::popularity(&ds.author_event_counts(), 0.75).unwrap()
        } else {
            NegativeSampler::uniform(ds.n_authors())
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for user in ds.users() {
            let positives = ds.user_authors(user);
            match sampler.sample(user, &positives, 20, &mut rng) {
                Ok(negs) => {
                    prop_assert_eq!(negs.len(), 20);
                    for a in negs {
                        prop_assert!(positives.binary_search(&a).is_err());
                        prop_assert!(a.index() < ds.n_authors());
                    }
                }
                Err(_) => prop_assert_eq!(positives.len(), ds.n_authors()),
            }
        }
    }
}

#[test]
fn time_split_by_fractions_and_bad_arguments() {
    let events: Vec<(u32, u32, i64)> = (0..100).map(|i| (i % 7, i % 5, i64::from(i))).collect();
    let ds = dataset(5, &events);
    let split = Split::by_time_fractions(&ds, 0.8, 0.9).unwrap();
    assert_eq!(split.sizes().train, 80);
    assert_eq!(split.sizes().valid, 10);
    assert_eq!(split.sizes().test, 10);
    assert!(Split::by_time(&ds, 10, 5).is_err());
    assert!(Split::by_time_fractions(&ds, 0.9, 0.8).is_err());
    assert!(Split::by_time_fractions(&ds, -0.1, 0.8).is_err());
}

#[test]
fn popularity_sampling_follows_counts() {
    let sampler = NegativeSampler::popularity(&[1000, 1, 0, 1], 1.0).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let negs = sampler
        .sample(mspa_core::UserId(0), &[AuthorId(1)], 2000, &mut rng)
        .unwrap();
    assert!(
        negs.iter().all(|a| a.0 == 0 || a.0 == 3),
        "zero-count author drawn or positive drawn"
    );
    let popular = negs.iter().filter(|a| a.0 == 0).count();
    assert!(popular > 1900, "{popular}");
    // Only zero-count authors left: uniform over them.
    let negs = sampler
        .sample(
            mspa_core::UserId(0),
            &[AuthorId(0), AuthorId(1), AuthorId(3)],
            5,
            &mut rng,
        )
        .unwrap();
    assert!(negs.iter().all(|a| a.0 == 2));
    // Everything positive: an error, not a hang.
    let all: Vec<AuthorId> = (0..4).map(AuthorId).collect();
    assert!(
        sampler
            .sample(mspa_core::UserId(0), &all, 1, &mut rng)
            .is_err()
    );
}
