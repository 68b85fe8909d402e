//! The answer cache of the HTTP composer: one small JSON file per request, named by the
//! BLAKE3 hash of the endpoint, the model and the exact request body (never the API
//! key), written atomically (`mspa_core::fs::write_atomic`: a unique temporary file, then a
//! rename), so that a rerun
//! sends no request for a history already answered and a stopped job resumes where it
//! ended.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format tag in every entry and in the key (a new format changes every key).
const FORMAT: &str = "mspa-llm-http-cache/1";

/// One entry on disk.
#[derive(Serialize, Deserialize)]
struct Entry {
    format: String,
    endpoint: String,
    model: String,
    /// The answer text (`choices[0].message.content`).
    content: String,
}

/// A directory of cached answers.
#[derive(Debug)]
pub(super) struct AnswerCache {
    dir: PathBuf,
    /// Entries larger than this are ignored (a damaged or foreign file).
    max_bytes: u64,
}

impl AnswerCache {
    /// Opens (creates) the directory.
    pub(super) fn open(dir: &Path, max_bytes: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(AnswerCache {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes as u64,
        })
    }

    /// The key of one request: 64 hex digits.
    pub(super) fn key(endpoint: &str, model: &str, body: &[u8]) -> String {
        let mut h = blake3::Hasher::new();
        for part in [FORMAT.as_bytes(), endpoint.as_bytes(), model.as_bytes()] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(&(body.len() as u64).to_le_bytes());
        h.update(body);
        h.finalize().to_hex().to_string()
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The cached answer of `key`, if there is a readable entry for the same endpoint and
    /// model.
    pub(super) fn get(&self, key: &str, endpoint: &str, model: &str) -> Option<String> {
        let path = self.path(key);
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > self.max_bytes {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        (e.format == FORMAT && e.endpoint == endpoint && e.model == model).then_some(e.content)
    }

    /// Stores the answer of `key` (atomically: readers see the old entry or the whole
    /// new one).
    pub(super) fn put(
        &self,
        key: &str,
        endpoint: &str,
        model: &str,
        content: &str,
    ) -> std::io::Result<()> {
        let entry = Entry {
            format: FORMAT.into(),
            endpoint: endpoint.into(),
            model: model.into(),
            content: content.into(),
        };
        let bytes = serde_json::to_vec_pretty(&entry).map_err(std::io::Error::other)?;
        let path = self.path(key);
        // A lost entry (a power cut right after the rename) only costs a new request.
        mspa_core::fs::write_atomic(&path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_endpoint_model_and_body() {
        let k = AnswerCache::key("http://a/v1/chat/completions", "m", b"{}");
        assert_eq!(k.len(), 64);
        assert_eq!(
            k,
            AnswerCache::key("http://a/v1/chat/completions", "m", b"{}")
        );
        assert_ne!(
            k,
            AnswerCache::key("http://b/v1/chat/completions", "m", b"{}")
        );
        assert_ne!(
            k,
            AnswerCache::key("http://a/v1/chat/completions", "n", b"{}")
        );
        assert_ne!(
            k,
            AnswerCache::key("http://a/v1/chat/completions", "m", b"{ }")
        );
        // Length prefixes: moving a byte between parts changes the key.
        assert_ne!(
            AnswerCache::key("ab", "c", b""),
            AnswerCache::key("a", "bc", b"")
        );
    }

    #[test]
    fn entries_round_trip_and_damaged_ones_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AnswerCache::open(&dir.path().join("c"), 1 << 20).unwrap();
        let key = AnswerCache::key("e", "m", b"body");
        assert_eq!(cache.get(&key, "e", "m"), None);
        cache.put(&key, "e", "m", "{\"a\": 1}").unwrap();
        assert_eq!(cache.get(&key, "e", "m").as_deref(), Some("{\"a\": 1}"));
        assert_eq!(cache.get(&key, "e", "other"), None);
        std::fs::write(cache.path(&key), b"{truncated").unwrap();
        assert_eq!(cache.get(&key, "e", "m"), None);
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(&cache.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
