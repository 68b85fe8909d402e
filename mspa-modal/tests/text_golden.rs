//! The pretrained MiniLM encoder against `golden/bertscore.json` (bert-score 0.3.13 /
//! transformers on CPU, float32): tokenizer ids, last hidden states of the probe sentence,
//! and BERTScore of every pair, each to 1e-4.
//!
//! Weights: env `MSPA_MINILM_DIR`, else `../shared/models/all-MiniLM-L6-v2` next to the
//! workspace; without them every test prints a skip line and passes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use burn::tensor::{Device, Int, Tensor, TensorData};
use mspa_metrics::{BertScore, BertScoreConfig, bert_score};
use mspa_modal::text::BertEmbedder;
use serde_json::Value;

const TOL: f64 = 1e-4;

fn minilm_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MSPA_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/models/all-MiniLM-L6-v2"
            ))
        });
    dir.join("config.json").is_file().then_some(dir)
}

fn golden() -> Value {
    let dir = std::env::var_os("MSPA_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../golden")));
    let path = dir.join("bertscore.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The embedder, loaded once per test binary; `None` (after printing the skip line) when
/// the weights are absent.
fn embedder() -> Option<&'static BertEmbedder> {
    static EMBEDDER: OnceLock<Option<BertEmbedder>> = OnceLock::new();
    let e = EMBEDDER.get_or_init(|| {
        let dir = minilm_dir()?;
        let device = Device::flex();
        Some(
            BertEmbedder::from_pretrained(&dir, &device)
                .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display())),
        )
    });
    if e.is_none() {
        println!("skipped: MiniLM weights not found (set MSPA_MINILM_DIR)");
    }
    e.as_ref()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn tokenizer_reproduces_every_golden_token_id_list() {
    let Some(embedder) = embedder() else { return };
    let g = golden();
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut cases: Vec<(String, Vec<u32>)> = g["token_ids"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(text, ids)| (text.clone(), ids_of(ids)))
        .collect();
    let probe = &g["embedding_probe"];
    cases.push((
        probe["sentence"].as_str().unwrap().to_string(),
        ids_of(&probe["token_ids"]),
    ));
    for (text, expected) in &cases {
        // bert-score's sent_encode strips the text first.
        let got = embedder.tokenizer().encode(text.trim()).unwrap().ids;
        checked += 1;
        if &got != expected {
            failures.push(format!(
                "token_ids[{text:?}]: expected {expected:?}, got {got:?}"
            ));
        }
    }
    println!(
        "tokenizer: {}/{checked} texts agree",
        checked - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn last_hidden_state_matches_the_probe() {
    let Some(embedder) = embedder() else { return };
    let g = golden();
    let probe = &g["embedding_probe"];
    let ids: Vec<i64> = ids_of(&probe["token_ids"])
        .iter()
        .map(|&i| i as i64)
        .collect();
    let n = ids.len();
    let device = embedder.device();
    let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), device);
    let hidden: Vec<f32> = embedder
        .model()
        .forward(input, None)
        .into_data()
        .try_into_vec_as()
        .unwrap();
    let dim = embedder.dim();
    let first4 = probe["last_hidden_first4"].as_array().unwrap();
    let norms = probe["last_hidden_l2norm"].as_array().unwrap();
    let mut failures = Vec::new();
    let (mut max_first4, mut max_norm) = (0f64, 0f64);
    for t in 0..n {
        let row = &hidden[t * dim..(t + 1) * dim];
        for (j, expected) in first4[t].as_array().unwrap().iter().enumerate() {
            let (e, got) = (expected.as_f64().unwrap(), row[j] as f64);
            max_first4 = max_first4.max((e - got).abs());
            if (e - got).abs() > TOL {
                failures.push(format!(
                    "last_hidden_first4[{t}][{j}]: expected {e}, got {got}"
                ));
            }
        }
        let norm = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        let e = norms[t].as_f64().unwrap();
        max_norm = max_norm.max((e - norm).abs());
        if (e - norm).abs() > TOL {
            failures.push(format!("last_hidden_l2norm[{t}]: expected {e}, got {norm}"));
        }
    }
    println!("probe: max abs error first4 {max_first4:.3e}, l2norm {max_norm:.3e}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The token vectors of a text do not depend on the batch it is embedded with (padding
/// is masked out).
#[test]
fn batching_with_padding_does_not_change_token_vectors() {
    let Some(embedder) = embedder() else { return };
    let alone = embedder.embed_tokens(&["the cat sat on the mat"]).unwrap();
    let batched = embedder
        .embed_tokens(&[
            "",
            "In the early hours of the morning, a group of volunteers gathered at the harbor.",
            "the cat sat on the mat",
        ])
        .unwrap();
    assert_eq!(alone[0].token_ids(), batched[2].token_ids());
    let mut max = 0f32;
    for i in 0..alone[0].len() {
        for (a, b) in alone[0].vector(i).iter().zip(batched[2].vector(i)) {
            max = max.max((a - b).abs());
        }
    }
    assert!(max < 1e-4, "max abs difference {max}");
    assert!(batched[0].is_blank());
}

#[test]
fn sentence_embeddings_are_mean_pooled_and_normalized() {
    let Some(embedder) = embedder() else { return };
    let texts = [
        "a calm piano stream",
        "loud drum and bass all night long",
        "piano",
    ];
    let pooled: Vec<f32> = embedder
        .sentence_embeddings(&texts, false)
        .unwrap()
        .into_data()
        .try_into_vec_as()
        .unwrap();
    let dim = embedder.dim();
    for (i, text) in texts.iter().enumerate() {
        let tokens = &embedder.embed_tokens(&[text]).unwrap()[0];
        for j in 0..dim {
            let mean =
                (0..tokens.len()).map(|t| tokens.vector(t)[j]).sum::<f32>() / tokens.len() as f32;
            let got = pooled[i * dim + j];
            assert!(
                (mean - got).abs() < 1e-4,
                "text {i} dim {j}: {mean} vs {got}"
            );
        }
    }
    let unit: Vec<f32> = embedder
        .sentence_embeddings(&texts, true)
        .unwrap()
        .into_data()
        .try_into_vec_as()
        .unwrap();
    for row in unit.chunks(dim) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5, "norm {n}");
    }
    // Related sentences are closer than unrelated ones.
    let cos = |a: usize, b: usize| -> f32 {
        (0..dim)
            .map(|j| unit[a * dim + j] * unit[b * dim + j])
            .sum()
    };
    assert!(cos(0, 2) > cos(1, 2), "{} vs {}", cos(0, 2), cos(1, 2));
}

#[test]
fn bertscore_matches_every_golden_pair() {
    let Some(embedder) = embedder() else { return };
    let g = golden();
    // Cases in file order, segments in order within each case.
    let mut cases: BTreeMap<usize, (String, Vec<&Value>)> = BTreeMap::new();
    let mut first_seen: Vec<String> = Vec::new();
    for pair in g["pairs"].as_array().unwrap() {
        let case = pair["case"].as_str().unwrap().to_string();
        let k = match first_seen.iter().position(|c| c == &case) {
            Some(k) => k,
            None => {
                first_seen.push(case.clone());
                first_seen.len() - 1
            }
        };
        cases
            .entry(k)
            .or_insert_with(|| (case, Vec::new()))
            .1
            .push(pair);
    }
    let mut failures = Vec::new();
    let (mut max_p, mut max_r, mut max_f) = (0f64, 0f64, 0f64);
    let mut n_pairs = 0;
    for (case, pairs) in cases.values() {
        let hyps: Vec<&str> = pairs
            .iter()
            .map(|p| p["hypothesis"].as_str().unwrap())
            .collect();
        let refs: Vec<Vec<&str>> = pairs
            .iter()
            .map(|p| {
                p["references"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap())
                    .collect()
            })
            .collect();
        let report = bert_score(embedder, &hyps, &refs, &BertScoreConfig::default())
            .unwrap_or_else(|e| panic!("case {case}: {e}"));
        for (pair, seg) in pairs.iter().zip(&report.segments) {
            n_pairs += 1;
            let segment = pair["segment"].as_u64().unwrap();
            let mut check = |field: String, expected: &Value, got: f64, max: &mut f64| {
                let e = expected.as_f64().unwrap();
                *max = max.max((e - got).abs());
                if (e - got).abs() > TOL {
                    failures.push(format!(
                        "case {case} segment {segment} {field}: expected {e}, got {got}"
                    ));
                }
            };
            let mut check_score = |prefix: &str, expected: &Value, got: &BertScore| {
                check(
                    format!("{prefix}P"),
                    &expected["P"],
                    got.precision,
                    &mut max_p,
                );
                check(format!("{prefix}R"), &expected["R"], got.recall, &mut max_r);
                check(format!("{prefix}F1"), &expected["F1"], got.f1, &mut max_f);
            };
            check_score("", pair, &seg.best);
            let per_ref = pair["per_reference"].as_array().unwrap();
            assert_eq!(
                per_ref.len(),
                seg.per_reference.len(),
                "case {case} segment {segment}: number of references"
            );
            for (k, (e, got)) in per_ref.iter().zip(&seg.per_reference).enumerate() {
                check_score(&format!("per_reference[{k}]."), e, got);
            }
        }
    }
    println!(
        "bertscore: {n_pairs} pairs, max abs error P {max_p:.3e}, R {max_r:.3e}, F1 {max_f:.3e}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
