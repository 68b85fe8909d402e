//! The mel filterbank and the log-mel spectrogram against librosa's (`golden/logmel.json`).
//!
//! The golden directory is `$MSPA_GOLDEN_DIR`, or the workspace's `golden/`. Every setting
//! is read from the file, so another case file with the same schema passes unchanged.

use std::path::PathBuf;

use mspa_modal::audio::{LogMelConfig, LogMelPlan, Window, decode_audio};
use serde_json::Value;

fn golden_dir() -> PathBuf {
    std::env::var_os("MSPA_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../golden")))
}

fn load_case() -> Value {
    let path = golden_dir().join("logmel.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn num(v: &Value, field: &str) -> f64 {
    v.get(field)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("field `{field}` is missing or not a number"))
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("field `{field}` is missing or not a string"))
}

fn matrix(v: &Value, field: &str) -> Vec<Vec<f64>> {
    v.get(field)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("field `{field}` is missing or not an array"))
        .iter()
        .enumerate()
        .map(|(i, row)| {
            row.as_array()
                .unwrap_or_else(|| panic!("{field}[{i}] is not an array"))
                .iter()
                .enumerate()
                .map(|(j, x)| {
                    x.as_f64()
                        .unwrap_or_else(|| panic!("{field}[{i}][{j}] is not a number"))
                })
                .collect()
        })
        .collect()
}

/// The settings of the file as a [`LogMelConfig`], refusing any it does not describe.
fn config_from(case: &Value) -> (LogMelConfig, u32) {
    let s = case.get("settings").expect("field `settings`");
    let window = text(s, "window").to_ascii_lowercase();
    let window = if window.starts_with("hann") {
        Window::Hann
    } else if window.starts_with("hamming") {
        Window::Hamming
    } else {
        panic!("settings.window `{window}` is not supported by this test")
    };
    assert!(
        text(s, "window").contains("periodic"),
        "settings.window must be periodic"
    );
    assert!(
        text(s, "pad_mode").starts_with("constant"),
        "settings.pad_mode must be constant (zeros)"
    );
    assert!(
        text(s, "mel_scale").starts_with("slaney"),
        "settings.mel_scale must be slaney"
    );
    assert_eq!(text(s, "mel_norm"), "slaney", "settings.mel_norm");
    let db = text(s, "db");
    assert!(
        db.starts_with("10*log10(max(S,"),
        "settings.db `{db}` is not 10*log10(max(S, amin))"
    );
    let amin: f32 = db["10*log10(max(S,".len()..]
        .split(')')
        .next()
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("settings.db `{db}`: cannot read amin"));
    assert!(db.contains("ref=1.0"), "settings.db must use ref=1.0");
    let top_db = if db.contains("no top_db") {
        None
    } else {
        let at = db.find("top_db=").expect("settings.db: top_db") + "top_db=".len();
        Some(
            db[at..]
                .split(|c: char| c != '.' && !c.is_ascii_digit())
                .next()
                .and_then(|t| t.parse().ok())
                .expect("settings.db: top_db value"),
        )
    };
    let fmax = s.get("fmax").and_then(Value::as_f64).map(|f| f as f32);
    let config = LogMelConfig {
        n_fft: num(s, "n_fft") as usize,
        hop_length: num(s, "hop_length") as usize,
        win_length: num(s, "win_length") as usize,
        window,
        center: s
            .get("center")
            .and_then(Value::as_bool)
            .expect("settings.center"),
        power: num(s, "power") as f32,
        n_mels: num(s, "n_mels") as usize,
        fmin: num(s, "fmin") as f32,
        fmax,
        amin,
        top_db,
    };
    (config, num(case, "sample_rate") as u32)
}

/// Compares every value; on a mismatch names the field and the index.
fn check(field: &str, got: &[Vec<f64>], want: &[Vec<f64>], tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{field}: number of rows");
    let mut max_err = 0.0f64;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{field}[{i}]: number of columns");
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            let err = (a - b).abs();
            assert!(
                err <= tol,
                "{field}[{i}][{j}]: got {a}, librosa {b} (|diff| {err:e} > {tol:e})"
            );
            max_err = max_err.max(err);
        }
    }
    eprintln!("{field}: max |diff| {max_err:e} (tolerance {tol:e})");
    max_err
}

fn rows(data: &[f32], cols: usize) -> Vec<Vec<f64>> {
    data.chunks_exact(cols)
        .map(|r| r.iter().map(|&x| f64::from(x)).collect())
        .collect()
}

#[test]
fn mel_filters_match_librosa() {
    let case = load_case();
    let (config, sr) = config_from(&case);
    let tol = num(case.get("tolerance").expect("tolerance"), "mel_filters_abs");
    let plan = LogMelPlan::new(config, sr).expect("valid settings");
    let fb = plan.filters();
    let got = rows(&fb.to_dense(), fb.n_freqs());
    check("mel_filters", &got, &matrix(&case, "mel_filters"), tol);
}

#[test]
fn logmel_of_probe_clip_matches_librosa() {
    let case = load_case();
    let (config, sr) = config_from(&case);
    let s = case.get("settings").expect("settings");
    assert!(
        text(s, "samples").contains("32768"),
        "settings.samples: only int16 / 32768 scaling is implemented"
    );
    let tol = num(case.get("tolerance").expect("tolerance"), "logmel_abs_db");
    let wav = golden_dir().join(text(&case, "wav"));
    let clip = decode_audio(&wav, f32::INFINITY)
        .unwrap_or_else(|e| panic!("cannot decode the probe clip: {e}"));
    assert_eq!(clip.sample_rate, sr, "probe clip sample rate");
    let plan = LogMelPlan::new(config, sr).expect("valid settings");
    let spec = plan.log_mel(&clip.samples);
    let shape: Vec<usize> = case
        .get("shape")
        .and_then(Value::as_array)
        .expect("shape")
        .iter()
        .map(|x| x.as_u64().expect("shape entry") as usize)
        .collect();
    assert_eq!(vec![spec.n_mels, spec.n_frames], shape, "shape");
    let got = rows(&spec.data, spec.n_frames);
    check("logmel", &got, &matrix(&case, "logmel"), tol);
}
