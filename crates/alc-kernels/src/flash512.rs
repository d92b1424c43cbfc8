//! Prompt attention with AVX-512F: the queries of a task in the vector lanes.
//!
//! The same tasks as [`crate::flash`] (the query heads of one KV head over a run of
//! tokens, [`crate::flash::tokens_per_task`]) and the same f32 flash-attention
//! recurrence over the f16 cache, with the query rounded to f16 first; but the
//! task's queries are transposed once (`qt[c][i]`, query i of the task in lane
//! i % 16 of vector i / 16), so that every step works on 16 queries at once and
//! nothing is reduced across lanes:
//! - scores: `s[b][i] = Σ_c qt[c][i] · k_b[c]`, a broadcast key element times a
//!   query vector, 2 query vectors × 8 keys in 16 accumulators;
//! - online softmax per lane: the block's max is an elementwise max over its
//!   [`BLOCK`] score vectors, one vector exp per key and 16 queries, the running
//!   max, sum and rescale factor are vectors;
//! - values: `ot[c][i] = ot[c][i] · corr[i] + Σ_b p[b][i] · v_b[c]`, 2 query vectors
//!   × 8 dimensions in 16 accumulators over the block's keys.
//!
//! Keys and values of a block are widened from f16 once for all the task's queries.
//! Masked keys (causal, sliding window, past the last key) get −∞ per lane, so no
//! block needs special handling. Measured on Zen 5 (2 threads): see BENCHMARKS.md,
//! "eighth session".

use crate::{reference::first_visible, AttnShape, SyncPtr};
use half::f16;
use std::arch::x86_64::*;

/// Keys per block: one online-softmax step (max, rescale of the accumulators) per
/// this many keys.
pub(crate) const BLOCK: usize = 16;

/// Queries per vector.
const LANES: usize = 16;

/// Keys per score micro-kernel pass (accumulators per query vector).
const KEYS: usize = 8;

/// Dimensions per value micro-kernel pass (accumulators per query vector).
const DIMS: usize = 8;

/// f32 scratch one task of `n_queries` queries needs: the transposed queries and
/// accumulators, a block of widened keys and values, the block's scores, and per
/// query lane the running max, sum, rescale factor, position and first visible key.
pub(crate) fn scratch_floats(head_dim: usize, n_queries: usize) -> usize {
    let nqp = n_queries.div_ceil(LANES) * LANES;
    2 * head_dim * nqp + 2 * BLOCK * head_dim + BLOCK * nqp + 5 * nqp
}

/// Whether this CPU runs [`task`] (AVX-512F beside the AVX2 + FMA + F16C that
/// [`crate::flash`] needs).
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// exp of 16 lanes: `cpu::simd::exp_f32`'s arithmetic (Cephes, degree 5; 0 below
/// −87, so exp(−∞) = 0).
#[inline(always)]
pub(crate) unsafe fn exp16(x: __m512) -> __m512 {
    use crate::cpu::simd::{EXP_MAX, EXP_MIN, EXP_P, LN2_HI, LN2_LO, LOG2E};
    unsafe {
        let keep = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_set1_ps(EXP_MIN));
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(EXP_MIN)),
            _mm512_set1_ps(EXP_MAX),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let z = _mm512_mul_ps(r, r);
        let mut y = _mm512_set1_ps(EXP_P[0]);
        for &c in &EXP_P[1..] {
            y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(c));
        }
        let y = _mm512_add_ps(_mm512_fmadd_ps(y, z, r), _mm512_set1_ps(1.0));
        let pow2 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(n),
            _mm512_set1_epi32(127),
        )));
        _mm512_maskz_mov_ps(keep, _mm512_mul_ps(y, pow2))
    }
}

/// Mask of the first `n` of 16 lanes.
#[inline(always)]
fn lanes_below(n: usize) -> __mmask16 {
    if n >= LANES {
        u16::MAX
    } else {
        (1u16 << n) - 1
    }
}

/// Scores of query vectors `o..o + NV·16` (lane offsets into the `nqp`-wide rows)
/// against the block's keys: `pw[b·nqp + lane] = scale · qt[·][lane] · k_b`, −∞
/// where key `j + b` is hidden from the lane's query (past its position `pp`, or
/// before its first visible key `jp`).
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)] // register tiles
unsafe fn scores<const NV: usize>(
    qt: *const f32,
    kf: *const f32,
    pw: *mut f32,
    pp: *const f32,
    jp: *const f32,
    nqp: usize,
    hd: usize,
    o: usize,
    j: usize,
    scale: f32,
) {
    unsafe {
        let pos: [__m512; NV] = std::array::from_fn(|u| _mm512_loadu_ps(pp.add(o + u * LANES)));
        let j0: [__m512; NV] = std::array::from_fn(|u| _mm512_loadu_ps(jp.add(o + u * LANES)));
        for kb in (0..BLOCK).step_by(KEYS) {
            let mut acc = [[_mm512_setzero_ps(); KEYS]; NV];
            let kp = kf.add(kb * hd);
            for c in 0..hd {
                let qv: [__m512; NV] =
                    std::array::from_fn(|u| _mm512_loadu_ps(qt.add(c * nqp + o + u * LANES)));
                for b in 0..KEYS {
                    let kv = _mm512_set1_ps(*kp.add(b * hd + c));
                    for u in 0..NV {
                        acc[u][b] = _mm512_fmadd_ps(qv[u], kv, acc[u][b]);
                    }
                }
            }
            for b in 0..KEYS {
                let key = _mm512_set1_ps((j + kb + b) as f32);
                for u in 0..NV {
                    let hidden = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(key, pos[u])
                        | _mm512_cmp_ps_mask::<_CMP_LT_OQ>(key, j0[u]);
                    let sc = _mm512_mask_mov_ps(
                        _mm512_mul_ps(acc[u][b], _mm512_set1_ps(scale)),
                        hidden,
                        _mm512_set1_ps(f32::NEG_INFINITY),
                    );
                    _mm512_storeu_ps(pw.add((kb + b) * nqp + o + u * LANES), sc);
                }
            }
        }
    }
}

/// `ot[c·nqp + lane] = ot · corr[lane] + Σ_b pw[b·nqp + lane] · vf[b·hd + c]` for the
/// query vectors `o..o + NV·16`, 8 dimensions at a time.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // register tiles
unsafe fn values<const NV: usize>(
    ot: *mut f32,
    vf: *const f32,
    pw: *const f32,
    cw: *const f32,
    nqp: usize,
    hd: usize,
    o: usize,
) {
    unsafe {
        let corr: [__m512; NV] = std::array::from_fn(|u| _mm512_loadu_ps(cw.add(o + u * LANES)));
        for c0 in (0..hd).step_by(DIMS) {
            let mut acc: [[__m512; DIMS]; NV] = std::array::from_fn(|u| {
                std::array::from_fn(|d| {
                    _mm512_mul_ps(
                        _mm512_loadu_ps(ot.add((c0 + d) * nqp + o + u * LANES)),
                        corr[u],
                    )
                })
            });
            for b in 0..BLOCK {
                let p: [__m512; NV] =
                    std::array::from_fn(|u| _mm512_loadu_ps(pw.add(b * nqp + o + u * LANES)));
                let vp = vf.add(b * hd + c0);
                for d in 0..DIMS {
                    let vv = _mm512_set1_ps(*vp.add(d));
                    for u in 0..NV {
                        acc[u][d] = _mm512_fmadd_ps(p[u], vv, acc[u][d]);
                    }
                }
            }
            for (u, a) in acc.iter().enumerate() {
                for (d, x) in a.iter().enumerate() {
                    _mm512_storeu_ps(ot.add((c0 + d) * nqp + o + u * LANES), *x);
                }
            }
        }
    }
}

/// Attention of the query heads of KV head `kvh` for tokens `t0..t1`, written to
/// `out` (layout of q). Same contract as [`crate::flash::task`].
///
/// # Safety
/// AVX-512F, AVX2, FMA and F16C must be available ([`available`]);
/// [`crate::flash::handles`]`(s)`; `q`, `k`, `v` cover the shape (rows
/// `0..s.pos0 + t1` of the cache); `scratch` holds [`scratch_floats`]`(hd, (t1 −
/// t0) · group)` floats; the task owns its rows of `out`.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn task(
    q: &[f32],
    k: &[f16],
    v: &[f16],
    s: &AttnShape,
    kvh: usize,
    t0: usize,
    t1: usize,
    scratch: &mut [f32],
    out: SyncPtr<f32>,
) {
    let hd = s.head_dim;
    let g = s.n_head / s.n_kv_head;
    let nq = (t1 - t0) * g;
    let nv = nq.div_ceil(LANES);
    let nqp = nv * LANES;
    let row = s.n_kv_head * hd;
    assert!(hd.is_multiple_of(DIMS) && nq > 0);
    assert!(scratch.len() >= scratch_floats(hd, nq));
    assert!(q.len() >= t1 * s.n_head * hd);
    let last = s.pos0 + t1 - 1; // last visible key of the task
    assert!(k.len() >= (last + 1) * row && v.len() >= (last + 1) * row);
    let (qt, rest) = scratch.split_at_mut(hd * nqp);
    let (ot, rest) = rest.split_at_mut(hd * nqp);
    let (kf, rest) = rest.split_at_mut(BLOCK * hd);
    let (vf, rest) = rest.split_at_mut(BLOCK * hd);
    let (pw, rest) = rest.split_at_mut(BLOCK * nqp);
    let (mx, rest) = rest.split_at_mut(nqp);
    let (sm, rest) = rest.split_at_mut(nqp);
    let (cw, rest) = rest.split_at_mut(nqp);
    let (pp, rest) = rest.split_at_mut(nqp);
    let jp = &mut rest[..nqp];
    // Lane i = (t − t0) · g + (h − kvh · g): its query rounded to f16 and back (as
    // llama.cpp feeds its f16 dot), gathered 16 lanes at a time, its position and
    // first visible key (exact in f32 below 2^24). Padding lanes copy the last
    // query's position over a zero query; their results are not written.
    let base = t0 * s.n_head * hd; // q and out offsets below are relative to it
    let mut idx = [0i32; LANES];
    for o in (0..nqp).step_by(LANES) {
        for (l, x) in idx.iter_mut().enumerate() {
            let i = (o + l).min(nq - 1);
            let (t, h) = (i / g, kvh * g + i % g);
            *x = ((t * s.n_head + h) * hd) as i32;
            let p = s.pos0 + t0 + t;
            pp[o + l] = p as f32;
            jp[o + l] = first_visible(p, s.window) as f32;
        }
        let valid = lanes_below(nq - o);
        // SAFETY: every index is a query row of this task, in q (asserted);
        // AVX-512F and F16C are enabled on this function.
        unsafe {
            let vi = _mm512_loadu_si512(idx.as_ptr().cast());
            let qb = q.as_ptr().add(base);
            for c in 0..hd {
                let x = _mm512_i32gather_ps::<4>(vi, qb.add(c));
                let x = _mm512_cvtph_ps(_mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x));
                _mm512_storeu_ps(
                    qt.as_mut_ptr().add(c * nqp + o),
                    _mm512_maskz_mov_ps(valid, x),
                );
            }
        }
    }
    ot.fill(0.0);
    mx.fill(f32::NEG_INFINITY);
    sm.fill(0.0);
    let first = first_visible(s.pos0 + t0, s.window);
    let kbase = kvh * hd;
    // SAFETY (whole block): pointers below stay inside the slices sized and
    // asserted above; the features are enabled on this function.
    unsafe {
        let mut j = first / BLOCK * BLOCK;
        while j <= last {
            crate::flash::widen_block((k, v), j, last, (row, kbase, hd), BLOCK, kf, vf);
            let (qp, kp, wp) = (qt.as_ptr(), kf.as_ptr(), pw.as_mut_ptr());
            let (ppp, jpp) = (pp.as_ptr(), jp.as_ptr());
            let mut o = 0;
            while o + 2 * LANES <= nqp {
                scores::<2>(qp, kp, wp, ppp, jpp, nqp, hd, o, j, s.scale);
                o += 2 * LANES;
            }
            if o < nqp {
                scores::<1>(qp, kp, wp, ppp, jpp, nqp, hd, o, j, s.scale);
            }
            // Online softmax, 16 lanes at a time. A lane that has seen only hidden
            // keys so far keeps max −∞; it subtracts 0 instead, so its weights
            // and rescale factor are exp(−∞) = 0, never NaN.
            for o in (0..nqp).step_by(LANES) {
                let m_old = _mm512_loadu_ps(mx.as_ptr().add(o));
                let mut m = m_old;
                for b in 0..BLOCK {
                    m = _mm512_max_ps(m, _mm512_loadu_ps(pw.as_ptr().add(b * nqp + o)));
                }
                let none = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(m, _mm512_set1_ps(f32::NEG_INFINITY));
                let sub = _mm512_mask_mov_ps(m, none, _mm512_setzero_ps());
                let corr = exp16(_mm512_sub_ps(m_old, sub));
                let mut sum = _mm512_setzero_ps();
                for b in 0..BLOCK {
                    let at = pw.as_mut_ptr().add(b * nqp + o);
                    let p = exp16(_mm512_sub_ps(_mm512_loadu_ps(at), sub));
                    _mm512_storeu_ps(at, p);
                    sum = _mm512_add_ps(sum, p);
                }
                let l = _mm512_loadu_ps(sm.as_ptr().add(o));
                _mm512_storeu_ps(sm.as_mut_ptr().add(o), _mm512_fmadd_ps(l, corr, sum));
                _mm512_storeu_ps(mx.as_mut_ptr().add(o), m);
                _mm512_storeu_ps(cw.as_mut_ptr().add(o), corr);
            }
            let (op, vp, wp, cp) = (ot.as_mut_ptr(), vf.as_ptr(), pw.as_ptr(), cw.as_ptr());
            let mut o = 0;
            while o + 2 * LANES <= nqp {
                values::<2>(op, vp, wp, cp, nqp, hd, o);
                o += 2 * LANES;
            }
            if o < nqp {
                values::<1>(op, vp, wp, cp, nqp, hd, o);
            }
            j += BLOCK;
        }
    }
    for i in 0..nq {
        let (t, h) = (t0 + i / g, kvh * g + i % g);
        // SAFETY: (t, h) belongs to this task.
        let o = unsafe { out.slice((t * s.n_head + h) * hd, hd) };
        let inv = 1.0 / sm[i];
        for (c, d) in o.iter_mut().enumerate() {
            *d = ot[c * nqp + i] * inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::simd::exp_f32;
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    /// `exp16` equals the scalar `exp_f32` lane for lane, bit for bit (the scalar's
    /// own accuracy is tested in cpu.rs), over the attention range, the cut-off
    /// and −∞.
    #[test]
    fn exp16_equals_scalar_exp() {
        if !available() {
            eprintln!("no AVX-512F here; skipped");
            return;
        }
        let mut rng = SmallRng::seed_from_u64(7);
        let mut xs: Vec<f32> = (0..20_000).map(|_| rng.gen_range(-90.0f32..0.5)).collect();
        xs.extend([
            0.0,
            -0.0,
            -1e-30,
            -86.99,
            -87.0,
            -87.01,
            -100.0,
            f32::NEG_INFINITY,
            88.0,
        ]);
        for c in xs.chunks(LANES) {
            let mut lanes = [0f32; LANES];
            lanes[..c.len()].copy_from_slice(c);
            let mut got = [0f32; LANES];
            // SAFETY: AVX-512F checked above; 16 floats each side.
            unsafe { store16(got.as_mut_ptr(), lanes.as_ptr()) };
            for (x, g) in lanes.iter().zip(got) {
                let want = exp_f32(*x);
                assert_eq!(
                    g.to_bits(),
                    want.to_bits(),
                    "exp({x}): vector {g} scalar {want}"
                );
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn store16(dst: *mut f32, src: *const f32) {
        // SAFETY: the caller's contract.
        unsafe { _mm512_storeu_ps(dst, exp16(_mm512_loadu_ps(src))) }
    }
}
