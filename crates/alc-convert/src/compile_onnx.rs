//! The ONNX front end of `alc compile` (a child module of compile.rs): packages whose
//! runtime is ONNX Runtime (`alc.runtime = "onnxruntime"`, FORMAT.md Part D).
//!
//! Two inputs reach it:
//! - an f32 ONNX BERT encoder (`alc compile model.onnx --quant int8 [--tokenizer DIR]`),
//! - a Hugging Face BERT directory with `--runtime onnxruntime`: the checkpoint is
//!   exported to f32 ONNX first (`alc_onnx::export_bert`).
//!
//! The graph is quantised by `alc_onnx::quantize` (`--quant int8`, the
//! default: its default scheme; `int8-dynamic`: int8 compute with per-token
//! activations; `f32`: unchanged) and stored whole as the one tensor
//! [`alc_engine::embed::ONNX_TENSOR`] (type I8) beside the WordPiece vocabulary,
//! pooling and normalisation of the tokenizer directory. `--emit-onnx` also writes the
//! graph as a plain `.onnx` file for stock ONNX Runtime (Mobile).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alc_core::DType;
use alc_format::{GgufFile, Value};
use alc_onnx::{Model, QuantOptions};

use super::{dir_stem, OutTensor, Prepared, SelfCheck, Target, SELF_CHECK_TOKENS};
use crate::naming::NameScheme;
use crate::quant::Reason;
use crate::{CompileOptions, ConvertError};

/// Quantisations of the ONNX front end.
pub const ONNX_QUANTS: &str = "int8 (default), int8-dynamic, f32";
/// Least cosine between the packaged graph's and the f32 source graph's embedding of
/// the self-check prompt (the fidelity bar of INT8 packages is 0.98 per sentence).
const MIN_ONNX_COSINE: f64 = 0.98;

/// Whether `path` names an ONNX file (by extension).
pub(super) fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Whether a package runs on ONNX Runtime.
pub fn is_onnx_package(file: &GgufFile) -> bool {
    file.get_str(alc_engine::embed::RUNTIME_KEY).ok().flatten()
        == Some(alc_engine::embed::RUNTIME_ONNX)
}

fn onnx_err(path: &Path) -> impl Fn(alc_onnx::OnnxError) -> ConvertError + '_ {
    move |e| ConvertError::Unsupported(format!("{}: {e}", path.display()))
}

/// The f32 source graph, the directory of its tokenizer, and the files hashed into
/// the source digest.
fn source(opts: &CompileOptions) -> Result<(Model, PathBuf, Vec<PathBuf>), ConvertError> {
    let input = &opts.input;
    if input.is_dir() {
        let model = alc_onnx::export_bert(input).map_err(onnx_err(input))?;
        let mut sources = vec![input.join("config.json")];
        for f in std::fs::read_dir(input).map_err(super::io_err(input))? {
            let p = f.map_err(super::io_err(input))?.path();
            if p.extension().is_some_and(|e| e == "safetensors") {
                sources.push(p);
            }
        }
        let tok = opts.tokenizer.clone().unwrap_or_else(|| input.clone());
        return Ok((model, tok, sources));
    }
    let model = Model::open(input).map_err(onnx_err(input))?;
    let tok = match &opts.tokenizer {
        Some(d) => d.clone(),
        None => input
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
    };
    Ok((model, tok, vec![input.clone()]))
}

pub(super) fn prepare_onnx<'a>(
    opts: &CompileOptions,
    _tgt: &Target,
) -> Result<Prepared<'a>, ConvertError> {
    let (source_model, tok_dir, mut sources) = source(opts)?;
    let input = &opts.input;
    let shape = alc_onnx::bert_shape(&source_model).map_err(onnx_err(input))?;
    if !tok_dir.join("tokenizer.json").is_file() {
        return Err(ConvertError::Unsupported(format!(
            "{}: an embedding package needs the model's tokenizer; pass --tokenizer DIR (a Hugging Face directory with tokenizer.json); {} has none",
            input.display(),
            tok_dir.display()
        )));
    }
    let quant = opts.quant.as_deref().unwrap_or("int8");
    let (model, quant_name, bits, notes) = match quant {
        "f32" => (source_model.clone(), "f32", "F32", Vec::new()),
        "int8" | "int8-dynamic" => {
            let o = if quant == "int8" {
                QuantOptions::default()
            } else {
                QuantOptions {
                    scheme: alc_onnx::Scheme::Dynamic,
                    ..QuantOptions::default()
                }
            };
            let (m, r) = alc_onnx::quantize(&source_model, &o).map_err(onnx_err(input))?;
            let note = if r.quantized.is_empty() {
                format!(
                    "nothing was quantised: no MatMul, Gemm or embedding Gather has a constant f32 weight (is the graph already quantised?); {} matmuls stay as they are",
                    r.skipped.len()
                )
            } else {
                format!(
                "{} weight matrices quantised ({} matmuls of two activations stay f32); weights {:.1} → {:.1} MiB",
                r.quantized.len(),
                r.skipped.len(),
                r.weight_bytes_before as f64 / 1048576.0,
                r.weight_bytes_after as f64 / 1048576.0
                )
            };
            (m, quant, "INT8", vec![note])
        }
        other => {
            return Err(ConvertError::Unsupported(format!(
                "--quant {other} is not available for ONNX packages; use one of {ONNX_QUANTS}"
            )))
        }
    };
    let parameters = alc_onnx::parameter_count(&model);
    let bytes = model.to_bytes();
    let reference = (quant != "f32").then(|| source_model.to_bytes());
    let n_layer = model
        .graph
        .as_ref()
        .map(|g| g.node.iter().filter(|n| n.op_type == "Softmax").count())
        .unwrap_or(0);

    let mut meta = super::bert::encoder_metadata(&tok_dir)?;
    let u = |v: usize| Value::U32(v as u32);
    let n_pos = shape.max_positions.unwrap_or(512);
    meta.extend([
        (
            alc_engine::embed::RUNTIME_KEY.to_string(),
            Value::String(alc_engine::embed::RUNTIME_ONNX.into()),
        ),
        ("bert.embedding_length".into(), u(shape.hidden)),
        ("bert.context_length".into(), u(n_pos)),
        ("bert.block_count".into(), u(n_layer)),
        (
            "alc.onnx.output".into(),
            Value::String(shape.output.clone()),
        ),
    ]);
    for f in ["tokenizer.json", "modules.json", "1_Pooling/config.json"] {
        let p = tok_dir.join(f);
        if p.is_file() {
            sources.push(p);
        }
    }
    let stem = if input.is_dir() {
        dir_stem(input)
    } else {
        input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let package_name = match opts.name_scheme {
        NameScheme::Ava if n_layer == 6 && shape.hidden == 384 => {
            format!("AVA-384-Base-{bits}.AON")
        }
        _ => format!("bert-{stem}-{quant_name}-onnx.aon"),
    };
    let n_vocab = meta
        .iter()
        .find(|(k, _)| k == "tokenizer.ggml.tokens")
        .and_then(|(_, v)| match v {
            Value::Array(a) => Some(a.len()),
            _ => None,
        })
        .unwrap_or(0);
    let tensors = vec![OutTensor {
        name: alc_engine::embed::ONNX_TENSOR.into(),
        source: input.display().to_string(),
        dtype: DType::I8,
        reason: Reason::Scheme,
        shape: vec![bytes.len()],
    }];
    let bytes = Arc::new(bytes);
    let b2 = bytes.clone();
    Ok(Prepared {
        arch: None,
        gguf_arch: "bert",
        package_name: Some(package_name),
        source_arch: "ONNX BERT encoder".into(),
        quant_name: format!("{quant_name} (onnx)"),
        ava_bits: bits.into(),
        file_type: if quant == "f32" { 0 } else { 7 },
        ctx: n_pos,
        n_vocab,
        meta,
        tokenizer_json: std::fs::read_to_string(tok_dir.join("tokenizer.json")).ok(),
        tensors,
        convert: Box::new(move |_| Ok((b2.as_ref().clone(), 0.0, 0.0))),
        release: Box::new(|_| {}),
        sources,
        stem,
        notes,
        onnx: Some(super::OnnxBuild {
            graph: bytes,
            parameters,
            reference: reference.map(Arc::new),
        }),
    })
}

/// Write the ONNX graph held by the package `package` to `out` as a plain .onnx file
/// (atomically); returns its size.
pub fn extract_onnx(package: &Path, out: &Path) -> Result<u64, ConvertError> {
    let f = GgufFile::open(package)?;
    let t = f
        .tensor(alc_engine::embed::ONNX_TENSOR)
        .filter(|_| is_onnx_package(&f))
        .ok_or_else(|| {
            ConvertError::Unsupported(format!(
                "{} holds no ONNX graph (it is not a package of runtime onnxruntime)",
                package.display()
            ))
        })?;
    let bytes = f.tensor_data(t);
    let mut file = alc_format::AtomicFile::create(out)?;
    std::io::Write::write_all(&mut file, bytes)
        .map_err(|e| file.error("writing the ONNX graph", e))?;
    file.commit()?;
    Ok(bytes.len() as u64)
}

/// The self-check of an ONNX package: the packaged graph's embedding of the prompt
/// through ONNX Runtime. At build time (`reference` = the f32 source graph) it must
/// agree with the source within [`MIN_ONNX_COSINE`]; from `alc verify` (`recorded`)
/// the first components must reproduce the recorded ones within 1e-3.
pub fn self_check_onnx(
    path: &Path,
    threads: usize,
    recorded: Option<(&[u32], &[u32])>,
    reference: Option<&[u8]>,
) -> Result<SelfCheck, ConvertError> {
    let sc = |e: String| ConvertError::SelfCheck(e);
    let emb = alc_engine::Embedder::open(path, threads).map_err(|e| sc(e.to_string()))?;
    let prompt = match recorded {
        Some((p, _)) => p.to_vec(),
        None => {
            let (mut p, _) = emb
                .tokenize(super::SELF_CHECK_TEXT)
                .map_err(|e| sc(e.to_string()))?;
            if p.len() > SELF_CHECK_TOKENS {
                let last = *p.last().expect("non-empty");
                p.truncate(SELF_CHECK_TOKENS - 1);
                p.push(last);
            }
            p
        }
    };
    let got = emb
        .embed_ids(&[(prompt.clone(), false)])
        .map_err(|e| sc(e.to_string()))?
        .pop()
        .map(|e| e.vector)
        .unwrap_or_default();
    let bits = |v: &[f32]| -> Vec<u32> {
        v.iter()
            .take(SELF_CHECK_TOKENS)
            .map(|x| x.to_bits())
            .collect()
    };
    let mut failure = None;
    let mut cos = 1.0;
    if let Some(src) = reference {
        let enc = alc_ort::OrtEncoder::from_bytes(src, threads).map_err(|e| sc(e.to_string()))?;
        let rows = enc.run(&[&prompt]).map_err(|e| sc(e.to_string()))?;
        let (pooling, normalize) = emb.pooling();
        let want = alc_models::bert::pool(&rows[0], enc.hidden(), pooling, normalize);
        cos = super::cosine(&want, &got);
        if cos.is_nan() || cos < MIN_ONNX_COSINE {
            failure = Some(format!(
                "cosine similarity of the quantised and the f32 source graph's embeddings {cos:.6} < {MIN_ONNX_COSINE}"
            ));
        }
    }
    if let Some((_, want)) = recorded {
        let drift = want
            .iter()
            .zip(&got)
            .map(|(&w, &r)| (f32::from_bits(w) - r).abs())
            .fold(0f32, f32::max);
        if want.len() != got.len().min(SELF_CHECK_TOKENS) || drift.is_nan() || drift > 1e-3 {
            failure.get_or_insert(format!(
                "the embedding's first components moved by {drift:.2e} from the recorded ones (> 1e-3)"
            ));
        }
    }
    Ok(SelfCheck {
        prompt,
        expected: bits(&got),
        got: bits(&got),
        max_rel_err: 1.0 - cos,
        max_kl: 0.0,
        passed: failure.is_none(),
        failure,
    })
}
