//! `alc bench PKG --image FILE`: the image stages of a vision-language package,
//! timed over repetitions (schema `alc.vlm-bench/1`, docs/FORMAT.md Part L).

use alc_engine::{Engine, Event, GenRequest, GenStats, Prompt, SamplingParams};
use alc_tokenizer::ChatMessage;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;

/// Median, min and max of one stage over the repetitions, in milliseconds.
#[derive(Serialize)]
pub struct Stat {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

fn stat(mut v: Vec<f64>) -> Stat {
    v.sort_by(f64::total_cmp);
    Stat {
        median_ms: v[v.len() / 2],
        min_ms: v[0],
        max_ms: v[v.len() - 1],
    }
}

#[derive(Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub model: String,
    pub image: String,
    pub backend: String,
    pub width: u32,
    pub height: u32,
    pub tiles: usize,
    pub grid: (u32, u32),
    pub prompt_tokens: usize,
    pub generated: usize,
    pub reps: usize,
    pub preprocess: Stat,
    pub vision_encoder: Stat,
    pub vision_encoder_per_tile: Stat,
    pub projector: Stat,
    pub prefill: Stat,
    /// From the image bytes to the first generated token.
    pub image_to_first_token: Stat,
    pub decode_tok_s_median: f64,
    pub peak_rss_bytes: u64,
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn run(
    engine: &Engine,
    model: &Path,
    image: &Path,
    prompt: &str,
    n_gen: usize,
    reps: usize,
) -> Result<Report> {
    if engine.info().vision.is_none() {
        bail!(
            "{} is a text-only model; --image needs a vision-language package",
            model.display()
        );
    }
    let bytes = std::fs::read(image)
        .with_context(|| format!("cannot read the image {}", image.display()))?;
    let mut runs: Vec<GenStats> = Vec::new();
    let mut shape = None;
    // One warm-up, then `reps` timed runs, each on a fresh session (no cached prefix).
    for i in 0..=reps {
        let img = engine
            .prepare_image(&bytes)
            .with_context(|| format!("image {}", image.display()))?;
        shape.get_or_insert((img.width, img.height, img.n_tiles, (img.rows, img.cols)));
        let s = engine.session()?;
        let gen = s.generate(GenRequest {
            prompt: Prompt::Chat(vec![ChatMessage::new("user", format!("<image>{prompt}"))]),
            sampling: SamplingParams::greedy(),
            max_tokens: n_gen.max(1),
            stop: vec![],
            images: vec![img],
        })?;
        let mut done = None;
        for ev in gen {
            if let Event::Done(st) = ev? {
                done = Some(st);
            }
        }
        let st = done.context("the generation ended without statistics")?;
        eprintln!(
            "[bench] {} {}: image to first token {:.0} ms",
            if i == 0 { "warm-up" } else { "rep" },
            i,
            st.image.as_ref().map_or(0.0, |im| ms(im.preprocess
                + im.encode()
                + im.project
                + st.ttft))
        );
        if i > 0 {
            runs.push(st);
        }
    }
    let (width, height, tiles, grid) = shape.expect("at least one run");
    let im = |f: &dyn Fn(&alc_engine::ImageStats, &GenStats) -> f64| -> Stat {
        stat(
            runs.iter()
                .map(|s| f(s.image.as_ref().expect("image stats"), s))
                .collect(),
        )
    };
    let mut tps: Vec<f64> = runs
        .iter()
        .map(|s| s.generated as f64 / s.decode.as_secs_f64().max(1e-9))
        .collect();
    tps.sort_by(f64::total_cmp);
    Ok(Report {
        schema: "alc.vlm-bench/1",
        model: model.display().to_string(),
        image: image.display().to_string(),
        backend: engine.info().backend.clone(),
        width,
        height,
        tiles,
        grid,
        prompt_tokens: runs[0].prompt_tokens,
        generated: runs[0].generated,
        reps,
        preprocess: im(&|i, _| ms(i.preprocess)),
        vision_encoder: im(&|i, _| ms(i.encode())),
        vision_encoder_per_tile: im(&|i, _| ms(i.encode()) / i.tiles.max(1) as f64),
        projector: im(&|i, _| ms(i.project)),
        prefill: im(&|_, s| ms(s.prefill)),
        image_to_first_token: im(&|i, s| ms(i.preprocess + i.encode() + i.project + s.ttft)),
        decode_tok_s_median: tps[tps.len() / 2],
        peak_rss_bytes: alc_engine::bench::peak_rss_bytes(),
    })
}

pub fn print(r: &Report) {
    println!("model     {}", r.model);
    println!("backend   {}", r.backend);
    println!(
        "image     {} ({}x{}, grid {}x{}, {} tiles), prompt {} tokens, {} generated, {} reps",
        r.image,
        r.width,
        r.height,
        r.grid.0,
        r.grid.1,
        r.tiles,
        r.prompt_tokens,
        r.generated,
        r.reps
    );
    println!("{:<24} {:>12} {:>22}", "stage", "median ms", "min .. max");
    for (name, s) in [
        ("preprocess", &r.preprocess),
        ("vision encoder", &r.vision_encoder),
        ("  per tile", &r.vision_encoder_per_tile),
        ("modality projector", &r.projector),
        ("prefill", &r.prefill),
        ("image to first token", &r.image_to_first_token),
    ] {
        println!(
            "{:<24} {:>12.1} {:>22}",
            name,
            s.median_ms,
            format!("{:.1} .. {:.1}", s.min_ms, s.max_ms)
        );
    }
    println!("decode    {:.1} tok/s (median)", r.decode_tok_s_median);
    println!(
        "peak RSS  {:.1} MiB",
        r.peak_rss_bytes as f64 / (1 << 20) as f64
    );
}
