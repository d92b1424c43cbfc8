//! qwen2 (Qwen2, Qwen2.5): llama layout plus q/k/v biases (loaded when present) and
//! NeoX-style rope.

use crate::{arch::no_fixups, ArchSpec};
use alc_kernels::RopeStyle;

pub fn spec() -> ArchSpec {
    ArchSpec {
        name: "qwen2",
        hf_names: &["Qwen2ForCausalLM"],
        rope_style: RopeStyle::Neox,
        gelu: false,
        qk_norm: false,
        post_norms: false,
        embed_scale: false,
        configure: no_fixups,
    }
}
