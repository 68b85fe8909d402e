//! MostPop: every user gets the authors ranked by their number of training tips.

use mspa_core::{Dataset, Split};

use crate::data::train_author_counts;
use crate::error::Result;
use crate::recommender::{Query, Recommender, check_out_len};

/// Ranks authors by how often they were tipped in the training events (ties: lower id
/// first, as the evaluator breaks them).
#[derive(Clone, Debug)]
pub struct MostPop {
    counts: Vec<f32>,
}

impl MostPop {
    /// Counts the training tips of every author of `dataset`.
    pub fn fit(dataset: &Dataset, split: &Split) -> MostPop {
        MostPop {
            counts: train_author_counts(dataset, split)
                .into_iter()
                .map(|c| c as f32)
                .collect(),
        }
    }

    /// The training tip count of every author (its score).
    pub fn counts(&self) -> &[f32] {
        &self.counts
    }
}

impl Recommender for MostPop {
    fn name(&self) -> &str {
        "MostPop"
    }

    fn score_batch(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()> {
        check_out_len(queries.len(), out.len(), self.counts.len())?;
        if self.counts.is_empty() {
            return Ok(());
        }
        for row in out.chunks_mut(self.counts.len()) {
            row.copy_from_slice(&self.counts);
        }
        Ok(())
    }
}
