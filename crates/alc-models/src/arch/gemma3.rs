//! gemma3 (Gemma 3 text): GELU gate, q/k RMS norm, post-attention and post-FFN norms,
//! embeddings scaled by sqrt(n_embd), interleaved sliding-window attention: five local
//! layers (window from `gemma3.attention.sliding_window`, rope base 10000) then one
//! global layer (rope base from `gemma3.rope.freq_base`). Norm weights in GGUF already
//! include Gemma's `1 +` offset (the converter adds it).
//! Facts from llama.cpp's gemma3 hparams (swa pattern 6, local rope base 10000,
//! q scale 1/sqrt(key_length) for all but the 27B size).

use crate::{ArchSpec, HParams, ModelError};
use alc_format::GgufFile;
use alc_kernels::RopeStyle;

/// Every `SWA_PERIOD`-th layer is global; the others use the sliding window.
const SWA_PERIOD: usize = 6;
const LOCAL_ROPE_BASE: f32 = 10_000.0;

pub fn spec() -> ArchSpec {
    ArchSpec {
        name: "gemma3",
        hf_names: &["Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"],
        rope_style: RopeStyle::Neox,
        gelu: true,
        qk_norm: true,
        post_norms: true,
        embed_scale: true,
        configure,
    }
}

fn configure(f: &GgufFile, hp: &mut HParams) -> Result<(), ModelError> {
    hp.swa_window = Some(super::sliding_window(f, "gemma3")?);
    hp.swa_layers = (0..hp.n_layer)
        .map(|il| il % SWA_PERIOD < SWA_PERIOD - 1)
        .collect();
    hp.rope_base_swa = LOCAL_ROPE_BASE;
    if hp.n_layer == 62 {
        // 27B: q scaled by 1/sqrt(n_embd / n_head) (gemma_pytorch config).
        hp.attn_scale = 1.0 / ((hp.n_embd / hp.n_head) as f32).sqrt();
    }
    Ok(())
}
