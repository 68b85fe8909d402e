//! Runs the main job (`quickstart --data`) and `recommend` on small files in the KuaiLive
//! and Twitch layouts, which have no planted truth: every model but the oracle, both
//! protocols and the live-candidate one, no reference-text rows, and a composer taught by
//! the template composer derived from the data. A bad line is an error naming file and
//! line.

mod common;

use std::path::Path;

use serde_json::Value;

/// Every model of a report on data with content (FREEDOM, the last, needs some).
const MODELS: [&str; 11] = common::REPORT_MODELS;

/// Runs the quickstart (one epoch per model) on `data` with the `extra` flags and returns
/// its report.
fn run_quickstart(data: &Path, format: &str, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "--data",
        data.to_str().unwrap(),
        "--format",
        format,
        "--epochs",
        "1",
        "--composer-epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = common::run_example("quickstart", &args);
    assert!(run.status.success(), "stderr: {}", common::stderr(&run));
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

/// Runs the quickstart on `data` and returns its report, checking the `models` it must
/// hold.
fn quickstart(data: &Path, format: &str, out: &Path, models: &[&str]) -> Value {
    let report = run_quickstart(data, format, out, &[]);
    let names = models;
    let models = report["models"].as_array().unwrap();
    for &name in names {
        let m = models
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from report.json"));
        for protocol in ["new_authors_protocol", "live_candidates"] {
            let v = m[protocol]["ndcg@10"].as_f64();
            assert!(
                v.is_some_and(|v| (0.0..=1.0).contains(&v)),
                "{name} {protocol}"
            );
        }
    }
    assert!(!models.iter().any(|m| m["name"] == "Oracle"), "{report}");
    assert!(report.get("composers").is_none() && report.get("text").is_none());
    assert!(report.get("truth_checks").is_none(), "no truth, no checks");
    assert_eq!(report["world"]["format"], format);
    assert_eq!(report["dataset"]["live_schedule"], true);
    let teacher = report["composer_training"]["teacher"].as_str().unwrap();
    assert!(teacher.contains("template"), "{teacher}");
    assert!(
        report["composer_training"]["latest_pair_minus_validation_ms"]
            .as_i64()
            .unwrap()
            < 0
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("Live-candidate protocol") && !md.contains("BLEU"),
        "{md}"
    );
    report
}

#[test]
fn quickstart_and_recommend_run_on_kuailive_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kuailive");
    common::layouts::write_kuailive(&data);
    let report = quickstart(&data, "kuailive", &dir.path().join("report"), &MODELS);
    let notes = report["notes"].to_string();
    assert!(notes.contains("title_embeddings_pca128.npy"), "{notes}");
    assert!(notes.contains("modalities with content: text"), "{notes}");

    let run = common::run_example(
        "recommend",
        &[
            "--data",
            data.to_str().unwrap(),
            "--format",
            "kuailive",
            "--user",
            "11",
            "--k",
            "3",
            "--epochs",
            "1",
            "--composer-epochs",
            "1",
        ],
    );
    assert!(run.status.success(), "stderr: {}", common::stderr(&run));
    let stdout = common::stdout(&run);
    assert!(stdout.contains("composed preference: "), "{stdout}");
    let ranked = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert_eq!(ranked, 3, "{stdout}");
}

#[test]
fn quickstart_runs_on_twitch_behaviour_alone_and_names_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("100k.csv");
    common::layouts::write_twitch(&csv);
    let report = quickstart(&csv, "twitch", &dir.path().join("report"), &MODELS[..10]);
    assert!(
        report["notes"].to_string().contains("behaviour alone"),
        "{}",
        report["notes"]
    );

    // Precomputed vectors (one row per clip, an id file naming each row's streamer) give
    // the same data content in the visual slot: FREEDOM then runs too.
    let npy = dir.path().join("clips.npy");
    let ids = dir.path().join("clips.ids");
    let streamers: Vec<usize> = (0..24).map(|i| 500 + i % 12).collect();
    let values: Vec<f32> = streamers
        .iter()
        .flat_map(|s| [(s % 4) as f32, 1.0, 0.5 * (s % 3) as f32])
        .collect();
    common::layouts::write_npy(&npy, streamers.len(), 3, &values);
    let id_lines: Vec<String> = streamers.iter().map(|s| s.to_string()).collect();
    std::fs::write(&ids, id_lines.join("\n") + "\n").unwrap();
    let config = dir.path().join("vectors.json");
    let vectors = serde_json::json!({"vectors": [{"npy": npy, "ids": ids, "modality": "visual"}]});
    std::fs::write(&config, vectors.to_string()).unwrap();
    let out = dir.path().join("report-vectors");
    let config = ["--config", config.to_str().unwrap()];
    let report = run_quickstart(&csv, "twitch", &out, &config);
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("clips.npy pooled per author") && notes.contains("content: visual"),
        "{notes}"
    );
    assert!(
        report["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "FREEDOM")
    );

    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("1,2,3,not-a-step,5\n");
    let n_lines = text.lines().count();
    std::fs::write(&csv, text).unwrap();
    let run = common::run_example(
        "quickstart",
        &["--data", csv.to_str().unwrap(), "--format", "twitch"],
    );
    common::assert_clean_failure(&run);
    let err = common::stderr(&run);
    assert!(
        err.contains(&format!("100k.csv:{n_lines}: field `start`")),
        "{err}"
    );
}
