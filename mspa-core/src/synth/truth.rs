//! The world's truth: `truth.json` + `truth_users.jsonl`, the reference-text grammar and
//! the oracle.
//!
//! # Reference-text grammar
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
//!
//! The reference is derived from the latent truth only, never from sampled tips. The
//! stored `reference` of a user is the text at its split time, the time of its last tip
//! (the leave-last-out test target); [`Truth::reference_text`] renders it at any time.
//!
//! # Files
//!
//! * `truth.json`: `{"format": "mspa-synth-truth/1", "config": {...}, "fields": {field:
//!   [values]}, "modalities": {field: [modalities]}, "grammar": "...", "users_file":
//!   "truth_users.jsonl", "authors": [AuthorTruth, ...]}` (authors in id order).
//! * `truth_users.jsonl`: one [`UserTruth`] per line, in id order.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;

use super::attributes::{AuthorTruth, Field, check_author};
use super::users::{FieldWeights, UserTruth, WorldModel};
use super::{SynthError, SyntheticWorldConfig};

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
/// The value of `format` in `truth.json`.
pub const TRUTH_FORMAT: &str = "mspa-synth-truth/1";
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

#[derive(Deserialize)]
struct TruthHeader {
    format: String,
    config: SyntheticWorldConfig,
    users_file: String,
    authors: Vec<AuthorTruth>,
}

/// A world's truth, loaded from its directory: the latent attributes, the users'
/// preference trajectories, the reference texts, and the oracle.
///
/// Two oracles: [`Truth::affinity`] is the preference match (what the issue calls the true
/// affinity, independent of popularity and history); [`Truth::next_tip_probabilities`]
/// is the exact probability of the next tip under the simulation (affinity, popularity,
/// repeats and exploration), the Bayes-optimal ranker and so the real upper bound of any
/// ranking metric.
pub struct Truth {
    config: SyntheticWorldConfig,
    authors: Vec<AuthorTruth>,
    users: Vec<UserTruth>,
    author_index: HashMap<String, usize>,
    user_index: HashMap<String, usize>,
    model: WorldModel,
}

impl std::fmt::Debug for Truth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Truth")
            .field("authors", &self.authors.len())
            .field("users", &self.users.len())
            .finish()
    }
}

impl Truth {
    /// Loads `truth.json` and its users file from a world directory.
    pub fn load(dir: &Path) -> Result<Truth, SynthError> {
        let path = dir.join("truth.json");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SynthError::Io { path, source }
        };
        let parse = |path: &Path, message: String| SynthError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let file = std::fs::File::open(&path).map_err(io(&path))?;
        let header: TruthHeader = serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| parse(&path, e.to_string()))?;
        if header.format != TRUTH_FORMAT {
            return Err(parse(&path, format!("unknown format `{}`", header.format)));
        }
        header.config.validate()?;
        for a in &header.authors {
            check_author(a, header.config.id_dims).map_err(|m| parse(&path, m))?;
        }
        if header.users_file.contains("..") || Path::new(&header.users_file).is_absolute() {
            return Err(parse(
                &path,
                "users_file must stay inside the directory".into(),
            ));
        }
        let users_path = dir.join(&header.users_file);
        let file = std::fs::File::open(&users_path).map_err(io(&users_path))?;
        let mut users = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(io(&users_path))?;
            if line.trim().is_empty() {
                continue;
            }
            let user: UserTruth = serde_json::from_str(&line)
                .map_err(|e| parse(&users_path, format!("line {}: {e}", i + 1)))?;
            let check = user.start.check().and_then(|_| match &user.end {
                Some(e) => e.check(),
                None => Ok(()),
            });
            if let Err(m) = check {
                return Err(parse(&users_path, format!("line {}: {m}", i + 1)));
            }
            if user.id_vector.len() != header.config.id_dims {
                return Err(parse(&users_path, format!("line {}: bad id_vector", i + 1)));
            }
            users.push(user);
        }
        let model = WorldModel::new(&header.config, &header.authors);
        Ok(Truth {
            author_index: header
                .authors
                .iter()
                .enumerate()
                .map(|(i, a)| (a.id.clone(), i))
                .collect(),
            user_index: users
                .iter()
                .enumerate()
                .map(|(i, u)| (u.id.clone(), i))
                .collect(),
            config: header.config,
            authors: header.authors,
            users,
            model,
        })
    }

    /// The config the world was generated with.
    pub fn config(&self) -> &SyntheticWorldConfig {
        &self.config
    }

    /// All authors, in id order.
    pub fn authors(&self) -> &[AuthorTruth] {
        &self.authors
    }

    /// All users, in id order.
    pub fn users(&self) -> &[UserTruth] {
        &self.users
    }

    /// One author's truth by external id.
    pub fn author(&self, id: &str) -> Option<&AuthorTruth> {
        self.author_index.get(id).map(|&i| &self.authors[i])
    }

    /// One user's truth by external id.
    pub fn user(&self, id: &str) -> Option<&UserTruth> {
        self.user_index.get(id).map(|&i| &self.users[i])
    }

    /// The true affinity of a user for an author at `t_ms` (`None` for an unknown id).
    pub fn affinity(&self, user: &str, author: &str, t_ms: i64) -> Option<f64> {
        let u = self.user(user)?;
        let a = *self.author_index.get(author)?;
        Some(self.model.affinity(u, a, t_ms))
    }

    /// The affinity of a user for every author at `t_ms`, in [`Truth::authors`] order.
    pub fn affinities(&self, user: &str, t_ms: i64) -> Option<Vec<f64>> {
        let u = self.user(user)?;
        Some(
            (0..self.authors.len())
                .map(|a| self.model.affinity(u, a, t_ms))
                .collect(),
        )
    }

    /// The exact probability that the user's next tip, at `t_ms`, goes to each author
    /// (in [`Truth::authors`] order), given the authors it tipped before (`history`;
    /// unknown ids are ignored). `None` for an unknown user.
    pub fn next_tip_probabilities(
        &self,
        user: &str,
        t_ms: i64,
        history: &[&str],
    ) -> Option<Vec<f64>> {
        let u = self.user(user)?;
        let hist: Vec<usize> = history
            .iter()
            .filter_map(|a| self.author_index.get(*a).copied())
            .collect();
        Some(self.model.next_tip_probabilities(u, t_ms, &hist))
    }

    /// The user's preference weights at `t_ms`.
    pub fn preference_at(&self, user: &str, t_ms: i64) -> Option<FieldWeights> {
        Some(self.user(user)?.preference_at(t_ms))
    }

    /// The user's reference preference text at `t_ms` (any time, e.g. a validation time).
    pub fn reference_text(&self, user: &str, t_ms: i64) -> Option<String> {
        Some(self.user(user)?.reference_at(t_ms))
    }

    /// The user's split time: the time of its last tip.
    pub fn split_time_ms(&self, user: &str) -> Option<i64> {
        Some(self.user(user)?.split_time_ms)
    }

    /// The user's reference text at its split time, as stored.
    pub fn split_reference(&self, user: &str) -> Option<&str> {
        Some(self.user(user)?.reference.as_str())
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
