//! Frames: PNG, JPEG, WebP (lossless) and GIF written with `image`'s encoders, decoded,
//! resized (aspect kept), centre-cropped and normalised to CHW; batches in parallel; bad
//! files are errors naming the file, never panics.

use std::path::{Path, PathBuf};

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{Delay, Frame, ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};
use mspa_modal::ModalError;
use mspa_modal::frames::{
    FrameConfig, IMAGENET_MEAN, IMAGENET_STD, ResizeFilter, decode_image, load_frame, load_frames,
    load_frames_each, preprocess, scaled_size,
};

/// Left half red, right half blue, with a green 1/4-wide stripe in the middle.
fn pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, _| {
        if x >= 3 * w / 8 && x < 5 * w / 8 {
            Rgb([0, 255, 0])
        } else if x < w / 2 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    })
}

fn encode(img: &RgbImage, ext: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (w, h) = img.dimensions();
    match ext {
        "png" => PngEncoder::new(&mut out)
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap(),
        "jpg" => JpegEncoder::new_with_quality(&mut out, 95)
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap(),
        "webp" => WebPEncoder::new_lossless(&mut out)
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap(),
        "gif" => {
            let mut enc = GifEncoder::new(&mut out);
            let first = RgbaImage::from_fn(w, h, |x, y| {
                let p = img.get_pixel(x, y).0;
                Rgba([p[0], p[1], p[2], 255])
            });
            let second = RgbaImage::from_pixel(w, h, Rgba([255, 255, 255, 255]));
            for frame in [first, second] {
                enc.encode_frame(Frame::from_parts(
                    frame,
                    0,
                    0,
                    Delay::from_numer_denom_ms(100, 1),
                ))
                .unwrap();
            }
            drop(enc);
        }
        other => panic!("unknown format {other}"),
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn norm(v: u8, c: usize) -> f32 {
    (f32::from(v) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
}

/// The pixel (r, g, b) at (x, y) of a CHW frame, back in 0..=255.
fn pixel(chw: &[f32], size: usize, x: usize, y: usize) -> [f32; 3] {
    std::array::from_fn(|c| {
        (chw[c * size * size + y * size + x] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255.0
    })
}

fn close(got: [f32; 3], want: [f32; 3], tol: f32) -> bool {
    got.iter().zip(want).all(|(a, b)| (a - b).abs() <= tol)
}

#[test]
fn every_format_decodes_and_preprocesses() {
    let dir = tempfile::tempdir().unwrap();
    let img = pattern(128, 64);
    let config = FrameConfig {
        size: 32,
        ..FrameConfig::default()
    };
    for (ext, tol) in [("png", 0.5), ("webp", 0.5), ("gif", 8.0), ("jpg", 12.0)] {
        let path = write(dir.path(), &format!("frame.{ext}"), &encode(&img, ext));
        let decoded = decode_image(&path, 16_384).unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert_eq!(decoded.dimensions(), (128, 64), "{ext}");
        let chw = load_frame(&path, &config).unwrap();
        assert_eq!(chw.len(), 3 * 32 * 32, "{ext}");
        // 128x64 -> 64x32 -> centre 32x32 = source columns 32..96: red, green, blue
        // quarters of 8 columns each side of the green centre.
        let left = pixel(&chw, 32, 2, 16);
        let mid = pixel(&chw, 32, 16, 16);
        let right = pixel(&chw, 32, 29, 16);
        assert!(close(left, [255.0, 0.0, 0.0], tol), "{ext}: left {left:?}");
        assert!(close(mid, [0.0, 255.0, 0.0], tol), "{ext}: middle {mid:?}");
        assert!(
            close(right, [0.0, 0.0, 255.0], tol),
            "{ext}: right {right:?}"
        );
    }
}

#[test]
fn gif_gives_the_first_frame() {
    let dir = tempfile::tempdir().unwrap();
    let img = RgbImage::from_pixel(16, 16, Rgb([255, 0, 0]));
    let path = write(dir.path(), "anim.gif", &encode(&img, "gif"));
    let decoded = decode_image(&path, 16_384).unwrap();
    assert_eq!(decoded.get_pixel(8, 8).0, [255, 0, 0]); // not the white second frame
}

#[test]
fn normalisation_is_exact_and_layout_is_chw() {
    let img = RgbImage::from_pixel(50, 50, Rgb([10, 128, 250]));
    for size in [50, 20] {
        let config = FrameConfig {
            size,
            ..FrameConfig::default()
        };
        let chw = preprocess(&img, &config);
        let plane = (size * size) as usize;
        for (c, v) in [10u8, 128, 250].into_iter().enumerate() {
            let want = norm(v, c);
            for (i, got) in chw[c * plane..(c + 1) * plane].iter().enumerate() {
                assert!(
                    (got - want).abs() < 1e-5,
                    "size {size}, channel {c}, index {i}"
                );
            }
        }
    }
    // Custom mean/std: mean 0, std 1 leaves value / 255.
    let config = FrameConfig {
        size: 8,
        mean: [0.0; 3],
        std: [1.0; 3],
        filter: ResizeFilter::Nearest,
        ..FrameConfig::default()
    };
    let chw = preprocess(&RgbImage::from_pixel(8, 8, Rgb([51, 102, 255])), &config);
    assert_eq!((chw[0], chw[64], chw[128]), (0.2, 0.4, 1.0));
}

#[test]
fn aspect_is_kept_and_crop_is_centred() {
    assert_eq!(scaled_size(640, 480, 224), (298, 224));
    assert_eq!(scaled_size(480, 640, 224), (224, 298));
    assert_eq!(scaled_size(100, 100, 224), (224, 224));
    assert_eq!(scaled_size(1000, 10, 5), (500, 5));
    // A tall image: top third white, middle black, bottom white. The square centre crop
    // sees black in its middle rows and white only near its top/bottom edges.
    let img = RgbImage::from_fn(60, 180, |_, y| {
        if (60..120).contains(&y) {
            Rgb([0, 0, 0])
        } else {
            Rgb([255, 255, 255])
        }
    });
    let config = FrameConfig {
        size: 30,
        filter: ResizeFilter::CatmullRom,
        ..FrameConfig::default()
    };
    let chw = preprocess(&img, &config);
    // 60x180 -> 30x90, crop rows 30..60 of the resized image = source rows 60..120.
    for y in 2..28 {
        let p = pixel(&chw, 30, 15, y);
        assert!(close(p, [0.0; 3], 3.0), "row {y}: {p:?}");
    }
    // Resize before crop (shorter_side 40, size 30): crop covers source rows 67.5..112.5.
    let config = FrameConfig {
        size: 30,
        shorter_side: Some(40),
        ..FrameConfig::default()
    };
    let chw = preprocess(&img, &config);
    assert!(close(pixel(&chw, 30, 15, 0), [0.0; 3], 3.0));
}

/// The fused crop-only resampler gives exactly what `image::imageops::resize` + crop gives.
#[test]
fn resize_matches_image_crate_resize_then_crop() {
    let mut rng = 0x1234_5678_9ABC_DEF0u64;
    let mut noise = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 56) as u8
    };
    let shapes = [
        (256, 256),
        (320, 180),
        (97, 211),
        (50, 30),
        (640, 480),
        (224, 224),
    ];
    let filters = [
        ResizeFilter::Nearest,
        ResizeFilter::Triangle,
        ResizeFilter::CatmullRom,
        ResizeFilter::Lanczos3,
    ];
    for (w, h) in shapes {
        let img = RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 7 + y) as u8, noise(), (x * y / 3) as u8])
        });
        for filter in filters {
            for (size, shorter) in [(64, None), (48, Some(72))] {
                let config = FrameConfig {
                    size,
                    shorter_side: shorter,
                    filter,
                    mean: [0.0; 3],
                    std: [1.0 / 255.0; 3],
                    ..FrameConfig::default()
                };
                let (nw, nh) = scaled_size(w, h, shorter.unwrap_or(size));
                let resized = image::imageops::resize(&img, nw, nh, filter.into());
                let want = image::imageops::crop_imm(
                    &resized,
                    (nw - size) / 2,
                    (nh - size) / 2,
                    size,
                    size,
                )
                .to_image();
                let got = preprocess(&img, &config);
                let plane = (size * size) as usize;
                let mut max_diff = 0.0f32;
                for (i, px) in want.pixels().enumerate() {
                    for c in 0..3 {
                        let d = (got[c * plane + i] - f32::from(px.0[c])).abs();
                        max_diff = max_diff.max(d);
                    }
                }
                assert!(
                    max_diff < 1e-3,
                    "{w}x{h} {filter:?} size {size}: max diff {max_diff} levels"
                );
            }
        }
    }
}

#[test]
fn batch_in_parallel_keeps_order_and_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let colours = [[255u8, 0, 0], [0, 255, 0], [0, 0, 255], [40, 80, 120]];
    let mut paths: Vec<PathBuf> = colours
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ext = ["png", "webp", "png", "gif"][i];
            let img = RgbImage::from_pixel(40 + 10 * i as u32, 30, Rgb(*c));
            write(dir.path(), &format!("f{i}.{ext}"), &encode(&img, ext))
        })
        .collect();
    let config = FrameConfig {
        size: 24,
        ..FrameConfig::default()
    };
    let batch = load_frames(&paths, &config).unwrap();
    assert_eq!(batch.shape(), [4, 3, 24, 24]);
    assert_eq!(batch.data.len(), 4 * 3 * 24 * 24);
    for (i, c) in colours.iter().enumerate() {
        let p = pixel(batch.frame(i), 24, 12, 12);
        let want = c.map(f32::from);
        assert!(close(p, want, 0.5), "frame {i}: {p:?} != {want:?}");
    }
    assert_eq!(
        load_frames::<PathBuf>(&[], &config).unwrap().shape(),
        [0, 3, 24, 24]
    );

    paths.insert(1, write(dir.path(), "bad.png", b"definitely not a png"));
    match load_frames(&paths, &config) {
        Err(ModalError::Decode { path, .. }) => assert_eq!(path, paths[1]),
        other => panic!("{other:?}"),
    }
    let each = load_frames_each(&paths, &config).unwrap();
    assert_eq!(each.len(), 5);
    assert!(each[1].is_err());
    assert_eq!(each.iter().filter(|r| r.is_ok()).count(), 4);
    assert_eq!(each[0].as_ref().unwrap(), &batch.frame(0).to_vec());
}

#[test]
fn configs_are_checked_and_name_the_field() {
    let d = FrameConfig::default;
    let cases = [
        (FrameConfig { size: 0, ..d() }, "size"),
        (
            FrameConfig {
                shorter_side: Some(100),
                ..d()
            },
            "shorter_side",
        ),
        (
            FrameConfig {
                mean: [f32::NAN, 0.0, 0.0],
                ..d()
            },
            "mean",
        ),
        (
            FrameConfig {
                std: [1.0, -1.0, 1.0],
                ..d()
            },
            "std",
        ),
        (FrameConfig { max_side: 0, ..d() }, "max_side"),
    ];
    for (config, field) in cases {
        match config.validate() {
            Err(ModalError::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
        assert!(load_frames::<PathBuf>(&[], &config).is_err());
    }
    let json = serde_json::to_string(&d()).unwrap();
    assert_eq!(serde_json::from_str::<FrameConfig>(&json).unwrap(), d());
    let partial: FrameConfig =
        serde_json::from_str(r#"{"size": 112, "filter": "catmull_rom"}"#).unwrap();
    assert_eq!(
        (partial.size, partial.filter, partial.mean),
        (112, ResizeFilter::CatmullRom, IMAGENET_MEAN)
    );
}

/// Every way a file can be bad: an error naming the file, never a panic.
#[test]
fn garbage_truncated_and_missing_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let img = pattern(64, 48);
    let png = encode(&img, "png");
    let jpg = encode(&img, "jpg");
    let webp = encode(&img, "webp");
    let gif = encode(&img, "gif");
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    // A PNG header claiming a 100000 x 100000 image.
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.png", Vec::new()),
        ("random.png", random.clone()),
        ("random.jpg", random.clone()),
        ("random.webp", random.clone()),
        ("random.gif", random),
        ("text.png", b"this is a text file, not a PNG\n".to_vec()),
        ("first100.png", png[..100].to_vec()),
        ("half.png", png[..png.len() / 2].to_vec()),
        ("first100.jpg", jpg[..100].to_vec()),
        ("first100.webp", webp[..100.min(webp.len() - 1)].to_vec()),
        ("first100.gif", gif[..100].to_vec()),
        ("huge.png", huge),
    ];
    let config = FrameConfig::default();
    for (name, bytes) in cases {
        let path = write(dir.path(), name, &bytes);
        match load_frame(&path, &config) {
            Err(e @ (ModalError::Decode { .. } | ModalError::Io { .. })) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(name),
                    "{name}: message `{msg}` does not name it"
                );
            }
            other => panic!(
                "{name}: expected a decode error, got {:?}",
                other.map(|v| v.len())
            ),
        }
    }
    // Truncated JPEGs are refused (the decoder alone would fill the missing rows with
    // grey, as Pillow does only with LOAD_TRUNCATED_IMAGES).
    let path = write(dir.path(), "half.jpg", &jpg[..jpg.len() / 2]);
    let err = load_frame(&path, &config).unwrap_err();
    assert!(err.to_string().contains("half.jpg"), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    let missing = dir.path().join("missing.png");
    match load_frame(&missing, &config) {
        Err(ModalError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("missing: {:?}", other.map(|v| v.len())),
    }
    assert!(load_frame(dir.path(), &config).is_err());
}
