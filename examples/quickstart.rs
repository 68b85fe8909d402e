//! The main job: generate the default synthetic live-stream world (or load `--data` in
//! the native, KuaiLive or Twitch format), extract features, compose preferences, train
//! MSPA and every baseline, evaluate, print one table and write a report directory.
//!
//! ```text
//! cargo run --release --example quickstart -- [--data PATH --format native|kuailive|twitch]
//!     [--seed N | --seeds N,N,...] [--users N] [--authors N] [--out DIR] [--device NAME]
//!     [--epochs N] [--composer-epochs N] [--config FILE]
//! ```
//!
//! With `--data`, the reference-text metrics and the oracle row appear only when the data
//! has a planted truth (a world written by the `synth` example); the composers learn from
//! the template composer derived from the data, and datasets with broadcast times
//! (KuaiLive rooms, Twitch streams) are also evaluated under the live-candidate protocol.
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
use mspa::pipeline::{PipelineConfig, Progress, run_seeds};

#[path = "support/mod.rs"]
mod support;
use support::{cli, progress};

/// The end-to-end MSPA job on a synthetic world or a dataset.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    data: cli::DataArgs,
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
    #[command(flatten)]
    device: cli::DeviceArg,
    #[command(flatten)]
    training: cli::TrainingArgs,
    /// A JSON pipeline configuration.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    cli::main(run)
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config: PipelineConfig = match &args.config {
        Some(path) => cli::read_json(path)?,
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
    if let Some(epochs) = args.training.epochs {
        for train in config.baselines.trainers_mut() {
            train.epochs = epochs;
        }
    }
    args.training.apply(&mut config);
    config.out_dir = args.out.clone();
    if let Some(source) = args.data.source() {
        config.data = Some(source);
    }
    config.device = args.device.name.clone();
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
    for line in &report.notes {
        println!("{line}");
    }
    println!(
        "{:<22} {:>10} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "model",
        "Recall@10",
        "NDCG@10",
        "Recall@20",
        "NDCG@20",
        "new N@10",
        "rep N@10",
        "live N@10"
    );
    for m in &report.models {
        let (all, new, repeat) = (&m.all, &m.new.at, &m.repeat.at);
        let live = m
            .live_candidates
            .as_ref()
            .map_or("-".to_string(), |l| format!("{:.4}", l.at.ndcg10));
        println!(
            "{:<22} {:>10.4} {:>9.4} {:>10.4} {:>9.4} {:>9.4} {:>9.4} {:>9}",
            m.name,
            all.recall10,
            all.ndcg10,
            all.recall20,
            all.ndcg20,
            new.ndcg10,
            repeat.ndcg10,
            live
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
            t.bertscore_f1_text(),
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
    stages: progress::Stages<String>,
    total: usize,
}

impl ProgressLine {
    fn update(&mut self, p: &Progress) {
        let bar = self.stages.bar(&p.stage, || {
            let bar = ProgressBar::no_length();
            bar.set_prefix(p.stage.clone());
            self.total = usize::MAX; // restyled below
            bar
        });
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
        self.stages.finish();
    }
}
