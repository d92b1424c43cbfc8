//! `alc compile`: a Hugging Face checkpoint to one verified, named package.

use alc_convert::naming::NameScheme;
use alc_convert::{CompileOptions, Outcome, Progress};
use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
pub struct CompileArgs {
    /// Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json), a
    /// GGUF file, or an ONNX BERT encoder (.onnx).
    input: PathBuf,
    /// Backend the package is for: cpu, cuda, vulkan or metal (decides the defaults
    /// and which tensor types are allowed).
    #[arg(long, default_value = "cpu")]
    target: String,
    /// f32, f16, bf16, q8f16_1, q4f16_1, q4bf16_1, q4_k_m or q6_k (default: the
    /// target's).
    #[arg(long)]
    quant: Option<String>,
    /// Context length recorded in the package (default: the model's, capped by the
    /// target's default).
    #[arg(long)]
    ctx: Option<usize>,
    /// ava (AVA-{CODE}-{SIZE}{BITS}.ALM) or plain ({arch}-{size}-{quant}.alm).
    #[arg(long, default_value = "ava")]
    name_scheme: String,
    /// Package file name (overrides the naming scheme).
    #[arg(long)]
    name: Option<String>,
    /// Output directory.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Per-tensor type override, PATTERN=TYPE with `*` wildcards over package tensor
    /// names (e.g. 'blk.*.ffn_down.weight=q8_0'); repeatable, first match wins.
    #[arg(long = "tensor-type")]
    tensor_type: Vec<String>,
    /// Threads for quantisation and the self-check (default: all cores).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Replace a package of the same name that was built from other inputs.
    #[arg(long)]
    force: bool,
    /// Print the report as JSON on stdout, and progress as JSON lines on stderr
    /// ({"event": "stage", "stage"} and {"event": "tensor", "index", "count", "name",
    /// "bytes_done", "bytes_total", "resumed"}).
    #[arg(long)]
    json: bool,
    /// Do not add the package to the local registry (ALC_HOME).
    #[arg(long)]
    no_register: bool,
    /// Embedding models: native (alc's engine, default) or onnxruntime (the package
    /// holds an ONNX graph run by ONNX Runtime; implied by an .onnx input, whose
    /// --quant is int8 (weight-only, default), int8-dynamic or f32).
    #[arg(long)]
    runtime: Option<String>,
    /// Tokenizer of an .onnx input: a Hugging Face directory with tokenizer.json
    /// (default: the .onnx file's directory).
    #[arg(long, value_name = "DIR")]
    tokenizer: Option<PathBuf>,
    /// ONNX packages: also write the graph as a plain .onnx file beside the package
    /// (for stock ONNX Runtime / ONNX Runtime Mobile).
    #[arg(long)]
    emit_onnx: bool,
}

/// A bytes progress bar with a stage message and ETA on a terminal; hidden otherwise
/// (the caller prints plain or JSON lines then). Shared by compile and export.
pub fn byte_bar(tty: bool) -> ProgressBar {
    let bar = ProgressBar::new(0);
    if tty {
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

/// A progress report as the JSON line `--json` prints on stderr (compile and export;
/// docs/FORMAT.md Part D).
pub fn progress_event(p: &Progress<'_>) -> serde_json::Value {
    match *p {
        Progress::Stage(s) => serde_json::json!({"event": "stage", "stage": s}),
        Progress::Tensor {
            index,
            count,
            name,
            bytes_done,
            bytes_total,
            resumed,
        } => serde_json::json!({"event": "tensor", "index": index, "count": count,
            "name": name, "bytes_done": bytes_done, "bytes_total": bytes_total,
            "resumed": resumed}),
    }
}

pub fn compile(a: CompileArgs) -> Result<()> {
    let defaults = CompileOptions::new(a.input, a.out);
    let opts = CompileOptions {
        target: a.target,
        quant: a.quant,
        ctx: a.ctx,
        name_scheme: NameScheme::parse(&a.name_scheme)?,
        name: a.name,
        overrides: a.tensor_type,
        threads: a.threads.unwrap_or(defaults.threads),
        force: a.force,
        runtime: a.runtime,
        tokenizer: a.tokenizer,
        emit_onnx: a.emit_onnx,
        ..defaults
    };
    let tty = std::io::stderr().is_terminal() && !a.json;
    let bar = byte_bar(tty);
    let mut last_stage = String::new();
    let json = a.json;
    let mut on_progress = |p: Progress<'_>| match p {
        // --json: progress as JSON lines on stderr (stdout keeps the report).
        p if json => eprintln!("{}", progress_event(&p)),
        Progress::Stage(s) => {
            if tty {
                bar.set_message(s.to_string());
            } else if s != last_stage {
                eprintln!("compile: {s}");
            }
            last_stage = s.to_string();
        }
        Progress::Tensor {
            index,
            count,
            name,
            bytes_done,
            bytes_total,
            ..
        } => {
            if tty {
                bar.set_length(bytes_total);
                bar.set_position(bytes_done);
                bar.set_message(format!("{}/{count} {name}", index + 1));
            } else if (index + 1) % 50 == 0 || index + 1 == count {
                eprintln!("compile: tensor {}/{count} ({name})", index + 1);
            }
        }
    };
    let outcome = alc_convert::compile(&opts, &mut on_progress);
    bar.finish_and_clear();
    let outcome = outcome?;
    let package = match &outcome {
        Outcome::UpToDate { path, .. } => path.clone(),
        Outcome::Built(r) => r.package.clone(),
    };
    match outcome {
        Outcome::UpToDate { path, build_key } => {
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"package": path, "build_key": build_key, "up_to_date": true})
                );
            } else {
                println!("{}: up to date (build key {build_key})", path.display());
            }
        }
        Outcome::Built(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let worst = r
                    .tensors
                    .iter()
                    .max_by(|x, y| x.rmse.total_cmp(&y.rmse))
                    .map(|t| format!("{} rmse {:.3e}", t.name, t.rmse))
                    .unwrap_or_default();
                println!("package   {}", r.package.display());
                println!(
                    "model     {} ({}), {} parameters, quant {}, context {}, target {}",
                    r.architecture, r.gguf_architecture, r.parameters, r.quant, r.context, r.target
                );
                println!(
                    "size      {:.1} MiB from {:.1} MiB of checkpoint",
                    r.output_bytes as f64 / 1048576.0,
                    r.input_bytes as f64 / 1048576.0
                );
                println!(
                    "time      {:.2} s total, peak RSS {:.0} MiB{}",
                    r.stages_ms.get("total").copied().unwrap_or(0.0) / 1e3,
                    r.peak_rss_bytes as f64 / 1048576.0,
                    if r.tensors_resumed > 0 {
                        format!(", {} tensors resumed", r.tensors_resumed)
                    } else {
                        String::new()
                    }
                );
                println!("worst     {worst}");
                println!(
                    "check     {} (prompt {:?} → {:?})",
                    r.verification, r.self_check.prompt, r.self_check.got
                );
                for n in &r.notes {
                    println!("note      {n}");
                }
                println!("report    {}.report.json", r.name);
            }
        }
    }
    if opts.emit_onnx {
        let out = package.with_extension("onnx");
        let n = alc_convert::compile::extract_onnx(&package, &out)?;
        if !a.json {
            println!(
                "onnx      {} ({:.1} MiB)",
                out.display(),
                n as f64 / 1048576.0
            );
        }
    }
    if !a.no_register {
        crate::registry::register_compiled(&package, a.json);
    }
    Ok(())
}
