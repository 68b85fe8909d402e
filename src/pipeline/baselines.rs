//! The baselines of the report: their settings and fitting, in report order.

use std::time::Instant;

use burn::tensor::Device;
use mspa_align::baselines::{
    BprMfConfig, ConcatConfig, FreedomConfig, LightGcnConfig, MostPop, Oracle, RepeatPop,
    RepeatPopConfig, SasRecConfig, VbprConfig,
};
use mspa_align::fit::{FitRecommender, TrainingData};
use mspa_align::recommender::Recommender;
use mspa_align::train::{EpochReport, TrainConfig};
use mspa_core::synth::Truth;
use mspa_core::{Dataset, Split};
use mspa_modal::features::AuthorFeatures;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

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

impl BaselineSettings {
    /// The trainer settings of every trained baseline (BPR-MF, VBPR, Concat, SASRec,
    /// LightGCN, FREEDOM), to set their epochs or seeds together.
    pub fn trainers_mut(&mut self) -> [&mut TrainConfig; 6] {
        [
            &mut self.bprmf.train,
            &mut self.vbpr.train,
            &mut self.concat.train,
            &mut self.sasrec.train,
            &mut self.lightgcn.train,
            &mut self.freedom.train,
        ]
    }
}

/// A fitted baseline with its training time and curve.
pub(crate) struct FittedBaseline {
    pub recommender: Box<dyn Recommender>,
    pub seconds: f64,
    pub curve: Vec<EpochReport>,
}

/// Runs `fit` and keeps its recommender, curve and time.
fn timed<R: Recommender + 'static>(
    fit: impl FnOnce() -> mspa_align::Result<(R, Vec<EpochReport>)>,
) -> mspa_align::Result<FittedBaseline> {
    let t = Instant::now();
    let (recommender, curve) = fit()?;
    Ok(FittedBaseline {
        recommender: Box::new(recommender),
        seconds: t.elapsed().as_secs_f64(),
        curve,
    })
}

/// [`timed`] for a baseline without training epochs (no curve).
fn timed_rule<R: Recommender + 'static>(
    fit: impl FnOnce() -> mspa_align::Result<R>,
) -> mspa_align::Result<FittedBaseline> {
    timed(|| Ok((fit()?, Vec::new())))
}

/// A baseline's progress sink, callable from any thread: `(name, epochs, report)`.
pub(crate) type BaselineProgress<'a> = &'a (dyn Fn(&str, usize, &EpochReport) + Sync);

/// What the trained baselines fit on, and where they report their epochs.
struct Trainer<'a> {
    data: TrainingData<'a>,
    device: &'a Device,
    progress: BaselineProgress<'a>,
}

impl Trainer<'_> {
    /// [`timed`] for a trained baseline: fits `config`, keeping the curve from the epoch
    /// callback, which also reports to `progress` under `name` with the epoch count of
    /// its trainer `train`.
    fn fit<C>(
        &self,
        name: &str,
        config: &C,
        train: &TrainConfig,
    ) -> mspa_align::Result<FittedBaseline>
    where
        C: FitRecommender,
        C::Model: 'static,
    {
        let epochs = train.epochs;
        let mut curve = Vec::new();
        timed(|| {
            let recommender = config.fit(&self.data, self.device, &mut |r| {
                curve.push(r.clone());
                (self.progress)(name, epochs, r);
            })?;
            Ok((recommender, curve))
        })
    }
}

/// One baseline to fit.
type Job<'a> = Box<dyn FnOnce() -> mspa_align::Result<FittedBaseline> + Send + 'a>;

/// Fits MostPop, RepeatPop, BPR-MF, VBPR, Concat, SASRec, LightGCN and FREEDOM (when some
/// author has content: its item graph is built from content alone) concurrently;
/// returned in that order.
pub(crate) fn fit_baselines(
    settings: &BaselineSettings,
    dataset: &Dataset,
    split: &Split,
    features: &[AuthorFeatures],
    device: &Device,
    progress: BaselineProgress<'_>,
) -> mspa_align::Result<Vec<FittedBaseline>> {
    let trainer = Trainer {
        data: TrainingData::new(dataset, split).with_features(features),
        device,
        progress,
    };
    let mut jobs: Vec<Job<'_>> = vec![
        Box::new(|| timed_rule(|| Ok(MostPop::fit(dataset, split)))),
        Box::new(|| timed_rule(|| RepeatPop::fit(dataset, split, &settings.repeatpop))),
        Box::new(|| trainer.fit("BPR-MF", &settings.bprmf, &settings.bprmf.train)),
        Box::new(|| trainer.fit("VBPR", &settings.vbpr, &settings.vbpr.train)),
        Box::new(|| trainer.fit("Concat", &settings.concat, &settings.concat.train)),
        Box::new(|| trainer.fit("SASRec", &settings.sasrec, &settings.sasrec.train)),
        Box::new(|| trainer.fit("LightGCN", &settings.lightgcn, &settings.lightgcn.train)),
    ];
    if super::data::has_content(features) {
        jobs.push(Box::new(|| {
            trainer.fit("FREEDOM", &settings.freedom, &settings.freedom.train)
        }));
    }
    // Each baseline alone on a thread of its own (see `on_one_thread`).
    jobs.into_par_iter()
        .map(|job| mspa_modal::device::on_one_thread(job))
        .collect()
}

/// The oracle of a world with a planted truth (see [`Oracle`]).
pub(crate) fn fit_oracle(truth: Truth, dataset: &Dataset) -> mspa_align::Result<FittedBaseline> {
    timed_rule(|| Oracle::fit(truth, dataset))
}
