//! The baselines of the report: their settings and fitting, in report order.

use std::time::Instant;

use burn::tensor::Device;
use mspa_align::baselines::{
    BprMf, BprMfConfig, Concat, ConcatConfig, Freedom, FreedomConfig, LightGcn, LightGcnConfig,
    MostPop, Oracle, RepeatPop, RepeatPopConfig, SasRec, SasRecConfig, Vbpr, VbprConfig,
};
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

/// [`timed`] for a trained baseline: `fit` gets the epoch callback, which reports to
/// `progress` under `name` with the trainer's epoch count.
fn timed_trained<R: Recommender + 'static>(
    name: &str,
    train: &TrainConfig,
    progress: BaselineProgress<'_>,
    fit: impl FnOnce(&mut dyn FnMut(&EpochReport)) -> mspa_align::Result<(R, Vec<EpochReport>)>,
) -> mspa_align::Result<FittedBaseline> {
    let epochs = train.epochs;
    timed(|| fit(&mut |r| progress(name, epochs, r)))
}

/// One baseline to fit.
type Job<'a> = Box<dyn FnOnce() -> mspa_align::Result<FittedBaseline> + Send + 'a>;

/// Fits MostPop, RepeatPop, BPR-MF, VBPR, Concat, SASRec, LightGCN, FREEDOM (when some
/// author has content: its item graph is built from content alone) and, when the data
/// has a planted truth, the oracle, concurrently; returned in that order.
pub(crate) fn fit_baselines(
    settings: &BaselineSettings,
    dataset: &Dataset,
    split: &Split,
    features: &[AuthorFeatures],
    truth: Option<Truth>,
    device: &Device,
    progress: BaselineProgress<'_>,
) -> mspa_align::Result<Vec<FittedBaseline>> {
    let mut jobs: Vec<Job<'_>> = vec![
        Box::new(|| timed_rule(|| Ok(MostPop::fit(dataset, split)))),
        Box::new(|| timed_rule(|| RepeatPop::fit(dataset, split, &settings.repeatpop))),
        Box::new(|| {
            timed_trained("BPR-MF", &settings.bprmf.train, progress, |r| {
                BprMf::fit(dataset, split, &settings.bprmf, device, r)
            })
        }),
        Box::new(|| {
            timed_trained("VBPR", &settings.vbpr.train, progress, |r| {
                Vbpr::fit(dataset, split, features, &settings.vbpr, device, r)
            })
        }),
        Box::new(|| {
            timed_trained("Concat", &settings.concat.train, progress, |r| {
                Concat::fit(dataset, split, features, &settings.concat, device, r)
            })
        }),
        Box::new(|| {
            timed_trained("SASRec", &settings.sasrec.train, progress, |r| {
                SasRec::fit(dataset, split, &settings.sasrec, device, r)
            })
        }),
        Box::new(|| {
            timed_trained("LightGCN", &settings.lightgcn.train, progress, |r| {
                LightGcn::fit(dataset, split, &settings.lightgcn, device, r)
            })
        }),
    ];
    if super::data::has_content(features) {
        jobs.push(Box::new(|| {
            timed_trained("FREEDOM", &settings.freedom.train, progress, |r| {
                Freedom::fit(dataset, split, features, &settings.freedom, device, r)
            })
        }));
    }
    if let Some(truth) = truth {
        jobs.push(Box::new(move || timed_rule(|| Oracle::fit(truth, dataset))));
    }
    jobs.into_par_iter().map(|job| job()).collect()
}
