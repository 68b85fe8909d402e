//! Loading Hugging Face BERT checkpoints: `config.json` + `model.safetensors`.
//!
//! Tensors are matched to [`BertModel`] through [`BERT_KEY_REMAP`], an explicit table of
//! regular expressions from Hugging Face key names to Burn module paths, and
//! [`PyTorchToBurnAdapter`] (transposes `Linear` weights from PyTorch's `[out, in]` to
//! Burn's `[in, out]`; LayerNorm `weight`/`bias` become `gamma`/`beta`). Float tensors of
//! other precisions (F16, BF16) are cast to F32. Tensors the model does not use
//! (`embeddings.position_ids`, `pooler.*`, task heads) are ignored; a tensor the model
//! needs that is missing, or one with the wrong shape, is a [`ModalError::Weights`] naming
//! the file and the tensor.

use std::path::{Path, PathBuf};

use burn::store::{
    FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use burn::tensor::{DType, Device};

use super::bert::{BertConfig, BertModel};
use crate::error::{ModalError, Result};

/// Hugging Face key pattern -> Burn module path, applied in order (each rule sees the
/// output of the previous ones). Keys matching no rule keep their name
/// (`embeddings.word_embeddings.weight`, `embeddings.position_embeddings.weight` and
/// `embeddings.token_type_embeddings.weight` are the same in both).
///
/// | Hugging Face | Burn |
/// |---|---|
/// | `bert.X` (pre-training / task checkpoints) | `X` |
/// | `embeddings.LayerNorm.*` | `embeddings.layer_norm.*` |
/// | `encoder.layer.N.attention.self.{query,key,value}.*` | `encoder.layers.N.mha.{query,key,value}.*` |
/// | `encoder.layer.N.attention.output.dense.*` | `encoder.layers.N.mha.output.*` |
/// | `encoder.layer.N.attention.output.LayerNorm.*` | `encoder.layers.N.norm_1.*` |
/// | `encoder.layer.N.intermediate.dense.*` | `encoder.layers.N.pwff.linear_inner.*` |
/// | `encoder.layer.N.output.dense.*` | `encoder.layers.N.pwff.linear_outer.*` |
/// | `encoder.layer.N.output.LayerNorm.*` | `encoder.layers.N.norm_2.*` |
pub const BERT_KEY_REMAP: &[(&str, &str)] = &[
    (r"^bert\.", ""),
    (r"^embeddings\.LayerNorm\.", "embeddings.layer_norm."),
    (
        r"^encoder\.layer\.([0-9]+)\.attention\.self\.(query|key|value)\.",
        "encoder.layers.${1}.mha.${2}.",
    ),
    (
        r"^encoder\.layer\.([0-9]+)\.attention\.output\.dense\.",
        "encoder.layers.${1}.mha.output.",
    ),
    (
        r"^encoder\.layer\.([0-9]+)\.attention\.output\.LayerNorm\.",
        "encoder.layers.${1}.norm_1.",
    ),
    (
        r"^encoder\.layer\.([0-9]+)\.intermediate\.dense\.",
        "encoder.layers.${1}.pwff.linear_inner.",
    ),
    (
        r"^encoder\.layer\.([0-9]+)\.output\.dense\.",
        "encoder.layers.${1}.pwff.linear_outer.",
    ),
    (
        r"^encoder\.layer\.([0-9]+)\.output\.LayerNorm\.",
        "encoder.layers.${1}.norm_2.",
    ),
];
/// Reads `config.json` from a Hugging Face model folder.
pub fn load_bert_config(dir: impl AsRef<Path>) -> Result<BertConfig> {
    BertConfig::from_file(dir.as_ref().join("config.json"))
}

/// Builds the model described by `dir/config.json` on `device` and loads
/// `dir/model.safetensors` into it.
///
/// ```no_run
/// use mspa_modal::text::load_bert_model;
///
/// let device = burn::tensor::Device::flex();
/// let (config, model) = load_bert_model("../shared/models/all-MiniLM-L6-v2", &device)?;
/// assert_eq!((config.hidden_size, model.num_layers()), (384, 6));
/// # Ok::<(), mspa_modal::ModalError>(())
/// ```
pub fn load_bert_model(dir: impl AsRef<Path>, device: &Device) -> Result<(BertConfig, BertModel)> {
    let dir = dir.as_ref();
    let config = load_bert_config(dir)?;
    let model = config.model_config()?.init(device);
    let weights = dir.join("model.safetensors");
    if !weights.is_file() {
        let hint = if dir.join("pytorch_model.bin").is_file() {
            " (only pytorch_model.bin is there; convert it to safetensors)"
        } else {
            ""
        };
        return Err(ModalError::Weights {
            path: weights,
            message: format!("file not found{hint}"),
        });
    }
    let model = load_bert_weights(model, &weights)?;
    Ok((config, model))
}

/// Loads a Hugging Face BERT safetensors file into `model` (whose config must match the
/// checkpoint's), through [`BERT_KEY_REMAP`].
pub fn load_bert_weights(mut model: BertModel, path: impl AsRef<Path>) -> Result<BertModel> {
    let path = path.as_ref();
    let weights_error = |message: String| ModalError::Weights {
        path: PathBuf::from(path),
        message,
    };
    std::fs::metadata(path).map_err(|e| ModalError::io(path, e))?;
    let remapper = KeyRemapper::from_patterns(BERT_KEY_REMAP.to_vec())
        .map_err(|e| weights_error(format!("bad remapping pattern: {e}")))?;
    let mut store = SafetensorsStore::from_file(path)
        .with_from_adapter(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)))
        .remap(remapper)
        .allow_partial(true)
        .validate(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| weights_error(e.to_string()))?;
    if !result.errors.is_empty() {
        let list: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(weights_error(format!(
            "{} tensor(s) do not fit the model (does config.json match the weights?): {}",
            list.len(),
            list.join("; ")
        )));
    }
    if !result.missing.is_empty() {
        let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        let mut unused = result.unused.clone();
        unused.sort();
        unused.truncate(8);
        return Err(weights_error(format!(
            "missing tensor(s) for model parameter(s) {} (after key remapping; unused keys in \
             the file include: {})",
            missing.join(", "),
            if unused.is_empty() {
                "none".to_string()
            } else {
                unused.join(", ")
            }
        )));
    }
    Ok(model)
}

/// Where the MiniLM weights are looked for by default: `MSPA_MINILM_DIR` when set (as
/// given, so a wrong path fails loudly when loaded), else
/// `../shared/models/all-MiniLM-L6-v2` relative to the working directory when that folder
/// has a `config.json`; `None` otherwise.
pub fn default_minilm_dir() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("MSPA_MINILM_DIR") {
        return Some(dir.into());
    }
    let dir = std::path::PathBuf::from("../shared/models/all-MiniLM-L6-v2");
    dir.join("config.json").is_file().then_some(dir)
}
