//! Front end for BERT sentence encoders (Hugging Face `BertModel`, with the
//! sentence-transformers files beside it) → an embedding package (`.AON`): GGUF
//! `general.architecture = "bert"` with llama.cpp's tensor names, the WordPiece
//! vocabulary, pooling and normalisation (docs/FORMAT.md Part D).
//!
//! `--quant`: `f32`, `f16`, or `int8` (every matrix and the token-embedding table as
//! Q8_0: int8 in blocks of 32 with an f16 scale). Norms, biases and the position and
//! token-type tables stay f32.
//!
//! Names: all-MiniLM-L6-v2-shaped models (6 layers, 384 wide) under the AVA scheme
//! are `AVA-384-Base-{INT8|F16|F32}.AON`, the seeds' name for that model; any other
//! encoder, or `--name-scheme plain`, gets `bert-{size}-{quant}.aon`.

use std::path::{Path, PathBuf};

use alc_core::DType;
use alc_format::{HfTensors, Value};
use serde_json::Value as Json;

use super::{check_ctx, dir_stem, hf_steps, OutTensor, Prepared, Target};
use crate::arch::{TensorPlan, Transform};
use crate::naming::{size_from_count, size_from_name, NameScheme};
use crate::quant::Reason;
use crate::{CompileOptions, ConvertError};

/// Whether `dir` holds a BERT encoder (config.json `model_type` "bert" or
/// architectures `BertModel`).
pub(super) fn is_bert(dir: &Path) -> bool {
    let Ok(bytes) = std::fs::read(dir.join("config.json")) else {
        return false;
    };
    let Ok(j) = serde_json::from_slice::<Json>(&bytes) else {
        return false;
    };
    j.get("model_type").and_then(Json::as_str) == Some("bert")
        || j.get("architectures")
            .and_then(Json::as_array)
            .is_some_and(|a| a.iter().any(|c| c.as_str() == Some("BertModel")))
}

fn read_json(path: &Path, what: &'static str) -> Result<Json, ConvertError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ConvertError::MissingFile {
            path: path.to_path_buf(),
            what,
        },
        _ => ConvertError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ConvertError::Unsupported(format!("{}: not valid JSON: {e}", path.display())))
}

/// The encoder quantisation schemes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BertQuant {
    F32,
    F16,
    Int8,
}

impl BertQuant {
    fn parse(s: Option<&str>) -> Result<BertQuant, ConvertError> {
        match s.map(str::to_ascii_lowercase).as_deref() {
            None | Some("int8") | Some("q8f16_1") | Some("q8_0") => Ok(BertQuant::Int8),
            Some("f32") => Ok(BertQuant::F32),
            Some("f16") => Ok(BertQuant::F16),
            Some(other) => Err(ConvertError::Unsupported(format!(
                "--quant {other} is not offered for BERT encoders; use int8 (default), f16 or f32"
            ))),
        }
    }
    fn name(self) -> &'static str {
        match self {
            BertQuant::F32 => "f32",
            BertQuant::F16 => "f16",
            BertQuant::Int8 => "int8",
        }
    }
    fn bits(self) -> &'static str {
        match self {
            BertQuant::F32 => "F32",
            BertQuant::F16 => "F16",
            BertQuant::Int8 => "INT8",
        }
    }
    fn matrix_type(self) -> DType {
        match self {
            BertQuant::F32 => DType::F32,
            BertQuant::F16 => DType::F16,
            BertQuant::Int8 => DType::Q8_0,
        }
    }
    /// llama.cpp's file types: all f32, mostly f16, mostly Q8_0.
    fn file_type(self) -> u32 {
        match self {
            BertQuant::F32 => 0,
            BertQuant::F16 => 1,
            BertQuant::Int8 => 7,
        }
    }
}

/// What an ONNX encoder needs beside its graph, from a Hugging Face / sentence-
/// transformers directory: architecture `bert`, the WordPiece vocabulary of its
/// tokenizer.json, and pooling / normalisation (`bert.pooling_type`,
/// `alc.embedding.normalize`).
pub fn encoder_metadata(dir: &Path) -> Result<Vec<(String, Value)>, ConvertError> {
    let (pool, normalize, _) = pooling(dir)?;
    let mut meta = vec![
        (
            "general.architecture".to_string(),
            Value::String("bert".into()),
        ),
        ("bert.pooling_type".into(), Value::U32(pool)),
        ("alc.embedding.normalize".into(), Value::Bool(normalize)),
    ];
    meta.extend(crate::wordpiece_vocab::wordpiece_metadata(dir)?);
    Ok(meta)
}

/// [`encoder_metadata`] as an in-memory GGUF file without tensors (the tokenizer of
/// `alc embed MODEL.onnx --tokenizer DIR`).
pub fn encoder_tokenizer_gguf(dir: &Path) -> Result<alc_format::GgufFile, ConvertError> {
    let mut w = alc_format::GgufWriter::new();
    for (k, v) in encoder_metadata(dir)? {
        w.set(&k, v)?;
    }
    let bytes = w.header_bytes();
    Ok(alc_format::GgufFile::from_bytes(
        dir.join("tokenizer.json"),
        bytes,
    )?)
}

/// Pooling from `1_Pooling/config.json` (mean when absent, as sentence-transformers
/// defaults), and whether a Normalize module follows (modules.json).
fn pooling(dir: &Path) -> Result<(u32, bool, Vec<PathBuf>), ConvertError> {
    let mut sources = Vec::new();
    let mut mode = 1;
    let modules_path = dir.join("modules.json");
    let mut pool_dir = dir.join("1_Pooling");
    let mut normalize = false;
    if modules_path.is_file() {
        sources.push(modules_path.clone());
        let m = read_json(&modules_path, "the sentence-transformers module list")?;
        for module in m.as_array().into_iter().flatten() {
            let ty = module.get("type").and_then(Json::as_str).unwrap_or("");
            let p = module.get("path").and_then(Json::as_str).unwrap_or("");
            if ty.ends_with("models.Normalize") {
                normalize = true;
            } else if ty.ends_with("models.Pooling") {
                pool_dir = dir.join(p);
            }
        }
    }
    let pc = pool_dir.join("config.json");
    if pc.is_file() {
        sources.push(pc.clone());
        let j = read_json(&pc, "the pooling configuration")?;
        let on = |k: &str| j.get(k).and_then(Json::as_bool).unwrap_or(false);
        let modes: Vec<&str> = [
            "pooling_mode_cls_token",
            "pooling_mode_mean_tokens",
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
            "pooling_mode_weightedmean_tokens",
            "pooling_mode_lasttoken",
        ]
        .into_iter()
        .filter(|k| on(k))
        .collect();
        mode = match modes.as_slice() {
            ["pooling_mode_mean_tokens"] => 1,
            ["pooling_mode_cls_token"] => 2,
            other => {
                return Err(ConvertError::Unsupported(format!(
                    "{}: pooling {:?} is not supported; alc pools by mean tokens or the CLS token (exactly one mode)",
                    pc.display(),
                    other
                )))
            }
        };
    }
    Ok((mode, normalize, sources))
}

/// The front end (see the module note).
pub(super) fn prepare_bert<'a>(
    opts: &'a CompileOptions,
    st: &'a HfTensors,
    tgt: &Target,
) -> Result<Prepared<'a>, ConvertError> {
    let dir = &opts.input;
    let cfg_path = dir.join("config.json");
    let cfg = read_json(&cfg_path, "the model configuration")?;
    let int = |k: &str, max: u64| -> Result<usize, ConvertError> {
        let v = cfg.get(k).and_then(Json::as_u64).ok_or_else(|| {
            ConvertError::Unsupported(format!(
                "{}: {k} is missing or not a positive integer",
                cfg_path.display()
            ))
        })?;
        if v == 0 || v > max {
            return Err(ConvertError::Unsupported(format!(
                "{}: {k} = {v} is out of range 1..={max}",
                cfg_path.display()
            )));
        }
        Ok(v as usize)
    };
    let n_layer = int("num_hidden_layers", 1024)?;
    let d = int("hidden_size", 1 << 16)?;
    let n_head = int("num_attention_heads", 1024)?;
    let ff = int("intermediate_size", 1 << 18)?;
    let n_pos = int("max_position_embeddings", 1 << 16)?;
    let n_vocab = int("vocab_size", 1 << 22)?;
    let n_type = cfg
        .get("type_vocab_size")
        .and_then(Json::as_u64)
        .unwrap_or(2) as usize;
    let eps = cfg
        .get("layer_norm_eps")
        .and_then(Json::as_f64)
        .unwrap_or(1e-12);
    if d % n_head != 0 {
        return Err(ConvertError::Unsupported(format!(
            "{}: num_attention_heads {n_head} does not divide hidden_size {d}",
            cfg_path.display()
        )));
    }
    let act = cfg
        .get("hidden_act")
        .and_then(Json::as_str)
        .unwrap_or("gelu");
    if act != "gelu" {
        return Err(ConvertError::Unsupported(format!(
            "{}: hidden_act '{act}' is not supported; alc's BERT runs erf GELU (\"gelu\")",
            cfg_path.display()
        )));
    }
    if let Some(p) = cfg.get("position_embedding_type").and_then(Json::as_str) {
        if p != "absolute" {
            return Err(ConvertError::Unsupported(format!(
                "{}: position_embedding_type '{p}' is not supported (absolute only)",
                cfg_path.display()
            )));
        }
    }
    let q = BertQuant::parse(opts.quant.as_deref())?;
    let ctx = check_ctx(opts, n_pos, tgt)?;
    let (pool, normalize, mut sources) = pooling(dir)?;
    let vocab = crate::wordpiece_vocab::wordpiece_metadata(dir)?;

    // Tensors: llama.cpp's names; checkpoints with a "bert." prefix are accepted.
    let prefix = if st.get("bert.embeddings.word_embeddings.weight").is_some() {
        "bert."
    } else {
        ""
    };
    let mut plans: Vec<(TensorPlan, DType, Reason)> = Vec::new();
    let mut add = |name: String, src: &str, shape: Vec<usize>, dt: DType, why: Reason| {
        plans.push((
            TensorPlan {
                name,
                source: format!("{prefix}{src}"),
                source_shape: shape.clone(),
                transform: Transform::None,
                shape,
            },
            dt,
            why,
        ));
    };
    let mt = q.matrix_type();
    add(
        "token_embd.weight".into(),
        "embeddings.word_embeddings.weight",
        vec![n_vocab, d],
        mt,
        Reason::Scheme,
    );
    add(
        "position_embd.weight".into(),
        "embeddings.position_embeddings.weight",
        vec![n_pos, d],
        DType::F32,
        Reason::Vector,
    );
    add(
        "token_types.weight".into(),
        "embeddings.token_type_embeddings.weight",
        vec![n_type, d],
        DType::F32,
        Reason::Vector,
    );
    add(
        "token_embd_norm.weight".into(),
        "embeddings.LayerNorm.weight",
        vec![d],
        DType::F32,
        Reason::Vector,
    );
    add(
        "token_embd_norm.bias".into(),
        "embeddings.LayerNorm.bias",
        vec![d],
        DType::F32,
        Reason::Vector,
    );
    for i in 0..n_layer {
        let l = format!("encoder.layer.{i}.");
        let mut pair = |ours: &str, theirs: &str, rows: usize, cols: usize| {
            add(
                format!("blk.{i}.{ours}.weight"),
                &format!("{l}{theirs}.weight"),
                vec![rows, cols],
                mt,
                Reason::Scheme,
            );
            add(
                format!("blk.{i}.{ours}.bias"),
                &format!("{l}{theirs}.bias"),
                vec![rows],
                DType::F32,
                Reason::Vector,
            );
        };
        pair("attn_q", "attention.self.query", d, d);
        pair("attn_k", "attention.self.key", d, d);
        pair("attn_v", "attention.self.value", d, d);
        pair("attn_output", "attention.output.dense", d, d);
        pair("ffn_up", "intermediate.dense", ff, d);
        pair("ffn_down", "output.dense", d, ff);
        let mut norm = |ours: &str, theirs: &str| {
            for wb in ["weight", "bias"] {
                add(
                    format!("blk.{i}.{ours}.{wb}"),
                    &format!("{l}{theirs}.{wb}"),
                    vec![d],
                    DType::F32,
                    Reason::Vector,
                );
            }
        };
        norm("attn_output_norm", "attention.output.LayerNorm");
        norm("layer_output_norm", "output.LayerNorm");
    }
    // Every source tensor present with its shape; Q8_0 needs rows of whole blocks.
    for (p, dt, _) in &plans {
        let t = st.get(&p.source).ok_or_else(|| {
            ConvertError::Unsupported(format!(
                "{}: tensor {} is missing; not a complete BERT checkpoint",
                dir.display(),
                p.source
            ))
        })?;
        if t.shape
            .iter()
            .map(|&x| x as usize)
            .ne(p.source_shape.iter().copied())
        {
            return Err(ConvertError::Unsupported(format!(
                "{}: tensor {} has shape {:?}, config.json implies {:?}",
                dir.display(),
                p.source,
                t.shape,
                p.source_shape
            )));
        }
        let cols = *p.shape.last().unwrap_or(&1) as u64;
        if dt.row_bytes(cols).is_err() {
            return Err(ConvertError::Unsupported(format!(
                "tensor {}: rows of {cols} are not a multiple of {}'s block; use --quant f16 or f32",
                p.name, dt
            )));
        }
    }

    let mut meta = vec![(
        "general.architecture".to_string(),
        Value::String("bert".into()),
    )];
    let u = |v: usize| Value::U32(v as u32);
    meta.extend([
        ("bert.context_length".to_string(), u(n_pos)),
        ("bert.embedding_length".into(), u(d)),
        ("bert.feed_forward_length".into(), u(ff)),
        ("bert.block_count".into(), u(n_layer)),
        ("bert.attention.head_count".into(), u(n_head)),
        (
            "bert.attention.layer_norm_epsilon".into(),
            Value::F32(eps as f32),
        ),
        ("bert.attention.causal".into(), Value::Bool(false)),
        ("bert.pooling_type".into(), Value::U32(pool)),
        ("alc.embedding.normalize".into(), Value::Bool(normalize)),
        ("tokenizer.ggml.token_type_count".into(), u(n_type)),
    ]);
    meta.extend(vocab);

    let params: u64 = plans.iter().map(|(p, _, _)| p.n_elements() as u64).sum();
    let stem = dir_stem(dir);
    let package_name = match opts.name_scheme {
        NameScheme::Ava if n_layer == 6 && d == 384 => format!("AVA-384-Base-{}.AON", q.bits()),
        _ => {
            let size = size_from_name(&stem).unwrap_or_else(|| size_from_count(params));
            format!("bert-{size}-{}.aon", q.name())
        }
    };
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "sentence_bert_config.json",
        "special_tokens_map.json",
    ] {
        let p = dir.join(f);
        if p.is_file() {
            sources.push(p);
        }
    }
    sources.extend(st.shards().iter().map(|p| p.to_path_buf()));
    let tensors: Vec<OutTensor> = plans
        .iter()
        .map(|(p, dt, why)| OutTensor {
            name: p.name.clone(),
            source: p.source.clone(),
            dtype: *dt,
            reason: why.clone(),
            shape: p.shape.clone(),
        })
        .collect();
    let (convert, release) = hf_steps(
        st,
        plans.into_iter().map(|(p, dt, _)| (p, dt)).collect(),
        opts.threads,
    );
    Ok(Prepared {
        arch: None,
        gguf_arch: "bert",
        package_name: Some(package_name),
        source_arch: "BertModel".into(),
        quant_name: q.name().into(),
        ava_bits: q.bits().into(),
        file_type: q.file_type(),
        ctx,
        n_vocab,
        meta,
        tokenizer_json: std::fs::read_to_string(dir.join("tokenizer.json")).ok(),
        tensors,
        convert,
        release,
        sources,
        stem,
        notes: Vec::new(),
        onnx: None,
    })
}
