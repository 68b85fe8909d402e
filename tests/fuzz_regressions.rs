//! Regression tests from the fuzzers in `fuzz/` (see fuzz/README.md): every input the
//! fuzzers found crashing, hanging or otherwise misbehaving, plus a few hostile inputs
//! of each format, kept under `tests/fuzz_regressions/<target>/<case>/` as the files the
//! parser reads. Each test feeds every case of its target to the parser the fuzz target
//! exercises, the same way the fuzz target does: an `Err` is a correct answer, a panic is
//! not.
//!
//! Directory names say what a case is: `seed-…` a sample input of the format, `caught-…`
//! a panic inside a third-party decoder that the library contains (it must stay an
//! error), `fixed-…` a bug the fuzzers found and the library has since fixed, `open-…` a
//! bug still there: the per-target tests skip `open-…` cases and a test marked ignored
//! with the reason `bug: ...` names each (none is open now). When one is fixed, rename its
//! directory to `fixed-…` and drop the ignore marker.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use mspa_align::baselines::BprMfModule;
use mspa_align::data::{Example, Negatives, training_examples};
use mspa_align::train::{TrainConfig, checkpoint_reports, fit_with};
#[cfg(feature = "llm-http")]
use mspa_composer::llm_http::{LlmHttpComposer, LlmHttpConfig};
use mspa_composer::schema::PreferenceSchema;
use mspa_modal::audio::AudioPipeline;
use mspa_modal::features::FeatureStore;
use mspa_modal::frames::{FrameConfig, load_frame};
use mspa_modal::text::TextTokenizer;

/// Longest a single case may take (the fuzzers flag inputs over 3 s as slow).
const MAX_CASE: Duration = Duration::from_secs(20);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions")
}

/// The case directories of `target` (open bugs only when `open`).
fn cases(target: &str, open: bool) -> Vec<PathBuf> {
    let dir = root().join(target);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("open-")
                == open
        })
        .collect();
    out.sort();
    out
}

/// Copies a case into a fresh folder (parsers may write next to their input).
fn staged(case: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(case).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && p.file_name().unwrap() != "README.txt" {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// Runs `f` on every case; collects the cases that panic or take too long.
fn run_cases(target: &str, cases: &[PathBuf], mut f: impl FnMut(&Path)) {
    let mut failures = Vec::new();
    for case in cases {
        let dir = staged(case);
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| f(dir.path())));
        let took = t.elapsed();
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if let Err(p) = r {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            failures.push(format!("{name}: panicked: {msg}"));
        } else if took > MAX_CASE {
            failures.push(format!("{name}: took {took:?}"));
        }
    }
    assert!(failures.is_empty(), "{target}: {failures:#?}");
}

/// The files of a case (several for media cases: each is one input).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no file", dir.display());
    files
}

fn schema() -> PreferenceSchema {
    PreferenceSchema::from_json(&mspa_core::synth::reference::schema_json()).unwrap()
}

// ------------------------------------------------------------------ the parsers

fn native(dir: &Path) {
    let _ = mspa_core::load_native(dir);
}

fn twitch(dir: &Path) {
    let _ = mspa_core::load_twitch(&dir.join("100k.csv"));
}

fn kuailive(dir: &Path) {
    let _ = mspa_core::load_kuailive(dir);
}

fn preference(dir: &Path) {
    let schema = schema();
    let text = std::fs::read(dir.join("preference.txt")).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    if let Ok(p) = schema.parse(&text) {
        assert_eq!(schema.parse(&schema.render(&p)).ok(), Some(p));
    }
    let _ = mspa_core::synth::parse_reference(&text);
    if let Ok(s) = PreferenceSchema::from_json_file(dir.join("schema.json")) {
        let _ = s.parse(&text).map(|p| s.render(&p));
    }
}

fn image(dir: &Path) {
    let config = FrameConfig {
        size: 32,
        ..FrameConfig::default()
    };
    for file in files(dir) {
        if let Ok(v) = load_frame(&file, &config) {
            assert_eq!(v.len(), config.frame_len());
            assert!(v.iter().all(|x| x.is_finite()), "{}", file.display());
        }
    }
}

fn audio(dir: &Path) {
    let pipeline = AudioPipeline::new(Default::default()).unwrap();
    for file in files(dir) {
        if let Ok(s) = pipeline.log_mel_file(&file) {
            assert!(
                s.data.iter().all(|x| x.is_finite()),
                "{}: non-finite log-mel values",
                file.display()
            );
        }
    }
}

fn tokenizer(dir: &Path) {
    let text = std::fs::read(dir.join("text.txt")).unwrap_or_default();
    let text = String::from_utf8_lossy(&text).into_owned();
    let check = |tok: &TextTokenizer| {
        if let Ok(e) = tok.encode(&text) {
            assert!(e.ids.len() >= 2 && e.ids.len() <= tok.max_length());
            tok.batch(&[text.as_str(), ""]).unwrap();
        }
    };
    if let Some(d) = mspa_modal::text::pretrained::default_minilm_dir() {
        if let Ok(t) = TextTokenizer::from_dir(&d) {
            check(&t.with_max_length(64).unwrap());
        }
    }
    if dir.join("vocab.txt").exists() {
        if let Ok(t) = TextTokenizer::from_vocab(dir.join("vocab.txt"), text.len() % 2 == 0) {
            check(&t);
        }
    }
    if dir.join("tokenizer.json").exists() {
        if let Ok(t) = TextTokenizer::from_tokenizer_json(dir.join("tokenizer.json")) {
            check(&t);
        }
    }
}

fn feature_store(dir: &Path) {
    if let Ok(s) = FeatureStore::load(&dir.join("features.safetensors")) {
        let p = dir.join("again.safetensors");
        if s.save(&p).is_ok() {
            assert_eq!(FeatureStore::load(&p).unwrap(), s);
        }
    }
}

/// The trainer resuming from a checkpoint folder (the toy model of the fuzz target).
fn checkpoint(dir: &Path) {
    let device = Device::flex();
    let (ds, split) = common::toy_checkpoint_world();
    let examples = training_examples(&ds, &split, None);
    let negatives = Negatives::uniform(ds.n_authors());
    let config = TrainConfig {
        epochs: 2,
        batch_size: 16,
        learning_rate: 0.05,
        weight_decay: 0.0,
        warmup_fraction: 0.1,
        negatives: 4,
        eval_every: 1,
        patience: 0,
        seed: 7,
        checkpoint_dir: Some(dir.to_path_buf()),
        ..TrainConfig::default()
    };
    let _ = checkpoint_reports(dir);
    let _ = fit_with(
        BprMfModule::new(12, 10, 8, 0.1, 3, &device),
        &config,
        &device,
        &examples,
        &negatives,
        |m: &BprMfModule, b: &[&Example], n: &_, d: &Device| m.loss(b, n, d),
        |m: &BprMfModule| -> mspa_align::Result<f64> {
            Ok(f64::from(m.bias.weight.val().sum().into_scalar::<f32>()))
        },
        |_| {},
    );
}

#[cfg(feature = "llm-http")]
fn llm_answer(dir: &Path) {
    let schema = schema();
    let composer = LlmHttpComposer::new(
        LlmHttpConfig {
            api_key_env: None,
            ..LlmHttpConfig::default()
        },
        schema.clone(),
    )
    .unwrap();
    let text = std::fs::read(dir.join("answer.txt")).unwrap();
    let text = String::from_utf8_lossy(&text);
    if let Ok((fields, _)) = composer.repair(&text) {
        assert!(schema.parse(&schema.render(&fields)).is_ok());
    }
}

// ------------------------------------------------------------------ one test per target

macro_rules! target_test {
    ($test:ident, $target:literal, $f:ident) => {
        #[test]
        fn $test() {
            run_cases($target, &cases($target, false), $f);
        }
    };
}

target_test!(fuzz_native_loader_inputs, "native", native);
target_test!(fuzz_twitch_loader_inputs, "twitch", twitch);
target_test!(fuzz_kuailive_loader_inputs, "kuailive", kuailive);
target_test!(fuzz_preference_text_inputs, "preference", preference);
target_test!(fuzz_image_inputs, "image", image);
target_test!(fuzz_audio_inputs, "audio", audio);
target_test!(fuzz_tokenizer_inputs, "tokenizer", tokenizer);
target_test!(fuzz_feature_store_inputs, "feature_store", feature_store);
target_test!(fuzz_checkpoint_inputs, "checkpoint", checkpoint);
#[cfg(feature = "llm-http")]
target_test!(fuzz_llm_answer_inputs, "llm_answer", llm_answer);

// ------------------------------------------------------------------ named findings
//
// One test per finding, fixed ones included (their cases, `fixed-…`, also run in the
// per-target tests above). Fixed in 2f0cafa unless their doc names another commit.

/// Runs `f` on the case `target/name` (panics propagate: the test fails while the bug is
/// there).
fn open_case(target: &str, name: &str, f: impl FnOnce(&Path)) {
    let case = root().join(target).join(name);
    assert!(case.is_dir(), "{} is missing", case.display());
    let dir = staged(&case);
    f(dir.path());
}

/// A float WAV (16 kHz mono, 400 samples, one of them 3e38: finite, but far outside
/// [-1, 1]) gives +inf in every log-mel value: the power spectrum overflows f32 and the
/// top-dB clamp keeps the infinity. Decoding should reject (or clamp) samples outside
/// [-1, 1], or the spectrogram should stay finite.
#[test]
fn fixed_audio_huge_float_samples_give_a_finite_log_mel_or_an_error() {
    open_case("audio", "fixed-nonfinite-logmel-huge-float-wav", audio);
}

const CHILD_ENV: &str = "MSPA_FUZZ_REGRESSION_AUDIO_CHILD";

/// Decodes the file named by `MSPA_FUZZ_REGRESSION_AUDIO_CHILD` (only as the child of the
/// test below; does nothing otherwise).
#[test]
fn audio_decode_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let pipeline = AudioPipeline::new(Default::default()).unwrap();
    let _ = pipeline.log_mel_file(Path::new(&path));
}

/// Decodes `file` in a child process limited to 3 GiB of address space; whether it ended
/// normally.
fn decodes_within_3_gib(file: &Path) -> bool {
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 3145728 && exec \"$0\" --exact audio_decode_child --nocapture --test-threads=1")
        .arg(&exe)
        .env(CHILD_ENV, file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run the child");
    status.success()
}

/// Few-KB M4A files whose sample tables (`stco` entry count) or sample sizes declare
/// gigabytes, and FLAC files whose picture block or Vorbis comment lengths do:
/// symphonia-format-isomp4 and symphonia-metadata 0.5.5 allocate what the header says
/// (8.0, 4.3, 3.2 and 3.4 GB here), which aborted the process (an allocation failure is
/// not a panic, so `catch_decoder_panic` cannot contain it) or, with overcommit,
/// succeeded by luck. Fixed in f52a755: `mspa-modal/src/audio/guard.rs` checks every declared size
/// against the bytes that exist before symphonia sees the file. Each case must decode in a
/// child process limited to 3 GiB of address space, to an error naming the file and the
/// field.
#[test]
fn fixed_audio_mp4_headers_do_not_allocate_gigabytes() {
    for (case, field) in [
        ("fixed-mp4-stco-count-allocates-gigabytes", "`stco`"),
        ("fixed-mp4-packet-size-allocates-gigabytes", "`stsz`"),
        ("fixed-flac-picture-block-allocates-gigabytes", "PICTURE"),
        (
            "fixed-flac-vorbis-comment-allocates-gigabytes",
            "VORBIS_COMMENT",
        ),
    ] {
        let file = files(&root().join("audio").join(case)).remove(0);
        assert!(decodes_within_3_gib(&file), "{case}: the decoder died");
        let err = mspa_modal::audio::decode_audio(&file, 30.0).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&file.display().to_string()) && message.contains(field),
            "{case}: {message}"
        );
    }
}

/// A `tokenizer.json` whose `decoder` is malformed JSON (`{"decoder":{1:2}}`) panics inside
/// the `tokenizers` crate (`DecoderWrapper`'s deserializer calls `expect("Helper")`);
/// `TextTokenizer::from_tokenizer_json` should turn that into `ModalError::Tokenizer`.
#[test]
fn fixed_tokenizer_json_with_a_malformed_decoder_is_an_error() {
    open_case(
        "tokenizer",
        "fixed-tokenizer-json-decoder-panics",
        tokenizer,
    );
}

/// Checkpoints whose optimizer record (`optim-00001.bpk`) is corrupt make burn-optim
/// 0.22.1 panic inside `ModuleOptimizer::load` when `fit` resumes: a record tensor without
/// a parameter id (`expect("Optimizer record tensors should carry a parameter id.")`), an
/// optimizer state of rank 18 ("Unsupported tensor rank for optimizer state"), a tensor
/// whose dimensions differ from its rank (burn-tensor `from_data`). Each should be
/// `AlignError::Checkpoint` (load the optimizer under `catch_unwind`).
#[test]
fn fixed_checkpoint_with_a_corrupt_optimizer_record_is_an_error() {
    let mut failures = Vec::new();
    for case in [
        "fixed-optimizer-record-without-param-id",
        "fixed-optimizer-state-of-rank-18",
        "fixed-tensor-dimensions-differ-from-data",
    ] {
        if catch_unwind(|| open_case("checkpoint", case, checkpoint)).is_err() {
            failures.push(case);
        }
    }
    assert!(failures.is_empty(), "panicked: {failures:?}");
}

/// `extract_json_object` scans from every `{` to the end of the text: quadratic. An answer
/// of 50,000 `{` takes seconds (a 1 MB answer would take many minutes); it should be
/// linear (one pass tracking the depth), here well under a second.
#[cfg(feature = "llm-http")]
#[test]
fn fixed_llm_answer_json_search_is_not_quadratic() {
    open_case("llm_answer", "fixed-quadratic-json-search", |dir| {
        let t = Instant::now();
        llm_answer(dir);
        let took = t.elapsed();
        assert!(took < Duration::from_secs(1), "50,000 `{{` took {took:?}");
    });
}

/// A feature store whose `present` tensor is `[n, 1]` instead of `[n, 3]` (373 bytes, one
/// author): `FeatureStore::load` checks the row count of every tensor but not the width
/// of `present`, then indexes `p[i * 3 + 1]` out of bounds. It should be
/// `ModalError::Weights` ("tensor `present` has shape [1, 1], expected [1, 3]").
#[test]
fn fixed_feature_store_with_a_narrow_present_tensor_is_an_error() {
    open_case(
        "feature_store",
        "fixed-present-narrower-than-three",
        feature_store,
    );
}

/// A `tokenizer.json` (1.2 KB) whose `TemplateProcessing` post-processor names a special
/// token (`[XCLS]`) missing from its `special_tokens` loads without complaint, and then
/// every `TextTokenizer::encode` panics inside `tokenizers` (`template.rs`: "no entry found
/// for key"). Loading should refuse it (e.g. encode a probe text under `catch_unwind`), or
/// encoding should be an error.
#[test]
fn fixed_tokenizer_json_with_a_template_naming_a_missing_token_is_an_error() {
    open_case(
        "tokenizer",
        "fixed-template-names-a-missing-special-token",
        tokenizer,
    );
}
