//! Atomic, streaming file output.
//!
//! Every file is written to a hidden temporary name in its destination directory
//! (`.NAME.tmp`) and renamed over `NAME` only once complete, so a crash never leaves a
//! half-written file under the real name. An unfinished [`AtomicFile`] removes its
//! temporary file when dropped.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::SynthError;

/// A file being written under a temporary name, renamed into place by [`Self::commit`].
pub(crate) struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl AtomicFile {
    /// Starts writing `dest` (its directory must exist).
    pub(crate) fn create(dest: &Path) -> Result<Self, SynthError> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".to_string());
        let tmp = dest.with_file_name(format!(".{name}.tmp"));
        let file = File::create(&tmp).map_err(io_err(dest))?;
        Ok(Self {
            dest: dest.to_path_buf(),
            tmp,
            writer: Some(BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// Appends bytes.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), SynthError> {
        let w = self.writer.as_mut().expect("writer present until commit");
        w.write_all(bytes).map_err(io_err(&self.dest))
    }

    /// Flushes and renames the file into place.
    pub(crate) fn commit(mut self) -> Result<(), SynthError> {
        let w = self.writer.take().expect("writer present until commit");
        let file = w.into_inner().map_err(|e| SynthError::Io {
            path: self.dest.clone(),
            source: e.into_error(),
        })?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(io_err(&self.dest))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a whole file atomically ([`crate::fs::write_atomic`]).
pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    crate::fs::write_atomic(dest, bytes).map_err(io_err(dest))
}

/// Creates a directory and its parents.
pub(crate) fn create_dir(path: &Path) -> Result<(), SynthError> {
    std::fs::create_dir_all(path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synth_atomic_file_appears_only_on_commit() {
        let dir = std::env::temp_dir().join(format!("mspa-synth-atomic-{}", std::process::id()));
        create_dir(&dir).unwrap();
        let dest = dir.join("x.txt");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write(b"half").unwrap();
            assert!(!dest.exists());
        }
        assert!(!dest.exists());
        assert!(!dir.join(".x.txt.tmp").exists());
        write_atomic(&dest, b"whole").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
        std::fs::remove_dir_all(&dir).ok();
    }
}
