//! Runs the main job (`quickstart`) on a tiny world with one epoch per model, for two
//! seeds: it must finish, print the table, and write report.json (with every required
//! key and model, significance against every model, every seed and the summary across
//! seeds), report.md and the plots.

mod common;

use serde_json::Value;

/// Every model row of the report on the synthetic world: the oracle comes last.
fn models() -> Vec<&'static str> {
    common::REPORT_MODELS
        .into_iter()
        .chain(["Oracle"])
        .collect()
}

#[test]
fn quickstart_writes_a_complete_report() {
    let names = models();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("report");
    let out = common::run_example(
        "quickstart",
        &[
            "--users",
            "40",
            "--authors",
            "12",
            "--seeds",
            "3,4",
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
    for &name in &names {
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
    for &name in &names {
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
    // MSPA against every other model, with an interval around the difference.
    let significance = report["significance"].as_array().unwrap();
    for name in &names[1..] {
        let s = significance
            .iter()
            .find(|s| s["model"] == *name)
            .unwrap_or_else(|| panic!("{name} missing from significance"));
        let d = s["delta_ndcg@10"].as_f64().unwrap();
        let ci: Vec<f64> = s["ci95"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            ci.len() == 2 && ci[0] <= d + 1e-12 && d <= ci[1] + 1e-12,
            "{s}"
        );
    }
    // Both seeds, each with its models and significance, and the summary.
    let seeds = report["seeds"].as_array().unwrap();
    assert_eq!(seeds.len(), 2);
    assert_eq!(
        (seeds[0]["seed"].as_u64(), seeds[1]["seed"].as_u64()),
        (Some(3), Some(4))
    );
    assert_eq!(seeds[0]["models"], report["models"]);
    for seed in seeds {
        assert_eq!(seed["models"].as_array().unwrap().len(), models.len());
        assert_eq!(
            seed["significance"].as_array().unwrap().len(),
            models.len() - 1
        );
    }
    let summary = report["seed_summary"].as_array().unwrap();
    let mspa = summary.iter().find(|r| r["model"] == "MSPA").unwrap();
    assert_eq!(mspa["seeds"], 2);
    let mean = mspa["metrics"]["ndcg@10"]["mean"].as_f64().unwrap();
    let both: Vec<f64> = seeds
        .iter()
        .map(|s| s["models"][0]["ndcg@10"].as_f64().unwrap())
        .collect();
    assert!((mean - (both[0] + both[1]) / 2.0).abs() < 1e-12);
    assert!(mspa["metrics"]["ndcg@10"]["std"].as_f64().unwrap() >= 0.0);
    // The composer never trained on an evaluated user at or after its validation time.
    let composer = &report["composer_training"];
    assert!(composer["train_pairs"].as_u64().unwrap() > 0, "{composer}");
    assert!(
        composer["latest_pair_minus_validation_ms"]
            .as_i64()
            .unwrap()
            < 0,
        "{composer}"
    );
    // Each seed's own report folder.
    for seed in ["seed-3", "seed-4"] {
        assert!(out_dir.join(seed).join("report.json").is_file(), "{seed}");
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
    // The checks against the planted truth: a probe per attribute field, the attention
    // groups and the three single-modality checks.
    let checks = &report["truth_checks"];
    let fields = checks["feature_probe"]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 6, "{checks}");
    for f in fields {
        let all = f["all"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&all), "{f}");
        assert_eq!(f["modalities"].as_array().unwrap().len(), 3, "{f}");
    }
    let attribution = &checks["attribution"];
    let users: u64 = attribution["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["users"].as_u64().unwrap())
        .sum();
    assert_eq!(users, report["dataset"]["test_users"].as_u64().unwrap());
    for c in attribution["checks"].as_array().unwrap() {
        let d = &c["difference"];
        assert!(
            d["lo"].as_f64().unwrap() <= d["hi"].as_f64().unwrap(),
            "{c}"
        );
    }
    assert!(!report["text"]["per_field"].as_array().unwrap().is_empty());
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("## Checks against the planted truth"), "{md}");
    assert!(md.contains("| MSPA |"), "{md}");
    assert!(md.contains("## MSPA against each model"), "{md}");
    assert!(md.contains("## Across seeds (3, 4)"), "{md}");
    for plot in [
        "training.svg",
        "validation.svg",
        "steps.svg",
        "modality_weights.svg",
        "preference_map.svg",
        "modality_attention.svg",
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
