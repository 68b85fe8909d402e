//! The end-to-end job behind `examples/quickstart.rs`: data (the synthetic world, or a
//! dataset in the native, KuaiLive or Twitch format) → features → composed preferences →
//! MSPA and every baseline → one evaluation → a report directory.
//!
//! Only the text metrics against reference texts and the oracle row read a planted truth,
//! and they appear only when the data has one (the synthetic world). Without it, the
//! composers' teacher is the template composer derived from the data itself.
//!
//! Every stage reports progress through a callback; the library never prints.
//!
//! [`run`] is one job, [`run_seeds`] one job per seed with a combined report. The stages
//! live in their own files: `data.rs` (the data and the features it offers), `compose.rs` (the composers on leak-free pairs and every
//! user's compositions), `baselines.rs` (the baselines' settings and fitting),
//! `evaluate.rs` (both protocols, significance, per-step NDCG, explanations), `write.rs`
//! (the report directory) and `serve.rs` ([`TrainedModels`], serving one user).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use mspa_align::mspa::MspaSettings;
use mspa_align::train::EpochReport;
use mspa_composer::composer::ComposeContext;
use mspa_composer::eval::PairConfig;
use mspa_composer::learned::LearnedComposerConfig;
use mspa_composer::schema::PreferenceSchema;
use mspa_core::synth::SyntheticWorldConfig;
use mspa_core::{Dataset, Split};
use mspa_modal::features::{AuthorFeatures, ExtractOptions, ExtractorConfig, FeatureExtractor};
use mspa_modal::text::BertEmbedder;
pub use mspa_modal::text::default_minilm_dir;
use serde::{Deserialize, Serialize};

use crate::report::{Report, SeedResult, SeedSummary, ShortlistCheck};

mod baselines;
mod compose;
mod data;
mod discovery_ceiling;
mod evaluate;
mod models;
mod serve;
mod truth_checks;
mod write;

pub use baselines::BaselineSettings;
pub use compose::{ComposerStage, ComposerTeacher, fit_composers};
pub use data::{DataSource, KUAILIVE_TITLE_EMBEDDINGS, VectorFile};
pub use serve::TrainedModels;
pub use write::write_report;

use compose::compose_preferences;
use evaluate::significance;

/// Cut-offs of every evaluation.
pub(crate) const KS: [usize; 2] = [10, 20];

/// Errors of the pipeline: the stage that failed and why.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct PipelineError {
    /// The stage (`world`, `features`, `compose`, `train MSPA`, ...).
    pub stage: String,
    /// What went wrong.
    pub message: String,
}

pub(crate) fn stage_err<E: std::fmt::Display>(stage: &str) -> impl FnOnce(E) -> PipelineError + '_ {
    move |e| PipelineError {
        stage: stage.to_string(),
        message: e.to_string(),
    }
}

/// Everything the job needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {
    /// A dataset on disk to run on; `None` (the default): the synthetic world.
    pub data: Option<DataSource>,
    /// The synthetic world to generate (when `data` is `None`).
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
    /// Precomputed vectors added to the extracted features (each in its modality slot).
    pub vectors: Vec<VectorFile>,
    /// The learned composer.
    pub composer: LearnedComposerConfig,
    /// Who writes the texts the composers learn from.
    pub teacher: ComposerTeacher,
    /// Held-out protocol of the composers.
    pub pairs: PairConfig,
    /// MSPA (the ablations derive from it).
    pub mspa: MspaSettings,
    /// The baselines.
    pub baselines: BaselineSettings,
    /// Whether to also train the single-modality ablations (one per modality with
    /// content, when at least two have some).
    pub modality_ablations: bool,
    /// Resamples of the test users in the paired bootstrap intervals of MSPA against
    /// every other model (seeded by the world's seed).
    pub bootstrap_resamples: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            data: None,
            world: SyntheticWorldConfig::default(),
            out_dir: PathBuf::from("target/mspa-report"),
            device: "flex".into(),
            minilm: None,
            extractor: ExtractorConfig::default(),
            vectors: Vec::new(),
            composer: LearnedComposerConfig::default(),
            teacher: ComposerTeacher::default(),
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
        for train in c.baselines.trainers_mut() {
            train.seed = seed;
        }
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
    progress: impl FnMut(&Progress) + Send,
) -> Result<Report, PipelineError> {
    let started = Instant::now();
    let mut seconds = BTreeMap::new();
    // Models train concurrently: each calls `progress` in turn.
    let progress = std::sync::Mutex::new(progress);
    let mut note = |stage: &str, done: usize, total: usize, message: String| {
        let mut progress = progress.lock().unwrap_or_else(|e| e.into_inner());
        progress(&Progress {
            stage: stage.into(),
            done,
            total,
            message,
        })
    };
    let device = mspa_modal::device_from_name(&config.device).map_err(stage_err("device"))?;

    // 1. The data.
    let t = Instant::now();
    let data::LoadedData {
        dataset,
        truth,
        description,
    } = data::load_data(config, &mut note)?;
    let split = Split::leave_last_out(&dataset);
    let data_stage = if config.data.is_some() {
        "data"
    } else {
        "world"
    };
    seconds.insert(data_stage.to_string(), t.elapsed().as_secs_f64());
    note(data_stage, 1, 1, format!("{} tips", dataset.n_events()));

    // 2. Features.
    let t = Instant::now();
    let text_encoder = match &config.minilm {
        Some(dir) => {
            Some(BertEmbedder::from_pretrained(dir, &device).map_err(stage_err("features"))?)
        }
        None => None,
    };
    let mut features =
        extract_features(config, &dataset, text_encoder.clone(), &device, &mut note)?;
    let sources = data::add_data_features(config, &dataset, &mut features)?;
    let notes = data::feature_notes(&features, sources);
    seconds.insert("features".to_string(), t.elapsed().as_secs_f64());

    // 3-4. The composers and then MSPA, which reads their compositions, side by side with
    // the baselines, which read none.
    let t = Instant::now();
    let ctx = ComposeContext {
        dataset: &dataset,
        features: Some(&features),
        text_encoder: text_encoder.as_ref(),
    };
    let compose = || compose::compose_stage(config, &ctx, truth.as_ref(), &split, &device, &note);
    let (composed, mut models) =
        models::train_and_evaluate(config, &dataset, &split, &features, compose, &device, &note)?;
    seconds.insert("compose".to_string(), composed.seconds);
    let checks_started = Instant::now();
    let truth_checks = match (&truth, &models.inspection) {
        (Some(truth), Some(inspection)) => Some(truth_checks::truth_checks(
            truth,
            &dataset,
            &split,
            &features,
            inspection,
            config.bootstrap_resamples,
            config.world.seed,
        )?),
        _ => None,
    };
    if truth_checks.is_some() {
        seconds.insert(
            "truth checks".to_string(),
            checks_started.elapsed().as_secs_f64(),
        );
    }
    if let Some(truth) = truth {
        models.add_oracle(truth, &dataset, &split)?;
    }
    let models::ModelResults {
        rows,
        per_user,
        training,
        modality_weights,
        steps,
        examples,
        all_authors,
        ..
    } = models;
    let compose::Composed {
        composers,
        composer_training,
        ..
    } = composed;
    seconds.insert("train and evaluate".to_string(), t.elapsed().as_secs_f64());
    let shortlist = match (all_authors, rows.first(), per_user.first()) {
        (Some((all_row, all_users)), Some(mspa), Some(users)) => {
            let pair = [mspa.clone(), all_row.clone()];
            let users = [users.clone(), all_users];
            significance(&pair, &users, config.bootstrap_resamples, config.world.seed)?
                .pop()
                .map(|difference| ShortlistCheck {
                    size: config.mspa.shortlist,
                    ndcg10: mspa.all.ndcg10,
                    all_authors_ndcg10: all_row.all.ndcg10,
                    difference,
                })
        }
        _ => None,
    };
    let significance = significance(
        &rows,
        &per_user,
        config.bootstrap_resamples,
        config.world.seed,
    )?;
    seconds.insert("total".to_string(), started.elapsed().as_secs_f64());

    let report = Report {
        world: description,
        notes,
        device: config.device.clone(),
        dataset: serde_json::json!({
            "users": dataset.n_users(),
            "authors": dataset.n_authors(),
            "tips": dataset.n_events(),
            "test_users": split.test.len(),
            "live_schedule": dataset.live().is_some(),
        }),
        protocol: "repeats_allowed".into(),
        models: rows,
        significance,
        composer_training,
        seeds: Vec::new(),
        seed_summary: Vec::new(),
        steps,
        shortlist,
        text: composers.get("learned").cloned(),
        composers,
        modality_weights,
        training,
        seconds,
        examples,
        truth_checks,
    };
    write_report(&config.out_dir, &report).map_err(stage_err("report"))?;
    Ok(report)
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
    mut progress: impl FnMut(&Progress) + Send,
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

/// The preference schema of the synthetic world's reference texts, from the grammar the
/// world publishes ([`mspa_core::synth::reference::schema_json`]).
pub fn world_schema() -> PreferenceSchema {
    PreferenceSchema::from_json(&mspa_core::synth::reference::schema_json())
        .expect("the world's grammar is a valid schema")
}

pub(crate) fn epoch_message(r: &EpochReport) -> String {
    match r.valid_ndcg10 {
        Some(v) => format!("loss {:.4}, valid NDCG@10 {v:.4}", r.train_loss),
        None => format!("loss {:.4}", r.train_loss),
    }
}

/// Extracts (or reuses from `out_dir/features.safetensors`) every author's features.
pub(crate) fn extract_features(
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
