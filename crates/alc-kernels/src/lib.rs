//! alc-kernels: the compute seam and the CPU backend.
//!
//! Design note: models call a small op set (matmul against quantized weights, RMS norm,
//! rotary embedding, causal attention over a KV cache, gated activations) through the
//! [`Backend`] trait on plain `f32` activations. [`cpu::CpuBackend`] is the fast path
//! (SIMD dot kernels from alc-quant, a persistent thread pool, scratch buffers reused
//! across calls so that a decode step allocates nothing); [`reference::ReferenceBackend`]
//! is the scalar definition of every op. The conformance kit
//! (`tests/conformance.rs`) runs every op on every backend against the reference with
//! named tolerances; a CUDA or Vulkan backend joins by implementing the trait and being
//! added to that kit's list.

pub mod bandwidth;
pub mod cpu;
#[cfg(target_arch = "x86_64")]
mod decode512;
pub mod encoder;
mod flash;
#[cfg(target_arch = "x86_64")]
mod flash512;
pub mod gemm;
pub mod pool;
pub mod reference;

pub use alc_core::DType;
pub use pool::ThreadPool;

/// How a weight matrix's bytes are arranged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Row-major in its storage type, as in the GGUF tensor.
    Rows,
    /// 8 rows interleaved per block ([`alc_quant::packed`], docs/FORMAT.md "Packed
    /// weights"), built by [`Backend::pack`] of the backend that runs it.
    Packed8,
}

/// A weight matrix of `rows` output features × `cols` input features in its storage
/// type: one GGUF tensor borrowed from the mapped file ([`Layout::Rows`]), or its
/// repacked copy ([`Layout::Packed8`]).
#[derive(Clone, Copy, Debug)]
pub struct Weight<'a> {
    pub dtype: DType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
    pub layout: Layout,
}

impl<'a> Weight<'a> {
    /// A row-major weight (the GGUF layout).
    pub fn row_major(dtype: DType, rows: usize, cols: usize, data: &'a [u8]) -> Self {
        Weight {
            dtype,
            rows,
            cols,
            data,
            layout: Layout::Rows,
        }
    }

    /// The same matrix in its packed layout (`data` from [`Backend::pack`]).
    pub fn with_packed(self, data: &'a [u8]) -> Self {
        Weight {
            data,
            layout: Layout::Packed8,
            ..self
        }
    }
}

/// Rotary embedding pairing convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (x[2i], x[2i+1]): llama-family GGUF (q/k rows are permuted at
    /// conversion time).
    Normal,
    /// Halves (x[i], x[i + d/2]): qwen2, gemma, phi3 (GPT-NeoX style).
    Neox,
}

/// Shape of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    /// Query tokens in this call.
    pub n_tokens: usize,
    /// Position of the first query token (== number of cached tokens before it).
    pub pos0: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// Rows allocated in the KV cache (context length).
    pub ctx: usize,
    /// Scale applied to q·k.
    pub scale: f32,
    /// Sliding window: key position j is visible from query position i iff
    /// i - j < window (llama.cpp's standard SWA). `None` = full causal.
    pub window: Option<usize>,
    /// Logit soft-capping (gemma2): s = cap * tanh(s / cap).
    pub softcap: Option<f32>,
}

/// The op set a compute backend provides. All activation buffers are row-major f32;
/// the KV cache is f16 with layout `[ctx][n_kv_head][head_dim]` per layer.
pub trait Backend: Send + Sync {
    /// Backend name for logs and errors, e.g. "cpu (avx2+fma+f16c, 2 threads)".
    fn name(&self) -> String;
    /// Weight types this backend executes.
    fn supports(&self, dtype: DType) -> bool;
    /// Bytes of `w` in a layout this backend's matmuls run faster on, built once at
    /// load ([`Backend::pack_into`]); `None` keeps the rows as they are.
    fn packed_len(&self, _w: &Weight<'_>) -> Option<usize> {
        None
    }
    /// Writes `w` in this backend's packed layout into `out`, whose length is what
    /// [`Backend::packed_len`] returned (called only when it returned `Some`). The
    /// result goes back in as `w.with_packed(out)` and is meant for this backend
    /// (every backend must still accept it: the reference unpacks it).
    fn pack_into(&self, _w: &Weight<'_>, _out: &mut [u8]) {}
    /// [`Backend::pack_into`] into a fresh buffer.
    fn pack(&self, w: &Weight<'_>) -> Option<Vec<u8>> {
        let mut out = vec![0u8; self.packed_len(w)?];
        self.pack_into(w, &mut out);
        Some(out)
    }
    /// `out[t][r] = Σ_c w[r][c] · x[t][c]` for `t < n`.
    fn matmul(&self, w: &Weight<'_>, x: &[f32], n: usize, out: &mut [f32]);
    /// Several matmuls over the same input (q/k/v, gate/up): `outs[i] = ws[i] · x`,
    /// each as [`Backend::matmul`]. A backend may prepare the input once and run the
    /// weights in one dispatch; the results must equal separate `matmul` calls.
    fn matmul_many(&self, ws: &[Weight<'_>], x: &[f32], n: usize, outs: &mut [&mut [f32]]) {
        assert_eq!(ws.len(), outs.len(), "matmul_many: one output per weight");
        for (w, o) in ws.iter().zip(outs.iter_mut()) {
            self.matmul(w, x, n, o);
        }
    }
    /// `out[t][r] += Σ_c w[r][c] · x[t][c]`: a matmul added into a residual stream.
    /// The result must equal [`Backend::matmul`] followed by an elementwise add;
    /// a backend may add each result as it leaves the kernel (no second pass over
    /// `out`). The default allocates the product.
    fn matmul_add(&self, w: &Weight<'_>, x: &[f32], n: usize, out: &mut [f32]) {
        let mut t = vec![0f32; n * w.rows];
        self.matmul(w, x, n, &mut t);
        out[..n * w.rows]
            .iter_mut()
            .zip(&t)
            .for_each(|(o, v)| *o += v);
    }
    /// A gated feed-forward's first half: `out = act(gate · x) * (up · x)` with the
    /// activation of [`Backend::gated_act`]. `up_out` (same length as `out`) is
    /// scratch that the default fills with `up · x` ([`Backend::matmul_many`] then
    /// [`Backend::gated_act`]); a backend that fuses them may leave it untouched.
    /// The result must equal the default's.
    #[allow(clippy::too_many_arguments)]
    fn matmul_gated(
        &self,
        gate: &Weight<'_>,
        up: &Weight<'_>,
        x: &[f32],
        n: usize,
        gelu: bool,
        out: &mut [f32],
        up_out: &mut [f32],
    ) {
        self.matmul_many(&[*gate, *up], x, n, &mut [&mut *out, &mut *up_out]);
        self.gated_act(&mut out[..n * gate.rows], &up_out[..n * up.rows], gelu);
    }
    /// Row-wise RMS norm of `n` rows of `w.len()` elements, in place, times `w`.
    fn rms_norm(&self, x: &mut [f32], w: &[f32], eps: f32);
    /// Rotate `n_tokens` rows of `n_head` heads of `head_dim` in place; row t has
    /// position `pos0 + t`; only the first `rot_dim` dims of each head rotate.
    #[allow(clippy::too_many_arguments)]
    fn rope(
        &self,
        x: &mut [f32],
        n_head: usize,
        head_dim: usize,
        rot_dim: usize,
        pos0: usize,
        freq_base: f32,
        freq_scale: f32,
        style: RopeStyle,
    );
    /// Causal attention of `q` (`[n_tokens][n_head][head_dim]`) over cache rows
    /// `0..pos0 + n_tokens`, written to `out` (same layout as q).
    fn attention(
        &self,
        q: &[f32],
        k_cache: &[half::f16],
        v_cache: &[half::f16],
        s: &AttnShape,
        out: &mut [f32],
    );
    /// [`Backend::attention`] over an f32 KV cache (the exact mode used to check
    /// conversions against float32 references). The default is the scalar
    /// reference; it is not a fast path.
    fn attention_f32(
        &self,
        q: &[f32],
        k_cache: &[f32],
        v_cache: &[f32],
        s: &AttnShape,
        out: &mut [f32],
    ) {
        reference::attention(q, k_cache, v_cache, s, out);
    }
    /// `gate = act(gate) * up`, elementwise; `gelu` selects GELU (tanh) over SiLU.
    fn gated_act(&self, gate: &mut [f32], up: &[f32], gelu: bool);

    // Encoder (BERT) ops. The defaults are the scalar references of
    // [`encoder`]; backends override them with fast forms.

    /// `x = LayerNorm(x + r + rb) · w + b` per row of `w.len()`; `r` is an optional
    /// residual branch (same shape as `x`) with its bias `rb`.
    fn add_layer_norm(
        &self,
        x: &mut [f32],
        r: Option<(&[f32], &[f32])>,
        w: &[f32],
        b: &[f32],
        eps: f32,
    ) {
        encoder::add_layer_norm_ref(x, r, w, b, eps)
    }
    /// `x = GELU_erf(x + bias)` per row of `bias.len()`.
    fn bias_gelu(&self, x: &mut [f32], bias: &[f32]) {
        encoder::bias_gelu_ref(x, bias)
    }
    /// `x = GELU_tanh(x + bias)` per row of `bias.len()` (vision encoders).
    fn bias_gelu_tanh(&self, x: &mut [f32], bias: &[f32]) {
        encoder::bias_gelu_tanh_ref(x, bias)
    }
    /// Bidirectional attention within each sentence of rows stacked as
    /// `[rows][n_head · head_dim]` (q, k, v and out).
    fn attention_segments(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: &encoder::SegAttn,
        out: &mut [f32],
    ) {
        encoder::attention_segments_ref(q, k, v, s, out)
    }
}

/// GELU, tanh approximation (as gemma's `gelu_pytorch_tanh`), in f32.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x)).tanh())
}

/// GELU as llama.cpp's CPU backend computes it, so that answers match: the input is
/// rounded to f16 and looked up in a table of f16 results; inputs at or beyond ±10
/// saturate (0 or x). The table (64 Ki f32, built on first use in about a
/// millisecond) holds [`gelu_f16_exact`] of every f16 value.
#[inline]
pub fn gelu_f16(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        gelu_table()[half::f16::from_f32(x).to_bits() as usize]
    }
}

/// The definition [`gelu_f16`]'s table is built from: f16(gelu_tanh(f16(x))) for
/// |x| < 10.
pub fn gelu_f16_exact(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        let xr = half::f16::from_f32(x).to_f32();
        half::f16::from_f32(gelu_tanh(xr)).to_f32()
    }
}

pub(crate) fn gelu_table() -> &'static [f32] {
    static T: std::sync::OnceLock<Box<[f32]>> = std::sync::OnceLock::new();
    // Entry b = f16(gelu_tanh(value of f16 bits b)): for |x| < 10 that is exactly
    // gelu_f16_exact(x) with b = f16(x) (the saturation branches never see table
    // values).
    T.get_or_init(|| {
        (0..=u16::MAX)
            .map(|b| half::f16::from_f32(gelu_tanh(half::f16::from_bits(b).to_f32())).to_f32())
            .collect()
    })
}

#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Writes to disjoint parts of one slice from several pool threads.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub *mut T);
// SAFETY: users guarantee disjoint writes (each thread owns distinct indices).
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}
impl<T> SyncPtr<T> {
    /// # Safety
    /// The range must be in bounds and owned by the calling thread during the job.
    #[inline]
    pub unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [T] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table lookup equals the definition for every f16 input and around the
    /// saturation points.
    #[test]
    fn gelu_table_equals_definition() {
        for b in 0..=u16::MAX {
            let x = half::f16::from_bits(b).to_f32();
            if x.is_nan() {
                continue;
            }
            assert_eq!(
                gelu_f16(x).to_bits(),
                gelu_f16_exact(x).to_bits(),
                "x = {x}"
            );
        }
        for x in [
            -10.5f32, -10.0, -9.999, 9.999, 10.0, 12.0, 0.1234567, -3.3333,
        ] {
            assert_eq!(
                gelu_f16(x).to_bits(),
                gelu_f16_exact(x).to_bits(),
                "x = {x}"
            );
        }
    }
}
