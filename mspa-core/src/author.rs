//! Authors (streamers) and their media references.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ids::ExternalId;

/// A streamer: who they are, what their streams say about themselves, and where their
/// media lie. Media paths are relative to the dataset root and never leave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Author {
    /// The id in the source data.
    pub id: ExternalId,
    /// Display name (may be empty).
    pub name: String,
    /// Stream title (may be empty).
    pub title: String,
    /// Stream or channel description (may be empty).
    pub description: String,
    /// Frame images, relative to the dataset root.
    pub frames: Vec<PathBuf>,
    /// Audio clip, relative to the dataset root.
    pub audio: Option<PathBuf>,
}

impl Author {
    /// An author known only by id: no text, no media (as in interaction-only datasets).
    pub fn bare(id: ExternalId) -> Self {
        Author {
            name: id.to_string(),
            id,
            title: String::new(),
            description: String::new(),
            frames: Vec::new(),
            audio: None,
        }
    }

    /// Title and description joined by a blank line, the text the encoders read.
    pub fn text(&self) -> String {
        match (self.title.is_empty(), self.description.is_empty()) {
            (false, false) => format!("{}\n\n{}", self.title, self.description),
            (false, true) => self.title.clone(),
            (true, false) => self.description.clone(),
            (true, true) => String::new(),
        }
    }
}

/// Checks that a media path is relative and stays inside the dataset root.
///
/// `.` components are dropped; `..`, absolute paths, drive prefixes and empty paths are
/// refused with a message saying why.
///
/// ```
/// use mspa_core::author::check_media_path;
/// assert!(check_media_path("media/a1/frame0.png").is_ok());
/// assert!(check_media_path("../secrets.png").is_err());
/// assert!(check_media_path("/etc/passwd").is_err());
/// ```
pub fn check_media_path(raw: &str) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("empty path".into());
    }
    let mut clean = PathBuf::new();
    for comp in Path::new(raw).components() {
        match comp {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("`{raw}` uses `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{raw}` is absolute"));
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(format!("`{raw}` names no file"));
    }
    Ok(clean)
}
