//! `alc classify`: intent classification by nearest centroid over sentence embeddings
//! from a BERT package (.AON), with an intents file (YAML) and a centroid cache under
//! `$ALC_HOME/cache/centroids/`; `--eval` scores a labelled TSV.

use std::path::PathBuf;
use std::time::Instant;

use alc_engine::classify::{self, f32_for_json, CacheStatus, Classification, Intents};
use alc_engine::DEFAULT_THRESHOLD;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use crate::seal;

#[derive(Args)]
pub struct ClassifyArgs {
    /// Embedding package (.AON), GGUF file, or registry name.
    pub package: PathBuf,
    /// Intents file: YAML mapping of intent name to a list of example utterances.
    #[arg(long, value_name = "FILE")]
    pub intents: PathBuf,
    /// Texts to classify (none, no --file and no --eval: one text per line on stdin).
    #[arg(conflicts_with = "eval")]
    pub texts: Vec<String>,
    /// A file with one text per line (empty lines skipped).
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "eval")]
    pub file: Option<PathBuf>,
    /// Evaluate on a labelled TSV (text<TAB>intent per line, `unknown` for out of
    /// scope, optional header `utterance<TAB>intent`): accuracy in scope, unknown
    /// recall, overall accuracy.
    #[arg(long, value_name = "FILE.tsv")]
    pub eval: Option<PathBuf>,
    /// Below this cosine the text is `unknown` (default 0.437: the leave-one-out
    /// threshold of the reference evaluation of all-MiniLM-L6-v2 on
    /// data/intents/headset.yaml).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Intents listed per text in the JSON `top` list (and in the text output past 2).
    #[arg(long, default_value_t = 2)]
    pub top: usize,
    /// Print JSON (alc.classify/1; with --eval alc.classify.eval/1).
    #[arg(long)]
    pub json: bool,
    /// Compute threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Neither read nor write the centroid cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Key of a sealed package (.ava3).
    #[command(flatten)]
    pub key: seal::KeyArgs,
    /// Tokenizer of a plain .onnx model: a Hugging Face directory with tokenizer.json
    /// (default: the .onnx file's directory).
    #[arg(long, value_name = "DIR")]
    pub tokenizer: Option<PathBuf>,
}

/// The texts to classify: arguments, then --file, else stdin.
fn texts(a: &ClassifyArgs) -> Result<Vec<String>> {
    for (i, t) in a.texts.iter().enumerate() {
        if t.trim().is_empty() {
            bail!("text {} is empty; pass non-empty texts to classify", i + 1);
        }
    }
    crate::embed::gather_texts(&a.texts, a.file.as_deref(), "classify")
}

fn scored_json(s: &classify::Scored) -> serde_json::Value {
    json!({"intent": s.intent, "score": f32_for_json(s.score)})
}

pub fn classify(a: ClassifyArgs) -> Result<()> {
    if let Some(0) = a.threads {
        bail!("--threads must be at least 1");
    }
    if a.top == 0 {
        bail!("--top must be at least 1");
    }
    let threshold = a.threshold.unwrap_or(DEFAULT_THRESHOLD);
    if !threshold.is_finite() || !(-1.0..=1.0).contains(&threshold) {
        bail!("--threshold {threshold} must be a cosine in -1..=1 (default {DEFAULT_THRESHOLD})");
    }
    // Inputs first: mistakes in them are reported before the model loads.
    let intents_bytes = std::fs::read(&a.intents).with_context(|| {
        format!(
            "cannot read the intents file {} (YAML: intent name -> list of utterances)",
            a.intents.display()
        )
    })?;
    let source = a.intents.display().to_string();
    let intents_text = std::str::from_utf8(&intents_bytes)
        .map_err(|e| anyhow::anyhow!("{source}: not UTF-8 text ({e})"))?;
    let intents = Intents::parse(intents_text, &source)?;
    let eval_set = match &a.eval {
        Some(p) => {
            let s = std::fs::read_to_string(p).with_context(|| {
                format!(
                    "cannot read the labelled set {} (UTF-8 lines text<TAB>intent)",
                    p.display()
                )
            })?;
            Some(classify::parse_labelled(
                &s,
                &p.display().to_string(),
                &intents,
            )?)
        }
        None => None,
    };
    let texts = match &eval_set {
        Some(set) => set.iter().map(|l| l.text.clone()).collect(),
        None => texts(&a)?,
    };

    let threads = a.threads.unwrap_or_else(alc_engine::default_threads);
    let emb = crate::embed::open(&a.package, threads, &a.key, a.tokenizer.as_deref())?;
    let cache_dir = if a.no_cache {
        None
    } else {
        match alc_registry::default_home() {
            Ok(h) => Some(h.join("cache").join("centroids")),
            Err(e) => {
                eprintln!("warning: centroid cache off: {e}");
                None
            }
        }
    };
    let t = Instant::now();
    let (centroids, status) =
        classify::load_or_compute(&emb, &intents, &intents_bytes, cache_dir.as_deref())?;
    let centroid_ms = t.elapsed().as_secs_f64() * 1e3;
    let what = format!(
        "{} intents, {} utterances",
        intents.intents.len(),
        intents.n_utterances()
    );
    let cache = match &status {
        CacheStatus::Hit(p) => {
            eprintln!("[centroids: cache hit {} ({what})]", p.display());
            "hit"
        }
        CacheStatus::Written { path, replaced } => {
            if let Some(why) = replaced {
                eprintln!(
                    "warning: ignored the centroid cache file {}: {why}",
                    path.display()
                );
            }
            eprintln!(
                "[centroids: cache miss; computed in {centroid_ms:.1} ms ({what}), written to {}]",
                path.display()
            );
            "written"
        }
        CacheStatus::Disabled => {
            eprintln!("[centroids: cache off; computed in {centroid_ms:.1} ms ({what})]");
            "off"
        }
        CacheStatus::WriteFailed(e) => {
            eprintln!("warning: the centroid cache was not written: {e}");
            eprintln!("[centroids: cache miss; computed in {centroid_ms:.1} ms ({what})]");
            "write_failed"
        }
    };

    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = Instant::now();
    let embs = emb.embed(&refs)?;
    let secs = t.elapsed().as_secs_f64();
    let got: Vec<Classification> = embs
        .iter()
        .map(|e| centroids.classify(&e.vector, threshold, a.top))
        .collect();

    if let Some(set) = &eval_set {
        let r = classify::evaluate(set, &got, threshold);
        if a.json {
            let v = json!({
                "schema": "alc.classify.eval/1",
                "model": a.package.display().to_string(),
                "intents_file": source,
                "eval_file": a.eval.as_ref().map(|p| p.display().to_string()),
                "cache": cache,
                "report": r,
            });
            println!("{}", serde_json::to_string(&v)?);
        } else {
            println!(
                "in-scope accuracy  {:.4} ({}/{}, best intent, no threshold)",
                r.accuracy_in_scope, r.correct_in_scope, r.n_in_scope
            );
            println!(
                "{:<19}{:.4} ({} rejected as unknown)",
                format!("in-scope at {threshold}"),
                r.accuracy_in_scope_at_threshold,
                r.in_scope_rejected
            );
            match r.unknown_recall {
                Some(u) => println!("unknown recall     {u:.4} ({} unknown texts)", r.n_unknown),
                None => println!("unknown recall     - (no unknown texts)"),
            }
            println!(
                "overall accuracy   {:.4} ({} texts, threshold {threshold})",
                r.accuracy_overall,
                r.n_in_scope + r.n_unknown
            );
            for e in &r.errors {
                println!(
                    "  line {}: {:?} expected {}, got {} (best {} {:.3})",
                    e.line, e.text, e.expected, e.got, e.best, e.score
                );
            }
        }
    } else if a.json {
        let results: Vec<_> = got
            .iter()
            .zip(&texts)
            .enumerate()
            .map(|(i, (c, t))| {
                json!({
                    "index": i,
                    "text": t,
                    "intent": c.intent,
                    "score": f32_for_json(c.score),
                    "runner_up": c.runner_up.as_ref().map(scored_json),
                    "top": c.top.iter().map(scored_json).collect::<Vec<_>>(),
                    "unknown": c.unknown,
                })
            })
            .collect();
        let v = json!({
            "schema": "alc.classify/1",
            "model": a.package.display().to_string(),
            "intents_file": source,
            "intents": intents.names(),
            "threshold": f32_for_json(threshold),
            "cache": cache,
            "results": results,
        });
        println!("{}", serde_json::to_string(&v)?);
    } else {
        for c in &got {
            let mut line = format!("{} {:.3}", c.intent, c.score);
            if c.unknown {
                line.push_str(&format!(" (nearest {} {:.3}", c.best, c.score));
                if let Some(r) = &c.runner_up {
                    line.push_str(&format!(", runner-up {} {:.3}", r.intent, r.score));
                }
                line.push(')');
            } else if let Some(r) = &c.runner_up {
                line.push_str(&format!(" (runner-up {} {:.3})", r.intent, r.score));
            }
            if c.top.len() > 2 {
                let rest: Vec<String> = c.top[2..]
                    .iter()
                    .map(|s| format!("{} {:.3}", s.intent, s.score))
                    .collect();
                line.push_str(&format!(" [then {}]", rest.join(", ")));
            }
            println!("{line}");
        }
    }
    for (i, e) in embs.iter().enumerate() {
        if e.truncated {
            eprintln!(
                "warning: text {} is longer than the model's {} tokens; only its first {} tokens were used",
                i + 1,
                emb.max_tokens,
                emb.max_tokens - 2
            );
        }
    }
    eprintln!(
        "[{} texts, {} tokens, {:.2} ms ({:.1} texts/s), load {:.1} ms, {}]",
        embs.len(),
        embs.iter().map(|e| e.n_tokens).sum::<usize>(),
        secs * 1e3,
        embs.len() as f64 / secs.max(1e-9),
        emb.load_time.as_secs_f64() * 1e3,
        emb.backend_name()
    );
    Ok(())
}
