//! The baselines of the report: their settings and fitting, in report order.

use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;
use mspa_align::baselines::{
    BprMf, BprMfConfig, Concat, ConcatConfig, Freedom, FreedomConfig, LightGcn, LightGcnConfig,
    MostPop, Oracle, RepeatPop, RepeatPopConfig, SasRec, SasRecConfig, Vbpr, VbprConfig,
};
use mspa_align::recommender::Recommender;
use mspa_align::train::EpochReport;
use mspa_core::{Dataset, Split};
use mspa_modal::features::AuthorFeatures;
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

/// A fitted baseline with its training time and curve.
pub(crate) struct FittedBaseline {
    pub recommender: Box<dyn Recommender>,
    pub seconds: f64,
    pub curve: Vec<EpochReport>,
}

/// Fits MostPop, RepeatPop, BPR-MF, VBPR, Concat, SASRec, LightGCN, FREEDOM and the
/// oracle, in that order.
pub(crate) fn fit_baselines(
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
