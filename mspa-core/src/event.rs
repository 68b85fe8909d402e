//! Tip events.

use serde::{Deserialize, Serialize};

use crate::ids::{AuthorId, UserId};

/// Milliseconds in a day (event times are milliseconds since the Unix epoch).
pub const DAY_MS: f64 = 86_400_000.0;

/// One tip (or, for implicit datasets, one interaction with a strength): `user` gave
/// `amount` to `author` at `timestamp_ms` (milliseconds since the Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TipEvent {
    /// Who tipped.
    pub user: UserId,
    /// Who was tipped.
    pub author: AuthorId,
    /// How much (finite, non-negative).
    pub amount: f64,
    /// When, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}
