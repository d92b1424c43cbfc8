//! Helpers shared by alc-convert's test files (each includes this module).
#![allow(dead_code)]

use alc_convert::naming::NameScheme;
use alc_convert::CompileOptions;
use std::path::{Path, PathBuf};

/// A tiny Hugging Face checkpoint of `tests/fixtures/hf` (scripts/goldens/gen_tiny_hf.py).
pub fn fixture(arch: &str) -> PathBuf {
    alc_testdata::workspace()
        .join("tests/fixtures/hf")
        .join(arch)
}

/// Options for compiling `input` into `out` with `quant`: plain names, 2 threads.
pub fn options(input: &Path, out: &Path, quant: &str) -> CompileOptions {
    CompileOptions {
        quant: Some(quant.into()),
        name_scheme: NameScheme::Plain,
        threads: 2,
        ..CompileOptions::new(input, out)
    }
}

pub fn argmax(x: &[f32]) -> usize {
    x.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Positions where the top-1 differs although the reference's top two are more
/// than 1e-2 apart.
pub fn top1_flips(got: &[Vec<f32>], want: &[Vec<f32>]) -> usize {
    got.iter()
        .zip(want)
        .filter(|(g, w)| {
            let t = argmax(w);
            let second = w
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != t)
                .map(|(_, &v)| v)
                .fold(f32::MIN, f32::max);
            argmax(g) != t && w[t] - second > 1e-2
        })
        .count()
}
