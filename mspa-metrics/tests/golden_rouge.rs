//! Golden test of ROUGE against `rouge.json` (Google's rouge-score 0.1.2, no stemmer).
//!
//! For every pair: the tokens of the hypothesis and of each reference (`hyp_tokens`,
//! `ref_tokens`); for each reference, every ROUGE type listed in `per_reference` (`rougeN`
//! and `rougeL`, each precision, recall and fmeasure); every type in `score_multi` (the
//! whole score of the best-F reference); and `rougeL_f1`.

mod common;

use common::{Checker, case_name, load, strings};
use mspa_metrics::{RougeScore, rouge_l, rouge_n, rouge_tokenize};
use serde_json::Value;

/// Computes the ROUGE type named as in rouge-score (`rouge1`, `rouge2`, ..., `rougeL`).
fn score_by_name(kind: &str, hyp: &str, refs: &[String]) -> Result<RougeScore, String> {
    if kind == "rougeL" {
        return rouge_l(hyp, refs).map_err(|e| e.to_string());
    }
    match kind
        .strip_prefix("rouge")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) => rouge_n(hyp, refs, n).map_err(|e| e.to_string()),
        None => Err(format!("unsupported ROUGE type {kind}")),
    }
}

fn check_types(
    c: &mut Checker,
    case: &str,
    prefix: &str,
    hyp: &str,
    refs: &[String],
    golden: &Value,
) {
    let Some(types) = golden.as_object() else {
        return c.fail(case, prefix, "not an object");
    };
    for (kind, g) in types {
        let field = format!("{prefix}.{kind}");
        match score_by_name(kind, hyp, refs) {
            Ok(s) => {
                let Some(parts) = g.as_object() else {
                    c.fail(case, &field, "not an object");
                    continue;
                };
                for (part, gv) in parts {
                    let f = format!("{field}.{part}");
                    match part.as_str() {
                        "precision" => c.num(case, &f, s.precision, gv),
                        "recall" => c.num(case, &f, s.recall, gv),
                        "fmeasure" => c.num(case, &f, s.fmeasure, gv),
                        _ => c.fail(case, &f, "unknown score part in golden file"),
                    }
                }
            }
            Err(e) => c.fail(case, &field, e),
        }
    }
}

#[test]
fn golden_rouge() {
    let golden = load("rouge.json");
    let mut c = Checker::new("rouge.json", &golden);
    let pairs = golden["pairs"]
        .as_array()
        .expect("rouge.json has a pairs array");
    assert!(!pairs.is_empty(), "rouge.json has no pairs");

    for (index, pair) in pairs.iter().enumerate() {
        let name = case_name(pair, index);
        let (Some(hyp), Some(refs)) = (pair["hypothesis"].as_str(), strings(&pair["references"]))
        else {
            c.fail(&name, "hypothesis/references", "missing or not strings");
            continue;
        };
        if let Some(g) = strings(&pair["hyp_tokens"]) {
            c.eq(&name, "hyp_tokens", rouge_tokenize(hyp), g);
        }
        if let Some(g) = pair["ref_tokens"].as_array() {
            let ours: Vec<Vec<String>> = refs.iter().map(|r| rouge_tokenize(r)).collect();
            let g: Vec<Vec<String>> = g.iter().map(|t| strings(t).unwrap_or_default()).collect();
            c.eq(&name, "ref_tokens", ours, g);
        }
        if let Some(per_ref) = pair["per_reference"].as_array() {
            c.eq(&name, "per_reference.len", refs.len(), per_ref.len());
            for (i, (r, g)) in refs.iter().zip(per_ref).enumerate() {
                let prefix = format!("per_reference[{i}]");
                check_types(&mut c, &name, &prefix, hyp, std::slice::from_ref(r), g);
            }
        }
        if let Some(g) = pair.get("score_multi") {
            check_types(&mut c, &name, "score_multi", hyp, &refs, g);
        }
        if let Some(g) = pair.get("rougeL_f1") {
            match rouge_l(hyp, &refs) {
                Ok(s) => c.num(&name, "rougeL_f1", s.fmeasure, g),
                Err(e) => c.fail(&name, "rougeL_f1", e.to_string()),
            }
        }
    }
    c.finish();
}
