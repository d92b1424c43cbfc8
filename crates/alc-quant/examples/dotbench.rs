//! Single-thread micro-benchmark of `alc_quant::dot`.
//!
//! `cargo run -p alc-quant --release --example dotbench [n] [MB] [TYPES]`
//! (TYPES: comma-separated names, e.g. `Q5_0,Q4_0`; default all)
//!
//! For every weight type: a weight matrix of about `MB` MiB (default 64, far out of
//! the 32 MiB L3) with rows of `n` elements (default 2048), random raw blocks with
//! sane scales. Reports
//! - k=1 over the big matrix: GB/s of weight bytes streamed (decode path),
//! - k=4 over the big matrix and over an L2-resident 256 KiB slice:
//!   GFLOP/s-equivalent = 2·n·rows·k / time (prompt path), through `dot` (one
//!   call per row) and through `dot_rows` (one call per 16-row tile, as the CPU
//!   backend's tiles),
//!
//! plus the plain read bandwidth of the same buffer as the bound.

#![allow(clippy::too_many_arguments)]

use alc_quant::WEIGHT_TYPES as TYPES;
use alc_quant::{act_row_bytes, dot, dot_rows, packed, quantize_act, DType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn random_weights(w: DType, rng: &mut SmallRng, bytes: usize) -> Vec<u8> {
    let bb = w.block_bytes();
    let mut v: Vec<u8> = (0..bytes).map(|_| rng.gen()).collect();
    let f16 = |x: f32| half::f16::from_f32(x).to_bits().to_le_bytes();
    match w {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => v
            .chunks_exact_mut(bb)
            .for_each(|b| b[0..2].copy_from_slice(&f16(0.01))),
        DType::Q4_1 | DType::Q5_1 => v
            .chunks_exact_mut(bb)
            .for_each(|b| b[0..4].copy_from_slice(&[f16(0.01), f16(-0.1)].concat())),
        DType::Q4_K | DType::Q5_K => v
            .chunks_exact_mut(bb)
            .for_each(|b| b[0..4].copy_from_slice(&[f16(0.001), f16(0.001)].concat())),
        DType::Q6_K => v
            .chunks_exact_mut(bb)
            .for_each(|b| b[208..210].copy_from_slice(&f16(0.001))),
        DType::F16 => v
            .chunks_exact_mut(2)
            .for_each(|b| b.copy_from_slice(&f16(0.5))),
        DType::BF16 => v
            .chunks_exact_mut(2)
            .for_each(|b| b.copy_from_slice(&[0x00, 0x3f])),
        _ => v
            .chunks_exact_mut(4)
            .for_each(|b| b.copy_from_slice(&0.5f32.to_le_bytes())),
    }
    v
}

/// Plain read bandwidth (GB/s) of `buf`: sum of u64 words, best of `reps`.
fn read_bw(buf: &[u8], reps: usize) -> f64 {
    let mut best = f64::MAX;
    let mut sink = 0u64;
    for _ in 0..reps {
        let t = Instant::now();
        let mut s = [0u64; 8];
        for c in buf.chunks_exact(64) {
            for (i, w) in c.chunks_exact(8).enumerate() {
                s[i] = s[i].wrapping_add(u64::from_le_bytes(w.try_into().unwrap()));
            }
        }
        sink = sink.wrapping_add(s.iter().sum::<u64>());
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    buf.len() as f64 / best / 1e9
}

/// Best time (s) of `reps` passes of dot over `rows` rows.
fn time_dot(
    w: DType,
    n: usize,
    wbuf: &[u8],
    rows: usize,
    acts: &[u8],
    stride: usize,
    k: usize,
    reps: usize,
) -> f64 {
    let rb = w.row_bytes(n as u64).unwrap() as usize;
    let mut out = [0f32; 4];
    let mut best = f64::MAX;
    let mut sink = 0f32;
    for _ in 0..reps {
        let t = Instant::now();
        for r in 0..rows {
            dot(w, n, &wbuf[r * rb..(r + 1) * rb], acts, stride, k, &mut out);
            sink += out[0];
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    best
}

/// Rows per `dot_rows` call (the CPU backend's row tile).
const TILE: usize = 16;

/// Best time (s) of `reps` passes of dot_rows over `rows` rows, TILE rows a call.
fn time_dot_rows(
    w: DType,
    n: usize,
    wbuf: &[u8],
    rows: usize,
    acts: &[u8],
    stride: usize,
    k: usize,
    reps: usize,
) -> f64 {
    let rb = w.row_bytes(n as u64).unwrap() as usize;
    let mut out = [0f32; 4 * TILE];
    let mut best = f64::MAX;
    let mut sink = 0f32;
    for _ in 0..reps {
        let t = Instant::now();
        let mut r = 0;
        while r < rows {
            let nr = (rows - r).min(TILE);
            dot_rows(
                w,
                n,
                &wbuf[r * rb..],
                rb,
                nr,
                acts,
                stride,
                k,
                &mut out[..nr * k],
            );
            sink += out[0];
            r += nr;
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    best
}

/// Best time (s) of `reps` passes of the packed kernel over `rows` rows (packed
/// once beforehand), one 8-row group and k tokens a call.
fn time_packed(
    w: DType,
    n: usize,
    pk: &[u8],
    rows: usize,
    acts: &[u8],
    stride: usize,
    sums: &[i32],
    k: usize,
    reps: usize,
) -> f64 {
    let gb = packed::packed_len(w, n, packed::ROWS).unwrap();
    let ns = packed::act_sums_len(w, n).max(1);
    let mut out = [0f32; 32];
    let mut best = f64::MAX;
    let mut sink = 0f32;
    for _ in 0..reps {
        let t = Instant::now();
        for g in 0..rows / packed::ROWS {
            // k tokens in calls of at most max_tokens(w) (2 for Q4_K).
            let mut j = 0;
            while j < k {
                let kk = (k - j).min(packed::max_tokens(w));
                packed::dot_group(
                    w,
                    n,
                    &pk[g * gb..(g + 1) * gb],
                    &acts[j * stride..],
                    stride,
                    &sums[j * ns..],
                    ns,
                    kk,
                    &mut out,
                );
                sink += out[0];
                j += kk;
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    best
}

/// k = 1 over all rows, split between two threads (one per core here).
fn time_dot_2threads(
    w: DType,
    n: usize,
    wbuf: &[u8],
    rows: usize,
    acts: &[u8],
    stride: usize,
    reps: usize,
) -> f64 {
    let rb = w.row_bytes(n as u64).unwrap() as usize;
    let half = rows / 2;
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        std::thread::scope(|s| {
            for (lo, hi) in [(0, half), (half, rows)] {
                s.spawn(move || {
                    let mut out = [0f32; 4];
                    let mut sink = 0f32;
                    for r in lo..hi {
                        dot(w, n, &wbuf[r * rb..(r + 1) * rb], acts, stride, 1, &mut out);
                        sink += out[0];
                    }
                    std::hint::black_box(sink);
                });
            }
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(2048);
    let mb: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(64);
    let only: Option<Vec<String>> = args
        .get(3)
        .map(|s| s.split(',').map(|t| t.to_uppercase()).collect());
    let mut rng = SmallRng::seed_from_u64(1);
    println!(
        "isa: {}   n = {n}   matrix ≈ {mb} MiB   1 thread",
        alc_quant::isa()
    );
    let probe = vec![1u8; mb << 20];
    println!(
        "plain read bandwidth of a {mb} MiB buffer: {:.2} GB/s",
        read_bw(&probe, 5)
    );
    drop(probe);
    println!(
        "{:<6} {:>9} {:>9} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "type",
        "row bytes",
        "k=1 GB/s",
        "k=1 2thr GB/s",
        "k=1 L2 GB/s",
        "k=4 GFLOP/s",
        "k=4 L2 GFLOP/s",
        "rows k=4",
        "rows k=4 L2",
        "packed k=1",
        "packed k=4 L2"
    );
    for w in TYPES {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|t| t == w.name()))
        {
            continue;
        }
        let rb = w.row_bytes(n as u64).unwrap() as usize;
        let rows = (mb << 20) / rb;
        let wbuf = random_weights(w, &mut rng, rows * rb);
        let ab = act_row_bytes(w, n).unwrap();
        let mut acts = vec![0u8; 4 * ab];
        for j in 0..4 {
            let x: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            quantize_act(w, &x, &mut acts[j * ab..(j + 1) * ab]).unwrap();
        }
        let t1 = time_dot(w, n, &wbuf, rows, &acts, ab, 1, 10);
        let t1x2 = time_dot_2threads(w, n, &wbuf, rows, &acts, ab, 10);
        let t4 = time_dot(w, n, &wbuf, rows, &acts, ab, 4, 5);
        let l2_rows = ((256 << 10) / rb).max(1);
        let t1c = time_dot(w, n, &wbuf, l2_rows, &acts, ab, 1, 3000);
        let t4c = time_dot(w, n, &wbuf, l2_rows, &acts, ab, 4, 3000);
        let t4r = time_dot_rows(w, n, &wbuf, rows, &acts, ab, 4, 5);
        let t4cr = time_dot_rows(w, n, &wbuf, l2_rows, &acts, ab, 4, 3000);
        let (pk1, pk4) = if packed::supports(w) {
            let rows8 = rows / packed::ROWS * packed::ROWS;
            let l2_8 = (l2_rows / packed::ROWS).max(1) * packed::ROWS;
            let pk = packed::pack(w, n, rows8, &wbuf[..rows8 * rb]).unwrap();
            let ns = packed::act_sums_len(w, n).max(1);
            let mut sums = vec![0i32; 4 * ns];
            for j in 0..4 {
                packed::act_sums(w, n, &acts[j * ab..], &mut sums[j * ns..]).unwrap();
            }
            let t1 = time_packed(w, n, &pk, rows8, &acts, ab, &sums, 1, 10);
            let t4 = time_packed(w, n, &pk, l2_8, &acts, ab, &sums, 4, 3000);
            (
                format!("{:.2}", (rows8 * rb) as f64 / t1 / 1e9),
                format!("{:.1}", 2.0 * (n * l2_8 * 4) as f64 / t4 / 1e9),
            )
        } else {
            ("-".into(), "-".into())
        };
        let flop = |rows: usize, k: usize| 2.0 * n as f64 * rows as f64 * k as f64;
        println!(
            "{:<6} {:>9} {:>9.2} {:>12.2} {:>12.2} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>12} {:>12}",
            w.name(),
            rb,
            (rows * rb) as f64 / t1 / 1e9,
            (rows * rb) as f64 / t1x2 / 1e9,
            (l2_rows * rb) as f64 / t1c / 1e9,
            flop(rows, 4) / t4 / 1e9,
            flop(l2_rows, 4) / t4c / 1e9,
            flop(rows, 4) / t4r / 1e9,
            flop(l2_rows, 4) / t4cr / 1e9,
            pk1,
            pk4,
        );
    }
}
