//! Microseconds per decode attention call (one query token at position `pos`) of
//! `CpuBackend::attention`, and the KV-cache read rate that implies, over `layers`
//! separate caches (30 exceed the L3 as a real model's do; 1 stays cached):
//! `cargo run --release -p alc-kernels --example attnbench [n_head n_kv_head
//! head_dim pos layers threads reps]`, SmolLM2's shape at depth 2047 by default.
//! `ALC_KERNELS_NO_AVX512=1` runs the AVX2 kernel instead of the AVX-512 one.
#[path = "common/args.rs"]
mod args;
use alc_kernels::cpu::CpuBackend;
use alc_kernels::{AttnShape, Backend};
use half::f16;
use std::time::Instant;

fn main() {
    let [n_head, n_kv_head, head_dim, pos, layers, threads, reps] =
        args::positional([9, 3, 64, 2047, 30, 2, 40]);
    let (layers, reps) = (layers.max(1), reps.max(1));
    let be = CpuBackend::new(threads);
    let ctx = pos + 1;
    let n = ctx * n_kv_head * head_dim;
    // One allocation for all the layers' keys and one for their values (as large
    // as a real model's cache, so that huge pages can back them where enabled).
    let fill = |l: usize, i: usize, m: usize, k: usize| {
        f16::from_f32(((i * m + l) % k) as f32 * 0.01 - 0.01 * (k / 2) as f32)
    };
    let kall: Vec<f16> = (0..layers * n).map(|i| fill(i / n, i % n, 7, 13)).collect();
    let vall: Vec<f16> = (0..layers * n).map(|i| fill(i / n, i % n, 5, 11)).collect();
    let caches: Vec<(&[f16], &[f16])> = kall.chunks_exact(n).zip(vall.chunks_exact(n)).collect();
    let q: Vec<f32> = (0..n_head * head_dim)
        .map(|i| (i % 17) as f32 * 0.03 - 0.2)
        .collect();
    let mut out = vec![0f32; q.len()];
    let s = AttnShape {
        n_tokens: 1,
        pos0: pos,
        n_head,
        n_kv_head,
        head_dim,
        ctx,
        scale: 1.0 / (head_dim as f32).sqrt(),
        window: None,
        softcap: None,
    };
    let mut pass = || {
        for (k, v) in &caches {
            be.attention(&q, k, v, &s, &mut out);
        }
    };
    pass();
    let t = Instant::now();
    for _ in 0..reps {
        pass();
    }
    let per = t.elapsed().as_secs_f64() / (reps * layers) as f64;
    println!(
        "{:.1} us per call, {:.1} GB/s of keys and values ({})",
        per * 1e6,
        (2 * n * 2) as f64 / per / 1e9,
        be.name()
    );
}
