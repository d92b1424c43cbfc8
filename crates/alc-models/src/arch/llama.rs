//! llama (Llama 2/3, SmolLM, Mistral-style dense models in GGUF).
//!
//! GGUF stores q/k rows permuted so that rope pairs are adjacent (llama.cpp's
//! converter does this), hence `RopeStyle::Normal`.

use crate::{arch::no_fixups, ArchSpec};
use alc_kernels::RopeStyle;

pub fn spec() -> ArchSpec {
    ArchSpec {
        name: "llama",
        hf_names: &["LlamaForCausalLM"],
        rope_style: RopeStyle::Normal,
        gelu: false,
        qk_norm: false,
        post_norms: false,
        embed_scale: false,
        configure: no_fixups,
    }
}
