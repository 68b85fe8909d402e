//! Fits the three composers (learned, template, nearest-user) on the training users of a
//! synthetic world and compares their preference texts with the reference texts of the
//! held-out users: BLEU-4, ROUGE-L, BERTScore F1 (MiniLM) and field F1.
//!
//! ```text
//! cargo run --release --example compose -- --data DIR --device NAME [--users N] [--json]
//!     [--model MINILM_DIR] [--epochs N] [--seed S] [--config LEARNED_JSON]
//! ```
//!
//! `--data` is a world written by `examples/synth.rs` (its `truth.json` holds the
//! references). Author features are extracted once and cached in `DIR/features.safetensors`
//! (a rerun reuses them). The text encoder (author text features, text embeddings and
//! BERTScore) is MiniLM from `--model`, `MSPA_MINILM_DIR` or
//! `../shared/models/all-MiniLM-L6-v2`; without one authors have no text features and
//! BERTScore is `null`. `--users N` evaluates (and prints) only the first `N` held-out
//! users; by default every held-out user is evaluated and five are printed. With `--json`
//! stdout is one object with a key per composer (`learned`, `template`, `nearest`), each
//! holding `bleu4`, `rouge_l`, `bertscore_f1`, `field_f1`, `per_field`, `n` and
//! `fit_seconds`, all computed on the same held-out users. Progress goes to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use mspa::composer::composer::{ComposeContext, Composer, HistoryQuery};
use mspa::composer::eval::{PairConfig, TextEvaluation, evaluate_texts, reference_pairs};
use mspa::composer::learned::{LearnedComposer, LearnedComposerConfig};
use mspa::composer::nearest::NearestComposer;
use mspa::composer::template::{TemplateComposer, TemplateConfig};
use mspa::core::synth::Truth;
use mspa::modal::features::{ExtractOptions, ExtractorConfig, FeatureExtractor};
use serde_json::{Value, json};

#[path = "support/mod.rs"]
mod support;
use support::{cli, progress};

/// Composer comparison on the held-out users of a synthetic world.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    device: cli::DeviceArg,
    /// The synthetic world directory (written by the `synth` example).
    #[arg(long)]
    data: PathBuf,
    /// Folder of the MiniLM model (text features, embeddings, BERTScore).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Evaluate and print only the first N held-out users (default: evaluate all, print 5).
    #[arg(long)]
    users: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Epochs of the learned composer (default: its config's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed of the learned composer and of the held-out split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// JSON file with the learned composer's config (keys left out keep their defaults;
    /// `--epochs` and `--seed` override it).
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    cli::main(run)
}

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// One composer's scores as JSON.
fn scores_json(eval: &TextEvaluation, fit_seconds: f64) -> Value {
    json!({
        "bleu4": eval.bleu4,
        "rouge_l": eval.rouge_l,
        "bertscore_f1": eval.bertscore_f1,
        "field_f1": eval.field_f1,
        "per_field": eval.per_field,
        "n": eval.n,
        "parse_failures": eval.parse_failures,
        "fit_seconds": fit_seconds,
    })
}

fn run(args: &Args) -> AnyResult<()> {
    let start = Instant::now();
    if args.users == Some(0) {
        return Err("--users must be at least 1".into());
    }
    let device = args.device.open()?;
    let dataset = mspa::core::load_native(&args.data)?;
    let truth = Truth::load(&args.data)?;
    let (model_dir, text_encoder) = cli::text_encoder(
        args.model.as_ref(),
        &device,
        "no text features, no BERTScore",
    )?;

    // Features, cached beside the world.
    let extractor = FeatureExtractor::with_default_encoders(
        ExtractorConfig::default(),
        text_encoder.clone(),
        truth.config().seed,
        &device,
    )?;
    let bar = progress::bar("features", dataset.n_authors() as u64, false);
    let extraction = extractor.extract_cached(
        &dataset,
        &args.data.join("features.safetensors"),
        ExtractOptions::default(),
        progress::counter(&bar),
    )?;
    bar.finish();
    eprintln!(
        "features: {} authors ({} computed, {} reused)",
        dataset.n_authors(),
        extraction.computed,
        extraction.reused
    );
    let features = extraction.features;

    // Pairs and composers.
    let schema = mspa::pipeline::world_schema();
    let ctx = ComposeContext {
        dataset: &dataset,
        features: Some(&features),
        text_encoder: text_encoder.as_ref(),
    };
    let pair_config = PairConfig {
        seed: args.seed,
        ..PairConfig::default()
    };
    let pairs = reference_pairs(
        &dataset,
        &truth.references(),
        &mspa::core::Split::leave_last_out(&dataset),
        &pair_config,
    )?;
    if pairs.heldout.is_empty() {
        return Err("the world has no held-out users (too few users)".into());
    }
    if pairs.train.is_empty() {
        return Err("the world has no training pairs (too few users)".into());
    }
    let heldout = &pairs.heldout[..args.users.unwrap_or(usize::MAX).min(pairs.heldout.len())];
    eprintln!(
        "{} training pairs, {} held-out users ({} evaluated)",
        pairs.train.len(),
        pairs.heldout.len(),
        heldout.len()
    );

    let t = Instant::now();
    let template =
        TemplateComposer::learn(&schema, &dataset, &pairs.train, TemplateConfig::default())?;
    let template_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let nearest = NearestComposer::fit(&schema, &ctx, &pairs.train)?;
    let nearest_seconds = t.elapsed().as_secs_f64();

    let mut config = match &args.config {
        Some(path) => cli::read_json::<LearnedComposerConfig>(path)?,
        None => LearnedComposerConfig::default(),
    };
    config.seed = args.seed;
    if let Some(epochs) = args.epochs {
        config.epochs = epochs;
    }
    let epochs = config.epochs;
    let t = Instant::now();
    let learned = LearnedComposer::fit(config, &schema, &ctx, &pairs.train, &device, |e, loss| {
        eprintln!("learned composer: epoch {}/{epochs}, loss {loss:.4}", e + 1)
    })?;
    let learned_seconds = t.elapsed().as_secs_f64();
    eprintln!("learned composer fitted in {learned_seconds:.1} s");

    // Compose and score the held-out users.
    let queries: Vec<HistoryQuery<'_>> = heldout.iter().map(|p| p.query(&dataset)).collect();
    let references: Vec<String> = heldout.iter().map(|p| p.reference.clone()).collect();
    let composers: [(&dyn Composer, f64); 3] = [
        (&learned, learned_seconds),
        (&template, template_seconds),
        (&nearest, nearest_seconds),
    ];
    let mut texts: Vec<Vec<String>> = Vec::new();
    let mut evals: Vec<(String, TextEvaluation, f64)> = Vec::new();
    for (composer, seconds) in composers {
        eprintln!("composing with {}", composer.name());
        let composed = composer.compose_batch(&ctx, &queries)?;
        let hyps: Vec<String> = composed.into_iter().map(|p| p.text).collect();
        let eval = evaluate_texts(&schema, &hyps, &references, text_encoder.as_ref())?;
        texts.push(hyps);
        evals.push((composer.name().to_string(), eval, seconds));
    }

    let shown = args.users.unwrap_or(5).min(heldout.len());
    let examples: Vec<Value> = (0..shown)
        .map(|i| {
            let mut o = serde_json::Map::new();
            o.insert(
                "user".into(),
                json!(dataset.user_external(heldout[i].user).to_string()),
            );
            o.insert("tips".into(), json!(heldout[i].tips.len()));
            o.insert("reference".into(), json!(references[i]));
            for ((name, _, _), hyps) in evals.iter().zip(&texts) {
                o.insert(name.clone(), json!(hyps[i]));
            }
            Value::Object(o)
        })
        .collect();

    if args.json {
        let mut report = serde_json::Map::new();
        for (name, eval, seconds) in &evals {
            report.insert(name.clone(), scores_json(eval, *seconds));
        }
        report.insert("data".into(), json!(args.data.display().to_string()));
        report.insert("device".into(), json!(args.device.name));
        report.insert(
            "text_model".into(),
            json!(model_dir.map(|d| d.display().to_string())),
        );
        report.insert("train_pairs".into(), json!(pairs.train.len()));
        report.insert("heldout_users".into(), json!(pairs.heldout.len()));
        report.insert("evaluated".into(), json!(heldout.len()));
        report.insert("examples".into(), Value::Array(examples));
        report.insert("seconds".into(), json!(start.elapsed().as_secs_f64()));
        println!("{}", Value::Object(report));
    } else {
        for ex in &examples {
            println!(
                "user {} ({} tips)",
                ex["user"].as_str().unwrap_or("?"),
                ex["tips"]
            );
            println!("  reference : {}", ex["reference"].as_str().unwrap_or(""));
            for (name, _, _) in &evals {
                println!("  {name:<10}: {}", ex[name].as_str().unwrap_or(""));
            }
            println!();
        }
        println!(
            "{} held-out users; composer  BLEU-4  ROUGE-L  BERTScore-F1  field-F1  fit (s)",
            heldout.len()
        );
        for (name, eval, seconds) in &evals {
            let bert = eval
                .bertscore_f1
                .map(|b| format!("{b:.4}"))
                .unwrap_or_else(|| "-".into());
            println!(
                "  {name:<10} {:7.2}  {:.4}   {bert:>12}  {:.4}   {seconds:7.1}",
                eval.bleu4, eval.rouge_l, eval.field_f1
            );
        }
        for (name, eval, _) in &evals {
            let per: Vec<String> = eval
                .per_field
                .iter()
                .map(|f| format!("{} {:.3}", f.name, f.f1))
                .collect();
            println!("  {name:<10} field F1: {}", per.join(", "));
        }
    }
    Ok(())
}
