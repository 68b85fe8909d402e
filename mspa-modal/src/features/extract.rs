//! Batch feature extraction: media files of every author of a dataset to
//! [`AuthorFeatures`], reusing a [`FeatureStore`] where the media and the encoders are
//! unchanged.
//!
//! Decoding and preprocessing run in parallel with rayon; encoding runs in batches on the
//! chosen device. A file that cannot be read or decoded either stops the extraction with
//! an error naming it, or (with [`ExtractOptions::skip_invalid`]) is recorded in
//! [`Extraction::skipped`] while the author keeps its other media.
//!
//! Media paths are resolved with [`Dataset::resolve_media`]: a path that leaves the
//! dataset root (`..`, absolute, or a symbolic link to a file outside it) is a
//! [`ModalError::PathEscape`] naming the author and the path, and the file is neither
//! hashed nor decoded. Truncated or corrupt files are decode errors (see
//! [`crate::frames::decode_image`] and [`crate::audio::decode_audio`]). A computed vector
//! holding a NaN or an infinity is a [`ModalError::NonFinite`] naming the author and the
//! modality.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use mspa_core::Dataset;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::AuthorFeatures;
use super::store::{FeatureStore, StoredFeatures};
use crate::audio::{AudioConfig, AudioPipeline};
use crate::encoders::{AudioEncoder, AudioEncoderConfig, VisualEncoder, VisualEncoderConfig};
use crate::error::{ModalError, Result};
use crate::frames::{FrameConfig, load_frame};
use crate::text::BertEmbedder;

/// What the extractor reads and how it encodes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtractorConfig {
    /// Frame preprocessing (default: 96 × 96 crops, ImageNet normalisation).
    pub frames: FrameConfig,
    /// At most this many frames per author are encoded (default 4).
    pub max_frames: usize,
    /// Audio decoding and log-mel settings.
    pub audio: AudioConfig,
    /// Authors decoded and encoded together (bounds memory; default 128).
    pub chunk_size: usize,
}

impl Default for ExtractorConfig {
    fn default() -> Self {
        ExtractorConfig {
            frames: FrameConfig {
                size: 96,
                ..FrameConfig::default()
            },
            max_frames: 4,
            audio: AudioConfig::default(),
            chunk_size: 128,
        }
    }
}

/// How to treat bad files.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExtractOptions {
    /// Skip files that cannot be read or decoded (recording them) instead of failing.
    pub skip_invalid: bool,
}

/// A media file that was skipped.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SkippedFile {
    /// External id of the author.
    pub author: String,
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub error: String,
}

/// The result of [`FeatureExtractor::extract`].
#[derive(Clone, Debug)]
pub struct Extraction {
    /// Features of every author, indexed by `AuthorId`.
    pub features: Vec<AuthorFeatures>,
    /// Files skipped with `skip_invalid`.
    pub skipped: Vec<SkippedFile>,
    /// Authors whose features came from the store unchanged.
    pub reused: usize,
    /// Authors whose features were computed.
    pub computed: usize,
    /// The store to save for the next run.
    pub store: FeatureStore,
}

/// Encoders plus preprocessing settings; turns a dataset's media into features.
pub struct FeatureExtractor {
    config: ExtractorConfig,
    audio_pipeline: AudioPipeline,
    visual: VisualEncoder,
    audio: AudioEncoder,
    text: Option<BertEmbedder>,
    device: Device,
    config_hash: String,
}

/// One author's decoded inputs, before encoding.
struct Prepared {
    frames: Vec<Vec<f32>>,
    mel: Option<(usize, Vec<f32>)>,
    skipped: Vec<SkippedFile>,
}

impl FeatureExtractor {
    /// An extractor with the given encoders (fresh or pretrained with
    /// [`crate::pretrain`]) and an optional text encoder (authors then have no text
    /// features). Fails on an invalid config or mismatched sizes.
    pub fn new(
        config: ExtractorConfig,
        visual: VisualEncoder,
        audio: AudioEncoder,
        text: Option<BertEmbedder>,
        device: &Device,
    ) -> Result<Self> {
        config.frames.validate()?;
        if config.max_frames == 0 || config.chunk_size == 0 {
            return Err(ModalError::Config {
                field: if config.max_frames == 0 {
                    "max_frames"
                } else {
                    "chunk_size"
                }
                .into(),
                message: "must be at least 1".into(),
            });
        }
        let audio_pipeline = AudioPipeline::new(config.audio.clone())?;
        let mut extractor = FeatureExtractor {
            config,
            audio_pipeline,
            visual,
            audio,
            text,
            device: device.clone(),
            config_hash: String::new(),
        };
        extractor.config_hash = extractor.fingerprint()?;
        Ok(extractor)
    }

    /// Builds fresh encoders from their configs (weights seeded by `seed` on `device`).
    pub fn from_configs(
        config: ExtractorConfig,
        visual: &VisualEncoderConfig,
        audio: &AudioEncoderConfig,
        text: Option<BertEmbedder>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if audio.n_mels != config.audio.mel.n_mels {
            return Err(ModalError::Config {
                field: "audio_encoder.n_mels".into(),
                message: format!("must equal audio.mel.n_mels ({})", config.audio.mel.n_mels),
            });
        }
        let (v, a) = crate::device::seeded(device, seed, || {
            let (v, a) = (visual.init(device), audio.init(device));
            crate::device::materialize(&v);
            crate::device::materialize(&a);
            (v, a)
        });
        Self::new(config, v, a, text, device)
    }

    /// An extractor with the default visual and audio encoders for `config` (the audio
    /// encoder reads `config.audio.mel.n_mels` bands), weights seeded by `seed`.
    pub fn with_default_encoders(
        config: ExtractorConfig,
        text: Option<BertEmbedder>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let n_mels = config.audio.mel.n_mels;
        Self::from_configs(
            config,
            &VisualEncoderConfig::new(),
            &AudioEncoderConfig::new().with_n_mels(n_mels),
            text,
            seed,
            device,
        )
    }

    /// [`FeatureExtractor::extract`] with the feature store at `path`: what the store
    /// there still holds for unchanged media and encoders is reused (an unreadable store
    /// counts as empty), and after a successful run the new store replaces it atomically.
    /// A failed run leaves `path` as it was.
    pub fn extract_cached(
        &self,
        dataset: &Dataset,
        path: &Path,
        options: ExtractOptions,
        progress: impl FnMut(usize, usize),
    ) -> Result<Extraction> {
        let previous = FeatureStore::load(path).ok();
        let extraction = self.extract(dataset, previous.as_ref(), options, progress)?;
        extraction.store.save(path)?;
        Ok(extraction)
    }

    /// Sizes of the visual, audio and text vectors.
    pub fn dims(&self) -> [usize; 3] {
        let probe = self.probe();
        [
            probe.0.len(),
            probe.1.len(),
            self.text.as_ref().map(|t| t.dim()).unwrap_or(0),
        ]
    }

    /// A hash of the config and of the encoders' behaviour: the bytes of their outputs on
    /// fixed probe inputs, so other weights give another hash.
    pub fn config_hash(&self) -> &str {
        &self.config_hash
    }

    fn probe(&self) -> (Vec<f32>, Vec<f32>) {
        let s = self.config.frames.size as usize;
        let n_mels = self.config.audio.mel.n_mels;
        let frame: Vec<f32> = (0..3 * s * s)
            .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let mel: Vec<f32> = (0..n_mels * 32)
            .map(|i| ((i * 104_729) % 89) as f32 / 8.9 - 5.0)
            .collect();
        let v = self.encode_frames(&[frame], 1);
        let a = self.encode_mel(n_mels, 32, mel);
        (v.into_iter().next().unwrap_or_default(), a)
    }

    fn fingerprint(&self) -> Result<String> {
        let mut h = blake3::Hasher::new();
        h.update(
            serde_json::to_string(&self.config)
                .unwrap_or_default()
                .as_bytes(),
        );
        let (v, a) = self.probe();
        for x in v.iter().chain(&a) {
            h.update(&((x * 1e4).round() as i64).to_le_bytes());
        }
        if let Some(text) = &self.text {
            let t = text.sentence_embeddings(&["mspa probe sentence"], false)?;
            let values: Vec<f32> = t.into_data().try_to_vec::<f32>().unwrap_or_default();
            for x in values {
                h.update(&((x * 1e4).round() as i64).to_le_bytes());
            }
        }
        Ok(h.finalize().to_hex().to_string())
    }

    /// Encodes frames of one size: returns one vector per author, the mean of its frames.
    fn encode_frames(&self, frames: &[Vec<f32>], per_author: usize) -> Vec<Vec<f32>> {
        if frames.is_empty() {
            return Vec::new();
        }
        let s = self.config.frames.size as usize;
        let flat: Vec<f32> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let x =
            Tensor::<4>::from_data(TensorData::new(flat, [frames.len(), 3, s, s]), &self.device);
        let z = self.visual.forward(x);
        let [_, d] = z.dims();
        let values: Vec<f32> = z.into_data().try_to_vec::<f32>().expect("f32 output");
        values
            .chunks(d * per_author)
            .map(|c| mean_rows(c, d))
            .collect()
    }

    fn encode_mel(&self, n_mels: usize, n_frames: usize, data: Vec<f32>) -> Vec<f32> {
        let x = Tensor::<3>::from_data(TensorData::new(data, [1, n_mels, n_frames]), &self.device);
        self.audio
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 output")
    }

    /// Extracts the features of every author of `dataset`, reusing `previous` entries
    /// whose media hash and config hash still match.
    pub fn extract(
        &self,
        dataset: &Dataset,
        previous: Option<&FeatureStore>,
        options: ExtractOptions,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Extraction> {
        let dims = self.dims();
        let n = dataset.n_authors();
        let index = previous.map(|p| p.index());
        let reusable = |author: &str, hash: &str| -> Option<AuthorFeatures> {
            let p = previous?;
            if p.config_hash != self.config_hash {
                return None;
            }
            let i = *index.as_ref()?.get(author)?;
            (p.entries[i].media_hash == hash).then(|| p.entries[i].features.clone())
        };
        let mut features = Vec::with_capacity(n);
        let mut entries = Vec::with_capacity(n);
        let mut skipped = Vec::new();
        let (mut reused, mut computed) = (0, 0);
        for start in (0..n).step_by(self.config.chunk_size) {
            let end = (start + self.config.chunk_size).min(n);
            let authors = &dataset.authors()[start..end];
            // Hash every author's media; decode only those the store cannot serve.
            let hashes: Vec<String> = authors
                .par_iter()
                .map(|a| self.media_hash(dataset, a))
                .collect();
            let mut chunk: Vec<Option<AuthorFeatures>> = authors
                .iter()
                .zip(&hashes)
                .map(|(a, h)| reusable(&a.id.to_string(), h))
                .collect();
            let todo: Vec<usize> = (0..authors.len()).filter(|&i| chunk[i].is_none()).collect();
            let prepared: Vec<Result<Prepared>> = todo
                .par_iter()
                .map(|&i| self.prepare(dataset, &authors[i], options))
                .collect();
            let prepared: Vec<Prepared> = prepared.into_iter().collect::<Result<_>>()?;
            let texts: Vec<String> = todo.iter().map(|&i| authors[i].text()).collect();
            let text_vectors = self.encode_texts(&texts)?;
            for (k, (&i, p)) in todo.iter().zip(&prepared).enumerate() {
                let mut f = AuthorFeatures::empty(dims);
                if !p.frames.is_empty() {
                    let per = p.frames.len();
                    f.visual = self
                        .encode_frames(&p.frames, per)
                        .pop()
                        .expect("one author");
                    f.present[0] = true;
                }
                if let Some((frames, mel)) = &p.mel {
                    f.audio = self.encode_mel(self.config.audio.mel.n_mels, *frames, mel.clone());
                    f.present[1] = true;
                }
                if let Some(t) = &text_vectors[k] {
                    f.text = t.clone();
                    f.present[2] = true;
                }
                if let Some((m, at, x)) = f.first_non_finite() {
                    return Err(ModalError::NonFinite {
                        origin: "feature extraction (encoder output)".into(),
                        author: authors[i].id.to_string(),
                        modality: m.to_string(),
                        message: format!("value {at} is {x}"),
                    });
                }
                chunk[i] = Some(f);
            }
            computed += todo.len();
            reused += authors.len() - todo.len();
            // An author with skipped files is stored with an empty hash, which never
            // matches: a later run decodes (and reports) its files again.
            let mut incomplete = vec![false; authors.len()];
            for (&i, p) in todo.iter().zip(&prepared) {
                incomplete[i] = !p.skipped.is_empty();
            }
            skipped.extend(prepared.into_iter().flat_map(|p| p.skipped));
            for (((a, h), f), incomplete) in authors.iter().zip(hashes).zip(chunk).zip(incomplete) {
                let f = f.expect("every author filled");
                entries.push(StoredFeatures {
                    author: a.id.to_string(),
                    media_hash: if incomplete { String::new() } else { h },
                    features: f.clone(),
                });
                features.push(f);
            }
            progress(end, n);
        }
        Ok(Extraction {
            features,
            skipped,
            reused,
            computed,
            store: FeatureStore {
                config_hash: self.config_hash.clone(),
                entries,
            },
        })
    }

    /// Text vectors (mean-pooled, L2-normalised) of non-empty texts; `None` for empty
    /// texts or without a text encoder.
    fn encode_texts(&self, texts: &[String]) -> Result<Vec<Option<Vec<f32>>>> {
        let Some(encoder) = &self.text else {
            return Ok(vec![None; texts.len()]);
        };
        let nonempty: Vec<&str> = texts
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .collect();
        let mut vectors = if nonempty.is_empty() {
            Vec::new()
        } else {
            let t = encoder.sentence_embeddings(&nonempty, true)?;
            let [_, d] = t.dims();
            let values: Vec<f32> = t.into_data().try_to_vec::<f32>().expect("f32 output");
            values.chunks(d).map(<[f32]>::to_vec).collect()
        }
        .into_iter();
        Ok(texts
            .iter()
            .map(|t| {
                if t.trim().is_empty() {
                    None
                } else {
                    vectors.next()
                }
            })
            .collect())
    }

    /// Hash of an author's text and media bytes (a file that cannot be read, or whose
    /// path leaves the dataset root and so is not read, hashes as its error message).
    fn media_hash(&self, dataset: &Dataset, author: &mspa_core::Author) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(author.title.as_bytes());
        hasher.update(&[0]);
        hasher.update(author.description.as_bytes());
        let frames = author.frames.iter().take(self.config.max_frames);
        for rel in frames.chain(author.audio.iter()) {
            hasher.update(&[0xff]);
            let bytes = resolve(dataset, author, rel)
                .and_then(|path| std::fs::read(&path).map_err(|e| ModalError::io(path, e)));
            match bytes {
                Ok(bytes) => hasher.update(&bytes),
                Err(ModalError::Io { source, .. }) => hasher.update(source.to_string().as_bytes()),
                Err(e) => hasher.update(e.to_string().as_bytes()),
            };
        }
        hasher.finalize().to_hex().to_string()
    }

    /// Decodes one author's media (runs in parallel).
    fn prepare(
        &self,
        dataset: &Dataset,
        author: &mspa_core::Author,
        options: ExtractOptions,
    ) -> Result<Prepared> {
        let mut skipped = Vec::new();
        let mut fail = |path: &Path, err: ModalError| -> Result<()> {
            if options.skip_invalid {
                skipped.push(SkippedFile {
                    author: author.id.to_string(),
                    path: path.to_path_buf(),
                    error: err.to_string(),
                });
                Ok(())
            } else {
                Err(err)
            }
        };
        let mut frames = Vec::new();
        for rel in author.frames.iter().take(self.config.max_frames) {
            let path = dataset.media_path(rel);
            match resolve(dataset, author, rel).and_then(|p| load_frame(&p, &self.config.frames)) {
                Ok(f) => frames.push(f),
                Err(e) => fail(&path, e)?,
            }
        }
        let mut mel = None;
        if let Some(rel) = &author.audio {
            let path = dataset.media_path(rel);
            match resolve(dataset, author, rel).and_then(|p| self.audio_pipeline.log_mel_file(&p)) {
                Ok(s) if s.n_frames > 0 => mel = Some((s.n_frames, s.data)),
                Ok(_) => fail(&path, ModalError::decode(&path, "no audio samples"))?,
                Err(e) => fail(&path, e)?,
            }
        }
        Ok(Prepared {
            frames,
            mel,
            skipped,
        })
    }
}

/// The path to read media file `rel` of `author` from, refused when it leaves the
/// dataset root (see [`Dataset::resolve_media`]).
fn resolve(dataset: &Dataset, author: &mspa_core::Author, rel: &Path) -> Result<PathBuf> {
    dataset.resolve_media(author, rel).map_err(|e| match e {
        mspa_core::CoreError::MediaPath {
            author,
            path,
            reason,
        } => ModalError::PathEscape {
            author,
            path,
            reason,
        },
        mspa_core::CoreError::Io { path, source } => ModalError::io(path, source),
        other => ModalError::decode(dataset.media_path(rel), other.to_string()),
    })
}

fn mean_rows(values: &[f32], d: usize) -> Vec<f32> {
    let rows = (values.len() / d.max(1)).max(1);
    let mut out = vec![0.0f32; d];
    for row in values.chunks(d) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v / rows as f32;
        }
    }
    out
}
