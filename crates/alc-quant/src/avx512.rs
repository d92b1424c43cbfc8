//! AVX-512 VNNI kernels for packed weights: two packed 8-row groups (16 rows) at a
//! time, over the unchanged 8-row layout of [`crate::packed`].
//!
//! Why. On AVX2 a 4-byte activation group meets 8 rows per `vpmaddubsw`, and the
//! i16 products need an add each and a widening `vpmaddwd` per block. With
//! AVX-512 VNNI, `vpdpbusd` multiplies unsigned weight bytes by signed activation
//! bytes and accumulates straight into i32 lanes: the two 32-byte quant groups of
//! two consecutive packed groups sit in one 64-byte register (16 rows × 4 bytes),
//! so one broadcast 4-byte activation group and one instruction do 64
//! multiply-adds, with no i16 stage (so no overflow bound either) and no widening.
//! On cores with full 512-bit datapaths (Zen 5, Intel server cores) that is about
//! 2.5× fewer instructions per multiply-add than the AVX2 kernel.
//!
//! Arithmetic: per block, token and row the same exact integer sum as the AVX2
//! kernel (Σ q·y − offset·Σ y), converted once and folded in with the same FMA by
//! d_w × d_y, so results equal the AVX2 kernel's bit for bit (tested).

use crate::avx2::{f16_lut, f16_table, ld32, packed_shape, LQ4_0, LQ4_1, LQ5_0};
use crate::DType;
use std::arch::x86_64::*;

/// Whether this CPU runs these kernels (AVX-512 F/BW/VL + VNNI, and the AVX2, FMA
/// and F16C of the 8-row kernels). `ALC_QUANT_NO_AVX512` in the environment (read
/// once) turns them off, for side-by-side measurements.
pub(crate) fn detect() -> bool {
    std::env::var_os("ALC_QUANT_NO_AVX512").is_none()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// The weight types with a 16-row kernel here.
pub(crate) fn handles(t: DType) -> bool {
    matches!(
        t,
        DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q4_K | DType::Q6_K
    )
}

/// 32 bytes at `a` (lanes 0..8) and 32 bytes at `b` (lanes 8..16).
#[inline(always)]
unsafe fn pair256(a: *const u8, b: *const u8) -> __m512i {
    // SAFETY: the caller guarantees 32 readable bytes at `a` and at `b`.
    unsafe {
        let lo = _mm512_castsi256_si512(_mm256_loadu_si256(a.cast()));
        _mm512_inserti64x4::<1>(lo, _mm256_loadu_si256(b.cast()))
    }
}

/// 8 IEEE halves at `a` and 8 at `b` → 16 f32 lanes.
#[inline(always)]
unsafe fn pair_ph(a: *const u8, b: *const u8) -> __m512 {
    // SAFETY: the caller guarantees 16 readable bytes at `a` and at `b`.
    unsafe {
        let lo = _mm256_castsi128_si256(_mm_loadu_si128(a.cast()));
        _mm512_cvtph_ps(_mm256_inserti128_si256::<1>(lo, _mm_loadu_si128(b.cast())))
    }
}

/// Two packed groups (`wa`, `wb`: 8 rows each) × K (1..=8) tokens over `nb` blocks of a
/// legacy type (`T`: Q4_0, Q4_1 or Q5_0); `out[j * 16 + r]`, rows 0..8 from `wa`,
/// 8..16 from `wb`.
///
/// Per block: for each of the 4 quant groups, the low and high nibbles of both
/// packed groups in one register each (Q5_0 ORs in its fifth bits from the
/// regrouped bit words), then per token two broadcast activation groups and two
/// `vpdpbusd` into one i32 accumulator (one dependency chain per token, eight
/// deep; up to 8 tokens keep the two issue ports busy and fit the 32 registers, and
/// the weight unpacking is shared by twice as many tokens as at 4: SmolLM2 Q4_0
/// pp512 +5-7 % on Zen 5). Per block and token: subtract the offset sum (Q4_0,
/// Q5_0), convert, one FMA by d_w[16] × d_y (Q4_1: a second by m_w[16] × s_y).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn packed_pair<const T: u8, const K: usize>(
    nb: usize,
    wa: *const u8,
    wb: *const u8,
    a: *const u8,
    stride: usize,
    sums: *const i32,
    sstride: usize,
    out: *mut f32,
) {
    // SAFETY: the caller guarantees the features, that `wa` and `wb` each hold nb
    // packed blocks of type T, `a` K activation rows of nb blocks at `stride`,
    // `sums` (Q4_0/Q5_0) K rows of nb values at `sstride`, and `out` 16 × K floats.
    unsafe {
        let (pb, qs_at, ab, yoff) = packed_shape(T);
        let tab = f16_table();
        let m0f = _mm512_set1_epi8(0x0F);
        let bit4 = _mm512_set1_epi8(0x10);
        let mut acc = [_mm512_setzero_ps(); K];
        let (mut pa, mut pbp, mut ap) = (wa, wb, a);
        for b in 0..nb {
            let mut p = [_mm512_setzero_si512(); K];
            let qh = if T == LQ5_0 {
                pair256(pa.add(16), pbp.add(16))
            } else {
                _mm512_setzero_si512()
            };
            for g in 0..4 {
                let wv = pair256(pa.add(qs_at + 32 * g), pbp.add(qs_at + 32 * g));
                let mut lo = _mm512_and_si512(wv, m0f);
                let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(wv), m0f);
                if T == LQ5_0 {
                    // Group g's fifth bits: bit 8i + g (low) and 8i + 4 + g (high).
                    let (l, h) = match g {
                        0 => (_mm512_slli_epi32::<4>(qh), qh),
                        1 => (_mm512_slli_epi32::<3>(qh), _mm512_srli_epi32::<1>(qh)),
                        2 => (_mm512_slli_epi32::<2>(qh), _mm512_srli_epi32::<2>(qh)),
                        _ => (_mm512_slli_epi32::<1>(qh), _mm512_srli_epi32::<3>(qh)),
                    };
                    lo = _mm512_or_si512(lo, _mm512_and_si512(l, bit4));
                    hi = _mm512_or_si512(hi, _mm512_and_si512(h, bit4));
                }
                for j in 0..K {
                    let y = ap.add(j * stride + yoff + 4 * g);
                    p[j] = _mm512_dpbusd_epi32(p[j], lo, _mm512_set1_epi32(ld32(y) as i32));
                    p[j] = _mm512_dpbusd_epi32(p[j], hi, _mm512_set1_epi32(ld32(y.add(16)) as i32));
                }
            }
            let dw = pair_ph(pa, pbp);
            for j in 0..K {
                let mut i = p[j];
                if T == LQ4_0 || T == LQ5_0 {
                    i = _mm512_sub_epi32(i, _mm512_set1_epi32(*sums.add(j * sstride + b)));
                }
                let yj = ap.add(j * stride);
                let d = _mm512_mul_ps(dw, _mm512_set1_ps(f16_lut(tab, yj)));
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), d, acc[j]);
                if T == LQ4_1 {
                    let mw = pair_ph(pa.add(16), pbp.add(16));
                    acc[j] = _mm512_fmadd_ps(mw, _mm512_set1_ps(f16_lut(tab, yj.add(2))), acc[j]);
                }
            }
            pa = pa.add(pb);
            pbp = pbp.add(pb);
            ap = ap.add(ab);
        }
        for (j, v) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(j * 16), *v);
        }
    }
}

/// Two packed Q4_K groups (`wa`, `wb`) × K (1..=4) tokens over `nb` super-blocks;
/// `out[j * 16 + r]`.
///
/// Per 64-element chunk c and 32-byte quant group: the low nibbles (sub-block 2c)
/// and high nibbles (2c + 1) of both groups, `vpdpbusd` against the broadcast
/// activation bytes into one i32 accumulator per sub-block and token; then the
/// sub-block sums times the rows' 6-bit scales (`vpmulld`) into the super-block's
/// dot. The mins meet the activation sub-block sums in pairs (`vpmaddwd`), as in
/// the AVX2 kernel. Per super-block and token: acc += dy · (d · Σ sc·P − dmin ·
/// Σ m·Y), the AVX2 kernel's two FMAs on the same integers, so the same bits.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn packed_pair_q4k<const K: usize>(
    nb: usize,
    wa: *const u8,
    wb: *const u8,
    a: *const u8,
    stride: usize,
    sums: *const i32,
    sstride: usize,
    out: *mut f32,
) {
    // SAFETY: the caller guarantees the features, that `wa` and `wb` each hold nb
    // packed Q4_K blocks, `a` K rows of nb Q8_K blocks at `stride`, `sums` K rows
    // of 4·nb values at `sstride`, and `out` 16 × K floats.
    unsafe {
        const PB: usize = 1184; // packed block: 8 rows × 148
        const AB: usize = 292; // Q8_K block
        let m0f = _mm512_set1_epi8(0x0F);
        let mut acc = [_mm512_setzero_ps(); K];
        let (mut pa, mut pbp, mut ap) = (wa, wb, a);
        // 8 bytes at `x` and 8 at `y` → 16 u32 lanes.
        let bytes16 = |x: *const u8, y: *const u8| {
            let v = _mm_unpacklo_epi64(_mm_loadl_epi64(x.cast()), _mm_loadl_epi64(y.cast()));
            _mm512_cvtepu8_epi32(v)
        };
        for b in 0..nb {
            let mut dots = [_mm512_setzero_si512(); K];
            for c in 0..4 {
                let mut plo = [_mm512_setzero_si512(); K];
                let mut phi = [_mm512_setzero_si512(); K];
                for j in 0..8 {
                    let off = 160 + 256 * c + 32 * j;
                    let wv = pair256(pa.add(off), pbp.add(off));
                    let lo = _mm512_and_si512(wv, m0f);
                    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(wv), m0f);
                    for t in 0..K {
                        let y = ap.add(t * stride + 4 + 64 * c + 4 * j);
                        plo[t] = _mm512_dpbusd_epi32(plo[t], lo, _mm512_set1_epi32(ld32(y) as i32));
                        phi[t] = _mm512_dpbusd_epi32(
                            phi[t],
                            hi,
                            _mm512_set1_epi32(ld32(y.add(32)) as i32),
                        );
                    }
                }
                let s0 = 32 + 8 * (2 * c);
                let slo = bytes16(pa.add(s0), pbp.add(s0));
                let shi = bytes16(pa.add(s0 + 8), pbp.add(s0 + 8));
                for t in 0..K {
                    let s = _mm512_add_epi32(
                        _mm512_mullo_epi32(plo[t], slo),
                        _mm512_mullo_epi32(phi[t], shi),
                    );
                    dots[t] = _mm512_add_epi32(dots[t], s);
                }
            }
            let mins: [__m512i; 4] = std::array::from_fn(|q| {
                let lo = _mm256_castsi128_si256(_mm_loadu_si128(pa.add(96 + 16 * q).cast()));
                let v =
                    _mm256_inserti128_si256::<1>(lo, _mm_loadu_si128(pbp.add(96 + 16 * q).cast()));
                _mm512_cvtepu8_epi16(v)
            });
            let dw = pair_ph(pa, pbp);
            let dmw = pair_ph(pa.add(16), pbp.add(16));
            for t in 0..K {
                let mut ms = _mm512_setzero_si512();
                for (q, mq) in mins.iter().enumerate() {
                    let ypair = _mm512_set1_epi32(*sums.add(t * sstride + 4 * b + q));
                    ms = _mm512_add_epi32(ms, _mm512_madd_epi16(*mq, ypair));
                }
                let dy = _mm512_set1_ps(f32::from_bits(ld32(ap.add(t * stride))));
                acc[t] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots[t]), _mm512_mul_ps(dw, dy), acc[t]);
                acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms), _mm512_mul_ps(dmw, dy), acc[t]);
            }
            pa = pa.add(PB);
            pbp = pbp.add(PB);
            ap = ap.add(AB);
        }
        for (t, v) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(t * 16), *v);
        }
    }
}

/// Two packed Q6_K groups (`wa`, `wb`) × K (1..=4) tokens over `nb` super-blocks;
/// `out[j * 16 + r]`. `sums` is not read (the activation blocks carry their bsums).
///
/// The AVX2 kernel's unpacking (`avx2::packed_q6k`: nibble OR two high bits, both
/// groups in one register), then per sub-block and token one i32 accumulator fed
/// by `vpdpbusd` (16 × 63 × 127 at most, no i16 stage), times the rows' i8 scales
/// (`vpmulld`), and the same −32 · Σ sc·bsum offset by `vpmaddwd`: the same integers
/// as the AVX2 kernel, so the same bits.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn packed_pair_q6k<const K: usize>(
    nb: usize,
    wa: *const u8,
    wb: *const u8,
    a: *const u8,
    stride: usize,
    _sums: *const i32,
    _sstride: usize,
    out: *mut f32,
) {
    // SAFETY: the caller guarantees the features, that `wa` and `wb` each hold nb
    // packed Q6_K blocks, `a` K rows of nb Q8_K blocks at `stride`, and `out`
    // 16 × K floats.
    unsafe {
        const PB: usize = 1680; // packed block: 8 rows × 210
        const AB: usize = 292; // Q8_K block
        let m0f = _mm512_set1_epi8(0x0F);
        let m30 = _mm512_set1_epi8(0x30);
        let mut acc = [_mm512_setzero_ps(); K];
        let (mut pa, mut pbp, mut ap) = (wa, wb, a);
        // 8 bytes at `x` and 8 at `y` (the two groups' rows) as one 128-bit value.
        let two8 = |x: *const u8, y: *const u8| {
            _mm_unpacklo_epi64(_mm_loadl_epi64(x.cast()), _mm_loadl_epi64(y.cast()))
        };
        for _ in 0..nb {
            let mut dots = [_mm512_setzero_si512(); K];
            for h in 0..2 {
                for sp in 0..4 {
                    let mut plo = [_mm512_setzero_si512(); K];
                    let mut phi = [_mm512_setzero_si512(); K];
                    for g in 0..4 {
                        let j = 4 * sp + g;
                        let (ql, qh) = (144 + 512 * h + 32 * j, 1168 + 256 * h + 32 * (j % 8));
                        let wv = pair256(pa.add(ql), pbp.add(ql));
                        let hb = pair256(pa.add(qh), pbp.add(qh));
                        let (bl, bh) = if j < 8 {
                            (_mm512_slli_epi16::<4>(hb), hb)
                        } else {
                            (_mm512_slli_epi16::<2>(hb), _mm512_srli_epi16::<2>(hb))
                        };
                        let lo =
                            _mm512_or_si512(_mm512_and_si512(wv, m0f), _mm512_and_si512(bl, m30));
                        let hi = _mm512_or_si512(
                            _mm512_and_si512(_mm512_srli_epi16::<4>(wv), m0f),
                            _mm512_and_si512(bh, m30),
                        );
                        for t in 0..K {
                            let y = ap.add(t * stride + 4 + 128 * h + 4 * j);
                            plo[t] =
                                _mm512_dpbusd_epi32(plo[t], lo, _mm512_set1_epi32(ld32(y) as i32));
                            phi[t] = _mm512_dpbusd_epi32(
                                phi[t],
                                hi,
                                _mm512_set1_epi32(ld32(y.add(64)) as i32),
                            );
                        }
                    }
                    let (s0, s1) = (16 + 8 * (8 * h + sp), 16 + 8 * (8 * h + 4 + sp));
                    let slo = _mm512_cvtepi8_epi32(two8(pa.add(s0), pbp.add(s0)));
                    let shi = _mm512_cvtepi8_epi32(two8(pa.add(s1), pbp.add(s1)));
                    for t in 0..K {
                        let s = _mm512_add_epi32(
                            _mm512_mullo_epi32(plo[t], slo),
                            _mm512_mullo_epi32(phi[t], shi),
                        );
                        dots[t] = _mm512_add_epi32(dots[t], s);
                    }
                }
            }
            // Scale pairs (sc_2q, sc_2q+1) of each of the 16 rows as i16 in its lane.
            let pairs: [__m512i; 8] = std::array::from_fn(|q| {
                let e = two8(pa.add(16 + 16 * q), pbp.add(16 + 16 * q));
                let o = two8(pa.add(24 + 16 * q), pbp.add(24 + 16 * q));
                let lo = _mm_unpacklo_epi8(e, o); // rows 0..8
                let hi = _mm_unpackhi_epi8(e, o); // rows 8..16
                _mm512_cvtepi8_epi16(_mm256_set_m128i(hi, lo))
            });
            let dw = pair_ph(pa, pbp);
            for t in 0..K {
                let at = ap.add(t * stride);
                let mut off = _mm512_setzero_si512();
                for (q, pq) in pairs.iter().enumerate() {
                    let bs = _mm512_set1_epi32(ld32(at.add(260 + 4 * q)) as i32);
                    off = _mm512_add_epi32(off, _mm512_madd_epi16(*pq, bs));
                }
                let i = _mm512_sub_epi32(dots[t], _mm512_slli_epi32::<5>(off));
                let dy = _mm512_set1_ps(f32::from_bits(ld32(at)));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(dw, dy), acc[t]);
            }
            pa = pa.add(PB);
            pbp = pbp.add(PB);
            ap = ap.add(AB);
        }
        for (t, v) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(t * 16), *v);
        }
    }
}

/// Two packed groups × k tokens (see [`packed_pair`], [`packed_pair_q4k`]).
///
/// # Safety
/// [`detect`] must have returned true; `t` must satisfy [`handles`]; `wa` and `wb`
/// must each hold `nb` packed blocks of type `t`, `a` k activation rows of nb
/// blocks at `stride`, `sums` (Q4_0, Q5_0, Q4_K) k rows of `act_sums_len` i32 at
/// `sstride`, `out` 16 × k floats; 1 <= k <= 8 (4 for Q4_K and Q6_K).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dot_pair(
    t: DType,
    nb: usize,
    wa: *const u8,
    wb: *const u8,
    a: *const u8,
    stride: usize,
    sums: *const i32,
    sstride: usize,
    k: usize,
    out: *mut f32,
) {
    macro_rules! by_k {
        ($f:ident $(, $t:expr)?) => {
            match k {
                1 => $f::<$({ $t },)? 1>(nb, wa, wb, a, stride, sums, sstride, out),
                2 => $f::<$({ $t },)? 2>(nb, wa, wb, a, stride, sums, sstride, out),
                3 => $f::<$({ $t },)? 3>(nb, wa, wb, a, stride, sums, sstride, out),
                _ => $f::<$({ $t },)? 4>(nb, wa, wb, a, stride, sums, sstride, out),
            }
        };
        (legacy $t:expr) => {
            match k {
                1 => packed_pair::<{ $t }, 1>(nb, wa, wb, a, stride, sums, sstride, out),
                2 => packed_pair::<{ $t }, 2>(nb, wa, wb, a, stride, sums, sstride, out),
                3 => packed_pair::<{ $t }, 3>(nb, wa, wb, a, stride, sums, sstride, out),
                4 => packed_pair::<{ $t }, 4>(nb, wa, wb, a, stride, sums, sstride, out),
                5 => packed_pair::<{ $t }, 5>(nb, wa, wb, a, stride, sums, sstride, out),
                6 => packed_pair::<{ $t }, 6>(nb, wa, wb, a, stride, sums, sstride, out),
                7 => packed_pair::<{ $t }, 7>(nb, wa, wb, a, stride, sums, sstride, out),
                _ => packed_pair::<{ $t }, 8>(nb, wa, wb, a, stride, sums, sstride, out),
            }
        };
    }
    // SAFETY: this function's contract is the kernels'.
    unsafe {
        match t {
            DType::Q4_K => by_k!(packed_pair_q4k),
            DType::Q6_K => by_k!(packed_pair_q6k),
            DType::Q4_0 => by_k!(legacy LQ4_0),
            DType::Q5_0 => by_k!(legacy LQ5_0),
            _ => by_k!(legacy LQ4_1),
        }
    }
}
