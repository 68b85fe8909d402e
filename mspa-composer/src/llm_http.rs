//! A composer backed by an OpenAI-compatible chat-completions server (feature `llm-http`).
//!
//! [`LlmHttpComposer`] sends a user's tipping history to `POST {base_url}/chat/completions`
//! of a server such as vLLM (`vllm serve`), Ollama (`/v1`), llama.cpp's `llama-server` or
//! any other service that speaks the OpenAI chat-completions protocol, and reads the
//! preference from the answer:
//!
//! * **Request.** A system message describes every schema field and its allowed values;
//!   the user message lists the history per author (title, description, number of tips,
//!   total amount, age of the last tip in days), the most tipped authors first (at most
//!   [`LlmHttpConfig::max_authors`]), followed by up to [`LlmHttpConfig::max_frames`]
//!   frames of those authors as `data:image/...;base64,...` `image_url` parts (read from
//!   [`Dataset::media_path`]). `response_format` is
//!   `{"type": "json_schema", "json_schema": {"name": "preference", "schema": ...}}` with
//!   the schema of [`response_json_schema`]: one property per field, an array of `enum`
//!   strings with `maxItems` for a list field, a fixed-length array (`prefixItems`) for a
//!   tuple field.
//! * **Answer.** `choices[0].message.content` is searched for a JSON object (code fences
//!   and text around it are tolerated), which is validated against the schema and
//!   repaired ([`LlmHttpComposer::repair`]): keys and values are matched to the schema
//!   after case and whitespace normalisation, then by unique prefix, then by edit
//!   distance; unknown values, duplicates and values beyond a field's size are dropped; a
//!   missing or empty field (or tuple slot) is filled with the fallback (configurable,
//!   by default the first allowed value). Every repair is reported ([`Repair`],
//!   [`LlmComposition::repairs`], [`LlmHttpComposer::stats`]); the composed
//!   [`Preference::text`] is `schema.render(fields)` and always parses.
//! * **Transport.** A small HTTP/1.1 client on `std::net::TcpStream` (one connection per
//!   request, `Connection: close`; `Content-Length`, chunked and read-to-close bodies;
//!   `Authorization: Bearer` from [`LlmHttpConfig::api_key`]). Every attempt must finish
//!   within [`LlmHttpConfig::timeout_s`] (connect, send and the whole answer). Connection
//!   errors, timeouts, answers without a JSON object, 408, 429 and 5xx are retried up to
//!   [`LlmHttpConfig::max_retries`] times with exponential backoff
//!   (`backoff_base_s * 2^k`), or after the server's `Retry-After` seconds, both capped by
//!   [`LlmHttpConfig::max_backoff_s`]; any other status fails at once with
//!   [`ComposerError::Http`] naming the status and the server's error message.
//!
//! **Plain HTTP only.** There is no TLS: `https://` URLs are refused. vLLM, Ollama and
//! llama.cpp serve plain HTTP by default; to reach an `https` endpoint, run a local
//! TLS-terminating proxy (e.g. `stunnel`, `socat`, nginx) and point `base_url` at it.
//! Host names are resolved with the system resolver (outside the timeout).
//!
//! * **Embedding.** The MiniLM sentence embedding of the text when
//!   [`ComposeContext::text_encoder`] is set, else the schema's multi-hot vector.
//! * **Evidence.** For every value: the tips of authors whose title or description
//!   mentions it (as whole words, case-insensitive), largest amounts first; empty when
//!   none does.
//!
//! ```no_run
//! use mspa_composer::llm_http::{LlmHttpComposer, LlmHttpConfig};
//! use mspa_composer::schema::PreferenceSchema;
//! let config = LlmHttpConfig {
//!     base_url: "http://127.0.0.1:8000/v1".into(),
//!     model: "Qwen/Qwen2.5-VL-7B-Instruct".into(),
//!     ..LlmHttpConfig::default()
//! };
//! let composer = LlmHttpComposer::new(config, PreferenceSchema::synthetic_world()).unwrap();
//! # let _ = composer;
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mspa_core::{AuthorId, Dataset};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::composer::{ComposeContext, Composer, FieldEvidence, HistoryQuery, Preference};
use crate::error::{ComposerError, Result};
use crate::schema::{FieldKind, PreferenceFields, PreferenceSchema};

const DAY_MS: f64 = 86_400_000.0;

/// The default first paragraph of the system prompt.
pub const DEFAULT_INSTRUCTIONS: &str = "You infer a live-stream viewer's preferences from \
their tipping history: the streamers they tipped (stream titles, descriptions and frames), \
how often, how much and how recently. Weigh streamers by the number and size of tips and \
by recency.";

/// Settings of the [`LlmHttpComposer`] (JSON: every field optional).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmHttpConfig {
    /// The server's OpenAI-compatible base URL, `http://host[:port][/path]` (default
    /// `http://127.0.0.1:8000/v1`, vLLM's default). `/chat/completions` is appended
    /// unless the path already ends with it. Plain HTTP only (see the module docs).
    pub base_url: String,
    /// The model name sent in every request (default `Qwen/Qwen2.5-VL-7B-Instruct`).
    pub model: String,
    /// Sent as `Authorization: Bearer <api_key>` when set (default none). Never printed
    /// by `Debug`.
    pub api_key: Option<String>,
    /// Seconds one attempt may take: connecting, sending and receiving the whole answer
    /// (default 120).
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
    /// Requests in flight at once in [`Composer::compose_batch`] (default 4).
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
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ComposerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| ComposerError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Repairs
// ---------------------------------------------------------------------------------------

/// What was changed in an answer to make it fit the schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RepairKind {
    /// The key `from` named the field with other case, spacing or spelling.
    RenamedField {
        /// The key as written.
        from: String,
    },
    /// A key that names no field; ignored ([`Repair::field`] is the key).
    UnknownField,
    /// A second key for a field already read; ignored.
    DuplicateField {
        /// The key as written.
        from: String,
    },
    /// The field's JSON had another shape than an array of strings (a single or
    /// comma-separated string, a number, a nested value); it was read as well as
    /// possible.
    Reshaped {
        /// The JSON as written.
        from: String,
    },
    /// A value differed from an allowed value only in case or spacing.
    Normalised {
        /// The value as written.
        from: String,
        /// The allowed value.
        to: String,
    },
    /// A value was matched to an allowed value by a unique prefix or by edit distance.
    Matched {
        /// The value as written.
        from: String,
        /// The allowed value.
        to: String,
    },
    /// A value close to no allowed value; dropped.
    DroppedUnknown {
        /// The value as written.
        value: String,
    },
    /// A value listed twice (after matching); the repeat was dropped.
    DroppedDuplicate {
        /// The value (as matched).
        value: String,
    },
    /// A value beyond the field's `max` (or a tuple's slots); dropped.
    DroppedExtra {
        /// The value (as matched).
        value: String,
    },
    /// The field, or a tuple slot (`slot`), was missing or empty and was filled with
    /// the fallback.
    Filled {
        /// The tuple slot (`None` for a list field).
        slot: Option<usize>,
        /// The values filled in.
        values: Vec<String>,
    },
}

/// One repair of one field of an answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repair {
    /// The schema field (for [`RepairKind::UnknownField`]: the unknown key).
    pub field: String,
    /// What was done.
    #[serde(flatten)]
    pub kind: RepairKind,
}

impl std::fmt::Display for Repair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = &self.field;
        match &self.kind {
            RepairKind::RenamedField { from } => write!(f, "{n}: key `{from}` read as `{n}`"),
            RepairKind::UnknownField => write!(f, "{n}: unknown key ignored"),
            RepairKind::DuplicateField { from } => write!(f, "{n}: second key `{from}` ignored"),
            RepairKind::Reshaped { from } => write!(f, "{n}: reshaped {from}"),
            RepairKind::Normalised { from, to } => write!(f, "{n}: `{from}` normalised to `{to}`"),
            RepairKind::Matched { from, to } => write!(f, "{n}: `{from}` matched to `{to}`"),
            RepairKind::DroppedUnknown { value } => {
                write!(f, "{n}: unknown value `{value}` dropped")
            }
            RepairKind::DroppedDuplicate { value } => write!(f, "{n}: repeated `{value}` dropped"),
            RepairKind::DroppedExtra { value } => write!(f, "{n}: extra value `{value}` dropped"),
            RepairKind::Filled { slot: None, values } => {
                write!(f, "{n}: missing, filled with {}", values.join(", "))
            }
            RepairKind::Filled {
                slot: Some(s),
                values,
            } => write!(
                f,
                "{n}: slot {s} missing, filled with {}",
                values.join(", ")
            ),
        }
    }
}

/// Lowercase, `_`/`-` as spaces, whitespace runs collapsed, trimmed, surrounding quotes
/// and trailing full stops removed.
fn normalise(s: &str) -> String {
    let s = s
        .trim()
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '`')
        .trim_end_matches('.');
    let mut out = String::with_capacity(s.len());
    for w in s
        .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(w.chars().flat_map(char::to_lowercase));
    }
    out
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions), on
/// characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for j in 0..=m {
        d[0][j] = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// How a written word was matched to an allowed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchHow {
    Exact,
    Normalised,
    Fuzzy,
}

/// Matches `raw` to one of `allowed`: exactly, after normalisation, by a unique prefix
/// (either is a prefix of the other, the shorter at least 3 characters), or by a unique
/// smallest edit distance at most `max_dist` and at most a third of the shorter length.
fn match_word(raw: &str, allowed: &[String], max_dist: usize) -> Option<(usize, MatchHow)> {
    if let Some(i) = allowed.iter().position(|v| v == raw) {
        return Some((i, MatchHow::Exact));
    }
    let n = normalise(raw);
    if n.is_empty() {
        return None;
    }
    let norms: Vec<String> = allowed.iter().map(|v| normalise(v)).collect();
    if let Some(i) = norms.iter().position(|v| *v == n) {
        return Some((i, MatchHow::Normalised));
    }
    let n_len = n.chars().count();
    let prefix: Vec<usize> = norms
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            let v_len = v.chars().count();
            (v.starts_with(&n) && n_len >= 3) || (n.starts_with(v.as_str()) && v_len >= 3)
        })
        .map(|(i, _)| i)
        .collect();
    if prefix.len() == 1 {
        return Some((prefix[0], MatchHow::Fuzzy));
    }
    let mut best: Option<(usize, usize)> = None;
    let mut tie = false;
    for (i, v) in norms.iter().enumerate() {
        let d = edit_distance(&n, v);
        let shorter = n_len.min(v.chars().count());
        if d > max_dist || d * 3 > shorter {
            continue;
        }
        match best {
            Some((_, bd)) if d == bd => tie = true,
            Some((_, bd)) if d > bd => {}
            _ => {
                best = Some((i, d));
                tie = false;
            }
        }
    }
    match best {
        Some((i, _)) if !tie => Some((i, MatchHow::Fuzzy)),
        _ => None,
    }
}

/// Searches `text` for a JSON object: the whole text, else the first balanced `{...}`
/// that parses (so code fences and prose around the object are tolerated).
pub fn extract_json_object(text: &str) -> Option<Map<String, Value>> {
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text.trim()) {
        return Some(m);
    }
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(off) = text[start..].find('{') {
        let open = start + off;
        let mut depth = 0usize;
        let mut in_str = false;
        let mut escaped = false;
        let mut close = None;
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            if in_str {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_str = false;
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        if let Some(close) = close
            && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&text[open..=close])
        {
            return Some(m);
        }
        start = open + 1;
    }
    None
}

/// The JSON schema of an answer: an object with one required property per field; a list
/// field is an array of 1 to `max` distinct `enum` strings, a tuple field an array of
/// exactly one `enum` string per slot (`prefixItems`).
pub fn response_json_schema(schema: &PreferenceSchema) -> Value {
    let mut props = Map::new();
    for f in &schema.fields {
        let prop = match &f.kind {
            FieldKind::List { values, max } => json!({
                "type": "array",
                "items": {"type": "string", "enum": values},
                "minItems": 1,
                "maxItems": max,
                "uniqueItems": true,
            }),
            FieldKind::Tuple { slots } => json!({
                "type": "array",
                "prefixItems": slots
                    .iter()
                    .map(|s| json!({"type": "string", "enum": s}))
                    .collect::<Vec<_>>(),
                "minItems": slots.len(),
                "maxItems": slots.len(),
            }),
        };
        props.insert(f.name.clone(), prop);
    }
    json!({
        "type": "object",
        "properties": props,
        "required": schema.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        "additionalProperties": false,
    })
}

// ---------------------------------------------------------------------------------------
// Base64 and images
// ---------------------------------------------------------------------------------------

/// Standard base64 (RFC 4648, `+/`, `=` padding).
pub fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The MIME type of an image, from its first bytes, else its extension.
fn image_mime(bytes: &[u8], path: &Path) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some("image/jpeg");
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some("image/gif");
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("png") => Some("image/png"),
        Some("jpg" | "jpeg") => Some("image/jpeg"),
        Some("gif") => Some("image/gif"),
        Some("webp") => Some("image/webp"),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 client
// ---------------------------------------------------------------------------------------

/// A parsed `http://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HttpUrl {
    /// Host name or IP (IPv6 without brackets).
    host: String,
    port: u16,
    /// `Host` header value.
    authority: String,
    /// Path and query, starting with `/`.
    path: String,
}

impl HttpUrl {
    fn parse(url: &str) -> std::result::Result<Self, String> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err(format!(
                "`{url}`: https is not supported (no TLS); use the server's plain-HTTP \
                 address or a local TLS-terminating proxy"
            ));
        }
        if !lower.starts_with("http://") {
            return Err(format!("`{url}` is not an http:// URL"));
        }
        let rest = &url["http://".len()..];
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let path = path.split('#').next().unwrap_or("/").to_string();
        if authority.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        if authority.contains('@') {
            return Err(format!(
                "`{url}`: credentials in the URL are not supported (use api_key)"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| format!("`{url}`: unclosed `[` in the host"))?;
            let host = &v6[..end];
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("`{url}`: unexpected `{after}` after the host")),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("`{url}`: invalid port `{p}`"))?,
            None => 80,
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{url}`: whitespace in the path"));
        }
        Ok(HttpUrl {
            host,
            port,
            authority: authority.to_string(),
            path,
        })
    }

    fn display(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

/// The chat-completions endpoint of a base URL.
fn endpoint(base_url: &str) -> std::result::Result<HttpUrl, String> {
    let mut url = HttpUrl::parse(base_url)?;
    if !url
        .path
        .trim_end_matches('/')
        .ends_with("/chat/completions")
    {
        let (path, query) = match url.path.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (url.path.clone(), None),
        };
        url.path = format!("{}/chat/completions", path.trim_end_matches('/'));
        if let Some(q) = query {
            url.path = format!("{}?{q}", url.path);
        }
    }
    Ok(url)
}

/// A received response.
#[derive(Debug)]
struct HttpResponse {
    status: u16,
    reason: String,
    /// Header names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why an exchange produced no response.
#[derive(Debug)]
enum Failure {
    /// The deadline passed.
    Timeout(String),
    /// Refused, reset, closed early, malformed.
    Connection(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout(m) | Failure::Connection(m) => f.write_str(m),
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// A buffered reader over a stream with an absolute deadline.
struct Reader<'a> {
    stream: &'a TcpStream,
    buf: Vec<u8>,
    pos: usize,
    deadline: Instant,
    timeout: Duration,
}

impl Reader<'_> {
    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes; `Ok(0)` at the end of the stream.
    fn fill(&mut self) -> std::result::Result<usize, Failure> {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut tmp = [0u8; 16 * 1024];
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out());
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| Failure::Connection(format!("setting the read timeout: {e}")))?;
            match (&mut &*self.stream).read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(self.timed_out()),
                Err(e) => return Err(Failure::Connection(format!("reading the response: {e}"))),
            }
        }
    }

    fn timed_out(&self) -> Failure {
        Failure::Timeout(format!(
            "timed out after {:.3} s waiting for the response",
            self.timeout.as_secs_f64()
        ))
    }

    /// One line without its CRLF (or LF), at most `max` bytes.
    fn line(&mut self, max: usize) -> std::result::Result<String, Failure> {
        loop {
            if let Some(i) = self.available().iter().position(|&b| b == b'\n') {
                let raw = &self.buf[self.pos..self.pos + i];
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let line = String::from_utf8_lossy(raw).into_owned();
                self.pos += i + 1;
                return Ok(line);
            }
            if self.available().len() > max {
                return Err(Failure::Connection(format!(
                    "a response line is longer than {max} bytes"
                )));
            }
            if self.fill()? == 0 {
                return Err(Failure::Connection(
                    "the connection closed in the middle of the response head".into(),
                ));
            }
        }
    }

    fn exact(&mut self, n: usize) -> std::result::Result<Vec<u8>, Failure> {
        while self.available().len() < n {
            if self.fill()? == 0 {
                return Err(Failure::Connection(format!(
                    "the connection closed after {} of {n} body bytes",
                    self.available().len()
                )));
            }
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }

    fn to_end(&mut self, max: usize) -> std::result::Result<Vec<u8>, Failure> {
        while self.fill()? > 0 {
            if self.available().len() > max {
                return Err(Failure::Connection(format!(
                    "the response body is larger than {max} bytes"
                )));
            }
        }
        let out = self.available().to_vec();
        self.pos = self.buf.len();
        Ok(out)
    }

    fn chunked(&mut self, max: usize) -> std::result::Result<Vec<u8>, Failure> {
        let mut body = Vec::new();
        loop {
            let line = self.line(8 * 1024)?;
            let size_str = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_str, 16)
                .map_err(|_| Failure::Connection(format!("invalid chunk size line `{line}`")))?;
            if size == 0 {
                // Trailer fields until an empty line.
                for _ in 0..256 {
                    if self.line(8 * 1024)?.is_empty() {
                        return Ok(body);
                    }
                }
                return Err(Failure::Connection("too many trailer fields".into()));
            }
            if body.len() + size > max {
                return Err(Failure::Connection(format!(
                    "the response body is larger than {max} bytes"
                )));
            }
            body.extend_from_slice(&self.exact(size)?);
            let end = self.line(8 * 1024)?;
            if !end.is_empty() {
                return Err(Failure::Connection("a chunk does not end with CRLF".into()));
            }
        }
    }
}

/// Sends one `POST` with a JSON body and reads the whole response, all within `timeout`.
fn post(
    url: &HttpUrl,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    max_body: usize,
) -> std::result::Result<HttpResponse, Failure> {
    let start = Instant::now();
    let deadline = start + timeout;
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| Failure::Connection(format!("resolving `{}`: {e}", url.host)))?
        .collect();
    let mut last = format!("`{}` resolves to no address", url.host);
    let mut stream = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Timeout(format!(
                "timed out after {:.3} s connecting to {addr}",
                timeout.as_secs_f64()
            )));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) if is_timeout(&e) => {
                return Err(Failure::Timeout(format!(
                    "timed out after {:.3} s connecting to {addr}",
                    timeout.as_secs_f64()
                )));
            }
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    let stream = stream.ok_or(Failure::Connection(last))?;
    let _ = stream.set_nodelay(true);

    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mspa-composer/{}\r\n\
         Content-Type: application/json\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        url.path,
        url.authority,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (k, v) in extra_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");

    // Send; a server may answer (e.g. 401, 413) and close before reading everything, so
    // a failed write still tries to read a response.
    let mut write_error = None;
    for part in [head.as_bytes(), body] {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Timeout(format!(
                "timed out after {:.3} s sending the request",
                timeout.as_secs_f64()
            )));
        }
        let _ = stream.set_write_timeout(Some(left));
        if let Err(e) = (&mut &stream).write_all(part) {
            if is_timeout(&e) {
                return Err(Failure::Timeout(format!(
                    "timed out after {:.3} s sending the request",
                    timeout.as_secs_f64()
                )));
            }
            write_error = Some(format!("sending the request: {e}"));
            break;
        }
    }
    let _ = (&mut &stream).flush();

    let mut reader = Reader {
        stream: &stream,
        buf: Vec::new(),
        pos: 0,
        deadline,
        timeout,
    };
    let result = read_response(&mut reader, max_body);
    match (result, write_error) {
        (Ok(r), _) => Ok(r),
        (Err(Failure::Connection(_)), Some(w)) => Err(Failure::Connection(w)),
        (Err(e), _) => Err(e),
    }
}

fn read_response(
    r: &mut Reader<'_>,
    max_body: usize,
) -> std::result::Result<HttpResponse, Failure> {
    loop {
        let status_line = r.line(16 * 1024)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/") {
            return Err(Failure::Connection(format!(
                "not an HTTP response: `{}`",
                status_line.chars().take(80).collect::<String>()
            )));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|s| (100..1000).contains(s))
            .ok_or_else(|| Failure::Connection(format!("invalid status line `{status_line}`")))?;
        let reason = parts.next().unwrap_or("").trim().to_string();
        let mut headers = Vec::new();
        loop {
            let line = r.line(16 * 1024)?;
            if line.is_empty() {
                break;
            }
            if headers.len() >= 256 {
                return Err(Failure::Connection("more than 256 response headers".into()));
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| Failure::Connection(format!("malformed header line `{line}`")))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        // Interim responses (100 Continue, 103 Early Hints) precede the real one.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let mut resp = HttpResponse {
            status,
            reason,
            headers,
            body: Vec::new(),
        };
        if status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .and_then(|te| te.rsplit(',').next())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        resp.body = if chunked {
            r.chunked(max_body)?
        } else if let Some(len) = resp.header("content-length") {
            let n: usize = len
                .trim()
                .parse()
                .map_err(|_| Failure::Connection(format!("invalid Content-Length `{len}`")))?;
            if n > max_body {
                return Err(Failure::Connection(format!(
                    "the response body ({n} bytes) is larger than {max_body} bytes"
                )));
            }
            r.exact(n)?
        } else {
            r.to_end(max_body)?
        };
        return Ok(resp);
    }
}

/// The server's error message in an error body: OpenAI's `error.message`, a plain
/// `error` string (Ollama, llama.cpp), FastAPI's `detail` (vLLM), `message`, else the
/// text itself (cut to 300 characters).
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let found = [
            v.pointer("/error/message"),
            v.get("error"),
            v.get("detail"),
            v.get("message"),
        ]
        .into_iter()
        .flatten()
        .find(|x| !x.is_null());
        if let Some(x) = found {
            return match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text.chars().take(300).collect()
    }
}

/// Reads `Retry-After` as seconds (HTTP dates are not supported and ignored).
fn retry_after(resp: &HttpResponse) -> Option<Duration> {
    let v = resp.header("retry-after")?.trim().parse::<f64>().ok()?;
    // Capped here so that an absurd value cannot overflow a Duration; the config's
    // max_backoff_s caps it further.
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(1e6)))
}

/// The text of `choices[0].message.content` (a string, or an array of text parts).
fn answer_content(body: &[u8]) -> std::result::Result<String, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the answer is not JSON ({e}): {}", error_message(body)))?;
    let msg = v
        .pointer("/choices/0/message")
        .ok_or_else(|| "the answer has no choices[0].message".to_string())?;
    match msg.get("content") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join("")),
        _ => Err(format!(
            "choices[0].message has no text content (finish_reason {})",
            v.pointer("/choices/0/finish_reason")
                .unwrap_or(&Value::Null)
        )),
    }
}

// ---------------------------------------------------------------------------------------
// The composer
// ---------------------------------------------------------------------------------------

/// Counters over every composition of one [`LlmHttpComposer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmHttpStats {
    /// HTTP requests sent (attempts, retries included).
    pub requests: u64,
    /// Attempts that were retried.
    pub retries: u64,
    /// Answers read (compositions that succeeded).
    pub answers: u64,
    /// Answers that needed at least one repair.
    pub repaired_answers: u64,
    /// Repairs over all answers.
    pub repairs: u64,
    /// Compositions that failed.
    pub failures: u64,
}

/// One composition with everything the server exchange produced.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmComposition {
    /// The composed preference (text, fields, embedding, evidence).
    pub preference: Preference,
    /// What was repaired in the answer (empty when it followed the schema).
    pub repairs: Vec<Repair>,
    /// HTTP requests sent for it (1 + retries).
    pub attempts: u32,
    /// The model's answer text (`choices[0].message.content`).
    pub content: String,
    /// Frames sent as images.
    pub frames_sent: usize,
    /// Frames that could not be sent (missing, too large or not an image).
    pub frames_skipped: usize,
}

/// One history's request, as built.
struct BuiltRequest {
    body: Value,
    frames_sent: usize,
    frames_skipped: usize,
}

/// Everything of one composition except the embedding.
struct Remote {
    fields: PreferenceFields,
    evidence: Vec<FieldEvidence>,
    repairs: Vec<Repair>,
    attempts: u32,
    content: String,
    frames_sent: usize,
    frames_skipped: usize,
}

/// Per author of a history: tips, total, last tip time, tip positions.
struct AuthorSummary {
    author: AuthorId,
    tips: usize,
    total: f64,
    last_ms: i64,
}

/// The composer that asks an OpenAI-compatible chat-completions server (see the module
/// docs).
pub struct LlmHttpComposer {
    config: LlmHttpConfig,
    schema: PreferenceSchema,
    url: HttpUrl,
    response_schema: Value,
    system_prompt: String,
    /// Per field: the fill values (one per slot for tuples).
    fallback: Vec<Vec<String>>,
    stats: Mutex<LlmHttpStats>,
}

impl std::fmt::Debug for LlmHttpComposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmHttpComposer")
            .field("endpoint", &self.url.display())
            .field("config", &self.config)
            .field("fields", &self.schema.fields.len())
            .finish()
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

/// Cuts `s` to `max` characters (adding `...`) and flattens newlines.
fn cut(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max {
        flat.to_string()
    } else {
        let mut out: String = flat.chars().take(max).collect();
        out.push_str("...");
        out
    }
}

/// Lowercased words (alphanumerics, `'`, `-`).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// Whether the word sequence `needle` occurs in `hay`.
fn contains_words(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

impl LlmHttpComposer {
    /// Checks the config against the schema and prepares the endpoint, the response
    /// schema and the system prompt.
    ///
    /// Errors ([`ComposerError::Config`]): a `base_url` that is not `http://` (https is
    /// not supported), an empty `model`, an `api_key` or `model` with line breaks,
    /// non-positive `timeout_s`, negative backoff or temperature, zero `max_authors`,
    /// `concurrency` or `max_text_chars`, a `max_response_bytes` under 1 KiB, a
    /// `fallback` for a field the schema lacks or with values it does not allow.
    pub fn new(config: LlmHttpConfig, schema: PreferenceSchema) -> Result<Self> {
        let url = endpoint(&config.base_url).map_err(|m| ComposerError::config("base_url", m))?;
        if config.model.trim().is_empty() {
            return Err(ComposerError::config("model", "must not be empty"));
        }
        if config.model.chars().any(char::is_control) {
            return Err(ComposerError::config(
                "model",
                "contains control characters",
            ));
        }
        if let Some(k) = &config.api_key
            && k.chars().any(char::is_control)
        {
            return Err(ComposerError::config(
                "api_key",
                "contains control characters",
            ));
        }
        positive("timeout_s", config.timeout_s)?;
        non_negative("backoff_base_s", config.backoff_base_s)?;
        non_negative("max_backoff_s", config.max_backoff_s)?;
        non_negative("temperature", config.temperature)?;
        for (field, x) in [
            ("timeout_s", config.timeout_s),
            ("backoff_base_s", config.backoff_base_s),
            ("max_backoff_s", config.max_backoff_s),
        ] {
            if x > 1e6 {
                return Err(ComposerError::config(
                    field,
                    format!("must be at most 1e6 s, got {x}"),
                ));
            }
        }
        for (field, v) in [
            ("max_authors", config.max_authors),
            ("concurrency", config.concurrency),
            ("max_text_chars", config.max_text_chars),
        ] {
            if v == 0 {
                return Err(ComposerError::config(field, "must be at least 1"));
            }
        }
        if config.max_response_bytes < 1024 {
            return Err(ComposerError::config(
                "max_response_bytes",
                format!("must be at least 1024, got {}", config.max_response_bytes),
            ));
        }
        for name in config.fallback.keys() {
            if schema.field_index(name).is_none() {
                return Err(ComposerError::config(
                    format!("fallback.{name}"),
                    "the schema has no such field",
                ));
            }
        }
        let mut fallback = Vec::with_capacity(schema.fields.len());
        for f in &schema.fields {
            let at = format!("fallback.{}", f.name);
            let values = match (config.fallback.get(&f.name), &f.kind) {
                (None, _) => f.slot_values().iter().map(|s| s[0].clone()).collect(),
                (Some(vs), FieldKind::List { values, max }) => {
                    if vs.is_empty() || vs.len() > *max {
                        return Err(ComposerError::config(
                            at,
                            format!("needs 1 to {max} values, got {}", vs.len()),
                        ));
                    }
                    for (i, v) in vs.iter().enumerate() {
                        if !values.contains(v) {
                            return Err(ComposerError::config(
                                at,
                                format!("`{v}` is not a value of `{}`", f.name),
                            ));
                        }
                        if vs[..i].contains(v) {
                            return Err(ComposerError::config(at, format!("`{v}` repeats")));
                        }
                    }
                    vs.clone()
                }
                (Some(vs), FieldKind::Tuple { slots }) => {
                    if vs.len() != slots.len() {
                        return Err(ComposerError::config(
                            at,
                            format!("needs exactly {} values, got {}", slots.len(), vs.len()),
                        ));
                    }
                    for (s, v) in vs.iter().enumerate() {
                        if !slots[s].contains(v) {
                            return Err(ComposerError::config(
                                at,
                                format!("`{v}` is not a value of slot {s} of `{}`", f.name),
                            ));
                        }
                    }
                    vs.clone()
                }
            };
            fallback.push(values);
        }
        let response_schema = response_json_schema(&schema);
        let system_prompt = Self::build_system_prompt(&config.instructions, &schema);
        Ok(LlmHttpComposer {
            config,
            schema,
            url,
            response_schema,
            system_prompt,
            fallback,
            stats: Mutex::new(LlmHttpStats::default()),
        })
    }

    fn build_system_prompt(instructions: &str, schema: &PreferenceSchema) -> String {
        let quoted = |vs: &[String]| {
            vs.iter()
                .map(|v| format!("\"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut p = String::new();
        p.push_str(instructions.trim());
        p.push_str(
            "\n\nAnswer with one JSON object and nothing else. Its keys, each required, \
             and their allowed values:\n",
        );
        let mut example = Map::new();
        for f in &schema.fields {
            match &f.kind {
                FieldKind::List { values, max } => {
                    let n = if *max == 1 {
                        "an array with exactly 1 value".to_string()
                    } else {
                        format!("an array of 1 to {max} distinct values, strongest first,")
                    };
                    p.push_str(&format!("- \"{}\": {n} from {}\n", f.name, quoted(values)));
                    example.insert(f.name.clone(), json!([values[0]]));
                }
                FieldKind::Tuple { slots } => {
                    p.push_str(&format!(
                        "- \"{}\": an array of exactly {} values:",
                        f.name,
                        slots.len()
                    ));
                    for (s, vs) in slots.iter().enumerate() {
                        let sep = if s == 0 { "" } else { ";" };
                        p.push_str(&format!("{sep} value {} from {}", s + 1, quoted(vs)));
                    }
                    p.push('\n');
                    example.insert(
                        f.name.clone(),
                        json!(slots.iter().map(|s| s[0].as_str()).collect::<Vec<_>>()),
                    );
                }
            }
        }
        p.push_str(
            "Use only the allowed values, spelled exactly as given. Example of the format \
             (not an answer): ",
        );
        p.push_str(&Value::Object(example).to_string());
        p
    }

    /// The schema the composer writes.
    pub fn schema(&self) -> &PreferenceSchema {
        &self.schema
    }

    /// The config.
    pub fn config(&self) -> &LlmHttpConfig {
        &self.config
    }

    /// The URL requests go to (`.../chat/completions`).
    pub fn endpoint(&self) -> String {
        self.url.display()
    }

    /// The JSON schema sent as `response_format.json_schema.schema`.
    pub fn response_schema(&self) -> &Value {
        &self.response_schema
    }

    /// The system prompt (instructions, then every field with its allowed values).
    pub fn system_prompt(&self) -> &str {
        &self.system_prompt
    }

    /// The fill values of every field (one per slot for tuples).
    pub fn fallback(&self) -> &[Vec<String>] {
        &self.fallback
    }

    /// Counters over every composition so far.
    pub fn stats(&self) -> LlmHttpStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self, f: impl FnOnce(&mut LlmHttpStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn check_tips(dataset: &Dataset, query: &HistoryQuery<'_>) -> Result<()> {
        let n = dataset.n_authors();
        if let Some((i, e)) = query
            .tips
            .iter()
            .enumerate()
            .find(|(_, e)| e.author.index() >= n)
        {
            return Err(ComposerError::data(format!(
                "tip {i} names author {} but the dataset has {n} authors",
                e.author.0
            )));
        }
        Ok(())
    }

    /// The authors of a history, most tipped first (then larger total, then id).
    fn summarise(query: &HistoryQuery<'_>) -> Vec<AuthorSummary> {
        let mut by: HashMap<AuthorId, AuthorSummary> = HashMap::new();
        for e in query.tips {
            let s = by.entry(e.author).or_insert(AuthorSummary {
                author: e.author,
                tips: 0,
                total: 0.0,
                last_ms: i64::MIN,
            });
            s.tips += 1;
            if e.amount.is_finite() {
                s.total += e.amount;
            }
            s.last_ms = s.last_ms.max(e.timestamp_ms);
        }
        let mut out: Vec<AuthorSummary> = by.into_values().collect();
        out.sort_by(|a, b| {
            b.tips
                .cmp(&a.tips)
                .then(b.total.total_cmp(&a.total))
                .then(a.author.index().cmp(&b.author.index()))
        });
        out
    }

    /// The chat-completions request body of one history (what is sent; useful for logging
    /// or a dry run). Errors: a tip naming an author the dataset does not have.
    pub fn request_body(&self, dataset: &Dataset, query: HistoryQuery<'_>) -> Result<Value> {
        Ok(self.build_request(dataset, &query)?.body)
    }

    fn build_request(&self, dataset: &Dataset, query: &HistoryQuery<'_>) -> Result<BuiltRequest> {
        Self::check_tips(dataset, query)?;
        let c = &self.config;
        let authors = Self::summarise(query);
        let shown = authors.len().min(c.max_authors);

        // Frames: the most tipped authors first.
        let mut images: Vec<(usize, String)> = Vec::new(); // (author rank, data URL)
        let mut skipped = 0usize;
        'outer: for (rank, s) in authors[..shown].iter().enumerate() {
            let a = dataset.author(s.author);
            for rel in a.frames.iter().take(c.frames_per_author) {
                if images.len() >= c.max_frames {
                    break 'outer;
                }
                let path = dataset.media_path(rel);
                let bytes = match std::fs::metadata(&path) {
                    Ok(m) if m.len() as usize <= c.max_frame_bytes => std::fs::read(&path).ok(),
                    _ => None,
                };
                match bytes
                    .as_deref()
                    .and_then(|b| image_mime(b, &path).map(|m| (b, m)))
                {
                    Some((b, mime)) => {
                        images.push((rank, format!("data:{mime};base64,{}", base64_encode(b))))
                    }
                    None => skipped += 1,
                }
            }
        }

        let mut text = String::new();
        if authors.is_empty() {
            text.push_str(
                "This viewer has not tipped anyone yet. Answer with the most likely \
                 preference of a typical viewer.\n",
            );
        } else {
            let n_tips = query.tips.len();
            text.push_str(&format!(
                "Tipping history of one viewer: {n_tips} tip{} to {} streamer{}",
                if n_tips == 1 { "" } else { "s" },
                authors.len(),
                if authors.len() == 1 { "" } else { "s" },
            ));
            if shown < authors.len() {
                text.push_str(&format!("; the {shown} most tipped are listed"));
            }
            text.push_str(
                ", most tipped first. Ages are in days before now; amounts in the \
                 platform's currency.\n",
            );
            for (rank, s) in authors[..shown].iter().enumerate() {
                let a = dataset.author(s.author);
                let age_days = (query.at_ms.saturating_sub(s.last_ms)).max(0) as f64 / DAY_MS;
                let title = if a.title.trim().is_empty() {
                    "(none)".to_string()
                } else {
                    format!("\"{}\"", cut(&a.title, c.max_text_chars))
                };
                let desc = if a.description.trim().is_empty() {
                    "(none)".to_string()
                } else {
                    format!("\"{}\"", cut(&a.description, c.max_text_chars))
                };
                text.push_str(&format!(
                    "{}. title: {title}; description: {desc}; tips: {}; total amount: {:.2}; \
                     last tip: {age_days:.1} days ago",
                    rank + 1,
                    s.tips,
                    s.total
                ));
                let imgs: Vec<String> = images
                    .iter()
                    .enumerate()
                    .filter(|(_, (r, _))| *r == rank)
                    .map(|(i, _)| (i + 1).to_string())
                    .collect();
                if !imgs.is_empty() {
                    text.push_str(&format!(
                        "; frame{}: image {}",
                        if imgs.len() == 1 { "" } else { "s" },
                        imgs.join(", ")
                    ));
                }
                text.push('\n');
            }
        }
        text.push_str("Answer with the JSON object only.");

        let mut content = vec![json!({"type": "text", "text": text})];
        for (i, (rank, url)) in images.iter().enumerate() {
            content.push(json!({
                "type": "text",
                "text": format!("Image {} (streamer {}):", i + 1, rank + 1),
            }));
            content.push(json!({"type": "image_url", "image_url": {"url": url}}));
        }

        let mut body = Map::new();
        body.insert("model".into(), json!(c.model));
        body.insert(
            "messages".into(),
            json!([
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": content},
            ]),
        );
        body.insert(
            "response_format".into(),
            json!({
                "type": "json_schema",
                "json_schema": {
                    "name": "preference",
                    "schema": self.response_schema,
                    "strict": true,
                },
            }),
        );
        body.insert("temperature".into(), json!(c.temperature));
        if let Some(m) = c.max_tokens {
            body.insert("max_tokens".into(), json!(m));
        }
        if let Some(s) = c.seed {
            body.insert("seed".into(), json!(s));
        }
        body.insert("stream".into(), json!(false));
        Ok(BuiltRequest {
            body: Value::Object(body),
            frames_sent: images.len(),
            frames_skipped: skipped,
        })
    }

    /// Sends `body` with retries until an answer with a JSON object arrives; returns the
    /// answer text, the object and the number of attempts.
    fn exchange(&self, body: &[u8]) -> Result<(String, Map<String, Value>, u32)> {
        let c = &self.config;
        let auth = c
            .api_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let timeout = Duration::from_secs_f64(c.timeout_s);
        let max_wait = Duration::from_secs_f64(c.max_backoff_s);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            self.bump(|s| s.requests += 1);
            // (message, status, server's Retry-After) of a retryable failure.
            let (message, status, wait) =
                match post(&self.url, &headers, body, timeout, c.max_response_bytes) {
                    Ok(resp) if (200..300).contains(&resp.status) => {
                        match answer_content(&resp.body) {
                            Ok(content) => match extract_json_object(&content) {
                                Some(obj) => return Ok((content, obj, attempt)),
                                None => (
                                    format!(
                                        "the answer has no JSON object: `{}`",
                                        cut(&content, 200)
                                    ),
                                    Some(resp.status),
                                    None,
                                ),
                            },
                            Err(m) => (m, Some(resp.status), None),
                        }
                    }
                    Ok(resp) if resp.status == 408 || resp.status == 429 || resp.status >= 500 => (
                        format!(
                            "HTTP {} {}: {}",
                            resp.status,
                            resp.reason,
                            error_message(&resp.body)
                        ),
                        Some(resp.status),
                        retry_after(&resp),
                    ),
                    Ok(resp) => {
                        return Err(ComposerError::Http {
                            url: self.url.display(),
                            status: Some(resp.status),
                            attempts: attempt,
                            message: format!(
                                "HTTP {} {}: {}",
                                resp.status,
                                resp.reason,
                                error_message(&resp.body)
                            ),
                        });
                    }
                    Err(f) => (f.to_string(), None, None),
                };
            if attempt > c.max_retries {
                return Err(ComposerError::Http {
                    url: self.url.display(),
                    status,
                    attempts: attempt,
                    message,
                });
            }
            self.bump(|s| s.retries += 1);
            let backoff = wait.unwrap_or_else(|| {
                let exp = c.backoff_base_s * 2f64.powi((attempt - 1).min(60) as i32);
                Duration::from_secs_f64(exp.min(c.max_backoff_s))
            });
            std::thread::sleep(backoff.min(max_wait));
        }
    }

    /// Validates an answer text against the schema and repairs it (see the module docs):
    /// the typed fields and every repair made. Errors ([`ComposerError::Parse`]): the text
    /// holds no JSON object.
    pub fn repair(&self, answer: &str) -> Result<(PreferenceFields, Vec<Repair>)> {
        let obj = extract_json_object(answer)
            .ok_or_else(|| ComposerError::parse(0, "the answer holds no JSON object"))?;
        Ok(self.repair_object(&obj))
    }

    fn repair_object(&self, obj: &Map<String, Value>) -> (PreferenceFields, Vec<Repair>) {
        let schema = &self.schema;
        let names: Vec<String> = schema.fields.iter().map(|f| f.name.clone()).collect();
        let mut repairs = Vec::new();
        let mut raw: Vec<Option<&Value>> = vec![None; names.len()];
        // Exact keys first, then matched ones, so an exact key wins over a near one.
        let mut pending = Vec::new();
        for (key, value) in obj {
            match names.iter().position(|n| n == key) {
                Some(k) => raw[k] = Some(value),
                None => pending.push((key, value)),
            }
        }
        for (key, value) in pending {
            match match_word(key, &names, self.config.max_edit_distance) {
                Some((k, _)) if raw[k].is_none() => {
                    raw[k] = Some(value);
                    repairs.push(Repair {
                        field: names[k].clone(),
                        kind: RepairKind::RenamedField { from: key.clone() },
                    });
                }
                Some((k, _)) => repairs.push(Repair {
                    field: names[k].clone(),
                    kind: RepairKind::DuplicateField { from: key.clone() },
                }),
                None => repairs.push(Repair {
                    field: key.clone(),
                    kind: RepairKind::UnknownField,
                }),
            }
        }

        let mut values = Vec::with_capacity(names.len());
        for (k, f) in schema.fields.iter().enumerate() {
            let mut push = |kind| {
                repairs.push(Repair {
                    field: f.name.clone(),
                    kind,
                })
            };
            let written = match raw[k] {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => {
                    let (ws, reshaped) = written_values(v);
                    if reshaped {
                        push(RepairKind::Reshaped {
                            from: cut(&v.to_string(), 120),
                        });
                    }
                    ws
                }
            };
            let mut chosen: Vec<String> = Vec::new();
            match &f.kind {
                FieldKind::List { values: vocab, max } => {
                    for w in written {
                        let Some((i, how)) = match_word(&w, vocab, self.config.max_edit_distance)
                        else {
                            push(RepairKind::DroppedUnknown { value: w });
                            continue;
                        };
                        let v = &vocab[i];
                        match how {
                            MatchHow::Exact => {}
                            MatchHow::Normalised => push(RepairKind::Normalised {
                                from: w.clone(),
                                to: v.clone(),
                            }),
                            MatchHow::Fuzzy => push(RepairKind::Matched {
                                from: w.clone(),
                                to: v.clone(),
                            }),
                        }
                        if chosen.contains(v) {
                            push(RepairKind::DroppedDuplicate { value: v.clone() });
                        } else if chosen.len() >= *max {
                            push(RepairKind::DroppedExtra { value: v.clone() });
                        } else {
                            chosen.push(v.clone());
                        }
                    }
                    if chosen.is_empty() {
                        chosen = self.fallback[k].clone();
                        push(RepairKind::Filled {
                            slot: None,
                            values: chosen.clone(),
                        });
                    }
                }
                FieldKind::Tuple { slots } => {
                    let mut it = written.into_iter();
                    for (s, vocab) in slots.iter().enumerate() {
                        let matched = match it.next() {
                            None => None,
                            Some(w) => match match_word(&w, vocab, self.config.max_edit_distance) {
                                Some((i, how)) => {
                                    let v = vocab[i].clone();
                                    match how {
                                        MatchHow::Exact => {}
                                        MatchHow::Normalised => push(RepairKind::Normalised {
                                            from: w,
                                            to: v.clone(),
                                        }),
                                        MatchHow::Fuzzy => push(RepairKind::Matched {
                                            from: w,
                                            to: v.clone(),
                                        }),
                                    }
                                    Some(v)
                                }
                                None => {
                                    push(RepairKind::DroppedUnknown { value: w });
                                    None
                                }
                            },
                        };
                        let v = matched.unwrap_or_else(|| {
                            let v = self.fallback[k][s].clone();
                            push(RepairKind::Filled {
                                slot: Some(s),
                                values: vec![v.clone()],
                            });
                            v
                        });
                        chosen.push(v);
                    }
                    for w in it {
                        push(RepairKind::DroppedExtra { value: w });
                    }
                }
            }
            values.push(chosen);
        }
        (PreferenceFields { values }, repairs)
    }

    /// Per listed value: tips of authors whose title or description mentions it, largest
    /// amounts first (then the most recent).
    fn evidence(
        &self,
        dataset: &Dataset,
        query: &HistoryQuery<'_>,
        fields: &PreferenceFields,
    ) -> Vec<FieldEvidence> {
        let mut author_words: HashMap<AuthorId, Vec<String>> = HashMap::new();
        for e in query.tips {
            author_words.entry(e.author).or_insert_with(|| {
                let a = dataset.author(e.author);
                words(&format!("{}\n{}", a.title, a.description))
            });
        }
        let mut out = Vec::new();
        for (f, vs) in self.schema.fields.iter().zip(&fields.values) {
            for v in vs {
                let needle = words(v);
                let mut tips: Vec<usize> = query
                    .tips
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| contains_words(&author_words[&e.author], &needle))
                    .map(|(i, _)| i)
                    .collect();
                tips.sort_by(|&a, &b| {
                    let (ea, eb) = (&query.tips[a], &query.tips[b]);
                    eb.amount
                        .total_cmp(&ea.amount)
                        .then(eb.timestamp_ms.cmp(&ea.timestamp_ms))
                        .then(b.cmp(&a))
                });
                tips.truncate(self.config.max_evidence);
                out.push(FieldEvidence {
                    field: f.name.clone(),
                    value: v.clone(),
                    tips,
                });
            }
        }
        out
    }

    fn compose_remote(&self, dataset: &Dataset, query: &HistoryQuery<'_>) -> Result<Remote> {
        let result = (|| {
            let req = self.build_request(dataset, query)?;
            let body = serde_json::to_vec(&req.body)
                .map_err(|e| ComposerError::data(format!("serialising the request: {e}")))?;
            let (content, obj, attempts) = self.exchange(&body)?;
            let (fields, repairs) = self.repair_object(&obj);
            let evidence = self.evidence(dataset, query, &fields);
            Ok(Remote {
                fields,
                evidence,
                repairs,
                attempts,
                content,
                frames_sent: req.frames_sent,
                frames_skipped: req.frames_skipped,
            })
        })();
        match &result {
            Ok(r) => self.bump(|s| {
                s.answers += 1;
                s.repairs += r.repairs.len() as u64;
                if !r.repairs.is_empty() {
                    s.repaired_answers += 1;
                }
            }),
            Err(_) => self.bump(|s| s.failures += 1),
        }
        result
    }

    /// Composes one history and returns the preference with the exchange's details
    /// (repairs, attempts, the raw answer).
    pub fn compose_detailed(
        &self,
        ctx: &ComposeContext<'_>,
        query: HistoryQuery<'_>,
    ) -> Result<LlmComposition> {
        Ok(self
            .compose_batch_detailed(ctx, std::slice::from_ref(&query))?
            .pop()
            .expect("one composition per query"))
    }

    /// Composes many histories with up to [`LlmHttpConfig::concurrency`] requests in
    /// flight; the first error (in query order) is returned and stops further requests.
    pub fn compose_batch_detailed(
        &self,
        ctx: &ComposeContext<'_>,
        queries: &[HistoryQuery<'_>],
    ) -> Result<Vec<LlmComposition>> {
        let dataset = ctx.dataset;
        let n = queries.len();
        let remotes: Vec<Remote> = if n <= 1 || self.config.concurrency == 1 {
            queries
                .iter()
                .map(|q| self.compose_remote(dataset, q))
                .collect::<Result<_>>()?
        } else {
            let next = AtomicUsize::new(0);
            let stop = AtomicBool::new(false);
            let slots: Vec<Mutex<Option<Result<Remote>>>> =
                (0..n).map(|_| Mutex::new(None)).collect();
            std::thread::scope(|scope| {
                for _ in 0..self.config.concurrency.min(n) {
                    scope.spawn(|| {
                        loop {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= n {
                                break;
                            }
                            let r = self.compose_remote(dataset, &queries[i]);
                            if r.is_err() {
                                stop.store(true, Ordering::Relaxed);
                            }
                            *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                        }
                    });
                }
            });
            let mut out = Vec::with_capacity(n);
            let mut first_err = None;
            for slot in slots {
                match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
                    Some(Ok(r)) => out.push(r),
                    Some(Err(e)) => {
                        first_err = Some(e);
                        break;
                    }
                    None => {}
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
            if out.len() != n {
                return Err(ComposerError::data("a composition was not run"));
            }
            out
        };
        let texts: Vec<String> = remotes
            .iter()
            .map(|r| self.schema.render(&r.fields))
            .collect();
        let fields: Vec<PreferenceFields> = remotes.iter().map(|r| r.fields.clone()).collect();
        let embeddings =
            crate::composer::embed_preferences(ctx.text_encoder, &self.schema, &texts, &fields)?;
        Ok(remotes
            .into_iter()
            .zip(texts)
            .zip(embeddings)
            .map(|((r, text), embedding)| LlmComposition {
                preference: Preference {
                    text,
                    fields: r.fields,
                    embedding,
                    evidence: r.evidence,
                },
                repairs: r.repairs,
                attempts: r.attempts,
                content: r.content,
                frames_sent: r.frames_sent,
                frames_skipped: r.frames_skipped,
            })
            .collect())
    }
}

/// The strings of a field's JSON, and whether its shape needed reading leniently (not an
/// array of strings).
fn written_values(v: &Value) -> (Vec<String>, bool) {
    fn split(s: &str) -> Vec<String> {
        s.split([',', ';', '|'])
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    }
    match v {
        Value::Array(items) => {
            let mut out = Vec::new();
            let mut reshaped = false;
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    Value::Number(n) => {
                        out.push(n.to_string());
                        reshaped = true;
                    }
                    Value::Bool(b) => {
                        out.push(b.to_string());
                        reshaped = true;
                    }
                    Value::Array(_) => {
                        let (inner, _) = written_values(item);
                        out.extend(inner);
                        reshaped = true;
                    }
                    Value::Null | Value::Object(_) => reshaped = true,
                }
            }
            (out, reshaped)
        }
        Value::String(s) => (split(s), true),
        Value::Number(n) => (vec![n.to_string()], true),
        Value::Bool(b) => (vec![b.to_string()], true),
        Value::Object(m) => {
            // e.g. {"value": "x"} or {"values": [...]}: read the strings inside.
            let mut out = Vec::new();
            for x in m.values() {
                out.extend(written_values(x).0);
            }
            (out, true)
        }
        Value::Null => (Vec::new(), false),
    }
}

impl Composer for LlmHttpComposer {
    fn name(&self) -> &str {
        "llm-http"
    }

    fn compose(&self, ctx: &ComposeContext<'_>, query: HistoryQuery<'_>) -> Result<Preference> {
        Ok(self.compose_detailed(ctx, query)?.preference)
    }

    fn compose_batch(
        &self,
        ctx: &ComposeContext<'_>,
        queries: &[HistoryQuery<'_>],
    ) -> Result<Vec<Preference>> {
        Ok(self
            .compose_batch_detailed(ctx, queries)?
            .into_iter()
            .map(|c| c.preference)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
        }
        assert_eq!(base64_encode(&[0xFB, 0xFF, 0xBF]), "+/+/");
    }

    #[test]
    fn urls_parse_and_https_is_refused() {
        let u = endpoint("http://127.0.0.1:8000/v1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8000, "/v1/chat/completions")
        );
        let u = endpoint("http://localhost/v1/chat/completions").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/v1/chat/completions"));
        let u = endpoint("http://[::1]:11434/v1/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 11434, "[::1]:11434")
        );
        assert!(
            endpoint("https://api.example.com/v1")
                .unwrap_err()
                .contains("https")
        );
        assert!(endpoint("ftp://x").is_err());
        assert!(endpoint("http://host:99999/").is_err());
    }

    #[test]
    fn words_match_by_normalisation_prefix_and_distance() {
        let vocab: Vec<String> = ["music", "dance", "gaming", "talk"]
            .map(String::from)
            .to_vec();
        assert_eq!(match_word("music", &vocab, 2), Some((0, MatchHow::Exact)));
        assert_eq!(
            match_word(" MUSIC ", &vocab, 2),
            Some((0, MatchHow::Normalised))
        );
        assert_eq!(match_word("gam", &vocab, 2), Some((2, MatchHow::Fuzzy)));
        assert_eq!(match_word("muisc", &vocab, 2), Some((0, MatchHow::Fuzzy)));
        assert_eq!(match_word("cooking", &vocab, 2), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn json_objects_are_found_in_fenced_text() {
        let t = "Sure! ```json\n{\"a\": [\"x}\"], \"b\": {\"c\": 1}}\n``` done {bad";
        let m = extract_json_object(t).unwrap();
        assert_eq!(m["a"][0], "x}");
        assert!(extract_json_object("no object {here").is_none());
    }
}
