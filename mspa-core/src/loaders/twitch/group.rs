//! Grouping the sessions of a scanned Twitch file: into the events grouped by user and
//! sorted by time, and into the merged live intervals of each streamer.
//!
//! Both are a radix sort whose buckets fit in a core's cache: one pass places the
//! sessions into buckets of consecutive ids (file order kept), then each bucket is sorted
//! on its own, in parallel, by start step (a counting sort, when the steps span a narrow
//! range, as 10-minute steps of a few weeks do) and then by id.

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

/// The sessions of all parts, with the maps of each part's ids to global ids.
pub(super) struct Sessions<'a> {
    /// Each part's sessions, in file order.
    pub parts: &'a [Vec<Session>],
    /// Each part's local to global user ids (`None`: the same).
    pub users: &'a [Option<Vec<u32>>],
    /// Each part's local to global streamer ids (`None`: the same).
    pub streamers: &'a [Option<Vec<u32>>],
}

impl Sessions<'_> {
    /// Calls `f(user, streamer, session)` with global ids for every session, in file order.
    fn for_each(&self, mut f: impl FnMut(u32, u32, &Session)) {
        let global = |remap: &Option<Vec<u32>>, local: u32| match remap {
            Some(r) => r[local as usize],
            None => local,
        };
        for ((part, u), a) in self.parts.iter().zip(self.users).zip(self.streamers) {
            match (u, a) {
                (Some(u), Some(a)) => {
                    for s in part {
                        f(u[s.user as usize], a[s.streamer as usize], s);
                    }
                }
                _ => {
                    for s in part {
                        f(global(u, s.user), global(a, s.streamer), s);
                    }
                }
            }
        }
    }
}

/// The events, placed by bucket of users in file order (`offsets` is the CSR row pointer
/// of the events by user); [`sort_events`] then sorts each bucket.
pub(super) fn place_events(sessions: &Sessions<'_>, offsets: &[usize]) -> Vec<TipEvent> {
    const EMPTY: TipEvent = TipEvent {
        user: UserId(0),
        author: AuthorId(0),
        amount: 0.0,
        timestamp_ms: 0,
    };
    let buckets = Buckets::new(offsets);
    let total = offsets[offsets.len() - 1];
    let mut events = Vec::with_capacity(total);
    events.par_extend(rayon::iter::repeat_n(EMPTY, total));
    let mut next = buckets.starts(offsets);
    sessions.for_each(|user, author, s| {
        let slot = &mut next[buckets.of(user)];
        events[*slot] = TipEvent {
            user: UserId(user),
            author: AuthorId(author),
            amount: f64::from(s.stop - s.start),
            timestamp_ms: i64::from(s.start) * STEP_MS,
        };
        *slot += 1;
    });
    events
}

/// Groups the placed events by user, each user's sorted by time, ties in file order.
pub(super) fn sort_events(events: &mut [TipEvent], offsets: &[usize], starts: (u32, u32)) {
    let buckets = Buckets::new(offsets);
    let steps = Steps::of(starts);
    buckets
        .split(events, offsets)
        .into_par_iter()
        .for_each_init(Scratch::default, |scratch, (ids, slice)| {
            let base = scratch.start_bucket(offsets, &ids);
            let user = |e: &TipEvent| e.user.index() - ids.start;
            match steps {
                Some(steps) => {
                    // By start, then by user: each user's events end up in time order.
                    let start = |e: &TipEvent| (e.timestamp_ms / STEP_MS) as u32;
                    steps.sort(slice, start, &mut scratch.counts, &mut scratch.events);
                    place(&scratch.events, user, &mut scratch.next, slice);
                }
                None => {
                    scratch.events.clear();
                    scratch.events.extend_from_slice(slice);
                    place(slice, user, &mut scratch.next, &mut scratch.events);
                    slice.copy_from_slice(&scratch.events);
                    for u in ids {
                        let group = &mut slice[offsets[u] - base..offsets[u + 1] - base];
                        sort_by_time(group, &mut scratch.keys, &mut scratch.events);
                    }
                }
            }
        });
}

/// The live schedule: each streamer's sessions as intervals, merged (`offsets` is the CSR
/// row pointer of the sessions by streamer).
pub(super) fn live_by_streamer(
    sessions: &Sessions<'_>,
    offsets: &[usize],
    starts: (u32, u32),
) -> LiveSchedule {
    let buckets = Buckets::new(offsets);
    let total = offsets[offsets.len() - 1];
    // Streamer, start step, stop step; the order within a bucket does not matter.
    let mut placed = vec![[0u32; 3]; total];
    let mut next = buckets.starts(offsets);
    sessions.for_each(|_, streamer, s| {
        let slot = &mut next[buckets.of(streamer)];
        placed[*slot] = [streamer, s.start, s.stop];
        *slot += 1;
    });
    let steps = Steps::of(starts);
    let per_bucket: Vec<Vec<Vec<(i64, i64)>>> = buckets
        .split(&mut placed, offsets)
        .into_par_iter()
        .map_init(Scratch::default, |scratch, (ids, slice)| {
            let base = scratch.start_bucket(offsets, &ids);
            let streamer = |p: &[u32; 3]| p[0] as usize - ids.start;
            let grouped = &mut scratch.grouped;
            grouped.clear();
            grouped.extend_from_slice(slice);
            match steps {
                Some(steps) => {
                    steps.sort(slice, |p| p[1], &mut scratch.counts, &mut scratch.by_start);
                    place(&scratch.by_start, streamer, &mut scratch.next, grouped);
                }
                None => place(slice, streamer, &mut scratch.next, grouped),
            }
            ids.map(|a| {
                let group = &mut scratch.grouped[offsets[a] - base..offsets[a + 1] - base];
                if steps.is_none() {
                    group.sort_unstable_by_key(|p| p[1]);
                }
                let intervals = group.iter().map(|&[_, start, stop]| {
                    // On air for the session's steps (`stop` is exclusive).
                    let start_ms = i64::from(start) * STEP_MS;
                    (start_ms, start_ms.max(i64::from(stop) * STEP_MS - 1))
                });
                merge_sorted(intervals, &mut scratch.merged)
            })
            .collect()
        })
        .collect();
    LiveSchedule::from_merged(per_bucket.into_iter().flatten().collect())
}

/// Buckets of `2^shift` consecutive ids, of about [`BUCKET_SESSIONS`] sessions.
struct Buckets {
    shift: u32,
    n_ids: usize,
}

impl Buckets {
    /// Buckets for ids whose sessions have the CSR row pointer `offsets`.
    fn new(offsets: &[usize]) -> Self {
        let n_ids = offsets.len() - 1;
        let per_id = offsets[n_ids].div_ceil(n_ids.max(1)).max(1);
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

    /// Where each bucket starts among the sessions.
    fn starts(&self, offsets: &[usize]) -> Vec<usize> {
        self.ids().map(|ids| offsets[ids.start]).collect()
    }

    /// `items`, cut into the buckets' slices, with their ids.
    fn split<'a, T>(
        &self,
        items: &'a mut [T],
        offsets: &[usize],
    ) -> Vec<(Range<usize>, &'a mut [T])> {
        let mut out = Vec::new();
        let mut rest = items;
        for ids in self.ids() {
            let (slice, tail) = rest.split_at_mut(offsets[ids.end] - offsets[ids.start]);
            out.push((ids, slice));
            rest = tail;
        }
        out
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
    by_start: Vec<[u32; 3]>,
    grouped: Vec<[u32; 3]>,
    merged: Vec<(i64, i64)>,
}

impl Scratch {
    /// Sets `next` to where each id of the bucket `ids` starts, relative to the
    /// bucket's first item; returns that item's position.
    fn start_bucket(&mut self, offsets: &[usize], ids: &Range<usize>) -> usize {
        let base = offsets[ids.start];
        self.next.clear();
        self.next
            .extend(offsets[ids.clone()].iter().map(|&o| o - base));
        base
    }
}

/// Places `items` into `out` (as long) by group, stably: group `key(item)` starts at
/// `next[key(item)]`.
fn place<T: Copy>(items: &[T], key: impl Fn(&T) -> usize, next: &mut [usize], out: &mut [T]) {
    for item in items {
        let slot = &mut next[key(item)];
        out[*slot] = *item;
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
