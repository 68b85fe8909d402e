//! Audio: decoding, downmix, band-limited resampling and librosa-compatible log-mel
//! spectrograms.
//!
//! * [`decode_audio`]: a file to mono samples at its own rate, cut at a maximum length;
//! * [`Resampler`] / [`resample()`]: Kaiser-windowed sinc resampling (the
//!   [`mod@resample`] module documents the pass-band and stop-band);
//! * [`LogMelPlan`]: the log-mel spectrogram, matching `librosa.feature.melspectrogram`
//!   followed by `librosa.power_to_db` (checked against `golden/logmel.json`);
//! * [`AudioPipeline`]: all three for files, one clip or a batch in parallel.

pub mod decode;
mod guard;
pub mod mel;
pub mod resample;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use decode::{DecodedAudio, decode_audio};
pub use mel::{LogMelConfig, LogMelPlan, MelFilterbank, Spectrogram, Window, hz_to_mel, mel_to_hz};
pub use resample::{Resampler, resample};

use crate::error::{ModalError, Result};

/// How audio files become model input. Defaults: 16 kHz, at most 30 s, and
/// [`LogMelConfig::default`] (64 bands, 25 ms windows, 10 ms hop).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioConfig {
    /// Target sample rate in Hz (default 16000).
    pub sample_rate: u32,
    /// Longest clip kept, in seconds; longer files are cut while decoding (default 30.0).
    pub max_seconds: f32,
    /// The log-mel spectrogram settings.
    pub mel: LogMelConfig,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            sample_rate: 16_000,
            max_seconds: 30.0,
            mel: LogMelConfig::default(),
        }
    }
}

impl AudioConfig {
    /// Checks every field; the error names it (`mel.*` for the spectrogram settings).
    ///
    /// ```
    /// use mspa_modal::audio::AudioConfig;
    /// let bad = AudioConfig { max_seconds: 0.0, ..AudioConfig::default() };
    /// assert!(bad.validate().unwrap_err().to_string().contains("max_seconds"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        if !(resample::MIN_RATE..=resample::MAX_RATE).contains(&self.sample_rate) {
            return Err(ModalError::Config {
                field: "sample_rate".into(),
                message: format!(
                    "must be in [{}, {}], got {}",
                    resample::MIN_RATE,
                    resample::MAX_RATE,
                    self.sample_rate
                ),
            });
        }
        if !(self.max_seconds.is_finite() && self.max_seconds > 0.0) {
            return Err(ModalError::Config {
                field: "max_seconds".into(),
                message: format!("must be finite and positive, got {}", self.max_seconds),
            });
        }
        self.mel.validate(self.sample_rate).map_err(|e| match e {
            ModalError::Config { field, message } => ModalError::Config {
                field: format!("mel.{field}"),
                message,
            },
            other => other,
        })
    }
}

/// Decodes, downmixes, resamples and (optionally) turns audio files into log-mel
/// spectrograms. Holds the precomputed mel plan and one resampler per source rate seen;
/// share it between threads.
///
/// ```no_run
/// use mspa_modal::audio::{AudioConfig, AudioPipeline};
/// let pipeline = AudioPipeline::new(AudioConfig::default())?;
/// let s = pipeline.log_mel_file("clip.wav")?;
/// println!("{} bands x {} frames", s.n_mels, s.n_frames);
/// // Several clips in parallel; each keeps its own result.
/// let all = pipeline.log_mel_files(&["a.mp3", "b.flac"]);
/// # let _ = all;
/// # Ok::<(), mspa_modal::ModalError>(())
/// ```
#[derive(Debug)]
pub struct AudioPipeline {
    config: AudioConfig,
    plan: LogMelPlan,
    resamplers: Mutex<HashMap<u32, Arc<Resampler>>>,
}

impl AudioPipeline {
    /// Validates `config` and precomputes the mel plan.
    pub fn new(config: AudioConfig) -> Result<Self> {
        config.validate()?;
        let plan = LogMelPlan::new(config.mel.clone(), config.sample_rate)?;
        Ok(AudioPipeline {
            config,
            plan,
            resamplers: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AudioConfig {
        &self.config
    }

    /// The precomputed log-mel plan.
    pub fn plan(&self) -> &LogMelPlan {
        &self.plan
    }

    /// The (cached) resampler from `from` Hz to the target rate.
    pub fn resampler(&self, from: u32) -> Result<Arc<Resampler>> {
        let mut cache = self
            .resamplers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(r) = cache.get(&from) {
            return Ok(Arc::clone(r));
        }
        let r = Arc::new(Resampler::new(from, self.config.sample_rate)?);
        cache.insert(from, Arc::clone(&r));
        Ok(r)
    }

    /// Mono samples of `path` at the target rate, at most `max_seconds` long.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Vec<f32>> {
        let path = path.as_ref();
        let clip = decode_audio(path, self.config.max_seconds)?;
        if clip.sample_rate == self.config.sample_rate {
            return Ok(clip.samples);
        }
        let resampler = self
            .resampler(clip.sample_rate)
            .map_err(|e| ModalError::decode(path, e.to_string()))?;
        let mut out = resampler.process(&clip.samples);
        // Cutting happened at the source rate; keep the exact maximum at the target rate.
        let max = (f64::from(self.config.max_seconds) * f64::from(self.config.sample_rate)).ceil()
            as usize;
        out.truncate(max);
        Ok(out)
    }

    /// The log-mel spectrogram (`[n_mels, n_frames]`, dB) of `path`.
    pub fn log_mel_file(&self, path: impl AsRef<Path>) -> Result<Spectrogram> {
        Ok(self.plan.log_mel(&self.load(path)?))
    }

    /// [`Self::load`] for several files in parallel; one result per file, in order.
    pub fn load_files<P: AsRef<Path> + Sync>(&self, paths: &[P]) -> Vec<Result<Vec<f32>>> {
        paths.par_iter().map(|p| self.load(p)).collect()
    }

    /// [`Self::log_mel_file`] for several files in parallel; one result per file, in order.
    pub fn log_mel_files<P: AsRef<Path> + Sync>(&self, paths: &[P]) -> Vec<Result<Spectrogram>> {
        paths.par_iter().map(|p| self.log_mel_file(p)).collect()
    }
}

/// Mono samples of `path` at `config.sample_rate`, at most `config.max_seconds` long
/// (a one-off [`AudioPipeline::load`]).
pub fn load_audio(path: impl AsRef<Path>, config: &AudioConfig) -> Result<Vec<f32>> {
    AudioPipeline::new(config.clone())?.load(path)
}
