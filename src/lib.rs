//! # MSPA: Multimodal Self-Corrective Preference Alignment
//!
//! The facade crate of MSPA-rs: it re-exports the member crates so that one dependency
//! gives the whole pipeline, and offers a [`prelude`].
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`core`] | `mspa-core` | ids, tip events, authors, datasets, loaders, splits, negative sampling, the synthetic world |
//! | [`modal`] | `mspa-modal` | devices, media decoding, encoders, MiniLM, feature extraction |
//! | [`composer`] | `mspa-composer` | history encoder, preference schema, generator, composers |
//! | [`align`] | `mspa-align` | MSPA, the baselines, training, evaluation |
//! | [`metrics`] | `mspa-metrics` | ranking and text metrics |
//! | [`pipeline`] | this crate | the end-to-end job of `examples/quickstart.rs` |
//! | [`report`], [`plots`] | this crate | its report (JSON, Markdown) and SVG charts |
//!
//! Backends are cargo features: `flex` (default), `ndarray`, `wgpu`, and the documented
//! but not CI-built `cuda` and `cpu`.
//!
//! ```
//! use mspa::prelude::*;
//! let device = device_from_name("flex").unwrap();
//! let mut b = DatasetBuilder::default();
//! let a = b.add_author(Author::bare(ExternalId::from("dj"))).unwrap();
//! let u = b.user(ExternalId::Int(1));
//! b.push_event(u, a, 3.0, 1_000);
//! let ds = b.build(None);
//! assert_eq!(DatasetStats::compute(&ds).events, 1);
//! # let _ = device;
//! ```

#![warn(missing_docs)]

pub use mspa_align as align;
pub use mspa_composer as composer;
pub use mspa_core as core;
pub use mspa_metrics as metrics;
pub use mspa_modal as modal;

pub mod pipeline;
pub mod plots;
pub mod report;

/// The types most programs need, in one import.
pub mod prelude {
    pub use mspa_core::{
        Author, AuthorId, CoreError, Dataset, DatasetBuilder, DatasetStats, ExternalId, Format,
        NegativeSampler, Split, Target, TargetKind, TipEvent, UserId,
    };
    pub use mspa_modal::{DeviceError, compiled_devices, device_from_name};
}

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
