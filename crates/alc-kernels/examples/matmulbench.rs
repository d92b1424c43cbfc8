//! GFLOP/s of `CpuBackend::matmul` per weight type at a vision-encoder shape
//! (768 x 768; 1024 tokens unless given), packed where the backend packs:
//! `cargo run --release -p alc-kernels --example matmulbench [threads] [tokens]`.
use alc_core::DType;
use alc_kernels::cpu::CpuBackend;
use alc_kernels::{Backend, Weight};
use std::time::Instant;

fn main() {
    let threads = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let be = CpuBackend::new(threads);
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let (rows, cols) = (768usize, 768usize);
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 104729) % 1000) as f32 * 1e-3 - 0.5)
        .collect();
    let x: Vec<f32> = (0..n * cols)
        .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
        .collect();
    let mut out = vec![0f32; n * rows];
    for dt in [DType::F16, DType::F32, DType::Q8_0, DType::Q4_0] {
        let mut wq = vec![0u8; dt.row_bytes(cols as u64).unwrap() as usize * rows];
        alc_quant::quantize(dt, &w, &mut wq).unwrap();
        let weight = Weight::row_major(dt, rows, cols, &wq);
        let packed = be.pack(&weight);
        let weight = match &packed {
            Some(p) => weight.with_packed(p),
            None => weight,
        };
        be.matmul(&weight, &x, n, &mut out);
        let reps = (20_000 / n).max(10);
        let t = Instant::now();
        for _ in 0..reps {
            be.matmul(&weight, &x, n, &mut out);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{dt:?} packed {}: {:.1} GFLOP/s",
            packed.is_some(),
            2.0 * (n * rows * cols * reps) as f64 / s / 1e9
        );
    }
}
