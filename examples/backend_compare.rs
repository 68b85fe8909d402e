//! Runs fixed workloads on each compiled device and prints one table: throughput,
//! seconds, peak memory and speed-up against `flex`.
//!
//! ```text
//! cargo run --release --example backend_compare -- [--devices flex,ndarray,wgpu]
//!     [--json FILE] [--scale 1.0] [--model ../shared/models/all-MiniLM-L6-v2]
//! ```
//!
//! Stages and their items:
//! * `bleu_100k`: corpus BLEU of 100,000 pairs of 8-25-word sentences (pairs);
//! * `logmel_1h`: log-mel (16 kHz, n_fft 400, hop 160, 64 mels) of 3,600 s of audio
//!   (audio seconds);
//! * `jpeg_decode_resize`: decode a 640x480 JPEG, resize to 224x224, normalise (images);
//! * `minilm_encode`: MiniLM sentence embeddings of 8-30-word sentences, batch 64
//!   (sentences; skipped without the model);
//! * `mspa_train_step`: MSPA training steps at the default world's sizes (training
//!   examples; one epoch on the default world's tips, without validation);
//! * `score_256x1M`: top-10 authors for each of 256 users over 1,000,000 authors of
//!   dimension 64 (user-author pairs): blocked on the CPU (`cpu-rust`) and as blocked
//!   matrix products with a top-K per block on each device.
//!
//! Device-independent stages run once under the device `cpu-rust`. Peak memory is the
//! process's resident high-water mark during the stage (Linux: reset through
//! `/proc/self/clear_refs` before each stage; 0 where that is not available). `--scale`
//! multiplies every workload's size (the tests run a tiny one). On this machine wgpu runs
//! on lavapipe (a CPU Vulkan driver): right for correctness, meaningless for speed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use clap::Parser;
use mspa::align::fit::{FitRecommender, TrainingData};
use mspa::align::mspa::{ComposedText, MspaSettings, TextPreferences};
use mspa::align::scoring::{AuthorMatrix, top_k_dot};
use mspa::core::rng::SplitMix64;
use mspa::core::synth::{SyntheticWorldConfig, generate};
use mspa::core::{Split, load_native};
use mspa::metrics::corpus_bleu;
use mspa::modal::audio::{LogMelConfig, LogMelPlan};
use mspa::modal::features::AuthorFeatures;
use mspa::modal::frames::image::codecs::jpeg::JpegEncoder;
use mspa::modal::frames::image::{ExtendedColorType, ImageEncoder};
use mspa::modal::frames::{FrameConfig, load_frames};
use mspa::modal::text::{BertEmbedder, default_minilm_dir};
use serde::Serialize;

#[path = "support/mod.rs"]
mod support;
use support::cli;

/// Fixed workloads on each compiled device, side by side.
#[derive(Debug, Parser)]
#[command(name = "backend_compare", version, about)]
struct Args {
    /// Devices to compare, comma-separated (default: every compiled one).
    #[arg(long, value_delimiter = ',')]
    devices: Vec<String>,
    /// Also write the measurements as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Multiplies every workload's size (1.0: the sizes above).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// MiniLM folder for `minilm_encode` (default: MSPA_MINILM_DIR or ../shared).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
}

/// One measured stage on one device.
#[derive(Debug, Serialize)]
struct Measurement {
    device: String,
    stage: &'static str,
    items_per_second: f64,
    seconds: f64,
    peak_rss_bytes: u64,
}

/// The device name of the stages that do not run on a Burn device.
const CPU_RUST: &str = "cpu-rust";

fn main() -> std::process::ExitCode {
    cli::main(|args: &Args| run(args))
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        return Err(format!("--scale must be positive, got {}", args.scale).into());
    }
    let devices = if args.devices.is_empty() {
        mspa::modal::compiled_devices()
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        args.devices.clone()
    };
    let opened: Vec<(String, Device)> = devices
        .iter()
        .map(|name| Ok((name.clone(), mspa::modal::device_from_name(name)?)))
        .collect::<Result<_, mspa::modal::DeviceError>>()?;
    let scaled = |n: f64, min: usize| ((n * args.scale).round() as usize).max(min);
    let minilm_dir = args.model.clone().or_else(default_minilm_dir);

    let mut results = Vec::new();
    let mut record = |device: &str,
                      stage: &'static str,
                      items: usize,
                      f: &mut dyn FnMut() -> Result<(), Box<dyn std::error::Error>>|
     -> Result<(), Box<dyn std::error::Error>> {
        eprintln!("{device:>9} {stage} ({items} items) ...");
        reset_peak_rss();
        let t = Instant::now();
        f()?;
        let seconds = t.elapsed().as_secs_f64();
        results.push(Measurement {
            device: device.to_string(),
            stage,
            items_per_second: items as f64 / seconds.max(1e-9),
            seconds,
            peak_rss_bytes: peak_rss(),
        });
        Ok(())
    };

    // Device-independent stages.
    let pairs = scaled(100_000.0, 10);
    let (hyps, refs) = sentence_pairs(pairs, 7);
    record(CPU_RUST, "bleu_100k", pairs, &mut || {
        corpus_bleu(&hyps, &refs)?;
        Ok(())
    })?;
    drop((hyps, refs));

    let audio_seconds = scaled(3_600.0, 1);
    let samples = audio(audio_seconds * 16_000, 11);
    let plan = LogMelPlan::new(
        LogMelConfig {
            n_fft: 400,
            hop_length: 160,
            n_mels: 64,
            ..LogMelConfig::default()
        },
        16_000,
    )?;
    record(CPU_RUST, "logmel_1h", audio_seconds, &mut || {
        std::hint::black_box(plan.log_mel(&samples));
        Ok(())
    })?;
    drop(samples);

    let images = scaled(200.0, 2);
    let dir = tempfile::tempdir()?;
    let paths = write_jpegs(dir.path(), images)?;
    let frame_config = FrameConfig::default();
    record(CPU_RUST, "jpeg_decode_resize", images, &mut || {
        std::hint::black_box(load_frames(&paths, &frame_config)?);
        Ok(())
    })?;

    let (users, authors, k) = (256usize, scaled(1_000_000.0, 1_000), 10usize);
    let user_vectors = vectors(users, 64, 1);
    let matrix = AuthorMatrix::new(64, vectors(authors, 64, 2))?;
    record(CPU_RUST, "score_256x1M", users * authors, &mut || {
        std::hint::black_box(top_k_dot(&user_vectors, &matrix, k, 4096)?);
        Ok(())
    })?;

    // Per-device stages.
    let sentences = scaled(2_048.0, 64);
    let texts = sentences_of(sentences, 8, 30, 5);
    let world = TrainWorld::new(args.scale, minilm_dir.is_some())?;
    for (name, device) in &opened {
        match &minilm_dir {
            Some(dir) => {
                let encoder = BertEmbedder::from_pretrained(dir, device)?;
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                record(name, "minilm_encode", sentences, &mut || {
                    for chunk in refs.chunks(64) {
                        let e = encoder.sentence_embeddings(chunk, true)?;
                        std::hint::black_box(e.into_data());
                    }
                    Ok(())
                })?;
            }
            None => eprintln!(
                "note: no MiniLM folder (--model, MSPA_MINILM_DIR): minilm_encode skipped"
            ),
        }
        let examples = world.examples;
        record(name, "mspa_train_step", examples, &mut || {
            world.train_epoch(device)
        })?;
        record(name, "score_256x1M", users * authors, &mut || {
            std::hint::black_box(device_top_k(&user_vectors, matrix.values(), 64, k, device)?);
            Ok(())
        })?;
    }

    print_table(&results);
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&results)?;
        mspa::core::fs::write_atomic(path, &json)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Prints the measurements with each stage's speed-up against the same stage on `flex`.
fn print_table(results: &[Measurement]) {
    println!(
        "{:<10} {:<20} {:>14} {:>10} {:>12} {:>9}",
        "device", "stage", "items/s", "seconds", "peak MiB", "vs flex"
    );
    for m in results {
        let flex = results
            .iter()
            .find(|o| o.device == "flex" && o.stage == m.stage)
            .map(|o| format!("{:.2}x", m.items_per_second / o.items_per_second))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<10} {:<20} {:>14.1} {:>10.3} {:>12.1} {:>9}",
            m.device,
            m.stage,
            m.items_per_second,
            m.seconds,
            m.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            flex
        );
    }
}

/// Resets the process's resident high-water mark (Linux; a no-op elsewhere).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's resident high-water mark in bytes (0 where unknown).
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Words the generated sentences draw from.
const WORDS: &[&str] = &[
    "the",
    "stream",
    "tonight",
    "music",
    "live",
    "set",
    "with",
    "friends",
    "and",
    "a",
    "calm",
    "piano",
    "neon",
    "lights",
    "gaming",
    "speedrun",
    "cooking",
    "recipe",
    "dance",
    "talk",
    "about",
    "new",
    "songs",
    "from",
    "our",
    "community",
    "join",
    "us",
    "for",
    "fun",
    "chat",
    "art",
    "painting",
    "outdoor",
    "hiking",
    "sports",
    "match",
    "review",
    "challenge",
    "tips",
];

/// `n` sentences of `min..=max` words.
fn sentences_of(n: usize, min: usize, max: usize, seed: u64) -> Vec<String> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let len = min + rng.below(max - min + 1);
            (0..len)
                .map(|_| WORDS[rng.below(WORDS.len())])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// `n` hypothesis/reference pairs of 8-25 words.
fn sentence_pairs(n: usize, seed: u64) -> (Vec<String>, Vec<[String; 1]>) {
    let hyps = sentences_of(n, 8, 25, seed);
    let refs = sentences_of(n, 8, 25, seed + 1)
        .into_iter()
        .map(|r| [r])
        .collect();
    (hyps, refs)
}

/// `len` samples of two tones and noise.
fn audio(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..len)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            let tones = 0.3 * (std::f64::consts::TAU * 220.0 * t).sin()
                + 0.2 * (std::f64::consts::TAU * 3_100.0 * t).sin();
            (tones + 0.05 * (rng.next_f64() - 0.5)) as f32
        })
        .collect()
}

/// Writes `n` 640x480 JPEGs of gradients and noise.
fn write_jpegs(dir: &Path, n: usize) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let (w, h) = (640u32, 480u32);
    let mut rng = SplitMix64::new(3);
    (0..n)
        .map(|i| {
            let mut rgb = Vec::with_capacity((w * h * 3) as usize);
            for y in 0..h {
                for x in 0..w {
                    let noise = rng.below(24) as u32;
                    rgb.extend([
                        ((x + i as u32 * 7) % 256) as u8,
                        ((y + noise) % 256) as u8,
                        (((x + y) / 3 + noise) % 256) as u8,
                    ]);
                }
            }
            let mut jpeg = Vec::new();
            JpegEncoder::new_with_quality(&mut jpeg, 90).write_image(
                &rgb,
                w,
                h,
                ExtendedColorType::Rgb8,
            )?;
            let path = dir.join(format!("frame{i:04}.jpg"));
            std::fs::write(&path, jpeg)?;
            Ok(path)
        })
        .collect()
}

/// `n` random vectors of size `dim`, row-major.
fn vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n * dim).map(|_| rng.next_f32() - 0.5).collect()
}

/// Top-`k` on a Burn device: authors in blocks, each block's scores a matrix product and
/// its own top-K, then the top-K of the blocks' winners (memory of one block).
fn device_top_k(
    users: &[f32],
    authors: &[f32],
    dim: usize,
    k: usize,
    device: &Device,
) -> Result<Vec<i64>, Box<dyn std::error::Error>> {
    let n_users = users.len() / dim;
    let u = Tensor::<2>::from_data(TensorData::new(users.to_vec(), [n_users, dim]), device);
    let block = 65_536;
    let (mut values, mut indices) = (Vec::new(), Vec::new());
    for (b, rows) in authors.chunks(block * dim).enumerate() {
        let n = rows.len() / dim;
        let a = Tensor::<2>::from_data(TensorData::new(rows.to_vec(), [n, dim]), device);
        let scores = u.clone().matmul(a.transpose());
        let (v, i) = scores.topk_with_indices(k.min(n), 1);
        values.push(v);
        indices.push(i.add_scalar((b * block) as i64));
    }
    let values = Tensor::cat(values, 1);
    let indices: Tensor<2, Int> = Tensor::cat(indices, 1);
    let (_, winners) = values.topk_with_indices(k, 1);
    let best = indices.gather(1, winners);
    Ok(best
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .map_err(|e| format!("{e:?}"))?)
}

/// The default synthetic world's tips with random author features of the default
/// extractor's sizes and one random composed text per user, to time MSPA's training.
struct TrainWorld {
    dataset: mspa::core::Dataset,
    split: Split,
    features: Vec<AuthorFeatures>,
    texts: TextPreferences,
    examples: usize,
}

impl TrainWorld {
    fn new(scale: f64, with_text: bool) -> Result<Self, Box<dyn std::error::Error>> {
        let defaults = SyntheticWorldConfig::default();
        let config = SyntheticWorldConfig {
            users: ((defaults.users as f64 * scale).round() as usize).max(20),
            frames_per_author: 1,
            frame_size: 16,
            audio_seconds: 0.25,
            ..defaults
        };
        let dir = tempfile::tempdir()?;
        generate(&config, dir.path())?;
        let dataset = load_native(dir.path())?;
        let split = Split::leave_last_out(&dataset);
        let text_dim = if with_text { 384 } else { 0 };
        let mut rng = SplitMix64::new(9);
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.next_f32() - 0.5).collect() };
        let features = (0..dataset.n_authors())
            .map(|_| AuthorFeatures {
                visual: draw(128),
                audio: draw(128),
                text: draw(text_dim),
                present: [true, true, with_text],
            })
            .collect();
        let texts = TextPreferences {
            dim: text_dim,
            by_user: (0..dataset.n_users())
                .map(|_| {
                    vec![ComposedText {
                        at_ms: i64::MIN,
                        embedding: draw(text_dim),
                        text: String::new(),
                    }]
                })
                .collect(),
        };
        let examples = mspa::align::data::training_examples(&dataset, &split, None).len();
        Ok(TrainWorld {
            dataset,
            split,
            features,
            texts,
            examples,
        })
    }

    /// One epoch of MSPA's default training without validation.
    fn train_epoch(&self, device: &Device) -> Result<(), Box<dyn std::error::Error>> {
        let mut settings = MspaSettings::default();
        settings.train.epochs = 1;
        settings.train.eval_every = 0;
        let data = TrainingData::new(&self.dataset, &self.split)
            .with_features(&self.features)
            .with_texts(&self.texts);
        settings.fit(&data, device, &mut |_| {})?;
        Ok(())
    }
}
