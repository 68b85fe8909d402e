//! What a forward pass of [`super::Mspa`] returns: step 0's scores of every candidate,
//! the shortlist and its corrected scores, and the ranking scores built from them.

use burn::tensor::{Bool, IndexingUpdateOp, Int, Tensor};

/// How far below every shortlisted candidate the others rank after a correction step
/// (their step-0 log-probability minus this).
pub const SHORTLIST_MARGIN: f32 = 1.0e4;

/// What a forward pass returns.
#[derive(Clone, Debug)]
pub struct MspaOutput {
    /// Step-0 scores `[B, N]`: log-probabilities of the next tip over all candidates.
    pub initial_scores: Tensor<2>,
    /// Step-0 modality weights `[B, N, 3]`.
    pub initial_weights: Tensor<3>,
    /// `[B, K]` positions (in the candidate list) of each user's shortlist, the top `K`
    /// of step 0; `None` when `T = 0`.
    pub shortlist: Option<Tensor<2, Int>>,
    /// Scores `[B, K]` of the shortlisted candidates after each of the `T` correction
    /// steps (log-probabilities over the shortlist).
    pub corrected_scores: Vec<Tensor<2>>,
    /// Modality weights `[B, K, 3]` of the shortlisted candidates at the final step.
    pub corrected_weights: Option<Tensor<3>>,
    /// The gate's mean opening `[B]` at each correction step.
    pub gates: Vec<Tensor<1>>,
    /// Content-only author representations `[N, d]` (for the alignment loss).
    pub content: Tensor<2>,
    /// The text preference in the shared space `[B, d]`, when text is used.
    pub text_preference: Option<Tensor<2>>,
    /// The preference `[B, d]` after the last correction step (step 0's when `T = 0`).
    pub preference: Tensor<2>,
}

impl MspaOutput {
    /// Ranking scores `[B, N]` of every step (index 0 before any correction, index `T`
    /// final): after a correction step the shortlisted candidates carry their corrected
    /// score and rank above the rest, which keep their step-0 score minus
    /// [`SHORTLIST_MARGIN`].
    pub fn step_scores(&self) -> Vec<Tensor<2>> {
        let mut steps = vec![self.initial_scores.clone()];
        if let Some(shortlist) = &self.shortlist {
            let below = self.initial_scores.clone() - SHORTLIST_MARGIN;
            steps.extend(
                self.corrected_scores
                    .iter()
                    .map(|scores| overwrite(below.clone(), shortlist.clone(), scores.clone())),
            );
        }
        steps
    }

    /// The final ranking scores `[B, N]` (the last of [`MspaOutput::step_scores`]).
    pub fn final_scores(&self) -> Tensor<2> {
        match (&self.shortlist, self.corrected_scores.last()) {
            (Some(shortlist), Some(last)) => overwrite(
                self.initial_scores.clone() - SHORTLIST_MARGIN,
                shortlist.clone(),
                last.clone(),
            ),
            _ => self.initial_scores.clone(),
        }
    }

    /// Modality weights `[B, N, 3]`: the final step's for shortlisted candidates, step
    /// 0's for the others.
    pub fn modality_weights(&self) -> Tensor<3> {
        match (&self.shortlist, &self.corrected_weights) {
            (Some(shortlist), Some(weights)) => {
                let [b, k] = shortlist.dims();
                let at = shortlist.clone().reshape([b, k, 1]).expand([b, k, 3]);
                overwrite(self.initial_weights.clone(), at, weights.clone())
            }
            _ => self.initial_weights.clone(),
        }
    }

    /// `[B, N]` true for shortlisted candidates (all false when `T = 0`).
    pub fn shortlisted(&self) -> Tensor<2, Bool> {
        let zeros = self.initial_scores.zeros_like();
        match &self.shortlist {
            Some(shortlist) => {
                let ones = Tensor::<2>::ones(shortlist.dims(), &zeros.device());
                zeros
                    .scatter(1, shortlist.clone(), ones, IndexingUpdateOp::Add)
                    .greater_elem(0.5)
            }
            None => zeros.greater_elem(0.5),
        }
    }
}

/// `base` with the entries at `positions` (along dim 1, unique per row) replaced by
/// `values`; through an additive scatter, which every backend implements.
fn overwrite<const D: usize>(
    base: Tensor<D>,
    positions: Tensor<D, Int>,
    values: Tensor<D>,
) -> Tensor<D> {
    let current = base.clone().gather(1, positions.clone());
    base.scatter(1, positions, values - current, IndexingUpdateOp::Add)
}
