//! Reading a Twitch file in parallel: the file is cut into one part per thread at byte
//! offsets, each part reads its lines (those that start inside it) block by block through
//! its own file handle, and turns them into sessions with part-local ids.
//!
//! The parts advance together, a few megabytes each per round, so that the caller can
//! report progress between rounds on its own thread. Memory is the sessions (16 bytes
//! each) plus a buffer of [`READ`] bytes and one longest line per part. Step indices
//! must fit a `u32` (10-minute steps: 81,000 years) for the fast path.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;

use rayon::prelude::*;

use super::id_table::IdTable;
use super::line::{Fields, GiveUp, general_line};
use super::rows::{PAD, row};
use crate::loaders::LoadProgress;
use crate::loaders::limits::MAX_LINE_BYTES;

/// Bytes each part reads per round.
const ROUND: usize = 4 << 20;

/// Bytes read at a time (small enough for the buffer to stay in cache while parsed).
const READ: usize = 256 << 10;

/// Bytes read at a time past the end of a part, to finish its last line.
const TAIL_READ: usize = 4 << 10;

/// Files smaller than this per thread are read in fewer parts.
const MIN_PART_BYTES: u64 = 1 << 20;

/// One watch session with part-local user and streamer ids.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Session {
    /// The user, as numbered by the part's [`PartIds::users`].
    pub user: u32,
    /// The streamer, as numbered by the part's [`PartIds::streamers`].
    pub streamer: u32,
    /// The start step.
    pub start: u32,
    /// The stop step.
    pub stop: u32,
}

/// What one part of the file holds, once read.
pub(super) struct Part {
    /// The part's users and streamers.
    pub ids: PartIds,
    /// The sessions, in file order.
    pub sessions: Vec<Session>,
    reader: PartReader,
}

/// Reads the file at `path` in parts, calling `progress` after every round; `None` when
/// the file needs the row-by-row reader (a line the fast path does not take, or any I/O
/// error, which that reader reports).
pub(super) fn scan(path: &Path, progress: &mut dyn FnMut(LoadProgress)) -> Option<Vec<Part>> {
    let len = std::fs::metadata(path).ok()?.len();
    let by_size = usize::try_from(len / MIN_PART_BYTES).unwrap_or(usize::MAX);
    let n = rayon::current_num_threads().min(by_size).max(1);
    let mut parts = (0..n as u64)
        .map(|p| {
            let (start, end) = (len * p / n as u64, len * (p + 1) / n as u64);
            let end = if p + 1 == n as u64 { u64::MAX } else { end };
            Part::open(path, start, end, len)
        })
        .collect::<Option<Vec<Part>>>()?;
    loop {
        let rounds: Vec<Result<(), GiveUp>> = parts.par_iter_mut().map(Part::round).collect();
        if rounds.iter().any(Result::is_err) {
            return None;
        }
        let (lines, bytes) = parts
            .iter()
            .fold((0, 0), |(l, b), p| (l + p.reader.lines, b + p.reader.bytes));
        progress(LoadProgress {
            file: path.to_path_buf(),
            lines,
            bytes,
            total_bytes: len,
        });
        if parts.iter().all(|p| p.reader.done) {
            return Some(parts);
        }
    }
}

/// The reading state of a part.
struct PartReader {
    file: File,
    /// Lines starting at or after this offset belong to the next part.
    end: u64,
    /// Offset of the next byte to read.
    next_read: u64,
    /// The unread bytes: `buf[..valid]` starts at offset `buf_offset`; [`PAD`] bytes of
    /// slack follow the largest read.
    buf: Vec<u8>,
    valid: usize,
    buf_offset: u64,
    /// Still before the first line starting in the part.
    skipping: bool,
    eof: bool,
    done: bool,
    /// Lines and bytes read so far.
    lines: u64,
    bytes: u64,
}

impl Part {
    /// The part of the file at `path` whose lines start in `start..end`.
    fn open(path: &Path, start: u64, end: u64, len: u64) -> Option<Part> {
        let mut file = File::open(path).ok()?;
        // A part after the first starts reading one byte early: a line starts at `start`
        // exactly when that byte ends a line.
        let first = start.saturating_sub(1);
        file.seek(SeekFrom::Start(first)).ok()?;
        let expected_rows = (end.min(len) - start) / 30;
        Some(Part {
            ids: PartIds::default(),
            sessions: Vec::with_capacity(usize::try_from(expected_rows).ok()?),
            reader: PartReader {
                file,
                end,
                next_read: first,
                buf: vec![0; READ + MAX_LINE_BYTES + 2 + PAD],
                valid: 0,
                buf_offset: first,
                skipping: start > 0,
                eof: false,
                done: false,
                lines: 0,
                bytes: 0,
            },
        })
    }

    /// Reads about [`ROUND`] bytes and their lines.
    fn round(&mut self) -> Result<(), GiveUp> {
        let mut read = 0;
        while !self.reader.done && read < ROUND {
            read += self.chunk()?;
        }
        Ok(())
    }

    /// Reads at most [`READ`] bytes and the lines they complete; returns the bytes read.
    /// At the end of the file the part is done.
    fn chunk(&mut self) -> Result<usize, GiveUp> {
        let read = self.reader.fill()?;
        let mut i = 0;
        if self.reader.skipping {
            i = self.reader.skip();
        }
        if !self.reader.done {
            i = self.read_lines(i)?;
        }
        let r = &mut self.reader;
        r.buf.copy_within(i..r.valid, 0);
        r.buf_offset += i as u64;
        r.valid -= i;
        if r.eof && r.valid == 0 {
            r.done = true;
        }
        if !r.done && r.valid > MAX_LINE_BYTES + 2 {
            // A line longer than the limit: the row-by-row reader reports it.
            return Err(GiveUp);
        }
        Ok(read)
    }

    /// Reads the complete lines of the buffer from `i`; returns where the first line not
    /// read starts.
    fn read_lines(&mut self, mut i: usize) -> Result<usize, GiveUp> {
        let r = &mut self.reader;
        let valid = r.valid;
        let data = &r.buf[..valid + PAD];
        // Rows are parsed a batch at a time and then their ids looked up, so that the
        // lookups (cache misses, mostly) overlap one another.
        let mut batch: Vec<Fields<'_>> = Vec::with_capacity(BATCH);
        loop {
            if r.buf_offset + i as u64 >= r.end {
                r.done = true;
                break;
            }
            let (fields, next) = match row(data, i) {
                Some((fields, next)) if next <= valid => (Some(fields), next),
                _ => {
                    let next = match data[i..valid].iter().position(|&b| b == b'\n') {
                        Some(j) => i + j + 1,
                        None if r.eof && i < valid => valid,
                        None => break,
                    };
                    (general_line(&data[i..next])?, next)
                }
            };
            if let Some(f) = fields {
                batch.push(f);
                if batch.len() == BATCH {
                    self.ids.add(&batch, &mut self.sessions)?;
                    batch.clear();
                }
            }
            r.lines += 1;
            r.bytes += (next - i) as u64;
            i = next;
        }
        self.ids.add(&batch, &mut self.sessions)?;
        Ok(i)
    }
}

/// Rows parsed before their ids are looked up.
const BATCH: usize = 64;

/// The ids of a part, numbered in order of first appearance, and the range of its start
/// steps.
#[derive(Default)]
pub(super) struct PartIds {
    /// Users.
    pub users: IdTable,
    /// Streamers.
    pub streamers: IdTable,
    /// The smallest and the largest start step (`(u32::MAX, 0)` without sessions).
    pub starts: (u32, u32),
}

impl PartIds {
    /// Appends the sessions of `rows` to `sessions`.
    fn add(&mut self, rows: &[Fields<'_>], sessions: &mut Vec<Session>) -> Result<(), GiveUp> {
        let mut hashes = [(None, None); BATCH];
        for (h, f) in hashes.iter_mut().zip(rows) {
            *h = (
                self.users.prefetch(f.user),
                self.streamers.prefetch(f.streamer),
            );
        }
        for (f, &(user_hash, streamer_hash)) in rows.iter().zip(&hashes) {
            let start = u32::try_from(f.start).map_err(|_| GiveUp)?;
            self.starts = (self.starts.0.min(start), self.starts.1.max(start));
            let user = self.users.intern_hashed(f.user, user_hash).ok_or(GiveUp)?;
            let streamer = (self.streamers)
                .intern_hashed(f.streamer, streamer_hash)
                .ok_or(GiveUp)?;
            sessions.push(Session {
                user,
                streamer,
                start,
                stop: u32::try_from(f.stop).map_err(|_| GiveUp)?,
            });
        }
        Ok(())
    }
}

impl PartReader {
    /// Reads the next bytes after those held (a few past the part's end); returns how
    /// many.
    fn fill(&mut self) -> Result<usize, GiveUp> {
        let want = match self.end.checked_sub(self.next_read) {
            Some(left) if left > 0 => usize::try_from(left).map_or(READ, |l| l.min(READ)),
            _ => TAIL_READ,
        };
        let room = self.buf.len() - PAD - self.valid;
        let target = &mut self.buf[self.valid..self.valid + want.min(room)];
        let mut got = 0;
        while got < target.len() {
            match self.file.read(&mut target[got..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(GiveUp),
            }
        }
        self.valid += got;
        self.next_read += got as u64;
        Ok(got)
    }

    /// Drops the bytes before the part's first line (the end of the previous part's last
    /// line); returns how many of the held bytes to drop.
    fn skip(&mut self) -> usize {
        match self.buf[..self.valid].iter().position(|&b| b == b'\n') {
            Some(j) => {
                self.skipping = false;
                if self.buf_offset + j as u64 + 1 >= self.end {
                    self.done = true;
                }
                j + 1
            }
            None => {
                if self.eof || self.buf_offset + self.valid as u64 >= self.end {
                    self.done = true;
                }
                self.valid
            }
        }
    }
}
