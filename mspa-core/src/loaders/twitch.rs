//! The Twitch watch-session dataset of Rappaz et al. (RecSys 2021), `100k.csv` and
//! `full_a.csv`.
//!
//! No header; five columns `user,stream,streamer,start,stop`, where `start` and `stop`
//! are indices of 10-minute steps and a row is one watch session. Each row becomes an
//! event with `author = streamer`, `timestamp_ms = start × 10 min` and
//! `amount = stop − start` (the session length in steps, an implicit strength). The stream
//! id is checked to be an unsigned 64-bit integer and then dropped. Streamers have no text
//! or media in this release, so authors are bare. The sessions also give each streamer's
//! broadcast times ([`crate::Dataset::live`]): a streamer is live during every step
//! someone watched them.

use std::path::Path;

use super::LoadProgress;
use super::fields::{CsvLines, Record, Row, open_counted, parse_integer, report};
use crate::dataset::{Dataset, DatasetBuilder};
use crate::error::{DataErrorKind, Result, excerpt};
use crate::ids::ExternalId;

/// Milliseconds in one Twitch time step (10 minutes).
pub const STEP_MS: i64 = 10 * 60 * 1000;

const COLUMNS: [&str; 5] = ["user", "stream", "streamer", "start", "stop"];

/// Loads a Twitch CSV file.
///
/// [`super::load`] does the same with a progress callback.
pub fn load_twitch(path: &Path) -> Result<Dataset> {
    read(path, &mut |_| {})
}

/// Reads the files, calling `progress` every few tens of thousands of lines.
pub(super) fn read(path: &Path, progress: &mut dyn FnMut(LoadProgress)) -> Result<Dataset> {
    let (reader, bytes, total) = open_counted(path)?;
    let mut rows = CsvLines::new(reader, path);
    let mut builder = DatasetBuilder::default();
    let mut record = Record::default();
    while rows.next_record(&mut record)? {
        let row = Row::new(path, &record);
        if record.len() != COLUMNS.len() {
            return Err(row.error(
                None,
                DataErrorKind::Malformed,
                format!(
                    "expected 5 columns ({}), found {}",
                    COLUMNS.join(","),
                    record.len()
                ),
            ));
        }
        let field = |i: usize| row.field(i, COLUMNS[i]);
        let user = field(0)?;
        let stream = field(1)?;
        stream.parse::<u64>().map_err(|_| {
            row.error(
                Some("stream"),
                DataErrorKind::BadValue,
                format!("`{}` is not an unsigned 64-bit stream id", excerpt(stream)),
            )
        })?;
        let streamer = field(2)?;
        let step = |i: usize| -> Result<i64> {
            let raw = field(i)?;
            match parse_integer(raw) {
                Some(v) if v >= 0 => Ok(v),
                _ => Err(row.error(
                    Some(COLUMNS[i]),
                    DataErrorKind::InvalidTimestamp,
                    format!("`{}` is not a non-negative step index", excerpt(raw)),
                )),
            }
        };
        let start = step(3)?;
        let stop = step(4)?;
        if stop < start {
            return Err(row.error(
                Some("stop"),
                DataErrorKind::InvalidAmount,
                format!("stop {stop} is before start {start}"),
            ));
        }
        let timestamp_ms = start.checked_mul(STEP_MS).ok_or_else(|| {
            row.error(
                Some("start"),
                DataErrorKind::InvalidTimestamp,
                format!("step {start} overflows a millisecond timestamp"),
            )
        })?;
        let user = builder.user(ExternalId::parse(user));
        let author = builder.author_or_bare(ExternalId::parse(streamer));
        builder.push_event(user, author, (stop - start) as f64, timestamp_ms);
        // The streamer was on air for the session's steps (`stop` is exclusive).
        builder.add_live_interval(
            author,
            timestamp_ms,
            timestamp_ms.max(stop.saturating_mul(STEP_MS) - 1),
        );
        report(progress, path, record.line, &bytes, total);
    }
    let root = path.parent().map(Path::to_path_buf);
    Ok(builder.build(root))
}
