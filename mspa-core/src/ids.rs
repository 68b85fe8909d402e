//! Dense user and author indices, external ids, and the interner between them.

use std::collections::HashMap;
use std::fmt;

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
        if is_canonical_integer(s) {
            if let Ok(v) = s.parse::<i64>() {
                return ExternalId::Int(v);
            }
        }
        ExternalId::Str(s.to_string())
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
    index: HashMap<ExternalId, u32>,
}

impl Interner {
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
