//! Crash-safe file output: every whole file the project writes goes through
//! [`write_atomic`], so a process killed at any moment leaves either the old file or the
//! new one under the real name, never a half-written one.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Tells apart the temporary files of concurrent writes within one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` through a hidden temporary file in the same folder
/// (`.NAME.tmp-PID-N`, unique per process and call, so threads writing the same path do
/// not share one; the folder and its parents are created when missing) and a rename over
/// `path`. On an error the temporary file is removed and `path` is left as it was. The
/// data is not flushed to the disk (a killed process cannot tear the file; a power cut
/// right after the rename may).
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
    let tmp = sibling(path, "tmp");
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A hidden sibling of `path` for a temporary or backup copy:
/// `.NAME.{kind}-PID-N`, unique per process and call.
pub fn sibling(path: &Path, kind: &str) -> std::path::PathBuf {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    dir.join(format!(
        ".{name}.{kind}-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Puts the complete folder `tmp` in the place of `dir` (a multi-file checkpoint): the
/// old `dir`, if any, is first renamed to a hidden `.NAME.old-*` sibling, then `tmp` is
/// renamed to `dir`, then the old copy is removed. A process killed between the two
/// renames leaves no `dir` but the whole old copy, which [`recover_dir`] puts back; at
/// every other moment `dir` is the old folder or the new one, never a mix.
pub fn replace_dir(tmp: &Path, dir: &Path) -> std::io::Result<()> {
    let old = sibling(dir, "old");
    let had_old = dir.exists();
    if had_old {
        std::fs::rename(dir, &old)?;
    }
    if let Err(e) = std::fs::rename(tmp, dir) {
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        return Err(e);
    }
    if had_old {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Before reading the folder `dir`: when a writer was killed inside [`replace_dir`]
/// (no `dir`, but a hidden `.NAME.old-*` sibling), renames the newest such copy back to
/// `dir`. Does nothing when `dir` exists or no copy is left.
pub fn recover_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Ok(());
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let prefix = format!(".{}.old-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Ok(());
    };
    let newest = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max();
    match newest {
        Some((_, old)) => std::fs::rename(old, dir),
        None => Ok(()),
    }
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

    #[test]
    fn folders_are_replaced_whole_and_recovered_after_a_kill_between_renames() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ckpt");
        for version in ["v1", "v2"] {
            let tmp = sibling(&dir, "tmp");
            std::fs::create_dir_all(&tmp).unwrap();
            std::fs::write(tmp.join("state"), version).unwrap();
            replace_dir(&tmp, &dir).unwrap();
            assert_eq!(
                std::fs::read(dir.join("state")).unwrap(),
                version.as_bytes()
            );
        }
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
        // A writer killed after moving the old folder aside: it comes back.
        let old = sibling(&dir, "old");
        std::fs::rename(&dir, &old).unwrap();
        recover_dir(&dir).unwrap();
        assert_eq!(std::fs::read(dir.join("state")).unwrap(), b"v2");
        recover_dir(&dir).unwrap();
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
