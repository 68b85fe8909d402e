//! Negative sampling: authors a user has not tipped, drawn uniformly or by popularity.

use rand::Rng;

use crate::error::{CoreError, Result};
use crate::ids::{AuthorId, UserId};

/// Draws negatives (with replacement) that are never among a user's positives.
///
/// ```
/// use mspa_core::{AuthorId, NegativeSampler, UserId};
/// use rand::SeedableRng;
/// let sampler = NegativeSampler::popularity(&[10, 0, 3, 1], 0.75).unwrap();
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
/// let negs = sampler.sample(UserId(0), &[AuthorId(0)], 5, &mut rng).unwrap();
/// assert!(negs.iter().all(|&a| a != AuthorId(0)));
/// ```
#[derive(Clone, Debug)]
pub struct NegativeSampler {
    n_authors: usize,
    /// Cumulative weights for popularity sampling; `None` for uniform.
    cumulative: Option<Vec<f64>>,
}

/// Rejection rounds per requested negative before switching to exact sampling over the
/// complement (users who tipped most authors).
const REJECTION_ROUNDS: usize = 32;

impl NegativeSampler {
    /// Every author equally likely.
    pub fn uniform(n_authors: usize) -> Self {
        NegativeSampler {
            n_authors,
            cumulative: None,
        }
    }

    /// Author `a` drawn with probability proportional to `counts[a]^exponent` (0.75 is
    /// word2vec's choice; 1 is plain popularity; 0 is uniform). Authors with zero count
    /// are never drawn, unless every non-positive author has zero count, in which case the
    /// user's negatives are drawn uniformly.
    pub fn popularity(counts: &[u32], exponent: f64) -> Result<Self> {
        if !exponent.is_finite() || exponent < 0.0 {
            return Err(CoreError::InvalidArgument(format!(
                "popularity exponent must be finite and >= 0, got {exponent}"
            )));
        }
        let mut acc = 0.0;
        let cumulative = counts
            .iter()
            .map(|&c| {
                acc += if c == 0 {
                    0.0
                } else {
                    f64::from(c).powf(exponent)
                };
                acc
            })
            .collect();
        Ok(NegativeSampler {
            n_authors: counts.len(),
            cumulative: Some(cumulative),
        })
    }

    /// Number of authors sampled from.
    pub fn n_authors(&self) -> usize {
        self.n_authors
    }

    fn weight(&self, a: usize) -> f64 {
        match &self.cumulative {
            None => 1.0,
            Some(c) => c[a] - if a == 0 { 0.0 } else { c[a - 1] },
        }
    }

    fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<usize> {
        match &self.cumulative {
            None => (self.n_authors > 0).then(|| rng.random_range(0..self.n_authors)),
            Some(c) => {
                let total = *c.last()?;
                if total <= 0.0 {
                    return None;
                }
                let x = rng.random::<f64>() * total;
                Some(c.partition_point(|&v| v <= x).min(self.n_authors - 1))
            }
        }
    }

    /// `n` negatives for `user`, none in `positives` (which must be sorted ascending, as
    /// [`crate::Dataset::user_authors`] returns them). Fails only when every author is a
    /// positive.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        user: UserId,
        positives: &[AuthorId],
        n: usize,
        rng: &mut R,
    ) -> Result<Vec<AuthorId>> {
        let is_positive = |a: usize| positives.binary_search(&AuthorId(a as u32)).is_ok();
        let n_pos = positives
            .iter()
            .filter(|a| a.index() < self.n_authors)
            .count();
        if n_pos >= self.n_authors {
            return Err(CoreError::NoNegatives { user: user.0 });
        }
        let mut out = Vec::with_capacity(n);
        let mut tries = 0;
        while out.len() < n && tries < REJECTION_ROUNDS * n.max(1) {
            tries += 1;
            match self.draw(rng) {
                Some(a) if !is_positive(a) => out.push(AuthorId(a as u32)),
                Some(_) => {}
                None => break,
            }
        }
        if out.len() < n {
            // Exact sampling over the complement: build its cumulative weights once.
            let candidates: Vec<usize> = (0..self.n_authors).filter(|&a| !is_positive(a)).collect();
            let mut acc = 0.0;
            let mut cumulative: Vec<f64> = candidates
                .iter()
                .map(|&a| {
                    acc += self.weight(a);
                    acc
                })
                .collect();
            if acc <= 0.0 {
                // No popularity mass left: uniform over the complement.
                cumulative = (1..=candidates.len()).map(|i| i as f64).collect();
                acc = candidates.len() as f64;
            }
            while out.len() < n {
                let x = rng.random::<f64>() * acc;
                let i = cumulative
                    .partition_point(|&v| v <= x)
                    .min(candidates.len() - 1);
                out.push(AuthorId(candidates[i] as u32));
            }
        }
        Ok(out)
    }
}
