//! Top-K scoring at platform scale: the best `k` authors of every user by the dot product
//! of user and author vectors, over millions of authors, in memory proportional to one
//! block of authors.
//!
//! Author vectors do not depend on the user, so a model computes them once per version
//! ([`AuthorMatrix`]). [`top_k_dot`] then walks the authors in blocks: each block's scores
//! for all users are one matrix product (the `gemm` crate's kernels), and each user's
//! running top `k` is updated from the block before the next one overwrites it. Blocks
//! run in parallel on rayon's pool; the users x authors matrix never exists.
//!
//! ```
//! use mspa_align::scoring::{AuthorMatrix, top_k_dot};
//! // Three authors in 2-D, two users.
//! let authors = AuthorMatrix::new(2, vec![1.0, 0.0, 0.0, 1.0, 0.7, 0.7]).unwrap();
//! let users = [1.0, 0.1, 0.0, 1.0];
//! let top = top_k_dot(&users, &authors, 2, 1024).unwrap();
//! assert_eq!(top[0].iter().map(|s| s.author).collect::<Vec<_>>(), [0, 2]);
//! assert_eq!(top[1].iter().map(|s| s.author).collect::<Vec<_>>(), [1, 2]);
//! ```

use rayon::prelude::*;

use crate::error::{AlignError, Result};

/// Author vectors, one row of `dim` values per author (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorMatrix {
    dim: usize,
    values: Vec<f32>,
}

impl AuthorMatrix {
    /// Wraps row-major vectors of size `dim`; errors when `dim` is 0, the length is not a
    /// multiple of it or a value is not finite (naming the author).
    pub fn new(dim: usize, values: Vec<f32>) -> Result<Self> {
        check_rows("author", dim, &values)?;
        Ok(AuthorMatrix { dim, values })
    }

    /// The vector size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The number of authors.
    pub fn len(&self) -> usize {
        self.values.len() / self.dim
    }

    /// The vectors, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Whether there are no authors.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Errors unless `values` are whole rows of `dim` (> 0) finite values, naming the first
/// `what` (a row) that holds a non-finite one.
fn check_rows(what: &str, dim: usize, values: &[f32]) -> Result<()> {
    if dim == 0 || values.len() % dim != 0 {
        return Err(AlignError::data(format!(
            "{} {what} values are not rows of {dim}",
            values.len()
        )));
    }
    if let Some(i) = values.iter().position(|x| !x.is_finite()) {
        return Err(AlignError::data(format!(
            "{what} {} has a non-finite value at dimension {}",
            i / dim,
            i % dim
        )));
    }
    Ok(())
}

/// One scored author.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    /// The author's row in the [`AuthorMatrix`].
    pub author: u32,
    /// Its score.
    pub score: f32,
}

/// A user's best `k` so far, sorted best first (score descending, then author
/// ascending).
#[derive(Clone, Debug)]
struct Best {
    k: usize,
    items: Vec<Scored>,
}

impl Best {
    fn new(k: usize) -> Self {
        Best {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    /// Whether `a` ranks before `b`.
    fn before(a: Scored, b: Scored) -> bool {
        a.score > b.score || (a.score == b.score && a.author < b.author)
    }

    /// The score an author must beat (or tie with a smaller id) to enter.
    fn threshold(&self) -> f32 {
        if self.items.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.items[self.k - 1].score
        }
    }

    fn offer(&mut self, s: Scored) {
        if self.k == 0 {
            return;
        }
        if self.items.len() == self.k && !Self::before(s, self.items[self.k - 1]) {
            return;
        }
        let at = self.items.partition_point(|&x| Self::before(x, s));
        self.items.insert(at, s);
        self.items.truncate(self.k);
    }

    fn merge(mut self, other: Best) -> Best {
        for s in other.items {
            self.offer(s);
        }
        self
    }
}

/// The best `k` authors of each user by `<user, author>`, best first (ties to the smaller
/// author row). `users` holds one row of `authors.dim()` values per user; `block` authors
/// are scored at a time per worker (memory: workers x users x `block` floats). Errors on
/// a shape mismatch, a non-finite user value, `block == 0` or more than `u32::MAX`
/// authors.
pub fn top_k_dot(
    users: &[f32],
    authors: &AuthorMatrix,
    k: usize,
    block: usize,
) -> Result<Vec<Vec<Scored>>> {
    let dim = authors.dim;
    check_rows("user", dim, users)?;
    if block == 0 {
        return Err(AlignError::config("block", "must be at least 1"));
    }
    if authors.len() > u32::MAX as usize {
        return Err(AlignError::data("more than u32::MAX authors"));
    }
    let n_users = users.len() / dim;
    let empty = || (vec![0.0f32; 0], vec![Best::new(k); n_users]);
    let (_, best) = authors
        .values
        .par_chunks(block * dim)
        .enumerate()
        .fold(empty, |(mut buffer, mut best), (b, rows)| {
            let n = rows.len() / dim;
            buffer.resize(n_users * n, 0.0);
            // buffer[u, j] = sum_d users[u, d] * rows[j, d]: dst row-major (users x n),
            // lhs = users (row-major), rhs = rows^T (element (d, j) at j * dim + d).
            // SAFETY: every pointer covers the extents given by its strides: dst
            // n_users x n, lhs n_users x dim, rhs dim x n.
            unsafe {
                gemm::gemm(
                    n_users,
                    n,
                    dim,
                    buffer.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    users.as_ptr(),
                    1,
                    dim as isize,
                    rows.as_ptr(),
                    dim as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            let first = (b * block) as u32;
            for (u, row) in buffer.chunks_exact(n.max(1)).take(n_users).enumerate() {
                let top = &mut best[u];
                let mut threshold = top.threshold();
                for (j, &score) in row.iter().enumerate() {
                    if score >= threshold {
                        top.offer(Scored {
                            author: first + j as u32,
                            score,
                        });
                        threshold = top.threshold();
                    }
                }
            }
            (buffer, best)
        })
        .reduce(empty, |(buffer, a), (_, b)| {
            (
                buffer,
                a.into_iter().zip(b).map(|(x, y)| x.merge(y)).collect(),
            )
        });
    Ok(best.into_iter().map(|b| b.items).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mspa_core::rng::SplitMix64;

    fn brute(users: &[f32], authors: &AuthorMatrix, k: usize) -> Vec<Vec<Scored>> {
        let dim = authors.dim();
        users
            .chunks(dim)
            .map(|u| {
                let mut all: Vec<Scored> = authors
                    .values
                    .chunks(dim)
                    .enumerate()
                    .map(|(j, a)| Scored {
                        author: j as u32,
                        score: u.iter().zip(a).map(|(x, y)| x * y).sum(),
                    })
                    .collect();
                all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.author.cmp(&b.author)));
                all.truncate(k);
                all
            })
            .collect()
    }

    #[test]
    fn blocked_top_k_matches_brute_force() {
        let mut rng = SplitMix64::new(3);
        let (dim, n, n_users) = (16, 5_003, 7);
        // Values on a coarse grid so that ties happen and products are exact.
        let mut draw = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| (rng.below(9) as f32 - 4.0) * 0.25)
                .collect()
        };
        let authors = AuthorMatrix::new(dim, draw(n * dim)).unwrap();
        let users = draw(n_users * dim);
        for (k, block) in [(10, 64), (1, 1000), (25, 5_003), (3, 7)] {
            let got = top_k_dot(&users, &authors, k, block).unwrap();
            assert_eq!(got, brute(&users, &authors, k), "k {k} block {block}");
        }
        // More k than authors: every author, sorted.
        let small = AuthorMatrix::new(2, vec![1.0, 0.0, 2.0, 0.0]).unwrap();
        let got = top_k_dot(&[1.0, 0.0], &small, 5, 1).unwrap();
        assert_eq!(got[0].iter().map(|s| s.author).collect::<Vec<_>>(), [1, 0]);
    }

    #[test]
    fn bad_shapes_and_values_are_errors() {
        assert!(AuthorMatrix::new(3, vec![0.0; 4]).is_err());
        assert!(AuthorMatrix::new(0, vec![]).is_err());
        let err = AuthorMatrix::new(2, vec![0.0, 0.0, f32::NAN, 0.0]).unwrap_err();
        assert!(err.to_string().contains("author 1"), "{err}");
        let a = AuthorMatrix::new(2, vec![0.0; 4]).unwrap();
        assert!(top_k_dot(&[1.0, 2.0, 3.0], &a, 1, 8).is_err());
        assert!(top_k_dot(&[1.0, f32::INFINITY], &a, 1, 8).is_err());
        assert!(top_k_dot(&[1.0, 2.0], &a, 1, 0).is_err());
        assert_eq!(top_k_dot(&[], &a, 3, 8).unwrap().len(), 0);
    }
}
