//! A blocked f32 GEMM for prompt-sized work on plain float operands:
//! `C[m × n] (+)= A[m × k] · B[k × n]`, with A in f32 (activations, attention
//! probabilities) and B an F32 / F16 / BF16 weight matrix (one weight row per output
//! column) or an f32 matrix stored depth-major (attention values).
//!
//! B is packed once per (depth block, column block) into panels of [`NR`] = 16
//! columns of f32, depth-major, so F16 / BF16 weights are converted once per matmul
//! rather than once per token. The micro-kernel multiplies [`MR`] = 6 rows of A by
//! one panel with 12 AVX accumulators: per depth step two panel loads, six
//! broadcasts and twelve FMAs, which keeps both FMA pipes busy while the panel sits
//! in L1 and the packed block in L2. The row-by-row dot kernels of alc-quant load a
//! weight vector for every 1.3 FMAs at best, and convert F16 each time.
//!
//! [`kernel_ref`] is the scalar micro-kernel: the fallback without AVX2 + FMA, and
//! the truth the AVX2 one is tested against (same summation order per output).

use alc_core::DType;

/// Rows of A per micro-kernel call.
pub const MR: usize = 6;
/// Columns of B per packed panel.
pub const NR: usize = 16;
/// Depth per packed block: one panel of `KC` is 16 KiB, so it stays in L1.
pub const KC: usize = 256;

/// Where the columns of B come from.
#[derive(Clone, Copy, Debug)]
pub enum BSrc<'a> {
    /// Column `j` of B is row `j` of a row-major matrix of `dtype` (F32, F16 or
    /// BF16, little-endian), rows `stride` bytes apart: a weight matrix whose rows
    /// are output features, or attention keys.
    Rows {
        dtype: DType,
        data: &'a [u8],
        stride: usize,
    },
    /// Row `kk` of B starts at `data[kk * ld]` (f32): attention values.
    KMajor { data: &'a [f32], ld: usize },
}

/// Floats [`pack_b`] writes for a `kc × nc` block (columns padded to panels).
pub fn packed_len(kc: usize, nc: usize) -> usize {
    nc.div_ceil(NR) * NR * kc
}

/// Packs depth `k0..k0 + kc` of columns `n0..n0 + nc` of B into panels of [`NR`]
/// columns: `out[p·kc·NR + kk·NR + j] = B(k0 + kk, n0 + p·NR + j)`, zero past `nc`.
///
/// # Panics
/// When `out` is shorter than [`packed_len`]`(kc, nc)`, the source does not cover
/// the block, or a `Rows` source is not F32 / F16 / BF16.
pub fn pack_b(
    simd: bool,
    src: BSrc<'_>,
    k0: usize,
    kc: usize,
    n0: usize,
    nc: usize,
    out: &mut [f32],
) {
    let panels = nc.div_ceil(NR);
    let out = &mut out[..panels * NR * kc];
    match src {
        BSrc::Rows {
            dtype,
            data,
            stride,
        } => {
            let es = match dtype {
                DType::F32 => 4,
                DType::F16 | DType::BF16 => 2,
                other => panic!("gemm: B of type {other:?} (F32, F16 or BF16 only)"),
            };
            if nc > 0 {
                assert!(
                    (n0 + nc - 1) * stride + (k0 + kc) * es <= data.len(),
                    "gemm: B block past its source"
                );
            }
            #[cfg(target_arch = "x86_64")]
            if simd && kc >= 8 {
                // SAFETY: `simd` means AVX2 + F16C; the block is in bounds (above).
                unsafe { avx2::pack_rows(dtype, data, stride, k0, kc, n0, nc, out) };
                return;
            }
            let _ = simd;
            // One column (weight row) at a time, converted into a depth run, then
            // scattered into its panel lane.
            let mut run = [0f32; KC];
            for (p, panel) in out.chunks_exact_mut(NR * kc).enumerate() {
                for j in 0..NR {
                    let c = p * NR + j;
                    if c >= nc {
                        for kk in 0..kc {
                            panel[kk * NR + j] = 0.0;
                        }
                        continue;
                    }
                    let row = &data[(n0 + c) * stride..][..(k0 + kc) * es];
                    let mut kk0 = 0;
                    while kk0 < kc {
                        let len = (kc - kk0).min(KC);
                        let bytes = &row[(k0 + kk0) * es..][..len * es];
                        alc_quant::dequantize(dtype, bytes, &mut run[..len])
                            .expect("F32, F16 or BF16, checked above");
                        for (kk, &x) in run[..len].iter().enumerate() {
                            panel[(kk0 + kk) * NR + j] = x;
                        }
                        kk0 += len;
                    }
                }
            }
        }
        BSrc::KMajor { data, ld } => {
            for kk in 0..kc {
                let row = &data[(k0 + kk) * ld + n0..][..nc];
                for (p, cols) in row.chunks(NR).enumerate() {
                    let dst = &mut out[p * NR * kc + kk * NR..][..NR];
                    dst[..cols.len()].copy_from_slice(cols);
                    dst[cols.len()..].fill(0.0);
                }
            }
        }
    }
}

/// Scalar micro-kernel: for `i < mr`, `j < nr`:
/// `C[i·ldc + j] (+)= Σ_kk A[i·lda + kk] · panel[kk·NR + j]` (`acc` adds to C),
/// summed in depth order with one fused multiply-add per step, as the AVX2 kernel.
///
/// # Safety
/// `a` must be readable for rows `0..mr` of `kc` floats `lda` apart, `panel` for
/// `kc · NR` floats, and `c` writable for rows `0..mr` of `nr` floats `ldc` apart.
#[allow(clippy::too_many_arguments)]
pub unsafe fn kernel_ref(
    a: *const f32,
    lda: usize,
    mr: usize,
    panel: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    nr: usize,
    acc: bool,
) {
    for i in 0..mr {
        for j in 0..nr {
            let mut s = 0f32;
            for kk in 0..kc {
                // SAFETY: in bounds per the contract above.
                s = unsafe { (*a.add(i * lda + kk)).mul_add(*panel.add(kk * NR + j), s) };
            }
            // SAFETY: as above.
            let o = unsafe { &mut *c.add(i * ldc + j) };
            *o = if acc { *o + s } else { s };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{DType, NR};
    use std::arch::x86_64::*;

    /// 8 elements of `dtype` at `p` as f32.
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn load8(dtype: DType, p: *const u8) -> __m256 {
        // SAFETY: the caller guarantees 8 elements at p.
        unsafe {
            match dtype {
                DType::F32 => _mm256_loadu_ps(p.cast()),
                DType::F16 => _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
                _ => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(
                    _mm_loadu_si128(p.cast()),
                ))),
            }
        }
    }

    /// In-register 8 × 8 transpose: lane `t` of `r[u]` becomes lane `u` of `r[t]`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn transpose8(r: &mut [__m256; 8]) {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        r[0] = _mm256_permute2f128_ps::<0x20>(u0, u4);
        r[1] = _mm256_permute2f128_ps::<0x20>(u1, u5);
        r[2] = _mm256_permute2f128_ps::<0x20>(u2, u6);
        r[3] = _mm256_permute2f128_ps::<0x20>(u3, u7);
        r[4] = _mm256_permute2f128_ps::<0x31>(u0, u4);
        r[5] = _mm256_permute2f128_ps::<0x31>(u1, u5);
        r[6] = _mm256_permute2f128_ps::<0x31>(u2, u6);
        r[7] = _mm256_permute2f128_ps::<0x31>(u3, u7);
    }

    /// [`super::pack_b`] of a `Rows` source: 8 columns × 8 depths at a time,
    /// converted and transposed in registers; the depth tail (kc % 8) scalar.
    ///
    /// # Safety
    /// AVX2 + F16C present; rows `n0..n0 + nc`, depth `k0..k0 + kc` inside `data`;
    /// `out` holds the packed block.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn pack_rows(
        dtype: DType,
        data: &[u8],
        stride: usize,
        k0: usize,
        kc: usize,
        n0: usize,
        nc: usize,
        out: &mut [f32],
    ) {
        let es = if dtype == DType::F32 { 4 } else { 2 };
        let kv = kc / 8 * 8;
        let base = data.as_ptr();
        let dst = out.as_mut_ptr();
        // SAFETY (whole body): element (c, kk) is read only for c < nc and
        // kk < kc, which the caller checked lie inside `data`; stores stay in the
        // packed block of `out`.
        unsafe {
            for p in 0..nc.div_ceil(NR) {
                for h in 0..2 {
                    let j0 = p * NR + h * 8;
                    let live = nc.saturating_sub(j0).min(8);
                    let mut kk = 0;
                    while kk < kv {
                        let mut r = [_mm256_setzero_ps(); 8];
                        for (t, v) in r.iter_mut().enumerate().take(live) {
                            *v = load8(dtype, base.add((n0 + j0 + t) * stride + (k0 + kk) * es));
                        }
                        transpose8(&mut r);
                        for (u, v) in r.iter().enumerate() {
                            _mm256_storeu_ps(dst.add(p * NR * kc + (kk + u) * NR + h * 8), *v);
                        }
                        kk += 8;
                    }
                    for kk in kv..kc {
                        for t in 0..8 {
                            let x = if t < live {
                                let q = base.add((n0 + j0 + t) * stride + (k0 + kk) * es);
                                match dtype {
                                    DType::F32 => f32::from_le_bytes(*q.cast::<[u8; 4]>()),
                                    DType::F16 => {
                                        half::f16::from_le_bytes(*q.cast::<[u8; 2]>()).to_f32()
                                    }
                                    _ => half::bf16::from_le_bytes(*q.cast::<[u8; 2]>()).to_f32(),
                                }
                            } else {
                                0.0
                            };
                            *dst.add(p * NR * kc + kk * NR + h * 8 + t) = x;
                        }
                    }
                }
            }
        }
    }

    /// [`super::kernel_ref`] for exactly `M` rows, in registers.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn kernel<const M: usize>(
        a: *const f32,
        lda: usize,
        panel: *const f32,
        kc: usize,
        c: *mut f32,
        ldc: usize,
        nr: usize,
        acc: bool,
    ) {
        // SAFETY (whole body): bounds per the caller's contract.
        unsafe {
            let mut c0 = [_mm256_setzero_ps(); M];
            let mut c1 = [_mm256_setzero_ps(); M];
            let step = |kk: usize, c0: &mut [__m256; M], c1: &mut [__m256; M]| {
                let b0 = _mm256_loadu_ps(panel.add(kk * NR));
                let b1 = _mm256_loadu_ps(panel.add(kk * NR + 8));
                for i in 0..M {
                    let av = _mm256_broadcast_ss(&*a.add(i * lda + kk));
                    c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
                    c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
                }
            };
            let k4 = kc / 4 * 4;
            let mut kk = 0;
            while kk < k4 {
                step(kk, &mut c0, &mut c1);
                step(kk + 1, &mut c0, &mut c1);
                step(kk + 2, &mut c0, &mut c1);
                step(kk + 3, &mut c0, &mut c1);
                kk += 4;
            }
            while kk < kc {
                step(kk, &mut c0, &mut c1);
                kk += 1;
            }
            for i in 0..M {
                let row = c.add(i * ldc);
                if nr == NR {
                    let (mut v0, mut v1) = (c0[i], c1[i]);
                    if acc {
                        v0 = _mm256_add_ps(_mm256_loadu_ps(row), v0);
                        v1 = _mm256_add_ps(_mm256_loadu_ps(row.add(8)), v1);
                    }
                    _mm256_storeu_ps(row, v0);
                    _mm256_storeu_ps(row.add(8), v1);
                } else {
                    let mut t = [0f32; NR];
                    _mm256_storeu_ps(t.as_mut_ptr(), c0[i]);
                    _mm256_storeu_ps(t.as_mut_ptr().add(8), c1[i]);
                    for (j, &x) in t[..nr].iter().enumerate() {
                        let o = &mut *row.add(j);
                        *o = if acc { *o + x } else { x };
                    }
                }
            }
        }
    }
}

/// `C (+)= A · Bp` for a packed block: `mr` rows of A (`kc` deep, `lda` apart) times
/// the packed `kc × nc` block `bp` into `C` (rows `ldc` apart, `nc` columns).
///
/// # Safety
/// `a` readable for `m` rows of `kc` floats `lda` apart; `bp` holds
/// [`packed_len`]`(kc, nc)` floats; `c` writable for `m` rows of `nc` floats `ldc`
/// apart and not accessed by anyone else meanwhile. `simd` only when AVX2 and FMA
/// are available.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed(
    simd: bool,
    a: *const f32,
    lda: usize,
    m: usize,
    bp: &[f32],
    kc: usize,
    nc: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    debug_assert!(bp.len() >= packed_len(kc, nc));
    let panels = nc.div_ceil(NR);
    // Depth in sub-blocks of KC (the A rows of a block stay in L1 across the
    // panels); the first one stores (or adds, with `acc`), the later ones add.
    let mut k0 = 0;
    while k0 < kc {
        let kb = (kc - k0).min(KC);
        let add = acc || k0 > 0;
        let mut i0 = 0;
        while i0 < m {
            let mr = (m - i0).min(MR);
            // SAFETY: rows i0..i0+mr of A (depth k0..k0+kb) and of C are in bounds
            // per the contract.
            let (ai, ci) = unsafe { (a.add(i0 * lda + k0), c.add(i0 * ldc)) };
            for p in 0..panels {
                let nr = (nc - p * NR).min(NR);
                let panel = bp[p * NR * kc + k0 * NR..].as_ptr();
                // SAFETY: panel p at depth k0 holds kb·NR floats; rows i0..i0+mr,
                // columns p·NR..p·NR+nr of C are in bounds.
                unsafe { micro(simd, ai, lda, mr, panel, kb, ci.add(p * NR), ldc, nr, add) };
            }
            i0 += mr;
        }
        k0 += kb;
    }
}

/// The micro-kernel for `mr ≤ MR` rows: AVX2 when `simd`, else [`kernel_ref`].
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn micro(
    simd: bool,
    a: *const f32,
    lda: usize,
    mr: usize,
    panel: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    nr: usize,
    acc: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: forwarded contract; `simd` means AVX2 + FMA are present.
        unsafe {
            match mr {
                6 => avx2::kernel::<6>(a, lda, panel, kc, c, ldc, nr, acc),
                5 => avx2::kernel::<5>(a, lda, panel, kc, c, ldc, nr, acc),
                4 => avx2::kernel::<4>(a, lda, panel, kc, c, ldc, nr, acc),
                3 => avx2::kernel::<3>(a, lda, panel, kc, c, ldc, nr, acc),
                2 => avx2::kernel::<2>(a, lda, panel, kc, c, ldc, nr, acc),
                _ => avx2::kernel::<1>(a, lda, panel, kc, c, ldc, nr, acc),
            }
        }
        return;
    }
    let _ = simd;
    // SAFETY: forwarded contract.
    unsafe { kernel_ref(a, lda, mr, panel, kc, c, ldc, nr, acc) }
}

/// `C[:, n0..n0+nc] = A · B[:, n0..n0+nc]` over the whole depth `k`, in depth blocks
/// of [`KC`] packed into `pack` (at least [`packed_len`]`(KC.min(k), nc)` floats).
/// Column `n0 + j` of B lands in column `j` of C (C points at the block's first
/// column).
///
/// # Safety
/// As [`gemm_packed`] with `kc = k`; `src` must cover columns `n0..n0 + nc` and depth
/// `0..k`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_cols(
    simd: bool,
    a: *const f32,
    lda: usize,
    m: usize,
    k: usize,
    src: BSrc<'_>,
    n0: usize,
    nc: usize,
    c: *mut f32,
    ldc: usize,
    pack: &mut [f32],
) {
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(KC);
        pack_b(simd, src, k0, kc, n0, nc, pack);
        // SAFETY: forwarded contract; depth k0..k0+kc of each A row is in bounds.
        unsafe { gemm_packed(simd, a.add(k0), lda, m, pack, kc, nc, c, ldc, k0 > 0) };
        k0 += kc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn has_simd() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    fn rand_vec(rng: &mut impl Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    /// Every shape class (odd m, n and k; k over several depth blocks; one row; one
    /// column), every weight type, accumulate or not: the AVX2 kernel and the scalar
    /// one give the same C, and both are within f32 rounding of an f64 product.
    #[test]
    fn gemm_matches_f64_and_simd_matches_scalar() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let shapes = [
            (1, 1, 1),
            (6, 16, 8),
            (7, 17, 33),
            (13, 40, 300),
            (5, 3, 513),
            (64, 96, 768),
            (1, 70, 257),
        ];
        for &(m, n, k) in &shapes {
            for dtype in [DType::F32, DType::F16, DType::BF16] {
                let a = rand_vec(&mut rng, m * k);
                let w = rand_vec(&mut rng, n * k);
                // The weight as stored, and the values it holds after rounding.
                let (bytes, wr): (Vec<u8>, Vec<f32>) = match dtype {
                    DType::F32 => (w.iter().flat_map(|x| x.to_le_bytes()).collect(), w.clone()),
                    DType::F16 => {
                        let h: Vec<half::f16> = w.iter().map(|&x| half::f16::from_f32(x)).collect();
                        (
                            h.iter().flat_map(|x| x.to_le_bytes()).collect(),
                            h.iter().map(|x| x.to_f32()).collect(),
                        )
                    }
                    _ => {
                        let h: Vec<half::bf16> =
                            w.iter().map(|&x| half::bf16::from_f32(x)).collect();
                        (
                            h.iter().flat_map(|x| x.to_le_bytes()).collect(),
                            h.iter().map(|x| x.to_f32()).collect(),
                        )
                    }
                };
                let es = if dtype == DType::F32 { 4 } else { 2 };
                let src = BSrc::Rows {
                    dtype,
                    data: &bytes,
                    stride: k * es,
                };
                let prior = rand_vec(&mut rng, m * n);
                let mut outs = Vec::new();
                for simd in [false, true] {
                    if simd && !has_simd() {
                        continue;
                    }
                    // Columns in two blocks (a block boundary inside the matrix).
                    let split = (n / 2).max(1).min(n);
                    let mut c = vec![0f32; m * n];
                    let mut pack = vec![0f32; packed_len(KC.min(k), n)];
                    for (n0, nc) in [(0, split), (split, n - split)] {
                        if nc == 0 {
                            continue;
                        }
                        // SAFETY: sizes as documented.
                        unsafe {
                            gemm_cols(
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
                    }
                    // Accumulate form: one block over the whole depth when k ≤ KC.
                    let mut c2 = prior.clone();
                    if k <= KC {
                        let mut bp = vec![0f32; packed_len(k, n)];
                        pack_b(simd, src, 0, k, 0, n, &mut bp);
                        // SAFETY: sizes as documented.
                        unsafe {
                            gemm_packed(simd, a.as_ptr(), k, m, &bp, k, n, c2.as_mut_ptr(), n, true)
                        };
                    }
                    for i in 0..m {
                        for j in 0..n {
                            let (mut e, mut mag) = (0f64, 0f64);
                            for kk in 0..k {
                                let p = a[i * k + kk] as f64 * wr[j * k + kk] as f64;
                                e += p;
                                mag += p.abs();
                            }
                            // f32's deterministic bound for a k-term sum.
                            let tol = k as f64 * f32::EPSILON as f64 * mag + 1e-7;
                            let got = c[i * n + j] as f64;
                            assert!(
                                (got - e).abs() <= tol,
                                "{dtype:?} simd {simd} ({m},{n},{k}) [{i},{j}]: {got} vs {e}"
                            );
                            if k <= KC {
                                let want = prior[i * n + j] as f64 + e;
                                let got = c2[i * n + j] as f64;
                                assert!(
                                    (got - want).abs() <= tol + 1e-6,
                                    "acc {dtype:?} simd {simd} ({m},{n},{k}) [{i},{j}]"
                                );
                            }
                        }
                    }
                    outs.push(c);
                }
                if outs.len() == 2 {
                    assert_eq!(outs[0], outs[1], "{dtype:?} ({m},{n},{k}): simd vs scalar");
                }
            }
        }
    }

    /// A depth-major f32 source packs to the same panels as its transpose given as rows.
    #[test]
    fn kmajor_packs_like_rows_of_the_transpose() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (k, n, ld) = (37, 21, 29);
        let b = rand_vec(&mut rng, k * ld + n);
        let mut t = vec![0f32; n * k];
        for kk in 0..k {
            for j in 0..n {
                t[j * k + kk] = b[kk * ld + 3 + j];
            }
        }
        let tb: Vec<u8> = t.iter().flat_map(|x| x.to_le_bytes()).collect();
        let (mut p1, mut p2) = (vec![1f32; packed_len(k, n)], vec![2f32; packed_len(k, n)]);
        pack_b(false, BSrc::KMajor { data: &b, ld }, 0, k, 3, n, &mut p1);
        let rows = BSrc::Rows {
            dtype: DType::F32,
            data: &tb,
            stride: k * 4,
        };
        pack_b(false, rows, 0, k, 0, n, &mut p2);
        assert_eq!(p1, p2);
    }

    /// The AVX2 packing of weight rows (8 × 8 register transposes, a scalar depth
    /// tail) writes exactly what the scalar packing writes, for every type, odd
    /// column counts (a partial panel) and depths, and an offset block.
    #[test]
    fn simd_row_packing_equals_scalar() {
        if !has_simd() {
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let es = if dtype == DType::F32 { 4 } else { 2 };
            for &(rows, k, k0, kc, n0, nc) in &[
                (16, 8, 0, 8, 0, 16),
                (40, 77, 3, 70, 5, 35),
                (23, 300, 0, 256, 0, 23),
                (9, 19, 2, 9, 1, 8),
            ] {
                let data: Vec<u8> = (0..rows * k * es)
                    .map(|_| rng.gen_range(0u8..0x78))
                    .collect();
                let src = BSrc::Rows {
                    dtype,
                    data: &data,
                    stride: k * es,
                };
                let len = packed_len(kc, nc);
                let (mut a, mut b) = (vec![1f32; len], vec![2f32; len]);
                pack_b(false, src, k0, kc, n0, nc, &mut a);
                pack_b(true, src, k0, kc, n0, nc, &mut b);
                let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same,
                    "{dtype:?} rows {rows} k {k} block ({k0},{kc},{n0},{nc})"
                );
            }
        }
    }
}
