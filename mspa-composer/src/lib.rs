//! `mspa-composer`: turns a user's tipping history into a structured preference text
//! and a preference embedding (the first stage of MSPA).
//!
//! The main entry points are a [`schema::PreferenceSchema`] (what a preference text looks
//! like) and a [`composer::Composer`] (which writes one from a history): the
//! [`template::TemplateComposer`] baseline, the [`learned::LearnedComposer`], or, with
//! the `llm-http` feature, a composer backed by a chat-completions server.
//!
//! ```
//! use mspa_composer::schema::{FieldSpec, PreferenceFields, PreferenceSchema};
//!
//! let schema = PreferenceSchema::new(vec![
//!     FieldSpec::list("categories", &["music", "dance", "talk"], 2),
//!     FieldSpec::list("energy", &["low", "high"], 1),
//!     FieldSpec::tuple("tipping", &[&["rare", "frequent"], &["modest", "generous"]]),
//! ])
//! .unwrap();
//! let p = PreferenceFields::from_strs(&[&["music", "dance"], &["high"], &["frequent", "generous"]]);
//! let text = schema.render(&p);
//! assert!(text.starts_with("categories: music, dance | energy: high"));
//! assert_eq!(schema.parse(&text).unwrap(), p);
//! ```
//!
//! * [`schema`]: the typed preference ([`schema::PreferenceFields`]), its vocabulary as
//!   configuration, `render`/`parse`, grammar tokens for constrained decoding.
//! * [`composer`]: the [`composer::Composer`] trait and [`composer::Preference`].
//! * [`fit`]: the one fitting shape, [`fit::FitComposer`] (settings in, a composer out):
//!   implement it and `Composer` to add a composer.
//! * [`template`]: the keyword-counting baseline; [`nearest`]: the nearest-user baseline.
//! * [`history`]: the attention history encoder (amount, learned recency decay, repeats,
//!   modality masks).
//! * [`generator`]: the small transformer decoder, training, greedy/beam/constrained
//!   decoding, checkpoints; [`learned`]: the learned composer built on it.
//! * `llm_http` (feature `llm-http`): a composer backed by an OpenAI-compatible
//!   chat-completions server, with schema validation and repair, timeouts and retries.
//! * [`eval`]: BLEU-4, ROUGE-L, BERTScore and per-field P/R/F1 of composed texts.

#![warn(missing_docs)]

pub mod composer;
pub mod error;
pub mod eval;
pub mod fit;
pub mod generator;
pub mod history;
pub mod learned;
#[cfg(feature = "llm-http")]
pub mod llm_http;
pub mod nearest;
pub mod schema;
pub mod template;

pub use error::{ComposerError, Result};
