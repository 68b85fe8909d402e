//! The encoders' forward passes (BERT, visual CNN, audio CNN) on the wgpu device (Mesa
//! lavapipe in CI) agree with flex. Part of the README's test command (`--features
//! mspa/ndarray,mspa/wgpu`); `--test encoders_wgpu` runs it alone.
#![cfg(feature = "wgpu")]

use burn::module::Module;
use burn::tensor::{Device, DeviceKind, Int, Tensor};
use mspa_modal::encoders::{AudioEncoderConfig, VisualEncoderConfig};
use mspa_modal::text::BertModelConfig;

#[test]
fn tiny_bert_forward_on_wgpu_matches_flex() {
    let flex = Device::flex();
    flex.seed(11);
    let model = BertModelConfig::new(30, 32, 2, 4, 64)
        .with_max_position_embeddings(16)
        .init(&flex);
    let ids = [[1, 7, 4, 9, 2, 0, 0], [1, 5, 4, 6, 9, 12, 2]];
    let padding = [[0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0, 0]];
    let run = |model: &mspa_modal::text::BertModel, device: &Device| -> Vec<f32> {
        let ids = Tensor::<2, Int>::from_ints(ids, device);
        let mask = Tensor::<2, Int>::from_ints(padding, device).bool();
        model
            .forward(ids, Some(mask))
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap()
    };
    let expected = run(&model, &flex);

    let wgpu = Device::wgpu(DeviceKind::DefaultDevice);
    let on_gpu = model.to_device(&wgpu);
    let got = run(&on_gpu, &wgpu);
    assert_eq!(expected.len(), got.len());
    let max = max_abs_diff(&expected, &got);
    println!("wgpu vs flex: max abs difference {max:.3e}");
    assert!(max < 1e-4, "wgpu differs from flex by {max}");
}

/// Largest absolute difference of two equally long vectors.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn visual_and_audio_encoders_on_wgpu_match_flex() {
    let flex = Device::flex();
    flex.seed(5);
    let wgpu = Device::wgpu(DeviceKind::DefaultDevice);

    let visual = VisualEncoderConfig::new()
        .with_width(8)
        .with_depth(3)
        .with_d_output(16)
        .init(&flex);
    let frames = Tensor::<4>::random(
        [2, 3, 32, 32],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &flex,
    );
    let expected = visual
        .forward(frames.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let got = visual
        .to_device(&wgpu)
        .forward(frames.to_device(&wgpu))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let max = max_abs_diff(&expected, &got);
    println!("visual encoder wgpu vs flex: max abs difference {max:.3e}");
    assert!(
        max < 1e-4,
        "visual encoder on wgpu differs from flex by {max}"
    );

    let audio = AudioEncoderConfig::new()
        .with_n_mels(16)
        .with_width(8)
        .with_depth(3)
        .with_d_output(16)
        .init(&flex);
    let mel = Tensor::<3>::random(
        [2, 16, 40],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &flex,
    );
    let expected = audio
        .forward(mel.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let got = audio
        .to_device(&wgpu)
        .forward(mel.to_device(&wgpu))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let max = max_abs_diff(&expected, &got);
    println!("audio encoder wgpu vs flex: max abs difference {max:.3e}");
    assert!(
        max < 1e-4,
        "audio encoder on wgpu differs from flex by {max}"
    );
}
