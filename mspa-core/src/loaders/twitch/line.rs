//! Parsing one Twitch line from bytes, for the fast path of the loader, and the digit
//! helpers of [`super::rows`].
//!
//! [`super::rows`] reads the shape nearly every line of the release has; [`general_line`]
//! takes any other line and accepts it exactly when the row-by-row reader
//! ([`super::read_rows`]) would accept it with the same values, reusing that reader's
//! parsing functions. It gives up ([`GiveUp`]) on every line that reader would refuse,
//! and on lines with quotes or non-ASCII bytes, which only that reader handles. A file the
//! fast path gives up on is read again, whole, by the row-by-row reader, which then names
//! the first bad line.

use super::STEP_MS;
use super::id_table::RawId;
use crate::ids::canonical_int;
use crate::loaders::fields::parse_integer;
use crate::loaders::limits::MAX_LINE_BYTES;

/// The fast path cannot take the file: it must be read by the row-by-row reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct GiveUp;

/// The values of one valid row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fields<'a> {
    /// The user id.
    pub user: RawId<'a>,
    /// The streamer id.
    pub streamer: RawId<'a>,
    /// The start step (non-negative; `start × STEP_MS` fits an `i64`).
    pub start: i64,
    /// The stop step (at least `start`).
    pub stop: i64,
}

/// The row of `line` (its bytes with the line break, if any), `None` for a blank line, or
/// [`GiveUp`] for a line the row-by-row reader refuses or reads differently.
pub(super) fn general_line(line: &[u8]) -> Result<Option<Fields<'_>>, GiveUp> {
    let body = line.strip_suffix(b"\n");
    // The limit counts the line without `\n` or `\r\n`, as `read_line_limited` does.
    let content = match body {
        Some(b) => b.strip_suffix(b"\r").unwrap_or(b),
        None => line,
    };
    if content.len() > MAX_LINE_BYTES || line.iter().any(|&b| b >= 0x80 || b == b'"') {
        return Err(GiveUp);
    }
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let text = std::str::from_utf8(&line[..end]).map_err(|_| GiveUp)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let mut fields = text.split(',').map(str::trim);
    let mut next = || match fields.next() {
        Some(f) if !f.is_empty() => Ok(f),
        _ => Err(GiveUp),
    };
    let (user, stream, streamer, start, stop) = (next()?, next()?, next()?, next()?, next()?);
    if fields.next().is_some() || stream.parse::<u64>().is_err() {
        return Err(GiveUp);
    }
    let step = |raw: &str| parse_integer(raw).filter(|&v| v >= 0).ok_or(GiveUp);
    let (start, stop) = (step(start)?, step(stop)?);
    if stop < start || start.checked_mul(STEP_MS).is_none() {
        return Err(GiveUp);
    }
    Ok(Some(Fields {
        user: classify(user.as_bytes()),
        streamer: classify(streamer.as_bytes()),
        start,
        stop,
    }))
}

/// The id `s` spells: as [`crate::ExternalId::parse`] would read it.
pub(super) fn classify(s: &[u8]) -> RawId<'_> {
    let maybe_int = s.first() == Some(&b'-') || s.iter().all(u8::is_ascii_digit);
    if maybe_int && let Ok(text) = std::str::from_utf8(s) {
        return canonical_int(text).map_or(RawId::Str(s), RawId::Int);
    }
    RawId::Str(s)
}

/// The eight bytes at `data[i..]`, the first in the low byte.
#[inline(always)]
pub(super) fn load(data: &[u8], i: usize) -> Option<u64> {
    let bytes: [u8; 8] = data.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// How many of the bytes of `w` (first in the low byte) are ASCII digits before the first
/// byte that is not (0 to 8).
#[inline(always)]
pub(super) fn digit_run(w: u64) -> usize {
    let x = w ^ (ONES * b'0' as u64);
    // A byte is a digit when it is below 10 after the xor: adding 0x76 leaves its high bit
    // clear, and it had none. Carries only leave a non-digit byte, upwards, past the first.
    let non_digit = (x.wrapping_add(ONES * 0x76) | x) & (ONES * 0x80);
    (non_digit.trailing_zeros() / 8) as usize
}

/// The value of the first `n` (1 to 8) bytes of `w`, all ASCII digits.
#[inline(always)]
pub(super) fn digits_value(w: u64, n: usize) -> u64 {
    debug_assert!((1..=8).contains(&n));
    // Shift the digits to the top; the bytes shifted in are leading zeros.
    let x = (w ^ (ONES * b'0' as u64)) << (8 * (8 - n));
    // Pairs, then quads, then the eight digits (Lemire's SWAR conversion).
    let x = x.wrapping_mul(10).wrapping_add(x >> 8);
    const MASK: u64 = 0x0000_00ff_0000_00ff;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    ((x & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((x >> 16) & MASK).wrapping_mul(MUL2)))
        >> 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_counted_and_read() {
        for s in ["0", "7", "42", "1234567", "12345678", "00012345"] {
            let mut w = [b','; 8];
            w[..s.len()].copy_from_slice(s.as_bytes());
            let w = u64::from_le_bytes(w);
            assert_eq!(digit_run(w), s.len(), "{s}");
            assert_eq!(digits_value(w, s.len()), s.parse::<u64>().unwrap(), "{s}");
        }
        assert_eq!(digit_run(u64::from_le_bytes(*b"12:45678")), 2);
        assert_eq!(digit_run(u64::from_le_bytes(*b"12/\xff5678")), 2);
        assert_eq!(digit_run(u64::from_le_bytes(*b"\xff2345678")), 0);
    }

    #[test]
    fn general_lines_read_as_the_row_reader_does() {
        for line in [
            " 1,2,a,3,4\n",
            "1,2,a,3,4 \r\n",
            "1,+2,a,3,4\n",
            "1,2,a,3.0,4\n",
        ] {
            assert!(
                matches!(general_line(line.as_bytes()), Ok(Some(_))),
                "{line}"
            );
        }
        let row = general_line(b" 007 , 2 , -5 ,1e1, 10 \r\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (row.user, row.streamer, row.start, row.stop),
            (RawId::Str(b"007"), RawId::Int(-5), 10, 10)
        );
        assert_eq!(general_line(b"  \r\n"), Ok(None));
        assert_eq!(general_line(b""), Ok(None));
        for line in [
            "1,2,a,4,3\n",
            "1,2,\"a\",3,4\n",
            "1,2,\u{e9},3,4\n",
            "1,2,a,3\n",
        ] {
            assert_eq!(general_line(line.as_bytes()), Err(GiveUp), "{line}");
        }
    }
}
