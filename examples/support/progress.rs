//! The progress bars of the examples (each example includes this file with `#[path]`):
//! on stderr, hidden by indicatif when stderr is not a terminal.

#![allow(dead_code)]

use std::borrow::Cow;

use indicatif::{ProgressBar, ProgressStyle};

/// `{prefix} [bar] done/total {msg}` for a known total (in bytes with `bytes`), a spinner
/// for an unknown one (0).
pub fn style(total: u64, bytes: bool) -> ProgressStyle {
    let template = match (total > 0, bytes) {
        (false, _) => "{prefix:24} {spinner} {msg}",
        (true, false) => "{prefix:24} [{bar:24}] {pos}/{len} {msg}",
        (true, true) => "{prefix:24} [{bar:24}] {bytes}/{total_bytes} {msg}",
    };
    ProgressStyle::with_template(template)
        .expect("a valid progress template")
        .progress_chars("#>-")
}

/// A bar (or a spinner when `total` is 0) with [`style`] and `prefix`.
pub fn bar(prefix: impl Into<Cow<'static, str>>, total: u64, bytes: bool) -> ProgressBar {
    let bar = if total > 0 {
        ProgressBar::new(total)
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(style(total, bytes));
    bar.set_prefix(prefix);
    bar
}
