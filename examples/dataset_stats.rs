//! Prints the statistics of a dataset in the native, Twitch or KuaiLive format.
//!
//! ```text
//! cargo run --release --example dataset_stats -- --format native --path DIR [--json]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mspa::core::DatasetStats;
use mspa::core::loaders::{self, Format};

#[path = "support/mod.rs"]
mod support;
use support::{cli, progress};

/// The help of `--device`, which this example only checks.
const DEVICE_HELP: &str = concat!(
    "Burn device (flex, ndarray, wgpu, cuda, cpu). Statistics need no tensors, ",
    "so it is only checked, like every example's `--device`"
);

/// Dataset statistics: users, authors, events, time span, per-user counts, amounts and
/// the leave-last-out split sizes.
#[derive(Parser)]
#[command(version, about)]
#[command(mut_arg("device", |a| a.help(DEVICE_HELP)))]
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
    #[command(flatten)]
    device: cli::DeviceArg,
}

fn main() -> ExitCode {
    cli::main(run)
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    args.device.open()?;
    let format: Format = args.format.parse()?;
    // One bar per file read; `--json` keeps stderr free of progress.
    let quiet = args.json;
    let mut files = progress::Stages::<PathBuf>::default();
    let dataset = loaders::load(format, &args.path, &mut |p| {
        if quiet {
            return;
        }
        let bar = files.bar(&p.file, || {
            let name = p.file.file_name().unwrap_or(p.file.as_os_str());
            progress::bar(name.to_string_lossy().into_owned(), p.total_bytes, true)
        });
        bar.set_position(p.bytes);
        bar.set_message(format!("{} lines", p.lines));
    })?;
    files.finish();
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
