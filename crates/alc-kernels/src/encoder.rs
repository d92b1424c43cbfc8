//! Encoder (BERT) ops: layer norm with a residual, bias + erf GELU, and
//! bidirectional attention within each sentence of a batch stacked as rows.
//!
//! Each op has a scalar reference (`*_ref`, f64 accumulation where it matters: the
//! truth the conformance tests compare against) and a fast form (f32 arithmetic
//! written so that the compiler vectorises it under AVX2 + FMA) that the CPU
//! backend runs over its thread pool.

use crate::pool::{n_chunks, split_range, ThreadPool};
use crate::{gemm, SyncPtr};

/// Abramowitz & Stegun 7.1.26: erf(x) ≈ 1 − t·(a1 + t·(a2 + … + t·a5))·e^(−x²),
/// t = 1 / (1 + p·x), for x ≥ 0.
const AS_P: f64 = 0.327_591_1;
const AS_A: [f64; 5] = [
    0.254_829_592,
    -0.284_496_736,
    1.421_413_741,
    -1.453_152_027,
    1.061_405_429,
];

/// erf(x), Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), in f64.
#[inline]
pub fn erf_ref(x: f32) -> f32 {
    let s = x.signum();
    let a = x.abs() as f64;
    let t = 1.0 / (1.0 + AS_P * a);
    let poly = t * AS_A.iter().rev().fold(0.0, |acc, &c| acc * t + c);
    (s as f64 * (1.0 - poly * (-a * a).exp())) as f32
}

/// GELU with erf (BERT's "gelu"), reference arithmetic.
#[inline]
pub fn gelu_erf_ref(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_ref(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// exp(x) for x ≤ 0 in f32 without branches (Cody–Waite reduction and a degree-6
/// polynomial; relative error about 2e-7; inputs below −87 give ~0).
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.max(-87.0);
    let n = (x * LOG2E).round_ties_even();
    let r = (-n).mul_add(LN2_HI, x);
    let r = (-n).mul_add(LN2_LO, r);
    // e^r on |r| ≤ ln2/2: Taylor terms to r^7.
    let mut p = 1.0 / 5040.0f32;
    p = p.mul_add(r, 1.0 / 720.0);
    p = p.mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// GELU with erf in f32 arithmetic (A&S 7.1.26 with the branch-free exp): within
/// 3e-7 absolute of [`gelu_erf_ref`] over |x| ≤ 10 (checked in the tests).
#[inline(always)]
pub fn gelu_erf_fast(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    let t = 1.0 / (AS_P as f32).mul_add(a, 1.0);
    let mut p = AS_A[4] as f32;
    p = p.mul_add(t, AS_A[3] as f32);
    p = p.mul_add(t, AS_A[2] as f32);
    p = p.mul_add(t, AS_A[1] as f32);
    p = p.mul_add(t, AS_A[0] as f32);
    p *= t;
    let e = 1.0 - p * exp_neg(-a * a);
    let erf = if z < 0.0 { -e } else { e };
    0.5 * x * (1.0 + erf)
}

/// Reference: `x[t] += bias` then GELU, over rows of `bias.len()`.
pub fn bias_gelu_ref(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = gelu_erf_ref(*v + b);
        }
    }
}

/// Reference: `x = GELU_tanh(x + bias)` per row of `bias.len()`, PyTorch's
/// `gelu(approximate="tanh")` (SigLIP's `gelu_pytorch_tanh`), in f64.
pub fn bias_gelu_tanh_ref(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            let a = (*v + b) as f64;
            let u = (2.0 / std::f64::consts::PI).sqrt() * (a + 0.044_715 * a * a * a);
            *v = (0.5 * a * (1.0 + u.tanh())) as f32;
        }
    }
}

/// GELU (tanh form) in f32 without branches: `0.5a(1 + tanh u) = a·σ(2u)`, with
/// `σ(2u) = 1/(1 + e)` for u ≥ 0 and `e/(1 + e)` below, `e = exp(−2|u|)` from
/// [`exp_neg`].
#[inline(always)]
pub fn gelu_tanh_fast(a: f32) -> f32 {
    const K: f32 = 0.797_884_6;
    let u = K * a * (1.0 + 0.044_715 * a * a);
    let e = exp_neg(-2.0 * u.abs());
    let s = 1.0 / (1.0 + e);
    a * if u >= 0.0 { s } else { e * s }
}

/// `x = act(x + bias)` per row of `bias.len()`; `act` is inlined (the GELU forms
/// are branchless and vectorise under AVX2 + FMA).
#[inline(always)]
fn bias_act_rows_body<F: Fn(f32) -> f32>(x: &mut [f32], bias: &[f32], act: F) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = act(*v + b);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bias_act_rows_avx2<F: Fn(f32) -> f32>(x: &mut [f32], bias: &[f32], act: F) {
    bias_act_rows_body(x, bias, act)
}

fn bias_act_rows<F: Fn(f32) -> f32>(x: &mut [f32], bias: &[f32], simd: bool, act: F) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is set only when AVX2 and FMA were detected.
        return unsafe { bias_act_rows_avx2(x, bias, act) };
    }
    let _ = simd;
    bias_act_rows_body(x, bias, act)
}

/// Reference: `x = LN(x + r + rb) · w + b` per row of `w.len()` (`r`, `rb` optional:
/// the residual branch and its bias), mean and variance in f64.
pub fn add_layer_norm_ref(
    x: &mut [f32],
    r: Option<(&[f32], &[f32])>,
    w: &[f32],
    b: &[f32],
    eps: f32,
) {
    let d = w.len();
    for (t, row) in x.chunks_exact_mut(d).enumerate() {
        if let Some((r, rb)) = r {
            for ((v, &a), &c) in row.iter_mut().zip(&r[t * d..(t + 1) * d]).zip(rb) {
                *v += a + c;
            }
        }
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row
            .iter()
            .map(|&v| {
                let c = v as f64 - mean;
                c * c
            })
            .sum::<f64>()
            / d as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for ((v, &g), &bb) in row.iter_mut().zip(w).zip(b) {
            *v = ((*v as f64 - mean) * inv) as f32 * g + bb;
        }
    }
}

/// One row of [`add_layer_norm_ref`] in f32 arithmetic with 8 partial sums.
#[inline(always)]
fn add_layer_norm_row(
    row: &mut [f32],
    r: Option<(&[f32], &[f32])>,
    w: &[f32],
    b: &[f32],
    eps: f32,
) {
    if let Some((r, rb)) = r {
        for ((v, &a), &c) in row.iter_mut().zip(r).zip(rb) {
            *v += a + c;
        }
    }
    let d = row.len();
    let mut s = [0f32; 8];
    for c in row.chunks(8) {
        for (a, &v) in s.iter_mut().zip(c) {
            *a += v;
        }
    }
    let mean = s.iter().sum::<f32>() / d as f32;
    let mut q = [0f32; 8];
    for c in row.chunks(8) {
        for (a, &v) in q.iter_mut().zip(c) {
            let e = v - mean;
            *a = e.mul_add(e, *a);
        }
    }
    let inv = 1.0 / (q.iter().sum::<f32>() / d as f32 + eps).sqrt();
    for ((v, &g), &bb) in row.iter_mut().zip(w).zip(b) {
        *v = ((*v - mean) * inv).mul_add(g, bb);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_layer_norm_row_avx2(
    row: &mut [f32],
    r: Option<(&[f32], &[f32])>,
    w: &[f32],
    b: &[f32],
    eps: f32,
) {
    add_layer_norm_row(row, r, w, b, eps)
}

fn add_layer_norm_row_dispatch(
    row: &mut [f32],
    r: Option<(&[f32], &[f32])>,
    w: &[f32],
    b: &[f32],
    eps: f32,
    simd: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is set only when AVX2 and FMA were detected.
        return unsafe { add_layer_norm_row_avx2(row, r, w, b, eps) };
    }
    let _ = simd;
    add_layer_norm_row(row, r, w, b, eps)
}

/// Shape of one bidirectional attention call over sentences stacked as rows.
#[derive(Clone, Copy, Debug)]
pub struct SegAttn<'a> {
    /// Token count of each sentence, in row order (they sum to the rows of q/k/v).
    pub lens: &'a [usize],
    pub n_head: usize,
    pub head_dim: usize,
    pub scale: f32,
}

/// Reference: per sentence and head, softmax(q·kᵀ · scale) · v over that sentence's
/// tokens only. q, k, v and out are `[rows][n_head · head_dim]`.
pub fn attention_segments_ref(q: &[f32], k: &[f32], v: &[f32], s: &SegAttn, out: &mut [f32]) {
    let d = s.n_head * s.head_dim;
    let mut start = 0;
    for &len in s.lens {
        for h in 0..s.n_head {
            let off = h * s.head_dim;
            for i in 0..len {
                let qi = &q[(start + i) * d + off..][..s.head_dim];
                let scores: Vec<f64> = (0..len)
                    .map(|j| {
                        let kj = &k[(start + j) * d + off..][..s.head_dim];
                        qi.iter()
                            .zip(kj)
                            .map(|(&a, &b)| a as f64 * b as f64)
                            .sum::<f64>()
                            * s.scale as f64
                    })
                    .collect();
                let mx = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|&x| (x - mx).exp()).collect();
                let sum: f64 = e.iter().sum();
                let o = &mut out[(start + i) * d + off..][..s.head_dim];
                for (c, oc) in o.iter_mut().enumerate() {
                    *oc = (0..len)
                        .map(|j| e[j] / sum * v[(start + j) * d + off + c] as f64)
                        .sum::<f64>() as f32;
                }
            }
        }
        start += len;
    }
}

/// One (sentence, head) task of [`attention_segments`]: rows `start..start + len`,
/// head columns `off..off + hd` of rows `d` wide.
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    d: usize,
    hd: usize,
    start: usize,
    len: usize,
    off: usize,
    scale: f32,
}

/// One (sentence, head) of the attention in f32. `scratch` holds `len × (hd + 1)`
/// floats: the head's keys transposed (`kt[c][j]`, so that a query's scores against
/// all keys are `hd` contiguous multiply-adds over `len` lanes, with no horizontal
/// sums) and the scores.
#[inline(always)]
fn attend_head(h: &Head, scratch: &mut [f32], out: SyncPtr<f32>) {
    let Head {
        q,
        k,
        v,
        d,
        hd,
        start,
        len,
        off,
        scale,
    } = *h;
    let (kt, scores) = scratch[..len * (hd + 1)].split_at_mut(len * hd);
    for j in 0..len {
        let kj = &k[(start + j) * d + off..][..hd];
        for (c, &x) in kj.iter().enumerate() {
            kt[c * len + j] = x;
        }
    }
    for i in 0..len {
        let qi = &q[(start + i) * d + off..][..hd];
        scores.fill(0.0);
        for (c, &x) in qi.iter().enumerate() {
            let qc = x * scale;
            for (sc, &kv) in scores.iter_mut().zip(&kt[c * len..(c + 1) * len]) {
                *sc = qc.mul_add(kv, *sc);
            }
        }
        let mx = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for sc in scores.iter_mut() {
            *sc = exp_neg(*sc - mx);
            sum += *sc;
        }
        let inv = 1.0 / sum;
        // SAFETY: rows start..start+len of head `off` belong to this task only.
        let o = unsafe { out.slice((start + i) * d + off, hd) };
        o.fill(0.0);
        for (j, &w) in scores.iter().enumerate() {
            let vj = &v[(start + j) * d + off..][..hd];
            let w = w * inv;
            for (a, &b) in o.iter_mut().zip(vj) {
                *a = w.mul_add(b, *a);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_head_avx2(h: &Head, scratch: &mut [f32], out: SyncPtr<f32>) {
    attend_head(h, scratch, out)
}

/// Segments at least this long run [`attend_head_gemm`]: the per-query loop of
/// [`attend_head`] streams every key once per query, which is fine for sentences
/// but leaves a 1,024-patch image tile memory-bound.
pub const GEMM_MIN_LEN: usize = 96;

/// Queries per block in [`attend_head_gemm`] (a multiple of the GEMM's `MR`): the
/// block's scores, `QB × len` floats, stay in L2 next to the packed keys and values.
const QB: usize = 48;

/// Floats of scratch [`attend_head_gemm`] needs for a segment of `len` rows: packed
/// keys, packed values, and one block of scores.
fn gemm_scratch(len: usize, hd: usize) -> usize {
    gemm::packed_len(hd, len) + gemm::packed_len(len, hd) + QB * len
}

/// Floats of per-thread scratch [`attention_segments`] takes for segments of at most
/// `len` rows and heads of `hd` (memory estimates count it).
pub fn attention_scratch_floats(len: usize, hd: usize) -> usize {
    if len >= GEMM_MIN_LEN {
        gemm_scratch(len, hd)
    } else {
        len * (hd + 1)
    }
}

/// `f32`s as the little-endian bytes a `BSrc::Rows` of F32 reads.
fn f32_bytes(x: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8; the slice
    // covers exactly the same memory (alignment 1 ≤ 4). The GEMM reads
    // little-endian f32, which is the in-memory form on the targets we build for.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<u8>(), std::mem::size_of_val(x)) }
}

/// softmax(scale · row) for each row of `len` scores (scale > 0).
#[inline(always)]
fn softmax_rows(sc: &mut [f32], len: usize, scale: f32) {
    for row in sc.chunks_exact_mut(len) {
        let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for x in row.iter_mut() {
            *x = exp_neg((*x - mx) * scale);
            sum += *x;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|x| *x *= inv);
    }
}

/// [`softmax_rows`] in AVX2 + FMA: vector max, the vector `exp` of the attention
/// kernels (relative error ~1e-7, as [`exp_neg`]), vector sum; the tail scalar.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_avx2(sc: &mut [f32], len: usize, scale: f32) {
    use crate::cpu::simd::x86::{exp8, hsum};
    use std::arch::x86_64::*;
    let v = len / 8 * 8;
    for row in sc.chunks_exact_mut(len) {
        let p = row.as_mut_ptr();
        // SAFETY (the loads and stores below): p..p+v is inside `row`.
        unsafe {
            let mut m8 = _mm256_set1_ps(f32::NEG_INFINITY);
            for j in (0..v).step_by(8) {
                m8 = _mm256_max_ps(m8, _mm256_loadu_ps(p.add(j)));
            }
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), m8);
            let mx = lanes
                .iter()
                .chain(&row[v..])
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            let (s8, mx8) = (_mm256_set1_ps(scale), _mm256_set1_ps(mx));
            let mut sum8 = _mm256_setzero_ps();
            for j in (0..v).step_by(8) {
                let e = exp8(_mm256_mul_ps(
                    _mm256_sub_ps(_mm256_loadu_ps(p.add(j)), mx8),
                    s8,
                ));
                _mm256_storeu_ps(p.add(j), e);
                sum8 = _mm256_add_ps(sum8, e);
            }
            let mut sum = hsum(sum8);
            for x in row[v..].iter_mut() {
                *x = exp_neg((*x - mx) * scale);
                sum += *x;
            }
            let inv = _mm256_set1_ps(1.0 / sum);
            for j in (0..v).step_by(8) {
                _mm256_storeu_ps(p.add(j), _mm256_mul_ps(_mm256_loadu_ps(p.add(j)), inv));
            }
            row[v..].iter_mut().for_each(|x| *x *= 1.0 / sum);
        }
    }
}

/// One (segment, head) as two blocked GEMMs ([`crate::gemm`]): the head's keys and
/// values are packed once, then per block of [`QB`] queries scores = q·Kᵀ, a softmax
/// per query (scale applied inside the exponent), and out = P·V written straight
/// into the output rows.
fn attend_head_gemm(simd: bool, h: &Head, scratch: &mut [f32], out: SyncPtr<f32>) {
    let Head {
        q,
        k,
        v,
        d,
        hd,
        start,
        len,
        off,
        scale,
    } = *h;
    let (kp, rest) = scratch[..gemm_scratch(len, hd)].split_at_mut(gemm::packed_len(hd, len));
    let (vp, sc) = rest.split_at_mut(gemm::packed_len(len, hd));
    // Column j of the score GEMM is key j: rows of the head's slice of k.
    let keys = gemm::BSrc::Rows {
        dtype: alc_core::DType::F32,
        data: f32_bytes(&k[start * d + off..(start + len - 1) * d + off + hd]),
        stride: d * 4,
    };
    gemm::pack_b(simd, keys, 0, hd, 0, len, kp);
    let values = gemm::BSrc::KMajor {
        data: &v[start * d + off..(start + len - 1) * d + off + hd],
        ld: d,
    };
    gemm::pack_b(simd, values, 0, len, 0, hd, vp);
    let mut i0 = 0;
    while i0 < len {
        let m = (len - i0).min(QB);
        let qa = q[(start + i0) * d + off..].as_ptr();
        // SAFETY: m query rows of hd floats, d apart, lie inside q; sc holds m rows
        // of len; kp is the packed hd × len block.
        unsafe { gemm::gemm_packed(simd, qa, d, m, kp, hd, len, sc.as_mut_ptr(), len, false) };
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: `simd` is set only when AVX2 and FMA were detected.
            unsafe { softmax_rows_avx2(&mut sc[..m * len], len, scale) };
        } else {
            softmax_rows(&mut sc[..m * len], len, scale);
        }
        #[cfg(not(target_arch = "x86_64"))]
        softmax_rows(&mut sc[..m * len], len, scale);
        // SAFETY: the output rows start+i0.. (columns off..off+hd) belong to this
        // task only; sc holds m rows of len probabilities; vp is len × hd packed.
        unsafe {
            let o = out.0.add((start + i0) * d + off);
            gemm::gemm_packed(simd, sc.as_ptr(), len, m, vp, len, hd, o, d, false);
        }
        i0 += m;
    }
}

/// Below this many rows the elementwise ops stay on the calling thread.
const PAR_MIN_ROWS: usize = 4;
const CHUNKS_PER_THREAD: usize = 4;

/// [`bias_gelu_ref`] over the pool.
pub fn bias_gelu(pool: &ThreadPool, simd: bool, x: &mut [f32], bias: &[f32]) {
    bias_act(pool, simd, x, bias, gelu_erf_fast)
}

/// [`bias_gelu_tanh_ref`] over the pool.
pub fn bias_gelu_tanh(pool: &ThreadPool, simd: bool, x: &mut [f32], bias: &[f32]) {
    bias_act(pool, simd, x, bias, gelu_tanh_fast)
}

/// `x = act(x + bias)` per row of `bias.len()`, rows split over the pool.
fn bias_act<F: Fn(f32) -> f32 + Copy + Sync>(
    pool: &ThreadPool,
    simd: bool,
    x: &mut [f32],
    bias: &[f32],
    act: F,
) {
    let d = bias.len();
    let n = x.len() / d;
    if n < PAR_MIN_ROWS {
        return bias_act_rows(x, bias, simd, act);
    }
    let xp = SyncPtr(x.as_mut_ptr());
    let chunks = n_chunks(n, pool.n_threads(), CHUNKS_PER_THREAD, 1);
    pool.run(chunks, |_, c| {
        let r = split_range(n, chunks, c);
        // SAFETY: rows r belong to this chunk only.
        bias_act_rows(
            unsafe { xp.slice(r.start * d, r.len() * d) },
            bias,
            simd,
            act,
        );
    });
}

/// [`add_layer_norm_ref`] over the pool.
pub fn add_layer_norm(
    pool: &ThreadPool,
    simd: bool,
    x: &mut [f32],
    r: Option<(&[f32], &[f32])>,
    w: &[f32],
    b: &[f32],
    eps: f32,
) {
    let d = w.len();
    let n = x.len() / d;
    let xp = SyncPtr(x.as_mut_ptr());
    let row = |t: usize| {
        // SAFETY: row t belongs to one chunk only.
        let xr = unsafe { xp.slice(t * d, d) };
        let rr = r.map(|(r, rb)| (&r[t * d..(t + 1) * d], rb));
        add_layer_norm_row_dispatch(xr, rr, w, b, eps, simd);
    };
    if n < PAR_MIN_ROWS {
        return (0..n).for_each(row);
    }
    let chunks = n_chunks(n, pool.n_threads(), CHUNKS_PER_THREAD, 1);
    pool.run(chunks, |_, c| split_range(n, chunks, c).for_each(row));
}

/// [`attention_segments_ref`] over the pool: one task per (sentence, head).
pub fn attention_segments(
    pool: &ThreadPool,
    simd: bool,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: &SegAttn,
    out: &mut [f32],
) {
    let (nh, hd) = (s.n_head, s.head_dim);
    let d = nh * hd;
    let starts: Vec<usize> = s
        .lens
        .iter()
        .scan(0, |acc, &l| {
            let st = *acc;
            *acc += l;
            Some(st)
        })
        .collect();
    let max_len = s.lens.iter().copied().max().unwrap_or(0);
    let op = SyncPtr(out.as_mut_ptr());
    let tasks = s.lens.len() * nh;
    // One scratch per pool thread (transposed keys + scores of the longest sentence,
    // or the GEMM form's buffers), allocated once per call rather than per task.
    let per = attention_scratch_floats(max_len, hd);
    let mut scratch = vec![0f32; per * pool.n_threads()];
    let sp = SyncPtr(scratch.as_mut_ptr());
    pool.run(tasks, |th, t| {
        let (seg, h) = (t / nh, t % nh);
        // SAFETY: thread `th` alone uses its slice of the scratch during this job.
        let scratch = unsafe { sp.slice(th * per, per) };
        let head = Head {
            q,
            k,
            v,
            d,
            hd,
            start: starts[seg],
            len: s.lens[seg],
            off: h * hd,
            scale: s.scale,
        };
        if head.len >= GEMM_MIN_LEN {
            return attend_head_gemm(simd, &head, scratch, op);
        }
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: `simd` is set only when AVX2 and FMA were detected.
            return unsafe { attend_head_avx2(&head, scratch, op) };
        }
        let _ = simd;
        attend_head(&head, scratch, op)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_gelu_matches_reference() {
        let mut worst = 0f32;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            let mut r = [x];
            bias_gelu_tanh_ref(&mut r, &[0.0]);
            let (got, want) = (gelu_tanh_fast(x), r[0]);
            worst = worst.max((got - want).abs() / want.abs().max(1e-3));
        }
        assert!(worst < 2e-6, "worst relative error {worst}");
        // Far tails: x for large positive, ~0 (not NaN) for large negative.
        assert_eq!(gelu_tanh_fast(100.0), 100.0);
        assert!(gelu_tanh_fast(-100.0).abs() < 1e-30);
    }

    #[test]
    fn fast_gelu_matches_reference() {
        let mut worst = 0f32;
        for i in -100_000..=100_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((gelu_erf_fast(x) - gelu_erf_ref(x)).abs());
        }
        assert!(worst < 3e-7, "worst {worst}");
        assert_eq!(gelu_erf_fast(-30.0), 0.0);
        assert_eq!(gelu_erf_fast(30.0), 30.0);
    }

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0f32, 0.0f64),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (-1.0, -0.842_700_792_9),
            (2.0, 0.995_322_265_0),
            (3.5, 0.999_999_256_9),
        ] {
            assert!((erf_ref(x) as f64 - want).abs() < 2e-7, "erf({x})");
        }
    }

    #[test]
    fn exp_neg_is_accurate() {
        for i in 0..=80_000 {
            let x = -(i as f32) * 1e-3;
            let (got, want) = (exp_neg(x) as f64, (x as f64).exp());
            assert!(
                (got - want).abs() <= 4e-7 * want + 1e-38,
                "exp({x}) {got} {want}"
            );
        }
    }
}
