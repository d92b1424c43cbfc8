//! AVX2 + FMA + F16C kernels (x86-64). Every entry point is `unsafe` and
//! `#[target_feature]`: call only after detecting the features and checking the
//! buffer lengths (lib.rs does both).
//!
//! Shape of every dot kernel: one weight row against K = 1..=4 activation rows.
//! Each weight block is loaded and unpacked once into registers, then multiplied
//! against the K activation blocks:
//! - 4-bit / 5-bit / 6-bit quants are unsigned bytes, so `vpmaddubsw(q, a)` works
//!   directly with the signed activation bytes; the offsets (−8 for Q4_0, −16 for
//!   Q5_0, −32 for Q6_K, the min of Q4_1/Q5_1/Q4_K/Q5_K) come back through the
//!   activation sums (Q4_0 and Q5_0 at K > 1 use the sign trick instead:
//!   |w| × sign(a, w); Q5_0 at K = 1 subtracts 16 × the activations whose fifth
//!   bit is clear). The fifth bits of Q5_0/Q5_1 are spread to byte masks with one
//!   `vpshufb` + AND + `vpcmpeqb`.
//! - `vpmaddwd` widens to i32 (by ones, or by the sub-block scales for K-quants).
//! - one FMA per block (or super-block) folds d_w·d_a into an f32 accumulator.
//!
//! For K = 1 the loop runs over pairs of blocks with two accumulators, so the FMA
//! latency chain does not limit the streaming rate.

use alc_core::DType;
use std::arch::x86_64::*;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

#[inline(always)]
unsafe fn ld16(p: *const u8) -> u16 {
    unsafe { std::ptr::read_unaligned(p.cast::<u16>()) }
}

#[inline(always)]
pub(crate) unsafe fn ld32(p: *const u8) -> u32 {
    unsafe { std::ptr::read_unaligned(p.cast::<u32>()) }
}

/// Four IEEE halves at `p..p+8` → f32 lanes (F16C, `vcvtph2ps xmm, m64`).
///
/// Written as inline asm on purpose: with the intrinsics, LLVM narrows the load to
/// the 16 bits it needs and emits `vpinsrw` merging into whatever register is
/// free, often a live accumulator; that false dependency serialised the block
/// loop (Q4_0 ran at half speed).
#[inline(always)]
unsafe fn f16x4_at(p: *const u8) -> __m128 {
    let r: __m128;
    unsafe {
        std::arch::asm!(
            "vcvtph2ps {r}, qword ptr [{p}]",
            p = in(reg) p,
            r = out(xmm_reg) r,
            options(pure, readonly, nostack, preserves_flags)
        );
    }
    r
}

/// One IEEE half at `p` → f32; reads `p..p+8`.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    unsafe { _mm_cvtss_f32(f16x4_at(p)) }
}

/// One IEEE half at `p` → f32; reads `p−6..p+2` (for a field at a block's end).
#[inline(always)]
unsafe fn f16_at_end(p: *const u8) -> f32 {
    unsafe { _mm_cvtss_f32(_mm_permute_ps::<0b11_11_11_11>(f16x4_at(p.sub(6)))) }
}

static F16_TABLE: std::sync::OnceLock<Box<[f32]>> = std::sync::OnceLock::new();

/// f16 → f32 lookup table (65536 entries, 256 KiB; only the few scales in use stay
/// hot in L1). Per block and activation row a table load plus a broadcast load
/// costs no ALU work, where `vcvtph2ps` + `vmulss` + `vbroadcastss` cost three
/// uops on the ports the integer dot product needs.
#[inline(always)]
pub(crate) fn f16_table() -> *const f32 {
    F16_TABLE
        .get_or_init(|| {
            (0..=u16::MAX)
                .map(|h| half::f16::from_bits(h).to_f32())
                .collect()
        })
        .as_ptr()
}

/// The half at `p` through the table.
#[inline(always)]
pub(crate) unsafe fn f16_lut(tab: *const f32, p: *const u8) -> f32 {
    unsafe { *tab.add(ld16(p) as usize) }
}

#[inline(always)]
unsafe fn f32_at(p: *const u8) -> f32 {
    unsafe { std::ptr::read_unaligned(p.cast::<f32>()) }
}

#[inline(always)]
unsafe fn load256(p: *const u8) -> __m256i {
    unsafe { _mm256_loadu_si256(p.cast::<__m256i>()) }
}

#[inline(always)]
unsafe fn load128(p: *const u8) -> __m128i {
    unsafe { _mm_loadu_si128(p.cast::<__m128i>()) }
}

#[inline(always)]
unsafe fn hsum_ps(v: __m256) -> f32 {
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

#[inline(always)]
unsafe fn hsum_epi32(v: __m256i) -> i32 {
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }
}

/// 16 packed nibbles → 32 bytes: low nibbles in bytes 0..16, high in 16..32.
/// `vbroadcasti128` is a pure load; one variable 64-bit shift (0 in the low lane, 4
/// in the high lane) and a mask finish it, with no lane-crossing insert.
#[inline(always)]
unsafe fn nibbles32(p: *const u8) -> __m256i {
    unsafe {
        let both = _mm256_broadcastsi128_si256(load128(p));
        let shifted = _mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4));
        _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F))
    }
}

/// Store K accumulator results; for K == 1 the two interleaved accumulators are
/// summed.
#[inline(always)]
unsafe fn store_acc<const K: usize>(acc: &[__m256; 4], out: *mut f32) {
    unsafe {
        if K == 1 {
            *out = hsum_ps(_mm256_add_ps(acc[0], acc[1]));
        } else {
            for (j, a) in acc.iter().enumerate().take(K) {
                *out.add(j) = hsum_ps(*a);
            }
        }
    }
}

/// Software prefetch distance (bytes ahead in the weight row) for K = 1. Measured
/// on the 2-core EPYC (Zen 3) over a 64 MiB matrix: +10–30 % for Q8_0 and the
/// K-quants against the hardware prefetcher alone, neutral for Q4_0/Q4_1; 2 KiB
/// beat 1 KiB. On Zen 5, once each thread streams one contiguous lane of row tiles
/// (`alc_kernels::pool`), 4 KiB beat 2 KiB: tg64 SmolLM2 Q4_0 +7 %, Gemma-3 +8 %,
/// Qwen2.5 +3 % (8 KiB: the same as 4).
const PF_DIST: usize = 4096;

/// Runs `$blk::<K>(w_block, a_block, stride, &mut acc, slot)` over `$nb` blocks:
/// for K = 1 two blocks per step into accumulator slots 0 and 1. The block
/// pointers are stepped (ending at most one past the row), not recomputed as
/// `base + b·size`: with 22/34-byte blocks LLVM spent a chain of `lea`s per block
/// on the multiplication (≈ 8 % at K = 1 for Q4_0, 15 % for Q5_0 with the rows in
/// L1/L2).
macro_rules! drive_blocks {
    ($K:ident, $blk:ident, $nb:expr, $wb:expr, $ab:expr, $w:expr, $a:expr, $stride:expr, $out:expr) => {{
        let tab = f16_table();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut wp = $w;
        let mut ap = $a;
        let mut left = $nb;
        if $K == 1 {
            let mut pf = PF_DIST;
            let mut off = 0usize;
            while left >= 2 {
                {
                    off += 2 * $wb;
                    let end = off + PF_DIST;
                    while pf < end {
                        _mm_prefetch::<_MM_HINT_T0>($w.wrapping_add(pf).cast::<i8>());
                        pf += 64;
                    }
                }
                $blk::<$K>(tab, wp, ap, $stride, &mut acc, 0);
                $blk::<$K>(tab, wp.add($wb), ap.add($ab), $stride, &mut acc, 1);
                wp = wp.add(2 * $wb);
                ap = ap.add(2 * $ab);
                left -= 2;
            }
        }
        while left > 0 {
            $blk::<$K>(tab, wp, ap, $stride, &mut acc, 0);
            wp = wp.add($wb);
            ap = ap.add($ab);
            left -= 1;
        }
        store_acc::<$K>(&acc, $out);
    }};
}

// ---------------------------------------------------------------------------
// Q4_0 × Q8_0
// ---------------------------------------------------------------------------

#[inline(always)]
unsafe fn blk_q4_0<const K: usize>(
    tab: *const f32,
    w: *const u8,
    a: *const u8,
    stride: usize,
    acc: &mut [__m256; 4],
    slot: usize,
) {
    unsafe { blk_q4::<K, false>(tab, w, a, stride, acc, slot) }
}

/// Q4BF16_1 (alc's type): Q4_0 with a bf16 scale.
#[inline(always)]
unsafe fn blk_q4bf16_1<const K: usize>(
    tab: *const f32,
    w: *const u8,
    a: *const u8,
    stride: usize,
    acc: &mut [__m256; 4],
    slot: usize,
) {
    unsafe { blk_q4::<K, true>(tab, w, a, stride, acc, slot) }
}

/// A Q4_0-layout block; `BF16` selects a bf16 scale (Q4BF16_1) over f16.
#[inline(always)]
unsafe fn blk_q4<const K: usize, const BF16: bool>(
    tab: *const f32,
    w: *const u8,
    a: *const u8,
    stride: usize,
    acc: &mut [__m256; 4],
    slot: usize,
) {
    unsafe {
        let dw = _mm256_set1_ps(if BF16 {
            f32::from_bits(u32::from(ld16(w)) << 16)
        } else {
            f16_lut(tab, w)
        });
        let qu = nibbles32(w.add(2));
        let eight = _mm256_set1_epi8(8);
        let q = _mm256_sub_epi8(qu, eight);
        let aq = _mm256_sign_epi8(q, q);
        let ones = _mm256_set1_epi16(1);
        for j in 0..K {
            let ab = a.add(j * stride);
            let y = load256(ab.add(2));
            let p16 = if K == 1 {
                // Σq·y − 8·Σy: two vpmaddubsw and a subtract instead of the
                // weight-side offset and two vpsignb (≈5 % faster at K = 1; for
                // K > 1 the sign trick wins because |q − 8| is shared by the rows).
                _mm256_sub_epi16(_mm256_maddubs_epi16(qu, y), _mm256_maddubs_epi16(eight, y))
            } else {
                _mm256_maddubs_epi16(aq, _mm256_sign_epi8(y, q))
            };
            let p = _mm256_madd_epi16(p16, ones);
            // (Σ·d_w)·d_a: d_a is a broadcast load; writing d_w·d_a as one scalar
            // product makes LLVM emit vmulss + vbroadcastss, two more uops.
            let t = _mm256_mul_ps(_mm256_cvtepi32_ps(p), dw);
            acc[j + slot] = _mm256_fmadd_ps(t, _mm256_set1_ps(f16_lut(tab, ab)), acc[j + slot]);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_0<const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe { drive_blocks!(K, blk_q4_0, nb, 18, 34, w, a, stride, out) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4bf16_1<const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe { drive_blocks!(K, blk_q4bf16_1, nb, 18, 34, w, a, stride, out) }
}

// ---------------------------------------------------------------------------
// Q8_0 × Q8_0
// ---------------------------------------------------------------------------

#[inline(always)]
unsafe fn blk_q8_0<const K: usize>(
    tab: *const f32,
    w: *const u8,
    a: *const u8,
    stride: usize,
    acc: &mut [__m256; 4],
    slot: usize,
) {
    unsafe {
        let dw = _mm256_set1_ps(f16_lut(tab, w));
        let q = load256(w.add(2));
        let aq = _mm256_sign_epi8(q, q);
        let ones = _mm256_set1_epi16(1);
        for j in 0..K {
            let ab = a.add(j * stride);
            let y = load256(ab.add(2));
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(y, q)), ones);
            // (Σ·d_w)·d_a: d_a is a broadcast load; writing d_w·d_a as one scalar
            // product makes LLVM emit vmulss + vbroadcastss, two more uops.
            let t = _mm256_mul_ps(_mm256_cvtepi32_ps(p), dw);
            acc[j + slot] = _mm256_fmadd_ps(t, _mm256_set1_ps(f16_lut(tab, ab)), acc[j + slot]);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q8_0<const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe { drive_blocks!(K, blk_q8_0, nb, 34, 34, w, a, stride, out) }
}

// ---------------------------------------------------------------------------
// Q4_1 × Q8_1
// ---------------------------------------------------------------------------

/// m_w·s_a is folded into the same accumulator: the vector [m_w, 0, …] times the
/// broadcast s_a adds the product to lane 0 only.
#[inline(always)]
unsafe fn blk_q4_1<const K: usize>(
    tab: *const f32,
    w: *const u8,
    a: *const u8,
    stride: usize,
    acc: &mut [__m256; 4],
    slot: usize,
) {
    unsafe {
        let dw = _mm256_set1_ps(f16_lut(tab, w));
        let mw = _mm256_zextps128_ps256(_mm_set_ss(f16_lut(tab, w.add(2))));
        let q = nibbles32(w.add(4));
        let ones = _mm256_set1_epi16(1);
        for j in 0..K {
            let ab = a.add(j * stride);
            let y = load256(ab.add(4));
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), ones);
            let t = _mm256_fmadd_ps(mw, _mm256_set1_ps(f16_lut(tab, ab.add(2))), acc[j + slot]);
            let v = _mm256_mul_ps(_mm256_cvtepi32_ps(p), dw);
            acc[j + slot] = _mm256_fmadd_ps(v, _mm256_set1_ps(f16_lut(tab, ab)), t);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_1<const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe { drive_blocks!(K, blk_q4_1, nb, 20, 36, w, a, stride, out) }
}

// ---------------------------------------------------------------------------
// Q5_0 × Q8_0, Q5_1 × Q8_1
// ---------------------------------------------------------------------------

/// The 32 fifth bits of a Q5_0 / Q5_1 block (`qh` at `p`, a little-endian u32, bit
/// i = element i) as 32 byte masks: 0xFF where the bit is **clear**, 0 where set.
///
/// `vpbroadcastd` from memory (a pure load), one `vpshufb` that gives byte i a
/// copy of qh byte i/8 (lane 0: qh bytes 0, 1; lane 1: bytes 2, 3), an AND with
/// [1, 2, 4, …, 128] that keeps bit i % 8, and `vpcmpeqb` against zero.
#[inline(always)]
unsafe fn q5_clear_mask(p: *const u8) -> __m256i {
    unsafe {
        let v = _mm256_set1_epi32(ld32(p) as i32);
        // Byte indices within each 128-bit lane; both lanes hold qh in bytes 0..4.
        let spread = _mm256_setr_epi64x(
            0,
            0x0101_0101_0101_0101,
            0x0202_0202_0202_0202,
            0x0303_0303_0303_0303,
        );
        let v = _mm256_shuffle_epi8(v, spread);
        let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        _mm256_cmpeq_epi8(_mm256_and_si256(v, bits), _mm256_setzero_si256())
    }
}

/// Q5_0, value (q − 16)·d with q = nibble + 16·bit, i.e. nibble − 16·[bit clear].
/// K = 1: Σ nibble·y − 16·Σ_{bit clear} y, two `vpmaddubsw` (the nibbles are
/// unsigned; the second one multiplies the masked activations by the constant
/// 16); measured ≈ 5 % faster than the sign trick and than (nibble | 16·bit)·y −
/// 16·Σy. K > 1: the signed quants q − 16 = nibble | (0xF0 where the bit is clear)
/// are built once and the sign trick |q − 16| × sign(y, q − 16) shares |q − 16|
/// between the rows (one `vpsignb` + one `vpmaddubsw` per row).
#[inline(always)]
unsafe fn blk_q5_0<const K: usize>(
    tab: *const f32,
    w: *const u8,
    a: *const u8,
    stride: usize,
    acc: &mut [__m256; 4],
    slot: usize,
) {
    unsafe {
        let dw = _mm256_set1_ps(f16_lut(tab, w));
        let clear = q5_clear_mask(w.add(2));
        let nib = nibbles32(w.add(6));
        let ones = _mm256_set1_epi16(1);
        let sixteen = _mm256_set1_epi8(16);
        let qs = _mm256_or_si256(nib, _mm256_and_si256(clear, _mm256_set1_epi8(-16)));
        let aq = _mm256_sign_epi8(qs, qs);
        for j in 0..K {
            let ab = a.add(j * stride);
            let y = load256(ab.add(2));
            let p16 = if K == 1 {
                _mm256_sub_epi16(
                    _mm256_maddubs_epi16(nib, y),
                    _mm256_maddubs_epi16(sixteen, _mm256_and_si256(clear, y)),
                )
            } else {
                _mm256_maddubs_epi16(aq, _mm256_sign_epi8(y, qs))
            };
            let p = _mm256_madd_epi16(p16, ones);
            let t = _mm256_mul_ps(_mm256_cvtepi32_ps(p), dw);
            acc[j + slot] = _mm256_fmadd_ps(t, _mm256_set1_ps(f16_lut(tab, ab)), acc[j + slot]);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q5_0<const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe { drive_blocks!(K, blk_q5_0, nb, 22, 34, w, a, stride, out) }
}

/// Q5_1: unsigned quants nibble | 16·bit straight into `vpmaddubsw`; m_w·s_a goes
/// into lane 0 of the accumulator as in Q4_1.
#[inline(always)]
unsafe fn blk_q5_1<const K: usize>(
    tab: *const f32,
    w: *const u8,
    a: *const u8,
    stride: usize,
    acc: &mut [__m256; 4],
    slot: usize,
) {
    unsafe {
        let dw = _mm256_set1_ps(f16_lut(tab, w));
        let mw = _mm256_zextps128_ps256(_mm_set_ss(f16_lut(tab, w.add(2))));
        let clear = q5_clear_mask(w.add(4));
        let q = _mm256_or_si256(
            nibbles32(w.add(8)),
            _mm256_andnot_si256(clear, _mm256_set1_epi8(16)),
        );
        let ones = _mm256_set1_epi16(1);
        for j in 0..K {
            let ab = a.add(j * stride);
            let y = load256(ab.add(4));
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), ones);
            let t = _mm256_fmadd_ps(mw, _mm256_set1_ps(f16_lut(tab, ab.add(2))), acc[j + slot]);
            let v = _mm256_mul_ps(_mm256_cvtepi32_ps(p), dw);
            acc[j + slot] = _mm256_fmadd_ps(v, _mm256_set1_ps(f16_lut(tab, ab)), t);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q5_1<const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe { drive_blocks!(K, blk_q5_1, nb, 24, 36, w, a, stride, out) }
}

// ---------------------------------------------------------------------------
// K-quants × Q8_K
// ---------------------------------------------------------------------------

/// Unpack Q4_K/Q5_K's 12 scale bytes: (8 scales, 8 mins) as u64 of 8 bytes each.
#[inline(always)]
unsafe fn k_scales(p: *const u8) -> (u64, u64) {
    unsafe {
        let u0 = ld32(p);
        let u1 = ld32(p.add(4));
        let u2 = ld32(p.add(8));
        let sc_lo = u0 & 0x3f3f_3f3f;
        let m_lo = u1 & 0x3f3f_3f3f;
        let sc_hi = (u2 & 0x0f0f_0f0f) | (((u0 >> 6) & 0x0303_0303) << 4);
        let m_hi = ((u2 >> 4) & 0x0f0f_0f0f) | (((u1 >> 6) & 0x0303_0303) << 4);
        (
            sc_lo as u64 | (sc_hi as u64) << 32,
            m_lo as u64 | (m_hi as u64) << 32,
        )
    }
}

/// Shuffle masks that broadcast i16 element j of a 128-bit vector (duplicated in
/// both lanes) to all 16 i16 slots.
const fn bcast16_masks() -> [[u8; 32]; 8] {
    let mut m = [[0u8; 32]; 8];
    let mut j = 0;
    while j < 8 {
        let mut t = 0;
        while t < 16 {
            m[j][2 * t] = (2 * j) as u8;
            m[j][2 * t + 1] = (2 * j + 1) as u8;
            t += 1;
        }
        j += 1;
    }
    m
}
static BCAST16: [[u8; 32]; 8] = bcast16_masks();

/// Q6_K scale shuffles: mask p puts scale byte 2p into the high byte of each i16
/// of the low lane, and 2p+1 in the high lane (low bytes zero; an arithmetic
/// shift by 8 then sign-extends).
const fn q6_scale_masks() -> [[u8; 32]; 8] {
    let mut m = [[0u8; 32]; 8];
    let mut p = 0;
    while p < 8 {
        let mut t = 0;
        while t < 8 {
            m[p][2 * t] = 0x80;
            m[p][2 * t + 1] = (2 * p) as u8;
            m[p][16 + 2 * t] = 0x80;
            m[p][16 + 2 * t + 1] = (2 * p + 1) as u8;
            t += 1;
        }
        p += 1;
    }
    m
}
static Q6_SCALES: [[u8; 32]; 8] = q6_scale_masks();

/// High bit of Q5_K for chunk c, half h (bit 2c+h of each qh byte) → 0x10.
#[inline(always)]
unsafe fn q5_hbit(hb: __m256i, bit: usize) -> __m256i {
    unsafe {
        let v = match bit {
            0 => _mm256_slli_epi16(hb, 4),
            1 => _mm256_slli_epi16(hb, 3),
            2 => _mm256_slli_epi16(hb, 2),
            3 => _mm256_slli_epi16(hb, 1),
            4 => hb,
            5 => _mm256_srli_epi16(hb, 1),
            6 => _mm256_srli_epi16(hb, 2),
            _ => _mm256_srli_epi16(hb, 3),
        };
        _mm256_and_si256(v, _mm256_set1_epi8(0x10))
    }
}

/// Q4_K (`QH = false`) and Q5_K (`QH = true`) super-block.
#[inline(always)]
unsafe fn blk_qk<const K: usize, const QH: bool>(
    _tab: *const f32,
    w: *const u8,
    a: *const u8,
    stride: usize,
    acc: &mut [__m256; 4],
    slot: usize,
) {
    unsafe {
        let d = f16_at(w);
        let dmin = f16_at(w.add(2));
        let (sc, mn) = k_scales(w.add(4));
        let qs = if QH { w.add(48) } else { w.add(16) };
        let hb = if QH {
            load256(w.add(16))
        } else {
            _mm256_setzero_si256()
        };
        // Scales as i16 in both lanes, for the per-sub-block broadcasts.
        let sc16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64));
        let sc16 = _mm256_broadcastsi128_si256(sc16);
        // Mins duplicated pairwise: [m0 m0 m1 m1 … m7 m7] against the 16 bsums.
        let m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mn as i64));
        let mins = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
        let m4 = _mm256_set1_epi8(0x0F);

        let mut isum = [_mm256_setzero_si256(); K];
        for c in 0..4 {
            let raw = load256(qs.add(32 * c));
            let mut lo = _mm256_and_si256(raw, m4);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if QH {
                lo = _mm256_or_si256(lo, q5_hbit(hb, 2 * c));
                hi = _mm256_or_si256(hi, q5_hbit(hb, 2 * c + 1));
            }
            let s_lo = _mm256_shuffle_epi8(sc16, load256(BCAST16[2 * c].as_ptr()));
            let s_hi = _mm256_shuffle_epi8(sc16, load256(BCAST16[2 * c + 1].as_ptr()));
            for (j, is) in isum.iter_mut().enumerate() {
                let ab = a.add(j * stride + 4 + 64 * c);
                let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load256(ab)), s_lo);
                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load256(ab.add(32))), s_hi);
                *is = _mm256_add_epi32(*is, _mm256_add_epi32(p0, p1));
            }
        }
        for (j, is) in isum.iter().enumerate() {
            let ab = a.add(j * stride);
            let da = f32_at(ab);
            let msum = _mm256_madd_epi16(load256(ab.add(260)), mins);
            let t = _mm256_fmadd_ps(
                _mm256_set1_ps(d * da),
                _mm256_cvtepi32_ps(*is),
                acc[j + slot],
            );
            acc[j + slot] =
                _mm256_fnmadd_ps(_mm256_set1_ps(dmin * da), _mm256_cvtepi32_ps(msum), t);
        }
    }
}

#[inline(always)]
unsafe fn blk_q4_k<const K: usize>(
    tab: *const f32,
    w: *const u8,
    a: *const u8,
    stride: usize,
    acc: &mut [__m256; 4],
    slot: usize,
) {
    unsafe { blk_qk::<K, false>(tab, w, a, stride, acc, slot) }
}

#[inline(always)]
unsafe fn blk_q5_k<const K: usize>(
    tab: *const f32,
    w: *const u8,
    a: *const u8,
    stride: usize,
    acc: &mut [__m256; 4],
    slot: usize,
) {
    unsafe { blk_qk::<K, true>(tab, w, a, stride, acc, slot) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_k<const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe { drive_blocks!(K, blk_q4_k, nb, 144, 292, w, a, stride, out) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q5_k<const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe { drive_blocks!(K, blk_q5_k, nb, 176, 292, w, a, stride, out) }
}

#[inline(always)]
unsafe fn blk_q6_k<const K: usize>(
    _tab: *const f32,
    w: *const u8,
    a: *const u8,
    stride: usize,
    acc: &mut [__m256; 4],
    slot: usize,
) {
    unsafe {
        let d = f16_at_end(w.add(208));
        let sc8 = load128(w.add(192));
        let sc_b = _mm256_broadcastsi128_si256(sc8);
        let sc16 = _mm256_cvtepi8_epi16(sc8);
        let m4 = _mm256_set1_epi8(0x0F);
        let m30 = _mm256_set1_epi8(0x30);
        let mut isum = [_mm256_setzero_si256(); K];
        for h in 0..2 {
            let ql = w.add(64 * h);
            let qh = load256(w.add(128 + 32 * h));
            for i in 0..4 {
                let qlv = load256(ql.add(32 * (i & 1)));
                let low = if i < 2 {
                    _mm256_and_si256(qlv, m4)
                } else {
                    _mm256_and_si256(_mm256_srli_epi16(qlv, 4), m4)
                };
                let high = match i {
                    0 => _mm256_slli_epi16(qh, 4),
                    1 => _mm256_slli_epi16(qh, 2),
                    2 => qh,
                    _ => _mm256_srli_epi16(qh, 2),
                };
                let q = _mm256_or_si256(low, _mm256_and_si256(high, m30));
                let s = _mm256_srai_epi16(
                    _mm256_shuffle_epi8(sc_b, load256(Q6_SCALES[4 * h + i].as_ptr())),
                    8,
                );
                for (j, is) in isum.iter_mut().enumerate() {
                    let y = load256(a.add(j * stride + 4 + 128 * h + 32 * i));
                    *is = _mm256_add_epi32(*is, _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), s));
                }
            }
        }
        for (j, is) in isum.iter().enumerate() {
            let ab = a.add(j * stride);
            // Σ sc_g·32·bsum_g: the −32 offset of every quant.
            let corr = _mm256_slli_epi32(_mm256_madd_epi16(load256(ab.add(260)), sc16), 5);
            let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(*is, corr));
            acc[j + slot] = _mm256_fmadd_ps(_mm256_set1_ps(d * f32_at(ab)), v, acc[j + slot]);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q6_k<const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe { drive_blocks!(K, blk_q6_k, nb, 210, 292, w, a, stride, out) }
}

// ---------------------------------------------------------------------------
// F32 / F16 / BF16 × F32
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Plain {
    F32,
    F16,
    Bf16,
}

#[inline(always)]
unsafe fn load_w8(kind: Plain, w: *const u8, i: usize) -> __m256 {
    unsafe {
        match kind {
            Plain::F32 => _mm256_loadu_ps(w.add(4 * i).cast::<f32>()),
            Plain::F16 => _mm256_cvtph_ps(load128(w.add(2 * i))),
            Plain::Bf16 => _mm256_castsi256_ps(_mm256_slli_epi32(
                _mm256_cvtepu16_epi32(load128(w.add(2 * i))),
                16,
            )),
        }
    }
}

#[inline(always)]
unsafe fn load_w1(kind: Plain, w: *const u8, i: usize) -> f32 {
    unsafe {
        match kind {
            Plain::F32 => f32_at(w.add(4 * i)),
            Plain::F16 => half::f16::from_bits(ld16(w.add(2 * i))).to_f32(),
            Plain::Bf16 => f32::from_bits((ld16(w.add(2 * i)) as u32) << 16),
        }
    }
}

#[inline(always)]
unsafe fn dot_plain<const K: usize>(
    kind: Plain,
    n: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe {
        let mut acc0 = [_mm256_setzero_ps(); K];
        let mut acc1 = [_mm256_setzero_ps(); K];
        let mut i = 0;
        let esz = if matches!(kind, Plain::F32) { 4 } else { 2 };
        while i + 16 <= n {
            if K == 1 {
                _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(i * esz + PF_DIST).cast::<i8>());
            }
            let w0 = load_w8(kind, w, i);
            let w1 = load_w8(kind, w, i + 8);
            for j in 0..K {
                let ar = a.add(j * stride).cast::<f32>();
                acc0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(ar.add(i)), acc0[j]);
                acc1[j] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(ar.add(i + 8)), acc1[j]);
            }
            i += 16;
        }
        if i + 8 <= n {
            let w0 = load_w8(kind, w, i);
            for j in 0..K {
                let ar = a.add(j * stride).cast::<f32>();
                acc0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(ar.add(i)), acc0[j]);
            }
            i += 8;
        }
        for j in 0..K {
            let mut s = hsum_ps(_mm256_add_ps(acc0[j], acc1[j]));
            let ar = a.add(j * stride);
            for t in i..n {
                s += load_w1(kind, w, t) * f32_at(ar.add(4 * t));
            }
            *out.add(j) = s;
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f32<const K: usize>(
    n: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe { dot_plain::<K>(Plain::F32, n, w, a, stride, out) }
}

/// [`R`] weight rows × K tokens at a time for the plain float types (prompt-sized
/// batches): per 8 columns, R weight loads (converted) and K activation loads feed
/// R·K FMAs into R·K accumulators, where the one-row kernel needs K activation loads
/// for K FMAs and is load-bound. `out[r * K + j]`. The summation order differs from
/// [`dot_plain`] (one accumulator per row and token instead of two); rows left over
/// run [`dot_plain`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn plain_rows<const K: usize>(
    kind: Plain,
    n: usize,
    wp: *const u8,
    rb: usize,
    n_rows: usize,
    ap: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe {
        let mut r = 0;
        while r + R <= n_rows {
            let w: [*const u8; R] = std::array::from_fn(|q| wp.add((r + q) * rb));
            let mut acc = [[_mm256_setzero_ps(); K]; R];
            let mut i = 0;
            while i + 8 <= n {
                let x: [__m256; R] = std::array::from_fn(|q| load_w8(kind, w[q], i));
                for j in 0..K {
                    let a = _mm256_loadu_ps(ap.add(j * stride).cast::<f32>().add(i));
                    for q in 0..R {
                        acc[q][j] = _mm256_fmadd_ps(x[q], a, acc[q][j]);
                    }
                }
                i += 8;
            }
            for j in 0..K {
                let ar = ap.add(j * stride);
                for q in 0..R {
                    let mut s = hsum_ps(acc[q][j]);
                    for t in i..n {
                        s += load_w1(kind, w[q], t) * f32_at(ar.add(4 * t));
                    }
                    *out.add((r + q) * K + j) = s;
                }
            }
            r += R;
        }
        while r < n_rows {
            dot_plain::<K>(kind, n, wp.add(r * rb), ap, stride, out.add(r * K));
            r += 1;
        }
    }
}

/// Weight rows per pass of [`plain_rows`].
const R: usize = 3;

type PlainRowsFn = unsafe fn(Plain, usize, *const u8, usize, usize, *const u8, usize, *mut f32);

#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn plain_rows_avx2<const K: usize>(
    kind: Plain,
    n: usize,
    wp: *const u8,
    rb: usize,
    n_rows: usize,
    ap: *const u8,
    stride: usize,
    out: *mut f32,
) {
    // SAFETY: the caller's contract (features, buffers) is passed on.
    unsafe { plain_rows::<K>(kind, n, wp, rb, n_rows, ap, stride, out) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16<const K: usize>(
    n: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe { dot_plain::<K>(Plain::F16, n, w, a, stride, out) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_bf16<const K: usize>(
    n: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe { dot_plain::<K>(Plain::Bf16, n, w, a, stride, out) }
}

// ---------------------------------------------------------------------------
// dispatch
// ---------------------------------------------------------------------------

type DotFn = unsafe fn(usize, *const u8, *const u8, usize, *mut f32);

macro_rules! by_k {
    ($f:ident, $k:expr) => {
        match $k {
            1 => $f::<1> as DotFn,
            2 => $f::<2> as DotFn,
            3 => $f::<3> as DotFn,
            _ => $f::<4> as DotFn,
        }
    };
}

/// SIMD dot. `w`, `a` must cover the row / k activation rows (checked by caller).
///
/// # Safety
/// AVX2, FMA and F16C must be available; buffers must be long enough.
#[inline]
pub unsafe fn dot(
    w: DType,
    n: usize,
    wp: *const u8,
    ap: *const u8,
    stride: usize,
    k: usize,
    out: *mut f32,
) {
    let (f, len) = match w {
        DType::Q4_0 => (by_k!(dot_q4_0, k), n / 32),
        DType::Q4_1 => (by_k!(dot_q4_1, k), n / 32),
        DType::Q5_0 => (by_k!(dot_q5_0, k), n / 32),
        DType::Q5_1 => (by_k!(dot_q5_1, k), n / 32),
        DType::Q8_0 => (by_k!(dot_q8_0, k), n / 32),
        DType::Q4_K => (by_k!(dot_q4_k, k), n / 256),
        DType::Q5_K => (by_k!(dot_q5_k, k), n / 256),
        DType::Q6_K => (by_k!(dot_q6_k, k), n / 256),
        DType::F32 => (by_k!(dot_f32, k), n),
        DType::F16 => (by_k!(dot_f16, k), n),
        DType::BF16 => (by_k!(dot_bf16, k), n),
        DType::Q4BF16_1 => (by_k!(dot_q4bf16_1, k), n / 32),
        other => unreachable!("dot: {other} rejected by the caller"),
    };
    unsafe { f(len, wp, ap, stride, out) }
}

// ---------------------------------------------------------------------------
// dot_rows: R weight rows × K activation rows per block
// ---------------------------------------------------------------------------
//
// Legacy 32-element blocks. Per block the K activation vectors and their scales
// (one f32 vector [d_0 … d_3 | d_0 … d_3]) are loaded once for R = 4 weight rows;
// per weight row the block is unpacked once, multiplied against the K activation
// vectors (`vpmaddubsw`), and the K products are reduced into one i32 vector
// whose lanes are the tokens: [t_0 t_1 t_2 t_3 | t_0 t_1 t_2 t_3] (the two 128-bit
// halves are summed at the end). That costs three `vphaddw` + one `vpmaddwd` for
// K tokens where the per-row `dot` pays K × (`vpmaddwd` + convert + multiply +
// FMA): one convert, one multiply (d_w × the token scales) and one FMA remain per
// (row, block). Q4_0 / Q5_0 multiply the unsigned quants (nibble, nibble | 16·bit)
// and subtract offset·Σy per token, reduced the same way once per block for all
// the rows (one `vpsubd` per row, where the sign trick costs one `vpsignb` per
// row and token; measured +15 % for Q4_0 at K = 4). The i16 reduction cannot
// overflow: unsigned q ≤ 31 (or 16 for the offsets) times |y| ≤ 127, and the i16
// lanes after two `vphaddw` hold sums of 8 products, ≤ 31 496. Q8_0 keeps the sign
// trick, widens with `vpmaddwd` first and reduces with `vphaddd`. Measured on the
// 2-core EPYC: R = 2, 3, 5, 6, 8 no better than 4; blend-based reductions instead
// of `vphadd` slower; a software prefetch of the 4 rows neutral.

pub(crate) const LQ4_0: u8 = 0;
pub(crate) const LQ5_0: u8 = 1;
const LQ8_0: u8 = 2;
pub(crate) const LQ4_1: u8 = 3;
const LQ5_1: u8 = 4;

/// Four i16 product vectors → i32 [m0 m1 m2 m3 | m0 m1 m2 m3] (per-half sums).
#[inline(always)]
unsafe fn reduce4_i16(m: &[__m256i; 4]) -> __m256i {
    // SAFETY: register-only AVX2 ops; the caller enabled AVX2.
    unsafe {
        let h01 = _mm256_hadd_epi16(m[0], m[1]);
        let h23 = _mm256_hadd_epi16(m[2], m[3]);
        _mm256_madd_epi16(_mm256_hadd_epi16(h01, h23), _mm256_set1_epi16(1))
    }
}

/// Four i32 vectors → [p0 p1 p2 p3 | p0 p1 p2 p3] (per-half sums).
#[inline(always)]
unsafe fn reduce4_i32(p: &[__m256i; 4]) -> __m256i {
    // SAFETY: register-only AVX2 ops; the caller enabled AVX2.
    unsafe {
        let h01 = _mm256_hadd_epi32(p[0], p[1]);
        let h23 = _mm256_hadd_epi32(p[2], p[3]);
        _mm256_hadd_epi32(h01, h23)
    }
}

/// R rows (at stride `rb`) × K activation rows over `nb` blocks of legacy type
/// `T`; `out[r * K + j]`.
#[inline(always)]
unsafe fn rows_legacy<const T: u8, const R: usize, const K: usize>(
    nb: usize,
    w: *const u8,
    rb: usize,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    // SAFETY: the caller guarantees AVX2/FMA/F16C and that `w` covers R rows of
    // nb blocks at stride `rb` and `a` K activation rows of nb blocks at `stride`;
    // every load below stays inside one block of those, `out` holds R × K floats.
    unsafe {
        let (wb, ab, yoff) = match T {
            LQ4_0 => (18, 34, 2),
            LQ5_0 => (22, 34, 2),
            LQ8_0 => (34, 34, 2),
            LQ4_1 => (20, 36, 4),
            _ => (24, 36, 4),
        };
        let has_min = T == LQ4_1 || T == LQ5_1;
        let tab = f16_table();
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut wp = w;
        let mut ap = a;
        for _ in 0..nb {
            let mut y = [_mm256_setzero_si256(); 4];
            let mut ds = [0f32; 4];
            let mut ss = [0f32; 4];
            for j in 0..K {
                let p = ap.add(j * stride);
                y[j] = load256(p.add(yoff));
                ds[j] = f16_lut(tab, p);
                if has_min {
                    ss[j] = f16_lut(tab, p.add(2));
                }
            }
            let d4 = _mm_setr_ps(ds[0], ds[1], ds[2], ds[3]);
            let dav = _mm256_set_m128(d4, d4);
            // m_w·s_a once: in the low half only (the halves are summed).
            let sav = _mm256_zextps128_ps256(_mm_setr_ps(ss[0], ss[1], ss[2], ss[3]));
            // Q4_0 / Q5_0 with unsigned quants: the offset (8 or 16) × Σy of every
            // token, reduced as the products are, subtracted once per row.
            let corr = if T == LQ4_0 || T == LQ5_0 {
                let off = _mm256_set1_epi8(if T == LQ4_0 { 8 } else { 16 });
                let mut c = [_mm256_setzero_si256(); 4];
                for j in 0..K {
                    c[j] = _mm256_maddubs_epi16(off, y[j]);
                }
                reduce4_i16(&c)
            } else {
                _mm256_setzero_si256()
            };
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let wr = wp.add(r * rb);
                let dw = _mm256_set1_ps(f16_lut(tab, wr));
                let mut m = [_mm256_setzero_si256(); 4];
                let t = match T {
                    LQ4_0 | LQ5_0 => {
                        let q = if T == LQ4_0 {
                            nibbles32(wr.add(2))
                        } else {
                            let clear = q5_clear_mask(wr.add(2));
                            _mm256_or_si256(
                                nibbles32(wr.add(6)),
                                _mm256_andnot_si256(clear, _mm256_set1_epi8(16)),
                            )
                        };
                        for j in 0..K {
                            m[j] = _mm256_maddubs_epi16(q, y[j]);
                        }
                        _mm256_sub_epi32(reduce4_i16(&m), corr)
                    }
                    LQ8_0 => {
                        let q = load256(wr.add(2));
                        let aq = _mm256_sign_epi8(q, q);
                        for j in 0..K {
                            m[j] = _mm256_madd_epi16(
                                _mm256_maddubs_epi16(aq, _mm256_sign_epi8(y[j], q)),
                                ones,
                            );
                        }
                        reduce4_i32(&m)
                    }
                    _ => {
                        let q = if T == LQ4_1 {
                            nibbles32(wr.add(4))
                        } else {
                            let clear = q5_clear_mask(wr.add(4));
                            _mm256_or_si256(
                                nibbles32(wr.add(8)),
                                _mm256_andnot_si256(clear, _mm256_set1_epi8(16)),
                            )
                        };
                        for j in 0..K {
                            m[j] = _mm256_maddubs_epi16(q, y[j]);
                        }
                        reduce4_i16(&m)
                    }
                };
                let v = _mm256_mul_ps(_mm256_cvtepi32_ps(t), dw);
                *acc_r = _mm256_fmadd_ps(v, dav, *acc_r);
                if has_min {
                    let mw = _mm256_set1_ps(f16_lut(tab, wr.add(2)));
                    *acc_r = _mm256_fmadd_ps(mw, sav, *acc_r);
                }
            }
            wp = wp.add(wb);
            ap = ap.add(ab);
        }
        for (r, v) in acc.iter().enumerate() {
            let s = _mm_add_ps(_mm256_castps256_ps128(*v), _mm256_extractf128_ps(*v, 1));
            let mut o = [0f32; 4];
            _mm_storeu_ps(o.as_mut_ptr(), s);
            for (j, x) in o.iter().enumerate().take(K) {
                *out.add(r * K + j) = *x;
            }
        }
    }
}

/// Rows per step of the legacy multi-row kernels.
const LEGACY_R: usize = 4;

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_rows_legacy<const T: u8, const K: usize>(
    nb: usize,
    w: *const u8,
    rb: usize,
    n_rows: usize,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    // SAFETY: as for `rows_legacy`: the caller guarantees the features and that the
    // n_rows rows, the activations and n_rows × K outputs are in bounds; each call
    // below gets a sub-range of them.
    unsafe {
        let mut r = 0;
        while r + LEGACY_R <= n_rows {
            rows_legacy::<T, LEGACY_R, K>(nb, w.add(r * rb), rb, a, stride, out.add(r * K));
            r += LEGACY_R;
        }
        let (wr, o) = (w.add(r * rb), out.add(r * K));
        match n_rows - r {
            0 => {}
            1 => rows_legacy::<T, 1, K>(nb, wr, rb, a, stride, o),
            2 => rows_legacy::<T, 2, K>(nb, wr, rb, a, stride, o),
            3 => rows_legacy::<T, 3, K>(nb, wr, rb, a, stride, o),
            rest => {
                for i in 0..rest {
                    rows_legacy::<T, 1, K>(nb, wr.add(i * rb), rb, a, stride, o.add(i * K));
                }
            }
        }
    }
}

// K-quant super-blocks (256 elements) × Q8_K. Per super-block the K activation
// scales are loaded once for the R rows (one f32 vector [d_0 … d_3 | d_0 … d_3]);
// per row the scales/mins are unpacked and the quants once for the K tokens, which
// keep one i32 accumulator each (`vpmaddubsw` + `vpmaddwd` by the sub-block
// scale, as `dot`). At the end of the super-block the K i32 vectors (and the K
// min / offset corrections) are reduced with `vphaddd` to one vector whose lanes
// are the tokens [t_0 t_1 t_2 t_3 | t_0 t_1 t_2 t_3], so one convert + one FMA per
// (row, super-block) remain (two for the mins of Q4_K/Q5_K) instead of K each.
// Measured on the 2-core EPYC (Zen 3), L2-resident rows, k = 4: +12–19 % over the
// per-row `dot`; R = 4 beat 2 and 3; reducing the i16 `vpmaddubsw` products across
// tokens with `vphaddw` before a single `vpmaddwd` per sub-block was slower than
// the per-token `vpmaddwd` (−5 to −10 %).

/// K i32 vectors → [p0 p1 p2 p3 | p0 p1 p2 p3] (per-half sums), missing ones 0.
#[inline(always)]
unsafe fn reduce_k_i32<const K: usize>(p: &[__m256i; 4]) -> __m256i {
    // SAFETY: register-only AVX2 ops; the caller enabled AVX2.
    unsafe {
        let z = _mm256_setzero_si256();
        let h01 = _mm256_hadd_epi32(p[0], if K > 1 { p[1] } else { z });
        let h23 = if K > 2 {
            _mm256_hadd_epi32(p[2], if K > 3 { p[3] } else { z })
        } else {
            z
        };
        _mm256_hadd_epi32(h01, h23)
    }
}

/// Token scales of one Q8_K super-block: [d_0 … d_3 | d_0 … d_3].
#[inline(always)]
unsafe fn q8k_scales<const K: usize>(ap: *const u8, stride: usize) -> __m256 {
    // SAFETY: the caller guarantees K activation super-blocks at `stride` from `ap`.
    unsafe {
        let mut ds = [0f32; 4];
        for (j, d) in ds.iter_mut().enumerate().take(K) {
            *d = f32_at(ap.add(j * stride));
        }
        let d4 = _mm_loadu_ps(ds.as_ptr());
        _mm256_set_m128(d4, d4)
    }
}

/// Stores R accumulators [t0 … t3 | t0 … t3] (halves summed) as `out[r * K + j]`.
#[inline(always)]
unsafe fn store_rows<const R: usize, const K: usize>(acc: &[__m256; R], out: *mut f32) {
    // SAFETY: the caller guarantees R × K floats at `out`.
    unsafe {
        for (r, v) in acc.iter().enumerate() {
            let s = _mm_add_ps(_mm256_castps256_ps128(*v), _mm256_extractf128_ps(*v, 1));
            let mut o = [0f32; 4];
            _mm_storeu_ps(o.as_mut_ptr(), s);
            for (j, x) in o.iter().enumerate().take(K) {
                *out.add(r * K + j) = *x;
            }
        }
    }
}

/// R Q4_K (`QH = false`) / Q5_K (`QH = true`) rows × K Q8_K rows over `nb`
/// super-blocks; `out[r * K + j]`.
#[inline(always)]
unsafe fn rows_qk<const QH: bool, const R: usize, const K: usize>(
    nb: usize,
    w: *const u8,
    rb: usize,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    // SAFETY: the caller guarantees AVX2/FMA/F16C, R rows of nb super-blocks at
    // stride `rb` from `w`, K activation rows of nb Q8_K blocks at `stride` from
    // `a`, R × K floats at `out`; every load stays inside one super-block.
    unsafe {
        let wb = if QH { 176 } else { 144 };
        let m4 = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut wp = w;
        let mut ap = a;
        for _ in 0..nb {
            let dav = q8k_scales::<K>(ap, stride);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let wr = wp.add(r * rb);
                let d = f16_at(wr);
                let dmin = f16_at(wr.add(2));
                let (sc, mn) = k_scales(wr.add(4));
                let qs = if QH { wr.add(48) } else { wr.add(16) };
                let hb = if QH {
                    load256(wr.add(16))
                } else {
                    _mm256_setzero_si256()
                };
                let sc16 =
                    _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64)));
                let m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mn as i64));
                let mins =
                    _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
                let mut isum = [_mm256_setzero_si256(); 4];
                for c in 0..4 {
                    let raw = load256(qs.add(32 * c));
                    let mut lo = _mm256_and_si256(raw, m4);
                    let mut hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
                    if QH {
                        lo = _mm256_or_si256(lo, q5_hbit(hb, 2 * c));
                        hi = _mm256_or_si256(hi, q5_hbit(hb, 2 * c + 1));
                    }
                    let s_lo = _mm256_shuffle_epi8(sc16, load256(BCAST16[2 * c].as_ptr()));
                    let s_hi = _mm256_shuffle_epi8(sc16, load256(BCAST16[2 * c + 1].as_ptr()));
                    for (j, is) in isum.iter_mut().enumerate().take(K) {
                        let y = ap.add(j * stride + 4 + 64 * c);
                        let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load256(y)), s_lo);
                        let p1 =
                            _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load256(y.add(32))), s_hi);
                        *is = _mm256_add_epi32(*is, _mm256_add_epi32(p0, p1));
                    }
                }
                let isum = reduce_k_i32::<K>(&isum);
                let mut ms = [_mm256_setzero_si256(); 4];
                for (j, m) in ms.iter_mut().enumerate().take(K) {
                    *m = _mm256_madd_epi16(load256(ap.add(j * stride + 260)), mins);
                }
                let msum = reduce_k_i32::<K>(&ms);
                let t = _mm256_fmadd_ps(
                    _mm256_mul_ps(_mm256_set1_ps(d), dav),
                    _mm256_cvtepi32_ps(isum),
                    *acc_r,
                );
                *acc_r = _mm256_fnmadd_ps(
                    _mm256_mul_ps(_mm256_set1_ps(dmin), dav),
                    _mm256_cvtepi32_ps(msum),
                    t,
                );
            }
            wp = wp.add(wb);
            ap = ap.add(292);
        }
        store_rows::<R, K>(&acc, out);
    }
}

/// R Q6_K rows × K Q8_K rows over `nb` super-blocks; `out[r * K + j]`.
#[inline(always)]
unsafe fn rows_q6k<const R: usize, const K: usize>(
    nb: usize,
    w: *const u8,
    rb: usize,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    // SAFETY: the caller guarantees AVX2/FMA/F16C, R rows of nb super-blocks at
    // stride `rb` from `w`, K activation rows of nb Q8_K blocks at `stride` from
    // `a`, R × K floats at `out`; every load stays inside one super-block.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0F);
        let m30 = _mm256_set1_epi8(0x30);
        let z = _mm256_setzero_si256();
        let mut acc = [_mm256_setzero_ps(); R];
        let mut wp = w;
        let mut ap = a;
        for _ in 0..nb {
            let dav = q8k_scales::<K>(ap, stride);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let wr = wp.add(r * rb);
                let d = f16_at_end(wr.add(208));
                let sc8 = load128(wr.add(192));
                let sc_b = _mm256_broadcastsi128_si256(sc8);
                let sc16 = _mm256_cvtepi8_epi16(sc8);
                let mut isum = [z; 4];
                for h in 0..2 {
                    let ql = wr.add(64 * h);
                    let qh = load256(wr.add(128 + 32 * h));
                    for i in 0..4 {
                        let qlv = load256(ql.add(32 * (i & 1)));
                        let low = if i < 2 {
                            _mm256_and_si256(qlv, m4)
                        } else {
                            _mm256_and_si256(_mm256_srli_epi16(qlv, 4), m4)
                        };
                        let high = match i {
                            0 => _mm256_slli_epi16(qh, 4),
                            1 => _mm256_slli_epi16(qh, 2),
                            2 => qh,
                            _ => _mm256_srli_epi16(qh, 2),
                        };
                        let q = _mm256_or_si256(low, _mm256_and_si256(high, m30));
                        let s = _mm256_srai_epi16(
                            _mm256_shuffle_epi8(sc_b, load256(Q6_SCALES[4 * h + i].as_ptr())),
                            8,
                        );
                        for (j, is) in isum.iter_mut().enumerate().take(K) {
                            let y = load256(ap.add(j * stride + 4 + 128 * h + 32 * i));
                            *is = _mm256_add_epi32(
                                *is,
                                _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), s),
                            );
                        }
                    }
                }
                let isum = reduce_k_i32::<K>(&isum);
                // Σ sc_g·32·bsum_g per token: the −32 offset of every quant.
                let mut cs = [z; 4];
                for (j, c) in cs.iter_mut().enumerate().take(K) {
                    *c = _mm256_madd_epi16(load256(ap.add(j * stride + 260)), sc16);
                }
                let corr = _mm256_slli_epi32(reduce_k_i32::<K>(&cs), 5);
                let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(isum, corr));
                *acc_r = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(d), dav), v, *acc_r);
            }
            wp = wp.add(210);
            ap = ap.add(292);
        }
        store_rows::<R, K>(&acc, out);
    }
}

/// Rows per step of the K-quant multi-row kernels (measured: 4 > 3 > 2).
const KQ_R: usize = 4;

const KQ4_K: u8 = 0;
const KQ5_K: u8 = 1;
const KQ6_K: u8 = 2;

#[inline(always)]
unsafe fn rows_kq<const T: u8, const R: usize, const K: usize>(
    nb: usize,
    w: *const u8,
    rb: usize,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    // SAFETY: the caller's contract, passed on unchanged.
    unsafe {
        match T {
            KQ4_K => rows_qk::<false, R, K>(nb, w, rb, a, stride, out),
            KQ5_K => rows_qk::<true, R, K>(nb, w, rb, a, stride, out),
            _ => rows_q6k::<R, K>(nb, w, rb, a, stride, out),
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_rows_kq<const T: u8, const K: usize>(
    nb: usize,
    w: *const u8,
    rb: usize,
    n_rows: usize,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    // SAFETY: as for `rows_qk` / `rows_q6k`: the caller guarantees the features and
    // that the n_rows rows, the activations and n_rows × K outputs are in bounds;
    // each call below gets a sub-range of them.
    unsafe {
        let mut r = 0;
        while r + KQ_R <= n_rows {
            rows_kq::<T, KQ_R, K>(nb, w.add(r * rb), rb, a, stride, out.add(r * K));
            r += KQ_R;
        }
        let (wr, o) = (w.add(r * rb), out.add(r * K));
        match n_rows - r {
            0 => {}
            1 => rows_kq::<T, 1, K>(nb, wr, rb, a, stride, o),
            2 => rows_kq::<T, 2, K>(nb, wr, rb, a, stride, o),
            3 => rows_kq::<T, 3, K>(nb, wr, rb, a, stride, o),
            rest => {
                for i in 0..rest {
                    rows_kq::<T, 1, K>(nb, wr.add(i * rb), rb, a, stride, o.add(i * K));
                }
            }
        }
    }
}

macro_rules! kq_rows_by_k {
    ($t:expr, $k:expr) => {
        match $k {
            2 => dot_rows_kq::<{ $t }, 2> as RowsFn,
            3 => dot_rows_kq::<{ $t }, 3> as RowsFn,
            _ => dot_rows_kq::<{ $t }, 4> as RowsFn,
        }
    };
}

type RowsFn = unsafe fn(usize, *const u8, usize, usize, *const u8, usize, *mut f32);

macro_rules! rows_by_k {
    ($t:expr, $k:expr) => {
        match $k {
            2 => dot_rows_legacy::<{ $t }, 2> as RowsFn,
            3 => dot_rows_legacy::<{ $t }, 3> as RowsFn,
            _ => dot_rows_legacy::<{ $t }, 4> as RowsFn,
        }
    };
}

/// SIMD multi-row dot (see `crate::dot_rows`).
///
/// # Safety
/// AVX2, FMA and F16C must be available; `wp` must cover `n_rows` rows at stride
/// `rb` (the last one `w.row_bytes(n)` bytes), `ap` k activation rows at `stride`,
/// `out` n_rows × k floats.
#[allow(clippy::too_many_arguments)]
#[inline]
pub unsafe fn dot_rows(
    w: DType,
    n: usize,
    wp: *const u8,
    rb: usize,
    n_rows: usize,
    ap: *const u8,
    stride: usize,
    k: usize,
    out: *mut f32,
) {
    // SAFETY: this function's contract (features, buffers) is passed on: the
    // kernels get the same pointers, `dot` row r its own row and outputs.
    unsafe {
        let f = if k == 1 {
            None
        } else {
            match w {
                DType::Q4_0 => Some(rows_by_k!(LQ4_0, k)),
                DType::Q5_0 => Some(rows_by_k!(LQ5_0, k)),
                DType::Q8_0 => Some(rows_by_k!(LQ8_0, k)),
                DType::Q4_1 => Some(rows_by_k!(LQ4_1, k)),
                DType::Q5_1 => Some(rows_by_k!(LQ5_1, k)),
                DType::Q4_K => Some(kq_rows_by_k!(KQ4_K, k)),
                DType::Q5_K => Some(kq_rows_by_k!(KQ5_K, k)),
                DType::Q6_K => Some(kq_rows_by_k!(KQ6_K, k)),
                _ => None,
            }
        };
        let plain = match w {
            DType::F16 => Some(Plain::F16),
            DType::BF16 => Some(Plain::Bf16),
            DType::F32 => Some(Plain::F32),
            _ => None,
        };
        if let (Some(kind), true) = (plain, k > 1) {
            let g: PlainRowsFn = match k {
                2 => plain_rows_avx2::<2>,
                3 => plain_rows_avx2::<3>,
                _ => plain_rows_avx2::<4>,
            };
            return g(kind, n, wp, rb, n_rows, ap, stride, out);
        }
        match f {
            Some(f) => f(n / w.block_size(), wp, rb, n_rows, ap, stride, out),
            None => {
                // Decode (k = 1) and the types without a multi-row kernel: the
                // one-row kernels row by row.
                for r in 0..n_rows {
                    dot(w, n, wp.add(r * rb), ap, stride, k, out.add(r * k));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// packed (8 rows interleaved, see crate::packed)
// ---------------------------------------------------------------------------

/// Bytes of a packed legacy block of type `t` (LQ4_0, LQ4_1, LQ5_0: 8 rows), offset
/// of its quants, bytes of an activation block, offset of the activation quants:
/// `(pb, qs_at, ab, yoff)` (layout in `crate::packed`).
#[inline(always)]
pub(crate) const fn packed_shape(t: u8) -> (usize, usize, usize, usize) {
    match t {
        LQ4_1 => (160, 32, 36, 4),
        LQ5_0 => (176, 48, 34, 2),
        _ => (144, 16, 34, 2),
    }
}

/// One packed group of 8 rows × K tokens over `nb` blocks; `out[j * 8 + r]`.
///
/// Per block and 32-byte quant group: the low and high nibbles are two registers
/// of 4 bytes per row (Q5_0 ORs in its fifth bits, each one shift and one AND
/// away thanks to the regrouped layout); per token one broadcast 4-byte
/// activation group each and a `vpmaddubsw` give 2 partial sums per row. The i16
/// partials add up without overflow: for 4-bit quants all 8 multiplies of a block
/// (8 × 2 × 15 × 127 = 30 480), for 5-bit quants 4 of them (4 × 2 × 31 × 127 =
/// 31 496), then `vpmaddwd` by ones widens to one i32 lane per row. Q4_0 / Q5_0
/// subtract the precomputed offset·Σy of the block; one convert and one FMA by
/// d_w[8] × d_y fold the block in (Q4_1 adds m_w[8] × s_y with a second FMA).
///
/// With `V` (AVX-VNNI, e.g. Intel cores since Alder Lake without AVX-512) each
/// `vpmaddubsw` + add pair is one `vpdpbusd` into i32 lanes instead: the same exact
/// integer sums (no i16 stage, no widening), so the same bits.
#[inline(always)]
unsafe fn packed_group<const T: u8, const K: usize, const V: bool>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    sums: *const i32,
    sstride: usize,
    out: *mut f32,
) {
    // SAFETY: the caller guarantees the features, that `w` holds nb packed blocks,
    // `a` K activation rows of nb blocks at `stride`, `sums` (Q4_0/Q5_0) K rows of
    // nb values at `sstride`, and `out` 8 × K floats.
    unsafe {
        let (pb, qs_at, ab, yoff) = packed_shape(T);
        let tab = f16_table();
        let m0f = _mm256_set1_epi8(0x0F);
        let bit4 = _mm256_set1_epi8(0x10);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); K];
        let mut wp = w;
        let mut ap = a;
        let mut pf = PF_DIST;
        for b in 0..nb {
            if K == 1 {
                while pf < (b + 1) * pb + PF_DIST {
                    _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(pf).cast::<i8>());
                    pf += 64;
                }
            }
            let mut p = [_mm256_setzero_si256(); K];
            let mut p32 = [_mm256_setzero_si256(); K];
            let qh = if T == LQ5_0 {
                load256(wp.add(16))
            } else {
                _mm256_setzero_si256()
            };
            for g in 0..4 {
                let wv = load256(wp.add(qs_at + 32 * g));
                let mut lo = _mm256_and_si256(wv, m0f);
                let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(wv), m0f);
                if T == LQ5_0 {
                    // Group g's fifth bits: bit 8i + g (low) and 8i + 4 + g (high).
                    let (l, h) = match g {
                        0 => (_mm256_slli_epi32::<4>(qh), qh),
                        1 => (_mm256_slli_epi32::<3>(qh), _mm256_srli_epi32::<1>(qh)),
                        2 => (_mm256_slli_epi32::<2>(qh), _mm256_srli_epi32::<2>(qh)),
                        _ => (_mm256_slli_epi32::<1>(qh), _mm256_srli_epi32::<3>(qh)),
                    };
                    lo = _mm256_or_si256(lo, _mm256_and_si256(l, bit4));
                    hi = _mm256_or_si256(hi, _mm256_and_si256(h, bit4));
                }
                for (j, pj) in p.iter_mut().enumerate() {
                    let y = ap.add(j * stride + yoff + 4 * g);
                    let ylo = _mm256_set1_epi32(ld32(y) as i32);
                    let yhi = _mm256_set1_epi32(ld32(y.add(16)) as i32);
                    if V {
                        *pj = _mm256_dpbusd_avx_epi32(*pj, lo, ylo);
                        *pj = _mm256_dpbusd_avx_epi32(*pj, hi, yhi);
                        continue;
                    }
                    let s = _mm256_add_epi16(
                        _mm256_maddubs_epi16(lo, ylo),
                        _mm256_maddubs_epi16(hi, yhi),
                    );
                    *pj = _mm256_add_epi16(*pj, s);
                }
                if T == LQ5_0 && g == 1 && !V {
                    for (pj, qj) in p.iter_mut().zip(p32.iter_mut()) {
                        *qj = _mm256_madd_epi16(*pj, ones);
                        *pj = _mm256_setzero_si256();
                    }
                }
            }
            let dw = _mm256_cvtph_ps(load128(wp));
            for (j, accj) in acc.iter_mut().enumerate() {
                let mut i = if V {
                    p[j]
                } else {
                    _mm256_madd_epi16(p[j], ones)
                };
                if T == LQ5_0 && !V {
                    i = _mm256_add_epi32(i, p32[j]);
                }
                if T == LQ4_0 || T == LQ5_0 {
                    i = _mm256_sub_epi32(i, _mm256_set1_epi32(*sums.add(j * sstride + b)));
                }
                let yj = ap.add(j * stride);
                let d = _mm256_mul_ps(dw, _mm256_set1_ps(f16_lut(tab, yj)));
                *accj = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), d, *accj);
                if T == LQ4_1 {
                    let mw = _mm256_cvtph_ps(load128(wp.add(16)));
                    *accj = _mm256_fmadd_ps(mw, _mm256_set1_ps(f16_lut(tab, yj.add(2))), *accj);
                }
            }
            wp = wp.add(pb);
            ap = ap.add(ab);
        }
        for (j, v) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(j * 8), *v);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_packed_t<const T: u8, const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    sums: *const i32,
    sstride: usize,
    out: *mut f32,
) {
    // SAFETY: forwarded contract (see `packed_group`).
    unsafe { packed_group::<T, K, false>(nb, w, a, stride, sums, sstride, out) }
}

/// [`dot_packed_t`] with AVX-VNNI (see `packed_group`).
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn dot_packed_vnni<const T: u8, const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    sums: *const i32,
    sstride: usize,
    out: *mut f32,
) {
    // SAFETY: forwarded contract (see `packed_group`), plus AVX-VNNI.
    unsafe { packed_group::<T, K, true>(nb, w, a, stride, sums, sstride, out) }
}

/// Packed Q4_K (see `crate::packed`): 8 rows × K (1 or 2) tokens over `nb`
/// super-blocks; `out[j * 8 + r]`.
///
/// Per 64-element chunk c and 32-byte quant group: low nibbles (sub-block 2c) and
/// high nibbles (2c + 1) against broadcast activation bytes, i16 partials per
/// sub-block (8 × 2 × 15 × 127 = 30 480 at most), then `vpmaddwd` by the rows'
/// scales (each row's 6-bit scale in both i16 halves of its lane) into i32. The
/// mins meet the activation sub-block sums in pairs (`vpmaddwd` of the unpacked
/// min pairs by the broadcast `act_sums` pair). Per super-block and token:
/// acc += dy · (d · Σ sc·P − dmin · Σ m·Y), two FMAs.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn packed_q4k<const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    sums: *const i32,
    sstride: usize,
    out: *mut f32,
) {
    // SAFETY: the caller guarantees the features, that `w` holds nb packed Q4_K
    // blocks, `a` K rows of nb Q8_K blocks at `stride`, `sums` K rows of 4·nb values
    // at `sstride`, and `out` 8 × K floats.
    unsafe {
        const PB: usize = 1184; // packed block: 8 rows × 148
        const AB: usize = 292; // Q8_K block
        let m0f = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); K];
        let mut wp = w;
        let mut ap = a;
        let mut pf = PF_DIST;
        for b in 0..nb {
            if K == 1 {
                while pf < (b + 1) * PB + PF_DIST {
                    _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(pf).cast::<i8>());
                    pf += 64;
                }
            }
            let mut dots = [_mm256_setzero_si256(); K];
            for c in 0..4 {
                let mut plo = [_mm256_setzero_si256(); K];
                let mut phi = [_mm256_setzero_si256(); K];
                for j in 0..8 {
                    let wv = load256(wp.add(160 + 256 * c + 32 * j));
                    let lo = _mm256_and_si256(wv, m0f);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(wv), m0f);
                    for t in 0..K {
                        let y = ap.add(t * stride + 4 + 64 * c + 4 * j);
                        let ylo = _mm256_set1_epi32(ld32(y) as i32);
                        let yhi = _mm256_set1_epi32(ld32(y.add(32)) as i32);
                        plo[t] = _mm256_add_epi16(plo[t], _mm256_maddubs_epi16(lo, ylo));
                        phi[t] = _mm256_add_epi16(phi[t], _mm256_maddubs_epi16(hi, yhi));
                    }
                }
                let scale = |s: usize| {
                    let v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(wp.add(32 + 8 * s).cast()));
                    _mm256_or_si256(v, _mm256_slli_epi32::<16>(v))
                };
                let (slo, shi) = (scale(2 * c), scale(2 * c + 1));
                for t in 0..K {
                    let s = _mm256_add_epi32(
                        _mm256_madd_epi16(plo[t], slo),
                        _mm256_madd_epi16(phi[t], shi),
                    );
                    dots[t] = _mm256_add_epi32(dots[t], s);
                }
            }
            let mins: [__m256i; 4] =
                std::array::from_fn(|q| _mm256_cvtepu8_epi16(load128(wp.add(96 + 16 * q))));
            let dw = _mm256_cvtph_ps(load128(wp));
            let dmw = _mm256_cvtph_ps(load128(wp.add(16)));
            for t in 0..K {
                let mut ms = _mm256_setzero_si256();
                for (q, mq) in mins.iter().enumerate() {
                    let ypair = _mm256_set1_epi32(*sums.add(t * sstride + 4 * b + q));
                    ms = _mm256_add_epi32(ms, _mm256_madd_epi16(*mq, ypair));
                }
                let dy = _mm256_set1_ps(f32::from_bits(ld32(ap.add(t * stride))));
                acc[t] =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots[t]), _mm256_mul_ps(dw, dy), acc[t]);
                acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_mul_ps(dmw, dy), acc[t]);
            }
            wp = wp.add(PB);
            ap = ap.add(AB);
        }
        for (t, v) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(t * 8), *v);
        }
    }
}

/// Packed Q6_K (see `crate::packed`): 8 rows × K (1 or 2) tokens over `nb`
/// super-blocks; `out[j * 8 + r]`.
///
/// Per half h and ql group j (4 bytes of each row): the 6-bit quants of the low
/// nibbles (elements 128h + 4j..) and of the high nibbles (128h + 64 + 4j..), each
/// the nibble OR its two high bits from the qh group m = j mod 8 (bits 0-1 / 4-5 for
/// j < 8, 2-3 / 6-7 above, moved to bits 4-5 by a 16-bit shift and a mask; the bits
/// a 16-bit shift carries over from the neighbouring byte fall outside the mask).
/// Unsigned quants (0..63) against broadcast activation bytes by `vpmaddubsw`; the
/// i16 sums of two groups (2 × 2 × 63 × 127 = 32 004 at most) meet the rows'
/// sub-block scale (i8, the same in both i16 halves of a row's lane) in one
/// `vpmaddwd` into i32. The −32 offset comes back once per super-block and token:
/// 32 · Σ_s sc_s · bsum_s, `vpmaddwd` of the scale pairs by the activation's bsum
/// pairs. Per super-block and token: acc += d_w · d_y · (Σ sc·P − 32 Σ sc·B), the
/// integer dot of llama.cpp's Q6_K × Q8_K kernels, so within float rounding of the
/// reference.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn packed_q6k<const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    // SAFETY: the caller guarantees the features, that `w` holds nb packed Q6_K
    // blocks, `a` K rows of nb Q8_K blocks at `stride`, and `out` 8 × K floats.
    unsafe {
        const PB: usize = 1680; // packed block: 8 rows × 210
        const AB: usize = 292; // Q8_K block
        let m0f = _mm256_set1_epi8(0x0F);
        let m30 = _mm256_set1_epi8(0x30);
        let mut acc = [_mm256_setzero_ps(); K];
        let mut wp = w;
        let mut ap = a;
        let mut pf = PF_DIST;
        // Row r's scale of sub-block s in both i16 halves of lane r.
        let scale = |wp: *const u8, s: usize| {
            let v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(wp.add(16 + 8 * s).cast()));
            _mm256_or_si256(
                _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF)),
                _mm256_slli_epi32::<16>(v),
            )
        };
        // Low- and high-nibble 6-bit quants of ql group j of half h.
        let quants = |wp: *const u8, h: usize, j: usize| {
            let wv = load256(wp.add(144 + 512 * h + 32 * j));
            let qh = load256(wp.add(1168 + 256 * h + 32 * (j % 8)));
            let (bl, bh) = if j < 8 {
                (_mm256_slli_epi16::<4>(qh), qh)
            } else {
                (_mm256_slli_epi16::<2>(qh), _mm256_srli_epi16::<2>(qh))
            };
            (
                _mm256_or_si256(_mm256_and_si256(wv, m0f), _mm256_and_si256(bl, m30)),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(wv), m0f),
                    _mm256_and_si256(bh, m30),
                ),
            )
        };
        for b in 0..nb {
            if K == 1 {
                while pf < (b + 1) * PB + PF_DIST {
                    _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(pf).cast::<i8>());
                    pf += 64;
                }
            }
            let mut dots = [_mm256_setzero_si256(); K];
            for h in 0..2 {
                // Sub-blocks 8h + sp (low nibbles of groups 4sp..4sp + 4) and
                // 8h + 4 + sp (their high nibbles), two groups at a time.
                for sp in 0..4 {
                    let (sa, sb) = (scale(wp, 8 * h + sp), scale(wp, 8 * h + 4 + sp));
                    for gp in 0..2 {
                        let j = 4 * sp + 2 * gp;
                        let (lo0, hi0) = quants(wp, h, j);
                        let (lo1, hi1) = quants(wp, h, j + 1);
                        for (t, d) in dots.iter_mut().enumerate() {
                            let y = ap.add(t * stride + 4 + 128 * h + 4 * j);
                            let by = |o: usize| _mm256_set1_epi32(ld32(y.add(o)) as i32);
                            let pl = _mm256_add_epi16(
                                _mm256_maddubs_epi16(lo0, by(0)),
                                _mm256_maddubs_epi16(lo1, by(4)),
                            );
                            let ph = _mm256_add_epi16(
                                _mm256_maddubs_epi16(hi0, by(64)),
                                _mm256_maddubs_epi16(hi1, by(68)),
                            );
                            *d = _mm256_add_epi32(
                                *d,
                                _mm256_add_epi32(
                                    _mm256_madd_epi16(pl, sa),
                                    _mm256_madd_epi16(ph, sb),
                                ),
                            );
                        }
                    }
                }
            }
            // Scale pairs (sc_2q, sc_2q+1) of each row as i16 in its lane.
            let pairs: [__m256i; 8] = std::array::from_fn(|q| {
                let s0 = _mm_loadl_epi64(wp.add(16 + 16 * q).cast());
                let s1 = _mm_loadl_epi64(wp.add(24 + 16 * q).cast());
                _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s0, s1))
            });
            let dw = _mm256_cvtph_ps(load128(wp));
            for (t, d) in dots.iter().enumerate() {
                let at = ap.add(t * stride);
                let mut off = _mm256_setzero_si256();
                for (q, pq) in pairs.iter().enumerate() {
                    let bs = _mm256_set1_epi32(ld32(at.add(260 + 4 * q)) as i32);
                    off = _mm256_add_epi32(off, _mm256_madd_epi16(*pq, bs));
                }
                let i = _mm256_sub_epi32(*d, _mm256_slli_epi32::<5>(off));
                let dy = _mm256_set1_ps(f32::from_bits(ld32(at)));
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(dw, dy), acc[t]);
            }
            wp = wp.add(PB);
            ap = ap.add(AB);
        }
        for (t, v) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(t * 8), *v);
        }
    }
}

/// Pins the order of integer work: an empty `asm!` that takes and returns each
/// vector of `$v` (an array of `__m256i`) in place; no instruction is emitted. The
/// partial sums of one step must be complete before the next step's additions
/// start, so LLVM can neither reassociate a sum across steps nor interleave the
/// steps (which raises register pressure). A macro: `ymm_reg` operands need the
/// caller's `avx` target feature.
macro_rules! order_barrier {
    ($v:expr) => {
        for x in $v.iter_mut() {
            let mut r: __m256i = *x;
            // SAFETY: the template is a comment; the operand stays in its register.
            std::arch::asm!("/* {0} */", inout(ymm_reg) r, options(nostack, preserves_flags));
            *x = r;
        }
    };
}

/// Packed Q8_0 (see `crate::packed`): 8 rows × K (1..=4) tokens over `nb` blocks;
/// `out[j * 8 + r]`.
///
/// Per block and 32-byte quant group (4 signed quants of each row): |q| once, then
/// per token the broadcast 4 activation bytes signed as q (`vpsignb`) and one
/// `vpmaddubsw`: i16 pairs of at most 2 × 128 × 127 = 32 512, so each is widened
/// at once (`vpmaddwd` by ones) and summed in i32 lanes, one per row. One convert
/// and one FMA by d_w[8] × d_y per (block, token). No activation sums. K = 1
/// prefetches the weights `PF_DIST` ahead, as the row kernel does.
///
/// The sums pass `order_barrier!` after each group: without it LLVM reassociates
/// each token's 8-term sum and schedules token by token, which keeps all 8 groups'
/// q and |q| live (16 registers) and spills them; measured at K = 4, n = 384–1536:
/// 118–122 GFLOP/s with the barrier, 86–98 without.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn packed_q8_0<const K: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    // SAFETY: the caller guarantees the features, that `w` holds nb packed Q8_0
    // blocks, `a` K rows of nb Q8_0 blocks at `stride`, and `out` 8 × K floats.
    // Prefetches may point past the group: they never fault.
    unsafe {
        const PB: usize = 272; // packed block: 8 rows × 34
        const AB: usize = 34; // Q8_0 block
        let tab = f16_table();
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); K];
        let mut wp = w;
        let mut ap = a;
        // K = 1: each cache line from PF_DIST up to PF_DIST past the block's end
        // once (272-byte blocks: 4 or 5 lines a block).
        let mut pf = PF_DIST;
        for b in 0..nb {
            if K == 1 {
                while pf < (b + 1) * PB + PF_DIST {
                    _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(pf).cast::<i8>());
                    pf += 64;
                }
            }
            let mut p = [_mm256_setzero_si256(); K];
            for g in 0..8 {
                let wv = load256(wp.add(16 + 32 * g));
                let aw = _mm256_sign_epi8(wv, wv);
                for (j, pj) in p.iter_mut().enumerate() {
                    let y = _mm256_set1_epi32(ld32(ap.add(j * stride + 2 + 4 * g)) as i32);
                    let s = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(y, wv));
                    *pj = _mm256_add_epi32(*pj, _mm256_madd_epi16(s, ones));
                }
                order_barrier!(p);
            }
            let dw = _mm256_cvtph_ps(load128(wp));
            for (j, accj) in acc.iter_mut().enumerate() {
                let d = _mm256_mul_ps(dw, _mm256_set1_ps(f16_lut(tab, ap.add(j * stride))));
                *accj = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p[j]), d, *accj);
            }
            wp = wp.add(PB);
            ap = ap.add(AB);
        }
        for (j, v) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(j * 8), *v);
        }
    }
}

/// SIMD packed-group dot (see `crate::packed::dot_group`).
///
/// # Safety
/// AVX2, FMA and F16C must be available; `w` must hold `nb` packed blocks of type
/// `t` (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K or Q6_K), `a` k activation rows of nb blocks at
/// `stride`, `sums` (Q4_0, Q5_0, Q4_K) k rows of `act_sums_len` i32 at `sstride`,
/// `out` 8 × k floats; 1 <= k <= 4 (2 for Q4_K and Q6_K).
#[allow(clippy::too_many_arguments)]
#[inline]
pub unsafe fn dot_packed(
    t: DType,
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    sums: *const i32,
    sstride: usize,
    k: usize,
    out: *mut f32,
) {
    macro_rules! by_k {
        ($f:ident, $t:expr) => {
            match k {
                1 => $f::<{ $t }, 1>(nb, w, a, stride, sums, sstride, out),
                2 => $f::<{ $t }, 2>(nb, w, a, stride, sums, sstride, out),
                3 => $f::<{ $t }, 3>(nb, w, a, stride, sums, sstride, out),
                _ => $f::<{ $t }, 4>(nb, w, a, stride, sums, sstride, out),
            }
        };
        ($t:expr) => {
            if crate::avxvnni_cached() {
                by_k!(dot_packed_vnni, $t)
            } else {
                by_k!(dot_packed_t, $t)
            }
        };
    }
    // SAFETY: this function's contract is the kernels'.
    unsafe {
        match t {
            DType::Q4_K if k == 1 => packed_q4k::<1>(nb, w, a, stride, sums, sstride, out),
            DType::Q4_K => packed_q4k::<2>(nb, w, a, stride, sums, sstride, out),
            DType::Q6_K if k == 1 => packed_q6k::<1>(nb, w, a, stride, out),
            DType::Q6_K => packed_q6k::<2>(nb, w, a, stride, out),
            DType::Q8_0 => match k {
                1 => packed_q8_0::<1>(nb, w, a, stride, out),
                2 => packed_q8_0::<2>(nb, w, a, stride, out),
                3 => packed_q8_0::<3>(nb, w, a, stride, out),
                _ => packed_q8_0::<4>(nb, w, a, stride, out),
            },
            DType::Q4_0 => by_k!(LQ4_0),
            DType::Q5_0 => by_k!(LQ5_0),
            _ => by_k!(LQ4_1),
        }
    }
}

// ---------------------------------------------------------------------------
// quantize_act
// ---------------------------------------------------------------------------

/// 32 floats × `mul`, rounded half-to-even, packed to 32 i8 in element order.
/// Returns (packed bytes, sum of the four i32 vectors).
#[inline(always)]
unsafe fn round_pack32(x: *const f32, mul: __m256) -> (__m256i, __m256i) {
    unsafe {
        const R: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        let i0 = _mm256_cvtps_epi32(_mm256_round_ps::<R>(_mm256_mul_ps(_mm256_loadu_ps(x), mul)));
        let i1 = _mm256_cvtps_epi32(_mm256_round_ps::<R>(_mm256_mul_ps(
            _mm256_loadu_ps(x.add(8)),
            mul,
        )));
        let i2 = _mm256_cvtps_epi32(_mm256_round_ps::<R>(_mm256_mul_ps(
            _mm256_loadu_ps(x.add(16)),
            mul,
        )));
        let i3 = _mm256_cvtps_epi32(_mm256_round_ps::<R>(_mm256_mul_ps(
            _mm256_loadu_ps(x.add(24)),
            mul,
        )));
        let sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        let p01 = _mm256_packs_epi32(i0, i1);
        let p23 = _mm256_packs_epi32(i2, i3);
        let p = _mm256_packs_epi16(p01, p23);
        let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        (p, sum)
    }
}

#[inline(always)]
unsafe fn amax8(v: __m256) -> f32 {
    unsafe {
        let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_movehdup_ps(m));
        _mm_cvtss_f32(m)
    }
}

#[inline(always)]
unsafe fn f32_to_f16_bits(v: f32) -> u16 {
    unsafe { _mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(v), _MM_FROUND_TO_NEAREST_INT), 0) as u16 }
}

/// # Safety
/// AVX2/FMA/F16C available; `x.len()` a multiple of the block of `at`; `out` holds
/// exactly the bytes of the quantized row.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_act(at: DType, x: &[f32], out: &mut [u8]) {
    unsafe {
        let sign = _mm256_set1_ps(-0.0);
        match at {
            DType::F32 => {
                for (o, v) in out.chunks_exact_mut(4).zip(x) {
                    o.copy_from_slice(&v.to_le_bytes());
                }
            }
            DType::Q8_0 | DType::Q8_1 => {
                let bb = at.block_bytes();
                let qoff = if at == DType::Q8_0 { 2 } else { 4 };
                for (xb, ob) in x.chunks_exact(32).zip(out.chunks_exact_mut(bb)) {
                    let p = xb.as_ptr();
                    let mut m = _mm256_andnot_ps(sign, _mm256_loadu_ps(p));
                    for t in 1..4 {
                        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * t))));
                    }
                    let amax = amax8(m);
                    let d = amax / 127.0;
                    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
                    let (q, sum) = round_pack32(p, _mm256_set1_ps(id));
                    _mm256_storeu_si256(ob.as_mut_ptr().add(qoff).cast::<__m256i>(), q);
                    ob[0..2].copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
                    if at == DType::Q8_1 {
                        let s = d * hsum_epi32(sum) as f32;
                        ob[2..4].copy_from_slice(&f32_to_f16_bits(s).to_le_bytes());
                    }
                }
            }
            DType::Q8_K => {
                for (xb, ob) in x.chunks_exact(256).zip(out.chunks_exact_mut(292)) {
                    let p = xb.as_ptr();
                    let mut m = _mm256_setzero_ps();
                    for t in 0..32 {
                        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * t))));
                    }
                    let amax = amax8(m);
                    if amax == 0.0 {
                        ob.fill(0);
                        continue;
                    }
                    // First element whose magnitude is amax (its sign sets the scale's).
                    let am = _mm256_set1_ps(amax);
                    let mut max = 0f32;
                    for t in 0..32 {
                        let v = _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * t)));
                        let bits = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(v, am));
                        if bits != 0 {
                            max = xb[8 * t + bits.trailing_zeros() as usize];
                            break;
                        }
                    }
                    let iscale = -127.0 / max;
                    let mul = _mm256_set1_ps(iscale);
                    let ones = _mm256_set1_epi16(1);
                    for c in 0..8 {
                        let (q, _) = round_pack32(p.add(32 * c), mul);
                        _mm256_storeu_si256(ob.as_mut_ptr().add(4 + 32 * c).cast::<__m256i>(), q);
                        // Two groups of 16 per 32 quants: widen each half and sum.
                        let s0 = _mm256_madd_epi16(
                            _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q)),
                            ones,
                        );
                        let s1 = _mm256_madd_epi16(
                            _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1)),
                            ones,
                        );
                        let g0 = hsum_epi32(s0) as i16;
                        let g1 = hsum_epi32(s1) as i16;
                        ob[260 + 4 * c..262 + 4 * c].copy_from_slice(&g0.to_le_bytes());
                        ob[262 + 4 * c..264 + 4 * c].copy_from_slice(&g1.to_le_bytes());
                    }
                    ob[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
                }
            }
            _ => unreachable!("activation type {at}"),
        }
    }
}
