//! `mspa-align`: the second stage of MSPA. It ranks every live-stream author for a user
//! from the user's tips and the authors' content: the self-corrective alignment
//! recommender, its baselines, their shared trainer and full-ranking evaluation.
//!
//! Every model implements [`recommender::Recommender`]: given [`recommender::Query`]s
//! (a user, the user's earlier tips, a time) it fills one row of scores over all authors
//! per query. The simplest models need no training:
//!
//! ```
//! use mspa_align::baselines::{MostPop, RepeatPop, RepeatWeighting};
//! use mspa_align::recommender::{Query, Recommender};
//! use mspa_core::{Author, DatasetBuilder, ExternalId, Split};
//!
//! let mut b = DatasetBuilder::default();
//! let nova = b.add_author(Author::bare(ExternalId::from("dj_nova"))).unwrap();
//! let lark = b.add_author(Author::bare(ExternalId::from("lark"))).unwrap();
//! let (ana, bo) = (b.user(ExternalId::Int(1)), b.user(ExternalId::Int(2)));
//! let tips = [(ana, nova, 10), (ana, nova, 20), (bo, nova, 10), (bo, lark, 30), (bo, lark, 40)];
//! for (user, author, t) in tips {
//!     b.push_event(user, author, 1.0, t);
//! }
//! let ds = b.build(None);
//! let split = Split::leave_last_out(&ds); // Bo's last two tips are held out
//!
//! // Bo, after all three tips: MostPop ranks nova, the most tipped in training, first;
//! // RepeatPop ranks lark, the author Bo tipped most, first.
//! let query = Query { user: bo, history: ds.user_events(bo), at_ms: 50 };
//! let mut scores = vec![0.0; ds.n_authors()];
//! MostPop::fit(&ds, &split).score_batch(&[query], &mut scores)?;
//! assert!(scores[nova.index()] > scores[lark.index()]);
//! let weighting = RepeatWeighting { half_life_days: 7.0, amount_exponent: 0.0 };
//! RepeatPop::new(&ds, &split, weighting).score_batch(&[query], &mut scores)?;
//! assert!(scores[lark.index()] > scores[nova.index()]);
//! # Ok::<(), mspa_align::AlignError>(())
//! ```
//!
//! * [`recommender`]: the [`recommender::Recommender`] trait every model implements, and
//!   evaluation through the `mspa-metrics` full-ranking evaluator.
//! * [`fit`]: the one fitting shape, [`fit::FitRecommender`] (settings in, a recommender
//!   out, on [`fit::TrainingData`]): implement it and `Recommender` to add a model.
//! * [`data`]: training examples (history prefix, positive) and negative batches.
//! * [`train`]: the shared trainer (AdamW, schedule, clipping, early stopping on
//!   validation NDCG@10, checkpoints, NaN guard).
//! * [`scoring`]: blocked top-K scoring of user vectors against millions of authors.
//! * [`baselines`]: MostPop, RepeatPop, BPR-MF, VBPR, LightGCN, FREEDOM, the shallow
//!   multimodal concatenation model, SASRec with repeat terms, the oracle.
//! * [`model`]: MSPA itself (preference-conditioned cross-modal attention with T
//!   self-correction steps) and the inputs it reads; [`mspa`]: fitting it
//!   ([`fit::FitRecommender`] on [`mspa::MspaSettings`]) and the
//!   [`mspa::MspaRecommender`] with explanations.

#![warn(missing_docs)]

pub mod baselines;
pub mod data;
pub mod dropout;
pub mod error;
pub mod fit;
pub mod model;
pub mod mspa;
pub mod recommender;
pub mod scoring;
pub mod train;

pub use error::{AlignError, Result};
