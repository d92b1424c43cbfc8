//! `alc embed`: sentence embeddings from a BERT package (.AON).

use std::io::Read;
use std::path::{Path, PathBuf};

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
    /// Tokenizer of a plain .onnx model: a Hugging Face directory with tokenizer.json
    /// (and sentence-transformers' modules.json / 1_Pooling; default: the .onnx file's
    /// directory).
    #[arg(long, value_name = "DIR")]
    pub tokenizer: Option<PathBuf>,
    /// Key of a sealed package (.ava3).
    #[command(flatten)]
    pub key: seal::KeyArgs,
}

pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// UTF-8 text of `bytes` from `source`; invalid UTF-8 is an error naming its line.
fn utf8(bytes: Vec<u8>, source: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        anyhow::anyhow!("{source} line {line} is not valid UTF-8 (byte {at}); texts must be UTF-8, one per line")
    })
}

/// The texts of `alc embed` / `alc classify`: the arguments, then the lines of `file`,
/// else the lines of stdin (empty lines skipped); none at all is an error.
pub fn gather_texts(args: &[String], file: Option<&Path>, verb: &str) -> Result<Vec<String>> {
    let mut texts = args.to_vec();
    if let Some(f) = file {
        let b = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        texts.extend(lines(&utf8(b, &f.display().to_string())?));
    }
    if texts.is_empty() && file.is_none() {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .context("reading texts from stdin")?;
        texts = lines(&utf8(b, "stdin")?);
    }
    if texts.is_empty() {
        bail!("no text to {verb}; pass texts as arguments, --file FILE, or lines on stdin");
    }
    Ok(texts)
}

/// Whether `model` (a path or registry name) is an embedding model: a GGUF-based
/// package whose architecture is `bert`. Anything unreadable answers false (the
/// language-model path then reports the problem).
pub fn is_embedding_model(model: &Path) -> bool {
    if is_onnx(model) {
        return true;
    }
    let Ok(path) = registry::resolve_model(model) else {
        return false;
    };
    if alc_seal::is_sealed(&path) {
        return false;
    }
    alc_format::GgufFile::open(&path)
        .ok()
        .and_then(|f| {
            f.get_str("general.architecture")
                .ok()
                .flatten()
                .map(|a| a == "bert")
        })
        .unwrap_or(false)
}

fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Load an embedding model: a path or registry name, sealed packages opened with `key`,
/// a plain .onnx file with the tokenizer of `tokenizer` (or its own directory).
pub fn open(
    package: &Path,
    threads: usize,
    key: &seal::KeyArgs,
    tokenizer: Option<&Path>,
) -> Result<Embedder> {
    if is_onnx(package) {
        let dir = match tokenizer {
            Some(d) => d.to_path_buf(),
            None => package
                .parent()
                .map(|p| {
                    if p.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        p
                    }
                })
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        };
        if !dir.join("tokenizer.json").is_file() {
            bail!(
                "{} needs its tokenizer: pass --tokenizer DIR (a Hugging Face directory with tokenizer.json); {} has none",
                package.display(),
                dir.display()
            );
        }
        let tok = alc_convert::encoder_tokenizer_gguf(&dir)
            .with_context(|| format!("cannot read the tokenizer in {}", dir.display()))?;
        return Embedder::open_onnx(package, &tok, threads)
            .with_context(|| format!("cannot load {}", package.display()));
    }
    let path = registry::resolve_model(package)?;
    if alc_seal::is_sealed(&path) {
        Embedder::open_gguf(seal::open_gguf(&path, key)?, threads)
    } else {
        Embedder::open(&path, threads)
    }
    .with_context(|| format!("cannot load {}", package.display()))
}

pub fn embed(a: EmbedArgs) -> Result<()> {
    if let Some(0) = a.threads {
        bail!("--threads must be at least 1");
    }
    let texts = gather_texts(&a.texts, a.file.as_deref(), "embed")?;
    let threads = a.threads.unwrap_or_else(alc_engine::default_threads);
    let emb = open(&a.package, threads, &a.key, a.tokenizer.as_deref())?;
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
            "pooling": emb.pooling().0,
            "normalized": emb.pooling().1,
            "runtime": emb.backend_name(),
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
