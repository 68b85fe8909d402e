//! Decoding audio files: hand-written WAVs (mono, stereo, 44.1 kHz), the committed
//! FLAC/MP3/OGG/AAC fixtures, the maximum-length cut, batches, and garbage that must be an
//! error naming the file, never a panic.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use mspa_modal::ModalError;
use mspa_modal::audio::{AudioConfig, AudioPipeline, LogMelConfig, decode_audio, load_audio};

/// A 16-bit PCM WAV with `channels` interleaved channels.
fn wav_bytes(channels: &[Vec<f64>], rate: u32) -> Vec<u8> {
    let n_ch = channels.len() as u16;
    let frames = channels[0].len();
    let data_len = (frames * channels.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&n_ch.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(n_ch) * 2).to_le_bytes());
    out.extend_from_slice(&(n_ch * 2).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        for ch in channels {
            let v = (ch[i] * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn sine(freq: f64, rate: u32, seconds: f64, amp: f64) -> Vec<f64> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin())
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Amplitude of the `freq` component over the middle half of `x`.
fn amplitude_at(x: &[f32], rate: u32, freq: f64) -> f64 {
    let (start, end) = (x.len() / 4, 3 * x.len() / 4);
    let (mut s, mut c) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate().take(end).skip(start) {
        let ph = 2.0 * PI * freq * i as f64 / f64::from(rate);
        s += f64::from(v) * ph.sin();
        c += f64::from(v) * ph.cos();
    }
    2.0 * (s * s + c * c).sqrt() / (end - start) as f64
}

/// The strongest frequency between 500 and 1500 Hz on a 5 Hz grid.
fn dominant_frequency(x: &[f32], rate: u32) -> f64 {
    (100..=300)
        .map(|k| f64::from(k) * 5.0)
        .max_by(|a, b| {
            amplitude_at(x, rate, *a)
                .partial_cmp(&amplitude_at(x, rate, *b))
                .unwrap()
        })
        .unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn mono_wav_decodes_to_the_written_samples() {
    let dir = tempfile::tempdir().unwrap();
    let x = sine(440.0, 16_000, 0.25, 0.5);
    let path = write(
        dir.path(),
        "mono.wav",
        &wav_bytes(std::slice::from_ref(&x), 16_000),
    );
    let clip = decode_audio(&path, 30.0).unwrap();
    assert_eq!(
        (clip.sample_rate, clip.channels, clip.cut),
        (16_000, 1, false)
    );
    assert_eq!(clip.samples.len(), x.len());
    for (i, (&got, &want)) in clip.samples.iter().zip(&x).enumerate() {
        let q = ((want * 32768.0).round() / 32768.0) as f32;
        assert_eq!(got, q, "sample {i}");
    }
}

#[test]
fn stereo_44k_wav_is_downmixed_and_resampled() {
    let dir = tempfile::tempdir().unwrap();
    // Left: 1 kHz at 0.6; right: silence. The mono mix is 1 kHz at 0.3.
    let left = sine(1_000.0, 44_100, 1.0, 0.6);
    let right = vec![0.0; left.len()];
    let path = write(dir.path(), "stereo.wav", &wav_bytes(&[left, right], 44_100));
    let clip = decode_audio(&path, 30.0).unwrap();
    assert_eq!((clip.sample_rate, clip.channels), (44_100, 2));
    let y = load_audio(&path, &AudioConfig::default()).unwrap();
    assert_eq!(y.len(), 16_000);
    let amp = amplitude_at(&y, 16_000, 1_000.0);
    assert!((amp - 0.3).abs() < 1e-3, "mono amplitude {amp}, want 0.3");
    assert_eq!(dominant_frequency(&y, 16_000), 1_000.0);

    // Opposite channels cancel: the average, not the sum or the first channel.
    let a = sine(1_000.0, 44_100, 0.2, 0.5);
    let b: Vec<f64> = a.iter().map(|v| -v).collect();
    let path = write(dir.path(), "cancel.wav", &wav_bytes(&[a, b], 44_100));
    let clip = decode_audio(&path, 30.0).unwrap();
    assert!(clip.samples.iter().all(|v| v.abs() < 1e-4));
}

#[test]
fn long_clip_is_cut_at_max_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let x = sine(440.0, 22_050, 3.0, 0.3);
    let path = write(dir.path(), "long.wav", &wav_bytes(&[x], 22_050));
    let clip = decode_audio(&path, 1.5).unwrap();
    assert!(clip.cut);
    assert_eq!(clip.samples.len(), 33_075);
    let config = AudioConfig {
        max_seconds: 1.0,
        ..AudioConfig::default()
    };
    let y = load_audio(&path, &config).unwrap();
    assert_eq!(y.len(), 16_000);
    let pipeline = AudioPipeline::new(config).unwrap();
    let s = pipeline.log_mel_file(&path).unwrap();
    assert_eq!((s.n_mels, s.n_frames), (64, 101));
}

#[test]
fn fixtures_decode_to_expected_duration_and_frequency() {
    // (file, rate, channels): 0.5 s of a 1 kHz sine at amplitude 0.5, see fixtures/README.md.
    let cases = [
        ("tone_1k_48k_stereo.flac", 48_000, 2),
        ("tone_1k_44k_mono.mp3", 44_100, 1),
        ("tone_1k_22k_mono.ogg", 22_050, 1),
        ("tone_1k_44k_stereo.m4a", 44_100, 2),
    ];
    let pipeline = AudioPipeline::new(AudioConfig::default()).unwrap();
    for (name, rate, channels) in cases {
        let path = fixture(name);
        let clip = decode_audio(&path, 30.0).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(clip.sample_rate, rate, "{name}: rate");
        assert_eq!(clip.channels, channels, "{name}: channels");
        let secs = clip.seconds();
        assert!((secs - 0.5).abs() < 0.06, "{name}: {secs} s, want 0.5 s");
        let y = pipeline.load(&path).unwrap();
        assert_eq!(dominant_frequency(&y, 16_000), 1_000.0, "{name}: frequency");
        let amp = amplitude_at(&y, 16_000, 1_000.0);
        assert!((amp - 0.5).abs() < 0.05, "{name}: amplitude {amp}");
    }
}

#[test]
fn batch_of_clips_in_parallel_keeps_order_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (k, secs) in [0.5, 1.0, 0.25].into_iter().enumerate() {
        let x = sine(500.0, 44_100, secs, 0.4);
        paths.push(write(
            dir.path(),
            &format!("c{k}.wav"),
            &wav_bytes(&[x], 44_100),
        ));
    }
    paths.push(write(dir.path(), "bad.wav", b"not audio at all"));
    let pipeline = AudioPipeline::new(AudioConfig::default()).unwrap();
    let out = pipeline.log_mel_files(&paths);
    let frames: Vec<usize> = out[..3]
        .iter()
        .map(|r| r.as_ref().unwrap().n_frames)
        .collect();
    assert_eq!(frames, vec![51, 101, 26]);
    match &out[3] {
        Err(ModalError::Decode { path, .. }) => assert_eq!(path, &paths[3]),
        other => panic!("bad.wav: {other:?}"),
    }
    let loaded = pipeline.load_files(&paths[..3]);
    assert_eq!(loaded[1].as_ref().unwrap().len(), 16_000);
}

#[test]
fn log_mel_of_a_tone_peaks_in_the_right_band() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "tone.wav",
        &wav_bytes(&[sine(1_000.0, 16_000, 1.0, 0.5)], 16_000),
    );
    let pipeline = AudioPipeline::new(AudioConfig::default()).unwrap();
    let s = pipeline.log_mel_file(&path).unwrap();
    let t = s.n_frames / 2;
    let best = (0..s.n_mels)
        .max_by(|&a, &b| s.get(a, t).partial_cmp(&s.get(b, t)).unwrap())
        .unwrap();
    // 1 kHz is mel 15 on the Slaney scale; with 64 bands up to 8 kHz the band centres are
    // spaced (hz_to_mel(8000) / 65) apart.
    let step = mspa_modal::audio::hz_to_mel(8_000.0) / 65.0;
    let expected = (15.0 / step).round() as usize - 1;
    assert!(
        best.abs_diff(expected) <= 1,
        "peak band {best}, expected about {expected}"
    );
}

#[test]
fn configs_are_checked_and_name_the_field() {
    let cases: Vec<(AudioConfig, &str)> = vec![
        (
            AudioConfig {
                sample_rate: 0,
                ..AudioConfig::default()
            },
            "sample_rate",
        ),
        (
            AudioConfig {
                max_seconds: f32::NAN,
                ..AudioConfig::default()
            },
            "max_seconds",
        ),
        (
            AudioConfig {
                mel: LogMelConfig {
                    n_fft: 1,
                    ..LogMelConfig::default()
                },
                ..AudioConfig::default()
            },
            "mel.n_fft",
        ),
        (
            AudioConfig {
                mel: LogMelConfig {
                    hop_length: 0,
                    ..LogMelConfig::default()
                },
                ..AudioConfig::default()
            },
            "mel.hop_length",
        ),
        (
            AudioConfig {
                mel: LogMelConfig {
                    fmax: Some(9_000.0),
                    ..LogMelConfig::default()
                },
                ..AudioConfig::default()
            },
            "mel.fmax",
        ),
        (
            AudioConfig {
                mel: LogMelConfig {
                    n_mels: 0,
                    ..LogMelConfig::default()
                },
                ..AudioConfig::default()
            },
            "mel.n_mels",
        ),
        (
            AudioConfig {
                mel: LogMelConfig {
                    power: -1.0,
                    ..LogMelConfig::default()
                },
                ..AudioConfig::default()
            },
            "mel.power",
        ),
    ];
    for (config, field) in cases {
        match config.validate() {
            Err(ModalError::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
        assert!(AudioPipeline::new(config).is_err());
    }
    // Defaults round-trip through JSON, and a partial JSON keeps the other defaults.
    let json = serde_json::to_string(&AudioConfig::default()).unwrap();
    let back: AudioConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, AudioConfig::default());
    let partial: AudioConfig = serde_json::from_str(r#"{"mel": {"n_mels": 80}}"#).unwrap();
    assert_eq!((partial.mel.n_mels, partial.mel.n_fft), (80, 400));
}

/// Every way a file can be bad: an error naming the file, never a panic.
#[test]
fn garbage_truncated_and_missing_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = wav_bytes(&[sine(440.0, 16_000, 0.5, 0.5)], 16_000);
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    let mut bad_rate = good.clone();
    bad_rate[24..28].copy_from_slice(&0u32.to_le_bytes());
    let mut no_channels = good.clone();
    no_channels[22..24].copy_from_slice(&0u16.to_le_bytes());
    let flac = std::fs::read(fixture("tone_1k_48k_stereo.flac")).unwrap();
    let mp3 = std::fs::read(fixture("tone_1k_44k_mono.mp3")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.wav", Vec::new()),
        ("random.wav", random.clone()),
        ("random.mp3", random.clone()),
        ("random.flac", random.clone()),
        ("random.ogg", random.clone()),
        ("random.m4a", random),
        (
            "text.wav",
            b"RIFF? no, just some text pretending to be audio\n".to_vec(),
        ),
        ("header_only.wav", good[..44].to_vec()),
        ("short_header.wav", good[..20].to_vec()),
        ("bad_rate.wav", bad_rate),
        ("no_channels.wav", no_channels),
        ("head.flac", flac[..100].to_vec()),
        ("head.mp3", mp3[..100].to_vec()),
    ];
    for (name, bytes) in cases {
        let path = write(dir.path(), name, &bytes);
        match decode_audio(&path, 30.0) {
            Err(e @ (ModalError::Decode { .. } | ModalError::Io { .. })) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(name),
                    "{name}: message `{msg}` does not name it"
                );
            }
            other => panic!("{name}: expected a decode error, got {other:?}"),
        }
    }
    // Cut-short files (an interrupted download) are errors, never the audio before the
    // cut.
    for (name, bytes) in [
        ("first100.wav", good[..100].to_vec()),
        ("half.wav", good[..good.len() / 2 + 1].to_vec()),
        ("half.flac", flac[..flac.len() / 2].to_vec()),
        ("half.mp3", mp3[..mp3.len() / 2].to_vec()),
    ] {
        let path = write(dir.path(), name, &bytes);
        match decode_audio(&path, 30.0) {
            Err(e) => assert!(e.to_string().contains(name), "{name}: {e}"),
            Ok(clip) => panic!("{name}: decoded {} s of a truncated file", clip.seconds()),
        }
    }
    let missing = dir.path().join("missing.wav");
    match decode_audio(&missing, 30.0) {
        Err(ModalError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("missing file: {other:?}"),
    }
    // A directory is not an audio file either.
    assert!(decode_audio(dir.path(), 30.0).is_err());
}
