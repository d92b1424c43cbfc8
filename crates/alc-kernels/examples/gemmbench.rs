//! Single-thread GFLOP/s of the blocked GEMM (crate::gemm) at encoder shapes:
//! `cargo run --release -p alc-kernels --example gemmbench`.
use alc_kernels::gemm;
use std::time::Instant;

fn main() {
    #[cfg(target_arch = "x86_64")]
    let simd = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let simd = false;
    for &(m, k, n) in &[
        (1024usize, 768usize, 768usize),
        (1024, 768, 3072),
        (1024, 3072, 768),
        (48, 64, 1024),
        (48, 1024, 64),
    ] {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
            .collect();
        let w: Vec<u8> = (0..n * k)
            .flat_map(|i| {
                half::f16::from_f32(((i * 104729) % 1000) as f32 * 1e-3 - 0.5).to_le_bytes()
            })
            .collect();
        let mut c = vec![0f32; m * n];
        let mut pack = vec![0f32; gemm::packed_len(gemm::KC.min(k), 256)];
        let src = gemm::BSrc::Rows {
            dtype: alc_core::DType::F16,
            data: &w,
            stride: k * 2,
        };
        let reps = (4e9 / (2.0 * (m * n * k) as f64)).ceil() as usize;
        let t = Instant::now();
        for _ in 0..reps {
            let mut n0 = 0;
            while n0 < n {
                let nc = (n - n0).min(256);
                unsafe {
                    gemm::gemm_cols(
                        simd,
                        a.as_ptr(),
                        k,
                        m,
                        k,
                        src,
                        n0,
                        nc,
                        c.as_mut_ptr().add(n0),
                        n,
                        &mut pack,
                    )
                };
                n0 += nc;
            }
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "m {m} k {k} n {n}: {:.1} GFLOP/s",
            2.0 * (m * n * k * reps) as f64 / s / 1e9
        );
    }
}
