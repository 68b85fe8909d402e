//! What the examples share; each example includes this folder with
//! `#[path = "support/mod.rs"] mod support;` and uses the parts it needs.

#![allow(dead_code)]

pub mod allocator;
pub mod cli;
pub mod progress;
