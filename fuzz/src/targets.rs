//! The fuzz targets: one per parser MSPA-rs owns or feeds user bytes into. Each builds
//! its seed inputs from real sample files (a tiny synthetic world, the test fixtures,
//! files written by the project's own writers) and runs one input, returning a short
//! outcome (`ok:...` or `err:<message>`); a panic propagates to the harness.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One fuzz input: named files, written into a scratch directory before each run.
#[derive(Clone, Debug, PartialEq, PartialOrd, Eq, Ord)]
pub struct Input {
    pub files: Vec<(String, Vec<u8>)>,
}

impl Input {
    pub fn one(name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        Input {
            files: vec![(name.to_string(), bytes.into())],
        }
    }

    pub fn many(files: &[(&str, Vec<u8>)]) -> Self {
        Input {
            files: files
                .iter()
                .map(|(n, b)| (n.to_string(), b.clone()))
                .collect(),
        }
    }

    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }
}

pub trait Target {
    fn seeds(&mut self) -> Vec<Input>;
    fn run(&mut self, dir: &Path, input: &Input) -> String;
    fn dict(&self) -> Vec<&'static [u8]> {
        Vec::new()
    }
    fn binary(&self) -> bool {
        false
    }
    fn json(&self) -> bool {
        false
    }
    fn max_len(&self) -> usize {
        1 << 20
    }
}

pub const NAMES: &[&str] = &[
    "native",
    "twitch",
    "kuailive",
    "preference",
    "image",
    "audio",
    "tokenizer",
    "feature_store",
    "checkpoint",
    "llm_answer",
    "npy",
];

pub fn make(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "native" => Box::new(Native),
        "npy" => Box::new(Npy),
        "twitch" => Box::new(Twitch),
        "kuailive" => Box::new(KuaiLive),
        #[cfg(feature = "media")]
        "preference" => Box::new(media::Preference::new()),
        #[cfg(feature = "media")]
        "image" => Box::new(media::Image),
        #[cfg(feature = "media")]
        "audio" => Box::new(media::Audio::new()),
        #[cfg(feature = "media")]
        "tokenizer" => Box::new(media::Tokenizer::new()),
        #[cfg(feature = "media")]
        "feature_store" => Box::new(media::FeatureStoreTarget),
        #[cfg(feature = "media")]
        "checkpoint" => Box::new(media::Checkpoint::new()),
        #[cfg(feature = "media")]
        "llm_answer" => Box::new(media::LlmAnswer::new()),
        _ => return None,
    })
}

fn outcome<T, E: std::fmt::Display>(r: Result<T, E>, ok: impl FnOnce(&T) -> String) -> String {
    match r {
        Ok(v) => format!("ok:{}", ok(&v)),
        Err(e) => format!("err:{e}"),
    }
}

/// A coarse size bucket, so that "ok with 3 events" and "ok with 4" are one outcome.
fn bucket(n: usize) -> u32 {
    usize::BITS - n.leading_zeros()
}

// ------------------------------------------------------------------ the sample world

/// A tiny synthetic world (native format, PNG frames, WAV clips, truth files), generated
/// once per process.
static WORLD: OnceLock<PathBuf> = OnceLock::new();

/// Removes the sample world if this process generated one.
pub fn remove_world() {
    if let Some(dir) = WORLD.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

pub fn world() -> &'static Path {
    WORLD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mspa-fuzz-world-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = mspa_core::synth::SyntheticWorldConfig {
            seed: 11,
            authors: 8,
            users: 25,
            mean_tips_per_user: 4.0,
            frames_per_author: 1,
            frame_size: 16,
            audio_seconds: 0.25,
            sample_rate: 8_000,
            ..Default::default()
        };
        mspa_core::synth::generate(&config, &dir).expect("generate the sample world");
        dir
    })
}

fn head_lines(bytes: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        if i >= n {
            break;
        }
        out.extend_from_slice(line);
    }
    out
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

const CSV_TOKENS: &[&[u8]] = &[
    b"user_id",
    b"author_id",
    b"amount",
    b"timestamp_ms",
    b"user_id,author_id,amount,timestamp_ms\n",
    b"\"a,b\"",
    b"\"unterminated",
    b"\"\"\"",
    b"1.0e3",
    b"1700000000000",
    b"-1700000000000",
    b"1e19",
    b"9.2233720368547758e18",
    b"a1",
    b"u1",
];

// ------------------------------------------------------------------ native

pub struct Native;

impl Target for Native {
    fn seeds(&mut self) -> Vec<Input> {
        let w = world();
        let authors = read(&w.join("authors.jsonl"));
        let tips = read(&w.join("tips.csv"));
        vec![
            Input::many(&[
                ("authors.jsonl", authors.clone()),
                ("tips.csv", head_lines(&tips, 60)),
            ]),
            Input::many(&[
                ("authors.jsonl", head_lines(&authors, 3)),
                ("tips.csv", head_lines(&tips, 4)),
            ]),
            Input::many(&[
                (
                    "authors.jsonl",
                    br#"{"id": "a1", "name": "Nova", "title": "Synthwave night", "description": "neon beats", "frames": ["media/a1/f0.png", "./media/a1/f1.png"], "audio": "media/a1/clip.wav"}
{"id": 2, "name": "Rex", "title": "", "description": "", "frames": [], "audio": null}

{"id": "03", "name": "Zed"}
"#
                    .to_vec(),
                ),
                (
                    "tips.csv",
                    b"\xef\xbb\xbfamount,user_id,timestamp_ms,author_id,extra\r\n5.0,u1,3000,a1,x\r\n\"1.5\",\"Doe, \"\"J\"\"\",1000,2,\r\n\r\n0,7,2000.0,03,y\r\n".to_vec(),
                ),
            ]),
        ]
    }

    fn dict(&self) -> Vec<&'static [u8]> {
        let mut d = CSV_TOKENS.to_vec();
        d.extend_from_slice(&[
            b"\"id\"",
            b"\"frames\"",
            b"\"audio\"",
            b"\"name\"",
            b"{\"id\": 1}\n",
            b"\"/abs.png\"",
            b"\"../x.png\"",
            b"\"media/../../x\"",
            b"\"C:\\\\x\"",
            b"1.5",
            b"\"\\u0000\"",
            b"[\"a\"]",
            b"{\"id\": 1e400}",
        ]);
        d
    }

    fn json(&self) -> bool {
        true
    }

    fn run(&mut self, dir: &Path, _input: &Input) -> String {
        outcome(mspa_core::load_native(dir), |ds| {
            format!(
                "{} {} {}",
                bucket(ds.n_users()),
                bucket(ds.n_authors()),
                bucket(ds.n_events())
            )
        })
    }
}

// ------------------------------------------------------------------ twitch

pub struct Twitch;

impl Target for Twitch {
    fn seeds(&mut self) -> Vec<Input> {
        // The world's tips in the Twitch layout: user,stream,streamer,start,stop.
        let tips = String::from_utf8(read(&world().join("tips.csv"))).unwrap();
        let mut twitch = String::new();
        for (i, line) in tips.lines().skip(1).take(80).enumerate() {
            let cols: Vec<&str> = line.split(',').collect();
            if cols.len() >= 4 {
                let ts: i64 = cols[3].parse().unwrap_or(0);
                let start = ts / 600_000;
                let stop = start + 1 + (i as i64 % 7);
                twitch.push_str(&format!(
                    "{},{},{},{start},{stop}\n",
                    cols[0],
                    33_842_865_744u64 + i as u64 * 997,
                    cols[1]
                ));
            }
        }
        vec![
            Input::one("100k.csv", twitch),
            Input::one(
                "100k.csv",
                "1,33842865744,mithrain,154,156\n1,33846768288,alptv,166,169\n2,33886469056,mithrain,118,120\n1,34887283200,mithrain,10,11\n",
            ),
            Input::one(
                "100k.csv",
                "\"1\",\"2\",\"a b\",3,4\r\n\r\n7,18446744073709551615,x,0,1\r\n",
            ),
        ]
    }

    fn dict(&self) -> Vec<&'static [u8]> {
        let mut d = CSV_TOKENS.to_vec();
        d.extend_from_slice(&[b"15372286182", b"153722867280912930", b"mithrain"]);
        d
    }

    fn run(&mut self, dir: &Path, _input: &Input) -> String {
        outcome(mspa_core::load_twitch(&dir.join("100k.csv")), |ds| {
            format!("{} {}", bucket(ds.n_authors()), bucket(ds.n_events()))
        })
    }
}

// ------------------------------------------------------------------ npy

/// `mspa_core::npy::NpyMatrix`: NumPy `.npy` files of float vectors.
struct Npy;

/// A `.npy` file as NumPy writes it (header padded to 64 bytes).
fn npy_file(version: u8, descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let prefix = if version == 1 { 10 } else { 12 };
    let pad = 64 - (prefix + header.len() + 1) % 64;
    let len = header.len() + pad + 1;
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(len as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out.extend_from_slice(data);
    out
}

impl Target for Npy {
    fn seeds(&mut self) -> Vec<Input> {
        let f4: Vec<u8> = (0..24).flat_map(|i| (i as f32 * 0.25).to_le_bytes()).collect();
        let f8: Vec<u8> = (0..6).flat_map(|i| (i as f64 - 2.5).to_le_bytes()).collect();
        let f2: Vec<u8> = [0x3c00u16, 0xc000, 0x0001, 0x7bff]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        vec![
            Input::one("titles.npy", npy_file(1, "<f4", false, "(4, 6)", &f4)),
            Input::one("titles.npy", npy_file(2, "<f8", true, "(2, 3)", &f8)),
            Input::one("titles.npy", npy_file(3, "<f2", false, "(4,)", &f2)),
        ]
    }

    fn binary(&self) -> bool {
        true
    }

    fn dict(&self) -> Vec<&'static [u8]> {
        vec![
            b"\x93NUMPY",
            b"'descr'",
            b"'<f4'",
            b"'<f8'",
            b"'<f2'",
            b"'>f4'",
            b"'<i8'",
            b"True",
            b"False",
            b"(0, 0)",
            b"(18446744073709551615, 2)",
            b"(4294967296, 4294967296)",
            b"(1, 2, 3)",
            b"()",
        ]
    }

    fn max_len(&self) -> usize {
        1 << 16
    }

    fn run(&mut self, dir: &Path, _input: &Input) -> String {
        outcome(mspa_core::npy::NpyMatrix::read(dir.join("titles.npy")), |m| {
            // The reader's contract: a rows x cols matrix of finite values.
            assert_eq!(m.values.len(), m.rows * m.cols, "shape and values disagree");
            assert!(m.values.iter().all(|x| x.is_finite()), "a non-finite value passed");
            format!("{} {}", bucket(m.rows), bucket(m.cols))
        })
    }
}

// ------------------------------------------------------------------ kuailive

pub struct KuaiLive;

impl Target for KuaiLive {
    fn seeds(&mut self) -> Vec<Input> {
        let mut gift = String::from("user_id,live_id,streamer_id,timestamp,gift_price\n");
        let mut streamer = String::from("streamer_id,gender,age,fans_num\n");
        let mut room = String::from(
            "p_date,live_id,streamer_id,live_type,start_timestamp,end_timestamp,live_content_category,live_name_id\n",
        );
        let cats = ["music", "dance", "game", "chat", "outdoor"];
        for i in 0..40u64 {
            gift.push_str(&format!(
                "{},{},{},{},{}\n",
                10 + i % 9,
                500 + i % 13,
                70 + i % 6,
                1_700_000_000_000u64 + i * 5_000,
                1 + i % 11
            ));
        }
        for s in 70..76 {
            streamer.push_str(&format!(
                "{s},{},{}-{},{}\n",
                ["F", "M"][s % 2],
                18 + s % 7,
                24 + s % 7,
                s * 31
            ));
        }
        for r in 0..15usize {
            room.push_str(&format!(
                "202505{:02},{},{},1,{},{},{},{}\n",
                1 + r % 28,
                500 + r % 13,
                70 + r % 6,
                1_700_000_000_000u64 + r as u64,
                1_700_000_100_000u64 + r as u64,
                cats[r % 5],
                r
            ));
        }
        vec![
            Input::many(&[
                ("gift.csv", gift.clone().into_bytes()),
                ("streamer.csv", streamer.into_bytes()),
                ("room.csv", room.into_bytes()),
            ]),
            Input::many(&[("gift.csv", gift.into_bytes())]),
            Input::many(&[
                (
                    "gift.csv",
                    b"user_id,live_id,streamer_id,timestamp,gift_price\n10,500,77,1700000000000,3\n10,501,88,1700000005000,10\n11,500,77,1700000001000,1\n".to_vec(),
                ),
                ("streamer.csv", b"streamer_id,gender,age\n77,F,25-30\n99,M,18-24\n".to_vec()),
                (
                    "room.csv",
                    b"p_date,live_id,streamer_id,live_type,start_timestamp,end_timestamp,live_content_category,live_name_id\n20250501,500,77,1,0,1,music,5\n20250502,502,77,1,0,1,dance,6\n".to_vec(),
                ),
            ]),
        ]
    }

    fn dict(&self) -> Vec<&'static [u8]> {
        let mut d = CSV_TOKENS.to_vec();
        d.extend_from_slice(&[
            b"streamer_id",
            b"live_id",
            b"gift_price",
            b"timestamp",
            b"live_content_category",
            b"p_date",
        ]);
        d
    }

    fn run(&mut self, dir: &Path, _input: &Input) -> String {
        outcome(mspa_core::load_kuailive(dir), |ds| {
            format!("{} {}", bucket(ds.n_authors()), bucket(ds.n_events()))
        })
    }
}

// ------------------------------------------------------------------ Burn-side targets

#[cfg(feature = "media")]
pub mod media {
    use super::*;

    use burn::tensor::Device;
    use mspa_align::baselines::BprMfModule;
    use mspa_align::data::{Example, Negatives, training_examples};
    use mspa_align::train::{TrainConfig, checkpoint_reports, fit_with};
    use mspa_composer::llm_http::{LlmHttpComposer, LlmHttpConfig, extract_json_object};
    use mspa_composer::schema::{FieldKind, PreferenceSchema};
    use mspa_core::{Author, DatasetBuilder, ExternalId, Split};
    use mspa_modal::audio::AudioPipeline;
    use mspa_modal::features::{AuthorFeatures, FeatureStore, StoredFeatures};
    use mspa_modal::frames::{FrameConfig, image, load_frame};
    use mspa_modal::text::TextTokenizer;

    fn schema() -> PreferenceSchema {
        PreferenceSchema::from_json(&mspa_core::synth::reference::schema_json())
            .expect("the synthetic world's schema parses")
    }

    /// Every string in the world's truth files that looks like a preference text.
    fn reference_texts() -> Vec<String> {
        let text = String::from_utf8(read(&world().join("truth_users.jsonl"))).unwrap();
        let mut out = Vec::new();
        fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::String(s) if s.contains(" | ") && s.contains(": ") => {
                    out.push(s.clone())
                }
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        for line in text.lines().take(20) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                walk(&v, &mut out);
            }
        }
        out.truncate(12);
        out
    }

    // -------------------------------------------------------------- preference text

    pub struct Preference {
        schema: PreferenceSchema,
    }

    impl Preference {
        pub fn new() -> Self {
            Preference { schema: schema() }
        }
    }

    impl Target for Preference {
        fn seeds(&mut self) -> Vec<Input> {
            let schema_json = mspa_core::synth::reference::schema_json().into_bytes();
            let mut texts = reference_texts();
            assert!(!texts.is_empty(), "the world has reference texts");
            // One rendered by the schema itself, from the first value of every slot.
            let first = mspa_composer::schema::PreferenceFields {
                values: self
                    .schema
                    .fields
                    .iter()
                    .map(|f| f.slot_values().iter().map(|s| s[0].clone()).collect())
                    .collect(),
            };
            texts.push(self.schema.render(&first));
            texts
                .into_iter()
                .map(|t| {
                    Input::many(&[
                        ("preference.txt", t.into_bytes()),
                        ("schema.json", schema_json.clone()),
                    ])
                })
                .collect()
        }

        fn dict(&self) -> Vec<&'static [u8]> {
            vec![
                b" | ",
                b": ",
                b", ",
                b"categories",
                b"energy",
                b"tipping",
                b"music",
                b"dance",
                b"high",
                b"frequent",
                b"\"type\"",
                b"\"list\"",
                b"\"tuple\"",
                b"\"slots\"",
                b"\"max\"",
                b"\"values\"",
                b"\"name\"",
                b"|",
                b":",
                b"\xc3\xa9",
            ]
        }

        fn json(&self) -> bool {
            true
        }

        fn run(&mut self, dir: &Path, input: &Input) -> String {
            let text = String::from_utf8_lossy(input.file("preference.txt").unwrap_or_default());
            let mut out = String::new();
            // The project's schema parses the text, the synthetic world's own reference
            // parser too, and a (possibly mutated) schema file parses it again.
            out += &outcome(self.schema.parse(&text), |p| {
                // Rendering what was parsed must parse back to the same fields.
                let again = self.schema.parse(&self.schema.render(p));
                assert_eq!(again.as_ref().ok(), Some(p), "render/parse round trip");
                format!("{}", bucket(p.values.iter().map(Vec::len).sum()))
            });
            out += " / ";
            out += &outcome(mspa_core::synth::parse_reference(&text), |_| String::new());
            out += " / ";
            let schema_path = dir.join("schema.json");
            out += &outcome(PreferenceSchema::from_json_file(&schema_path), |s| {
                let parsed = s.parse(&text).map(|p| s.render(&p));
                let n = s
                    .fields
                    .iter()
                    .map(|f| match &f.kind {
                        FieldKind::List { values, .. } => values.len(),
                        FieldKind::Tuple { slots } => slots.len(),
                    })
                    .sum::<usize>();
                format!("{} {}", bucket(n), parsed.is_ok())
            });
            out
        }
    }

    // -------------------------------------------------------------- images

    pub struct Image;

    fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, format).expect("encode a seed image");
        buf.into_inner()
    }

    impl Target for Image {
        fn seeds(&mut self) -> Vec<Input> {
            use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
            let rgb = RgbImage::from_fn(13, 9, |x, y| Rgb([(x * 19) as u8, (y * 27) as u8, 128]));
            let rgb = DynamicImage::ImageRgb8(rgb);
            let rgba = DynamicImage::ImageRgba8(rgb.to_rgba8());
            let grey = DynamicImage::ImageLuma8(rgb.to_luma8());
            let grey16 = DynamicImage::ImageLuma16(rgb.to_luma16());
            let mut seeds = vec![
                Input::one("frame.png", encode(&rgb, ImageFormat::Png)),
                Input::one("frame.png", encode(&rgba, ImageFormat::Png)),
                Input::one("frame.png", encode(&grey, ImageFormat::Png)),
                Input::one("frame.png", encode(&grey16, ImageFormat::Png)),
                Input::one("frame.jpg", encode(&rgb, ImageFormat::Jpeg)),
                Input::one("frame.jpg", encode(&grey, ImageFormat::Jpeg)),
                Input::one("frame.gif", encode(&rgba, ImageFormat::Gif)),
                Input::one("frame.webp", encode(&rgba, ImageFormat::WebP)),
            ];
            // The world's own frames.
            for entry in walk_files(&world().join("media")) {
                if entry.extension().is_some_and(|e| e == "png") && seeds.len() < 11 {
                    seeds.push(Input::one("frame.png", read(&entry)));
                }
            }
            seeds
        }

        fn binary(&self) -> bool {
            true
        }

        fn dict(&self) -> Vec<&'static [u8]> {
            vec![
                b"\x89PNG\r\n\x1a\n",
                b"IHDR",
                b"IDAT",
                b"IEND",
                b"PLTE",
                b"tRNS",
                b"acTL",
                b"fcTL",
                b"\xff\xd8\xff",
                b"\xff\xc0",
                b"\xff\xc4",
                b"\xff\xda",
                b"\xff\xd9",
                b"GIF89a",
                b"NETSCAPE2.0",
                b"RIFF",
                b"WEBP",
                b"VP8L",
                b"VP8 ",
                b"VP8X",
                b"ANIM",
            ]
        }

        fn max_len(&self) -> usize {
            1 << 18
        }

        fn run(&mut self, dir: &Path, input: &Input) -> String {
            let config = FrameConfig {
                size: 32,
                ..FrameConfig::default()
            };
            let path = dir.join(&input.files[0].0);
            outcome(load_frame(&path, &config), |v| {
                assert_eq!(v.len(), config.frame_len());
                assert!(v.iter().all(|x| x.is_finite()), "non-finite pixel");
                String::new()
            })
        }
    }

    fn walk_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    out.extend(walk_files(&p));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    // -------------------------------------------------------------- audio

    pub struct Audio {
        pipeline: AudioPipeline,
    }

    impl Audio {
        pub fn new() -> Self {
            Audio {
                pipeline: AudioPipeline::new(Default::default()).expect("default audio config"),
            }
        }
    }

    /// A WAV file: `format` 1 (PCM) or 3 (float), `bits` per sample, interleaved frames.
    fn wav(format: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let block = channels * bits / 8;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&format.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * block as u32).to_le_bytes());
        out.extend_from_slice(&block.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    impl Target for Audio {
        fn seeds(&mut self) -> Vec<Input> {
            let fixtures =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../mspa-modal/tests/fixtures");
            let mut seeds = Vec::new();
            for name in [
                "tone_1k_22k_mono.ogg",
                "tone_1k_44k_mono.mp3",
                "tone_1k_44k_stereo.m4a",
                "tone_1k_48k_stereo.flac",
            ] {
                let ext = name.rsplit('.').next().unwrap();
                seeds.push(Input::one(
                    &format!("clip.{ext}"),
                    read(&fixtures.join(name)),
                ));
            }
            let golden =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/audio/logmel_probe.wav");
            seeds.push(Input::one("clip.wav", read(&golden)));
            for entry in walk_files(&world().join("media")) {
                if entry.extension().is_some_and(|e| e == "wav") {
                    seeds.push(Input::one("clip.wav", read(&entry)));
                    break;
                }
            }
            let pcm8: Vec<u8> = (0..400)
                .map(|i| (128.0 + 100.0 * (i as f32 * 0.3).sin()) as u8)
                .collect();
            let pcm24: Vec<u8> = (0..300)
                .flat_map(|i| {
                    let v = ((i as f32 * 0.2).sin() * 8_000_000.0) as i32;
                    v.to_le_bytes()[..3].to_vec()
                })
                .collect();
            let f32s: Vec<u8> = (0..600)
                .flat_map(|i| ((i as f32 * 0.05).sin() * 0.5).to_le_bytes())
                .collect();
            seeds.push(Input::one("clip.wav", wav(1, 1, 8_000, 8, &pcm8)));
            seeds.push(Input::one("clip.wav", wav(1, 1, 44_100, 24, &pcm24)));
            seeds.push(Input::one("clip.wav", wav(3, 2, 48_000, 32, &f32s)));
            seeds
        }

        fn binary(&self) -> bool {
            true
        }

        fn dict(&self) -> Vec<&'static [u8]> {
            vec![
                b"RIFF",
                b"WAVE",
                b"fmt ",
                b"data",
                b"LIST",
                b"fLaC",
                b"OggS",
                b"\x01vorbis",
                b"ID3",
                b"\xff\xfb",
                b"\xff\xf1",
                b"ftyp",
                b"moov",
                b"mdat",
                b"trak",
                b"stsz",
                b"stco",
                b"mp4a",
                b"esds",
            ]
        }

        fn max_len(&self) -> usize {
            1 << 18
        }

        fn run(&mut self, dir: &Path, input: &Input) -> String {
            let path = dir.join(&input.files[0].0);
            outcome(self.pipeline.log_mel_file(&path), |s| {
                assert!(
                    s.to_frame_major().iter().all(|x| x.is_finite()),
                    "non-finite log-mel value"
                );
                format!("{}", bucket(s.n_frames))
            })
        }
    }

    // -------------------------------------------------------------- tokenizer

    pub struct Tokenizer {
        minilm: Option<TextTokenizer>,
        vocab: Vec<u8>,
        json: Vec<u8>,
    }

    fn minilm_dir() -> Option<PathBuf> {
        mspa_modal::text::pretrained::default_minilm_dir().or_else(|| {
            let d =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/models/all-MiniLM-L6-v2");
            d.join("vocab.txt").is_file().then_some(d)
        })
    }

    impl Tokenizer {
        pub fn new() -> Self {
            let dir = minilm_dir();
            let minilm = dir.as_ref().and_then(|d| {
                TextTokenizer::from_dir(d)
                    .ok()
                    .map(|t| t.with_max_length(64).expect("64 tokens"))
            });
            // A small vocabulary: MiniLM's first 1,200 tokens (the specials, punctuation,
            // digits, letters and word pieces), or a hand-written one without MiniLM.
            let vocab = dir
                .as_ref()
                .and_then(|d| std::fs::read(d.join("vocab.txt")).ok())
                .map(|v| head_lines(&v, 1200))
                .unwrap_or_else(|| {
                    let mut v = String::from("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
                    for w in [
                        "the", "a", "music", "dance", "neon", "night", "##s", "##ing", ".", ",",
                        "!", "?", "stream", "live",
                    ] {
                        v.push_str(w);
                        v.push('\n');
                    }
                    v.into_bytes()
                });
            // The same small vocabulary as a tokenizer.json (MiniLM's, vocabulary cut).
            let json = dir
                .as_ref()
                .and_then(|d| std::fs::read(d.join("tokenizer.json")).ok())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .map(|mut v| {
                    if let Some(map) = v
                        .pointer_mut("/model/vocab")
                        .and_then(|m| m.as_object_mut())
                    {
                        map.retain(|_, id| id.as_u64().is_some_and(|i| i < 1200));
                    }
                    serde_json::to_vec_pretty(&v).unwrap()
                })
                .unwrap_or_default();
            Tokenizer {
                minilm,
                vocab,
                json,
            }
        }
    }

    impl Target for Tokenizer {
        fn seeds(&mut self) -> Vec<Input> {
            let texts: Vec<String> = {
                let mut t = vec![
                    "The cat sat on the mat.".to_string(),
                    "Neon synthwave night: live DJ set, 🎵 très énergique! 日本語のテキスト".into(),
                    String::new(),
                    "a ".repeat(300),
                ];
                let authors = String::from_utf8(read(&world().join("authors.jsonl"))).unwrap();
                for line in authors.lines().take(4) {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                        let title = v["title"].as_str().unwrap_or("");
                        let desc = v["description"].as_str().unwrap_or("");
                        t.push(format!("{title}. {desc}"));
                    }
                }
                t
            };
            texts
                .into_iter()
                .map(|t| {
                    let mut files = vec![
                        ("text.txt", t.into_bytes()),
                        ("vocab.txt", self.vocab.clone()),
                    ];
                    if !self.json.is_empty() {
                        files.push(("tokenizer.json", self.json.clone()));
                    }
                    Input::many(&files)
                })
                .collect()
        }

        fn dict(&self) -> Vec<&'static [u8]> {
            vec![
                b"[CLS]",
                b"[SEP]",
                b"[PAD]",
                b"[UNK]",
                b"[MASK]",
                b"##",
                b"\xcc\x81",
                b"\xe2\x80\x8b",
                b"\xef\xbf\xbd",
                b"\x7f",
                b"\xe3\x80\x80",
                b"\"vocab\"",
                b"\"model\"",
                b"\"type\"",
                b"\"WordPiece\"",
                b"\"BPE\"",
                b"\"normalizer\"",
                b"\"pre_tokenizer\"",
                b"\"post_processor\"",
                b"\"added_tokens\"",
                b"\"truncation\"",
                b"\"padding\"",
                b"\"max_input_chars_per_word\"",
            ]
        }

        fn json(&self) -> bool {
            true
        }

        fn max_len(&self) -> usize {
            1 << 18
        }

        fn run(&mut self, dir: &Path, input: &Input) -> String {
            let text =
                String::from_utf8_lossy(input.file("text.txt").unwrap_or_default()).into_owned();
            let half: String = text.chars().take(text.chars().count() / 2).collect();
            let check = |tok: &TextTokenizer| -> String {
                outcome(tok.encode(&text), |e| {
                    assert!(e.ids.len() <= tok.max_length(), "longer than max_length");
                    assert!(e.ids.len() >= 2, "no [CLS]/[SEP]");
                    // The half text may need `[UNK]` where the whole did not (a mutated
                    // vocabulary may lack it): an error is a fine answer there.
                    if let Ok(b) = tok.batch(&[text.as_str(), half.as_str(), ""]) {
                        assert_eq!(b.lengths.len(), 3);
                    }
                    format!("{}", bucket(e.ids.len()))
                })
            };
            let mut out = String::new();
            if let Some(t) = &self.minilm {
                out += &check(t);
            }
            out += " / ";
            let lower = text.len() % 2 == 0;
            out += &match TextTokenizer::from_vocab(dir.join("vocab.txt"), lower) {
                Ok(t) => check(&t),
                Err(e) => format!("err:{e}"),
            };
            if input.file("tokenizer.json").is_some() {
                out += " / ";
                out += &match TextTokenizer::from_tokenizer_json(dir.join("tokenizer.json")) {
                    Ok(t) => check(&t),
                    Err(e) => format!("err:{e}"),
                };
            }
            out
        }
    }

    // -------------------------------------------------------------- feature store

    pub struct FeatureStoreTarget;

    impl Target for FeatureStoreTarget {
        fn seeds(&mut self) -> Vec<Input> {
            let dir = std::env::temp_dir().join(format!("mspa-fuzz-fs-{}", std::process::id()));
            let mut seeds = Vec::new();
            let stores = [
                FeatureStore {
                    config_hash: "cfg".into(),
                    entries: (0..3)
                        .map(|i| StoredFeatures {
                            author: format!("a{i}"),
                            media_hash: format!("h{i}"),
                            features: AuthorFeatures {
                                visual: vec![i as f32, 0.5],
                                audio: vec![1.0, 2.0, 3.0],
                                text: vec![0.25; 4],
                                present: [true, i % 2 == 0, false],
                            },
                        })
                        .collect(),
                },
                FeatureStore {
                    config_hash: "empty".into(),
                    entries: Vec::new(),
                },
                FeatureStore {
                    config_hash: "zero-dims".into(),
                    entries: vec![StoredFeatures {
                        author: "x".into(),
                        media_hash: String::new(),
                        features: AuthorFeatures::empty([0, 0, 0]),
                    }],
                },
            ];
            for (i, s) in stores.iter().enumerate() {
                let p = dir.join(format!("s{i}.safetensors"));
                s.save(&p).expect("save a seed store");
                seeds.push(Input::one("features.safetensors", read(&p)));
            }
            let _ = std::fs::remove_dir_all(&dir);
            seeds
        }

        fn binary(&self) -> bool {
            true
        }

        fn dict(&self) -> Vec<&'static [u8]> {
            vec![
                b"\"dtype\"",
                b"\"F32\"",
                b"\"U8\"",
                b"\"F16\"",
                b"\"I64\"",
                b"\"shape\"",
                b"\"data_offsets\"",
                b"\"__metadata__\"",
                b"\"visual\"",
                b"\"audio\"",
                b"\"text\"",
                b"\"present\"",
                b"\"authors\"",
                b"\"media_hashes\"",
                b"\"config_hash\"",
                b"\"format\"",
                b"mspa-features/1",
                b"[0,0]",
                b"[]",
                b"[1,1]",
                b"[3,1]",
                b"[18446744073709551615,2]",
            ]
        }

        fn run(&mut self, dir: &Path, _input: &Input) -> String {
            outcome(FeatureStore::load(&dir.join("features.safetensors")), |s| {
                // Whatever loads must save and load back the same.
                let p = dir.join("again.safetensors");
                if s.save(&p).is_ok() {
                    let again = FeatureStore::load(&p).expect("a saved store loads");
                    assert_eq!(&again, s, "save/load round trip");
                }
                format!("{}", bucket(s.entries.len()))
            })
        }
    }

    // -------------------------------------------------------------- checkpoints

    pub struct Checkpoint {
        device: Device,
        examples: Vec<Example>,
        negatives: Negatives,
        config: TrainConfig,
        seed_files: Vec<(String, Vec<u8>)>,
    }

    fn model(device: &Device) -> BprMfModule {
        BprMfModule::new(12, 10, 8, 0.1, 3, device)
    }

    impl Checkpoint {
        pub fn new() -> Self {
            let device = Device::flex();
            let mut b = DatasetBuilder::default();
            let authors: Vec<_> = (0..10)
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
                ..TrainConfig::default()
            };
            // A real checkpoint: two epochs with checkpoints on.
            let dir = std::env::temp_dir().join(format!("mspa-fuzz-ckpt-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let mut cfg = config.clone();
            cfg.checkpoint_dir = Some(dir.clone());
            let mut me = Checkpoint {
                device,
                examples,
                negatives,
                config,
                seed_files: Vec::new(),
            };
            me.train(&cfg).expect("write the seed checkpoint");
            let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        read(&e.path()),
                    )
                })
                .collect();
            files.sort();
            let _ = std::fs::remove_dir_all(&dir);
            me.seed_files = files;
            me
        }

        fn train(&self, cfg: &TrainConfig) -> mspa_align::Result<usize> {
            let score = |m: &BprMfModule| -> mspa_align::Result<f64> {
                Ok(f64::from(m.bias.weight.val().sum().into_scalar::<f32>()))
            };
            fit_with(
                model(&self.device),
                cfg,
                &self.device,
                &self.examples,
                &self.negatives,
                |m: &BprMfModule, b: &[&Example], n: &_, d: &Device| m.loss(b, n, d),
                score,
                |_| {},
            )
            .map(|(_, reports)| reports.len())
        }
    }

    impl Target for Checkpoint {
        fn seeds(&mut self) -> Vec<Input> {
            let all = Input {
                files: self.seed_files.clone(),
            };
            // Also: the state alone (the module files missing).
            let state_only = Input {
                files: self
                    .seed_files
                    .iter()
                    .filter(|(n, _)| n == "state.json")
                    .cloned()
                    .collect(),
            };
            vec![all, state_only]
        }

        fn binary(&self) -> bool {
            false
        }

        fn dict(&self) -> Vec<&'static [u8]> {
            vec![
                b"\"next_epoch\"",
                b"\"step\"",
                b"\"best_score\"",
                b"\"best_epoch\"",
                b"\"bad_evals\"",
                b"\"stopped\"",
                b"\"model_file\"",
                b"\"optim_file\"",
                b"\"best_file\"",
                b"\"reports\"",
                b"\"format\"",
                b"\"mspa-align-train/1\"",
                b"\"/etc/passwd\"",
                b"\"../state.json\"",
                b"\"state.json\"",
                b"\"\"",
                b"\"model-00000.bpk\"",
                b"\"optim-00001.bpk\"",
                b"true",
                b"false",
            ]
        }

        fn json(&self) -> bool {
            true
        }

        fn run(&mut self, dir: &Path, _input: &Input) -> String {
            let mut cfg = self.config.clone();
            cfg.checkpoint_dir = Some(dir.to_path_buf());
            let reports = outcome(checkpoint_reports(dir), |r| {
                format!("{}", r.as_ref().map_or(0, |r| bucket(r.len())))
            });
            let resumed = outcome(self.train(&cfg), |n| format!("{}", bucket(*n)));
            format!("{reports} / {resumed}")
        }
    }

    // -------------------------------------------------------------- MLLM answers

    pub struct LlmAnswer {
        composer: LlmHttpComposer,
        schema: PreferenceSchema,
    }

    impl LlmAnswer {
        pub fn new() -> Self {
            let schema = schema();
            let config = LlmHttpConfig {
                api_key_env: None,
                ..LlmHttpConfig::default()
            };
            let composer =
                LlmHttpComposer::new(config, schema.clone()).expect("build the composer offline");
            LlmAnswer { composer, schema }
        }
    }

    impl Target for LlmAnswer {
        fn seeds(&mut self) -> Vec<Input> {
            let mut obj = serde_json::Map::new();
            let mut messy = serde_json::Map::new();
            for f in &self.schema.fields {
                let slots = f.slot_values();
                let vals: Vec<String> = slots.iter().map(|s| s[s.len() / 2].clone()).collect();
                obj.insert(f.name.clone(), serde_json::json!(vals));
                // Wrong case, a misspelling, an extra value, a bare string.
                let mut m: Vec<serde_json::Value> = vals
                    .iter()
                    .map(|v| serde_json::Value::String(v.to_uppercase()))
                    .collect();
                m.push(serde_json::Value::String(format!("{}x", slots[0][0])));
                m.push(serde_json::json!(7));
                messy.insert(
                    f.name.clone(),
                    if f.name.len() % 2 == 0 {
                        serde_json::Value::Array(m)
                    } else {
                        serde_json::Value::String(vals.join(", "))
                    },
                );
            }
            messy.insert(
                "extra".into(),
                serde_json::json!({"nested": [1, {"a": null}]}),
            );
            let clean = serde_json::Value::Object(obj).to_string();
            let messy = serde_json::Value::Object(messy).to_string();
            [
                clean.clone(),
                format!("Sure! Here is the preference:\n```json\n{messy}\n```\nHope this helps."),
                format!("{{\"reasoning\": \"{{not json}}\"}} then {clean}"),
                "{\"tipping\": [\"rare\"]}".into(),
                "no json here".into(),
                format!("```\n{}", &clean[..clean.len() / 2]),
            ]
            .into_iter()
            .map(|t| Input::one("answer.txt", t))
            .collect()
        }

        fn dict(&self) -> Vec<&'static [u8]> {
            vec![
                b"```json\n",
                b"```",
                b"{",
                b"}",
                b"[",
                b"]",
                b"\"categories\"",
                b"\"energy\"",
                b"\"tipping\"",
                b"\"audio\"",
                b"\"visuals\"",
                b"\"language\"",
                b"\"format\"",
                b"\"music\"",
                b"\"\\u00e9\"",
                b"\"\\\"\"",
                b"\"\\ud83c\\udfb5\"",
            ]
        }

        fn json(&self) -> bool {
            true
        }

        fn max_len(&self) -> usize {
            // The known quadratic search (README, finding 5) makes 1 MB answers take
            // minutes; 64 KB keeps every input under about a second.
            64 << 10
        }

        fn run(&mut self, _dir: &Path, input: &Input) -> String {
            let text = String::from_utf8_lossy(&input.files[0].1);
            let found = extract_json_object(&text).map(|o| o.len());
            let r = self.composer.repair(&text);
            outcome(r, |(fields, repairs)| {
                // Repaired fields are always well-formed for the schema.
                let rendered = self.schema.render(fields);
                let parsed = self.schema.parse(&rendered);
                assert!(
                    parsed.is_ok(),
                    "repaired fields render to a parsable text: {rendered}"
                );
                assert!(
                    self.schema.unknown_values(fields).is_empty(),
                    "unknown values survive repair"
                );
                format!("{} {}", found.map_or(0, bucket), bucket(repairs.len()))
            })
        }
    }
}
