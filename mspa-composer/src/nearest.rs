//! The nearest-user composer: a non-learned baseline that copies the reference of the
//! most similar training history.
//!
//! A history is represented by the amount- and recency-weighted mean of its authors'
//! vectors (`w_i = amount_i ^ amount_exponent * 0.5 ^ (age_i / half_life)`). An author's
//! vector is its features (`ComposeContext::features`), each modality L2-normalised (a
//! missing modality is zeros) and concatenated; without features it is the author's id
//! (a bag of tipped authors). A query composes as the reference (text and fields) of the
//! training pair with the highest cosine similarity (ties to the lower index); a history
//! with no usable tips gets the most common training reference.

use std::collections::HashMap;

use mspa_core::Dataset;
use mspa_modal::features::{AuthorFeatures, Modality};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::composer::{
    ComposeContext, Composer, FieldEvidence, HistoryQuery, Preference, TipWeighting, TrainingPair,
    compose_through_batch, embed_preferences,
};
use crate::error::{ComposerError, Result};
use crate::schema::{PreferenceFields, PreferenceSchema};

/// Settings of the [`NearestComposer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NearestConfig {
    /// How much each tip of a history counts.
    pub weighting: TipWeighting,
    /// At most this many supporting tips per value in the evidence (default 5).
    pub max_evidence: usize,
}

impl Default for NearestConfig {
    fn default() -> Self {
        NearestConfig {
            weighting: TipWeighting::default(),
            max_evidence: 5,
        }
    }
}

/// A unit-length history representation.
#[derive(Clone, Debug, PartialEq)]
enum Rep {
    /// Weighted mean of feature vectors.
    Dense(Vec<f32>),
    /// Weighted bag of author ids, sorted by id.
    Sparse(Vec<(u32, f32)>),
}

impl Rep {
    fn dot(&self, other: &Rep) -> f32 {
        match (self, other) {
            (Rep::Dense(a), Rep::Dense(b)) => a.iter().zip(b).map(|(x, y)| x * y).sum(),
            (Rep::Sparse(a), Rep::Sparse(b)) => {
                let (mut i, mut j, mut s) = (0, 0, 0.0);
                while i < a.len() && j < b.len() {
                    match a[i].0.cmp(&b[j].0) {
                        std::cmp::Ordering::Less => i += 1,
                        std::cmp::Ordering::Greater => j += 1,
                        std::cmp::Ordering::Equal => {
                            s += a[i].1 * b[j].1;
                            i += 1;
                            j += 1;
                        }
                    }
                }
                s
            }
            _ => 0.0,
        }
    }
}

/// How authors are represented (fixed at fit time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    /// Per-modality normalised features, concatenated; the three sizes.
    Features([usize; 3]),
    /// A bag of author ids.
    AuthorIds,
}

/// One author's concatenated, per-modality normalised feature vector.
fn author_vector(f: &AuthorFeatures) -> Vec<f32> {
    let mut out = Vec::with_capacity(f.visual.len() + f.audio.len() + f.text.len());
    for m in Modality::ALL {
        let v = f.get(m);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if f.has(m) && norm > 0.0 && norm.is_finite() {
            out.extend(v.iter().map(|x| x / norm));
        } else {
            out.extend(std::iter::repeat_n(0.0, v.len()));
        }
    }
    out
}

/// One training example as the composer keeps it.
#[derive(Clone, Debug)]
struct Entry {
    rep: Option<Rep>,
    reference: String,
    fields: PreferenceFields,
}

/// The nearest-user baseline composer (see the module docs).
#[derive(Clone, Debug)]
pub struct NearestComposer {
    schema: PreferenceSchema,
    config: NearestConfig,
    representation: Representation,
    train: Vec<Entry>,
    /// Index of the first training pair with the most common reference.
    cold: usize,
}

impl NearestComposer {
    /// [`NearestComposer::fit_with`] with the default config.
    pub fn fit(
        schema: &PreferenceSchema,
        ctx: &ComposeContext<'_>,
        train: &[TrainingPair],
    ) -> Result<Self> {
        Self::fit_with(schema, ctx, train, NearestConfig::default())
    }

    /// Represents every training history (features when `ctx.features` is given, else
    /// author ids) and parses every reference with `schema`. Errors: no training pairs, a
    /// reference that does not parse, features whose count differs from the dataset's
    /// authors or whose sizes differ between authors, out-of-range settings.
    pub fn fit_with(
        schema: &PreferenceSchema,
        ctx: &ComposeContext<'_>,
        train: &[TrainingPair],
        config: NearestConfig,
    ) -> Result<Self> {
        if train.is_empty() {
            return Err(ComposerError::data(
                "the nearest composer needs training pairs",
            ));
        }
        config.weighting.validate()?;
        let representation = match ctx.features {
            Some(features) => {
                check_features(ctx.dataset, features)?;
                Representation::Features(features.first().map(|f| f.dims()).unwrap_or([0; 3]))
            }
            None => Representation::AuthorIds,
        };
        let mut composer = NearestComposer {
            schema: schema.clone(),
            config,
            representation,
            train: Vec::new(),
            cold: 0,
        };
        let dataset = ctx.dataset;
        let features = ctx.features;
        let n_events = dataset.n_events();
        let entries: Vec<Entry> = train
            .par_iter()
            .enumerate()
            .map(|(i, pair)| {
                if pair.tips.end > n_events || pair.tips.start > pair.tips.end {
                    return Err(ComposerError::data(format!(
                        "training pair {i}: tips {:?} outside the dataset's {n_events} events",
                        pair.tips
                    )));
                }
                let fields = schema.parse(&pair.reference).map_err(|e| {
                    ComposerError::data(format!("training pair {i}: reference does not parse: {e}"))
                })?;
                let q = pair.query(dataset);
                Ok(Entry {
                    rep: composer.represent(dataset, features, &q)?.map(|(r, _)| r),
                    reference: pair.reference.clone(),
                    fields,
                })
            })
            .collect::<Result<_>>()?;
        // The most common reference (ties: the first seen).
        let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            counts.entry(e.reference.as_str()).or_insert((0, i)).0 += 1;
        }
        let cold = counts
            .values()
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|&(_, i)| i)
            .unwrap_or(0);
        composer.train = entries;
        composer.cold = cold;
        Ok(composer)
    }

    /// How authors are represented.
    pub fn representation(&self) -> Representation {
        self.representation
    }

    /// The number of training pairs.
    pub fn len(&self) -> usize {
        self.train.len()
    }

    /// Whether there are no training pairs (never true for a fitted composer).
    pub fn is_empty(&self) -> bool {
        self.train.is_empty()
    }

    /// The reference used for cold histories (the most common training reference).
    pub fn cold_reference(&self) -> &str {
        &self.train[self.cold].reference
    }

    /// The tip weights of a history.
    fn weights(&self, q: &HistoryQuery<'_>) -> Vec<f32> {
        let w = self.config.weighting;
        q.tips.iter().map(|e| w.weight(e, q.at_ms) as f32).collect()
    }

    /// The unit-length representation of a history and the per-tip author vectors'
    /// weights (`None` when no tip carries weight or every vector is zero).
    fn represent(
        &self,
        dataset: &Dataset,
        features: Option<&[AuthorFeatures]>,
        q: &HistoryQuery<'_>,
    ) -> Result<Option<(Rep, Vec<f32>)>> {
        q.check_authors(dataset)?;
        let w = self.weights(q);
        let rep = match (self.representation, features) {
            (Representation::Features(dims), Some(features)) => {
                let dim: usize = dims.iter().sum();
                let mut acc = vec![0.0f32; dim];
                let mut cache: HashMap<u32, Vec<f32>> = HashMap::new();
                for (e, &wi) in q.tips.iter().zip(&w) {
                    if wi == 0.0 {
                        continue;
                    }
                    let f = features.get(e.author.index()).ok_or_else(|| {
                        ComposerError::data(format!("no features for author {}", e.author.0))
                    })?;
                    if f.dims() != dims {
                        return Err(ComposerError::data(format!(
                            "author {} has feature sizes {:?}, the composer was fitted on {dims:?}",
                            e.author.0,
                            f.dims()
                        )));
                    }
                    let v = cache.entry(e.author.0).or_insert_with(|| author_vector(f));
                    for (a, x) in acc.iter_mut().zip(v.iter()) {
                        *a += wi * x;
                    }
                }
                Rep::Dense(acc)
            }
            (Representation::AuthorIds, _) => {
                let mut bag: HashMap<u32, f32> = HashMap::new();
                for (e, &wi) in q.tips.iter().zip(&w) {
                    *bag.entry(e.author.0).or_default() += wi;
                }
                let mut v: Vec<(u32, f32)> = bag.into_iter().filter(|(_, x)| *x > 0.0).collect();
                v.sort_unstable_by_key(|(a, _)| *a);
                Rep::Sparse(v)
            }
            (Representation::Features(_), None) => {
                return Err(ComposerError::data(
                    "the nearest composer was fitted on author features; the context has none",
                ));
            }
        };
        let norm = match &rep {
            Rep::Dense(v) => v.iter().map(|x| x * x).sum::<f32>().sqrt(),
            Rep::Sparse(v) => v.iter().map(|(_, x)| x * x).sum::<f32>().sqrt(),
        };
        if !(norm > 0.0 && norm.is_finite()) {
            return Ok(None);
        }
        let rep = match rep {
            Rep::Dense(v) => Rep::Dense(v.into_iter().map(|x| x / norm).collect()),
            Rep::Sparse(v) => Rep::Sparse(v.into_iter().map(|(a, x)| (a, x / norm)).collect()),
        };
        Ok(Some((rep, w)))
    }

    /// The training pair a history composes as and its cosine similarity (`None` for a
    /// cold history, which gets [`NearestComposer::cold_reference`]).
    pub fn nearest(
        &self,
        ctx: &ComposeContext<'_>,
        query: &HistoryQuery<'_>,
    ) -> Result<Option<(usize, f32)>> {
        if let Some(f) = ctx.features {
            check_features(ctx.dataset, f)?;
        }
        Ok(self
            .search(ctx.dataset, ctx.features, query)?
            .map(|(i, s, _)| (i, s)))
    }

    /// Nearest training pair, its similarity and the evidence tips (strongest first).
    fn search(
        &self,
        dataset: &Dataset,
        features: Option<&[AuthorFeatures]>,
        query: &HistoryQuery<'_>,
    ) -> Result<Option<(usize, f32, Vec<usize>)>> {
        let Some((rep, w)) = self.represent(dataset, features, query)? else {
            return Ok(None);
        };
        let mut best: Option<(usize, f32)> = None;
        for (i, e) in self.train.iter().enumerate() {
            if let Some(r) = &e.rep {
                let s = rep.dot(r);
                // Only a positive similarity makes a neighbour (no shared direction at
                // all is treated like a cold history).
                if s > 0.0 && best.is_none_or(|(_, b)| s > b) {
                    best = Some((i, s));
                }
            }
        }
        let Some((i, s)) = best else {
            return Ok(None);
        };
        // Evidence: each tip's contribution to the similarity with the neighbour.
        let neighbour = self.train[i]
            .rep
            .as_ref()
            .expect("chosen entries have a rep");
        let mut support: Vec<(usize, f32)> = query
            .tips
            .iter()
            .enumerate()
            .filter_map(|(t, e)| {
                let c = match (neighbour, features) {
                    (Rep::Dense(nv), Some(features)) => {
                        let v = author_vector(&features[e.author.index()]);
                        w[t] * v.iter().zip(nv).map(|(a, b)| a * b).sum::<f32>()
                    }
                    (Rep::Sparse(nv), _) => {
                        w[t] * nv
                            .binary_search_by_key(&e.author.0, |(a, _)| *a)
                            .map(|k| nv[k].1)
                            .unwrap_or(0.0)
                    }
                    _ => 0.0,
                };
                (c > 0.0).then_some((t, c))
            })
            .collect();
        support.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        support.truncate(self.config.max_evidence);
        Ok(Some((i, s, support.into_iter().map(|(t, _)| t).collect())))
    }
}

/// Checks that there is one feature row per author and that every row has the same sizes.
fn check_features(dataset: &Dataset, features: &[AuthorFeatures]) -> Result<()> {
    if features.len() != dataset.n_authors() {
        return Err(ComposerError::data(format!(
            "{} feature rows for {} authors",
            features.len(),
            dataset.n_authors()
        )));
    }
    if let Some(first) = features.first()
        && let Some((i, f)) = features
            .iter()
            .enumerate()
            .find(|(_, f)| f.dims() != first.dims())
    {
        return Err(ComposerError::data(format!(
            "author {i} has feature sizes {:?}, author 0 has {:?}",
            f.dims(),
            first.dims()
        )));
    }
    Ok(())
}

impl Composer for NearestComposer {
    fn name(&self) -> &str {
        "nearest"
    }

    fn compose_batch(
        &self,
        ctx: &ComposeContext<'_>,
        queries: &[HistoryQuery<'_>],
    ) -> Result<Vec<Preference>> {
        let dataset = ctx.dataset;
        let features = ctx.features;
        if let Some(f) = features {
            check_features(dataset, f)?;
        }
        let found: Vec<(usize, Vec<usize>)> = queries
            .par_iter()
            .map(|q| {
                Ok(match self.search(dataset, features, q)? {
                    Some((i, _, support)) => (i, support),
                    None => (self.cold, Vec::new()),
                })
            })
            .collect::<Result<_>>()?;
        let texts: Vec<String> = found
            .iter()
            .map(|(i, _)| self.train[*i].reference.clone())
            .collect();
        let fields: Vec<PreferenceFields> = found
            .iter()
            .map(|(i, _)| self.train[*i].fields.clone())
            .collect();
        let embeddings = embed_preferences(ctx.text_encoder, &self.schema, &texts, &fields)?;
        Ok(found
            .into_iter()
            .zip(texts.into_iter().zip(fields))
            .zip(embeddings)
            .map(|(((_, support), (text, fields)), embedding)| Preference {
                evidence: FieldEvidence::for_every_value(&self.schema, &fields, &support),
                text,
                fields,
                embedding,
            })
            .collect())
    }

    fn compose(&self, ctx: &ComposeContext<'_>, query: HistoryQuery<'_>) -> Result<Preference> {
        compose_through_batch(self, ctx, query)
    }
}
