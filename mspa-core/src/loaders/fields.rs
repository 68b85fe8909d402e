//! Field parsing, CSV reading and progress reporting shared by the loaders.
//!
//! # Why a hand-written CSV reader
//!
//! Every loader error names the exact line of the bad row, so the reader must know the line
//! a row starts on. The `csv` crate (1.4, with `csv-core` 0.1.13) reports a record's line
//! through `StringRecord::position().line()`, but that position is where the reader stood
//! when it started looking for the record, not where the record starts, and its line count
//! only advances on `\n` as the parser consumes it (a lone `\r` ends a row for neither). Measured with `csv` 1.4.0 (records
//! read with `has_headers(false)`, the first one being the header):
//!
//! | input                  | lines the crate reports | true lines |
//! |------------------------|-------------------------|------------|
//! | `h\na\nb\n`            | 1, 2, 3                 | 1, 2, 3    |
//! | `h\n\na\n\n\nb\n`      | 1, 2, 4                 | 1, 3, 6    |
//! | `h\r\na\r\nb\r\n`      | 1, 1, 2                 | 1, 2, 3    |
//! | `\nh\na\n`             | 1, 3                    | 2, 3       |
//! | `h\n"x\ny"\nb\n`       | 1, 2, 4                 | 1, 2, 4    |
//!
//! Quoted fields with embedded newlines alone are counted right, but every blank line and
//! every CRLF row shifts what follows, and a line of spaces becomes a one-field record
//! instead of a skipped blank. The loaders therefore keep [`CsvLines`], which counts a line
//! per line break it reads; `csv_line_numbers_survive_blank_lines_and_crlf` in
//! `tests/loaders.rs` fails for a reader that takes the crate's positions as they come.
//! (The speed of the two was not compared, as the line numbers settled the choice.)

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::limits::MAX_LINE_BYTES;
use crate::author::Author;
use crate::dataset::{Dataset, DatasetBuilder};
use crate::error::{CoreError, DataErrorKind, Result, excerpt};
use crate::ids::ExternalId;

/// How far a loader has read one of its files.
#[derive(Clone, Debug)]
pub struct LoadProgress {
    /// The file being read.
    pub file: PathBuf,
    /// Lines read so far (header included).
    pub lines: u64,
    /// Bytes read so far.
    pub bytes: u64,
    /// Size of the file in bytes.
    pub total_bytes: u64,
}

/// Lines between two progress reports.
pub(crate) const PROGRESS_EVERY: u64 = 65_536;

/// A reader that counts the bytes it hands out, for progress reports.
pub(crate) struct CountingReader<R> {
    inner: R,
    pub(crate) bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// The byte counter of an opened file, shared with its reader.
pub(crate) type ByteCounter = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// Opens a file for buffered, byte-counted reading; returns the reader, its byte counter
/// and the file size.
pub(crate) fn open_counted(
    path: &Path,
) -> Result<(BufReader<CountingReader<File>>, ByteCounter, u64)> {
    let file = File::open(path).map_err(|e| CoreError::io(path, e))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bytes = ByteCounter::default();
    let reader = CountingReader {
        inner: file,
        bytes: bytes.clone(),
    };
    Ok((BufReader::with_capacity(1 << 20, reader), bytes, total))
}

/// Reports progress every [`PROGRESS_EVERY`] lines.
pub(crate) fn report(
    progress: &mut dyn FnMut(LoadProgress),
    path: &Path,
    line: u64,
    bytes: &ByteCounter,
    total: u64,
) {
    if line % PROGRESS_EVERY == 0 {
        progress(LoadProgress {
            file: path.to_path_buf(),
            lines: line,
            bytes: bytes.load(std::sync::atomic::Ordering::Relaxed),
            total_bytes: total,
        });
    }
}

/// Opens a headed CSV file: the row reader, its header, the byte counter and the size.
pub(crate) fn open_csv_with_header(
    path: &Path,
) -> Result<(
    CsvLines<BufReader<CountingReader<File>>>,
    Record,
    ByteCounter,
    u64,
)> {
    let (reader, bytes, total) = open_counted(path)?;
    let mut rows = CsvLines::new(reader, path);
    let mut header = Record::default();
    if !rows.next_record(&mut header)? {
        return Err(CoreError::data(
            path,
            1,
            None,
            DataErrorKind::Malformed,
            "empty file: expected a header line",
        ));
    }
    Ok((rows, header, bytes, total))
}

/// The error for a failed read of line `line` of `path`: invalid UTF-8 is a `Malformed`
/// data error on that line, anything else an I/O error.
pub(crate) fn read_error(path: &Path, line: u64, e: std::io::Error) -> CoreError {
    match e.kind() {
        std::io::ErrorKind::InvalidData => {
            CoreError::data(path, line, None, DataErrorKind::Malformed, "invalid UTF-8")
        }
        _ => CoreError::io(path, e),
    }
}

/// The error for line `line` of `path` being longer than [`MAX_LINE_BYTES`]; `what` is
/// "line" or "row" (a quoted CSV field spanning lines counts the whole row).
pub(crate) fn line_too_long(path: &Path, line: u64, what: &str) -> CoreError {
    CoreError::data(
        path,
        line,
        None,
        DataErrorKind::TooLarge,
        format!("{what} is longer than MAX_LINE_BYTES = {MAX_LINE_BYTES} bytes"),
    )
}

/// Reads line `line` of `path` (with its line break) into `out`, holding at most
/// [`MAX_LINE_BYTES`] + 2 bytes of it: a line longer than [`MAX_LINE_BYTES`] without its
/// `\n` or `\r\n` is a `TooLarge` error, invalid UTF-8 a `Malformed` one. `false` at the
/// end of the file.
pub(crate) fn read_line_limited<R: BufRead>(
    reader: &mut R,
    bytes: &mut Vec<u8>,
    out: &mut String,
    path: &Path,
    line: u64,
) -> Result<bool> {
    bytes.clear();
    let n = reader
        .by_ref()
        .take(MAX_LINE_BYTES as u64 + 2)
        .read_until(b'\n', bytes)
        .map_err(|e| read_error(path, line, e))?;
    if n == 0 {
        return Ok(false);
    }
    let ending = if bytes.ends_with(b"\r\n") {
        2
    } else {
        usize::from(bytes.ends_with(b"\n"))
    };
    let content = bytes.len() - ending;
    if content > MAX_LINE_BYTES {
        return Err(line_too_long(path, line, "line"));
    }
    out.clear();
    out.push_str(std::str::from_utf8(bytes).map_err(|_| {
        CoreError::data(path, line, None, DataErrorKind::Malformed, "invalid UTF-8")
    })?);
    Ok(true)
}

/// When [`for_each_row`] looks up the columns it needs in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnCheck {
    /// Right after reading the header: a file lacking a column is refused even with no rows.
    Header,
    /// On the first row: a file with a header only is accepted whatever its columns.
    FirstRow,
}

/// Runs `row(header, row, columns)` on every row of a headed CSV file, where `columns`
/// holds the positions of the `required` columns; checks every row has the header's width
/// and reports progress.
pub(crate) fn for_each_row<const N: usize>(
    path: &Path,
    progress: &mut dyn FnMut(LoadProgress),
    required: [&str; N],
    check: ColumnCheck,
    mut row: impl FnMut(&Record, Row<'_>, [usize; N]) -> Result<()>,
) -> Result<()> {
    let (mut rows, header, bytes, total) = open_csv_with_header(path)?;
    let mut columns = match check {
        ColumnCheck::Header => Some(column_positions(path, &header, required)?),
        ColumnCheck::FirstRow => None,
    };
    let mut record = Record::default();
    while rows.next_record(&mut record)? {
        check_width(path, &record, header.len())?;
        let cols = match columns {
            Some(c) => c,
            None => *columns.insert(column_positions(path, &header, required)?),
        };
        row(&header, Row::new(path, &record), cols)?;
        report(progress, path, record.line, &bytes, total);
    }
    Ok(())
}

/// One row of a CSV file with the file it comes from: its fields, parsed with errors that
/// name the file, the row's line and the field.
#[derive(Clone, Copy)]
pub(crate) struct Row<'a> {
    path: &'a Path,
    record: &'a Record,
}

impl<'a> Row<'a> {
    /// The row `record` of the file at `path`.
    pub(crate) fn new(path: &'a Path, record: &'a Record) -> Self {
        Row { path, record }
    }

    /// The line the row starts on.
    pub(crate) fn line(&self) -> u64 {
        self.record.line
    }

    /// The row's fields.
    pub(crate) fn record(&self) -> &'a Record {
        self.record
    }

    /// A data error on this row's line.
    pub(crate) fn error(
        &self,
        field: Option<&str>,
        kind: DataErrorKind,
        message: impl Into<String>,
    ) -> CoreError {
        CoreError::data(self.path, self.line(), field, kind, message)
    }

    /// The non-empty field at `pos`, called `name` in errors.
    pub(crate) fn field(&self, pos: usize, name: &str) -> Result<&'a str> {
        required_field(self.path, self.line(), self.record, pos, name)
    }

    /// `raw`, the value of field `name`, as an amount (see [`parse_amount`]).
    pub(crate) fn amount(&self, name: &str, raw: &str) -> Result<f64> {
        parse_amount(self.path, self.line(), name, raw)
    }

    /// `raw`, the value of field `name`, as a timestamp (see [`parse_timestamp_ms`]).
    pub(crate) fn timestamp_ms(&self, name: &str, raw: &str) -> Result<i64> {
        parse_timestamp_ms(self.path, self.line(), name, raw)
    }
}

/// The line each author of a file was defined on, so that a second definition names both.
#[derive(Default)]
pub(crate) struct AuthorLines(HashMap<ExternalId, u64>);

impl AuthorLines {
    /// Adds `author`, defined on `line` of `path`, to the builder; an id defined before is
    /// a `DuplicateAuthor` error on `field`, whose message `describe` writes from the line
    /// of the first definition.
    pub(crate) fn add(
        &mut self,
        builder: &mut DatasetBuilder,
        author: Author,
        (path, line): (&Path, u64),
        field: &str,
        describe: impl FnOnce(u64) -> String,
    ) -> Result<()> {
        let id = author.id.clone();
        if builder.add_author(author).is_err() {
            let first = self.0.get(&id).copied().unwrap_or(0);
            return Err(CoreError::data(
                path,
                line,
                Some(field),
                DataErrorKind::DuplicateAuthor,
                describe(first),
            ));
        }
        self.0.insert(id, line);
        Ok(())
    }
}

/// Reads one file of a dataset directory into the builder, reporting progress.
pub(crate) type ReadFile =
    fn(&Path, &mut DatasetBuilder, &mut dyn FnMut(LoadProgress)) -> Result<()>;

/// One file of a dataset directory: its name, whether it must exist, and its reader.
pub(crate) struct DirFile {
    name: &'static str,
    required: bool,
    read: ReadFile,
}

impl DirFile {
    /// A file that must exist (a missing one is an I/O error naming it).
    pub(crate) const fn required(name: &'static str, read: ReadFile) -> Self {
        DirFile {
            name,
            required: true,
            read,
        }
    }

    /// A file that is read when it exists and skipped otherwise.
    pub(crate) const fn optional(name: &'static str, read: ReadFile) -> Self {
        DirFile {
            name,
            required: false,
            read,
        }
    }
}

/// Loads a dataset directory by reading its `files` in order into one builder; the
/// dataset's root is the directory.
pub(crate) fn load_dir(
    dir: &Path,
    files: &[DirFile],
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Dataset> {
    let mut builder = DatasetBuilder::default();
    for file in files {
        let path = dir.join(file.name);
        if file.required || path.exists() {
            (file.read)(&path, &mut builder, progress)?;
        }
    }
    Ok(builder.build(Some(dir.to_path_buf())))
}

/// Parses an amount: a finite, non-negative number.
pub(crate) fn parse_amount(file: &Path, line: u64, field: &str, raw: &str) -> Result<f64> {
    let value: f64 = raw.trim().parse().map_err(|_| {
        CoreError::data(
            file,
            line,
            Some(field),
            DataErrorKind::InvalidAmount,
            format!("`{}` is not a number", excerpt(raw)),
        )
    })?;
    if !value.is_finite() || value < 0.0 {
        return Err(CoreError::data(
            file,
            line,
            Some(field),
            DataErrorKind::InvalidAmount,
            format!("`{}` must be finite and non-negative", excerpt(raw)),
        ));
    }
    Ok(value)
}

/// Parses a timestamp in milliseconds: an integer, or a float with no fractional part
/// (as spreadsheet tools write them), within ±2^53.
pub(crate) fn parse_timestamp_ms(file: &Path, line: u64, field: &str, raw: &str) -> Result<i64> {
    parse_integer(raw).ok_or_else(|| {
        CoreError::data(
            file,
            line,
            Some(field),
            DataErrorKind::InvalidTimestamp,
            format!(
                "`{}` is not an integer number of milliseconds",
                excerpt(raw)
            ),
        )
    })
}

/// Parses an integer written as an integer or as an integral float within ±2^53.
pub(crate) fn parse_integer(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if let Ok(v) = raw.parse::<i64>() {
        return Some(v);
    }
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() <= LIMIT => Some(v as i64),
        _ => None,
    }
}

/// Finds the position of each required column in a header, or names the missing one.
pub(crate) fn column_positions<const N: usize>(
    file: &Path,
    header: &Record,
    required: [&str; N],
) -> Result<[usize; N]> {
    let mut out = [0usize; N];
    for (slot, name) in out.iter_mut().zip(required) {
        *slot = header.iter().position(|h| h == name).ok_or_else(|| {
            CoreError::data(
                file,
                1,
                Some(name),
                DataErrorKind::Malformed,
                format!(
                    "header lacks column `{name}` (expected {}; found {})",
                    required.join(","),
                    excerpt(&header.iter().collect::<Vec<_>>().join(","))
                ),
            )
        })?;
    }
    Ok(out)
}

/// A non-empty field of a record, or a `Missing` error naming it.
pub(crate) fn required_field<'r>(
    file: &Path,
    line: u64,
    record: &'r Record,
    pos: usize,
    name: &str,
) -> Result<&'r str> {
    match record.get(pos).map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(CoreError::data(
            file,
            line,
            Some(name),
            DataErrorKind::Missing,
            "empty value".to_string(),
        )),
    }
}

/// One CSV row: its fields (trimmed, quotes removed) and the line it starts on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Record {
    text: String,
    bounds: Vec<(usize, usize)>,
    /// 1-based line the row starts on.
    pub(crate) line: u64,
}

impl Record {
    /// Field `i`, if the row has it.
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        self.bounds.get(i).map(|&(a, b)| &self.text[a..b])
    }

    /// Number of fields.
    pub(crate) fn len(&self) -> usize {
        self.bounds.len()
    }

    /// All fields in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.bounds.iter().map(|&(a, b)| &self.text[a..b])
    }
}

/// A line-oriented CSV reader (RFC 4180 quoting, `""` for a quote, quoted fields may span
/// lines) that knows the exact line of every row. Blank lines are skipped, fields are
/// trimmed, a UTF-8 byte-order mark and `\r\n` endings are accepted.
pub(crate) struct CsvLines<R> {
    reader: R,
    path: PathBuf,
    line: u64,
    raw: String,
    bytes: Vec<u8>,
}

impl<R: BufRead> CsvLines<R> {
    /// Wraps a buffered reader of the file at `path` (named in errors).
    pub(crate) fn new(reader: R, path: &Path) -> Self {
        CsvLines {
            reader,
            path: path.to_path_buf(),
            line: 0,
            raw: String::new(),
            bytes: Vec::new(),
        }
    }

    fn read_line(&mut self) -> Result<bool> {
        let more = read_line_limited(
            &mut self.reader,
            &mut self.bytes,
            &mut self.raw,
            &self.path,
            self.line + 1,
        )?;
        if !more {
            self.raw.clear();
            return Ok(false);
        }
        self.line += 1;
        if self.line == 1 && self.raw.starts_with('\u{feff}') {
            self.raw.drain(..'\u{feff}'.len_utf8());
        }
        while self.raw.ends_with('\n') || self.raw.ends_with('\r') {
            self.raw.pop();
        }
        Ok(true)
    }

    /// Reads the next non-blank row into `record`; `false` at the end of the file.
    pub(crate) fn next_record(&mut self, record: &mut Record) -> Result<bool> {
        loop {
            if !self.read_line()? {
                return Ok(false);
            }
            if !self.raw.trim().is_empty() {
                break;
            }
        }
        record.text.clear();
        record.bounds.clear();
        record.line = self.line;
        let mut field_start = 0usize;
        let mut in_quotes = false;
        let mut quoted = false;
        loop {
            let mut chars = self.raw.char_indices().peekable();
            while let Some((_, c)) = chars.next() {
                match (in_quotes, c) {
                    (true, '"') => {
                        if matches!(chars.peek(), Some((_, '"'))) {
                            chars.next();
                            record.text.push('"');
                        } else {
                            in_quotes = false;
                        }
                    }
                    (true, c) => record.text.push(c),
                    (false, '"') if record.text[field_start..].trim().is_empty() && !quoted => {
                        record.text.truncate(field_start);
                        in_quotes = true;
                        quoted = true;
                    }
                    (false, ',') => {
                        push_field(record, field_start, quoted);
                        field_start = record.text.len();
                        quoted = false;
                    }
                    (false, c) => record.text.push(c),
                }
            }
            if !in_quotes {
                break;
            }
            // A quoted field goes on over the line break; the whole row is bounded.
            if record.text.len() > MAX_LINE_BYTES {
                return Err(line_too_long(&self.path, record.line, "row"));
            }
            record.text.push('\n');
            if !self.read_line()? {
                return Err(CoreError::data(
                    &self.path,
                    record.line,
                    None,
                    DataErrorKind::Malformed,
                    "unterminated quoted field",
                ));
            }
        }
        if record.text.len() > MAX_LINE_BYTES {
            return Err(line_too_long(&self.path, record.line, "row"));
        }
        push_field(record, field_start, quoted);
        Ok(true)
    }
}

fn push_field(record: &mut Record, start: usize, quoted: bool) {
    let end = record.text.len();
    if quoted {
        record.bounds.push((start, end));
        return;
    }
    let field = &record.text[start..end];
    let lead = field.len() - field.trim_start().len();
    let trail = field.len() - field.trim_end().len();
    record
        .bounds
        .push((start + lead, (end - trail).max(start + lead)));
}

/// Checks a row has exactly as many fields as the header.
pub(crate) fn check_width(path: &Path, record: &Record, expected: usize) -> Result<()> {
    if record.len() != expected {
        return Err(CoreError::data(
            path,
            record.line,
            None,
            DataErrorKind::Malformed,
            format!("expected {expected} columns, found {}", record.len()),
        ));
    }
    Ok(())
}
