//! Shared helpers for tests that need the real GGUF models.
#![allow(dead_code)]

use std::path::PathBuf;

use alc_format::GgufFile;
pub use alc_testdata::{gguf_bytes, Kv};
use alc_tokenizer::Tokenizer;

/// (golden name, GGUF file name)
pub const MODELS: &[(&str, &str)] = &[
    ("smollm2", "smollm2-135m-instruct-q4_1.gguf"),
    ("qwen2", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
];

pub fn golden_path(name: &str) -> PathBuf {
    alc_testdata::golden("tokenizer", &format!("{name}.json"))
}

/// Open a model's tokenizer. A missing model file fails the test (the models are part of
/// the test suite) unless `ALC_SKIP_MODEL_TESTS=1`, in which case `None` is returned
/// after printing a skip notice.
pub fn load(file: &str) -> Option<Tokenizer> {
    let path = alc_testdata::model(file)?;
    let f = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(Tokenizer::from_gguf(&f).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
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
