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
use mspa::modal::text::{BertEmbedder, default_minilm_dir};

#[path = "support/progress.rs"]
mod progress;

/// Feature extraction over a native-format dataset.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The dataset directory (authors.jsonl, tips.csv, media).
    #[arg(long)]
    data: PathBuf,
    /// Burn device: flex, ndarray, wgpu, cuda or cpu.
    #[arg(long, default_value = "flex")]
    device: String,
    /// Output feature file (safetensors); reused on the next run.
    #[arg(long)]
    out: PathBuf,
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
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let device = mspa::modal::device_from_name(&args.device)?;
    let dataset = mspa::core::load_native(&args.data)?;
    let text = match args.model.clone().or_else(default_minilm_dir) {
        Some(dir) => Some(BertEmbedder::from_pretrained(&dir, &device)?),
        None => {
            eprintln!(
                "note: no text model (--model, MSPA_MINILM_DIR): authors get no text features"
            );
            None
        }
    };
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
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
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
