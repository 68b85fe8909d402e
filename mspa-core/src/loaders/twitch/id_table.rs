//! Interning the raw id fields of a data file: integer and string ids to dense `u32`
//! indices in order of first appearance.
//!
//! This is the loaders' fast counterpart of [`crate::Interner`]: keys are looked up
//! without allocating (strings by their bytes, kept once in an arena), small
//! non-negative integers (the usual user and streamer numbers) through a direct index of
//! four bytes per value, and everything else through an open-addressing table with the
//! seeded hash of [`IdHashState`]. A key is an [`ExternalId`] in raw form: the caller
//! decides, with [`crate::ids::canonical_int`], whether a field is an integer id.

use crate::ids::{ExternalId, IdHashState};

/// An id as read from a file, not yet interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawId<'a> {
    /// [`ExternalId::Int`].
    Int(i64),
    /// [`ExternalId::Str`], as UTF-8 bytes.
    Str(&'a [u8]),
}

/// Where an interned id's key is.
#[derive(Clone, Copy, Debug)]
enum Key {
    Int(i64),
    /// A range of [`IdTable::text`].
    Str(usize, usize),
}

/// String keys up to this many bytes are kept in their slot as well, so that a lookup
/// reads one cache line (Twitch logins have 4 to 25 characters).
const INLINE: usize = 20;

/// One slot of the open-addressing table: the id plus one (0 for an empty slot), the low
/// half of the key's hash (which gives its home slot, so the table grows without hashing
/// again; compared before the key), and a string key of at most
/// [`INLINE`] bytes, zero-padded (`len` is its length; [`NOT_INLINE`] for other keys).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(32))]
struct Slot {
    id1: u32,
    tag: u32,
    len: u32,
    bytes: [u8; INLINE],
}

/// Asks the processor to load the cache line of `slot` (a hint; no effect elsewhere).
#[inline(always)]
fn prefetch_line(slot: &Slot) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE is part of every x86_64 target, and a prefetch only hints the cache:
        // it reads nothing the program sees and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((slot as *const Slot).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

/// The home slot of a key whose hash has low half `tag`, in a table of `len` slots (a
/// power of two).
#[inline(always)]
fn home(tag: u32, len: usize) -> usize {
    tag as usize & len.wrapping_sub(1)
}

/// [`Slot::len`] of a key that is not stored in its slot.
const NOT_INLINE: u32 = u32::MAX;

/// A key as a slot stores it: the zero-padded bytes and the length of a short string key,
/// or [`NOT_INLINE`].
fn inline_form(key: RawId<'_>) -> (u32, [u8; INLINE]) {
    let mut bytes = [0u8; INLINE];
    match key {
        RawId::Str(s) if s.len() <= INLINE => {
            bytes[..s.len()].copy_from_slice(s);
            (s.len() as u32, bytes)
        }
        _ => (NOT_INLINE, bytes),
    }
}

/// Integers below this are looked up by direct index, when the index stays small next to
/// the number of ids (at most [`DENSE_PER_ID`] entries per id, or [`DENSE_MIN`]).
const DENSE_MAX: usize = 1 << 24;
const DENSE_MIN: usize = 1 << 16;
const DENSE_PER_ID: usize = 16;

/// Ids to dense indices in order of first appearance.
#[derive(Debug, Default)]
pub(crate) struct IdTable {
    hash: IdHashState,
    /// `dense[v]` is the id plus one of `Int(v)` (0 when not interned).
    dense: Vec<u32>,
    /// Open addressing with linear probing; the length is 0 or a power of two.
    slots: Vec<Slot>,
    /// Keys in `slots` (integers outside `dense`, and strings).
    hashed: usize,
    /// Integer keys in `slots`.
    hashed_ints: usize,
    /// The key of each id.
    keys: Vec<Key>,
    /// The bytes of the string keys.
    text: Vec<u8>,
}

impl IdTable {
    /// Number of ids.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key of id `i`.
    pub(crate) fn key(&self, i: usize) -> RawId<'_> {
        match self.keys[i] {
            Key::Int(v) => RawId::Int(v),
            Key::Str(a, b) => RawId::Str(&self.text[a..b]),
        }
    }

    /// The id of `key`, added if new; `None` when the ids would overflow `u32`.
    #[inline]
    pub(crate) fn intern(&mut self, key: RawId<'_>) -> Option<u32> {
        self.intern_hashed(key, None)
    }

    /// The hash of a key that is looked up in the hash table (`None` for an integer in
    /// the direct index), after asking the processor to bring its first slot into the
    /// cache: hashing a batch of keys first, then interning them with
    /// [`IdTable::intern_hashed`], overlaps the cache misses of their lookups.
    #[inline]
    pub(crate) fn prefetch(&self, key: RawId<'_>) -> Option<u64> {
        if let RawId::Int(v) = key
            && usize::try_from(v).is_ok_and(|i| i < self.dense.len())
        {
            return None;
        }
        let h = self.hash_of(key);
        if let Some(slot) = self.slots.get(home(h as u32, self.slots.len())) {
            prefetch_line(slot);
        }
        Some(h)
    }

    /// [`IdTable::intern`] with the key's hash if known (from [`IdTable::prefetch`]).
    #[inline]
    pub(crate) fn intern_hashed(&mut self, key: RawId<'_>, hash: Option<u64>) -> Option<u32> {
        if let RawId::Int(v) = key
            && let Some(&id1) = usize::try_from(v).ok().and_then(|i| self.dense.get(i))
            && id1 != 0
        {
            return Some(id1 - 1);
        }
        self.intern_slow(key, hash)
    }

    /// [`IdTable::intern`] for a key not in the direct index yet.
    #[inline(never)]
    fn intern_slow(&mut self, key: RawId<'_>, hash: Option<u64>) -> Option<u32> {
        if let RawId::Int(v) = key
            && let Some(i) = self.dense_index(v)
        {
            return match self.dense[i] {
                0 => {
                    let id = self.push(key)?;
                    self.dense[i] = id + 1;
                    Some(id)
                }
                id1 => Some(id1 - 1),
            };
        }
        if self.slots.is_empty() || (self.hashed + 1) * 2 > self.slots.len() {
            self.rebuild_slots((self.hashed + 1).max(8).next_power_of_two() * 2);
        }
        let tag = hash.unwrap_or_else(|| self.hash_of(key)) as u32;
        let mask = self.slots.len() - 1;
        let (len, bytes) = inline_form(key);
        let mut i = home(tag, self.slots.len());
        loop {
            let slot = &self.slots[i];
            if slot.id1 == 0 {
                let id = self.push(key)?;
                self.slots[i] = Slot {
                    id1: id + 1,
                    tag,
                    len,
                    bytes,
                };
                self.hashed += 1;
                self.hashed_ints += usize::from(matches!(key, RawId::Int(_)));
                return Some(id);
            }
            if slot.tag == tag {
                let same = if len == NOT_INLINE {
                    slot.len == NOT_INLINE && self.key(slot.id1 as usize - 1) == key
                } else {
                    slot.len == len && slot.bytes == bytes
                };
                if same {
                    return Some(slot.id1 - 1);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The external ids, in id order (string keys are UTF-8: the scanner takes ASCII only);
    /// `None` if a string key is not UTF-8.
    pub(crate) fn externals(&self) -> Option<Vec<ExternalId>> {
        (0..self.len())
            .map(|i| match self.key(i) {
                RawId::Int(v) => Some(ExternalId::Int(v)),
                RawId::Str(s) => std::str::from_utf8(s)
                    .ok()
                    .map(|s| ExternalId::Str(s.to_owned())),
            })
            .collect()
    }

    /// Adds `key` as the next id.
    fn push(&mut self, key: RawId<'_>) -> Option<u32> {
        let id = u32::try_from(self.keys.len())
            .ok()
            .filter(|&i| i < u32::MAX)?;
        self.keys.push(match key {
            RawId::Int(v) => Key::Int(v),
            RawId::Str(s) => {
                let start = self.text.len();
                self.text.extend_from_slice(s);
                Key::Str(start, self.text.len())
            }
        });
        Some(id)
    }

    /// The direct index of `Int(v)`, growing the index when it may; `None` when `v` is
    /// looked up through the hash table.
    fn dense_index(&mut self, v: i64) -> Option<usize> {
        let i = usize::try_from(v).ok()?;
        if i < self.dense.len() {
            return Some(i);
        }
        let allowed = DENSE_PER_ID
            .saturating_mul(self.keys.len() + 1)
            .clamp(DENSE_MIN, DENSE_MAX);
        if i >= allowed {
            return None;
        }
        // Grow by a quarter at least, so that the index stays close to the largest id.
        let want = (i + 1)
            .max(self.dense.len() + self.dense.len() / 4)
            .max(1024);
        self.dense.resize(want.min(allowed), 0);
        if self.hashed_ints > 0 {
            // Integers hashed before now belong to the direct index.
            self.rebuild_slots(self.slots.len());
        }
        Some(i)
    }

    fn hash_of(&self, key: RawId<'_>) -> u64 {
        match key {
            RawId::Int(v) => self.hash.hash_int(v),
            RawId::Str(s) => self.hash.hash_bytes(s),
        }
    }

    /// Re-places every hashed id that is not in the direct index into `len` slots.
    fn rebuild_slots(&mut self, len: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); len]);
        self.hashed = 0;
        self.hashed_ints = 0;
        let mask = len - 1;
        for slot in old.into_iter().filter(|s| s.id1 != 0) {
            if let Key::Int(v) = self.keys[slot.id1 as usize - 1] {
                if let Some(d) = usize::try_from(v).ok().filter(|&d| d < self.dense.len()) {
                    self.dense[d] = slot.id1;
                    continue;
                }
                self.hashed_ints += 1;
            }
            let mut i = home(slot.tag, len);
            while self.slots[i].id1 != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
            self.hashed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_first_appearance_order() {
        let mut t = IdTable::default();
        let keys = [
            RawId::Int(5),
            RawId::Str(b"ninja"),
            RawId::Int(-3),
            RawId::Int(5),
            RawId::Int(1 << 40),
            RawId::Str(b"ninja"),
            RawId::Str(b"5"),
        ];
        let ids: Vec<u32> = keys.iter().map(|&k| t.intern(k).expect("id")).collect();
        assert_eq!(ids, [0, 1, 2, 0, 3, 1, 4]);
        assert_eq!(t.key(3), RawId::Int(1 << 40));
        assert_eq!(
            t.externals().expect("utf-8")[1],
            ExternalId::Str("ninja".into())
        );
    }

    #[test]
    fn short_and_long_strings_keep_their_ids_as_the_table_grows() {
        // Lengths on both sides of the inline limit; prefixes of one another.
        let keys: Vec<Vec<u8>> = (0..5_000)
            .map(|i: usize| format!("{:0>w$}", i, w = 1 + i % (2 * INLINE)).into_bytes())
            .collect();
        let mut t = IdTable::default();
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(t.intern(RawId::Str(k)), Some(n as u32));
        }
        for (n, k) in keys.iter().enumerate() {
            let hash = t.prefetch(RawId::Str(k));
            assert!(hash.is_some());
            assert_eq!(t.intern_hashed(RawId::Str(k), hash), Some(n as u32));
            assert_eq!(t.key(n), RawId::Str(k));
        }
        assert_eq!(t.len(), keys.len());
        // Integers in the direct index need no hash.
        assert_eq!(t.intern(RawId::Int(3)), Some(keys.len() as u32));
        assert_eq!(t.prefetch(RawId::Int(3)), None);
    }

    #[test]
    fn integers_move_to_the_direct_index_as_it_grows() {
        let mut t = IdTable::default();
        // Large values are hashed while there are few ids, then migrate.
        let values: Vec<i64> = (0..20_000).map(|i| (i * 7919) % 200_000).collect();
        for (n, &v) in values.iter().enumerate() {
            assert_eq!(t.intern(RawId::Int(v)), Some(n as u32), "{v}");
        }
        for (n, &v) in values.iter().enumerate() {
            assert_eq!(t.intern(RawId::Int(v)), Some(n as u32), "{v}");
        }
        assert!(t.dense.len() >= 200_000);
        assert_eq!(t.hashed_ints, 0);
    }
}
