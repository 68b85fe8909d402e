//! BLEU as sacrebleu 2.6 computes it: corpus BLEU (default settings) and sentence BLEU
//! (effective order), with the same statistics, smoothing, brevity penalty and signature.
//!
//! Per segment: the hypothesis and every reference are tokenized (13a by default); clipped
//! n-gram matches use, for each n-gram, the largest count in any single reference; the
//! reference length is the one closest to the hypothesis length (ties go to the shorter
//! reference). Corpus statistics are sums over segments. The score is
//! `BP * exp(mean(log p_n))` on a 0-100 scale, with sacrebleu's smoothing of zero counts.

use std::fmt;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bleu_counts::{SegmentCounter, Stats};
use crate::error::{MetricsError, Result, check_no_empty_set, check_reference_sets};
use crate::tokenize_13a::{is_py_whitespace, tokenize_13a};

/// The sacrebleu version whose behaviour (and signature) this module reproduces.
pub const SACREBLEU_VERSION: &str = "2.6.0";

/// BLEU's maximum n-gram order (BLEU-4).
pub const MAX_NGRAM_ORDER: usize = 4;

/// sacrebleu's `log` that maps a zero precision to a huge negative number instead of `-inf`.
const LOG_ZERO: f64 = -9_999_999_999.0;

/// Segments per parallel task of [`Bleu::corpus_score`].
const CORPUS_CHUNK: usize = 1024;

/// How zero n-gram matches are smoothed (sacrebleu's `smooth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Smoothing {
    /// No smoothing.
    None,
    /// sacrebleu's default: the k-th order with zero matches gets `100 / (2^k * total)`.
    Exp,
    /// Zero-match orders get precision `100 * value / total` (sacrebleu default 0.1).
    Floor(f64),
    /// Adds `value` to matches and totals of orders above 1 (sacrebleu default 1).
    AddK(f64),
}

/// Which tokenizer is applied to hypotheses and references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BleuTokenizer {
    /// sacrebleu's default `13a` tokenizer.
    #[serde(rename = "13a")]
    Tok13a,
    /// Whitespace splitting only (sacrebleu's `none`).
    None,
}

/// BLEU settings; [`Default`] is sacrebleu's corpus BLEU default, [`BleuConfig::sentence`]
/// its sentence BLEU default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BleuConfig {
    /// Lowercase before tokenizing (default `false`).
    pub lowercase: bool,
    /// Tokenizer (default 13a).
    pub tokenizer: BleuTokenizer,
    /// Smoothing (default exp).
    pub smoothing: Smoothing,
    /// Average only over the orders the hypothesis has n-grams for (default `false`;
    /// `true` for sentence BLEU).
    pub effective_order: bool,
}

impl Default for BleuConfig {
    fn default() -> Self {
        Self {
            lowercase: false,
            tokenizer: BleuTokenizer::Tok13a,
            smoothing: Smoothing::Exp,
            effective_order: false,
        }
    }
}

impl BleuConfig {
    /// sacrebleu's `sentence_bleu` defaults: like [`Default`] with effective order on.
    pub fn sentence() -> Self {
        Self {
            effective_order: true,
            ..Self::default()
        }
    }

    /// The sacrebleu-style signature for a given number of references per segment
    /// (`None` when it varies), e.g. `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`.
    pub fn signature(&self, nrefs: Option<usize>) -> String {
        let nrefs = nrefs.map_or_else(|| "var".to_string(), |n| n.to_string());
        let smooth = match self.smoothing {
            Smoothing::None => "none".to_string(),
            Smoothing::Exp => "exp".to_string(),
            Smoothing::Floor(v) => format!("floor[{v:.2}]"),
            Smoothing::AddK(v) => format!("add-k[{v:.2}]"),
        };
        format!(
            "nrefs:{nrefs}|case:{}|eff:{}|tok:{}|smooth:{smooth}|version:{SACREBLEU_VERSION}",
            if self.lowercase { "lc" } else { "mixed" },
            if self.effective_order { "yes" } else { "no" },
            match self.tokenizer {
                BleuTokenizer::Tok13a => "13a",
                BleuTokenizer::None => "none",
            },
        )
    }
}

/// A BLEU result with sacrebleu's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BleuScore {
    /// BLEU on a 0-100 scale.
    pub score: f64,
    /// Clipped n-gram matches for n = 1..=4.
    pub counts: Vec<usize>,
    /// Hypothesis n-grams for n = 1..=4.
    pub totals: Vec<usize>,
    /// n-gram precisions after smoothing, 0-100 scale.
    pub precisions: Vec<f64>,
    /// Brevity penalty.
    pub bp: f64,
    /// Total hypothesis length in tokens.
    pub sys_len: usize,
    /// Total closest-reference length in tokens.
    pub ref_len: usize,
    /// sacrebleu-style signature of the settings.
    pub signature: String,
}

impl fmt::Display for BleuScore {
    /// sacrebleu's text format, e.g.
    /// `BLEU = 35.77 71.2/42.6/28.6/18.9 (BP = 1.000 ratio = 1.020 hyp_len = 52 ref_len = 51)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let precisions: Vec<String> = self.precisions.iter().map(|p| format!("{p:.1}")).collect();
        let ratio = if self.ref_len == 0 {
            0.0
        } else {
            self.sys_len as f64 / self.ref_len as f64
        };
        write!(
            f,
            "BLEU = {:.2} {} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
            self.score,
            precisions.join("/"),
            self.bp,
            ratio,
            self.sys_len,
            self.ref_len
        )
    }
}

/// A BLEU metric with fixed settings.
///
/// ```
/// use mspa_metrics::{Bleu, BleuConfig};
/// let bleu = Bleu::new(BleuConfig::default());
/// let hyps = ["the cat sat on the mat"];
/// let refs = [vec!["the cat sat on the mat"]];
/// let s = bleu.corpus_score(&hyps, &refs).unwrap();
/// assert!((s.score - 100.0).abs() < 1e-9);
/// assert_eq!(s.signature, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bleu {
    config: BleuConfig,
}

impl Bleu {
    /// A metric with the given settings.
    pub fn new(config: BleuConfig) -> Self {
        Self { config }
    }

    /// The settings.
    pub fn config(&self) -> &BleuConfig {
        &self.config
    }

    /// Corpus BLEU: `references[i]` holds the references of `hypotheses[i]` (their number
    /// may vary by segment, but must be at least one).
    pub fn corpus_score<H, R, S>(&self, hypotheses: &[H], references: &[R]) -> Result<BleuScore>
    where
        H: AsRef<str> + Sync,
        R: AsRef<[S]> + Sync,
        S: AsRef<str>,
    {
        check_reference_sets(hypotheses.len(), references.len())?;
        check_no_empty_set(references)?;
        // Chunks of segments share one counter's buffers; integer sums keep the result
        // independent of the split.
        let stats = hypotheses
            .par_chunks(CORPUS_CHUNK)
            .zip(references.par_chunks(CORPUS_CHUNK))
            .map(|(hyps, refs)| {
                let mut counter = SegmentCounter::default();
                hyps.iter().zip(refs).fold(Stats::default(), |acc, (h, r)| {
                    acc.add(counter.segment_stats(&self.config, h.as_ref(), r.as_ref()))
                })
            })
            .reduce(Stats::default, Stats::add);
        let mut nrefs = references.iter().map(|r| r.as_ref().len());
        let first = nrefs.next();
        let uniform = nrefs.all(|n| Some(n) == first);
        let nrefs = if uniform {
            Some(first.unwrap_or(0))
        } else {
            None
        };
        Ok(self.compute(stats, nrefs))
    }

    /// BLEU of a single hypothesis against its references.
    pub fn sentence_score<S: AsRef<str>>(
        &self,
        hypothesis: &str,
        references: &[S],
    ) -> Result<BleuScore> {
        if references.is_empty() {
            return Err(MetricsError::NoReference { segment: 0 });
        }
        let stats = SegmentCounter::default().segment_stats(&self.config, hypothesis, references);
        Ok(self.compute(stats, Some(references.len())))
    }

    /// Lowercases (if set) and tokenizes a line as sacrebleu does.
    pub fn preprocess(&self, line: &str) -> String {
        let lowered;
        let line = if self.config.lowercase {
            lowered = line.to_lowercase();
            lowered.as_str()
        } else {
            line
        };
        match self.config.tokenizer {
            BleuTokenizer::Tok13a => tokenize_13a(line),
            BleuTokenizer::None => line.trim_end_matches(is_py_whitespace).to_string(),
        }
    }

    /// sacrebleu's `compute_bleu` on aggregated statistics.
    fn compute(&self, stats: Stats, nrefs: Option<usize>) -> BleuScore {
        let Stats {
            sys_len,
            ref_len,
            correct,
            total,
        } = stats;
        let bp = if sys_len < ref_len {
            if sys_len > 0 {
                (1.0 - ref_len as f64 / sys_len as f64).exp()
            } else {
                0.0
            }
        } else {
            1.0
        };
        let mut precisions = [0.0f64; MAX_NGRAM_ORDER];
        let signature = self.config.signature(nrefs);
        let result = |score: f64, precisions: [f64; MAX_NGRAM_ORDER]| BleuScore {
            score,
            counts: correct.to_vec(),
            totals: total.to_vec(),
            precisions: precisions.to_vec(),
            bp,
            sys_len,
            ref_len,
            signature: signature.clone(),
        };
        if correct.iter().all(|&c| c == 0) {
            return result(0.0, precisions);
        }

        let mut smooth_mteval = 1.0f64;
        let mut eff_order = MAX_NGRAM_ORDER;
        for n in 1..=MAX_NGRAM_ORDER {
            let (mut c, mut t) = (correct[n - 1] as f64, total[n - 1] as f64);
            if let Smoothing::AddK(k) = self.config.smoothing
                && n > 1
            {
                c += k;
                t += k;
            }
            if t == 0.0 {
                break;
            }
            if self.config.effective_order {
                eff_order = n;
            }
            if c == 0.0 {
                match self.config.smoothing {
                    Smoothing::Exp => {
                        smooth_mteval *= 2.0;
                        precisions[n - 1] = 100.0 / (smooth_mteval * t);
                    }
                    Smoothing::Floor(v) => precisions[n - 1] = 100.0 * v / t,
                    Smoothing::None | Smoothing::AddK(_) => {}
                }
            } else {
                precisions[n - 1] = 100.0 * c / t;
            }
        }
        let mut log_sum = 0.0f64;
        for &p in &precisions[..eff_order] {
            log_sum += if p == 0.0 { LOG_ZERO } else { p.ln() };
        }
        let score = bp * (log_sum / eff_order as f64).exp();
        result(score, precisions)
    }
}

/// Corpus BLEU with sacrebleu's defaults (13a, exp smoothing, no effective order).
///
/// `references[i]` holds the references of `hypotheses[i]`; their number may vary.
///
/// ```
/// use mspa_metrics::corpus_bleu;
/// let hyps = ["the cat sat on a mat", "hello there"];
/// let refs = [vec!["the cat sat on the mat", "a cat sat on the mat"], vec!["hello there"]];
/// let s = corpus_bleu(&hyps, &refs).unwrap();
/// assert_eq!(s.counts, vec![8, 4, 2, 1]);
/// assert_eq!(s.totals, vec![8, 6, 4, 3]);
/// assert!(s.signature.starts_with("nrefs:var|"));
/// ```
pub fn corpus_bleu<H, R, S>(hypotheses: &[H], references: &[R]) -> Result<BleuScore>
where
    H: AsRef<str> + Sync,
    R: AsRef<[S]> + Sync,
    S: AsRef<str>,
{
    Bleu::new(BleuConfig::default()).corpus_score(hypotheses, references)
}

/// Sentence BLEU with sacrebleu's `sentence_bleu` defaults (effective order on).
///
/// ```
/// let s = mspa_metrics::sentence_bleu("a b c", &["a b c d"]).unwrap();
/// assert_eq!(s.counts, vec![3, 2, 1, 0]);
/// ```
pub fn sentence_bleu<S: AsRef<str>>(hypothesis: &str, references: &[S]) -> Result<BleuScore> {
    Bleu::new(BleuConfig::sentence()).sentence_score(hypothesis, references)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bleu_counts::closest_ref_len;

    #[test]
    fn closest_ref_ties_go_short() {
        assert_eq!(closest_ref_len(5, [6, 4].into_iter()), 4);
        assert_eq!(closest_ref_len(5, [4, 6].into_iter()), 4);
        assert_eq!(closest_ref_len(5, [9, 7, 2].into_iter()), 7);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            corpus_bleu(&["a"], &[Vec::<&str>::new()]),
            Err(MetricsError::NoReference { segment: 0 })
        ));
        assert!(matches!(
            corpus_bleu(&["a", "b"], &[vec!["a"]]),
            Err(MetricsError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn signatures_and_display() {
        let c = BleuConfig {
            lowercase: true,
            smoothing: Smoothing::Floor(0.1),
            ..BleuConfig::sentence()
        };
        assert_eq!(
            c.signature(Some(2)),
            "nrefs:2|case:lc|eff:yes|tok:13a|smooth:floor[0.10]|version:2.6.0"
        );
        let s = corpus_bleu(&["a b c d e"], &[vec!["a b c d e f"]]).unwrap();
        assert!(
            s.to_string()
                .starts_with("BLEU = 81.87 100.0/100.0/100.0/100.0 (BP = 0.819 ratio = 0.833")
        );
        let empty = corpus_bleu::<&str, Vec<&str>, &str>(&[], &[]).unwrap();
        assert_eq!(empty.score, 0.0);
    }
}
