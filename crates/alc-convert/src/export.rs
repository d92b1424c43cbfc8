//! `alc export --hf`: a GGUF file or alc package back to a Hugging Face checkpoint
//! directory — config.json, safetensors (one file, or shards with an index),
//! tokenizer.json, tokenizer_config.json (with the chat template) and
//! generation_config.json — that transformers loads and `alc compile` compiles.
//!
//! Quantised weights are dequantised exactly to f32 and stored as `--dtype` (f16 by
//! default); vectors (norms, biases) are stored as f32, so a round trip
//! GGUF → export → compile keeps them bit for bit. The inverse of every transform
//! of [`crate::arch`] is applied: llama-arch q/k rows go back from llama.cpp's
//! interleaved rope order to the checkpoint's halves order, gemma's norm weights lose
//! the +1. The output appears under its name only when complete (written in a
//! temporary directory beside it, then renamed).

use crate::compile::{dequantize_row_blocks, gguf_model};
use crate::{arch::Arch, vocab, ConvertError, Progress};
use alc_core::DType;
use alc_format::{GgufFile, TensorInfo};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Storage type of the exported matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportDtype {
    F32,
    F16,
    BF16,
}

impl ExportDtype {
    pub fn parse(s: &str) -> Result<ExportDtype, ConvertError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => ExportDtype::F32,
            "f16" | "float16" => ExportDtype::F16,
            "bf16" | "bfloat16" => ExportDtype::BF16,
            other => {
                return Err(ConvertError::Unsupported(format!(
                    "--dtype {other} is not an export type; use f16, bf16 or f32"
                )))
            }
        })
    }
    fn st_name(self) -> &'static str {
        match self {
            ExportDtype::F32 => "F32",
            ExportDtype::F16 => "F16",
            ExportDtype::BF16 => "BF16",
        }
    }
    fn torch_name(self) -> &'static str {
        match self {
            ExportDtype::F32 => "float32",
            ExportDtype::F16 => "float16",
            ExportDtype::BF16 => "bfloat16",
        }
    }
    /// The element type, written by `alc_quant::quantize` (as `alc compile` does).
    fn dtype(self) -> DType {
        match self {
            ExportDtype::F32 => DType::F32,
            ExportDtype::F16 => DType::F16,
            ExportDtype::BF16 => DType::BF16,
        }
    }
}

/// What `alc export --hf` is asked to do.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// A GGUF file or alc package.
    pub input: PathBuf,
    /// The checkpoint directory to create.
    pub out: PathBuf,
    pub dtype: ExportDtype,
    /// Largest safetensors shard; more data than this is split into
    /// `model-0000i-of-0000n.safetensors` files with an index.
    pub max_shard_bytes: u64,
    /// Replace an existing non-empty output directory.
    pub force: bool,
}

impl ExportOptions {
    pub fn new(input: impl Into<PathBuf>, out: impl Into<PathBuf>) -> ExportOptions {
        ExportOptions {
            input: input.into(),
            out: out.into(),
            dtype: ExportDtype::F16,
            max_shard_bytes: 2 << 30,
            force: false,
        }
    }
}

/// What was written.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportReport {
    pub out: PathBuf,
    pub hf_class: String,
    pub gguf_architecture: String,
    pub tensors: usize,
    pub shards: Vec<String>,
    pub bytes: u64,
    pub dtype: String,
    pub seconds: f64,
    pub peak_rss_bytes: u64,
}

/// One checkpoint tensor: its HF name, the GGUF tensor it comes from, and the
/// inverse transform.
struct Item<'a> {
    name: String,
    src: &'a TensorInfo,
    inverse: Inverse,
    /// PyTorch-order shape.
    shape: Vec<usize>,
    dtype: ExportDtype,
}

impl Item<'_> {
    fn bytes(&self) -> u64 {
        (self.shape.iter().product::<usize>() * self.dtype.dtype().block_bytes()) as u64
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Inverse {
    None,
    /// Undo [`crate::arch::Transform::PermuteRope`] over `heads` heads.
    UnpermuteRope {
        heads: usize,
    },
    /// Undo gemma's +1.
    SubOne,
}

/// Rows h·hd + 2j + s (llama.cpp's interleaved rope pairs) back to h·hd + s·hd/2 + j.
pub fn unpermute_rope(x: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    let rows = x.len() / cols;
    let hd = rows / heads;
    let half = hd / 2;
    let mut out = vec![0f32; x.len()];
    for h in 0..heads {
        for s in 0..2 {
            for j in 0..half {
                let src = h * hd + 2 * j + s;
                let dst = h * hd + s * half + j;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&x[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// The HF name and inverse transform of a GGUF tensor (`None`: not part of the
/// architecture, an error for the caller).
fn hf_name(arch: Arch, hp: &alc_models::HParams, gguf: &str) -> Option<(String, Inverse)> {
    let gemma = matches!(arch, Arch::Gemma2 | Arch::Gemma3);
    let norm = if gemma {
        Inverse::SubOne
    } else {
        Inverse::None
    };
    let rope = |heads| {
        if arch == Arch::Llama {
            Inverse::UnpermuteRope { heads }
        } else {
            Inverse::None
        }
    };
    match gguf {
        "token_embd.weight" => return Some(("model.embed_tokens.weight".into(), Inverse::None)),
        "output.weight" => return Some(("lm_head.weight".into(), Inverse::None)),
        "output_norm.weight" => return Some(("model.norm.weight".into(), norm)),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (idx, what) = rest.split_once('.')?;
    let i: usize = idx.parse().ok()?;
    if i >= hp.n_layer {
        return None;
    }
    let (hf, inv) = match what {
        "attn_norm.weight" => ("input_layernorm.weight", norm),
        "ffn_norm.weight" if gemma => ("pre_feedforward_layernorm.weight", norm),
        "ffn_norm.weight" => ("post_attention_layernorm.weight", norm),
        "post_attention_norm.weight" if gemma => ("post_attention_layernorm.weight", norm),
        "post_ffw_norm.weight" if gemma => ("post_feedforward_layernorm.weight", norm),
        "attn_q_norm.weight" if matches!(arch, Arch::Qwen3 | Arch::Gemma3) => {
            ("self_attn.q_norm.weight", norm)
        }
        "attn_k_norm.weight" if matches!(arch, Arch::Qwen3 | Arch::Gemma3) => {
            ("self_attn.k_norm.weight", norm)
        }
        "attn_q.weight" => ("self_attn.q_proj.weight", rope(hp.n_head)),
        "attn_k.weight" => ("self_attn.k_proj.weight", rope(hp.n_kv_head)),
        "attn_v.weight" => ("self_attn.v_proj.weight", Inverse::None),
        "attn_output.weight" => ("self_attn.o_proj.weight", Inverse::None),
        "attn_q.bias" => ("self_attn.q_proj.bias", rope(hp.n_head)),
        "attn_k.bias" => ("self_attn.k_proj.bias", rope(hp.n_kv_head)),
        "attn_v.bias" => ("self_attn.v_proj.bias", Inverse::None),
        "ffn_gate.weight" => ("mlp.gate_proj.weight", Inverse::None),
        "ffn_up.weight" => ("mlp.up_proj.weight", Inverse::None),
        "ffn_down.weight" => ("mlp.down_proj.weight", Inverse::None),
        _ => return None,
    };
    Some((format!("model.layers.{i}.{hf}"), inv))
}

/// An f32 hyperparameter as the shortest decimal that reads back to it (1e-5, not
/// 9.999999747378752e-6).
fn num(v: f32) -> Json {
    v.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Json::Null, Json::Number)
}

/// config.json for the model.
fn config_json(
    arch: Arch,
    f: &GgufFile,
    hp: &alc_models::HParams,
    tied: bool,
    dtype: ExportDtype,
) -> Result<Json, ConvertError> {
    let (class, model_type) = match arch {
        Arch::Llama | Arch::Mistral | Arch::Phi3 => ("LlamaForCausalLM", "llama"),
        Arch::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
        Arch::Qwen3 => ("Qwen3ForCausalLM", "qwen3"),
        Arch::Gemma2 => ("Gemma2ForCausalLM", "gemma2"),
        Arch::Gemma3 => ("Gemma3ForCausalLM", "gemma3_text"),
    };
    let tok_id = |k: &str| -> Result<Json, ConvertError> {
        Ok(f.get_u64(&format!("tokenizer.ggml.{k}"))?
            .map_or(Json::Null, Json::from))
    };
    let mut c = json!({
        "architectures": [class],
        "model_type": model_type,
        "hidden_size": hp.n_embd,
        "intermediate_size": hp.n_ff,
        "num_hidden_layers": hp.n_layer,
        "num_attention_heads": hp.n_head,
        "num_key_value_heads": hp.n_kv_head,
        "head_dim": hp.head_dim,
        "max_position_embeddings": hp.ctx_train,
        "vocab_size": hp.n_vocab,
        "rms_norm_eps": num(hp.norm_eps),
        "rope_theta": num(hp.rope_base),
        "tie_word_embeddings": tied,
        "bos_token_id": tok_id("bos_token_id")?,
        "eos_token_id": tok_id("eos_token_id")?,
        "pad_token_id": tok_id("padding_token_id")?,
        "torch_dtype": dtype.torch_name(),
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": true,
    });
    let m = c.as_object_mut().expect("an object");
    let gemma = matches!(arch, Arch::Gemma2 | Arch::Gemma3);
    if gemma {
        m.insert("hidden_activation".into(), "gelu_pytorch_tanh".into());
        m.insert("hidden_act".into(), "gelu_pytorch_tanh".into());
        // The q·k scale is 1/sqrt(query_pre_attn_scalar).
        let q = 1.0 / (hp.attn_scale as f64).powi(2);
        m.insert("query_pre_attn_scalar".into(), json!(q.round()));
        if let Some(w) = hp.swa_window {
            m.insert("sliding_window".into(), w.into());
        }
        let types: Vec<&str> = hp
            .swa_layers
            .iter()
            .map(|&s| {
                if s {
                    "sliding_attention"
                } else {
                    "full_attention"
                }
            })
            .collect();
        m.insert("layer_types".into(), json!(types));
        if let Some(c) = hp.attn_softcap {
            m.insert("attn_logit_softcapping".into(), num(c));
        }
        if let Some(c) = hp.final_softcap {
            m.insert("final_logit_softcapping".into(), num(c));
        }
        if arch == Arch::Gemma3 {
            m.insert("rope_local_base_freq".into(), num(hp.rope_base_swa));
        }
    } else {
        m.insert("hidden_act".into(), "silu".into());
        m.insert("attention_bias".into(), json!(arch == Arch::Qwen2));
        m.insert("mlp_bias".into(), json!(false));
    }
    if arch == Arch::Qwen2 {
        m.insert("use_sliding_window".into(), json!(false));
        m.insert("sliding_window".into(), json!(hp.ctx_train));
        m.insert("max_window_layers".into(), json!(hp.n_layer));
    }
    if hp.rope_freq_scale != 1.0 {
        m.insert(
            "rope_scaling".into(),
            json!({"rope_type": "linear", "type": "linear", "factor": num(1.0 / hp.rope_freq_scale)}),
        );
    }
    Ok(c)
}

/// SentencePiece merges as the Hugging Face converter derives them from a piece
/// list: every split of every piece into two pieces, ordered by the merged piece's
/// score (highest first), then by the lengths of the left and right parts (longest
/// first), ties kept in piece order and, within a piece, by the parts' ids.
fn spm_merges<'a>(
    tokens: &[&'a str],
    scores: &[f32],
    vocab: &HashMap<&str, usize>,
) -> Vec<(&'a str, &'a str)> {
    let mut merges: Vec<(&str, &str, f32)> = Vec::new();
    let mut local = Vec::new();
    for (i, &t) in tokens.iter().enumerate() {
        if !vocab.contains_key(t) {
            continue;
        }
        local.clear();
        for (k, _) in t.char_indices().skip(1) {
            let (l, r) = t.split_at(k);
            if let (Some(&a), Some(&b)) = (vocab.get(l), vocab.get(r)) {
                local.push((a, b, l, r));
            }
        }
        local.sort_by_key(|&(a, b, _, _)| (a, b));
        merges.extend(local.iter().map(|&(_, _, l, r)| (l, r, scores[i])));
    }
    let len = |s: &str| s.chars().count();
    // Stable: equal keys keep their order, as Python's sorted(reverse=True) does;
    // -0.0 and 0.0 compare equal there too.
    merges.sort_by(|x, y| {
        y.2.partial_cmp(&x.2)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| len(y.0).cmp(&len(x.0)))
            .then_with(|| len(y.1).cmp(&len(x.1)))
    });
    merges.into_iter().map(|(l, r, _)| (l, r)).collect()
}

/// tokenizer.json, tokenizer_config.json and generation_config.json from the GGUF
/// vocabulary: byte-level BPE ("gpt2") or SentencePiece ("llama", rebuilt as a BPE
/// with byte fallback, merges derived from the piece scores).
pub fn tokenizer_files(f: &GgufFile, ctx: usize) -> Result<(Json, Json, Json), ConvertError> {
    let bad = |why: String| ConvertError::Tokenizer {
        path: f.path().to_path_buf(),
        why,
    };
    let model = f.get_str("tokenizer.ggml.model")?.unwrap_or("(none)");
    let spm = match model {
        "gpt2" => false,
        "llama" => true,
        _ => {
            return Err(bad(format!(
                "tokenizer.ggml.model '{model}' cannot be exported (supported: gpt2 \
                 (byte-level BPE), llama (SentencePiece))"
            )))
        }
    };
    let tokens = f
        .get_str_array("tokenizer.ggml.tokens")?
        .ok_or_else(|| bad("tokenizer.ggml.tokens is missing".into()))?;
    let types = f
        .get_i64_array("tokenizer.ggml.token_type")?
        .unwrap_or_else(|| vec![vocab::NORMAL as i64; tokens.len()]);
    if types.len() != tokens.len() {
        return Err(bad(format!(
            "tokenizer.ggml.token_type has {} entries for {} tokens",
            types.len(),
            tokens.len()
        )));
    }

    let mut vocab_map = Map::new();
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    let mut added = Vec::new();
    for (id, (&tok, &ty)) in tokens.iter().zip(&types).enumerate() {
        if ty == vocab::UNUSED as i64 && tok == format!("[PAD{id}]") {
            // Padding rows beyond the tokenizer; `alc compile` recreates them.
            continue;
        }
        if index.insert(tok, id).is_some() {
            return Err(bad(format!(
                "token {id} ({tok:?}) repeats an earlier token; tokenizer.json cannot hold it"
            )));
        }
        vocab_map.insert(tok.to_string(), id.into());
        if ty == vocab::CONTROL as i64 || ty == vocab::USER_DEFINED as i64 {
            added.push(json!({
                "id": id,
                "content": tok,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": ty == vocab::CONTROL as i64,
            }));
        }
    }
    let id = |k: &str| -> Result<Option<usize>, ConvertError> {
        Ok(f.get_u64(&format!("tokenizer.ggml.{k}"))?
            .map(|v| v as usize)
            .filter(|&v| v < tokens.len()))
    };
    let name = |i: Option<usize>| i.map_or(Json::Null, |i| Json::from(tokens[i]));
    let bos = id("bos_token_id")?;
    let eos = id("eos_token_id")?;
    let unk = id("unknown_token_id")?;

    // The model section and the text pipeline around it.
    let (model, normalizer, pre_tokenizer, decoder) = if spm {
        let scores = f.get_f32_array("tokenizer.ggml.scores")?.ok_or_else(|| {
            bad("tokenizer.ggml.scores is missing (SentencePiece ranks merges by them)".into())
        })?;
        if scores.len() != tokens.len() {
            return Err(bad(format!(
                "tokenizer.ggml.scores has {} entries for {} tokens",
                scores.len(),
                tokens.len()
            )));
        }
        // llama.cpp's default for SentencePiece vocabularies is to add the prefix.
        let prefix = f
            .get_bool("tokenizer.ggml.add_space_prefix")?
            .unwrap_or(true);
        let merges: Vec<Json> = spm_merges(&tokens, &scores, &index)
            .into_iter()
            .map(|(l, r)| json!([l, r]))
            .collect();
        let replace =
            json!({"type": "Replace", "pattern": {"String": " "}, "content": vocab::SPACE});
        let mut decode = vec![
            json!({"type": "Replace", "pattern": {"String": vocab::SPACE}, "content": " "}),
            json!({"type": "ByteFallback"}),
            json!({"type": "Fuse"}),
        ];
        let (normalizer, pre) = if prefix {
            decode.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
            (
                json!({"type": "Sequence", "normalizers": [
                    {"type": "Prepend", "prepend": vocab::SPACE}, replace]}),
                Json::Null,
            )
        } else {
            (
                replace,
                json!({"type": "Split", "pattern": {"String": " "},
                       "behavior": "MergedWithPrevious", "invert": false}),
            )
        };
        let model = json!({
            "type": "BPE",
            "dropout": null,
            "unk_token": name(unk),
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": true,
            "byte_fallback": true,
            "ignore_merges": false,
            "vocab": vocab_map,
            "merges": merges,
        });
        (
            model,
            normalizer,
            pre,
            json!({"type": "Sequence", "decoders": decode}),
        )
    } else {
        let merges = f
            .get_str_array("tokenizer.ggml.merges")?
            .ok_or_else(|| bad("tokenizer.ggml.merges is missing".into()))?;
        let pre = f.get_str("tokenizer.ggml.pre")?.unwrap_or("default");
        let pre_tok = vocab::pre_tokenizer_json(pre).ok_or_else(|| {
            bad(format!(
                "pre-tokenizer '{pre}' cannot be exported (supported: {})",
                vocab::PRE_SHAPES
                    .iter()
                    .map(|(_, p)| *p)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let merges: Vec<Json> = merges
            .iter()
            .map(|m| match m.split_once(' ') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => {
                    Ok(json!([a, b]))
                }
                _ => Err(bad(format!(
                    "merge {m:?} is not two tokens separated by a space"
                ))),
            })
            .collect::<Result<_, _>>()?;
        let model = json!({
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": pre == "llama-bpe",
            "vocab": vocab_map,
            "merges": merges,
        });
        let normalizer = if pre == "qwen2" {
            json!({"type": "NFC"})
        } else {
            Json::Null
        };
        let decoder = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
        (model, normalizer, pre_tok, decoder)
    };

    let add_bos = f.get_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false) && bos.is_some();
    let add_eos = f.get_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false) && eos.is_some();
    let post = if add_bos || add_eos {
        let mut specials = Map::new();
        let mut seq = |ids: &[&str]| -> Vec<Json> {
            let mut v = Vec::new();
            let mut special = |i: Option<usize>, on: bool, v: &mut Vec<Json>| {
                if let (true, Some(i)) = (on, i) {
                    let t = tokens[i];
                    specials.insert(t.into(), json!({"id": t, "ids": [i], "tokens": [t]}));
                    v.push(json!({"SpecialToken": {"id": t, "type_id": 0}}));
                }
            };
            for &s in ids {
                special(bos, add_bos, &mut v);
                v.push(json!({"Sequence": {"id": s, "type_id": 0}}));
                special(eos, add_eos, &mut v);
            }
            v
        };
        let single = seq(&["A"]);
        let pair = seq(&["A", "B"]);
        json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials})
    } else if spm {
        Json::Null
    } else {
        json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false})
    };
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post,
        "decoder": decoder,
        "model": model,
    });
    let mut config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": name(bos),
        "eos_token": name(eos),
        "unk_token": name(unk),
        "pad_token": name(id("padding_token_id")?),
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "clean_up_tokenization_spaces": false,
        "model_max_length": ctx,
    });
    if let Some(t) = f.get_str("tokenizer.chat_template")? {
        config["chat_template"] = t.into();
    }
    let generation = json!({
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": id("padding_token_id")?,
    });
    Ok((tokenizer, config, generation))
}

/// Write `value` as pretty JSON to `path`, fsynced.
fn write_json(path: &Path, value: &Json) -> Result<(), ConvertError> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    text.push('\n');
    write_synced(path, text.as_bytes())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ConvertError> {
    let io = |e| ConvertError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = std::fs::File::create(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// A safetensors header for `items` (offsets in order), padded to 8 bytes.
fn st_header(items: &[&Item<'_>]) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut off = 0u64;
    for it in items {
        let end = off + it.bytes();
        m.insert(
            it.name.clone(),
            json!({"dtype": it.dtype.st_name(), "shape": it.shape, "data_offsets": [off, end]}),
        );
        off = end;
    }
    let mut h = serde_json::to_vec(&Json::Object(m)).expect("JSON values serialise");
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out
}

/// Dequantise `it`, apply its inverse transform and write it in its export type to
/// `w` (the shard at `out`).
fn write_tensor(
    f: &GgufFile,
    it: &Item<'_>,
    w: &mut impl Write,
    out: &Path,
    buf: &mut Vec<u8>,
) -> Result<(), ConvertError> {
    let t = it.src;
    let ty = it.dtype.dtype();
    let mut emit = |x: &[f32]| -> Result<(), ConvertError> {
        buf.resize(x.len() * ty.block_bytes(), 0);
        alc_quant::quantize(ty, x, buf).map_err(|e| ConvertError::Quant {
            tensor: t.name.clone(),
            source: e,
        })?;
        w.write_all(buf).map_err(|e| ConvertError::Io {
            path: out.to_path_buf(),
            source: e,
        })
    };
    if it.inverse == Inverse::None {
        return dequantize_row_blocks(f, t, emit);
    }
    // The inverse transforms act on whole heads: the whole (small) tensor at once.
    let mut x = Vec::with_capacity(t.dims.iter().product::<u64>() as usize);
    dequantize_row_blocks(f, t, |b| {
        x.extend_from_slice(b);
        Ok(())
    })?;
    let y = match it.inverse {
        Inverse::UnpermuteRope { heads } => {
            // Vectors (biases) are permuted as one-column matrices.
            let cols = if t.dims.len() == 1 {
                1
            } else {
                t.dims[0] as usize
            };
            unpermute_rope(&x, heads, cols)
        }
        Inverse::SubOne => x.iter().map(|v| v - 1.0).collect(),
        Inverse::None => unreachable!("handled above"),
    };
    emit(&y)
}

/// Export `opts.input` as a Hugging Face checkpoint directory.
pub fn export_hf(
    opts: &ExportOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<ExportReport, ConvertError> {
    let t0 = Instant::now();
    progress(Progress::Stage("checking the input"));
    let f = Arc::new(GgufFile::open(&opts.input)?);
    let (arch_name, arch, hp) = gguf_model(&f)?;
    let tied = f.tensor("output.weight").is_none();

    let mut items = Vec::new();
    for t in f.tensors() {
        let (name, inverse) = hf_name(arch, &hp, &t.name).ok_or_else(|| {
            ConvertError::Unsupported(format!(
                "{}: tensor '{}' has no Hugging Face {} counterpart that alc knows; \
                 this file cannot be exported",
                f.path().display(),
                t.name,
                arch.name()
            ))
        })?;
        if !alc_quant::DEQUANT_TYPES.contains(&t.dtype) {
            return Err(ConvertError::Unsupported(format!(
                "tensor {} is {}, which alc cannot dequantise",
                t.name, t.dtype
            )));
        }
        let shape: Vec<usize> = t.dims.iter().rev().map(|&d| d as usize).collect();
        let dtype = if shape.len() == 1 {
            ExportDtype::F32
        } else {
            opts.dtype
        };
        items.push(Item {
            name,
            src: t,
            inverse,
            shape,
            dtype,
        });
    }
    let (tok, tok_cfg, gen) = tokenizer_files(&f, hp.ctx_train)?;
    let config = config_json(arch, &f, &hp, tied, opts.dtype)?;

    // Shards: consecutive tensors up to max_shard_bytes each.
    let mut shards: Vec<Vec<&Item<'_>>> = vec![Vec::new()];
    let mut size = 0u64;
    for it in &items {
        let cur = shards.last_mut().expect("one shard");
        if !cur.is_empty() && size + it.bytes() > opts.max_shard_bytes {
            shards.push(Vec::new());
            size = 0;
        }
        shards.last_mut().expect("one shard").push(it);
        size += it.bytes();
    }
    let n = shards.len();
    let shard_name = |i: usize| {
        if n == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{n:05}.safetensors", i + 1)
        }
    };

    // The output directory: written beside its final place, renamed when complete.
    let out = &opts.out;
    if out.exists() && !out.is_dir() {
        return Err(ConvertError::Unsupported(format!(
            "{} exists and is not a directory; choose another output",
            out.display()
        )));
    }
    let occupied = match std::fs::read_dir(out) {
        Ok(mut d) => d.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(ConvertError::Io {
                path: out.clone(),
                source: e,
            })
        }
    };
    if occupied && !opts.force {
        return Err(ConvertError::Unsupported(format!(
            "{} already exists and is not empty; pass --force to replace it",
            out.display()
        )));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = out
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| {
            ConvertError::Unsupported(format!("{} names no directory", out.display()))
        })?;
    std::fs::create_dir_all(&parent).map_err(|e| ConvertError::Io {
        path: parent.clone(),
        source: e,
    })?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{base}."))
        .suffix(".tmp")
        .tempdir_in(&parent)
        .map_err(|e| ConvertError::Io {
            path: parent.clone(),
            source: e,
        })?;

    progress(Progress::Stage("writing tensors"));
    let total: u64 = items.iter().map(Item::bytes).sum();
    let mut done = 0u64;
    let mut buf = Vec::new();
    let mut index = Map::new();
    let mut k = 0usize;
    for (si, shard) in shards.iter().enumerate() {
        let path = tmp.path().join(shard_name(si));
        let io = |e| ConvertError::Io {
            path: path.clone(),
            source: e,
        };
        let file = std::fs::File::create(&path).map_err(io)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        w.write_all(&st_header(shard)).map_err(io)?;
        for it in shard {
            progress(Progress::Tensor {
                index: k,
                count: items.len(),
                name: &it.name,
                bytes_done: done,
                bytes_total: total,
                resumed: false,
            });
            write_tensor(&f, it, &mut w, &path, &mut buf)?;
            f.release_tensor_pages(it.src);
            index.insert(it.name.clone(), shard_name(si).into());
            done += it.bytes();
            k += 1;
        }
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
    }
    progress(Progress::Stage("writing config and tokenizer"));
    if n > 1 {
        write_json(
            &tmp.path().join("model.safetensors.index.json"),
            &json!({"metadata": {"total_size": total}, "weight_map": index}),
        )?;
    }
    write_json(&tmp.path().join("config.json"), &config)?;
    write_json(&tmp.path().join("tokenizer.json"), &tok)?;
    write_json(&tmp.path().join("tokenizer_config.json"), &tok_cfg)?;
    write_json(&tmp.path().join("generation_config.json"), &gen)?;

    // Into place: an older directory is moved aside first and removed only after.
    let tmp_path = tmp.keep();
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| ConvertError::Io {
            path: to.to_path_buf(),
            source: e,
        })
    };
    let result = if out.exists() {
        let old = parent.join(format!(".{base}.old.{}", std::process::id()));
        rename(out, &old).and_then(|()| {
            rename(&tmp_path, out).inspect_err(|_| {
                let _ = std::fs::rename(&old, out);
            })?;
            let _ = std::fs::remove_dir_all(&old);
            Ok(())
        })
    } else {
        rename(&tmp_path, out)
    };
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp_path);
        return Err(e);
    }
    if let Ok(d) = std::fs::File::open(&parent) {
        let _ = d.sync_all();
    }
    Ok(ExportReport {
        out: out.clone(),
        hf_class: config["architectures"][0]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        gguf_architecture: arch_name,
        tensors: items.len(),
        shards: (0..n).map(shard_name).collect(),
        bytes: total,
        dtype: opts.dtype.torch_name().into(),
        seconds: t0.elapsed().as_secs_f64(),
        peak_rss_bytes: alc_engine::bench::peak_rss_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{apply, Transform};

    #[test]
    fn unpermute_inverts_permute() {
        let mut rng = 12345u64;
        for (heads, hd, cols) in [(2usize, 4usize, 3usize), (3, 8, 1), (1, 2, 5), (4, 64, 2)] {
            let x: Vec<f32> = (0..heads * hd * cols)
                .map(|_| {
                    rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (rng >> 40) as f32
                })
                .collect();
            let y = apply(&Transform::PermuteRope { heads }, x.clone(), cols);
            assert_eq!(unpermute_rope(&y, heads, cols), x, "{heads}×{hd}×{cols}");
        }
    }

    #[test]
    fn dtype_names() {
        assert_eq!(ExportDtype::parse("BF16").unwrap(), ExportDtype::BF16);
        let e = ExportDtype::parse("q4_0").unwrap_err().to_string();
        assert!(e.contains("f16, bf16 or f32"), "{e}");
    }
}
