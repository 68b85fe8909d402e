//! Cross-modal contrastive pretraining (InfoNCE) of the visual and audio encoders and a
//! text projection, with no labels: the frame, the audio clip and the text of one author
//! are pulled together, those of different authors pushed apart.
//!
//! For every pair of modalities (visual–audio, visual–text, audio–text) and a batch of
//! authors that have both, the loss is the symmetric cross-entropy of the cosine
//! similarity matrix divided by a temperature, with the same author on the diagonal as the
//! target (CLIP's objective). Authors lacking a modality simply do not take part in the
//! pairs that need it.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use mspa_core::rng::SplitMix64;

use crate::encoders::{AudioEncoder, AudioEncoderConfig, VisualEncoder, VisualEncoderConfig};
use crate::error::{ModalError, Result};

/// The model trained by [`pretrain`]: both encoders plus a projection of fixed text
/// vectors (from a frozen text encoder) into the shared space.
#[derive(Module, Debug)]
pub struct CrossModalModel {
    /// Frames to vectors.
    pub visual: VisualEncoder,
    /// Log-mel spectrograms to vectors.
    pub audio: AudioEncoder,
    /// Text vectors to the shared space.
    pub text: Linear,
}

/// Configuration of [`CrossModalModel`].
#[derive(Config, Debug)]
pub struct CrossModalConfig {
    /// The visual encoder (its `d_output` must equal the audio encoder's).
    pub visual: VisualEncoderConfig,
    /// The audio encoder.
    pub audio: AudioEncoderConfig,
    /// Size of the frozen text vectors (384 for MiniLM).
    #[config(default = 384)]
    pub d_text: usize,
}

impl CrossModalConfig {
    /// Builds the model; fails if the two encoders disagree on the output size.
    pub fn init(&self, device: &Device) -> Result<CrossModalModel> {
        if self.visual.d_output != self.audio.d_output {
            return Err(ModalError::Config {
                field: "audio.d_output".into(),
                message: format!(
                    "must equal visual.d_output ({}), got {}",
                    self.visual.d_output, self.audio.d_output
                ),
            });
        }
        Ok(CrossModalModel {
            visual: self.visual.init(device),
            audio: self.audio.init(device),
            text: LinearConfig::new(self.d_text, self.visual.d_output).init(device),
        })
    }
}

/// One author's preprocessed inputs; a missing modality is `None`.
#[derive(Clone, Debug, Default)]
pub struct PretrainSample {
    /// One normalised frame, `[3, size, size]` flattened.
    pub frame: Option<Vec<f32>>,
    /// A log-mel spectrogram cropped or padded to a fixed number of frames,
    /// `[n_mels, frames]` flattened.
    pub mel: Option<Vec<f32>>,
    /// A frozen text vector.
    pub text: Option<Vec<f32>>,
}

/// Shapes of the inputs of [`PretrainSample`].
#[derive(Clone, Copy, Debug)]
pub struct SampleShapes {
    /// Frame side (frames are square).
    pub frame_size: usize,
    /// Mel bins.
    pub n_mels: usize,
    /// Spectrogram frames.
    pub mel_frames: usize,
    /// Text vector size.
    pub d_text: usize,
}

/// Hyper-parameters of [`pretrain`].
#[derive(Config, Debug)]
pub struct PretrainConfig {
    /// Passes over the authors.
    #[config(default = 5)]
    pub epochs: usize,
    /// Authors per batch (each batch gives `batch_size - 1` negatives per positive).
    #[config(default = 64)]
    pub batch_size: usize,
    /// AdamW learning rate.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    /// Softmax temperature of the similarities.
    #[config(default = 0.1)]
    pub temperature: f64,
    /// Seed of the batch order.
    #[config(default = 0)]
    pub seed: u64,
}

/// The InfoNCE loss of one batch (a scalar tensor), or `None` when no pair of modalities
/// has two authors to contrast.
pub fn batch_loss(
    model: &CrossModalModel,
    batch: &[&PretrainSample],
    shapes: SampleShapes,
    temperature: f64,
    device: &Device,
) -> Option<Tensor<1>> {
    // Encode every present modality once; remember which batch rows have it.
    let encode = |pick: &dyn Fn(&PretrainSample) -> Option<&Vec<f32>>,
                  run: &dyn Fn(Vec<f32>, usize) -> Tensor<2>|
     -> Option<(Vec<usize>, Tensor<2>)> {
        let rows: Vec<usize> = (0..batch.len())
            .filter(|&i| pick(batch[i]).is_some())
            .collect();
        if rows.len() < 2 {
            return None;
        }
        let flat: Vec<f32> = rows
            .iter()
            .flat_map(|&i| pick(batch[i]).unwrap().iter().copied())
            .collect();
        Some((rows.clone(), normalise(run(flat, rows.len()))))
    };
    let s = shapes;
    let visual = encode(&|x| x.frame.as_ref(), &|flat, n| {
        let t = Tensor::<4>::from_data(
            TensorData::new(flat, [n, 3, s.frame_size, s.frame_size]),
            device,
        );
        model.visual.forward(t)
    });
    let audio = encode(&|x| x.mel.as_ref(), &|flat, n| {
        let t = Tensor::<3>::from_data(TensorData::new(flat, [n, s.n_mels, s.mel_frames]), device);
        model.audio.forward(t)
    });
    let text = encode(&|x| x.text.as_ref(), &|flat, n| {
        let t = Tensor::<2>::from_data(TensorData::new(flat, [n, s.d_text]), device);
        model.text.forward(t)
    });
    let views = [visual, audio, text];
    let mut total: Option<Tensor<1>> = None;
    for a in 0..views.len() {
        for b in a + 1..views.len() {
            let (Some((rows_a, za)), Some((rows_b, zb))) = (&views[a], &views[b]) else {
                continue;
            };
            // Authors present in both views, as positions inside each view.
            let (mut pa, mut pb) = (Vec::new(), Vec::new());
            for (ia, r) in rows_a.iter().enumerate() {
                if let Ok(ib) = rows_b.binary_search(r) {
                    pa.push(ia as i64);
                    pb.push(ib as i64);
                }
            }
            if pa.len() < 2 {
                continue;
            }
            let n = pa.len();
            let ia = Tensor::<1, Int>::from_data(TensorData::new(pa, [n]), device);
            let ib = Tensor::<1, Int>::from_data(TensorData::new(pb, [n]), device);
            let xa = za.clone().select(0, ia);
            let xb = zb.clone().select(0, ib);
            let loss = info_nce(xa, xb, temperature, device);
            total = Some(match total {
                Some(t) => t + loss,
                None => loss,
            });
        }
    }
    total
}

/// Rows scaled to unit L2 norm.
fn normalise(z: Tensor<2>) -> Tensor<2> {
    let norm = z.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-6);
    z / norm
}

/// Symmetric InfoNCE of two aligned, normalised views `[n, d]`; row `i` of each is the
/// same author.
fn info_nce(a: Tensor<2>, b: Tensor<2>, temperature: f64, device: &Device) -> Tensor<1> {
    let [n, _] = a.dims();
    let logits = a.matmul(b.transpose()) / temperature;
    let eye = Tensor::<2>::eye(n, device);
    let rows = (log_softmax(logits.clone(), 1) * eye.clone()).sum() / n as f64;
    let cols = (log_softmax(logits, 0) * eye).sum() / n as f64;
    (rows + cols) * -0.5
}

/// Trains the model on `samples` with AdamW on `device.autodiff()` and returns it (on the
/// plain device) with the mean loss of every epoch. `progress` gets `(epoch, mean_loss)`.
///
/// Fails, naming the epoch and batch, if the loss becomes NaN or infinite.
pub fn pretrain(
    model: CrossModalModel,
    samples: &[PretrainSample],
    shapes: SampleShapes,
    config: &PretrainConfig,
    device: &Device,
    mut progress: impl FnMut(usize, f64),
) -> Result<(CrossModalModel, Vec<f64>)> {
    if config.batch_size < 2 {
        return Err(ModalError::Config {
            field: "batch_size".into(),
            message: "needs at least 2 authors to contrast".into(),
        });
    }
    let ad_device = device.clone().autodiff();
    let mut model = model.fork(&ad_device).train();
    let mut optim = AdamWConfig::new().init();
    let mut order: Vec<usize> = (0..samples.len()).collect();
    let mut rng = SplitMix64::new(config.seed);
    let mut curve = Vec::with_capacity(config.epochs);
    for epoch in 0..config.epochs {
        rng.shuffle(&mut order);
        let (mut sum, mut count) = (0.0, 0usize);
        for (b, chunk) in order.chunks(config.batch_size).enumerate() {
            let batch: Vec<&PretrainSample> = chunk.iter().map(|&i| &samples[i]).collect();
            let Some(loss) = batch_loss(&model, &batch, shapes, config.temperature, &ad_device)
            else {
                continue;
            };
            let value: f64 = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                return Err(ModalError::Config {
                    field: "learning_rate".into(),
                    message: format!(
                        "loss is {value} at epoch {epoch}, batch {b}: lower the learning rate"
                    ),
                });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(config.learning_rate, model, grads);
            sum += value;
            count += 1;
        }
        let mean = if count > 0 { sum / count as f64 } else { 0.0 };
        progress(epoch, mean);
        curve.push(mean);
    }
    let _ = device;
    Ok((model.valid(), curve))
}
