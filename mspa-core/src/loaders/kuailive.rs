//! The KuaiLive live-streaming dataset (2025).
//!
//! A directory holding
//!
//! * `gift.csv` (required), header `user_id,live_id,streamer_id,timestamp,gift_price`:
//!   one gift event per row, `timestamp` in milliseconds, `gift_price` the event's total.
//!   Each row becomes a tip from `user_id` to `streamer_id`.
//! * `streamer.csv` (optional), keyed by `streamer_id`: every other column becomes part of
//!   the author's description as `column: value`.
//! * `room.csv` (optional), header `p_date,live_id,streamer_id,live_type,start_timestamp,
//!   end_timestamp,live_content_category,live_name_id`: the content categories of each
//!   streamer's rooms give the author a title (the most frequent category) and a
//!   description line listing all of them, most frequent first.
//!
//!   When the file has `start_timestamp` and `end_timestamp` (milliseconds), each room
//!   is a broadcast of its streamer ([`crate::Dataset::live`]).
//!
//! Streamers found only in `gift.csv` are bare authors. [`room_title_ids`] reads which
//! `live_name_id`s (rows of `title_embeddings_pca128.npy`) each streamer's rooms had.

use std::collections::BTreeMap;
use std::path::Path;

use super::LoadProgress;
use super::fields::{self, AuthorLines, ColumnCheck, DirFile, Record, Row};
use crate::author::Author;
use crate::dataset::{Dataset, DatasetBuilder};
use crate::error::Result;
use crate::ids::ExternalId;

/// The gift events file.
pub const GIFT_FILE: &str = "gift.csv";
/// The optional streamer attributes file.
pub const STREAMER_FILE: &str = "streamer.csv";
/// The optional live-room file.
pub const ROOM_FILE: &str = "room.csv";

/// The files of a KuaiLive directory, in the order they are read: the streamers' own
/// attributes first, so that rooms and gifts add to them.
pub(super) const FILES: [DirFile; 3] = [
    DirFile::optional(STREAMER_FILE, read_streamers),
    DirFile::optional(ROOM_FILE, read_rooms),
    DirFile::required(GIFT_FILE, read_gifts),
];

/// Loads a KuaiLive directory.
///
/// [`super::load`] does the same with a progress callback.
pub fn load_kuailive(dir: &Path) -> Result<Dataset> {
    super::load(super::Format::KuaiLive, dir, &mut |_| {})
}

/// Runs `row(header, row, columns)` on every row of a KuaiLive file, looking the
/// `required` columns up on the first row (a file with a header only is accepted).
fn for_each_row<const N: usize>(
    path: &Path,
    progress: &mut dyn FnMut(LoadProgress),
    required: [&str; N],
    row: impl FnMut(&Record, Row<'_>, [usize; N]) -> Result<()>,
) -> Result<()> {
    fields::for_each_row(path, progress, required, ColumnCheck::FirstRow, row)
}

fn read_streamers(
    path: &Path,
    builder: &mut DatasetBuilder,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<()> {
    let mut author_lines = AuthorLines::default();
    for_each_row(path, progress, ["streamer_id"], |header, row, [col]| {
        let raw = row.field(col, "streamer_id")?;
        let mut author = Author::bare(ExternalId::parse(raw));
        author.description = header
            .iter()
            .zip(row.record().iter())
            .enumerate()
            .filter(|&(i, (_, v))| i != col && !v.is_empty())
            .map(|(_, (h, v))| format!("{h}: {v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let at = (path, row.line());
        author_lines.add(builder, author, at, "streamer_id", |first| {
            format!(
                "streamer `{}` was already listed on line {first}",
                crate::error::excerpt(raw)
            )
        })
    })
}

fn read_rooms(
    path: &Path,
    builder: &mut DatasetBuilder,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<()> {
    // streamer -> category -> rooms
    let mut categories: BTreeMap<u32, BTreeMap<String, u32>> = BTreeMap::new();
    let cols = ["streamer_id", "live_content_category"];
    for_each_row(path, progress, cols, |header, row, [s_col, c_col]| {
        let streamer = row.field(s_col, "streamer_id")?;
        let author = builder.author_or_bare(ExternalId::parse(streamer));
        // The broadcast, when the file has both times (the published layout does).
        let column = |name: &str| header.iter().position(|h| h == name);
        if let (Some(start), Some(end)) = (column("start_timestamp"), column("end_timestamp")) {
            let start =
                row.timestamp_ms("start_timestamp", row.field(start, "start_timestamp")?)?;
            let end = row.timestamp_ms("end_timestamp", row.field(end, "end_timestamp")?)?;
            if end < start {
                return Err(row.error(
                    Some("end_timestamp"),
                    crate::DataErrorKind::InvalidTimestamp,
                    format!("the room ends ({end}) before it starts ({start})"),
                ));
            }
            builder.add_live_interval(author, start, end);
        }
        let category = row.record().get(c_col).unwrap_or("").trim();
        if !category.is_empty() {
            *categories
                .entry(author.0)
                .or_default()
                .entry(category.to_string())
                .or_default() += 1;
        }
        Ok(())
    })?;
    for (author, counts) in categories {
        let mut ranked: Vec<(String, u32)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let author = builder.author_mut(crate::AuthorId(author));
        author.title = ranked[0].0.clone();
        let line = format!(
            "content categories: {}",
            ranked
                .iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        author.description = if author.description.is_empty() {
            line
        } else {
            format!("{}\n{line}", author.description)
        };
    }
    Ok(())
}

fn read_gifts(
    path: &Path,
    builder: &mut DatasetBuilder,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<()> {
    const COLUMNS: [&str; 5] = [
        "user_id",
        "live_id",
        "streamer_id",
        "timestamp",
        "gift_price",
    ];
    for_each_row(
        path,
        progress,
        COLUMNS,
        |_, row, [u, live, s, ts, price]| {
            let user = row.field(u, "user_id")?;
            row.field(live, "live_id")?;
            let streamer = row.field(s, "streamer_id")?;
            let ts = row.timestamp_ms("timestamp", row.field(ts, "timestamp")?)?;
            let amount = row.amount("gift_price", row.field(price, "gift_price")?)?;
            let user = builder.user(ExternalId::parse(user));
            let author = builder.author_or_bare(ExternalId::parse(streamer));
            builder.push_event(user, author, amount, ts);
            Ok(())
        },
    )
}

/// Each streamer's `live_name_id`s in `dir/room.csv` (the rows of KuaiLive's
/// `title_embeddings_pca128.npy` that hold their rooms' title embeddings), one entry per
/// room, by streamer id. An empty map when the directory has no `room.csv`.
pub fn room_title_ids(dir: &Path) -> Result<BTreeMap<ExternalId, Vec<usize>>> {
    let path = dir.join(ROOM_FILE);
    let mut out: BTreeMap<ExternalId, Vec<usize>> = BTreeMap::new();
    if !path.exists() {
        return Ok(out);
    }
    let cols = ["streamer_id", "live_name_id"];
    for_each_row(&path, &mut |_| {}, cols, |_, row, [s_col, n_col]| {
        let streamer = row.field(s_col, "streamer_id")?;
        let raw = row.field(n_col, "live_name_id")?;
        let id = fields::parse_integer(raw)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| {
                row.error(
                    Some("live_name_id"),
                    crate::DataErrorKind::BadValue,
                    format!("`{}` is not a row index", crate::error::excerpt(raw)),
                )
            })?;
        out.entry(ExternalId::parse(streamer)).or_default().push(id);
        Ok(())
    })?;
    Ok(out)
}
