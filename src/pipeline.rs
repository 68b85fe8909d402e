//! The end-to-end job behind `examples/quickstart.rs`: synthetic world → features →
//! composed preferences → MSPA and every baseline → one evaluation → a report directory.
//!
//! Every stage reports progress through a callback; the library never prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use mspa_align::baselines::{
    BprMf, BprMfConfig, Concat, ConcatConfig, Freedom, FreedomConfig, LightGcn, LightGcnConfig,
    MostPop, Oracle, RepeatPop, RepeatPopConfig, SasRec, SasRecConfig, Vbpr, VbprConfig,
};
use mspa_align::mspa::{ComposedText, MspaRecommender, MspaSettings, TextPreferences, fit_mspa};
use mspa_align::recommender::{Query, Recommender, evaluate};
use mspa_align::train::EpochReport;
use mspa_composer::composer::{ComposeContext, Composer, HistoryQuery, embed_preferences};
use mspa_composer::eval::{
    PairConfig, ReferencePairs, evaluate_texts, held_back_from, reference_pairs,
};
use mspa_composer::learned::{LearnedComposer, LearnedComposerConfig};
use mspa_composer::nearest::NearestComposer;
use mspa_composer::schema::PreferenceSchema;
use mspa_composer::template::{KeywordLexicon, TemplateComposer, TemplateConfig};
use mspa_core::synth::{SyntheticWorldConfig, Truth, generate};
use mspa_core::{Dataset, Split, Target};
use mspa_metrics::{FullRankingEvaluator, Protocol, paired_bootstrap};
use mspa_modal::features::{AuthorFeatures, ExtractOptions, ExtractorConfig, FeatureExtractor};
use mspa_modal::text::BertEmbedder;
pub use mspa_modal::text::default_minilm_dir;
use serde::{Deserialize, Serialize};

use crate::plots::{bar_chart, line_chart};
use crate::report::{
    Curve, ModelRow, Report, SeedResult, SeedSummary, Significance, TextRow, write_atomic,
};

/// Cut-offs of every evaluation.
const KS: [usize; 2] = [10, 20];

/// Errors of the pipeline: the stage that failed and why.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct PipelineError {
    /// The stage (`world`, `features`, `compose`, `train MSPA`, ...).
    pub stage: String,
    /// What went wrong.
    pub message: String,
}

fn stage_err<E: std::fmt::Display>(stage: &str) -> impl FnOnce(E) -> PipelineError + '_ {
    move |e| PipelineError {
        stage: stage.to_string(),
        message: e.to_string(),
    }
}

/// Everything the job needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {
    /// The synthetic world to generate.
    pub world: SyntheticWorldConfig,
    /// Where the report (and the world, the features, checkpoints) go.
    pub out_dir: PathBuf,
    /// The Burn device name.
    pub device: String,
    /// The MiniLM folder (text features, text embeddings, BERTScore); `None`: no text
    /// encoder, so authors have no text features and BERTScore is not reported.
    pub minilm: Option<PathBuf>,
    /// Feature extraction settings.
    pub extractor: ExtractorConfig,
    /// The learned composer.
    pub composer: LearnedComposerConfig,
    /// Held-out protocol of the composers.
    pub pairs: PairConfig,
    /// MSPA (the ablations derive from it).
    pub mspa: MspaSettings,
    /// The baselines.
    pub baselines: BaselineSettings,
    /// Whether to also train the single-modality ablations.
    pub modality_ablations: bool,
    /// Resamples of the test users in the paired bootstrap intervals of MSPA against
    /// every other model (seeded by the world's seed).
    pub bootstrap_resamples: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            world: SyntheticWorldConfig::default(),
            out_dir: PathBuf::from("target/mspa-report"),
            device: "flex".into(),
            minilm: None,
            extractor: ExtractorConfig::default(),
            composer: LearnedComposerConfig::default(),
            pairs: PairConfig::default(),
            mspa: MspaSettings::default(),
            baselines: BaselineSettings::default(),
            modality_ablations: true,
            bootstrap_resamples: 1000,
        }
    }
}

impl PipelineConfig {
    /// The same job with `seed` as the seed of the world, of the composer's held-out
    /// users and training, and of every trained model.
    pub fn with_seed(&self, seed: u64) -> PipelineConfig {
        let mut c = self.clone();
        c.world.seed = seed;
        c.composer.seed = seed;
        c.pairs.seed = seed;
        c.mspa.train.seed = seed;
        c.baselines.bprmf.train.seed = seed;
        c.baselines.vbpr.train.seed = seed;
        c.baselines.concat.train.seed = seed;
        c.baselines.sasrec.train.seed = seed;
        c.baselines.lightgcn.train.seed = seed;
        c.baselines.freedom.train.seed = seed;
        c
    }
}

/// A progress event: the stage and a message (epoch, counts).
#[derive(Clone, Debug)]
pub struct Progress {
    /// The stage.
    pub stage: String,
    /// Done so far in this stage.
    pub done: usize,
    /// Total of this stage (0 when unknown).
    pub total: usize,
    /// A short message.
    pub message: String,
}

/// Runs the whole job and writes `report.json`, `report.md` and `plots/` into
/// `config.out_dir`. Returns the report.
pub fn run(
    config: &PipelineConfig,
    mut progress: impl FnMut(&Progress),
) -> Result<Report, PipelineError> {
    let started = Instant::now();
    let mut seconds = BTreeMap::new();
    let mut note = |stage: &str, done: usize, total: usize, message: String| {
        progress(&Progress {
            stage: stage.into(),
            done,
            total,
            message,
        })
    };
    let device = mspa_modal::device_from_name(&config.device).map_err(stage_err("device"))?;

    // 1. The world.
    let t = Instant::now();
    let world_dir = config.out_dir.join("world");
    note(
        "world",
        0,
        1,
        format!(
            "generating {} users x {} authors",
            config.world.users, config.world.authors
        ),
    );
    generate(&config.world, &world_dir).map_err(stage_err("world"))?;
    let dataset = mspa_core::load_native(&world_dir).map_err(stage_err("world"))?;
    let truth = Truth::load(&world_dir).map_err(stage_err("world"))?;
    let split = Split::leave_last_out(&dataset);
    seconds.insert("world".to_string(), t.elapsed().as_secs_f64());
    note("world", 1, 1, format!("{} tips", dataset.n_events()));

    // 2. Features.
    let t = Instant::now();
    let text_encoder = match &config.minilm {
        Some(dir) => {
            Some(BertEmbedder::from_pretrained(dir, &device).map_err(stage_err("features"))?)
        }
        None => None,
    };
    let features = extract_features(config, &dataset, text_encoder.clone(), &device, &mut note)?;
    seconds.insert("features".to_string(), t.elapsed().as_secs_f64());

    // 3. Composers: fit on training users before their validation time, evaluate on
    // held-out users.
    let t = Instant::now();
    let schema = PreferenceSchema::synthetic_world();
    let ctx = ComposeContext {
        dataset: &dataset,
        features: Some(&features),
        text_encoder: text_encoder.as_ref(),
    };
    let stage = fit_composers(config, &ctx, &truth, &split, &device, &mut note)?;
    let ComposerStage {
        pairs,
        learned,
        template,
        nearest,
    } = &stage;
    let heldout_queries: Vec<HistoryQuery<'_>> =
        pairs.heldout.iter().map(|p| p.query(&dataset)).collect();
    let references: Vec<String> = pairs.heldout.iter().map(|p| p.reference.clone()).collect();
    let mut composers = BTreeMap::new();
    // Only the texts are scored here: compose without embedding them.
    let bare = ComposeContext {
        text_encoder: None,
        ..ctx
    };
    for composer in [learned as &dyn Composer, template, nearest] {
        let composed = composer
            .compose_batch(&bare, &heldout_queries)
            .map_err(stage_err("compose"))?;
        let hyps: Vec<String> = composed.into_iter().map(|p| p.text).collect();
        let eval = evaluate_texts(&schema, &hyps, &references, text_encoder.as_ref())
            .map_err(stage_err("compose"))?;
        composers.insert(
            composer.name().to_string(),
            TextRow {
                bleu4: eval.bleu4,
                rouge_l: eval.rouge_l,
                bertscore_f1: eval.bertscore_f1,
                field_f1: eval.field_f1,
            },
        );
    }
    // Every user's preference at a few times (training midpoint, validation, test).
    note("compose", 3, 3, "composing every user's preference".into());
    let texts = compose_preferences(learned, &ctx, &schema, &split)?;
    seconds.insert("compose".to_string(), t.elapsed().as_secs_f64());
    let composer_training = composer_training_summary(&dataset, &split, pairs);

    // 4. Models.
    let mut rows = Vec::new();
    let mut per_user: Vec<Vec<(u64, f64)>> = Vec::new();
    let mut training = BTreeMap::new();
    let mut modality_weights = BTreeMap::new();
    let mut steps = Vec::new();
    let mut examples = Vec::new();
    let t = Instant::now();
    let mut variants = vec![config.mspa.clone()];
    let base = &config.mspa;
    variants.push(MspaSettings {
        name: "MSPA (T=0)".into(),
        correction_steps: 0,
        ..base.clone()
    });
    variants.push(MspaSettings {
        name: "MSPA (no text)".into(),
        use_text: false,
        ..base.clone()
    });
    if config.modality_ablations {
        for (m, name) in ["visual", "audio", "text"].iter().enumerate() {
            let mut modalities = [false; 3];
            modalities[m] = true;
            variants.push(MspaSettings {
                name: format!("MSPA ({name} only)"),
                modalities,
                ..base.clone()
            });
        }
    }
    for (i, settings) in variants.iter().enumerate() {
        let stage = format!("train {}", settings.name);
        let t_model = Instant::now();
        let epochs = settings.train.epochs;
        let mut curve = Curve::default();
        let (rec, _) = fit_mspa(
            settings,
            &dataset,
            &split,
            &features,
            &texts,
            &device,
            |r: &EpochReport| {
                curve.train_loss.push(r.train_loss);
                curve.valid_ndcg10.push(r.valid_ndcg10);
                note(&stage, r.epoch + 1, epochs, epoch_message(r));
            },
        )
        .map_err(stage_err(&stage))?;
        let train_seconds = t_model.elapsed().as_secs_f64();
        let (row, users) = evaluate_row(&rec, &dataset, &split.test, train_seconds)
            .map_err(stage_err("evaluate"))?;
        rows.push(row);
        per_user.push(users);
        modality_weights.insert(
            settings.name.clone(),
            mean_modality_weights(&rec, &dataset, &split.test, 200),
        );
        if i == 0 {
            steps = step_ndcg(&rec, &dataset, &split.test).map_err(stage_err("evaluate"))?;
            examples = explained_examples(&rec, &dataset, &split.test, 3);
        }
        training.insert(settings.name.clone(), curve);
    }
    let baselines = fit_baselines(
        &config.baselines,
        &dataset,
        &split,
        &features,
        &world_dir,
        &device,
        |name, epochs, r| {
            note(
                &format!("train {name}"),
                r.epoch + 1,
                epochs,
                epoch_message(r),
            )
        },
    )
    .map_err(stage_err("baselines"))?;
    for fitted in &baselines {
        let (row, users) = evaluate_row(
            fitted.recommender.as_ref(),
            &dataset,
            &split.test,
            fitted.seconds,
        )
        .map_err(stage_err("evaluate"))?;
        rows.push(row);
        per_user.push(users);
        if !fitted.curve.is_empty() {
            training.insert(
                fitted.recommender.name().to_string(),
                Curve {
                    train_loss: fitted.curve.iter().map(|r| r.train_loss).collect(),
                    valid_ndcg10: fitted.curve.iter().map(|r| r.valid_ndcg10).collect(),
                },
            );
        }
    }
    seconds.insert("train and evaluate".to_string(), t.elapsed().as_secs_f64());
    let significance = significance(
        &rows,
        &per_user,
        config.bootstrap_resamples,
        config.world.seed,
    )?;
    seconds.insert("total".to_string(), started.elapsed().as_secs_f64());

    let report = Report {
        world: serde_json::to_value(&config.world).unwrap_or_default(),
        device: config.device.clone(),
        dataset: serde_json::json!({
            "users": dataset.n_users(),
            "authors": dataset.n_authors(),
            "tips": dataset.n_events(),
            "test_users": split.test.len(),
        }),
        protocol: "repeats_allowed".into(),
        models: rows,
        significance,
        composer_training,
        seeds: Vec::new(),
        seed_summary: Vec::new(),
        steps,
        text: composers.get("learned").cloned().unwrap_or_default(),
        composers,
        modality_weights,
        training,
        seconds,
        examples,
    };
    write_report(&config.out_dir, &report).map_err(stage_err("report"))?;
    Ok(report)
}

/// The three composers and the pairs they were fitted on.
pub struct ComposerStage {
    /// The leak-free training pairs (see [`reference_pairs`]) and the held-out users.
    pub pairs: ReferencePairs,
    /// The learned composer (MSPA reads its compositions).
    pub learned: LearnedComposer,
    /// The keyword template composer.
    pub template: TemplateComposer,
    /// The nearest-training-user composer.
    pub nearest: NearestComposer,
}

/// Fits the learned, template and nearest composers on exactly the leak-free training
/// pairs of `reference_pairs(dataset, truth, split, config.pairs)`: no pair of a user the
/// recommenders evaluate on lies at or after that user's validation time.
pub fn fit_composers(
    config: &PipelineConfig,
    ctx: &ComposeContext<'_>,
    truth: &Truth,
    split: &Split,
    device: &Device,
    note: &mut impl FnMut(&str, usize, usize, String),
) -> Result<ComposerStage, PipelineError> {
    let schema = PreferenceSchema::synthetic_world();
    let pairs =
        reference_pairs(ctx.dataset, truth, split, &config.pairs).map_err(stage_err("compose"))?;
    note(
        "compose",
        0,
        3,
        format!(
            "{} training pairs, {} held-out users",
            pairs.train.len(),
            pairs.heldout.len()
        ),
    );
    let train_fields: Vec<_> = pairs
        .train
        .iter()
        .filter_map(|p| schema.parse(&p.reference).ok())
        .collect();
    let template = TemplateComposer::fit(
        &schema,
        &KeywordLexicon::synthetic_world(),
        &train_fields,
        TemplateConfig::default(),
    )
    .map_err(stage_err("compose"))?;
    let nearest = NearestComposer::fit(ctx, &pairs.train).map_err(stage_err("compose"))?;
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
        pairs,
        learned,
        template,
        nearest,
    })
}

/// Runs the job once per seed ([`PipelineConfig::with_seed`]) and writes one report.
///
/// With one seed this is [`run`] on `config.with_seed(seed)`. With several, each seed's
/// job writes its own report folder `out_dir/seed-N/`, and `out_dir` gets the combined
/// report: the first seed's report with [`Report::seeds`] (every seed's models and
/// significance) and [`Report::seed_summary`] (mean and standard deviation across seeds)
/// filled in, its seconds summed over the seeds.
pub fn run_seeds(
    config: &PipelineConfig,
    seeds: &[u64],
    mut progress: impl FnMut(&Progress),
) -> Result<Report, PipelineError> {
    match seeds {
        [] => run(config, progress),
        [seed] => run(&config.with_seed(*seed), progress),
        _ => {
            let mut reports = Vec::new();
            for &seed in seeds {
                let mut c = config.with_seed(seed);
                c.out_dir = config.out_dir.join(format!("seed-{seed}"));
                let report = run(&c, |p| {
                    progress(&Progress {
                        stage: format!("seed {seed}: {}", p.stage),
                        ..p.clone()
                    })
                })?;
                reports.push((seed, report));
            }
            let results: Vec<SeedResult> = reports
                .iter()
                .map(|(seed, r)| SeedResult {
                    seed: *seed,
                    models: r.models.clone(),
                    significance: r.significance.clone(),
                })
                .collect();
            let mut seconds = BTreeMap::new();
            for (_, r) in &reports {
                for (stage, s) in &r.seconds {
                    *seconds.entry(stage.clone()).or_insert(0.0) += s;
                }
            }
            let mut combined = reports.swap_remove(0).1;
            combined.seed_summary = SeedSummary::of(&results);
            combined.seeds = results;
            combined.seconds = seconds;
            write_report(&config.out_dir, &combined).map_err(stage_err("report"))?;
            Ok(combined)
        }
    }
}

fn epoch_message(r: &EpochReport) -> String {
    match r.valid_ndcg10 {
        Some(v) => format!("loss {:.4}, valid NDCG@10 {v:.4}", r.train_loss),
        None => format!("loss {:.4}", r.train_loss),
    }
}

/// Extracts (or reuses from `out_dir/features.safetensors`) every author's features.
fn extract_features(
    config: &PipelineConfig,
    dataset: &Dataset,
    text: Option<BertEmbedder>,
    device: &Device,
    note: &mut impl FnMut(&str, usize, usize, String),
) -> Result<Vec<AuthorFeatures>, PipelineError> {
    let err = stage_err::<mspa_modal::ModalError>;
    let extractor = FeatureExtractor::with_default_encoders(
        config.extractor.clone(),
        text,
        config.world.seed,
        device,
    )
    .map_err(err("features"))?;
    let extraction = extractor
        .extract_cached(
            dataset,
            &config.out_dir.join("features.safetensors"),
            ExtractOptions::default(),
            |done, total| note("features", done, total, "authors".into()),
        )
        .map_err(err("features"))?;
    Ok(extraction.features)
}

/// Composes (with `composer`) every user's preference at a few times, each from the tips
/// before it: the midpoint of the user's training tips, the validation time and the test
/// time. Training examples read the latest composition before them, so no example sees
/// a preference composed from its own future. Texts are embedded with MiniLM when
/// `text_encoder` is given (each distinct text once), else as the schema's multi-hot.
fn compose_preferences(
    composer: &dyn Composer,
    ctx: &ComposeContext<'_>,
    schema: &PreferenceSchema,
    split: &Split,
) -> Result<TextPreferences, PipelineError> {
    let dataset = ctx.dataset;
    let err = stage_err::<mspa_composer::ComposerError>;
    let mut requests: Vec<(mspa_core::UserId, std::ops::Range<usize>, i64)> = Vec::new();
    let mut train_len = vec![0usize; dataset.n_users()];
    for &i in &split.train {
        let user = dataset.events()[i].user;
        train_len[user.index()] += 1;
    }
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

/// Both protocols of one model on the test targets, and its NDCG@10 per test user
/// (repeats allowed), in target order.
fn evaluate_row(
    rec: &dyn Recommender,
    dataset: &Dataset,
    test: &[Target],
    train_seconds: f64,
) -> mspa_align::Result<(ModelRow, Vec<(u64, f64)>)> {
    let repeats = evaluate(rec, dataset, test, Protocol::RepeatsAllowed, &KS, 256)?;
    let new_authors = evaluate(rec, dataset, test, Protocol::NewAuthors, &KS, 256)?;
    let per_user = repeats
        .per_user
        .iter()
        .map(|u| (u.user, u.all.at(10).map_or(0.0, |m| m.ndcg)))
        .collect();
    Ok((
        ModelRow::new(rec.name(), &repeats, &new_authors, train_seconds),
        per_user,
    ))
}

/// MSPA (the first row) against every other row: the paired bootstrap interval of the
/// difference of NDCG@10 over the same test users.
fn significance(
    rows: &[ModelRow],
    per_user: &[Vec<(u64, f64)>],
    resamples: usize,
    seed: u64,
) -> Result<Vec<Significance>, PipelineError> {
    let err = |message: String| PipelineError {
        stage: "significance".into(),
        message,
    };
    let (Some(mspa), Some(base)) = (rows.first(), per_user.first()) else {
        return Ok(Vec::new());
    };
    if base.is_empty() || resamples == 0 {
        return Ok(Vec::new());
    }
    let a: Vec<f64> = base.iter().map(|&(_, v)| v).collect();
    let mut out = Vec::new();
    for (row, users) in rows.iter().zip(per_user).skip(1) {
        if users.len() != base.len() || users.iter().zip(base).any(|(x, y)| x.0 != y.0) {
            return Err(err(format!(
                "{} and {} were evaluated on different test users",
                mspa.name, row.name
            )));
        }
        let b: Vec<f64> = users.iter().map(|&(_, v)| v).collect();
        let d = paired_bootstrap(&a, &b, resamples, 0.95, seed).map_err(|e| err(e.to_string()))?;
        out.push(Significance {
            model: row.name.clone(),
            delta_ndcg10: d.delta,
            ci95: [d.lo, d.hi],
            significant: d.significant(),
        });
    }
    Ok(out)
}

/// What the composer was fitted on, for the report: the number of training pairs and
/// users, held-out users, and the largest `at_ms - validation time` over the training
/// pairs of evaluated users (negative: every pair lies before its user's validation).
fn composer_training_summary(
    dataset: &Dataset,
    split: &Split,
    pairs: &ReferencePairs,
) -> serde_json::Value {
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
        "train_pairs": pairs.train.len(),
        "train_users": users.len(),
        "heldout_users": pairs.heldout.len(),
        "latest_pair_minus_validation_ms": closest,
    })
}

fn queries<'d>(dataset: &'d Dataset, targets: &[Target]) -> Vec<Query<'d>> {
    targets
        .iter()
        .map(|t| Query {
            user: t.user,
            history: t.history(dataset),
            at_ms: t.timestamp_ms,
        })
        .collect()
}

/// Test NDCG@10 of MSPA's scores at every correction step.
fn step_ndcg(
    rec: &MspaRecommender,
    dataset: &Dataset,
    test: &[Target],
) -> mspa_align::Result<Vec<f64>> {
    let qs = queries(dataset, test);
    let users: Vec<mspa_metrics::EvalUser> = test
        .iter()
        .zip(&qs)
        .map(|(t, q)| mspa_metrics::EvalUser {
            user: u64::from(t.user.0),
            targets: vec![t.author.index()],
            train: q.history_authors().into_iter().map(|a| a.index()).collect(),
        })
        .collect();
    let evaluator =
        FullRankingEvaluator::new(dataset.n_authors(), &[10], Protocol::RepeatsAllowed)?;
    let n = dataset.n_authors();
    rec.score_steps(&qs)?
        .into_iter()
        .map(|scores| {
            let rows: Vec<&[f32]> = scores.chunks(n).collect();
            Ok(evaluator
                .evaluate_rows(&users, &rows)?
                .all
                .ndcg(10)
                .unwrap_or(0.0))
        })
        .collect()
}

/// Mean modality weights of the top 10 of up to `max_users` test users.
fn mean_modality_weights(
    rec: &MspaRecommender,
    dataset: &Dataset,
    test: &[Target],
    max_users: usize,
) -> [f64; 3] {
    let mut sum = [0.0f64; 3];
    let mut count = 0usize;
    for q in queries(dataset, &test[..test.len().min(max_users)]) {
        let Ok(top) = mspa_align::recommender::recommend(rec, q, 10, false, dataset.n_authors())
        else {
            continue;
        };
        let authors: Vec<usize> = top.iter().map(|(a, _)| a.index()).collect();
        if let Ok(explained) = rec.explain(q, &authors) {
            for e in explained {
                for m in 0..3 {
                    sum[m] += f64::from(e.modality_weights[m]);
                }
                count += 1;
            }
        }
    }
    sum.map(|s| if count > 0 { s / count as f64 } else { 0.0 })
}

/// The top 5 of a few test users with their explanations, as JSON.
fn explained_examples(
    rec: &MspaRecommender,
    dataset: &Dataset,
    test: &[Target],
    users: usize,
) -> Vec<serde_json::Value> {
    queries(dataset, &test[..test.len().min(users)])
        .into_iter()
        .filter_map(|q| {
            let top =
                mspa_align::recommender::recommend(rec, q, 5, false, dataset.n_authors()).ok()?;
            let authors: Vec<usize> = top.iter().map(|(a, _)| a.index()).collect();
            let explained = rec.explain(q, &authors).ok()?;
            let items: Vec<serde_json::Value> = explained
                .iter()
                .zip(&top)
                .map(|(e, (a, score))| {
                    serde_json::json!({
                        "author": dataset.author(*a).id.to_string(),
                        "title": dataset.author(*a).title,
                        "score": score,
                        "modality_weights": e.modality_weights,
                        "step_scores": e.step_scores,
                    })
                })
                .collect();
            Some(serde_json::json!({
                "user": dataset.user_external(q.user).to_string(),
                "preference": explained.first().and_then(|e| e.preference.clone()),
                "top": items,
            }))
        })
        .collect()
}

/// Writes `report.json`, `report.md` and the plots, each atomically.
pub fn write_report(out_dir: &Path, report: &Report) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    write_atomic(&out_dir.join("report.json"), json.as_bytes())?;
    write_atomic(&out_dir.join("report.md"), report.markdown().as_bytes())?;
    let plots = out_dir.join("plots");
    let loss: Vec<(String, Vec<(f64, f64)>)> = report
        .training
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                c.train_loss
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| ((i + 1) as f64, l))
                    .collect(),
            )
        })
        .collect();
    write_atomic(
        &plots.join("training.svg"),
        line_chart("Training loss", "epoch", "loss", &loss).as_bytes(),
    )?;
    let valid: Vec<(String, Vec<(f64, f64)>)> = report
        .training
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                c.valid_ndcg10
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| ((i + 1) as f64, v)))
                    .collect(),
            )
        })
        .collect();
    write_atomic(
        &plots.join("validation.svg"),
        line_chart("Validation NDCG@10", "epoch", "NDCG@10", &valid).as_bytes(),
    )?;
    let steps = vec![(
        "MSPA".to_string(),
        report
            .steps
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as f64, v))
            .collect(),
    )];
    write_atomic(
        &plots.join("steps.svg"),
        line_chart(
            "Test NDCG@10 per correction step",
            "step",
            "NDCG@10",
            &steps,
        )
        .as_bytes(),
    )?;
    let names: Vec<String> = report.modality_weights.keys().cloned().collect();
    let series: Vec<(String, Vec<f64>)> = ["visual", "audio", "text"]
        .iter()
        .enumerate()
        .map(|(m, label)| {
            (
                label.to_string(),
                report.modality_weights.values().map(|w| w[m]).collect(),
            )
        })
        .collect();
    write_atomic(
        &plots.join("modality_weights.svg"),
        bar_chart("Mean modality weights (top 10)", "weight", &names, &series).as_bytes(),
    )?;
    Ok(())
}

/// Settings of the baselines.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BaselineSettings {
    /// BPR-MF (ids only).
    pub bprmf: BprMfConfig,
    /// VBPR (ids and visual features).
    pub vbpr: VbprConfig,
    /// The shallow concatenation model.
    pub concat: ConcatConfig,
    /// The repeat-then-popularity rule (its weights are chosen on validation).
    pub repeatpop: RepeatPopConfig,
    /// SASRec with the repeat-consumption signal.
    pub sasrec: SasRecConfig,
    /// LightGCN (ids only).
    pub lightgcn: LightGcnConfig,
    /// FREEDOM (ids and every modality's features).
    pub freedom: FreedomConfig,
}

/// A fitted baseline with its training time and curve.
struct FittedBaseline {
    recommender: Box<dyn Recommender>,
    seconds: f64,
    curve: Vec<EpochReport>,
}

/// Fits MostPop, RepeatPop, BPR-MF, VBPR, Concat, SASRec, LightGCN, FREEDOM and the
/// oracle, in that order.
fn fit_baselines(
    settings: &BaselineSettings,
    dataset: &Dataset,
    split: &Split,
    features: &[AuthorFeatures],
    world_dir: &Path,
    device: &Device,
    mut progress: impl FnMut(&str, usize, &EpochReport),
) -> mspa_align::Result<Vec<FittedBaseline>> {
    let mut out = Vec::new();
    let t = Instant::now();
    out.push(FittedBaseline {
        recommender: Box::new(MostPop::fit(dataset, split)),
        seconds: t.elapsed().as_secs_f64(),
        curve: Vec::new(),
    });
    let t = Instant::now();
    out.push(FittedBaseline {
        recommender: Box::new(RepeatPop::fit(dataset, split, &settings.repeatpop)?),
        seconds: t.elapsed().as_secs_f64(),
        curve: Vec::new(),
    });
    let t = Instant::now();
    let epochs = settings.bprmf.train.epochs;
    let (bpr, curve) = BprMf::fit(dataset, split, &settings.bprmf, device, |r| {
        progress("BPR-MF", epochs, r)
    })?;
    out.push(FittedBaseline {
        recommender: Box::new(bpr),
        seconds: t.elapsed().as_secs_f64(),
        curve,
    });
    let t = Instant::now();
    let epochs = settings.vbpr.train.epochs;
    let (vbpr, curve) = Vbpr::fit(dataset, split, features, &settings.vbpr, device, |r| {
        progress("VBPR", epochs, r)
    })?;
    out.push(FittedBaseline {
        recommender: Box::new(vbpr),
        seconds: t.elapsed().as_secs_f64(),
        curve,
    });
    let t = Instant::now();
    let epochs = settings.concat.train.epochs;
    let (concat, curve) = Concat::fit(dataset, split, features, &settings.concat, device, |r| {
        progress("Concat", epochs, r)
    })?;
    out.push(FittedBaseline {
        recommender: Box::new(concat),
        seconds: t.elapsed().as_secs_f64(),
        curve,
    });
    let t = Instant::now();
    let epochs = settings.sasrec.train.epochs;
    let (sasrec, curve) = SasRec::fit(dataset, split, &settings.sasrec, device, |r| {
        progress("SASRec", epochs, r)
    })?;
    out.push(FittedBaseline {
        recommender: Box::new(sasrec),
        seconds: t.elapsed().as_secs_f64(),
        curve,
    });
    let t = Instant::now();
    let epochs = settings.lightgcn.train.epochs;
    let (lightgcn, curve) = LightGcn::fit(dataset, split, &settings.lightgcn, device, |r| {
        progress("LightGCN", epochs, r)
    })?;
    out.push(FittedBaseline {
        recommender: Box::new(lightgcn),
        seconds: t.elapsed().as_secs_f64(),
        curve,
    });
    let t = Instant::now();
    let epochs = settings.freedom.train.epochs;
    let (freedom, curve) =
        Freedom::fit(dataset, split, features, &settings.freedom, device, |r| {
            progress("FREEDOM", epochs, r)
        })?;
    out.push(FittedBaseline {
        recommender: Box::new(freedom),
        seconds: t.elapsed().as_secs_f64(),
        curve,
    });
    let t = Instant::now();
    out.push(FittedBaseline {
        recommender: Box::new(Oracle::load(world_dir, dataset)?),
        seconds: t.elapsed().as_secs_f64(),
        curve: Vec::new(),
    });
    Ok(out)
}

/// A trained learned composer and MSPA, with what they need to serve one user: the
/// dataset's features and training tip counts. Made by [`TrainedModels::load_or_train`].
pub struct TrainedModels {
    composer: LearnedComposer,
    mspa: MspaRecommender,
    features: Vec<AuthorFeatures>,
    text_encoder: Option<BertEmbedder>,
}

impl TrainedModels {
    /// Loads the composer and MSPA from `checkpoint/{composer,mspa}` when both exist;
    /// otherwise extracts features, trains both on `dataset` (a synthetic world in
    /// `data_dir`, whose `truth.json` gives the reference texts) and, with a checkpoint
    /// folder, saves them there. `log` receives one line per stage.
    pub fn load_or_train(
        config: &PipelineConfig,
        data_dir: &Path,
        dataset: &Dataset,
        checkpoint: Option<&Path>,
        device: &Device,
        mut log: impl FnMut(&str),
    ) -> Result<TrainedModels, PipelineError> {
        let text_encoder = match &config.minilm {
            Some(dir) => {
                Some(BertEmbedder::from_pretrained(dir, device).map_err(stage_err("features"))?)
            }
            None => None,
        };
        let local = PipelineConfig {
            out_dir: data_dir.to_path_buf(),
            ..config.clone()
        };
        log("extracting features");
        let features = extract_features(
            &local,
            dataset,
            text_encoder.clone(),
            device,
            &mut |_, _, _, _| {},
        )?;
        let split = Split::leave_last_out(dataset);
        let counts = mspa_align::data::train_author_counts(dataset, &split);
        if let Some(dir) =
            checkpoint.filter(|d| d.join("mspa").is_dir() && d.join("composer").is_dir())
        {
            log(&format!(
                "loading the composer and MSPA from {}",
                dir.display()
            ));
            let composer = LearnedComposer::load(&dir.join("composer"), device)
                .map_err(stage_err("checkpoint"))?;
            let mspa = MspaRecommender::load(
                &dir.join("mspa"),
                &features,
                &counts,
                TextPreferences::default(),
                device,
            )
            .map_err(stage_err("checkpoint"))?;
            return Ok(TrainedModels {
                composer,
                mspa,
                features,
                text_encoder,
            });
        }
        let truth = Truth::load(data_dir).map_err(stage_err("world"))?;
        let ctx = ComposeContext {
            dataset,
            features: Some(&features),
            text_encoder: text_encoder.as_ref(),
        };
        let schema = PreferenceSchema::synthetic_world();
        let pairs = reference_pairs(dataset, &truth, &split, &config.pairs)
            .map_err(stage_err("compose"))?;
        log(&format!(
            "training the composer on {} pairs",
            pairs.train.len()
        ));
        let composer = LearnedComposer::fit(
            config.composer.clone(),
            &schema,
            &ctx,
            &pairs.train,
            device,
            |_, _| {},
        )
        .map_err(stage_err("compose"))?;
        log("composing the users' preferences");
        let texts = compose_preferences(&composer, &ctx, &schema, &split)?;
        log("training MSPA");
        let (mspa, _) = fit_mspa(
            &config.mspa,
            dataset,
            &split,
            &features,
            &texts,
            device,
            |r| log(&format!("MSPA epoch {}: {}", r.epoch + 1, epoch_message(r))),
        )
        .map_err(stage_err("train MSPA"))?;
        if let Some(dir) = checkpoint {
            composer
                .save(&dir.join("composer"))
                .map_err(stage_err("checkpoint"))?;
            mspa.save(&dir.join("mspa"))
                .map_err(stage_err("checkpoint"))?;
            log(&format!("saved the composer and MSPA to {}", dir.display()));
        }
        Ok(TrainedModels {
            composer,
            mspa,
            features,
            text_encoder,
        })
    }

    /// Composes `user`'s preference from their tips before `at_ms` and returns MSPA
    /// reading it, with the composed text.
    pub fn for_user(
        self,
        dataset: &Dataset,
        user: mspa_core::UserId,
        at_ms: i64,
    ) -> Result<(MspaRecommender, String), PipelineError> {
        // The text is embedded once below, by `embed_preferences`: compose without the
        // encoder.
        let ctx = ComposeContext {
            dataset,
            features: Some(&self.features),
            text_encoder: None,
        };
        let tips = dataset.user_events(user);
        let tips = &tips[..tips.partition_point(|t| t.timestamp_ms < at_ms)];
        let preference = self
            .composer
            .compose(&ctx, HistoryQuery { tips, at_ms })
            .map_err(stage_err("compose"))?;
        let embedding = embed_preferences(
            self.text_encoder.as_ref(),
            self.composer.schema(),
            std::slice::from_ref(&preference.text),
            std::slice::from_ref(&preference.fields),
        )
        .map_err(stage_err("compose"))?
        .remove(0);
        let mut texts = TextPreferences::new(dataset.n_users(), embedding.len());
        texts.insert(
            user,
            ComposedText {
                at_ms,
                embedding,
                text: preference.text.clone(),
            },
        );
        Ok((self.mspa.with_texts(texts), preference.text))
    }
}
