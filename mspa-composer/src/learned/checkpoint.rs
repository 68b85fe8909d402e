//! Checkpoints of the learned composer: [`LearnedComposer::save`] writes a directory
//! atomically (a temporary sibling renamed into place), [`LearnedComposer::load`] reads it.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{LearnedComposer, LearnedComposerConfig, LearnedModel};
use crate::error::{ComposerError, Result};
use crate::schema::PreferenceSchema;

/// File names inside a checkpoint directory.
const MODEL_FILE: &str = "model.bpk";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const CONFIG_FILE: &str = "config.json";
const SCHEMA_FILE: &str = "schema.json";
const STATE_FILE: &str = "state.json";
/// The `format` written into `state.json`.
pub const CHECKPOINT_FORMAT: &str = "mspa-learned-composer/2";

/// Training progress stored with a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CheckpointState {
    format: String,
    epochs_done: usize,
    loss_curve: Vec<f64>,
    has_optimizer: bool,
}

impl LearnedComposer {
    /// Writes a checkpoint into `dir` (created, or replaced as a whole): `model.bpk`,
    /// `optimizer.bpk` (when trained in this process), `config.json`, `schema.json` and
    /// `state.json` (epoch counter and loss curve). Everything is written into a
    /// temporary sibling directory first, which is then renamed to `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| io_err(&parent, e))?;
        if dir.file_name().is_none() {
            return Err(ComposerError::config(
                "dir",
                format!("{} has no file name", dir.display()),
            ));
        }
        let tmp = mspa_core::fs::sibling(dir, "tmp");
        let result = self
            .write_into(&tmp)
            .and_then(|()| mspa_core::fs::replace_dir(&tmp, dir).map_err(|e| io_err(dir, e)));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_into(&self, tmp: &Path) -> Result<()> {
        std::fs::create_dir_all(tmp).map_err(|e| io_err(tmp, e))?;
        let model_path = tmp.join(MODEL_FILE);
        self.model
            .clone()
            .save_file(&model_path)
            .map_err(|e| ComposerError::Checkpoint {
                path: model_path.clone(),
                message: e.to_string(),
            })?;
        if let Some(optim) = &self.optimizer {
            let path = tmp.join(OPTIMIZER_FILE);
            optim.save(&path).map_err(|e| ComposerError::Checkpoint {
                path: path.clone(),
                message: e.to_string(),
            })?;
        }
        write_json(&tmp.join(CONFIG_FILE), &self.config)?;
        write_json(&tmp.join(SCHEMA_FILE), &self.schema)?;
        write_json(
            &tmp.join(STATE_FILE),
            &CheckpointState {
                format: CHECKPOINT_FORMAT.into(),
                epochs_done: self.epochs_done,
                loss_curve: self.loss_curve.clone(),
                has_optimizer: self.optimizer.is_some(),
            },
        )
    }

    /// Reads a checkpoint written by [`LearnedComposer::save`] onto `device`. The optimizer
    /// state is loaded too (used by [`LearnedComposer::fit_resume`]).
    pub fn load(dir: &Path, device: &Device) -> Result<LearnedComposer> {
        mspa_core::fs::recover_dir(dir).map_err(|e| io_err(dir, e))?;
        let state: CheckpointState = read_json(&dir.join(STATE_FILE))?;
        if state.format != CHECKPOINT_FORMAT {
            return Err(ComposerError::Checkpoint {
                path: dir.join(STATE_FILE),
                message: format!("format `{}`, expected `{CHECKPOINT_FORMAT}`", state.format),
            });
        }
        let config: LearnedComposerConfig = read_json(&dir.join(CONFIG_FILE))?;
        config.check()?;
        config
            .generator
            .check()
            .map_err(|m| ComposerError::config("generator", m))?;
        let schema: PreferenceSchema = read_json(&dir.join(SCHEMA_FILE))?;
        if schema.vocab_size() != config.generator.vocab_size {
            return Err(ComposerError::Checkpoint {
                path: dir.join(SCHEMA_FILE),
                message: format!(
                    "schema has {} tokens, the generator {}",
                    schema.vocab_size(),
                    config.generator.vocab_size
                ),
            });
        }
        let model_path = dir.join(MODEL_FILE);
        let model = LearnedModel::init(&config, &schema, device)
            .try_load_file(&model_path)
            .map_err(|e| ComposerError::Checkpoint {
                path: model_path.clone(),
                message: e.to_string(),
            })?;
        let optimizer = if state.has_optimizer {
            let path = dir.join(OPTIMIZER_FILE);
            Some(
                config
                    .optimizer()
                    .load(&path)
                    .map_err(|e| ComposerError::Checkpoint {
                        path: path.clone(),
                        message: e.to_string(),
                    })?,
            )
        } else {
            None
        };
        Ok(LearnedComposer {
            config,
            schema,
            model,
            device: device.clone(),
            epochs_done: state.epochs_done,
            loss_curve: state.loss_curve,
            optimizer,
        })
    }
}

fn io_err(path: &Path, source: std::io::Error) -> ComposerError {
    ComposerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ComposerError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|e| io_err(path, e))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| ComposerError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
