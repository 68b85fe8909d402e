//! The CPU forward pass against the Burn path.

use burn::tensor::{Device, Int, TensorData};

use super::*;
use crate::text::BertModelConfig;

/// Every kernel this CPU can run.
fn kernels() -> Vec<CpuKernel> {
    [CpuKernel::Portable, CpuKernel::Avx512]
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
}

/// Texts of lengths 1..=13 with ids from a fixed sequence.
fn texts(vocab: u32) -> Vec<Vec<u32>> {
    (1..=13usize)
        .map(|len| {
            (0..len)
                .map(|i| ((len * 31 + i * 17) as u32 * 7) % vocab)
                .collect()
        })
        .collect()
}

/// The Burn path: one padded batch with its mask, real tokens packed.
fn burn_hidden(model: &BertModel, texts: &[Vec<u32>], layers: usize) -> Vec<f32> {
    let device = Device::flex();
    let seq = texts.iter().map(Vec::len).max().unwrap();
    let mut ids = vec![0i64; texts.len() * seq];
    let mut mask = vec![true; texts.len() * seq];
    for (r, t) in texts.iter().enumerate() {
        for (i, &id) in t.iter().enumerate() {
            ids[r * seq + i] = id as i64;
            mask[r * seq + i] = false;
        }
    }
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [texts.len(), seq]), &device);
    let mask = Tensor::from_data(TensorData::new(mask, [texts.len(), seq]), &device);
    let out: Vec<f32> = model
        .forward_layers(ids, Some(mask), layers)
        .into_data()
        .try_into_vec_as()
        .unwrap();
    let h = model.hidden_size();
    let mut packed = Vec::new();
    for (r, t) in texts.iter().enumerate() {
        packed.extend_from_slice(&out[r * seq * h..][..t.len() * h]);
    }
    packed
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A small random BERT with uneven sizes (head width 5, widths not multiples of the
/// kernel's 32 columns) and non-zero biases and LayerNorm parameters.
fn tiny(activation: BertActivation, seed: u64) -> BertModel {
    let device = Device::flex();
    device.seed(seed);
    let model = BertModelConfig::new(61, 20, 3, 4, 36)
        .with_max_position_embeddings(16)
        .with_hidden_dropout(0.0)
        .with_attention_dropout(0.0)
        .with_hidden_act(activation)
        .with_initializer_range(0.3)
        .init(&device);
    // Random biases and LayerNorm parameters (BERT initialises them to 0 and 1).
    let mut model = model;
    for layer in &mut model.encoder.layers {
        for linear in [
            &mut layer.mha.query,
            &mut layer.mha.key,
            &mut layer.mha.value,
            &mut layer.mha.output,
            &mut layer.pwff.linear_inner,
            &mut layer.pwff.linear_outer,
        ] {
            let [_, n] = linear.weight.dims();
            linear.bias = Some(burn::module::Param::from_tensor(Tensor::random(
                [n],
                burn::tensor::Distribution::Normal(0.0, 0.2),
                &device,
            )));
        }
        for norm in [&mut layer.norm_1, &mut layer.norm_2] {
            norm.gamma = burn::module::Param::from_tensor(Tensor::random(
                [20],
                burn::tensor::Distribution::Uniform(0.5, 1.5),
                &device,
            ));
        }
    }
    model
}

#[test]
fn matches_the_burn_path_on_a_random_model() {
    for activation in [
        BertActivation::Gelu,
        BertActivation::GeluTanh,
        BertActivation::Relu,
    ] {
        let model = tiny(activation, 11);
        let texts = texts(61);
        let refs: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
        for layers in [0, 1, 3] {
            let expected = burn_hidden(&model, &texts, layers);
            for kernel in kernels() {
                let cpu = CpuBert::with_kernel(&model, kernel).unwrap();
                let got = cpu.hidden_states(&refs, layers).unwrap();
                let diff = max_diff(&expected, &got);
                assert!(
                    diff < 1e-4,
                    "{activation:?} {kernel:?} {layers} layers: max abs difference {diff}"
                );
            }
        }
    }
}

#[test]
fn mean_pooling_and_grouping() {
    let model = tiny(BertActivation::Gelu, 5);
    let texts = texts(61);
    let refs: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
    for kernel in kernels() {
        let cpu = CpuBert::with_kernel(&model, kernel).unwrap();
        let hidden = cpu.hidden_states(&refs, 3).unwrap();
        let pooled = cpu.mean_pooled(&refs, 3).unwrap();
        let mut row = 0;
        for (i, t) in texts.iter().enumerate() {
            for j in 0..20 {
                let mean = (0..t.len())
                    .map(|r| hidden[(row + r) * 20 + j])
                    .sum::<f32>()
                    / t.len() as f32;
                assert!((mean - pooled[i * 20 + j]).abs() < 1e-5);
            }
            row += t.len();
        }
        // A text alone gives the same vectors as in a group on one thread.
        let alone = on_one_thread(|| cpu.hidden_states(&refs[12..], 3).unwrap());
        let start = texts[..12].iter().map(Vec::len).sum::<usize>() * 20;
        assert!(max_diff(&alone, &hidden[start..]) < 1e-5);
    }
}

fn on_one_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let model = tiny(BertActivation::Gelu, 1);
    let cpu = CpuBert::from_model(&model).unwrap();
    assert!(
        format!("{cpu:?}").len() < 300,
        "Debug prints sizes, not weights"
    );
    assert!(cpu.hidden_states(&[&[1, 61]], 3).is_err());
    assert!(cpu.hidden_states(&[&[1; 17]], 3).is_err());
    assert!(cpu.hidden_states(&[&[1, 2]], 4).is_err());
    // Empty inputs are fine.
    assert!(cpu.hidden_states(&[], 3).unwrap().is_empty());
    assert!(cpu.hidden_states(&[&[], &[]], 3).unwrap().is_empty());
    assert_eq!(cpu.mean_pooled(&[&[], &[3]], 3).unwrap().len(), 40);
    assert!(
        cpu.mean_pooled(&[&[]], 3)
            .unwrap()
            .iter()
            .all(|&v| v == 0.0)
    );
}

#[test]
fn element_wise_functions_are_accurate() {
    let device = Device::flex();
    let xs: Vec<f32> = (-1200..=1200).map(|i| i as f32 / 100.0).collect();
    let t = Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device);
    let exact: Vec<f32> = burn::tensor::activation::gelu(t)
        .into_data()
        .try_into_vec_as()
        .unwrap();
    for (x, e) in xs.iter().zip(&exact) {
        assert!(
            (gelu(*x) - e).abs() < 2e-6,
            "gelu({x}) = {} vs {e}",
            gelu(*x)
        );
        let tanh =
            0.5 * x * (1.0 + ((0.797_884_6 * (x + 0.044_715 * x * x * x)) as f64).tanh() as f32);
        assert!((gelu_tanh(*x) - tanh).abs() < 2e-6, "gelu_tanh({x})");
    }
    for i in -8700..=8800 {
        let x = i as f32 / 100.0;
        let e = (x as f64).exp();
        let rel = ((exp(x) as f64 - e) / e).abs();
        assert!(rel < 1e-6, "exp({x}): relative error {rel}");
    }
    // Far below the clamp: tiny, positive, finite (softmax of a -inf score is 0).
    assert_eq!(exp(-1000.0), exp(-87.0));
    assert!(exp(f32::NEG_INFINITY) > 0.0 && exp(f32::NEG_INFINITY) < 1e-37);
    assert!(exp(1000.0).is_finite());
}
