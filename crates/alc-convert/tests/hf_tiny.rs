//! Tiny random-weight Hugging Face checkpoints of every supported architecture
//! (tests/fixtures/hf, made by scripts/goldens/gen_tiny_hf.py) compiled to f32
//! packages must reproduce transformers' float32 logits (tests/goldens/hf-tiny).
//!
//! Tolerance: float32 throughout (f32 package, f32 KV cache, the exact backend with
//! f32 GELU) must be within 1e-4 relative error (the bound). The engine as
//! it runs by default keeps the KV cache in f16 (as llama.cpp does), GELU from
//! llama.cpp's f16 table, and the CPU backend rounds queries to f16 for its
//! attention kernels; over these 39 positions that gives relative errors of 3e-4 to
//! 1.5e-3 (measured), so those runs are bounded by 1e-3 (scalar reference backend)
//! and 2.5e-3 (CPU backend). All runs need top-1 agreement at every position where
//! transformers' top two differ by more than 1e-2. A conversion mistake (rope layout, gate/up swap, a missing norm
//! offset, the wrong q scale, no sliding window or softcap) moves the logits by a
//! relative 0.08 to 1.1 (scripts/goldens/gen_tiny_hf.py --parts check).

mod common;

use alc_convert::{compile, Outcome};
use alc_kernels::Backend;
use alc_models::{KvType, Logits};
use common::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const ARCHS: [&str; 7] = [
    "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3",
];

fn build(arch: &str, quant: &str, out: &Path) -> PathBuf {
    match compile(&options(&fixture(arch), out, quant), &mut |_| {}).unwrap() {
        Outcome::Built(r) => {
            assert_eq!(r.verification, "verified", "{arch}: self-check");
            r.package
        }
        Outcome::UpToDate { .. } => panic!("{arch}: fresh output dir reported up to date"),
    }
}

struct Golden {
    tokens: Vec<u32>,
    logits: Vec<Vec<f32>>,
}

fn golden(arch: &str) -> Golden {
    let p = alc_testdata::workspace().join(format!("tests/goldens/hf-tiny/{arch}.json"));
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    let tokens = j["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let logits = j["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    Golden { tokens, logits }
}

/// All-position logits of a package on a backend.
fn logits(path: &Path, be: &dyn Backend, kv: KvType, tokens: &[u32]) -> Vec<Vec<f32>> {
    let f = Arc::new(alc_format::GgufFile::open(path).unwrap());
    let mut m = alc_models::Model::from_gguf(f).unwrap();
    m.pack_weights(be);
    let mut st = m.new_state_with(tokens.len(), tokens.len(), kv).unwrap();
    let n = m.hp.n_vocab;
    m.forward(be, &mut st, tokens, Logits::All)
        .unwrap()
        .chunks(n)
        .map(|c| c.to_vec())
        .collect()
}

/// ‖a − b‖ / ‖b‖ over all positions, and the largest absolute difference.
fn rel_err(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f64, f64) {
    let (mut num, mut den, mut mx) = (0f64, 0f64, 0f64);
    for (ra, rb) in a.iter().zip(b) {
        assert_eq!(ra.len(), rb.len());
        for (&x, &y) in ra.iter().zip(rb) {
            let d = f64::from(x) - f64::from(y);
            num += d * d;
            den += f64::from(y) * f64::from(y);
            mx = mx.max(d.abs());
        }
    }
    ((num / den).sqrt(), mx)
}

#[test]
fn f32_packages_match_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for arch in ARCHS {
        let g = golden(arch);
        let pkg = build(arch, "f32", dir.path());
        for (be_name, be, kv, bound) in [
            (
                "exact",
                Box::new(alc_kernels::reference::ExactBackend) as Box<dyn Backend>,
                KvType::F32,
                1e-4,
            ),
            (
                "reference",
                Box::new(alc_kernels::reference::ReferenceBackend),
                KvType::F16,
                1e-3,
            ),
            (
                "cpu",
                Box::new(alc_kernels::cpu::CpuBackend::new(2)),
                KvType::F16,
                2.5e-3,
            ),
        ] {
            let got = logits(&pkg, be.as_ref(), kv, &g.tokens);
            assert_eq!(got.len(), g.logits.len());
            let (rel, max_abs) = rel_err(&got, &g.logits);
            let flips = top1_flips(&got, &g.logits);
            eprintln!(
                "{arch:8} {be_name:9} rel {rel:.2e} max_abs {max_abs:.2e} top-1 flips {flips}"
            );
            if rel > bound {
                failures.push(format!(
                    "{arch}/{be_name}: relative error {rel:.3e} > {bound:e}"
                ));
            }
            if flips > 0 {
                failures.push(format!(
                    "{arch}/{be_name}: top-1 differs at {flips} decisive positions"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
