//! Scores generated text against references: corpus BLEU-4 (sacrebleu 2.6 defaults, with
//! its signature) and ROUGE-L (Google rouge-score, mean over segments); with `--model DIR`
//! (a Hugging Face BERT folder such as `../shared/models/all-MiniLM-L6-v2`) also BERTScore
//! (bert-score 0.3.13 semantics: last layer, no idf, no baseline rescaling).
//!
//! ```text
//! cargo run --release --example eval_text -- --hyp hyp.txt --ref ref1.txt [--ref ref2.txt ...] [--json]
//!     [--model ../shared/models/all-MiniLM-L6-v2 [--device flex]]
//! ```
//!
//! Files hold one sentence per line; every reference file must have as many lines as the
//! hypothesis file. Errors (unreadable file, invalid UTF-8, mismatched line counts) go to
//! stderr, naming the file (and line), with a non-zero exit status.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use mspa_metrics::{BertScoreConfig, BleuScore, bert_score, corpus_bleu, corpus_rouge_l};
use mspa_modal::device_from_name;
use mspa_modal::text::BertEmbedder;
use serde::Serialize;

#[path = "support/mod.rs"]
mod support;
use support::cli;

/// Corpus BLEU-4 and ROUGE-L of a hypothesis file against one or more reference files.
#[derive(Debug, Parser)]
#[command(name = "eval_text", version, about)]
struct Args {
    /// Hypothesis file, one sentence per line.
    #[arg(long, value_name = "FILE")]
    hyp: PathBuf,

    /// Reference file, line-aligned with the hypotheses; repeat for several references.
    #[arg(long = "ref", value_name = "FILE", required = true)]
    refs: Vec<PathBuf>,

    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,

    /// Hugging Face BERT folder (config.json, model.safetensors, tokenizer.json or
    /// vocab.txt): also report BERTScore with its last layer.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,

    /// Device for the BERTScore encoder: flex, ndarray, wgpu, cuda or cpu.
    #[arg(long, value_name = "NAME", default_value = "flex")]
    device: String,
}

/// Mean BERTScore over segments.
#[derive(Debug, Serialize)]
struct BertScoreSummary {
    precision: f64,
    recall: f64,
    f1: f64,
    /// The model folder.
    model: String,
    /// The hidden layer used (the last one).
    layer: usize,
}

/// Mean ROUGE-L over segments.
#[derive(Debug, Serialize)]
struct RougeL {
    precision: f64,
    recall: f64,
    fmeasure: f64,
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report {
    /// Number of segments (lines).
    segments: usize,
    /// Number of reference files.
    references: usize,
    /// Corpus BLEU with sacrebleu's fields and signature.
    bleu: BleuScore,
    /// Mean ROUGE-L F1/P/R (best reference per segment).
    rouge_l: RougeL,
    /// Mean BERTScore P/R/F1 (each the best reference per segment), with `--model`.
    #[serde(skip_serializing_if = "Option::is_none")]
    bertscore: Option<BertScoreSummary>,
}

/// Reads a text file as lines, with errors that name the file (and the line for bad UTF-8).
fn read_lines(path: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        format!("{}: line {line}: not valid UTF-8", path.display())
    })?;
    Ok(text.lines().map(str::to_string).collect())
}

fn run(args: &Args) -> Result<(), String> {
    let hyps = read_lines(&args.hyp)?;
    let mut refs: Vec<Vec<String>> = vec![Vec::with_capacity(args.refs.len()); hyps.len()];
    for path in &args.refs {
        let lines = read_lines(path)?;
        if lines.len() != hyps.len() {
            return Err(format!(
                "{}: {} lines, but the hypothesis file {} has {}",
                path.display(),
                lines.len(),
                args.hyp.display(),
                hyps.len()
            ));
        }
        for (seg, line) in refs.iter_mut().zip(lines) {
            seg.push(line);
        }
    }

    let bleu = corpus_bleu(&hyps, &refs).map_err(|e| format!("BLEU: {e}"))?;
    let rouge = corpus_rouge_l(&hyps, &refs).map_err(|e| format!("ROUGE-L: {e}"))?;
    let bertscore = match &args.model {
        Some(dir) => {
            let device = device_from_name(&args.device).map_err(|e| e.to_string())?;
            let embedder =
                BertEmbedder::from_pretrained(dir, &device).map_err(|e| e.to_string())?;
            let score = bert_score(&embedder, &hyps, &refs, &BertScoreConfig::default())
                .map_err(|e| format!("BERTScore: {e}"))?;
            Some(BertScoreSummary {
                precision: score.precision,
                recall: score.recall,
                f1: score.f1,
                model: dir.display().to_string(),
                layer: embedder.model().num_layers(),
            })
        }
        None => None,
    };
    let report = Report {
        segments: hyps.len(),
        references: args.refs.len(),
        bleu,
        rouge_l: RougeL {
            precision: rouge.precision,
            recall: rouge.recall,
            fmeasure: rouge.fmeasure,
        },
        bertscore,
    };

    if args.json {
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| format!("cannot write JSON: {e}"))?;
        println!("{text}");
    } else {
        println!("{}", report.bleu);
        println!("signature: {}", report.bleu.signature);
        println!(
            "ROUGE-L F1 = {:.4} (P = {:.4}, R = {:.4}; mean over {} segments)",
            report.rouge_l.fmeasure,
            report.rouge_l.precision,
            report.rouge_l.recall,
            report.segments
        );
        if let Some(b) = &report.bertscore {
            println!(
                "BERTScore F1 = {:.4} (P = {:.4}, R = {:.4}; {}, layer {}, no idf, no rescaling)",
                b.f1, b.precision, b.recall, b.model, b.layer
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    cli::main(run)
}
