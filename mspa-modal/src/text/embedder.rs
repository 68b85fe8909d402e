//! A pretrained BERT encoder with its tokenizer: per-token vectors (the
//! [`TokenEmbedder`] of BERTScore) and mean-pooled sentence vectors.
//!
//! Texts are trimmed and tokenized. On a CPU device (flex, ndarray; not autodiff) they
//! then run through the native CPU forward pass ([`CpuBert`]: no padding, all cores);
//! elsewhere they are sorted by length and run in padded batches of Burn tensors (one
//! forward pass and one device-to-host copy per batch). Results come back in input order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::{Bool, Device, Tensor, TensorData};
use mspa_metrics::{TokenEmbedder, TokenEmbeddings};

use super::bert::BertModel;
use super::cpu_forward::CpuBert;
use super::pretrained::load_bert_model;
use super::tokenizer::{Encoded, TextTokenizer, TokenBatch};
use crate::error::{ModalError, Result};

/// Mean of the hidden states over the real (unpadded) tokens of each row, as
/// sentence-transformers' mean pooling (special tokens included).
///
/// # Shapes
///
/// - `hidden`: `[batch, seq_len, hidden]`
/// - `padding_mask`: `[batch, seq_len]`, `true` at padding
/// - output: `[batch, hidden]`
pub fn mean_pool(hidden: Tensor<3>, padding_mask: Tensor<2, Bool>) -> Tensor<2> {
    let [batch, seq_len, width] = hidden.dims();
    let keep = padding_mask.bool_not().float().reshape([batch, seq_len, 1]);
    let summed = (hidden * keep.clone()).sum_dim(1).reshape([batch, width]);
    let counts = keep.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
    summed / counts
}

/// A BERT encoder with its tokenizer, ready to embed texts.
///
/// ```no_run
/// use mspa_metrics::{BertScoreConfig, bert_score};
/// use mspa_modal::text::BertEmbedder;
///
/// let device = burn::tensor::Device::flex();
/// let embedder = BertEmbedder::from_pretrained("../shared/models/all-MiniLM-L6-v2", &device)?;
/// let report = bert_score(
///     &embedder,
///     &["the cat sat on the mat"],
///     &[vec!["a cat was sitting on the mat"]],
///     &BertScoreConfig::default(),
/// )
/// .unwrap();
/// assert!(report.f1 > 0.5);
/// # Ok::<(), mspa_modal::ModalError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BertEmbedder {
    model: BertModel,
    tokenizer: TextTokenizer,
    device: Device,
    batch_size: usize,
    layer: usize,
    source: PathBuf,
    /// The native CPU forward pass, when in use (see [`BertEmbedder::with_cpu_forward`]).
    cpu: Option<Arc<CpuBert>>,
}

/// Whether `device` computes on the host CPU through a Burn CPU backend (flex or
/// ndarray) without autodiff, where [`CpuBert`] gives the same results faster.
fn is_plain_cpu_device(device: &Device) -> bool {
    if device.is_autodiff() {
        return false;
    }
    #[cfg(feature = "flex")]
    if *device == Device::flex() {
        return true;
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)] // Device::ndarray: burn-ndarray is deprecated upstream.
    if *device == Device::ndarray() {
        return true;
    }
    false
}

impl BertEmbedder {
    /// Default number of texts per forward pass.
    pub const DEFAULT_BATCH_SIZE: usize = 32;

    /// Wraps a model and its tokenizer; the tokenizer's maximum length is capped at the
    /// model's position table. Vectors come from the last layer. On a CPU device the
    /// native CPU forward pass is used when it covers the model (see
    /// [`with_cpu_forward`](Self::with_cpu_forward)).
    pub fn new(model: BertModel, tokenizer: TextTokenizer, device: &Device) -> Result<Self> {
        let max = tokenizer.max_length().min(model.max_position_embeddings());
        let tokenizer = tokenizer.with_max_length(max)?;
        let cpu = is_plain_cpu_device(device)
            .then(|| CpuBert::from_model(&model).ok().map(Arc::new))
            .flatten();
        Ok(Self {
            cpu,
            layer: model.num_layers(),
            model,
            tokenizer,
            device: device.clone(),
            batch_size: Self::DEFAULT_BATCH_SIZE,
            source: PathBuf::from("<in-memory model>"),
        })
    }

    /// Loads a Hugging Face model folder (`config.json`, `model.safetensors`, and
    /// `tokenizer.json` or `vocab.txt`) onto `device`.
    pub fn from_pretrained(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let (_, model) = load_bert_model(dir, device)?;
        let tokenizer = TextTokenizer::from_dir(dir)?;
        let mut embedder = Self::new(model, tokenizer, device)?;
        embedder.source = dir.to_path_buf();
        Ok(embedder)
    }

    /// Whether to run the encoder through the native CPU forward pass ([`CpuBert`]) instead
    /// of Burn tensors. On by default on CPU devices (flex, ndarray) without autodiff, off
    /// elsewhere. Turning it on works on any device (the encoder then runs on the host and
    /// only the results go to the device); it stays off for models the CPU pass does not
    /// cover. Both give the same vectors to float rounding.
    pub fn with_cpu_forward(mut self, enabled: bool) -> Self {
        self.cpu = if enabled {
            self.cpu
                .take()
                .or_else(|| CpuBert::from_model(&self.model).ok().map(Arc::new))
        } else {
            None
        };
        self
    }

    /// Whether the native CPU forward pass is in use.
    pub fn uses_cpu_forward(&self) -> bool {
        self.cpu.is_some()
    }

    /// Texts per forward pass on the Burn path (at least 1). The CPU forward pass splits
    /// texts by token counts and threads instead.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Takes vectors after the first `layer` layers instead of the last one (bert-score's
    /// `num_layers`); an error if the model has fewer layers.
    pub fn with_layer(mut self, layer: usize) -> Result<Self> {
        if layer > self.model.num_layers() {
            return Err(ModalError::Config {
                field: "layer".into(),
                message: format!(
                    "the model has {} layers, asked for {layer}",
                    self.model.num_layers()
                ),
            });
        }
        self.layer = layer;
        Ok(self)
    }

    /// The encoder.
    pub fn model(&self) -> &BertModel {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The device the encoder runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Width of the vectors.
    pub fn dim(&self) -> usize {
        self.model.hidden_size()
    }

    /// Hidden states of one padded batch, `[batch, seq_len, hidden]`.
    fn run(&self, batch: &TokenBatch) -> Tensor<3> {
        let ids = batch.input_ids_tensor(&self.device);
        let mask = batch
            .has_padding()
            .then(|| batch.padding_mask_tensor(&self.device));
        self.model.forward_layers(ids, mask, self.layer)
    }

    /// Tokenizes trimmed texts and splits them into length-sorted batches: each batch is a
    /// list of indices into `texts`.
    fn plan(&self, texts: &[&str]) -> Result<(Vec<Encoded>, Vec<Vec<usize>>)> {
        let encoded = self.encode(texts)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].len()));
        let batches = order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        Ok((encoded, batches))
    }

    /// Tokenizes trimmed texts, in order.
    fn encode(&self, texts: &[&str]) -> Result<Vec<Encoded>> {
        let trimmed: Vec<&str> = texts.iter().map(|t| t.trim()).collect();
        self.tokenizer.encode_batch(&trimmed)
    }

    /// Contextual vectors of every token (`[CLS]` and `[SEP]` included) of each text,
    /// in order.
    pub fn embed_tokens(&self, texts: &[&str]) -> Result<Vec<TokenEmbeddings>> {
        let dim = self.dim();
        if let Some(cpu) = &self.cpu {
            let encoded = self.encode(texts)?;
            let ids: Vec<&[u32]> = encoded.iter().map(|e| e.ids.as_slice()).collect();
            let hidden = cpu.hidden_states(&ids, self.layer)?;
            let mut start = 0;
            return encoded
                .into_iter()
                .map(|e| {
                    let end = start + e.len() * dim;
                    let vectors = hidden[start..end].to_vec();
                    start = end;
                    TokenEmbeddings::new(e.ids, e.special, dim, vectors)
                        .map_err(|err| self.weights_error(err.to_string()))
                })
                .collect();
        }
        let (encoded, batches) = self.plan(texts)?;
        let mut out: Vec<Option<TokenEmbeddings>> = vec![None; texts.len()];
        for indices in batches {
            let rows: Vec<Encoded> = indices.iter().map(|&i| encoded[i].clone()).collect();
            let batch = TokenBatch::from_encoded(&rows, self.tokenizer.pad_id());
            let values: Vec<f32> = self
                .run(&batch)
                .into_data()
                .try_into_vec_as::<f32>()
                .map_err(|e| self.weights_error(format!("reading hidden states: {e:?}")))?;
            let row_len = batch.seq_len * dim;
            for (r, (&i, e)) in indices.iter().zip(&rows).enumerate() {
                let start = r * row_len;
                let vectors = values[start..start + e.len() * dim].to_vec();
                let emb = TokenEmbeddings::new(e.ids.clone(), e.special.clone(), dim, vectors)
                    .map_err(|err| self.weights_error(err.to_string()))?;
                out[i] = Some(emb);
            }
        }
        Ok(out
            .into_iter()
            .map(|e| e.expect("every text embedded"))
            .collect())
    }

    /// Mean-pooled sentence vectors, `[texts.len(), hidden]` on the embedder's device,
    /// unit length when `normalize` (as sentence-transformers' all-MiniLM-L6-v2).
    pub fn sentence_embeddings(&self, texts: &[&str], normalize: bool) -> Result<Tensor<2>> {
        if texts.is_empty() {
            return Ok(Tensor::zeros([0, self.dim()], &self.device));
        }
        if let Some(cpu) = &self.cpu {
            let dim = self.dim();
            let encoded = self.encode(texts)?;
            let ids: Vec<&[u32]> = encoded.iter().map(|e| e.ids.as_slice()).collect();
            let mut pooled = cpu.mean_pooled(&ids, self.layer)?;
            if normalize {
                for row in pooled.chunks_exact_mut(dim.max(1)) {
                    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                    row.iter_mut().for_each(|v| *v /= norm);
                }
            }
            return Ok(Tensor::from_data(
                TensorData::new(pooled, [texts.len(), dim]),
                &self.device,
            ));
        }
        let (encoded, batches) = self.plan(texts)?;
        let mut pooled = Vec::with_capacity(batches.len());
        let mut order = Vec::with_capacity(texts.len());
        for indices in batches {
            let rows: Vec<Encoded> = indices.iter().map(|&i| encoded[i].clone()).collect();
            let batch = TokenBatch::from_encoded(&rows, self.tokenizer.pad_id());
            let hidden = self.run(&batch);
            pooled.push(mean_pool(hidden, batch.padding_mask_tensor(&self.device)));
            order.extend(indices);
        }
        let sorted = Tensor::cat(pooled, 0);
        // Row `k` of `sorted` holds text `order[k]`; put text `i` back at row `i`.
        let mut inverse = vec![0i64; order.len()];
        for (k, &i) in order.iter().enumerate() {
            inverse[i] = k as i64;
        }
        let index = Tensor::<1, burn::tensor::Int>::from_data(
            TensorData::new(inverse, [order.len()]),
            &self.device,
        );
        let vectors = sorted.select(0, index);
        Ok(if normalize {
            let norms = vectors
                .clone()
                .powi_scalar(2)
                .sum_dim(1)
                .sqrt()
                .clamp_min(1e-12);
            vectors / norms
        } else {
            vectors
        })
    }

    fn weights_error(&self, message: String) -> ModalError {
        ModalError::Weights {
            path: self.source.clone(),
            message,
        }
    }
}

impl TokenEmbedder for BertEmbedder {
    type Error = ModalError;

    /// [`BertEmbedder::embed_tokens`]: bert-score's `sent_encode` (strip, `[CLS] ... [SEP]`,
    /// truncation) and the chosen layer's hidden states.
    fn embed(&self, texts: &[&str]) -> std::result::Result<Vec<TokenEmbeddings>, Self::Error> {
        self.embed_tokens(texts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// all-MiniLM-L6-v2 on the flex device, when its files are there (env
    /// `MSPA_MINILM_DIR`, else `../shared/models/all-MiniLM-L6-v2` next to the workspace).
    fn minilm() -> Option<BertEmbedder> {
        let dir = std::env::var_os("MSPA_MINILM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../shared/models/all-MiniLM-L6-v2"
                ))
            });
        if !dir.join("config.json").is_file() {
            println!("skipped: MiniLM weights not found (set MSPA_MINILM_DIR)");
            return None;
        }
        Some(BertEmbedder::from_pretrained(&dir, &Device::flex()).unwrap())
    }

    fn max_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn cpu_forward_matches_the_burn_path_on_minilm() {
        let Some(cpu) = minilm() else { return };
        assert!(cpu.uses_cpu_forward());
        let burn = cpu.clone().with_cpu_forward(false);
        assert!(!burn.uses_cpu_forward());
        let long = "a long stream title with many words ".repeat(40);
        let texts = [
            "",
            "piano",
            "late night chill piano session come hang out",
            "Speedrun practice with viewer requests all night, and a giveaway at the end!",
            long.as_str(),
        ];
        for normalize in [false, true] {
            let a = cpu.sentence_embeddings(&texts, normalize).unwrap();
            let b = burn.sentence_embeddings(&texts, normalize).unwrap();
            let diff = max_diff(a, b);
            assert!(
                diff < 1e-4,
                "normalize {normalize}: max abs difference {diff}"
            );
        }
        let (a, b) = (
            cpu.embed_tokens(&texts).unwrap(),
            burn.embed_tokens(&texts).unwrap(),
        );
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.token_ids(), y.token_ids());
            for i in 0..x.len() {
                for (u, v) in x.vector(i).iter().zip(y.vector(i)) {
                    assert!((u - v).abs() < 1e-4, "token {i}: {u} vs {v}");
                }
            }
        }
        // An earlier layer, as bert-score's `num_layers`.
        let (cpu3, burn3) = (
            cpu.clone().with_layer(3).unwrap(),
            burn.with_layer(3).unwrap(),
        );
        let diff = max_diff(
            cpu3.sentence_embeddings(&texts, false).unwrap(),
            burn3.sentence_embeddings(&texts, false).unwrap(),
        );
        assert!(diff < 1e-4, "layer 3: max abs difference {diff}");
    }
}
