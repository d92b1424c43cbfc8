//! `alc bench` on an embedding model: sentences per second at each batch size and
//! single-query latency, over a file of sentences (one per line).

use std::path::Path;
use std::time::Instant;

use alc_engine::Embedder;
use anyhow::{bail, Context, Result};
use serde::Serialize;

/// The short query of the latency test (7 tokens with [CLS] and [SEP] in MiniLM's
/// vocabulary).
const QUERY: &str = "turn on the flashlight";

#[derive(Serialize)]
pub struct BatchResult {
    pub batch: usize,
    /// Median over the repetitions.
    pub sentences_per_s: f64,
    pub min_sentences_per_s: f64,
    pub max_sentences_per_s: f64,
    pub tokens_per_s: f64,
}

#[derive(Serialize)]
pub struct EmbedBenchReport {
    pub schema: &'static str,
    pub model: String,
    pub runtime: String,
    pub threads: usize,
    pub sentences: usize,
    pub tokens: usize,
    pub min_tokens: usize,
    pub max_tokens: usize,
    pub load_ms: f64,
    pub batches: Vec<BatchResult>,
    /// Median and 90th percentile latency of one short query, in milliseconds.
    pub query_tokens: usize,
    pub query_ms_median: f64,
    pub query_ms_p90: f64,
    pub peak_rss_bytes: u64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub struct Spec<'a> {
    pub sentences: &'a [String],
    pub batches: &'a [usize],
    pub reps: usize,
}

pub fn run(model: &Path, emb: &Embedder, threads: usize, s: Spec) -> Result<EmbedBenchReport> {
    if s.sentences.is_empty() {
        bail!("no sentences to benchmark");
    }
    if s.batches.contains(&0) {
        bail!("--batch sizes must be at least 1");
    }
    let toks = s
        .sentences
        .iter()
        .map(|t| emb.tokenize(t))
        .collect::<Result<Vec<_>, _>>()
        .context("tokenising the benchmark sentences")?;
    let n_tok: usize = toks.iter().map(|t| t.0.len()).sum();
    // One warm-up pass (page faults, thread start, packed weights in cache).
    emb.embed_ids(&toks)?;
    let mut batches = Vec::new();
    for &b in s.batches {
        let mut rates = Vec::with_capacity(s.reps);
        for _ in 0..s.reps {
            let t = Instant::now();
            for chunk in toks.chunks(b) {
                emb.embed_ids(chunk)?;
            }
            rates.push(toks.len() as f64 / t.elapsed().as_secs_f64());
        }
        let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rates.iter().copied().fold(0.0, f64::max);
        let med = median(&mut rates);
        batches.push(BatchResult {
            batch: b,
            sentences_per_s: med,
            min_sentences_per_s: lo,
            max_sentences_per_s: hi,
            tokens_per_s: med * n_tok as f64 / toks.len() as f64,
        });
    }
    let q = [emb.tokenize(QUERY)?];
    for _ in 0..10 {
        emb.embed_ids(&q)?;
    }
    let mut lat: Vec<f64> = (0..(50 * s.reps).max(50))
        .map(|_| {
            let t = Instant::now();
            emb.embed_ids(&q).map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, _>>()?;
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok(EmbedBenchReport {
        schema: "alc.embed-bench/1",
        model: model.display().to_string(),
        runtime: emb.backend_name(),
        threads,
        sentences: toks.len(),
        tokens: n_tok,
        min_tokens: toks.iter().map(|t| t.0.len()).min().unwrap_or(0),
        max_tokens: toks.iter().map(|t| t.0.len()).max().unwrap_or(0),
        load_ms: emb.load_time.as_secs_f64() * 1e3,
        batches,
        query_tokens: q[0].0.len(),
        query_ms_median: lat[lat.len() / 2],
        query_ms_p90: lat[lat.len() * 9 / 10],
        peak_rss_bytes: alc_engine::bench::peak_rss_bytes(),
    })
}

pub fn print(r: &EmbedBenchReport) {
    println!("model     {} ({})", r.model, r.runtime);
    println!(
        "input     {} sentences, {} tokens ({}..={} per sentence), {} threads",
        r.sentences, r.tokens, r.min_tokens, r.max_tokens, r.threads
    );
    println!(
        "load      {:.1} ms   peak RSS {:.1} MiB",
        r.load_ms,
        r.peak_rss_bytes as f64 / (1 << 20) as f64
    );
    for b in &r.batches {
        println!(
            "batch {:<3} {:>8.1} sentences/s ({:.1}..{:.1}), {:.0} tokens/s",
            b.batch,
            b.sentences_per_s,
            b.min_sentences_per_s,
            b.max_sentences_per_s,
            b.tokens_per_s
        );
    }
    println!(
        "query     {:.3} ms median, {:.3} ms p90 ({} tokens)",
        r.query_ms_median, r.query_ms_p90, r.query_tokens
    );
}
