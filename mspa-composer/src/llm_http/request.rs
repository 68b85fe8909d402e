//! The request side of the HTTP composer: the system prompt (every field with its allowed
//! values) and the chat-completions body of one history (authors, frames,
//! `response_format`).

use std::collections::HashMap;

use mspa_core::{AuthorId, DAY_MS, Dataset};
use serde_json::{Map, Value, json};

use super::images::{base64_encode, image_mime};
use super::{LlmHttpComposer, cut};
use crate::composer::HistoryQuery;
use crate::error::Result;
use crate::schema::{FieldKind, PreferenceSchema};

/// One history's request, as built.
pub(super) struct BuiltRequest {
    /// The JSON body.
    pub(super) body: Value,
    /// Frames attached as images.
    pub(super) frames_sent: usize,
    /// Frames that could not be attached.
    pub(super) frames_skipped: usize,
}

/// Per author of a history: tips, total, last tip time, tip positions.
struct AuthorSummary {
    author: AuthorId,
    tips: usize,
    total: f64,
    last_ms: i64,
}

impl LlmHttpComposer {
    /// The system prompt: `instructions`, then every field with its allowed values and
    /// an example of the answer format.
    pub(super) fn build_system_prompt(instructions: &str, schema: &PreferenceSchema) -> String {
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

    /// The request of one history: the body and how many frames were attached.
    pub(super) fn build_request(
        &self,
        dataset: &Dataset,
        query: &HistoryQuery<'_>,
    ) -> Result<BuiltRequest> {
        query.check_authors(dataset)?;
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
                // A path that escapes the dataset root (also through a symlink) is never
                // read: it is skipped like an unreadable frame.
                let Ok(path) = dataset.resolve_media(a, rel) else {
                    skipped += 1;
                    continue;
                };
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
}
