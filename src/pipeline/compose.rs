//! The composer stage: fitting the composers on the leak-free pairs, composing every
//! user's preference at the times the models read it, and what the report says of it.

use burn::tensor::Device;
use mspa_align::mspa::{ComposedText, TextPreferences};
use mspa_composer::composer::{ComposeContext, Composer, HistoryQuery, embed_preferences};
use mspa_composer::eval::{ReferencePairs, held_back_from, reference_pairs};
use mspa_composer::learned::LearnedComposer;
use mspa_composer::nearest::NearestComposer;
use mspa_composer::schema::PreferenceSchema;
use mspa_composer::template::{DeriveConfig, TemplateComposer, TemplateConfig};
use mspa_core::synth::Truth;
use mspa_core::{Dataset, ExternalId, Split, TipEvent};

use super::{PipelineConfig, PipelineError, stage_err, world_schema};

/// The three composers and the pairs they were fitted on.
pub struct ComposerStage {
    /// The preference schema every composer writes.
    pub schema: PreferenceSchema,
    /// Whose texts the pairs hold: the world's reference texts, or the template composer
    /// derived from the data.
    pub teacher: String,
    /// The leak-free training pairs (see [`reference_pairs`]) and the held-out users.
    pub pairs: ReferencePairs,
    /// The learned composer (MSPA reads its compositions).
    pub learned: LearnedComposer,
    /// The keyword template composer.
    pub template: TemplateComposer,
    /// The nearest-training-user composer.
    pub nearest: NearestComposer,
}

/// The composers' teacher and its leak-free pairs (see [`reference_pairs`]: no pair of a
/// user the recommenders evaluate on lies at or after that user's validation time).
pub(crate) struct Teacher {
    /// The schema of the teacher's texts.
    pub schema: PreferenceSchema,
    /// The pairs.
    pub pairs: ReferencePairs,
    /// The template composer (learned from the references, or derived from the data).
    pub template: TemplateComposer,
    /// Who wrote the texts.
    pub name: String,
}

/// With a planted truth: the world's reference texts (they reach the composer library as
/// a plain function), and the template composer learned from them. Without one: the
/// template composer derived from the data alone ([`TemplateComposer::from_data`], its
/// tipping thresholds from the training histories), whose texts the pairs hold.
pub(crate) fn teacher(
    config: &PipelineConfig,
    dataset: &Dataset,
    truth: Option<&Truth>,
    split: &Split,
) -> Result<Teacher, PipelineError> {
    let err = stage_err::<mspa_composer::ComposerError>;
    if let Some(truth) = truth {
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
    let bare = ComposeContext {
        dataset,
        features: None,
        text_encoder: None,
    };
    let text = |user: &str, at_ms: i64| -> Result<String, String> {
        let u = dataset
            .user_by_external(&ExternalId::parse(user))
            .ok_or_else(|| format!("unknown user {user}"))?;
        let tips = dataset.user_events(u);
        let tips = &tips[..tips.partition_point(|t| t.timestamp_ms < at_ms)];
        template
            .compose(&bare, HistoryQuery { tips, at_ms })
            .map(|p| p.text)
            .map_err(|e| e.to_string())
    };
    let pairs = reference_pairs(dataset, &text, split, &config.pairs).map_err(err("compose"))?;
    Ok(Teacher {
        schema: template.schema().clone(),
        pairs,
        template,
        name: "template composer derived from the data".into(),
    })
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

/// Fits the template, nearest and learned composers on exactly the [`teacher`]'s
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
        pairs,
        learned,
        template,
        nearest,
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
