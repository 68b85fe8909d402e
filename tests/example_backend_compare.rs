//! Runs the `backend_compare` example on a tiny workload and checks its JSON.

mod common;

#[test]
fn backend_compare_measures_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = common::run_example(
        "backend_compare",
        &[
            "--devices",
            "flex",
            "--scale",
            "0.002",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let stdout = common::stdout(&out);
    assert!(stdout.contains("vs flex"), "{stdout}");
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let has = |device: &str, stage: &str| {
        rows.iter()
            .any(|r| r["device"] == device && r["stage"] == stage)
    };
    for stage in [
        "bleu_100k",
        "logmel_1h",
        "jpeg_decode_resize",
        "score_256x1M",
    ] {
        assert!(has("cpu-rust", stage), "{stage}: {rows:?}");
    }
    for stage in ["mspa_train_step", "score_256x1M"] {
        assert!(has("flex", stage), "{stage}: {rows:?}");
    }
    for r in &rows {
        let ips = r["items_per_second"].as_f64().unwrap();
        assert!(ips > 0.0 && ips.is_finite(), "{r}");
        assert!(r["seconds"].as_f64().unwrap() >= 0.0, "{r}");
        assert!(r["peak_rss_bytes"].as_u64().is_some(), "{r}");
    }
}
