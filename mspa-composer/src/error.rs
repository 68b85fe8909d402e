//! The error type of `mspa-composer`.
//!
//! One enum for the whole crate; every variant says what went wrong and where (the byte
//! offset in a preference text, the config field, the file). New variants are added as
//! the crate grows (the enum is `#[non_exhaustive]`, so matching code keeps a `_` arm).

use std::path::{Path, PathBuf};

/// Errors of the composer crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComposerError {
    /// A preference text (or token sequence) does not follow the schema's grammar.
    #[error("preference text, byte {position}: {message}")]
    Parse {
        /// Byte offset into the text where the problem starts (for token sequences: the
        /// token index).
        position: usize,
        /// What is wrong there.
        message: String,
    },
    /// A configuration value (schema, lexicon, composer config) is invalid.
    #[error("invalid config `{field}`: {message}")]
    Config {
        /// The config field (a dotted path such as `fields[2].values`).
        field: String,
        /// Why it is invalid.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (schema, lexicon, config) is malformed.
    #[error("{}: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde_json reported (with line and column).
        message: String,
    },
    /// A media or text model of `mspa-modal` failed (e.g. the MiniLM text encoder).
    #[error(transparent)]
    Modal(#[from] mspa_modal::ModalError),
    /// A metric of `mspa-metrics` failed (BLEU, ROUGE, BERTScore).
    #[error("metric: {0}")]
    Metrics(#[from] mspa_metrics::MetricsError),
    /// The data handed to the composer is inconsistent (unknown user, mismatched lengths,
    /// no training pairs, ...).
    #[error("data: {message}")]
    Data {
        /// What is inconsistent.
        message: String,
    },
    /// Loading or indexing a dataset failed.
    #[error(transparent)]
    Core(#[from] mspa_core::CoreError),
    /// A model checkpoint could not be written or read (a missing or mismatched file, a
    /// wrong format, parameters of other shapes).
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A request to an HTTP service (the chat-completions server of the `llm-http`
    /// composer) failed: connection refused, timed out, an error status, or an answer
    /// that is not a chat completion.
    #[error("POST {url} failed after {attempts} attempt(s): {message}")]
    Http {
        /// The URL requested.
        url: String,
        /// The HTTP status of the last attempt (`None`: no response, e.g. a timeout or a
        /// refused connection).
        status: Option<u16>,
        /// How many requests were sent (1 + retries).
        attempts: u32,
        /// What went wrong on the last attempt (with the server's error message, if any).
        message: String,
    },
}

impl ComposerError {
    /// A [`ComposerError::Parse`] at `position`.
    pub fn parse(position: usize, message: impl Into<String>) -> Self {
        ComposerError::Parse {
            position,
            message: message.into(),
        }
    }

    /// A [`ComposerError::Config`] for `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        ComposerError::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A [`ComposerError::Data`].
    pub fn data(message: impl Into<String>) -> Self {
        ComposerError::Data {
            message: message.into(),
        }
    }
}

/// Result with [`ComposerError`].
pub type Result<T> = std::result::Result<T, ComposerError>;

/// Errors with a [`ComposerError::Config`] naming the first of `fields` (name, count)
/// whose count is 0.
pub(crate) fn check_at_least_one(fields: &[(&str, usize)]) -> Result<()> {
    match fields.iter().find(|&&(_, count)| count == 0) {
        Some(&(field, _)) => Err(ComposerError::config(field, "must be at least 1")),
        None => Ok(()),
    }
}

/// Reads a JSON file (a schema, a lexicon, a config) into `T`: an unreadable file is a
/// [`ComposerError::Io`], malformed JSON a [`ComposerError::Json`], both naming the file.
pub(crate) fn read_json_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| ComposerError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ComposerError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
