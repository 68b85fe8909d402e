//! ROUGE-N and ROUGE-L as Google's `rouge-score` package computes them (default
//! tokenizer, no stemmer).
//!
//! Tokens are the maximal runs of `[a-z0-9]` in the lowercased text (so non-ASCII letters
//! split words: `café` gives `caf`). ROUGE-L uses the longest common subsequence:
//! `P = LCS / |hyp|`, `R = LCS / |ref|`, `F = 2PR / (P + R)`. ROUGE-N uses clipped n-gram
//! overlap. With several references, the whole (P, R, F) of the first reference with the
//! highest F is reported (`score_multi`).

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{MetricsError, Result, check_reference_sets};
use crate::sum::numpy_mean;

/// Precision, recall and F-measure of one ROUGE variant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RougeScore {
    /// Overlap divided by the hypothesis size.
    pub precision: f64,
    /// Overlap divided by the reference size.
    pub recall: f64,
    /// Harmonic mean of precision and recall (`0.0` when both are zero).
    pub fmeasure: f64,
}

impl RougeScore {
    /// Builds a score from precision and recall with rouge-score's F formula.
    fn from_pr(precision: f64, recall: f64) -> Self {
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            fmeasure,
        }
    }
}

/// Mean ROUGE over a corpus of segments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RougeCorpus {
    /// Mean precision over segments.
    pub precision: f64,
    /// Mean recall over segments.
    pub recall: f64,
    /// Mean F-measure over segments.
    pub fmeasure: f64,
    /// Per-segment scores (best reference each).
    pub segments: Vec<RougeScore>,
}

/// rouge-score's default tokenizer: lowercase, keep runs of `[a-z0-9]`.
///
/// ```
/// use mspa_metrics::rouge_tokenize;
/// assert_eq!(rouge_tokenize("I'm at the Café, 2-3pm!"), vec!["i", "m", "at", "the", "caf", "2", "3pm"]);
/// ```
pub fn rouge_tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    lower
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// ROUGE-L of token lists (`reference` = rouge-score's target, `hypothesis` = prediction).
pub fn rouge_l_tokens<T: AsRef<str>>(hypothesis: &[T], reference: &[T]) -> RougeScore {
    if hypothesis.is_empty() || reference.is_empty() {
        return RougeScore::default();
    }
    let lcs = lcs_len(hypothesis, reference);
    RougeScore::from_pr(
        lcs as f64 / hypothesis.len() as f64,
        lcs as f64 / reference.len() as f64,
    )
}

/// ROUGE-N of token lists.
pub fn rouge_n_tokens<T: AsRef<str>>(
    hypothesis: &[T],
    reference: &[T],
    n: usize,
) -> Result<RougeScore> {
    if n == 0 {
        return Err(MetricsError::ZeroNgramOrder);
    }
    let hyp = ngrams(hypothesis, n);
    let refs = ngrams(reference, n);
    let overlap: usize = refs
        .iter()
        .map(|(g, &c)| c.min(hyp.get(g).copied().unwrap_or(0)))
        .sum();
    let hyp_total: usize = hyp.values().sum();
    let ref_total: usize = refs.values().sum();
    Ok(RougeScore::from_pr(
        overlap as f64 / hyp_total.max(1) as f64,
        overlap as f64 / ref_total.max(1) as f64,
    ))
}

/// ROUGE-L of a hypothesis against one or more references (best F wins; first on ties).
///
/// ```
/// use mspa_metrics::rouge_l;
/// let s = rouge_l("the cat sat on the mat", &["the cat was on the mat", "a dog"]).unwrap();
/// assert!((s.precision - 5.0 / 6.0).abs() < 1e-15);
/// ```
pub fn rouge_l<S: AsRef<str>>(hypothesis: &str, references: &[S]) -> Result<RougeScore> {
    let hyp = rouge_tokenize(hypothesis);
    best_of(references, |r| Ok(rouge_l_tokens(&hyp, &rouge_tokenize(r))))
}

/// ROUGE-N of a hypothesis against one or more references (best F wins; first on ties).
pub fn rouge_n<S: AsRef<str>>(hypothesis: &str, references: &[S], n: usize) -> Result<RougeScore> {
    let hyp = rouge_tokenize(hypothesis);
    best_of(references, |r| rouge_n_tokens(&hyp, &rouge_tokenize(r), n))
}

/// Mean ROUGE-L over a corpus; `references[i]` holds the references of `hypotheses[i]`.
///
/// ```
/// let c = mspa_metrics::corpus_rouge_l(&["a b", "c"], &[vec!["a b"], vec!["d"]]).unwrap();
/// assert_eq!(c.fmeasure, 0.5);
/// ```
pub fn corpus_rouge_l<H, R, S>(hypotheses: &[H], references: &[R]) -> Result<RougeCorpus>
where
    H: AsRef<str>,
    R: AsRef<[S]>,
    S: AsRef<str>,
{
    check_reference_sets(hypotheses.len(), references.len())?;
    let segments = hypotheses
        .iter()
        .zip(references)
        .enumerate()
        .map(|(i, (h, r))| {
            rouge_l(h.as_ref(), r.as_ref()).map_err(|e| match e {
                MetricsError::NoReference { .. } => MetricsError::NoReference { segment: i },
                other => other,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mean = |f: fn(&RougeScore) -> f64| numpy_mean(&segments.iter().map(f).collect::<Vec<_>>());
    Ok(RougeCorpus {
        precision: mean(|s| s.precision),
        recall: mean(|s| s.recall),
        fmeasure: mean(|s| s.fmeasure),
        segments,
    })
}

/// The score of the first reference with the highest F-measure (NumPy `argmax`).
fn best_of<S: AsRef<str>>(
    references: &[S],
    score: impl Fn(&str) -> Result<RougeScore>,
) -> Result<RougeScore> {
    let mut best: Option<RougeScore> = None;
    for r in references {
        let s = score(r.as_ref())?;
        if best.is_none_or(|b| s.fmeasure > b.fmeasure) {
            best = Some(s);
        }
    }
    best.ok_or(MetricsError::NoReference { segment: 0 })
}

/// Length of the longest common subsequence.
fn lcs_len<T: AsRef<str>>(a: &[T], b: &[T]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x.as_ref() == y.as_ref() {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Counts of the n-grams of `tokens`.
fn ngrams<T: AsRef<str>>(tokens: &[T], n: usize) -> HashMap<Vec<&str>, usize> {
    let mut out = HashMap::new();
    for w in tokens.windows(n) {
        *out.entry(w.iter().map(AsRef::as_ref).collect())
            .or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcs_and_edges() {
        let t = |s: &str| rouge_tokenize(s);
        assert_eq!(lcs_len(&t("a b c d"), &t("a c d b")), 3);
        assert_eq!(rouge_l("", &["a"]).unwrap(), RougeScore::default());
        assert_eq!(rouge_l("a", &[""]).unwrap(), RougeScore::default());
        assert!(rouge_l::<&str>("a", &[]).is_err());
        assert!(rouge_n("a", &["a"], 0).is_err());
        assert_eq!(rouge_n("a b", &["a b"], 3).unwrap(), RougeScore::default());
    }

    #[test]
    fn tokenizer_lowercases_unicode() {
        // U+212A KELVIN SIGN lowercases to ASCII 'k'; U+0130 to "i" + combining dot.
        assert_eq!(rouge_tokenize("\u{212a}m \u{130}x"), vec!["km", "i", "x"]);
    }
}
