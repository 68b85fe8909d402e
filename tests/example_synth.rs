//! Runs the `synth` example on tiny worlds.

mod common;

use std::fs;

fn count_users(dir: &std::path::Path) -> usize {
    let csv = fs::read_to_string(dir.join("tips.csv")).unwrap();
    let users: std::collections::HashSet<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    users.len()
}

#[test]
fn synth_writes_a_tiny_world() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("world");
    let out = common::run_example(
        "synth",
        &[
            "--seed",
            "3",
            "--users",
            "12",
            "--authors",
            "5",
            "--out",
            out_dir.to_str().unwrap(),
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let stdout = common::stdout(&out);
    assert!(stdout.contains("users             12"), "{stdout}");
    assert!(stdout.contains("authors           5"), "{stdout}");
    assert!(stdout.contains("tips"), "{stdout}");
    for name in [
        "authors.jsonl",
        "tips.csv",
        "truth.json",
        "truth_users.jsonl",
        "world.json",
    ] {
        assert!(out_dir.join(name).is_file(), "{name} missing");
    }
    assert_eq!(
        fs::read_to_string(out_dir.join("authors.jsonl"))
            .unwrap()
            .lines()
            .count(),
        5
    );
    assert_eq!(count_users(&out_dir), 12);
    let world: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out_dir.join("world.json")).unwrap()).unwrap();
    assert_eq!(world["seed"], 3);
}

#[test]
fn synth_reads_a_config_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("world.json");
    fs::write(
        &config,
        r#"{"users": 4, "authors": 3, "audio_seconds": 0.5, "exploration": 0.2}"#,
    )
    .unwrap();
    let out_dir = dir.path().join("w");
    let out = common::run_example(
        "synth",
        &[
            "--config",
            config.to_str().unwrap(),
            "--users",
            "7",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(count_users(&out_dir), 7);
    let world: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out_dir.join("world.json")).unwrap()).unwrap();
    assert_eq!(world["authors"], 3);
    assert_eq!(world["exploration"], 0.2);
}

#[test]
fn synth_fails_cleanly_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a_file");
    fs::write(&file, "x").unwrap();
    let under_file = file.join("world");

    // Unwritable output directory.
    let out = common::run_example(
        "synth",
        &[
            "--users",
            "2",
            "--authors",
            "2",
            "--out",
            under_file.to_str().unwrap(),
        ],
    );
    common::assert_clean_failure(&out);
    assert!(
        common::stderr(&out).contains("a_file"),
        "{}",
        common::stderr(&out)
    );

    // Bad numbers and invalid configs.
    let out = common::run_example(
        "synth",
        &["--users", "many", "--out", dir.path().to_str().unwrap()],
    );
    common::assert_clean_failure(&out);
    let out = common::run_example(
        "synth",
        &[
            "--users",
            "0",
            "--out",
            dir.path().join("z").to_str().unwrap(),
        ],
    );
    common::assert_clean_failure(&out);
    assert!(
        common::stderr(&out).contains("users"),
        "{}",
        common::stderr(&out)
    );

    // A config file with an unknown field, and a missing config file.
    let bad = dir.path().join("bad.json");
    fs::write(&bad, r#"{"usres": 3}"#).unwrap();
    let out = common::run_example(
        "synth",
        &[
            "--config",
            bad.to_str().unwrap(),
            "--out",
            dir.path().join("y").to_str().unwrap(),
        ],
    );
    common::assert_clean_failure(&out);
    assert!(
        common::stderr(&out).contains("usres"),
        "{}",
        common::stderr(&out)
    );
    let out = common::run_example(
        "synth",
        &[
            "--config",
            dir.path().join("missing.json").to_str().unwrap(),
            "--out",
            dir.path().join("v").to_str().unwrap(),
        ],
    );
    common::assert_clean_failure(&out);

    // Missing --out.
    let out = common::run_example("synth", &["--users", "2"]);
    common::assert_clean_failure(&out);
}
