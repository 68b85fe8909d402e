//! The error type of `mspa-modal`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

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
    /// A media path of an author that leaves the dataset root (`..`, an absolute path, or
    /// a symbolic link to a file outside the root); the file is not opened.
    #[error("author `{author}`: media path `{}` {reason}; media must stay inside the dataset root", path.display())]
    PathEscape {
        /// External id of the author.
        author: String,
        /// The path as the dataset gives it (relative to its root).
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A feature vector holds a value that is not a finite number (NaN or infinite).
    #[error("{origin}: author `{author}`, {modality} features: {message}")]
    NonFinite {
        /// Where the vector came from (the feature store file, or the encoder).
        origin: String,
        /// External id of the author.
        author: String,
        /// The modality (`visual`, `audio`, `text`).
        modality: String,
        /// Where in the vector and what value.
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

/// Runs the decoder `decode` on `path`, turning a panic inside it (hostile input) into a
/// [`ModalError::Decode`] that names the file and the panic message.
pub(crate) fn catch_decoder_panic<T>(path: &Path, decode: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(decode)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        Err(ModalError::decode(
            path,
            format!("decoder panicked: {what}"),
        ))
    })
}

/// Result with [`ModalError`].
pub type Result<T, E = ModalError> = std::result::Result<T, E>;
