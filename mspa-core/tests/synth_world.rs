//! The synthetic world on disk: determinism, decodable media, the native format, errors.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mspa_core::synth::{
    Progress, SynthError, SyntheticWorldConfig, generate, generate_with_progress,
};

fn tiny(seed: u64) -> SyntheticWorldConfig {
    SyntheticWorldConfig {
        seed,
        authors: 20,
        users: 50,
        audio_seconds: 1.0,
        ..Default::default()
    }
}

/// Every file under `dir`, by relative path, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn authors_jsonl(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("authors.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn synth_same_seed_gives_byte_identical_files() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    generate(&tiny(7), a.path()).unwrap();
    generate(&tiny(7), b.path()).unwrap();
    generate(&tiny(8), c.path()).unwrap();
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (path, bytes) in &fa {
        assert!(
            bytes == &fb[path],
            "{} differs between runs",
            path.display()
        );
    }
    for name in [
        "authors.jsonl",
        "tips.csv",
        "truth.json",
        "truth_users.jsonl",
        "world.json",
    ] {
        assert!(fa.contains_key(Path::new(name)), "{name} missing");
    }
    // No temporary files are left behind.
    assert!(fa.keys().all(|p| !p.to_string_lossy().ends_with(".tmp")));
    // Another seed gives another world.
    assert_ne!(fa[Path::new("tips.csv")], fc[Path::new("tips.csv")]);
}

fn decode_wav(path: &Path) -> (u32, usize, usize) {
    use symphonia::core::codecs::DecoderOptions;
    use symphonia::core::errors::Error;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let file = std::fs::File::open(path).unwrap();
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("wav");
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut format = probed.format;
    let track = format.default_track().expect("a track");
    let rate = track.codec_params.sample_rate.expect("sample rate");
    let channels = track.codec_params.channels.expect("channels").count();
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .unwrap();
    let mut frames = 0;
    loop {
        match format.next_packet() {
            Ok(packet) => frames += decoder.decode(&packet).unwrap().frames(),
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    (rate, channels, frames)
}

#[test]
fn synth_every_png_and_wav_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let config = SyntheticWorldConfig {
        audio_dropout: 0.3,
        frame_dropout: 0.2,
        ..tiny(3)
    };
    let summary = generate(&config, dir.path()).unwrap();
    let (mut frames, mut clips) = (0, 0);
    for author in authors_jsonl(dir.path()) {
        for frame in author["frames"].as_array().unwrap() {
            let rel = frame.as_str().unwrap();
            assert!(
                !rel.contains("..") && !Path::new(rel).is_absolute(),
                "{rel}"
            );
            let img = image::open(dir.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(
                (img.width(), img.height()),
                (config.frame_size, config.frame_size)
            );
            assert_eq!(img.color(), image::ColorType::Rgb8);
            frames += 1;
        }
        if let Some(rel) = author["audio"].as_str() {
            assert!(
                !rel.contains("..") && !Path::new(rel).is_absolute(),
                "{rel}"
            );
            let (rate, channels, n) = decode_wav(&dir.path().join(rel));
            assert_eq!((rate, channels), (16_000, 1));
            assert_eq!(n, 16_000);
            clips += 1;
        }
    }
    assert_eq!((frames, clips), (summary.frames, summary.audio_clips));
    assert!(clips > 0 && frames > 0);
}

#[test]
fn synth_writes_the_native_format() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny(11);
    let summary = generate(&config, dir.path()).unwrap();
    let authors = authors_jsonl(dir.path());
    assert_eq!(authors.len(), 20);
    let mut ids = HashSet::new();
    for a in &authors {
        let obj = a.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
        for k in ["id", "name", "title", "description", "frames", "audio"] {
            assert!(keys.contains(&k), "missing {k}");
        }
        assert_eq!(keys.len(), 6, "{keys:?}");
        assert!(!a["title"].as_str().unwrap().is_empty());
        assert!(ids.insert(a["id"].as_str().unwrap().to_string()));
    }
    let csv = std::fs::read_to_string(dir.path().join("tips.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("user_id,author_id,amount,timestamp_ms"));
    let (start, end) = (config.start_ms, config.start_ms + config.span_ms());
    let mut users = HashSet::new();
    let mut last: Option<(String, i64)> = None;
    let mut n = 0u64;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 4, "{line}");
        assert!(ids.contains(f[1]), "{line}");
        let (whole, cents) = f[2].split_once('.').unwrap();
        assert_eq!(cents.len(), 2, "{line}");
        assert!(whole.parse::<u64>().is_ok());
        assert!(f[2].parse::<f64>().unwrap() > 0.0);
        let t: i64 = f[3].parse().unwrap();
        assert!((start..=end).contains(&t), "{line}");
        if let Some((u, prev)) = &last {
            if u == f[0] {
                assert!(t > *prev, "tips of {u} out of order");
            } else {
                assert!(!users.contains(f[0]), "tips of {} not grouped", f[0]);
            }
        }
        users.insert(f[0].to_string());
        last = Some((f[0].to_string(), t));
        n += 1;
    }
    assert_eq!(users.len(), 50, "every user tips at least once");
    assert_eq!(n, summary.tips);
    let world: SyntheticWorldConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("world.json")).unwrap())
            .unwrap();
    assert_eq!(world, config);
}

#[test]
fn synth_some_authors_lack_a_modality() {
    let dir = tempfile::tempdir().unwrap();
    let config = SyntheticWorldConfig {
        audio_dropout: 0.5,
        description_dropout: 0.5,
        frame_dropout: 0.5,
        ..tiny(5)
    };
    let summary = generate(&config, dir.path()).unwrap();
    let authors = authors_jsonl(dir.path());
    assert!(authors.iter().any(|a| a["audio"].is_null()));
    assert!(authors.iter().any(|a| a["audio"].is_string()));
    assert!(authors.iter().any(|a| a["description"] == ""));
    assert!(
        authors
            .iter()
            .any(|a| a["frames"].as_array().unwrap().is_empty())
    );
    assert_eq!(
        summary.descriptions,
        authors.iter().filter(|a| a["description"] != "").count()
    );
}

#[test]
fn synth_reports_progress_and_rejects_bad_input_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Mutex::new(Vec::new());
    let summary =
        generate_with_progress(&tiny(1), dir.path(), &|p| seen.lock().unwrap().push(p)).unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.contains(&Progress::Authors {
        done: 20,
        total: 20
    }));
    assert!(seen.contains(&Progress::Users {
        done: 50,
        total: 50,
        tips: summary.tips
    }));

    let bad = SyntheticWorldConfig {
        users: 0,
        ..tiny(1)
    };
    match generate(&bad, &dir.path().join("x")) {
        Err(SynthError::InvalidConfig { field: "users", .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        !dir.path().join("x").exists(),
        "nothing written for a bad config"
    );

    let file = dir.path().join("a_file");
    std::fs::write(&file, b"not a dir").unwrap();
    let err = generate(&tiny(1), &file.join("world")).unwrap_err();
    assert!(matches!(err, SynthError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("a_file"), "{err}");
}

#[test]
fn synth_world_loads_through_the_native_loader() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(&tiny(3), dir.path()).unwrap();
    let ds = mspa_core::load_native(dir.path()).unwrap();
    assert_eq!(ds.n_authors(), 20);
    assert_eq!(ds.n_events() as u64, summary.tips as u64);
    assert!(ds.n_users() <= 50 && ds.n_users() > 0);
    // Every media path the loader accepted exists on disk.
    for a in ds.authors() {
        for f in &a.frames {
            assert!(ds.media_path(f).exists(), "{}", f.display());
        }
        if let Some(w) = &a.audio {
            assert!(ds.media_path(w).exists(), "{}", w.display());
        }
    }
    let split = mspa_core::Split::leave_last_out(&ds);
    assert!(!split.test.is_empty());
}
