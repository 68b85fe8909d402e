//! Crash-safe file output: every whole file the project writes goes through
//! [`write_atomic`], so a process killed at any moment leaves either the old file or the
//! new one under the real name, never a half-written one.

use std::path::Path;

/// Writes `bytes` to `path` through a hidden temporary file in the same folder
/// (`.NAME.tmp-PID`, created with the folder and its parents when missing) and a rename
/// over `path`. On an error the temporary file is removed and `path` is left as it was.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out/report.json");
/// mspa_core::fs::write_atomic(&path, b"{}").unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"{}");
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("x.txt");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.txt"]);
        // A destination that is a folder fails, and the temporary file is gone.
        let folder = dir.path().join("a").join("sub");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("keep"), b"k").unwrap();
        assert!(write_atomic(&folder, b"no").is_err());
        assert_eq!(std::fs::read_dir(dir.path().join("a")).unwrap().count(), 2);
    }
}
