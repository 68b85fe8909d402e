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
//! The schema is configuration: a JSON spec ([`PreferenceSchema::from_json`]), a file,
//! or fields built in code. A synthetic world publishes the grammar of its reference
//! texts in that form, for example
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
//! let schema = PreferenceSchema::from_json(
//!     r#"{"fields": [
//!         {"name": "categories", "kind": {"type": "list", "values": ["music", "dance", "talk"], "max": 2}},
//!         {"name": "tipping", "kind": {"type": "tuple", "slots": [["rare", "frequent"], ["modest", "generous"]]}}
//!     ]}"#,
//! )
//! .unwrap();
//! let text = "categories: music, dance | tipping: frequent, generous";
//! let p = schema.parse(text).unwrap();
//! assert_eq!(schema.render(&p), text);
//! let tokens = schema.encode(&p);
//! assert_eq!(schema.decode(&tokens).unwrap(), p);
//! let err = schema.parse("categories: music | tipping frequent").unwrap_err();
//! assert!(err.to_string().contains("byte 27"), "{err}");
//! ```
//!
//! # Files
//!
//! * `spec.rs`: the configuration types ([`FieldSpec`], [`FieldKind`], [`SchemaSpec`]).
//! * `text.rs`: [`PreferenceSchema::render`] and [`PreferenceSchema::parse`].
//! * `grammar.rs`: the token vocabulary ([`TokenKind`], `encode`/`decode`) and
//!   [`GrammarState`] for constrained decoding.
//! * `multihot.rs`: the multi-hot vector over every vocabulary value.

mod grammar;
mod multihot;
mod spec;
mod text;

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ComposerError, Result, read_json_file};

pub use grammar::{GrammarState, TokenKind};
pub use spec::{FieldKind, FieldSpec, SchemaSpec};

use grammar::{FieldLayout, SlotLayout};
use spec::check_word;

/// Separator between fields.
pub const FIELD_SEP: &str = " | ";
/// Separator between a field's name and its values.
pub const NAME_SEP: &str = ": ";
/// Separator between values.
pub const VALUE_SEP: &str = ", ";

/// Characters that never appear in names or values (they delimit the grammar).
const RESERVED: [char; 3] = [':', '|', ','];

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

/// The preference schema: fields, vocabularies, text grammar and token vocabulary.
///
/// Build it with [`PreferenceSchema::new`] (checked), [`PreferenceSchema::from_json`]
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

    /// Reads a schema from JSON text (`{"fields": [{"name": ..., "kind": {"type":
    /// "list", "values": [...], "max": 2}}, ...]}`).
    pub fn from_json(text: &str) -> Result<Self> {
        let spec: SchemaSpec = serde_json::from_str(text)
            .map_err(|e| ComposerError::data(format!("schema JSON: {e}")))?;
        PreferenceSchema::new(spec.fields)
    }

    /// Reads a schema from a JSON file (`{"fields": [{"name": ..., "kind": {"type":
    /// "list", "values": [...], "max": 2}}, ...]}`), with errors that name the file.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let spec: SchemaSpec = read_json_file(path)?;
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
}
