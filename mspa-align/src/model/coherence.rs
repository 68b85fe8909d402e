//! The history coherence of each modality: how alike the authors a user tipped are in
//! it. A user who cares most about an attribute that shows in one modality (a palette,
//! an audio style, a language) tips authors that agree in that modality, so the
//! coherence says from the history alone which modality to weigh for this user; it
//! enters the modality attention's logits.

use burn::tensor::Tensor;

use super::input::{AuthorTable, TipBatch};
use super::spread;

/// How alike the distinct authors of each user's recent tips are in each modality:
/// the mean pairwise cosine of their standardised features `[B, 3]` (0 with fewer
/// than two such authors, and for unused modalities). A user who cares about one
/// modality's attribute tips authors that agree in it.
pub(super) fn history_coherence(
    authors: &AuthorTable,
    tips: &TipBatch,
    modalities: [bool; 3],
) -> Tensor<2> {
    let [b, _] = tips.authors.dims();
    let [a_all, _] = authors.presence.dims();
    let batch_authors = tips.batch_authors.clone();
    let u = batch_authors.dims()[0];
    // `[B, U]`: 1.0 where the batch's tipped author is among the row's distinct tips.
    let chosen = spread(&tips.distinct, &tips.author_slots, u);
    let columns: Vec<Tensor<2>> = (0..3)
        .map(|m| {
            if !modalities[m] {
                return Tensor::zeros([b, 1], &batch_authors.device());
            }
            let present = authors
                .presence
                .clone()
                .slice([0..a_all, m..m + 1])
                .select(0, batch_authors.clone())
                .reshape([1, u]);
            let w = chosen.clone() * present; // [B, U]
            let unit = authors.unit[m].clone().select(0, batch_authors.clone()); // [U, F]
            let sum = w.clone().matmul(unit); // [B, F]
            let n = w.sum_dim(1); // [B, 1]
            let squared = (sum.clone() * sum).sum_dim(1); // [B, 1]
            let pairs = n.clone() * (n.clone() - 1.0);
            (squared - n) / pairs.clamp_min(1.0)
        })
        .collect();
    Tensor::cat(columns, 1).detach()
}
