//! The generator: authors and their media, then users in streamed chunks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;

use super::attributes::{AuthorTruth, Field, sample_author};
use super::media::{encode_png, encode_wav, render_clip, render_frames};
use super::reference::GRAMMAR;
use super::sampling::{DOMAIN_AUDIO, DOMAIN_FRAMES, DOMAIN_TEXT, entity_rng};
use super::text::author_text;
use super::truth::TRUTH_FORMAT;
use super::users::{WorldModel, simulate_user};
use super::writer::{AtomicFile, create_dir, write_atomic};
use super::{SynthError, SyntheticWorldConfig};

/// Authors rendered per parallel batch (one progress report each).
const AUTHOR_CHUNK: usize = 256;
/// Users simulated per parallel batch; memory is bounded by one batch.
const USER_CHUNK: usize = 1024;

/// Progress of a running generation, reported after each batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Authors (attributes, text and media) written so far.
    Authors {
        /// Done so far.
        done: usize,
        /// Total.
        total: usize,
    },
    /// Users (tips and truth) written so far.
    Users {
        /// Done so far.
        done: usize,
        /// Total.
        total: usize,
        /// Tips written so far.
        tips: u64,
    },
}

/// What a generation wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct WorldSummary {
    /// The output directory.
    pub out_dir: PathBuf,
    /// Number of authors.
    pub authors: usize,
    /// Number of users.
    pub users: usize,
    /// Number of tips.
    pub tips: u64,
    /// Number of PNG frames written.
    pub frames: usize,
    /// Number of WAV clips written.
    pub audio_clips: usize,
    /// Number of authors with a non-empty description.
    pub descriptions: usize,
    /// Wall-clock time of the generation.
    pub elapsed: Duration,
}

/// One line of `authors.jsonl` (the native format).
#[derive(Serialize)]
struct AuthorLine<'a> {
    id: &'a str,
    name: String,
    title: String,
    description: String,
    frames: Vec<String>,
    audio: Option<String>,
}

/// Renders and writes one author's media, returning its `authors.jsonl` line.
fn write_author(
    config: &SyntheticWorldConfig,
    out: &Path,
    index: usize,
    author: &AuthorTruth,
) -> Result<String, SynthError> {
    let attrs = &author.attributes;
    let seed = config.seed;
    let text = author_text(
        &mut entity_rng(seed, DOMAIN_TEXT, index as u64),
        attrs,
        author.has_description,
        config.text_noise,
    );
    let rel_dir = format!("media/{}", author.id);
    if author.has_frames || author.has_audio {
        create_dir(&out.join(&rel_dir))?;
    }
    let mut frames = Vec::new();
    if author.has_frames {
        let mut rng = entity_rng(seed, DOMAIN_FRAMES, index as u64);
        let size = config.frame_size;
        let images = render_frames(
            &mut rng,
            attrs,
            size,
            config.frames_per_author,
            config.media_noise,
        );
        for (k, rgb) in images.iter().enumerate() {
            let rel = format!("{rel_dir}/frame{k}.png");
            let path = out.join(&rel);
            let png = encode_png(rgb, size).map_err(|message| SynthError::Encode {
                path: path.clone(),
                message,
            })?;
            write_atomic(&path, &png)?;
            frames.push(rel);
        }
    }
    let audio = if author.has_audio {
        let mut rng = entity_rng(seed, DOMAIN_AUDIO, index as u64);
        let samples = render_clip(
            &mut rng,
            attrs,
            config.clip_samples(),
            config.sample_rate,
            config.media_noise,
        );
        let rel = format!("{rel_dir}/clip.wav");
        write_atomic(&out.join(&rel), &encode_wav(&samples, config.sample_rate))?;
        Some(rel)
    } else {
        None
    };
    let line = AuthorLine {
        id: &author.id,
        name: text.name,
        title: text.title,
        description: text.description,
        frames,
        audio,
    };
    Ok(serde_json::to_string(&line).expect("author line serialises") + "\n")
}

fn truth_header(config: &SyntheticWorldConfig) -> String {
    let fields: serde_json::Map<String, serde_json::Value> = Field::ALL
        .iter()
        .map(|f| (f.name().to_string(), serde_json::json!(f.values())))
        .chain(std::iter::once((
            "tipping".to_string(),
            serde_json::json!({
                "frequency": super::reference::FREQUENCIES,
                "generosity": super::reference::GENEROSITIES,
            }),
        )))
        .collect();
    let modalities: serde_json::Map<String, serde_json::Value> = Field::ALL
        .iter()
        .map(|f| (f.name().to_string(), serde_json::json!(f.modalities())))
        .collect();
    format!(
        "{{\n\"format\": {},\n\"grammar\": {},\n\"users_file\": \"truth_users.jsonl\",\n\"fields\": {},\n\"modalities\": {},\n\"config\": {},\n\"authors\": [\n",
        j(&TRUTH_FORMAT),
        j(&GRAMMAR),
        j(&fields),
        j(&modalities),
        j(config),
    )
}

/// Compact JSON of a value that always serialises.
fn j<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("value serialises")
}

/// Generates a world into `out` (created if missing; existing files of the same names are
/// replaced), reporting progress through `progress`. See [`super`] for what is written.
pub fn generate_with_progress(
    config: &SyntheticWorldConfig,
    out: &Path,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<WorldSummary, SynthError> {
    config.validate()?;
    let started = Instant::now();
    create_dir(out)?;
    create_dir(&out.join("media"))?;

    // Authors: latent truth, then text and media in parallel batches.
    let authors: Vec<AuthorTruth> = (0..config.authors)
        .into_par_iter()
        .map(|i| sample_author(config, i))
        .collect();
    let mut authors_file = AtomicFile::create(&out.join("authors.jsonl"))?;
    for start in (0..config.authors).step_by(AUTHOR_CHUNK) {
        let end = (start + AUTHOR_CHUNK).min(config.authors);
        let lines: Vec<String> = (start..end)
            .into_par_iter()
            .map(|i| write_author(config, out, i, &authors[i]))
            .collect::<Result<_, _>>()?;
        for line in &lines {
            authors_file.write(line.as_bytes())?;
        }
        progress(Progress::Authors {
            done: end,
            total: config.authors,
        });
    }
    authors_file.commit()?;

    // Users: simulated in parallel batches, streamed to disk in id order.
    let model = WorldModel::new(config, &authors);
    let mut tips_file = AtomicFile::create(&out.join("tips.csv"))?;
    tips_file.write(b"user_id,author_id,amount,timestamp_ms\n")?;
    let mut users_file = AtomicFile::create(&out.join("truth_users.jsonl"))?;
    let mut n_tips = 0u64;
    for start in (0..config.users).step_by(USER_CHUNK) {
        let end = (start + USER_CHUNK).min(config.users);
        let batch: Vec<(String, String, usize)> = (start..end)
            .into_par_iter()
            .map(|u| {
                let (user, tips) = simulate_user(config, &model, u);
                let mut csv = String::with_capacity(tips.len() * 40);
                for t in &tips {
                    use std::fmt::Write as _;
                    let _ = writeln!(
                        csv,
                        "{},{},{}.{:02},{}",
                        user.id,
                        authors[t.author as usize].id,
                        t.cents / 100,
                        t.cents % 100,
                        t.t_ms
                    );
                }
                let line = serde_json::to_string(&user).expect("user serialises") + "\n";
                (csv, line, tips.len())
            })
            .collect();
        for (csv, line, n) in &batch {
            tips_file.write(csv.as_bytes())?;
            users_file.write(line.as_bytes())?;
            n_tips += *n as u64;
        }
        progress(Progress::Users {
            done: end,
            total: config.users,
            tips: n_tips,
        });
    }
    tips_file.commit()?;
    users_file.commit()?;

    // truth.json: header, then one author per line.
    let mut truth = AtomicFile::create(&out.join("truth.json"))?;
    truth.write(truth_header(config).as_bytes())?;
    for (i, a) in authors.iter().enumerate() {
        let sep = if i + 1 == authors.len() { "\n" } else { ",\n" };
        truth.write((serde_json::to_string(a).expect("author serialises") + sep).as_bytes())?;
    }
    truth.write(b"]\n}\n")?;
    truth.commit()?;
    let world = serde_json::to_string_pretty(config).expect("config serialises") + "\n";
    write_atomic(&out.join("world.json"), world.as_bytes())?;

    Ok(WorldSummary {
        out_dir: out.to_path_buf(),
        authors: config.authors,
        users: config.users,
        tips: n_tips,
        frames: authors.iter().filter(|a| a.has_frames).count() * config.frames_per_author,
        audio_clips: authors.iter().filter(|a| a.has_audio).count(),
        descriptions: authors.iter().filter(|a| a.has_description).count(),
        elapsed: started.elapsed(),
    })
}

/// Generates a world into `out` without progress reports.
pub fn generate(config: &SyntheticWorldConfig, out: &Path) -> Result<WorldSummary, SynthError> {
    generate_with_progress(config, out, &|_| {})
}
