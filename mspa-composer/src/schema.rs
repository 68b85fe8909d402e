//! The preference schema: which fields a structured preference text has, their value
//! vocabularies (configuration, not code), rendering and parsing of the text, and the
//! token level used by the neural generator (encoding, decoding, grammar states for
//! constrained decoding).
//!
//! # Text grammar
//!
//! ```text
//! name1: v[, v]* | name2: v[, v]* | ... | nameN: v[, v]*
//! ```
//!
//! Every field of the schema, always all of them, in schema order, separated by `" | "`;
//! a field's name and values by `": "`; values by `", "`. A [`FieldKind::List`] field lists
//! 1 to `max` distinct values; a [`FieldKind::Tuple`] field lists exactly one value per
//! slot. Values are never empty, never start or end with whitespace, and never contain
//! `:`, `|` or `,`. [`PreferenceSchema::parse`] keeps values that are not in the vocabulary
//! (a generator or an external MLLM may invent them; scoring counts them as wrong), and
//! reports every grammar violation with the byte offset where it starts.
//!
//! [`PreferenceSchema::synthetic_world`] is exactly the grammar of the synthetic world's
//! reference texts (`mspa_core::synth::truth`):
//! `categories: music, dance | energy: high | audio: electronic | visuals: neon |
//! language: english | format: solo | tipping: frequent, generous`.
//!
//! # Tokens
//!
//! Token ids: [`PreferenceSchema::PAD`] (0), [`PreferenceSchema::BOS`] (1),
//! [`PreferenceSchema::EOS`] (2), then field by field: a `List` field has one token per
//! value, an `<unk>` token and an end-of-field token; a `Tuple` field has, slot by slot,
//! one token per value and an `<unk>` token. Tokens are scoped to their field (and slot),
//! so `music` of `categories` and a `music` of another field are different tokens. A text
//! encodes as its values' tokens, the end-of-field token after every `List` field, and
//! [`PreferenceSchema::EOS`]; no BOS. A [`GrammarState`] says which tokens may come next,
//! so a decoder that only takes allowed tokens always produces a parsable text.
//!
//! ```
//! use mspa_composer::schema::PreferenceSchema;
//! let schema = PreferenceSchema::synthetic_world();
//! let text = "categories: music, dance | energy: high | audio: electronic | visuals: neon | \
//!             language: english | format: solo | tipping: frequent, generous";
//! let p = schema.parse(text).unwrap();
//! assert_eq!(schema.render(&p), text);
//! let tokens = schema.encode(&p);
//! assert_eq!(schema.decode(&tokens).unwrap(), p);
//! let err = schema.parse("categories: music | energy high").unwrap_err();
//! assert!(err.to_string().contains("byte 26"), "{err}");
//! ```

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ComposerError, Result};

/// Separator between fields.
pub const FIELD_SEP: &str = " | ";
/// Separator between a field's name and its values.
pub const NAME_SEP: &str = ": ";
/// Separator between values.
pub const VALUE_SEP: &str = ", ";

/// Characters that never appear in names or values (they delimit the grammar).
const RESERVED: [char; 3] = [':', '|', ','];

/// The shape of one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    /// One to `max` distinct values from `values`, strongest first
    /// (JSON: `{"type": "list", "values": [...], "max": 2}`).
    List {
        /// The vocabulary, in canonical order.
        values: Vec<String>,
        /// The most values a text lists (at least 1, at most `values.len()`).
        max: usize,
    },
    /// Exactly one value per slot, in slot order (JSON: `{"type": "tuple", "slots":
    /// [[...], [...]]}`), e.g. `tipping: FREQ, GEN`.
    Tuple {
        /// The vocabulary of each slot.
        slots: Vec<Vec<String>>,
    },
}

/// One field of the schema: its name in the text and its shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// The name written before `": "` (e.g. `categories`).
    pub name: String,
    /// List or tuple, with the vocabulary.
    pub kind: FieldKind,
}

impl FieldSpec {
    /// A list field.
    pub fn list(name: &str, values: &[&str], max: usize) -> Self {
        FieldSpec {
            name: name.to_string(),
            kind: FieldKind::List {
                values: values.iter().map(|v| v.to_string()).collect(),
                max,
            },
        }
    }

    /// A tuple field.
    pub fn tuple(name: &str, slots: &[&[&str]]) -> Self {
        FieldSpec {
            name: name.to_string(),
            kind: FieldKind::Tuple {
                slots: slots
                    .iter()
                    .map(|s| s.iter().map(|v| v.to_string()).collect())
                    .collect(),
            },
        }
    }

    /// The vocabularies of the field: one for a list, one per slot for a tuple.
    pub fn slot_values(&self) -> Vec<&[String]> {
        match &self.kind {
            FieldKind::List { values, .. } => vec![values.as_slice()],
            FieldKind::Tuple { slots } => slots.iter().map(|s| s.as_slice()).collect(),
        }
    }

    /// Whether the field is a list.
    pub fn is_list(&self) -> bool {
        matches!(self.kind, FieldKind::List { .. })
    }

    /// The number of vocabulary values over all slots.
    pub fn n_values(&self) -> usize {
        self.slot_values().iter().map(|s| s.len()).sum()
    }
}

/// A typed preference: the values of every schema field, in schema order.
///
/// Values outside the vocabulary are kept as written (see [`PreferenceSchema::parse`]);
/// [`PreferenceSchema::unknown_values`] lists them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PreferenceFields {
    /// One list per schema field, in order; a tuple field holds one value per slot.
    pub values: Vec<Vec<String>>,
}

impl PreferenceFields {
    /// Fields from plain string slices.
    pub fn from_strs(values: &[&[&str]]) -> Self {
        PreferenceFields {
            values: values
                .iter()
                .map(|f| f.iter().map(|v| v.to_string()).collect())
                .collect(),
        }
    }

    /// The values of the field called `name` (`None` if the schema has no such field).
    pub fn get<'a>(&'a self, schema: &PreferenceSchema, name: &str) -> Option<&'a [String]> {
        let k = schema.field_index(name)?;
        self.values.get(k).map(|v| v.as_slice())
    }
}

/// What a token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Padding ([`PreferenceSchema::PAD`]).
    Pad,
    /// Begin of sequence ([`PreferenceSchema::BOS`]).
    Bos,
    /// End of sequence ([`PreferenceSchema::EOS`]).
    Eos,
    /// Value `value` (index into the slot's vocabulary) of slot `slot` of field `field`.
    Value {
        /// Field index.
        field: usize,
        /// Slot index (0 for list fields).
        slot: usize,
        /// Value index in the slot's vocabulary.
        value: usize,
    },
    /// An out-of-vocabulary value of slot `slot` of field `field`.
    Unk {
        /// Field index.
        field: usize,
        /// Slot index (0 for list fields).
        slot: usize,
    },
    /// The end of list field `field`.
    EndOfField {
        /// Field index.
        field: usize,
    },
}

/// Token ids of one slot: values `start..start + len`, `<unk>` at `start + len`.
#[derive(Clone, Debug)]
struct SlotLayout {
    start: u32,
    len: u32,
}

#[derive(Clone, Debug)]
struct FieldLayout {
    slots: Vec<SlotLayout>,
    /// The end-of-field token of a list field.
    end: Option<u32>,
}

/// The serialised form of a schema (what JSON config files hold).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaSpec {
    /// The fields, in text order.
    pub fields: Vec<FieldSpec>,
}

/// The preference schema: fields, vocabularies, text grammar and token vocabulary.
///
/// Build it with [`PreferenceSchema::new`] (checked), [`PreferenceSchema::synthetic_world`]
/// or [`PreferenceSchema::from_json_file`]; serde reads and writes `{"fields": [...]}` and
/// checks the fields on reading. Treat `fields` as read-only: the token tables are built
/// from it once (build a new schema to change it).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "SchemaSpec", into = "SchemaSpec")]
pub struct PreferenceSchema {
    /// The fields, in text order.
    pub fields: Vec<FieldSpec>,
    layout: Vec<FieldLayout>,
    tokens: Vec<(String, TokenKind)>,
    /// Per field, per slot: value -> index.
    lookup: Vec<Vec<HashMap<String, usize>>>,
    /// Per field: offset of its first value in [`PreferenceSchema::multi_hot`].
    hot_offset: Vec<usize>,
}

impl PartialEq for PreferenceSchema {
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields
    }
}

impl TryFrom<SchemaSpec> for PreferenceSchema {
    type Error = ComposerError;
    fn try_from(spec: SchemaSpec) -> Result<Self> {
        PreferenceSchema::new(spec.fields)
    }
}

impl From<PreferenceSchema> for SchemaSpec {
    fn from(s: PreferenceSchema) -> Self {
        SchemaSpec { fields: s.fields }
    }
}

fn check_word(what: &str, field: String, w: &str) -> Result<()> {
    if w.is_empty() {
        return Err(ComposerError::config(field, format!("empty {what}")));
    }
    if w.trim() != w {
        return Err(ComposerError::config(
            field,
            format!("{what} `{w}` starts or ends with whitespace"),
        ));
    }
    if let Some(c) = w.chars().find(|c| RESERVED.contains(c) || c.is_control()) {
        return Err(ComposerError::config(
            field,
            format!("{what} `{w}` contains the reserved character {c:?}"),
        ));
    }
    Ok(())
}

/// Up to 24 characters of `text` from `pos`, stopping before `:` or `|`, for messages.
fn snippet(text: &str, pos: usize) -> String {
    let rest = &text[pos..];
    if rest.is_empty() {
        return "the end of the text".to_string();
    }
    let s: String = rest
        .chars()
        .take_while(|c| *c != ':' && *c != '|')
        .take(24)
        .collect();
    if s.is_empty() {
        format!("`{}`", rest.chars().next().unwrap_or(' '))
    } else {
        format!("`{s}`")
    }
}

impl PreferenceSchema {
    /// Padding token id.
    pub const PAD: u32 = 0;
    /// Begin-of-sequence token id (decoders start from it; [`PreferenceSchema::encode`]
    /// does not emit it).
    pub const BOS: u32 = 1;
    /// End-of-sequence token id.
    pub const EOS: u32 = 2;

    /// A checked schema: at least one field; names unique; names and values non-empty,
    /// without surrounding whitespace and without `:`, `|`, `,`; values unique within a
    /// field (slot) and not of the form `<...>` (reserved for special tokens); a list's
    /// `max` between 1 and its number of values; a tuple has at least one slot, each with
    /// at least one value.
    pub fn new(fields: Vec<FieldSpec>) -> Result<Self> {
        if fields.is_empty() {
            return Err(ComposerError::config(
                "fields",
                "a schema needs at least one field",
            ));
        }
        for (k, f) in fields.iter().enumerate() {
            check_word("field name", format!("fields[{k}].name"), &f.name)?;
            if fields[..k].iter().any(|g| g.name == f.name) {
                return Err(ComposerError::config(
                    format!("fields[{k}].name"),
                    format!("field `{}` appears twice", f.name),
                ));
            }
            let slots = f.slot_values();
            match &f.kind {
                FieldKind::List { values, max } => {
                    if *max == 0 || *max > values.len() {
                        return Err(ComposerError::config(
                            format!("fields[{k}].max"),
                            format!(
                                "`{}`: max must be between 1 and the number of values ({}), got {max}",
                                f.name,
                                values.len()
                            ),
                        ));
                    }
                }
                FieldKind::Tuple { slots } => {
                    if slots.is_empty() {
                        return Err(ComposerError::config(
                            format!("fields[{k}].slots"),
                            format!("`{}`: a tuple needs at least one slot", f.name),
                        ));
                    }
                }
            }
            for (s, values) in slots.iter().enumerate() {
                let at = if f.is_list() {
                    format!("fields[{k}].values")
                } else {
                    format!("fields[{k}].slots[{s}]")
                };
                if values.is_empty() {
                    return Err(ComposerError::config(
                        at,
                        format!("`{}` has no values", f.name),
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    check_word("value", at.clone(), v)?;
                    if v.starts_with('<') && v.ends_with('>') {
                        return Err(ComposerError::config(
                            at,
                            format!("value `{v}` looks like a special token (`<...>` is reserved)"),
                        ));
                    }
                    if values[..i].contains(v) {
                        return Err(ComposerError::config(
                            at,
                            format!("value `{v}` of `{}` appears twice", f.name),
                        ));
                    }
                }
            }
        }

        // Token tables.
        let mut tokens: Vec<(String, TokenKind)> = vec![
            ("<pad>".into(), TokenKind::Pad),
            ("<bos>".into(), TokenKind::Bos),
            ("<eos>".into(), TokenKind::Eos),
        ];
        let mut layout = Vec::with_capacity(fields.len());
        let mut lookup = Vec::with_capacity(fields.len());
        let mut hot_offset = Vec::with_capacity(fields.len());
        let mut hot = 0usize;
        for (k, f) in fields.iter().enumerate() {
            let slots = f.slot_values();
            let mut fl = FieldLayout {
                slots: Vec::with_capacity(slots.len()),
                end: None,
            };
            let mut maps = Vec::with_capacity(slots.len());
            hot_offset.push(hot);
            for (s, values) in slots.iter().enumerate() {
                let scope = if f.is_list() {
                    f.name.clone()
                } else {
                    format!("{}.{s}", f.name)
                };
                fl.slots.push(SlotLayout {
                    start: tokens.len() as u32,
                    len: values.len() as u32,
                });
                for (i, v) in values.iter().enumerate() {
                    tokens.push((
                        format!("{scope}={v}"),
                        TokenKind::Value {
                            field: k,
                            slot: s,
                            value: i,
                        },
                    ));
                }
                tokens.push((
                    format!("{scope}=<unk>"),
                    TokenKind::Unk { field: k, slot: s },
                ));
                maps.push(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (v.clone(), i))
                        .collect(),
                );
                hot += values.len();
            }
            if f.is_list() {
                fl.end = Some(tokens.len() as u32);
                tokens.push((
                    format!("{}=<end>", f.name),
                    TokenKind::EndOfField { field: k },
                ));
            }
            layout.push(fl);
            lookup.push(maps);
        }
        Ok(PreferenceSchema {
            fields,
            layout,
            tokens,
            lookup,
            hot_offset,
        })
    }

    /// Exactly the grammar of `mspa_core::synth`'s reference texts: `categories`,
    /// `energy`, `audio`, `visuals`, `language`, `format` (lists of at most 2, values in
    /// the world's order) and `tipping` (a tuple: frequency, generosity).
    pub fn synthetic_world() -> Self {
        use mspa_core::synth::Field;
        use mspa_core::synth::truth::{FREQUENCIES, GENEROSITIES};
        let mut fields: Vec<FieldSpec> = Field::ALL
            .iter()
            .map(|f| FieldSpec::list(f.name(), f.values(), 2))
            .collect();
        fields.push(FieldSpec::tuple("tipping", &[&FREQUENCIES, &GENEROSITIES]));
        PreferenceSchema::new(fields).expect("the synthetic world's grammar is a valid schema")
    }

    /// Reads a schema from a JSON file (`{"fields": [{"name": ..., "kind": {"type":
    /// "list", "values": [...], "max": 2}}, ...]}`), with errors that name the file.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ComposerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let spec: SchemaSpec = serde_json::from_str(&text).map_err(|e| ComposerError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        PreferenceSchema::new(spec.fields).map_err(|e| match e {
            ComposerError::Config { field, message } => ComposerError::Config {
                field: format!("{}: {field}", path.display()),
                message,
            },
            other => other,
        })
    }

    /// The schema as pretty JSON (what [`PreferenceSchema::from_json_file`] reads).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&SchemaSpec {
            fields: self.fields.clone(),
        })
        .expect("a schema always serialises")
    }

    /// The index of the field called `name`.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// The index of `value` in slot `slot` of field `field` (`None` when unknown).
    pub fn value_index(&self, field: usize, slot: usize, value: &str) -> Option<usize> {
        self.lookup.get(field)?.get(slot)?.get(value).copied()
    }

    /// The values of `p` outside the vocabulary, as (field index, value).
    pub fn unknown_values(&self, p: &PreferenceFields) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (k, values) in p.values.iter().enumerate().take(self.fields.len()) {
            for (i, v) in values.iter().enumerate() {
                let slot = if self.fields[k].is_list() { 0 } else { i };
                if self.value_index(k, slot, v).is_none() {
                    out.push((k, v.clone()));
                }
            }
        }
        out
    }

    /// The size of [`PreferenceSchema::multi_hot`]: all vocabulary values of all fields
    /// (and slots).
    pub fn n_values(&self) -> usize {
        self.fields.iter().map(|f| f.n_values()).sum()
    }

    /// A multi-hot vector over every vocabulary value (field by field, slot by slot):
    /// 1 for each listed known value, 0 elsewhere; unknown values are ignored.
    pub fn multi_hot(&self, p: &PreferenceFields) -> Vec<f32> {
        let mut out = vec![0.0f32; self.n_values()];
        for (k, values) in p.values.iter().enumerate().take(self.fields.len()) {
            let slots = self.fields[k].slot_values();
            for (i, v) in values.iter().enumerate() {
                let slot = if self.fields[k].is_list() { 0 } else { i };
                if let Some(idx) = self.value_index(k, slot, v) {
                    let before: usize = slots[..slot].iter().map(|s| s.len()).sum();
                    out[self.hot_offset[k] + before + idx] = 1.0;
                }
            }
        }
        out
    }

    /// Renders `p` as text (see the module docs for the grammar). Fields missing from `p`
    /// render with no values (which [`PreferenceSchema::parse`] rejects): `p` is meant to
    /// hold one list per schema field.
    pub fn render(&self, p: &PreferenceFields) -> String {
        let mut out = String::new();
        for (k, f) in self.fields.iter().enumerate() {
            if k > 0 {
                out.push_str(FIELD_SEP);
            }
            out.push_str(&f.name);
            out.push_str(NAME_SEP);
            if let Some(values) = p.values.get(k) {
                out.push_str(&values.join(VALUE_SEP));
            }
        }
        out
    }

    /// Parses a preference text. Trailing whitespace (a newline) is ignored; anything
    /// else that breaks the grammar is a [`ComposerError::Parse`] with the byte offset
    /// where the problem starts. Values outside the vocabulary are kept.
    pub fn parse(&self, text: &str) -> Result<PreferenceFields> {
        let text = text.trim_end();
        let n = self.fields.len();
        let mut pos = 0usize;
        let mut out = Vec::with_capacity(n);
        for (k, f) in self.fields.iter().enumerate() {
            if k > 0 {
                if text[pos..].starts_with(FIELD_SEP) {
                    pos += FIELD_SEP.len();
                } else if pos == text.len() {
                    return Err(ComposerError::parse(
                        pos,
                        format!(
                            "the text ends after field `{}`; expected ` | {}: ...`",
                            self.fields[k - 1].name,
                            f.name
                        ),
                    ));
                } else {
                    return Err(ComposerError::parse(
                        pos,
                        format!(
                            "expected ` | ` before field `{}`, found {}",
                            f.name,
                            snippet(text, pos)
                        ),
                    ));
                }
            }
            let rest = &text[pos..];
            if !(rest.starts_with(f.name.as_str()) && rest[f.name.len()..].starts_with(NAME_SEP)) {
                let message = if rest.starts_with(f.name.as_str()) {
                    format!("expected `: ` after field name `{}`", f.name)
                } else {
                    format!("expected field `{}`, found {}", f.name, snippet(text, pos))
                };
                let at = if rest.starts_with(f.name.as_str()) {
                    pos + f.name.len()
                } else {
                    pos
                };
                return Err(ComposerError::parse(at, message));
            }
            pos += f.name.len() + NAME_SEP.len();
            let last = k + 1 == n;
            let end = if last {
                text.len()
            } else {
                text[pos..]
                    .find(FIELD_SEP)
                    .map(|i| pos + i)
                    .unwrap_or(text.len())
            };
            out.push(self.parse_values(text, k, pos, end, last)?);
            pos = end;
        }
        Ok(PreferenceFields { values: out })
    }

    /// Parses the values of field `k` in `text[start..end]`.
    fn parse_values(
        &self,
        text: &str,
        k: usize,
        start: usize,
        end: usize,
        last: bool,
    ) -> Result<Vec<String>> {
        let f = &self.fields[k];
        let region = &text[start..end];
        let mut values: Vec<String> = Vec::new();
        let mut offset = start;
        for piece in region.split(VALUE_SEP) {
            if piece.is_empty() {
                return Err(ComposerError::parse(
                    offset,
                    format!("empty value in field `{}`", f.name),
                ));
            }
            if piece.trim() != piece {
                return Err(ComposerError::parse(
                    offset,
                    format!(
                        "value `{piece}` of field `{}` has surrounding whitespace",
                        f.name
                    ),
                ));
            }
            if let Some((i, c)) = piece
                .char_indices()
                .find(|(_, c)| RESERVED.contains(c) || c.is_control())
            {
                let message = match c {
                    '|' if last => format!("unexpected text after the last field `{}`", f.name),
                    '|' | ':' => format!(
                        "`{c}` inside a value of field `{}` (missing ` | ` between fields?)",
                        f.name
                    ),
                    ',' => format!(
                        "`,` inside a value of field `{}` (values are separated by `, `)",
                        f.name
                    ),
                    _ => format!("control character inside a value of field `{}`", f.name),
                };
                return Err(ComposerError::parse(offset + i, message));
            }
            match &f.kind {
                FieldKind::List { max, .. } => {
                    if values.iter().any(|v| v == piece) {
                        return Err(ComposerError::parse(
                            offset,
                            format!("value `{piece}` repeats in field `{}`", f.name),
                        ));
                    }
                    if values.len() == *max {
                        return Err(ComposerError::parse(
                            offset,
                            format!("field `{}` lists more than {max} values", f.name),
                        ));
                    }
                }
                FieldKind::Tuple { slots } => {
                    if values.len() == slots.len() {
                        return Err(ComposerError::parse(
                            offset,
                            format!(
                                "field `{}` takes exactly {} values; this one is extra",
                                f.name,
                                slots.len()
                            ),
                        ));
                    }
                }
            }
            values.push(piece.to_string());
            offset += piece.len() + VALUE_SEP.len();
        }
        if let FieldKind::Tuple { slots } = &f.kind
            && values.len() < slots.len()
        {
            return Err(ComposerError::parse(
                end,
                format!(
                    "field `{}` takes exactly {} values, found {}",
                    f.name,
                    slots.len(),
                    values.len()
                ),
            ));
        }
        Ok(values)
    }

    /// The number of token ids (specials, values, `<unk>` and end-of-field tokens).
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The longest token sequence the grammar allows, EOS included (no BOS): every list
    /// at its `max` plus its end-of-field token, every tuple slot, and EOS.
    pub fn max_tokens(&self) -> usize {
        self.fields
            .iter()
            .map(|f| match &f.kind {
                FieldKind::List { max, .. } => max + 1,
                FieldKind::Tuple { slots } => slots.len(),
            })
            .sum::<usize>()
            + 1
    }

    /// A readable name of a token: `<pad>`, `<bos>`, `<eos>`, `field=value`,
    /// `field=<unk>`, `field=<end>`, and `field.slot=value` for tuple slots; `<invalid>`
    /// for ids outside the vocabulary.
    pub fn token_text(&self, tok: u32) -> &str {
        self.tokens
            .get(tok as usize)
            .map(|(t, _)| t.as_str())
            .unwrap_or("<invalid>")
    }

    /// What a token stands for (`None` for ids outside the vocabulary).
    pub fn token_kind(&self, tok: u32) -> Option<TokenKind> {
        self.tokens.get(tok as usize).map(|(_, k)| *k)
    }

    /// The token of a value (`None` when the value is not in the vocabulary).
    pub fn value_token(&self, field: usize, slot: usize, value: &str) -> Option<u32> {
        let idx = self.value_index(field, slot, value)?;
        Some(self.layout[field].slots[slot].start + idx as u32)
    }

    /// The `<unk>` token of a field's slot.
    pub fn unk_token(&self, field: usize, slot: usize) -> u32 {
        let s = &self.layout[field].slots[slot];
        s.start + s.len
    }

    /// The end-of-field token of a list field (`None` for tuples).
    pub fn end_token(&self, field: usize) -> Option<u32> {
        self.layout[field].end
    }

    /// Encodes `p`: per field its values' tokens (unknown values as the field's `<unk>`),
    /// the end-of-field token after a list field, then [`PreferenceSchema::EOS`]; no BOS.
    /// A missing tuple value encodes as `<unk>`, extra tuple values are dropped.
    pub fn encode(&self, p: &PreferenceFields) -> Vec<u32> {
        let mut out = Vec::new();
        for (k, f) in self.fields.iter().enumerate() {
            let values = p.values.get(k).map(|v| v.as_slice()).unwrap_or(&[]);
            match &f.kind {
                FieldKind::List { .. } => {
                    for v in values {
                        out.push(
                            self.value_token(k, 0, v)
                                .unwrap_or_else(|| self.unk_token(k, 0)),
                        );
                    }
                    out.push(self.layout[k].end.expect("list fields have an end token"));
                }
                FieldKind::Tuple { slots } => {
                    for s in 0..slots.len() {
                        out.push(
                            values
                                .get(s)
                                .and_then(|v| self.value_token(k, s, v))
                                .unwrap_or_else(|| self.unk_token(k, s)),
                        );
                    }
                }
            }
        }
        out.push(Self::EOS);
        out
    }

    /// Decodes tokens produced by [`PreferenceSchema::encode`] or by a decoder (a leading
    /// BOS is skipped; decoding stops at EOS). The tokens must follow the grammar, except
    /// that `<unk>` tokens are accepted and decode to the value `<unk>` (repeated `<unk>`s
    /// in one list field collapse into one). A sequence without EOS decodes if every field
    /// is complete. Errors are [`ComposerError::Parse`] whose position is the token index.
    pub fn decode(&self, tokens: &[u32]) -> Result<PreferenceFields> {
        let mut values: Vec<Vec<String>> = vec![Vec::new(); self.fields.len()];
        let mut state = self.grammar();
        for (i, &tok) in tokens.iter().enumerate() {
            if i == 0 && tok == Self::BOS {
                continue;
            }
            if state.is_complete() {
                break;
            }
            let kind = state
                .step(self, tok, true)
                .map_err(|m| ComposerError::parse(i, m))?;
            match kind {
                Some(TokenKind::Value { field, slot, value }) => {
                    values[field].push(self.fields[field].slot_values()[slot][value].clone());
                }
                Some(TokenKind::Unk { field, .. }) => {
                    let unk = "<unk>".to_string();
                    if !(self.fields[field].is_list() && values[field].contains(&unk)) {
                        values[field].push(unk);
                    }
                }
                _ => {}
            }
        }
        if !state.is_complete() && !state.fields_done() {
            let field = &self.fields[state.field.min(self.fields.len() - 1)].name;
            return Err(ComposerError::parse(
                tokens.len(),
                format!("the tokens end inside field `{field}` without EOS"),
            ));
        }
        Ok(PreferenceFields { values })
    }

    /// The grammar's start state (before the first field's first token).
    pub fn grammar(&self) -> GrammarState {
        GrammarState {
            field: 0,
            count: 0,
            used: Vec::new(),
            finished: false,
            steps: 0,
            n_fields: self.fields.len(),
        }
    }
}

/// Where a decoder is in the grammar: which field, how many values of it so far, which
/// list values are taken. Start from [`PreferenceSchema::grammar`].
///
/// A decoder that only ever takes a token from [`GrammarState::allowed`] produces a
/// sequence that decodes, and whose rendering parses, after at most
/// `sum(max + 1 over lists) + sum(slots over tuples) + 1` tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrammarState {
    /// The current field (`fields.len()` once every field is complete).
    field: usize,
    /// Values taken in the current field (the slot index for tuples).
    count: usize,
    /// Value tokens taken in the current list field.
    used: Vec<u32>,
    /// EOS was taken.
    finished: bool,
    /// Tokens taken so far (for error positions).
    steps: usize,
    /// The schema's number of fields.
    n_fields: usize,
}

impl GrammarState {
    /// The tokens that may come next, in increasing id order: the current list field's
    /// untaken values while fewer than `max` are listed and its end-of-field token once
    /// one is; the current tuple slot's values; EOS after the last field; only PAD once
    /// EOS was taken. `<unk>` tokens are never allowed.
    pub fn allowed(&self, schema: &PreferenceSchema) -> Vec<u32> {
        if self.finished {
            return vec![PreferenceSchema::PAD];
        }
        if self.field >= schema.fields.len() {
            return vec![PreferenceSchema::EOS];
        }
        let layout = &schema.layout[self.field];
        match &schema.fields[self.field].kind {
            FieldKind::List { max, .. } => {
                let s = &layout.slots[0];
                let mut out: Vec<u32> = if self.count < *max {
                    (s.start..s.start + s.len)
                        .filter(|t| !self.used.contains(t))
                        .collect()
                } else {
                    Vec::new()
                };
                if self.count >= 1 {
                    out.push(layout.end.expect("list fields have an end token"));
                }
                out
            }
            FieldKind::Tuple { .. } => {
                let s = &layout.slots[self.count];
                (s.start..s.start + s.len).collect()
            }
        }
    }

    /// Whether `tok` is allowed next (the same as `allowed(schema).contains(&tok)`).
    pub fn is_allowed(&self, schema: &PreferenceSchema, tok: u32) -> bool {
        let mut probe = self.clone();
        probe.step(schema, tok, false).is_ok()
    }

    /// Takes `tok`; an error ([`ComposerError::Parse`] with the token index) when it is
    /// not allowed, leaving the state unchanged. PAD after EOS is accepted and changes
    /// nothing.
    pub fn advance(&mut self, schema: &PreferenceSchema, tok: u32) -> Result<()> {
        let at = self.steps;
        self.step(schema, tok, false)
            .map(|_| ())
            .map_err(|m| ComposerError::parse(at, m))
    }

    /// Whether EOS was taken.
    pub fn is_complete(&self) -> bool {
        self.finished
    }

    /// Whether every field is complete (only EOS may follow, or EOS was taken).
    pub fn fields_done(&self) -> bool {
        self.finished || self.field >= self.n_fields
    }

    /// The index of the field the next token belongs to (the number of fields once every
    /// field is complete).
    pub fn field(&self) -> usize {
        self.field
    }

    /// One step; `lenient` also accepts `<unk>` tokens where a value may come (used by
    /// decode). Returns the kind of the token taken (`None` for PAD after EOS).
    fn step(
        &mut self,
        schema: &PreferenceSchema,
        tok: u32,
        lenient: bool,
    ) -> std::result::Result<Option<TokenKind>, String> {
        let name = |t: u32| schema.token_text(t).to_string();
        if self.finished {
            return if tok == PreferenceSchema::PAD {
                Ok(None)
            } else {
                Err(format!(
                    "token `{}` after EOS (only padding may follow)",
                    name(tok)
                ))
            };
        }
        let n = schema.fields.len();
        if self.field >= n {
            return if tok == PreferenceSchema::EOS {
                self.finished = true;
                self.steps += 1;
                Ok(Some(TokenKind::Eos))
            } else {
                Err(format!(
                    "expected EOS after the last field, found `{}`",
                    name(tok)
                ))
            };
        }
        let kind = schema
            .token_kind(tok)
            .ok_or_else(|| format!("token id {tok} is outside the vocabulary"))?;
        let f = &schema.fields[self.field];
        let expected = || match &f.kind {
            FieldKind::List { .. } if self.count >= 1 => {
                format!("a value of `{}` or its end", f.name)
            }
            FieldKind::List { .. } => format!("a value of `{}`", f.name),
            FieldKind::Tuple { .. } => format!("value {} of `{}`", self.count + 1, f.name),
        };
        match (&f.kind, kind) {
            (FieldKind::List { max, .. }, TokenKind::Value { field, .. })
            | (FieldKind::List { max, .. }, TokenKind::Unk { field, .. })
                if field == self.field =>
            {
                let is_unk = matches!(kind, TokenKind::Unk { .. });
                if is_unk && !lenient {
                    return Err(format!("`{}` is never allowed", name(tok)));
                }
                if self.count >= *max {
                    return Err(format!(
                        "`{}` would be value {} of `{}` (at most {max})",
                        name(tok),
                        self.count + 1,
                        f.name
                    ));
                }
                if !is_unk && self.used.contains(&tok) {
                    return Err(format!("`{}` repeats a value", name(tok)));
                }
                self.used.push(tok);
                self.count += 1;
            }
            (FieldKind::List { .. }, TokenKind::EndOfField { field }) if field == self.field => {
                if self.count == 0 {
                    return Err(format!("field `{}` ends before its first value", f.name));
                }
                self.next_field();
            }
            (FieldKind::Tuple { slots }, TokenKind::Value { field, slot, .. })
            | (FieldKind::Tuple { slots }, TokenKind::Unk { field, slot })
                if field == self.field && slot == self.count =>
            {
                if matches!(kind, TokenKind::Unk { .. }) && !lenient {
                    return Err(format!("`{}` is never allowed", name(tok)));
                }
                self.count += 1;
                if self.count == slots.len() {
                    self.next_field();
                }
            }
            _ => {
                return Err(format!("expected {}, found `{}`", expected(), name(tok)));
            }
        }
        self.steps += 1;
        Ok(Some(kind))
    }

    fn next_field(&mut self) {
        self.field += 1;
        self.count = 0;
        self.used.clear();
    }
}
