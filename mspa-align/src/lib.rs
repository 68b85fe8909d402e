//! `mspa-align`: the self-corrective alignment recommender, its baselines and training
//! (the second stage of MSPA).
//!
//! * [`recommender`]: the [`recommender::Recommender`] trait every model implements, and
//!   evaluation through the `mspa-metrics` full-ranking evaluator.
//! * [`data`]: training examples (history prefix, positive) and negative batches.
//! * [`train`]: the shared trainer (AdamW, schedule, clipping, early stopping on
//!   validation NDCG@10, checkpoints, NaN guard).
//! * [`baselines`]: MostPop, RepeatPop, BPR-MF, VBPR, LightGCN, FREEDOM, the shallow
//!   multimodal concatenation model, SASRec with repeat terms, the oracle.
//! * [`model`]: MSPA itself (preference-conditioned cross-modal attention with T
//!   self-correction steps); [`mspa`]: fitting it and the [`mspa::MspaRecommender`] with
//!   explanations.

pub mod baselines;
pub mod data;
pub mod error;
pub mod model;
pub mod mspa;
pub mod recommender;
pub mod train;

pub use error::{AlignError, Result};
