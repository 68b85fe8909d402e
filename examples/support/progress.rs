//! The progress bars of the examples: on stderr, hidden by indicatif when stderr is not a
//! terminal.

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

/// A `(done, total)` callback that moves `bar` (its length follows `total`).
pub fn counter(bar: &ProgressBar) -> impl FnMut(usize, usize) + '_ {
    |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

/// One bar at a time, keyed (by stage, by file): a new key finishes the current bar and
/// starts the next.
pub struct Stages<K> {
    current: Option<(K, ProgressBar)>,
}

impl<K> Default for Stages<K> {
    fn default() -> Self {
        Stages { current: None }
    }
}

impl<K: PartialEq + Clone> Stages<K> {
    /// The bar of `key`: the current one, or (after finishing that) a new one from `make`.
    pub fn bar(&mut self, key: &K, make: impl FnOnce() -> ProgressBar) -> &ProgressBar {
        if self
            .current
            .as_ref()
            .is_none_or(|(current, _)| current != key)
        {
            self.finish();
            self.current = Some((key.clone(), make()));
        }
        &self.current.as_ref().expect("a bar for the current key").1
    }

    /// Finishes the current bar, if any.
    pub fn finish(&mut self) {
        if let Some((_, bar)) = self.current.take() {
            bar.finish();
        }
    }
}
