//! Writing the report directory: `report.json`, `report.md` and the plots.

use std::path::Path;

use crate::plots::{bar_chart, line_chart};
use crate::report::{Report, write_atomic};

/// Writes `report.json`, `report.md` and the plots, each atomically.
pub fn write_report(out_dir: &Path, report: &Report) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    write_atomic(&out_dir.join("report.json"), json.as_bytes())?;
    write_atomic(&out_dir.join("report.md"), report.markdown().as_bytes())?;
    let plots = out_dir.join("plots");
    let loss: Vec<(String, Vec<(f64, f64)>)> = report
        .training
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                c.train_loss
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| ((i + 1) as f64, l))
                    .collect(),
            )
        })
        .collect();
    write_atomic(
        &plots.join("training.svg"),
        line_chart("Training loss", "epoch", "loss", &loss).as_bytes(),
    )?;
    let valid: Vec<(String, Vec<(f64, f64)>)> = report
        .training
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                c.valid_ndcg10
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| ((i + 1) as f64, v)))
                    .collect(),
            )
        })
        .collect();
    write_atomic(
        &plots.join("validation.svg"),
        line_chart("Validation NDCG@10", "epoch", "NDCG@10", &valid).as_bytes(),
    )?;
    let steps = vec![(
        "MSPA".to_string(),
        report
            .steps
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as f64, v))
            .collect(),
    )];
    write_atomic(
        &plots.join("steps.svg"),
        line_chart(
            "Test NDCG@10 per correction step",
            "step",
            "NDCG@10",
            &steps,
        )
        .as_bytes(),
    )?;
    let names: Vec<String> = report.modality_weights.keys().cloned().collect();
    let series: Vec<(String, Vec<f64>)> = ["visual", "audio", "text"]
        .iter()
        .enumerate()
        .map(|(m, label)| {
            (
                label.to_string(),
                report.modality_weights.values().map(|w| w[m]).collect(),
            )
        })
        .collect();
    write_atomic(
        &plots.join("modality_weights.svg"),
        bar_chart("Mean modality weights (top 10)", "weight", &names, &series).as_bytes(),
    )?;
    Ok(())
}
