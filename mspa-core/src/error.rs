//! The error type of `mspa-core`.

use std::fmt;
use std::path::PathBuf;

/// What is wrong with a piece of user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataErrorKind {
    /// The row or line does not have the expected shape (columns, JSON, header).
    Malformed,
    /// A field that must be present is missing or empty.
    Missing,
    /// A value could not be parsed as the type the field needs.
    BadValue,
    /// An amount that is negative, NaN or infinite.
    InvalidAmount,
    /// A timestamp that is not an integer number of milliseconds in range.
    InvalidTimestamp,
    /// An event refers to an author the dataset does not define.
    UnknownAuthor,
    /// Two authors share one id.
    DuplicateAuthor,
    /// A media path that is absolute or leaves the dataset root with `..`.
    PathEscape,
    /// A line, field or list longer than its limit (see [`crate::loaders::limits`]).
    TooLarge,
}

impl fmt::Display for DataErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DataErrorKind::Malformed => "malformed",
            DataErrorKind::Missing => "missing value",
            DataErrorKind::BadValue => "bad value",
            DataErrorKind::InvalidAmount => "invalid amount",
            DataErrorKind::InvalidTimestamp => "invalid timestamp",
            DataErrorKind::UnknownAuthor => "unknown author",
            DataErrorKind::DuplicateAuthor => "duplicate author",
            DataErrorKind::PathEscape => "path escapes the dataset root",
            DataErrorKind::TooLarge => "limit exceeded",
        };
        f.write_str(s)
    }
}

/// Characters of an offending value that error messages quote; longer values are cut
/// (see [`excerpt`]), so that a 64 MB field does not become a 64 MB message.
pub const MAX_QUOTED_CHARS: usize = 64;

/// A value as error messages quote it: whole when it has at most [`MAX_QUOTED_CHARS`]
/// characters, otherwise its first [`MAX_QUOTED_CHARS`] characters, `…` and its length.
///
/// ```
/// use mspa_core::error::excerpt;
/// assert_eq!(excerpt("12.5"), "12.5");
/// let long = "x".repeat(1000);
/// assert_eq!(excerpt(&long), format!("{}…(1000 bytes)", "x".repeat(64)));
/// ```
pub fn excerpt(value: &str) -> String {
    match value.char_indices().nth(MAX_QUOTED_CHARS) {
        None => value.to_string(),
        Some((cut, _)) => format!("{}…({} bytes)", &value[..cut], value.len()),
    }
}

/// Errors of `mspa-core`. Every error about a file names the file, and where it can, the
/// line (1-based, counting the header) and the field.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line of a data file is wrong.
    #[error("{}:{line}: {}{kind}: {message}", file.display(), field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
    Data {
        /// The file.
        file: PathBuf,
        /// The 1-based line number.
        line: u64,
        /// The field (column or JSON key), when one is to blame.
        field: Option<String>,
        /// What kind of problem.
        kind: DataErrorKind,
        /// The details, with the offending value.
        message: String,
    },
    /// A media path of an author that leaves the dataset root: absolute, with `..`, or a
    /// symbolic link (anywhere on the way) to a file outside the root.
    #[error("author `{author}`: media path `{}` {reason}; media must stay inside the dataset root", path.display())]
    MediaPath {
        /// External id of the author.
        author: String,
        /// The path as the dataset gives it (relative to the root).
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// An argument given to a function is out of its domain (a split fraction above 1,
    /// a user index past the end, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Every author is a positive of this user, so no negative can be drawn.
    #[error("user {user} has tipped every author: no negative to sample")]
    NoNegatives {
        /// The dense user index.
        user: u32,
    },
}

impl CoreError {
    /// Builds a [`CoreError::Data`].
    pub fn data(
        file: impl Into<PathBuf>,
        line: u64,
        field: Option<&str>,
        kind: DataErrorKind,
        message: impl Into<String>,
    ) -> Self {
        CoreError::Data {
            file: file.into(),
            line,
            field: field.map(str::to_string),
            kind,
            message: message.into(),
        }
    }

    /// Builds a [`CoreError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// The data-error kind, if this is a [`CoreError::Data`].
    pub fn kind(&self) -> Option<DataErrorKind> {
        match self {
            CoreError::Data { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The line number, if this is a [`CoreError::Data`].
    pub fn line(&self) -> Option<u64> {
        match self {
            CoreError::Data { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Result with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
