//! The reference-text grammar of the synthetic world: per-field preference weights,
//! rendering them as a reference text and parsing one back.
//!
//! ```text
//! categories: V[, V] | energy: V[, V] | audio: V[, V] | visuals: V[, V] | language: V[, V] | format: V[, V] | tipping: FREQ, GEN
//! ```
//!
//! * Seven fields, always all of them, always in this order, separated by `" | "`; a
//!   field's name and values are separated by `": "`, values by `", "`.
//! * The six attribute fields list the values of the user's preference weights at time
//!   `t`, strongest first (ties: value-list order): the strongest always, the second too
//!   when its weight is at least [`SECOND_VALUE_MIN`] (0.3). At most two values. Weights of
//!   a field sum to 1, so a single favourite holds about `preference_focus`, two
//!   favourites about half of it each, and a user mid-drift lists old and new.
//! * Allowed values: those of [`super::Field::values`] (`categories`: music, dance, gaming,
//!   talk, cooking, art, sports, outdoor; `energy`: low, medium, high; `audio`: electronic,
//!   acoustic, vocal, ambient, rock; `visuals`: neon, pastel, dark, natural, monochrome;
//!   `language`: english, spanish, portuguese, french; `format`: solo, collab, tutorial,
//!   challenge).
//! * `tipping` lists exactly two values: the frequency from the user's latent tip rate
//!   (`rare` below 2 tips a week, `occasional` from 2 to below 5, `frequent` from 5) and
//!   the generosity from its latent generosity, the amount of a tip at affinity 0.5
//!   (`modest` below 2, `moderate` from 2 to below 5, `generous` from 5).
//!
//! Example: `categories: music, dance | energy: high | audio: electronic | visuals: neon |
//! language: english | format: solo | tipping: frequent, generous` (on one line).

use serde::{Deserialize, Serialize};

use super::SynthError;
use super::attributes::Field;

/// The second value of a field is listed when its weight is at least this.
pub const SECOND_VALUE_MIN: f64 = 0.3;
/// Frequency values of the `tipping` field.
pub const FREQUENCIES: [&str; 3] = ["rare", "occasional", "frequent"];
/// Generosity values of the `tipping` field.
pub const GENEROSITIES: [&str; 3] = ["modest", "moderate", "generous"];
/// Tip-rate thresholds (tips per week) between rare/occasional and occasional/frequent.
pub const FREQUENCY_THRESHOLDS: [f64; 2] = [2.0, 5.0];
/// Generosity thresholds between modest/moderate and moderate/generous.
pub const GENEROSITY_THRESHOLDS: [f64; 2] = [2.0, 5.0];
/// One-line statement of the grammar, written into `truth.json`.
pub const GRAMMAR: &str = "categories: V[, V] | energy: V[, V] | audio: V[, V] | visuals: V[, V] | language: V[, V] | format: V[, V] | tipping: FREQ, GEN; values strongest first, the second only when its weight >= 0.3; FREQ: rare (<2 tips/week), occasional (<5), frequent; GEN: modest (<2), moderate (<5), generous";

fn bucket(x: f64, thresholds: [f64; 2]) -> usize {
    if x < thresholds[0] {
        0
    } else if x < thresholds[1] {
        1
    } else {
        2
    }
}

/// The grammar as a preference-schema spec in JSON (`{"fields": [{"name", "kind":
/// {"type": "list", "values", "max"} | {"type": "tuple", "slots"}}]}`), the form
/// composers read their schema from: six list fields of at most two values and the
/// `tipping` tuple.
pub fn schema_json() -> String {
    let mut fields: Vec<serde_json::Value> = Field::ALL
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name(),
                "kind": {"type": "list", "values": f.values(), "max": 2},
            })
        })
        .collect();
    fields.push(serde_json::json!({
        "name": "tipping",
        "kind": {"type": "tuple", "slots": [FREQUENCIES, GENEROSITIES]},
    }));
    serde_json::json!({ "fields": fields }).to_string()
}

/// The values a field lists for `weights`: strongest first, the second when it reaches
/// [`SECOND_VALUE_MIN`].
pub fn listed_values(field: Field, weights: &[f64]) -> Vec<&'static str> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Stable sort: ties keep the value-list order.
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]));
    let mut out = vec![field.values()[order[0]]];
    if order.len() > 1 && weights[order[1]] >= SECOND_VALUE_MIN {
        out.push(field.values()[order[1]]);
    }
    out
}

/// Renders the reference text of a preference (see the module docs for the grammar).
pub fn render_reference(weights: &FieldWeights, rate_per_week: f64, generosity: f64) -> String {
    let mut parts: Vec<String> = Field::ALL
        .iter()
        .map(|&f| {
            format!(
                "{}: {}",
                f.name(),
                listed_values(f, weights.get(f)).join(", ")
            )
        })
        .collect();
    parts.push(format!(
        "tipping: {}, {}",
        FREQUENCIES[bucket(rate_per_week, FREQUENCY_THRESHOLDS)],
        GENEROSITIES[bucket(generosity, GENEROSITY_THRESHOLDS)]
    ));
    parts.join(" | ")
}

/// A reference text, parsed and checked against the grammar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedReference {
    /// Values of the six attribute fields, in grammar order ([`Field::ALL`]).
    pub fields: Vec<Vec<String>>,
    /// The tipping frequency (one of [`FREQUENCIES`]).
    pub frequency: String,
    /// The tipping generosity (one of [`GENEROSITIES`]).
    pub generosity: String,
}

impl ParsedReference {
    /// The listed values of an attribute field.
    pub fn values(&self, field: Field) -> &[String] {
        let k = Field::ALL
            .iter()
            .position(|f| *f == field)
            .expect("field in ALL");
        &self.fields[k]
    }
}

/// Parses a reference text, checking field order, separators and allowed values.
pub fn parse_reference(text: &str) -> Result<ParsedReference, SynthError> {
    let bad = |m: String| SynthError::Reference(format!("{m} in `{text}`"));
    let parts: Vec<&str> = text.split(" | ").collect();
    if parts.len() != 7 {
        return Err(bad(format!("expected 7 fields, found {}", parts.len())));
    }
    let mut fields = Vec::with_capacity(6);
    for (k, part) in parts.iter().enumerate() {
        let (name, rest) = part
            .split_once(": ")
            .ok_or_else(|| bad(format!("field {} has no `: `", k + 1)))?;
        let values: Vec<&str> = rest.split(", ").collect();
        if k < 6 {
            let f = Field::ALL[k];
            if name != f.name() {
                return Err(bad(format!(
                    "field {} is `{name}`, expected `{}`",
                    k + 1,
                    f.name()
                )));
            }
            if values.is_empty() || values.len() > 2 {
                return Err(bad(format!("`{name}` lists {} values", values.len())));
            }
            for v in &values {
                if f.index_of(v).is_none() {
                    return Err(bad(format!("`{v}` is not a value of `{name}`")));
                }
            }
            if values.len() == 2 && values[0] == values[1] {
                return Err(bad(format!("`{name}` repeats a value")));
            }
            fields.push(values.iter().map(|v| v.to_string()).collect());
        } else {
            if name != "tipping" {
                return Err(bad(format!("field 7 is `{name}`, expected `tipping`")));
            }
            if values.len() != 2
                || !FREQUENCIES.contains(&values[0])
                || !GENEROSITIES.contains(&values[1])
            {
                return Err(bad(format!("bad tipping values `{rest}`")));
            }
            return Ok(ParsedReference {
                fields,
                frequency: values[0].to_string(),
                generosity: values[1].to_string(),
            });
        }
    }
    unreachable!("seven parts were checked")
}

/// Per-field preference weights; each list follows the field's value order and sums to 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldWeights {
    /// Weights over [`super::CATEGORIES`].
    pub categories: Vec<f64>,
    /// Weights over [`super::ENERGY`].
    pub energy: Vec<f64>,
    /// Weights over [`super::AUDIO_STYLES`].
    pub audio: Vec<f64>,
    /// Weights over [`super::VISUAL_STYLES`].
    pub visuals: Vec<f64>,
    /// Weights over [`super::LANGUAGES`].
    pub language: Vec<f64>,
    /// Weights over [`super::FORMATS`].
    pub format: Vec<f64>,
}

impl FieldWeights {
    /// The weights of one field.
    pub fn get(&self, field: Field) -> &[f64] {
        match field {
            Field::Categories => &self.categories,
            Field::Energy => &self.energy,
            Field::Audio => &self.audio,
            Field::Visuals => &self.visuals,
            Field::Language => &self.language,
            Field::Format => &self.format,
        }
    }

    pub(crate) fn get_mut(&mut self, field: Field) -> &mut Vec<f64> {
        match field {
            Field::Categories => &mut self.categories,
            Field::Energy => &mut self.energy,
            Field::Audio => &mut self.audio,
            Field::Visuals => &mut self.visuals,
            Field::Language => &mut self.language,
            Field::Format => &mut self.format,
        }
    }

    /// `(1 - w) * self + w * other`, field by field.
    pub fn mix(&self, other: &FieldWeights, w: f64) -> FieldWeights {
        let m = |a: &[f64], b: &[f64]| -> Vec<f64> {
            a.iter()
                .zip(b)
                .map(|(x, y)| (1.0 - w) * x + w * y)
                .collect()
        };
        FieldWeights {
            categories: m(&self.categories, &other.categories),
            energy: m(&self.energy, &other.energy),
            audio: m(&self.audio, &other.audio),
            visuals: m(&self.visuals, &other.visuals),
            language: m(&self.language, &other.language),
            format: m(&self.format, &other.format),
        }
    }

    /// The index of the strongest value of a field (ties go to the lower index).
    pub fn top(&self, field: Field) -> usize {
        let w = self.get(field);
        let mut best = 0;
        for (i, &x) in w.iter().enumerate() {
            if x > w[best] {
                best = i;
            }
        }
        best
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        for f in Field::ALL {
            let w = self.get(f);
            if w.len() != f.values().len() || w.iter().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(format!("bad `{}` weights", f.name()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(top: usize, second: Option<usize>) -> FieldWeights {
        let f = |k: usize| {
            let mut w = vec![0.2 / k as f64; k];
            match second {
                Some(s) if s < k => {
                    w[top % k] += 0.4;
                    w[s] += 0.4;
                }
                _ => w[top % k] += 0.8,
            }
            w
        };
        FieldWeights {
            categories: f(8),
            energy: f(3),
            audio: f(5),
            visuals: f(5),
            language: f(4),
            format: f(4),
        }
    }

    #[test]
    fn synth_reference_renders_and_parses() {
        let text = render_reference(&weights(0, None), 6.0, 1.0);
        assert_eq!(
            text,
            "categories: music | energy: low | audio: electronic | visuals: neon | \
             language: english | format: solo | tipping: frequent, modest"
        );
        let p = parse_reference(&text).unwrap();
        assert_eq!(p.values(Field::Categories), ["music"]);
        assert_eq!(p.frequency, "frequent");
        let two = render_reference(&weights(1, Some(2)), 3.0, 7.0);
        assert!(
            two.starts_with("categories: dance, gaming | energy: medium, high |"),
            "{two}"
        );
        assert!(two.ends_with("tipping: occasional, generous"));
        parse_reference(&two).unwrap();
    }

    #[test]
    fn synth_reference_parser_rejects_bad_text() {
        for bad in [
            "",
            "categories: music",
            "energy: low | categories: music | audio: rock | visuals: neon | language: english | format: solo | tipping: rare, modest",
            "categories: jazz | energy: low | audio: rock | visuals: neon | language: english | format: solo | tipping: rare, modest",
            "categories: music | energy: low | audio: rock | visuals: neon | language: english | format: solo | tipping: rare",
            "categories: music, dance, art | energy: low | audio: rock | visuals: neon | language: english | format: solo | tipping: rare, modest",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }
}
