//! Memory plan: what a session of a given context costs.

use crate::{HParams, Model};

/// Bytes needed to run a model at a given context. Weights are mapped; the matrices
/// a backend repacks are copied once and their mapped pages dropped, so they count
/// once either way.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MemoryPlan {
    pub ctx: usize,
    pub ubatch: usize,
    pub weights_bytes: u64,
    pub kv_cache_bytes: u64,
    pub scratch_bytes: u64,
    pub total_bytes: u64,
}

/// Scratch f32 activations of one forward call of `ub` tokens, plus logits of one row.
pub fn scratch_bytes(hp: &HParams, ub: usize) -> u64 {
    let (d, hd) = (hp.n_embd, hp.head_dim);
    let per_tok = 2 * d + 2 * hp.n_head * hd + 2 * hp.n_kv_head * hd + 2 * hp.n_ff;
    ((ub * per_tok + hp.n_vocab) * 4) as u64
}

impl Model {
    pub fn memory_plan(&self, ctx: usize, ubatch: usize) -> MemoryPlan {
        let weights_bytes: u64 = self.file.tensors().iter().map(|t| t.bytes).sum();
        let kv_cache_bytes = self.hp.kv_cache_bytes(ctx, ubatch);
        let scratch_bytes = scratch_bytes(&self.hp, ubatch.min(ctx));
        MemoryPlan {
            ctx,
            ubatch,
            weights_bytes,
            kv_cache_bytes,
            scratch_bytes,
            total_bytes: weights_bytes + kv_cache_bytes + scratch_bytes,
        }
    }
}
