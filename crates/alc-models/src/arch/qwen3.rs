//! qwen3 (Qwen3 dense): qwen2's layout without the q/k/v biases, plus a per-head RMS
//! norm of q and k before rope.

use crate::{arch::no_fixups, ArchSpec};
use alc_kernels::RopeStyle;

pub fn spec() -> ArchSpec {
    ArchSpec {
        name: "qwen3",
        hf_names: &["Qwen3ForCausalLM"],
        rope_style: RopeStyle::Neox,
        gelu: false,
        qk_norm: true,
        post_norms: false,
        embed_scale: false,
        configure: no_fixups,
    }
}
