//! gemma2 (Gemma 2): GELU gate, post-attention and post-FFN norms, embeddings scaled
//! by sqrt(n_embd), attention and final logit soft-capping (`gemma2.*_softcapping`),
//! sliding-window attention on every other layer (layer 0 local) with the window from
//! `gemma2.attention.sliding_window`. Norm weights in GGUF already include Gemma's
//! `1 +` offset. Facts from llama.cpp's gemma2 hparams (swa pattern 2, q scale
//! 1/sqrt(key_length) except the 27B size, 46 layers, which uses n_embd / n_head).

use crate::{ArchSpec, HParams, ModelError};
use alc_format::GgufFile;
use alc_kernels::RopeStyle;

pub fn spec() -> ArchSpec {
    ArchSpec {
        name: "gemma2",
        hf_names: &["Gemma2ForCausalLM"],
        rope_style: RopeStyle::Neox,
        gelu: true,
        qk_norm: false,
        post_norms: true,
        embed_scale: true,
        configure,
    }
}

fn configure(f: &GgufFile, hp: &mut HParams) -> Result<(), ModelError> {
    hp.swa_window = Some(super::sliding_window(f, "gemma2")?);
    hp.swa_layers = (0..hp.n_layer).map(|il| il % 2 == 0).collect();
    if hp.n_layer == 46 {
        hp.attn_scale = 1.0 / ((hp.n_embd / hp.n_head) as f32).sqrt();
    }
    Ok(())
}
