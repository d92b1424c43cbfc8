//! Quantisation schemes (`--quant`) and the per-tensor type rules, with overrides.
//!
//! | scheme | matrices | token embedding | output head (or tied embedding) |
//! | --- | --- | --- | --- |
//! | f32 / f16 / bf16 | that type | that type | that type |
//! | q8f16_1 | Q8_0 | Q8_0 | Q8_0 |
//! | q4f16_1 | Q4_0 | Q8_0 | Q8_0 |
//! | q4bf16_1 | Q4BF16_1 (alc's type: Q4_0 with a bf16 scale) | Q8_0 | Q8_0 |
//! | q4_k_m | Q4_K; attn_v and ffn_down Q6_K in the first and last eighth of the layers and every third layer between | Q4_K | Q6_K |
//! | q6_k | Q6_K | Q6_K | Q6_K |
//!
//! Vectors (norms, biases) are always F32. A matrix whose row length is not a
//! multiple of the chosen type's block falls back to Q8_0 (K-quants) or F16, and the
//! report says so. `--tensor-type PATTERN=TYPE` overrides the rules for package
//! tensor names matching PATTERN (`*` matches any run of characters), first match
//! wins.

use crate::ConvertError;
use alc_core::DType;

/// A `--quant` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    F32,
    F16,
    Bf16,
    Q8f16_1,
    Q4f16_1,
    Q4bf16_1,
    Q4KM,
    Q6K,
}

pub const SCHEMES: &[(&str, Scheme)] = &[
    ("f32", Scheme::F32),
    ("f16", Scheme::F16),
    ("bf16", Scheme::Bf16),
    ("q8f16_1", Scheme::Q8f16_1),
    ("q4f16_1", Scheme::Q4f16_1),
    ("q4bf16_1", Scheme::Q4bf16_1),
    ("q4_k_m", Scheme::Q4KM),
    ("q6_k", Scheme::Q6K),
];

impl Scheme {
    pub fn parse(s: &str) -> Result<Scheme, ConvertError> {
        if let Some(&(_, q)) = SCHEMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Ok(q);
        }
        let list = SCHEMES
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ");
        Err(ConvertError::Unsupported(format!(
            "unknown --quant '{s}'; supported: {list}"
        )))
    }

    pub fn name(self) -> &'static str {
        SCHEMES
            .iter()
            .find(|(_, q)| *q == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// `general.file_type` (llama.cpp's LLAMA_FTYPE values).
    pub fn file_type(self) -> u32 {
        match self {
            Scheme::F32 => 0,
            Scheme::F16 => 1,
            Scheme::Q4f16_1 => 2,
            // No llama.cpp file type has alc's block type: alc's own number.
            Scheme::Q4bf16_1 => 1024,
            Scheme::Q8f16_1 => 7,
            Scheme::Q4KM => 15,
            Scheme::Q6K => 18,
            Scheme::Bf16 => 32,
        }
    }

    /// Bits suffix of AVA names (see crate::naming).
    pub fn ava_bits(self) -> &'static str {
        match self {
            Scheme::F32 => "F32",
            Scheme::F16 => "F16",
            Scheme::Bf16 => "BF16",
            Scheme::Q8f16_1 => "Q8",
            Scheme::Q4f16_1 => "16",
            Scheme::Q4bf16_1 => "B16",
            Scheme::Q4KM => "Q4KM",
            Scheme::Q6K => "Q6K",
        }
    }
}

/// A `--tensor-type PATTERN=TYPE` override.
#[derive(Clone, Debug)]
pub struct Override {
    pub pattern: String,
    pub dtype: DType,
}

impl Override {
    pub fn parse(s: &str) -> Result<Override, ConvertError> {
        let (p, t) = s.split_once('=').ok_or_else(|| {
            ConvertError::Unsupported(format!(
                "--tensor-type '{s}' is not PATTERN=TYPE (e.g. 'blk.*.ffn_down.weight=q8_0')"
            ))
        })?;
        let dtype = DType::from_name(t)
            .filter(|d| d.is_executed())
            .ok_or_else(|| {
                ConvertError::Unsupported(format!(
                    "--tensor-type '{s}': unknown or unsupported type '{t}' (supported: {})",
                    alc_core::executed_type_list()
                ))
            })?;
        Ok(Override {
            pattern: p.to_string(),
            dtype,
        })
    }
}

/// The first override whose pattern matches `name`, checked against the row length
/// `cols` (its type's block must divide it).
pub fn find_override<'a>(
    overrides: &'a [Override],
    name: &str,
    cols: usize,
) -> Result<Option<&'a Override>, ConvertError> {
    let Some(o) = overrides.iter().find(|o| glob(&o.pattern, name)) else {
        return Ok(None);
    };
    if !cols.is_multiple_of(o.dtype.block_size()) {
        return Err(ConvertError::Unsupported(format!(
            "--tensor-type {}={}: tensor {name} has rows of {cols}, not a multiple of {}'s block of {}",
            o.pattern,
            o.dtype,
            o.dtype,
            o.dtype.block_size()
        )));
    }
    Ok(Some(o))
}

/// `*`-glob match of a whole name.
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// Why a tensor got its type (for the report).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Vector,
    Scheme,
    Embedding,
    OutputHead,
    MoreBits,
    Override,
    /// The preferred type's block does not divide the row length.
    Fallback,
    /// A vision-tower matrix of a VLM under a quantised scheme: Q8_0 for the encoder
    /// layers and projector, F16 for the embeddings ([`crate::vlm::choose`]).
    Vision,
}

/// Layers that get more bits in q4_k_m (llama.cpp's rule).
fn more_bits(layer: usize, n_layer: usize) -> bool {
    layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2
}

/// The package type of tensor `name` (row length `cols`; `matrix` false for
/// vectors); `tied` when token_embd doubles as the output head.
pub fn choose(
    scheme: Scheme,
    overrides: &[Override],
    name: &str,
    matrix: bool,
    cols: usize,
    n_layer: usize,
    tied: bool,
) -> Result<(DType, Reason), ConvertError> {
    if !matrix {
        return Ok((DType::F32, Reason::Vector));
    }
    if let Some(o) = find_override(overrides, name, cols)? {
        return Ok((o.dtype, Reason::Override));
    }
    let is_head = name == "output.weight" || (tied && name == "token_embd.weight");
    let is_embd = name == "token_embd.weight";
    let layer = name
        .strip_prefix("blk.")
        .and_then(|r| r.split('.').next())
        .and_then(|i| i.parse::<usize>().ok());
    let (want, reason) = match scheme {
        Scheme::F32 => (DType::F32, Reason::Scheme),
        Scheme::F16 => (DType::F16, Reason::Scheme),
        Scheme::Bf16 => (DType::BF16, Reason::Scheme),
        Scheme::Q8f16_1 => (DType::Q8_0, Reason::Scheme),
        Scheme::Q4f16_1 if is_head => (DType::Q8_0, Reason::OutputHead),
        Scheme::Q4f16_1 if is_embd => (DType::Q8_0, Reason::Embedding),
        Scheme::Q4f16_1 => (DType::Q4_0, Reason::Scheme),
        Scheme::Q4bf16_1 if is_head => (DType::Q8_0, Reason::OutputHead),
        Scheme::Q4bf16_1 if is_embd => (DType::Q8_0, Reason::Embedding),
        Scheme::Q4bf16_1 => (DType::Q4BF16_1, Reason::Scheme),
        Scheme::Q6K => (DType::Q6_K, Reason::Scheme),
        Scheme::Q4KM if is_head => (DType::Q6_K, Reason::OutputHead),
        Scheme::Q4KM => match layer {
            Some(l)
                if (name.ends_with("attn_v.weight") || name.ends_with("ffn_down.weight"))
                    && more_bits(l, n_layer) =>
            {
                (DType::Q6_K, Reason::MoreBits)
            }
            _ => (DType::Q4_K, Reason::Scheme),
        },
    };
    if cols.is_multiple_of(want.block_size()) {
        return Ok((want, reason));
    }
    let fallback = if want.block_size() == 256 && cols.is_multiple_of(32) {
        DType::Q8_0
    } else if want == DType::F32 {
        DType::F32
    } else {
        DType::F16
    };
    Ok((fallback, Reason::Fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("blk.*.ffn_down.weight", "blk.12.ffn_down.weight"));
        assert!(!glob("blk.*.ffn_down.weight", "blk.12.ffn_up.weight"));
        assert!(glob("output.weight", "output.weight"));
        assert!(glob("*", "anything"));
        assert!(glob("blk.1*.attn_*", "blk.13.attn_q.weight"));
        assert!(!glob("blk.1*.attn_*", "blk.2.attn_q.weight"));
    }

    #[test]
    fn q4f16_keeps_embeddings_and_head_at_8_bits() {
        let c = |n: &str, tied| choose(Scheme::Q4f16_1, &[], n, true, 64, 2, tied).unwrap();
        assert_eq!(c("blk.0.attn_q.weight", false).0, DType::Q4_0);
        assert_eq!(
            c("token_embd.weight", true),
            (DType::Q8_0, Reason::OutputHead)
        );
        assert_eq!(c("output.weight", false), (DType::Q8_0, Reason::OutputHead));
        let v = choose(
            Scheme::Q4f16_1,
            &[],
            "blk.0.attn_norm.weight",
            false,
            64,
            2,
            false,
        );
        assert_eq!(v.unwrap(), (DType::F32, Reason::Vector));
    }

    #[test]
    fn k_quants_fall_back_on_short_rows() {
        let r = choose(Scheme::Q4KM, &[], "blk.0.attn_q.weight", true, 64, 2, false).unwrap();
        assert_eq!(r, (DType::Q8_0, Reason::Fallback));
        let r = choose(
            Scheme::Q4KM,
            &[],
            "blk.0.attn_q.weight",
            true,
            256,
            2,
            false,
        )
        .unwrap();
        assert_eq!(r.0, DType::Q4_K);
        let r = choose(
            Scheme::Q4f16_1,
            &[],
            "blk.0.attn_q.weight",
            true,
            48,
            2,
            false,
        )
        .unwrap();
        assert_eq!(r, (DType::F16, Reason::Fallback));
    }

    #[test]
    fn overrides_win_and_are_checked() {
        let o = [Override::parse("blk.*.ffn_down.weight=q8_0").unwrap()];
        let r = choose(
            Scheme::Q4f16_1,
            &o,
            "blk.3.ffn_down.weight",
            true,
            64,
            8,
            false,
        )
        .unwrap();
        assert_eq!(r, (DType::Q8_0, Reason::Override));
        let o = [Override::parse("*=q4_k").unwrap()];
        let e = choose(Scheme::F16, &o, "blk.0.attn_q.weight", true, 64, 2, false).unwrap_err();
        assert!(e.to_string().contains("not a multiple"), "{e}");
        assert!(Override::parse("x=q2_k").is_err());
        assert!(Override::parse("novalue").is_err());
    }

    #[test]
    fn schemes_parse() {
        assert_eq!(Scheme::parse("Q4F16_1").unwrap(), Scheme::Q4f16_1);
        assert_eq!(Scheme::parse("q4bf16_1").unwrap(), Scheme::Q4bf16_1);
        assert!(Scheme::parse("int3")
            .unwrap_err()
            .to_string()
            .contains("q8f16_1"));
    }
}
