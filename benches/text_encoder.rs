//! Text-encoder throughput: all-MiniLM-L6-v2 on the flex (CPU) device, one padded batch
//! of 32 short sentences per iteration, reported as sentences per second.
//!
//! Weights: env `MSPA_MINILM_DIR`, else `../shared/models/all-MiniLM-L6-v2` next to the
//! workspace; without them the bench prints a line and registers nothing.
//!
//! Run with `cargo bench --bench text_encoder`.

use std::hint::black_box;
use std::path::PathBuf;

use burn::tensor::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mspa::modal::text::BertEmbedder;

const BATCH: usize = 32;

fn minilm_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MSPA_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/models/all-MiniLM-L6-v2"
            ))
        });
    dir.join("config.json").is_file().then_some(dir)
}

/// 32 deterministic stream titles of 5-12 words.
fn sentences() -> Vec<String> {
    let subjects = [
        "late night",
        "chill",
        "ranked",
        "cozy",
        "live",
        "morning",
        "retro",
        "loud",
    ];
    let topics = [
        "piano session",
        "speedrun practice",
        "drum and bass mix",
        "cooking stream",
        "chess blitz games",
        "pixel art painting",
        "karaoke with chat",
        "dance workout",
    ];
    let tails = [
        "come hang out",
        "with viewer requests all night",
        "and a giveaway at the end",
        "",
    ];
    (0..BATCH)
        .map(|i| {
            format!(
                "{} {} {}",
                subjects[i % subjects.len()],
                topics[(i * 3 + 1) % topics.len()],
                tails[(i / 3) % tails.len()]
            )
            .trim()
            .to_string()
        })
        .collect()
}

fn text_encoder(c: &mut Criterion) {
    let Some(dir) = minilm_dir() else {
        println!("text_encoder: skipped: MiniLM weights not found (set MSPA_MINILM_DIR)");
        return;
    };
    let device = Device::flex();
    let embedder = BertEmbedder::from_pretrained(&dir, &device)
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
        .with_batch_size(BATCH);
    let owned = sentences();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();

    let mut group = c.benchmark_group("text_encoder");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("minilm_flex_sentence_embeddings_batch32", |b| {
        b.iter(|| {
            let v = embedder
                .sentence_embeddings(black_box(&texts), true)
                .unwrap();
            black_box(v.into_data())
        })
    });
    group.bench_function("minilm_flex_token_embeddings_batch32", |b| {
        b.iter(|| black_box(embedder.embed_tokens(black_box(&texts)).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, text_encoder);
criterion_main!(benches);
