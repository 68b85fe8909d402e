//! A preference schema and keyword lexicon derived from a dataset that has no teacher
//! texts: the template composer's vocabulary on a platform's own logs.
//!
//! * `topics` (a list field): the words that are most distinctive of single authors. Each
//!   author's title and description words are weighted by TF-IDF over the authors
//!   (`tf * ln(n_authors / df)`, words in at least `min_authors` and at most
//!   `max_author_share` of the authors with text); each author's `words_per_author` best
//!   words vote; the `topics` most voted words are the values, most voted first, and
//!   each word is its own keyword. On KuaiLive these are the rooms' content categories
//!   and the streamers' attribute values; on the synthetic world, the words of its titles.
//!   A dataset without text (Twitch) gets no `topics` field.
//! * `tipping` (a tuple field): `rare, occasional, frequent` by tips per week and `small,
//!   medium, large` by the median amount, whose thresholds
//!   [`TemplateComposer::from_data`] sets at the terciles of the training histories.
//!
//! Nothing here reads a generator's tables or a planted truth.

use std::collections::{BTreeMap, HashMap};

use mspa_core::{Dataset, TipEvent};
use serde::{Deserialize, Serialize};

use super::{KeywordLexicon, TemplateComposer, TemplateConfig, words};
use crate::error::{ComposerError, Result};
use crate::schema::{FieldSpec, PreferenceSchema};

/// The name of the derived list field of distinctive words.
pub const TOPICS_FIELD: &str = "topics";

/// How [`derive_vocabulary`] picks the `topics` values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeriveConfig {
    /// The most `topics` values (default 48).
    pub topics: usize,
    /// The most topics one preference lists (default 3).
    pub max_topics: usize,
    /// How many of its best TF-IDF words each author votes for (default 3).
    pub words_per_author: usize,
    /// A word must appear in at least this many authors' texts (default 2).
    pub min_authors: usize,
    /// A word must appear in at most this share of the authors with text (default 0.3).
    pub max_author_share: f64,
}

impl Default for DeriveConfig {
    fn default() -> Self {
        DeriveConfig {
            topics: 48,
            max_topics: 3,
            words_per_author: 3,
            min_authors: 2,
            max_author_share: 0.3,
        }
    }
}

impl DeriveConfig {
    /// Checks the settings, naming the offending one.
    pub fn validate(&self) -> Result<()> {
        crate::error::check_at_least_one(&[
            ("derive.topics", self.topics),
            ("derive.max_topics", self.max_topics),
            ("derive.words_per_author", self.words_per_author),
        ])?;
        if !(self.max_author_share > 0.0 && self.max_author_share <= 1.0) {
            return Err(ComposerError::config(
                "derive.max_author_share",
                format!("must be in (0, 1], got {}", self.max_author_share),
            ));
        }
        Ok(())
    }
}

/// The distinctive words of `dataset`'s authors, most voted first (see the module docs).
pub fn distinctive_words(dataset: &Dataset, config: &DeriveConfig) -> Result<Vec<String>> {
    config.validate()?;
    let per_author: Vec<Vec<String>> = dataset
        .authors()
        .iter()
        .map(|a| words(&format!("{}\n{}", a.title, a.description)))
        .collect();
    let with_text = per_author.iter().filter(|w| !w.is_empty()).count();
    let mut df: HashMap<&str, usize> = HashMap::new();
    for ws in &per_author {
        let mut seen: Vec<&str> = ws.iter().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        for w in seen {
            *df.entry(w).or_default() += 1;
        }
    }
    let max_df = (config.max_author_share * with_text as f64).floor() as usize;
    let keep = |w: &str| {
        let d = df[w];
        d >= config.min_authors && d <= max_df && w.chars().any(char::is_alphabetic)
    };
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for ws in &per_author {
        let mut tf: BTreeMap<&str, usize> = BTreeMap::new();
        for w in ws.iter().map(String::as_str).filter(|w| keep(w)) {
            *tf.entry(w).or_default() += 1;
        }
        let mut scored: Vec<(f64, &str)> = tf
            .into_iter()
            .map(|(w, n)| (n as f64 * (with_text as f64 / df[w] as f64).ln(), w))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        for (_, w) in scored.into_iter().take(config.words_per_author) {
            *votes.entry(w).or_default() += 1;
        }
    }
    let mut ranked: Vec<(usize, &str)> = votes.into_iter().map(|(w, n)| (n, w)).collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    Ok(ranked
        .into_iter()
        .take(config.topics)
        .map(|(_, w)| w.to_string())
        .collect())
}

/// The schema (`topics` when the authors have text, then `tipping`) and the lexicon (each
/// topic word names itself) derived from `dataset` (see the module docs).
///
/// ```
/// use mspa_composer::template::{DeriveConfig, derive_vocabulary};
/// use mspa_core::{Author, DatasetBuilder, ExternalId};
/// let mut b = DatasetBuilder::default();
/// for (id, title) in [("a", "piano night"), ("b", "piano jazz"), ("c", "retro games"),
///                     ("d", "retro speedrun"), ("e", "cooking"), ("f", "chat")] {
///     let mut author = Author::bare(ExternalId::from(id));
///     author.title = title.into();
///     b.add_author(author).unwrap();
/// }
/// let (schema, lexicon) = derive_vocabulary(&b.build(None), &DeriveConfig {
///     max_author_share: 0.5, ..DeriveConfig::default() }).unwrap();
/// assert_eq!(schema.fields[0].name, "topics");
/// assert_eq!(lexicon.fields["topics"].len(), 2); // piano, retro
/// ```
pub fn derive_vocabulary(
    dataset: &Dataset,
    config: &DeriveConfig,
) -> Result<(PreferenceSchema, KeywordLexicon)> {
    let topics = distinctive_words(dataset, config)?;
    let mut fields = Vec::new();
    let mut lexicon = KeywordLexicon::default();
    if !topics.is_empty() {
        let values: Vec<&str> = topics.iter().map(String::as_str).collect();
        fields.push(FieldSpec::list(
            TOPICS_FIELD,
            &values,
            config.max_topics.min(values.len()),
        ));
        lexicon.fields.insert(
            TOPICS_FIELD.to_string(),
            topics
                .iter()
                .map(|w| (w.clone(), vec![w.clone()]))
                .collect(),
        );
    }
    fields.push(FieldSpec::tuple(
        "tipping",
        &[
            &["rare", "occasional", "frequent"],
            &["small", "medium", "large"],
        ],
    ));
    Ok((PreferenceSchema::new(fields)?, lexicon))
}

impl TemplateComposer {
    /// The template composer of a dataset without teacher texts: the schema and lexicon of
    /// [`derive_vocabulary`], and tipping thresholds that `config` leaves empty at the
    /// terciles of `histories` (`(tips, at_ms)`: training-time histories, so nothing after
    /// a user's validation time is read). Fields without evidence fall back to their
    /// first value (the most voted topic).
    pub fn from_data(
        dataset: &Dataset,
        histories: &[(&[TipEvent], i64)],
        derive: &DeriveConfig,
        mut config: TemplateConfig,
    ) -> Result<Self> {
        let (schema, lexicon) = derive_vocabulary(dataset, derive)?;
        if let Some(rule) = config.tipping.as_mut() {
            rule.learn_thresholds(&schema, histories, &vec![None; histories.len()])?;
        }
        Self::fit(&schema, &lexicon, &[], config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::composer::{ComposeContext, Composer, HistoryQuery};
    use mspa_core::{Author, DatasetBuilder, ExternalId};

    fn dataset() -> Dataset {
        let mut b = DatasetBuilder::default();
        let titles = [
            "piano night live",
            "piano covers live",
            "retro games live",
            "retro speedrun live",
            "street food",
            "chat live",
        ];
        let authors: Vec<_> = titles
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut a = Author::bare(ExternalId::Int(i as i64));
                a.title = t.to_string();
                b.add_author(a).unwrap()
            })
            .collect();
        for u in 0..4 {
            let user = b.user(ExternalId::Int(u));
            for k in 0..6 {
                let a = authors[if u % 2 == 0 { k % 2 } else { 2 + k % 2 }];
                b.push_event(
                    user,
                    a,
                    1.0 + (u as usize * k) as f64,
                    k as i64 * 86_400_000,
                );
            }
        }
        b.build(None)
    }

    #[test]
    fn topics_are_distinctive_words_and_compose_from_the_history() {
        let ds = dataset();
        let config = DeriveConfig {
            max_author_share: 0.5,
            ..DeriveConfig::default()
        };
        let words = distinctive_words(&ds, &config).unwrap();
        // "live" is on four of six authors: too common; single-author words are too rare.
        assert_eq!(words, ["piano", "retro"]);
        let histories: Vec<(&[TipEvent], i64)> = ds
            .users()
            .map(|u| (ds.user_events(u), 10 * 86_400_000))
            .collect();
        let composer =
            TemplateComposer::from_data(&ds, &histories, &config, TemplateConfig::default())
                .unwrap();
        let ctx = ComposeContext {
            dataset: &ds,
            features: None,
            text_encoder: None,
        };
        for (u, topic) in [(0u32, "piano"), (1, "retro")] {
            let tips = ds.user_events(mspa_core::UserId(u));
            let p = composer
                .compose(
                    &ctx,
                    HistoryQuery {
                        tips,
                        at_ms: 10 * 86_400_000,
                    },
                )
                .unwrap();
            assert!(
                p.text.starts_with(&format!("topics: {topic}")),
                "{}",
                p.text
            );
            assert!(p.text.contains("tipping: "), "{}", p.text);
        }
    }

    #[test]
    fn data_without_text_gets_tipping_only_and_bad_settings_are_named() {
        let mut b = DatasetBuilder::default();
        let a = b.add_author(Author::bare(ExternalId::Int(1))).unwrap();
        let u = b.user(ExternalId::Int(1));
        b.push_event(u, a, 1.0, 0);
        let (schema, lexicon) =
            derive_vocabulary(&b.build(None), &DeriveConfig::default()).unwrap();
        assert_eq!(schema.fields.len(), 1);
        assert_eq!(schema.fields[0].name, "tipping");
        assert!(lexicon.is_empty());
        let bad = DeriveConfig {
            topics: 0,
            ..DeriveConfig::default()
        };
        let err = distinctive_words(&dataset(), &bad).unwrap_err().to_string();
        assert!(err.contains("derive.topics"), "{err}");
    }
}
