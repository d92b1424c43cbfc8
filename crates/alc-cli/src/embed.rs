//! `alc embed`: sentence embeddings from a BERT package (.AON).

use std::io::Read;
use std::path::PathBuf;

use alc_engine::Embedder;
use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{registry, seal};

#[derive(Args)]
pub struct EmbedArgs {
    /// Embedding package (.AON), GGUF file, or registry name.
    pub package: PathBuf,
    /// Texts to embed (none and no --file: one text per line on stdin).
    pub texts: Vec<String>,
    /// A file with one text per line (empty lines skipped).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print JSON (alc.embed/1) instead of one vector per line.
    #[arg(long)]
    pub json: bool,
    /// Compute threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Key of a sealed package (.ava3).
    #[command(flatten)]
    pub key: seal::KeyArgs,
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

pub fn embed(a: EmbedArgs) -> Result<()> {
    if let Some(0) = a.threads {
        bail!("--threads must be at least 1");
    }
    let mut texts = a.texts.clone();
    if let Some(f) = &a.file {
        let s = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read {} (one UTF-8 text per line)", f.display()))?;
        texts.extend(lines(&s));
    }
    if texts.is_empty() && a.file.is_none() {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading texts from stdin (one per line, UTF-8)")?;
        texts = lines(&s);
    }
    if texts.is_empty() {
        bail!("no text to embed; pass texts as arguments, --file FILE, or lines on stdin");
    }
    let threads = a.threads.unwrap_or_else(alc_engine::default_threads);
    let path = registry::resolve_model(&a.package)?;
    let emb = if alc_seal::is_sealed(&path) {
        Embedder::open_gguf(seal::open_gguf(&path, &a.key)?, threads)
    } else {
        Embedder::open(&path, threads)
    }
    .with_context(|| format!("cannot load {}", a.package.display()))?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = std::time::Instant::now();
    let out = emb.embed(&refs)?;
    let secs = t.elapsed().as_secs_f64();
    for (i, e) in out.iter().enumerate() {
        if e.truncated {
            eprintln!(
                "warning: text {} is longer than the model's {} tokens; only its first {} tokens were embedded",
                i + 1,
                emb.max_tokens,
                emb.max_tokens - 2
            );
        }
    }
    if a.json {
        let data: Vec<_> = out
            .iter()
            .zip(&texts)
            .enumerate()
            .map(|(i, (e, t))| {
                serde_json::json!({
                    "index": i,
                    "text": t,
                    "n_tokens": e.n_tokens,
                    "truncated": e.truncated,
                    "embedding": e.vector,
                })
            })
            .collect();
        let v = serde_json::json!({
            "schema": "alc.embed/1",
            "model": a.package.display().to_string(),
            "dim": emb.dim(),
            "pooling": emb.model().hp.pooling,
            "normalized": emb.model().hp.normalize,
            "data": data,
        });
        println!("{}", serde_json::to_string(&v)?);
    } else {
        for e in &out {
            let s: Vec<String> = e.vector.iter().map(|x| format!("{x:.6}")).collect();
            println!("{}", s.join(" "));
        }
    }
    eprintln!(
        "[{} texts, {} tokens, {:.2} ms ({:.1} texts/s), load {:.1} ms, {}]",
        out.len(),
        out.iter().map(|e| e.n_tokens).sum::<usize>(),
        secs * 1e3,
        out.len() as f64 / secs.max(1e-9),
        emb.load_time.as_secs_f64() * 1e3,
        emb.backend_name()
    );
    Ok(())
}
