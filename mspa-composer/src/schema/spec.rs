//! The configuration side of a schema: the fields, their shapes and vocabularies, and the
//! serialised form read from JSON files.

use serde::{Deserialize, Serialize};

use super::RESERVED;
use crate::error::{ComposerError, Result};

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

/// The serialised form of a schema (what JSON config files hold).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaSpec {
    /// The fields, in text order.
    pub fields: Vec<FieldSpec>,
}

/// Checks a field name or value: non-empty, no surrounding whitespace, no reserved or
/// control character.
pub(super) fn check_word(what: &str, field: String, w: &str) -> Result<()> {
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
