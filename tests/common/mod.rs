//! Shared helpers for the integration tests: running the examples as real binaries, and
//! the toy world the checkpoint tests train on.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The path of a compiled example binary.
///
/// `cargo test` builds every example before it runs the tests, into
/// `target/<profile>/examples/`, beside the `deps/` folder that holds this test binary.
pub fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "example binary {} not found: run the tests with `cargo test` so the examples are built",
        bin.display()
    );
    bin
}

/// Every model row of a report, MSPA first, in report order (the `Oracle` row follows
/// when the data has a planted truth; FREEDOM is last and needs content).
pub const REPORT_MODELS: [&str; 11] = [
    "MSPA",
    "MSPA (T=0)",
    "MSPA (no text)",
    "MostPop",
    "RepeatPop",
    "BPR-MF",
    "VBPR",
    "Concat",
    "SASRec",
    "LightGCN",
    "FREEDOM",
];

/// Runs an example with the given arguments and returns its output.
pub fn run_example(name: &str, args: &[&str]) -> Output {
    Command::new(example_bin(name))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("example runs")
}

/// Stdout of a run as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr of a run as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failed run reported an error cleanly: non-zero exit, no panic text.
pub fn assert_clean_failure(out: &Output) {
    assert!(!out.status.success(), "expected failure, got success");
    let err = stderr(out);
    assert!(!err.contains("panicked"), "panic in stderr: {err}");
    assert!(
        !err.contains("RUST_BACKTRACE"),
        "backtrace hint in stderr: {err}"
    );
    assert!(!err.trim().is_empty(), "empty stderr on failure");
}

/// Ten authors and twelve users with eight tips each, split leave-last-out: the world the
/// crash-safety and checkpoint regression tests train a toy BPR-MF on.
pub fn toy_checkpoint_world() -> (mspa_core::Dataset, mspa_core::Split) {
    use mspa_core::{Author, DatasetBuilder, ExternalId, Split};
    let mut b = DatasetBuilder::default();
    let authors: Vec<_> = (0..10)
        .map(|i| b.add_author(Author::bare(ExternalId::Int(i))).unwrap())
        .collect();
    for u in 0..12 {
        let user = b.user(ExternalId::Int(100 + u));
        for t in 0..8 {
            let a = authors[((u % 5) * 2 + t % 2) as usize];
            b.push_event(user, a, 1.0 + t as f64, 1_000 * t + u);
        }
    }
    let ds = b.build(None);
    let split = Split::leave_last_out(&ds);
    (ds, split)
}

pub mod layouts;
