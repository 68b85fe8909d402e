//! The synthetic live-stream world: real media files, known truth, an oracle.
//!
//! No public live-streaming dataset ships media and tipping together, so MSPA carries its
//! own world. [`generate`] writes, deterministically from [`SyntheticWorldConfig::seed`], a
//! dataset in the native format plus its truth:
//!
//! ```text
//! OUT/authors.jsonl        one author per line: id, name, title, description, frames, audio
//! OUT/tips.csv             user_id,author_id,amount,timestamp_ms (grouped by user, each in time order)
//! OUT/media/aNNNNN/frameK.png, OUT/media/aNNNNN/clip.wav
//! OUT/truth.json           format, grammar, field values, modality map, config, author latents
//! OUT/truth_users.jsonl    one user's latent truth per line (preferences, drift, reference text)
//! OUT/world.json           the config used
//! ```
//!
//! Ids are strings: authors `a` + at least 5 digits (`a00042`), users `u` + at least 6
//! (`u000042`). Amounts have exactly two decimals. Load the truth with [`Truth::load`].
//!
//! # Attributes and where they show
//!
//! | attribute (grammar field) | values | text | frames | audio |
//! |---|---|---|---|---|
//! | `categories` | music, dance, gaming, talk, cooking, art, sports, outdoor | vocabulary (synonyms, per language; noisy) | shape kind | - |
//! | `energy` | low, medium, high | - | brightness | tempo, loudness |
//! | `audio` | electronic, acoustic, vocal, ambient, rock | - | - | timbre, rhythm |
//! | `visuals` | neon, pastel, dark, natural, monochrome | - | palette | - |
//! | `language` | english, spanish, portuguese, french | vocabulary | - | - |
//! | `format` | solo, collab, tutorial, challenge | vocabulary (noisy) | texture/layout overlay | - |
//!
//! So text alone sees category, language and format; frames alone see category, energy,
//! visuals and format; audio alone sees energy and audio style. Audio style is only in the
//! audio and visual style only in the frames, so no single modality suffices. Some authors
//! lack a modality: no audio (`audio_dropout`), empty description (`description_dropout`),
//! no frames (`frame_dropout`). Besides its attributes, every author has a latent
//! popularity (shown nowhere but in tip counts) and a hidden collaborative vector (shown
//! nowhere but in who co-tips it), so popularity and id baselines have real signal.
//! The exact rendering rules are in the docs of the `media` (frames, clips) and `text`
//! (titles, descriptions) source files.
//!
//! # Users, drift, tips
//!
//! Users hold per-field preference weights, per-field importance, a latent tip rate and
//! generosity; half of them (by default) drift to new favourites in one or two fields,
//! linearly or by a switch. Tips follow affinity (softmax with `temperature`), popularity
//! (`popularity_bias`), repeats (`repeat_prob`) and noise (`exploration`); amounts grow
//! with affinity. The exact model is documented in [`users`].
//!
//! # Reference texts and the oracle
//!
//! For every user, `truth_users.jsonl` holds the reference preference text at the split
//! time (its last tip, the leave-last-out test target), in a fixed grammar documented in
//! [`truth`], e.g. `categories: music, dance | energy: high | audio: electronic | visuals:
//! neon | language: english | format: solo | tipping: frequent, generous`.
//! [`Truth::affinity`] scores any (user, author, time); [`Truth::next_tip_probabilities`]
//! gives the exact next-tip distribution (the Bayes-optimal ranker).
//!
//! # Knobs
//!
//! Every field of [`SyntheticWorldConfig`] documents its effect and default. The ones that
//! set the difficulty: `temperature` (lower: affinity dominates), `exploration` (uniform
//! noise tips), `popularity_bias` and `popularity_sigma` (strength of the popularity
//! head), `repeat_prob` (re-tipping), `id_signal` (hidden collaborative factor),
//! `drift_fraction`/`drift_strength`/`drift_switch_share` (drift), `preference_focus`
//! (how peaked preferences are), `audio_dropout`/`description_dropout`/`frame_dropout`
//! (missing modalities), `text_noise` and `media_noise`, `amount_affinity_gain` and
//! `amount_noise` (how much amounts say).
//!
//! # Scale and determinism
//!
//! Authors' media are rendered with rayon; users are simulated in parallel batches of
//! 1,024 and streamed to disk, so memory grows with the number of authors, not users.
//! Each entity draws from its own ChaCha8 generator seeded from the world seed, so
//! thread scheduling never changes a byte. Every file is written under a temporary name
//! and renamed into place when complete.
//!
//! ```
//! use mspa_core::synth::{generate, SyntheticWorldConfig, Truth};
//! let dir = std::env::temp_dir().join(format!("mspa-synth-doc-{}", std::process::id()));
//! let config = SyntheticWorldConfig { authors: 6, users: 10, audio_seconds: 0.5, ..Default::default() };
//! let summary = generate(&config, &dir).unwrap();
//! assert_eq!(summary.users, 10);
//! let truth = Truth::load(&dir).unwrap();
//! let user = &truth.users()[0];
//! let score = truth.affinity(&user.id, &truth.authors()[0].id, user.split_time_ms).unwrap();
//! assert!(score.is_finite());
//! assert!(user.reference.starts_with("categories: "));
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::path::PathBuf;

mod attributes;
mod config;
mod generate;
mod media;
pub mod reference;
mod sampling;
mod text;
pub mod truth;
pub mod users;
mod writer;

pub use attributes::{
    AUDIO_STYLES, AuthorAttributes, AuthorTruth, CATEGORIES, ENERGY, FORMATS, Field, LANGUAGES,
    PRIMARY_CATEGORY_WEIGHT, VISUAL_STYLES, author_id, user_id,
};
pub use config::SyntheticWorldConfig;
pub use generate::{Progress, WorldSummary, generate, generate_with_progress};
pub use reference::{FieldWeights, ParsedReference, parse_reference, render_reference};
pub use text::{TextKeywords, text_keywords};
pub use truth::Truth;
pub use users::{Drift, DriftKind, Importance, UserTruth};

/// Errors of the synthetic world.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A config value is out of range.
    #[error("invalid synthetic world config: `{field}` {reason}")]
    InvalidConfig {
        /// The config field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The underlying error.
        #[source]
        source: std::io::Error,
        /// The file or directory.
        path: PathBuf,
    },
    /// A config or truth file is malformed.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Encoding a media file failed.
    #[error("{}: encoding failed: {message}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A reference text does not follow the grammar.
    #[error("invalid reference text: {0}")]
    Reference(String),
}
