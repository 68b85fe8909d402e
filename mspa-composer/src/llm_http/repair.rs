//! The answer side of the HTTP composer: finding the JSON object in an answer text, the
//! JSON schema the answer should follow, and validation and repair of an answer against
//! the preference schema (key and value matching by normalisation, prefix and edit
//! distance; dropping and filling), with every repair reported as a [`Repair`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{LlmHttpComposer, cut};
use crate::error::{ComposerError, Result};
use crate::schema::{FieldKind, PreferenceFields, PreferenceSchema};

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

/// How many opening braces [`extract_json_object`] tries as the start of the object.
const MAX_OBJECT_STARTS: usize = 64;

/// Searches `text` for a JSON object: the whole text, else the first balanced `{...}`
/// that parses, among the first 64 opening braces (so code fences and prose around the
/// object are tolerated, and a long answer costs time linear in its length).
pub fn extract_json_object(text: &str) -> Option<Map<String, Value>> {
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text.trim()) {
        return Some(m);
    }
    let bytes = text.as_bytes();
    let mut start = 0;
    // Each candidate costs a scan to its closing brace: trying a bounded number of them
    // keeps an answer of many `{` linear in its length.
    let mut candidates = 0;
    while let Some(off) = text[start..].find('{') {
        candidates += 1;
        if candidates > MAX_OBJECT_STARTS {
            break;
        }
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

impl LlmHttpComposer {
    /// Validates an answer text against the schema and repairs it (see the module docs):
    /// the typed fields and every repair made. Errors ([`ComposerError::Parse`]): the text
    /// holds no JSON object.
    pub fn repair(&self, answer: &str) -> Result<(PreferenceFields, Vec<Repair>)> {
        let obj = extract_json_object(answer)
            .ok_or_else(|| ComposerError::parse(0, "the answer holds no JSON object"))?;
        Ok(self.repair_object(&obj))
    }

    /// Repairs a parsed answer object (see [`LlmHttpComposer::repair`]).
    pub(super) fn repair_object(
        &self,
        obj: &Map<String, Value>,
    ) -> (PreferenceFields, Vec<Repair>) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
