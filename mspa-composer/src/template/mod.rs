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
//!    least `second_share`;
//! 4. fields with no keyword evidence fall back to the most frequent value list among the
//!    training texts;
//! 5. the tipping field (a two-slot tuple) buckets the tips per week and the median amount
//!    by the thresholds of the [`TippingRule`].
//!
//! [`TemplateComposer::learn`] learns everything from the dataset and a teacher's texts
//! for training-time histories (the lexicon by [`KeywordLexicon::learn`], the thresholds by
//! [`TippingRule::learn_thresholds`]); [`TemplateComposer::fit`] takes a given lexicon and
//! complete thresholds. [`TemplateComposer::from_data`] needs no teacher at all: its schema
//! and lexicon come from the authors' own words ([`derive_vocabulary`]). It never reads a
//! generator's tables or the world's truth.

mod derive;
mod lexicon;
mod tipping;

pub use derive::{DeriveConfig, TOPICS_FIELD, derive_vocabulary, distinctive_words};
pub(crate) use lexicon::words;
pub use lexicon::{KeywordLexicon, LexiconConfig, TeacherExample};
pub use tipping::TippingRule;

use std::collections::HashMap;

use mspa_core::{AuthorId, Dataset, TipEvent};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::composer::{
    ComposeContext, Composer, FieldEvidence, HistoryQuery, Preference, TipWeighting, TrainingPair,
    compose_through_batch, embed_preferences,
};
use crate::error::{ComposerError, Result};
use crate::schema::{FieldKind, PreferenceFields, PreferenceSchema};
use lexicon::CompiledField;
use tipping::{TippingStats, bucket};

/// Settings of the [`TemplateComposer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateConfig {
    /// How much each tip of a history counts.
    pub weighting: TipWeighting,
    /// A value after the first is listed when its share of the field's weight is at least
    /// this (default 0.3).
    pub second_share: f64,
    /// At most this many supporting tips per value in the evidence (default 5).
    pub max_evidence: usize,
    /// The tipping rule; `None` leaves every tuple field to the training fallback.
    pub tipping: Option<TippingRule>,
    /// How [`TemplateComposer::learn`] learns its lexicon.
    pub lexicon: LexiconConfig,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        TemplateConfig {
            weighting: TipWeighting::default(),
            second_share: 0.3,
            max_evidence: 5,
            tipping: Some(TippingRule::default()),
            lexicon: LexiconConfig::default(),
        }
    }
}

impl TemplateConfig {
    /// Checks the settings, naming the offending one.
    pub fn validate(&self) -> Result<()> {
        self.weighting.validate()?;
        if !(0.0..=1.0).contains(&self.second_share) {
            return Err(ComposerError::config(
                "second_share",
                format!("must be in [0, 1], got {}", self.second_share),
            ));
        }
        self.lexicon.validate()
    }
}

/// The compiled tipping rule.
#[derive(Clone, Debug)]
struct Tipping {
    field: usize,
    rule: TippingRule,
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
    /// The lexicon the composer reads with.
    keywords: KeywordLexicon,
}

impl TemplateComposer {
    /// Learns the composer from `dataset` and a teacher's texts for training-time
    /// histories (`pairs`; a text that does not parse with `schema` is skipped): the
    /// lexicon ([`KeywordLexicon::learn`] with `config.lexicon`), the tipping thresholds
    /// that `config` leaves empty ([`TippingRule::learn_thresholds`]) and the fallbacks.
    pub fn learn(
        schema: &PreferenceSchema,
        dataset: &Dataset,
        pairs: &[TrainingPair],
        mut config: TemplateConfig,
    ) -> Result<Self> {
        config.validate()?;
        let parsed: Vec<(&TrainingPair, PreferenceFields)> = pairs
            .iter()
            .filter_map(|p| Some((p, schema.parse(&p.reference).ok()?)))
            .collect();
        let histories: Vec<(&[TipEvent], i64)> = parsed
            .iter()
            .map(|(p, _)| (p.query(dataset).tips, p.at_ms))
            .collect();
        let examples: Vec<TeacherExample<'_>> = parsed
            .iter()
            .zip(&histories)
            .map(|((_, fields), (tips, at))| TeacherExample {
                authors: tips
                    .iter()
                    .map(|e| (e.author.index(), config.weighting.weight(e, *at)))
                    .collect(),
                fields,
            })
            .collect();
        let lexicon = KeywordLexicon::learn(dataset, schema, &examples, &config.lexicon)?;
        if let Some(rule) = config.tipping.as_mut() {
            let k = rule.slots(schema)?.0;
            let labels: Vec<Option<[String; 2]>> = parsed
                .iter()
                .map(|(_, f)| match f.values[k].as_slice() {
                    [a, b] => Some([a.clone(), b.clone()]),
                    _ => None,
                })
                .collect();
            rule.learn_thresholds(schema, &histories, &labels)?;
        }
        let refs: Vec<PreferenceFields> = parsed.into_iter().map(|(_, f)| f).collect();
        Self::fit(schema, &lexicon, &refs, config)
    }

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
        config.validate()?;
        let compiled = CompiledField::compile_all(schema, lexicon)?;
        let tipping = match &config.tipping {
            None => None,
            Some(rule) => Some(Tipping {
                field: rule.validate(schema)?,
                rule: rule.clone(),
            }),
        };
        let fallback = most_frequent_values(schema, train_refs)?;
        Ok(TemplateComposer {
            schema: schema.clone(),
            config,
            lexicon: compiled,
            tipping,
            fallback,
            keywords: lexicon.clone(),
        })
    }

    /// The lexicon the composer reads with (learned or given).
    pub fn lexicon(&self) -> &KeywordLexicon {
        &self.keywords
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
        query.check_authors(dataset)?;
        let weights: Vec<f64> = tips
            .iter()
            .map(|e| self.config.weighting.weight(e, query.at_ms))
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
                let TippingStats {
                    rate,
                    median,
                    generosity,
                } = rule.stats(tips, query.at_ms);
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

/// Per field of `schema`: the most frequent value list in `train_refs` (ties to the
/// first seen; the first vocabulary value of each slot when there are none).
fn most_frequent_values(
    schema: &PreferenceSchema,
    train_refs: &[PreferenceFields],
) -> Result<Vec<Vec<String>>> {
    if let Some((i, r)) = train_refs
        .iter()
        .enumerate()
        .find(|(_, r)| r.values.len() != schema.fields.len())
    {
        return Err(ComposerError::data(format!(
            "training reference {i} has {} fields, the schema {}",
            r.values.len(),
            schema.fields.len()
        )));
    }
    let mut fallback = Vec::with_capacity(schema.fields.len());
    for (k, f) in schema.fields.iter().enumerate() {
        let mut counts: Vec<(&Vec<String>, usize)> = Vec::new();
        for r in train_refs {
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
    Ok(fallback)
}

impl Composer for TemplateComposer {
    fn name(&self) -> &str {
        "template"
    }

    fn compose(&self, ctx: &ComposeContext<'_>, query: HistoryQuery<'_>) -> Result<Preference> {
        compose_through_batch(self, ctx, query)
    }

    fn compose_batch(
        &self,
        ctx: &ComposeContext<'_>,
        queries: &[HistoryQuery<'_>],
    ) -> Result<Vec<Preference>> {
        let parts: Vec<(PreferenceFields, Vec<FieldEvidence>)> = queries
            .par_iter()
            .map(|q| self.compose_fields(ctx.dataset, q))
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
