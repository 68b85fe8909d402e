//! The shared trainer of every neural model (the baselines and MSPA).
//!
//! [`fit`] runs AdamW on `device.autodiff()` over shuffled mini-batches of [`Example`]s,
//! draws negatives for every batch, and asks the caller's `loss` closure for a scalar loss.
//! Around that it provides:
//!
//! * a learning-rate schedule: linear warm-up over `warmup_fraction` of all steps, then
//!   cosine decay to `min_lr_fraction * learning_rate` ([`lr_at`]);
//! * optional clipping of the *global* gradient norm over all parameters (Burn's own
//!   `GradientClippingConfig::Norm` clips each tensor separately, which is not the same);
//! * a NaN/inf guard: a non-finite loss or gradient norm stops training with
//!   [`AlignError::NonFinite`] naming the epoch and batch;
//! * validation every `eval_every` epochs through the caller's `validate` closure (which
//!   returns NDCG@10 on a plain, non-autodiff copy of the model), keeping the best model
//!   and stopping after `patience` validations without improvement;
//! * checkpoints: after every epoch the model, the optimizer state and the best model are
//!   written under epoch-numbered names (Burn's `.bpk` writer is itself atomic), then a
//!   `state.json` naming them is written to a temporary file and renamed into place, so a
//!   crash at any point leaves a consistent checkpoint. When `checkpoint_dir` already holds
//!   a `state.json`, training resumes after its last epoch (the batch order and negatives
//!   of every epoch are derived from the seed and the epoch number, so a resumed run
//!   continues exactly as an uninterrupted one would).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::{Example, NegativeBatch, Negatives, SplitMix64};
use crate::error::{AlignError, Result, check};

/// Hyper-parameters of [`fit`]. Every field has a working default; load from JSON or
/// TOML with serde (missing fields take their defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the examples. Default 20.
    pub epochs: usize,
    /// Examples per batch. Default 256.
    pub batch_size: usize,
    /// Peak AdamW learning rate. Default 1e-3.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay. Default 1e-4.
    pub weight_decay: f64,
    /// Share of all steps spent warming the learning rate up linearly from 0 (0 to 1).
    /// Default 0.05.
    pub warmup_fraction: f64,
    /// The cosine decay ends at this fraction of the peak learning rate (0 to 1).
    /// Default 0.0.
    pub min_lr_fraction: f64,
    /// Clip the global L2 norm of all gradients to this value; `None` disables clipping.
    /// Default `Some(5.0)`.
    pub grad_clip_norm: Option<f64>,
    /// Stop after this many validations in a row without a better NDCG@10; 0 never stops
    /// early. Default 5.
    pub patience: usize,
    /// Validate every this many epochs (and after the last); 0 never validates (the final
    /// model is returned). Default 1.
    pub eval_every: usize,
    /// Seed of the batch order and the negatives. Default 0.
    pub seed: u64,
    /// Negatives sampled per example. Default 16.
    pub negatives: usize,
    /// Popularity exponent of negative sampling (0 = uniform, 0.75 = word2vec). Default 0.
    pub negative_exponent: f64,
    /// Where checkpoints are written and resumed from; `None` writes none. Default `None`.
    pub checkpoint_dir: Option<PathBuf>,
}

impl TrainConfig {
    /// Checks every field, naming the first one out of its domain.
    pub fn validate(&self) -> Result<()> {
        check::at_least_one("batch_size", self.batch_size)?;
        check::positive("learning_rate", self.learning_rate)?;
        check::non_negative("weight_decay", self.weight_decay)?;
        check::fraction("warmup_fraction", self.warmup_fraction)?;
        check::fraction("min_lr_fraction", self.min_lr_fraction)?;
        if let Some(c) = self.grad_clip_norm {
            check::positive("grad_clip_norm", c)?;
        }
        check::non_negative("negative_exponent", self.negative_exponent)
    }

    /// The fields a resumed run must share with its checkpoint (the rest, such as the
    /// number of epochs or the patience, may change between runs).
    fn resume_key(&self) -> TrainConfig {
        TrainConfig {
            epochs: 0,
            patience: 0,
            eval_every: 0,
            checkpoint_dir: None,
            ..self.clone()
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 256,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            warmup_fraction: 0.05,
            min_lr_fraction: 0.0,
            grad_clip_norm: Some(5.0),
            patience: 5,
            eval_every: 1,
            seed: 0,
            negatives: 16,
            negative_exponent: 0.0,
            checkpoint_dir: None,
        }
    }
}

/// What happened in one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// The 0-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Validation NDCG@10 after the epoch, if validated.
    pub valid_ndcg10: Option<f64>,
    /// The learning rate of the epoch's last step.
    pub lr: f64,
    /// Wall-clock seconds of the epoch (training and validation).
    pub seconds: f64,
}

/// The learning rate at 0-based `step` of `total_steps`: linear warm-up over
/// `ceil(warmup_fraction * total_steps)` steps, then cosine decay from the peak to
/// `min_lr_fraction * learning_rate` at the last step.
pub fn lr_at(config: &TrainConfig, step: usize, total_steps: usize) -> f64 {
    let peak = config.learning_rate;
    let floor = peak * config.min_lr_fraction;
    let total = total_steps.max(1);
    let warm = (config.warmup_fraction * total as f64).ceil() as usize;
    if step < warm {
        return peak * (step + 1) as f64 / warm as f64;
    }
    let span = total.saturating_sub(warm).saturating_sub(1).max(1);
    let progress = ((step - warm) as f64 / span as f64).min(1.0);
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// The checkpoint state written to `state.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TrainState {
    format: String,
    config: TrainConfig,
    /// Epochs completed.
    next_epoch: usize,
    /// Optimizer steps taken.
    step: usize,
    reports: Vec<EpochReport>,
    best_score: Option<f64>,
    best_epoch: Option<usize>,
    bad_evals: usize,
    stopped: bool,
    /// File names inside the checkpoint directory.
    model_file: String,
    optim_file: String,
    best_file: Option<String>,
}

const STATE_FORMAT: &str = "mspa-align-train/1";
const STATE_FILE: &str = "state.json";

/// Sums the squared gradient of every float parameter.
struct NormVisitor<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for NormVisitor<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.square().sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + s,
                None => s,
            });
        }
    }
}

/// Multiplies every gradient by `scale`.
struct ScaleVisitor<'a> {
    grads: &'a mut GradientsParams,
    scale: f64,
}

impl ModuleVisitor for ScaleVisitor<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.scale));
        }
    }
}

/// The global L2 norm of the gradients of `model`'s parameters.
pub fn global_grad_norm<M: Module>(model: &M, grads: &GradientsParams) -> f64 {
    let mut v = NormVisitor { grads, total: None };
    model.visit(&mut v);
    match v.total {
        Some(t) => f64::from(t.into_scalar::<f32>()).sqrt(),
        None => 0.0,
    }
}

/// Scales the gradients so that their global L2 norm is at most `max_norm`; returns the
/// norm before clipping.
pub fn clip_global_norm<M: Module>(model: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let norm = global_grad_norm(model, grads);
    if norm.is_finite() && norm > max_norm {
        let mut v = ScaleVisitor {
            grads,
            scale: max_norm / (norm + 1e-12),
        };
        model.visit(&mut v);
    }
    norm
}

/// Trains `model` (created on the plain `device`) on `examples`; negatives are drawn
/// from the authors that occur as positives in `examples` (see
/// [`Negatives::from_examples`]; use [`fit_with`] to sample from all authors and to avoid
/// each user's training positives).
///
/// `loss(model, batch, negatives, autodiff_device)` returns the scalar loss of a batch;
/// `validate(plain_model)` returns its validation NDCG@10; `progress` gets every epoch's
/// report. Returns the best-validated model (or the last one if validation is off) on
/// the plain device, and the reports of all epochs (including those of a resumed
/// checkpoint).
pub fn fit<M: Module>(
    model: M,
    config: &TrainConfig,
    device: &Device,
    examples: &[Example],
    loss: impl Fn(&M, &[&Example], &NegativeBatch, &Device) -> Tensor<1>,
    validate: impl FnMut(&M) -> Result<f64>,
    progress: impl FnMut(&EpochReport),
) -> Result<(M, Vec<EpochReport>)> {
    let negatives = Negatives::from_examples(examples, config.negative_exponent)?;
    fit_with(
        model, config, device, examples, &negatives, loss, validate, progress,
    )
}

/// [`fit`] with an explicit source of negatives.
#[allow(clippy::too_many_arguments)]
pub fn fit_with<M, L, V, P>(
    model: M,
    config: &TrainConfig,
    device: &Device,
    examples: &[Example],
    negatives: &Negatives,
    loss: L,
    mut validate: V,
    mut progress: P,
) -> Result<(M, Vec<EpochReport>)>
where
    M: Module,
    L: Fn(&M, &[&Example], &NegativeBatch, &Device) -> Tensor<1>,
    V: FnMut(&M) -> Result<f64>,
    P: FnMut(&EpochReport),
{
    config.validate()?;
    if examples.is_empty() {
        return Err(AlignError::data("no training examples"));
    }
    if let Some(e) = examples
        .iter()
        .find(|e| e.positive.index() >= negatives.n_authors())
    {
        return Err(AlignError::data(format!(
            "example of user {} has positive author {} outside the {} authors negatives are drawn from",
            e.user,
            e.positive,
            negatives.n_authors()
        )));
    }
    let ad_device = device.clone().autodiff();
    let mut optim = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .init();
    let mut state = TrainState {
        format: STATE_FORMAT.into(),
        config: config.clone(),
        next_epoch: 0,
        step: 0,
        reports: Vec::new(),
        best_score: None,
        best_epoch: None,
        bad_evals: 0,
        stopped: false,
        model_file: String::new(),
        optim_file: String::new(),
        best_file: None,
    };
    let mut plain = model;
    let mut best: Option<M> = None;
    if let Some(dir) = &config.checkpoint_dir {
        if let Some(saved) = read_state(dir, config)? {
            plain = load_module(plain, &dir.join(&saved.model_file))?;
            if let Some(best_file) = &saved.best_file {
                best = Some(load_module(plain.clone(), &dir.join(best_file))?);
            }
            let optim_path = dir.join(&saved.optim_file);
            // A corrupt optimizer record makes Burn panic inside `load` (a tensor without
            // a parameter id, an unsupported rank): an error of this file, not a crash.
            optim =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| optim.load(&optim_path)))
                    .map_err(|_| AlignError::checkpoint(&optim_path, "corrupt optimizer record"))?
                    .map_err(|e| AlignError::checkpoint(&optim_path, e.to_string()))?;
            state = saved;
            state.config = config.clone();
        }
    }
    let mut model = plain.fork(&ad_device).train();
    let n_batches = examples.len().div_ceil(config.batch_size);
    let total_steps = config.epochs * n_batches;
    let mut order: Vec<usize> = Vec::with_capacity(examples.len());
    for epoch in state.next_epoch..config.epochs {
        if state.stopped {
            break;
        }
        let started = Instant::now();
        let mut rng =
            SplitMix64::new(config.seed ^ (epoch as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        order.clear();
        order.extend(0..examples.len());
        rng.shuffle(&mut order);
        let (mut sum, mut count) = (0.0, 0usize);
        let mut lr = lr_at(config, state.step, total_steps);
        for (b, chunk) in order.chunks(config.batch_size).enumerate() {
            let batch: Vec<&Example> = chunk.iter().map(|&i| &examples[i]).collect();
            let negs = negatives.sample(&batch, config.negatives, &mut rng)?;
            // No lock: a loss draws its random numbers (dropout masks) from streams of its
            // own (`crate::dropout`), never from the backend's shared generator, so models
            // training side by side each give the numbers they give alone.
            let loss_t = loss(&model, &batch, &negs, &ad_device);
            let value = f64::from(loss_t.clone().into_scalar::<f32>());
            if !value.is_finite() {
                return Err(AlignError::NonFinite {
                    epoch,
                    batch: b,
                    value,
                });
            }
            let mut grads = GradientsParams::from_grads(loss_t.backward(), &model);
            if let Some(max_norm) = config.grad_clip_norm {
                let norm = clip_global_norm(&model, &mut grads, max_norm);
                if !norm.is_finite() {
                    return Err(AlignError::NonFinite {
                        epoch,
                        batch: b,
                        value: norm,
                    });
                }
            }
            lr = lr_at(config, state.step, total_steps);
            model = optim.step(lr, model, grads);
            state.step += 1;
            sum += value;
            count += 1;
        }
        let train_loss = if count > 0 { sum / count as f64 } else { 0.0 };
        let last = epoch + 1 == config.epochs;
        let mut valid_ndcg10 = None;
        if config.eval_every > 0 && ((epoch + 1) % config.eval_every == 0 || last) {
            let snapshot = model.valid();
            let score = validate(&snapshot)?;
            if score.is_nan() {
                return Err(AlignError::data(format!(
                    "validation returned NaN after epoch {epoch}"
                )));
            }
            valid_ndcg10 = Some(score);
            if state.best_score.is_none_or(|b| score > b) {
                state.best_score = Some(score);
                state.best_epoch = Some(epoch);
                state.bad_evals = 0;
                best = Some(snapshot);
            } else {
                state.bad_evals += 1;
                if config.patience > 0 && state.bad_evals >= config.patience {
                    state.stopped = true;
                }
            }
        }
        let report = EpochReport {
            epoch,
            train_loss,
            valid_ndcg10,
            lr,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress(&report);
        state.reports.push(report);
        state.next_epoch = epoch + 1;
        if let Some(dir) = &config.checkpoint_dir {
            let best_is_new = state.best_epoch == Some(epoch);
            write_checkpoint(dir, &mut state, &model, &optim, best.as_ref(), best_is_new)?;
        }
    }
    let out = match best {
        Some(b) => b,
        None => model.valid(),
    };
    Ok((out, state.reports))
}

/// The reports stored in a checkpoint directory, if it holds one (for resuming
/// dashboards and for tests).
pub fn checkpoint_reports(dir: &Path) -> Result<Option<Vec<EpochReport>>> {
    Ok(parse_state(&dir.join(STATE_FILE))?.map(|state| state.reports))
}

/// The parsed `state.json` at `path`, if there is one (unchecked).
fn parse_state(path: &Path) -> Result<Option<TrainState>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| AlignError::io(path, e))?;
    let state =
        serde_json::from_str(&text).map_err(|e| AlignError::checkpoint(path, e.to_string()))?;
    Ok(Some(state))
}

/// The checkpoint state in `dir`, if there is one, checked against `config`.
fn read_state(dir: &Path, config: &TrainConfig) -> Result<Option<TrainState>> {
    let path = dir.join(STATE_FILE);
    let Some(state) = parse_state(&path)? else {
        return Ok(None);
    };
    if state.format != STATE_FORMAT {
        return Err(AlignError::checkpoint(
            &path,
            format!("unknown format `{}`", state.format),
        ));
    }
    // The state names the checkpoint's files; a corrupt or hostile state must not point
    // outside the folder.
    let names = [
        Some(&state.model_file),
        Some(&state.optim_file),
        state.best_file.as_ref(),
    ];
    if let Some(name) = names.into_iter().flatten().find(|n| {
        let p = Path::new(n.as_str());
        p.components().count() != 1
            || !matches!(p.components().next(), Some(std::path::Component::Normal(_)))
    }) {
        return Err(AlignError::checkpoint(
            &path,
            format!(
                "names the file `{}`, which is not a plain file name in the checkpoint folder",
                mspa_core::error::excerpt(name)
            ),
        ));
    }
    if state.config.resume_key() != config.resume_key() {
        return Err(AlignError::checkpoint(
            &path,
            "was written with a different training config (only epochs, patience, eval_every and checkpoint_dir may change on resume); use another checkpoint_dir",
        ));
    }
    Ok(Some(state))
}

fn load_module<M: Module>(model: M, path: &Path) -> Result<M> {
    model
        .try_load_file(path)
        .map_err(|e| AlignError::checkpoint(path, e.to_string()))
}

fn write_checkpoint<M: Module>(
    dir: &Path,
    state: &mut TrainState,
    model: &M,
    optim: &burn::optim::ModuleOptimizer,
    best: Option<&M>,
    best_is_new: bool,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| AlignError::io(dir, e))?;
    let epoch = state.next_epoch - 1;
    let model_file = format!("model-{epoch:05}.bpk");
    let optim_file = format!("optim-{epoch:05}.bpk");
    let model_path = dir.join(&model_file);
    model
        .valid()
        .save_file(&model_path)
        .map_err(|e| AlignError::checkpoint(&model_path, e.to_string()))?;
    let optim_path = dir.join(&optim_file);
    optim
        .save(&optim_path)
        .map_err(|e| AlignError::checkpoint(&optim_path, e.to_string()))?;
    let mut best_file = state.best_file.clone();
    if let (true, Some(b)) = (best_is_new, best) {
        let name = format!("best-{epoch:05}.bpk");
        let path = dir.join(&name);
        b.clone()
            .save_file(&path)
            .map_err(|e| AlignError::checkpoint(&path, e.to_string()))?;
        best_file = Some(name);
    }
    let old = [
        std::mem::replace(&mut state.model_file, model_file),
        std::mem::replace(&mut state.optim_file, optim_file),
    ];
    let old_best = std::mem::replace(&mut state.best_file, best_file);
    let text = serde_json::to_string_pretty(&*state)
        .map_err(|e| AlignError::checkpoint(dir, e.to_string()))?;
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    std::fs::write(&tmp, text).map_err(|e| AlignError::io(&tmp, e))?;
    let path = dir.join(STATE_FILE);
    std::fs::rename(&tmp, &path).map_err(|e| AlignError::io(&path, e))?;
    // The new state is in place: files it no longer names can go.
    for name in old.iter().chain(old_best.iter()) {
        let keep = *name == state.model_file
            || *name == state.optim_file
            || state.best_file.as_deref() == Some(name.as_str());
        if !name.is_empty() && !keep {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;
    use mspa_core::{AuthorId, UserId};

    /// The smallest trainable module: one weight vector.
    #[derive(Module, Debug)]
    struct Toy {
        w: Param<Tensor<1>>,
    }

    fn toy(values: [f32; 2], device: &Device) -> Toy {
        Toy {
            w: Param::from_tensor(Tensor::<1>::from_floats(values, device)),
        }
    }

    fn weights(m: &Toy) -> Vec<f32> {
        m.w.val().into_data().try_to_vec::<f32>().unwrap()
    }

    /// Four examples over two authors (so negatives can be drawn).
    fn examples() -> Vec<Example> {
        (0..4)
            .map(|i| Example {
                user: UserId(i),
                history: 0..0,
                positive: AuthorId(i % 2),
                at_ms: 0,
            })
            .collect()
    }

    fn quiet() -> TrainConfig {
        TrainConfig {
            epochs: 3,
            batch_size: 1,
            learning_rate: 0.1,
            negatives: 1,
            grad_clip_norm: None,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn lr_warms_up_linearly_then_decays_to_the_floor() {
        let config = TrainConfig {
            learning_rate: 1.0,
            warmup_fraction: 0.1,
            min_lr_fraction: 0.2,
            ..TrainConfig::default()
        };
        let at = |step| lr_at(&config, step, 100);
        assert!((at(0) - 0.1).abs() < 1e-12, "first warm-up step");
        assert!((at(4) - 0.5).abs() < 1e-12);
        assert!((at(9) - 1.0).abs() < 1e-12, "warm-up ends at the peak");
        assert!((at(10) - 1.0).abs() < 1e-12, "cosine starts at the peak");
        assert!(at(50) < at(30) && at(30) < at(10));
        assert!((at(99) - 0.2).abs() < 1e-12, "last step at the floor");
        let no_warmup = TrainConfig {
            warmup_fraction: 0.0,
            ..config
        };
        assert!((lr_at(&no_warmup, 0, 100) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn clipping_scales_the_global_norm_to_the_maximum() {
        let device = Device::flex().autodiff();
        let model = toy([1.0, 1.0], &device);
        let coefficients = Tensor::<1>::from_floats([3.0, 4.0], &device);
        let loss = (model.w.val() * coefficients).sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        assert!((global_grad_norm(&model, &grads) - 5.0).abs() < 1e-5);

        let before = clip_global_norm(&model, &mut grads, 10.0);
        assert!((before - 5.0).abs() < 1e-5);
        assert!(
            (global_grad_norm(&model, &grads) - 5.0).abs() < 1e-5,
            "under the max"
        );

        let before = clip_global_norm(&model, &mut grads, 1.0);
        assert!((before - 5.0).abs() < 1e-5);
        assert!((global_grad_norm(&model, &grads) - 1.0).abs() < 1e-5);
        let g = grads
            .get::<1>(model.w.id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(
            (g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5,
            "{g:?}"
        );
    }

    #[test]
    fn a_nan_loss_names_its_epoch_and_batch() {
        let device = Device::flex();
        let calls = Cell::new(0usize);
        // 4 batches per epoch: the 7th call is epoch 1, batch 2.
        let loss = |m: &Toy, _: &[&Example], _: &NegativeBatch, _: &Device| {
            calls.set(calls.get() + 1);
            let l = m.w.val().sum();
            if calls.get() == 7 { l * f64::NAN } else { l }
        };
        let err = fit(
            toy([1.0, 1.0], &device),
            &quiet(),
            &device,
            &examples(),
            loss,
            |_| Ok(0.0),
            |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(err, AlignError::NonFinite { epoch: 1, batch: 2, value } if value.is_nan()),
            "expected NonFinite at epoch 1, batch 2, got {err}"
        );
    }

    #[test]
    fn early_stopping_honours_patience_and_returns_the_best_model() {
        let device = Device::flex();
        let scores = [0.5, 0.7, 0.6, 0.65, 0.9, 0.95];
        let evals = Cell::new(0usize);
        let best_weights = RefCell::new(Vec::new());
        let config = TrainConfig {
            epochs: scores.len(),
            patience: 2,
            ..quiet()
        };
        let (model, reports) = fit(
            toy([1.0, -1.0], &device),
            &config,
            &device,
            &examples(),
            |m: &Toy, _: &[&Example], _: &NegativeBatch, _: &Device| m.w.val().sum(),
            |m: &Toy| {
                let score = scores[evals.get()];
                if evals.get() == 1 {
                    *best_weights.borrow_mut() = weights(m);
                }
                evals.set(evals.get() + 1);
                Ok(score)
            },
            |_| {},
        )
        .unwrap();
        // Epoch 1 is the best; epochs 2 and 3 do not beat it: stop after epoch 3.
        assert_eq!(reports.len(), 4);
        assert_eq!(
            reports.iter().map(|r| r.valid_ndcg10).collect::<Vec<_>>(),
            vec![Some(0.5), Some(0.7), Some(0.6), Some(0.65)]
        );
        assert_eq!(weights(&model), *best_weights.borrow());
        assert!(reports.iter().all(|r| r.train_loss.is_finite()));
    }

    #[test]
    fn validation_off_returns_the_last_model_after_every_epoch() {
        let device = Device::flex();
        let config = TrainConfig {
            eval_every: 0,
            ..quiet()
        };
        let (model, reports) = fit(
            toy([1.0, 1.0], &device),
            &config,
            &device,
            &examples(),
            |m: &Toy, _: &[&Example], _: &NegativeBatch, _: &Device| m.w.val().sum(),
            |_| panic!("validation is off"),
            |_| {},
        )
        .unwrap();
        assert_eq!(reports.len(), 3);
        assert!(reports.iter().all(|r| r.valid_ndcg10.is_none()));
        // Minimising the sum moves both weights down.
        assert!(weights(&model).iter().all(|&w| w < 1.0));
    }

    #[test]
    fn config_validation_and_defaults() {
        assert!(TrainConfig::default().validate().is_ok());
        let field = |c: TrainConfig| match c.validate() {
            Err(AlignError::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        };
        let d = TrainConfig::default;
        assert_eq!(
            field(TrainConfig {
                batch_size: 0,
                ..d()
            }),
            "batch_size"
        );
        assert_eq!(
            field(TrainConfig {
                learning_rate: f64::NAN,
                ..d()
            }),
            "learning_rate"
        );
        assert_eq!(
            field(TrainConfig {
                warmup_fraction: 1.5,
                ..d()
            }),
            "warmup_fraction"
        );
        assert_eq!(
            field(TrainConfig {
                grad_clip_norm: Some(0.0),
                ..d()
            }),
            "grad_clip_norm"
        );
        let parsed: TrainConfig = serde_json::from_str(r#"{"epochs": 3}"#).unwrap();
        assert_eq!(parsed, TrainConfig { epochs: 3, ..d() });
        assert!(serde_json::from_str::<TrainConfig>(r#"{"epoch": 3}"#).is_err());
    }
}
