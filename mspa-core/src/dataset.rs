//! The in-memory dataset: authors, users and a per-user, time-ordered event index (CSR).

use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use rayon::slice::ParallelSliceMut;

use crate::author::Author;
use crate::error::CoreError;
use crate::event::TipEvent;
use crate::ids::{AuthorId, ExternalId, Interner, UserId};
use crate::live::LiveSchedule;

/// Authors, users and their tip events.
///
/// Events are stored once, grouped by user and, within a user, ordered by time (ties keep
/// the order of the source file). `user_offsets` is the CSR row pointer: the events of user
/// `u` are `events[user_offsets[u]..user_offsets[u + 1]]`.
#[derive(Clone, Debug)]
pub struct Dataset {
    root: Option<PathBuf>,
    /// The canonical form of `root`, computed on first use (`None` when it cannot be).
    canonical_root: OnceLock<Option<PathBuf>>,
    authors: Vec<Author>,
    author_ids: Interner,
    user_ids: Interner,
    events: Vec<TipEvent>,
    user_offsets: Vec<usize>,
    live: Option<LiveSchedule>,
}

impl Dataset {
    /// Number of users (every user has at least one event).
    pub fn n_users(&self) -> usize {
        self.user_ids.len()
    }

    /// Number of authors, including authors without events.
    pub fn n_authors(&self) -> usize {
        self.authors.len()
    }

    /// Number of events.
    pub fn n_events(&self) -> usize {
        self.events.len()
    }

    /// When each author was live, if the source data records broadcasts (KuaiLive rooms,
    /// Twitch streams); `None` for data without broadcast times.
    pub fn live(&self) -> Option<&LiveSchedule> {
        self.live.as_ref()
    }

    /// The directory media paths are relative to, if the dataset came from disk.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The full path of a media file of an author (`root/rel`), as written, unchecked.
    /// To read the file, use [`Dataset::resolve_media`], which refuses paths that leave
    /// the root.
    pub fn media_path(&self, rel: &Path) -> PathBuf {
        match &self.root {
            Some(root) => root.join(rel),
            None => rel.to_path_buf(),
        }
    }

    /// The full path of a media file `rel` of `author`, checked to stay inside the
    /// dataset root: `rel` must be relative without `..`, and the file it names, with
    /// every symbolic link on the way followed (the canonical path), must lie under the
    /// canonical root. A path that escapes is a [`CoreError::MediaPath`] naming the author
    /// and the path. The path returned is `root/rel` as written (so messages show the
    /// dataset's own names). A file that does not exist is not an error here: reading it
    /// fails and says so. A dataset without a root (built in memory) returns `rel`
    /// unchanged, as there is no root to escape.
    ///
    /// ```
    /// use mspa_core::{Author, DatasetBuilder, ExternalId};
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("f.png"), b"x").unwrap();
    /// let mut author = Author::bare(ExternalId::from("a1"));
    /// author.frames = vec!["f.png".into(), "../f.png".into()];
    /// let mut b = DatasetBuilder::default();
    /// b.add_author(author.clone()).unwrap();
    /// let ds = b.build(Some(dir.path().to_path_buf()));
    /// assert!(ds.resolve_media(&author, &author.frames[0]).is_ok());
    /// assert!(ds.resolve_media(&author, &author.frames[1]).is_err());
    /// ```
    pub fn resolve_media(&self, author: &Author, rel: &Path) -> crate::Result<PathBuf> {
        let Some(root) = &self.root else {
            return Ok(rel.to_path_buf());
        };
        let refuse = |reason: String| CoreError::MediaPath {
            author: author.id.to_string(),
            path: rel.to_path_buf(),
            reason,
        };
        for comp in rel.components() {
            match comp {
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => return Err(refuse("uses `..`".into())),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(refuse("is absolute".into()));
                }
            }
        }
        let full = root.join(rel);
        let canonical_root = self
            .canonical_root
            .get_or_init(|| std::fs::canonicalize(root).ok());
        match (canonical_root, std::fs::canonicalize(&full)) {
            (Some(croot), Ok(target)) if !target.starts_with(croot) => Err(refuse(format!(
                "resolves (through a symbolic link) to {}, outside the dataset root {}",
                target.display(),
                croot.display()
            ))),
            _ => Ok(full),
        }
    }

    /// All authors, indexed by [`AuthorId`].
    pub fn authors(&self) -> &[Author] {
        &self.authors
    }

    /// One author.
    pub fn author(&self, id: AuthorId) -> &Author {
        &self.authors[id.index()]
    }

    /// All events, grouped by user and time-ordered within each user.
    pub fn events(&self) -> &[TipEvent] {
        &self.events
    }

    /// The CSR row pointer (`n_users + 1` entries).
    pub fn user_offsets(&self) -> &[usize] {
        &self.user_offsets
    }

    /// The index range of a user's events in [`Dataset::events`].
    pub fn user_range(&self, user: UserId) -> Range<usize> {
        self.user_offsets[user.index()]..self.user_offsets[user.index() + 1]
    }

    /// A user's events, oldest first.
    pub fn user_events(&self, user: UserId) -> &[TipEvent] {
        &self.events[self.user_range(user)]
    }

    /// Every user id, in index order.
    pub fn users(&self) -> impl ExactSizeIterator<Item = UserId> + '_ {
        (0..self.n_users() as u32).map(UserId)
    }

    /// The external id of a user.
    pub fn user_external(&self, user: UserId) -> &ExternalId {
        self.user_ids.external(user.0)
    }

    /// The dense id of a user given by external id.
    pub fn user_by_external(&self, id: &ExternalId) -> Option<UserId> {
        self.user_ids.get(id).map(UserId)
    }

    /// The dense id of an author given by external id.
    pub fn author_by_external(&self, id: &ExternalId) -> Option<AuthorId> {
        self.author_ids.get(id).map(AuthorId)
    }

    /// Events per author (its popularity), indexed by [`AuthorId`].
    pub fn author_event_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.n_authors()];
        for e in &self.events {
            counts[e.author.index()] += 1;
        }
        counts
    }

    /// The distinct authors a user tipped, sorted by id.
    pub fn user_authors(&self, user: UserId) -> Vec<AuthorId> {
        let mut a: Vec<AuthorId> = self.user_events(user).iter().map(|e| e.author).collect();
        a.sort_unstable();
        a.dedup();
        a
    }
}

/// The parts of a [`Dataset`] a loader has already grouped, for
/// [`Dataset::from_grouped`].
pub(crate) struct GroupedParts {
    /// The directory media paths are relative to.
    pub root: Option<PathBuf>,
    /// All authors, indexed by [`AuthorId`].
    pub authors: Vec<Author>,
    /// The external ids of the authors, in the order of `authors`.
    pub author_ids: Interner,
    /// The external ids of the users.
    pub user_ids: Interner,
    /// The events, grouped by user and ordered by time within each user (ties in source
    /// order), as [`DatasetBuilder::build`] leaves them.
    pub events: Vec<TipEvent>,
    /// The CSR row pointer of `events` (`n_users + 1` entries).
    pub user_offsets: Vec<usize>,
    /// The finished live schedule, with an entry for every author.
    pub live: Option<LiveSchedule>,
}

impl Dataset {
    /// A dataset from parts already in the shape [`DatasetBuilder::build`] gives them.
    pub(crate) fn from_grouped(parts: GroupedParts) -> Dataset {
        debug_assert_eq!(parts.user_offsets.len(), parts.user_ids.len() + 1);
        debug_assert_eq!(parts.user_offsets.last(), Some(&parts.events.len()));
        debug_assert_eq!(parts.authors.len(), parts.author_ids.len());
        Dataset {
            root: parts.root,
            canonical_root: OnceLock::new(),
            authors: parts.authors,
            author_ids: parts.author_ids,
            user_ids: parts.user_ids,
            events: parts.events,
            user_offsets: parts.user_offsets,
            live: parts.live,
        }
    }
}

/// Collects authors and events, then builds a [`Dataset`].
///
/// ```
/// use mspa_core::{Author, DatasetBuilder, ExternalId};
/// let mut b = DatasetBuilder::default();
/// let a = b.add_author(Author::bare(ExternalId::from("streamer"))).unwrap();
/// let u = b.user(ExternalId::Int(1));
/// b.push_event(u, a, 5.0, 2_000);
/// b.push_event(u, a, 1.0, 1_000);
/// let ds = b.build(None);
/// assert_eq!(ds.user_events(u)[0].timestamp_ms, 1_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct DatasetBuilder {
    authors: Vec<Author>,
    author_ids: Interner,
    user_ids: Interner,
    events: Vec<TipEvent>,
    live: Option<LiveSchedule>,
}

impl DatasetBuilder {
    /// Adds an author. If the id is taken, returns the existing author's id as the error.
    pub fn add_author(&mut self, author: Author) -> Result<AuthorId, AuthorId> {
        if let Some(existing) = self.author_ids.get(&author.id) {
            return Err(AuthorId(existing));
        }
        let id = self.author_ids.intern(author.id.clone());
        self.authors.push(author);
        Ok(AuthorId(id))
    }

    /// The id of an author, if added.
    pub fn author_id(&self, id: &ExternalId) -> Option<AuthorId> {
        self.author_ids.get(id).map(AuthorId)
    }

    /// The id of an author, adding a bare one (no text, no media) if new.
    pub fn author_or_bare(&mut self, id: ExternalId) -> AuthorId {
        match self.author_ids.get(&id) {
            Some(i) => AuthorId(i),
            None => self
                .add_author(Author::bare(id))
                .expect("id was checked to be new"),
        }
    }

    /// Mutable access to an added author (to fill in text found later).
    pub fn author_mut(&mut self, id: AuthorId) -> &mut Author {
        &mut self.authors[id.index()]
    }

    /// The dense id of a user, added if new.
    pub fn user(&mut self, id: ExternalId) -> UserId {
        UserId(self.user_ids.intern(id))
    }

    /// Records one event. The caller validates the amount and the timestamp.
    pub fn push_event(&mut self, user: UserId, author: AuthorId, amount: f64, timestamp_ms: i64) {
        self.events.push(TipEvent {
            user,
            author,
            amount,
            timestamp_ms,
        });
    }

    /// Records that `author` was live (broadcasting) from `start_ms` to `end_ms`; the
    /// built dataset then has a [`Dataset::live`] schedule.
    pub fn add_live_interval(&mut self, author: AuthorId, start_ms: i64, end_ms: i64) {
        self.live
            .get_or_insert_with(LiveSchedule::default)
            .add(author, start_ms, end_ms);
    }

    /// Number of events pushed so far.
    pub fn n_events(&self) -> usize {
        self.events.len()
    }

    /// Sorts the events by (user, time), keeping file order for ties, and builds the
    /// CSR index. `root` is the directory media paths are relative to.
    pub fn build(self, root: Option<PathBuf>) -> Dataset {
        let DatasetBuilder {
            authors,
            author_ids,
            user_ids,
            mut events,
            mut live,
        } = self;
        if let Some(live) = live.as_mut() {
            live.resize(authors.len());
            live.finish();
        }
        // Stable sort: equal (user, time) keep their source order.
        events.par_sort_by_key(|e| (e.user, e.timestamp_ms));
        let n_users = user_ids.len();
        let mut user_offsets = vec![0usize; n_users + 1];
        for e in &events {
            user_offsets[e.user.index() + 1] += 1;
        }
        for u in 0..n_users {
            user_offsets[u + 1] += user_offsets[u];
        }
        Dataset {
            root,
            canonical_root: OnceLock::new(),
            authors,
            author_ids,
            user_ids,
            events,
            user_offsets,
            live,
        }
    }
}
