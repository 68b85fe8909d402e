//! Declared sizes checked against the bytes that exist, before symphonia reads a file.
//!
//! symphonia 0.5.5 sizes buffers from header fields before it reads the bytes they
//! describe: MP4 sample tables (`Vec::with_capacity(entry_count)` for `stco`, `co64`,
//! `stts`, `stsc`, `stsz`), MP4 packets (a buffer of the sample size `stsz`/`trun`/`tfhd`/
//! `trex` declares), atom payloads (`hdlr`, `ilst` data), FLAC and Ogg metadata (Vorbis
//! comment lengths, picture MIME type, description and data lengths, also inside a
//! base64 `METADATA_BLOCK_PICTURE` comment), RIFF `LIST`/`INFO` chunks and ID3v2 frames.
//! A few-KB file can so ask for gigabytes, and a failed allocation aborts the process
//! (it is not a panic). `FormatOptions` and `MetadataOptions::limit_*` do not help: no
//! reader of 0.5.5 consults those limits.
//!
//! The rule here is generic: **a size a header declares may not exceed the bytes that
//! exist for it** (the rest of the enclosing box, block, packet or file). Each container
//! is walked the way symphonia will read it, without decoding:
//!
//! * MP4/M4A: every box inside the containers symphonia descends into must fit in its
//!   parent (the top level in the file); the entry count of a sample table times its
//!   entry size must fit in the box; every sample size (`stsz` entries or its constant
//!   size, `trun` entries, the `tfhd`/`trex` defaults) must not exceed the file length;
//! * FLAC: every metadata block must fit in the file; Vorbis comments and pictures inside
//!   must fit in their block;
//! * Ogg: pages must follow each other and fit in the file; the comment header of Vorbis
//!   and Opus streams and the comment and picture blocks of Ogg FLAC streams must fit in
//!   their packet;
//! * WAV: every chunk before `data` must fit in the file;
//! * ID3v2 tags at the start of a file must fit in it; they are skipped, never parsed
//!   (the clip's tags are not used), so the ID3v2 reader's frame sizes cannot matter.
//!
//! What remains bounded only by the field widths of the formats: the FLAC metadata block
//! itself (24-bit length, at most 16 MiB, and it must exist in the file), a descriptor
//! inside an MP4 `esds` box (28-bit length, at most 256 MiB) and the codec set-up data
//! inside an MP4 sample description.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use symphonia::core::io::MediaSource;

/// Why a file was refused before decoding.
#[derive(Debug)]
pub(crate) enum GuardError {
    /// The file could not be read.
    Io(io::Error),
    /// A declared size exceeds the bytes that exist (the message says where).
    Declared(String),
}

impl From<io::Error> for GuardError {
    fn from(e: io::Error) -> Self {
        GuardError::Io(e)
    }
}

type GuardResult<T> = std::result::Result<T, GuardError>;

fn refuse<T>(message: String) -> GuardResult<T> {
    Err(GuardError::Declared(message))
}

/// Refuses the MP4 box `name` at byte `pos` whose body (`len` bytes) is too short for
/// `what`.
fn too_short<T>(name: &str, pos: u64, len: u64, what: &str) -> GuardResult<T> {
    refuse(format!(
        "MP4 box `{name}` at byte {pos} is too short ({len} bytes) {what}"
    ))
}

/// The container of a stream, recognised from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Container {
    /// RIFF/WAVE.
    Wav,
    /// Native FLAC (`fLaC`).
    Flac,
    /// Ogg (`OggS`).
    Ogg,
    /// ISO base media (MP4, M4A: `ftyp` at byte 4).
    Mp4,
    /// Anything else (MP3, ADTS, ...).
    Other,
}

impl Container {
    /// The container whose stream starts with `head`.
    pub(crate) fn sniff(head: &[u8]) -> Self {
        if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WAVE" {
            Container::Wav
        } else if head.starts_with(b"fLaC") {
            Container::Flac
        } else if head.starts_with(b"OggS") {
            Container::Ogg
        } else if head.len() >= 8 && &head[4..8] == b"ftyp" {
            Container::Mp4
        } else {
            Container::Other
        }
    }
}

/// Random access to a stream of `len` bytes, buffered for forward walks.
struct Bytes<R: Read + Seek> {
    inner: BufReader<R>,
    /// Where `inner` stands, relative to the stream start (`None`: unknown).
    pos: Option<u64>,
    base: u64,
    len: u64,
}

impl<R: Read + Seek> Bytes<R> {
    fn new(inner: R, base: u64, len: u64) -> Self {
        Bytes {
            inner: BufReader::with_capacity(16 * 1024, inner),
            pos: None,
            base,
            len,
        }
    }

    /// Fills `buf` from stream offset `at` (the caller checked it lies inside).
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        match self.pos {
            Some(p) if at >= p && at - p <= 1 << 20 => self.inner.seek_relative((at - p) as i64)?,
            Some(p) if at < p && p - at <= 1 << 14 => {
                self.inner.seek_relative(-((p - at) as i64))?
            }
            _ => {
                self.inner.seek(SeekFrom::Start(self.base + at))?;
            }
        }
        self.pos = None;
        self.inner.read_exact(buf)?;
        self.pos = Some(at + buf.len() as u64);
        Ok(())
    }

    fn u32_be(&mut self, at: u64) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.read_at(at, &mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn vec_at(&mut self, at: u64, n: u64) -> io::Result<Vec<u8>> {
        // `n` is at most what exists in the stream (checked by the callers).
        let mut v = vec![0u8; n as usize];
        self.read_at(at, &mut v)?;
        Ok(v)
    }
}

/// Checks the declared sizes of a `container` stream of `len` bytes that starts at byte
/// `base` of `source`.
pub(crate) fn check_declared_sizes<R: Read + Seek>(
    container: Container,
    source: R,
    base: u64,
    len: u64,
) -> GuardResult<()> {
    let mut bytes = Bytes::new(source, base, len);
    match container {
        Container::Mp4 => Mp4Walk {
            bytes: &mut bytes,
            file_len: len,
        }
        .walk(0, len, "the file", Children::Boxes, 0),
        Container::Flac => check_flac(&mut bytes),
        Container::Ogg => check_ogg(&mut bytes),
        Container::Wav => check_wav(&mut bytes),
        Container::Other => Ok(()),
    }
}

// ---------------------------------------------------------------------------- ID3v2

/// The offset of the first byte after the ID3v2 tags at the start of `source` (0 when
/// there are none). A tag that declares more bytes than the file holds is refused.
pub(crate) fn skip_id3v2<R: Read + Seek>(source: R, len: u64) -> GuardResult<u64> {
    let mut bytes = Bytes::new(source, 0, len);
    let mut pos = 0u64;
    while len.saturating_sub(pos) >= 10 {
        let mut h = [0u8; 10];
        bytes.read_at(pos, &mut h)?;
        if &h[..3] != b"ID3" || h[3] == 0xff || h[4] == 0xff || h[6..].iter().any(|b| b & 0x80 != 0)
        {
            break;
        }
        let size = h[6..]
            .iter()
            .fold(0u64, |acc, &b| (acc << 7) | u64::from(b));
        let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
        let total = 10 + size + footer;
        if total > len - pos {
            return refuse(format!(
                "ID3v2 tag at byte {pos} declares {total} bytes, the file holds {} from there",
                len - pos
            ));
        }
        pos += total;
    }
    Ok(pos)
}

mod mp4;
use mp4::{Children, Mp4Walk, fourcc};

// ---------------------------------------------------------------------------- FLAC

fn flac_block_name(kind: u8) -> String {
    match kind {
        0 => "STREAMINFO".into(),
        1 => "PADDING".into(),
        2 => "APPLICATION".into(),
        3 => "SEEKTABLE".into(),
        4 => "VORBIS_COMMENT".into(),
        5 => "CUESHEET".into(),
        6 => "PICTURE".into(),
        other => format!("of type {other}"),
    }
}

fn check_flac<R: Read + Seek>(bytes: &mut Bytes<R>) -> GuardResult<()> {
    let len = bytes.len;
    let mut pos = 4u64;
    while len - pos >= 4 {
        let mut h = [0u8; 4];
        bytes.read_at(pos, &mut h)?;
        let kind = h[0] & 0x7f;
        let block = u64::from(u32::from_be_bytes([0, h[1], h[2], h[3]]));
        let name = flac_block_name(kind);
        let rest = len - pos - 4;
        if block > rest {
            return refuse(format!(
                "FLAC metadata block {name} at byte {pos} declares {block} bytes, the file holds \
                 {rest} after its header"
            ));
        }
        let what = format!("FLAC metadata block {name} at byte {pos}");
        match kind {
            4 => check_vorbis_comment(&bytes.vec_at(pos + 4, block)?, &what)?,
            6 => check_picture(&bytes.vec_at(pos + 4, block)?, &what)?,
            _ => {}
        }
        pos += 4 + block;
        if h[0] & 0x80 != 0 || kind == 0x7f {
            break;
        }
    }
    Ok(())
}

/// A cursor over a metadata buffer whose lengths are checked against what remains.
struct Fields<'a> {
    b: &'a [u8],
    at: usize,
}

impl Fields<'_> {
    fn u32(&mut self, big_endian: bool) -> Option<u32> {
        let w: [u8; 4] = self.b.get(self.at..self.at + 4)?.try_into().ok()?;
        self.at += 4;
        Some(if big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        })
    }

    fn remaining(&self) -> usize {
        self.b.len() - self.at
    }

    /// Takes `n` bytes, or refuses: `field` of `what` declares more than remains.
    fn take(&mut self, n: u32, field: &str, what: &str) -> GuardResult<&[u8]> {
        let n = n as usize;
        if n > self.remaining() {
            return refuse(format!(
                "{what}: {field} declares {n} bytes, only {} remain",
                self.remaining()
            ));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
}

/// A Vorbis comment block (vendor string, count, comments; little-endian lengths) must
/// hold every length it declares. A `METADATA_BLOCK_PICTURE` comment is checked as the
/// picture it encodes.
fn check_vorbis_comment(b: &[u8], what: &str) -> GuardResult<()> {
    let mut f = Fields { b, at: 0 };
    let Some(vendor) = f.u32(false) else {
        return Ok(());
    };
    f.take(vendor, "the vendor string", what)?;
    let Some(count) = f.u32(false) else {
        return Ok(());
    };
    if u64::from(count) * 4 > f.remaining() as u64 {
        return refuse(format!(
            "{what}: declares {count} comments, only {} bytes remain",
            f.remaining()
        ));
    }
    for i in 0..count {
        let Some(n) = f.u32(false) else {
            return Ok(());
        };
        let comment = f.take(n, &format!("comment {}", i + 1), what)?;
        let text = String::from_utf8_lossy(comment);
        if let Some((key, value)) = text.split_once('=')
            && key.to_lowercase() == "metadata_block_picture"
            && let Some(picture) = base64(value)
        {
            check_picture(
                &picture,
                &format!("{what}, comment {} (METADATA_BLOCK_PICTURE)", i + 1),
            )?;
        }
    }
    Ok(())
}

/// A FLAC picture (big-endian lengths of its MIME type, description and data) must hold
/// every length it declares.
fn check_picture(b: &[u8], what: &str) -> GuardResult<()> {
    let mut f = Fields { b, at: 0 };
    if f.u32(true).is_none() {
        return Ok(());
    }
    let Some(n) = f.u32(true) else {
        return Ok(());
    };
    f.take(n, "the picture's MIME type", what)?;
    let Some(n) = f.u32(true) else {
        return Ok(());
    };
    f.take(n, "the picture's description", what)?;
    for _ in 0..4 {
        if f.u32(true).is_none() {
            return Ok(());
        }
    }
    let Some(n) = f.u32(true) else {
        return Ok(());
    };
    f.take(n, "the picture data", what)?;
    Ok(())
}

/// Decodes base64 (standard alphabet, trailing `=` optional) as symphonia's Vorbis comment
/// reader does; `None` where it would refuse the text (and so not parse a picture).
fn base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for chunk in text.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

// ---------------------------------------------------------------------------- Ogg

/// The codec of a logical Ogg stream, from its first packet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OggCodec {
    Vorbis,
    Opus,
    Flac,
    Other,
}

/// What is known of one logical stream while its pages are walked.
struct OggStream {
    codec: Option<OggCodec>,
    /// The packet being assembled (`None`: none, or one not worth keeping).
    packet: Option<Vec<u8>>,
    /// Whether the current packet is being skipped.
    skipping: bool,
}

fn check_ogg<R: Read + Seek>(bytes: &mut Bytes<R>) -> GuardResult<()> {
    let len = bytes.len;
    let mut streams: HashMap<u32, OggStream> = HashMap::new();
    let mut pos = 0u64;
    let mut body = Vec::new();
    while pos < len {
        if len - pos < 27 {
            return refuse(format!(
                "Ogg page at byte {pos}: the file ends inside its header"
            ));
        }
        let mut h = [0u8; 27];
        bytes.read_at(pos, &mut h)?;
        if &h[..4] != b"OggS" {
            return refuse(format!("corrupt Ogg stream: no page starts at byte {pos}"));
        }
        let continued = h[5] & 0x01 != 0;
        let serial = u32::from_le_bytes([h[14], h[15], h[16], h[17]]);
        let n_segments = u64::from(h[26]);
        if len - pos - 27 < n_segments {
            return refuse(format!(
                "Ogg page at byte {pos}: the file ends inside its segment table"
            ));
        }
        let mut table = vec![0u8; n_segments as usize];
        bytes.read_at(pos + 27, &mut table)?;
        let body_len: u64 = table.iter().map(|&s| u64::from(s)).sum();
        let body_at = pos + 27 + n_segments;
        if body_len > len - body_at {
            return refuse(format!(
                "Ogg page at byte {pos} declares {body_len} bytes of packets, the file holds {} \
                 after its header",
                len - body_at
            ));
        }
        body.resize(body_len as usize, 0);
        bytes.read_at(body_at, &mut body)?;
        let stream = streams.entry(serial).or_insert(OggStream {
            codec: None,
            packet: None,
            skipping: false,
        });
        if !continued {
            stream.packet = None;
            stream.skipping = false;
        }
        let mut at = 0usize;
        for &seg in &table {
            let piece = &body[at..at + usize::from(seg)];
            at += usize::from(seg);
            if !stream.skipping {
                let p = stream.packet.get_or_insert_with(Vec::new);
                p.extend_from_slice(piece);
                // Decide from the first bytes whether the packet is worth keeping.
                if p.len() >= 8 && !ogg_packet_wanted(stream.codec, p) {
                    stream.packet = None;
                    stream.skipping = true;
                }
            }
            if seg < 255 {
                if let Some(p) = stream.packet.take() {
                    ogg_packet(stream, &p, pos)?;
                } else if stream.codec.is_none() {
                    stream.codec = Some(OggCodec::Other);
                }
                stream.skipping = false;
            }
        }
        pos = body_at + body_len;
    }
    Ok(())
}

/// Whether a packet starting with `p` must be kept: a stream's first packet (it names the
/// codec) and the packets symphonia parses as metadata.
fn ogg_packet_wanted(codec: Option<OggCodec>, p: &[u8]) -> bool {
    match codec {
        None => true,
        Some(OggCodec::Vorbis) => p.starts_with(b"\x03vorbis"),
        Some(OggCodec::Opus) => p.starts_with(b"OpusTags"),
        Some(OggCodec::Flac) => p[0] != 0xff && matches!(p[0] & 0x7f, 4 | 6),
        Some(OggCodec::Other) => false,
    }
}

/// Checks one whole packet of `stream` (its page starts at byte `page`).
fn ogg_packet(stream: &mut OggStream, p: &[u8], page: u64) -> GuardResult<()> {
    let Some(codec) = stream.codec else {
        stream.codec = Some(if p.starts_with(b"\x01vorbis") {
            OggCodec::Vorbis
        } else if p.starts_with(b"OpusHead") {
            OggCodec::Opus
        } else if p.starts_with(b"\x7fFLAC") {
            OggCodec::Flac
        } else {
            OggCodec::Other
        });
        return Ok(());
    };
    let what = format!("Ogg packet ending in the page at byte {page}");
    match codec {
        OggCodec::Vorbis if p.starts_with(b"\x03vorbis") => {
            check_vorbis_comment(&p[7..], &format!("{what} (Vorbis comment header)"))
        }
        OggCodec::Opus if p.starts_with(b"OpusTags") => {
            check_vorbis_comment(&p[8..], &format!("{what} (OpusTags)"))
        }
        OggCodec::Flac if p.len() >= 4 && p[0] != 0xff => match p[0] & 0x7f {
            4 => check_vorbis_comment(&p[4..], &format!("{what} (FLAC VORBIS_COMMENT)")),
            6 => check_picture(&p[4..], &format!("{what} (FLAC PICTURE)")),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------- WAV

fn check_wav<R: Read + Seek>(bytes: &mut Bytes<R>) -> GuardResult<()> {
    let len = bytes.len;
    let mut pos = 12u64;
    while len.saturating_sub(pos) >= 8 {
        let mut h = [0u8; 8];
        bytes.read_at(pos, &mut h)?;
        if &h[..4] == b"data" {
            // Its length is checked against the file by the truncation check.
            break;
        }
        let chunk = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
        if chunk > len - pos - 8 {
            return refuse(format!(
                "WAV chunk `{}` at byte {pos} declares {chunk} bytes, the file holds {} after its \
                 header",
                fourcc(&[h[0], h[1], h[2], h[3]]),
                len - pos - 8
            ));
        }
        pos += 8 + chunk + (chunk & 1);
    }
    Ok(())
}

// ---------------------------------------------------------------------------- the source

/// The part of a file from byte `start` on, as a stream of its own (the ID3v2 tags before
/// a container are skipped this way).
pub(crate) struct Window {
    file: File,
    start: u64,
    len: u64,
}

impl Window {
    /// The bytes of `file` (of `file_len` bytes) from `start` on; seeks the file there.
    pub(crate) fn new(mut file: File, start: u64, file_len: u64) -> io::Result<Self> {
        file.seek(SeekFrom::Start(start))?;
        Ok(Window {
            file,
            start,
            len: file_len.saturating_sub(start),
        })
    }
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => {
                let now = self.file.stream_position()? - self.start;
                now.checked_add_signed(d)
            }
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the stream",
            ));
        };
        Ok(self.file.seek(SeekFrom::Start(self.start + target))? - self.start)
    }
}

impl MediaSource for Window {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

#[cfg(test)]
mod tests;
