//! A pretrained BERT encoder with its tokenizer: per-token vectors (the
//! [`TokenEmbedder`] of BERTScore) and mean-pooled sentence vectors.
//!
//! Texts are trimmed, tokenized, sorted by length and run in padded batches (one
//! forward pass and one device-to-host copy per batch); results come back in input order.

use std::path::{Path, PathBuf};

use burn::tensor::{Bool, Device, Tensor};
use mspa_metrics::{TokenEmbedder, TokenEmbeddings};

use super::bert::BertModel;
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
}

impl BertEmbedder {
    /// Default number of texts per forward pass.
    pub const DEFAULT_BATCH_SIZE: usize = 32;

    /// Wraps a model and its tokenizer; the tokenizer's maximum length is capped at the
    /// model's position table. Vectors come from the last layer.
    pub fn new(model: BertModel, tokenizer: TextTokenizer, device: &Device) -> Result<Self> {
        let max = tokenizer.max_length().min(model.max_position_embeddings());
        let tokenizer = tokenizer.with_max_length(max)?;
        Ok(Self {
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

    /// Texts per forward pass (at least 1).
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
        let trimmed: Vec<&str> = texts.iter().map(|t| t.trim()).collect();
        let encoded = self.tokenizer.encode_batch(&trimmed)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].len()));
        let batches = order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        Ok((encoded, batches))
    }

    /// Contextual vectors of every token (`[CLS]` and `[SEP]` included) of each text,
    /// in order.
    pub fn embed_tokens(&self, texts: &[&str]) -> Result<Vec<TokenEmbeddings>> {
        let (encoded, batches) = self.plan(texts)?;
        let dim = self.dim();
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
            burn::tensor::TensorData::new(inverse, [order.len()]),
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
