//! Block layouts of the quantized formats, bit-exact with ggml / GGUF.
//!
//! Every struct is `#[repr(C)]` and made only of byte arrays, so its alignment is 1
//! and every bit pattern is valid: a block can be viewed in place inside an mmap-ed
//! tensor whatever the offset of the row (GGUF aligns the tensor, not the rows).
//! Multi-byte fields are little-endian and read through accessors.
//!
//! Source of the layouts: ggml's `ggml-common.h` (`block_q4_0` … `block_q8_K`);
//! the Q5_0 / Q5_1 bit order checked against ggml's `dequantize_row_q5_0/1`.

use std::mem::{align_of, size_of};

/// Elements of a Q4_0 / Q4_1 / Q8_0 / Q8_1 block.
pub const QK: usize = 32;
/// Elements of a K-quant super-block.
pub const QK_K: usize = 256;

/// Marker for plain-old-data block types: `#[repr(C)]`, alignment 1, any bit
/// pattern valid, no padding.
///
/// # Safety
/// Implement only for types made exclusively of `u8`/`i8` arrays (alignment 1, no
/// padding, no invalid bit patterns).
pub unsafe trait Block: Copy + 'static {
    /// Elements per block.
    const ELEMS: usize;
    /// Bytes per block (`size_of::<Self>()`).
    const BYTES: usize = size_of::<Self>();
}

/// View a byte slice as a slice of blocks. Errors if the length is not a whole
/// number of blocks.
pub fn cast_blocks<T: Block>(bytes: &[u8]) -> Option<&[T]> {
    debug_assert_eq!(align_of::<T>(), 1);
    if !bytes.len().is_multiple_of(T::BYTES) {
        return None;
    }
    let n = bytes.len() / T::BYTES;
    // SAFETY: T is alignment 1, has no padding and accepts any bit pattern (Block
    // contract); the slice covers exactly n * size_of::<T>() initialised bytes.
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), n) })
}

/// Mutable counterpart of [`cast_blocks`].
pub fn cast_blocks_mut<T: Block>(bytes: &mut [u8]) -> Option<&mut [T]> {
    debug_assert_eq!(align_of::<T>(), 1);
    if !bytes.len().is_multiple_of(T::BYTES) {
        return None;
    }
    let n = bytes.len() / T::BYTES;
    // SAFETY: as in cast_blocks; the exclusive borrow is carried over.
    Some(unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<T>(), n) })
}

/// Bytes of a block as a slice.
pub fn block_bytes<T: Block>(b: &T) -> &[u8] {
    // SAFETY: Block types are plain bytes without padding.
    unsafe { std::slice::from_raw_parts((b as *const T).cast::<u8>(), T::BYTES) }
}

#[inline(always)]
pub fn f16_to_f32(bits: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(bits)).to_f32()
}

/// f32 → IEEE half, round to nearest even (what F16C's `vcvtps2ph` with
/// rounding mode 0 and ggml's `GGML_FP32_TO_FP16` do).
#[inline(always)]
pub fn f32_to_f16(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

/// bf16 → f32 (exact).
#[inline(always)]
pub fn bf16_to_f32(bits: [u8; 2]) -> f32 {
    f32::from_bits((u16::from_le_bytes(bits) as u32) << 16)
}

/// f32 → bf16, round to nearest even; NaN stays NaN (made quiet), as ggml's
/// `GGML_FP32_TO_BF16`.
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> [u8; 2] {
    let u = x.to_bits();
    let h = if (u & 0x7fff_ffff) > 0x7f80_0000 {
        (u >> 16) | 64
    } else {
        (u + (0x7fff + ((u >> 16) & 1))) >> 16
    };
    (h as u16).to_le_bytes()
}

macro_rules! block {
    ($(#[$m:meta])* $name:ident, $elems:expr, $bytes:expr, { $($(#[$fm:meta])* $f:ident : [$t:ty; $n:expr]),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name { $($(#[$fm])* pub $f: [$t; $n]),* }
        const _: () = assert!(size_of::<$name>() == $bytes);
        const _: () = assert!(align_of::<$name>() == 1);
        // SAFETY: only u8/i8 arrays, alignment 1 (asserted above), no padding (size
        // asserted equal to the sum of the fields).
        unsafe impl Block for $name {
            const ELEMS: usize = $elems;
        }
        impl $name {
            /// All-zero block.
            pub const fn zeroed() -> Self {
                Self { $($f: [0 as $t; $n]),* }
            }
        }
        impl Default for $name {
            fn default() -> Self {
                Self::zeroed()
            }
        }
    };
}

block!(
    /// Q4_0: 32 × 4-bit, value = (q − 8)·d. Element j (0..16) is the low nibble of
    /// `qs[j]`, element j+16 the high nibble.
    BlockQ4_0, QK, 18, { d: [u8; 2], qs: [u8; 16] }
);
block!(
    /// Q4BF16_1 (alc's type 1024): Q4_0 with a bf16 scale. 32 × 4-bit,
    /// value = (q − 8)·d, nibble order as Q4_0.
    BlockQ4BF16, QK, 18, { d: [u8; 2], qs: [u8; 16] }
);
block!(
    /// Q4_1: 32 × 4-bit, value = q·d + m. Nibble order as Q4_0.
    BlockQ4_1, QK, 20, { d: [u8; 2], m: [u8; 2], qs: [u8; 16] }
);
block!(
    /// Q5_0: 32 × 5-bit, value = (q − 16)·d. The low four bits are nibbles as in
    /// Q4_0 (element j < 16: low nibble of `qs[j]`, element j + 16: high nibble);
    /// the fifth bit of element j is bit j of `qh` read as a little-endian u32.
    BlockQ5_0, QK, 22, { d: [u8; 2], qh: [u8; 4], qs: [u8; 16] }
);
block!(
    /// Q5_1: 32 × 5-bit, value = q·d + m. Bit layout as Q5_0.
    BlockQ5_1, QK, 24, { d: [u8; 2], m: [u8; 2], qh: [u8; 4], qs: [u8; 16] }
);
block!(
    /// Q8_0: 32 × i8, value = q·d.
    BlockQ8_0, QK, 34, { d: [u8; 2], qs: [i8; 32] }
);
block!(
    /// Q8_1: 32 × i8, value = q·d; `s` = d·Σq (activation format of Q4_1).
    BlockQ8_1, QK, 36, { d: [u8; 2], s: [u8; 2], qs: [i8; 32] }
);
block!(
    /// Q8_K: 256 × i8 with an f32 scale and the sums of each 16 quants
    /// (activation format of the K-quants).
    BlockQ8K, QK_K, 292, { d: [u8; 4], qs: [i8; 256], bsums: [u8; 32] }
);
block!(
    /// Q4_K: 8 sub-blocks of 32, 6-bit scales and mins, value = d·sc·q − dmin·m.
    BlockQ4K, QK_K, 144, { d: [u8; 2], dmin: [u8; 2], scales: [u8; 12], qs: [u8; 128] }
);
block!(
    /// Q5_K: as Q4_K plus a fifth bit per element in `qh`.
    BlockQ5K, QK_K, 176, { d: [u8; 2], dmin: [u8; 2], scales: [u8; 12], qh: [u8; 32], qs: [u8; 128] }
);
block!(
    /// Q6_K: 16 groups of 16, 8-bit signed scales, value = d·sc·(q − 32).
    BlockQ6K, QK_K, 210, { ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: [u8; 2] }
);

/// Element `i` (0..32) of 16 bytes of nibbles in Q4_0's order: element j < 16 is
/// the low nibble of byte j, element j + 16 its high nibble.
#[inline(always)]
pub fn nibble(qs: &[u8; 16], i: usize) -> u8 {
    if i < 16 {
        qs[i] & 0xF
    } else {
        qs[i - 16] >> 4
    }
}

impl BlockQ4_0 {
    pub fn d(&self) -> f32 {
        f16_to_f32(self.d)
    }
    /// Quant (0..16) of element `i`.
    pub fn q(&self, i: usize) -> u8 {
        nibble(&self.qs, i)
    }
}

/// The readers view Q4BF16_1 rows as [`BlockQ4_0`] (same layout) and decode the scale
/// with [`bf16_to_f32`]; this type is the writer's.
impl BlockQ4BF16 {
    pub fn d(&self) -> f32 {
        bf16_to_f32(self.d)
    }
}

impl BlockQ4_1 {
    pub fn d(&self) -> f32 {
        f16_to_f32(self.d)
    }
    pub fn m(&self) -> f32 {
        f16_to_f32(self.m)
    }
    pub fn q(&self, i: usize) -> u8 {
        nibble(&self.qs, i)
    }
}

/// Quant (0..32) of element `i` of a Q5_0 / Q5_1 block from its `qh` and `qs`.
#[inline(always)]
fn q5_at(qh: &[u8; 4], qs: &[u8; 16], i: usize) -> u8 {
    let nib = if i < 16 { qs[i] & 0xF } else { qs[i - 16] >> 4 };
    let hi = ((u32::from_le_bytes(*qh) >> i) & 1) as u8;
    nib | (hi << 4)
}

/// Pack 32 five-bit quants (0..32, element order) into (`qh`, `qs`).
#[inline(always)]
fn q5_pack(q: &[u8; 32]) -> ([u8; 4], [u8; 16]) {
    let mut qh = 0u32;
    let mut qs = [0u8; 16];
    for j in 0..16 {
        qs[j] = (q[j] & 0xF) | ((q[j + 16] & 0xF) << 4);
        qh |= (((q[j] >> 4) & 1) as u32) << j;
        qh |= (((q[j + 16] >> 4) & 1) as u32) << (j + 16);
    }
    (qh.to_le_bytes(), qs)
}

impl BlockQ5_0 {
    pub fn d(&self) -> f32 {
        f16_to_f32(self.d)
    }
    /// Quant (0..32) of element `i`; the value is (q − 16)·d.
    pub fn q(&self, i: usize) -> u8 {
        q5_at(&self.qh, &self.qs, i)
    }
    /// Store 32 quants (0..32, element order) into `qh` / `qs`.
    pub fn set_quants(&mut self, q: &[u8; 32]) {
        (self.qh, self.qs) = q5_pack(q);
    }
}

impl BlockQ5_1 {
    pub fn d(&self) -> f32 {
        f16_to_f32(self.d)
    }
    pub fn m(&self) -> f32 {
        f16_to_f32(self.m)
    }
    /// Quant (0..32) of element `i`; the value is q·d + m.
    pub fn q(&self, i: usize) -> u8 {
        q5_at(&self.qh, &self.qs, i)
    }
    /// Store 32 quants (0..32, element order) into `qh` / `qs`.
    pub fn set_quants(&mut self, q: &[u8; 32]) {
        (self.qh, self.qs) = q5_pack(q);
    }
}

impl BlockQ8_0 {
    pub fn d(&self) -> f32 {
        f16_to_f32(self.d)
    }
}

impl BlockQ8_1 {
    pub fn d(&self) -> f32 {
        f16_to_f32(self.d)
    }
    pub fn s(&self) -> f32 {
        f16_to_f32(self.s)
    }
}

impl BlockQ8K {
    pub fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }
    pub fn bsum(&self, g: usize) -> i16 {
        i16::from_le_bytes([self.bsums[2 * g], self.bsums[2 * g + 1]])
    }
    pub fn set_bsum(&mut self, g: usize, v: i16) {
        let b = v.to_le_bytes();
        self.bsums[2 * g] = b[0];
        self.bsums[2 * g + 1] = b[1];
    }
}

/// Unpack the 12 bytes of Q4_K / Q5_K scales into 8 six-bit scales and 8 six-bit
/// mins. Sub-block j < 4: `sc = s[j] & 63`, `m = s[j+4] & 63`; j ≥ 4: the low 4 bits
/// come from s[j+4] (scale: low nibble, min: high nibble) and the top 2 bits from
/// the top bits of `s[j−4]` (scale) and `s[j]` (min).
#[inline(always)]
pub fn unpack_k_scales(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
    }
    for j in 4..8 {
        sc[j] = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        m[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
    (sc, m)
}

/// Inverse of [`unpack_k_scales`]; inputs must be < 64.
pub fn pack_k_scales(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4);
    }
    s
}

impl BlockQ4K {
    pub fn d(&self) -> f32 {
        f16_to_f32(self.d)
    }
    pub fn dmin(&self) -> f32 {
        f16_to_f32(self.dmin)
    }
}

impl BlockQ5K {
    pub fn d(&self) -> f32 {
        f16_to_f32(self.d)
    }
    pub fn dmin(&self) -> f32 {
        f16_to_f32(self.dmin)
    }
}

impl BlockQ6K {
    pub fn d(&self) -> f32 {
        f16_to_f32(self.d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_dtype() {
        use alc_core::DType;
        assert_eq!(BlockQ4_0::BYTES, DType::Q4_0.block_bytes());
        assert_eq!(BlockQ4_1::BYTES, DType::Q4_1.block_bytes());
        assert_eq!(BlockQ5_0::BYTES, DType::Q5_0.block_bytes());
        assert_eq!(BlockQ5_1::BYTES, DType::Q5_1.block_bytes());
        assert_eq!(BlockQ8_0::BYTES, DType::Q8_0.block_bytes());
        assert_eq!(BlockQ8_1::BYTES, DType::Q8_1.block_bytes());
        assert_eq!(BlockQ8K::BYTES, DType::Q8_K.block_bytes());
        assert_eq!(BlockQ4K::BYTES, DType::Q4_K.block_bytes());
        assert_eq!(BlockQ5K::BYTES, DType::Q5_K.block_bytes());
        assert_eq!(BlockQ6K::BYTES, DType::Q6_K.block_bytes());
    }

    #[test]
    fn k_scales_round_trip() {
        for seed in 0..64u32 {
            let sc: [u8; 8] = std::array::from_fn(|j| ((seed * 7 + j as u32 * 13) % 64) as u8);
            let m: [u8; 8] = std::array::from_fn(|j| ((seed * 11 + j as u32 * 5 + 3) % 64) as u8);
            let packed = pack_k_scales(&sc, &m);
            assert_eq!(unpack_k_scales(&packed), (sc, m));
        }
    }

    #[test]
    fn q5_pack_round_trip() {
        for seed in 0..32u32 {
            let q: [u8; 32] = std::array::from_fn(|i| ((seed * 13 + i as u32 * 7) % 32) as u8);
            let mut b = BlockQ5_0::zeroed();
            b.set_quants(&q);
            assert!((0..32).all(|i| b.q(i) == q[i]));
            let mut b = BlockQ5_1::zeroed();
            b.set_quants(&q);
            assert!((0..32).all(|i| b.q(i) == q[i]));
        }
    }

    #[test]
    fn cast_checks_length_and_offset() {
        let bytes = vec![0u8; 18 * 3 + 1];
        assert!(cast_blocks::<BlockQ4_0>(&bytes).is_none());
        // An odd offset is fine: alignment 1.
        assert_eq!(cast_blocks::<BlockQ4_0>(&bytes[1..]).unwrap().len(), 3);
    }

    #[test]
    fn bf16_rounding() {
        assert_eq!(u16::from_le_bytes(f32_to_bf16(1.0)), 0x3f80);
        // 1 + 2^-8 is a tie between 1.0 and 1 + 2^-7: rounds to even (1.0).
        assert_eq!(u16::from_le_bytes(f32_to_bf16(1.0 + 1.0 / 256.0)), 0x3f80);
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
        assert_eq!(bf16_to_f32(f32_to_bf16(-2.5)), -2.5);
    }
}
