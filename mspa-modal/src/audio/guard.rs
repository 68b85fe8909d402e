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

// ---------------------------------------------------------------------------- MP4

/// How the children of an MP4 container are laid out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Children {
    /// A list of boxes.
    Boxes,
    /// A list of boxes, each of which is itself a list of boxes (`ilst` items).
    Containers,
}

/// Boxes symphonia descends into, whose children are boxes.
const MP4_CONTAINERS: [&[u8; 4]; 12] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts", b"udta", b"mvex", b"moof",
    b"traf", b"mfra",
];

/// Deepest nesting walked (symphonia's own nesting is fixed and shallower).
const MP4_MAX_DEPTH: u32 = 16;

struct Mp4Walk<'a, R: Read + Seek> {
    bytes: &'a mut Bytes<R>,
    file_len: u64,
}

fn fourcc(t: &[u8; 4]) -> String {
    t.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

impl<R: Read + Seek> Mp4Walk<'_, R> {
    /// Walks the boxes in `[start, end)`, the payload of `parent`.
    fn walk(
        &mut self,
        start: u64,
        end: u64,
        parent: &str,
        children: Children,
        depth: u32,
    ) -> GuardResult<()> {
        let mut pos = start;
        while end - pos >= 8 {
            let mut h = [0u8; 8];
            self.bytes.read_at(pos, &mut h)?;
            let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
            let typ = [h[4], h[5], h[6], h[7]];
            let name = fourcc(&typ);
            let (header, size) = match size32 {
                0 => (8, end - pos),
                1 => {
                    if end - pos < 16 {
                        return refuse(format!(
                            "MP4 box `{name}` at byte {pos}: its 64-bit size does not fit in \
                             {parent}"
                        ));
                    }
                    let mut l = [0u8; 8];
                    self.bytes.read_at(pos + 8, &mut l)?;
                    (16, u64::from_be_bytes(l))
                }
                n => (8, u64::from(n)),
            };
            if size < header {
                return refuse(format!(
                    "MP4 box `{name}` at byte {pos} declares {size} bytes, less than its header"
                ));
            }
            if size > end - pos {
                return refuse(format!(
                    "MP4 box `{name}` at byte {pos} declares {size} bytes, but only {} remain \
                     in {parent}",
                    end - pos
                ));
            }
            let body = pos + header;
            let body_end = pos + size;
            let inner = format!("box `{name}` (byte {pos})");
            if children == Children::Containers {
                if depth < MP4_MAX_DEPTH {
                    self.walk(body, body_end, &inner, Children::Boxes, depth + 1)?;
                }
            } else if MP4_CONTAINERS.contains(&&typ) {
                if depth < MP4_MAX_DEPTH {
                    self.walk(body, body_end, &inner, Children::Boxes, depth + 1)?;
                }
            } else if &typ == b"meta" {
                // symphonia reads a version and flags word first, always.
                if depth < MP4_MAX_DEPTH && body_end - body >= 4 {
                    self.walk(body + 4, body_end, &inner, Children::Boxes, depth + 1)?;
                }
            } else if &typ == b"ilst" {
                if depth < MP4_MAX_DEPTH {
                    self.walk(body, body_end, &inner, Children::Containers, depth + 1)?;
                }
            } else {
                self.leaf(&typ, pos, body, body_end)?;
            }
            pos = body_end;
            if size32 == 0 {
                break;
            }
        }
        Ok(())
    }

    /// A sample size must not exceed the file.
    fn sample_size(&self, name: &str, pos: u64, what: &str, size: u32) -> GuardResult<()> {
        if u64::from(size) > self.file_len {
            return refuse(format!(
                "MP4 box `{name}` at byte {pos}: {what} declares {size} bytes, more than the \
                 whole file ({} bytes)",
                self.file_len
            ));
        }
        Ok(())
    }

    /// Checks a table box whose payload `[body, end)` starts with version/flags, then
    /// `skip` more bytes, then an entry count of `entry` bytes each; returns the count
    /// and the offset of the first entry.
    fn table(
        &mut self,
        name: &str,
        pos: u64,
        body: u64,
        end: u64,
        skip: u64,
        entry: u64,
    ) -> GuardResult<(u64, u64)> {
        let first = body + 8 + skip;
        if first > end {
            return too_short(name, pos, end - body, "to hold its entry count");
        }
        let count = u64::from(self.bytes.u32_be(body + 4 + skip)?);
        if count.saturating_mul(entry) > end - first {
            return refuse(format!(
                "MP4 box `{name}` at byte {pos} declares {count} entries of {entry} bytes, but \
                 the box holds {} bytes of entries",
                end - first
            ));
        }
        Ok((count, first))
    }

    /// The boxes that declare counts or sizes.
    fn leaf(&mut self, typ: &[u8; 4], pos: u64, body: u64, end: u64) -> GuardResult<()> {
        let name = fourcc(typ);
        match typ {
            b"stco" | b"stss" => {
                self.table(&name, pos, body, end, 0, 4)?;
            }
            b"co64" | b"stts" | b"ctts" => {
                self.table(&name, pos, body, end, 0, 8)?;
            }
            b"stsc" => {
                self.table(&name, pos, body, end, 0, 12)?;
            }
            b"stsz" => {
                if end - body < 12 {
                    return too_short("stsz", pos, end - body, "to hold its sample count");
                }
                let constant = self.bytes.u32_be(body + 4)?;
                if constant != 0 {
                    self.sample_size(&name, pos, "the constant sample size", constant)?;
                } else {
                    let (count, first) = self.table(&name, pos, body, end, 4, 4)?;
                    for i in 0..count {
                        let size = self.bytes.u32_be(first + 4 * i)?;
                        self.sample_size(&name, pos, &format!("sample {}", i + 1), size)?;
                    }
                }
            }
            b"trun" => {
                if end - body < 8 {
                    return too_short("trun", pos, end - body, "to hold its sample count");
                }
                let flags = self.bytes.u32_be(body)? & 0x00ff_ffff;
                let count = u64::from(self.bytes.u32_be(body + 4)?);
                let mut first = body + 8;
                first += 4 * u64::from(flags & 0x1 != 0) + 4 * u64::from(flags & 0x4 != 0);
                let per_sample: u64 = [0x100, 0x200, 0x400, 0x800]
                    .iter()
                    .map(|f| 4 * u64::from(flags & f != 0))
                    .sum();
                if first > end
                    || count.saturating_mul(per_sample) > end - first
                    || count > self.file_len
                {
                    return refuse(format!(
                        "MP4 box `trun` at byte {pos} declares {count} samples of {per_sample} \
                         bytes each, but the box holds {} bytes",
                        end - body
                    ));
                }
                if flags & 0x200 != 0 {
                    let offset = 4 * u64::from(flags & 0x100 != 0);
                    for i in 0..count {
                        let size = self.bytes.u32_be(first + i * per_sample + offset)?;
                        self.sample_size(&name, pos, &format!("sample {}", i + 1), size)?;
                    }
                }
            }
            b"tfhd" => {
                let flags = if end - body >= 4 {
                    self.bytes.u32_be(body)? & 0x00ff_ffff
                } else {
                    0
                };
                if flags & 0x10 != 0 {
                    let at = body
                        + 8
                        + 8 * u64::from(flags & 0x1 != 0)
                        + 4 * u64::from(flags & 0x2 != 0)
                        + 4 * u64::from(flags & 0x8 != 0);
                    if at + 4 > end {
                        let what = "for the fields its flags declare";
                        return too_short("tfhd", pos, end - body, what);
                    }
                    let size = self.bytes.u32_be(at)?;
                    self.sample_size(&name, pos, "the default sample size", size)?;
                }
            }
            b"trex" => {
                if end - body >= 20 {
                    let size = self.bytes.u32_be(body + 16)?;
                    self.sample_size(&name, pos, "the default sample size", size)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

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
mod tests {
    use std::io::Cursor;

    use super::*;

    fn check(container: Container, bytes: &[u8]) -> std::result::Result<(), String> {
        match check_declared_sizes(container, Cursor::new(bytes), 0, bytes.len() as u64) {
            Ok(()) => Ok(()),
            Err(GuardError::Declared(m)) => Err(m),
            Err(GuardError::Io(e)) => panic!("read error on an in-memory file: {e}"),
        }
    }

    fn refused(container: Container, bytes: &[u8], needle: &str) {
        match check(container, bytes) {
            Err(m) => assert!(m.contains(needle), "`{m}` does not mention `{needle}`"),
            Ok(()) => panic!("accepted; expected a refusal mentioning `{needle}`"),
        }
    }

    // ------------------------------------------------------------ MP4

    fn bx(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(typ);
        v.extend_from_slice(payload);
        v
    }

    /// A full box: version and flags (0), then `payload`.
    fn full(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        bx(typ, &[&[0u8; 4][..], payload].concat())
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    /// ftyp, then moov/trak/mdia/minf/stbl holding `tables`, then a 64-byte mdat.
    fn mp4(tables: &[Vec<u8>]) -> Vec<u8> {
        let stbl = bx(b"stbl", &tables.concat());
        let minf = bx(b"minf", &stbl);
        let mdia = bx(b"mdia", &[full(b"hdlr", &[0u8; 21]), minf].concat());
        let moov = bx(b"moov", &bx(b"trak", &mdia));
        [bx(b"ftyp", b"M4A \0\0\0\0"), moov, bx(b"mdat", &[0u8; 64])].concat()
    }

    fn good_tables() -> Vec<Vec<u8>> {
        vec![
            full(b"stts", &words(&[1, 2, 1024])),
            full(b"stsc", &words(&[1, 1, 2, 1])),
            full(b"stsz", &words(&[0, 2, 30, 34])),
            full(b"stco", &words(&[1, 100])),
        ]
    }

    #[test]
    fn a_minimal_mp4_passes() {
        check(Container::Mp4, &mp4(&good_tables())).unwrap();
        // Constant sample sizes and 64-bit chunk offsets too.
        let mut t = good_tables();
        t[2] = full(b"stsz", &words(&[32, 2]));
        t[3] = full(b"co64", &words(&[1, 0, 100]));
        check(Container::Mp4, &mp4(&t)).unwrap();
    }

    #[test]
    fn mp4_tables_with_more_entries_than_their_box_are_refused() {
        for (i, name, table) in [
            (3, "stco", full(b"stco", &words(&[0x77c7_ffe7, 100]))),
            (3, "co64", full(b"co64", &words(&[2, 0, 100]))),
            (0, "stts", full(b"stts", &words(&[u32::MAX, 2, 1024]))),
            (1, "stsc", full(b"stsc", &words(&[2, 1, 2, 1]))),
            (2, "stsz", full(b"stsz", &words(&[0, 3, 30, 34]))),
            (3, "stco", full(b"stco", &[])),
        ] {
            let mut t = good_tables();
            t[i] = table;
            refused(Container::Mp4, &mp4(&t), name);
        }
    }

    #[test]
    fn mp4_samples_larger_than_the_file_are_refused() {
        let mut t = good_tables();
        t[2] = full(b"stsz", &words(&[0, 2, 30, u32::MAX]));
        refused(
            Container::Mp4,
            &mp4(&t),
            "sample 2 declares 4294967295 bytes",
        );
        t[2] = full(b"stsz", &words(&[1 << 30, 2]));
        refused(Container::Mp4, &mp4(&t), "the constant sample size");
    }

    #[test]
    fn mp4_boxes_larger_than_their_parent_or_the_file_are_refused() {
        let good = mp4(&good_tables());
        // The mdat (last, 72 bytes) declares a gigabyte.
        let mut bad = good.clone();
        let at = bad.len() - 72;
        bad[at..at + 4].copy_from_slice(&(1u32 << 30).to_be_bytes());
        refused(Container::Mp4, &bad, "box `mdat`");
        // A box inside moov that declares more than the rest of moov.
        let moov = bx(b"moov", &bx(b"udta", &bx(b"meta", &[0u8; 4])));
        let mut bad = [bx(b"ftyp", b"M4A \0\0\0\0"), moov].concat();
        let udta = 16 + 8;
        bad[udta..udta + 4].copy_from_slice(&1000u32.to_be_bytes());
        refused(Container::Mp4, &bad, "remain in box `moov`");
        // An hdlr inside udta/meta/ that overruns its meta.
        let meta = full(b"meta", &full(b"hdlr", &[0u8; 30]));
        let mut meta = meta;
        meta[12..16].copy_from_slice(&0x4000_0000u32.to_be_bytes());
        let bad = [
            bx(b"ftyp", b"M4A \0\0\0\0"),
            bx(b"moov", &bx(b"udta", &meta)),
        ]
        .concat();
        refused(Container::Mp4, &bad, "box `hdlr`");
        // An ilst item whose data atom overruns the item.
        let mut item = bx(b"\xa9nam", &full(b"data", b"title"));
        item[8..12].copy_from_slice(&0x0100_0000u32.to_be_bytes());
        let bad = [
            bx(b"ftyp", b"M4A \0\0\0\0"),
            bx(b"moov", &bx(b"udta", &full(b"meta", &bx(b"ilst", &item)))),
        ]
        .concat();
        refused(Container::Mp4, &bad, "box `data`");
        // A box smaller than its own header.
        let mut bad = good;
        bad[0..4].copy_from_slice(&3u32.to_be_bytes());
        refused(Container::Mp4, &bad, "less than its header");
    }

    #[test]
    fn mp4_fragments_declaring_huge_samples_are_refused() {
        let ftyp = bx(b"ftyp", b"iso5\0\0\0\0");
        let moof = |traf: Vec<u8>| [ftyp.clone(), bx(b"moof", &bx(b"traf", &traf))].concat();
        // trun with sizes present (flags 0x200): two samples.
        let trun = |count: u32, sizes: &[u32]| {
            let mut v = 0x200u32.to_be_bytes().to_vec();
            v.extend(words(&[count]));
            v.extend(words(sizes));
            bx(b"trun", &v)
        };
        check(Container::Mp4, &moof(trun(2, &[10, 20]))).unwrap();
        refused(Container::Mp4, &moof(trun(2, &[10, u32::MAX])), "sample 2");
        refused(Container::Mp4, &moof(trun(1 << 30, &[10, 20])), "trun");
        // tfhd with a default sample size (flags 0x10).
        let tfhd = |size: u32| {
            let mut v = 0x10u32.to_be_bytes().to_vec();
            v.extend(words(&[1, size]));
            bx(b"tfhd", &v)
        };
        check(Container::Mp4, &moof(tfhd(40))).unwrap();
        refused(Container::Mp4, &moof(tfhd(u32::MAX)), "default sample size");
        // trex in mvex.
        let trex = full(b"trex", &words(&[1, 1, 1024, u32::MAX, 0]));
        let bad = [ftyp.clone(), bx(b"moov", &bx(b"mvex", &trex))].concat();
        refused(Container::Mp4, &bad, "trex");
    }

    // ------------------------------------------------------------ FLAC

    fn block(kind: u8, last: bool, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut v = vec![kind | if last { 0x80 } else { 0 }, len[1], len[2], len[3]];
        v.extend_from_slice(payload);
        v
    }

    fn le(n: u32) -> [u8; 4] {
        n.to_le_bytes()
    }

    /// A Vorbis comment body with `comments` (each with its true length).
    fn comments(comments: &[&[u8]]) -> Vec<u8> {
        let mut v = [&le(4)[..], b"mspa", &le(comments.len() as u32)].concat();
        for c in comments {
            v.extend_from_slice(&le(c.len() as u32));
            v.extend_from_slice(c);
        }
        v
    }

    /// A picture block body: MIME type, description and data of the given lengths, with
    /// `data_len` declared for the data.
    fn picture(data_len: u32, data: &[u8]) -> Vec<u8> {
        let mut v = words(&[3, 9]);
        v.extend_from_slice(b"image/png");
        v.extend(words(&[0, 1, 1, 24, 0, data_len]));
        v.extend_from_slice(data);
        v
    }

    fn flac(blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut v = b"fLaC".to_vec();
        v.extend(block(0, false, &[0u8; 34]));
        v.extend(blocks.concat());
        v.extend_from_slice(&[0xff, 0xf8, 0, 0]);
        v
    }

    fn base64_encode(b: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in b.chunks(3) {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |a, (i, &x)| a | u32::from(x) << (16 - 8 * i));
            for i in 0..=c.len() {
                s.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        s
    }

    #[test]
    fn flac_metadata_that_fits_passes() {
        let art = format!(
            "METADATA_BLOCK_PICTURE={}",
            base64_encode(&picture(3, b"png"))
        );
        let bytes = flac(&[
            block(4, false, &comments(&[b"TITLE=tone", art.as_bytes()])),
            block(6, true, &picture(3, b"png")),
        ]);
        check(Container::Flac, &bytes).unwrap();
    }

    #[test]
    fn flac_metadata_declaring_more_than_exists_is_refused() {
        // A picture whose data length is 3 GB.
        let bytes = flac(&[block(6, true, &picture(3_200_000_000, b"png"))]);
        refused(Container::Flac, &bytes, "PICTURE");
        // A Vorbis comment of 3.4 GB.
        let mut body = comments(&[b"TITLE=tone"]);
        body[12..16].copy_from_slice(&le(3_400_000_000));
        refused(
            Container::Flac,
            &flac(&[block(4, true, &body)]),
            "comment 1",
        );
        // More comments than the block could hold.
        let mut body = comments(&[b"TITLE=tone"]);
        body[8..12].copy_from_slice(&le(u32::MAX));
        refused(Container::Flac, &flac(&[block(4, true, &body)]), "comments");
        // A picture hidden in a METADATA_BLOCK_PICTURE comment, as base64.
        let art = format!(
            "metadata_block_picture={}",
            base64_encode(&picture(u32::MAX, b"png"))
        );
        let bytes = flac(&[block(4, true, &comments(&[art.as_bytes()]))]);
        refused(Container::Flac, &bytes, "METADATA_BLOCK_PICTURE");
        // A block longer than the file.
        let mut bytes = flac(&[block(2, true, b"appl")]);
        bytes[4 + 38 + 1..4 + 38 + 4].copy_from_slice(&[0xff, 0xff, 0xff]);
        refused(Container::Flac, &bytes, "APPLICATION");
    }

    #[test]
    fn base64_decodes_like_symphonia() {
        for (text, plain) in [
            ("", &b""[..]),
            ("Zg==", b"f"),
            ("Zm8", b"fo"),
            ("Zm9v", b"foo"),
            ("Zm9vYg", b"foob"),
            ("Zm9vYmE=", b"fooba"),
        ] {
            assert_eq!(base64(text).as_deref(), Some(plain), "{text}");
        }
        for bad in ["a", "ab!c", "ab=c"] {
            assert_eq!(base64(bad), None, "{bad}");
        }
        assert_eq!(
            base64(&base64_encode(&[0, 255, 7, 9])).unwrap(),
            [0, 255, 7, 9]
        );
    }

    // ------------------------------------------------------------ Ogg

    /// One Ogg page of `serial` holding whole `packets` (no CRC: not checked here).
    fn page(serial: u32, first: bool, packets: &[&[u8]]) -> Vec<u8> {
        let mut table = Vec::new();
        for p in packets {
            table.extend(std::iter::repeat_n(255u8, p.len() / 255));
            table.push((p.len() % 255) as u8);
        }
        let mut v = b"OggS\0".to_vec();
        v.push(if first { 2 } else { 0 });
        v.extend_from_slice(&[0u8; 8]);
        v.extend_from_slice(&serial.to_le_bytes());
        v.extend_from_slice(&[0u8; 8]);
        v.push(table.len() as u8);
        v.extend(table);
        for p in packets {
            v.extend_from_slice(p);
        }
        v
    }

    #[test]
    fn ogg_comment_headers_must_fit_in_their_packet() {
        let ident = [&b"\x01vorbis"[..], &[0u8; 23]].concat();
        let comment = |body: Vec<u8>| [&b"\x03vorbis"[..], &body, &[1u8]].concat();
        let audio = [0u8; 40];
        let ogg = |c: Vec<u8>| {
            [
                page(7, true, &[&ident]),
                page(7, false, &[&comment(c), &audio]),
            ]
            .concat()
        };
        check(Container::Ogg, &ogg(comments(&[b"TITLE=tone"]))).unwrap();
        let mut body = comments(&[b"TITLE=tone"]);
        body[12..16].copy_from_slice(&le(0xffff_fff0));
        refused(Container::Ogg, &ogg(body), "Vorbis comment header");
        // The same bytes as an audio packet of another stream are not metadata.
        let mut body = comments(&[b"TITLE=tone"]);
        body[12..16].copy_from_slice(&le(0xffff_fff0));
        let other = [
            page(7, true, &[b"\x02something else"]),
            page(7, false, &[&comment(body)]),
        ]
        .concat();
        check(Container::Ogg, &other).unwrap();
        // Opus tags.
        let tags = [&b"OpusTags"[..], &comments(&[b"TITLE=tone"])].concat();
        let mut bad = tags.clone();
        bad[8..12].copy_from_slice(&le(u32::MAX));
        let opus =
            |t: &[u8]| [page(3, true, &[b"OpusHead\x01\x02"]), page(3, false, &[t])].concat();
        check(Container::Ogg, &opus(&tags)).unwrap();
        refused(Container::Ogg, &opus(&bad), "OpusTags");
        // Ogg FLAC picture block.
        let head = [
            &b"\x7fFLAC\x01\x00\x00\x01fLaC"[..],
            &block(0, false, &[0u8; 34]),
        ]
        .concat();
        let pic = block(6, true, &picture(u32::MAX, b"png"));
        let bytes = [page(5, true, &[&head]), page(5, false, &[&pic])].concat();
        refused(Container::Ogg, &bytes, "FLAC PICTURE");
    }

    #[test]
    fn ogg_pages_must_fit_in_the_file() {
        let ident = [&b"\x01vorbis"[..], &[0u8; 23]].concat();
        let bytes = page(7, true, &[&ident, &[0u8; 600]]);
        refused(
            Container::Ogg,
            &bytes[..bytes.len() - 1],
            "Ogg page at byte 0",
        );
        let junk = [bytes.clone(), b"junk".repeat(10)].concat();
        refused(Container::Ogg, &junk, "no page starts");
    }

    // ------------------------------------------------------------ WAV, ID3v2

    #[test]
    fn wav_chunks_before_the_data_must_fit_in_the_file() {
        let mut wav = b"RIFF\0\0\0\0WAVE".to_vec();
        wav.extend_from_slice(b"fmt \x10\0\0\0");
        wav.extend_from_slice(&[1, 0, 1, 0, 0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0, 2, 0, 16, 0]);
        let list = [&b"LIST"[..], &le(12), b"INFOINAM", &le(0)].concat();
        let data = [&b"data"[..], &le(4), &[0u8; 4]].concat();
        check(
            Container::Wav,
            &[wav.clone(), list.clone(), data.clone()].concat(),
        )
        .unwrap();
        let mut bad = list;
        bad[4..8].copy_from_slice(&le(0x7fff_ffff));
        refused(
            Container::Wav,
            &[wav, bad, data].concat(),
            "WAV chunk `LIST`",
        );
    }

    #[test]
    fn id3v2_tags_are_skipped_and_must_fit_in_the_file() {
        let tag = |size: [u8; 4]| [&b"ID3\x04\x00\x00"[..], &size, &[0u8; 20]].concat();
        let file = [tag([0, 0, 0, 20]), b"fLaC".to_vec()].concat();
        let skip = |b: &[u8]| skip_id3v2(Cursor::new(b), b.len() as u64);
        assert_eq!(skip(&file).unwrap(), 30);
        assert_eq!(skip(b"fLaC\0\0\0\0\0\0\0\0").unwrap(), 0);
        match skip(&tag([0x7f, 0x7f, 0x7f, 0x7f])) {
            Err(GuardError::Declared(m)) => assert!(m.contains("ID3v2 tag"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
