//! The template composer: a non-learned baseline that reads the preference off the tipped
//! authors' titles and descriptions with a keyword lexicon, and off the tips themselves.
//!
//! For a history of tips `i` (author `a_i`, amount `m_i`, time `t_i`) composed at time `T`:
//!
//! 1. every tip weighs `w_i = m_i ^ amount_exponent * 0.5 ^ ((T - t_i) / half_life)`;
//! 2. each author's title and description are matched against the [`KeywordLexicon`]
//!    (lowercased words, longest phrase first, no overlaps); a phrase that names several
//!    values of a field splits its count evenly; per field the author's counts are
//!    normalised to a distribution `d_a`;
//! 3. a field's value weights are `W_v = sum_i w_i * d_{a_i}[v]`; the strongest value is
//!    listed, the next ones (up to the field's `max`) while their share `W_v / sum W` is at
//!    least `second_share` (the world's own rule lists a second value from weight 0.3);
//! 4. fields with no keyword evidence (energy, audio and visuals never show in text, and
//!    a history whose authors have no matching text) fall back to the most frequent value
//!    list among the training references given to [`TemplateComposer::fit`];
//! 5. the tipping field (a two-slot tuple) uses the world's definitions: frequency from
//!    the tips per week (`n / max(T - t_first, min_span)`: the `n` tips of the history
//!    fall in `(t_first, T]` once the tip at `T` is counted), generosity from the median
//!    amount divided by `generosity_scale`, each bucketed by configurable thresholds.
//!
//! It never reads the world's truth: only the dataset's texts and the history's tips.

use mspa_core::DAY_MS;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use mspa_core::{AuthorId, Dataset};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::composer::{
    ComposeContext, Composer, FieldEvidence, HistoryQuery, Preference, embed_preferences,
};
use crate::error::{ComposerError, Result};
use crate::schema::{FieldKind, PreferenceFields, PreferenceSchema};

/// Which words name which value: field -> value -> keyword phrases (configuration).
///
/// JSON: `{"fields": {"categories": {"music": ["music", "songs", "live set"], ...}, ...}}`.
/// Matching is case-insensitive on words (letters, digits, `'` and `-` form words).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordLexicon {
    /// Field name -> value -> phrases.
    pub fields: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl KeywordLexicon {
    /// The vocabulary the synthetic world writes its authors' texts from
    /// (`mspa_core::synth::text_keywords`): category and format synonyms in all four
    /// languages, and each language's phrases for `language`.
    pub fn synthetic_world() -> Self {
        let mut fields: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for entry in mspa_core::synth::text_keywords() {
            fields
                .entry(entry.field.to_string())
                .or_default()
                .entry(entry.value.to_string())
                .or_default()
                .extend(entry.phrases.iter().map(|p| p.to_lowercase()));
        }
        KeywordLexicon { fields }
    }

    /// Reads a lexicon from a JSON file, with errors that name the file.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ComposerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| ComposerError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
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
struct CompiledField {
    phrases: HashMap<String, Vec<usize>>,
    longest: usize,
    n_values: usize,
}

impl CompiledField {
    /// Per-value counts of the field's phrases in `words` (longest match first, no
    /// overlaps; a phrase naming `k` values adds `1 / k` to each).
    fn count(&self, words: &[String]) -> Vec<f64> {
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

/// How the tipping tuple is read off the tips (same definitions as `mspa_core::synth`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TippingRule {
    /// The schema field (a tuple of frequency and generosity), default `tipping`.
    pub field: String,
    /// Tips-per-week thresholds between consecutive frequency values (default `[2, 5]`:
    /// rare below 2, occasional below 5, frequent from 5).
    pub frequency_thresholds: Vec<f64>,
    /// Amount thresholds between consecutive generosity values (default `[2, 5]`).
    pub generosity_thresholds: Vec<f64>,
    /// The shortest time span, in days, a tip rate is measured over (default 3.5), so a
    /// history of one or two close tips does not read as a huge rate.
    pub min_span_days: f64,
    /// The median tip is divided by this before bucketing (default 1.0: the world's
    /// generosity is the amount of a tip at affinity 0.5, before noise).
    pub generosity_scale: f64,
}

impl Default for TippingRule {
    fn default() -> Self {
        use mspa_core::synth::reference::{FREQUENCY_THRESHOLDS, GENEROSITY_THRESHOLDS};
        TippingRule {
            field: "tipping".into(),
            frequency_thresholds: FREQUENCY_THRESHOLDS.to_vec(),
            generosity_thresholds: GENEROSITY_THRESHOLDS.to_vec(),
            min_span_days: 3.5,
            generosity_scale: 1.0,
        }
    }
}

/// Settings of the [`TemplateComposer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateConfig {
    /// Half-life of a tip's weight, in days (default 7).
    pub half_life_days: f64,
    /// A tip weighs `amount ^ amount_exponent` (default 1; 0 ignores amounts).
    pub amount_exponent: f64,
    /// A value after the first is listed when its share of the field's weight is at least
    /// this (default 0.3).
    pub second_share: f64,
    /// At most this many supporting tips per value in the evidence (default 5).
    pub max_evidence: usize,
    /// The tipping rule; `None` leaves every tuple field to the training fallback.
    pub tipping: Option<TippingRule>,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        TemplateConfig {
            half_life_days: 7.0,
            amount_exponent: 1.0,
            second_share: 0.3,
            max_evidence: 5,
            tipping: Some(TippingRule::default()),
        }
    }
}

/// The compiled tipping rule.
#[derive(Clone, Debug)]
struct Tipping {
    field: usize,
    rule: TippingRule,
}

const WEEK_MS: f64 = 7.0 * DAY_MS;

/// Index of the bucket of `x` between ascending `thresholds`.
fn bucket(x: f64, thresholds: &[f64]) -> usize {
    thresholds.iter().take_while(|&&t| x >= t).count()
}

/// The keyword-counting baseline composer (see the module docs).
#[derive(Clone, Debug)]
pub struct TemplateComposer {
    schema: PreferenceSchema,
    config: TemplateConfig,
    /// Per schema field: the compiled lexicon (list fields named by the lexicon).
    lexicon: Vec<Option<CompiledField>>,
    tipping: Option<Tipping>,
    /// Per schema field: the most frequent value list among the training references.
    fallback: Vec<Vec<String>>,
}

impl TemplateComposer {
    /// Checks the config, compiles the lexicon against the schema and learns the fallback
    /// value of every field (its most frequent value list in `train_refs`, ties to the
    /// first seen; the first vocabulary value when `train_refs` is empty).
    ///
    /// Errors: a lexicon field or value the schema does not have, a lexicon field that is
    /// not a list, a tipping field that is not a two-slot tuple or thresholds that do not
    /// match its slots, out-of-range settings, a training reference with the wrong number
    /// of fields.
    pub fn fit(
        schema: &PreferenceSchema,
        lexicon: &KeywordLexicon,
        train_refs: &[PreferenceFields],
        config: TemplateConfig,
    ) -> Result<Self> {
        if !(config.half_life_days.is_finite() && config.half_life_days > 0.0) {
            return Err(ComposerError::config(
                "half_life_days",
                format!("must be positive, got {}", config.half_life_days),
            ));
        }
        if !config.amount_exponent.is_finite() {
            return Err(ComposerError::config("amount_exponent", "must be finite"));
        }
        if !(0.0..=1.0).contains(&config.second_share) {
            return Err(ComposerError::config(
                "second_share",
                format!("must be in [0, 1], got {}", config.second_share),
            ));
        }

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

        let tipping = match &config.tipping {
            None => None,
            Some(rule) => {
                let k = schema.field_index(&rule.field).ok_or_else(|| {
                    ComposerError::config(
                        "tipping.field",
                        format!("the schema has no field `{}`", rule.field),
                    )
                })?;
                let FieldKind::Tuple { slots } = &schema.fields[k].kind else {
                    return Err(ComposerError::config(
                        "tipping.field",
                        format!("`{}` is not a tuple", rule.field),
                    ));
                };
                if slots.len() != 2 {
                    return Err(ComposerError::config(
                        "tipping.field",
                        format!(
                            "`{}` must have two slots (frequency, generosity)",
                            rule.field
                        ),
                    ));
                }
                for (name, th, slot) in [
                    (
                        "tipping.frequency_thresholds",
                        &rule.frequency_thresholds,
                        &slots[0],
                    ),
                    (
                        "tipping.generosity_thresholds",
                        &rule.generosity_thresholds,
                        &slots[1],
                    ),
                ] {
                    if th.len() + 1 != slot.len() {
                        return Err(ComposerError::config(
                            name,
                            format!(
                                "{} thresholds for {} values (need one fewer)",
                                th.len(),
                                slot.len()
                            ),
                        ));
                    }
                    if th.iter().any(|t| !t.is_finite()) || th.windows(2).any(|w| w[0] >= w[1]) {
                        return Err(ComposerError::config(name, "must be finite and increasing"));
                    }
                }
                if !(rule.min_span_days.is_finite() && rule.min_span_days > 0.0) {
                    return Err(ComposerError::config(
                        "tipping.min_span_days",
                        "must be positive",
                    ));
                }
                if !(rule.generosity_scale.is_finite() && rule.generosity_scale > 0.0) {
                    return Err(ComposerError::config(
                        "tipping.generosity_scale",
                        "must be positive",
                    ));
                }
                Some(Tipping {
                    field: k,
                    rule: rule.clone(),
                })
            }
        };

        let mut fallback = Vec::with_capacity(schema.fields.len());
        for (k, f) in schema.fields.iter().enumerate() {
            let mut counts: Vec<(&Vec<String>, usize)> = Vec::new();
            for (i, r) in train_refs.iter().enumerate() {
                if r.values.len() != schema.fields.len() {
                    return Err(ComposerError::data(format!(
                        "training reference {i} has {} fields, the schema {}",
                        r.values.len(),
                        schema.fields.len()
                    )));
                }
                let v = &r.values[k];
                match counts.iter_mut().find(|(x, _)| *x == v) {
                    Some(c) => c.1 += 1,
                    None => counts.push((v, 1)),
                }
            }
            let mut best: Option<(&Vec<String>, usize)> = None;
            for (v, c) in counts {
                if best.is_none_or(|(_, b)| c > b) {
                    best = Some((v, c));
                }
            }
            fallback.push(match best {
                Some((v, _)) => v.clone(),
                None => f.slot_values().iter().map(|s| s[0].clone()).collect(),
            });
        }

        Ok(TemplateComposer {
            schema: schema.clone(),
            config,
            lexicon: compiled,
            tipping,
            fallback,
        })
    }

    /// The schema the composer writes.
    pub fn schema(&self) -> &PreferenceSchema {
        &self.schema
    }

    /// The config.
    pub fn config(&self) -> &TemplateConfig {
        &self.config
    }

    /// The fallback value list of every field (from the training references).
    pub fn fallback(&self) -> &[Vec<String>] {
        &self.fallback
    }

    /// Per lexicon field: the author's normalised keyword distribution (`None` when its
    /// text names no value of the field).
    fn author_profile(&self, dataset: &Dataset, author: AuthorId) -> Vec<Option<Vec<f64>>> {
        let a = dataset.author(author);
        let w = words(&format!("{}\n{}", a.title, a.description));
        self.lexicon
            .iter()
            .map(|c| {
                let c = c.as_ref()?;
                let counts = c.count(&w);
                let total: f64 = counts.iter().sum();
                (total > 0.0).then(|| counts.into_iter().map(|x| x / total).collect())
            })
            .collect()
    }

    /// The fields and evidence of one history (no embedding).
    fn compose_fields(
        &self,
        dataset: &Dataset,
        query: &HistoryQuery<'_>,
    ) -> Result<(PreferenceFields, Vec<FieldEvidence>)> {
        let tips = query.tips;
        let n_authors = dataset.n_authors();
        if let Some((i, e)) = tips
            .iter()
            .enumerate()
            .find(|(_, e)| e.author.index() >= n_authors)
        {
            return Err(ComposerError::data(format!(
                "tip {i} names author {} but the dataset has {n_authors} authors",
                e.author.0
            )));
        }
        let half_life_ms = self.config.half_life_days * DAY_MS;
        let weights: Vec<f64> = tips
            .iter()
            .map(|e| {
                let age = (query.at_ms - e.timestamp_ms).max(0) as f64;
                let amount = if e.amount.is_finite() {
                    e.amount.max(0.0)
                } else {
                    0.0
                };
                let m = if self.config.amount_exponent == 0.0 {
                    1.0
                } else {
                    amount.powf(self.config.amount_exponent)
                };
                let w = m * 0.5f64.powf(age / half_life_ms);
                if w.is_finite() { w } else { 0.0 }
            })
            .collect();
        let mut profiles: HashMap<AuthorId, Vec<Option<Vec<f64>>>> = HashMap::new();
        for e in tips {
            profiles
                .entry(e.author)
                .or_insert_with(|| self.author_profile(dataset, e.author));
        }

        let mut values = Vec::with_capacity(self.schema.fields.len());
        let mut evidence = Vec::new();
        for (k, f) in self.schema.fields.iter().enumerate() {
            let push_evidence =
                |evidence: &mut Vec<FieldEvidence>, value: &str, tips: Vec<usize>| {
                    evidence.push(FieldEvidence {
                        field: f.name.clone(),
                        value: value.to_string(),
                        tips,
                    });
                };
            if let (Some(c), FieldKind::List { values: vocab, max }) = (&self.lexicon[k], &f.kind) {
                // contributions[i][v] = w_i * d_{a_i}[v]
                let mut total = vec![0.0; c.n_values];
                let mut contrib: Vec<Option<&Vec<f64>>> = Vec::with_capacity(tips.len());
                for (i, e) in tips.iter().enumerate() {
                    let d = profiles[&e.author][k].as_ref();
                    if let Some(d) = d {
                        for (t, x) in total.iter_mut().zip(d) {
                            *t += weights[i] * x;
                        }
                    }
                    contrib.push(d);
                }
                let sum: f64 = total.iter().sum();
                if sum > 0.0 {
                    let mut order: Vec<usize> = (0..c.n_values).collect();
                    order.sort_by(|&a, &b| total[b].total_cmp(&total[a]));
                    let mut chosen = vec![order[0]];
                    for &v in &order[1..] {
                        if chosen.len() >= *max
                            || total[v] <= 0.0
                            || total[v] / sum < self.config.second_share
                        {
                            break;
                        }
                        chosen.push(v);
                    }
                    for &v in &chosen {
                        let mut support: Vec<(usize, f64)> = contrib
                            .iter()
                            .enumerate()
                            .filter_map(|(i, d)| {
                                let s = weights[i] * d.map(|d| d[v]).unwrap_or(0.0);
                                (s > 0.0).then_some((i, s))
                            })
                            .collect();
                        support.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
                        support.truncate(self.config.max_evidence);
                        push_evidence(
                            &mut evidence,
                            &vocab[v],
                            support.into_iter().map(|(i, _)| i).collect(),
                        );
                    }
                    values.push(chosen.iter().map(|&v| vocab[v].clone()).collect());
                    continue;
                }
            }
            if let (Some(tp), false) = (&self.tipping, tips.is_empty())
                && tp.field == k
                && let FieldKind::Tuple { slots } = &f.kind
            {
                let rule = &tp.rule;
                let first = tips
                    .iter()
                    .map(|e| e.timestamp_ms)
                    .min()
                    .unwrap_or(query.at_ms);
                let span_ms =
                    ((query.at_ms - first).max(0) as f64).max(rule.min_span_days * DAY_MS);
                let rate = tips.len() as f64 / (span_ms / WEEK_MS);
                let mut amounts: Vec<f64> = tips
                    .iter()
                    .map(|e| e.amount)
                    .filter(|a| a.is_finite())
                    .collect();
                amounts.sort_by(f64::total_cmp);
                let median = if amounts.is_empty() {
                    0.0
                } else if amounts.len() % 2 == 1 {
                    amounts[amounts.len() / 2]
                } else {
                    0.5 * (amounts[amounts.len() / 2 - 1] + amounts[amounts.len() / 2])
                };
                let generosity = median / rule.generosity_scale;
                let freq = &slots[0][bucket(rate, &rule.frequency_thresholds)];
                let gen_bucket = bucket(generosity, &rule.generosity_thresholds);
                let gen_value = &slots[1][gen_bucket];
                // Frequency: the most recent tips; generosity: the tips whose own amount
                // falls in the chosen bucket, closest to the median first.
                let recent: Vec<usize> = (0..tips.len())
                    .rev()
                    .take(self.config.max_evidence)
                    .collect();
                let mut same: Vec<usize> = (0..tips.len())
                    .filter(|&i| {
                        bucket(
                            tips[i].amount / rule.generosity_scale,
                            &rule.generosity_thresholds,
                        ) == gen_bucket
                    })
                    .collect();
                same.sort_by(|&a, &b| {
                    (tips[a].amount - median)
                        .abs()
                        .total_cmp(&(tips[b].amount - median).abs())
                });
                same.truncate(self.config.max_evidence);
                push_evidence(&mut evidence, freq, recent);
                push_evidence(&mut evidence, gen_value, same);
                values.push(vec![freq.clone(), gen_value.clone()]);
                continue;
            }
            // No evidence: the training fallback.
            for v in &self.fallback[k] {
                push_evidence(&mut evidence, v, Vec::new());
            }
            values.push(self.fallback[k].clone());
        }
        Ok((PreferenceFields { values }, evidence))
    }
}

impl Composer for TemplateComposer {
    fn name(&self) -> &str {
        "template"
    }

    fn compose(&self, ctx: &ComposeContext<'_>, query: HistoryQuery<'_>) -> Result<Preference> {
        Ok(self
            .compose_batch(ctx, std::slice::from_ref(&query))?
            .pop()
            .expect("one preference per query"))
    }

    fn compose_batch(
        &self,
        ctx: &ComposeContext<'_>,
        queries: &[HistoryQuery<'_>],
    ) -> Result<Vec<Preference>> {
        let dataset = ctx.dataset;
        let parts: Vec<(PreferenceFields, Vec<FieldEvidence>)> = queries
            .par_iter()
            .map(|q| self.compose_fields(dataset, q))
            .collect::<Result<_>>()?;
        let texts: Vec<String> = parts.iter().map(|(p, _)| self.schema.render(p)).collect();
        let fields: Vec<PreferenceFields> = parts.iter().map(|(p, _)| p.clone()).collect();
        let embeddings = embed_preferences(ctx.text_encoder, &self.schema, &texts, &fields)?;
        Ok(parts
            .into_iter()
            .zip(texts)
            .zip(embeddings)
            .map(|(((fields, evidence), text), embedding)| Preference {
                text,
                fields,
                embedding,
                evidence,
            })
            .collect())
    }
}
