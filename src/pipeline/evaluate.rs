//! Evaluating the fitted models: both protocols per model, MSPA's paired bootstrap
//! intervals against every other model, NDCG@10 per correction step, modality weights
//! and explained examples for the report.

use mspa_align::mspa::{Inspection, MspaRecommender};
use mspa_align::recommender::{Query, Recommender, evaluate, evaluate_live};
use mspa_core::{Dataset, Target};
use mspa_metrics::{FullRankingEvaluator, Protocol, paired_bootstrap};

use super::{KS, PipelineError};
use crate::report::{ModelRow, Significance};

/// Both protocols of one model on the test targets (and the live-candidate protocol
/// when the data has broadcast times), and its NDCG@10 per test user (repeats allowed),
/// in target order.
pub(crate) fn evaluate_row(
    rec: &dyn Recommender,
    dataset: &Dataset,
    test: &[Target],
    train_seconds: f64,
) -> mspa_align::Result<(ModelRow, Vec<(u64, f64)>)> {
    let repeats = evaluate(rec, dataset, test, Protocol::RepeatsAllowed, &KS, 256)?;
    let new_authors = evaluate(rec, dataset, test, Protocol::NewAuthors, &KS, 256)?;
    let live = match dataset.live() {
        Some(_) => Some(evaluate_live(rec, dataset, test, &KS)?),
        None => None,
    };
    let per_user = repeats
        .per_user
        .iter()
        .map(|u| (u.user, u.all.at(10).map_or(0.0, |m| m.ndcg)))
        .collect();
    Ok((
        ModelRow::new(rec.name(), &repeats, &new_authors, train_seconds).with_live(live.as_ref()),
        per_user,
    ))
}

/// MSPA (the first row) against every other row: the paired bootstrap interval of the
/// difference of NDCG@10 over the same test users.
pub(crate) fn significance(
    rows: &[ModelRow],
    per_user: &[Vec<(u64, f64)>],
    resamples: usize,
    seed: u64,
) -> Result<Vec<Significance>, PipelineError> {
    let err = |message: String| PipelineError {
        stage: "significance".into(),
        message,
    };
    let (Some(mspa), Some(base)) = (rows.first(), per_user.first()) else {
        return Ok(Vec::new());
    };
    if base.is_empty() || resamples == 0 {
        return Ok(Vec::new());
    }
    let a: Vec<f64> = base.iter().map(|&(_, v)| v).collect();
    let mut out = Vec::new();
    for (row, users) in rows.iter().zip(per_user).skip(1) {
        if users.len() != base.len() || users.iter().zip(base).any(|(x, y)| x.0 != y.0) {
            return Err(err(format!(
                "{} and {} were evaluated on different test users",
                mspa.name, row.name
            )));
        }
        let b: Vec<f64> = users.iter().map(|&(_, v)| v).collect();
        let d = paired_bootstrap(&a, &b, resamples, 0.95, seed).map_err(|e| err(e.to_string()))?;
        out.push(Significance {
            model: row.name.clone(),
            delta_ndcg10: d.delta,
            ci95: [d.lo, d.hi],
            significant: d.significant(),
        });
    }
    Ok(out)
}

fn queries<'d>(dataset: &'d Dataset, targets: &[Target]) -> Vec<Query<'d>> {
    targets
        .iter()
        .map(|t| Query {
            user: t.user,
            history: t.history(dataset),
            at_ms: t.timestamp_ms,
        })
        .collect()
}

/// Test NDCG@10 of MSPA's scores at every correction step.
pub(crate) fn step_ndcg(
    rec: &MspaRecommender,
    dataset: &Dataset,
    test: &[Target],
) -> mspa_align::Result<Vec<f64>> {
    let qs = queries(dataset, test);
    let users: Vec<mspa_metrics::EvalUser> = test
        .iter()
        .zip(&qs)
        .map(|(t, q)| mspa_metrics::EvalUser {
            user: u64::from(t.user.0),
            targets: vec![t.author.index()],
            train: q.history_authors().into_iter().map(|a| a.index()).collect(),
        })
        .collect();
    let evaluator =
        FullRankingEvaluator::new(dataset.n_authors(), &[10], Protocol::RepeatsAllowed)?;
    let n = dataset.n_authors();
    rec.score_steps(&qs)?
        .into_iter()
        .map(|scores| {
            let rows: Vec<&[f32]> = scores.chunks(n).collect();
            Ok(evaluator
                .evaluate_rows(&users, &rows)?
                .all
                .ndcg(10)
                .unwrap_or(0.0))
        })
        .collect()
}

/// MSPA's inspection of every test user (its final preference and mean modality weights
/// over its top 10), in target order.
pub(crate) fn inspect_test(
    rec: &MspaRecommender,
    dataset: &Dataset,
    test: &[Target],
) -> mspa_align::Result<Inspection> {
    rec.inspect(&queries(dataset, test), 10)
}

/// The mean of the users' modality weights over their top 10.
pub(crate) fn mean_modality_weights(inspection: &Inspection) -> [f64; 3] {
    let n = inspection.users.len().max(1) as f64;
    inspection.users.iter().fold([0.0; 3], |mut sum, u| {
        for (s, w) in sum.iter_mut().zip(u.top_weights) {
            *s += f64::from(w) / n;
        }
        sum
    })
}

/// The top 5 of a few test users with their explanations, as JSON.
pub(crate) fn explained_examples(
    rec: &MspaRecommender,
    dataset: &Dataset,
    test: &[Target],
    users: usize,
) -> Vec<serde_json::Value> {
    queries(dataset, &test[..test.len().min(users)])
        .into_iter()
        .filter_map(|q| {
            let top =
                mspa_align::recommender::recommend(rec, q, 5, false, dataset.n_authors()).ok()?;
            let authors: Vec<usize> = top.iter().map(|(a, _)| a.index()).collect();
            let explained = rec.explain(q, &authors).ok()?;
            let items: Vec<serde_json::Value> = explained
                .iter()
                .zip(&top)
                .map(|(e, (a, score))| {
                    serde_json::json!({
                        "author": dataset.author(*a).id.to_string(),
                        "title": dataset.author(*a).title,
                        "score": score,
                        "modality_weights": e.modality_weights,
                        "step_scores": e.step_scores,
                    })
                })
                .collect();
            Some(serde_json::json!({
                "user": dataset.user_external(q.user).to_string(),
                "preference": explained.first().and_then(|e| e.preference.clone()),
                "top": items,
            }))
        })
        .collect()
}
