//! alc-models: decoder-only transformer architectures built from a GGUF file.
//!
//! Design note: one file per architecture under `arch/` describes only what differs
//! (hyperparameter quirks, norms, activation, rope style, sliding-window pattern) as an
//! [`ArchSpec`]; the shared pre-norm transformer in [`transformer`] runs all of them on a
//! [`alc_kernels::Backend`]. Adding qwen3, gemma2, mistral or phi3 means one new file and
//! one line in [`ARCHS`]. Weights stay in the memory-mapped file; only norms and biases
//! (a few KB per layer) are copied to f32 at load.

pub mod arch;
pub mod bert;
mod pack;
pub mod plan;
pub mod transformer;
pub mod vision;

use alc_core::DType;
use alc_format::{FormatError, GgufFile, TensorInfo};
use alc_kernels::RopeStyle;
use std::sync::Arc;

pub use bert::{BertModel, BertParams, Pooling};
pub use plan::MemoryPlan;
pub use transformer::{ForwardTimes, KvType, Logits, Model, Scratch, Seg, State};
pub use vision::{VisionModel, VisionParams};

/// Errors raised while building or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{path}: unknown architecture '{arch}'; supported: {supported}")]
    UnknownArch {
        path: String,
        arch: String,
        supported: String,
    },
    #[error("{path}: tensor '{tensor}' is missing; the file is incomplete or not a {arch} model")]
    MissingTensor {
        path: String,
        tensor: String,
        arch: String,
    },
    #[error("{path}: tensor '{tensor}' has shape {got:?}, expected {expected:?}")]
    BadShape {
        path: String,
        tensor: String,
        expected: Vec<u64>,
        got: Vec<u64>,
    },
    #[error("{path}: tensor '{tensor}' has type {dtype}, which the engine does not execute; supported: {supported}. Re-quantize it to one of those, e.g. with llama-quantize (Q4_K_M)")]
    UnsupportedType {
        path: String,
        tensor: String,
        dtype: DType,
        supported: String,
    },
    #[error("{path}: hyperparameter {key} = {value} is invalid: {why}")]
    BadHparam {
        path: String,
        key: String,
        value: String,
        why: String,
    },
    #[error("context of {ctx} tokens is invalid: {why}")]
    BadContext { ctx: usize, why: String },
    #[error("position {pos} + {n} tokens exceeds the context of {ctx} tokens; start a new session or raise --ctx")]
    ContextFull { pos: usize, n: usize, ctx: usize },
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    BadToken { id: u32, vocab: usize },
    #[error("{0}")]
    BadInput(String),
}

/// What an architecture changes in the shared transformer.
#[derive(Clone, Debug)]
pub struct ArchSpec {
    /// `general.architecture` value.
    pub name: &'static str,
    /// Hugging Face `architectures` names that map here (used by the compiler).
    pub hf_names: &'static [&'static str],
    pub rope_style: RopeStyle,
    /// GELU (tanh) gate instead of SiLU.
    pub gelu: bool,
    /// Per-head RMS norm of q and k before rope (gemma3, qwen3).
    pub qk_norm: bool,
    /// RMS norm on the attention and FFN outputs before the residual add (gemma2/3).
    pub post_norms: bool,
    /// Multiply token embeddings by sqrt(n_embd) (gemma).
    pub embed_scale: bool,
    /// Per-architecture hyperparameter fix-ups (sliding-window pattern, scales).
    pub configure: fn(&GgufFile, &mut HParams) -> Result<(), ModelError>,
}

/// The architecture registry.
pub const ARCHS: &[fn() -> ArchSpec] = &[
    arch::llama::spec,
    arch::qwen2::spec,
    arch::qwen3::spec,
    arch::gemma2::spec,
    arch::gemma3::spec,
];

/// Look up an architecture by its GGUF name.
pub fn arch_spec(name: &str) -> Option<ArchSpec> {
    ARCHS.iter().map(|f| f()).find(|s| s.name == name)
}

/// Comma-separated GGUF names of supported architectures.
pub fn supported_archs() -> String {
    ARCHS
        .iter()
        .map(|f| f().name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Hyperparameters read from GGUF metadata (names follow llama.cpp's keys).
#[derive(Clone, Debug, serde::Serialize)]
pub struct HParams {
    pub arch: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_vocab: usize,
    pub ctx_train: usize,
    pub rope_base: f32,
    /// Rope base of sliding-window layers (gemma3: 10000).
    pub rope_base_swa: f32,
    /// Position multiplier for global layers (1 / linear rope scaling factor).
    pub rope_freq_scale: f32,
    pub rot_dim: usize,
    pub norm_eps: f32,
    /// Sliding window size for layers marked in `swa_layers`.
    pub swa_window: Option<usize>,
    pub swa_layers: Vec<bool>,
    /// Scale on q·k (default 1/sqrt(head_dim)).
    pub attn_scale: f32,
    pub attn_softcap: Option<f32>,
    pub final_softcap: Option<f32>,
}

impl HParams {
    fn read(f: &GgufFile, arch: &str) -> Result<Self, ModelError> {
        let k = |s: &str| format!("{arch}.{s}");
        let u = |s: &str| -> Result<usize, ModelError> { Ok(f.req_u64(&k(s))? as usize) };
        let n_layer = u("block_count")?;
        let n_embd = u("embedding_length")?;
        let n_head = u("attention.head_count")?;
        let n_kv_head = f
            .get_u64(&k("attention.head_count_kv"))?
            .map(|v| v as usize)
            .unwrap_or(n_head);
        let n_ff = u("feed_forward_length")?;
        let bad = |key: &str, value: usize, why: &str| ModelError::BadHparam {
            path: f.path().display().to_string(),
            key: k(key),
            value: value.to_string(),
            why: why.into(),
        };
        for (key, v, max) in [
            ("block_count", n_layer, 1024),
            ("embedding_length", n_embd, 1 << 16),
            ("attention.head_count", n_head, 1024),
            ("attention.head_count_kv", n_kv_head, 1024),
            ("feed_forward_length", n_ff, 1 << 18),
        ] {
            if v == 0 || v > max {
                return Err(bad(key, v, &format!("must be in 1..={max}")));
            }
        }
        if n_head % n_kv_head != 0 {
            return Err(bad(
                "attention.head_count_kv",
                n_kv_head,
                "must divide attention.head_count",
            ));
        }
        let head_dim = f
            .get_u64(&k("attention.key_length"))?
            .map(|v| v as usize)
            .unwrap_or(n_embd / n_head);
        if head_dim == 0 || head_dim > 1024 || head_dim % 2 != 0 {
            return Err(bad(
                "attention.key_length",
                head_dim,
                "must be even and in 2..=1024",
            ));
        }
        let rot_dim = f
            .get_u64(&k("rope.dimension_count"))?
            .map(|v| v as usize)
            .unwrap_or(head_dim);
        if rot_dim > head_dim || rot_dim % 2 != 0 || rot_dim > 512 {
            return Err(bad(
                "rope.dimension_count",
                rot_dim,
                "must be even and at most key_length",
            ));
        }
        let n_vocab = match f.get_u64(&k("vocab_size"))? {
            Some(v) => v as usize,
            None => f
                .get_array("tokenizer.ggml.tokens")?
                .map(|a| a.len())
                .or_else(|| {
                    f.tensor("token_embd.weight")
                        .map(|t| t.dims.get(1).copied().unwrap_or(0) as usize)
                })
                .unwrap_or(0),
        };
        let rope_base = f.get_f32(&k("rope.freq_base"))?.unwrap_or(10_000.0);
        let scaling = f
            .get_str(&k("rope.scaling.type"))?
            .unwrap_or("none")
            .to_string();
        let factor = f.get_f32(&k("rope.scaling.factor"))?.unwrap_or(1.0);
        let bad_rope = |key: &str, value: String, why: String| ModelError::BadHparam {
            path: f.path().display().to_string(),
            key: k(key),
            value,
            why,
        };
        let rope_freq_scale = match scaling.as_str() {
            "none" => 1.0,
            "linear" if factor.is_finite() && factor > 0.0 => 1.0 / factor,
            "linear" => {
                return Err(bad_rope(
                    "rope.scaling.factor",
                    factor.to_string(),
                    "must be a positive number".into(),
                ))
            }
            other => {
                return Err(bad_rope(
                    "rope.scaling.type",
                    other.to_string(),
                    "this rope scaling is not implemented (supported: none, linear); \
                     re-convert the model without it"
                        .into(),
                ))
            }
        };
        // Per-dimension rope frequency factors (llama 3.1+ style "rope_freqs") change
        // every rotation; running without them would silently give wrong answers.
        if f.tensor("rope_freqs.weight").is_some() {
            return Err(bad_rope(
                "rope_freqs.weight",
                "present".into(),
                "per-dimension rope frequency factors are not implemented".into(),
            ));
        }
        let norm_eps = f
            .get_f32(&k("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5);
        let ctx_train = f
            .get_u64(&k("context_length"))?
            .map(|v| v as usize)
            .unwrap_or(2048);
        Ok(HParams {
            arch: arch.to_string(),
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_kv_head,
            head_dim,
            n_vocab,
            ctx_train,
            rope_base,
            rope_base_swa: rope_base,
            rope_freq_scale,
            rot_dim,
            norm_eps,
            swa_window: None,
            swa_layers: vec![false; n_layer],
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            attn_softcap: f.get_f32(&k("attn_logit_softcapping"))?,
            final_softcap: f.get_f32(&k("final_logit_softcapping"))?,
        })
    }

    /// KV-cache bytes per token of context if every layer held the whole context
    /// (f16 keys and values, all layers).
    pub fn kv_bytes_per_token(&self) -> usize {
        self.n_layer * 2 * self.n_kv_head * self.head_dim * 2
    }

    /// Cache rows layer `layer` holds for a context of `ctx` tokens run in chunks of
    /// up to `ubatch`: `ctx`, except a sliding-window layer (window W), which keeps
    /// only the keys its next chunk can still see — `W − 1 + max(ubatch, W)` rows,
    /// slid back by at least W positions at a time (see `State`).
    pub fn kv_rows(&self, layer: usize, ctx: usize, ubatch: usize) -> usize {
        match self.swa_window {
            Some(w) if w > 0 && self.swa_layers.get(layer).copied().unwrap_or(false) => {
                let ub = ubatch.clamp(1, ctx.max(1));
                ctx.min((w - 1).saturating_add(ub.max(w)))
            }
            _ => ctx,
        }
    }

    /// Bytes of the whole KV cache at `ctx` with micro-batch `ubatch` (sliding-window
    /// layers count their [`HParams::kv_rows`] only).
    pub fn kv_cache_bytes(&self, ctx: usize, ubatch: usize) -> u64 {
        let row = (2 * self.n_kv_head * self.head_dim * 2) as u64;
        (0..self.n_layer)
            .map(|l| self.kv_rows(l, ctx, ubatch) as u64 * row)
            .sum()
    }
}

/// A tensor of the model checked for presence, shape and executable type.
/// A tensor dequantized to f32 (its type was checked by [`tensor`]).
pub(crate) fn to_f32(f: &GgufFile, t: &TensorInfo) -> Vec<f32> {
    let mut out = vec![0f32; t.n_elements() as usize];
    alc_quant::dequantize(t.dtype, f.tensor_data(t), &mut out)
        .expect("executed type checked by tensor()");
    out
}

/// `x[r] += b` for every row `r` of `b.len()` values.
pub(crate) fn add_bias_rows(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_exact_mut(b.len()) {
        row.iter_mut().zip(b).for_each(|(v, &c)| *v += c);
    }
}

pub(crate) fn tensor<'a>(
    f: &'a GgufFile,
    name: &str,
    arch: &str,
    dims: &[u64],
) -> Result<&'a TensorInfo, ModelError> {
    let t = f.tensor(name).ok_or_else(|| ModelError::MissingTensor {
        path: f.path().display().to_string(),
        tensor: name.into(),
        arch: arch.into(),
    })?;
    if t.dims != dims {
        return Err(ModelError::BadShape {
            path: f.path().display().to_string(),
            tensor: name.into(),
            expected: dims.to_vec(),
            got: t.dims.clone(),
        });
    }
    if !t.dtype.is_executed() {
        return Err(ModelError::UnsupportedType {
            path: f.path().display().to_string(),
            tensor: name.into(),
            dtype: t.dtype,
            supported: alc_core::executed_type_list(),
        });
    }
    Ok(t)
}

/// Open a GGUF file and build its model.
pub fn load(path: impl AsRef<std::path::Path>) -> Result<Model, ModelError> {
    let f = Arc::new(GgufFile::open(path)?);
    Model::from_gguf(f)
}
