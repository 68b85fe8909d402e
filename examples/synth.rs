//! Generates the synthetic live-stream world: a native-format dataset with real media
//! (PNG frames, WAV clips, titles, descriptions), tips, and its truth (latent attributes,
//! preference trajectories, reference texts).
//!
//! ```text
//! cargo run --release --example synth -- --seed 42 --users 2000 --authors 300 --out DIR
//! cargo run --release --example synth -- --config world.json --out DIR
//! ```
//!
//! `--config` reads a JSON `SyntheticWorldConfig` (every field optional, see
//! `mspa_core::synth::SyntheticWorldConfig`); `--seed`, `--users` and `--authors` override it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;
use mspa::core::synth::{Progress, SyntheticWorldConfig, generate_with_progress};

#[path = "support/mod.rs"]
mod support;
use support::{cli, progress};

/// The help of `--device`, which this example only checks.
const DEVICE_HELP: &str = concat!(
    "Burn device (flex, ndarray, wgpu, cuda, cpu). The world needs no tensors, ",
    "so it is only checked, like every example's `--device`"
);

/// Writes a synthetic live-stream world, deterministic by seed.
#[derive(Parser)]
#[command(version, about)]
#[command(mut_arg("device", |a| a.help(DEVICE_HELP)))]
struct Args {
    /// Output directory (created if missing; files of the same names are replaced).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    device: cli::DeviceArg,
    /// JSON config with any of the world's knobs; the flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long)]
    seed: Option<u64>,
    /// Number of users.
    #[arg(long)]
    users: Option<usize>,
    /// Number of authors.
    #[arg(long)]
    authors: Option<usize>,
    /// No progress on stderr.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    cli::main(run)
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    args.device.open()?;
    let mut config = match &args.config {
        Some(path) => SyntheticWorldConfig::from_json_file(path)?,
        None => SyntheticWorldConfig::default(),
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if let Some(users) = args.users {
        config.users = users;
    }
    if let Some(authors) = args.authors {
        config.authors = authors;
    }
    config.validate()?;

    // One bar per stage (authors, then users); `--quiet` shows none.
    let stages: Mutex<progress::Stages<&str>> = Mutex::default();
    let quiet = args.quiet;
    let show = |name: &'static str, done: usize, total: usize, message: String| {
        if quiet {
            return;
        }
        let mut stages = stages.lock().unwrap_or_else(|e| e.into_inner());
        let bar = stages.bar(&name, || progress::bar(name, total as u64, false));
        bar.set_message(message);
        bar.set_position(done as u64);
    };
    let report = |p: Progress| match p {
        Progress::Authors { done, total } => show("authors", done, total, String::new()),
        Progress::Users { done, total, tips } => show("users", done, total, format!("{tips} tips")),
    };
    let summary = generate_with_progress(&config, &args.out, &report)?;
    stages.lock().unwrap_or_else(|e| e.into_inner()).finish();

    println!("synthetic world   {}", summary.out_dir.display());
    println!("seed              {}", config.seed);
    println!(
        "authors           {} ({} frames, {} audio clips, {} descriptions)",
        summary.authors, summary.frames, summary.audio_clips, summary.descriptions
    );
    println!("users             {}", summary.users);
    println!("tips              {}", summary.tips);
    println!("seconds           {:.2}", summary.elapsed.as_secs_f64());
    Ok(())
}
