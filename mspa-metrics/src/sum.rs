//! Floating-point summation that reproduces NumPy's `np.sum` bit for bit.
//!
//! The reference implementations (RecBole, Cornac, the golden generator) reduce with
//! NumPy, whose `add.reduce` over a contiguous `float64` array uses pairwise summation
//! with an eight-way unrolled base case. Summing in another order changes the last bit
//! of results such as NDCG, so every mean and every DCG in this crate goes through
//! [`pairwise_sum`].

/// Block size below which NumPy stops splitting and sums with eight accumulators.
const BLOCK: usize = 128;

/// Sums `values` in exactly the order NumPy's pairwise summation does.
///
/// ```
/// use mspa_metrics::pairwise_sum;
/// assert_eq!(pairwise_sum(&[]), 0.0);
/// assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
/// ```
pub fn pairwise_sum(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 8 {
        let mut res = -0.0;
        for &v in values {
            res += v;
        }
        // NumPy starts from -0.0 in 2.x and 0.0 before; both give the same value for any
        // non-empty input, and 0.0 is the conventional empty sum.
        if n == 0 { 0.0 } else { res }
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&values[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += values[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &values[whole..] {
            res += v;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&values[..half]) + pairwise_sum(&values[half..])
    }
}

/// The arithmetic mean as NumPy's `np.mean` computes it (pairwise sum, then divide);
/// `0.0` for an empty slice.
pub fn numpy_mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        pairwise_sum(values) / values.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_plain_sum_on_exact_values() {
        let v: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        assert_eq!(pairwise_sum(&v), 499_500.0);
        assert_eq!(numpy_mean(&v), 499.5);
        assert_eq!(numpy_mean(&[]), 0.0);
    }

    #[test]
    fn order_differs_from_sequential() {
        // 1/log2(i+1) for i = 1..=9: NumPy's order differs from a left fold in the last bit.
        let v: Vec<f64> = (2..=10).map(|i| 1.0 / (i as f64).log2()).collect();
        let r: [f64; 8] = v[..8].try_into().unwrap();
        let expected = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7])) + v[8];
        assert_eq!(pairwise_sum(&v), expected);
    }
}
