//! Media preprocessing throughput.
//!
//! * `frames/png_256_to_224`: 64 PNG frames of 256 x 256 (textured, default compression),
//!   decoded, resized (shorter side 224, bilinear), centre-cropped and normalised into one
//!   `[64, 3, 224, 224]` batch in parallel; reported in frames/s.
//! * `audio/wav_44k_10s_logmel`: a 10 s 44.1 kHz mono 16-bit WAV decoded, resampled to
//!   16 kHz and turned into a 64-band log-mel spectrogram (n_fft 400, hop 160); reported
//!   in audio-seconds/s. `audio/resample_44k_to_16k` and `audio/logmel_16k` time the two
//!   numeric stages alone on the same 10 s.
//!
//! Run with `cargo bench --bench media_preprocess`.

use std::f64::consts::PI;
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mspa::modal::audio::{AudioConfig, AudioPipeline, LogMelConfig, LogMelPlan, Resampler};
use mspa::modal::frames::image::codecs::png::PngEncoder;
use mspa::modal::frames::image::{ExtendedColorType, ImageEncoder};
use mspa::modal::frames::{FrameConfig, load_frames};

const FRAMES: usize = 64;
const SIDE: u32 = 256;
const AUDIO_SECONDS: usize = 10;
const AUDIO_RATE: u32 = 44_100;

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
}

/// A frame-like picture: smooth gradients plus a little noise (so PNG has work to do).
fn picture(seed: u64) -> Vec<u8> {
    let mut rng = SplitMix(seed);
    let mut rgb = Vec::with_capacity((SIDE * SIDE * 3) as usize);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let noise = (rng.next() % 16) as u32;
            rgb.push(((x + seed as u32 * 13) % 256) as u8);
            rgb.push(((y * 2 + noise) % 256) as u8);
            rgb.push((((x + y) / 2 + noise) % 256) as u8);
        }
    }
    rgb
}

fn write_frames(dir: &std::path::Path) -> Vec<PathBuf> {
    (0..FRAMES)
        .map(|i| {
            let mut png = Vec::new();
            PngEncoder::new(&mut png)
                .write_image(&picture(i as u64), SIDE, SIDE, ExtendedColorType::Rgb8)
                .expect("PNG encodes");
            let path = dir.join(format!("frame{i:02}.png"));
            std::fs::write(&path, png).expect("temp dir is writable");
            path
        })
        .collect()
}

/// 16-bit PCM mono WAV of a few tones and some noise.
fn write_wav(path: &std::path::Path) -> Vec<f32> {
    let n = AUDIO_SECONDS * AUDIO_RATE as usize;
    let mut rng = SplitMix(11);
    let samples: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(AUDIO_RATE);
            let tones = 0.3 * (2.0 * PI * 220.0 * t).sin() + 0.2 * (2.0 * PI * 3_100.0 * t).sin();
            let noise = ((rng.next() % 2001) as f64 - 1000.0) / 1000.0 * 0.05;
            (tones + noise) as f32
        })
        .collect();
    let data_len = (n * 2) as u32;
    let mut out = Vec::with_capacity(44 + n * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&AUDIO_RATE.to_le_bytes());
    out.extend_from_slice(&(AUDIO_RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in &samples {
        let v = (f64::from(*s) * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).expect("temp dir is writable");
    samples
}

fn bench_frames(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = write_frames(dir.path());
    let config = FrameConfig::default();
    let mut group = c.benchmark_group("frames");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("png_256_to_224", |b| {
        b.iter(|| load_frames(black_box(&paths), &config).expect("frames decode"))
    });
    group.finish();
}

fn bench_audio(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("clip.wav");
    let samples = write_wav(&wav);
    let pipeline = AudioPipeline::new(AudioConfig::default()).expect("default config");
    let resampler = Resampler::new(AUDIO_RATE, 16_000).expect("valid rates");
    let at_16k = resampler.process(&samples);
    let plan = LogMelPlan::new(LogMelConfig::default(), 16_000).expect("default config");

    let mut group = c.benchmark_group("audio");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(AUDIO_SECONDS as u64));
    group.bench_function("wav_44k_10s_logmel", |b| {
        b.iter(|| {
            pipeline
                .log_mel_file(black_box(&wav))
                .expect("clip decodes")
        })
    });
    group.bench_function("resample_44k_to_16k", |b| {
        b.iter(|| resampler.process(black_box(&samples)))
    });
    group.bench_function("logmel_16k", |b| {
        b.iter(|| plan.log_mel(black_box(&at_16k)))
    });
    group.finish();
}

criterion_group!(benches, bench_frames, bench_audio);
criterion_main!(benches);
