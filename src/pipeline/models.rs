//! The model stage: MSPA, its ablations and every baseline, trained and evaluated side
//! by side. Models are independent (each has its own seed), so they train concurrently,
//! each on a one-thread pool of its own (`on_one_thread`: one model's small tensors
//! rarely keep more than one core busy, and alone on its thread its float reductions
//! keep one order), and each draws its random numbers from streams of its own seed
//! (dropout masks from `mspa_align::dropout`; initialisation under
//! `mspa_modal::device::seeded`): the numbers do not depend on what runs beside it.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::Device;
use mspa_align::fit::{FitRecommender, TrainingData};
use mspa_align::mspa::{Inspection, MspaSettings, TextPreferences};
use mspa_align::train::EpochReport;
use mspa_core::synth::Truth;
use mspa_core::{Dataset, Split};
use mspa_modal::features::{AuthorFeatures, Modality};
use rayon::prelude::*;

use mspa_modal::device::on_one_thread;

use super::baselines::{FittedBaseline, fit_baselines, fit_oracle};
use super::compose::Composed;
use super::data::has_modality;
use super::evaluate::{
    evaluate_row, explained_examples, inspect_test, mean_modality_weights, step_ndcg,
};
use super::{PipelineConfig, PipelineError, epoch_message, stage_err};
use crate::report::{Curve, ModelRow};

/// A progress sink every model may call from its own thread.
pub(crate) type Note<'a> = &'a (dyn Fn(&str, usize, usize, String) + Sync);

/// What the model stage gives the report, every list in report order (MSPA first).
#[derive(Default)]
pub(crate) struct ModelResults {
    /// One row per model.
    pub rows: Vec<ModelRow>,
    /// Per model, the test users' NDCG@10 (for the bootstrap).
    pub per_user: Vec<Vec<(u64, f64)>>,
    /// Training curves by model name.
    pub training: BTreeMap<String, Curve>,
    /// MSPA variants' mean modality weights by name.
    pub modality_weights: BTreeMap<String, [f64; 3]>,
    /// MSPA's test NDCG@10 per correction step.
    pub steps: Vec<f64>,
    /// MSPA's explained examples.
    pub examples: Vec<serde_json::Value>,
    /// MSPA correcting over every author instead of its shortlist (the same trained
    /// model): its row and per-user NDCG@10, when MSPA corrects a shortlist.
    pub all_authors: Option<(ModelRow, Vec<(u64, f64)>)>,
    /// MSPA's inspection of the test users, in target order (for the truth checks).
    pub inspection: Option<Inspection>,
}

/// One trained and evaluated MSPA variant.
struct VariantResult {
    row: ModelRow,
    users: Vec<(u64, f64)>,
    curve: Curve,
    weights: [f64; 3],
    steps: Vec<f64>,
    examples: Vec<serde_json::Value>,
    all_authors: Option<(ModelRow, Vec<(u64, f64)>)>,
    inspection: Option<Inspection>,
}

/// MSPA, `T = 0`, no text and, when two or more modalities have content, one variant per
/// modality with content (a single-modality ablation of a modality no author has, or of
/// the only one there is, would only repeat a row).
pub(crate) fn mspa_variants(
    config: &PipelineConfig,
    features: &[AuthorFeatures],
) -> Vec<MspaSettings> {
    let base = &config.mspa;
    let mut variants = vec![
        base.clone(),
        MspaSettings {
            name: "MSPA (T=0)".into(),
            correction_steps: 0,
            ..base.clone()
        },
        MspaSettings {
            name: "MSPA (no text)".into(),
            use_text: false,
            ..base.clone()
        },
    ];
    let with_content: Vec<Modality> = Modality::ALL
        .into_iter()
        .filter(|&m| has_modality(features, m))
        .collect();
    if config.modality_ablations && with_content.len() >= 2 {
        for m in with_content {
            let mut modalities = [false; 3];
            modalities[m.index()] = true;
            variants.push(MspaSettings {
                name: format!("MSPA ({m} only)"),
                modalities,
                ..base.clone()
            });
        }
    }
    variants
}

/// Runs `compose` (the composer stage) and then trains and evaluates every MSPA variant
/// on its compositions, while the baselines, which read no composition, train and
/// evaluate beside them. Returns what `compose` gave and the results, MSPA first.
pub(crate) fn train_and_evaluate(
    config: &PipelineConfig,
    dataset: &Dataset,
    split: &Split,
    features: &[AuthorFeatures],
    compose: impl FnOnce() -> Result<Composed, PipelineError> + Send,
    device: &Device,
    note: Note<'_>,
) -> Result<(Composed, ModelResults), PipelineError> {
    let variants = mspa_variants(config, features);
    let (mspa, baselines) = rayon::join(
        || {
            let composed = on_one_thread(compose)?;
            let texts = &composed.texts;
            let trained = variants
                .par_iter()
                .enumerate()
                .map(|(i, settings)| {
                    on_one_thread(|| {
                        let main = i == 0;
                        train_variant(
                            settings, main, dataset, split, features, texts, device, note,
                        )
                    })
                })
                .collect::<Result<Vec<_>, PipelineError>>()?;
            Ok::<_, PipelineError>((composed, trained))
        },
        || {
            fit_baselines(
                &config.baselines,
                dataset,
                split,
                features,
                device,
                &|name: &str, epochs: usize, r: &EpochReport| {
                    note(
                        &format!("train {name}"),
                        r.epoch + 1,
                        epochs,
                        epoch_message(r),
                    )
                },
            )
            .map_err(stage_err("baselines"))
        },
    );
    let (composed, mspa) = mspa?;
    let mut out = ModelResults::default();
    for (i, (settings, v)) in variants.iter().zip(mspa).enumerate() {
        out.rows.push(v.row);
        out.per_user.push(v.users);
        out.modality_weights
            .insert(settings.name.clone(), v.weights);
        out.training.insert(settings.name.clone(), v.curve);
        if i == 0 {
            out.steps = v.steps;
            out.examples = v.examples;
            out.all_authors = v.all_authors;
            out.inspection = v.inspection;
        }
    }
    out.add_fitted(baselines?, dataset, split)?;
    Ok((composed, out))
}

impl ModelResults {
    /// Evaluates fitted baselines and appends their rows and curves.
    fn add_fitted(
        &mut self,
        fitted: Vec<FittedBaseline>,
        dataset: &Dataset,
        split: &Split,
    ) -> Result<(), PipelineError> {
        let evaluated: Vec<(ModelRow, Vec<(u64, f64)>)> = fitted
            .par_iter()
            .map(|f| {
                on_one_thread(|| {
                    evaluate_row(f.recommender.as_ref(), dataset, &split.test, f.seconds)
                        .map_err(stage_err("evaluate"))
                })
            })
            .collect::<Result<_, _>>()?;
        for (f, (row, users)) in fitted.iter().zip(evaluated) {
            self.rows.push(row);
            self.per_user.push(users);
            if !f.curve.is_empty() {
                self.training.insert(
                    f.recommender.name().to_string(),
                    Curve {
                        train_loss: f.curve.iter().map(|r| r.train_loss).collect(),
                        valid_ndcg10: f.curve.iter().map(|r| r.valid_ndcg10).collect(),
                    },
                );
            }
        }
        Ok(())
    }

    /// Appends the oracle's row (the planted truth's exact next-tip probabilities).
    pub(crate) fn add_oracle(
        &mut self,
        truth: Truth,
        dataset: &Dataset,
        split: &Split,
    ) -> Result<(), PipelineError> {
        let oracle = fit_oracle(truth, dataset).map_err(stage_err("baselines"))?;
        self.add_fitted(vec![oracle], dataset, split)
    }
}

/// Trains one MSPA variant and evaluates it; the main model (`main`) also gives the
/// per-step NDCG and the explained examples.
#[allow(clippy::too_many_arguments)]
fn train_variant(
    settings: &MspaSettings,
    main: bool,
    dataset: &Dataset,
    split: &Split,
    features: &[AuthorFeatures],
    texts: &TextPreferences,
    device: &Device,
    note: Note<'_>,
) -> Result<VariantResult, PipelineError> {
    let stage = format!("train {}", settings.name);
    let t = Instant::now();
    let epochs = settings.train.epochs;
    let mut curve = Curve::default();
    let data = TrainingData::new(dataset, split)
        .with_features(features)
        .with_texts(texts);
    let rec = settings
        .fit(&data, device, &mut |r: &EpochReport| {
            curve.train_loss.push(r.train_loss);
            curve.valid_ndcg10.push(r.valid_ndcg10);
            note(&stage, r.epoch + 1, epochs, epoch_message(r));
        })
        .map_err(stage_err(&stage))?;
    let train_seconds = t.elapsed().as_secs_f64();
    // The evaluations read the trained model only: they run side by side, each alone on a
    // thread of its own (so each gives the numbers it gives alone), instead of one after
    // the other at the end of the stage.
    let row = || on_one_thread(|| evaluate_row(&rec, dataset, &split.test, train_seconds));
    let inspect = || on_one_thread(|| inspect_test(&rec, dataset, &split.test));
    let extras = || {
        if !main {
            return Ok((Vec::new(), Vec::new(), None));
        }
        // The same model correcting over every author, against its shortlist.
        let all_authors = || {
            if settings.correction_steps == 0 || settings.shortlist == 0 {
                return Ok(None);
            }
            let name = format!("{} (correcting all authors)", settings.name);
            let everyone = rec.clone().with_shortlist(0, &name);
            on_one_thread(|| evaluate_row(&everyone, dataset, &split.test, 0.0)).map(Some)
        };
        let steps = || on_one_thread(|| step_ndcg(&rec, dataset, &split.test));
        let (all_authors, (steps, examples)) = rayon::join(all_authors, || {
            rayon::join(steps, || {
                on_one_thread(|| explained_examples(&rec, dataset, &split.test, 3))
            })
        });
        Ok::<_, mspa_align::AlignError>((steps?, examples, all_authors?))
    };
    let (row, (inspection, extras)) = rayon::join(row, || rayon::join(inspect, extras));
    let (row, users) = row.map_err(stage_err("evaluate"))?;
    let (steps, examples, all_authors) = extras.map_err(stage_err("evaluate"))?;
    let inspection = inspection.map_err(stage_err("evaluate"))?;
    Ok(VariantResult {
        row,
        users,
        curve,
        weights: mean_modality_weights(&inspection),
        steps,
        examples,
        all_authors,
        inspection: main.then_some(inspection),
    })
}
