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
//! * **Transport.** [`ureq`] over HTTP/1.1, `http://` or `https://` (TLS by rustls with
//!   the ring provider; servers are verified against Mozilla's roots, or against the
//!   roots of [`LlmHttpConfig::ca_cert_pem`]; verification is never turned off). The API
//!   key comes from the environment variable [`LlmHttpConfig::api_key_env`] (default
//!   `MSPA_LLM_API_KEY`) or [`LlmHttpConfig::api_key`] and is sent as
//!   `Authorization: Bearer`; it is never serialised, printed by `Debug`, cached, or
//!   shown in an error message (removed from the server's messages too). Every attempt
//!   must finish within [`LlmHttpConfig::timeout_s`] (resolving, connecting, the TLS
//!   handshake, sending and the whole answer, however slowly it drips); bodies over
//!   [`LlmHttpConfig::max_response_bytes`] are cut off at that size and fail. Redirects
//!   are not followed (the key is never sent elsewhere) and environment proxies are not
//!   used. Connection errors, timeouts, answers that are not JSON or hold no JSON
//!   object, 408, 429 and 5xx are retried up to [`LlmHttpConfig::max_retries`] times
//!   with exponential backoff (`backoff_base_s * 2^k`), or after the server's
//!   `Retry-After` seconds, both capped by [`LlmHttpConfig::max_backoff_s`]; TLS and
//!   certificate failures, bodies over the limit, redirects and any other status fail at
//!   once with [`ComposerError::Http`] naming the status and the server's error message.
//! * **Cache.** With [`LlmHttpConfig::cache_dir`] set, every answer with a JSON object
//!   is stored in a file named by the BLAKE3 hash of the endpoint, the model and the
//!   exact request body (not the key), written atomically; a request whose hash has an
//!   entry is answered from it without contacting the server
//!   ([`LlmComposition::cached`], [`LlmHttpStats::cache_hits`]). A rerun of a job costs
//!   no request, and a job stopped halfway resumes after its last stored answer.
//!
//! * **Embedding.** The MiniLM sentence embedding of the text when
//!   [`ComposeContext::text_encoder`] is set, else the schema's multi-hot vector.
//! * **Evidence.** For every value: the tips of authors whose title or description
//!   mentions it (as whole words, case-insensitive), largest amounts first; empty when
//!   none does.
//!
//! ```no_run
//! use mspa_composer::llm_http::{LlmHttpComposer, LlmHttpConfig};
//! use mspa_composer::schema::{FieldSpec, PreferenceSchema};
//! let config = LlmHttpConfig {
//!     base_url: "http://127.0.0.1:8000/v1".into(),
//!     model: "Qwen/Qwen2.5-VL-7B-Instruct".into(),
//!     ..LlmHttpConfig::default()
//! };
//! let schema = PreferenceSchema::new(vec![FieldSpec::list("categories", &["music", "talk"], 2)]).unwrap();
//! let composer = LlmHttpComposer::new(config, schema).unwrap();
//! # let _ = composer;
//! ```
//!
//! # Files
//!
//! * `config.rs`: [`LlmHttpConfig`].
//! * `request.rs`: the system prompt and the request body of a history.
//! * `client.rs`: the transport on `ureq` (URL, root certificates, one bounded `POST`,
//!   error bodies, `Retry-After`, the answer text).
//! * `cache.rs`: the answer cache (keys, atomic entries).
//! * `repair.rs`: finding the JSON object in an answer, the answer's JSON schema, and
//!   validation and repair against the schema ([`Repair`]).
//! * `images.rs`: base64 and the MIME type of frames.
//! * this file: the composer, its exchange loop (retries, backoff), evidence and
//!   batching.

mod cache;
mod client;
mod config;
mod images;
mod repair;
mod request;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use mspa_core::{AuthorId, Dataset};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::composer::{ComposeContext, Composer, FieldEvidence, HistoryQuery, Preference};
use crate::error::{ComposerError, Result};
use crate::schema::{FieldKind, PreferenceFields, PreferenceSchema};
use crate::template::words;

pub use config::{DEFAULT_API_KEY_ENV, DEFAULT_INSTRUCTIONS, LlmHttpConfig};
pub use images::base64_encode;
pub use repair::{Repair, RepairKind, extract_json_object, response_json_schema};

use cache::AnswerCache;
use client::{
    Failure, HttpUrl, Transport, answer_content, endpoint, error_message, read_root_certs,
    retry_after,
};

/// Counters over every composition of one [`LlmHttpComposer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmHttpStats {
    /// HTTP requests sent (attempts, retries included; answers from the cache send
    /// none).
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
    /// Answers read from the cache (no request sent).
    #[serde(default)]
    pub cache_hits: u64,
    /// Answers stored in the cache.
    #[serde(default)]
    pub cache_writes: u64,
    /// Answers that could not be stored in the cache (the composition still succeeds).
    #[serde(default)]
    pub cache_errors: u64,
}

/// One composition with everything the server exchange produced.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmComposition {
    /// The composed preference (text, fields, embedding, evidence).
    pub preference: Preference,
    /// What was repaired in the answer (empty when it followed the schema).
    pub repairs: Vec<Repair>,
    /// HTTP requests sent for it (1 + retries; 0 when it came from the cache).
    pub attempts: u32,
    /// Whether the answer came from [`LlmHttpConfig::cache_dir`].
    pub cached: bool,
    /// The model's answer text (`choices[0].message.content`, the API key removed).
    pub content: String,
    /// Frames sent as images.
    pub frames_sent: usize,
    /// Frames that could not be sent (missing, too large or not an image).
    pub frames_skipped: usize,
}

/// Everything of one composition except the embedding.
struct Remote {
    fields: PreferenceFields,
    evidence: Vec<FieldEvidence>,
    repairs: Vec<Repair>,
    attempts: u32,
    cached: bool,
    content: String,
    frames_sent: usize,
    frames_skipped: usize,
}

/// An answer with a JSON object, from the server or the cache.
struct Answer {
    content: String,
    object: Map<String, Value>,
    attempts: u32,
    cached: bool,
}

/// The composer that asks an OpenAI-compatible chat-completions server (see the module
/// docs).
pub struct LlmHttpComposer {
    config: LlmHttpConfig,
    schema: PreferenceSchema,
    url: HttpUrl,
    transport: Transport,
    /// The key in use (from the config or the environment).
    api_key: Option<String>,
    /// What [`Self::redact`] removes: the key, then its base64 forms (see
    /// [`key_secrets`]).
    secrets: Vec<String>,
    cache: Option<AnswerCache>,
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
            .field("api_key_set", &self.api_key.is_some())
            .field("fields", &self.schema.fields.len())
            .finish()
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

/// The shortest base64 fragment of the key that is redacted (shorter ones could match
/// unrelated text).
const MIN_REDACTED_FRAGMENT: usize = 12;

/// The texts [`LlmHttpComposer::redact`] removes for `key`: the key itself, then the
/// parts of its base64 encoding that appear in the base64 of *any* text containing the
/// key (at each of the three byte alignments, in the standard and the URL-safe alphabet),
/// so that a server echoing `Authorization` encoded (`Bearer <key>`, `user:<key>`) is
/// redacted as well.
fn key_secrets(key: &str) -> Vec<String> {
    let mut out = vec![key.to_string()];
    for offset in 0..3usize {
        let mut data = vec![0u8; offset];
        data.extend_from_slice(key.as_bytes());
        let text = base64_encode(&data);
        // Characters that depend on the prefix bytes or on the bytes after the key.
        let start = (offset * 8).div_ceil(6);
        let end = ((offset + key.len()) * 8) / 6;
        if end < start + MIN_REDACTED_FRAGMENT {
            continue;
        }
        let standard = text[start..end].to_string();
        let url_safe = standard.replace('+', "-").replace('/', "_");
        for s in [standard, url_safe] {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// Whether the word sequence `needle` occurs in `hay`.
fn contains_words(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

impl LlmHttpComposer {
    /// Checks the config against the schema and prepares the endpoint, the response
    /// schema and the system prompt.
    ///
    /// The API key is read here ([`LlmHttpConfig::api_key`], else the variable
    /// [`LlmHttpConfig::api_key_env`]), the root certificates of
    /// [`LlmHttpConfig::ca_cert_pem`] are loaded and [`LlmHttpConfig::cache_dir`] is
    /// created.
    ///
    /// Errors ([`ComposerError::Config`]): a `base_url` that is not `http://` or
    /// `https://`, an empty `model`, an `api_key` or `model` with line breaks, an
    /// `api_key_env` that is not a variable name, a `ca_cert_pem` without a readable
    /// certificate,
    /// non-positive `timeout_s`, negative backoff or temperature, zero `max_authors`,
    /// `concurrency` or `max_text_chars`, a `max_response_bytes` under 1 KiB, a
    /// `fallback` for a field the schema lacks or with values it does not allow.
    pub fn new(config: LlmHttpConfig, schema: PreferenceSchema) -> Result<Self> {
        let url = endpoint(&config.base_url).map_err(|m| ComposerError::config("base_url", m))?;
        config.validate()?;
        let api_key = match (&config.api_key, &config.api_key_env) {
            (Some(k), _) => Some(k.trim().to_string()),
            (None, Some(name)) => std::env::var(name).ok().map(|k| k.trim().to_string()),
            (None, None) => None,
        }
        .filter(|k| !k.is_empty());
        if let Some(k) = &api_key
            && k.chars().any(char::is_control)
        {
            // Named without its value: the key must not reach an error message.
            let field = if config.api_key.is_some() {
                "api_key".to_string()
            } else {
                format!(
                    "api_key_env ({})",
                    config.api_key_env.as_deref().unwrap_or("")
                )
            };
            return Err(ComposerError::config(
                field,
                "the key contains control characters",
            ));
        }
        let roots = match &config.ca_cert_pem {
            Some(path) => {
                Some(read_root_certs(path).map_err(|m| ComposerError::config("ca_cert_pem", m))?)
            }
            None => None,
        };
        let cache = match &config.cache_dir {
            Some(dir) => Some(
                AnswerCache::open(dir, config.max_response_bytes.saturating_mul(2)).map_err(
                    |source| ComposerError::Io {
                        path: dir.clone(),
                        source,
                    },
                )?,
            ),
            None => None,
        };
        let transport = Transport::new(
            Duration::from_secs_f64(config.timeout_s),
            config.max_response_bytes,
            roots,
        );
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
            transport,
            secrets: api_key.as_deref().map(key_secrets).unwrap_or_default(),
            api_key,
            cache,
            response_schema,
            system_prompt,
            fallback,
            stats: Mutex::new(LlmHttpStats::default()),
        })
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

    /// Removes the API key, plain or base64-encoded, from a text that may quote it (an
    /// error body, an answer, a redirect target).
    fn redact(&self, mut text: String) -> String {
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        text
    }

    fn http_error(&self, status: Option<u16>, attempts: u32, message: String) -> ComposerError {
        ComposerError::Http {
            url: self.url.display(),
            status,
            attempts,
            message: self.redact(message),
        }
    }

    /// The answer of `body`: from the cache when it holds one, else from the server
    /// (then stored in the cache).
    fn exchange(&self, body: &[u8]) -> Result<Answer> {
        let Some(cache) = &self.cache else {
            return self.exchange_remote(body);
        };
        let endpoint = self.url.display();
        let model = &self.config.model;
        let key = AnswerCache::key(&endpoint, model, body);
        if let Some(content) = cache.get(&key, &endpoint, model)
            && let Some(object) = extract_json_object(&content)
        {
            self.bump(|s| s.cache_hits += 1);
            return Ok(Answer {
                content,
                object,
                attempts: 0,
                cached: true,
            });
        }
        let answer = self.exchange_remote(body)?;
        match cache.put(&key, &endpoint, model, &answer.content) {
            Ok(()) => self.bump(|s| s.cache_writes += 1),
            Err(_) => self.bump(|s| s.cache_errors += 1),
        }
        Ok(answer)
    }

    /// Sends `body` with retries until an answer with a JSON object arrives.
    fn exchange_remote(&self, body: &[u8]) -> Result<Answer> {
        let c = &self.config;
        let max_wait = Duration::from_secs_f64(c.max_backoff_s);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            self.bump(|s| s.requests += 1);
            // (message, status, server's Retry-After) of a retryable failure.
            let (message, status, wait) =
                match self
                    .transport
                    .post(&self.url, self.api_key.as_deref(), body)
                {
                    Ok(resp) if (200..300).contains(&resp.status) => {
                        match answer_content(&resp.body) {
                            Ok(content) => {
                                let content = self.redact(content);
                                match extract_json_object(&content) {
                                    Some(object) => {
                                        return Ok(Answer {
                                            content,
                                            object,
                                            attempts: attempt,
                                            cached: false,
                                        });
                                    }
                                    None => (
                                        format!(
                                            "the answer has no JSON object: `{}`",
                                            cut(&content, 200)
                                        ),
                                        Some(resp.status),
                                        None,
                                    ),
                                }
                            }
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
                    Ok(resp) if (300..400).contains(&resp.status) => {
                        return Err(self.http_error(
                            Some(resp.status),
                            attempt,
                            format!(
                                "HTTP {} {}: redirects are not followed (to `{}`); set \
                                 base_url to the server's final address",
                                resp.status,
                                resp.reason,
                                cut(resp.location.as_deref().unwrap_or("(no Location)"), 200)
                            ),
                        ));
                    }
                    Ok(resp) => {
                        return Err(self.http_error(
                            Some(resp.status),
                            attempt,
                            format!(
                                "HTTP {} {}: {}",
                                resp.status,
                                resp.reason,
                                error_message(&resp.body)
                            ),
                        ));
                    }
                    Err(Failure::Fatal(m)) => return Err(self.http_error(None, attempt, m)),
                    Err(f) => (f.to_string(), None, None),
                };
            if attempt > c.max_retries {
                return Err(self.http_error(status, attempt, message));
            }
            self.bump(|s| s.retries += 1);
            let backoff = wait.unwrap_or_else(|| {
                let exp = c.backoff_base_s * 2f64.powi((attempt - 1).min(60) as i32);
                Duration::from_secs_f64(exp.min(c.max_backoff_s))
            });
            std::thread::sleep(backoff.min(max_wait));
        }
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
            let answer = self.exchange(&body)?;
            let (fields, repairs) = self.repair_object(&answer.object);
            let evidence = self.evidence(dataset, query, &fields);
            Ok(Remote {
                fields,
                evidence,
                repairs,
                attempts: answer.attempts,
                cached: answer.cached,
                content: answer.content,
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
                cached: r.cached,
                content: r.content,
                frames_sent: r.frames_sent,
                frames_skipped: r.frames_skipped,
            })
            .collect())
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
