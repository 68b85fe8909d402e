//! Reading the rows of a buffer that have the common shape of the release
//! (`digits,digits,id,digits,digits` and a line break), without allocating.
//!
//! Numbers are read eight bytes at a time: a word's leading digits are counted with a few
//! bit operations and converted with three multiplications. A row of another shape, or
//! with a value that is not plain, is left to [`super::line::general_line`]. (A variant
//! that first finds all commas and line breaks of 64 bytes with bit masks, to read the
//! fields independently, measured about 10% slower on this data.)

use super::STEP_MS;
use super::id_table::RawId;
use super::line::{Fields, classify, digit_run, digits_value, load};

/// Bytes of slack [`row`] needs after the valid bytes of its buffer.
pub(super) const PAD: usize = 32;

/// Longest string id read here; longer ones go through [`super::line::general_line`].
const MAX_FAST_ID: usize = 256;

/// Largest step read here: `× STEP_MS` fits an `i64`, and the step a `u32`.
const MAX_FAST_STEP: i64 = 999_999_999;

/// The row at `data[i..]` and the index just past its line break, if the line has the
/// common shape and valid values; `None` leaves the line to
/// [`super::line::general_line`]. The line break may lie past the valid bytes of a buffer
/// (the caller checks), and `data` needs [`PAD`] bytes after them.
#[inline(always)]
pub(super) fn row(data: &[u8], i: usize) -> Option<(Fields<'_>, usize)> {
    let (user, i) = id(data, i)?;
    let i = i + 1 + digit_count(data, i + 1)?;
    if *data.get(i)? != b',' {
        return None;
    }
    let (streamer, i) = id(data, i + 1)?;
    let (start, i) = step(data, i + 1)?;
    if *data.get(i)? != b',' {
        return None;
    }
    let (stop, i) = step(data, i + 1)?;
    let next = match *data.get(i)? {
        b'\n' => i + 1,
        b'\r' if *data.get(i + 1)? == b'\n' => i + 2,
        _ => return None,
    };
    (start <= stop).then_some((
        Fields {
            user,
            streamer,
            start,
            stop,
        },
        next,
    ))
}

/// The id field at `data[i..]`, ended by a comma: the id and the comma's index.
/// Canonical integers of up to 7 digits are read directly; other plain ASCII ids are
/// read as [`crate::ExternalId::parse`] reads them.
#[inline(always)]
fn id(data: &[u8], i: usize) -> Option<(RawId<'_>, usize)> {
    let w = load(data, i)?;
    let n = digit_run(w);
    if (1..8).contains(&n) && data.get(i + n) == Some(&b',') && (n == 1 || w as u8 != b'0') {
        return Some((RawId::Int(digits_value(w, n) as i64), i + n));
    }
    let field = data.get(i..)?;
    let len = field
        .iter()
        .take(MAX_FAST_ID + 1)
        .position(|&b| !(0x21..0x7f).contains(&b) || b == b',' || b == b'"')?;
    if len == 0 || field[len] != b',' {
        return None;
    }
    Some((classify(&field[..len]), i + len))
}

/// The number of digits (1 to 19, what a `u64` surely holds) at `data[i..]`.
#[inline(always)]
fn digit_count(data: &[u8], i: usize) -> Option<usize> {
    let mut n = 0;
    loop {
        let k = digit_run(load(data, i + n)?);
        n += k;
        if k < 8 {
            break;
        }
        if n > 19 {
            return None;
        }
    }
    (1..=19).contains(&n).then_some(n)
}

/// The step of 1 to 9 digits at `data[i..]` and the index past it.
#[inline(always)]
fn step(data: &[u8], i: usize) -> Option<(i64, usize)> {
    let w = load(data, i)?;
    let n = digit_run(w);
    if n == 0 {
        return None;
    }
    if n < 8 {
        return Some((digits_value(w, n) as i64, i + n));
    }
    let more = load(data, i + 8)?;
    let (value, n) = match digit_run(more) {
        0 => (digits_value(w, 8) as i64, 8),
        1 => (
            digits_value(w, 8) as i64 * 10 + digits_value(more, 1) as i64,
            9,
        ),
        _ => return None,
    };
    debug_assert!(value <= MAX_FAST_STEP && value.checked_mul(STEP_MS).is_some());
    Some((value, i + n))
}

#[cfg(test)]
mod tests {
    use super::super::line::general_line;
    use super::*;

    fn padded(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.resize(s.len() + PAD, 0);
        v
    }

    #[test]
    fn reads_rows_as_the_general_reader_does() {
        let lines = [
            "84390,30182598301,127652,1935,1944\n",
            "1,2,ninja,0,0\r\n",
            "007,2,-5,3,4\n",
            "12345678,1234567890123456789,123456789,12345678,999999999\n",
            "0,2,0,3,4\n",
        ];
        for line in lines {
            let data = padded(line);
            let (fields, next) = row(&data, 0).expect(line);
            assert_eq!(next, line.len(), "{line}");
            assert_eq!(general_line(line.as_bytes()), Ok(Some(fields)), "{line}");
        }
        let data = padded(lines[2]);
        let fields = row(&data, 0).expect("row").0;
        assert_eq!(
            (fields.user, fields.streamer),
            (RawId::Str(b"007"), RawId::Int(-5))
        );
    }

    #[test]
    fn unusual_lines_are_left_to_the_general_reader() {
        let lines = [
            " 1,2,a,3,4\n",
            "1,2,a,3,4 \n",
            "1,+2,a,3,4\n",
            "1,2,a,3.0,4\n",
            "1,2,a,4,3\n",
            "1,2,\"a\",3,4\n",
            "1,2,a,3\n",
            "1,2,a,3,4,5\n",
            "1,2,a,3,1000000000\n",
            "1,12345678901234567890,a,3,4\n",
            "1,2,a\tb,3,4\n",
            "1,2,a,3,4\r\r\n",
            "\n",
        ];
        for line in lines {
            assert_eq!(row(&padded(line), 0), None, "{line:?}");
        }
    }
}
