//! Why the hand-written resampler stays: it is compared with rubato's `Fft` resampler (rubato's
//! recommendation for whole clips at fixed rates) on pass-band tones, whose exact resampled
//! values are known. rubato is as flat and has a deeper stop-band, and is faster, but for
//! non-integer ratios its output is displaced by a fraction of an output sample (0.18 at
//! 44.1 -> 16 kHz, 0.36 at 22.05 -> 16 kHz), so it is far from the exact values (and from
//! librosa's `soxr_hq`, see the module doc of `mspa_modal::audio::resample`).

use std::f64::consts::PI;

use mspa_modal::audio::Resampler;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

fn tone(freq: f64, rate: u32, amp: f64) -> Vec<f32> {
    (0..rate)
        .map(|i| (amp * (2.0 * PI * freq * f64::from(i) / f64::from(rate)).sin()) as f32)
        .collect()
}

/// Least-squares fit of `a sin(w i) + b cos(w i)` over the middle half of `y`: the relative
/// amplitude error against `amp`, and how far `y` lags the exact tone, in output samples.
fn amplitude_error_and_lag(y: &[f32], freq: f64, rate: u32, amp: f64) -> (f64, f64) {
    let w = 2.0 * PI * freq / f64::from(rate);
    let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &v) in y.iter().enumerate().take(3 * y.len() / 4).skip(y.len() / 4) {
        let (s, c) = (w * i as f64).sin_cos();
        (ss, sc, cc) = (ss + s * s, sc + s * c, cc + c * c);
        (ys, yc) = (ys + f64::from(v) * s, yc + f64::from(v) * c);
    }
    let det = ss * cc - sc * sc;
    let (a, b) = ((ys * cc - yc * sc) / det, (yc * ss - ys * sc) / det);
    ((a.hypot(b) - amp).abs() / amp, -b.atan2(a) / w)
}

/// The largest difference from the exact tone over the middle half of `y`.
fn max_error(y: &[f32], freq: f64, rate: u32, amp: f64) -> f64 {
    let exact = |i: usize| amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin();
    (y.len() / 4..3 * y.len() / 4)
        .map(|i| (f64::from(y[i]) - exact(i)).abs())
        .fold(0.0, f64::max)
}

#[test]
fn ours_is_time_aligned_where_rubato_fft_is_not() {
    for (from, freq) in [
        (44_100, 1_000.0),
        (44_100, 7_000.0),
        (22_050, 6_500.0),
        (44_056, 1_000.0),
        (48_000, 3_000.0),
        (8_000, 1_000.0),
    ] {
        let x = tone(freq, from, 0.5);
        let ours = Resampler::new(from, 16_000).unwrap().process(&x);
        let mut fft = Fft::<f32>::new(from as usize, 16_000, 1024, 1, FixedSync::Both).unwrap();
        let input = InterleavedSlice::new(&x, 1, x.len()).unwrap();
        let theirs = fft.process_all(&input, x.len(), None).unwrap().take_data();
        assert_eq!((ours.len(), theirs.len()), (16_000, 16_000));
        let (ours_err, theirs_err) = (
            max_error(&ours, freq, 16_000, 0.5),
            max_error(&theirs, freq, 16_000, 0.5),
        );
        let (ours_amp, ours_lag) = amplitude_error_and_lag(&ours, freq, 16_000, 0.5);
        let (theirs_amp, theirs_lag) = amplitude_error_and_lag(&theirs, freq, 16_000, 0.5);
        println!(
            "{from} -> 16000 Hz, {freq} Hz tone: max |error| ours {ours_err:.1e}, rubato {theirs_err:.1e}; \
             amplitude error ours {ours_amp:.1e}, rubato {theirs_amp:.1e}; \
             lag ours {ours_lag:.3}, rubato {theirs_lag:.3} samples"
        );
        assert!(
            ours_err < 1e-4 && ours_lag.abs() < 1e-3,
            "ours: {ours_err:e}, lag {ours_lag}"
        );
        if 16_000 % from != 0 && from % 16_000 != 0 {
            assert!(
                ours_err < theirs_err,
                "rubato's Fft is now as close to the exact tone ({theirs_err:e} vs ours \
                 {ours_err:e}): reconsider it"
            );
        }
    }
}
