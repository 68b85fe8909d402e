//! MP4/M4A: every box must fit in its parent, sample tables in their box, and sample sizes
//! in the file (see the parent module for the rule and why).

use std::io::{Read, Seek};

use super::{Bytes, GuardResult, refuse, too_short};

/// How the children of an MP4 container are laid out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Children {
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

pub(super) struct Mp4Walk<'a, R: Read + Seek> {
    pub(super) bytes: &'a mut Bytes<R>,
    pub(super) file_len: u64,
}

pub(super) fn fourcc(t: &[u8; 4]) -> String {
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
    pub(super) fn walk(
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
