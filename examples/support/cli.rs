//! What the examples' command lines share: the `main` that parses the arguments and
//! reports an error, the `--device` flag, the training flags of the examples that train
//! MSPA, reading a JSON configuration file, and loading the MiniLM text encoder.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::Device;
use clap::Parser;
use mspa::core::Format;
use mspa::modal::text::{BertEmbedder, default_minilm_dir};
use mspa::pipeline::{DataSource, PipelineConfig};
use serde::de::DeserializeOwned;

/// Parses the arguments `A` and runs `run` on them: success, or the error on stderr as
/// `error: …` and a failing exit status. Sets the allocator up first
/// ([`super::allocator::keep_freed_memory`]).
pub fn main<A: Parser, E: Display>(run: impl FnOnce(&A) -> Result<(), E>) -> ExitCode {
    super::allocator::keep_freed_memory();
    let args = A::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `--device` flag (flattened into an example's arguments; an example whose help
/// says more about it replaces the help with clap's `mut_arg("device", ...)`).
#[derive(clap::Args)]
pub struct DeviceArg {
    /// Burn device: flex, ndarray, wgpu, cuda or cpu.
    #[arg(
        id = "device",
        long = "device",
        value_name = "DEVICE",
        default_value = "flex"
    )]
    pub name: String,
}

impl DeviceArg {
    /// The device named, or an error for an unknown (or not compiled-in) name.
    pub fn open(&self) -> Result<Device, mspa::modal::DeviceError> {
        mspa::modal::device_from_name(&self.name)
    }
}

/// The `--data PATH --format FORMAT` flags of the examples that run on a dataset.
#[derive(clap::Args)]
pub struct DataArgs {
    /// The dataset: a directory (native, kuailive) or a CSV file (twitch).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// The format of `--data`: native, kuailive or twitch.
    #[arg(long, default_value = "native", value_parser = parse_format, requires = "data")]
    pub format: Format,
}

impl DataArgs {
    /// The dataset named, if any.
    pub fn source(&self) -> Option<DataSource> {
        self.data.as_ref().map(|path| DataSource {
            path: path.clone(),
            format: self.format,
        })
    }
}

/// Parses a `--format` value (native, kuailive or twitch).
pub fn parse_format(s: &str) -> Result<Format, String> {
    s.parse().map_err(|e: mspa::core::CoreError| e.to_string())
}

/// The flags of the examples that train MSPA and the learned composer (flattened into
/// their arguments).
#[derive(clap::Args)]
pub struct TrainingArgs {
    /// Epochs of MSPA (and of the trained baselines, where the example trains them).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Epochs of the learned composer.
    #[arg(long)]
    pub composer_epochs: Option<usize>,
    /// The MiniLM folder (text features, preference embeddings and, where texts are
    /// scored, BERTScore).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

impl TrainingArgs {
    /// Writes the flags into `config`: MSPA's and the learned composer's epochs where
    /// given, and the MiniLM folder (`--model`, else `MSPA_MINILM_DIR` or the shared
    /// default).
    pub fn apply(&self, config: &mut PipelineConfig) {
        if let Some(epochs) = self.epochs {
            config.mspa.train.epochs = epochs;
        }
        if let Some(epochs) = self.composer_epochs {
            config.composer.epochs = epochs;
        }
        config.minilm = self.model.clone().or_else(default_minilm_dir);
    }
}

/// Reads a JSON file into `T` (keys left out take the defaults `T`'s serde allows); an
/// error names the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The MiniLM folder (`--model`, else `MSPA_MINILM_DIR` or the shared default) and its
/// encoder; without one, a note on stderr that ends with `without` (what is then missing).
pub fn text_encoder(
    model: Option<&PathBuf>,
    device: &Device,
    without: &str,
) -> Result<(Option<PathBuf>, Option<BertEmbedder>), Box<dyn std::error::Error>> {
    let dir = model.cloned().or_else(default_minilm_dir);
    let encoder = match &dir {
        Some(dir) => Some(BertEmbedder::from_pretrained(dir, device)?),
        None => {
            eprintln!("note: no text model (--model, MSPA_MINILM_DIR): {without}");
            None
        }
    };
    Ok((dir, encoder))
}
