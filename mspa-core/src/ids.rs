//! Dense user and author indices, external ids, and the interner between them.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};

use serde::{Deserialize, Serialize};

/// Dense index of a user in a [`crate::Dataset`] (0..n_users).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserId(pub u32);

/// Dense index of an author in a [`crate::Dataset`] (0..n_authors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AuthorId(pub u32);

impl UserId {
    /// The index as `usize`, for slicing.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl AuthorId {
    /// The index as `usize`, for slicing.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for AuthorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An id as the source data spells it: an integer or a string.
///
/// Ids are canonical: a string that is a plain decimal integer (`"42"`, `"-7"`, but not
/// `"007"` or `"+3"`) is the integer, so a JSON `42`, a JSON `"42"` and a CSV `42` are one
/// id.
///
/// ```
/// use mspa_core::ExternalId;
/// assert_eq!(ExternalId::parse("42"), ExternalId::Int(42));
/// assert_eq!(ExternalId::parse("007"), ExternalId::Str("007".into()));
/// assert_eq!(ExternalId::parse("ninja").to_string(), "ninja");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExternalId {
    /// An integer id.
    Int(i64),
    /// Any other id.
    Str(String),
}

impl ExternalId {
    /// Canonicalises a textual id (see the type's docs). Surrounding whitespace is kept:
    /// trim before calling if the source pads its fields.
    pub fn parse(s: &str) -> ExternalId {
        match canonical_int(s) {
            Some(v) => ExternalId::Int(v),
            None => ExternalId::Str(s.to_string()),
        }
    }
}

/// The integer `s` spells canonically (see [`ExternalId`]), or `None` when `s` is a string
/// id: `ExternalId::parse(s)` is `ExternalId::Int(v)` exactly when this is `Some(v)`.
pub(crate) fn canonical_int(s: &str) -> Option<i64> {
    if is_canonical_integer(s) {
        s.parse::<i64>().ok()
    } else {
        None
    }
}

fn is_canonical_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0"
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExternalId::Int(v) => write!(f, "{v}"),
            ExternalId::Str(s) => f.write_str(s),
        }
    }
}

impl From<i64> for ExternalId {
    fn from(v: i64) -> Self {
        ExternalId::Int(v)
    }
}

impl From<&str> for ExternalId {
    fn from(s: &str) -> Self {
        ExternalId::parse(s)
    }
}

/// A two-way map between external ids and dense `u32` indices, in insertion order.
///
/// ```
/// use mspa_core::{ExternalId, Interner};
/// let mut ids = Interner::default();
/// assert_eq!(ids.intern(ExternalId::from("ninja")), 0);
/// assert_eq!(ids.intern(ExternalId::Int(7)), 1);
/// assert_eq!(ids.intern(ExternalId::from("ninja")), 0);
/// assert_eq!(ids.get(&ExternalId::Int(7)), Some(1));
/// assert_eq!(ids.external(1), &ExternalId::Int(7));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Interner {
    externals: Vec<ExternalId>,
    index: HashMap<ExternalId, u32, IdHashState>,
}

impl Interner {
    /// An interner of `externals`, numbered in the order given; `None` if an id occurs
    /// twice or there are `u32::MAX` or more of them.
    pub(crate) fn from_unique(externals: Vec<ExternalId>) -> Option<Interner> {
        let mut index = HashMap::with_capacity_and_hasher(externals.len(), IdHashState::new());
        for (i, id) in externals.iter().enumerate() {
            let i = u32::try_from(i).ok().filter(|&i| i < u32::MAX)?;
            if index.insert(id.clone(), i).is_some() {
                return None;
            }
        }
        Some(Interner { externals, index })
    }

    /// The index of `id`, inserting it if new.
    pub fn intern(&mut self, id: ExternalId) -> u32 {
        if let Some(&i) = self.index.get(&id) {
            return i;
        }
        let i = u32::try_from(self.externals.len()).expect("more than u32::MAX ids");
        self.externals.push(id.clone());
        self.index.insert(id, i);
        i
    }

    /// The index of `id`, if known.
    pub fn get(&self, id: &ExternalId) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The external id of index `i`. Panics if `i` is out of range (an index is only ever
    /// handed out by this interner).
    pub fn external(&self, i: u32) -> &ExternalId {
        &self.externals[i as usize]
    }

    /// How many ids are interned.
    pub fn len(&self) -> usize {
        self.externals.len()
    }

    /// Whether no id is interned.
    pub fn is_empty(&self) -> bool {
        self.externals.is_empty()
    }

    /// All external ids, in index order.
    pub fn externals(&self) -> &[ExternalId] {
        &self.externals
    }
}

/// The hash of the id maps: a folded 64×64→128-bit multiply per 8 bytes of key (the
/// construction of `foldhash` and `ahash`'s fallback), seeded from the standard library's
/// random keys. It is several times faster than SipHash on the short ids of data files,
/// and the per-map random seed keeps a crafted file from choosing keys that collide.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdHashState {
    seed: u64,
}

impl IdHashState {
    /// A state with a fresh random seed.
    pub(crate) fn new() -> Self {
        IdHashState {
            seed: RandomState::new().hash_one(0x6d73_7061_u64),
        }
    }

    /// The hash of an integer key.
    #[inline]
    pub(crate) fn hash_int(&self, v: i64) -> u64 {
        fold_mul(fold_mul(self.seed ^ v as u64, MUL_A), MUL_B)
    }

    /// The hash of a byte-string key.
    #[inline]
    pub(crate) fn hash_bytes(&self, bytes: &[u8]) -> u64 {
        let mut h = IdHasher {
            state: self.seed ^ bytes.len() as u64,
        };
        h.write(bytes);
        h.finish()
    }
}

impl Default for IdHashState {
    fn default() -> Self {
        IdHashState::new()
    }
}

impl BuildHasher for IdHashState {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { state: self.seed }
    }
}

const MUL_A: u64 = 0x243f_6a88_85a3_08d3;
const MUL_B: u64 = 0x1319_8a2e_0370_7345;

/// The high and low halves of the 128-bit product, xored.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The [`Hasher`] of [`IdHashState`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdHasher {
    state: u64,
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.state = fold_mul(self.state ^ u64::from_le_bytes(word), MUL_A);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.state = fold_mul(self.state ^ u64::from_le_bytes(word), MUL_B);
        }
    }

    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.state = fold_mul(self.state ^ v, MUL_A);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }

    #[inline]
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }

    #[inline]
    fn write_isize(&mut self, v: isize) {
        self.write_u64(v as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(self.state, MUL_B)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_int_agrees_with_parse() {
        for s in [
            "0",
            "42",
            "-7",
            "007",
            "-0",
            "+3",
            "",
            "-",
            "9223372036854775808",
            "x1",
        ] {
            let parsed = ExternalId::parse(s);
            match canonical_int(s) {
                Some(v) => assert_eq!(parsed, ExternalId::Int(v), "{s}"),
                None => assert_eq!(parsed, ExternalId::Str(s.into()), "{s}"),
            }
        }
    }

    #[test]
    fn from_unique_numbers_in_order_and_refuses_duplicates() {
        let ids = vec![
            ExternalId::from("b"),
            ExternalId::Int(3),
            ExternalId::from("a"),
        ];
        let mut interner = Interner::from_unique(ids.clone()).expect("unique");
        assert_eq!(interner.externals(), &ids[..]);
        assert_eq!(interner.get(&ExternalId::from("a")), Some(2));
        assert_eq!(interner.get(&ExternalId::from("c")), None);
        for n in 10..1010 {
            assert_eq!(interner.intern(ExternalId::Int(n)), n as u32 - 7);
        }
        assert_eq!(interner.intern(ExternalId::from("b")), 0);
        assert_eq!(interner.intern(ExternalId::Int(3)), 1);
        assert_eq!(interner.get(&ExternalId::Int(1009)), Some(1002));
        assert_eq!(Interner::default().get(&ExternalId::Int(1)), None);
        assert!(Interner::from_unique(vec![ExternalId::Int(1), ExternalId::Int(1)]).is_none());
    }

    #[test]
    fn hashes_differ_between_keys_and_seeds() {
        let (a, b) = (IdHashState::new(), IdHashState::new());
        assert_ne!(a.hash_int(1), a.hash_int(2));
        assert_ne!(a.hash_bytes(b"ninja"), a.hash_bytes(b"ninjb"));
        assert_ne!(a.hash_bytes(b"ninja"), b.hash_bytes(b"ninja"));
    }
}
