//! alc-core: tensor element types and shape arithmetic shared by every crate.
//!
//! Design note: no I/O lives here. Type ids equal ggml's (`ggml_type`) so that a GGUF
//! tensor header maps onto [`DType`] without translation; alc-only types will take ids
//! from 1024 upward (see docs/FORMAT.md).

use std::fmt;

/// Element / block type of a tensor. Discriminants are ggml's type ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[allow(non_camel_case_types)]
#[repr(u32)]
pub enum DType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
    /// alc's 4-bit type with a bf16 scale (the MLC name q4bf16_1): Q4_0's nibble
    /// layout, 32 elements per 18-byte block. Not a ggml type: llama.cpp cannot
    /// load it (docs/FORMAT.md, "Tensor type ids").
    Q4BF16_1 = 1024,
}

/// Types whose weights the engine executes (matmul and lookup).
pub const EXECUTED_TYPES: [DType; 12] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q8_0,
    DType::Q4_K,
    DType::Q5_K,
    DType::Q6_K,
    DType::Q4BF16_1,
];

/// Errors about element types and shapes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreError {
    #[error("unknown tensor type id {0}; known ids: 0-3, 6-15, 24-28, 30 (ggml numbering) and alc's 1024 (Q4BF16_1)")]
    UnknownTypeId(u32),
    #[error("row of {cols} elements is not a multiple of the {dtype} block size {block}")]
    RaggedRow {
        dtype: DType,
        cols: u64,
        block: usize,
    },
    #[error("tensor shape {shape:?} overflows 64-bit byte size")]
    ShapeOverflow { shape: Vec<u64> },
}

impl DType {
    pub fn from_id(id: u32) -> Result<Self, CoreError> {
        use DType::*;
        Ok(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            30 => BF16,
            1024 => Q4BF16_1,
            other => return Err(CoreError::UnknownTypeId(other)),
        })
    }

    pub fn id(self) -> u32 {
        self as u32
    }

    /// Elements per block (1 for plain types).
    pub fn block_size(self) -> usize {
        use DType::*;
        match self {
            F32 | F16 | BF16 | I8 | I16 | I32 | I64 | F64 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | Q4BF16_1 => 32,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        use DType::*;
        match self {
            F32 | I32 => 4,
            F16 | BF16 | I16 => 2,
            I8 => 1,
            I64 | F64 => 8,
            Q4_0 | Q4BF16_1 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            Q2_K => 84,
            Q3_K => 110,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
            Q8_K => 292,
        }
    }

    /// The type named `name` (as [`DType::name`] spells it, any case).
    pub fn from_name(name: &str) -> Option<DType> {
        use DType::*;
        [
            F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, I8,
            I16, I32, I64, F64, BF16, Q4BF16_1,
        ]
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    pub fn is_executed(self) -> bool {
        EXECUTED_TYPES.contains(&self)
    }

    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes of one row of `cols` elements.
    pub fn row_bytes(self, cols: u64) -> Result<u64, CoreError> {
        let bs = self.block_size() as u64;
        if !cols.is_multiple_of(bs) {
            return Err(CoreError::RaggedRow {
                dtype: self,
                cols,
                block: bs as usize,
            });
        }
        (cols / bs)
            .checked_mul(self.block_bytes() as u64)
            .ok_or(CoreError::ShapeOverflow { shape: vec![cols] })
    }

    /// Bytes of a tensor with ggml shape `dims` (dims[0] = row length).
    pub fn tensor_bytes(self, dims: &[u64]) -> Result<u64, CoreError> {
        let overflow = || CoreError::ShapeOverflow {
            shape: dims.to_vec(),
        };
        let cols = *dims.first().unwrap_or(&1);
        let mut total = self.row_bytes(cols)?;
        for &d in dims.iter().skip(1) {
            total = total.checked_mul(d).ok_or_else(overflow)?;
        }
        Ok(total)
    }

    pub fn name(self) -> &'static str {
        use DType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2_K => "Q2_K",
            Q3_K => "Q3_K",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            Q8_K => "Q8_K",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            BF16 => "BF16",
            Q4BF16_1 => "Q4BF16_1",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Comma-separated list of executed type names, for error messages.
pub fn executed_type_list() -> String {
    EXECUTED_TYPES
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Bytes a heap allocation of `n` bytes occupies: the request rounded up to 16 with an
/// 8-byte header, at least 32 (glibc malloc's chunk rule; other allocators use size
/// classes within a few percent of it). Zero for `n == 0` (no allocation). Memory
/// estimates (`alc fit`) sum this over a structure's allocations.
pub fn heap_alloc_bytes(n: usize) -> u64 {
    if n == 0 {
        0
    } else {
        (((n as u64) + 8).next_multiple_of(16)).max(32)
    }
}

/// [`heap_alloc_bytes`] of a `Vec<T>` with capacity `cap`.
pub fn heap_vec_bytes<T>(cap: usize) -> u64 {
    heap_alloc_bytes(cap.saturating_mul(std::mem::size_of::<T>()))
}

/// Bytes a `std::collections::HashMap<K, V>` (hashbrown) with capacity `cap` occupies:
/// a power-of-two bucket count holding `cap` at 7/8 load, one entry and one control
/// byte per bucket, plus a group of control bytes.
pub fn heap_hashmap_bytes<K, V>(cap: usize) -> u64 {
    if cap == 0 {
        return 0;
    }
    let buckets = if cap < 8 {
        (cap + 1).next_power_of_two()
    } else {
        (cap * 8 / 7).next_power_of_two()
    };
    heap_alloc_bytes(buckets * (std::mem::size_of::<(K, V)>() + 1) + 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_sizes() {
        assert_eq!(heap_alloc_bytes(0), 0);
        assert_eq!(heap_alloc_bytes(1), 32);
        assert_eq!(heap_alloc_bytes(24), 32);
        assert_eq!(heap_alloc_bytes(25), 48);
        assert_eq!(heap_vec_bytes::<u32>(100), 416);
        assert_eq!(heap_hashmap_bytes::<u64, u64>(0), 0);
        // 1000 entries at 7/8 load → 2048 buckets of 16 + 1 bytes.
        assert_eq!(
            heap_hashmap_bytes::<u64, u64>(1000),
            heap_alloc_bytes(2048 * 17 + 16)
        );
    }

    #[test]
    fn ids_round_trip_and_sizes() {
        for id in (0..64u32).chain(1024..1030) {
            if let Ok(t) = DType::from_id(id) {
                assert_eq!(t.id(), id);
                assert!(t.block_bytes() > 0);
            }
        }
        assert_eq!(DType::from_id(4), Err(CoreError::UnknownTypeId(4)));
        assert_eq!(DType::from_id(1024), Ok(DType::Q4BF16_1));
        assert_eq!(DType::from_name("q4bf16_1"), Some(DType::Q4BF16_1));
        assert_eq!(DType::Q4BF16_1.row_bytes(64).unwrap(), 36);
        assert_eq!(DType::Q4_K.row_bytes(512).unwrap(), 288);
        assert!(DType::Q4_0.row_bytes(33).is_err());
        assert!(DType::F32.tensor_bytes(&[u64::MAX / 2, 4]).is_err());
    }
}
