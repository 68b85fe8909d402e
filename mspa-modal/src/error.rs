//! The error type of `mspa-modal`.

use std::path::PathBuf;

/// Errors of `mspa-modal`. Errors about a file name the file and the cause.
#[derive(Debug, thiserror::Error)]
pub enum ModalError {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A media file could not be decoded (unknown format, truncated, garbage).
    #[error("{}: cannot decode: {message}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A configuration value is out of its domain.
    #[error("invalid config field `{field}`: {message}")]
    Config {
        /// The field.
        field: String,
        /// Why it is invalid.
        message: String,
    },
    /// Pretrained weights or their config could not be loaded.
    #[error("{}: cannot load weights: {message}", path.display())]
    Weights {
        /// The weights (or config) file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The tokenizer could not be loaded or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A device name could not be resolved.
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
}

impl ModalError {
    /// Builds a [`ModalError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModalError::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds a [`ModalError::Decode`].
    pub fn decode(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ModalError::Decode {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result with [`ModalError`].
pub type Result<T, E = ModalError> = std::result::Result<T, E>;
