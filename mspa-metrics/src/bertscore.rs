//! BERTScore (precision, recall, F1) by greedy cosine matching of contextual token
//! embeddings, with the semantics of the `bert-score` package (0.3.13).
//!
//! * Every hypothesis token is matched to its most similar reference token and vice versa;
//!   special tokens (`[CLS]`, `[SEP]`) are eligible as matches but carry weight 0 in the
//!   averages.
//! * Weights are 1 per token, or the token's idf over a reference corpus:
//!   `ln((M + 1) / (df + 1))` for `M` documents, `df` of them containing the token id.
//! * A hypothesis or reference without non-special tokens scores `P = R = F1 = 0`.
//! * With several references, P, R and F1 are each the maximum over references,
//!   independently (they may come from different references).
//!
//! The model is abstracted by [`TokenEmbedder`]; `mspa-modal` implements it with the
//! pretrained MiniLM encoder. Computation here is in `f64`; bert-score works in `f32`, so
//! expect differences around `1e-7`.
//!
//! One deliberate difference: bert-score pads a batch's reference embeddings and its
//! masked similarity matrix then holds zeros, so a token whose real similarities are all
//! negative gets `0` instead of its (negative) best match when a longer sentence shares
//! its batch. Here a token always gets its true best match; with contextual embeddings
//! similarities are positive in practice and both agree.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::error::{MetricsError, Result, check_no_empty_set, check_reference_sets, require};
use crate::sum::numpy_mean;

/// The contextual embedding of one text: one vector per token (special tokens included).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEmbeddings {
    token_ids: Vec<u32>,
    special: Vec<bool>,
    dim: usize,
    vectors: Vec<f32>,
}

impl TokenEmbeddings {
    /// Validated constructor: `special` has one flag per token id and `vectors` is
    /// row-major `token_ids.len() x dim`.
    pub fn new(
        token_ids: Vec<u32>,
        special: Vec<bool>,
        dim: usize,
        vectors: Vec<f32>,
    ) -> Result<Self> {
        let bad = MetricsError::BadEmbeddings;
        require(special.len() == token_ids.len(), || {
            bad(format!(
                "{} special flags for {} tokens",
                special.len(),
                token_ids.len()
            ))
        })?;
        require(vectors.len() == token_ids.len() * dim, || {
            bad(format!(
                "{} values for {} tokens of dimension {dim}",
                vectors.len(),
                token_ids.len()
            ))
        })?;
        require(vectors.iter().all(|v| v.is_finite()), || {
            bad("non-finite embedding value".into())
        })?;
        Ok(Self {
            token_ids,
            special,
            dim,
            vectors,
        })
    }

    /// Number of tokens, special ones included.
    pub fn len(&self) -> usize {
        self.token_ids.len()
    }

    /// Whether there are no tokens at all.
    pub fn is_empty(&self) -> bool {
        self.token_ids.is_empty()
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Token ids (used for idf weights).
    pub fn token_ids(&self) -> &[u32] {
        &self.token_ids
    }

    /// Which tokens are special.
    pub fn special(&self) -> &[bool] {
        &self.special
    }

    /// The vector of token `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Whether the text has no non-special token (bert-score's "empty sentence").
    pub fn is_blank(&self) -> bool {
        self.special.iter().all(|&s| s)
    }
}

/// A contextual token encoder: texts in, per-token vectors and special-token flags out.
pub trait TokenEmbedder {
    /// The encoder's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Embeds a batch of texts; must return one result per text, in order.
    fn embed(&self, texts: &[&str]) -> std::result::Result<Vec<TokenEmbeddings>, Self::Error>;
}

/// Per-token-id weights: idf over a reference corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct IdfWeights {
    weights: HashMap<u32, f64>,
    unseen: f64,
}

impl IdfWeights {
    /// bert-score's `get_idf_dict`: over `M` documents (token id lists), a token id found in
    /// `df` of them weighs `ln((M + 1) / (df + 1))`; an unseen id weighs `ln(M + 1)`.
    pub fn from_token_ids<D: AsRef<[u32]>>(documents: &[D]) -> Self {
        let m = documents.len() as f64;
        let mut df: HashMap<u32, usize> = HashMap::new();
        for doc in documents {
            let unique: HashSet<u32> = doc.as_ref().iter().copied().collect();
            for id in unique {
                *df.entry(id).or_insert(0) += 1;
            }
        }
        let weights = df
            .into_iter()
            .map(|(id, c)| (id, ((m + 1.0) / (c as f64 + 1.0)).ln()))
            .collect();
        Self {
            weights,
            unseen: (m + 1.0).ln(),
        }
    }

    /// Weights from an explicit map, with a weight for ids not in it.
    pub fn from_map(weights: HashMap<u32, f64>, unseen: f64) -> Self {
        Self { weights, unseen }
    }

    /// The weight of a token id.
    pub fn weight(&self, id: u32) -> f64 {
        self.weights.get(&id).copied().unwrap_or(self.unseen)
    }
}

/// How tokens are weighted.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum IdfMode {
    /// Every non-special token weighs 1 (bert-score's `idf=False`, the default).
    #[default]
    Uniform,
    /// idf computed from all the references passed to [`bert_score`], flattened (bert-score's
    /// `idf=True`).
    FromReferences,
    /// Given weights (bert-score's `idf=<dict>`).
    Weights(IdfWeights),
}

/// BERTScore of one hypothesis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BertScore {
    /// Weighted mean over hypothesis tokens of their best similarity to the reference.
    pub precision: f64,
    /// Weighted mean over reference tokens of their best similarity to the hypothesis.
    pub recall: f64,
    /// `2PR / (P + R)`.
    pub f1: f64,
}

/// One segment's BERTScore.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentBertScore {
    /// P, R and F1, each maximised over the references separately.
    pub best: BertScore,
    /// The score against each reference, in order.
    pub per_reference: Vec<BertScore>,
}

/// BERTScore of a corpus.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BertScoreReport {
    /// Mean precision over segments.
    pub precision: f64,
    /// Mean recall over segments.
    pub recall: f64,
    /// Mean F1 over segments.
    pub f1: f64,
    /// Per-segment scores.
    pub segments: Vec<SegmentBertScore>,
}

/// Settings of [`bert_score`].
#[derive(Debug, Clone, PartialEq)]
pub struct BertScoreConfig {
    /// Token weighting (default uniform).
    pub idf: IdfMode,
    /// Texts per [`TokenEmbedder::embed`] call (default 64, as bert-score).
    pub batch_size: usize,
}

impl Default for BertScoreConfig {
    fn default() -> Self {
        Self {
            idf: IdfMode::Uniform,
            batch_size: 64,
        }
    }
}

/// BERTScore of one hypothesis against one reference from their token embeddings.
///
/// `idf` `None` means uniform weights. Special tokens always weigh 0.
///
/// ```
/// use mspa_metrics::{TokenEmbeddings, bert_score_pair};
/// // [CLS] a [SEP] against [CLS] a b [SEP], 2-d vectors.
/// let hyp = TokenEmbeddings::new(vec![1, 5, 2], vec![true, false, true], 2,
///     vec![1.0, 1.0, 1.0, 0.0, 0.0, 1.0]).unwrap();
/// let reference = TokenEmbeddings::new(vec![1, 5, 6, 2], vec![true, false, false, true], 2,
///     vec![1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]).unwrap();
/// let s = bert_score_pair(&hyp, &reference, None).unwrap();
/// assert!((s.precision - 1.0).abs() < 1e-12);
/// // "b" matches [SEP] of the hypothesis perfectly: specials are eligible as matches.
/// assert!((s.recall - 1.0).abs() < 1e-12);
/// ```
pub fn bert_score_pair(
    hypothesis: &TokenEmbeddings,
    reference: &TokenEmbeddings,
    idf: Option<&IdfWeights>,
) -> Result<BertScore> {
    if hypothesis.dim != reference.dim {
        return Err(MetricsError::BadEmbeddings(format!(
            "dimension {} of the hypothesis differs from dimension {} of the reference",
            hypothesis.dim, reference.dim
        )));
    }
    if hypothesis.is_blank() || reference.is_blank() {
        return Ok(BertScore::default());
    }
    let h = normalized(hypothesis);
    let r = normalized(reference);
    let dim = hypothesis.dim;
    let sim = |i: usize, j: usize| -> f64 {
        h[i * dim..(i + 1) * dim]
            .iter()
            .zip(&r[j * dim..(j + 1) * dim])
            .map(|(a, b)| a * b)
            .sum()
    };
    let mut best_h = vec![f64::NEG_INFINITY; hypothesis.len()];
    let mut best_r = vec![f64::NEG_INFINITY; reference.len()];
    for (i, bh) in best_h.iter_mut().enumerate() {
        for (j, br) in best_r.iter_mut().enumerate() {
            let s = sim(i, j);
            *bh = bh.max(s);
            *br = br.max(s);
        }
    }
    let precision = weighted_mean(&best_h, hypothesis, idf);
    let recall = weighted_mean(&best_r, reference, idf);
    let f1 = if precision + recall != 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Ok(BertScore {
        precision,
        recall,
        f1,
    })
}

/// BERTScore of a hypothesis against several references: P, R and F1 each maximised.
pub fn bert_score_multi(
    hypothesis: &TokenEmbeddings,
    references: &[TokenEmbeddings],
    idf: Option<&IdfWeights>,
) -> Result<SegmentBertScore> {
    let refs: Vec<&TokenEmbeddings> = references.iter().collect();
    multi(hypothesis, &refs, idf)
}

/// [`bert_score_multi`] over borrowed references.
fn multi(
    hypothesis: &TokenEmbeddings,
    references: &[&TokenEmbeddings],
    idf: Option<&IdfWeights>,
) -> Result<SegmentBertScore> {
    if references.is_empty() {
        return Err(MetricsError::NoReference { segment: 0 });
    }
    let per_reference = references
        .iter()
        .map(|r| bert_score_pair(hypothesis, r, idf))
        .collect::<Result<Vec<_>>>()?;
    let max = |f: fn(&BertScore) -> f64| {
        per_reference
            .iter()
            .map(f)
            .fold(f64::NEG_INFINITY, f64::max)
    };
    Ok(SegmentBertScore {
        best: BertScore {
            precision: max(|s| s.precision),
            recall: max(|s| s.recall),
            f1: max(|s| s.f1),
        },
        per_reference,
    })
}

/// Corpus BERTScore: embeds every distinct text once (in batches), then scores each
/// hypothesis against its references. `references[i]` holds the references of
/// `hypotheses[i]`.
///
/// ```
/// use mspa_metrics::{BertScoreConfig, TokenEmbedder, TokenEmbeddings, bert_score};
///
/// /// A toy embedder: one-hot vectors per word, plus [CLS]/[SEP].
/// struct OneHot;
/// impl TokenEmbedder for OneHot {
///     type Error = std::convert::Infallible;
///     fn embed(&self, texts: &[&str]) -> Result<Vec<TokenEmbeddings>, Self::Error> {
///         Ok(texts.iter().map(|t| {
///             let words: Vec<&str> = t.split_whitespace().collect();
///             let n = words.len() + 2;
///             let dim = 8;
///             let mut ids = vec![0u32];
///             ids.extend(words.iter().map(|w| 2 + (w.len() as u32 % 6)));
///             ids.push(1);
///             let mut v = vec![0f32; n * dim];
///             for (i, id) in ids.iter().enumerate() { v[i * dim + *id as usize] = 1.0; }
///             let mut special = vec![false; n];
///             special[0] = true;
///             special[n - 1] = true;
///             TokenEmbeddings::new(ids, special, dim, v).unwrap()
///         }).collect())
///     }
/// }
///
/// let r = bert_score(&OneHot, &["a cat", ""], &[vec!["a cat"], vec!["dog"]], &BertScoreConfig::default()).unwrap();
/// assert!((r.segments[0].best.f1 - 1.0).abs() < 1e-12);
/// assert_eq!(r.segments[1].best.f1, 0.0); // empty hypothesis
/// ```
pub fn bert_score<E, H, R, S>(
    embedder: &E,
    hypotheses: &[H],
    references: &[R],
    config: &BertScoreConfig,
) -> Result<BertScoreReport>
where
    E: TokenEmbedder + ?Sized,
    H: AsRef<str>,
    R: AsRef<[S]>,
    S: AsRef<str>,
{
    check_reference_sets(hypotheses.len(), references.len())?;
    check_no_empty_set(references)?;

    // Distinct texts, in first-seen order.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut texts: Vec<&str> = Vec::new();
    let mut intern = |t| {
        let next = texts.len();
        let id = *index.entry(t).or_insert(next);
        if id == next {
            texts.push(t);
        }
        id
    };
    let hyp_ids: Vec<usize> = hypotheses.iter().map(|h| intern(h.as_ref())).collect();
    let ref_ids: Vec<Vec<usize>> = references
        .iter()
        .map(|rs| rs.as_ref().iter().map(|r| intern(r.as_ref())).collect())
        .collect();

    let batch = config.batch_size.max(1);
    let mut embeddings: Vec<TokenEmbeddings> = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(batch) {
        let out = embedder
            .embed(chunk)
            .map_err(|e| MetricsError::Embedder(Box::new(e)))?;
        if out.len() != chunk.len() {
            return Err(MetricsError::EmbedderCount {
                expected: chunk.len(),
                got: out.len(),
            });
        }
        embeddings.extend(out);
    }

    let computed;
    let idf = match &config.idf {
        IdfMode::Uniform => None,
        IdfMode::Weights(w) => Some(w),
        IdfMode::FromReferences => {
            let docs: Vec<&[u32]> = ref_ids
                .iter()
                .flatten()
                .map(|&i| embeddings[i].token_ids())
                .collect();
            computed = IdfWeights::from_token_ids(&docs);
            Some(&computed)
        }
    };

    let segments = hyp_ids
        .iter()
        .zip(&ref_ids)
        .enumerate()
        .map(|(seg, (&h, rs))| {
            let refs: Vec<&TokenEmbeddings> = rs.iter().map(|&i| &embeddings[i]).collect();
            multi(&embeddings[h], &refs, idf).map_err(|e| match e {
                MetricsError::NoReference { .. } => MetricsError::NoReference { segment: seg },
                other => other,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mean =
        |f: fn(&SegmentBertScore) -> f64| numpy_mean(&segments.iter().map(f).collect::<Vec<_>>());
    Ok(BertScoreReport {
        precision: mean(|s| s.best.precision),
        recall: mean(|s| s.best.recall),
        f1: mean(|s| s.best.f1),
        segments,
    })
}

/// Unit-length copies of the token vectors (a zero vector stays zero).
fn normalized(e: &TokenEmbeddings) -> Vec<f64> {
    let mut out: Vec<f64> = e.vectors.iter().map(|&v| v as f64).collect();
    if e.dim == 0 {
        return out;
    }
    for row in out.chunks_mut(e.dim) {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
    out
}

/// Weighted mean of per-token best similarities; specials weigh 0. A zero total weight
/// (every token has idf 0) gives 0.
fn weighted_mean(best: &[f64], e: &TokenEmbeddings, idf: Option<&IdfWeights>) -> f64 {
    let mut num = 0.0;
    let mut den = 0.0;
    for (i, &b) in best.iter().enumerate() {
        if e.special[i] {
            continue;
        }
        let w = idf.map_or(1.0, |w| w.weight(e.token_ids[i]));
        num += w * b;
        den += w;
    }
    if den == 0.0 { 0.0 } else { num / den }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[CLS] words.. [SEP]` with given 2-d vectors for the words; CLS = (1,0), SEP = (0,1).
    fn emb(ids: &[u32], words: &[[f32; 2]]) -> TokenEmbeddings {
        let mut token_ids = vec![101];
        token_ids.extend_from_slice(ids);
        token_ids.push(102);
        let mut v = vec![1.0, 0.0];
        for w in words {
            v.extend_from_slice(w);
        }
        v.extend_from_slice(&[0.0, 1.0]);
        let mut special = vec![false; token_ids.len()];
        special[0] = true;
        *special.last_mut().unwrap() = true;
        TokenEmbeddings::new(token_ids, special, 2, v).unwrap()
    }

    #[test]
    fn greedy_matching_by_hand() {
        // hyp word (3,4)/5 vs ref words (1,0) and (0,2): cosines 0.6 and 0.8.
        let hyp = emb(&[7], &[[3.0, 4.0]]);
        let reference = emb(&[8, 9], &[[1.0, 0.0], [0.0, 2.0]]);
        let s = bert_score_pair(&hyp, &reference, None).unwrap();
        // P: best match of (0.6, 0.8) is ref [SEP] or (0,2): 0.8.
        assert!((s.precision - 0.8).abs() < 1e-12);
        // R: (1,0) best matches hyp [CLS] (1.0); (0,2) best matches hyp [SEP] (1.0).
        assert!((s.recall - 1.0).abs() < 1e-12);
        assert!((s.f1 - 2.0 * 0.8 / 1.8).abs() < 1e-12);
    }

    #[test]
    fn idf_weights_and_specials() {
        let docs: Vec<Vec<u32>> = vec![vec![101, 8, 9, 102], vec![101, 8, 8, 102]];
        let idf = IdfWeights::from_token_ids(&docs);
        assert_eq!(idf.weight(101), 0.0); // in every document
        assert!((idf.weight(9) - (3.0f64 / 2.0).ln()).abs() < 1e-15);
        assert!((idf.weight(12345) - 3f64.ln()).abs() < 1e-15);
        // Token 8 (in every document) weighs 0, so only token 9 counts in the recall.
        let hyp = emb(&[7], &[[1.0, 1.0]]);
        let reference = emb(&[8, 9], &[[1.0, 0.0], [0.0, 2.0]]);
        let s = bert_score_pair(&hyp, &reference, Some(&idf)).unwrap();
        assert!((s.recall - 1.0).abs() < 1e-12);
        // The hypothesis token 7 is unseen (weight ln 3) and alone, so P is its best match.
        assert!((s.precision - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
    }

    #[test]
    fn empty_and_multi_reference() {
        let blank = emb(&[], &[]);
        let hyp = emb(&[7, 8], &[[1.0, 0.0], [0.0, 1.0]]);
        assert_eq!(
            bert_score_pair(&blank, &hyp, None).unwrap(),
            BertScore::default()
        );
        assert_eq!(
            bert_score_pair(&hyp, &blank, None).unwrap(),
            BertScore::default()
        );
        let r1 = emb(&[7], &[[1.0, 0.0]]);
        let r2 = emb(&[7, 8, 9], &[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]);
        let m = bert_score_multi(&hyp, &[blank.clone(), r1.clone(), r2.clone()], None).unwrap();
        let p1 = bert_score_pair(&hyp, &r1, None).unwrap();
        let p2 = bert_score_pair(&hyp, &r2, None).unwrap();
        assert_eq!(m.per_reference.len(), 3);
        assert_eq!(m.best.precision, p1.precision.max(p2.precision));
        assert_eq!(m.best.recall, p1.recall.max(p2.recall));
        assert_eq!(m.best.f1, p1.f1.max(p2.f1));
        assert!(bert_score_multi(&hyp, &[], None).is_err());
    }

    #[test]
    fn bad_embeddings_are_errors() {
        assert!(TokenEmbeddings::new(vec![1, 2], vec![true], 2, vec![0.0; 4]).is_err());
        assert!(TokenEmbeddings::new(vec![1], vec![true], 2, vec![0.0; 3]).is_err());
        assert!(TokenEmbeddings::new(vec![1], vec![true], 1, vec![f32::NAN]).is_err());
        let a = TokenEmbeddings::new(vec![1], vec![false], 1, vec![1.0]).unwrap();
        let b = TokenEmbeddings::new(vec![1], vec![false], 2, vec![1.0, 0.0]).unwrap();
        assert!(bert_score_pair(&a, &b, None).is_err());
    }

    struct Failing;
    #[derive(Debug)]
    struct Boom;
    impl std::fmt::Display for Boom {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("boom")
        }
    }
    impl std::error::Error for Boom {}
    impl TokenEmbedder for Failing {
        type Error = Boom;
        fn embed(&self, _: &[&str]) -> std::result::Result<Vec<TokenEmbeddings>, Boom> {
            Err(Boom)
        }
    }

    #[test]
    fn embedder_errors_propagate() {
        let e =
            bert_score(&Failing, &["a"], &[vec!["b"]], &BertScoreConfig::default()).unwrap_err();
        assert!(e.to_string().contains("boom"));
        let e = bert_score(
            &Failing,
            &["a"],
            &[Vec::<&str>::new()],
            &BertScoreConfig::default(),
        )
        .unwrap_err();
        assert!(matches!(e, MetricsError::NoReference { segment: 0 }));
    }
}
