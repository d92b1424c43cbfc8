//! Export a Hugging Face BertModel directory to ONNX, optionally quantised to INT8.
//!
//! `cargo run --release -p alc-onnx --example export -- models/all-minilm-l6-v2 /tmp/x.onnx [--int8] [--cast-mul] [--dynamic] [--f32-embeddings] [--reduce-range] [--per-tensor] [--tensor-activations]`
//!
//! `--int8` quantises weight-only (int8 weights, DequantizeLinear → f32 MatMul) and the
//! word-embedding table per row (`--cast-mul`: dequantise with Cast + Mul, which ONNX
//! Runtime folds back to f32 weights at load, instead of DequantizeLinear, which it
//! runs as 8-bit MatMulNBits); `--dynamic` uses the dynamic scheme (MatMulInteger,
//! activations quantised at run time) instead, where `--tensor-activations` picks
//! DynamicQuantizeLinear over per-token scales; `--f32-embeddings` leaves the
//! embedding table f32. A `.onnx` file as the first argument is quantised instead of
//! exported.

use alc_onnx::{bert_shape, export_bert, quantize, Dequantize, Model, QuantOptions, Scheme};
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: export <hf-dir | model.onnx> <out.onnx> [--int8] [--cast-mul] [--dynamic] [--f32-embeddings] [--reduce-range] [--per-tensor] [--tensor-activations]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let known = [
        "--int8",
        "--cast-mul",
        "--dynamic",
        "--f32-embeddings",
        "--reduce-range",
        "--per-tensor",
        "--tensor-activations",
    ];
    if let Some(bad) = args
        .iter()
        .find(|a| a.starts_with("--") && !known.contains(&a.as_str()))
    {
        eprintln!("unknown flag {bad}\n{USAGE}");
        return ExitCode::from(2);
    }
    let flag = |f: &str| args.iter().any(|a| a == f);
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    if pos.len() != 2 {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let (src, out) = (Path::new(pos[0]), Path::new(pos[1]));
    let run = || -> Result<(), alc_onnx::OnnxError> {
        let model = if src.is_dir() {
            export_bert(src)?
        } else {
            Model::open(src)?
        };
        let shape = bert_shape(&model)?;
        eprintln!("{shape:?}");
        let model = if flag("--int8") || flag("--dynamic") || flag("--cast-mul") {
            let opts = QuantOptions {
                scheme: if flag("--dynamic") {
                    Scheme::Dynamic
                } else {
                    Scheme::WeightOnly
                },
                dequantize: if flag("--cast-mul") {
                    Dequantize::CastMul
                } else {
                    Dequantize::Linear
                },
                reduce_range: flag("--reduce-range"),
                per_channel: !flag("--per-tensor"),
                per_token: !flag("--tensor-activations"),
                embeddings: !flag("--f32-embeddings"),
            };
            let (m, r) = quantize(&model, &opts)?;
            eprintln!(
                "{:?}: quantised {} matmuls (skipped {}) and {} embedding tables; weights {} -> {} bytes; embeddings {} -> {} bytes; model {} -> {} bytes",
                r.scheme,
                r.quantized.len(),
                r.skipped.len(),
                r.embeddings.len(),
                r.weight_bytes_before,
                r.weight_bytes_after,
                r.embedding_bytes_before,
                r.embedding_bytes_after,
                r.bytes_before,
                r.bytes_after
            );
            m
        } else {
            model
        };
        model.write_file(out)
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
