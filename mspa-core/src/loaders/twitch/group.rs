//! Grouping the sessions of a scanned Twitch file: into the events grouped by user and
//! sorted by time, and into the merged live intervals of each streamer.
//!
//! Both are a radix sort whose buckets fit in a core's cache. Each part, on its own
//! thread, first maps its ids to global ones and counts its sessions per bucket of
//! consecutive ids, then places its sessions into its own share of every bucket, so that
//! each bucket holds its sessions in file order. Each bucket is then sorted on its own, in
//! parallel, by start step (a counting sort, when the steps span a narrow range, as
//! 10-minute steps of a few weeks do) and by id, and written out.

use std::ops::Range;

use rayon::prelude::*;

use super::STEP_MS;
use super::scan::Session;
use crate::event::TipEvent;
use crate::ids::{AuthorId, UserId};
use crate::live::{LiveSchedule, merge_sorted};

/// Sessions a bucket holds on average.
const BUCKET_SESSIONS: usize = 8 << 10;

/// Widest range of start steps sorted by counting (a few times a bucket's sessions).
const MAX_STEP_RANGE: u32 = 4 * BUCKET_SESSIONS as u32;

/// A placeholder event, overwritten before it is read.
const EMPTY_EVENT: TipEvent = TipEvent {
    user: UserId(0),
    author: AuthorId(0),
    amount: 0.0,
    timestamp_ms: 0,
};

/// Local to global ids of one part: `None` when they are the same.
pub(super) type Remap = Option<Vec<u32>>;

/// A session placed by streamer: streamer, start step, stop step.
type ByStreamer = [u32; 3];

/// The sessions of a file, grouped.
pub(super) struct Grouped {
    /// The events, grouped by user, each user's sorted by time, ties in file order.
    pub events: Vec<TipEvent>,
    /// The CSR row pointer of `events` by user.
    pub user_offsets: Vec<usize>,
    /// Each streamer's sessions as merged live intervals.
    pub live: LiveSchedule,
}

/// The ids of a file and the maps of each part's ids to them.
pub(super) struct Ids<'a> {
    /// Number of users.
    pub n_users: usize,
    /// Number of streamers.
    pub n_streamers: usize,
    /// Each part's local to global user ids.
    pub users: &'a [Remap],
    /// Each part's local to global streamer ids.
    pub streamers: &'a [Remap],
}

/// Groups the sessions of the `parts` (each in file order, with part-local ids) whose
/// start steps range over `starts`.
pub(super) fn group(mut parts: Vec<Vec<Session>>, ids: &Ids<'_>, starts: (u32, u32)) -> Grouped {
    let total = parts.iter().map(Vec::len).sum();
    let user_buckets = Buckets::new(ids.n_users, total);
    let streamer_buckets = Buckets::new(ids.n_streamers, total);
    // Global ids, and each part's sessions per bucket.
    let counts: Vec<(Vec<usize>, Vec<usize>)> = parts
        .par_iter_mut()
        .zip(ids.users)
        .zip(ids.streamers)
        .map(|((part, users), streamers)| {
            let mut by_user = vec![0; user_buckets.len()];
            let mut by_streamer = vec![0; streamer_buckets.len()];
            for s in part.iter_mut() {
                if let Some(users) = users {
                    s.user = users[s.user as usize];
                }
                if let Some(streamers) = streamers {
                    s.streamer = streamers[s.streamer as usize];
                }
                by_user[user_buckets.of(s.user)] += 1;
                by_streamer[streamer_buckets.of(s.streamer)] += 1;
            }
            (by_user, by_streamer)
        })
        .collect();
    let (user_counts, streamer_counts): (Vec<_>, Vec<_>) = counts.into_iter().unzip();
    let mut events = Vec::with_capacity(total);
    events.par_extend(rayon::iter::repeat_n(EMPTY_EVENT, total));
    let mut by_streamer: Vec<ByStreamer> = vec![[0; 3]; total];
    let user_shares = shares(&mut events, &user_counts);
    let streamer_shares = shares(&mut by_streamer, &streamer_counts);
    parts
        .par_iter()
        .zip(user_shares)
        .zip(streamer_shares)
        .for_each(|((part, mut to_users), mut to_streamers)| {
            let mut next_user = vec![0; to_users.len()];
            let mut next_streamer = vec![0; to_streamers.len()];
            for s in part {
                let b = user_buckets.of(s.user);
                to_users[b][next_user[b]] = TipEvent {
                    user: UserId(s.user),
                    author: AuthorId(s.streamer),
                    amount: f64::from(s.stop - s.start),
                    timestamp_ms: i64::from(s.start) * STEP_MS,
                };
                next_user[b] += 1;
                let b = streamer_buckets.of(s.streamer);
                to_streamers[b][next_streamer[b]] = [s.streamer, s.start, s.stop];
                next_streamer[b] += 1;
            }
        });
    drop(parts);
    let steps = Steps::of(starts);
    let (user_offsets, live) = rayon::join(
        || sort_events(&mut events, &user_buckets, &user_counts, steps),
        || live_by_streamer(&by_streamer, &streamer_buckets, &streamer_counts, steps),
    );
    Grouped {
        events,
        user_offsets,
        live,
    }
}

/// Each part's share of every bucket of `items`: `counts[part][bucket]` items each, the
/// buckets in order and, within a bucket, the parts in order.
fn shares<'a, T>(mut items: &'a mut [T], counts: &[Vec<usize>]) -> Vec<Vec<&'a mut [T]>> {
    let n_buckets = counts.first().map_or(0, Vec::len);
    let mut out: Vec<Vec<&mut [T]>> = counts
        .iter()
        .map(|_| Vec::with_capacity(n_buckets))
        .collect();
    for b in 0..n_buckets {
        for (share, part) in out.iter_mut().zip(counts) {
            let (head, rest) = std::mem::take(&mut items).split_at_mut(part[b]);
            share.push(head);
            items = rest;
        }
    }
    out
}

/// The number of items of each bucket, summed over the parts.
fn bucket_sizes(counts: &[Vec<usize>]) -> Vec<usize> {
    let n_buckets = counts.first().map_or(0, Vec::len);
    (0..n_buckets)
        .map(|b| counts.iter().map(|c| c[b]).sum())
        .collect()
}

/// `items` cut into consecutive slices of `sizes`.
fn cut<T>(mut items: &mut [T], sizes: impl IntoIterator<Item = usize>) -> Vec<&mut [T]> {
    sizes
        .into_iter()
        .map(|n| {
            let (head, rest) = std::mem::take(&mut items).split_at_mut(n);
            items = rest;
            head
        })
        .collect()
}

/// Sorts the events placed by user bucket (each bucket in file order) by user, each
/// user's by time with ties in file order; returns their row pointer by user.
fn sort_events(
    events: &mut [TipEvent],
    buckets: &Buckets,
    counts: &[Vec<usize>],
    steps: Option<Steps>,
) -> Vec<usize> {
    let sizes = bucket_sizes(counts);
    let mut offsets = vec![0; buckets.n_ids + 1];
    offsets[buckets.n_ids] = events.len();
    let slices = cut(events, sizes.iter().copied());
    let pointers = cut(&mut offsets, buckets.ids().map(|ids| ids.len()));
    let mut base = 0;
    let tasks: Vec<_> = (slices.into_iter().zip(pointers).zip(buckets.ids()))
        .map(|((slice, pointers), ids)| {
            let start = base;
            base += slice.len();
            (slice, pointers, ids.start, start)
        })
        .collect();
    tasks.into_par_iter().for_each_init(
        Scratch::default,
        |scratch, (slice, pointers, first, base)| {
            let user = |e: &TipEvent| e.user.index() - first;
            scratch.start_bucket(slice, user, pointers.len());
            for (p, &n) in pointers.iter_mut().zip(&scratch.next) {
                *p = base + n;
            }
            match steps {
                Some(steps) => {
                    // By start, then by user: each user's events end up in time order.
                    let start = |e: &TipEvent| (e.timestamp_ms / STEP_MS) as u32;
                    steps.sort(slice, start, &mut scratch.counts, &mut scratch.events);
                    place(&scratch.events, user, |e| *e, &mut scratch.next, slice);
                }
                None => {
                    scratch.events.clear();
                    scratch.events.extend_from_slice(slice);
                    place(&scratch.events, user, |e| *e, &mut scratch.next, slice);
                    // `next` now holds where each user's events end.
                    let mut start = 0;
                    for &end in &scratch.next {
                        let group = &mut slice[start..end];
                        sort_by_time(group, &mut scratch.keys, &mut scratch.events);
                        start = end;
                    }
                }
            }
        },
    );
    offsets
}

/// The live schedule of the sessions placed by streamer bucket: each streamer's sessions
/// as intervals, merged.
fn live_by_streamer(
    placed: &[ByStreamer],
    buckets: &Buckets,
    counts: &[Vec<usize>],
    steps: Option<Steps>,
) -> LiveSchedule {
    let sizes = bucket_sizes(counts);
    // Each bucket writes its merged intervals at the start of its sessions' range (they
    // are no more than its sessions), and the ranges are closed up afterwards.
    let mut merged = vec![(0i64, 0i64); placed.len()];
    let mut per_streamer = vec![0usize; buckets.n_ids];
    let mut input = placed;
    let mut tasks = Vec::with_capacity(sizes.len());
    let outputs = cut(&mut merged, sizes.iter().copied());
    let lengths = cut(&mut per_streamer, buckets.ids().map(|ids| ids.len()));
    for (((&size, out), lengths), ids) in sizes.iter().zip(outputs).zip(lengths).zip(buckets.ids())
    {
        let (sessions, rest) = input.split_at(size);
        tasks.push((sessions, out, lengths, ids.start));
        input = rest;
    }
    let written: Vec<usize> = tasks
        .into_par_iter()
        .map_init(
            Scratch::default,
            |scratch, (sessions, out, lengths, first)| {
                let streamer = |s: &ByStreamer| s[0] as usize - first;
                scratch.start_bucket(sessions, streamer, lengths.len());
                let grouped = &mut scratch.grouped;
                grouped.clear();
                grouped.resize(sessions.len(), [0; 3]);
                match steps {
                    Some(steps) => {
                        steps.sort(
                            sessions,
                            |s| s[1],
                            &mut scratch.counts,
                            &mut scratch.by_start,
                        );
                        place(
                            &scratch.by_start,
                            streamer,
                            |s| *s,
                            &mut scratch.next,
                            grouped,
                        );
                    }
                    None => place(sessions, streamer, |s| *s, &mut scratch.next, grouped),
                }
                // `next` now holds where each streamer's sessions end.
                let (mut start, mut written) = (0, 0);
                for (len, &end) in lengths.iter_mut().zip(&scratch.next) {
                    let group = &mut grouped[start..end];
                    start = end;
                    if steps.is_none() {
                        group.sort_unstable_by_key(|s| s[1]);
                    }
                    let intervals = group.iter().map(|&[_, start, stop]| {
                        // On air for the session's steps (`stop` is exclusive).
                        let start_ms = i64::from(start) * STEP_MS;
                        (start_ms, start_ms.max(i64::from(stop) * STEP_MS - 1))
                    });
                    let own = merge_sorted(intervals, &mut scratch.merged);
                    out[written..written + own.len()].copy_from_slice(own);
                    written += own.len();
                    *len = own.len();
                }
                written
            },
        )
        .collect();
    let (mut read, mut write) = (0, 0);
    for (&size, &n) in sizes.iter().zip(&written) {
        merged.copy_within(read..read + n, write);
        read += size;
        write += n;
    }
    merged.truncate(write);
    merged.shrink_to_fit();
    let mut offsets = Vec::with_capacity(buckets.n_ids + 1);
    offsets.push(0);
    let mut sum = 0;
    offsets.extend(per_streamer.iter().map(|&n| {
        sum += n;
        sum
    }));
    LiveSchedule::from_grouped(offsets, merged)
}

/// Buckets of `2^shift` consecutive ids, of about [`BUCKET_SESSIONS`] sessions.
struct Buckets {
    shift: u32,
    n_ids: usize,
}

impl Buckets {
    /// Buckets for `n_ids` ids with `total` sessions among them.
    fn new(n_ids: usize, total: usize) -> Self {
        let per_id = total.div_ceil(n_ids.max(1)).max(1);
        Buckets {
            shift: (BUCKET_SESSIONS / per_id).max(1).ilog2(),
            n_ids,
        }
    }

    #[inline]
    fn of(&self, id: u32) -> usize {
        (id >> self.shift) as usize
    }

    fn len(&self) -> usize {
        self.n_ids.div_ceil(1 << self.shift)
    }

    /// The ids of each bucket.
    fn ids(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..self.len()).map(|b| b << self.shift..((b + 1) << self.shift).min(self.n_ids))
    }
}

/// Start steps in `min..min + len`, few enough to sort by counting.
#[derive(Clone, Copy, Debug)]
struct Steps {
    min: u32,
    len: usize,
}

impl Steps {
    /// The start steps from `min` to `max`, if few enough to sort by counting.
    fn of((min, max): (u32, u32)) -> Option<Steps> {
        let width = max.checked_sub(min)?;
        (width <= MAX_STEP_RANGE).then_some(Steps {
            min,
            len: width as usize + 1,
        })
    }

    /// `items` ordered stably by start step into `out`; `counts` is working space.
    fn sort<T: Copy>(
        self,
        items: &[T],
        start: impl Fn(&T) -> u32,
        counts: &mut Vec<usize>,
        out: &mut Vec<T>,
    ) {
        counts.clear();
        counts.resize(self.len, 0);
        for item in items {
            counts[(start(item) - self.min) as usize] += 1;
        }
        let mut sum = 0;
        for c in counts.iter_mut() {
            (*c, sum) = (sum, sum + *c);
        }
        out.clear();
        out.extend_from_slice(items);
        for item in items {
            let slot = &mut counts[(start(item) - self.min) as usize];
            out[*slot] = *item;
            *slot += 1;
        }
    }
}

/// Working space of a bucket task.
#[derive(Default)]
struct Scratch {
    next: Vec<usize>,
    counts: Vec<usize>,
    events: Vec<TipEvent>,
    keys: Vec<u64>,
    by_start: Vec<ByStreamer>,
    grouped: Vec<ByStreamer>,
    merged: Vec<(i64, i64)>,
}

impl Scratch {
    /// Sets `next` to where each of the `n_ids` ids of a bucket starts among the bucket's
    /// `items`, given the id (from 0) of each.
    fn start_bucket<T>(&mut self, items: &[T], id: impl Fn(&T) -> usize, n_ids: usize) {
        self.next.clear();
        self.next.resize(n_ids, 0);
        for item in items {
            self.next[id(item)] += 1;
        }
        let mut sum = 0;
        for n in self.next.iter_mut() {
            (*n, sum) = (sum, sum + *n);
        }
    }
}

/// Places `items` into `out` (as long) by group, stably, as `write(item)`: group
/// `key(item)` starts at `next[key(item)]`, which ends where the group ends.
fn place<T, U>(
    items: &[T],
    key: impl Fn(&T) -> usize,
    write: impl Fn(&T) -> U,
    next: &mut [usize],
    out: &mut [U],
) {
    for item in items {
        let slot = &mut next[key(item)];
        out[*slot] = write(item);
        *slot += 1;
    }
}

/// Sorts one user's events by time, ties in their current order (as a stable sort does),
/// through keys of the start step and the position.
fn sort_by_time(group: &mut [TipEvent], keys: &mut Vec<u64>, copy: &mut Vec<TipEvent>) {
    if group.is_sorted_by_key(|e| e.timestamp_ms) {
        return;
    }
    keys.clear();
    keys.extend(
        group
            .iter()
            .enumerate()
            .map(|(i, e)| ((e.timestamp_ms / STEP_MS) as u64) << 32 | i as u64),
    );
    keys.sort_unstable();
    copy.clear();
    copy.extend_from_slice(group);
    for (e, &k) in group.iter_mut().zip(keys.iter()) {
        *e = copy[k as u32 as usize];
    }
}
