//! aarch64 NEON kernels of [`crate::dot`] and [`crate::dot_rows`]: phones, headsets
//! and ARM laptops.
//!
//! Same contract as the AVX2 set: one weight row against 1..=4 activation rows
//! (`const K`), each weight block unpacked into registers once and multiplied
//! against the K rows. Integer block sums are exact; one float multiply-add per
//! (row, block) folds the scales in, so results agree with [`crate::reference`]
//! within float rounding (the order of the float sums differs).
//!
//! The int8 products take one of two forms ([`Dot`]): `sdot` (Armv8.2 dot product,
//! every phone core since Cortex-A55/A75; emitted with `asm!` because the
//! intrinsic is not stable) or, where the CPU lacks it, `smull` + `sadalp`
//! widening pairs (base Armv8). Both give the same i32 totals per 16-byte vector,
//! which is all the kernels use: every scale covers whole vectors (32 elements
//! for the legacy and Q4_K/Q5_K types, 16 for Q6_K).
//!
//! Activation quantization stays scalar on ARM ([`crate::reference::quantize_act`]):
//! it is O(n) per matmul against the weights' O(n · rows).

use crate::blocks::{
    bf16_to_f32, f16_to_f32, unpack_k_scales, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K,
};
use crate::DType;
use std::arch::aarch64::*;

/// The int8 dot-product step: `acc` plus the products of `a` and `b`, summed into
/// four i32 lanes (which lane holds which products differs between forms; only
/// the total of the four lanes is defined).
trait Dot {
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

/// `sdot` (FEAT_DotProd): lane i gets the four products of bytes 4i..4i+4.
struct Sdot;

impl Dot for Sdot {
    #[inline(always)]
    unsafe fn dot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY (of the caller): only instantiated inside the `dotprod` entry points.
        unsafe {
            std::arch::asm!(
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }
}

/// Base Armv8: `smull` into i16 (|a·b| <= 128 · 128 fits), then `sadalp` pairs into
/// the i32 lanes.
struct Widen;

impl Dot for Widen {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        unsafe {
            let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
            let hi = vmull_high_s8(a, b);
            vpadalq_s16(vpadalq_s16(acc, lo), hi)
        }
    }
}

/// [`crate::dot`] with `sdot`.
///
/// # Safety
/// The CPU has NEON and FEAT_DotProd; the buffers hold what [`crate::dot`] checked.
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_sdot(
    w: DType,
    n: usize,
    wr: *const u8,
    a: *const u8,
    stride: usize,
    k: usize,
    out: *mut f32,
) {
    unsafe { dot_any::<Sdot>(w, n, wr, a, stride, k, out) }
}

/// [`crate::dot`] without the dot-product extension.
///
/// # Safety
/// The CPU has NEON (every aarch64 CPU); the buffers hold what [`crate::dot`] checked.
#[target_feature(enable = "neon")]
pub unsafe fn dot_widen(
    w: DType,
    n: usize,
    wr: *const u8,
    a: *const u8,
    stride: usize,
    k: usize,
    out: *mut f32,
) {
    unsafe { dot_any::<Widen>(w, n, wr, a, stride, k, out) }
}

/// [`crate::dot_rows`]: the one-row kernel row by row (`sdot` form where `dotprod`).
///
/// # Safety
/// As [`dot_sdot`] / [`dot_widen`], for every row at `row_bytes` apart.
#[allow(clippy::too_many_arguments)]
pub unsafe fn dot_rows(
    dotprod: bool,
    w: DType,
    n: usize,
    rows: *const u8,
    row_bytes: usize,
    n_rows: usize,
    a: *const u8,
    stride: usize,
    k: usize,
    out: *mut f32,
) {
    unsafe {
        for r in 0..n_rows {
            let (wr, o) = (rows.add(r * row_bytes), out.add(r * k));
            if dotprod {
                dot_sdot(w, n, wr, a, stride, k, o)
            } else {
                dot_widen(w, n, wr, a, stride, k, o)
            }
        }
    }
}

#[inline(always)]
unsafe fn dot_any<D: Dot>(
    w: DType,
    n: usize,
    wr: *const u8,
    a: *const u8,
    stride: usize,
    k: usize,
    out: *mut f32,
) {
    unsafe {
        macro_rules! by_k {
            ($f:ident $(, $c:expr)?) => {
                match k {
                    1 => $f::<D, 1 $(, { $c })?>(n, wr, a, stride, out),
                    2 => $f::<D, 2 $(, { $c })?>(n, wr, a, stride, out),
                    3 => $f::<D, 3 $(, { $c })?>(n, wr, a, stride, out),
                    _ => $f::<D, 4 $(, { $c })?>(n, wr, a, stride, out),
                }
            };
        }
        match w {
            // One instantiation per type, so that the block loop holds no type
            // tests (LEGACY[T] folds to a constant).
            DType::Q4_0 => by_k!(legacy, 0),
            DType::Q4BF16_1 => by_k!(legacy, 1),
            DType::Q5_0 => by_k!(legacy, 2),
            DType::Q8_0 => by_k!(legacy, 3),
            DType::Q4_1 => by_k!(legacy, 4),
            DType::Q5_1 => by_k!(legacy, 5),
            DType::Q4_K => by_k!(q45k, false),
            DType::Q5_K => by_k!(q45k, true),
            DType::Q6_K => by_k!(q6k),
            DType::F32 | DType::F16 | DType::BF16 => {
                for j in 0..k {
                    *out.add(j) = float_dot(w, n, wr, a.add(j * stride) as *const f32);
                }
            }
            other => panic!(
                "dot: weight type {other} is not executed; executed: {}",
                alc_core::executed_type_list()
            ),
        }
    }
}

/// Bytes 0..16 of `b`'s bit mask `1 << (i % 8)` for element i: the selector that
/// turns a 32-bit `qh` (bit i = element i's fifth bit) into one byte per element.
const BIT_OF: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

/// Elements 0..16 and 16..32 of a Q5_0/Q5_1 block's fifth bits, as 0 or 16 per byte.
#[inline(always)]
unsafe fn q5_high(qh: *const u8) -> (uint8x16_t, uint8x16_t) {
    unsafe {
        let bits = u32::from_le_bytes(std::ptr::read_unaligned(qh as *const [u8; 4]));
        let bytes = vreinterpretq_u8_u32(vdupq_n_u32(bits));
        const LO: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
        const HI: [u8; 16] = [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
        let sel = vld1q_u8(BIT_OF.as_ptr());
        let sixteen = vdupq_n_u8(16);
        let pick = |idx: &[u8; 16]| {
            let b = vqtbl1q_u8(bytes, vld1q_u8(idx.as_ptr()));
            vandq_u8(vtstq_u8(b, sel), sixteen)
        };
        (pick(&LO), pick(&HI))
    }
}

/// The legacy 32-element types, [`LEGACY`]`[T]`.
const LEGACY: [DType; 6] = [
    DType::Q4_0,
    DType::Q4BF16_1,
    DType::Q5_0,
    DType::Q8_0,
    DType::Q4_1,
    DType::Q5_1,
];

/// The legacy 32-element types: Q4_0, Q4BF16_1, Q5_0, Q8_0 against Q8_0
/// activations; Q4_1, Q5_1 (with a min) against Q8_1. `T` indexes [`LEGACY`].
#[inline(always)]
unsafe fn legacy<D: Dot, const K: usize, const T: usize>(
    n: usize,
    wr: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe {
        let w = LEGACY[T];
        // Bytes per weight block and per activation block, and where the quants start.
        let (wbb, abb) = match w {
            DType::Q4_0 | DType::Q4BF16_1 => (18, 34),
            DType::Q5_0 => (22, 34),
            DType::Q8_0 => (34, 34),
            DType::Q4_1 => (20, 36),
            _ => (24, 36), // Q5_1
        };
        let with_min = matches!(w, DType::Q4_1 | DType::Q5_1);
        let mut acc = [vdupq_n_f32(0.0); K];
        let mut mins = [0f32; K];
        let low = vdupq_n_u8(0x0F);
        for b in 0..n / 32 {
            let x = wr.add(b * wbb);
            let h2 = |p: *const u8| std::ptr::read_unaligned(p as *const [u8; 2]);
            let (lo, hi, d, m) = match w {
                DType::Q8_0 => (
                    vld1q_s8(x.add(2) as *const i8),
                    vld1q_s8(x.add(18) as *const i8),
                    f16_to_f32(h2(x)),
                    0.0,
                ),
                _ => {
                    let qs = vld1q_u8(x.add(wbb - 16));
                    let (mut l, mut h) = (vandq_u8(qs, low), vshrq_n_u8::<4>(qs));
                    let q5 = matches!(w, DType::Q5_0 | DType::Q5_1);
                    if q5 {
                        let (hl, hh) = q5_high(x.add(wbb - 20));
                        l = vorrq_u8(l, hl);
                        h = vorrq_u8(h, hh);
                    }
                    // Signed weights: subtract the type's zero point (unsigned 0..=31
                    // stays as is for the types with a min).
                    let zero = match w {
                        DType::Q4_0 | DType::Q4BF16_1 => 8,
                        DType::Q5_0 => 16,
                        _ => 0,
                    };
                    let z = vdupq_n_s8(zero);
                    let d = if w == DType::Q4BF16_1 {
                        bf16_to_f32(h2(x))
                    } else {
                        f16_to_f32(h2(x))
                    };
                    let m = if with_min {
                        f16_to_f32(h2(x.add(2)))
                    } else {
                        0.0
                    };
                    (
                        vsubq_s8(vreinterpretq_s8_u8(l), z),
                        vsubq_s8(vreinterpretq_s8_u8(h), z),
                        d,
                        m,
                    )
                }
            };
            for j in 0..K {
                let y = a.add(j * stride + b * abb);
                let yq = y.add(abb - 32) as *const i8;
                let s = D::dot(vdupq_n_s32(0), lo, vld1q_s8(yq));
                let s = D::dot(s, hi, vld1q_s8(yq.add(16)));
                let dy = f16_to_f32(h2(y));
                acc[j] = vfmaq_n_f32(acc[j], vcvtq_f32_s32(s), d * dy);
                if with_min {
                    mins[j] += m * f16_to_f32(h2(y.add(2)));
                }
            }
        }
        for j in 0..K {
            *out.add(j) = vaddvq_f32(acc[j]) + mins[j];
        }
    }
}

/// Q4_K and Q5_K (`Q5`: with the fifth bits) against Q8_K activations.
#[inline(always)]
unsafe fn q45k<D: Dot, const K: usize, const Q5: bool>(
    n: usize,
    wr: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe {
        let wbb = if Q5 {
            std::mem::size_of::<BlockQ5K>()
        } else {
            std::mem::size_of::<BlockQ4K>()
        };
        let abb = std::mem::size_of::<BlockQ8K>();
        let mut acc = [0f32; K];
        let low = vdupq_n_u8(0x0F);
        for b in 0..n / QK_K {
            let x = wr.add(b * wbb);
            let h2 = |p: *const u8| std::ptr::read_unaligned(p as *const [u8; 2]);
            let (d, dmin) = (f16_to_f32(h2(x)), f16_to_f32(h2(x.add(2))));
            let (sc, m) = unpack_k_scales(&std::ptr::read_unaligned(x.add(4) as *const [u8; 12]));
            // Q5_K: qh (32 bytes) before qs; Q4_K: qs right after the scales.
            let (qh, qs) = if Q5 {
                (x.add(16), x.add(48))
            } else {
                (x, x.add(16))
            };
            let mut sumi = [vdupq_n_s32(0); K];
            for c in 0..4 {
                let v0 = vld1q_u8(qs.add(32 * c));
                let v1 = vld1q_u8(qs.add(32 * c + 16));
                let (mut l0, mut l1) = (vandq_u8(v0, low), vandq_u8(v1, low));
                let (mut h0, mut h1) = (vshrq_n_u8::<4>(v0), vshrq_n_u8::<4>(v1));
                if Q5 {
                    let (b0, b1) = (vld1q_u8(qh), vld1q_u8(qh.add(16)));
                    let sixteen = vdupq_n_u8(16);
                    let bit = |v: uint8x16_t, s: u8| vandq_u8(vtstq_u8(v, vdupq_n_u8(s)), sixteen);
                    let (sl, sh) = (1u8 << (2 * c), 1u8 << (2 * c + 1));
                    l0 = vorrq_u8(l0, bit(b0, sl));
                    l1 = vorrq_u8(l1, bit(b1, sl));
                    h0 = vorrq_u8(h0, bit(b0, sh));
                    h1 = vorrq_u8(h1, bit(b1, sh));
                }
                let q = [l0, l1, h0, h1].map(|v| vreinterpretq_s8_u8(v));
                for j in 0..K {
                    let y = a.add(j * stride + b * abb + 4 + 64 * c) as *const i8;
                    let pl = D::dot(
                        D::dot(vdupq_n_s32(0), q[0], vld1q_s8(y)),
                        q[1],
                        vld1q_s8(y.add(16)),
                    );
                    let ph = D::dot(
                        D::dot(vdupq_n_s32(0), q[2], vld1q_s8(y.add(32))),
                        q[3],
                        vld1q_s8(y.add(48)),
                    );
                    sumi[j] = vmlaq_n_s32(sumi[j], pl, i32::from(sc[2 * c]));
                    sumi[j] = vmlaq_n_s32(sumi[j], ph, i32::from(sc[2 * c + 1]));
                }
            }
            for j in 0..K {
                let y = a.add(j * stride + b * abb);
                let dy = f32::from_le_bytes(std::ptr::read_unaligned(y as *const [u8; 4]));
                let bs = |g: usize| {
                    i32::from(i16::from_le_bytes(std::ptr::read_unaligned(
                        y.add(4 + QK_K + 2 * g) as *const [u8; 2],
                    )))
                };
                let summ: i32 = (0..8)
                    .map(|s| i32::from(m[s]) * (bs(2 * s) + bs(2 * s + 1)))
                    .sum();
                acc[j] += dy * d * vaddvq_s32(sumi[j]) as f32 - dy * dmin * summ as f32;
            }
        }
        for j in 0..K {
            *out.add(j) = acc[j];
        }
    }
}

/// Q6_K against Q8_K activations: 6-bit quants minus 32, an i8 scale per 16.
#[inline(always)]
unsafe fn q6k<D: Dot, const K: usize>(
    n: usize,
    wr: *const u8,
    a: *const u8,
    stride: usize,
    out: *mut f32,
) {
    unsafe {
        let wbb = std::mem::size_of::<BlockQ6K>();
        let abb = std::mem::size_of::<BlockQ8K>();
        let mut acc = [0f32; K];
        let (low, three, m32) = (vdupq_n_u8(0x0F), vdupq_n_u8(3), vdupq_n_s8(32));
        for b in 0..n / QK_K {
            let x = wr.add(b * wbb);
            let (ql, qh, scales) = (x, x.add(128), x.add(192) as *const i8);
            let d = f16_to_f32(std::ptr::read_unaligned(x.add(208) as *const [u8; 2]));
            let mut sumi = [vdupq_n_s32(0); K];
            for h in 0..2 {
                for half in 0..2 {
                    // Elements 128h + 16·half + {0, 32, 64, 96} + 0..16.
                    let l = 16 * half;
                    let a0 = vld1q_u8(ql.add(64 * h + l));
                    let a1 = vld1q_u8(ql.add(64 * h + l + 32));
                    let hb = vld1q_u8(qh.add(32 * h + l));
                    let six = |nib: uint8x16_t, shift: i32| {
                        let hi = match shift {
                            0 => vandq_u8(hb, three),
                            2 => vandq_u8(vshrq_n_u8::<2>(hb), three),
                            4 => vandq_u8(vshrq_n_u8::<4>(hb), three),
                            _ => vshrq_n_u8::<6>(hb),
                        };
                        vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(nib, vshlq_n_u8::<4>(hi))), m32)
                    };
                    let q = [
                        six(vandq_u8(a0, low), 0),
                        six(vandq_u8(a1, low), 2),
                        six(vshrq_n_u8::<4>(a0), 4),
                        six(vshrq_n_u8::<4>(a1), 6),
                    ];
                    for (r, qv) in q.iter().enumerate() {
                        let e = 128 * h + 32 * r + l; // first element of this vector
                        let s = i32::from(*scales.add(e / 16));
                        for j in 0..K {
                            let y = a.add(j * stride + b * abb + 4 + e) as *const i8;
                            let p = D::dot(vdupq_n_s32(0), *qv, vld1q_s8(y));
                            sumi[j] = vmlaq_n_s32(sumi[j], p, s);
                        }
                    }
                }
            }
            for j in 0..K {
                let y = a.add(j * stride + b * abb);
                let dy = f32::from_le_bytes(std::ptr::read_unaligned(y as *const [u8; 4]));
                acc[j] += dy * d * vaddvq_s32(sumi[j]) as f32;
            }
        }
        for j in 0..K {
            *out.add(j) = acc[j];
        }
    }
}

/// F32 / F16 / BF16 weights against f32 activations: four f32 accumulators of four
/// lanes, and a scalar tail.
#[inline(always)]
unsafe fn float_dot(w: DType, n: usize, wr: *const u8, x: *const f32) -> f32 {
    unsafe {
        let load = |i: usize| -> float32x4_t {
            match w {
                DType::F32 => vld1q_f32((wr as *const f32).add(i)),
                DType::BF16 => {
                    let h = vld1_u16((wr as *const u16).add(i));
                    vreinterpretq_f32_u32(vshll_n_u16::<16>(h))
                }
                _ => {
                    // `fcvtl` widens four f16 to f32 (base Armv8 SIMD; the intrinsic
                    // and its f16 vector type are not stable).
                    let h = vld1_u16((wr as *const u16).add(i));
                    let f: float32x4_t;
                    std::arch::asm!(
                        "fcvtl {f:v}.4s, {h:v}.4h",
                        f = out(vreg) f,
                        h = in(vreg) h,
                        options(pure, nomem, nostack, preserves_flags)
                    );
                    f
                }
            }
        };
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for (u, a) in acc.iter_mut().enumerate() {
                *a = vfmaq_f32(*a, load(i + 4 * u), vld1q_f32(x.add(i + 4 * u)));
            }
            i += 16;
        }
        while i + 4 <= n {
            acc[0] = vfmaq_f32(acc[0], load(i), vld1q_f32(x.add(i)));
            i += 4;
        }
        let mut s = vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ));
        while i < n {
            let wv = match w {
                DType::F32 => std::ptr::read_unaligned((wr as *const f32).add(i)),
                DType::BF16 => {
                    bf16_to_f32(std::ptr::read_unaligned(wr.add(2 * i) as *const [u8; 2]))
                }
                _ => f16_to_f32(std::ptr::read_unaligned(wr.add(2 * i) as *const [u8; 2])),
            };
            s += wv * std::ptr::read_unaligned(x.add(i));
            i += 1;
        }
        s
    }
}
