//! Golden test of BLEU against `bleu.json` (sacrebleu 2.6.0).
//!
//! For every case and every segment: the 13a tokens of the hypothesis and of each
//! reference (`hyp_tokens_13a`, `ref_tokens_13a`) and every field of
//! `sacrebleu_sentence_bleu`; for every case, every field of `sacrebleu_corpus_bleu` and
//! `sacrebleu_signature`. The `nltk_*` fields document a different library (NLTK's
//! unsmoothed BLEU on a 0-1 scale) and are not this crate's metric.

mod common;

use common::{Checker, case_name, load, strings};
use mspa_metrics::{BleuScore, corpus_bleu, sentence_bleu, tokenize_13a};
use serde_json::Value;

fn check_score(c: &mut Checker, case: &str, prefix: &str, ours: &BleuScore, golden: &Value) {
    let Some(fields) = golden.as_object() else {
        return c.fail(case, prefix, "golden score is not an object");
    };
    for (name, g) in fields {
        let field = format!("{prefix}.{name}");
        match name.as_str() {
            "score" => c.num(case, &field, ours.score, g),
            "counts" => c.ints(case, &field, &ours.counts, g),
            "totals" => c.ints(case, &field, &ours.totals, g),
            "precisions" => c.nums(case, &field, &ours.precisions, g),
            "bp" => c.num(case, &field, ours.bp, g),
            "sys_len" => c.int(case, &field, ours.sys_len, g),
            "ref_len" => c.int(case, &field, ours.ref_len, g),
            "signature" => c.eq(case, &field, Some(ours.signature.as_str()), g.as_str()),
            _ => c.fail(case, &field, "unknown BLEU field in golden file"),
        }
    }
}

fn tokens(s: &str) -> Vec<String> {
    tokenize_13a(s)
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn golden_bleu() {
    let golden = load("bleu.json");
    let mut c = Checker::new("bleu.json", &golden);
    let cases = golden["cases"]
        .as_array()
        .expect("bleu.json has a cases array");
    assert!(!cases.is_empty(), "bleu.json has no cases");

    for (index, case) in cases.iter().enumerate() {
        let name = case_name(case, index);
        let Some(segments) = case["segments"].as_array() else {
            c.fail(&name, "segments", "missing");
            continue;
        };
        let mut hyps = Vec::new();
        let mut refs = Vec::new();
        for (s, seg) in segments.iter().enumerate() {
            let seg_name = format!("{name}#{s}");
            let (Some(hyp), Some(seg_refs)) =
                (seg["hypothesis"].as_str(), strings(&seg["references"]))
            else {
                c.fail(&seg_name, "hypothesis/references", "missing or not strings");
                continue;
            };
            if let Some(g) = strings(&seg["hyp_tokens_13a"]) {
                c.eq(&seg_name, "hyp_tokens_13a", tokens(hyp), g);
            }
            if let Some(g) = seg["ref_tokens_13a"].as_array() {
                let ours: Vec<Vec<String>> = seg_refs.iter().map(|r| tokens(r)).collect();
                let g: Vec<Vec<String>> =
                    g.iter().map(|t| strings(t).unwrap_or_default()).collect();
                c.eq(&seg_name, "ref_tokens_13a", ours, g);
            }
            if let Some(g) = seg.get("sacrebleu_sentence_bleu") {
                match sentence_bleu(hyp, &seg_refs) {
                    Ok(ours) => check_score(&mut c, &seg_name, "sacrebleu_sentence_bleu", &ours, g),
                    Err(e) => c.fail(&seg_name, "sacrebleu_sentence_bleu", e.to_string()),
                }
            }
            hyps.push(hyp.to_string());
            refs.push(seg_refs);
        }
        match corpus_bleu(&hyps, &refs) {
            Ok(ours) => {
                if let Some(g) = case.get("sacrebleu_corpus_bleu") {
                    check_score(&mut c, &name, "sacrebleu_corpus_bleu", &ours, g);
                }
                if let Some(g) = case.get("sacrebleu_signature") {
                    c.eq(
                        &name,
                        "sacrebleu_signature",
                        Some(ours.signature.as_str()),
                        g.as_str(),
                    );
                }
            }
            Err(e) => c.fail(&name, "sacrebleu_corpus_bleu", e.to_string()),
        }
    }
    c.finish();
}
