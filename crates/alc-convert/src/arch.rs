//! Hugging Face architectures → the engine's GGUF architectures: hyperparameter
//! keys, tensor names, and the transforms the engine's layout needs.
//!
//! | HF `architectures` | GGUF arch | transforms |
//! | --- | --- | --- |
//! | LlamaForCausalLM | llama | q/k rows permuted for interleaved rope |
//! | MistralForCausalLM | llama | as llama (llama.cpp does the same) |
//! | Phi3ForCausalLM | llama | fused qkv and gate_up split, q/k permuted |
//! | Qwen2ForCausalLM | qwen2 | none (NeoX rope, q/k/v biases) |
//! | Qwen3ForCausalLM | qwen3 | none (q/k norms) |
//! | Gemma2ForCausalLM | gemma2 | norm weights + 1 |
//! | Gemma3ForCausalLM, Gemma3ForConditionalGeneration (text part) | gemma3 | norm weights + 1 |
//! | Idefics3ForConditionalGeneration, SmolVLMForConditionalGeneration | llama (+ vision tower, [`crate::vlm`]) | as llama |

use crate::config::HfConfig;
use crate::ConvertError;
use alc_format::Value;

/// A supported source architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Mistral,
    Phi3,
    Qwen2,
    Qwen3,
    Gemma2,
    Gemma3,
}

/// (HF class, arch) pairs.
const HF_CLASSES: &[(&str, Arch)] = &[
    ("LlamaForCausalLM", Arch::Llama),
    ("MistralForCausalLM", Arch::Mistral),
    ("Phi3ForCausalLM", Arch::Phi3),
    ("Qwen2ForCausalLM", Arch::Qwen2),
    ("Qwen3ForCausalLM", Arch::Qwen3),
    ("Gemma2ForCausalLM", Arch::Gemma2),
    ("Gemma3ForCausalLM", Arch::Gemma3),
    ("Gemma3ForConditionalGeneration", Arch::Gemma3),
    // Vision-language: the text model is llama; the vision tower is crate::vlm's.
    ("Idefics3ForConditionalGeneration", Arch::Llama),
    ("SmolVLMForConditionalGeneration", Arch::Llama),
];

impl Arch {
    pub fn from_hf(class: &str) -> Result<Arch, ConvertError> {
        HF_CLASSES
            .iter()
            .find(|(c, _)| *c == class)
            .map(|&(_, a)| a)
            .ok_or_else(|| ConvertError::UnsupportedArch {
                got: class.to_string(),
                supported: supported(),
            })
    }

    /// Short name (`llama`, `mistral`, …) used in reports and plain package names.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Mistral => "mistral",
            Arch::Phi3 => "phi3",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3",
        }
    }

    /// `general.architecture` of the package.
    pub fn gguf_arch(self) -> &'static str {
        match self {
            Arch::Llama | Arch::Mistral | Arch::Phi3 => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3",
        }
    }

    fn gemma(self) -> bool {
        matches!(self, Arch::Gemma2 | Arch::Gemma3)
    }

    /// The engine's llama layout wants q/k rows permuted (interleaved rope pairs).
    fn permutes_qk(self) -> bool {
        self.gguf_arch() == "llama"
    }
}

/// Comma-separated supported HF classes.
pub fn supported() -> String {
    HF_CLASSES
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Hyperparameters of the decoder, from config.json.
#[derive(Clone, Debug)]
pub struct Hp {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_vocab: usize,
    pub ctx_train: usize,
    pub norm_eps: f64,
    pub rope_theta: f64,
    pub rope_theta_local: Option<f64>,
    pub rope_scaling: Option<(String, f64)>,
    pub sliding_window: Option<usize>,
    /// Per-layer sliding flags, when the config lists them.
    pub swa_layers: Option<Vec<bool>>,
    /// q·k scale when it is not 1/sqrt(head_dim) (gemma's query_pre_attn_scalar).
    pub attn_scale: Option<f64>,
    pub attn_softcap: Option<f64>,
    pub final_softcap: Option<f64>,
}

impl Hp {
    pub fn read(cfg: &HfConfig) -> Result<Hp, ConvertError> {
        let arch = Arch::from_hf(&cfg.architecture)?;
        let err = |key: &str, why: String| ConvertError::Config {
            path: cfg.path.clone(),
            key: key.into(),
            why,
        };
        let n_layer = cfg.req_pos("num_hidden_layers")?;
        let n_embd = cfg.req_pos("hidden_size")?;
        let n_ff = cfg.req_pos("intermediate_size")?;
        let n_head = cfg.req_pos("num_attention_heads")?;
        let n_kv_head = match cfg.opt_u64("num_key_value_heads")? {
            Some(_) => cfg.req_pos("num_key_value_heads")?,
            None => n_head,
        };
        if n_head % n_kv_head != 0 {
            return Err(err(
                "num_key_value_heads",
                format!("{n_kv_head} does not divide num_attention_heads {n_head}"),
            ));
        }
        let head_dim = match cfg.opt_u64("head_dim")? {
            Some(_) => cfg.req_pos("head_dim")?,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => {
                return Err(err(
                    "hidden_size",
                    format!("{n_embd} is not a multiple of num_attention_heads {n_head} and head_dim is not given"),
                ))
            }
        };
        if head_dim % 2 != 0 {
            return Err(err("head_dim", format!("{head_dim} must be even for rope")));
        }
        let n_vocab = cfg.req_pos("vocab_size")?;
        let ctx_train = match cfg.opt_u64("max_position_embeddings")? {
            Some(_) => cfg.req_pos("max_position_embeddings")?,
            None => 2048,
        };
        let norm_eps = cfg
            .opt_f64("rms_norm_eps")?
            .or(cfg.opt_f64("layer_norm_epsilon")?)
            .unwrap_or(1e-6);
        if !(norm_eps.is_finite() && norm_eps > 0.0 && norm_eps < 1.0) {
            return Err(err(
                "rms_norm_eps",
                format!("{norm_eps} must be a small positive number (such as 1e-6)"),
            ));
        }
        let act = cfg
            .opt_str("hidden_activation")?
            .or(cfg.opt_str("hidden_act")?)
            .unwrap_or(if arch.gemma() {
                "gelu_pytorch_tanh"
            } else {
                "silu"
            });
        let want = if arch.gemma() {
            "gelu_pytorch_tanh"
        } else {
            "silu"
        };
        if act != want {
            return Err(err(
                "hidden_act",
                format!(
                    "'{act}' is not supported for {} (expected {want})",
                    arch.name()
                ),
            ));
        }
        if cfg.opt_bool("mlp_bias")? == Some(true) {
            return Err(err("mlp_bias", "MLP biases are not supported".into()));
        }
        if let Some(p) = cfg.opt_f64("partial_rotary_factor")? {
            if p != 1.0 {
                return Err(err(
                    "partial_rotary_factor",
                    format!("{p}: partial rotary embeddings are not supported"),
                ));
            }
        }
        let rope_theta = cfg.rope_theta(10_000.0)?;
        let rope_scaling = cfg.rope_scaling()?;
        let mut sliding_window = cfg
            .opt_u64("sliding_window")?
            .filter(|&w| w > 0)
            .map(|w| w as usize);
        let mut swa_layers = cfg.layer_types(n_layer)?;
        let mut rope_theta_local = None;
        let mut attn_scale = None;
        match arch {
            Arch::Gemma2 | Arch::Gemma3 => {
                let w = sliding_window.ok_or_else(|| {
                    err("sliding_window", "missing (gemma models need it)".into())
                })?;
                if swa_layers.is_none() {
                    // The published pattern: gemma2 alternates, gemma3 has five local
                    // layers per global one.
                    let period = if arch == Arch::Gemma2 { 2 } else { 6 };
                    swa_layers = Some((0..n_layer).map(|i| i % period < period - 1).collect());
                }
                sliding_window = Some(w);
                if arch == Arch::Gemma3 {
                    rope_theta_local = Some(cfg.rope_theta_local(10_000.0)?);
                }
                if let Some(q) = cfg.opt_f64("query_pre_attn_scalar")? {
                    if q <= 0.0 {
                        return Err(err(
                            "query_pre_attn_scalar",
                            format!("{q} must be positive"),
                        ));
                    }
                    if q != head_dim as f64 {
                        attn_scale = Some(1.0 / q.sqrt());
                    }
                }
            }
            _ => {
                // Mistral-style sliding windows that the test lengths never reach are
                // common in configs; the engine runs full attention, which is exact
                // while the context stays inside the window.
                let uses = cfg.opt_bool("use_sliding_window")?.unwrap_or(true);
                if let (Some(w), true) = (sliding_window, uses) {
                    if w < ctx_train {
                        return Err(err(
                            "sliding_window",
                            format!(
                                "{w} < max_position_embeddings {ctx_train}: sliding-window \
                                 attention is only supported for gemma2/gemma3"
                            ),
                        ));
                    }
                }
                sliding_window = None;
                swa_layers = None;
            }
        }
        let attn_softcap = cfg.opt_f64("attn_logit_softcapping")?;
        let final_softcap = cfg.opt_f64("final_logit_softcapping")?;
        for (key, v) in [
            ("attn_logit_softcapping", attn_softcap),
            ("final_logit_softcapping", final_softcap),
        ] {
            if let Some(c) = v.filter(|c| !(c.is_finite() && *c > 0.0)) {
                return Err(err(
                    key,
                    format!("{c} must be a positive number (or null for no soft-capping)"),
                ));
            }
        }
        if !arch.gemma() && (attn_softcap.is_some() || final_softcap.is_some()) {
            return Err(err(
                "final_logit_softcapping",
                format!("logit soft-capping is not supported for {}", arch.name()),
            ));
        }
        Ok(Hp {
            arch,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_kv_head,
            head_dim,
            n_vocab,
            ctx_train,
            norm_eps,
            rope_theta,
            rope_theta_local,
            rope_scaling,
            sliding_window,
            swa_layers,
            attn_scale,
            attn_softcap: if arch == Arch::Gemma2 {
                attn_softcap
            } else {
                None
            },
            final_softcap: if arch == Arch::Gemma2 {
                final_softcap
            } else {
                None
            },
        })
    }

    /// The `{arch}.*` hyperparameter keys (llama.cpp's names; `attention.scale`,
    /// `rope.freq_base_swa` and `attention.sliding_window_pattern` are read by alc).
    pub fn metadata(&self, ctx: usize) -> Vec<(String, Value)> {
        let a = self.arch.gguf_arch();
        let k = |s: &str| format!("{a}.{s}");
        let u = |v: usize| Value::U32(v as u32);
        let mut m = vec![
            (k("context_length"), u(ctx)),
            (k("embedding_length"), u(self.n_embd)),
            (k("block_count"), u(self.n_layer)),
            (k("feed_forward_length"), u(self.n_ff)),
            (k("attention.head_count"), u(self.n_head)),
            (k("attention.head_count_kv"), u(self.n_kv_head)),
            (k("attention.key_length"), u(self.head_dim)),
            (k("attention.value_length"), u(self.head_dim)),
            (k("rope.dimension_count"), u(self.head_dim)),
            (k("rope.freq_base"), Value::F32(self.rope_theta as f32)),
            (
                k("attention.layer_norm_rms_epsilon"),
                Value::F32(self.norm_eps as f32),
            ),
            (k("vocab_size"), u(self.n_vocab)),
        ];
        if let Some((ty, f)) = &self.rope_scaling {
            m.push((k("rope.scaling.type"), Value::String(ty.clone())));
            m.push((k("rope.scaling.factor"), Value::F32(*f as f32)));
        }
        if let Some(w) = self.sliding_window {
            m.push((k("attention.sliding_window"), u(w)));
        }
        if let Some(l) = &self.swa_layers {
            m.push((
                k("attention.sliding_window_pattern"),
                Value::Array(l.iter().map(|&b| Value::Bool(b)).collect()),
            ));
        }
        if let Some(b) = self.rope_theta_local {
            m.push((k("rope.freq_base_swa"), Value::F32(b as f32)));
        }
        if let Some(s) = self.attn_scale {
            m.push((k("attention.scale"), Value::F32(s as f32)));
        }
        if let Some(c) = self.attn_softcap {
            m.push((k("attn_logit_softcapping"), Value::F32(c as f32)));
        }
        if let Some(c) = self.final_softcap {
            m.push((k("final_logit_softcapping"), Value::F32(c as f32)));
        }
        m
    }
}

/// How a source tensor becomes a package tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    None,
    /// Reorder the rows of each of `heads` heads so rope pairs are adjacent
    /// (row h·hd + s·hd/2 + j → h·hd + 2j + s).
    PermuteRope {
        heads: usize,
    },
    /// Add 1 to every element (gemma's `(1 + w)` RMS norms).
    AddOne,
    /// Rows `start..start + len` of a fused matrix, then the inner transform.
    Rows {
        start: usize,
        len: usize,
        then: Box<Transform>,
    },
}

/// One package tensor: where it comes from and its expected source shape
/// ([rows, cols] in PyTorch order; [n] for vectors).
#[derive(Clone, Debug)]
pub struct TensorPlan {
    pub name: String,
    pub source: String,
    /// The whole source tensor's expected shape.
    pub source_shape: Vec<usize>,
    pub transform: Transform,
    /// Shape after the transform, PyTorch order.
    pub shape: Vec<usize>,
}

impl TensorPlan {
    /// Elements of the package tensor.
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
    /// Matrix (2-D) rather than vector.
    pub fn is_matrix(&self) -> bool {
        self.shape.len() == 2
    }
}

/// Strip the multimodal wrappers' prefixes from a tensor name; `None` for tensors of
/// other towers (vision encoder, projector), which a text package leaves out.
pub fn text_name(name: &str) -> Option<String> {
    for p in [
        "model.language_model.",
        "language_model.model.",
        "model.text_model.",
    ] {
        if let Some(rest) = name.strip_prefix(p) {
            return Some(format!("model.{rest}"));
        }
    }
    if let Some(rest) = name.strip_prefix("language_model.") {
        return Some(rest.to_string());
    }
    for p in [
        "vision_tower.",
        "model.vision_tower.",
        "multi_modal_projector.",
        "model.multi_modal_projector.",
        "model.vision_model.",
        "model.connector.",
    ] {
        if name.starts_with(p) {
            return None;
        }
    }
    Some(name.to_string())
}

/// Map one (text-model) source tensor name to its package tensors. `Ok(None)` for
/// buffers that carry no weights (`rotary_emb.inv_freq`); an error for tensors the
/// architecture does not have.
pub fn map_tensor(hp: &Hp, name: &str) -> Result<Option<Vec<TensorPlan>>, ConvertError> {
    let (d, ff, hd) = (hp.n_embd, hp.n_ff, hp.head_dim);
    let (nq, nkv) = (hp.n_head * hd, hp.n_kv_head * hd);
    let gemma = hp.arch.gemma();
    let norm = |src: &str, dst: String, n: usize| TensorPlan {
        name: dst,
        source: src.to_string(),
        source_shape: vec![n],
        transform: if gemma {
            Transform::AddOne
        } else {
            Transform::None
        },
        shape: vec![n],
    };
    let mat = |src: &str, dst: String, rows: usize, cols: usize, t: Transform| TensorPlan {
        name: dst,
        source: src.to_string(),
        source_shape: vec![rows, cols],
        transform: t,
        shape: vec![rows, cols],
    };
    let unexpected = || ConvertError::UnexpectedTensor {
        tensor: name.to_string(),
        arch: hp.arch.name(),
    };
    if name.ends_with("rotary_emb.inv_freq") {
        return Ok(None);
    }
    let one = |p: TensorPlan| Ok(Some(vec![p]));
    match name {
        "model.embed_tokens.weight" => {
            return one(mat(
                name,
                "token_embd.weight".into(),
                hp.n_vocab,
                d,
                Transform::None,
            ))
        }
        "lm_head.weight" => {
            return one(mat(
                name,
                "output.weight".into(),
                hp.n_vocab,
                d,
                Transform::None,
            ))
        }
        "model.norm.weight" => return one(norm(name, "output_norm.weight".into(), d)),
        _ => {}
    }
    let rest = name.strip_prefix("model.layers.").ok_or_else(unexpected)?;
    let (idx, what) = rest.split_once('.').ok_or_else(unexpected)?;
    let i: usize = idx.parse().map_err(|_| unexpected())?;
    if i >= hp.n_layer {
        return Err(ConvertError::ShapeMismatch {
            tensor: name.to_string(),
            expected: format!("a layer index below num_hidden_layers {}", hp.n_layer),
            got: format!("layer {i}"),
        });
    }
    let b = |s: &str| format!("blk.{i}.{s}");
    let perm = |heads: usize| {
        if hp.arch.permutes_qk() {
            Transform::PermuteRope { heads }
        } else {
            Transform::None
        }
    };
    let vec_of = |dst: String, n: usize, t: Transform| TensorPlan {
        name: dst,
        source: name.to_string(),
        source_shape: vec![n],
        transform: t,
        shape: vec![n],
    };
    let plan = match what {
        "input_layernorm.weight" => norm(name, b("attn_norm.weight"), d),
        "post_attention_layernorm.weight" if gemma => {
            norm(name, b("post_attention_norm.weight"), d)
        }
        "post_attention_layernorm.weight" => norm(name, b("ffn_norm.weight"), d),
        "pre_feedforward_layernorm.weight" if gemma => norm(name, b("ffn_norm.weight"), d),
        "post_feedforward_layernorm.weight" if gemma => norm(name, b("post_ffw_norm.weight"), d),
        "self_attn.q_norm.weight" if matches!(hp.arch, Arch::Qwen3 | Arch::Gemma3) => {
            norm(name, b("attn_q_norm.weight"), hd)
        }
        "self_attn.k_norm.weight" if matches!(hp.arch, Arch::Qwen3 | Arch::Gemma3) => {
            norm(name, b("attn_k_norm.weight"), hd)
        }
        "self_attn.q_proj.weight" => mat(name, b("attn_q.weight"), nq, d, perm(hp.n_head)),
        "self_attn.k_proj.weight" => mat(name, b("attn_k.weight"), nkv, d, perm(hp.n_kv_head)),
        "self_attn.v_proj.weight" => mat(name, b("attn_v.weight"), nkv, d, Transform::None),
        "self_attn.o_proj.weight" => mat(name, b("attn_output.weight"), d, nq, Transform::None),
        "self_attn.q_proj.bias" => vec_of(b("attn_q.bias"), nq, perm(hp.n_head)),
        "self_attn.k_proj.bias" => vec_of(b("attn_k.bias"), nkv, perm(hp.n_kv_head)),
        "self_attn.v_proj.bias" => vec_of(b("attn_v.bias"), nkv, Transform::None),
        "mlp.gate_proj.weight" => mat(name, b("ffn_gate.weight"), ff, d, Transform::None),
        "mlp.up_proj.weight" => mat(name, b("ffn_up.weight"), ff, d, Transform::None),
        "mlp.down_proj.weight" => mat(name, b("ffn_down.weight"), d, ff, Transform::None),
        "self_attn.qkv_proj.weight" if hp.arch == Arch::Phi3 => {
            let part = |dst: &str, start: usize, len: usize, then: Transform| TensorPlan {
                name: b(dst),
                source: name.to_string(),
                source_shape: vec![nq + 2 * nkv, d],
                transform: Transform::Rows {
                    start,
                    len,
                    then: Box::new(then),
                },
                shape: vec![len, d],
            };
            return Ok(Some(vec![
                part("attn_q.weight", 0, nq, perm(hp.n_head)),
                part("attn_k.weight", nq, nkv, perm(hp.n_kv_head)),
                part("attn_v.weight", nq + nkv, nkv, Transform::None),
            ]));
        }
        "mlp.gate_up_proj.weight" if hp.arch == Arch::Phi3 => {
            let part = |dst: &str, start: usize| TensorPlan {
                name: b(dst),
                source: name.to_string(),
                source_shape: vec![2 * ff, d],
                transform: Transform::Rows {
                    start,
                    len: ff,
                    then: Box::new(Transform::None),
                },
                shape: vec![ff, d],
            };
            return Ok(Some(vec![
                part("ffn_gate.weight", 0),
                part("ffn_up.weight", ff),
            ]));
        }
        _ => return Err(unexpected()),
    };
    Ok(Some(vec![plan]))
}

/// Apply a transform to a source tensor's f32 values (`cols` = row length; 1 for
/// vectors). Returns the package tensor's values.
pub fn apply(t: &Transform, x: Vec<f32>, cols: usize) -> Vec<f32> {
    match t {
        Transform::None => x,
        Transform::AddOne => x.into_iter().map(|v| v + 1.0).collect(),
        Transform::PermuteRope { heads } => {
            let rows = x.len() / cols;
            let hd = rows / heads;
            let half = hd / 2;
            let mut out = vec![0f32; x.len()];
            for h in 0..*heads {
                for s in 0..2 {
                    for j in 0..half {
                        let src = h * hd + s * half + j;
                        let dst = h * hd + 2 * j + s;
                        out[dst * cols..(dst + 1) * cols]
                            .copy_from_slice(&x[src * cols..(src + 1) * cols]);
                    }
                }
            }
            out
        }
        Transform::Rows { start, len, then } => {
            let part = x[start * cols..(start + len) * cols].to_vec();
            apply(then, part, cols)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_interleaves_halves_per_head() {
        // 2 heads of 4 rows, 1 column: rows [a0 a1 b0 b1 | c0 c1 d0 d1] where
        // (a, b) are the two rope halves → [a0 b0 a1 b1 | c0 d0 c1 d1].
        let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let y = apply(&Transform::PermuteRope { heads: 2 }, x, 1);
        assert_eq!(y, vec![0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
    }

    #[test]
    fn fused_rows_split() {
        let x: Vec<f32> = (0..12).map(|v| v as f32).collect(); // 6 rows × 2
        let t = Transform::Rows {
            start: 2,
            len: 3,
            then: Box::new(Transform::AddOne),
        };
        assert_eq!(apply(&t, x, 2), vec![5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
    }

    #[test]
    fn multimodal_prefixes() {
        assert_eq!(
            text_name("model.language_model.layers.0.mlp.up_proj.weight").as_deref(),
            Some("model.layers.0.mlp.up_proj.weight")
        );
        assert_eq!(
            text_name("language_model.model.norm.weight").as_deref(),
            Some("model.norm.weight")
        );
        assert_eq!(
            text_name("language_model.lm_head.weight").as_deref(),
            Some("lm_head.weight")
        );
        assert_eq!(text_name("model.vision_tower.x.weight"), None);
    }

    /// NaN-producing values are refused at compile time, naming the key.
    #[test]
    fn absurd_eps_and_softcaps_are_refused() {
        let path = alc_testdata::workspace().join("tests/fixtures/hf/gemma2/config.json");
        let base: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for (key, v) in [
            ("rms_norm_eps", serde_json::json!(-1e-6)),
            ("rms_norm_eps", serde_json::json!(0.0)),
            ("final_logit_softcapping", serde_json::json!(0.0)),
            ("attn_logit_softcapping", serde_json::json!(-50.0)),
        ] {
            let mut c = base.clone();
            c[key] = v.clone();
            let cfg = HfConfig::from_json(&path, c.to_string().as_bytes()).unwrap();
            let e = Hp::read(&cfg).unwrap_err().to_string();
            assert!(e.contains(key), "{key}={v}: {e}");
        }
        let cfg = HfConfig::from_json(&path, base.to_string().as_bytes()).unwrap();
        assert!(Hp::read(&cfg).is_ok());
    }
}
