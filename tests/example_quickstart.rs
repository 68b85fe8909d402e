//! Runs the main job (`quickstart`) on a tiny world with one epoch per model: it must
//! finish, print the table, and write report.json (with every required key and model),
//! report.md and the plots.

mod common;

use serde_json::Value;

const MODELS: [&str; 8] = [
    "MSPA",
    "MSPA (T=0)",
    "MSPA (no text)",
    "MostPop",
    "BPR-MF",
    "VBPR",
    "Concat",
    "Oracle",
];

#[test]
fn quickstart_writes_a_complete_report() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("report");
    let out = common::run_example(
        "quickstart",
        &[
            "--users",
            "40",
            "--authors",
            "12",
            "--seed",
            "3",
            "--epochs",
            "1",
            "--composer-epochs",
            "1",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "stderr: {}", common::stderr(&out));
    let stdout = common::stdout(&out);
    for name in MODELS {
        assert!(
            stdout.contains(name),
            "{name} missing from the table:\n{stdout}"
        );
    }

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["world"]["users"], 40);
    assert_eq!(report["world"]["authors"], 12);
    assert_eq!(report["device"], "flex");
    let models = report["models"].as_array().unwrap();
    for name in MODELS {
        let m = models
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from report.json"));
        for key in ["recall@10", "ndcg@10", "recall@20", "ndcg@20"] {
            let v = m[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{name} {key} = {v}");
            assert!(
                m["new"][key].is_f64() && m["repeat"][key].is_f64(),
                "{name} {key}"
            );
        }
    }
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "T = 2 gives three steps");
    for key in ["bleu4", "rouge_l"] {
        assert!(report["text"][key].is_f64(), "text.{key}");
    }
    assert!(report["text"].get("bertscore_f1").is_some());
    for stage in ["world", "features", "compose", "total"] {
        assert!(
            report["seconds"][stage].as_f64().unwrap() >= 0.0,
            "seconds.{stage}"
        );
    }
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("| MSPA |"), "{md}");
    for plot in [
        "training.svg",
        "validation.svg",
        "steps.svg",
        "modality_weights.svg",
    ] {
        let svg = std::fs::read_to_string(out_dir.join("plots").join(plot)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{plot}"
        );
    }
}

#[test]
fn quickstart_rejects_a_bad_config_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.json");
    std::fs::write(&config, "{\"world\": {\"users\": \"many\"}}").unwrap();
    let out = common::run_example(
        "quickstart",
        &[
            "--config",
            config.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ],
    );
    common::assert_clean_failure(&out);
    assert!(
        common::stderr(&out).contains("bad.json"),
        "{}",
        common::stderr(&out)
    );
}
