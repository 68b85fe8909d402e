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
//! * `client.rs`: the HTTP/1.1 client (URL, request, response reading, error bodies).
//! * `repair.rs`: finding the JSON object in an answer, the answer's JSON schema, and
//!   validation and repair against the schema ([`Repair`]).
//! * `images.rs`: base64 and the MIME type of frames.
//! * this file: the composer, its exchange loop (retries, backoff), evidence and
//!   batching.

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

pub use config::{DEFAULT_INSTRUCTIONS, LlmHttpConfig};
pub use images::base64_encode;
pub use repair::{Repair, RepairKind, extract_json_object, response_json_schema};

use client::{HttpUrl, answer_content, endpoint, error_message, post, retry_after};

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
