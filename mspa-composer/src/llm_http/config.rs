//! [`LlmHttpConfig`]: the settings of the HTTP composer (server, retries, request
//! contents, repair), readable from JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ComposerError, Result, check_at_least_one};

/// The default first paragraph of the system prompt.
pub const DEFAULT_INSTRUCTIONS: &str = "You infer a live-stream viewer's preferences from \
their tipping history: the streamers they tipped (stream titles, descriptions and frames), \
how often, how much and how recently. Weigh streamers by the number and size of tips and \
by recency.";

/// The default environment variable of the API key ([`LlmHttpConfig::api_key_env`]).
pub const DEFAULT_API_KEY_ENV: &str = "MSPA_LLM_API_KEY";

/// Settings of the [`LlmHttpComposer`](super::LlmHttpComposer) (JSON: every field optional).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmHttpConfig {
    /// The server's OpenAI-compatible base URL, `http[s]://host[:port][/path]` (default
    /// `http://127.0.0.1:8000/v1`, vLLM's default). `/chat/completions` is appended
    /// unless the path already ends with it.
    pub base_url: String,
    /// The model name sent in every request (default `Qwen/Qwen2.5-VL-7B-Instruct`).
    pub model: String,
    /// Sent as `Authorization: Bearer <api_key>` when set (default none); takes
    /// precedence over [`api_key_env`](Self::api_key_env). Never serialised (a config
    /// written to JSON or into a report does not hold it), never printed by `Debug`, and
    /// removed from error messages. Prefer `api_key_env`. (The crate logs nothing; an
    /// application that turns on `trace` logging for `ureq` sees raw request bytes.)
    #[serde(skip_serializing)]
    pub api_key: Option<String>,
    /// The environment variable the API key is read from when `api_key` is not set
    /// (default `MSPA_LLM_API_KEY`; `None` or an unset or empty variable: no key). Read
    /// once, when the composer is built.
    pub api_key_env: Option<String>,
    /// A PEM file of the root certificates that `https` servers are verified against
    /// *instead of* the built-in Mozilla roots (a private CA, a self-signed server
    /// certificate's issuer). Default none: Mozilla's roots. Verification is never
    /// turned off.
    pub ca_cert_pem: Option<PathBuf>,
    /// A directory of cached answers (default none: no cache). Every answer that held a
    /// JSON object is stored under the BLAKE3 hash of the endpoint, the model and the
    /// exact request body (not the API key); a later request with the same hash is
    /// answered from the file without contacting the server, so a rerun costs nothing
    /// and a stopped job resumes. Change anything in the request (model, prompt,
    /// history, frames, temperature, seed) and the hash changes.
    pub cache_dir: Option<PathBuf>,
    /// Seconds one attempt may take: resolving, connecting, the TLS handshake, sending and
    /// receiving the whole answer (default 120).
    pub timeout_s: f64,
    /// Retries after a failed attempt (connection error, timeout, 408, 429, 5xx, an
    /// answer without a JSON object); default 3.
    pub max_retries: u32,
    /// Backoff before retry `k` (from 0): `backoff_base_s * 2^k` seconds (default 1).
    pub backoff_base_s: f64,
    /// The longest wait between attempts, for the backoff and for the server's
    /// `Retry-After` (default 30).
    pub max_backoff_s: f64,
    /// At most this many authors of the history are described, the most tipped first
    /// (default 10).
    pub max_authors: usize,
    /// At most this many frames per request (default 4; 0 sends text only).
    pub max_frames: usize,
    /// At most this many frames of one author (default 1).
    pub frames_per_author: usize,
    /// Frame files larger than this many bytes are skipped (default 4 MiB).
    pub max_frame_bytes: usize,
    /// Titles and descriptions are cut to this many characters (default 400).
    pub max_text_chars: usize,
    /// Sampling temperature (default 0).
    pub temperature: f64,
    /// `max_tokens` of the request (default 512; `None` leaves it to the server).
    pub max_tokens: Option<u32>,
    /// `seed` of the request, for servers that sample reproducibly (default 0).
    pub seed: Option<u64>,
    /// The first paragraph of the system prompt (the field descriptions follow it).
    pub instructions: String,
    /// Field name -> the values that fill the field when the answer lacks it (a list:
    /// 1 to `max` allowed values; a tuple: one per slot). Fields not named here fall back
    /// to their first allowed value (per slot). Default empty.
    pub fallback: BTreeMap<String, Vec<String>>,
    /// The largest edit distance (insertions, deletions, substitutions, transpositions)
    /// at which a value is matched to an allowed value (default 2; also at most a third of
    /// the shorter word's length).
    pub max_edit_distance: usize,
    /// At most this many supporting tips per value in the evidence (default 5).
    pub max_evidence: usize,
    /// Requests in flight at once in [`Composer::compose_batch`](crate::composer::Composer::compose_batch) (default 4).
    pub concurrency: usize,
    /// Answers larger than this many bytes are refused (default 8 MiB).
    pub max_response_bytes: usize,
}

impl Default for LlmHttpConfig {
    fn default() -> Self {
        LlmHttpConfig {
            base_url: "http://127.0.0.1:8000/v1".into(),
            model: "Qwen/Qwen2.5-VL-7B-Instruct".into(),
            api_key: None,
            api_key_env: Some(DEFAULT_API_KEY_ENV.into()),
            ca_cert_pem: None,
            cache_dir: None,
            timeout_s: 120.0,
            max_retries: 3,
            backoff_base_s: 1.0,
            max_backoff_s: 30.0,
            max_authors: 10,
            max_frames: 4,
            frames_per_author: 1,
            max_frame_bytes: 4 << 20,
            max_text_chars: 400,
            temperature: 0.0,
            max_tokens: Some(512),
            seed: Some(0),
            instructions: DEFAULT_INSTRUCTIONS.into(),
            fallback: BTreeMap::new(),
            max_edit_distance: 2,
            max_evidence: 5,
            concurrency: 4,
            max_response_bytes: 8 << 20,
        }
    }
}

impl std::fmt::Debug for LlmHttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmHttpConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_env", &self.api_key_env)
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("cache_dir", &self.cache_dir)
            .field("timeout_s", &self.timeout_s)
            .field("max_retries", &self.max_retries)
            .field("backoff_base_s", &self.backoff_base_s)
            .field("max_backoff_s", &self.max_backoff_s)
            .field("max_authors", &self.max_authors)
            .field("max_frames", &self.max_frames)
            .field("frames_per_author", &self.frames_per_author)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("max_text_chars", &self.max_text_chars)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("seed", &self.seed)
            .field("instructions", &self.instructions)
            .field("fallback", &self.fallback)
            .field("max_edit_distance", &self.max_edit_distance)
            .field("max_evidence", &self.max_evidence)
            .field("concurrency", &self.concurrency)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl LlmHttpConfig {
    /// Reads a config from a JSON file, with errors that name the file.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        crate::error::read_json_file(path.as_ref())
    }
}

impl LlmHttpConfig {
    /// Checks the settings that do not need the schema or the environment: a non-empty
    /// `model` and an `api_key` without control characters, positive `timeout_s`,
    /// non-negative backoff and temperature (each at most 1e6 s), non-zero
    /// `max_authors`, `concurrency` and `max_text_chars`, a `max_response_bytes` of at
    /// least 1 KiB and an `api_key_env` that is a variable name. Each error names its
    /// field.
    pub fn validate(&self) -> Result<()> {
        if self.model.trim().is_empty() {
            return Err(ComposerError::config("model", "must not be empty"));
        }
        if self.model.chars().any(char::is_control) {
            return Err(ComposerError::config(
                "model",
                "contains control characters",
            ));
        }
        if let Some(k) = &self.api_key
            && k.chars().any(char::is_control)
        {
            return Err(ComposerError::config(
                "api_key",
                "contains control characters",
            ));
        }
        positive("timeout_s", self.timeout_s)?;
        non_negative("backoff_base_s", self.backoff_base_s)?;
        non_negative("max_backoff_s", self.max_backoff_s)?;
        non_negative("temperature", self.temperature)?;
        for (field, x) in [
            ("timeout_s", self.timeout_s),
            ("backoff_base_s", self.backoff_base_s),
            ("max_backoff_s", self.max_backoff_s),
        ] {
            if x > 1e6 {
                return Err(ComposerError::config(
                    field,
                    format!("must be at most 1e6 s, got {x}"),
                ));
            }
        }
        check_at_least_one(&[
            ("max_authors", self.max_authors),
            ("concurrency", self.concurrency),
            ("max_text_chars", self.max_text_chars),
        ])?;
        if self.max_response_bytes < 1024 {
            return Err(ComposerError::config(
                "max_response_bytes",
                format!("must be at least 1024, got {}", self.max_response_bytes),
            ));
        }
        if let Some(name) = &self.api_key_env
            && (name.is_empty() || name.contains(['=', '\0']))
        {
            return Err(ComposerError::config(
                "api_key_env",
                format!("`{name}` is not an environment variable name"),
            ));
        }
        Ok(())
    }
}

fn positive(field: &str, x: f64) -> Result<()> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(ComposerError::config(
            field,
            format!("must be positive, got {x}"),
        ))
    }
}

fn non_negative(field: &str, x: f64) -> Result<()> {
    if x.is_finite() && x >= 0.0 {
        Ok(())
    } else {
        Err(ComposerError::config(
            field,
            format!("must be finite and >= 0, got {x}"),
        ))
    }
}
