//! Crash safety of the files the project writes: a writer process killed (SIGKILL) at a
//! random moment leaves, under every real file name, either nothing (before the first
//! write), the complete old file or the complete new one — never a torn file.
//!
//! The test re-runs its own binary as the writer child (`crash_safety_writer_child`, which
//! does nothing unless `MSPA_CRASH_SAFETY_CHILD` names a folder). The child loops forever
//! writing
//!
//! * `data.bin` through [`mspa_core::fs::write_atomic`] (what reports, plots and the
//!   synthetic world go through): 1 to 6 MiB, a different length every version, each
//!   self-validating (a header with the version, the length and a checksum of the body);
//! * `features.safetensors` through [`FeatureStore::save`]: every value of version `v`
//!   equals `v` and the config hash says `v`;
//! * a tiny synthetic world through [`mspa_core::synth::generate`] (always the same world,
//!   so whatever mix of old and new files is there must load);
//! * on a second thread, training checkpoints through [`mspa_align::train::fit_with`] with
//!   `checkpoint_dir` set (a toy BPR-MF model, one checkpoint per epoch, for ever): after a
//!   kill, `state.json` must parse and the run must resume from it (the model, best-model
//!   and optimizer files it names must load).
//!
//! The parent kills 20 children after random delays of 0 to 50 ms once they run, and
//! after each kill loads what is there.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use mspa_align::baselines::BprMfModule;
use mspa_align::data::{Example, Negatives, training_examples};
use mspa_align::train::{TrainConfig, checkpoint_reports, fit_with};
use mspa_core::rng::SplitMix64;
use mspa_modal::features::{AuthorFeatures, FeatureStore, StoredFeatures};

const CHILD_ENV: &str = "MSPA_CRASH_SAFETY_CHILD";
const MAGIC: &[u8; 8] = b"MSPAVER1";
const HEADER: usize = 8 + 8 + 8 + 8;

fn checksum(bytes: &[u8]) -> u64 {
    // FNV-1a, 64 bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Version `v` of `data.bin`: magic, version, body length, checksum, body.
fn version_bytes(v: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(v.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xC0FFEE);
    let len = (1 << 20) + rng.below(5 << 20);
    let mut body = vec![0u8; len];
    for chunk in body.chunks_mut(8) {
        let x = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&x[..chunk.len()]);
    }
    let mut out = Vec::with_capacity(HEADER + len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&v.to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
    out.extend_from_slice(&checksum(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The version a complete `data.bin` holds; panics on a torn or foreign file.
fn check_version_bytes(bytes: &[u8]) -> u64 {
    assert!(
        bytes.len() >= HEADER,
        "torn data.bin: {} bytes",
        bytes.len()
    );
    assert_eq!(&bytes[..8], MAGIC, "torn data.bin: bad magic");
    let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
    let (v, len, sum) = (word(8), word(16) as usize, word(24));
    assert_eq!(
        bytes.len() - HEADER,
        len,
        "torn data.bin: version {v} has {} body bytes, header says {len}",
        bytes.len() - HEADER
    );
    assert_eq!(checksum(&bytes[HEADER..]), sum, "torn data.bin: checksum");
    v
}

fn store(v: u64) -> FeatureStore {
    let x = v as f32;
    FeatureStore {
        config_hash: format!("v{v}"),
        entries: (0..1500)
            .map(|i| StoredFeatures {
                author: format!("author-{i}"),
                media_hash: format!("h{v}"),
                features: AuthorFeatures {
                    visual: vec![x; 64],
                    audio: vec![x; 32],
                    text: vec![x; 16],
                    present: [true, v % 2 == 0, true],
                },
            })
            .collect(),
    }
}

fn world_config() -> mspa_core::synth::SyntheticWorldConfig {
    mspa_core::synth::SyntheticWorldConfig {
        seed: 5,
        authors: 12,
        users: 40,
        mean_tips_per_user: 3.0,
        frames_per_author: 2,
        frame_size: 32,
        audio_seconds: 0.5,
        sample_rate: 8_000,
        ..Default::default()
    }
}

/// Trains the toy model with checkpoints in `dir` for `epochs` epochs (resuming from what
/// is there); the number of epoch reports.
fn train(dir: &Path, epochs: usize) -> mspa_align::Result<usize> {
    let device = Device::flex();
    let (ds, split) = common::toy_checkpoint_world();
    let examples = training_examples(&ds, &split, None);
    let config = TrainConfig {
        epochs,
        batch_size: 16,
        learning_rate: 0.01,
        weight_decay: 0.0,
        negatives: 4,
        eval_every: 1,
        patience: 0,
        seed: 7,
        checkpoint_dir: Some(dir.to_path_buf()),
        ..TrainConfig::default()
    };
    fit_with(
        BprMfModule::new(12, 10, 8, 0.1, 3, &device),
        &config,
        &device,
        &examples,
        &Negatives::uniform(ds.n_authors()),
        |m: &BprMfModule, b: &[&Example], n: &_, d: &Device| m.loss(b, n, d),
        // A "validation" that improves now and then, so best-model files come and go.
        |m: &BprMfModule| -> mspa_align::Result<f64> {
            Ok(f64::from(m.bias.weight.val().sum().into_scalar::<f32>()))
        },
        |_| {},
    )
    .map(|(_, reports)| reports.len())
}

/// The writer: runs only as the child of the test below.
#[test]
fn crash_safety_writer_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let checkpoints = dir.join("checkpoint");
    std::thread::spawn(move || train(&checkpoints, 1_000_000).unwrap());
    std::fs::write(dir.join("ready"), b"1").unwrap();
    let config = world_config();
    for v in 1u64.. {
        mspa_core::fs::write_atomic(&dir.join("data.bin"), &version_bytes(v)).unwrap();
        if v % 2 == 0 {
            store(v).save(&dir.join("features.safetensors")).unwrap();
        }
        if v % 3 == 0 {
            mspa_core::synth::generate(&config, &dir.join("world")).unwrap();
        }
    }
}

#[derive(Default, Debug)]
struct Seen {
    data_versions: Vec<u64>,
    store_versions: Vec<u64>,
    world_loads: usize,
    checkpoint_epochs: Vec<usize>,
    leftover_temporaries: usize,
}

/// Loads whatever a killed writer left in `dir`; panics on a torn file.
fn check(dir: &Path, seen: &mut Seen) {
    let data = dir.join("data.bin");
    if data.exists() {
        seen.data_versions
            .push(check_version_bytes(&std::fs::read(&data).unwrap()));
    }
    let features = dir.join("features.safetensors");
    if features.exists() {
        let s = FeatureStore::load(&features).unwrap_or_else(|e| panic!("torn feature store: {e}"));
        let v: u64 = s.config_hash[1..].parse().unwrap();
        assert_eq!(s.entries.len(), 1500, "feature store version {v}");
        let x = v as f32;
        for e in &s.entries {
            assert_eq!(e.media_hash, format!("h{v}"));
            assert!(
                e.features
                    .visual
                    .iter()
                    .chain(&e.features.audio)
                    .chain(&e.features.text)
                    .all(|&y| y == x),
                "feature store version {v} holds values of another version"
            );
        }
        seen.store_versions.push(v);
    }
    let world = dir.join("world");
    if world.join("authors.jsonl").exists() && world.join("tips.csv").exists() {
        let ds = mspa_core::load_native(&world).unwrap_or_else(|e| panic!("torn world: {e}"));
        assert!(ds.n_events() > 0);
        for entry in std::fs::read_dir(&world).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with('.') && name.ends_with(".json") {
                let text = std::fs::read_to_string(&p).unwrap();
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or_else(|e| panic!("torn {name}: {e}"));
            }
        }
        if world.join("truth.json").exists() && world.join("truth_users.jsonl").exists() {
            mspa_core::synth::Truth::load(&world).unwrap_or_else(|e| panic!("torn truth: {e}"));
        }
        seen.world_loads += 1;
    }
    let live = dir.join("checkpoint");
    if live.join("state.json").exists() {
        // Burn reads `.bpk` tensors lazily, from the file, on its device threads: resume
        // from a private copy, so that the next writer deleting old epoch files cannot
        // pull them from under this check.
        let checkpoints = dir.join(format!("copy-{}", seen.checkpoint_epochs.len()));
        std::fs::create_dir_all(&checkpoints).unwrap();
        for e in std::fs::read_dir(&live).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, checkpoints.join(p.file_name().unwrap())).unwrap();
            }
        }
        let reports = checkpoint_reports(&checkpoints)
            .unwrap_or_else(|e| panic!("torn checkpoint state: {e}"))
            .expect("a state");
        // Resume with no epoch left to run: loads every file the state names.
        let n = train(&checkpoints, reports.len().max(1))
            .unwrap_or_else(|e| panic!("checkpoint does not resume: {e}"));
        assert_eq!(n, reports.len());
        seen.checkpoint_epochs.push(n);
    }
    let leftover = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().contains(".tmp"))
        })
        .count();
    seen.leftover_temporaries = seen.leftover_temporaries.max(leftover);
}

#[test]
fn killed_writers_leave_the_old_or_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = SplitMix64::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    let started = Instant::now();
    let mut seen = Seen::default();
    let rounds = 20;
    for round in 0..rounds {
        let _ = std::fs::remove_file(dir.path().join("ready"));
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_safety_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the writer child");
        let wait_from = Instant::now();
        while !dir.path().join("ready").exists() {
            assert!(
                wait_from.elapsed() < Duration::from_secs(20),
                "the writer child never started"
            );
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the writer child exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // Later rounds let the child run longer, so that the world and the feature store
        // get written (and killed mid-write) too.
        let extra = if round % 4 == 3 { 150 } else { 0 };
        std::thread::sleep(Duration::from_millis(rng.below(51) as u64 + extra));
        child.kill().expect("kill the writer child");
        let status = child.wait().unwrap();
        assert!(!status.success(), "the writer child ended on its own");
        check(dir.path(), &mut seen);
    }
    eprintln!(
        "{rounds} kills in {:.1} s: data.bin versions {:?}, feature store versions {:?}, world loaded {} times, checkpoint epochs {:?}, at most {} temporaries left by killed writers",
        started.elapsed().as_secs_f64(),
        seen.data_versions,
        seen.store_versions,
        seen.world_loads,
        seen.checkpoint_epochs,
        seen.leftover_temporaries
    );
    // The writers got far enough for the check to mean something.
    assert!(
        seen.data_versions.len() >= rounds / 2,
        "data.bin was written in too few rounds: {seen:?}"
    );
    assert!(
        !seen.store_versions.is_empty(),
        "no feature store was ever written: {seen:?}"
    );
    assert!(seen.world_loads > 0, "no world was ever written: {seen:?}");
    assert!(
        !seen.checkpoint_epochs.is_empty(),
        "no checkpoint was ever written: {seen:?}"
    );
}
