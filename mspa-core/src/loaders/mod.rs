//! Dataset loaders: the native format, Twitch (Rappaz et al. 2021) and KuaiLive (2025).
//!
//! Every loader reads its files line by line, reports progress through a callback, and
//! turns any bad line into a [`crate::CoreError::Data`] that names the file, the line and
//! the field; no row is ever dropped silently. Lines, text fields and frame lists are
//! bounded by the [`limits`].

mod fields;
pub mod kuailive;
pub mod limits;
pub mod native;
pub mod twitch;

pub use fields::LoadProgress;
pub use kuailive::load_kuailive;
pub use native::load_native;
pub use twitch::load_twitch;

use std::str::FromStr;

/// The dataset formats the loaders understand (JSON: `"native"`, `"twitch"`,
/// `"kuailive"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A directory with `authors.jsonl` and `tips.csv` (see [`native`]).
    Native,
    /// The Twitch `100k.csv` / `full_a.csv` release (see [`twitch`]).
    Twitch,
    /// A KuaiLive directory with `gift.csv` (see [`kuailive`]).
    KuaiLive,
}

impl FromStr for Format {
    type Err = crate::CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "native" => Ok(Format::Native),
            "twitch" => Ok(Format::Twitch),
            "kuailive" => Ok(Format::KuaiLive),
            other => Err(crate::CoreError::InvalidArgument(format!(
                "unknown format `{}`: expected native, twitch or kuailive",
                crate::error::excerpt(other)
            ))),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Native => "native",
            Format::Twitch => "twitch",
            Format::KuaiLive => "kuailive",
        })
    }
}

/// Loads a dataset of the given format from `path` (a directory for native and KuaiLive,
/// a CSV file for Twitch), reporting progress.
pub fn load(
    format: Format,
    path: &std::path::Path,
    progress: &mut dyn FnMut(LoadProgress),
) -> crate::Result<crate::Dataset> {
    match format {
        Format::Native => fields::load_dir(path, &native::FILES, progress),
        Format::Twitch => twitch::read(path, progress),
        Format::KuaiLive => fields::load_dir(path, &kuailive::FILES, progress),
    }
}
