//! The error type of `mspa-align`.

use std::path::PathBuf;

/// Errors of the alignment crate. User data never panics: bad hyper-parameters, data that
/// does not fit the model, diverging training and unreadable checkpoints all come back as
/// one of these variants.
#[derive(Debug, thiserror::Error)]
pub enum AlignError {
    /// A hyper-parameter or argument is out of its domain.
    #[error("invalid config field `{field}`: {message}")]
    Config {
        /// The field (or argument) at fault.
        field: String,
        /// Why it is invalid.
        message: String,
    },
    /// The data given to a model does not fit it (no training examples, a feature table of
    /// the wrong length, a user the model cannot score, ...).
    #[error("data: {message}")]
    Data {
        /// What is wrong.
        message: String,
    },
    /// The training loss (or the gradient norm) became NaN or infinite.
    #[error(
        "training diverged: non-finite value {value} at epoch {epoch}, batch {batch}; lower the learning rate or enable gradient clipping"
    )]
    NonFinite {
        /// The 0-based epoch.
        epoch: usize,
        /// The 0-based batch within the epoch.
        batch: usize,
        /// The offending value.
        value: f64,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint could not be written, read or does not belong to this run.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A ranking metric failed (NaN score, out-of-range item, ...).
    #[error(transparent)]
    Metrics(#[from] mspa_metrics::MetricsError),
    /// An error of the data layer.
    #[error(transparent)]
    Core(#[from] mspa_core::CoreError),
    /// An error of the media / feature layer.
    #[error(transparent)]
    Modal(#[from] mspa_modal::ModalError),
}

impl AlignError {
    /// Builds an [`AlignError::Config`].
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        AlignError::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Builds an [`AlignError::Data`].
    pub fn data(message: impl Into<String>) -> Self {
        AlignError::Data {
            message: message.into(),
        }
    }

    /// Builds an [`AlignError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AlignError::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds an [`AlignError::Checkpoint`].
    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        AlignError::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result with [`AlignError`] (the second parameter lets macros such as Burn's
/// `#[derive(Config)]`, which name `Result<T, E>`, expand inside this crate).
pub type Result<T, E = AlignError> = std::result::Result<T, E>;

/// The range checks of the config `validate` methods; each failure is an
/// [`AlignError::Config`] naming `field`.
pub(crate) mod check {
    use super::{AlignError, Result};

    /// `Ok` if `ok`, else the config error of `field` with `message()`.
    fn require(ok: bool, field: &str, message: impl FnOnce() -> String) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(AlignError::config(field, message()))
        }
    }

    /// `value >= 1`.
    pub fn at_least_one(field: &str, value: usize) -> Result<()> {
        require(value >= 1, field, || "must be at least 1".into())
    }

    /// Every one of `values` `>= 1` (sizes checked together, such as two layer widths);
    /// the error names `field` and says that `what` must be at least 1.
    pub fn all_at_least_one(field: &str, what: &str, values: &[usize]) -> Result<()> {
        require(values.iter().all(|&v| v >= 1), field, || {
            format!("{what} must be at least 1")
        })
    }

    /// `value` finite and `>= 0`.
    pub fn non_negative(field: &str, value: f64) -> Result<()> {
        require(value.is_finite() && value >= 0.0, field, || {
            format!("must be finite and >= 0, got {value}")
        })
    }

    /// `value` finite and `> 0`.
    pub fn positive(field: &str, value: f64) -> Result<()> {
        require(value.is_finite() && value > 0.0, field, || {
            format!("must be finite and > 0, got {value}")
        })
    }

    /// `value` in `[0, 1)` (a dropout rate, a share of edges dropped).
    pub fn below_one(field: &str, value: f64) -> Result<()> {
        require((0.0..1.0).contains(&value), field, || {
            format!("must be in [0, 1), got {value}")
        })
    }

    /// `value` in `[0, 1]`.
    pub fn fraction(field: &str, value: f64) -> Result<()> {
        require((0.0..=1.0).contains(&value), field, || {
            format!("must be in [0, 1], got {value}")
        })
    }

    /// The standard deviation `init_std` of initial id embeddings that the graph models
    /// train: finite and `> 0`.
    pub fn embedding_std(value: f64) -> Result<()> {
        require(value.is_finite() && value > 0.0, "init_std", || {
            format!("must be finite and > 0 (zero embeddings get no gradient), got {value}")
        })
    }
}
