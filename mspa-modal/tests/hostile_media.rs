//! Hostile and damaged media: truncated or corrupt images and audio are errors naming the
//! file (never partial content), media paths that leave the dataset root (symbolic links
//! included) are refused naming the author and the path, and NaN features are refused
//! where they enter.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{Delay, Frame, ImageEncoder, Rgb, RgbImage, RgbaImage};
use mspa_core::synth::{SyntheticWorldConfig, generate};
use mspa_modal::ModalError;
use mspa_modal::audio::decode_audio;
use mspa_modal::encoders::{AudioEncoderConfig, VisualEncoderConfig};
use mspa_modal::features::{
    AuthorFeatures, ExtractOptions, ExtractorConfig, FeatureExtractor, FeatureStore, StoredFeatures,
};
use mspa_modal::frames::{FrameConfig, MAX_IMAGE_FILE_BYTES, decode_image, load_frame};

/// A noisy picture, so that JPEG needs many bytes for it.
fn noisy(w: u32, h: u32) -> RgbImage {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    RgbImage::from_fn(w, h, |x, y| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        Rgb([(x * 2) as u8, (y * 3) as u8, s as u8])
    })
}

fn encode(img: &RgbImage, ext: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (w, h) = img.dimensions();
    let rgb = image::ExtendedColorType::Rgb8;
    match ext {
        "png" => PngEncoder::new(&mut out)
            .write_image(img.as_raw(), w, h, rgb)
            .unwrap(),
        "jpg" => JpegEncoder::new_with_quality(&mut out, 90)
            .write_image(img.as_raw(), w, h, rgb)
            .unwrap(),
        "webp" => WebPEncoder::new_lossless(&mut out)
            .write_image(img.as_raw(), w, h, rgb)
            .unwrap(),
        "gif" => {
            let mut enc = GifEncoder::new(&mut out);
            let rgba = RgbaImage::from_fn(w, h, |x, y| {
                let p = img.get_pixel(x, y).0;
                image::Rgba([p[0], p[1], p[2], 255])
            });
            enc.encode_frame(Frame::from_parts(
                rgba,
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            ))
            .unwrap();
            drop(enc);
        }
        other => panic!("{other}"),
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Asserts `result` is a decode error naming `name` and containing `needle`.
fn assert_refused<T: std::fmt::Debug>(result: mspa_modal::Result<T>, name: &str, needle: &str) {
    match result {
        Err(e @ ModalError::Decode { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "{name}: `{msg}` does not name the file");
            assert!(msg.contains(needle), "{name}: `{msg}` lacks `{needle}`");
        }
        other => panic!("{name}: expected a decode error, got {other:?}"),
    }
}

/// The case: a JPEG cut to its first 3,000 bytes was decoded to a half-grey
/// picture. Every cut of every format is now an error naming the file.
#[test]
fn truncated_images_are_refused_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let config = FrameConfig::default();
    let img = noisy(128, 96);
    for ext in ["jpg", "png", "webp", "gif"] {
        let bytes = encode(&img, ext);
        let whole = write(dir.path(), &format!("whole.{ext}"), &bytes);
        load_frame(&whole, &config).unwrap();
        let n = bytes.len();
        let mut cuts = vec![n / 2, n - 1, n * 9 / 10];
        if ext == "jpg" {
            assert!(n > 6000, "{n}");
            cuts.push(3000);
            cuts.push(n - 2); // everything but the end-of-image marker
        }
        for cut in cuts {
            let name = format!("cut{cut}.{ext}");
            let path = write(dir.path(), &name, &bytes[..cut]);
            let needle = if ext == "gif" && cut == n - 1 {
                // Only the trailer byte is missing: the image is whole.
                load_frame(&path, &config).unwrap();
                continue;
            } else {
                "truncated"
            };
            assert_refused(load_frame(&path, &config), &name, needle);
        }
    }
    // Bytes after a JPEG's end-of-image marker are ignored, as every decoder does.
    let mut padded = encode(&img, "jpg");
    let reference = {
        let path = write(dir.path(), "plain.jpg", &padded);
        decode_image(&path, 16_384).unwrap()
    };
    padded.extend_from_slice(&[0u8; 100]);
    let path = write(dir.path(), "padded.jpg", &padded);
    assert_eq!(decode_image(&path, 16_384).unwrap(), reference);
    // A corrupt JPEG segment length is refused too.
    let mut bad_len = encode(&img, "jpg");
    bad_len[4..6].copy_from_slice(&[0, 1]);
    let path = write(dir.path(), "badlen.jpg", &bad_len);
    assert_refused(load_frame(&path, &config), "badlen.jpg", "corrupt JPEG");
}

#[test]
fn oversized_image_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.png");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_IMAGE_FILE_BYTES + 1).unwrap(); // sparse: costs no disk
    drop(file);
    assert_refused(
        decode_image(&path, 16_384),
        "huge.png",
        "MAX_IMAGE_FILE_BYTES",
    );
}

/// A 16-bit PCM (format 1) or 32-bit float (format 3) mono WAV.
fn wav(samples: &[f32], rate: u32, float: bool) -> Vec<u8> {
    let (format, bits) = if float { (3u16, 32u16) } else { (1, 16) };
    let block = bits / 8;
    let data_len = samples.len() as u32 * u32::from(block);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for &x in samples {
        if float {
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            out.extend_from_slice(&((x * 32767.0) as i16).to_le_bytes());
        }
    }
    out
}

fn tone(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.05).sin() * 0.5).collect()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

#[test]
fn truncated_and_corrupt_audio_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = wav(&tone(8000), 16_000, false);
    // The whole file decodes; a data chunk shorter than its header claims does not.
    let path = write(dir.path(), "whole.wav", &good);
    assert_eq!(decode_audio(&path, 30.0).unwrap().samples.len(), 8000);
    for cut in [good.len() - 1, good.len() - 2, good.len() / 2, 46] {
        let name = format!("cut{cut}.wav");
        let path = write(dir.path(), &name, &good[..cut]);
        assert_refused(decode_audio(&path, 30.0), &name, "truncated WAV");
    }
    // A streamed WAV (ffmpeg to a pipe) declares its lengths as 0xFFFFFFFF: accepted.
    let mut streamed = good.clone();
    streamed[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    let path = write(dir.path(), "streamed.wav", &streamed);
    assert_eq!(decode_audio(&path, 30.0).unwrap().samples.len(), 8000);
    // The committed fixtures cut by one byte, by a tenth, by half.
    for name in [
        "tone_1k_48k_stereo.flac",
        "tone_1k_44k_mono.mp3",
        "tone_1k_22k_mono.ogg",
        "tone_1k_44k_stereo.m4a",
    ] {
        let bytes = fixture(name);
        let n = bytes.len();
        for cut in [n - 1, n * 9 / 10, n / 2] {
            let cut_name = format!("cut{cut}-{name}");
            let path = write(dir.path(), &cut_name, &bytes[..cut]);
            match decode_audio(&path, 30.0) {
                Err(e) => assert!(e.to_string().contains(&cut_name), "{e}"),
                Ok(clip) => panic!("{cut_name}: decoded {} s", clip.seconds()),
            }
        }
    }
    // An Ogg file cut exactly before its last page has only whole pages, but no
    // end-of-stream page.
    let ogg = fixture("tone_1k_22k_mono.ogg");
    let last_page = ogg.windows(4).rposition(|w| w == b"OggS").unwrap();
    let path = write(dir.path(), "pages.ogg", &ogg[..last_page]);
    assert!(decode_audio(&path, 30.0).is_err());
    // A FLAC stream with a stretch of its middle zeroed (lost frames).
    let mut flac = fixture("tone_1k_48k_stereo.flac");
    let (a, b) = (flac.len() / 3, flac.len() * 2 / 3);
    flac[a..b].fill(0);
    let path = write(dir.path(), "corrupt.flac", &flac);
    match decode_audio(&path, 30.0) {
        Err(e) => assert!(e.to_string().contains("corrupt.flac"), "{e}"),
        Ok(clip) => panic!("corrupt.flac decoded to {} s", clip.seconds()),
    }
    // A cut beyond the maximum length does not matter for formats decoded as a stream,
    // but a WAV's header is checked first.
    let path = write(dir.path(), "cut_late.wav", &good[..good.len() - 10]);
    assert_refused(decode_audio(&path, 0.1), "cut_late.wav", "truncated WAV");
}

#[test]
fn float_audio_with_nan_or_infinity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut samples = tone(4000);
    let path = write(dir.path(), "float.wav", &wav(&samples, 16_000, true));
    assert_eq!(decode_audio(&path, 30.0).unwrap().samples.len(), 4000);
    samples[1234] = f32::NAN;
    let path = write(dir.path(), "nan.wav", &wav(&samples, 16_000, true));
    assert_refused(decode_audio(&path, 30.0), "nan.wav", "sample 1234");
    samples[1234] = f32::INFINITY;
    let path = write(dir.path(), "inf.wav", &wav(&samples, 16_000, true));
    assert_refused(decode_audio(&path, 30.0), "inf.wav", "not a finite number");
}

fn world(dir: &Path) -> mspa_core::Dataset {
    let config = SyntheticWorldConfig {
        seed: 3,
        authors: 6,
        users: 10,
        audio_seconds: 0.5,
        ..Default::default()
    };
    generate(&config, dir).unwrap();
    mspa_core::load_native(dir).unwrap()
}

fn extractor(device: &Device) -> FeatureExtractor {
    let mut config = ExtractorConfig::default();
    config.frames = FrameConfig {
        size: 32,
        ..FrameConfig::default()
    };
    config.max_frames = 2;
    let n_mels = config.audio.mel.n_mels;
    FeatureExtractor::from_configs(
        config,
        &VisualEncoderConfig::new()
            .with_width(4)
            .with_depth(2)
            .with_d_output(8),
        &AudioEncoderConfig::new()
            .with_n_mels(n_mels)
            .with_width(8)
            .with_depth(2)
            .with_d_output(6),
        None,
        5,
        device,
    )
    .unwrap()
}

/// The case: a frame path that is a symbolic link to a file outside the dataset
/// was opened and read. It is refused, naming the author and the path, and the file is
/// never decoded (a valid image outside the root would otherwise decode fine).
#[cfg(unix)]
#[test]
fn symlinks_leaving_the_dataset_root_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let secret = write(outside.path(), "secret.png", &encode(&noisy(40, 40), "png"));
    let dir = tempfile::tempdir().unwrap();
    let ds = world(dir.path());
    let device = Device::flex();
    let ex = extractor(&device);
    let (victim, author) = ds
        .authors()
        .iter()
        .enumerate()
        .find(|(_, a)| !a.frames.is_empty())
        .unwrap();
    let frame = ds.media_path(&author.frames[0]);
    // A link inside the root is fine.
    let other = ds
        .authors()
        .iter()
        .filter(|a| a.id != author.id)
        .find_map(|a| a.frames.first())
        .unwrap();
    std::fs::remove_file(&frame).unwrap();
    std::os::unix::fs::symlink(ds.media_path(other), &frame).unwrap();
    ex.extract(&ds, None, ExtractOptions::default(), |_, _| {})
        .unwrap();
    // A link to outside the root is refused.
    std::fs::remove_file(&frame).unwrap();
    std::os::unix::fs::symlink(&secret, &frame).unwrap();
    let err = ex
        .extract(&ds, None, ExtractOptions::default(), |_, _| {})
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModalError::PathEscape { .. }), "{msg}");
    assert!(msg.contains(&format!("author `{}`", author.id)), "{msg}");
    assert!(
        msg.contains(&author.frames[0].display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("outside the dataset root"), "{msg}");
    // With skip_invalid it is a recorded skip, and the author keeps its other frames.
    let run = ex
        .extract(&ds, None, ExtractOptions { skip_invalid: true }, |_, _| {})
        .unwrap();
    assert_eq!(run.skipped.len(), 1);
    assert_eq!(run.skipped[0].author, author.id.to_string());
    assert!(run.skipped[0].error.contains("outside the dataset root"));
    assert_eq!(run.features[victim].present[0], author.frames.len() > 1);
    // A linked folder leading outside is refused the same way.
    let audio_author = ds.authors().iter().find(|a| a.audio.is_some()).unwrap();
    let clip = ds.media_path(audio_author.audio.as_ref().unwrap());
    let folder = clip.parent().unwrap().to_path_buf();
    let moved = outside.path().join("moved");
    std::fs::rename(&folder, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &folder).unwrap();
    let err = ds
        .resolve_media(audio_author, audio_author.audio.as_ref().unwrap())
        .unwrap_err();
    assert!(
        err.to_string().contains("outside the dataset root"),
        "{err}"
    );
}

/// Paths with `..` or absolute paths that reach a dataset without going through the
/// native loader (which refuses them already) are refused when the media are read.
#[test]
fn escaping_paths_built_in_memory_are_refused_at_extraction() {
    let outside = tempfile::tempdir().unwrap();
    let secret = write(outside.path(), "secret.png", &encode(&noisy(40, 40), "png"));
    let root = tempfile::tempdir().unwrap();
    let inside = root.path().join("in");
    std::fs::create_dir(&inside).unwrap();
    let rel_up = Path::new("..").join(
        secret
            .strip_prefix(outside.path().parent().unwrap())
            .unwrap(),
    );
    let device = Device::flex();
    let ex = extractor(&device);
    for bad in [rel_up.clone(), secret.clone()] {
        let mut author = mspa_core::Author::bare(mspa_core::ExternalId::from("evil"));
        author.frames = vec![bad.clone()];
        let mut b = mspa_core::DatasetBuilder::default();
        let a = b.add_author(author).unwrap();
        let u = b.user(mspa_core::ExternalId::Int(1));
        b.push_event(u, a, 1.0, 0);
        let ds = b.build(Some(inside.clone()));
        let err = ex
            .extract(&ds, None, ExtractOptions::default(), |_, _| {})
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ModalError::PathEscape { .. }), "{msg}");
        assert!(msg.contains("author `evil`"), "{msg}");
        assert!(msg.contains(&bad.display().to_string()), "{msg}");
    }
}

#[test]
fn nan_features_in_the_store_are_refused_naming_author_and_modality() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.safetensors");
    let mut features = AuthorFeatures::empty([2, 3, 1]);
    features.audio[2] = f32::NAN;
    features.present = [false, true, false];
    let store = FeatureStore {
        config_hash: "cfg".into(),
        entries: vec![
            StoredFeatures {
                author: "fine".into(),
                media_hash: "h".into(),
                features: AuthorFeatures::empty([2, 3, 1]),
            },
            StoredFeatures {
                author: "a7".into(),
                media_hash: "h".into(),
                features,
            },
        ],
    };
    store.save(&path).unwrap();
    let err = FeatureStore::load(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModalError::NonFinite { .. }), "{msg}");
    for needle in [
        "features.safetensors",
        "author `a7`",
        "audio",
        "value 2 is NaN",
    ] {
        assert!(msg.contains(needle), "`{msg}` lacks `{needle}`");
    }
    // A cached extraction treats such a store as unreadable: recomputed, not trusted.
    let ds_dir = tempfile::tempdir().unwrap();
    let ds = world(ds_dir.path());
    let device = Device::flex();
    let ex = extractor(&device);
    let run = ex
        .extract_cached(&ds, &path, ExtractOptions::default(), |_, _| {})
        .unwrap();
    assert_eq!(run.computed, ds.n_authors());
    assert!(run.features.iter().all(|f| f.first_non_finite().is_none()));
}
