//! The log-mel plan against a naive f64 DFT for settings the golden file does not cover:
//! odd and non-power-of-two FFT sizes, a window shorter than the FFT, no centring,
//! magnitude instead of power, `top_db`, and edge lengths.

use std::f64::consts::PI;

use mspa_modal::audio::{LogMelConfig, LogMelPlan, MelFilterbank, Window, hz_to_mel, mel_to_hz};

fn signal(n: usize) -> Vec<f32> {
    let mut rng = 0x0123_4567_89AB_CDEFu64;
    (0..n)
        .map(|i| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let noise = (rng >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
            let t = i as f64 / 16_000.0;
            (0.4 * (2.0 * PI * 440.0 * t).sin()
                + 0.2 * (2.0 * PI * 3_000.0 * t).sin()
                + 0.1 * noise) as f32
        })
        .collect()
}

/// librosa's `melspectrogram` written the slow, obvious way in f64.
fn naive_mel(x: &[f32], cfg: &LogMelConfig, sr: u32) -> (usize, Vec<f64>) {
    let n_fft = cfg.n_fft;
    let pad = if cfg.center { n_fft / 2 } else { 0 };
    let mut padded = vec![0.0f64; pad];
    padded.extend(x.iter().map(|&v| f64::from(v)));
    padded.extend(std::iter::repeat_n(0.0, pad));
    let n_frames = if padded.len() < n_fft {
        0
    } else {
        1 + (padded.len() - n_fft) / cfg.hop_length
    };
    let mut window = vec![0.0f64; n_fft];
    let off = (n_fft - cfg.win_length) / 2;
    for (i, w) in cfg
        .window
        .coefficients(cfg.win_length)
        .into_iter()
        .enumerate()
    {
        window[off + i] = w;
    }
    let fb = MelFilterbank::slaney(
        sr,
        n_fft,
        cfg.n_mels,
        f64::from(cfg.fmin),
        f64::from(cfg.fmax.unwrap_or(sr as f32 / 2.0)),
    );
    let dense = fb.to_dense();
    let n_freqs = fb.n_freqs();
    let mut out = vec![0.0f64; cfg.n_mels * n_frames];
    for t in 0..n_frames {
        let frame: Vec<f64> = (0..n_fft)
            .map(|j| padded[t * cfg.hop_length + j] * window[j])
            .collect();
        let spec: Vec<f64> = (0..n_freqs)
            .map(|k| {
                let (mut re, mut im) = (0.0, 0.0);
                for (j, v) in frame.iter().enumerate() {
                    let a = -2.0 * PI * (k * j % n_fft) as f64 / n_fft as f64;
                    re += v * a.cos();
                    im += v * a.sin();
                }
                (re * re + im * im).powf(f64::from(cfg.power) / 2.0)
            })
            .collect();
        for m in 0..cfg.n_mels {
            out[m * n_frames + t] = (0..n_freqs)
                .map(|k| f64::from(dense[m * n_freqs + k]) * spec[k])
                .sum();
        }
    }
    (n_frames, out)
}

#[test]
fn mel_power_matches_a_naive_dft_for_many_settings() {
    let x = signal(3_000);
    let base = LogMelConfig::default();
    let cases = [
        LogMelConfig { ..base.clone() },
        LogMelConfig {
            n_fft: 401,
            win_length: 401,
            ..base.clone()
        },
        LogMelConfig {
            n_fft: 512,
            win_length: 300,
            hop_length: 128,
            n_mels: 40,
            ..base.clone()
        },
        LogMelConfig {
            n_fft: 255,
            win_length: 200,
            hop_length: 77,
            center: false,
            power: 1.0,
            window: Window::Hamming,
            n_mels: 24,
            fmin: 60.0,
            fmax: Some(7_000.0),
            ..base.clone()
        },
        LogMelConfig {
            n_fft: 300,
            win_length: 300,
            power: 1.5,
            n_mels: 32,
            ..base.clone()
        },
    ];
    for cfg in cases {
        let plan = LogMelPlan::new(cfg.clone(), 16_000).unwrap();
        let got = plan.mel_power(&x);
        let (n_frames, want) = naive_mel(&x, &cfg, 16_000);
        assert_eq!(
            (got.n_mels, got.n_frames),
            (cfg.n_mels, n_frames),
            "{cfg:?}"
        );
        assert_eq!(cfg.n_frames(x.len()), n_frames);
        let peak = want.iter().copied().fold(0.0, f64::max);
        for (i, (&g, &w)) in got.data.iter().zip(&want).enumerate() {
            let err = (f64::from(g) - w).abs();
            assert!(
                err <= 1e-4 * w.abs() + 1e-6 * peak,
                "n_fft {} index {i}: got {g}, want {w}",
                cfg.n_fft
            );
        }
    }
}

#[test]
fn log_is_ten_log10_with_floor_and_optional_top_db() {
    let x = signal(4_000);
    let cfg = LogMelConfig::default();
    let plan = LogMelPlan::new(cfg.clone(), 16_000).unwrap();
    let power = plan.mel_power(&x);
    let db = plan.log_mel(&x);
    for (p, d) in power.data.iter().zip(&db.data) {
        assert!((10.0 * p.max(1e-10).log10() - d).abs() < 1e-4);
    }
    // Silence hits the floor: 10 * log10(1e-10) = -100 dB.
    let silent = plan.log_mel(&[0.0; 1_000]);
    assert!(silent.data.iter().all(|&v| (v + 100.0).abs() < 1e-4));
    // top_db clips to max - top_db.
    let clipped = LogMelPlan::new(
        LogMelConfig {
            top_db: Some(30.0),
            ..cfg
        },
        16_000,
    )
    .unwrap()
    .log_mel(&x);
    let max = db.data.iter().copied().fold(f32::MIN, f32::max);
    for (c, d) in clipped.data.iter().zip(&db.data) {
        assert_eq!(*c, d.max(max - 30.0));
    }
    // Layout helpers.
    let fm = db.to_frame_major();
    assert_eq!(fm[3 * db.n_mels + 5], db.get(5, 3));
}

#[test]
fn frame_counts_and_short_inputs() {
    let cfg = LogMelConfig::default();
    let plan = LogMelPlan::new(cfg.clone(), 16_000).unwrap();
    // librosa: 1 + len / hop frames with centring.
    for (len, frames) in [
        (0, 1),
        (1, 1),
        (159, 1),
        (160, 2),
        (16_000, 101),
        (20_000, 126),
    ] {
        assert_eq!(cfg.n_frames(len), frames, "len {len}");
        assert_eq!(plan.log_mel(&vec![0.1; len]).n_frames, frames);
    }
    let no_center = LogMelConfig {
        center: false,
        ..cfg
    };
    assert_eq!(no_center.n_frames(399), 0);
    assert_eq!(no_center.n_frames(400), 1);
    let plan = LogMelPlan::new(no_center, 16_000).unwrap();
    let empty = plan.log_mel(&[0.5; 100]);
    assert_eq!((empty.n_mels, empty.n_frames, empty.data.len()), (64, 0, 0));
}

#[test]
fn slaney_mel_scale_round_trips() {
    for hz in [
        0.0, 100.0, 999.0, 1_000.0, 1_001.0, 4_000.0, 8_000.0, 22_050.0,
    ] {
        assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9 * hz.max(1.0));
    }
    assert!((hz_to_mel(1_000.0) - 15.0).abs() < 1e-12);
    assert!((hz_to_mel(200.0) - 3.0).abs() < 1e-12);
    // Slaney normalisation: every triangle has unit area in Hz... times 2 / width, so the
    // peak is 2 / (upper - lower) and the weights sum to about 1 per Hz of bin spacing.
    let fb = MelFilterbank::slaney(16_000, 2_048, 40, 0.0, 8_000.0);
    let dense = fb.to_dense();
    let bin_hz = 16_000.0 / 2_048.0;
    for m in 5..40 {
        let area: f64 = dense[m * fb.n_freqs()..(m + 1) * fb.n_freqs()]
            .iter()
            .map(|&w| f64::from(w) * bin_hz)
            .sum();
        assert!((area - 1.0).abs() < 0.02, "band {m}: area {area}");
    }
}
