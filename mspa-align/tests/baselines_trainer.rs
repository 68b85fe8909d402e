//! The shared trainer: the loss goes down, the NaN guard names epoch and batch, the
//! global-norm clipping clips, checkpoints resume exactly, bad configs are refused.

use std::cell::Cell;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use mspa_align::AlignError;
use mspa_align::baselines::BprMfModule;
use mspa_align::data::{Example, Negatives, SplitMix64, training_examples};
use mspa_align::train::{
    TrainConfig, checkpoint_reports, clip_global_norm, fit, fit_with, global_grad_norm, lr_at,
};
use mspa_core::{Author, AuthorId, Dataset, DatasetBuilder, ExternalId, Split, UserId};

/// 12 users x 10 authors; user u tips authors (u % 5) * 2 and (u % 5) * 2 + 1 in turn,
/// so there is a clear pattern to learn.
fn toy() -> (Dataset, Split) {
    let mut b = DatasetBuilder::default();
    let authors: Vec<AuthorId> = (0..10)
        .map(|i| b.add_author(Author::bare(ExternalId::Int(i))).unwrap())
        .collect();
    for u in 0..12 {
        let user = b.user(ExternalId::Int(100 + u));
        for t in 0..8 {
            let a = authors[((u % 5) * 2 + t % 2) as usize];
            b.push_event(user, a, 1.0 + t as f64, 1_000 * t + u);
        }
    }
    let ds = b.build(None);
    let split = Split::leave_last_out(&ds);
    (ds, split)
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        learning_rate: 0.05,
        weight_decay: 0.0,
        warmup_fraction: 0.1,
        negatives: 4,
        eval_every: 0,
        seed: 7,
        ..TrainConfig::default()
    }
}

fn model(device: &Device) -> BprMfModule {
    BprMfModule::new(12, 10, 8, 0.1, 3, device)
}

fn params(m: &BprMfModule) -> Vec<f32> {
    let mut v = m.user.weight.val().into_data().try_to_vec::<f32>().unwrap();
    v.extend(
        m.author
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
    );
    v.extend(m.bias.weight.val().into_data().try_to_vec::<f32>().unwrap());
    v
}

#[test]
fn baselines_trainer_loss_decreases() {
    let device = Device::flex();
    let (ds, split) = toy();
    let examples = training_examples(&ds, &split, None);
    assert_eq!(examples.len(), 12 * 6);
    let negatives = Negatives::uniform(ds.n_authors());
    let mut seen = Vec::new();
    let (_m, reports) = fit_with(
        model(&device),
        &config(15),
        &device,
        &examples,
        &negatives,
        |m: &BprMfModule, batch, negs, dev| m.loss(batch, negs, dev),
        |_m: &BprMfModule| Ok(0.0),
        |r| seen.push(r.epoch),
    )
    .unwrap();
    assert_eq!(reports.len(), 15);
    assert_eq!(seen, (0..15).collect::<Vec<_>>());
    let first = reports[0].train_loss;
    let last = reports.last().unwrap().train_loss;
    assert!(
        first > 0.6 && first < 0.75,
        "BPR loss starts near ln 2: {first}"
    );
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    // The schedule: warm-up then cosine decay to 0.
    assert!(reports[0].lr < reports[1].lr || reports[1].lr < 0.05 + 1e-12);
    assert!(
        reports.last().unwrap().lr < 1e-3,
        "{}",
        reports.last().unwrap().lr
    );
}

#[test]
fn baselines_trainer_nan_guard_names_epoch_and_batch() {
    let device = Device::flex();
    let (ds, split) = toy();
    let examples = training_examples(&ds, &split, None);
    let calls = Cell::new(0usize);
    // 72 examples / 16 per batch = 5 batches per epoch: call 7 is epoch 1, batch 2.
    let err = fit(
        model(&device),
        &config(3),
        &device,
        &examples,
        |m: &BprMfModule, batch, negs, dev| {
            let n = calls.get();
            calls.set(n + 1);
            let loss = m.loss(batch, negs, dev);
            if n == 7 {
                loss.mul_scalar(f32::NAN)
            } else {
                loss
            }
        },
        |_m: &BprMfModule| Ok(0.0),
        |_| {},
    )
    .unwrap_err();
    match err {
        AlignError::NonFinite {
            epoch,
            batch,
            value,
        } => {
            assert_eq!((epoch, batch), (1, 2));
            assert!(value.is_nan());
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(
        format!(
            "{}",
            AlignError::NonFinite {
                epoch: 1,
                batch: 2,
                value: f64::INFINITY
            }
        )
        .contains("epoch 1, batch 2")
    );
}

#[test]
fn baselines_trainer_global_norm_clipping() {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    device.seed(1);
    let lin: Linear = LinearConfig::new(3, 2).init(&device).fork(&ad).train();
    let x = Tensor::<2>::from_data(TensorData::new(vec![10.0f32; 12], [4, 3]), &ad);
    let loss = lin.forward(x).sum().mul_scalar(100.0);
    let mut grads = GradientsParams::from_grads(loss.backward(), &lin);
    // d loss / d W = 100 * sum of inputs per row = 4000 everywhere (6 entries), bias 400 (2).
    let expected = (6.0f64 * 4000.0 * 4000.0 + 2.0 * 400.0 * 400.0).sqrt();
    let norm = global_grad_norm(&lin, &grads);
    assert!(
        (norm - expected).abs() / expected < 1e-5,
        "{norm} vs {expected}"
    );
    let before = clip_global_norm(&lin, &mut grads, 1.0);
    assert!((before - expected).abs() / expected < 1e-5);
    let after = global_grad_norm(&lin, &grads);
    assert!((after - 1.0).abs() < 1e-4, "{after}");
    // Directions are kept: the weight/bias gradient ratio is still 10.
    let gw = grads
        .get::<2>(lin.weight.id)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let gb = grads
        .get::<1>(lin.bias.as_ref().unwrap().id)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!((gw[0] / gb[0] - 10.0).abs() < 1e-3);
}

#[test]
fn baselines_trainer_checkpoint_resume_matches_uninterrupted() {
    let device = Device::flex();
    let (ds, split) = toy();
    let examples = training_examples(&ds, &split, None);
    let negatives = Negatives::uniform(ds.n_authors());
    let loss = |m: &BprMfModule, b: &[&Example], n: &_, d: &Device| m.loss(b, n, d);
    // A deterministic "validation" that depends on the parameters.
    let score = |m: &BprMfModule| -> mspa_align::Result<f64> {
        Ok(f64::from(m.bias.weight.val().sum().into_scalar::<f32>()))
    };
    let mut base = config(5);
    base.eval_every = 1;
    base.patience = 0;

    // Uninterrupted reference run, no checkpoints.
    let (reference, ref_reports) = fit_with(
        model(&device),
        &base,
        &device,
        &examples,
        &negatives,
        loss,
        score,
        |_| {},
    )
    .unwrap();

    // Same run with checkpoints, "crashing" in the validation of epoch 2.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = base.clone();
    cfg.checkpoint_dir = Some(dir.path().join("ckpt"));
    let err = fit_with(
        model(&device),
        &cfg,
        &device,
        &examples,
        &negatives,
        loss,
        |m: &BprMfModule| {
            CRASH.with(|c| {
                let n = c.get();
                c.set(n + 1);
                if n == 2 {
                    Err(AlignError::data("simulated crash"))
                } else {
                    score(m)
                }
            })
        },
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, AlignError::Data { .. }), "{err}");
    let saved = checkpoint_reports(&dir.path().join("ckpt"))
        .unwrap()
        .unwrap();
    assert_eq!(saved.len(), 2, "epochs 0 and 1 were checkpointed");
    let files: Vec<String> = std::fs::read_dir(dir.path().join("ckpt"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().all(|f| !f.contains("00000")),
        "old epoch files are removed: {files:?}"
    );
    assert!(files.contains(&"state.json".to_string()));

    // Resume with a fresh model: continues from epoch 2 and ends where the reference does.
    let mut resumed_epochs = Vec::new();
    let (resumed, reports) = fit_with(
        model(&device),
        &cfg,
        &device,
        &examples,
        &negatives,
        loss,
        score,
        |r| resumed_epochs.push(r.epoch),
    )
    .unwrap();
    assert_eq!(resumed_epochs, vec![2, 3, 4]);
    assert_eq!(reports.len(), 5);
    for (a, b) in reports.iter().zip(&ref_reports) {
        assert!((a.train_loss - b.train_loss).abs() < 1e-5, "{a:?} vs {b:?}");
        assert!((a.valid_ndcg10.unwrap() - b.valid_ndcg10.unwrap()).abs() < 1e-4);
    }
    let (p, q) = (params(&resumed), params(&reference));
    let max_diff = p
        .iter()
        .zip(&q)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_diff < 1e-4, "resumed parameters differ by {max_diff}");

    // A finished checkpoint returns immediately with the best model.
    let (again, reports2) = fit_with(
        model(&device),
        &cfg,
        &device,
        &examples,
        &negatives,
        loss,
        score,
        |_| panic!("no epoch left to run"),
    )
    .unwrap();
    assert_eq!(reports2.len(), 5);
    assert_eq!(params(&again), params(&resumed));

    // A checkpoint of another config is refused.
    let mut other = cfg.clone();
    other.learning_rate = 0.1;
    let err = fit_with(
        model(&device),
        &other,
        &device,
        &examples,
        &negatives,
        loss,
        score,
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, AlignError::Checkpoint { .. }), "{err}");

    // A state that names a file outside the checkpoint folder is refused, never read.
    let state_path = dir.path().join("ckpt").join("state.json");
    let state = std::fs::read_to_string(&state_path).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&state).unwrap();
    json["model_file"] = serde_json::Value::String("../../etc/passwd".into());
    std::fs::write(&state_path, json.to_string()).unwrap();
    let err = fit_with(
        model(&device),
        &cfg,
        &device,
        &examples,
        &negatives,
        loss,
        score,
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a plain file name"), "{err}");
}

thread_local! {
    static CRASH: Cell<usize> = const { Cell::new(0) };
}

#[test]
fn baselines_trainer_keeps_the_best_model_and_stops_early() {
    let device = Device::flex();
    let (ds, split) = toy();
    let examples = training_examples(&ds, &split, None);
    let mut cfg = config(20);
    cfg.eval_every = 1;
    cfg.patience = 2;
    // Validation peaks at epoch 1, then falls: training stops after epoch 3 and returns
    // the model of epoch 1.
    let scores = [0.1, 0.5, 0.3, 0.2, 0.9];
    let epoch = Cell::new(0usize);
    let snapshots = std::cell::RefCell::new(Vec::new());
    let (best, reports) = fit(
        model(&device),
        &cfg,
        &device,
        &examples,
        |m: &BprMfModule, b, n, d| m.loss(b, n, d),
        |m: &BprMfModule| {
            let e = epoch.get();
            epoch.set(e + 1);
            snapshots.borrow_mut().push(params(m));
            Ok(scores[e])
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(reports.len(), 4);
    assert_eq!(reports[1].valid_ndcg10, Some(0.5));
    assert_eq!(params(&best), snapshots.borrow()[1]);
}

#[test]
fn baselines_trainer_rejects_bad_configs_and_empty_data() {
    let device = Device::flex();
    let (ds, split) = toy();
    let examples = training_examples(&ds, &split, None);
    let loss = |m: &BprMfModule, b: &[&Example], n: &_, d: &Device| m.loss(b, n, d);
    for (field, cfg) in [
        (
            "batch_size",
            TrainConfig {
                batch_size: 0,
                ..config(1)
            },
        ),
        (
            "learning_rate",
            TrainConfig {
                learning_rate: f64::NAN,
                ..config(1)
            },
        ),
        (
            "warmup_fraction",
            TrainConfig {
                warmup_fraction: 1.5,
                ..config(1)
            },
        ),
        (
            "grad_clip_norm",
            TrainConfig {
                grad_clip_norm: Some(0.0),
                ..config(1)
            },
        ),
    ] {
        let err = fit(
            model(&device),
            &cfg,
            &device,
            &examples,
            loss,
            |_: &BprMfModule| Ok(0.0),
            |_| {},
        )
        .unwrap_err();
        match err {
            AlignError::Config { field: f, .. } => assert_eq!(f, field),
            other => panic!("{field}: {other}"),
        }
    }
    let err = fit(
        model(&device),
        &config(1),
        &device,
        &[],
        loss,
        |_: &BprMfModule| Ok(0.0),
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, AlignError::Data { .. }));
    // Serde round trip with defaults for missing fields.
    let cfg: TrainConfig = serde_json::from_str(r#"{"epochs": 3, "seed": 9}"#).unwrap();
    assert_eq!((cfg.epochs, cfg.seed, cfg.batch_size), (3, 9, 256));
    assert!(serde_json::from_str::<TrainConfig>(r#"{"epoch": 3}"#).is_err());
}

#[test]
fn baselines_trainer_schedule_and_sampler() {
    let cfg = TrainConfig {
        learning_rate: 1.0,
        warmup_fraction: 0.1,
        min_lr_fraction: 0.1,
        ..TrainConfig::default()
    };
    // 100 steps: 10 warm-up steps to the peak, cosine to 0.1 at the last step.
    assert!((lr_at(&cfg, 0, 100) - 0.1).abs() < 1e-12);
    assert!((lr_at(&cfg, 9, 100) - 1.0).abs() < 1e-12);
    assert!((lr_at(&cfg, 10, 100) - 1.0).abs() < 1e-12);
    assert!((lr_at(&cfg, 99, 100) - 0.1).abs() < 1e-9);
    let mid = lr_at(&cfg, 54, 100);
    assert!(mid > 0.5 && mid < 0.6, "{mid}");
    for s in 1..100 {
        if s >= 10 {
            assert!(lr_at(&cfg, s, 100) <= lr_at(&cfg, s - 1, 100) + 1e-12);
        }
    }

    // Negatives: never the positive, never a training positive of the user.
    let (ds, split) = toy();
    let examples = training_examples(&ds, &split, None);
    let per_user = mspa_align::data::user_train_authors(&ds, &split);
    let neg = Negatives::uniform(ds.n_authors()).avoiding(per_user.clone());
    let batch: Vec<&Example> = examples.iter().collect();
    let mut rng = SplitMix64::new(5);
    let nb = neg.sample(&batch, 6, &mut rng).unwrap();
    assert_eq!(nb.batch_size(), batch.len());
    for (i, ex) in batch.iter().enumerate() {
        for a in nb.row(i) {
            assert_ne!(*a, ex.positive);
            assert!(per_user[ex.user.index()].binary_search(a).is_err());
        }
    }
    // Same seed, same draws.
    let nb2 = neg.sample(&batch, 6, &mut SplitMix64::new(5)).unwrap();
    assert_eq!(nb, nb2);
    assert_eq!(nb.to_tensor(&Device::flex()).dims(), [batch.len(), 6]);
    // Examples: leak-free prefixes.
    for ex in &examples {
        assert!(ex.history.end <= split.train.iter().copied().max().unwrap() + 1);
        assert_eq!(ds.events()[ex.history.end].author, ex.positive);
        assert_eq!(ex.history.start, ds.user_range(ex.user).start);
    }
    // Popularity weighting follows the counts; a sampler whose only weight is on the
    // positive still terminates with other authors.
    let pop = Negatives::popularity(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1000], 1.0).unwrap();
    let nb = pop.sample(&batch[..4], 50, &mut rng).unwrap();
    let nines = nb.authors.iter().filter(|a| a.0 == 9).count();
    assert!(nines > 150, "{nines} of 200 draws hit the popular author");
    let lone: Vec<Example> = (0..3)
        .map(|i| Example {
            user: UserId(i),
            history: 0..0,
            positive: AuthorId(1),
            at_ms: 0,
        })
        .collect();
    let only = Negatives::from_examples(&lone, 0.0).unwrap();
    let refs: Vec<&Example> = lone.iter().collect();
    let nb = only.sample(&refs, 3, &mut rng).unwrap();
    assert!(nb.authors.iter().all(|a| a.0 == 0));
    assert!(Negatives::popularity(&[1, 2], -1.0).is_err());

    let capped = training_examples(&ds, &split, Some(2));
    assert_eq!(capped.len(), 12 * 2);
    assert_eq!(
        capped[0].history.len(),
        4,
        "the most recent examples are kept"
    );
}

/// The trainer on the wgpu device (Mesa lavapipe on machines without a GPU) follows
/// the flex run from the same initial weights.
#[test]
fn baselines_trainer_wgpu_matches_flex() {
    if !mspa_modal::device::compiled_devices().contains(&"wgpu") {
        eprintln!("wgpu not compiled in: skipped");
        return;
    }
    let wgpu = mspa_modal::device::device_from_name("wgpu").unwrap();
    let flex = Device::flex();
    let (ds, split) = toy();
    let examples = training_examples(&ds, &split, None);
    let negatives = Negatives::uniform(ds.n_authors());
    let run = |device: &Device| {
        let m = model(&flex).to_device(device);
        fit_with(
            m,
            &config(4),
            device,
            &examples,
            &negatives,
            |m: &BprMfModule, b, n, d| m.loss(b, n, d),
            |_m: &BprMfModule| Ok(0.0),
            |_| {},
        )
        .unwrap()
    };
    let (m_flex, r_flex) = run(&flex);
    let (m_wgpu, r_wgpu) = run(&wgpu);
    for (a, b) in r_flex.iter().zip(&r_wgpu) {
        assert!((a.train_loss - b.train_loss).abs() < 1e-5, "{a:?} vs {b:?}");
    }
    let (p, q) = (params(&m_flex), params(&m_wgpu));
    let max = p
        .iter()
        .zip(&q)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("wgpu vs flex after 4 epochs: max parameter difference {max:.3e}");
    assert!(max < 1e-4, "{max}");
}
