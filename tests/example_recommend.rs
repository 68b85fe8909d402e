//! Runs `recommend` on a tiny world: it trains, saves a checkpoint and prints the top K
//! with explanations; a second run loads the checkpoint and gives the same list; an
//! unknown user fails cleanly.

mod common;

use mspa::core::synth::{SyntheticWorldConfig, generate};

fn top_lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn recommend_trains_saves_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("world");
    let config = SyntheticWorldConfig {
        seed: 4,
        authors: 10,
        users: 30,
        audio_seconds: 0.5,
        ..Default::default()
    };
    generate(&config, &data).unwrap();
    let checkpoint = dir.path().join("ckpt");
    let args = [
        "--data",
        data.to_str().unwrap(),
        "--user",
        "u000003",
        "--k",
        "5",
        "--epochs",
        "1",
        "--composer-epochs",
        "1",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
    ];
    let first = common::run_example("recommend", &args);
    assert!(first.status.success(), "stderr: {}", common::stderr(&first));
    let stdout = common::stdout(&first);
    assert!(
        stdout.contains("composed preference: categories: "),
        "{stdout}"
    );
    assert!(stdout.contains("modality weights: visual"), "{stdout}");
    let top = top_lines(&stdout);
    assert_eq!(top.len(), 5, "{stdout}");
    assert!(checkpoint.join("mspa").join("model.bpk").is_file());
    assert!(checkpoint.join("composer").is_dir());

    let second = common::run_example("recommend", &args);
    assert!(
        second.status.success(),
        "stderr: {}",
        common::stderr(&second)
    );
    assert!(
        common::stderr(&second).contains("loading"),
        "{}",
        common::stderr(&second)
    );
    assert_eq!(
        top_lines(&common::stdout(&second)),
        top,
        "the checkpoint gives the same list"
    );

    let unknown = common::run_example(
        "recommend",
        &["--data", data.to_str().unwrap(), "--user", "nobody"],
    );
    common::assert_clean_failure(&unknown);
    assert!(common::stderr(&unknown).contains("nobody"));
}
