//! The main job: generate the default synthetic live-stream world, extract features,
//! compose preferences, train MSPA and every baseline, evaluate, print one table and
//! write a report directory.
//!
//! ```text
//! cargo run --release --example quickstart -- [--seed N | --seeds N,N,...] [--users N]
//!     [--authors N] [--out DIR] [--device NAME] [--epochs N] [--composer-epochs N]
//!     [--config FILE]
//! ```
//!
//! `--seeds 42,1,2` runs the whole job once per seed (each into `OUT/seed-N/`) and writes
//! one report with every seed's results, the mean and standard deviation across seeds,
//! and MSPA's paired bootstrap intervals against every model per seed.
//!
//! `--config` reads a JSON [`PipelineConfig`] (missing fields take their defaults); the
//! other flags override it. The MiniLM weights for text features and BERTScore come from
//! `--model`, `MSPA_MINILM_DIR` or `../shared/models/all-MiniLM-L6-v2`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::ProgressBar;
use mspa::pipeline::{PipelineConfig, Progress, default_minilm_dir, run_seeds};

#[path = "support/progress.rs"]
mod progress;

/// The end-to-end MSPA job on a synthetic world.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Seed of the world (and of every model).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Several seeds, comma-separated: one job per seed, one combined report.
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<u64>,
    /// Number of users of the world.
    #[arg(long)]
    users: Option<usize>,
    /// Number of authors of the world.
    #[arg(long)]
    authors: Option<usize>,
    /// Report directory.
    #[arg(long, default_value = "target/mspa-report")]
    out: PathBuf,
    /// Burn device: flex, ndarray, wgpu, cuda or cpu.
    #[arg(long, default_value = "flex")]
    device: String,
    /// Epochs of MSPA and of the trained baselines.
    #[arg(long)]
    epochs: Option<usize>,
    /// Epochs of the learned composer.
    #[arg(long)]
    composer_epochs: Option<usize>,
    /// The MiniLM folder (text features, preference embeddings, BERTScore).
    #[arg(long)]
    model: Option<PathBuf>,
    /// A JSON pipeline configuration.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match main_inner(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main_inner(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config: PipelineConfig = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => PipelineConfig::default(),
    };
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None if args.seeds.is_empty() => vec![config.world.seed],
        None => args.seeds.clone(),
    };
    if let Some(users) = args.users {
        config.world.users = users;
    }
    if let Some(authors) = args.authors {
        config.world.authors = authors;
    }
    if let Some(epochs) = args.epochs {
        config.mspa.train.epochs = epochs;
        config.baselines.bprmf.train.epochs = epochs;
        config.baselines.vbpr.train.epochs = epochs;
        config.baselines.concat.train.epochs = epochs;
        config.baselines.sasrec.train.epochs = epochs;
        config.baselines.lightgcn.train.epochs = epochs;
        config.baselines.freedom.train.epochs = epochs;
    }
    if let Some(epochs) = args.composer_epochs {
        config.composer.epochs = epochs;
    }
    config.out_dir = args.out.clone();
    config.device = args.device.clone();
    config.minilm = args.model.clone().or_else(default_minilm_dir);
    if config.minilm.is_none() {
        eprintln!(
            "note: MiniLM not found (--model, MSPA_MINILM_DIR): no text features, no BERTScore"
        );
    }

    let mut bar = ProgressLine::default();
    let report = run_seeds(&config, &seeds, |p| bar.update(p))?;
    bar.finish();

    if report.seeds.len() > 1 {
        println!("seed {} (the first of {}):", seeds[0], seeds.len());
    }
    println!(
        "{:<22} {:>10} {:>9} {:>10} {:>9} {:>9} {:>9}",
        "model", "Recall@10", "NDCG@10", "Recall@20", "NDCG@20", "new N@10", "rep N@10"
    );
    for m in &report.models {
        println!(
            "{:<22} {:>10.4} {:>9.4} {:>10.4} {:>9.4} {:>9.4} {:>9.4}",
            m.name, m.recall10, m.ndcg10, m.recall20, m.ndcg20, m.new.ndcg10, m.repeat.ndcg10
        );
    }
    println!("MSPA minus each model, NDCG@10 [95% bootstrap CI over test users]:");
    for s in &report.significance {
        println!(
            "  {:<22} {:+.4} [{:+.4}, {:+.4}]{}",
            s.model,
            s.delta_ndcg10,
            s.ci95[0],
            s.ci95[1],
            if s.significant {
                ""
            } else {
                "  not significant"
            }
        );
    }
    if !report.seed_summary.is_empty() {
        println!(
            "across seeds {:?}: mean ± std",
            report.seeds.iter().map(|s| s.seed).collect::<Vec<_>>()
        );
        println!(
            "{:<22} {:>17} {:>17} {:>17}",
            "model", "Recall@10", "NDCG@10", "new N@10"
        );
        for row in &report.seed_summary {
            let cell = |k: &str| {
                let m = row.metrics.get(k).copied().unwrap_or_default();
                format!("{:.4} ± {:.4}", m.mean, m.std)
            };
            println!(
                "{:<22} {:>17} {:>17} {:>17}",
                row.model,
                cell("recall@10"),
                cell("ndcg@10"),
                cell("new ndcg@10")
            );
        }
    }
    let steps: Vec<String> = report.steps.iter().map(|v| format!("{v:.4}")).collect();
    println!("MSPA NDCG@10 per correction step: {}", steps.join(" -> "));
    for (name, t) in &report.composers {
        println!(
            "composer {name:<8} BLEU-4 {:6.2}  ROUGE-L {:.4}  BERTScore F1 {}  field F1 {:.4}",
            t.bleu4,
            t.rouge_l,
            t.bertscore_f1
                .map(|b| format!("{b:.4}"))
                .unwrap_or_else(|| "n/a".into()),
            t.field_f1
        );
    }
    println!(
        "{:.0} s in all; report: {}",
        report.seconds.get("total").copied().unwrap_or(0.0),
        config.out_dir.join("report.md").display()
    );
    Ok(())
}

/// One progress bar per pipeline stage on stderr; indicatif hides it when stderr is not a
/// terminal. A stage of unknown total (0) gets a spinner.
#[derive(Default)]
struct ProgressLine {
    stage: String,
    total: usize,
    bar: Option<ProgressBar>,
}

impl ProgressLine {
    fn update(&mut self, p: &Progress) {
        if self.bar.is_none() || p.stage != self.stage {
            self.finish();
            let bar = ProgressBar::no_length();
            bar.set_prefix(p.stage.clone());
            self.stage = p.stage.clone();
            self.total = usize::MAX; // restyled below
            self.bar = Some(bar);
        }
        let bar = self.bar.as_ref().expect("a bar for the current stage");
        if p.total != self.total {
            self.total = p.total;
            bar.set_style(progress::style(p.total as u64, false));
            if p.total > 0 {
                bar.set_length(p.total as u64);
            }
        }
        bar.set_message(p.message.clone());
        bar.set_position(p.done as u64);
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}
