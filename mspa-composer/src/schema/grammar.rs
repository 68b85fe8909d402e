//! The token level of a schema: what every token id stands for, encoding and decoding of
//! typed preferences, and [`GrammarState`], the grammar as a state machine for
//! constrained decoding (see the parent module's docs for the token layout).

use super::{PreferenceFields, PreferenceSchema};
use crate::error::{ComposerError, Result};
use crate::schema::FieldKind;

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
pub(super) struct SlotLayout {
    pub(super) start: u32,
    pub(super) len: u32,
}

/// Token ids of one field: its slots and, for a list, its end-of-field token.
#[derive(Clone, Debug)]
pub(super) struct FieldLayout {
    pub(super) slots: Vec<SlotLayout>,
    /// The end-of-field token of a list field.
    pub(super) end: Option<u32>,
}

impl PreferenceSchema {
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
