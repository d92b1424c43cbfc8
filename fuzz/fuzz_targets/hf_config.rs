//! Fuzz `config.json` (`HfConfig::from_json`, what `HfConfig::read` runs on the file)
//! and everything `alc compile` derives from it before reading any weight: the
//! architecture and hyperparameters (`Hp::read`), the package's hyperparameter keys
//! (`Hp::metadata`), the tensor plan (`map_tensor` for every tensor name of every
//! architecture, plus multimodal prefixes and bogus names), the quantisation type of
//! each planned tensor under every scheme (`quant::choose`), the transforms
//! (`arch::apply`, on planned tensors small enough to build) and the package name.
//!
//! `Ok` or `Err` are both fine; a panic (overflow included: the build has debug
//! assertions), a huge allocation or a hang is a bug. Absurd sizes must be errors: an
//! accepted config has every dimension within `config::limit`, and no planned tensor
//! has 2^40 elements or more; the metadata values are finite f32s and u32s.

#![no_main]

use alc_convert::arch::{self, Arch, Hp, TensorPlan, Transform};
use alc_convert::config::{self, HfConfig};
use alc_convert::naming::{self, NameScheme};
use alc_convert::quant::{self, SCHEMES};
use alc_format::Value;
use libfuzzer_sys::fuzz_target;

#[path = "common/verbose.rs"]
mod verbose;
use verbose::say;

/// Keys read through every typed accessor whatever the config holds.
const KEYS: &[&str] = &[
    "architectures",
    "num_hidden_layers",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "sliding_window",
    "layer_types",
    "query_pre_attn_scalar",
    "text_config",
    "not_a_key",
];

/// Tensor names below `model.layers.{i}.`.
const LAYER_PARTS: &[&str] = &[
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
    "pre_feedforward_layernorm.weight",
    "post_feedforward_layernorm.weight",
    "self_attn.q_norm.weight",
    "self_attn.k_norm.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.k_proj.bias",
    "self_attn.v_proj.bias",
    "self_attn.qkv_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
    "mlp.gate_up_proj.weight",
    "self_attn.rotary_emb.inv_freq",
    "mlp.experts.0.weight",
    "",
];

const TOP: &[&str] = &[
    "model.embed_tokens.weight",
    "lm_head.weight",
    "model.norm.weight",
    "model.rotary_emb.inv_freq",
    "model.layers",
    "model.layers.x.mlp.up_proj.weight",
    "model.layers.-1.mlp.up_proj.weight",
    "model.layers.18446744073709551616.mlp.up_proj.weight",
    "vision_tower.blocks.0.weight",
];

/// Largest source tensor the target builds to run its transform on.
const APPLY_MAX: usize = 1 << 14;

fn product(dims: &[usize]) -> usize {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .unwrap_or_else(|| panic!("shape {dims:?}: element count overflows"))
}

fn exercise_config(cfg: &HfConfig) {
    for &k in KEYS {
        let _ = cfg.raw(k);
        if let Ok(Some(v)) = cfg.opt_u64(k) {
            assert!(v <= config::limit(k), "{k} = {v}");
        }
        if let Ok(v) = cfg.req_pos(k) {
            assert!(v >= 1 && v as u64 <= config::limit(k), "{k} = {v}");
        }
        if let Ok(Some(x)) = cfg.opt_f64(k) {
            assert!(config::fits_f32(x) && (x as f32).is_finite(), "{k} = {x}");
        }
        let _ = cfg.opt_bool(k);
        let _ = cfg.opt_str(k);
    }
    for b in [cfg.rope_theta(10_000.0), cfg.rope_theta_local(10_000.0)]
        .into_iter()
        .flatten()
    {
        assert!(
            b > 0.0 && (b as f32).is_finite() && b as f32 > 0.0,
            "rope base {b}"
        );
    }
    if let Ok(Some((ty, f))) = cfg.rope_scaling() {
        assert_eq!(ty, "linear");
        assert!(
            f > 0.0 && (f as f32).is_finite() && f as f32 > 0.0,
            "factor {f}"
        );
    }
    for n in [0, 1, 2, 6, 1024] {
        if let Ok(Some(v)) = cfg.layer_types(n) {
            assert_eq!(v.len(), n);
        }
    }
}

fn check_hp(hp: &Hp) {
    for (key, v) in [
        ("num_hidden_layers", hp.n_layer),
        ("hidden_size", hp.n_embd),
        ("intermediate_size", hp.n_ff),
        ("num_attention_heads", hp.n_head),
        ("num_key_value_heads", hp.n_kv_head),
        ("head_dim", hp.head_dim),
        ("vocab_size", hp.n_vocab),
        ("max_position_embeddings", hp.ctx_train),
    ] {
        assert!(v >= 1 && v as u64 <= config::limit(key), "{key} = {v}");
    }
    assert_eq!(hp.n_head % hp.n_kv_head, 0);
    assert_eq!(hp.head_dim % 2, 0);
    if let Some(l) = &hp.swa_layers {
        assert_eq!(l.len(), hp.n_layer);
    }
    let gemma = matches!(hp.arch, Arch::Gemma2 | Arch::Gemma3);
    assert_eq!(hp.sliding_window.is_some(), gemma);
    if let Some(w) = hp.sliding_window {
        assert!(w >= 1 && w as u64 <= u64::from(u32::MAX));
    }
}

fn check_metadata(hp: &Hp, ctx: usize) {
    let m = hp.metadata(ctx);
    let prefix = format!("{}.", hp.arch.gguf_arch());
    let mut keys = std::collections::HashSet::new();
    for (k, v) in &m {
        assert!(keys.insert(k.as_str()), "duplicate key {k}");
        assert!(k.starts_with(&prefix), "{k}");
        match v {
            Value::U32(_) | Value::String(_) => {}
            Value::F32(x) => assert!(x.is_finite(), "{k} = {x}"),
            Value::Array(a) => {
                assert_eq!(a.len(), hp.n_layer, "{k}");
                assert!(a.iter().all(|b| matches!(b, Value::Bool(_))));
            }
            other => panic!("{k}: unexpected {other:?}"),
        }
    }
    let get = |s: &str| {
        m.iter()
            .find(|(k, _)| *k == format!("{prefix}{s}"))
            .map(|(_, v)| v)
    };
    assert_eq!(get("context_length"), Some(&Value::U32(ctx as u32)));
    assert_eq!(get("block_count"), Some(&Value::U32(hp.n_layer as u32)));
    assert_eq!(get("vocab_size"), Some(&Value::U32(hp.n_vocab as u32)));
}

/// Check one plan; returns its element count.
fn check_plan(hp: &Hp, p: &TensorPlan, tied: bool) -> usize {
    let n = product(&p.shape);
    let src = product(&p.source_shape);
    assert!(
        n < 1 << 40 && src < 1 << 40,
        "{}: {:?} from {:?}",
        p.name,
        p.shape,
        p.source_shape
    );
    assert!(p.shape.iter().chain(&p.source_shape).all(|&d| d >= 1));
    assert_eq!(p.n_elements(), n);
    assert_eq!(p.is_matrix(), p.shape.len() == 2);
    let cols = if p.is_matrix() { p.shape[1] } else { 1 };
    let check_perm = |t: &Transform, rows: usize| {
        if let Transform::PermuteRope { heads } = t {
            assert!(
                *heads >= 1 && rows.is_multiple_of(*heads) && (rows / heads).is_multiple_of(2),
                "{}",
                p.name
            );
        }
    };
    match &p.transform {
        Transform::Rows { start, len, then } => {
            assert!(start + len <= p.source_shape[0], "{}", p.name);
            assert_eq!(p.shape, [*len, p.source_shape[1]]);
            assert!(!matches!(**then, Transform::Rows { .. }));
            check_perm(then, *len);
        }
        t => {
            assert_eq!(p.shape, p.source_shape, "{}", p.name);
            check_perm(t, p.shape[0]);
        }
    }
    for (_, scheme) in SCHEMES {
        let (dt, _) = quant::choose(*scheme, &[], &p.name, p.is_matrix(), cols, hp.n_layer, tied)
            .expect("choose without overrides");
        if p.is_matrix() {
            assert_eq!(
                cols % dt.block_size(),
                0,
                "{}: {dt} for rows of {cols}",
                p.name
            );
            dt.tensor_bytes(&[cols as u64, (n / cols) as u64])
                .expect("tensor bytes");
        }
    }
    if src <= APPLY_MAX {
        let x: Vec<f32> = (0..src).map(|i| i as f32).collect();
        let out = arch::apply(&p.transform, x, cols);
        assert_eq!(out.len(), n, "{}", p.name);
        let (first, inner) = match &p.transform {
            Transform::Rows { start, then, .. } => (start * cols, &**then),
            t => (0, t),
        };
        let mut got: Vec<f32> = out.clone();
        if matches!(inner, Transform::AddOne) {
            got.iter_mut().for_each(|v| *v -= 1.0);
        }
        // A permutation of the rows it was taken from.
        got.sort_by(f32::total_cmp);
        let want: Vec<f32> = (first..first + n).map(|i| i as f32).collect();
        assert_eq!(got, want, "{}", p.name);
    }
    n
}

fn exercise_plans(hp: &Hp) {
    let layers: Vec<usize> = if hp.n_layer <= 4 {
        (0..=hp.n_layer).collect()
    } else {
        vec![0, 1, hp.n_layer / 2, hp.n_layer - 1, hp.n_layer]
    };
    let mut names: Vec<String> = TOP.iter().map(|s| s.to_string()).collect();
    for i in &layers {
        for part in LAYER_PARTS {
            names.push(format!("model.layers.{i}.{part}"));
        }
    }
    let tied = false;
    let mut params = 0u64;
    for name in &names {
        for wrapped in [
            name.clone(),
            format!("model.language_model.{}", name.trim_start_matches("model.")),
            format!("language_model.{name}"),
        ] {
            let Some(text) = arch::text_name(&wrapped) else {
                continue;
            };
            match arch::map_tensor(hp, &text) {
                Ok(None) => assert!(text.ends_with("rotary_emb.inv_freq"), "{text}"),
                Ok(Some(ps)) => {
                    assert!(!ps.is_empty());
                    for p in &ps {
                        let n = check_plan(hp, p, tied);
                        params = params.saturating_add(n as u64);
                    }
                    if let Some(i) = text
                        .strip_prefix("model.layers.")
                        .and_then(|r| r.split('.').next())
                        .and_then(|i| i.parse::<usize>().ok())
                    {
                        assert!(i < hp.n_layer, "{text} accepted");
                    }
                }
                Err(_) => {}
            }
        }
    }
    let _ = naming::size_from_count(params);
    for scheme in [NameScheme::Ava, NameScheme::Plain] {
        let _ = naming::package_name(scheme, hp.arch, "model", params, "q4f16_1", "16");
    }
}

fuzz_target!(|data: &[u8]| {
    let cfg = match HfConfig::from_json("config.json", data) {
        Ok(c) => c,
        Err(e) => return say!("config refused: {e}"),
    };
    exercise_config(&cfg);
    let hp = match Hp::read(&cfg) {
        Ok(hp) => hp,
        Err(e) => return say!("hyperparameters refused: {e}"),
    };
    say!("accepted: {hp:?}");
    assert_eq!(Arch::from_hf(&cfg.architecture).ok(), Some(hp.arch));
    check_hp(&hp);
    check_metadata(&hp, hp.ctx_train);
    check_metadata(&hp, 1);
    exercise_plans(&hp);
});
