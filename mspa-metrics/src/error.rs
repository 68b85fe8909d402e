//! The crate's error type.

use thiserror::Error;

/// Everything that can go wrong when computing a metric.
///
/// User data never panics this crate: bad lengths, NaN scores, out-of-range items and
/// failing embedders all come back as one of these variants.
#[derive(Debug, Error)]
pub enum MetricsError {
    /// No cut-off `K` was given.
    #[error("no cut-off K given: pass at least one K")]
    NoCutoffs,

    /// A cut-off `K` of zero was given.
    #[error("cut-off K must be at least 1, got 0")]
    ZeroCutoff,

    /// Two inputs that must be parallel have different lengths.
    #[error("{what}: expected {expected} entries, got {got}")]
    LengthMismatch {
        /// What was being compared (e.g. "references per hypothesis").
        what: &'static str,
        /// The length the other input implies.
        expected: usize,
        /// The length found.
        got: usize,
    },

    /// A score was NaN while ranking a user's candidates.
    #[error("NaN score for user {user}, item {item}")]
    NanScore {
        /// The user whose scores hold the NaN.
        user: u64,
        /// The item index with the NaN score.
        item: usize,
    },

    /// A score was NaN in a stand-alone top-K selection.
    #[error("NaN score for item {item}")]
    NanScoreItem {
        /// The item index with the NaN score.
        item: usize,
    },

    /// A target or excluded item index is not below the number of items.
    #[error("user {user}: item {item} is out of range (there are {num_items} items)")]
    ItemOutOfRange {
        /// The user whose targets or training items hold the index.
        user: u64,
        /// The offending item index.
        item: usize,
        /// The number of items being ranked.
        num_items: usize,
    },

    /// An item index is not below the length of the score slice.
    #[error("item {item} is out of range (there are {num_items} scores)")]
    IndexOutOfRange {
        /// The offending item index.
        item: usize,
        /// The number of scores.
        num_items: usize,
    },

    /// A user's row of precomputed scores has the wrong length.
    #[error("user {user}: score row has {got} entries, expected {expected} (one per item)")]
    ScoreRowLength {
        /// The user whose row is wrong.
        user: u64,
        /// The number of items.
        expected: usize,
        /// The row length found.
        got: usize,
    },

    /// The scoring closure of the evaluator failed for a user.
    #[error("scoring user {user} failed: {source}")]
    Scorer {
        /// The user being scored.
        user: u64,
        /// The closure's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// A segment has no reference text.
    #[error("segment {segment} has no reference")]
    NoReference {
        /// Zero-based index of the segment.
        segment: usize,
    },

    /// An n-gram order of zero was requested.
    #[error("n-gram order must be at least 1, got 0")]
    ZeroNgramOrder,

    /// A `TokenEmbeddings` value is inconsistent.
    #[error("bad token embeddings: {0}")]
    BadEmbeddings(String),

    /// The embedder returned the wrong number of results.
    #[error("embedder returned {got} results for {expected} texts")]
    EmbedderCount {
        /// Number of texts passed.
        expected: usize,
        /// Number of results returned.
        got: usize,
    },

    /// The embedder itself failed.
    #[error("token embedder failed: {0}")]
    Embedder(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    /// Input to a statistical procedure is out of its domain (the message says which).
    #[error("{0}")]
    InvalidInput(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = MetricsError> = std::result::Result<T, E>;

/// `Ok` if `ok`, else the error `err` builds (only on failure).
pub(crate) fn require(ok: bool, err: impl FnOnce() -> MetricsError) -> Result<()> {
    if ok { Ok(()) } else { Err(err()) }
}

/// `LengthMismatch` unless there is one reference set per hypothesis.
pub(crate) fn check_reference_sets(hypotheses: usize, reference_sets: usize) -> Result<()> {
    if hypotheses != reference_sets {
        return Err(MetricsError::LengthMismatch {
            what: "reference sets (one per hypothesis)",
            expected: hypotheses,
            got: reference_sets,
        });
    }
    Ok(())
}

/// `NoReference` naming the first segment whose reference set is empty.
pub(crate) fn check_no_empty_set<R: AsRef<[S]>, S>(references: &[R]) -> Result<()> {
    match references.iter().position(|r| r.as_ref().is_empty()) {
        Some(segment) => Err(MetricsError::NoReference { segment }),
        None => Ok(()),
    }
}
