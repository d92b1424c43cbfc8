//! SIMD kernels vs the scalar reference, round trips, and hand-built layouts.

use alc_quant::blocks::*;
use alc_quant::WEIGHT_TYPES;
use alc_quant::{
    act_row_bytes, act_type, dequantize, dot, dot_rows, quantize, quantize_act, reference, DType,
    QuantError,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// |simd − reference| must be within this fraction of Σ|w·a| (dequantized values).
const DOT_REL_TOL: f32 = 1e-4;

/// Byte range of a weight block that holds its quants (what the extreme-fill tests
/// overwrite, leaving the scales sane).
fn quant_byte_range(w: DType) -> (usize, usize) {
    match w {
        DType::Q4_0 | DType::Q4BF16_1 => (2, 18),
        DType::Q4_1 => (4, 20),
        DType::Q5_0 => (2, 22),
        DType::Q5_1 => (4, 24),
        DType::Q8_0 => (2, 34),
        DType::Q4_K | DType::Q5_K => (4, 176.min(w.block_bytes())),
        _ => (0, 208),
    }
}

/// Four activation rows of random scales whose quants are all +127 (rows 0, 2) or
/// all −127 (rows 1, 3), with matching block sums: the integer sums at their limits.
fn extreme_act_rows(w: DType, rng: &mut SmallRng, n: usize) -> (Vec<u8>, usize) {
    let (mut acts, stride) = random_act_rows(w, rng, n);
    let at = act_type(w).unwrap();
    let ab = act_row_bytes(w, n).unwrap();
    for j in 0..4 {
        let row = &mut acts[j * stride..j * stride + ab];
        let v: i8 = if j % 2 == 0 { 127 } else { -127 };
        match at {
            DType::Q8_0 => cast_blocks_mut::<BlockQ8_0>(row)
                .unwrap()
                .iter_mut()
                .for_each(|b| b.qs = [v; 32]),
            DType::Q8_1 => cast_blocks_mut::<BlockQ8_1>(row)
                .unwrap()
                .iter_mut()
                .for_each(|b| b.qs = [v; 32]),
            _ => cast_blocks_mut::<BlockQ8K>(row)
                .unwrap()
                .iter_mut()
                .for_each(|b| {
                    b.qs = [v; 256];
                    (0..16).for_each(|g| b.set_bsum(g, v as i16 * 16));
                }),
        }
    }
    (acts, stride)
}

fn sizes(w: DType) -> Vec<usize> {
    match w.block_size() {
        32 => vec![32, 96, 224, 288, 576, 896, 640, 2048, 4864],
        256 => vec![256, 768, 1792, 2304, 1536, 2048, 4864],
        _ => vec![1, 7, 8, 15, 16, 17, 33, 576, 896, 640, 2048, 4864],
    }
}

fn rand_vec(rng: &mut SmallRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let v: f32 = rng.gen_range(-1.0..1.0);
            // A few outliers, as in real activations.
            if i % 97 == 5 {
                v * 8.0
            } else {
                v
            }
        })
        .collect()
}

fn deq(ty: DType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize(ty, bytes, &mut out).unwrap();
    out
}

/// Checks SIMD `dot` against the reference for every k = 1..=4 given one weight row
/// and 4 activation rows laid out at `stride` starting at byte `off`.
fn check_dot(w: DType, n: usize, wrow: &[u8], acts: &[u8], stride: usize, ctx: &str) {
    let at = act_type(w).unwrap();
    let ab = act_row_bytes(w, n).unwrap();
    let wd = deq(w, wrow, n);
    for k in 1..=4 {
        let mut simd = [0f32; 4];
        let mut refr = [0f32; 4];
        dot(w, n, wrow, acts, stride, k, &mut simd);
        reference::dot(w, n, wrow, acts, stride, k, &mut refr);
        for j in 0..k {
            let ad = deq(at, &acts[j * stride..j * stride + ab], n);
            let mag: f32 = wd.iter().zip(&ad).map(|(x, y)| (x * y).abs()).sum();
            let err = (simd[j] - refr[j]).abs();
            assert!(
                err <= DOT_REL_TOL * mag + 1e-30,
                "{ctx}: {w} n={n} k={k} row {j}: simd {} vs ref {} (err {err}, Σ|wa| {mag})",
                simd[j],
                refr[j]
            );
        }
    }
}

/// k activation rows at stride `stride` (≥ row bytes), first row at offset 1 to
/// exercise unaligned loads.
fn make_acts(w: DType, rng: &mut SmallRng, n: usize, pad: usize) -> (Vec<u8>, usize) {
    let ab = act_row_bytes(w, n).unwrap();
    let stride = ab + pad;
    let mut buf = vec![0u8; 1 + 4 * stride];
    for j in 0..4 {
        let x = rand_vec(rng, n);
        let row = &mut buf[1 + j * stride..1 + j * stride + ab];
        quantize_act(w, &x, row).unwrap();
        // SIMD and scalar activation quantization are bit-identical.
        let mut r = vec![0u8; ab];
        reference::quantize_act(w, &x, &mut r).unwrap();
        assert_eq!(
            row,
            &r[..],
            "quantize_act {w} n={n} differs from the reference"
        );
    }
    (buf, stride)
}

#[test]
fn simd_dot_matches_reference_on_quantized_data() {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    for w in WEIGHT_TYPES {
        for n in sizes(w) {
            let x = rand_vec(&mut rng, n);
            let wb = w.row_bytes(n as u64).unwrap() as usize;
            // Weight row at an odd offset.
            let mut wbuf = vec![0u8; wb + 3];
            quantize(w, &x, &mut wbuf[3..]).unwrap();
            for pad in [0usize, 5] {
                let (acts, stride) = make_acts(w, &mut rng, n, pad);
                check_dot(w, n, &wbuf[3..], &acts[1..], stride, "quantized");
            }
        }
    }
}

fn rand_f16_bits(rng: &mut SmallRng, lo: f32, hi: f32) -> [u8; 2] {
    f32_to_f16(rng.gen_range(lo..hi))
}

/// Random raw weight blocks with sane scales (every quant bit pattern possible).
fn random_weight_row(w: DType, rng: &mut SmallRng, n: usize) -> Vec<u8> {
    let nb = n / w.block_size();
    let bb = w.block_bytes();
    let mut v: Vec<u8> = (0..nb * bb).map(|_| rng.gen()).collect();
    for b in v.chunks_exact_mut(bb) {
        match w {
            DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => {
                b[0..2].copy_from_slice(&rand_f16_bits(rng, -0.1, 0.1))
            }
            DType::Q4BF16_1 => b[0..2].copy_from_slice(&f32_to_bf16(rng.gen_range(-0.1..0.1))),
            DType::Q4_1 | DType::Q5_1 => {
                b[0..2].copy_from_slice(&rand_f16_bits(rng, 0.0, 0.1));
                b[2..4].copy_from_slice(&rand_f16_bits(rng, -1.0, 1.0));
            }
            DType::Q4_K | DType::Q5_K => {
                b[0..2].copy_from_slice(&rand_f16_bits(rng, 0.0, 0.01));
                b[2..4].copy_from_slice(&rand_f16_bits(rng, 0.0, 0.01));
            }
            DType::Q6_K => b[208..210].copy_from_slice(&rand_f16_bits(rng, -0.01, 0.01)),
            _ => {}
        }
    }
    match w {
        DType::F32 => {
            for c in v.chunks_exact_mut(4) {
                c.copy_from_slice(&rng.gen_range(-2.0f32..2.0).to_le_bytes());
            }
        }
        DType::F16 => {
            for c in v.chunks_exact_mut(2) {
                c.copy_from_slice(&rand_f16_bits(rng, -2.0, 2.0));
            }
        }
        DType::BF16 => {
            for c in v.chunks_exact_mut(2) {
                c.copy_from_slice(&f32_to_bf16(rng.gen_range(-2.0f32..2.0)));
            }
        }
        _ => {}
    }
    v
}

/// Random raw activation blocks: quants in −127..=127, consistent sums.
fn random_act_rows(w: DType, rng: &mut SmallRng, n: usize) -> (Vec<u8>, usize) {
    let at = act_type(w).unwrap();
    let ab = act_row_bytes(w, n).unwrap();
    let stride = ab + 3;
    let mut buf = vec![0u8; 4 * stride];
    for j in 0..4 {
        let row = &mut buf[j * stride..j * stride + ab];
        match at {
            DType::F32 => {
                for c in row.chunks_exact_mut(4) {
                    c.copy_from_slice(&rng.gen_range(-2.0f32..2.0).to_le_bytes());
                }
            }
            DType::Q8_0 => {
                for b in cast_blocks_mut::<BlockQ8_0>(row).unwrap() {
                    b.d = rand_f16_bits(rng, 0.0, 0.05);
                    b.qs = std::array::from_fn(|_| rng.gen_range(-127..=127));
                }
            }
            DType::Q8_1 => {
                for b in cast_blocks_mut::<BlockQ8_1>(row).unwrap() {
                    b.d = rand_f16_bits(rng, 0.0, 0.05);
                    b.qs = std::array::from_fn(|_| rng.gen_range(-127..=127));
                    let s: i32 = b.qs.iter().map(|&q| q as i32).sum();
                    b.s = f32_to_f16(b.d() * s as f32);
                }
            }
            DType::Q8_K => {
                for b in cast_blocks_mut::<BlockQ8K>(row).unwrap() {
                    b.d = rng.gen_range(0.0f32..0.05).to_le_bytes();
                    b.qs = std::array::from_fn(|_| rng.gen_range(-127..=127));
                    for g in 0..16 {
                        let s: i32 = b.qs[16 * g..16 * g + 16].iter().map(|&q| q as i32).sum();
                        b.set_bsum(g, s as i16);
                    }
                }
            }
            other => unreachable!("{other}"),
        }
    }
    (buf, stride)
}

#[test]
fn simd_dot_matches_reference_on_random_bytes() {
    let mut rng = SmallRng::seed_from_u64(42);
    for round in 0..4 {
        for w in WEIGHT_TYPES {
            for n in sizes(w) {
                let wrow = random_weight_row(w, &mut rng, n);
                let (acts, stride) = random_act_rows(w, &mut rng, n);
                check_dot(
                    w,
                    n,
                    &wrow,
                    &acts,
                    stride,
                    &format!("random bytes round {round}"),
                );
            }
        }
    }
}

#[test]
fn extreme_quants_do_not_saturate() {
    // Largest magnitudes everywhere: weights all-ones bits / all-max nibbles,
    // activations ±127. Exercises the i16 headroom of vpmaddubsw.
    let mut rng = SmallRng::seed_from_u64(7);
    for w in [
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q4_K,
        DType::Q5_K,
        DType::Q6_K,
    ] {
        let n = 512;
        for fill in [0x00u8, 0xFF, 0x80, 0x7F] {
            let mut wrow = random_weight_row(w, &mut rng, n);
            let bb = w.block_bytes();
            for b in wrow.chunks_exact_mut(bb) {
                let (s, e) = quant_byte_range(w);
                b[s..e].fill(fill);
            }
            let (acts, stride) = extreme_act_rows(w, &mut rng, n);
            check_dot(
                w,
                n,
                &wrow,
                &acts,
                stride,
                &format!("extreme fill {fill:#x}"),
            );
        }
    }
}

#[test]
fn quantize_act_edge_cases_bit_identical() {
    let mut cases: Vec<Vec<f32>> = vec![
        vec![0.0; 512],
        (0..512)
            .map(|i| if i == 300 { -3.0 } else { 0.0 })
            .collect(),
        // Both signs at the maximum magnitude: the first one sets Q8_K's sign.
        (0..512).map(|i| [2.0, -2.0, 0.5, -0.25][i % 4]).collect(),
        (0..512).map(|i| [-2.0, 2.0, 0.5, -0.25][i % 4]).collect(),
        // Exact ties after scaling by 127/amax.
        (0..512)
            .map(|i| {
                if i % 32 == 0 {
                    127.0
                } else {
                    (i % 7) as f32 + 0.5
                }
            })
            .collect(),
        (0..512).map(|i| 1e-30 * (i as f32 - 256.0)).collect(),
    ];
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..20 {
        cases.push(rand_vec(&mut rng, 512));
    }
    for x in &cases {
        for w in [
            DType::Q4_0,
            DType::Q4_1,
            DType::Q5_0,
            DType::Q5_1,
            DType::Q4_K,
            DType::F32,
        ] {
            let ab = act_row_bytes(w, x.len()).unwrap();
            let mut a = vec![0u8; ab];
            let mut b = vec![0xAAu8; ab];
            quantize_act(w, x, &mut a).unwrap();
            reference::quantize_act(w, x, &mut b).unwrap();
            assert_eq!(a, b, "{w}");
        }
    }
}

#[test]
fn q8_k_activation_matches_ggml_formula() {
    // max = −4 (largest magnitude, negative) → iscale = −127/−4 = 31.75, d = 1/31.75.
    let mut x = vec![0f32; 256];
    x[0] = 1.0;
    x[1] = -4.0;
    x[17] = 2.0;
    let mut out = vec![0u8; 292];
    quantize_act(DType::Q6_K, &x, &mut out).unwrap();
    let b = &cast_blocks::<BlockQ8K>(&out).unwrap()[0];
    assert_eq!(b.d(), 1.0 / 31.75);
    assert_eq!(b.qs[0], 32); // 31.75 rounds to 32
    assert_eq!(b.qs[1], -127);
    assert_eq!(b.qs[17], 64); // 63.5 ties to even → 64
    assert_eq!(b.bsum(0), 32 - 127);
    assert_eq!(b.bsum(1), 64);
}

#[test]
fn round_trip_error_is_bounded() {
    let mut rng = SmallRng::seed_from_u64(11);
    // (type, max RMSE / RMS of the input)
    let bounds = [
        (DType::Q4_0, 0.12),
        (DType::Q4_1, 0.10),
        (DType::Q5_0, 0.06),
        (DType::Q5_1, 0.05),
        (DType::Q8_0, 0.008),
        (DType::Q4_K, 0.10),
        (DType::Q5_K, 0.05),
        (DType::Q6_K, 0.025),
        (DType::F16, 1e-3),
        (DType::BF16, 5e-3),
        (DType::F32, 0.0),
    ];
    for (ty, bound) in bounds {
        let n = 4096;
        let x: Vec<f32> = (0..n)
            .map(|_| rng.gen_range(-1.0f32..1.0) * rng.gen_range(0.1f32..2.0))
            .collect();
        let mut q = vec![0u8; ty.row_bytes(n as u64).unwrap() as usize];
        quantize(ty, &x, &mut q).unwrap();
        let y = deq(ty, &q, n);
        let rms = (x.iter().map(|v| v * v).sum::<f32>() / n as f32).sqrt();
        let rmse = (x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            / n as f32)
            .sqrt();
        assert!(
            rmse <= bound * rms,
            "{ty}: rmse {rmse} > {bound} × rms {rms}"
        );
        // No element is off by more than the largest value in its block.
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            x.iter().zip(&y).all(|(a, b)| (a - b).abs() <= amax),
            "{ty}: element error above amax"
        );
    }
}

#[test]
fn q4_0_and_q8_0_match_ggml_reference_formulas() {
    // Q4_0: max-magnitude element −2 → d = 0.25, q = trunc(x/d + 8.5) clamped to 15.
    let mut x = vec![0f32; 32];
    x[0] = -2.0;
    x[1] = 1.0;
    x[16] = 2.0; // 2/0.25 + 8.5 = 16.5 → 16, clamped to 15
    let mut b = [0u8; 18];
    quantize(DType::Q4_0, &x, &mut b).unwrap();
    let blk = &cast_blocks::<BlockQ4_0>(&b).unwrap()[0];
    assert_eq!(blk.d(), 0.25);
    assert_eq!(blk.q(0), 0);
    assert_eq!(blk.q(1), 12);
    assert_eq!(blk.q(16), 15);
    assert_eq!(blk.q(2), 8);
    // Q8_0 weights: round half away from zero.
    let mut x = vec![0f32; 32];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -2.5;
    let mut b = [0u8; 34];
    quantize(DType::Q8_0, &x, &mut b).unwrap();
    let blk = &cast_blocks::<BlockQ8_0>(&b).unwrap()[0];
    assert_eq!((blk.qs[0], blk.qs[1], blk.qs[2]), (127, 3, -3));
}

#[test]
fn layout_q4_0_q4_1_nibble_order() {
    let mut b = BlockQ4_0::zeroed();
    b.d = f32_to_f16(0.5);
    b.qs[0] = 0x21;
    b.qs[15] = 0xF0;
    let y = deq(DType::Q4_0, block_bytes(&b), 32);
    assert_eq!(y[0], (1.0 - 8.0) * 0.5);
    assert_eq!(y[16], (2.0 - 8.0) * 0.5);
    assert_eq!(y[15], -4.0);
    assert_eq!(y[31], (15.0 - 8.0) * 0.5);
    let mut b = BlockQ4_1::zeroed();
    b.d = f32_to_f16(2.0);
    b.m = f32_to_f16(-1.0);
    b.qs[3] = 0x5A;
    let y = deq(DType::Q4_1, block_bytes(&b), 32);
    assert_eq!(y[3], 10.0 * 2.0 - 1.0);
    assert_eq!(y[19], 5.0 * 2.0 - 1.0);
    assert_eq!(y[0], -1.0);
}

#[test]
fn layout_q4_k_known_scales() {
    let mut b = BlockQ4K::zeroed();
    b.d = f32_to_f16(1.0);
    b.dmin = f32_to_f16(0.5);
    // Sub-block 0: sc = 3 (scales[0] low 6 bits), m = 2 (scales[4] low 6 bits).
    b.scales[0] = 3;
    b.scales[4] = 2;
    // Sub-block 5: sc = 0b10_1010 = 42: low nibble 0xA in scales[9] low nibble, top
    // bits 0b10 in scales[1] bits 6..8. m = 0b01_0111 = 23: low nibble 7 in
    // scales[9] high nibble, top bits 0b01 in scales[5] bits 6..8.
    b.scales[9] = 0x7A;
    b.scales[1] |= 0b10 << 6;
    b.scales[5] |= 0b01 << 6;
    // Chunk 0, element 0 (low nibble of qs[0]) = 7; chunk 2 high half element 160+4
    // (high nibble of qs[64+4]) = 9.
    b.qs[0] = 0x07;
    b.qs[68] = 0x90;
    let y = deq(DType::Q4_K, block_bytes(&b), 256);
    assert_eq!(y[0], 1.0 * 3.0 * 7.0 - 0.5 * 2.0);
    assert_eq!(y[1], -1.0);
    assert_eq!(y[160 + 4], 42.0 * 9.0 - 0.5 * 23.0);
    assert_eq!(y[160], -0.5 * 23.0);
    // Sub-blocks 1 (sc from scales[1] low bits = 0) → 0 - 0.5 * m[1] (scales[5] & 63 = 0).
    assert_eq!(y[32], 0.0);
}

#[test]
fn layout_q5_k_high_bits() {
    let mut b = BlockQ5K::zeroed();
    b.d = f32_to_f16(1.0);
    b.scales = pack_k_scales(&[1, 1, 1, 1, 1, 1, 1, 1], &[0; 8]);
    // qh[l] bit 2c → element 64c + l gets +16; bit 2c+1 → element 64c + 32 + l.
    b.qh[0] = 0b0000_0001; // element 0
    b.qh[1] = 0b0000_1000; // element 64 + 32 + 1 = 97
    b.qh[2] = 0b1000_0000; // element 192 + 32 + 2 = 226
    b.qs[0] = 0x03; // element 0 low nibble 3, element 32 high nibble 0
    let y = deq(DType::Q5_K, block_bytes(&b), 256);
    assert_eq!(y[0], 19.0);
    assert_eq!(y[97], 16.0);
    assert_eq!(y[226], 16.0);
    assert_eq!(y[1], 0.0);
    assert_eq!(y[32], 0.0);
}

#[test]
fn layout_q6_k_known_values() {
    let mut b = BlockQ6K::zeroed();
    b.d = f32_to_f16(0.5);
    b.scales = std::array::from_fn(|g| g as i8 - 8);
    // Half 0, l = 0: ql[0] = 0x21, ql[32] = 0x43, qh[0] = 0b11_10_01_00.
    b.ql[0] = 0x21;
    b.ql[32] = 0x43;
    b.qh[0] = 0b11_10_01_00;
    // Half 1, l = 17: ql[64+17] low nibble 15, qh[32+17] bits 0..2 = 3 → q = 63.
    b.ql[64 + 17] = 0x0F;
    b.qh[32 + 17] = 0b11;
    let y = deq(DType::Q6_K, block_bytes(&b), 256);
    let sc = |g: usize| g as f32 - 8.0;
    assert_eq!(y[0], 0.5 * sc(0) * (1.0 - 32.0));
    assert_eq!(y[32], 0.5 * sc(2) * (19.0 - 32.0));
    assert_eq!(y[64], 0.5 * sc(4) * (34.0 - 32.0));
    assert_eq!(y[96], 0.5 * sc(6) * (52.0 - 32.0));
    assert_eq!(y[128 + 17], 0.5 * sc(8 + 1) * (63.0 - 32.0));
}

#[test]
fn q8_1_sum_field() {
    let x: Vec<f32> = (0..32).map(|i| i as f32 - 10.0).collect();
    let mut out = vec![0u8; 36];
    quantize_act(DType::Q4_1, &x, &mut out).unwrap();
    let b = &cast_blocks::<BlockQ8_1>(&out).unwrap()[0];
    let s: i32 = b.qs.iter().map(|&q| q as i32).sum();
    assert_eq!(b.s, f32_to_f16((21.0 / 127.0) * s as f32));
    assert_eq!(b.qs[31], 127);
}

#[test]
fn errors_carry_values() {
    let e = quantize(DType::Q2_K, &[0.0; 256], &mut [0u8; 84]).unwrap_err();
    assert!(matches!(e, QuantError::UnsupportedType { .. }));
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "quantize: Q2_K is not supported; supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1"
        ),
        "{msg}"
    );
    let msg = dequantize(DType::Q2_K, &[0u8; 84], &mut [0f32; 256])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("Q4_1, Q5_0, Q5_1, Q8_0"), "{msg}");
    let e = quantize(DType::Q4_0, &[0.0; 33], &mut [0u8; 40]).unwrap_err();
    assert!(e.to_string().contains("33"), "{e}");
    let e = quantize_act(DType::Q4_K, &[0.0; 256], &mut [0u8; 100]).unwrap_err();
    assert!(
        e.to_string().contains("292") && e.to_string().contains("100"),
        "{e}"
    );
    assert!(act_type(DType::Q8_K).is_err());
    assert!(dequantize(DType::Q2_K, &[0u8; 84], &mut [0f32; 256]).is_err());
}

#[test]
fn isa_is_reported() {
    let isa = alc_quant::isa();
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var_os("ALC_QUANT_FORCE_SCALAR").is_none()
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            let vnni = std::env::var_os("ALC_QUANT_NO_AVX512").is_none()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni");
            let avxvnni = std::env::var_os("ALC_QUANT_NO_AVXVNNI").is_none()
                && is_x86_feature_detected!("avxvnni");
            let mut want = String::from("avx2+fma+f16c");
            if avxvnni {
                want += "+avxvnni";
            }
            if vnni {
                want += "+avx512vnni";
            }
            assert_eq!(isa, want);
            return;
        }
    }
    #[cfg(target_arch = "aarch64")]
    if std::env::var_os("ALC_QUANT_FORCE_SCALAR").is_none() {
        let dotprod = std::env::var_os("ALC_QUANT_NO_DOTPROD").is_none()
            && std::arch::is_aarch64_feature_detected!("dotprod");
        assert_eq!(isa, if dotprod { "neon+dotprod" } else { "neon" });
        return;
    }
    assert_eq!(isa, "scalar");
}

#[test]
#[should_panic(expected = "activations have")]
fn dot_rejects_short_activation_buffer() {
    let w = vec![0u8; 18 * 2];
    let acts = vec![0u8; 34 * 2 + 10];
    let mut out = [0f32; 2];
    // Row 1 would start at byte 40 and need 68 bytes: past the end.
    dot(DType::Q4_0, 64, &w, &acts, 40, 2, &mut out);
}

#[test]
#[should_panic(expected = "weight row has")]
fn dot_rejects_short_weight_row() {
    let w = vec![0u8; 144];
    let acts = vec![0u8; 292 * 2];
    let mut out = [0f32; 1];
    dot(DType::Q4_K, 512, &w, &acts, 0, 1, &mut out);
}

/// Q8_0 / Q8_1 activation rows that are one-hot (quant 1 at element `hot[j]`, d = 1)
/// so that `dot` returns the weight's value at that element exactly.
fn one_hot_acts(w: DType, hot: [usize; 4]) -> (Vec<u8>, usize) {
    let ab = act_row_bytes(w, 32).unwrap();
    let stride = ab + 1;
    let mut buf = vec![0u8; 4 * stride];
    for (j, &h) in hot.iter().enumerate() {
        let row = &mut buf[j * stride..j * stride + ab];
        match act_type(w).unwrap() {
            DType::Q8_0 => {
                let b = &mut cast_blocks_mut::<BlockQ8_0>(row).unwrap()[0];
                b.d = f32_to_f16(1.0);
                b.qs[h] = 1;
            }
            _ => {
                let b = &mut cast_blocks_mut::<BlockQ8_1>(row).unwrap()[0];
                b.d = f32_to_f16(1.0);
                b.s = f32_to_f16(1.0);
                b.qs[h] = 1;
            }
        }
    }
    (buf, stride)
}

/// Every element of a hand-built 32-element block through SIMD and scalar `dot`
/// (k = 1..=4) must equal `want` exactly, as must `dequantize`.
fn check_block_values(w: DType, block: &[u8], want: &[f32; 32]) {
    assert_eq!(deq(w, block, 32), want.to_vec(), "{w} dequantize");
    for base in (0..32).step_by(4) {
        let hot = [base, base + 1, base + 2, base + 3];
        let (acts, stride) = one_hot_acts(w, hot);
        for k in 1..=4 {
            let mut simd = [0f32; 4];
            let mut refr = [0f32; 4];
            dot(w, 32, block, &acts, stride, k, &mut simd);
            reference::dot(w, 32, block, &acts, stride, k, &mut refr);
            for j in 0..k {
                assert_eq!(simd[j], want[hot[j]], "{w} simd k={k} element {}", hot[j]);
                assert_eq!(refr[j], want[hot[j]], "{w} ref k={k} element {}", hot[j]);
            }
        }
    }
}

#[test]
fn layout_q5_0_high_bits_and_nibbles() {
    let mut b = BlockQ5_0::zeroed();
    b.d = f32_to_f16(0.5);
    // qh as a little-endian u32: bits 0, 17 and 31 set.
    b.qh = [0x01, 0x00, 0x02, 0x80];
    b.qs[0] = 0x21; // element 0: nibble 1 + bit 0 → 17; element 16: nibble 2 → 2
    b.qs[1] = 0x3F; // element 1: 15; element 17: nibble 3 + bit 17 → 19
    b.qs[15] = 0xF0; // element 15: 0; element 31: nibble 15 + bit 31 → 31
    assert_eq!(
        (b.q(0), b.q(16), b.q(1), b.q(17), b.q(15), b.q(31)),
        (17, 2, 15, 19, 0, 31)
    );
    let mut want = [-8.0f32; 32]; // q = 0 everywhere else: (0 − 16)·0.5
    want[0] = 0.5;
    want[16] = -7.0;
    want[1] = -0.5;
    want[17] = 1.5;
    want[15] = -8.0;
    want[31] = 7.5;
    check_block_values(DType::Q5_0, block_bytes(&b), &want);
    // Every quant value at every position (one bit pattern per value).
    for v in 0..32u8 {
        let mut b = BlockQ5_0::zeroed();
        b.d = f32_to_f16(1.0);
        b.set_quants(&std::array::from_fn(|i| (v + i as u8) % 32));
        let want = std::array::from_fn(|i| ((v as usize + i) % 32) as f32 - 16.0);
        check_block_values(DType::Q5_0, block_bytes(&b), &want);
    }
}

#[test]
fn layout_q5_1_high_bits_and_nibbles() {
    let mut b = BlockQ5_1::zeroed();
    b.d = f32_to_f16(2.0);
    b.m = f32_to_f16(-1.0);
    // Bits 5 and 20 set: qh bytes [0x20, 0, 0x10, 0].
    b.qh = [0x20, 0x00, 0x10, 0x00];
    b.qs[5] = 0x7A; // element 5: nibble 10 + bit 5 → 26; element 21: 7
    b.qs[4] = 0x0B; // element 4: 11; element 20: nibble 0 + bit 20 → 16
    let mut want = [-1.0f32; 32];
    want[5] = 26.0 * 2.0 - 1.0;
    want[21] = 7.0 * 2.0 - 1.0;
    want[4] = 11.0 * 2.0 - 1.0;
    want[20] = 16.0 * 2.0 - 1.0;
    check_block_values(DType::Q5_1, block_bytes(&b), &want);
    for v in 0..32u8 {
        let mut b = BlockQ5_1::zeroed();
        b.d = f32_to_f16(1.0);
        b.m = f32_to_f16(-0.5);
        b.set_quants(&std::array::from_fn(|i| (v + 7 * i as u8) % 32));
        let want = std::array::from_fn(|i| ((v as usize + 7 * i) % 32) as f32 - 0.5);
        check_block_values(DType::Q5_1, block_bytes(&b), &want);
    }
}

#[test]
fn q5_0_and_q5_1_match_ggml_reference_formulas() {
    // Q5_0: max-magnitude element −2 → d = 0.125, q = trunc(x/d + 16.5), ≤ 31.
    let mut x = vec![0f32; 32];
    x[0] = -2.0; // −16 + 16.5 → 0
    x[1] = 1.0; // 8 + 16.5 → 24
    x[3] = -0.0625; // −0.5 + 16.5 = 16 (a tie goes up: truncation, not rounding)
    x[6] = -0.1; // −0.8 + 16.5 → 15
    x[16] = 2.0; // 16 + 16.5 = 32.5 → 32, clamped to 31
    x[20] = 1.9; // 15.2 + 16.5 → 31
    let mut b = [0u8; 22];
    quantize(DType::Q5_0, &x, &mut b).unwrap();
    let blk = &cast_blocks::<BlockQ5_0>(&b).unwrap()[0];
    assert_eq!(blk.d(), 0.125);
    let q: Vec<u8> = [0, 1, 2, 3, 6, 16, 20].iter().map(|&i| blk.q(i)).collect();
    assert_eq!(q, [0, 24, 16, 16, 15, 31, 31]);
    // Q5_1: min −1, max 30 → d = 1, m = −1, q = trunc(x − min + 0.5).
    let mut x = vec![0f32; 32];
    x[0] = -1.0;
    x[1] = 30.0;
    x[2] = 0.5; // 1.5 + 0.5 → 2
    x[3] = -0.5; // 0.5 + 0.5 → 1
    x[4] = 14.49; // 15.49 + 0.5 → 15
    x[17] = 15.0; // 16 + 0.5 → 16 (fifth bit in the upper half)
    let mut b = [0u8; 24];
    quantize(DType::Q5_1, &x, &mut b).unwrap();
    let blk = &cast_blocks::<BlockQ5_1>(&b).unwrap()[0];
    assert_eq!((blk.d(), blk.m()), (1.0, -1.0));
    let q: Vec<u8> = [0, 1, 2, 3, 4, 5, 17].iter().map(|&i| blk.q(i)).collect();
    assert_eq!(q, [0, 31, 2, 1, 15, 1, 16]);
    assert_eq!(u32::from_le_bytes(blk.qh), (1 << 1) | (1 << 17));
}

#[test]
fn q5_row_lengths_of_the_real_models() {
    // Qwen2.5-0.5B (896, 4864) and Gemma-3-270M (640, 2048) row lengths, all k,
    // weights at odd offsets, activations at an odd stride.
    let mut rng = SmallRng::seed_from_u64(0x0505);
    for w in [DType::Q5_0, DType::Q5_1] {
        for n in [896usize, 640, 4864, 2048, 32 * 27] {
            let x = rand_vec(&mut rng, n);
            let wb = w.row_bytes(n as u64).unwrap() as usize;
            let mut wbuf = vec![0u8; wb + 1];
            quantize(w, &x, &mut wbuf[1..]).unwrap();
            let (acts, stride) = make_acts(w, &mut rng, n, 3);
            check_dot(w, n, &wbuf[1..], &acts[1..], stride, "model rows");
            // And the dot approximates the float dot of the dequantized weights.
            let wd = deq(w, &wbuf[1..], n);
            let a0 = deq(
                act_type(w).unwrap(),
                &acts[1..1 + act_row_bytes(w, n).unwrap()],
                n,
            );
            let mut out = [0f32; 1];
            dot(w, n, &wbuf[1..], &acts[1..], stride, 1, &mut out);
            let exact: f64 = wd.iter().zip(&a0).map(|(a, b)| *a as f64 * *b as f64).sum();
            let mag: f64 = wd
                .iter()
                .zip(&a0)
                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                .sum();
            assert!(
                (out[0] as f64 - exact).abs() <= 1e-3 * mag,
                "{w} n={n}: {} vs {exact}",
                out[0]
            );
        }
    }
}

/// Checks `dot_rows` (SIMD-dispatched) against `reference::dot_rows` and against
/// `reference::dot` row by row, for every k = 1..=4: `n_rows` weight rows at
/// `row_stride` bytes starting at `wrows[0]`, 4 activation rows at `stride`.
#[allow(clippy::too_many_arguments)]
fn check_dot_rows(
    w: DType,
    n: usize,
    wrows: &[u8],
    row_stride: usize,
    n_rows: usize,
    acts: &[u8],
    stride: usize,
    ctx: &str,
) {
    let at = act_type(w).unwrap();
    let ab = act_row_bytes(w, n).unwrap();
    let wb = w.row_bytes(n as u64).unwrap() as usize;
    let wd: Vec<Vec<f32>> = (0..n_rows)
        .map(|r| deq(w, &wrows[r * row_stride..r * row_stride + wb], n))
        .collect();
    let ad: Vec<Vec<f32>> = (0..4)
        .map(|j| deq(at, &acts[j * stride..j * stride + ab], n))
        .collect();
    for k in 1..=4 {
        // One spare slot at the end: dot_rows must not write past n_rows * k.
        let mut simd = vec![f32::NAN; n_rows * k + 1];
        let mut refr = vec![0f32; n_rows * k];
        simd[n_rows * k] = 12345.0;
        alc_quant::dot_rows(w, n, wrows, row_stride, n_rows, acts, stride, k, &mut simd);
        reference::dot_rows(w, n, wrows, row_stride, n_rows, acts, stride, k, &mut refr);
        assert_eq!(
            simd[n_rows * k],
            12345.0,
            "{ctx}: {w} wrote past the output"
        );
        for r in 0..n_rows {
            let mut one = [0f32; 4];
            reference::dot(w, n, &wrows[r * row_stride..], acts, stride, k, &mut one);
            for j in 0..k {
                assert_eq!(refr[r * k + j], one[j], "{ctx}: reference::dot_rows");
                let mag: f32 = wd[r].iter().zip(&ad[j]).map(|(x, y)| (x * y).abs()).sum();
                let got = simd[r * k + j];
                let err = (got - one[j]).abs();
                assert!(
                    err <= DOT_REL_TOL * mag + 1e-30,
                    "{ctx}: {w} n={n} n_rows={n_rows} k={k} row {r} act {j}: simd {got} vs ref {} (err {err}, Σ|wa| {mag})",
                    one[j]
                );
            }
        }
    }
}

#[test]
fn dot_rows_matches_reference_on_random_bytes() {
    let mut rng = SmallRng::seed_from_u64(0xd07);
    for w in WEIGHT_TYPES {
        for (i, n) in sizes(w).into_iter().enumerate() {
            for n_rows in [1usize, 2, 3, 4, 5, 7, 8, 11, 16] {
                if n > 2048 && n_rows > 5 {
                    continue;
                }
                // Rows at a padded stride (odd for some), the block at an odd offset.
                let wb = w.row_bytes(n as u64).unwrap() as usize;
                let row_stride = wb + [0usize, 3, 64][(i + n_rows) % 3];
                let mut wbuf = vec![0u8; 1 + n_rows * row_stride];
                for r in 0..n_rows {
                    let row = random_weight_row(w, &mut rng, n);
                    wbuf[1 + r * row_stride..1 + r * row_stride + wb].copy_from_slice(&row);
                }
                let (acts, stride) = random_act_rows(w, &mut rng, n);
                check_dot_rows(
                    w,
                    n,
                    &wbuf[1..],
                    row_stride,
                    n_rows,
                    &acts,
                    stride,
                    "random bytes",
                );
            }
        }
    }
}

#[test]
fn dot_rows_matches_reference_on_quantized_data() {
    let mut rng = SmallRng::seed_from_u64(0xd08);
    for w in WEIGHT_TYPES {
        let ns = if w.block_size() == 256 {
            [256, 1792, 2048]
        } else {
            [32, 896, 2048]
        };
        for n in ns {
            for n_rows in [1usize, 3, 4, 6, 9] {
                let wb = w.row_bytes(n as u64).unwrap() as usize;
                let mut wbuf = vec![0u8; n_rows * wb];
                for r in 0..n_rows {
                    let x = rand_vec(&mut rng, n);
                    quantize(w, &x, &mut wbuf[r * wb..(r + 1) * wb]).unwrap();
                }
                let (acts, stride) = make_acts(w, &mut rng, n, 7);
                check_dot_rows(w, n, &wbuf, wb, n_rows, &acts[1..], stride, "quantized");
            }
        }
    }
}

#[test]
fn dot_rows_extreme_quants_do_not_saturate() {
    // As extreme_quants_do_not_saturate, 5 rows of each fill at once (the i16
    // reductions of the multi-row kernels see the largest sums).
    let mut rng = SmallRng::seed_from_u64(8);
    for w in [
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q4_K,
        DType::Q5_K,
        DType::Q6_K,
    ] {
        let n = 512;
        let wb = w.row_bytes(n as u64).unwrap() as usize;
        let n_rows = 5;
        for fill in [0x00u8, 0xFF, 0x80, 0x7F, 0x88, 0x11] {
            let mut wbuf = vec![0u8; n_rows * wb];
            for r in 0..n_rows {
                let mut row = random_weight_row(w, &mut rng, n);
                let bb = w.block_bytes();
                for b in row.chunks_exact_mut(bb) {
                    let (s, e) = quant_byte_range(w);
                    // Row 0 all fill, the others partly (mixed signs per row).
                    let e = if r == 0 { e } else { s + (e - s) * r / n_rows };
                    b[s..e].fill(fill);
                }
                wbuf[r * wb..(r + 1) * wb].copy_from_slice(&row);
            }
            let (acts, stride) = extreme_act_rows(w, &mut rng, n);
            check_dot_rows(
                w,
                n,
                &wbuf,
                wb,
                n_rows,
                &acts,
                stride,
                &format!("extreme fill {fill:#x}"),
            );
        }
    }
}

#[test]
fn dot_rows_one_hot_values_exact() {
    // Hand-built Q5_0 / Q4_0 / Q8_0 blocks with one-hot activations: every
    // (row, token) result is a single weight value, exactly.
    for w in [
        DType::Q4_0,
        DType::Q5_0,
        DType::Q8_0,
        DType::Q4_1,
        DType::Q5_1,
    ] {
        let bb = w.block_bytes();
        let n_rows = 6;
        let mut rows = vec![0u8; n_rows * bb];
        for r in 0..n_rows {
            let x: Vec<f32> = (0..32)
                .map(|i| ((i * 7 + r * 5) % 31) as f32 - 15.0)
                .collect();
            quantize(w, &x, &mut rows[r * bb..(r + 1) * bb]).unwrap();
        }
        for base in (0..32).step_by(4) {
            let (acts, stride) = one_hot_acts(w, [base, base + 1, base + 2, base + 3]);
            for k in 1..=4 {
                let mut out = vec![0f32; n_rows * k];
                alc_quant::dot_rows(w, 32, &rows, bb, n_rows, &acts, stride, k, &mut out);
                for r in 0..n_rows {
                    let wd = deq(w, &rows[r * bb..(r + 1) * bb], 32);
                    for j in 0..k {
                        assert_eq!(
                            out[r * k + j],
                            wd[base + j],
                            "{w} k={k} row {r} el {}",
                            base + j
                        );
                    }
                }
            }
        }
    }
}

#[test]
#[should_panic(expected = "weight rows have")]
fn dot_rows_rejects_short_weight_rows() {
    let w = vec![0u8; 18 * 2 * 3 - 1];
    let acts = vec![0u8; 34 * 2];
    let mut out = [0f32; 3];
    dot_rows(DType::Q4_0, 64, &w, 36, 3, &acts, 68, 1, &mut out);
}

#[test]
#[should_panic(expected = "n_rows * k")]
fn dot_rows_rejects_short_output() {
    let w = vec![0u8; 18 * 2 * 3];
    let acts = vec![0u8; 34 * 2 * 2];
    let mut out = [0f32; 5];
    dot_rows(DType::Q4_0, 64, &w, 36, 3, &acts, 68, 2, &mut out);
}

/// The reference `dot` over several activation rows (each weight block unpacked once)
/// is the very sum `dot1` computes for each row alone.
#[test]
fn reference_multi_row_dot_equals_dot1() {
    let mut rng = SmallRng::seed_from_u64(7);
    for w in WEIGHT_TYPES {
        for n in sizes(w) {
            let wrow = random_weight_row(w, &mut rng, n);
            let (acts, stride) = random_act_rows(w, &mut rng, n);
            let mut out = [0f32; 4];
            alc_quant::reference::dot(w, n, &wrow, &acts, stride, 4, &mut out);
            let ab = act_row_bytes(w, n).unwrap();
            for (j, &o) in out.iter().enumerate() {
                let one =
                    alc_quant::reference::dot1(w, n, &wrow, &acts[j * stride..j * stride + ab]);
                assert_eq!(o.to_bits(), one.to_bits(), "{w} n={n} row {j}");
            }
        }
    }
}

/// Q4BF16_1 (alc's type): the same quants as Q4_0 where the scale is exact in both
/// f16 and bf16, values within bf16's precision of the input otherwise, and a
/// quantisation error no worse than Q4_0's by more than bf16's coarser scale.
#[test]
fn q4bf16_1_round_trip() {
    let mut rng = SmallRng::seed_from_u64(11);
    let n = 4096;
    let x = rand_vec(&mut rng, n);
    let rmse = |ty: DType| {
        let mut q = vec![0u8; ty.row_bytes(n as u64).unwrap() as usize];
        quantize(ty, &x, &mut q).unwrap();
        let back = deq(ty, &q, n);
        let se: f64 = x
            .iter()
            .zip(&back)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        (se / n as f64).sqrt()
    };
    let (r0, rb) = (rmse(DType::Q4_0), rmse(DType::Q4BF16_1));
    assert!(rb <= 1.1 * r0, "Q4BF16_1 rmse {rb} vs Q4_0 {r0}");
    // Scale 1/8 is exact in both: identical quants and values.
    let y: Vec<f32> = (0..32).map(|i| (16.0 - i as f32) / 8.0).collect();
    let (mut a, mut b) = ([0u8; 18], [0u8; 18]);
    quantize(DType::Q4_0, &y, &mut a).unwrap();
    quantize(DType::Q4BF16_1, &y, &mut b).unwrap();
    assert_eq!(a[2..], b[2..], "quants");
    assert_eq!(deq(DType::Q4_0, &a, 32), deq(DType::Q4BF16_1, &b, 32));
    // A scale beyond f16's range survives in bf16.
    let big: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) * 1e6).collect();
    quantize(DType::Q4BF16_1, &big, &mut b).unwrap();
    let back = deq(DType::Q4BF16_1, &b, 32);
    let err = big
        .iter()
        .zip(&back)
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max);
    assert!(err <= 1.1e6, "max error {err}");
}
