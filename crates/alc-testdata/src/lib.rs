//! Where the tests find their real data: the GGUF models fetched by
//! `scripts/fetch-models.sh` and the llama.cpp goldens under `tests/goldens/`.
//!
//! A missing model fails the test that needs it (the models are part of the test
//! suite), unless `ALC_SKIP_MODEL_TESTS=1`, which turns it into a printed skip.

use std::path::PathBuf;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// `ALC_MODELS_DIR`, else `<workspace>/models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("ALC_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("models"))
}

/// `tests/goldens/<kind>/<name>` (kind: tokenizer, logits, greedy).
pub fn golden(kind: &str, name: &str) -> PathBuf {
    workspace().join("tests/goldens").join(kind).join(name)
}

/// Path of a model file; `None` (after a skip notice) when it is missing and
/// `ALC_SKIP_MODEL_TESTS=1`.
///
/// # Panics
/// When the file is missing and skipping was not asked for, naming the fix.
pub fn model(file: &str) -> Option<PathBuf> {
    let p = models_dir().join(file);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("ALC_SKIP_MODEL_TESTS").as_deref() == Ok("1") {
        eprintln!(
            "SKIP: model {} missing (ALC_SKIP_MODEL_TESTS=1)",
            p.display()
        );
        return None;
    }
    panic!(
        "{} is missing: run scripts/fetch-models.sh (or set ALC_SKIP_MODEL_TESTS=1)",
        p.display()
    );
}

/// A metadata value for [`gguf_bytes`].
pub enum Kv {
    U32(u32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
    F32(f32),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A GGUF v3 file with the given metadata and no tensors (unpadded: the parser
/// accepts a file that ends at its data offset).
pub fn gguf_bytes(kvs: &[(&str, Kv)]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        put_str(&mut out, k);
        match v {
            Kv::U32(x) => {
                out.extend_from_slice(&4u32.to_le_bytes());
                out.extend_from_slice(&x.to_le_bytes());
            }
            Kv::Bool(b) => {
                out.extend_from_slice(&7u32.to_le_bytes());
                out.push(u8::from(*b));
            }
            Kv::Str(s) => {
                out.extend_from_slice(&8u32.to_le_bytes());
                put_str(&mut out, s);
            }
            Kv::Strs(v) => {
                out.extend_from_slice(&9u32.to_le_bytes());
                out.extend_from_slice(&8u32.to_le_bytes());
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                for s in v {
                    put_str(&mut out, s);
                }
            }
            Kv::F32s(v) => {
                out.extend_from_slice(&9u32.to_le_bytes());
                out.extend_from_slice(&6u32.to_le_bytes());
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                for x in v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            Kv::F32(x) => {
                out.extend_from_slice(&6u32.to_le_bytes());
                out.extend_from_slice(&x.to_le_bytes());
            }
            Kv::I32s(v) => {
                out.extend_from_slice(&9u32.to_le_bytes());
                out.extend_from_slice(&5u32.to_le_bytes());
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                for x in v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
    out
}
