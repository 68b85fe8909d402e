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
//! stream, absurd sample rate) is a [`ModalError`] naming the file. A file cut short (an
//! interrupted download) or with a corrupt packet is an error too, never the audio
//! decoded before the damage (librosa and ffmpeg would return that silently):
//!
//! * WAV: the data chunk must hold as many bytes as its header declares (the length
//!   `0xFFFFFFFF` that streaming writers use for "unknown" is accepted);
//! * FLAC, MP3 with a Xing/LAME header, MP4/M4A: decoding must yield at least the number
//!   of frames the header declares;
//! * Ogg: the last page must carry the end-of-stream flag (symphonia reads the length from
//!   it) and decoding must yield at least that length;
//! * any format: a packet the decoder rejects, or a read error other than the end of the
//!   file, is an error.
//!
//! An MP3 without a Xing/LAME header (symphonia only estimates its length from the
//! bitrate) and raw ADTS AAC have no declared length to check against: cut at a frame
//! boundary, they decode to the frames before the cut.
//!
//! Before symphonia sees a file, every size its container declares (MP4 boxes, sample
//! tables and sample sizes, FLAC metadata blocks, Vorbis comments and pictures, Ogg pages,
//! WAV chunks, ID3v2 tags) is checked against the bytes that exist: symphonia 0.5
//! allocates by such sizes before reading, so a few-KB file could otherwise ask for
//! gigabytes and abort the process. A size larger than what exists is an error naming the
//! file and the field (`guard.rs` has the rules). Leading ID3v2 tags are skipped, not
//! parsed, and symphonia is given only the reader of the container found at the start of
//! the file (or the MP3 and ADTS readers), so it parses nothing that was not checked.
//!
//! A panic inside the decoder on hostile input is caught and reported as a
//! [`ModalError::Decode`].

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::OnceLock;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CodecParameters, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::{Hint, Probe};

use super::guard::{Container, GuardError, Window, check_declared_sizes, skip_id3v2};
use super::resample::{MAX_RATE, MIN_RATE};
use crate::error::{ModalError, Result, catch_decoder_panic};

/// The largest magnitude a decoded sample may have (full scale is 1; float formats allow
/// more, but beyond this the spectrum's power overflows `f32`).
pub const MAX_SAMPLE_MAGNITUDE: f32 = 1e6;

/// The declared `data` chunk length meaning "unknown" (streaming writers such as ffmpeg
/// writing to a pipe).
const WAV_UNKNOWN_LENGTH: u32 = u32::MAX;

/// Finds the `data` chunk of a RIFF/WAVE stream starting at byte `start`: its first
/// byte's offset and its declared length. `None` when the chunk list cannot be walked
/// (symphonia then reports the fault).
fn wav_data_chunk(
    file: &mut File,
    start: u64,
    file_len: u64,
) -> std::io::Result<Option<(u64, u32)>> {
    let mut pos = start + 12;
    for _ in 0..1024 {
        if pos + 8 > file_len {
            return Ok(None);
        }
        file.seek(SeekFrom::Start(pos))?;
        let mut header = [0u8; 8];
        file.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if &header[..4] == b"data" {
            return Ok(Some((pos + 8, len)));
        }
        pos += 8 + u64::from(len) + u64::from(len & 1);
    }
    Ok(None)
}

/// Checks, before decoding, that a WAV file holds the data its header declares.
fn check_wav_length(path: &Path, file: &mut File, start: u64, file_len: u64) -> Result<()> {
    let found = wav_data_chunk(file, start, file_len).map_err(|e| ModalError::io(path, e))?;
    if let Some((start, declared)) = found
        && declared != WAV_UNKNOWN_LENGTH
    {
        let held = file_len.saturating_sub(start);
        if held < u64::from(declared) {
            return Err(ModalError::decode(
                path,
                format!(
                    "truncated WAV: the data chunk declares {declared} bytes of audio, \
                     the file holds {held}"
                ),
            ));
        }
    }
    Ok(())
}

/// The number of frames (at the file's sample rate) the header of a `container` file
/// declares, when it is exact enough to detect a file cut short.
fn declared_frames(container: Container, params: &CodecParameters) -> Option<u64> {
    use symphonia::core::codecs::{CODEC_TYPE_MP1, CODEC_TYPE_MP2, CODEC_TYPE_MP3};
    let trusted = match container {
        Container::Flac | Container::Ogg | Container::Mp4 => true,
        // Without a LAME tag (the Xing/Info header's delay and padding) symphonia
        // estimates an MP3's length from its first frames' bitrate.
        Container::Other => {
            [CODEC_TYPE_MP1, CODEC_TYPE_MP2, CODEC_TYPE_MP3].contains(&params.codec)
                && params.delay.is_some()
        }
        // Checked on the bytes instead (a streamed WAV declares no length).
        Container::Wav => false,
    };
    let n = params.n_frames.filter(|&n| trusted && n > 0)?;
    match (params.time_base, params.sample_rate) {
        (Some(tb), Some(rate)) if tb.denom > 0 => Some(
            (u128::from(n) * u128::from(tb.numer) * u128::from(rate) / u128::from(tb.denom))
                .min(u128::from(u64::MAX)) as u64,
        ),
        _ => Some(n),
    }
}

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

/// Seconds of `samples` at `rate` (0 when the rate is not known yet), for messages.
fn seconds(samples: &[f32], rate: Option<u32>) -> String {
    let s = rate.map_or(0.0, |r| samples.len() as f64 / f64::from(r.max(1)));
    format!("{s:.3}")
}

fn is_end_of_stream(e: &SymError) -> bool {
    matches!(e, SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
}

/// The probe for a `container` recognised at the start of the stream: only its reader
/// (so symphonia parses exactly what [`check_declared_sizes`] walked), or for anything
/// else the MP3 and ADTS readers (symphonia would otherwise scan past the start and could
/// find a `fLaC`, `OggS`, `ftyp` or `RIFF` marker that was never checked).
fn probe_for(container: Container) -> &'static Probe {
    use symphonia::default::formats::{
        AdtsReader, FlacReader, IsoMp4Reader, MpaReader, OggReader, WavReader,
    };
    static PROBES: [OnceLock<Probe>; 5] = [const { OnceLock::new() }; 5];
    let (slot, register): (usize, fn(&mut Probe)) = match container {
        Container::Wav => (0, |p| p.register_all::<WavReader>()),
        Container::Flac => (1, |p| p.register_all::<FlacReader>()),
        Container::Ogg => (2, |p| p.register_all::<OggReader>()),
        Container::Mp4 => (3, |p| p.register_all::<IsoMp4Reader>()),
        Container::Other => (4, |p| {
            p.register_all::<MpaReader>();
            p.register_all::<AdtsReader>();
        }),
    };
    PROBES[slot].get_or_init(|| {
        let mut probe = Probe::default();
        register(&mut probe);
        probe
    })
}

fn guard_error(path: &Path, e: GuardError) -> ModalError {
    match e {
        GuardError::Io(io) => ModalError::io(path, io),
        GuardError::Declared(m) => ModalError::decode(path, m),
    }
}

fn decode_inner(path: &Path, max_seconds: f32) -> Result<DecodedAudio> {
    let mut file = File::open(path).map_err(|e| ModalError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| ModalError::io(path, e))?.len();
    // ID3v2 tags before the audio are skipped, never parsed (their frames declare sizes
    // the reader allocates before reading).
    let start = skip_id3v2(&mut file, file_len).map_err(|e| guard_error(path, e))?;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| ModalError::io(path, e))?;
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ModalError::io(path, e)),
        }
    }
    let container = Container::sniff(&head[..got]);
    // Every size the container declares must fit in the bytes that exist, before
    // symphonia allocates by it.
    check_declared_sizes(container, &mut file, start, file_len - start)
        .map_err(|e| guard_error(path, e))?;
    if container == Container::Wav {
        check_wav_length(path, &mut file, start, file_len)?;
    }
    let source: Box<dyn MediaSource> = if start == 0 {
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ModalError::io(path, e))?;
        Box::new(file)
    } else {
        Box::new(Window::new(file, start, file_len).map_err(|e| ModalError::io(path, e))?)
    };
    let stream = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let format_options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = probe_for(container)
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
    let declared = declared_frames(container, &track.codec_params);
    if container == Container::Ogg && track.codec_params.n_frames.is_none() {
        return Err(ModalError::decode(
            path,
            "truncated Ogg stream: the last page is not an end-of-stream page",
        ));
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| ModalError::decode(path, describe(&e)))?;
    let mut sample_rate = track.codec_params.sample_rate;
    let mut channels = track.codec_params.channels.map_or(0, |c| c.count());

    let mut samples: Vec<f32> = Vec::new();
    let mut limit: Option<usize> = None;
    let mut buffer: Option<SampleBuffer<f32>> = None;
    let mut packets = 0u64;
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
            // A damaged stream: an error, not the audio before the damage.
            Err(e) => {
                return Err(ModalError::decode(
                    path,
                    format!(
                        "{} (after {} s of audio)",
                        describe(&e),
                        seconds(&samples, sample_rate)
                    ),
                ));
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        packets += 1;
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(m)) => {
                return Err(ModalError::decode(
                    path,
                    format!("corrupt stream: packet {packets}: {m}"),
                ));
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
        return Err(ModalError::decode(path, "no audio could be decoded"));
    };
    // Float PCM can carry NaN, infinities or values so large that their power overflows,
    // which would poison every mel band.
    if let Some(i) = samples
        .iter()
        .position(|x| !(x.is_finite() && x.abs() <= MAX_SAMPLE_MAGNITUDE))
    {
        return Err(ModalError::decode(
            path,
            format!(
                "sample {i} ({:.3} s) is {}: not a finite number within ±{MAX_SAMPLE_MAGNITUDE} \
                 (full scale is ±1)",
                i as f64 / f64::from(sample_rate),
                samples[i]
            ),
        ));
    }
    if !cut
        && let Some(expected) = declared
        && (samples.len() as u64) < expected
    {
        return Err(ModalError::decode(
            path,
            format!(
                "truncated: decoded {} of the {expected} frames ({:.3} s) its header declares",
                samples.len(),
                expected as f64 / f64::from(sample_rate)
            ),
        ));
    }
    Ok(DecodedAudio {
        samples,
        sample_rate,
        channels,
        cut,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        std::fs::read(dir.join(name)).unwrap()
    }

    #[test]
    fn leading_id3v2_tags_are_skipped_and_the_audio_decodes_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let flac = fixture("tone_1k_48k_stereo.flac");
        let bare = dir.path().join("bare.flac");
        std::fs::write(&bare, &flac).unwrap();
        // An ID3v2.3 tag (one TIT2 frame, then padding) before the FLAC stream.
        let mut tagged = b"ID3\x03\x00\x00\x00\x00\x00\x20".to_vec();
        tagged.extend_from_slice(b"TIT2\x00\x00\x00\x05\x00\x00\x00tone");
        tagged.resize(10 + 32, 0);
        tagged.extend_from_slice(&flac);
        let tagged_path = dir.path().join("tagged.flac");
        std::fs::write(&tagged_path, &tagged).unwrap();
        assert_eq!(
            decode_audio(&tagged_path, 30.0).unwrap(),
            decode_audio(&bare, 30.0).unwrap()
        );
        // A tag frame declaring 4 GB is never read: the tag is skipped whole.
        tagged[14..18].copy_from_slice(&u32::MAX.to_be_bytes());
        std::fs::write(&tagged_path, &tagged).unwrap();
        assert_eq!(
            decode_audio(&tagged_path, 30.0).unwrap(),
            decode_audio(&bare, 30.0).unwrap()
        );
    }

    #[test]
    fn a_container_after_junk_is_not_parsed_unchecked() {
        // A FLAC picture block declaring 4 GB, behind one junk byte: symphonia's probe
        // would find `fLaC` at byte 1; only the MP3 and ADTS readers are offered, so the
        // file is an error (naming it), not an allocation.
        let mut flac = fixture("tone_1k_48k_stereo.flac");
        let mut picture = vec![0u8, 0, 0, 3, 0xff, 0xff, 0xff, 0xff];
        picture.extend_from_slice(&[0u8; 32]);
        let len = (picture.len() as u32).to_be_bytes();
        let at = 4 + 4 + 34;
        flac[4] &= 0x7f;
        let mut block = vec![6u8, len[1], len[2], len[3]];
        block.extend_from_slice(&picture);
        flac.splice(at..at, block);
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("picture.flac");
        std::fs::write(&plain, &flac).unwrap();
        let err = decode_audio(&plain, 30.0).unwrap_err().to_string();
        assert!(
            err.contains("picture.flac") && err.contains("PICTURE"),
            "{err}"
        );
        let junk = dir.path().join("junk.flac");
        std::fs::write(&junk, [&[0x20u8][..], &flac].concat()).unwrap();
        let err = decode_audio(&junk, 30.0).unwrap_err().to_string();
        assert!(err.contains("junk.flac"), "{err}");
    }
}
