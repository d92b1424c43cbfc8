//! alc-quant: quantized block formats and the hot dot-product kernels.
//!
//! Design note. Block layouts are ggml's, bit-exact ([`blocks`]: `#[repr(C)]` byte
//! structs, alignment 1, so rows can be viewed in place at any offset of an mmap).
//! [`reference`](mod@reference) is the scalar truth: quantize / dequantize / quantize_act / dot,
//! written from ggml's formulas. The SIMD kernels (`avx2`, x86-64 with AVX2+FMA+F16C)
//! take one weight row and 1..=4 activation rows (`const K`): each weight block is
//! unpacked into registers once and multiplied against the K rows, so the decode
//! path (K = 1) streams weights at memory bandwidth and the prompt path (K = 4)
//! amortises the unpacking. Integer products use `vpmaddubsw` (unsigned weight ×
//! signed activation) and `vpmaddwd`, then one FMA per block folds the block scale
//! in; f16 block scales go through a 256 KiB lookup table (no ALU work) and K = 1
//! prefetches the weight row 2 KiB ahead. The ISA is detected once ([`isa`]) and
//! cached in a `OnceLock`; the hot entry [`dot`] does one cached load, two matches
//! and two length asserts (a few cycles; they keep the safe signature sound).
//!
//! Activation quantization reproduces what llama.cpp computes on x86 (Q8_0/Q8_1 as
//! its AVX2 path, Q8_K as `quantize_row_q8_K_ref`), SIMD and scalar bit-identical.
//! One deliberate difference: F16/BF16 weights take f32 activations here, where
//! ggml first rounds the activations to f16/bf16.

// Index loops mirror the byte tables of the formats; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

/// `$vis fn $name(args) -> ret` that runs the `#[inline(always)]` function `$body`
/// compiled for AVX2 where the CPU has it, and as it is elsewhere: the same source
/// (scalar code that LLVM may vectorise). Float operations keep their order (Rust
/// never fuses or reassociates them) and integer sums are exact, so both builds give
/// the same bits, the AVX2 one faster. Used by the scalar reference paths that run
/// outside tests (compile's quantisation and the self-check).
#[macro_export]
macro_rules! avx2_clone {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:path) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

pub mod blocks;
pub mod packed;
pub mod reference;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

pub use alc_core::DType;
use std::sync::OnceLock;

/// Weight types that [`quantize`] and [`dot`] accept.
pub const WEIGHT_TYPES: [DType; alc_core::EXECUTED_TYPES.len()] = alc_core::EXECUTED_TYPES;

/// Types that [`dequantize`] accepts.
pub const DEQUANT_TYPES: [DType; 14] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q8_0,
    DType::Q8_1,
    DType::Q4_K,
    DType::Q5_K,
    DType::Q6_K,
    DType::Q8_K,
    DType::Q4BF16_1,
];

fn list(types: &[DType]) -> String {
    types
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Errors of this crate; every message carries the offending values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuantError {
    #[error("{op}: {dtype} is not supported; supported: {supported}")]
    UnsupportedType {
        dtype: DType,
        op: &'static str,
        supported: String,
    },
    #[error("{what}: need at least {expected} bytes/elements, got {got}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{what}: {n} elements is not a multiple of the {dtype} block size {block}")]
    RaggedLength {
        dtype: DType,
        n: usize,
        block: usize,
        what: &'static str,
    },
}

impl QuantError {
    pub(crate) fn unsupported(dtype: DType, op: &'static str) -> Self {
        let supported = match op {
            "dequantize" => list(&DEQUANT_TYPES),
            _ => list(&WEIGHT_TYPES),
        };
        QuantError::UnsupportedType {
            dtype,
            op,
            supported,
        }
    }
}

/// Activation format that a weight type's dot product consumes:
/// Q4_0, Q5_0, Q8_0, Q4BF16_1 → Q8_0; Q4_1, Q5_1 → Q8_1; Q4_K, Q5_K, Q6_K → Q8_K;
/// F32, F16, BF16 → F32.
pub fn act_type(w: DType) -> Result<DType, QuantError> {
    Ok(match w {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 | DType::Q4BF16_1 => DType::Q8_0,
        DType::Q4_1 | DType::Q5_1 => DType::Q8_1,
        DType::Q4_K | DType::Q5_K | DType::Q6_K => DType::Q8_K,
        DType::F32 | DType::F16 | DType::BF16 => DType::F32,
        other => return Err(QuantError::unsupported(other, "act_type")),
    })
}

/// Bytes of one quantized activation row of `n` elements for weight type `w`.
pub fn act_row_bytes(w: DType, n: usize) -> Result<usize, QuantError> {
    let a = act_type(w)?;
    let bs = a.block_size();
    if !n.is_multiple_of(bs) {
        return Err(QuantError::RaggedLength {
            dtype: a,
            n,
            block: bs,
            what: "act_row_bytes",
        });
    }
    Ok(n / bs * a.block_bytes())
}

/// Kernel set chosen once per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// aarch64 NEON; `dotprod`: with the Armv8.2 int8 dot product (`sdot`).
    #[cfg(target_arch = "aarch64")]
    Neon {
        dotprod: bool,
    },
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var_os("ALC_QUANT_FORCE_SCALAR").is_none()
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            return Isa::Avx2;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::env::var_os("ALC_QUANT_FORCE_SCALAR").is_none() {
            let dotprod = std::env::var_os("ALC_QUANT_NO_DOTPROD").is_none()
                && std::arch::is_aarch64_feature_detected!("dotprod");
            return Isa::Neon { dotprod };
        }
    }
    Isa::Scalar
}

static ISA: OnceLock<Isa> = OnceLock::new();

/// Whether the AVX-512 VNNI kernels of packed weights run here (on top of the AVX2
/// set; off with `ALC_QUANT_NO_AVX512` or `ALC_QUANT_FORCE_SCALAR`).
#[cfg(target_arch = "x86_64")]
fn vnni512_cached() -> bool {
    static VNNI: OnceLock<bool> = OnceLock::new();
    *VNNI.get_or_init(|| isa_cached() == Isa::Avx2 && avx512::detect())
}

/// Whether the 8-row packed kernels of Q4_0/Q4_1/Q5_0 use AVX-VNNI (VEX
/// `vpdpbusd`: Intel cores since Alder Lake, AMD since Zen 5). Off with
/// `ALC_QUANT_NO_AVXVNNI` (or on the scalar path).
#[cfg(target_arch = "x86_64")]
fn avxvnni_cached() -> bool {
    static VNNI: OnceLock<bool> = OnceLock::new();
    *VNNI.get_or_init(|| {
        isa_cached() == Isa::Avx2
            && std::env::var_os("ALC_QUANT_NO_AVXVNNI").is_none()
            && is_x86_feature_detected!("avxvnni")
    })
}

#[inline(always)]
fn isa_cached() -> Isa {
    *ISA.get_or_init(detect)
}

/// Name of the selected kernel set, e.g. "avx2+fma+f16c" or "scalar".
/// `ALC_QUANT_FORCE_SCALAR` in the environment (read once) forces "scalar".
pub fn isa() -> &'static str {
    match isa_cached() {
        Isa::Scalar => "scalar",
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => match (avxvnni_cached(), vnni512_cached()) {
            (false, false) => "avx2+fma+f16c",
            (true, false) => "avx2+fma+f16c+avxvnni",
            (false, true) => "avx2+fma+f16c+avx512vnni",
            (true, true) => "avx2+fma+f16c+avxvnni+avx512vnni",
        },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon { dotprod: true } => "neon+dotprod",
        #[cfg(target_arch = "aarch64")]
        Isa::Neon { dotprod: false } => "neon",
    }
}

/// Quantize one f32 activation row `x` (len n, multiple of the block size) into the
/// activation format of weight type `w`, writing act_row_bytes(w, n) bytes to `out`.
/// (For F32/F16/BF16 weights this is a plain copy of the f32 bytes.) SIMD-dispatched;
/// the SIMD result is bit-identical to [`reference::quantize_act`].
pub fn quantize_act(w: DType, x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    let need = act_row_bytes(w, x.len())?;
    if out.len() < need {
        return Err(QuantError::LengthMismatch {
            what: "quantize_act output bytes",
            expected: need,
            got: out.len(),
        });
    }
    match isa_cached() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: AVX2+FMA+F16C detected; lengths checked above.
            unsafe { avx2::quantize_act(act_type(w)?, x, &mut out[..need]) };
            Ok(())
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon { .. } => reference::quantize_act(w, x, out),
        Isa::Scalar => reference::quantize_act(w, x, out),
    }
}

/// `out[j] = dot(weight row, activation row j)` for j in 0..k, 1 <= k <= 4.
///
/// `w_row`: one weight row of n elements of type `w` (row_bytes(n) bytes).
/// `acts`: k activation rows, each act_row_bytes(w, n) bytes, row j starting at
/// j*act_stride. SIMD-dispatched. Hot path: no allocation; the caller validated the
/// shapes, and what is left here are three `assert!`s on buffer lengths (a few
/// cycles; they keep this safe function sound) and debug_asserts on the rest.
/// Quantized activations must come from [`quantize_act`] (i8 quants in −127..=127).
#[inline]
pub fn dot(
    w: DType,
    n: usize,
    w_row: &[u8],
    acts: &[u8],
    act_stride: usize,
    k: usize,
    out: &mut [f32],
) {
    let wbytes = check_dot_args("dot", w, n, acts, act_stride, k, 4);
    assert!(
        out.len() >= k,
        "dot: k = {k} outputs but out.len() = {}",
        out.len()
    );
    assert!(
        w_row.len() >= wbytes,
        "dot: weight row has {} bytes, need {wbytes}",
        w_row.len()
    );
    match isa_cached() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: AVX2+FMA+F16C detected; buffer lengths asserted above.
            unsafe {
                avx2::dot(
                    w,
                    n,
                    w_row.as_ptr(),
                    acts.as_ptr(),
                    act_stride,
                    k,
                    out.as_mut_ptr(),
                )
            }
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon { dotprod } => {
            let (wp, ap, op) = (w_row.as_ptr(), acts.as_ptr(), out.as_mut_ptr());
            // SAFETY: NEON is part of every aarch64 CPU and `dotprod` was detected;
            // buffer lengths asserted above.
            unsafe {
                if dotprod {
                    neon::dot_sdot(w, n, wp, ap, act_stride, k, op)
                } else {
                    neon::dot_widen(w, n, wp, ap, act_stride, k, op)
                }
            }
        }
        Isa::Scalar => reference::dot(w, n, w_row, acts, act_stride, k, out),
    }
}

/// Checks the arguments shared by [`dot`] and [`dot_rows`] and returns the bytes of
/// one weight row of `n` elements. Panics naming `op` on a type that is not executed,
/// a `k` outside 1..=4, or activations shorter than `k` rows at `act_stride`.
/// Products saturate, so an absurd `n` or stride fails an assert instead of wrapping
/// past it.
#[inline(always)]
fn check_dot_args(
    op: &'static str,
    w: DType,
    n: usize,
    acts: &[u8],
    act_stride: usize,
    k: usize,
    kmax: usize,
) -> usize {
    let Ok(a) = act_type(w) else {
        panic!(
            "{op}: {w} is not an executed weight type; supported: {}",
            list(&WEIGHT_TYPES)
        )
    };
    let bs = w.block_size();
    debug_assert!(
        n.is_multiple_of(bs),
        "{op}: n = {n} is not a multiple of the {w} block size {bs}"
    );
    assert!((1..=kmax).contains(&k), "{op}: k = {k} must be 1..={kmax}");
    let units = n / bs;
    // One weight block of `bs` elements meets bs / a.block_size() activation blocks.
    let abytes = (k - 1)
        .saturating_mul(act_stride)
        .saturating_add(units.saturating_mul(a.block_bytes() * (bs / a.block_size())));
    assert!(
        acts.len() >= abytes,
        "{op}: activations have {} bytes, need {abytes} (k = {k}, stride {act_stride})",
        acts.len(),
    );
    units.saturating_mul(w.block_bytes())
}

/// `out[r * k + j] = dot(weight row r, activation row j)` for r in 0..n_rows and
/// j in 0..k, 1 <= k <= 4, n_rows >= 1 (any count; the kernels take the rows a
/// few at a time).
///
/// `rows`: n_rows weight rows of n elements of type `w`, row r starting at byte
/// `r * row_bytes` (row_bytes >= w.row_bytes(n), e.g. a tile of a weight matrix).
/// `acts`: k activation rows laid out as for [`dot`]. The prompt-processing entry:
/// each activation block (and its scale) is loaded once for several weight rows
/// and each weight block unpacked once for the k activation rows; the integer
/// block sums of the k rows are reduced into one vector before the single
/// convert + FMA per (weight row, block). k = 1 runs the decode kernels of
/// [`dot`] row by row. Same checks as [`dot`]: lengths `assert!`ed, the rest
/// debug_asserted; results agree with [`reference::dot_rows`] within float
/// rounding (the summation order differs).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn dot_rows(
    w: DType,
    n: usize,
    rows: &[u8],
    row_bytes: usize,
    n_rows: usize,
    acts: &[u8],
    act_stride: usize,
    k: usize,
    out: &mut [f32],
) {
    let wbytes = check_dot_args("dot_rows", w, n, acts, act_stride, k, 4);
    assert!(
        n_rows >= 1 && out.len() / k >= n_rows,
        "dot_rows: n_rows = {n_rows} must be >= 1 and n_rows * k <= out.len() = {}",
        out.len()
    );
    let rbytes = (n_rows - 1)
        .saturating_mul(row_bytes)
        .saturating_add(wbytes);
    assert!(
        row_bytes >= wbytes && rows.len() >= rbytes,
        "dot_rows: weight rows have {} bytes at stride {row_bytes}, need {rbytes} (n_rows = {n_rows}, row {wbytes} bytes)",
        rows.len()
    );
    match isa_cached() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: AVX2+FMA+F16C detected; buffer lengths asserted above.
            unsafe {
                avx2::dot_rows(
                    w,
                    n,
                    rows.as_ptr(),
                    row_bytes,
                    n_rows,
                    acts.as_ptr(),
                    act_stride,
                    k,
                    out.as_mut_ptr(),
                )
            }
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon { dotprod } => {
            // SAFETY: as in `dot`, for every row (lengths asserted above).
            unsafe {
                neon::dot_rows(
                    dotprod,
                    w,
                    n,
                    rows.as_ptr(),
                    row_bytes,
                    n_rows,
                    acts.as_ptr(),
                    act_stride,
                    k,
                    out.as_mut_ptr(),
                )
            }
        }
        Isa::Scalar => reference::dot_rows(w, n, rows, row_bytes, n_rows, acts, act_stride, k, out),
    }
}

/// Dequantize n = out.len() elements of type `ty` from `src` (F32, F16, BF16, Q4_0,
/// Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q4_K, Q5_K, Q6_K, Q8_K). Errors on unsupported types.
pub fn dequantize(ty: DType, src: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    reference::dequantize(ty, src, out)
}

/// Quantize f32 data into a weight type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K,
/// Q6_K, F16, BF16, F32). Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/F16/BF16 follow ggml's reference
/// quantizers exactly; the K-quants use our own simpler search (see
/// [`reference`](mod@reference)).
pub fn quantize(ty: DType, x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    if !WEIGHT_TYPES.contains(&ty) {
        return Err(QuantError::unsupported(ty, "quantize"));
    }
    reference::quantize(ty, x, out)
}

/// Scalar reference kernels, whatever the CPU (for tests and conformance kits).
pub fn dot_scalar(
    w: DType,
    n: usize,
    w_row: &[u8],
    acts: &[u8],
    act_stride: usize,
    k: usize,
    out: &mut [f32],
) {
    reference::dot(w, n, w_row, acts, act_stride, k, out)
}

/// Scalar reference of [`dot_rows`], whatever the CPU.
#[allow(clippy::too_many_arguments)]
pub fn dot_rows_scalar(
    w: DType,
    n: usize,
    rows: &[u8],
    row_bytes: usize,
    n_rows: usize,
    acts: &[u8],
    act_stride: usize,
    k: usize,
    out: &mut [f32],
) {
    reference::dot_rows(w, n, rows, row_bytes, n_rows, acts, act_stride, k, out)
}
