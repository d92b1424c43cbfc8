//! The CPU backend: SIMD dot kernels from alc-quant, work split over a persistent
//! thread pool, scratch reused across calls.

use crate::pool::{n_chunks, split_range, ThreadPool};
use crate::reference::{first_visible, gated_act_slice, rms_norm_row, rope_head, rope_table};
use crate::{encoder, gemm, AttnShape, Backend, DType, Layout, RopeStyle, SyncPtr, Weight};
use alc_quant::packed;
use half::f16;
use std::sync::Mutex;

/// Output rows per tile: the weight tile stays in L1 while token groups stream by.
const ROW_TILE: usize = 16;
/// Activation rows per dot call (the kernel's K).
const TOKEN_GROUP: usize = 4;
/// Below this many tokens an elementwise op runs on the calling thread.
const PAR_MIN_TOKENS: usize = 4;
/// Tokens per `packed::dot_groups` call (its output buffer: 16 rows of each on
/// the stack, 2 KiB): the argument checks and dispatch are paid once per run.
const PACKED_RUN: usize = 32;
/// Chunks per thread in a job: enough that a thread slowed down (a little core, a
/// preempted one) hands its share to the others, few enough that claiming is free.
const CHUNKS_PER_THREAD: usize = 8;
/// Bytes of quantized activations kept L2-resident per pass over a chunk's tiles.
const ACT_L2_BUDGET: usize = 160 * 1024;
/// Weights that share one quantized input in `matmul_many`.
const MAX_GROUP: usize = 4;
/// From this many tokens, plain float weights (F32 / F16 / BF16) run the blocked
/// GEMM ([`crate::gemm`]) instead of the row-by-row dot kernels.
pub const GEMM_MIN_TOKENS: usize = 16;
/// Weight rows (GEMM columns) per task of the blocked GEMM: the packed block of
/// `GEMM_COLS × KC` floats (128 KiB) stays in L2 while all tokens pass by.
const GEMM_COLS: usize = 128;

/// Row tiles of a group of weights, numbered consecutively across the weights: a
/// task (or a chunk of whole tiles) owns its rows, so threads never share them.
struct RowTiles {
    /// Tiles up to and including weight `i`.
    end: [usize; MAX_GROUP],
    n: usize,
    size: usize,
}

impl RowTiles {
    fn new(ws: &[Weight<'_>], size: usize) -> Self {
        let mut end = [0usize; MAX_GROUP];
        let mut total = 0;
        for (e, w) in end.iter_mut().zip(ws) {
            total += w.rows.div_ceil(size);
            *e = total;
        }
        RowTiles {
            end,
            n: ws.len(),
            size,
        }
    }

    fn total(&self) -> usize {
        if self.n == 0 {
            0
        } else {
            self.end[self.n - 1]
        }
    }

    /// Tile `tile` as (weight index, first row, rows).
    fn locate(&self, tile: usize, ws: &[Weight<'_>]) -> (usize, usize, usize) {
        let i = self.end[..self.n]
            .iter()
            .position(|&e| tile < e)
            .expect("tile in range");
        let r0 = (tile - if i == 0 { 0 } else { self.end[i - 1] }) * self.size;
        (i, r0, (ws[i].rows - r0).min(self.size))
    }
}

/// What a matmul job does with each run of results as it leaves the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Epi {
    /// `out = w · x`.
    Store,
    /// `out += w · x` (a residual stream).
    Add,
    /// `out = act(gate · x) * (up · x)` for `ws = [gate, up]` and one output: each
    /// tile computes the same rows of both weights and applies the activation
    /// (GELU when `true`, SiLU otherwise) before storing.
    Gated(bool),
}

/// Multi-threaded SIMD CPU backend.
pub struct CpuBackend {
    pool: ThreadPool,
    /// Quantized activations of the current matmul.
    act: Mutex<Vec<u8>>,
    /// Per-block activation sums for packed weights ([`packed::act_sums`]).
    act_sums: Mutex<Vec<i32>>,
    /// Per-thread attention scratch: scores (ctx) + key buffer + accumulator.
    attn: Mutex<Vec<f32>>,
    /// Per-thread f16 scratch: the rounded query.
    attn16: Mutex<Vec<f16>>,
    /// Per-thread packed weight blocks of the blocked GEMM.
    gemm_pack: Mutex<Vec<f32>>,
    /// Results of a fused matmul that falls back to the plain one (float weights
    /// on many tokens: the blocked GEMM has no epilogue).
    unfused: Mutex<Vec<f32>>,
    simd: bool,
    /// Prompt attention on AVX-512F ([`crate::flash512`]) instead of AVX2
    /// ([`crate::flash`]); off with `ALC_KERNELS_NO_AVX512=1`.
    attn512: bool,
}

impl std::fmt::Debug for CpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// The most scratch a [`CpuBackend`] of `threads` threads grows to for one model:
/// quantized activations (`act_row_bytes` per row, the widest matmul input) and
/// per-block sums (`act_sums` i32 per row) of `ubatch` rows, and the attention
/// buffer at its largest: per thread the per-head attention's scores over `ctx`
/// keys plus key, value and accumulator rows, or the tiled prompt attention's
/// (`n_head` query heads over `n_kv_head` key heads of `head_dim`), or the split
/// decode attention's tasks and partials ([`crate::flash::SplitPlan`]); plus the
/// per-head path's f16 query row per thread. Memory estimates (`alc fit`) count it.
pub fn scratch_bytes(
    threads: usize,
    ubatch: usize,
    act_row_bytes: usize,
    act_sums: usize,
    ctx: usize,
    (n_head, n_kv_head, hd): (usize, usize, usize),
) -> u64 {
    let th = threads.max(1);
    let g = (n_head / n_kv_head.max(1)).max(1);
    let nq = crate::flash::tokens_per_task(g) * g;
    let tiled = crate::flash::scratch_floats(hd, nq);
    #[cfg(target_arch = "x86_64")]
    let tiled = tiled.max(crate::flash512::scratch_floats(hd, nq));
    let floats = (th * (ctx + 3 * hd)).max(th * tiled);
    #[cfg(target_arch = "x86_64")]
    let floats = floats.max(crate::flash::SplitPlan::scratch_bound(n_head, hd, th));
    let attn = floats * 4 + th * hd * 2;
    let act = ubatch * (act_row_bytes + act_sums * 4);
    (act + attn) as u64
}

/// Bytes of the CPU backend's scratch for an encoder pass (BERT, a SigLIP tile) over
/// segments of at most `seg_len` rows with heads of `head_dim`: per thread the
/// attention buffers and one GEMM pack block. The quantized activations of quantized
/// weights come on top ([`scratch_bytes`]' `act` part, with the encoder's rows).
pub fn encoder_scratch_bytes(threads: usize, seg_len: usize, head_dim: usize) -> u64 {
    let attn = encoder::attention_scratch_floats(seg_len, head_dim);
    let pack = gemm::packed_len(gemm::KC, GEMM_COLS);
    (threads.max(1) * (attn + pack) * 4) as u64
}

impl CpuBackend {
    pub fn new(n_threads: usize) -> Self {
        // The SIMD attention, gates and norms follow the dot kernels' choice, so
        // that ALC_QUANT_FORCE_SCALAR runs the whole backend on its scalar path.
        let simd = has_avx2() && alc_quant::isa() != "scalar";
        let b = CpuBackend {
            pool: ThreadPool::new(n_threads),
            act: Mutex::new(Vec::new()),
            act_sums: Mutex::new(Vec::new()),
            attn: Mutex::new(Vec::new()),
            attn16: Mutex::new(Vec::new()),
            gemm_pack: Mutex::new(Vec::new()),
            unfused: Mutex::new(Vec::new()),
            simd,
            attn512: simd && has_avx512() && std::env::var_os("ALC_KERNELS_NO_AVX512").is_none(),
        };
        tracing::debug!(
            "cpu backend: dot kernels {}, attention {}, {} threads",
            alc_quant::isa(),
            b.attention_isa(),
            b.pool.n_threads()
        );
        b
    }

    /// This backend with prompt attention on the AVX2 kernels even where AVX-512F
    /// is present (the conformance kit runs both).
    pub fn without_avx512(mut self) -> Self {
        self.attn512 = false;
        self
    }

    /// The attention kernels' instruction set: "avx512f" (prompts; decode stays
    /// AVX2), "avx2+f16c" or "scalar".
    pub fn attention_isa(&self) -> &'static str {
        match (self.simd, self.attn512) {
            (true, true) => "avx512f",
            (true, false) => "avx2+f16c",
            _ => "scalar",
        }
    }

    pub fn n_threads(&self) -> usize {
        self.pool.n_threads()
    }

    pub fn pool(&self) -> &ThreadPool {
        &self.pool
    }

    /// Whether [`Self::matmul_group`] runs these weights on the blocked GEMM (float
    /// weights, many tokens), which writes its results directly (no [`Epi`]).
    fn takes_gemm(ws: &[Weight<'_>], n: usize) -> bool {
        n >= GEMM_MIN_TOKENS
            && matches!(ws[0].dtype, DType::F32 | DType::F16 | DType::BF16)
            && ws.iter().all(|w| w.layout == Layout::Rows)
    }

    /// The gated activation as [`Backend::gated_act`] computes it, on one run.
    #[inline]
    fn act(&self, gate: &mut [f32], up: &[f32], gelu: bool) {
        if !self.simd {
            gated_act_slice(gate, up, gelu);
        } else if gelu {
            simd::gelu_mul(gate, up);
        } else {
            simd::silu_mul(gate, up);
        }
    }

    /// `outs[i] = ws[i] · x` for weights of one dtype and input width: the input is
    /// quantized once, and one job runs the row tiles of all the weights. `epi`
    /// says how results reach `outs` ([`Epi::Gated`]: `ws = [gate, up]`, one output).
    fn matmul_group(
        &self,
        ws: &[Weight<'_>],
        x: &[f32],
        n: usize,
        outs: &[SyncPtr<f32>],
        epi: Epi,
    ) {
        let (dtype, cols) = (ws[0].dtype, ws[0].cols);
        debug_assert!(
            ws.len() <= MAX_GROUP && ws.iter().all(|w| w.dtype == dtype && w.cols == cols)
        );
        debug_assert!(x.len() >= n * cols);
        if n == 0 {
            return;
        }
        if Self::takes_gemm(ws, n) {
            debug_assert_eq!(epi, Epi::Store, "the GEMM path has no epilogue");
            return self.matmul_gemm(ws, x, n, outs);
        }
        let nth = self.pool.n_threads();
        let arb = alc_quant::act_row_bytes(dtype, cols).expect("executed type");
        let mut act = self.act.lock().unwrap_or_else(|e| e.into_inner());
        if act.len() < n * arb {
            act.resize(n * arb, 0);
        }
        // Packed weights of some types need per-block activation sums.
        let any_packed = ws.iter().any(|w| w.layout == Layout::Packed8);
        let ns = if any_packed {
            packed::act_sums_len(dtype, cols)
        } else {
            0
        };
        let mut sums = self.act_sums.lock().unwrap_or_else(|e| e.into_inner());
        if sums.len() < n * ns {
            sums.resize(n * ns, 0);
        }
        // Quantize the activations once for all the weights.
        let actp = SyncPtr(act.as_mut_ptr());
        let sump = SyncPtr(sums.as_mut_ptr());
        let quant = |t: usize| {
            // SAFETY: token t owns act[t*arb..(t+1)*arb] and sums[t*ns..(t+1)*ns].
            let dst = unsafe { actp.slice(t * arb, arb) };
            alc_quant::quantize_act(dtype, &x[t * cols..(t + 1) * cols], dst)
                .expect("executed type");
            if ns > 0 {
                let s = unsafe { sump.slice(t * ns, ns) };
                packed::act_sums(dtype, cols, dst, s).expect("packed type");
            }
        };
        if n < PAR_MIN_TOKENS {
            (0..n).for_each(quant);
        } else {
            let chunks = n_chunks(n, nth, CHUNKS_PER_THREAD, 1);
            self.pool
                .run(chunks, |_, c| split_range(n, chunks, c).for_each(quant));
        }
        let act: &[u8] = &act;
        let sums: &[i32] = &sums;
        // One dtype and width, so one row size for every weight of the group, and
        // (for packed weights) one packed group size and token count per call.
        let rb = dtype.row_bytes(cols as u64).expect("validated shape") as usize;
        // 16-row kernels for prompts only: at one token (decode, memory-bound) the
        // 8-row kernel with its prefetch streams faster (Zen 5: SmolLM2 Q4_0 tg64
        // 445 vs 416 tok/s with the 16-row one, prefetching both groups).
        let wide = any_packed && n > 1 && packed::wide(dtype);
        let gb = if any_packed {
            packed::packed_len(dtype, cols, packed::ROWS)
                .expect("packed shape checked at pack time")
        } else {
            0
        };
        // Row tiles of all the weights, numbered consecutively; a chunk is a run of
        // whole tiles, so threads never share cache lines of weights. Gated: tiles
        // of the gate only, each running the same rows of the up weight too.
        let gated = matches!(epi, Epi::Gated(_));
        debug_assert!(!gated || (ws.len() == 2 && ws[0].rows == ws[1].rows));
        debug_assert!(!gated || ws[0].layout == ws[1].layout);
        let tiled = if gated { &ws[..1] } else { ws };
        let emit = |o: &mut [f32], src: &mut [f32], up: &[f32]| match epi {
            Epi::Store => copy_rows(o, src),
            Epi::Add => add_rows(o, src),
            Epi::Gated(gelu) => {
                self.act(src, up, gelu);
                copy_rows(o, src);
            }
        };
        let tiles = RowTiles::new(tiled, ROW_TILE);
        let total = tiles.total();
        let chunks = n_chunks(total, nth, CHUNKS_PER_THREAD, 1);
        // Tokens per pass over the chunk's tiles: their quantized activations stay in
        // L2 while the tiles stream past (a down projection's 512 tokens would not).
        let token_block = (ACT_L2_BUDGET / arb).max(TOKEN_GROUP) / TOKEN_GROUP * TOKEN_GROUP;
        self.pool.run(chunks, |_, c| {
            let mut buf = [0f32; ROW_TILE * TOKEN_GROUP];
            let mut ubuf = [0f32; ROW_TILE * TOKEN_GROUP];
            let mut pbuf = [0f32; 2 * packed::ROWS * PACKED_RUN];
            let mut upbuf = [0f32; 2 * packed::ROWS * PACKED_RUN];
            let mut t0 = 0;
            while t0 < n {
                let t_end = (t0 + token_block).min(n);
                for tile in split_range(total, chunks, c) {
                    let (i, r0, nr) = tiles.locate(tile, tiled);
                    let w = &ws[i];
                    let r1 = r0 + nr;
                    if w.layout == Layout::Packed8 {
                        // Whole groups (packing needs rows % 8 == 0); each group's
                        // weights stay in L1 while the token block streams past.
                        // Two groups per call where a 16-row kernel exists.
                        let g_end = r1.div_ceil(packed::ROWS);
                        let mut g = r0 / packed::ROWS;
                        while g < g_end {
                            let ng = if wide && g + 1 < g_end { 2 } else { 1 };
                            let rows = ng * packed::ROWS;
                            let groups = &w.data[g * gb..(g + ng) * gb];
                            let mut t = t0;
                            while t < t_end {
                                // One checked call per run of tokens; the kernels
                                // take them a few at a time inside.
                                let k = (t_end - t).min(PACKED_RUN);
                                let (a, s) = (&act[t * arb..], &sums[t * ns..]);
                                let out = &mut pbuf[..k * rows];
                                packed::dot_groups(dtype, cols, groups, ng, a, arb, s, ns, k, out);
                                let up = &mut upbuf[..k * rows];
                                if gated {
                                    let ug = &ws[1].data[g * gb..(g + ng) * gb];
                                    packed::dot_groups(dtype, cols, ug, ng, a, arb, s, ns, k, up);
                                }
                                for j in 0..k {
                                    let at = (t + j) * w.rows + g * packed::ROWS;
                                    let src = &mut out[j * rows..(j + 1) * rows];
                                    // SAFETY: rows of groups g..g+ng belong to this chunk only.
                                    let o = unsafe { outs[i].slice(at, rows) };
                                    emit(o, src, &up[j * rows..(j + 1) * rows]);
                                }
                                t += k;
                            }
                            g += ng;
                        }
                        continue;
                    }
                    let mut t = t0;
                    while t < t_end {
                        let k = (t_end - t).min(TOKEN_GROUP);
                        // k = 1 (decode) runs the streaming one-row kernels inside.
                        let dot = |w: &Weight<'_>, buf: &mut [f32]| {
                            alc_quant::dot_rows(
                                dtype,
                                cols,
                                &w.data[r0 * rb..r1 * rb],
                                rb,
                                nr,
                                &act[t * arb..],
                                arb,
                                k,
                                &mut buf[..nr * k],
                            )
                        };
                        dot(w, &mut buf);
                        if gated {
                            dot(&ws[1], &mut ubuf);
                        }
                        for j in 0..k {
                            // SAFETY: rows r0..r1 of weight i belong to this chunk only.
                            let o = unsafe { outs[i].slice((t + j) * w.rows + r0, nr) };
                            if k == 1 {
                                // One token (decode): the kernel's order is the output's.
                                emit(o, &mut buf[..nr], &ubuf[..nr]);
                                continue;
                            }
                            // Token j's results, out of the kernel's [row][token] order.
                            let mut src = [0f32; ROW_TILE];
                            let mut up = [0f32; ROW_TILE];
                            for r in 0..nr {
                                src[r] = buf[r * k + j];
                            }
                            if gated {
                                for r in 0..nr {
                                    up[r] = ubuf[r * k + j];
                                }
                            }
                            emit(o, &mut src[..nr], &up[..nr]);
                        }
                        t += k;
                    }
                }
                t0 = t_end;
            }
        });
    }
}

impl CpuBackend {
    /// [`Self::matmul_group`] for many tokens on plain float weights: the blocked
    /// GEMM of [`crate::gemm`], one task per block of [`GEMM_COLS`] weight rows (each
    /// thread packs its own block; nothing is shared but the input).
    fn matmul_gemm(&self, ws: &[Weight<'_>], x: &[f32], n: usize, outs: &[SyncPtr<f32>]) {
        let (dtype, cols) = (ws[0].dtype, ws[0].cols);
        let nth = self.pool.n_threads();
        let rb = dtype.row_bytes(cols as u64).expect("validated shape") as usize;
        // Smaller blocks when the weights are too few rows to give every thread two.
        let total_rows: usize = ws.iter().map(|w| w.rows).sum();
        let blk = (total_rows / (2 * nth) / gemm::NR * gemm::NR).clamp(gemm::NR, GEMM_COLS);
        let tiles = RowTiles::new(ws, blk);
        let per = gemm::packed_len(gemm::KC.min(cols), blk);
        let mut pack = self.gemm_pack.lock().unwrap_or_else(|e| e.into_inner());
        if pack.len() < per * nth {
            pack.resize(per * nth, 0.0);
        }
        let pp = SyncPtr(pack.as_mut_ptr());
        let simd = self.simd;
        self.pool.run(tiles.total(), |th, tile| {
            // SAFETY: thread `th` alone uses its slice of the pack buffer in this job.
            let buf = unsafe { pp.slice(th * per, per) };
            let (i, r0, nr) = tiles.locate(tile, ws);
            let w = &ws[i];
            let src = gemm::BSrc::Rows {
                dtype,
                data: w.data,
                stride: rb,
            };
            // SAFETY: x holds n rows of `cols`; output columns r0..r0+nr of weight i
            // (rows of `w.rows` floats, n of them) belong to this task only; `simd`
            // means AVX2 + FMA were detected.
            unsafe {
                gemm::gemm_cols(
                    simd,
                    x.as_ptr(),
                    cols,
                    n,
                    cols,
                    src,
                    r0,
                    nr,
                    outs[i].0.add(r0),
                    w.rows,
                    buf,
                )
            };
        });
    }

    /// Decode and short prompts: [`crate::flash::task`]s (or
    /// [`crate::decode512::task`]s) of all the KV heads over a run of tokens and a
    /// range of keys ([`crate::flash::SplitPlan`]), the ranges' partial results
    /// merged at the end.
    #[cfg(target_arch = "x86_64")]
    fn attention_split(&self, q: &[f32], k: &[f16], v: &[f16], s: &AttnShape, out: &mut [f32]) {
        use crate::flash;
        let (hd, g) = (s.head_dim, s.n_head / s.n_kv_head);
        let nth = self.pool.n_threads();
        let plan = flash::SplitPlan::new(s, nth);
        let tasks = plan.tasks();
        let wide = self.attn512 && crate::decode512::handles(s);
        let per = if wide {
            crate::decode512::scratch_floats(hd, plan.nq)
        } else {
            flash::scratch_floats(hd, plan.nq)
        };
        let mut scratch = self.attn.lock().unwrap_or_else(|e| e.into_inner());
        let need = nth * per + tasks * plan.part_len;
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        let sp = SyncPtr(scratch.as_mut_ptr());
        let outp = SyncPtr(out.as_mut_ptr());
        let chunks = n_chunks(tasks, nth, 4 * CHUNKS_PER_THREAD, 1);
        self.pool.run(chunks, |tid, c| {
            // SAFETY: each thread owns its scratch slice.
            let mine = unsafe { sp.slice(tid * per, per) };
            for i in split_range(tasks, chunks, c) {
                let (run, r) = (i / plan.splits, i % plan.splits);
                let t0 = run * plan.tpt;
                let t1 = (t0 + plan.tpt).min(s.n_tokens);
                let (keys, dst) = if plan.splits > 1 {
                    let at = nth * per + i * plan.part_len;
                    (
                        plan.lo + r * plan.step..plan.lo + (r + 1) * plan.step,
                        // SAFETY: task i owns its partials, after the threads'
                        // scratch.
                        flash::Dst::Part(unsafe { sp.slice(at, plan.part_len) }),
                    )
                } else {
                    (0..usize::MAX, flash::Dst::Out(outp))
                };
                let heads = 0..s.n_kv_head;
                // SAFETY: AVX2+FMA+F16C checked (`self.simd`; AVX-512F too where
                // `wide`), `handles(s)`, the caches hold the shape's rows, the
                // scratch is sized for the task, and (run, r) owns its rows of
                // `out` or its partials.
                unsafe {
                    if wide {
                        crate::decode512::task(q, k, v, s, heads, (t0, t1), keys, mine, dst)
                    } else {
                        flash::task(q, k, v, s, heads, (t0, t1), keys, mine, dst)
                    }
                };
            }
        });
        if plan.splits == 1 {
            return;
        }
        let parts = &scratch[nth * per..];
        let pf = flash::part_floats(hd);
        for t in 0..s.n_tokens {
            let (run, tr) = (t / plan.tpt, t % plan.tpt);
            // Queries of KV head kvh in this run's tasks.
            let ng = ((run + 1) * plan.tpt).min(s.n_tokens) - run * plan.tpt;
            let ng = ng * g;
            for h in 0..s.n_head {
                let i = (h / g) * ng + tr * g + h % g;
                let first = run * plan.splits * plan.part_len + i * pf;
                let o = (t * s.n_head + h) * hd;
                flash::merge(
                    &parts[first..],
                    plan.part_len,
                    plan.splits,
                    &mut out[o..o + hd],
                );
            }
        }
    }

    /// Prompt attention ([`crate::flash`]): one task per (KV head, run of tokens),
    /// the latest tokens (the longest causal rows) first.
    #[cfg(target_arch = "x86_64")]
    fn attention_tiled(&self, q: &[f32], k: &[f16], v: &[f16], s: &AttnShape, out: &mut [f32]) {
        use crate::flash;
        let g = s.n_head / s.n_kv_head;
        let tpt = flash::tokens_per_task(g);
        let runs = s.n_tokens.div_ceil(tpt);
        let tasks = runs * s.n_kv_head;
        let wide = self.attn512;
        let per = if wide {
            crate::flash512::scratch_floats(s.head_dim, tpt * g)
        } else {
            flash::scratch_floats(s.head_dim, tpt * g)
        };
        let nth = self.pool.n_threads();
        let mut scratch = self.attn.lock().unwrap_or_else(|e| e.into_inner());
        if scratch.len() < nth * per {
            scratch.resize(nth * per, 0.0);
        }
        let sp = SyncPtr(scratch.as_mut_ptr());
        let outp = SyncPtr(out.as_mut_ptr());
        let chunks = n_chunks(tasks, nth, 4 * CHUNKS_PER_THREAD, 1);
        self.pool.run(chunks, |tid, c| {
            // SAFETY: each thread owns its scratch slice.
            let mine = unsafe { sp.slice(tid * per, per) };
            for i in split_range(tasks, chunks, c).map(|i| tasks - 1 - i) {
                let (run, kvh) = (i / s.n_kv_head, i % s.n_kv_head);
                let t0 = run * tpt;
                let t1 = (t0 + tpt).min(s.n_tokens);
                // SAFETY: AVX2+FMA+F16C checked (`self.simd`; AVX-512F too where
                // `wide`), `handles(s)`, the caches hold the shape's rows, the
                // scratch is sized for the task, and (run, kvh) owns its rows of
                // `out`.
                unsafe {
                    if wide {
                        crate::flash512::task(q, k, v, s, kvh, t0, t1, mine, outp)
                    } else {
                        flash::task(
                            q,
                            k,
                            v,
                            s,
                            kvh..kvh + 1,
                            (t0, t1),
                            0..usize::MAX,
                            mine,
                            flash::Dst::Out(outp),
                        )
                    }
                };
            }
        });
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!(
            "cpu ({}, {} threads)",
            alc_quant::isa(),
            self.pool.n_threads()
        )
    }

    fn supports(&self, dtype: DType) -> bool {
        dtype.is_executed()
    }

    /// The types [`packed::supports`] ([`packed::TYPES`] with AVX2) in matrices with
    /// a multiple of 8 rows: interleaved 8 rows per block ([`packed`]), packed by
    /// the pool threads.
    fn packed_len(&self, w: &Weight<'_>) -> Option<usize> {
        if w.layout != Layout::Rows
            || !packed::supports(w.dtype)
            || !w.rows.is_multiple_of(packed::ROWS)
        {
            return None;
        }
        packed::packed_len(w.dtype, w.cols, w.rows).ok()
    }

    fn pack_into(&self, w: &Weight<'_>, out: &mut [u8]) {
        let Some(len) = self.packed_len(w) else {
            return;
        };
        assert_eq!(out.len(), len, "pack_into: output is not packed_len bytes");
        let groups = w.rows / packed::ROWS;
        // Bytes of one group packed, and in the source rows (equal except Q4_K).
        let gb = len / groups.max(1);
        let sgb = w.dtype.row_bytes(w.cols as u64).expect("packable shape") as usize * packed::ROWS;
        let dst = SyncPtr(out.as_mut_ptr());
        let chunks = n_chunks(groups, self.pool.n_threads(), CHUNKS_PER_THREAD, 1);
        self.pool.run(chunks, |_, c| {
            let r = split_range(groups, chunks, c);
            let rows = r.len() * packed::ROWS;
            // SAFETY: chunk c owns groups r of the output.
            let o = unsafe { dst.slice(r.start * gb, r.len() * gb) };
            packed::pack_into(
                w.dtype,
                w.cols,
                rows,
                &w.data[r.start * sgb..r.end * sgb],
                o,
            )
            .expect("shape checked by packed_len");
        });
    }

    fn matmul(&self, w: &Weight<'_>, x: &[f32], n: usize, out: &mut [f32]) {
        debug_assert!(out.len() >= n * w.rows);
        let out = [SyncPtr(out.as_mut_ptr())];
        self.matmul_group(std::slice::from_ref(w), x, n, &out, Epi::Store);
    }

    fn matmul_many(&self, ws: &[Weight<'_>], x: &[f32], n: usize, outs: &mut [&mut [f32]]) {
        assert_eq!(ws.len(), outs.len(), "matmul_many: one output per weight");
        let shared = ws.len() <= MAX_GROUP
            && ws
                .windows(2)
                .all(|p| p[0].dtype == p[1].dtype && p[0].cols == p[1].cols);
        if !shared {
            for (w, o) in ws.iter().zip(outs.iter_mut()) {
                self.matmul(w, x, n, o);
            }
            return;
        }
        let mut ptrs = [SyncPtr(std::ptr::null_mut()); MAX_GROUP];
        for (i, (w, o)) in ws.iter().zip(outs.iter_mut()).enumerate() {
            debug_assert!(o.len() >= n * w.rows);
            ptrs[i] = SyncPtr(o.as_mut_ptr());
        }
        self.matmul_group(ws, x, n, &ptrs[..ws.len()], Epi::Store);
    }

    fn matmul_add(&self, w: &Weight<'_>, x: &[f32], n: usize, out: &mut [f32]) {
        assert!(out.len() >= n * w.rows, "matmul_add: output too short");
        let ws = std::slice::from_ref(w);
        if Self::takes_gemm(ws, n) {
            let mut tmp = self.unfused.lock().unwrap_or_else(|e| e.into_inner());
            tmp.resize(n * w.rows, 0.0);
            self.matmul(w, x, n, &mut tmp);
            add_rows(&mut out[..n * w.rows], &tmp);
            return;
        }
        self.matmul_group(ws, x, n, &[SyncPtr(out.as_mut_ptr())], Epi::Add);
    }

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
        let ws = [*gate, *up];
        let same = gate.dtype == up.dtype
            && gate.cols == up.cols
            && gate.rows == up.rows
            && gate.layout == up.layout;
        if !same || Self::takes_gemm(&ws, n) {
            self.matmul_many(&ws, x, n, &mut [&mut *out, &mut *up_out]);
            self.gated_act(&mut out[..n * gate.rows], &up_out[..n * up.rows], gelu);
            return;
        }
        assert!(out.len() >= n * gate.rows, "matmul_gated: output too short");
        self.matmul_group(&ws, x, n, &[SyncPtr(out.as_mut_ptr())], Epi::Gated(gelu));
    }

    fn rms_norm(&self, x: &mut [f32], w: &[f32], eps: f32) {
        let d = w.len();
        let n = x.len() / d;
        if n < PAR_MIN_TOKENS {
            x.chunks_exact_mut(d).for_each(|r| rms_norm_row(r, w, eps));
            return;
        }
        let xp = SyncPtr(x.as_mut_ptr());
        let chunks = n_chunks(n, self.pool.n_threads(), CHUNKS_PER_THREAD, 1);
        self.pool.run(chunks, |_, c| {
            for t in split_range(n, chunks, c) {
                // SAFETY: row t belongs to this chunk only.
                rms_norm_row(unsafe { xp.slice(t * d, d) }, w, eps);
            }
        });
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
        let row = n_head * head_dim;
        let n = x.len() / row;
        let xp = SyncPtr(x.as_mut_ptr());
        let work = |range: std::ops::Range<usize>| {
            let mut cs = [(0f32, 0f32); 256];
            let cs = &mut cs[..rot_dim / 2];
            for t in range {
                rope_table(pos0 + t, rot_dim, freq_base, freq_scale, cs);
                // SAFETY: row t belongs to this chunk only.
                let r = unsafe { xp.slice(t * row, row) };
                for head in r.chunks_exact_mut(head_dim) {
                    rope_head(head, cs, style);
                }
            }
        };
        if n < PAR_MIN_TOKENS {
            work(0..n);
        } else {
            let chunks = n_chunks(n, self.pool.n_threads(), CHUNKS_PER_THREAD, 1);
            self.pool
                .run(chunks, |_, c| work(split_range(n, chunks, c)));
        }
    }

    fn attention(&self, q: &[f32], k: &[f16], v: &[f16], s: &AttnShape, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.simd && crate::flash::handles(s) {
            if s.n_tokens >= crate::flash::MIN_TOKENS {
                self.attention_tiled(q, k, v, s, out);
            } else {
                self.attention_split(q, k, v, s, out);
            }
            return;
        }
        let hd = s.head_dim;
        let nth = self.pool.n_threads();
        let per = s.ctx + 3 * hd;
        let mut scratch = self.attn.lock().unwrap_or_else(|e| e.into_inner());
        let mut scratch16 = self.attn16.lock().unwrap_or_else(|e| e.into_inner());
        if scratch16.len() < nth * hd {
            scratch16.resize(nth * hd, f16::ZERO);
        }
        let sp16 = SyncPtr(scratch16.as_mut_ptr());
        if scratch.len() < nth * per {
            scratch.resize(nth * per, 0.0);
        }
        let sp = SyncPtr(scratch.as_mut_ptr());
        let outp = SyncPtr(out.as_mut_ptr());
        let tasks = s.n_tokens * s.n_head;
        let simd = self.simd;
        let chunks = n_chunks(tasks, nth, 4 * CHUNKS_PER_THREAD, 1);
        self.pool.run(chunks, |tid, c| {
            // SAFETY: each thread owns its scratch slice.
            let mine = unsafe { sp.slice(tid * per, per) };
            let (scores, rest) = mine.split_at_mut(s.ctx);
            let (kbuf, rest) = rest.split_at_mut(hd);
            let acc = &mut rest[..hd];
            // SAFETY: each thread owns its f16 scratch slice.
            let q16 = unsafe { sp16.slice(tid * hd, hd) };
            // Longest causal rows (last tokens) first, so that the short ones fill in
            // at the end.
            for i in split_range(tasks, chunks, c).map(|i| tasks - 1 - i) {
                let (t, h) = (i / s.n_head, i % s.n_head);
                let base = (t * s.n_head + h) * hd;
                let qh = &q[base..base + hd];
                if simd {
                    attend_one_fast(qh, k, v, s, t, h, q16, acc);
                } else {
                    crate::reference::attend_one(qh, k, v, s, t, h, scores, kbuf, acc);
                }
                // SAFETY: (t, h) output belongs to this task.
                unsafe { outp.slice(base, hd) }.copy_from_slice(acc);
            }
        });
    }

    fn gated_act(&self, gate: &mut [f32], up: &[f32], gelu: bool) {
        let n = gate.len();
        assert_eq!(up.len(), n, "gated_act: gate and up differ in length");
        if n < 8192 {
            self.act(gate, up, gelu);
            return;
        }
        let gp = SyncPtr(gate.as_mut_ptr());
        let chunks = n_chunks(n, self.pool.n_threads(), CHUNKS_PER_THREAD, 4096);
        self.pool.run(chunks, |_, c| {
            let r = split_range(n, chunks, c);
            // SAFETY: range r belongs to this chunk only.
            let g = unsafe { gp.slice(r.start, r.len()) };
            self.act(g, &up[r], gelu);
        });
    }

    fn add_layer_norm(
        &self,
        x: &mut [f32],
        r: Option<(&[f32], &[f32])>,
        w: &[f32],
        b: &[f32],
        eps: f32,
    ) {
        encoder::add_layer_norm(&self.pool, self.simd, x, r, w, b, eps)
    }

    fn bias_gelu(&self, x: &mut [f32], bias: &[f32]) {
        encoder::bias_gelu(&self.pool, self.simd, x, bias)
    }

    fn bias_gelu_tanh(&self, x: &mut [f32], bias: &[f32]) {
        encoder::bias_gelu_tanh(&self.pool, self.simd, x, bias)
    }

    fn attention_segments(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: &encoder::SegAttn,
        out: &mut [f32],
    ) {
        encoder::attention_segments(&self.pool, self.simd, q, k, v, s, out)
    }
}

/// `dst.copy_from_slice(src)` for one token's results of one or two packed groups,
/// 8 floats at a time: a copy of constant length compiles to two vector moves, where
/// `copy_from_slice` of the run-time length called `memcpy`, whose dispatch cost
/// 6.5 % of a SmolLM2 prompt (64-byte copies, one per token and group pair).
/// Any length; the tail past the last multiple of 8 is copied element by element.
#[inline(always)]
fn copy_rows(dst: &mut [f32], src: &[f32]) {
    debug_assert_eq!(dst.len(), src.len());
    let mut d = dst.chunks_exact_mut(packed::ROWS);
    let mut s = src.chunks_exact(packed::ROWS);
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(s);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// `dst += src` elementwise ([`copy_rows`]' accumulating form).
#[inline(always)]
fn add_rows(dst: &mut [f32], src: &[f32]) {
    debug_assert_eq!(dst.len(), src.len());
    for (d, s) in dst.iter_mut().zip(src) {
        *d += *s;
    }
}

fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::flash512::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Attention for one query head as llama.cpp's CPU flash attention computes scores
/// (q rounded to f16, q·k in f32 over f16 inputs), online softmax, and the value
/// accumulator in f32. llama.cpp keeps that accumulator in f16, rounded after every
/// scale and multiply-add; the two conversions per 8 values and key that cost were
/// 10 % of decode at a depth of 2048 (SmolLM2), and f32 is the more accurate sum
/// (greedy continuations still equal llama.cpp's). `acc` receives the result; `q16`
/// is scratch.
#[allow(clippy::too_many_arguments)]
#[inline]
fn attend_one_fast(
    q: &[f32],
    k: &[f16],
    v: &[f16],
    s: &AttnShape,
    t: usize,
    h: usize,
    q16: &mut [f16],
    acc: &mut [f32],
) {
    let kvh = h / (s.n_head / s.n_kv_head);
    let p = s.pos0 + t;
    let j0 = first_visible(p, s.window);
    half::slice::HalfFloatSliceExt::convert_from_f32_slice(q16, q);
    #[cfg(target_arch = "x86_64")]
    {
        let hd = s.head_dim;
        let row = s.n_kv_head * hd;
        // The whole key loop in one function with the accumulator in registers, for
        // the common head sizes; same arithmetic, operation for operation.
        let (kh, vh) = (&k[kvh * hd..], &v[kvh * hd..]);
        debug_assert!(p * row + hd <= kh.len() && p * row + hd <= vh.len());
        // SAFETY: callers checked AVX2+FMA+F16C; rows j0..=p of this head lie inside
        // the cache slices (asserted by the caller's shape, debug-checked above).
        let done = unsafe {
            match hd {
                64 => simd::x86::attend::<8>(q16, kh, vh, row, j0, p, s.scale, s.softcap, acc),
                128 => simd::x86::attend::<16>(q16, kh, vh, row, j0, p, s.scale, s.softcap, acc),
                256 => simd::x86::attend::<32>(q16, kh, vh, row, j0, p, s.scale, s.softcap, acc),
                _ => false,
            }
        };
        if done {
            return;
        }
    }
    attend_one_slices(q16, k, v, s, kvh, j0, p, acc);
}

/// The generic key loop of [`attend_one_fast`] over f16 slices (any head size); `q16`
/// holds the rounded query.
#[allow(clippy::too_many_arguments)]
#[inline]
fn attend_one_slices(
    q16: &[f16],
    k: &[f16],
    v: &[f16],
    s: &AttnShape,
    kvh: usize,
    j0: usize,
    p: usize,
    acc: &mut [f32],
) {
    let hd = s.head_dim;
    let row = s.n_kv_head * hd;
    let acc = &mut acc[..hd];
    acc.fill(0.0);
    let (mut m, mut sum) = (f32::NEG_INFINITY, 0f32);
    for j in j0..=p {
        let off = j * row + kvh * hd;
        let mut sc = simd::dot_f16_f16(q16, &k[off..off + hd]) * s.scale;
        if let Some(cap) = s.softcap {
            sc = cap * (sc / cap).tanh();
        }
        let (mut ms, mut vs) = (1f32, 1f32);
        if sc > m {
            ms = simd::exp_f32(m - sc);
            m = sc;
            simd::scale_f32(acc, ms);
        } else {
            vs = simd::exp_f32(sc - m);
        }
        simd::mad_f16_f32(acc, &v[off..off + hd], vs);
        sum = sum * ms + vs;
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    acc.iter_mut().for_each(|a| *a *= inv);
}

/// f16 helpers; callers have checked AVX2+FMA+F16C (see `has_avx2`). The scalar
/// fallbacks round exactly like the SIMD code (f32 arithmetic, round-to-nearest-even
/// into f16).
pub(crate) mod simd {
    use half::f16;

    // Cephes' single-precision exp: range reduction by ln 2 in two parts, a degree-5
    // polynomial, scaling by 2^n. Within 2 ulp of the true exp on [-87, 88]; 0 below.
    pub(crate) const EXP_MIN: f32 = -87.0;
    pub(crate) const EXP_MAX: f32 = 88.0;
    pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
    pub(crate) const LN2_HI: f32 = 0.693_359_4;
    pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
    pub(crate) const EXP_P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];

    /// exp(x) by [`x86::exp8`]'s arithmetic, operation for operation (fused
    /// multiply-adds included), so that the scalar and vector attention loops agree
    /// bit for bit.
    #[inline]
    pub fn exp_f32(x: f32) -> f32 {
        if x < EXP_MIN {
            return 0.0;
        }
        let x = x.min(EXP_MAX);
        let n = (x * LOG2E).round_ties_even();
        let r = (-n).mul_add(LN2_HI, x);
        let r = (-n).mul_add(LN2_LO, r);
        let z = r * r;
        let mut y = EXP_P[0];
        for &c in &EXP_P[1..] {
            y = y.mul_add(r, c);
        }
        let y = y.mul_add(z, r) + 1.0;
        y * f32::from_bits(((n as i32 + 127) as u32) << 23)
    }

    /// gate = silu(gate) · up, where silu(x) = x / (1 + exp(−x)) with [`exp_f32`]'s
    /// arithmetic (8 lanes at a time, the tail in scalar code of the same arithmetic).
    #[inline]
    pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
        let n = gate.len().min(up.len());
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only called when AVX2, FMA and F16C were detected.
        let i = unsafe { x86::silu_mul(gate, up) };
        #[cfg(not(target_arch = "x86_64"))]
        let i = 0;
        for (g, u) in gate[i..n].iter_mut().zip(&up[i..n]) {
            *g = *g / (1.0 + exp_f32(-*g)) * u;
        }
    }

    /// gate = [`crate::gelu_f16`](gate) · up: the same table lookup (by the f16
    /// rounding of the input) and the same saturation, 8 lanes at a time with a
    /// gather; bit-identical to the scalar function.
    #[inline]
    pub fn gelu_mul(gate: &mut [f32], up: &[f32]) {
        let n = gate.len().min(up.len());
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only called when AVX2, FMA and F16C were detected.
        let i = unsafe { x86::gelu_mul(gate, up, crate::gelu_table()) };
        #[cfg(not(target_arch = "x86_64"))]
        let i = 0;
        for (g, u) in gate[i..n].iter_mut().zip(&up[i..n]) {
            *g = crate::gelu_f16(*g) * u;
        }
    }

    /// Σ a·b over f16 inputs, accumulated in f32.
    #[inline]
    pub fn dot_f16_f16(a: &[f16], b: &[f16]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only called when AVX2, FMA and F16C were detected.
        unsafe {
            x86::dot_f16_f16(a, b)
        }
        #[cfg(not(target_arch = "x86_64"))]
        a.iter().zip(b).map(|(x, y)| x.to_f32() * y.to_f32()).sum()
    }

    /// y = y · s (the vector loop's arithmetic: one rounding per element)
    #[inline]
    pub fn scale_f32(y: &mut [f32], s: f32) {
        y.iter_mut().for_each(|v| *v *= s);
    }

    /// y = fma(x, s, y) with f16 `x`: one rounding per element, as the vector FMA
    #[inline]
    pub fn mad_f16_f32(y: &mut [f32], x: &[f16], s: f32) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only called when AVX2, FMA and F16C were detected.
        let i = unsafe { x86::mad_f16_f32(y, x, s) };
        #[cfg(not(target_arch = "x86_64"))]
        let i = 0;
        for (a, b) in y[i..].iter_mut().zip(&x[i..]) {
            *a = b.to_f32().mul_add(s, *a);
        }
    }

    #[cfg(target_arch = "x86_64")]
    pub(crate) mod x86 {
        use half::f16;
        use std::arch::x86_64::*;

        #[inline(always)]
        unsafe fn load8(p: *const f16) -> __m256 {
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
        }

        /// Σ of the 8 lanes: halves, then pairs, then the last two (the order every
        /// SIMD reduction here uses, so that loops built from it agree bit for bit).
        #[inline(always)]
        pub(crate) unsafe fn hsum(v: __m256) -> f32 {
            unsafe {
                let s4 = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
                let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
                _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)))
            }
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn dot_f16_f16(a: &[f16], b: &[f16]) -> f32 {
            let n = a.len().min(b.len());
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            unsafe {
                while i + 32 <= n {
                    for (u, r) in acc.iter_mut().enumerate() {
                        let o = i + 8 * u;
                        *r =
                            _mm256_fmadd_ps(load8(a.as_ptr().add(o)), load8(b.as_ptr().add(o)), *r);
                    }
                    i += 32;
                }
                while i + 8 <= n {
                    acc[0] =
                        _mm256_fmadd_ps(load8(a.as_ptr().add(i)), load8(b.as_ptr().add(i)), acc[0]);
                    i += 8;
                }
                let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                let mut r = hsum(s);
                while i < n {
                    r += a[i].to_f32() * b[i].to_f32();
                    i += 1;
                }
                r
            }
        }

        /// [`super::silu_mul`]'s vector body; returns how many elements it did (a
        /// multiple of 8).
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn silu_mul(gate: &mut [f32], up: &[f32]) -> usize {
            let n = gate.len().min(up.len());
            let mut i = 0;
            // SAFETY: i + 8 <= n for every access.
            unsafe {
                let one = _mm256_set1_ps(1.0);
                let sign = _mm256_set1_ps(-0.0);
                while i + 8 <= n {
                    let x = _mm256_loadu_ps(gate.as_ptr().add(i));
                    let e = exp8(_mm256_xor_ps(x, sign));
                    let s = _mm256_div_ps(x, _mm256_add_ps(one, e));
                    let u = _mm256_loadu_ps(up.as_ptr().add(i));
                    _mm256_storeu_ps(gate.as_mut_ptr().add(i), _mm256_mul_ps(s, u));
                    i += 8;
                }
            }
            i
        }

        /// [`super::gelu_mul`]'s vector body (`table`: 65 536 entries, indexed by
        /// f16 bits); returns how many elements it did (a multiple of 8).
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn gelu_mul(gate: &mut [f32], up: &[f32], table: &[f32]) -> usize {
            assert_eq!(table.len(), 1 << 16, "gelu table");
            let n = gate.len().min(up.len());
            let mut i = 0;
            // SAFETY: i + 8 <= n for every access; gather indices are u16 values,
            // in bounds of the 65 536-entry table.
            unsafe {
                let (lo, hi) = (_mm256_set1_ps(-10.0), _mm256_set1_ps(10.0));
                while i + 8 <= n {
                    let x = _mm256_loadu_ps(gate.as_ptr().add(i));
                    let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
                    let idx = _mm256_cvtepu16_epi32(h);
                    let g = _mm256_i32gather_ps::<4>(table.as_ptr(), idx);
                    // x <= -10: 0; x >= 10: x; otherwise the table.
                    let g = _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(x, lo), g);
                    let g = _mm256_blendv_ps(g, x, _mm256_cmp_ps::<_CMP_GE_OQ>(x, hi));
                    let u = _mm256_loadu_ps(up.as_ptr().add(i));
                    _mm256_storeu_ps(gate.as_mut_ptr().add(i), _mm256_mul_ps(g, u));
                    i += 8;
                }
            }
            i
        }

        /// Eight lanes of [`super::exp_f32`].
        #[inline(always)]
        pub(crate) unsafe fn exp8(x: __m256) -> __m256 {
            use super::{EXP_MAX, EXP_MIN, EXP_P, LN2_HI, LN2_LO, LOG2E};
            unsafe {
                let keep = _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_set1_ps(EXP_MIN));
                let x = _mm256_min_ps(
                    _mm256_max_ps(x, _mm256_set1_ps(EXP_MIN)),
                    _mm256_set1_ps(EXP_MAX),
                );
                let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
                );
                let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
                let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
                let z = _mm256_mul_ps(r, r);
                let mut y = _mm256_set1_ps(EXP_P[0]);
                for &c in &EXP_P[1..] {
                    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
                }
                let y = _mm256_add_ps(_mm256_fmadd_ps(y, z, r), _mm256_set1_ps(1.0));
                let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                    _mm256_cvtps_epi32(n),
                    _mm256_set1_epi32(127),
                )));
                _mm256_and_ps(_mm256_mul_ps(y, pow2), keep)
            }
        }

        /// `attend_one_fast`'s key loop for head_dim = 8·G (G a multiple of 4), with
        /// the f32 accumulator in registers: the score is `dot_f16_f16` (same
        /// four-way accumulation and reduction), then the same scale and fused
        /// multiply-add per element as `attend_one_slices`. Writes the normalised
        /// result to `out` and returns true.
        #[target_feature(enable = "avx2,fma,f16c")]
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn attend<const G: usize>(
            q16: &[f16],
            k: &[f16],
            v: &[f16],
            row: usize,
            j0: usize,
            p: usize,
            scale: f32,
            softcap: Option<f32>,
            out: &mut [f32],
        ) -> bool {
            const { assert!(G.is_multiple_of(4)) };
            assert!(q16.len() >= 8 * G && out.len() >= 8 * G);
            assert!(k.len() >= p * row + 8 * G && v.len() >= p * row + 8 * G);
            unsafe {
                let mut qv = [_mm256_setzero_ps(); G];
                for (g, r) in qv.iter_mut().enumerate() {
                    *r = load8(q16.as_ptr().add(8 * g));
                }
                let mut acc = [_mm256_setzero_ps(); G];
                let (mut m, mut sum) = (f32::NEG_INFINITY, 0f32);
                // Keys in batches of 8: scores first, then the running maxima and the
                // exponent arguments exactly as the one-key-at-a-time loop forms them,
                // one vector exp for the batch, then the accumulator updates in order.
                let mut j = j0;
                while j <= p {
                    let nb = (p + 1 - j).min(8);
                    let mut args = [0f32; 8];
                    let mut new_max = [false; 8];
                    for i in 0..nb {
                        let kp = k.as_ptr().add((j + i) * row);
                        let mut d = [_mm256_setzero_ps(); 4];
                        for g4 in 0..G / 4 {
                            for (u, r) in d.iter_mut().enumerate() {
                                let g = 4 * g4 + u;
                                *r = _mm256_fmadd_ps(qv[g], load8(kp.add(8 * g)), *r);
                            }
                        }
                        let s8 =
                            _mm256_add_ps(_mm256_add_ps(d[0], d[1]), _mm256_add_ps(d[2], d[3]));
                        let mut sc = hsum(s8) * scale;
                        if let Some(cap) = softcap {
                            sc = cap * (sc / cap).tanh();
                        }
                        if sc > m {
                            args[i] = m - sc;
                            new_max[i] = true;
                            m = sc;
                        } else {
                            args[i] = sc - m;
                        }
                    }
                    let mut e = [0f32; 8];
                    _mm256_storeu_ps(e.as_mut_ptr(), exp8(_mm256_loadu_ps(args.as_ptr())));
                    for i in 0..nb {
                        let (ms, vs) = if new_max[i] {
                            (e[i], 1f32)
                        } else {
                            (1f32, e[i])
                        };
                        if new_max[i] {
                            let msv = _mm256_set1_ps(ms);
                            for a in acc.iter_mut() {
                                *a = _mm256_mul_ps(*a, msv);
                            }
                        }
                        let vp = v.as_ptr().add((j + i) * row);
                        let vsv = _mm256_set1_ps(vs);
                        for (g, a) in acc.iter_mut().enumerate() {
                            *a = _mm256_fmadd_ps(load8(vp.add(8 * g)), vsv, *a);
                        }
                        sum = sum * ms + vs;
                    }
                    j += nb;
                }
                let inv = _mm256_set1_ps(if sum == 0.0 { 0.0 } else { 1.0 / sum });
                for (g, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(out.as_mut_ptr().add(8 * g), _mm256_mul_ps(*a, inv));
                }
            }
            true
        }

        /// [`super::mad_f16_f32`]'s vector body; returns how many elements it did
        /// (a multiple of 8).
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn mad_f16_f32(y: &mut [f32], x: &[f16], s: f32) -> usize {
            let n = y.len().min(x.len());
            let sv = _mm256_set1_ps(s);
            let mut i = 0;
            unsafe {
                while i + 8 <= n {
                    let p = y.as_mut_ptr().add(i);
                    let r = _mm256_fmadd_ps(load8(x.as_ptr().add(i)), sv, _mm256_loadu_ps(p));
                    _mm256_storeu_ps(p, r);
                    i += 8;
                }
            }
            i
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    /// The vector exp equals the scalar one lane for lane, and both stay within 2 ulp
    /// of libm's exp over the range attention uses (arguments <= 0), 0 below -87.
    #[test]
    fn exp_vector_equals_scalar_and_is_accurate() {
        if !has_avx2() {
            return;
        }
        let mut rng = SmallRng::seed_from_u64(5);
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
            1.0,
        ]);
        for c in xs.chunks(8) {
            let mut lanes = [0f32; 8];
            lanes[..c.len()].copy_from_slice(c);
            let mut got = [0f32; 8];
            // SAFETY: AVX2+FMA+F16C checked above.
            unsafe {
                use std::arch::x86_64::*;
                _mm256_storeu_ps(
                    got.as_mut_ptr(),
                    simd::x86::exp8(_mm256_loadu_ps(lanes.as_ptr())),
                );
            }
            for (i, &x) in lanes.iter().enumerate() {
                let s = simd::exp_f32(x);
                assert_eq!(
                    got[i].to_bits(),
                    s.to_bits(),
                    "exp({x}): vector {} scalar {s}",
                    got[i]
                );
                if x < -87.0 {
                    assert_eq!(s, 0.0);
                } else {
                    let want = (x as f64).exp();
                    let ulp = (want as f32).abs() * f32::EPSILON;
                    assert!(
                        ((s as f64) - want).abs() <= 2.0 * ulp as f64,
                        "exp({x}) = {s}, want {want}"
                    );
                }
            }
        }
    }

    /// The register-resident key loop must equal the slice loop bit for bit (same
    /// operations in the same order), for every head size it serves.
    #[test]
    fn register_attention_equals_slice_attention_exactly() {
        if !has_avx2() {
            return;
        }
        let mut rng = SmallRng::seed_from_u64(11);
        for hd in [64usize, 128, 256] {
            for (p, window, softcap) in [
                (0usize, None, None),
                (37, None, None),
                (300, Some(64usize), None),
                (90, None, Some(30.0f32)),
            ] {
                let (nkv, nh) = (2usize, 4usize);
                let ctx = p + 1;
                let k: Vec<f16> = (0..ctx * nkv * hd)
                    .map(|_| f16::from_f32(rng.gen_range(-2.0..2.0)))
                    .collect();
                let v: Vec<f16> = (0..ctx * nkv * hd)
                    .map(|_| f16::from_f32(rng.gen_range(-2.0..2.0)))
                    .collect();
                let q: Vec<f32> = (0..hd).map(|_| rng.gen_range(-2.0..2.0)).collect();
                let s = AttnShape {
                    n_tokens: 1,
                    pos0: p,
                    n_head: nh,
                    n_kv_head: nkv,
                    head_dim: hd,
                    ctx,
                    scale: 0.125,
                    window,
                    softcap,
                };
                let h = 3;
                let kvh = h / (nh / nkv);
                let mut q16 = vec![f16::ZERO; hd];
                half::slice::HalfFloatSliceExt::convert_from_f32_slice(&mut q16[..], &q);
                let (mut a, mut b) = (vec![0f32; hd], vec![0f32; hd]);
                let mut q16b = q16.clone();
                attend_one_fast(&q, &k, &v, &s, 0, h, &mut q16b, &mut a);
                attend_one_slices(&q16, &k, &v, &s, kvh, first_visible(p, window), p, &mut b);
                assert_eq!(a, b, "hd {hd} p {p} window {window:?} softcap {softcap:?}");
            }
        }
    }

    /// The vectorised SiLU-gate stays within a few ulp of x / (1 + e^-x) · u in f64,
    /// for every length (vector body and scalar tail), including saturated inputs.
    #[test]
    fn silu_mul_matches_definition() {
        if !has_avx2() {
            return;
        }
        let mut rng = SmallRng::seed_from_u64(17);
        for n in [0usize, 1, 7, 8, 9, 31, 576, 1537] {
            let mut g: Vec<f32> = (0..n).map(|_| rng.gen_range(-12.0f32..12.0)).collect();
            if n > 4 {
                g[..4].copy_from_slice(&[-100.0, 100.0, 0.0, -88.5]);
            }
            let u: Vec<f32> = (0..n).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
            let mut got = g.clone();
            simd::silu_mul(&mut got, &u);
            for i in 0..n {
                let x = g[i] as f64;
                let want = x / (1.0 + (-x).exp()) * u[i] as f64;
                let tol = 4.0 * f32::EPSILON as f64 * want.abs() + 1e-30;
                assert!(
                    (got[i] as f64 - want).abs() <= tol,
                    "n {n} i {i}: silu({x}) * {} = {}, want {want}",
                    u[i],
                    got[i]
                );
            }
        }
    }

    /// The gathered GELU equals the scalar table lookup bit for bit, at every length
    /// and across the saturation points and special values.
    #[test]
    fn gelu_mul_equals_scalar() {
        if !has_avx2() {
            return;
        }
        let mut rng = SmallRng::seed_from_u64(19);
        for n in [0usize, 1, 7, 8, 9, 33, 640, 2049] {
            let mut g: Vec<f32> = (0..n).map(|_| rng.gen_range(-12.0f32..12.0)).collect();
            let specials = [-10.0, 10.0, -9.999, 9.999, -0.0, 0.0, 65_504.0, -1e9, 1e-8];
            for (d, s) in g.iter_mut().zip(specials) {
                *d = s;
            }
            let u: Vec<f32> = (0..n).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
            let mut got = g.clone();
            simd::gelu_mul(&mut got, &u);
            for i in 0..n {
                let want = crate::gelu_f16(g[i]) * u[i];
                assert_eq!(
                    got[i].to_bits(),
                    want.to_bits(),
                    "n {n} i {i}: gelu({}) * {}",
                    g[i],
                    u[i]
                );
            }
        }
    }
}
