//! The composer stage: fitting the composers on the leak-free pairs, composing every
//! user's preference at the times the models read it, and what the report says of it.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::Device;
use mspa_align::mspa::{ComposedText, TextPreferences};
use mspa_composer::composer::{
    ComposeContext, Composer, HistoryQuery, TrainingPair, embed_preferences,
};
use mspa_composer::eval::{ReferencePairs, evaluate_texts, held_back_from, reference_pairs};
use mspa_composer::learned::LearnedComposer;
use mspa_composer::nearest::NearestComposer;
use mspa_composer::schema::PreferenceSchema;
use mspa_composer::template::{DeriveConfig, TemplateComposer, TemplateConfig};
use mspa_core::synth::Truth;
use mspa_core::{Dataset, Split, TipEvent};
use serde::{Deserialize, Serialize};

use super::{PipelineConfig, PipelineError, stage_err, world_schema};
use crate::report::{FieldAccuracy, TextRow};

/// The three composers and the pairs they were fitted on.
pub struct ComposerStage {
    /// The preference schema every composer writes.
    pub schema: PreferenceSchema,
    /// Whose texts the pairs hold: the world's reference texts, or the template composer
    /// derived from the data.
    pub teacher: String,
    /// Whether the held-out pairs hold reference texts in `schema` (the world's, when they
    /// also taught the composers): only then are the composers' texts scored.
    pub scored: bool,
    /// The leak-free training pairs (see [`reference_pairs`]) and the held-out users.
    pub pairs: ReferencePairs,
    /// The learned composer (MSPA reads its compositions).
    pub learned: LearnedComposer,
    /// The keyword template composer.
    pub template: TemplateComposer,
    /// The nearest-training-user composer.
    pub nearest: NearestComposer,
}

/// Who writes the texts the composers learn from (JSON: `{"kind": "auto"}`,
/// `{"kind": "template"}`, `{"kind": "mllm", "config": {...}, "max_pairs": 500}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ComposerTeacher {
    /// The world's reference texts when the data has a planted truth, else the template
    /// composer derived from the data (the default).
    #[default]
    Auto,
    /// The template composer derived from the data, also on a synthetic world.
    Template,
    /// An OpenAI-compatible multimodal LLM (feature `llm-http`) writes the texts of at
    /// most `max_pairs` training pairs (a seeded sample), in the schema derived from the
    /// data; the learned composer is distilled from them and composes for everyone.
    #[cfg(feature = "llm-http")]
    Mllm {
        /// The server, model and cache.
        config: mspa_composer::llm_http::LlmHttpConfig,
        /// The most training pairs the MLLM writes.
        max_pairs: usize,
    },
}

/// The composers' teacher and its leak-free pairs (see [`reference_pairs`]: no pair of a
/// user the recommenders evaluate on lies at or after that user's validation time).
pub(crate) struct Teacher {
    /// The schema of the teacher's texts.
    pub schema: PreferenceSchema,
    /// The pairs: training texts by the teacher; held-out texts are the world's
    /// references (empty without a truth).
    pub pairs: ReferencePairs,
    /// The template composer (learned from the references, or derived from the data).
    pub template: TemplateComposer,
    /// Who wrote the texts.
    pub name: String,
    /// Whether the held-out references are in the composers' schema (text metrics).
    pub scored: bool,
}

/// The teacher `config.teacher` names. The world's reference texts (they reach the
/// composer library as a plain function) teach the composers when the data has a truth
/// and the teacher is `Auto`; the template composer is then learned from them. Otherwise
/// the template composer is derived from the data alone ([`TemplateComposer::from_data`],
/// its tipping thresholds from the training histories), and it, or the MLLM, writes the
/// texts of the same leak-free training pairs.
pub(crate) fn teacher(
    config: &PipelineConfig,
    dataset: &Dataset,
    truth: Option<&Truth>,
    split: &Split,
) -> Result<Teacher, PipelineError> {
    let err = stage_err::<mspa_composer::ComposerError>;
    if let (Some(truth), ComposerTeacher::Auto) = (truth, &config.teacher) {
        let schema = world_schema();
        let pairs = reference_pairs(dataset, &truth.references(), split, &config.pairs)
            .map_err(err("compose"))?;
        let template =
            TemplateComposer::learn(&schema, dataset, &pairs.train, TemplateConfig::default())
                .map_err(err("compose"))?;
        return Ok(Teacher {
            schema,
            pairs,
            template,
            name: "the world's reference texts".into(),
            scored: true,
        });
    }
    let histories = training_histories(dataset, split);
    let template = TemplateComposer::from_data(
        dataset,
        &histories,
        &DeriveConfig::default(),
        TemplateConfig::default(),
    )
    .map_err(err("compose"))?;
    // The pairs' users and times; the held-out texts are the world's when it has any.
    let no_text = |_: &str, _: i64| Ok(String::new());
    let references = truth.map(Truth::references);
    let texts: &dyn Fn(&str, i64) -> Result<String, String> = match &references {
        Some(r) => r,
        None => &no_text,
    };
    let mut pairs =
        reference_pairs(dataset, texts, split, &config.pairs).map_err(err("compose"))?;
    let (name, max_pairs) = match &config.teacher {
        #[cfg(feature = "llm-http")]
        ComposerTeacher::Mllm {
            config: llm,
            max_pairs,
        } => (
            format!("MLLM `{}` at {}", llm.model, llm.base_url),
            Some(*max_pairs),
        ),
        _ => ("template composer derived from the data".to_string(), None),
    };
    if let Some(n) = max_pairs {
        keep_sample(&mut pairs.train, n, config.pairs.seed);
    }
    let teacher: Box<dyn Composer> = match &config.teacher {
        #[cfg(feature = "llm-http")]
        ComposerTeacher::Mllm { config: llm, .. } => Box::new(
            mspa_composer::llm_http::LlmHttpComposer::new(llm.clone(), template.schema().clone())
                .map_err(err("compose"))?,
        ),
        _ => Box::new(template.clone()),
    };
    let bare = ComposeContext {
        dataset,
        features: None,
        text_encoder: None,
    };
    let queries: Vec<HistoryQuery<'_>> = pairs.train.iter().map(|p| p.query(dataset)).collect();
    let written = teacher
        .compose_batch(&bare, &queries)
        .map_err(err("compose"))?;
    for (pair, p) in pairs.train.iter_mut().zip(written) {
        pair.reference = p.text;
    }
    Ok(Teacher {
        schema: template.schema().clone(),
        pairs,
        template,
        name,
        scored: false,
    })
}

/// Keeps a seeded sample of at most `n` of `pairs`, in their order.
fn keep_sample(pairs: &mut Vec<TrainingPair>, n: usize, seed: u64) {
    if pairs.len() <= n {
        return;
    }
    let mut keys: Vec<(u64, usize)> = (0..pairs.len())
        .map(|i| {
            (
                mspa_core::rng::mix64(seed ^ mspa_core::rng::mix64(i as u64)),
                i,
            )
        })
        .collect();
    keys.sort_unstable();
    let mut keep = vec![false; pairs.len()];
    for &(_, i) in &keys[..n] {
        keep[i] = true;
    }
    let mut i = 0;
    pairs.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// Each user's training tips (a prefix of their history) with the time just after the
/// last one.
fn training_histories<'d>(dataset: &'d Dataset, split: &Split) -> Vec<(&'d [TipEvent], i64)> {
    let train_len = training_lengths(dataset, split);
    dataset
        .users()
        .filter(|u| train_len[u.index()] > 0)
        .map(|u| {
            let tips = &dataset.user_events(u)[..train_len[u.index()]];
            (tips, tips[tips.len() - 1].timestamp_ms + 1)
        })
        .collect()
}

/// The number of training tips of each user (the training tips of a user are the first
/// ones of their history).
fn training_lengths(dataset: &Dataset, split: &Split) -> Vec<usize> {
    let mut train_len = vec![0usize; dataset.n_users()];
    for &i in &split.train {
        train_len[dataset.events()[i].user.index()] += 1;
    }
    train_len
}

/// Fits the template, nearest and learned composers on exactly the teacher's
/// leak-free training pairs.
pub fn fit_composers(
    config: &PipelineConfig,
    ctx: &ComposeContext<'_>,
    truth: Option<&Truth>,
    split: &Split,
    device: &Device,
    note: &mut impl FnMut(&str, usize, usize, String),
) -> Result<ComposerStage, PipelineError> {
    let Teacher {
        schema,
        pairs,
        template,
        name: teacher,
        scored,
    } = teacher(config, ctx.dataset, truth, split)?;
    note(
        "compose",
        0,
        3,
        format!(
            "{} training pairs ({teacher}), {} held-out users",
            pairs.train.len(),
            pairs.heldout.len()
        ),
    );
    let nearest = NearestComposer::fit(&schema, ctx, &pairs.train).map_err(stage_err("compose"))?;
    let learned = LearnedComposer::fit(
        config.composer.clone(),
        &schema,
        ctx,
        &pairs.train,
        device,
        |epoch, loss| {
            note(
                "compose",
                epoch + 1,
                config.composer.epochs,
                format!("learned composer loss {loss:.4}"),
            )
        },
    )
    .map_err(stage_err("compose"))?;
    Ok(ComposerStage {
        schema,
        teacher,
        scored,
        pairs,
        learned,
        template,
        nearest,
    })
}

/// What the composer stage gives the models and the report.
pub(crate) struct Composed {
    /// Every user's composed preference at the times the models read it.
    pub texts: TextPreferences,
    /// Text metrics of each composer on the held-out users (when the references are in
    /// the composers' schema).
    pub composers: BTreeMap<String, TextRow>,
    /// What the composers were fitted on ([`composer_training_summary`]).
    pub composer_training: serde_json::Value,
    /// Seconds the stage took.
    pub seconds: f64,
}

/// The composer stage: fits the composers on the teacher's leak-free pairs, scores their
/// texts on the held-out users against the references (when those are in the
/// composers' schema), and composes every user's preference with the learned composer.
pub(crate) fn compose_stage(
    config: &PipelineConfig,
    ctx: &ComposeContext<'_>,
    truth: Option<&Truth>,
    split: &Split,
    device: &Device,
    note: &(dyn Fn(&str, usize, usize, String) + Sync),
) -> Result<Composed, PipelineError> {
    let t = Instant::now();
    let stage = fit_composers(config, ctx, truth, split, device, &mut |s, d, n, m| {
        note(s, d, n, m)
    })?;
    let ComposerStage {
        schema,
        pairs,
        learned,
        template,
        nearest,
        ..
    } = &stage;
    let heldout_queries: Vec<HistoryQuery<'_>> =
        pairs.heldout.iter().map(|p| p.query(ctx.dataset)).collect();
    let references: Vec<String> = pairs.heldout.iter().map(|p| p.reference.clone()).collect();
    let mut composers = BTreeMap::new();
    // Only the texts are scored here: compose without embedding them.
    let bare = ComposeContext {
        text_encoder: None,
        ..*ctx
    };
    // Text metrics need reference texts in the composers' schema: the world's, when they
    // taught the composers.
    let scored: &[&dyn Composer] = if stage.scored {
        &[learned, template, nearest]
    } else {
        &[]
    };
    for &composer in scored {
        let composed = composer
            .compose_batch(&bare, &heldout_queries)
            .map_err(stage_err("compose"))?;
        let hyps: Vec<String> = composed.into_iter().map(|p| p.text).collect();
        let eval = evaluate_texts(schema, &hyps, &references, ctx.text_encoder)
            .map_err(stage_err("compose"))?;
        composers.insert(
            composer.name().to_string(),
            TextRow {
                bleu4: eval.bleu4,
                rouge_l: eval.rouge_l,
                bertscore_f1: eval.bertscore_f1,
                field_f1: eval.field_f1,
                per_field: eval
                    .per_field
                    .iter()
                    .map(|f| FieldAccuracy {
                        field: f.name.clone(),
                        f1: f.f1,
                        exact_match: f.exact_match,
                    })
                    .collect(),
            },
        );
    }
    // Every user's preference at a few times (training midpoint, validation, test).
    note("compose", 3, 3, "composing every user's preference".into());
    let texts = compose_preferences(learned, ctx, schema, split)?;
    Ok(Composed {
        texts,
        composers,
        composer_training: composer_training_summary(ctx.dataset, split, &stage),
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Composes (with `composer`) every user's preference at a few times, each from the tips
/// before it: the midpoint of the user's training tips, the validation time and the test
/// time. Training examples read the latest composition before them, so no example sees
/// a preference composed from its own future. Texts are embedded with MiniLM when
/// `text_encoder` is given (each distinct text once), else as the schema's multi-hot.
pub(crate) fn compose_preferences(
    composer: &dyn Composer,
    ctx: &ComposeContext<'_>,
    schema: &PreferenceSchema,
    split: &Split,
) -> Result<TextPreferences, PipelineError> {
    let dataset = ctx.dataset;
    let err = stage_err::<mspa_composer::ComposerError>;
    let mut requests: Vec<(mspa_core::UserId, std::ops::Range<usize>, i64)> = Vec::new();
    let train_len = training_lengths(dataset, split);
    for user in dataset.users() {
        let range = dataset.user_range(user);
        let m = train_len[user.index()] / 2;
        if m >= 1 && m < train_len[user.index()] {
            let at = dataset.events()[range.start + m].timestamp_ms;
            requests.push((user, range.start..range.start + m, at));
        }
    }
    for t in split.valid.iter().chain(&split.test) {
        requests.push((t.user, t.history.clone(), t.timestamp_ms));
    }
    let queries: Vec<HistoryQuery<'_>> = requests
        .iter()
        .map(|(_, r, at)| HistoryQuery {
            tips: &dataset.events()[r.clone()],
            at_ms: *at,
        })
        .collect();
    // Compose without the text encoder (the composer would embed every text, many of
    // them identical), then embed each distinct text once.
    let bare = ComposeContext {
        text_encoder: None,
        ..*ctx
    };
    let composed = composer
        .compose_batch(&bare, &queries)
        .map_err(err("compose"))?;
    let (texts, fields): (Vec<String>, Vec<_>) =
        composed.into_iter().map(|p| (p.text, p.fields)).unzip();
    let embeddings =
        embed_preferences(ctx.text_encoder, schema, &texts, &fields).map_err(err("compose"))?;
    let dim = embeddings.first().map(Vec::len).unwrap_or(0);
    let mut prefs = TextPreferences::new(dataset.n_users(), dim);
    for (((user, _, at_ms), text), embedding) in requests.into_iter().zip(texts).zip(embeddings) {
        prefs.insert(
            user,
            ComposedText {
                at_ms,
                embedding,
                text,
            },
        );
    }
    Ok(prefs)
}

/// What the composer was fitted on, for the report: the number of training pairs and
/// users, held-out users, and the largest `at_ms - validation time` over the training
/// pairs of evaluated users (negative: every pair lies before its user's validation).
pub(crate) fn composer_training_summary(
    dataset: &Dataset,
    split: &Split,
    stage: &ComposerStage,
) -> serde_json::Value {
    let pairs = &stage.pairs;
    let held_back = held_back_from(dataset, split);
    let mut users: Vec<u32> = pairs.train.iter().map(|p| p.user.0).collect();
    users.dedup();
    let closest = pairs
        .train
        .iter()
        .filter_map(|p| held_back[p.user.index()].map(|v| p.at_ms - v))
        .max();
    serde_json::json!({
        "protocol": "training pairs end before each evaluated user's validation time",
        "teacher": stage.teacher,
        "train_pairs": pairs.train.len(),
        "train_users": users.len(),
        "heldout_users": pairs.heldout.len(),
        "latest_pair_minus_validation_ms": closest,
    })
}
