//! The band-limited resampler: pass-band tones keep amplitude and frequency, tones above
//! the new Nyquist frequency are removed, lengths and odd ratios behave.

use std::f64::consts::PI;

use mspa_modal::audio::{Resampler, resample};

fn tone(freq: f64, rate: u32, seconds: f64, amp: f64) -> Vec<f32> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| (amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// Amplitude of the component at `freq` (least-squares fit of a sine and a cosine) over
/// the middle of the signal, away from the edges.
fn amplitude_at(x: &[f32], rate: u32, freq: f64) -> f64 {
    let (start, end) = (x.len() / 4, 3 * x.len() / 4);
    let (mut s, mut c) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate().take(end).skip(start) {
        let ph = 2.0 * PI * freq * i as f64 / f64::from(rate);
        s += f64::from(v) * ph.sin();
        c += f64::from(v) * ph.cos();
    }
    let n = (end - start) as f64;
    2.0 * (s * s + c * c).sqrt() / n
}

fn rms_middle(x: &[f32]) -> f64 {
    let mid = &x[x.len() / 4..3 * x.len() / 4];
    (mid.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / mid.len() as f64).sqrt()
}

/// The frequency with the largest amplitude on a 1 Hz grid around `guess`.
fn peak_frequency(x: &[f32], rate: u32, guess: f64) -> f64 {
    (-50..=50)
        .map(|d| guess + f64::from(d))
        .max_by(|a, b| {
            amplitude_at(x, rate, *a)
                .partial_cmp(&amplitude_at(x, rate, *b))
                .unwrap()
        })
        .unwrap()
}

#[test]
fn passband_sine_keeps_amplitude_and_frequency() {
    for (from, freq) in [(44_100, 1_000.0), (48_000, 3_000.0), (22_050, 6_500.0)] {
        let x = tone(freq, from, 1.0, 0.5);
        let y = resample(&x, from, 16_000).unwrap();
        assert_eq!(y.len(), 16_000, "{from} Hz: length");
        let amp = amplitude_at(&y, 16_000, freq);
        assert!(
            (amp - 0.5).abs() < 0.5 * 1e-3,
            "{from} Hz -> 16 kHz, {freq} Hz tone: amplitude {amp}, want 0.5"
        );
        let peak = peak_frequency(&y, 16_000, freq);
        assert!(
            (peak - freq).abs() <= 1.0,
            "{freq} Hz tone peaks at {peak} Hz"
        );
        // Nothing else: the residual after removing the tone is tiny.
        let rms = rms_middle(&y);
        assert!(
            (rms - 0.5 / 2f64.sqrt()).abs() < 1e-3,
            "{from} Hz: rms {rms} is not that of a pure 0.5 sine"
        );
    }
}

#[test]
fn tones_above_new_nyquist_are_attenuated_by_more_than_40_db() {
    for freq in [8_200.0, 9_000.0, 12_000.0, 20_000.0] {
        let x = tone(freq, 44_100, 1.0, 1.0);
        let y = resample(&x, 44_100, 16_000).unwrap();
        let db = 20.0 * (rms_middle(&y) * 2f64.sqrt()).log10();
        eprintln!("{freq} Hz at 44.1 kHz -> 16 kHz: {db:.1} dB");
        assert!(db < -40.0, "{freq} Hz tone only attenuated to {db:.1} dB");
    }
}

#[test]
fn upsampling_keeps_the_tone_and_adds_no_images() {
    let x = tone(1_000.0, 8_000, 1.0, 0.5);
    let y = resample(&x, 8_000, 16_000).unwrap();
    assert_eq!(y.len(), 16_000);
    let amp = amplitude_at(&y, 16_000, 1_000.0);
    assert!((amp - 0.5).abs() < 5e-4, "amplitude {amp}");
    // The image at 8 kHz - 1 kHz = 7 kHz must be gone.
    let image = amplitude_at(&y, 16_000, 7_000.0);
    assert!(image < 0.5 * 1e-3, "image at 7 kHz has amplitude {image}");
}

#[test]
fn odd_ratio_uses_interpolated_phases_and_still_works() {
    // 44 056 / 16 000 reduces to 5507 / 2000: more phases than are tabulated exactly.
    let x = tone(1_000.0, 44_056, 1.0, 0.5);
    let r = Resampler::new(44_056, 16_000).unwrap();
    let y = r.process(&x);
    assert_eq!(y.len(), r.output_len(x.len()));
    let amp = amplitude_at(&y, 16_000, 1_000.0);
    assert!((amp - 0.5).abs() < 5e-4, "amplitude {amp}");
    let high = resample(&tone(11_000.0, 44_056, 1.0, 1.0), 44_056, 16_000).unwrap();
    let db = 20.0 * (rms_middle(&high) * 2f64.sqrt()).log10();
    assert!(db < -40.0, "11 kHz only attenuated to {db:.1} dB");
}

#[test]
fn lengths_identity_and_bad_rates() {
    let r = Resampler::new(44_100, 16_000).unwrap();
    assert_eq!(r.output_len(0), 0);
    assert_eq!(r.output_len(1), 1);
    assert_eq!(r.output_len(441), 160);
    assert_eq!(r.output_len(442), 161);
    assert!(r.process(&[]).is_empty());
    let x: Vec<f32> = (0..100).map(|i| i as f32).collect();
    assert_eq!(resample(&x, 16_000, 16_000).unwrap(), x);
    // A constant stays constant (DC gain 1) away from the edges.
    let dc = resample(&vec![0.25f32; 44_100], 44_100, 16_000).unwrap();
    for (i, v) in dc[1_000..15_000].iter().enumerate() {
        assert!((v - 0.25).abs() < 1e-4, "dc[{}] = {v}", i + 1_000);
    }
    for (from, to) in [(0, 16_000), (16_000, 10), (44_100, 10_000_000)] {
        let e = Resampler::new(from, to).unwrap_err().to_string();
        assert!(e.contains("sample_rate"), "{from} -> {to}: {e}");
    }
}
