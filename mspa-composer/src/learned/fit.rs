//! Training of the learned composer: [`LearnedComposer::fit`], [`LearnedComposer::fit_resume`]
//! (teacher forcing plus the auxiliary value losses, AdamW on `device.autodiff()`) and
//! [`LearnedComposer::evaluate_loss`].

use std::path::Path;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use mspa_core::rng::{SplitMix64, mix64};
use mspa_modal::device::seeded;

use super::{LearnedComposer, LearnedComposerConfig, LearnedModel};
use crate::composer::{ComposeContext, HistoryQuery, TrainingPair};
use crate::error::{ComposerError, Result};
use crate::history::HistoryBatch;
use crate::schema::PreferenceSchema;

impl LearnedComposer {
    /// Trains a composer on `train` (teacher forcing on `schema.encode(schema.parse(
    /// reference))`), jointly for the encoder and the generator, on `device.autodiff()`.
    /// `progress` gets `(epoch, mean loss)` after every epoch.
    ///
    /// Fails on an invalid config, no training pairs, missing features, a reference that
    /// does not parse, a tip of an unknown author, or a non-finite loss.
    pub fn fit(
        config: LearnedComposerConfig,
        schema: &PreferenceSchema,
        ctx: &ComposeContext<'_>,
        train: &[TrainingPair],
        device: &Device,
        progress: impl FnMut(usize, f64),
    ) -> Result<LearnedComposer> {
        let mut config = config;
        config.check()?;
        let features = ctx.features.ok_or_else(|| {
            ComposerError::config("features", "the learned composer needs author features")
        })?;
        let dims = features
            .first()
            .map(|f| f.dims())
            .ok_or_else(|| ComposerError::data("no author features"))?;
        if train.is_empty() {
            return Err(ComposerError::data("no training pairs"));
        }
        let targets = training_targets(schema, train)?;
        config.encoder.feature_dims = dims;
        config.generator.vocab_size = schema.vocab_size();
        config.n_authors = ctx.dataset.n_authors();
        config.generator.d_memory = config.encoder.d_model;
        let longest = targets
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .max(grammar_max_tokens(schema));
        config.generator.max_len = config.generator.max_len.max(longest);
        config
            .generator
            .check()
            .map_err(|m| ComposerError::config("generator", m))?;
        let model = LearnedModel::init(&config, &schema, device);
        let mut composer = LearnedComposer {
            optimizer: None,
            config,
            schema: schema.clone(),
            model,
            device: device.clone(),
            epochs_done: 0,
            loss_curve: Vec::new(),
        };
        let epochs = composer.config.epochs;
        composer.train(ctx, train, &targets, epochs, progress)?;
        Ok(composer)
    }

    /// Loads the checkpoint in `dir` and trains it for `epochs` more epochs, continuing
    /// the optimizer state, the epoch counter (batch order and dropout seeds follow it)
    /// and the loss curve. The schema is the checkpoint's.
    pub fn fit_resume(
        dir: &Path,
        ctx: &ComposeContext<'_>,
        train: &[TrainingPair],
        device: &Device,
        epochs: usize,
        progress: impl FnMut(usize, f64),
    ) -> Result<LearnedComposer> {
        let mut composer = Self::load(dir, device)?;
        if train.is_empty() {
            return Err(ComposerError::data("no training pairs"));
        }
        let targets = training_targets(&composer.schema, train)?;
        composer.train(ctx, train, &targets, epochs, progress)?;
        Ok(composer)
    }

    /// The training loop: `epochs` epochs starting at `self.epochs_done`.
    fn train(
        &mut self,
        ctx: &ComposeContext<'_>,
        train: &[TrainingPair],
        targets: &[Vec<u32>],
        epochs: usize,
        mut progress: impl FnMut(usize, f64),
    ) -> Result<()> {
        let features = ctx.features.ok_or_else(|| {
            ComposerError::config("features", "the learned composer needs author features")
        })?;
        let dims = self.config.encoder.feature_dims;
        if features.first().map(|f| f.dims()) != Some(dims) {
            return Err(ComposerError::data(format!(
                "author features have sizes {:?}, the model was built for {dims:?}",
                features.first().map(|f| f.dims())
            )));
        }
        let n_events = ctx.dataset.events().len();
        for pair in train {
            if pair.tips.end > n_events || pair.tips.start > pair.tips.end {
                return Err(ComposerError::data(format!(
                    "training pair of user {} has tips {:?} outside the {n_events} events",
                    pair.user.0, pair.tips
                )));
            }
        }
        let ad = self.device.clone().autodiff();
        let mut model = self.model.clone().fork(&ad).train();
        let mut optim = self
            .optimizer
            .take()
            .unwrap_or_else(|| self.config.optimizer());
        let lr = self.config.learning_rate;
        let n_values = self.schema.n_values();
        let hots: Vec<Vec<f32>> = targets
            .iter()
            .map(|t| {
                self.schema
                    .decode(t)
                    .map(|f| self.schema.multi_hot(&f))
                    .unwrap_or_else(|_| vec![0.0; n_values])
            })
            .collect();
        for epoch in self.epochs_done..self.epochs_done + epochs {
            let order = epoch_order(train.len(), self.config.seed, epoch);
            let (mut sum, mut count) = (0.0f64, 0usize);
            for (step, chunk) in order.chunks(self.config.batch_size).enumerate() {
                let queries: Vec<HistoryQuery<'_>> =
                    chunk.iter().map(|&i| train[i].query(ctx.dataset)).collect();
                let batch_targets: Vec<Vec<u32>> =
                    chunk.iter().map(|&i| targets[i].clone()).collect();
                let batch = HistoryBatch::build_with_dims(
                    features,
                    dims,
                    &queries,
                    self.config.max_history,
                    &ad,
                );
                let hot: Vec<f32> = chunk
                    .iter()
                    .flat_map(|&i| hots[i].iter().copied())
                    .collect();
                let hot =
                    Tensor::<2>::from_data(TensorData::new(hot, [chunk.len(), n_values]), &ad);
                // Dropout masks from a generator seeded by (seed, epoch, step): the same with
                // other models training beside this one.
                let step_seed =
                    mix64(self.config.seed ^ mix64(((epoch as u64) << 32) | step as u64));
                let loss = seeded(&ad, step_seed, || {
                    model.training_loss(&batch, &batch_targets, hot, self.config.aux_weight)
                });
                let value = f64::from(loss.clone().into_scalar::<f32>());
                if !value.is_finite() {
                    return Err(ComposerError::config(
                        "learning_rate",
                        format!(
                            "loss is {value} at epoch {epoch}, step {step}: lower the learning rate"
                        ),
                    ));
                }
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
                sum += value * chunk.len() as f64;
                count += chunk.len();
            }
            let mean = sum / count.max(1) as f64;
            self.loss_curve.push(mean);
            progress(epoch, mean);
        }
        self.epochs_done += epochs;
        self.model = model.valid();
        self.optimizer = Some(optim);
        Ok(())
    }

    /// Mean teacher-forcing loss of `pairs` under the current model (no training).
    pub fn evaluate_loss(&self, ctx: &ComposeContext<'_>, pairs: &[TrainingPair]) -> Result<f64> {
        let features = ctx.features.ok_or_else(|| {
            ComposerError::config("features", "the learned composer needs author features")
        })?;
        let targets = training_targets(&self.schema, pairs)?;
        let (mut sum, mut count) = (0.0f64, 0usize);
        for (chunk, tchunk) in pairs
            .chunks(self.config.batch_size)
            .zip(targets.chunks(self.config.batch_size))
        {
            let queries: Vec<HistoryQuery<'_>> =
                chunk.iter().map(|p| p.query(ctx.dataset)).collect();
            let batch = HistoryBatch::build_with_dims(
                features,
                self.config.encoder.feature_dims,
                &queries,
                self.config.max_history,
                &self.device,
            );
            let value = self.model.loss(&batch, tchunk).into_scalar::<f32>();
            sum += f64::from(value) * chunk.len() as f64;
            count += chunk.len();
        }
        Ok(sum / count.max(1) as f64)
    }
}

/// The training examples of `train`: queries and encoded reference token sequences.
fn training_targets(schema: &PreferenceSchema, train: &[TrainingPair]) -> Result<Vec<Vec<u32>>> {
    train
        .iter()
        .map(|pair| {
            let fields = schema.parse(&pair.reference).map_err(|e| {
                ComposerError::data(format!(
                    "reference of user {} does not parse: {e}",
                    pair.user.0
                ))
            })?;
            Ok(schema.encode(&fields))
        })
        .collect()
}

/// Deterministic permutation of `0..n` for `(seed, epoch)` (Fisher–Yates, splitmix64).
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::from_state(
        seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5851_F42D_4C95_7F2D,
    );
    for i in (1..n).rev() {
        order.swap(i, rng.modulo(i));
    }
    order
}

/// The longest token sequence the schema's grammar allows (EOS included): every list
/// field at its `max` values plus its end token, every tuple slot, EOS.
pub fn grammar_max_tokens(schema: &PreferenceSchema) -> usize {
    schema
        .fields
        .iter()
        .map(|f| match &f.kind {
            crate::schema::FieldKind::List { max, .. } => max + 1,
            crate::schema::FieldKind::Tuple { slots } => slots.len(),
        })
        .sum::<usize>()
        + 1
}
