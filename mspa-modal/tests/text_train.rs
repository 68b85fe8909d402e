//! The BERT encoder with a tiny config trains from scratch on an autodiff device: a few
//! Adam steps on a toy objective lower the loss.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor};
use mspa_modal::text::BertModelConfig;

#[test]
fn tiny_bert_learns_a_toy_objective() {
    let device = Device::flex().autodiff();
    device.seed(42);
    let mut model = BertModelConfig::new(20, 16, 2, 2, 32)
        .with_max_position_embeddings(8)
        .with_hidden_dropout(0.0)
        .with_attention_dropout(0.0)
        .init(&device);
    let mut optim = AdamConfig::new().init();

    // Toy task: the first coordinate of [CLS]'s output is +1 when token 7 occurs in the
    // (padded) sequence and -1 otherwise; padding must not leak into the answer.
    let ids = Tensor::<2, Int>::from_ints(
        [
            [1, 7, 4, 2, 0, 0],
            [1, 5, 4, 6, 9, 2],
            [1, 3, 7, 2, 0, 0],
            [1, 8, 3, 2, 0, 0],
        ],
        &device,
    );
    let padding = Tensor::<2, Int>::from_ints(
        [
            [0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 1, 1],
        ],
        &device,
    )
    .bool();
    let target = Tensor::<2>::from_floats([[1.0], [-1.0], [1.0], [-1.0]], &device);

    let mut losses = Vec::new();
    for _ in 0..30 {
        let hidden = model.forward(ids.clone(), Some(padding.clone()));
        let cls = hidden.slice([0..4, 0..1, 0..1]).reshape([4, 1]);
        let loss = (cls - target.clone()).powi_scalar(2).mean();
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    println!("loss {first:.4} -> {last:.4}");
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(last < 0.5 * first, "loss did not go down: {losses:?}");
}
