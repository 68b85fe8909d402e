//! The byte mutator: stacked random edits of a seed, some blind (bit flips, byte
//! overwrites, deletions), some aware of text structure (fields between separators,
//! whole lines), some aimed at parsers' limits (huge and non-finite numbers, long lines,
//! deep nesting, repeated chunks) and binary formats (boundary integers at random
//! offsets, length fields nudged).

/// A small, fast, seeded generator (xorshift64* over a SplitMix-scrambled seed).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, p_percent: u64) -> bool {
        self.next() % 100 < p_percent
    }

    /// Small numbers far more often than large ones.
    pub fn skewed(&mut self, max: usize) -> usize {
        let bits = self.below(usize::BITS as usize - (max.max(1)).leading_zeros() as usize + 1);
        (self.next() as usize & ((1usize << bits) - 1)).min(max)
    }
}

/// Tokens every target gets: numbers at and past the limits of every integer and float
/// type, non-finite spellings, separators, quotes and escapes.
pub const COMMON_TOKENS: &[&[u8]] = &[
    b"0",
    b"-0",
    b"-1",
    b"1",
    b"255",
    b"256",
    b"65535",
    b"65536",
    b"2147483647",
    b"2147483648",
    b"-2147483649",
    b"4294967295",
    b"4294967296",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551615",
    b"18446744073709551616",
    b"1e308",
    b"1e309",
    b"-1e309",
    b"1e-400",
    b"NaN",
    b"nan",
    b"-NaN",
    b"inf",
    b"-inf",
    b"Infinity",
    b"-Infinity",
    b"0x10",
    b"1.5",
    b"1.",
    b".5",
    b"+5",
    b"1_000",
    b"",
    b" ",
    b"\t",
    b",",
    b",,",
    b"\n",
    b"\r\n",
    b"\r",
    b"\"",
    b"\"\"",
    b"'",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"\0",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\xc3\xa9",
    b"\xe2\x80\xae",
    b"\xf0\x9f\x8e\xb5",
    b"\xc3",
    b"|",
    b": ",
    b" | ",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"..",
    b"../",
    b"/",
    b"/etc/passwd",
];

/// Integers placed at random offsets of binary inputs.
const BOUNDARY_INTS: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

pub struct Mutator<'a> {
    pub dict: &'a [&'a [u8]],
    /// Favour binary edits (images, audio, safetensors, Burn records).
    pub binary: bool,
    /// Favour nesting edits (JSON inputs).
    pub json: bool,
    /// Inputs are cut to this many bytes after mutation.
    pub max_len: usize,
}

fn is_sep(b: u8) -> bool {
    matches!(
        b,
        b',' | b'\n' | b'\r' | b':' | b'"' | b' ' | b'|' | b'{' | b'}' | b'[' | b']' | b'\t'
    )
}

impl Mutator<'_> {
    fn token(&self, rng: &mut Rng) -> Vec<u8> {
        if !self.dict.is_empty() && rng.chance(60) {
            self.dict[rng.below(self.dict.len())].to_vec()
        } else {
            COMMON_TOKENS[rng.below(COMMON_TOKENS.len())].to_vec()
        }
    }

    /// One to eight stacked edits of `data`; `other` is another corpus entry to splice from.
    pub fn mutate(&self, rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
        let n = 1 + rng.skewed(7);
        for _ in 0..n {
            self.one(rng, data, other);
        }
        if data.len() > self.max_len {
            data.truncate(self.max_len);
        }
    }

    fn one(&self, rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
        let len = data.len();
        let pick = if self.binary {
            rng.below(20)
        } else {
            6 + rng.below(14)
        };
        match pick {
            // Binary edits.
            0 | 1 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            3 if len > 0 => {
                // A boundary integer, little- or big-endian, 1/2/4/8 bytes.
                let v = BOUNDARY_INTS[rng.below(BOUNDARY_INTS.len())];
                let w = [1usize, 2, 4, 8][rng.below(4)];
                let i = rng.below(len);
                let bytes = if rng.chance(50) {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                let src = if rng.chance(50) {
                    &bytes[..w]
                } else {
                    &bytes[8 - w..]
                };
                for (k, b) in src.iter().enumerate() {
                    if i + k < len {
                        data[i + k] = *b;
                    }
                }
            }
            4 if len >= 4 => {
                // Nudge a little-endian u32 (a length or offset field) by a little.
                let i = rng.below(len - 3);
                let v = u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
                let d = rng.below(33) as i64 - 16;
                let v = (v as i64 + d) as u32;
                data[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            5 if len > 0 => {
                // Overwrite a run with one byte.
                let i = rng.below(len);
                let k = (1 + rng.skewed(64)).min(len - i);
                let b = [0u8, 0xff, b'A', b'0'][rng.below(4)];
                data[i..i + k].fill(b);
            }
            // Text edits.
            6 | 7 => {
                // Replace one separator-delimited field with a token.
                if len == 0 {
                    data.extend(self.token(rng));
                    return;
                }
                let i = rng.below(len);
                let mut s = i;
                while s > 0 && !is_sep(data[s - 1]) {
                    s -= 1;
                }
                let mut e = i;
                while e < len && !is_sep(data[e]) {
                    e += 1;
                }
                let t = self.token(rng);
                data.splice(s..e, t);
            }
            8 => {
                // Insert a token.
                let i = rng.below(len + 1);
                let t = self.token(rng);
                data.splice(i..i, t);
            }
            9 if len > 0 => {
                // Delete a range.
                let i = rng.below(len);
                let k = (1 + rng.skewed(len)).min(len - i);
                data.drain(i..i + k);
            }
            10 if len > 0 => {
                // Truncate.
                data.truncate(rng.below(len));
            }
            11 if len > 0 => {
                // Repeat a chunk, up to a thousand times.
                let i = rng.below(len);
                let k = (1 + rng.skewed(256)).min(len - i);
                let chunk = data[i..i + k].to_vec();
                let times = 1 + rng.skewed(1000);
                let at = rng.below(len + 1);
                let rep: Vec<u8> = chunk.iter().copied().cycle().take(k * times).collect();
                data.splice(at..at, rep);
            }
            12 if !other.is_empty() => {
                // Splice in a range of another input.
                let i = rng.below(other.len());
                let k = (1 + rng.skewed(other.len())).min(other.len() - i);
                let at = rng.below(len + 1);
                if rng.chance(50) {
                    data.splice(at..at, other[i..i + k].iter().copied());
                } else {
                    data.truncate(at);
                    data.extend_from_slice(&other[i..]);
                }
            }
            13 if len > 0 => {
                // Duplicate or drop a whole line, or swap two.
                let lines: Vec<(usize, usize)> = line_spans(data);
                let (s, e) = lines[rng.below(lines.len())];
                match rng.below(3) {
                    0 => {
                        let line = data[s..e].to_vec();
                        let times = 1 + rng.skewed(200);
                        let rep: Vec<u8> = std::iter::repeat_n(line, times).flatten().collect();
                        data.splice(e..e, rep);
                    }
                    1 => {
                        data.drain(s..e);
                    }
                    _ => {
                        let (s2, e2) = lines[rng.below(lines.len())];
                        if e <= s2 {
                            let a = data[s..e].to_vec();
                            let b = data[s2..e2].to_vec();
                            data.splice(s2..e2, a);
                            data.splice(s..e, b);
                        }
                    }
                }
            }
            14 => {
                // A very long run (a long line or field).
                let k = 1 + rng.skewed(200_000);
                let b = [b'A', b'9', b' ', b',', b'"', b'\n', 0xe9][rng.below(7)];
                let at = rng.below(len + 1);
                data.splice(at..at, std::iter::repeat_n(b, k));
            }
            15 => {
                // Deep nesting.
                let depth = 1 + rng.skewed(if self.json { 100_000 } else { 2_000 });
                let (open, close): (&[u8], &[u8]) = match rng.below(3) {
                    0 => (b"[", b"]"),
                    1 => (b"{\"a\":", b"}"),
                    _ => (b"\"", b"\""),
                };
                let at = rng.below(len + 1);
                let mut nest = open.repeat(depth);
                if rng.chance(50) {
                    nest.extend(close.repeat(depth));
                }
                data.splice(at..at, nest);
            }
            16 if len > 0 => {
                // Flip the case or digits of a byte, or replace it with a separator.
                let i = rng.below(len);
                data[i] = match data[i] {
                    b'0'..=b'9' => b'0' + rng.below(10) as u8,
                    c if c.is_ascii_alphabetic() => c ^ 0x20,
                    _ => [b',', b'\n', b'"', b':', b' '][rng.below(5)],
                };
            }
            17 => {
                // A token replacing a whole line.
                let t = self.token(rng);
                if len == 0 {
                    data.extend(t);
                    return;
                }
                let lines = line_spans(data);
                let (s, e) = lines[rng.below(lines.len())];
                data.splice(s..e, t);
            }
            _ if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            _ => data.extend(self.token(rng)),
        }
    }
}

/// Byte ranges of the lines of `data` (without their `\n`).
fn line_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            out.push((s, i));
            s = i + 1;
        }
    }
    out.push((s, data.len()));
    out
}
