//! Runs the `extract` example on a tiny synthetic world: the JSON report, reuse of the
//! feature file on a second run, and bad media either failing cleanly (naming the file,
//! leaving no feature file) or being skipped and listed with `--skip-invalid`.

mod common;

use std::path::Path;

use mspa::core::synth::{SyntheticWorldConfig, generate};
use serde_json::Value;

fn tiny_world(dir: &Path) {
    let config = SyntheticWorldConfig {
        seed: 5,
        authors: 6,
        users: 10,
        audio_seconds: 0.5,
        ..Default::default()
    };
    generate(&config, dir).expect("tiny world");
}

fn extract(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "flex",
        "--json",
    ];
    args.extend_from_slice(extra);
    common::run_example("extract", &args)
}

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "stderr: {}", common::stderr(out));
    serde_json::from_str(&common::stdout(out)).expect("stdout is one JSON object")
}

#[test]
fn extracts_every_author_and_reuses_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("world");
    tiny_world(&data);
    let features = dir.path().join("features.safetensors");

    let first = json(&extract(&data, &features, &[]));
    assert_eq!(first["authors"], 6);
    assert_eq!(first["extracted"], 6);
    assert_eq!(first["computed"], 6);
    assert_eq!(first["skipped"], serde_json::json!([]));
    assert!(first["seconds"].as_f64().unwrap() > 0.0);
    assert!(features.is_file());

    let second = json(&extract(&data, &features, &[]));
    assert_eq!(second["reused"], 6, "{second}");
    assert_eq!(second["computed"], 0, "{second}");
}

#[test]
fn a_bad_frame_fails_cleanly_or_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("world");
    tiny_world(&data);
    // Corrupt the first frame of the first author that has one.
    let media = data.join("media");
    let mut frames: Vec<_> = walk(&media)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    frames.sort();
    let bad = frames.first().expect("the world has frames").clone();
    std::fs::write(&bad, b"this is not a png").unwrap();
    let name = bad.file_name().unwrap().to_str().unwrap().to_string();

    let features = dir.path().join("features.safetensors");
    let out = extract(&data, &features, &[]);
    common::assert_clean_failure(&out);
    let err = common::stderr(&out);
    assert!(err.contains(&name), "the error names the file: {err}");
    assert!(!features.exists(), "no feature file after a failed run");

    let report = json(&extract(&data, &features, &["--skip-invalid"]));
    assert_eq!(report["extracted"], 6);
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{report}");
    assert!(skipped[0]["path"].as_str().unwrap().ends_with(&name));
    assert!(!skipped[0]["author"].as_str().unwrap().is_empty());
    assert!(!skipped[0]["error"].as_str().unwrap().is_empty());
    assert!(features.is_file());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
