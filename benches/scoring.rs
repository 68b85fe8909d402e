//! Top-K scoring at platform scale: the best 10 of 100,000 and 1,000,000 authors (dim 64)
//! for each of 256 users, blocked (`mspa::align::scoring::top_k_dot`), so the growth of
//! the cost with the number of authors shows. The Python peer is
//! `../shared/peers/py_audio_image_score.py score 256 1000000 64 10` (numpy matmul +
//! argpartition); run both in one session and compare the ratio.
//!
//! Run with `cargo bench --bench scoring`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use mspa::align::scoring::{AuthorMatrix, top_k_dot};
use mspa::core::rng::SplitMix64;

const USERS: usize = 256;
const DIM: usize = 64;
const K: usize = 10;
const BLOCK: usize = 4096;

fn vectors(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n * DIM).map(|_| rng.next_f32() - 0.5).collect()
}

fn bench_scoring(c: &mut Criterion) {
    let users = vectors(USERS, 1);
    let mut group = c.benchmark_group("score_top10");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20));
    for authors in [100_000usize, 1_000_000] {
        let matrix = AuthorMatrix::new(DIM, vectors(authors, 2)).expect("finite vectors");
        group.throughput(Throughput::Elements((USERS * authors) as u64));
        group.bench_function(format!("256x{}k", authors / 1000), |b| {
            b.iter(|| black_box(top_k_dot(&users, &matrix, K, BLOCK).expect("scores")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_scoring);
criterion_main!(benches);
