//! Log-mel spectrograms that match librosa's defaults.
//!
//! The pipeline is librosa's `melspectrogram` followed by `power_to_db`:
//!
//! 1. with `center`, the signal is padded with `n_fft / 2` zeros on both sides
//!    (librosa's `pad_mode="constant"`);
//! 2. frames of `n_fft` samples start every `hop_length` samples; each is multiplied by a
//!    periodic window of `win_length` samples, zero-padded to `n_fft` and centred;
//! 3. the one-sided FFT (`1 + n_fft / 2` bins; any `n_fft`, not only powers of two) gives
//!    `|X|^power`;
//! 4. a Slaney-style mel filterbank with Slaney area normalisation (librosa's
//!    `filters.mel(htk=False, norm="slaney")`) maps the bins to `n_mels` bands;
//! 5. `10 * log10(max(S, amin))`, optionally clipped to `max - top_db`.
//!
//! The output is `[n_mels, n_frames]`, row-major, like librosa's.
//!
//! Speed: the window, the FFT plan and the sparse mel matrix are computed once in
//! [`LogMelPlan::new`]. A real FFT of even length `n` runs as a complex FFT of length
//! `n / 2` (the even/odd packing trick) with rustfft, whose unpacking loop reads the
//! mirrored bins front to back so that it runs on vector lanes; frames are processed in
//! parallel blocks with rayon, each block taken to decibels while it is in cache, and the
//! blocks transposed to `[n_mels, n_frames]` in parallel groups of bands.

use std::sync::Arc;

use rayon::prelude::*;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};

use crate::error::{ModalError, Result};

/// The largest `n_fft` a [`LogMelConfig`] accepts (2^20).
pub const MAX_N_FFT: usize = 1 << 20;

/// Frames per parallel work item.
const FRAMES_PER_TASK: usize = 64;

/// Mel bands per parallel work item of the transpose to `[n_mels, n_frames]` (16 values
/// of a frame: one 64-byte cache line).
const BANDS_PER_TASK: usize = 16;

/// A periodic analysis window (scipy's `get_window(name, n, fftbins=True)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Periodic Hann: `0.5 - 0.5 cos(2 pi n / N)` (librosa's default).
    #[default]
    Hann,
    /// Periodic Hamming: `0.54 - 0.46 cos(2 pi n / N)`.
    Hamming,
    /// All ones.
    Rectangular,
}

impl Window {
    /// The `len` window coefficients (periodic, as used for spectral analysis).
    pub fn coefficients(self, len: usize) -> Vec<f64> {
        let n = len as f64;
        (0..len)
            .map(|i| {
                let phase = 2.0 * std::f64::consts::PI * i as f64 / n;
                match self {
                    Window::Hann => 0.5 - 0.5 * phase.cos(),
                    Window::Hamming => 0.54 - 0.46 * phase.cos(),
                    Window::Rectangular => 1.0,
                }
            })
            .collect()
    }
}

/// Settings of a log-mel spectrogram. The defaults are those of the MSPA audio encoder
/// (25 ms windows, 10 ms hop and 64 bands at 16 kHz); every field mirrors the librosa
/// argument of the same name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogMelConfig {
    /// FFT size in samples; any size >= 2 (default 400).
    pub n_fft: usize,
    /// Samples between the starts of successive frames (default 160).
    pub hop_length: usize,
    /// Window length in samples, at most `n_fft`; the window is zero-padded to `n_fft`
    /// and centred (default 400).
    pub win_length: usize,
    /// The analysis window (default periodic Hann).
    pub window: Window,
    /// Pad the signal with `n_fft / 2` zeros on both sides so that frame `t` is centred on
    /// sample `t * hop_length` (default true).
    pub center: bool,
    /// Exponent of the magnitude: 2.0 is power, 1.0 is magnitude (default 2.0).
    pub power: f32,
    /// Number of mel bands (default 64).
    pub n_mels: usize,
    /// Lowest band edge in Hz (default 0.0).
    pub fmin: f32,
    /// Highest band edge in Hz; `None` is the Nyquist frequency (default `None`).
    pub fmax: Option<f32>,
    /// Floor applied before the logarithm (default 1e-10).
    pub amin: f32,
    /// If set, values below `max - top_db` are raised to it (default `None`).
    pub top_db: Option<f32>,
}

impl Default for LogMelConfig {
    fn default() -> Self {
        LogMelConfig {
            n_fft: 400,
            hop_length: 160,
            win_length: 400,
            window: Window::Hann,
            center: true,
            power: 2.0,
            n_mels: 64,
            fmin: 0.0,
            fmax: None,
            amin: 1e-10,
            top_db: None,
        }
    }
}

fn config_error(field: &str, message: impl Into<String>) -> ModalError {
    ModalError::Config {
        field: field.to_string(),
        message: message.into(),
    }
}

impl LogMelConfig {
    /// Checks every field for a signal at `sample_rate` Hz; the error names the field.
    ///
    /// ```
    /// use mspa_modal::audio::LogMelConfig;
    /// assert!(LogMelConfig::default().validate(16_000).is_ok());
    /// let bad = LogMelConfig { win_length: 512, ..LogMelConfig::default() };
    /// assert!(bad.validate(16_000).unwrap_err().to_string().contains("win_length"));
    /// ```
    pub fn validate(&self, sample_rate: u32) -> Result<()> {
        if sample_rate == 0 {
            return Err(config_error("sample_rate", "must be positive"));
        }
        if !(2..=MAX_N_FFT).contains(&self.n_fft) {
            return Err(config_error(
                "n_fft",
                format!("must be in [2, {MAX_N_FFT}], got {}", self.n_fft),
            ));
        }
        if self.hop_length == 0 {
            return Err(config_error("hop_length", "must be positive"));
        }
        if self.win_length == 0 || self.win_length > self.n_fft {
            return Err(config_error(
                "win_length",
                format!(
                    "must be in [1, n_fft = {}], got {}",
                    self.n_fft, self.win_length
                ),
            ));
        }
        if !(self.power.is_finite() && self.power > 0.0) {
            return Err(config_error(
                "power",
                format!("must be finite and positive, got {}", self.power),
            ));
        }
        if self.n_mels == 0 {
            return Err(config_error("n_mels", "must be positive"));
        }
        let nyquist = sample_rate as f32 / 2.0;
        if !(self.fmin.is_finite() && self.fmin >= 0.0) {
            return Err(config_error(
                "fmin",
                format!("must be finite and >= 0, got {}", self.fmin),
            ));
        }
        let fmax = self.fmax.unwrap_or(nyquist);
        if !(fmax.is_finite() && fmax > self.fmin && fmax <= nyquist) {
            return Err(config_error(
                "fmax",
                format!(
                    "must be in (fmin = {}, Nyquist = {nyquist}], got {fmax}",
                    self.fmin
                ),
            ));
        }
        if !(self.amin.is_finite() && self.amin > 0.0) {
            return Err(config_error(
                "amin",
                format!("must be finite and positive, got {}", self.amin),
            ));
        }
        if let Some(top_db) = self.top_db
            && !(top_db.is_finite() && top_db >= 0.0)
        {
            return Err(config_error(
                "top_db",
                format!("must be finite and >= 0, got {top_db}"),
            ));
        }
        Ok(())
    }

    /// The number of frames of a signal of `len` samples.
    pub fn n_frames(&self, len: usize) -> usize {
        let padded = if self.center {
            len + 2 * (self.n_fft / 2)
        } else {
            len
        };
        if padded < self.n_fft || self.hop_length == 0 {
            0
        } else {
            1 + (padded - self.n_fft) / self.hop_length
        }
    }
}

/// Hz per mel below 1 kHz on the Slaney scale.
const SLANEY_F_SP: f64 = 200.0 / 3.0;
/// Where the Slaney scale turns logarithmic, in Hz.
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;
/// Where the Slaney scale turns logarithmic, in mel.
const SLANEY_MIN_LOG_MEL: f64 = SLANEY_MIN_LOG_HZ / SLANEY_F_SP;

/// Mels per unit of natural log of frequency above 1 kHz, inverted (librosa's `logstep`).
fn slaney_logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hz to mel on the Slaney scale (librosa's `hz_to_mel(htk=False)`): linear below 1 kHz
/// (200/3 Hz per mel), logarithmic above.
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= SLANEY_MIN_LOG_HZ {
        SLANEY_MIN_LOG_MEL + (hz / SLANEY_MIN_LOG_HZ).ln() / slaney_logstep()
    } else {
        hz / SLANEY_F_SP
    }
}

/// Mel (Slaney scale) to Hz, the inverse of [`hz_to_mel`].
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= SLANEY_MIN_LOG_MEL {
        SLANEY_MIN_LOG_HZ * (slaney_logstep() * (mel - SLANEY_MIN_LOG_MEL)).exp()
    } else {
        SLANEY_F_SP * mel
    }
}

/// One band of a [`MelFilterbank`]: the non-zero weights from FFT bin `start` on.
#[derive(Clone, Debug, PartialEq)]
struct MelBand {
    start: usize,
    weights: Vec<f32>,
}

/// A Slaney-style mel filterbank with Slaney area normalisation, stored sparsely
/// (each band keeps only its non-zero run of weights).
#[derive(Clone, Debug, PartialEq)]
pub struct MelFilterbank {
    n_freqs: usize,
    bands: Vec<MelBand>,
}

impl MelFilterbank {
    /// The filterbank of librosa's `filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False,
    /// norm="slaney")`: `n_mels` triangles between `n_mels + 2` points equally spaced on
    /// the mel scale, each scaled by `2 / (upper_hz - lower_hz)`. Computed in f64, stored
    /// in f32. The arguments are not checked (see [`LogMelConfig::validate`]).
    ///
    /// ```
    /// use mspa_modal::audio::MelFilterbank;
    /// let fb = MelFilterbank::slaney(16_000, 400, 64, 0.0, 8_000.0);
    /// assert_eq!((fb.n_mels(), fb.n_freqs()), (64, 201));
    /// ```
    pub fn slaney(sample_rate: u32, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64) -> Self {
        let sr = f64::from(sample_rate);
        let n_freqs = 1 + n_fft / 2;
        let fft_freqs: Vec<f64> = (0..n_freqs).map(|k| k as f64 * sr / n_fft as f64).collect();
        let min_mel = hz_to_mel(fmin);
        let max_mel = hz_to_mel(fmax);
        let n_points = n_mels + 2;
        let step = if n_points > 1 {
            (max_mel - min_mel) / (n_points - 1) as f64
        } else {
            0.0
        };
        let mel_f: Vec<f64> = (0..n_points)
            .map(|i| {
                if i + 1 == n_points {
                    mel_to_hz(max_mel)
                } else {
                    mel_to_hz(min_mel + i as f64 * step)
                }
            })
            .collect();
        let bands = (0..n_mels)
            .map(|m| {
                let (lo, mid, hi) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
                let (rise, fall) = (mid - lo, hi - mid);
                let enorm = 2.0 / (hi - lo);
                let dense: Vec<f32> = fft_freqs
                    .iter()
                    .map(|&f| {
                        let lower = (f - lo) / rise;
                        let upper = (hi - f) / fall;
                        let w = lower.min(upper).max(0.0);
                        // librosa stores the triangle in f32 before normalising.
                        (f64::from(w as f32) * enorm) as f32
                    })
                    .collect();
                match dense.iter().position(|&w| w != 0.0) {
                    None => MelBand {
                        start: 0,
                        weights: Vec::new(),
                    },
                    Some(start) => {
                        let end = dense.iter().rposition(|&w| w != 0.0).unwrap_or(start) + 1;
                        MelBand {
                            start,
                            weights: dense[start..end].to_vec(),
                        }
                    }
                }
            })
            .collect();
        MelFilterbank { n_freqs, bands }
    }

    /// Number of mel bands.
    pub fn n_mels(&self) -> usize {
        self.bands.len()
    }

    /// Number of FFT bins (`1 + n_fft / 2`).
    pub fn n_freqs(&self) -> usize {
        self.n_freqs
    }

    /// The dense `[n_mels, n_freqs]` matrix, row-major (librosa's layout).
    pub fn to_dense(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.n_mels() * self.n_freqs];
        for (m, band) in self.bands.iter().enumerate() {
            let row = &mut out[m * self.n_freqs..(m + 1) * self.n_freqs];
            row[band.start..band.start + band.weights.len()].copy_from_slice(&band.weights);
        }
        out
    }

    /// Maps a spectrum of `n_freqs` bins to `n_mels` band energies.
    ///
    /// # Panics
    /// If `spectrum.len() != n_freqs` or `out.len() != n_mels`.
    pub fn apply(&self, spectrum: &[f32], out: &mut [f32]) {
        assert_eq!(spectrum.len(), self.n_freqs, "spectrum length");
        assert_eq!(out.len(), self.bands.len(), "output length");
        for (o, band) in out.iter_mut().zip(&self.bands) {
            let bins = &spectrum[band.start..band.start + band.weights.len()];
            *o = bins.iter().zip(&band.weights).map(|(s, w)| s * w).sum();
        }
    }
}

/// A spectrogram: `n_mels` rows of `n_frames` values, row-major (`[n_mels, n_frames]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Spectrogram {
    /// Number of rows (mel bands).
    pub n_mels: usize,
    /// Number of columns (frames).
    pub n_frames: usize,
    /// The values, `data[m * n_frames + t]`.
    pub data: Vec<f32>,
}

impl Spectrogram {
    /// The value of band `mel` in frame `frame`.
    ///
    /// # Panics
    /// If either index is out of range.
    pub fn get(&self, mel: usize, frame: usize) -> f32 {
        assert!(
            mel < self.n_mels && frame < self.n_frames,
            "index out of range"
        );
        self.data[mel * self.n_frames + frame]
    }

    /// The values frame-major, `[n_frames, n_mels]` (the transpose).
    pub fn to_frame_major(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.data.len()];
        for m in 0..self.n_mels {
            for t in 0..self.n_frames {
                out[t * self.n_mels + m] = self.data[m * self.n_frames + t];
            }
        }
        out
    }
}

/// A real-input FFT giving `|X[k]|^power` for `k in 0..=n/2`, built on rustfft.
struct RealPowerFft {
    n: usize,
    fft: Arc<dyn Fft<f32>>,
    /// `exp(-2 pi i k / n)` for `k in 0..n/2` (even `n` only).
    twiddles: Vec<Complex<f32>>,
}

impl RealPowerFft {
    fn new(n: usize) -> Self {
        let mut planner = FftPlanner::<f32>::new();
        if n.is_multiple_of(2) {
            let half = n / 2;
            let twiddles = (0..half)
                .map(|k| {
                    let a = -2.0 * std::f64::consts::PI * k as f64 / n as f64;
                    Complex::new(a.cos() as f32, a.sin() as f32)
                })
                .collect();
            RealPowerFft {
                n,
                fft: planner.plan_fft_forward(half),
                twiddles,
            }
        } else {
            RealPowerFft {
                n,
                fft: planner.plan_fft_forward(n),
                twiddles: Vec::new(),
            }
        }
    }

    /// Length of the complex buffer [`Self::load`] fills.
    fn buffer_len(&self) -> usize {
        if self.n.is_multiple_of(2) {
            self.n / 2
        } else {
            self.n
        }
    }

    /// Packs `n` real samples into the complex buffer.
    #[inline]
    fn load(&self, frame: &[f32], buf: &mut [Complex<f32>]) {
        if self.n.is_multiple_of(2) {
            for (c, pair) in buf.iter_mut().zip(frame.chunks_exact(2)) {
                *c = Complex::new(pair[0], pair[1]);
            }
        } else {
            for (c, &x) in buf.iter_mut().zip(frame) {
                *c = Complex::new(x, 0.0);
            }
        }
    }

    /// Transforms the loaded buffer and writes `|X[k]|^power` for `k in 0..=n/2`.
    fn power(
        &self,
        buf: &mut [Complex<f32>],
        scratch: &mut [Complex<f32>],
        power: f32,
        out: &mut [f32],
    ) {
        self.fft.process_with_scratch(buf, scratch);
        // One loop per exponent, so that none tests the exponent per bin.
        if power == 2.0 {
            self.unpack(buf, out, |sq| sq);
        } else if power == 1.0 {
            self.unpack(buf, out, f32::sqrt);
        } else {
            self.unpack(buf, out, |sq| sq.powf(power * 0.5));
        }
    }

    /// Writes `of_square(|X[k]|^2)` for `k in 0..=n/2` from the transformed buffer.
    #[inline(always)]
    fn unpack(&self, buf: &[Complex<f32>], out: &mut [f32], of_square: impl Fn(f32) -> f32) {
        let pow = |re: f32, im: f32| of_square(re * re + im * im);
        if self.n.is_multiple_of(2) {
            let half = self.n / 2;
            let z0 = buf[0];
            out[0] = pow(z0.re + z0.im, 0.0);
            out[half] = pow(z0.re - z0.im, 0.0);
            // Bins 1..half, with `b` read front to back (the mirrored bins in reverse), so
            // that the loop runs on vector lanes.
            let mirrored = buf[1..half].iter().rev();
            let bins = out[1..half].iter_mut().zip(&buf[1..half]);
            for (((o, &a), b), &w) in bins.zip(mirrored).zip(&self.twiddles[1..half]) {
                let b = b.conj();
                // Even part (a + b) / 2 and odd part (a - b) / (2i).
                let e = Complex::new(0.5 * (a.re + b.re), 0.5 * (a.im + b.im));
                let d = Complex::new(a.re - b.re, a.im - b.im);
                let odd = Complex::new(0.5 * d.im, -0.5 * d.re);
                let x = e + w * odd;
                *o = pow(x.re, x.im);
            }
        } else {
            for (o, x) in out.iter_mut().zip(buf.iter()) {
                *o = pow(x.re, x.im);
            }
        }
    }
}

/// Everything a log-mel spectrogram needs, computed once: the window, the FFT plan and
/// the sparse mel filterbank. Cheap to share between threads.
///
/// ```
/// use mspa_modal::audio::{LogMelConfig, LogMelPlan};
/// let plan = LogMelPlan::new(LogMelConfig::default(), 16_000).unwrap();
/// let one_second: Vec<f32> = (0..16_000)
///     .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16_000.0).sin())
///     .collect();
/// let s = plan.log_mel(&one_second);
/// assert_eq!((s.n_mels, s.n_frames), (64, 101));
/// ```
pub struct LogMelPlan {
    config: LogMelConfig,
    sample_rate: u32,
    /// The window zero-padded to `n_fft` and centred.
    window: Vec<f32>,
    fft: RealPowerFft,
    filters: MelFilterbank,
}

mspa_core::debug_fields!(LogMelPlan {
    config,
    sample_rate,
    ..
});

impl LogMelPlan {
    /// Validates `config` for `sample_rate` and precomputes the plan.
    pub fn new(config: LogMelConfig, sample_rate: u32) -> Result<Self> {
        config.validate(sample_rate)?;
        let n_fft = config.n_fft;
        let offset = (n_fft - config.win_length) / 2;
        let mut window = vec![0.0f32; n_fft];
        for (i, w) in config
            .window
            .coefficients(config.win_length)
            .into_iter()
            .enumerate()
        {
            window[offset + i] = w as f32;
        }
        let fmax = config.fmax.unwrap_or(sample_rate as f32 / 2.0);
        let filters = MelFilterbank::slaney(
            sample_rate,
            n_fft,
            config.n_mels,
            f64::from(config.fmin),
            f64::from(fmax),
        );
        Ok(LogMelPlan {
            fft: RealPowerFft::new(n_fft),
            config,
            sample_rate,
            window,
            filters,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LogMelConfig {
        &self.config
    }

    /// The sample rate the plan was built for.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The mel filterbank.
    pub fn filters(&self) -> &MelFilterbank {
        &self.filters
    }

    /// The mel power spectrogram (librosa's `melspectrogram`), `[n_mels, n_frames]`.
    pub fn mel_power(&self, samples: &[f32]) -> Spectrogram {
        self.spectrogram(samples, false).0
    }

    /// The log-mel spectrogram in dB, `[n_mels, n_frames]`:
    /// `10 * log10(max(S, amin))`, then clipped below at `max - top_db` if `top_db` is set.
    pub fn log_mel(&self, samples: &[f32]) -> Spectrogram {
        let (mut s, max) = self.spectrogram(samples, true);
        if let Some(top_db) = self.config.top_db {
            let floor = max - top_db;
            s.data.par_chunks_mut(1 << 16).for_each(|block| {
                for v in block.iter_mut() {
                    *v = v.max(floor);
                }
            });
        }
        s
    }

    /// The mel energies `[n_mels, n_frames]` (in dB when `decibels`) and their largest
    /// value: frames in parallel blocks, each block's energies frame-major and taken to dB
    /// while they are in cache, then the blocks transposed in parallel groups of bands.
    fn spectrogram(&self, samples: &[f32], decibels: bool) -> (Spectrogram, f32) {
        let n_mels = self.config.n_mels;
        let n_frames = self.config.n_frames(samples.len());
        let amin = self.config.amin;
        let mut frame_major = vec![0.0f32; n_frames * n_mels];
        let max = frame_major
            .par_chunks_mut(FRAMES_PER_TASK * n_mels)
            .enumerate()
            .map(|(task, block)| {
                self.mel_block(samples, task * FRAMES_PER_TASK, block);
                let mut max = f32::NEG_INFINITY;
                for v in block.iter_mut() {
                    if decibels {
                        *v = 10.0 * v.max(amin).log10();
                    }
                    max = max.max(*v);
                }
                max
            })
            .reduce(|| f32::NEG_INFINITY, f32::max);
        let mut data = vec![0.0f32; n_mels * n_frames];
        if n_frames > 0 {
            // Each group of bands reads one cache line of every frame and writes its rows
            // front to back.
            data.par_chunks_mut(BANDS_PER_TASK * n_frames)
                .enumerate()
                .for_each(|(group, rows)| {
                    let first = group * BANDS_PER_TASK;
                    let bands = rows.len() / n_frames;
                    for (t, frame) in frame_major.chunks_exact(n_mels).enumerate() {
                        for (b, &v) in frame[first..first + bands].iter().enumerate() {
                            rows[b * n_frames + t] = v;
                        }
                    }
                });
        }
        let s = Spectrogram {
            n_mels,
            n_frames,
            data,
        };
        (s, max)
    }

    /// Mel energies of the frames from `first` on, frame-major, into `block` (`n_mels`
    /// values a frame).
    fn mel_block(&self, samples: &[f32], first: usize, block: &mut [f32]) {
        let n_mels = self.config.n_mels;
        let mut frame = vec![0.0f32; self.config.n_fft];
        let mut buf = vec![Complex::new(0.0f32, 0.0); self.fft.buffer_len()];
        let mut scratch = vec![Complex::new(0.0f32, 0.0); self.fft.fft.get_inplace_scratch_len()];
        let mut spectrum = vec![0.0f32; self.filters.n_freqs()];
        for (i, mel_out) in block.chunks_exact_mut(n_mels).enumerate() {
            self.fill_frame(samples, first + i, &mut frame);
            self.fft.load(&frame, &mut buf);
            self.fft
                .power(&mut buf, &mut scratch, self.config.power, &mut spectrum);
            self.filters.apply(&spectrum, mel_out);
        }
    }

    /// Writes the windowed frame `t` (with centre zero padding) into `frame`.
    #[inline]
    fn fill_frame(&self, samples: &[f32], t: usize, frame: &mut [f32]) {
        let n_fft = self.config.n_fft;
        let pad = if self.config.center { n_fft / 2 } else { 0 };
        let start = (t * self.config.hop_length) as isize - pad as isize;
        if start >= 0 && start as usize + n_fft <= samples.len() {
            let src = &samples[start as usize..start as usize + n_fft];
            for ((f, &x), &w) in frame.iter_mut().zip(src).zip(&self.window) {
                *f = x * w;
            }
        } else {
            for (j, (f, &w)) in frame.iter_mut().zip(&self.window).enumerate() {
                let i = start + j as isize;
                *f = if i >= 0 && (i as usize) < samples.len() {
                    samples[i as usize] * w
                } else {
                    0.0
                };
            }
        }
    }
}
