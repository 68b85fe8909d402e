//! The text form of a preference: [`PreferenceSchema::render`] and
//! [`PreferenceSchema::parse`] (the grammar is in the parent module's docs).

use super::{FIELD_SEP, NAME_SEP, PreferenceFields, PreferenceSchema, RESERVED, VALUE_SEP};
use crate::error::{ComposerError, Result};
use crate::schema::FieldKind;

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
}
