//! Decode attention with AVX-512F: the tasks of [`crate::flash::SplitPlan`] (a few
//! query tokens, all the KV heads, one range of keys) in blocks of 16 keys.
//!
//! [`crate::flash512`] puts the queries in the vector lanes, which a long prompt
//! fills; decode has only a GQA group's few queries per KV head (3 for SmolLM2), so
//! here the lanes hold keys or head dimensions instead:
//! - scores: per query, 16 accumulators (one per key) over the head dimension, then
//!   one reduction tree that leaves the 16 sums in one vector, key b in lane b;
//! - masking (causal, sliding window, the task's key range) and the online-softmax
//!   step on that vector: one max, one vector exp, one rescale factor per query and
//!   block;
//! - values: 4 accumulator vectors (64 dimensions) per query, the block's broadcast
//!   weights times the value rows.
//!
//! Where a KV head has at most [`DIRECT_MAX`] queries in the task (decode: its GQA
//! group) the keys and values are read from the cache and widened from f16 in
//! registers, each row once for up to 3 queries (scores, in groups of 4 keys that
//! fold early so that the accumulators fit the registers) or 4 (values). With more
//! queries (short prompts) a block's keys and values are widened once into scratch
//! and read from there by all of them, the values two queries at a time.
//! On Zen 5 the direct path made SmolLM2's decode attention at depth 2047 1.65×
//! faster on one thread (86 → 52 µs per layer, `attnbench` example); see
//! BENCHMARKS.md, "eleventh session".
//!
//! The arithmetic is [`crate::flash::task`]'s (f32 recurrence over the f16 cache,
//! query rounded to f16 first) with 16-key blocks and another summation order; the
//! conformance kit holds both to the scalar reference. Measured on Zen 5 (2
//! threads): see BENCHMARKS.md, "tenth session".

use crate::flash::{
    finish, prefetch_rows, scratch_floats_for, seers, visible, widen_block, Dst, Prep, TaskScratch,
};
use crate::AttnShape;
use half::f16;
use std::arch::x86_64::*;

/// Keys per block.
pub(crate) const BLOCK: usize = 16;

/// Blocks ahead that [`task`] prefetches (1 was 3 % faster than 2 with the
/// per-head prefetch, out of L3).
const PF_BLOCKS: usize = 1;

/// Dimensions per vector.
const LANES: usize = 16;

/// Whether [`task`] runs this shape (beside [`crate::flash::handles`]): head sizes
/// in whole vectors.
pub(crate) fn handles(s: &AttnShape) -> bool {
    s.head_dim.is_multiple_of(LANES)
}

/// f32 scratch of a task of `n_queries` queries.
pub(crate) fn scratch_floats(head_dim: usize, n_queries: usize) -> usize {
    scratch_floats_for(BLOCK, head_dim, n_queries)
}

/// Accumulator slot s of [`reduce16`]'s input holds key `KEY_OF_SLOT[s]`, so that
/// its output has key b in lane b.
const KEY_OF_SLOT: [usize; 16] = [0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15];

/// Lane l of the result = Σ lanes of `v[s]` with `KEY_OF_SLOT[s] = l`: four levels
/// of pairwise folds (128-bit quarters across vectors, then 32-bit lanes within
/// quarters), 15 adds in all.
#[inline(always)]
unsafe fn reduce16(v: &[__m512; 16]) -> __m512 {
    // SAFETY: AVX-512F (the caller's contract).
    unsafe { reduce_folded(&std::array::from_fn(|i| fold(v[i], v[i + 8]))) }
}

/// [`reduce16`]'s first level: quarters 0,1 hold partial sums of `a`, quarters 2,3
/// of `b`.
#[inline(always)]
unsafe fn fold(a: __m512, b: __m512) -> __m512 {
    unsafe {
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
        )
    }
}

/// [`reduce16`]'s last three levels, from `u[i] = fold(v[i], v[i + 8])`.
#[inline(always)]
unsafe fn reduce_folded(u: &[__m512; 8]) -> __m512 {
    unsafe {
        // Quarter q of w[i] holds 4 partial sums of v[i + [0, 8, 4, 12][q]].
        let w: [__m512; 4] = std::array::from_fn(|i| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(u[i], u[i + 4]),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(u[i], u[i + 4]),
            )
        });
        reduce_quarters(&w)
    }
}

/// [`reduce16`]'s last two levels: lane 4·q + l of the result sums the lanes of
/// quarter q of `w[[0, 2, 1, 3][l]]`.
#[inline(always)]
unsafe fn reduce_quarters(w: &[__m512; 4]) -> __m512 {
    unsafe {
        // Within each quarter: lanes [a, b, a, b] with a from w[i], b from w[i + 2].
        let z: [__m512; 2] = std::array::from_fn(|i| {
            _mm512_add_ps(
                _mm512_unpacklo_ps(w[i], w[i + 2]),
                _mm512_unpackhi_ps(w[i], w[i + 2]),
            )
        });
        // Quarter q: [z0.a, z0.b, z1.a, z1.b] summed: v[0, 2, 1, 3] + offset(q).
        _mm512_add_ps(
            _mm512_shuffle_ps::<0b01_00_01_00>(z[0], z[1]),
            _mm512_shuffle_ps::<0b11_10_11_10>(z[0], z[1]),
        )
    }
}

/// Where a block's value rows come from.
trait ValueRows {
    /// Row b's 16 dimensions from `d`, as f32.
    ///
    /// # Safety
    /// AVX-512F; row b holds dimensions `d..d + 16`.
    unsafe fn load(&self, b: usize, d: usize) -> __m512;
}

/// Rows widened into scratch, `hd` floats apart.
struct Widened<'a> {
    vf: &'a [f32],
    hd: usize,
}

impl ValueRows for Widened<'_> {
    #[inline(always)]
    unsafe fn load(&self, b: usize, d: usize) -> __m512 {
        // SAFETY: the caller's contract.
        unsafe { _mm512_loadu_ps(self.vf.as_ptr().add(b * self.hd + d)) }
    }
}

/// Rows of the f16 cache, widened in registers.
impl ValueRows for [*const f16; BLOCK] {
    #[inline(always)]
    unsafe fn load(&self, b: usize, d: usize) -> __m512 {
        // SAFETY: the caller's contract.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(self[b].add(d) as *const __m256i)) }
    }
}

/// Queries `i0..i0 + Q`: `acc = acc · corr + Σ_b p_b · v_b` over the block's `nk`
/// value rows, `V` vectors (16·V dimensions) at a time: 4 while they last, then 1.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn values<const Q: usize, R: ValueRows>(
    i0: usize,
    hd: usize,
    nk: usize,
    pw: &[f32],
    cw: &[f32],
    rows: &R,
    acc: &mut [f32],
) {
    let mut c = 0;
    while c + 4 * LANES <= hd {
        // SAFETY: the caller's slices hold queries i0..i0 + Q and nk rows of hd.
        unsafe { values_at::<Q, 4, R>(i0, c, hd, nk, pw, cw, rows, acc) };
        c += 4 * LANES;
    }
    while c < hd {
        // SAFETY: as above.
        unsafe { values_at::<Q, 1, R>(i0, c, hd, nk, pw, cw, rows, acc) };
        c += LANES;
    }
}

/// [`values`] for dimensions `c..c + 16·V`, the accumulators in registers: each
/// value row is loaded once for the Q queries.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)] // register tiles
unsafe fn values_at<const Q: usize, const V: usize, R: ValueRows>(
    i0: usize,
    c: usize,
    hd: usize,
    nk: usize,
    pw: &[f32],
    cw: &[f32],
    rows: &R,
    acc: &mut [f32],
) {
    unsafe {
        let pp: [*const f32; Q] = std::array::from_fn(|a| pw.as_ptr().add((i0 + a) * BLOCK));
        let ap: [*mut f32; Q] = std::array::from_fn(|a| acc.as_mut_ptr().add((i0 + a) * hd + c));
        let mut o: [[__m512; V]; Q] = std::array::from_fn(|a| {
            let cv = _mm512_set1_ps(cw[i0 + a]);
            std::array::from_fn(|u| _mm512_mul_ps(_mm512_loadu_ps(ap[a].add(LANES * u)), cv))
        });
        for b in 0..nk {
            let w: [__m512; Q] = std::array::from_fn(|a| _mm512_set1_ps(*pp[a].add(b)));
            for u in 0..V {
                let vv = rows.load(b, c + LANES * u);
                for a in 0..Q {
                    o[a][u] = _mm512_fmadd_ps(w[a], vv, o[a][u]);
                }
            }
        }
        for a in 0..Q {
            for u in 0..V {
                _mm512_storeu_ps(ap[a].add(LANES * u), o[a][u]);
            }
        }
    }
}

/// Lane order of [`scores_direct`]'s reduction: key group g (of 4) ends in lanes
/// `4·q + QUAD[g]`, its accumulator s holding key `4·QUAD[s] + QUAD[g]`.
const QUAD: [usize; 4] = [0, 2, 1, 3];

/// Scores of queries `0..Q` (rounded rows at `qf`, `hd` apart) against the 16 key
/// rows at `kp[b]` (f16, read and widened in registers), key b in lane b, unscaled.
/// Each key row is converted once for the Q queries. The keys go in 4 groups of 4:
/// a group's 4 accumulators per query fold at once into one vector (quarters of
/// partial sums, [`reduce16`]'s first two levels), so that few stay live; the 4
/// groups' vectors then take its last two levels.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // register tiles
unsafe fn scores_direct<const Q: usize>(
    qf: *const f32,
    hd: usize,
    kp: &[*const f16; BLOCK],
) -> [__m512; Q] {
    unsafe {
        let mut w = [[_mm512_setzero_ps(); 4]; Q];
        for g in 0..4 {
            let rows: [*const f16; 4] = std::array::from_fn(|s| kp[4 * QUAD[s] + QUAD[g]]);
            let mut d = [[_mm512_setzero_ps(); 4]; Q];
            for c in (0..hd).step_by(LANES) {
                for s in 0..4 {
                    let kc = _mm512_cvtph_ps(_mm256_loadu_si256(rows[s].add(c) as *const __m256i));
                    for a in 0..Q {
                        let qc = _mm512_loadu_ps(qf.add(a * hd + c));
                        d[a][s] = _mm512_fmadd_ps(qc, kc, d[a][s]);
                    }
                }
            }
            for a in 0..Q {
                let u = [fold(d[a][0], d[a][2]), fold(d[a][1], d[a][3])];
                w[a][g] = _mm512_add_ps(
                    _mm512_shuffle_f32x4::<0b10_00_10_00>(u[0], u[1]),
                    _mm512_shuffle_f32x4::<0b11_01_11_01>(u[0], u[1]),
                );
            }
        }
        std::array::from_fn(|a| reduce_quarters(&w[a]))
    }
}

/// Up to this many queries per KV head (a decode step's GQA group), a task reads
/// the keys and values straight from the cache ([`scores_direct`],
/// [`values`] over the cache rows); more share one widened copy of each block.
const DIRECT_MAX: usize = 8;

/// A KV head's query `il`'s scores of the block whose key numbers are `key`,
/// scaled, the keys it does not see ([`visible`]) at −∞.
#[inline(always)]
unsafe fn masked(
    raw: __m512,
    key: __m512i,
    s: &AttnShape,
    t0: usize,
    il: usize,
    range: (usize, usize),
) -> __m512 {
    let (j0, p) = visible(s, t0, il, range);
    unsafe {
        let hidden = _mm512_cmpgt_epi32_mask(key, _mm512_set1_epi32(p as i32))
            | _mm512_cmpgt_epi32_mask(_mm512_set1_epi32(j0 as i32), key);
        let sc = _mm512_mul_ps(raw, _mm512_set1_ps(s.scale));
        _mm512_mask_blend_ps(hidden, sc, _mm512_set1_ps(f32::NEG_INFINITY))
    }
}

/// The online-softmax step of query `qi` over a block's masked, scaled scores `sc`:
/// new running max and sum, the block's weights (`pw`) and the rescale factor of
/// the accumulator (`cw`).
#[inline(always)]
unsafe fn online_step(
    sc: __m512,
    qi: usize,
    (mx, sm, pw, cw): (&mut [f32], &mut [f32], &mut [f32], &mut [f32]),
) {
    unsafe {
        let m_old = mx[qi];
        let m_new = m_old.max(_mm512_reduce_max_ps(sc));
        // exp(−∞) = 0: masked keys, and the first block's rescale. The running max
        // seldom moves after the first blocks: no exp then.
        let corr = if m_new > m_old {
            crate::cpu::simd::exp_f32(m_old - m_new)
        } else {
            1.0
        };
        let pv = crate::flash512::exp16(_mm512_sub_ps(sc, _mm512_set1_ps(m_new)));
        _mm512_storeu_ps(pw[qi * BLOCK..].as_mut_ptr(), pv);
        cw[qi] = corr;
        mx[qi] = m_new;
        sm[qi] = sm[qi] * corr + _mm512_reduce_add_ps(pv);
    }
}

/// Attention of the query heads of the KV heads `heads` for tokens `t0..t1` over the
/// keys in `keys`, to `dst`: [`crate::flash::task`]'s contract and query order.
///
/// # Safety
/// AVX-512F, AVX2, FMA and F16C must be available; [`crate::flash::handles`]`(s)`
/// and [`handles`]`(s)`; `q`, `k`, `v` cover the shape (rows `0..s.pos0 + t1` of
/// the cache); `scratch` holds [`scratch_floats`]`(hd, (t1 − t0) · n_head)` floats
/// (or more); the task owns its rows of the output (or its partials).
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn task(
    q: &[f32],
    k: &[f16],
    v: &[f16],
    s: &AttnShape,
    heads: std::ops::Range<usize>,
    (t0, t1): (usize, usize),
    keys: std::ops::Range<usize>,
    scratch: &mut [f32],
    dst: Dst<'_>,
) {
    let hd = s.head_dim;
    assert!(handles(s));
    // SAFETY: AVX2, FMA and F16C are enabled on this function.
    let Prep {
        sc:
            TaskScratch {
                kf,
                vf,
                qf,
                acc,
                mx,
                sm,
                pw,
                cw,
            },
        ng,
        row,
        kstart,
        klast,
        first,
        last,
    } = unsafe { Prep::new(q, (k, v), s, &heads, (t0, t1), &keys, scratch, BLOCK) };
    let direct = ng <= DIRECT_MAX;
    // SAFETY (whole block): pointers below stay inside the slices sized and asserted
    // above; the features are enabled on this function.
    unsafe {
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let mut j = first / BLOCK * BLOCK;
        while j <= last {
            let pj = j + PF_BLOCKS * BLOCK;
            let nk = (last + 1 - j).min(BLOCK);
            let key = _mm512_add_epi32(_mm512_set1_epi32(j as i32), lanes);
            let std::ops::Range { start: lo, end: hi } =
                seers(s, t0, ng, (kstart, klast), j, BLOCK);
            for (gi, kvh) in heads.clone().enumerate() {
                let o = gi * ng;
                // This head's rows of a later block: per head rather than all the
                // heads' rows at once, whose burst of prefetches the core could not
                // keep in flight (SmolLM2's shape at depth 2047, caches out of L3,
                // 2 threads: 55 → 37 µs per call).
                if pj <= last {
                    prefetch_rows((k, v), (pj, BLOCK.min(last + 1 - pj)), (row, kvh * hd, hd));
                }
                if direct {
                    // Rows past the block's end repeat its last key: their scores
                    // are masked (past every query's position) and their values
                    // never read (b < nk).
                    let kp: [*const f16; BLOCK] = std::array::from_fn(|b| {
                        k.as_ptr().add((j + b.min(nk - 1)) * row + kvh * hd)
                    });
                    let vp: [*const f16; BLOCK] = std::array::from_fn(|b| {
                        v.as_ptr().add((j + b.min(nk - 1)) * row + kvh * hd)
                    });
                    let mut i = lo;
                    while i < hi {
                        let qp = qf.as_ptr().add((o + i) * hd);
                        let n = match hi - i {
                            1 => 1,
                            2 | 4 => 2,
                            _ => 3,
                        };
                        let mut raw = [_mm512_setzero_ps(); 3];
                        match n {
                            1 => raw[..1].copy_from_slice(&scores_direct::<1>(qp, hd, &kp)),
                            2 => raw[..2].copy_from_slice(&scores_direct::<2>(qp, hd, &kp)),
                            _ => raw.copy_from_slice(&scores_direct::<3>(qp, hd, &kp)),
                        }
                        for (a, &r) in raw[..n].iter().enumerate() {
                            let sc = masked(r, key, s, t0, i + a, (kstart, klast));
                            online_step(sc, o + i + a, (mx, sm, pw, cw));
                        }
                        i += n;
                    }
                    let mut i = lo;
                    while i < hi {
                        let n = (hi - i).min(4);
                        match n {
                            1 => values::<1, _>(o + i, hd, nk, pw, cw, &vp, acc),
                            2 => values::<2, _>(o + i, hd, nk, pw, cw, &vp, acc),
                            3 => values::<3, _>(o + i, hd, nk, pw, cw, &vp, acc),
                            _ => values::<4, _>(o + i, hd, nk, pw, cw, &vp, acc),
                        }
                        i += n;
                    }
                    continue;
                }
                widen_block((k, v), j, last, (row, kvh * hd, hd), BLOCK, kf, vf);
                for i in lo..hi {
                    let qi = o + i;
                    let qp = qf.as_ptr().add(qi * hd);
                    let mut d = [_mm512_setzero_ps(); BLOCK];
                    for c in (0..hd).step_by(LANES) {
                        let qc = _mm512_loadu_ps(qp.add(c));
                        for (slot, ds) in d.iter_mut().enumerate() {
                            let kp = kf.as_ptr().add(KEY_OF_SLOT[slot] * hd + c);
                            *ds = _mm512_fmadd_ps(qc, _mm512_loadu_ps(kp), *ds);
                        }
                    }
                    let sc = masked(reduce16(&d), key, s, t0, i, (kstart, klast));
                    online_step(sc, qi, (mx, sm, pw, cw));
                }
                // acc = acc · corr + Σ_b p_b · v_b, two queries at a time (each
                // value load feeds two FMAs).
                let widened = Widened { vf: &*vf, hd };
                let mut i = lo;
                while i + 2 <= hi {
                    values::<2, _>(o + i, hd, nk, pw, cw, &widened, acc);
                    i += 2;
                }
                if i < hi {
                    values::<1, _>(o + i, hd, nk, pw, cw, &widened, acc);
                }
            }
            j += BLOCK;
        }
        finish(s, heads.start, ng, t0, (mx, sm, acc), dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    #[test]
    fn reduce16_puts_key_b_in_lane_b() {
        if !crate::flash512::available() {
            return;
        }
        let mut rng = SmallRng::seed_from_u64(5);
        let rows: Vec<[f32; 16]> = (0..16)
            .map(|_| std::array::from_fn(|_| rng.gen_range(-1.0..1.0)))
            .collect();
        // SAFETY: AVX-512F checked above.
        let got = unsafe {
            #[target_feature(enable = "avx512f")]
            unsafe fn run(rows: &[[f32; 16]]) -> [f32; 16] {
                unsafe {
                    let v: [__m512; 16] =
                        std::array::from_fn(|s| _mm512_loadu_ps(rows[KEY_OF_SLOT[s]].as_ptr()));
                    let mut out = [0f32; 16];
                    _mm512_storeu_ps(out.as_mut_ptr(), reduce16(&v));
                    out
                }
            }
            run(&rows)
        };
        for (b, r) in rows.iter().enumerate() {
            let want: f32 = r.iter().sum();
            assert!(
                (got[b] - want).abs() < 1e-5,
                "lane {b}: {} vs {want}",
                got[b]
            );
        }
    }
}
