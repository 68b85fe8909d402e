//! The oracle of the synthetic world: ranks by the world's own next-tip probabilities,
//! the Bayes-optimal ranker and so an upper bound of every ranking metric.

use std::path::Path;

use serde::{Deserialize, Serialize};

use mspa_core::synth::Truth;
use mspa_core::{Dataset, ExternalId};

use crate::error::{AlignError, Result};
use crate::recommender::{Query, Recommender, check_out_len};

/// What the oracle ranks by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OracleMode {
    /// [`Truth::next_tip_probabilities`] at the query time given the history's authors
    /// (affinity, popularity, repeats and exploration): the exact upper bound.
    #[default]
    NextTip,
    /// [`Truth::affinities`] at the query time: the preference match alone.
    Affinity,
}

/// Ranks authors by the synthetic world's truth. Authors of the dataset that the truth
/// does not know score -1 (below every probability); a user it does not know is an
/// error.
pub struct Oracle {
    truth: Truth,
    mode: OracleMode,
    n_authors: usize,
    /// Truth author index -> dataset author index.
    truth_to_dataset: Vec<Option<usize>>,
    /// Dataset author index -> external id, as the truth spells it.
    author_names: Vec<String>,
    /// Dataset user index -> external id.
    user_names: Vec<String>,
}

mspa_core::debug_fields!(Oracle { mode, n_authors });

impl Oracle {
    /// Wraps a loaded truth, mapping its ids onto `dataset`'s dense ids.
    pub fn fit(truth: Truth, dataset: &Dataset) -> Result<Oracle> {
        let truth_to_dataset: Vec<Option<usize>> = truth
            .authors()
            .iter()
            .map(|a| {
                dataset
                    .author_by_external(&ExternalId::parse(&a.id))
                    .map(|id| id.index())
            })
            .collect();
        if truth_to_dataset.iter().all(Option::is_none) && dataset.n_authors() > 0 {
            return Err(AlignError::data(
                "the truth shares no author id with the dataset: is it the truth of another world?",
            ));
        }
        let author_names = dataset.authors().iter().map(|a| a.id.to_string()).collect();
        let user_names = dataset
            .users()
            .map(|u| dataset.user_external(u).to_string())
            .collect();
        Ok(Oracle {
            truth,
            mode: OracleMode::NextTip,
            n_authors: dataset.n_authors(),
            truth_to_dataset,
            author_names,
            user_names,
        })
    }

    /// Loads the truth of the world in `dir` (`truth.json`) and wraps it.
    pub fn load(dir: &Path, dataset: &Dataset) -> Result<Oracle> {
        let truth = Truth::load(dir).map_err(|e| AlignError::data(format!("oracle: {e}")))?;
        Oracle::fit(truth, dataset)
    }

    /// Switches what the oracle ranks by.
    pub fn with_mode(mut self, mode: OracleMode) -> Oracle {
        self.mode = mode;
        self
    }

    /// The truth behind the oracle.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    fn score_one(&self, q: &Query<'_>, row: &mut [f32]) -> Result<()> {
        let name = self.user_names.get(q.user.index()).ok_or_else(|| {
            AlignError::data(format!("user {} is not in the oracle's dataset", q.user))
        })?;
        let probs = match self.mode {
            OracleMode::NextTip => {
                let history: Vec<&str> = q
                    .history
                    .iter()
                    .filter_map(|e| self.author_names.get(e.author.index()))
                    .map(String::as_str)
                    .collect();
                self.truth.next_tip_probabilities(name, q.at_ms, &history)
            }
            OracleMode::Affinity => self.truth.affinities(name, q.at_ms),
        }
        .ok_or_else(|| AlignError::data(format!("user `{name}` is not in the world's truth")))?;
        row.fill(-1.0);
        for (t, p) in probs.into_iter().enumerate() {
            if let Some(Some(a)) = self.truth_to_dataset.get(t) {
                row[*a] = if p.is_nan() { -1.0 } else { p as f32 };
            }
        }
        Ok(())
    }
}

impl Recommender for Oracle {
    fn name(&self) -> &str {
        match self.mode {
            OracleMode::NextTip => "Oracle",
            OracleMode::Affinity => "Oracle(affinity)",
        }
    }

    fn score_batch(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()> {
        use rayon::prelude::*;
        check_out_len(queries.len(), out.len(), self.n_authors)?;
        if self.n_authors == 0 {
            return Ok(());
        }
        out.par_chunks_mut(self.n_authors)
            .zip(queries.par_iter())
            .map(|(row, q)| self.score_one(q, row))
            .collect::<Result<Vec<()>>>()?;
        Ok(())
    }
}
