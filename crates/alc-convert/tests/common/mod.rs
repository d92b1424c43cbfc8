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

/// Log-softmax rows of all positions of `tokens`.
pub fn log_probs(path: &Path, tokens: &[u32]) -> Vec<Vec<f64>> {
    let f = std::sync::Arc::new(alc_format::GgufFile::open(path).unwrap());
    let mut m = alc_models::Model::from_gguf(f).unwrap();
    let be = alc_kernels::cpu::CpuBackend::new(2);
    m.pack_weights(&be);
    let mut st = m.new_state(tokens.len(), 128).unwrap();
    let n = m.hp.n_vocab;
    let mut out = Vec::new();
    for chunk in tokens.chunks(128) {
        let l = m
            .forward(&be, &mut st, chunk, alc_models::Logits::All)
            .unwrap()
            .to_vec();
        for row in l.chunks(n) {
            let mx = row.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
            let lse = row.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln() + mx;
            out.push(row.iter().map(|&v| v as f64 - lse).collect());
        }
    }
    out
}

pub fn argmax64(x: &[f64]) -> usize {
    x.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// (top-1 agreement, mean KL(p‖q)) of q against p.
pub fn compare(p: &[Vec<f64>], q: &[Vec<f64>]) -> (f64, f64) {
    let mut agree = 0usize;
    let mut kl = 0f64;
    for (a, b) in p.iter().zip(q) {
        agree += usize::from(argmax64(a) == argmax64(b));
        kl += a
            .iter()
            .zip(b)
            .map(|(&x, &y)| x.exp() * (x - y))
            .sum::<f64>();
    }
    (agree as f64 / p.len() as f64, kl / p.len() as f64)
}

/// A tensor of a safetensors file, owned.
pub type Owned = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

pub fn write_safetensors(path: &Path, ts: &[Owned]) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = ts
        .iter()
        .map(|(n, dt, shape, data)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*dt, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), path).unwrap();
}

/// Rewrite a safetensors file after `edit` changed its tensors.
pub fn rewrite_safetensors(path: &Path, edit: impl FnOnce(&mut Vec<Owned>)) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut ts: Vec<Owned> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut ts);
    write_safetensors(path, &ts);
}
