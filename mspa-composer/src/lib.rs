//! `mspa-composer`: turns a user's tipping history into a structured preference text
//! and a preference embedding (the first stage of MSPA).
//!
//! Not implemented yet: this crate only fixes its place in the workspace and its device
//! features. See `DESIGN.md` for what it will own.
