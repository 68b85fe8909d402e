//! Loading Hugging Face BERT folders without the real weights: a tiny random model is
//! written in Hugging Face's layout (key names, `[out, in]` Linear weights, LayerNorm
//! `weight`/`bias`, plus the unused `position_ids` and `pooler`), loaded back through the
//! key-remapping table, and must compute the same hidden states. Broken folders give
//! errors naming the file and the tensor.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor};
use mspa_modal::ModalError;
use mspa_modal::text::{BertConfig, BertModel, load_bert_model};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn tiny_hf_config() -> BertConfig {
    BertConfig {
        vocab_size: 40,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 24,
        max_position_embeddings: 12,
        ..BertConfig::default()
    }
}

fn values<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let dims = t.dims().to_vec();
    (dims, t.into_data().try_into_vec_as::<f32>().unwrap())
}

/// The model's tensors under Hugging Face names and layouts.
fn hf_tensors(model: &BertModel) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    let mut push =
        |name: String, (shape, data): (Vec<usize>, Vec<f32>)| out.push((name, shape, data));
    let e = &model.embeddings;
    push(
        "embeddings.word_embeddings.weight".into(),
        values(e.word_embeddings.weight.val()),
    );
    push(
        "embeddings.position_embeddings.weight".into(),
        values(e.position_embeddings.weight.val()),
    );
    push(
        "embeddings.token_type_embeddings.weight".into(),
        values(e.token_type_embeddings.weight.val()),
    );
    push(
        "embeddings.LayerNorm.weight".into(),
        values(e.layer_norm.gamma.val()),
    );
    push(
        "embeddings.LayerNorm.bias".into(),
        values(e.layer_norm.beta.as_ref().unwrap().val()),
    );
    for (i, layer) in model.encoder.layers.iter().enumerate() {
        let p = format!("encoder.layer.{i}");
        let (a, ff) = (&layer.mha, &layer.pwff);
        for (name, linear) in [
            (format!("{p}.attention.self.query"), &a.query),
            (format!("{p}.attention.self.key"), &a.key),
            (format!("{p}.attention.self.value"), &a.value),
            (format!("{p}.attention.output.dense"), &a.output),
            (format!("{p}.intermediate.dense"), &ff.linear_inner),
            (format!("{p}.output.dense"), &ff.linear_outer),
        ] {
            push(
                format!("{name}.weight"),
                values(linear.weight.val().transpose()),
            );
            push(
                format!("{name}.bias"),
                values(linear.bias.as_ref().unwrap().val()),
            );
        }
        for (name, norm) in [
            (format!("{p}.attention.output.LayerNorm"), &layer.norm_1),
            (format!("{p}.output.LayerNorm"), &layer.norm_2),
        ] {
            push(format!("{name}.weight"), values(norm.gamma.val()));
            push(
                format!("{name}.bias"),
                values(norm.beta.as_ref().unwrap().val()),
            );
        }
    }
    let h = model.hidden_size();
    push("pooler.dense.weight".into(), (vec![h, h], vec![0.5; h * h]));
    push("pooler.dense.bias".into(), (vec![h], vec![0.0; h]));
    out
}

fn write_folder(dir: &Path, config: &BertConfig, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(config).unwrap(),
    )
    .unwrap();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                s.clone(),
                d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let positions: Vec<u8> = (0..config.max_position_embeddings as i64)
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    views.push((
        "embeddings.position_ids".into(),
        TensorView::new(
            Dtype::I64,
            vec![1, config.max_position_embeddings],
            &positions,
        )
        .unwrap(),
    ));
    let data = safetensors::tensor::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), data).unwrap();
}

fn hidden(model: &BertModel, device: &Device) -> Vec<f32> {
    let ids = Tensor::<2, Int>::from_ints([[2, 7, 9, 11, 3, 0], [2, 5, 3, 0, 0, 0]], device);
    let mask = Tensor::<2, Int>::from_ints([[0, 0, 0, 0, 0, 1], [0, 0, 0, 1, 1, 1]], device).bool();
    model
        .forward(ids, Some(mask))
        .into_data()
        .try_into_vec_as()
        .unwrap()
}

#[test]
fn hugging_face_layout_round_trips_through_the_remapping_table() {
    let device = Device::flex();
    device.seed(7);
    let config = tiny_hf_config();
    let original = config.model_config().unwrap().init(&device);
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &config, &hf_tensors(&original));

    let (loaded_config, loaded) = load_bert_model(dir.path(), &device).unwrap();
    assert_eq!(loaded_config, config);
    let (a, b) = (hidden(&original, &device), hidden(&loaded, &device));
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(max < 1e-6, "loaded model differs by {max}");
    // A freshly initialised model is different, so the comparison above means something.
    let fresh = hidden(&config.model_config().unwrap().init(&device), &device);
    assert!(a.iter().zip(&fresh).any(|(x, y)| (x - y).abs() > 1e-3));
}

#[test]
fn bert_prefixed_checkpoints_load_too() {
    let device = Device::flex();
    let config = tiny_hf_config();
    let original = config.model_config().unwrap().init(&device);
    let dir = tempfile::tempdir().unwrap();
    let tensors: Vec<_> = hf_tensors(&original)
        .into_iter()
        .map(|(n, s, d)| (format!("bert.{n}"), s, d))
        .collect();
    write_folder(dir.path(), &config, &tensors);
    let (_, loaded) = load_bert_model(dir.path(), &device).unwrap();
    assert_eq!(hidden(&original, &device), hidden(&loaded, &device));
}

#[test]
fn a_missing_tensor_is_named_with_the_file() {
    let device = Device::flex();
    let config = tiny_hf_config();
    let original = config.model_config().unwrap().init(&device);
    let dir = tempfile::tempdir().unwrap();
    let tensors: Vec<_> = hf_tensors(&original)
        .into_iter()
        .filter(|(n, _, _)| n != "encoder.layer.1.intermediate.dense.weight")
        .collect();
    write_folder(dir.path(), &config, &tensors);
    let err = load_bert_model(dir.path(), &device).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModalError::Weights { .. }), "{msg}");
    assert!(msg.contains("model.safetensors"), "{msg}");
    assert!(
        msg.contains("encoder.layers.1.pwff.linear_inner.weight"),
        "{msg}"
    );
}

#[test]
fn a_config_that_does_not_fit_the_weights_is_an_error() {
    let device = Device::flex();
    let config = tiny_hf_config();
    let original = config.model_config().unwrap().init(&device);
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &config, &hf_tensors(&original));
    let wider = BertConfig {
        intermediate_size: 32,
        ..config
    };
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string(&wider).unwrap(),
    )
    .unwrap();
    let err = load_bert_model(dir.path(), &device).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModalError::Weights { .. }), "{msg}");
    assert!(msg.contains("model.safetensors"), "{msg}");
    assert!(msg.contains("pwff.linear_inner"), "{msg}");
}

#[test]
fn broken_folders_name_the_file() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    // No config.json.
    let err = load_bert_model(dir.path(), &device).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
    // Malformed config.json.
    std::fs::write(dir.path().join("config.json"), "{\"hidden_size\": \"big\"}").unwrap();
    let err = load_bert_model(dir.path(), &device).unwrap_err();
    assert!(matches!(err, ModalError::Weights { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
    // Unsupported values.
    std::fs::write(
        dir.path().join("config.json"),
        "{\"hidden_act\": \"swish\"}",
    )
    .unwrap();
    let err = load_bert_model(dir.path(), &device).unwrap_err();
    assert!(err.to_string().contains("hidden_act"), "{err}");
    // Valid config, no weights.
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string(&tiny_hf_config()).unwrap(),
    )
    .unwrap();
    let err = load_bert_model(dir.path(), &device).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    // Garbage weights.
    std::fs::write(
        dir.path().join("model.safetensors"),
        b"not a safetensors file",
    )
    .unwrap();
    let err = load_bert_model(dir.path(), &device).unwrap_err();
    assert!(matches!(err, ModalError::Weights { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}
