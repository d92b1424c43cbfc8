//! Weight matrices repacked at load time: 8 rows interleaved per block.
//!
//! Why. The row-major kernels ([`crate::dot_rows`]) keep one accumulator per
//! (row, token) and must reduce it horizontally; per weight block and row they
//! spend about as many shuffles and converts as multiplies. With 8 rows
//! interleaved, one 256-bit register holds 4 quant bytes of each of the 8 rows, so
//! one `vpmaddubsw` against a broadcast 4-byte group of one token gives partial
//! sums for the 8 rows in 8 lanes: no horizontal reduction, one convert and one FMA
//! per (8 rows, token, block), and the 8 row scales convert in one `vcvtph2ps`.
//! This is the layout the x86 AVX2 kernels want; it is built only when those
//! kernels run ([`supports`]), and the scalar path never sees it.
//!
//! Layout (pinned in docs/FORMAT.md, "Packed weights"). Rows are taken in groups
//! of [`ROWS`]; a group is `nb` packed blocks, block b holding block b of each of
//! the 8 rows:
//! - Q4_0 (144 bytes = 8 × 18): `d[8]` (f16 scales of rows 0..8), then 4 groups of
//!   32 bytes; group j holds, for r in 0..8, bytes `4j..4j+4` of row r's 16 quant
//!   bytes (low nibble = element `4j + i`, high nibble = element `16 + 4j + i`).
//! - Q4_1 (160 bytes = 8 × 20): `d[8]`, `m[8]` (f16), then the 128 quant bytes as
//!   for Q4_0.
//! - Q5_0 (176 bytes = 8 × 22): `d[8]`, then each row's 32 fifth bits as a u32
//!   regrouped so that group j's bits sit one shift away from bit 4 of each byte
//!   (bit `8i + j` = element `4j + i`, bit `8i + 4 + j` = element `16 + 4j + i`),
//!   then the 128 quant bytes as for Q4_0.
//! - Q8_0 (272 bytes = 8 × 34): `d[8]`, then 8 groups of 32 bytes; group j holds,
//!   for r in 0..8, the signed quants `4j..4j+4` of row r. The kernel multiplies
//!   |q| by the activation bytes signed as q (`vpsignb`), as the row kernel does.
//! - Q4_K (1184 bytes = 8 × 148 per super-block of 256): `d[8]`, `dmin[8]` (f16),
//!   the 6-bit scales and mins unpacked to bytes (`sc[s][r]`; mins in pairs of
//!   sub-blocks `m[t][r][2]`), then 4 chunks of 8 groups of 32 bytes: chunk c,
//!   group j holds bytes `32c + 4j..+4` of each row's quants (low nibbles: sub-block
//!   2c, high nibbles: 2c + 1).
//! - Q6_K (1680 bytes = 8 × 210 per super-block): `d[8]`, the 16 i8 scales
//!   (`sc[s][r]`), then per half of 128 elements 16 groups of 32 bytes of the low
//!   nibbles (`ql`) and 8 groups of the high bits (`qh`), 4 bytes of each row per
//!   group (see `Q6K_SC`); the −32 offset comes from the activation's own bsums.
//!
//! A legacy-type group takes as many bytes as its 8 rows did (`8 × row_bytes`); a
//! Q4_K group 148/144 of that (the unpacked scales); group g starts at
//! `g × packed_len(w, n, 8)`. The quants stay unsigned: the Q4_0 and Q5_0 offsets
//! (−8, −16) and the Q4_K mins come back through per-block activation sums that
//! [`act_sums`] precomputes (exact, in integers, as llama.cpp's integer dot);
//! Q8_0's quants are signed and need none.

use crate::blocks::{cast_blocks, pack_k_scales, unpack_k_scales, BlockQ4K, BlockQ8K, BlockQ8_0};
use crate::reference::check_len;
use crate::{act_row_bytes, DType, QuantError};
#[cfg(target_arch = "x86_64")]
use crate::{isa_cached, Isa};

/// Rows interleaved per packed group.
pub const ROWS: usize = 8;

/// Tokens one [`dot_group`] call takes at most.
pub const MAX_TOKENS: usize = 4;

/// Where one row's block goes in a packed block: `f16s` f16 fields (d, and m for
/// Q4_1) at `f · 16 + 2r`, for Q5_0 the regrouped fifth bits at `16 + 4r`, then the
/// 128 quant bytes (256 for Q8_0) at `qs_at`.
struct Shape {
    f16s: usize,
    qh: bool,
    qs_at: usize,
}

fn shape(w: DType) -> Shape {
    match w {
        DType::Q4_1 => Shape {
            f16s: 2,
            qh: false,
            qs_at: 32,
        },
        DType::Q5_0 => Shape {
            f16s: 1,
            qh: true,
            qs_at: 48,
        },
        _ => Shape {
            f16s: 1,
            qh: false,
            qs_at: 16,
        },
    }
}

/// Weight types with a packed layout.
pub const TYPES: [DType; 6] = [
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q8_0,
    DType::Q4_K,
    DType::Q6_K,
];

fn packable(w: DType) -> bool {
    TYPES.contains(&w)
}

/// Bytes of one row in the packed layout of `w` per block: the block's own size,
/// except Q4_K, whose scales and mins are stored unpacked (8 + 8 bytes instead of
/// the 12-byte 6-bit encoding): 148 per 144.
fn packed_block_bytes(w: DType) -> usize {
    match w {
        DType::Q4_K => Q4K_ROW_BYTES,
        _ => w.block_bytes(),
    }
}

/// Packed Q4_K bytes per row and super-block (d, dmin, 8 scales, 8 mins, 128 quants).
const Q4K_ROW_BYTES: usize = 148;

/// Tokens one [`dot_group`] call takes at most for weight type `w`: 4, or 2 for
/// Q4_K and Q6_K (whose kernels hold partial sums per token and sub-block pair in
/// AVX2's 16 registers).
pub fn max_tokens(w: DType) -> usize {
    match w {
        DType::Q4_K | DType::Q6_K => 2,
        _ => MAX_TOKENS,
    }
}

/// Bytes of a packed matrix of `rows` rows of `n` elements (`rows` a multiple of
/// [`ROWS`]); group g starts at `g × packed_len(w, n, 8)`.
pub fn packed_len(w: DType, n: usize, rows: usize) -> Result<usize, QuantError> {
    Ok(sizes(w, n, rows)?.1)
}

/// Packed bytes of one row of `row_bytes` row-major bytes of `w`.
fn packed_row_bytes(w: DType, row_bytes: usize) -> usize {
    row_bytes / w.block_bytes() * packed_block_bytes(w)
}

/// Q5_0's fifth bits (bit e = element e) regrouped so that the kernel finds the
/// bits of quant group j with one shift: bit `8i + j` = element `4j + i` (low
/// nibbles), bit `8i + 4 + j` = element `16 + 4j + i` (high nibbles).
fn regroup_qh(qh: u32) -> u32 {
    let mut out = 0;
    for j in 0..4 {
        for i in 0..4 {
            out |= ((qh >> (4 * j + i)) & 1) << (8 * i + j);
            out |= ((qh >> (16 + 4 * j + i)) & 1) << (8 * i + 4 + j);
        }
    }
    out
}

/// The inverse of [`regroup_qh`].
fn ungroup_qh(g: u32) -> u32 {
    let mut out = 0;
    for j in 0..4 {
        for i in 0..4 {
            out |= ((g >> (8 * i + j)) & 1) << (4 * j + i);
            out |= ((g >> (8 * i + 4 + j)) & 1) << (16 + 4 * j + i);
        }
    }
    out
}

/// Whether [`pack`] builds a layout for weight type `w` that this CPU's kernels
/// run ([`TYPES`] with AVX2; nothing on the scalar path or on ARM, whose NEON
/// kernels read the rows as they are).
pub fn supports(w: DType) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        packable(w) && isa_cached() == Isa::Avx2
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = w;
        false
    }
}

/// Checks the shape and returns (row-major bytes of one row, packed bytes of the
/// `rows` rows).
fn sizes(w: DType, n: usize, rows: usize) -> Result<(usize, usize), QuantError> {
    if !packable(w) {
        return Err(QuantError::UnsupportedType {
            dtype: w,
            op: "packed::pack",
            supported: crate::list(&TYPES),
        });
    }
    if !n.is_multiple_of(w.block_size()) {
        return Err(QuantError::RaggedLength {
            dtype: w,
            n,
            block: w.block_size(),
            what: "packed::pack row length",
        });
    }
    if !rows.is_multiple_of(ROWS) {
        return Err(QuantError::RaggedLength {
            dtype: w,
            n: rows,
            block: ROWS,
            what: "packed::pack row count",
        });
    }
    let rb = n / w.block_size() * w.block_bytes();
    Ok((rb, packed_row_bytes(w, rb).saturating_mul(rows)))
}

/// Repack `rows` row-major rows of `n` elements of type `w` (`src`, as in a GGUF
/// tensor) into the interleaved layout. `rows` must be a multiple of [`ROWS`].
pub fn pack(w: DType, n: usize, rows: usize, src: &[u8]) -> Result<Vec<u8>, QuantError> {
    let mut out = vec![0u8; sizes(w, n, rows)?.1];
    pack_into(w, n, rows, src, &mut out)?;
    Ok(out)
}

/// [`pack`] into a caller's buffer of at least [`packed_len`] bytes (so that
/// several threads can each pack a range of row groups).
pub fn pack_into(
    w: DType,
    n: usize,
    rows: usize,
    src: &[u8],
    out: &mut [u8],
) -> Result<(), QuantError> {
    let (rb, plen) = sizes(w, n, rows)?;
    check_len(
        "packed::pack source bytes",
        rb.saturating_mul(rows),
        src.len(),
    )?;
    check_len("packed::pack output bytes", plen, out.len())?;
    let (src, out) = (&src[..rb * rows], &mut out[..plen]);
    match w {
        DType::Q4_1 => pack_groups::<20, 2, false>(rb, src, out),
        DType::Q5_0 => pack_groups::<22, 1, true>(rb, src, out),
        DType::Q8_0 => pack_groups::<34, 1, false>(rb, src, out),
        DType::Q4_K => pack_q4k(rb, src, out),
        DType::Q6_K => pack_q6k(rb, src, out),
        _ => pack_groups::<18, 1, false>(rb, src, out),
    }
    Ok(())
}

/// Packed Q4_K block of 8 rows (1184 bytes): `d[8]` f16 @0, `dmin[8]` f16 @16,
/// scales `sc[s][r]` u8 @32 + 8s + r, mins in pairs `m[t][r][e]` = min of sub-block
/// 2t + e @96 + 16t + 2r + e, then quants @160 + 256c + 32j + 4r + i = byte
/// `qs[32c + 4j + i]` of row r (low nibble: element 64c + 4j + i, high nibble:
/// element 64c + 32 + 4j + i).
const Q4K_SC: usize = 32;
const Q4K_M: usize = 96;
const Q4K_QS: usize = 160;

fn pack_q4k(rb: usize, src: &[u8], out: &mut [u8]) {
    let pb = Q4K_ROW_BYTES * ROWS;
    let nb = rb / DType::Q4_K.block_bytes();
    for (sg, og) in src
        .chunks_exact(rb * ROWS)
        .zip(out.chunks_exact_mut(nb * pb))
    {
        let rows: [&[BlockQ4K]; ROWS] = std::array::from_fn(|r| {
            cast_blocks::<BlockQ4K>(&sg[r * rb..(r + 1) * rb]).expect("whole Q4_K blocks")
        });
        for (b, dst) in og.chunks_exact_mut(pb).enumerate() {
            for (r, row) in rows.iter().enumerate() {
                let blk = &row[b];
                dst[2 * r..2 * r + 2].copy_from_slice(&blk.d);
                dst[16 + 2 * r..16 + 2 * r + 2].copy_from_slice(&blk.dmin);
                let (sc, m) = unpack_k_scales(&blk.scales);
                for s in 0..8 {
                    dst[Q4K_SC + 8 * s + r] = sc[s];
                    dst[Q4K_M + 16 * (s / 2) + 2 * r + s % 2] = m[s];
                }
                for c in 0..4 {
                    for j in 0..8 {
                        dst[Q4K_QS + 256 * c + 32 * j + 4 * r..][..4]
                            .copy_from_slice(&blk.qs[32 * c + 4 * j..][..4]);
                    }
                }
            }
        }
    }
}

fn unpack_q4k(rb: usize, packed: &[u8], out: &mut [u8]) {
    let pb = Q4K_ROW_BYTES * ROWS;
    let bb = DType::Q4_K.block_bytes();
    let nb = rb / bb;
    for (pg, og) in packed
        .chunks_exact(nb * pb)
        .zip(out.chunks_exact_mut(rb * ROWS))
    {
        for (b, src) in pg.chunks_exact(pb).enumerate() {
            for r in 0..ROWS {
                let d = &mut og[r * rb + b * bb..][..bb];
                d[0..2].copy_from_slice(&src[2 * r..2 * r + 2]);
                d[2..4].copy_from_slice(&src[16 + 2 * r..16 + 2 * r + 2]);
                let sc: [u8; 8] = std::array::from_fn(|s| src[Q4K_SC + 8 * s + r]);
                let m: [u8; 8] = std::array::from_fn(|s| src[Q4K_M + 16 * (s / 2) + 2 * r + s % 2]);
                d[4..16].copy_from_slice(&pack_k_scales(&sc, &m));
                for c in 0..4 {
                    for j in 0..8 {
                        d[16 + 32 * c + 4 * j..][..4]
                            .copy_from_slice(&src[Q4K_QS + 256 * c + 32 * j + 4 * r..][..4]);
                    }
                }
            }
        }
    }
}

/// Packed Q6_K block of 8 rows (1680 bytes = 8 × 210): `d[8]` f16 @0, scales
/// `sc[s][r]` i8 @16 + 8s + r, then the low-nibble bytes @144 + 512h + 32j + 4r + i
/// = `ql[64h + 4j + i]` of row r (half h of the super-block; low nibble: element
/// 128h + 4j + i, high nibble: element 128h + 64 + 4j + i), then the high-bit bytes
/// @1168 + 256h + 32m + 4r + i = `qh[32h + 4m + i]` of row r (bits 0-1 / 4-5: the
/// high bits of the low / high nibble of ql group j = m, bits 2-3 / 6-7: of ql group
/// j = m + 8). Element e's scale is `sc[e / 16]`.
const Q6K_SC: usize = 16;
const Q6K_QL: usize = 144;
const Q6K_QH: usize = 1168;

/// Bytes of a Q6_K block.
const Q6K_BB: usize = 210;

/// The byte moves between 8 row-major Q6_K blocks and one packed block, as
/// `f(row, offset in the row's block, offset in the packed block, length)`: pack
/// and unpack both run this list, so they cannot disagree on the layout.
#[inline(always)]
fn q6k_moves(mut f: impl FnMut(usize, usize, usize, usize)) {
    for r in 0..ROWS {
        f(r, 208, 2 * r, 2);
        for sb in 0..16 {
            f(r, 192 + sb, Q6K_SC + 8 * sb + r, 1);
        }
        for h in 0..2 {
            for j in 0..16 {
                f(r, 64 * h + 4 * j, Q6K_QL + 512 * h + 32 * j + 4 * r, 4);
            }
            for m in 0..8 {
                f(
                    r,
                    128 + 32 * h + 4 * m,
                    Q6K_QH + 256 * h + 32 * m + 4 * r,
                    4,
                );
            }
        }
    }
}

fn pack_q6k(rb: usize, src: &[u8], out: &mut [u8]) {
    let (pb, nb) = (Q6K_BB * ROWS, rb / Q6K_BB);
    for (sg, og) in src
        .chunks_exact(rb * ROWS)
        .zip(out.chunks_exact_mut(nb * pb))
    {
        for (b, dst) in og.chunks_exact_mut(pb).enumerate() {
            q6k_moves(|r, so, po, len| {
                let blk = &sg[r * rb + b * Q6K_BB..][..Q6K_BB];
                dst[po..po + len].copy_from_slice(&blk[so..so + len]);
            });
        }
    }
}

fn unpack_q6k(rb: usize, packed: &[u8], out: &mut [u8]) {
    let (pb, nb) = (Q6K_BB * ROWS, rb / Q6K_BB);
    for (pg, og) in packed
        .chunks_exact(nb * pb)
        .zip(out.chunks_exact_mut(rb * ROWS))
    {
        for (b, src) in pg.chunks_exact(pb).enumerate() {
            q6k_moves(|r, so, po, len| {
                let blk = &mut og[r * rb + b * Q6K_BB..][..Q6K_BB];
                blk[so..so + len].copy_from_slice(&src[po..po + len]);
            });
        }
    }
}

/// [`pack_into`] for one block shape (BB bytes per block, F16S f16 fields, fifth
/// bits or not; the rest of the block is quant bytes, 16 or 32, moved 4 at a
/// time), with every offset a constant so that the copies compile to plain moves.
/// `src` and `out` hold whole groups of rows of `rb` bytes.
fn pack_groups<const BB: usize, const F16S: usize, const QH: bool>(
    rb: usize,
    src: &[u8],
    out: &mut [u8],
) {
    let qs_at = 16 * F16S + if QH { 32 } else { 0 };
    let pb = BB * ROWS;
    for (sg, og) in src
        .chunks_exact(rb * ROWS)
        .zip(out.chunks_exact_mut(rb * ROWS))
    {
        let rows: [&[u8]; ROWS] = std::array::from_fn(|r| &sg[r * rb..(r + 1) * rb]);
        for (b, dst) in og.chunks_exact_mut(pb).enumerate() {
            let dst: &mut [u8] = &mut dst[..pb];
            for (r, row) in rows.iter().enumerate() {
                let s: &[u8; BB] = row[b * BB..(b + 1) * BB].try_into().expect("one block");
                for f in 0..F16S {
                    dst[f * 2 * ROWS + 2 * r..][..2].copy_from_slice(&s[2 * f..2 * f + 2]);
                }
                let at = 2 * F16S + if QH { 4 } else { 0 };
                if QH {
                    let qh = u32::from_le_bytes(s[2..6].try_into().expect("4 bytes"));
                    dst[16 + 4 * r..][..4].copy_from_slice(&regroup_qh(qh).to_le_bytes());
                }
                for j in 0..(BB - at) / 4 {
                    dst[qs_at + j * 32 + r * 4..][..4].copy_from_slice(&s[at + 4 * j..][..4]);
                }
            }
        }
    }
}

/// The inverse of [`pack`]: back to row-major rows (tests, and tools that read a
/// packed matrix).
pub fn unpack(w: DType, n: usize, rows: usize, packed: &[u8]) -> Result<Vec<u8>, QuantError> {
    let (rb, plen) = sizes(w, n, rows)?;
    check_len("packed::unpack packed bytes", plen, packed.len())?;
    let mut out = vec![0u8; rb * rows];
    if w == DType::Q4_K {
        unpack_q4k(rb, &packed[..plen], &mut out);
        return Ok(out);
    }
    if w == DType::Q6_K {
        unpack_q6k(rb, &packed[..plen], &mut out);
        return Ok(out);
    }
    let (bb, sh) = (w.block_bytes(), shape(w));
    let nb = n / w.block_size();
    let pb = bb * ROWS;
    for g in 0..rows / ROWS {
        for b in 0..nb {
            let src = &packed[(g * nb + b) * pb..(g * nb + b + 1) * pb];
            for r in 0..ROWS {
                let d = &mut out[(g * ROWS + r) * rb + b * bb..][..bb];
                for f in 0..sh.f16s {
                    d[2 * f..2 * f + 2].copy_from_slice(&src[f * 2 * ROWS + 2 * r..][..2]);
                }
                let mut at = 2 * sh.f16s;
                if sh.qh {
                    let q = u32::from_le_bytes(src[16 + 4 * r..][..4].try_into().expect("4 bytes"));
                    d[at..at + 4].copy_from_slice(&ungroup_qh(q).to_le_bytes());
                    at += 4;
                }
                for j in 0..(bb - at) / 4 {
                    d[at + 4 * j..][..4].copy_from_slice(&src[sh.qs_at + j * 32 + r * 4..][..4]);
                }
            }
        }
    }
    Ok(out)
}

/// Number of i32 values [`act_sums`] writes for one activation row of `n`
/// elements (0 for types that need none).
pub fn act_sums_len(w: DType, n: usize) -> usize {
    match w {
        DType::Q4_K => n / 256 * 4,
        _ if offset(w) != 0 => n / 32,
        _ => 0,
    }
}

/// The constant that unsigned quants of `w` carry (value = q − offset; 0: none).
fn offset(w: DType) -> i32 {
    match w {
        DType::Q4_0 => 8,
        DType::Q5_0 => 16,
        _ => 0,
    }
}

/// Per-block activation sums that the packed kernels of `w` need, for one row of
/// quantized activations (`quantize_act(w, …)` output, `n` elements): for Q4_0
/// (Q5_0), `out[b] = 8 × Σ q` (16 × Σ q) over block b's 32 activation quants: the
/// weight offset, applied once per block in integers. For Q4_K, 4 values per
/// super-block b: `out[4b + t]` holds the sums of sub-blocks 2t (low i16) and 2t + 1
/// (high i16), which meet the mins. Nothing for Q4_1 (its Q8_1 blocks carry `s`)
/// nor Q8_0 (signed quants).
pub fn act_sums(w: DType, n: usize, act_row: &[u8], out: &mut [i32]) -> Result<(), QuantError> {
    let need = act_row_bytes(w, n)?;
    if act_row.len() < need {
        return Err(QuantError::LengthMismatch {
            what: "packed::act_sums activation bytes",
            expected: need,
            got: act_row.len(),
        });
    }
    let m = act_sums_len(w, n);
    if out.len() < m {
        return Err(QuantError::LengthMismatch {
            what: "packed::act_sums output",
            expected: m,
            got: out.len(),
        });
    }
    if w == DType::Q4_K {
        // Q8_K activations: per super-block the 8 sub-block sums Y_s (each the sum
        // of two 16-element bsums, |Y_s| <= 32 · 127), two to an i32: low half
        // Y_2t, high half Y_2t+1 — the pairs the mins are multiplied with.
        let blocks = cast_blocks::<BlockQ8K>(&act_row[..need]).expect("whole Q8_K blocks");
        for (o, b) in out[..m].chunks_exact_mut(4).zip(blocks) {
            for (t, v) in o.iter_mut().enumerate() {
                let y = |s: usize| b.bsum(2 * s) as i32 + b.bsum(2 * s + 1) as i32;
                *v = (y(2 * t) as u16 as u32 | ((y(2 * t + 1) as u16 as u32) << 16)) as i32;
            }
        }
    } else if m > 0 {
        // Offset types take Q8_0 activations (`act_type`).
        let blocks = cast_blocks::<BlockQ8_0>(&act_row[..need]).expect("whole Q8_0 blocks");
        for (o, b) in out[..m].iter_mut().zip(blocks) {
            *o = offset(w) * b.qs.iter().map(|&q| q as i32).sum::<i32>();
        }
    }
    Ok(())
}

/// `out[j * ROWS + r] = dot(row r of the packed group, activation row j)` for
/// r < 8 and j < k (1..=[`max_tokens`]`(w)`).
///
/// `group`: one packed group (8 rows of `n` elements, [`packed_len`]`(w, n, 8)`
/// bytes); `acts`: k activation rows as for [`crate::dot`] (`quantize_act` output,
/// row j at `j × act_stride`); `sums`: for Q4_0, Q5_0 and Q4_K, k rows of
/// [`act_sums`] output at `j × sums_stride` (ignored for Q4_1 and Q8_0). Results agree with
/// [`crate::reference::dot`] on the unpacked rows within float rounding.
///
/// Panics if [`supports`] is false for `w` (callers pack only what it accepts) or a
/// buffer is too short.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn dot_group(
    w: DType,
    n: usize,
    group: &[u8],
    acts: &[u8],
    act_stride: usize,
    sums: &[i32],
    sums_stride: usize,
    k: usize,
    out: &mut [f32],
) {
    let kmax = max_tokens(w);
    assert!(
        k <= kmax,
        "packed::dot_group: {k} tokens, at most {kmax} for {w}"
    );
    dot_groups(w, n, group, 1, acts, act_stride, sums, sums_stride, k, out);
}

/// Whether [`dot_group2`] has a kernel of its own for `w` on this CPU (AVX-512
/// VNNI: 16 rows per instruction); where false it runs [`dot_group`] twice.
pub fn wide(w: DType) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::vnni512_cached() && crate::avx512::handles(w)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = w;
        false
    }
}

/// Tokens one [`dot_group2`] call takes at most for `w`: where [`wide`], 8 for the
/// legacy types and [`MAX_TOKENS`] for Q4_K (the 16-row kernels have the
/// registers), else [`max_tokens`].
pub fn max_tokens2(w: DType) -> usize {
    match w {
        DType::Q4_K | DType::Q6_K if wide(w) => MAX_TOKENS,
        _ if wide(w) => 2 * MAX_TOKENS,
        _ => max_tokens(w),
    }
}

/// [`dot_group`] over two consecutive packed groups (16 rows): `groups` holds
/// them (`2 × packed_len(w, n, 8)` bytes), and `out[j * 16 + r]` receives row r of
/// the pair for token j (rows 0..8 from the first group). Same results as two
/// [`dot_group`] calls, bit for bit; faster where [`wide`] is true.
///
/// Panics as [`dot_group`] does.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn dot_group2(
    w: DType,
    n: usize,
    groups: &[u8],
    acts: &[u8],
    act_stride: usize,
    sums: &[i32],
    sums_stride: usize,
    k: usize,
    out: &mut [f32],
) {
    let kmax = max_tokens2(w);
    assert!(
        k <= kmax,
        "packed::dot_group2: {k} tokens, at most {kmax} for {w}"
    );
    dot_groups(w, n, groups, 2, acts, act_stride, sums, sums_stride, k, out);
}

/// [`dot_group`] (`ng` = 1) or [`dot_group2`] (`ng` = 2) over a run of any number
/// of tokens: `out[j * ng * 8 + r]` receives row r of the groups for token j <
/// `n_tokens` (activation row j at `j × act_stride`, sums row j at `j ×
/// sums_stride`). The arguments are checked once and the kernels take the tokens
/// [`max_tokens`] / [`max_tokens2`] at a time: the prompt-processing entry, whose
/// per-call cost is paid once per run instead of once per 4 tokens.
///
/// Panics as [`dot_group`] does, or if `ng` is not 1 or 2.
#[allow(clippy::too_many_arguments)]
pub fn dot_groups(
    w: DType,
    n: usize,
    groups: &[u8],
    ng: usize,
    acts: &[u8],
    act_stride: usize,
    sums: &[i32],
    sums_stride: usize,
    n_tokens: usize,
    out: &mut [f32],
) {
    assert!(
        ng == 1 || ng == 2,
        "packed::dot_groups: ng = {ng}, must be 1 or 2"
    );
    assert!(n_tokens >= 1, "packed::dot_groups: no tokens");
    let (g, o) = (groups.len(), out.len());
    let gb = check_args(
        "packed::dot_groups",
        w,
        n,
        acts,
        act_stride,
        sums,
        sums_stride,
        n_tokens,
        ng,
        g,
        o,
    );
    #[cfg(target_arch = "x86_64")]
    if matches!(isa_cached(), Isa::Avx2) {
        // SAFETY: AVX2+FMA+F16C detected; every buffer covers n_tokens tokens and
        // ng groups (check_args).
        unsafe {
            groups_avx2(
                w,
                n / w.block_size(),
                groups,
                gb,
                ng,
                acts,
                act_stride,
                sums,
                sums_stride,
                n_tokens,
                out,
            )
        };
        return;
    }
    let _ = gb;
    panic!("packed::dot_groups: no packed kernels on the scalar path");
}

/// [`dot_groups`]' loop over the tokens on x86: the AVX-512 VNNI pair kernel where
/// [`wide`], else the 8-row AVX2 kernel once per group.
///
/// # Safety
/// AVX2+FMA+F16C available; the buffers as [`check_args`] asserts them for
/// `n_tokens` tokens and `ng` groups of `gb` bytes.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn groups_avx2(
    w: DType,
    nb: usize,
    groups: &[u8],
    gb: usize,
    ng: usize,
    acts: &[u8],
    act_stride: usize,
    sums: &[i32],
    sums_stride: usize,
    n_tokens: usize,
    out: &mut [f32],
) {
    let pair = ng == 2 && wide(w);
    let kmax = if ng == 2 {
        max_tokens2(w)
    } else {
        max_tokens(w)
    };
    let rows = ng * ROWS;
    let mut half = [0f32; MAX_TOKENS * ROWS];
    let mut j = 0;
    while j < n_tokens {
        let k = (n_tokens - j).min(kmax);
        // SAFETY (every kernel call): the caller's buffers cover all n_tokens
        // tokens; the kernels read k <= kmax of them from token j on. Q4_1 and
        // Q8_0 read no sums, so their pointer may point past `sums`.
        let (a, s) = (
            acts[j * act_stride..].as_ptr(),
            sums.as_ptr().wrapping_add(j * sums_stride),
        );
        let dst = out[j * rows..].as_mut_ptr();
        if pair {
            // AVX-512 VNNI detected (`wide`) and `w` handled.
            unsafe {
                crate::avx512::dot_pair(
                    w,
                    nb,
                    groups.as_ptr(),
                    groups.as_ptr().add(gb),
                    a,
                    act_stride,
                    s,
                    sums_stride,
                    k,
                    dst,
                )
            }
        } else if ng == 1 {
            unsafe {
                crate::avx2::dot_packed(
                    w,
                    nb,
                    groups.as_ptr(),
                    a,
                    act_stride,
                    s,
                    sums_stride,
                    k,
                    dst,
                )
            }
        } else {
            for i in 0..2 {
                // `half` holds k × 8 floats.
                unsafe {
                    crate::avx2::dot_packed(
                        w,
                        nb,
                        groups.as_ptr().add(i * gb),
                        a,
                        act_stride,
                        s,
                        sums_stride,
                        k,
                        half.as_mut_ptr(),
                    )
                }
                for t in 0..k {
                    out[(j + t) * rows + i * ROWS..][..ROWS]
                        .copy_from_slice(&half[t * ROWS..(t + 1) * ROWS]);
                }
            }
        }
        j += k;
    }
}

/// Asserts what the packed kernels read and write for `ng` (1 or 2) groups of `w`
/// and k >= 1 tokens: a packed layout, the activations (as `dot` checks them),
/// `groups` bytes of packed weights, the sums of the offset types, `out` floats.
/// Returns the bytes of one group.
#[allow(clippy::too_many_arguments)]
fn check_args(
    op: &'static str,
    w: DType,
    n: usize,
    acts: &[u8],
    act_stride: usize,
    sums: &[i32],
    sums_stride: usize,
    k: usize,
    ng: usize,
    groups: usize,
    out: usize,
) -> usize {
    assert!(packable(w), "{op}: {w} has no packed layout");
    // The same checks as `dot` / `dot_rows` (type, activations) for any number of
    // tokens; the row bytes from whole blocks, as the kernels count them.
    let rb = crate::check_dot_args(op, w, n, acts, act_stride, k, usize::MAX);
    let gb = packed_row_bytes(w, rb) * ROWS;
    assert!(
        groups >= ng * gb,
        "{op}: groups have {groups} bytes, need {}",
        ng * gb
    );
    let m = act_sums_len(w, n);
    if m > 0 {
        let sneed = (k - 1).saturating_mul(sums_stride).saturating_add(m);
        assert!(
            sums.len() >= sneed,
            "{op}: sums have {} values, need {sneed}",
            sums.len()
        );
    }
    assert!(
        out >= k * ng * ROWS,
        "{op}: out has {out} floats, need {}",
        k * ng * ROWS
    );
    gb
}
