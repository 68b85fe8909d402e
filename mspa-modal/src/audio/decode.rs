//! Decoding audio files to mono `f32` samples with symphonia.
//!
//! Formats: WAV (PCM), FLAC, MP3, OGG/Vorbis and AAC in MP4/M4A, as far as symphonia 0.5
//! decodes them. The container is recognised from its content (the file extension is only
//! a hint). Channels are averaged to mono (librosa's `to_mono`); integer samples are scaled
//! to `[-1, 1)` (16-bit PCM is divided by 32768). Encoder delay and padding are trimmed
//! where the container says how much (gapless MP3/AAC).
//!
//! A clip longer than the maximum is cut *while* decoding: no packet is read once the
//! maximum is reached, so memory stays bounded by the maximum whatever the file's length.
//!
//! Robustness: every failure (missing file, unknown format, no audio track, corrupt
//! stream, absurd sample rate) is a [`ModalError`] naming the file. A file cut short
//! (an interrupted download) yields the audio decoded before the cut, as librosa and
//! ffmpeg do; a file that yields no audio at all is an error. A panic inside the decoder
//! on hostile input is caught and reported as a [`ModalError::Decode`].

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::resample::{MAX_RATE, MIN_RATE};
use crate::error::{ModalError, Result, catch_decoder_panic};

/// Consecutive undecodable packets tolerated before the file is declared corrupt.
const MAX_CONSECUTIVE_ERRORS: usize = 64;

/// A decoded clip: mono samples at the file's own rate.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedAudio {
    /// Mono samples in `[-1, 1]`.
    pub samples: Vec<f32>,
    /// The file's sample rate in Hz.
    pub sample_rate: u32,
    /// Channels in the file (before the downmix).
    pub channels: usize,
    /// Whether decoding stopped at the maximum length (the file may hold more).
    pub cut: bool,
}

impl DecodedAudio {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Decodes `path` to mono, keeping at most `max_seconds` seconds (`f32::INFINITY` keeps
/// everything).
///
/// ```no_run
/// let clip = mspa_modal::audio::decode_audio("clip.flac", 30.0)?;
/// println!("{} s at {} Hz", clip.seconds(), clip.sample_rate);
/// # Ok::<(), mspa_modal::ModalError>(())
/// ```
pub fn decode_audio(path: impl AsRef<Path>, max_seconds: f32) -> Result<DecodedAudio> {
    let path = path.as_ref();
    if max_seconds.is_nan() || max_seconds <= 0.0 {
        return Err(ModalError::Config {
            field: "max_seconds".into(),
            message: format!("must be positive, got {max_seconds}"),
        });
    }
    catch_decoder_panic(path, || decode_inner(path, max_seconds))
}

fn describe(e: &SymError) -> String {
    match e {
        SymError::IoError(io) => format!("read error: {io}"),
        SymError::DecodeError(m) => format!("corrupt stream: {m}"),
        SymError::Unsupported(m) => format!("unsupported format: {m}"),
        other => other.to_string(),
    }
}

fn is_end_of_stream(e: &SymError) -> bool {
    matches!(e, SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
}

fn decode_inner(path: &Path, max_seconds: f32) -> Result<DecodedAudio> {
    let file = File::open(path).map_err(|e| ModalError::io(path, e))?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let format_options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &format_options, &MetadataOptions::default())
        .map_err(|e| match e {
            SymError::IoError(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => {
                ModalError::io(path, io)
            }
            other => ModalError::decode(
                path,
                format!("not a recognised audio file ({})", describe(&other)),
            ),
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| ModalError::decode(path, "no audio track"))?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| ModalError::decode(path, describe(&e)))?;
    let mut sample_rate = track.codec_params.sample_rate;
    let mut channels = track.codec_params.channels.map_or(0, |c| c.count());

    let mut samples: Vec<f32> = Vec::new();
    let mut limit: Option<usize> = None;
    let mut buffer: Option<SampleBuffer<f32>> = None;
    let mut consecutive_errors = 0usize;
    let mut last_error: Option<String> = None;
    let mut cut = false;

    loop {
        if let Some(limit) = limit
            && samples.len() >= limit
        {
            cut = true;
            samples.truncate(limit);
            break;
        }
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(e) if is_end_of_stream(&e) => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => {
                if samples.is_empty() {
                    return Err(ModalError::decode(path, describe(&e)));
                }
                // A damaged tail: keep what was decoded.
                break;
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => {
                consecutive_errors = 0;
                d
            }
            Err(SymError::DecodeError(m)) => {
                consecutive_errors += 1;
                last_error = Some(m.to_string());
                if consecutive_errors > MAX_CONSECUTIVE_ERRORS {
                    return Err(ModalError::decode(path, format!("corrupt stream: {m}")));
                }
                continue;
            }
            Err(e) if is_end_of_stream(&e) => break,
            Err(e) => return Err(ModalError::decode(path, describe(&e))),
        };
        let spec = *decoded.spec();
        let n_channels = spec.channels.count();
        let n_frames = decoded.frames();
        if n_channels == 0 || n_frames == 0 {
            continue;
        }
        let rate = *sample_rate.get_or_insert(spec.rate);
        if !(MIN_RATE..=MAX_RATE).contains(&rate) {
            return Err(ModalError::decode(
                path,
                format!("sample rate {rate} Hz is outside [{MIN_RATE}, {MAX_RATE}]"),
            ));
        }
        if limit.is_none() {
            let max = f64::from(max_seconds) * f64::from(rate);
            limit = Some(if max >= usize::MAX as f64 {
                usize::MAX
            } else {
                max.ceil() as usize
            });
        }
        channels = channels.max(n_channels);
        let needed = n_frames * n_channels;
        if buffer.as_ref().is_none_or(|b| b.capacity() < needed) {
            buffer = Some(SampleBuffer::new(decoded.capacity() as u64, spec));
        }
        let buf = buffer.as_mut().expect("allocated above");
        buf.copy_planar_ref(decoded);
        let planar = &buf.samples()[..needed];
        let start = samples.len();
        samples.extend_from_slice(&planar[..n_frames]);
        if n_channels > 1 {
            let mono = &mut samples[start..];
            for ch in 1..n_channels {
                let plane = &planar[ch * n_frames..(ch + 1) * n_frames];
                for (m, &s) in mono.iter_mut().zip(plane) {
                    *m += s;
                }
            }
            let scale = 1.0 / n_channels as f32;
            for m in mono.iter_mut() {
                *m *= scale;
            }
        }
    }

    let Some(sample_rate) = sample_rate.filter(|_| !samples.is_empty()) else {
        let cause = last_error.map_or_else(
            || "no audio could be decoded".to_string(),
            |m| format!("no audio could be decoded (corrupt stream: {m})"),
        );
        return Err(ModalError::decode(path, cause));
    };
    Ok(DecodedAudio {
        samples,
        sample_rate,
        channels,
        cut,
    })
}
