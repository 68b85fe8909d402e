//! Evaluating composed preference texts, and the held-out protocol that produces the
//! (history, reference) pairs to train and evaluate on.
//!
//! * [`field_scores`]: per-field precision, recall and F1 of typed preferences (values as
//!   sets for list fields, slot by slot for tuple fields), and their micro average.
//! * [`evaluate_texts`]: corpus BLEU-4 (sacrebleu defaults), ROUGE-L, optional BERTScore
//!   (MiniLM through [`BertEmbedder`]) and the field scores of texts; a hypothesis that
//!   does not parse counts as all-wrong fields.
//! * [`reference_pairs`]: the held-out split of users and the training cut points over a
//!   dataset whose reference texts a function renders at any time (a teacher, or the
//!   synthetic world's truth handed in by the caller), never at or after the time a
//!   user's evaluation targets begin.

use mspa_core::rng::{fnv1a, mix64, unit_f64};
use mspa_core::{Dataset, Split};
use mspa_metrics::{BertScoreConfig, bert_score, corpus_bleu, corpus_rouge_l};
use mspa_modal::text::BertEmbedder;
use serde::{Deserialize, Serialize};

use crate::composer::{ComposeContext, Composer, HistoryQuery, TrainingPair};
use crate::error::{ComposerError, Result};
use crate::schema::{FieldKind, PreferenceFields, PreferenceSchema};

/// Precision, recall and F1 of one field (or of all fields, micro-averaged).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldScore {
    /// The field name (`micro` for the average over all fields).
    pub name: String,
    /// `tp / (tp + fp)` (0 when nothing was predicted).
    pub precision: f64,
    /// `tp / (tp + fn)` (0 when the references list nothing).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Predicted values that are in the reference.
    pub true_positives: usize,
    /// Predicted values that are not.
    pub false_positives: usize,
    /// Reference values that were not predicted.
    pub false_negatives: usize,
    /// Share of examples whose prediction equals the reference exactly (as a set for
    /// lists, slot by slot for tuples).
    pub exact_match: f64,
}

impl FieldScore {
    fn from_counts(name: &str, tp: usize, fp: usize, fn_: usize, exact: usize, n: usize) -> Self {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        FieldScore {
            name: name.to_string(),
            precision,
            recall,
            f1,
            true_positives: tp,
            false_positives: fp,
            false_negatives: fn_,
            exact_match: ratio(exact, n),
        }
    }
}

/// Field scores of a set of predictions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldScores {
    /// One score per schema field, in schema order.
    pub per_field: Vec<FieldScore>,
    /// Micro average over all fields (all counts pooled; tuple slots count as values).
    pub micro: FieldScore,
    /// Number of (prediction, reference) pairs scored.
    pub n: usize,
}

impl FieldScores {
    /// The score of the field called `name`.
    pub fn get(&self, name: &str) -> Option<&FieldScore> {
        self.per_field.iter().find(|f| f.name == name)
    }
}

/// (tp, fp, fn, exact) of one field of one example; `pred` `None` is a failed parse,
/// scored as a wrong value in place of every reference value.
fn field_counts(
    kind: &FieldKind,
    pred: Option<&[String]>,
    reference: &[String],
) -> (usize, usize, usize, bool) {
    let Some(pred) = pred else {
        return (0, reference.len(), reference.len(), false);
    };
    match kind {
        FieldKind::List { .. } => {
            let mut p: Vec<&String> = pred.iter().collect();
            p.sort();
            p.dedup();
            let mut r: Vec<&String> = reference.iter().collect();
            r.sort();
            r.dedup();
            let tp = p.iter().filter(|v| r.contains(v)).count();
            (tp, p.len() - tp, r.len() - tp, p == r)
        }
        FieldKind::Tuple { slots } => {
            let (mut tp, mut fp, mut fn_) = (0, 0, 0);
            let n = slots.len().max(pred.len()).max(reference.len());
            for s in 0..n {
                match (pred.get(s), reference.get(s)) {
                    (Some(a), Some(b)) if a == b => tp += 1,
                    (a, b) => {
                        fp += a.is_some() as usize;
                        fn_ += b.is_some() as usize;
                    }
                }
            }
            (tp, fp, fn_, fp == 0 && fn_ == 0)
        }
    }
}

/// Per-field and micro-averaged precision/recall/F1 of `preds` against `refs` (pairs are
/// taken in order; extra items of the longer slice are ignored, `n` says how many were
/// scored). List fields compare value sets (order does not matter, unknown values are
/// simply wrong), tuple fields compare slot by slot.
///
/// ```
/// use mspa_composer::eval::field_scores;
/// use mspa_composer::schema::{FieldSpec, PreferenceFields, PreferenceSchema};
/// let schema = PreferenceSchema::new(vec![FieldSpec::list("c", &["a", "b", "c"], 2)]).unwrap();
/// let pred = PreferenceFields::from_strs(&[&["a", "b"]]);
/// let reference = PreferenceFields::from_strs(&[&["a"]]);
/// let s = field_scores(&schema, &[pred], &[reference]);
/// assert_eq!((s.micro.precision, s.micro.recall), (0.5, 1.0));
/// ```
pub fn field_scores(
    schema: &PreferenceSchema,
    preds: &[PreferenceFields],
    refs: &[PreferenceFields],
) -> FieldScores {
    let preds: Vec<Option<&PreferenceFields>> = preds.iter().map(Some).collect();
    field_scores_opt(schema, &preds, refs)
}

/// [`field_scores`] where `None` marks a prediction that could not be parsed: every
/// reference value of every field counts as a false negative and as a false positive.
pub fn field_scores_opt(
    schema: &PreferenceSchema,
    preds: &[Option<&PreferenceFields>],
    refs: &[PreferenceFields],
) -> FieldScores {
    let n = preds.len().min(refs.len());
    let k = schema.fields.len();
    let mut counts = vec![(0usize, 0usize, 0usize, 0usize); k];
    for (pred, reference) in preds.iter().zip(refs) {
        for (f, field) in schema.fields.iter().enumerate() {
            let r = reference.values.get(f).map(|v| v.as_slice()).unwrap_or(&[]);
            let p = pred.map(|p| p.values.get(f).map(|v| v.as_slice()).unwrap_or(&[]));
            let (tp, fp, fn_, exact) = field_counts(&field.kind, p, r);
            let c = &mut counts[f];
            c.0 += tp;
            c.1 += fp;
            c.2 += fn_;
            c.3 += exact as usize;
        }
    }
    let per_field: Vec<FieldScore> = schema
        .fields
        .iter()
        .zip(&counts)
        .map(|(f, c)| FieldScore::from_counts(&f.name, c.0, c.1, c.2, c.3, n))
        .collect();
    let total = counts.iter().fold((0, 0, 0, 0), |a, c| {
        (a.0 + c.0, a.1 + c.1, a.2 + c.2, a.3 + c.3)
    });
    FieldScores {
        per_field,
        micro: FieldScore::from_counts("micro", total.0, total.1, total.2, total.3, n * k),
        n,
    }
}

/// Text and field quality of composed texts against references.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextEvaluation {
    /// Corpus BLEU-4 with sacrebleu's defaults (13a tokenizer, exp smoothing), 0 to 100.
    pub bleu4: f64,
    /// Mean ROUGE-L F-measure over segments (Google rouge-score), 0 to 1.
    pub rouge_l: f64,
    /// Mean BERTScore F1 (last layer, no idf, no rescaling), 0 to 1, when an encoder was
    /// given.
    pub bertscore_f1: Option<f64>,
    /// Micro-averaged field F1 over all fields.
    pub field_f1: f64,
    /// Per-field scores, in schema order.
    pub per_field: Vec<FieldScore>,
    /// Number of (hypothesis, reference) pairs.
    pub n: usize,
    /// Hypotheses that did not parse (scored as all-wrong fields).
    pub parse_failures: usize,
}

/// Scores hypotheses against references (one reference each): BLEU-4, ROUGE-L,
/// BERTScore F1 with `bert` (a [`BertEmbedder`], e.g. all-MiniLM-L6-v2), and the field
/// scores of the parsed texts. A hypothesis that fails to parse scores as all-wrong
/// fields; a reference that fails to parse is an error, as are different lengths and an
/// empty corpus.
pub fn evaluate_texts(
    schema: &PreferenceSchema,
    hyps: &[String],
    refs: &[String],
    bert: Option<&BertEmbedder>,
) -> Result<TextEvaluation> {
    if hyps.len() != refs.len() {
        return Err(ComposerError::data(format!(
            "{} hypotheses but {} references",
            hyps.len(),
            refs.len()
        )));
    }
    if hyps.is_empty() {
        return Err(ComposerError::data("no texts to evaluate"));
    }
    let ref_fields: Vec<PreferenceFields> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            schema
                .parse(r)
                .map_err(|e| ComposerError::data(format!("reference {i} does not parse: {e}")))
        })
        .collect::<Result<_>>()?;
    let hyp_fields: Vec<Option<PreferenceFields>> =
        hyps.iter().map(|h| schema.parse(h).ok()).collect();
    let parse_failures = hyp_fields.iter().filter(|h| h.is_none()).count();
    let preds: Vec<Option<&PreferenceFields>> = hyp_fields.iter().map(|h| h.as_ref()).collect();
    let scores = field_scores_opt(schema, &preds, &ref_fields);

    let ref_sets: Vec<[&str; 1]> = refs.iter().map(|r| [r.as_str()]).collect();
    let bleu = corpus_bleu(hyps, &ref_sets)?;
    let rouge = corpus_rouge_l(hyps, &ref_sets)?;
    let bertscore_f1 = match bert {
        Some(embedder) => {
            Some(bert_score(embedder, hyps, &ref_sets, &BertScoreConfig::default())?.f1)
        }
        None => None,
    };
    Ok(TextEvaluation {
        bleu4: bleu.score,
        rouge_l: rouge.fmeasure,
        bertscore_f1,
        field_f1: scores.micro.f1,
        per_field: scores.per_field,
        n: hyps.len(),
        parse_failures,
    })
}

/// Composes every pair's history with `composer` and scores the texts against the pairs'
/// references with [`evaluate_texts`].
pub fn evaluate_composer(
    composer: &dyn Composer,
    ctx: &ComposeContext<'_>,
    schema: &PreferenceSchema,
    pairs: &[TrainingPair],
    bert: Option<&BertEmbedder>,
) -> Result<TextEvaluation> {
    let queries: Vec<HistoryQuery<'_>> = pairs.iter().map(|p| p.query(ctx.dataset)).collect();
    let composed = composer.compose_batch(ctx, &queries)?;
    let hyps: Vec<String> = composed.into_iter().map(|p| p.text).collect();
    let refs: Vec<String> = pairs.iter().map(|p| p.reference.clone()).collect();
    evaluate_texts(schema, &hyps, &refs, bert)
}

/// Settings of [`reference_pairs`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PairConfig {
    /// Share of users held out (default 0.2), chosen by a seeded hash of the user's
    /// external id, so the choice does not depend on the order or number of users.
    pub heldout_fraction: f64,
    /// Pairs per training user (default 3): its anchor pair (its latest training tip)
    /// plus up to `cuts_per_user - 1` earlier cut points.
    pub cuts_per_user: usize,
    /// Seed of the held-out hash and of the cut points (default 0).
    pub seed: u64,
}

impl Default for PairConfig {
    fn default() -> Self {
        PairConfig {
            heldout_fraction: 0.2,
            cuts_per_user: 3,
            seed: 0,
        }
    }
}

/// The training and held-out (history, reference) pairs of a world.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferencePairs {
    /// Pairs of training users (several per user, in user order, earliest cut first).
    pub train: Vec<TrainingPair>,
    /// One pair per held-out user (in user order): its history before the last tip and
    /// the reference at that time.
    pub heldout: Vec<TrainingPair>,
}

/// Whether the user with external id `user` is held out under `config`.
pub fn is_heldout(user: &str, config: &PairConfig) -> bool {
    unit_f64(mix64(fnv1a(user) ^ mix64(config.seed))) < config.heldout_fraction
}

/// The time from which a user's tips are held back from every model: its earliest
/// validation or test target in `split`, indexed by [`mspa_core::UserId`] (`None` for a
/// user without targets, whose tips are all training tips).
pub fn held_back_from(dataset: &Dataset, split: &Split) -> Vec<Option<i64>> {
    let mut from: Vec<Option<i64>> = vec![None; dataset.n_users()];
    for t in split.valid.iter().chain(&split.test) {
        if let Some(slot) = from.get_mut(t.user.index()) {
            *slot = Some(slot.map_or(t.timestamp_ms, |v| v.min(t.timestamp_ms)));
        }
    }
    from
}

/// The leak-free held-out protocol over a dataset and a source of reference texts:
/// `reference(user, t)` is the reference preference text of the user with external id
/// `user` at time `t` (an error message when there is none), `split` the split the
/// recommenders are evaluated on.
///
/// * users are held out by a seeded hash of their external id ([`is_heldout`]); the
///   composer never trains on them;
/// * a held-out user gives one pair: its tips strictly before its last tip (the test
///   time) and its reference at that time; a user whose only tip is the last one is kept
///   with an empty history (a cold user);
/// * a training user gives pairs only *before the time its tips are held back from*
///   ([`held_back_from`]: its earliest validation or test target; the end of its tips for
///   a user without targets): its anchor pair at its latest tip before that time, plus up
///   to `cuts_per_user - 1` earlier cut points chosen at random (seeded) among its earlier
///   tips; a pair holds the tips strictly before tip `i` and the reference at `t_i`; cut
///   points with no tip before them are skipped.
///
/// So no training pair carries a user's preference at or after its validation time: a
/// composer fitted on `train` cannot pass the latent preference at the validation or
/// test tip on to the recommender that reads its compositions. Histories are always
/// strictly before the pair's `at_ms`. Errors when `reference` fails for a user or the
/// config is out of range.
pub fn reference_pairs(
    dataset: &Dataset,
    reference: &dyn Fn(&str, i64) -> std::result::Result<String, String>,
    split: &Split,
    config: &PairConfig,
) -> Result<ReferencePairs> {
    if !(0.0..=1.0).contains(&config.heldout_fraction) {
        return Err(ComposerError::config(
            "heldout_fraction",
            format!("must be in [0, 1], got {}", config.heldout_fraction),
        ));
    }
    if config.cuts_per_user == 0 {
        return Err(ComposerError::config("cuts_per_user", "must be at least 1"));
    }
    let held_back = held_back_from(dataset, split);
    let mut train = Vec::new();
    let mut heldout = Vec::new();
    for user in dataset.users() {
        let ext = dataset.user_external(user).to_string();
        let text = |t: i64| reference(&ext, t).map_err(ComposerError::data);
        let range = dataset.user_range(user);
        let events = dataset.user_events(user);
        let Some(last) = events.last() else {
            continue;
        };
        let split_ms = last.timestamp_ms;
        let before = |t: i64| events.partition_point(|e| e.timestamp_ms < t);
        if is_heldout(&ext, config) {
            heldout.push(TrainingPair {
                user,
                tips: range.start..range.start + before(split_ms),
                at_ms: split_ms,
                reference: text(split_ms)?,
            });
            continue;
        }
        // Cut points: tips with at least one tip before them, before the held-back time
        // (a user without targets may use every tip, its last one included).
        let limit = held_back[user.index()];
        let mut candidates: Vec<usize> = (1..events.len())
            .filter(|&i| {
                let t = events[i].timestamp_ms;
                limit.is_none_or(|l| t < l) && before(t) > 0
            })
            .collect();
        // Dedupe cut times (ties in time give the same history).
        candidates.dedup_by_key(|i| events[*i].timestamp_ms);
        let Some(anchor) = candidates.pop() else {
            continue;
        };
        let want = (config.cuts_per_user - 1).min(candidates.len());
        // Seeded partial Fisher-Yates.
        let mut state = mix64(fnv1a(&ext) ^ mix64(config.seed ^ 0x5EED_C075));
        for j in 0..want {
            state = mix64(state);
            let k = j + (state % (candidates.len() - j) as u64) as usize;
            candidates.swap(j, k);
        }
        let mut cuts: Vec<usize> = candidates[..want].to_vec();
        cuts.sort_unstable();
        cuts.push(anchor);
        for i in cuts {
            let t = events[i].timestamp_ms;
            let reference = text(t)?;
            train.push(TrainingPair {
                user,
                tips: range.start..range.start + before(t),
                at_ms: t,
                reference,
            });
        }
    }
    Ok(ReferencePairs { train, heldout })
}
