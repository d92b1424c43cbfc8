//! Scalar definition of every op (matmuls split rows over threads, which changes
//! no result): the reference the conformance kit
//! holds every other backend to. Row-level helpers here are also used by the CPU
//! backend where the op is not worth a separate SIMD path.

use crate::{gelu_f16, silu, AttnShape, Backend, DType, Layout, RopeStyle, Weight};
use half::f16;

/// The scalar reference backend.
#[derive(Debug, Default)]
pub struct ReferenceBackend;

impl Backend for ReferenceBackend {
    fn name(&self) -> String {
        "reference (scalar)".into()
    }

    fn supports(&self, dtype: DType) -> bool {
        dtype.is_executed()
    }

    fn matmul(&self, w: &Weight<'_>, x: &[f32], n: usize, out: &mut [f32]) {
        if w.layout == Layout::Packed8 {
            let rows = alc_quant::packed::unpack(w.dtype, w.cols, w.rows, w.data)
                .expect("packed by a backend from a valid weight");
            return self.matmul(
                &Weight::row_major(w.dtype, w.rows, w.cols, &rows),
                x,
                n,
                out,
            );
        }
        let rb = w.dtype.row_bytes(w.cols as u64).expect("validated shape") as usize;
        let arb = alc_quant::act_row_bytes(w.dtype, w.cols).expect("executed type");
        let mut act = vec![0u8; arb * n];
        for (t, a) in act.chunks_exact_mut(arb).enumerate() {
            alc_quant::reference::quantize_act(w.dtype, &x[t * w.cols..(t + 1) * w.cols], a)
                .expect("executed type");
        }
        // Row blocks on a few threads: every output is the same scalar dot whichever
        // thread computes it, so the result does not depend on the split.
        let threads = std::thread::available_parallelism()
            .map_or(1, |p| p.get())
            .min(w.rows.div_ceil(64))
            .max(1);
        let per = w.rows.div_ceil(threads);
        let mut rows_out = vec![0f32; w.rows * n];
        let block = |i: usize, o: &mut [f32]| {
            let r0 = i * per;
            alc_quant::reference::dot_rows(
                w.dtype,
                w.cols,
                &w.data[r0 * rb..],
                rb,
                o.len() / n,
                &act,
                arb,
                n,
                o,
            );
        };
        if threads == 1 {
            block(0, &mut rows_out);
        } else {
            std::thread::scope(|s| {
                for (i, o) in rows_out.chunks_mut(per * n).enumerate() {
                    s.spawn(move || block(i, o));
                }
            });
        }
        for r in 0..w.rows {
            for t in 0..n {
                out[t * w.rows + r] = rows_out[r * n + t];
            }
        }
    }

    fn rms_norm(&self, x: &mut [f32], w: &[f32], eps: f32) {
        for row in x.chunks_exact_mut(w.len()) {
            rms_norm_row(row, w, eps);
        }
    }

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
    ) {
        let mut cs = vec![(0f32, 0f32); rot_dim / 2];
        for (t, row) in x.chunks_exact_mut(n_head * head_dim).enumerate() {
            rope_table(pos0 + t, rot_dim, freq_base, freq_scale, &mut cs);
            for head in row.chunks_exact_mut(head_dim) {
                rope_head(head, &cs, style);
            }
        }
    }

    fn attention(&self, q: &[f32], k: &[f16], v: &[f16], s: &AttnShape, out: &mut [f32]) {
        attention(q, k, v, s, out);
    }

    fn gated_act(&self, gate: &mut [f32], up: &[f32], gelu: bool) {
        gated_act_slice(gate, up, gelu);
    }
}

/// An element of a KV cache: f16 (the default) or f32 (exact mode).
pub trait KvElem: Copy + Send + Sync {
    fn load(src: &[Self], dst: &mut [f32]);
}

impl KvElem for f16 {
    fn load(src: &[Self], dst: &mut [f32]) {
        half::slice::HalfFloatSliceExt::convert_to_f32_slice(src, dst);
    }
}

impl KvElem for f32 {
    fn load(src: &[Self], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
}

/// The reference attention over a cache of f16 or f32 (see [`Backend::attention`]).
pub fn attention<T: KvElem>(q: &[f32], k: &[T], v: &[T], s: &AttnShape, out: &mut [f32]) {
    let mut scores = vec![0f32; s.pos0 + s.n_tokens];
    let mut kbuf = vec![0f32; s.head_dim];
    let mut acc = vec![0f32; s.head_dim];
    for t in 0..s.n_tokens {
        for h in 0..s.n_head {
            let base = (t * s.n_head + h) * s.head_dim;
            attend_one(
                &q[base..base + s.head_dim],
                k,
                v,
                s,
                t,
                h,
                &mut scores,
                &mut kbuf,
                &mut acc,
            );
            out[base..base + s.head_dim].copy_from_slice(&acc);
        }
    }
}

pub(crate) fn gated_act_slice(gate: &mut [f32], up: &[f32], gelu: bool) {
    if gelu {
        for (g, u) in gate.iter_mut().zip(up) {
            *g = gelu_f16(*g) * u;
        }
    } else {
        for (g, u) in gate.iter_mut().zip(up) {
            *g = silu(*g) * u;
        }
    }
}

/// In-place RMS norm of one row, times `w`.
pub(crate) fn rms_norm_row(row: &mut [f32], w: &[f32], eps: f32) {
    // The sum of squares in f64 (as llama.cpp's ggml_float), in 8 independent
    // lanes: one sequential f32 sum was a latency-bound chain of adds (about
    // 0.6 µs per 576-float row, 1.5 % of SmolLM2 decode).
    const L: usize = 8;
    let mut acc = [0f64; L];
    let mut chunks = row.chunks_exact(L);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f64::from(v) * f64::from(v);
        }
    }
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum();
    let ss = (acc.iter().sum::<f64>() + tail) as f32;
    let scale = 1.0 / (ss / row.len() as f32 + eps).sqrt();
    for (v, g) in row.iter_mut().zip(w) {
        *v = *v * scale * g;
    }
}

/// cos/sin of `pos * freq_scale * base^(-2i/rot_dim)` for i < rot_dim/2.
pub(crate) fn rope_table(
    pos: usize,
    rot_dim: usize,
    base: f32,
    freq_scale: f32,
    out: &mut [(f32, f32)],
) {
    let theta_scale = base.powf(-2.0 / rot_dim as f32);
    let mut theta = pos as f32 * freq_scale;
    for cs in out.iter_mut().take(rot_dim / 2) {
        *cs = (theta.cos(), theta.sin());
        theta *= theta_scale;
    }
}

pub(crate) fn rope_head(head: &mut [f32], cs: &[(f32, f32)], style: RopeStyle) {
    let half = cs.len();
    match style {
        RopeStyle::Normal => {
            for (i, &(c, s)) in cs.iter().enumerate() {
                let (a, b) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = a * c - b * s;
                head[2 * i + 1] = a * s + b * c;
            }
        }
        RopeStyle::Neox => {
            for (i, &(c, s)) in cs.iter().enumerate() {
                let (a, b) = (head[i], head[i + half]);
                head[i] = a * c - b * s;
                head[i + half] = a * s + b * c;
            }
        }
    }
}

/// First visible key position for query position `p`.
#[inline]
pub(crate) fn first_visible(p: usize, window: Option<usize>) -> usize {
    match window {
        Some(w) if w > 0 => (p + 1).saturating_sub(w),
        _ => 0,
    }
}

/// Attention of one query head; result left in `acc`.
#[allow(clippy::too_many_arguments)]
#[inline]
// `j` is a cache position: it indexes the scores and offsets the K/V rows.
#[allow(clippy::needless_range_loop)]
pub(crate) fn attend_one<T: KvElem>(
    q: &[f32],
    k: &[T],
    v: &[T],
    s: &AttnShape,
    t: usize,
    h: usize,
    scores: &mut [f32],
    kbuf: &mut [f32],
    acc: &mut [f32],
) {
    let hd = s.head_dim;
    let kvh = h / (s.n_head / s.n_kv_head);
    let p = s.pos0 + t;
    let j0 = first_visible(p, s.window);
    let row = s.n_kv_head * hd;
    let mut max = f32::NEG_INFINITY;
    for j in j0..=p {
        let off = j * row + kvh * hd;
        T::load(&k[off..off + hd], kbuf);
        let mut d = 0f32;
        for (a, b) in q.iter().zip(kbuf.iter()) {
            d += a * b;
        }
        let mut sc = d * s.scale;
        if let Some(cap) = s.softcap {
            sc = cap * (sc / cap).tanh();
        }
        scores[j] = sc;
        max = max.max(sc);
    }
    let mut sum = 0f32;
    for sc in &mut scores[j0..=p] {
        *sc = (*sc - max).exp();
        sum += *sc;
    }
    let inv = 1.0 / sum;
    acc.fill(0.0);
    for j in j0..=p {
        let off = j * row + kvh * hd;
        T::load(&v[off..off + hd], kbuf);
        let pj = scores[j] * inv;
        for (a, b) in acc.iter_mut().zip(kbuf.iter()) {
            *a += pj * b;
        }
    }
}

/// The reference backend with GELU computed in f32 ([`crate::gelu_tanh`]) instead of
/// from llama.cpp's f16 table. With an f32 KV cache (alc-models' `KvType::F32`) and
/// f32 weights, the whole forward pass is float32, which is what checks against
/// float32 references (transformers) need. Scalar and single-threaded like
/// [`ReferenceBackend`], whose ops it shares.
#[derive(Debug, Default)]
pub struct ExactBackend;

impl Backend for ExactBackend {
    fn name(&self) -> String {
        "reference, float32 throughout (scalar)".into()
    }

    fn supports(&self, dtype: DType) -> bool {
        ReferenceBackend.supports(dtype)
    }

    fn matmul(&self, w: &Weight<'_>, x: &[f32], n: usize, out: &mut [f32]) {
        ReferenceBackend.matmul(w, x, n, out)
    }

    fn rms_norm(&self, x: &mut [f32], w: &[f32], eps: f32) {
        ReferenceBackend.rms_norm(x, w, eps)
    }

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
    ) {
        ReferenceBackend.rope(
            x, n_head, head_dim, rot_dim, pos0, freq_base, freq_scale, style,
        )
    }

    fn attention(&self, q: &[f32], k: &[f16], v: &[f16], s: &AttnShape, out: &mut [f32]) {
        attention(q, k, v, s, out);
    }

    fn gated_act(&self, gate: &mut [f32], up: &[f32], gelu: bool) {
        if gelu {
            for (g, u) in gate.iter_mut().zip(up) {
                *g = crate::gelu_tanh(*g) * u;
            }
        } else {
            gated_act_slice(gate, up, false);
        }
    }
}
