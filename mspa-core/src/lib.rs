//! `mspa-core`: the data model of MSPA, with no Burn dependency.
//!
//! * ids: dense [`UserId`] / [`AuthorId`] indices and an [`Interner`] to the
//!   [`ExternalId`]s of the source data;
//! * [`TipEvent`], [`Author`] and the [`Dataset`] with its per-user, time-ordered CSR index;
//! * [`loaders`]: the native format, Twitch and KuaiLive, with errors that name the file,
//!   the line and the field;
//! * [`live`]: when each author was on air, for the live-candidate protocol;
//! * [`split`]: leak-free leave-last-out and global time splits, with repeat/new targets;
//! * [`NegativeSampler`]: uniform and popularity-weighted negatives, never a positive;
//! * [`DatasetStats`]: what `dataset_stats` prints;
//! * [`npy`]: NumPy `.npy` 2-D float arrays (precomputed vectors such as KuaiLive's title
//!   embeddings);
//! * [`rng`]: the one seeded stream (SplitMix64) every crate shuffles and initialises with;
//! * `synth` (feature `synth`): the synthetic live-stream world, a data source with a
//!   planted truth for evaluation.
//!
//! ```
//! use mspa_core::{Author, DatasetBuilder, ExternalId, Split};
//! let mut b = DatasetBuilder::default();
//! let a = b.add_author(Author::bare(ExternalId::from("dj_nova"))).unwrap();
//! let u = b.user(ExternalId::Int(1));
//! for t in [30, 10, 20] { b.push_event(u, a, 2.5, t); }
//! let ds = b.build(None);
//! let split = Split::leave_last_out(&ds);
//! assert_eq!((split.train.len(), split.valid.len(), split.test.len()), (1, 1, 1));
//! ```

#![warn(missing_docs)]

pub mod author;
pub mod dataset;
mod debug;
pub mod error;
pub mod event;
pub mod fs;
pub mod ids;
pub mod live;
pub mod loaders;
pub mod negative;
pub mod npy;
pub mod rng;
pub mod split;
pub mod stats;
#[cfg(feature = "synth")]
pub mod synth;

pub use author::Author;
pub use dataset::{Dataset, DatasetBuilder};
pub use error::{CoreError, DataErrorKind, Result};
pub use event::{DAY_MS, TipEvent};
pub use ids::{AuthorId, ExternalId, Interner, UserId};
pub use live::LiveSchedule;
pub use loaders::{Format, LoadProgress, load_kuailive, load_native, load_twitch};
pub use negative::NegativeSampler;
pub use split::{Split, SplitSizes, Target, TargetKind};
pub use stats::DatasetStats;
