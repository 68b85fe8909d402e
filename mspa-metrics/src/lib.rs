//! Ranking and text metrics for MSPA that reproduce the reference implementations
//! (RecBole / Cornac for ranking, sacrebleu 2.6 for BLEU, Google's rouge-score for ROUGE,
//! bert-score for BERTScore) to the last digit. Pure Rust, no model dependencies.
//!
//! * Ranking: per-list metrics ([`list_metrics`]: Recall, Precision, NDCG, HitRate, RR at
//!   each K, and MRR) and a parallel, memory-bounded full-ranking evaluator
//!   ([`FullRankingEvaluator`]) with top-K partial selection ([`top_k`]).
//! * Text: [`corpus_bleu`] / [`sentence_bleu`] (with [`tokenize_13a`]), [`rouge_l`] /
//!   [`rouge_n`] / [`corpus_rouge_l`], and [`bert_score`] over any [`TokenEmbedder`].
//! * Significance: [`paired_bootstrap`], the percentile bootstrap interval of the paired
//!   difference of two models' per-user metrics, and [`group_bootstrap`] for two
//!   independent groups.
//! * Probes: [`linear_probe`], the held-out accuracy of a ridge classifier of a label
//!   from a frozen feature.
//!
//! ```
//! use mspa_metrics::{corpus_bleu, list_metrics, rouge_l};
//!
//! let m = list_metrics(&[10, 4, 7], &[4], &[1, 10]).unwrap();
//! assert_eq!(m.at(10).unwrap().recall, 1.0);
//!
//! let bleu = corpus_bleu(&["the cat sat on the mat"], &[vec!["the cat sat on the mat"]]).unwrap();
//! assert!((bleu.score - 100.0).abs() < 1e-9);
//!
//! let r = rouge_l("The cat sat.", &["the cat sat"]).unwrap();
//! assert_eq!(r.fmeasure, 1.0);
//! ```

#![warn(missing_docs)]

mod bertscore;
mod bleu;
mod bleu_counts;
mod bootstrap;
mod error;
mod evaluator;
mod probe;
mod ranking;
mod rouge;
mod sum;
mod tokenize_13a;
mod topk;

pub use bertscore::{
    BertScore, BertScoreConfig, BertScoreReport, IdfMode, IdfWeights, SegmentBertScore,
    TokenEmbedder, TokenEmbeddings, bert_score, bert_score_multi, bert_score_pair,
};
pub use bleu::{
    Bleu, BleuConfig, BleuScore, BleuTokenizer, MAX_NGRAM_ORDER, SACREBLEU_VERSION, Smoothing,
    corpus_bleu, sentence_bleu,
};
pub use bootstrap::{GroupDifference, PairedDifference, group_bootstrap, paired_bootstrap};
pub use error::{MetricsError, Result};
pub use evaluator::{
    EvalUser, FullRankingEvaluator, MeanAtK, MeanMetrics, Protocol, RankingReport, UserResult,
};
pub use probe::{ProbeScore, ProbeTask, linear_probe, linear_probes};
pub use ranking::{
    AtCutoff, ListMetrics, MetricsAtK, hit_rate_at_k, list_metrics, ndcg_at_k, precision_at_k,
    recall_at_k, reciprocal_rank,
};
pub use rouge::{
    RougeCorpus, RougeScore, corpus_rouge_l, rouge_l, rouge_l_tokens, rouge_n, rouge_n_tokens,
    rouge_tokenize,
};
pub use sum::{numpy_mean, pairwise_sum};
pub use tokenize_13a::tokenize_13a;
pub use topk::{Score, top_k};
