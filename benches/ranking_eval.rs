//! Full-ranking evaluation throughput: 10,000 users over 100,000 authors at K = 10, with a
//! cheap scoring closure (dot products of 4-d random factors) so the evaluator dominates.
//! Each user has 3 test targets and 20 training items (excluded: "new authors" protocol).
//!
//! Run with `cargo bench --bench ranking_eval`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use mspa_metrics::{EvalUser, FullRankingEvaluator, Protocol};

const USERS: usize = 10_000;
const AUTHORS: usize = 100_000;
const DIM: usize = 4;

/// SplitMix64: a tiny deterministic generator (no extra dependency).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

fn bench_ranking(c: &mut Criterion) {
    let mut rng = SplitMix(7);
    let user_factors: Vec<[f32; DIM]> = (0..USERS)
        .map(|_| std::array::from_fn(|_| rng.unit()))
        .collect();
    let author_factors: Vec<[f32; DIM]> = (0..AUTHORS)
        .map(|_| std::array::from_fn(|_| rng.unit()))
        .collect();
    let users: Vec<EvalUser> = (0..USERS)
        .map(|u| EvalUser {
            user: u as u64,
            targets: (0..3).map(|_| rng.below(AUTHORS)).collect(),
            train: (0..20).map(|_| rng.below(AUTHORS)).collect(),
        })
        .collect();
    let evaluator = FullRankingEvaluator::new(AUTHORS, &[10], Protocol::NewAuthors)
        .expect("valid cut-offs")
        .keep_per_user(false);

    let mut group = c.benchmark_group("ranking_eval");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(40));
    group.bench_function("full_ranking_10k_users_100k_authors_k10", |b| {
        b.iter(|| {
            evaluator
                .evaluate(black_box(&users), |user, row: &mut [f32]| {
                    let uf = &user_factors[user.user as usize];
                    for (score, af) in row.iter_mut().zip(&author_factors) {
                        *score = uf[0] * af[0] + uf[1] * af[1] + uf[2] * af[2] + uf[3] * af[3];
                    }
                })
                .expect("no NaN scores")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_ranking);
criterion_main!(benches);
