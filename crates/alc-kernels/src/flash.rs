//! Prompt attention in tiles (x86-64 AVX2 + FMA + F16C).
//!
//! Decode and short prompts (under [`MIN_TOKENS`] tokens) run one query head at a
//! time over the keys (`cpu::attend_one_fast`; tried here with one token per task:
//! no faster at a depth of 2048, and only as many tasks as KV heads). A long
//! prompt has many queries per key, so here a task
//! is the query heads that share one KV head (the GQA group) over a few consecutive
//! tokens, and it walks the visible keys in blocks of [`BLOCK`]:
//! - the block's keys and values are converted from f16 to f32 once for all the
//!   task's queries;
//! - per query: 8 scores at once (8 dot products, reduced into one vector), the
//!   causal / sliding-window mask, and an online-softmax update with one vector exp;
//! - the f32 accumulator is rescaled and gets the 8 weighted values, with the 8
//!   weights held in registers.
//!
//! The arithmetic is the standard flash-attention recurrence in f32: the query is
//! rounded to f16 first as llama.cpp does, keys and values are the f16 cache, but the
//! accumulator is not rounded to f16 (closer to the exact result than llama.cpp; the
//! decode path does the same since the ninth session).
//! The conformance kit holds it to the scalar reference; against llama.cpp's logits
//! (tests/vs_llamacpp.rs, 512-token chunks, so this path) the agreement is the same
//! as with the emulated arithmetic (SmolLM2 mean KL 0.00236 vs 0.00253).
//! Measured at pp512 on the 2-core EPYC: attention 1.5× (SmolLM2, head size 64)
//! to 1.9× (Gemma-3, 256) faster than the emulated path.

#[cfg(target_arch = "x86_64")]
use crate::{reference::first_visible, AttnShape, SyncPtr};
#[cfg(target_arch = "x86_64")]
use half::f16;

/// Calls with fewer query tokens (decode, short prompts) keep llama.cpp's arithmetic
/// (`cpu::attend_one_fast`): tiles pay off when many queries share each key block,
/// and chat turns and decode stay operation-for-operation llama.cpp's.
#[cfg(target_arch = "x86_64")]
pub(crate) const MIN_TOKENS: usize = 64;

/// Keys per block.
pub(crate) const BLOCK: usize = 8;

/// Query tokens per task for a GQA group of `g` heads: about 64 queries share each
/// converted key and value block (its f16 → f32 widening and the block loop's
/// overhead). Was 16: measured on Zen 5, 2 threads, pp512, 64 gave SmolLM2 Q4_0
/// +21 % and Qwen2.5 +6.5 % over 16 (96 was no better and leaves fewer tasks to
/// share among threads).
pub(crate) fn tokens_per_task(g: usize) -> usize {
    (64 / g.max(1)).max(1)
}

/// f32 scratch one task needs: converted keys and values of a block, and per query
/// the rounded query, the accumulator, the running max and sum, the block's
/// weights and the rescale factor.
pub(crate) fn scratch_floats(head_dim: usize, n_queries: usize) -> usize {
    2 * BLOCK * head_dim + 2 * n_queries * head_dim + (3 + BLOCK) * n_queries
}

/// Whether [`task`] handles this shape (the caller also checks the CPU features).
#[cfg(target_arch = "x86_64")]
pub(crate) fn handles(s: &AttnShape) -> bool {
    s.n_tokens >= MIN_TOKENS
        && s.softcap.is_none()
        && s.head_dim.is_multiple_of(8)
        && s.head_dim > 0
        && s.n_kv_head > 0
        && s.n_head.is_multiple_of(s.n_kv_head)
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{task, widen_block};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::cpu::simd::x86::{exp8, hsum};
    use std::arch::x86_64::*;

    /// Sum of each of 8 vectors, as one vector (lane k = Σ lanes of `v[k]`).
    #[inline(always)]
    unsafe fn hsum8(v: &[__m256; 8]) -> __m256 {
        unsafe {
            join(
                hsum4(&[v[0], v[1], v[2], v[3]]),
                hsum4(&[v[4], v[5], v[6], v[7]]),
            )
        }
    }

    /// Half-reduced sums of 4 vectors: lanes [s0 s1 s2 s3 | s0' s1' s2' s3'] where
    /// s_k + s_k' = Σ lanes of `v[k]`; [`join`] finishes two of them.
    #[inline(always)]
    unsafe fn hsum4(v: &[__m256; 4]) -> __m256 {
        unsafe { _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3])) }
    }

    /// Two [`hsum4`] results (keys 0..4 and 4..8) as one vector of 8 sums.
    #[inline(always)]
    unsafe fn join(ab: __m256, cd: __m256) -> __m256 {
        unsafe {
            _mm256_add_ps(
                _mm256_permute2f128_ps::<0x20>(ab, cd),
                _mm256_permute2f128_ps::<0x31>(ab, cd),
            )
        }
    }

    #[inline(always)]
    unsafe fn hmax(v: __m256) -> f32 {
        unsafe {
            let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_movehdup_ps(m));
            _mm_cvtss_f32(m)
        }
    }

    /// f16 row → f32 (`n` a multiple of 8).
    #[inline(always)]
    unsafe fn widen(src: *const f16, dst: *mut f32, n: usize) {
        unsafe {
            for c in (0..n).step_by(8) {
                let h = _mm_loadu_si128(src.add(c) as *const __m128i);
                _mm256_storeu_ps(dst.add(c), _mm256_cvtph_ps(h));
            }
        }
    }

    /// Keys and values `j..j + block` (of the KV head at `kbase` in cache rows of
    /// `row` f16) widened to f32 into `kf` / `vf` (`block × hd` floats each); rows
    /// past `last` are zero (hidden keys: their scores are masked to −∞, and zero
    /// values keep 0 · v finite).
    ///
    /// # Safety
    /// F16C available; the cache holds rows `j..=last.min(j + block - 1)`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn widen_block(
        (k, v): (&[f16], &[f16]),
        j: usize,
        last: usize,
        (row, kbase, hd): (usize, usize, usize),
        block: usize,
        kf: &mut [f32],
        vf: &mut [f32],
    ) {
        let nk = (last + 1 - j).min(block);
        for b in 0..block {
            if b < nk {
                let off = (j + b) * row + kbase;
                debug_assert!(off + hd <= k.len() && off + hd <= v.len());
                // SAFETY: row j + b <= last is in the cache (the caller's
                // contract); kf and vf hold `block` rows of hd floats.
                unsafe {
                    widen(
                        k.as_ptr().add(off),
                        kf[b * hd..(b + 1) * hd].as_mut_ptr(),
                        hd,
                    );
                    widen(
                        v.as_ptr().add(off),
                        vf[b * hd..(b + 1) * hd].as_mut_ptr(),
                        hd,
                    );
                }
            } else {
                kf[b * hd..(b + 1) * hd].fill(0.0);
                vf[b * hd..(b + 1) * hd].fill(0.0);
            }
        }
    }

    /// One query's `acc[c..hd] = acc · corr + Σ_b w_b · v_b[c..hd]`, 8 dimensions at a
    /// time (`vf`: the block's BLOCK value rows of `hd` floats, `w`: ≥ BLOCK weights).
    #[inline(always)]
    unsafe fn value_tail(
        w: &[f32],
        corr: f32,
        vf: *const f32,
        acc: &mut [f32],
        c0: usize,
        hd: usize,
    ) {
        unsafe {
            let wb: [__m256; BLOCK] = std::array::from_fn(|b| _mm256_set1_ps(w[b]));
            let cv = _mm256_set1_ps(corr);
            let ap = acc.as_mut_ptr();
            let mut c = c0;
            while c + 8 <= hd {
                let mut o = _mm256_mul_ps(_mm256_loadu_ps(ap.add(c)), cv);
                for (b, wbb) in wb.iter().enumerate() {
                    o = _mm256_fmadd_ps(*wbb, _mm256_loadu_ps(vf.add(b * hd + c)), o);
                }
                _mm256_storeu_ps(ap.add(c), o);
                c += 8;
            }
        }
    }

    /// Attention of the query heads of KV head `kvh` for tokens `t0..t1`, written to
    /// `out` (layout of q).
    ///
    /// # Safety
    /// AVX2, FMA and F16C must be available; [`handles`]`(s)`; `q`, `k`, `v` cover
    /// the shape (rows `0..s.pos0 + t1` of the cache); `scratch` holds
    /// [`scratch_floats`]`(hd, (t1 - t0) · group)` floats; the task owns its rows
    /// of `out`.
    #[target_feature(enable = "avx2,fma,f16c")]
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
        let row = s.n_kv_head * hd;
        assert!(scratch.len() >= scratch_floats(hd, nq));
        assert!(q.len() >= t1 * s.n_head * hd);
        let last = s.pos0 + t1 - 1; // last visible key of the task
        assert!(k.len() >= (last + 1) * row && v.len() >= (last + 1) * row);
        let (kf, rest) = scratch.split_at_mut(BLOCK * hd);
        let (vf, rest) = rest.split_at_mut(BLOCK * hd);
        let (qf, rest) = rest.split_at_mut(nq * hd);
        let (acc, rest) = rest.split_at_mut(nq * hd);
        let (mx, rest) = rest.split_at_mut(nq);
        let (sm, rest) = rest.split_at_mut(nq);
        let (pw, rest) = rest.split_at_mut(nq * BLOCK);
        let cw = &mut rest[..nq];
        // Queries rounded to f16 and back (as llama.cpp feeds its f16 dot), in task
        // order i = (t - t0) · g + (h - kvh · g).
        for i in 0..nq {
            let (t, h) = (t0 + i / g, kvh * g + i % g);
            let src = &q[(t * s.n_head + h) * hd..][..hd];
            for (d, x) in qf[i * hd..(i + 1) * hd]
                .chunks_exact_mut(8)
                .zip(src.chunks_exact(8))
            {
                // SAFETY: 8 floats each side; F16C is enabled on this function.
                unsafe {
                    let h =
                        _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(x.as_ptr()));
                    _mm256_storeu_ps(d.as_mut_ptr(), _mm256_cvtph_ps(h));
                }
            }
        }
        acc[..nq * hd].fill(0.0);
        mx.fill(f32::NEG_INFINITY);
        sm.fill(0.0);
        let first = first_visible(s.pos0 + t0, s.window);
        let kbase = kvh * hd;
        // SAFETY (whole block): pointers below stay inside the slices sized and
        // asserted above; the features are enabled on this function.
        unsafe {
            let mut j = first / BLOCK * BLOCK;
            while j <= last {
                widen_block((k, v), j, last, (row, kbase, hd), BLOCK, kf, vf);
                let lane = _mm256_add_epi32(
                    _mm256_set1_epi32(j as i32),
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                );
                // Three passes over the queries (scores; softmax update; values),
                // so that each pass is a run of independent iterations the core
                // overlaps, instead of one long dependent chain per query.
                // Positions (and first visible keys) grow with i, so the queries
                // that see any key of this block are one contiguous run lo..hi.
                let sees = |i: usize| {
                    let p = s.pos0 + t0 + i / g;
                    j <= p && j + BLOCK > first_visible(p, s.window)
                };
                let lo = (0..nq).position(sees).unwrap_or(nq);
                let hi = lo + (lo..nq).take_while(|&i| sees(i)).count();
                // Scale, mask (visible: j0 <= key <= p) and store query i's scores.
                let mut put = |i: usize, sums: __m256| {
                    let p = s.pos0 + t0 + i / g;
                    let j0 = first_visible(p, s.window);
                    let sc = _mm256_mul_ps(sums, _mm256_set1_ps(s.scale));
                    let hidden = _mm256_or_si256(
                        _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(p as i32)),
                        _mm256_cmpgt_epi32(_mm256_set1_epi32(j0 as i32), lane),
                    );
                    let sc = _mm256_blendv_ps(
                        sc,
                        _mm256_set1_ps(f32::NEG_INFINITY),
                        _mm256_castsi256_ps(hidden),
                    );
                    _mm256_storeu_ps(pw.as_mut_ptr().add(i * BLOCK), sc);
                };
                // Two queries at a time against 4 keys at a time: each key load
                // feeds two FMAs (the loads, not the FMAs, bound this loop).
                let mut i = lo;
                while i + 2 <= hi {
                    let (qa, qb) = (qf.as_ptr().add(i * hd), qf.as_ptr().add((i + 1) * hd));
                    let mut halves = [[_mm256_setzero_ps(); 2]; 2];
                    for (h, hv) in halves.iter_mut().enumerate() {
                        let mut da = [_mm256_setzero_ps(); 4];
                        let mut db = [_mm256_setzero_ps(); 4];
                        for c in (0..hd).step_by(8) {
                            let (xa, xb) = (_mm256_loadu_ps(qa.add(c)), _mm256_loadu_ps(qb.add(c)));
                            for u in 0..4 {
                                let kv = _mm256_loadu_ps(kf.as_ptr().add((4 * h + u) * hd + c));
                                da[u] = _mm256_fmadd_ps(xa, kv, da[u]);
                                db[u] = _mm256_fmadd_ps(xb, kv, db[u]);
                            }
                        }
                        hv[0] = hsum4(&da);
                        hv[1] = hsum4(&db);
                    }
                    put(i, join(halves[0][0], halves[1][0]));
                    put(i + 1, join(halves[0][1], halves[1][1]));
                    i += 2;
                }
                if i < hi {
                    let qp = qf.as_ptr().add(i * hd);
                    let mut d = [_mm256_setzero_ps(); BLOCK];
                    for c in (0..hd).step_by(8) {
                        let qc = _mm256_loadu_ps(qp.add(c));
                        for (b, db) in d.iter_mut().enumerate() {
                            *db = _mm256_fmadd_ps(
                                qc,
                                _mm256_loadu_ps(kf.as_ptr().add(b * hd + c)),
                                *db,
                            );
                        }
                    }
                    put(i, hsum8(&d));
                }
                for i in lo..hi {
                    let pl = pw.as_mut_ptr().add(i * BLOCK);
                    let sc = _mm256_loadu_ps(pl);
                    let m_old = mx[i];
                    let m_new = m_old.max(hmax(sc));
                    // exp(−inf) = 0: masked keys, and the first block's rescale.
                    let e = exp8(_mm256_sub_ps(
                        _mm256_setr_ps(m_old, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
                        _mm256_set1_ps(m_new),
                    ));
                    let corr = _mm256_cvtss_f32(e);
                    let pv = exp8(_mm256_sub_ps(sc, _mm256_set1_ps(m_new)));
                    _mm256_storeu_ps(pl, pv);
                    cw[i] = corr;
                    mx[i] = m_new;
                    sm[i] = sm[i] * corr + hsum(pv);
                }
                // acc = acc · corr + Σ_b p_b · v_b, two queries at a time over 32
                // dimensions (each value load feeds two FMAs), then what is left one
                // query and 8 dimensions at a time.
                let mut i = lo;
                while i + 2 <= hi {
                    let (pa, pb) = (pw.as_ptr().add(i * BLOCK), pw.as_ptr().add((i + 1) * BLOCK));
                    let (ca, cb) = (_mm256_set1_ps(cw[i]), _mm256_set1_ps(cw[i + 1]));
                    let (aa, ab) = (
                        acc.as_mut_ptr().add(i * hd),
                        acc.as_mut_ptr().add((i + 1) * hd),
                    );
                    let mut c = 0;
                    while c + 32 <= hd {
                        let mut oa: [__m256; 4] = std::array::from_fn(|u| {
                            _mm256_mul_ps(_mm256_loadu_ps(aa.add(c + 8 * u)), ca)
                        });
                        let mut ob: [__m256; 4] = std::array::from_fn(|u| {
                            _mm256_mul_ps(_mm256_loadu_ps(ab.add(c + 8 * u)), cb)
                        });
                        for b in 0..BLOCK {
                            let (wa, wb) = (
                                _mm256_broadcast_ss(&*pa.add(b)),
                                _mm256_broadcast_ss(&*pb.add(b)),
                            );
                            let vp = vf.as_ptr().add(b * hd + c);
                            for u in 0..4 {
                                let vv = _mm256_loadu_ps(vp.add(8 * u));
                                oa[u] = _mm256_fmadd_ps(wa, vv, oa[u]);
                                ob[u] = _mm256_fmadd_ps(wb, vv, ob[u]);
                            }
                        }
                        for u in 0..4 {
                            _mm256_storeu_ps(aa.add(c + 8 * u), oa[u]);
                            _mm256_storeu_ps(ab.add(c + 8 * u), ob[u]);
                        }
                        c += 32;
                    }
                    for q in [i, i + 1] {
                        value_tail(
                            &pw[q * BLOCK..],
                            cw[q],
                            vf.as_ptr(),
                            &mut acc[q * hd..(q + 1) * hd],
                            c,
                            hd,
                        );
                    }
                    i += 2;
                }
                if i < hi {
                    value_tail(
                        &pw[i * BLOCK..],
                        cw[i],
                        vf.as_ptr(),
                        &mut acc[i * hd..(i + 1) * hd],
                        0,
                        hd,
                    );
                }
                j += BLOCK;
            }
            for i in 0..nq {
                let (t, h) = (t0 + i / g, kvh * g + i % g);
                // SAFETY: (t, h) belongs to this task.
                let o = out.slice((t * s.n_head + h) * hd, hd);
                let inv = 1.0 / sm[i];
                for (d, a) in o.iter_mut().zip(&acc[i * hd..(i + 1) * hd]) {
                    *d = a * inv;
                }
            }
        }
    }
}
