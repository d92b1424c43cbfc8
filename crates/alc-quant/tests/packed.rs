//! The 8-row packed layout: round trip, and the packed kernels against the scalar
//! reference on the unpacked rows (random and extreme inputs, every k, odd widths).

use alc_quant::{act_row_bytes, dequantize, packed, quantize_act, reference, DType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const TYPES: [DType; 6] = [
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q8_0,
    DType::Q4_K,
    DType::Q6_K,
];

#[test]
fn every_packed_type_is_tested() {
    assert_eq!(packed::TYPES.to_vec(), TYPES.to_vec());
}

fn rand_f16(rng: &mut SmallRng, lo: f32, hi: f32) -> [u8; 2] {
    half::f16::from_f32(rng.gen_range(lo..hi)).to_le_bytes()
}

/// `rows` random rows of `n` elements: random quant bytes, sane scales.
fn random_rows(w: DType, rng: &mut SmallRng, n: usize, rows: usize, fill: Option<u8>) -> Vec<u8> {
    let bb = w.block_bytes();
    let mut v: Vec<u8> = (0..rows * n / w.block_size() * bb)
        .map(|_| rng.gen())
        .collect();
    for b in v.chunks_exact_mut(bb) {
        if w == DType::Q6_K {
            // ql, qh (any bits; `fill` sets them), 16 i8 scales (any), then d.
            if let Some(f) = fill {
                b[..192].fill(f);
            }
            b[208..210].copy_from_slice(&rand_f16(rng, -0.01, 0.01));
            continue;
        }
        let q0 = if w == DType::Q4_K {
            // d, dmin; then the 12 scale bytes (any bits are valid) and the quants.
            b[0..2].copy_from_slice(&rand_f16(rng, 0.0, 0.01));
            b[2..4].copy_from_slice(&rand_f16(rng, 0.0, 0.01));
            4
        } else if w == DType::Q4_1 {
            b[0..2].copy_from_slice(&rand_f16(rng, 0.0, 0.1));
            b[2..4].copy_from_slice(&rand_f16(rng, -1.0, 1.0));
            4
        } else {
            b[0..2].copy_from_slice(&rand_f16(rng, -0.1, 0.1));
            2
        };
        if let Some(f) = fill {
            b[q0..].fill(f);
        }
    }
    v
}

/// Activation rows (as many as the widest kernel takes).
const ACT_ROWS: usize = 8;

/// [`ACT_ROWS`] activation rows at a padded stride, quantized from random floats, or with
/// every quant at ±127 (`extreme`).
fn acts(w: DType, rng: &mut SmallRng, n: usize, extreme: bool) -> (Vec<u8>, usize) {
    let ab = act_row_bytes(w, n).unwrap();
    let stride = ab + 5;
    let mut buf = vec![0u8; ACT_ROWS * stride];
    for j in 0..ACT_ROWS {
        let x: Vec<f32> = (0..n)
            .map(|i| {
                if extreme {
                    if (i + j) % 2 == 0 {
                        1.0
                    } else {
                        -1.0
                    }
                } else {
                    rng.gen_range(-1.0..1.0)
                }
            })
            .collect();
        // All-equal magnitudes quantize to ±127 everywhere.
        let x: Vec<f32> = if extreme && j >= 2 {
            x.iter()
                .map(|v| v.abs() * if j == 2 { 1.0 } else { -1.0 })
                .collect()
        } else {
            x
        };
        quantize_act(w, &x, &mut buf[j * stride..j * stride + ab]).unwrap();
    }
    (buf, stride)
}

fn check(w: DType, n: usize, rows: usize, src: &[u8], act: &[u8], stride: usize, ctx: &str) {
    let pk = packed::pack(w, n, rows, src).unwrap();
    let plen = packed::packed_len(w, n, rows).unwrap();
    assert_eq!(pk.len(), plen, "{ctx}: packed size");
    if w != DType::Q4_K {
        assert_eq!(plen, src.len(), "{ctx}: legacy types keep their size");
    }
    assert_eq!(
        packed::unpack(w, n, rows, &pk).unwrap(),
        src,
        "{ctx}: round trip"
    );
    let ab = act_row_bytes(w, n).unwrap();
    let ns = packed::act_sums_len(w, n);
    let mut sums = vec![0i32; ACT_ROWS * ns.max(1)];
    for j in 0..ACT_ROWS {
        packed::act_sums(w, n, &act[j * stride..], &mut sums[j * ns.max(1)..]).unwrap();
    }
    let rb = n / w.block_size() * w.block_bytes();
    let gb = plen / (rows / packed::ROWS);
    let mut wd = vec![0f32; n];
    let mut ad = vec![0f32; n];
    let at = alc_quant::act_type(w).unwrap();
    for g in 0..rows / packed::ROWS {
        let group = &pk[g * gb..(g + 1) * gb];
        for k in 1..=packed::max_tokens(w) {
            let mut out = [0f32; 32];
            packed::dot_group(w, n, group, act, stride, &sums, ns.max(1), k, &mut out);
            for r in 0..8 {
                let row = &src[(g * 8 + r) * rb..(g * 8 + r + 1) * rb];
                dequantize(w, row, &mut wd).unwrap();
                let mut want = [0f32; 4];
                reference::dot(w, n, row, act, stride, k, &mut want);
                for j in 0..k {
                    dequantize(at, &act[j * stride..j * stride + ab], &mut ad).unwrap();
                    let mag: f32 = wd.iter().zip(&ad).map(|(x, y)| (x * y).abs()).sum();
                    let got = out[j * 8 + r];
                    assert!(
                        (got - want[j]).abs() <= 1e-4 * mag + 1e-30,
                        "{ctx}: {w} n={n} group {g} row {r} k={k} token {j}: packed {got} vs reference {}",
                        want[j]
                    );
                }
            }
        }
    }
    // Two consecutive groups at once (`dot_group2`: the AVX-512 VNNI kernels where
    // the CPU has them) give what two `dot_group` calls give, bit for bit.
    for g in 0..(rows / packed::ROWS).saturating_sub(1) {
        for k in 1..=packed::max_tokens2(w) {
            // One token per `dot_group` call (the per-token arithmetic does not
            // depend on k), so that k may exceed `max_tokens(w)`.
            let mut one = [0f32; ACT_ROWS * 16];
            for h in 0..2 {
                let group = &pk[(g + h) * gb..(g + h + 1) * gb];
                for j in 0..k {
                    let mut o = [0f32; 8];
                    let (a, sm) = (&act[j * stride..], &sums[j * ns.max(1)..]);
                    packed::dot_group(w, n, group, a, stride, sm, ns.max(1), 1, &mut o);
                    one[j * 16 + h * 8..j * 16 + h * 8 + 8].copy_from_slice(&o);
                }
            }
            let mut two = [0f32; ACT_ROWS * 16];
            let pair = &pk[g * gb..(g + 2) * gb];
            packed::dot_group2(w, n, pair, act, stride, &sums, ns.max(1), k, &mut two);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&two[..k * 16]),
                bits(&one[..k * 16]),
                "{ctx}: {w} n={n} groups {g}, {} k={k}: dot_group2 (wide: {}) vs dot_group",
                g + 1,
                packed::wide(w)
            );
        }
    }
    // Runs of more tokens than one kernel call takes (`dot_groups`, the prompt
    // entry, one and two groups) equal one `dot_group` call per token, bit for bit.
    let nt = 11;
    let nsr = ns.max(1);
    let mut run_act = vec![0u8; nt * stride];
    let mut run_sums = vec![0i32; nt * nsr];
    for t in 0..nt {
        let j = (t * 3 + 1) % ACT_ROWS;
        run_act[t * stride..(t + 1) * stride].copy_from_slice(&act[j * stride..(j + 1) * stride]);
        run_sums[t * nsr..(t + 1) * nsr].copy_from_slice(&sums[j * nsr..(j + 1) * nsr]);
    }
    for ng in 1..=(rows / packed::ROWS).min(2) {
        for g in 0..=rows / packed::ROWS - ng {
            let mut got = vec![0f32; nt * ng * 8];
            let groups = &pk[g * gb..(g + ng) * gb];
            packed::dot_groups(
                w, n, groups, ng, &run_act, stride, &run_sums, nsr, nt, &mut got,
            );
            for t in 0..nt {
                for h in 0..ng {
                    let mut o = [0f32; 8];
                    let group = &pk[(g + h) * gb..(g + h + 1) * gb];
                    let (a, sm) = (&run_act[t * stride..], &run_sums[t * nsr..]);
                    packed::dot_group(w, n, group, a, stride, sm, nsr, 1, &mut o);
                    let run = &got[(t * ng + h) * 8..(t * ng + h + 1) * 8];
                    assert!(
                        run.iter().zip(&o).all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{ctx}: {w} n={n} dot_groups ng={ng} group {} token {t}: {run:?} vs {o:?}",
                        g + h
                    );
                }
            }
        }
    }
}

#[test]
fn packed_kernels_match_reference() {
    if !packed::supports(DType::Q4_0) {
        eprintln!(
            "no packed kernels on this CPU ({}); skipped",
            alc_quant::isa()
        );
        return;
    }
    eprintln!(
        "kernels: {}; 16-row kernels for {:?}",
        alc_quant::isa(),
        TYPES
            .iter()
            .filter(|&&w| packed::wide(w))
            .collect::<Vec<_>>()
    );
    let mut rng = SmallRng::seed_from_u64(11);
    for w in TYPES {
        for n in [32, 96, 256, 384, 576, 1536, 4864] {
            if n % w.block_size() != 0 {
                continue;
            }
            let rows = if n > 1536 { 8 } else { 24 };
            let src = random_rows(w, &mut rng, n, rows, None);
            let (a, stride) = acts(w, &mut rng, n, false);
            check(w, n, rows, &src, &a, stride, "random");
        }
    }
}

#[test]
fn packed_kernels_do_not_saturate() {
    if !packed::supports(DType::Q4_0) {
        return;
    }
    let mut rng = SmallRng::seed_from_u64(12);
    for w in TYPES {
        // 0x80 / 0x7F: Q8_0's extreme quants (−128, 127) against ±127 activations,
        // the worst case for its i16 pair sums (2 × 128 × 127).
        for fill in [0x00u8, 0xFF, 0x88, 0x0F, 0xF0, 0x80, 0x7F, 0x81] {
            let n = 512;
            let src = random_rows(w, &mut rng, n, 16, Some(fill));
            let (a, stride) = acts(w, &mut rng, n, true);
            check(w, n, 16, &src, &a, stride, &format!("fill {fill:#x}"));
        }
    }
}

#[test]
fn pack_layout_is_pinned() {
    // Row r, block b: scale = r + 8b (as f16), quant byte i = 16r + i. The packed
    // block b starts with the 8 scales, then group j holds bytes 4j..4j+4 of each row.
    let (n, rows) = (64, 8);
    let mut src = vec![0u8; rows * 2 * 18];
    for r in 0..rows {
        for b in 0..2 {
            let blk = &mut src[r * 36 + b * 18..][..18];
            blk[..2].copy_from_slice(&half::f16::from_f32((r + 8 * b) as f32).to_le_bytes());
            for i in 0..16 {
                blk[2 + i] = (16 * r + i) as u8;
            }
        }
    }
    let pk = packed::pack(DType::Q4_0, n, rows, &src).unwrap();
    for b in 0..2 {
        let blk = &pk[b * 144..(b + 1) * 144];
        for r in 0..8 {
            let d = half::f16::from_le_bytes([blk[2 * r], blk[2 * r + 1]]).to_f32();
            assert_eq!(d, (r + 8 * b) as f32);
            for j in 0..4 {
                for i in 0..4 {
                    assert_eq!(blk[16 + 32 * j + 4 * r + i], (16 * r + 4 * j + i) as u8);
                }
            }
        }
    }
}

#[test]
fn q4_k_layout_is_pinned() {
    // Row r: d = r, dmin = 2r, sub-block s: scale = 8r + s, min = 63 − 8r − s (6-bit);
    // quant byte i = (r + i) mod 256.
    let (n, rows) = (256, 8);
    let mut src = vec![0u8; rows * 144];
    for r in 0..rows {
        let blk = &mut src[r * 144..(r + 1) * 144];
        blk[0..2].copy_from_slice(&half::f16::from_f32(r as f32).to_le_bytes());
        blk[2..4].copy_from_slice(&half::f16::from_f32(2.0 * r as f32).to_le_bytes());
        let sc: [u8; 8] = std::array::from_fn(|s| (8 * r + s) as u8);
        let m: [u8; 8] = std::array::from_fn(|s| (63 - 8 * r - s) as u8);
        blk[4..16].copy_from_slice(&alc_quant::blocks::pack_k_scales(&sc, &m));
        for i in 0..128 {
            blk[16 + i] = (r + i) as u8;
        }
    }
    let pk = packed::pack(DType::Q4_K, n, rows, &src).unwrap();
    assert_eq!(pk.len(), 1184);
    for r in 0..8 {
        let f = |at: usize| half::f16::from_le_bytes([pk[at], pk[at + 1]]).to_f32();
        assert_eq!(f(2 * r), r as f32);
        assert_eq!(f(16 + 2 * r), 2.0 * r as f32);
        for s in 0..8 {
            assert_eq!(pk[32 + 8 * s + r], (8 * r + s) as u8, "scale r {r} s {s}");
            assert_eq!(
                pk[96 + 16 * (s / 2) + 2 * r + s % 2],
                (63 - 8 * r - s) as u8,
                "min r {r} s {s}"
            );
        }
        for c in 0..4 {
            for j in 0..8 {
                for i in 0..4 {
                    assert_eq!(
                        pk[160 + 256 * c + 32 * j + 4 * r + i],
                        (r + 32 * c + 4 * j + i) as u8
                    );
                }
            }
        }
    }
    assert_eq!(packed::unpack(DType::Q4_K, n, rows, &pk).unwrap(), src);
}

#[test]
fn q8_0_layout_is_pinned() {
    // Row r, block b: scale = r + 8b (as f16), quant i = (32r + i) as i8. The packed
    // block b (272 bytes) starts with the 8 scales, then group j (0..8) holds quants
    // 4j..4j+4 of each row.
    let (n, rows) = (64, 8);
    let mut src = vec![0u8; rows * 2 * 34];
    for r in 0..rows {
        for b in 0..2 {
            let blk = &mut src[r * 68 + b * 34..][..34];
            blk[..2].copy_from_slice(&half::f16::from_f32((r + 8 * b) as f32).to_le_bytes());
            for i in 0..32 {
                blk[2 + i] = (32 * r + i) as u8;
            }
        }
    }
    let pk = packed::pack(DType::Q8_0, n, rows, &src).unwrap();
    assert_eq!(pk.len(), src.len());
    for b in 0..2 {
        let blk = &pk[b * 272..(b + 1) * 272];
        for r in 0..8 {
            let d = half::f16::from_le_bytes([blk[2 * r], blk[2 * r + 1]]).to_f32();
            assert_eq!(d, (r + 8 * b) as f32);
            for j in 0..8 {
                for i in 0..4 {
                    assert_eq!(blk[16 + 32 * j + 4 * r + i], (32 * r + 4 * j + i) as u8);
                }
            }
        }
    }
    assert_eq!(packed::unpack(DType::Q8_0, n, rows, &pk).unwrap(), src);
    assert_eq!(
        packed::act_sums_len(DType::Q8_0, n),
        0,
        "signed quants: no sums"
    );
}

#[test]
fn pack_rejects_bad_shapes() {
    let src = vec![0u8; 8 * 18];
    let e = packed::pack(DType::Q4_0, 32, 7, &src)
        .unwrap_err()
        .to_string();
    assert!(e.contains("row count") && e.contains('7'), "{e}");
    let e = packed::pack(DType::Q4_0, 32, 16, &src)
        .unwrap_err()
        .to_string();
    assert!(e.contains("288") && e.contains("144"), "{e}");
    let e = packed::pack(DType::Q5_K, 256, 8, &src)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Q5_K") && e.contains("Q6_K"), "{e}");
    let e = packed::pack(DType::Q4_0, 33, 8, &src)
        .unwrap_err()
        .to_string();
    assert!(e.contains("33"), "{e}");
}

#[test]
fn q6_k_layout_is_pinned() {
    // Row r: d = r, scale s = 16r + s − 64 (i8), ql byte i = (r + i) mod 256, qh byte
    // i = (7r + i) mod 256.
    let (n, rows) = (256, 8);
    let mut src = vec![0u8; rows * 210];
    for r in 0..rows {
        let blk = &mut src[r * 210..(r + 1) * 210];
        for (i, b) in blk[..128].iter_mut().enumerate() {
            *b = (r + i) as u8;
        }
        for (i, b) in blk[128..192].iter_mut().enumerate() {
            *b = (7 * r + i) as u8;
        }
        for (s, b) in blk[192..208].iter_mut().enumerate() {
            *b = ((16 * r + s) as i32 - 64) as i8 as u8;
        }
        blk[208..210].copy_from_slice(&half::f16::from_f32(r as f32).to_le_bytes());
    }
    let pk = packed::pack(DType::Q6_K, n, rows, &src).unwrap();
    assert_eq!(pk.len(), 1680);
    for r in 0..8 {
        let d = half::f16::from_le_bytes([pk[2 * r], pk[2 * r + 1]]).to_f32();
        assert_eq!(d, r as f32);
        for s in 0..16 {
            assert_eq!(
                pk[16 + 8 * s + r],
                ((16 * r + s) as i32 - 64) as i8 as u8,
                "r {r} s {s}"
            );
        }
        for h in 0..2 {
            for j in 0..16 {
                for i in 0..4 {
                    let at = 144 + 512 * h + 32 * j + 4 * r + i;
                    assert_eq!(
                        pk[at],
                        (r + 64 * h + 4 * j + i) as u8,
                        "ql r {r} h {h} j {j}"
                    );
                }
            }
            for m in 0..8 {
                for i in 0..4 {
                    let at = 1168 + 256 * h + 32 * m + 4 * r + i;
                    assert_eq!(pk[at], (7 * r + 32 * h + 4 * m + i) as u8, "qh r {r} h {h}");
                }
            }
        }
    }
    assert_eq!(packed::unpack(DType::Q6_K, n, rows, &pk).unwrap(), src);
}

#[test]
fn q5_0_fifth_bits_are_regrouped() {
    // One row group, one block; row r has the single fifth bit of element e_r set.
    let elems = [0usize, 5, 15, 16, 19, 26, 31, 12];
    let mut src = vec![0u8; 8 * 22];
    for (r, &e) in elems.iter().enumerate() {
        let blk = &mut src[r * 22..(r + 1) * 22];
        blk[..2].copy_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
        blk[2..6].copy_from_slice(&(1u32 << e).to_le_bytes());
    }
    let pk = packed::pack(DType::Q5_0, 32, 8, &src).unwrap();
    for (r, &e) in elems.iter().enumerate() {
        let g = u32::from_le_bytes(pk[16 + 4 * r..20 + 4 * r].try_into().unwrap());
        let (j, i, hi) = ((e % 16) / 4, e % 4, e >= 16);
        let want = 1u32 << (8 * i + j + if hi { 4 } else { 0 });
        assert_eq!(g, want, "row {r} element {e}");
    }
    assert_eq!(packed::unpack(DType::Q5_0, 32, 8, &pk).unwrap(), src);
}
