//! `alc`: the command-line front end. The only crate that uses anyhow; every error
//! reaches the user as one line on stderr with a non-zero exit code.

mod abi;
mod classify;
mod compile;
mod embed;
mod embed_bench;
mod export;
mod fit;
mod inspect;
mod registry;
mod seal;
mod serve;
mod verify;
mod vlm_bench;

use alc_engine::{
    BenchSpec, Deadlines, Engine, EngineConfig, Event, GenRequest, GenStats, PreparedImage, Prompt,
    SamplingParams,
};
use alc_tokenizer::ChatMessage;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "alc",
    version,
    about = "Run, chat with, benchmark and inspect GGUF language models on CPU"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate from a prompt (raw text, as llama.cpp's completion tool; --chat applies
    /// the model's chat template). Reads the prompt from stdin when -p is absent.
    Run(RunArgs),
    /// Interactive multi-turn chat with the model's chat template.
    Chat(ChatArgs),
    /// Prompt-processing and generation throughput (llama-bench style).
    Bench(BenchArgs),
    /// Architecture, hyperparameters, tensors, tokenizer and memory plan of a model.
    Inspect(InspectArgs),
    /// Check packages before deployment: digests, structure, compatibility with
    /// this build, and the bundled self-check. Exit 0 ok, 1 a check failed, 2
    /// unreadable input.
    Verify(verify::VerifyArgs),
    /// Sentence embeddings from a BERT package (.AON): one vector per text.
    Embed(embed::EmbedArgs),
    /// Intent classification: nearest intent centroid (from a YAML intents file) by
    /// cosine over sentence embeddings, `unknown` below a threshold; --eval scores a
    /// labelled TSV.
    Classify(classify::ClassifyArgs),
    /// Device profiles (RAM, usable memory, GPU, backend) that `alc fit` judges against.
    Devices(fit::DevicesArgs),
    /// Will a package run on a device? Peak-memory estimate at a context, verdict
    /// (fits / tight / does not fit), largest context; --recommend ranks the registry.
    /// Exit 1 when it does not fit the named device, 2 unreadable input.
    Fit(fit::FitArgs),
    /// Encrypt and authenticate a package (or any file) in 64 KiB AES-256-GCM blocks
    /// (.ava3, docs/SEALED.md). `alc run` opens sealed packages directly.
    Seal(seal::SealArgs),
    /// Decrypt a sealed file; the output appears only after every block checked out.
    Unseal(seal::UnsealArgs),
    /// Compile a Hugging Face checkpoint into one verified, named package.
    Compile(compile::CompileArgs),
    /// Add a package file to the local registry (ALC_HOME) under a name.
    Add(registry::AddArgs),
    /// List the registry's packages (names and tags).
    List(registry::ListArgs),
    /// Metadata of one registered package (name, tag or digest prefix).
    Show(registry::ShowArgs),
    /// Remove a name or tag from the registry (the file goes with its last name).
    Rm(registry::RmArgs),
    /// Give a registered package another name (a tag).
    Tag(registry::TagArgs),
    /// A/B slots: weighted arms of registered packages, picked per user.
    Ab(registry::AbArgs),
    /// Write a GGUF file or package back as a Hugging Face checkpoint (--hf).
    Export(export::ExportArgs),
    /// OpenAI-compatible HTTP server (/v1/chat/completions, /v1/completions,
    /// /v1/embeddings, /v1/models, /health, /metrics) over one or more models.
    Serve(serve::ServeArgs),
}

#[derive(Args, Clone)]
struct EngineArgs {
    /// Model file (GGUF).
    model: PathBuf,
    /// Compute threads (default: all cores).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Context length in tokens (default: the model's, capped by a 1 GiB KV budget).
    #[arg(long)]
    ctx: Option<usize>,
    /// Fixed prefill chunk size (default: ar32 / ar128 / ar512 by prompt length).
    #[arg(long)]
    ubatch: Option<usize>,
    /// Multiply every stage deadline (load, tokenize, prefill chunk, decode step).
    #[arg(long, default_value_t = 1.0)]
    deadline_scale: f64,
    /// Key of a sealed model (.ava3).
    #[command(flatten)]
    key: seal::KeyArgs,
    /// KV budget that caps the default context (`alc serve` divides it among its
    /// parallel sequences).
    #[arg(skip)]
    kv_budget_bytes: Option<u64>,
}

impl EngineArgs {
    fn open(&self) -> Result<Engine> {
        if !(self.deadline_scale > 0.0 && self.deadline_scale.is_finite()) {
            bail!(
                "--deadline-scale {} must be a positive number",
                self.deadline_scale
            );
        }
        if let Some(0) = self.threads {
            bail!("--threads must be at least 1");
        }
        let d = Deadlines::default();
        let s = |x: std::time::Duration| x.mul_f64(self.deadline_scale);
        let cfg = EngineConfig {
            threads: self.threads.unwrap_or_else(alc_engine::default_threads),
            ctx: self.ctx,
            ubatch: self.ubatch,
            kv_budget_bytes: self
                .kv_budget_bytes
                .unwrap_or(alc_engine::DEFAULT_KV_BUDGET_BYTES),
            deadlines: Deadlines {
                load: s(d.load),
                tokenize: s(d.tokenize),
                prefill_chunk: s(d.prefill_chunk),
                decode_step: s(d.decode_step),
                sample: s(d.sample),
                bench: s(d.bench),
                vision_tile: s(d.vision_tile),
                project: s(d.project),
            },
        };
        let model = registry::resolve_model(&self.model)?;
        if alc_seal::is_sealed(&model) {
            let t = std::time::Instant::now();
            let file = seal::open_gguf(&model, &self.key)?;
            eprintln!(
                "unsealed {} in memory in {:.2} s",
                model.display(),
                t.elapsed().as_secs_f64()
            );
            return Engine::open_gguf(file, cfg)
                .with_context(|| format!("cannot load {}", self.model.display()));
        }
        Engine::open(&model, cfg).with_context(|| format!("cannot load {}", self.model.display()))
    }
}

#[derive(Args, Clone)]
struct SamplingArgs {
    /// Temperature; 0 = greedy (deterministic).
    #[arg(long, default_value_t = 0.8)]
    temp: f32,
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    #[arg(long, default_value_t = 64)]
    repeat_last_n: usize,
    /// RNG seed (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Maximum tokens to generate.
    #[arg(short = 'n', long, default_value_t = 512)]
    max_tokens: usize,
    /// Stop when this text is generated (repeatable).
    #[arg(long)]
    stop: Vec<String>,
}

impl SamplingArgs {
    fn params(&self) -> SamplingParams {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        SamplingParams {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed,
        }
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Prompt text (default: read stdin).
    #[arg(short = 'p', long)]
    prompt: Option<String>,
    /// Treat the prompt as a user message and apply the chat template.
    #[arg(long)]
    chat: bool,
    /// System prompt (with --chat).
    #[arg(long)]
    system: Option<String>,
    /// Print timings (prefill, decode, chunks; with images every stage) to stderr.
    #[arg(long)]
    timings: bool,
    /// Image for a vision-language package (repeatable). The prompt's `<image>`
    /// placeholders mark where each goes; without any, the images go first.
    #[arg(long = "image", value_name = "FILE")]
    images: Vec<PathBuf>,
}

#[derive(Args)]
struct ChatArgs {
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    #[arg(long)]
    timings: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Prompt lengths, comma-separated.
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "128,512"
    )]
    n_prompt: Vec<usize>,
    /// Tokens to generate in the generation test (0 skips it).
    #[arg(short = 'n', long = "n-gen", default_value_t = 64)]
    n_gen: usize,
    /// Tokens already in the cache when each test starts, comma-separated
    /// (llama-bench's -d): every test runs at every depth ("tg64 @ d2048").
    #[arg(
        short = 'd',
        long = "n-depth",
        value_delimiter = ',',
        default_value = "0"
    )]
    n_depth: Vec<usize>,
    /// Repetitions per test (after one warm-up).
    #[arg(short = 'r', long, default_value_t = 5)]
    reps: usize,
    /// Print the report as JSON (schema in docs/FORMAT.md).
    #[arg(long)]
    json: bool,
    /// Skip the memory-bandwidth probe (no MBU).
    #[arg(long)]
    no_bandwidth: bool,
    /// Embedding models: sentences per call, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    batch: Vec<usize>,
    /// Embedding models: the sentences to embed, one per line (required for them).
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// Embedding models in plain .onnx files: the Hugging Face directory of their
    /// tokenizer (default: the file's directory).
    #[arg(long, value_name = "DIR")]
    tokenizer: Option<PathBuf>,
    /// Vision-language packages: time the image stages on this image (with -n
    /// generated tokens and -r repetitions).
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// With --image: the text after the image.
    #[arg(long, default_value = "Describe this image.")]
    image_prompt: String,
}

#[derive(Args)]
struct InspectArgs {
    /// Model file (GGUF).
    model: PathBuf,
    /// Context length for the memory plan (default: the model's).
    #[arg(long)]
    ctx: Option<usize>,
    /// Print JSON (schema `alc.inspect/1`, docs/FORMAT.md).
    #[arg(long)]
    json: bool,
    /// Also list every tensor in text mode.
    #[arg(long)]
    tensors: bool,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run(a) => run(a),
        Cmd::Chat(a) => chat(a),
        Cmd::Bench(a) => bench(a),
        Cmd::Inspect(a) => registry::resolve_model(&a.model)
            .and_then(|m| inspect::inspect(&m, a.ctx, a.json, a.tensors)),
        Cmd::Compile(a) => compile::compile(a),
        Cmd::Add(a) => registry::add(a),
        Cmd::List(a) => registry::list(a),
        Cmd::Show(a) => registry::show(a),
        Cmd::Rm(a) => registry::rm(a),
        Cmd::Tag(a) => registry::tag(a),
        Cmd::Ab(a) => registry::ab(a),
        Cmd::Export(a) => export::export(a),
        Cmd::Serve(a) => serve::serve(a),
        Cmd::Seal(a) => seal::seal(a),
        Cmd::Unseal(a) => seal::unseal(a),
        Cmd::Embed(a) => embed::embed(a),
        Cmd::Classify(a) => classify::classify(a),
        Cmd::Devices(a) => fit::devices(a),
        Cmd::Fit(a) => fit::fit_cmd(a).map(|code| {
            if code != 0 {
                std::process::exit(code)
            }
        }),
        Cmd::Verify(a) => verify::verify(a).map(|code| {
            if code != 0 {
                std::process::exit(code)
            }
        }),
    };
    if let Err(e) = r {
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// One line: the chain of causes joined, skipping a cause whose text the message
/// already carries (library errors often print their source).
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for c in e.chain() {
        let c = c.to_string();
        if !msg.contains(&c) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&c);
        }
    }
    msg
}

fn read_stdin_prompt() -> Result<String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .context("reading the prompt from stdin")?;
    String::from_utf8(buf).map_err(|e| {
        anyhow::anyhow!(
            "stdin is not valid UTF-8 (bad byte at offset {}); convert the prompt to UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Stream a generation to stdout; returns the generated text and stats.
fn stream(gen: alc_engine::Generation) -> Result<(String, GenStats)> {
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    for ev in gen {
        match ev? {
            Event::Token { text: t, .. } => {
                out.write_all(t.as_bytes())?;
                out.flush()?;
                text.push_str(&t);
            }
            Event::Done(stats) => return Ok((text, stats)),
        }
    }
    bail!("generation ended without a result")
}

fn print_timings(s: &GenStats) {
    let pf = s.prefill.as_secs_f64();
    let dc = s.decode.as_secs_f64();
    let evaluated = s.prompt_tokens - s.cached_tokens;
    eprintln!(
        "\n[prompt {} tokens ({} cached), prefill {:.1} ms ({:.1} tok/s, chunks {:?}), ttft {:.1} ms, generated {} tokens in {:.1} ms ({:.1} tok/s), stop: {:?}]",
        s.prompt_tokens,
        s.cached_tokens,
        pf * 1e3,
        evaluated as f64 / pf.max(1e-9),
        s.chunks,
        s.ttft.as_secs_f64() * 1e3,
        s.generated,
        dc * 1e3,
        s.generated as f64 / dc.max(1e-9),
        s.stop
    );
    if let Some(im) = &s.image {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let enc = im.encode();
        eprintln!(
            "[stages: preprocess {:.1} ms ({} images, {} tiles) | vision encoder {:.1} ms ({:.1} ms/tile, backend cpu) | modality projector {:.1} ms | token embedding {:.2} ms | prefill {:.1} ms | decode {:.1} ms | LM head {:.1} ms | image to first token {:.1} ms]",
            ms(im.preprocess),
            im.images,
            im.tiles,
            ms(enc),
            ms(enc) / im.tiles.max(1) as f64,
            ms(im.project),
            ms(s.embed),
            ms(s.prefill),
            ms(s.decode),
            ms(s.lm_head),
            ms(im.preprocess + enc + im.project + s.ttft),
        );
    }
}

/// Read and preprocess `--image` files for the engine's vision tower.
fn prepare_images(engine: &Engine, files: &[PathBuf]) -> Result<Vec<PreparedImage>> {
    if !files.is_empty() && engine.info().vision.is_none() {
        bail!(
            "{} is a text-only model; --image needs a vision-language package (alc compile of a SmolVLM / Idefics3 checkpoint)",
            engine.info().path.display()
        );
    }
    files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f)
                .with_context(|| format!("cannot read the image {}", f.display()))?;
            engine
                .prepare_image(&bytes)
                .with_context(|| format!("image {}", f.display()))
        })
        .collect()
}

/// The prompt with one `<image>` per image in front when it has none.
fn with_image_placeholders(prompt: String, n: usize) -> String {
    if n == 0 || prompt.contains("<image>") {
        return prompt;
    }
    format!("{}{prompt}", "<image>".repeat(n))
}

fn run(a: RunArgs) -> Result<()> {
    let prompt = match a.prompt {
        Some(p) => p,
        None => read_stdin_prompt()?,
    };
    if prompt.is_empty() {
        bail!("the prompt is empty; pass some text with -p or on stdin");
    }
    let engine = a.engine.open()?;
    let images = prepare_images(&engine, &a.images)?;
    let prompt = with_image_placeholders(prompt, images.len());
    let prompt = if a.chat {
        let mut m = Vec::new();
        if let Some(s) = a.system {
            m.push(ChatMessage::new("system", s));
        }
        m.push(ChatMessage::new("user", prompt));
        Prompt::Chat(m)
    } else {
        Prompt::Text {
            text: prompt,
            add_special: true,
            parse_special: false,
        }
    };
    let session = engine.session()?;
    let gen = session.generate(GenRequest {
        prompt,
        sampling: a.sampling.params(),
        max_tokens: a.sampling.max_tokens,
        stop: a.sampling.stop.clone(),
        images,
    })?;
    let (_, stats) = stream(gen)?;
    println!();
    if a.timings {
        eprintln!(
            "[load {:.1} ms, backend {}, ctx {}, peak RSS {:.1} MiB]",
            engine.info().load_time.as_secs_f64() * 1e3,
            engine.info().backend,
            engine.info().ctx,
            alc_engine::bench::peak_rss_bytes() as f64 / (1 << 20) as f64
        );
        print_timings(&stats);
    }
    Ok(())
}

fn chat(a: ChatArgs) -> Result<()> {
    let engine = a.engine.open()?;
    if engine.info().chat_template.is_none() {
        bail!(
            "{} has no chat template (tokenizer.chat_template); use `alc run` with a raw prompt",
            a.engine.model.display()
        );
    }
    let tty = std::io::stdin().is_terminal();
    if tty {
        eprintln!(
            "alc chat — {} ({}); /image FILE attaches an image, /reset clears the conversation, /exit or Ctrl-D quits",
            a.engine.model.display(),
            engine.info().hp.arch
        );
    }
    let session = engine.session()?;
    let mut messages = Vec::new();
    if let Some(s) = &a.system {
        messages.push(ChatMessage::new("system", s.clone()));
    }
    let base = messages.len();
    // Images of the conversation so far, and those attached to the next message.
    let mut images: Vec<PreparedImage> = Vec::new();
    let mut pending: Vec<PreparedImage> = Vec::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().split(b'\n');
    loop {
        if tty {
            eprint!("> ");
        }
        let Some(line) = lines.next() else { break };
        let line = String::from_utf8(line?)
            .map_err(|_| anyhow::anyhow!("input line is not valid UTF-8"))?;
        let line = line.trim_end_matches('\r');
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                messages.truncate(base);
                images.clear();
                pending.clear();
                continue;
            }
            _ => {}
        }
        if let Some(path) = line.trim().strip_prefix("/image ") {
            // Attached to the next message; the conversation keeps every image.
            match prepare_images(&engine, &[PathBuf::from(path.trim())]) {
                Ok(mut im) => {
                    pending.append(&mut im);
                    if tty {
                        eprintln!("(image attached to your next message)");
                    }
                }
                Err(e) => eprintln!("error: {e:#}"),
            }
            continue;
        }
        let n_new = pending.len();
        images.append(&mut pending);
        messages.push(ChatMessage::new(
            "user",
            with_image_placeholders(line.to_string(), n_new),
        ));
        let gen = session.generate(GenRequest {
            prompt: Prompt::Chat(messages.clone()),
            sampling: a.sampling.params(),
            max_tokens: a.sampling.max_tokens,
            stop: a.sampling.stop.clone(),
            images: images.clone(),
        })?;
        let (reply, stats) = stream(gen)?;
        println!();
        if a.timings {
            print_timings(&stats);
        }
        messages.push(ChatMessage::new("assistant", reply));
    }
    Ok(())
}

fn bench_embed(a: BenchArgs) -> Result<()> {
    let Some(file) = &a.file else {
        bail!(
            "{} is an embedding model: pass the sentences to benchmark with --file FILE (one per line)",
            a.engine.model.display()
        );
    };
    let s = std::fs::read_to_string(file).with_context(|| {
        format!(
            "cannot read {} (one UTF-8 sentence per line)",
            file.display()
        )
    })?;
    let sentences = embed::lines(&s);
    let threads = a.engine.threads.unwrap_or_else(alc_engine::default_threads);
    let emb = embed::open(
        &a.engine.model,
        threads,
        &a.engine.key,
        a.tokenizer.as_deref(),
    )?;
    let r = embed_bench::run(
        &a.engine.model,
        &emb,
        threads,
        embed_bench::Spec {
            sentences: &sentences,
            batches: &a.batch,
            reps: a.reps,
        },
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        embed_bench::print(&r);
    }
    Ok(())
}

fn bench(a: BenchArgs) -> Result<()> {
    if a.reps == 0 {
        bail!("--reps must be at least 1");
    }
    if embed::is_embedding_model(&a.engine.model) {
        return bench_embed(a);
    }
    if let Some(img) = &a.image {
        let engine = a.engine.open()?;
        let r = vlm_bench::run(
            &engine,
            &a.engine.model,
            img,
            &a.image_prompt,
            a.n_gen,
            a.reps,
        )?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            vlm_bench::print(&r);
        }
        return Ok(());
    }
    let need = a.n_prompt.iter().copied().max().unwrap_or(0).max(a.n_gen)
        + a.n_depth.iter().copied().max().unwrap_or(0)
        + 1;
    let mut ea = a.engine.clone();
    ea.ctx = Some(ea.ctx.unwrap_or(need.max(512)));
    let engine = ea.open()?;
    let report = engine.bench(BenchSpec {
        prompt_lens: a.n_prompt.clone(),
        gen_len: a.n_gen,
        reps: a.reps,
        depths: a.n_depth.clone(),
        bandwidth_probe_bytes: if a.no_bandwidth { 0 } else { 256 << 20 },
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("model     {} ({})", report.model, report.arch);
    println!("backend   {}", report.backend);
    println!(
        "load      {:.1} ms   peak RSS {:.1} MiB",
        report.load_ms,
        report.peak_rss_bytes as f64 / (1 << 20) as f64
    );
    if let Some(bw) = report.mem_read_gbs {
        println!(
            "memory    {:.1} GB/s read (measured), {:.1} MB weights per token",
            bw,
            report.bytes_per_token as f64 / 1e6
        );
    }
    println!(
        "{:<8} {:>12} {:>20} {:>10} {:>6}",
        "test", "tok/s (med)", "min .. max", "ttft ms", "MBU"
    );
    for t in &report.tests {
        println!(
            "{:<8} {:>12.1} {:>20} {:>10} {:>6}",
            t.name,
            t.tok_s_median,
            format!("{:.1} .. {:.1}", t.tok_s_min, t.tok_s_max),
            t.ttft_ms_median
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into()),
            t.mbu
                .map(|v| format!("{:.0}%", v * 100.0))
                .unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}
