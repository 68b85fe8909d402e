//! What scoring reads of the candidates: their modality keys and values, id embeddings
//! and biases, either one list shared by the whole batch (step 0 scores every candidate)
//! or a shortlist per user (the correction steps), with the dot products and pools that
//! scoring and correction need in both layouts.

use burn::tensor::{Bool, IndexingUpdateOp, Int, Tensor};

/// The candidates' keys, values and id embeddings.
pub(super) enum Views {
    /// One candidate list for every user of the batch.
    Shared {
        /// `[N·3, d]` keys of the candidates' modality views.
        keys: Tensor<2>,
        /// `[N·3, d]` values of the candidates' modality views.
        values: Tensor<2>,
        /// `[N, d]` id embeddings, if used.
        ids: Option<Tensor<2>>,
    },
    /// A shortlist of `K` candidates per user, read from the shared list: the dot
    /// products run against all `N` candidates and the shortlist's columns are picked
    /// (cheaper than gathering per user while `N` is small next to `K`).
    Picked {
        /// `[N·3, d]` keys of the shared list.
        keys: Tensor<2>,
        /// `[N·3, d]` values of the shared list.
        values: Tensor<2>,
        /// `[N, d]` id embeddings, if used.
        ids: Option<Tensor<2>>,
        /// `[B, K]` each user's shortlist (positions in the shared list).
        positions: Tensor<2, Int>,
    },
    /// A shortlist of `K` candidates per user, gathered: its cost does not grow with `N`.
    PerUser {
        /// `[B, K·3, d]` keys.
        keys: Tensor<3>,
        /// `[B, K·3, d]` values.
        values: Tensor<3>,
        /// `[B, K, d]` id embeddings, if used.
        ids: Option<Tensor<3>>,
    },
}

/// What scoring reads of the candidates (see `Mspa::gather_evidence`).
pub(super) struct CandidateEvidence {
    /// Keys, values and id embeddings.
    pub views: Views,
    /// `[1, N, 3]` (shared) or `[B, K, 3]` (shortlist): true where a candidate's modality
    /// is missing or unused.
    pub absent: Tensor<3, Bool>,
    /// `[1, N]` or `[B, K]` popularity biases, if id embeddings are used.
    pub bias: Option<Tensor<2>>,
    /// `[B, N]` or `[B, K]` the repeat term `f(tips of a)`.
    pub pair_bias: Tensor<2>,
    /// `[1, 1]` the score scale `γ`.
    pub scale: Tensor<2>,
    /// `[B, N]` or `[B, K]` true where the user never tipped the candidate.
    pub untipped: Tensor<2, Bool>,
    /// `[B, 1]` true for users who tipped none of the candidates.
    pub no_tips: Tensor<2, Bool>,
}

impl CandidateEvidence {
    /// `[B, K, 3]`: `⟨x_b, k_{a,m}⟩` of every user's vector with every candidate's keys.
    pub fn key_dots(&self, x: &Tensor<2>) -> Tensor<3> {
        match &self.views {
            Views::Shared { keys, .. } => shared_dots(x, keys),
            Views::Picked {
                keys, positions, ..
            } => pick_views(shared_dots(x, keys), positions),
            Views::PerUser { keys, .. } => per_user_dots(x, keys),
        }
    }

    /// `[B, K, 3]`: `⟨x_b, v_{a,m}⟩` with every candidate's values.
    pub fn value_dots(&self, x: &Tensor<2>) -> Tensor<3> {
        match &self.views {
            Views::Shared { values, .. } => shared_dots(x, values),
            Views::Picked {
                values, positions, ..
            } => pick_views(shared_dots(x, values), positions),
            Views::PerUser { values, .. } => per_user_dots(x, values),
        }
    }

    /// `[B, K]`: `⟨x_b, id_a⟩`, if id embeddings are used.
    pub fn id_dots(&self, x: &Tensor<2>) -> Option<Tensor<2>> {
        match &self.views {
            Views::Shared { ids, .. } => ids
                .as_ref()
                .map(|ids| x.clone().matmul(ids.clone().transpose())),
            Views::Picked { ids, positions, .. } => ids.as_ref().map(|ids| {
                x.clone()
                    .matmul(ids.clone().transpose())
                    .gather(1, positions.clone())
            }),
            Views::PerUser { ids, .. } => ids.as_ref().map(|ids| {
                let [b, k, d] = ids.dims();
                (ids.clone() * x.clone().reshape([b, 1, d]))
                    .sum_dim(2)
                    .reshape([b, k])
            }),
        }
    }

    /// `[B, d]`: `Σ_{a,m} w_{b,a,m} v_{a,m}` for weights `[B, K·3]`.
    pub fn pool_values(&self, weights: Tensor<2>) -> Tensor<2> {
        match &self.views {
            Views::Shared { values, .. } => weights.matmul(values.clone()),
            Views::Picked {
                values, positions, ..
            } => {
                let [b, k] = positions.dims();
                let [n3, _] = values.dims();
                let spread = Tensor::<3>::zeros([b, n3 / 3, 3], &weights.device()).scatter(
                    1,
                    view_positions(positions),
                    weights.reshape([b, k, 3]),
                    IndexingUpdateOp::Add,
                );
                spread.reshape([b, n3]).matmul(values.clone())
            }
            Views::PerUser { values, .. } => per_user_pool(weights, values),
        }
    }

    /// `[B, d]`: `Σ_a w_{b,a} id_a` for weights `[B, K]`, if id embeddings are used.
    pub fn pool_ids(&self, weights: Tensor<2>) -> Option<Tensor<2>> {
        match &self.views {
            Views::Shared { ids, .. } => ids.as_ref().map(|ids| weights.matmul(ids.clone())),
            Views::Picked { ids, positions, .. } => ids.as_ref().map(|ids| {
                let [b, _] = positions.dims();
                let [n, _] = ids.dims();
                Tensor::<2>::zeros([b, n], &weights.device())
                    .scatter(1, positions.clone(), weights, IndexingUpdateOp::Add)
                    .matmul(ids.clone())
            }),
            Views::PerUser { ids, .. } => ids.as_ref().map(|ids| per_user_pool(weights, ids)),
        }
    }

    /// Each user's shortlist `[B, K]` (positions in the shared candidate list) as
    /// per-user evidence: picked from the shared list's dot products while the list has
    /// at most `GATHER_ABOVE` times `K` candidates, gathered per user beyond. `self`
    /// must be the shared list.
    pub fn shortlist(&self, positions: &Tensor<2, Int>) -> CandidateEvidence {
        let [_, k] = positions.dims();
        let [_, n, _] = self.absent.dims();
        self.shortlist_with(positions, n > GATHER_ABOVE * k)
    }

    /// [`CandidateEvidence::shortlist`], gathered per user when `gather`.
    fn shortlist_with(&self, positions: &Tensor<2, Int>, gather: bool) -> CandidateEvidence {
        let [b, k] = positions.dims();
        let flat = positions.clone().reshape([b * k]);
        let pick_rows = |t: &Tensor<2>, width: usize| -> Tensor<3> {
            let [rows, d] = t.dims();
            let per = rows / width.max(1);
            t.clone()
                .reshape([per, width * d])
                .select(0, flat.clone())
                .reshape([b, k * width, d])
        };
        let [_, n, _] = self.absent.dims();
        let views = match &self.views {
            Views::Shared { keys, values, ids } if !gather => Views::Picked {
                keys: keys.clone(),
                values: values.clone(),
                ids: ids.clone(),
                positions: positions.clone(),
            },
            Views::Shared { keys, values, ids } => Views::PerUser {
                keys: pick_rows(keys, 3),
                values: pick_rows(values, 3),
                ids: ids.as_ref().map(|ids| pick_rows(ids, 1)),
            },
            Views::Picked { .. } | Views::PerUser { .. } => {
                unreachable!("a shortlist is taken from the shared list")
            }
        };
        let untipped = self
            .untipped
            .clone()
            .float()
            .gather(1, positions.clone())
            .greater_elem(0.5);
        let no_tips = untipped.clone().float().min_dim(1).equal_elem(1.0);
        CandidateEvidence {
            views,
            absent: self
                .absent
                .clone()
                .float()
                .reshape([n, 3])
                .select(0, flat.clone())
                .reshape([b, k, 3])
                .greater_elem(0.5),
            bias: self.bias.as_ref().map(|bias| {
                bias.clone()
                    .reshape([n])
                    .select(0, flat.clone())
                    .reshape([b, k])
            }),
            pair_bias: self.pair_bias.clone().gather(1, positions.clone()),
            scale: self.scale.clone(),
            untipped,
            no_tips,
        }
    }
}

/// Shortlists of at most `1 / GATHER_ABOVE` of the candidates are gathered per user;
/// larger ones are picked from dot products with every candidate.
pub(super) const GATHER_ABOVE: usize = 16;

/// `[B, K, 3]` positions of each shortlisted candidate's three views.
pub(super) fn view_positions(positions: &Tensor<2, Int>) -> Tensor<3, Int> {
    let [b, k] = positions.dims();
    positions.clone().reshape([b, k, 1]).expand([b, k, 3])
}

/// The shortlist's columns `[B, K, 3]` of dots with every candidate `[B, N, 3]`.
fn pick_views(dots: Tensor<3>, positions: &Tensor<2, Int>) -> Tensor<3> {
    dots.gather(1, view_positions(positions))
}

/// `[B, N, 3]` dots of `x [B, d]` with shared rows `[N·3, d]`.
fn shared_dots(x: &Tensor<2>, rows: &Tensor<2>) -> Tensor<3> {
    let [b, _] = x.dims();
    let [n3, _] = rows.dims();
    x.clone()
        .matmul(rows.clone().transpose())
        .reshape([b, n3 / 3, 3])
}

/// `[B, K, 3]` dots of `x [B, d]` with per-user rows `[B, K·3, d]` (elementwise and
/// summed: `B` tiny matrix products cost more on the CPU backends).
fn per_user_dots(x: &Tensor<2>, rows: &Tensor<3>) -> Tensor<3> {
    let [b, k3, d] = rows.dims();
    (rows.clone() * x.clone().reshape([b, 1, d]))
        .sum_dim(2)
        .reshape([b, k3 / 3, 3])
}

/// `[B, d]`: per-user weights `[B, R]` times per-user rows `[B, R, d]`.
fn per_user_pool(weights: Tensor<2>, rows: &Tensor<3>) -> Tensor<2> {
    let [b, r, d] = rows.dims();
    (rows.clone() * weights.reshape([b, r, 1]))
        .sum_dim(1)
        .reshape([b, d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData};

    /// Both shortlist layouts read the same numbers.
    #[test]
    fn picked_and_gathered_shortlists_agree() {
        let device = Device::flex();
        let (b, n, k, d) = (3, 7, 4, 5);
        let random = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Default, &device);
        let shared = CandidateEvidence {
            views: Views::Shared {
                keys: random([n * 3, d]),
                values: random([n * 3, d]),
                ids: Some(random([n, d])),
            },
            absent: random([n, 3]).greater_elem(0.8).reshape([1, n, 3]),
            bias: Some(random([1, n])),
            pair_bias: random([b, n]),
            scale: random([1, 1]),
            untipped: random([b, n]).greater_elem(0.5),
            no_tips: random([b, 1]).greater_elem(2.0),
        };
        let positions = Tensor::<2, Int>::from_data(
            TensorData::new(vec![6i64, 0, 3, 2, 1, 2, 5, 4, 0, 1, 2, 3], [b, k]),
            &device,
        );
        let picked = shared.shortlist_with(&positions, false);
        let gathered = shared.shortlist_with(&positions, true);
        assert!(matches!(picked.views, Views::Picked { .. }));
        assert!(matches!(gathered.views, Views::PerUser { .. }));
        let x = random([b, d]);
        let close = |a: Tensor<2>, c: Tensor<2>| {
            let gap = (a - c).abs().max().into_scalar::<f32>();
            assert!(gap < 1e-5, "layouts differ by {gap}");
        };
        let flat = |t: Tensor<3>| t.reshape([b, k * 3]);
        close(flat(picked.key_dots(&x)), flat(gathered.key_dots(&x)));
        close(flat(picked.value_dots(&x)), flat(gathered.value_dots(&x)));
        close(picked.id_dots(&x).unwrap(), gathered.id_dots(&x).unwrap());
        let w = random([b, k * 3]);
        close(picked.pool_values(w.clone()), gathered.pool_values(w));
        let w = random([b, k]);
        close(
            picked.pool_ids(w.clone()).unwrap(),
            gathered.pool_ids(w).unwrap(),
        );
        // The shortlist's own columns of what the shared list had.
        let expect = shared
            .key_dots(&x)
            .gather(1, positions.clone().reshape([b, k, 1]).expand([b, k, 3]));
        close(flat(picked.key_dots(&x)), flat(expect));
        close(
            picked.pair_bias.clone(),
            shared.pair_bias.clone().gather(1, positions),
        );
    }
}
