//! Building the [`Dataset`] from the parts of a scanned Twitch file, in parallel.
//!
//! The parts' id tables are merged in part order, so that users and streamers are
//! numbered in order of first appearance in the file; then the events and the live
//! schedule ([`super::group`]), the authors and the interners are built side by side.
//!
//! The result is what [`crate::DatasetBuilder::build`] gives for the same rows pushed one
//! by one.

use std::path::PathBuf;

use rayon::prelude::*;

use super::group::{Ids, Remap, group};
use super::id_table::IdTable;
use super::scan::Part;
use crate::author::Author;
use crate::dataset::{Dataset, DatasetBuilder, GroupedParts};
use crate::ids::{ExternalId, Interner};

/// The dataset of the scanned `parts`; `None` when ids overflow `u32` (the row-by-row
/// reader then fails the same way).
pub(super) fn assemble(parts: Vec<Part>, root: Option<PathBuf>) -> Option<Dataset> {
    let total: usize = parts.iter().map(|p| p.sessions.len()).sum();
    if total == 0 {
        return Some(DatasetBuilder::default().build(root));
    }
    let starts = parts.iter().fold((u32::MAX, 0), |(min, max), p| {
        (min.min(p.ids.starts.0), max.max(p.ids.starts.1))
    });
    let mut users = Vec::with_capacity(parts.len());
    let mut streamers = Vec::with_capacity(parts.len());
    let mut sessions = Vec::with_capacity(parts.len());
    for part in parts {
        users.push(part.ids.users);
        streamers.push(part.ids.streamers);
        sessions.push(part.sessions);
    }
    let (users, streamers) = rayon::join(|| merge(users), || merge(streamers));
    let ((users, user_remaps), (streamers, streamer_remaps)) = (users?, streamers?);
    let ids = Ids {
        n_users: users.len(),
        n_streamers: streamers.len(),
        users: &user_remaps,
        streamers: &streamer_remaps,
    };
    let interners = || rayon::join(|| interner(&users), || interner(&streamers));
    let (grouped, ((user_ids, author_ids), authors)) = rayon::join(
        || group(sessions, &ids, starts),
        || rayon::join(interners, || authors(&streamers)),
    );
    Some(Dataset::from_grouped(GroupedParts {
        root,
        authors: authors?,
        author_ids: author_ids?,
        user_ids: user_ids?,
        events: grouped.events,
        user_offsets: grouped.user_offsets,
        live: Some(grouped.live),
    }))
}

/// Merges the tables of the parts in order: the first one, extended by the ids of the
/// others, and each table's remap to it.
fn merge(tables: Vec<IdTable>) -> Option<(IdTable, Vec<Remap>)> {
    let mut tables = tables.into_iter();
    let mut global = tables.next()?;
    let mut remaps = vec![None];
    for table in tables {
        let remap = (0..table.len())
            .map(|i| global.intern(table.key(i)))
            .collect::<Option<Vec<u32>>>()?;
        remaps.push(Some(remap));
    }
    Some((global, remaps))
}

/// The interner of a table's ids.
fn interner(table: &IdTable) -> Option<Interner> {
    Interner::from_unique(table.externals()?)
}

/// The bare authors of the streamers.
fn authors(streamers: &IdTable) -> Option<Vec<Author>> {
    let ids = streamers.externals()?;
    Some(
        ids.into_par_iter()
            .with_min_len(1024)
            .map(bare_author)
            .collect(),
    )
}

/// [`Author::bare`], with the name of an integer id written by `i64::to_string` (which
/// skips the formatting machinery `ExternalId`'s `Display` goes through).
fn bare_author(id: ExternalId) -> Author {
    let name = match &id {
        ExternalId::Int(v) => v.to_string(),
        ExternalId::Str(s) => s.clone(),
    };
    Author {
        id,
        name,
        title: String::new(),
        description: String::new(),
        frames: Vec::new(),
        audio: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_authors_are_author_bare() {
        for id in [
            ExternalId::Int(0),
            ExternalId::Int(-7),
            ExternalId::Int(i64::MAX),
            ExternalId::from("ninja"),
        ] {
            assert_eq!(bare_author(id.clone()), Author::bare(id));
        }
    }
}
