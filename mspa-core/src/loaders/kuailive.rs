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
//! Streamers found only in `gift.csv` are bare authors.

use std::collections::BTreeMap;
use std::path::Path;

use super::LoadProgress;
use super::fields::{
    Record, check_width, column_positions, open_csv_with_header, parse_amount, parse_timestamp_ms,
    report, required_field,
};
use crate::author::Author;
use crate::dataset::{Dataset, DatasetBuilder};
use crate::error::{CoreError, DataErrorKind, Result};
use crate::ids::ExternalId;

/// The gift events file.
pub const GIFT_FILE: &str = "gift.csv";
/// The optional streamer attributes file.
pub const STREAMER_FILE: &str = "streamer.csv";
/// The optional live-room file.
pub const ROOM_FILE: &str = "room.csv";

/// Loads a KuaiLive directory.
pub fn load_kuailive(dir: &Path) -> Result<Dataset> {
    load_kuailive_with_progress(dir, &mut |_| {})
}

/// Loads a KuaiLive directory, calling `progress` every few tens of thousands of lines.
pub fn load_kuailive_with_progress(
    dir: &Path,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Dataset> {
    let mut builder = DatasetBuilder::default();
    let streamer_path = dir.join(STREAMER_FILE);
    if streamer_path.exists() {
        read_streamers(&streamer_path, &mut builder, progress)?;
    }
    let room_path = dir.join(ROOM_FILE);
    if room_path.exists() {
        read_rooms(&room_path, &mut builder, progress)?;
    }
    read_gifts(&dir.join(GIFT_FILE), &mut builder, progress)?;
    Ok(builder.build(Some(dir.to_path_buf())))
}

/// Runs `row` on every record of a headed CSV file, with progress.
fn for_each_row(
    path: &Path,
    progress: &mut dyn FnMut(LoadProgress),
    mut row: impl FnMut(&Record, &Record, u64) -> Result<()>,
) -> Result<()> {
    let (mut rows, header, bytes, total) = open_csv_with_header(path)?;
    let mut record = Record::default();
    while rows.next_record(&mut record)? {
        check_width(path, &record, header.len())?;
        row(&header, &record, record.line)?;
        report(progress, path, record.line, &bytes, total);
    }
    Ok(())
}

fn read_streamers(
    path: &Path,
    builder: &mut DatasetBuilder,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<()> {
    let mut id_col = None;
    let mut first_line = std::collections::HashMap::new();
    for_each_row(path, progress, |header, record, line| {
        let col = match id_col {
            Some(c) => c,
            None => {
                let [c] = column_positions(path, header, ["streamer_id"])?;
                id_col = Some(c);
                c
            }
        };
        let raw = required_field(path, line, record, col, "streamer_id")?;
        let id = ExternalId::parse(raw);
        let description = header
            .iter()
            .zip(record.iter())
            .enumerate()
            .filter(|&(i, (_, v))| i != col && !v.is_empty())
            .map(|(_, (h, v))| format!("{h}: {v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut author = Author::bare(id.clone());
        author.description = description;
        if builder.add_author(author).is_err() {
            return Err(CoreError::data(
                path,
                line,
                Some("streamer_id"),
                DataErrorKind::DuplicateAuthor,
                format!(
                    "streamer `{raw}` was already listed on line {}",
                    first_line.get(&id).copied().unwrap_or(0)
                ),
            ));
        }
        first_line.insert(id, line);
        Ok(())
    })
}

fn read_rooms(
    path: &Path,
    builder: &mut DatasetBuilder,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<()> {
    let mut cols = None;
    // streamer -> category -> rooms
    let mut categories: BTreeMap<u32, BTreeMap<String, u32>> = BTreeMap::new();
    for_each_row(path, progress, |header, record, line| {
        let [s_col, c_col] = match cols {
            Some(c) => c,
            None => {
                let c = column_positions(path, header, ["streamer_id", "live_content_category"])?;
                cols = Some(c);
                c
            }
        };
        let streamer = required_field(path, line, record, s_col, "streamer_id")?;
        let author = builder.author_or_bare(ExternalId::parse(streamer));
        let category = record.get(c_col).unwrap_or("").trim();
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
    let mut cols = None;
    for_each_row(path, progress, |header, record, line| {
        let [u, live, s, ts, price] = match cols {
            Some(c) => c,
            None => {
                let c = column_positions(path, header, COLUMNS)?;
                cols = Some(c);
                c
            }
        };
        let user = required_field(path, line, record, u, "user_id")?;
        required_field(path, line, record, live, "live_id")?;
        let streamer = required_field(path, line, record, s, "streamer_id")?;
        let ts = parse_timestamp_ms(
            path,
            line,
            "timestamp",
            required_field(path, line, record, ts, "timestamp")?,
        )?;
        let amount = parse_amount(
            path,
            line,
            "gift_price",
            required_field(path, line, record, price, "gift_price")?,
        )?;
        let user = builder.user(ExternalId::parse(user));
        let author = builder.author_or_bare(ExternalId::parse(streamer));
        builder.push_event(user, author, amount, ts);
        Ok(())
    })
}
