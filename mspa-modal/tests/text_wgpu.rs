//! The BERT encoder's forward pass on the wgpu device (Mesa lavapipe in CI) agrees with
//! flex. Run with `cargo test -p mspa-modal --features wgpu --test text_wgpu`.
#![cfg(feature = "wgpu")]

use burn::module::Module;
use burn::tensor::{Device, DeviceKind, Int, Tensor};
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
    let max = expected
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    println!("wgpu vs flex: max abs difference {max:.3e}");
    assert!(max < 1e-4, "wgpu differs from flex by {max}");
}
