//! The end-to-end report: what `report.json` holds, its Markdown rendering, and atomic
//! writing of the report directory.

use std::collections::BTreeMap;

use mspa_metrics::{MeanMetrics, RankingReport};
use serde::Serialize;

mod truth_checks;

pub use truth_checks::{
    AttentionGroup, AttributionCheck, DiscoveryCeiling, FeatureProbe, ModalityAttribution,
    PreferenceMap, ProbeRow, TruthChecks,
};

/// Writes a whole file through a temporary file and a rename (re-exported from
/// `mspa-core`).
pub use mspa_core::fs::write_atomic;

/// Recall and NDCG at the cut-offs 10 and 20.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Cutoffs {
    /// Recall@10.
    #[serde(rename = "recall@10")]
    pub recall10: f64,
    /// NDCG@10.
    #[serde(rename = "ndcg@10")]
    pub ndcg10: f64,
    /// Recall@20.
    #[serde(rename = "recall@20")]
    pub recall20: f64,
    /// NDCG@20.
    #[serde(rename = "ndcg@20")]
    pub ndcg20: f64,
}

impl Cutoffs {
    /// The four numbers of a [`MeanMetrics`] (zeros where a cut-off was not evaluated).
    pub fn from_means(m: &MeanMetrics) -> Cutoffs {
        Cutoffs {
            recall10: m.recall(10).unwrap_or(0.0),
            ndcg10: m.ndcg(10).unwrap_or(0.0),
            recall20: m.recall(20).unwrap_or(0.0),
            ndcg20: m.ndcg(20).unwrap_or(0.0),
        }
    }
}

/// Recall and NDCG at 10 and 20 of one group of targets.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct AtK {
    /// The metrics (flattened into this object in JSON).
    #[serde(flatten)]
    pub at: Cutoffs,
    /// Users with a target in this group.
    pub users: usize,
}

impl AtK {
    /// The four numbers and the users of a [`MeanMetrics`] (zeros where a cut-off was not
    /// evaluated).
    pub fn from_means(m: &MeanMetrics) -> AtK {
        AtK {
            at: Cutoffs::from_means(m),
            users: m.users,
        }
    }
}

/// One model's row of the report (repeats-allowed protocol, split by target kind).
#[derive(Clone, Debug, Serialize)]
pub struct ModelRow {
    /// The model's name.
    pub name: String,
    /// Recall and NDCG over all test users (flattened into this object in JSON).
    #[serde(flatten)]
    pub all: Cutoffs,
    /// Users whose test author is new to them.
    pub new: AtK,
    /// Users whose test author is a repeat.
    pub repeat: AtK,
    /// The same model under the "new authors" protocol (seen authors excluded).
    pub new_authors_protocol: AtK,
    /// The same model under the live-candidate protocol (only the authors live at the
    /// target's time, and the target, are ranked), when the data has broadcast times.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_candidates: Option<AtK>,
    /// Seconds spent training.
    pub train_seconds: f64,
}

impl ModelRow {
    /// The value of one of [`SUMMARY_METRICS`] (0 for an unknown name).
    pub fn metric(&self, key: &str) -> f64 {
        match key {
            "recall@10" => self.all.recall10,
            "ndcg@10" => self.all.ndcg10,
            "recall@20" => self.all.recall20,
            "ndcg@20" => self.all.ndcg20,
            "new ndcg@10" => self.new.at.ndcg10,
            "repeat ndcg@10" => self.repeat.at.ndcg10,
            "discovery recall@10" => self.new_authors_protocol.at.recall10,
            _ => 0.0,
        }
    }

    /// A row from the two protocol reports.
    pub fn new(
        name: &str,
        repeats: &RankingReport,
        new_authors: &RankingReport,
        train_seconds: f64,
    ) -> ModelRow {
        ModelRow {
            name: name.to_string(),
            all: Cutoffs::from_means(&repeats.all),
            new: AtK::from_means(&repeats.new),
            repeat: AtK::from_means(&repeats.repeat),
            new_authors_protocol: AtK::from_means(&new_authors.all),
            live_candidates: None,
            train_seconds,
        }
    }

    /// The row with the live-candidate protocol's report (`None`: not evaluated).
    pub fn with_live(mut self, live: Option<&RankingReport>) -> ModelRow {
        self.live_candidates = live.map(|r| AtK::from_means(&r.all));
        self
    }
}

/// Text metrics of one composer on the held-out users.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TextRow {
    /// Corpus BLEU-4 (sacrebleu, 0–100).
    pub bleu4: f64,
    /// ROUGE-L F1 (0–1).
    pub rouge_l: f64,
    /// BERTScore F1 with MiniLM (0–1), when the model was available.
    pub bertscore_f1: Option<f64>,
    /// Micro-averaged per-field F1 (0–1).
    pub field_f1: f64,
    /// Per field: F1 and the share of texts whose values equal the reference's (the
    /// truth at the same time, on the world).
    pub per_field: Vec<FieldAccuracy>,
}

/// How well composed texts state one field.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FieldAccuracy {
    /// The field.
    pub field: String,
    /// F1 of the stated values against the reference's.
    pub f1: f64,
    /// Share of texts whose values equal the reference's exactly.
    pub exact_match: f64,
}

impl TextRow {
    /// BERTScore F1 with four decimals, or `n/a` without the model.
    pub fn bertscore_f1_text(&self) -> String {
        self.bertscore_f1
            .map(|b| format!("{b:.4}"))
            .unwrap_or_else(|| "n/a".into())
    }
}

/// MSPA against one other model: the paired difference of test NDCG@10 over the same
/// test users with its 95% bootstrap interval.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Significance {
    /// The other model.
    pub model: String,
    /// MSPA's mean NDCG@10 minus the other model's.
    #[serde(rename = "delta_ndcg@10")]
    pub delta_ndcg10: f64,
    /// The 95% percentile-bootstrap interval of the difference (users resampled).
    pub ci95: [f64; 2],
    /// Whether the interval excludes zero.
    pub significant: bool,
}

/// The correction steps on a shortlist against correcting over every author: the same
/// trained MSPA evaluated both ways on the same test users.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ShortlistCheck {
    /// Candidates the correction steps re-rank (the top of step 0).
    pub size: usize,
    /// Test NDCG@10 with the shortlist (MSPA's row).
    #[serde(rename = "ndcg@10")]
    pub ndcg10: f64,
    /// Test NDCG@10 correcting over every author.
    #[serde(rename = "all_authors_ndcg@10")]
    pub all_authors_ndcg10: f64,
    /// Shortlist minus all authors, paired over the test users, with its 95% interval.
    pub difference: Significance,
}

/// Mean and (sample) standard deviation of a metric across seeds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct MeanStd {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation (0 for a single seed).
    pub std: f64,
}

impl MeanStd {
    /// Mean and sample standard deviation of `values` (zeros when empty).
    pub fn of(values: &[f64]) -> MeanStd {
        let n = values.len();
        if n == 0 {
            return MeanStd::default();
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        MeanStd { mean, std }
    }
}

/// One seed's results in a several-seed report.
#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    /// The seed (of the world and of every model).
    pub seed: u64,
    /// One row per model, as in [`Report::models`].
    pub models: Vec<ModelRow>,
    /// MSPA against every other model, as in [`Report::significance`].
    pub significance: Vec<Significance>,
}

/// The names of the metrics a [`SeedSummary`] holds, in table order.
pub const SUMMARY_METRICS: [&str; 7] = [
    "recall@10",
    "ndcg@10",
    "recall@20",
    "ndcg@20",
    "new ndcg@10",
    "repeat ndcg@10",
    "discovery recall@10",
];

/// One model's metrics across seeds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SeedSummary {
    /// The model.
    pub model: String,
    /// The number of seeds it was run on.
    pub seeds: usize,
    /// Mean and standard deviation per metric (keys: [`SUMMARY_METRICS`]).
    pub metrics: BTreeMap<String, MeanStd>,
}

impl SeedSummary {
    /// The summary of every model over `seeds`, in the first seed's model order.
    pub fn of(seeds: &[SeedResult]) -> Vec<SeedSummary> {
        let Some(first) = seeds.first() else {
            return Vec::new();
        };
        first
            .models
            .iter()
            .map(|m| {
                let rows: Vec<&ModelRow> = seeds
                    .iter()
                    .filter_map(|s| s.models.iter().find(|r| r.name == m.name))
                    .collect();
                let metrics = SUMMARY_METRICS
                    .iter()
                    .map(|&key| {
                        let values: Vec<f64> = rows.iter().map(|r| r.metric(key)).collect();
                        (key.to_string(), MeanStd::of(&values))
                    })
                    .collect();
                SeedSummary {
                    model: m.name.clone(),
                    seeds: rows.len(),
                    metrics,
                }
            })
            .collect()
    }
}

/// Training curve of one model.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Curve {
    /// Mean training loss per epoch.
    pub train_loss: Vec<f64>,
    /// Validation NDCG@10 per epoch (`None` where not validated).
    pub valid_ndcg10: Vec<Option<f64>>,
}

/// Everything `report.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The synthetic world's configuration, or the dataset's path and format.
    pub world: serde_json::Value,
    /// What the data gave the models (modalities with content, extra feature sources,
    /// behaviour only).
    pub notes: Vec<String>,
    /// The device name.
    pub device: String,
    /// Dataset sizes.
    pub dataset: serde_json::Value,
    /// The ranking protocol of the main numbers.
    pub protocol: String,
    /// One row per model, MSPA first, the oracle last.
    pub models: Vec<ModelRow>,
    /// MSPA against every other model (paired bootstrap over the test users).
    pub significance: Vec<Significance>,
    /// How the composer was trained: pairs, users and the leak-free cut (every training
    /// pair of an evaluated user lies before its validation time).
    pub composer_training: serde_json::Value,
    /// Every seed's models and significance, when the job ran several seeds (the first
    /// seed's are also the top-level `models` and `significance`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<SeedResult>,
    /// Mean and standard deviation across `seeds` per model and metric.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seed_summary: Vec<SeedSummary>,
    /// MSPA's test NDCG@10 at each correction step (step 0 first).
    pub steps: Vec<f64>,
    /// MSPA's correction steps on its shortlist against the same model correcting over
    /// every author, when MSPA corrects a shortlist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortlist: Option<ShortlistCheck>,
    /// Text metrics of MSPA's composer (`learned`) against the reference texts, when the
    /// data has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<TextRow>,
    /// Text metrics of every composer (`learned`, `template`, `nearest`) against the
    /// reference texts; empty (and left out of the JSON) when the data has none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub composers: BTreeMap<String, TextRow>,
    /// MSPA's mean modality weights (visual, audio, text) over the test users' top 10.
    pub modality_weights: BTreeMap<String, [f64; 3]>,
    /// Training curves per model.
    pub training: BTreeMap<String, Curve>,
    /// Seconds per stage (and `total`).
    pub seconds: BTreeMap<String, f64>,
    /// Example recommendations with explanations (a few test users).
    pub examples: Vec<serde_json::Value>,
    /// Checks against the planted truth (feature probes, modality attribution), when
    /// the data has one and MSPA was trained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truth_checks: Option<TruthChecks>,
}

impl Report {
    /// The Markdown version of the report.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        md.push_str("# MSPA report\n\n");
        md.push_str(&format!(
            "Device `{}`; dataset {}; protocol: {} (full ranking over all authors, leave-last-out test).\n\n",
            self.device, self.dataset, self.protocol
        ));
        for line in &self.notes {
            md.push_str(&format!("- {line}\n"));
        }
        if !self.notes.is_empty() {
            md.push('\n');
        }
        md.push_str("## Ranking\n\n");
        md.push_str("| model | Recall@10 | NDCG@10 | Recall@20 | NDCG@20 | new NDCG@10 | repeat NDCG@10 | new-authors protocol NDCG@10 | train s |\n");
        md.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for m in &self.models {
            md.push_str(&format!(
                "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.1} |\n",
                m.name,
                m.all.recall10,
                m.all.ndcg10,
                m.all.recall20,
                m.all.ndcg20,
                m.new.at.ndcg10,
                m.repeat.at.ndcg10,
                m.new_authors_protocol.at.ndcg10,
                m.train_seconds
            ));
        }
        if self.models.iter().any(|m| m.live_candidates.is_some()) {
            md.push_str("\n## Live-candidate protocol\n\nOnly the authors live at the target's time (and the target) are ranked.\n\n| model | Recall@10 | NDCG@10 | Recall@20 | NDCG@20 |\n|---|---|---|---|---|\n");
            for m in &self.models {
                if let Some(live) = &m.live_candidates {
                    md.push_str(&format!(
                        "| {} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
                        m.name, live.at.recall10, live.at.ndcg10, live.at.recall20, live.at.ndcg20
                    ));
                }
            }
        }
        if !self.significance.is_empty() {
            md.push_str("\n## MSPA against each model\n\nPaired difference of test NDCG@10 (MSPA minus the model) over the same test users, with its 95% bootstrap interval (users resampled).\n\n| model | delta NDCG@10 | 95% CI | significant |\n|---|---|---|---|\n");
            for s in &self.significance {
                md.push_str(&format!(
                    "| {} | {:+.4} | [{:+.4}, {:+.4}] | {} |\n",
                    s.model,
                    s.delta_ndcg10,
                    s.ci95[0],
                    s.ci95[1],
                    if s.significant { "yes" } else { "no" }
                ));
            }
        }
        if !self.seed_summary.is_empty() {
            let seeds: Vec<String> = self.seeds.iter().map(|s| s.seed.to_string()).collect();
            md.push_str(&format!(
                "\n## Across seeds ({})\n\nMean ± standard deviation over the seeds.\n\n| model |",
                seeds.join(", ")
            ));
            for key in SUMMARY_METRICS {
                md.push_str(&format!(" {key} |"));
            }
            md.push_str(&format!(
                "\n|---|{}\n",
                "---|".repeat(SUMMARY_METRICS.len())
            ));
            for row in &self.seed_summary {
                md.push_str(&format!("| {} |", row.model));
                for key in SUMMARY_METRICS {
                    let m = row.metrics.get(key).copied().unwrap_or_default();
                    md.push_str(&format!(" {:.4} ± {:.4} |", m.mean, m.std));
                }
                md.push('\n');
            }
            md.push_str(
                "\nMSPA against each model, per seed (delta NDCG@10 [95% CI]):\n\n| model |",
            );
            for s in &self.seeds {
                md.push_str(&format!(" seed {} |", s.seed));
            }
            md.push_str(&format!("\n|---|{}\n", "---|".repeat(self.seeds.len())));
            for s0 in self
                .seeds
                .first()
                .map(|s| s.significance.as_slice())
                .unwrap_or(&[])
            {
                md.push_str(&format!("| {} |", s0.model));
                for seed in &self.seeds {
                    match seed.significance.iter().find(|s| s.model == s0.model) {
                        Some(s) => md.push_str(&format!(
                            " {:+.4} [{:+.4}, {:+.4}]{} |",
                            s.delta_ndcg10,
                            s.ci95[0],
                            s.ci95[1],
                            if s.significant { "" } else { " (n.s.)" }
                        )),
                        None => md.push_str(" - |"),
                    }
                }
                md.push('\n');
            }
        }
        md.push_str("\n## Composer training\n\n");
        let c = &self.composer_training;
        md.push_str(&format!(
            "{} training pairs of {} users, {} held-out users; {}: the training pair closest to an evaluated user's validation tip lies {} ms before it.\n",
            c["train_pairs"],
            c["train_users"],
            c["heldout_users"],
            c["protocol"].as_str().unwrap_or("leak-free pairs"),
            c["latest_pair_minus_validation_ms"]
                .as_i64()
                .map_or("-".to_string(), |v| (-v).to_string()),
        ));
        md.push_str("\n## Self-correction\n\nTest NDCG@10 of MSPA at each correction step: ");
        let steps: Vec<String> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, v)| format!("step {i}: {v:.4}"))
            .collect();
        md.push_str(&steps.join(", "));
        if let Some(c) = &self.shortlist {
            md.push_str(&format!(
                ".\n\nThe correction steps re-rank the top {} of step 0: NDCG@10 {:.4}; the same model correcting over every author: {:.4} (difference {:+.4}, 95% CI [{:+.4}, {:+.4}]{}).\n",
                c.size,
                c.ndcg10,
                c.all_authors_ndcg10,
                c.difference.delta_ndcg10,
                c.difference.ci95[0],
                c.difference.ci95[1],
                if c.difference.significant { "" } else { ", n.s." },
            ));
        }
        if !self.composers.is_empty() {
            md.push_str("\n\n## Composed preferences (held-out users)\n\n| composer | BLEU-4 | ROUGE-L | BERTScore F1 | field F1 |\n|---|---|---|---|---|\n");
        } else {
            md.push('\n');
        }
        for (name, t) in &self.composers {
            md.push_str(&format!(
                "| {name} | {:.2} | {:.4} | {} | {:.4} |\n",
                t.bleu4,
                t.rouge_l,
                t.bertscore_f1_text(),
                t.field_f1
            ));
        }
        if let Some(t) = self
            .composers
            .get("learned")
            .filter(|t| !t.per_field.is_empty())
        {
            md.push_str("\nThe learned composer per field against the reference (the truth at the same time):\n\n| field | F1 | exact |\n|---|---|---|\n");
            for f in &t.per_field {
                md.push_str(&format!(
                    "| {} | {:.4} | {:.4} |\n",
                    f.field, f.f1, f.exact_match
                ));
            }
        }
        if let Some(checks) = &self.truth_checks {
            md.push_str(&checks.markdown());
        }
        md.push_str("\n## Modality weights (mean over test users' top 10)\n\n| model | visual | audio | text |\n|---|---|---|---|\n");
        for (name, w) in &self.modality_weights {
            md.push_str(&format!(
                "| {name} | {:.3} | {:.3} | {:.3} |\n",
                w[0], w[1], w[2]
            ));
        }
        md.push_str("\n## Seconds per stage\n\n");
        for (stage, s) in &self.seconds {
            md.push_str(&format!("- {stage}: {s:.1}\n"));
        }
        md.push_str(
            "\nPlots: `plots/training.svg`, `plots/steps.svg`, `plots/modality_weights.svg` (and, with a planted truth, `plots/preference_map.svg` and `plots/modality_attention.svg`).\n",
        );
        md
    }
}
