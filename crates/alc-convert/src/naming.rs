//! Package names.
//!
//! `ava` (default): AVA naming convention v2, `AVA-{CODE}-{SIZE}{BITS}.ALM`.
//!
//! | arch | CODE |
//! | --- | --- |
//! | llama | LL32 |
//! | gemma2 | GE2 |
//! | gemma3 | GE3 |
//! | qwen2, qwen3 | QW3 |
//! | mistral | MI7 |
//! | phi3 | PH3 |
//!
//! SIZE: the size the model is published under when the source directory's name
//! carries one (`gemma-2-2b-it` → `2B`, `SmolLM2-135M-Instruct` → `135M`, `0.5B` →
//! `0_5B`); otherwise from the parameter count: `{n}M` rounded to millions below a
//! billion, `{n}B` rounded to billions above. BITS: `16` for q4f16_1 (the
//! convention's own examples, `AVA-GE3-4B16`), `B16` q4bf16_1, `Q8` q8f16_1, `F32` / `F16` / `BF16`
//! for unquantised packages, `Q4KM` q4_k_m, `Q6K` q6_k.
//!
//! `plain`: `{arch}-{size}-{quant}.alm`, e.g. `llama-135M-q4f16_1.alm`.

use crate::arch::Arch;
use crate::ConvertError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameScheme {
    Ava,
    Plain,
}

impl NameScheme {
    pub fn parse(s: &str) -> Result<NameScheme, ConvertError> {
        match s {
            "ava" => Ok(NameScheme::Ava),
            "plain" => Ok(NameScheme::Plain),
            other => Err(ConvertError::Unsupported(format!(
                "unknown --name-scheme '{other}'; supported: ava, plain"
            ))),
        }
    }
}

pub fn ava_code(arch: Arch) -> &'static str {
    match arch {
        Arch::Llama => "LL32",
        Arch::Gemma2 => "GE2",
        Arch::Gemma3 => "GE3",
        Arch::Qwen2 | Arch::Qwen3 => "QW3",
        Arch::Mistral => "MI7",
        Arch::Phi3 => "PH3",
    }
}

/// A size token such as `2b`, `135M` or `0.5B` in a model directory name.
pub fn size_from_name(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        if c != b'b' && c != b'm' {
            continue;
        }
        // The unit must end a token: followed by a separator or the end.
        if i + 1 < bytes.len() && bytes[i + 1].is_ascii_alphanumeric() {
            continue;
        }
        let mut j = i;
        while j > 0 && (bytes[j - 1].is_ascii_digit() || bytes[j - 1] == b'.') {
            j -= 1;
        }
        // The number must start a token.
        if j == i || (j > 0 && bytes[j - 1].is_ascii_alphanumeric()) {
            continue;
        }
        let num = &lower[j..i];
        if num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1 {
            continue;
        }
        return Some(format!(
            "{}{}",
            num.replace('.', "_"),
            (c as char).to_ascii_uppercase()
        ));
    }
    None
}

/// SIZE from a parameter count.
pub fn size_from_count(params: u64) -> String {
    if params < 1_000_000_000 {
        format!("{}M", ((params as f64) / 1e6).round().max(1.0) as u64)
    } else {
        format!("{}B", ((params as f64) / 1e9).round() as u64)
    }
}

/// The file name of a package.
/// The file name of a package (`quant`: the scheme's name, `bits`: its AVA
/// suffix, see [`Scheme::ava_bits`]).
pub fn package_name(
    scheme: NameScheme,
    arch: Arch,
    source_name: &str,
    params: u64,
    quant: &str,
    bits: &str,
) -> String {
    let size = size_from_name(source_name).unwrap_or_else(|| size_from_count(params));
    match scheme {
        NameScheme::Ava => format!("AVA-{}-{}{}.ALM", ava_code(arch), size, bits),
        NameScheme::Plain => format!("{}-{}-{}.alm", arch.name(), size, quant),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Scheme;

    #[test]
    fn sizes_from_names() {
        assert_eq!(size_from_name("gemma-2-2b-it").as_deref(), Some("2B"));
        assert_eq!(
            size_from_name("SmolLM2-135M-Instruct").as_deref(),
            Some("135M")
        );
        assert_eq!(
            size_from_name("Qwen2.5-0.5B-Instruct").as_deref(),
            Some("0_5B")
        );
        assert_eq!(size_from_name("Llama-3.2-1B").as_deref(), Some("1B"));
        assert_eq!(size_from_name("tiny-llama"), None);
        assert_eq!(size_from_name("model_v2b"), None);
    }

    #[test]
    fn sizes_from_counts() {
        assert_eq!(size_from_count(134_515_008), "135M");
        assert_eq!(size_from_count(125_000), "1M");
        assert_eq!(size_from_count(3_880_000_000), "4B");
    }

    #[test]
    fn names() {
        let q = Scheme::Q4f16_1;
        let n = package_name(
            NameScheme::Ava,
            Arch::Gemma3,
            "gemma-3-4b-it",
            0,
            q.name(),
            q.ava_bits(),
        );
        assert_eq!(n, "AVA-GE3-4B16.ALM");
        let f = Scheme::F16;
        let n = package_name(
            NameScheme::Plain,
            Arch::Llama,
            "x",
            134_515_008,
            f.name(),
            f.ava_bits(),
        );
        assert_eq!(n, "llama-135M-f16.alm");
    }
}
