//! One file per architecture: what it changes in the shared transformer.

pub mod gemma2;
pub mod gemma3;
pub mod llama;
pub mod qwen2;
pub mod qwen3;

use crate::{HParams, ModelError};
use alc_format::GgufFile;

/// Configure hook for architectures that need no fix-ups.
pub(crate) fn no_fixups(_: &GgufFile, _: &mut HParams) -> Result<(), ModelError> {
    Ok(())
}

/// The required, positive `{arch}.attention.sliding_window`.
pub(crate) fn sliding_window(f: &GgufFile, arch: &str) -> Result<usize, ModelError> {
    let key = format!("{arch}.attention.sliding_window");
    match f.req_u64(&key)? {
        0 => Err(ModelError::BadHparam {
            path: f.path().display().to_string(),
            key,
            value: "0".into(),
            why: "must be positive".into(),
        }),
        w => Ok(w as usize),
    }
}

/// Keys an alc package may carry that override an architecture's built-in
/// defaults (written by `alc compile` from the checkpoint's config, see
/// docs/FORMAT.md): `{arch}.attention.scale` (q·k scale, e.g. from gemma's
/// query_pre_attn_scalar), `{arch}.attention.sliding_window_pattern` (one bool per
/// layer: sliding or not) and `{arch}.rope.freq_base_swa` (rope base of the sliding
/// layers). Applied after the architecture's `configure`.
pub(crate) fn package_overrides(f: &GgufFile, hp: &mut HParams) -> Result<(), ModelError> {
    let arch = hp.arch.clone();
    let bad = |key: &str, value: String, why: &str| ModelError::BadHparam {
        path: f.path().display().to_string(),
        key: format!("{arch}.{key}"),
        value,
        why: why.into(),
    };
    if let Some(s) = f.get_f32(&format!("{arch}.attention.scale"))? {
        if !(s.is_finite() && s > 0.0) {
            return Err(bad(
                "attention.scale",
                s.to_string(),
                "must be a positive number",
            ));
        }
        hp.attn_scale = s;
    }
    if let Some(b) = f.get_f32(&format!("{arch}.rope.freq_base_swa"))? {
        if !(b.is_finite() && b > 0.0) {
            return Err(bad(
                "rope.freq_base_swa",
                b.to_string(),
                "must be a positive number",
            ));
        }
        hp.rope_base_swa = b;
    }
    let key = format!("{arch}.attention.sliding_window_pattern");
    if let Some(a) = f.get_array(&key)? {
        if a.len() != hp.n_layer {
            return Err(bad(
                "attention.sliding_window_pattern",
                format!("{} entries", a.len()),
                "must have one entry per layer",
            ));
        }
        let flags: Option<Vec<bool>> = a.iter().map(|v| v.as_bool()).collect();
        hp.swa_layers = flags.ok_or_else(|| {
            bad(
                "attention.sliding_window_pattern",
                "non-bool entries".into(),
                "must be an array of bools",
            )
        })?;
        if hp.swa_window.is_none() && hp.swa_layers.iter().any(|&s| s) {
            return Err(bad(
                "attention.sliding_window_pattern",
                "sliding layers".into(),
                "needs attention.sliding_window",
            ));
        }
    }
    Ok(())
}
