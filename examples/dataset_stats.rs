//! Prints the statistics of a dataset in the native, Twitch or KuaiLive format.
//!
//! ```text
//! cargo run --release --example dataset_stats -- --format native --path DIR [--json]
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mspa::core::DatasetStats;
use mspa::core::loaders::{self, Format};

/// Dataset statistics: users, authors, events, time span, per-user counts, amounts and
/// the leave-last-out split sizes.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Dataset format: native, twitch or kuailive.
    #[arg(long, default_value = "native")]
    format: String,
    /// A directory (native, kuailive) or a CSV file (twitch).
    #[arg(long)]
    path: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Burn device (flex, ndarray, wgpu, cuda, cpu). Statistics need no tensors, so it is
    /// only checked, like every example's `--device`.
    #[arg(long, default_value = "flex")]
    device: String,
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
    mspa::modal::device_from_name(&args.device)?;
    let format: Format = args.format.parse()?;
    // One bar per file read; `--json` keeps stderr free of progress.
    let quiet = args.json;
    let mut current: Option<(PathBuf, ProgressBar)> = None;
    let dataset = loaders::load(format, &args.path, &mut |p| {
        if quiet {
            return;
        }
        if current.as_ref().is_none_or(|(file, _)| *file != p.file) {
            if let Some((_, bar)) = current.take() {
                bar.finish();
            }
            current = Some((p.file.clone(), file_bar(&p.file, p.total_bytes)));
        }
        let (_, bar) = current.as_ref().expect("a bar for the current file");
        bar.set_position(p.bytes);
        bar.set_message(format!("{} lines", p.lines));
    })?;
    if let Some((_, bar)) = current.take() {
        bar.finish();
    }
    let stats = DatasetStats::compute(&dataset);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&stats).expect("stats serialise")
        );
        return Ok(());
    }
    println!("dataset           {}", args.path.display());
    println!("users             {}", stats.users);
    println!(
        "authors           {} with events ({} defined)",
        stats.authors, stats.authors_defined
    );
    println!("events            {}", stats.events);
    if let (Some(first), Some(last)) = (stats.first_timestamp, stats.last_timestamp) {
        println!(
            "time span         {first} .. {last} ms ({:.2} days)",
            stats.time_span_days
        );
    }
    if let Some(c) = stats.events_per_user {
        println!(
            "events per user   min {} / median {} / max {} (mean {:.2})",
            c.min, c.median, c.max, c.mean
        );
    }
    if let Some(a) = stats.amount {
        println!(
            "amount            min {} / median {} / mean {:.4} / max {} / total {}",
            a.min, a.median, a.mean, a.max, a.total
        );
    }
    println!("repeat events     {:.1}%", 100.0 * stats.repeat_share);
    println!(
        "leave-last-out    train {} / valid {} / test {} events",
        stats.split.train, stats.split.valid, stats.split.test
    );
    Ok(())
}

/// A progress bar on stderr over the bytes of one file (a spinner when its size is
/// unknown); indicatif hides it when stderr is not a terminal.
fn file_bar(file: &Path, total_bytes: u64) -> ProgressBar {
    let (bar, template) = if total_bytes > 0 {
        (
            ProgressBar::new(total_bytes),
            "{prefix:24} [{bar:24}] {bytes}/{total_bytes} {msg}",
        )
    } else {
        (ProgressBar::new_spinner(), "{prefix:24} {spinner} {msg}")
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("a valid progress template")
            .progress_chars("#>-"),
    );
    let name = file.file_name().unwrap_or(file.as_os_str());
    bar.set_prefix(name.to_string_lossy().into_owned());
    bar
}
