//! Recommends authors to one user of a dataset and explains each suggestion.
//!
//! ```text
//! cargo run --release --example recommend -- --data PATH [--format native|kuailive|twitch]
//!     --user ID [--k 10] [--device NAME] [--checkpoint DIR] [--epochs N]
//!     [--composer-epochs N]
//! ```
//!
//! Without a checkpoint (or with an empty `--checkpoint DIR`) it trains the learned
//! composer and MSPA on the data and, with `--checkpoint`, saves both there; a later run
//! with the same `--checkpoint` loads them instead of training. The composer learns from
//! the world's reference texts on a synthetic world, else from the template composer
//! derived from the data: no `truth.json` is needed. The user's preference is composed
//! from all their tips.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mspa::align::recommender::{Query, recommend};
use mspa::core::ExternalId;
use mspa::pipeline::{DataSource, TrainedModels};

#[path = "support/mod.rs"]
mod support;
use support::cli;

/// Top-K authors for one user, each with its explanation: the composed preference, the
/// modality weights and the probability at each correction step.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The dataset: a directory (native: authors.jsonl, tips.csv, media; kuailive) or a
    /// CSV file (twitch).
    #[arg(long)]
    data: PathBuf,
    /// The format of `--data`: native, kuailive or twitch.
    #[arg(long, default_value = "native", value_parser = cli::parse_format)]
    format: mspa::core::Format,
    /// The user's id as written in the data.
    #[arg(long)]
    user: String,
    /// How many authors to recommend.
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[command(flatten)]
    device: cli::DeviceArg,
    /// Checkpoint folder: loaded when it holds a trained model, written otherwise.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    #[command(flatten)]
    training: cli::TrainingArgs,
}

fn main() -> ExitCode {
    cli::main(run)
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let device = args.device.open()?;
    let source = DataSource {
        path: args.data.clone(),
        format: args.format,
    };
    let dataset = mspa::core::loaders::load(args.format, &args.data, &mut |_| {})?;
    let external = ExternalId::parse(&args.user);
    let user = dataset.user_by_external(&external).ok_or_else(|| {
        format!(
            "user {} not found in {} ({} data)",
            args.user,
            args.data.display(),
            args.format
        )
    })?;
    let mut settings = mspa::pipeline::PipelineConfig::default();
    args.training.apply(&mut settings);
    let models = TrainedModels::load_or_train(
        &settings,
        &source,
        &dataset,
        args.checkpoint.as_deref(),
        &device,
        |line| eprintln!("{line}"),
    )?;

    let history = dataset.user_events(user);
    let at_ms = history.last().map(|t| t.timestamp_ms + 1).unwrap_or(0);
    let (rec, preference) = models.for_user(&dataset, user, at_ms)?;
    let query = Query {
        user,
        history,
        at_ms,
    };
    let top = recommend(&rec, query, args.k, false, dataset.n_authors())?;
    let authors: Vec<usize> = top.iter().map(|(a, _)| a.index()).collect();
    let explained = rec.explain(query, &authors)?;
    println!("user {} ({} tips)", args.user, history.len());
    println!("composed preference: {}", preference);
    for (rank, ((a, score), e)) in top.iter().zip(&explained).enumerate() {
        let author = dataset.author(*a);
        let tipped = history.iter().filter(|t| t.author == *a).count();
        // Scores are log-probabilities of the next tip: shown as percentages.
        let percent = |s: f32| 100.0 * f64::from(s).exp();
        let steps: Vec<String> = e
            .step_scores
            .iter()
            .map(|&s| format!("{:.1}%", percent(s)))
            .collect();
        println!(
            "{:>2}. {} \"{}\" next-tip probability {:.1}%{}",
            rank + 1,
            author.id,
            author.title,
            percent(*score),
            if tipped > 0 {
                format!(" (tipped {tipped}x before)")
            } else {
                String::new()
            }
        );
        println!(
            "    modality weights: visual {:.2}, audio {:.2}, text {:.2}; probability per correction step: {}",
            e.modality_weights[0],
            e.modality_weights[1],
            e.modality_weights[2],
            steps.join(" -> ")
        );
    }
    Ok(())
}
