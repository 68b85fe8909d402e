//! Text-metric throughput: corpus BLEU (sacrebleu-compatible, 13a tokenizer) and corpus
//! ROUGE-L over 100,000 deterministic synthetic sentence pairs.
//!
//! Run with `cargo bench --bench text_metrics`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use mspa_metrics::{corpus_bleu, corpus_rouge_l};

const PAIRS: usize = 100_000;

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
}

/// Hypotheses of 8-40 words over a 2,000-word vocabulary with some punctuation; each
/// reference rewrites about a quarter of its hypothesis's words.
fn synthetic_corpus(n: usize, seed: u64) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rng = SplitMix(seed);
    let vocab: Vec<String> = (0..2_000).map(|i| format!("w{i}")).collect();
    let punct = [",", ".", "!", "?", "(x)", "3-4", "don't"];
    let mut hyps = Vec::with_capacity(n);
    let mut refs = Vec::with_capacity(n);
    for _ in 0..n {
        let len = 8 + rng.below(33);
        let words: Vec<&str> = (0..len)
            .map(|_| {
                if rng.below(10) == 0 {
                    punct[rng.below(punct.len())]
                } else {
                    vocab[rng.below(vocab.len())].as_str()
                }
            })
            .collect();
        let reference: Vec<&str> = words
            .iter()
            .map(|w| {
                if rng.below(4) == 0 {
                    vocab[rng.below(vocab.len())].as_str()
                } else {
                    w
                }
            })
            .collect();
        hyps.push(words.join(" ") + ".");
        refs.push(vec![reference.join(" ") + "."]);
    }
    (hyps, refs)
}

fn bench_text(c: &mut Criterion) {
    let (hyps, refs) = synthetic_corpus(PAIRS, 42);
    let mut group = c.benchmark_group("text_metrics");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(30));
    group.bench_function("corpus_bleu_100k_pairs", |b| {
        b.iter(|| corpus_bleu(black_box(&hyps), black_box(&refs)).expect("valid corpus"))
    });
    group.bench_function("corpus_rouge_l_100k_pairs", |b| {
        b.iter(|| corpus_rouge_l(black_box(&hyps), black_box(&refs)).expect("valid corpus"))
    });
    group.finish();
}

criterion_group!(benches, bench_text);
criterion_main!(benches);
