//! The MiniLM paths: sentence embeddings of composed texts and BERTScore in
//! `evaluate_texts`.
//!
//! Weights: env `MSPA_MINILM_DIR`, else `../shared/models/all-MiniLM-L6-v2` next to the
//! workspace; without them every test prints a skip line and passes.

use std::path::PathBuf;
use std::sync::OnceLock;

use burn::tensor::Device;
use mspa_composer::composer::{ComposeContext, Composer, HistoryQuery};
use mspa_composer::eval::evaluate_texts;
use mspa_composer::schema::PreferenceSchema;
use mspa_composer::template::{KeywordLexicon, TemplateComposer, TemplateConfig};
use mspa_core::{Author, DatasetBuilder, ExternalId};
use mspa_modal::text::BertEmbedder;

fn embedder() -> Option<&'static BertEmbedder> {
    static EMBEDDER: OnceLock<Option<BertEmbedder>> = OnceLock::new();
    let e = EMBEDDER.get_or_init(|| {
        let dir = std::env::var_os("MSPA_MINILM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../shared/models/all-MiniLM-L6-v2"
                ))
            });
        if !dir.join("config.json").is_file() {
            return None;
        }
        Some(
            BertEmbedder::from_pretrained(&dir, &Device::flex())
                .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display())),
        )
    });
    if e.is_none() {
        println!("skipped: MiniLM weights not found (set MSPA_MINILM_DIR)");
    }
    e.as_ref()
}

#[test]
fn composer_minilm_embeds_composed_texts() {
    let Some(bert) = embedder() else { return };
    let mut b = DatasetBuilder::default();
    let mut a = Author::bare(ExternalId::from("a0"));
    a.title = "Gameplay tonight".into();
    let a0 = b.add_author(a).unwrap();
    let mut a = Author::bare(ExternalId::from("a1"));
    a.title = "Recettes ce soir".into();
    let a1 = b.add_author(a).unwrap();
    let u = b.user(ExternalId::from("u0"));
    b.push_event(u, a0, 1.0, 0);
    b.push_event(u, a1, 1.0, 10);
    let ds = b.build(None);
    let schema = world_schema();
    let mut lexicon = KeywordLexicon::default();
    let categories = lexicon.fields.entry("categories".into()).or_default();
    categories.insert("gaming".into(), vec!["gameplay".into()]);
    categories.insert("cooking".into(), vec!["recettes".into()]);
    let config = TemplateConfig {
        tipping: None,
        ..Default::default()
    };
    let t = TemplateComposer::fit(&schema, &lexicon, &[], config).unwrap();
    let ctx = ComposeContext {
        dataset: &ds,
        features: None,
        text_encoder: Some(bert),
    };
    let tips = ds.events();
    let queries = [
        HistoryQuery {
            tips: &tips[..1],
            at_ms: 20,
        },
        HistoryQuery {
            tips: &tips[1..],
            at_ms: 20,
        },
        HistoryQuery {
            tips: &tips[..1],
            at_ms: 20,
        },
    ];
    let out = t.compose_batch(&ctx, &queries).unwrap();
    assert_eq!(out[0].fields.values[0], ["gaming"]);
    assert_eq!(out[1].fields.values[0], ["cooking"]);
    for p in &out {
        assert_eq!(p.embedding.len(), bert.dim());
        let norm: f32 = p.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(dot(&out[0].embedding, &out[2].embedding) > 0.9999);
    let cross = dot(&out[0].embedding, &out[1].embedding);
    assert!(cross < 0.999 && cross > 0.5, "{cross}");
    // A single call gives the same vector as the batch.
    let single = t.compose(&ctx, queries[1]).unwrap();
    let same = dot(&single.embedding, &out[1].embedding);
    assert!(same > 0.9999, "{same}");
}

#[test]
fn composer_minilm_bertscore_in_text_evaluation() {
    let Some(bert) = embedder() else { return };
    let schema = world_schema();
    let refs = vec![
        "categories: music, dance | energy: high | audio: electronic | visuals: neon | language: english | format: solo | tipping: frequent, generous".to_string(),
        "categories: gaming | energy: low | audio: rock | visuals: dark | language: french | format: collab | tipping: rare, modest".to_string(),
    ];
    let same = evaluate_texts(&schema, &refs, &refs, Some(bert)).unwrap();
    let f1 = same.bertscore_f1.unwrap();
    assert!((f1 - 1.0).abs() < 1e-5, "{f1}");
    let hyps = vec![refs[1].clone(), refs[0].clone()];
    let swapped = evaluate_texts(&schema, &hyps, &refs, Some(bert)).unwrap();
    let f1s = swapped.bertscore_f1.unwrap();
    assert!(f1s < f1 && f1s > 0.5, "{f1s}");
    eprintln!("BERTScore F1: identical {f1:.4}, swapped {f1s:.4}");
}

/// The synthetic world's reference grammar as a schema (the world publishes it as JSON).
fn world_schema() -> PreferenceSchema {
    PreferenceSchema::from_json(&mspa_core::synth::reference::schema_json()).unwrap()
}
