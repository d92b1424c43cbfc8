//! Idefics3 / SmolVLM checkpoints: the vision tower and modality projector of a
//! vision-language package (docs/FORMAT.md Part L). The text decoder goes through the
//! ordinary llama path ([`crate::arch`]); this module reads `vision_config`, the
//! processor files, and plans the `v.*` / `mm.*` tensors.
//!
//! | HF tensor (`model.vision_model.` / `model.connector.`) | package tensor | transform |
//! | --- | --- | --- |
//! | `embeddings.patch_embedding.weight` `[D, 3, p, p]` | `v.patch_embd.weight` `[3·p·p, D]` | reshape (columns in (c, y, x) order) |
//! | `embeddings.position_embedding.weight` `[N, D]` | `v.position_embd.weight` `[D, N]` | none |
//! | `encoder.layers.{i}.layer_norm1/2` | `v.blk.{i}.ln1/ln2` | none |
//! | `encoder.layers.{i}.self_attn.{q,k,v,out}_proj` | `v.blk.{i}.attn_{q,k,v,out}` | none |
//! | `encoder.layers.{i}.mlp.fc1` / `fc2` | `v.blk.{i}.ffn_up` / `ffn_down` | none |
//! | `post_layernorm` | `v.post_ln` | none |
//! | `modality_projection.proj.weight` `[D_text, D·s²]` | `mm.proj.weight` | none |
//!
//! GGUF dims are the PyTorch shape reversed, so a `Linear` weight `[out, in]` is
//! stored row-major with dims `[in, out]`, as every matrix of a package.

use crate::arch::{TensorPlan, Transform};
use crate::config::{fits_f32, HfConfig};
use crate::quant::{self, Override, Reason, Scheme};
use crate::ConvertError;
use alc_core::DType;
use alc_format::Value;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

/// HF classes of the vision-language checkpoints `alc compile` packages whole.
pub const VLM_CLASSES: &[&str] = &[
    "Idefics3ForConditionalGeneration",
    "SmolVLMForConditionalGeneration",
];

/// Name of the vision tower in errors (like an architecture name).
pub const VISION_ARCH: &str = "idefics3 vision";

const VISION_PREFIX: &str = "model.vision_model.";
const CONNECTOR_PREFIX: &str = "model.connector.";

/// Whether `cfg` is an Idefics3 / SmolVLM checkpoint.
pub fn is_vlm(cfg: &HfConfig) -> bool {
    VLM_CLASSES.contains(&cfg.architecture.as_str())
        || matches!(
            cfg.top().get("model_type").and_then(Json::as_str),
            Some("idefics3" | "smolvlm")
        )
}

/// Whether a checkpoint tensor belongs to the vision tower or the projector.
pub fn is_vision_source(name: &str) -> bool {
    name.starts_with(VISION_PREFIX) || name.starts_with(CONNECTOR_PREFIX)
}

/// The vision tower's and projector's hyperparameters and the processor files.
#[derive(Clone, Debug)]
pub struct VisionHp {
    pub image_size: usize,
    pub patch_size: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_ff: usize,
    pub eps: f64,
    pub scale_factor: usize,
    /// Width of the text model (the projector's output).
    pub text_embd: usize,
    pub image_token_id: u32,
    /// Image tokens per tile.
    pub seq_len: usize,
    pub preprocessor_config: String,
    pub processor_config: Option<String>,
    /// The processor files read (hashed into the source digest).
    pub files: Vec<PathBuf>,
}

fn read_text(
    path: &Path,
    what: &'static str,
    required: bool,
) -> Result<Option<String>, ConvertError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConvertError::MissingFile {
            path: path.to_path_buf(),
            what,
        }),
        Err(e) => Err(ConvertError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// The id of `<image>` among tokenizer.json's added tokens.
fn tokenizer_image_id(tokenizer_json: &str) -> Option<u64> {
    let j: Json = serde_json::from_str(tokenizer_json).ok()?;
    j.get("added_tokens")?
        .as_array()?
        .iter()
        .find(|t| t.get("content").and_then(Json::as_str) == Some("<image>"))?
        .get("id")?
        .as_u64()
}

impl VisionHp {
    /// Read `vision_config`, `scale_factor`, `image_token_id` from `cfg` and the
    /// processor files of `dir`, and check that they fit together.
    pub fn read(
        cfg: &HfConfig,
        dir: &Path,
        tokenizer_json: &str,
    ) -> Result<VisionHp, ConvertError> {
        let err = |key: &str, why: String| ConvertError::Config {
            path: cfg.path.clone(),
            key: key.into(),
            why,
        };
        let top = cfg.top();
        if let Some(t) = top.get("text_config").and_then(|t| t.get("model_type")) {
            if t.as_str() != Some("llama") {
                return Err(err(
                    "text_config.model_type",
                    format!(
                        "{t}: only llama text models are supported in {} checkpoints",
                        cfg.architecture
                    ),
                ));
            }
        }
        let vc = top
            .get("vision_config")
            .filter(|v| v.is_object())
            .ok_or_else(|| err("vision_config", "missing or not an object".into()))?;
        let pos = |key: &str, max: u64| -> Result<usize, ConvertError> {
            let k = format!("vision_config.{key}");
            let v = vc
                .get(key)
                .filter(|v| !v.is_null())
                .ok_or_else(|| err(&k, "missing".into()))?;
            match v.as_u64() {
                Some(x) if x >= 1 && x <= max => Ok(x as usize),
                _ => Err(err(&k, format!("{v} is not an integer in 1..={max}"))),
            }
        };
        let image_size = pos("image_size", 4096)?;
        let patch_size = pos("patch_size", 256)?;
        let n_embd = pos("hidden_size", 1 << 14)?;
        let n_layer = pos("num_hidden_layers", 256)?;
        let n_head = pos("num_attention_heads", 256)?;
        let n_ff = pos("intermediate_size", 1 << 16)?;
        let eps = match vc.get("layer_norm_eps").filter(|v| !v.is_null()) {
            None => 1e-6,
            Some(v) => v
                .as_f64()
                .filter(|&x| fits_f32(x) && x > 0.0 && x < 1.0)
                .ok_or_else(|| {
                    err(
                        "vision_config.layer_norm_eps",
                        format!("{v} is not a small positive number"),
                    )
                })?,
        };
        let act = vc
            .get("hidden_act")
            .and_then(Json::as_str)
            .unwrap_or("gelu_pytorch_tanh");
        if act != "gelu_pytorch_tanh" {
            return Err(err(
                "vision_config.hidden_act",
                format!("'{act}' is not supported (supported: gelu_pytorch_tanh)"),
            ));
        }
        if n_embd % n_head != 0 {
            return Err(err(
                "vision_config.num_attention_heads",
                format!("{n_head} does not divide vision_config.hidden_size {n_embd}"),
            ));
        }
        if image_size % patch_size != 0 {
            return Err(err(
                "vision_config.patch_size",
                format!("{patch_size} does not divide vision_config.image_size {image_size}"),
            ));
        }
        let grid = image_size / patch_size;
        let scale_factor = match top.get("scale_factor").filter(|v| !v.is_null()) {
            None => 2,
            Some(v) => match v.as_u64() {
                Some(x) if (1..=64).contains(&x) => x as usize,
                _ => {
                    return Err(err(
                        "scale_factor",
                        format!("{v} is not an integer in 1..=64"),
                    ))
                }
            },
        };
        if grid % scale_factor != 0 {
            return Err(err(
                "scale_factor",
                format!(
                    "{scale_factor} does not divide the {grid}x{grid} patch grid (vision_config.image_size {image_size} / patch_size {patch_size})"
                ),
            ));
        }
        let seq_len = grid * grid / (scale_factor * scale_factor);
        let text_embd = cfg.req_pos("hidden_size")?;
        let n_vocab = cfg.req_pos("vocab_size")?;
        let tok_id = tokenizer_image_id(tokenizer_json);
        let image_token_id = match top.get("image_token_id").filter(|v| !v.is_null()) {
            Some(v) => v
                .as_u64()
                .ok_or_else(|| err("image_token_id", format!("{v} is not a token id")))?,
            None => tok_id.ok_or_else(|| {
                err(
                    "image_token_id",
                    "missing, and tokenizer.json has no <image> token".into(),
                )
            })?,
        };
        if image_token_id >= n_vocab as u64 {
            return Err(err(
                "image_token_id",
                format!("{image_token_id} is not below vocab_size {n_vocab}"),
            ));
        }
        if let Some(t) = tok_id.filter(|&t| t != image_token_id) {
            return Err(err(
                "image_token_id",
                format!("{image_token_id}, but tokenizer.json's <image> is {t}"),
            ));
        }
        let pre_path = dir.join("preprocessor_config.json");
        let preprocessor_config =
            read_text(&pre_path, "the image preprocessor configuration", true)?.expect("required");
        let proc_path = dir.join("processor_config.json");
        let processor_config = read_text(&proc_path, "", false)?;
        for (path, text) in [
            (&pre_path, Some(&preprocessor_config)),
            (&proc_path, processor_config.as_ref()),
        ] {
            let Some(text) = text else { continue };
            let j: Json = serde_json::from_str(text).map_err(|e| ConvertError::Json {
                path: path.clone(),
                why: e.to_string(),
            })?;
            if let Some(v) = j.get("image_seq_len").filter(|v| !v.is_null()) {
                if v.as_u64() != Some(seq_len as u64) {
                    return Err(ConvertError::Config {
                        path: path.clone(),
                        key: "image_seq_len".into(),
                        why: format!(
                            "{v}, but the vision tower gives {seq_len} tokens per tile ((image_size / patch_size)² / scale_factor²)"
                        ),
                    });
                }
            }
        }
        let mut files = vec![pre_path];
        if processor_config.is_some() {
            files.push(proc_path);
        }
        Ok(VisionHp {
            image_size,
            patch_size,
            n_embd,
            n_layer,
            n_head,
            n_ff,
            eps,
            scale_factor,
            text_embd,
            image_token_id: image_token_id as u32,
            seq_len,
            preprocessor_config,
            processor_config,
            files,
        })
    }

    /// Patches per tile.
    pub fn n_patches(&self) -> usize {
        let g = self.image_size / self.patch_size;
        g * g
    }

    /// The Part L keys.
    pub fn metadata(&self) -> Vec<(String, Value)> {
        let u = |v: usize| Value::U32(v as u32);
        let s = |v: &str| Value::String(v.to_string());
        let mut m = vec![
            ("alc.vlm.kind".to_string(), s("idefics3")),
            ("alc.vision.image_size".into(), u(self.image_size)),
            ("alc.vision.patch_size".into(), u(self.patch_size)),
            ("alc.vision.embedding_length".into(), u(self.n_embd)),
            ("alc.vision.block_count".into(), u(self.n_layer)),
            ("alc.vision.head_count".into(), u(self.n_head)),
            ("alc.vision.feed_forward_length".into(), u(self.n_ff)),
            (
                "alc.vision.layer_norm_epsilon".into(),
                Value::F32(self.eps as f32),
            ),
            ("alc.vision.hidden_act".into(), s("gelu_pytorch_tanh")),
            ("alc.projector.scale_factor".into(), u(self.scale_factor)),
            ("alc.image.token_id".into(), Value::U32(self.image_token_id)),
            ("alc.image.seq_len".into(), u(self.seq_len)),
            (
                "alc.image.preprocessor_config".into(),
                s(&self.preprocessor_config),
            ),
        ];
        if let Some(p) = &self.processor_config {
            m.push(("alc.image.processor_config".into(), s(p)));
        }
        m
    }

    /// Every vision and projector tensor the checkpoint must have (shapes in
    /// PyTorch order; `shape` is the package tensor's, reversed into GGUF dims).
    pub fn plans(&self) -> Vec<TensorPlan> {
        let (d, ff, p) = (self.n_embd, self.n_ff, self.patch_size);
        let same = |src: String, dst: String, shape: Vec<usize>| TensorPlan {
            name: dst,
            source: src,
            source_shape: shape.clone(),
            transform: Transform::None,
            shape,
        };
        let v = |s: &str| format!("{VISION_PREFIX}{s}");
        let mut out = vec![
            // The conv weight's elements in their stored (out, c, y, x) order are the
            // rows of the [D, 3·p·p] matrix: a reshape, no data movement.
            TensorPlan {
                name: "v.patch_embd.weight".into(),
                source: v("embeddings.patch_embedding.weight"),
                source_shape: vec![d, 3, p, p],
                transform: Transform::None,
                shape: vec![d, 3 * p * p],
            },
            same(
                v("embeddings.patch_embedding.bias"),
                "v.patch_embd.bias".into(),
                vec![d],
            ),
            same(
                v("embeddings.position_embedding.weight"),
                "v.position_embd.weight".into(),
                vec![self.n_patches(), d],
            ),
        ];
        for i in 0..self.n_layer {
            let src = |s: &str| v(&format!("encoder.layers.{i}.{s}"));
            let dst = |s: &str| format!("v.blk.{i}.{s}");
            for (hf, ours) in [("layer_norm1", "ln1"), ("layer_norm2", "ln2")] {
                for wb in ["weight", "bias"] {
                    out.push(same(
                        src(&format!("{hf}.{wb}")),
                        dst(&format!("{ours}.{wb}")),
                        vec![d],
                    ));
                }
            }
            for (hf, ours) in [
                ("q_proj", "attn_q"),
                ("k_proj", "attn_k"),
                ("v_proj", "attn_v"),
                ("out_proj", "attn_out"),
            ] {
                out.push(same(
                    src(&format!("self_attn.{hf}.weight")),
                    dst(&format!("{ours}.weight")),
                    vec![d, d],
                ));
                out.push(same(
                    src(&format!("self_attn.{hf}.bias")),
                    dst(&format!("{ours}.bias")),
                    vec![d],
                ));
            }
            out.push(same(
                src("mlp.fc1.weight"),
                dst("ffn_up.weight"),
                vec![ff, d],
            ));
            out.push(same(src("mlp.fc1.bias"), dst("ffn_up.bias"), vec![ff]));
            out.push(same(
                src("mlp.fc2.weight"),
                dst("ffn_down.weight"),
                vec![d, ff],
            ));
            out.push(same(src("mlp.fc2.bias"), dst("ffn_down.bias"), vec![d]));
        }
        for wb in ["weight", "bias"] {
            out.push(same(
                v(&format!("post_layernorm.{wb}")),
                format!("v.post_ln.{wb}"),
                vec![d],
            ));
        }
        let s2 = self.scale_factor * self.scale_factor;
        out.push(same(
            format!("{CONNECTOR_PREFIX}modality_projection.proj.weight"),
            "mm.proj.weight".into(),
            vec![self.text_embd, d * s2],
        ));
        out
    }
}

/// The package type of vision tensor `p`: vectors F32; matrices F32 under `--quant
/// f32`, BF16 under bf16, F16 under f16. Under the quantised schemes the encoder
/// layers' matrices and the projector (`v.blk.*`, `mm.*`) are Q8_0 where their rows
/// are whole blocks of 32 — half the bytes of F16 and faster on the CPU (int8 dot
/// products; BENCHMARKS.md: 1.14 s per 512-px tile against 1.31 s in F16), with the
/// encoder output within 1e-2 relative of f32 on the tiny fixture
/// (crates/alc-convert/tests/vlm.rs) —
/// and the patch and position embeddings stay F16. An override still wins.
pub fn choose(
    scheme: Scheme,
    overrides: &[Override],
    p: &TensorPlan,
) -> Result<(DType, Reason), ConvertError> {
    if !p.is_matrix() {
        return Ok((DType::F32, Reason::Vector));
    }
    let cols = p.shape[1];
    if let Some(o) = quant::find_override(overrides, &p.name, cols)? {
        return Ok((o.dtype, Reason::Override));
    }
    Ok(match scheme {
        Scheme::F32 => (DType::F32, Reason::Scheme),
        Scheme::F16 => (DType::F16, Reason::Scheme),
        Scheme::Bf16 => (DType::BF16, Reason::Scheme),
        _ if (p.name.starts_with("v.blk.") || p.name.starts_with("mm."))
            && cols.is_multiple_of(DType::Q8_0.block_size()) =>
        {
            (DType::Q8_0, Reason::Vision)
        }
        _ => (DType::F16, Reason::Vision),
    })
}
