//! `mspa-align`: the self-corrective alignment recommender, its baselines and training
//! (the second stage of MSPA).
//!
//! Not implemented yet: this crate only fixes its place in the workspace and its device
//! features. See `DESIGN.md` for what it will own.
