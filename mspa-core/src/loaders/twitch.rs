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
//!
//! # Reading fast
//!
//! The file is read in parallel (module `scan`): one part per thread, each parsing its
//! lines from bytes (`rows`, `line`) and numbering ids locally (`id_table`); the parts
//! are then merged, and the events and the live schedule grouped by radix sorts
//! (`assemble`, `group`). The result is exactly what the row-by-row reader (`read_rows`)
//! gives: users and streamers numbered in order of first appearance, events in the order
//! [`crate::DatasetBuilder::build`] leaves them, the same schedule. Any line that reader
//! would refuse, or that needs its CSV quoting or UTF-8 handling (quotes, non-ASCII
//! bytes, a byte-order mark), or a step past `u32`, makes the fast path give up; the
//! file is then read again row by row, so errors name the first bad line of the file,
//! with the field, as before.

mod assemble;
mod group;
mod id_table;
mod line;
mod rows;
mod scan;

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

/// Reads the file, calling `progress` every few megabytes (or, when the file needs the
/// row-by-row reader, every few tens of thousands of lines).
pub(super) fn read(path: &Path, progress: &mut dyn FnMut(LoadProgress)) -> Result<Dataset> {
    let root = || path.parent().map(Path::to_path_buf);
    let mut reported = 0u64;
    let mut forward = |p: LoadProgress| {
        // Reports never go backwards when the row-by-row reader starts over.
        if p.bytes > reported {
            reported = p.bytes;
            progress(p);
        }
    };
    let scanned = scan::scan(path, &mut forward);
    if let Some(dataset) = scanned.and_then(|parts| assemble::assemble(parts, root())) {
        return Ok(dataset);
    }
    read_rows(path, &mut forward)
}

/// Reads the file row by row: the reference the fast path matches, and the reader of
/// every file it gives up on.
fn read_rows(path: &Path, progress: &mut dyn FnMut(LoadProgress)) -> Result<Dataset> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CoreError;

    /// Everything a dataset exposes, for comparing two.
    fn summary(ds: &Dataset) -> String {
        let users: Vec<_> = ds.users().map(|u| ds.user_external(u).clone()).collect();
        let authors: Vec<_> = ds.authors().iter().map(|a| format!("{a:?}")).collect();
        let live = ds.live().map(|l| {
            (0..ds.n_authors() as u32)
                .map(|a| l.intervals(crate::AuthorId(a)).to_vec())
                .collect::<Vec<_>>()
        });
        format!(
            "{users:?}\n{authors:?}\n{:?}\n{:?}\n{live:?}\n{:?}",
            ds.events(),
            ds.user_offsets(),
            ds.root()
        )
    }

    /// Loads `text` through the fast path (which must take it, in at least `min_parts`
    /// parts) and row by row.
    fn both(text: &str, min_parts: usize) -> (Dataset, Dataset) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).expect("write");
        let parts = scan::scan(&path, &mut |_| {}).expect("the fast path takes the file");
        assert!(parts.len() >= min_parts, "{} parts", parts.len());
        let fast = assemble::assemble(parts, Some(dir.path().to_path_buf())).expect("ids fit");
        let rows = read_rows(&path, &mut |_| {}).expect("valid file");
        (fast, rows)
    }

    fn assert_same(text: &str, min_parts: usize) {
        let (fast, rows) = both(text, min_parts);
        assert_eq!(summary(&fast), summary(&rows), "{text:?}");
    }

    /// A file of `n` rows in the shape of the release, with a few of every unusual form
    /// the fast path still takes; start steps below `steps`.
    fn sample(n: usize, seed: u64, steps: u64) -> String {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let mut out = String::new();
        for i in 0..n {
            let r = rng.next_u64();
            let user = match r % 50 {
                0 => format!("u{}", r % 7),
                1 => format!("-{}", r % 5 + 1),
                2 => format!("00{}", r % 3),
                3 => format!("{}", (r >> 8) % 20_000_000_000),
                _ => format!("{}", (r >> 8) % 300),
            };
            let streamer = match (r >> 20) % 40 {
                0 => "ninja".to_string(),
                1 => format!("{}", (r >> 30) % 3_000_000),
                2..=20 => format!("s_{}", (r >> 30) % 40),
                _ => format!("{}", (r >> 30) % 90),
            };
            let start = rng.next_u64() % steps;
            let stop = start + (r >> 50) % 13;
            let end = match i % 97 {
                0 => "\r\n",
                _ => "\n",
            };
            match (r >> 58) % 64 {
                0 => out.push_str(&format!(
                    " {user} , {},{streamer},{start}.0,{stop}{end}",
                    r % 1000
                )),
                1 => out.push_str("\n  \t\n"),
                _ => out.push_str(&format!(
                    "{user},{},{streamer},{start},{stop}{end}",
                    30_000_000_000 + r % 1000
                )),
            }
        }
        out
    }

    #[test]
    fn fast_path_matches_the_row_reader() {
        for text in [
            "",
            "\n\n",
            "1,2,a,3,4",
            "1,2,a,3,4\r\n",
            "1,33842865744,mithrain,154,156\n1,33846768288,alptv,166,169\n2,33886469056,mithrain,118,120\n1,34887283200,mithrain,10,11\n",
            "5,2,a,7,7\n5,2,b,7,7\n5,2,a,3,9\n",
            "1,18446744073709551615,a,0,4294967295\n",
        ] {
            assert_same(text, 1);
        }
        for seed in 0..4 {
            assert_same(&sample(5_000, seed, 6000), 1);
        }
        // Start steps too spread out to be sorted by counting.
        assert_same(&sample(5_000, 7, 1 << 30), 1);
    }

    #[test]
    fn large_files_split_into_parts_match_the_row_reader() {
        // Over a megabyte per thread, so that the file is read in parts whose
        // boundaries fall inside lines.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        pool.install(|| assert_same(&sample(200_000, 9, 6000), 3));
    }

    #[test]
    fn progress_reaches_the_end_of_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.csv");
        let text = sample(100_000, 3, 6000);
        std::fs::write(&path, &text).expect("write");
        let mut reports = Vec::new();
        read(&path, &mut |p| reports.push(p)).expect("loads");
        let last = reports.last().expect("reports");
        assert_eq!(last.bytes, text.len() as u64);
        assert_eq!(last.lines, text.lines().count() as u64);
        assert!(reports.windows(2).all(|w| w[0].bytes < w[1].bytes));
    }

    fn error_of(text: &str) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("100k.csv");
        std::fs::write(&path, text).expect("write");
        match load_twitch(&path) {
            Err(e @ CoreError::Data { .. }) => e.to_string(),
            other => panic!("expected a data error, got {other:?}"),
        }
    }

    #[test]
    fn the_first_bad_line_is_named_across_parts() {
        // Two bad lines, far apart: with three threads the second lies in a later part
        // than the first, which must still be the one named.
        let mut text = sample(200_000, 5, 6000);
        let first = text.len() / 5;
        let first = first + text[first..].find('\n').expect("line") + 1;
        let line = text[..first].matches('\n').count() + 1;
        text.insert_str(first, "7,1,s,x,3\n");
        let late = text.len() - 10;
        let late = text[..late].rfind('\n').expect("line") + 1;
        text.insert_str(late, "7,1,,1,3\n");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        let message = pool.install(|| error_of(&text));
        assert!(
            message.contains(&format!("100k.csv:{line}: field `start`")),
            "{message}"
        );
    }

    #[test]
    fn bad_lines_give_the_row_readers_errors() {
        let cases = [
            ("1,2,a,3,4\r\n\r\n1,2,a,5,4\r\n", "100k.csv:3: field `stop`"),
            ("1,2,a,3,4\n  \n1,2,a,-3,4\n", "100k.csv:3: field `start`"),
            ("1,2,\"a\",3,4\n1,2,a,3\n", "100k.csv:2:"),
            ("1,2,ä,3,4\n1,x,a,3,4\n", "100k.csv:2: field `stream`"),
            (
                "1,2,a,3,4\n1,2,a,3,5000000000\n1,2,a,3,",
                "100k.csv:3: field `stop`",
            ),
        ];
        for (text, expected) in cases {
            let message = error_of(text);
            assert!(message.contains(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn files_the_fast_path_leaves_are_read_row_by_row() {
        // Quoted fields, a byte-order mark and steps past `u32` are the row reader's.
        for text in [
            "\"1\",2,\"a,b\",3,4\n",
            "\u{feff}1,2,a,3,4\n",
            "1,2,a,3,5000000000\n",
            "1,2,\u{e9}t\u{e9},3,4\n",
        ] {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("t.csv");
            std::fs::write(&path, text).expect("write");
            assert!(scan::scan(&path, &mut |_| {}).is_none(), "{text:?}");
            let ds = load_twitch(&path).expect("valid");
            assert_eq!(ds.n_events(), 1);
        }
    }
}
