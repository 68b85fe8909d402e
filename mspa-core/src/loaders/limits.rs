//! Size limits on loaded data, so that a hostile or broken file fails fast with an error
//! that names the limit, the file and the line, instead of exhausting memory or producing
//! multi-megabyte messages.
//!
//! Every limit is far above what real data needs; a file over one is refused with a
//! [`crate::DataErrorKind::TooLarge`] error naming the constant. Offending values are
//! quoted in messages through [`crate::error::excerpt`] (at most
//! [`crate::error::MAX_QUOTED_CHARS`] characters).

/// Longest line of any loaded text file (CSV or JSON Lines), in bytes without the line
/// break: 1 MiB. A quoted CSV field spanning lines counts the whole row. A longer line is
/// refused before more than this is held in memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Longest `name`, `title` or `description` of an author in `authors.jsonl`, in bytes:
/// 64 KiB (the text encoders read a few hundred tokens).
pub const MAX_TEXT_BYTES: usize = 64 << 10;

/// Most frame paths one author may list in `authors.jsonl`: 4,096 (feature extraction
/// reads only the first few, `ExtractorConfig::max_frames`).
pub const MAX_FRAMES_PER_AUTHOR: usize = 4096;

/// Longest media path in `authors.jsonl`, in bytes: 4,096 (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
