//! Scalar reference: dequantize, quantize (weights), quantize_act (activations) and
//! dot products. Plain Rust, no SIMD: this is what the SIMD kernels are tested
//! against, and the fallback on CPUs without AVX2.
//!
//! Formulas (facts from ggml's `ggml-quants.c`, re-implemented here):
//! - Q4_0: `max` = the element of largest magnitude, d = max / −8,
//!   q = min(15, trunc(x/d + 8.5)).
//! - Q4_1: d = (max − min)/15, m = min, q = min(15, trunc((x − min)/d + 0.5)).
//! - Q5_0: as Q4_0 with d = max / −16, q = min(31, trunc(x/d + 16.5)).
//! - Q5_1: d = (max − min)/31, m = min, q = trunc((x − min)/d + 0.5) (ggml does not
//!   clamp; the value cannot exceed 31.5 before truncation, we clamp to 31 anyway).
//! - Q8_0 (weights): d = amax/127, q = round-half-away(x/d).
//! - K-quants (weights): **not** ggml's `make_qkx2_quants` / `make_qx_quants` search but
//!   our own simpler one: per sub-block, round-to-nearest over 21 candidate
//!   inverse scales followed by an unweighted least-squares fit of (scale, min),
//!   keeping the candidate with the smallest squared error; then the sub-block scales
//!   (and mins) are quantized to 6 bits (Q4_K/Q5_K) or 8 bits (Q6_K) against the
//!   super-block scale exactly as ggml does, and the elements are re-quantized with
//!   the final (f16-rounded) scales. Output is a valid ggml block; bits differ from
//!   llama-quantize's.
//! - Activations (`quantize_act`): Q8_0/Q8_1 as ggml's x86 AVX2 path (the one
//!   llama.cpp runs on this machine): d = amax/127, q = round-half-even(x·(127/amax));
//!   Q8_1 adds s = d·Σq. Q8_K as `quantize_row_q8_K_ref`: `max` = first element of
//!   largest magnitude, iscale = −127/max, q = min(127, round-half-even(iscale·x)),
//!   d = 1/iscale, bsums = sums of 16 quants.
//! - Dots: integer sums per (sub-)block times the block scales, accumulated in f32,
//!   the same algebra as ggml's `ggml_vec_dot_*`. Plain types accumulate in f64.

use crate::blocks::*;
use crate::QuantError;
use alc_core::DType;

fn nblocks(ty: DType, n: usize, what: &'static str) -> Result<usize, QuantError> {
    let bs = ty.block_size();
    if !n.is_multiple_of(bs) {
        return Err(QuantError::RaggedLength {
            dtype: ty,
            n,
            block: bs,
            what,
        });
    }
    Ok(n / bs)
}

/// `got` bytes where `expected` are needed: an error naming `what`.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), QuantError> {
    if got < expected {
        return Err(QuantError::LengthMismatch {
            what,
            expected,
            got,
        });
    }
    Ok(())
}

fn blocks<T: Block>(bytes: &[u8], nb: usize) -> &[T] {
    cast_blocks::<T>(&bytes[..nb * T::BYTES]).expect("whole number of blocks")
}

fn blocks_mut<T: Block>(bytes: &mut [u8], nb: usize) -> &mut [T] {
    cast_blocks_mut::<T>(&mut bytes[..nb * T::BYTES]).expect("whole number of blocks")
}

// ---------------------------------------------------------------------------
// dequantize
// ---------------------------------------------------------------------------

crate::avx2_clone!(
    /// Dequantize `out.len()` elements of type `ty` from `src`.
    pub fn dequantize(ty: DType, src: &[u8], out: &mut [f32]) -> Result<(), QuantError> = dequantize_body
);

#[inline(always)]
fn dequantize_body(ty: DType, src: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let n = out.len();
    let nb = nblocks(ty, n, "dequantize")?;
    check_len("dequantize source bytes", nb * ty.block_bytes(), src.len())?;
    match ty {
        DType::F32 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        DType::F16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16_to_f32([c[0], c[1]]);
            }
        }
        DType::BF16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = bf16_to_f32([c[0], c[1]]);
            }
        }
        DType::Q4_0 | DType::Q4BF16_1 => {
            // One layout; only the scale's encoding differs.
            for (b, o) in blocks::<BlockQ4_0>(src, nb)
                .iter()
                .zip(out.chunks_exact_mut(QK))
            {
                let d = if ty == DType::Q4_0 {
                    b.d()
                } else {
                    bf16_to_f32(b.d)
                };
                for (i, o) in o.iter_mut().enumerate() {
                    *o = (b.q(i) as i32 - 8) as f32 * d;
                }
            }
        }
        DType::Q4_1 => {
            for (b, o) in blocks::<BlockQ4_1>(src, nb)
                .iter()
                .zip(out.chunks_exact_mut(QK))
            {
                let (d, m) = (b.d(), b.m());
                for (i, o) in o.iter_mut().enumerate() {
                    *o = b.q(i) as f32 * d + m;
                }
            }
        }
        DType::Q5_0 => {
            for (b, o) in blocks::<BlockQ5_0>(src, nb)
                .iter()
                .zip(out.chunks_exact_mut(QK))
            {
                let d = b.d();
                for (i, o) in o.iter_mut().enumerate() {
                    *o = (b.q(i) as i32 - 16) as f32 * d;
                }
            }
        }
        DType::Q5_1 => {
            for (b, o) in blocks::<BlockQ5_1>(src, nb)
                .iter()
                .zip(out.chunks_exact_mut(QK))
            {
                let (d, m) = (b.d(), b.m());
                for (i, o) in o.iter_mut().enumerate() {
                    *o = b.q(i) as f32 * d + m;
                }
            }
        }
        DType::Q8_0 => {
            for (b, o) in blocks::<BlockQ8_0>(src, nb)
                .iter()
                .zip(out.chunks_exact_mut(QK))
            {
                let d = b.d();
                for (o, &q) in o.iter_mut().zip(&b.qs) {
                    *o = q as f32 * d;
                }
            }
        }
        DType::Q8_1 => {
            for (b, o) in blocks::<BlockQ8_1>(src, nb)
                .iter()
                .zip(out.chunks_exact_mut(QK))
            {
                let d = b.d();
                for (o, &q) in o.iter_mut().zip(&b.qs) {
                    *o = q as f32 * d;
                }
            }
        }
        DType::Q8_K => {
            for (b, o) in blocks::<BlockQ8K>(src, nb)
                .iter()
                .zip(out.chunks_exact_mut(QK_K))
            {
                let d = b.d();
                for (o, &q) in o.iter_mut().zip(&b.qs) {
                    *o = q as f32 * d;
                }
            }
        }
        DType::Q4_K => {
            for (b, o) in blocks::<BlockQ4K>(src, nb)
                .iter()
                .zip(out.chunks_exact_mut(QK_K))
            {
                let (sc, m) = unpack_k_scales(&b.scales);
                let (d, dmin) = (b.d(), b.dmin());
                for c in 0..4 {
                    let (d1, m1) = (d * sc[2 * c] as f32, dmin * m[2 * c] as f32);
                    let (d2, m2) = (d * sc[2 * c + 1] as f32, dmin * m[2 * c + 1] as f32);
                    for l in 0..32 {
                        let q = b.qs[32 * c + l];
                        o[64 * c + l] = d1 * (q & 0xF) as f32 - m1;
                        o[64 * c + 32 + l] = d2 * (q >> 4) as f32 - m2;
                    }
                }
            }
        }
        DType::Q5_K => {
            for (b, o) in blocks::<BlockQ5K>(src, nb)
                .iter()
                .zip(out.chunks_exact_mut(QK_K))
            {
                let (sc, m) = unpack_k_scales(&b.scales);
                let (d, dmin) = (b.d(), b.dmin());
                for c in 0..4 {
                    let (d1, m1) = (d * sc[2 * c] as f32, dmin * m[2 * c] as f32);
                    let (d2, m2) = (d * sc[2 * c + 1] as f32, dmin * m[2 * c + 1] as f32);
                    for l in 0..32 {
                        let q = b.qs[32 * c + l];
                        let h = b.qh[l];
                        let q1 = (q & 0xF) + (((h >> (2 * c)) & 1) << 4);
                        let q2 = (q >> 4) + (((h >> (2 * c + 1)) & 1) << 4);
                        o[64 * c + l] = d1 * q1 as f32 - m1;
                        o[64 * c + 32 + l] = d2 * q2 as f32 - m2;
                    }
                }
            }
        }
        DType::Q6_K => {
            for (b, o) in blocks::<BlockQ6K>(src, nb)
                .iter()
                .zip(out.chunks_exact_mut(QK_K))
            {
                let d = b.d();
                let q = q6k_unpack(b);
                for (i, o) in o.iter_mut().enumerate() {
                    *o = d * b.scales[i / 16] as f32 * q[i] as f32;
                }
            }
        }
        other => return Err(QuantError::unsupported(other, "dequantize")),
    }
    Ok(())
}

/// Quants of a Q6_K block in element order, already minus 32.
pub fn q6k_unpack(b: &BlockQ6K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for h in 0..2 {
        let ql = &b.ql[64 * h..64 * h + 64];
        let qh = &b.qh[32 * h..32 * h + 32];
        for l in 0..32 {
            let o = 128 * h + l;
            q[o] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
            q[o + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            q[o + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            q[o + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    q
}

/// Quants (0..32) of a Q5_K block in element order.
pub fn q5k_unpack(b: &BlockQ5K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for c in 0..4 {
        for l in 0..32 {
            let v = b.qs[32 * c + l];
            let h = b.qh[l];
            q[64 * c + l] = (v & 0xF) | (((h >> (2 * c)) & 1) << 4);
            q[64 * c + 32 + l] = (v >> 4) | (((h >> (2 * c + 1)) & 1) << 4);
        }
    }
    q
}

/// Quants (0..16) of a Q4_K block in element order.
pub fn q4k_unpack(b: &BlockQ4K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for c in 0..4 {
        for l in 0..32 {
            let v = b.qs[32 * c + l];
            q[64 * c + l] = v & 0xF;
            q[64 * c + 32 + l] = v >> 4;
        }
    }
    q
}

// ---------------------------------------------------------------------------
// quantize (weights)
// ---------------------------------------------------------------------------

crate::avx2_clone!(
    /// Quantize `x` into weight type `ty`.
    pub fn quantize(ty: DType, x: &[f32], out: &mut [u8]) -> Result<(), QuantError> = quantize_body
);

#[inline(always)]
fn quantize_body(ty: DType, x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    let nb = nblocks(ty, x.len(), "quantize")?;
    check_len("quantize output bytes", nb * ty.block_bytes(), out.len())?;
    match ty {
        DType::F32 => {
            for (o, v) in out.chunks_exact_mut(4).zip(x) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        DType::F16 => {
            for (o, &v) in out.chunks_exact_mut(2).zip(x) {
                o.copy_from_slice(&f32_to_f16(v));
            }
        }
        DType::BF16 => {
            for (o, &v) in out.chunks_exact_mut(2).zip(x) {
                o.copy_from_slice(&f32_to_bf16(v));
            }
        }
        DType::Q4_0 => {
            for (b, x) in blocks_mut::<BlockQ4_0>(out, nb)
                .iter_mut()
                .zip(x.chunks_exact(QK))
            {
                quantize_q4_0_block(x, b);
            }
        }
        DType::Q4BF16_1 => {
            for (b, x) in blocks_mut::<BlockQ4BF16>(out, nb)
                .iter_mut()
                .zip(x.chunks_exact(QK))
            {
                quantize_q4bf16_block(x, b);
            }
        }
        DType::Q4_1 => {
            for (b, x) in blocks_mut::<BlockQ4_1>(out, nb)
                .iter_mut()
                .zip(x.chunks_exact(QK))
            {
                quantize_q4_1_block(x, b);
            }
        }
        DType::Q5_0 => {
            for (b, x) in blocks_mut::<BlockQ5_0>(out, nb)
                .iter_mut()
                .zip(x.chunks_exact(QK))
            {
                quantize_q5_0_block(x, b);
            }
        }
        DType::Q5_1 => {
            for (b, x) in blocks_mut::<BlockQ5_1>(out, nb)
                .iter_mut()
                .zip(x.chunks_exact(QK))
            {
                quantize_q5_1_block(x, b);
            }
        }
        DType::Q8_0 => {
            for (b, x) in blocks_mut::<BlockQ8_0>(out, nb)
                .iter_mut()
                .zip(x.chunks_exact(QK))
            {
                let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                b.d = f32_to_f16(d);
                for (q, &v) in b.qs.iter_mut().zip(x) {
                    *q = (v * id).round() as i8;
                }
            }
        }
        DType::Q4_K => {
            for (b, x) in blocks_mut::<BlockQ4K>(out, nb)
                .iter_mut()
                .zip(x.chunks_exact(QK_K))
            {
                let (d, dmin, scales, q) = quantize_kminq(x.try_into().unwrap(), 15);
                b.d = d;
                b.dmin = dmin;
                b.scales = scales;
                for c in 0..4 {
                    for l in 0..32 {
                        b.qs[32 * c + l] = q[64 * c + l] | (q[64 * c + 32 + l] << 4);
                    }
                }
            }
        }
        DType::Q5_K => {
            for (b, x) in blocks_mut::<BlockQ5K>(out, nb)
                .iter_mut()
                .zip(x.chunks_exact(QK_K))
            {
                let (d, dmin, scales, q) = quantize_kminq(x.try_into().unwrap(), 31);
                b.d = d;
                b.dmin = dmin;
                b.scales = scales;
                b.qh = [0; 32];
                for c in 0..4 {
                    for l in 0..32 {
                        let (q1, q2) = (q[64 * c + l], q[64 * c + 32 + l]);
                        b.qs[32 * c + l] = (q1 & 0xF) | ((q2 & 0xF) << 4);
                        b.qh[l] |= ((q1 >> 4) << (2 * c)) | ((q2 >> 4) << (2 * c + 1));
                    }
                }
            }
        }
        DType::Q6_K => {
            for (b, x) in blocks_mut::<BlockQ6K>(out, nb)
                .iter_mut()
                .zip(x.chunks_exact(QK_K))
            {
                quantize_q6_k_block(x.try_into().unwrap(), b);
            }
        }
        other => return Err(QuantError::unsupported(other, "quantize")),
    }
    Ok(())
}

/// Q4_0's scale of a block: the signed value of largest magnitude over −8.
fn q4_0_scale(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max / -8.0
}

/// Q4_0's rule with the scale stored as bf16; the quants are rounded against the
/// stored (bf16) scale, since bf16's 8-bit mantissa is too coarse to ignore.
fn quantize_q4bf16_block(x: &[f32], b: &mut BlockQ4BF16) {
    b.d = f32_to_bf16(q4_0_scale(x));
    let d = b.d();
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
    for j in 0..16 {
        b.qs[j] = q(x[j]) | (q(x[j + 16]) << 4);
    }
}

fn quantize_q4_0_block(x: &[f32], b: &mut BlockQ4_0) {
    let d = q4_0_scale(x);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b.d = f32_to_f16(d);
    let q = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
    for j in 0..16 {
        b.qs[j] = q(x[j]) | (q(x[j + 16]) << 4);
    }
}

fn quantize_q4_1_block(x: &[f32], b: &mut BlockQ4_1) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        min = min.min(v);
        max = max.max(v);
    }
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b.d = f32_to_f16(d);
    b.m = f32_to_f16(min);
    let q = |v: f32| (((v - min) * id + 0.5) as i8).min(15) as u8;
    for j in 0..16 {
        b.qs[j] = q(x[j]) | (q(x[j + 16]) << 4);
    }
}

fn quantize_q5_0_block(x: &[f32], b: &mut BlockQ5_0) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b.d = f32_to_f16(d);
    let q: [u8; 32] = std::array::from_fn(|i| ((x[i] * id + 16.5) as i8).min(31) as u8);
    b.set_quants(&q);
}

fn quantize_q5_1_block(x: &[f32], b: &mut BlockQ5_1) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        min = min.min(v);
        max = max.max(v);
    }
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b.d = f32_to_f16(d);
    b.m = f32_to_f16(min);
    let q: [u8; 32] = std::array::from_fn(|i| (((x[i] - min) * id + 0.5) as u8).min(31));
    b.set_quants(&q);
}

/// Round half to even, as ggml's `nearest_int` (magic-number trick in the default
/// rounding mode) and `_mm256_round_ps(_MM_ROUND_NEAREST)`.
#[inline(always)]
pub fn nearest_int(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// Fit x ≈ scale·q − m with q in 0..=nmax, m ≥ 0 (x's minimum is clamped to ≤ 0).
/// Returns (scale, m). Own search: 21 candidate inverse scales, each followed by a
/// least-squares refit of (scale, offset); the best by squared error wins.
fn fit_scale_min(x: &[f32], nmax: u8) -> (f32, f32) {
    let mut min = x.iter().copied().fold(f32::MAX, f32::min);
    let max = x.iter().copied().fold(-f32::MAX, f32::max);
    if min > 0.0 {
        min = 0.0;
    }
    if max <= min {
        return (0.0, -min);
    }
    let nf = nmax as f32;
    let err_of = |scale: f32, off: f32| -> f32 {
        x.iter()
            .map(|&v| {
                let q = if scale > 0.0 {
                    nearest_int((v - off) / scale).clamp(0, nmax as i32)
                } else {
                    0
                };
                let e = scale * q as f32 + off - v;
                e * e
            })
            .sum()
    };
    // Plain min/max round-to-nearest as the starting point.
    let mut best = ((max - min) / nf, min);
    let mut best_err = err_of(best.0, best.1);
    let n = x.len() as f32;
    for step in -10..=10 {
        let iscale = (nf + 0.1 * step as f32) / (max - min);
        let (mut sq, mut sqq, mut sx, mut sqx) = (0f32, 0f32, 0f32, 0f32);
        for &v in x {
            let q = nearest_int(iscale * (v - min)).clamp(0, nmax as i32) as f32;
            sq += q;
            sqq += q * q;
            sx += v;
            sqx += q * v;
        }
        let det = n * sqq - sq * sq;
        if det <= 0.0 {
            continue;
        }
        let mut scale = (n * sqx - sq * sx) / det;
        let mut off = (sqq * sx - sq * sqx) / det;
        if off > 0.0 {
            off = 0.0;
            scale = sqx / sqq;
        }
        if scale <= 0.0 {
            continue;
        }
        let e = err_of(scale, off);
        if e < best_err {
            best_err = e;
            best = (scale, off);
        }
    }
    (best.0, -best.1)
}

/// Shared Q4_K / Q5_K quantizer: returns (d, dmin, packed scales, quants 0..=nmax).
fn quantize_kminq(x: &[f32; QK_K], nmax: u8) -> ([u8; 2], [u8; 2], [u8; 12], [u8; QK_K]) {
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    for j in 0..8 {
        (scales[j], mins[j]) = fit_scale_min(&x[32 * j..32 * j + 32], nmax);
    }
    let max_scale = scales.iter().copied().fold(0f32, f32::max);
    let max_min = mins.iter().copied().fold(0f32, f32::max);
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..8 {
        ls[j] = nearest_int(inv_scale * scales[j]).clamp(0, 63) as u8;
        lm[j] = nearest_int(inv_min * mins[j]).clamp(0, 63) as u8;
    }
    let d = f32_to_f16(max_scale / 63.0);
    let dmin = f32_to_f16(max_min / 63.0);
    let (df, dminf) = (f16_to_f32(d), f16_to_f32(dmin));
    let mut q = [0u8; QK_K];
    for j in 0..8 {
        let dj = df * ls[j] as f32;
        let mj = dminf * lm[j] as f32;
        for i in 0..32 {
            let v = x[32 * j + i];
            q[32 * j + i] = if dj > 0.0 {
                nearest_int((v + mj) / dj).clamp(0, nmax as i32) as u8
            } else {
                0
            };
        }
    }
    (d, dmin, pack_k_scales(&ls, &lm), q)
}

/// Fit x ≈ scale·q with q in −32..=31 (symmetric); returns scale (may be negative).
fn fit_scale_sym(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        return 0.0;
    }
    let err_of = |scale: f32| -> f32 {
        x.iter()
            .map(|&v| {
                let q = nearest_int(v / scale).clamp(-32, 31) as f32;
                let e = scale * q - v;
                e * e
            })
            .sum()
    };
    let mut best = max / -32.0;
    let mut best_err = err_of(best);
    for step in -10..=10 {
        let iscale = -(32.0 + 0.1 * step as f32) / max;
        let (mut sqq, mut sqx) = (0f32, 0f32);
        for &v in x {
            let q = nearest_int(iscale * v).clamp(-32, 31) as f32;
            sqq += q * q;
            sqx += q * v;
        }
        if sqq <= 0.0 || sqx == 0.0 {
            continue;
        }
        let scale = sqx / sqq;
        let e = err_of(scale);
        if e < best_err {
            best_err = e;
            best = scale;
        }
    }
    best
}

fn quantize_q6_k_block(x: &[f32; QK_K], b: &mut BlockQ6K) {
    let mut scales = [0f32; 16];
    let (mut amax, mut max_scale) = (0f32, 0f32);
    for g in 0..16 {
        scales[g] = fit_scale_sym(&x[16 * g..16 * g + 16]);
        if scales[g].abs() > amax {
            amax = scales[g].abs();
            max_scale = scales[g];
        }
    }
    *b = BlockQ6K::zeroed();
    if amax == 0.0 {
        // All-zero block: quants of 32 mean zero.
        let q = [32u8; QK_K];
        pack_q6k(&q, b);
        return;
    }
    let iscale = -128.0 / max_scale;
    b.d = f32_to_f16(1.0 / iscale);
    let d = f16_to_f32(b.d);
    for g in 0..16 {
        b.scales[g] = nearest_int(iscale * scales[g]).clamp(-128, 127) as i8;
    }
    let mut q = [0u8; QK_K];
    for g in 0..16 {
        let dg = d * b.scales[g] as f32;
        for i in 0..16 {
            let v = x[16 * g + i];
            let l = if dg != 0.0 {
                nearest_int(v / dg).clamp(-32, 31)
            } else {
                0
            };
            q[16 * g + i] = (l + 32) as u8;
        }
    }
    pack_q6k(&q, b);
}

/// Pack 256 six-bit quants (0..64, element order) into ql / qh.
pub fn pack_q6k(q: &[u8; QK_K], b: &mut BlockQ6K) {
    for h in 0..2 {
        for l in 0..32 {
            let o = 128 * h + l;
            let (q1, q2, q3, q4) = (q[o], q[o + 32], q[o + 64], q[o + 96]);
            b.ql[64 * h + l] = (q1 & 0xF) | ((q3 & 0xF) << 4);
            b.ql[64 * h + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
            b.qh[32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
}

// ---------------------------------------------------------------------------
// quantize_act (activations)
// ---------------------------------------------------------------------------

/// Quantize an activation row for weight type `w` (see [`crate::act_type`]).
pub fn quantize_act(w: DType, x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    let at = crate::act_type(w)?;
    let nb = nblocks(at, x.len(), "quantize_act")?;
    check_len(
        "quantize_act output bytes",
        nb * at.block_bytes(),
        out.len(),
    )?;
    match at {
        DType::F32 => {
            for (o, v) in out.chunks_exact_mut(4).zip(x) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        DType::Q8_0 => {
            for (b, x) in blocks_mut::<BlockQ8_0>(out, nb)
                .iter_mut()
                .zip(x.chunks_exact(QK))
            {
                let (d, _) = quantize_q8_block(x, &mut b.qs);
                b.d = f32_to_f16(d);
            }
        }
        DType::Q8_1 => {
            for (b, x) in blocks_mut::<BlockQ8_1>(out, nb)
                .iter_mut()
                .zip(x.chunks_exact(QK))
            {
                let (d, sum) = quantize_q8_block(x, &mut b.qs);
                b.d = f32_to_f16(d);
                b.s = f32_to_f16(d * sum as f32);
            }
        }
        DType::Q8_K => {
            for (b, x) in blocks_mut::<BlockQ8K>(out, nb)
                .iter_mut()
                .zip(x.chunks_exact(QK_K))
            {
                quantize_q8_k_block(x, b);
            }
        }
        _ => unreachable!("act_type returns F32, Q8_0, Q8_1 or Q8_K"),
    }
    Ok(())
}

/// Q8_0/Q8_1 activation block: returns (d, Σq).
fn quantize_q8_block(x: &[f32], qs: &mut [i8; 32]) -> (f32, i32) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        let r = nearest_int(v * id).clamp(-128, 127);
        *q = r as i8;
        sum += r;
    }
    (d, sum)
}

fn quantize_q8_k_block(x: &[f32], b: &mut BlockQ8K) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        *b = BlockQ8K::zeroed();
        return;
    }
    let iscale = -127.0 / max;
    for (q, &v) in b.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for g in 0..16 {
        let s: i32 = b.qs[16 * g..16 * g + 16].iter().map(|&q| q as i32).sum();
        b.set_bsum(g, s as i16);
    }
    b.d = (1.0 / iscale).to_le_bytes();
}

// ---------------------------------------------------------------------------
// dot
// ---------------------------------------------------------------------------

/// Reference dot: `out[j] = dot(w_row, act row j)` for j in 0..k.
/// Panics if the buffers are too short or `w` is not executed.
pub fn dot(
    w: DType,
    n: usize,
    w_row: &[u8],
    acts: &[u8],
    act_stride: usize,
    k: usize,
    out: &mut [f32],
) {
    let wb = w
        .row_bytes(n as u64)
        .expect("n is a multiple of the block size") as usize;
    let ab = crate::act_row_bytes(w, n).expect("executed weight type");
    if k > 1 && matches!(w, DType::Q4_0 | DType::Q5_0 | DType::Q8_0 | DType::Q4BF16_1) {
        // The same sums as dot1, in the same order per output, with each weight
        // block unpacked once for all k activation rows.
        dot_q8_family(w, n, &w_row[..wb], acts, act_stride, ab, k, out);
        return;
    }
    for j in 0..k {
        let a = &acts[j * act_stride..j * act_stride + ab];
        out[j] = dot1(w, n, &w_row[..wb], a);
    }
}

crate::avx2_clone!(
    /// [`dot`] for Q4_0 / Q5_0 / Q8_0 / Q4BF16_1 weights over k activation rows.
    #[allow(clippy::too_many_arguments)]
    fn dot_q8_family(
        w: DType,
        n: usize,
        w_row: &[u8],
        acts: &[u8],
        act_stride: usize,
        ab: usize,
        k: usize,
        out: &mut [f32],
    ) = dot_q8_family_body
);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dot_q8_family_body(
    w: DType,
    n: usize,
    w_row: &[u8],
    acts: &[u8],
    act_stride: usize,
    ab: usize,
    k: usize,
    out: &mut [f32],
) {
    let nb = n / QK;
    // The activation rows' block views: on the stack for up to 8 rows (every call
    // but the self-check's longer prompts), else in one allocation.
    let view = |j: usize| blocks::<BlockQ8_0>(&acts[j * act_stride..j * act_stride + ab], nb);
    let mut stack: [&[BlockQ8_0]; 8] = [&[]; 8];
    let heap: Vec<&[BlockQ8_0]>;
    let acts: &[&[BlockQ8_0]] = if k <= stack.len() {
        for (j, a) in stack[..k].iter_mut().enumerate() {
            *a = view(j);
        }
        &stack[..k]
    } else {
        heap = (0..k).map(view).collect();
        &heap
    };
    out[..k].fill(0.0);
    let mut q = [0i8; QK];
    for b in 0..nb {
        let d = match w {
            // One layout; only the scale's encoding differs.
            DType::Q4_0 | DType::Q4BF16_1 => {
                let x = &blocks::<BlockQ4_0>(w_row, nb)[b];
                q.iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v = x.q(i) as i8 - 8);
                if w == DType::Q4_0 {
                    x.d()
                } else {
                    bf16_to_f32(x.d)
                }
            }
            DType::Q5_0 => {
                let x = &blocks::<BlockQ5_0>(w_row, nb)[b];
                q.iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v = x.q(i) as i8 - 16);
                x.d()
            }
            _ => {
                let x = &blocks::<BlockQ8_0>(w_row, nb)[b];
                q = x.qs;
                x.d()
            }
        };
        let qw: [i32; QK] = std::array::from_fn(|i| i32::from(q[i]));
        for (o, a) in out.iter_mut().zip(acts) {
            let y = &a[b];
            // Eight lanes of partial sums (exact in i32), then their total.
            let mut lanes = [0i32; 8];
            for c in 0..QK / 8 {
                for (l, lane) in lanes.iter_mut().enumerate() {
                    *lane += qw[8 * c + l] * i32::from(y.qs[8 * c + l]);
                }
            }
            let sumi: i32 = lanes.iter().sum();
            *o += sumi as f32 * (d * y.d());
        }
    }
}

/// Reference multi-row dot: `out[r * k + j] = dot(row r, act row j)`, row r of the
/// weights at byte `r * row_bytes` of `rows` (the definition of [`crate::dot_rows`]).
#[allow(clippy::too_many_arguments)]
pub fn dot_rows(
    w: DType,
    n: usize,
    rows: &[u8],
    row_bytes: usize,
    n_rows: usize,
    acts: &[u8],
    act_stride: usize,
    k: usize,
    out: &mut [f32],
) {
    for r in 0..n_rows {
        dot(
            w,
            n,
            &rows[r * row_bytes..],
            acts,
            act_stride,
            k,
            &mut out[r * k..(r + 1) * k],
        );
    }
}

/// One weight row · one activation row.
pub fn dot1(w: DType, n: usize, wr: &[u8], a: &[u8]) -> f32 {
    let nb = n / w.block_size();
    match w {
        DType::F32 | DType::F16 | DType::BF16 => {
            let mut s = 0f64;
            for i in 0..n {
                let wv = match w {
                    DType::F32 => f32::from_le_bytes(wr[4 * i..4 * i + 4].try_into().unwrap()),
                    DType::F16 => f16_to_f32([wr[2 * i], wr[2 * i + 1]]),
                    _ => bf16_to_f32([wr[2 * i], wr[2 * i + 1]]),
                };
                let av = f32::from_le_bytes(a[4 * i..4 * i + 4].try_into().unwrap());
                s += wv as f64 * av as f64;
            }
            s as f32
        }
        // One layout; only the scale's encoding differs.
        DType::Q4_0 | DType::Q4BF16_1 => {
            let (wb, ab) = (blocks::<BlockQ4_0>(wr, nb), blocks::<BlockQ8_0>(a, nb));
            let mut s = 0f32;
            for (x, y) in wb.iter().zip(ab) {
                let d = if w == DType::Q4_0 {
                    x.d()
                } else {
                    bf16_to_f32(x.d)
                };
                let sumi: i32 = (0..QK).map(|i| (x.q(i) as i32 - 8) * y.qs[i] as i32).sum();
                s += sumi as f32 * (d * y.d());
            }
            s
        }
        DType::Q4_1 => {
            let (wb, ab) = (blocks::<BlockQ4_1>(wr, nb), blocks::<BlockQ8_1>(a, nb));
            let mut s = 0f32;
            for (x, y) in wb.iter().zip(ab) {
                let sumi: i32 = (0..QK).map(|i| x.q(i) as i32 * y.qs[i] as i32).sum();
                s += sumi as f32 * (x.d() * y.d()) + x.m() * y.s();
            }
            s
        }
        DType::Q5_0 => {
            let (wb, ab) = (blocks::<BlockQ5_0>(wr, nb), blocks::<BlockQ8_0>(a, nb));
            let mut s = 0f32;
            for (x, y) in wb.iter().zip(ab) {
                let sumi: i32 = (0..QK).map(|i| (x.q(i) as i32 - 16) * y.qs[i] as i32).sum();
                s += sumi as f32 * (x.d() * y.d());
            }
            s
        }
        DType::Q5_1 => {
            let (wb, ab) = (blocks::<BlockQ5_1>(wr, nb), blocks::<BlockQ8_1>(a, nb));
            let mut s = 0f32;
            for (x, y) in wb.iter().zip(ab) {
                let sumi: i32 = (0..QK).map(|i| x.q(i) as i32 * y.qs[i] as i32).sum();
                s += sumi as f32 * (x.d() * y.d()) + x.m() * y.s();
            }
            s
        }
        DType::Q8_0 => {
            let (wb, ab) = (blocks::<BlockQ8_0>(wr, nb), blocks::<BlockQ8_0>(a, nb));
            let mut s = 0f32;
            for (x, y) in wb.iter().zip(ab) {
                let sumi: i32 = (0..QK).map(|i| x.qs[i] as i32 * y.qs[i] as i32).sum();
                s += sumi as f32 * (x.d() * y.d());
            }
            s
        }
        DType::Q4_K | DType::Q5_K => {
            let ab = blocks::<BlockQ8K>(a, nb);
            let mut s = 0f32;
            for (i, y) in ab.iter().enumerate() {
                let (q, scales, d, dmin) = if w == DType::Q4_K {
                    let x = &blocks::<BlockQ4K>(wr, nb)[i];
                    (q4k_unpack(x), x.scales, x.d(), x.dmin())
                } else {
                    let x = &blocks::<BlockQ5K>(wr, nb)[i];
                    (q5k_unpack(x), x.scales, x.d(), x.dmin())
                };
                let (sc, m) = unpack_k_scales(&scales);
                let mut sumi = 0i32;
                let mut summ = 0i32;
                for j in 0..8 {
                    let p: i32 = (0..32)
                        .map(|l| q[32 * j + l] as i32 * y.qs[32 * j + l] as i32)
                        .sum();
                    sumi += sc[j] as i32 * p;
                    summ += m[j] as i32 * (y.bsum(2 * j) as i32 + y.bsum(2 * j + 1) as i32);
                }
                s += y.d() * d * sumi as f32 - y.d() * dmin * summ as f32;
            }
            s
        }
        DType::Q6_K => {
            let (wb, ab) = (blocks::<BlockQ6K>(wr, nb), blocks::<BlockQ8K>(a, nb));
            let mut s = 0f32;
            for (x, y) in wb.iter().zip(ab) {
                let q = q6k_unpack(x);
                let mut sumi = 0i32;
                for g in 0..16 {
                    let p: i32 = (0..16)
                        .map(|l| q[16 * g + l] as i32 * y.qs[16 * g + l] as i32)
                        .sum();
                    sumi += x.scales[g] as i32 * p;
                }
                s += y.d() * x.d() * sumi as f32;
            }
            s
        }
        other => panic!(
            "dot: weight type {other} is not executed; executed: {}",
            alc_core::executed_type_list()
        ),
    }
}
