//! Writing the report directory: `report.json`, `report.md` and the plots.

use std::path::Path;

use crate::plots::{bar_chart, heatmap, line_chart, scatter_chart};
use crate::report::{Curve, Report, write_atomic};

/// Named series of `(x, y)` points, as [`line_chart`] draws them.
type Lines = Vec<(String, Vec<(f64, f64)>)>;

/// `(first + i, v)` for the `i`-th value that is present.
fn numbered(values: impl IntoIterator<Item = Option<f64>>, first: usize) -> Vec<(f64, f64)> {
    values
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| ((first + i) as f64, v)))
        .collect()
}

/// One series per trained model: `values` of its curve by epoch (from 1).
fn per_epoch(report: &Report, values: impl Fn(&Curve) -> Vec<Option<f64>>) -> Lines {
    report
        .training
        .iter()
        .map(|(name, c)| (name.clone(), numbered(values(c), 1)))
        .collect()
}

/// Writes `report.json`, `report.md` and the plots, each atomically.
pub fn write_report(out_dir: &Path, report: &Report) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    write_atomic(&out_dir.join("report.json"), json.as_bytes())?;
    write_atomic(&out_dir.join("report.md"), report.markdown().as_bytes())?;
    let plots = out_dir.join("plots");
    let loss = per_epoch(report, |c| c.train_loss.iter().copied().map(Some).collect());
    let valid = per_epoch(report, |c| c.valid_ndcg10.clone());
    let steps = vec![(
        "MSPA".to_string(),
        numbered(report.steps.iter().copied().map(Some), 0),
    )];
    let charts: [(&str, &str, &str, &str, Lines); 3] = [
        ("training.svg", "Training loss", "epoch", "loss", loss),
        (
            "validation.svg",
            "Validation NDCG@10",
            "epoch",
            "NDCG@10",
            valid,
        ),
        (
            "steps.svg",
            "Test NDCG@10 per correction step",
            "step",
            "NDCG@10",
            steps,
        ),
    ];
    for (file, title, x_label, y_label, lines) in charts {
        let svg = line_chart(title, x_label, y_label, &lines);
        write_atomic(&plots.join(file), svg.as_bytes())?;
    }
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
    if let Some(checks) = &report.truth_checks {
        let map = &checks.map;
        let svg = scatter_chart(
            "Preferences (circles) and authors (squares) by category",
            "principal component 1",
            "principal component 2",
            &map.classes,
            &map.points,
        );
        write_atomic(&plots.join("preference_map.svg"), svg.as_bytes())?;
        let groups = &checks.attribution.groups;
        let rows: Vec<String> = groups.iter().map(|g| g.strongest_field.clone()).collect();
        let notes: Vec<String> = groups
            .iter()
            .map(|g| format!("(n = {})", g.users))
            .collect();
        let values: Vec<Vec<f64>> = groups.iter().map(|g| g.weights.to_vec()).collect();
        let columns = ["visual", "audio", "text"].map(String::from);
        let svg = heatmap(
            "MSPA's modality weights by the user's strongest field",
            &rows,
            &notes,
            &columns,
            &values,
        );
        write_atomic(&plots.join("modality_attention.svg"), svg.as_bytes())?;
    }
    Ok(())
}
