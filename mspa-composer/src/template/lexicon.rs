//! The keyword lexicon of the template composer: which words of an author's title and
//! description name which value of a preference field, learned from the dataset itself.
//!
//! [`KeywordLexicon::learn`] reads teacher pairs (a history and the preference text a
//! teacher wrote for it: the world's references, an MLLM's answers, a platform's labels).
//! For a list field and a value `v`, every author of a pair's history votes with its tip
//! weight (normalised per pair) for the values of the pair's text. A word is kept for the
//! value `v` it lifts most when
//!
//! * it appears in at least `min_authors` authors' texts and in at most `max_author_share`
//!   of them (words on every author, "channel" or "tonight", say nothing);
//! * `P(v | word) / P(v) >= min_lift`, the share of the word's votes that go to `v` over
//!   the share of all votes that go to `v`;
//! * that lift is not chance: `z >= min_z` for the binomial z-score of the word's votes
//!   for `v` against the base rate `P(v)`.
//!
//! Nothing here knows the synthetic world: its texts are learned like any other data's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use mspa_core::Dataset;
use serde::{Deserialize, Serialize};

use crate::error::{ComposerError, Result};
use crate::schema::{FieldKind, PreferenceFields, PreferenceSchema};

/// Which words name which value: field -> value -> keyword phrases (configuration, or
/// learned by [`KeywordLexicon::learn`]).
///
/// JSON: `{"fields": {"categories": {"music": ["music", "songs", "live set"], ...}, ...}}`.
/// Matching is case-insensitive on words (letters, digits, `'` and `-` form words).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordLexicon {
    /// Field name -> value -> phrases.
    pub fields: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// How [`KeywordLexicon::learn`] selects words (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LexiconConfig {
    /// A word must appear in at least this many authors' texts (default 3).
    pub min_authors: usize,
    /// A word must appear in at most this share of the authors with text (default 0.3).
    pub max_author_share: f64,
    /// The least lift `P(v | word) / P(v)` (default 1.5).
    pub min_lift: f64,
    /// The least binomial z-score of the word's votes for `v` (default 4).
    pub min_z: f64,
}

impl Default for LexiconConfig {
    fn default() -> Self {
        LexiconConfig {
            min_authors: 3,
            max_author_share: 0.3,
            min_lift: 1.5,
            min_z: 4.0,
        }
    }
}

impl LexiconConfig {
    /// Checks the settings, naming the offending one.
    pub fn validate(&self) -> Result<()> {
        if !(self.max_author_share > 0.0 && self.max_author_share <= 1.0) {
            return Err(ComposerError::config(
                "lexicon.max_author_share",
                format!("must be in (0, 1], got {}", self.max_author_share),
            ));
        }
        if !(self.min_lift.is_finite() && self.min_lift >= 1.0) {
            return Err(ComposerError::config(
                "lexicon.min_lift",
                format!("must be at least 1, got {}", self.min_lift),
            ));
        }
        if !self.min_z.is_finite() {
            return Err(ComposerError::config("lexicon.min_z", "must be finite"));
        }
        Ok(())
    }
}

/// One teacher example for [`KeywordLexicon::learn`]: the authors of a history with their
/// weights, and the preference the teacher wrote for it.
#[derive(Clone, Debug)]
pub struct TeacherExample<'a> {
    /// `(author index, weight)` of each tip of the history (several tips of one author
    /// add up); the weights are normalised per example.
    pub authors: Vec<(usize, f64)>,
    /// The teacher's preference for the history.
    pub fields: &'a PreferenceFields,
}

impl KeywordLexicon {
    /// Learns, for every list field of `schema`, the words of the authors' texts that
    /// name its values, from teacher examples over `dataset` (see the module docs).
    /// An empty `examples` gives an empty lexicon.
    pub fn learn(
        dataset: &Dataset,
        schema: &PreferenceSchema,
        examples: &[TeacherExample<'_>],
        config: &LexiconConfig,
    ) -> Result<Self> {
        config.validate()?;
        // Each author's distinct words.
        let author_words: Vec<BTreeSet<String>> = dataset
            .authors()
            .iter()
            .map(|a| {
                words(&format!("{}\n{}", a.title, a.description))
                    .into_iter()
                    .collect()
            })
            .collect();
        let with_text = author_words.iter().filter(|w| !w.is_empty()).count();
        let mut df: HashMap<&str, usize> = HashMap::new();
        for w in author_words.iter().flatten() {
            *df.entry(w.as_str()).or_default() += 1;
        }
        let max_df = (config.max_author_share * with_text as f64).floor() as usize;
        let vocabulary: HashMap<&str, usize> = df
            .iter()
            .filter(|&(_, &n)| n >= config.min_authors.max(1) && n <= max_df)
            .map(|(&w, _)| w)
            .collect::<BTreeSet<&str>>()
            .into_iter()
            .enumerate()
            .map(|(i, w)| (w, i))
            .collect();
        let author_terms: Vec<Vec<usize>> = author_words
            .iter()
            .map(|ws| {
                ws.iter()
                    .filter_map(|w| vocabulary.get(w.as_str()).copied())
                    .collect()
            })
            .collect();
        let mut terms: Vec<&str> = vec![""; vocabulary.len()];
        for (&w, &i) in &vocabulary {
            terms[i] = w;
        }

        // Each word names one thing: of every (field, value) it passes the tests for, it
        // is kept for the one with the strongest evidence (largest z).
        let mut best: Vec<Option<(f64, usize, usize)>> = vec![None; terms.len()];
        for (k, field) in schema.fields.iter().enumerate() {
            let FieldKind::List { values: vocab, .. } = &field.kind else {
                continue;
            };
            let votes = FieldVotes::count(examples, &author_terms, k, vocab, terms.len())?;
            for (t, v, z) in votes.select(config) {
                if best[t].is_none_or(|(bz, _, _)| z > bz) {
                    best[t] = Some((z, k, v));
                }
            }
        }
        let mut lexicon = KeywordLexicon::default();
        for (t, b) in best.iter().enumerate() {
            let Some((_, k, v)) = *b else { continue };
            let field = &schema.fields[k];
            let FieldKind::List { values: vocab, .. } = &field.kind else {
                continue;
            };
            lexicon
                .fields
                .entry(field.name.clone())
                .or_default()
                .entry(vocab[v].clone())
                .or_default()
                .push(terms[t].to_string());
        }
        Ok(lexicon)
    }

    /// Reads a lexicon from a JSON file, with errors that name the file.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        crate::error::read_json_file(path.as_ref())
    }

    /// The number of phrases of all fields.
    pub fn len(&self) -> usize {
        self.fields
            .values()
            .flat_map(|f| f.values())
            .map(Vec::len)
            .sum()
    }

    /// Whether no field has a phrase.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One list field's weighted votes: per word, the weight of the examples whose history
/// holds an author with that word, in all and per value of the teacher's text.
struct FieldVotes {
    /// Per value: the weight of all votes for it.
    value_total: Vec<f64>,
    /// The weight of all votes.
    total: f64,
    /// Per word: the weight of its votes.
    word_total: Vec<f64>,
    /// Per word, per value: the weight of its votes for the value.
    word_value: Vec<Vec<f64>>,
}

impl FieldVotes {
    fn count(
        examples: &[TeacherExample<'_>],
        author_terms: &[Vec<usize>],
        field: usize,
        vocab: &[String],
        n_terms: usize,
    ) -> Result<Self> {
        let mut votes = FieldVotes {
            value_total: vec![0.0; vocab.len()],
            total: 0.0,
            word_total: vec![0.0; n_terms],
            word_value: vec![vec![0.0; vocab.len()]; n_terms],
        };
        for (i, ex) in examples.iter().enumerate() {
            let Some(listed) = ex.fields.values.get(field) else {
                return Err(ComposerError::data(format!(
                    "teacher example {i} has {} fields, the schema more",
                    ex.fields.values.len()
                )));
            };
            let hits: Vec<usize> = listed
                .iter()
                .filter_map(|v| vocab.iter().position(|x| x == v))
                .collect();
            let sum: f64 = ex.authors.iter().map(|&(_, w)| w.max(0.0)).sum();
            if !(sum > 0.0 && sum.is_finite()) {
                continue;
            }
            for &(a, w) in &ex.authors {
                let w = w.max(0.0) / sum;
                let Some(terms) = author_terms.get(a) else {
                    return Err(ComposerError::data(format!(
                        "teacher example {i} names author {a}, the dataset has {}",
                        author_terms.len()
                    )));
                };
                votes.total += w;
                for &v in &hits {
                    votes.value_total[v] += w;
                }
                for &t in terms {
                    votes.word_total[t] += w;
                    for &v in &hits {
                        votes.word_value[t][v] += w;
                    }
                }
            }
        }
        Ok(votes)
    }

    /// `(word, value, z)` of every word that passes the tests, each for the value it
    /// lifts most.
    fn select(&self, config: &LexiconConfig) -> Vec<(usize, usize, f64)> {
        if self.total <= 0.0 {
            return Vec::new();
        }
        let mut chosen = Vec::new();
        for (t, per_value) in self.word_value.iter().enumerate() {
            let n = self.word_total[t];
            if n <= 0.0 {
                continue;
            }
            let best = per_value
                .iter()
                .enumerate()
                .filter(|&(v, _)| self.value_total[v] > 0.0)
                .map(|(v, &hit)| (v, hit, (hit / n) / (self.value_total[v] / self.total)))
                .max_by(|a, b| a.2.total_cmp(&b.2).then(b.0.cmp(&a.0)));
            let Some((v, hit, lift)) = best else {
                continue;
            };
            let p = self.value_total[v] / self.total;
            let z = (hit - n * p) / (n * p * (1.0 - p)).max(1e-12).sqrt();
            if lift >= config.min_lift && z >= config.min_z {
                chosen.push((t, v, z));
            }
        }
        chosen
    }
}

/// Lowercased words of a text: runs of alphanumerics, `'` and `-`.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// One field's phrases, compiled: joined words -> value indices.
#[derive(Clone, Debug)]
pub(super) struct CompiledField {
    phrases: HashMap<String, Vec<usize>>,
    longest: usize,
    /// The number of values of the field.
    pub(super) n_values: usize,
}

impl CompiledField {
    /// Compiles the lexicon of every list field of `schema` (`None` for fields the lexicon
    /// does not name). Errors name the lexicon entry that does not fit the schema.
    pub(super) fn compile_all(
        schema: &PreferenceSchema,
        lexicon: &KeywordLexicon,
    ) -> Result<Vec<Option<CompiledField>>> {
        let mut compiled: Vec<Option<CompiledField>> = vec![None; schema.fields.len()];
        for (name, values) in &lexicon.fields {
            let k = schema.field_index(name).ok_or_else(|| {
                ComposerError::config(
                    format!("lexicon.fields.{name}"),
                    "the schema has no such field",
                )
            })?;
            let FieldKind::List { values: vocab, .. } = &schema.fields[k].kind else {
                return Err(ComposerError::config(
                    format!("lexicon.fields.{name}"),
                    "keywords can only name values of list fields",
                ));
            };
            let mut phrases: HashMap<String, Vec<usize>> = HashMap::new();
            for (value, keywords) in values {
                let v = vocab.iter().position(|x| x == value).ok_or_else(|| {
                    ComposerError::config(
                        format!("lexicon.fields.{name}.{value}"),
                        format!("`{value}` is not a value of `{name}`"),
                    )
                })?;
                for kw in keywords {
                    let key = words(kw).join(" ");
                    if key.is_empty() {
                        return Err(ComposerError::config(
                            format!("lexicon.fields.{name}.{value}"),
                            format!("keyword `{kw}` has no words"),
                        ));
                    }
                    let entry = phrases.entry(key).or_default();
                    if !entry.contains(&v) {
                        entry.push(v);
                    }
                }
            }
            let longest = phrases
                .keys()
                .map(|k| k.split(' ').count())
                .max()
                .unwrap_or(0);
            compiled[k] = Some(CompiledField {
                phrases,
                longest,
                n_values: vocab.len(),
            });
        }
        Ok(compiled)
    }

    /// Per-value counts of the field's phrases in `words` (longest match first, no
    /// overlaps; a phrase naming `k` values adds `1 / k` to each).
    pub(super) fn count(&self, words: &[String]) -> Vec<f64> {
        let mut counts = vec![0.0; self.n_values];
        let mut i = 0;
        while i < words.len() {
            let mut matched = 0;
            for len in (1..=self.longest.min(words.len() - i)).rev() {
                let key = words[i..i + len].join(" ");
                if let Some(values) = self.phrases.get(&key) {
                    for &v in values {
                        counts[v] += 1.0 / values.len() as f64;
                    }
                    matched = len;
                    break;
                }
            }
            i += matched.max(1);
        }
        counts
    }
}
