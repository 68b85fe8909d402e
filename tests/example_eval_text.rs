//! Runs the `eval_text` example on tiny files: its JSON agrees with the library, its text
//! output carries the BLEU line and signature, and bad inputs fail cleanly, naming the file.

mod common;

use std::path::Path;

use mspa_metrics::{corpus_bleu, corpus_rouge_l};
use serde_json::Value;

const HYPS: &[&str] = &[
    "The cat sat on the mat.",
    "He said \"don't go\" (finally) and it's over.",
    "",
    "Scientists have discovered a new species of frog in the rainforest.",
];
const REFS_A: &[&str] = &[
    "The cat is sitting on the mat.",
    "He finally said: \"Don't go\" - and it is over.",
    "An empty hypothesis for this one.",
    "Scientists discovered a new frog species in the rain forest.",
];
const REFS_B: &[&str] = &[
    "A cat sat on the mat.",
    "He said don't go, and then it was over.",
    "Nothing here.",
    "A new species of frog was found in the rainforest.",
];

fn write(dir: &Path, name: &str, lines: &[&str]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write test file");
    path.to_str().expect("utf-8 temp path").to_string()
}

fn close(ours: f64, printed: &Value) -> bool {
    let p = printed.as_f64().unwrap_or(f64::NAN);
    (ours - p).abs() <= 1e-12 * ours.abs().max(1.0)
}

#[test]
fn json_output_agrees_with_library() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hyp = write(dir.path(), "hyp.txt", HYPS);
    let ra = write(dir.path(), "ref_a.txt", REFS_A);
    let rb = write(dir.path(), "ref_b.txt", REFS_B);

    let out = common::run_example(
        "eval_text",
        &["--hyp", &hyp, "--ref", &ra, "--ref", &rb, "--json"],
    );
    assert!(out.status.success(), "stderr: {}", common::stderr(&out));
    let json: Value = serde_json::from_str(&common::stdout(&out)).expect("stdout is JSON");

    let refs: Vec<Vec<&str>> = REFS_A
        .iter()
        .zip(REFS_B)
        .map(|(a, b)| vec![*a, *b])
        .collect();
    let bleu = corpus_bleu(HYPS, &refs).unwrap();
    let rouge = corpus_rouge_l(HYPS, &refs).unwrap();

    assert_eq!(json["segments"], 4);
    assert_eq!(json["references"], 2);
    let b = &json["bleu"];
    assert!(
        close(bleu.score, &b["score"]),
        "score {} vs {}",
        bleu.score,
        b["score"]
    );
    assert!(close(bleu.bp, &b["bp"]));
    for (i, p) in bleu.precisions.iter().enumerate() {
        assert!(close(*p, &b["precisions"][i]), "precision {i}");
    }
    assert_eq!(b["counts"], serde_json::json!(bleu.counts));
    assert_eq!(b["totals"], serde_json::json!(bleu.totals));
    assert_eq!(b["sys_len"], bleu.sys_len);
    assert_eq!(b["ref_len"], bleu.ref_len);
    assert_eq!(
        b["signature"],
        "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    );
    assert_eq!(b["signature"].as_str(), Some(bleu.signature.as_str()));
    let r = &json["rouge_l"];
    assert!(close(rouge.fmeasure, &r["fmeasure"]));
    assert!(close(rouge.precision, &r["precision"]));
    assert!(close(rouge.recall, &r["recall"]));
}

#[test]
fn text_output_has_bleu_line_and_signature() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hyp = write(dir.path(), "hyp.txt", HYPS);
    let ra = write(dir.path(), "ref_a.txt", REFS_A);
    let out = common::run_example("eval_text", &["--hyp", &hyp, "--ref", &ra]);
    assert!(out.status.success(), "stderr: {}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(text.starts_with("BLEU = "), "{text}");
    assert!(
        text.contains("signature: nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"),
        "{text}"
    );
    assert!(text.contains("ROUGE-L F1 = "), "{text}");
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hyp = write(dir.path(), "hyp.txt", HYPS);
    let short = write(dir.path(), "short_ref.txt", &REFS_A[..3]);

    // Mismatched line counts: names the reference file.
    let out = common::run_example("eval_text", &["--hyp", &hyp, "--ref", &short]);
    common::assert_clean_failure(&out);
    assert!(
        common::stderr(&out).contains("short_ref.txt"),
        "{}",
        common::stderr(&out)
    );

    // Missing file: names it.
    let missing = dir.path().join("missing.txt");
    let out = common::run_example(
        "eval_text",
        &["--hyp", missing.to_str().unwrap(), "--ref", &short],
    );
    common::assert_clean_failure(&out);
    assert!(
        common::stderr(&out).contains("missing.txt"),
        "{}",
        common::stderr(&out)
    );

    // Invalid UTF-8 on line 2: names the file and the line.
    let bad = dir.path().join("bad_utf8.txt");
    std::fs::write(&bad, b"fine line\nbroken \xff line\n").unwrap();
    let ok2 = write(dir.path(), "two.txt", &["a", "b"]);
    let out = common::run_example(
        "eval_text",
        &["--hyp", &ok2, "--ref", bad.to_str().unwrap()],
    );
    common::assert_clean_failure(&out);
    let err = common::stderr(&out);
    assert!(
        err.contains("bad_utf8.txt") && err.contains("line 2"),
        "{err}"
    );

    // No reference at all: clap's usage error.
    let out = common::run_example("eval_text", &["--hyp", &ok2]);
    common::assert_clean_failure(&out);
}

/// The MiniLM folder: `MSPA_MINILM_DIR`, else `../shared/models/all-MiniLM-L6-v2` beside
/// the repository.
fn minilm_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("MSPA_MINILM_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models/all-MiniLM-L6-v2")
        });
    dir.join("config.json").is_file().then_some(dir)
}

#[test]
fn bertscore_with_minilm_agrees_with_the_library() {
    let Some(model) = minilm_dir() else {
        println!("skipped: MiniLM weights not found (set MSPA_MINILM_DIR)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let hyp = write(dir.path(), "hyp.txt", HYPS);
    let ra = write(dir.path(), "ref_a.txt", REFS_A);
    let out = common::run_example(
        "eval_text",
        &[
            "--hyp",
            &hyp,
            "--ref",
            &ra,
            "--model",
            model.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(out.status.success(), "stderr: {}", common::stderr(&out));
    let json: Value = serde_json::from_str(&common::stdout(&out)).expect("stdout is JSON");

    let device = burn::tensor::Device::flex();
    let embedder = mspa::modal::text::BertEmbedder::from_pretrained(&model, &device).unwrap();
    let refs: Vec<Vec<&str>> = REFS_A.iter().map(|r| vec![*r]).collect();
    let score = mspa_metrics::bert_score(
        &embedder,
        HYPS,
        &refs,
        &mspa_metrics::BertScoreConfig::default(),
    )
    .unwrap();
    let b = &json["bertscore"];
    for (name, ours) in [
        ("precision", score.precision),
        ("recall", score.recall),
        ("f1", score.f1),
    ] {
        let printed = b[name].as_f64().unwrap();
        assert!((ours - printed).abs() < 1e-6, "{name}: {ours} vs {printed}");
    }
    assert_eq!(b["layer"], 6);
    // Different texts score below identical ones.
    assert!(score.f1 > 0.5 && score.f1 < 1.0, "{}", score.f1);
}
