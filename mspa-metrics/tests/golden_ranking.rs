//! Golden test of the ranking metrics against `ranking.json` (NumPy float64 values,
//! cross-checked with Cornac).
//!
//! For every case: `list_metrics(ranked, ground_truth, K)` must reproduce every field of
//! `expected` (`first_hit_rank`, `mrr`, and per K `hits`, `precision`, `recall`,
//! `recall_trunc`, `ndcg`, `hit_rate`, `rr`). The same case is then replayed through the
//! full-ranking evaluator (scores that reproduce the list, plus decoy training items with
//! the highest scores that the new-authors protocol must exclude); its metrics must agree
//! for every K up to the list length, where a full ranking and the given list coincide.

mod common;

use std::collections::HashMap;

use common::{Checker, case_name, load};
use mspa_metrics::{EvalUser, FullRankingEvaluator, MetricsAtK, Protocol, list_metrics};
use serde_json::Value;

/// Compares one metric set with a golden `at_k` entry, field by field as the file names them.
fn check_at_k(c: &mut Checker, case: &str, prefix: &str, ours: &MetricsAtK, golden: &Value) {
    let Some(fields) = golden.as_object() else {
        return c.fail(case, prefix, "golden at_k entry is not an object");
    };
    for (name, g) in fields {
        let field = format!("{prefix}.{name}");
        match name.as_str() {
            "hits" => c.int(case, &field, ours.hits, g),
            "precision" => c.num(case, &field, ours.precision, g),
            "recall" => c.num(case, &field, ours.recall, g),
            "recall_trunc" => c.num(case, &field, ours.recall_trunc, g),
            "ndcg" => c.num(case, &field, ours.ndcg, g),
            "hit_rate" => c.num(case, &field, ours.hit_rate, g),
            "rr" => c.num(case, &field, ours.rr, g),
            _ => c.fail(case, &field, "unknown metric in golden file"),
        }
    }
}

fn ids(v: &Value) -> Option<Vec<u64>> {
    v.as_array()?.iter().map(Value::as_u64).collect()
}

#[test]
fn golden_ranking() {
    let golden = load("ranking.json");
    let mut c = Checker::new("ranking.json", &golden);
    let cases = golden["cases"]
        .as_array()
        .expect("ranking.json has a cases array");
    assert!(!cases.is_empty(), "ranking.json has no cases");

    for (index, case) in cases.iter().enumerate() {
        let name = case_name(case, index);
        let (Some(ranked), Some(gt)) = (ids(&case["ranked"]), ids(&case["ground_truth"])) else {
            c.fail(
                &name,
                "ranked/ground_truth",
                "not arrays of non-negative integers",
            );
            continue;
        };
        let expected = &case["expected"];
        let Some(at_k) = expected["at_k"].as_object() else {
            c.fail(&name, "expected.at_k", "missing");
            continue;
        };
        let mut ks = Vec::new();
        for key in at_k.keys() {
            match key.parse::<usize>() {
                Ok(k) => ks.push(k),
                Err(_) => c.fail(
                    &name,
                    &format!("expected.at_k.{key}"),
                    "K is not an integer",
                ),
            }
        }

        // Per-list metrics.
        let ours = match list_metrics(&ranked, &gt, &ks) {
            Ok(m) => m,
            Err(e) => {
                c.fail(&name, "list_metrics", e.to_string());
                continue;
            }
        };
        c.num(&name, "mrr", ours.mrr, &expected["mrr"]);
        match (&expected["first_hit_rank"], ours.first_hit_rank) {
            (Value::Null, None) => c.checks += 1,
            (g, Some(r)) => c.int(&name, "first_hit_rank", r, g),
            (g, None) => c.fail(&name, "first_hit_rank", format!("ours null != golden {g}")),
        }
        for (key, g) in at_k {
            let Ok(k) = key.parse::<usize>() else {
                continue;
            };
            let m = ours.at(k).expect("requested K is present");
            check_at_k(&mut c, &name, &format!("at_k.{k}"), m, g);
        }

        // The same list through the full-ranking evaluator.
        let mut index_of: HashMap<u64, usize> = HashMap::new();
        for id in ranked.iter().chain(&gt) {
            let next = index_of.len();
            index_of.entry(*id).or_insert(next);
        }
        if index_of.len() < ranked.len() + gt.iter().filter(|g| !ranked.contains(g)).count() {
            continue; // repeated items in the list: no full ranking reproduces it
        }
        let decoys: Vec<usize> = (0..3).map(|d| index_of.len() + d).collect();
        let num_items = index_of.len() + decoys.len() + 2; // two more never-relevant items
        let mut scores = vec![-1.0f64; num_items];
        for (pos, id) in ranked.iter().enumerate() {
            scores[index_of[id]] = (ranked.len() - pos) as f64;
        }
        for &d in &decoys {
            scores[d] = 1e9;
        }
        let eval_ks: Vec<usize> = ks.iter().copied().filter(|&k| k <= ranked.len()).collect();
        let eval = FullRankingEvaluator::new(
            num_items,
            if eval_ks.is_empty() { &[1] } else { &eval_ks },
            Protocol::NewAuthors,
        )
        .expect("valid cut-offs");
        let user = EvalUser {
            user: index as u64,
            targets: gt.iter().map(|id| index_of[id]).collect(),
            train: decoys.clone(),
        };
        let report = match eval.evaluate_rows(std::slice::from_ref(&user), &[scores]) {
            Ok(r) => r,
            Err(e) => {
                c.fail(&name, "evaluator", e.to_string());
                continue;
            }
        };
        if gt.is_empty() {
            continue;
        }
        let res = &report.per_user[0];
        for &k in &eval_ks {
            let m = res.all.at(k).expect("requested K is present");
            check_at_k(
                &mut c,
                &name,
                &format!("evaluator.at_k.{k}"),
                m,
                &at_k[&k.to_string()],
            );
        }
        match (&expected["first_hit_rank"], res.all.first_hit_rank) {
            (Value::Null, Some(r)) if r > ranked.len() => c.checks += 1,
            (Value::Null, None) => c.checks += 1,
            (g, Some(r)) => c.int(&name, "evaluator.first_hit_rank", r, g),
            (g, None) => c.fail(
                &name,
                "evaluator.first_hit_rank",
                format!("ours null != golden {g}"),
            ),
        }
    }
    c.finish();
}
