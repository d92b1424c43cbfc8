//! Shared helpers for tests that need the real GGUF models.
#![allow(dead_code)]

use std::path::PathBuf;

use alc_format::GgufFile;
use alc_tokenizer::Tokenizer;

pub const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// (golden name, GGUF file name)
pub const MODELS: &[(&str, &str)] = &[
    ("smollm2", "smollm2-135m-instruct-q4_1.gguf"),
    ("qwen2", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
];

pub fn models_dir() -> PathBuf {
    match std::env::var_os("ALC_MODELS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(WORKSPACE).join("models"),
    }
}

pub fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(WORKSPACE)
        .join("tests/goldens/tokenizer")
        .join(format!("{name}.json"))
}

/// Open a model's tokenizer. A missing model file fails the test (the models are part of
/// the test suite) unless `ALC_SKIP_MODEL_TESTS=1`, in which case `None` is returned
/// after printing a skip notice.
pub fn load(file: &str) -> Option<Tokenizer> {
    let path = models_dir().join(file);
    if !path.exists() {
        if std::env::var("ALC_SKIP_MODEL_TESTS").as_deref() == Ok("1") {
            eprintln!(
                "SKIP: model {} missing (ALC_SKIP_MODEL_TESTS=1)",
                path.display()
            );
            return None;
        }
        panic!(
            "model file {} is missing: run `scripts/fetch-models.sh` (or set ALC_SKIP_MODEL_TESTS=1 to skip model tests)",
            path.display()
        );
    }
    let f = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(Tokenizer::from_gguf(&f).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// A metadata value for [`gguf_bytes`].
pub enum Kv {
    U32(u32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A GGUF v3 file with the given metadata and no tensors.
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

pub fn gguf(kvs: &[(&str, Kv)]) -> GgufFile {
    GgufFile::from_bytes("synthetic.gguf", gguf_bytes(kvs)).expect("synthetic GGUF parses")
}

/// A tiny byte-level BPE vocabulary: the 256 byte characters, `<|end|>` (control),
/// then the results of `merges`.
pub fn tiny_bpe(pre: &str, merges: &[&str]) -> GgufFile {
    let map = alc_tokenizer::ByteMap::get();
    let mut tokens: Vec<String> = (0..=255u8).map(|b| map.char_of(b).to_string()).collect();
    tokens.push("<|end|>".to_string());
    for m in merges {
        tokens.push(m.replacen(' ', "", 1));
    }
    let mut types = vec![1i32; tokens.len()];
    types[256] = 3;
    gguf(&[
        ("tokenizer.ggml.model", Kv::Str("gpt2".into())),
        ("tokenizer.ggml.pre", Kv::Str(pre.into())),
        ("tokenizer.ggml.tokens", Kv::Strs(tokens)),
        ("tokenizer.ggml.token_type", Kv::I32s(types)),
        (
            "tokenizer.ggml.merges",
            Kv::Strs(merges.iter().map(|s| s.to_string()).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Kv::U32(256)),
        ("tokenizer.ggml.eos_token_id", Kv::U32(256)),
        ("tokenizer.ggml.add_bos_token", Kv::Bool(true)),
    ])
}
