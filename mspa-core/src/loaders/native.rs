//! The native on-disk format, a documented contract other tools write.
//!
//! A dataset is a directory holding:
//!
//! * `authors.jsonl`: one JSON object per line (blank lines are skipped) with the fields
//!   - `id` (required): a string or an integer, unique across the file;
//!   - `name`, `title`, `description`: strings, may be empty or absent;
//!   - `frames`: a list of image paths relative to the directory, may be empty or absent;
//!   - `audio`: a relative path, or `null` / absent.
//!
//!   Other fields are ignored. Media paths must stay inside the directory: absolute
//!   paths and `..` are refused here, and symbolic links that lead outside it when the
//!   media are read ([`crate::Dataset::resolve_media`]). Lines, texts, frame lists and
//!   paths are bounded by the [`super::limits`].
//! * `tips.csv`: a header naming the columns `user_id,author_id,amount,timestamp_ms` (in
//!   any order; extra columns are ignored), then one tip per row. `user_id` and
//!   `author_id` are strings or integers (see [`crate::ExternalId`] for how `"42"` and `42`
//!   are the same id); every `author_id` must be an id of `authors.jsonl`; `amount` is a
//!   finite, non-negative number; `timestamp_ms` is an integer number of milliseconds
//!   since the Unix epoch. Rows need not be sorted.
//!
//! Line numbers in errors are 1-based and count the header.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::LoadProgress;
use super::fields::{
    AuthorLines, ColumnCheck, DirFile, for_each_row, open_counted, read_line_limited, report,
};
use super::limits::{MAX_FRAMES_PER_AUTHOR, MAX_PATH_BYTES, MAX_TEXT_BYTES};
use crate::author::{Author, check_media_path};
use crate::dataset::{Dataset, DatasetBuilder};
use crate::error::{CoreError, DataErrorKind, Result, excerpt};
use crate::ids::ExternalId;

/// The authors file of a native dataset.
pub const AUTHORS_FILE: &str = "authors.jsonl";
/// The tips file of a native dataset.
pub const TIPS_FILE: &str = "tips.csv";
/// The header of the tips file.
pub const TIPS_HEADER: [&str; 4] = ["user_id", "author_id", "amount", "timestamp_ms"];

/// The files of a native dataset, in the order they are read.
pub(super) const FILES: [DirFile; 2] = [
    DirFile::required(AUTHORS_FILE, read_authors),
    DirFile::required(TIPS_FILE, read_tips),
];

/// Loads a native-format dataset from a directory.
///
/// [`super::load`] does the same with a progress callback.
pub fn load_native(dir: &Path) -> Result<Dataset> {
    super::load(super::Format::Native, dir, &mut |_| {})
}

fn read_authors(
    path: &Path,
    builder: &mut DatasetBuilder,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<()> {
    let (mut reader, bytes, total) = open_counted(path)?;
    let mut author_lines = AuthorLines::default();
    let (mut raw, mut line) = (Vec::new(), String::new());
    let mut line_no = 0u64;
    while read_line_limited(&mut reader, &mut raw, &mut line, path, line_no + 1)? {
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        let author = parse_author(path, line_no, &line)?;
        let id = author.id.clone();
        author_lines.add(builder, author, (path, line_no), "id", |first| {
            format!(
                "author id `{}` was already defined on line {first}",
                excerpt(&id.to_string())
            )
        })?;
        report(progress, path, line_no, &bytes, total);
    }
    Ok(())
}

/// Parses one line of `authors.jsonl`.
fn parse_author(path: &Path, line: u64, text: &str) -> Result<Author> {
    let err =
        |field: Option<&str>, kind, msg: String| CoreError::data(path, line, field, kind, msg);
    // A field of the wrong JSON type: what was expected and an excerpt of what was found.
    let wrong = |field: &str, expected: &str, found: &Value| {
        let found = excerpt(&found.to_string());
        err(
            Some(field),
            DataErrorKind::BadValue,
            format!("expected {expected}, found {found}"),
        )
    };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| err(None, DataErrorKind::Malformed, format!("invalid JSON: {e}")))?;
    let obj = value.as_object().ok_or_else(|| {
        err(
            None,
            DataErrorKind::Malformed,
            "expected a JSON object".into(),
        )
    })?;
    let id = match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() => ExternalId::parse(s),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) => ExternalId::Int(v),
            None => {
                return Err(err(
                    Some("id"),
                    DataErrorKind::BadValue,
                    format!("`{}` is not an integer id", excerpt(&n.to_string())),
                ));
            }
        },
        Some(Value::Null) | None => {
            return Err(err(Some("id"), DataErrorKind::Missing, "no id".into()));
        }
        Some(other) => return Err(wrong("id", "a string or an integer", other)),
    };
    let string_field = |name: &str| -> Result<String> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) if s.len() > MAX_TEXT_BYTES => Err(err(
                Some(name),
                DataErrorKind::TooLarge,
                format!(
                    "{} bytes is longer than MAX_TEXT_BYTES = {MAX_TEXT_BYTES}: `{}`",
                    s.len(),
                    excerpt(s)
                ),
            )),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(wrong(name, "a string", other)),
        }
    };
    let media_path = |name: &str, raw: &Value| -> Result<PathBuf> {
        let s = raw
            .as_str()
            .ok_or_else(|| wrong(name, "a path string", raw))?;
        if s.len() > MAX_PATH_BYTES {
            return Err(err(
                Some(name),
                DataErrorKind::TooLarge,
                format!(
                    "path of {} bytes is longer than MAX_PATH_BYTES = {MAX_PATH_BYTES}: `{}`",
                    s.len(),
                    excerpt(s)
                ),
            ));
        }
        check_media_path(s).map_err(|why| {
            // The reason quotes the path; quote a short excerpt of it instead.
            let why = why.replace(s, &excerpt(s));
            err(Some(name), DataErrorKind::PathEscape, why)
        })
    };
    let frames = match obj.get("frames") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() > MAX_FRAMES_PER_AUTHOR => {
            return Err(err(
                Some("frames"),
                DataErrorKind::TooLarge,
                format!(
                    "{} frames is more than MAX_FRAMES_PER_AUTHOR = {MAX_FRAMES_PER_AUTHOR}",
                    items.len()
                ),
            ));
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| media_path("frames", v))
            .collect::<Result<Vec<_>>>()?,
        Some(other) => return Err(wrong("frames", "a list of paths", other)),
    };
    let audio = match obj.get("audio") {
        None | Some(Value::Null) => None,
        Some(v) => Some(media_path("audio", v)?),
    };
    Ok(Author {
        id,
        name: string_field("name")?,
        title: string_field("title")?,
        description: string_field("description")?,
        frames,
        audio,
    })
}

fn read_tips(
    path: &Path,
    builder: &mut DatasetBuilder,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<()> {
    let check = ColumnCheck::Header;
    for_each_row(path, progress, TIPS_HEADER, check, |_, row, positions| {
        let [u_col, a_col, amount_col, ts_col] = positions;
        let user = row.field(u_col, "user_id")?;
        let author_raw = row.field(a_col, "author_id")?;
        let amount_raw = row.field(amount_col, "amount")?;
        let ts_raw = row.field(ts_col, "timestamp_ms")?;
        let author_ext = ExternalId::parse(author_raw);
        let author = builder.author_id(&author_ext).ok_or_else(|| {
            row.error(
                Some("author_id"),
                DataErrorKind::UnknownAuthor,
                format!("`{}` is not an id of {AUTHORS_FILE}", excerpt(author_raw)),
            )
        })?;
        let amount = row.amount("amount", amount_raw)?;
        let ts = row.timestamp_ms("timestamp_ms", ts_raw)?;
        let user = builder.user(ExternalId::parse(user));
        builder.push_event(user, author, amount, ts);
        Ok(())
    })
}
