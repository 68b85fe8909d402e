//! Extracts visual, audio and text features of every author of a native-format dataset.
//!
//! ```text
//! cargo run --release --example extract -- --data DIR --device NAME --out FILE \
//!     [--model MINILM_DIR] [--skip-invalid] [--json]
//! ```
//!
//! The visual and audio encoders are freshly initialised from `--seed` (pretrain them with
//! `mspa::modal::pretrain` for informative vectors); the text encoder is the pretrained
//! MiniLM from `--model`, `MSPA_MINILM_DIR` or `../shared/models/all-MiniLM-L6-v2`, and
//! without one authors get no text features. A second run with the same `--out` reuses
//! every author whose media and encoders are unchanged.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use indicatif::ProgressBar;
use mspa::modal::features::{ExtractOptions, ExtractorConfig, FeatureExtractor};

#[path = "support/mod.rs"]
mod support;
use support::{cli, progress};

/// Feature extraction over a native-format dataset.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Output feature file (safetensors); reused on the next run.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The dataset directory (authors.jsonl, tips.csv, media).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    #[command(flatten)]
    device: cli::DeviceArg,
    /// Folder of a Hugging Face BERT-family model for the text features.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Skip files that cannot be decoded (and list them) instead of failing.
    #[arg(long)]
    skip_invalid: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Seed of the encoder weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> ExitCode {
    cli::main(run)
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let device = args.device.open()?;
    let dataset = mspa::core::load_native(&args.data)?;
    let (_, text) =
        cli::text_encoder(args.model.as_ref(), &device, "authors get no text features")?;
    let extractor = FeatureExtractor::with_default_encoders(
        ExtractorConfig::default(),
        text,
        args.seed,
        &device,
    )?;
    // `--json` keeps stderr free of progress.
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        progress::bar("extracting authors", dataset.n_authors() as u64, false)
    };
    let extraction = extractor.extract_cached(
        &dataset,
        &args.out,
        ExtractOptions {
            skip_invalid: args.skip_invalid,
        },
        progress::counter(&bar),
    )?;
    bar.finish();
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let report = serde_json::json!({
            "authors": dataset.n_authors(),
            "extracted": extraction.features.len(),
            "computed": extraction.computed,
            "reused": extraction.reused,
            "skipped": extraction.skipped,
            "seconds": seconds,
        });
        println!("{report}");
    } else {
        println!(
            "{} authors: {} computed, {} reused, {} files skipped, {seconds:.1} s -> {}",
            dataset.n_authors(),
            extraction.computed,
            extraction.reused,
            extraction.skipped.len(),
            args.out.display()
        );
        for s in &extraction.skipped {
            println!("  skipped {} ({}): {}", s.path.display(), s.author, s.error);
        }
    }
    Ok(())
}
