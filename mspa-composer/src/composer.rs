//! The [`Composer`] trait: a user's tipping history in, a [`Preference`] out.
//!
//! Every composer (learned, template, nearest-user, an MLLM service) sees the same
//! [`ComposeContext`]: the dataset (authors' titles, descriptions, media paths), the
//! authors' extracted features, and optionally the text encoder used to embed the
//! composed text.

use mspa_core::{DAY_MS, Dataset, TipEvent};
use mspa_modal::features::AuthorFeatures;
use mspa_modal::text::BertEmbedder;

use crate::error::{ComposerError, Result};
use crate::schema::{PreferenceFields, PreferenceSchema};

/// What every composer may read besides the history itself.
#[derive(Clone, Copy)]
pub struct ComposeContext<'a> {
    /// The dataset: authors (title, description, media) and all tip events.
    pub dataset: &'a Dataset,
    /// Features of every author, indexed by `AuthorId` (`None` when not extracted).
    pub features: Option<&'a [AuthorFeatures]>,
    /// Text encoder that embeds composed texts (`None`: embeddings come from the
    /// composer's own representation only).
    pub text_encoder: Option<&'a BertEmbedder>,
}

/// One composition request: a user's tips strictly before `at_ms`, oldest first.
#[derive(Clone, Copy, Debug)]
pub struct HistoryQuery<'a> {
    /// The user's tips up to the composition time, oldest first (may be empty: a cold
    /// user still gets a preference).
    pub tips: &'a [TipEvent],
    /// The composition time in milliseconds (recency is measured from it).
    pub at_ms: i64,
}

impl HistoryQuery<'_> {
    /// Fails when a tip names an author `dataset` does not have.
    pub fn check_authors(&self, dataset: &Dataset) -> Result<()> {
        let n_authors = dataset.n_authors();
        if let Some((i, e)) = self
            .tips
            .iter()
            .enumerate()
            .find(|(_, e)| e.author.index() >= n_authors)
        {
            return Err(ComposerError::data(format!(
                "tip {i} names author {} but the dataset has {n_authors} authors",
                e.author.0
            )));
        }
        Ok(())
    }
}

/// How much each tip of a history counts when it is composed at time `T`:
/// `amount ^ amount_exponent` (1 when the exponent is 0; a negative or non-finite amount
/// counts as 0), halved every `half_life_days` before `T`. Shared by the template and
/// nearest composers (JSON: `{"half_life_days": 7, "amount_exponent": 1}`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TipWeighting {
    /// Half-life of a tip's weight, in days (default 7).
    pub half_life_days: f64,
    /// A tip weighs `amount ^ amount_exponent` (default 1; 0 ignores amounts).
    pub amount_exponent: f64,
}

impl Default for TipWeighting {
    fn default() -> Self {
        TipWeighting {
            half_life_days: 7.0,
            amount_exponent: 1.0,
        }
    }
}

impl TipWeighting {
    /// Checks the settings: `half_life_days` finite and positive, `amount_exponent`
    /// finite (each error names its field).
    pub fn validate(&self) -> Result<()> {
        if !(self.half_life_days.is_finite() && self.half_life_days > 0.0) {
            return Err(ComposerError::config(
                "weighting.half_life_days",
                format!("must be positive, got {}", self.half_life_days),
            ));
        }
        if !self.amount_exponent.is_finite() {
            return Err(ComposerError::config(
                "weighting.amount_exponent",
                "must be finite",
            ));
        }
        Ok(())
    }

    /// The weight of tip `e` in a history composed at `at_ms`; 0 for a weight that is not
    /// finite.
    pub fn weight(&self, e: &TipEvent, at_ms: i64) -> f64 {
        let age = (at_ms - e.timestamp_ms).max(0) as f64;
        let amount = if e.amount.is_finite() {
            e.amount.max(0.0)
        } else {
            0.0
        };
        let m = if self.amount_exponent == 0.0 {
            1.0
        } else {
            amount.powf(self.amount_exponent)
        };
        let w = m * 0.5f64.powf(age / (self.half_life_days * DAY_MS));
        if w.is_finite() { w } else { 0.0 }
    }
}

/// Which tips support one value of one field.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FieldEvidence {
    /// The field name (e.g. `categories`).
    pub field: String,
    /// The value (e.g. `gaming`).
    pub value: String,
    /// Positions in [`HistoryQuery::tips`] of the supporting tips, strongest first.
    pub tips: Vec<usize>,
}

impl FieldEvidence {
    /// The evidence of every value `fields` lists (fields in `schema` order, values in
    /// listed order), each supported by the same `tips`.
    pub fn for_every_value(
        schema: &PreferenceSchema,
        fields: &PreferenceFields,
        tips: &[usize],
    ) -> Vec<FieldEvidence> {
        schema
            .fields
            .iter()
            .zip(&fields.values)
            .flat_map(|(spec, values)| {
                values.iter().map(|v| FieldEvidence {
                    field: spec.name.clone(),
                    value: v.clone(),
                    tips: tips.to_vec(),
                })
            })
            .collect()
    }
}

/// A composed preference.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preference {
    /// The rendered structured text (parses with the schema).
    pub text: String,
    /// The same preference, typed.
    pub fields: PreferenceFields,
    /// A dense preference embedding (its size depends on the composer).
    pub embedding: Vec<f32>,
    /// Evidence for each listed value.
    pub evidence: Vec<FieldEvidence>,
}

/// Anything that turns a tipping history into a [`Preference`].
pub trait Composer: Send + Sync {
    /// A short name for reports (`learned`, `template`, `nearest`, ...).
    fn name(&self) -> &str;

    /// Composes the preference of one history.
    fn compose(&self, ctx: &ComposeContext<'_>, query: HistoryQuery<'_>) -> Result<Preference>;

    /// Composes many histories; the default calls [`Composer::compose`] for each, and
    /// composers with batched models override it.
    fn compose_batch(
        &self,
        ctx: &ComposeContext<'_>,
        queries: &[HistoryQuery<'_>],
    ) -> Result<Vec<Preference>> {
        queries.iter().map(|q| self.compose(ctx, *q)).collect()
    }
}

/// [`Composer::compose`] through [`Composer::compose_batch`] with a batch of one query,
/// for composers whose batched path is their only one.
pub fn compose_through_batch<C: Composer + ?Sized>(
    composer: &C,
    ctx: &ComposeContext<'_>,
    query: HistoryQuery<'_>,
) -> Result<Preference> {
    one_of_batch(query, |queries| composer.compose_batch(ctx, queries))
}

/// The one result of a batched call `batch` run on a batch of the one `query`.
pub(crate) fn one_of_batch<T>(
    query: HistoryQuery<'_>,
    batch: impl FnOnce(&[HistoryQuery<'_>]) -> Result<Vec<T>>,
) -> Result<T> {
    Ok(batch(std::slice::from_ref(&query))?
        .pop()
        .expect("one result per query"))
}

/// A supervised example for composers that learn: a user's history up to `at_ms` and the
/// reference preference text at that time.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingPair {
    /// The user.
    pub user: mspa_core::UserId,
    /// Indices into `Dataset::events()` of the user's tips before `at_ms` (a prefix of the
    /// user's range, oldest first).
    pub tips: std::ops::Range<usize>,
    /// The composition time.
    pub at_ms: i64,
    /// The reference text (schema grammar).
    pub reference: String,
}

impl TrainingPair {
    /// The pair as a [`HistoryQuery`] over `dataset`.
    pub fn query<'d>(&self, dataset: &'d Dataset) -> HistoryQuery<'d> {
        HistoryQuery {
            tips: &dataset.events()[self.tips.clone()],
            at_ms: self.at_ms,
        }
    }
}

/// Embeddings of composed preferences: with a text encoder, [`embed_texts`]; without
/// one, the schema's multi-hot of each preference's fields. `texts[i]` renders
/// `fields[i]`.
pub fn embed_preferences(
    encoder: Option<&BertEmbedder>,
    schema: &PreferenceSchema,
    texts: &[String],
    fields: &[PreferenceFields],
) -> Result<Vec<Vec<f32>>> {
    if texts.len() != fields.len() {
        return Err(ComposerError::data(format!(
            "{} texts for {} parsed preferences",
            texts.len(),
            fields.len()
        )));
    }
    match encoder {
        Some(encoder) => embed_texts(encoder, texts),
        None => Ok(fields.iter().map(|p| schema.multi_hot(p)).collect()),
    }
}

/// The unit-length sentence embedding of each text; every distinct text is encoded once
/// (chunks of 256 bound the device memory of one call).
pub fn embed_texts(encoder: &BertEmbedder, texts: &[String]) -> Result<Vec<Vec<f32>>> {
    let mut distinct: Vec<&str> = texts.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let dim = encoder.dim();
    let mut table = std::collections::HashMap::with_capacity(distinct.len());
    for chunk in distinct.chunks(256) {
        let flat = encoder
            .sentence_embeddings(chunk, true)?
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| ComposerError::data(format!("reading sentence embeddings: {e:?}")))?;
        if flat.len() != chunk.len() * dim {
            return Err(ComposerError::data(format!(
                "the text encoder returned {} numbers for {} texts of dimension {dim}",
                flat.len(),
                chunk.len()
            )));
        }
        for (text, v) in chunk.iter().zip(flat.chunks(dim)) {
            table.insert(*text, v.to_vec());
        }
    }
    Ok(texts.iter().map(|t| table[t.as_str()].clone()).collect())
}
