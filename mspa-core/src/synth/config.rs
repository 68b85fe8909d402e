//! [`SyntheticWorldConfig`]: every knob of the world, with documented defaults and checks.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SynthError;

/// Everything that shapes a synthetic world. Every field has a default (serde fills the
/// ones a JSON file leaves out), so `{}` and `{"seed": 7}` are valid configs.
///
/// The knobs that make the benchmark harder or easier are `temperature`, `exploration`,
/// `popularity_bias`, `repeat_prob`, `id_signal`, `drift_fraction`, `drift_strength`, the
/// modality dropouts, `text_noise` and `media_noise`; their effect is stated on each field.
/// The defaults were chosen for plausibility (a skewed popularity head, a third of tips on
/// repeat authors, half the users drifting), not to favour any model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticWorldConfig {
    /// Seed of every random choice; the same seed and config give byte-identical files.
    pub seed: u64,
    /// Number of authors (streamers). At least 2. Default 300.
    pub authors: usize,
    /// Number of users (tippers). At least 1. Default 2,000.
    pub users: usize,
    /// Mean number of tips per user (every user tips at least once). Default 12.5, so the
    /// default world has about 25,000 tips.
    pub mean_tips_per_user: f64,
    /// Spread (log-normal sigma) of the users' latent tip rates: larger means more very
    /// light and very heavy tippers. Default 0.8.
    pub rate_sigma: f64,
    /// Start of the world's time span, in milliseconds since the Unix epoch.
    /// Default 1,704,067,200,000 (2024-01-01T00:00:00Z).
    pub start_ms: i64,
    /// Length of the time span in days. Default 28.
    pub span_days: f64,
    /// PNG frames per author. Default 3.
    pub frames_per_author: usize,
    /// Side of each square RGB frame in pixels (8 to 1024). Default 64.
    pub frame_size: u32,
    /// Length of each author's WAV clip in seconds (0 to 60). Default 3.
    pub audio_seconds: f64,
    /// Sample rate of the clips in Hz (8,000 to 48,000; mono, 16-bit PCM). Default 16,000.
    pub sample_rate: u32,
    /// Share of authors with no audio clip (`audio: null`). Default 0.15.
    pub audio_dropout: f64,
    /// Share of authors with an empty description (the title stays). Default 0.2.
    pub description_dropout: f64,
    /// Share of authors with no frames at all. Default 0.05.
    pub frame_dropout: f64,
    /// Probability that a category or format word in a title or description names a wrong,
    /// random value instead of the author's own (and that a non-English author mixes in an
    /// English phrase). Higher makes text less reliable. Default 0.2.
    pub text_noise: f64,
    /// Strength of pixel noise in frames and hiss in clips, relative to the signal
    /// (0 = clean, 1 = heavy). Default 0.15.
    pub media_noise: f64,
    /// Share of authors with a secondary category (which they show with weight 0.3).
    /// Default 0.3.
    pub secondary_category_prob: f64,
    /// Spread (sigma of log popularity) of the authors' latent popularity. Default 1.0.
    pub popularity_sigma: f64,
    /// Weight of log popularity in every tip choice: 0 ignores popularity, larger makes the
    /// popularity baseline stronger. Default 1.0.
    pub popularity_bias: f64,
    /// Softmax temperature of tip choices over affinity: smaller makes users pickier
    /// (affinity dominates popularity and noise). Default 0.1.
    pub temperature: f64,
    /// Probability that a tip goes to a uniformly random author (pure noise). Default 0.05.
    pub exploration: f64,
    /// Scale of the repeat mechanism: a tip re-tips a previously tipped author with
    /// probability `repeat_prob * clamp(best past affinity now, 0, 1)`. Default 0.45.
    pub repeat_prob: f64,
    /// Weight of a hidden collaborative factor (`id_dims`-dimensional unit vectors per user
    /// and author) in the affinity. It shows in no modality: only ids (co-tipping) reveal
    /// it. 0 removes it. Default 0.3.
    pub id_signal: f64,
    /// Dimension of the hidden collaborative factor. Default 8.
    pub id_dims: usize,
    /// Mass of a user's favourite value(s) in each attribute's preference; the rest is
    /// spread uniformly. Higher makes users more predictable from their attributes.
    /// Default 0.8.
    pub preference_focus: f64,
    /// Probability that a user has two favourite categories instead of one. Default 0.4.
    pub second_category_prob: f64,
    /// Probability that a user has two favourite values of another attribute. Default 0.15.
    pub second_value_prob: f64,
    /// Share of users whose preferences drift during their active window. Default 0.5.
    pub drift_fraction: f64,
    /// How far a drifting attribute moves: the end preference is
    /// `(1 - s) * start + s * new`, with new favourites. 0 = no drift, 1 = full switch.
    /// Default 0.7.
    pub drift_strength: f64,
    /// Share of drifting users who switch at one instant; the others drift linearly over
    /// a stretch of their window. Default 0.5.
    pub drift_switch_share: f64,
    /// Median of the users' latent generosity (tip amount at neutral affinity). Default 3.
    pub amount_median: f64,
    /// Spread (log-normal sigma) of the users' generosity. Default 0.8.
    pub amount_sigma: f64,
    /// Per-tip log-normal noise of amounts. Default 0.5.
    pub amount_noise: f64,
    /// How strongly amounts grow with affinity: amount = generosity *
    /// exp(gain * (affinity - 0.5)) * noise. 0 makes amounts carry no preference signal.
    /// Default 2.0.
    pub amount_affinity_gain: f64,
}

impl Default for SyntheticWorldConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            authors: 300,
            users: 2_000,
            mean_tips_per_user: 12.5,
            rate_sigma: 0.8,
            start_ms: 1_704_067_200_000,
            span_days: 28.0,
            frames_per_author: 3,
            frame_size: 64,
            audio_seconds: 3.0,
            sample_rate: 16_000,
            audio_dropout: 0.15,
            description_dropout: 0.2,
            frame_dropout: 0.05,
            text_noise: 0.2,
            media_noise: 0.15,
            secondary_category_prob: 0.3,
            popularity_sigma: 1.0,
            popularity_bias: 1.0,
            temperature: 0.1,
            exploration: 0.05,
            repeat_prob: 0.45,
            id_signal: 0.3,
            id_dims: 8,
            preference_focus: 0.8,
            second_category_prob: 0.4,
            second_value_prob: 0.15,
            drift_fraction: 0.5,
            drift_strength: 0.7,
            drift_switch_share: 0.5,
            amount_median: 3.0,
            amount_sigma: 0.8,
            amount_noise: 0.5,
            amount_affinity_gain: 2.0,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SynthError {
    SynthError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

fn check_prob(field: &'static str, v: f64) -> Result<(), SynthError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be a probability in [0, 1], got {v}"),
        ))
    }
}

fn check_range(field: &'static str, v: f64, lo: f64, hi: f64) -> Result<(), SynthError> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(invalid(field, format!("must be in [{lo}, {hi}], got {v}")))
    }
}

fn check_positive(field: &'static str, v: f64, hi: f64) -> Result<(), SynthError> {
    if v.is_finite() && v > 0.0 && v <= hi {
        Ok(())
    } else {
        Err(invalid(field, format!("must be > 0 and <= {hi}, got {v}")))
    }
}

impl SyntheticWorldConfig {
    /// Reads a config from a JSON file; missing fields take their defaults, unknown fields
    /// are an error. The result is validated.
    pub fn from_json_file(path: &Path) -> Result<Self, SynthError> {
        let text = std::fs::read_to_string(path).map_err(|source| SynthError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|e| SynthError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The span length in milliseconds.
    pub fn span_ms(&self) -> i64 {
        (self.span_days * crate::DAY_MS).round() as i64
    }

    /// Samples per clip.
    pub fn clip_samples(&self) -> usize {
        (self.audio_seconds * f64::from(self.sample_rate)).round() as usize
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), SynthError> {
        if self.authors < 2 {
            return Err(invalid(
                "authors",
                format!("must be at least 2, got {}", self.authors),
            ));
        }
        if self.authors > 10_000_000 {
            return Err(invalid("authors", "must be at most 10,000,000"));
        }
        if self.users < 1 {
            return Err(invalid("users", "must be at least 1, got 0"));
        }
        if self.users > 100_000_000 {
            return Err(invalid("users", "must be at most 100,000,000"));
        }
        check_range("mean_tips_per_user", self.mean_tips_per_user, 1.0, 10_000.0)?;
        check_range("rate_sigma", self.rate_sigma, 0.0, 3.0)?;
        if self.start_ms < 0 || self.start_ms > 4_102_444_800_000 {
            return Err(invalid(
                "start_ms",
                format!("must be between 0 and year 2100, got {}", self.start_ms),
            ));
        }
        check_positive("span_days", self.span_days, 3650.0)?;
        if self.span_ms() < 1000 {
            return Err(invalid("span_days", "must span at least one second"));
        }
        if self.frames_per_author > 64 {
            return Err(invalid("frames_per_author", "must be at most 64"));
        }
        if !(8..=1024).contains(&self.frame_size) {
            return Err(invalid(
                "frame_size",
                format!("must be in [8, 1024], got {}", self.frame_size),
            ));
        }
        check_positive("audio_seconds", self.audio_seconds, 60.0)?;
        if !(8_000..=48_000).contains(&self.sample_rate) {
            return Err(invalid(
                "sample_rate",
                format!("must be in [8000, 48000], got {}", self.sample_rate),
            ));
        }
        if self.clip_samples() == 0 {
            return Err(invalid("audio_seconds", "gives an empty clip"));
        }
        check_prob("audio_dropout", self.audio_dropout)?;
        check_prob("description_dropout", self.description_dropout)?;
        check_prob("frame_dropout", self.frame_dropout)?;
        check_prob("text_noise", self.text_noise)?;
        check_prob("media_noise", self.media_noise)?;
        check_prob("secondary_category_prob", self.secondary_category_prob)?;
        check_range("popularity_sigma", self.popularity_sigma, 0.0, 5.0)?;
        check_range("popularity_bias", self.popularity_bias, 0.0, 10.0)?;
        check_range("temperature", self.temperature, 1e-3, 100.0)?;
        check_prob("exploration", self.exploration)?;
        check_prob("repeat_prob", self.repeat_prob)?;
        check_range("id_signal", self.id_signal, 0.0, 10.0)?;
        if self.id_dims > 256 {
            return Err(invalid(
                "id_dims",
                format!("must be at most 256, got {}", self.id_dims),
            ));
        }
        check_prob("preference_focus", self.preference_focus)?;
        check_prob("second_category_prob", self.second_category_prob)?;
        check_prob("second_value_prob", self.second_value_prob)?;
        check_prob("drift_fraction", self.drift_fraction)?;
        check_prob("drift_strength", self.drift_strength)?;
        check_prob("drift_switch_share", self.drift_switch_share)?;
        check_positive("amount_median", self.amount_median, 1e6)?;
        check_range("amount_sigma", self.amount_sigma, 0.0, 3.0)?;
        check_range("amount_noise", self.amount_noise, 0.0, 3.0)?;
        check_range("amount_affinity_gain", self.amount_affinity_gain, 0.0, 10.0)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synth_default_config_is_valid_and_round_trips() {
        let c = SyntheticWorldConfig::default();
        c.validate().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: SyntheticWorldConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(c, back);
        let partial: SyntheticWorldConfig = serde_json::from_str(r#"{"seed": 9}"#).unwrap();
        assert_eq!(partial.seed, 9);
        assert_eq!(partial.authors, 300);
    }

    #[test]
    fn synth_bad_values_name_the_field() {
        let cases: [(&str, fn(&mut SyntheticWorldConfig)); 7] = [
            ("users", |c| c.users = 0),
            ("authors", |c| c.authors = 1),
            ("exploration", |c| c.exploration = 1.5),
            ("temperature", |c| c.temperature = 0.0),
            ("text_noise", |c| c.text_noise = f64::NAN),
            ("frame_size", |c| c.frame_size = 2),
            ("span_days", |c| c.span_days = -1.0),
        ];
        for (field, spoil) in cases {
            let mut c = SyntheticWorldConfig::default();
            spoil(&mut c);
            match c.validate() {
                Err(SynthError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn synth_unknown_json_field_is_an_error() {
        let dir = std::env::temp_dir().join(format!("mspa-synth-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.json");
        std::fs::write(&p, r#"{"usres": 5}"#).unwrap();
        let err = SyntheticWorldConfig::from_json_file(&p).unwrap_err();
        assert!(err.to_string().contains("usres"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
