//! Runs the `compose` example on a tiny synthetic world: the JSON report (one object, a key
//! per composer with the text and field metrics on the same held-out users), the feature
//! cache beside the world, the text report, and clean failures.

mod common;

use std::path::Path;

use mspa::core::synth::{SyntheticWorldConfig, generate};
use serde_json::Value;

fn tiny_world(dir: &Path) {
    let config = SyntheticWorldConfig {
        seed: 3,
        authors: 12,
        users: 40,
        frames_per_author: 1,
        frame_size: 16,
        audio_seconds: 0.25,
        sample_rate: 8_000,
        ..Default::default()
    };
    generate(&config, dir).expect("tiny world");
}

fn compose(data: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--data",
        data.to_str().unwrap(),
        "--device",
        "flex",
        "--epochs",
        "2",
    ];
    args.extend_from_slice(extra);
    common::run_example("compose", &args)
}

#[test]
fn json_report_has_every_composer_on_the_same_users() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("world");
    tiny_world(&data);

    let out = compose(&data, &["--users", "4", "--json"]);
    assert!(out.status.success(), "stderr: {}", common::stderr(&out));
    let report: Value =
        serde_json::from_str(&common::stdout(&out)).expect("stdout is exactly one JSON object");
    assert!(
        data.join("features.safetensors").is_file(),
        "features are cached"
    );
    assert_eq!(report["evaluated"], 4, "{report}");
    assert!(report["heldout_users"].as_u64().unwrap() >= 4, "{report}");
    let with_bert = !report["text_model"].is_null();
    for name in ["learned", "template", "nearest"] {
        let c = &report[name];
        assert_eq!(c["n"], 4, "{name}: {c}");
        let bleu = c["bleu4"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&bleu), "{name} BLEU {bleu}");
        for key in ["rouge_l", "field_f1"] {
            let v = c[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{name} {key} {v}");
        }
        if with_bert {
            let b = c["bertscore_f1"]
                .as_f64()
                .expect("BERTScore with a text model");
            assert!(b > 0.0 && b <= 1.0 + 1e-6, "{name} BERTScore {b}");
        } else {
            assert!(c["bertscore_f1"].is_null(), "{name}: {c}");
        }
        assert_eq!(c["per_field"].as_array().unwrap().len(), 7, "{name}: {c}");
        assert_eq!(c["parse_failures"], 0, "{name}: {c}");
    }
    let examples = report["examples"].as_array().unwrap();
    assert_eq!(examples.len(), 4);
    for ex in examples {
        let reference = ex["reference"].as_str().unwrap();
        assert!(reference.starts_with("categories: "), "{reference}");
        for name in ["learned", "template", "nearest"] {
            let text = ex[name].as_str().unwrap();
            assert!(
                text.starts_with("categories: ") && text.contains(" | tipping: "),
                "{text}"
            );
        }
    }

    // The text report reuses the cached features and prints the table.
    let out = compose(&data, &["--users", "2"]);
    assert!(out.status.success(), "stderr: {}", common::stderr(&out));
    let err = common::stderr(&out);
    assert!(err.contains("0 computed"), "features not reused: {err}");
    let text = common::stdout(&out);
    assert!(text.contains("reference :"), "{text}");
    for name in ["learned", "template", "nearest"] {
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-world");
    let out = compose(&missing, &["--json"]);
    common::assert_clean_failure(&out);
    assert!(
        common::stderr(&out).starts_with("error: "),
        "{}",
        common::stderr(&out)
    );
    assert!(common::stdout(&out).is_empty());

    let data = dir.path().join("world");
    tiny_world(&data);
    let out = compose(&data, &["--users", "0"]);
    common::assert_clean_failure(&out);
    assert!(
        common::stderr(&out).contains("--users"),
        "{}",
        common::stderr(&out)
    );

    let bad_config = dir.path().join("bad.json");
    std::fs::write(&bad_config, r#"{"batch_size": 0}"#).unwrap();
    let out = compose(&data, &["--config", bad_config.to_str().unwrap()]);
    common::assert_clean_failure(&out);
    assert!(
        common::stderr(&out).contains("batch_size"),
        "{}",
        common::stderr(&out)
    );
}
