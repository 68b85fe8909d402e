//! The text side of `mspa-modal`: titles and descriptions to vectors.
//!
//! * [`tokenizer`]: WordPiece tokenization from a Hugging Face `tokenizer.json` or
//!   `vocab.txt`, truncation, and padded batches with their masks.
//! * [`bert`]: a BERT-family transformer encoder (BERT's embeddings, then burn-nn's
//!   post-norm `TransformerEncoder` with a padding mask), trainable from scratch.
//! * [`cpu_forward`]: the same network run natively on the host (no padding, AVX-512 or
//!   `gemm` matrix kernels), which [`BertEmbedder`] uses on CPU devices.
//! * [`pretrained`]: loading a Hugging Face folder (`config.json` + `model.safetensors`)
//!   through an explicit key-remapping table.
//! * [`embedder`]: the pretrained encoder as a [`mspa_metrics::TokenEmbedder`] (BERTScore)
//!   and mean-pooled sentence embeddings.
//!
//! ```no_run
//! use mspa_modal::text::BertEmbedder;
//!
//! let device = burn::tensor::Device::flex();
//! let embedder = BertEmbedder::from_pretrained("../shared/models/all-MiniLM-L6-v2", &device)?;
//! let vectors = embedder.sentence_embeddings(&["a calm piano stream", "loud drum and bass"], true)?;
//! assert_eq!(vectors.dims(), [2, 384]);
//! # Ok::<(), mspa_modal::ModalError>(())
//! ```

pub mod bert;
pub mod cpu_forward;
pub mod embedder;
pub mod pretrained;
pub mod tokenizer;

pub use bert::{
    BertActivation, BertConfig, BertEmbeddings, BertModel, BertModelConfig, leading_rows,
};
pub use cpu_forward::{CpuBert, CpuKernel};
pub use embedder::{BertEmbedder, mean_pool};
pub use pretrained::{
    BERT_KEY_REMAP, default_minilm_dir, load_bert_config, load_bert_model, load_bert_weights,
};
pub use tokenizer::{Encoded, TextTokenizer, TokenBatch};
