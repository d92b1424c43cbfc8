//! Attention in tiles (x86-64 AVX2 + FMA + F16C), for prompts and for decode.
//!
//! A long prompt has many queries per key, so there a task is the query heads that
//! share one KV head (the GQA group) over a few consecutive tokens. Decode and
//! short prompts (under [`MIN_TOKENS`] tokens) have too few of those tasks to share
//! among the threads (SmolLM2 has 3 KV heads, Gemma-3 one), so there a task is all
//! the KV heads (a block's rows are then one contiguous run of the cache) over one
//! range of the keys, and the ranges' partial results are merged afterwards
//! (flash-decoding; [`SplitPlan`], [`merge`]); with AVX-512F, [`crate::decode512`]
//! runs those tasks. Either way a task walks the visible keys in blocks of
//! [`BLOCK`]:
//! - the block's keys and values are converted from f16 to f32 once for all the
//!   task's queries;
//! - per query: 8 scores at once (8 dot products, reduced into one vector), the
//!   causal / sliding-window mask, and an online-softmax update with one vector exp;
//! - the f32 accumulator is rescaled and gets the 8 weighted values, with the 8
//!   weights held in registers.
//!
//! The arithmetic is the standard flash-attention recurrence in f32: the query is
//! rounded to f16 first as llama.cpp does, keys and values are the f16 cache, but the
//! accumulator is not rounded to f16 (closer to the exact result than llama.cpp).
//! The conformance kit holds it to the scalar reference; against llama.cpp's logits
//! (tests/vs_llamacpp.rs, 512-token chunks, so this path) the agreement is the same
//! as with the emulated arithmetic (SmolLM2 mean KL 0.00236 vs 0.00253).
//! Measured at pp512 on the 2-core EPYC: attention 1.5× (SmolLM2, head size 64)
//! to 1.9× (Gemma-3, 256) faster than the emulated path. Decode at a depth of 2048
//! (tenth session): SmolLM2 tg64 1.3× the one-head-at-a-time kernel it replaced,
//! which is still what runs soft-capped attention (`cpu::attend_one_fast`).

#[cfg(target_arch = "x86_64")]
use crate::{reference::first_visible, AttnShape, SyncPtr};
#[cfg(target_arch = "x86_64")]
use half::f16;

/// From this many query tokens a call runs the prompt tasks (a GQA group over a
/// run of tokens, all its keys); below, the [`SplitPlan`] tasks.
#[cfg(target_arch = "x86_64")]
pub(crate) const MIN_TOKENS: usize = 64;

/// Keys per block.
pub(crate) const BLOCK: usize = 8;
/// Blocks ahead that [`task`] prefetches.
#[cfg(target_arch = "x86_64")]
pub(crate) const PF_BLOCKS: usize = 4;

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
    scratch_floats_for(BLOCK, head_dim, n_queries)
}

/// [`scratch_floats`] with blocks of `block` keys (this layout is
/// [`crate::decode512`]'s too).
pub(crate) fn scratch_floats_for(block: usize, head_dim: usize, n_queries: usize) -> usize {
    2 * block * head_dim + 2 * n_queries * head_dim + (3 + block) * n_queries
}

/// Whether [`task`] handles this shape (the caller also checks the CPU features).
#[cfg(target_arch = "x86_64")]
pub(crate) fn handles(s: &AttnShape) -> bool {
    s.n_tokens > 0
        && s.softcap.is_none()
        && s.head_dim.is_multiple_of(8)
        && s.head_dim > 0
        && s.n_kv_head > 0
        && s.n_head.is_multiple_of(s.n_kv_head)
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{task, widen_block};

/// Where a task's results go.
#[cfg(target_arch = "x86_64")]
pub(crate) enum Dst<'a> {
    /// Normalised, into the task's rows of the output (layout of q).
    Out(SyncPtr<f32>),
    /// Unnormalised, for [`merge`]: the task's query i ([`task`]'s order) at
    /// `i · (hd + 2)`: the running max, the sum of weights, then the `hd`
    /// accumulated values. A query that sees no key of the range has max −∞, sum 0
    /// and zero values.
    Part(&'a mut [f32]),
}

/// Floats of one query's partial result ([`Dst::Part`]).
#[cfg(target_arch = "x86_64")]
pub(crate) fn part_floats(head_dim: usize) -> usize {
    head_dim + 2
}

/// Writes a task's running max `mx`, sums `sm` and accumulators `acc` (query i's
/// `hd` values at `i · hd`; query i is KV head `head0 + i / ng`'s query `i % ng`,
/// in [`task`]'s order) to `dst`.
///
/// # Safety
/// With [`Dst::Out`], the task's rows of the output are its own and in bounds.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn finish(
    s: &AttnShape,
    head0: usize,
    ng: usize,
    t0: usize,
    (mx, sm, acc): (&[f32], &[f32], &[f32]),
    dst: Dst<'_>,
) {
    let hd = s.head_dim;
    let g = s.n_head / s.n_kv_head;
    let nq = sm.len().min(mx.len());
    match dst {
        Dst::Out(out) => {
            for i in 0..nq {
                let (kvh, il) = (head0 + i / ng, i % ng);
                let (t, h) = (t0 + il / g, kvh * g + il % g);
                // SAFETY: (t, h) belongs to this task (the caller's contract).
                let o = unsafe { out.slice((t * s.n_head + h) * hd, hd) };
                let inv = 1.0 / sm[i];
                for (d, a) in o.iter_mut().zip(&acc[i * hd..(i + 1) * hd]) {
                    *d = a * inv;
                }
            }
        }
        Dst::Part(part) => {
            let pf = part_floats(hd);
            for (i, p) in part.chunks_exact_mut(pf).take(nq).enumerate() {
                p[0] = mx[i];
                p[1] = sm[i];
                p[2..].copy_from_slice(&acc[i * hd..(i + 1) * hd]);
            }
        }
    }
}

/// One query's result from the partials of `n` key ranges (`parts[r · stride..]`,
/// [`Dst::Part`]'s layout): `Σ_r e^{m_r − M} acc_r / Σ_r e^{m_r − M} sum_r` with `M`
/// the largest running max, the split-key form of the online softmax.
#[cfg(target_arch = "x86_64")]
pub(crate) fn merge(parts: &[f32], stride: usize, n: usize, out: &mut [f32]) {
    let hd = out.len();
    let m = (0..n)
        .map(|r| parts[r * stride])
        .fold(f32::NEG_INFINITY, f32::max);
    out.fill(0.0);
    let mut sum = 0f32;
    for r in 0..n {
        let p = &parts[r * stride..r * stride + hd + 2];
        // exp(−∞) = 0: a range this query does not see adds nothing.
        let w = crate::cpu::simd::exp_f32(p[0] - m);
        sum += w * p[1];
        for (o, a) in out.iter_mut().zip(&p[2..]) {
            *o += w * a;
        }
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    out.iter_mut().for_each(|o| *o *= inv);
}

/// How a call with fewer than [`MIN_TOKENS`] query tokens (decode, short prompts)
/// is cut into [`task`]s: a task is a run of `tpt` tokens, all the KV heads, and
/// one of `splits` key ranges of `step` keys from `lo` (the first block any query
/// sees). Decode is one run, so the key ranges are what the threads share: one
/// range per thread, more (up to [`SPLIT_TASKS_PER_THREAD`]) on long spans
/// ([`SPLIT_KEYS_PER_TASK`]), one with one thread, none shorter than
/// [`MIN_SPLIT_KEYS`] keys. With more than one range, each task leaves partial
/// results ([`Dst::Part`], `part_len` floats) that [`merge`] combines.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SplitPlan {
    pub tpt: usize,
    pub runs: usize,
    pub splits: usize,
    pub step: usize,
    pub lo: usize,
    /// Queries of a full task.
    pub nq: usize,
    /// Floats of a task's partials (0 with one range).
    pub part_len: usize,
}

#[cfg(target_arch = "x86_64")]
impl SplitPlan {
    pub(crate) fn new(s: &AttnShape, threads: usize) -> SplitPlan {
        let tpt = (SPLIT_QUERIES / s.n_head.max(1)).max(1);
        let runs = s.n_tokens.div_ceil(tpt);
        let lo = crate::reference::first_visible(s.pos0, s.window) / SPLIT_ALIGN * SPLIT_ALIGN;
        let span = s.pos0 + s.n_tokens - lo;
        // One thread gains nothing from ranges (only the merge to pay). Each range
        // costs a task's setup and a share of the merge: one per thread until the
        // span is long enough for load balancing to pay.
        let want = if threads > 1 {
            let per_thread = (span / SPLIT_KEYS_PER_TASK).clamp(1, SPLIT_TASKS_PER_THREAD);
            (per_thread * threads).div_ceil(runs.max(1))
        } else {
            1
        };
        let splits = want.min(span / MIN_SPLIT_KEYS).max(1);
        let step = span.div_ceil(splits).next_multiple_of(SPLIT_ALIGN);
        let splits = span.div_ceil(step);
        let nq = tpt * s.n_head;
        let part_len = if splits > 1 {
            nq * part_floats(s.head_dim)
        } else {
            0
        };
        SplitPlan {
            tpt,
            runs,
            splits,
            step,
            lo,
            nq,
            part_len,
        }
    }

    pub(crate) fn tasks(&self) -> usize {
        self.runs * self.splits
    }

    /// Upper bound of the f32 scratch a call needs with `threads` threads: per
    /// thread a task's [`scratch_floats`], then every task's partials (there are
    /// partials only while runs < the wanted tasks, so fewer than twice those).
    pub(crate) fn scratch_bound(n_head: usize, head_dim: usize, threads: usize) -> usize {
        let nq = (SPLIT_QUERIES / n_head.max(1)).max(1) * n_head;
        let parts = 2 * SPLIT_TASKS_PER_THREAD * threads * nq * part_floats(head_dim);
        let block = BLOCK.max(crate::decode512::BLOCK);
        threads * scratch_floats_for(block, head_dim, nq) + parts
    }
}

/// See [`SplitPlan`].
#[cfg(target_arch = "x86_64")]
pub(crate) const SPLIT_TASKS_PER_THREAD: usize = 4;
/// See [`SplitPlan`].
#[cfg(target_arch = "x86_64")]
pub(crate) const MIN_SPLIT_KEYS: usize = 64;
/// Keys per range that earn a thread a further range (up to
/// [`SPLIT_TASKS_PER_THREAD`]). Measured with the attnbench example (SmolLM2's
/// shape, 2 threads, Zen 5): at depths 128-2048 one range per thread was as fast
/// as or faster than four (pos 511: 8.5 µs with 2 ranges, 10.8 with 8).
#[cfg(target_arch = "x86_64")]
const SPLIT_KEYS_PER_TASK: usize = 2048;
/// Key ranges start on multiples of this: whole blocks of this kernel ([`BLOCK`])
/// and of [`crate::decode512`]'s (16).
#[cfg(target_arch = "x86_64")]
const SPLIT_ALIGN: usize = 16;
/// Queries per task of a [`SplitPlan`] (tokens × query heads), at least one token.
#[cfg(target_arch = "x86_64")]
const SPLIT_QUERIES: usize = 64;

/// A task's scratch ([`scratch_floats_for`]'s layout), split: a block of widened
/// keys and values, and per query the rounded query, the accumulator, the running
/// max and sum, the block's weights and the rescale factor.
#[cfg(target_arch = "x86_64")]
pub(crate) struct TaskScratch<'a> {
    pub kf: &'a mut [f32],
    pub vf: &'a mut [f32],
    pub qf: &'a mut [f32],
    pub acc: &'a mut [f32],
    pub mx: &'a mut [f32],
    pub sm: &'a mut [f32],
    pub pw: &'a mut [f32],
    pub cw: &'a mut [f32],
}

#[cfg(target_arch = "x86_64")]
impl<'a> TaskScratch<'a> {
    /// Splits `scratch` (at least [`scratch_floats_for`]`(block, hd, nq)` floats)
    /// for `nq` queries and blocks of `block` keys, the accumulators zeroed and
    /// the running maxima at −∞.
    pub(crate) fn new(scratch: &'a mut [f32], block: usize, hd: usize, nq: usize) -> Self {
        assert!(scratch.len() >= scratch_floats_for(block, hd, nq));
        let (kf, rest) = scratch.split_at_mut(block * hd);
        let (vf, rest) = rest.split_at_mut(block * hd);
        let (qf, rest) = rest.split_at_mut(nq * hd);
        let (acc, rest) = rest.split_at_mut(nq * hd);
        let (mx, rest) = rest.split_at_mut(nq);
        let (sm, rest) = rest.split_at_mut(nq);
        let (pw, rest) = rest.split_at_mut(nq * block);
        let cw = &mut rest[..nq];
        acc.fill(0.0);
        mx.fill(f32::NEG_INFINITY);
        sm.fill(0.0);
        TaskScratch {
            kf,
            vf,
            qf,
            acc,
            mx,
            sm,
            pw,
            cw,
        }
    }
}

/// Prefetches (into L1) the cache rows `j..j + n` (rows of `row` f16), from
/// element `base` for `len` elements of each, keys and values.
///
/// # Safety
/// Those elements lie inside `k` and `v`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn prefetch_rows(
    (k, v): (&[f16], &[f16]),
    (j, n): (usize, usize),
    (row, base, len): (usize, usize, usize),
) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    for b in 0..n {
        let off = (j + b) * row + base;
        debug_assert!(off + len <= k.len() && off + len <= v.len());
        // SAFETY: in bounds (the caller's contract); a prefetch never faults.
        unsafe {
            let kp = k.as_ptr().add(off) as *const i8;
            let vp = v.as_ptr().add(off) as *const i8;
            for c in (0..2 * len).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(kp.add(c));
                _mm_prefetch::<_MM_HINT_T0>(vp.add(c));
            }
        }
    }
}

/// What [`task`] and [`crate::decode512::task`] set up alike before their key
/// loops: the contract's checks, the scratch, the queries rounded to f16 and back
/// (as llama.cpp feeds its f16 dot) in task order, and which keys each query sees.
/// Query i of a task is KV head `heads.start + i / ng`'s query `i % ng`, and a
/// KV head's query il is token `t0 + il / g`, head `kvh · g + il % g`.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Prep<'a> {
    pub sc: TaskScratch<'a>,
    /// Queries per KV head.
    pub ng: usize,
    /// f16 per cache row (all the KV heads).
    pub row: usize,
    /// The task's key range, `keys.start` and `keys.end − 1`.
    pub kstart: usize,
    pub klast: usize,
    /// The first and last key any query of the task sees.
    pub first: usize,
    pub last: usize,
}

#[cfg(target_arch = "x86_64")]
impl<'a> Prep<'a> {
    /// # Safety
    /// AVX2, FMA and F16C must be available.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn new(
        q: &[f32],
        (k, v): (&[f16], &[f16]),
        s: &AttnShape,
        heads: &std::ops::Range<usize>,
        (t0, t1): (usize, usize),
        keys: &std::ops::Range<usize>,
        scratch: &'a mut [f32],
        block: usize,
    ) -> Prep<'a> {
        use std::arch::x86_64::*;
        let hd = s.head_dim;
        let g = s.n_head / s.n_kv_head;
        assert!(hd.is_multiple_of(8) && hd > 0);
        assert!(heads.start < heads.end && heads.end <= s.n_kv_head);
        assert!(t0 < t1 && q.len() >= t1 * s.n_head * hd);
        assert!(keys.start < keys.end, "empty key range");
        let ng = (t1 - t0) * g;
        let nq = ng * heads.len();
        let row = s.n_kv_head * hd;
        let (kstart, klast) = (keys.start, keys.end - 1);
        let last = (s.pos0 + t1 - 1).min(klast);
        assert!(k.len() >= (last + 1) * row && v.len() >= (last + 1) * row);
        let sc = TaskScratch::new(scratch, block, hd, nq);
        for i in 0..nq {
            let (kvh, il) = (heads.start + i / ng, i % ng);
            let (t, h) = (t0 + il / g, kvh * g + il % g);
            let src = &q[(t * s.n_head + h) * hd..][..hd];
            for (d, x) in sc.qf[i * hd..(i + 1) * hd]
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
        let first = first_visible(s.pos0 + t0, s.window).max(kstart);
        Prep {
            sc,
            ng,
            row,
            kstart,
            klast,
            first,
            last,
        }
    }
}

/// The keys a KV head's query `il` of a task from token `t0` sees within the
/// task's key range `kstart..=klast`: `(j0, p)`, visible iff j0 <= key <= p.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn visible(
    s: &AttnShape,
    t0: usize,
    il: usize,
    (kstart, klast): (usize, usize),
) -> (usize, usize) {
    let p = s.pos0 + t0 + il / (s.n_head / s.n_kv_head);
    (first_visible(p, s.window).max(kstart), p.min(klast))
}

/// A KV head's queries (of `ng`) that see a key of the block `j..j + block`:
/// positions (and first visible keys) grow with the query, so they are one
/// contiguous run `lo..hi`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn seers(
    s: &AttnShape,
    t0: usize,
    ng: usize,
    range: (usize, usize),
    j: usize,
    block: usize,
) -> std::ops::Range<usize> {
    let sees = |il: usize| {
        let (j0, p) = visible(s, t0, il, range);
        j <= p && j + block > j0
    };
    let lo = (0..ng).position(sees).unwrap_or(ng);
    lo..lo + (lo..ng).take_while(|&il| sees(il)).count()
}

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

    /// Attention of the query heads of the KV heads `heads` for tokens `t0..t1` over
    /// the keys in `keys` (`0..usize::MAX`: all that each query sees), to `dst`.
    /// Each block of keys is taken one KV head after the other: with all the
    /// heads, a block's rows are one contiguous run of the cache, which streams
    /// (one head's rows are strided).
    ///
    /// # Safety
    /// AVX2, FMA and F16C must be available; [`handles`]`(s)`; `q`, `k`, `v` cover
    /// the shape (rows `0..s.pos0 + t1` of the cache); `scratch` holds
    /// [`scratch_floats`]`(hd, (t1 - t0) · group · heads.len())` floats; the task
    /// owns its rows of the output (or its partials).
    #[target_feature(enable = "avx2,fma,f16c")]
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
        // SAFETY (whole block): pointers below stay inside the slices sized and
        // asserted above; the features are enabled on this function.
        unsafe {
            let mut j = first / BLOCK * BLOCK;
            while j <= last {
                // Keys and values PF_BLOCKS blocks ahead are prefetched per KV
                // head (a burst for all the heads' rows would not stay in flight).
                let pj = j + PF_BLOCKS * BLOCK;
                let lane = _mm256_add_epi32(
                    _mm256_set1_epi32(j as i32),
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                );
                // Three passes over the queries (scores; softmax update; values),
                // so that each pass is a run of independent iterations the core
                // overlaps, instead of one long dependent chain per query.
                let std::ops::Range { start: lo, end: hi } =
                    seers(s, t0, ng, (kstart, klast), j, BLOCK);
                for (gi, kvh) in heads.clone().enumerate() {
                    if pj <= last {
                        let n = BLOCK.min(last + 1 - pj);
                        prefetch_rows((k, v), (pj, n), (row, kvh * hd, hd));
                    }
                    widen_block((k, v), j, last, (row, kvh * hd, hd), BLOCK, kf, vf);
                    // This KV head's queries.
                    let qf = &qf[gi * ng * hd..(gi + 1) * ng * hd];
                    let acc = &mut acc[gi * ng * hd..(gi + 1) * ng * hd];
                    let mx = &mut mx[gi * ng..(gi + 1) * ng];
                    let sm = &mut sm[gi * ng..(gi + 1) * ng];
                    let pw = &mut pw[gi * ng * BLOCK..(gi + 1) * ng * BLOCK];
                    let cw = &mut cw[gi * ng..(gi + 1) * ng];
                    // Scale, mask (visible: j0 <= key <= p) and store query i's scores.
                    let mut put = |i: usize, sums: __m256| {
                        let (j0, p) = visible(s, t0, i, (kstart, klast));
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
                                let (xa, xb) =
                                    (_mm256_loadu_ps(qa.add(c)), _mm256_loadu_ps(qb.add(c)));
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
                        // The running max seldom moves after the first blocks: no exp
                        // then (exp8 and exp_f32 agree bit for bit).
                        let corr = if m_new > m_old {
                            crate::cpu::simd::exp_f32(m_old - m_new)
                        } else {
                            1.0
                        };
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
                        let (pa, pb) =
                            (pw.as_ptr().add(i * BLOCK), pw.as_ptr().add((i + 1) * BLOCK));
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
                }
                j += BLOCK;
            }
            finish(s, heads.start, ng, t0, (mx, sm, acc), dst);
        }
    }
}
