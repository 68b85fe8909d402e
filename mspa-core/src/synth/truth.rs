//! The world's truth: `truth.json` + `truth_users.jsonl`, the reference texts and the
//! oracle (the grammar of the reference texts is in [`super::reference`]).
//!
//! The reference is derived from the latent truth only, never from sampled tips. The
//! stored `reference` of a user is the text at its split time, the time of its last tip
//! (the leave-last-out test target); [`Truth::reference_text`] renders it at any time.
//!
//! # Files
//!
//! * `truth.json`: `{"format": "mspa-synth-truth/1", "config": {...}, "fields": {field:
//!   [values]}, "modalities": {field: [modalities]}, "grammar": "...", "users_file":
//!   "truth_users.jsonl", "authors": [AuthorTruth, ...]}` (authors in id order).
//! * `truth_users.jsonl`: one [`UserTruth`] per line, in id order.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;

use super::attributes::{AuthorTruth, check_author};
use super::reference::FieldWeights;
use super::users::{UserTruth, WorldModel};
use super::{SynthError, SyntheticWorldConfig};

/// The value of `format` in `truth.json`.
pub const TRUTH_FORMAT: &str = "mspa-synth-truth/1";
#[derive(Deserialize)]
struct TruthHeader {
    format: String,
    config: SyntheticWorldConfig,
    users_file: String,
    authors: Vec<AuthorTruth>,
}

/// A world's truth, loaded from its directory: the latent attributes, the users'
/// preference trajectories, the reference texts, and the oracle.
///
/// Two oracles: [`Truth::affinity`] is the preference match (what the issue calls the true
/// affinity, independent of popularity and history); [`Truth::next_tip_probabilities`]
/// is the exact probability of the next tip under the simulation (affinity, popularity,
/// repeats and exploration), the Bayes-optimal ranker and so the real upper bound of any
/// ranking metric.
pub struct Truth {
    config: SyntheticWorldConfig,
    authors: Vec<AuthorTruth>,
    users: Vec<UserTruth>,
    author_index: HashMap<String, usize>,
    user_index: HashMap<String, usize>,
    model: WorldModel,
}

impl std::fmt::Debug for Truth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Truth")
            .field("authors", &self.authors.len())
            .field("users", &self.users.len())
            .finish()
    }
}

impl Truth {
    /// Loads `truth.json` and its users file from a world directory.
    pub fn load(dir: &Path) -> Result<Truth, SynthError> {
        let path = dir.join("truth.json");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SynthError::Io { path, source }
        };
        let parse = |path: &Path, message: String| SynthError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let file = std::fs::File::open(&path).map_err(io(&path))?;
        let header: TruthHeader = serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| parse(&path, e.to_string()))?;
        if header.format != TRUTH_FORMAT {
            return Err(parse(&path, format!("unknown format `{}`", header.format)));
        }
        header.config.validate()?;
        for a in &header.authors {
            check_author(a, header.config.id_dims).map_err(|m| parse(&path, m))?;
        }
        if header.users_file.contains("..") || Path::new(&header.users_file).is_absolute() {
            return Err(parse(
                &path,
                "users_file must stay inside the directory".into(),
            ));
        }
        let users_path = dir.join(&header.users_file);
        let file = std::fs::File::open(&users_path).map_err(io(&users_path))?;
        let mut users = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(io(&users_path))?;
            if line.trim().is_empty() {
                continue;
            }
            let user: UserTruth = serde_json::from_str(&line)
                .map_err(|e| parse(&users_path, format!("line {}: {e}", i + 1)))?;
            let check = user.start.check().and_then(|_| match &user.end {
                Some(e) => e.check(),
                None => Ok(()),
            });
            if let Err(m) = check {
                return Err(parse(&users_path, format!("line {}: {m}", i + 1)));
            }
            if user.id_vector.len() != header.config.id_dims {
                return Err(parse(&users_path, format!("line {}: bad id_vector", i + 1)));
            }
            users.push(user);
        }
        let model = WorldModel::new(&header.config, &header.authors);
        Ok(Truth {
            author_index: header
                .authors
                .iter()
                .enumerate()
                .map(|(i, a)| (a.id.clone(), i))
                .collect(),
            user_index: users
                .iter()
                .enumerate()
                .map(|(i, u)| (u.id.clone(), i))
                .collect(),
            config: header.config,
            authors: header.authors,
            users,
            model,
        })
    }

    /// The config the world was generated with.
    pub fn config(&self) -> &SyntheticWorldConfig {
        &self.config
    }

    /// All authors, in id order.
    pub fn authors(&self) -> &[AuthorTruth] {
        &self.authors
    }

    /// All users, in id order.
    pub fn users(&self) -> &[UserTruth] {
        &self.users
    }

    /// One author's truth by external id.
    pub fn author(&self, id: &str) -> Option<&AuthorTruth> {
        self.author_index.get(id).map(|&i| &self.authors[i])
    }

    /// One user's truth by external id.
    pub fn user(&self, id: &str) -> Option<&UserTruth> {
        self.user_index.get(id).map(|&i| &self.users[i])
    }

    /// The true affinity of a user for an author at `t_ms` (`None` for an unknown id).
    pub fn affinity(&self, user: &str, author: &str, t_ms: i64) -> Option<f64> {
        let u = self.user(user)?;
        let a = *self.author_index.get(author)?;
        Some(self.model.affinity(u, a, t_ms))
    }

    /// The affinity of a user for every author at `t_ms`, in [`Truth::authors`] order.
    pub fn affinities(&self, user: &str, t_ms: i64) -> Option<Vec<f64>> {
        let u = self.user(user)?;
        Some(
            (0..self.authors.len())
                .map(|a| self.model.affinity(u, a, t_ms))
                .collect(),
        )
    }

    /// The exact probability that the user's next tip, at `t_ms`, goes to each author
    /// (in [`Truth::authors`] order), given the authors it tipped before (`history`;
    /// unknown ids are ignored). `None` for an unknown user.
    pub fn next_tip_probabilities(
        &self,
        user: &str,
        t_ms: i64,
        history: &[&str],
    ) -> Option<Vec<f64>> {
        let u = self.user(user)?;
        let hist: Vec<usize> = history
            .iter()
            .filter_map(|a| self.author_index.get(*a).copied())
            .collect();
        Some(self.model.next_tip_probabilities(u, t_ms, &hist))
    }

    /// The user's preference weights at `t_ms`.
    pub fn preference_at(&self, user: &str, t_ms: i64) -> Option<FieldWeights> {
        Some(self.user(user)?.preference_at(t_ms))
    }

    /// The user's reference preference text at `t_ms` (any time, e.g. a validation time).
    pub fn reference_text(&self, user: &str, t_ms: i64) -> Option<String> {
        Some(self.user(user)?.reference_at(t_ms))
    }

    /// The reference texts as a plain function of (user, time), for code that must not
    /// know the world (the composers' pairs): an unknown user is an error message.
    pub fn references(&self) -> impl Fn(&str, i64) -> Result<String, String> + '_ {
        move |user, t_ms| {
            self.reference_text(user, t_ms)
                .ok_or_else(|| format!("user {user} is not in the world's truth"))
        }
    }

    /// The user's split time: the time of its last tip.
    pub fn split_time_ms(&self, user: &str) -> Option<i64> {
        Some(self.user(user)?.split_time_ms)
    }

    /// The user's reference text at its split time, as stored.
    pub fn split_reference(&self, user: &str) -> Option<&str> {
        Some(self.user(user)?.reference.as_str())
    }
}
