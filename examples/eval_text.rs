//! Scores generated text against references: corpus BLEU-4 (sacrebleu 2.6 defaults, with
//! its signature) and ROUGE-L (Google rouge-score, mean over segments). BERTScore
//! (`--model DIR`) comes with the MiniLM text encoder of `mspa-modal`.
//!
//! ```text
//! cargo run --release --example eval_text -- --hyp hyp.txt --ref ref1.txt [--ref ref2.txt ...] [--json]
//!     [--device flex]
//! ```
//!
//! Files hold one sentence per line; every reference file must have as many lines as the
//! hypothesis file. Errors (unreadable file, invalid UTF-8, mismatched line counts) go to
//! stderr, naming the file (and line), with a non-zero exit status.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use mspa_metrics::{BleuScore, corpus_bleu, corpus_rouge_l};
use mspa_modal::device_from_name;
use serde::Serialize;

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

    /// Burn device (flex, ndarray, wgpu, cuda, cpu); BLEU and ROUGE need none, so it is
    /// only checked, like every example's `--device`.
    #[arg(long, value_name = "NAME", default_value = "flex")]
    device: String,
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
    device_from_name(&args.device).map_err(|e| e.to_string())?;
    let report = Report {
        segments: hyps.len(),
        references: args.refs.len(),
        bleu,
        rouge_l: RougeL {
            precision: rouge.precision,
            recall: rouge.recall,
            fmeasure: rouge.fmeasure,
        },
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
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
